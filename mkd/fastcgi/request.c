/*
 * request.c -- one request: its context as FastCGI parameters and its
 * body as STDIN (what the PHP script reads from php://input), encoded
 * once at submit; its STDOUT gathered up to the answer's limit, STDERR
 * logged; the CGI header turned into a status at END_REQUEST.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkd_log.h"

/* The parameters: the CGI ones PHP-FPM needs to run the script, then the
 * request's context (docs/MKD.md, "backend = fastcgi"). */
static int put_params(const fastcgi *b, const mkd_request_ctx *ctx, size_t len,
                      uint8_t *out, size_t cap, size_t *pos)
{
    char num[4][24], sid[2 * MKD_SESSION_ID_LEN + 1],
        kid[2 * MKD_KEY_ID_LEN + 1];
    const char *kv[][2] = {
        {"GATEWAY_INTERFACE", "CGI/1.1"},
        {"SERVER_SOFTWARE", "mkd"},
        {"SERVER_PROTOCOL", "MEGAKI/1"},
        {"REQUEST_METHOD", "POST"},
        {"REQUEST_URI", "/"},
        {"SCRIPT_FILENAME", b->script},
        {"SCRIPT_NAME", b->script},
        {"CONTENT_TYPE", "application/octet-stream"},
        {"CONTENT_LENGTH", num[0]},
        {"REMOTE_ADDR", ctx->peer_addr},
        {"REMOTE_PORT", num[1]},
        {"MEGAKI_SESSION_ID", sid},
        {"MEGAKI_KEY_ID", kid},
        {"MEGAKI_REQUEST_ID", num[2]},
        {"MEGAKI_CONNECTION_ID", num[3]},
        {"MEGAKI_EARLY", ctx->early ? "1" : "0"},
    };
    int r = MKD_OK;

    (void)snprintf(num[0], sizeof num[0], "%zu", len);
    (void)snprintf(num[1], sizeof num[1], "%u", ctx->peer_port);
    (void)snprintf(num[2], sizeof num[2], "%" PRIu32, ctx->request_id);
    (void)snprintf(num[3], sizeof num[3], "%" PRIu64, ctx->conn_id);
    mkd_hex(ctx->session_id, MKD_SESSION_ID_LEN, sid);
    mkd_hex(ctx->key_id, MKD_KEY_ID_LEN, kid);
    for (size_t i = 0; i < sizeof kv / sizeof kv[0] && r == MKD_OK; i++)
        r = fcgi_put_param(out, cap, pos, kv[i][0], strlen(kv[i][0]), kv[i][1],
                           strnlen(kv[i][1], 4096));
    return r;
}

int fastcgi__req_encode(fastcgi *b, fc_req *r, const mkd_request_ctx *ctx,
                        const uint8_t *body, size_t len)
{
    uint8_t params[2 * sizeof b->script + 1024];
    size_t plen = 0, at, n;
    int e;

    if ((e = put_params(b, ctx, len, params, sizeof params, &plen)) != MKD_OK)
        return e;
    n = 16 + fcgi_stream_size(plen, 1) + fcgi_stream_size(len, 1);
    if ((r->wire = malloc(n)) == NULL)
        return MKD_ERR_NOMEM;
    at = fcgi_encode_begin(r->wire, n, FC_REQUEST_ID, FCGI_KEEP_CONN);
    at += fcgi_encode_stream(r->wire + at, n - at, FCGI_PARAMS, FC_REQUEST_ID,
                             params, plen, 1);
    at += fcgi_encode_stream(r->wire + at, n - at, FCGI_STDIN, FC_REQUEST_ID,
                             body, len, 1);
    r->wire_len = at;
    return at == n ? MKD_OK : MKD_ERR_BUFFER;
}

/* STDOUT: append to the answer, within its limit (the body's and the
 * CGI header's). */
static int take_stdout(fc_req *r, const fcgi_record *rec)
{
    size_t want = r->out_len + rec->content_len, cap = r->out_cap;
    uint8_t *p;

    if (want > r->max_body + FCGI_CGI_HEAD_MAX)
        return MKD_ERR_FRAME_TOO_LARGE;
    if (want > cap) {
        cap = cap ? cap : 4096;
        while (cap < want)
            cap *= 2;
        if (cap > r->max_body + FCGI_CGI_HEAD_MAX)
            cap = r->max_body + FCGI_CGI_HEAD_MAX;
        if ((p = realloc(r->out, cap)) == NULL)
            return MKD_ERR_NOMEM;
        r->out = p;
        r->out_cap = cap;
    }
    if (rec->content_len > 0)
        memcpy(r->out + r->out_len, rec->content, rec->content_len);
    r->out_len = want;
    return MKD_OK;
}

/* STDERR: PHP's warnings and notices; logged with control bytes shown
 * as '?', cut at 512 bytes a record. */
static void log_stderr(fc_conn *c, const fcgi_record *rec)
{
    char line[513];
    size_t n = rec->content_len < 512 ? rec->content_len : 512;

    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = rec->content[i];
        line[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    line[n] = '\0';
    c->b->stderr_records++;
    mkd_warn(c->req->conn_id, "fastcgi: %s: stderr: %s", c->up->name, line);
}

static int input_fail(fastcgi *b, int e, mkd_backend_status *st,
                      const char **text)
{
    if (e == MKD_ERR_FRAME_TOO_LARGE) {
        b->app_errors++;
        *st = MKD_BACKEND_APPLICATION;
        *text = "response too large";
        return -1;
    }
    if (e != MKD_ERR_NOMEM) {
        b->protocol_errors++;
        mkd_warn(0, "fastcgi: malformed reply: %s", mkd_strerror(e));
    }
    *st = MKD_BACKEND_INTERNAL;
    *text = "internal error";
    return -1;
}

int fastcgi__req_input(fc_conn *c, mkd_backend_status *st, const char **text)
{
    size_t at = 0, used;
    fcgi_record rec;
    int e = MKD_OK;

    while ((e = fcgi_parse_record(c->in + at, c->in_len - at, FC_REQUEST_ID,
                                  &rec, &used)) == MKD_OK) {
        at += used;
        if (rec.type == FCGI_STDOUT)
            e = take_stdout(c->req, &rec);
        else if (rec.type == FCGI_STDERR)
            log_stderr(c, &rec);
        if (e != MKD_OK)
            return input_fail(c->b, e, st, text);
        if (rec.type == FCGI_END_REQUEST) {
            c->req->protocol_status = rec.protocol_status;
            if (at != c->in_len) /* nothing may follow the end */
                return input_fail(c->b, MKD_ERR_FRAME_MALFORMED, st, text);
            c->in_len = 0;
            return 1;
        }
    }
    if (e != MKD_WANT_MORE)
        return input_fail(c->b, e, st, text);
    memmove(c->in, c->in + at, c->in_len - at);
    c->in_len -= at;
    return 0;
}

void fastcgi__req_finish(fastcgi *b, fc_req *r)
{
    fcgi_cgi_head h;
    char text[64];
    int e;

    if (r->protocol_status != FCGI_REQUEST_COMPLETE) {
        int busy = r->protocol_status != FCGI_UNKNOWN_ROLE;
        b->overloaded += busy;
        fastcgi__req_answer(
            b, r, busy ? MKD_BACKEND_OVERLOADED : MKD_BACKEND_INTERNAL, NULL, 0,
            busy ? "overloaded" : "internal error");
        return;
    }
    if ((e = fcgi_parse_cgi_head(r->out, r->out_len, &h)) != MKD_OK) {
        b->protocol_errors++;
        mkd_warn(r->conn_id, "fastcgi: the answer's CGI header: %s",
                 e == MKD_WANT_MORE ? "cut short" : mkd_strerror(e));
        fastcgi__req_answer(b, r, MKD_BACKEND_INTERNAL, NULL, 0,
                            "internal error");
    } else if (h.status < 200 || h.status > 299) {
        b->app_errors++;
        (void)snprintf(text, sizeof text, "application error (status %d)",
                       h.status);
        fastcgi__req_answer(b, r, MKD_BACKEND_APPLICATION, NULL, 0, text);
    } else if (r->out_len - h.head_len > r->max_body) {
        b->app_errors++;
        fastcgi__req_answer(b, r, MKD_BACKEND_APPLICATION, NULL, 0,
                            "response too large");
    } else {
        fastcgi__req_answer(b, r, MKD_BACKEND_OK, r->out + h.head_len,
                            r->out_len - h.head_len, NULL);
    }
}

void fastcgi__req_dispatch(fastcgi *b, fc_req *r)
{
    fc_upstream *up;
    int e = MKD_ERR_SYSTEM;

    while (e == MKD_ERR_SYSTEM && (up = fastcgi__pick(b, r)) != NULL)
        e = fastcgi__conn_run(b, up, r);
    if (e == MKD_OK)
        return;
    if (e == MKD_ERR_SYSTEM) {
        b->overloaded++;
        fastcgi__req_answer(b, r, MKD_BACKEND_OVERLOADED, NULL, 0,
                            "overloaded");
    } else {
        fastcgi__req_answer(b, r, MKD_BACKEND_INTERNAL, NULL, 0,
                            "internal error");
    }
}

void fastcgi__req_answer(fastcgi *b, fc_req *r, mkd_backend_status st,
                         const uint8_t *body, size_t len, const char *text)
{
    mkd_backend_timing tm;
    uint64_t now = uv_hrtime();

    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        b->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    b->inflight--;
    tm.worker_pid = 0;
    tm.queue_us = r->started_ns ? (r->started_ns - r->submitted_ns) / 1000u
                                : (now - r->submitted_ns) / 1000u;
    tm.run_us = r->started_ns ? (now - r->started_ns) / 1000u : 0;
    if (r->cancelled) {
        b->cancelled++;
    } else {
        b->answered++;
        r->done(r->token, st, body, len, text, &tm);
    }
    if (r->wire != NULL)
        mkd_wipe(r->wire, r->wire_len);
    if (r->out != NULL)
        mkd_wipe(r->out, r->out_cap);
    free(r->wire);
    free(r->out);
    free(r);
    fastcgi__maybe_drained(b);
}
