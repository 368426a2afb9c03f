/*
 * notify.c -- the service manager's notification protocol (sd_notify(3),
 * as systemd documents it): one datagram of "KEY=value" lines to the
 * AF_UNIX socket named by $NOTIFY_SOCKET, a path or, with a leading '@',
 * a name in the abstract namespace. Spoken directly rather than through
 * libsystemd: the protocol is a single sendto, and mkd then depends on no
 * service manager. Without NOTIFY_SOCKET nothing is sent.
 *
 * The socket is opened at start-up, before privileges are dropped, and
 * the variable is removed from the environment so that nothing mkd
 * starts (the spawner, the workers) speaks for it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mkd.h"
#include "mkd_log.h"

void mkd_notify_open(mkd_notifier *n)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len;

    n->fd = -1;
    if (path == NULL)
        return;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len < 2 ||
        len >= sizeof n->sa.sun_path) {
        mkd_warn(0, "NOTIFY_SOCKET \"%s\": not a socket path; not notifying",
                 path);
        goto out;
    }
    memset(&n->sa, 0, sizeof n->sa);
    n->sa.sun_family = AF_UNIX;
    memcpy(n->sa.sun_path, path, len);
    if (path[0] == '@')
        n->sa.sun_path[0] = '\0'; /* abstract: the name is not terminated */
    n->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                         (path[0] == '/'));
    if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        mkd_warn(0, "NOTIFY_SOCKET: %s; not notifying", strerror(errno));
out:
    (void)unsetenv("NOTIFY_SOCKET");
}

void mkd_notify(const mkd_notifier *n, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    int len;

    if (n->fd < 0)
        return;
    va_start(ap, fmt);
    len = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (len <= 0 || (size_t)len >= sizeof text)
        return;
    if (sendto(n->fd, text, (size_t)len, MSG_NOSIGNAL,
               (const struct sockaddr *)&n->sa, n->len) != (ssize_t)len)
        mkd_warn(0, "NOTIFY_SOCKET: %s", strerror(errno));
}

uint64_t mkd_monotonic_usec(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void mkd_notify_close(mkd_notifier *n)
{
    if (n->fd >= 0)
        (void)close(n->fd);
    n->fd = -1;
}
