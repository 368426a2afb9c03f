/*
 * io.c -- one spawner record over the SOCK_SEQPACKET socket, with the
 * descriptors it carries (SCM_RIGHTS).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

int spawner__send(int fd, const uint8_t *buf, size_t len, const int *fds,
                  int nfds)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int) * SPAWNER_MAX_FDS)];
    } ctl;
    struct iovec iov = {(void *)(uintptr_t)buf, len};
    struct msghdr mh;
    ssize_t n;

    if (nfds < 0 || nfds > SPAWNER_MAX_FDS)
        return MKD_ERR_ARG;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfds > 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        ctl.h.cmsg_level = SOL_SOCKET;
        ctl.h.cmsg_type = SCM_RIGHTS;
        ctl.h.cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(&ctl.h), fds, sizeof(int) * (size_t)nfds);
    }
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? MKD_OK : MKD_ERR_SYSTEM;
}

/* Take the descriptors of every SCM_RIGHTS header: the first into fds, any
 * past SPAWNER_MAX_FDS closed. Returns 0, or -1 if some were closed. */
static int take_fds(struct msghdr *mh, int *fds, int *nfds)
{
    int over = 0;

    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
         c = CMSG_NXTHDR(mh, c)) {
        size_t n;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
            if (*nfds < SPAWNER_MAX_FDS) {
                fds[(*nfds)++] = f;
            } else {
                (void)close(f);
                over = 1;
            }
        }
    }
    return over ? -1 : 0;
}

long spawner__recv(int fd, uint8_t *buf, size_t cap, int *fds, int *nfds)
{
    union {
        struct cmsghdr h;
        /* Room for more than we accept, so extras arrive and are closed
         * rather than leak into the kernel's truncation. */
        char space[CMSG_SPACE(sizeof(int) * (SPAWNER_MAX_FDS + 8))];
    } ctl;
    struct iovec iov = {buf, cap};
    struct msghdr mh;
    ssize_t n;

    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.space;
    mh.msg_controllen = sizeof ctl.space;
    *nfds = 0;
    n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -1;
    if (take_fds(&mh, fds, nfds) != 0 ||
        (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        for (int i = 0; i < *nfds; i++)
            (void)close(fds[i]);
        *nfds = 0;
        errno = EBADMSG;
        return -1;
    }
    return (long)n;
}
