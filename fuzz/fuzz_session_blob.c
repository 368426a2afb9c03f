/*
 * fuzz_session_blob.c -- mk_session_new_client() with the input as the
 * stored session, and the hello it leads to. A blob that imports makes a
 * resuming hello, which the fixture server answers and the client checks:
 * the ticket and secret the blob carries meet the server's ticket and
 * binder checks and the client's Finished check.
 */
#include <stdlib.h>

#include "fuzz_common.h"
#include "msg.h"

static uint8_t ch[MK_HANDLE_OUT_LEN], out[MK_HANDLE_OUT_LEN];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_fixture *f;
    mk_session *c = NULL, *s = NULL;
    size_t n = 0;
    mk_event ev;
    mk_ch hello;

    if (size > FZ_MAX_INPUT)
        return 0;
    f = fz_fixture_get();
    fz_reset(f);
    if (mk_session_new_client(&c, f->cc, size ? data : NULL, size) != MK_OK)
        abort();
    if (mk_client_hello(c, ch, sizeof ch, &n) != MK_OK)
        abort();
    /* A blob that did not import gives a full hello: the server's side of
     * that is fuzz_client_hello's business, and costs an RSA decryption
     * here, so only a resuming hello goes on. */
    if (mk__ch_parse(ch, n, &hello) != MK_OK)
        abort();
    if (hello.mode != MK_MODE_RESUME) {
        mk_session_free(c);
        return 0;
    }
    if (mk_session_new_server(&s, f->sc) != MK_OK)
        abort();
    if (mk_session_handle(s, ch, n, out, sizeof out, &ev) == MK_OK &&
        ev.len > 0) {
        /* Once the server accepted the binder, the client holds the
         * ticket's secret: the resumption must complete. A retry (ticket
         * unusable) must be followed. */
        int accepted = ev.type == MK_EV_ESTABLISHED;
        int r = mk_session_handle(c, out, ev.len, ch, sizeof ch, &ev);
        if (r != MK_OK ||
            ev.type != (accepted ? MK_EV_ESTABLISHED : MK_EV_SEND))
            abort();
    }
    mk_session_free(s);
    mk_session_free(c);
    return 0;
}
