/*
 * keys.c -- see keys.h.
 */
#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

#define TICKET_FILE_MAX 65536
#define KEY_FILE_MAX 65536

int yami_ticket_file_read(const char *path, mk_ticket_key *keys, size_t max,
                          size_t *n, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int ret = -1, r;

    *n = 0;
    if ((r = mkd_read_file(path, TICKET_FILE_MAX, &buf, &len)) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(r));
        goto out;
    }
    ret = yami_ticket_keys_parse(buf, len, path, keys, max, n, err, errlen);
out:
    if (buf != NULL) {
        mk_wipe(buf, len);
        free(buf);
    }
    return ret;
}

int yami_ticket_keys_parse(const uint8_t *buf, size_t len, const char *path,
                           mk_ticket_key *keys, size_t max, size_t *n,
                           char *err, size_t errlen)
{
    size_t pos = 0;
    unsigned lineno = 0;
    int ret = -1;

    *n = 0;
    while (pos < len) {
        const char *line = (const char *)buf + pos;
        size_t ll = 0, a = 0;
        while (pos + ll < len && line[ll] != '\n')
            ll++;
        pos += ll + 1;
        lineno++;
        while (ll > 0 && (line[ll - 1] == '\r' || line[ll - 1] == ' ' ||
                          line[ll - 1] == '\t'))
            ll--;
        while (a < ll && (line[a] == ' ' || line[a] == '\t'))
            a++;
        if (a == ll || line[a] == '#')
            continue;
        if (*n == max) {
            snprintf(err, errlen, "%s:%u: more than %zu keys", path, lineno,
                     max);
            goto out;
        }
        /* name(32 hex) blank(s) secret(64 hex) */
        if (ll - a < 32 + 1 + 64 ||
            mkd_unhex(line + a, 32, keys[*n].name, 16) != 0) {
            snprintf(err, errlen, "%s:%u: bad ticket key line", path,
                     lineno);
            goto out;
        }
        a += 32;
        while (a < ll && (line[a] == ' ' || line[a] == '\t'))
            a++;
        if (mkd_unhex(line + a, ll - a, keys[*n].secret, 32) != 0) {
            snprintf(err, errlen, "%s:%u: bad ticket key line", path,
                     lineno);
            goto out;
        }
        for (size_t i = 0; i < *n; i++)
            if (memcmp(keys[i].name, keys[*n].name, 16) == 0) {
                snprintf(err, errlen, "%s:%u: duplicate key name", path,
                         lineno);
                goto out;
            }
        (*n)++;
    }
    if (*n == 0) {
        snprintf(err, errlen, "%s: no ticket keys", path);
        goto out;
    }
    ret = 0;
out:
    if (ret != 0) {
        mk_wipe(keys, max * sizeof *keys);
        *n = 0;
    }
    return ret;
}

static int fresh_key(mk_ticket_key *k)
{
    const mk_env *env = mk_env_system();
    return env->random(env->ctx, k->name, sizeof k->name) == 0 &&
                   env->random(env->ctx, k->secret, sizeof k->secret) == 0
               ? 0
               : -1;
}

int yami_ticket_file_update(const char *path, int rotate, size_t keep,
                            size_t *n_out, char *err, size_t errlen)
{
    mk_ticket_key keys[MK_TICKET_KEYS_MAX + 1];
    char *text = NULL;
    size_t n = 0, cap, len = 0;
    int ret = -1, r, exists = mkd_file_exists(path);

    memset(keys, 0, sizeof keys);
    if (keep < 1 || keep > MK_TICKET_KEYS_MAX)
        keep = MK_TICKET_KEYS_MAX;
    if (exists && yami_ticket_file_read(path, keys + 1, MK_TICKET_KEYS_MAX,
                                        &n, err, errlen) != 0)
        goto out;
    if (exists && !rotate) {
        /* Nothing to do: create is idempotent. */
        ret = 0;
        goto out;
    }
    if (fresh_key(&keys[0]) != 0) {
        snprintf(err, errlen, "random number generator failed");
        goto out;
    }
    n++;
    if (n > keep)
        n = keep;
    cap = 128 + n * 100; /* header line, then 98 bytes per key */
    if ((text = malloc(cap)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    len = (size_t)snprintf(text, cap,
                           "# megaki ticket keys v1: the first line issues "
                           "tickets, every line accepts\n");
    for (size_t i = 0; i < n; i++) {
        char name[33], secret[65];
        mkd_hex(keys[i].name, 16, name);
        mkd_hex(keys[i].secret, 32, secret);
        len += (size_t)snprintf(text + len, cap - len, "%s %s\n", name,
                                secret);
        mk_wipe(secret, sizeof secret);
    }
    if ((r = mkd_write_file(path, text, len, 0600)) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(r));
        goto out;
    }
    ret = 0;
out:
    if (n_out != NULL)
        *n_out = n;
    if (text != NULL) {
        mk_wipe(text, len);
        free(text);
    }
    mk_wipe(keys, sizeof keys);
    return ret;
}

/* --- public key text forms ------------------------------------------- */

static size_t base64(const uint8_t *p, size_t len, char *out, size_t cap)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0, col = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t k = len - i;
        if (k > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (k > 2)
            v |= p[i + 2];
        if (n + 6 >= cap)
            return 0;
        out[n++] = t[v >> 18 & 63];
        out[n++] = t[v >> 12 & 63];
        out[n++] = k > 1 ? t[v >> 6 & 63] : '=';
        out[n++] = k > 2 ? t[v & 63] : '=';
        col += 4;
        if (col == 64 || i + 3 >= len) {
            out[n++] = '\n';
            col = 0;
        }
    }
    out[n] = '\0';
    return n;
}

size_t yami_pem_public(const uint8_t *der, size_t len, char *out, size_t cap)
{
    static const char head[] = "-----BEGIN PUBLIC KEY-----\n";
    static const char tail[] = "-----END PUBLIC KEY-----\n";
    size_t n = sizeof head - 1, b;

    if (cap < sizeof head + sizeof tail)
        return 0;
    memcpy(out, head, n);
    b = base64(der, len, out + n, cap - n - sizeof tail);
    if (b == 0)
        return 0;
    n += b;
    memcpy(out + n, tail, sizeof tail);
    return n + sizeof tail - 1;
}

size_t yami_c_array(const uint8_t *der, size_t len, const char *name,
                    char *out, size_t cap)
{
    size_t n = 0;
    int r = snprintf(out, cap,
                     "/* Megaki server public key (DER SubjectPublicKeyInfo)"
                     " */\nstatic const unsigned char %s[%zu] = {",
                     name, len);
    if (r < 0 || (size_t)r >= cap)
        return 0;
    n = (size_t)r;
    for (size_t i = 0; i < len; i++) {
        r = snprintf(out + n, cap - n, "%s0x%02x%s", i % 12 ? " " : "\n    ",
                     der[i], i + 1 < len ? "," : "");
        if (r < 0 || (size_t)r >= cap - n)
            return 0;
        n += (size_t)r;
    }
    r = snprintf(out + n, cap - n, "\n};\n");
    if (r < 0 || (size_t)r >= cap - n)
        return 0;
    return n + (size_t)r;
}

static int load_key(const char *path, mk_server_key **out, char *err,
                    size_t errlen)
{
    uint8_t *pem = NULL;
    size_t len = 0;
    int r, ret = -1;

    *out = NULL;
    if ((r = mkd_read_file(path, KEY_FILE_MAX, &pem, &len)) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(r));
        goto out;
    }
    if ((r = mk_server_key_load_pem(out, pem, len)) != MK_OK) {
        snprintf(err, errlen, "%s: %s", path, mk_strerror(r));
        goto out;
    }
    ret = 0;
out:
    if (pem != NULL) {
        mk_wipe(pem, len); /* the PEM is the private key in clear */
        free(pem);
    }
    return ret;
}

static void strip_pem(const char *pem_path, char *base, size_t cap)
{
    size_t n = strlen(pem_path);
    if (n >= 4 && strcmp(pem_path + n - 4, ".pem") == 0)
        n -= 4;
    if (n >= cap)
        n = cap - 1;
    memcpy(base, pem_path, n);
    base[n] = '\0';
}

int yami_keygen_files(const char *pem_path, unsigned bits, char *err,
                      size_t errlen)
{
    mk_server_key *key = NULL;
    uint8_t priv[8192], der[1024];
    char base[MKD_PATH_MAX], path[MKD_PATH_MAX + 16], text[8192];
    size_t plen = 0, dlen = 0, tlen;
    int r, ret = -1;

    strip_pem(pem_path, base, sizeof base);
    if (mkd_file_exists(pem_path)) {
        snprintf(err, errlen, "%s exists: not overwriting a key", pem_path);
        goto out;
    }
    if ((r = mk_server_key_generate(&key, bits)) != MK_OK ||
        (r = mk_server_key_private_pem(key, priv, sizeof priv, &plen)) !=
            MK_OK ||
        (r = mk_server_key_public_der(key, der, sizeof der, &dlen)) !=
            MK_OK) {
        snprintf(err, errlen, "key generation failed: %s", mk_strerror(r));
        goto out;
    }
    if ((r = mkd_write_file(pem_path, priv, plen, 0600)) != 0) {
        snprintf(err, errlen, "%s: %s", pem_path, strerror(r));
        goto out;
    }
    snprintf(path, sizeof path, "%s.pub.pem", base);
    if ((tlen = yami_pem_public(der, dlen, text, sizeof text)) == 0 ||
        (r = mkd_write_file(path, text, tlen, 0644)) != 0) {
        snprintf(err, errlen, "%s: cannot write", path);
        goto out;
    }
    snprintf(path, sizeof path, "%s.pub.h", base);
    if ((tlen = yami_c_array(der, dlen, "megaki_server_key", text,
                             sizeof text)) == 0 ||
        (r = mkd_write_file(path, text, tlen, 0644)) != 0) {
        snprintf(err, errlen, "%s: cannot write", path);
        goto out;
    }
    ret = 0;
out:
    mk_wipe(priv, sizeof priv);
    mk_server_key_free(key);
    return ret;
}

int yami_describe_key(const char *pem_path, char *out, size_t cap, char *err,
                      size_t errlen)
{
    mk_server_key *key = NULL;
    uint8_t der[1024], id[MK_KEY_ID_LEN];
    char idhex[2 * MK_KEY_ID_LEN + 1];
    size_t dlen = 0, n = 0, k;
    int r, ret = -1;

    if (load_key(pem_path, &key, err, errlen) != 0)
        goto out;
    if ((r = mk_server_key_public_der(key, der, sizeof der, &dlen)) !=
        MK_OK) {
        snprintf(err, errlen, "%s: %s", pem_path, mk_strerror(r));
        goto out;
    }
    mk_server_key_id(key, id);
    mkd_hex(id, sizeof id, idhex);
    r = snprintf(out, cap, "key file: %s\nbits: %u\nkey id: %s\n\n",
                 pem_path, mk_server_key_bits(key), idhex);
    if (r < 0 || (size_t)r >= cap)
        goto small;
    n = (size_t)r;
    if ((k = yami_pem_public(der, dlen, out + n, cap - n)) == 0)
        goto small;
    n += k;
    if (n + 2 >= cap)
        goto small;
    out[n++] = '\n';
    if ((k = yami_c_array(der, dlen, "megaki_server_key", out + n,
                          cap - n)) == 0)
        goto small;
    ret = 0;
    goto out;
small:
    snprintf(err, errlen, "output buffer too small");
out:
    mk_server_key_free(key);
    return ret;
}

int yami_build_server_config(const mkd_config *cfg, mk_server_config **out,
                             size_t *nkeys, size_t *ntkeys, char *err,
                             size_t errlen)
{
    mk_server_config *sc = NULL;
    mk_ticket_key tkeys[MK_TICKET_KEYS_MAX];
    char list[MKD_PATH_MAX], *save = NULL, *tok;
    size_t nt = 0, nk = 0;
    int r, ret = -1;

    *out = NULL;
    memset(tkeys, 0, sizeof tkeys);
    if ((r = mk_server_config_new(&sc, mk_env_system())) != MK_OK) {
        snprintf(err, errlen, "server config: %s", mk_strerror(r));
        goto out;
    }
    memcpy(list, cfg->key_file, sizeof list);
    for (tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        mk_server_key *key = NULL;
        while (*tok == ' ' || *tok == '\t')
            tok++;
        for (size_t e = strlen(tok); e > 0 && (tok[e - 1] == ' ' ||
                                               tok[e - 1] == '\t');
             e--)
            tok[e - 1] = '\0';
        if (*tok == '\0')
            continue;
        if (load_key(tok, &key, err, errlen) != 0)
            goto out;
        if ((r = mk_server_config_add_key(sc, key)) != MK_OK) {
            snprintf(err, errlen, "%s: %s", tok, mk_strerror(r));
            goto out;
        }
        nk++;
    }
    if (nk == 0) {
        snprintf(err, errlen, "key_file: no key");
        goto out;
    }
    if (yami_ticket_file_read(cfg->ticket_key_file, tkeys,
                              MK_TICKET_KEYS_MAX, &nt, err, errlen) != 0)
        goto out;
    if ((r = mk_server_config_set_ticket_keys(sc, tkeys, nt)) != MK_OK ||
        (r = mk_server_config_set_limits(sc, cfg->max_message,
                                         cfg->max_inflight,
                                         cfg->ticket_lifetime)) != MK_OK) {
        snprintf(err, errlen, "server config: %s", mk_strerror(r));
        goto out;
    }
    *out = sc;
    sc = NULL;
    if (nkeys)
        *nkeys = nk;
    if (ntkeys)
        *ntkeys = nt;
    ret = 0;
out:
    mk_wipe(tkeys, sizeof tkeys);
    mk_server_config_unref(sc);
    return ret;
}
