/*
 * reload.c -- SIGHUP: the configuration file, the command line and the
 * key files are read again. Keys, ticket keys, limits, deadlines, the log
 * level and format, the access log (reopened: logrotate) and the inline
 * crypto budget take effect for new connections
 * (max_message for new requests to the PHP pool and its new workers too);
 * open sessions keep the configuration they started with (it is reference
 * counted), and old ticket keys still listed in the file still accept.
 * The listening sockets, the paths, the thread count, the users and the
 * backend are fixed for the process: a change to them is reported and
 * ignored. A reload that fails keeps everything as it was.
 */
#include <string.h>

#include "mkd.h"
#include "mkd_access.h"
#include "mkd_log.h"
#include "pegasus.h"

/* Options that need a restart: warn if they changed, keep the old ones. */
static void keep_fixed(const mkd_config *old, mkd_config *nc)
{
    /* threads = 0 was resolved to the CPU count at start-up: resolve it
     * the same way, or every reload would warn. */
    if (nc->threads == 0)
        nc->threads = uv_available_parallelism();
    if (strcmp(nc->listen, old->listen) != 0 || nc->port != old->port ||
        strcmp(nc->user, old->user) != 0 ||
        strcmp(nc->worker_user, old->worker_user) != 0 ||
        strcmp(nc->worker_group, old->worker_group) != 0 ||
        strcmp(nc->control_socket, old->control_socket) != 0 ||
        strcmp(nc->backend, old->backend) != 0 || nc->threads != old->threads ||
        strcmp(nc->metrics_listen, old->metrics_listen) != 0 ||
        nc->metrics_allow_remote != old->metrics_allow_remote)
        mkd_warn(0, "reload: listen, port, user, worker_user, worker_group, "
                    "control_socket, backend, threads and metrics_listen "
                    "need a restart; kept as they were");
    memcpy(nc->listen, old->listen, sizeof nc->listen);
    nc->port = old->port;
    memcpy(nc->user, old->user, sizeof nc->user);
    memcpy(nc->worker_user, old->worker_user, sizeof nc->worker_user);
    memcpy(nc->worker_group, old->worker_group, sizeof nc->worker_group);
    memcpy(nc->control_socket, old->control_socket, sizeof nc->control_socket);
    memcpy(nc->backend, old->backend, sizeof nc->backend);
    nc->threads = old->threads;
    memcpy(nc->metrics_listen, old->metrics_listen, sizeof nc->metrics_listen);
    nc->metrics_allow_remote = old->metrics_allow_remote;
}

/* The access log: reopened by its path (logrotate renamed the file), or
 * opened where the new configuration says. On failure the old one stays,
 * and nc says so, so that the next reload tries again. */
static void reload_logs(const mkd_config *old, mkd_config *nc)
{
    mkd_diag d;
    int r;

    if (strcmp(old->access_log, nc->access_log) == 0)
        r = mkd_access_reopen(&d);
    else
        r = mkd_access_open(nc->access_log, &d);
    if (r != MKD_OK) {
        mkd_error(0, "reload: access_log: %s", mkd_diag_text(&d, r));
        memcpy(nc->access_log, old->access_log, sizeof nc->access_log);
    }
}

void mkd_reload(mkd_daemon *dm)
{
    mkd_config nc;
    mk_server_config *scfg = NULL;
    yugi_config ycfg;
    size_t nk = 0, nt = 0;
    mkd_diag d;
    int r;

    if (dm->stopping)
        return;
    mkd_info(0, "SIGHUP: reloading keys, ticket keys, limits and backend");
    if ((r = mkd_build_config(dm->cl, &nc, &d)) != MKD_OK ||
        (r = mkd_load_keys(&nc, &scfg, &nk, &nt, &d)) != MKD_OK) {
        dm->reload_failures++;
        mkd_error(0, "reload failed, keeping the old configuration: %s",
                  mkd_diag_text(&d, r));
        return;
    }
    keep_fixed(&dm->cfg, &nc);
    reload_logs(&dm->cfg, &nc);
    dm->cfg = nc;
    mkd_log_set_level(nc.log_level);
    mkd_log_set_format(nc.log_format);
    yami_set_inline_max(dm->yami, nc.inline_crypto_max);
    mkd_yugi_config(&dm->cfg, &ycfg);
    /* The PHP pool takes the new max_message before the reload starts its
     * new workers, and with the protocol's: an answer the pool lets through
     * must be one the new connections can carry. */
    if (strcmp(nc.backend, "php") == 0 &&
        (r = pegasus_set_max_message(dm->backend, nc.max_message)) != MKD_OK)
        mkd_error(0, "reload: max_message for the PHP workers: %s",
                  mkd_strerror(r));
    /* The spawner reads the configuration itself (the workers' command),
     * and takes records in order: told first, it has the new command
     * before the backend's reload asks it for new workers. */
    if (dm->spawner != NULL && spawner_reload(dm->spawner) != MKD_OK)
        mkd_warn(0, "reload: the spawner did not take it; new workers start "
                    "with the old command");
    yugi_server_reload(dm->srv, &ycfg.limits, scfg);
    mkd_info(0, "reloaded: %zu server key(s), %zu ticket key(s)", nk, nt);
}
