/*
 * keys.h -- MKD's key material on disk: the server's RSA keys (PEM files),
 * the ticket-key file shared between nodes, key generation, and the
 * immutable mk_server_config that libmegaki serves from, built from them.
 * Used by main (start-up, SIGHUP, the keygen/pubkey/ticket-keys commands);
 * nothing here runs on the event loop or keeps state.
 *
 * Ticket-key file format (text, mode 0600, documented in docs/MKD.md):
 *
 *     # megaki ticket keys v2
 *     <name: 32 hex digits> <secret: 64 hex digits> [staged]
 *     ...
 *
 * One key per line; '#' lines and blank lines are ignored. The first key
 * not marked "staged" issues tickets; every key listed accepts them. (v2
 * added the mark; a v1 file, without it, reads the same.) Several MKD
 * nodes that read the same file resume each other's sessions. Rotation
 * across nodes is two-phase (docs/SCALING.md): --stage adds a key that
 * only accepts, and once every node has reloaded with it, --promote makes
 * it the issuing one; no node then issues a ticket another cannot read.
 *
 * Errors (mkd_err.h): MKD_ERR_KEY_FILE, MKD_ERR_TICKET_FILE, MKD_ERR_EXISTS,
 * MKD_ERR_SYSTEM, MKD_ERR_CRYPTO, MKD_ERR_NOMEM, MKD_ERR_BUFFER, with the
 * path (and line) in the diag. Secrets read from disk are wiped as soon as
 * libmegaki holds them, on every path.
 */
#ifndef MKD_KEYS_H
#define MKD_KEYS_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>

#include "megaki.h"

/* Bytes of a key id in hex, with its NUL. */
#define KEYS_ID_HEX       (2 * MK_KEY_ID_LEN + 1)
/* Longest path (or list of paths) taken. */
#define MKD_KEYS_PATH_MAX 512

/* Parse a ticket-key file held in memory into keys[0..*n) (fuzzed: the
 * daemon's own file parser). origin names it in messages. The secrets are
 * the caller's to wipe; on failure keys is wiped and *n is 0. */
MKD_MUST_CHECK int keys_ticket_parse(const uint8_t *buf, size_t len,
                                     const char *origin, mk_ticket_key *keys,
                                     size_t max, size_t *n, mkd_diag *d);
/* The same, from a file. */
MKD_MUST_CHECK int keys_ticket_file_read(const char *path, mk_ticket_key *keys,
                                         size_t max, size_t *n, mkd_diag *d);
/* What keys_ticket_file_update does to the file. */
enum keys_ticket_op {
    KEYS_TICKET_CREATE = 0, /* if missing, with one fresh key; else nothing */
    KEYS_TICKET_ROTATE,     /* prepend a fresh issuing key (one node) */
    KEYS_TICKET_STAGE,      /* prepend a fresh key that only accepts; refused
                               while another is staged */
    KEYS_TICKET_PROMOTE     /* the staged key issues; refused without one */
};

/* Apply op (enum keys_ticket_op), keeping at most keep
 * (1..MK_TICKET_KEYS_MAX; staging and promoting need 2) keys: the oldest
 * go. Staging and promoting need the file to exist. *n_out: keys in the
 * file afterwards. */
MKD_MUST_CHECK int keys_ticket_file_update(const char *path, int op,
                                           size_t keep, size_t *n_out,
                                           mkd_diag *d);

/* Generate an RSA key of bits (2048, 3072, 4096) and write pem_path
 * (private, 0600) and the public key beside it: <base>.pub.pem and
 * <base>.pub.h (C array), base being pem_path less ".pem". Refuses to
 * overwrite (MKD_ERR_EXISTS). id_hex (KEYS_ID_HEX bytes, may be NULL)
 * receives the key id clients see. */
MKD_MUST_CHECK int keys_generate(const char *pem_path, unsigned bits,
                                 char *id_hex, mkd_diag *d);
/* Key id, size, public PEM and C array of a private key file, as text. */
MKD_MUST_CHECK int keys_describe(const char *pem_path, char *out, size_t cap,
                                 mkd_diag *d);

/* What a server configuration is built from. */
typedef struct keys_source {
    const char *key_files; /* comma-separated PEM paths */
    const char *ticket_key_file;
    uint32_t max_message, max_inflight, ticket_lifetime;
    uint32_t session_max_age; /* seconds from a full handshake, all told */
} keys_source;

/* Build the server configuration (a reference the caller owns).
 * *nkeys, *ntkeys (may be NULL): how many keys were loaded. */
MKD_MUST_CHECK int keys_server_config(const keys_source *src,
                                      mk_server_config **out, size_t *nkeys,
                                      size_t *ntkeys, mkd_diag *d);

/* Text forms of a DER public key: PEM, and a C array named name. Each
 * returns the bytes written (NUL-terminated), 0 if cap is too small. */
size_t keys_pem_public(const uint8_t *der, size_t len, char *out, size_t cap);
size_t keys_c_array(const uint8_t *der, size_t len, const char *name, char *out,
                    size_t cap);

#endif
