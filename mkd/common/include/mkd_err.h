/*
 * mkd_err.h -- MKD's one error convention.
 *
 * Every fallible function in mkd/ returns an int from the table in
 * mkd_errors.def: MKD_OK (0) or a code whose name, class and message come
 * from that table. The code is always the signal. Where an operator needs
 * more than the code to act (which file, which line, what the system
 * said), the function also writes one line of context into a caller's
 * mkd_diag; that text is for humans only and never decides anything.
 *
 *     mkd_diag d;
 *     if ((r = keys_load_server_config(&src, &sc, &d)) != MKD_OK)
 *         mkd_error(0, "%s", mkd_diag_text(&d, r));
 *
 * Inside such a function, mkd_fail() records the context and returns the
 * code in one statement:
 *
 *     return mkd_fail(d, MKD_ERR_KEY_FILE, "%s: %s", path, strerror(e));
 */
#ifndef MKD_ERR_H
#define MKD_ERR_H

#include "mkd_compiler.h"

#include <stddef.h>

typedef enum mkd_err {
#define X(name, value, cls, msg) name = value,
#include "mkd_errors.def"
#undef X
} mkd_err;

/* "MKD_ERR_CONFIG"; "MKD_ERR_UNKNOWN" for a value not in the table. */
const char *mkd_err_name(int err);
/* "invalid configuration"; "unknown error" for a value not in the table. */
const char *mkd_strerror(int err);
/* "CONFIG"; "UNKNOWN" for a value not in the table. */
const char *mkd_err_class(int err);

/* One line of context for the operator (paths, line numbers, what the
 * system said). Never holds a secret. */
typedef struct mkd_diag {
    char text[512];
} mkd_diag;

/* Clear d (the functions that take one do it on entry, so a caller never
 * reads a stale line). d may be NULL. */
void mkd_diag_clear(mkd_diag *d);
/* Format the context into d (may be NULL: then only the code counts) and
 * return code, so that a failure is one statement. */
int mkd_fail(mkd_diag *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The context if one was recorded, else the code's message. */
const char *mkd_diag_text(const mkd_diag *d, int code);

#endif
