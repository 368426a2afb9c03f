/*
 * test_echo.c -- the echo backend: answers in order after its delay, and
 * free() answering what it still holds "shutdown", except what was
 * cancelled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "echo.h"

typedef struct answers {
    int n;
    mkd_backend_status status[4];
    void *token[4];
} answers;

static answers ans;

static void record_done(void *token, mkd_backend_status status,
                        const uint8_t *body, size_t len, const char *text,
                        const mkd_backend_timing *timing)
{
    (void)body;
    (void)len;
    (void)text;
    assert_non_null(timing);
    assert_int_equal(timing->worker_pid, 0);
    if (ans.n < 4) {
        ans.status[ans.n] = status;
        ans.token[ans.n] = token;
    }
    ans.n++;
}

/* The shutdown deadline frees the backend to get every outstanding
 * request answered (backend.h: free). The echo backend answers them
 * "shutdown", except what was cancelled. */
static void test_echo_free_answers(void **st)
{
    uv_loop_t loop;
    mkd_backend *b;
    mkd_request_ctx ctx;
    int tokens[3];
    (void)st;

    memset(&ans, 0, sizeof ans);
    memset(&ctx, 0, sizeof ctx);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(mkd_echo_new(&loop, 60000, &b), MKD_OK);
    for (int i = 0; i < 3; i++) {
        uint8_t *body = malloc(4);
        assert_non_null(body);
        memcpy(body, "ping", 4);
        assert_int_equal(
            b->ops->submit(b, &ctx, body, 4, record_done, &tokens[i]),
            MKD_BACKEND_OK);
    }
    b->ops->cancel(b, &tokens[1]);
    assert_int_equal(ans.n, 0);
    b->ops->free(b);
    assert_int_equal(ans.n, 2);
    assert_int_equal(ans.status[0], MKD_BACKEND_SHUTDOWN);
    assert_ptr_equal(ans.token[0], &tokens[0]);
    assert_int_equal(ans.status[1], MKD_BACKEND_SHUTDOWN);
    assert_ptr_equal(ans.token[1], &tokens[2]);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_free_answers),
    };
    return cmocka_run_group_tests_name("echo", tests, NULL, NULL);
}
