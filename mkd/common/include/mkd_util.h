/*
 * mkd_util.h -- small file, text and memory helpers shared by the rooms of
 * mkd. File functions return an mkd_err and put the path and the system's
 * reason into d (mkd_err.h).
 */
#ifndef MKD_UTIL_H
#define MKD_UTIL_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read a whole regular file of at most max bytes into a malloc'd buffer
 * (NUL-terminated, the NUL not counted). MKD_OK, MKD_ERR_SYSTEM (missing,
 * unreadable, not a regular file, too large) or MKD_ERR_NOMEM. The caller
 * wipes the buffer if it held a secret. */
MKD_MUST_CHECK int mkd_read_file(const char *path, size_t max, uint8_t **out,
                                 size_t *len, mkd_diag *d);
/* mkd_read_file with flags: MKD_FILE_PRIVATE refuses (MKD_ERR_SYSTEM, the
 * mode in d) a file that group or others may read or write, as ssh does
 * with private keys. */
#define MKD_FILE_PRIVATE 1
MKD_MUST_CHECK int mkd_read_file_ex(const char *path, size_t max, int flags,
                                    uint8_t **out, size_t *len, mkd_diag *d);
/* Write data to path atomically (temporary file in the same directory,
 * created with the final mode, fsync, rename). MKD_OK or MKD_ERR_SYSTEM. */
MKD_MUST_CHECK int mkd_write_file(const char *path, const void *data,
                                  size_t len, mode_t mode, mkd_diag *d);
/* mkdir -p with mode for each created component. MKD_OK, MKD_ERR_SYSTEM. */
MKD_MUST_CHECK int mkd_mkdirs(const char *path, mode_t mode, mkd_diag *d);
/* mkd_mkdirs of the directory path is in ("dir/file": "dir"); nothing to
 * do for a bare file name. */
MKD_MUST_CHECK int mkd_mkdirs_for(const char *path, mode_t mode, mkd_diag *d);
int mkd_file_exists(const char *path);
/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void mkd_hex(const uint8_t *p, size_t len, char *out);
/* Parse exactly 2*len hex digits. MKD_OK or MKD_ERR_ARG. */
MKD_MUST_CHECK int mkd_unhex(const char *s, size_t slen, uint8_t *out,
                             size_t len);
/* A whole decimal number in min..max: digits only (no sign, no space, no
 * base prefix), every character consumed, no overflow. The one number
 * parser of the configuration, the command line and the tools. MKD_OK or
 * MKD_ERR_ARG (*out untouched). */
MKD_MUST_CHECK int mkd_parse_uint(const char *s, uint64_t min, uint64_t max,
                                  uint64_t *out);
/* Wipe memory that held plaintext or a secret; the compiler cannot drop
 * it. NULL or 0 bytes: nothing. */
void mkd_wipe(void *p, size_t n);

/* A bounded text appender: snprintf that keeps going. A piece that does
 * not fit whole is dropped and marks the text overflowed (nothing is put
 * after it); buf stays NUL-terminated and len counts the bytes in it. */
typedef struct mkd_text {
    char *buf;
    size_t cap, len;
    int overflow;
} mkd_text;

void mkd_text_init(mkd_text *t, char *buf, size_t cap);
void mkd_text_put(mkd_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append s[0..n) as a JSON string, quotes included: '"', '\\' and the
 * control characters escaped, and each byte that is not part of
 * well-formed UTF-8 (worker output may hold anything) replaced by U+FFFD,
 * so that every line parses as JSON. The same rule as mkd_text_put: the
 * whole string or nothing. */
void mkd_text_json(mkd_text *t, const char *s, size_t n);

#endif
