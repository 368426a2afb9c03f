/*
 * util.c -- see util.h.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "megaki.h"

int mkd_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    int fd, ret = 0;

    *out = NULL;
    *len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno;
    if (fstat(fd, &st) != 0) {
        ret = errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        ret = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        goto out;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        ret = ENOMEM;
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            ret = r < 0 ? errno : EIO;
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
        mk_wipe(buf, got);
        free(buf);
    }
    close(fd);
    return ret;
}

int mkd_write_file(const char *path, const void *data, size_t len,
                   mode_t mode)
{
    char tmp[1024];
    const uint8_t *p = data;
    size_t done = 0;
    int fd = -1, ret = 0, r;

    r = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (r < 0 || (size_t)r >= sizeof tmp)
        return ENAMETOOLONG;
    /* O_EXCL and the final mode at creation: a secret is never readable
     * by others, not even for a moment. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return errno;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ret = w < 0 ? errno : EIO;
            goto out;
        }
        done += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        ret = errno;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        ret = errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        ret = errno;
out:
    if (fd >= 0)
        close(fd);
    if (ret != 0)
        (void)unlink(tmp);
    return ret;
}

int mkd_mkdirs(const char *path, mode_t mode)
{
    char buf[1024];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof buf)
        return EINVAL;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return errno;
        buf[i] = i < n ? '/' : '\0';
    }
    return 0;
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
        return -1;
    for (size_t i = 0; i < len; i++) {
        int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

uint64_t mkd_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
