/*
 * fuzz_common.h -- deterministic fixtures shared by the fuzz harnesses,
 * the corpus replay driver and the seed-corpus generator (make_corpus.c).
 *
 * Everything here is reproducible: keys come from tests/vectors/keys, the
 * randomness and the clock from tu_env with fixed seeds, reset before every
 * input. So a client built by a harness writes byte for byte the hello that
 * make_corpus.c wrote when it generated the seeds, and a committed
 * SERVER_HELLO or record still verifies when it is replayed: the fuzzer
 * starts past the MACs instead of in front of them.
 */
#ifndef MK_FUZZ_COMMON_H
#define MK_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "megaki.h"
#include "pump.h"

/* The libFuzzer entry point every harness defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Input size caps: larger inputs are ignored (returned at once). */
#define FZ_MAX_INPUT (2 * MK_UNIT_MAX)

/* The request the record fixture leaves in flight on both sides. */
#define FZ_REQ_ID 1

typedef struct fz_fixture {
    tu_env senv, cenv;          /* server side, client side */
    mk_server_config *sc;       /* server2048; ticket keys A (issues), B */
    mk_server_config *sc_other; /* other2048; ticket key A */
    mk_server_config *sc_tk;    /* server2048; ticket key C only */
    mk_client_config *cc;       /* pins server2048, then other2048 */
    uint8_t blob[MK_SESSION_BLOB_MAX]; /* resumes against sc */
    size_t blob_len;
} fz_fixture;

/* Built on first use (one full handshake), freed at exit. Aborts if the
 * fixture cannot be built: that is a broken build, not a finding. */
fz_fixture *fz_fixture_get(void);

/* Put both environments back to their fixed seed and clock. */
void fz_reset(fz_fixture *f);

/* A server configuration with key (a file in tests/vectors/keys) and one
 * ticket key per letter of tk_names ("AB": A issues, B accepts), named
 * "fuzz-ticket-key-<letter>" with a secret of bytes fill + letter. */
mk_server_config *fz_server_config(const mk_env *env, const char *key,
                                   const char *tk_names, uint8_t fill);

/* A server key or the bytes of a file in tests/vectors/keys. */
mk_server_key *fz_server_key(const char *name);
uint8_t *fz_key_file(const char *name, size_t *len);

/* After fz_reset(): a client (full, or resuming with the fixture blob)
 * that has written its hello into out (MK_HANDLE_OUT_LEN bytes). */
mk_session *fz_client_hello(fz_fixture *f, int resume, uint8_t *out,
                            size_t *out_len);

/* After fz_reset(): an established pair resumed from the fixture blob,
 * with request FZ_REQ_ID sent by the client and fully received by the
 * server. Returns 0, or -1 if that failed (a broken build). Free the pair
 * with tu_pair_free() either way. */
int fz_record_pair(fz_fixture *f, tu_pair *p);

#endif
