/*
 * testlib.c -- see testlib.h.
 */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "test";

uint64_t tl_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        tl_die("clock_gettime:");
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tl_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* TL_SLOW_BUILD is defined by CMake for sanitizer builds (testlib's
 * CMakeLists.txt); valgrind announces itself through LD_PRELOAD. */
int tl_slow_build(void)
{
    const char *pre = getenv("LD_PRELOAD");

    return TL_SLOW_BUILD || (pre != NULL && strstr(pre, "valgrind") != NULL);
}

unsigned tl_deadline_ms(unsigned ms)
{
    const char *s = getenv("TL_TIMEOUT_SCALE");
    unsigned long scale = 1;

    if (s != NULL && *s != '\0') {
        char *end = NULL;
        scale = strtoul(s, &end, 10);
        if (*end != '\0' || scale < 1 || scale > 100)
            tl_die("TL_TIMEOUT_SCALE=%s: expected a whole number 1..100", s);
    }
    if (tl_slow_build())
        scale *= 4;
    return ms > UINT32_MAX / scale ? UINT32_MAX : (unsigned)(ms * scale);
}

char *tl_read_file(const char *path, size_t *len)
{
    char *buf = NULL;
    size_t cap = 0, n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return NULL;
    for (;;) {
        ssize_t got;
        if (cap - n < 4096) {
            char *b = realloc(buf, cap + 65536);
            if (b == NULL)
                goto fail;
            buf = b;
            cap += 65536;
        }
        got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            goto fail;
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
fail:
    close(fd);
    free(buf);
    return NULL;
}

uint8_t *tl_load(const char *path, size_t *len)
{
    uint8_t *p = (uint8_t *)tl_read_file(path, len);

    if (p == NULL)
        tl_die("cannot read %s (tests run from the project root):", path);
    return p;
}

int tl_write_file(const char *path, const void *data, size_t len)
{
    const uint8_t *p = data;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0)
        return -1;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return close(fd) == 0 ? 0 : -1;
}

int tl_run_capture(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    size_t n;
    int status;

    out[0] = '\0';
    if (p == NULL)
        return -1;
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    status = pclose(p);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void tl_set_prog(const char *name)
{
    prog = name;
}

void tl_vdie(const char *fmt, va_list ap)
{
    int saved = errno;
    size_t n = strlen(fmt);

    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    if (n > 0 && fmt[n - 1] == ':')
        fprintf(stderr, " %s", strerror(saved));
    fputc('\n', stderr);
    exit(1);
}

void tl_die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tl_vdie(fmt, ap);
}

void tl_usage_error(const char *fmt, ...)
{
    va_list ap;

    if (fmt != NULL) {
        fprintf(stderr, "%s: ", prog);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    fprintf(stderr, "Try '%s --help'.\n", prog);
    exit(2);
}
