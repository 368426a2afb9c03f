/*
 * backend.h -- the seam between MKD's connection side (Yugi, Yami) and
 * whatever answers requests: the built-in echo backend (diagnostics and
 * benchmarks) or Pegasus (the PHP worker pool).
 *
 * A backend knows nothing of the protocol: it gets a complete plaintext
 * request and its context, and answers it exactly once with a body or one
 * of the statuses below. Yugi turns a status into the protocol's error
 * code; nothing behind this seam includes megaki.h, sees a key, a session
 * or a ciphertext.
 *
 * Everything here runs on the libuv loop thread: a backend is called from
 * the loop and calls back on the loop.
 */
#ifndef MKD_BACKEND_H
#define MKD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* How a request ended. Every status but OK means the application's answer
 * is not there; the text given with it is short and safe to show the
 * client. */
typedef enum mkd_backend_status {
    MKD_BACKEND_OK = 0,
    MKD_BACKEND_APPLICATION, /* the application failed (exception, fatal) */
    MKD_BACKEND_TIMEOUT,     /* it ran past its time limit */
    /* OVERLOADED and SHUTDOWN only for a request the application never
     * received: clients repeat those elsewhere (docs/PROTOCOL.md §8.5). A
     * request that may have reached it and is lost is INTERNAL. */
    MKD_BACKEND_OVERLOADED, /* not taken, or waited too long: retry later */
    MKD_BACKEND_TOO_LARGE,  /* request over the backend's size limit */
    MKD_BACKEND_INTERNAL,   /* the backend failed (a worker crashed) */
    MKD_BACKEND_SHUTDOWN    /* the server is stopping */
} mkd_backend_status;

/* The status's name, for logs and tests ("overloaded"). */
const char *mkd_backend_status_name(mkd_backend_status st);

/* A session id's size: the context carries the protocol's non-secret
 * session id as opaque bytes. */
#define MKD_SESSION_ID_LEN 16
/* ... and the id of the server key the session was made with (not
 * secret: a digest of the public key, as `mkd pubkey` shows). */
#define MKD_KEY_ID_LEN     8

typedef struct mkd_request_ctx {
    uint64_t conn_id;    /* MKD's connection id (as in the logs) */
    uint32_t request_id; /* the client's request id */
    char peer_addr[46];  /* client address, text (IPv4 or IPv6) */
    uint16_t peer_port;
    uint8_t session_id[MKD_SESSION_ID_LEN];
    uint8_t key_id[MKD_KEY_ID_LEN];
    /* The largest answer the session can carry: the max_message announced
     * to this client, which a reload since may have changed for newer
     * connections. A backend answers a larger one with an error instead
     * (the protocol could not seal it). 0: no limit but the backend's. */
    uint32_t max_response;
    int early; /* arrived as an early request (0-RTT) */
} mkd_request_ctx;

/* How a request ran, as far as the backend knows (zeros where it does
 * not): for the access log and the slow-request log. */
typedef struct mkd_backend_timing {
    uint64_t queue_us; /* from submit until a worker took it */
    uint64_t run_us;   /* from then until its answer */
    int worker_pid;    /* the worker that ran it; 0: none did */
} mkd_backend_timing;

/*
 * The answer to one request, called exactly once per accepted submit, on
 * the loop thread, unless the request was cancelled first.
 *   status OK: body[0..len) is the response (borrowed for the call);
 *   any other: text is a short, client-safe reason (may be NULL).
 *   timing: never NULL; borrowed for the call.
 */
typedef void (*mkd_backend_done_fn)(void *token, mkd_backend_status status,
                                    const uint8_t *body, size_t len,
                                    const char *text,
                                    const mkd_backend_timing *timing);

/* A backend's numbers, read from the same counters as its status block:
 * for the metrics and for readiness. Zeros where a backend has no such
 * thing (the echo backend has no workers). */
typedef struct mkd_backend_stats {
    int has_workers; /* the backend runs workers (readiness needs one) */
    unsigned workers_starting, workers_idle, workers_busy, workers_stopping;
    int crash_loop; /* the application keeps dying before it serves */
    size_t queued, queue_max;
    uint64_t submitted, answered, cancelled, app_errors, timeouts,
        queue_timeouts, overloaded, crashes, start_failures, protocol_errors,
        recycled, restarts, spawned, reloads;
} mkd_backend_stats;

typedef struct mkd_backend mkd_backend;

typedef struct mkd_backend_ops {
    const char *name;
    /* Accept a request. body is malloc'd and ownership passes to the
     * backend (also on failure). Returns MKD_BACKEND_OK, or the reason it
     * was not taken (done is then NOT called; the caller answers at once):
     * OVERLOADED, TOO_LARGE, SHUTDOWN or INTERNAL. done is never called
     * from inside submit. */
    mkd_backend_status (*submit)(mkd_backend *b, const mkd_request_ctx *ctx,
                                 uint8_t *body, size_t len,
                                 mkd_backend_done_fn done, void *token);
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
    /* The same state as numbers (out is zeroed first by the caller). */
    void (*stats)(mkd_backend *b, mkd_backend_stats *out);
    /* Answer every request still outstanding (not cancelled), from inside
     * this call: MKD_BACKEND_SHUTDOWN if the application never received
     * it, MKD_BACKEND_TIMEOUT if it may have started (clients repeat a
     * "shutdown" elsewhere: docs/PROTOCOL.md §8.5). Then release
     * everything (handles close on the loop). Never called from a done
     * callback. */
    void (*free)(mkd_backend *b);
} mkd_backend_ops;

struct mkd_backend {
    const mkd_backend_ops *ops;
};

#endif /* MKD_BACKEND_H */
