/*
 * config.c -- see mkd_config.h. The option table is the single source of the
 * names, defaults and bounds; docs/MKD.md and man/mkd.conf.5 list the same
 * options (ctest man_options checks the manual page).
 *
 * The file format is deliberately small: `key = value` per line, `#` starts
 * a comment line, blank lines are ignored, surrounding blanks are trimmed,
 * a value may be quoted with "..." to keep blanks at its ends. A key given
 * twice takes the last value. Unknown keys are an error, so a typo never
 * silently leaves a limit at its default.
 *
 * Three options take a key in brackets, `name[key] = value`, as PHP-FPM's
 * pool files do: env[NAME], php_value[NAME], php_admin_value[NAME]. Keys
 * are checked against the character set of what they name (a variable, a
 * php.ini directive), values against what can reach the worker intact
 * (php.ini values travel as `-d name=value`: no control characters, no
 * double quotes), and the number of entries is bounded. env values are
 * secrets: no message and no dump shows one.
 */
#include "mkd_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mkd_log.h"
#include "mkd_util.h"

enum opt_type { T_STR, T_U32, T_LEVEL, T_FORMAT };

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;
    size_t size;     /* T_STR: buffer size */
    const char *def; /* default as text */
    uint32_t min, max;
    size_t set_off; /* offset of a "was set" flag, or 0 */
};

#define OFF(f) offsetof(mkd_config, f)
#define STR(f) T_STR, OFF(f), sizeof(((mkd_config *)0)->f)
#define U32(f) T_U32, OFF(f), 0

static const struct opt opts[] = {
    {"listen", STR(listen), "127.0.0.1", 0, 0, 0},
    {"port", U32(port), "7410", 0, 65535, 0},
    {"data_dir", STR(data_dir), "", 0, 0, 0},
    {"key_file", STR(key_file), "", 0, 0, OFF(key_file_set)},
    {"ticket_key_file", STR(ticket_key_file), "", 0, 0,
     OFF(ticket_key_file_set)},
    {"control_socket", STR(control_socket), "", 0, 0, OFF(control_socket_set)},
    {"backend", STR(backend), "php", 0, 0, 0},
    {"user", STR(user), "", 0, 0, 0},
    {"worker_user", STR(worker_user), "", 0, 0, 0},
    {"worker_group", STR(worker_group), "", 0, 0, 0},
    {"ready_file", STR(ready_file), "", 0, 0, 0},
    {"log_level", T_LEVEL, OFF(log_level), 0, "info", 0, 0, 0},
    {"log_format", T_FORMAT, OFF(log_format), 0, "plain", 0, 0, 0},
    {"access_log", STR(access_log), "off", 0, 0, 0},
    {"request_slowlog_ms", U32(request_slowlog_ms), "0", 0, 3600000, 0},
    {"metrics_listen", STR(metrics_listen), "", 0, 0, 0},
    {"metrics_allow_remote", U32(metrics_allow_remote), "0", 0, 1, 0},
    {"trusted_proxies", STR(trusted_proxies), "", 0, 0, 0},
    {"threads", U32(threads), "0", 0, 256, 0},
    {"backlog", U32(backlog), "511", 1, 65535, 0},
    {"max_connections", U32(max_connections), "10000", 1, 1000000, 0},
    {"max_handshakes", U32(max_handshakes), "256", 1, 100000, 0},
    {"max_pending_per_address", U32(max_pending_per_address), "64", 1, 1000000,
     0},
    {"max_connections_per_address", U32(max_connections_per_address), "512", 1,
     1000000, 0},
    {"handshake_rate", U32(handshake_rate), "50", 0, 1000000, 0},
    {"handshake_burst", U32(handshake_burst), "100", 1, 1000000, 0},
    {"resume_rate", U32(resume_rate), "200", 0, 1000000, 0},
    {"resume_burst", U32(resume_burst), "400", 1, 1000000, 0},
    {"retry_after_ms", U32(retry_after_ms), "1000", 0, 3600000, 0},
    {"handshake_timeout_ms", U32(handshake_timeout_ms), "10000", 10, 3600000,
     0},
    {"idle_timeout_ms", U32(idle_timeout_ms), "120000", 10, 86400000, 0},
    {"unit_timeout_ms", U32(unit_timeout_ms), "10000", 10, 3600000, 0},
    {"partial_request_timeout_ms", U32(partial_request_timeout_ms), "60000", 10,
     86400000, 0},
    {"write_timeout_ms", U32(write_timeout_ms), "30000", 10, 3600000, 0},
    {"shutdown_timeout_ms", U32(shutdown_timeout_ms), "10000", 0, 3600000, 0},
    {"max_message", U32(max_message), "1048576", 1, 256u << 20, 0},
    {"max_inflight", U32(max_inflight), "32", 1, 1024, 0},
    {"ticket_lifetime", U32(ticket_lifetime), "86400", 60, 7 * 86400, 0},
    {"session_max_age", U32(session_max_age), "604800", 60, 30 * 86400, 0},
    {"conn_buffer_max", U32(conn_buffer_max), "4194304", 65536, 1u << 30, 0},
    {"buffer_budget", U32(buffer_budget), "67108864", 0, UINT32_MAX, 0},
    {"write_high_water", U32(write_high_water), "1048576", 16384, 1u << 30, 0},
    {"inline_crypto_max", U32(inline_crypto_max), "16384", 0, 1u << 20, 0},
    {"ticket_keys_keep", U32(ticket_keys_keep), "4", 1, 16, 0},
    {"echo_delay_ms", U32(echo_delay_ms), "0", 0, 600000, 0},
    {"fastcgi_upstreams", STR(fastcgi_upstreams), "", 0, 0, 0},
    {"fastcgi_script", STR(fastcgi_script), "", 0, 0, 0},
    {"fastcgi_max_conns", U32(fastcgi_max_conns), "8", 1, 100000, 0},
    {"fastcgi_connect_timeout_ms", U32(fastcgi_connect_timeout_ms), "1000", 10,
     600000, 0},
    {"fastcgi_eject_ms", U32(fastcgi_eject_ms), "5000", 0, 3600000, 0},
    {"app", STR(app), "", 0, 0, OFF(app_set)},
    {"php", STR(php), "/usr/bin/php", 0, 0, 0},
    {"arcangelo", STR(arcangelo), "", 0, 0, OFF(arcangelo_set)},
    {"php_memory_limit", STR(php_memory_limit), "128M", 0, 0, 0},
    {"workers", U32(workers), "0", 0, 4096, 0},
    {"workers_max", U32(workers_max), "0", 0, 4096, 0},
    {"queue_max", U32(queue_max), "256", 1, 1000000, 0},
    {"queue_timeout_ms", U32(queue_timeout_ms), "0", 0, 3600000, 0},
    {"request_timeout_ms", U32(request_timeout_ms), "30000", 10, 3600000, 0},
    {"worker_start_timeout_ms", U32(worker_start_timeout_ms), "10000", 10,
     600000, 0},
    {"worker_stop_timeout_ms", U32(worker_stop_timeout_ms), "5000", 10, 600000,
     0},
    {"worker_idle_timeout_ms", U32(worker_idle_timeout_ms), "10000", 10,
     86400000, 0},
    {"worker_max_requests", U32(worker_max_requests), "0", 0, 1u << 30, 0},
    {"worker_max_lifetime_s", U32(worker_max_lifetime_s), "0", 0, 30u * 86400u,
     0},
    {"worker_max_rss_kib", U32(worker_max_rss_kib), "0", 0, 1u << 30, 0},
    {"expose_errors", U32(expose_errors), "0", 0, 1, 0},
    {"env_pass", STR(env_pass), "", 0, 0, 0},
};

const char *mkd_config_option_name(size_t i)
{
    return i < sizeof opts / sizeof opts[0] ? opts[i].name : NULL;
}

static const struct opt *find_opt(const char *key)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(opts[i].name, key) == 0)
            return &opts[i];
    return NULL;
}

static int set_opt(mkd_config *c, const struct opt *o, const char *v,
                   mkd_diag *d)
{
    char *base = (char *)c;

    switch (o->type) {
    case T_STR:
        if (strlen(v) >= o->size)
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "%s: value too long (max %zu bytes)", o->name,
                            o->size - 1);
        memcpy(base + o->off, v, strlen(v) + 1);
        break;
    case T_U32: {
        uint64_t x = 0;
        if (mkd_parse_uint(v, o->min, o->max, &x) != MKD_OK)
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "%s: \"%s\" is not a number in %u..%u", o->name, v,
                            o->min, o->max);
        *(uint32_t *)(void *)(base + o->off) = (uint32_t)x;
        break;
    }
    case T_LEVEL: {
        int l = 0;
        if (mkd_log_level_parse(v, &l) != MKD_OK)
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "%s: \"%s\" is not error, warn, info or debug",
                            o->name, v);
        *(int *)(void *)(base + o->off) = l;
        break;
    }
    case T_FORMAT: {
        int f = 0;
        if (mkd_log_format_parse(v, &f) != MKD_OK)
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "%s: \"%s\" is not plain, journal or json", o->name,
                            v);
        *(int *)(void *)(base + o->off) = f;
        break;
    }
    default:
        return mkd_fail(d, MKD_ERR_ARG, "%s: unknown option type", o->name);
    }
    if (o->set_off)
        *(int *)(void *)(base + o->set_off) = v[0] != '\0';
    return MKD_OK;
}

void mkd_config_defaults(mkd_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (set_opt(c, &opts[i], opts[i].def, NULL) != MKD_OK)
            abort(); /* a bad default is a build bug */
}

/* --- name[key] = value ------------------------------------------------- */

static const struct {
    const char *name;
    int kind;
} kv_names[] = {
    {"env", MKD_KV_ENV},
    {"php_value", MKD_KV_PHP_VALUE},
    {"php_admin_value", MKD_KV_PHP_ADMIN},
};

/* Arcangelo sets these itself: PHP's errors go to the log, never into a
 * response (a displayed warning would land in the body). */
static const char *const php_reserved[] = {"display_errors", "log_errors",
                                           "html_errors", "error_log"};

static int is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* An environment variable's name: [A-Za-z_][A-Za-z0-9_]*, 1..63 bytes. */
static int env_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= MKD_KV_KEY_MAX || !(is_alpha(s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_')
            return 0;
    return 1;
}

/* A php.ini directive's name: [A-Za-z][A-Za-z0-9_.]*, 1..63 bytes. */
static int php_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= MKD_KV_KEY_MAX || !is_alpha(s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

static int kv_kind(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof kv_names / sizeof kv_names[0]; i++)
        if (strlen(kv_names[i].name) == n &&
            memcmp(kv_names[i].name, name, n) == 0)
            return kv_names[i].kind;
    return 0;
}

static const char *kv_name(int kind)
{
    for (size_t i = 0; i < sizeof kv_names / sizeof kv_names[0]; i++)
        if (kv_names[i].kind == kind)
            return kv_names[i].name;
    return "?";
}

/* env[] and the php settings are two name spaces: a directive given as
 * php_value and then as php_admin_value is one setting, the last kind. */
static int same_space(int a, int b)
{
    return (a == MKD_KV_ENV) == (b == MKD_KV_ENV);
}

static unsigned kv_count(const mkd_config *c, int kind)
{
    unsigned n = 0;

    for (uint32_t i = 0; i < c->nkv; i++)
        n += same_space(c->kv[i].kind, kind);
    return n;
}

static mkd_config_kv *kv_find(mkd_config *c, int kind, const char *key,
                              size_t klen)
{
    for (uint32_t i = 0; i < c->nkv; i++)
        if (same_space(c->kv[i].kind, kind) && strlen(c->kv[i].key) == klen &&
            memcmp(c->kv[i].key, key, klen) == 0)
            return &c->kv[i];
    return NULL;
}

/* The key: its character set, and the names Arcangelo keeps to itself. */
static int kv_key_check(int kind, const char *key, size_t klen, mkd_diag *d)
{
    if (kind == MKD_KV_ENV) {
        if (!env_name_ok(key, klen))
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "env[%.*s]: not a variable name (letters, digits "
                            "and _, not starting with a digit; 1..63 bytes)",
                            (int)(klen < 80 ? klen : 80), key);
        return MKD_OK;
    }
    if (!php_name_ok(key, klen))
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "%s[%.*s]: not a php.ini directive name (a letter, "
                        "then letters, digits, _ and .; 1..63 bytes)",
                        kv_name(kind), (int)(klen < 80 ? klen : 80), key);
    for (size_t i = 0; i < sizeof php_reserved / sizeof php_reserved[0]; i++)
        if (strlen(php_reserved[i]) == klen &&
            memcmp(php_reserved[i], key, klen) == 0)
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "%s[%s]: Arcangelo sets it itself (PHP's errors "
                            "go to mkd's log, never into a response)",
                            kv_name(kind), php_reserved[i]);
    return MKD_OK;
}

/* The value: its length (the message never shows it: env values are
 * secrets), and for php.ini values what `-d name=value` carries intact. */
static int kv_value_check(int kind, const char *key, const char *value,
                          mkd_diag *d)
{
    if (strlen(value) >= MKD_KV_VALUE_MAX)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "%s[%s]: value too long (max %u bytes)", kv_name(kind),
                        key, MKD_KV_VALUE_MAX - 1);
    if (kind == MKD_KV_ENV)
        return MKD_OK;
    for (const char *p = value; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"')
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "%s[%s]: a control character or a double quote "
                            "in the value (php.ini values reach PHP as "
                            "-d name=value)",
                            kv_name(kind), key);
    return MKD_OK;
}

/* `name[key] = value`, the whole option name in opt. */
static int set_kv(mkd_config *c, const char *opt, const char *value,
                  mkd_diag *d)
{
    const char *br = strchr(opt, '['), *key = br + 1;
    size_t olen = strlen(opt), klen;
    int kind = kv_kind(opt, (size_t)(br - opt)), r;
    unsigned max = kind == MKD_KV_ENV ? MKD_ENV_MAX : MKD_PHP_INI_MAX;
    char k[MKD_KV_KEY_MAX];
    mkd_config_kv *e;

    if (kind == 0)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "unknown option \"%.*s[...]\" (env, php_value and "
                        "php_admin_value take a [key])",
                        (int)(br - opt < 80 ? br - opt : 80), opt);
    if (opt[olen - 1] != ']' || olen - (size_t)(key - opt) < 2)
        return mkd_fail(d, MKD_ERR_CONFIG, "%s: expected %s[NAME]",
                        kv_name(kind), kv_name(kind));
    klen = olen - (size_t)(key - opt) - 1;
    if ((r = kv_key_check(kind, key, klen, d)) != MKD_OK)
        return r;
    memcpy(k, key, klen); /* klen < MKD_KV_KEY_MAX: checked */
    k[klen] = '\0';
    if ((r = kv_value_check(kind, k, value, d)) != MKD_OK)
        return r;
    if ((e = kv_find(c, kind, k, klen)) == NULL) {
        if (kv_count(c, kind) >= max)
            return mkd_fail(
                d, MKD_ERR_CONFIG, "%s: too many settings (at most %u, %s)",
                kv_name(kind), max,
                kind == MKD_KV_ENV ? "env_pass names included"
                                   : "php_value and php_admin_value together");
        e = &c->kv[c->nkv++];
        memcpy(e->key, k, klen + 1);
    }
    mkd_wipe(e->value, sizeof e->value);
    e->kind = kind;
    memcpy(e->value, value, strlen(value) + 1);
    return MKD_OK;
}

int mkd_config_set(mkd_config *c, const char *key, const char *value,
                   mkd_diag *d)
{
    const struct opt *o;

    if (strchr(key, '[') != NULL)
        return set_kv(c, key, value, d);
    if ((o = find_opt(key)) == NULL)
        return mkd_fail(d, MKD_ERR_CONFIG, "unknown option \"%s\"", key);
    return set_opt(c, o, value, d);
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* One line of the file (NUL-terminated, modified in place): blank,
 * comment, or `key = value`. */
static int parse_line(mkd_config *c, char *line, const char *origin,
                      unsigned lineno, mkd_diag *d)
{
    char key[128]; /* php_admin_value[ + 63 + ] */
    size_t k, v, e;
    char *eq;
    int r;

    for (k = 0; is_blank(line[k]); k++)
        ;
    if (line[k] == '\0' || line[k] == '#')
        return MKD_OK;
    if ((eq = strchr(line + k, '=')) == NULL)
        return mkd_fail(d, MKD_ERR_CONFIG, "%s:%u: expected key = value",
                        origin, lineno);
    /* Key: from k to the '=' less trailing blanks. */
    e = (size_t)(eq - line);
    while (e > k && is_blank(line[e - 1]))
        e--;
    if (e == k || e - k >= sizeof key)
        return mkd_fail(d, MKD_ERR_CONFIG, "%s:%u: bad key", origin, lineno);
    memcpy(key, line + k, e - k);
    key[e - k] = '\0';
    /* Value: after '=' trimmed; optional double quotes. */
    for (v = (size_t)(eq - line) + 1; is_blank(line[v]); v++)
        ;
    e = strlen(line);
    while (e > v && is_blank(line[e - 1]))
        e--;
    line[e] = '\0';
    if (e - v >= 2 && line[v] == '"' && line[e - 1] == '"') {
        line[e - 1] = '\0';
        v++;
    }
    if ((r = mkd_config_set(c, key, line + v, d)) != MKD_OK) {
        char msg[sizeof d->text];
        /* Prefix where it was; set_opt said what. */
        (void)snprintf(msg, sizeof msg, "%s", mkd_diag_text(d, r));
        return mkd_fail(d, r, "%s:%u: %s", origin, lineno, msg);
    }
    return MKD_OK;
}

int mkd_config_parse(mkd_config *c, const char *text, size_t len,
                     const char *origin, mkd_diag *d)
{
    char line[1024];
    size_t pos = 0;
    unsigned lineno = 0;
    int r;

    mkd_diag_clear(d);
    while (pos < len) {
        size_t start = pos, n;

        while (pos < len && text[pos] != '\n')
            pos++;
        n = pos - start;
        pos++; /* the newline */
        lineno++;
        if (n >= sizeof line) {
            r = mkd_fail(d, MKD_ERR_CONFIG, "%s:%u: line too long", origin,
                         lineno);
            goto out;
        }
        if (memchr(text + start, '\0', n) != NULL) {
            r = mkd_fail(d, MKD_ERR_CONFIG, "%s:%u: NUL byte", origin, lineno);
            goto out;
        }
        memcpy(line, text + start, n);
        line[n] = '\0';
        if ((r = parse_line(c, line, origin, lineno, d)) != MKD_OK)
            goto out;
    }
    r = MKD_OK;
out:
    mkd_wipe(line, sizeof line); /* env values are secrets */
    return r;
}

int mkd_config_load_file(mkd_config *c, const char *path, mkd_diag *d)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    if ((r = mkd_read_file(path, MKD_CONFIG_FILE_MAX, &buf, &len, d)) != MKD_OK)
        return r == MKD_ERR_NOMEM ? r : MKD_ERR_CONFIG;
    r = mkd_config_parse(c, (const char *)buf, len, path, d);
    mkd_wipe(buf, len); /* env values are secrets */
    free(buf);
    return r;
}

int mkd_default_data_dir(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int r;

    if (geteuid() == 0)
        r = snprintf(out, cap, "/var/lib/megaki");
    else if (xdg != NULL && xdg[0] == '/')
        r = snprintf(out, cap, "%s/megaki", xdg);
    else if (home != NULL && home[0] == '/')
        r = snprintf(out, cap, "%s/.local/share/megaki", home);
    else
        return MKD_ERR_CONFIG;
    return r > 0 && (size_t)r < cap ? MKD_OK : MKD_ERR_CONFIG;
}

/* out = dir joined with rel, "." and ".." taken away by name: dir comes
 * from the kernel (/proc/self/exe) with every link resolved, so walking
 * up by name is walking up on disk. */
static int join_rel(char *out, size_t cap, const char *dir, const char *rel)
{
    size_t n = strlen(dir);

    if (n == 0 || n >= cap)
        return MKD_ERR_CONFIG;
    memcpy(out, dir, n + 1);
    while (*rel != '\0') {
        const char *slash = strchr(rel, '/');
        size_t len = slash ? (size_t)(slash - rel) : strlen(rel);

        if (len == 2 && rel[0] == '.' && rel[1] == '.') {
            char *last = strrchr(out, '/');
            n = last == out ? 1 : (size_t)(last - out); /* "/" stays */
            out[n] = '\0';
        } else if (len > 0 && !(len == 1 && rel[0] == '.')) {
            int sep = out[n - 1] != '/';
            if (n + (size_t)sep + len >= cap)
                return MKD_ERR_CONFIG;
            if (sep)
                out[n++] = '/';
            memcpy(out + n, rel, len);
            n += len;
            out[n] = '\0';
        }
        rel += len + (slash != NULL);
    }
    return MKD_OK;
}

int mkd_default_share_dir(char *out, size_t cap)
{
    char exe[MKD_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash;

    if (n <= 0 || (size_t)n >= sizeof exe - 1)
        return MKD_ERR_CONFIG;
    exe[n] = '\0';
    if (exe[0] != '/' || (slash = strrchr(exe, '/')) == NULL)
        return MKD_ERR_CONFIG;
    if (slash == exe)
        slash++; /* a binary in "/": its directory is "/" */
    *slash = '\0';
    return join_rel(out, cap, exe, MKD_SHARE_REL);
}

/* dst = dir/name unless the option was given. */
static int derive(char *dst, size_t cap, int given, const char *dir,
                  const char *name)
{
    int r;

    if (given)
        return MKD_OK;
    r = snprintf(dst, cap, "%s/%s", dir, name);
    return r > 0 && (size_t)r < cap ? MKD_OK : MKD_ERR_CONFIG;
}

/* app and arcangelo, unless given: the hello-world app and Arcangelo
 * installed beside this binary (mkd_default_share_dir). */
static int derive_share_paths(mkd_config *c, mkd_diag *d)
{
    char share[MKD_PATH_MAX];

    if (c->app_set && c->arcangelo_set)
        return MKD_OK;
    if (mkd_default_share_dir(share, sizeof share) != MKD_OK)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "cannot find mkd's data directory from "
                        "/proc/self/exe: set app and arcangelo");
    if (derive(c->app, sizeof c->app, c->app_set, share,
               "apps/hello/app.php") != MKD_OK ||
        derive(c->arcangelo, sizeof c->arcangelo, c->arcangelo_set, share,
               "arcangelo/bin/arcangelo.php") != MKD_OK)
        return mkd_fail(d, MKD_ERR_CONFIG, "%s: path too long", share);
    return MKD_OK;
}

const char *mkd_config_env_pass_next(const char *p, size_t *len)
{
    size_t n = 0;

    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    while (p[n] != '\0' && p[n] != ' ' && p[n] != '\t' && p[n] != ',')
        n++;
    *len = n;
    return n > 0 ? p : NULL;
}

/* Was the name of n bytes at name listed in env_pass before it? */
static int env_pass_before(const char *list, const char *name, size_t n)
{
    size_t len;

    for (const char *p = mkd_config_env_pass_next(list, &len); p < name;
         p = mkd_config_env_pass_next(p + len, &len))
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
    return 0;
}

/* env_pass: variable names, none also given by env[...], none twice, and
 * with env[...] at most MKD_ENV_MAX. */
static int check_env_pass(mkd_config *c, mkd_diag *d)
{
    unsigned n = kv_count(c, MKD_KV_ENV);
    const char *p;
    size_t len;

    for (p = mkd_config_env_pass_next(c->env_pass, &len); p != NULL;
         p = mkd_config_env_pass_next(p + len, &len)) {
        int shown = (int)(len < 80 ? len : 80);
        if (!env_name_ok(p, len))
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "env_pass: \"%.*s\" is not a variable name", shown,
                            p);
        if (kv_find(c, MKD_KV_ENV, p, len) != NULL)
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "env_pass: %.*s is also set by env[%.*s]; give it "
                            "one way",
                            shown, p, shown, p);
        if (env_pass_before(c->env_pass, p, len))
            return mkd_fail(d, MKD_ERR_CONFIG, "env_pass: %.*s is listed twice",
                            shown, p);
        if (++n > MKD_ENV_MAX)
            return mkd_fail(d, MKD_ERR_CONFIG,
                            "env_pass: too many variables (at most %u with "
                            "the env[...] settings)",
                            MKD_ENV_MAX);
    }
    return MKD_OK;
}

int mkd_config_finish(mkd_config *c, mkd_diag *d)
{
    int r;

    mkd_diag_clear(d);
    if (c->data_dir[0] == '\0' &&
        mkd_default_data_dir(c->data_dir, sizeof c->data_dir) != MKD_OK)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "no data directory: set data_dir (HOME is not set)");
    if (derive(c->key_file, sizeof c->key_file, c->key_file_set, c->data_dir,
               "server.pem") != MKD_OK ||
        derive(c->ticket_key_file, sizeof c->ticket_key_file,
               c->ticket_key_file_set, c->data_dir, "ticket.keys") != MKD_OK ||
        derive(c->control_socket, sizeof c->control_socket,
               c->control_socket_set, c->data_dir, "mkd.sock") != MKD_OK)
        return mkd_fail(d, MKD_ERR_CONFIG, "data_dir too long");
    if ((r = derive_share_paths(c, d)) != MKD_OK)
        return r;
    if (c->listen[0] == '\0')
        return mkd_fail(d, MKD_ERR_CONFIG, "listen: no address");
    if (strcmp(c->backend, "echo") != 0 && strcmp(c->backend, "php") != 0 &&
        strcmp(c->backend, "fastcgi") != 0)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "backend: \"%s\" is not available (this build has: "
                        "php, echo, fastcgi)",
                        c->backend);
    if (strcmp(c->backend, "fastcgi") == 0 &&
        (c->fastcgi_upstreams[0] == '\0' || c->fastcgi_script[0] != '/'))
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "backend = fastcgi needs fastcgi_upstreams and "
                        "fastcgi_script (an absolute path)");
    if (c->workers_max != 0 && c->workers != 0 && c->workers_max < c->workers)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "workers_max (%u) is below workers (%u)",
                        c->workers_max, c->workers);
    if (c->max_handshakes > c->max_connections)
        c->max_handshakes = c->max_connections;
    return check_env_pass(c, d);
}

size_t mkd_config_dump(const mkd_config *c, char *buf, size_t cap)
{
    const char *base = (const char *)c;
    mkd_text t;

    mkd_text_init(&t, buf, cap);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const struct opt *o = &opts[i];
        const void *v = base + o->off;
        switch (o->type) {
        case T_STR:
            mkd_text_put(&t, "%s = %s\n", o->name, (const char *)v);
            break;
        case T_U32:
            mkd_text_put(&t, "%s = %u\n", o->name, *(const uint32_t *)v);
            break;
        case T_FORMAT:
            mkd_text_put(&t, "%s = %s\n", o->name,
                         mkd_log_format_name(*(const int *)v));
            break;
        case T_LEVEL:
        default:
            mkd_text_put(&t, "%s = %s\n", o->name,
                         mkd_log_level_name(*(const int *)v));
            break;
        }
    }
    for (uint32_t i = 0; i < c->nkv; i++) {
        const mkd_config_kv *e = &c->kv[i];
        if (e->kind == MKD_KV_ENV)
            mkd_text_put(&t, "# env[%s] is set (a secret: not shown)\n",
                         e->key);
        else /* quoted: the value may end in blanks, and has no quote */
            mkd_text_put(&t, "%s[%s] = \"%s\"\n", kv_name(e->kind), e->key,
                         e->value);
    }
    return t.len;
}
