/*
 * hs_server.c -- the server side of the handshake (docs/PROTOCOL.md §4, §9).
 *
 * IMPLEMENTATION NOTE (Manger / Marvin). An RSA-OAEP decryption failure must
 * not be observable. The server always draws a random 32-byte fallback
 * secret, decrypts, and picks the decrypted secret or the fallback with a
 * constant-time select on "decryption succeeded and gave 32 bytes". It then
 * carries on exactly as for a good ciphertext: same SERVER_HELLO, same
 * timing shape; the client (or attacker) finds out only at key confirmation,
 * when its first record fails the server's MAC check like any other bad
 * record. The only early refusals depend on public facts (key id, length).
 */
#include "msg.h"

#include <string.h>

static int send_alert(uint8_t code, uint8_t *out, size_t cap, mk_event *ev)
{
    if (mk_write_alert(code, 0, out, cap, &ev->len) == MK_OK)
        ev->type = MK_EV_SEND;
    return MK_OK;
}

/* Answers the hello with HELLO_RETRY, listing the keys this server holds. */
static int send_retry(mk_session *s, uint8_t reason, uint8_t *out, size_t cap,
                      mk_event *ev)
{
    const mk_server_config *c = s->scfg;
    mk_retry rt;
    int ret;

    memset(&rt, 0, sizeof rt);
    rt.reason = reason;
    rt.nkeys = (uint8_t)c->nkeys;
    for (size_t i = 0; i < c->nkeys; i++)
        memcpy(rt.key_ids[i], c->keys[i]->id, MK_KEY_ID_LEN);
    MK_TRY(mk__retry_write(&rt, out, cap, &ev->len));
    ev->type = MK_EV_SEND;
    s->retried = 1;
    /* The hello that answers this starts a new transcript. */
    mkc_hash_free(s->transcript);
    s->transcript = NULL;
    MK_TRY(mkc_hash_new(&s->transcript));
out:
    return ret;
}

/* The root secret of a full handshake: decrypted, or random on failure. */
static int full_root(mk_session *s, const mk_server_key *key, const mk_ch *ch,
                     uint8_t root[MK_SECRET_LEN])
{
    uint8_t dec[MKC_RSA_MAX_BYTES], fallback[MK_SECRET_LEN];
    size_t dlen = 0;
    unsigned ok;
    int ret, rc;

    MK_TRY(mk__random(s, fallback, sizeof fallback));
    rc = mkc_oaep_decrypt(key->rsa, (const uint8_t *)MK_OAEP_LABEL,
                          MK_OAEP_LABEL_LEN, ch->kem, ch->kem_len, dec,
                          sizeof dec, &dlen);
    /* 1 iff rc == MK_OK (0) and dlen == 32, computed without branches. */
    ok = mkc_ct_is_zero((size_t)(unsigned)rc | (dlen ^ MK_SECRET_LEN));
    mkc_ct_select(root, ok, dec, fallback, MK_SECRET_LEN);
out:
    mkc_cleanse(dec, sizeof dec);
    mkc_cleanse(fallback, sizeof fallback);
    return ret;
}

/* Parses the hello and refuses what may not follow a HELLO_RETRY. */
static int parse_hello(const mk_session *s, const uint8_t *unit, size_t len,
                       mk_ch *ch, uint8_t *out, size_t cap, mk_event *ev)
{
    int ret;

    ret = mk__ch_parse(unit, len, ch);
    if (ret != MK_OK) {
        send_alert(ret == MK_ERR_BAD_VERSION ? MK_ALERT_UNSUPPORTED_VERSION
                                             : MK_ALERT_BAD_MESSAGE,
                   out, cap, ev);
        goto out;
    }
    /* After a HELLO_RETRY only a full handshake may follow (§4.3): a
     * resumption is a hello this server will not serve, answered as every
     * such second hello is. */
    if (s->retried && ch->mode != MK_MODE_FULL) {
        send_alert(MK_ALERT_HANDSHAKE_FAILED, out, cap, ev);
        MK_FAIL_IF(1, MK_ERR_UNEXPECTED_MSG);
    }
out:
    return ret;
}

/* Full handshake: the root secret the client sent under the RSA key it
 * named. A key this server does not hold asks for a HELLO_RETRY (*retry),
 * unless this hello already answers one. */
static int root_from_key(mk_session *s, const mk_ch *ch,
                         uint8_t root[MK_SECRET_LEN], uint8_t *retry,
                         uint8_t *out, size_t cap, mk_event *ev)
{
    const mk_server_key *key = mk__find_key(s->scfg, ch->key_id);
    int ret = MK_OK;

    if (key == NULL) {
        if (s->retried) {
            send_alert(MK_ALERT_HANDSHAKE_FAILED, out, cap, ev);
            MK_FAIL_IF(1, MK_ERR_PIN);
        }
        *retry = MK_RETRY_KEY_ID;
        goto out;
    }
    /* The ciphertext length is public: refusing it leaks nothing. */
    if (ch->kem_len != mkc_rsa_size(key->rsa)) {
        send_alert(MK_ALERT_BAD_MESSAGE, out, cap, ev);
        MK_FAIL_IF(1, MK_ERR_BAD_MESSAGE);
    }
    MK_TRY(full_root(s, key, ch, root));
    memcpy(s->key_id, key->id, MK_KEY_ID_LEN);
out:
    return ret;
}

/* Resumption: the root secret is the one sealed in the ticket, and the
 * session keeps the time of its full handshake. Returns 0, or
 * MK_RETRY_TICKET when the ticket is forged, expired, from a retired
 * ticket or server key, or its session too old: all look the same to the
 * client, which falls back to a full handshake. */
static uint8_t root_from_ticket(mk_session *s, const mk_ch *ch, uint64_t now,
                                uint8_t root[MK_SECRET_LEN])
{
    uint8_t retry = 0;
    mk_ticket_state st;

    memset(&st, 0, sizeof st);
    if (mk__ticket_open(s->scfg, ch->ticket, ch->ticket_len, now, &st) !=
        MK_OK) {
        retry = MK_RETRY_TICKET;
    } else {
        memcpy(root, st.secret, MK_SECRET_LEN);
        memcpy(s->key_id, st.key_id, MK_KEY_ID_LEN);
        s->auth_ms = st.auth_ms;
    }
    mkc_cleanse(&st, sizeof st);
    return retry;
}

/* Resumption: the binder, HMAC over the hello up to the binder itself,
 * proves that the client holds the ticket's secret. */
static int check_binder(const mk_session *s, const uint8_t *unit, size_t len,
                        const mk_ch *ch, uint8_t *out, size_t cap, mk_event *ev)
{
    uint8_t bkey[MK_SECRET_LEN], h[MKC_SHA256_LEN], binder[MK_MAC_LEN];
    mkc_iov iov = {h, sizeof h};
    int ret;

    MK_TRY(mk__binder_key(s->early_secret, bkey));
    MK_TRY(mkc_sha256(unit, len - MK_MAC_LEN, h));
    MK_TRY(mkc_hmac_sha256(bkey, sizeof bkey, &iov, 1, binder));
    if (!mkc_ct_equal(binder, ch->binder, MK_MAC_LEN)) {
        send_alert(MK_ALERT_HANDSHAKE_FAILED, out, cap, ev);
        MK_FAIL_IF(1, MK_ERR_BAD_BINDER);
    }
out:
    mkc_cleanse(bkey, sizeof bkey);
    return ret;
}

/* The server's key share, and the handshake secret from the X25519
 * agreement with the client's share. */
static int derive_hs_secret(mk_session *s, const mk_ch *ch, mk_sh *sh,
                            uint8_t hs[MK_SECRET_LEN], uint8_t *out, size_t cap,
                            mk_event *ev)
{
    uint8_t priv[MKC_X25519_LEN], dh[MKC_X25519_LEN];
    mkc_x25519_key *eph = NULL;
    int ret;

    MK_TRY(mk__random(s, priv, sizeof priv));
    MK_TRY(mkc_x25519_new(priv, &eph, sh->share));
    if ((ret = mkc_x25519_derive(eph, ch->share, dh)) != MK_OK) {
        send_alert(MK_ALERT_HANDSHAKE_FAILED, out, cap, ev);
        goto out;
    }
    MK_TRY(mk__hs_secret(s->early_secret, dh, hs));
out:
    mkc_x25519_free(eph);
    mkc_cleanse(priv, sizeof priv);
    mkc_cleanse(dh, sizeof dh);
    return ret;
}

/* The lifetime of a ticket issued now: the configured one, cut to what is
 * left of the session's maximum age (rounded up; the check at resumption
 * is the exact one), so that a client is not told to offer a ticket the
 * server is sure to refuse. */
static uint32_t ticket_lifetime(const mk_session *s, uint64_t now)
{
    const mk_server_config *c = s->scfg;
    uint64_t end = s->auth_ms + (uint64_t)c->session_max_age * 1000u;
    uint64_t left = end > now ? (end - now + 999u) / 1000u : 1u;

    return left < c->ticket_lifetime ? (uint32_t)left : c->ticket_lifetime;
}

/* A ticket for this session's resumption secret, issued at now. */
static int issue_ticket(mk_session *s, uint64_t now, uint32_t lifetime,
                        uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t iv[MK_IV_LEN];
    mk_ticket_state st;
    int ret;

    memset(&st, 0, sizeof st);
    memcpy(st.key_id, s->key_id, MK_KEY_ID_LEN);
    st.issued_ms = now;
    st.auth_ms = s->auth_ms;
    st.lifetime = lifetime;
    memcpy(st.secret, s->resumption_secret, MK_SECRET_LEN);
    MK_TRY(mk__random(s, iv, sizeof iv));
    MK_TRY(mk__ticket_seal(s->scfg, &st, iv, out, cap, out_len));
out:
    mkc_cleanse(&st, sizeof st);
    return ret;
}

/* The extras: limits and a fresh ticket, encrypted under a key bound to
 * this CLIENT_HELLO and authenticated by Finished. IV || ciphertext goes
 * to xct, which sh->extras then points into. */
static int seal_extras(mk_session *s, const uint8_t hs[MK_SECRET_LEN],
                       const uint8_t ch_hash[MKC_SHA256_LEN], uint64_t now,
                       uint8_t *xct, size_t xct_cap, mk_sh *sh)
{
    const mk_server_config *c = s->scfg;
    uint8_t xpt[32 + MK_TICKET_MAX], ticket[MK_TICKET_MAX];
    uint8_t xkey[MK_SECRET_LEN];
    size_t xpt_len = 0, xct_len = 0;
    mk_extras x;
    int ret;

    memset(&x, 0, sizeof x);
    x.max_message = c->max_message;
    x.max_inflight = c->max_inflight;
    if (c->ntkeys) {
        x.ticket_lifetime = ticket_lifetime(s, now);
        MK_TRY(issue_ticket(s, now, x.ticket_lifetime, ticket, sizeof ticket,
                            &x.ticket_len));
        x.ticket = ticket;
    }
    MK_TRY(mk__extras_write(&x, xpt, sizeof xpt, &xpt_len));
    MK_TRY(mk__extras_key(hs, ch_hash, xkey));
    MK_TRY(mk__random(s, xct, MK_IV_LEN));
    MK_TRY(mkc_cbc_encrypt(xkey, xct, xpt, xpt_len, xct + MK_IV_LEN,
                           xct_cap - MK_IV_LEN, &xct_len));
    sh->extras = xct;
    sh->extras_len = MK_IV_LEN + xct_len;
out:
    mkc_cleanse(xkey, sizeof xkey);
    mkc_cleanse(xpt, sizeof xpt);
    return ret;
}

/* Writes SERVER_HELLO with its Finished over the transcript up to it, and
 * installs the record keys: the server is established from here on. */
static int write_reply(mk_session *s, const mk_sh *sh,
                       const uint8_t hs[MK_SECRET_LEN], uint8_t *out,
                       size_t cap, mk_event *ev)
{
    uint8_t th[MKC_SHA256_LEN], fkey[MK_SECRET_LEN];
    size_t sh_len = 0;
    int ret;

    MK_TRY(mk__sh_write(sh, out, cap, &sh_len));
    MK_TRY(mkc_hash_update(s->transcript, out, sh_len - MK_MAC_LEN));
    MK_TRY(mkc_hash_peek(s->transcript, th));
    MK_TRY(mk__install_keys(s, hs, th, fkey));
    MK_TRY(mk__finished(fkey, th, out + sh_len - MK_MAC_LEN));
    s->resumed = s->mode == MK_MODE_RESUME;
    s->max_message = s->scfg->max_message;
    s->max_inflight = s->scfg->max_inflight;
    MK_TRY(mk__establish(s));
    ev->type = MK_EV_ESTABLISHED;
    ev->len = sh_len;
out:
    mkc_cleanse(fkey, sizeof fkey);
    return ret;
}

int mk__server_on_client_hello(mk_session *s, const uint8_t *unit, size_t len,
                               uint8_t *out, size_t cap, mk_event *ev)
{
    uint8_t root[MK_SECRET_LEN], hs[MK_SECRET_LEN], ch_hash[MKC_SHA256_LEN];
    uint8_t xct[MK_IV_LEN + 32 + MK_TICKET_MAX];
    uint64_t now = s->env->now_ms(s->env->ctx);
    uint8_t retry = 0;
    mk_sh sh;
    mk_ch ch;
    int ret;

    memset(&sh, 0, sizeof sh);
    MK_TRY(parse_hello(s, unit, len, &ch, out, cap, ev));
    if (ch.mode == MK_MODE_FULL) {
        MK_TRY(root_from_key(s, &ch, root, &retry, out, cap, ev));
        s->auth_ms = now; /* the session starts here (§7) */
    } else {
        retry = root_from_ticket(s, &ch, now, root);
    }
    if (retry != 0) {
        ret = send_retry(s, retry, out, cap, ev);
        goto out;
    }
    s->mode = ch.mode;
    MK_TRY(mk__early_secret(root, s->early_secret));
    if (ch.mode == MK_MODE_RESUME)
        MK_TRY(check_binder(s, unit, len, &ch, out, cap, ev));
    /* Early data (§4.1.1) is reserved in this version: skipped, never
     * accepted, and the SERVER_HELLO says so (flags 0). */
    MK_TRY(mkc_hash_update(s->transcript, unit, len));
    sh.mode = ch.mode;
    sh.flags = 0;
    MK_TRY(mk__random(s, sh.random, MK_RANDOM_LEN));
    MK_TRY(derive_hs_secret(s, &ch, &sh, hs, out, cap, ev));
    MK_TRY(mkc_hash_peek(s->transcript, ch_hash));
    MK_TRY(mk__resumption_secret(hs, ch_hash, s->resumption_secret));
    MK_TRY(seal_extras(s, hs, ch_hash, now, xct, sizeof xct, &sh));
    MK_TRY(write_reply(s, &sh, hs, out, cap, ev));
out:
    mkc_cleanse(root, sizeof root);
    mkc_cleanse(hs, sizeof hs);
    return ret;
}
