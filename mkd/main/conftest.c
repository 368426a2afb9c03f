/*
 * conftest.c -- `mkd config --test`: check a configuration as `mkd serve`
 * would start with it, without serving, binding for good or writing a
 * file: the key and ticket-key files (read and permission-checked as at
 * start-up), the users, the listen addresses, and one PHP worker started
 * by Pegasus to load the application. Every problem is one line on
 * stderr; the last line says whether the configuration is OK.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"
#include "mkd.h"
#include "mkd_log.h"
#include "mkd_util.h"

/* what: a prefix, or NULL when the message names its option. */
static void problem(int *n, const char *what, const mkd_diag *d, int r)
{
    fprintf(stderr, "mkd: config --test: %s%s%s\n", what ? what : "",
            what ? ": " : "", mkd_diag_text(d, r));
    (*n)++;
}

/* A file serve creates on its first start. */
static void note_missing(const char *opt, const char *path)
{
    fprintf(stderr,
            "mkd: config --test: %s %s does not exist yet; mkd serve "
            "creates it on its first start\n",
            opt, path);
}

/* Each of the comma-separated key files, read as at start-up. */
static void check_key_files(const char *list, int *n)
{
    char paths[MKD_PATH_MAX], desc[8192], *save = NULL, *p;
    mkd_diag d;
    int r;

    snprintf(paths, sizeof paths, "%s", list);
    for (p = strtok_r(paths, ",", &save); p != NULL;
         p = strtok_r(NULL, ",", &save))
        if ((r = keys_describe(p, desc, sizeof desc, &d)) != MKD_OK)
            problem(n, "keys", &d, r);
}

/* The files serve reads at start-up. Missing default files are what the
 * first `mkd serve` generates: said, not failed, and not generated here. */
static void check_keys(const mkd_config *cfg, int *n)
{
    int key_missing = !cfg->key_file_set && !mkd_file_exists(cfg->key_file);
    int tk_missing = !mkd_file_exists(cfg->ticket_key_file);
    mk_server_config *sc = NULL;
    mk_ticket_key tk[MK_TICKET_KEYS_MAX];
    size_t nt = 0;
    mkd_diag d;
    int r;

    if (key_missing)
        note_missing("key_file", cfg->key_file);
    if (tk_missing)
        note_missing("ticket_key_file", cfg->ticket_key_file);
    if (!key_missing && !tk_missing) {
        if ((r = mkd_load_keys(cfg, &sc, NULL, NULL, &d)) != MKD_OK)
            problem(n, "keys", &d, r);
        mk_server_config_unref(sc);
    } else if (!key_missing) {
        check_key_files(cfg->key_file, n);
    } else if (!tk_missing) {
        if ((r = keys_ticket_file_read(cfg->ticket_key_file, tk,
                                       MK_TICKET_KEYS_MAX, &nt, &d)) != MKD_OK)
            problem(n, "ticket keys", &d, r);
        mkd_wipe(tk, sizeof tk);
    }
}

/* Every user and group the configuration names exists, whether or not
 * this process could become them; as root, also the rules serve applies
 * to the workers' user. */
static void check_users(const mkd_config *cfg, int *n, mkd_workers *wk)
{
    const struct {
        const char *opt, *name;
        int group;
    } names[] = {{"user", cfg->user, 0},
                 {"worker_user", cfg->worker_user, 0},
                 {"worker_group", cfg->worker_group, 1}};
    mkd_diag d;
    int r, bad = 0;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *name = names[i].name;
        if (name[0] == '\0' ||
            (names[i].group ? getgrnam(name) != NULL : getpwnam(name) != NULL))
            continue;
        fprintf(stderr, "mkd: config --test: %s %s: no such %s\n", names[i].opt,
                name, names[i].group ? "group" : "user");
        bad++;
    }
    if (bad == 0 && (r = mkd_worker_ids(cfg, &wk->uid, &wk->gid, &d)) != MKD_OK)
        problem(n, "workers", &d, r);
    *n += bad;
}

static void check_listen(const mkd_config *cfg, int *n)
{
    mkd_diag d;
    int r;

    if ((r = yugi_listen_check(cfg->listen, (uint16_t)cfg->port, &d)) != MKD_OK)
        problem(n, NULL, &d, r);
}

/* One worker, started by Pegasus as serve starts them. */
typedef struct trial {
    mkd_backend *b;
    uv_timer_t timer;
    uint64_t deadline;
    const char *outcome; /* NULL while undecided; "" when ready */
} trial;

static void on_poll(uv_timer_t *t)
{
    trial *tr = t->data;
    int ready = mkd_backend_readiness(tr->b);

    if (ready > 0)
        tr->outcome = "";
    else if (ready < 0)
        tr->outcome = "the worker exited before it was ready (its output "
                      "is above)";
    else if (uv_now(t->loop) >= tr->deadline)
        tr->outcome = "the worker was not ready in time "
                      "(worker_start_timeout_ms)";
    if (tr->outcome != NULL)
        uv_timer_stop(t);
}

static void run_trial(uv_loop_t *loop, const mkd_config *cfg, trial *tr)
{
    uv_timer_init(loop, &tr->timer); /* cannot fail */
    tr->timer.data = tr;
    tr->deadline = uv_now(loop) + cfg->worker_start_timeout_ms + 5000;
    (void)uv_timer_start(&tr->timer, on_poll, 20, 20);
    while (tr->outcome == NULL && uv_run(loop, UV_RUN_ONCE) != 0)
        ;
    uv_close((uv_handle_t *)&tr->timer, NULL);
    tr->b->ops->free(tr->b);
    (void)uv_run(loop, UV_RUN_DEFAULT);
}

/* The application's file resolves, as each worker's command resolves it. */
static void check_app(const mkd_config *cfg, int *n)
{
    mkd_pegasus_settings ps;
    pegasus_command c;
    mkd_diag d;
    int r;

    mkd_pegasus_settings_from(cfg, &ps);
    if ((r = pegasus_command_build(&ps.pc, 0, &c, &d)) != MKD_OK) {
        problem(n, "app", &d, r);
        return;
    }
    pegasus_command_free(&c);
}

/* The PHP application loads in one worker, started by Pegasus with the
 * pool's settings, as the workers' user (as root). Its output is logged
 * as serve logs it. */
static void check_worker(const mkd_config *cfg, const mkd_workers *wk, int *n)
{
    mkd_config one = *cfg;
    uv_loop_t loop;
    trial tr;
    mkd_diag d;
    int r;

    memset(&tr, 0, sizeof tr);
    one.workers = one.workers_max = 1;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "mkd: config --test: worker: no event loop\n");
        (*n)++;
        return;
    }
    if ((r = mkd_make_backend(&loop, &one, wk, &tr.b, &d)) != MKD_OK)
        problem(n, "application", &d, r);
    else
        run_trial(&loop, cfg, &tr);
    if (tr.outcome != NULL && tr.outcome[0] != '\0') {
        fprintf(stderr, "mkd: config --test: application %s: %s\n", cfg->app,
                tr.outcome);
        (*n)++;
    }
    (void)uv_loop_close(&loop);
}

int mkd_config_test(const mkd_config *cfg)
{
    mkd_workers wk = {-1, -1, NULL};
    int n = 0;

    /* The worker's output is logged at info, as serve logs it. */
    mkd_log_set_level(cfg->log_level > MKD_LOG_INFO ? cfg->log_level
                                                    : MKD_LOG_INFO);
    check_keys(cfg, &n);
    check_users(cfg, &n, &wk);
    check_listen(cfg, &n);
    if (strcmp(cfg->backend, "php") == 0) {
        check_app(cfg, &n);
        /* Not as a user the checks could not settle (as root, that could
         * be root itself). */
        if (n == 0)
            check_worker(cfg, &wk, &n);
        else
            fprintf(stderr, "mkd: config --test: no worker started until "
                            "the problems above are fixed\n");
    }
    /* The upstream list parses; the pools themselves are not contacted
     * (they may not be up yet, and mkd copes with that). */
    if (strcmp(cfg->backend, "fastcgi") == 0) {
        mkd_diag d;
        int r = fastcgi_check_upstreams(cfg->fastcgi_upstreams, &d);
        if (r != MKD_OK)
            problem(&n, NULL, &d, r);
    }
    if (n != 0) {
        fprintf(stderr, "mkd: configuration test failed: %d problem(s)\n", n);
        return MKD_EXIT_FAILED;
    }
    fprintf(stderr, "mkd: configuration OK\n");
    return MKD_EXIT_OK;
}
