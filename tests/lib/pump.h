/*
 * pump.h -- test plumbing for code over libmegaki's public API: a
 * deterministic environment, the test keys, and an in-memory pump that
 * carries bytes between a client and a server session in chunks of any
 * size (down to one byte at a time). Used by libmegaki's tests and the
 * fuzz harnesses.
 */
#ifndef MK_TEST_PUMP_H
#define MK_TEST_PUMP_H

#include <stddef.h>
#include <stdint.h>

#include "megaki.h"

/* Deterministic randomness: SHA-256(seed || counter) blocks; and a clock
 * the test moves by hand. Also counts random calls. */
typedef struct tu_env {
    mk_env env;
    uint8_t seed[32];
    uint64_t counter;
    uint64_t now_ms;
    uint8_t block[32];
    size_t block_used;
    int fail_random; /* make the next random call fail */
} tu_env;

void tu_env_init(tu_env *e, const char *seed_label);

/* Test keys from tests/vectors/keys/. */
mk_server_key *tu_server_key(const char *name);
mk_server_config *tu_server_config(tu_env *e, const char *key_name,
                                   int tickets);
mk_client_config *tu_client_config(tu_env *e, const char *pub_name);

/* A growable byte queue. */
typedef struct tu_buf {
    uint8_t *p;
    size_t len, cap;
} tu_buf;

void tu_buf_put(tu_buf *b, const uint8_t *p, size_t n);
void tu_buf_drop(tu_buf *b, size_t n);
void tu_buf_free(tu_buf *b);

/* One received message per request id, reassembled from DATA events. */
#define TU_MAX_MSGS 256
typedef struct tu_msg {
    uint32_t id;
    tu_buf data;
    int complete;
    int error; /* an error record came for it */
    unsigned ecode;
} tu_msg;

/* One side of the pump: its session, its receive buffer and framer, and
 * what it received. */
typedef struct tu_side {
    mk_session *s;
    tu_buf in; /* bytes not yet framed */
    tu_msg msgs[TU_MAX_MSGS];
    size_t nmsgs;
    int established;
    int closed;
    int err;      /* first error from mk_session_handle */
    size_t units; /* units handled */
} tu_side;

typedef struct tu_pair {
    tu_side c, srv;
    tu_buf c2s, s2c; /* bytes in flight */
    size_t chunk;    /* bytes delivered per step; 0 = everything */
} tu_pair;

void tu_pair_init(tu_pair *p, mk_session *client, mk_session *server);
void tu_pair_free(tu_pair *p); /* frees the sessions too */

/* Feed up to p->chunk bytes (all if 0) from wire into side, handling every
 * complete unit; output goes to reply. Returns the number of bytes moved. */
size_t tu_feed(tu_pair *p, tu_side *side, tu_buf *wire, tu_buf *reply);
/* Move bytes both ways until nothing moves. Returns 0, or the first error
 * either side reported. */
int tu_pump(tu_pair *p);
/* Client hello, then pump: full handshake or resumption. */
int tu_connect(tu_pair *p);

/* Seal a message from side into its outgoing wire. */
int tu_send(tu_pair *p, tu_side *side, uint32_t id, const uint8_t *msg,
            size_t len);
tu_msg *tu_find_msg(tu_side *side, uint32_t id);
void tu_clear_msgs(tu_side *side);

/* Fill with a recognisable pattern. */
void tu_pattern(uint8_t *p, size_t n, uint32_t seed);

#endif
