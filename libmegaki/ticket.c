/*
 * ticket.c -- stateless session tickets (docs/PROTOCOL.md §7).
 *
 *   ticket = key_name[16] || IV[16] || AES-256-CBC(enc, state) || tag[32]
 *   tag    = HMAC-SHA256(mac, key_name || IV || ciphertext)
 *
 * RFC 5077's recommended layout with our own primitives. The state holds
 * the resumption secret, so a ticket is only as safe as the ticket keys:
 * those rotate, and a ticket outlives neither its lifetime nor its key.
 */
#include "internal.h"

#include <string.h>

#define STATE_VERSION 2

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
    st->lifetime = mk_rd_u32(&r);
    mk_rd_copy(&r, st->secret, MK_SECRET_LEN);
    MK_FAIL_IF(!mk_rd_done(&r), MK_ERR_BAD_MESSAGE);

    /* Expired, or issued in the future beyond clock skew: not usable. The
     * lifetime is also capped here, so a ticket never outlives the limit
     * even if an older configuration issued it with a longer one. */
    MK_FAIL_IF(st->lifetime > MK_TICKET_LIFETIME_LIMIT, MK_ERR_BAD_MESSAGE);
    MK_FAIL_IF(st->issued_ms > now_ms + MK_CLOCK_SKEW_MS, MK_ERR_BAD_MESSAGE);
    MK_FAIL_IF(now_ms - (st->issued_ms < now_ms ? st->issued_ms : now_ms) >=
                   (uint64_t)st->lifetime * 1000u,
               MK_ERR_BAD_MESSAGE);
    ret = MK_OK;
out:
    if (ret != MK_OK)
        mkc_cleanse(st, sizeof *st);
    mkc_cleanse(pt, sizeof pt);
    mkc_cleanse(tag, sizeof tag);
    return ret;
}
