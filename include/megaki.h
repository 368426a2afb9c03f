/*
 * megaki.h -- libmegaki, the Megaki protocol v2 core.
 *
 * libmegaki is sans-I/O: it never opens a socket, reads a clock, starts a
 * thread or logs. The caller frames protocol units off its transport with
 * mk_frame_check(), hands each complete unit to mk_session_handle(), and
 * writes whatever bytes the core produced. Randomness and time come from an
 * mk_env the caller supplies (mk_env_system() is the production one).
 *
 * The wire format, key schedule and state machines are specified in
 * docs/PROTOCOL.md; section numbers below (§n) refer to it.
 *
 * Conventions
 *   - Every function that can fail returns an int from the mk_err table
 *     (megaki_errors.def): MK_OK (0) on success, a positive code otherwise.
 *     mk_err_name() and mk_strerror() turn a code into text.
 *   - Pointers are borrowed for the duration of the call unless a comment
 *     says otherwise. Output buffers belong to the caller.
 *   - A session that has failed stays failed and keeps reporting its first
 *     error (mk_session_error()).
 *   - Configurations are immutable once a session uses them and may be
 *     shared by sessions on different threads; they are reference counted.
 *     A session must be used by one thread at a time.
 */
#ifndef MEGAKI_H
#define MEGAKI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MK_BUILDING_LIBRARY) && defined(__GNUC__)
#define MK_API __attribute__((visibility("default")))
#else
#define MK_API
#endif

#if defined(__GNUC__)
#define MK_MUST_CHECK __attribute__((warn_unused_result))
#else
#define MK_MUST_CHECK
#endif

/* ------------------------------------------------------------------ */
/* Errors                                                               */

typedef enum mk_err {
#define X(name, value, cls, msg) name = value,
#include "megaki_errors.def"
#undef X
} mk_err;

/* Short name of a code ("MK_ERR_BAD_RECORD_MAC"); "MK_ERR_UNKNOWN" if none. */
MK_API const char *mk_err_name(int err);
/* Human-readable message; never NULL. */
MK_API const char *mk_strerror(int err);
/* Class of a code: "NONE", "PROTO", "AUTH", "PEER", "CRYPTO", "RESOURCE",
 * "USAGE", "IO"; "UNKNOWN" for a code not in the table. */
MK_API const char *mk_err_class(int err);

/* ------------------------------------------------------------------ */
/* Constants (§3, §8.3)                                                */

#define MK_PROTOCOL_VERSION     2
#define MK_UNIT_HEADER_LEN      4 /* type, flags, length u16 */
#define MK_KEY_ID_LEN           8 /* SHA-256(SPKI DER)[0..8] */
#define MK_SESSION_ID_LEN       16
#define MK_RECORD_MAX_PLAINTEXT 16384 /* plaintext bytes per record */
#define MK_RECORD_OVERHEAD_MAX  84    /* request id + IV + max padding + tag */
/* Largest unit body any peer may declare (a CLIENT_HELLO with a 4096-bit
 * key transport, a ticket and a maximal early record). */
#define MK_UNIT_MAX_BODY        17408
#define MK_UNIT_MAX             (MK_UNIT_HEADER_LEN + MK_UNIT_MAX_BODY)
/* An output buffer of this size is always enough for mk_session_handle()
 * and mk_client_hello(). */
#define MK_HANDLE_OUT_LEN       MK_UNIT_MAX

#define MK_MESSAGE_MAX_DEFAULT     (1u << 20)   /* 1 MiB */
#define MK_MESSAGE_MAX_LIMIT       (256u << 20) /* largest configurable */
#define MK_INFLIGHT_DEFAULT        32
#define MK_INFLIGHT_LIMIT          1024
#define MK_TICKET_LIFETIME_DEFAULT (24u * 3600u) /* seconds */
#define MK_TICKET_LIFETIME_LIMIT   (7u * 24u * 3600u)
/* A session's whole life, from its full handshake over every resumption
 * (§7): seconds. */
#define MK_SESSION_MAX_AGE_DEFAULT (7u * 24u * 3600u)
#define MK_SESSION_MAX_AGE_MIN     60u
#define MK_SESSION_MAX_AGE_LIMIT   (30u * 24u * 3600u)
#define MK_ERROR_TEXT_MAX          1024 /* bytes of text in an error record */
#define MK_SESSION_BLOB_MAX        512

/* Unit types (§3). */
enum mk_unit_type {
    MK_UNIT_CLIENT_HELLO = 0x01,
    MK_UNIT_SERVER_HELLO = 0x02,
    MK_UNIT_HELLO_RETRY = 0x03,
    MK_UNIT_ALERT = 0x15,
    MK_UNIT_DATA = 0x17,
    MK_UNIT_ERROR = 0x18,
    MK_UNIT_CLOSE = 0x19
};

/* Plaintext alert codes, sent before keys exist (§8.1). */
enum mk_alert {
    MK_ALERT_BAD_MESSAGE = 1,
    MK_ALERT_UNSUPPORTED_VERSION = 2,
    MK_ALERT_RETRY_LATER = 3, /* arg: suggested wait in ms */
    MK_ALERT_HANDSHAKE_FAILED = 4
};

/* Error record codes, authenticated, after the handshake (§8.2). */
enum mk_error_code {
    MK_ECODE_APPLICATION = 1, /* the application failed this request */
    MK_ECODE_TIMEOUT = 2,     /* the request took too long */
    MK_ECODE_OVERLOADED = 3,  /* no capacity; retry later */
    MK_ECODE_TOO_LARGE = 4,   /* message over the announced maximum */
    MK_ECODE_INTERNAL = 5,    /* the server failed */
    MK_ECODE_SHUTDOWN = 6     /* the server is going away */
};
MK_API const char *mk_error_code_name(unsigned code);

/* ------------------------------------------------------------------ */
/* Environment: randomness and time, injected (§2)                     */

typedef struct mk_env {
    /* Fill out[0..len) with cryptographically secure random bytes.
     * Return 0 on success; anything else aborts the operation. */
    int (*random)(void *ctx, uint8_t *out, size_t len);
    /* Wall-clock time in milliseconds since the Unix epoch. */
    uint64_t (*now_ms)(void *ctx);
    void *ctx;
} mk_env;

/* RAND_bytes and clock_gettime(CLOCK_REALTIME). Static; never freed. */
MK_API const mk_env *mk_env_system(void);

/* ------------------------------------------------------------------ */
/* Framing (§3)                                                         */

/*
 * Look at the start of a byte stream and say whether a whole unit is there.
 *   MK_OK         a complete unit of *unit_len bytes starts at buf;
 *   MK_WANT_READ  more bytes are needed; *unit_len is the unit's full length
 *                 once the header is in (so a caller can size its buffer),
 *                 or MK_UNIT_HEADER_LEN before that;
 *   MK_ERR_BAD_UNIT_TYPE / MK_ERR_BAD_LENGTH  the header is invalid: close.
 * The declared length is checked against the type's bounds before anything
 * else, so a caller never grows a buffer for an impossible unit.
 */
MK_API MK_MUST_CHECK int mk_frame_check(const uint8_t *buf, size_t len,
                                        size_t *unit_len);

/* 1 if unit is a well-formed CLIENT_HELLO asking to resume, else 0. A
 * server uses it to charge only full handshakes (the RSA operation) to its
 * rate limits before handing the hello to a session; anything that does
 * not parse counts as full, so it cannot dodge the limit. */
MK_API int mk_client_hello_resumes(const uint8_t *unit, size_t len);

/* ------------------------------------------------------------------ */
/* Keys                                                                 */

typedef struct mk_server_key mk_server_key;

/* Load an unencrypted RSA private key (PKCS#8 or PKCS#1 PEM) of 2048, 3072
 * or 4096 bits. The caller should wipe its copy of the PEM afterwards. */
MK_API MK_MUST_CHECK int mk_server_key_load_pem(mk_server_key **out,
                                                const uint8_t *pem, size_t len);
/* Generate a fresh RSA key (bits: 2048, 3072 or 4096; e = 65537). */
MK_API MK_MUST_CHECK int mk_server_key_generate(mk_server_key **out,
                                                unsigned bits);
/* Write the private key as PKCS#8 PEM. Secret: wipe the buffer after use. */
MK_API MK_MUST_CHECK int mk_server_key_private_pem(const mk_server_key *key,
                                                   uint8_t *out, size_t cap,
                                                   size_t *out_len);
/* Write the public key as DER SubjectPublicKeyInfo (what clients pin). */
MK_API MK_MUST_CHECK int mk_server_key_public_der(const mk_server_key *key,
                                                  uint8_t *out, size_t cap,
                                                  size_t *out_len);
MK_API void mk_server_key_id(const mk_server_key *key,
                             uint8_t id[MK_KEY_ID_LEN]);
MK_API unsigned mk_server_key_bits(const mk_server_key *key);
MK_API void mk_server_key_free(mk_server_key *key);

/* Key id of a public key given as PEM or DER SubjectPublicKeyInfo. */
MK_API MK_MUST_CHECK int mk_public_key_id(const uint8_t *key, size_t len,
                                          uint8_t id[MK_KEY_ID_LEN]);

/* ------------------------------------------------------------------ */
/* Server configuration                                                 */

/* A session-ticket key (§7). keys[0] of a set issues tickets; all of them
 * accept. The secret is copied into locked memory and wiped on free. */
typedef struct mk_ticket_key {
    uint8_t name[16];
    uint8_t secret[32];
} mk_ticket_key;
#define MK_TICKET_KEYS_MAX 16

typedef struct mk_server_config mk_server_config;

/* New configuration with default limits and no keys. env is borrowed and
 * must outlive the configuration (mk_env_system() always does). */
MK_API MK_MUST_CHECK int mk_server_config_new(mk_server_config **out,
                                              const mk_env *env);
/* Add a server key; the configuration takes ownership of key (also on
 * failure). At most 16 keys; key ids must differ. */
MK_API MK_MUST_CHECK int mk_server_config_add_key(mk_server_config *cfg,
                                                  mk_server_key *key);
/* Replace the ticket keys. n == 0 disables resumption. keys are copied. */
MK_API MK_MUST_CHECK int
mk_server_config_set_ticket_keys(mk_server_config *cfg,
                                 const mk_ticket_key *keys, size_t n);
/* Limits announced in SERVER_HELLO. max_message in bytes (1 .. 256 MiB),
 * max_inflight (1 .. 1024), ticket_lifetime in seconds (60 .. 7 days; a
 * shorter lifetime applies to tickets already issued, §7). */
MK_API MK_MUST_CHECK int mk_server_config_set_limits(mk_server_config *cfg,
                                                     uint32_t max_message,
                                                     uint32_t max_inflight,
                                                     uint32_t ticket_lifetime);
/* The longest a session lives, counted from the full handshake that
 * started it: a resumption later than that falls back to a full handshake
 * however often the session was resumed meanwhile (§7). Seconds, 60 .. 30
 * days; default 7 days. It applies to tickets already issued, as does a
 * shorter ticket_lifetime. */
MK_API MK_MUST_CHECK int
mk_server_config_set_session_max_age(mk_server_config *cfg, uint32_t seconds);
MK_API mk_server_config *mk_server_config_ref(mk_server_config *cfg);
MK_API void mk_server_config_unref(mk_server_config *cfg);

/* ------------------------------------------------------------------ */
/* Client configuration: the pinned server keys                        */

typedef struct mk_client_config mk_client_config;

MK_API MK_MUST_CHECK int mk_client_config_new(mk_client_config **out,
                                              const mk_env *env);
/* Pin a server public key, PEM or DER SubjectPublicKeyInfo, RSA 2048, 3072
 * or 4096. The first pinned key is tried first; at most 16. */
MK_API MK_MUST_CHECK int mk_client_config_pin(mk_client_config *cfg,
                                              const uint8_t *key, size_t len);
MK_API size_t mk_client_config_pin_count(const mk_client_config *cfg);
MK_API mk_client_config *mk_client_config_ref(mk_client_config *cfg);
MK_API void mk_client_config_unref(mk_client_config *cfg);

/* ------------------------------------------------------------------ */
/* Sessions                                                             */

typedef struct mk_session mk_session;

enum mk_state {
    MK_STATE_HANDSHAKE = 1,   /* keys not yet agreed */
    MK_STATE_ESTABLISHED = 2, /* records may flow */
    MK_STATE_CLOSED = 3,      /* close sent and/or received, no error */
    MK_STATE_FAILED = 4       /* see mk_session_error() */
};

enum mk_event_type {
    MK_EV_NONE = 0,        /* unit consumed, nothing to report */
    MK_EV_SEND = 1,        /* out[0..len) holds wire bytes to write */
    MK_EV_ESTABLISHED = 2, /* handshake done (client: SERVER_HELLO verified;
                               server: SERVER_HELLO written to out, send it) */
    MK_EV_DATA = 3,        /* out[0..len) is plaintext of request_id */
    MK_EV_ERROR = 4,       /* error record: code, text in out[0..len) */
    MK_EV_CLOSE = 5        /* peer closed cleanly */
};

typedef struct mk_event {
    int type;            /* enum mk_event_type */
    uint32_t request_id; /* DATA, ERROR */
    int final;           /* DATA: last record of the message */
    unsigned error_code; /* ERROR: enum mk_error_code */
    size_t len;          /* bytes written to out */
} mk_event;

/* A server session: expects a CLIENT_HELLO. cfg is referenced. */
MK_API MK_MUST_CHECK int mk_session_new_server(mk_session **out,
                                               mk_server_config *cfg);
/* A client session. If blob (from mk_session_export()) is given and still
 * valid for a pinned key, the client resumes; an unusable blob is ignored
 * and a full handshake is done. cfg is referenced; blob is copied. */
MK_API MK_MUST_CHECK int mk_session_new_client(mk_session **out,
                                               mk_client_config *cfg,
                                               const uint8_t *blob,
                                               size_t blob_len);
/* Wipe and free. NULL is fine. */
MK_API void mk_session_free(mk_session *s);

/* Client: write the CLIENT_HELLO (out needs MK_HANDLE_OUT_LEN). Once. */
MK_API MK_MUST_CHECK int mk_client_hello(mk_session *s, uint8_t *out,
                                         size_t cap, size_t *out_len);

/*
 * Process one complete unit (as delimited by mk_frame_check()). out must
 * hold MK_HANDLE_OUT_LEN bytes; ev says what happened and what is in out.
 *
 * On an error return the session has failed; if ev->type == MK_EV_SEND the
 * caller should write out[0..ev->len) (a plaintext alert) before closing.
 * A failed MAC never produces output: the connection just ends.
 */
MK_API MK_MUST_CHECK int mk_session_handle(mk_session *s, const uint8_t *unit,
                                           size_t unit_len, uint8_t *out,
                                           size_t cap, mk_event *ev);

/* Wire length of a message of msg_len bytes sealed by mk_seal_message(). */
MK_API size_t mk_message_wire_len(size_t msg_len);

/*
 * Seal a whole message (a request on the client, a response on the server)
 * for request_id into out, split into records of at most 16 KiB plaintext,
 * the last flagged final. cap must be >= mk_message_wire_len(msg_len).
 * Client: request_id must be nonzero and not in flight, and the message no
 * larger than the server's announced maximum. Server: request_id must be a
 * request fully received and not yet answered.
 */
MK_API MK_MUST_CHECK int mk_seal_message(mk_session *s, uint32_t request_id,
                                         const uint8_t *msg, size_t msg_len,
                                         uint8_t *out, size_t cap,
                                         size_t *out_len);
/* Seal one DATA record of at most MK_RECORD_MAX_PLAINTEXT bytes, for
 * streaming a message piece by piece. Only a final record may be empty
 * (§5.4); an empty non-final one is MK_ERR_USAGE. */
MK_API MK_MUST_CHECK int mk_seal_record(mk_session *s, uint32_t request_id,
                                        int final, const uint8_t *pt,
                                        size_t len, uint8_t *out, size_t cap,
                                        size_t *out_len);
/* Seal an error record (server: for a request in flight, or 0 for the
 * connection). text may be NULL; at most MK_ERROR_TEXT_MAX bytes. The text
 * must be UTF-8 on the wire (§5.5): it is sent up to its first byte that
 * is not well-formed UTF-8. */
MK_API MK_MUST_CHECK int mk_seal_error(mk_session *s, uint32_t request_id,
                                       unsigned code, const char *text,
                                       size_t text_len, uint8_t *out,
                                       size_t cap, size_t *out_len);
/* Seal the authenticated close record; no record may be sealed after it. */
MK_API MK_MUST_CHECK int mk_seal_close(mk_session *s, uint8_t *out, size_t cap,
                                       size_t *out_len);

/* Write a plaintext alert (no session needed; used for cheap "retry later"
 * before any RSA work). At most 10 bytes. */
MK_API MK_MUST_CHECK int mk_write_alert(unsigned code, uint32_t arg,
                                        uint8_t *out, size_t cap,
                                        size_t *out_len);

/* Session facts, valid once established. */
typedef struct mk_session_info {
    int state;                     /* enum mk_state */
    int resumed;                   /* resumed from a ticket */
    int early_accepted;            /* reserved: always 0 in this version */
    uint8_t key_id[MK_KEY_ID_LEN]; /* server key of the session's root */
    uint8_t session_id[MK_SESSION_ID_LEN]; /* not secret: for logs/apps */
    uint32_t max_message;                  /* announced by the server */
    uint32_t max_inflight;
    uint32_t inflight; /* requests now in flight */
    int has_ticket;    /* client: a ticket can be exported */
} mk_session_info;

MK_API void mk_session_get_info(const mk_session *s, mk_session_info *info);
MK_API int mk_session_state(const mk_session *s);
/* The first error the session failed with, or MK_OK. */
MK_API int mk_session_error(const mk_session *s);
/* After MK_ERR_PEER_RETRY_LATER: the server's suggested wait in ms. */
MK_API uint32_t mk_session_retry_after(const mk_session *s);

/*
 * Client: export what is needed to resume (ticket and resumption secret) as
 * an opaque blob of at most MK_SESSION_BLOB_MAX bytes. The blob is SECRET:
 * whoever has it can resume the session. MK_ERR_STATE if there is no ticket.
 */
MK_API MK_MUST_CHECK int mk_session_export(const mk_session *s, uint8_t *out,
                                           size_t cap, size_t *out_len);

/* Wipe memory in a way the compiler cannot drop. */
MK_API void mk_wipe(void *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* MEGAKI_H */
