/*
 * cidr.c -- trusted_proxies: a list of CIDR blocks, and matching a peer's
 * address against it (mkd_proxy.h).
 */
#include "mkd_proxy.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* Do the first bits of a and b agree? */
static int prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, whole) != 0)
        return 0;
    return rest == 0 || ((a[whole] ^ b[whole]) & (0xFF00 >> rest) & 0xFF) == 0;
}

static int host_bits_clear(const mkd_proxy_cidr *c)
{
    for (unsigned i = c->bits; i < 128; i++)
        if (c->addr[i / 8] & (0x80 >> (i % 8)))
            return 0;
    return 1;
}

/* One "ADDR[/BITS]" of n bytes into c. */
static int parse_one(const char *s, size_t n, mkd_proxy_cidr *c, char *err,
                     size_t cap)
{
    char tmp[64];
    const char *slash;
    unsigned long bits;
    char *end;

    if (n >= sizeof tmp)
        return fail(err, cap, "\"%.*s...\" is too long", 20, s);
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    slash = strchr(tmp, '/');
    if (slash != NULL)
        tmp[slash - tmp] = '\0';
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, tmp, c->addr) == 1)
        c->family = MKD_PROXY_INET, c->bits = 32;
    else if (inet_pton(AF_INET6, tmp, c->addr) == 1)
        c->family = MKD_PROXY_INET6, c->bits = 128;
    else
        return fail(err, cap, "\"%.*s\" is not an IP address", (int)n, s);
    if (slash != NULL) {
        bits = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || bits > c->bits)
            return fail(err, cap, "\"%.*s\": bad prefix length", (int)n, s);
        c->bits = (unsigned)bits;
    }
    /* Host bits set under the mask are a typo more often than not. */
    if (!host_bits_clear(c))
        return fail(err, cap, "\"%.*s\": address bits set past /%u", (int)n, s,
                    c->bits);
    return 0;
}

int mkd_proxy_cidrs_parse(const char *text, mkd_proxy_cidrs *out, char *err,
                          size_t errcap)
{
    const char *p = text;

    memset(out, 0, sizeof *out);
    if (errcap > 0)
        err[0] = '\0';
    for (;;) {
        size_t n = 0;
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return 0;
        while (p[n] != '\0' && p[n] != ',' && p[n] != ' ' && p[n] != '\t')
            n++;
        if (out->n == MKD_PROXY_CIDRS_MAX)
            return fail(err, errcap, "more than %d blocks",
                        MKD_PROXY_CIDRS_MAX);
        if (parse_one(p, n, &out->cidr[out->n], err, errcap) != 0)
            return -1;
        out->n++;
        p += n;
    }
}

int mkd_proxy_cidrs_match(const mkd_proxy_cidrs *l, int family,
                          const uint8_t *addr)
{
    if (family == MKD_PROXY_INET6 && memcmp(addr, V4_MAPPED, 12) == 0) {
        family = MKD_PROXY_INET;
        addr += 12;
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->cidr[i].family == family &&
            prefix_eq(l->cidr[i].addr, addr, l->cidr[i].bits))
            return 1;
    return 0;
}
