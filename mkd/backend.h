/*
 * backend.h -- the seam between MKD's network/crypto layers (Yugi, Yami) and
 * whatever answers requests: the built-in echo backend (diagnostics and
 * benchmarks) or Pegasus (the PHP worker pool).
 *
 * Everything here runs on the libuv loop thread: a backend is called from
 * the loop and calls back on the loop. A backend never sees keys or
 * ciphertext: it gets a complete plaintext request and its context, and
 * answers it exactly once.
 */
#ifndef MKD_BACKEND_H
#define MKD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct mkd_request_ctx {
    uint64_t conn_id;          /* MKD's connection id (as in the logs) */
    uint32_t request_id;       /* the protocol's request id */
    char peer_addr[46];        /* client address, text (IPv4 or IPv6) */
    uint16_t peer_port;
    uint8_t session_id[16];    /* non-secret session id (libmegaki) */
    int early;                 /* arrived as an early request (0-RTT) */
} mkd_request_ctx;

/*
 * The answer to one request, called exactly once per accepted submit, on
 * the loop thread, unless the request was cancelled first.
 *   status 0: body[0..len) is the response (borrowed for the call);
 *   status MK_ECODE_* (megaki.h enum mk_error_code): an error; text is a
 *   short, client-safe reason (may be NULL).
 */
typedef void (*mkd_backend_done_fn)(void *token, unsigned status,
                                    const uint8_t *body, size_t len,
                                    const char *text);

typedef struct mkd_backend mkd_backend;

typedef struct mkd_backend_ops {
    const char *name;
    /* Accept a request. body is malloc'd and ownership passes to the
     * backend (also on failure). Returns 0, or MK_ECODE_OVERLOADED when the
     * queue is full (done is then NOT called; the caller answers at once). */
    unsigned (*submit)(mkd_backend *b, const mkd_request_ctx *ctx,
                       uint8_t *body, size_t len, mkd_backend_done_fn done,
                       void *token);
    /* The connection behind token went away: never call done for it. The
     * request may still run to completion (its answer is dropped). */
    void (*cancel)(mkd_backend *b, void *token);
    /* SIGHUP: pick up new code/configuration without failing a request. */
    void (*reload)(mkd_backend *b);
    /* Stop taking work, finish what is accepted, then call done(arg). */
    void (*drain)(mkd_backend *b, void (*done)(void *arg), void *arg);
    /* Append a human-readable status block (one "key value" per line) to
     * buf, at most cap bytes; returns bytes written. */
    size_t (*status)(mkd_backend *b, char *buf, size_t cap);
    /* Answer every request still outstanding (not cancelled) with
     * MK_ECODE_SHUTDOWN, from inside this call, then release everything
     * (handles close on the loop). Never called from a done callback. */
    void (*free)(mkd_backend *b);
} mkd_backend_ops;

struct mkd_backend {
    const mkd_backend_ops *ops;
};

#endif /* MKD_BACKEND_H */
