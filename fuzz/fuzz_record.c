/*
 * fuzz_record.c -- the record layer of an established pair.
 *
 * Each input gets a fresh pair resumed from the fixture blob (no RSA; the
 * deterministic environment makes its keys the same every time), with
 * request 1 in flight. The input is a stream of
 *     direction u8 (even: to the server, odd: to the client) || one unit
 * and every unit goes to that side, until the input ends, does not frame,
 * or both sides have failed. The server answers each request it completes.
 *
 * The seeds are records sealed by make_corpus.c on the same pair, in
 * sequence order, so they verify: mutations explore what comes after the
 * MAC (request ids, flags, error codes, close) as well as the MAC itself.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static uint8_t out[MK_HANDLE_OUT_LEN];
static uint8_t resp[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_fixture *f;
    tu_pair p;
    size_t off = 0;

    if (size > FZ_MAX_INPUT)
        return 0;
    f = fz_fixture_get();
    fz_reset(f);
    if (fz_record_pair(f, &p) != 0)
        abort();
    while (off + 1 < size) {
        int to_client = data[off] & 1;
        mk_session *s = to_client ? p.c.s : p.srv.s;
        const uint8_t *u = data + off + 1;
        size_t ul = 0, n = 0;
        mk_event ev;
        int r;

        if (mk_frame_check(u, size - off - 1, &ul) != MK_OK)
            break;
        off += 1 + ul;
        if (mk_session_state(s) == MK_STATE_FAILED) {
            if (mk_session_state(to_client ? p.srv.s : p.c.s) ==
                MK_STATE_FAILED)
                break;
            continue;
        }
        r = mk_session_handle(s, u, ul, out, sizeof out, &ev);
        if (r != MK_OK) {
            if (mk_session_state(s) != MK_STATE_FAILED ||
                mk_session_error(s) != r)
                abort();
            /* A failed record never yields plaintext. */
            if (ev.type == MK_EV_DATA || (ev.type != MK_EV_SEND && ev.len))
                abort();
            continue;
        }
        if (ev.type == MK_EV_DATA && ev.len > MK_RECORD_MAX_PLAINTEXT)
            abort();
        if (!to_client && ev.type == MK_EV_DATA && ev.final &&
            mk_seal_message(s, ev.request_id, (const uint8_t *)"ok", 2, resp,
                            sizeof resp, &n) != MK_OK)
            abort(); /* a complete request can always be answered */
    }
    tu_pair_free(&p);
    return 0;
}
