/*
 * access.c -- see mkd_access.h.
 *
 * The buffer holds whole lines only, and a flush writes them with as few
 * write(2) calls as the kernel allows: on stderr shared with the daemon
 * log, a line never comes out cut in two by another writer's line.
 */
#include "mkd_access.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mkd_log.h"
#include "mkd_util.h"

#define BUF_SIZE     65536
#define LINE_SIZE    1024
/* A failing destination is reported at most this often. */
#define WARN_EVERY_S 60

static struct {
    int fd;   /* -1: off */
    int file; /* fd is a file we opened (not stderr) */
    char path[512];
    char buf[BUF_SIZE];
    size_t len;
    uint64_t lost; /* lines dropped since the last warning */
    time_t warned_at;
} al = {.fd = -1};

static int open_file(const char *path, int *fd, mkd_diag *d)
{
    /* Never through a symbolic link: run as root, that would let whoever
     * can write the directory append to any file. */
    *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
               0640);
    if (*fd < 0)
        return mkd_fail(d, MKD_ERR_SYSTEM, "access_log %s: %s", path,
                        strerror(errno));
    return MKD_OK;
}

static void drop_fd(void)
{
    if (al.file && al.fd >= 0)
        (void)close(al.fd);
    al.fd = -1;
    al.file = 0;
    al.path[0] = '\0';
}

int mkd_access_check(const char *spec, mkd_diag *d)
{
    mkd_diag_clear(d);
    if (spec[0] != '\0' && strcmp(spec, "off") != 0 &&
        strcmp(spec, "stderr") != 0 &&
        (spec[0] != '/' || strlen(spec) >= sizeof al.path))
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "access_log: \"%s\" is not off, stderr or an absolute "
                        "path (of at most %zu bytes)",
                        spec, sizeof al.path - 1);
    return MKD_OK;
}

int mkd_access_open(const char *spec, mkd_diag *d)
{
    int fd = -1, r;

    if ((r = mkd_access_check(spec, d)) != MKD_OK)
        return r;
    if (spec[0] == '/' && (r = open_file(spec, &fd, d)) != MKD_OK)
        return r;
    mkd_access_flush();
    drop_fd();
    if (spec[0] == '/') {
        al.fd = fd;
        al.file = 1;
        memcpy(al.path, spec, strlen(spec) + 1);
    } else if (strcmp(spec, "stderr") == 0) {
        al.fd = STDERR_FILENO;
    }
    return MKD_OK;
}

int mkd_access_reopen(mkd_diag *d)
{
    int fd = -1, r;

    mkd_diag_clear(d);
    if (!al.file)
        return MKD_OK;
    if ((r = open_file(al.path, &fd, d)) != MKD_OK)
        return r;
    /* What was logged before the rotation goes to the old file. */
    mkd_access_flush();
    (void)close(al.fd);
    al.fd = fd;
    return MKD_OK;
}

const char *mkd_access_path(void)
{
    return al.file ? al.path : NULL;
}

int mkd_access_enabled(void)
{
    return al.fd >= 0;
}

/* Lines were lost (a full disk, a closed pipe): say so, not too often. */
static void report_loss(int err)
{
    time_t now = time(NULL);

    if (al.warned_at != 0 && now - al.warned_at < WARN_EVERY_S)
        return;
    al.warned_at = now;
    mkd_warn(0, "access_log %s: %s; %llu line(s) lost",
             al.file ? al.path : "stderr", strerror(err),
             (unsigned long long)al.lost);
    al.lost = 0;
}

void mkd_access_flush(void)
{
    size_t done = 0;

    while (done < al.len && al.fd >= 0) {
        ssize_t w = write(al.fd, al.buf + done, al.len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            for (size_t i = done; i < al.len; i++)
                al.lost += al.buf[i] == '\n';
            report_loss(err);
            break;
        }
        done += (size_t)w;
    }
    al.len = 0;
}

void mkd_access_close(void)
{
    mkd_access_flush();
    drop_fd();
}

/* "127.0.0.1:51234", "[::1]:51234". */
static void put_client(mkd_text *t, const mkd_access_rec *r)
{
    const char *a = r->client != NULL ? r->client : "-";

    if (strchr(a, ':') != NULL)
        mkd_text_put(t, "[%s]:%u", a, r->port);
    else
        mkd_text_put(t, "%s:%u", a, r->port);
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void put_plain(mkd_text *t, const mkd_access_rec *r, const char *sid)
{
    mkd_text_put(t, "access c%llu client=", (unsigned long long)r->conn_id);
    put_client(t, r);
    mkd_text_put(t,
                 " session=%s request=%lu in=%llu out=%llu ms=%.3f "
                 "queue_ms=%.3f worker_ms=%.3f worker_pid=%d outcome=%s\n",
                 sid, (unsigned long)r->request_id,
                 (unsigned long long)r->bytes_in,
                 (unsigned long long)r->bytes_out, ms(r->duration_us),
                 ms(r->queue_us), ms(r->worker_us), r->worker_pid, r->outcome);
}

/* Stable keys: docs/MKD.md, "Logs". */
static void put_json(mkd_text *t, const mkd_access_rec *r, const char *sid,
                     const char *when)
{
    const char *a = r->client != NULL ? r->client : "-";

    mkd_text_put(t,
                 "{\"time\":\"%s\",\"log\":\"access\",\"conn\":%llu,"
                 "\"client\":",
                 when, (unsigned long long)r->conn_id);
    mkd_text_json(t, a, strlen(a));
    mkd_text_put(t,
                 ",\"port\":%u,\"session\":\"%s\",\"request\":%lu,"
                 "\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f,"
                 "\"queue_ms\":%.3f,\"worker_ms\":%.3f,\"worker_pid\":%d,"
                 "\"outcome\":",
                 r->port, sid, (unsigned long)r->request_id,
                 (unsigned long long)r->bytes_in,
                 (unsigned long long)r->bytes_out, ms(r->duration_us),
                 ms(r->queue_us), ms(r->worker_us), r->worker_pid);
    mkd_text_json(t, r->outcome, strlen(r->outcome));
    mkd_text_put(t, "}\n");
}

static size_t render(const mkd_access_rec *r, char *line, size_t cap)
{
    char sid[2 * MKD_ACCESS_SID_BYTES + 1] = "-", when[32];
    int fmt = mkd_log_format();
    mkd_text t;

    if (r->session_id != NULL)
        mkd_hex(r->session_id, MKD_ACCESS_SID_BYTES, sid);
    mkd_text_init(&t, line, cap);
    if (fmt == MKD_LOG_JOURNAL) {
        mkd_text_put(&t, "<%d>", mkd_log_priority(MKD_LOG_INFO));
        put_plain(&t, r, sid);
        return t.overflow ? 0 : t.len;
    }
    mkd_log_time(when, sizeof when);
    if (fmt == MKD_LOG_JSON) {
        put_json(&t, r, sid, when);
    } else {
        mkd_text_put(&t, "%s mkd ", when);
        put_plain(&t, r, sid);
    }
    return t.overflow ? 0 : t.len;
}

void mkd_access_write(const mkd_access_rec *r)
{
    char line[LINE_SIZE];
    size_t n;

    if (al.fd < 0)
        return;
    if ((n = render(r, line, sizeof line)) == 0)
        return; /* cannot happen: every field is bounded */
    if (al.len + n > sizeof al.buf)
        mkd_access_flush();
    memcpy(al.buf + al.len, line, n);
    al.len += n;
}
