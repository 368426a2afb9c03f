/*
 * ticket.c -- stateless session tickets (docs/PROTOCOL.md §7).
 *
 *   ticket = key_name[16] || IV[16] || AES-256-CBC(enc, state) || tag[32]
 *   tag    = HMAC-SHA256(mac, key_name || IV || ciphertext)
 *
 * RFC 5077's recommended layout with our own primitives. The state holds
 * the resumption secret, so a ticket is only as safe as the ticket keys:
 * those rotate, and a ticket outlives neither its lifetime nor its key.
 *
 * The state also carries the time of the session's full handshake, which
 * every resumption copies into the next ticket: without it a stolen
 * session would be renewed for ever, one fresh ticket after another, and
 * neither retiring the server key nor shortening the lifetime would end
 * it. So a ticket is refused once the session is older than the server's
 * session_max_age, once its server key is no longer loaded, and once it is
 * older than the shorter of its own lifetime and the server's current one.
 */
#include "internal.h"

#include <string.h>

/* 3 since v2.1, which added the authentication time; a ticket of format 2
 * is simply unusable (a full handshake follows). */
#define STATE_VERSION 3

int mk__ticket_seal(const mk_server_config *cfg, const mk_ticket_state *st,
                    const uint8_t iv[MK_IV_LEN], uint8_t *out, size_t cap,
                    size_t *out_len)
{
    uint8_t pt[MK_TICKET_STATE_LEN];
    const mk_tk *k;
    size_t ct_len = 0;
    mk_wr w;
    int ret;

    *out_len = 0;
    MK_FAIL_IF(cfg->ntkeys == 0, MK_ERR_STATE);
    MK_FAIL_IF(cap < MK_TICKET_LEN, MK_ERR_BUFFER);
    k = &cfg->tkeys[0];

    mk_wr_init(&w, pt, sizeof pt);
    mk_wr_u8(&w, STATE_VERSION);
    mk_wr_u8(&w, 0);
    mk_wr_bytes(&w, st->key_id, MK_KEY_ID_LEN);
    mk_wr_u64(&w, st->issued_ms);
    mk_wr_u64(&w, st->auth_ms);
    mk_wr_u32(&w, st->lifetime);
    mk_wr_bytes(&w, st->secret, MK_SECRET_LEN);
    MK_FAIL_IF(w.bad || mk_wr_len(&w) != sizeof pt, MK_ERR_USAGE);

    memcpy(out, k->name, MK_TICKET_NAME_LEN);
    memcpy(out + MK_TICKET_NAME_LEN, iv, MK_IV_LEN);
    MK_TRY(mkc_cbc_encrypt(
        k->enc, iv, pt, sizeof pt, out + MK_TICKET_NAME_LEN + MK_IV_LEN,
        cap - MK_TICKET_NAME_LEN - MK_IV_LEN - MK_MAC_LEN, &ct_len));
    {
        size_t body = MK_TICKET_NAME_LEN + MK_IV_LEN + ct_len;
        mkc_iov iov = {out, body};
        MK_TRY(mkc_hmac_sha256(k->mac, MK_SECRET_LEN, &iov, 1, out + body));
        *out_len = body + MK_MAC_LEN;
    }
out:
    mkc_cleanse(pt, sizeof pt);
    return ret;
}

int mk__ticket_open(const mk_server_config *cfg, const uint8_t *ticket,
                    size_t len, uint64_t now_ms, mk_ticket_state *st)
{
    uint8_t tag[MK_MAC_LEN], pt[MK_TICKET_MAX];
    const mk_tk *k = NULL;
    size_t ct_len, pt_len = 0, body;
    mk_rd r;
    int ret;

    memset(st, 0, sizeof *st);
    MK_FAIL_IF(len < MK_TICKET_NAME_LEN + MK_IV_LEN + 16 + MK_MAC_LEN ||
                   len > MK_TICKET_MAX,
               MK_ERR_BAD_MESSAGE);
    body = len - MK_MAC_LEN;
    ct_len = body - MK_TICKET_NAME_LEN - MK_IV_LEN;
    MK_FAIL_IF(ct_len % 16 != 0, MK_ERR_BAD_MESSAGE);

    /* Key names are not secret: an ordinary lookup is fine. */
    for (size_t i = 0; i < cfg->ntkeys; i++)
        if (memcmp(cfg->tkeys[i].name, ticket, MK_TICKET_NAME_LEN) == 0)
            k = &cfg->tkeys[i];
    MK_FAIL_IF(k == NULL, MK_ERR_BAD_MESSAGE);

    {
        mkc_iov iov = {ticket, body};
        MK_TRY(mkc_hmac_sha256(k->mac, MK_SECRET_LEN, &iov, 1, tag));
    }
    MK_FAIL_IF(!mkc_ct_equal(tag, ticket + body, MK_MAC_LEN),
               MK_ERR_BAD_MESSAGE);
    ret = mkc_cbc_decrypt(k->enc, ticket + MK_TICKET_NAME_LEN,
                          ticket + MK_TICKET_NAME_LEN + MK_IV_LEN, ct_len, pt,
                          sizeof pt, &pt_len);
    MK_FAIL_IF(ret != MK_OK, MK_ERR_BAD_MESSAGE);

    mk_rd_init(&r, pt, pt_len);
    MK_FAIL_IF(mk_rd_u8(&r) != STATE_VERSION || mk_rd_u8(&r) != 0,
               MK_ERR_BAD_MESSAGE);
    mk_rd_copy(&r, st->key_id, MK_KEY_ID_LEN);
    st->issued_ms = mk_rd_u64(&r);
    st->auth_ms = mk_rd_u64(&r);
    st->lifetime = mk_rd_u32(&r);
    mk_rd_copy(&r, st->secret, MK_SECRET_LEN);
    MK_FAIL_IF(!mk_rd_done(&r), MK_ERR_BAD_MESSAGE);

    /* A session cannot have started after its ticket was issued. */
    MK_FAIL_IF(st->auth_ms > st->issued_ms, MK_ERR_BAD_MESSAGE);
    /* Expired, or issued in the future beyond clock skew: not usable. The
     * lifetime is capped by the limit and by this server's current
     * lifetime, so shortening it takes effect on tickets already out. */
    MK_FAIL_IF(st->lifetime > MK_TICKET_LIFETIME_LIMIT, MK_ERR_BAD_MESSAGE);
    MK_FAIL_IF(mk__stale(now_ms, st->issued_ms,
                         st->lifetime < cfg->ticket_lifetime
                             ? st->lifetime
                             : cfg->ticket_lifetime),
               MK_ERR_BAD_MESSAGE);
    /* The session as a whole, however often it was resumed. */
    MK_FAIL_IF(mk__stale(now_ms, st->auth_ms, cfg->session_max_age),
               MK_ERR_BAD_MESSAGE);
    /* The server key that authenticated the session must still be held:
     * retiring a key ends the sessions it started. Key ids are public. */
    MK_FAIL_IF(mk__find_key(cfg, st->key_id) == NULL, MK_ERR_BAD_MESSAGE);
    ret = MK_OK;
out:
    if (ret != MK_OK)
        mkc_cleanse(st, sizeof *st);
    mkc_cleanse(pt, sizeof pt);
    mkc_cleanse(tag, sizeof tag);
    return ret;
}
