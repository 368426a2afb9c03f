/*
 * fcgi.h -- a FastCGI client's record codec (FastCGI 1.0, the Responder
 * role) and the CGI response-header parser, sans-I/O.
 *
 * Pure functions over caller-owned byte buffers: no I/O, no allocation,
 * no libuv, no logging, so that the parsers can be fuzzed
 * (fuzz/fuzz_fcgi.c) and tested on their own. The FastCGI backend
 * (mkd/fastcgi) drives them on the loop.
 *
 * Wire format (FastCGI 1.0), integers big-endian:
 *
 *   record = version u8 (1) | type u8 | request_id u16 |
 *            content_length u16 | padding_length u8 | reserved u8 |
 *            content[content_length] | padding[padding_length]
 *
 * A client sends BEGIN_REQUEST, PARAMS (ended by an empty PARAMS record),
 * STDIN (ended by an empty STDIN record) and perhaps ABORT_REQUEST; it
 * receives STDOUT, STDERR and one END_REQUEST. The decoder refuses
 * anything else: a record a client never expects means the peer is not
 * the responder we think it is, and the connection is closed.
 */
#ifndef MKD_FCGI_H
#define MKD_FCGI_H

#include <stddef.h>
#include <stdint.h>

#include "mkd_err.h"

#define FCGI_VERSION     1u
#define FCGI_HEADER      8u
/* The largest record: a full header, content and padding. */
#define FCGI_CONTENT_MAX 65535u
#define FCGI_RECORD_MAX  (FCGI_HEADER + FCGI_CONTENT_MAX + 255u)

enum fcgi_type {
    FCGI_BEGIN_REQUEST = 1,
    FCGI_ABORT_REQUEST = 2,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_STDERR = 7
};

#define FCGI_ROLE_RESPONDER 1u
#define FCGI_KEEP_CONN      1u

/* END_REQUEST's protocol status. */
enum fcgi_protocol_status {
    FCGI_REQUEST_COMPLETE = 0,
    FCGI_CANT_MPX_CONN = 1,
    FCGI_OVERLOADED = 2,
    FCGI_UNKNOWN_ROLE = 3
};

/* One decoded record. content borrows from the parsed buffer. */
typedef struct fcgi_record {
    uint8_t type;
    uint16_t request_id;
    const uint8_t *content;
    uint16_t content_len;
    /* END_REQUEST */
    uint32_t app_status;
    uint8_t protocol_status;
} fcgi_record;

/*
 * Decode the first record of buf[0..len), as a client expecting answers
 * for request_id. On MKD_OK, *out is filled and *consumed is the record's
 * size (header, content, padding). On MKD_WANT_MORE, *consumed is the
 * whole record's size once the header is there (at most FCGI_RECORD_MAX),
 * else 0. Errors, after which the connection is unusable:
 * MKD_ERR_FRAME_MALFORMED (bad version, a request id other than
 * request_id, an END_REQUEST that is not 8 bytes or has an unknown
 * protocol status) and MKD_ERR_FRAME_TYPE (any type but STDOUT, STDERR,
 * END_REQUEST); MKD_ERR_ARG for a NULL pointer.
 */
MKD_MUST_CHECK int fcgi_parse_record(const uint8_t *buf, size_t len,
                                     uint16_t request_id, fcgi_record *out,
                                     size_t *consumed);

/*
 * Encoders. Each writes into out[0..cap) and returns the bytes written,
 * or 0 if cap is too small or an argument is out of range.
 */

/* BEGIN_REQUEST, role RESPONDER; flags FCGI_KEEP_CONN or 0. */
size_t fcgi_encode_begin(uint8_t *out, size_t cap, uint16_t request_id,
                         uint8_t flags);
/* ABORT_REQUEST (no content). */
size_t fcgi_encode_abort(uint8_t *out, size_t cap, uint16_t request_id);

/* One name-value pair of a PARAMS stream, appended at out[*pos]: each
 * length in 1 byte below 128, else 4 (high bit set). Lengths are capped
 * at 2^31-1. MKD_OK, or MKD_ERR_BUFFER (nothing written). */
MKD_MUST_CHECK int fcgi_put_param(uint8_t *out, size_t cap, size_t *pos,
                                  const char *name, size_t name_len,
                                  const char *value, size_t value_len);

/* The bytes fcgi_encode_stream needs for len bytes of data: records of at
 * most FCGI_CONTENT_MAX, each padded to a multiple of 8, then the empty
 * record that ends the stream when end is set. */
size_t fcgi_stream_size(size_t len, int end);
/* Wrap data[0..len) in records of type (PARAMS or STDIN) for request_id,
 * ended by an empty record when end is set. Returns fcgi_stream_size, or
 * 0 if cap is smaller. */
size_t fcgi_encode_stream(uint8_t *out, size_t cap, uint8_t type,
                          uint16_t request_id, const uint8_t *data, size_t len,
                          int end);

/* ---- the CGI response header on STDOUT -------------------------------- */

/* Limits on the header section: the whole of it, and how many lines. */
#define FCGI_CGI_HEAD_MAX  16384u
#define FCGI_CGI_LINES_MAX 100u

typedef struct fcgi_cgi_head {
    int status;           /* Status:, else 200 (302 with a Location:) */
    size_t head_len;      /* bytes of the header section, blank line included */
    const uint8_t *ctype; /* Content-Type's value (borrowed), or NULL */
    size_t ctype_len;
} fcgi_cgi_head;

/*
 * Parse the CGI header section at the start of buf[0..len) (the STDOUT
 * stream so far): lines "Name: value" ended by CRLF or LF, then an empty
 * line; the body follows at head_len. MKD_OK with *out filled;
 * MKD_WANT_MORE if the blank line has not come yet (and len is within
 * FCGI_CGI_HEAD_MAX); MKD_ERR_FRAME_TOO_LARGE past the limits;
 * MKD_ERR_FRAME_MALFORMED for a line that is not a header (no colon, a
 * name that is not a token, a control byte) or a bad Status.
 */
MKD_MUST_CHECK int fcgi_parse_cgi_head(const uint8_t *buf, size_t len,
                                       fcgi_cgi_head *out);

#endif /* MKD_FCGI_H */
