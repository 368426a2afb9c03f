/*
 * record.c -- the record layer (docs/PROTOCOL.md §5).
 *
 * Encrypt-then-MAC: AES-256-CBC with a fresh random IV per record, then
 * HMAC-SHA256 over the implicit 64-bit sequence number, the unit header,
 * the request id, the IV and the ciphertext. On receipt the tag is checked
 * in constant time before anything is decrypted, and padding is looked at
 * only after a good tag. Nothing of an unverified record reaches the caller.
 *
 * This is the hot path: no allocation happens here.
 */
#include "internal.h"

#include <string.h>

size_t mk__record_wire_len(size_t pt_len)
{
    /* PKCS#7 always adds 1..16 bytes. */
    return MK_UNIT_HEADER_LEN + MK_RECORD_FIXED + pt_len + 16 - pt_len % 16;
}

static int record_mac(mk_dir *d, const uint8_t hdr[MK_UNIT_HEADER_LEN],
                      const uint8_t *body, size_t body_len,
                      uint8_t tag[MK_MAC_LEN])
{
    uint8_t seq[8];
    mk_put_u64(seq, d->seq);
    mkc_iov iov[3] = {{seq, 8}, {hdr, MK_UNIT_HEADER_LEN}, {body, body_len}};
    return mkc_rec_mac(d->rec, iov, 3, tag);
}

int mk__record_seal(mk_session *s, uint8_t type, uint8_t flags,
                    uint32_t request_id, const uint8_t *pt, size_t len,
                    uint8_t *out, size_t cap, size_t *out_len)
{
    size_t total = mk__record_wire_len(len), ct_len = 0;
    uint8_t *iv, *ct;
    int ret;

    *out_len = 0;
    MK_FAIL_IF(len > MK_RECORD_MAX_PLAINTEXT, MK_ERR_USAGE);
    MK_FAIL_IF(cap < total, MK_ERR_BUFFER);
    MK_FAIL_IF(s->out.seq == UINT64_MAX, MK_ERR_SEQ_EXHAUSTED);
    if (pt == NULL)
        pt = (const uint8_t *)""; /* an empty record still has a pad block */

    out[0] = type;
    out[1] = flags;
    mk_put_u16(out + 2, (uint16_t)(total - MK_UNIT_HEADER_LEN));
    mk_put_u32(out + 4, request_id);
    iv = out + 8;
    ct = iv + MK_IV_LEN;
    MK_TRY(mk__random(s, iv, MK_IV_LEN));
    MK_TRY(mkc_rec_cbc(s->out.rec, iv, pt, len, ct, cap - (size_t)(ct - out),
                       &ct_len));
    MK_FAIL_IF(ct_len != total - MK_UNIT_HEADER_LEN - MK_RECORD_FIXED,
               MK_ERR_CRYPTO);
    MK_TRY(record_mac(&s->out, out, out + MK_UNIT_HEADER_LEN,
                      4 + MK_IV_LEN + ct_len, ct + ct_len));
    s->out.seq++;
    *out_len = total;
out:
    return ret;
}

int mk__record_open(mk_session *s, const uint8_t *unit, size_t unit_len,
                    uint8_t *out, size_t cap, size_t *pt_len,
                    uint32_t *request_id)
{
    uint8_t tag[MK_MAC_LEN];
    size_t body_len, ct_len;
    const uint8_t *body, *iv, *ct;
    int ret;

    *pt_len = 0;
    MK_FAIL_IF(unit_len < MK_UNIT_HEADER_LEN + MK_RECORD_MIN_BODY,
               MK_ERR_BAD_RECORD_MAC);
    body = unit + MK_UNIT_HEADER_LEN;
    body_len = unit_len - MK_UNIT_HEADER_LEN;
    ct_len = body_len - MK_RECORD_FIXED;
    /* A ciphertext that is not whole blocks cannot be ours; it gets the
     * same error as a bad tag so that no record failure is distinguishable. */
    MK_FAIL_IF(ct_len % 16 != 0 || mk_get_u16(unit + 2) != body_len,
               MK_ERR_BAD_RECORD_MAC);
    MK_FAIL_IF(cap < ct_len, MK_ERR_BUFFER);
    MK_FAIL_IF(s->in.seq == UINT64_MAX, MK_ERR_SEQ_EXHAUSTED);
    iv = body + 4;
    ct = iv + MK_IV_LEN;

    MK_TRY(record_mac(&s->in, unit, body, body_len - MK_MAC_LEN, tag));
    MK_FAIL_IF(!mkc_ct_equal(tag, ct + ct_len, MK_MAC_LEN),
               MK_ERR_BAD_RECORD_MAC);
    /* Only now is anything decrypted. */
    MK_TRY(mkc_rec_cbc(s->in.rec, iv, ct, ct_len, out, cap, pt_len));
    s->in.seq++;
    *request_id = mk_get_u32(body);
out:
    mkc_cleanse(tag, sizeof tag);
    return ret;
}

/* --- requests in flight (§5.4) --------------------------------------- */

static mk_req *req_find(mk_session *s, uint32_t id)
{
    for (uint32_t i = 0; i < s->max_inflight; i++)
        if (s->reqs[i].state != REQ_FREE && s->reqs[i].id == id)
            return &s->reqs[i];
    return NULL;
}

static mk_req *req_add(mk_session *s, uint32_t id, uint8_t state)
{
    if (s->nreqs >= s->max_inflight)
        return NULL;
    for (uint32_t i = 0; i < s->max_inflight; i++) {
        if (s->reqs[i].state == REQ_FREE) {
            s->reqs[i].id = id;
            s->reqs[i].state = state;
            s->reqs[i].bytes = 0;
            s->nreqs++;
            return &s->reqs[i];
        }
    }
    return NULL;
}

static void req_done(mk_session *s, mk_req *r)
{
    r->state = REQ_FREE;
    r->id = 0;
    r->bytes = 0;
    s->nreqs--;
}

/* Add n plaintext bytes to a message, refusing to pass the maximum. */
static int req_count(const mk_session *s, mk_req *r, size_t n)
{
    if (n > s->max_message - r->bytes)
        return MK_ERR_MESSAGE_TOO_LARGE;
    r->bytes += (uint32_t)n;
    return MK_OK;
}

static int server_on_data(mk_session *s, uint32_t id, int final, size_t n,
                          uint8_t *out, size_t cap, mk_event *ev)
{
    mk_req *r = req_find(s, id);
    size_t wl = 0;
    int ret = MK_OK;

    if (id == 0)
        return MK_ERR_BAD_REQUEST_ID;
    if (r == NULL) {
        if ((r = req_add(s, id, REQ_RECEIVING)) == NULL) {
            /* The client was told the limit: tell it why we hang up. */
            if (mk__record_seal(s, MK_UNIT_ERROR, MK_FLAG_FINAL, 0,
                                (const uint8_t *)"\x00\x03", 2, out, cap,
                                &wl) == MK_OK) {
                ev->type = MK_EV_SEND;
                ev->len = wl;
            }
            return MK_ERR_TOO_MANY_INFLIGHT;
        }
    } else if (r->state == REQ_WAITING) {
        return MK_ERR_BAD_REQUEST_ID; /* request already complete */
    }
    if (r->state == REQ_ABORTED) {
        /* Already answered with an error: drop the rest of it quietly,
         * plaintext included. */
        if (final)
            req_done(s, r);
        mkc_cleanse(out, n);
        ev->type = MK_EV_NONE;
        ev->len = 0;
        return MK_OK;
    }
    if ((ret = req_count(s, r, n)) != MK_OK) {
        static const uint8_t too_large[] = {0x00, MK_ECODE_TOO_LARGE};
        if (mk__record_seal(s, MK_UNIT_ERROR, MK_FLAG_FINAL, id, too_large,
                            sizeof too_large, out, cap, &wl) == MK_OK) {
            ev->type = MK_EV_SEND;
            ev->len = wl;
        }
        return ret;
    }
    if (final) {
        r->state = REQ_WAITING;
        r->bytes = 0; /* now counts the response */
    }
    ev->type = MK_EV_DATA;
    ev->request_id = id;
    ev->final = final;
    ev->len = n;
    return MK_OK;
}

static int client_on_data(mk_session *s, uint32_t id, int final, size_t n,
                          mk_event *ev)
{
    mk_req *r = req_find(s, id);
    int ret;

    if (r == NULL || r->state != REQ_WAITING)
        return MK_ERR_BAD_REQUEST_ID;
    if ((ret = req_count(s, r, n)) != MK_OK)
        return ret;
    if (final)
        req_done(s, r);
    ev->type = MK_EV_DATA;
    ev->request_id = id;
    ev->final = final;
    ev->len = n;
    return MK_OK;
}

/* Error record plaintext: code u16 || UTF-8 text (§5.5). The text is moved
 * to the front of out so that the caller finds it at out[0..len). */
static int client_on_error(mk_session *s, uint32_t id, uint8_t *out, size_t n,
                           mk_event *ev)
{
    mk_req *r;

    if (n < 2 || n - 2 > MK_ERROR_TEXT_MAX)
        return MK_ERR_BAD_MESSAGE;
    /* Text that is not UTF-8 makes the record malformed (§5.5): a sender
     * that follows the spec never sends it, so fail closed rather than
     * hand an application bytes it would have to guess about. */
    if (mk_utf8_valid_len(out + 2, n - 2) != n - 2)
        return MK_ERR_BAD_MESSAGE;
    ev->type = MK_EV_ERROR;
    ev->request_id = id;
    ev->final = 1;
    ev->error_code = mk_get_u16(out);
    ev->len = n - 2;
    memmove(out, out + 2, n - 2);
    if (id == 0) {
        /* A connection-level error: report it, then the session is over. */
        s->state = MK_STATE_FAILED;
        s->err = MK_ERR_PEER_ERROR;
        return MK_OK;
    }
    if ((r = req_find(s, id)) == NULL)
        return MK_ERR_BAD_REQUEST_ID;
    if (r->state == REQ_SENDING)
        r->state = REQ_ABORTED; /* answered early: finish it, then forget */
    else
        req_done(s, r);
    return MK_OK;
}

int mk__handle_record(mk_session *s, const uint8_t *unit, size_t unit_len,
                      uint8_t *out, size_t cap, mk_event *ev)
{
    uint8_t type = unit[0], flags = unit[1];
    uint32_t id = 0;
    size_t n = 0;
    int ret;

    if (s->close_received)
        return MK_ERR_UNEXPECTED_MSG;
    MK_TRY(mk__record_open(s, unit, unit_len, out, cap, &n, &id));
    /* Everything below is authenticated: a violation is the peer's bug. */
    MK_FAIL_IF(n > MK_RECORD_MAX_PLAINTEXT, MK_ERR_BAD_MESSAGE);
    switch (type) {
    case MK_UNIT_DATA:
        MK_FAIL_IF(flags & ~MK_FLAG_FINAL, MK_ERR_BAD_MESSAGE);
        /* Only the final record of a message may be empty (§5.4): an
         * empty non-final one moves nothing and would let a peer keep a
         * request open without ever counting against max_message. */
        MK_FAIL_IF(!(flags & MK_FLAG_FINAL) && n == 0, MK_ERR_BAD_MESSAGE);
        if (s->is_server)
            ret = server_on_data(s, id, flags & MK_FLAG_FINAL, n, out, cap, ev);
        else
            ret = client_on_data(s, id, flags & MK_FLAG_FINAL, n, ev);
        break;
    case MK_UNIT_ERROR:
        MK_FAIL_IF(flags != MK_FLAG_FINAL, MK_ERR_BAD_MESSAGE);
        /* Clients do not send error records (§5.5). */
        MK_FAIL_IF(s->is_server, MK_ERR_UNEXPECTED_MSG);
        ret = client_on_error(s, id, out, n, ev);
        break;
    case MK_UNIT_CLOSE:
        MK_FAIL_IF(flags != MK_FLAG_FINAL || id != 0 || n != 0,
                   MK_ERR_BAD_MESSAGE);
        s->close_received = 1;
        if (s->close_sent)
            s->state = MK_STATE_CLOSED;
        ev->type = MK_EV_CLOSE;
        ev->len = 0;
        ret = MK_OK;
        break;
    default:
        ret = MK_ERR_UNEXPECTED_MSG;
        break;
    }
out:
    if (ret != MK_OK && ev->type != MK_EV_SEND) {
        /* Never leave unverified or partial plaintext in the caller's
         * buffer after a failure. */
        mkc_cleanse(out, n);
        ev->len = 0;
    } else if (ret != MK_OK && n > ev->len) {
        /* An error record was sealed over the refused plaintext: wipe
         * what is left of it beyond the record. */
        mkc_cleanse(out + ev->len, n - ev->len);
    }
    return ret;
}

/* --- sealing for the application ------------------------------------- */

static int seal_check(mk_session *s)
{
    if (s->state == MK_STATE_FAILED)
        return s->err;
    if (s->state != MK_STATE_ESTABLISHED && s->state != MK_STATE_CLOSED)
        return MK_ERR_STATE;
    if (s->close_sent)
        return MK_ERR_STATE;
    return MK_OK;
}

int mk_seal_record(mk_session *s, uint32_t request_id, int final,
                   const uint8_t *pt, size_t len, uint8_t *out, size_t cap,
                   size_t *out_len)
{
    mk_req *r;
    int ret;

    *out_len = 0;
    MK_TRY(seal_check(s));
    MK_FAIL_IF(request_id == 0 || len > MK_RECORD_MAX_PLAINTEXT ||
                   (pt == NULL && len != 0) || (!final && len == 0),
               MK_ERR_USAGE);
    r = req_find(s, request_id);
    if (s->is_server) {
        /* Answer only a request that has fully arrived. */
        MK_FAIL_IF(r == NULL || r->state != REQ_WAITING, MK_ERR_STATE);
    } else {
        if (r == NULL) {
            MK_FAIL_IF(s->nreqs >= s->max_inflight, MK_ERR_LIMIT);
            r = req_add(s, request_id, REQ_SENDING);
        }
        /* An aborted request (the server already answered it with an
         * error) is still finished on the wire, so both sides free its
         * slot at the same final record (§5.4). */
        MK_FAIL_IF(r == NULL ||
                       (r->state != REQ_SENDING && r->state != REQ_ABORTED),
                   MK_ERR_STATE);
    }
    MK_FAIL_IF(len > s->max_message - r->bytes, MK_ERR_MESSAGE_TOO_LARGE);
    MK_TRY(mk__record_seal(s, MK_UNIT_DATA, final ? MK_FLAG_FINAL : 0,
                           request_id, pt, len, out, cap, out_len));
    r->bytes += (uint32_t)len;
    if (final) {
        if (s->is_server || r->state == REQ_ABORTED) {
            req_done(s, r);
        } else {
            r->state = REQ_WAITING;
            r->bytes = 0; /* now counts the response */
        }
    }
out:
    if (ret != MK_OK && ret != MK_ERR_BUFFER && ret != MK_ERR_STATE &&
        ret != MK_ERR_USAGE && ret != MK_ERR_LIMIT &&
        ret != MK_ERR_MESSAGE_TOO_LARGE && s->state != MK_STATE_FAILED)
        mk__fail(s, ret);
    return ret;
}

size_t mk_message_wire_len(size_t msg_len)
{
    size_t full = msg_len / MK_RECORD_MAX_PLAINTEXT;
    size_t rest = msg_len % MK_RECORD_MAX_PLAINTEXT;
    size_t n = full * mk__record_wire_len(MK_RECORD_MAX_PLAINTEXT);
    /* The last record may be short; an empty message is one empty record. */
    if (rest != 0 || msg_len == 0)
        n += mk__record_wire_len(rest);
    return n;
}

int mk_seal_message(mk_session *s, uint32_t request_id, const uint8_t *msg,
                    size_t msg_len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t off = 0, w = 0, done = 0;
    int ret;

    *out_len = 0;
    MK_FAIL_IF(msg == NULL && msg_len != 0, MK_ERR_USAGE);
    MK_FAIL_IF(cap < mk_message_wire_len(msg_len), MK_ERR_BUFFER);
    if (s->state == MK_STATE_ESTABLISHED)
        MK_FAIL_IF(msg_len > s->max_message, MK_ERR_MESSAGE_TOO_LARGE);
    do {
        size_t n = msg_len - off;
        if (n > MK_RECORD_MAX_PLAINTEXT)
            n = MK_RECORD_MAX_PLAINTEXT;
        MK_TRY(mk_seal_record(s, request_id, off + n == msg_len,
                              msg ? msg + off : NULL, n, out + done, cap - done,
                              &w));
        done += w;
        off += n;
    } while (off < msg_len);
    *out_len = done;
out:
    return ret;
}

int mk_seal_error(mk_session *s, uint32_t request_id, unsigned code,
                  const char *text, size_t text_len, uint8_t *out, size_t cap,
                  size_t *out_len)
{
    uint8_t pt[2 + MK_ERROR_TEXT_MAX];
    mk_req *r = NULL;
    int ret;

    *out_len = 0;
    MK_TRY(seal_check(s));
    /* Only servers send error records (§5.5). */
    MK_FAIL_IF(!s->is_server, MK_ERR_USAGE);
    MK_FAIL_IF(code == 0 || code > 0xFFFF || text_len > MK_ERROR_TEXT_MAX ||
                   (text == NULL && text_len != 0),
               MK_ERR_USAGE);
    if (request_id != 0) {
        r = req_find(s, request_id);
        MK_FAIL_IF(r == NULL || r->state == REQ_ABORTED, MK_ERR_STATE);
    }
    mk_put_u16(pt, (uint16_t)code);
    /* The peer must receive UTF-8 (§5.5), and an application's text (an
     * exception message, say) is not always clean: send it up to its
     * first malformed byte. */
    text_len = mk_utf8_valid_len((const uint8_t *)text, text_len);
    if (text_len)
        memcpy(pt + 2, text, text_len);
    MK_TRY(mk__record_seal(s, MK_UNIT_ERROR, MK_FLAG_FINAL, request_id, pt,
                           2 + text_len, out, cap, out_len));
    if (r != NULL) {
        if (r->state == REQ_RECEIVING)
            r->state = REQ_ABORTED; /* swallow the rest of the request */
        else
            req_done(s, r);
    }
out:
    return ret;
}

int mk_seal_close(mk_session *s, uint8_t *out, size_t cap, size_t *out_len)
{
    int ret;

    *out_len = 0;
    MK_TRY(seal_check(s));
    MK_TRY(mk__record_seal(s, MK_UNIT_CLOSE, MK_FLAG_FINAL, 0, NULL, 0, out,
                           cap, out_len));
    s->close_sent = 1;
    if (s->close_received)
        s->state = MK_STATE_CLOSED;
out:
    return ret;
}
