/*
 * mkd_access.h -- the access log: one line per request (time, client
 * address and port, connection id, session id prefix, request id, bytes in
 * and out, duration, time queued and in the worker, the worker's pid, the
 * outcome), in the daemon log's format (mkd_log.h: plain, journal, json),
 * to a file, to stderr, or nowhere.
 *
 * Lines are buffered and written in batches (mkd_access_flush, which the
 * owner calls once per loop iteration, and whenever the buffer fills), so
 * a busy daemon makes one write(2) for many requests, never one each. A
 * file is opened for appending, never through a symbolic link, and
 * reopened on request (log rotation: rename the file, then have mkd
 * reopen it).
 *
 * Like the daemon log, a global of the process, for the loop thread only.
 */
#ifndef MKD_ACCESS_H
#define MKD_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "mkd_compiler.h"
#include "mkd_err.h"

/* Bytes of the session id the line shows (as hex): enough to follow a
 * session across its connections, not the whole id. */
#define MKD_ACCESS_SID_BYTES 4

typedef struct mkd_access_rec {
    uint64_t conn_id;
    uint32_t request_id;
    const char *client; /* the client's address as text */
    uint16_t port;
    const uint8_t *session_id; /* at least MKD_ACCESS_SID_BYTES; NULL: "-" */
    uint64_t bytes_in;         /* the request's body */
    uint64_t bytes_out;        /* the response's body (0 for an error) */
    uint64_t duration_us;      /* from the whole request to its answer */
    uint64_t queue_us;         /* waiting for a worker */
    uint64_t worker_us;        /* in the worker */
    int worker_pid;            /* 0: no worker ran it */
    const char *outcome;       /* "ok", or the error kind */
} mkd_access_rec;

/* Where the access log goes: "off" (or ""), "stderr", or an absolute path
 * (created mode 0640 if missing, appended to). Replaces what was open
 * before, after flushing it; on failure the old destination stays.
 * MKD_OK, MKD_ERR_CONFIG (not one of those) or MKD_ERR_SYSTEM (the file
 * cannot be opened), with the reason in d. */
MKD_MUST_CHECK int mkd_access_open(const char *spec, mkd_diag *d);
/* Only whether spec is one of those (the configuration's check; nothing
 * is opened). MKD_OK or MKD_ERR_CONFIG with the reason in d. */
MKD_MUST_CHECK int mkd_access_check(const char *spec, mkd_diag *d);
/* The file again, by its path (after logrotate renamed it). Nothing to do
 * for "off" and "stderr". On failure the old file stays open. MKD_OK or
 * MKD_ERR_SYSTEM. */
MKD_MUST_CHECK int mkd_access_reopen(mkd_diag *d);
/* The path of the file open now, or NULL (off, stderr). */
const char *mkd_access_path(void);
int mkd_access_enabled(void);
/* One line (buffered). Nothing when the access log is off. */
void mkd_access_write(const mkd_access_rec *r);
/* Write out what is buffered. */
void mkd_access_flush(void);
/* Flush and close: the access log is off. */
void mkd_access_close(void);

#endif
