/*
 * hs_client.c -- the client side of the handshake (docs/PROTOCOL.md §4, §9).
 *
 * The client does one RSA public operation per full handshake (none when
 * resuming) and never generates an RSA key. The server is authenticated by
 * its Finished: only the holder of the pinned key's private half could have
 * learnt the root secret, or, when resuming, the ticket's secret.
 */
#include "msg.h"

#include <string.h>

static int restart_transcript(mk_session *s)
{
    mkc_hash_free(s->transcript);
    s->transcript = NULL;
    return mkc_hash_new(&s->transcript);
}

int mk__client_write_hello(mk_session *s, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    uint8_t kem_secret[MK_SECRET_LEN], seed[MKC_SHA256_LEN];
    uint8_t kem[MKC_RSA_MAX_BYTES], bkey[MK_SECRET_LEN], h[MKC_SHA256_LEN];
    uint8_t priv[MKC_X25519_LEN];
    const uint8_t *root;
    mk_ch ch;
    size_t len = 0, kem_len = 0;
    int ret;

    *out_len = 0;
    memset(&ch, 0, sizeof ch);
    MK_FAIL_IF(cap < MK_HANDLE_OUT_LEN, MK_ERR_BUFFER);
    MK_TRY(restart_transcript(s));
    s->mode = s->have_resume ? MK_MODE_RESUME : MK_MODE_FULL;
    ch.mode = (uint8_t)s->mode;
    MK_TRY(mk__random(s, ch.random, MK_RANDOM_LEN));
    MK_TRY(mk__random(s, priv, sizeof priv));
    mkc_x25519_free(s->eph); /* a retried hello uses a fresh share */
    s->eph = NULL;
    MK_TRY(mkc_x25519_new(priv, &s->eph, ch.share));
    ch.time_ms = s->env->now_ms(s->env->ctx);

    if (s->mode == MK_MODE_FULL) {
        const mkc_rsa *pk = s->ccfg->pins[s->pin_index];
        MK_TRY(mk__random(s, kem_secret, sizeof kem_secret));
        MK_TRY(mk__random(s, seed, sizeof seed));
        MK_TRY(mkc_oaep_encrypt(
            pk, (const uint8_t *)MK_OAEP_LABEL, MK_OAEP_LABEL_LEN, kem_secret,
            sizeof kem_secret, seed, kem, sizeof kem, &kem_len));
        memcpy(ch.key_id, s->ccfg->pin_ids[s->pin_index], MK_KEY_ID_LEN);
        ch.kem = kem;
        ch.kem_len = kem_len;
        root = kem_secret;
    } else {
        ch.ticket = s->resume_ticket;
        ch.ticket_len = s->resume_ticket_len;
        root = s->resume_secret;
    }
    MK_TRY(mk__ch_write(&ch, out, cap, &len));
    MK_TRY(mk__early_secret(root, s->early_secret));
    if (s->mode == MK_MODE_RESUME) {
        /* binder = HMAC(binder_key, SHA-256(hello up to the binder)) */
        MK_TRY(mk__binder_key(s->early_secret, bkey));
        MK_TRY(mkc_sha256(out, len - MK_MAC_LEN, h));
        mkc_iov iov = {h, sizeof h};
        MK_TRY(mkc_hmac_sha256(bkey, sizeof bkey, &iov, 1,
                               out + len - MK_MAC_LEN));
    }
    MK_TRY(mkc_hash_update(s->transcript, out, len));
    *out_len = len;
out:
    mkc_cleanse(kem_secret, sizeof kem_secret);
    mkc_cleanse(priv, sizeof priv);
    mkc_cleanse(seed, sizeof seed);
    mkc_cleanse(bkey, sizeof bkey);
    return ret;
}

int mk__client_on_server_hello(mk_session *s, const uint8_t *unit, size_t len,
                               uint8_t *out, size_t cap, mk_event *ev)
{
    uint8_t dh[MKC_X25519_LEN], hs[MK_SECRET_LEN], xkey[MK_SECRET_LEN];
    uint8_t ch_hash[MKC_SHA256_LEN], th[MKC_SHA256_LEN];
    uint8_t fkey[MK_SECRET_LEN], fin[MK_MAC_LEN];
    size_t pt_len = 0;
    mk_extras x;
    mk_sh sh;
    int ret;

    MK_TRY(mk__sh_parse(unit, len, &sh));
    /* Early data is never offered in this version, so never accepted. */
    MK_FAIL_IF(sh.mode != s->mode || sh.flags != 0, MK_ERR_BAD_MESSAGE);
    MK_TRY(mkc_x25519_derive(s->eph, sh.share, dh));
    MK_TRY(mk__hs_secret(s->early_secret, dh, hs));
    MK_TRY(mkc_hash_peek(s->transcript, ch_hash));
    MK_TRY(mkc_hash_update(s->transcript, unit, len - MK_MAC_LEN));
    MK_TRY(mkc_hash_peek(s->transcript, th));
    MK_TRY(mk__install_keys(s, hs, th, fkey));
    MK_TRY(mk__resumption_secret(hs, ch_hash, s->resumption_secret));
    MK_TRY(mk__finished(fkey, th, fin));
    /* Key confirmation: the one check that authenticates the server. */
    MK_FAIL_IF(!mkc_ct_equal(fin, sh.finished, MK_MAC_LEN), MK_ERR_SERVER_AUTH);

    /* The extras are covered by Finished, so decrypting them now is
     * decrypting authenticated bytes. */
    MK_TRY(mk__extras_key(hs, ch_hash, xkey));
    ret = mkc_cbc_decrypt(xkey, sh.extras, sh.extras + MK_IV_LEN,
                          sh.extras_len - MK_IV_LEN, out, cap, &pt_len);
    MK_FAIL_IF(ret != MK_OK, MK_ERR_BAD_MESSAGE);
    MK_TRY(mk__extras_parse(out, pt_len, &x));
    s->max_message = x.max_message;
    s->max_inflight = x.max_inflight;
    memcpy(s->ticket, x.ticket, x.ticket_len);
    s->ticket_len = x.ticket_len;
    s->ticket_lifetime = x.ticket_lifetime;
    s->ticket_received_ms = s->env->now_ms(s->env->ctx);
    s->resumed = s->mode == MK_MODE_RESUME;
    memcpy(s->key_id,
           s->resumed ? s->resume_key_id : s->ccfg->pin_ids[s->pin_index],
           MK_KEY_ID_LEN);
    MK_TRY(mk__establish(s));
    ev->type = MK_EV_ESTABLISHED;
    ev->len = 0;
out:
    mkc_cleanse(out, pt_len);
    mkc_cleanse(dh, sizeof dh);
    mkc_cleanse(hs, sizeof hs);
    mkc_cleanse(xkey, sizeof xkey);
    mkc_cleanse(fkey, sizeof fkey);
    return ret;
}

int mk__client_on_retry(mk_session *s, const uint8_t *unit, size_t len,
                        uint8_t *out, size_t cap, mk_event *ev)
{
    size_t pick = SIZE_MAX;
    mk_retry rt;
    int ret;

    MK_TRY(mk__retry_parse(unit, len, &rt));
    MK_FAIL_IF(s->retried, MK_ERR_SECOND_RETRY);
    /* A ticket refusal only makes sense after a resumption attempt, and an
     * unknown-key refusal only after a full one. */
    MK_FAIL_IF(rt.reason == MK_RETRY_TICKET && s->mode != MK_MODE_RESUME,
               MK_ERR_BAD_MESSAGE);
    MK_FAIL_IF(rt.reason == MK_RETRY_KEY_ID && s->mode != MK_MODE_FULL,
               MK_ERR_BAD_MESSAGE);
    /* The list is unauthenticated, but it can only make us choose among
     * keys we pin ourselves: first pinned key that the server holds. */
    for (size_t i = 0; i < s->ccfg->npins && pick == SIZE_MAX; i++)
        for (size_t j = 0; j < rt.nkeys; j++)
            if (memcmp(s->ccfg->pin_ids[i], rt.key_ids[j], MK_KEY_ID_LEN) ==
                    0 &&
                !(rt.reason == MK_RETRY_KEY_ID && i == s->pin_index))
                pick = i;
    MK_FAIL_IF(pick == SIZE_MAX, MK_ERR_PIN);
    s->retried = 1;
    s->pin_index = pick;
    s->have_resume = 0;
    mkc_cleanse(s->resume_secret, sizeof s->resume_secret);
    MK_TRY(mk__client_write_hello(s, out, cap, &ev->len));
    ev->type = MK_EV_SEND;
out:
    return ret;
}

int mk__client_on_alert(mk_session *s, const uint8_t *unit, size_t len,
                        uint8_t *out, size_t cap, mk_event *ev)
{
    mk_alert_msg a;
    int ret;

    (void)out;
    (void)cap;
    (void)ev;
    MK_TRY(mk__alert_parse(unit, len, &a));
    switch (a.code) {
    case MK_ALERT_RETRY_LATER:
        s->retry_after = a.arg;
        ret = MK_ERR_PEER_RETRY_LATER;
        break;
    case MK_ALERT_UNSUPPORTED_VERSION:
        ret = MK_ERR_PEER_VERSION;
        break;
    case MK_ALERT_HANDSHAKE_FAILED:
        ret = MK_ERR_PEER_HS_FAILED;
        break;
    case MK_ALERT_BAD_MESSAGE:
        ret = MK_ERR_PEER_BAD_MESSAGE;
        break;
    default:
        ret = MK_ERR_BAD_MESSAGE;
        break;
    }
out:
    return ret;
}
