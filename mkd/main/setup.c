/*
 * setup.c -- what the daemon and the subcommands take from the operator:
 * the configuration (file, then command line), the first-run keys, the
 * protocol configuration, the backend, and the privileges the process
 * keeps.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "echo.h"
#include "fastcgi.h"
#include "keys.h"
#include "metrics.h"
#include "mkd.h"
#include "mkd_access.h"
#include "mkd_log.h"
#include "mkd_proxy.h"
#include "mkd_util.h"
#include "pegasus.h"

extern char **environ;

/* --key-name=value: dashes and underscores are the same (in the option's
 * name, not in a [key]). */
static int apply_override(mkd_config *c, const char *arg, mkd_diag *d)
{
    char key[128], msg[sizeof d->text];
    const char *eq = strchr(arg, '=');
    size_t kl = (size_t)(eq - arg);
    int in_key = 0, r;

    if (kl >= sizeof key)
        return mkd_fail(d, MKD_ERR_CONFIG, "option too long: %.*s", (int)kl,
                        arg);
    for (size_t k = 0; k < kl; k++) {
        in_key |= arg[k] == '[';
        key[k] = arg[k] == '-' && !in_key ? '_' : arg[k];
    }
    key[kl] = '\0';
    if ((r = mkd_config_set(c, key, eq + 1, d)) != MKD_OK) {
        (void)snprintf(msg, sizeof msg, "%s", mkd_diag_text(d, r));
        return mkd_fail(d, r, "command line: %s", msg);
    }
    return MKD_OK;
}

/* The access log's and the metrics listener's settings, and
 * trusted_proxies, as serve would take them (nothing is opened): a bad one
 * is the operator's to fix before start-up, and `mkd config` and a reload
 * refuse it too. */
static int check_observers(const mkd_config *c, mkd_diag *d)
{
    struct sockaddr_storage sa;
    mkd_proxy_cidrs cidrs;
    char err[160];
    int r;

    if (mkd_proxy_cidrs_parse(c->trusted_proxies, &cidrs, err, sizeof err) != 0)
        return mkd_fail(d, MKD_ERR_CONFIG, "trusted_proxies: %s", err);

    if ((r = mkd_access_check(c->access_log, d)) != MKD_OK)
        return r;
    if (c->metrics_listen[0] != '\0' &&
        (r = metrics_parse_listen(c->metrics_listen,
                                  (int)c->metrics_allow_remote, &sa, d)) !=
            MKD_OK)
        return r;
    return MKD_OK;
}

int mkd_build_config(const mkd_cmdline *cl, mkd_config *c, mkd_diag *d)
{
    int r;

    mkd_diag_clear(d);
    mkd_config_defaults(c);
    if (cl->config_path != NULL &&
        (r = mkd_config_load_file(c, cl->config_path, d)) != MKD_OK)
        return r;
    for (int i = 0; i < cl->nover; i++)
        if ((r = apply_override(c, cl->over[i], d)) != MKD_OK)
            return r;
    /* "-" is standard output where mkd only writes (ready_file); the key
     * files hold secrets and are read and rewritten in place. */
    if (strcmp(c->key_file, "-") == 0 || strcmp(c->ticket_key_file, "-") == 0)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "key_file, ticket_key_file: \"-\" (standard output) "
                        "cannot hold a key; give a file name");
    if ((r = mkd_config_finish(c, d)) != MKD_OK)
        return r;
    return check_observers(c, d);
}

void mkd_yugi_config(const mkd_config *c, yugi_config *out)
{
    yugi_limits *l = &out->limits;

    memset(out, 0, sizeof *out);
    out->listen = c->listen;
    out->port = (uint16_t)c->port;
    out->backlog = c->backlog;
    l->max_connections = c->max_connections;
    l->max_handshakes = c->max_handshakes;
    l->max_pending_per_address = c->max_pending_per_address;
    l->max_connections_per_address = c->max_connections_per_address;
    l->handshake_rate = c->handshake_rate;
    l->handshake_burst = c->handshake_burst;
    l->resume_rate = c->resume_rate;
    l->resume_burst = c->resume_burst;
    l->retry_after_ms = c->retry_after_ms;
    l->handshake_timeout_ms = c->handshake_timeout_ms;
    l->idle_timeout_ms = c->idle_timeout_ms;
    l->unit_timeout_ms = c->unit_timeout_ms;
    l->partial_request_timeout_ms = c->partial_request_timeout_ms;
    l->write_timeout_ms = c->write_timeout_ms;
    l->shutdown_timeout_ms = c->shutdown_timeout_ms;
    l->conn_buffer_max = c->conn_buffer_max;
    l->buffer_budget = c->buffer_budget;
    l->write_high_water = c->write_high_water;
    l->request_slowlog_ms = c->request_slowlog_ms;
    /* Checked with the configuration (check_observers): cannot fail. */
    (void)mkd_proxy_cidrs_parse(c->trusted_proxies, &l->trusted_proxies, NULL,
                                0);
}

/* --- keys --------------------------------------------------------------- */

int mkd_give_to_user(const mkd_config *cfg, const char *path)
{
    struct passwd *pw;

    if (geteuid() != 0 || cfg->user[0] == '\0')
        return MKD_OK;
    if ((pw = getpwnam(cfg->user)) == NULL) {
        mkd_error(0, "user %s: no such user", cfg->user);
        return MKD_ERR_CONFIG;
    }
    if (chown(path, pw->pw_uid, pw->pw_gid) != 0) {
        mkd_error(0, "%s: cannot give it to %s: %s", path, cfg->user,
                  strerror(errno));
        return MKD_ERR_SYSTEM;
    }
    return MKD_OK;
}

/* The key and its public halves, for the user mkd becomes. */
static int give_key_files(const mkd_config *cfg)
{
    static const char *const ext[] = {".pub.pem", ".pub.h"};
    size_t n = strlen(cfg->key_file);
    char path[MKD_PATH_MAX + 16];
    int r;

    if ((r = mkd_give_to_user(cfg, cfg->key_file)) != MKD_OK)
        return r;
    if (n >= 4 && strcmp(cfg->key_file + n - 4, ".pem") == 0)
        n -= 4;
    for (size_t i = 0; i < 2; i++) {
        (void)snprintf(path, sizeof path, "%.*s%s", (int)n, cfg->key_file,
                       ext[i]);
        if ((r = mkd_give_to_user(cfg, path)) != MKD_OK)
            return r;
    }
    return MKD_OK;
}

/* The data directory, created 0700 for the user mkd becomes if it is
 * missing; one that exists is the operator's and stays as it is. */
static int data_dir(const mkd_config *cfg)
{
    int existed = mkd_file_exists(cfg->data_dir), r;
    mkd_diag d;

    if ((r = mkd_mkdirs(cfg->data_dir, 0700, &d)) != MKD_OK) {
        mkd_error(0, "data directory: %s", mkd_diag_text(&d, r));
        return r;
    }
    return existed ? MKD_OK : mkd_give_to_user(cfg, cfg->data_dir);
}

/* The first run: files mkd creates as root belong to the user it becomes,
 * so that the first reload after the drop can read them again. */
static int first_key(const mkd_config *cfg)
{
    char id[KEYS_ID_HEX];
    mkd_diag d;
    int r;

    if ((r = data_dir(cfg)) != MKD_OK)
        return r;
    mkd_info(0, "first run: generating an RSA-2048 server key in %s",
             cfg->key_file);
    if ((r = keys_generate(cfg->key_file, 2048, id, &d)) != MKD_OK) {
        mkd_error(0, "%s", mkd_diag_text(&d, r));
        return r;
    }
    if ((r = give_key_files(cfg)) != MKD_OK)
        return r;
    mkd_info(0,
             "server key id %s; clients pin the public key in "
             "%.*s.pub.pem (C array: .pub.h)",
             id, (int)(strlen(cfg->key_file) - 4), cfg->key_file);
    return MKD_OK;
}

static int first_ticket_keys(const mkd_config *cfg)
{
    mkd_diag d;
    size_t n = 0;
    int r;

    if ((r = mkd_mkdirs_for(cfg->ticket_key_file, 0700, &d)) != MKD_OK ||
        (r = keys_ticket_file_update(cfg->ticket_key_file, 0,
                                     cfg->ticket_keys_keep, &n, &d)) !=
            MKD_OK) {
        mkd_error(0, "%s", mkd_diag_text(&d, r));
        return r;
    }
    if ((r = mkd_give_to_user(cfg, cfg->ticket_key_file)) != MKD_OK)
        return r;
    mkd_info(0,
             "created ticket-key file %s (share it between nodes; "
             "rotate with mkd ticket-keys --rotate, then SIGHUP)",
             cfg->ticket_key_file);
    return MKD_OK;
}

int mkd_ensure_keys(const mkd_config *cfg)
{
    int r;

    if (!cfg->key_file_set && !mkd_file_exists(cfg->key_file) &&
        (r = first_key(cfg)) != MKD_OK)
        return r;
    if (!mkd_file_exists(cfg->ticket_key_file) &&
        (r = first_ticket_keys(cfg)) != MKD_OK)
        return r;
    return MKD_OK;
}

int mkd_load_keys(const mkd_config *cfg, mk_server_config **out, size_t *nk,
                  size_t *nt, mkd_diag *d)
{
    keys_source src;

    src.key_files = cfg->key_file;
    src.ticket_key_file = cfg->ticket_key_file;
    src.max_message = cfg->max_message;
    src.max_inflight = cfg->max_inflight;
    src.ticket_lifetime = cfg->ticket_lifetime;
    src.session_max_age = cfg->session_max_age;
    return keys_server_config(&src, out, nk, nt, d);
}

/* --- the backend ---------------------------------------------------------- */

/* The "NAME=value" entry of mkd's environment for name (n bytes), or
 * NULL. The entry itself, not a copy: the environment outlives the
 * settings, and a value may be long. */
static const char *environ_entry(const char *name, size_t n)
{
    for (char **e = environ; e != NULL && *e != NULL; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e;
    return NULL;
}

void mkd_warn_env_pass(const mkd_config *cfg)
{
    const char *p;
    size_t len;

    for (p = mkd_config_env_pass_next(cfg->env_pass, &len); p != NULL;
         p = mkd_config_env_pass_next(p + len, &len))
        if (environ_entry(p, len) == NULL)
            mkd_warn(0,
                     "env_pass: %.*s is not in mkd's environment; the "
                     "workers do not get it",
                     (int)len, p);
}

/* The php.ini settings and the environment: env[...] and env_pass, then
 * memory_limit unless a php_value or php_admin_value sets it. */
static void settings_lists(const mkd_config *cfg, mkd_pegasus_settings *ps)
{
    size_t ne = 0, ni = 0, na = 0, len;
    int mem_set = 0;
    const char *p;

    for (uint32_t i = 0; i < cfg->nkv; i++) {
        const mkd_config_kv *e = &cfg->kv[i];
        (void)snprintf(ps->kv[i], sizeof ps->kv[i], "%s=%s", e->key, e->value);
        if (e->kind == MKD_KV_ENV) {
            ps->env[ne++] = ps->kv[i];
            continue;
        }
        mem_set |= strcmp(e->key, "memory_limit") == 0;
        if (e->kind == MKD_KV_PHP_ADMIN)
            ps->admin[na++] = ps->kv[i];
        else
            ps->ini[ni++] = ps->kv[i];
    }
    for (p = mkd_config_env_pass_next(cfg->env_pass, &len); p != NULL;
         p = mkd_config_env_pass_next(p + len, &len))
        if ((ps->env[ne] = environ_entry(p, len)) != NULL)
            ne++;
    if (cfg->php_memory_limit[0] != '\0' && !mem_set) {
        (void)snprintf(ps->mem, sizeof ps->mem, "memory_limit=%s",
                       cfg->php_memory_limit);
        ps->ini[ni++] = ps->mem;
    }
    ps->pc.php_ini = ni ? ps->ini : NULL;
    ps->pc.php_admin = na ? ps->admin : NULL;
    ps->pc.env = ne ? ps->env : NULL;
}

void mkd_pegasus_settings_from(const mkd_config *cfg, mkd_pegasus_settings *ps)
{
    pegasus_config *pc = &ps->pc;

    memset(ps, 0, sizeof *ps);
    pegasus_config_defaults(pc);
    pc->php = cfg->php;
    pc->arcangelo = cfg->arcangelo;
    pc->app = cfg->app;
    settings_lists(cfg, ps);
    pc->workers_min = cfg->workers ? cfg->workers : uv_available_parallelism();
    pc->workers_max =
        cfg->workers_max > pc->workers_min ? cfg->workers_max : pc->workers_min;
    pc->queue_max = cfg->queue_max;
    pc->queue_timeout_ms = cfg->queue_timeout_ms;
    pc->request_timeout_ms = cfg->request_timeout_ms;
    pc->start_timeout_ms = cfg->worker_start_timeout_ms;
    pc->stop_timeout_ms = cfg->worker_stop_timeout_ms;
    pc->idle_timeout_ms = cfg->worker_idle_timeout_ms;
    pc->max_requests = cfg->worker_max_requests;
    pc->max_lifetime_s = cfg->worker_max_lifetime_s;
    pc->max_rss_kib = cfg->worker_max_rss_kib;
    pc->max_message = cfg->max_message;
    pc->expose_errors = cfg->expose_errors != 0;
    ps->digest = pegasus_command_digest(pc);
}

void mkd_pegasus_settings_wipe(mkd_pegasus_settings *ps)
{
    mkd_wipe(ps, sizeof *ps);
}

/* The group workers run as: worker_group, else the user's own. */
static int worker_gid(const mkd_config *cfg, const struct passwd *pw,
                      int64_t *gid, mkd_diag *d)
{
    struct group *gr;

    if (cfg->worker_group[0] == '\0') {
        *gid = pw->pw_gid;
        return MKD_OK;
    }
    if ((gr = getgrnam(cfg->worker_group)) == NULL)
        return mkd_fail(d, MKD_ERR_CONFIG, "worker_group %s: no such group",
                        cfg->worker_group);
    *gid = gr->gr_gid;
    return MKD_OK;
}

int mkd_worker_ids(const mkd_config *cfg, int64_t *uid, int64_t *gid,
                   mkd_diag *d)
{
    const char *name = cfg->worker_user[0] ? cfg->worker_user : "nobody";
    struct passwd *pw, *own;
    int r;

    mkd_diag_clear(d);
    *uid = *gid = -1;
    if (geteuid() != 0)
        return MKD_OK; /* nothing to change to: see mkd_serve's warning */
    if ((pw = getpwnam(name)) == NULL)
        return mkd_fail(d, MKD_ERR_CONFIG, "worker_user %s: no such user",
                        name);
    *uid = pw->pw_uid;
    if ((r = worker_gid(cfg, pw, gid, d)) != MKD_OK)
        return r;
    if (cfg->user[0] != '\0' && (own = getpwnam(cfg->user)) != NULL &&
        own->pw_uid == (uid_t)*uid)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "worker_user %s is mkd's own user: the application "
                        "could read the keys; give the workers a user of "
                        "their own",
                        name);
    return MKD_OK;
}

void mkd_fastcgi_settings_from(const mkd_config *cfg, fastcgi_config *fc)
{
    memset(fc, 0, sizeof *fc);
    fc->upstreams = cfg->fastcgi_upstreams;
    fc->script = cfg->fastcgi_script;
    fc->max_conns = cfg->fastcgi_max_conns;
    fc->connect_timeout_ms = cfg->fastcgi_connect_timeout_ms;
    fc->request_timeout_ms = cfg->request_timeout_ms;
    fc->eject_ms = cfg->fastcgi_eject_ms;
    fc->max_message = cfg->max_message;
}

int mkd_make_backend(uv_loop_t *loop, const mkd_config *cfg,
                     const mkd_workers *wk, mkd_backend **out, mkd_diag *d)
{
    mkd_pegasus_settings ps;
    fastcgi_config fc;
    int r;

    mkd_diag_clear(d);
    if (strcmp(cfg->backend, "echo") == 0) {
        if ((r = mkd_echo_new(loop, cfg->echo_delay_ms, out)) != MKD_OK)
            return mkd_fail(d, r, "%s", mkd_strerror(r));
        return MKD_OK;
    }
    if (strcmp(cfg->backend, "fastcgi") == 0) {
        mkd_fastcgi_settings_from(cfg, &fc);
        return fastcgi_new(loop, &fc, out, d);
    }
    mkd_warn_env_pass(cfg);
    mkd_pegasus_settings_from(cfg, &ps);
    ps.pc.launcher = wk->launcher;
    if (wk->launcher == NULL) {
        ps.pc.uid = wk->uid;
        ps.pc.gid = wk->gid;
    }
    r = pegasus_new(loop, &ps.pc, out, d);
    mkd_pegasus_settings_wipe(&ps);
    return r;
}

/* A number from a backend's status block ("\nkey N"), 0 if absent. */
static unsigned long status_value(const char *text, const char *key)
{
    char want[64];
    const char *at;

    snprintf(want, sizeof want, "\n%s ", key);
    at = strstr(text, want);
    return at ? strtoul(at + strlen(want), NULL, 10) : 0;
}

int mkd_backend_readiness(mkd_backend *b)
{
    char text[8192];
    size_t len;

    if (strcmp(b->ops->name, "pegasus") != 0)
        return 1;
    len = b->ops->status(b, text, sizeof text - 1);
    text[len] = '\0';
    if (status_value(text, "backend.workers_idle") > 0 ||
        status_value(text, "backend.workers_busy") > 0)
        return 1;
    return status_value(text, "backend.start_failures") > 0 ||
                   status_value(text, "backend.crashes") > 0
               ? -1
               : 0;
}

/* --- the process ---------------------------------------------------------- */

int mkd_drop_privileges(const char *user)
{
    struct passwd *pw;

    if (user[0] == '\0') {
        if (geteuid() == 0)
            mkd_warn(0, "running as root: set user = NAME to drop "
                        "privileges after binding");
        return MKD_OK;
    }
    if (geteuid() != 0) {
        mkd_warn(0, "user = %s ignored: not started as root", user);
        return MKD_OK;
    }
    if ((pw = getpwnam(user)) == NULL) {
        mkd_error(0, "user %s: no such user", user);
        return MKD_ERR_PRIVILEGES;
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        mkd_error(0, "dropping privileges to %s: %s", user, strerror(errno));
        return MKD_ERR_PRIVILEGES;
    }
    /* Make sure there is no way back. */
    if (setuid(0) == 0 || geteuid() == 0) {
        mkd_error(0, "privileges could not be dropped for good");
        return MKD_ERR_PRIVILEGES;
    }
    mkd_info(0, "running as %s (uid %ld)", user, (long)pw->pw_uid);
    return MKD_OK;
}

void mkd_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}
