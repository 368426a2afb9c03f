/*
 * fuzz_proxy.c -- libFuzzer harness for the PROXY protocol header parser
 * and the trusted_proxies list parser (mkd/proxy): the first bytes a
 * trusted load balancer sends, and an operator's text.
 *
 * Beyond "no crash, no overread" (ASan/UBSan), it checks the parser's
 * contract: a header it takes is no longer than the input, within its
 * version's limits, and parses the same from its own bytes alone; every
 * shorter prefix of it asks for more; a refused or incomplete input
 * leaves the result zeroed; and what asks for more agrees with a
 * signature.
 */
#include <stdlib.h>
#include <string.h>

#include "mkd_proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_done(const uint8_t *data, const mkd_proxy_header *h)
{
    mkd_proxy_header again;

    if (h->len == 0 || (h->version != 1 && h->version != 2))
        abort();
    if (h->version == 1 && h->len > MKD_PROXY_V1_MAX)
        abort();
    if (h->version == 2 &&
        (h->len < MKD_PROXY_V2_HEAD || h->len > MKD_PROXY_V2_MAX))
        abort();
    if (mkd_proxy_parse(data, h->len, &again) != MKD_PROXY_DONE ||
        memcmp(&again, h, sizeof again) != 0)
        abort();
    /* Every prefix asks for more (bounded: the check is quadratic). */
    for (size_t i = 0; i < h->len && i < 300; i++)
        if (mkd_proxy_parse(data, i, &again) != MKD_PROXY_MORE)
            abort();
}

static void check_cidrs(const uint8_t *data, size_t size)
{
    static const uint8_t any[16];
    char text[256], err[128];
    mkd_proxy_cidrs l;
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;

    memcpy(text, data, n);
    text[n] = '\0';
    if (mkd_proxy_cidrs_parse(text, &l, err, sizeof err) != 0) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
        return;
    }
    for (size_t i = 0; i < l.n; i++)
        if (l.cidr[i].bits > (l.cidr[i].family == MKD_PROXY_INET ? 32 : 128))
            abort();
    (void)mkd_proxy_cidrs_match(&l, MKD_PROXY_INET6, any);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const mkd_proxy_header zero;
    mkd_proxy_header h;
    int r = mkd_proxy_parse(data, size, &h);

    if (r == MKD_PROXY_DONE) {
        if (h.len > size)
            abort();
        check_done(data, &h);
    } else {
        if (memcmp(&h, &zero, sizeof h) != 0)
            abort();
        if (r == MKD_PROXY_MORE && size > 0 && !mkd_proxy_signature(data, size))
            abort();
        if (r != MKD_PROXY_MORE && r != MKD_PROXY_BAD)
            abort();
    }
    check_cidrs(data, size);
    return 0;
}
