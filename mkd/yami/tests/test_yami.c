/*
 * test_yami.c -- Yami without a network: its pool step driven against a
 * real client session in memory (the handshake, whole requests out of
 * several records, responses sealed in order, the buffer cap, a tampered
 * record), and its inline jobs (order, re-entrancy, the per-kick budget,
 * what stays on the pool).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"
#include "testlib.h"

/* A gate in the server's randomness: while it is closed, a pool thread
 * that asks for random bytes (a hello does, several times; opening a
 * request does not) waits there. So a test holds hello jobs on their
 * threads for as long as it likes, without a timing assumption. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int closed;
    unsigned waiting; /* pool threads held */
    pthread_t loop_thread;
} gate;

static gate G = {.mu = PTHREAD_MUTEX_INITIALIZER,
                 .cv = PTHREAD_COND_INITIALIZER};

static int gate_random(void *ctx, uint8_t *out, size_t len)
{
    gate *g = ctx;

    if (!pthread_equal(pthread_self(), g->loop_thread)) {
        pthread_mutex_lock(&g->mu);
        g->waiting++;
        while (g->closed)
            pthread_cond_wait(&g->cv, &g->mu);
        g->waiting--;
        pthread_mutex_unlock(&g->mu);
    }
    return mk_env_system()->random(NULL, out, len);
}

static uint64_t gate_now_ms(void *ctx)
{
    (void)ctx;
    return mk_env_system()->now_ms(NULL);
}

static const mk_env gate_env = {gate_random, gate_now_ms, &G};

static void gate_set(int closed)
{
    pthread_mutex_lock(&G.mu);
    G.closed = closed;
    G.loop_thread = pthread_self();
    pthread_cond_broadcast(&G.cv);
    pthread_mutex_unlock(&G.mu);
}

static unsigned gate_waiting(void)
{
    unsigned n;

    pthread_mutex_lock(&G.mu);
    n = G.waiting;
    pthread_mutex_unlock(&G.mu);
    return n;
}

static mk_server_config *server_config_env(uint32_t max_inflight,
                                           const mk_env *env)
{
    mk_server_config *sc = NULL;
    mk_server_key *k = NULL;
    mk_ticket_key tk;
    uint8_t *pem = NULL;
    size_t len = 0;

    pem = tl_load("tests/vectors/keys/server2048.pem", &len);
    assert_int_equal(mk_server_key_load_pem(&k, pem, len), MK_OK);
    free(pem);
    assert_int_equal(mk_server_config_new(&sc, env), MK_OK);
    assert_int_equal(mk_server_config_add_key(sc, k), MK_OK);
    memset(&tk, 7, sizeof tk);
    assert_int_equal(mk_server_config_set_ticket_keys(sc, &tk, 1), MK_OK);
    assert_int_equal(
        mk_server_config_set_limits(sc, 1u << 20, max_inflight, 3600), MK_OK);
    return sc;
}

static mk_server_config *server_config(uint32_t max_inflight)
{
    return server_config_env(max_inflight, mk_env_system());
}

static mk_client_config *client_config(void)
{
    mk_client_config *cc = NULL;
    uint8_t *pem = NULL;
    size_t len = 0;

    pem = tl_load("tests/vectors/keys/server2048.pub.pem", &len);
    assert_int_equal(mk_client_config_new(&cc, mk_env_system()), MK_OK);
    assert_int_equal(mk_client_config_pin(cc, pem, len), MK_OK);
    free(pem);
    return cc;
}

static yami_op *op(int type, uint32_t id, const uint8_t *p, size_t len)
{
    yami_op *o = calloc(1, sizeof *o + len);
    o->type = type;
    o->request_id = id;
    o->len = len;
    if (len)
        memcpy(o->data, p, len);
    return o;
}

/* Hand every unit in out[0..n) to the client session; collect data. */
static void client_take(mk_session *c, const uint8_t *p, size_t n, uint8_t *got,
                        size_t *got_len, int *ecode)
{
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN);
    size_t off = 0;

    while (off < n) {
        size_t ulen = 0;
        mk_event ev;
        assert_int_equal(mk_frame_check(p + off, n - off, &ulen), MK_OK);
        assert_int_equal(
            mk_session_handle(c, p + off, ulen, out, MK_HANDLE_OUT_LEN, &ev),
            MK_OK);
        if (ev.type == MK_EV_DATA && got) {
            memcpy(got + *got_len, out, ev.len);
            *got_len += ev.len;
        }
        if (ev.type == MK_EV_ERROR && ecode)
            *ecode = (int)ev.error_code;
        off += ulen;
    }
    free(out);
}

/* One step of the pool on wire[0..n), queued as one read's units, and
 * then our close record if close. */
static void run_wire(yami_conn *y, const uint8_t *wire, size_t n, int close,
                     yami_result *res)
{
    yami_op *o = op(YAMI_OP_UNITS, 0, wire, n);

    if (close)
        o->next = op(YAMI_OP_CLOSE, 0, NULL, 0);
    memset(res, 0, sizeof *res);
    yami__run(y, o, res);
    free(o->next);
    free(o);
}

/* The step's one request, id of len bytes, was refused: an "overloaded"
 * error record, no request, the refusal noted with the bytes that came
 * (more than the cap or the budget let through, less than len), the
 * session going on. */
static void assert_overloaded(mk_session *c, yami_result *res, uint32_t id,
                              size_t cap, size_t len)
{
    int ecode = 0;

    assert_int_equal(res->err, 0);
    assert_null(res->requests);
    assert_int_equal(res->aborted, 1);
    assert_non_null(res->refused);
    assert_int_equal(res->refused->id, id);
    assert_true(res->refused->len > cap && res->refused->len <= len);
    assert_null(res->refused->body);
    assert_null(res->refused->next);
    client_take(c, res->out, res->out_len, NULL, NULL, &ecode);
    assert_int_equal(ecode, MK_ECODE_OVERLOADED);
    yami__result_free(res);
}

static void test_yami_run(void **st)
{
    mk_server_config *sc = server_config(4);
    mk_client_config *cc = client_config();
    mk_session *c = NULL;
    uint8_t hello[MK_HANDLE_OUT_LEN];
    uint8_t *wire, *big, *got;
    size_t n = 0, wn = 0, glen = 0;
    yami *pool = NULL;
    yami_conn *y = NULL;
    yami_result res;
    yami_op *o;
    (void)st;

    assert_int_equal(mk_session_new_client(&c, cc, NULL, 0), MK_OK);
    assert_int_equal(yami_new(NULL, 0, 0, &pool), MKD_OK);
    assert_int_equal(yami_conn_new(pool, sc, 100000, NULL, NULL, &y), MKD_OK);

    /* The hello: a SERVER_HELLO comes out, the session is established. */
    assert_int_equal(mk_client_hello(c, hello, sizeof hello, &n), MK_OK);
    memset(&res, 0, sizeof res);
    o = op(YAMI_OP_UNITS, 0, hello, n);
    yami__run(y, o, &res);
    free(o);
    assert_int_equal(res.err, 0);
    assert_true(res.established);
    assert_false(res.resumed);
    assert_int_equal(res.hellos, 1);
    client_take(c, res.out, res.out_len, NULL, NULL, NULL);
    assert_int_equal(mk_session_state(c), MK_STATE_ESTABLISHED);
    yami__result_free(&res);

    /* Two requests in one batch (one of 3 records): both come out whole. */
    big = malloc(40000);
    got = malloc(200000);
    wire = malloc(200000);
    for (size_t i = 0; i < 40000; i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(mk_seal_message(c, 1, big, 40000, wire, 200000, &wn),
                     MK_OK);
    assert_int_equal(mk_seal_message(c, 2, (const uint8_t *)"hi", 2, wire + wn,
                                     200000 - wn, &n),
                     MK_OK);
    wn += n;
    run_wire(y, wire, wn, 0, &res);
    assert_int_equal(res.err, 0);
    assert_non_null(res.requests);
    assert_int_equal(res.requests->id, 1);
    assert_int_equal(res.requests->len, 40000);
    assert_memory_equal(res.requests->body, big, 40000);
    assert_non_null(res.requests->next);
    assert_int_equal(res.requests->next->id, 2);
    assert_int_equal(y->partial_bytes, 0);
    yami__result_free(&res);

    /* Responses sealed in queue order. */
    memset(&res, 0, sizeof res);
    o = op(YAMI_OP_RESPONSE, 2, (const uint8_t *)"ok", 2);
    o->next = op(YAMI_OP_RESPONSE, 1, big, 40000);
    yami__run(y, o, &res);
    free(o->next);
    free(o);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.responses, 2);
    client_take(c, res.out, res.out_len, got, &glen, NULL);
    assert_int_equal(glen, 40002);
    assert_memory_equal(got, "ok", 2);
    assert_memory_equal(got + 2, big, 40000);
    yami__result_free(&res);

    /* Over the buffer cap: the request is refused with "overloaded" and
     * the session goes on. */
    {
        uint8_t *huge = calloc(1, 150000);
        assert_int_equal(mk_seal_message(c, 3, huge, 150000, wire, 200000, &wn),
                         MK_OK);
        free(huge);
    }
    run_wire(y, wire, wn, 0, &res);
    assert_int_equal(y->partial_bytes, 0);
    assert_int_equal(res.aborted_budget, 0);
    assert_overloaded(c, &res, 3, 100000, 150000);

    /* Over the global budget, output queued by the owner included: the
     * request is refused the same way, and the budget is whole again. */
    yami_set_budget(pool, 50000);
    yami_output_add(pool, 20000);
    assert_int_equal(mk_seal_message(c, 5, big, 40000, wire, 200000, &wn),
                     MK_OK);
    run_wire(y, wire, wn, 0, &res);
    assert_int_equal(res.aborted_budget, 1);
    assert_overloaded(c, &res, 5, 30000, 40000);
    yami_output_sub(pool, 20000);
    assert_int_equal(pool->partial_total, 0);
    /* Within it: served, and given back. */
    assert_int_equal(mk_seal_message(c, 6, big, 40000, wire, 200000, &wn),
                     MK_OK);
    run_wire(y, wire, wn, 0, &res);
    assert_non_null(res.requests);
    assert_int_equal(res.aborted, 0);
    assert_int_equal(pool->partial_total, 0);
    yami__result_free(&res);
    yami_set_budget(pool, 0);

    /* A tampered record: the session fails, nothing comes out. */
    assert_int_equal(
        mk_seal_message(c, 4, (const uint8_t *)"x", 1, wire, 200000, &wn),
        MK_OK);
    wire[wn - 1] ^= 1;
    run_wire(y, wire, wn, 1, &res);
    assert_int_equal(res.err, MK_ERR_BAD_RECORD_MAC);
    assert_false(res.internal);
    assert_int_equal(res.out_len, 0);
    assert_false(res.close_sent);
    yami__result_free(&res);

    free(big);
    free(got);
    free(wire);
    yami_conn_free(y);
    yami_free(pool);
    mk_session_free(c);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* --- Yami's inline jobs ------------------------------------------------- */

/* A stand-in for Yugi's on_result: it collects the output in the order
 * results are applied, answers every request with its own body (queue and
 * kick, as conn.c does after a dispatch), and checks that an inline result
 * is never applied inside another one. */
typedef struct inl_ctx {
    yami *pool;
    yami_conn *y;
    uv_loop_t loop;
    uint8_t *wire;
    size_t wire_len, wire_cap;
    unsigned results, inline_results, errors;
    int in_inline;       /* inside on_result for an inline result */
    int drop_after_echo; /* drop the queue after queueing the answers */
} inl_ctx;

static void inl_on_result(void *owner, yami_result *res)
{
    inl_ctx *t = owner;
    yami_conn *y = t->y;
    unsigned before;

    if (res->ran_inline) {
        assert_false(t->in_inline); /* never nested */
        /* Inline only when no pool job is in flight. */
        assert_false(yami_conn_busy(y));
        t->in_inline = 1;
        t->inline_results++;
    }
    t->results++;
    if (res->err != 0) {
        t->errors++;
        yami_drop_queued(y);
        goto done;
    }
    if (t->wire_cap - t->wire_len < res->out_len) {
        t->wire_cap = (t->wire_len + res->out_len) * 2;
        t->wire = realloc(t->wire, t->wire_cap);
        assert_non_null(t->wire);
    }
    if (res->out_len)
        memcpy(t->wire + t->wire_len, res->out, res->out_len);
    t->wire_len += res->out_len;
    for (yami_request *r = res->requests; r != NULL; r = r->next)
        assert_int_equal(yami_queue_response(y, r->id, r->body, r->len),
                         MKD_OK);
    if (t->drop_after_echo) {
        yami_drop_queued(y);
        goto done;
    }
    before = t->results;
    assert_int_equal(yami_kick(y), MKD_OK);
    if (res->ran_inline) {
        /* Nested inside an inline run: only queued, neither applied here
         * nor sent to the pool; the outer run takes it. */
        assert_int_equal(t->results, before);
        assert_false(yami_conn_busy(y));
    }
done:
    if (res->ran_inline)
        t->in_inline = 0;
}

/* Request id carries inl_len(id) bytes of (id + j) & 0xFF: ids 1..29 are
 * small (id * 1000 + 1 bytes), 30..39 large (over the inline threshold),
 * 40 and up tiny. */
static size_t inl_len(uint32_t id)
{
    return id >= 40 ? 10 : id >= 30 ? 40000 : id * 1000u + 1;
}

/* Feed the collected output to the client; record the ids of complete
 * responses in order and check each body against its pattern. */
static size_t inl_client_take(inl_ctx *t, mk_session *c, uint32_t *order,
                              size_t max)
{
    uint8_t *out = malloc(MK_HANDLE_OUT_LEN), *got[128] = {0};
    size_t off = 0, n = 0, glen[128] = {0};

    assert_non_null(out);
    while (off < t->wire_len) {
        size_t ulen = 0;
        mk_event ev;
        assert_int_equal(
            mk_frame_check(t->wire + off, t->wire_len - off, &ulen), MK_OK);
        /* Records sealed out of order would fail here: the sequence
         * numbers are implicit in the MAC. */
        assert_int_equal(mk_session_handle(c, t->wire + off, ulen, out,
                                           MK_HANDLE_OUT_LEN, &ev),
                         MK_OK);
        off += ulen;
        if (ev.type != MK_EV_DATA)
            continue;
        assert_true(ev.request_id < 128);
        got[ev.request_id] =
            realloc(got[ev.request_id], glen[ev.request_id] + ev.len + 1);
        memcpy(got[ev.request_id] + glen[ev.request_id], out, ev.len);
        glen[ev.request_id] += ev.len;
        if (!ev.final)
            continue;
        assert_true(n < max);
        order[n++] = ev.request_id;
        {
            uint32_t id = ev.request_id;
            size_t want = inl_len(id);
            assert_int_equal(glen[id], want);
            for (size_t j = 0; j < want; j++)
                assert_int_equal(got[id][j], (uint8_t)(id + j));
        }
        free(got[ev.request_id]);
        got[ev.request_id] = NULL;
        glen[ev.request_id] = 0;
    }
    for (int i = 0; i < 128; i++)
        free(got[i]);
    free(out);
    t->wire_len = 0;
    return n;
}

/* The client seals request id (see inl_client_take for its body) and the
 * wire bytes are queued to Yami as one read's worth of units. */
static void inl_send(inl_ctx *t, mk_session *c, uint32_t id)
{
    size_t len = inl_len(id), n = 0;
    uint8_t *body = malloc(len), *w = malloc(mk_message_wire_len(len));

    assert_non_null(body);
    assert_non_null(w);
    for (size_t j = 0; j < len; j++)
        body[j] = (uint8_t)(id + j);
    assert_int_equal(
        mk_seal_message(c, id, body, len, w, mk_message_wire_len(len), &n),
        MK_OK);
    assert_int_equal(yami_queue_units(t->y, w, n), MKD_OK);
    free(body);
    free(w);
}

static void test_yami_inline(void **st)
{
    static inl_ctx t;
    mk_server_config *sc = server_config(32);
    mk_client_config *cc = client_config();
    mk_session *c = NULL;
    uint8_t hello[MK_HANDLE_OUT_LEN];
    uint32_t order[64];
    size_t n = 0;
    uint64_t pool0, inl0;
    (void)st;

    memset(&t, 0, sizeof t);
    assert_int_equal(uv_loop_init(&t.loop), 0);
    assert_int_equal(mk_session_new_client(&c, cc, NULL, 0), MK_OK);
    assert_int_equal(yami_new(&t.loop, 0, 16384, &t.pool), MKD_OK);
    assert_int_equal(
        yami_conn_new(t.pool, sc, 1u << 20, inl_on_result, &t, &t.y), MKD_OK);

    /* The hello always goes to the pool, however small. */
    assert_int_equal(mk_client_hello(c, hello, sizeof hello, &n), MK_OK);
    assert_true(n <= t.pool->inline_max);
    assert_int_equal(yami_queue_units(t.y, hello, n), MKD_OK);
    inl0 = t.pool->st.jobs_inline;
    pool0 = t.pool->st.jobs_started;
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_true(yami_conn_busy(t.y));
    assert_int_equal(t.results, 0);
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.results, 1);
    assert_int_equal(t.pool->st.jobs_inline, inl0);
    assert_int_equal(t.pool->st.jobs_started, pool0 + 1);
    client_take(c, t.wire, t.wire_len, NULL, NULL, NULL);
    assert_int_equal(mk_session_state(c), MK_STATE_ESTABLISHED);
    t.wire_len = 0;

    /* A small request: opened, answered (the answer queued from inside
     * the callback, by a nested kick) and sealed, all inside one kick. */
    t.results = 0;
    inl_send(&t, c, 1);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_false(yami_conn_busy(t.y));
    assert_int_equal(t.results, 2);
    assert_int_equal(t.inline_results, 2);
    assert_int_equal(t.pool->st.jobs_started, pool0 + 1);
    assert_int_equal(inl_client_take(&t, c, order, 64), 1);
    assert_int_equal(order[0], 1);

    /* Small requests interleaved with a large one (over the threshold),
     * which goes to the pool; the small ones that arrive meanwhile wait
     * for it (only queued), then everything comes out in request order. */
    t.results = t.inline_results = 0;
    inl_send(&t, c, 2);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    inl_send(&t, c, 3);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_int_equal(t.inline_results, 4);
    inl_send(&t, c, 30);
    assert_true(t.y->queued_bytes > t.pool->inline_max);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_true(yami_conn_busy(t.y));
    inl_send(&t, c, 4);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    inl_send(&t, c, 5);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_int_equal(t.inline_results, 4); /* 4, 5 wait behind 30 */
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_false(yami_conn_busy(t.y));
    assert_null(t.y->head);
    inl_send(&t, c, 6);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    inl_send(&t, c, 31);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    inl_send(&t, c, 7);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(inl_client_take(&t, c, order, 64), 8);
    {
        static const uint32_t want[] = {2, 3, 30, 4, 5, 6, 31, 7};
        for (size_t i = 0; i < 8; i++)
            assert_int_equal(order[i], want[i]);
    }
    assert_int_equal(t.errors, 0);

    /* The budget of one kick: 10 requests in one read (10 records) run
     * inline, but their 10 answers would pass YAMI_INLINE_RECORDS, so
     * they go to the pool. Too many records at once: the pool. */
    t.results = t.inline_results = 0;
    pool0 = t.pool->st.jobs_started;
    for (uint32_t id = 40; id < 50; id++)
        inl_send(&t, c, id);
    assert_int_equal(t.y->queued_records, 10);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_int_equal(t.inline_results, 1);
    assert_true(yami_conn_busy(t.y));
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.pool->st.jobs_started, pool0 + 1);
    for (uint32_t id = 50; id < 68; id++)
        inl_send(&t, c, id);
    assert_true(t.y->queued_bytes < t.pool->inline_max);
    assert_true(t.y->queued_records > YAMI_INLINE_RECORDS);
    t.inline_results = 0;
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_true(yami_conn_busy(t.y));
    assert_int_equal(t.inline_results, 0);
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(inl_client_take(&t, c, order, 64), 28);
    for (size_t i = 0; i < 28; i++)
        assert_int_equal(order[i], 40 + i);

    /* inline_max 0: everything on the pool. */
    t.pool->inline_max = 0;
    t.inline_results = 0;
    inl_send(&t, c, 1);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_true(yami_conn_busy(t.y));
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.inline_results, 0);
    assert_int_equal(inl_client_take(&t, c, order, 64), 1);
    t.pool->inline_max = 16384;

    /* The owner drops the queue from inside the callback (its connection
     * closed): the run ends there, nothing is sealed or sent to the pool. */
    t.drop_after_echo = 1;
    t.results = 0;
    inl_send(&t, c, 2);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_int_equal(t.results, 1);
    assert_false(yami_conn_busy(t.y));
    assert_null(t.y->head);
    assert_int_equal(t.wire_len, 0);
    t.drop_after_echo = 0;

    /* A CLIENT_HELLO after the handshake never runs inline either (the
     * session refuses it, on the pool). */
    {
        mk_session *c2 = NULL;
        assert_int_equal(mk_session_new_client(&c2, cc, NULL, 0), MK_OK);
        assert_int_equal(mk_client_hello(c2, hello, sizeof hello, &n), MK_OK);
        mk_session_free(c2);
    }
    assert_int_equal(yami_queue_units(t.y, hello, n), MKD_OK);
    assert_int_equal(t.y->queued_hellos, 1);
    assert_int_equal(yami_kick(t.y), MKD_OK);
    assert_true(yami_conn_busy(t.y));
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t.errors, 1);

    assert_int_equal(uv_loop_close(&t.loop), 0);
    free(t.wire);
    yami_conn_free(t.y);
    yami_free(t.pool);
    mk_session_free(c);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* --- cancelled connections ---------------------------------------------- */

/* A result collector for connections whose owner went away. */
typedef struct gone {
    unsigned results, hellos, skipped, orphaned, full;
    size_t out_len;
} gone;

static void gone_on_result(void *owner, yami_result *res)
{
    gone *g = owner;

    g->results++;
    g->hellos += res->hellos;
    g->full += res->full_hellos;
    g->skipped += res->hellos_skipped;
    g->orphaned += res->hellos_orphaned;
    g->out_len += res->out_len;
}

/* A fresh client's hello. */
static size_t make_hello(mk_client_config *cc, uint8_t *out)
{
    mk_session *c = NULL;
    size_t n = 0;

    assert_int_equal(mk_session_new_client(&c, cc, NULL, 0), MK_OK);
    assert_int_equal(mk_client_hello(c, out, MK_HANDLE_OUT_LEN, &n), MK_OK);
    mk_session_free(c);
    return n;
}

/* A cancelled connection: the pool step skips its hello (no RSA work, no
 * output) but reports it; a hello already running when the cancel comes
 * finishes and is reported as orphaned; the counters add up. */
static void test_yami_cancel(void **st)
{
    mk_server_config *sc = server_config_env(4, &gate_env);
    mk_client_config *cc = client_config();
    uint8_t hello[MK_HANDLE_OUT_LEN];
    size_t n = make_hello(cc, hello);
    yami *pool = NULL;
    yami_conn *y = NULL;
    yami_result res;
    uv_loop_t loop;
    gone g;
    int ok = 0;
    (void)st;

    gate_set(0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(yami_new(&loop, 0, 16384, &pool), MKD_OK);

    /* The pool step on a cancelled connection: nothing runs. */
    assert_int_equal(yami_conn_new(pool, sc, 1u << 20, NULL, NULL, &y), MKD_OK);
    assert_int_equal(yami_conn_cancel(y), 0); /* no job in flight */
    run_wire(y, hello, n, 1, &res);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.hellos, 0);
    assert_int_equal(res.hellos_skipped, 1);
    assert_int_equal(res.out_len, 0);
    assert_false(res.established);
    assert_false(res.close_sent);
    assert_int_equal(mk_session_state(y->session), MK_STATE_HANDSHAKE);
    yami__result_free(&res);
    yami_conn_free(y);

    /* Cancelled while its hello runs (held at the gate): it finishes,
     * its result still comes and says so. */
    memset(&g, 0, sizeof g);
    assert_int_equal(yami_conn_new(pool, sc, 1u << 20, gone_on_result, &g, &y),
                     MKD_OK);
    gate_set(1);
    assert_int_equal(yami_queue_units(y, hello, n), MKD_OK);
    assert_int_equal(yami_kick(y), MKD_OK);
    TL_POLL_UNTIL(ok, gate_waiting() == 1, 10000);
    assert_true(ok);
    assert_int_equal(pool->st.full_queued, 1);
    assert_int_equal(yami_conn_cancel(y), 1);
    gate_set(0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g.results, 1);
    assert_int_equal(g.hellos, 1);
    assert_int_equal(g.orphaned, 1);
    assert_int_equal(g.skipped, 0);
    assert_int_equal(g.full, 1);
    assert_int_equal(pool->st.hellos_run, 1);
    assert_int_equal(pool->st.hellos_orphaned, 1);
    assert_int_equal(pool->st.full_queued, 0);
    assert_int_equal(pool->st.full_queued_max, 1);
    yami_conn_free(y);

    assert_int_equal(uv_loop_close(&loop), 0);
    yami_free(pool);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

/* --- RSA slots ------------------------------------------------------------- */

/* One connection of the slot test: what its results said. */
typedef struct tconn {
    yami_conn *y;
    unsigned results, hellos, skipped, errors;
    int established, resumed, close_sent;
    int established_first; /* established by its first result */
    size_t request_len;
    uint8_t *out;
    size_t out_len;
} tconn;

static void t_on_result(void *owner, yami_result *res)
{
    tconn *t = owner;

    if (t->results++ == 0)
        t->established_first = res->established;
    t->hellos += res->hellos;
    t->skipped += res->hellos_skipped;
    t->errors += res->err != 0;
    t->established |= res->established;
    t->resumed |= res->resumed;
    t->close_sent |= res->close_sent;
    if (res->requests != NULL)
        t->request_len = res->requests->len;
    if (res->out_len) {
        t->out = realloc(t->out, t->out_len + res->out_len);
        assert_non_null(t->out);
        memcpy(t->out + t->out_len, res->out, res->out_len);
        t->out_len += res->out_len;
    }
    /* What was queued meanwhile, as Yugi does after a result. */
    assert_int_equal(yami_kick(t->y), MKD_OK);
}

static void t_open(yami *pool, mk_server_config *sc, tconn *t)
{
    memset(t, 0, sizeof *t);
    assert_int_equal(yami_conn_new(pool, sc, 1u << 20, t_on_result, t, &t->y),
                     MKD_OK);
}

static void t_kick_units(tconn *t, const uint8_t *p, size_t n)
{
    assert_int_equal(yami_queue_units(t->y, p, n), MKD_OK);
    assert_int_equal(yami_kick(t->y), MKD_OK);
}

/* Run the loop until cond holds, with a deadline for a busy machine. */
#define RUN_UNTIL(loop, ok, cond)                                              \
    do {                                                                       \
        uint64_t until_ = tl_now_ms() + tl_deadline_ms(10000);                 \
        while (!(cond) && tl_now_ms() < until_) {                              \
            (void)uv_run((loop), UV_RUN_NOWAIT);                               \
            tl_sleep_ms(1);                                                    \
        }                                                                      \
        (ok) = (cond);                                                         \
    } while (0)

/* Jobs with a full hello take at most rsa_slots threads (the pool's less
 * one); the others wait in Yami, in order. With every slot held by a hello
 * stuck at the gate, a request and a resumed hello still get the free
 * thread and complete; a waiting hello whose connection is cancelled is
 * skipped without a thread; a connection's later work waits for its own
 * held hello. */
static void test_yami_rsa_slots(void **st)
{
    enum { H = 5 };
    mk_server_config *sc = server_config_env(32, &gate_env);
    mk_client_config *cc = client_config();
    static tconn e, r, h[H];
    mk_session *c = NULL, *rc = NULL;
    uint8_t hello[MK_HANDLE_OUT_LEN], blob[MK_SESSION_BLOB_MAX];
    uint8_t *body = calloc(1, 40000), *wire = malloc(50000);
    size_t n = 0, blen = 0;
    yami *pool = NULL;
    uv_loop_t loop;
    int ok = 0;
    (void)st;

    assert_non_null(body);
    assert_non_null(wire);
    gate_set(0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(yami_new(&loop, 0, 16384, &pool), MKD_OK);
    /* libuv's default pool of 4 threads: 3 for RSA work, 1 kept free. */
    assert_int_equal(pool->rsa_slots, 3);

    /* An established connection, and a ticket to resume with. */
    assert_int_equal(mk_session_new_client(&c, cc, NULL, 0), MK_OK);
    assert_int_equal(mk_client_hello(c, hello, sizeof hello, &n), MK_OK);
    t_open(pool, sc, &e);
    t_kick_units(&e, hello, n);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(e.established);
    client_take(c, e.out, e.out_len, NULL, NULL, NULL);
    assert_int_equal(mk_session_export(c, blob, sizeof blob, &blen), MK_OK);
    assert_int_equal(mk_session_new_client(&rc, cc, blob, blen), MK_OK);

    /* Five full hellos with the gate closed: three take the slots and
     * stay there, two wait in Yami. */
    gate_set(1);
    for (int i = 0; i < H; i++) {
        t_open(pool, sc, &h[i]);
        n = make_hello(cc, hello);
        t_kick_units(&h[i], hello, n);
        assert_true(yami_conn_busy(h[i].y));
    }
    TL_POLL_UNTIL(ok, gate_waiting() == 3, 10000);
    assert_true(ok);
    assert_int_equal(pool->rsa_running, 3);
    assert_int_equal(pool->nheld, 2);
    /* The fourth's later work waits for its held hello; the fifth's
     * connection goes away. */
    assert_int_equal(yami_queue_close(h[3].y), MKD_OK);
    assert_int_equal(yami_kick(h[3].y), MKD_OK);
    assert_true(yami_conn_pending(h[3].y));
    assert_int_equal(yami_conn_cancel(h[4].y), 1);

    /* A request larger than inline_crypto_max goes to the pool and is
     * opened while all the RSA slots are held. */
    assert_int_equal(mk_seal_message(c, 1, body, 40000, wire, 50000, &n),
                     MK_OK);
    t_kick_units(&e, wire, n);
    assert_true(yami_conn_busy(e.y));
    RUN_UNTIL(&loop, ok, e.request_len == 40000);
    assert_true(ok);
    /* A resumed hello is cheap work too: it gets the free thread (where
     * the gate holds it, as it asks for random bytes). */
    assert_int_equal(mk_client_hello(rc, hello, sizeof hello, &n), MK_OK);
    t_open(pool, sc, &r);
    t_kick_units(&r, hello, n);
    TL_POLL_UNTIL(ok, gate_waiting() == 4, 10000);
    assert_true(ok);
    assert_int_equal(pool->nheld, 2);
    for (int i = 0; i < H; i++)
        assert_int_equal(h[i].results, 0);

    gate_set(0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(r.established && r.resumed);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(h[i].hellos, 1);
        assert_true(h[i].established_first);
        assert_int_equal(h[i].errors, 0);
    }
    /* The close record was sealed after the hello it waited for. */
    assert_int_equal(h[3].results, 2);
    assert_true(h[3].close_sent);
    /* The cancelled one: skipped, no thread, no output. */
    assert_int_equal(h[4].results, 1);
    assert_int_equal(h[4].hellos, 0);
    assert_int_equal(h[4].skipped, 1);
    assert_int_equal(h[4].out_len, 0);
    assert_int_equal(pool->st.hellos_skipped, 1);
    assert_int_equal(pool->rsa_running, 0);
    assert_int_equal(pool->nheld, 0);
    assert_int_equal(pool->st.jobs_started, pool->st.jobs_done);

    assert_int_equal(uv_loop_close(&loop), 0);
    yami_conn_free(e.y);
    yami_conn_free(r.y);
    free(e.out);
    free(r.out);
    for (int i = 0; i < H; i++) {
        yami_conn_free(h[i].y);
        free(h[i].out);
    }
    free(body);
    free(wire);
    yami_free(pool);
    mk_session_free(c);
    mk_session_free(rc);
    mk_server_config_unref(sc);
    mk_client_config_unref(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yami_run),
        cmocka_unit_test(test_yami_inline),
        cmocka_unit_test(test_yami_cancel),
        cmocka_unit_test(test_yami_rsa_slots),
    };

    /* Jobs run on libuv's pool threads, which live until the process
     * exits: libuv joins them in a destructor, and each thread's OpenSSL
     * state (its DRBG, its error queue) is freed as it ends. OpenSSL's own
     * atexit cleanup runs earlier and would orphan that state, which the
     * valgrind stage reports as lost; without it the threads clean up
     * after themselves. */
    if (OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) != 1)
        return 1;
    return cmocka_run_group_tests_name("yami", tests, NULL, NULL);
}
