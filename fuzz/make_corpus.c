/*
 * make_corpus.c -- write the seed corpus of every fuzz target.
 *
 *   fuzz_make_corpus fuzz/corpus      (from the project root)
 *
 * Each seed is a real message produced by the same deterministic fixtures
 * the harnesses use (fuzz_common.c), and each is checked here to go as deep
 * as it should: a SERVER_HELLO seed establishes the harness's client, a
 * record seed is accepted by the harness's pair. Run it again after a wire
 * format or key schedule change and commit the result; the output is the
 * same on every run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "testlib.h"
#include "msg.h"

static const char *outdir;
static size_t nfiles;

static void mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        tl_die("%s:", path);
}

static void put(const char *target, const char *name, const uint8_t *p,
                size_t n)
{
    char path[1024];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", outdir, target);
    mkdir_p(path);
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    if ((fp = fopen(path, "wb")) == NULL || fwrite(p, 1, n, fp) != n ||
        fclose(fp) != 0)
        tl_die("%s:", path);
    nfiles++;
}

static void put_buf(const char *target, const char *name, const tu_buf *b)
{
    put(target, name, b->p, b->len);
}

/* out[] of mk_session_handle(), and the handling of one unit that must
 * succeed (the generator's own consistency check). */
static uint8_t out[MK_HANDLE_OUT_LEN];

static mk_event handle_ok(mk_session *s, const uint8_t *u, size_t n)
{
    mk_event ev;
    if (mk_session_handle(s, u, n, out, sizeof out, &ev) != MK_OK)
        tl_die("a seed unit was refused by its own peer");
    return ev;
}

static void key_id_of(const char *name, uint8_t id[MK_KEY_ID_LEN])
{
    mk_server_key *k = fz_server_key(name);
    mk_server_key_id(k, id);
    mk_server_key_free(k);
}

/* --- CLIENT_HELLO seeds: unit bodies ------------------------------------ */

static void client_hello_seeds(fz_fixture *f, tu_buf *frame_ch)
{
    uint8_t ch_full[MK_HANDLE_OUT_LEN], buf[MK_UNIT_MAX], early[32];
    size_t n_full = 0, n = 0;
    mk_session *c;
    mk_ch ch;

    fz_reset(f);
    c = fz_client_hello(f, 0, ch_full, &n_full);
    mk_session_free(c);
    put("fuzz_client_hello", "full", ch_full + 4, n_full - 4);
    tu_buf_put(frame_ch, ch_full, n_full);

    fz_reset(f);
    c = fz_client_hello(f, 1, buf, &n);
    mk_session_free(c);
    put("fuzz_client_hello", "resume", buf + 4, n - 4);

    /* A key the server does not hold: it answers with HELLO_RETRY. */
    if (mk__ch_parse(ch_full, n_full, &ch) != MK_OK)
        tl_die("parse");
    key_id_of("other2048.pem", ch.key_id);
    if (mk__ch_write(&ch, buf, sizeof buf, &n) != MK_OK)
        tl_die("write");
    put("fuzz_client_hello", "unknown_key", buf + 4, n - 4);

    /* The reserved early block (skipped by this version). */
    if (mk__ch_parse(ch_full, n_full, &ch) != MK_OK)
        tl_die("parse");
    memset(early, 0xE0, sizeof early);
    ch.flags = MK_CH_EARLY;
    ch.early = early;
    ch.early_len = sizeof early;
    if (mk__ch_write(&ch, buf, sizeof buf, &n) != MK_OK)
        tl_die("write");
    put("fuzz_client_hello", "early_block", buf + 4, n - 4);

    /* A small-order share. */
    if (mk__ch_parse(ch_full, n_full, &ch) != MK_OK)
        tl_die("parse");
    memset(ch.share, 0, sizeof ch.share);
    if (mk__ch_write(&ch, buf, sizeof buf, &n) != MK_OK)
        tl_die("write");
    put("fuzz_client_hello", "zero_share", buf + 4, n - 4);
}

/* --- SERVER_HELLO seeds: mode byte || the server's units ---------------- */

/* Play the harness's client (fz_client_hello after fz_reset) against a
 * server session of cfg, collecting every unit the server sends. The seed
 * must establish the client. */
static void server_seed(fz_fixture *f, int resume, mk_server_config *cfg,
                        const char *name, tu_buf *frame_sh)
{
    uint8_t ch[MK_HANDLE_OUT_LEN], reply[MK_HANDLE_OUT_LEN];
    size_t n = 0;
    tu_buf seed = {0};
    mk_session *c, *s = NULL;
    uint8_t mode = (uint8_t)resume;
    mk_event ev;

    fz_reset(f);
    c = fz_client_hello(f, resume, ch, &n);
    if (mk_session_new_server(&s, cfg) != MK_OK)
        tl_die("server");
    tu_buf_put(&seed, &mode, 1);
    for (int step = 0; step < 2; step++) {
        ev = handle_ok(s, ch, n);
        memcpy(reply, out, ev.len);
        tu_buf_put(&seed, reply, ev.len);
        if (frame_sh)
            tu_buf_put(frame_sh, reply, ev.len);
        ev = handle_ok(c, reply, ev.len);
        if (ev.type == MK_EV_ESTABLISHED)
            break;
        if (ev.type != MK_EV_SEND)
            tl_die("unexpected client event");
        memcpy(ch, out, ev.len); /* the client's second hello */
        n = ev.len;
    }
    if (mk_session_state(c) != MK_STATE_ESTABLISHED)
        tl_die("server seed does not establish");
    put_buf("fuzz_server_hello", name, &seed);
    tu_buf_free(&seed);
    mk_session_free(c);
    mk_session_free(s);
}

static void server_hello_seeds(fz_fixture *f, tu_buf *frame_sh,
                               tu_buf *frame_hr, tu_buf *frame_alert)
{
    uint8_t buf[256];
    size_t n = 0;
    mk_retry rt;

    server_seed(f, 0, f->sc, "full", frame_sh);
    server_seed(f, 1, f->sc, "resume", NULL);
    /* Retries: the server holds other2048 only (the client pins it second),
     * or cannot use the ticket. */
    {
        tu_buf both = {0};
        server_seed(f, 0, f->sc_other, "retry_key_id", &both);
        /* The first unit of that exchange is the HELLO_RETRY. */
        size_t ul = 0;
        if (mk_frame_check(both.p, both.len, &ul) != MK_OK)
            tl_die("frame");
        tu_buf_put(frame_hr, both.p, ul);
        tu_buf_free(&both);
    }
    server_seed(f, 1, f->sc_tk, "retry_ticket", NULL);

    /* An alert. */
    buf[0] = 0;
    if (mk_write_alert(MK_ALERT_RETRY_LATER, 250, buf + 1, sizeof buf - 1,
                       &n) != MK_OK)
        tl_die("alert");
    put("fuzz_server_hello", "alert_retry_later", buf, n + 1);
    tu_buf_put(frame_alert, buf + 1, n);

    /* A retry listing the most keys a server may hold. */
    memset(&rt, 0, sizeof rt);
    rt.reason = MK_RETRY_KEY_ID;
    rt.nkeys = 16;
    for (int i = 0; i < 16; i++)
        memset(rt.key_ids[i], 0x30 + i, MK_KEY_ID_LEN);
    key_id_of("other2048.pem", rt.key_ids[15]);
    buf[0] = 0;
    if (mk__retry_write(&rt, buf + 1, sizeof buf - 1, &n) != MK_OK)
        tl_die("retry");
    put("fuzz_server_hello", "retry_16_keys", buf, n + 1);
}

/* --- record seeds: (direction || unit)* ---------------------------------- */

typedef struct rec_seed {
    tu_buf buf;
    tu_pair p;
} rec_seed;

static void rs_begin(fz_fixture *f, rec_seed *r)
{
    memset(&r->buf, 0, sizeof r->buf);
    fz_reset(f);
    if (fz_record_pair(f, &r->p) != 0)
        tl_die("record pair");
}

static void rs_add(rec_seed *r, int to_client, const uint8_t *u, size_t n)
{
    size_t off = 0, ul = 0;
    uint8_t dir = (uint8_t)to_client;
    /* A sealed message may be several records: one direction byte each. */
    while (off < n) {
        if (mk_frame_check(u + off, n - off, &ul) != MK_OK)
            tl_die("frame");
        tu_buf_put(&r->buf, &dir, 1);
        tu_buf_put(&r->buf, u + off, ul);
        off += ul;
    }
}

/* Write the seed, then check it: a fresh harness pair accepts every unit.
 * (The server's own replies, made by the harness, are left out here just
 * as the harness discards them.) */
static void rs_end(fz_fixture *f, rec_seed *r, const char *name)
{
    tu_pair q;
    size_t off = 0, ul = 0;

    put_buf("fuzz_record", name, &r->buf);
    tu_pair_free(&r->p);
    fz_reset(f);
    if (fz_record_pair(f, &q) != 0)
        tl_die("record pair");
    while (off < r->buf.len) {
        mk_session *s = r->buf.p[off] & 1 ? q.c.s : q.srv.s;
        if (mk_frame_check(r->buf.p + off + 1, r->buf.len - off - 1, &ul) !=
            MK_OK)
            tl_die("frame");
        (void)handle_ok(s, r->buf.p + off + 1, ul);
        off += 1 + ul;
    }
    tu_pair_free(&q);
    tu_buf_free(&r->buf);
}

static void record_seeds(fz_fixture *f, tu_buf *frame_data, tu_buf *frame_error,
                         tu_buf *frame_close)
{
    uint8_t rec[MK_UNIT_MAX * 2], *big;
    size_t n = 0;
    rec_seed r;

    rs_begin(f, &r);
    if (mk_seal_message(r.p.srv.s, FZ_REQ_ID, (const uint8_t *)"response", 8,
                        rec, sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 1, rec, n);
    tu_buf_put(frame_data, rec, n);
    rs_end(f, &r, "response");

    rs_begin(f, &r);
    if (mk_seal_record(r.p.srv.s, FZ_REQ_ID, 0, (const uint8_t *)"part one", 8,
                       rec, sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 1, rec, n);
    if (mk_seal_record(r.p.srv.s, FZ_REQ_ID, 1, (const uint8_t *)"part two", 8,
                       rec, sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 1, rec, n);
    rs_end(f, &r, "response_two_records");

    rs_begin(f, &r);
    if (mk_seal_error(r.p.srv.s, FZ_REQ_ID, MK_ECODE_APPLICATION, "failed", 6,
                      rec, sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 1, rec, n);
    tu_buf_put(frame_error, rec, n);
    rs_end(f, &r, "error_request");

    rs_begin(f, &r);
    if (mk_seal_error(r.p.srv.s, 0, MK_ECODE_SHUTDOWN, "bye", 3, rec,
                      sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 1, rec, n);
    rs_end(f, &r, "error_connection");

    rs_begin(f, &r);
    if (mk_seal_close(r.p.srv.s, rec, sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 1, rec, n);
    tu_buf_put(frame_close, rec, n);
    rs_end(f, &r, "close_from_server");

    rs_begin(f, &r);
    if (mk_seal_message(r.p.c.s, 2, (const uint8_t *)"second", 6, rec,
                        sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 0, rec, n);
    if (mk_seal_record(r.p.c.s, 3, 0, (const uint8_t *)"a", 1, rec, sizeof rec,
                       &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 0, rec, n);
    if (mk_seal_record(r.p.c.s, 3, 1, (const uint8_t *)"b", 1, rec, sizeof rec,
                       &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 0, rec, n);
    if (mk_seal_close(r.p.c.s, rec, sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 0, rec, n);
    rs_end(f, &r, "requests_and_close");

    rs_begin(f, &r);
    if (mk_seal_message(r.p.c.s, 2, (const uint8_t *)"q2", 2, rec, sizeof rec,
                        &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 0, rec, n);
    if (mk_seal_message(r.p.srv.s, FZ_REQ_ID, (const uint8_t *)"r1", 2, rec,
                        sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 1, rec, n);
    if (mk_seal_close(r.p.srv.s, rec, sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 1, rec, n);
    if (mk_seal_close(r.p.c.s, rec, sizeof rec, &n) != MK_OK)
        tl_die("seal");
    rs_add(&r, 0, rec, n);
    rs_end(f, &r, "interleaved");

    /* A response of a full-size record and a short one. */
    big = malloc(20000);
    if (big == NULL)
        tl_die("memory");
    tu_pattern(big, 20000, 5);
    rs_begin(f, &r);
    {
        size_t cap = mk_message_wire_len(20000);
        uint8_t *w = malloc(cap);
        if (w == NULL || mk_seal_message(r.p.srv.s, FZ_REQ_ID, big, 20000, w,
                                         cap, &n) != MK_OK)
            tl_die("seal");
        rs_add(&r, 1, w, n);
        free(w);
    }
    rs_end(f, &r, "response_large");
    free(big);
}

/* --- ticket seeds --------------------------------------------------------- */

/* A ticket of the v2.0 format (state version 2, no auth_time), sealed as
 * the fixture's issuing key would have sealed it: it must be unusable. */
static void old_format_seed(fz_fixture *f, const mk_ticket_state *st,
                            const uint8_t iv[MK_IV_LEN])
{
    uint8_t pt[54], t[MK_TICKET_MAX];
    const mk_tk *k = &f->sc->tkeys[0];
    mk_ticket_state back;
    size_t ct_len = 0;
    mkc_iov iov;
    mk_wr w;

    mk_wr_init(&w, pt, sizeof pt);
    mk_wr_u8(&w, 2);
    mk_wr_u8(&w, 0);
    mk_wr_bytes(&w, st->key_id, MK_KEY_ID_LEN);
    mk_wr_u64(&w, st->issued_ms);
    mk_wr_u32(&w, st->lifetime);
    mk_wr_bytes(&w, st->secret, MK_SECRET_LEN);
    memcpy(t, k->name, MK_TICKET_NAME_LEN);
    memcpy(t + 16, iv, MK_IV_LEN);
    if (w.bad || mkc_cbc_encrypt(k->enc, iv, pt, sizeof pt, t + 32,
                                 sizeof t - 64, &ct_len) != MK_OK)
        tl_die("old ticket");
    iov.p = t;
    iov.len = 32 + ct_len;
    if (mkc_hmac_sha256(k->mac, MK_SECRET_LEN, &iov, 1, t + 32 + ct_len) !=
        MK_OK)
        tl_die("old ticket");
    if (mk__ticket_open(f->sc, t, 32 + ct_len + 32, f->senv.now_ms, &back) ==
        MK_OK)
        tl_die("ticket old_format: accepted");
    put("fuzz_ticket", "old_format", t, 32 + ct_len + 32);
}

/* Seal st under cfg's issuing key as seed `name`, after checking that the
 * fixture's server finds it usable or not, as the seed means it to be. */
static void ticket_seed(fz_fixture *f, const mk_server_config *cfg,
                        const mk_ticket_state *st, const char *name, int usable)
{
    static const uint8_t iv[MK_IV_LEN] = {0x1F, 0x2E, 0x3D, 0x4C};
    uint8_t t[MK_TICKET_MAX];
    mk_ticket_state back;
    size_t n = 0;

    if (mk__ticket_seal(cfg, st, iv, t, sizeof t, &n) != MK_OK)
        tl_die("ticket %s", name);
    if ((mk__ticket_open(f->sc, t, n, f->senv.now_ms, &back) == MK_OK) !=
        usable)
        tl_die("ticket %s: %s", name, usable ? "refused" : "accepted");
    put("fuzz_ticket", name, t, n);
}

static void ticket_seeds(fz_fixture *f)
{
    static const uint8_t iv[MK_IV_LEN] = {0x1F, 0x2E, 0x3D, 0x4C};
    const uint64_t now = f->senv.now_ms;
    size_t tlen;
    mk_ticket_state st;
    mk_server_config *ba;

    /* The fixture session's own ticket. */
    tlen = (size_t)f->blob[56] << 8 | f->blob[57];
    put("fuzz_ticket", "issued", f->blob + 58, tlen);

    fz_reset(f);
    memset(&st, 0, sizeof st);
    key_id_of("server2048.pem", st.key_id);
    st.issued_ms = now;
    st.auth_ms = now - 3600 * 1000;
    st.lifetime = MK_TICKET_LIFETIME_DEFAULT;
    memset(st.secret, 0x5A, sizeof st.secret);
    ticket_seed(f, f->sc, &st, "sealed", 1);
    st.lifetime = 0;
    ticket_seed(f, f->sc, &st, "lifetime_zero", 0);
    st.lifetime = MK_TICKET_LIFETIME_LIMIT + 1;
    ticket_seed(f, f->sc, &st, "lifetime_over_limit", 0);
    st.lifetime = MK_TICKET_LIFETIME_LIMIT;
    st.issued_ms = now + 10 * 60 * 1000;
    ticket_seed(f, f->sc, &st, "issued_in_future", 0);
    st.issued_ms = now;
    st.lifetime = MK_TICKET_LIFETIME_DEFAULT;
    /* A session past its maximum age, one started after its ticket, one
     * under a server key the fixture does not hold. */
    st.auth_ms = now - (uint64_t)MK_SESSION_MAX_AGE_DEFAULT * 1000;
    ticket_seed(f, f->sc, &st, "session_too_old", 0);
    st.auth_ms = now + 1;
    ticket_seed(f, f->sc, &st, "auth_after_issue", 0);
    st.auth_ms = now;
    key_id_of("server3072.pem", st.key_id);
    ticket_seed(f, f->sc, &st, "key_not_held", 0);
    key_id_of("server2048.pem", st.key_id);
    old_format_seed(f, &st, iv);

    /* Under the fixture's second (accept-only) key. */
    ba = fz_server_config(&f->senv.env, "server2048.pem", "BA", 0x10);
    ticket_seed(f, ba, &st, "second_key", 1);
    mk_server_config_unref(ba);
}

/* --- key seeds ------------------------------------------------------------ */

static void base64_pem(const char *label, const uint8_t *der, size_t n,
                       tu_buf *pem)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char line[80];
    size_t col = 0;

    snprintf(line, sizeof line, "-----BEGIN %s-----\n", label);
    tu_buf_put(pem, (const uint8_t *)line, strlen(line));
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)der[i] << 16;
        char q[4];
        if (i + 1 < n)
            v |= (uint32_t)der[i + 1] << 8;
        if (i + 2 < n)
            v |= der[i + 2];
        q[0] = b64[v >> 18 & 63];
        q[1] = b64[v >> 12 & 63];
        q[2] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? b64[v & 63] : '=';
        tu_buf_put(pem, (const uint8_t *)q, 4);
        col += 4;
        if (col == 64) {
            tu_buf_put(pem, (const uint8_t *)"\n", 1);
            col = 0;
        }
    }
    if (col)
        tu_buf_put(pem, (const uint8_t *)"\n", 1);
    snprintf(line, sizeof line, "-----END %s-----\n", label);
    tu_buf_put(pem, (const uint8_t *)line, strlen(line));
}

static void key_seeds(void)
{
    static const char *const files[] = {
        "server2048.pem",     "server2048.pub.pem", "server2048.pub.der",
        "server3072.pub.pem", "server4096.pem",     "weak1024.pem",
        "weak1024.pub.pem"};
    uint8_t der[1024];
    size_t n = 0;
    mk_server_key *k;
    tu_buf pem = {0};

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len;
        uint8_t *p = fz_key_file(files[i], &len);
        put("fuzz_key", files[i], p, len);
        free(p);
    }
    /* PKCS#1 RSAPublicKey: the BIT STRING contents of a 2048-bit SPKI. */
    k = fz_server_key("server2048.pem");
    if (mk_server_key_public_der(k, der, sizeof der, &n) != MK_OK || n < 24 ||
        der[19] != 0x03 || der[23] != 0x00)
        tl_die("spki");
    base64_pem("RSA PUBLIC KEY", der + 24, n - 24, &pem);
    put_buf("fuzz_key", "server2048.pkcs1.pub.pem", &pem);
    tu_buf_free(&pem);
    mk_server_key_free(k);
}

/* --- session blob seeds --------------------------------------------------- */

static void blob_seeds(fz_fixture *f)
{
    uint8_t b[MK_SESSION_BLOB_MAX];

    put("fuzz_session_blob", "valid", f->blob, f->blob_len);
    memcpy(b, f->blob, f->blob_len);
    memset(b + 20, 0, 4); /* lifetime 0: expired for the client */
    put("fuzz_session_blob", "expired", b, f->blob_len);
    memcpy(b, f->blob, f->blob_len);
    b[4] ^= 0x01; /* a key id nobody pins */
    put("fuzz_session_blob", "unpinned_key", b, f->blob_len);
    memcpy(b, f->blob, f->blob_len);
    b[24] ^= 0x01; /* a wrong secret: the binder fails */
    put("fuzz_session_blob", "wrong_secret", b, f->blob_len);
    put("fuzz_session_blob", "truncated", f->blob, f->blob_len - 1);
}

int main(int argc, char **argv)
{
    tu_buf ch = {0}, sh = {0}, hr = {0}, alert = {0}, data = {0}, error = {0},
           closing = {0}, stream = {0};
    fz_fixture *f;
    uint8_t hdr[4] = {MK_UNIT_DATA, 0, 0xFF, 0xFF};

    tl_set_prog("make_corpus");
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS-DIR (e.g. fuzz/corpus)\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    mkdir_p(outdir);
    f = fz_fixture_get();

    client_hello_seeds(f, &ch);
    server_hello_seeds(f, &sh, &hr, &alert);
    record_seeds(f, &data, &error, &closing);
    ticket_seeds(f);
    key_seeds();
    blob_seeds(f);

    put_buf("fuzz_frame", "client_hello", &ch);
    put_buf("fuzz_frame", "server_hello", &sh);
    put_buf("fuzz_frame", "hello_retry", &hr);
    put_buf("fuzz_frame", "alert", &alert);
    put_buf("fuzz_frame", "data", &data);
    put_buf("fuzz_frame", "error", &error);
    put_buf("fuzz_frame", "close", &closing);
    tu_buf_put(&stream, ch.p, ch.len);
    tu_buf_put(&stream, sh.p, sh.len);
    tu_buf_put(&stream, data.p, data.len);
    tu_buf_put(&stream, closing.p, closing.len);
    tu_buf_put(&stream, hdr, 2); /* ends in a partial header */
    put_buf("fuzz_frame", "stream", &stream);
    put("fuzz_frame", "oversized_header", hdr, sizeof hdr);

    tu_buf_free(&ch);
    tu_buf_free(&sh);
    tu_buf_free(&hr);
    tu_buf_free(&alert);
    tu_buf_free(&data);
    tu_buf_free(&error);
    tu_buf_free(&closing);
    tu_buf_free(&stream);
    printf("wrote %zu seed files under %s\n", nfiles, outdir);
    return 0;
}
