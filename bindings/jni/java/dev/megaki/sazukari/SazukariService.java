package dev.megaki.sazukari;

import java.io.Closeable;

/**
 * Several servers ("nodes") of one service, with failover: made by
 * {@link SazukariClient#service(String...)}.
 *
 * <p>Nodes are tried in the order given (a name that resolves to several
 * addresses is one node per address), each within the per-node connect
 * deadline, all within the total deadline of one call. A node that refuses
 * the connection, times out or answers "retry later" is skipped for a
 * growing, randomised while. A request is sent again, to the next node,
 * only if the protocol proves it did not run (the server answered
 * "overloaded" or "shutdown", or closed the connection cleanly before
 * answering, or the request never left); any other failure is thrown as
 * it is and never repeated. Nodes that share their ticket keys resume one
 * another's sessions.
 *
 * <p>A service keeps one connection; use it from one thread at a time
 * (its methods are synchronized), and make one per thread for
 * concurrency. Closing the client does not close its services.
 */
public final class SazukariService implements Closeable {
    private long handle;

    SazukariService(long handle) {
        this.handle = handle;
    }

    private long handle() {
        if (handle == 0)
            throw new IllegalStateException("service is closed");
        return handle;
    }

    /**
     * Deadlines in milliseconds: connecting to one node (TCP and
     * handshake; default: the client's connect timeout; 0: only the total
     * bounds it), and one {@link #request(byte[])} in all, every node and
     * wait included (default 30000; 0: no deadline, a single pass over the
     * nodes, no request sent twice).
     */
    public synchronized void setDeadlines(int connectMs, int totalMs)
            throws SazukariException {
        if (connectMs < 0 || totalMs < 0)
            throw new IllegalArgumentException("negative deadline");
        nativeSetDeadlines(handle(), connectMs, totalMs);
    }

    /** Send a request and wait for its response, failing over as above. */
    public synchronized byte[] request(byte[] request) throws SazukariException {
        if (request == null)
            throw new NullPointerException("request");
        return nativeRequest(handle(), request);
    }

    /**
     * "ADDRESS:PORT" of the node of the current (or last tried) connection;
     * "" before any.
     */
    public synchronized String getNode() {
        return nativeNode(handle());
    }

    /** Close the connection and release the service. Idempotent. */
    @Override
    public synchronized void close() {
        if (handle != 0) {
            nativeFree(handle);
            handle = 0;
        }
    }

    private static native void nativeSetDeadlines(long h, int c, int t)
        throws SazukariException;
    private static native byte[] nativeRequest(long h, byte[] req)
        throws SazukariException;
    private static native String nativeNode(long h);
    private static native void nativeFree(long h);
}
