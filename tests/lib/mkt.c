/*
 * mkt.c -- see mkt.h.
 */
#include "mkt.h"

#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MKT_MKD_BIN
#define MKT_MKD_BIN "mkd"
#endif

/* execv wants char *const[]; copy in the child so nothing is cast. */
static void exec_copy(const char *const *argv)
{
    char *v[64];
    size_t n = 0;
    for (; argv[n] != NULL && n < 63; n++)
        v[n] = strdup(argv[n]);
    v[n] = NULL;
    execv(v[0], v);
}

const char *mkt_mkd_path(void)
{
    const char *e = getenv("MKD_BIN");
    return e != NULL && e[0] ? e : MKT_MKD_BIN;
}

int mkt_daemon_mkdir(mkt_daemon *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/mkt.XXXXXX");
    if (mkdtemp(d->dir) == NULL)
        return -1;
    /* Run as root, the users mkd becomes must be able to pass through
     * it to what is theirs below it (not to list it). */
    if (geteuid() == 0 && chmod(d->dir, 0711) != 0)
        return -1;
    return 0;
}

static void print_log_tail(const mkt_daemon *d, const char *why)
{
    char cmd[400];

    fprintf(stderr, "%s; log %s, last lines:\n", why, d->log);
    snprintf(cmd, sizeof cmd, "tail -40 '%s' >&2", d->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
}

int mkt_daemon_spawn(mkt_daemon *d, const char *const *args)
{
    char a_dir[340], a_ready[320], a_port[32];
    const char *argv[64];
    size_t n = 0;
    int fd;

    const char *data = d->data[0] != '\0' ? d->data : d->dir;

    snprintf(d->log, sizeof d->log, "%s/mkd.log", d->dir);
    snprintf(d->ready, sizeof d->ready, "%s/ready", d->dir);
    snprintf(d->ctl, sizeof d->ctl, "%s/mkd.sock", data);
    if (d->pub[0] == '\0')
        snprintf(d->pub, sizeof d->pub, "%s/server.pub.pem", data);
    snprintf(a_dir, sizeof a_dir, "--data_dir=%s", data);
    snprintf(a_ready, sizeof a_ready, "--ready_file=%s", d->ready);
    snprintf(a_port, sizeof a_port, "--port=%u", d->port);
    (void)unlink(d->ready);
    argv[n++] = mkt_mkd_path();
    argv[n++] = "serve";
    argv[n++] = a_dir;
    argv[n++] = a_ready;
    argv[n++] = a_port;
    /* The daemon tests exercise Yugi and Yami: the echo backend answers
     * without PHP. Tests of the PHP path pass --backend=php (later
     * arguments win). */
    argv[n++] = "--backend=echo";
    /* Run as root, mkd would run the application as nobody, who may not
     * be able to read the source tree (a clone in root's home): suites
     * that are not about privileges keep the workers' user out of their
     * way. The privilege tests name theirs (later arguments win). */
    if (geteuid() == 0)
        argv[n++] = "--worker_user=root";
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    d->pid = fork();
    if (d->pid < 0)
        return -1;
    if (d->pid == 0) {
        /* If the test process dies without its teardown, so does mkd:
         * no daemon is ever left behind. */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        exec_copy(argv);
        _exit(127);
    }
    return 0;
}

int mkt_daemon_start(mkt_daemon *d, const char *const *args)
{
    uint64_t until;

    if (mkt_daemon_spawn(d, args) != 0)
        return -1;
    until = tl_now_ms() + tl_deadline_ms(30000);
    while (tl_now_ms() < until) {
        FILE *f = fopen(d->ready, "r");
        unsigned port = 0;
        int st;
        if (f != NULL) {
            int ok = fscanf(f, "%u", &port) == 1;
            fclose(f);
            if (ok && port != 0) {
                d->port = (uint16_t)port;
                return 0;
            }
        }
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            print_log_tail(d, "mkd exited before it was ready");
            return -1;
        }
        tl_sleep_ms(20);
    }
    (void)mkt_daemon_stop(d, SIGKILL, 1000);
    print_log_tail(d, "mkd did not become ready in time");
    return -1;
}

int mkt_daemon_stop(mkt_daemon *d, int sig, int timeout_ms)
{
    uint64_t until = tl_now_ms() + tl_deadline_ms((unsigned)timeout_ms);
    int st = 0;

    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    while (tl_now_ms() < until) {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            return st;
        }
        tl_sleep_ms(10);
    }
    kill(d->pid, SIGKILL);
    (void)waitpid(d->pid, &st, 0);
    d->pid = 0;
    return -1;
}

void mkt_daemon_cleanup(mkt_daemon *d)
{
    char cmd[400];
    if (d->pid > 0)
        (void)mkt_daemon_stop(d, SIGKILL, 1000);
    if (getenv("MKT_KEEP") == NULL && strncmp(d->dir, "/tmp/mkt.", 9) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", d->dir);
    }
}

/* 1 if a line of the daemon's log contains "bug:". */
static int log_has_bug(const mkt_daemon *d)
{
    char line[1024];
    FILE *f = fopen(d->log, "r");
    int found = 0;

    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, "bug:") != NULL;
    fclose(f);
    return found;
}

int mkt_daemon_finish(mkt_daemon *d, int timeout_ms)
{
    int ret = 0;

    if (d->pid > 0) {
        int s = mkt_daemon_stop(d, SIGTERM, timeout_ms);
        if (s < 0 || !WIFEXITED(s) || WEXITSTATUS(s) != 0) {
            fprintf(stderr, "mkd did not exit 0 (status %d)\n", s);
            ret = -1;
        }
    }
    if (log_has_bug(d)) {
        fprintf(stderr, "mkd logged a bug\n");
        ret = -1;
    }
    if (ret != 0) {
        print_log_tail(d, "the daemon did not end cleanly");
        fprintf(stderr, "kept %s to look at\n", d->dir);
        return ret;
    }
    mkt_daemon_cleanup(d);
    return 0;
}

int mkt_status_text(const mkt_daemon *d, char *buf, size_t cap)
{
    struct sockaddr_un sa;
    size_t n = 0;
    int fd;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(d->ctl) >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, d->ctl, strlen(d->ctl));
    if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    close(fd);
    buf[n] = '\0';
    return 0;
}

long long mkt_status(const mkt_daemon *d, const char *key)
{
    char buf[16384];
    size_t kl = strlen(key);

    if (mkt_status_text(d, buf, sizeof buf) != 0)
        return -1;
    for (char *line = buf; line != NULL && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            return atoll(line + kl + 1);
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

long mkt_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    fclose(f);
    return kb;
}

long long mkt_cpu_ticks(pid_t pid)
{
    char path[64], buf[2048], *p;
    unsigned long long ut = 0, stt = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name, which may hold blanks: from ')'. */
    if ((p = strrchr(buf, ')')) == NULL)
        return -1;
    /* state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &stt) != 2)
        return -1;
    return (long long)(ut + stt);
}

double mkt_openssl_rsa2048(int seconds, double *verify_s)
{
    char cmd[128], line[512];
    double sign = 0, verify = 0;
    FILE *p;

    snprintf(cmd, sizeof cmd, "openssl speed -seconds %d rsa2048 2>/dev/null",
             seconds);
    if ((p = popen(cmd, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof line, p) != NULL) {
        double s, v;
        if (sscanf(line, "rsa 2048 bits %lfs %lfs", &s, &v) == 2) {
            sign = s;
            verify = v;
        }
    }
    pclose(p);
    if (verify_s)
        *verify_s = verify;
    return sign;
}

/* All of fd until EOF, NUL-terminated (NULL if out of memory). */
static char *read_all(int fd)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap), *p;
    ssize_t n;

    while (buf != NULL) {
        if (len + 1 == cap) {
            if ((p = realloc(buf, cap * 2)) == NULL)
                break;
            buf = p;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            buf[len] = '\0';
            return buf;
        }
        len += (size_t)n;
    }
    free(buf);
    return NULL;
}

int mkt_run_mkd_output(const char *const *args, char **output)
{
    const char *argv[64];
    size_t n = 0;
    int st, fds[2];
    pid_t pid;

    argv[n++] = mkt_mkd_path();
    for (size_t i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (output != NULL)
        *output = NULL;
    if (pipe(fds) != 0)
        return -1;
    if ((pid = fork()) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int fd = output != NULL ? fds[1] : open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        close(fds[0]);
        close(fds[1]);
        exec_copy(argv);
        _exit(127);
    }
    close(fds[1]);
    if (output != NULL)
        *output = read_all(fds[0]);
    close(fds[0]);
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int mkt_run_mkd(const char *const *args)
{
    return mkt_run_mkd_output(args, NULL);
}

mk_client_config *mkt_client_config(const char *pub_path)
{
    mk_client_config *cc = NULL;
    uint8_t buf[8192];
    size_t n;
    FILE *f = fopen(pub_path, "rb");

    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (mk_client_config_new(&cc, mk_env_system()) != MK_OK)
        return NULL;
    if (mk_client_config_pin(cc, buf, n) != MK_OK) {
        mk_client_config_unref(cc);
        return NULL;
    }
    return cc;
}

/* --- sockets ----------------------------------------------------------- */

/* A non-blocking connect under way: wait for its end, at most
 * timeout_ms. 0, or -1 with errno set. */
static int connect_wait(int fd, unsigned timeout_ms)
{
    struct pollfd pfd = {fd, POLLOUT, 0};
    int err = 0, r;
    socklen_t elen = sizeof err;

    do
        r = poll(&pfd, 1, (int)timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

/* connect(2), for at most timeout_ms (0: as long as it takes). */
static int connect_within(int fd, const struct sockaddr_in *sa,
                          unsigned timeout_ms)
{
    int flags = fcntl(fd, F_GETFL), r;

    if (timeout_ms == 0)
        return connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return -1;
    r = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    if (r != 0 && errno == EINPROGRESS)
        r = connect_wait(fd, timeout_ms);
    if (r != 0 || fcntl(fd, F_SETFL, flags) != 0)
        return -1;
    return 0;
}

int mkt_tcp_connect(const char *src, uint16_t port)
{
    return mkt_tcp_connect_within(src, port, 0);
}

int mkt_tcp_connect_within(const char *src, uint16_t port, unsigned timeout_ms)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src != NULL) {
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        inet_pton(AF_INET, src, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(fd);
            return -1;
        }
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect_within(fd, &sa, timeout_ms) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int mkt_send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int mkt_wait_closed(int fd, int timeout_ms)
{
    uint64_t until = tl_now_ms() + (uint64_t)timeout_ms;
    uint8_t buf[4096];

    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        uint64_t now = tl_now_ms();
        int r;
        if (now >= until)
            return -1;
        r = poll(&pfd, 1, (int)(until - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        r = (int)recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            return 0; /* EOF or reset */
    }
}

/* --- the client -------------------------------------------------------- */

#define STASH 64
typedef struct stash_ent {
    uint32_t id;
    uint8_t *buf;
    size_t len;
    int complete;
    unsigned ecode;
} stash_ent;

/* Kept beside the client: responses for ids nobody waits for yet. */
typedef struct client_ext {
    stash_ent st[STASH];
    size_t n;
} client_ext;

static client_ext *ext_of(mkt_client *c, int create)
{
    if (c->ext == NULL && create)
        c->ext = calloc(1, sizeof(client_ext));
    return c->ext;
}

static void ext_free(mkt_client *c)
{
    client_ext *e = c->ext;
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->st[i].buf);
    free(e);
    c->ext = NULL;
}

static stash_ent *stash_for(mkt_client *c, uint32_t id)
{
    client_ext *e = ext_of(c, 1);
    if (e == NULL)
        return NULL;
    for (size_t i = 0; i < e->n; i++)
        if (e->st[i].id == id)
            return &e->st[i];
    if (e->n == STASH)
        return NULL;
    memset(&e->st[e->n], 0, sizeof e->st[0]);
    e->st[e->n].id = id;
    return &e->st[e->n++];
}

static void stash_remove(mkt_client *c, stash_ent *s)
{
    client_ext *e = ext_of(c, 0);
    size_t i = (size_t)(s - e->st);
    memmove(&e->st[i], &e->st[i + 1], (e->n - i - 1) * sizeof e->st[0]);
    e->n--;
}

static int fill(mkt_client *c)
{
    struct pollfd pfd = {c->fd, POLLIN, 0};
    ssize_t r;
    int p;

    if (c->in_cap - c->in_len < 65536) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 131072;
        uint8_t *b = realloc(c->in, cap);
        if (b == NULL)
            return MK_ERR_NOMEM;
        c->in = b;
        c->in_cap = cap;
    }
    do
        p = poll(&pfd, 1, (int)c->timeout_ms);
    while (p < 0 && errno == EINTR);
    if (p == 0)
        return MK_ERR_TIMEOUT;
    r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r <= 0) {
        c->eof = 1;
        return MK_ERR_EOF;
    }
    c->in_len += (size_t)r;
    return MK_OK;
}

/* Handle the next unit; *ev says what it was. */
static int next_event(mkt_client *c, uint8_t *out, mk_event *ev)
{
    size_t ulen = 0;
    int r;

    for (;;) {
        r = mk_frame_check(c->in, c->in_len, &ulen);
        if (r == MK_OK)
            break;
        if (r != MK_WANT_READ)
            return r;
        if ((r = fill(c)) != MK_OK)
            return r;
    }
    r = mk_session_handle(c->s, c->in, ulen, out, MK_HANDLE_OUT_LEN, ev);
    memmove(c->in, c->in + ulen, c->in_len - ulen);
    c->in_len -= ulen;
    if ((ev->type == MK_EV_SEND) && ev->len > 0 &&
        mkt_send_all(c->fd, out, ev->len) != 0 && r == MK_OK)
        r = MK_ERR_IO;
    return r;
}

int mkt_client_next_event(mkt_client *c, uint8_t *out, mk_event *ev)
{
    return next_event(c, out, ev);
}

/* mkt_client_start; timeout_ms as in mkt_client_open_within. */
static int client_start(mkt_client *c, mk_client_config *cc, const char *src,
                        uint16_t port, const uint8_t *blob, size_t blob_len,
                        unsigned timeout_ms, const uint8_t *pre, size_t pre_len)
{
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN);
    size_t n = 0;
    int r;

    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->timeout_ms = timeout_ms ? timeout_ms : 10000;
    c->next_id = 1;
    if (out == NULL)
        return MK_ERR_NOMEM;
    if ((r = mk_session_new_client(&c->s, cc, blob, blob_len)) != MK_OK)
        goto done;
    if ((c->fd = mkt_tcp_connect_within(src, port, timeout_ms)) < 0) {
        r = errno == ETIMEDOUT ? MK_ERR_TIMEOUT : MK_ERR_IO;
        goto done;
    }
    if (pre_len > 0 && mkt_send_all(c->fd, pre, pre_len) != 0) {
        r = MK_ERR_IO;
        goto done;
    }
    if ((r = mk_client_hello(c->s, out, MK_HANDLE_OUT_LEN, &n)) != MK_OK)
        goto done;
    if (mkt_send_all(c->fd, out, n) != 0)
        r = MK_ERR_IO;
done:
    free(out);
    return r;
}

int mkt_client_start(mkt_client *c, mk_client_config *cc, const char *src,
                     uint16_t port, const uint8_t *blob, size_t blob_len)
{
    return client_start(c, cc, src, port, blob, blob_len, 0, NULL, 0);
}

int mkt_client_finish(mkt_client *c)
{
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN);
    mk_event ev;
    int r;

    if (out == NULL)
        return MK_ERR_NOMEM;
    for (;;) {
        if ((r = next_event(c, out, &ev)) != MK_OK)
            break;
        if (ev.type == MK_EV_ESTABLISHED)
            break;
    }
    free(out);
    return r;
}

int mkt_client_open(mkt_client *c, mk_client_config *cc, const char *src,
                    uint16_t port, const uint8_t *blob, size_t blob_len)
{
    int r = mkt_client_start(c, cc, src, port, blob, blob_len);
    return r == MK_OK ? mkt_client_finish(c) : r;
}

int mkt_client_open_within(mkt_client *c, mk_client_config *cc, const char *src,
                           uint16_t port, const uint8_t *blob, size_t blob_len,
                           unsigned timeout_ms)
{
    int r = client_start(c, cc, src, port, blob, blob_len, timeout_ms, NULL, 0);
    return r == MK_OK ? mkt_client_finish(c) : r;
}

int mkt_client_open_after(mkt_client *c, mk_client_config *cc, const char *src,
                          uint16_t port, const uint8_t *pre, size_t pre_len)
{
    int r = client_start(c, cc, src, port, NULL, 0, 0, pre, pre_len);
    return r == MK_OK ? mkt_client_finish(c) : r;
}

int mkt_client_resumed(const mkt_client *c)
{
    mk_session_info info;
    mk_session_get_info(c->s, &info);
    return info.resumed;
}

int mkt_client_send(mkt_client *c, const uint8_t *req, size_t len, uint32_t *id)
{
    size_t cap = mk_message_wire_len(len), n = 0;
    uint8_t *w = malloc(cap);
    int r;

    if (w == NULL)
        return MK_ERR_NOMEM;
    *id = c->next_id++;
    r = mk_seal_message(c->s, *id, req, len, w, cap, &n);
    if (r == MK_OK && mkt_send_all(c->fd, w, n) != 0)
        r = MK_ERR_IO;
    free(w);
    return r;
}

int mkt_client_wait(mkt_client *c, uint32_t id, uint8_t **resp,
                    size_t *resp_len, unsigned *ecode)
{
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN);
    stash_ent *s;
    mk_event ev;
    int r = MK_OK;

    *resp = NULL;
    *resp_len = 0;
    if (out == NULL)
        return MK_ERR_NOMEM;
    for (;;) {
        s = stash_for(c, id);
        if (s != NULL && s->complete)
            break;
        if ((r = next_event(c, out, &ev)) != MK_OK)
            goto done;
        if (ev.type == MK_EV_CLOSE) {
            c->closed = 1;
            r = MK_ERR_PEER_CLOSED;
            goto done;
        }
        if (ev.type != MK_EV_DATA && ev.type != MK_EV_ERROR)
            continue;
        if ((s = stash_for(c, ev.request_id)) == NULL) {
            r = MK_ERR_LIMIT;
            goto done;
        }
        if (ev.type == MK_EV_ERROR) {
            s->ecode = ev.error_code ? ev.error_code : 0xFFFF;
            s->complete = 1;
            continue;
        }
        {
            uint8_t *b = realloc(s->buf, s->len + ev.len + 1);
            if (b == NULL) {
                r = MK_ERR_NOMEM;
                goto done;
            }
            memcpy(b + s->len, out, ev.len);
            s->buf = b;
            s->len += ev.len;
            s->complete = ev.final;
        }
    }
    if (s->ecode) {
        if (ecode)
            *ecode = s->ecode;
        free(s->buf);
        r = MK_ERR_PEER_ERROR;
    } else {
        *resp = s->buf;
        *resp_len = s->len;
    }
    stash_remove(c, s);
done:
    free(out);
    return r;
}

int mkt_client_request(mkt_client *c, const uint8_t *req, size_t len,
                       uint8_t **resp, size_t *resp_len, unsigned *ecode)
{
    uint32_t id;
    int r = mkt_client_send(c, req, len, &id);
    if (r != MK_OK)
        return r;
    return mkt_client_wait(c, id, resp, resp_len, ecode);
}

int mkt_client_wait_close(mkt_client *c)
{
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN);
    mk_event ev;
    int r = MK_OK;

    if (out == NULL)
        return MK_ERR_NOMEM;
    while (!c->closed) {
        if ((r = next_event(c, out, &ev)) != MK_OK)
            break;
        if (ev.type == MK_EV_CLOSE)
            c->closed = 1;
    }
    free(out);
    return r;
}

int mkt_client_export(mkt_client *c, uint8_t *blob, size_t cap, size_t *len)
{
    return mk_session_export(c->s, blob, cap, len);
}

void mkt_client_close(mkt_client *c)
{
    uint8_t rec[256];
    size_t n = 0;

    if (c->fd >= 0 && c->s != NULL && !c->eof &&
        mk_session_state(c->s) == MK_STATE_ESTABLISHED &&
        mk_seal_close(c->s, rec, sizeof rec, &n) == MK_OK)
        (void)mkt_send_all(c->fd, rec, n);
    ext_free(c);
    if (c->fd >= 0)
        close(c->fd);
    mk_session_free(c->s);
    free(c->in);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* --- cmocka fixtures ------------------------------------------------------ */

mkt_daemon mkt_D;

int mkt_setup(void **state)
{
    (void)state;
    return mkt_daemon_mkdir(&mkt_D);
}

int mkt_teardown(void **state)
{
    (void)state;
    return mkt_daemon_finish(&mkt_D, 20000);
}
