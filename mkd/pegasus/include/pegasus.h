/*
 * pegasus.h -- Pegasus, MKD's PHP worker pool, as an mkd_backend.
 *
 * Pegasus runs a pool of worker processes (each the PHP CLI running
 * Arcangelo, arcangelo/bin/arcangelo.php, which loads the application once)
 * and hands them plaintext requests over the worker protocol
 * (docs/WORKER-PROTOCOL.md), one request in flight per worker. It never
 * sees keys or ciphertext; workers are exec'd fresh (uv_spawn), in a new
 * session, with a clean environment, in the application's directory.
 *
 * Everything runs on the loop thread given to pegasus_new, like every
 * mkd_backend (backend.h). Guarantees, beyond backend.h's:
 *   - every accepted request is answered exactly once (unless cancelled):
 *     by the application, or with a status when its worker times out
 *     (MKD_BACKEND_TIMEOUT), crashes (MKD_BACKEND_INTERNAL "worker
 *     crashed"), waits too long in the queue (MKD_BACKEND_OVERLOADED), or
 *     the backend is freed before it ran (MKD_BACKEND_SHUTDOWN);
 *   - done() is never called from inside submit(), cancel(), reload(),
 *     drain() or status(); it may be called from free() (see there);
 *   - a worker is only recycled between requests; a request is never
 *     failed by a reload or a recycle.
 *
 * submit() returns MKD_BACKEND_OK or, without calling done:
 *   OVERLOADED  the queue is full, or the application cannot start (crash
 *               loop) and no worker is ready;
 *   TOO_LARGE   the body is over max_message;
 *   SHUTDOWN    drain() was called;
 *   INTERNAL    out of memory.
 *
 * free(): answers anything still outstanding with MKD_BACKEND_SHUTDOWN
 * (cancel first what must not be answered), kills the workers with SIGKILL and
 * closes its handles; the memory goes when the loop has run their close
 * callbacks (run the loop once more, as for any libuv teardown). Never call
 * free() from inside a done callback.
 *
 * The process must ignore SIGPIPE (a worker that dies while Pegasus writes
 * to it would otherwise kill MKD); MKD does so for its sockets anyway.
 *
 * Logs go through mkd_log (mkd_log.h). Worker output (stdout and stderr,
 * merged) is logged line by line as "pegasus w<slot> pid <pid>: <line>",
 * tagged with the connection id of the request the worker was running, if
 * any.
 */
#ifndef PEGASUS_H
#define PEGASUS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "backend.h"
#include "mkd_compiler.h"
#include "mkd_err.h"

typedef struct pegasus_launcher pegasus_launcher;

typedef struct pegasus_config {
    /* Paths. arcangelo and app are required; relative paths are taken
     * from MKD's working directory at pegasus_new. The app path is
     * resolved again (realpath) for each worker spawned, so a reload after
     * a symlink swap (current -> release-N) picks up the new release. */
    const char *php;       /* PHP CLI binary; default "/usr/bin/php" */
    const char *arcangelo; /* arcangelo/bin/arcangelo.php */
    const char *app;       /* the application's PHP file */
    /* Extra php.ini settings, "key=value", passed as -d; NULL-terminated
     * array or NULL. php_admin: the same, and Arcangelo restores any of
     * them the application changed (ini_set), after each request
     * (--ini-admin). Together at most PEGASUS_INI_MAX; every directive
     * named must exist in PHP, or the worker does not start (--ini).
     * Extra environment entries ("KEY=value") for workers, NULL-terminated
     * or NULL, at most PEGASUS_ENV_MAX; workers get only PATH (unless
     * these give one) and these. */
    const char *const *php_ini;
    const char *const *php_admin;
    const char *const *env;

    uint32_t workers_min;      /* default 2; at least 1 */
    uint32_t workers_max;      /* default workers_min (a fixed pool) */
    uint32_t queue_max;        /* requests waiting for a worker; default 256 */
    uint32_t queue_timeout_ms; /* longest wait for a worker; 0 = the
                                    request timeout */
    uint32_t request_timeout_ms; /* per request, from dispatch; default 30000 */
    uint32_t start_timeout_ms;   /* spawn to HELLO; default 10000 */
    uint32_t stop_timeout_ms;    /* SHUTDOWN to SIGKILL; default 5000 */
    uint32_t idle_timeout_ms;    /* a worker above workers_min idle this
                                    long retires; default 10000 */
    /* Soft limits, applied only between requests, each worker's own value
     * drawn 80..100% of the configured one so that a pool started together
     * does not recycle together; 0 = none. */
    uint32_t max_requests;
    uint32_t max_lifetime_s;
    uint32_t max_rss_kib; /* resident set, from /proc/PID/statm */
    uint32_t max_message; /* largest request and response body;
                                    default 1 MiB */
    /* Crash loop: this many workers dying before they are ready within
     * the window stop spawning for the pause. Defaults 5, 10000, 30000. */
    uint32_t crash_loop_failures;
    uint32_t crash_loop_window_ms;
    uint32_t crash_loop_pause_ms;
    int expose_errors; /* send exception messages to clients */
    /* Run workers as this user/group (uv_spawn sets them: MKD must still
     * be root when a worker is spawned); -1 keeps MKD's. */
    int64_t uid, gid;
    /* Start workers through this launcher instead of uv_spawn (NULL:
     * uv_spawn). Borrowed; it must outlive the pool. */
    pegasus_launcher *launcher;
} pegasus_config;

/*
 * Starting workers elsewhere. A launcher starts the worker of a slot with
 * the pool's command (pegasus_command_build on the same configuration),
 * gives back its pid and the two ends Pegasus reads and writes, and
 * reports its exit. mkd's spawner is one: a privileged process that runs
 * the workers as another user once MKD itself no longer can.
 *
 * spawn: synchronous, like uv_spawn (fork and exec), with --max-message
 * set to max_message (the limit Pegasus holds that worker to, which a
 * reload may have changed): MKD_OK with *pid,
 * *ipc_fd (the worker's fd 3, a stream socket) and *out_fd (the read end
 * of its merged stdout and stderr), both Pegasus's to own and close; or an
 * mkd_err. kill: signal the worker's process group (SIGTERM or SIGKILL).
 * The launcher calls exited(exited_arg, ...) on the loop thread, never
 * from inside spawn or kill, when a worker it started has ended; Pegasus
 * sets exited and exited_arg at pegasus_new. release: Pegasus is done
 * with the launcher (called once, as the pool is freed): it calls and
 * reads nothing more, and the launcher may go. A pool can outlive the
 * launcher's owner closing it (at shutdown both go on the loop, in either
 * order), so a launcher stays valid until released.
 */
typedef struct pegasus_launcher_ops {
    int (*spawn)(pegasus_launcher *l, unsigned slot, uint32_t max_message,
                 int *pid, int *ipc_fd, int *out_fd);
    int (*kill)(pegasus_launcher *l, int pid, int sig);
    void (*release)(pegasus_launcher *l);
} pegasus_launcher_ops;

struct pegasus_launcher {
    const pegasus_launcher_ops *ops;
    void (*exited)(void *arg, int pid, int64_t status, int term_signal);
    void *exited_arg;
};

/* Room for a worker's command: php, "-d" and a setting per php_ini and
 * php_admin entry (at most PEGASUS_INI_MAX together), arcangelo and its
 * arguments, the application. */
#define PEGASUS_INI_MAX   30
#define PEGASUS_ENV_MAX   30
#define PEGASUS_ARGV_MAX  (2 * PEGASUS_INI_MAX + 16)
#define PEGASUS_ENVP_MAX  (PEGASUS_ENV_MAX + 2)
#define PEGASUS_NAMES_MAX (PEGASUS_INI_MAX * 64 + 16)

typedef struct pegasus_command {
    const char *argv[PEGASUS_ARGV_MAX]; /* NULL-terminated */
    const char *envp[PEGASUS_ENVP_MAX]; /* NULL-terminated */
    char *app;                          /* the application, resolved */
    char *dir;                          /* its directory: the cwd */
    char slot_arg[32];
    char max_message_arg[32];
    char ini_arg[PEGASUS_NAMES_MAX];   /* --ini=NAME,... */
    char admin_arg[PEGASUS_NAMES_MAX]; /* --ini-admin=NAME,... */
} pegasus_command;

/* The command the worker of slot runs: php, its -d settings, Arcangelo
 * and its arguments, the application's path resolved now (so a reload
 * after a symlink swap picks up the new release), the environment (PATH
 * and cfg->env only) and the working directory. Strings borrow from cfg
 * until pegasus_command_free. MKD_OK, MKD_ERR_CONFIG (the application
 * cannot be resolved, or more settings than fit; the reason in d) or
 * MKD_ERR_NOMEM. */
MKD_MUST_CHECK int pegasus_command_build(const pegasus_config *cfg,
                                         unsigned slot, pegasus_command *c,
                                         mkd_diag *d);
void pegasus_command_free(pegasus_command *c);
/* A fingerprint of everything pegasus_command_build takes from cfg but
 * max_message: php, arcangelo, app (as given, not resolved), the php.ini
 * settings, the environment and expose_errors. Two processes that read
 * the configuration each on their own (mkd and its spawner) compare it to
 * know that they would start the same command. Not a cryptographic hash,
 * and computed over secrets (env values): never log it. */
uint64_t pegasus_command_digest(const pegasus_config *cfg);

/* Fill the defaults (paths NULL). */
void pegasus_config_defaults(pegasus_config *cfg);

/*
 * Create the pool and start spawning workers_min workers (asynchronously:
 * requests submitted before they are ready wait in the queue). The config
 * and the strings it points to are copied. MKD_OK; MKD_ERR_BACKEND for a
 * bad configuration or a missing file (the reason in d); MKD_ERR_NOMEM.
 */
MKD_MUST_CHECK int pegasus_new(uv_loop_t *loop, const pegasus_config *cfg,
                               mkd_backend **out, mkd_diag *d);

/*
 * A new max_message for b (a pool from pegasus_new), as a reload may bring:
 * requests submitted from now on are held to it, those already submitted
 * keep the limit they were taken under, and workers spawned from now on are
 * started with it. Workers already running keep their own: call reload()
 * next so that they are replaced (until then, a request only goes to a
 * worker whose own limit it fits, and an answer is bounded by both the
 * worker's and the request's limit: one over the request's gets
 * MKD_BACKEND_APPLICATION "response too large"). MKD_OK; MKD_ERR_ARG if b
 * is not a Pegasus pool or max_message is not 1 .. 256 MiB.
 */
MKD_MUST_CHECK int pegasus_set_max_message(mkd_backend *b,
                                           uint32_t max_message);

/*
 * New settings for b (a pool from pegasus_new), as a reload brings: every
 * field of cfg but uid, gid and launcher (fixed for the pool's life). The
 * pool switches whole or not at all: on an error nothing changed. From
 * now on the new values hold for what starts: workers spawned (their
 * command, their limits), requests submitted (max_message, queue_max),
 * requests dispatched (request_timeout_ms), the queue's deadlines; what
 * runs finishes as it started. Call reload() next: it starts a new
 * generation, with these settings, and retires the old one as the new
 * one becomes ready, without failing a request. MKD_OK; MKD_ERR_BACKEND
 * (a bad setting, a missing file: the reason in d); MKD_ERR_NOMEM;
 * MKD_ERR_ARG if b is not a Pegasus pool.
 */
MKD_MUST_CHECK int pegasus_reconfigure(mkd_backend *b,
                                       const pegasus_config *cfg, mkd_diag *d);
/* The checks pegasus_new and pegasus_reconfigure make (the settings'
 * ranges, the files there), alone: MKD_OK or MKD_ERR_BACKEND. */
MKD_MUST_CHECK int pegasus_config_check(const pegasus_config *cfg, mkd_diag *d);

#endif /* PEGASUS_H */
