/*
 * util.c -- see mkd_util.h.
 */
#include "mkd_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int sys_fail(mkd_diag *d, const char *path, int e)
{
    return mkd_fail(d, e == ENOMEM ? MKD_ERR_NOMEM : MKD_ERR_SYSTEM, "%s: %s",
                    path, strerror(e));
}

int mkd_read_file(const char *path, size_t max, uint8_t **out, size_t *len,
                  mkd_diag *d)
{
    return mkd_read_file_ex(path, max, 0, out, len, d);
}

int mkd_read_file_ex(const char *path, size_t max, int flags, uint8_t **out,
                     size_t *len, mkd_diag *d)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    int fd, ret = MKD_OK;

    *out = NULL;
    *len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return sys_fail(d, path, errno);
    if (fstat(fd, &st) != 0) {
        ret = sys_fail(d, path, errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = mkd_fail(d, MKD_ERR_SYSTEM, "%s: not a regular file", path);
        goto out;
    }
    /* Checked on the open file, so that what is checked is what is
     * read. */
    if ((flags & MKD_FILE_PRIVATE) && (st.st_mode & 077) != 0) {
        ret = mkd_fail(d, MKD_ERR_SYSTEM,
                       "%s is readable by group or others (mode %04o): "
                       "refusing it, as ssh does; chmod 600 it",
                       path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if ((size_t)st.st_size > max) {
        ret =
            mkd_fail(d, MKD_ERR_SYSTEM, "%s: larger than %zu bytes", path, max);
        goto out;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        ret = sys_fail(d, path, ENOMEM);
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            ret = sys_fail(d, path, r < 0 ? errno : EIO);
            goto out;
        }
        got += (size_t)r;
    }
    buf[got] = 0;
    *out = buf;
    *len = got;
    buf = NULL;
out:
    if (buf != NULL) {
        mkd_wipe(buf, got);
        free(buf);
    }
    close(fd);
    return ret;
}

int mkd_write_file(const char *path, const void *data, size_t len, mode_t mode,
                   mkd_diag *d)
{
    char tmp[1024];
    const uint8_t *p = data;
    size_t done = 0;
    int fd = -1, ret = MKD_OK, r;

    r = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (r < 0 || (size_t)r >= sizeof tmp)
        return sys_fail(d, path, ENAMETOOLONG);
    /* O_EXCL and the final mode at creation: a secret is never readable
     * by others, not even for a moment. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return sys_fail(d, tmp, errno);
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ret = sys_fail(d, tmp, w < 0 ? errno : EIO);
            goto out;
        }
        done += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        ret = sys_fail(d, tmp, errno);
        goto out;
    }
    r = close(fd);
    fd = -1;
    if (r != 0) {
        ret = sys_fail(d, tmp, errno);
        goto out;
    }
    if (rename(tmp, path) != 0)
        ret = sys_fail(d, path, errno);
out:
    if (fd >= 0)
        close(fd);
    if (ret != MKD_OK)
        (void)unlink(tmp);
    return ret;
}

int mkd_mkdirs(const char *path, mode_t mode, mkd_diag *d)
{
    char buf[1024];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof buf)
        return mkd_fail(d, MKD_ERR_ARG, "directory name empty or too long");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return sys_fail(d, buf, errno);
        buf[i] = i < n ? '/' : '\0';
    }
    return MKD_OK;
}

int mkd_mkdirs_for(const char *path, mode_t mode, mkd_diag *d)
{
    char dir[1024];
    const char *slash = strrchr(path, '/');
    size_t n = slash != NULL ? (size_t)(slash - path) : 0;

    if (n == 0)
        return MKD_OK; /* a bare name, or a file in / */
    if (n >= sizeof dir)
        return mkd_fail(d, MKD_ERR_ARG, "%s: path too long", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    return mkd_mkdirs(dir, mode, d);
}

int mkd_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void mkd_hex(const uint8_t *p, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int mkd_unhex(const char *s, size_t slen, uint8_t *out, size_t len)
{
    if (slen != 2 * len)
        return MKD_ERR_ARG;
    for (size_t i = 0; i < len; i++) {
        int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return MKD_ERR_ARG;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return MKD_OK;
}

int mkd_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end = NULL;

    /* strtoull alone would take " 7", "+7", "-7" (as a huge number) and
     * stop quietly at "7x". */
    if (s == NULL || *s < '0' || *s > '9')
        return MKD_ERR_ARG;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return MKD_ERR_ARG;
    *out = (uint64_t)v;
    return MKD_OK;
}

void mkd_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        explicit_bzero(p, n);
}

void mkd_text_init(mkd_text *t, char *buf, size_t cap)
{
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
    t->overflow = cap == 0;
    if (cap > 0)
        buf[0] = '\0';
}

void mkd_text_put(mkd_text *t, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (t->overflow)
        return;
    va_start(ap, fmt);
    r = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    if ((size_t)r >= t->cap - t->len) {
        /* Drop the piece that did not fit whole: a status line is either
         * there or not, never cut. */
        t->buf[t->len] = '\0';
        t->overflow = 1;
        return;
    }
    t->len += (size_t)r;
}

/* The length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    /* The second byte's range excludes overlongs and surrogates. */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* Put n bytes at t's end if they fit (room for the NUL kept); else mark
 * the text overflowed. */
static int text_raw(mkd_text *t, const char *p, size_t n)
{
    if (t->overflow || t->cap - t->len <= n) {
        t->overflow = 1;
        return -1;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
    return 0;
}

/* One piece of a JSON string: the escape or the bytes for s[0..n); returns
 * how many input bytes it stands for. */
static size_t json_piece(const unsigned char *s, size_t n, char *out,
                         size_t *olen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = s[0];
    size_t k;

    *olen = 2;
    out[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
        out[1] = (char)c;
        return 1;
    case '\n':
        out[1] = 'n';
        return 1;
    case '\r':
        out[1] = 'r';
        return 1;
    case '\t':
        out[1] = 't';
        return 1;
    default:
        break;
    }
    if (c < 0x20 || c == 0x7f) {
        memcpy(out, "\\u00", 4);
        out[4] = hex[c >> 4];
        out[5] = hex[c & 15];
        *olen = 6;
        return 1;
    }
    if ((k = utf8_seq(s, n)) == 0) {
        memcpy(out, "\xef\xbf\xbd", 3); /* U+FFFD for the one bad byte */
        *olen = 3;
        return 1;
    }
    memcpy(out, s, k);
    *olen = k;
    return k;
}

void mkd_text_json(mkd_text *t, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t start = t->len, i = 0;
    char piece[8];

    if (text_raw(t, "\"", 1) != 0)
        goto overflow;
    while (i < n) {
        size_t olen, used = json_piece(p + i, n - i, piece, &olen);
        if (text_raw(t, piece, olen) != 0)
            goto overflow;
        i += used;
    }
    if (text_raw(t, "\"", 1) != 0)
        goto overflow;
    t->buf[t->len] = '\0';
    return;
overflow:
    /* Whole or nothing, as mkd_text_put. */
    t->len = start;
    if (t->cap > 0)
        t->buf[start] = '\0';
}
