/*
 * internal.h -- the one internal header of libmegaki.
 *
 * Structures here are private: the public header only names them. Section
 * numbers (§n) refer to docs/PROTOCOL.md.
 */
#ifndef MK_INTERNAL_H
#define MK_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "crypto.h"
#include "megaki.h"

#define MK_MAGIC0 0x4D /* 'M' */
#define MK_MAGIC1 0x47 /* 'G' */
#define MK_MAGIC2 0x4B /* 'K' */

#define MK_RANDOM_LEN       32
#define MK_SECRET_LEN       32
#define MK_MAC_LEN          32
#define MK_IV_LEN           16
#define MK_MAX_KEYS         16
#define MK_TICKET_MAX       256 /* bytes of an opaque ticket on the wire */
#define MK_TICKET_NAME_LEN  16
#define MK_TICKET_STATE_LEN 62
#define MK_TICKET_LEN       (MK_TICKET_NAME_LEN + MK_IV_LEN + 64 + MK_MAC_LEN)
#define MK_CLOCK_SKEW_MS    (5u * 60u * 1000u)

/* The RSA-OAEP label of the key transport (§2.1): the 9 ASCII bytes
 * "megaki v2", without the string's terminating NUL. The client encrypts
 * and the server decrypts under it, so it is spelt in one place. */
#define MK_OAEP_LABEL     "megaki v2"
#define MK_OAEP_LABEL_LEN (sizeof MK_OAEP_LABEL - 1)

/* Unit header flags (§3). */
#define MK_FLAG_FINAL 0x01

/* Handshake modes (§4.1). */
#define MK_MODE_FULL   0
#define MK_MODE_RESUME 1

/* CLIENT_HELLO flags. */
#define MK_CH_EARLY 0x01

/* HELLO_RETRY reasons (§4.3). */
#define MK_RETRY_TICKET 1
#define MK_RETRY_KEY_ID 2

/* Bytes of AES-256-CBC ciphertext of n plaintext bytes: PKCS#7 always
 * adds 1..16. */
#define MK_CBC_LEN(n) (((n) / 16 + 1) * 16)

/* Record sizes (§5). */
#define MK_RECORD_FIXED    (4 + MK_IV_LEN + MK_MAC_LEN) /* id, IV, tag */
#define MK_RECORD_MIN_BODY (MK_RECORD_FIXED + 16)
#define MK_RECORD_MAX_BODY                                                     \
    (MK_RECORD_FIXED + MK_CBC_LEN(MK_RECORD_MAX_PLAINTEXT))
/* An ERROR record: code u16 and at most MK_ERROR_TEXT_MAX bytes of text. */
#define MK_ERROR_MAX_BODY (MK_RECORD_FIXED + MK_CBC_LEN(2 + MK_ERROR_TEXT_MAX))

/* Handshake body bounds (§3), from the layouts of §4: the smallest
 * CLIENT_HELLO that parses is a full one with a 1-byte key transport (a
 * resuming one is at least 113 bytes); the largest SERVER_HELLO carries
 * extras with a 256-byte ticket. */
#define MK_HELLO_PREFIX  (4 + 2 + MK_RANDOM_LEN + MKC_X25519_LEN)
#define MK_CH_MIN_BODY   (MK_HELLO_PREFIX + 8 + MK_KEY_ID_LEN + 2 + 1)
#define MK_EXTRAS_MAX_PT (4 + 2 + 2 + 4 + 2 + MK_TICKET_MAX)
#define MK_SH_MIN_BODY   (MK_HELLO_PREFIX + 2 + MK_IV_LEN + 16 + MK_MAC_LEN)
#define MK_SH_MAX_BODY                                                         \
    (MK_HELLO_PREFIX + 2 + MK_IV_LEN + MK_CBC_LEN(MK_EXTRAS_MAX_PT) +          \
     MK_MAC_LEN)

#define MK_FAIL_IF(cond, code)                                                 \
    do {                                                                       \
        if (cond) {                                                            \
            ret = (code);                                                      \
            goto out;                                                          \
        }                                                                      \
    } while (0)
#define MK_TRY(expr)                                                           \
    do {                                                                       \
        if ((ret = (expr)) != MK_OK)                                           \
            goto out;                                                          \
    } while (0)

/* ------------------------------------------------------------------ */
/* Keys and configurations                                              */

struct mk_server_key {
    mkc_rsa *rsa;
    uint8_t id[MK_KEY_ID_LEN];
};

/* Ticket keys as used: the name plus the two keys derived from the
 * secret (§7). Lives in mkc_secure_alloc() memory. */
typedef struct mk_tk {
    uint8_t name[MK_TICKET_NAME_LEN];
    uint8_t enc[MK_SECRET_LEN];
    uint8_t mac[MK_SECRET_LEN];
} mk_tk;

struct mk_server_config {
    atomic_int refs;
    const mk_env *env;
    mk_server_key *keys[MK_MAX_KEYS];
    size_t nkeys;
    mk_tk *tkeys; /* secure memory, ntkeys entries; [0] issues */
    size_t ntkeys;
    uint32_t max_message;
    uint32_t max_inflight;
    uint32_t ticket_lifetime;
    uint32_t session_max_age; /* seconds */
};

struct mk_client_config {
    atomic_int refs;
    const mk_env *env;
    mkc_rsa *pins[MK_MAX_KEYS];
    uint8_t pin_ids[MK_MAX_KEYS][MK_KEY_ID_LEN];
    size_t npins;
};

/* ------------------------------------------------------------------ */
/* Sessions                                                             */

/* Internal handshake states (§9). */
enum mk_hs_state {
    HS_CLIENT_START = 1, /* mk_client_hello() not yet called */
    HS_CLIENT_WAIT_SH,   /* CLIENT_HELLO sent */
    HS_SERVER_WAIT_CH,   /* waiting for the (first or retried) hello */
    HS_DONE              /* keys agreed: records only */
};

/* A request in flight (§5.4). */
enum mk_req_state {
    REQ_FREE = 0,
    REQ_RECEIVING, /* server: request records arriving */
    REQ_SENDING,   /* client: request records being sent */
    REQ_WAITING,   /* request complete; response not yet complete */
    REQ_ABORTED    /* answered with an error while still being sent */
};

typedef struct mk_req {
    uint32_t id;
    uint8_t state;
    uint32_t bytes; /* message bytes so far, in the direction being read */
} mk_req;

/* Per-direction record protection state: the direction's keys live only
 * inside its keyed contexts. */
typedef struct mk_dir {
    mkc_rec *rec;
    uint64_t seq;
} mk_dir;

struct mk_session {
    int is_server;
    int state;   /* enum mk_state */
    int hs;      /* enum mk_hs_state */
    int err;     /* first failure, sticky */
    int mode;    /* MK_MODE_* of the current hello */
    int retried; /* a HELLO_RETRY was sent (server) or received (client) */
    const mk_env *env;
    mk_server_config *scfg;
    mk_client_config *ccfg;
    mkc_hash *transcript;

    /* Handshake material, wiped once keys are agreed. */
    mkc_x25519_key *eph; /* client: ephemeral key until SERVER_HELLO */
    uint8_t early_secret[MK_SECRET_LEN];
    size_t pin_index; /* client: pinned key used for the full handshake */

    /* Client resumption state (imported blob), §10. */
    int have_resume;
    uint8_t resume_secret[MK_SECRET_LEN];
    uint8_t resume_key_id[MK_KEY_ID_LEN];
    uint8_t resume_ticket[MK_TICKET_MAX];
    size_t resume_ticket_len;

    /* Established session. */
    mk_dir in, out;
    uint8_t resumption_secret[MK_SECRET_LEN];
    uint8_t session_id[MK_SESSION_ID_LEN];
    uint8_t key_id[MK_KEY_ID_LEN];
    uint64_t auth_ms; /* server: the time of the session's full handshake */
    int resumed;
    uint32_t max_message;
    uint32_t max_inflight;
    uint32_t retry_after;
    int close_sent, close_received;

    /* Client: the ticket the server issued in this handshake. */
    uint8_t ticket[MK_TICKET_MAX];
    size_t ticket_len;
    uint32_t ticket_lifetime;
    uint64_t ticket_received_ms;

    mk_req *reqs; /* max_inflight entries, allocated when established */
    uint32_t nreqs;
};

/* session.c */
int mk__fail(mk_session *s, int err); /* returns the sticky error */
MK_MUST_CHECK int mk__random(const mk_session *s, uint8_t *out, size_t len);
MK_MUST_CHECK int mk__establish(mk_session *s);
/* 1 if `since` is more than the tolerated clock skew ahead of now, or at
 * least `seconds` lie between them: a ticket, session or blob of that
 * moment is no longer usable (§7, §10). */
int mk__stale(uint64_t now_ms, uint64_t since_ms, uint32_t seconds);

/* keysched.c (§6) */
MK_MUST_CHECK int mk__expand_label(const uint8_t secret[MK_SECRET_LEN],
                                   const char *label, const uint8_t *ctx,
                                   size_t ctx_len, uint8_t *out,
                                   size_t out_len);
MK_MUST_CHECK int mk__derive_secret(const uint8_t secret[MK_SECRET_LEN],
                                    const char *label, const uint8_t *msgs,
                                    size_t msgs_len,
                                    uint8_t out[MK_SECRET_LEN]);

typedef struct mk_hs_keys {
    uint8_t c2s_enc[32], c2s_mac[32], s2c_enc[32], s2c_mac[32];
    uint8_t finished[32];
    uint8_t session_id[MK_SESSION_ID_LEN];
} mk_hs_keys;

MK_MUST_CHECK int mk__early_secret(const uint8_t root[MK_SECRET_LEN],
                                   uint8_t early[MK_SECRET_LEN]);
MK_MUST_CHECK int mk__binder_key(const uint8_t early[MK_SECRET_LEN],
                                 uint8_t key[MK_SECRET_LEN]);
MK_MUST_CHECK int mk__hs_secret(const uint8_t early[MK_SECRET_LEN],
                                const uint8_t dh[MKC_X25519_LEN],
                                uint8_t hs[MK_SECRET_LEN]);
MK_MUST_CHECK int mk__extras_key(const uint8_t hs[MK_SECRET_LEN],
                                 const uint8_t ch_hash[MKC_SHA256_LEN],
                                 uint8_t key[MK_SECRET_LEN]);
MK_MUST_CHECK int mk__hs_keys(const uint8_t hs[MK_SECRET_LEN],
                              const uint8_t th[MKC_SHA256_LEN], mk_hs_keys *k);
MK_MUST_CHECK int mk__resumption_secret(const uint8_t hs[MK_SECRET_LEN],
                                        const uint8_t ch_hash[MKC_SHA256_LEN],
                                        uint8_t out[MK_SECRET_LEN]);
/* Derive and install the record keys and session id; hand back the
 * Finished key. (The resumption secret is derived on its own: the server
 * needs it before SERVER_HELLO exists, to seal the ticket.) */
MK_MUST_CHECK int mk__install_keys(mk_session *s,
                                   const uint8_t hs[MK_SECRET_LEN],
                                   const uint8_t th[MKC_SHA256_LEN],
                                   uint8_t finished_key[MK_SECRET_LEN]);
MK_MUST_CHECK int mk__finished(const uint8_t key[MK_SECRET_LEN],
                               const uint8_t th[MKC_SHA256_LEN],
                               uint8_t out[MK_MAC_LEN]);

/* record.c (§5) */
MK_MUST_CHECK int mk__record_seal(mk_session *s, uint8_t type, uint8_t flags,
                                  uint32_t request_id, const uint8_t *pt,
                                  size_t len, uint8_t *out, size_t cap,
                                  size_t *out_len);
MK_MUST_CHECK int mk__record_open(mk_session *s, const uint8_t *unit,
                                  size_t unit_len, uint8_t *out, size_t cap,
                                  size_t *pt_len, uint32_t *request_id);
MK_MUST_CHECK int mk__handle_record(mk_session *s, const uint8_t *unit,
                                    size_t unit_len, uint8_t *out, size_t cap,
                                    mk_event *ev);
size_t mk__record_wire_len(size_t pt_len);

/* ticket.c (§7) */
typedef struct mk_ticket_state {
    uint8_t key_id[MK_KEY_ID_LEN];
    uint64_t issued_ms;
    uint64_t auth_ms; /* the session's full handshake */
    uint32_t lifetime;
    uint8_t secret[MK_SECRET_LEN];
} mk_ticket_state;

MK_MUST_CHECK int mk__ticket_seal(const mk_server_config *cfg,
                                  const mk_ticket_state *st,
                                  const uint8_t iv[MK_IV_LEN], uint8_t *out,
                                  size_t cap, size_t *out_len);
/* MK_OK, or MK_ERR_BAD_MESSAGE for any reason the ticket is not usable
 * (unknown ticket key, bad MAC, malformed or of another format, expired,
 * the session past its maximum age, a server key no longer held); the
 * reason is not exposed to the peer, which just gets HELLO_RETRY. */
MK_MUST_CHECK int mk__ticket_open(const mk_server_config *cfg,
                                  const uint8_t *ticket, size_t len,
                                  uint64_t now_ms, mk_ticket_state *st);

/* hs_client.c / hs_server.c (§4) */
MK_MUST_CHECK int mk__client_write_hello(mk_session *s, uint8_t *out,
                                         size_t cap, size_t *out_len);
MK_MUST_CHECK int mk__client_on_server_hello(mk_session *s, const uint8_t *unit,
                                             size_t len, uint8_t *out,
                                             size_t cap, mk_event *ev);
MK_MUST_CHECK int mk__client_on_retry(mk_session *s, const uint8_t *unit,
                                      size_t len, uint8_t *out, size_t cap,
                                      mk_event *ev);
MK_MUST_CHECK int mk__client_on_alert(mk_session *s, const uint8_t *unit,
                                      size_t len, uint8_t *out, size_t cap,
                                      mk_event *ev);
MK_MUST_CHECK int mk__server_on_client_hello(mk_session *s, const uint8_t *unit,
                                             size_t len, uint8_t *out,
                                             size_t cap, mk_event *ev);

/* Write the 4-byte magic/version prefix that every handshake body starts
 * with, and check it: MK_ERR_BAD_MAGIC or MK_ERR_BAD_VERSION. */
void mk__wr_magic(mk_wr *w);
MK_MUST_CHECK int mk__rd_magic(mk_rd *r);

/* keys.c */
MK_MUST_CHECK int mk__key_id_of(const mkc_rsa *k, uint8_t id[MK_KEY_ID_LEN]);
/* The server key with this id, or NULL. Key ids are public: an ordinary
 * comparison is fine. */
const mk_server_key *mk__find_key(const mk_server_config *c,
                                  const uint8_t id[MK_KEY_ID_LEN]);

#endif /* MK_INTERNAL_H */
