/*
 * sztest.h -- helpers shared by the libsazukari cmocka tests (included
 * after <cmocka.h>).
 */
#ifndef SZ_SZTEST_H
#define SZ_SZTEST_H

#include <stdlib.h>
#include <string.h>

#include "sazukari.h"
#include "testserver.h"

#define KEYDIR "tests/vectors/keys/"

/* A client pinning the given public key files (NULL-terminated). */
static inline sz_client *client_with(const char *first, ...)
{
    sz_client *c = NULL;
    va_list ap;
    const char *k;

    assert_int_equal(sz_client_new(&c), SZ_OK);
    va_start(ap, first);
    for (k = first; k != NULL; k = va_arg(ap, const char *))
        assert_int_equal(sz_client_pin_file(c, k), SZ_OK);
    va_end(ap);
    return c;
}

static inline sz_client *good_client(void)
{
    return client_with(KEYDIR "server2048.pub.pem", NULL);
}

static inline sz_conn *connect_ok(sz_client *c, ts_server *s)
{
    sz_conn *conn = NULL;
    int r = sz_connect(c, "127.0.0.1", ts_port(s), NULL, 0, &conn);
    if (r != SZ_OK) {
        sz_error_info ei;
        sz_last_error(&ei);
        fail_msg("connect: %s: %s", sz_err_name(r), ei.text);
    }
    return conn;
}

/* Send a string request, expect an exact string response. */
static inline void expect_echo(sz_conn *conn, const char *req, const char *want)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    int r = sz_request(conn, (const uint8_t *)req, strlen(req), &resp, &len);
    if (r != SZ_OK) {
        sz_error_info ei;
        sz_last_error(&ei);
        fail_msg("request '%s': %s: %s", req, sz_err_name(r), ei.text);
    }
    assert_int_equal(len, strlen(want));
    assert_memory_equal(resp, want, len);
    sz_free(resp);
}

/* Send a string request, expect failure with code err. */
static inline void expect_fail(sz_conn *conn, const char *req, int err)
{
    uint8_t *resp = NULL;
    size_t len = 0;
    int r = sz_request(conn, (const uint8_t *)req, strlen(req), &resp, &len);
    if (r != err)
        fail_msg("request '%s': got %s, want %s", req, sz_err_name(r),
                 sz_err_name(err));
    assert_null(resp);
    assert_int_equal(len, 0);
}

#endif
