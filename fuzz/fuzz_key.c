/*
 * fuzz_key.c -- key parsing: mk_server_key_load_pem(), mk_public_key_id()
 * and mk_client_config_pin() on arbitrary bytes. A private key that loads
 * must give the same key id through its public DER.
 *
 * RSA parsing of very large keys is slow, so inputs over 8 KiB are ignored
 * (a 4096-bit private key PEM is about 3.3 KiB).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "internal.h"

#define FZ_KEY_MAX 8192

static tu_env env;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mk_server_key *k = NULL;
    mk_client_config *cc = NULL;
    uint8_t id[MK_KEY_ID_LEN], id2[MK_KEY_ID_LEN], der[1024];
    size_t der_len = 0;

    if (size > FZ_KEY_MAX)
        return 0;
    tu_env_init(&env, "megaki fuzz key");
    if (mk_server_key_load_pem(&k, data, size) == MK_OK) {
        unsigned bits = mk_server_key_bits(k);
        if (bits != 2048 && bits != 3072 && bits != 4096)
            abort();
        mk_server_key_id(k, id);
        if (mk_server_key_public_der(k, der, sizeof der, &der_len) != MK_OK ||
            mk_public_key_id(der, der_len, id2) != MK_OK ||
            memcmp(id, id2, sizeof id) != 0)
            abort();
        mk_server_key_free(k);
    } else if (k != NULL) {
        abort();
    }
    /* Pinning and key ids agree: whatever pins has a key id, the same
     * one; whatever has a key id pins unless its size is refused. */
    {
        int rid = mk_public_key_id(data, size, id);
        int rpin;
        if (mk_client_config_new(&cc, &env.env) != MK_OK)
            abort();
        rpin = mk_client_config_pin(cc, data, size);
        if (rpin == MK_OK &&
            (rid != MK_OK || mk_client_config_pin_count(cc) != 1 ||
             memcmp(cc->pin_ids[0], id, MK_KEY_ID_LEN) != 0))
            abort();
        if (rid == MK_OK && rpin != MK_OK && rpin != MK_ERR_KEY_SIZE)
            abort();
        mk_client_config_unref(cc);
    }
    return 0;
}
