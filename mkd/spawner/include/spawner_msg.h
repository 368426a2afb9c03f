/*
 * spawner_msg.h -- the messages between mkd and its spawner: one fixed-size
 * record each, over a SOCK_SEQPACKET socket pair (a message is a packet).
 * Pure functions over byte buffers, fuzzed (fuzz/fuzz_spawner.c): the
 * spawner runs as root and parses what mkd sends; mkd parses what the
 * spawner sends.
 *
 *   record = type u8 | sig u8 | reserved u16 (0) | slot u32 | pid i32
 *            | err i32 | status i64 | max_message u32 | settings u64
 *                                            (36 bytes, big-endian)
 *
 *   mkd -> spawner   SPAWN    slot, max_message, settings
 *                                           start the worker of slot, held
 *                                           to max_message (the pool's
 *                                           limit, which a reload may have
 *                                           changed before the spawner's
 *                                           own reading of the file), with
 *                                           the command whose digest is
 *                                           settings (the pool's; the
 *                                           spawner refuses, ESTALE, if
 *                                           its own reading differs)
 *                    KILL     pid, sig      signal a worker's group
 *                    RELOAD   settings      read the configuration again,
 *                                           and take it only if its
 *                                           digest is settings (mkd's
 *                                           reading)
 *   spawner -> mkd   SPAWNED  slot, pid     + the worker's channel and
 *                                             output ends (SCM_RIGHTS)
 *                    FAILED   slot, err     (an errno value)
 *                    EXITED   pid, status, sig (term signal, 0 if none)
 *                    RELOADED err           0: taken; ESTALE: read, but
 *                                           other settings than mkd's
 *                                           (kept the old); EINVAL: not
 *                                           read (kept the old)
 *
 * settings is pegasus_command_digest of the worker settings: mkd never
 * names a command (the spawner builds it from its own reading of the
 * configuration), it only says which one it means, so the two cannot
 * start different workers without knowing it.
 *
 * Every field a type does not use must be zero, and the fields it uses must
 * lie in range: anything else is malformed and ends the conversation.
 */
#ifndef SPAWNER_MSG_H
#define SPAWNER_MSG_H

#include "mkd_compiler.h"
#include "mkd_err.h"

#include <stddef.h>
#include <stdint.h>

#define SPAWNER_MSG_LEN     36
#define SPAWNER_SLOT_MAX    65535u       /* far above any pool's slots */
#define SPAWNER_MESSAGE_MAX (256u << 20) /* mkd's max_message bound */

enum spawner_msg_type {
    SPAWNER_SPAWN = 1,
    SPAWNER_SPAWNED = 2,
    SPAWNER_FAILED = 3,
    SPAWNER_KILL = 4,
    SPAWNER_EXITED = 5,
    SPAWNER_RELOAD = 6,
    SPAWNER_RELOADED = 7
};

typedef struct spawner_msg {
    uint8_t type;
    uint8_t sig;
    uint32_t slot;
    int32_t pid;
    int32_t err;
    int64_t status;
    uint32_t max_message;
    uint64_t settings;
} spawner_msg;

/* Encode m into out (SPAWNER_MSG_LEN bytes). MKD_OK, or MKD_ERR_ARG when
 * m would not parse back (so nothing malformed is ever sent). */
MKD_MUST_CHECK int spawner_msg_encode(const spawner_msg *m,
                                      uint8_t out[SPAWNER_MSG_LEN]);
/* Decode exactly len bytes. MKD_OK, MKD_ERR_FRAME_TYPE (unknown type) or
 * MKD_ERR_FRAME_MALFORMED (wrong size, a reserved or unused field set, a
 * field out of range); *m is zeroed on failure. */
MKD_MUST_CHECK int spawner_msg_parse(const uint8_t *buf, size_t len,
                                     spawner_msg *m);
/* The type's name ("SPAWN"), or "unknown". */
const char *spawner_msg_name(unsigned type);

#endif
