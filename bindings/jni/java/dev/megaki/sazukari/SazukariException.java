package dev.megaki.sazukari;

import java.io.IOException;

/**
 * A libsazukari failure: the error code (one of the constants below, the
 * same numbers as {@code sz_err} in sazukari.h), its name, and the details
 * the library gave.
 *
 * <p>Codes that concern one request ({@link #SERVER_APP} and the other
 * {@code SERVER_*} codes, {@link #TOO_LARGE}, and {@link #TIMEOUT} from a
 * request deadline) leave the connection usable; the others end it. Use
 * {@link SazukariConnection#isUsable()} to tell.
 */
public class SazukariException extends IOException {
    private static final long serialVersionUID = 1L;

    public static final int OK = 0;
    /** API misuse: bad argument, wrong state, bad option. */
    public static final int USAGE = 1;
    public static final int NOMEM = 2;
    /** A pinned key could not be read or parsed. */
    public static final int KEY = 3;
    /** The server is not the pinned server. Never retry blindly. */
    public static final int PIN = 4;
    public static final int RESOLVE = 5;
    public static final int CONNECT = 6;
    public static final int TIMEOUT = 7;
    public static final int IO = 8;
    public static final int PROTOCOL = 9;
    public static final int TOO_LARGE = 10;
    /** The server refused the handshake for now; see {@link #getRetryAfterMs()}. */
    public static final int BUSY = 11;
    public static final int SERVER_APP = 12;
    public static final int SERVER_TIMEOUT = 13;
    public static final int SERVER_OVERLOADED = 14;
    public static final int SERVER_INTERNAL = 15;
    public static final int SERVER_SHUTDOWN = 16;
    public static final int CLOSED = 17;
    public static final int SESSION = 18;
    public static final int CRYPTO = 19;
    public static final int HANDSHAKE = 20;
    public static final int VERSION = 21;
    public static final int SERVER_OTHER = 22;
    public static final int CANCELLED = 23;
    /** Not a failure: nothing ready yet (never thrown). */
    public static final int AGAIN = 24;

    private final int code;
    private final String name;
    private final String detail;
    private final int serverCode;
    private final int requestId;
    private final int retryAfterMs;
    private final int megakiError;

    /* Called from native code. */
    SazukariException(int code, String name, String message, String detail,
                      int serverCode, int requestId, int retryAfterMs,
                      int megakiError) {
        super(name + ": " + message + (detail.isEmpty() ? "" : ": " + detail));
        this.code = code;
        this.name = name;
        this.detail = detail;
        this.serverCode = serverCode;
        this.requestId = requestId;
        this.retryAfterMs = retryAfterMs;
        this.megakiError = megakiError;
    }

    /** The error code, one of the constants of this class. */
    public int getCode() { return code; }

    /** The code's name, as in C: "SZ_ERR_PIN". */
    public String getErrorName() { return name; }

    /** The server's error text, or a description of what went wrong. */
    public String getDetail() { return detail; }

    /** For an error answered by the server: its error code (MK_ECODE_*), else 0. */
    public int getServerCode() { return serverCode; }

    /** The request the failure concerns, or 0 for the connection. */
    public int getRequestId() { return requestId; }

    /** For {@link #BUSY}: how long the server asked to wait. */
    public int getRetryAfterMs() { return retryAfterMs; }

    /** The libmegaki code behind the failure (mk_err), for diagnostics. */
    public int getMegakiError() { return megakiError; }

    /** The name of any code, as the C library spells it. */
    public static String nameOf(int code) {
        Native.load();
        return nativeErrName(code);
    }

    private static native String nativeErrName(int code);
}
