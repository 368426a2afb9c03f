package dev.megaki.sazukari;

import java.io.Closeable;

/**
 * One Megaki session to the server. Requests are independent; several may
 * be in flight at once ({@link #submit}, then {@link #await} or
 * {@link #poll}).
 *
 * <p>Calls are serialised: one thread at a time uses the connection, others
 * wait. {@link #cancel()} is the exception: any thread may call it to make
 * the blocked call (and all later ones) fail with
 * {@link SazukariException#CANCELLED}.
 */
public final class SazukariConnection implements Closeable {
    /** A response and the request it answers. */
    public static final class Response {
        private final int requestId;
        private final byte[] body;

        Response(int requestId, byte[] body) {
            this.requestId = requestId;
            this.body = body;
        }

        public int getRequestId() { return requestId; }

        public byte[] getBody() { return body; }
    }

    /* Guards handle against close() while cancel() uses it. */
    private final Object handleLock = new Object();
    private long handle;

    SazukariConnection(long handle) {
        this.handle = handle;
    }

    private long handle() {
        synchronized (handleLock) {
            if (handle == 0)
                throw new IllegalStateException("connection is closed");
            return handle;
        }
    }

    /** Send a request and wait for its response. */
    public synchronized byte[] request(byte[] request) throws SazukariException {
        if (request == null)
            throw new NullPointerException("request");
        return nativeRequest(handle(), request);
    }

    /**
     * Send a request and return its id at once (1, 2, 3, ...). If the
     * server's limit of requests in flight is reached, first waits for a
     * response (kept for later).
     */
    public synchronized int submit(byte[] request) throws SazukariException {
        if (request == null)
            throw new NullPointerException("request");
        return nativeSubmit(handle(), request);
    }

    /** Wait for the response to a submitted request. */
    public synchronized byte[] await(int requestId) throws SazukariException {
        return nativeWait(handle(), requestId);
    }

    /**
     * The first response to complete, waiting up to {@code timeoutMs}
     * (-1: until one does; 0: do not block). Returns null if none is ready.
     * A request that failed on its own throws, with
     * {@link SazukariException#getRequestId()} set.
     */
    public synchronized Response poll(int timeoutMs) throws SazukariException {
        int[] id = new int[1];
        byte[] body = nativePoll(handle(), timeoutMs, id);
        return body == null ? null : new Response(id[0], body);
    }

    /**
     * The session, to resume later with
     * {@link SazukariClient#connect(String, int, byte[])}; null if the server
     * issued none. SECRET: store it like a password, and overwrite the
     * array (java.util.Arrays.fill) when done with it.
     */
    public synchronized byte[] exportSession() throws SazukariException {
        return nativeExportSession(handle());
    }

    /** True while the connection can take requests. */
    public synchronized boolean isUsable() {
        return nativeError(handle()) == SazukariException.OK;
    }

    /** The handshake resumed a session (no RSA). */
    public synchronized boolean isResumed() {
        return nativeInfo(handle())[0] != 0;
    }

    /** The server's largest message, in bytes. */
    public synchronized int getMaxMessage() {
        return nativeInfo(handle())[2];
    }

    /** The server's limit of requests in flight. */
    public synchronized int getMaxInflight() {
        return nativeInfo(handle())[3];
    }

    /** Requests awaiting their response. */
    public synchronized int getInflight() {
        return nativeInfo(handle())[4];
    }

    /** The session id (not secret), for logs. */
    public synchronized byte[] getSessionId() {
        return nativeSessionId(handle());
    }

    /** From any thread: fail the blocked call, and every later one. */
    public void cancel() {
        synchronized (handleLock) {
            if (handle != 0)
                nativeCancel(handle);
        }
    }

    /**
     * Send an authenticated close and release the connection. Idempotent.
     * Waits for a call in progress on another thread to end (bounded by the
     * timeouts); call {@link #cancel()} first to end it at once.
     */
    @Override
    public synchronized void close() {
        long h;
        synchronized (handleLock) {
            h = handle;
            handle = 0;
        }
        if (h != 0)
            nativeClose(h);
    }

    private static native byte[] nativeRequest(long h, byte[] req)
        throws SazukariException;
    private static native int nativeSubmit(long h, byte[] req)
        throws SazukariException;
    private static native byte[] nativeWait(long h, int id)
        throws SazukariException;
    private static native byte[] nativePoll(long h, int timeoutMs, int[] id)
        throws SazukariException;
    private static native byte[] nativeExportSession(long h)
        throws SazukariException;
    private static native int nativeError(long h);
    private static native int[] nativeInfo(long h);
    private static native byte[] nativeSessionId(long h);
    private static native void nativeCancel(long h);
    private static native void nativeClose(long h);
}
