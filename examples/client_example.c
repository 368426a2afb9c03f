/*
 * client_example.c -- the whole libsazukari API in one page.
 *   client_example HOST PORT SERVER_PUBLIC_KEY.pem
 */
#include <stdio.h>
#include <stdlib.h>

#include "sazukari.h"

static int fail(const char *what, int err)
{
    sz_error_info ei;
    sz_last_error(&ei); /* details of the failure on this thread */
    fprintf(stderr, "%s: %s (%s): %s\n", what, sz_strerror(err),
            sz_err_name(err), ei.text);
    return 1;
}

int main(int argc, char **argv)
{
    uint8_t *resp = NULL, blob[SZ_SESSION_MAX];
    size_t len = 0, blen = 0;
    uint32_t ids[3], id;
    sz_client *client = NULL;
    sz_conn *conn = NULL;
    sz_conn_info info;
    int r, ret = 1;

    if (argc != 4)
        return fprintf(stderr, "usage: %s HOST PORT KEY.pem\n", argv[0]), 2;
    if ((r = sz_client_new(&client)) != SZ_OK ||
        (r = sz_client_pin_file(client, argv[3])) != SZ_OK || /* the pin */
        (r = sz_client_set_timeouts(client, 5000, 10000, 30000)) != SZ_OK)
        return fail("client", r);
    if ((r = sz_connect(client, argv[1], (uint16_t)atoi(argv[2]), NULL, 0,
                        &conn)) != SZ_OK) {
        ret = fail("connect", r); /* SZ_ERR_PIN: not our server */
        goto out;
    }
    /* One request, one response. */
    if ((r = sz_request(conn, (const uint8_t *)"hello", 5, &resp, &len)))
        goto req_failed;
    printf("response: %.*s\n", (int)len, (const char *)resp);
    sz_free(resp);
    /* Several in flight; collect in completion order. */
    for (int i = 0; i < 3; i++)
        if ((r = sz_submit(conn, (const uint8_t *)"ping", 4, &ids[i])))
            goto req_failed;
    for (int i = 0; i < 3; i++) {
        if ((r = sz_poll(conn, -1, &id, &resp, &len)) != SZ_OK)
            goto req_failed; /* id says which request, 0: the connection */
        printf("request %u: %.*s\n", id, (int)len, (const char *)resp);
        sz_free(resp);
    }
    /* Keep the session (SECRET) to resume after a restart. */
    if (sz_conn_export_session(conn, blob, sizeof blob, &blen) != SZ_OK)
        blen = 0;
    sz_conn_close(conn); /* authenticated close */
    conn = NULL;
    if ((r = sz_connect(client, argv[1], (uint16_t)atoi(argv[2]),
                        blen ? blob : NULL, blen, &conn)) != SZ_OK) {
        ret = fail("reconnect", r);
        goto out;
    }
    sz_conn_get_info(conn, &info);
    printf("resumed: %s\n", info.resumed ? "yes" : "no");
    ret = 0;
    goto out;
req_failed:
    ret = fail("request", r);
out:
    sz_wipe(blob, sizeof blob);
    sz_conn_close(conn);
    sz_client_free(client);
    return ret;
}
