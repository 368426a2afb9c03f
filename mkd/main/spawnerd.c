/*
 * spawnerd.c -- `mkd spawner`: the spawner process (spawner.h), started by
 * mkd itself with the same configuration arguments and its socket on fd 3.
 * It reads the configuration as mkd does, builds the workers' settings from
 * it (the command, the user and group), and serves until mkd goes.
 *
 * A reload reads the configuration into the slot not in use and switches
 * to it only if mkd read the same worker settings (their digest), so the
 * settings in force are always whole, and always mkd's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mkd.h"
#include "mkd_log.h"
#include "mkd_util.h"

/* One reading of the configuration: the settings point into it. */
typedef struct reading {
    mkd_config cfg;
    mkd_pegasus_settings ps;
    spawner_settings s;
} reading;

typedef struct spawnerd {
    const mkd_cmdline *cl;
    reading r[2];
    int cur; /* the reading in force */
} spawnerd;

/* The settings from a configuration just built into rd->cfg. */
static int settle(reading *rd, mkd_diag *d)
{
    int r;

    mkd_pegasus_settings_from(&rd->cfg, &rd->ps);
    rd->s.pc = rd->ps.pc;
    rd->s.digest = rd->ps.digest;
    if ((r = mkd_worker_ids(&rd->cfg, &rd->s.uid, &rd->s.gid, d)) != MKD_OK)
        return r;
    return MKD_OK;
}

static const spawner_settings *current(void *arg)
{
    spawnerd *sd = arg;

    return &sd->r[sd->cur].s;
}

/* SIGHUP reached mkd: read the configuration again, and take it if mkd
 * read the same worker settings (want); keep the old one otherwise. The
 * workers' user and group are fixed for the process, as mkd's own user is
 * (a reload that changes them is refused by mkd). */
static int reload(void *arg, uint64_t want, mkd_diag *d)
{
    spawnerd *sd = arg;
    reading *old = &sd->r[sd->cur], *next = &sd->r[!sd->cur];
    int r;

    mkd_wipe(next, sizeof *next);
    if ((r = mkd_build_config(sd->cl, &next->cfg, d)) != MKD_OK)
        return r;
    memcpy(next->cfg.worker_user, old->cfg.worker_user,
           sizeof next->cfg.worker_user);
    memcpy(next->cfg.worker_group, old->cfg.worker_group,
           sizeof next->cfg.worker_group);
    if ((r = settle(next, d)) != MKD_OK)
        return r;
    if (next->s.digest != want)
        return mkd_fail(d, MKD_ERR_CONFIG_CHANGED,
                        "the worker settings read now are not mkd's (the "
                        "configuration changed between the two readings)");
    sd->cur = !sd->cur;
    mkd_wipe(old, sizeof *old); /* env values are secrets */
    mkd_log_set_level(next->cfg.log_level);
    mkd_log_set_format(next->cfg.log_format);
    return MKD_OK;
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
    spawnerd *sd;
    spawner_source src = {current, reload, NULL};
    mkd_diag d;
    int r, ret = 1;

    if (!is_our_socket()) {
        fprintf(stderr, "mkd: `mkd spawner` is started by mkd itself\n");
        return 2;
    }
    if ((sd = calloc(1, sizeof *sd)) == NULL) {
        mkd_error(0, "spawner: out of memory");
        return 1;
    }
    sd->cl = cl;
    src.arg = sd;
    if ((r = mkd_build_config(cl, &sd->r[0].cfg, &d)) != MKD_OK ||
        (r = settle(&sd->r[0], &d)) != MKD_OK)
        mkd_error(0, "spawner: %s", mkd_diag_text(&d, r));
    else {
        mkd_log_set_level(sd->r[0].cfg.log_level);
        mkd_log_set_format(sd->r[0].cfg.log_format);
        ret = spawner_serve(SPAWNER_FD, &src);
    }
    mkd_wipe(sd, sizeof *sd);
    free(sd);
    return ret;
}
