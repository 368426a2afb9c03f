/*
 * mkd_log.h -- MKD's log: levels, one line per event on stderr (journald picks
 * it up under systemd), each line tagged with a connection id (0 for the
 * daemon itself). Never pass a secret to these functions: log ids, sizes,
 * error names, addresses.
 */
#ifndef MKD_LOG_H
#define MKD_LOG_H

#include <stdint.h>

#include "mkd_compiler.h"
#include "mkd_err.h"

enum mkd_log_level {
    MKD_LOG_ERROR = 0,
    MKD_LOG_WARN = 1,
    MKD_LOG_INFO = 2,
    MKD_LOG_DEBUG = 3
};

/* Parse "error", "warn", "info", "debug" into *level. MKD_OK, or
 * MKD_ERR_CONFIG for anything else. */
MKD_MUST_CHECK int mkd_log_level_parse(const char *s, int *level);
const char *mkd_log_level_name(int level);
void mkd_log_set_level(int level);
int mkd_log_enabled(int level);

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
