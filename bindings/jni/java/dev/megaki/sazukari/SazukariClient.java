package dev.megaki.sazukari;

import java.io.Closeable;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A Megaki client: the pinned server keys, timeouts, and a memory of
 * sessions so that reconnecting resumes (one round trip, no RSA).
 *
 * <p>Pin keys, then connect. A client is thread-safe and meant to be shared
 * (one per server, like an OkHttpClient); each {@link SazukariConnection}
 * it makes is one Megaki session. Pins must all be added before the first
 * connection. Closing the client does not close its connections.
 *
 * <pre>
 * try (SazukariClient client = new SazukariClient()) {
 *     client.pin(serverPublicKeyPem);
 *     try (SazukariConnection conn = client.connect("api.example.com", 4433)) {
 *         byte[] response = conn.request(requestBytes);
 *     }
 * }
 * </pre>
 *
 * Never call these methods on Android's main thread: they block on the
 * network.
 */
public final class SazukariClient implements Closeable {
    static {
        Native.load();
    }

    /* Connects share the client; close must wait for them to finish
     * using the native handle. */
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private long handle;

    public SazukariClient() throws SazukariException {
        handle = nativeNew();
    }

    private long handle() {
        if (handle == 0)
            throw new IllegalStateException("client is closed");
        return handle;
    }

    /**
     * Pin server public keys: DER SubjectPublicKeyInfo, or PEM text with one
     * or more PUBLIC KEY blocks (RSA 2048, 3072 or 4096). Pin a backup key
     * too so that the server can rotate. At most 16.
     */
    public void pin(byte[] key) throws SazukariException {
        if (key == null)
            throw new NullPointerException("key");
        lock.writeLock().lock();
        try {
            nativePin(handle(), key);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Pin the key(s) in a file (PEM or DER). */
    public void pinFile(String path) throws SazukariException {
        if (path == null)
            throw new NullPointerException("path");
        lock.writeLock().lock();
        try {
            nativePinFile(handle(), path);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * Timeouts in milliseconds, 0 for none (defaults 10000, 30000, 60000):
     * connect (TCP connect and handshake), I/O (longest silence while a
     * response is awaited; ends the connection), and request (a deadline
     * per request; fails that request only). Applies to later connections.
     */
    public void setTimeouts(int connectMs, int ioMs, int requestMs)
            throws SazukariException {
        if (connectMs < 0 || ioMs < 0 || requestMs < 0)
            throw new IllegalArgumentException("negative timeout");
        lock.readLock().lock();
        try {
            nativeSetTimeouts(handle(), connectMs, ioMs, requestMs);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Transparent resumption on (default) or off. Off also forgets. */
    public void setResumption(boolean enable) throws SazukariException {
        lock.readLock().lock();
        try {
            nativeSetResumption(handle(), enable);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Forget every remembered session (the next connections do full handshakes). */
    public void forgetSessions() {
        lock.readLock().lock();
        try {
            nativeForgetSessions(handle());
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Connect and handshake, resuming a remembered session if there is one. */
    public SazukariConnection connect(String host, int port)
            throws SazukariException {
        return connect(host, port, null);
    }

    /**
     * Connect and handshake, resuming {@code session} (from
     * {@link SazukariConnection#exportSession()}) if given and still valid;
     * otherwise a full handshake. The session is secret material.
     */
    public SazukariConnection connect(String host, int port, byte[] session)
            throws SazukariException {
        if (host == null)
            throw new NullPointerException("host");
        if (port <= 0 || port > 65535)
            throw new IllegalArgumentException("port " + port);
        lock.readLock().lock();
        try {
            return new SazukariConnection(
                nativeConnect(handle(), host, port, session));
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * A service of several servers, each "HOST:PORT" or "[IPV6]:PORT",
     * tried in turn with failover (see {@link SazukariService}). Pins must
     * be added first. At most 64 addresses.
     */
    public SazukariService service(String... addresses)
            throws SazukariException {
        if (addresses == null)
            throw new NullPointerException("addresses");
        for (String a : addresses)
            if (a == null)
                throw new NullPointerException("address");
        lock.readLock().lock();
        try {
            return new SazukariService(nativeServiceNew(handle(), addresses));
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Release the client (its connections stay open). Idempotent. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (handle != 0) {
                nativeFree(handle);
                handle = 0;
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    private static native long nativeNew() throws SazukariException;
    private static native void nativeFree(long h);
    private static native void nativePin(long h, byte[] key)
        throws SazukariException;
    private static native void nativePinFile(long h, String path)
        throws SazukariException;
    private static native void nativeSetTimeouts(long h, int c, int io, int r)
        throws SazukariException;
    private static native void nativeSetResumption(long h, boolean on)
        throws SazukariException;
    private static native void nativeForgetSessions(long h);
    private static native long nativeConnect(long h, String host, int port,
                                             byte[] session)
        throws SazukariException;
    private static native long nativeServiceNew(long h, String[] addresses)
        throws SazukariException;
}
