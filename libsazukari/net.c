/*
 * net.c -- POSIX sockets for libsazukari: name resolution, a nonblocking
 * connect bounded by a deadline, and single nonblocking reads and writes.
 * Waiting is always poll(2) with a timeout, so nothing here can hang.
 *
 * The one platform difference (how a write avoids SIGPIPE) is settled here
 * once: MSG_NOSIGNAL where it exists (Linux, Android, the BSDs), otherwise
 * SO_NOSIGPIPE on the socket (macOS).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0
#endif

uint64_t sz__now_ms(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int sz__budget(uint64_t deadline, uint64_t now)
{
    uint64_t left;

    if (deadline == SZ_NO_DEADLINE)
        return -1;
    if (deadline <= now)
        return 0;
    left = deadline - now;
    return left > 0x7fffffffu ? 0x7fffffff : (int)left;
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    int one = 1;

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -1;
#ifdef SO_NOSIGPIPE
    if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0)
        return -1;
#endif
    /* Requests and responses are small and latency-bound: no Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static void addr_text(const struct addrinfo *ai, char *out, size_t cap)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, serv,
                    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, cap, "(address)");
    else if (ai->ai_family == AF_INET6)
        snprintf(out, cap, "[%s]:%s", host, serv);
    else
        snprintf(out, cap, "%s:%s", host, serv);
}

/* One address: 0 connected, SZ_ERR_TIMEOUT, or -1 with errno. */
static int try_one(const struct addrinfo *ai, uint64_t deadline, int *fd_out)
{
    int fd, ret = -1, err = 0;
    socklen_t len = sizeof err;

    *fd_out = -1;
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (set_flags(fd) < 0)
        goto out;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        ret = 0;
        goto out;
    }
    if (errno != EINPROGRESS && errno != EINTR)
        goto out;
    {
        int w =
            sz__net_wait(fd, -1, POLLOUT, sz__budget(deadline, sz__now_ms()));
        if (w == 0)
            ret = SZ_ERR_TIMEOUT;
        if (w <= 0)
            goto out;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        goto out;
    if (err != 0) {
        errno = err;
        goto out;
    }
    ret = 0;
out:
    if (ret == 0) {
        *fd_out = fd;
    } else {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return ret;
}

int sz__net_connect(const char *host, uint16_t port, uint64_t deadline,
                    int *fd_out, sz_error_info *ei)
{
    struct addrinfo hints, *res = NULL, *ai;
    char serv[8], where[NI_MAXHOST + NI_MAXSERV + 4];
    size_t naddr = 0, i = 0;
    int ret, r, last_errno = 0, timed_out = 0;

    *fd_out = -1;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(serv, sizeof serv, "%u", (unsigned)port);
    r = getaddrinfo(host, serv, &hints, &res);
    if (r != 0) {
        sz__info(ei, SZ_ERR_RESOLVE, 0, "cannot resolve %s: %s", host,
                 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        ei->sys_errno = r;
        ret = SZ_ERR_RESOLVE;
        goto out;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next)
        naddr++;
    where[0] = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next, i++) {
        /* Each address gets an equal share of what is left, so that one
         * unreachable address cannot eat the whole connect timeout; the
         * last one gets all the rest. */
        uint64_t now = sz__now_ms(), dl = deadline;
        if (deadline != SZ_NO_DEADLINE && deadline > now)
            dl = now + (deadline - now) / (naddr - i);
        addr_text(ai, where, sizeof where);
        r = try_one(ai, dl, fd_out);
        if (r == 0) {
            ret = SZ_OK;
            goto out;
        }
        if (r == SZ_ERR_TIMEOUT)
            timed_out = 1;
        else
            last_errno = errno;
        if (deadline != SZ_NO_DEADLINE && sz__now_ms() >= deadline)
            break;
    }
    if (timed_out && last_errno == 0) {
        sz__info(ei, SZ_ERR_TIMEOUT, MK_ERR_TIMEOUT,
                 "connect to %s port %u timed out (last tried %s)", host,
                 (unsigned)port, where);
        ret = SZ_ERR_TIMEOUT;
    } else {
        if (where[0] == 0)
            snprintf(where, sizeof where, "%s port %u", host, (unsigned)port);
        sz__info(ei, SZ_ERR_CONNECT, MK_ERR_IO, "connect to %s: %s", where,
                 strerror(last_errno ? last_errno : ECONNREFUSED));
        ei->sys_errno = last_errno;
        ret = SZ_ERR_CONNECT;
    }
out:
    if (res != NULL)
        freeaddrinfo(res);
    return ret;
}

int sz__net_resolve(const char *host, uint16_t port, sz_addr *out, size_t max,
                    size_t *n, sz_error_info *ei)
{
    struct addrinfo hints, *res = NULL, *ai;
    int r;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    r = getaddrinfo(host, NULL, &hints, &res);
    if (r != 0) {
        sz__info(ei, SZ_ERR_RESOLVE, 0, "cannot resolve %s: %s", host,
                 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        ei->sys_errno = r;
        return SZ_ERR_RESOLVE;
    }
    for (ai = res; ai != NULL && *n < max; ai = ai->ai_next) {
        sz_addr *a = &out[*n];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, a->host, sizeof a->host,
                        NULL, 0, NI_NUMERICHOST) != 0)
            continue;
        a->port = port;
        (*n)++;
    }
    freeaddrinfo(res);
    return SZ_OK;
}

int sz__net_wait(int fd, int wake_fd, short events, int timeout_ms)
{
    struct pollfd p[2];
    nfds_t n = 1;
    uint64_t deadline =
        timeout_ms < 0 ? SZ_NO_DEADLINE : sz__now_ms() + (uint64_t)timeout_ms;
    int r;

    p[0].fd = fd;
    p[0].events = events;
    if (wake_fd >= 0) {
        p[1].fd = wake_fd;
        p[1].events = POLLIN;
        n = 2;
    }
    for (;;) {
        p[0].revents = 0;
        p[1].revents = 0;
        r = poll(p, n, timeout_ms);
        if (r >= 0 || errno != EINTR)
            break;
        /* A signal: go on with what is left of the timeout. */
        timeout_ms = sz__budget(deadline, sz__now_ms());
    }
    if (r < 0)
        return -1;
    if (n == 2 && p[1].revents != 0)
        return SZ__IO_CANCELLED;
    if (r == 0)
        return 0;
    /* An error or hang-up shows as readiness: the read or write that
     * follows reports what actually happened. */
    if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
        return events;
    return p[0].revents & events;
}

long sz__net_read(int fd, uint8_t *buf, size_t len)
{
    ssize_t n;

    do
        n = recv(fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return SZ_IO_TIMEOUT;
    return (long)n;
}

long sz__net_write(int fd, const uint8_t *buf, size_t len)
{
    ssize_t n;

    do
        n = send(fd, buf, len, SEND_FLAGS);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return SZ_IO_TIMEOUT;
    return (long)n;
}

int sz__net_pipe(int fds[2])
{
    if (pipe(fds) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
            close(fds[0]);
            close(fds[1]);
            fds[0] = fds[1] = -1;
            return -1;
        }
    }
    return 0;
}

void sz__net_close(int fd)
{
    if (fd >= 0)
        (void)close(fd);
}
