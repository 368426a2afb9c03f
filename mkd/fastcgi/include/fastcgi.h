/*
 * fastcgi.h -- the FastCGI backend (config `backend = fastcgi`): MKD as a
 * FastCGI client of PHP-FPM pools (or any FastCGI responder), on the
 * libuv loop.
 *
 * Each request goes to one upstream, round robin over the healthy ones,
 * on a kept-alive connection (FCGI_KEEP_CONN) or a new one, up to
 * max_conns per upstream; one request per connection at a time (PHP-FPM
 * does not multiplex). No queue: when every healthy upstream is at its
 * limit, or none is up, the request is refused at once (OVERLOADED), so
 * that the client can go elsewhere. A connect that fails or times out
 * ejects that upstream for eject_ms and the request moves on to the next
 * one; an ejected upstream gets traffic again once its time is up.
 *
 * Answers: the CGI status 2xx with a body within the request's
 * max_response is OK; any other status, or a larger body, is APPLICATION;
 * no answer within request_timeout_ms is TIMEOUT (ABORT_REQUEST is sent
 * and the connection closed); a connection lost or a malformed reply
 * mid-request is INTERNAL. STDERR lines are logged at warn.
 */
#ifndef MKD_FASTCGI_H
#define MKD_FASTCGI_H

#include <stdint.h>

#include <uv.h>

#include "backend.h"
#include "mkd_err.h"

#define FASTCGI_UPSTREAMS_MAX 32

typedef struct fastcgi_config {
    /* "unix:/path" or "HOST:PORT" (numeric IPv4, or [IPv6]:PORT),
     * separated by commas or blanks. Borrowed for the call. */
    const char *upstreams;
    const char *script; /* SCRIPT_FILENAME, an absolute path (borrowed) */
    uint32_t max_conns; /* per upstream; PHP-FPM's pm.max_children */
    uint32_t connect_timeout_ms;
    uint32_t request_timeout_ms;
    uint32_t eject_ms;    /* a failed upstream rests this long */
    uint32_t max_message; /* request body limit; answers' when ctx has 0 */
} fastcgi_config;

/* Check an upstream list: MKD_OK, or MKD_ERR_CONFIG naming the bad
 * entry in d. */
MKD_MUST_CHECK int fastcgi_check_upstreams(const char *list, mkd_diag *d);

/* MKD_OK, MKD_ERR_CONFIG (a bad setting, in d), MKD_ERR_NOMEM,
 * MKD_ERR_LOOP. */
MKD_MUST_CHECK int fastcgi_new(uv_loop_t *loop, const fastcgi_config *cfg,
                               mkd_backend **out, mkd_diag *d);

/* SIGHUP: take new settings. Requests running finish on their
 * connections; idle connections to the old upstreams close; new
 * requests go to the new list. MKD_OK, or MKD_ERR_CONFIG (nothing
 * changed). */
MKD_MUST_CHECK int fastcgi_reconfigure(mkd_backend *b,
                                       const fastcgi_config *cfg, mkd_diag *d);

#endif
