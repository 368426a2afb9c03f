/*
 * util.h -- small file and text helpers shared by the mkd subcommands.
 */
#ifndef MKD_UTIL_H
#define MKD_UTIL_H

#include "compiler.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read a whole regular file of at most max bytes into a malloc'd buffer
 * (NUL-terminated, the NUL not counted). Returns 0 or an errno value. The
 * caller wipes it if it held a secret. */
MKD_MUST_CHECK int mkd_read_file(const char *path, size_t max, uint8_t **out, size_t *len);
/* Write data to path atomically (temporary file in the same directory,
 * fsync, rename) with the given mode. Returns 0 or an errno value. */
MKD_MUST_CHECK int mkd_write_file(const char *path, const void *data, size_t len,
                   mode_t mode);
/* mkdir -p with mode for each created component. Returns 0 or errno. */
MKD_MUST_CHECK int mkd_mkdirs(const char *path, mode_t mode);
int mkd_file_exists(const char *path);
/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void mkd_hex(const uint8_t *p, size_t len, char *out);
/* Parse exactly 2*len hex digits. Returns 0 or -1. */
MKD_MUST_CHECK int mkd_unhex(const char *s, size_t slen, uint8_t *out, size_t len);
/* Monotonic milliseconds (for rates and deadlines outside the loop). */
uint64_t mkd_now_ms(void);

#endif
