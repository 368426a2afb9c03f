/*
 * testserver.c -- see testserver.h. Plain blocking sockets and one thread
 * per connection: simple enough to trust, and a different I/O style from
 * the client's, which is the point of a test peer.
 */
#include "testserver.h"

#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "megaki.h"

#define MAX_CONNS 512

typedef struct held {
    uint32_t id;
    uint8_t *msg;
    size_t len;
} held;

struct conn {
    ts_server *srv;
    int fd;
    pthread_t thread;
    int done;
};

struct ts_server {
    ts_config cfg;
    mk_server_config *mcfg;
    uint8_t key_id[MK_KEY_ID_LEN]; /* of cfg.key */
    int lfd;
    int stop_pipe[2];
    uint16_t port;
    pthread_t acceptor;
    pthread_mutex_t lock;
    struct conn *conns[MAX_CONNS];
    size_t nconns;
    unsigned finished;
    ts_stats st;
};

void ts_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (p = malloc((size_t)n + 1)) == NULL ||
        fread(p, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr,
                "testserver: cannot read %s (run from the project "
                "root)\n",
                path);
        abort();
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void add_key(mk_server_config *c, const char *path,
                    uint8_t id[MK_KEY_ID_LEN])
{
    size_t len;
    uint8_t *pem = read_file(path, &len);
    mk_server_key *k = NULL;
    if (mk_server_key_load_pem(&k, pem, len) != MK_OK)
        abort();
    mk_server_key_id(k, id);
    if (mk_server_config_add_key(c, k) != MK_OK)
        abort();
    mk_wipe(pem, len);
    free(pem);
}

/* --- one connection ---------------------------------------------------- */

/* Sleep up to ms; 1 if the server is stopping. */
static int nap(ts_server *s, int ms)
{
    struct pollfd p = {s->stop_pipe[0], POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_msg(mk_session *ss, int fd, uint32_t id, const uint8_t *m,
                    size_t len)
{
    size_t cap = mk_message_wire_len(len), n = 0;
    uint8_t *out = malloc(cap);
    int ret = -1;

    if (out != NULL && mk_seal_message(ss, id, m, len, out, cap, &n) == MK_OK)
        ret = send_all(fd, out, n);
    free(out);
    return ret;
}

static int send_error(mk_session *ss, int fd, uint32_t id, unsigned code,
                      const char *text)
{
    uint8_t out[2048];
    size_t n = 0;
    if (mk_seal_error(ss, id, code, text, strlen(text), out, sizeof out, &n) !=
        MK_OK)
        return -1;
    return send_all(fd, out, n);
}

/* Act on one complete request. Returns 0 to go on, 1 to end quietly, -1
 * on failure. */
static int serve_request(ts_server *s, mk_session *ss, int fd, uint32_t id,
                         uint8_t *msg, size_t len, held *hold, size_t *nhold)
{
    char cmd[64];
    size_t cl = len < sizeof cmd - 1 ? len : sizeof cmd - 1;

    if (len == 0 || msg[0] != '!')
        return send_msg(ss, fd, id, msg, len);
    memcpy(cmd, msg, cl);
    cmd[cl] = 0;
    if (strncmp(cmd, "!err ", 5) == 0) {
        /* "!err CODE" or "!err CODE TEXT": the text runs to the end. */
        char *end = NULL, text[MK_ERROR_TEXT_MAX + 1];
        unsigned code = (unsigned)strtoul(cmd + 5, &end, 10);
        size_t at = (size_t)(end - cmd) + 1, tl = 0;
        if (at < len) {
            tl = len - at;
            if (tl > MK_ERROR_TEXT_MAX)
                tl = MK_ERROR_TEXT_MAX;
            memcpy(text, msg + at, tl);
        }
        text[tl] = 0;
        return send_error(ss, fd, id, code, text);
    }
    if (strcmp(cmd, "!silent") == 0)
        return 0;
    if (strncmp(cmd, "!sleep ", 7) == 0) {
        if (nap(s, atoi(cmd + 7)))
            return 1;
        return send_msg(ss, fd, id, (const uint8_t *)"slept", 5);
    }
    if (strncmp(cmd, "!big ", 5) == 0) {
        size_t n = (size_t)strtoul(cmd + 5, NULL, 10);
        uint8_t *p = malloc(n ? n : 1);
        int r;
        ts_pattern(p, n, (uint32_t)n);
        r = send_msg(ss, fd, id, p, n);
        free(p);
        return r;
    }
    if (strcmp(cmd, "!hold") == 0) {
        hold[*nhold].id = id;
        hold[*nhold].msg = NULL;
        hold[*nhold].len = 0;
        (*nhold)++;
        return 0;
    }
    if (strcmp(cmd, "!flush") == 0) {
        while (*nhold > 0) {
            char text[32];
            held *h = &hold[--(*nhold)];
            snprintf(text, sizeof text, "held %u", h->id);
            if (send_msg(ss, fd, h->id, (const uint8_t *)text, strlen(text)) !=
                0)
                return -1;
        }
        return send_msg(ss, fd, id, (const uint8_t *)"flushed", 7);
    }
    if (strcmp(cmd, "!cut") == 0) {
        /* First record of a 20000-byte response, then hang up. */
        uint8_t big[MK_RECORD_MAX_PLAINTEXT],
            out[MK_RECORD_MAX_PLAINTEXT + 100];
        size_t n = 0;
        memset(big, 'c', sizeof big);
        if (mk_seal_record(ss, id, 0, big, sizeof big, out, sizeof out, &n) !=
                MK_OK ||
            send_all(fd, out, n / 2 + 1) != 0)
            return -1;
        return 1;
    }
    if (strcmp(cmd, "!garbage") == 0) {
        static const uint8_t junk[] = "\x42\x00\x00\x10garbage garbage!";
        if (send_all(fd, junk, sizeof junk - 1) != 0)
            return -1;
        return 0;
    }
    if (strcmp(cmd, "!badmac") == 0) {
        uint8_t out[256];
        size_t n = 0;
        if (mk_seal_record(ss, id, 1, (const uint8_t *)"x", 1, out, sizeof out,
                           &n) != MK_OK)
            return -1;
        out[n - 1] ^= 1;
        return send_all(fd, out, n);
    }
    if (strncmp(cmd, "!connerr ", 9) == 0)
        return send_error(ss, fd, 0, (unsigned)atoi(cmd + 9),
                          "connection-level error") == 0
                   ? 0
                   : -1;
    if (strcmp(cmd, "!closerec") == 0) {
        uint8_t out[256];
        size_t n = 0;
        if (mk_seal_close(ss, out, sizeof out, &n) != MK_OK ||
            send_all(fd, out, n) != 0)
            return -1;
        return 0;
    }
    if (strcmp(cmd, "!lastword") == 0) {
        /* The answer and a close record in one write: the client reads
         * them together. */
        static const char word[] = "last word";
        size_t cap = mk_message_wire_len(sizeof word - 1) + 256, n = 0, m = 0;
        uint8_t *out = malloc(cap);
        int ret = -1;
        if (out != NULL &&
            mk_seal_message(ss, id, (const uint8_t *)word, sizeof word - 1, out,
                            cap, &n) == MK_OK &&
            mk_seal_close(ss, out + n, cap - n, &m) == MK_OK)
            ret = send_all(fd, out, n + m);
        free(out);
        return ret;
    }
    if (strcmp(cmd, "!hangup") == 0)
        return 1;
    return send_msg(ss, fd, id, msg, len);
}

/* What the client is sending in one message, reassembled per request. */
typedef struct partial {
    uint32_t id;
    uint8_t *p;
    size_t len, cap;
} partial;

static partial *partial_for(partial *ps, size_t *n, uint32_t id)
{
    for (size_t i = 0; i < *n; i++)
        if (ps[i].id == id)
            return &ps[i];
    ps[*n].id = id;
    ps[*n].p = NULL;
    ps[*n].len = ps[*n].cap = 0;
    return &ps[(*n)++];
}

static void count_unit(ts_server *s, const uint8_t *u, size_t len)
{
    pthread_mutex_lock(&s->lock);
    switch (u[0]) {
    case MK_UNIT_CLIENT_HELLO:
        s->st.hello_units++;
        s->st.hello_bytes += len;
        break;
    case MK_UNIT_DATA:
        s->st.data_units++;
        break;
    case MK_UNIT_CLOSE:
        s->st.close_units++;
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&s->lock);
}

static void serve(ts_server *s, int fd)
{
    static const uint8_t http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
    uint8_t *in = malloc(2 * MK_UNIT_MAX), *out = malloc(MK_HANDLE_OUT_LEN);
    partial *ps = calloc(MK_INFLIGHT_LIMIT + 1, sizeof *ps);
    held *hold = calloc(MK_INFLIGHT_LIMIT, sizeof *hold);
    size_t in_len = 0, nps = 0, nhold = 0;
    mk_session *ss = NULL;
    int quit = 0;

    if (in == NULL || out == NULL || ps == NULL || hold == NULL ||
        mk_session_new_server(&ss, s->mcfg) != MK_OK)
        abort();
    if (s->cfg.mode == TS_HANGUP_ACCEPT)
        goto out;
    while (!quit) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        size_t ulen = 0;
        ssize_t n;
        int r;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        n = recv(fd, in + in_len, 2 * MK_UNIT_MAX - in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        pthread_mutex_lock(&s->lock);
        s->st.bytes_in += (uint64_t)n;
        pthread_mutex_unlock(&s->lock);
        in_len += (size_t)n;
        while (!quit && (r = mk_frame_check(in, in_len, &ulen)) == MK_OK) {
            mk_event ev;
            count_unit(s, in, ulen);
            if (in[0] == MK_UNIT_CLIENT_HELLO && s->cfg.mode != TS_NORMAL &&
                s->cfg.mode != TS_TAMPER_HELLO) {
                uint8_t alert[16];
                size_t al = 0;
                switch (s->cfg.mode) {
                case TS_SILENT_HELLO:
                    break;
                case TS_GARBAGE_HELLO:
                    (void)send_all(fd, http, sizeof http - 1);
                    break;
                case TS_BUSY:
                    if (mk_write_alert(MK_ALERT_RETRY_LATER, 1500, alert,
                                       sizeof alert, &al) == MK_OK)
                        (void)send_all(fd, alert, al);
                    quit = 1;
                    break;
                case TS_REJECT_HELLO:
                    if (mk_write_alert(MK_ALERT_HANDSHAKE_FAILED, 0, alert,
                                       sizeof alert, &al) == MK_OK)
                        (void)send_all(fd, alert, al);
                    quit = 1;
                    break;
                case TS_RETRY_TICKET: {
                    /* HELLO_RETRY (PROTOCOL.md §4.3) by hand: magic,
                     * reason 1, one key id. The connection stays open, so
                     * that a second hello would be seen. */
                    uint8_t hr[4 + 6 + MK_KEY_ID_LEN] = {MK_UNIT_HELLO_RETRY,
                                                         0,
                                                         0,
                                                         6 + MK_KEY_ID_LEN,
                                                         'M',
                                                         'G',
                                                         'K',
                                                         MK_PROTOCOL_VERSION,
                                                         1,
                                                         1};
                    memcpy(hr + 10, s->key_id, MK_KEY_ID_LEN);
                    (void)send_all(fd, hr, sizeof hr);
                    break;
                }
                default:
                    break;
                }
                memmove(in, in + ulen, in_len - ulen);
                in_len -= ulen;
                continue;
            }
            r = mk_session_handle(ss, in, ulen, out, MK_HANDLE_OUT_LEN, &ev);
            memmove(in, in + ulen, in_len - ulen);
            in_len -= ulen;
            if (r == MK_OK && ev.type == MK_EV_ESTABLISHED) {
                /* Counted before the reply goes out, so that a client that
                 * has connected always finds its handshake counted. */
                mk_session_info si;
                mk_session_get_info(ss, &si);
                pthread_mutex_lock(&s->lock);
                if (si.resumed)
                    s->st.resumed_hs++;
                else
                    s->st.full_hs++;
                pthread_mutex_unlock(&s->lock);
            }
            if ((ev.type == MK_EV_SEND || ev.type == MK_EV_ESTABLISHED) &&
                ev.len > 0) {
                if (ev.type == MK_EV_ESTABLISHED &&
                    s->cfg.mode == TS_TAMPER_HELLO)
                    out[12] ^= 0x01; /* inside the server random */
                if (send_all(fd, out, ev.len) != 0)
                    quit = 1;
            }
            if (r != MK_OK) {
                quit = 1;
                break;
            }
            if (ev.type == MK_EV_DATA) {
                partial *pm = partial_for(ps, &nps, ev.request_id);
                if (pm->len + ev.len > pm->cap) {
                    size_t cap = pm->cap ? pm->cap : 256;
                    while (cap < pm->len + ev.len)
                        cap *= 2;
                    if ((pm->p = realloc(pm->p, cap)) == NULL)
                        abort();
                    pm->cap = cap;
                }
                if (ev.len)
                    memcpy(pm->p + pm->len, out, ev.len);
                pm->len += ev.len;
                if (ev.final) {
                    partial done = *pm;
                    *pm = ps[--nps];
                    pthread_mutex_lock(&s->lock);
                    s->st.requests++;
                    pthread_mutex_unlock(&s->lock);
                    r = serve_request(s, ss, fd, done.id, done.p, done.len,
                                      hold, &nhold);
                    free(done.p);
                    if (r != 0)
                        quit = 1;
                }
            } else if (ev.type == MK_EV_CLOSE) {
                /* Answer a clean close with one. */
                size_t cn = 0;
                if (mk_seal_close(ss, out, MK_HANDLE_OUT_LEN, &cn) == MK_OK)
                    (void)send_all(fd, out, cn);
                quit = 1;
            }
        }
        if (!quit && r != MK_WANT_READ && r != MK_OK)
            break; /* garbage from the client: hang up */
    }
out:
    for (size_t i = 0; i < nps; i++)
        free(ps[i].p);
    free(ps);
    free(hold);
    free(in);
    free(out);
    mk_session_free(ss);
    close(fd);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    serve(c->srv, c->fd);
    pthread_mutex_lock(&c->srv->lock);
    c->done = 1;
    c->srv->finished++;
    pthread_mutex_unlock(&c->srv->lock);
    return NULL;
}

void ts_adopt(ts_server *s, int fd)
{
    struct conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        abort();
    c->srv = s;
    c->fd = fd;
    pthread_mutex_lock(&s->lock);
    if (s->nconns == MAX_CONNS) {
        /* Reap finished ones to make room. */
        size_t j = 0;
        for (size_t i = 0; i < s->nconns; i++) {
            if (s->conns[i]->done) {
                pthread_join(s->conns[i]->thread, NULL);
                free(s->conns[i]);
            } else {
                s->conns[j++] = s->conns[i];
            }
        }
        s->nconns = j;
    }
    if (s->nconns == MAX_CONNS)
        abort();
    s->conns[s->nconns++] = c;
    s->st.conns++;
    if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
        abort();
    pthread_mutex_unlock(&s->lock);
}

static void *accept_main(void *arg)
{
    ts_server *s = arg;

    for (;;) {
        struct pollfd p[2] = {{s->lfd, POLLIN, 0},
                              {s->stop_pipe[0], POLLIN, 0}};
        int fd;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        ts_adopt(s, fd);
    }
    return NULL;
}

ts_server *ts_start(const ts_config *cfg)
{
    static const ts_config defaults;
    ts_server *s = calloc(1, sizeof *s);
    mk_ticket_key tk;
    int one = 1;

    if (s == NULL)
        abort();
    s->cfg = cfg ? *cfg : defaults;
    if (s->cfg.key == NULL)
        s->cfg.key = "tests/vectors/keys/server2048.pem";
    if (mk_server_config_new(&s->mcfg, mk_env_system()) != MK_OK)
        abort();
    add_key(s->mcfg, s->cfg.key, s->key_id);
    if (s->cfg.key2 != NULL) {
        uint8_t id2[MK_KEY_ID_LEN];
        add_key(s->mcfg, s->cfg.key2, id2);
    }
    if (!s->cfg.no_tickets) {
        memset(&tk, 0, sizeof tk);
        memcpy(tk.name, "sz-test-ticket-1", 16);
        memset(tk.secret, 0x5a, sizeof tk.secret);
        if (mk_server_config_set_ticket_keys(s->mcfg, &tk, 1) != MK_OK)
            abort();
    }
    if (s->cfg.max_message || s->cfg.max_inflight) {
        uint32_t mm =
            s->cfg.max_message ? s->cfg.max_message : MK_MESSAGE_MAX_DEFAULT;
        uint32_t mi =
            s->cfg.max_inflight ? s->cfg.max_inflight : MK_INFLIGHT_DEFAULT;
        if (mk_server_config_set_limits(s->mcfg, mm, mi,
                                        MK_TICKET_LIFETIME_DEFAULT) != MK_OK)
            abort();
    }
    if (pipe(s->stop_pipe) < 0)
        tl_die("testserver: %s:", "pipe");
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        abort();
    if (s->cfg.ipv6) {
        struct sockaddr_in6 a;
        socklen_t al = sizeof a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_loopback;
        if ((s->lfd = socket(AF_INET6, SOCK_STREAM, 0)) < 0 ||
            bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
            getsockname(s->lfd, (struct sockaddr *)&a, &al) < 0)
            tl_die("testserver: %s:", "ipv6 listen");
        s->port = ntohs(a.sin6_port);
    } else {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if ((s->lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
            setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) <
                0 ||
            bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
            getsockname(s->lfd, (struct sockaddr *)&a, &al) < 0)
            tl_die("testserver: %s:", "listen");
        s->port = ntohs(a.sin_port);
    }
    if (listen(s->lfd, 128) < 0)
        tl_die("testserver: %s:", "listen");
    if (pthread_create(&s->acceptor, NULL, accept_main, s) != 0)
        abort();
    return s;
}

uint16_t ts_port(const ts_server *s)
{
    return s->port;
}

void ts_get_stats(ts_server *s, ts_stats *st)
{
    pthread_mutex_lock(&s->lock);
    *st = s->st;
    pthread_mutex_unlock(&s->lock);
}

int ts_wait_conns_done(ts_server *s, unsigned n, unsigned ms)
{
    for (unsigned waited = 0;; waited += 5) {
        unsigned f;
        pthread_mutex_lock(&s->lock);
        f = s->finished;
        pthread_mutex_unlock(&s->lock);
        if (f >= n)
            return 1;
        if (waited >= ms)
            return 0;
        usleep(5000);
    }
}

void ts_stop(ts_server *s)
{
    if (write(s->stop_pipe[1], "x", 1) != 1)
        tl_die("testserver: %s:", "stop");
    pthread_join(s->acceptor, NULL);
    /* No more adoptions can race with this: the acceptor is gone and the
     * tests adopt only from their own thread. */
    for (size_t i = 0; i < s->nconns; i++) {
        pthread_join(s->conns[i]->thread, NULL);
        free(s->conns[i]);
    }
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    mk_server_config_unref(s->mcfg);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
