/*
 * env.c -- the production environment: the system CSPRNG (through the
 * crypto adapter) and the real-time clock. Tests inject their own.
 */
#include "crypto.h"
#include "megaki.h"

#include <time.h>

static int sys_random(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    return mkc_random(out, len);
}

static uint64_t sys_now_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const mk_env system_env = {sys_random, sys_now_ms, NULL};

const mk_env *mk_env_system(void)
{
    return &system_env;
}
