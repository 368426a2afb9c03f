/*
 * msg.h -- handshake messages as structures, and their wire codecs
 * (docs/PROTOCOL.md §4). msg.c both writes and parses each message, so the
 * two can never drift apart; hs_client.c and hs_server.c hold the logic.
 *
 * Parsed structures borrow pointers into the unit they were parsed from.
 */
#ifndef MK_MSG_H
#define MK_MSG_H

#include "internal.h"

typedef struct mk_ch {
    uint8_t mode;  /* MK_MODE_FULL / MK_MODE_RESUME */
    uint8_t flags; /* MK_CH_EARLY */
    uint8_t random[MK_RANDOM_LEN];
    uint8_t share[MKC_X25519_LEN];
    uint64_t time_ms;
    uint8_t key_id[MK_KEY_ID_LEN]; /* full */
    const uint8_t *kem;            /* full: RSA-OAEP ciphertext */
    size_t kem_len;
    const uint8_t *ticket; /* resume */
    size_t ticket_len;
    const uint8_t *early; /* reserved early record (§4.1.1) */
    size_t early_len;
    const uint8_t *binder; /* resume: 32 bytes at the end */
} mk_ch;

typedef struct mk_sh {
    uint8_t mode;
    uint8_t flags;
    uint8_t random[MK_RANDOM_LEN];
    uint8_t share[MKC_X25519_LEN];
    const uint8_t *extras; /* IV || ciphertext */
    size_t extras_len;
    const uint8_t *finished;
} mk_sh;

typedef struct mk_extras {
    uint32_t max_message;
    uint32_t max_inflight;
    uint32_t ticket_lifetime;
    const uint8_t *ticket;
    size_t ticket_len;
} mk_extras;

typedef struct mk_retry {
    uint8_t reason;
    uint8_t nkeys;
    uint8_t key_ids[MK_MAX_KEYS][MK_KEY_ID_LEN];
} mk_retry;

typedef struct mk_alert_msg {
    uint8_t code;
    uint32_t arg;
} mk_alert_msg;

/* CLIENT_HELLO: the unit is written whole; for a resumption the binder is
 * left as 32 zero bytes at the end for the caller to fill (it covers the
 * bytes before it, header included). */
int mk__ch_write(const mk_ch *ch, uint8_t *out, size_t cap, size_t *out_len);
int mk__ch_parse(const uint8_t *unit, size_t len, mk_ch *ch);

/* SERVER_HELLO: written with a zero Finished for the caller to fill. */
int mk__sh_write(const mk_sh *sh, uint8_t *out, size_t cap, size_t *out_len);
int mk__sh_parse(const uint8_t *unit, size_t len, mk_sh *sh);

/* Plaintext of the encrypted extras. */
int mk__extras_write(const mk_extras *x, uint8_t *out, size_t cap,
                     size_t *out_len);
int mk__extras_parse(const uint8_t *pt, size_t len, mk_extras *x);

int mk__retry_write(const mk_retry *r, uint8_t *out, size_t cap,
                    size_t *out_len);
int mk__retry_parse(const uint8_t *unit, size_t len, mk_retry *r);

int mk__alert_parse(const uint8_t *unit, size_t len, mk_alert_msg *a);

#endif
