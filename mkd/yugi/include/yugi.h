/*
 * yugi.h -- Yugi, MKD's network layer on one libuv loop: listeners,
 * connections and their state machine, framing, deadlines and limits, and
 * the hand-offs to Yami (the protocol session, crypto on the thread pool)
 * and to a backend (the requests).
 *
 * main builds a server from its settings, lets it listen, passes on
 * reloads and asks it to shut down; the control room reads its counters.
 * Everything here runs on the loop thread. Errors are mkd_err codes.
 *
 * Ownership: from yugi_server_new on, the server holds the backend (it
 * drains and frees it at shutdown) and the reference to the server
 * configuration it was given; the yami is borrowed and must outlive the
 * server's connections (until yugi_server_free).
 */
#ifndef YUGI_H
#define YUGI_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "backend.h"
#include "megaki.h"
#include "mkd_proxy.h"
#include "yami.h"

/* The limits and deadlines; all can change on a reload. */
typedef struct yugi_limits {
    uint32_t max_connections;
    uint32_t max_handshakes;              /* hellos queued or running in Yami */
    uint32_t max_pending_per_address;     /* connections not yet established */
    uint32_t max_connections_per_address; /* established or not */
    uint32_t handshake_rate;              /* full handshakes/s per address */
    uint32_t handshake_burst;
    uint32_t resume_rate; /* resumptions/s per address */
    uint32_t resume_burst;
    uint32_t retry_after_ms; /* what a refused client is told */
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t unit_timeout_ms;            /* a unit half received */
    uint32_t partial_request_timeout_ms; /* a request half received */
    uint32_t write_timeout_ms;           /* a write without progress */
    uint32_t shutdown_timeout_ms;
    uint32_t conn_buffer_max;    /* request bytes being reassembled */
    uint32_t buffer_budget;      /* ... on all connections, plus output */
    uint32_t write_high_water;   /* stop reading above this */
    uint32_t request_slowlog_ms; /* log a request slower than this; 0: off */
    /* Peers that must open with a PROXY header (whose address then stands
     * for the client's); empty: nobody may send one. */
    mkd_proxy_cidrs trusted_proxies;
} yugi_limits;

/* Fixed for the server's life. */
typedef struct yugi_config {
    const char *listen; /* addresses separated by commas or blanks */
    uint16_t port;      /* 0: the kernel picks, for the first listener */
    uint32_t backlog;
    yugi_limits limits;
} yugi_config;

/* Why a connection ended: counted in the status view. */
enum yugi_close_reason {
    YUGI_CR_DONE = 0,     /* clean close (close records) */
    YUGI_CR_EOF,          /* peer hung up without a close record */
    YUGI_CR_IO,           /* socket error */
    YUGI_CR_PROTO,        /* peer broke the protocol */
    YUGI_CR_TO_HANDSHAKE, /* handshake deadline */
    YUGI_CR_TO_IDLE,
    YUGI_CR_TO_UNIT,    /* half-received unit (slowloris) */
    YUGI_CR_TO_WRITE,   /* peer stopped reading */
    YUGI_CR_TO_REQUEST, /* a request left unfinished */
    YUGI_CR_REFUSED,    /* limits: told to retry later */
    YUGI_CR_INTERNAL,   /* our failure (memory) */
    YUGI_CR_SHUTDOWN,
    YUGI_CR_COUNT
};

/* The reason's name in the status view ("timeout_idle"). */
const char *yugi_close_reason_key(int reason);

#define YUGI_ERR_SLOTS   100 /* mk_err codes counted by value below this */
#define YUGI_RATE_WINDOW 10

/* How a request ended: the backend's statuses (mkd_backend_status, by
 * value), and a request whose connection went away before its answer. */
#define YUGI_OUT_CANCELLED (MKD_BACKEND_SHUTDOWN + 1)
#define YUGI_OUT_COUNT     (YUGI_OUT_CANCELLED + 1)
/* The outcome's name ("ok", "timeout", ..., "cancelled"). */
const char *yugi_outcome_key(int outcome);

/* A latency histogram with fixed buckets: bucket[i] counts the times up
 * to yugi_hist_bound_us(i) and above the bound before it (not
 * cumulative); the last bucket has no bound (UINT64_MAX). */
#define YUGI_HIST_BUCKETS 17
typedef struct yugi_hist {
    uint64_t bucket[YUGI_HIST_BUCKETS];
    uint64_t count, sum_us;
} yugi_hist;
uint64_t yugi_hist_bound_us(unsigned i);

/* Counters since start, and gauges read when yugi_server_stats ran. */
typedef struct yugi_stats {
    /* gauges */
    int shutting_down;
    uint64_t uptime_ms;
    size_t connections, refusing, addresses;
    unsigned handshakes_in_progress;
    uint32_t max_connections;
    uint64_t full_last_s, resumed_last_s; /* handshakes in the last 1 s */
    uint64_t full_window, resumed_window; /* ... in the last 10 s */
    /* counters */
    uint64_t accepted, closed, accept_errors;
    uint64_t refused_connections, refused_pending, refused_handshakes,
        refused_rate, refused_per_address, refused_resume_rate;
    uint64_t hs_full, hs_resumed, hs_retry, hs_failed;
    uint64_t requests, responses, backend_overloaded, aborted;
    uint64_t budget_overloaded; /* requests refused for buffer_budget */
    /* PROXY headers: taken from a trusted proxy; refused from one
     * (malformed, missing, too long); sent by an untrusted peer. */
    uint64_t proxy_headers, proxy_refused, proxy_untrusted;
    uint64_t bytes_in, bytes_out;
    uint64_t close_reason[YUGI_CR_COUNT];
    uint64_t errors[YUGI_ERR_SLOTS]; /* by mk_err value */
    uint64_t reloads;
    /* Requests by how they ended, and the slow ones (request_slowlog_ms). */
    uint64_t outcomes[YUGI_OUT_COUNT];
    uint64_t slow_requests;
    /* From the first CLIENT_HELLO to the SERVER_HELLO, by kind; from a
     * request's last record to its answer (cancelled ones not counted). */
    yugi_hist hs_full_latency, hs_resumed_latency, request_latency;
    size_t listeners; /* a gauge: sockets listening now */
} yugi_stats;

typedef struct yugi_server yugi_server;

/* A server on loop with its handles initialised (nothing listens yet).
 * Takes scfg (the caller's reference) and backend, also on failure.
 * MKD_OK or MKD_ERR_NOMEM. */
MKD_MUST_CHECK int yugi_server_new(uv_loop_t *loop, const yugi_config *cfg,
                                   mk_server_config *scfg, yami *y,
                                   mkd_backend *backend, yugi_server **out);
/* Bind and listen on every configured address. MKD_OK or
 * MKD_ERR_LISTEN / MKD_ERR_NOMEM with the address in d. After a failure
 * the server must still be shut down (yugi_server_shutdown). */
MKD_MUST_CHECK int yugi_server_listen(yugi_server *srv, mkd_diag *d);
/* `mkd config --test`: every address of listen (as yugi_config.listen)
 * parses, and a socket can be bound to it on port and let go at once,
 * without listening; a port already in use passes (a running mkd holds
 * it). MKD_OK or MKD_ERR_LISTEN with the address in d. */
MKD_MUST_CHECK int yugi_listen_check(const char *listen, uint16_t port,
                                     mkd_diag *d);
/* The port listened on (the kernel's choice when configured 0). */
uint16_t yugi_server_port(const yugi_server *srv);

/* A reload: new limits and a new server configuration (its reference is
 * taken) for new connections, then the backend's reload. Open sessions
 * keep the configuration they started with. */
void yugi_server_reload(yugi_server *srv, const yugi_limits *limits,
                        mk_server_config *scfg);

/* Stop accepting. graceful: let open connections finish their requests
 * (up to shutdown_timeout_ms, then answer what still runs with
 * "shutdown") and drain the backend; else close every connection and free
 * the backend now (a second signal, a start that failed). Then close
 * every handle and call done(arg), once. A later call can only turn a
 * graceful shutdown into an immediate one; its done and arg are ignored. */
void yugi_server_shutdown(yugi_server *srv, int graceful, void (*done)(void *),
                          void *arg);
/* After the loop has ended: release the memory. NULL: nothing. */
void yugi_server_free(yugi_server *srv);

/* The backend's numbers (zeros once it is gone, at shutdown). */
void yugi_server_backend_stats(yugi_server *srv, mkd_backend_stats *out);
/* Ready to serve: not shutting down, listening, and, for a backend with
 * workers, at least one worker idle or busy and no crash loop. 1, or 0
 * with *why a short reason ("no worker ready"). */
int yugi_server_ready(yugi_server *srv, const char **why);

void yugi_server_stats(const yugi_server *srv, yugi_stats *out);
/* The backend's own status block into buf (at most cap bytes; empty once
 * the backend has been freed at shutdown). Returns the bytes written. */
size_t yugi_server_backend_status(yugi_server *srv, char *buf, size_t cap);

#endif
