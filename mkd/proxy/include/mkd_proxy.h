/*
 * mkd_proxy.h -- the PROXY protocol header (versions 1 and 2) that a load
 * balancer such as HAProxy sends before a connection's own bytes, and the
 * list of trusted proxy addresses (trusted_proxies) that may send it.
 *
 * Sans-I/O: the parser reads a buffer the caller owns and fills a struct
 * the caller owns; it allocates nothing and keeps no state between calls,
 * so the caller feeds it the bytes received so far, from the start of the
 * connection, until it answers DONE or BAD. Every length is checked
 * before it is used: a v1 line is at most MKD_PROXY_V1_MAX bytes, a v2
 * header exactly 16 bytes plus the length it announces, whose address
 * block must fit and whose TLVs must tile the rest exactly (they are
 * checked, then skipped: MKD uses none).
 *
 * Nothing here links anything but libc.
 */
#ifndef MKD_PROXY_H
#define MKD_PROXY_H

#include <stddef.h>
#include <stdint.h>

/* The longest v1 line, "\r\n" included; the v2 fixed part. */
#define MKD_PROXY_V1_MAX  107
#define MKD_PROXY_V2_HEAD 16
/* The longest v2 header: the fixed part and a 16-bit length. */
#define MKD_PROXY_V2_MAX  (MKD_PROXY_V2_HEAD + 65535)

enum mkd_proxy_result {
    MKD_PROXY_MORE = 0, /* a valid prefix: more bytes are needed */
    MKD_PROXY_DONE = 1, /* a complete header: see mkd_proxy_header */
    MKD_PROXY_BAD = -1  /* not a PROXY header, or a malformed one */
};

/* What the header says about the connection. */
enum mkd_proxy_family {
    MKD_PROXY_LOCAL = 0, /* no address: v2 LOCAL or UNSPEC, v1 UNKNOWN;
                            the connection's own endpoints apply */
    MKD_PROXY_INET,      /* addresses in src/dst[0..4) */
    MKD_PROXY_INET6,     /* addresses in src/dst[0..16) */
    MKD_PROXY_UNIX       /* Unix socket paths (not kept): as LOCAL */
};

typedef struct mkd_proxy_header {
    unsigned version; /* 1 or 2 */
    int family;       /* enum mkd_proxy_family */
    uint8_t src[16], dst[16];
    uint16_t src_port, dst_port;
    size_t len; /* DONE: the header's bytes; the connection's own follow */
} mkd_proxy_header;

/* Parse the header at the start of buf[0..len). MKD_PROXY_DONE fills *h;
 * MORE and BAD leave it zeroed. A buffer that cannot begin a header (its
 * first bytes match neither signature) is BAD at once, whatever its
 * length. */
int mkd_proxy_parse(const uint8_t *buf, size_t len, mkd_proxy_header *h);

/* 1 if buf[0..len) (len > 0) begins with, or is a prefix of, either
 * version's signature: what an untrusted peer must not send. */
int mkd_proxy_signature(const uint8_t *buf, size_t len);

/* --- trusted_proxies: a list of CIDR blocks ----------------------------- */

#define MKD_PROXY_CIDRS_MAX 64

typedef struct mkd_proxy_cidr {
    int family; /* MKD_PROXY_INET or MKD_PROXY_INET6 */
    uint8_t addr[16];
    unsigned bits;
} mkd_proxy_cidr;

typedef struct mkd_proxy_cidrs {
    mkd_proxy_cidr cidr[MKD_PROXY_CIDRS_MAX];
    size_t n;
} mkd_proxy_cidrs;

/* Parse "ADDR[/BITS], ..." (commas or blanks between; an address without
 * /BITS is one host; host bits under the mask must be zero). An empty text
 * is an empty list. 0, or -1 with a reason in err[0..errcap). */
int mkd_proxy_cidrs_parse(const char *text, mkd_proxy_cidrs *out, char *err,
                          size_t errcap);
/* 1 if the address (4 or 16 bytes by family) lies in one of the blocks.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, from a dual-stack socket)
 * is matched as the IPv4 address it carries. */
int mkd_proxy_cidrs_match(const mkd_proxy_cidrs *l, int family,
                          const uint8_t *addr);

#endif
