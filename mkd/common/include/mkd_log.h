/*
 * mkd_log.h -- MKD's log: levels, one line per event on stderr (journald picks
 * it up under systemd), each line tagged with a connection id (0 for the
 * daemon itself). Never pass a secret to these functions: log ids, sizes,
 * error names, addresses.
 *
 * Three line formats (the option log_format), for the daemon's log and the
 * access log (mkd_access.h) alike:
 *
 *   plain    2026-11-26T07:20:52.026Z mkd info  c0 listening on ...
 *   journal  <6>c0 listening on ...        (the syslog priority prefix
 *            systemd-journald reads on stderr; it adds the time itself)
 *   json     {"time":"2026-11-26T07:20:52.026Z","log":"daemon",
 *            "level":"info","conn":0,"msg":"listening on ..."}
 *
 * Everything here is for the loop thread (and the single-threaded spawner
 * process): the settings are plain globals.
 */
#ifndef MKD_LOG_H
#define MKD_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "mkd_compiler.h"
#include "mkd_err.h"

enum mkd_log_level {
    MKD_LOG_ERROR = 0,
    MKD_LOG_WARN = 1,
    MKD_LOG_INFO = 2,
    MKD_LOG_DEBUG = 3
};

enum mkd_log_format {
    MKD_LOG_PLAIN = 0,
    MKD_LOG_JOURNAL = 1,
    MKD_LOG_JSON = 2
};

/* Parse "error", "warn", "info", "debug" into *level. MKD_OK, or
 * MKD_ERR_CONFIG for anything else. */
MKD_MUST_CHECK int mkd_log_level_parse(const char *s, int *level);
const char *mkd_log_level_name(int level);
void mkd_log_set_level(int level);
int mkd_log_enabled(int level);

/* Parse "plain", "journal", "json" into *format. MKD_OK or
 * MKD_ERR_CONFIG. */
MKD_MUST_CHECK int mkd_log_format_parse(const char *s, int *format);
const char *mkd_log_format_name(int format);
void mkd_log_set_format(int format);
int mkd_log_format(void);
/* The syslog priority of a level (error 3, warn 4, info 6, debug 7): the
 * journal format's "<N>". */
int mkd_log_priority(int level);
/* The current UTC time as "2026-11-26T07:20:52.026Z" (cap >= 25). */
void mkd_log_time(char *out, size_t cap);

void mkd_log(int level, uint64_t conn_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define mkd_error(id, ...) mkd_log(MKD_LOG_ERROR, (id), __VA_ARGS__)
#define mkd_warn(id, ...)  mkd_log(MKD_LOG_WARN, (id), __VA_ARGS__)
#define mkd_info(id, ...)  mkd_log(MKD_LOG_INFO, (id), __VA_ARGS__)
#define mkd_debug(id, ...)                                                     \
    do {                                                                       \
        if (mkd_log_enabled(MKD_LOG_DEBUG))                                    \
            mkd_log(MKD_LOG_DEBUG, (id), __VA_ARGS__);                         \
    } while (0)

#endif
