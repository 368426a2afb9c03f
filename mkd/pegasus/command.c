/*
 * command.c -- the command line a worker is started with (pegasus.h),
 * built in one place for both ways of starting one: Pegasus's own
 * uv_spawn, and a launcher that starts workers elsewhere (mkd's spawner,
 * which runs them as another user).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pegasus.h"

/* The application, resolved for every spawn (symlink deploys), and its
 * directory, the worker's working directory. */
static int resolve_app(const char *app, pegasus_command *c, mkd_diag *d)
{
    char *slash;

    if ((c->app = realpath(app, NULL)) == NULL)
        return mkd_fail(d, errno == ENOMEM ? MKD_ERR_NOMEM : MKD_ERR_CONFIG,
                        "pegasus: application %s: %s", app, strerror(errno));
    if ((c->dir = strdup(c->app)) == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "pegasus: out of memory");
    slash = strrchr(c->dir, '/');
    if (slash == c->dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    return MKD_OK;
}

int pegasus_command_build(const pegasus_config *cfg, unsigned slot,
                          pegasus_command *c, mkd_diag *d)
{
    unsigned na = 0, ne = 0;
    int r;

    memset(c, 0, sizeof *c);
    if ((r = resolve_app(cfg->app, c, d)) != MKD_OK)
        goto fail;
    (void)snprintf(c->slot_arg, sizeof c->slot_arg, "--worker=%u", slot);
    (void)snprintf(c->max_message_arg, sizeof c->max_message_arg,
                   "--max-message=%" PRIu32, cfg->max_message);
    c->argv[na++] = cfg->php;
    for (size_t i = 0; cfg->php_ini != NULL && cfg->php_ini[i] != NULL &&
                       na + 2 < PEGASUS_ARGV_MAX - 8;
         i++) {
        c->argv[na++] = "-d";
        c->argv[na++] = cfg->php_ini[i];
    }
    c->argv[na++] = cfg->arcangelo;
    c->argv[na++] = c->max_message_arg;
    c->argv[na++] = c->slot_arg;
    if (cfg->expose_errors)
        c->argv[na++] = "--expose-errors";
    c->argv[na++] = "--";
    c->argv[na++] = c->app;
    c->argv[na] = NULL;
    /* Workers get PATH and what the configuration gives them, nothing of
     * MKD's own environment. */
    c->envp[ne++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    for (size_t i = 0;
         cfg->env != NULL && cfg->env[i] != NULL && ne + 1 < PEGASUS_ENVP_MAX;
         i++)
        c->envp[ne++] = cfg->env[i];
    c->envp[ne] = NULL;
    return MKD_OK;
fail:
    pegasus_command_free(c);
    return r;
}

void pegasus_command_free(pegasus_command *c)
{
    free(c->app);
    free(c->dir);
    c->app = c->dir = NULL;
}
