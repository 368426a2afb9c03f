/*
 * error.c -- names, messages and classes of mkd_err codes, generated from
 * the table in mkd_errors.def, and the diagnostic line.
 */
#include "mkd_err.h"

#include <stdarg.h>
#include <stdio.h>

struct err_row {
    int code;
    const char *name;
    const char *cls;
    const char *msg;
};

static const struct err_row rows[] = {
#define X(name, value, cls, msg) {value, #name, #cls, msg},
#include "mkd_errors.def"
#undef X
};

static const struct err_row *find(int err)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].code == err)
            return &rows[i];
    return NULL;
}

const char *mkd_err_name(int err)
{
    const struct err_row *r = find(err);
    return r ? r->name : "MKD_ERR_UNKNOWN";
}

const char *mkd_strerror(int err)
{
    const struct err_row *r = find(err);
    return r ? r->msg : "unknown error";
}

const char *mkd_err_class(int err)
{
    const struct err_row *r = find(err);
    return r ? r->cls : "UNKNOWN";
}

void mkd_diag_clear(mkd_diag *d)
{
    if (d != NULL)
        d->text[0] = '\0';
}

int mkd_fail(mkd_diag *d, int code, const char *fmt, ...)
{
    va_list ap;

    if (d == NULL)
        return code;
    va_start(ap, fmt);
    (void)vsnprintf(d->text, sizeof d->text, fmt, ap);
    va_end(ap);
    return code;
}

const char *mkd_diag_text(const mkd_diag *d, int code)
{
    if (d != NULL && d->text[0] != '\0')
        return d->text;
    return mkd_strerror(code);
}
