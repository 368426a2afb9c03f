/*
 * yugi.h -- Yugi, MKD's network layer on one libuv loop: listeners,
 * connections and their state machine, framing, timeouts, limits, signals,
 * the control socket. Everything here runs on the loop thread; crypto runs
 * in Yami jobs (yami/pool.h), requests go to a backend (backend.h).
 */
#ifndef YUGI_H
#define YUGI_H

#include "../common/compiler.h"

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "../backend.h"
#include "../common/config.h"
#include "../yami/pool.h"
#include "framing.h"
#include "limits.h"
#include "megaki.h"

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

/* Why a connection ended: counted in the status view. */
enum yugi_close_reason {
    YUGI_CR_DONE = 0,      /* clean close (close records) */
    YUGI_CR_EOF,           /* peer hung up without a close record */
    YUGI_CR_IO,            /* socket error */
    YUGI_CR_PROTO,         /* peer broke the protocol */
    YUGI_CR_TO_HANDSHAKE,  /* handshake deadline */
    YUGI_CR_TO_IDLE,
    YUGI_CR_TO_UNIT,       /* half-received unit (slowloris) */
    YUGI_CR_TO_WRITE,      /* peer stopped reading */
    YUGI_CR_REFUSED,       /* limits: told to retry later */
    YUGI_CR_INTERNAL,      /* our failure (memory) */
    YUGI_CR_SHUTDOWN,
    YUGI_CR_COUNT
};

#define YUGI_ERR_SLOTS 100 /* mk_err codes counted by value below this */

typedef struct yugi_stats {
    uint64_t accepted, closed;
    uint64_t refused_connections, refused_pending, refused_handshakes,
        refused_rate;
    uint64_t hs_full, hs_resumed, hs_retry, hs_failed;
    uint64_t requests, responses, backend_overloaded, aborted;
    uint64_t bytes_in, bytes_out;
    uint64_t close_reason[YUGI_CR_COUNT];
    uint64_t errors[YUGI_ERR_SLOTS];
    uint64_t reloads, reload_failures;
    uint64_t accept_errors;
} yugi_stats;

#define YUGI_RATE_WINDOW 10

typedef struct yugi_server yugi_server;
typedef struct yugi_conn yugi_conn;

/* A request handed to the backend: the backend's token. */
typedef struct yugi_req {
    struct yugi_req *prev, *next;
    yugi_conn *conn;
    uint32_t id;
} yugi_req;

struct yugi_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    yugi_server *srv;
    struct yugi_conn *prev, *next; /* server's list */
    uint64_t id;
    int state;
    int refs;              /* tcp, timer, Yami pool job */
    int close_reason;
    int close_hint;        /* reason to record once our close is sent */
    int counted;           /* counts toward srv->nconns */
    unsigned pending : 1;  /* counts toward its address's pending */
    unsigned reading : 1;
    unsigned peer_closed : 1;
    unsigned close_queued : 1;
    unsigned refused : 1;  /* no session: retry-later then close */
    unsigned hello_seen : 1;
    unsigned failed : 1;   /* the session failed: nothing more is sealed */
    unsigned timer_armed : 1;
    unsigned hs_queued;    /* hellos queued to Yami and counted */
    yugi_addr *addr;
    char peer[46];
    uint16_t peer_port;
    uint64_t accepted_at, last_active, unit_start, write_progress;
    uint64_t linger_until, drain_until, timer_at;
    size_t wq_bytes;       /* bytes handed to uv_write, not yet written */
    unsigned inflight;     /* requests at the backend or being answered */
    yugi_req *reqs;        /* at the backend */
    uint8_t session_id[MK_SESSION_ID_LEN];
    yugi_framer framer;
    /* Units read in one read callback, queued to Yami as one operation. */
    uint8_t *batch;
    size_t batch_len, batch_cap;
    int frame_stop;        /* why framing stopped (see conn.c) */
    yami_conn yami;
};

typedef struct yugi_listener {
    uv_tcp_t tcp;
    yugi_server *srv;
    char name[64];
} yugi_listener;

struct yugi_server {
    uv_loop_t *loop;
    mkd_config cfg;
    /* SIGHUP: build the configuration afresh (file + command line). */
    int (*load_config)(void *arg, mkd_config *out, char *err, size_t errlen);
    void *load_config_arg;
    mk_server_config *scfg;   /* current; new connections take a ref */
    mkd_backend *backend;
    yugi_listener *listeners;
    size_t nlisteners;
    uv_pipe_t control;
    int control_open;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t tick;          /* 1 s: rates, address sweep */
    uv_timer_t shutdown_timer;
    yugi_conn *conns;
    size_t nconns;            /* established or handshaking */
    size_t nrefusing;
    unsigned hs_inflight;     /* hellos queued or running in Yami */
    uint64_t next_id;
    yugi_addrs addrs;
    yugi_stats st;
    uint64_t hs_full_ring[YUGI_RATE_WINDOW], hs_res_ring[YUGI_RATE_WINDOW];
    unsigned ring_pos;
    uint64_t last_full, last_res;
    uint64_t started_ms;
    uint64_t last_accept_warn;
    int shutting_down;
    int backend_drained;
    int exit_code;
    uint16_t bound_port;
};

/* loop.c */
MKD_MUST_CHECK int yugi_server_init(yugi_server *srv, uv_loop_t *loop,
                     const mkd_config *cfg, mk_server_config *scfg,
                     mkd_backend *backend);
/* Run until shut down. Returns the process exit code. */
int yugi_server_run(yugi_server *srv);
void yugi_server_shutdown(yugi_server *srv);
void yugi_server_reload(yugi_server *srv);
size_t yugi_status(yugi_server *srv, char *buf, size_t cap);
void yugi_maybe_finish(yugi_server *srv);
void yugi_server_abort(yugi_server *srv);

/* listener.c */
MKD_MUST_CHECK int yugi_listen(yugi_server *srv);
void yugi_listeners_close(yugi_server *srv);

/* conn.c */
void yugi_conn_accepted(yugi_server *srv, uv_stream_t *listener);
void yugi_conn_close(yugi_conn *c, int reason);
/* Shutdown: ask a connection to finish its requests and close. */
void yugi_conn_shutdown(yugi_conn *c);
/* The error text sent for a request the backend refused with code. */
const char *yugi_refusal_text(unsigned code);

#endif
