/*
 * testlib.h -- what every test suite shares: the clock, sleeping, waiting
 * for a condition with a deadline, whole files, and dying with a message.
 *
 * Tests must pass on a loaded machine (both cores busy with other work,
 * sanitizers, valgrind). So nothing here waits a fixed time and hopes: a
 * test that needs something to happen polls for it with TL_POLL_UNTIL and a
 * deadline generous enough for a slow machine, and fails only when the
 * deadline passes. Deadlines are stretched by tl_deadline_ms() under
 * valgrind and sanitizers, and by the TL_TIMEOUT_SCALE environment
 * variable (a whole number, default 1) for machines slower still.
 */
#ifndef MK_TESTLIB_H
#define MK_TESTLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds. */
uint64_t tl_now_ms(void);
/* Sleep ms milliseconds, resuming after signals. */
void tl_sleep_ms(unsigned ms);
/* ms scaled for this run: times TL_TIMEOUT_SCALE, and times 4 under
 * valgrind or a sanitizer (tl_slow_build). */
unsigned tl_deadline_ms(unsigned ms);
/* 1 when this binary was built with a sanitizer or runs under valgrind. */
int tl_slow_build(void);

/* Poll cond every 10 ms until it holds (ok = 1) or tl_deadline_ms(ms)
 * pass (ok = 0). cond is evaluated once more at the deadline, so a
 * condition that became true while we slept is never missed. */
#define TL_POLL_UNTIL(ok, cond, ms)                                            \
    do {                                                                       \
        uint64_t tl_until_ = tl_now_ms() + tl_deadline_ms(ms);                 \
        for (;;) {                                                             \
            if (cond) {                                                        \
                (ok) = 1;                                                      \
                break;                                                         \
            }                                                                  \
            if (tl_now_ms() >= tl_until_) {                                    \
                (ok) = (cond) ? 1 : 0;                                         \
                break;                                                         \
            }                                                                  \
            tl_sleep_ms(10);                                                   \
        }                                                                      \
    } while (0)

/* The whole file, NUL-terminated (the NUL not counted in *len, which may
 * be NULL); NULL if it cannot be read. malloc'd. */
char *tl_read_file(const char *path, size_t *len);
/* The same, for fixtures that must exist (tests run from the project
 * root): dies with the path if the file cannot be read. */
uint8_t *tl_load(const char *path, size_t *len);
/* Write len bytes to path (created or truncated, mode 0644). 0 or -1. */
int tl_write_file(const char *path, const void *data, size_t len);
/* Run cmd through the shell; its standard output into out (cut at
 * cap - 1, NUL-terminated). Returns its exit status (0..255), or -1 if it
 * could not run or did not exit normally. */
int tl_run_capture(const char *cmd, char *out, size_t cap);

/* Print "prog: message" (and strerror(errno) when the message ends in
 * ':') to stderr and exit(1). For setup failures in programs that are not
 * cmocka tests (fuzz corpus generator, test servers, benchmarks). */
void tl_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
/* The same with a va_list, for wrappers that print more first. */
void tl_vdie(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0), noreturn));
/* The name tl_die prints (default "test"). */
void tl_set_prog(const char *name);

/* Command lines of the benchmarks and test tools (getopt_long). A usage
 * error: "prog: message", then "Try 'prog --help'.", and exit(2); with fmt
 * NULL only the second line (after getopt_long's own message). */
void tl_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
/* getopt_long for the tools: the next option's val. -h and --help call
 * usage (which prints to stdout) and exit 0; an unknown option or a
 * missing value is a usage error (getopt's message, the pointer to
 * --help, exit 2). -1 at the end of the options, where an operand left is
 * a usage error too unless shorts starts with '+' (the caller takes what
 * follows). */
struct option;
int tl_getopt(int argc, char **argv, const char *shorts,
              const struct option *longs, void (*usage)(void));
/* Option name's value: a whole decimal number in min..max, or a usage
 * error that says so. */
unsigned long long tl_opt_uint(const char *name, const char *arg,
                               unsigned long long min, unsigned long long max);
/* A decimal number, fractions allowed, in min..max, or a usage error. */
double tl_opt_double(const char *name, const char *arg, double min, double max);

#endif
