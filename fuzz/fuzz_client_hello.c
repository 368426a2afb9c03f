/*
 * fuzz_client_hello.c -- the server's first step: a server session (keys
 * server2048, two ticket keys) fed one CLIENT_HELLO whose body is the
 * input, and mk__ch_parse() on the raw input as a whole unit.
 *
 * The seeds are real hellos (full, resuming with a valid ticket and binder,
 * naming an unknown key, with an early block), so mutations reach the RSA
 * decryption, the ticket and binder checks and the SERVER_HELLO writer.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "msg.h"

static uint8_t unit[MK_UNIT_MAX];
static uint8_t out[MK_HANDLE_OUT_LEN];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_fixture *f = fz_fixture_get();
    size_t n = size > MK_UNIT_MAX_BODY ? MK_UNIT_MAX_BODY : size;
    mk_session *s = NULL;
    mk_event ev;
    mk_ch ch;
    int r;

    if (size > FZ_MAX_INPUT)
        return 0;
    (void)mk__ch_parse(data, size, &ch);

    unit[0] = MK_UNIT_CLIENT_HELLO;
    unit[1] = 0;
    unit[2] = (uint8_t)(n >> 8);
    unit[3] = (uint8_t)n;
    if (n)
        memcpy(unit + MK_UNIT_HEADER_LEN, data, n);
    (void)mk__ch_parse(unit, MK_UNIT_HEADER_LEN + n, &ch);

    fz_reset(f);
    if (mk_session_new_server(&s, f->sc) != MK_OK)
        abort();
    r = mk_session_handle(s, unit, MK_UNIT_HEADER_LEN + n, out, sizeof out,
                          &ev);
    /* Whatever happened, the session and its output agree. */
    if (r == MK_OK) {
        if (ev.type == MK_EV_ESTABLISHED) {
            if (mk_session_state(s) != MK_STATE_ESTABLISHED ||
                out[0] != MK_UNIT_SERVER_HELLO || ev.len > MK_UNIT_MAX)
                abort();
        } else if (ev.type == MK_EV_SEND) {
            if (out[0] != MK_UNIT_HELLO_RETRY ||
                mk_session_state(s) != MK_STATE_HANDSHAKE)
                abort();
        } else {
            abort();
        }
    } else {
        if (mk_session_state(s) != MK_STATE_FAILED || mk_session_error(s) != r)
            abort();
        if (ev.type == MK_EV_SEND && out[0] != MK_UNIT_ALERT)
            abort();
    }
    mk_session_free(s);
    return 0;
}
