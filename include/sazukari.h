/*
 * sazukari.h -- libsazukari, the Megaki v2 client library.
 *
 * A client context (sz_client) holds the pinned server keys, the timeouts
 * and a cache of resumable sessions. A connection (sz_conn) is one Megaki
 * session over one transport: a TCP socket the library opens itself
 * (sz_connect), or I/O callbacks the application supplies for a transport it
 * owns (sz_connect_io). Requests on a connection are independent: several may
 * be in flight at once, each answered by its own response.
 *
 *     sz_client *c;  sz_conn *conn;  uint8_t *resp;  size_t n;
 *     sz_client_new(&c);
 *     sz_client_pin_file(c, "server.pub.pem");
 *     sz_connect(c, "api.example.com", 4433, NULL, 0, &conn);
 *     sz_request(conn, req, req_len, &resp, &n);   ... sz_free(resp);
 *     sz_conn_close(conn);
 *     sz_client_free(c);
 *
 * (every call returns an sz_err that the real code checks; see
 * examples/client_example.c).
 *
 * Conventions
 *   - Functions that can fail return an sz_err: SZ_OK (0) or a positive
 *     code. After a failure, sz_last_error() on the same thread tells more
 *     (the libmegaki code, the server's error text, errno, ...).
 *   - Pointer arguments are borrowed for the duration of the call unless a
 *     comment says otherwise, and must not be NULL unless it says they may.
 *   - Memory the library hands out (responses) is released with sz_free().
 *   - Timeouts are in milliseconds.
 *
 * Thread safety
 *   - An sz_client may be shared by any number of threads and connections.
 *     Pins must be added before the first connection is made from it (later
 *     pins fail with SZ_ERR_USAGE); the timeout and resumption settings may
 *     change at any time and apply to connections made afterwards.
 *   - An sz_conn must be used by one thread at a time (calls on it are not
 *     serialised by the library). The one exception is sz_conn_cancel(),
 *     which any thread may call at any time while the connection exists.
 *   - Different sz_conn objects are independent and may be used from
 *     different threads concurrently, whether or not they share a client.
 *   - sz_last_error() is per thread.
 *   - The library installs no signal handlers; writes on its own sockets
 *     never raise SIGPIPE.
 *
 * Security notes
 *   - The server is authenticated only by the pinned keys: there is no
 *     certificate, no name check and no system trust store. Pin the key the
 *     server operator publishes, and pin a backup key so the server can
 *     rotate (a server holding any pinned key is accepted).
 *   - A session blob (sz_conn_export_session()) is SECRET: whoever holds it
 *     can resume the session and impersonate this client to the server (not
 *     the server to this client). Store it like a password and wipe copies
 *     with sz_wipe().
 */
#ifndef SAZUKARI_H
#define SAZUKARI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SZ_BUILDING_LIBRARY) && defined(__GNUC__)
#define SZ_API __attribute__((visibility("default")))
#else
#define SZ_API
#endif

#if defined(__GNUC__)
#define SZ_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SZ_MUST_CHECK
#endif

/* ------------------------------------------------------------------ */
/* Errors                                                               */

/*
 * The codes and what they mean for a caller:
 *
 *   SZ_ERR_PIN          the peer is not the server you pinned (or it is, but
 *                       something on the path tampered with the handshake).
 *                       Never retry blindly: this is what an attack looks
 *                       like. No request byte has been sent.
 *   SZ_ERR_RESOLVE, SZ_ERR_CONNECT
 *                       no TCP connection could be made.
 *   SZ_ERR_TIMEOUT      a connect, I/O or request deadline passed.
 *   SZ_ERR_IO           the transport failed or the server hung up without
 *                       an authenticated close.
 *   SZ_ERR_PROTOCOL     the server sent something malformed, out of order or
 *                       failing authentication; the connection is dead.
 *   SZ_ERR_TOO_LARGE    the request is over the server's announced maximum
 *                       (nothing was sent), or the server answered
 *                       "too large".
 *   SZ_ERR_BUSY         the server refused the handshake for now;
 *                       sz_error_info.retry_after_ms says how long to wait.
 *   SZ_ERR_SERVER_*     the server answered this request with an error
 *                       record (authenticated). APP: the application failed
 *                       it; TIMEOUT: it took the server too long; OVERLOADED:
 *                       no capacity, retry later; INTERNAL: server bug;
 *                       SHUTDOWN: the server is going away, reconnect;
 *                       OTHER: a code newer than this library
 *                       (sz_error_info.server_code has it). An error
 *                       record for one request leaves the connection
 *                       usable; one for the connection (request id 0)
 *                       ends it.
 *   SZ_ERR_CLOSED       the server closed the connection cleanly (or this
 *                       side did); reconnect to go on.
 *   SZ_ERR_HANDSHAKE, SZ_ERR_VERSION
 *                       the server refused the handshake / speaks another
 *                       protocol version.
 *   SZ_ERR_CANCELLED    sz_conn_cancel() was called.
 *   SZ_AGAIN            sz_poll() only: nothing is ready yet.
 */
typedef enum sz_err {
#define X(name, value, msg) name = value,
#include "sazukari_errors.def"
#undef X
} sz_err;

/* Name of a code ("SZ_ERR_PIN"); "SZ_ERR_UNKNOWN" for a code not in the
 * table. Static strings, never NULL. */
SZ_API const char *sz_err_name(int err);
/* A one-line human-readable message; never NULL. */
SZ_API const char *sz_strerror(int err);

#define SZ_ERROR_TEXT_MAX 1024

/* Details of the most recent failure of a libsazukari call on the calling
 * thread. Fields that do not apply are zero / empty. */
typedef struct sz_error_info {
    int err;                 /* the sz_err that was returned */
    int mk_err;              /* the libmegaki code behind it (mk_err) */
    unsigned server_code;    /* SZ_ERR_SERVER_* / TOO_LARGE from the server:
                                the error record's code (MK_ECODE_*) */
    uint32_t request_id;     /* the request the failure concerns; 0 if it
                                concerns the connection */
    uint32_t retry_after_ms; /* SZ_ERR_BUSY: the server's suggested wait */
    int sys_errno;           /* RESOLVE: the getaddrinfo() code; CONNECT,
                                IO: errno (0 if the server just hung up) */
    char text[SZ_ERROR_TEXT_MAX + 1]; /* the server's error text (UTF-8:
                                an error record with malformed text fails
                                the connection), or a description;
                                NUL-terminated, may be empty */
} sz_error_info;

SZ_API void sz_last_error(sz_error_info *info);

/* Library version, "2.0.0". */
SZ_API const char *sz_version(void);

/* Release memory returned by the library (responses). NULL is fine. */
SZ_API void sz_free(void *p);
/* Overwrite memory in a way the compiler cannot drop (for session blobs). */
SZ_API void sz_wipe(void *p, size_t len);

/* ------------------------------------------------------------------ */
/* Client context                                                       */

typedef struct sz_client sz_client;

/* A client with no pins, default timeouts and resumption on. */
SZ_API SZ_MUST_CHECK int sz_client_new(sz_client **out);
/* Release the application's reference. Connections made from the client
 * keep it alive until they are closed, so connections and client may be
 * freed in any order; but no call taking c (sz_connect() on another
 * thread, say) may be in progress or follow. NULL is fine. */
SZ_API void sz_client_free(sz_client *c);

/*
 * Pin server public keys. key is a DER SubjectPublicKeyInfo, or PEM text
 * holding one or more "PUBLIC KEY" blocks (all are pinned). RSA 2048, 3072
 * or 4096 bits. Several pins let a server rotate keys; on a full handshake
 * the first pinned key is offered first, and the server's answer steers the
 * client to another pinned key it holds. At most 16 keys in all.
 * Errors: SZ_ERR_KEY (unparsable or wrong size; nothing of this call is
 * pinned), SZ_ERR_USAGE (too many, or a connection was already made).
 */
SZ_API SZ_MUST_CHECK int sz_client_pin(sz_client *c, const uint8_t *key,
                                       size_t len);
/* The same from a file (PEM or DER). SZ_ERR_KEY if it cannot be read. */
SZ_API SZ_MUST_CHECK int sz_client_pin_file(sz_client *c, const char *path);

/*
 * Timeouts in milliseconds; 0 means none. Defaults: 10000, 30000, 60000.
 *   connect_ms  resolving aside, TCP connect plus handshake: a deadline for
 *               the whole of sz_connect(). (Name resolution uses the
 *               system resolver, which this library cannot interrupt.)
 *   io_ms       the longest the connection may be silent while a response
 *               is awaited, and the longest one write may make no progress.
 *               Expiry ends the connection (SZ_ERR_TIMEOUT).
 *   request_ms  a deadline per request, from sz_submit() until its whole
 *               response has arrived. Expiry fails that request only
 *               (SZ_ERR_TIMEOUT); a late response is discarded and the
 *               connection stays usable.
 */
SZ_API SZ_MUST_CHECK int sz_client_set_timeouts(sz_client *c,
                                                uint32_t connect_ms,
                                                uint32_t io_ms,
                                                uint32_t request_ms);

/*
 * Transparent resumption (on by default). The client remembers the latest
 * session of each peer ("host:port" for sz_connect(), sz_io.peer for
 * sz_connect_io()) in memory, and a connection made without an explicit
 * session blob resumes it: one round trip, no RSA. If the server no longer
 * accepts it, the handshake falls back to a full one by itself. Turning
 * resumption off also forgets what is remembered; every connection then
 * does a full handshake unless given a blob.
 */
SZ_API SZ_MUST_CHECK int sz_client_set_resumption(sz_client *c, int enable);
/* Wipe every remembered session. */
SZ_API void sz_client_forget_sessions(sz_client *c);

/* ------------------------------------------------------------------ */
/* Connections                                                          */

typedef struct sz_conn sz_conn;

/* Returned by an sz_io callback when timeout_ms passed with nothing moved. */
#define SZ_IO_TIMEOUT (-2)

/*
 * Application-owned transport: a byte stream, reliable and in order.
 *   read   read 1..len bytes into buf; return the count, 0 at end of
 *          stream, SZ_IO_TIMEOUT, or -1 on error.
 *   write  write 1..len bytes of buf; return the count, SZ_IO_TIMEOUT, or
 *          -1 on error. (Short writes are fine; the library loops.)
 *   timeout_ms is the library's remaining budget, as for poll(2): -1 means
 *   no limit, 0 means "do not block". A callback that cannot time out may
 *   block instead; the library's timeouts then only apply between calls.
 *   The callbacks are called only from inside sz_* calls on the connection,
 *   on the caller's thread.
 *   peer   optional name for the session cache ("host:port" or anything
 *          stable); NULL shares one entry among unnamed transports.
 *          Borrowed for the duration of sz_connect_io() only.
 */
typedef struct sz_io {
    long (*read)(void *ctx, uint8_t *buf, size_t len, int timeout_ms);
    long (*write)(void *ctx, const uint8_t *buf, size_t len, int timeout_ms);
    void *ctx;
    const char *peer;
} sz_io;

/* Largest session blob sz_conn_export_session() writes. */
#define SZ_SESSION_MAX 512

/*
 * Connect to host:port and handshake. host is a name or a numeric IPv4 or
 * IPv6 address (without brackets); every address it resolves to is tried in
 * turn, sharing the connect timeout.
 * session/session_len: a blob from sz_conn_export_session() to resume
 * (NULL/0 to use the client's remembered session, if any). A blob that is
 * expired, for a key no longer pinned, or refused by the server falls back
 * to a full handshake; one that is longer than SZ_SESSION_MAX is
 * SZ_ERR_SESSION. The blob is copied; the caller should wipe its copy.
 * On success *out is a new connection; on failure *out is NULL, and
 * sz_last_error() has the details.
 */
SZ_API SZ_MUST_CHECK int sz_connect(sz_client *c, const char *host,
                                    uint16_t port, const uint8_t *session,
                                    size_t session_len, sz_conn **out);
/* The same over application I/O; io is copied (not io->peer). */
SZ_API SZ_MUST_CHECK int sz_connect_io(sz_client *c, const sz_io *io,
                                       const uint8_t *session,
                                       size_t session_len, sz_conn **out);

/* Send an authenticated close if the connection is still healthy (waiting
 * at most the I/O timeout, capped at one second), close the socket the
 * library opened, wipe and free. Responses not collected are discarded.
 * NULL is fine. */
SZ_API void sz_conn_close(sz_conn *conn);

/*
 * From any thread: make the call blocked on conn (if any), and every later
 * one, return SZ_ERR_CANCELLED. The connection is then dead; close it. On a
 * library-opened socket a blocked call wakes at once; over sz_io it wakes
 * when the callback in progress returns.
 */
SZ_API void sz_conn_cancel(sz_conn *conn);

/* SZ_OK while the connection is usable; otherwise the error it failed with
 * (SZ_ERR_CLOSED after a clean close by the server). */
SZ_API int sz_conn_error(const sz_conn *conn);

/*
 * One request, one response, blocking: sz_submit() then sz_wait().
 * On success *resp is allocated (release it with sz_free()) and never
 * NULL, even for an empty response (*resp_len == 0). On failure *resp is
 * NULL and *resp_len 0. req may be NULL if req_len is 0.
 */
SZ_API SZ_MUST_CHECK int sz_request(sz_conn *conn, const uint8_t *req,
                                    size_t req_len, uint8_t **resp,
                                    size_t *resp_len);

/*
 * Several requests in flight on one connection.
 *
 * sz_submit() writes the request and returns its id: 1, 2, 3, ... on each
 * connection, never 0, never one still in flight. If the server's limit of
 * requests in flight is reached, it first reads responses (keeping them for
 * later) until one completes. SZ_ERR_TOO_LARGE if req_len is over the
 * server's maximum (nothing is sent).
 *
 * sz_wait() blocks until the response to request_id is complete (responses
 * to other requests that arrive meanwhile are kept) and hands it over; the
 * id is then forgotten. Errors that concern only this request
 * (SZ_ERR_SERVER_*, SZ_ERR_TOO_LARGE, and SZ_ERR_TIMEOUT from its
 * deadline) leave the connection usable; others end it. A response that
 * was complete before the connection ended (say, right before the server's
 * close record) is still handed over; the end is reported by the next call.
 * SZ_ERR_USAGE for an id that is not outstanding.
 *
 * sz_poll() hands over whichever response completed first and sets
 * *request_id. timeout_ms as for poll(2): -1 waits until something
 * completes (bounded by the io and request timeouts), 0 does not block, >0
 * waits at most that long. Returns SZ_AGAIN if nothing completed in time
 * (not a failure), SZ_ERR_USAGE if no request is outstanding. A request
 * that failed on its own is reported as its error with *request_id set; a
 * connection failure is reported with *request_id == 0.
 */
SZ_API SZ_MUST_CHECK int sz_submit(sz_conn *conn, const uint8_t *req,
                                   size_t req_len, uint32_t *request_id);
SZ_API SZ_MUST_CHECK int sz_wait(sz_conn *conn, uint32_t request_id,
                                 uint8_t **resp, size_t *resp_len);
SZ_API SZ_MUST_CHECK int sz_poll(sz_conn *conn, int timeout_ms,
                                 uint32_t *request_id, uint8_t **resp,
                                 size_t *resp_len);

/*
 * Export the session established by this connection's handshake so that a
 * later sz_connect() (in this process or after a restart) can resume it:
 * at most SZ_SESSION_MAX bytes into out[0..cap). The blob is opaque and
 * SECRET (see the security notes above); wipe it with sz_wipe() when done.
 * It stays valid for the ticket lifetime the server chose (a day by
 * default), also after the connection has failed or closed.
 * SZ_ERR_SESSION if the server issued no ticket (resumption disabled on the
 * server); SZ_ERR_USAGE if cap is too small.
 */
SZ_API SZ_MUST_CHECK int sz_conn_export_session(const sz_conn *conn,
                                                uint8_t *out, size_t cap,
                                                size_t *out_len);

typedef struct sz_conn_info {
    int resumed;            /* the handshake resumed a session */
    int has_session;        /* sz_conn_export_session() will work */
    uint8_t session_id[16]; /* not secret: for logs */
    uint8_t key_id[8];      /* the pinned key the session rests on */
    uint32_t max_message;   /* server's maximum message size, bytes */
    uint32_t max_inflight;  /* server's limit of requests in flight */
    uint32_t inflight;      /* requests awaiting their response */
} sz_conn_info;
SZ_API void sz_conn_get_info(const sz_conn *conn, sz_conn_info *info);

/* ------------------------------------------------------------------ */
/* Did it run? (docs/PROTOCOL.md §8.5)                                  */

/*
 * After a failed sz_submit(), sz_wait() or sz_request() (and
 * sz_service_request()) on this thread: 1 if the failure proves the request
 * did not run on the server, so that sending it again cannot run it twice;
 * 0 if it may have run. Proof is: the request's last byte never reached
 * the transport; the server answered it "overloaded" or "shutdown"
 * (SZ_ERR_SERVER_OVERLOADED, SZ_ERR_SERVER_SHUTDOWN) or "too large"; or
 * the server closed the connection cleanly (SZ_ERR_CLOSED) before
 * answering it. A cut connection, any timeout, SZ_ERR_SERVER_APP, _INTERNAL,
 * _OTHER and a connection-level error are not proof. Any other failing
 * call, and sz_poll(), leave 0.
 */
SZ_API int sz_last_error_not_run(void);

/* ------------------------------------------------------------------ */
/* Several servers of one service: failover                             */

typedef struct sz_service sz_service;

/* Most addresses a service holds, given or resolved. */
#define SZ_SERVICE_MAX 64

/*
 * A service: the servers ("nodes") addrs[0..n), each "HOST:PORT" or
 * "[IPV6]:PORT"; a host name that resolves to several addresses is a node
 * per address (resolved again whenever the service connects). Nodes are
 * tried in the order given. They should share their ticket keys: the
 * service keeps one session in c's cache for all of them, so a session
 * made with one node resumes on any other.
 * The strings are copied; c is referenced (it may be freed before the
 * service) and must have its pins already. An sz_service is used by one
 * thread at a time, like an sz_conn; threads that share a client make one
 * service each.
 * Errors: SZ_ERR_USAGE (no address, more than SZ_SERVICE_MAX, or one that
 * does not parse: the message names it), SZ_ERR_NOMEM.
 */
SZ_API SZ_MUST_CHECK int sz_service_new(sz_client *c, const char *const *addrs,
                                        size_t n, sz_service **out);
/* Close the current connection (if any) and free. NULL is fine. */
SZ_API void sz_service_free(sz_service *s);

/*
 * Deadlines in milliseconds.
 *   connect_ms  per node: TCP connect plus handshake (default: the
 *               client's connect timeout when the service was made;
 *               0: only the total bounds it).
 *   total_ms    the caller's deadline for one sz_service_connect() or
 *               sz_service_request(): connecting to every node, waiting,
 *               and sending a request again all stop when it passes
 *               (default 30000). A request already sent is bounded by the
 *               client's request and I/O timeouts, as on any connection.
 *               0: no deadline, but a single pass: each node is tried
 *               once, resting or not, and a request is never repeated.
 * A node that refuses the connection, times out, answers retry_later or
 * refuses a request unseen rests for a while (exponentially longer with
 * each failure, with a random part; at least the retry_later wait), and
 * the next node is tried; when every node rests, the service waits for the
 * first to be ready, within total_ms.
 */
SZ_API SZ_MUST_CHECK int
sz_service_set_deadlines(sz_service *s, uint32_t connect_ms, uint32_t total_ms);

/*
 * The service's current connection, made if there is none or it failed.
 * *conn is owned by the service: valid until the next call on s; do not
 * close it. Requests made on it directly are never repeated by the
 * library. Errors: those of sz_connect() for the last node tried.
 */
SZ_API SZ_MUST_CHECK int sz_service_connect(sz_service *s, sz_conn **conn);

/*
 * One request, as sz_request(), on the current connection (made if
 * needed). If it fails in a way that proves it did not run
 * (sz_last_error_not_run()) and another node may do better (the server's
 * "overloaded", "shutdown" or clean close, or a transport failure before
 * the request was written), it is sent again on the next node, within
 * total_ms. Any other failure is returned as it is and never repeated:
 * a request that may have run is the caller's to judge.
 * sz_last_error() describes the last attempt, and sz_last_error_not_run()
 * its verdict (1 when no node could be connected: nothing was sent).
 */
SZ_API SZ_MUST_CHECK int sz_service_request(sz_service *s, const uint8_t *req,
                                            size_t req_len, uint8_t **resp,
                                            size_t *resp_len);

/* "ADDRESS:PORT" of the node of the current (or last tried) connection;
 * "" before any. Borrowed: valid until the next call on s. */
SZ_API const char *sz_service_node(const sz_service *s);

typedef struct sz_service_stats {
    uint64_t connects;         /* connections made */
    uint64_t connect_failures; /* nodes that could not be connected */
    uint64_t busy;             /* nodes that answered retry_later */
    uint64_t retries;          /* requests sent again (never ran) */
} sz_service_stats;
SZ_API void sz_service_get_stats(const sz_service *s, sz_service_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* SAZUKARI_H */
