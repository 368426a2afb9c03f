/*
 * sazukari_jni.c -- the JNI layer under dev.megaki.sazukari: thin calls
 * into sazukari.h (and nothing else of the project), byte[] copied in and
 * out, failures thrown as SazukariException with sz_last_error()'s details.
 *
 * Handles are the C pointers carried in a Java long. The Java classes
 * guarantee that a handle is used by one thread at a time and never after
 * it is freed (except nativeCancel, which the C API allows from any
 * thread), so nothing here locks.
 *
 * Arrays are copied rather than pinned: calls block on the network, and a
 * critical section or a pinned array must not last that long. Native
 * copies of session blobs are wiped.
 */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sazukari.h"

#ifdef SZ_JNI_GENERATED_HEADERS
/* From javac -h: the compiler checks every signature below against the
 * Java declarations. */
#include "dev_megaki_sazukari_SazukariClient.h"
#include "dev_megaki_sazukari_SazukariConnection.h"
#include "dev_megaki_sazukari_SazukariException.h"
#include "dev_megaki_sazukari_SazukariService.h"
#endif

static jclass exc_class;
static jmethodID exc_ctor;

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved)
{
    JNIEnv *env = NULL;
    jclass local;

    (void)reserved;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK)
        return JNI_ERR;
    local = (*env)->FindClass(env, "dev/megaki/sazukari/SazukariException");
    if (local == NULL)
        return JNI_ERR;
    exc_class = (*env)->NewGlobalRef(env, local);
    (*env)->DeleteLocalRef(env, local);
    if (exc_class == NULL)
        return JNI_ERR;
    exc_ctor = (*env)->GetMethodID(env, exc_class, "<init>",
                                   "(ILjava/lang/String;Ljava/lang/String;"
                                   "Ljava/lang/String;IIII)V");
    if (exc_ctor == NULL)
        return JNI_ERR;
    return JNI_VERSION_1_6;
}

JNIEXPORT void JNICALL JNI_OnUnload(JavaVM *vm, void *reserved)
{
    JNIEnv *env = NULL;

    (void)reserved;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) == JNI_OK &&
        exc_class != NULL)
        (*env)->DeleteGlobalRef(env, exc_class);
    exc_class = NULL;
}

/* --- strings ---------------------------------------------------------------- */

/*
 * A Java string from bytes that should be UTF-8 but come from the network
 * (a server's error text): NewStringUTF would trust them (and takes
 * "modified" UTF-8), so decode here, with U+FFFD for anything malformed.
 */
static jstring utf8_string(JNIEnv *env, const char *s)
{
    size_t n = strlen(s), k = 0;
    jchar *out = malloc((n + 1) * 2 * sizeof *out);
    const unsigned char *p = (const unsigned char *)s;
    jstring str;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0xFFFD;
        size_t len = 1;
        unsigned char b = p[i];
        if (b < 0x80) {
            cp = b;
        } else if (b >= 0xC2 && b <= 0xF4) {
            size_t need = b < 0xE0 ? 1 : b < 0xF0 ? 2 : 3;
            uint32_t v = b & (0x3F >> need);
            size_t j;
            for (j = 1; j <= need && i + j < n && (p[i + j] & 0xC0) == 0x80;
                 j++)
                v = (v << 6) | (p[i + j] & 0x3F);
            if (j == need + 1 &&
                !(need == 2 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) &&
                !(need == 3 && (v < 0x10000 || v > 0x10FFFF))) {
                cp = v;
                len = need + 1;
            }
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out[k++] = (jchar)(0xD800 + (cp >> 10));
            out[k++] = (jchar)(0xDC00 + (cp & 0x3FF));
        } else {
            out[k++] = (jchar)cp;
        }
        i += len;
    }
    str = (*env)->NewString(env, out, (jsize)k);
    free(out);
    return str;
}

/* Throw SazukariException for err with this thread's last-error details. */
static void throw_sz(JNIEnv *env, int err)
{
    sz_error_info ei;
    jstring name, msg, detail;
    jobject exc;

    sz_last_error(&ei);
    if (ei.err != err) {
        /* Details of some other failure: do not mix them in. */
        memset(&ei, 0, sizeof ei);
        ei.err = err;
    }
    if ((*env)->ExceptionCheck(env))
        return; /* something (out of memory) is already pending */
    name = (*env)->NewStringUTF(env, sz_err_name(err));
    msg = name ? (*env)->NewStringUTF(env, sz_strerror(err)) : NULL;
    detail = msg ? utf8_string(env, ei.text) : NULL;
    if (detail == NULL)
        return; /* OutOfMemoryError is pending */
    exc = (*env)->NewObject(env, exc_class, exc_ctor, (jint)err, name, msg,
                            detail, (jint)ei.server_code, (jint)ei.request_id,
                            (jint)ei.retry_after_ms, (jint)ei.mk_err);
    if (exc != NULL)
        (*env)->Throw(env, (jthrowable)exc);
}

/* --- arrays --------------------------------------------------------------------- */

/* A malloc'd copy of a byte[] (never NULL on success, even when empty). */
static uint8_t *copy_in(JNIEnv *env, jbyteArray a, size_t *len)
{
    jsize n = (*env)->GetArrayLength(env, a);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);

    *len = 0;
    if (p == NULL) {
        jclass oom = (*env)->FindClass(env, "java/lang/OutOfMemoryError");
        if (oom != NULL)
            (*env)->ThrowNew(env, oom, "native copy of a byte[]");
        return NULL;
    }
    (*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)p);
    *len = (size_t)n;
    return p;
}

static jbyteArray copy_out(JNIEnv *env, const uint8_t *p, size_t len)
{
    jbyteArray a;

    if (len > 0x7fffffff) {
        jclass oom = (*env)->FindClass(env, "java/lang/OutOfMemoryError");
        if (oom != NULL)
            (*env)->ThrowNew(env, oom, "response larger than a byte[]");
        return NULL;
    }
    a = (*env)->NewByteArray(env, (jsize)len);
    if (a != NULL && len > 0)
        (*env)->SetByteArrayRegion(env, a, 0, (jsize)len, (const jbyte *)p);
    return a;
}

static sz_client *client_of(jlong h)
{
    return (sz_client *)(intptr_t)h;
}

static sz_conn *conn_of(jlong h)
{
    return (sz_conn *)(intptr_t)h;
}

/* --- SazukariException ------------------------------------------------------------ */

JNIEXPORT jstring JNICALL
Java_dev_megaki_sazukari_SazukariException_nativeErrName(JNIEnv *env,
                                                         jclass cls, jint code)
{
    (void)cls;
    return (*env)->NewStringUTF(env, sz_err_name(code));
}

/* --- SazukariClient ---------------------------------------------------------------- */

JNIEXPORT jlong JNICALL
Java_dev_megaki_sazukari_SazukariClient_nativeNew(JNIEnv *env, jclass cls)
{
    sz_client *c = NULL;
    int r;

    (void)cls;
    if ((r = sz_client_new(&c)) != SZ_OK) {
        throw_sz(env, r);
        return 0;
    }
    return (jlong)(intptr_t)c;
}

JNIEXPORT void JNICALL Java_dev_megaki_sazukari_SazukariClient_nativeFree(
    JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    sz_client_free(client_of(h));
}

JNIEXPORT void JNICALL Java_dev_megaki_sazukari_SazukariClient_nativePin(
    JNIEnv *env, jclass cls, jlong h, jbyteArray key)
{
    size_t len = 0;
    uint8_t *k = copy_in(env, key, &len);
    int r;

    (void)cls;
    if (k == NULL)
        return;
    if ((r = sz_client_pin(client_of(h), k, len)) != SZ_OK)
        throw_sz(env, r);
    free(k);
}

JNIEXPORT void JNICALL Java_dev_megaki_sazukari_SazukariClient_nativePinFile(
    JNIEnv *env, jclass cls, jlong h, jstring path)
{
    const char *p = (*env)->GetStringUTFChars(env, path, NULL);
    int r;

    (void)cls;
    if (p == NULL)
        return;
    r = sz_client_pin_file(client_of(h), p);
    (*env)->ReleaseStringUTFChars(env, path, p);
    if (r != SZ_OK)
        throw_sz(env, r);
}

JNIEXPORT void JNICALL
Java_dev_megaki_sazukari_SazukariClient_nativeSetTimeouts(JNIEnv *env,
                                                          jclass cls, jlong h,
                                                          jint c, jint io,
                                                          jint req)
{
    int r;

    (void)cls;
    r = sz_client_set_timeouts(client_of(h), (uint32_t)c, (uint32_t)io,
                               (uint32_t)req);
    if (r != SZ_OK)
        throw_sz(env, r);
}

JNIEXPORT void JNICALL
Java_dev_megaki_sazukari_SazukariClient_nativeSetResumption(JNIEnv *env,
                                                            jclass cls, jlong h,
                                                            jboolean on)
{
    int r;

    (void)cls;
    if ((r = sz_client_set_resumption(client_of(h), on == JNI_TRUE)) != SZ_OK)
        throw_sz(env, r);
}

JNIEXPORT void JNICALL
Java_dev_megaki_sazukari_SazukariClient_nativeForgetSessions(JNIEnv *env,
                                                             jclass cls,
                                                             jlong h)
{
    (void)env;
    (void)cls;
    sz_client_forget_sessions(client_of(h));
}

JNIEXPORT jlong JNICALL Java_dev_megaki_sazukari_SazukariClient_nativeConnect(
    JNIEnv *env, jclass cls, jlong h, jstring host, jint port,
    jbyteArray session)
{
    const char *hs;
    uint8_t *blob = NULL;
    size_t blen = 0;
    sz_conn *conn = NULL;
    int r;

    (void)cls;
    if (session != NULL && (blob = copy_in(env, session, &blen)) == NULL)
        return 0;
    if ((hs = (*env)->GetStringUTFChars(env, host, NULL)) == NULL) {
        free(blob);
        return 0;
    }
    r = sz_connect(client_of(h), hs, (uint16_t)port, blob, blen, &conn);
    (*env)->ReleaseStringUTFChars(env, host, hs);
    if (blob != NULL) {
        sz_wipe(blob, blen);
        free(blob);
    }
    if (r != SZ_OK) {
        throw_sz(env, r);
        return 0;
    }
    return (jlong)(intptr_t)conn;
}

/* --- one request, on a connection or a service --------------------------------- */

typedef int (*request_fn)(jlong h, const uint8_t *req, size_t len,
                          uint8_t **resp, size_t *resp_len);

static int conn_request(jlong h, const uint8_t *req, size_t len, uint8_t **resp,
                        size_t *resp_len)
{
    return sz_request(conn_of(h), req, len, resp, resp_len);
}

static int service_request(jlong h, const uint8_t *req, size_t len,
                           uint8_t **resp, size_t *resp_len)
{
    return sz_service_request((sz_service *)(intptr_t)h, req, len, resp,
                              resp_len);
}

/* The request's bytes in, the response's out, or an exception. */
static jbyteArray request_via(JNIEnv *env, request_fn fn, jlong h,
                              jbyteArray req)
{
    uint8_t *in, *resp = NULL;
    size_t len = 0, rlen = 0;
    jbyteArray out = NULL;
    int r;

    if ((in = copy_in(env, req, &len)) == NULL)
        return NULL;
    r = fn(h, in, len, &resp, &rlen);
    free(in);
    if (r != SZ_OK)
        throw_sz(env, r);
    else
        out = copy_out(env, resp, rlen);
    sz_free(resp);
    return out;
}

/* --- SazukariConnection ---------------------------------------------------------- */

JNIEXPORT jbyteArray JNICALL
Java_dev_megaki_sazukari_SazukariConnection_nativeRequest(JNIEnv *env,
                                                          jclass cls, jlong h,
                                                          jbyteArray req)
{
    (void)cls;
    return request_via(env, conn_request, h, req);
}

JNIEXPORT jint JNICALL Java_dev_megaki_sazukari_SazukariConnection_nativeSubmit(
    JNIEnv *env, jclass cls, jlong h, jbyteArray req)
{
    uint8_t *in;
    size_t len = 0;
    uint32_t id = 0;
    int r;

    (void)cls;
    if ((in = copy_in(env, req, &len)) == NULL)
        return 0;
    r = sz_submit(conn_of(h), in, len, &id);
    free(in);
    if (r != SZ_OK)
        throw_sz(env, r);
    return (jint)id;
}

JNIEXPORT jbyteArray JNICALL
Java_dev_megaki_sazukari_SazukariConnection_nativeWait(JNIEnv *env, jclass cls,
                                                       jlong h, jint id)
{
    uint8_t *resp = NULL;
    size_t rlen = 0;
    jbyteArray out = NULL;
    int r;

    (void)cls;
    r = sz_wait(conn_of(h), (uint32_t)id, &resp, &rlen);
    if (r != SZ_OK)
        throw_sz(env, r);
    else
        out = copy_out(env, resp, rlen);
    sz_free(resp);
    return out;
}

JNIEXPORT jbyteArray JNICALL
Java_dev_megaki_sazukari_SazukariConnection_nativePoll(JNIEnv *env, jclass cls,
                                                       jlong h, jint timeout_ms,
                                                       jintArray id_out)
{
    uint8_t *resp = NULL;
    size_t rlen = 0;
    uint32_t id = 0;
    jbyteArray out = NULL;
    int r;

    (void)cls;
    r = sz_poll(conn_of(h), timeout_ms < 0 ? -1 : timeout_ms, &id, &resp,
                &rlen);
    if (r == SZ_OK) {
        jint jid = (jint)id;
        (*env)->SetIntArrayRegion(env, id_out, 0, 1, &jid);
        out = copy_out(env, resp, rlen);
    } else if (r != SZ_AGAIN) {
        throw_sz(env, r);
    }
    sz_free(resp);
    return out;
}

JNIEXPORT jbyteArray JNICALL
Java_dev_megaki_sazukari_SazukariConnection_nativeExportSession(JNIEnv *env,
                                                                jclass cls,
                                                                jlong h)
{
    uint8_t blob[SZ_SESSION_MAX];
    size_t len = 0;
    jbyteArray out = NULL;
    int r;

    (void)cls;
    r = sz_conn_export_session(conn_of(h), blob, sizeof blob, &len);
    if (r == SZ_OK)
        out = copy_out(env, blob, len);
    else if (r != SZ_ERR_SESSION)
        throw_sz(env, r);
    sz_wipe(blob, sizeof blob);
    return out;
}

JNIEXPORT jint JNICALL Java_dev_megaki_sazukari_SazukariConnection_nativeError(
    JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    return (jint)sz_conn_error(conn_of(h));
}

JNIEXPORT jintArray JNICALL
Java_dev_megaki_sazukari_SazukariConnection_nativeInfo(JNIEnv *env, jclass cls,
                                                       jlong h)
{
    sz_conn_info ci;
    jint v[5];
    jintArray a;

    (void)cls;
    sz_conn_get_info(conn_of(h), &ci);
    v[0] = ci.resumed;
    v[1] = ci.has_session;
    v[2] = (jint)ci.max_message;
    v[3] = (jint)ci.max_inflight;
    v[4] = (jint)ci.inflight;
    if ((a = (*env)->NewIntArray(env, 5)) != NULL)
        (*env)->SetIntArrayRegion(env, a, 0, 5, v);
    return a;
}

JNIEXPORT jbyteArray JNICALL
Java_dev_megaki_sazukari_SazukariConnection_nativeSessionId(JNIEnv *env,
                                                            jclass cls, jlong h)
{
    sz_conn_info ci;

    (void)cls;
    sz_conn_get_info(conn_of(h), &ci);
    return copy_out(env, ci.session_id, sizeof ci.session_id);
}

JNIEXPORT void JNICALL Java_dev_megaki_sazukari_SazukariConnection_nativeCancel(
    JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    sz_conn_cancel(conn_of(h));
}

JNIEXPORT void JNICALL Java_dev_megaki_sazukari_SazukariConnection_nativeClose(
    JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    sz_conn_close(conn_of(h));
}

/* --- SazukariService ----------------------------------------------------------- */

static sz_service *service_of(jlong h)
{
    return (sz_service *)(intptr_t)h;
}

/* Release what service_new took from the Java strings. */
static void release_addrs(JNIEnv *env, jobjectArray arr, jstring *js,
                          const char **cs, jsize n)
{
    for (jsize i = 0; i < n; i++) {
        if (cs[i] != NULL)
            (*env)->ReleaseStringUTFChars(env, js[i], cs[i]);
        if (js[i] != NULL)
            (*env)->DeleteLocalRef(env, js[i]);
    }
    (void)arr;
}

JNIEXPORT jlong JNICALL
Java_dev_megaki_sazukari_SazukariClient_nativeServiceNew(JNIEnv *env,
                                                         jclass cls, jlong h,
                                                         jobjectArray addrs)
{
    jstring js[SZ_SERVICE_MAX];
    const char *cs[SZ_SERVICE_MAX];
    jsize n = (*env)->GetArrayLength(env, addrs), got = 0;
    sz_service *s = NULL;
    int r;

    (void)cls;
    if (n <= 0 || n > SZ_SERVICE_MAX) {
        /* The library says why (and which limit). */
        r = sz_service_new(client_of(h), cs, n > 0 ? (size_t)n : 0, &s);
        throw_sz(env, r);
        return 0;
    }
    memset(js, 0, sizeof js);
    memset(cs, 0, sizeof cs);
    for (; got < n; got++) {
        js[got] = (jstring)(*env)->GetObjectArrayElement(env, addrs, got);
        if (js[got] == NULL ||
            (cs[got] = (*env)->GetStringUTFChars(env, js[got], NULL)) == NULL)
            break;
    }
    if (got < n) { /* an exception is pending (or a null: caught in Java) */
        release_addrs(env, addrs, js, cs, got + 1);
        return 0;
    }
    r = sz_service_new(client_of(h), cs, (size_t)n, &s);
    release_addrs(env, addrs, js, cs, n);
    if (r != SZ_OK) {
        throw_sz(env, r);
        return 0;
    }
    return (jlong)(intptr_t)s;
}

JNIEXPORT void JNICALL
Java_dev_megaki_sazukari_SazukariService_nativeSetDeadlines(JNIEnv *env,
                                                            jclass cls, jlong h,
                                                            jint c, jint t)
{
    int r;

    (void)cls;
    r = sz_service_set_deadlines(service_of(h), (uint32_t)c, (uint32_t)t);
    if (r != SZ_OK)
        throw_sz(env, r);
}

JNIEXPORT jbyteArray JNICALL
Java_dev_megaki_sazukari_SazukariService_nativeRequest(JNIEnv *env, jclass cls,
                                                       jlong h, jbyteArray req)
{
    (void)cls;
    return request_via(env, service_request, h, req);
}

JNIEXPORT jstring JNICALL Java_dev_megaki_sazukari_SazukariService_nativeNode(
    JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    return (*env)->NewStringUTF(env, sz_service_node(service_of(h)));
}

JNIEXPORT void JNICALL Java_dev_megaki_sazukari_SazukariService_nativeFree(
    JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    sz_service_free(service_of(h));
}
