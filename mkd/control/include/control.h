/*
 * control.h -- the operator's view of a running mkd: the status text
 * (connections, handshakes, refusals, crypto jobs, the backend's workers,
 * reloads) and the control socket that serves it to `mkd status`.
 *
 * The status is read from the rooms through their getters (Yugi's and
 * Yami's counters, the backend's block); nothing here changes them.
 * Everything runs on the loop thread. Errors are mkd_err codes.
 */
#ifndef MKD_CONTROL_H
#define MKD_CONTROL_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "yami.h"
#include "yugi.h"

/* Where the status comes from; borrowed for the control's life. */
typedef struct control_sources {
    yugi_server *srv;
    yami *yami;
    const uint64_t *reload_failures; /* main's count */
    const uint16_t *metrics_port;    /* the metrics listener's; 0: none */
} control_sources;

/* The status text into buf (at most cap bytes, NUL-terminated): one
 * "key value" per line, the keys documented in docs/MKD.md. Returns the
 * bytes written. */
size_t control_status(const control_sources *src, char *buf, size_t cap);

typedef struct control control;

/* Serve the status on a Unix socket at path (created mode 0600: the
 * daemon's user). A socket file left by a dead daemon is replaced; a live
 * one is MKD_ERR_IN_USE. path "" or "none": no socket (*out is NULL).
 * MKD_OK, MKD_ERR_IN_USE, MKD_ERR_LOOP or MKD_ERR_NOMEM, with the path in
 * d. */
MKD_MUST_CHECK int control_open(uv_loop_t *loop, const char *path,
                                const control_sources *src, control **out,
                                mkd_diag *d);
/* Stop serving and remove the socket file; the memory goes once the loop
 * has closed the handle. NULL: nothing. */
void control_close(control *ctl);

#endif
