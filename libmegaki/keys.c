/*
 * keys.c -- server keys, pinned client keys and the two configurations.
 *
 * A key id is the first 8 bytes of SHA-256 over the DER SubjectPublicKeyInfo
 * (docs/PROTOCOL.md §2.3): public, stable across PEM/DER spellings, and what
 * a CLIENT_HELLO names so the server picks the right private key.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int size_ok(unsigned bits)
{
    return bits == 2048 || bits == 3072 || bits == 4096;
}

int mk__key_id_of(const mkc_rsa *k, uint8_t id[MK_KEY_ID_LEN])
{
    uint8_t der[1024], h[MKC_SHA256_LEN];
    size_t len = 0;
    int ret;

    MK_TRY(mkc_rsa_public_der(k, der, sizeof der, &len));
    MK_TRY(mkc_sha256(der, len, h));
    memcpy(id, h, MK_KEY_ID_LEN);
out:
    return ret;
}

static int wrap_key(mkc_rsa *rsa, mk_server_key **out)
{
    mk_server_key *k = NULL;
    int ret;

    MK_FAIL_IF(!size_ok(mkc_rsa_bits(rsa)), MK_ERR_KEY_SIZE);
    MK_FAIL_IF((k = calloc(1, sizeof *k)) == NULL, MK_ERR_NOMEM);
    MK_TRY(mk__key_id_of(rsa, k->id));
    k->rsa = rsa;
    rsa = NULL;
    *out = k;
    k = NULL;
out:
    mkc_rsa_free(rsa);
    free(k);
    return ret;
}

int mk_server_key_load_pem(mk_server_key **out, const uint8_t *pem, size_t len)
{
    mkc_rsa *rsa = NULL;
    int ret;

    *out = NULL;
    MK_FAIL_IF(pem == NULL || len == 0, MK_ERR_USAGE);
    MK_TRY(mkc_rsa_load_private(pem, len, &rsa));
    ret = wrap_key(rsa, out);
out:
    return ret;
}

int mk_server_key_generate(mk_server_key **out, unsigned bits)
{
    mkc_rsa *rsa = NULL;
    int ret;

    *out = NULL;
    MK_FAIL_IF(!size_ok(bits), MK_ERR_KEY_SIZE);
    MK_TRY(mkc_rsa_generate(bits, &rsa));
    ret = wrap_key(rsa, out);
out:
    return ret;
}

int mk_server_key_private_pem(const mk_server_key *key, uint8_t *out,
                              size_t cap, size_t *out_len)
{
    return mkc_rsa_private_pem(key->rsa, out, cap, out_len);
}

int mk_server_key_public_der(const mk_server_key *key, uint8_t *out, size_t cap,
                             size_t *out_len)
{
    return mkc_rsa_public_der(key->rsa, out, cap, out_len);
}

void mk_server_key_id(const mk_server_key *key, uint8_t id[MK_KEY_ID_LEN])
{
    memcpy(id, key->id, MK_KEY_ID_LEN);
}

unsigned mk_server_key_bits(const mk_server_key *key)
{
    return mkc_rsa_bits(key->rsa);
}

void mk_server_key_free(mk_server_key *key)
{
    if (key == NULL)
        return;
    mkc_rsa_free(key->rsa);
    free(key);
}

int mk_public_key_id(const uint8_t *key, size_t len, uint8_t id[MK_KEY_ID_LEN])
{
    mkc_rsa *rsa = NULL;
    int ret;

    MK_FAIL_IF(key == NULL || len == 0, MK_ERR_USAGE);
    MK_TRY(mkc_rsa_load_public(key, len, &rsa));
    ret = mk__key_id_of(rsa, id);
out:
    mkc_rsa_free(rsa);
    return ret;
}

/* --- server configuration ---------------------------------------------- */

int mk_server_config_new(mk_server_config **out, const mk_env *env)
{
    mk_server_config *c;

    *out = NULL;
    if (env == NULL || env->random == NULL || env->now_ms == NULL)
        return MK_ERR_USAGE;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return MK_ERR_NOMEM;
    atomic_init(&c->refs, 1);
    c->env = env;
    c->max_message = MK_MESSAGE_MAX_DEFAULT;
    c->max_inflight = MK_INFLIGHT_DEFAULT;
    c->ticket_lifetime = MK_TICKET_LIFETIME_DEFAULT;
    c->session_max_age = MK_SESSION_MAX_AGE_DEFAULT;
    *out = c;
    return MK_OK;
}

const mk_server_key *mk__find_key(const mk_server_config *c,
                                  const uint8_t id[MK_KEY_ID_LEN])
{
    for (size_t i = 0; i < c->nkeys; i++)
        if (memcmp(c->keys[i]->id, id, MK_KEY_ID_LEN) == 0)
            return c->keys[i];
    return NULL;
}

int mk_server_config_add_key(mk_server_config *cfg, mk_server_key *key)
{
    int ret = MK_OK;

    MK_FAIL_IF(key == NULL, MK_ERR_USAGE);
    MK_FAIL_IF(cfg->nkeys >= MK_MAX_KEYS, MK_ERR_LIMIT);
    MK_FAIL_IF(mk__find_key(cfg, key->id) != NULL, MK_ERR_USAGE);
    cfg->keys[cfg->nkeys++] = key;
    key = NULL;
out:
    mk_server_key_free(key);
    return ret;
}

static void free_tkeys(mk_server_config *cfg)
{
    if (cfg->tkeys)
        mkc_secure_free(cfg->tkeys, cfg->ntkeys * sizeof(mk_tk));
    cfg->tkeys = NULL;
    cfg->ntkeys = 0;
}

int mk_server_config_set_ticket_keys(mk_server_config *cfg,
                                     const mk_ticket_key *keys, size_t n)
{
    mk_tk *t = NULL;
    int ret = MK_OK;

    MK_FAIL_IF(n > MK_TICKET_KEYS_MAX || (n && keys == NULL), MK_ERR_USAGE);
    if (n) {
        MK_FAIL_IF((t = mkc_secure_alloc(n * sizeof *t)) == NULL, MK_ERR_NOMEM);
        for (size_t i = 0; i < n; i++) {
            memcpy(t[i].name, keys[i].name, MK_TICKET_NAME_LEN);
            MK_TRY(mk__expand_label(keys[i].secret, "ticket enc", NULL, 0,
                                    t[i].enc, MK_SECRET_LEN));
            MK_TRY(mk__expand_label(keys[i].secret, "ticket mac", NULL, 0,
                                    t[i].mac, MK_SECRET_LEN));
        }
    }
    free_tkeys(cfg);
    cfg->tkeys = t;
    cfg->ntkeys = n;
    t = NULL;
out:
    if (t)
        mkc_secure_free(t, n * sizeof *t);
    return ret;
}

int mk_server_config_set_limits(mk_server_config *cfg, uint32_t max_message,
                                uint32_t max_inflight, uint32_t ticket_lifetime)
{
    if (max_message < 1 || max_message > MK_MESSAGE_MAX_LIMIT ||
        max_inflight < 1 || max_inflight > MK_INFLIGHT_LIMIT ||
        ticket_lifetime < 60 || ticket_lifetime > MK_TICKET_LIFETIME_LIMIT)
        return MK_ERR_USAGE;
    cfg->max_message = max_message;
    cfg->max_inflight = max_inflight;
    cfg->ticket_lifetime = ticket_lifetime;
    return MK_OK;
}

int mk_server_config_set_session_max_age(mk_server_config *cfg,
                                         uint32_t seconds)
{
    if (seconds < MK_SESSION_MAX_AGE_MIN || seconds > MK_SESSION_MAX_AGE_LIMIT)
        return MK_ERR_USAGE;
    cfg->session_max_age = seconds;
    return MK_OK;
}

mk_server_config *mk_server_config_ref(mk_server_config *cfg)
{
    atomic_fetch_add(&cfg->refs, 1);
    return cfg;
}

void mk_server_config_unref(mk_server_config *cfg)
{
    if (cfg == NULL || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    for (size_t i = 0; i < cfg->nkeys; i++)
        mk_server_key_free(cfg->keys[i]);
    free_tkeys(cfg);
    free(cfg);
}

/* --- client configuration ---------------------------------------------- */

int mk_client_config_new(mk_client_config **out, const mk_env *env)
{
    mk_client_config *c;

    *out = NULL;
    if (env == NULL || env->random == NULL || env->now_ms == NULL)
        return MK_ERR_USAGE;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return MK_ERR_NOMEM;
    atomic_init(&c->refs, 1);
    c->env = env;
    *out = c;
    return MK_OK;
}

int mk_client_config_pin(mk_client_config *cfg, const uint8_t *key, size_t len)
{
    mkc_rsa *rsa = NULL;
    uint8_t id[MK_KEY_ID_LEN];
    int ret;

    MK_FAIL_IF(key == NULL || len == 0, MK_ERR_USAGE);
    MK_FAIL_IF(cfg->npins >= MK_MAX_KEYS, MK_ERR_LIMIT);
    MK_TRY(mkc_rsa_load_public(key, len, &rsa));
    MK_FAIL_IF(!size_ok(mkc_rsa_bits(rsa)), MK_ERR_KEY_SIZE);
    MK_TRY(mk__key_id_of(rsa, id));
    for (size_t i = 0; i < cfg->npins; i++)
        if (memcmp(cfg->pin_ids[i], id, MK_KEY_ID_LEN) == 0)
            goto out; /* already pinned: nothing to do */
    memcpy(cfg->pin_ids[cfg->npins], id, MK_KEY_ID_LEN);
    cfg->pins[cfg->npins++] = rsa;
    rsa = NULL;
out:
    mkc_rsa_free(rsa);
    return ret;
}

size_t mk_client_config_pin_count(const mk_client_config *cfg)
{
    return cfg->npins;
}

mk_client_config *mk_client_config_ref(mk_client_config *cfg)
{
    atomic_fetch_add(&cfg->refs, 1);
    return cfg;
}

void mk_client_config_unref(mk_client_config *cfg)
{
    if (cfg == NULL || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    for (size_t i = 0; i < cfg->npins; i++)
        mkc_rsa_free(cfg->pins[i]);
    free(cfg);
}
