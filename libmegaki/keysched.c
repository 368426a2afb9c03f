/*
 * keysched.c -- the Megaki v2 key schedule (docs/PROTOCOL.md §6).
 *
 * TLS 1.3 style: HKDF-Extract to fold in each input secret, and a labelled
 * HKDF-Expand for every output, so that no key is used for two purposes.
 * Labels are prefixed with "megaki2 " so that nothing here can collide with
 * another protocol's labels under the same secret.
 */
#include "internal.h"

#include <string.h>

#define LABEL_PREFIX "megaki2 "

int mk__expand_label(const uint8_t secret[MK_SECRET_LEN], const char *label,
                     const uint8_t *ctx, size_t ctx_len, uint8_t *out,
                     size_t out_len)
{
    /* HkdfLabel = u16 length || u8 len || "megaki2 " label || u8 len || ctx */
    uint8_t info[2 + 1 + 255 + 1 + 255];
    size_t plen = sizeof LABEL_PREFIX - 1, llen = strlen(label);
    mk_wr w;
    int ret;

    MK_FAIL_IF(out_len > 0xFFFF || plen + llen > 255 || ctx_len > 255,
               MK_ERR_USAGE);
    mk_wr_init(&w, info, sizeof info);
    mk_wr_u16(&w, (uint16_t)out_len);
    mk_wr_u8(&w, (uint8_t)(plen + llen));
    mk_wr_bytes(&w, (const uint8_t *)LABEL_PREFIX, plen);
    mk_wr_bytes(&w, (const uint8_t *)label, llen);
    mk_wr_u8(&w, (uint8_t)ctx_len);
    mk_wr_bytes(&w, ctx, ctx_len);
    MK_FAIL_IF(w.bad, MK_ERR_USAGE);
    ret = mkc_hkdf_expand(secret, MK_SECRET_LEN, info, mk_wr_len(&w), out,
                          out_len);
out:
    return ret;
}

int mk__derive_secret(const uint8_t secret[MK_SECRET_LEN], const char *label,
                      const uint8_t *msgs, size_t msgs_len,
                      uint8_t out[MK_SECRET_LEN])
{
    uint8_t h[MKC_SHA256_LEN];
    int ret;

    MK_TRY(mkc_sha256(msgs, msgs_len, h));
    ret = mk__expand_label(secret, label, h, sizeof h, out, MK_SECRET_LEN);
out:
    return ret;
}

int mk__early_secret(const uint8_t root[MK_SECRET_LEN],
                     uint8_t early[MK_SECRET_LEN])
{
    static const uint8_t zeros[MK_SECRET_LEN];
    return mkc_hkdf_extract(zeros, sizeof zeros, root, MK_SECRET_LEN, early);
}

int mk__binder_key(const uint8_t early[MK_SECRET_LEN],
                   uint8_t key[MK_SECRET_LEN])
{
    return mk__derive_secret(early, "res binder", NULL, 0, key);
}

int mk__hs_secret(const uint8_t early[MK_SECRET_LEN],
                  const uint8_t dh[MKC_X25519_LEN], uint8_t hs[MK_SECRET_LEN])
{
    uint8_t derived[MK_SECRET_LEN];
    int ret;

    MK_TRY(mk__derive_secret(early, "derived", NULL, 0, derived));
    ret = mkc_hkdf_extract(derived, sizeof derived, dh, MKC_X25519_LEN, hs);
out:
    mkc_cleanse(derived, sizeof derived);
    return ret;
}

int mk__extras_key(const uint8_t hs[MK_SECRET_LEN],
                   const uint8_t ch_hash[MKC_SHA256_LEN],
                   uint8_t key[MK_SECRET_LEN])
{
    return mk__expand_label(hs, "s extras", ch_hash, MKC_SHA256_LEN, key,
                            MK_SECRET_LEN);
}

int mk__hs_keys(const uint8_t hs[MK_SECRET_LEN],
                const uint8_t th[MKC_SHA256_LEN], mk_hs_keys *k)
{
    int ret;

    MK_TRY(mk__expand_label(hs, "c2s enc", th, MKC_SHA256_LEN, k->c2s_enc, 32));
    MK_TRY(mk__expand_label(hs, "c2s mac", th, MKC_SHA256_LEN, k->c2s_mac, 32));
    MK_TRY(mk__expand_label(hs, "s2c enc", th, MKC_SHA256_LEN, k->s2c_enc, 32));
    MK_TRY(mk__expand_label(hs, "s2c mac", th, MKC_SHA256_LEN, k->s2c_mac, 32));
    MK_TRY(mk__expand_label(hs, "s finished", th, MKC_SHA256_LEN, k->finished,
                            32));
    MK_TRY(mk__expand_label(hs, "session id", th, MKC_SHA256_LEN, k->session_id,
                            MK_SESSION_ID_LEN));
out:
    if (ret != MK_OK)
        mkc_cleanse(k, sizeof *k);
    return ret;
}

int mk__resumption_secret(const uint8_t hs[MK_SECRET_LEN],
                          const uint8_t ch_hash[MKC_SHA256_LEN],
                          uint8_t out[MK_SECRET_LEN])
{
    /* Bound to the CLIENT_HELLO only: the ticket that carries it rides in
     * SERVER_HELLO, so the full transcript cannot be its context. hs
     * already mixes both key shares and the root secret (§6.4). */
    return mk__expand_label(hs, "resumption", ch_hash, MKC_SHA256_LEN, out,
                            MK_SECRET_LEN);
}

int mk__finished(const uint8_t key[MK_SECRET_LEN],
                 const uint8_t th[MKC_SHA256_LEN], uint8_t out[MK_MAC_LEN])
{
    mkc_iov iov = {th, MKC_SHA256_LEN};
    return mkc_hmac_sha256(key, MK_SECRET_LEN, &iov, 1, out);
}

int mk__install_keys(mk_session *s, const uint8_t hs[MK_SECRET_LEN],
                     const uint8_t th[MKC_SHA256_LEN],
                     uint8_t finished_key[MK_SECRET_LEN])
{
    mk_hs_keys k;
    int ret;

    MK_TRY(mk__hs_keys(hs, th, &k));
    /* Each side writes with its own direction's keys and reads with the
     * other's, so a record reflected back to its sender never verifies. */
    MK_FAIL_IF(s->in.rec != NULL || s->out.rec != NULL, MK_ERR_STATE);
    MK_TRY(mkc_rec_new(k.s2c_enc, k.s2c_mac, s->is_server,
                       s->is_server ? &s->out.rec : &s->in.rec));
    MK_TRY(mkc_rec_new(k.c2s_enc, k.c2s_mac, !s->is_server,
                       s->is_server ? &s->in.rec : &s->out.rec));
    s->in.seq = 0;
    s->out.seq = 0;
    memcpy(s->session_id, k.session_id, MK_SESSION_ID_LEN);
    memcpy(finished_key, k.finished, MK_SECRET_LEN);
out:
    mkc_cleanse(&k, sizeof k);
    return ret;
}
