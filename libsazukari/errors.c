/*
 * errors.c -- names and messages of sz_err codes (from the one table in
 * sazukari_errors.def), the per-thread record of the last failure, and what
 * each libmegaki failure and server error code means to a client.
 */
#include "internal.h"

#include "megaki_version.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_row {
    int code;
    const char *name;
    const char *msg;
};

static const struct err_row rows[] = {
#define X(name, value, msg) {value, #name, msg},
#include "sazukari_errors.def"
#undef X
};

static const struct err_row *find(int err)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].code == err)
            return &rows[i];
    return NULL;
}

const char *sz_err_name(int err)
{
    const struct err_row *r = find(err);
    return r ? r->name : "SZ_ERR_UNKNOWN";
}

const char *sz_strerror(int err)
{
    const struct err_row *r = find(err);
    return r ? r->msg : "unknown error";
}

const char *sz_version(void)
{
    return MEGAKI_VERSION;
}

/* errno-style: each thread sees the failure of its own last call. A
 * connection may move between threads, so a connection's own sticky error
 * is kept in the connection and copied here whenever it is reported. */
static _Thread_local sz_error_info last;
/* Whether that failure proves its request did not run (§8.5). */
static _Thread_local int last_not_run;

void sz_last_error(sz_error_info *info)
{
    if (info != NULL)
        *info = last;
}

int sz__set_error(const sz_error_info *info)
{
    if (info != &last)
        last = *info;
    last_not_run = 0;
    return info->err;
}

void sz__set_not_run(int not_run)
{
    last_not_run = not_run != 0;
}

int sz_last_error_not_run(void)
{
    return last_not_run;
}

static void vinfo(sz_error_info *info, int err, int mkerr, const char *fmt,
                  va_list ap)
{
    memset(info, 0, sizeof *info);
    info->err = err;
    info->mk_err = mkerr;
    if (fmt != NULL)
        vsnprintf(info->text, sizeof info->text, fmt, ap);
}

void sz__info(sz_error_info *info, int err, int mkerr, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vinfo(info, err, mkerr, fmt, ap);
    va_end(ap);
}

int sz__fail(int err, int mkerr, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vinfo(&last, err, mkerr, fmt, ap);
    va_end(ap);
    return err;
}

int sz__map_mk(int mkerr)
{
    switch (mkerr) {
    case MK_OK:
        return SZ_OK;
    /* Either the server holds none of our keys, or it claimed one and
     * could not prove it: to the application both mean "not my server". */
    case MK_ERR_PIN:
    case MK_ERR_SERVER_AUTH:
        return SZ_ERR_PIN;
    case MK_ERR_PEER_RETRY_LATER:
        return SZ_ERR_BUSY;
    case MK_ERR_PEER_HS_FAILED:
    case MK_ERR_PEER_BAD_MESSAGE:
        return SZ_ERR_HANDSHAKE;
    case MK_ERR_PEER_VERSION:
    case MK_ERR_BAD_VERSION:
        return SZ_ERR_VERSION;
    case MK_ERR_PEER_CLOSED:
        return SZ_ERR_CLOSED;
    case MK_ERR_KEY_FORMAT:
    case MK_ERR_KEY_SIZE:
        return SZ_ERR_KEY;
    case MK_ERR_CRYPTO:
    case MK_ERR_RANDOM:
        return SZ_ERR_CRYPTO;
    case MK_ERR_NOMEM:
        return SZ_ERR_NOMEM;
    case MK_ERR_IO:
    case MK_ERR_EOF:
        return SZ_ERR_IO;
    case MK_ERR_TIMEOUT:
        return SZ_ERR_TIMEOUT;
    case MK_ERR_USAGE:
    case MK_ERR_STATE:
    case MK_ERR_BUFFER:
    case MK_ERR_LIMIT:
        /* The driver checks everything the core would refuse, so these
         * mean a bug here; USAGE is the honest name for it. */
        return SZ_ERR_USAGE;
    default:
        /* Everything of class PROTO, and codes added later. */
        return SZ_ERR_PROTOCOL;
    }
}

int sz__map_ecode(unsigned code)
{
    switch (code) {
    case MK_ECODE_APPLICATION:
        return SZ_ERR_SERVER_APP;
    case MK_ECODE_TIMEOUT:
        return SZ_ERR_SERVER_TIMEOUT;
    case MK_ECODE_OVERLOADED:
        return SZ_ERR_SERVER_OVERLOADED;
    case MK_ECODE_TOO_LARGE:
        return SZ_ERR_TOO_LARGE;
    case MK_ECODE_INTERNAL:
        return SZ_ERR_SERVER_INTERNAL;
    case MK_ECODE_SHUTDOWN:
        return SZ_ERR_SERVER_SHUTDOWN;
    default:
        return SZ_ERR_SERVER_OTHER;
    }
}
