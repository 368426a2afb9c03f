/*
 * fuzz_common.c -- see fuzz_common.h.
 */
#include "fuzz_common.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MK_FUZZ_KEYDIR
#define MK_FUZZ_KEYDIR "tests/vectors/keys"
#endif

static fz_fixture fixture;
static int fixture_ready;

uint8_t *fz_key_file(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", MK_FUZZ_KEYDIR, name);
    return tl_load(path, len); /* exits if missing */
}

mk_server_key *fz_server_key(const char *name)
{
    size_t len;
    uint8_t *pem = fz_key_file(name, &len);
    mk_server_key *k = NULL;
    if (mk_server_key_load_pem(&k, pem, len) != MK_OK)
        abort();
    free(pem);
    return k;
}

mk_server_config *fz_server_config(const mk_env *env, const char *key,
                                   const char *tk_names, uint8_t fill)
{
    mk_ticket_key tk[2];
    size_t n = 0;
    mk_server_config *c = NULL;

    if (mk_server_config_new(&c, env) != MK_OK ||
        mk_server_config_add_key(c, fz_server_key(key)) != MK_OK)
        abort();
    memset(tk, 0, sizeof tk);
    for (; tk_names[n] != '\0' && n < 2; n++) {
        memcpy(tk[n].name, "fuzz-ticket-key-", 16);
        tk[n].name[15] = (uint8_t)tk_names[n];
        memset(tk[n].secret, fill + tk_names[n], sizeof tk[n].secret);
    }
    if (n && mk_server_config_set_ticket_keys(c, tk, n) != MK_OK)
        abort();
    return c;
}

static void pin(mk_client_config *c, const char *name)
{
    size_t len;
    uint8_t *pem = fz_key_file(name, &len);
    if (mk_client_config_pin(c, pem, len) != MK_OK)
        abort();
    free(pem);
}

void fz_reset(fz_fixture *f)
{
    tu_env_init(&f->senv, "megaki fuzz server");
    tu_env_init(&f->cenv, "megaki fuzz client");
}

static void fixture_free(void)
{
    if (!fixture_ready)
        return;
    mk_server_config_unref(fixture.sc);
    mk_server_config_unref(fixture.sc_other);
    mk_server_config_unref(fixture.sc_tk);
    mk_client_config_unref(fixture.cc);
    mk_wipe(fixture.blob, sizeof fixture.blob);
    fixture_ready = 0;
}

fz_fixture *fz_fixture_get(void)
{
    fz_fixture *f = &fixture;
    mk_session *c = NULL, *s = NULL;
    tu_pair p;

    if (fixture_ready)
        return f;
    memset(f, 0, sizeof *f);
    fz_reset(f);
    f->sc = fz_server_config(&f->senv.env, "server2048.pem", "AB", 0x10);
    f->sc_other = fz_server_config(&f->senv.env, "other2048.pem", "A", 0x10);
    f->sc_tk = fz_server_config(&f->senv.env, "server2048.pem", "C", 0x10);
    if (mk_client_config_new(&f->cc, &f->cenv.env) != MK_OK)
        abort();
    pin(f->cc, "server2048.pub.pem");
    pin(f->cc, "other2048.pub.pem");

    /* One full handshake for the session blob. */
    if (mk_session_new_client(&c, f->cc, NULL, 0) != MK_OK ||
        mk_session_new_server(&s, f->sc) != MK_OK)
        abort();
    tu_pair_init(&p, c, s);
    if (tu_connect(&p) != 0 ||
        mk_session_export(c, f->blob, sizeof f->blob, &f->blob_len) != MK_OK)
        abort();
    tu_pair_free(&p);
    fz_reset(f);
    fixture_ready = 1;
    atexit(fixture_free);
    return f;
}

mk_session *fz_client_hello(fz_fixture *f, int resume, uint8_t *out,
                            size_t *out_len)
{
    mk_session *c = NULL;

    *out_len = 0;
    if (mk_session_new_client(&c, f->cc, resume ? f->blob : NULL,
                              resume ? f->blob_len : 0) != MK_OK)
        abort();
    if (mk_client_hello(c, out, MK_HANDLE_OUT_LEN, out_len) != MK_OK)
        abort();
    return c;
}

int fz_record_pair(fz_fixture *f, tu_pair *p)
{
    mk_session *c = NULL, *s = NULL;
    tu_msg *m;
    int rc = mk_session_new_client(&c, f->cc, f->blob, f->blob_len);
    int rs = mk_session_new_server(&s, f->sc);

    tu_pair_init(p, c, s); /* the caller frees it in every case */
    if (rc != MK_OK || rs != MK_OK)
        return -1;
    if (tu_connect(p) != 0 || !p->c.established || !p->srv.established)
        return -1;
    if (tu_send(p, &p->c, FZ_REQ_ID, (const uint8_t *)"hello", 5) != MK_OK ||
        tu_pump(p) != 0)
        return -1;
    m = tu_find_msg(&p->srv, FZ_REQ_ID);
    if (m == NULL || !m->complete)
        return -1;
    tu_clear_msgs(&p->srv);
    return 0;
}
