/*
 * test_ipc.c -- the worker protocol's frame codec: the shared vectors
 * (tests/vectors/worker-ipc.txt, also run by Arcangelo's PHP tests), truncation at
 * every byte, limits, and the encoders' argument checks; and the level of
 * worker output lines (tests/vectors/worker-output.txt, shared likewise).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mkd_log.h"
#include "pegasus_ipc.h"

/* Tests run from the project root. */
#define VEC_FILE "tests/vectors/worker-ipc.txt"

typedef struct vec {
    char name[64];
    char expect[16];
    uint8_t *bytes;
    size_t len;
} vec;

static int unhex(const char *s, uint8_t **out, size_t *len)
{
    size_t n = strlen(s);
    uint8_t *b;

    if (n % 2 != 0)
        return -1;
    b = malloc(n / 2 + 1);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            free(b);
            return -1;
        }
        b[i] = (uint8_t)v;
    }
    *out = b;
    *len = n / 2;
    return 0;
}

static size_t load_vectors(vec **out)
{
    FILE *f = fopen(VEC_FILE, "r");
    static char line[8192];
    vec *v = NULL;
    size_t n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL) {
        char name[64], expect[16];
        static char hex[8192];
        vec *nv;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        assert_int_equal(sscanf(line, "%63s %15s %8191s", name, expect, hex),
                         3);
        nv = realloc(v, (n + 1) * sizeof *v);
        assert_non_null(nv);
        v = nv;
        memset(&v[n], 0, sizeof v[n]);
        memcpy(v[n].name, name, sizeof name);
        memcpy(v[n].expect, expect, sizeof expect);
        assert_int_equal(unhex(hex, &v[n].bytes, &v[n].len), 0);
        n++;
    }
    assert_int_equal(fclose(f), 0);
    *out = v;
    return n;
}

static void free_vectors(vec *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].bytes);
    free(v);
}

static int expect_code(const char *e)
{
    if (strcmp(e, "ok") == 0 || strcmp(e, "ok_ext") == 0)
        return MKD_OK;
    if (strcmp(e, "need") == 0)
        return MKD_WANT_MORE;
    if (strcmp(e, "too_large") == 0)
        return MKD_ERR_FRAME_TOO_LARGE;
    if (strcmp(e, "type") == 0)
        return MKD_ERR_FRAME_TYPE;
    if (strcmp(e, "malformed") == 0)
        return MKD_ERR_FRAME_MALFORMED;
    fail_msg("unknown expectation %s", e);
    return 99;
}

/* Re-encode a decoded frame with the encoders. */
static size_t reencode(const pegasus_ipc_frame *f, uint8_t *out, size_t cap)
{
    size_t n = 0;
    char sw[PEGASUS_IPC_SOFTWARE_MAX + 1];

    switch (f->type) {
    case PEGASUS_IPC_HELLO:
        memcpy(sw, f->data, f->data_len);
        sw[f->data_len] = '\0';
        n = pegasus_ipc_encode_hello(out, cap, f->version, f->pid, sw);
        break;
    case PEGASUS_IPC_REQUEST:
        n = pegasus_ipc_encode_request_head(out, cap, &f->ctx, f->data_len);
        break;
    case PEGASUS_IPC_RESPONSE:
    case PEGASUS_IPC_APP_ERROR:
        n = pegasus_ipc_encode_answer_head(out, cap, f->type, f->tag, f->flags,
                                           f->data_len);
        break;
    case PEGASUS_IPC_SHUTDOWN:
        return pegasus_ipc_encode_shutdown(out, cap);
    default:
        fail_msg("unexpected type %u", f->type);
    }
    assert_true(n > 0);
    if (f->type != PEGASUS_IPC_HELLO) {
        assert_true(n + f->data_len <= cap);
        memcpy(out + n, f->data, f->data_len);
        n += f->data_len;
    }
    return n;
}

static void test_vectors(void **state)
{
    vec *v;
    size_t n = load_vectors(&v);
    static uint8_t buf[4096];

    (void)state;
    assert_true(n >= 25);
    for (size_t i = 0; i < n; i++) {
        pegasus_ipc_frame f;
        size_t used = 12345;
        int want = expect_code(v[i].expect);
        int got = pegasus_ipc_parse(v[i].bytes, v[i].len, 0, &f, &used);
        if (got != want)
            fail_msg("%s: got %s, want %s", v[i].name, mkd_strerror(got),
                     v[i].expect);
        if (got == MKD_OK) {
            assert_int_equal(used, v[i].len);
            if (strcmp(v[i].expect, "ok") == 0) {
                size_t m = reencode(&f, buf, sizeof buf);
                if (m != v[i].len || memcmp(buf, v[i].bytes, m) != 0)
                    fail_msg("%s: re-encoding differs", v[i].name);
            }
        } else if (got != MKD_WANT_MORE) {
            assert_int_equal(used, 0);
        }
    }
    free_vectors(v, n);
}

static void test_fields(void **state)
{
    vec *v;
    size_t n = load_vectors(&v);
    int seen = 0;

    (void)state;
    for (size_t i = 0; i < n; i++) {
        pegasus_ipc_frame f;
        size_t used;
        if (strcmp(v[i].name, "request_v4_early") == 0) {
            assert_int_equal(
                pegasus_ipc_parse(v[i].bytes, v[i].len, 0, &f, &used), MKD_OK);
            assert_int_equal(f.type, PEGASUS_IPC_REQUEST);
            assert_true(f.ctx.tag == 0x0102030405060708ull);
            assert_int_equal(f.ctx.conn_id, 99);
            assert_int_equal(f.ctx.request_id, 7);
            assert_int_equal(f.ctx.port, 51234);
            assert_int_equal(f.ctx.flags, PEGASUS_IPC_REQ_EARLY);
            assert_string_equal(f.ctx.addr, "192.0.2.1");
            assert_int_equal(f.ctx.session_id[15], 15);
            assert_int_equal(f.data_len, 5);
            assert_memory_equal(f.data, "hello", 5);
            seen++;
        } else if (strcmp(v[i].name, "request_ctx_ext") == 0) {
            assert_int_equal(
                pegasus_ipc_parse(v[i].bytes, v[i].len, 0, &f, &used), MKD_OK);
            assert_string_equal(f.ctx.addr, "10.0.0.1");
            assert_int_equal(f.data_len, 4);
            assert_memory_equal(f.data, "body", 4);
            seen++;
        } else if (strcmp(v[i].name, "hello_v1") == 0) {
            assert_int_equal(
                pegasus_ipc_parse(v[i].bytes, v[i].len, 0, &f, &used), MKD_OK);
            assert_int_equal(f.version, 1);
            assert_int_equal(f.pid, 12345);
            assert_int_equal(f.data_len, strlen("arcangelo/1 php/8.2"));
            seen++;
        } else if (strcmp(v[i].name, "response_exiting_empty") == 0) {
            assert_int_equal(
                pegasus_ipc_parse(v[i].bytes, v[i].len, 0, &f, &used), MKD_OK);
            assert_int_equal(f.flags, PEGASUS_IPC_ANS_EXITING);
            assert_int_equal(f.tag, 9);
            assert_int_equal(f.data_len, 0);
            seen++;
        }
    }
    assert_int_equal(seen, 4);
    free_vectors(v, n);
}

/* Every proper prefix of a valid frame is incomplete, never an error,
 * and once the header is in, the full size is announced. */
static void test_truncation(void **state)
{
    vec *v;
    size_t n = load_vectors(&v);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(v[i].expect, "ok", 2) != 0)
            continue;
        for (size_t k = 0; k < v[i].len; k++) {
            pegasus_ipc_frame f;
            size_t used = 777;
            /* A copy of exactly k bytes, so ASan sees any overread. */
            uint8_t *cut = malloc(k ? k : 1);
            assert_non_null(cut);
            memcpy(cut, v[i].bytes, k);
            assert_int_equal(pegasus_ipc_parse(cut, k, 0, &f, &used),
                             MKD_WANT_MORE);
            assert_int_equal(used, k < PEGASUS_IPC_HEADER ? 0 : v[i].len);
            free(cut);
        }
    }
    free_vectors(v, n);
}

static void test_limits_and_concat(void **state)
{
    uint8_t buf[256];
    size_t a, b, used;
    pegasus_ipc_frame f;

    (void)state;
    a = pegasus_ipc_encode_answer_head(buf, sizeof buf, PEGASUS_IPC_RESPONSE, 1,
                                       0, 100);
    assert_int_equal(a, PEGASUS_IPC_HEADER + PEGASUS_IPC_ANSWER_FIXED);
    /* The limit applies to the length field, from the header alone. */
    assert_int_equal(pegasus_ipc_parse(buf, a, 108, &f, &used),
                     MKD_ERR_FRAME_TOO_LARGE);
    assert_int_equal(pegasus_ipc_parse(buf, a, 109, &f, &used), MKD_WANT_MORE);
    assert_int_equal(used, a + 100);

    /* Two frames back to back: the first is consumed alone. */
    a = pegasus_ipc_encode_shutdown(buf, sizeof buf);
    b = pegasus_ipc_encode_hello(buf + a, sizeof buf - a, 1, 77, "x");
    assert_true(a == 5 && b == 14);
    assert_int_equal(pegasus_ipc_parse(buf, a + b, 0, &f, &used), MKD_OK);
    assert_int_equal(f.type, PEGASUS_IPC_SHUTDOWN);
    assert_int_equal(used, a);
    assert_int_equal(pegasus_ipc_parse(buf + used, a + b - used, 0, &f, &used),
                     MKD_OK);
    assert_int_equal(f.type, PEGASUS_IPC_HELLO);
    assert_int_equal(f.pid, 77);

    assert_int_equal(pegasus_ipc_parse(NULL, 0, 0, &f, &used), MKD_WANT_MORE);
    assert_int_equal(pegasus_ipc_parse(buf, 5, 0, NULL, &used), MKD_ERR_ARG);
}

static void test_encoder_checks(void **state)
{
    uint8_t buf[PEGASUS_IPC_REQ_HEAD_MAX];
    pegasus_ipc_ctx c;
    char sw[300];

    (void)state;
    memset(&c, 0, sizeof c);
    c.addr_len = PEGASUS_IPC_ADDR_MAX;
    memset(c.addr, '1', PEGASUS_IPC_ADDR_MAX);
    /* The longest head fits the documented bound exactly. */
    assert_int_equal(pegasus_ipc_encode_request_head(buf, sizeof buf, &c, 0),
                     PEGASUS_IPC_REQ_HEAD_MAX);
    assert_int_equal(
        pegasus_ipc_encode_request_head(buf, sizeof buf - 1, &c, 0), 0);
    c.addr_len = PEGASUS_IPC_ADDR_MAX + 1;
    assert_int_equal(pegasus_ipc_encode_request_head(buf, sizeof buf, &c, 0),
                     0);
    c.addr_len = 3;
    memcpy(c.addr, "a b", 3);
    assert_int_equal(pegasus_ipc_encode_request_head(buf, sizeof buf, &c, 0),
                     0);
    memcpy(c.addr, "abc", 3);
    c.flags = 0x80;
    assert_int_equal(pegasus_ipc_encode_request_head(buf, sizeof buf, &c, 0),
                     0);
    c.flags = 0;
    assert_int_equal(pegasus_ipc_encode_request_head(buf, sizeof buf, &c,
                                                     PEGASUS_IPC_HARD_MAX),
                     0);
    assert_int_equal(
        pegasus_ipc_encode_answer_head(buf, sizeof buf, PEGASUS_IPC_APP_ERROR,
                                       1, 0, PEGASUS_IPC_ERROR_TEXT_MAX + 1),
        0);
    assert_int_equal(pegasus_ipc_encode_answer_head(buf, sizeof buf,
                                                    PEGASUS_IPC_HELLO, 1, 0, 0),
                     0);
    assert_int_equal(pegasus_ipc_encode_answer_head(
                         buf, sizeof buf, PEGASUS_IPC_RESPONSE, 1, 2, 0),
                     0);
    memset(sw, 'x', sizeof sw - 1);
    sw[sizeof sw - 1] = '\0';
    assert_int_equal(pegasus_ipc_encode_hello(buf, sizeof buf, 1, 1, sw), 0);
    assert_int_equal(pegasus_ipc_encode_shutdown(buf, 4), 0);
    assert_string_equal(pegasus_ipc_type_name(PEGASUS_IPC_APP_ERROR),
                        "APP_ERROR");
    assert_string_equal(pegasus_ipc_type_name(99), "unknown");
}

/* Each row: "level|line|logged". */
static void test_output_levels(void **state)
{
    FILE *f = fopen("tests/vectors/worker-output.txt", "r");
    char row[2048];
    unsigned n = 0;
    (void)state;

    assert_non_null(f);
    while (fgets(row, sizeof row, f) != NULL) {
        char *line, *logged, *nl = strchr(row, '\n');
        size_t skip = 99;
        int want = -1, got;
        if (row[0] == '#' || row[0] == '\n')
            continue;
        if (nl != NULL)
            *nl = '\0';
        line = strchr(row, '|');
        assert_non_null(line);
        *line++ = '\0';
        logged = strchr(line, '|');
        assert_non_null(logged);
        *logged++ = '\0';
        assert_int_equal(mkd_log_level_parse(row, &want), MKD_OK);
        got = pegasus_output_level(line, strlen(line), &skip);
        if (got != want || strcmp(line + skip, logged) != 0)
            fail_msg("%s: level %d (want %d), logs \"%s\" (want \"%s\")", line,
                     got, want, line + skip, logged);
        n++;
    }
    assert_int_equal(fclose(f), 0);
    assert_true(n >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_limits_and_concat),
        cmocka_unit_test(test_encoder_checks),
        cmocka_unit_test(test_output_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
