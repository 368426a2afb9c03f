/*
 * listener.c -- bind and listen on every configured address (IPv4 and
 * IPv6), hand accepted sockets to conn.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "mkd_log.h"

static void on_connection(uv_stream_t *s, int status)
{
    yugi_listener *l = s->data;

    if (status < 0) {
        /* Typically EMFILE under a flood: count it, and say so at most
         * once a second rather than once per attempt. */
        uint64_t now = uv_now(l->srv->loop);
        l->srv->st.accept_errors++;
        if (now - l->srv->last_accept_warn >= 1000) {
            l->srv->last_accept_warn = now;
            mkd_warn(0, "accept on %s: %s (%llu so far)", l->name,
                     uv_strerror(status),
                     (unsigned long long)l->srv->st.accept_errors);
        }
        return;
    }
    yugi__conn_accepted(l->srv, s);
}

/* The port the kernel chose for a listener bound to port 0. */
static unsigned bound_port(yugi_listener *l)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;

    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6
                     ? ((struct sockaddr_in6 *)&ss)->sin6_port
                     : ((struct sockaddr_in *)&ss)->sin_port);
}

/* "addr:port", with brackets around an IPv6 address. */
static void name_listener(yugi_listener *l, const char *addr, unsigned port,
                          int v6)
{
    if (v6)
        snprintf(l->name, sizeof l->name, "[%s]:%u", addr, port);
    else
        snprintf(l->name, sizeof l->name, "%s:%u", addr, port);
}

/* One address of the list, as a socket address. */
static int parse_addr(const char *addr, unsigned port,
                      struct sockaddr_storage *ss, int *v6, mkd_diag *d)
{
    int r;

    *v6 = strchr(addr, ':') != NULL;
    memset(ss, 0, sizeof *ss);
    r = *v6 ? uv_ip6_addr(addr, (int)port, (struct sockaddr_in6 *)ss)
            : uv_ip4_addr(addr, (int)port, (struct sockaddr_in *)ss);
    if (r != 0)
        return mkd_fail(d, MKD_ERR_LISTEN,
                        "listen: \"%s\" is not an IPv4 or IPv6 address", addr);
    return MKD_OK;
}

static int bind_one(yugi_server *srv, yugi_listener *l, const char *addr,
                    unsigned port, mkd_diag *d)
{
    struct sockaddr_storage ss;
    int r, v6;

    if ((r = parse_addr(addr, port, &ss, &v6, d)) != MKD_OK)
        return r;
    name_listener(l, addr, port, v6);
    if ((r = uv_tcp_init(srv->loop, &l->tcp)) != 0)
        return mkd_fail(d, MKD_ERR_LOOP, "listen on %s: %s", l->name,
                        uv_strerror(r));
    l->srv = srv; /* initialised: yugi__listeners_close must close it */
    l->tcp.data = l;
    /* An IPv6 listener takes IPv6 only, so that "::" and "0.0.0.0" can
     * both be listed without a clash. */
    if ((r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss,
                         v6 ? UV_TCP_IPV6ONLY : 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)&l->tcp, (int)srv->backlog,
                       on_connection)) != 0)
        return mkd_fail(d, MKD_ERR_LISTEN, "listen on %s: %s", l->name,
                        uv_strerror(r));
    if (port == 0 && (port = bound_port(l)) != 0) {
        srv->port = (uint16_t)port;
        name_listener(l, addr, port, v6);
    }
    mkd_info(0, "listening on %s", l->name);
    return MKD_OK;
}

int yugi__listen(yugi_server *srv, mkd_diag *d)
{
    char list[sizeof srv->listen], *save = NULL, *tok;
    size_t n = 1;
    int r;

    for (const char *p = srv->listen; *p; p++)
        n += *p == ',' || *p == ' ' || *p == '\t';
    if ((srv->listeners = calloc(n, sizeof *srv->listeners)) == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "out of memory");
    memcpy(list, srv->listen, sizeof list);
    for (tok = strtok_r(list, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save)) {
        /* With port 0 the first listener picks; the others follow it. */
        r = bind_one(srv, &srv->listeners[srv->nlisteners], tok, srv->port, d);
        if (srv->listeners[srv->nlisteners].srv != NULL)
            srv->nlisteners++;
        if (r != MKD_OK)
            return r;
    }
    return srv->nlisteners ? MKD_OK
                           : mkd_fail(d, MKD_ERR_LISTEN, "listen: no address");
}

/* Bind a socket to ss and let it go at once, without listening: an
 * address that is not local, or a port mkd may not take, fails here as
 * it would at start-up. EADDRINUSE is not an error: the running mkd a
 * reload is checked for holds the port. */
static int try_bind(const char *addr, const struct sockaddr_storage *ss, int v6,
                    mkd_diag *d)
{
    int fd, r = 0, one = 1;

    if ((fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) <
        0)
        return mkd_fail(d, MKD_ERR_LISTEN, "listen on %s: %s", addr,
                        strerror(errno));
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (v6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss,
             v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) !=
            0 &&
        errno != EADDRINUSE)
        r = mkd_fail(d, MKD_ERR_LISTEN, "listen on %s: %s", addr,
                     strerror(errno));
    (void)close(fd);
    return r == 0 ? MKD_OK : r;
}

int yugi_listen_check(const char *listen, uint16_t port, mkd_diag *d)
{
    char list[1024], *save = NULL, *tok;
    struct sockaddr_storage ss;
    int r, v6, n = 0;

    mkd_diag_clear(d);
    if (strlen(listen) >= sizeof list)
        return mkd_fail(d, MKD_ERR_LISTEN, "listen: list too long");
    memcpy(list, listen, strlen(listen) + 1);
    for (tok = strtok_r(list, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save), n++)
        if ((r = parse_addr(tok, port, &ss, &v6, d)) != MKD_OK ||
            (r = try_bind(tok, &ss, v6, d)) != MKD_OK)
            return r;
    return n ? MKD_OK : mkd_fail(d, MKD_ERR_LISTEN, "listen: no address");
}

static void on_listener_closed(uv_handle_t *h)
{
    (void)h;
}

void yugi__listeners_close(yugi_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&srv->listeners[i].tcp))
            uv_close((uv_handle_t *)&srv->listeners[i].tcp, on_listener_closed);
}
