/*
 * internal.h -- the FastCGI backend's parts, shared between its files:
 *   fastcgi.c   the backend's operations, settings, status
 *   upstream.c  the upstream list: parsing, choice, ejection
 *   conn.c      connections to an upstream: connect, write, read, close
 *   request.c   a request: its records out, its answer in
 */
#ifndef MKD_FASTCGI_INTERNAL_H
#define MKD_FASTCGI_INTERNAL_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fastcgi.h"
#include "fcgi.h"
#include "mkd_util.h"

/* The one request id used on every connection: one request at a time. */
#define FC_REQUEST_ID 1u

typedef struct fastcgi fastcgi;
typedef struct fc_conn fc_conn;
typedef struct fc_req fc_req;

typedef struct fc_upstream {
    struct fc_upstream *next; /* on the retired list */
    char name[128];           /* as configured, for logs and status */
    int is_unix;
    char path[108];
    struct sockaddr_storage addr;
    fc_conn *conns; /* every open connection */
    unsigned nconns, nidle;
    uint64_t ejected_until; /* uv_now; 0: healthy */
    uint64_t requests, connect_failures, ejections;
    int retired; /* dropped by a reload: closes once its conns are gone */
} fc_upstream;

enum fc_conn_state { FC_CONNECTING, FC_IDLE, FC_BUSY, FC_CLOSING };

struct fc_conn {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    uv_timer_t timer; /* the connect deadline, then the answer's */
    uv_connect_t creq;
    uv_write_t wreq;
    fastcgi *b;
    fc_upstream *up;
    fc_conn *next;
    fc_req *req; /* the request on it; NULL when idle */
    enum fc_conn_state state;
    int open_handles;
    int writing; /* a uv_write of the request's records is pending */
    size_t in_len;
    uint8_t in[FCGI_RECORD_MAX];
};

struct fc_req {
    fc_req *prev, *next; /* the backend's outstanding list */
    void *token;
    mkd_backend_done_fn done;
    int cancelled;
    uint64_t conn_id;
    uint8_t *wire; /* BEGIN_REQUEST, PARAMS and STDIN, encoded */
    size_t wire_len;
    uint8_t *out; /* STDOUT so far */
    size_t out_len, out_cap;
    size_t max_body; /* the answer's limit */
    uint64_t submitted_ns, started_ns;
    uint32_t tried;          /* bit i: ups[i] was tried (a request never goes
                       back to an upstream whose connect failed) */
    uint8_t protocol_status; /* END_REQUEST's */
};

struct fastcgi {
    mkd_backend base;
    uv_loop_t *loop;
    char script[4096];
    uint32_t max_conns, connect_timeout_ms, request_timeout_ms, eject_ms,
        max_message;
    fc_upstream *ups[FASTCGI_UPSTREAMS_MAX];
    unsigned nups, rr;
    fc_upstream *retired;
    fc_req *reqs;
    size_t inflight;
    unsigned open_handles;
    uint64_t submitted, answered, cancelled, app_errors, timeouts, overloaded,
        lost, protocol_errors, reloads, stderr_records;
    int draining, freed;
    void (*drained)(void *);
    void *drained_arg;
};

/* upstream.c */
MKD_MUST_CHECK int fastcgi__parse_upstreams(const char *list, fc_upstream **ups,
                                            unsigned *n, mkd_diag *d);
/* The next upstream, round robin, that is up, has room, and is not in
 * r's tried set (which it joins); NULL if none. */
fc_upstream *fastcgi__pick(fastcgi *b, fc_req *r);
void fastcgi__eject(fastcgi *b, fc_upstream *up);
void fastcgi__upstream_gone_conn(fastcgi *b, fc_upstream *up);

/* conn.c */
/* Put r on an idle connection of up, or a new one. MKD_OK, or
 * MKD_ERR_NOMEM / MKD_ERR_LOOP (r untouched). */
MKD_MUST_CHECK int fastcgi__conn_run(fastcgi *b, fc_upstream *up, fc_req *r);
void fastcgi__conn_close(fc_conn *c);
void fastcgi__conn_abort(fc_conn *c);

/* request.c */
MKD_MUST_CHECK int fastcgi__req_encode(fastcgi *b, fc_req *r,
                                       const mkd_request_ctx *ctx,
                                       const uint8_t *body, size_t len);
/* Find r a connection, trying the upstreams in turn; answers it
 * OVERLOADED (from a callback) when none will take it. */
void fastcgi__req_dispatch(fastcgi *b, fc_req *r);
/* Take the records in c->in for c's request: 0 while it goes on, 1
 * when it ended (END_REQUEST, nothing after it), -1 when c must close
 * and the request be answered *st with *text. */
MKD_MUST_CHECK int fastcgi__req_input(fc_conn *c, mkd_backend_status *st,
                                      const char **text);
/* c's request ended (END_REQUEST): answer it from what came. */
void fastcgi__req_finish(fastcgi *b, fc_req *r);
void fastcgi__req_answer(fastcgi *b, fc_req *r, mkd_backend_status st,
                         const uint8_t *body, size_t len, const char *text);
void fastcgi__maybe_drained(fastcgi *b);
void fastcgi__maybe_free(fastcgi *b);

#endif
