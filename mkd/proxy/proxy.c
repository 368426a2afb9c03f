/*
 * proxy.c -- the PROXY protocol header parser (mkd_proxy.h), after
 * HAProxy's specification of the protocol (versions 1 and 2).
 *
 * Each version is recognised by its signature, then read through checks
 * on every length before any byte past it is touched. Strictness is on
 * purpose: the header comes from a proxy the operator trusts, which
 * writes it exactly; anything loose is a misconfiguration or an attack,
 * and the connection is refused.
 */
#include "mkd_proxy.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t V1_SIG[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
static const uint8_t V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* v2's fourteenth byte: address family (high nibble), transport (low). */
#define V2_VERSION     0x20
#define V2_CMD_LOCAL   0x00
#define V2_CMD_PROXY   0x01
#define V2_UNSPEC      0x00
#define V2_TCP4        0x11
#define V2_TCP6        0x21
#define V2_UNIX_STREAM 0x31
#define V2_UNIX_LEN    216 /* two 108-byte paths */
#define V2_TLV_HEAD    3   /* type, length (16 bits) */

/* Does buf[0..len) agree with sig over the bytes both have? */
static int agrees(const uint8_t *buf, size_t len, const uint8_t *sig,
                  size_t siglen)
{
    return memcmp(buf, sig, len < siglen ? len : siglen) == 0;
}

int mkd_proxy_signature(const uint8_t *buf, size_t len)
{
    return len > 0 && (agrees(buf, len, V1_SIG, sizeof V1_SIG) ||
                       agrees(buf, len, V2_SIG, sizeof V2_SIG));
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* --- version 1: one text line ------------------------------------------ */

/* A port: 1 to 5 digits, no leading zero but "0" itself, at most 65535. */
static int v1_port(const char *s, size_t n, uint16_t *out)
{
    unsigned long v = 0;

    if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* An address of af: inet_pton on a copy, as the line is not terminated. */
static int v1_addr(const char *s, size_t n, int af, uint8_t *out)
{
    char tmp[46];

    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(af, tmp, out) == 1 ? 0 : -1;
}

/* Cut line[0..end) at single spaces into exactly nf non-empty fields. */
static int v1_fields(const char *line, size_t end, const char **f, size_t *n,
                     int nf)
{
    size_t a = 0;

    for (int i = 0; i < nf; i++) {
        size_t b = a;
        while (b < end && line[b] != ' ')
            b++;
        if (b == a || (i < nf - 1) != (b < end))
            return -1; /* empty, too few or too many */
        f[i] = line + a;
        n[i] = b - a;
        a = b + 1;
    }
    return 0;
}

/* "TCP4 src dst sport dport" (or TCP6) in line[0..end), past "PROXY ". */
static int v1_inet(const char *line, size_t end, mkd_proxy_header *h)
{
    const char *f[5];
    size_t n[5];
    int af;

    if (v1_fields(line, end, f, n, 5) != 0 || n[0] != 4)
        return -1;
    if (memcmp(f[0], "TCP4", 4) == 0) {
        af = AF_INET;
        h->family = MKD_PROXY_INET;
    } else if (memcmp(f[0], "TCP6", 4) == 0) {
        af = AF_INET6;
        h->family = MKD_PROXY_INET6;
    } else {
        return -1;
    }
    if (v1_addr(f[1], n[1], af, h->src) != 0 ||
        v1_addr(f[2], n[2], af, h->dst) != 0 ||
        v1_port(f[3], n[3], &h->src_port) != 0 ||
        v1_port(f[4], n[4], &h->dst_port) != 0)
        return -1;
    return 0;
}

static int v1_parse(const uint8_t *buf, size_t len, mkd_proxy_header *h)
{
    size_t lim = len < MKD_PROXY_V1_MAX ? len : MKD_PROXY_V1_MAX, cr;
    const char *rest = (const char *)buf + sizeof V1_SIG;

    for (cr = sizeof V1_SIG; cr < lim && buf[cr] != '\r'; cr++)
        if (buf[cr] < 0x20 || buf[cr] > 0x7e)
            return MKD_PROXY_BAD; /* a line of printable ASCII */
    if (cr + 1 >= lim)
        return len >= MKD_PROXY_V1_MAX ? MKD_PROXY_BAD : MKD_PROXY_MORE;
    if (buf[cr + 1] != '\n')
        return MKD_PROXY_BAD;
    h->version = 1;
    h->len = cr + 2;
    /* UNKNOWN: the rest of the line is to be ignored. */
    if (cr - sizeof V1_SIG >= 7 && memcmp(rest, "UNKNOWN", 7) == 0 &&
        (cr - sizeof V1_SIG == 7 || rest[7] == ' ')) {
        h->family = MKD_PROXY_LOCAL;
        return MKD_PROXY_DONE;
    }
    if (v1_inet(rest, cr - sizeof V1_SIG, h) != 0)
        return MKD_PROXY_BAD;
    return MKD_PROXY_DONE;
}

/* --- version 2: binary ------------------------------------------------- */

/* The TLVs in p[0..n) tile it exactly; their contents are not used. */
static int v2_tlvs(const uint8_t *p, size_t n)
{
    size_t pos = 0;

    while (pos < n) {
        if (n - pos < V2_TLV_HEAD || n - pos - V2_TLV_HEAD < be16(p + pos + 1))
            return -1;
        pos += V2_TLV_HEAD + be16(p + pos + 1);
    }
    return 0;
}

/* The address block of a PROXY command: its size for the family byte fam,
 * and the addresses copied into h. -1: a family MKD does not take. */
static int v2_addrs(uint8_t fam, const uint8_t *p, size_t n,
                    mkd_proxy_header *h, size_t *used)
{
    size_t alen;

    switch (fam) {
    case V2_UNSPEC:
        h->family = MKD_PROXY_LOCAL;
        *used = n; /* the receiver ignores what follows */
        return 0;
    case V2_TCP4:
        h->family = MKD_PROXY_INET;
        alen = 4;
        break;
    case V2_TCP6:
        h->family = MKD_PROXY_INET6;
        alen = 16;
        break;
    case V2_UNIX_STREAM:
        if (n < V2_UNIX_LEN)
            return -1;
        h->family = MKD_PROXY_UNIX;
        *used = V2_UNIX_LEN;
        return 0;
    default:
        return -1; /* datagrams, unknown families */
    }
    if (n < 2 * alen + 4)
        return -1;
    memcpy(h->src, p, alen);
    memcpy(h->dst, p + alen, alen);
    h->src_port = be16(p + 2 * alen);
    h->dst_port = be16(p + 2 * alen + 2);
    *used = 2 * alen + 4;
    return 0;
}

static int v2_parse(const uint8_t *buf, size_t len, mkd_proxy_header *h)
{
    size_t body, used = 0;
    uint8_t cmd;

    if (len > 12 && (buf[12] & 0xF0) != V2_VERSION)
        return MKD_PROXY_BAD;
    if (len > 12 && (buf[12] & 0x0F) > V2_CMD_PROXY)
        return MKD_PROXY_BAD;
    if (len < MKD_PROXY_V2_HEAD)
        return MKD_PROXY_MORE;
    body = be16(buf + 14);
    if (len - MKD_PROXY_V2_HEAD < body)
        return MKD_PROXY_MORE;
    cmd = buf[12] & 0x0F;
    h->version = 2;
    h->len = MKD_PROXY_V2_HEAD + body;
    if (cmd == V2_CMD_LOCAL) {
        /* The proxy's own connection (a health check): the family and
         * the block are discarded, as the specification says. */
        h->family = MKD_PROXY_LOCAL;
        return MKD_PROXY_DONE;
    }
    if (v2_addrs(buf[13], buf + MKD_PROXY_V2_HEAD, body, h, &used) != 0 ||
        v2_tlvs(buf + MKD_PROXY_V2_HEAD + used, body - used) != 0)
        return MKD_PROXY_BAD;
    return MKD_PROXY_DONE;
}

int mkd_proxy_parse(const uint8_t *buf, size_t len, mkd_proxy_header *h)
{
    int r = MKD_PROXY_BAD;

    memset(h, 0, sizeof *h);
    if (len == 0)
        return MKD_PROXY_MORE;
    if (agrees(buf, len, V1_SIG, sizeof V1_SIG))
        r = len < sizeof V1_SIG ? MKD_PROXY_MORE : v1_parse(buf, len, h);
    else if (agrees(buf, len, V2_SIG, sizeof V2_SIG))
        r = len < sizeof V2_SIG ? MKD_PROXY_MORE : v2_parse(buf, len, h);
    if (r != MKD_PROXY_DONE)
        memset(h, 0, sizeof *h);
    return r;
}
