/*
 * fuzz_server_hello.c -- the client's handshake: a client that has written
 * its hello (full if the first input byte is even, resuming if odd) is fed
 * the rest of the input as the server's units: SERVER_HELLO, HELLO_RETRY,
 * ALERT, and whatever follows. Once established it seals a request, so the
 * announced limits it parsed are used.
 *
 * The seeds replay what real servers answered to this very (deterministic)
 * hello, retries included, so mutations start from verified Finished MACs.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static uint8_t out[MK_HANDLE_OUT_LEN];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_fixture *f;
    mk_session *c;
    size_t n = 0, off = 1, ul;

    if (size < 1 || size > FZ_MAX_INPUT)
        return 0;
    f = fz_fixture_get();
    fz_reset(f);
    c = fz_client_hello(f, data[0] & 1, out, &n);
    while (off < size) {
        mk_event ev;
        int r = mk_frame_check(data + off, size - off, &ul);
        if (r != MK_OK)
            break;
        r = mk_session_handle(c, data + off, ul, out, sizeof out, &ev);
        off += ul;
        if (r != MK_OK) {
            if (mk_session_state(c) != MK_STATE_FAILED ||
                mk_session_error(c) != r)
                abort();
            break;
        }
    }
    if (mk_session_state(c) == MK_STATE_ESTABLISHED) {
        static const uint8_t req[] = "GET /";
        mk_session_info info;
        uint8_t blob[MK_SESSION_BLOB_MAX];
        mk_session_get_info(c, &info);
        if (info.max_message < 1 || info.max_inflight < 1)
            abort();
        /* Either may be refused (a tiny announced maximum, no ticket);
         * neither may crash. */
        int r1 = mk_seal_message(c, 7, req, sizeof req, out, sizeof out, &n);
        int r2 = mk_session_export(c, blob, sizeof blob, &n);
        if ((r1 != MK_OK && r1 != MK_ERR_MESSAGE_TOO_LARGE) ||
            (r2 != MK_OK && r2 != MK_ERR_STATE))
            abort();
    }
    mk_session_free(c);
    return 0;
}
