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
        cmocka_unit_test(test_keygen),
        cmocka_unit_test(test_server_config),
    };
    return cmocka_run_group_tests_name("mkd_keys", tests, NULL, NULL);
}
