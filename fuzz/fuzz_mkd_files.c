/*
 * fuzz_mkd_files.c -- the parsers of MKD's own files: the configuration
 * (mkd_config_parse, then mkd_config_finish on whatever parsed) and the
 * ticket-key file (keys_ticket_parse). The first input byte picks the
 * parser, so one corpus covers both.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keys.h"
#include "mkd_config.h"
#include "mkd_log.h"
#include "mkd_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mkd_diag d;
    int r = MKD_OK;

    if (size == 0)
        return 0;
    /* Parsers log nothing on bad input, but keep a fuzz run quiet anyway. */
    mkd_log_set_level(MKD_LOG_ERROR);
    if (data[0] & 1) {
        mkd_config c;
        mkd_config_defaults(&c);
        if (mkd_config_parse(&c, (const char *)data + 1, size - 1, "fuzz",
                             &d) == MKD_OK)
            r = mkd_config_finish(&c, &d);
    } else {
        mk_ticket_key keys[MK_TICKET_KEYS_MAX];
        size_t n = 0;
        r = keys_ticket_parse(data + 1, size - 1, "fuzz", keys,
                              MK_TICKET_KEYS_MAX, &n, &d);
        /* A parse either fails or yields at least one key. */
        if (r == MKD_OK && n == 0)
            __builtin_trap();
        mkd_wipe(keys, sizeof keys);
    }
    (void)r; /* bad input is the point: any result is fine */
    return 0;
}
