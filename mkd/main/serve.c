/*
 * serve.c -- `mkd serve`: build the configuration, make sure keys exist,
 * load them, wire the rooms (Yami, the backend, Yugi, the control socket,
 * the signals), bind, drop privileges, and run the loop until Yugi has
 * shut down.
 *
 * Every way out after the loop exists goes through the same door:
 * daemon_stop() asks Yugi to shut down, Yugi calls back once its
 * connections and the backend are gone, and the signals and the control
 * socket close then; the loop ends when the last handle has closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "megaki_version.h"
#include "mkd.h"
#include "mkd_access.h"
#include "mkd_log.h"

static void on_closed_nothing(uv_handle_t *h)
{
    (void)h;
}

/* The signals, and the readiness watch started with them. */
static void close_signals(mkd_daemon *dm)
{
    uv_signal_t *sigs[] = {&dm->sig_term, &dm->sig_int, &dm->sig_hup};

    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (!uv_is_closing((uv_handle_t *)sigs[i]))
            uv_close((uv_handle_t *)sigs[i], on_closed_nothing);
    if (!uv_is_closing((uv_handle_t *)&dm->ready_timer))
        uv_close((uv_handle_t *)&dm->ready_timer, on_closed_nothing);
}

/* Yugi is done: its connections and the backend are gone. */
static void on_server_stopped(void *arg)
{
    mkd_daemon *dm = arg;

    close_signals(dm);
    control_close(dm->ctl);
    dm->ctl = NULL;
    metrics_close(dm->metrics);
    dm->metrics = NULL;
    spawner_close(dm->spawner);
    dm->spawner = NULL;
}

/* Shut down: gracefully (SIGTERM, SIGINT), or at once (a second signal,
 * a start that failed). */
static void daemon_stop(mkd_daemon *dm, int graceful)
{
    if (!dm->stopping)
        mkd_notify(&dm->notify, "STOPPING=1\nSTATUS=stopping: finishing "
                                "the requests in flight");
    dm->stopping = 1;
    yugi_server_shutdown(dm->srv, graceful, on_server_stopped, dm);
}

/* The spawner ended on its own: no worker can be started any more, so
 * mkd stops, and says so in its exit status. */
static void on_spawner_lost(void *arg)
{
    mkd_daemon *dm = arg;

    dm->exit_code = 1;
    dm->spawner = NULL; /* it releases itself */
    if (!dm->stopping)
        daemon_stop(dm, 1);
}

/* SIGHUP, told to the service manager: RELOADING=1 (with the clock the
 * newer reload protocol asks for), then READY=1 again once done, or only
 * a status while the first start is not. */
static void reload(mkd_daemon *dm)
{
    uint64_t failures = dm->reload_failures;

    if (dm->stopping)
        return;
    mkd_notify(&dm->notify,
               "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
               (unsigned long long)mkd_monotonic_usec());
    mkd_reload(dm);
    mkd_notify(&dm->notify, "%sSTATUS=serving on port %u%s",
               dm->ready > 0 ? "READY=1\n" : "", yugi_server_port(dm->srv),
               dm->reload_failures != failures
                   ? "; the reload failed (see the log), the old "
                     "configuration stays"
                   : "");
}

static void on_signal(uv_signal_t *h, int signum)
{
    mkd_daemon *dm = h->data;

    if (signum == SIGHUP) {
        reload(dm);
    } else if (dm->stopping) {
        mkd_warn(0, "second signal: closing now");
        daemon_stop(dm, 0);
    } else {
        daemon_stop(dm, 1);
    }
}

static int start_signals(mkd_daemon *dm)
{
    static const int signums[] = {SIGTERM, SIGINT, SIGHUP};
    uv_signal_t *sigs[] = {&dm->sig_term, &dm->sig_int, &dm->sig_hup};
    int r;

    for (size_t i = 0; i < 3; i++) {
        (void)uv_signal_init(&dm->loop, sigs[i]); /* cannot fail */
        sigs[i]->data = dm;
    }
    (void)uv_timer_init(&dm->loop, &dm->ready_timer); /* cannot fail */
    dm->ready_timer.data = dm;
    for (size_t i = 0; i < 3; i++)
        if ((r = uv_signal_start(sigs[i], on_signal, signums[i])) != 0) {
            mkd_error(0, "signals: %s", uv_strerror(r));
            return MKD_ERR_LOOP;
        }
    return MKD_OK;
}

/* The spawner's command line: mkd itself, with the configuration
 * arguments it was given, so that it reads the same configuration. */
static void spawner_argv(const mkd_cmdline *cl, const char **argv, size_t cap)
{
    size_t n = 0;

    argv[n++] = "/proc/self/exe";
    argv[n++] = "spawner";
    if (cl->config_path != NULL) {
        argv[n++] = "-c";
        argv[n++] = cl->config_path;
    }
    /* Each override is "key=value" inside "--key=value": point at its
     * dashes again. */
    for (int i = 0; i < cl->nover && n + 1 < cap; i++)
        argv[n++] = cl->over[i] - 2;
    argv[n] = NULL;
}

/* Which worker settings mkd read, for the spawner to check its own
 * reading against. */
static uint64_t worker_settings_digest(const mkd_config *cfg)
{
    mkd_pegasus_settings *ps = malloc(sizeof *ps);
    uint64_t digest = 0; /* out of memory: no spawn will agree */

    if (ps != NULL) {
        mkd_pegasus_settings_from(cfg, ps);
        digest = ps->digest;
        mkd_pegasus_settings_wipe(ps);
        free(ps);
    }
    return digest;
}

/* Who runs the application. As root with a user to become: the spawner,
 * started now while mkd can still start it as root. As root staying root:
 * uv_spawn sets the workers' user itself. Not as root: nobody else can be
 * chosen, and the operator is told what that means. */
static int choose_workers(mkd_daemon *dm, mkd_diag *d)
{
    const mkd_config *cfg = &dm->cfg;
    const char *argv[8 + 256];
    int r;

    dm->workers.launcher = NULL;
    if ((r = mkd_worker_ids(cfg, &dm->workers.uid, &dm->workers.gid, d)) !=
        MKD_OK)
        return r;
    if (strcmp(cfg->backend, "php") != 0)
        return MKD_OK;
    if (geteuid() != 0) {
        mkd_warn(0, "the application runs as mkd's own user and could read "
                    "its keys; start mkd as root with user and worker_user "
                    "to keep them apart");
        return MKD_OK;
    }
    if (dm->workers.uid == 0)
        mkd_warn(0, "worker_user is root: the application can read the keys "
                    "and stop mkd");
    if (cfg->user[0] == '\0')
        return MKD_OK;
    spawner_argv(dm->cl, argv, sizeof argv / sizeof argv[0]);
    if ((r = spawner_start(&dm->loop, argv, worker_settings_digest(cfg),
                           on_spawner_lost, dm, &dm->spawner, d)) != MKD_OK)
        return r;
    dm->workers.launcher = spawner_launcher(dm->spawner);
    return MKD_OK;
}

/* The rooms, wired: Yami, the backend, Yugi over both. From here on
 * dm->srv holds the backend and scfg. */
static int wire(mkd_daemon *dm, mk_server_config *scfg)
{
    const mkd_config *cfg = &dm->cfg;
    mkd_backend *backend = NULL;
    yugi_config ycfg;
    mkd_diag d;
    int r;

    if ((r = yami_new(&dm->loop, cfg->threads, cfg->inline_crypto_max,
                      &dm->yami)) != MKD_OK) {
        mk_server_config_unref(scfg);
        mkd_error(0, "crypto pool: %s", mkd_strerror(r));
        return r;
    }
    if ((r = choose_workers(dm, &d)) != MKD_OK ||
        (r = mkd_make_backend(&dm->loop, cfg, &dm->workers, &backend, &d)) !=
            MKD_OK) {
        mk_server_config_unref(scfg);
        mkd_error(0, "backend %s: %s", cfg->backend, mkd_diag_text(&d, r));
        return r;
    }
    mkd_yugi_config(cfg, &ycfg);
    if ((r = yugi_server_new(&dm->loop, &ycfg, scfg, dm->yami, backend,
                             &dm->srv)) != MKD_OK)
        mkd_error(0, "server: %s", mkd_strerror(r));
    else
        dm->backend = backend;
    return r;
}

/* The metrics listener, when metrics_listen names one. */
static int open_metrics(mkd_daemon *dm)
{
    mkd_diag d;
    int r;

    if (dm->cfg.metrics_listen[0] == '\0')
        return MKD_OK;
    dm->metrics_src.srv = dm->srv;
    dm->metrics_src.yami = dm->yami;
    dm->metrics_src.reload_failures = &dm->reload_failures;
    if ((r = metrics_open(&dm->loop, dm->cfg.metrics_listen,
                          (int)dm->cfg.metrics_allow_remote, &dm->metrics_src,
                          &dm->metrics, &d)) != MKD_OK)
        mkd_error(0, "start-up failed: %s", mkd_diag_text(&d, r));
    else
        dm->metrics_port = metrics_port(dm->metrics);
    return r;
}

/* Listen, serve the status, catch signals. */
static int open_doors(mkd_daemon *dm)
{
    mkd_diag d;
    int r;

    dm->ctl_src.srv = dm->srv;
    dm->ctl_src.yami = dm->yami;
    dm->ctl_src.reload_failures = &dm->reload_failures;
    dm->ctl_src.metrics_port = &dm->metrics_port;
    if ((r = start_signals(dm)) != MKD_OK)
        return r;
    if ((r = yugi_server_listen(dm->srv, &d)) != MKD_OK ||
        (r = control_open(&dm->loop, dm->cfg.control_socket, &dm->ctl_src,
                          &dm->ctl, &d)) != MKD_OK) {
        mkd_error(0, "start-up failed: %s", mkd_diag_text(&d, r));
        return r;
    }
    /* The socket is made as root; `mkd status` run as mkd's user must
     * reach it too. */
    if (dm->ctl != NULL &&
        (r = mkd_give_to_user(&dm->cfg, dm->cfg.control_socket)) != MKD_OK)
        return r;
    return open_metrics(dm);
}

/* "Ready" means fully started, privileges dropped included, so the port
 * is written only after the drop; the file is opened before it, while its
 * directory may still be writable only by root. */
static int open_ready_file(const mkd_config *cfg)
{
    int fd;

    if (cfg->ready_file[0] == '\0')
        return -1;
    if (strcmp(cfg->ready_file, "-") == 0) /* standard output */
        return fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    /* Never through a symbolic link: as root, that would let whoever can
     * write the directory truncate any file. */
    fd = open(cfg->ready_file,
              O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        mkd_warn(0, "ready_file %s: %s", cfg->ready_file, strerror(errno));
    return fd;
}

static void write_ready_file(const mkd_config *cfg, int fd, unsigned port)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%u\n", port);

    /* One short write: a reader sees the whole line or nothing. */
    if (n <= 0 || write(fd, text, (size_t)n) != (ssize_t)n)
        mkd_warn(0, "ready_file %s: %s", cfg->ready_file, strerror(errno));
    (void)close(fd);
}

/* READY=1 once the backend can answer (a worker has loaded the
 * application): a service manager then starts what depends on mkd. While
 * the workers fail to start, the status says so. */
static void on_ready_poll(uv_timer_t *t)
{
    mkd_daemon *dm = t->data;
    int r;

    if (dm->stopping) { /* the backend is Yugi's to free now */
        uv_timer_stop(t);
        return;
    }
    r = mkd_backend_readiness(dm->backend);
    if (r > 0) {
        dm->ready = 1;
        uv_timer_stop(t);
        mkd_notify(&dm->notify, "READY=1\nSTATUS=serving on port %u",
                   yugi_server_port(dm->srv));
    } else if (r < 0 && dm->ready == 0) {
        dm->ready = -1; /* said once */
        mkd_notify(&dm->notify,
                   "STATUS=listening on port %u; the "
                   "application's workers end before they are "
                   "ready (see the log)",
                   yugi_server_port(dm->srv));
    }
}

/* Everything that runs before the loop; MKD_OK means serving. */
static int start(mkd_daemon *dm, size_t nk, size_t nt)
{
    int r, ready_fd;

    if ((r = open_doors(dm)) != MKD_OK)
        return r;
    ready_fd = open_ready_file(&dm->cfg);
    if ((r = mkd_drop_privileges(dm->cfg.user)) != MKD_OK) {
        if (ready_fd >= 0)
            (void)close(ready_fd);
        return r;
    }
    if (ready_fd >= 0)
        write_ready_file(&dm->cfg, ready_fd, yugi_server_port(dm->srv));
    mkd_info(0,
             "mkd %s serving (port %u, %zu key(s), %zu ticket key(s), "
             "%u crypto threads, backend %s, data %s)",
             MEGAKI_VERSION, yugi_server_port(dm->srv), nk, nt, dm->cfg.threads,
             dm->cfg.backend, dm->cfg.data_dir);
    (void)uv_timer_start(&dm->ready_timer, on_ready_poll, 0, 50);
    return MKD_OK;
}

/* The process and the keys, before anything runs. */
static int prepare(mkd_daemon *dm, mk_server_config **scfg, size_t *nk,
                   size_t *nt)
{
    mkd_diag d;
    int r;

    mkd_log_set_level(dm->cfg.log_level);
    mkd_log_set_format(dm->cfg.log_format);
    /* Opened before privileges are dropped, like the log on stderr: its
     * directory may be root's. */
    if ((r = mkd_access_open(dm->cfg.access_log, &d)) != MKD_OK) {
        mkd_error(0, "access_log: %s", mkd_diag_text(&d, r));
        return r;
    }
    /* Not dumpable: no core file with the keys in it, and /proc/<pid>/mem
     * and environ belong to root, not to mkd's user. */
    (void)prctl(PR_SET_DUMPABLE, 0);
    (void)signal(SIGPIPE, SIG_IGN);
    mkd_raise_nofile();
    if (dm->cfg.threads == 0)
        dm->cfg.threads = uv_available_parallelism();
    if ((r = mkd_ensure_keys(&dm->cfg)) != MKD_OK)
        return r;
    if ((r = mkd_load_keys(&dm->cfg, scfg, nk, nt, &d)) != MKD_OK)
        mkd_error(0, "%s", mkd_diag_text(&d, r));
    return r;
}

int mkd_serve(const mkd_cmdline *cl)
{
    mkd_daemon *dm = calloc(1, sizeof *dm);
    mk_server_config *scfg = NULL;
    size_t nk = 0, nt = 0;
    mkd_diag d;
    int r, ret = 1;

    if (dm == NULL) {
        mkd_error(0, "out of memory");
        return 1;
    }
    dm->cl = cl;
    mkd_notify_open(&dm->notify);
    if ((r = mkd_build_config(cl, &dm->cfg, &d)) != MKD_OK) {
        mkd_error(0, "%s", mkd_diag_text(&d, r));
        ret = 2; /* the operator's to fix: a usage error */
        goto out;
    }
    if (prepare(dm, &scfg, &nk, &nt) != MKD_OK)
        goto out;
    if ((r = uv_loop_init(&dm->loop)) != 0) {
        mkd_error(0, "loop: %s", uv_strerror(r));
        mk_server_config_unref(scfg);
        goto out;
    }
    if (wire(dm, scfg) == MKD_OK) {
        if (start(dm, nk, nt) == MKD_OK)
            ret = 0;
        else
            daemon_stop(dm, 0);
    } else {
        spawner_close(dm->spawner); /* Yugi never came to close it */
        dm->spawner = NULL;
    }
    (void)uv_run(&dm->loop, UV_RUN_DEFAULT);
    if (ret == 0) {
        ret = dm->exit_code;
        mkd_info(0, "exit %d", ret);
    }
    yugi_server_free(dm->srv);
    yami_free(dm->yami);
    if (uv_loop_close(&dm->loop) != 0)
        mkd_warn(0, "handles still open at exit");
    mkd_access_close();
out:
    mkd_notify_close(&dm->notify);
    free(dm);
    return ret;
}
