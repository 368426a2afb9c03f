/*
 * keys.h -- Yami's key material: server RSA keys (PEM files), the shared
 * ticket-key file, and the immutable mk_server_config built from them.
 *
 * Ticket-key file format (text, mode 0600, documented in docs/MKD.md):
 *
 *     # megaki ticket keys v1
 *     <name: 32 hex digits> <secret: 64 hex digits>
 *     ...
 *
 * One key per line; '#' lines and blank lines are ignored. The first key
 * issues tickets; every key listed accepts them. `mkd ticket-keys --rotate`
 * prepends a fresh key and keeps at most ticket_keys_keep keys in all.
 * Several MKD nodes that read the same file resume each other's sessions.
 */
#ifndef YAMI_KEYS_H
#define YAMI_KEYS_H

#include "../common/compiler.h"

#include <stddef.h>
#include <stdint.h>

#include "../common/config.h"
#include "megaki.h"

/* Read a ticket-key file into keys[0..*n). Secrets are the caller's to
 * wipe. Returns 0, or -1 with a message in err. */
/* The parser behind yami_ticket_file_read, on bytes in memory (fuzzed:
 * fuzz/fuzz_mkd_files.c). path only names the origin in messages. */
MKD_MUST_CHECK int yami_ticket_keys_parse(const uint8_t *buf, size_t len,
                                          const char *path,
                                          mk_ticket_key *keys, size_t max,
                                          size_t *n, char *err,
                                          size_t errlen);
MKD_MUST_CHECK int yami_ticket_file_read(const char *path, mk_ticket_key *keys, size_t max,
                          size_t *n, char *err, size_t errlen);
/* Create the file if missing (one fresh key) or, with rotate, prepend a
 * fresh key keeping at most keep keys. Returns 0 or -1. */
MKD_MUST_CHECK int yami_ticket_file_update(const char *path, int rotate, size_t keep,
                            size_t *n_out, char *err, size_t errlen);

/* Generate an RSA key and write <pem_path> (private, 0600) and the public
 * key next to it: <base>.pub.pem and <base>.pub.h (C array), where base is
 * pem_path without its ".pem" suffix. Refuses to overwrite. */
MKD_MUST_CHECK int yami_keygen_files(const char *pem_path, unsigned bits, char *err,
                      size_t errlen);
/* Print key id, public PEM and C array of a private key file to out. */
MKD_MUST_CHECK int yami_describe_key(const char *pem_path, char *out, size_t cap,
                      char *err, size_t errlen);

/* Build a server configuration from key_file (comma-separated list),
 * ticket_key_file and the limits. Key material read from disk is wiped
 * as soon as libmegaki holds it. */
MKD_MUST_CHECK int yami_build_server_config(const mkd_config *cfg, mk_server_config **out,
                             size_t *nkeys, size_t *ntkeys, char *err,
                             size_t errlen);

/* Text forms used by keygen and describe. */
size_t yami_pem_public(const uint8_t *der, size_t len, char *out, size_t cap);
size_t yami_c_array(const uint8_t *der, size_t len, const char *name,
                    char *out, size_t cap);

#endif
