/*
 * crypto_evp.c -- the libcrypto (OpenSSL 3.0 EVP) implementation of crypto.h.
 *
 * This is the only file in libmegaki that includes <openssl/...>; the rest of
 * the library sees mkc_* functions and mk_err codes only, so libcrypto can
 * be swapped, or its use audited, in this one file.
 *
 * IMPLEMENTATION NOTES
 *   - Every libcrypto call is checked against its documented success value
 *     (1 for EVP_*Init/Update/Final, "positive" for the EVP_PKEY_CTX_set_*
 *     control wrappers, non-NULL for constructors). Any failure clears the
 *     OpenSSL error queue (fail()) so that no stale entry leaks into a later,
 *     unrelated call on the same thread, and maps to one mk_err code.
 *   - Each function has a single exit at `out:`, which wipes stack copies of
 *     secrets with OPENSSL_cleanse (the compiler cannot drop it) and frees the
 *     contexts (their *_free cleanses their own key schedules).
 *   - The algorithm objects (SHA-256, HMAC, AES-256-CBC, HKDF) are fetched
 *     once per process under pthread_once: an implicit fetch inside every
 *     record's HMAC/CBC call costs a method-store lookup under a lock, which
 *     is measurable on the 16 KiB record path and contends between threads.
 *     The cached objects are immutable and only read afterwards, so sharing
 *     them between threads is safe.
 *   - libcrypto lengths are int or long; every size_t length is checked
 *     against INT_MAX before it is narrowed.
 */
#include "crypto.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* RFC 8017 7.1.1: hLen for SHA-256, and the fixed OAEP overhead 2*hLen+2. */
#define OAEP_HLEN     MKC_SHA256_LEN
#define OAEP_OVERHEAD (2 * OAEP_HLEN + 2)

/* ------------------------------------------------------------------ */
/* Error handling and cached algorithms                                 */

/* Every failure path goes through here: the error queue is thread-local and
 * would otherwise make a later ERR_get_error() report an unrelated cause. */
static int fail(int code)
{
    ERR_clear_error();
    return code;
}

/*
 * The one shape of every libcrypto check in this file: on failure, set ret
 * through fail() (so the error queue is cleared) and leave by the single
 * exit at `out:`, which wipes secrets and frees contexts. The caller needs
 * an int `ret` and an `out:` label, as for MK_TRY. Spelt out by hand, each
 * check was four lines of boilerplate around the one line that matters, and
 * with fifty of them a missing fail() or a wrong success test hid easily.
 *
 * libcrypto has more than one success convention, hence one form each:
 *   OSSL_GUARD      the call returns 1 on success (EVP_*Init/Update/Final
 *                   and most of EVP);
 *   OSSL_GUARD_POS  the call returns a positive value on success (the
 *                   EVP_PKEY_CTX_set_* control wrappers are documented so);
 *   OSSL_FAIL_IF    anything else: a NULL from a constructor, or an output
 *                   whose length is not the one asked for.
 */
#define OSSL_FAIL_IF(cond, err)                                                \
    do {                                                                       \
        if (cond) {                                                            \
            ret = fail(err);                                                   \
            goto out;                                                          \
        }                                                                      \
    } while (0)
#define OSSL_GUARD(call, err)     OSSL_FAIL_IF((call) != 1, err)
#define OSSL_GUARD_POS(call, err) OSSL_FAIL_IF((call) <= 0, err)

static struct {
    EVP_MD *sha256;
    EVP_CIPHER *aes256cbc;
    EVP_MAC *hmac;
    /* An HMAC context with the digest already set and no key. Each call
     * duplicates it and keys the copy, which skips re-fetching SHA-256 by
     * name on every record (EVP_MAC_CTX_dup only reads the source, so
     * concurrent duplication from many threads is safe). */
    EVP_MAC_CTX *hmac_tmpl;
} algs;

static pthread_once_t algs_once = PTHREAD_ONCE_INIT;

/* Runs exactly once. A failed fetch leaves its pointer NULL and every later
 * call that needs it fails with MK_ERR_CRYPTO; pthread_once cannot be
 * retried, and a libcrypto that cannot find SHA-256 will not recover. */
static void algs_init(void)
{
    OSSL_PARAM params[2];
    EVP_MAC_CTX *tmpl = NULL;

    algs.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    algs.aes256cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    algs.hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (algs.hmac != NULL) {
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                     "SHA256", 0);
        params[1] = OSSL_PARAM_construct_end();
        tmpl = EVP_MAC_CTX_new(algs.hmac);
        if (tmpl != NULL && EVP_MAC_CTX_set_params(tmpl, params) == 1) {
            algs.hmac_tmpl = tmpl;
            tmpl = NULL;
        }
    }
    EVP_MAC_CTX_free(tmpl);
    /* Whatever failed above is reported by the caller as MK_ERR_CRYPTO;
     * leave no queue entries behind for an unrelated later call. */
    ERR_clear_error();
}

static int algs_ready(void)
{
    return pthread_once(&algs_once, algs_init) == 0;
}

static const EVP_MD *sha256_md(void)
{
    return algs_ready() ? algs.sha256 : NULL;
}

/* ------------------------------------------------------------------ */
/* Hashing                                                              */

int mkc_sha256(const uint8_t *msg, size_t len, uint8_t out[MKC_SHA256_LEN])
{
    const EVP_MD *md = sha256_md();
    unsigned int n = 0;
    int ret;

    OSSL_FAIL_IF(md == NULL, MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_Digest(msg, len, out, &n, md, NULL), MK_ERR_CRYPTO);
    OSSL_FAIL_IF(n != MKC_SHA256_LEN, MK_ERR_CRYPTO);
    ret = MK_OK;
out:
    return ret;
}

struct mkc_hash {
    EVP_MD_CTX *ctx;
};

int mkc_hash_new(mkc_hash **out)
{
    const EVP_MD *md = sha256_md();
    mkc_hash *h = NULL;
    int ret;

    *out = NULL;
    OSSL_FAIL_IF(md == NULL, MK_ERR_CRYPTO);
    h = OPENSSL_zalloc(sizeof(*h));
    OSSL_FAIL_IF(h == NULL, MK_ERR_NOMEM);
    h->ctx = EVP_MD_CTX_new();
    OSSL_FAIL_IF(h->ctx == NULL, MK_ERR_NOMEM);
    OSSL_GUARD(EVP_DigestInit_ex2(h->ctx, md, NULL), MK_ERR_CRYPTO);
    *out = h;
    h = NULL;
    ret = MK_OK;
out:
    mkc_hash_free(h);
    return ret;
}

int mkc_hash_update(mkc_hash *h, const uint8_t *p, size_t len)
{
    int ret;

    OSSL_GUARD(EVP_DigestUpdate(h->ctx, p, len), MK_ERR_CRYPTO);
    ret = MK_OK;
out:
    return ret;
}

int mkc_hash_peek(const mkc_hash *h, uint8_t out[MKC_SHA256_LEN])
{
    EVP_MD_CTX *copy = NULL;
    unsigned int n = 0;
    int ret;

    /* Finalising consumes a context, so finalise a copy: the transcript
     * keeps running after each Finished/binder computation. */
    copy = EVP_MD_CTX_new();
    OSSL_FAIL_IF(copy == NULL, MK_ERR_NOMEM);
    OSSL_GUARD(EVP_MD_CTX_copy_ex(copy, h->ctx), MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_DigestFinal_ex(copy, out, &n), MK_ERR_CRYPTO);
    OSSL_FAIL_IF(n != MKC_SHA256_LEN, MK_ERR_CRYPTO);
    ret = MK_OK;
out:
    EVP_MD_CTX_free(copy);
    return ret;
}

void mkc_hash_free(mkc_hash *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    OPENSSL_free(h);
}

/* ------------------------------------------------------------------ */
/* MAC and KDF                                                          */

int mkc_hmac_sha256(const uint8_t *key, size_t key_len, const mkc_iov *iov,
                    size_t n, uint8_t out[MKC_SHA256_LEN])
{
    static const uint8_t empty_key[1];
    EVP_MAC_CTX *ctx = NULL;
    size_t i, got = 0;
    int ret;

    OSSL_FAIL_IF(!algs_ready() || algs.hmac_tmpl == NULL, MK_ERR_CRYPTO);
    ctx = EVP_MAC_CTX_dup(algs.hmac_tmpl);
    /* NULL from the allocation or from the provider's dupctx */
    OSSL_FAIL_IF(ctx == NULL, MK_ERR_CRYPTO);
    /* A NULL key means "keep the previous key" to EVP_MAC_init, and the
     * template has none, so an empty key is passed as a real pointer. */
    OSSL_GUARD(EVP_MAC_init(ctx, key_len > 0 ? key : empty_key, key_len, NULL),
               MK_ERR_CRYPTO);
    for (i = 0; i < n; i++) {
        if (iov[i].len == 0)
            continue;
        OSSL_GUARD(EVP_MAC_update(ctx, iov[i].p, iov[i].len), MK_ERR_CRYPTO);
    }
    OSSL_GUARD(EVP_MAC_final(ctx, out, &got, MKC_SHA256_LEN), MK_ERR_CRYPTO);
    OSSL_FAIL_IF(got != MKC_SHA256_LEN, MK_ERR_CRYPTO);
    ret = MK_OK;
out:
    EVP_MAC_CTX_free(ctx); /* cleanses the keyed inner/outer states */
    return ret;
}

/*
 * HKDF (RFC 5869) written over the cached HMAC rather than EVP_KDF "HKDF":
 * a new EVP_KDF_CTX per call re-fetches SHA-256 by name, and a handshake
 * runs a dozen expansions, which the benchmark showed cost about three
 * times the HMACs they consist of. The construction is two lines of the
 * RFC and the Wycheproof HKDF vectors check it.
 */
int mkc_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                     size_t ikm_len, uint8_t prk[MKC_SHA256_LEN])
{
    static const uint8_t zeros[MKC_SHA256_LEN];
    mkc_iov iov = {ikm, ikm_len};

    /* 2.2: an absent salt is HashLen zeros. */
    if (salt_len == 0)
        return mkc_hmac_sha256(zeros, sizeof zeros, &iov, 1, prk);
    return mkc_hmac_sha256(salt, salt_len, &iov, 1, prk);
}

int mkc_hkdf_expand(const uint8_t *prk, size_t prk_len, const uint8_t *info,
                    size_t info_len, uint8_t *out, size_t out_len)
{
    uint8_t t[MKC_SHA256_LEN], ctr = 0;
    size_t done = 0, tlen = 0;
    int ret = MK_OK;

    /* 2.3: L <= 255*HashLen, a caller error otherwise. */
    if (out_len > 255 * (size_t)MKC_SHA256_LEN)
        return MK_ERR_USAGE;
    while (done < out_len) {
        size_t n = out_len - done;
        mkc_iov iov[3] = {{t, tlen}, {info, info_len}, {&ctr, 1}};

        ctr++;
        /* T(i) = HMAC(PRK, T(i-1) || info || i) */
        if ((ret = mkc_hmac_sha256(prk, prk_len, iov, 3, t)) != MK_OK)
            goto out;
        tlen = sizeof t;
        if (n > sizeof t)
            n = sizeof t;
        memcpy(out + done, t, n);
        done += n;
    }
out:
    if (ret != MK_OK)
        OPENSSL_cleanse(out, out_len);
    OPENSSL_cleanse(t, sizeof t);
    return ret;
}

/* ------------------------------------------------------------------ */
/* AES-256-CBC with PKCS#7 padding                                      */

/*
 * One CBC pass on a context that already has the cipher and key (and the
 * direction): set the IV, run the data, finish with PKCS#7. Shared by the
 * one-shot functions and by mkc_rec, which keys its contexts once per
 * session direction instead of once per record.
 */
static int cbc_pass(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *iv,
                    const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                    size_t *out_len)
{
    size_t need;
    int n1 = 0, n2 = 0, ret;

    *out_len = 0;
    if (enc) {
        /* EVP takes int lengths; leave room for the padding block. */
        if (len > (size_t)INT_MAX - MKC_AES_BLOCK) {
            ret = MK_ERR_USAGE;
            goto out;
        }
        need = len + MKC_AES_BLOCK - len % MKC_AES_BLOCK;
    } else {
        /* A ciphertext that is empty or not whole blocks cannot carry
         * valid PKCS#7 padding: the same "broken peer" case as a bad pad. */
        if (len == 0 || len % MKC_AES_BLOCK != 0 || len > (size_t)INT_MAX) {
            ret = MK_ERR_BAD_RECORD_MAC;
            goto out;
        }
        /* EVP writes at most len - 1 bytes here (it holds back the last
         * block and strips at least one pad byte): len always suffices. */
        need = len;
    }
    if (cap < need) {
        ret = MK_ERR_BUFFER;
        goto out;
    }
    OSSL_GUARD(EVP_CipherInit_ex2(ctx, NULL, NULL, iv, enc, NULL),
               MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_CipherUpdate(ctx, out, &n1, in, (int)len), MK_ERR_CRYPTO);
    /* Final is where the padding is checked. Its timing is not constant,
     * which is acceptable only because callers decrypt after the record MAC
     * verified (encrypt-then-MAC): a ciphertext an attacker altered never
     * gets here, so there is no padding oracle to time. */
    if (EVP_CipherFinal_ex(ctx, out + n1, &n2) != 1) {
        OSSL_FAIL_IF(enc, MK_ERR_CRYPTO);
        /* Do not leave a partial plaintext behind for a careless caller. */
        OPENSSL_cleanse(out, len);
        ret = fail(MK_ERR_BAD_RECORD_MAC);
        goto out;
    }
    OSSL_FAIL_IF(enc && (size_t)n1 + (size_t)n2 != need, MK_ERR_CRYPTO);
    *out_len = (size_t)n1 + (size_t)n2;
    ret = MK_OK;
out:
    return ret;
}

/* A context keyed for AES-256-CBC in one direction (PKCS#7 is EVP's
 * default padding), or NULL with the error queue cleared. */
static EVP_CIPHER_CTX *cbc_keyed(const uint8_t key[MKC_AES_KEY_LEN], int enc)
{
    EVP_CIPHER_CTX *ctx = NULL;

    if (!algs_ready() || algs.aes256cbc == NULL ||
        (ctx = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_CipherInit_ex2(ctx, algs.aes256cbc, key, NULL, enc, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

static int cbc_once(const uint8_t key[MKC_AES_KEY_LEN], int enc,
                    const uint8_t iv[MKC_AES_BLOCK], const uint8_t *in,
                    size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    EVP_CIPHER_CTX *ctx = cbc_keyed(key, enc);
    int ret;

    *out_len = 0;
    if (ctx == NULL)
        return MK_ERR_CRYPTO;
    ret = cbc_pass(ctx, enc, iv, in, len, out, cap, out_len);
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    return ret;
}

int mkc_cbc_encrypt(const uint8_t key[MKC_AES_KEY_LEN],
                    const uint8_t iv[MKC_AES_BLOCK], const uint8_t *pt,
                    size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    return cbc_once(key, 1, iv, pt, len, out, cap, out_len);
}

int mkc_cbc_decrypt(const uint8_t key[MKC_AES_KEY_LEN],
                    const uint8_t iv[MKC_AES_BLOCK], const uint8_t *ct,
                    size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    return cbc_once(key, 0, iv, ct, len, out, cap, out_len);
}

/* --- keyed record contexts ------------------------------------------- */

struct mkc_rec {
    EVP_CIPHER_CTX *cbc; /* keyed once, for this direction */
    EVP_MAC_CTX *mac;    /* keyed once; restarted per record */
    int enc;
};

int mkc_rec_new(const uint8_t enc_key[MKC_AES_KEY_LEN],
                const uint8_t mac_key[MKC_SHA256_LEN], int encrypt,
                mkc_rec **out)
{
    mkc_rec *r = NULL;
    int ret;

    *out = NULL;
    OSSL_FAIL_IF(!algs_ready() || algs.hmac_tmpl == NULL, MK_ERR_CRYPTO);
    r = OPENSSL_zalloc(sizeof *r);
    OSSL_FAIL_IF(r == NULL, MK_ERR_NOMEM);
    r->enc = encrypt != 0;
    r->cbc = cbc_keyed(enc_key, r->enc);
    OSSL_FAIL_IF(r->cbc == NULL, MK_ERR_CRYPTO);
    r->mac = EVP_MAC_CTX_dup(algs.hmac_tmpl);
    OSSL_FAIL_IF(r->mac == NULL, MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_MAC_init(r->mac, mac_key, MKC_SHA256_LEN, NULL),
               MK_ERR_CRYPTO);
    *out = r;
    r = NULL;
    ret = MK_OK;
out:
    mkc_rec_free(r);
    return ret;
}

void mkc_rec_free(mkc_rec *r)
{
    if (r == NULL)
        return;
    EVP_CIPHER_CTX_free(r->cbc); /* both cleanse their key material */
    EVP_MAC_CTX_free(r->mac);
    OPENSSL_free(r);
}

int mkc_rec_cbc(mkc_rec *r, const uint8_t iv[MKC_AES_BLOCK], const uint8_t *in,
                size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    return cbc_pass(r->cbc, r->enc, iv, in, len, out, cap, out_len);
}

int mkc_rec_mac(mkc_rec *r, const mkc_iov *iov, size_t n,
                uint8_t out[MKC_SHA256_LEN])
{
    size_t got = 0;
    int ret;

    /* A NULL key restarts HMAC with the key already set: the inner and
     * outer pads are not recomputed (that is the saving). */
    OSSL_GUARD(EVP_MAC_init(r->mac, NULL, 0, NULL), MK_ERR_CRYPTO);
    for (size_t i = 0; i < n; i++) {
        if (iov[i].len != 0)
            OSSL_GUARD(EVP_MAC_update(r->mac, iov[i].p, iov[i].len),
                       MK_ERR_CRYPTO);
    }
    OSSL_GUARD(EVP_MAC_final(r->mac, out, &got, MKC_SHA256_LEN), MK_ERR_CRYPTO);
    OSSL_FAIL_IF(got != MKC_SHA256_LEN, MK_ERR_CRYPTO);
    ret = MK_OK;
out:
    return ret;
}

/* ------------------------------------------------------------------ */
/* X25519                                                               */

/* 1 if all len bytes are zero, in time that depends only on len: the
 * shared secret is secret even when it is about to be rejected. */
static unsigned ct_is_zero(const uint8_t *p, size_t len)
{
    unsigned acc = 0;
    size_t i;

    for (i = 0; i < len; i++)
        acc |= p[i];
    /* acc is 0..255: (acc - 1) borrows into bit 8 only when acc == 0. */
    return ((acc - 1u) >> 8) & 1u;
}

struct mkc_x25519_key {
    EVP_PKEY *pkey;
};

int mkc_x25519_new(const uint8_t priv[MKC_X25519_LEN], mkc_x25519_key **out,
                   uint8_t pub[MKC_X25519_LEN])
{
    mkc_x25519_key *k = NULL;
    size_t n = MKC_X25519_LEN;
    int ret;

    *out = NULL;
    k = OPENSSL_zalloc(sizeof *k);
    OSSL_FAIL_IF(k == NULL, MK_ERR_NOMEM);
    /* Building the key from its scalar computes the public point: that is
     * the one scalar multiplication keygen needs, so the key is kept for
     * the derivation instead of being rebuilt (which would do a third). */
    k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv,
                                           MKC_X25519_LEN);
    OSSL_FAIL_IF(k->pkey == NULL, MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_PKEY_get_raw_public_key(k->pkey, pub, &n), MK_ERR_CRYPTO);
    OSSL_FAIL_IF(n != MKC_X25519_LEN, MK_ERR_CRYPTO);
    *out = k;
    k = NULL;
    ret = MK_OK;
out:
    mkc_x25519_free(k);
    return ret;
}

void mkc_x25519_free(mkc_x25519_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey); /* cleanses the private scalar */
    OPENSSL_free(k);
}

int mkc_x25519_derive(const mkc_x25519_key *k,
                      const uint8_t peer[MKC_X25519_LEN],
                      uint8_t shared[MKC_X25519_LEN])
{
    EVP_PKEY *peer_key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t tmp[MKC_X25519_LEN];
    size_t n = sizeof(tmp);
    int ret;

    memset(shared, 0, MKC_X25519_LEN);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    OSSL_FAIL_IF(ctx == NULL, MK_ERR_CRYPTO);
    /* From here on the input that can be bad is the peer's point, so every
     * failure is the peer's: MK_ERR_BAD_KEY_SHARE. */
    peer_key = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer,
                                           MKC_X25519_LEN);
    OSSL_FAIL_IF(peer_key == NULL, MK_ERR_BAD_KEY_SHARE);
    OSSL_GUARD(EVP_PKEY_derive_init(ctx), MK_ERR_BAD_KEY_SHARE);
    OSSL_GUARD(EVP_PKEY_derive_set_peer(ctx, peer_key), MK_ERR_BAD_KEY_SHARE);
    OSSL_GUARD(EVP_PKEY_derive(ctx, tmp, &n), MK_ERR_BAD_KEY_SHARE);
    OSSL_FAIL_IF(n != MKC_X25519_LEN, MK_ERR_BAD_KEY_SHARE);
    /* RFC 7748 6.1: an all-zero result means a small-order peer point.
     * OpenSSL already refuses it, but the protocol depends on this check
     * (contributory behaviour), so it does not rely on the provider. */
    OSSL_FAIL_IF(ct_is_zero(tmp, sizeof(tmp)), MK_ERR_BAD_KEY_SHARE);
    memcpy(shared, tmp, MKC_X25519_LEN);
    ret = MK_OK;
out:
    OPENSSL_cleanse(tmp, sizeof(tmp));
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer_key);
    return ret;
}

/* ------------------------------------------------------------------ */
/* RSA keys                                                             */

struct mkc_rsa {
    EVP_PKEY *pkey;
};

/* Refuses any passphrase prompt: keys must be unencrypted (crypto.h), and
 * libcrypto's default callback would otherwise read from the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Wraps pkey (taking ownership) after checking that it is a plain RSA key;
 * RSA-PSS keys and other types are refused. */
static int rsa_wrap(EVP_PKEY **pkey, mkc_rsa **out)
{
    mkc_rsa *k;
    int ret;

    OSSL_FAIL_IF(*pkey == NULL, MK_ERR_KEY_FORMAT);
    OSSL_GUARD(EVP_PKEY_is_a(*pkey, "RSA"), MK_ERR_KEY_FORMAT);
    k = OPENSSL_zalloc(sizeof(*k));
    OSSL_FAIL_IF(k == NULL, MK_ERR_NOMEM);
    k->pkey = *pkey;
    *pkey = NULL;
    *out = k;
    ret = MK_OK;
out:
    return ret;
}

int mkc_rsa_load_private(const uint8_t *pem, size_t len, mkc_rsa **out)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    int ret;

    *out = NULL;
    if (len > (size_t)INT_MAX) {
        ret = MK_ERR_KEY_FORMAT;
        goto out;
    }
    /* A read-only memory BIO over the caller's buffer: no copy of the key
     * text is made here. */
    bio = BIO_new_mem_buf(pem, (int)len);
    OSSL_FAIL_IF(bio == NULL, MK_ERR_NOMEM);
    /* Reads "PRIVATE KEY" (PKCS#8) and "RSA PRIVATE KEY" (PKCS#1). */
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    OSSL_FAIL_IF(pkey == NULL, MK_ERR_KEY_FORMAT);
    ret = rsa_wrap(&pkey, out);
out:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return ret;
}

/* Decodes DER SubjectPublicKeyInfo (spki != 0) or PKCS#1 RSAPublicKey,
 * requiring that the structure spans the whole input. */
static EVP_PKEY *decode_public_der(const uint8_t *der, size_t len, int spki)
{
    const unsigned char *p = der;
    EVP_PKEY *pkey = NULL;

    if (len > (size_t)LONG_MAX)
        goto out;
    if (spki)
        pkey = d2i_PUBKEY(NULL, &p, (long)len);
    else
        pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
    if (pkey != NULL && p != der + len) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    return pkey;
}

int mkc_rsa_load_public(const uint8_t *key, size_t len, mkc_rsa **out)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    int ret;

    *out = NULL;
    if (len == 0 || len > (size_t)INT_MAX) {
        ret = MK_ERR_KEY_FORMAT;
        goto out;
    }
    /* DER always starts with a SEQUENCE tag; PEM never does (it starts with
     * "-----BEGIN" or with explanatory text before it). */
    if (key[0] == 0x30) {
        pkey = decode_public_der(key, len, 1);
    } else {
        bio = BIO_new_mem_buf(key, (int)len);
        OSSL_FAIL_IF(bio == NULL, MK_ERR_NOMEM);
        OSSL_GUARD(PEM_read_bio(bio, &name, &header, &data, &dlen),
                   MK_ERR_KEY_FORMAT);
        OSSL_FAIL_IF(dlen < 0, MK_ERR_KEY_FORMAT);
        if (strcmp(name, PEM_STRING_PUBLIC) == 0)
            pkey = decode_public_der(data, (size_t)dlen, 1);
        else if (strcmp(name, PEM_STRING_RSA_PUBLIC) == 0)
            pkey = decode_public_der(data, (size_t)dlen, 0);
    }
    OSSL_FAIL_IF(pkey == NULL, MK_ERR_KEY_FORMAT);
    ret = rsa_wrap(&pkey, out);
out:
    EVP_PKEY_free(pkey);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(bio);
    return ret;
}

int mkc_rsa_generate(unsigned bits, mkc_rsa **out)
{
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    int ret;

    *out = NULL;
    /* The protocol's moduli (PROTOCOL.md §1): nothing else is generated. */
    if (bits != 2048 && bits != 3072 && bits != 4096) {
        ret = MK_ERR_KEY_SIZE;
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    OSSL_FAIL_IF(ctx == NULL, MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_PKEY_keygen_init(ctx), MK_ERR_CRYPTO);
    OSSL_GUARD_POS(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits),
                   MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_PKEY_generate(ctx, &pkey), MK_ERR_CRYPTO);
    ret = rsa_wrap(&pkey, out);
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    return ret;
}

unsigned mkc_rsa_bits(const mkc_rsa *k)
{
    int bits;

    if (k == NULL)
        return 0;
    bits = EVP_PKEY_get_bits(k->pkey);
    return bits > 0 ? (unsigned)bits : 0;
}

size_t mkc_rsa_size(const mkc_rsa *k)
{
    int size;

    if (k == NULL)
        return 0;
    size = EVP_PKEY_get_size(k->pkey); /* RSA: the modulus length in bytes */
    return size > 0 ? (size_t)size : 0;
}

int mkc_rsa_public_der(const mkc_rsa *k, uint8_t *out, size_t cap,
                       size_t *out_len)
{
    unsigned char *p = out;
    int need, got, ret;

    *out_len = 0;
    need = i2d_PUBKEY(k->pkey, NULL);
    OSSL_FAIL_IF(need <= 0, MK_ERR_CRYPTO);
    if (cap < (size_t)need) {
        ret = MK_ERR_BUFFER;
        goto out;
    }
    got = i2d_PUBKEY(k->pkey, &p);
    OSSL_FAIL_IF(got != need, MK_ERR_CRYPTO);
    *out_len = (size_t)got;
    ret = MK_OK;
out:
    return ret;
}

int mkc_rsa_private_pem(const mkc_rsa *k, uint8_t *out, size_t cap,
                        size_t *out_len)
{
    BIO *bio = NULL;
    char *data = NULL;
    long n;
    int ret;

    *out_len = 0;
    /* A secure-memory BIO: its buffer is cleansed when it grows and when it
     * is freed, so the encoded key does not linger in the heap. */
    bio = BIO_new(BIO_s_secmem());
    OSSL_FAIL_IF(bio == NULL, MK_ERR_NOMEM);
    /* PKCS#8 "PRIVATE KEY", unencrypted (no cipher, no passphrase). */
    OSSL_GUARD(
        PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL),
        MK_ERR_CRYPTO);
    n = BIO_get_mem_data(bio, &data);
    OSSL_FAIL_IF(n <= 0 || data == NULL, MK_ERR_CRYPTO);
    if (cap < (size_t)n) {
        ret = MK_ERR_BUFFER;
        goto out;
    }
    memcpy(out, data, (size_t)n);
    *out_len = (size_t)n;
    ret = MK_OK;
out:
    BIO_free(bio);
    return ret;
}

void mkc_rsa_free(mkc_rsa *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    OPENSSL_free(k);
}

/* ------------------------------------------------------------------ */
/* RSAES-OAEP (SHA-256, MGF1-SHA-256)                                   */

/* dst[0..len) ^= MGF1-SHA256(seed)[0..len) (RFC 8017 B.2.1). Masking in
 * place avoids a second buffer holding the mask. */
static int mgf1_xor(uint8_t *dst, size_t len, const uint8_t *seed,
                    size_t seed_len)
{
    EVP_MD_CTX *ctx = NULL;
    uint8_t block[MKC_SHA256_LEN];
    uint8_t ctr[4];
    uint32_t c;
    size_t done, i, take;
    unsigned int n;
    int ret;

    OSSL_FAIL_IF(sha256_md() == NULL, MK_ERR_CRYPTO);
    ctx = EVP_MD_CTX_new();
    OSSL_FAIL_IF(ctx == NULL, MK_ERR_NOMEM);
    for (done = 0, c = 0; done < len; done += take, c++) {
        ctr[0] = (uint8_t)(c >> 24);
        ctr[1] = (uint8_t)(c >> 16);
        ctr[2] = (uint8_t)(c >> 8);
        ctr[3] = (uint8_t)c;
        n = 0;
        OSSL_GUARD(EVP_DigestInit_ex2(ctx, algs.sha256, NULL), MK_ERR_CRYPTO);
        OSSL_GUARD(EVP_DigestUpdate(ctx, seed, seed_len), MK_ERR_CRYPTO);
        OSSL_GUARD(EVP_DigestUpdate(ctx, ctr, sizeof(ctr)), MK_ERR_CRYPTO);
        OSSL_GUARD(EVP_DigestFinal_ex(ctx, block, &n), MK_ERR_CRYPTO);
        OSSL_FAIL_IF(n != sizeof(block), MK_ERR_CRYPTO);
        take = len - done < sizeof(block) ? len - done : sizeof(block);
        for (i = 0; i < take; i++)
            dst[done + i] ^= block[i];
    }
    ret = MK_OK;
out:
    OPENSSL_cleanse(block, sizeof(block));
    EVP_MD_CTX_free(ctx);
    return ret;
}

/* EME-OAEP encoding into em[0..kl) (RFC 8017 7.1.1 step 2), for a message
 * the caller has checked fits (msg_len <= kl - OAEP_OVERHEAD):
 *   EM = 0x00 || maskedSeed || maskedDB,
 *   DB = lHash || PS (zeros) || 0x01 || M.
 * em ends up holding the message and the seed: the caller wipes it. */
static int eme_oaep_encode(uint8_t *em, size_t kl, const uint8_t *label,
                           size_t label_len, const uint8_t *msg, size_t msg_len,
                           const uint8_t seed[OAEP_HLEN])
{
    uint8_t *masked_seed = em + 1, *db = em + 1 + OAEP_HLEN;
    size_t db_len = kl - OAEP_HLEN - 1;
    int ret;

    memset(em, 0, kl);
    if ((ret = mkc_sha256(label, label_len, db)) != MK_OK)
        goto out;
    db[db_len - msg_len - 1] = 0x01;
    if (msg_len > 0)
        memcpy(db + db_len - msg_len, msg, msg_len);
    memcpy(masked_seed, seed, OAEP_HLEN);
    if ((ret = mgf1_xor(db, db_len, masked_seed, OAEP_HLEN)) != MK_OK)
        goto out;
    ret = mgf1_xor(masked_seed, OAEP_HLEN, db, db_len);
out:
    return ret;
}

int mkc_oaep_encrypt(const mkc_rsa *k, const uint8_t *label, size_t label_len,
                     const uint8_t *msg, size_t msg_len,
                     const uint8_t seed[MKC_SHA256_LEN], uint8_t *out,
                     size_t cap, size_t *out_len)
{
    uint8_t em[MKC_RSA_MAX_BYTES];
    EVP_PKEY_CTX *ctx = NULL;
    size_t kl, outl;
    int ret;

    *out_len = 0;
    kl = mkc_rsa_size(k);
    /* The encoded block lives on the stack, sized for the largest modulus
     * the protocol allows; anything smaller than the OAEP overhead cannot
     * hold even an empty message. */
    if (kl < OAEP_OVERHEAD || kl > MKC_RSA_MAX_BYTES) {
        ret = MK_ERR_KEY_SIZE;
        goto out;
    }
    if (msg_len > kl - OAEP_OVERHEAD) {
        ret = MK_ERR_USAGE; /* RFC 8017 7.1.1 step 1b: message too long */
        goto out;
    }
    if (cap < kl) {
        ret = MK_ERR_BUFFER;
        goto out;
    }

    if ((ret = eme_oaep_encode(em, kl, label, label_len, msg, msg_len, seed)) !=
        MK_OK)
        goto out;

    /* The raw RSA public operation (RFC 8017 5.1.1). EM < n because its
     * first byte is zero and n has exactly kl bytes. */
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    OSSL_FAIL_IF(ctx == NULL, MK_ERR_NOMEM);
    outl = cap;
    OSSL_GUARD(EVP_PKEY_encrypt_init(ctx), MK_ERR_CRYPTO);
    OSSL_GUARD_POS(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING),
                   MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_PKEY_encrypt(ctx, out, &outl, em, kl), MK_ERR_CRYPTO);
    OSSL_FAIL_IF(outl != kl, MK_ERR_CRYPTO);
    *out_len = kl;
    ret = MK_OK;
out:
    /* em holds the message and the seed, both secret. */
    OPENSSL_cleanse(em, sizeof(em));
    EVP_PKEY_CTX_free(ctx);
    return ret;
}

/* 1 if a < b, else 0, computed without a branch or a comparison the
 * compiler could turn into one (the borrow of a - b, corrected for the top
 * bits of a and b). */
static size_t ct_lt(size_t a, size_t b)
{
    return (a ^ ((a ^ b) | ((a - b) ^ b))) >> (sizeof(size_t) * CHAR_BIT - 1);
}

int mkc_oaep_decrypt(const mkc_rsa *k, const uint8_t *label, size_t label_len,
                     const uint8_t *ct, size_t ct_len, uint8_t *out, size_t cap,
                     size_t *out_len)
{
    uint8_t buf[MKC_RSA_MAX_BYTES];
    EVP_PKEY_CTX *ctx = NULL;
    const EVP_MD *md;
    void *label_copy = NULL;
    size_t kl, n = 0, copy, ok;
    int ret, rc;

    /* Every failure is MK_ERR_CRYPTO with *out_len == 0 and a clear error
     * queue (crypto.h): the caller folds the result into a constant-time
     * select, and any failure the peer could tell apart would be a Manger
     * oracle: enough such answers decrypt a recorded key transport without
     * the private key. */
    *out_len = 0;
    md = sha256_md();
    kl = mkc_rsa_size(k);
    /* The ciphertext length is public, so rejecting a wrong one early leaks
     * nothing; it also bounds what lands in buf. The set-up below depends
     * on the key and the label only. */
    OSSL_FAIL_IF(md == NULL || kl == 0 || kl > MKC_RSA_MAX_BYTES ||
                     ct_len != kl || label_len > (size_t)INT_MAX,
                 MK_ERR_CRYPTO);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    OSSL_FAIL_IF(ctx == NULL, MK_ERR_CRYPTO);
    OSSL_GUARD(EVP_PKEY_decrypt_init(ctx), MK_ERR_CRYPTO);
    OSSL_GUARD_POS(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING),
                   MK_ERR_CRYPTO);
    OSSL_GUARD_POS(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md), MK_ERR_CRYPTO);
    OSSL_GUARD_POS(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md), MK_ERR_CRYPTO);
    /* set0 takes ownership of an OPENSSL_malloc'd label only on success.
     * A fresh context's label is already empty, so an empty label needs no
     * call (and no zero-byte allocation). */
    if (label_len > 0) {
        label_copy = OPENSSL_memdup(label, label_len);
        OSSL_FAIL_IF(label_copy == NULL, MK_ERR_CRYPTO);
        OSSL_GUARD_POS(
            EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label_copy, (int)label_len),
            MK_ERR_CRYPTO);
        label_copy = NULL;
    }

    /*
     * From the decryption on, nothing branches on its outcome. libcrypto
     * decrypts into a scratch buffer (it wants room for a whole modulus);
     * success is folded into a mask (the call returned 1, and the message
     * fits both the modulus and cap); the same kl-or-cap bytes of out are
     * always written, the message under the mask and zeros elsewhere; the
     * error queue is always cleared; the result code is selected, not
     * branched to. What libcrypto itself does inside EVP_PKEY_decrypt is
     * outside this function (docs/PROTOCOL.md §12.1). Whether cap was big
     * enough depends only on the length of a message that decoded
     * correctly, which whoever built the ciphertext chose: no oracle.
     */
    n = sizeof(buf);
    rc = EVP_PKEY_decrypt(ctx, buf, &n, ct, ct_len);
    ok = mkc_ct_is_zero((size_t)((unsigned)rc ^ 1u)) & (ct_lt(kl, n) ^ 1u) &
         (ct_lt(cap, n) ^ 1u);
    n &= (size_t)0 - ok;
    copy = cap < kl ? cap : kl; /* public: the modulus and the caller's cap */
    for (size_t i = 0; i < copy; i++)
        out[i] = (uint8_t)(buf[i] & (0u - ct_lt(i, n)));
    *out_len = n;
    ERR_clear_error();
    ret = (int)(((size_t)0 - (ok ^ 1u)) & (size_t)MK_ERR_CRYPTO);
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_free(label_copy);
    EVP_PKEY_CTX_free(ctx);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Randomness, constant time, wiping                                    */

int mkc_random(uint8_t *out, size_t len)
{
    size_t chunk;
    int ret;

    /* RAND_bytes takes an int; there is deliberately no fallback source. */
    while (len > 0) {
        chunk = len > (size_t)INT_MAX ? (size_t)INT_MAX : len;
        OSSL_GUARD(RAND_bytes(out, (int)chunk), MK_ERR_RANDOM);
        out += chunk;
        len -= chunk;
    }
    ret = MK_OK;
out:
    return ret;
}

int mkc_ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

unsigned mkc_ct_is_zero(size_t x)
{
    /* x | -x has its top bit set iff x != 0. */
    return (unsigned)(((x | (0u - x)) >> (sizeof(size_t) * CHAR_BIT - 1)) ^ 1u);
}

void mkc_ct_select(uint8_t *dst, unsigned cond, const uint8_t *a,
                   const uint8_t *b, size_t len)
{
    /* cond 1 -> 0xff, cond 0 -> 0x00, with no branch on cond. */
    const uint8_t mask = (uint8_t)(0u - (cond & 1u));
    size_t i;

    for (i = 0; i < len; i++)
        dst[i] = (uint8_t)((a[i] & mask) | (b[i] & (uint8_t)~mask));
}

void mkc_cleanse(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

/* ------------------------------------------------------------------ */
/* Memory for long-lived secrets                                        */

/*
 * Each allocation gets its own anonymous mapping, rounded up to whole pages.
 * mlock and MADV_DONTDUMP work on pages, and locks do not nest: locking a
 * heap object would lock (and its free would unlock) whatever else shares
 * its pages. A private mapping avoids that at the cost of a page per secret,
 * which is fine for the few long-lived keys (server key, ticket keys) this
 * is meant for. OPENSSL_secure_malloc was not used because it only locks
 * anything after the application sized a secure heap with
 * CRYPTO_secure_malloc_init, which a library cannot assume.
 *
 * MADV_DONTFORK is deliberately not set: tests and supervisors may fork
 * without exec and still need the keys in the child.
 */
static size_t page_round(size_t len)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t page = ps > 0 ? (size_t)ps : 4096;

    if (len > SIZE_MAX - (page - 1))
        return 0;
    return (len + page - 1) / page * page;
}

static void exclude_from_core(void *p, size_t len)
{
#ifdef MADV_DONTDUMP
    (void)madvise(p, len, MADV_DONTDUMP); /* best effort, like mlock */
#else
    (void)p;
    (void)len;
#endif
}

void *mkc_secure_alloc(size_t len)
{
    size_t maplen = page_round(len);
    void *p;

    if (len == 0 || maplen == 0)
        return NULL;
    /* Anonymous mappings come zero-filled. */
    p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* An unprivileged process has a small RLIMIT_MEMLOCK; when it is used
     * up the secret stays usable, only swappable (crypto.h). */
    (void)mlock(p, maplen);
    exclude_from_core(p, maplen);
    return p;
}

void mkc_secure_free(void *p, size_t len)
{
    size_t maplen = page_round(len);

    if (p == NULL || len == 0 || maplen == 0)
        return;
    OPENSSL_cleanse(p, maplen);
    (void)munlock(p, maplen); /* fails harmlessly if mlock had failed */
    (void)munmap(p, maplen);
}
