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
    uint64_t digest;   /* pegasus_command_digest(&pc) */
    int64_t uid, gid;  /* the workers' user and group; -1: the spawner's */
} spawner_settings;

typedef struct spawner_source {
    /* The current settings, valid until the next reload. */
    const spawner_settings *(*current)(void *arg);
    /* Read the configuration again and take it if the new settings'
     * digest is want (what mkd read): MKD_OK; MKD_ERR_CONFIG_CHANGED when
     * it is not; another mkd_err when it cannot be read. On failure the
     * old settings stay. */
    int (*reload)(void *arg, uint64_t want, mkd_diag *d);
    void *arg;
} spawner_source;

/* Serve mkd on fd until it closes its end, then kill the workers and
 * return the process's exit status (0, or 1 after a protocol violation or
 * a system failure). */
int spawner_serve(int fd, const spawner_source *src);

/* --- the client, in mkd ------------------------------------------------------ */

typedef struct spawner spawner;

/* Start the spawner: argv is its whole command line (argv[0] is run;
 * /proc/self/exe for mkd itself), its fd 3 our socket. settings is the
 * digest (pegasus_command_digest) of the worker settings mkd read, which
 * every SPAWN carries: the spawner starts a worker only if its own
 * reading agrees. lost(arg) is called on the loop if it ends before
 * spawner_close. MKD_OK, MKD_ERR_SYSTEM or MKD_ERR_LOOP with the reason
 * in d. */
MKD_MUST_CHECK int spawner_start(uv_loop_t *loop, const char *const *argv,
                                 uint64_t settings, void (*lost)(void *arg),
                                 void *arg, spawner **out, mkd_diag *d);
/* The launcher for Pegasus (pegasus_config.launcher). Its exits stop at
 * spawner_close, but its memory stays until Pegasus releases it
 * (ops->release) as its pool is freed, which may come later. */
pegasus_launcher *spawner_launcher(spawner *s);
/* SIGHUP: ask the spawner to read the configuration again and to take it
 * only if its worker settings' digest is settings (what mkd read now), and
 * wait for its answer (a file read: milliseconds; with a deadline). MKD_OK:
 * both hold the new settings, and SPAWN carries them from now on.
 * MKD_ERR_CONFIG_CHANGED: the spawner read other settings (the file
 * changed between the two readings); MKD_ERR_CONFIG: it could not read
 * it; either way it keeps the old ones, and so must mkd. MKD_ERR_STATE or
 * MKD_ERR_FRAME_MALFORMED: the spawner is lost. The reason in d. */
MKD_MUST_CHECK int spawner_reload(spawner *s, uint64_t settings, mkd_diag *d);
/* Let the spawner go once every worker it started has been reported
 * ended (a few seconds at most), then release everything on the loop.
 * NULL: nothing. */
void spawner_close(spawner *s);

#endif
