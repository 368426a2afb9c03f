package dev.megaki.sazukari;

/* Loads the native library once. On Android it is packaged as
 * lib/<abi>/libsazukari_jni.so; on a JVM it is found on java.library.path. */
final class Native {
    private static boolean loaded;

    private Native() {}

    static synchronized void load() {
        if (!loaded) {
            System.loadLibrary("sazukari_jni");
            loaded = true;
        }
    }
}
