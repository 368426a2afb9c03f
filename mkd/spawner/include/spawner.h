/*
 * spawner.h -- the spawner: a small privileged process that starts the
 * PHP workers as their own user on behalf of an mkd that no longer can.
 *
 * mkd started as root binds its sockets, loads its keys and then runs as
 * `user` for good; the application must run as yet another user
 * (`worker_user`), which cannot read the keys nor signal or trace mkd.
 * Only root can start processes as another user, so before it drops its
 * privileges mkd starts the spawner: itself again (/proc/self/exe
 * spawner), exec'd fresh so that nothing of mkd's memory is in it, talking
 * to mkd over a SOCK_SEQPACKET socket pair on its fd 3
 * (spawner_msg.h). The spawner holds no key and reads no key file. It
 * builds every worker's command itself, from its own reading of the
 * configuration (pegasus_command_build), so the most mkd can ask of it is
 * "start the worker of slot N", "signal worker P (one it started) with
 * SIGTERM or SIGKILL" and "read the configuration again". It reports each
 * worker's exit. When mkd goes (its end of the socket closes), the spawner
 * kills every worker it started and exits.
 *
 * The client side (spawner_start and the rest) runs on mkd's libuv loop
 * and is a pegasus_launcher: Pegasus starts its workers through it.
 */
#ifndef SPAWNER_H
#define SPAWNER_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stdint.h>

#include <uv.h>

#include "pegasus.h"

/* The fd the spawner process talks to mkd on. */
#define SPAWNER_FD 3

/* --- the spawner process -------------------------------------------------- */

/* What the spawner starts workers with. */
typedef struct spawner_settings {
    pegasus_config pc; /* the command: php, ini, arcangelo, app, env,
                          max_message, expose_errors */
    int64_t uid, gid;  /* the workers' user and group; -1: the spawner's */
} spawner_settings;

typedef struct spawner_source {
    /* The current settings, valid until the next reload. */
    const spawner_settings *(*current)(void *arg);
    /* Read the configuration again; on failure the old settings stay. */
    int (*reload)(void *arg, mkd_diag *d);
    void *arg;
} spawner_source;

/* Serve mkd on fd until it closes its end, then kill the workers and
 * return the process's exit status (0, or 1 after a protocol violation or
 * a system failure). */
int spawner_serve(int fd, const spawner_source *src);

/* --- the client, in mkd ------------------------------------------------------ */

typedef struct spawner spawner;

/* Start the spawner: argv is its whole command line (argv[0] is run;
 * /proc/self/exe for mkd itself), its fd 3 our socket. lost(arg) is called
 * on the loop if it ends before spawner_close. MKD_OK, MKD_ERR_SYSTEM or
 * MKD_ERR_LOOP with the reason in d. */
MKD_MUST_CHECK int spawner_start(uv_loop_t *loop, const char *const *argv,
                                 void (*lost)(void *arg), void *arg,
                                 spawner **out, mkd_diag *d);
/* The launcher for Pegasus (pegasus_config.launcher). Its exits stop at
 * spawner_close, but its memory stays until Pegasus releases it
 * (ops->release) as its pool is freed, which may come later. */
pegasus_launcher *spawner_launcher(spawner *s);
/* Ask the spawner to read the configuration again (SIGHUP). */
MKD_MUST_CHECK int spawner_reload(spawner *s);
/* Let the spawner go once every worker it started has been reported
 * ended (a few seconds at most), then release everything on the loop.
 * NULL: nothing. */
void spawner_close(spawner *s);

#endif
