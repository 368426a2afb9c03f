/*
 * test_crypto.c -- the crypto adapter (crypto.h) against Project Wycheproof
 * vectors and a few RFC known answers.
 *
 * Every vector goes through the mkc_* functions, never through libcrypto
 * directly, so what is tested is exactly what libmegaki calls. Vectors are
 * read from tests/vectors/wycheproof/ relative to the working directory
 * (ctest runs this from the project root).
 *
 * Result handling: every "valid" case must pass
 * and every "invalid" case must be rejected; each file prints its counts and
 * the run + skipped total must equal the file's numberOfTests, so a parsing
 * slip cannot silently drop cases. "acceptable" cases are decided per file
 * below (only X25519 has them).
 */
#include <setjmp.h> /* cmocka needs these four before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* The one libcrypto include outside crypto_evp.c, test-only: it checks the
 * adapter's promise that a failed call leaves the thread's OpenSSL error
 * queue empty (a stale entry read later would give a decryption failure a
 * second, observable signal: a Bleichenbacher/Manger oracle), which
 * crypto.h cannot express. */
#include <openssl/err.h>

#include "crypto.h"
#include "testlib.h"

#define VECTOR_DIR "tests/vectors/wycheproof/"

/* ------------------------------------------------------------------ */
/* Helpers: files, JSON, hex, counts                                    */

static cJSON *load_vectors(const char *file)
{
    char path[256];
    size_t len;
    uint8_t *text;
    cJSON *root;

    snprintf(path, sizeof(path), "%s%s", VECTOR_DIR, file);
    text = tl_load(path, &len);
    root = cJSON_ParseWithLength((const char *)text, len);
    free(text);
    if (root == NULL)
        fail_msg("%s is not valid JSON", path);
    return root;
}

static const cJSON *get(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (it == NULL)
        fail_msg("missing field \"%s\"", name);
    return it;
}

static const char *get_str(const cJSON *obj, const char *name)
{
    const cJSON *it = get(obj, name);

    if (!cJSON_IsString(it))
        fail_msg("field \"%s\" is not a string", name);
    return it->valuestring;
}

static int get_int(const cJSON *obj, const char *name)
{
    const cJSON *it = get(obj, name);

    if (!cJSON_IsNumber(it))
        fail_msg("field \"%s\" is not a number", name);
    return it->valueint;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a hex string into a fresh buffer (never NULL, even when empty, so
 * that callers can pass it without special cases). */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex), i;
    uint8_t *out;

    if (n % 2 != 0)
        fail_msg("odd-length hex string");
    out = malloc(n / 2 + 1);
    assert_non_null(out);
    for (i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            fail_msg("bad hex digit");
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

static uint8_t *get_hex(const cJSON *obj, const char *name, size_t *len)
{
    return unhex(get_str(obj, name), len);
}

/* Fixed-size hex for known-answer constants in the tests below. */
static void unhex_fixed(const char *hex, uint8_t *out, size_t len)
{
    size_t n;
    uint8_t *tmp = unhex(hex, &n);

    assert_int_equal(n, len);
    memcpy(out, tmp, len);
    free(tmp);
}

enum expect { EXPECT_VALID, EXPECT_INVALID, EXPECT_ACCEPTABLE };

static enum expect get_result(const cJSON *t)
{
    const char *r = get_str(t, "result");

    if (strcmp(r, "valid") == 0)
        return EXPECT_VALID;
    if (strcmp(r, "invalid") == 0)
        return EXPECT_INVALID;
    if (strcmp(r, "acceptable") == 0)
        return EXPECT_ACCEPTABLE;
    fail_msg("unknown result \"%s\"", r);
    return EXPECT_INVALID;
}

static int has_flag(const cJSON *t, const char *flag)
{
    const cJSON *f;

    cJSON_ArrayForEach(f, get(t, "flags"))
    {
        if (cJSON_IsString(f) && strcmp(f->valuestring, flag) == 0)
            return 1;
    }
    return 0;
}

struct counts {
    int run, valid, invalid, acceptable, skipped;
};

/* Prints the per-file line and checks that no case went missing. */
static void report(const char *name, const cJSON *root, const struct counts *c,
                   const char *extra)
{
    printf("wycheproof %s: %d run, %d valid passed, %d invalid rejected, "
           "%d acceptable%s\n",
           name, c->run, c->valid, c->invalid, c->acceptable, extra);
    assert_int_equal(c->valid + c->invalid + c->acceptable, c->run);
    assert_int_equal(c->run + c->skipped, get_int(root, "numberOfTests"));
}

static void assert_queue_clear(int tc)
{
    if (ERR_peek_error() != 0)
        fail_msg("tcId %d: OpenSSL error queue not cleared", tc);
}

/* ------------------------------------------------------------------ */
/* RSA-OAEP-SHA256 decryption                                           */

/* Defined with the key-format helpers below. */
static char *pem_wrap(const char *label, const uint8_t *der, size_t len);

/* mkc_rsa_load_private, the loader libmegaki uses for key files, on DER
 * armoured under label as such a file would be. */
static int load_private_pem(const char *label, const uint8_t *der, size_t len,
                            mkc_rsa **out)
{
    char *pem = pem_wrap(label, der, len);
    int ret = mkc_rsa_load_private((const uint8_t *)pem, strlen(pem), out);

    free(pem);
    return ret;
}

/* A group's private key: the PKCS#8 DER the vectors carry, through the
 * library's loader. */
static mkc_rsa *load_group_key(const cJSON *g)
{
    size_t der_len;
    uint8_t *der = get_hex(g, "privateKeyPkcs8", &der_len);
    mkc_rsa *key = NULL;

    assert_int_equal(load_private_pem("PRIVATE KEY", der, der_len, &key),
                     MK_OK);
    free(der);
    return key;
}

static void run_oaep_file(const char *name, const char *file, int bits)
{
    cJSON *root = load_vectors(file);
    const cJSON *g, *t;
    struct counts c = {0};

    cJSON_ArrayForEach(g, get(root, "testGroups"))
    {
        mkc_rsa *key = load_group_key(g);

        assert_int_equal(mkc_rsa_bits(key), (unsigned)bits);
        assert_int_equal(get_int(g, "keySize"), bits);
        assert_int_equal(mkc_rsa_size(key), (size_t)bits / 8);

        cJSON_ArrayForEach(t, get(g, "tests"))
        {
            int tc = get_int(t, "tcId");
            size_t ct_len, msg_len, label_len, out_len = 12345;
            uint8_t *ct = get_hex(t, "ct", &ct_len);
            uint8_t *msg = get_hex(t, "msg", &msg_len);
            uint8_t *label = get_hex(t, "label", &label_len);
            uint8_t out[MKC_RSA_MAX_BYTES];
            enum expect e = get_result(t);
            int ret;

            ret = mkc_oaep_decrypt(key, label, label_len, ct, ct_len, out,
                                   sizeof(out), &out_len);
            c.run++;
            if (e == EXPECT_VALID) {
                if (ret != MK_OK)
                    fail_msg("%s tcId %d: valid case rejected (%d)", name, tc,
                             ret);
                if (out_len != msg_len || memcmp(out, msg, msg_len) != 0)
                    fail_msg("%s tcId %d: wrong plaintext", name, tc);
                c.valid++;
            } else if (e == EXPECT_INVALID) {
                /* One failure value, one length, a clean queue: nothing
                 * tells the kinds of bad ciphertext apart (Manger). */
                if (ret != MK_ERR_CRYPTO || out_len != 0)
                    fail_msg("%s tcId %d: invalid case gave %d, out_len %zu",
                             name, tc, ret, out_len);
                c.invalid++;
            } else {
                c.acceptable++; /* none in these files; must not crash */
            }
            assert_queue_clear(tc);
            free(ct);
            free(msg);
            free(label);
        }
        mkc_rsa_free(key);
    }
    report(name, root, &c, "");
    cJSON_Delete(root);
}

static void test_wycheproof_oaep_2048(void **state)
{
    (void)state;
    run_oaep_file("rsa_oaep_2048", "rsa_oaep_2048_sha256_mgf1sha256_test.json",
                  2048);
}

static void test_wycheproof_oaep_3072(void **state)
{
    (void)state;
    run_oaep_file("rsa_oaep_3072", "rsa_oaep_3072_sha256_mgf1sha256_test.json",
                  3072);
}

static void test_wycheproof_oaep_4096(void **state)
{
    (void)state;
    run_oaep_file("rsa_oaep_4096", "rsa_oaep_4096_sha256_mgf1sha256_test.json",
                  4096);
}

/* ------------------------------------------------------------------ */
/* AES-CBC-PKCS5                                                        */

/*
 * The adapter is AES-256 only (the record layer's cipher), so only the
 * keySize 256 group is run. The 128- and 192-bit groups are counted as
 * skipped and checked nowhere; the printed line says how many.
 */
static void test_wycheproof_aes_cbc(void **state)
{
    cJSON *root = load_vectors("aes_cbc_pkcs5_test.json");
    const cJSON *g, *t;
    struct counts c = {0};
    char extra[96];

    (void)state;
    cJSON_ArrayForEach(g, get(root, "testGroups"))
    {
        if (get_int(g, "keySize") != 256) {
            c.skipped += cJSON_GetArraySize(get(g, "tests"));
            continue;
        }
        assert_int_equal(get_int(g, "ivSize"), 128);
        cJSON_ArrayForEach(t, get(g, "tests"))
        {
            int tc = get_int(t, "tcId");
            size_t key_len, iv_len, msg_len, ct_len, out_len = 12345;
            uint8_t *key = get_hex(t, "key", &key_len);
            uint8_t *iv = get_hex(t, "iv", &iv_len);
            uint8_t *msg = get_hex(t, "msg", &msg_len);
            uint8_t *ct = get_hex(t, "ct", &ct_len);
            uint8_t *out = malloc(msg_len + ct_len + MKC_AES_BLOCK);
            enum expect e = get_result(t);
            int ret;

            assert_non_null(out);
            assert_int_equal(key_len, MKC_AES_KEY_LEN);
            assert_int_equal(iv_len, MKC_AES_BLOCK);
            c.run++;
            ret = mkc_cbc_decrypt(key, iv, ct, ct_len, out,
                                  msg_len + ct_len + MKC_AES_BLOCK, &out_len);
            if (e == EXPECT_VALID) {
                if (ret != MK_OK || out_len != msg_len ||
                    memcmp(out, msg, msg_len) != 0)
                    fail_msg("aes_cbc tcId %d: decrypt failed (%d)", tc, ret);
                ret =
                    mkc_cbc_encrypt(key, iv, msg, msg_len, out,
                                    msg_len + ct_len + MKC_AES_BLOCK, &out_len);
                if (ret != MK_OK || out_len != ct_len ||
                    memcmp(out, ct, ct_len) != 0)
                    fail_msg("aes_cbc tcId %d: encrypt mismatch (%d)", tc, ret);
                c.valid++;
            } else if (e == EXPECT_INVALID) {
                /* BadPadding and the empty ciphertext (NoPadding) both give
                 * the generic record error. */
                if (ret != MK_ERR_BAD_RECORD_MAC || out_len != 0)
                    fail_msg("aes_cbc tcId %d: invalid case gave %d", tc, ret);
                c.invalid++;
            } else {
                c.acceptable++;
            }
            assert_queue_clear(tc);
            free(key);
            free(iv);
            free(msg);
            free(ct);
            free(out);
        }
    }
    snprintf(extra, sizeof(extra),
             ", %d skipped (128/192-bit keys; adapter is AES-256 only)",
             c.skipped);
    report("aes_cbc_pkcs5", root, &c, extra);
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------ */
/* HMAC-SHA256                                                          */

static void test_wycheproof_hmac(void **state)
{
    cJSON *root = load_vectors("hmac_sha256_test.json");
    const cJSON *g, *t;
    struct counts c = {0};

    (void)state;
    cJSON_ArrayForEach(g, get(root, "testGroups"))
    {
        int tag_bytes = get_int(g, "tagSize") / 8;

        assert_true(tag_bytes > 0 && tag_bytes <= MKC_SHA256_LEN);
        cJSON_ArrayForEach(t, get(g, "tests"))
        {
            int tc = get_int(t, "tcId");
            size_t key_len, msg_len, tag_len, third;
            uint8_t *key = get_hex(t, "key", &key_len);
            uint8_t *msg = get_hex(t, "msg", &msg_len);
            uint8_t *tag = get_hex(t, "tag", &tag_len);
            uint8_t mac[MKC_SHA256_LEN], mac3[MKC_SHA256_LEN];
            mkc_iov one[1], three[3];
            enum expect e = get_result(t);
            int match;

            assert_int_equal(tag_len, (size_t)tag_bytes);
            one[0].p = msg;
            one[0].len = msg_len;
            assert_int_equal(mkc_hmac_sha256(key, key_len, one, 1, mac), MK_OK);
            /* The same message as a three-part gather list (one part may
             * be empty) must give the same MAC. */
            third = msg_len / 3;
            three[0].p = msg;
            three[0].len = third;
            three[1].p = msg + third;
            three[1].len = third;
            three[2].p = msg + 2 * third;
            three[2].len = msg_len - 2 * third;
            assert_int_equal(mkc_hmac_sha256(key, key_len, three, 3, mac3),
                             MK_OK);
            assert_memory_equal(mac, mac3, sizeof(mac));

            match = mkc_ct_equal(mac, tag, (size_t)tag_bytes);
            c.run++;
            if (e == EXPECT_VALID) {
                if (!match)
                    fail_msg("hmac tcId %d: valid tag not matched", tc);
                c.valid++;
            } else if (e == EXPECT_INVALID) {
                if (match)
                    fail_msg("hmac tcId %d: modified tag matched", tc);
                c.invalid++;
            } else {
                c.acceptable++;
            }
            assert_queue_clear(tc);
            free(key);
            free(msg);
            free(tag);
        }
    }
    report("hmac_sha256", root, &c, "");
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------ */
/* HKDF-SHA256                                                          */

static void test_wycheproof_hkdf(void **state)
{
    cJSON *root = load_vectors("hkdf_sha256_test.json");
    const cJSON *g, *t;
    struct counts c = {0};

    (void)state;
    cJSON_ArrayForEach(g, get(root, "testGroups"))
    {
        cJSON_ArrayForEach(t, get(g, "tests"))
        {
            int tc = get_int(t, "tcId");
            int size = get_int(t, "size");
            size_t ikm_len, salt_len, info_len, okm_len;
            uint8_t *ikm = get_hex(t, "ikm", &ikm_len);
            uint8_t *salt = get_hex(t, "salt", &salt_len);
            uint8_t *info = get_hex(t, "info", &info_len);
            uint8_t *okm = get_hex(t, "okm", &okm_len);
            uint8_t prk[MKC_SHA256_LEN];
            uint8_t *out;
            enum expect e = get_result(t);
            int ret;

            assert_true(size >= 0);
            out = malloc((size_t)size + 1);
            assert_non_null(out);
            /* An empty salt is passed as (NULL, 0), the form crypto.h
             * documents for "no salt". */
            ret = mkc_hkdf_extract(salt_len > 0 ? salt : NULL, salt_len, ikm,
                                   ikm_len, prk);
            if (ret == MK_OK)
                ret = mkc_hkdf_expand(prk, sizeof(prk), info, info_len, out,
                                      (size_t)size);
            c.run++;
            if (e == EXPECT_VALID) {
                if (ret != MK_OK || okm_len != (size_t)size ||
                    memcmp(out, okm, okm_len) != 0)
                    fail_msg("hkdf tcId %d: wrong output (%d)", tc, ret);
                c.valid++;
            } else if (e == EXPECT_INVALID) {
                /* The only invalid kind is SizeTooLarge, which the expand
                 * step must refuse as a caller error. */
                if (!has_flag(t, "SizeTooLarge"))
                    fail_msg("hkdf tcId %d: unexpected invalid kind", tc);
                if (ret != MK_ERR_USAGE)
                    fail_msg("hkdf tcId %d: size %d not refused (%d)", tc, size,
                             ret);
                c.invalid++;
            } else {
                c.acceptable++;
            }
            assert_queue_clear(tc);
            free(ikm);
            free(salt);
            free(info);
            free(okm);
            free(out);
        }
    }
    report("hkdf_sha256", root, &c, "");
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------ */
/* X25519                                                               */

/*
 * Each case runs the handshake's two calls: mkc_x25519_new on the private
 * scalar (what both sides do for their ephemeral share), then
 * mkc_x25519_derive against the peer's point.
 *
 * "acceptable" cases are decided by their expected output:
 *   - shared secret all zero (low-order peer points, flag ZeroSharedSecret):
 *     Megaki must reject them (crypto.h, PROTOCOL.md key share rules), so
 *     the derivation has to return MK_ERR_BAD_KEY_SHARE, the code both
 *     handshake sides act on, and zero its output;
 *   - anything else (twist points, non-canonical u-coordinates): RFC 7748
 *     defines the result (mask the top bit, reduce mod p), and the adapter
 *     must compute exactly the expected shared secret.
 */
static void test_wycheproof_x25519(void **state)
{
    static const uint8_t zero[MKC_X25519_LEN];
    cJSON *root = load_vectors("x25519_test.json");
    const cJSON *g, *t;
    struct counts c = {0};
    int acc_zero = 0, acc_computed = 0;
    char extra[128];

    (void)state;
    cJSON_ArrayForEach(g, get(root, "testGroups"))
    {
        assert_string_equal(get_str(g, "curve"), "curve25519");
        cJSON_ArrayForEach(t, get(g, "tests"))
        {
            int tc = get_int(t, "tcId");
            size_t pub_len, priv_len, sh_len;
            uint8_t *pub = get_hex(t, "public", &pub_len);
            uint8_t *priv = get_hex(t, "private", &priv_len);
            uint8_t *want = get_hex(t, "shared", &sh_len);
            uint8_t got[MKC_X25519_LEN], own[MKC_X25519_LEN];
            enum expect e = get_result(t);
            int sizes_ok =
                pub_len == MKC_X25519_LEN && priv_len == MKC_X25519_LEN;
            mkc_x25519_key *k = NULL;
            int ret = MK_ERR_BAD_KEY_SHARE;

            memset(got, 0xa5, sizeof(got));
            /* The adapter takes fixed 32-byte arrays; a vector with another
             * length is rejected by construction (there are none today).
             * Every scalar is a valid private key, so building the key must
             * succeed: only the peer's point can make a case fail. */
            if (sizes_ok) {
                assert_int_equal(mkc_x25519_new(priv, &k, own), MK_OK);
                ret = mkc_x25519_derive(k, pub, got);
                mkc_x25519_free(k);
            }
            c.run++;
            if (e == EXPECT_VALID) {
                if (ret != MK_OK || sh_len != MKC_X25519_LEN ||
                    memcmp(got, want, sh_len) != 0)
                    fail_msg("x25519 tcId %d: valid case failed (%d)", tc, ret);
                c.valid++;
            } else if (e == EXPECT_INVALID) {
                if (ret == MK_OK)
                    fail_msg("x25519 tcId %d: invalid case accepted", tc);
                c.invalid++;
            } else {
                if (sh_len == MKC_X25519_LEN &&
                    memcmp(want, zero, sh_len) == 0) {
                    if (ret != MK_ERR_BAD_KEY_SHARE ||
                        memcmp(got, zero, sizeof(got)) != 0)
                        fail_msg("x25519 tcId %d: zero shared secret not "
                                 "rejected (%d)",
                                 tc, ret);
                    acc_zero++;
                } else {
                    if (ret != MK_OK || memcmp(got, want, sh_len) != 0)
                        fail_msg("x25519 tcId %d: acceptable case computed "
                                 "wrongly (%d)",
                                 tc, ret);
                    acc_computed++;
                }
                c.acceptable++;
            }
            assert_queue_clear(tc);
            free(pub);
            free(priv);
            free(want);
        }
    }
    snprintf(extra, sizeof(extra),
             " (%d all-zero shared secret rejected, %d computed and matched)",
             acc_zero, acc_computed);
    report("x25519", root, &c, extra);
    cJSON_Delete(root);
}

/* ------------------------------------------------------------------ */
/* RSA-OAEP encryption, key formats, generation                         */

/* The private key of the first group of a Wycheproof OAEP file: a fixed,
 * independently generated key of each size without keygen cost. */
static mkc_rsa *wycheproof_key(int bits)
{
    char file[64];
    cJSON *root;
    const cJSON *g;
    mkc_rsa *key;

    snprintf(file, sizeof(file), "rsa_oaep_%d_sha256_mgf1sha256_test.json",
             bits);
    root = load_vectors(file);
    g = cJSON_GetArrayItem(get(root, "testGroups"), 0);
    assert_non_null(g);
    key = load_group_key(g);
    cJSON_Delete(root);
    return key;
}

/* The public half as its own mkc_rsa, through the SPKI DER export, as a
 * client holding only the server's public key would have it. */
static mkc_rsa *public_half(const mkc_rsa *priv)
{
    uint8_t der[1024];
    size_t der_len;
    mkc_rsa *pub = NULL;

    assert_int_equal(mkc_rsa_public_der(priv, der, sizeof(der), &der_len),
                     MK_OK);
    assert_int_equal(mkc_rsa_load_public(der, der_len, &pub), MK_OK);
    return pub;
}

static void oaep_roundtrip(int bits)
{
    static const uint8_t label[] = "megaki v2";
    mkc_rsa *priv = wycheproof_key(bits);
    mkc_rsa *pub = public_half(priv);
    size_t k = mkc_rsa_size(priv), max = k - 2 * MKC_SHA256_LEN - 2;
    size_t lens[] = {0, 1, 32, max};
    uint8_t msg[MKC_RSA_MAX_BYTES], seed[MKC_SHA256_LEN];
    uint8_t ct[MKC_RSA_MAX_BYTES], pt[MKC_RSA_MAX_BYTES];
    size_t i, ct_len, pt_len;
    int with_label;

    assert_int_equal(mkc_rsa_size(pub), k);
    for (i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    for (with_label = 0; with_label < 2; with_label++) {
        const uint8_t *l = with_label ? label : NULL;
        size_t l_len = with_label ? sizeof(label) - 1 : 0;

        for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            assert_int_equal(mkc_random(seed, sizeof(seed)), MK_OK);
            assert_int_equal(mkc_oaep_encrypt(pub, l, l_len, msg, lens[i], seed,
                                              ct, sizeof(ct), &ct_len),
                             MK_OK);
            assert_int_equal(ct_len, k);
            pt_len = 12345;
            assert_int_equal(mkc_oaep_decrypt(priv, l, l_len, ct, ct_len, pt,
                                              sizeof(pt), &pt_len),
                             MK_OK);
            assert_int_equal(pt_len, lens[i]);
            assert_memory_equal(pt, msg, lens[i]);
            /* A cap of exactly the message length is enough. */
            assert_int_equal(mkc_oaep_decrypt(priv, l, l_len, ct, ct_len, pt,
                                              lens[i], &pt_len),
                             MK_OK);
            assert_int_equal(pt_len, lens[i]);
        }
    }

    /* The encoding limits. */
    assert_int_equal(mkc_oaep_encrypt(pub, NULL, 0, msg, max + 1, seed, ct,
                                      sizeof(ct), &ct_len),
                     MK_ERR_USAGE);
    assert_int_equal(ct_len, 0);
    assert_int_equal(
        mkc_oaep_encrypt(pub, NULL, 0, msg, 1, seed, ct, k - 1, &ct_len),
        MK_ERR_BUFFER);

    /* Decryption failures that are not in the vectors: wrong label, no
     * label when one was used, a cap below the message length. All give
     * the one failure value with nothing written to out_len. */
    assert_int_equal(mkc_oaep_encrypt(pub, label, sizeof(label) - 1, msg, 32,
                                      seed, ct, sizeof(ct), &ct_len),
                     MK_OK);
    pt_len = 12345;
    assert_int_equal(mkc_oaep_decrypt(priv, label, sizeof(label) - 2, ct,
                                      ct_len, pt, sizeof(pt), &pt_len),
                     MK_ERR_CRYPTO);
    assert_int_equal(pt_len, 0);
    pt_len = 12345;
    assert_int_equal(
        mkc_oaep_decrypt(priv, NULL, 0, ct, ct_len, pt, sizeof(pt), &pt_len),
        MK_ERR_CRYPTO);
    assert_int_equal(pt_len, 0);
    pt_len = 12345;
    assert_int_equal(mkc_oaep_decrypt(priv, label, sizeof(label) - 1, ct,
                                      ct_len, pt, 31, &pt_len),
                     MK_ERR_CRYPTO);
    assert_int_equal(pt_len, 0);
    /* A public-only key cannot decrypt, and says so the same way. */
    pt_len = 12345;
    assert_int_equal(mkc_oaep_decrypt(pub, label, sizeof(label) - 1, ct, ct_len,
                                      pt, sizeof(pt), &pt_len),
                     MK_ERR_CRYPTO);
    assert_int_equal(pt_len, 0);
    assert_queue_clear(0);

    mkc_rsa_free(pub);
    mkc_rsa_free(priv);
}

static void test_oaep_roundtrip(void **state)
{
    (void)state;
    oaep_roundtrip(2048);
    oaep_roundtrip(3072);
    oaep_roundtrip(4096);
}

/* After the decryption, mkc_oaep_decrypt does the same work whether it
 * succeeded or not (docs/PROTOCOL.md §12.1): it writes the same bytes of
 * out (the message then zeros, or all zeros), and it clears the error
 * queue on success too, so a stale entry from an earlier call cannot tell
 * the two outcomes apart. */
static void test_oaep_decrypt_uniform(void **state)
{
    static const uint8_t label[] = "megaki v2";
    mkc_rsa *priv = wycheproof_key(2048);
    mkc_rsa *pub = public_half(priv);
    uint8_t msg[32], seed[MKC_SHA256_LEN], ct[MKC_RSA_MAX_BYTES];
    uint8_t pt[MKC_RSA_MAX_BYTES], zeros[MKC_RSA_MAX_BYTES];
    size_t ct_len = 0, pt_len = 0, i;
    int bad;

    (void)state;
    memset(msg, 0x5c, sizeof(msg));
    memset(seed, 0x17, sizeof(seed));
    memset(zeros, 0, sizeof(zeros));
    assert_int_equal(mkc_oaep_encrypt(pub, label, sizeof(label) - 1, msg,
                                      sizeof(msg), seed, ct, sizeof(ct),
                                      &ct_len),
                     MK_OK);
    assert_int_equal(ct_len, 256);
    for (bad = 0; bad < 2; bad++) {
        if (bad)
            ct[100] ^= 0x01;
        /* A stale entry left by some earlier, unrelated failure. */
        ERR_raise(ERR_LIB_USER, 1);
        memset(pt, 0xCC, sizeof(pt));
        pt_len = 12345;
        assert_int_equal(mkc_oaep_decrypt(priv, label, sizeof(label) - 1, ct,
                                          ct_len, pt, sizeof(pt), &pt_len),
                         bad ? MK_ERR_CRYPTO : MK_OK);
        assert_queue_clear(bad);
        assert_int_equal(pt_len, bad ? 0 : sizeof(msg));
        if (!bad)
            assert_memory_equal(pt, msg, sizeof(msg));
        /* The modulus' worth of out is written either way; nothing past
         * it. */
        assert_memory_equal(pt + pt_len, zeros, 256 - pt_len);
        for (i = 256; i < sizeof(pt); i++)
            assert_int_equal(pt[i], 0xCC);
    }
    /* A cap below the modulus bounds what is written. */
    ct[100] ^= 0x01;
    memset(pt, 0xCC, sizeof(pt));
    assert_int_equal(mkc_oaep_decrypt(priv, label, sizeof(label) - 1, ct,
                                      ct_len, pt, 40, &pt_len),
                     MK_OK);
    assert_memory_equal(pt, msg, sizeof(msg));
    assert_memory_equal(pt + 32, zeros, 8);
    assert_int_equal(pt[40], 0xCC);
    mkc_rsa_free(pub);
    mkc_rsa_free(priv);
}

static void test_oaep_deterministic(void **state)
{
    mkc_rsa *key = wycheproof_key(2048);
    uint8_t seed[MKC_SHA256_LEN], msg[32];
    uint8_t c1[MKC_RSA_MAX_BYTES], c2[MKC_RSA_MAX_BYTES];
    size_t l1, l2;

    (void)state;
    memset(seed, 0x5a, sizeof(seed));
    memset(msg, 0x11, sizeof(msg));
    assert_int_equal(mkc_oaep_encrypt(key, NULL, 0, msg, sizeof(msg), seed, c1,
                                      sizeof(c1), &l1),
                     MK_OK);
    assert_int_equal(mkc_oaep_encrypt(key, NULL, 0, msg, sizeof(msg), seed, c2,
                                      sizeof(c2), &l2),
                     MK_OK);
    assert_int_equal(l1, 256);
    assert_int_equal(l2, 256);
    assert_memory_equal(c1, c2, l1);
    /* The seed, and only the seed, is the randomness. */
    seed[31] ^= 1;
    assert_int_equal(mkc_oaep_encrypt(key, NULL, 0, msg, sizeof(msg), seed, c2,
                                      sizeof(c2), &l2),
                     MK_OK);
    assert_memory_not_equal(c1, c2, l1);
    mkc_rsa_free(key);
}

/* Minimal DER walking, enough to take the PKCS#1 structures out of SPKI and
 * PKCS#8 for the format tests. Returns the header length, 0 if malformed. */
static size_t der_header(const uint8_t *p, size_t len, uint8_t tag,
                         size_t *content_len)
{
    size_t n, i, hdr;

    *content_len = 0;
    if (len < 2 || p[0] != tag)
        return 0;
    if (p[1] < 0x80) {
        *content_len = p[1];
        hdr = 2;
    } else {
        n = p[1] & 0x7f;
        if (n == 0 || n > 4 || len < 2 + n)
            return 0;
        for (i = 0; i < n; i++)
            *content_len = *content_len << 8 | p[2 + i];
        hdr = 2 + n;
    }
    return *content_len <= len - hdr ? hdr : 0;
}

/* SPKI = SEQ { SEQ algorithm, BIT STRING { 0x00, RSAPublicKey } } */
static void spki_to_pkcs1(const uint8_t *spki, size_t len, const uint8_t **out,
                          size_t *out_len)
{
    size_t h, cl = 0, alg_h, alg_l = 0;

    h = der_header(spki, len, 0x30, &cl);
    assert_true(h > 0);
    spki += h;
    alg_h = der_header(spki, cl, 0x30, &alg_l);
    assert_true(alg_h > 0);
    spki += alg_h + alg_l;
    h = der_header(spki, cl - alg_h - alg_l, 0x03, &cl);
    assert_true(h > 0 && cl > 1 && spki[h] == 0);
    *out = spki + h + 1;
    *out_len = cl - 1;
}

/* PrivateKeyInfo = SEQ { INTEGER 0, SEQ algorithm, OCTET STRING key } */
static void pkcs8_to_pkcs1(const uint8_t *p8, size_t len, const uint8_t **out,
                           size_t *out_len)
{
    size_t h, cl = 0, rest, eh, el = 0;

    h = der_header(p8, len, 0x30, &cl);
    assert_true(h > 0);
    p8 += h;
    rest = cl;
    eh = der_header(p8, rest, 0x02, &el);
    assert_true(eh > 0);
    p8 += eh + el;
    rest -= eh + el;
    eh = der_header(p8, rest, 0x30, &el);
    assert_true(eh > 0);
    p8 += eh + el;
    rest -= eh + el;
    eh = der_header(p8, rest, 0x04, &el);
    assert_true(eh > 0);
    *out = p8 + eh;
    *out_len = el;
}

/* PEM-armours DER under the given label (RFC 7468), 64 columns. */
static char *pem_wrap(const char *label, const uint8_t *der, size_t len)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t cap = len * 2 + 200, o = 0, i, col = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    o += (size_t)snprintf(s + o, cap - o, "-----BEGIN %s-----\n", label);
    for (i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)der[i] << 16;
        size_t rem = len - i;
        if (rem > 1)
            v |= (uint32_t)der[i + 1] << 8;
        if (rem > 2)
            v |= der[i + 2];
        s[o++] = b64[v >> 18 & 63];
        s[o++] = b64[v >> 12 & 63];
        s[o++] = rem > 1 ? b64[v >> 6 & 63] : '=';
        s[o++] = rem > 2 ? b64[v & 63] : '=';
        col += 4;
        if (col == 64) {
            s[o++] = '\n';
            col = 0;
        }
    }
    if (col != 0)
        s[o++] = '\n';
    o += (size_t)snprintf(s + o, cap - o, "-----END %s-----\n", label);
    assert_true(o < cap);
    return s;
}

static void assert_same_public(const mkc_rsa *a, const mkc_rsa *b)
{
    uint8_t da[1024], db[1024];
    size_t la, lb;

    assert_int_equal(mkc_rsa_public_der(a, da, sizeof(da), &la), MK_OK);
    assert_int_equal(mkc_rsa_public_der(b, db, sizeof(db), &lb), MK_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
}

static void test_rsa_key_formats(void **state)
{
    cJSON *root = load_vectors("rsa_oaep_2048_sha256_mgf1sha256_test.json");
    const cJSON *g = cJSON_GetArrayItem(get(root, "testGroups"), 0);
    size_t p8_len, spki_len, pkcs1_len, pem_len, n;
    uint8_t *p8 = get_hex(g, "privateKeyPkcs8", &p8_len);
    const char *p8_pem = get_str(g, "privateKeyPem");
    uint8_t spki[1024], pem[4096];
    const uint8_t *pkcs1;
    mkc_rsa *ref = NULL, *k = NULL;
    char *armoured;
    /* An X25519 SubjectPublicKeyInfo and PrivateKeyInfo (RFC 8410):
     * well-formed, not RSA. */
    uint8_t x25519_spki[44] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b,
                               0x65, 0x6e, 0x03, 0x21, 0x00, 9};
    uint8_t x25519_p8[48] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30,
                             0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e,
                             0x04, 0x22, 0x04, 0x20, 9};

    (void)state;
    ref = load_group_key(g); /* the file's DER, armoured here */
    assert_int_equal(mkc_rsa_public_der(ref, spki, sizeof(spki), &spki_len),
                     MK_OK);
    assert_int_equal(mkc_rsa_public_der(ref, spki, 10, &n), MK_ERR_BUFFER);
    assert_int_equal(n, 0);

    /* Private: PKCS#8 PEM (as the file gives it), PKCS#1 PEM, our own
     * PKCS#8 export. */
    assert_int_equal(
        mkc_rsa_load_private((const uint8_t *)p8_pem, strlen(p8_pem), &k),
        MK_OK);
    assert_same_public(ref, k);
    mkc_rsa_free(k);
    pkcs8_to_pkcs1(p8, p8_len, &pkcs1, &pkcs1_len);
    assert_int_equal(load_private_pem("RSA PRIVATE KEY", pkcs1, pkcs1_len, &k),
                     MK_OK);
    assert_same_public(ref, k);
    mkc_rsa_free(k);
    assert_int_equal(mkc_rsa_private_pem(ref, pem, sizeof(pem), &pem_len),
                     MK_OK);
    assert_true(pem_len > 28);
    assert_memory_equal(pem, "-----BEGIN PRIVATE KEY-----\n", 28);
    assert_int_equal(mkc_rsa_load_private(pem, pem_len, &k), MK_OK);
    assert_same_public(ref, k);
    mkc_rsa_free(k);
    assert_int_equal(mkc_rsa_private_pem(ref, pem, 100, &n), MK_ERR_BUFFER);
    assert_int_equal(n, 0);

    /* Public: DER SPKI, PEM "PUBLIC KEY", PEM "RSA PUBLIC KEY". */
    assert_int_equal(mkc_rsa_load_public(spki, spki_len, &k), MK_OK);
    assert_same_public(ref, k);
    assert_int_equal(mkc_rsa_bits(k), 2048);
    mkc_rsa_free(k);
    armoured = pem_wrap("PUBLIC KEY", spki, spki_len);
    assert_int_equal(
        mkc_rsa_load_public((const uint8_t *)armoured, strlen(armoured), &k),
        MK_OK);
    assert_same_public(ref, k);
    mkc_rsa_free(k);
    free(armoured);
    spki_to_pkcs1(spki, spki_len, &pkcs1, &pkcs1_len);
    armoured = pem_wrap("RSA PUBLIC KEY", pkcs1, pkcs1_len);
    assert_int_equal(
        mkc_rsa_load_public((const uint8_t *)armoured, strlen(armoured), &k),
        MK_OK);
    assert_same_public(ref, k);
    mkc_rsa_free(k);
    free(armoured);

    /* Refused: trailing bytes, truncation, a private key where a public
     * one is expected, a non-RSA key, garbage, the other PEM label. */
    k = ref; /* any non-NULL value: a failed load must reset it to NULL */
    spki[spki_len] = 0;
    assert_int_equal(mkc_rsa_load_public(spki, spki_len + 1, &k),
                     MK_ERR_KEY_FORMAT);
    assert_null(k);
    assert_int_equal(mkc_rsa_load_public(spki, spki_len - 1, &k),
                     MK_ERR_KEY_FORMAT);
    assert_int_equal(
        mkc_rsa_load_public((const uint8_t *)p8_pem, strlen(p8_pem), &k),
        MK_ERR_KEY_FORMAT);
    assert_int_equal(mkc_rsa_load_public(x25519_spki, sizeof(x25519_spki), &k),
                     MK_ERR_KEY_FORMAT);
    armoured = pem_wrap("PUBLIC KEY", x25519_spki, sizeof(x25519_spki));
    assert_int_equal(
        mkc_rsa_load_public((const uint8_t *)armoured, strlen(armoured), &k),
        MK_ERR_KEY_FORMAT);
    free(armoured);
    armoured = pem_wrap("CERTIFICATE", spki, spki_len);
    assert_int_equal(
        mkc_rsa_load_public((const uint8_t *)armoured, strlen(armoured), &k),
        MK_ERR_KEY_FORMAT);
    free(armoured);
    assert_int_equal(mkc_rsa_load_public((const uint8_t *)"hello", 5, &k),
                     MK_ERR_KEY_FORMAT);
    assert_int_equal(mkc_rsa_load_public(spki, 0, &k), MK_ERR_KEY_FORMAT);

    /* Refused as a private key: DER where PEM is expected, a public key
     * under either label, a well-formed key of another type, a truncated
     * key, garbage. (A trailing byte inside the armour is not in this
     * list: libcrypto's PEM decoder does not require the DER to span the
     * block, and key files are the operator's own.) */
    k = ref; /* again: each failed load must reset it */
    assert_int_equal(mkc_rsa_load_private(spki, spki_len, &k),
                     MK_ERR_KEY_FORMAT);
    assert_null(k);
    assert_int_equal(load_private_pem("PRIVATE KEY", spki, spki_len, &k),
                     MK_ERR_KEY_FORMAT);
    assert_int_equal(load_private_pem("PUBLIC KEY", spki, spki_len, &k),
                     MK_ERR_KEY_FORMAT);
    assert_int_equal(
        load_private_pem("PRIVATE KEY", x25519_p8, sizeof(x25519_p8), &k),
        MK_ERR_KEY_FORMAT);
    assert_int_equal(load_private_pem("PRIVATE KEY", p8, p8_len - 1, &k),
                     MK_ERR_KEY_FORMAT);
    assert_int_equal(mkc_rsa_load_private((const uint8_t *)"hello", 5, &k),
                     MK_ERR_KEY_FORMAT);
    assert_null(k);
    assert_queue_clear(0);

    mkc_rsa_free(ref);
    mkc_rsa_free(NULL);
    free(p8);
    cJSON_Delete(root);
}

static void test_rsa_generate(void **state)
{
    mkc_rsa *k = NULL, *pub;
    uint8_t seed[MKC_SHA256_LEN] = {1}, msg[32] = {2};
    uint8_t ct[MKC_RSA_MAX_BYTES], pt[MKC_RSA_MAX_BYTES];
    size_t ct_len, pt_len;

    (void)state;
    assert_int_equal(mkc_rsa_generate(1024, &k), MK_ERR_KEY_SIZE);
    assert_null(k);
    assert_int_equal(mkc_rsa_generate(2049, &k), MK_ERR_KEY_SIZE);
    assert_int_equal(mkc_rsa_generate(2048, &k), MK_OK);
    assert_int_equal(mkc_rsa_bits(k), 2048);
    assert_int_equal(mkc_rsa_size(k), 256);
    pub = public_half(k);
    assert_int_equal(mkc_oaep_encrypt(pub, NULL, 0, msg, sizeof(msg), seed, ct,
                                      sizeof(ct), &ct_len),
                     MK_OK);
    assert_int_equal(
        mkc_oaep_decrypt(k, NULL, 0, ct, ct_len, pt, sizeof(pt), &pt_len),
        MK_OK);
    assert_int_equal(pt_len, sizeof(msg));
    assert_memory_equal(pt, msg, sizeof(msg));
    mkc_rsa_free(pub);
    mkc_rsa_free(k);
}

/* ------------------------------------------------------------------ */
/* Known answers and small primitives                                   */

/* RFC 5869 A.1 (test case 1) and A.3 (test case 3: no salt, no info). */
static void test_hkdf_rfc5869(void **state)
{
    uint8_t ikm[22], salt[13], info[10], prk[32], want_prk[32];
    uint8_t okm[42], want_okm[42];
    uint8_t big[255 * 32 + 1];
    size_t i;

    (void)state;
    memset(ikm, 0x0b, sizeof(ikm));
    for (i = 0; i < sizeof(salt); i++)
        salt[i] = (uint8_t)i;
    for (i = 0; i < sizeof(info); i++)
        info[i] = (uint8_t)(0xf0 + i);

    unhex_fixed("077709362c2e32df0ddc3f0dc47bba63"
                "90b6c73bb50f9c3122ec844ad7c2b3e5",
                want_prk, sizeof(want_prk));
    unhex_fixed("3cb25f25faacd57a90434f64d0362f2a"
                "2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                "34007208d5b887185865",
                want_okm, sizeof(want_okm));
    assert_int_equal(
        mkc_hkdf_extract(salt, sizeof(salt), ikm, sizeof(ikm), prk), MK_OK);
    assert_memory_equal(prk, want_prk, sizeof(prk));
    assert_int_equal(
        mkc_hkdf_expand(prk, sizeof(prk), info, sizeof(info), okm, sizeof(okm)),
        MK_OK);
    assert_memory_equal(okm, want_okm, sizeof(okm));

    unhex_fixed("19ef24a32c717b167f33a91d6f648bdf"
                "96596776afdb6377ac434c1c293ccb04",
                want_prk, sizeof(want_prk));
    unhex_fixed("8da4e775a563c18f715f802a063c5a31"
                "b8a11f5c5ee1879ec3454e5f3c738d2d"
                "9d201395faa4b61a96c8",
                want_okm, sizeof(want_okm));
    assert_int_equal(mkc_hkdf_extract(NULL, 0, ikm, sizeof(ikm), prk), MK_OK);
    assert_memory_equal(prk, want_prk, sizeof(prk));
    assert_int_equal(
        mkc_hkdf_expand(prk, sizeof(prk), NULL, 0, okm, sizeof(okm)), MK_OK);
    assert_memory_equal(okm, want_okm, sizeof(okm));

    /* The output bound: 255 * HashLen is the largest allowed. */
    assert_int_equal(
        mkc_hkdf_expand(prk, sizeof(prk), NULL, 0, big, sizeof(big) - 1),
        MK_OK);
    assert_int_equal(
        mkc_hkdf_expand(prk, sizeof(prk), NULL, 0, big, sizeof(big)),
        MK_ERR_USAGE);
    assert_queue_clear(0);
}

static void test_ct(void **state)
{
    const uint8_t a[5] = {1, 2, 3, 4, 5}, b[5] = {9, 8, 7, 6, 5};
    uint8_t d[5];

    (void)state;
    assert_int_equal(mkc_ct_equal(a, a, sizeof(a)), 1);
    assert_int_equal(mkc_ct_equal(a, b, sizeof(a)), 0);
    assert_int_equal(mkc_ct_equal(a, b, 0), 1);
    assert_int_equal(mkc_ct_equal(a + 4, b + 4, 1), 1);
    mkc_ct_select(d, 1, a, b, sizeof(d));
    assert_memory_equal(d, a, sizeof(d));
    mkc_ct_select(d, 0, a, b, sizeof(d));
    assert_memory_equal(d, b, sizeof(d));
    /* In place, as the OAEP failure path uses it. */
    memcpy(d, a, sizeof(d));
    mkc_ct_select(d, 0, d, b, sizeof(d));
    assert_memory_equal(d, b, sizeof(d));
    assert_int_equal(mkc_ct_is_zero(0), 1);
    assert_int_equal(mkc_ct_is_zero(1), 0);
    assert_int_equal(mkc_ct_is_zero(SIZE_MAX), 0);
    assert_int_equal(mkc_ct_is_zero((size_t)1 << (sizeof(size_t) * 8 - 1)), 0);
}

static void test_hash_peek(void **state)
{
    static const uint8_t abc_msg[] = "abc";
    uint8_t msg[1000], want[32], got[32], abc[32];
    mkc_hash *h = NULL;
    size_t i;

    (void)state;
    /* FIPS 180-2 B.1: SHA-256("abc"). */
    unhex_fixed("ba7816bf8f01cfea414140de5dae2223"
                "b00361a396177a9cb410ff61f20015ad",
                abc, sizeof(abc));
    assert_int_equal(mkc_sha256(abc_msg, 3, got), MK_OK);
    assert_memory_equal(got, abc, sizeof(got));

    for (i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 13);
    assert_int_equal(mkc_hash_new(&h), MK_OK);
    assert_int_equal(mkc_hash_peek(h, got), MK_OK);
    assert_int_equal(mkc_sha256(NULL, 0, want), MK_OK);
    assert_memory_equal(got, want, sizeof(got));
    /* Peeking after each piece must not disturb the running hash. */
    for (i = 0; i < sizeof(msg); i += 100) {
        assert_int_equal(mkc_hash_update(h, msg + i, 100), MK_OK);
        assert_int_equal(mkc_hash_peek(h, got), MK_OK);
        assert_int_equal(mkc_sha256(msg, i + 100, want), MK_OK);
        assert_memory_equal(got, want, sizeof(got));
    }
    assert_int_equal(mkc_hash_peek(h, got), MK_OK);
    assert_memory_equal(got, want, sizeof(got));
    mkc_hash_free(h);
    mkc_hash_free(NULL);
}

/* RFC 7748 6.1, through the handshake's calls: building each side's key
 * gives its public key, and the key then derives the shared secret. */
static void test_x25519_rfc7748(void **state)
{
    uint8_t a_priv[32], a_pub[32], b_priv[32], b_pub[32], want[32];
    uint8_t got[32], k1[32], k2[32];
    static const uint8_t zero[32];
    uint8_t low_order[32] = {0};
    mkc_x25519_key *a = NULL, *b = NULL;

    (void)state;
    unhex_fixed("77076d0a7318a57d3c16c17251b26645"
                "df4c2f87ebc0992ab177fba51db92c2a",
                a_priv, 32);
    unhex_fixed("8520f0098930a754748b7ddcb43ef75a"
                "0dbf3a0d26381af4eba4a98eaa9b4e6a",
                a_pub, 32);
    unhex_fixed("5dab087e624a8a4b79e17f8b83800ee6"
                "6f3bb1292618b6fd1c2f8b27ff88e0eb",
                b_priv, 32);
    unhex_fixed("de9edb7d7b7dc1b4d35b61c2ece43537"
                "3f8343c85b78674dadfc7e146f882b4f",
                b_pub, 32);
    unhex_fixed("4a5d9d5ba4ce2de1728e3bf480350f25"
                "e07e21c947d19e3376f09b3c1e161742",
                want, 32);

    assert_int_equal(mkc_x25519_new(a_priv, &a, got), MK_OK);
    assert_memory_equal(got, a_pub, 32);
    assert_int_equal(mkc_x25519_new(b_priv, &b, got), MK_OK);
    assert_memory_equal(got, b_pub, 32);
    assert_int_equal(mkc_x25519_derive(a, b_pub, k1), MK_OK);
    assert_int_equal(mkc_x25519_derive(b, a_pub, k2), MK_OK);
    assert_memory_equal(k1, want, 32);
    assert_memory_equal(k2, want, 32);

    /* u = 0 and u = 1 are small-order points: the result is all zero and
     * must be refused, leaving a zeroed output behind. */
    memset(got, 0xa5, sizeof(got));
    assert_int_equal(mkc_x25519_derive(a, low_order, got),
                     MK_ERR_BAD_KEY_SHARE);
    assert_memory_equal(got, zero, 32);
    low_order[0] = 1;
    memset(got, 0xa5, sizeof(got));
    assert_int_equal(mkc_x25519_derive(a, low_order, got),
                     MK_ERR_BAD_KEY_SHARE);
    assert_memory_equal(got, zero, 32);
    assert_queue_clear(0);
    mkc_x25519_free(a);
    mkc_x25519_free(b);
    mkc_x25519_free(NULL);
}

static void test_cbc_edges(void **state)
{
    uint8_t key[32], iv[16], pt[64], ct[80], out[80];
    size_t len, ct_len, out_len;

    (void)state;
    memset(key, 0x42, sizeof(key));
    memset(iv, 0x24, sizeof(iv));
    for (len = 0; len < sizeof(pt); len++)
        pt[len] = (uint8_t)len;
    for (len = 0; len <= sizeof(pt); len++) {
        size_t need = len + 16 - len % 16;

        assert_int_equal(
            mkc_cbc_encrypt(key, iv, pt, len, ct, need - 1, &ct_len),
            MK_ERR_BUFFER);
        assert_int_equal(ct_len, 0);
        assert_int_equal(mkc_cbc_encrypt(key, iv, pt, len, ct, need, &ct_len),
                         MK_OK);
        assert_int_equal(ct_len, need);
        assert_int_equal(
            mkc_cbc_decrypt(key, iv, ct, ct_len, out, ct_len - 1, &out_len),
            MK_ERR_BUFFER);
        assert_int_equal(
            mkc_cbc_decrypt(key, iv, ct, ct_len, out, ct_len, &out_len), MK_OK);
        assert_int_equal(out_len, len);
        assert_memory_equal(out, pt, len);
    }
    /* Not whole blocks: the generic record error. */
    assert_int_equal(
        mkc_cbc_decrypt(key, iv, ct, 15, out, sizeof(out), &out_len),
        MK_ERR_BAD_RECORD_MAC);
    assert_int_equal(
        mkc_cbc_decrypt(key, iv, ct, 0, out, sizeof(out), &out_len),
        MK_ERR_BAD_RECORD_MAC);
    assert_int_equal(out_len, 0);
    assert_queue_clear(0);
}

static void test_random(void **state)
{
    uint8_t a[32] = {0}, b[32] = {0};

    (void)state;
    assert_int_equal(mkc_random(a, 0), MK_OK);
    assert_int_equal(mkc_random(a, sizeof(a)), MK_OK);
    assert_int_equal(mkc_random(b, sizeof(b)), MK_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    mkc_cleanse(a, sizeof(a));
    assert_memory_equal(a, (const uint8_t[32]){0}, sizeof(a));
    mkc_cleanse(NULL, 0);
}

static void test_secure_alloc(void **state)
{
    size_t sizes[] = {1, 32, 4096, 10000};
    size_t i, j;

    (void)state;
    assert_null(mkc_secure_alloc(0));
    mkc_secure_free(NULL, 32);
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = mkc_secure_alloc(sizes[i]);

        assert_non_null(p);
        for (j = 0; j < sizes[i]; j++)
            assert_int_equal(p[j], 0);
        memset(p, 0x77, sizes[i]);
        mkc_secure_free(p, sizes[i]);
    }
}

/* A keyed record context gives, record after record, exactly what the
 * one-shot functions give with the same keys: the IV is reset and the MAC
 * restarted each time, never carried over from the previous record. */
static void test_rec_contexts(void **state)
{
    uint8_t ek[32], mk[32], iv[16], pt[100], a[128], b[128], d[128];
    uint8_t t1[32], t2[32];
    mkc_rec *enc = NULL, *dec = NULL;
    size_t na, nb, nd;
    (void)state;

    for (int i = 0; i < 32; i++) {
        ek[i] = (uint8_t)i;
        mk[i] = (uint8_t)(0x80 + i);
    }
    assert_int_equal(mkc_rec_new(ek, mk, 1, &enc), MK_OK);
    assert_int_equal(mkc_rec_new(ek, mk, 0, &dec), MK_OK);
    for (size_t len = 0; len < sizeof pt; len += 7) {
        mkc_iov iov[2] = {{iv, sizeof iv}, {pt, len}};
        memset(iv, (int)len, sizeof iv);
        for (size_t i = 0; i < len; i++)
            pt[i] = (uint8_t)(i * 31 + len);
        assert_int_equal(mkc_rec_cbc(enc, iv, pt, len, a, sizeof a, &na),
                         MK_OK);
        assert_int_equal(mkc_cbc_encrypt(ek, iv, pt, len, b, sizeof b, &nb),
                         MK_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        assert_int_equal(mkc_rec_cbc(dec, iv, a, na, d, sizeof d, &nd), MK_OK);
        assert_int_equal(nd, len);
        assert_memory_equal(d, pt, len);
        assert_int_equal(mkc_rec_mac(enc, iov, 2, t1), MK_OK);
        assert_int_equal(mkc_hmac_sha256(mk, sizeof mk, iov, 2, t2), MK_OK);
        assert_memory_equal(t1, t2, 32);
    }
    /* A bad pad through the keyed context: the generic record error, the
     * output wiped, and the context still good for the next record. */
    a[na - 1] ^= 0x01;
    memset(d, 0xAA, sizeof d);
    assert_int_equal(mkc_rec_cbc(dec, iv, a, na, d, sizeof d, &nd),
                     MK_ERR_BAD_RECORD_MAC);
    assert_int_equal(nd, 0);
    a[na - 1] ^= 0x01;
    assert_int_equal(mkc_rec_cbc(dec, iv, a, na, d, sizeof d, &nd), MK_OK);
    mkc_rec_free(enc);
    mkc_rec_free(dec);
    mkc_rec_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wycheproof_oaep_2048),
        cmocka_unit_test(test_wycheproof_oaep_3072),
        cmocka_unit_test(test_wycheproof_oaep_4096),
        cmocka_unit_test(test_wycheproof_aes_cbc),
        cmocka_unit_test(test_wycheproof_hmac),
        cmocka_unit_test(test_wycheproof_hkdf),
        cmocka_unit_test(test_wycheproof_x25519),
        cmocka_unit_test(test_oaep_roundtrip),
        cmocka_unit_test(test_oaep_decrypt_uniform),
        cmocka_unit_test(test_oaep_deterministic),
        cmocka_unit_test(test_rsa_key_formats),
        cmocka_unit_test(test_rsa_generate),
        cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_ct),
        cmocka_unit_test(test_hash_peek),
        cmocka_unit_test(test_x25519_rfc7748),
        cmocka_unit_test(test_cbc_edges),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_secure_alloc),
        cmocka_unit_test(test_rec_contexts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
