/*
 * msg.c -- the spawner's message codec (spawner_msg.h).
 */
#include <signal.h>
#include <string.h>

#include "spawner_msg.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Which fields each type carries; the others must be zero. */
enum {
    F_SLOT = 1,
    F_PID = 2,
    F_ERR = 4,
    F_STATUS = 8,
    F_SIG = 16,
    F_MAXMSG = 32,
    F_SETTINGS = 64
};

static int fields_of(unsigned type)
{
    switch (type) {
    case SPAWNER_SPAWN:
        return F_SLOT | F_MAXMSG | F_SETTINGS;
    case SPAWNER_SPAWNED:
        return F_SLOT | F_PID;
    case SPAWNER_FAILED:
        return F_SLOT | F_ERR;
    case SPAWNER_KILL:
        return F_PID | F_SIG;
    case SPAWNER_EXITED:
        return F_PID | F_STATUS | F_SIG;
    case SPAWNER_RELOAD:
        return F_SETTINGS;
    case SPAWNER_RELOADED:
        return F_ERR;
    default:
        return -1;
    }
}

/* The ranges of the fields a type carries. */
static int in_range(const spawner_msg *m)
{
    switch (m->type) {
    case SPAWNER_SPAWN:
    case SPAWNER_SPAWNED:
    case SPAWNER_FAILED:
        if (m->slot > SPAWNER_SLOT_MAX)
            return 0;
        break;
    default:
        break;
    }
    switch (m->type) {
    case SPAWNER_SPAWN:
        return m->max_message > 0 && m->max_message <= SPAWNER_MESSAGE_MAX;
    case SPAWNER_SPAWNED:
    case SPAWNER_EXITED:
        return m->pid > 0 && m->sig < 128;
    case SPAWNER_KILL:
        return m->pid > 0 && (m->sig == SIGTERM || m->sig == SIGKILL);
    case SPAWNER_FAILED:
        return m->err > 0;
    case SPAWNER_RELOADED:
        return m->err >= 0;
    default:
        return 1;
    }
}

/* Fields a type does not carry are zero. */
static int unused_zero(const spawner_msg *m, int f)
{
    return ((f & F_SLOT) || m->slot == 0) && ((f & F_PID) || m->pid == 0) &&
           ((f & F_ERR) || m->err == 0) && ((f & F_STATUS) || m->status == 0) &&
           ((f & F_SIG) || m->sig == 0) &&
           ((f & F_MAXMSG) || m->max_message == 0) &&
           ((f & F_SETTINGS) || m->settings == 0);
}

static int valid(const spawner_msg *m)
{
    int f = fields_of(m->type);

    if (f < 0)
        return MKD_ERR_FRAME_TYPE;
    return unused_zero(m, f) && in_range(m) ? MKD_OK : MKD_ERR_FRAME_MALFORMED;
}

int spawner_msg_encode(const spawner_msg *m, uint8_t out[SPAWNER_MSG_LEN])
{
    uint64_t st = (uint64_t)m->status;

    if (valid(m) != MKD_OK)
        return MKD_ERR_ARG;
    out[0] = m->type;
    out[1] = m->sig;
    out[2] = out[3] = 0;
    put32(out + 4, m->slot);
    put32(out + 8, (uint32_t)m->pid);
    put32(out + 12, (uint32_t)m->err);
    put32(out + 16, (uint32_t)(st >> 32));
    put32(out + 20, (uint32_t)st);
    put32(out + 24, m->max_message);
    put32(out + 28, (uint32_t)(m->settings >> 32));
    put32(out + 32, (uint32_t)m->settings);
    return MKD_OK;
}

int spawner_msg_parse(const uint8_t *buf, size_t len, spawner_msg *m)
{
    int r;

    memset(m, 0, sizeof *m);
    if (buf == NULL || len != SPAWNER_MSG_LEN || buf[2] != 0 || buf[3] != 0)
        return MKD_ERR_FRAME_MALFORMED;
    m->type = buf[0];
    m->sig = buf[1];
    m->slot = get32(buf + 4);
    m->pid = (int32_t)get32(buf + 8);
    m->err = (int32_t)get32(buf + 12);
    m->status = (int64_t)((uint64_t)get32(buf + 16) << 32 | get32(buf + 20));
    m->max_message = get32(buf + 24);
    m->settings = (uint64_t)get32(buf + 28) << 32 | get32(buf + 32);
    if ((r = valid(m)) != MKD_OK)
        memset(m, 0, sizeof *m);
    return r;
}

const char *spawner_msg_name(unsigned type)
{
    static const char *const names[] = {
        "unknown", "SPAWN",  "SPAWNED", "FAILED",
        "KILL",    "EXITED", "RELOAD",  "RELOADED",
    };
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}
