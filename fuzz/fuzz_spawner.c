/*
 * fuzz_spawner.c -- libFuzzer harness for the spawner's record parser
 * (mkd/spawner/msg.c): what the privileged spawner reads from mkd, and what
 * mkd reads back. The input is cut into 36-byte records, as the socket
 * delivers them, plus whatever is left as one short record.
 *
 * Beyond "no crash, no overread" (ASan/UBSan), it checks that a record
 * parses only with every unused field zero and its fields in range, that
 * it re-encodes to exactly its bytes, and that a failed parse leaves the
 * result zeroed.
 */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spawner_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one(const uint8_t *p, size_t n)
{
    static const spawner_msg zero;
    uint8_t again[SPAWNER_MSG_LEN];
    spawner_msg m;
    int r = spawner_msg_parse(p, n, &m);

    if (r != MKD_OK) {
        if (memcmp(&m, &zero, sizeof m) != 0)
            abort();
        return;
    }
    if (n != SPAWNER_MSG_LEN)
        abort();
    if (m.type == SPAWNER_KILL && m.sig != SIGTERM && m.sig != SIGKILL)
        abort();
    if ((m.type == SPAWNER_KILL || m.type == SPAWNER_SPAWNED ||
         m.type == SPAWNER_EXITED) &&
        m.pid <= 0)
        abort();
    if (m.type == SPAWNER_SPAWN &&
        (m.max_message == 0 || m.max_message > SPAWNER_MESSAGE_MAX))
        abort();
    if (m.settings != 0 && m.type != SPAWNER_SPAWN && m.type != SPAWNER_RELOAD)
        abort();
    if (spawner_msg_encode(&m, again) != MKD_OK ||
        memcmp(again, p, SPAWNER_MSG_LEN) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (size - off >= SPAWNER_MSG_LEN) {
        check_one(data + off, SPAWNER_MSG_LEN);
        off += SPAWNER_MSG_LEN;
    }
    check_one(data + off, size - off);
    return 0;
}
