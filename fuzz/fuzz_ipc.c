/*
 * fuzz_ipc.c -- libFuzzer harness for the worker protocol's frame parser
 * (mkd/pegasus/ipc.c), the bytes Pegasus reads from a worker process.
 *
 * Build: this file plus mkd/pegasus/ipc.c and mkd/common/error.c, with
 * their rooms' include directories on the include path. Seeds:
 * fuzz/corpus/fuzz_ipc/ (one frame stream per file).
 *
 * What it checks, beyond "no crash, no overread" (ASan/UBSan):
 *   - the input is parsed as a stream, as on_ipc_read does: frame after
 *     frame, under a small limit and under the hard maximum;
 *   - a result is MKD_OK, MKD_WANT_MORE or a frame error, and *consumed
 *     agrees with it;
 *   - every decoded field lies inside the input;
 *   - a decoded frame re-encodes to exactly the bytes it came from, unless
 *     its REQUEST context carries extension bytes (ctx_len larger than the
 *     fields it names), which the spec lets a receiver skip.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pegasus_ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_input(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
    if (n == 0)
        return;
    if (p < buf || p > buf + len || n > (size_t)(buf + len - p))
        abort();
}

static void check_reencode(const pegasus_ipc_frame *f, const uint8_t *frame,
                           size_t flen)
{
    uint8_t head[PEGASUS_IPC_REQ_HEAD_MAX + 300];
    char sw[PEGASUS_IPC_SOFTWARE_MAX + 1];
    size_t n = 0;

    switch (f->type) {
    case PEGASUS_IPC_HELLO:
        /* A NUL inside the software text cannot go through a C string. */
        if (memchr(f->data, 0, f->data_len) != NULL)
            return;
        memcpy(sw, f->data, f->data_len);
        sw[f->data_len] = '\0';
        n = pegasus_ipc_encode_hello(head, sizeof head, f->version, f->pid, sw);
        if (n != flen || memcmp(head, frame, n) != 0)
            abort();
        return;
    case PEGASUS_IPC_REQUEST:
        /* Only canonical contexts re-encode byte for byte. */
        if (flen < PEGASUS_IPC_HEADER + 2 ||
            ((size_t)frame[5] << 8 | frame[6]) !=
                PEGASUS_IPC_CTX_FIXED + f->ctx.addr_len)
            return;
        n = pegasus_ipc_encode_request_head(head, sizeof head, &f->ctx,
                                            f->data_len);
        break;
    case PEGASUS_IPC_RESPONSE:
    case PEGASUS_IPC_APP_ERROR:
        n = pegasus_ipc_encode_answer_head(head, sizeof head, f->type, f->tag,
                                           f->flags, f->data_len);
        break;
    case PEGASUS_IPC_SHUTDOWN:
        n = pegasus_ipc_encode_shutdown(head, sizeof head);
        if (n != flen || memcmp(head, frame, n) != 0)
            abort();
        return;
    default:
        abort(); /* the parser returned a type it does not know */
    }
    if (n == 0 || n + f->data_len != flen || memcmp(head, frame, n) != 0 ||
        (f->data_len > 0 && memcmp(f->data, frame + n, f->data_len) != 0))
        abort();
}

static void parse_stream(const uint8_t *data, size_t size, uint32_t max)
{
    size_t off = 0;

    while (off < size) {
        pegasus_ipc_frame f;
        size_t used = 0;
        int r = pegasus_ipc_parse(data + off, size - off, max, &f, &used);

        if (r == MKD_WANT_MORE) {
            /* Announced sizes are whole frames larger than what we have. */
            if (used != 0 && used <= size - off)
                abort();
            return;
        }
        if (r != MKD_OK) {
            /* Only the frame errors: a NULL argument cannot come from
             * here, and nothing else is a result of the parser. */
            if (used != 0 ||
                (r != MKD_ERR_FRAME_TOO_LARGE && r != MKD_ERR_FRAME_TYPE &&
                 r != MKD_ERR_FRAME_MALFORMED))
                abort();
            return;
        }
        if (used < PEGASUS_IPC_HEADER || used > size - off ||
            used != PEGASUS_IPC_HEADER + (size_t)f.len)
            abort();
        in_input(f.body, f.len, data + off, used);
        in_input(f.data, f.data_len, data + off, used);
        if (f.type == PEGASUS_IPC_REQUEST &&
            (f.ctx.addr_len > PEGASUS_IPC_ADDR_MAX ||
             strlen(f.ctx.addr) != f.ctx.addr_len))
            abort();
        check_reencode(&f, data + off, used);
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As Pegasus runs it with a small max_message, and with none. */
    parse_stream(data, size, 64 + PEGASUS_IPC_OVERHEAD);
    parse_stream(data, size, 0);
    return 0;
}
