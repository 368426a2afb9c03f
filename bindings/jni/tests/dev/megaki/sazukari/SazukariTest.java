package dev.megaki.sazukari;

import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * End-to-end tests of the Java API against sz_testserver (which starts this
 * program with the port as its argument, run from the project root). No
 * test framework: each test is a method, failures are counted, and the
 * exit status is nonzero if any failed.
 */
public final class SazukariTest {
    private static final String KEYS = "tests/vectors/keys/";
    private static int port;
    private static int passed, failed;

    interface Body {
        void run() throws Exception;
    }

    private static void test(String name, Body body) {
        try {
            body.run();
            passed++;
            System.out.println("ok   " + name);
        } catch (Throwable t) {
            failed++;
            System.out.println("FAIL " + name + ": " + t);
            t.printStackTrace(System.out);
        }
    }

    private static void check(boolean cond, String what) {
        if (!cond)
            throw new AssertionError(what);
    }

    private static byte[] bytes(String s) {
        try {
            return s.getBytes("UTF-8");
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static String str(byte[] b) {
        try {
            return new String(b, "UTF-8");
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static byte[] readFile(String path) throws IOException {
        InputStream in = new FileInputStream(path);
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[4096];
            int n;
            while ((n = in.read(buf)) > 0)
                out.write(buf, 0, n);
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    private static SazukariClient goodClient() throws IOException {
        SazukariClient c = new SazukariClient();
        c.pinFile(KEYS + "server2048.pub.pem");
        return c;
    }

    private static SazukariException expectThrow(int code, Body body)
            throws Exception {
        try {
            body.run();
        } catch (SazukariException e) {
            check(e.getCode() == code, "code " + e.getErrorName()
                  + ", want " + SazukariException.nameOf(code) + ": " + e);
            return e;
        }
        throw new AssertionError("no exception, want "
                                 + SazukariException.nameOf(code));
    }

    public static void main(String[] args) throws Exception {
        port = Integer.parseInt(args[0]);

        test("request and response", () -> {
            try (SazukariClient c = goodClient();
                 SazukariConnection conn = c.connect("127.0.0.1", port)) {
                check(!conn.isResumed(), "first handshake is full");
                check(conn.getMaxMessage() == 1 << 20, "max message");
                check(conn.getMaxInflight() == 32, "max inflight");
                check(conn.getSessionId().length == 16, "session id");
                check(str(conn.request(bytes("hello java"))).equals("hello java"),
                      "echo");
                check(conn.request(new byte[0]).length == 0, "empty");
                check(conn.isUsable(), "usable");
            }
        });

        test("pin from bytes, PEM and DER", () -> {
            for (String k : new String[] {"server2048.pub.pem",
                                          "server2048.pub.der"}) {
                try (SazukariClient c = new SazukariClient()) {
                    c.pin(readFile(KEYS + k));
                    try (SazukariConnection conn = c.connect("localhost", port)) {
                        check(str(conn.request(bytes("k"))).equals("k"), k);
                    }
                }
            }
        });

        test("transparent resumption", () -> {
            try (SazukariClient c = goodClient()) {
                c.connect("127.0.0.1", port).close();
                try (SazukariConnection conn = c.connect("127.0.0.1", port)) {
                    check(conn.isResumed(), "second connection resumes");
                }
                c.setResumption(false);
                try (SazukariConnection conn = c.connect("127.0.0.1", port)) {
                    check(!conn.isResumed(), "resumption off");
                }
            }
        });

        test("export and import a session", () -> {
            byte[] blob;
            try (SazukariClient a = goodClient();
                 SazukariConnection conn = a.connect("127.0.0.1", port)) {
                blob = conn.exportSession();
                check(blob != null && blob.length > 0, "blob");
            }
            /* A new client: as after an app restart. */
            try (SazukariClient b = goodClient();
                 SazukariConnection conn = b.connect("127.0.0.1", port, blob)) {
                check(conn.isResumed(), "imported session resumes");
                check(str(conn.request(bytes("r"))).equals("r"), "echo");
            }
            Arrays.fill(blob, (byte) 0);
        });

        test("many requests in flight, await and poll", () -> {
            try (SazukariClient c = goodClient();
                 SazukariConnection conn = c.connect("127.0.0.1", port)) {
                int[] ids = new int[50];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = conn.submit(bytes("req " + i));
                    check(ids[i] == i + 1, "sequential ids");
                }
                for (int i = ids.length - 1; i >= 25; i--)
                    check(str(conn.await(ids[i])).equals("req " + i), "await");
                List<Integer> seen = new ArrayList<>();
                SazukariConnection.Response r;
                while (seen.size() < 25 && (r = conn.poll(-1)) != null) {
                    int i = r.getRequestId() - 1;
                    check(str(r.getBody()).equals("req " + i), "poll body");
                    seen.add(i);
                }
                check(seen.size() == 25, "all polled");
                /* Nothing outstanding: polling is a usage error. */
                expectThrow(SazukariException.USAGE, () -> conn.poll(0));
            }
        });

        test("large message", () -> {
            try (SazukariClient c = goodClient();
                 SazukariConnection conn = c.connect("127.0.0.1", port)) {
                byte[] big = new byte[1 << 20];
                for (int i = 0; i < big.length; i++)
                    big[i] = (byte) (i * 7);
                check(Arrays.equals(conn.request(big), big), "1 MiB echo");
                expectThrow(SazukariException.TOO_LARGE,
                    () -> conn.request(new byte[(1 << 20) + 1]));
                check(conn.isUsable(), "still usable after too large");
            }
        });

        test("server error carries code and text", () -> {
            try (SazukariClient c = goodClient();
                 SazukariConnection conn = c.connect("127.0.0.1", port)) {
                SazukariException e = expectThrow(SazukariException.SERVER_APP,
                    () -> conn.request(bytes("!err 1 caf\u00e9 says no")));
                check(e.getErrorName().equals("SZ_ERR_SERVER_APP"), "name");
                check(e.getServerCode() == 1, "server code");
                check(e.getRequestId() == 1, "request id");
                check(e.getDetail().equals("caf\u00e9 says no"), "text: "
                      + e.getDetail());
                check(conn.isUsable(), "connection lives on");
                /* Error texts are UTF-8 on the wire (PROTOCOL.md §5.5): a
                 * server's text is sent up to its first malformed byte, so
                 * nothing malformed reaches -Xcheck:jni. */
                e = expectThrow(SazukariException.SERVER_INTERNAL,
                    () -> conn.request(new byte[] {'!', 'e', 'r', 'r', ' ',
                                                   '5', ' ', 'o', 'k',
                                                   (byte) 0xff, (byte) 0xc3,
                                                   'x'}));
                check(e.getDetail().equals("ok"), "cut: " + e.getDetail());
            }
        });

        test("wrong pinned key", () -> {
            try (SazukariClient c = new SazukariClient()) {
                c.pinFile(KEYS + "other2048.pub.pem");
                SazukariException e = expectThrow(SazukariException.PIN,
                    () -> c.connect("127.0.0.1", port));
                check(e.getErrorName().equals("SZ_ERR_PIN"), "name");
            }
        });

        test("bad keys", () -> {
            try (SazukariClient c = new SazukariClient()) {
                expectThrow(SazukariException.KEY, () -> c.pin(bytes("junk")));
                expectThrow(SazukariException.KEY,
                    () -> c.pinFile(KEYS + "server2048.pem"));
                expectThrow(SazukariException.KEY,
                    () -> c.pinFile(KEYS + "missing.pem"));
                expectThrow(SazukariException.USAGE,
                    () -> c.connect("127.0.0.1", port));
            }
        });

        test("request timeout", () -> {
            try (SazukariClient c = goodClient()) {
                c.setTimeouts(5000, 0, 300);
                try (SazukariConnection conn = c.connect("127.0.0.1", port)) {
                    long t0 = System.nanoTime();
                    expectThrow(SazukariException.TIMEOUT,
                        () -> conn.request(bytes("!silent")));
                    long ms = (System.nanoTime() - t0) / 1000000;
                    check(ms >= 250 && ms < 5000, "took " + ms + " ms");
                    check(str(conn.request(bytes("x"))).equals("x"), "usable");
                }
            }
        });

        test("cancel from another thread", () -> {
            try (SazukariClient c = goodClient()) {
                c.setTimeouts(0, 0, 0);
                try (SazukariConnection conn = c.connect("127.0.0.1", port)) {
                    Thread t = new Thread(() -> {
                        try {
                            Thread.sleep(100);
                        } catch (InterruptedException e) {
                            return;
                        }
                        conn.cancel();
                    });
                    t.start();
                    expectThrow(SazukariException.CANCELLED,
                        () -> conn.request(bytes("!silent")));
                    t.join();
                    check(!conn.isUsable(), "dead after cancel");
                }
            }
        });

        test("closed objects refuse use", () -> {
            SazukariClient c = goodClient();
            SazukariConnection conn = c.connect("127.0.0.1", port);
            c.close();
            /* The connection outlives its client. */
            check(str(conn.request(bytes("after"))).equals("after"), "echo");
            conn.close();
            conn.close();
            c.close();
            try {
                conn.request(bytes("x"));
                throw new AssertionError("closed connection worked");
            } catch (IllegalStateException expected) {
                /* fine */
            }
        });

        test("a service fails over from a dead address", () -> {
            int dead;
            try (java.net.ServerSocket ss = new java.net.ServerSocket(
                     0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
                dead = ss.getLocalPort();
            }
            String live = "127.0.0.1:" + port;
            try (SazukariClient c = goodClient();
                 SazukariService s = c.service("127.0.0.1:" + dead, live)) {
                s.setDeadlines(5000, 30000);
                check(s.getNode().equals(""), "no node yet");
                check(str(s.request(bytes("over"))).equals("over"), "echo");
                check(s.getNode().equals(live), "node " + s.getNode());
                check(str(s.request(bytes("again"))).equals("again"), "echo");
            }
            try (SazukariClient c = goodClient();
                 SazukariService s = c.service("127.0.0.1:" + dead)) {
                s.setDeadlines(1000, 0);
                expectThrow(SazukariException.CONNECT, () -> s.request(bytes("x")));
            }
            try (SazukariClient c = goodClient()) {
                expectThrow(SazukariException.USAGE, () -> c.service("nohost"));
                expectThrow(SazukariException.USAGE, () -> c.service());
            }
        });

        test("constants match the C table", () -> {
            int n = 0;
            for (Field f : SazukariException.class.getFields()) {
                int m = f.getModifiers();
                if (f.getType() != int.class || !Modifier.isStatic(m))
                    continue;
                int code = f.getInt(null);
                String want = code == 0 ? "SZ_OK"
                    : code == SazukariException.AGAIN ? "SZ_AGAIN"
                    : "SZ_ERR_" + f.getName();
                check(SazukariException.nameOf(code).equals(want),
                      f.getName() + " = " + code + " is "
                      + SazukariException.nameOf(code));
                n++;
            }
            check(n == 25, "all 25 codes mirrored, found " + n);
            check(SazukariException.nameOf(25).equals("SZ_ERR_UNKNOWN"),
                  "the C table has no code 25: add it here too");
        });

        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
