/*
 * session.c -- session objects, framing, and the dispatch table that is the
 * state machine of both sides (docs/PROTOCOL.md §9).
 *
 * Every unit goes through one table lookup keyed by (side, state, type).
 * A unit with no row is fatal (MK_ERR_UNEXPECTED_MSG), and any failure is
 * sticky: the session wipes its keys and keeps reporting the first cause.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void mk_wipe(void *p, size_t len)
{
    if (p != NULL && len != 0)
        mkc_cleanse(p, len);
}

/* --- framing (§3.2) ------------------------------------------------- */

struct unit_bounds {
    uint8_t type;
    uint16_t min, max; /* body length */
};

/* Each bound is the size of the smallest or largest body that can parse,
 * so that framing refuses, from the header alone, everything the parser
 * would refuse for its length (§3). */
static const struct unit_bounds bounds[] = {
    {MK_UNIT_CLIENT_HELLO, MK_CH_MIN_BODY, MK_UNIT_MAX_BODY},
    {MK_UNIT_SERVER_HELLO, MK_SH_MIN_BODY, MK_SH_MAX_BODY},
    {MK_UNIT_HELLO_RETRY, 6, 6 + MK_KEY_ID_LEN *MK_MAX_KEYS},
    {MK_UNIT_ALERT, 10, 10},
    {MK_UNIT_DATA, MK_RECORD_MIN_BODY, MK_RECORD_MAX_BODY},
    {MK_UNIT_ERROR, MK_RECORD_MIN_BODY, MK_ERROR_MAX_BODY},
    {MK_UNIT_CLOSE, MK_RECORD_MIN_BODY, MK_RECORD_MIN_BODY},
};
_Static_assert(MK_CH_MIN_BODY == 89 && MK_SH_MIN_BODY == 136 &&
                   MK_SH_MAX_BODY == 392 && MK_ERROR_MAX_BODY == 1092 &&
                   MK_RECORD_MAX_BODY == 16452,
               "the unit bounds of docs/PROTOCOL.md §3");

int mk_frame_check(const uint8_t *buf, size_t len, size_t *unit_len)
{
    const struct unit_bounds *b = NULL;
    size_t body;

    *unit_len = MK_UNIT_HEADER_LEN;
    if (len == 0)
        return MK_WANT_READ;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i].type == buf[0])
            b = &bounds[i];
    /* The type byte alone already tells a non-Megaki peer apart. */
    if (b == NULL)
        return MK_ERR_BAD_UNIT_TYPE;
    if (len < MK_UNIT_HEADER_LEN)
        return MK_WANT_READ;
    body = mk_get_u16(buf + 2);
    if (body < b->min || body > b->max)
        return MK_ERR_BAD_LENGTH;
    *unit_len = MK_UNIT_HEADER_LEN + body;
    return len >= *unit_len ? MK_OK : MK_WANT_READ;
}

/* --- shared helpers --------------------------------------------------- */

void mk__wr_magic(mk_wr *w)
{
    mk_wr_u8(w, MK_MAGIC0);
    mk_wr_u8(w, MK_MAGIC1);
    mk_wr_u8(w, MK_MAGIC2);
    mk_wr_u8(w, MK_PROTOCOL_VERSION);
}

int mk__rd_magic(mk_rd *r)
{
    uint8_t m0 = mk_rd_u8(r), m1 = mk_rd_u8(r), m2 = mk_rd_u8(r);
    uint8_t v = mk_rd_u8(r);

    if (r->bad || m0 != MK_MAGIC0 || m1 != MK_MAGIC1 || m2 != MK_MAGIC2)
        return MK_ERR_BAD_MAGIC;
    if (v != MK_PROTOCOL_VERSION)
        return MK_ERR_BAD_VERSION;
    return MK_OK;
}

int mk__stale(uint64_t now_ms, uint64_t since_ms, uint32_t seconds)
{
    if (since_ms > now_ms)
        return since_ms - now_ms > MK_CLOCK_SKEW_MS;
    return now_ms - since_ms >= (uint64_t)seconds * 1000u;
}

int mk__random(const mk_session *s, uint8_t *out, size_t len)
{
    /* Randomness failure aborts; there is no fallback (§2). */
    return s->env->random(s->env->ctx, out, len) == 0 ? MK_OK : MK_ERR_RANDOM;
}

static void wipe_handshake(mk_session *s)
{
    mkc_x25519_free(s->eph);
    s->eph = NULL;
    mkc_cleanse(s->early_secret, sizeof s->early_secret);
    mkc_cleanse(s->resume_secret, sizeof s->resume_secret);
    mkc_hash_free(s->transcript);
    s->transcript = NULL;
}

/* Drop the record keys (their contexts cleanse them). */
static void drop_record_keys(mk_session *s)
{
    mkc_rec_free(s->in.rec);
    mkc_rec_free(s->out.rec);
    s->in.rec = NULL;
    s->out.rec = NULL;
}

int mk__fail(mk_session *s, int err)
{
    if (s->state != MK_STATE_FAILED) {
        s->state = MK_STATE_FAILED;
        s->err = err;
    }
    wipe_handshake(s);
    drop_record_keys(s);
    mkc_cleanse(s->resumption_secret, sizeof s->resumption_secret);
    /* A failed session hands out nothing to resume from: fail closed, even
     * though its ticket may still be good. */
    mkc_cleanse(s->ticket, sizeof s->ticket);
    s->ticket_len = 0;
    return s->err;
}

/* Keys are agreed: drop handshake material, set up the request table. */
int mk__establish(mk_session *s)
{
    wipe_handshake(s);
    s->reqs = calloc(s->max_inflight, sizeof *s->reqs);
    if (s->reqs == NULL)
        return MK_ERR_NOMEM;
    s->nreqs = 0;
    s->hs = HS_DONE;
    s->state = MK_STATE_ESTABLISHED;
    return MK_OK;
}

/* --- construction ------------------------------------------------------ */

static mk_session *session_alloc(void)
{
    mk_session *s = calloc(1, sizeof *s);
    if (s != NULL && mkc_hash_new(&s->transcript) != MK_OK) {
        free(s);
        s = NULL;
    }
    return s;
}

int mk_session_new_server(mk_session **out, mk_server_config *cfg)
{
    mk_session *s;

    *out = NULL;
    if (cfg == NULL || cfg->nkeys == 0)
        return MK_ERR_USAGE;
    if ((s = session_alloc()) == NULL)
        return MK_ERR_NOMEM;
    s->is_server = 1;
    s->state = MK_STATE_HANDSHAKE;
    s->hs = HS_SERVER_WAIT_CH;
    s->scfg = mk_server_config_ref(cfg);
    s->env = cfg->env;
    *out = s;
    return MK_OK;
}

/*
 * Session blob (§10): "MKS2" || key_id[8] || received_ms u64 ||
 * lifetime u32 || resumption_secret[32] || ticket (u16 length-prefixed).
 * Returns 1 if the blob can be used to resume with this configuration.
 */
static int import_blob(mk_session *s, const uint8_t *blob, size_t len)
{
    const uint8_t *magic, *ticket;
    uint64_t received, now = s->env->now_ms(s->env->ctx);
    uint32_t lifetime;
    size_t tlen = 0;
    int pinned = 0;
    mk_rd r;

    mk_rd_init(&r, blob, len);
    magic = mk_rd_bytes(&r, 4);
    mk_rd_copy(&r, s->resume_key_id, MK_KEY_ID_LEN);
    received = mk_rd_u64(&r);
    lifetime = mk_rd_u32(&r);
    mk_rd_copy(&r, s->resume_secret, MK_SECRET_LEN);
    ticket = mk_rd_block16(&r, &tlen);
    if (!mk_rd_done(&r) || memcmp(magic, "MKS2", 4) != 0 || tlen == 0 ||
        tlen > MK_TICKET_MAX)
        return 0;
    /* The session must have been made with a key we still pin. */
    for (size_t i = 0; i < s->ccfg->npins; i++)
        if (memcmp(s->ccfg->pin_ids[i], s->resume_key_id, MK_KEY_ID_LEN) == 0)
            pinned = 1;
    /* Expired by our own clock: don't bother the server with it. */
    if (!pinned || mk__stale(now, received, lifetime))
        return 0;
    memcpy(s->resume_ticket, ticket, tlen);
    s->resume_ticket_len = tlen;
    return 1;
}

int mk_session_new_client(mk_session **out, mk_client_config *cfg,
                          const uint8_t *blob, size_t blob_len)
{
    mk_session *s;

    *out = NULL;
    if (cfg == NULL || cfg->npins == 0 || (blob == NULL && blob_len != 0))
        return MK_ERR_USAGE;
    if ((s = session_alloc()) == NULL)
        return MK_ERR_NOMEM;
    s->state = MK_STATE_HANDSHAKE;
    s->hs = HS_CLIENT_START;
    s->ccfg = mk_client_config_ref(cfg);
    s->env = cfg->env;
    if (blob != NULL && blob_len != 0) {
        s->have_resume = import_blob(s, blob, blob_len);
        if (!s->have_resume)
            mkc_cleanse(s->resume_secret, sizeof s->resume_secret);
    }
    *out = s;
    return MK_OK;
}

void mk_session_free(mk_session *s)
{
    if (s == NULL)
        return;
    wipe_handshake(s);
    drop_record_keys(s);
    free(s->reqs);
    mk_server_config_unref(s->scfg);
    mk_client_config_unref(s->ccfg);
    mkc_cleanse(s, sizeof *s);
    free(s);
}

int mk_client_hello(mk_session *s, uint8_t *out, size_t cap, size_t *out_len)
{
    int ret;

    *out_len = 0;
    if (s->state == MK_STATE_FAILED)
        return s->err;
    if (s->is_server || s->hs != HS_CLIENT_START)
        return MK_ERR_STATE;
    if ((ret = mk__client_write_hello(s, out, cap, out_len)) != MK_OK) {
        if (ret != MK_ERR_BUFFER)
            mk__fail(s, ret);
        return ret;
    }
    s->hs = HS_CLIENT_WAIT_SH;
    return MK_OK;
}

/* --- the state machine ------------------------------------------------ */

typedef int (*step_fn)(mk_session *, const uint8_t *, size_t, uint8_t *, size_t,
                       mk_event *);

struct step {
    int is_server;
    int hs;
    uint8_t type;
    step_fn fn;
};

/* Every legal (side, state, unit) triple; anything else is fatal. */
static const struct step steps[] = {
    {1, HS_SERVER_WAIT_CH, MK_UNIT_CLIENT_HELLO, mk__server_on_client_hello},
    {1, HS_DONE, MK_UNIT_DATA, mk__handle_record},
    {1, HS_DONE, MK_UNIT_CLOSE, mk__handle_record},
    {0, HS_CLIENT_WAIT_SH, MK_UNIT_SERVER_HELLO, mk__client_on_server_hello},
    {0, HS_CLIENT_WAIT_SH, MK_UNIT_HELLO_RETRY, mk__client_on_retry},
    {0, HS_CLIENT_WAIT_SH, MK_UNIT_ALERT, mk__client_on_alert},
    {0, HS_DONE, MK_UNIT_DATA, mk__handle_record},
    {0, HS_DONE, MK_UNIT_ERROR, mk__handle_record},
    {0, HS_DONE, MK_UNIT_CLOSE, mk__handle_record},
};

int mk_session_handle(mk_session *s, const uint8_t *unit, size_t unit_len,
                      uint8_t *out, size_t cap, mk_event *ev)
{
    const struct step *st = NULL;
    size_t need = 0;
    int ret;

    memset(ev, 0, sizeof *ev);
    if (s->state == MK_STATE_FAILED)
        return s->err;
    if (unit == NULL || out == NULL)
        return MK_ERR_USAGE;
    if (cap < MK_HANDLE_OUT_LEN)
        return MK_ERR_BUFFER;
    ret = mk_frame_check(unit, unit_len, &need);
    if (ret == MK_OK && need != unit_len)
        ret = MK_ERR_USAGE; /* the caller must hand over exactly one unit */
    if (ret == MK_WANT_READ)
        ret = MK_ERR_USAGE;
    if (ret != MK_OK)
        return mk__fail(s, ret);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (steps[i].is_server == s->is_server && steps[i].hs == s->hs &&
            steps[i].type == unit[0])
            st = &steps[i];
    if (st == NULL) {
        ret = MK_ERR_UNEXPECTED_MSG;
        /* A server still in the handshake tells the peer it is confused. */
        if (s->is_server && s->hs == HS_SERVER_WAIT_CH &&
            mk_write_alert(MK_ALERT_BAD_MESSAGE, 0, out, cap, &ev->len) ==
                MK_OK)
            ev->type = MK_EV_SEND;
        return mk__fail(s, ret);
    }
    ret = st->fn(s, unit, unit_len, out, cap, ev);
    if (ret != MK_OK)
        return mk__fail(s, ret);
    return MK_OK;
}

int mk_write_alert(unsigned code, uint32_t arg, uint8_t *out, size_t cap,
                   size_t *out_len)
{
    mk_wr w;

    *out_len = 0;
    if (code == 0 || code > 0xFF)
        return MK_ERR_USAGE;
    mk_wr_init(&w, out, cap);
    mk_wr_u8(&w, MK_UNIT_ALERT);
    mk_wr_u8(&w, 0);
    mk_wr_u16(&w, 10);
    mk__wr_magic(&w);
    mk_wr_u8(&w, (uint8_t)code);
    mk_wr_u8(&w, 0);
    mk_wr_u32(&w, arg);
    if (w.bad)
        return MK_ERR_BUFFER;
    *out_len = mk_wr_len(&w);
    return MK_OK;
}

/* --- queries ----------------------------------------------------------- */

void mk_session_get_info(const mk_session *s, mk_session_info *info)
{
    memset(info, 0, sizeof *info);
    info->state = s->state;
    info->resumed = s->resumed;
    info->early_accepted = 0;
    memcpy(info->key_id, s->key_id, MK_KEY_ID_LEN);
    memcpy(info->session_id, s->session_id, MK_SESSION_ID_LEN);
    info->max_message = s->max_message;
    info->max_inflight = s->max_inflight;
    info->inflight = s->nreqs;
    info->has_ticket = !s->is_server && s->ticket_len > 0;
}

int mk_session_state(const mk_session *s)
{
    return s->state;
}

int mk_session_error(const mk_session *s)
{
    return s->state == MK_STATE_FAILED ? s->err : MK_OK;
}

uint32_t mk_session_retry_after(const mk_session *s)
{
    return s->retry_after;
}

int mk_session_export(const mk_session *s, uint8_t *out, size_t cap,
                      size_t *out_len)
{
    mk_wr w;

    *out_len = 0;
    if (s->is_server || s->ticket_len == 0 || s->state == MK_STATE_FAILED)
        return MK_ERR_STATE;
    mk_wr_init(&w, out, cap);
    mk_wr_bytes(&w, (const uint8_t *)"MKS2", 4);
    mk_wr_bytes(&w, s->key_id, MK_KEY_ID_LEN);
    mk_wr_u64(&w, s->ticket_received_ms);
    mk_wr_u32(&w, s->ticket_lifetime);
    mk_wr_bytes(&w, s->resumption_secret, MK_SECRET_LEN);
    mk_wr_u16(&w, (uint16_t)s->ticket_len);
    mk_wr_bytes(&w, s->ticket, s->ticket_len);
    if (w.bad) {
        mkc_cleanse(out, cap);
        return MK_ERR_BUFFER;
    }
    *out_len = mk_wr_len(&w);
    return MK_OK;
}
