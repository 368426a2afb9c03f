/*
 * internal.h -- the one internal header of libsazukari.
 *
 * libsazukari is the I/O driver around the sans-I/O core: it owns sockets,
 * clocks, timeouts and buffers, and feeds libmegaki one protocol unit at a
 * time. Layout:
 *   errors.c  the error table, the per-thread last-error record, and the
 *             mapping from libmegaki codes to sz_err
 *   client.c  the client context: pins, settings, the session cache
 *   conn.c    connections: handshake, request table, read/write pumps
 *   net.c     POSIX sockets: resolve, nonblocking connect, poll-based I/O
 *   service.c several servers of one service: failover and the retries
 *             docs/PROTOCOL.md §8.5 allows
 */
#ifndef SZ_INTERNAL_H
#define SZ_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "megaki.h"
#include "sazukari.h"

#define SZ_NO_DEADLINE UINT64_MAX

/* Sessions remembered per client (least recently used goes first). */
#define SZ_CACHE_MAX 16
/* "[" host "]:" port, NUL: DNS names are at most 253 bytes. */
#define SZ_PEER_MAX  272

#define SZ_DEFAULT_CONNECT_MS 10000u
#define SZ_DEFAULT_IO_MS      30000u
#define SZ_DEFAULT_REQUEST_MS 60000u

/* Pump results besides SZ_OK and the sz_err codes: an sz_io or socket call
 * was interrupted by sz_conn_cancel(). */
#define SZ__IO_CANCELLED (-3)

_Static_assert(SZ_SESSION_MAX == MK_SESSION_BLOB_MAX,
               "SZ_SESSION_MAX must match libmegaki's blob size");

/* ------------------------------------------------------------------ */
/* errors.c                                                             */

/* Record a failure as this thread's last error and return info->err. */
int sz__set_error(const sz_error_info *info);
/* Fill *info (zeroing the rest) with a formatted description. */
void sz__info(sz_error_info *info, int err, int mkerr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The common case: build the record, set it, return err. */
int sz__fail(int err, int mkerr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Say whether the failure just recorded proves that its request did not
 * run (docs/PROTOCOL.md §8.5); every sz__set_error() clears it. */
void sz__set_not_run(int not_run);
/* What a libmegaki failure means to a client. */
int sz__map_mk(int mkerr);
/* What a server error record code means to a client. */
int sz__map_ecode(unsigned code);

/* ------------------------------------------------------------------ */
/* client.c                                                             */

typedef struct sz_cache_entry {
    char peer[SZ_PEER_MAX];
    uint8_t blob[MK_SESSION_BLOB_MAX]; /* SECRET */
    size_t len;                        /* 0: free slot */
    uint64_t stamp;                    /* last use, for eviction */
} sz_cache_entry;

struct sz_client {
    atomic_int refs; /* the application's reference + one per conn */
    mk_client_config *cfg;
    pthread_mutex_t lock; /* guards everything below */
    int frozen;           /* a connection was made: pins are final */
    uint32_t connect_ms, io_ms, request_ms;
    int resume;
    uint64_t tick;
    sz_cache_entry cache[SZ_CACHE_MAX];
};

/* What a connection copies out of its client when it is made. */
typedef struct sz_settings {
    uint32_t connect_ms, io_ms, request_ms;
    int resume;
} sz_settings;

sz_client *sz__client_ref(sz_client *c);
void sz__client_unref(sz_client *c);
/* Freeze the pins (SZ_ERR_USAGE if there are none) and read settings. */
int sz__client_begin(sz_client *c, sz_settings *st);
/* Session cache. get copies the blob out (the caller wipes it); returns 0
 * if there is none. */
size_t sz__cache_get(sz_client *c, const char *peer, uint8_t *blob, size_t cap);
void sz__cache_put(sz_client *c, const char *peer, const uint8_t *blob,
                   size_t len);
void sz__cache_drop(sz_client *c, const char *peer);

/* ------------------------------------------------------------------ */
/* conn.c                                                               */

/* sz_connect() to a host (a name or a numeric address) with an explicit
 * session-cache key (peer) and an absolute deadline (0: the client's
 * connect timeout from now). */
int sz__connect_tcp(sz_client *cl, const char *host, uint16_t port,
                    const char *peer, const uint8_t *session,
                    size_t session_len, uint64_t deadline, sz_conn **out);

/* ------------------------------------------------------------------ */
/* net.c                                                                */

/* Monotonic milliseconds. */
uint64_t sz__now_ms(void);
/* Milliseconds from now until deadline as a poll(2) timeout: -1 for none,
 * 0 if already passed. */
int sz__budget(uint64_t deadline, uint64_t now);

/* Resolve and connect (every address in turn, sharing the deadline). The
 * socket is nonblocking, close-on-exec, TCP_NODELAY. On failure fills *ei
 * (SZ_ERR_RESOLVE, SZ_ERR_CONNECT or SZ_ERR_TIMEOUT). */
int sz__net_connect(const char *host, uint16_t port, uint64_t deadline,
                    int *fd_out, sz_error_info *ei);

/* A numeric address with its port, as sz__net_resolve() gives it. */
#define SZ_ADDR_TEXT_MAX 64
typedef struct sz_addr {
    char host[SZ_ADDR_TEXT_MAX]; /* "192.0.2.1", "2001:db8::1" */
    uint16_t port;
} sz_addr;

/* Every address host resolves to, appended at out[*n] (up to max in all;
 * the rest are dropped). On failure fills *ei (SZ_ERR_RESOLVE). */
int sz__net_resolve(const char *host, uint16_t port, sz_addr *out, size_t max,
                    size_t *n, sz_error_info *ei);

/* Wait for fd to become ready for events (POLLIN/POLLOUT), or for the
 * wake fd (may be -1) to become readable. Returns the ready events of fd
 * (> 0), 0 on timeout, SZ__IO_CANCELLED if woken, -1 on error (errno). */
int sz__net_wait(int fd, int wake_fd, short events, int timeout_ms);
/* One nonblocking read/write: > 0 bytes, 0 EOF (read), SZ_IO_TIMEOUT if it
 * would block, -1 on error (errno). Writes never raise SIGPIPE. */
long sz__net_read(int fd, uint8_t *buf, size_t len);
long sz__net_write(int fd, const uint8_t *buf, size_t len);
/* A nonblocking, close-on-exec pipe for waking a blocked call. */
int sz__net_pipe(int fds[2]);
void sz__net_close(int fd);

#endif /* SZ_INTERNAL_H */
