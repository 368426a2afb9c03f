/*
 * upstream.c -- the upstream list: parsing "unix:/path" and "HOST:PORT"
 * entries, the round-robin choice among healthy upstreams with room, and
 * ejection (passive health: a failed connect rests an upstream for
 * eject_ms, then it gets requests again, and the next failure ejects it
 * anew).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "mkd_log.h"

static int parse_port(const char *p, int *port)
{
    char *end;
    long v;

    if (*p < '0' || *p > '9')
        return -1;
    v = strtol(p, &end, 10);
    if (*end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* "HOST:PORT" with a numeric IPv4 host, or "[IPv6]:PORT". No names: a
 * name that resolves differently later would move a pool silently. */
static int parse_inet(fc_upstream *u, char *s)
{
    char *colon;
    int port;

    if (s[0] == '[') {
        char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':' || parse_port(close + 2, &port))
            return -1;
        *close = '\0';
        return uv_ip6_addr(s + 1, port, (struct sockaddr_in6 *)&u->addr) ? -1
                                                                         : 0;
    }
    if ((colon = strrchr(s, ':')) == NULL || parse_port(colon + 1, &port))
        return -1;
    *colon = '\0';
    return uv_ip4_addr(s, port, (struct sockaddr_in *)&u->addr) ? -1 : 0;
}

static int parse_one(const char *text, size_t n, fc_upstream *u)
{
    char s[sizeof u->name];

    if (n == 0 || n >= sizeof s)
        return -1;
    memcpy(s, text, n);
    s[n] = '\0';
    memcpy(u->name, s, n + 1);
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5] != '/' || n - 5 >= sizeof u->path)
            return -1;
        u->is_unix = 1;
        memcpy(u->path, s + 5, n - 4);
        return 0;
    }
    return parse_inet(u, s);
}

static void free_list(fc_upstream **ups, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        free(ups[i]);
}

int fastcgi__parse_upstreams(const char *list, fc_upstream **ups, unsigned *n,
                             mkd_diag *d)
{
    const char *p = list;

    *n = 0;
    for (;;) {
        size_t len;
        p += strspn(p, ", \t");
        if (*p == '\0')
            break;
        len = strcspn(p, ", \t");
        if (*n == FASTCGI_UPSTREAMS_MAX) {
            free_list(ups, *n);
            *n = 0;
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "fastcgi_upstreams: more than %d upstreams",
                            FASTCGI_UPSTREAMS_MAX);
        }
        if ((ups[*n] = calloc(1, sizeof *ups[*n])) == NULL ||
            parse_one(p, len, ups[*n]) != 0) {
            int nomem = ups[*n] == NULL;
            free_list(ups, *n + 1);
            *n = 0;
            return nomem ? mkd_fail(d, MKD_ERR_NOMEM, "out of memory")
                         : mkd_fail(d, MKD_ERR_CONFIG,
                                    "fastcgi_upstreams: \"%.*s\" is neither "
                                    "unix:/PATH nor IPv4:PORT or [IPv6]:PORT",
                                    (int)len, p);
        }
        (*n)++;
        p += len;
    }
    if (*n == 0)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "fastcgi_upstreams: none given (backend = fastcgi "
                        "needs at least one)");
    return MKD_OK;
}

int fastcgi_check_upstreams(const char *list, mkd_diag *d)
{
    fc_upstream *ups[FASTCGI_UPSTREAMS_MAX];
    unsigned n;
    int r;

    mkd_diag_clear(d);
    if ((r = fastcgi__parse_upstreams(list, ups, &n, d)) == MKD_OK)
        free_list(ups, n);
    return r;
}

static int usable(const fastcgi *b, const fc_upstream *u, uint64_t now)
{
    return u->ejected_until <= now &&
           (u->nidle > 0 || u->nconns < b->max_conns);
}

fc_upstream *fastcgi__pick(fastcgi *b, fc_req *r)
{
    uint64_t now = uv_now(b->loop);

    for (unsigned k = 0; k < b->nups; k++) {
        unsigned i = (b->rr + k) % b->nups;
        if ((r->tried & (1u << i)) == 0 && usable(b, b->ups[i], now)) {
            b->rr = (i + 1) % b->nups;
            r->tried |= 1u << i;
            return b->ups[i];
        }
    }
    return NULL;
}

void fastcgi__eject(fastcgi *b, fc_upstream *up)
{
    up->connect_failures++;
    if (up->ejected_until > uv_now(b->loop))
        return;
    up->ejected_until = uv_now(b->loop) + b->eject_ms;
    up->ejections++;
    mkd_warn(0, "fastcgi: upstream %s ejected for %u ms (connect failed)",
             up->name, b->eject_ms);
}

/* One of up's connections closed: a retired upstream leaves with its
 * last. */
void fastcgi__upstream_gone_conn(fastcgi *b, fc_upstream *up)
{
    fc_upstream **pp;

    if (!up->retired || up->nconns > 0)
        return;
    for (pp = &b->retired; *pp != NULL; pp = &(*pp)->next)
        if (*pp == up) {
            *pp = up->next;
            free(up);
            return;
        }
}
