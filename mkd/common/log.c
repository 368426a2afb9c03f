/*
 * log.c -- see mkd_log.h. One write per line so that lines never interleave
 * mid-line (stderr is unbuffered; the line is formatted into a local buffer
 * first).
 */
#include "mkd_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mkd_util.h"

/* A message's longest text; a JSON line can be six times as long (every
 * byte a \u00XX escape) plus its keys. */
#define MSG_MAX  1024
#define LINE_MAX (6 * MSG_MAX + 256)

static int log_level = MKD_LOG_INFO;
static int log_format = MKD_LOG_PLAIN;

static const char *const names[] = {"error", "warn", "info", "debug"};
static const char *const formats[] = {"plain", "journal", "json"};

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

int mkd_log_format_parse(const char *s, int *format)
{
    for (int i = 0; i < (int)(sizeof formats / sizeof formats[0]); i++)
        if (strcmp(s, formats[i]) == 0) {
            *format = i;
            return MKD_OK;
        }
    return MKD_ERR_CONFIG;
}

const char *mkd_log_format_name(int format)
{
    if (format < MKD_LOG_PLAIN || format > MKD_LOG_JSON)
        return "?";
    return formats[format];
}

void mkd_log_set_format(int format)
{
    if (format >= MKD_LOG_PLAIN && format <= MKD_LOG_JSON)
        log_format = format;
}

int mkd_log_format(void)
{
    return log_format;
}

int mkd_log_priority(int level)
{
    static const int prio[] = {3, 4, 6, 7}; /* LOG_ERR .. LOG_DEBUG */

    return level >= MKD_LOG_ERROR && level <= MKD_LOG_DEBUG ? prio[level] : 6;
}

void mkd_log_time(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
        gmtime_r(&ts.tv_sec, &tm) == NULL) {
        memset(&tm, 0, sizeof tm);
        ts.tv_nsec = 0;
    }
    (void)snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
}

/* The message in one of the three formats, newline-terminated. */
static size_t render(char *line, size_t cap, int level, uint64_t conn_id,
                     const char *msg, size_t mlen)
{
    unsigned long long id = (unsigned long long)conn_id;
    char when[32];
    mkd_text t;

    mkd_text_init(&t, line, cap);
    if (log_format == MKD_LOG_JOURNAL) {
        mkd_text_put(&t, "<%d>c%llu %s\n", mkd_log_priority(level), id, msg);
        return t.len;
    }
    mkd_log_time(when, sizeof when);
    if (log_format == MKD_LOG_JSON) {
        mkd_text_put(&t,
                     "{\"time\":\"%s\",\"log\":\"daemon\",\"level\":\"%s\","
                     "\"conn\":%llu,\"msg\":",
                     when, mkd_log_level_name(level), id);
        mkd_text_json(&t, msg, mlen);
        mkd_text_put(&t, "}\n");
        return t.len;
    }
    mkd_text_put(&t, "%s mkd %-5s c%llu %s\n", when, mkd_log_level_name(level),
                 id, msg);
    return t.len;
}

void mkd_log(int level, uint64_t conn_id, const char *fmt, ...)
{
    char msg[MSG_MAX], line[LINE_MAX];
    size_t n, m = 0;
    int r;
    va_list ap;

    if (!mkd_log_enabled(level))
        return;
    va_start(ap, fmt);
    r = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r > 0)
        m = (size_t)r < sizeof msg ? (size_t)r : sizeof msg - 1;
    msg[m] = '\0';
    /* Keep one event on one line whatever the message holds. */
    for (size_t i = 0; i < m; i++)
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';
    n = render(line, sizeof line, level, conn_id, msg, m);
    if (n == 0 || line[n - 1] != '\n')
        return; /* cannot happen: the line buffer holds any message */
    (void)fwrite(line, 1, n, stderr);
}
