/*
 * test_keys.c -- the ticket-key file (created 0600, idempotent create,
 * rotation, malformed files refused with the line), key generation (the
 * files beside the key, refusing to overwrite one), and the server
 * configuration built from them and the limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "mkd_util.h"
#include "testlib.h"

/* --- ticket-key file --------------------------------------------------- */

static void test_ticket_file(void **st)
{
    char dir[] = "/tmp/mkdu.XXXXXX", path[128];
    mkd_diag d;
    mk_ticket_key k1[MK_TICKET_KEYS_MAX], k2[MK_TICKET_KEYS_MAX];
    size_t n1 = 0, n2 = 0, n = 0;
    struct stat sb;
    (void)st;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.keys", dir);
    assert_int_equal(keys_ticket_file_update(path, 0, 4, &n, &d), MKD_OK);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(
        keys_ticket_file_read(path, k1, MK_TICKET_KEYS_MAX, &n1, &d), MKD_OK);
    assert_int_equal(n1, 1);
    /* Create is idempotent; rotate prepends and keeps the old one. */
    assert_int_equal(keys_ticket_file_update(path, 0, 4, &n, &d), MKD_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(keys_ticket_file_update(path, 1, 4, &n, &d), MKD_OK);
    assert_int_equal(
        keys_ticket_file_read(path, k2, MK_TICKET_KEYS_MAX, &n2, &d), MKD_OK);
    assert_int_equal(n2, 4);
    assert_memory_not_equal(k2[0].name, k1[0].name, 16);
    /* Malformed files are refused with the line. */
    {
        FILE *f = fopen(path, "w");
        fputs("# x\n00112233445566778899aabbccddeeff 0011\n", f);
        fclose(f);
        assert_int_equal(
            keys_ticket_file_read(path, k2, MK_TICKET_KEYS_MAX, &n2, &d),
            MKD_ERR_TICKET_FILE);
        assert_non_null(strstr(d.text, ":2:"));
        f = fopen(path, "w");
        fputs("# only a comment\n", f);
        fclose(f);
        assert_int_equal(
            keys_ticket_file_read(path, k2, MK_TICKET_KEYS_MAX, &n2, &d),
            MKD_ERR_TICKET_FILE);
    }
    mkd_wipe(k1, sizeof k1);
    mkd_wipe(k2, sizeof k2);
    unlink(path);
    rmdir(dir);
}

/* The file's keys as the daemon loads them (the issuing key first). */
static size_t load(const char *path, mk_ticket_key *k)
{
    mkd_diag d;
    size_t n = 0;

    assert_int_equal(keys_ticket_file_read(path, k, MK_TICKET_KEYS_MAX, &n, &d),
                     MKD_OK);
    return n;
}

static int parse_text(const char *text, mk_ticket_key *k, size_t *n,
                      mkd_diag *d)
{
    return keys_ticket_parse((const uint8_t *)text, strlen(text), "t", k,
                             MK_TICKET_KEYS_MAX, n, d);
}

/* Two-phase rotation: a staged key accepts without issuing until it is
 * promoted; the old issuer then still accepts. */
static void test_ticket_stage_promote(void **st)
{
    char dir[] = "/tmp/mkdu.XXXXXX", path[128];
    mk_ticket_key a[MK_TICKET_KEYS_MAX], b[MK_TICKET_KEYS_MAX];
    mkd_diag d;
    size_t n = 0;
    char *text;
    (void)st;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.keys", dir);
    /* Nothing to stage into or promote before the file exists. */
    assert_int_equal(
        keys_ticket_file_update(path, KEYS_TICKET_STAGE, 4, &n, &d),
        MKD_ERR_TICKET_FILE);
    assert_int_equal(
        keys_ticket_file_update(path, KEYS_TICKET_CREATE, 4, &n, &d), MKD_OK);
    assert_int_equal(load(path, a), 1);
    /* Phase 1: the old key still issues; the new one is there, marked. */
    assert_int_equal(
        keys_ticket_file_update(path, KEYS_TICKET_STAGE, 4, &n, &d), MKD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(load(path, b), 2);
    assert_memory_equal(b[0].name, a[0].name, 16);
    assert_memory_not_equal(b[1].name, a[0].name, 16);
    text = tl_read_file(path, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, " staged\n"));
    assert_non_null(strstr(text, "# megaki ticket keys v2"));
    free(text);
    /* One staged key at a time; staging needs room for the old one. */
    assert_int_equal(
        keys_ticket_file_update(path, KEYS_TICKET_STAGE, 4, &n, &d),
        MKD_ERR_TICKET_FILE);
    assert_non_null(strstr(d.text, "promote"));
    /* Phase 2: the staged key issues, the old one accepts. */
    memcpy(&a[1], &b[1], sizeof a[1]); /* the staged one */
    assert_int_equal(
        keys_ticket_file_update(path, KEYS_TICKET_PROMOTE, 4, &n, &d), MKD_OK);
    assert_int_equal(load(path, b), 2);
    assert_memory_equal(b[0].name, a[1].name, 16);
    assert_memory_equal(b[1].name, a[0].name, 16);
    assert_int_equal(
        keys_ticket_file_update(path, KEYS_TICKET_PROMOTE, 4, &n, &d),
        MKD_ERR_TICKET_FILE);
    assert_non_null(strstr(d.text, "--stage"));
    assert_int_equal(
        keys_ticket_file_update(path, KEYS_TICKET_STAGE, 1, &n, &d),
        MKD_ERR_CONFIG);
    /* Cycles keep at most keep keys: the issuer and the one before. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            keys_ticket_file_update(path, KEYS_TICKET_STAGE, 2, &n, &d),
            MKD_OK);
        assert_int_equal(load(path, a), 2);
        assert_memory_equal(a[0].name, b[0].name, 16); /* still issues */
        assert_int_equal(
            keys_ticket_file_update(path, KEYS_TICKET_PROMOTE, 2, &n, &d),
            MKD_OK);
        assert_int_equal(load(path, b), 2);
        assert_memory_equal(b[1].name, a[0].name, 16); /* still accepts */
    }
    mkd_wipe(a, sizeof a);
    mkd_wipe(b, sizeof b);
    unlink(path);
    rmdir(dir);
}

static void test_ticket_staged_parse(void **st)
{
    static const char *k1 = "00112233445566778899aabbccddeeff "
                            "000102030405060708090a0b0c0d0e0f"
                            "101112131415161718191a1b1c1d1e1f";
    static const char *k2 = "ffeeddccbbaa99887766554433221100 "
                            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
                            "e0e1e2e3e4e5e6e7e8e9eaebecedeeef";
    mk_ticket_key k[MK_TICKET_KEYS_MAX];
    char text[512];
    mkd_diag d;
    size_t n = 0;
    (void)st;

    /* A staged key first: the next one issues (moves to the front). */
    snprintf(text, sizeof text, "# v2\n%s  staged \n%s\n", k2, k1);
    assert_int_equal(parse_text(text, k, &n, &d), MKD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(k[0].name[0], 0x00);
    assert_int_equal(k[1].name[0], 0xff);
    /* Only staged keys: nothing would issue. */
    snprintf(text, sizeof text, "%s staged\n", k2);
    assert_int_equal(parse_text(text, k, &n, &d), MKD_ERR_TICKET_FILE);
    assert_non_null(strstr(d.text, "staged"));
    /* Anything else after the secret is refused, with the line. */
    snprintf(text, sizeof text, "%s\n%s stage\n", k1, k2);
    assert_int_equal(parse_text(text, k, &n, &d), MKD_ERR_TICKET_FILE);
    assert_non_null(strstr(d.text, ":2:"));
    snprintf(text, sizeof text, "%s\n%s staged x\n", k1, k2);
    assert_int_equal(parse_text(text, k, &n, &d), MKD_ERR_TICKET_FILE);
    snprintf(text, sizeof text, "%s0\n", k1); /* 65 hex digits */
    assert_int_equal(parse_text(text, k, &n, &d), MKD_ERR_TICKET_FILE);
    /* A version 1 file reads as before. */
    snprintf(text, sizeof text, "# megaki ticket keys v1\n%s\n%s\n", k2, k1);
    assert_int_equal(parse_text(text, k, &n, &d), MKD_OK);
    assert_int_equal(k[0].name[0], 0xff);
    mkd_wipe(k, sizeof k);
}

/* --- key generation --------------------------------------------------- */

/* Remove what keys_generate wrote into dir as server.pem, and dir. */
static void remove_generated(const char *dir)
{
    static const char *const names[] = {"server.pem", "server.pub.pem",
                                        "server.pub.h"};
    char path[160];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_keygen(void **st)
{
    char dir[] = "/tmp/mkdk.XXXXXX", path[128], other[160], id[KEYS_ID_HEX];
    char desc[8192];
    mkd_diag d;
    struct stat sb;
    (void)st;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/server.pem", dir);
    assert_int_equal(keys_generate(path, 2048, id, &d), MKD_OK);
    assert_int_equal(strlen(id), KEYS_ID_HEX - 1);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(other, sizeof other, "%s/server.pub.pem", dir);
    assert_int_equal(stat(other, &sb), 0);
    snprintf(other, sizeof other, "%s/server.pub.h", dir);
    assert_int_equal(stat(other, &sb), 0);
    /* The description names the same key id. */
    assert_int_equal(keys_describe(path, desc, sizeof desc, &d), MKD_OK);
    assert_non_null(strstr(desc, id));
    assert_non_null(strstr(desc, "-----BEGIN PUBLIC KEY-----"));
    /* A key is never overwritten; a buffer too small is said so. */
    assert_int_equal(keys_generate(path, 2048, NULL, &d), MKD_ERR_EXISTS);
    assert_int_equal(keys_describe(path, desc, 64, &d), MKD_ERR_BUFFER);
    /* A missing key file names its path. */
    snprintf(other, sizeof other, "%s/none.pem", dir);
    assert_int_equal(keys_describe(other, desc, sizeof desc, &d),
                     MKD_ERR_KEY_FILE);
    assert_non_null(strstr(d.text, "none.pem"));
    remove_generated(dir);
}

/* --- the server configuration ------------------------------------------ */

/* keys_server_config hands every limit to libmegaki, session_max_age
 * included: a value libmegaki refuses is a configuration error. */
static void test_server_config(void **st)
{
    char dir[] = "/tmp/mkdc.XXXXXX", pem[128], tk[128];
    keys_source src;
    mk_server_config *sc = NULL;
    size_t nk = 0, nt = 0, n = 0;
    mkd_diag d;
    (void)st;

    assert_non_null(mkdtemp(dir));
    snprintf(pem, sizeof pem, "%s/server.pem", dir);
    snprintf(tk, sizeof tk, "%s/t.keys", dir);
    assert_int_equal(keys_generate(pem, 2048, NULL, &d), MKD_OK);
    assert_int_equal(keys_ticket_file_update(tk, 0, 4, &n, &d), MKD_OK);
    memset(&src, 0, sizeof src);
    src.key_files = pem;
    src.ticket_key_file = tk;
    src.max_message = MK_MESSAGE_MAX_DEFAULT;
    src.max_inflight = MK_INFLIGHT_DEFAULT;
    src.ticket_lifetime = MK_TICKET_LIFETIME_DEFAULT;
    src.session_max_age = MK_SESSION_MAX_AGE_DEFAULT;
    assert_int_equal(keys_server_config(&src, &sc, &nk, &nt, &d), MKD_OK);
    assert_int_equal(nk, 1);
    assert_int_equal(nt, 1);
    mk_server_config_unref(sc);
    sc = NULL;
    src.session_max_age = MK_SESSION_MAX_AGE_LIMIT + 1;
    assert_int_equal(keys_server_config(&src, &sc, &nk, &nt, &d),
                     MKD_ERR_CONFIG);
    assert_null(sc);
    assert_non_null(strstr(d.text, "server configuration"));
    src.session_max_age = 0;
    assert_int_equal(keys_server_config(&src, &sc, &nk, &nt, &d),
                     MKD_ERR_CONFIG);
    unlink(tk);
    remove_generated(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ticket_file),
        cmocka_unit_test(test_ticket_stage_promote),
        cmocka_unit_test(test_ticket_staged_parse),
        cmocka_unit_test(test_keygen),
        cmocka_unit_test(test_server_config),
    };
    return cmocka_run_group_tests_name("mkd_keys", tests, NULL, NULL);
}
