/*
 * log.c -- see mkd_log.h. One fprintf per line under a single format so that
 * lines from the loop thread never interleave mid-line (stderr is
 * unbuffered; the line is formatted into a local buffer first).
 */
#include "mkd_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int log_level = MKD_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

int mkd_log_level_parse(const char *s, int *level)
{
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(s, names[i]) == 0) {
            *level = i;
            return MKD_OK;
        }
    return MKD_ERR_CONFIG;
}

const char *mkd_log_level_name(int level)
{
    if (level < 0 || level > MKD_LOG_DEBUG)
        return "?";
    return names[level];
}

void mkd_log_set_level(int level)
{
    if (level >= MKD_LOG_ERROR && level <= MKD_LOG_DEBUG)
        log_level = level;
}

int mkd_log_enabled(int level)
{
    return level <= log_level;
}

void mkd_log(int level, uint64_t conn_id, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n = 0;
    int r;
    va_list ap;

    if (!mkd_log_enabled(level))
        return;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
        gmtime_r(&ts.tv_sec, &tm) == NULL) {
        memset(&tm, 0, sizeof tm);
        ts.tv_nsec = 0;
    }
    r = snprintf(line, sizeof line,
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ mkd %-5s c%llu ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                 mkd_log_level_name(level), (unsigned long long)conn_id);
    if (r > 0)
        n = (size_t)r < sizeof line ? (size_t)r : sizeof line - 1;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t)r < sizeof line - n ? (size_t)r : sizeof line - n - 1;
    /* Keep one event on one line whatever the message holds. */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    (void)fwrite(line, 1, n, stderr);
}
