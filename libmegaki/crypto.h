/*
 * crypto.h -- the one narrow adapter between libmegaki and libcrypto.
 *
 * crypto_evp.c is the only file in libmegaki that includes <openssl/...>.
 * Every function returns MK_OK or an mk_err code; every EVP return value is
 * checked, and on failure the OpenSSL error queue is cleared so that no
 * stale error leaks into a later, unrelated call.
 *
 * Secrets passed in are borrowed; the adapter wipes its own copies (stack
 * buffers, EVP contexts are freed with their *_free which cleanses).
 */
#ifndef MK_CRYPTO_H
#define MK_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "megaki.h"

#define MKC_SHA256_LEN    32
#define MKC_AES_KEY_LEN   32
#define MKC_AES_BLOCK     16
#define MKC_X25519_LEN    32
#define MKC_RSA_MAX_BYTES 512 /* 4096-bit modulus */

/* A gather list for multi-part MAC and hash inputs. */
typedef struct mkc_iov {
    const uint8_t *p;
    size_t len;
} mkc_iov;

/* --- hashing ------------------------------------------------------- */

MK_MUST_CHECK int mkc_sha256(const uint8_t *msg, size_t len,
                             uint8_t out[MKC_SHA256_LEN]);

/* Running SHA-256 (the transcript). */
typedef struct mkc_hash mkc_hash;
MK_MUST_CHECK int mkc_hash_new(mkc_hash **out);
MK_MUST_CHECK int mkc_hash_update(mkc_hash *h, const uint8_t *p, size_t len);
/* Digest of everything so far, without disturbing the running state. */
MK_MUST_CHECK int mkc_hash_peek(const mkc_hash *h, uint8_t out[MKC_SHA256_LEN]);
void mkc_hash_free(mkc_hash *h);

/* --- MAC and KDF ----------------------------------------------------- */

/* HMAC-SHA256 over the concatenation of iov[0..n). */
MK_MUST_CHECK int mkc_hmac_sha256(const uint8_t *key, size_t key_len,
                                  const mkc_iov *iov, size_t n,
                                  uint8_t out[MKC_SHA256_LEN]);

/* RFC 5869. salt may be NULL with salt_len 0 (then HashLen zeros). */
MK_MUST_CHECK int mkc_hkdf_extract(const uint8_t *salt, size_t salt_len,
                                   const uint8_t *ikm, size_t ikm_len,
                                   uint8_t prk[MKC_SHA256_LEN]);
/* out_len <= 255 * 32, else MK_ERR_USAGE. */
MK_MUST_CHECK int mkc_hkdf_expand(const uint8_t *prk, size_t prk_len,
                                  const uint8_t *info, size_t info_len,
                                  uint8_t *out, size_t out_len);

/* --- AES-256-CBC with PKCS#7 padding --------------------------------- */

/* out needs len + 16 - len % 16 bytes (always at least one padding byte). */
MK_MUST_CHECK int mkc_cbc_encrypt(const uint8_t key[MKC_AES_KEY_LEN],
                                  const uint8_t iv[MKC_AES_BLOCK],
                                  const uint8_t *pt, size_t len, uint8_t *out,
                                  size_t cap, size_t *out_len);
/* len must be a positive multiple of 16; out needs len bytes. Any padding
 * error gives MK_ERR_BAD_RECORD_MAC (callers only decrypt after a good MAC,
 * so a bad pad means a broken peer, and it gets the generic error). */
MK_MUST_CHECK int mkc_cbc_decrypt(const uint8_t key[MKC_AES_KEY_LEN],
                                  const uint8_t iv[MKC_AES_BLOCK],
                                  const uint8_t *ct, size_t len, uint8_t *out,
                                  size_t cap, size_t *out_len);

/*
 * Record protection for one direction of one session: an AES-256-CBC
 * context and an HMAC-SHA256 context keyed once, then reused for every
 * record (keying per record cost more than the crypto of a small record).
 * Not thread-safe: a session is used by one thread at a time.
 */
typedef struct mkc_rec mkc_rec;
MK_MUST_CHECK int mkc_rec_new(const uint8_t enc_key[MKC_AES_KEY_LEN],
                              const uint8_t mac_key[MKC_SHA256_LEN],
                              int encrypt, mkc_rec **out);
void mkc_rec_free(mkc_rec *r);
/* Encrypt (pad) or decrypt (unpad) as created; same rules, errors and
 * buffer sizes as mkc_cbc_encrypt / mkc_cbc_decrypt. */
MK_MUST_CHECK int mkc_rec_cbc(mkc_rec *r, const uint8_t iv[MKC_AES_BLOCK],
                              const uint8_t *in, size_t len, uint8_t *out,
                              size_t cap, size_t *out_len);
/* HMAC-SHA256 under the direction's MAC key over iov[0..n). */
MK_MUST_CHECK int mkc_rec_mac(mkc_rec *r, const mkc_iov *iov, size_t n,
                              uint8_t out[MKC_SHA256_LEN]);

/* --- X25519 ---------------------------------------------------------- */

/* An ephemeral key kept for its one derivation: building it from the
 * 32-byte private scalar computes the public key (RFC 7748 clamping is
 * applied by the primitive), so keygen + derive is two scalar
 * multiplications, not three. */
typedef struct mkc_x25519_key mkc_x25519_key;
MK_MUST_CHECK int mkc_x25519_new(const uint8_t priv[MKC_X25519_LEN],
                                 mkc_x25519_key **out,
                                 uint8_t pub[MKC_X25519_LEN]);
/* Shared secret with the peer's point; MK_ERR_BAD_KEY_SHARE (output
 * zeroed) if it is all zeros (small-order peer point) or the derivation
 * fails. */
MK_MUST_CHECK int mkc_x25519_derive(const mkc_x25519_key *k,
                                    const uint8_t peer[MKC_X25519_LEN],
                                    uint8_t shared[MKC_X25519_LEN]);
void mkc_x25519_free(mkc_x25519_key *k);

/* --- RSA ------------------------------------------------------------- */

typedef struct mkc_rsa mkc_rsa; /* wraps an EVP_PKEY */

/* Private key from PEM (PKCS#8 or PKCS#1, unencrypted). */
MK_MUST_CHECK int mkc_rsa_load_private(const uint8_t *pem, size_t len,
                                       mkc_rsa **out);
/* Public key from PEM or DER SubjectPublicKeyInfo (also accepts PKCS#1
 * "RSA PUBLIC KEY" PEM). */
MK_MUST_CHECK int mkc_rsa_load_public(const uint8_t *key, size_t len,
                                      mkc_rsa **out);
MK_MUST_CHECK int mkc_rsa_generate(unsigned bits, mkc_rsa **out);
unsigned mkc_rsa_bits(const mkc_rsa *k);
size_t mkc_rsa_size(const mkc_rsa *k); /* modulus bytes */
MK_MUST_CHECK int mkc_rsa_public_der(const mkc_rsa *k, uint8_t *out, size_t cap,
                                     size_t *out_len);
MK_MUST_CHECK int mkc_rsa_private_pem(const mkc_rsa *k, uint8_t *out,
                                      size_t cap, size_t *out_len);
void mkc_rsa_free(mkc_rsa *k);

/*
 * RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017 §7.1), encrypting with
 * a caller-supplied 32-byte seed so that the protocol's test vectors are
 * reproducible (the seed comes from the injected random source). EME-OAEP
 * encoding is done here, then the raw RSA public operation through EVP with
 * RSA_NO_PADDING. msg_len <= k - 2*32 - 2. out needs mkc_rsa_size() bytes.
 */
MK_MUST_CHECK int mkc_oaep_encrypt(const mkc_rsa *k, const uint8_t *label,
                                   size_t label_len, const uint8_t *msg,
                                   size_t msg_len,
                                   const uint8_t seed[MKC_SHA256_LEN],
                                   uint8_t *out, size_t cap, size_t *out_len);
/*
 * RSAES-OAEP decryption through EVP_PKEY_decrypt. Every failure (bad
 * length, not reduced, bad padding, wrong label, a message longer than cap)
 * returns the one code MK_ERR_CRYPTO with *out_len = 0, so callers have a
 * single failure value to fold into a constant-time select. After the
 * decryption itself the function does the same work either way: it writes
 * out[0 .. min(cap, modulus bytes)) (the message, then zeros; all zeros on
 * failure) and clears the thread's error queue, on success too.
 */
MK_MUST_CHECK int mkc_oaep_decrypt(const mkc_rsa *k, const uint8_t *label,
                                   size_t label_len, const uint8_t *ct,
                                   size_t ct_len, uint8_t *out, size_t cap,
                                   size_t *out_len);

/* --- randomness, constant time, wiping ------------------------------- */

/* RAND_bytes; MK_ERR_RANDOM on failure (never a fallback). */
MK_MUST_CHECK int mkc_random(uint8_t *out, size_t len);
/* 1 if equal, 0 if not; time depends only on len. */
MK_MUST_CHECK int mkc_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);
/* 1 if x == 0, else 0, without a branch on x. */
unsigned mkc_ct_is_zero(size_t x);
/* dst = cond ? a : b, byte by byte, without a branch on cond (0 or 1). */
void mkc_ct_select(uint8_t *dst, unsigned cond, const uint8_t *a,
                   const uint8_t *b, size_t len);
void mkc_cleanse(void *p, size_t len);

/* Memory for long-lived secrets: locked (mlock) where the OS allows and
 * excluded from core dumps; zeroed on free. Falls back to ordinary memory
 * if locking is refused (an unprivileged process has a small mlock limit). */
void *mkc_secure_alloc(size_t len);
void mkc_secure_free(void *p, size_t len);

#endif /* MK_CRYPTO_H */
