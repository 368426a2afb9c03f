/*
 * mkd.h -- the mkd program's own parts (main's room): the command line,
 * building the configuration from it, the daemon (start-up, privileges,
 * signals, reload, shutdown) and the operator subcommands.
 *
 *   main.c      the command line and the subcommand it names
 *   serve.c     `mkd serve`: start-up, wiring the rooms, the loop's end
 *   reload.c    SIGHUP: what a reload re-reads and what it keeps
 *   setup.c     the configuration from file and command line, first-run
 *               keys, privileges, the backend the configuration names
 *   commands.c  keygen, pubkey, ticket-keys, status, config
 *   cmdline.c   the options, read with getopt_long
 *   conftest.c  `mkd config --test`
 *   notify.c    the service manager's readiness protocol
 */
#ifndef MKD_MAIN_H
#define MKD_MAIN_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <uv.h>

#include "backend.h"
#include "control.h"
#include "fastcgi.h"
#include "metrics.h"
#include "mkd_config.h"
#include "yami.h"
#include "pegasus.h"
#include "spawner.h"
#include "yugi.h"

/* The command line, kept for SIGHUP (the file is read again, then the
 * overrides applied again). */
typedef struct mkd_cmdline {
    const char *config_path;
    int nover;
    /* "key=value", each preceded by "--" in text (the spawner is given
     * them back as "--key=value"); key is the table's own spelling. */
    char *over[256];
    char text[16384];
    size_t text_len;
    /* subcommand options (0: not given) */
    int rotate; /* ticket-keys: KEYS_TICKET_ROTATE, _STAGE or _PROMOTE */
    int test;
    unsigned keep;
    unsigned bits;
    const char *out;
} mkd_cmdline;

/* The options a subcommand takes besides -c, --help, --version and the
 * configuration options. */
#define MKD_TAKES_BITS   0x01u /* keygen --bits */
#define MKD_TAKES_OUT    0x02u /* keygen --out */
#define MKD_TAKES_ROTATE 0x04u /* ticket-keys --rotate, --keep, --file */
#define MKD_TAKES_TEST   0x08u /* config --test */

typedef struct mkd_command {
    const char *name;
    int (*run)(const mkd_cmdline *cl);
    unsigned takes; /* MKD_TAKES_* */
    const char *help;
} mkd_command;

/* Exit statuses of every subcommand (docs/MKD.md, Commands). */
enum { MKD_EXIT_OK = 0, MKD_EXIT_FAILED = 1, MKD_EXIT_USAGE = 2 };

/* cmdline.c */
/* Read argv[1..argc) (argv[0] names the subcommand) into cl with
 * getopt_long. MKD_EXIT_OK: run the command; -1: --help or --version was
 * answered, exit 0; MKD_EXIT_USAGE: a bad argument, said on stderr. */
int mkd_cmdline_parse(const mkd_command *cmd, int argc, char **argv,
                      mkd_cmdline *cl);

/* Who runs the application, decided at start-up (see mkd_serve). */
typedef struct mkd_workers {
    int64_t uid, gid;           /* -1: mkd's own */
    pegasus_launcher *launcher; /* the spawner's, or NULL: uv_spawn */
} mkd_workers;

/* notify.c: the service manager's socket ($NOTIFY_SOCKET), or fd -1. */
typedef struct mkd_notifier {
    int fd;
    struct sockaddr_un sa;
    socklen_t len;
} mkd_notifier;

/* Open the socket $NOTIFY_SOCKET names (a warning if it is unusable) and
 * take the variable out of the environment. */
void mkd_notify_open(mkd_notifier *n);
/* Send one notification ("READY=1\nSTATUS=..."); nothing without a
 * socket. */
void mkd_notify(const mkd_notifier *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mkd_notify_close(mkd_notifier *n);
/* CLOCK_MONOTONIC in microseconds (RELOADING=1's MONOTONIC_USEC). */
uint64_t mkd_monotonic_usec(void);

/* The running daemon: every piece of server state, in one place. */
typedef struct mkd_daemon {
    const mkd_cmdline *cl;
    mkd_config cfg;
    uv_loop_t loop;
    yami *yami;
    yugi_server *srv;
    /* Borrowed: the server owns it and frees it at shutdown, so it is
     * valid while !stopping (a reload updates the PHP pool's limits). */
    mkd_backend *backend;
    control *ctl;
    control_sources ctl_src;
    metrics *metrics; /* NULL unless metrics_listen is set */
    metrics_sources metrics_src;
    uint16_t metrics_port; /* for the status; 0: none */
    uv_signal_t sig_term, sig_int, sig_hup;
    spawner *spawner; /* NULL unless workers run through it */
    mkd_workers workers;
    uint64_t reload_failures;
    mkd_notifier notify;
    uv_timer_t ready_timer; /* until the backend can answer: READY=1 */
    int ready; /* 1 READY=1 sent; -1 workers failing, said; 0 starting */
    int stopping;
    int exit_code;
} mkd_daemon;

/* setup.c */
/* Defaults, then the file, then the overrides; then derived paths. */
MKD_MUST_CHECK int mkd_build_config(const mkd_cmdline *cl, mkd_config *c,
                                    mkd_diag *d);
/* Yugi's settings from the configuration. */
void mkd_yugi_config(const mkd_config *c, yugi_config *out);
/* The first run: a key and a ticket-key file where the configuration
 * says, if missing. */
MKD_MUST_CHECK int mkd_ensure_keys(const mkd_config *cfg);
/* Give a file or directory mkd created as root to the user it becomes
 * (nothing to do when not root, or no user is set). */
MKD_MUST_CHECK int mkd_give_to_user(const mkd_config *cfg, const char *path);
/* The protocol configuration from the key files and the limits. */
MKD_MUST_CHECK int mkd_load_keys(const mkd_config *cfg, mk_server_config **out,
                                 size_t *nk, size_t *nt, mkd_diag *d);
/* The PHP pool's settings from the configuration; ps holds the php.ini
 * settings and environment entries pc points to ("key=value"), and
 * digest is pegasus_command_digest of pc. An env_pass variable points into
 * the process's environment; one that is not set is left out (see
 * mkd_warn_env_pass). env values are secrets: mkd_pegasus_settings_wipe
 * when done. */
typedef struct mkd_pegasus_settings {
    pegasus_config pc;
    uint64_t digest;
    char mem[64];
    const char *ini[MKD_PHP_INI_MAX + 2];
    const char *admin[MKD_PHP_INI_MAX + 1];
    const char *env[MKD_ENV_MAX + 1];
    char kv[MKD_KV_MAX][MKD_KV_KEY_MAX + MKD_KV_VALUE_MAX + 1];
} mkd_pegasus_settings;
void mkd_pegasus_settings_from(const mkd_config *cfg, mkd_pegasus_settings *ps);
void mkd_pegasus_settings_wipe(mkd_pegasus_settings *ps);
/* Warn, by name, about env_pass variables that are not in mkd's
 * environment (the workers do not get them). */
void mkd_warn_env_pass(const mkd_config *cfg);

/* The workers' user and group when mkd runs as root: worker_user (nobody
 * by default) and worker_group (that user's group by default), never
 * mkd's own user. -1 each when mkd is not root. */
MKD_MUST_CHECK int mkd_worker_ids(const mkd_config *cfg, int64_t *uid,
                                  int64_t *gid, mkd_diag *d);
/* The FastCGI backend's settings (pointing into cfg). */
void mkd_fastcgi_settings_from(const mkd_config *cfg, fastcgi_config *fc);
/* The backend the configuration names: the PHP worker pool, FastCGI, or
 * echo. */
MKD_MUST_CHECK int mkd_make_backend(uv_loop_t *loop, const mkd_config *cfg,
                                    const mkd_workers *wk, mkd_backend **out,
                                    mkd_diag *d);
/* How far the backend is from answering: 1 a worker is ready (echo: at
 * once), 0 still starting, -1 its workers end before they are ready. */
int mkd_backend_readiness(mkd_backend *b);
MKD_MUST_CHECK int mkd_drop_privileges(const char *user);
void mkd_raise_nofile(void);

/* conftest.c: `mkd config --test`; MKD_EXIT_OK or MKD_EXIT_FAILED, each
 * problem on stderr. */
int mkd_config_test(const mkd_config *cfg);

/* serve.c */
int mkd_serve(const mkd_cmdline *cl);

/* reload.c */
void mkd_reload(mkd_daemon *dm);

/* spawnerd.c: `mkd spawner`, the spawner process (started by mkd). */
int mkd_cmd_spawner(const mkd_cmdline *cl);

/* commands.c */
int mkd_cmd_keygen(const mkd_cmdline *cl);
int mkd_cmd_pubkey(const mkd_cmdline *cl);
int mkd_cmd_ticket_keys(const mkd_cmdline *cl);
int mkd_cmd_status(const mkd_cmdline *cl);
int mkd_cmd_config(const mkd_cmdline *cl);

#endif
