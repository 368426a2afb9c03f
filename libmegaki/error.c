/*
 * error.c -- names, messages and classes of mk_err codes, all generated
 * from the one table in megaki_errors.def.
 */
#include "megaki.h"

#include <stddef.h>

struct err_row {
    int code;
    const char *name;
    const char *cls;
    const char *msg;
};

static const struct err_row rows[] = {
#define X(name, value, cls, msg) {value, #name, #cls, msg},
#include "megaki_errors.def"
#undef X
};

static const struct err_row *find(int err)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].code == err)
            return &rows[i];
    return NULL;
}

const char *mk_err_name(int err)
{
    const struct err_row *r = find(err);
    return r ? r->name : "MK_ERR_UNKNOWN";
}

const char *mk_strerror(int err)
{
    const struct err_row *r = find(err);
    return r ? r->msg : "unknown error";
}

const char *mk_err_class(int err)
{
    const struct err_row *r = find(err);
    return r ? r->cls : "UNKNOWN";
}

const char *mk_error_code_name(unsigned code)
{
    switch (code) {
    case MK_ECODE_APPLICATION:
        return "application";
    case MK_ECODE_TIMEOUT:
        return "timeout";
    case MK_ECODE_OVERLOADED:
        return "overloaded";
    case MK_ECODE_TOO_LARGE:
        return "too-large";
    case MK_ECODE_INTERNAL:
        return "internal";
    case MK_ECODE_SHUTDOWN:
        return "shutdown";
    default:
        return "unknown";
    }
}
