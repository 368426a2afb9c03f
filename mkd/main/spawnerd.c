/*
 * spawnerd.c -- `mkd spawner`: the spawner process (spawner.h), started by
 * mkd itself with the same configuration arguments and its socket on fd 3.
 * It reads the configuration as mkd does, builds the workers' settings from
 * it (the command, the user and group), and serves until mkd goes.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "mkd.h"
#include "mkd_log.h"

typedef struct spawnerd {
    const mkd_cmdline *cl;
    mkd_config cfg;
    mkd_pegasus_settings ps;
    spawner_settings s;
} spawnerd;

/* The settings from a configuration just built into sd->cfg. */
static int settle(spawnerd *sd, mkd_diag *d)
{
    int r;

    mkd_pegasus_settings_from(&sd->cfg, &sd->ps);
    sd->s.pc = sd->ps.pc;
    if ((r = mkd_worker_ids(&sd->cfg, &sd->s.uid, &sd->s.gid, d)) != MKD_OK)
        return r;
    mkd_log_set_level(sd->cfg.log_level);
    mkd_log_set_format(sd->cfg.log_format);
    return MKD_OK;
}

static const spawner_settings *current(void *arg)
{
    return &((spawnerd *)arg)->s;
}

/* SIGHUP reached mkd: read the configuration again; keep the old one if
 * that fails. The workers' user and group are fixed for the process, as
 * mkd's own user is (mkd warns when they changed). */
static int reload(void *arg, mkd_diag *d)
{
    spawnerd *sd = arg;
    mkd_config next;
    int r;

    if ((r = mkd_build_config(sd->cl, &next, d)) != MKD_OK)
        return r;
    memcpy(next.worker_user, sd->cfg.worker_user, sizeof next.worker_user);
    memcpy(next.worker_group, sd->cfg.worker_group, sizeof next.worker_group);
    sd->cfg = next;
    return settle(sd, d);
}

/* fd 3 must be mkd's end of a SOCK_SEQPACKET pair: anything else means
 * someone ran this by hand. */
static int is_our_socket(void)
{
    int type = 0;
    socklen_t len = sizeof type;

    return getsockopt(SPAWNER_FD, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
           type == SOCK_SEQPACKET;
}

int mkd_cmd_spawner(const mkd_cmdline *cl)
{
    spawnerd sd;
    spawner_source src = {current, reload, &sd};
    mkd_diag d;
    int r;

    if (!is_our_socket()) {
        fprintf(stderr, "mkd: `mkd spawner` is started by mkd itself\n");
        return 2;
    }
    memset(&sd, 0, sizeof sd);
    sd.cl = cl;
    if ((r = mkd_build_config(cl, &sd.cfg, &d)) != MKD_OK ||
        (r = settle(&sd, &d)) != MKD_OK) {
        mkd_error(0, "spawner: %s", mkd_diag_text(&d, r));
        return 1;
    }
    return spawner_serve(SPAWNER_FD, &src);
}
