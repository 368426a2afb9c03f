/*
 * listener.c -- bind and listen on every configured address (IPv4 and
 * IPv6), hand accepted sockets to conn.c.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "yugi.h"

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
    yugi_conn_accepted(l->srv, s);
}

static int bind_one(yugi_server *srv, yugi_listener *l, const char *addr,
                    unsigned port)
{
    struct sockaddr_storage ss;
    int r, v6 = strchr(addr, ':') != NULL;

    memset(&ss, 0, sizeof ss);
    r = v6 ? uv_ip6_addr(addr, (int)port, (struct sockaddr_in6 *)&ss)
           : uv_ip4_addr(addr, (int)port, (struct sockaddr_in *)&ss);
    if (r != 0) {
        mkd_err(0, "listen: \"%s\" is not an IPv4 or IPv6 address", addr);
        return r;
    }
    snprintf(l->name, sizeof l->name, v6 ? "[%s]:%u" : "%s:%u", addr, port);
    if ((r = uv_tcp_init(srv->loop, &l->tcp)) != 0)
        return r;
    l->srv = srv; /* initialised: yugi_listeners_close must close it */
    l->tcp.data = l;
    /* An IPv6 listener takes IPv6 only, so that "::" and "0.0.0.0" can
     * both be listed without a clash. */
    if ((r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss,
                         v6 ? UV_TCP_IPV6ONLY : 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)&l->tcp, (int)srv->cfg.backlog,
                       on_connection)) != 0) {
        mkd_err(0, "listen on %s: %s", l->name, uv_strerror(r));
        return r;
    }
    if (port == 0) {
        int len = sizeof ss;
        if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) == 0) {
            unsigned p = ntohs(ss.ss_family == AF_INET6
                                   ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                   : ((struct sockaddr_in *)&ss)->sin_port);
            srv->bound_port = (uint16_t)p;
            snprintf(l->name, sizeof l->name, v6 ? "[%s]:%u" : "%s:%u", addr,
                     p);
        }
    }
    mkd_info(0, "listening on %s", l->name);
    return 0;
}

int yugi_listen(yugi_server *srv)
{
    char list[MKD_PATH_MAX], *save = NULL, *tok;
    size_t n = 1;
    int r = 0;

    for (const char *p = srv->cfg.listen; *p; p++)
        n += *p == ',';
    if ((srv->listeners = calloc(n, sizeof *srv->listeners)) == NULL)
        return UV_ENOMEM;
    srv->bound_port = (uint16_t)srv->cfg.port;
    memcpy(list, srv->cfg.listen, sizeof list);
    for (tok = strtok_r(list, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save)) {
        /* With port 0 the first listener picks; the others follow it. */
        r = bind_one(srv, &srv->listeners[srv->nlisteners], tok,
                     srv->bound_port);
        if (srv->listeners[srv->nlisteners].srv != NULL)
            srv->nlisteners++;
        if (r != 0)
            return r;
    }
    return srv->nlisteners ? 0 : UV_EINVAL;
}

static void on_listener_closed(uv_handle_t *h)
{
    (void)h;
}

void yugi_listeners_close(yugi_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&srv->listeners[i].tcp))
            uv_close((uv_handle_t *)&srv->listeners[i].tcp,
                     on_listener_closed);
}
