/*
 * status.c -- names of the backend statuses (backend.h).
 */
#include "backend.h"

const char *mkd_backend_status_name(mkd_backend_status st)
{
    switch (st) {
    case MKD_BACKEND_OK:
        return "ok";
    case MKD_BACKEND_APPLICATION:
        return "application";
    case MKD_BACKEND_TIMEOUT:
        return "timeout";
    case MKD_BACKEND_OVERLOADED:
        return "overloaded";
    case MKD_BACKEND_TOO_LARGE:
        return "too-large";
    case MKD_BACKEND_INTERNAL:
        return "internal";
    case MKD_BACKEND_SHUTDOWN:
        return "shutdown";
    default:
        return "unknown";
    }
}
