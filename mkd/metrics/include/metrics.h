/*
 * metrics.h -- the metrics listener: an opt-in HTTP endpoint on the loop
 * serving the daemon's numbers in the Prometheus text exposition format
 * (0.0.4) at /metrics, liveness at /health and readiness at /ready
 * (docs/MKD.md, "Metrics and health").
 *
 * Read-only, like the control room: everything comes from the rooms'
 * getters. Loopback only unless the operator allows otherwise (the
 * numbers say how busy and how attacked the server is: not for everyone).
 * Everything runs on the loop thread. Errors are mkd_err codes.
 */
#ifndef MKD_METRICS_H
#define MKD_METRICS_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mkd_util.h"
#include "yami.h"
#include "yugi.h"

/* Where the numbers come from; borrowed for the listener's life. */
typedef struct metrics_sources {
    yugi_server *srv;
    yami *yami;
    const uint64_t *reload_failures; /* main's count */
} metrics_sources;

/* The exposition text into t. */
void metrics_render(const metrics_sources *src, mkd_text *t);

/* A listen address, "HOST:PORT" (IPv4, or [IPv6]:PORT; port 0: any),
 * into *sa. Refused unless it is a loopback address or allow_remote is
 * set. MKD_OK or MKD_ERR_CONFIG with the reason in d. */
MKD_MUST_CHECK int metrics_parse_listen(const char *spec, int allow_remote,
                                        struct sockaddr_storage *sa,
                                        mkd_diag *d);

typedef struct metrics metrics;

/* Listen on spec (metrics_parse_listen). MKD_OK, MKD_ERR_CONFIG,
 * MKD_ERR_LISTEN (cannot bind), MKD_ERR_LOOP or MKD_ERR_NOMEM,
 * with the reason in d. */
MKD_MUST_CHECK int metrics_open(uv_loop_t *loop, const char *spec,
                                int allow_remote, const metrics_sources *src,
                                metrics **out, mkd_diag *d);
/* The port listened on (the one chosen, for port 0). */
uint16_t metrics_port(const metrics *m);
/* Stop listening and close every connection; the memory goes once the
 * loop has closed the handles. NULL: nothing. */
void metrics_close(metrics *m);

#endif
