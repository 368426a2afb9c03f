/*
 * sazukari.h -- libsazukari, the Megaki v2 client library.
 *
 * A client context (sz_client) holds the pinned server keys and options and
 * may be shared; a connection (sz_conn) is one Megaki session over one
 * transport: a TCP socket the library opens itself, or I/O callbacks the
 * application supplies for a socket it owns.
 *
 * Thread safety: an sz_client may be used from several threads at once once
 * configured (sz_client_pin*() and sz_client_set_*() before first use). An
 * sz_conn is used by one thread at a time; different sz_conn objects are
 * independent.
 *
 * Errors are sz_err codes with names and messages (sz_err_name(),
 * sz_strerror()); sz_conn_last_error_detail() gives the libmegaki code and
 * server error text behind the most recent failure.
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

typedef enum sz_err {
    SZ_OK = 0,
    SZ_ERR_USAGE = 1,        /* API misuse (NULL, wrong state, bad option) */
    SZ_ERR_NOMEM = 2,
    SZ_ERR_KEY = 3,          /* a pinned key could not be parsed */
    SZ_ERR_PIN = 4,          /* server holds none of the pinned keys, or
                                could not prove it (possible MITM) */
    SZ_ERR_RESOLVE = 5,      /* host name did not resolve */
    SZ_ERR_CONNECT = 6,      /* TCP connect failed or was refused */
    SZ_ERR_TIMEOUT = 7,      /* connect, read, write or request timeout */
    SZ_ERR_IO = 8,           /* read/write failed, or the peer hung up */
    SZ_ERR_PROTOCOL = 9,     /* the server broke the protocol */
    SZ_ERR_TOO_LARGE = 10,   /* request over the server's maximum, or the
                                server answered "too large" */
    SZ_ERR_BUSY = 11,        /* server said retry later (handshake) */
    SZ_ERR_SERVER_APP = 12,  /* server error record: application error */
    SZ_ERR_SERVER_TIMEOUT = 13, /* server error record: request timed out */
    SZ_ERR_SERVER_OVERLOADED = 14, /* server error record: overloaded */
    SZ_ERR_SERVER_INTERNAL = 15,   /* server error record: internal error */
    SZ_ERR_SERVER_SHUTDOWN = 16,   /* server error record: shutting down */
    SZ_ERR_CLOSED = 17,      /* the connection was closed cleanly */
    SZ_ERR_SESSION = 18,     /* session blob unusable (wrong format) */
    SZ_ERR_CRYPTO = 19       /* local crypto/randomness failure */
} sz_err;

SZ_API const char *sz_err_name(int err);
SZ_API const char *sz_strerror(int err);

/* ------------------------------------------------------------------ */
/* Client context                                                       */

typedef struct sz_client sz_client;

SZ_API int sz_client_new(sz_client **out);
SZ_API void sz_client_free(sz_client *c);
/* Pin a server public key: PEM or DER SubjectPublicKeyInfo. Several pins
 * let a server rotate keys; the first is preferred. */
SZ_API int sz_client_pin(sz_client *c, const uint8_t *key, size_t len);
SZ_API int sz_client_pin_file(sz_client *c, const char *path);

/* Timeouts in milliseconds; 0 means none. Defaults: connect 10000,
 * io 30000 (each read or write), request 60000 (a whole request). */
SZ_API int sz_client_set_timeouts(sz_client *c, uint32_t connect_ms,
                                  uint32_t io_ms, uint32_t request_ms);

/* ------------------------------------------------------------------ */
/* Connections                                                          */

typedef struct sz_conn sz_conn;

/* Application-owned transport. Return bytes moved (> 0), 0 for end of
 * stream (read) , or -1 on error; block or honour timeout_ms as the app
 * sees fit (timeout_ms is the library's remaining budget, 0 = none). */
typedef struct sz_io {
    long (*read)(void *ctx, uint8_t *buf, size_t len, uint32_t timeout_ms);
    long (*write)(void *ctx, const uint8_t *buf, size_t len,
                  uint32_t timeout_ms);
    void *ctx;
} sz_io;

/* Connect to host:port (IPv4 or IPv6, every address tried in turn) and
 * handshake. session/session_len: a blob from sz_conn_export_session() to
 * resume (NULL for none); a stale or rejected session silently falls back
 * to a full handshake. */
SZ_API int sz_connect(sz_client *c, const char *host, uint16_t port,
                      const uint8_t *session, size_t session_len,
                      sz_conn **out);
/* The same over application I/O; io is copied. */
SZ_API int sz_connect_io(sz_client *c, const sz_io *io,
                         const uint8_t *session, size_t session_len,
                         sz_conn **out);
/* Send an authenticated close (best effort) and free. NULL is fine. */
SZ_API void sz_conn_close(sz_conn *conn);

/* One request, one response: blocking. *resp is malloc'd (free() it);
 * *resp_len its length. */
SZ_API int sz_request(sz_conn *conn, const uint8_t *req, size_t req_len,
                      uint8_t **resp, size_t *resp_len);

/* Several requests in flight: submit returns a request id at once (after
 * writing the request); wait blocks for that id's response (others that
 * arrive meanwhile are kept); poll returns SZ_OK with a response if one is
 * ready, or SZ_ERR_TIMEOUT after timeout_ms with none. */
SZ_API int sz_submit(sz_conn *conn, const uint8_t *req, size_t req_len,
                     uint32_t *request_id);
SZ_API int sz_wait(sz_conn *conn, uint32_t request_id, uint8_t **resp,
                   size_t *resp_len);
SZ_API int sz_poll(sz_conn *conn, uint32_t timeout_ms, uint32_t *request_id,
                   uint8_t **resp, size_t *resp_len);

/* Export the session (ticket + resumption secret) so a later sz_connect can
 * resume. SECRET material: store it like a password. *blob is malloc'd. */
SZ_API int sz_conn_export_session(const sz_conn *conn, uint8_t **blob,
                                  size_t *blob_len);

typedef struct sz_conn_info {
    int resumed;                 /* the handshake resumed a session */
    uint8_t session_id[16];      /* not secret */
    uint8_t key_id[8];           /* server key the session rests on */
    uint32_t max_message;        /* server's maximum message size */
    uint32_t max_inflight;       /* server's limit of requests in flight */
} sz_conn_info;
SZ_API void sz_conn_get_info(const sz_conn *conn, sz_conn_info *info);

/* Detail of the last failure on conn: the libmegaki code (mk_err) and, for
 * a server error record, its text (NUL-terminated, may be empty). */
SZ_API int sz_conn_last_mk_error(const sz_conn *conn);
SZ_API const char *sz_conn_last_error_text(const sz_conn *conn);

#ifdef __cplusplus
}
#endif
#endif /* SAZUKARI_H */
