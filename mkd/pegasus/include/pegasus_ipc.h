/*
 * ipc.h -- the worker protocol's frame codec (docs/WORKER-PROTOCOL.md).
 *
 * Pure functions over byte buffers: no I/O, no allocation, no libuv, no
 * logging, so that the parser can be fuzzed (fuzz/fuzz_ipc.c) and tested on
 * its own. Pegasus (the daemon side) and the tests use it; Arcangelo has
 * its own PHP implementation of the same spec (arcangelo/src/Frame.php),
 * and both are checked against the shared vectors in
 * tests/vectors/worker-ipc.txt.
 *
 * Wire format, all integers big-endian:
 *
 *   frame   = type u8 | length u32 | body[length]
 *
 * A frame's length never exceeds PEGASUS_IPC_HARD_MAX; each endpoint also
 * enforces its own, lower limit (the configured max_message plus
 * PEGASUS_IPC_OVERHEAD), checked on the header alone, before any buffer
 * grows.
 */
#ifndef PEGASUS_IPC_H
#define PEGASUS_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "mkd_err.h"

#define PEGASUS_IPC_VERSION 1u

/* Frame types. W->D: worker to daemon; D->W: daemon to worker. */
enum pegasus_ipc_type {
    PEGASUS_IPC_HELLO = 0x01,     /* W->D: the application is loaded */
    PEGASUS_IPC_REQUEST = 0x02,   /* D->W: context + request body */
    PEGASUS_IPC_RESPONSE = 0x03,  /* W->D: the answer's body */
    PEGASUS_IPC_APP_ERROR = 0x04, /* W->D: the handler failed */
    PEGASUS_IPC_SHUTDOWN = 0x05   /* D->W: finish up and exit */
};

#define PEGASUS_IPC_HEADER   5u
/* 256 MiB (the largest max_message MKD accepts) plus room for context. */
#define PEGASUS_IPC_HARD_MAX ((256u << 20) + 1024u)
/* Bytes a frame may carry beyond the message body itself. */
#define PEGASUS_IPC_OVERHEAD 1024u

#define PEGASUS_IPC_HELLO_FIXED    8u    /* version, flags, pid */
#define PEGASUS_IPC_SOFTWARE_MAX   255u  /* HELLO's informational text */
#define PEGASUS_IPC_CTX_FIXED      40u   /* REQUEST context before addr */
#define PEGASUS_IPC_ADDR_MAX       45u   /* longest textual IPv6 address */
#define PEGASUS_IPC_CTX_MAX        1024u /* ctx_len upper bound */
#define PEGASUS_IPC_ANSWER_FIXED   9u    /* tag + flags */
#define PEGASUS_IPC_ERROR_TEXT_MAX 1024u /* as the protocol's error text */

/* REQUEST context flags. */
#define PEGASUS_IPC_REQ_EARLY   0x01u
/* RESPONSE / APP_ERROR flags. */
#define PEGASUS_IPC_ANS_EXITING 0x01u /* the worker exits after this frame */

/* Space a REQUEST frame's header and context take at most: what
 * pegasus_ipc_encode_request_head writes before the body. */
#define PEGASUS_IPC_REQ_HEAD_MAX                                               \
    (PEGASUS_IPC_HEADER + 2u + PEGASUS_IPC_CTX_FIXED + PEGASUS_IPC_ADDR_MAX)

/* The request context as it travels (docs/WORKER-PROTOCOL.md section 4). */
typedef struct pegasus_ipc_ctx {
    uint64_t tag; /* Pegasus' own id, echoed in the answer */
    uint64_t conn_id;
    uint32_t request_id;
    uint16_t port;
    uint8_t flags; /* PEGASUS_IPC_REQ_* */
    uint8_t addr_len;
    uint8_t session_id[16];
    char addr[PEGASUS_IPC_ADDR_MAX + 1]; /* NUL-terminated copy */
} pegasus_ipc_ctx;

/* One decoded frame. Pointers borrow from the parsed buffer. */
typedef struct pegasus_ipc_frame {
    uint8_t type;
    uint32_t len;        /* body length */
    const uint8_t *body; /* the whole body */
    /* HELLO */
    uint16_t version;
    uint32_t pid;
    /* HELLO: software text; RESPONSE: body; APP_ERROR: text; REQUEST:
     * the request body after the context. */
    const uint8_t *data;
    size_t data_len;
    /* REQUEST, RESPONSE, APP_ERROR */
    uint64_t tag;
    uint8_t flags;
    /* REQUEST */
    pegasus_ipc_ctx ctx;
} pegasus_ipc_frame;

/*
 * Decode the first frame of buf[0..len). max_len bounds the length field
 * (0 or anything above PEGASUS_IPC_HARD_MAX means the hard maximum).
 * On MKD_OK, *out is filled and *consumed is the frame's size.
 * On MKD_WANT_MORE, *consumed is the whole frame's size if the header is
 * complete (so the caller can size its buffer), else 0.
 * Any error (MKD_ERR_FRAME_TOO_LARGE, MKD_ERR_FRAME_TYPE,
 * MKD_ERR_FRAME_MALFORMED; MKD_ERR_ARG for a NULL pointer): the stream is
 * unusable from here on, and the worker must be killed.
 * Each frame type's body is checked completely: a frame either decodes
 * exactly or is rejected (no trailing bytes where the spec has none).
 */
int pegasus_ipc_parse(const uint8_t *buf, size_t len, uint32_t max_len,
                      pegasus_ipc_frame *out, size_t *consumed);

/* A short, constant name for a result code (for logs). */
const char *pegasus_ipc_strerror(int result);
/* A frame type's name, or "unknown". */
const char *pegasus_ipc_type_name(unsigned type);

/*
 * Encoders. Each writes into out[0..cap) and returns the bytes written, or
 * 0 if cap is too small or an argument is out of range.
 */

/* REQUEST: the frame header and the context, for a body of body_len bytes
 * that the caller sends right after (scatter write, no copy of the body).
 * cap >= PEGASUS_IPC_REQ_HEAD_MAX always suffices. */
size_t pegasus_ipc_encode_request_head(uint8_t *out, size_t cap,
                                       const pegasus_ipc_ctx *ctx,
                                       size_t body_len);
/* SHUTDOWN (5 bytes). */
size_t pegasus_ipc_encode_shutdown(uint8_t *out, size_t cap);
/* HELLO (tests and other implementations' reference). */
size_t pegasus_ipc_encode_hello(uint8_t *out, size_t cap, uint16_t version,
                                uint32_t pid, const char *software);
/* RESPONSE or APP_ERROR: the header and the fixed part, before data of
 * data_len bytes that the caller appends. */
size_t pegasus_ipc_encode_answer_head(uint8_t *out, size_t cap, uint8_t type,
                                      uint64_t tag, uint8_t flags,
                                      size_t data_len);

/*
 * Worker output (stdout and stderr, read line by line into MKD's log,
 * docs/WORKER-PROTOCOL.md section 1): the level MKD logs a line at. A line
 * may start with its severity as sd-daemon(3) lines do, "<N>" with N a
 * syslog priority 0..7 (0..3 error, 4 warn, 5 and 6 info, 7 debug); the
 * prefix is not logged. A line PHP itself wrote to stderr ("PHP Fatal
 * error:  ...", "PHP Warning:  ...") is recognised by that prefix, which
 * stays. Anything else is info. Returns an MKD_LOG_* level and sets *skip
 * to the bytes of prefix to drop.
 */
int pegasus_output_level(const char *line, size_t len, size_t *skip);

#endif /* PEGASUS_IPC_H */
