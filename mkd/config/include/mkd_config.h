/*
 * mkd_config.h -- MKD's configuration: one flat structure, filled from the
 * built-in defaults, then a `key = value` file, then command-line
 * overrides (`--key=value`). Every option, its default and its bounds are
 * in one table in config.c (and documented in docs/MKD.md). Each room of
 * mkd gets its own settings from main, which reads them from here; no
 * other room includes this header.
 *
 * Errors: MKD_ERR_CONFIG with the option, file and line in the diag.
 */
#ifndef MKD_CONFIG_H
#define MKD_CONFIG_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>

#define MKD_DEFAULT_PORT    7410
#define MKD_PATH_MAX        512
#define MKD_CONFIG_FILE_MAX (1u << 20)

/* The `name[key] = value` options: env[NAME] (an environment variable for
 * the workers, secret: never logged nor printed), php_value[NAME] and
 * php_admin_value[NAME] (php.ini settings of the workers). Bounds, checked
 * by the parser and mkd_config_finish: */
#define MKD_ENV_MAX      24 /* env[...] entries plus the names in env_pass */
#define MKD_PHP_INI_MAX  24 /* php_value[...] plus php_admin_value[...] */
#define MKD_KV_MAX       (MKD_ENV_MAX + MKD_PHP_INI_MAX)
#define MKD_KV_KEY_MAX   64  /* a key is 1..63 bytes */
#define MKD_KV_VALUE_MAX 512 /* a value is 0..511 bytes */

enum mkd_kv_kind { MKD_KV_ENV = 1, MKD_KV_PHP_VALUE, MKD_KV_PHP_ADMIN };

typedef struct mkd_config_kv {
    int kind; /* enum mkd_kv_kind */
    char key[MKD_KV_KEY_MAX];
    char value[MKD_KV_VALUE_MAX];
} mkd_config_kv;

typedef struct mkd_config {
    char listen[MKD_PATH_MAX]; /* comma-separated addresses */
    uint32_t port;
    char data_dir[MKD_PATH_MAX]; /* "" = the per-user default */
    char key_file[MKD_PATH_MAX]; /* comma-separated PEM paths */
    char ticket_key_file[MKD_PATH_MAX];
    char control_socket[MKD_PATH_MAX];
    char backend[32];
    char user[64];
    char worker_user[64];  /* "" = nobody when started as root */
    char worker_group[64]; /* "" = worker_user's own group */
    char ready_file[MKD_PATH_MAX];
    int log_level;
    int log_format;                /* mkd_log.h: plain, journal, json */
    char access_log[MKD_PATH_MAX]; /* off, stderr, or an absolute path */
    uint32_t request_slowlog_ms;   /* warn about slower requests; 0 off */
    char metrics_listen[128];      /* HOST:PORT, "" = no metrics listener */
    uint32_t metrics_allow_remote; /* 0/1: a non-loopback metrics_listen */
    char trusted_proxies[1024];    /* CIDR blocks that send PROXY headers */
    uint32_t threads;
    uint32_t backlog;
    uint32_t max_connections;
    uint32_t max_handshakes;
    uint32_t max_pending_per_address;
    uint32_t max_connections_per_address;
    uint32_t handshake_rate; /* full handshakes/s per address */
    uint32_t handshake_burst;
    uint32_t resume_rate; /* resumptions/s per address */
    uint32_t resume_burst;
    uint32_t retry_after_ms;
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t unit_timeout_ms;
    uint32_t partial_request_timeout_ms;
    uint32_t write_timeout_ms;
    uint32_t shutdown_timeout_ms;
    uint32_t max_message;
    uint32_t max_inflight;
    uint32_t ticket_lifetime;
    uint32_t session_max_age;   /* seconds from a full handshake, all told */
    uint32_t conn_buffer_max;   /* bytes buffered per connection */
    uint32_t buffer_budget;     /* ... on all, plus output; 0 = none */
    uint32_t write_high_water;  /* stop reading above this */
    uint32_t inline_crypto_max; /* record jobs up to this run on the
                                         loop thread; 0 = all on the pool */
    uint32_t ticket_keys_keep;  /* for `mkd ticket-keys --rotate` */
    uint32_t echo_delay_ms;     /* echo backend: answer after this */
    /* The fastcgi backend, mkd/fastcgi/include/fastcgi.h. */
    char fastcgi_upstreams[MKD_PATH_MAX]; /* unix:/PATH, HOST:PORT, ... */
    char fastcgi_script[MKD_PATH_MAX];    /* SCRIPT_FILENAME */
    uint32_t fastcgi_max_conns;           /* per upstream */
    uint32_t fastcgi_connect_timeout_ms;
    uint32_t fastcgi_eject_ms; /* a failed upstream rests this long */
    /* The php backend (Pegasus + Arcangelo), mkd/pegasus/pegasus.h. */
    char app[MKD_PATH_MAX];       /* the application's PHP file */
    char php[MKD_PATH_MAX];       /* PHP CLI binary */
    char arcangelo[MKD_PATH_MAX]; /* arcangelo/bin/arcangelo.php */
    char php_memory_limit[32];    /* php -d memory_limit=... */
    uint32_t workers;             /* 0 = one per CPU */
    uint32_t workers_max;         /* 0 = workers (a fixed pool) */
    uint32_t queue_max;
    uint32_t queue_timeout_ms;
    uint32_t request_timeout_ms;
    uint32_t worker_start_timeout_ms;
    uint32_t worker_stop_timeout_ms;
    uint32_t worker_idle_timeout_ms;
    uint32_t worker_max_requests;
    uint32_t worker_max_lifetime_s;
    uint32_t worker_max_rss_kib;
    uint32_t expose_errors; /* 0/1: exception text to clients */
    /* Names of mkd's environment variables the workers get too, separated
     * by blanks or commas. */
    char env_pass[MKD_PATH_MAX];
    mkd_config_kv kv[MKD_KV_MAX]; /* in the order first given */
    uint32_t nkv;
    /* Set when the path was given (not derived from data_dir, or for app
     * and arcangelo from mkd_default_share_dir). */
    int key_file_set, ticket_key_file_set, control_socket_set;
    int app_set, arcangelo_set;
} mkd_config;

/* Defaults (paths stay empty until mkd_config_finish). */
void mkd_config_defaults(mkd_config *c);
/* The name of row i of the option table, NULL past its end (the command
 * line offers each as --name=value). */
const char *mkd_config_option_name(size_t i);
/* Set one option from text. MKD_OK or MKD_ERR_CONFIG. */
MKD_MUST_CHECK int mkd_config_set(mkd_config *c, const char *key,
                                  const char *value, mkd_diag *d);
/* Parse a whole file; errors name the file and line. */
MKD_MUST_CHECK int mkd_config_load_file(mkd_config *c, const char *path,
                                        mkd_diag *d);
/* Parse text held in memory (the file parser's core; fuzzed). origin
 * names it in messages. */
MKD_MUST_CHECK int mkd_config_parse(mkd_config *c, const char *text, size_t len,
                                    const char *origin, mkd_diag *d);
/* Fill data_dir and the paths derived from it, app and arcangelo unless
 * given; check cross-option rules. */
MKD_MUST_CHECK int mkd_config_finish(mkd_config *c, mkd_diag *d);
/* The default data directory for this user (XDG rules, /var/lib when
 * root). MKD_OK or MKD_ERR_CONFIG (no HOME). */
MKD_MUST_CHECK int mkd_default_data_dir(char *out, size_t cap);
/* Megaki's data directory (Arcangelo, the hello-world app) for this
 * binary: MKD_SHARE_REL, the installation's path from the directory of
 * mkd to share/megaki (set by the build: "../share/megaki" for sbin/mkd),
 * taken from the directory of the running binary (/proc/self/exe). So an
 * installed mkd finds the files installed with it wherever the tree was
 * installed or moved to, and the build tree's mkd finds share/megaki of
 * the build tree, which links to the source. MKD_OK or MKD_ERR_CONFIG. */
MKD_MUST_CHECK int mkd_default_share_dir(char *out, size_t cap);
/* The names listed in env_pass, one at a time: from p = c->env_pass, the
 * next name (its length in *len), or NULL after the last; go on from the
 * name + *len. */
const char *mkd_config_env_pass_next(const char *p, size_t *len);
/* Write every option as `key = value` lines (for `mkd config`); returns
 * the bytes written (cut at cap - 1, NUL-terminated). env[NAME] values are
 * secrets: their lines are comments that name the variable only. */
size_t mkd_config_dump(const mkd_config *c, char *buf, size_t cap);

#endif
