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

#include "mkd_util.h"
#include "pegasus.h"

#define DEFAULT_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

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

static size_t list_len(const char *const *list)
{
    size_t n = 0;

    while (list != NULL && list[n] != NULL)
        n++;
    return n;
}

/* "-d", "key=value" for each entry of list, and the keys, comma-separated,
 * after prefix in names ("" when the list is empty). */
static void put_ini(pegasus_command *c, unsigned *na, const char *const *list,
                    const char *prefix, char *names, size_t cap)
{
    mkd_text t;

    mkd_text_init(&t, names, cap);
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        size_t klen = strcspn(list[i], "=");
        c->argv[(*na)++] = "-d";
        c->argv[(*na)++] = list[i];
        mkd_text_put(&t, "%s%.*s", i == 0 ? prefix : ",", (int)klen, list[i]);
    }
}

/* PATH and cfg->env: nothing of MKD's own environment. A PATH in cfg->env
 * replaces the default one. */
static void put_env(const pegasus_config *cfg, pegasus_command *c)
{
    unsigned ne = 0;
    int has_path = 0;

    for (size_t i = 0; cfg->env != NULL && cfg->env[i] != NULL; i++)
        has_path |= strncmp(cfg->env[i], "PATH=", 5) == 0;
    if (!has_path)
        c->envp[ne++] = DEFAULT_PATH;
    for (size_t i = 0; cfg->env != NULL && cfg->env[i] != NULL; i++)
        c->envp[ne++] = cfg->env[i];
    c->envp[ne] = NULL;
}

int pegasus_command_build(const pegasus_config *cfg, unsigned slot,
                          pegasus_command *c, mkd_diag *d)
{
    unsigned na = 0;
    int r;

    memset(c, 0, sizeof *c);
    if (list_len(cfg->php_ini) + list_len(cfg->php_admin) > PEGASUS_INI_MAX ||
        list_len(cfg->env) > PEGASUS_ENV_MAX) {
        r = mkd_fail(d, MKD_ERR_CONFIG,
                     "pegasus: at most %d php.ini settings and %d environment "
                     "entries",
                     PEGASUS_INI_MAX, PEGASUS_ENV_MAX);
        goto fail;
    }
    if ((r = resolve_app(cfg->app, c, d)) != MKD_OK)
        goto fail;
    (void)snprintf(c->slot_arg, sizeof c->slot_arg, "--worker=%u", slot);
    (void)snprintf(c->max_message_arg, sizeof c->max_message_arg,
                   "--max-message=%" PRIu32, cfg->max_message);
    c->argv[na++] = cfg->php;
    put_ini(c, &na, cfg->php_ini, "--ini=", c->ini_arg, sizeof c->ini_arg);
    put_ini(c, &na, cfg->php_admin, "--ini-admin=", c->admin_arg,
            sizeof c->admin_arg);
    c->argv[na++] = cfg->arcangelo;
    c->argv[na++] = c->max_message_arg;
    c->argv[na++] = c->slot_arg;
    if (cfg->expose_errors)
        c->argv[na++] = "--expose-errors";
    if (c->ini_arg[0] != '\0')
        c->argv[na++] = c->ini_arg;
    if (c->admin_arg[0] != '\0')
        c->argv[na++] = c->admin_arg;
    c->argv[na++] = "--";
    c->argv[na++] = c->app;
    c->argv[na] = NULL;
    put_env(cfg, c);
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

/* FNV-1a, 64 bits: enough to tell two readings of a file apart. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* A string with its length in front, so that no two lists of strings
 * hash the same bytes. */
static uint64_t fnv_str(uint64_t h, const char *s)
{
    uint64_t n = s != NULL ? strlen(s) + 1 : 0;

    h = fnv(h, &n, sizeof n);
    return s != NULL ? fnv(h, s, (size_t)n) : h;
}

static uint64_t fnv_list(uint64_t h, const char *const *list)
{
    uint64_t n = list_len(list);

    h = fnv(h, &n, sizeof n);
    for (size_t i = 0; i < n; i++)
        h = fnv_str(h, list[i]);
    return h;
}

uint64_t pegasus_command_digest(const pegasus_config *cfg)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uint8_t expose = cfg->expose_errors != 0;

    h = fnv_str(h, cfg->php);
    h = fnv_str(h, cfg->arcangelo);
    h = fnv_str(h, cfg->app);
    h = fnv_list(h, cfg->php_ini);
    h = fnv_list(h, cfg->php_admin);
    h = fnv_list(h, cfg->env);
    return fnv(h, &expose, 1);
}
