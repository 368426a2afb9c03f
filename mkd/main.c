/*
 * main.c -- the `mkd` program: parse the command line and configuration,
 * make sure a server key and a ticket-key file exist, load them, bind,
 * drop privileges, and run Yugi. Also the operator subcommands: keygen,
 * pubkey, ticket-keys, status, config.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "echo.h"
#include "pegasus/pegasus.h"
#include "megaki.h"
#include "yami/keys.h"
#include "yugi/yugi.h"

#define MKD_VERSION "2.0.0"

static const char usage_text[] =
    "usage: mkd [serve] [-c FILE] [--OPTION=VALUE ...]\n"
    "       mkd keygen [--bits=2048|3072|4096] [--out=FILE.pem] [...]\n"
    "       mkd pubkey [--key_file=FILE.pem]\n"
    "       mkd ticket-keys [--rotate] [--keep=N] [--ticket_key_file=F]\n"
    "       mkd status [-c FILE] [--control_socket=PATH]\n"
    "       mkd config [-c FILE] [--OPTION=VALUE ...]\n"
    "       mkd --version | --help\n"
    "\n"
    "Every configuration option (docs/MKD.md) can be given on the command\n"
    "line as --option=value (dashes and underscores are the same).\n"
    "With no configuration, mkd serves on 127.0.0.1:7410 with a key it\n"
    "generates on first run in its data directory.\n";

/* The command line, kept for SIGHUP (the file is read again, then the
 * overrides applied again). */
typedef struct cmdline {
    const char *config_path;
    int nover;
    char **over; /* "key=value" */
    /* subcommand flags */
    int rotate;
    unsigned keep;
    unsigned bits;
    const char *out;
} cmdline;

static int build_config(const cmdline *cl, mkd_config *c, char *err,
                        size_t errlen)
{
    mkd_config_defaults(c);
    if (cl->config_path != NULL &&
        mkd_config_load_file(c, cl->config_path, err, errlen) != 0)
        return -1;
    for (int i = 0; i < cl->nover; i++) {
        char key[64], msg[256];
        const char *eq = strchr(cl->over[i], '=');
        size_t kl = (size_t)(eq - cl->over[i]);
        if (kl >= sizeof key) {
            snprintf(err, errlen, "option too long: %s", cl->over[i]);
            return -1;
        }
        for (size_t k = 0; k < kl; k++)
            key[k] = cl->over[i][k] == '-' ? '_' : cl->over[i][k];
        key[kl] = '\0';
        if (mkd_config_set(c, key, eq + 1, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "command line: %s", msg);
            return -1;
        }
    }
    return mkd_config_finish(c, err, errlen);
}

static int reload_config(void *arg, mkd_config *out, char *err,
                         size_t errlen)
{
    return build_config(arg, out, err, errlen);
}

/* --- serve ------------------------------------------------------------ */

static int parent_dir(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n == 0 || n >= cap)
        return -1;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

/* First run: a key and a ticket-key file where the configuration says. */
static int ensure_keys(const mkd_config *cfg)
{
    char err[512], dir[MKD_PATH_MAX], desc[8192];
    size_t n = 0;
    int r;

    if (!cfg->key_file_set && !mkd_file_exists(cfg->key_file)) {
        if ((r = mkd_mkdirs(cfg->data_dir, 0700)) != 0) {
            mkd_err(0, "data directory %s: %s", cfg->data_dir, strerror(r));
            return -1;
        }
        mkd_info(0, "first run: generating an RSA-2048 server key in %s",
                 cfg->key_file);
        if (yami_keygen_files(cfg->key_file, 2048, err, sizeof err) != 0 ||
            yami_describe_key(cfg->key_file, desc, sizeof desc, err,
                              sizeof err) != 0) {
            mkd_err(0, "%s", err);
            return -1;
        }
        {
            char *idl = strstr(desc, "key id: ");
            char id[2 * MK_KEY_ID_LEN + 1] = "";
            if (idl != NULL)
                sscanf(idl, "key id: %16s", id);
            mkd_info(0, "server key id %s; clients pin the public key in "
                        "%.*s.pub.pem (C array: .pub.h)",
                     id, (int)(strlen(cfg->key_file) - 4), cfg->key_file);
        }
    }
    if (!mkd_file_exists(cfg->ticket_key_file)) {
        if (parent_dir(cfg->ticket_key_file, dir, sizeof dir) == 0 &&
            (r = mkd_mkdirs(dir, 0700)) != 0) {
            mkd_err(0, "%s: %s", dir, strerror(r));
            return -1;
        }
        if (yami_ticket_file_update(cfg->ticket_key_file, 0,
                                    cfg->ticket_keys_keep, &n, err,
                                    sizeof err) != 0) {
            mkd_err(0, "%s", err);
            return -1;
        }
        mkd_info(0, "created ticket-key file %s (share it between nodes; "
                    "rotate with mkd ticket-keys --rotate, then SIGHUP)",
                 cfg->ticket_key_file);
    }
    return 0;
}

static int drop_privileges(const char *user)
{
    struct passwd *pw;

    if (user[0] == '\0') {
        if (geteuid() == 0)
            mkd_warn(0, "running as root: set user = NAME to drop "
                        "privileges after binding");
        return 0;
    }
    if (geteuid() != 0) {
        mkd_warn(0, "user = %s ignored: not started as root", user);
        return 0;
    }
    if ((pw = getpwnam(user)) == NULL) {
        mkd_err(0, "user %s: no such user", user);
        return -1;
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        mkd_err(0, "dropping privileges to %s: %s", user, strerror(errno));
        return -1;
    }
    /* Make sure there is no way back. */
    if (setuid(0) == 0 || geteuid() == 0) {
        mkd_err(0, "privileges could not be dropped for good");
        return -1;
    }
    mkd_info(0, "running as %s (uid %ld)", user, (long)pw->pw_uid);
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The backend the configuration names: the PHP worker pool (the default,
 * serving the hello-world app) or the built-in echo. */
static mkd_backend *make_backend(uv_loop_t *loop, const mkd_config *cfg,
                                 char *err, size_t errlen)
{
    const char *ini[2] = {NULL, NULL};
    char mem[64];
    pegasus_config pc;

    if (strcmp(cfg->backend, "echo") == 0) {
        mkd_backend *b = mkd_echo_new(loop, cfg->echo_delay_ms);
        if (b == NULL)
            snprintf(err, errlen, "out of memory");
        return b;
    }
    pegasus_config_defaults(&pc);
    pc.php = cfg->php;
    pc.arcangelo = cfg->arcangelo;
    pc.app = cfg->app;
    if (cfg->php_memory_limit[0] != '\0') {
        snprintf(mem, sizeof mem, "memory_limit=%s", cfg->php_memory_limit);
        ini[0] = mem;
        pc.php_ini = ini;
    }
    pc.workers_min = cfg->workers ? cfg->workers : uv_available_parallelism();
    pc.workers_max = cfg->workers_max > pc.workers_min ? cfg->workers_max
                                                       : pc.workers_min;
    pc.queue_max = cfg->queue_max;
    pc.queue_timeout_ms = cfg->queue_timeout_ms;
    pc.request_timeout_ms = cfg->request_timeout_ms;
    pc.start_timeout_ms = cfg->worker_start_timeout_ms;
    pc.stop_timeout_ms = cfg->worker_stop_timeout_ms;
    pc.idle_timeout_ms = cfg->worker_idle_timeout_ms;
    pc.max_requests = cfg->worker_max_requests;
    pc.max_lifetime_s = cfg->worker_max_lifetime_s;
    pc.max_rss_kib = cfg->worker_max_rss_kib;
    pc.max_message = cfg->max_message;
    pc.expose_errors = cfg->expose_errors != 0;
    return pegasus_new(loop, &pc, err, errlen);
}

static int serve(cmdline *cl)
{
    mkd_config cfg;
    mk_server_config *scfg = NULL;
    mkd_backend *backend = NULL;
    uv_loop_t loop;
    yugi_server *srv = NULL;
    size_t nk = 0, nt = 0;
    char err[512], threads[16];
    int r, ret = 1, loop_ok = 0, ready_fd = -1;

    if (build_config(cl, &cfg, err, sizeof err) != 0) {
        mkd_err(0, "%s", err);
        return 2;
    }
    mkd_log_set_level(cfg.log_level);
    (void)signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (cfg.threads == 0)
        cfg.threads = uv_available_parallelism();
    /* libuv sizes its pool from the environment on first use. */
    snprintf(threads, sizeof threads, "%u", cfg.threads);
    if (setenv("UV_THREADPOOL_SIZE", threads, 1) != 0)
        goto out;
    if (ensure_keys(&cfg) != 0)
        goto out;
    if (yami_build_server_config(&cfg, &scfg, &nk, &nt, err, sizeof err) !=
        0) {
        mkd_err(0, "%s", err);
        goto out;
    }
    if ((r = uv_loop_init(&loop)) != 0) {
        mkd_err(0, "loop: %s", uv_strerror(r));
        goto out;
    }
    loop_ok = 1;
    if ((backend = make_backend(&loop, &cfg, err, sizeof err)) == NULL) {
        mkd_err(0, "backend %s: %s", cfg.backend, err);
        goto out;
    }
    if ((srv = calloc(1, sizeof *srv)) == NULL) {
        mkd_err(0, "out of memory");
        goto out;
    }
    if ((r = yugi_server_init(srv, &loop, &cfg, scfg, backend)) != 0) {
        mkd_err(0, "start-up failed: %s", uv_strerror(r));
        scfg = NULL; /* the server owns it now */
        backend = NULL;
        yugi_server_abort(srv);
        (void)yugi_server_run(srv);
        loop_ok = 0;
        goto out;
    }
    scfg = NULL;
    backend = NULL;
    srv->load_config = reload_config;
    srv->load_config_arg = cl;
    /* "Ready" means fully started, privileges dropped included, so the
     * port is written only after the drop; the file is opened before it,
     * while its directory may still be writable only by root. */
    if (cfg.ready_file[0] != '\0' &&
        (ready_fd = open(cfg.ready_file, O_WRONLY | O_CREAT | O_TRUNC |
                                             O_CLOEXEC,
                         0644)) < 0)
        mkd_warn(0, "ready_file %s: %s", cfg.ready_file, strerror(errno));
    if (drop_privileges(cfg.user) != 0) {
        yugi_server_abort(srv);
        (void)yugi_server_run(srv);
        loop_ok = 0;
        goto out;
    }
    if (ready_fd >= 0) {
        char text[32];
        int n = snprintf(text, sizeof text, "%u\n", srv->bound_port);
        /* One short write: a reader sees the whole line or nothing. */
        if (n <= 0 || write(ready_fd, text, (size_t)n) != (ssize_t)n)
            mkd_warn(0, "ready_file %s: %s", cfg.ready_file,
                     strerror(errno));
        (void)close(ready_fd);
        ready_fd = -1;
    }
    mkd_info(0, "mkd %s serving (port %u, %zu key(s), %zu ticket key(s), "
                "%u crypto threads, backend %s, data %s)",
             MKD_VERSION, srv->bound_port, nk, nt, cfg.threads, cfg.backend,
             cfg.data_dir);
    ret = yugi_server_run(srv);
    loop_ok = 0;
    mkd_info(0, "exit %d", ret);
out:
    if (ready_fd >= 0)
        (void)close(ready_fd);
    if (backend != NULL)
        backend->ops->free(backend);
    if (loop_ok) {
        (void)uv_run(&loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&loop);
    }
    mk_server_config_unref(scfg);
    free(srv);
    return ret;
}

/* --- operator subcommands ---------------------------------------------- */

static int cmd_keygen(cmdline *cl)
{
    mkd_config cfg;
    char err[512], dir[MKD_PATH_MAX], desc[8192];
    const char *out;
    int r;

    if (build_config(cl, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mkd: %s\n", err);
        return 2;
    }
    out = cl->out ? cl->out : cfg.key_file;
    if (parent_dir(out, dir, sizeof dir) == 0 &&
        (r = mkd_mkdirs(dir, 0700)) != 0) {
        fprintf(stderr, "mkd: %s: %s\n", dir, strerror(r));
        return 1;
    }
    if (yami_keygen_files(out, cl->bits ? cl->bits : 2048, err,
                          sizeof err) != 0 ||
        yami_describe_key(out, desc, sizeof desc, err, sizeof err) != 0) {
        fprintf(stderr, "mkd: %s\n", err);
        return 1;
    }
    fputs(desc, stdout);
    fprintf(stderr, "mkd: private key %s (mode 0600); public key and C array "
                    "beside it (.pub.pem, .pub.h)\n",
            out);
    return 0;
}

static int cmd_pubkey(cmdline *cl)
{
    mkd_config cfg;
    char err[512], desc[8192];

    if (build_config(cl, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mkd: %s\n", err);
        return 2;
    }
    for (char *p = cfg.key_file; *p; p++)
        if (*p == ',') {
            *p = '\0'; /* the first key */
            break;
        }
    if (yami_describe_key(cfg.key_file, desc, sizeof desc, err,
                          sizeof err) != 0) {
        fprintf(stderr, "mkd: %s\n", err);
        return 1;
    }
    fputs(desc, stdout);
    return 0;
}

static int cmd_ticket_keys(cmdline *cl)
{
    mkd_config cfg;
    char err[512], dir[MKD_PATH_MAX];
    size_t n = 0;
    int existed, r;

    if (build_config(cl, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mkd: %s\n", err);
        return 2;
    }
    if (parent_dir(cfg.ticket_key_file, dir, sizeof dir) == 0 &&
        (r = mkd_mkdirs(dir, 0700)) != 0) {
        fprintf(stderr, "mkd: %s: %s\n", dir, strerror(r));
        return 1;
    }
    existed = mkd_file_exists(cfg.ticket_key_file);
    if (yami_ticket_file_update(cfg.ticket_key_file, cl->rotate,
                                cl->keep ? cl->keep : cfg.ticket_keys_keep,
                                &n, err, sizeof err) != 0) {
        fprintf(stderr, "mkd: %s\n", err);
        return 1;
    }
    printf("%s: %s, %zu key(s)%s\n", cfg.ticket_key_file,
           !existed ? "created" : cl->rotate ? "rotated" : "unchanged", n,
           cl->rotate || !existed ? "; send SIGHUP to every mkd using it"
                                  : "");
    return 0;
}

static int cmd_status(cmdline *cl)
{
    mkd_config cfg;
    struct sockaddr_un sa;
    char err[512], buf[4096];
    int fd = -1, ret = 1;
    ssize_t n;

    if (build_config(cl, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mkd: %s\n", err);
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(cfg.control_socket) >= sizeof sa.sun_path) {
        fprintf(stderr, "mkd: control socket path too long\n");
        return 2;
    }
    memcpy(sa.sun_path, cfg.control_socket, strlen(cfg.control_socket));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "mkd: cannot reach %s: %s (is mkd running?)\n",
                cfg.control_socket, strerror(errno));
        goto out;
    }
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            goto out;
    ret = n < 0 ? 1 : 0;
out:
    if (fd >= 0)
        close(fd);
    return ret;
}

static int cmd_config(cmdline *cl)
{
    mkd_config cfg;
    char err[512], buf[8192];

    if (build_config(cl, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mkd: %s\n", err);
        return 2;
    }
    fwrite(buf, 1, mkd_config_dump(&cfg, buf, sizeof buf), stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static char *over[256];
    cmdline cl;
    const char *cmd = "serve";
    int i = 1;

    memset(&cl, 0, sizeof cl);
    cl.over = over;
    if (argc > 1 && argv[1][0] != '-')
        cmd = argv[i++];
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("mkd %s (Megaki protocol %d)\n", MKD_VERSION,
                   MK_PROTOCOL_VERSION);
            return 0;
        } else if (strcmp(a, "-c") == 0 && i + 1 < argc) {
            cl.config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            cl.config_path = a + 9;
        } else if (strcmp(a, "--rotate") == 0) {
            cl.rotate = 1;
        } else if (strncmp(a, "--keep=", 7) == 0) {
            cl.keep = (unsigned)atoi(a + 7);
        } else if (strncmp(a, "--bits=", 7) == 0) {
            cl.bits = (unsigned)atoi(a + 7);
        } else if (strncmp(a, "--out=", 6) == 0) {
            cl.out = a + 6;
        } else if (strncmp(a, "--file=", 7) == 0) {
            static char file_over[MKD_PATH_MAX + 32];
            snprintf(file_over, sizeof file_over, "ticket_key_file=%s",
                     a + 7);
            if (cl.nover < 256)
                over[cl.nover++] = file_over;
        } else if (strncmp(a, "--", 2) == 0 && strchr(a, '=') != NULL &&
                   cl.nover < 256) {
            over[cl.nover++] = argv[i] + 2;
        } else {
            fprintf(stderr, "mkd: unexpected argument \"%s\"\n%s", a,
                    usage_text);
            return 2;
        }
    }
    if (strcmp(cmd, "serve") == 0)
        return serve(&cl);
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(&cl);
    if (strcmp(cmd, "pubkey") == 0)
        return cmd_pubkey(&cl);
    if (strcmp(cmd, "ticket-keys") == 0)
        return cmd_ticket_keys(&cl);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(&cl);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(&cl);
    fprintf(stderr, "mkd: unknown command \"%s\"\n%s", cmd, usage_text);
    return 2;
}
