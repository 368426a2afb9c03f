/*
 * keys.c -- see keys.h.
 */
#include "keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkd_util.h"

#define TICKET_FILE_MAX 65536
#define KEY_FILE_MAX    65536
#define KEY_C_NAME      "megaki_server_key"

/* --- the ticket-key file ------------------------------------------------ */

/* The marker of a key that accepts and does not issue yet (format v2). */
#define STAGED     "staged"
#define STAGED_LEN 6

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* One non-blank line "name(32 hex) blanks secret(64 hex) [blanks staged]",
 * trimmed. */
static int parse_key_line(const char *line, size_t len, mk_ticket_key *k,
                          uint8_t *staged)
{
    size_t a = 32, b;

    if (len < 32 + 1 + 64 ||
        mkd_unhex(line, 32, k->name, sizeof k->name) != MKD_OK)
        return MKD_ERR_TICKET_FILE;
    while (a < len && is_blank(line[a]))
        a++;
    for (b = a; b < len && !is_blank(line[b]);)
        b++;
    if (a == 32 ||
        mkd_unhex(line + a, b - a, k->secret, sizeof k->secret) != MKD_OK)
        return MKD_ERR_TICKET_FILE;
    while (b < len && is_blank(line[b]))
        b++;
    *staged = b < len;
    if (b < len &&
        (len - b != STAGED_LEN || memcmp(line + b, STAGED, STAGED_LEN)))
        return MKD_ERR_TICKET_FILE;
    return MKD_OK;
}

/* Parse into keys[*n] and check it against the keys before it. */
static int add_key(const char *line, size_t len, const char *origin,
                   unsigned lineno, mk_ticket_key *keys, uint8_t *staged,
                   size_t max, size_t *n, mkd_diag *d)
{
    if (*n == max)
        return mkd_fail(d, MKD_ERR_TICKET_FILE, "%s:%u: more than %zu keys",
                        origin, lineno, max);
    if (parse_key_line(line, len, &keys[*n], &staged[*n]) != MKD_OK)
        return mkd_fail(d, MKD_ERR_TICKET_FILE,
                        "%s:%u: bad ticket key line (expected 32 hex digits, "
                        "blanks, 64 hex digits, and optionally blanks and "
                        "\"" STAGED "\")",
                        origin, lineno);
    for (size_t i = 0; i < *n; i++)
        if (memcmp(keys[i].name, keys[*n].name, sizeof keys[i].name) == 0)
            return mkd_fail(d, MKD_ERR_TICKET_FILE, "%s:%u: duplicate key name",
                            origin, lineno);
    (*n)++;
    return MKD_OK;
}

/* The file's keys in its order, staged[i] set for a staged key. At least
 * one key must issue. */
static int parse_file_order(const uint8_t *buf, size_t len, const char *origin,
                            mk_ticket_key *keys, uint8_t *staged, size_t max,
                            size_t *n, mkd_diag *d)
{
    size_t pos = 0, issuing = 0;
    unsigned lineno = 0;
    int ret = MKD_OK;

    mkd_diag_clear(d);
    *n = 0;
    while (pos < len && ret == MKD_OK) {
        const char *line = (const char *)buf + pos;
        size_t ll = 0, a = 0;
        while (pos + ll < len && line[ll] != '\n')
            ll++;
        pos += ll + 1;
        lineno++;
        while (ll > 0 && is_blank(line[ll - 1]))
            ll--;
        while (a < ll && is_blank(line[a]))
            a++;
        if (a == ll || line[a] == '#')
            continue;
        ret =
            add_key(line + a, ll - a, origin, lineno, keys, staged, max, n, d);
    }
    for (size_t i = 0; ret == MKD_OK && i < *n; i++)
        issuing += !staged[i];
    if (ret == MKD_OK && *n == 0)
        ret = mkd_fail(d, MKD_ERR_TICKET_FILE, "%s: no ticket keys", origin);
    else if (ret == MKD_OK && issuing == 0)
        ret =
            mkd_fail(d, MKD_ERR_TICKET_FILE,
                     "%s: every key is staged; one must issue tickets", origin);
    if (ret != MKD_OK) {
        mkd_wipe(keys, max * sizeof *keys);
        *n = 0;
    }
    return ret;
}

int keys_ticket_parse(const uint8_t *buf, size_t len, const char *origin,
                      mk_ticket_key *keys, size_t max, size_t *n, mkd_diag *d)
{
    uint8_t staged[MK_TICKET_KEYS_MAX + 1] = {0};
    size_t i = 0;
    mk_ticket_key k;
    int r;

    if (max > MK_TICKET_KEYS_MAX + 1)
        max = MK_TICKET_KEYS_MAX + 1;
    if ((r = parse_file_order(buf, len, origin, keys, staged, max, n, d)) !=
        MKD_OK)
        return r;
    /* libmegaki issues with the first key: the first that is not staged
     * moves there, the others keep their order (all of them accept). */
    while (staged[i])
        i++;
    k = keys[i];
    memmove(keys + 1, keys, i * sizeof *keys);
    keys[0] = k;
    mkd_wipe(&k, sizeof k);
    return MKD_OK;
}

/* Read and parse the file: with staged NULL as the daemon loads it (the
 * issuing key first), else in the file's order with the staged marks. */
static int ticket_file_load(const char *path, mk_ticket_key *keys,
                            uint8_t *staged, size_t max, size_t *n, mkd_diag *d)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    *n = 0;
    if ((r = mkd_read_file_ex(path, TICKET_FILE_MAX, MKD_FILE_PRIVATE, &buf,
                              &len, d)) != MKD_OK)
        return r == MKD_ERR_NOMEM ? r : MKD_ERR_TICKET_FILE;
    r = staged == NULL
            ? keys_ticket_parse(buf, len, path, keys, max, n, d)
            : parse_file_order(buf, len, path, keys, staged, max, n, d);
    mkd_wipe(buf, len);
    free(buf);
    return r;
}

int keys_ticket_file_read(const char *path, mk_ticket_key *keys, size_t max,
                          size_t *n, mkd_diag *d)
{
    return ticket_file_load(path, keys, NULL, max, n, d);
}

static int fresh_key(mk_ticket_key *k)
{
    const mk_env *env = mk_env_system();

    if (env->random(env->ctx, k->name, sizeof k->name) != 0 ||
        env->random(env->ctx, k->secret, sizeof k->secret) != 0)
        return MKD_ERR_CRYPTO;
    return MKD_OK;
}

/* The file's text for keys[0..n): a header line, then one line a key. */
static int write_ticket_file(const char *path, const mk_ticket_key *keys,
                             const uint8_t *staged, size_t n, mkd_diag *d)
{
    size_t cap = 256 + n * 108; /* the header, then 105 bytes per key */
    char *text = malloc(cap);
    mkd_text t;
    int r;

    if (text == NULL)
        return mkd_fail(d, MKD_ERR_NOMEM, "out of memory");
    mkd_text_init(&t, text, cap);
    mkd_text_put(&t, "# megaki ticket keys v2: the first line not marked "
                     "staged issues tickets, every line accepts\n");
    for (size_t i = 0; i < n; i++) {
        char name[33], secret[65];
        mkd_hex(keys[i].name, sizeof keys[i].name, name);
        mkd_hex(keys[i].secret, sizeof keys[i].secret, secret);
        mkd_text_put(&t, "%s %s%s\n", name, secret,
                     staged[i] ? " " STAGED : "");
        mkd_wipe(secret, sizeof secret);
    }
    r = t.overflow ? mkd_fail(d, MKD_ERR_BUFFER, "ticket-key text too long")
                   : mkd_write_file(path, text, t.len, 0600, d);
    mkd_wipe(text, cap);
    free(text);
    return r == MKD_OK || r == MKD_ERR_NOMEM ? r : MKD_ERR_TICKET_FILE;
}

/* Make promote's staged key, found among keys[0..n), the first: it
 * issues now, the keys after it accept. */
static int promote(mk_ticket_key *keys, uint8_t *staged, size_t n,
                   const char *path, mkd_diag *d)
{
    size_t j = 0;
    mk_ticket_key k;

    while (j < n && !staged[j])
        j++;
    if (j == n)
        return mkd_fail(d, MKD_ERR_TICKET_FILE,
                        "%s: no staged key to promote (run --stage first)",
                        path);
    k = keys[j];
    memmove(keys + 1, keys, j * sizeof *keys);
    memmove(staged + 1, staged, j);
    keys[0] = k;
    staged[0] = 0;
    mkd_wipe(&k, sizeof k);
    return MKD_OK;
}

/* What op needs of the file as it is (exists, holds a staged key). */
static int op_allowed(int op, int exists, const uint8_t *staged, size_t n,
                      size_t keep, const char *path, mkd_diag *d)
{
    int has_staged = memchr(staged, 1, n) != NULL;

    if ((op == KEYS_TICKET_STAGE || op == KEYS_TICKET_PROMOTE) && keep < 2)
        return mkd_fail(d, MKD_ERR_CONFIG,
                        "--keep %zu: staging and promoting keep the old "
                        "key too (at least 2)",
                        keep);
    if ((op == KEYS_TICKET_STAGE || op == KEYS_TICKET_PROMOTE) && !exists)
        return mkd_fail(d, MKD_ERR_TICKET_FILE,
                        "%s: no ticket-key file (create it first)", path);
    if (op == KEYS_TICKET_STAGE && has_staged)
        return mkd_fail(d, MKD_ERR_TICKET_FILE,
                        "%s: a staged key is waiting: promote it "
                        "(--promote) before staging another",
                        path);
    return MKD_OK;
}

int keys_ticket_file_update(const char *path, int op, size_t keep,
                            size_t *n_out, mkd_diag *d)
{
    mk_ticket_key keys[MK_TICKET_KEYS_MAX + 1];
    uint8_t staged[MK_TICKET_KEYS_MAX + 1];
    size_t n = 0, base = 1; /* the file's keys are keys[base..base+n) */
    int ret = MKD_OK, exists = mkd_file_exists(path);

    mkd_diag_clear(d);
    memset(keys, 0, sizeof keys);
    memset(staged, 0, sizeof staged);
    if (keep < 1 || keep > MK_TICKET_KEYS_MAX)
        keep = MK_TICKET_KEYS_MAX;
    /* The file's keys go to keys[1..], keys[0] is for a fresh one. */
    if (exists && (ret = ticket_file_load(path, keys + 1, staged + 1,
                                          MK_TICKET_KEYS_MAX, &n, d)) != MKD_OK)
        goto out;
    if ((ret = op_allowed(op, exists, staged + 1, n, keep, path, d)) != MKD_OK)
        goto out;
    if (exists && op == KEYS_TICKET_CREATE)
        goto out; /* creating is idempotent */
    if (op == KEYS_TICKET_PROMOTE) {
        ret = promote(keys + 1, staged + 1, n, path, d);
    } else if ((ret = fresh_key(&keys[0])) != MKD_OK) {
        ret = mkd_fail(d, ret, "random number generator failed");
    } else {
        /* A fresh key goes in front: staged, it accepts only. */
        staged[0] = op == KEYS_TICKET_STAGE;
        base = 0;
        n++;
    }
    if (ret != MKD_OK)
        goto out;
    n = n > keep ? keep : n; /* the oldest keys go */
    ret = write_ticket_file(path, keys + base, staged + base, n, d);
out:
    if (n_out != NULL)
        *n_out = ret == MKD_OK ? n : 0;
    mkd_wipe(keys, sizeof keys);
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

size_t keys_pem_public(const uint8_t *der, size_t len, char *out, size_t cap)
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

size_t keys_c_array(const uint8_t *der, size_t len, const char *name, char *out,
                    size_t cap)
{
    mkd_text t;

    mkd_text_init(&t, out, cap);
    mkd_text_put(&t,
                 "/* Megaki server public key (DER SubjectPublicKeyInfo) */\n"
                 "static const unsigned char %s[%zu] = {",
                 name, len);
    for (size_t i = 0; i < len; i++)
        mkd_text_put(&t, "%s0x%02x%s", i % 12 ? " " : "\n    ", der[i],
                     i + 1 < len ? "," : "");
    mkd_text_put(&t, "\n};\n");
    return t.overflow ? 0 : t.len;
}

/* --- server keys ------------------------------------------------------ */

static int load_key(const char *path, mk_server_key **out, mkd_diag *d)
{
    uint8_t *pem = NULL;
    size_t len = 0;
    int r;

    *out = NULL;
    if ((r = mkd_read_file_ex(path, KEY_FILE_MAX, MKD_FILE_PRIVATE, &pem, &len,
                              d)) != MKD_OK)
        return r == MKD_ERR_NOMEM ? r : MKD_ERR_KEY_FILE;
    if ((r = mk_server_key_load_pem(out, pem, len)) != MK_OK)
        r = mkd_fail(d, MKD_ERR_KEY_FILE, "%s: %s", path, mk_strerror(r));
    else
        r = MKD_OK;
    mkd_wipe(pem, len); /* the PEM is the private key in clear */
    free(pem);
    return r;
}

/* pem_path less its ".pem", then suffix. */
static int sibling(const char *pem_path, const char *suffix, char *out,
                   size_t cap)
{
    size_t n = strlen(pem_path);
    int r;

    if (n >= 4 && strcmp(pem_path + n - 4, ".pem") == 0)
        n -= 4;
    r = snprintf(out, cap, "%.*s%s", (int)n, pem_path, suffix);
    return r > 0 && (size_t)r < cap ? MKD_OK : MKD_ERR_ARG;
}

/* The public halves beside the private key: .pub.pem and .pub.h. */
static int write_public(const char *pem_path, const uint8_t *der, size_t dlen,
                        mkd_diag *d)
{
    char path[MKD_KEYS_PATH_MAX], text[8192];
    size_t tlen;
    int r;

    if (sibling(pem_path, ".pub.pem", path, sizeof path) != MKD_OK ||
        (tlen = keys_pem_public(der, dlen, text, sizeof text)) == 0)
        return mkd_fail(d, MKD_ERR_BUFFER, "%s: path or key too long",
                        pem_path);
    if ((r = mkd_write_file(path, text, tlen, 0644, d)) != MKD_OK)
        return r;
    if (sibling(pem_path, ".pub.h", path, sizeof path) != MKD_OK ||
        (tlen = keys_c_array(der, dlen, KEY_C_NAME, text, sizeof text)) == 0)
        return mkd_fail(d, MKD_ERR_BUFFER, "%s: path or key too long",
                        pem_path);
    return mkd_write_file(path, text, tlen, 0644, d);
}

int keys_generate(const char *pem_path, unsigned bits, char *id_hex,
                  mkd_diag *d)
{
    mk_server_key *key = NULL;
    uint8_t priv[8192], der[1024], id[MK_KEY_ID_LEN];
    size_t plen = 0, dlen = 0;
    int r, ret;

    mkd_diag_clear(d);
    if (mkd_file_exists(pem_path))
        return mkd_fail(d, MKD_ERR_EXISTS, "%s exists: not overwriting a key",
                        pem_path);
    if ((r = mk_server_key_generate(&key, bits)) != MK_OK ||
        (r = mk_server_key_private_pem(key, priv, sizeof priv, &plen)) !=
            MK_OK ||
        (r = mk_server_key_public_der(key, der, sizeof der, &dlen)) != MK_OK) {
        ret = mkd_fail(d, MKD_ERR_CRYPTO, "key generation failed: %s",
                       mk_strerror(r));
        goto out;
    }
    if ((ret = mkd_write_file(pem_path, priv, plen, 0600, d)) != MKD_OK ||
        (ret = write_public(pem_path, der, dlen, d)) != MKD_OK)
        goto out;
    mk_server_key_id(key, id);
    if (id_hex != NULL)
        mkd_hex(id, sizeof id, id_hex);
out:
    mkd_wipe(priv, sizeof priv);
    mk_server_key_free(key);
    return ret;
}

int keys_describe(const char *pem_path, char *out, size_t cap, mkd_diag *d)
{
    mk_server_key *key = NULL;
    uint8_t der[1024], id[MK_KEY_ID_LEN];
    char idhex[KEYS_ID_HEX], pem[4096], carr[8192];
    size_t dlen = 0;
    mkd_text t;
    int r;

    mkd_diag_clear(d);
    if ((r = load_key(pem_path, &key, d)) != MKD_OK)
        return r;
    if ((r = mk_server_key_public_der(key, der, sizeof der, &dlen)) != MK_OK) {
        r = mkd_fail(d, MKD_ERR_KEY_FILE, "%s: %s", pem_path, mk_strerror(r));
        goto out;
    }
    mk_server_key_id(key, id);
    mkd_hex(id, sizeof id, idhex);
    mkd_text_init(&t, out, cap);
    if (keys_pem_public(der, dlen, pem, sizeof pem) == 0 ||
        keys_c_array(der, dlen, KEY_C_NAME, carr, sizeof carr) == 0) {
        r = mkd_fail(d, MKD_ERR_BUFFER, "%s: key too large", pem_path);
        goto out;
    }
    mkd_text_put(&t, "key file: %s\nbits: %u\nkey id: %s\n\n%s\n%s", pem_path,
                 mk_server_key_bits(key), idhex, pem, carr);
    r = t.overflow ? mkd_fail(d, MKD_ERR_BUFFER, "output buffer too small")
                   : MKD_OK;
out:
    mk_server_key_free(key);
    return r;
}

/* --- the server configuration ------------------------------------------ */

/* Load each key named in the comma-separated list into sc. */
static int add_keys(mk_server_config *sc, const char *list_in, size_t *nk,
                    mkd_diag *d)
{
    char list[MKD_KEYS_PATH_MAX], *save = NULL, *tok;
    int r;

    if (snprintf(list, sizeof list, "%s", list_in) >= (int)sizeof list)
        return mkd_fail(d, MKD_ERR_KEY_FILE, "key_file: list too long");
    *nk = 0;
    for (tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        mk_server_key *key = NULL;
        size_t e;
        while (*tok == ' ' || *tok == '\t')
            tok++;
        for (e = strlen(tok); e > 0 && is_blank(tok[e - 1]); e--)
            tok[e - 1] = '\0';
        if (*tok == '\0')
            continue;
        if ((r = load_key(tok, &key, d)) != MKD_OK)
            return r;
        if ((r = mk_server_config_add_key(sc, key)) != MK_OK)
            return mkd_fail(d, MKD_ERR_KEY_FILE, "%s: %s", tok, mk_strerror(r));
        (*nk)++;
    }
    return *nk > 0 ? MKD_OK : mkd_fail(d, MKD_ERR_KEY_FILE, "key_file: no key");
}

int keys_server_config(const keys_source *src, mk_server_config **out,
                       size_t *nkeys, size_t *ntkeys, mkd_diag *d)
{
    mk_server_config *sc = NULL;
    mk_ticket_key tkeys[MK_TICKET_KEYS_MAX];
    size_t nt = 0, nk = 0;
    int r, ret;

    mkd_diag_clear(d);
    *out = NULL;
    memset(tkeys, 0, sizeof tkeys);
    if ((r = mk_server_config_new(&sc, mk_env_system())) != MK_OK) {
        ret = mkd_fail(d, r == MK_ERR_NOMEM ? MKD_ERR_NOMEM : MKD_ERR_CRYPTO,
                       "server configuration: %s", mk_strerror(r));
        goto out;
    }
    if ((ret = add_keys(sc, src->key_files, &nk, d)) != MKD_OK ||
        (ret = keys_ticket_file_read(src->ticket_key_file, tkeys,
                                     MK_TICKET_KEYS_MAX, &nt, d)) != MKD_OK)
        goto out;
    if ((r = mk_server_config_set_ticket_keys(sc, tkeys, nt)) != MK_OK ||
        (r = mk_server_config_set_limits(sc, src->max_message,
                                         src->max_inflight,
                                         src->ticket_lifetime)) != MK_OK ||
        (r = mk_server_config_set_session_max_age(sc, src->session_max_age)) !=
            MK_OK) {
        ret = mkd_fail(d, MKD_ERR_CONFIG, "server configuration: %s",
                       mk_strerror(r));
        goto out;
    }
    *out = sc;
    sc = NULL;
    if (nkeys)
        *nkeys = nk;
    if (ntkeys)
        *ntkeys = nt;
out:
    mkd_wipe(tkeys, sizeof tkeys);
    mk_server_config_unref(sc);
    return ret;
}
