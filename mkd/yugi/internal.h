/*
 * internal.h -- Yugi's internals, shared by its files and its own tests
 * (through the yugi_internal target; the build refuses anyone else):
 *
 *   server.c    the server: start, the 1-second tick, reload, shutdown,
 *               counters
 *   listener.c  binding and accepting
 *   conn.c      a connection's life: accept, limits at accept, state,
 *               deadlines, close
 *   conn_io.c   reading and framing (limits on hellos), writing with
 *               backpressure
 *   conn_work.c the hand-offs: units to Yami and its results back,
 *               requests to the backend and its answers back
 *   framing.c   cutting the stream into units (framing.h)
 *   limits.c    per-address token buckets and pending counts (limits.h)
 *
 * Everything runs on the loop thread. Non-static functions shared between
 * the files carry the yugi__ prefix.
 */
#ifndef YUGI_INTERNAL_H
#define YUGI_INTERNAL_H

#include "yugi.h"

#include "framing.h"
#include "limits.h"

#define YUGI_READ_BUF_SIZE 65536
/* The longest PROXY header taken: a v1 line, or a v2 header with the TLVs
 * a load balancer adds (HAProxy's, by default, none). Longer: refused. */
#define YUGI_PROXY_MAX     4096

/* Connection states. Transitions (conn.c):
 *   HANDSHAKE  -> ESTABLISHED   the server hello went out
 *   HANDSHAKE  -> DRAINING      refused (retry later), failed, timed out
 *   ESTABLISHED-> DRAINING      close record sealed, or failure with output
 *   any        -> LINGER        output flushed, FIN sent; reading to discard
 *   any        -> CLOSED        uv_close issued; freed when all refs drop
 */
enum yugi_conn_state {
    YUGI_HANDSHAKE = 1,
    YUGI_ESTABLISHED,
    YUGI_DRAINING,
    YUGI_LINGER,
    YUGI_CLOSED
};

typedef struct yugi_conn yugi_conn;

/* A request handed to the backend: the backend's token. */
typedef struct yugi_req {
    struct yugi_req *prev, *next;
    yugi_conn *conn;
    uint32_t id;
    size_t len;        /* its body */
    uint64_t start_ns; /* uv_hrtime when its last record was opened */
} yugi_req;

struct yugi_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    yugi_server *srv;
    struct yugi_conn *prev, *next; /* server's list */
    uint64_t id;
    int state;
    int refs; /* tcp, timer, Yami pool job */
    int close_reason;
    int close_hint;       /* reason to record once our close is sent */
    int counted;          /* counts toward srv->nconns */
    unsigned pending : 1; /* counts toward its address's pending */
    unsigned reading : 1;
    unsigned peer_closed : 1;
    unsigned close_queued : 1;
    unsigned refused : 1; /* no session: retry-later then close */
    unsigned hello_seen : 1;
    unsigned failed : 1; /* the session failed: nothing more is sealed */
    unsigned timer_armed : 1;
    unsigned proxy_wait : 1; /* from a trusted proxy: its header first */
    unsigned input_seen : 1; /* the connection's own bytes have begun */
    unsigned hs_queued;      /* full hellos queued to Yami and counted */
    yugi_addr *addr;
    char peer[46];
    uint16_t peer_port;
    uint64_t accepted_at, last_active, unit_start, write_progress;
    uint64_t linger_until, drain_until, timer_at;
    uint64_t partial_since; /* oldest request being received began; 0 */
    uint64_t hello_ns;      /* uv_hrtime of the first CLIENT_HELLO; 0 */
    size_t wq_bytes;        /* bytes handed to uv_write, not yet written */
    unsigned inflight;      /* requests at the backend or being answered */
    yugi_req *reqs;         /* at the backend */
    uint8_t session_id[MK_SESSION_ID_LEN];
    uint8_t key_id[MK_KEY_ID_LEN]; /* the session's server key */
    uint32_t max_message; /* announced to this peer: its answers' limit */
    yugi_framer framer;
    /* Units read in one read callback, queued to Yami as one operation. */
    uint8_t *batch;
    size_t batch_len, batch_cap;
    unsigned units_read; /* units completed in the current read */
    yami_conn *yami;     /* the session; NULL while refusing */
    /* A PROXY header split across reads, copied aside until complete. */
    uint8_t *pbuf;
    size_t plen;
};

typedef struct yugi_listener {
    uv_tcp_t tcp;
    yugi_server *srv;
    char name[64];
} yugi_listener;

/* What the once-a-minute summary compares against. */
typedef struct yugi_summary {
    uint64_t refused, failed, handshakes, timeouts;
} yugi_summary;

struct yugi_server {
    uv_loop_t *loop;
    char listen[512];
    uint16_t port; /* configured, then bound */
    uint32_t backlog;
    yugi_limits lim;
    mk_server_config *scfg; /* current; new connections take a ref */
    yami *yami;
    mkd_backend *backend; /* NULL once freed at shutdown */
    yugi_listener *listeners;
    size_t nlisteners;
    uv_timer_t tick; /* 1 s: rates, address sweep, summary */
    uv_timer_t shutdown_timer;
    unsigned ticks;
    yugi_conn *conns;
    size_t nconns; /* established or handshaking */
    size_t nrefusing;
    size_t nproxy_wait;   /* waiting for a trusted proxy's header */
    unsigned hs_inflight; /* full hellos queued or running in Yami */
    uint64_t next_id;
    yugi_addrs addrs;
    yugi_stats st; /* counters; gauges filled on request */
    uint64_t hs_full_ring[YUGI_RATE_WINDOW], hs_res_ring[YUGI_RATE_WINDOW];
    unsigned ring_pos;
    uint64_t last_full, last_res;
    yugi_summary summary;
    uint64_t started_ms;
    uint64_t last_accept_warn;
    int shutting_down;
    int backend_drained;
    int finished; /* every handle asked to close */
    void (*done)(void *);
    void *done_arg;
    uv_check_t flush; /* the access log, once per loop iteration */
    /* Reads land here: the loop thread reads one socket at a time. */
    uint8_t read_buf[YUGI_READ_BUF_SIZE];
};

/* server.c */
/* Finish the shutdown once every connection is closed and the backend is
 * drained (or gone). */
void yugi__maybe_finish(yugi_server *srv);

/* listener.c */
MKD_MUST_CHECK int yugi__listen(yugi_server *srv, mkd_diag *d);
void yugi__listeners_close(yugi_server *srv);

/* conn.c */
void yugi__conn_accepted(yugi_server *srv, uv_stream_t *listener);
/* The client's address is known (the socket's, or a trusted proxy's
 * header's): the limits at accept, then a session. */
void yugi__conn_admit(yugi_conn *c, const struct sockaddr_storage *ss);
/* c->peer and c->peer_port from ss. */
void yugi__conn_set_peer(yugi_conn *c, const struct sockaddr_storage *ss);
void yugi__conn_close(yugi_conn *c, int reason);
/* Stop taking input and close once everything queued is written. */
void yugi__conn_drain(yugi_conn *c, int reason);
/* DRAINING and all written: send FIN and linger. */
void yugi__conn_try_finish(yugi_conn *c);
/* Re-arm the connection's timer at its earliest deadline. */
void yugi__conn_rearm(yugi_conn *c);
/* Shutdown: ask a connection to finish its requests and close. */
void yugi__conn_shutdown(yugi_conn *c);
void yugi__conn_unref(yugi_conn *c);

/* conn_io.c */
/* Start or stop reading, by the backpressure rules. */
void yugi__conn_flow(yugi_conn *c);
/* Write buf (malloc'd; ownership passes here). MKD_OK or MKD_ERR_NOMEM /
 * MKD_ERR_LOOP (the caller closes). */
MKD_MUST_CHECK int yugi__conn_write(yugi_conn *c, uint8_t *buf, size_t len);
/* A plaintext alert (before keys exist): retry later, bad message. */
void yugi__write_alert(yugi_conn *c, unsigned code, uint32_t arg);

/* conn_work.c */
/* Yami's result for the connection (owner = the connection). */
void yugi__on_result(void *owner, yami_result *res);
/* Hand what is queued to Yami (c may be CLOSED on return). */
void yugi__conn_kick(yugi_conn *c);
/* Our close record, once nothing is owed. */
void yugi__conn_close_record(yugi_conn *c);
void yugi__conn_maybe_close_record(yugi_conn *c);
/* The protocol's error code and the client-safe text for a backend
 * status. */
unsigned yugi__ecode(mkd_backend_status st);
const char *yugi__refusal_text(mkd_backend_status st);
/* Request q's connection closed before its answer (the backend has been
 * told): it is counted and logged as cancelled. */
void yugi__request_cancelled(yugi_conn *c, const yugi_req *q);
/* Into h: one observation of us microseconds. */
void yugi__hist_add(yugi_hist *h, uint64_t us);

#endif
