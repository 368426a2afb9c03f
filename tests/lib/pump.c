/*
 * pump.c -- see pump.h.
 */
#include "pump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "testlib.h"

/* The deterministic generator's hash, straight from libcrypto: the pump
 * uses libmegaki's public API only. */
static void sha256(const void *p, size_t n, uint8_t out[32])
{
    if (EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL) != 1)
        abort();
}

static void refill(tu_env *e)
{
    uint8_t in[40];
    memcpy(in, e->seed, 32);
    for (int i = 0; i < 8; i++)
        in[32 + i] = (uint8_t)(e->counter >> (56 - 8 * i));
    e->counter++;
    sha256(in, sizeof in, e->block);
    e->block_used = 0;
}

static int det_random(void *ctx, uint8_t *out, size_t len)
{
    tu_env *e = ctx;
    if (e->fail_random) {
        e->fail_random = 0;
        return -1;
    }
    while (len) {
        if (e->block_used == sizeof e->block)
            refill(e);
        size_t n = sizeof e->block - e->block_used;
        if (n > len)
            n = len;
        memcpy(out, e->block + e->block_used, n);
        e->block_used += n;
        out += n;
        len -= n;
    }
    return 0;
}

static uint64_t fake_now(void *ctx)
{
    return ((tu_env *)ctx)->now_ms;
}

void tu_env_init(tu_env *e, const char *label)
{
    memset(e, 0, sizeof *e);
    sha256(label, strlen(label), e->seed);
    e->block_used = sizeof e->block;
    e->now_ms = 1764000000000ull; /* 2025-11-24, a fixed instant */
    e->env.random = det_random;
    e->env.now_ms = fake_now;
    e->env.ctx = e;
}

static uint8_t *read_key(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "tests/vectors/keys/%s", name);
    return tl_load(path, len);
}

mk_server_key *tu_server_key(const char *name)
{
    size_t len;
    uint8_t *pem = read_key(name, &len);
    mk_server_key *k = NULL;
    if (mk_server_key_load_pem(&k, pem, len) != MK_OK)
        abort();
    mk_wipe(pem, len);
    free(pem);
    return k;
}

mk_server_config *tu_server_config(tu_env *e, const char *key_name, int tickets)
{
    mk_server_config *c = NULL;
    if (mk_server_config_new(&c, &e->env) != MK_OK ||
        mk_server_config_add_key(c, tu_server_key(key_name)) != MK_OK)
        abort();
    if (tickets) {
        mk_ticket_key tk;
        memset(&tk, 0, sizeof tk);
        memcpy(tk.name, "test-ticket-key1", 16);
        memset(tk.secret, 0x42, sizeof tk.secret);
        if (mk_server_config_set_ticket_keys(c, &tk, 1) != MK_OK)
            abort();
    }
    return c;
}

mk_client_config *tu_client_config(tu_env *e, const char *pub_name)
{
    mk_client_config *c = NULL;
    size_t len;
    uint8_t *pem = read_key(pub_name, &len);
    if (mk_client_config_new(&c, &e->env) != MK_OK ||
        mk_client_config_pin(c, pem, len) != MK_OK)
        abort();
    free(pem);
    return c;
}

void tu_buf_put(tu_buf *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL)
            abort();
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

void tu_buf_drop(tu_buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void tu_buf_free(tu_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void tu_pair_init(tu_pair *p, mk_session *client, mk_session *server)
{
    memset(p, 0, sizeof *p);
    p->c.s = client;
    p->srv.s = server;
}

void tu_clear_msgs(tu_side *side)
{
    for (size_t i = 0; i < side->nmsgs; i++)
        tu_buf_free(&side->msgs[i].data);
    side->nmsgs = 0;
}

static void side_free(tu_side *side)
{
    tu_clear_msgs(side);
    tu_buf_free(&side->in);
    mk_session_free(side->s);
}

void tu_pair_free(tu_pair *p)
{
    side_free(&p->c);
    side_free(&p->srv);
    tu_buf_free(&p->c2s);
    tu_buf_free(&p->s2c);
}

tu_msg *tu_find_msg(tu_side *side, uint32_t id)
{
    for (size_t i = 0; i < side->nmsgs; i++)
        if (side->msgs[i].id == id)
            return &side->msgs[i];
    return NULL;
}

static tu_msg *msg_for(tu_side *side, uint32_t id)
{
    tu_msg *m = tu_find_msg(side, id);
    if (m == NULL) {
        if (side->nmsgs == TU_MAX_MSGS)
            abort();
        m = &side->msgs[side->nmsgs++];
        memset(m, 0, sizeof *m);
        m->id = id;
    }
    return m;
}

size_t tu_feed(tu_pair *p, tu_side *side, tu_buf *wire, tu_buf *reply)
{
    static uint8_t out[MK_HANDLE_OUT_LEN];
    size_t n = wire->len, unit_len;
    mk_event ev;

    (void)p;
    if (p->chunk && n > p->chunk)
        n = p->chunk;
    if (n == 0 || side->err)
        return 0;
    tu_buf_put(&side->in, wire->p, n);
    tu_buf_drop(wire, n);
    for (;;) {
        int r = mk_frame_check(side->in.p, side->in.len, &unit_len);
        if (r == MK_WANT_READ)
            break;
        if (r != MK_OK) {
            side->err = r;
            break;
        }
        r = mk_session_handle(side->s, side->in.p, unit_len, out, sizeof out,
                              &ev);
        tu_buf_drop(&side->in, unit_len);
        side->units++;
        if (ev.type == MK_EV_SEND ||
            (ev.type == MK_EV_ESTABLISHED && ev.len > 0))
            tu_buf_put(reply, out, ev.len);
        if (r != MK_OK) {
            side->err = r;
            break;
        }
        switch (ev.type) {
        case MK_EV_ESTABLISHED:
            side->established = 1;
            break;
        case MK_EV_DATA: {
            tu_msg *m = msg_for(side, ev.request_id);
            if (m->complete) /* a second message under a completed id */
                abort();
            tu_buf_put(&m->data, out, ev.len);
            m->complete = ev.final;
            break;
        }
        case MK_EV_ERROR: {
            tu_msg *m = msg_for(side, ev.request_id);
            m->error = 1;
            m->ecode = ev.error_code;
            m->complete = 1;
            break;
        }
        case MK_EV_CLOSE:
            side->closed = 1;
            break;
        default:
            break;
        }
    }
    return n;
}

int tu_pump(tu_pair *p)
{
    for (;;) {
        size_t moved = tu_feed(p, &p->srv, &p->c2s, &p->s2c);
        moved += tu_feed(p, &p->c, &p->s2c, &p->c2s);
        if (p->c.err)
            return p->c.err;
        if (p->srv.err)
            return p->srv.err;
        if (moved == 0)
            return 0;
    }
}

int tu_connect(tu_pair *p)
{
    uint8_t out[MK_HANDLE_OUT_LEN];
    size_t n = 0;
    int r = mk_client_hello(p->c.s, out, sizeof out, &n);
    if (r != MK_OK)
        return r;
    tu_buf_put(&p->c2s, out, n);
    return tu_pump(p);
}

int tu_send(tu_pair *p, tu_side *side, uint32_t id, const uint8_t *msg,
            size_t len)
{
    size_t cap = mk_message_wire_len(len), n = 0;
    uint8_t *out = malloc(cap);
    int r;

    if (out == NULL)
        abort();
    r = mk_seal_message(side->s, id, msg, len, out, cap, &n);
    if (r == MK_OK)
        tu_buf_put(side == &p->c ? &p->c2s : &p->s2c, out, n);
    free(out);
    return r;
}

void tu_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}
