/*
 * oaep_timing.c -- does the server's full handshake take longer, or
 * shorter, when the client's RSA-OAEP key transport does not decrypt?
 *
 * A dudect-style leakage test (Reparaz, Balasch, Verbauwhede, "Dude, is my
 * code constant time?", 2017) of docs/PROTOCOL.md §12.1. Two classes of
 * CLIENT_HELLO, identical but for the `kem` field:
 *
 *   valid    a real client's hello: the OAEP block decrypts to 32 bytes;
 *   invalid  the same hello with `kem` replaced by a value below the
 *            modulus that is not a valid OAEP block under the label
 *            (--invalid random: random bytes with the top byte cleared,
 *            almost always "first byte not zero"; --invalid label: a real
 *            OAEP encryption of 32 bytes under the wrong label "megaki v1",
 *            "first byte zero, label hash wrong").
 *
 * Each measurement is one mk_session_handle() on one hello in a fresh
 * server session (created and freed outside the timed region), so the
 * whole path is timed: framing, parsing, RSA-OAEP decryption through
 * libcrypto, the constant-time fallback, X25519, the key schedule, the
 * ticket and the SERVER_HELLO. The class of every measurement is drawn at
 * random, so both classes share whatever else the machine does. Before
 * timing, every hello of the pool is checked to be what its class says:
 * a valid one completes the handshake with the client that wrote it, an
 * invalid one fails that client's Finished check (the server continued
 * with its random fallback, as it must).
 *
 * Welch's t statistic between the two classes' times is computed over all
 * measurements and, as dudect does, over the measurements below several
 * percentiles of the pooled distribution (cropping the long tail that
 * preemption and interrupts add on a busy machine). |t| < 4.5 is the
 * usual threshold for "no evidence of a difference" at these sample
 * sizes; more samples detect smaller differences.
 *
 * Usage (from the project root, so that tests/vectors/keys/ is found):
 *   oaep_timing [--quick] [--samples N] [--pool N] [--key PEM]
 *               [--invalid random|label] [--cpu-time] [--seed N]
 * Exit status 0 whatever t is (a benchmark reports; it does not fail CI),
 * 1 if the benchmark cannot run, which --quick turns into a smoke test;
 * 2 for a bad command line.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "megaki.h"
#include "testlib.h"

/* CLIENT_HELLO (§4.1), full mode: header 4, magic 4, mode, flags, random
 * 32, share 32, time 8, key id 8, then the u16 length of kem at 90 and kem
 * itself at 92. */
#define KEM_LEN_OFF 90
#define KEM_OFF     92

#define WARMUP_SHARE 50 /* one measurement in this many is warm-up */

enum { VALID = 0, INVALID = 1 };
static const char *const class_names[] = {"valid", "invalid"};

static void check(int r, const char *what)
{
    if (r != MK_OK)
        tl_die("%s: %s (%s)", what, mk_err_name(r), mk_strerror(r));
}

/* --- the clock and the order ------------------------------------------- */

static clockid_t bench_clock = CLOCK_MONOTONIC;

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(bench_clock, &ts) != 0)
        tl_die("clock_gettime:");
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: the order of classes and pool entries. Not for secrets;
 * only so that the sequence is random with respect to the machine's
 * rhythms and reproducible with --seed. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* --- Welch's t-test ------------------------------------------------------ */

typedef struct welch {
    double n[2], mean[2], m2[2]; /* Welford's running moments */
} welch;

static void welch_add(welch *w, int cls, double x)
{
    double d = x - w->mean[cls];
    w->n[cls] += 1;
    w->mean[cls] += d / w->n[cls];
    w->m2[cls] += d * (x - w->mean[cls]);
}

/* The standard error of the difference of the two means. */
static double welch_se(const welch *w)
{
    if (w->n[0] < 2 || w->n[1] < 2)
        return 0;
    return sqrt(w->m2[0] / (w->n[0] - 1) / w->n[0] +
                w->m2[1] / (w->n[1] - 1) / w->n[1]);
}

static double welch_t(const welch *w)
{
    double se = welch_se(w);
    return se == 0 ? 0 : (w->mean[0] - w->mean[1]) / se;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* --- the hellos --------------------------------------------------------- */

typedef struct hello {
    uint8_t unit[MK_HANDLE_OUT_LEN];
    size_t len;
    mk_session *client; /* the client that wrote it, until checked */
} hello;

/* The invalid key transport: a value below the modulus that does not
 * decode. kem_len is the modulus size (checked by the caller). */
static void bad_kem(EVP_PKEY *pub, int label_mode, uint8_t *kem, size_t kem_len)
{
    static const uint8_t secret[32] = {0x42};
    EVP_PKEY_CTX *ctx;
    void *label;
    size_t n = kem_len;

    if (!label_mode) {
        if (RAND_bytes(kem, (int)kem_len) != 1)
            tl_die("RAND_bytes failed");
        kem[0] = 0; /* below the modulus, whose top byte is nonzero */
        return;
    }
    if ((ctx = EVP_PKEY_CTX_new(pub, NULL)) == NULL ||
        (label = OPENSSL_memdup("megaki v1", 9)) == NULL ||
        EVP_PKEY_encrypt_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, 9) <= 0 ||
        EVP_PKEY_encrypt(ctx, kem, &n, secret, sizeof secret) != 1 ||
        n != kem_len)
        tl_die("OAEP encryption under the wrong label failed");
    EVP_PKEY_CTX_free(ctx);
}

static void make_hellos(mk_client_config *cc, EVP_PKEY *pub, int label_mode,
                        hello *pool, size_t n, int cls)
{
    for (size_t i = 0; i < n; i++) {
        hello *h = &pool[i];
        size_t kem_len;
        check(mk_session_new_client(&h->client, cc, NULL, 0), "client");
        check(mk_client_hello(h->client, h->unit, sizeof h->unit, &h->len),
              "client hello");
        kem_len = (size_t)h->unit[KEM_LEN_OFF] << 8 | h->unit[KEM_LEN_OFF + 1];
        if (KEM_OFF + kem_len != h->len)
            tl_die("unexpected CLIENT_HELLO layout");
        if (cls == INVALID)
            bad_kem(pub, label_mode, h->unit + KEM_OFF, kem_len);
    }
}

/* One server handshake on h; returns the nanoseconds it took. The
 * SERVER_HELLO lands in sh. */
static uint64_t serve(mk_server_config *sc, const hello *h, uint8_t *sh,
                      size_t *sh_len)
{
    mk_session *srv = NULL;
    mk_event ev;
    uint64_t t0, t1;
    int r;

    check(mk_session_new_server(&srv, sc), "server");
    t0 = now_ns();
    r = mk_session_handle(srv, h->unit, h->len, sh, MK_HANDLE_OUT_LEN, &ev);
    t1 = now_ns();
    /* Both classes must get the same answer: an ordinary SERVER_HELLO. */
    check(r, "server handshake");
    if (ev.type != MK_EV_ESTABLISHED)
        tl_die("server did not answer with a SERVER_HELLO");
    *sh_len = ev.len;
    mk_session_free(srv);
    return t1 - t0;
}

/* Each hello is what its class says: the client that wrote a valid one
 * completes the handshake; for an invalid one the server went on with its
 * random fallback, so that client's Finished check fails. */
static void check_pool(mk_server_config *sc, hello *pool, size_t n, int cls)
{
    uint8_t sh[MK_HANDLE_OUT_LEN], out[MK_HANDLE_OUT_LEN];
    size_t sh_len = 0;
    mk_event ev;
    int r;

    for (size_t i = 0; i < n; i++) {
        (void)serve(sc, &pool[i], sh, &sh_len);
        r = mk_session_handle(pool[i].client, sh, sh_len, out, sizeof out, &ev);
        if (cls == VALID ? r != MK_OK : r != MK_ERR_SERVER_AUTH)
            tl_die("%s hello %zu: the client got %s", class_names[cls], i,
                   mk_err_name(r));
        mk_session_free(pool[i].client);
        pool[i].client = NULL;
    }
}

/* --- set-up --------------------------------------------------------------- */

static void setup(const char *key_path, mk_server_config **sc_out,
                  mk_client_config **cc_out, EVP_PKEY **pub_out, unsigned *bits)
{
    uint8_t der[1024], *pem;
    const unsigned char *p = der;
    size_t pem_len = 0, der_len = 0;
    mk_server_key *key = NULL;
    mk_ticket_key tk;

    if ((pem = (uint8_t *)tl_read_file(key_path, &pem_len)) == NULL)
        tl_die("cannot read %s (run from the project root, or pass --key)",
               key_path);
    check(mk_server_key_load_pem(&key, pem, pem_len), key_path);
    mk_wipe(pem, pem_len);
    free(pem);
    *bits = mk_server_key_bits(key);
    check(mk_server_key_public_der(key, der, sizeof der, &der_len),
          "public key");
    if ((*pub_out = d2i_PUBKEY(NULL, &p, (long)der_len)) == NULL)
        tl_die("d2i_PUBKEY failed");
    check(mk_client_config_new(cc_out, mk_env_system()), "client config");
    check(mk_client_config_pin(*cc_out, der, der_len), "pin");
    /* The server as in production: the system environment, a ticket key
     * (so the ticket is sealed, as on every real handshake). */
    check(mk_server_config_new(sc_out, mk_env_system()), "server config");
    check(mk_server_config_add_key(*sc_out, key), "server key");
    if (RAND_bytes(tk.name, sizeof tk.name) != 1 ||
        RAND_bytes(tk.secret, sizeof tk.secret) != 1)
        tl_die("RAND_bytes failed");
    check(mk_server_config_set_ticket_keys(*sc_out, &tk, 1), "ticket key");
    mk_wipe(&tk, sizeof tk);
}

static void usage(void)
{
    printf("usage: oaep_timing [--quick] [--samples N] [--pool N] "
           "[--key PEM]\n"
           "                   [--invalid random|label] [--cpu-time] "
           "[--seed N]\n"
           "  --quick        a short smoke run (400 samples, pools of 4)\n"
           "  --samples N    measurements, 1..100000000 (default 20000)\n"
           "  --pool N       hellos made per class, 1..100000 (default 64)\n"
           "  --key PEM      the server key (default "
           "tests/vectors/keys/server2048.pem)\n"
           "  --invalid K    the invalid class: random (below n, default) "
           "or label\n"
           "                 (OAEP under a wrong label)\n"
           "  --cpu-time     time with the thread's CPU clock\n"
           "  --seed N       the sampling order's seed, 1..2^64-1\n"
           "Exit status: 0 whatever t is, 1 if it cannot run, 2 for a bad "
           "command line.\n");
}

typedef struct args {
    const char *key_path;
    unsigned long samples, pool_n;
    int label_mode;
} args;

/* Options in order: --quick sets samples and pool where it stands. */
static void parse_args(int argc, char **argv, args *a)
{
    static const struct option longs[] = {
        {"quick", no_argument, NULL, 'q'},
        {"samples", required_argument, NULL, 's'},
        {"pool", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 'S'},
        {"key", required_argument, NULL, 'k'},
        {"invalid", required_argument, NULL, 'i'},
        {"cpu-time", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = tl_getopt(argc, argv, "h", longs, usage)) != -1) {
        if (ch == 'q') {
            a->samples = 400;
            a->pool_n = 4;
        } else if (ch == 's') {
            a->samples = tl_opt_uint("--samples", optarg, 1, 100000000);
        } else if (ch == 'p') {
            a->pool_n = tl_opt_uint("--pool", optarg, 1, 100000);
        } else if (ch == 'S') {
            rng_state = tl_opt_uint("--seed", optarg, 1, UINT64_MAX);
        } else if (ch == 'k') {
            a->key_path = optarg;
        } else if (ch == 'i' && (strcmp(optarg, "label") == 0 ||
                                 strcmp(optarg, "random") == 0)) {
            a->label_mode = strcmp(optarg, "label") == 0;
        } else if (ch == 'i') {
            tl_usage_error("--invalid: expected random or label, not '%s'",
                           optarg);
        } else if (ch == 'C') {
            bench_clock = CLOCK_THREAD_CPUTIME_ID;
        }
    }
}

int main(int argc, char **argv)
{
    static const double crops[] = {1.0, 0.99, 0.95, 0.90, 0.75, 0.50};
    args a = {"tests/vectors/keys/server2048.pem", 20000, 64, 0};
    const char *key_path;
    unsigned long samples, pool_n;
    uint8_t sh[MK_HANDLE_OUT_LEN];
    size_t sh_len = 0, warmup, ncls[2] = {0, 0}, m = 0;
    int label_mode;
    double max_t = 0;
    mk_server_config *sc = NULL;
    mk_client_config *cc = NULL;
    EVP_PKEY *pub = NULL;
    hello *pool[2];
    uint64_t *t_all, *t_sorted;
    uint8_t *cls_of;
    unsigned bits = 0;

    tl_set_prog("oaep_timing");
    parse_args(argc, argv, &a);
    key_path = a.key_path;
    samples = a.samples;
    pool_n = a.pool_n;
    label_mode = a.label_mode;

    setup(key_path, &sc, &cc, &pub, &bits);
    for (int c = 0; c < 2; c++) {
        if ((pool[c] = calloc(pool_n, sizeof *pool[c])) == NULL)
            tl_die("out of memory");
        make_hellos(cc, pub, label_mode, pool[c], pool_n, c);
        check_pool(sc, pool[c], pool_n, c);
    }
    warmup = samples / WARMUP_SHARE + 1;
    t_all = calloc(samples, sizeof *t_all);
    t_sorted = calloc(samples, sizeof *t_sorted);
    cls_of = calloc(samples, 1);
    if (t_all == NULL || t_sorted == NULL || cls_of == NULL)
        tl_die("out of memory");

    printf("oaep_timing: RSA-%u, %s, %lu measurements (+%zu warm-up), "
           "pool of %lu hellos per class, invalid = %s\n",
           bits,
           bench_clock == CLOCK_MONOTONIC ? "CLOCK_MONOTONIC"
                                          : "CLOCK_THREAD_CPUTIME_ID",
           samples, warmup, pool_n,
           label_mode ? "OAEP under a wrong label" : "random below n");
    fflush(stdout);
    for (size_t i = 0; i < warmup + samples; i++) {
        int c = (int)(rng() >> 63);
        const hello *h = &pool[c][rng() % pool_n];
        uint64_t t = serve(sc, h, sh, &sh_len);
        if (i < warmup)
            continue;
        t_all[m] = t;
        cls_of[m] = (uint8_t)c;
        ncls[c]++;
        m++;
    }

    /* The thresholds are percentiles of both classes together, so a crop
     * never favours one class. */
    memcpy(t_sorted, t_all, m * sizeof *t_all);
    qsort(t_sorted, m, sizeof *t_sorted, cmp_u64);
    /* "resolution": the difference of means that would give |t| = 4.5 in
     * this run (4.5 standard errors); a leak smaller than that goes
     * unseen, and more samples make it smaller. */
    printf("\n%-12s %12s %12s %10s %10s %10s %11s\n", "measurements",
           "valid mean", "invalid mean", "n valid", "n invalid", "t",
           "resolution");
    for (size_t k = 0; k < sizeof crops / sizeof crops[0]; k++) {
        size_t at = (size_t)(crops[k] * (double)(m - 1));
        uint64_t limit = t_sorted[at];
        char name[16];
        welch w;
        double t;
        memset(&w, 0, sizeof w);
        for (size_t i = 0; i < m; i++)
            if (t_all[i] <= limit)
                welch_add(&w, cls_of[i], (double)t_all[i]);
        t = welch_t(&w);
        if (fabs(t) > fabs(max_t))
            max_t = t;
        if (crops[k] == 1.0)
            snprintf(name, sizeof name, "all");
        else
            snprintf(name, sizeof name, "<= p%.0f", crops[k] * 100);
        printf("%-12s %9.1f us %9.1f us %10.0f %10.0f %+10.2f %8.2f us\n", name,
               w.mean[0] / 1e3, w.mean[1] / 1e3, w.n[0], w.n[1], t,
               4.5 * welch_se(&w) / 1e3);
    }
    printf("\nmax |t| = %.2f over %zu valid and %zu invalid measurements: "
           "%s\n",
           fabs(max_t), ncls[VALID], ncls[INVALID],
           fabs(max_t) < 4.5 ? "no evidence of a timing difference "
                               "(|t| < 4.5)"
                             : "the classes differ (|t| >= 4.5): "
                               "investigate, or re-run on a quieter machine");

    for (int c = 0; c < 2; c++)
        free(pool[c]);
    free(t_all);
    free(t_sorted);
    free(cls_of);
    EVP_PKEY_free(pub);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
    return 0;
}
