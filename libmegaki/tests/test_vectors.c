/*
 * test_vectors.c -- the test vectors of docs/PROTOCOL.md §11, regenerated
 * from fixed inputs and compared byte for byte with
 * tests/vectors/protocol-v2.txt (which PROTOCOL.md quotes verbatim).
 *
 * The sessions run with deterministic environments that log every random
 * draw. The test then re-derives the key schedule on its own, from the
 * spec's literal label encoding and the raw primitives (not through
 * keysched.c), and checks the sessions' Finished, binder and record bytes
 * against it: the vectors are evidence that the code matches the spec, not
 * just a snapshot of what the code does.
 *
 * To regenerate after an intended wire change: MK_WRITE_VECTORS=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "internal.h"
#include "pump.h"
#include "testlib.h"

#define VECTOR_FILE "tests/vectors/protocol-v2.txt"
#define SPEC_FILE   "docs/PROTOCOL.md"

/* --- a logging environment ---------------------------------------------- */

typedef struct draw {
    size_t len;
    uint8_t b[64];
} draw;

typedef struct log_env {
    tu_env base;
    mk_env env;
    draw d[64];
    size_t n;
} log_env;

static int log_random(void *ctx, uint8_t *out, size_t len)
{
    log_env *e = ctx;
    if (e->base.env.random(e->base.env.ctx, out, len) != 0)
        return -1;
    if (e->n < 64 && len <= 64) {
        e->d[e->n].len = len;
        memcpy(e->d[e->n].b, out, len);
        e->n++;
    }
    return 0;
}

static uint64_t log_now(void *ctx)
{
    log_env *e = ctx;
    return e->base.now_ms;
}

static void log_env_init(log_env *e, const char *label, uint64_t now)
{
    memset(e, 0, sizeof *e);
    tu_env_init(&e->base, label);
    e->base.now_ms = now;
    e->env.random = log_random;
    e->env.now_ms = log_now;
    e->env.ctx = e;
}

/* The next draw, checked for its length. */
static const uint8_t *take(log_env *e, size_t *i, size_t len)
{
    assert_true(*i < e->n);
    assert_int_equal(e->d[*i].len, len);
    return e->d[(*i)++].b;
}

/* --- text output --------------------------------------------------------- */

static char *text;
static size_t text_len, text_cap;

static void out(const char *fmt, ...)
{
    va_list ap;
    int n;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(text + text_len, text_cap - text_len, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if ((size_t)n < text_cap - text_len)
            break;
        text_cap = text_cap ? text_cap * 2 : 65536;
        text = realloc(text, text_cap);
        assert_non_null(text);
    }
    text_len += (size_t)n;
}

/* name = hex, wrapped at 32 bytes per line. */
static void hex(const char *name, const uint8_t *p, size_t len)
{
    out("%s (%zu bytes) =", name, len);
    for (size_t i = 0; i < len; i++) {
        if (i % 32 == 0)
            out("\n   ");
        out("%02x", p[i]);
    }
    out("\n");
}

/* --- the key schedule, from the spec's words ------------------------------ */

/* HKDF-Expand-Label(secret, label, context, L) per PROTOCOL.md §6.1:
 * info = uint16(L) || uint8(len) || "megaki2 " || label || uint8(len) || ctx */
static void spec_label(const uint8_t *secret, const char *label,
                       const uint8_t *ctx, size_t ctx_len, uint8_t *o, size_t L)
{
    uint8_t info[300];
    size_t n = 0, ll = strlen("megaki2 ") + strlen(label);
    info[n++] = (uint8_t)(L >> 8);
    info[n++] = (uint8_t)L;
    info[n++] = (uint8_t)ll;
    memcpy(info + n, "megaki2 ", 8);
    n += 8;
    memcpy(info + n, label, strlen(label));
    n += strlen(label);
    info[n++] = (uint8_t)ctx_len;
    if (ctx_len != 0)
        memcpy(info + n, ctx, ctx_len);
    n += ctx_len;
    assert_int_equal(mkc_hkdf_expand(secret, 32, info, n, o, L), MK_OK);
}

static void sha(const uint8_t *p, size_t n, uint8_t o[32])
{
    assert_int_equal(mkc_sha256(p, n, o), MK_OK);
}

static void hmac(const uint8_t *key, const uint8_t *p, size_t n, uint8_t o[32])
{
    mkc_iov iov = {p, n};
    assert_int_equal(mkc_hmac_sha256(key, 32, &iov, 1, o), MK_OK);
}

/* The X25519 agreement of one handshake, from the two ephemeral private
 * keys the sessions drew, through the calls the handshake makes: building
 * each side's key gives its public share, and each side derives from the
 * other's. The two results must agree; dh is the client's. */
static void spec_dh(const uint8_t c_priv[32], const uint8_t s_priv[32],
                    uint8_t c_pub[32], uint8_t s_pub[32], uint8_t dh[32])
{
    mkc_x25519_key *ck = NULL, *sk = NULL;
    uint8_t s_dh[32];

    assert_int_equal(mkc_x25519_new(c_priv, &ck, c_pub), MK_OK);
    assert_int_equal(mkc_x25519_new(s_priv, &sk, s_pub), MK_OK);
    assert_int_equal(mkc_x25519_derive(ck, s_pub, dh), MK_OK);
    assert_int_equal(mkc_x25519_derive(sk, c_pub, s_dh), MK_OK);
    assert_memory_equal(dh, s_dh, 32);
    mkc_x25519_free(ck);
    mkc_x25519_free(sk);
}

typedef struct spec_keys {
    uint8_t early[32], derived[32], hs[32], ch_hash[32], th[32];
    uint8_t extras[32], c2s_enc[32], c2s_mac[32], s2c_enc[32], s2c_mac[32];
    uint8_t fin_key[32], finished[32], resumption[32], session_id[16];
} spec_keys;

static void spec_schedule(const uint8_t root[32], const uint8_t dh[32],
                          const uint8_t *ch, size_t ch_len, const uint8_t *sh,
                          size_t sh_len, spec_keys *k)
{
    static const uint8_t zeros[32];
    uint8_t empty_hash[32], *th_in;

    assert_int_equal(mkc_hkdf_extract(zeros, 32, root, 32, k->early), MK_OK);
    sha(NULL, 0, empty_hash);
    spec_label(k->early, "derived", empty_hash, 32, k->derived, 32);
    assert_int_equal(mkc_hkdf_extract(k->derived, 32, dh, 32, k->hs), MK_OK);
    sha(ch, ch_len, k->ch_hash);
    th_in = malloc(ch_len + sh_len);
    memcpy(th_in, ch, ch_len);
    memcpy(th_in + ch_len, sh, sh_len - 32);
    sha(th_in, ch_len + sh_len - 32, k->th);
    free(th_in);
    spec_label(k->hs, "s extras", k->ch_hash, 32, k->extras, 32);
    spec_label(k->hs, "c2s enc", k->th, 32, k->c2s_enc, 32);
    spec_label(k->hs, "c2s mac", k->th, 32, k->c2s_mac, 32);
    spec_label(k->hs, "s2c enc", k->th, 32, k->s2c_enc, 32);
    spec_label(k->hs, "s2c mac", k->th, 32, k->s2c_mac, 32);
    spec_label(k->hs, "s finished", k->th, 32, k->fin_key, 32);
    spec_label(k->hs, "session id", k->th, 32, k->session_id, 16);
    spec_label(k->hs, "resumption", k->ch_hash, 32, k->resumption, 32);
    hmac(k->fin_key, k->th, 32, k->finished);
}

static void print_schedule(const spec_keys *k)
{
    hex("early_secret", k->early, 32);
    hex("derived", k->derived, 32);
    hex("hs_secret", k->hs, 32);
    hex("H(CLIENT_HELLO)", k->ch_hash, 32);
    hex("transcript_hash", k->th, 32);
    hex("extras_key", k->extras, 32);
    hex("c2s_enc", k->c2s_enc, 32);
    hex("c2s_mac", k->c2s_mac, 32);
    hex("s2c_enc", k->s2c_enc, 32);
    hex("s2c_mac", k->s2c_mac, 32);
    hex("finished_key", k->fin_key, 32);
    hex("finished", k->finished, 32);
    hex("resumption_secret", k->resumption, 32);
    hex("session_id", k->session_id, 16);
}

/* A record as the spec builds it (§5.2), compared with the session's. */
static void spec_record(const char *title, const uint8_t enc[32],
                        const uint8_t mac[32], uint64_t seq, uint8_t type,
                        uint8_t flags, uint32_t id, const uint8_t iv[16],
                        const uint8_t *pt, size_t pt_len, const uint8_t *wire,
                        size_t wire_len)
{
    uint8_t buf[2048], seqb[8];
    size_t ct_len = 0, body;
    mkc_iov iov[3];

    assert_true(pt_len < 1024);
    assert_int_equal(mkc_cbc_encrypt(enc, iv, pt_len ? pt : (const uint8_t *)"",
                                     pt_len, buf + 24, sizeof buf - 24,
                                     &ct_len),
                     MK_OK);
    body = 4 + 16 + ct_len + 32;
    buf[0] = type;
    buf[1] = flags;
    buf[2] = (uint8_t)(body >> 8);
    buf[3] = (uint8_t)body;
    buf[4] = (uint8_t)(id >> 24);
    buf[5] = (uint8_t)(id >> 16);
    buf[6] = (uint8_t)(id >> 8);
    buf[7] = (uint8_t)id;
    memcpy(buf + 8, iv, 16);
    for (int i = 0; i < 8; i++)
        seqb[i] = (uint8_t)(seq >> (56 - 8 * i));
    iov[0] = (mkc_iov){seqb, 8};
    iov[1] = (mkc_iov){buf, 4};
    iov[2] = (mkc_iov){buf + 4, 4 + 16 + ct_len};
    assert_int_equal(mkc_hmac_sha256(mac, 32, iov, 3, buf + 24 + ct_len),
                     MK_OK);
    assert_int_equal(wire_len, 4 + body);
    assert_memory_equal(buf, wire, wire_len);

    out("\n%s: type 0x%02x, flags 0x%02x, request id %u, sequence %llu\n",
        title, type, flags, id, (unsigned long long)seq);
    hex("  iv", iv, 16);
    hex("  plaintext", pt, pt_len);
    hex("  record", wire, wire_len);
}

/* --- the vectors ------------------------------------------------------ */

#define T0_SERVER 1764000000000ull
#define T0_CLIENT 1764000000250ull

static log_env cenv, senv;
static mk_server_config *scfg;
static mk_client_config *ccfg;
static uint8_t blob[MK_SESSION_BLOB_MAX];
static size_t blob_len;

static void setup_configs(void)
{
    mk_ticket_key tk;
    mk_server_key *key = tu_server_key("server2048.pem");
    size_t len;
    uint8_t *pub = tl_load("tests/vectors/keys/server2048.pub.pem", &len);

    memcpy(tk.name, "vector-ticket-k1", 16);
    for (int i = 0; i < 32; i++)
        tk.secret[i] = (uint8_t)i;
    assert_int_equal(mk_server_config_new(&scfg, &senv.env), MK_OK);
    assert_int_equal(mk_server_config_add_key(scfg, key), MK_OK);
    assert_int_equal(mk_server_config_set_ticket_keys(scfg, &tk, 1), MK_OK);
    assert_int_equal(mk_client_config_new(&ccfg, &cenv.env), MK_OK);
    assert_int_equal(mk_client_config_pin(ccfg, pub, len), MK_OK);
    free(pub);

    out("Inputs common to all vectors\n");
    out("server key: tests/vectors/keys/server2048.pem (RSA-2048, §11.1)\n");
    {
        uint8_t id[8];
        mk_server_key_id(key, id);
        hex("server key id", id, 8);
    }
    hex("ticket key name", tk.name, 16);
    hex("ticket key secret", tk.secret, 32);
    {
        uint8_t e[32], m[32];
        spec_label(tk.secret, "ticket enc", NULL, 0, e, 32);
        spec_label(tk.secret, "ticket mac", NULL, 0, m, 32);
        hex("ticket enc key", e, 32);
        hex("ticket mac key", m, 32);
    }
    out("limits: max_message %u, max_inflight %u, ticket_lifetime %u s\n",
        MK_MESSAGE_MAX_DEFAULT, MK_INFLIGHT_DEFAULT,
        MK_TICKET_LIFETIME_DEFAULT);
}

static int handle(mk_session *s, const uint8_t *unit, size_t len, uint8_t *o,
                  mk_event *ev)
{
    return mk_session_handle(s, unit, len, o, MK_HANDLE_OUT_LEN, ev);
}

/* A big-endian integer of n bytes (§1). */
static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The ticket in the extras, opened and read field by field as §7 lays it
 * out, each field checked against what the session must have put there:
 * the server key of the full handshake, the server's clock now (issued)
 * and at the full handshake (auth), the lifetime, and the resumption
 * secret derived by the spec's schedule. */
static void print_ticket(const uint8_t *extras_pt, size_t n, uint64_t issued,
                         uint64_t auth, const uint8_t resumption[32])
{
    /* extras: max_message u32, max_inflight u16, 0 u16, lifetime u32,
     * ticket u16-prefixed (§4.2.1); the ticket (§7): name, IV, ciphertext
     * under the ticket enc key, tag under the ticket mac key over the rest.
     */
    uint8_t e[32], m[32], sec[32], st[128], tag[32], id[8];
    size_t tl = (size_t)extras_pt[12] << 8 | extras_pt[13], sl = 0;
    const uint8_t *t = extras_pt + 14;
    uint32_t life = (uint32_t)get_be(extras_pt + 8, 4);
    mk_server_key *k = tu_server_key("server2048.pem");

    assert_int_equal(14 + tl, n);
    assert_int_equal(tl, 128);
    for (int i = 0; i < 32; i++)
        sec[i] = (uint8_t)i;
    spec_label(sec, "ticket enc", NULL, 0, e, 32);
    spec_label(sec, "ticket mac", NULL, 0, m, 32);
    hmac(m, t, tl - 32, tag);
    assert_memory_equal(tag, t + tl - 32, 32);
    assert_memory_equal(t, "vector-ticket-k1", 16);
    assert_int_equal(
        mkc_cbc_decrypt(e, t + 16, t + 32, tl - 64, st, sizeof st, &sl), MK_OK);
    hex("ticket state (decrypted)", st, sl);
    assert_int_equal(sl, 62);
    mk_server_key_id(k, id);
    mk_server_key_free(k);
    assert_int_equal(st[0], 3); /* version */
    assert_int_equal(st[1], 0); /* reserved */
    assert_memory_equal(st + 2, id, 8);
    assert_true(get_be(st + 10, 8) == issued);
    assert_true(get_be(st + 18, 8) == auth);
    assert_int_equal(get_be(st + 26, 4), life);
    assert_int_equal(life, MK_TICKET_LIFETIME_DEFAULT);
    assert_memory_equal(st + 30, resumption, 32);
    out("  = version %u, reserved 0, key_id (the server key id), issued %llu "
        "ms,\n    auth_time %llu ms, lifetime %u s, resumption_secret "
        "(above)\n",
        st[0], (unsigned long long)issued, (unsigned long long)auth, life);
}

/* The SERVER_HELLO's extras (§4.2: after header, magic, mode, flags,
 * random and share), decrypted under the spec's extras key, and the
 * ticket in them. */
static void print_extras(const uint8_t *sh, const spec_keys *k, uint64_t issued,
                         uint64_t auth)
{
    const uint8_t *x = sh + 4 + 4 + 2 + 64;
    size_t xlen = (size_t)x[0] << 8 | x[1], xl = 0;
    uint8_t xpt[512];

    assert_int_equal(mkc_cbc_decrypt(k->extras, x + 2, x + 18, xlen - 16, xpt,
                                     sizeof xpt, &xl),
                     MK_OK);
    hex("extras plaintext", xpt, xl);
    print_ticket(xpt, xl, issued, auth, k->resumption);
}

static void full_vector(void)
{
    uint8_t ch[MK_HANDLE_OUT_LEN], sh[MK_HANDLE_OUT_LEN], o[MK_HANDLE_OUT_LEN];
    uint8_t rec[2048], dh[32], c_pub[32], s_pub[32], dec[512];
    size_t ch_len = 0, sh_len = 0, n = 0, ci = 0, si = 0, dl = 0;
    const uint8_t *c_rand, *c_priv, *kem, *seed, *s_rand, *s_priv, *iv;
    const uint8_t *s_fallback;
    mk_session *c = NULL, *s = NULL;
    spec_keys k;
    mk_event ev;

    out("\n== Vector 1: full handshake and records ==\n");
    out("client clock %llu ms, server clock %llu ms\n",
        (unsigned long long)T0_CLIENT, (unsigned long long)T0_SERVER);
    assert_int_equal(mk_session_new_client(&c, ccfg, NULL, 0), MK_OK);
    assert_int_equal(mk_session_new_server(&s, scfg), MK_OK);
    assert_int_equal(mk_client_hello(c, ch, sizeof ch, &ch_len), MK_OK);
    assert_int_equal(handle(s, ch, ch_len, sh, &ev), MK_OK);
    assert_int_equal(ev.type, MK_EV_ESTABLISHED);
    sh_len = ev.len;
    assert_int_equal(handle(c, sh, sh_len, o, &ev), MK_OK);
    assert_int_equal(ev.type, MK_EV_ESTABLISHED);

    /* Random inputs, in the order the spec draws them (§4.1, §4.2). */
    c_rand = take(&cenv, &ci, 32);
    c_priv = take(&cenv, &ci, 32);
    kem = take(&cenv, &ci, 32);
    seed = take(&cenv, &ci, 32);
    s_fallback = take(&senv, &si, 32); /* drawn first, unused on success */
    s_rand = take(&senv, &si, 32);
    s_priv = take(&senv, &si, 32);
    spec_dh(c_priv, s_priv, c_pub, s_pub, dh);
    hex("client_random", c_rand, 32);
    hex("client ephemeral private", c_priv, 32);
    hex("client ephemeral public", c_pub, 32);
    hex("kem_secret", kem, 32);
    hex("OAEP seed", seed, 32);
    hex("server_random", s_rand, 32);
    hex("server ephemeral private", s_priv, 32);
    hex("server ephemeral public", s_pub, 32);
    hex("server fallback secret (drawn first, unused)", s_fallback, 32);
    hex("ticket IV", take(&senv, &si, 16), 16);
    hex("extras IV", take(&senv, &si, 16), 16);

    /* The CLIENT_HELLO's RSA-OAEP block (offset 92, after its u16 length
     * at 90) decrypts to kem_secret under the label "megaki v2" (§4.1). */
    {
        size_t klen;
        uint8_t *pem = tl_load("tests/vectors/keys/server2048.pem", &klen);
        mkc_rsa *rsa = NULL;
        assert_int_equal(mkc_rsa_load_private(pem, klen, &rsa), MK_OK);
        assert_int_equal((size_t)ch[90] << 8 | ch[91], 256);
        assert_int_equal(mkc_oaep_decrypt(rsa, (const uint8_t *)"megaki v2", 9,
                                          ch + 92, 256, dec, sizeof dec, &dl),
                         MK_OK);
        assert_int_equal(dl, 32);
        assert_memory_equal(dec, kem, 32);
        mkc_rsa_free(rsa);
        free(pem);
    }
    hex("X25519 shared secret", dh, 32);
    spec_schedule(kem, dh, ch, ch_len, sh, sh_len, &k);
    print_schedule(&k);
    assert_memory_equal(sh + sh_len - 32, k.finished, 32);
    print_extras(sh, &k, T0_SERVER, T0_SERVER);
    (void)dec;
    (void)dl;
    hex("CLIENT_HELLO", ch, ch_len);
    hex("SERVER_HELLO", sh, sh_len);

    /* Records: a request, its response, a request answered by an error,
     * and the close records of both sides. */
    {
        static const uint8_t q1[] = "hello megaki";
        static const uint8_t r1[] = "hello, world";
        static const uint8_t q2[] = "please fail";
        uint8_t epl[6] = {0x00, MK_ECODE_APPLICATION, 'b', 'o', 'o', 'm'};

        assert_int_equal(
            mk_seal_record(c, 1, 1, q1, sizeof q1 - 1, rec, sizeof rec, &n),
            MK_OK);
        iv = take(&cenv, &ci, 16);
        spec_record("record 1 (client -> server)", k.c2s_enc, k.c2s_mac, 0,
                    MK_UNIT_DATA, 1, 1, iv, q1, sizeof q1 - 1, rec, n);
        assert_int_equal(handle(s, rec, n, o, &ev), MK_OK);
        assert_int_equal(ev.type, MK_EV_DATA);

        assert_int_equal(
            mk_seal_record(s, 1, 1, r1, sizeof r1 - 1, rec, sizeof rec, &n),
            MK_OK);
        iv = take(&senv, &si, 16);
        spec_record("record 2 (server -> client)", k.s2c_enc, k.s2c_mac, 0,
                    MK_UNIT_DATA, 1, 1, iv, r1, sizeof r1 - 1, rec, n);
        assert_int_equal(handle(c, rec, n, o, &ev), MK_OK);
        assert_int_equal(ev.type, MK_EV_DATA);

        assert_int_equal(
            mk_seal_record(c, 2, 1, q2, sizeof q2 - 1, rec, sizeof rec, &n),
            MK_OK);
        iv = take(&cenv, &ci, 16);
        spec_record("record 3 (client -> server)", k.c2s_enc, k.c2s_mac, 1,
                    MK_UNIT_DATA, 1, 2, iv, q2, sizeof q2 - 1, rec, n);
        assert_int_equal(handle(s, rec, n, o, &ev), MK_OK);

        assert_int_equal(mk_seal_error(s, 2, MK_ECODE_APPLICATION, "boom", 4,
                                       rec, sizeof rec, &n),
                         MK_OK);
        iv = take(&senv, &si, 16);
        spec_record("record 4 (server -> client, error)", k.s2c_enc, k.s2c_mac,
                    1, MK_UNIT_ERROR, 1, 2, iv, epl, sizeof epl, rec, n);
        assert_int_equal(handle(c, rec, n, o, &ev), MK_OK);
        assert_int_equal(ev.type, MK_EV_ERROR);
        assert_int_equal(ev.error_code, MK_ECODE_APPLICATION);

        assert_int_equal(mk_seal_close(c, rec, sizeof rec, &n), MK_OK);
        iv = take(&cenv, &ci, 16);
        spec_record("record 5 (client -> server, close)", k.c2s_enc, k.c2s_mac,
                    2, MK_UNIT_CLOSE, 1, 0, iv, NULL, 0, rec, n);
        assert_int_equal(handle(s, rec, n, o, &ev), MK_OK);
        assert_int_equal(ev.type, MK_EV_CLOSE);

        assert_int_equal(mk_seal_close(s, rec, sizeof rec, &n), MK_OK);
        iv = take(&senv, &si, 16);
        spec_record("record 6 (server -> client, close)", k.s2c_enc, k.s2c_mac,
                    2, MK_UNIT_CLOSE, 1, 0, iv, NULL, 0, rec, n);
        assert_int_equal(handle(c, rec, n, o, &ev), MK_OK);
        assert_int_equal(mk_session_state(c), MK_STATE_CLOSED);
    }
    assert_int_equal(ci, cenv.n);
    assert_int_equal(si, senv.n);
    assert_int_equal(mk_session_export(c, blob, sizeof blob, &blob_len), MK_OK);
    hex("\nexported session blob (§10; secret)", blob, blob_len);
    mk_session_free(c);
    mk_session_free(s);
}

static void resume_vector(void)
{
    uint8_t ch[MK_HANDLE_OUT_LEN], sh[MK_HANDLE_OUT_LEN], o[MK_HANDLE_OUT_LEN];
    uint8_t rec[2048], dh[32], c_pub[32], s_pub[32], early[32], bk[32];
    uint8_t h[32], binder[32];
    uint8_t empty_hash[32], res[32];
    size_t ch_len = 0, sh_len = 0, n = 0, ci, si;
    const uint8_t *c_priv, *s_priv, *iv;
    mk_session *c = NULL, *s = NULL;
    spec_keys k;
    mk_event ev;
    static const uint8_t zeros[32];

    out("\n== Vector 2: resumption from the ticket of vector 1 ==\n");
    cenv.base.now_ms = T0_CLIENT + 60000;
    senv.base.now_ms = T0_SERVER + 60000;
    out("client clock %llu ms, server clock %llu ms\n",
        (unsigned long long)cenv.base.now_ms,
        (unsigned long long)senv.base.now_ms);
    ci = cenv.n;
    si = senv.n;
    assert_int_equal(mk_session_new_client(&c, ccfg, blob, blob_len), MK_OK);
    assert_int_equal(mk_session_new_server(&s, scfg), MK_OK);
    assert_int_equal(mk_client_hello(c, ch, sizeof ch, &ch_len), MK_OK);
    assert_int_equal(handle(s, ch, ch_len, sh, &ev), MK_OK);
    assert_int_equal(ev.type, MK_EV_ESTABLISHED);
    sh_len = ev.len;
    assert_int_equal(handle(c, sh, sh_len, o, &ev), MK_OK);
    {
        mk_session_info info;
        mk_session_get_info(c, &info);
        assert_true(info.resumed);
    }
    hex("client_random", take(&cenv, &ci, 32), 32);
    c_priv = take(&cenv, &ci, 32);
    hex("client ephemeral private", c_priv, 32);
    hex("server_random", take(&senv, &si, 32), 32);
    s_priv = take(&senv, &si, 32);
    hex("server ephemeral private", s_priv, 32);
    hex("ticket IV", take(&senv, &si, 16), 16);
    hex("extras IV", take(&senv, &si, 16), 16);

    /* The resumption secret travels in the blob (§10): bytes 24..56. */
    memcpy(res, blob + 24, 32);
    hex("resumption_secret (from vector 1)", res, 32);
    assert_int_equal(mkc_hkdf_extract(zeros, 32, res, 32, early), MK_OK);
    sha(NULL, 0, empty_hash);
    spec_label(early, "res binder", empty_hash, 32, bk, 32);
    sha(ch, ch_len - 32, h);
    hmac(bk, h, 32, binder);
    hex("binder_key", bk, 32);
    hex("binder", binder, 32);
    assert_memory_equal(ch + ch_len - 32, binder, 32);

    spec_dh(c_priv, s_priv, c_pub, s_pub, dh);
    hex("X25519 shared secret", dh, 32);
    spec_schedule(res, dh, ch, ch_len, sh, sh_len, &k);
    print_schedule(&k);
    assert_memory_equal(sh + sh_len - 32, k.finished, 32);
    /* The new ticket keeps the time of vector 1's full handshake (§7). */
    print_extras(sh, &k, senv.base.now_ms, T0_SERVER);
    hex("CLIENT_HELLO", ch, ch_len);
    hex("SERVER_HELLO", sh, sh_len);
    {
        static const uint8_t q[] = "again";
        assert_int_equal(
            mk_seal_record(c, 1, 1, q, sizeof q - 1, rec, sizeof rec, &n),
            MK_OK);
        iv = take(&cenv, &ci, 16);
        spec_record("record 1 (client -> server)", k.c2s_enc, k.c2s_mac, 0,
                    MK_UNIT_DATA, 1, 1, iv, q, sizeof q - 1, rec, n);
        assert_int_equal(handle(s, rec, n, o, &ev), MK_OK);
        assert_int_equal(
            mk_seal_record(s, 1, 1, q, sizeof q - 1, rec, sizeof rec, &n),
            MK_OK);
        iv = take(&senv, &si, 16);
        spec_record("record 2 (server -> client)", k.s2c_enc, k.s2c_mac, 0,
                    MK_UNIT_DATA, 1, 1, iv, q, sizeof q - 1, rec, n);
        assert_int_equal(handle(c, rec, n, o, &ev), MK_OK);
    }
    assert_int_equal(ci, cenv.n);
    assert_int_equal(si, senv.n);
    mk_session_free(c);
    mk_session_free(s);
}

static void test_vectors(void **st)
{
    (void)st;
    log_env_init(&cenv, "megaki v2 test vectors: client", T0_CLIENT);
    log_env_init(&senv, "megaki v2 test vectors: server", T0_SERVER);
    setup_configs();
    full_vector();
    resume_vector();
    mk_server_config_unref(scfg);
    mk_client_config_unref(ccfg);

    if (getenv("MK_WRITE_VECTORS") != NULL) {
        FILE *f = fopen(VECTOR_FILE, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, text_len, f), text_len);
        fclose(f);
        fprintf(stderr, "wrote %s (%zu bytes)\n", VECTOR_FILE, text_len);
    } else {
        size_t len;
        uint8_t *want = tl_load(VECTOR_FILE, &len);
        if (len != text_len || memcmp(want, text, len) != 0) {
            fprintf(stderr, "vectors differ from %s; got:\n%s\n", VECTOR_FILE,
                    text);
            fail();
        }
        free(want);
    }
    free(text);
}

/* The spec quotes the vector file verbatim, so the two cannot drift. */
static void test_spec_quotes_vectors(void **st)
{
    size_t vl, sl;
    uint8_t *v = tl_load(VECTOR_FILE, &vl);
    uint8_t *s = tl_load(SPEC_FILE, &sl);
    (void)st;
    assert_non_null(strstr((const char *)s, (const char *)v));
    free(v);
    free(s);
}

/* The two empty contexts of the key schedule (§6.1, §7): Derive-Secret
 * with no messages hashes them, so its context is H("") (32 bytes); the
 * ticket keys' HKDF-Expand-Label takes "" itself (a zero-length context).
 * The library's functions against the spec's encoding, and against the
 * other reading, which must differ. */
static void test_empty_contexts(void **st)
{
    static const uint8_t h_empty[32] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
        0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
        0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    uint8_t secret[32], h[32], lib[32], spec[32], other[32];
    (void)st;

    for (int i = 0; i < 32; i++)
        secret[i] = (uint8_t)(0x80 + i);
    sha(NULL, 0, h);
    assert_memory_equal(h, h_empty, 32);
    /* Derive-Secret(secret, "derived", ""): context H(""). */
    assert_int_equal(mk__derive_secret(secret, "derived", NULL, 0, lib), MK_OK);
    spec_label(secret, "derived", h_empty, 32, spec, 32);
    spec_label(secret, "derived", NULL, 0, other, 32);
    assert_memory_equal(lib, spec, 32);
    assert_memory_not_equal(lib, other, 32);
    /* HKDF-Expand-Label(ticket_key_secret, "ticket enc", "", 32): context
     * of length 0. */
    assert_int_equal(
        mk__expand_label(secret, "ticket enc", NULL, 0, lib, sizeof lib),
        MK_OK);
    spec_label(secret, "ticket enc", NULL, 0, spec, 32);
    spec_label(secret, "ticket enc", h_empty, 32, other, 32);
    assert_memory_equal(lib, spec, 32);
    assert_memory_not_equal(lib, other, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_spec_quotes_vectors),
        cmocka_unit_test(test_empty_contexts),
    };
    return cmocka_run_group_tests_name("vectors", tests, NULL, NULL);
}
