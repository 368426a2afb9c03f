/*
 * reload.c -- SIGHUP: the configuration file, the command line and the
 * key files are read again. Keys, ticket keys, limits, deadlines, the log
 * level and format, the access log (reopened: logrotate) and the inline
 * crypto budget take effect for new connections;
 * open sessions keep the configuration they started with (it is reference
 * counted), and old ticket keys still listed in the file still accept.
 * With the PHP backend, the pool takes every one of its settings (the
 * command, the environment and php.ini settings, its size, its limits and
 * deadlines) and starts a new generation of workers with them; the old
 * one finishes what it holds and retires.
 *
 * The listening sockets (mkd's and the metrics listener's), the control
 * socket, the users, the backend and the thread count are fixed for the
 * process: a reload that changes one
 * is refused, naming it, as is one whose files do not load. A refused
 * reload changes nothing.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mkd.h"
#include "mkd_access.h"
#include "mkd_log.h"
#include "mkd_util.h"
#include "pegasus.h"

/* The options that need a restart: strings (compared up to their NUL)
 * and numbers (uint32_t). The listening sockets (mkd's and the metrics
 * listener's), the control socket and the crypto threads exist once per
 * process; the users are fixed when mkd drops root; the backend (and the
 * echo backend's delay) is made once. */
#define SIZE_OF(f) sizeof(((mkd_config *)0)->f)
#define STR(f)     #f, offsetof(mkd_config, f), SIZE_OF(f), 1
#define U32(f)     #f, offsetof(mkd_config, f), SIZE_OF(f), 0
static const struct {
    const char *name;
    size_t off, len;
    int is_str;
} fixed[] = {
    {STR(listen)},         {U32(port)},           {U32(backlog)},
    {STR(user)},           {STR(worker_user)},    {STR(worker_group)},
    {STR(control_socket)}, {STR(backend)},        {U32(threads)},
    {U32(echo_delay_ms)},  {STR(metrics_listen)}, {U32(metrics_allow_remote)},
};

static int fixed_differs(const mkd_config *a, const mkd_config *b, size_t i)
{
    const char *x = (const char *)a + fixed[i].off;
    const char *y = (const char *)b + fixed[i].off;

    if (fixed[i].is_str)
        return strncmp(x, y, fixed[i].len) != 0;
    return memcmp(x, y, fixed[i].len) != 0;
}

/* Refuse the reload if an option that needs a restart changed, naming
 * it and the others. */
static int check_fixed(const mkd_config *old, mkd_config *nc, mkd_diag *d)
{
    char names[256];
    mkd_text t;

    /* threads = 0 was resolved to the CPU count at start-up: resolve it
     * the same way, or every reload would be refused. */
    if (nc->threads == 0)
        nc->threads = uv_available_parallelism();
    mkd_text_init(&t, names, sizeof names);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        mkd_text_put(&t, "%s%s", i ? ", " : "", fixed[i].name);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (fixed_differs(old, nc, i))
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "%s changed, and it needs a restart (as do %s); "
                            "put it back, or restart mkd",
                            fixed[i].name, names);
    return MKD_OK;
}

/* The PHP pool's new settings, checked, agreed with the spawner (which
 * reads the file itself to build the workers' command), then taken. */
static int reload_pool(mkd_daemon *dm, const mkd_config *nc, mkd_diag *d)
{
    mkd_pegasus_settings *ps = malloc(sizeof *ps);
    int r;

    if (ps == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "out of memory");
    mkd_warn_env_pass(nc);
    mkd_pegasus_settings_from(nc, ps);
    ps->pc.launcher = dm->workers.launcher;
    ps->pc.uid = dm->workers.launcher == NULL ? dm->workers.uid : -1;
    ps->pc.gid = dm->workers.launcher == NULL ? dm->workers.gid : -1;
    if ((r = pegasus_config_check(&ps->pc, d)) != MKD_OK)
        goto out;
    if (dm->spawner != NULL &&
        (r = spawner_reload(dm->spawner, ps->digest, d)) != MKD_OK)
        goto out;
    /* Fails only out of memory once checked; the spawner then refuses to
     * start workers until the next reload agrees again (it logs why). */
    r = pegasus_reconfigure(dm->backend, &ps->pc, d);
out:
    mkd_pegasus_settings_wipe(ps);
    free(ps);
    return r;
}

/* The backend's new settings: the PHP pool's, or the FastCGI upstreams
 * and limits (checked first; nothing changes on failure). */
static int reload_backend(mkd_daemon *dm, const mkd_config *nc, mkd_diag *d)
{
    fastcgi_config fc;

    if (strcmp(nc->backend, "php") == 0)
        return reload_pool(dm, nc, d);
    if (strcmp(nc->backend, "fastcgi") != 0)
        return MKD_OK;
    mkd_fastcgi_settings_from(nc, &fc);
    return fastcgi_reconfigure(dm->backend, &fc, d);
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

/* Read, check and load everything a reload takes; nothing changes yet. */
static int prepare(mkd_daemon *dm, mkd_config *nc, mk_server_config **scfg,
                   size_t *nk, size_t *nt, mkd_diag *d)
{
    int r;

    if ((r = mkd_build_config(dm->cl, nc, d)) != MKD_OK ||
        (r = check_fixed(&dm->cfg, nc, d)) != MKD_OK)
        return r;
    return mkd_load_keys(nc, scfg, nk, nt, d);
}

void mkd_reload(mkd_daemon *dm)
{
    mkd_config *nc = calloc(1, sizeof *nc);
    mk_server_config *scfg = NULL;
    yugi_config ycfg;
    size_t nk = 0, nt = 0;
    mkd_diag d;
    int r;

    if (dm->stopping)
        goto out;
    mkd_info(0, "SIGHUP: reloading keys, ticket keys, limits and backend");
    if (nc == NULL)
        r = mkd_fail(&d, MKD_ERR_NOMEM, "out of memory");
    else if ((r = prepare(dm, nc, &scfg, &nk, &nt, &d)) == MKD_OK &&
             (r = reload_backend(dm, nc, &d)) != MKD_OK)
        mk_server_config_unref(scfg);
    if (r != MKD_OK) {
        dm->reload_failures++;
        mkd_error(0,
                  "reload refused, mkd keeps running on the old "
                  "configuration: %s",
                  mkd_diag_text(&d, r));
        goto out;
    }
    reload_logs(&dm->cfg, nc);
    dm->cfg = *nc;
    mkd_log_set_level(nc->log_level);
    mkd_log_set_format(nc->log_format);
    yami_set_inline_max(dm->yami, nc->inline_crypto_max);
    mkd_yugi_config(&dm->cfg, &ycfg);
    /* The backend's reload starts the pool's new generation. */
    yugi_server_reload(dm->srv, &ycfg.limits, scfg);
    mkd_info(0, "reloaded: %zu server key(s), %zu ticket key(s)", nk, nt);
out:
    if (nc != NULL)
        mkd_wipe(nc, sizeof *nc); /* env values are secrets */
    free(nc);
}
