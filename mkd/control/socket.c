/*
 * socket.c -- the control socket (control.h). Anyone who can open it (mode
 * 0600: the daemon's user) gets the status text; nothing is read from the
 * client, so there is nothing to parse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "mkd_log.h"

#define STATUS_MAX 16384

struct control {
    uv_pipe_t pipe;
    const control_sources *src;
    char path[sizeof((struct sockaddr_un *)0)->sun_path];
};

typedef struct ctl_client {
    uv_pipe_t pipe;
    uv_write_t req;
    char *text;
} ctl_client;

static void on_client_closed(uv_handle_t *h)
{
    ctl_client *cc = h->data;

    free(cc->text);
    free(cc);
}

static void on_written(uv_write_t *req, int status)
{
    ctl_client *cc = req->data;

    (void)status;
    uv_close((uv_handle_t *)&cc->pipe, on_client_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    control *ctl = server->data;
    ctl_client *cc;
    uv_buf_t b;
    size_t n;

    if (status < 0 || (cc = calloc(1, sizeof *cc)) == NULL)
        return;
    if (uv_pipe_init(server->loop, &cc->pipe, 0) != 0) {
        free(cc);
        return;
    }
    cc->pipe.data = cc;
    cc->req.data = cc;
    if (uv_accept(server, (uv_stream_t *)&cc->pipe) != 0 ||
        (cc->text = malloc(STATUS_MAX)) == NULL) {
        uv_close((uv_handle_t *)&cc->pipe, on_client_closed);
        return;
    }
    n = control_status(ctl->src, cc->text, STATUS_MAX);
    b = uv_buf_init(cc->text, (unsigned)n);
    if (uv_write(&cc->req, (uv_stream_t *)&cc->pipe, &b, 1, on_written) != 0)
        uv_close((uv_handle_t *)&cc->pipe, on_client_closed);
}

/* A socket file left by a dead daemon is removed; a live one is not. */
static int socket_in_use(const char *path)
{
    struct sockaddr_un sa;
    int fd, r;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return 0;
    r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return r == 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

int control_open(uv_loop_t *loop, const char *path, const control_sources *src,
                 control **out, mkd_diag *d)
{
    control *ctl;
    mode_t old;
    int r;

    mkd_diag_clear(d);
    *out = NULL;
    if (path[0] == '\0' || strcmp(path, "none") == 0)
        return MKD_OK;
    if ((ctl = calloc(1, sizeof *ctl)) == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "out of memory");
    if (snprintf(ctl->path, sizeof ctl->path, "%s", path) >=
        (int)sizeof ctl->path) {
        free(ctl);
        return mkd_fail(d, MKD_ERR_CONFIG, "control socket %s: path too long",
                        path);
    }
    if (socket_in_use(path)) {
        free(ctl);
        return mkd_fail(d, MKD_ERR_IN_USE,
                        "control socket %s is in use: another mkd is "
                        "running?",
                        path);
    }
    (void)unlink(path);
    ctl->src = src;
    (void)uv_pipe_init(loop, &ctl->pipe, 0); /* cannot fail: ipc 0 */
    ctl->pipe.data = ctl;
    *out = ctl;       /* from here on control_close releases it */
    old = umask(077); /* the socket file is created 0600 */
    r = uv_pipe_bind(&ctl->pipe, path);
    umask(old);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&ctl->pipe, 16, on_connection);
    if (r != 0)
        return mkd_fail(d, MKD_ERR_LOOP, "control socket %s: %s", path,
                        uv_strerror(r));
    mkd_info(0, "status: mkd status --control_socket=%s", path);
    return MKD_OK;
}

void control_close(control *ctl)
{
    if (ctl == NULL || uv_is_closing((uv_handle_t *)&ctl->pipe))
        return;
    (void)unlink(ctl->path);
    uv_close((uv_handle_t *)&ctl->pipe, on_closed);
}
