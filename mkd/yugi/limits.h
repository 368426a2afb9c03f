/*
 * limits.h -- per-source-address state: token buckets for full handshakes
 * (each costs the server one RSA private operation) and for resumptions
 * (no RSA, but two X25519 operations: cheaper, so a higher rate), and the
 * counts of connections from the address, all of them and those that have
 * not finished their handshake.
 *
 * IPv4 addresses are keyed whole; IPv6 addresses by their /64 prefix,
 * because one IPv6 host usually owns a whole /64 and could otherwise mint a
 * fresh bucket per connection. Entries nobody references are swept once
 * their bucket has refilled, so the table stays as small as the set of
 * recently active addresses.
 */
#ifndef YUGI_LIMITS_H
#define YUGI_LIMITS_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address's token buckets. */
enum yugi_bucket_kind {
    YUGI_BUCKET_FULL = 0, /* full handshakes */
    YUGI_BUCKET_RESUME,   /* resumptions */
    YUGI_BUCKETS
};

typedef struct yugi_bucket {
    double tokens;
    uint64_t stamp_ms; /* last refill */
} yugi_bucket;

typedef struct yugi_addr {
    struct yugi_addr *next;
    uint8_t key[16];
    uint32_t refs;    /* connections from here, refused ones included */
    uint32_t conns;   /* of which counted: handshaking or established */
    uint32_t pending; /* of which not yet established */
    yugi_bucket bucket[YUGI_BUCKETS];
} yugi_addr;

typedef struct yugi_addrs {
    yugi_addr **buckets;
    size_t nbuckets;
    size_t count;
    double rate[YUGI_BUCKETS]; /* tokens per second; 0 = no limit */
    double burst[YUGI_BUCKETS];
    uint32_t seed;
} yugi_addrs;

/* An empty table, every bucket without a limit. MKD_OK or
 * MKD_ERR_NOMEM. */
MKD_MUST_CHECK int yugi__addrs_init(yugi_addrs *t);
/* The rate (tokens per second, 0: no limit) and size of one kind of
 * bucket, for every address. */
void yugi__addrs_set(yugi_addrs *t, int kind, uint32_t rate, uint32_t burst);
void yugi__addrs_free(yugi_addrs *t);
/* Find or create the entry for sa and take a reference; NULL if out of
 * memory. */
yugi_addr *yugi__addrs_get(yugi_addrs *t, const struct sockaddr *sa,
                           uint64_t now_ms);
void yugi__addrs_put(yugi_addrs *t, yugi_addr *a);
/* Take one token from a's bucket of that kind. Returns 0, or the
 * milliseconds until one is available. */
uint32_t yugi__addr_take(yugi_addrs *t, yugi_addr *a, int kind,
                         uint64_t now_ms);
/* Drop unreferenced entries whose buckets are all full again. */
void yugi__addrs_sweep(yugi_addrs *t, uint64_t now_ms);

#endif
