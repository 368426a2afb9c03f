/*
 * client.c -- the client context: pinned keys, settings, and the cache of
 * resumable sessions shared by the connections made from it.
 *
 * The context is shared between threads, so everything mutable sits behind
 * one mutex. The libmegaki configuration is immutable once a session uses
 * it; "frozen" makes that a rule the API enforces rather than a hope.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sz_free(void *p)
{
    free(p);
}

void sz_wipe(void *p, size_t len)
{
    mk_wipe(p, len);
}

int sz_client_new(sz_client **out)
{
    sz_client *c = NULL;
    int ret, mret;

    if (out == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_client_new: out is NULL");
    *out = NULL;
    if ((c = calloc(1, sizeof *c)) == NULL) {
        ret = sz__fail(SZ_ERR_NOMEM, MK_ERR_NOMEM, "no memory for a client");
        goto out;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        c = NULL;
        ret = sz__fail(SZ_ERR_NOMEM, 0, "cannot create a mutex");
        goto out;
    }
    atomic_init(&c->refs, 1);
    c->connect_ms = SZ_DEFAULT_CONNECT_MS;
    c->io_ms = SZ_DEFAULT_IO_MS;
    c->request_ms = SZ_DEFAULT_REQUEST_MS;
    c->resume = 1;
    if ((mret = mk_client_config_new(&c->cfg, mk_env_system())) != MK_OK) {
        ret = sz__fail(sz__map_mk(mret), mret, "client configuration: %s",
                       mk_strerror(mret));
        goto out;
    }
    *out = c;
    c = NULL;
    ret = SZ_OK;
out:
    if (c != NULL)
        sz__client_unref(c);
    return ret;
}

sz_client *sz__client_ref(sz_client *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void sz__client_unref(sz_client *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    mk_client_config_unref(c->cfg);
    pthread_mutex_destroy(&c->lock);
    /* The cache holds session secrets. */
    mk_wipe(c, sizeof *c);
    free(c);
}

void sz_client_free(sz_client *c)
{
    sz__client_unref(c);
}

/* --- pins ----------------------------------------------------------------- */

/* Find the next "-----BEGIN " block at or after *pos in a PEM text; its
 * extent runs to the end of the matching "-----END ...-----" line. */
static int next_pem_block(const uint8_t *p, size_t len, size_t *pos,
                          size_t *start, size_t *end, int *is_public)
{
    static const char begin[] = "-----BEGIN ";
    static const char end_tag[] = "-----END ";
    size_t i, j;

    for (i = *pos; i + sizeof begin - 1 <= len; i++)
        if (memcmp(p + i, begin, sizeof begin - 1) == 0)
            break;
    if (i + sizeof begin - 1 > len)
        return 0;
    for (j = i + sizeof begin - 1; j + sizeof end_tag - 1 <= len; j++)
        if (memcmp(p + j, end_tag, sizeof end_tag - 1) == 0)
            break;
    if (j + sizeof end_tag - 1 > len)
        return -1; /* BEGIN without END */
    /* The END line runs to its closing dashes and the newline. */
    j += sizeof end_tag - 1;
    while (j < len && p[j] != '\n')
        j++;
    *start = i;
    *end = j;
    *pos = j;
    {
        static const char pub1[] = "-----BEGIN PUBLIC KEY-----";
        static const char pub2[] = "-----BEGIN RSA PUBLIC KEY-----";
        size_t n = j - i;
        *is_public =
            (n >= sizeof pub1 - 1 &&
             memcmp(p + i, pub1, sizeof pub1 - 1) == 0) ||
            (n >= sizeof pub2 - 1 && memcmp(p + i, pub2, sizeof pub2 - 1) == 0);
    }
    return 1;
}

/* Pin every key of key[0..len) into cfg. */
static int pin_all(mk_client_config *cfg, const uint8_t *key, size_t len,
                   size_t *count)
{
    size_t pos = 0, start = 0, end = 0;
    int is_public = 0, r, mret, n = 0;

    *count = 0;
    /* DER always starts with a SEQUENCE tag; PEM never does. */
    if (key[0] == 0x30) {
        if ((mret = mk_client_config_pin(cfg, key, len)) != MK_OK)
            return sz__fail(sz__map_mk(mret), mret, "DER key: %s",
                            mk_strerror(mret));
        *count = 1;
        return SZ_OK;
    }
    while ((r = next_pem_block(key, len, &pos, &start, &end, &is_public)) ==
           1) {
        n++;
        if (!is_public)
            return sz__fail(SZ_ERR_KEY, MK_ERR_KEY_FORMAT,
                            "PEM block %d is not a public key (pin the "
                            "server's PUBLIC KEY, never its private key)",
                            n);
        mret = mk_client_config_pin(cfg, key + start, end - start);
        if (mret != MK_OK)
            return sz__fail(mret == MK_ERR_LIMIT ? SZ_ERR_USAGE
                                                 : sz__map_mk(mret),
                            mret, "PEM block %d: %s", n, mk_strerror(mret));
    }
    if (r < 0)
        return sz__fail(SZ_ERR_KEY, MK_ERR_KEY_FORMAT,
                        "PEM block %d has no END line", n + 1);
    if (n == 0)
        return sz__fail(SZ_ERR_KEY, MK_ERR_KEY_FORMAT,
                        "neither DER nor PEM: no \"-----BEGIN\" line");
    *count = (size_t)n;
    return SZ_OK;
}

int sz_client_pin(sz_client *c, const uint8_t *key, size_t len)
{
    mk_client_config *scratch = NULL;
    size_t n = 0, before;
    int ret, mret, locked = 0;

    if (c == NULL || key == NULL || len == 0)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_client_pin: no key");
    /* Parse everything into a scratch configuration first, so that a bad
     * key anywhere in the input pins nothing at all. */
    if ((mret = mk_client_config_new(&scratch, mk_env_system())) != MK_OK) {
        ret = sz__fail(sz__map_mk(mret), mret, "%s", mk_strerror(mret));
        goto out;
    }
    if ((ret = pin_all(scratch, key, len, &n)) != SZ_OK)
        goto out;
    pthread_mutex_lock(&c->lock);
    locked = 1;
    if (c->frozen) {
        ret = sz__fail(SZ_ERR_USAGE, MK_ERR_STATE,
                       "pins must be added before the first connection");
        goto out;
    }
    before = mk_client_config_pin_count(c->cfg);
    if (before + mk_client_config_pin_count(scratch) > 16) {
        ret = sz__fail(SZ_ERR_USAGE, MK_ERR_LIMIT, "at most 16 pinned keys");
        goto out;
    }
    /* Parsed once already: this cannot fail on the format. */
    if ((ret = pin_all(c->cfg, key, len, &n)) != SZ_OK)
        goto out;
    ret = SZ_OK;
out:
    if (locked)
        pthread_mutex_unlock(&c->lock);
    mk_client_config_unref(scratch);
    return ret;
}

/* A file-level failure: the message names the file and keeps errno. */
static int file_fail(int err, int sys_errno, const char *path, const char *what)
{
    sz_error_info ei;

    sz__info(&ei, err, 0, "%s: %s", path, what);
    ei.sys_errno = sys_errno;
    return sz__set_error(&ei);
}

int sz_client_pin_file(sz_client *c, const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = NULL;
    int ret;

    if (c == NULL || path == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_client_pin_file: no path");
    if ((f = fopen(path, "rb")) == NULL) {
        int e = errno;
        ret = file_fail(SZ_ERR_KEY, e, path, strerror(e));
        goto out;
    }
    /* Key files are small; refuse anything absurd rather than read it. */
    for (;;) {
        size_t n;
        if (len == cap) {
            uint8_t *p;
            if (cap >= 1u << 20) {
                ret = file_fail(SZ_ERR_KEY, 0, path, "larger than 1 MiB");
                goto out;
            }
            cap = cap ? cap * 2 : 4096;
            if ((p = realloc(buf, cap)) == NULL) {
                ret = file_fail(SZ_ERR_NOMEM, ENOMEM, path, "no memory");
                goto out;
            }
            buf = p;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        ret = file_fail(SZ_ERR_KEY, e, path, strerror(e));
        goto out;
    }
    if (len == 0) {
        ret = file_fail(SZ_ERR_KEY, 0, path, "empty file");
        goto out;
    }
    if ((ret = sz_client_pin(c, buf, len)) != SZ_OK) {
        /* Say which file the complaint is about. */
        sz_error_info ei;
        char text[sizeof ei.text];
        sz_last_error(&ei);
        /* Bounded so the result always fits. */
        snprintf(text, sizeof text, "%.200s: %.800s", path, ei.text);
        memcpy(ei.text, text, sizeof ei.text);
        sz__set_error(&ei);
    }
out:
    if (f != NULL)
        fclose(f);
    free(buf);
    return ret;
}

/* --- settings ------------------------------------------------------------ */

int sz_client_set_timeouts(sz_client *c, uint32_t connect_ms, uint32_t io_ms,
                           uint32_t request_ms)
{
    if (c == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_client_set_timeouts: NULL");
    pthread_mutex_lock(&c->lock);
    c->connect_ms = connect_ms;
    c->io_ms = io_ms;
    c->request_ms = request_ms;
    pthread_mutex_unlock(&c->lock);
    return SZ_OK;
}

int sz_client_set_resumption(sz_client *c, int enable)
{
    if (c == NULL)
        return sz__fail(SZ_ERR_USAGE, 0, "sz_client_set_resumption: NULL");
    pthread_mutex_lock(&c->lock);
    c->resume = enable != 0;
    if (!c->resume)
        mk_wipe(c->cache, sizeof c->cache);
    pthread_mutex_unlock(&c->lock);
    return SZ_OK;
}

void sz_client_forget_sessions(sz_client *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    mk_wipe(c->cache, sizeof c->cache);
    pthread_mutex_unlock(&c->lock);
}

int sz__client_begin(sz_client *c, sz_settings *st)
{
    int ret = SZ_OK;

    pthread_mutex_lock(&c->lock);
    if (mk_client_config_pin_count(c->cfg) == 0) {
        ret = sz__fail(SZ_ERR_USAGE, 0,
                       "no pinned key: call sz_client_pin() first");
    } else {
        c->frozen = 1;
        st->connect_ms = c->connect_ms;
        st->io_ms = c->io_ms;
        st->request_ms = c->request_ms;
        st->resume = c->resume;
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/* --- session cache ---------------------------------------------------------
 * Small and linear on purpose: a client talks to a handful of peers. */

static sz_cache_entry *cache_find(sz_client *c, const char *peer)
{
    for (size_t i = 0; i < SZ_CACHE_MAX; i++)
        if (c->cache[i].len != 0 && strcmp(c->cache[i].peer, peer) == 0)
            return &c->cache[i];
    return NULL;
}

size_t sz__cache_get(sz_client *c, const char *peer, uint8_t *blob, size_t cap)
{
    sz_cache_entry *e;
    size_t n = 0;

    pthread_mutex_lock(&c->lock);
    if (c->resume && (e = cache_find(c, peer)) != NULL && e->len <= cap) {
        memcpy(blob, e->blob, e->len);
        n = e->len;
        e->stamp = ++c->tick;
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

void sz__cache_put(sz_client *c, const char *peer, const uint8_t *blob,
                   size_t len)
{
    sz_cache_entry *e;

    if (len == 0 || len > MK_SESSION_BLOB_MAX || strlen(peer) >= SZ_PEER_MAX)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->resume) {
        if ((e = cache_find(c, peer)) == NULL) {
            /* A free slot, or else the least recently used one. */
            e = &c->cache[0];
            for (size_t i = 0; i < SZ_CACHE_MAX; i++) {
                if (c->cache[i].len == 0) {
                    e = &c->cache[i];
                    break;
                }
                if (c->cache[i].stamp < e->stamp)
                    e = &c->cache[i];
            }
            mk_wipe(e, sizeof *e);
            memcpy(e->peer, peer, strlen(peer) + 1);
        }
        memcpy(e->blob, blob, len);
        if (len < e->len)
            mk_wipe(e->blob + len, e->len - len);
        e->len = len;
        e->stamp = ++c->tick;
    }
    pthread_mutex_unlock(&c->lock);
}

void sz__cache_drop(sz_client *c, const char *peer)
{
    sz_cache_entry *e;

    pthread_mutex_lock(&c->lock);
    if ((e = cache_find(c, peer)) != NULL)
        mk_wipe(e, sizeof *e);
    pthread_mutex_unlock(&c->lock);
}
