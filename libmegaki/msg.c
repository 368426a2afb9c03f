/*
 * msg.c -- write and parse each handshake message (docs/PROTOCOL.md §4).
 *
 * Every parser reads through an mk_rd cursor and fails unless the unit is
 * consumed exactly; every writer back-patches the unit length. The unit
 * header's flags byte must be zero on handshake units.
 */
#include "msg.h"

#include <string.h>

static void wr_header(mk_wr *w, uint8_t type)
{
    mk_wr_u8(w, type);
    mk_wr_u8(w, 0);
    mk_wr_u16(w, 0); /* length, back-patched by wr_finish */
}

static int wr_finish(mk_wr *w, size_t *out_len)
{
    size_t len = mk_wr_len(w);

    if (w->bad)
        return MK_ERR_BUFFER;
    if (len - MK_UNIT_HEADER_LEN > MK_UNIT_MAX_BODY)
        return MK_ERR_USAGE;
    mk_put_u16(w->start + 2, (uint16_t)(len - MK_UNIT_HEADER_LEN));
    *out_len = len;
    return MK_OK;
}

/* Read the header of a handshake unit of the given type and its magic. */
static int rd_header(mk_rd *r, const uint8_t *unit, size_t len, uint8_t type)
{
    mk_rd_init(r, unit, len);
    if (mk_rd_u8(r) != type || mk_rd_u8(r) != 0 ||
        (size_t)mk_rd_u16(r) + MK_UNIT_HEADER_LEN != len)
        return MK_ERR_BAD_MESSAGE;
    return mk__rd_magic(r);
}

/* --- CLIENT_HELLO (§4.1) ---------------------------------------------- */

int mk__ch_write(const mk_ch *ch, uint8_t *out, size_t cap, size_t *out_len)
{
    mk_wr w;

    *out_len = 0;
    mk_wr_init(&w, out, cap);
    wr_header(&w, MK_UNIT_CLIENT_HELLO);
    mk__wr_magic(&w);
    mk_wr_u8(&w, ch->mode);
    mk_wr_u8(&w, ch->flags);
    mk_wr_bytes(&w, ch->random, MK_RANDOM_LEN);
    mk_wr_bytes(&w, ch->share, MKC_X25519_LEN);
    mk_wr_u64(&w, ch->time_ms);
    if (ch->mode == MK_MODE_FULL) {
        mk_wr_bytes(&w, ch->key_id, MK_KEY_ID_LEN);
        mk_wr_u16(&w, (uint16_t)ch->kem_len);
        mk_wr_bytes(&w, ch->kem, ch->kem_len);
    } else {
        mk_wr_u16(&w, (uint16_t)ch->ticket_len);
        mk_wr_bytes(&w, ch->ticket, ch->ticket_len);
    }
    if (ch->flags & MK_CH_EARLY) {
        mk_wr_u16(&w, (uint16_t)ch->early_len);
        mk_wr_bytes(&w, ch->early, ch->early_len);
    }
    if (ch->mode == MK_MODE_RESUME) {
        uint8_t *b = mk_wr_reserve(&w, MK_MAC_LEN);
        if (b)
            memset(b, 0, MK_MAC_LEN);
    }
    return wr_finish(&w, out_len);
}

int mk__ch_parse(const uint8_t *unit, size_t len, mk_ch *ch)
{
    mk_rd r;
    int ret;

    memset(ch, 0, sizeof *ch);
    if ((ret = rd_header(&r, unit, len, MK_UNIT_CLIENT_HELLO)) != MK_OK)
        return ret;
    ch->mode = mk_rd_u8(&r);
    ch->flags = mk_rd_u8(&r);
    mk_rd_copy(&r, ch->random, MK_RANDOM_LEN);
    mk_rd_copy(&r, ch->share, MKC_X25519_LEN);
    ch->time_ms = mk_rd_u64(&r);
    if (ch->flags & ~MK_CH_EARLY)
        return MK_ERR_BAD_MESSAGE;
    switch (ch->mode) {
    case MK_MODE_FULL:
        mk_rd_copy(&r, ch->key_id, MK_KEY_ID_LEN);
        ch->kem = mk_rd_block16(&r, &ch->kem_len);
        break;
    case MK_MODE_RESUME:
        ch->ticket = mk_rd_block16(&r, &ch->ticket_len);
        break;
    default:
        return MK_ERR_BAD_MESSAGE;
    }
    if (ch->flags & MK_CH_EARLY)
        ch->early = mk_rd_block16(&r, &ch->early_len);
    if (ch->mode == MK_MODE_RESUME)
        ch->binder = mk_rd_bytes(&r, MK_MAC_LEN);
    if (!mk_rd_done(&r))
        return MK_ERR_BAD_MESSAGE;
    if (ch->mode == MK_MODE_FULL && ch->kem_len == 0)
        return MK_ERR_BAD_MESSAGE;
    /* A ticket comes from a SERVER_HELLO, which carries at most 256 bytes
     * (§4.2.1): a length outside 1..256 is a malformed hello, not a ticket
     * to refuse (§4.1). */
    if (ch->mode == MK_MODE_RESUME &&
        (ch->ticket_len == 0 || ch->ticket_len > MK_TICKET_MAX))
        return MK_ERR_BAD_MESSAGE;
    return MK_OK;
}

int mk_client_hello_resumes(const uint8_t *unit, size_t len)
{
    mk_ch ch;
    return unit != NULL && mk__ch_parse(unit, len, &ch) == MK_OK &&
           ch.mode == MK_MODE_RESUME;
}

/* --- SERVER_HELLO (§4.2) ----------------------------------------------- */

int mk__sh_write(const mk_sh *sh, uint8_t *out, size_t cap, size_t *out_len)
{
    mk_wr w;
    uint8_t *fin;

    *out_len = 0;
    mk_wr_init(&w, out, cap);
    wr_header(&w, MK_UNIT_SERVER_HELLO);
    mk__wr_magic(&w);
    mk_wr_u8(&w, sh->mode);
    mk_wr_u8(&w, sh->flags);
    mk_wr_bytes(&w, sh->random, MK_RANDOM_LEN);
    mk_wr_bytes(&w, sh->share, MKC_X25519_LEN);
    mk_wr_u16(&w, (uint16_t)sh->extras_len);
    mk_wr_bytes(&w, sh->extras, sh->extras_len);
    if ((fin = mk_wr_reserve(&w, MK_MAC_LEN)) != NULL)
        memset(fin, 0, MK_MAC_LEN);
    return wr_finish(&w, out_len);
}

int mk__sh_parse(const uint8_t *unit, size_t len, mk_sh *sh)
{
    mk_rd r;
    int ret;

    memset(sh, 0, sizeof *sh);
    if ((ret = rd_header(&r, unit, len, MK_UNIT_SERVER_HELLO)) != MK_OK)
        return ret;
    sh->mode = mk_rd_u8(&r);
    sh->flags = mk_rd_u8(&r);
    mk_rd_copy(&r, sh->random, MK_RANDOM_LEN);
    mk_rd_copy(&r, sh->share, MKC_X25519_LEN);
    sh->extras = mk_rd_block16(&r, &sh->extras_len);
    sh->finished = mk_rd_bytes(&r, MK_MAC_LEN);
    if (!mk_rd_done(&r))
        return MK_ERR_BAD_MESSAGE;
    /* IV plus at least one block, whole blocks only. */
    if (sh->extras_len < MK_IV_LEN + 16 || sh->extras_len % 16 != 0)
        return MK_ERR_BAD_MESSAGE;
    return MK_OK;
}

/* --- encrypted extras (§4.2.1) ----------------------------------------- */

int mk__extras_write(const mk_extras *x, uint8_t *out, size_t cap,
                     size_t *out_len)
{
    mk_wr w;

    mk_wr_init(&w, out, cap);
    mk_wr_u32(&w, x->max_message);
    mk_wr_u16(&w, (uint16_t)x->max_inflight);
    mk_wr_u16(&w, 0);
    mk_wr_u32(&w, x->ticket_lifetime);
    mk_wr_u16(&w, (uint16_t)x->ticket_len);
    mk_wr_bytes(&w, x->ticket, x->ticket_len);
    if (w.bad)
        return MK_ERR_BUFFER;
    *out_len = mk_wr_len(&w);
    return MK_OK;
}

int mk__extras_parse(const uint8_t *pt, size_t len, mk_extras *x)
{
    mk_rd r;

    memset(x, 0, sizeof *x);
    mk_rd_init(&r, pt, len);
    x->max_message = mk_rd_u32(&r);
    x->max_inflight = mk_rd_u16(&r);
    if (mk_rd_u16(&r) != 0)
        return MK_ERR_BAD_MESSAGE;
    x->ticket_lifetime = mk_rd_u32(&r);
    x->ticket = mk_rd_block16(&r, &x->ticket_len);
    if (!mk_rd_done(&r))
        return MK_ERR_BAD_MESSAGE;
    if (x->max_message < 1 || x->max_message > MK_MESSAGE_MAX_LIMIT ||
        x->max_inflight < 1 || x->max_inflight > MK_INFLIGHT_LIMIT ||
        x->ticket_len > MK_TICKET_MAX ||
        x->ticket_lifetime > MK_TICKET_LIFETIME_LIMIT)
        return MK_ERR_BAD_MESSAGE;
    /* A ticket without a lifetime, or a lifetime without a ticket, is no
     * way to say "no resumption" (that is both zero): fail closed rather
     * than guess which half the server meant (§4.2.1). */
    if ((x->ticket_len == 0) != (x->ticket_lifetime == 0))
        return MK_ERR_BAD_MESSAGE;
    return MK_OK;
}

/* --- HELLO_RETRY (§4.3) ------------------------------------------------ */

int mk__retry_write(const mk_retry *rt, uint8_t *out, size_t cap,
                    size_t *out_len)
{
    mk_wr w;

    *out_len = 0;
    if (rt->nkeys > MK_MAX_KEYS)
        return MK_ERR_USAGE;
    mk_wr_init(&w, out, cap);
    wr_header(&w, MK_UNIT_HELLO_RETRY);
    mk__wr_magic(&w);
    mk_wr_u8(&w, rt->reason);
    mk_wr_u8(&w, rt->nkeys);
    for (size_t i = 0; i < rt->nkeys; i++)
        mk_wr_bytes(&w, rt->key_ids[i], MK_KEY_ID_LEN);
    return wr_finish(&w, out_len);
}

int mk__retry_parse(const uint8_t *unit, size_t len, mk_retry *rt)
{
    mk_rd r;
    int ret;

    memset(rt, 0, sizeof *rt);
    if ((ret = rd_header(&r, unit, len, MK_UNIT_HELLO_RETRY)) != MK_OK)
        return ret;
    rt->reason = mk_rd_u8(&r);
    rt->nkeys = mk_rd_u8(&r);
    if (rt->nkeys > MK_MAX_KEYS)
        return MK_ERR_BAD_MESSAGE;
    for (size_t i = 0; i < rt->nkeys; i++)
        mk_rd_copy(&r, rt->key_ids[i], MK_KEY_ID_LEN);
    if (!mk_rd_done(&r))
        return MK_ERR_BAD_MESSAGE;
    if (rt->reason != MK_RETRY_TICKET && rt->reason != MK_RETRY_KEY_ID)
        return MK_ERR_BAD_MESSAGE;
    return MK_OK;
}

/* --- ALERT (§4.4); written by mk_write_alert() in session.c ------------- */

int mk__alert_parse(const uint8_t *unit, size_t len, mk_alert_msg *a)
{
    mk_rd r;
    int ret;

    memset(a, 0, sizeof *a);
    if ((ret = rd_header(&r, unit, len, MK_UNIT_ALERT)) != MK_OK)
        return ret;
    a->code = mk_rd_u8(&r);
    if (mk_rd_u8(&r) != 0)
        return MK_ERR_BAD_MESSAGE;
    a->arg = mk_rd_u32(&r);
    if (!mk_rd_done(&r))
        return MK_ERR_BAD_MESSAGE;
    return MK_OK;
}
