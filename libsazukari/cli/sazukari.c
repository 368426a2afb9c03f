/*
 * sazukari -- the Megaki command-line client.
 *
 *   sazukari [options] HOST:PORT[,HOST:PORT...] [REQUEST]
 *
 * Sends one request (the argument, a file, or standard input) and writes
 * the response, raw, to standard output; or, with --load, drives many
 * requests over many connections and reports throughput and latency.
 * Everything a script needs to know is in the exit code (see usage()).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sazukari.h"

/* Exit codes: one per class of failure, stable for scripts. */
enum {
    EX_OK = 0,
    EX_LOCAL = 1,     /* local failure: memory, crypto, writing output */
    EX_USAGE = 2,     /* bad arguments, unreadable key or request file */
    EX_PIN = 3,       /* the server is not the pinned server */
    EX_CONNECT = 4,   /* name resolution or TCP connect failed */
    EX_TIMEOUT = 5,   /* a connect, I/O or request timeout */
    EX_IO = 6,        /* the connection broke or was closed */
    EX_PROTOCOL = 7,  /* protocol violation, handshake refused, version */
    EX_SERVER = 8,    /* the server answered with an error */
    EX_TOO_LARGE = 9, /* request over the server's maximum / "too large" */
    EX_BUSY = 10      /* the server said "retry later" */
};

#define MAX_PINS    16
#define MAX_REQUEST (256u << 20)

static const char *prog = "sazukari";

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: %s [options] HOST:PORT[,HOST:PORT...] [REQUEST]\n"
        "\n"
        "Send REQUEST to a Megaki server whose public key is pinned, and write "
        "the\n"
        "response (raw bytes) to standard output. The request is the REQUEST\n"
        "argument, else the file given with -f, else standard input.\n"
        "HOST may be a name, an IPv4 address or a bracketed IPv6 address:\n"
        "  sazukari -k server.pub.pem localhost:4433 'hello'\n"
        "  sazukari -k server.pub.pem '[::1]:4433' -f request.bin > "
        "response.bin\n"
        "Several servers of one service, separated by commas, are tried in "
        "turn\n"
        "(a name that resolves to several addresses is one server per "
        "address);\n"
        "the request is sent again to the next one only if the first "
        "provably\n"
        "did not run it (-v names the server that answered):\n"
        "  sazukari -k server.pub.pem 10.0.0.1:7410,10.0.0.2:7410 'hello'\n"
        "\n"
        "Options:\n"
        "  -k, --key FILE          pin the server public key in FILE (PEM or "
        "DER;\n"
        "                          a PEM file may hold several keys). "
        "Repeatable;\n"
        "                          at least one is required.\n"
        "  -f, --file FILE         read the request from FILE ('-': standard "
        "input)\n"
        "  -s, --session FILE      resume the session saved in FILE if it "
        "exists,\n"
        "                          and save the new one there (mode 0600). The "
        "file\n"
        "                          is SECRET: it lets its holder resume the "
        "session.\n"
        "      --connect-timeout MS  TCP connect + handshake deadline (default "
        "10000)\n"
        "      --timeout MS        deadline per request (default 60000)\n"
        "      --io-timeout MS     longest silence while awaiting a response, "
        "and\n"
        "                          longest stall of a write (default 30000)\n"
        "                          (0 disables any of the three)\n"
        "  -v, --verbose           describe the handshake on standard error\n"
        "  -h, --help              show this help\n"
        "  -V, --version           show the version\n"
        "\n"
        "Load mode (--load): send many requests and report throughput and "
        "latency.\n"
        "Progress goes to standard error, the summary to standard output; the\n"
        "responses are discarded. Rates and latencies count successful "
        "requests\n"
        "only; when most requests were refused with retry_later, the summary\n"
        "names the server option that refused them.\n"
        "      --load              enable load mode\n"
        "  -n, --requests N        total number of requests (default 1000)\n"
        "  -d, --duration SECONDS  send requests for this long instead of -n\n"
        "  -c, --concurrency N     threads, each with its own connection "
        "(default 1)\n"
        "  -p, --inflight N        requests in flight per connection (default "
        "1;\n"
        "                          --reuse only)\n"
        "      --reuse             keep one connection per thread (default)\n"
        "      --new-handshake-per-request\n"
        "                          a new connection and a full handshake (RSA) "
        "for\n"
        "                          every request\n"
        "      --resume-per-request\n"
        "                          a new connection for every request, "
        "resuming\n"
        "                          the session (no RSA)\n"
        "  -q, --quiet             no progress display\n"
        "In load mode the session file, if given, is read but not written.\n"
        "\n"
        "Exit status:\n"
        "   0  success\n"
        "   1  local failure (out of memory, cannot write the output, ...)\n"
        "   2  usage: bad arguments, unreadable key, request or session file\n"
        "   3  pin failure: the server holds none of the pinned keys, or could "
        "not\n"
        "      prove it (wrong server or an attack; nothing was sent)\n"
        "   4  could not connect (name resolution, TCP connect "
        "refused/failed)\n"
        "   5  timeout (connect, handshake, I/O or request)\n"
        "   6  I/O error: the connection broke or the server closed it\n"
        "   7  protocol error, handshake refused, or protocol version "
        "mismatch\n"
        "   8  the server answered with an error (application, timeout,\n"
        "      overloaded, internal, shutdown)\n"
        "   9  the request is too large for the server\n"
        "  10  the server is busy and asked to retry later\n"
        "In load mode the status is 0 if every request succeeded, otherwise "
        "the\n"
        "status of the first failure.\n",
        prog);
}

static int exit_code(int err)
{
    switch (err) {
    case SZ_OK:
        return EX_OK;
    case SZ_ERR_USAGE:
    case SZ_ERR_KEY:
        return EX_USAGE;
    case SZ_ERR_PIN:
        return EX_PIN;
    case SZ_ERR_RESOLVE:
    case SZ_ERR_CONNECT:
        return EX_CONNECT;
    case SZ_ERR_TIMEOUT:
        return EX_TIMEOUT;
    case SZ_ERR_IO:
    case SZ_ERR_CLOSED:
        return EX_IO;
    case SZ_ERR_PROTOCOL:
    case SZ_ERR_HANDSHAKE:
    case SZ_ERR_VERSION:
        return EX_PROTOCOL;
    case SZ_ERR_SERVER_APP:
    case SZ_ERR_SERVER_TIMEOUT:
    case SZ_ERR_SERVER_OVERLOADED:
    case SZ_ERR_SERVER_INTERNAL:
    case SZ_ERR_SERVER_SHUTDOWN:
    case SZ_ERR_SERVER_OTHER:
        return EX_SERVER;
    case SZ_ERR_TOO_LARGE:
        return EX_TOO_LARGE;
    case SZ_ERR_BUSY:
        return EX_BUSY;
    default:
        return EX_LOCAL;
    }
}

/* Print the last libsazukari failure and return its exit code. */
static int report(int err, const char *what)
{
    sz_error_info ei;

    sz_last_error(&ei);
    fprintf(stderr, "%s: %s: %s (%s)", prog, what, sz_strerror(err),
            sz_err_name(err));
    if (ei.err == err && ei.text[0])
        fprintf(stderr, ": %s", ei.text);
    if (err == SZ_ERR_BUSY && ei.retry_after_ms)
        fprintf(stderr, " [retry after %u ms]", ei.retry_after_ms);
    fputc('\n', stderr);
    return exit_code(err);
}

/* --- options -------------------------------------------------------------- */

enum load_mode { LM_REUSE, LM_NEW_HANDSHAKE, LM_RESUME };

typedef struct opts {
    const char *keys[MAX_PINS];
    int nkeys;
    const char *file;
    const char *session;
    uint32_t connect_ms, io_ms, request_ms;
    int verbose, quiet;
    int load;
    int mode;
    uint64_t requests;
    uint32_t duration_s; /* -d: run this long instead of -n requests */
    int requests_set;
    uint32_t concurrency, inflight;
    char host[256];
    uint16_t port;
    const char *targets[SZ_SERVICE_MAX]; /* several: failover */
    size_t ntargets;
    char *target_buf; /* what targets point into */
    const char *request_arg;
} opts;

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;

    if (s == NULL || *s == 0 || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "host:port", "[v6]:port". */
static int parse_target(const char *t, opts *o)
{
    const char *colon, *host = t;
    size_t hl;
    uint64_t port;

    if (t[0] == '[') {
        const char *close = strchr(t, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        host = t + 1;
        hl = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(t, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - t);
        /* A bare IPv6 address is ambiguous: ask for brackets. */
        if (memchr(t, ':', hl) != NULL)
            return -2;
    }
    if (hl == 0 || hl >= sizeof o->host ||
        parse_u64(colon + 1, 1, 65535, &port) != 0)
        return -1;
    memcpy(o->host, host, hl);
    o->host[hl] = 0;
    o->port = (uint16_t)port;
    return 0;
}

/* Options that have no short form. */
enum { O_LOAD = 256, O_REUSE, O_NEWHS, O_RESUME, O_CTO, O_TO, O_IOTO };

static const char short_opts[] = "k:f:s:vqhVn:d:c:p:";
static const struct option long_opts[] = {
    {"key", required_argument, NULL, 'k'},
    {"file", required_argument, NULL, 'f'},
    {"session", required_argument, NULL, 's'},
    {"connect-timeout", required_argument, NULL, O_CTO},
    {"timeout", required_argument, NULL, O_TO},
    {"io-timeout", required_argument, NULL, O_IOTO},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"load", no_argument, NULL, O_LOAD},
    {"requests", required_argument, NULL, 'n'},
    {"duration", required_argument, NULL, 'd'},
    {"concurrency", required_argument, NULL, 'c'},
    {"inflight", required_argument, NULL, 'p'},
    {"reuse", no_argument, NULL, O_REUSE},
    {"new-handshake-per-request", no_argument, NULL, O_NEWHS},
    {"resume-per-request", no_argument, NULL, O_RESUME},
    {NULL, 0, NULL, 0},
};

static void set_defaults(opts *o)
{
    memset(o, 0, sizeof *o);
    o->connect_ms = 10000;
    o->io_ms = 30000;
    o->request_ms = 60000;
    o->requests = 1000;
    o->concurrency = 1;
    o->inflight = 1;
    o->mode = LM_REUSE;
}

/* A number in [min, max] into *out, which is left alone otherwise: 0, or
 * -1 after "bad WHAT 'ARG'" and the hint. */
static int opt_number(const char *what, const char *arg, uint64_t min,
                      uint64_t max, const char *hint, uint64_t *out)
{
    if (parse_u64(arg, min, max, out) == 0)
        return 0;
    fprintf(stderr, "%s: bad %s '%s'%s\n", prog, what, arg, hint);
    return -1;
}

/* The same for the options kept in 32 bits. */
static int opt_u32(const char *what, const char *arg, uint32_t min,
                   uint32_t max, const char *hint, uint32_t *out)
{
    uint64_t v = *out;
    int r = opt_number(what, arg, min, max, hint, &v);

    *out = (uint32_t)v;
    return r;
}

/* A timeout in milliseconds; 0 turns it off. */
static int opt_ms(const char *arg, uint32_t *out)
{
    return opt_u32("timeout", arg, 0, UINT32_MAX, " (milliseconds)", out);
}

static int add_key(opts *o, const char *path)
{
    if (o->nkeys == MAX_PINS) {
        fprintf(stderr, "%s: at most %d keys\n", prog, MAX_PINS);
        return -1;
    }
    o->keys[o->nkeys++] = path;
    return 0;
}

/* One option as getopt_long returned it: 0, or -1 after saying what is
 * wrong. --help and --version end the program here. */
static int take_option(int ch, const char *arg, opts *o)
{
    switch (ch) {
    case 'k':
        return add_key(o, arg);
    case 'f':
        o->file = arg;
        return 0;
    case 's':
        o->session = arg;
        return 0;
    case O_CTO:
        return opt_ms(arg, &o->connect_ms);
    case O_TO:
        return opt_ms(arg, &o->request_ms);
    case O_IOTO:
        return opt_ms(arg, &o->io_ms);
    case 'n':
        o->requests_set = 1;
        return opt_number("-n", arg, 1, UINT32_MAX, "", &o->requests);
    case 'd':
        return opt_u32("-d", arg, 1, 86400, " (seconds, 1..86400)",
                       &o->duration_s);
    case 'c':
        return opt_u32("-c", arg, 1, 1024, " (1..1024)", &o->concurrency);
    case 'p':
        return opt_u32("-p", arg, 1, 1024, " (1..1024)", &o->inflight);
    case 'v':
        o->verbose = 1;
        return 0;
    case 'q':
        o->quiet = 1;
        return 0;
    case O_LOAD:
        o->load = 1;
        return 0;
    case O_REUSE:
        o->mode = LM_REUSE;
        return 0;
    case O_NEWHS:
        o->mode = LM_NEW_HANDSHAKE;
        return 0;
    case O_RESUME:
        o->mode = LM_RESUME;
        return 0;
    case 'h':
        usage(stdout);
        exit(EX_OK);
    case 'V':
        printf("sazukari %s (Megaki protocol v2)\n", sz_version());
        exit(EX_OK);
    default:
        fprintf(stderr, "Try '%s --help'.\n", prog);
        return -1;
    }
}

/* HOST:PORT[,HOST:PORT...]: each one checked; o->host and o->port are
 * the first. */
static int parse_targets(const char *arg, opts *o)
{
    char *save = NULL, *t;
    opts first;
    int r;

    if ((o->target_buf = strdup(arg)) == NULL)
        return -3;
    for (t = strtok_r(o->target_buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (o->ntargets == SZ_SERVICE_MAX)
            return -4;
        if ((r = parse_target(t, &first)) != 0) {
            fprintf(stderr, "%s: bad target '%s': %s\n", prog, t,
                    r == -2 ? "put an IPv6 address in brackets, [::1]:4433"
                            : "expected HOST:PORT");
            return -1;
        }
        if (o->ntargets == 0) {
            memcpy(o->host, first.host, sizeof o->host);
            o->port = first.port;
        }
        o->targets[o->ntargets++] = t;
    }
    return o->ntargets == 0 ? -5 : 0;
}

/* What follows the options: HOST:PORT (or a list), then an optional
 * REQUEST. */
static int parse_operands(int argc, char **argv, int i, opts *o)
{
    int r;

    if (i >= argc) {
        fprintf(stderr, "%s: missing HOST:PORT\nTry '%s --help'.\n", prog,
                prog);
        return -1;
    }
    if ((r = parse_targets(argv[i], o)) != 0) {
        if (r != -1)
            fprintf(stderr, "%s: bad target list '%s': %s\n", prog, argv[i],
                    r == -3   ? "out of memory"
                    : r == -4 ? "too many servers (at most 64)"
                              : "expected HOST:PORT[,HOST:PORT...]");
        return -1;
    }
    if (++i < argc)
        o->request_arg = argv[i++];
    if (i < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[i]);
        return -1;
    }
    return 0;
}

/* What no single option can tell wrong. */
static int check_options(const opts *o)
{
    if (o->request_arg != NULL && o->file != NULL) {
        fprintf(stderr,
                "%s: give the request as an argument or with -f, "
                "not both\n",
                prog);
        return -1;
    }
    if (o->nkeys == 0) {
        fprintf(stderr,
                "%s: no pinned key: use -k FILE with the server's "
                "public key\n",
                prog);
        return -1;
    }
    if (o->inflight > 1 && (!o->load || o->mode != LM_REUSE)) {
        fprintf(stderr, "%s: -p applies to --load --reuse only\n", prog);
        return -1;
    }
    if (o->ntargets > 1 && (o->load || o->session != NULL)) {
        fprintf(stderr, "%s: --load and -s take a single HOST:PORT\n", prog);
        return -1;
    }
    if (o->duration_s != 0 && (!o->load || o->requests_set)) {
        fprintf(stderr, "%s: -d applies to --load, instead of -n\n", prog);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, opts *o)
{
    int ch;

    set_defaults(o);
    while ((ch = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1)
        if (take_option(ch, optarg, o) != 0)
            return -1;
    if (parse_operands(argc, argv, optind, o) != 0)
        return -1;
    return check_options(o);
}

/* --- files ------------------------------------------------------------------- */

/* Read all of fd, at most max bytes (more: *len = max + 1). */
static int read_fd(int fd, size_t max, uint8_t **out, size_t *len)
{
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    *len = 0;
    for (;;) {
        ssize_t r;
        if (n == cap) {
            uint8_t *p;
            if (cap > max)
                break;
            cap = cap ? cap * 2 : 65536;
            if ((p = realloc(buf, cap)) == NULL) {
                free(buf);
                errno = ENOMEM;
                return -1;
            }
            buf = p;
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *out = buf;
    *len = n > max ? max + 1 : n;
    return 0;
}

static int read_request(const opts *o, uint8_t **req, size_t *len)
{
    int fd = 0, ret;
    const char *name = "standard input";

    if (o->request_arg != NULL) {
        *len = strlen(o->request_arg);
        if ((*req = malloc(*len + 1)) == NULL)
            return EX_LOCAL;
        memcpy(*req, o->request_arg, *len + 1);
        return EX_OK;
    }
    if (o->file != NULL && strcmp(o->file, "-") != 0) {
        name = o->file;
        if ((fd = open(o->file, O_RDONLY | O_CLOEXEC)) < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, o->file, strerror(errno));
            return EX_USAGE;
        }
    }
    ret = read_fd(fd, MAX_REQUEST, req, len);
    if (fd != 0)
        close(fd);
    if (ret != 0) {
        fprintf(stderr, "%s: reading %s: %s\n", prog, name, strerror(errno));
        return EX_USAGE;
    }
    if (*len > MAX_REQUEST) {
        fprintf(stderr,
                "%s: %s: request larger than any server accepts "
                "(256 MiB)\n",
                prog, name);
        return EX_TOO_LARGE;
    }
    return EX_OK;
}

/* The session file: absent is fine, anything wrong with it is a warning
 * (a full handshake still works), never a failure. Read straight into the
 * caller's buffer so the secret is in one place only. */
static size_t load_session(const char *path, uint8_t *blob, size_t cap)
{
    uint8_t extra;
    size_t len = 0;
    struct stat st;
    ssize_t r;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0) {
        if (errno != ENOENT)
            fprintf(stderr, "%s: warning: session file %s: %s\n", prog, path,
                    strerror(errno));
        return 0;
    }
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        fprintf(stderr,
                "%s: warning: session file %s is readable by "
                "others; it is secret\n",
                prog, path);
    while (len < cap) {
        r = read(fd, blob + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    /* Longer than any session: not one of ours. */
    if (len == 0 || (len == cap && read(fd, &extra, 1) > 0)) {
        fprintf(stderr,
                "%s: warning: session file %s is unusable; doing a "
                "full handshake\n",
                prog, path);
        sz_wipe(blob, cap);
        len = 0;
    }
    close(fd);
    return len;
}

/* Write atomically (temporary file, then rename) with mode 0600. */
static int save_session(const char *path, const uint8_t *blob, size_t len)
{
    char tmp[4096];
    int fd, n, ok = 0;

    n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        goto out;
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
    {
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(fd, blob + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        ok = off == len && fsync(fd) == 0;
    }
    if (close(fd) != 0)
        ok = 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok)
        (void)unlink(tmp);
out:
    if (!ok)
        fprintf(stderr, "%s: warning: cannot save the session to %s: %s\n",
                prog, path, strerror(errno));
    return ok ? 0 : -1;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static void describe(const sz_conn *conn, const char *where)
{
    sz_conn_info ci;
    char sid[33], kid[17];

    sz_conn_get_info(conn, &ci);
    hex(ci.session_id, sizeof ci.session_id, sid);
    hex(ci.key_id, sizeof ci.key_id, kid);
    fprintf(stderr,
            "%s: connected to %s: %s handshake, session %s, key %s, "
            "max message %u bytes, max in flight %u%s\n",
            prog, where, ci.resumed ? "resumed" : "full", sid, kid,
            ci.max_message, ci.max_inflight,
            ci.has_session ? "" : ", no ticket");
}

static int setup_client(const opts *o, sz_client **out)
{
    sz_client *c = NULL;
    int ret;

    *out = NULL;
    if ((ret = sz_client_new(&c)) != SZ_OK)
        return report(ret, "client");
    for (int i = 0; i < o->nkeys; i++)
        if ((ret = sz_client_pin_file(c, o->keys[i])) != SZ_OK) {
            sz_client_free(c);
            return report(ret, "pinned key");
        }
    if ((ret = sz_client_set_timeouts(c, o->connect_ms, o->io_ms,
                                      o->request_ms)) != SZ_OK ||
        (ret = sz_client_set_resumption(
             c, !(o->load && o->mode == LM_NEW_HANDSHAKE))) != SZ_OK) {
        sz_client_free(c);
        return report(ret, "client");
    }
    *out = c;
    return EX_OK;
}

/* Write the response; EX_OK or EX_LOCAL. */
static int write_response(const uint8_t *resp, size_t len)
{
    if ((len > 0 && fwrite(resp, 1, len, stdout) != len) ||
        fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing the response: %s\n", prog,
                strerror(errno));
        return EX_LOCAL;
    }
    return EX_OK;
}

/* --- one request ------------------------------------------------------------- */

static int run_once(const opts *o, sz_client *client, const uint8_t *req,
                    size_t req_len)
{
    uint8_t blob[SZ_SESSION_MAX];
    size_t blen = 0, resp_len = 0;
    uint8_t *resp = NULL;
    sz_conn *conn = NULL;
    int ret, code;

    if (o->session != NULL)
        blen = load_session(o->session, blob, sizeof blob);
    ret = sz_connect(client, o->host, o->port, blen ? blob : NULL, blen, &conn);
    sz_wipe(blob, sizeof blob);
    if (ret != SZ_OK) {
        code = report(ret, "connect");
        goto out;
    }
    if (o->verbose) {
        char where[300];
        snprintf(where, sizeof where, "%s port %u", o->host, (unsigned)o->port);
        describe(conn, where);
    }
    /* Save the new session before the request: it is valid whatever the
     * request's fate. */
    if (o->session != NULL &&
        sz_conn_export_session(conn, blob, sizeof blob, &blen) == SZ_OK) {
        (void)save_session(o->session, blob, blen);
        sz_wipe(blob, sizeof blob);
    }
    ret = sz_request(conn, req, req_len, &resp, &resp_len);
    if (ret != SZ_OK) {
        code = report(ret, "request");
        goto out;
    }
    code = write_response(resp, resp_len);
out:
    sz_free(resp);
    sz_conn_close(conn);
    return code;
}

/* Several servers: sz_service, which moves on from a dead or busy one and
 * repeats the request only where it provably did not run. */
static int run_service(const opts *o, sz_client *client, const uint8_t *req,
                       size_t req_len)
{
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    sz_service *s = NULL;
    sz_conn *conn = NULL;
    int ret, code;

    if ((ret = sz_service_new(client, o->targets, o->ntargets, &s)) != SZ_OK ||
        (ret = sz_service_set_deadlines(s, o->connect_ms, o->request_ms)) !=
            SZ_OK) {
        code = report(ret, "servers");
        goto out;
    }
    if (o->verbose && sz_service_connect(s, &conn) == SZ_OK)
        describe(conn, sz_service_node(s));
    ret = sz_service_request(s, req, req_len, &resp, &resp_len);
    if (o->verbose)
        fprintf(stderr, "%s: %s by %s\n", prog,
                ret == SZ_OK ? "answered" : "last tried", sz_service_node(s));
    code =
        ret != SZ_OK ? report(ret, "request") : write_response(resp, resp_len);
out:
    sz_free(resp);
    sz_service_free(s);
    return code;
}

/* --- load mode ------------------------------------------------------------------ */

/* Latencies, in microseconds. */
typedef struct samples {
    uint64_t *v;
    size_t n, cap;
} samples;

typedef struct load {
    const opts *o;
    sz_client *client;
    const uint8_t *req;
    size_t req_len;
    const uint8_t *session; /* seed for the first connection of each thread */
    size_t session_len;
    uint64_t deadline_us;      /* -d: nothing claimed after it; 0 with -n */
    atomic_uint_fast64_t next; /* requests claimed */
    atomic_uint_fast64_t ok, failed, full_hs, resumed_hs;
    atomic_int first_err;
    atomic_uint errs[32];
    atomic_uint running; /* threads still at work */
    pthread_mutex_t lat_mu;
    samples lat;                /* successful requests' latencies, merged */
    atomic_uint_fast64_t t_end; /* when the last thread finished its work */
} load;

/* This thread's latencies, merged into load.lat when it ends. */
static _Thread_local samples my_lat;

static uint64_t now_us(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Is there a request left to send (-n not reached, -d not over)? */
static int more(load *l)
{
    if (l->deadline_us != 0)
        return now_us() < l->deadline_us;
    return atomic_load(&l->next) < l->o->requests;
}

static int claim(load *l)
{
    if (l->deadline_us != 0) {
        if (now_us() >= l->deadline_us)
            return 0;
        atomic_fetch_add(&l->next, 1);
        return 1;
    }
    return atomic_fetch_add(&l->next, 1) < l->o->requests;
}

static void samples_add(samples *v, uint64_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 4096;
        uint64_t *p = realloc(v->v, cap * sizeof *p);
        if (p == NULL) {
            fprintf(stderr, "%s: out of memory\n", prog);
            exit(EX_LOCAL);
        }
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static void count_err(load *l, int err)
{
    int expected = 0;
    atomic_fetch_add(&l->failed, 1);
    if (err >= 0 && err < 32)
        atomic_fetch_add(&l->errs[err], 1);
    atomic_compare_exchange_strong(&l->first_err, &expected, err);
}

/* A request's outcome: done (with its latency) or failed. A refusal
 * takes no time worth measuring: latencies are the successes' only. */
static void record(load *l, uint64_t t0, int err)
{
    if (err == SZ_OK) {
        samples_add(&my_lat, now_us() - t0);
        atomic_fetch_add(&l->ok, 1);
    } else {
        count_err(l, err);
    }
}

static int load_connect(load *l, int first, sz_conn **conn)
{
    sz_conn_info ci;
    int ret;

    ret =
        sz_connect(l->client, l->o->host, l->o->port, first ? l->session : NULL,
                   first ? l->session_len : 0, conn);
    if (ret == SZ_OK) {
        sz_conn_get_info(*conn, &ci);
        atomic_fetch_add(ci.resumed ? &l->resumed_hs : &l->full_hs, 1);
    }
    return ret;
}

/* A new connection per request (full or resumed handshake). */
static void load_per_request(load *l)
{
    int first = l->o->mode == LM_RESUME;

    while (claim(l)) {
        uint64_t t0 = now_us();
        uint8_t *resp = NULL;
        size_t rl = 0;
        sz_conn *conn = NULL;
        int ret = load_connect(l, first, &conn);
        first = 0;
        if (ret == SZ_OK)
            ret = sz_request(conn, l->req, l->req_len, &resp, &rl);
        sz_free(resp);
        sz_conn_close(conn);
        record(l, t0, ret);
    }
}

typedef struct slot {
    uint32_t id;
    uint64_t t0;
} slot;

/* A --reuse thread's connection and the requests in flight on it. */
typedef struct window {
    sz_conn *conn; /* NULL until (re)connected */
    int first;     /* the next connect is the thread's first */
    slot *slots;
    unsigned depth, used;
} window;

/* Submit until the window is full or no request is left, connecting first
 * if need be. */
static void fill(load *l, window *w)
{
    while (w->used < w->depth && claim(l)) {
        slot *s = &w->slots[w->used];
        uint64_t t0 = now_us();
        int ret = SZ_OK;
        if (w->conn == NULL) {
            ret = load_connect(l, w->first, &w->conn);
            w->first = 0;
        }
        if (ret == SZ_OK)
            ret = sz_submit(w->conn, l->req, l->req_len, &s->id);
        if (ret != SZ_OK) {
            record(l, t0, ret);
            if (w->conn != NULL && sz_conn_error(w->conn) != SZ_OK)
                break; /* collect what is in flight, then reconnect */
            continue;
        }
        s->t0 = t0;
        w->used++;
    }
}

/* Collect one response. When the connection fails instead, everything in
 * flight on it has failed, and it is closed. */
static void collect_one(load *l, window *w)
{
    uint8_t *resp = NULL;
    size_t rl = 0;
    uint32_t id = 0;
    int ret = sz_poll(w->conn, -1, &id, &resp, &rl);

    sz_free(resp);
    if (id == 0) {
        for (unsigned i = 0; i < w->used; i++)
            record(l, w->slots[i].t0, ret);
        w->used = 0;
        sz_conn_close(w->conn);
        w->conn = NULL;
        return;
    }
    for (unsigned i = 0; i < w->used; i++)
        if (w->slots[i].id == id) {
            record(l, w->slots[i].t0, ret);
            w->slots[i] = w->slots[--w->used];
            break;
        }
}

/* One connection, up to -p requests in flight on it; reconnect (resuming)
 * after a connection failure. */
static void load_reuse(load *l)
{
    window w = {.first = 1, .depth = l->o->inflight};

    if ((w.slots = calloc(w.depth, sizeof *w.slots)) == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(EX_LOCAL);
    }
    for (;;) {
        fill(l, &w);
        if (w.used > 0) {
            collect_one(l, &w);
            continue;
        }
        /* Nothing in flight: a failed connection goes, and the thread
         * ends once no request is left. */
        if (w.conn != NULL && sz_conn_error(w.conn) != SZ_OK) {
            sz_conn_close(w.conn);
            w.conn = NULL;
        }
        if (!more(l))
            break;
    }
    sz_conn_close(w.conn);
    free(w.slots);
}

/* This thread's latencies into the run's. */
static void merge_samples(load *l)
{
    pthread_mutex_lock(&l->lat_mu);
    for (size_t i = 0; i < my_lat.n; i++)
        samples_add(&l->lat, my_lat.v[i]);
    pthread_mutex_unlock(&l->lat_mu);
    free(my_lat.v);
    memset(&my_lat, 0, sizeof my_lat);
}

static void *load_thread(void *arg)
{
    load *l = arg;
    uint_fast64_t t, seen;

    if (l->o->mode == LM_REUSE)
        load_reuse(l);
    else
        load_per_request(l);
    merge_samples(l);
    /* The run ends when the last thread's work does, not when the
     * progress loop next wakes up (it sleeps 100 ms at a time). */
    t = now_us();
    seen = atomic_load(&l->t_end);
    while (seen < t && !atomic_compare_exchange_weak(&l->t_end, &seen, t))
        ;
    atomic_fetch_sub(&l->running, 1);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *sorted, uint64_t n, double p)
{
    /* Nearest rank. */
    uint64_t rank = (uint64_t)(p / 100.0 * (double)n + 0.999999);
    if (rank == 0)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1000.0;
}

static void progress(load *l, uint64_t t0, int final)
{
    uint64_t ok = atomic_load(&l->ok), failed = atomic_load(&l->failed);
    double secs = (double)(now_us() - t0) / 1e6;
    int tty = isatty(2);

    if (l->o->quiet)
        return;
    if (l->deadline_us != 0)
        fprintf(stderr, "%s%llu requests", tty ? "\r" : "",
                (unsigned long long)(ok + failed));
    else
        fprintf(stderr, "%s%llu/%llu requests", tty ? "\r" : "",
                (unsigned long long)(ok + failed),
                (unsigned long long)l->o->requests);
    fprintf(stderr, ", %llu failed, %.0f ok/s%s", (unsigned long long)failed,
            secs > 0 ? (double)ok / secs : 0.0, tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* Show progress until every thread is done. */
static void watch(load *l, uint64_t t0)
{
    uint64_t last = t0;

    while (atomic_load(&l->running) > 0) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (now_us() - last >= (isatty(2) ? 200000u : 1000000u)) {
            progress(l, t0, 0);
            last = now_us();
        }
    }
}

/* The mkd options that answer retry_later in this mode, and the counter
 * of `mkd status` that tells which one did. */
static const char *busy_cause(const opts *o)
{
    switch (o->mode) {
    case LM_NEW_HANDSHAKE:
        return "full handshakes per second from one address: mkd's\n"
               "              handshake_rate and handshake_burst (default "
               "50/s, burst 100;\n"
               "              0 = no limit), or max_handshakes in progress "
               "(`mkd status`:\n"
               "              refused.handshake_rate, "
               "refused.handshakes_in_progress)";
    case LM_RESUME:
        return "resumptions per second from one address: mkd's\n"
               "              resume_rate and resume_burst (default 200/s, "
               "burst 400; 0 = no\n"
               "              limit) (`mkd status`: refused.resume_rate)";
    default:
        return "connections from one address: mkd's\n"
               "              max_connections_per_address (default 512), "
               "max_pending_per_address\n"
               "              (64) or handshake_rate (50/s) for the first "
               "connections (`mkd\n"
               "              status`: refused.connections_per_address, "
               "refused.pending_per_address,\n"
               "              refused.handshake_rate)";
    }
}

/* When retry_later refusals are most of the run, the rate is the
 * server's limit, not its capacity: say so, and which option. */
static void busy_note(const load *l, uint64_t ok, uint64_t failed)
{
    uint64_t busy = atomic_load(&l->errs[SZ_ERR_BUSY]);

    if (busy == 0 || 2 * busy < ok + failed)
        return;
    printf("note:         %llu of %llu requests (%.0f%%) were refused with "
           "retry_later:\n"
           "              the rate above is the server's limit, not its "
           "capacity.\n"
           "              The limit is on %s.\n"
           "              Raise it on the server (then SIGHUP mkd), or "
           "spread the load over addresses.\n",
           (unsigned long long)busy, (unsigned long long)(ok + failed),
           100.0 * (double)busy / (double)(ok + failed), busy_cause(l->o));
}

static void print_latency(load *l)
{
    uint64_t n = l->lat.n, *v = l->lat.v;

    if (n == 0) {
        printf("latency (ms): no successful request\n");
        return;
    }
    qsort(v, n, sizeof *v, cmp_u64);
    printf("latency (ms): p50 %.3f  p90 %.3f  p99 %.3f  max %.3f "
           "(successful requests)\n",
           pct(v, n, 50), pct(v, n, 90), pct(v, n, 99),
           (double)v[n - 1] / 1000.0);
}

/* The summary on standard output, for a run from t0 to t1 (this sorts the
 * latencies). Rates count successful requests only: a refusal is quick,
 * and counting it would make a throttled run look fast. */
static void summary(load *l, uint64_t t0, uint64_t t1)
{
    double secs = (double)(t1 - t0) / 1e6;
    uint64_t ok = atomic_load(&l->ok), failed = atomic_load(&l->failed),
             full = atomic_load(&l->full_hs);

    printf("requests:     %llu ok, %llu failed\n", (unsigned long long)ok,
           (unsigned long long)failed);
    printf("elapsed:      %.3f s\n", secs);
    printf("rate:         %.1f requests/s (successful)\n",
           secs > 0 ? (double)ok / secs : 0.0);
    print_latency(l);
    printf("handshakes:   %llu full, %llu resumed", (unsigned long long)full,
           (unsigned long long)atomic_load(&l->resumed_hs));
    if (l->o->mode == LM_NEW_HANDSHAKE)
        printf(" (%.1f full/s)", secs > 0 ? (double)full / secs : 0.0);
    printf("\n");
    if (failed) {
        printf("errors:      ");
        for (int e = 0; e < 32; e++)
            if (atomic_load(&l->errs[e]))
                printf(" %s %u", sz_err_name(e), atomic_load(&l->errs[e]));
        printf("\n");
    }
    busy_note(l, ok, failed);
    fflush(stdout);
}

static int run_load(const opts *o, sz_client *client, const uint8_t *req,
                    size_t req_len)
{
    uint8_t blob[SZ_SESSION_MAX];
    pthread_t *threads = NULL;
    unsigned started = 0;
    uint64_t t0, t1;
    load *l = NULL;
    int code = EX_LOCAL;

    if ((l = calloc(1, sizeof *l)) == NULL ||
        (threads = calloc(o->concurrency, sizeof *threads)) == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    l->o = o;
    l->client = client;
    l->req = req;
    l->req_len = req_len;
    if (o->session != NULL && o->mode != LM_NEW_HANDSHAKE) {
        l->session_len = load_session(o->session, blob, sizeof blob);
        l->session = l->session_len ? blob : NULL;
    }
    pthread_mutex_init(&l->lat_mu, NULL);
    t0 = now_us();
    if (o->duration_s != 0)
        l->deadline_us = t0 + (uint64_t)o->duration_s * 1000000u;
    atomic_store(&l->running, o->concurrency);
    for (; started < o->concurrency; started++)
        if (pthread_create(&threads[started], NULL, load_thread, l) != 0) {
            fprintf(stderr, "%s: cannot start thread %u\n", prog, started);
            atomic_fetch_sub(&l->running, o->concurrency - started);
            break;
        }
    if (started == 0)
        goto out;
    watch(l, t0);
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    t1 = atomic_load(&l->t_end);
    if (t1 <= t0)
        t1 = now_us();
    progress(l, t0, 1);
    summary(l, t0, t1);
    code = exit_code(atomic_load(&l->first_err));
out:
    sz_wipe(blob, sizeof blob);
    free(threads);
    if (l != NULL)
        free(l->lat.v);
    free(l);
    return code;
}

int main(int argc, char **argv)
{
    sz_client *client = NULL;
    uint8_t *req = NULL;
    size_t req_len = 0;
    opts o;
    int code;

    /* Writes to a closed stdout must fail with EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (parse_args(argc, argv, &o) != 0) {
        free(o.target_buf);
        return EX_USAGE;
    }
    if ((code = setup_client(&o, &client)) != EX_OK)
        goto out;
    if ((code = read_request(&o, &req, &req_len)) != EX_OK)
        goto out;
    code = o.load           ? run_load(&o, client, req, req_len)
           : o.ntargets > 1 ? run_service(&o, client, req, req_len)
                            : run_once(&o, client, req, req_len);
out:
    free(o.target_buf);
    free(req);
    sz_client_free(client);
    return code;
}
