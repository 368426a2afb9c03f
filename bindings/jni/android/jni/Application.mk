# ndk-build settings for libsazukari_jni.so (see ../../README.md).
# NOT EXERCISED in this project's CI: no Android NDK is installed here.
APP_ABI := arm64-v8a armeabi-v7a x86_64
# getaddrinfo, pthreads and everything else used are in bionic since long
# before API 24; 24 is what current Android Gradle plugins accept.
APP_PLATFORM := android-24
# Pure C: no C++ runtime to ship.
APP_STL := none
# 16 KB page alignment (required on Google Play for apps targeting Android
# 15+ from 2025-11-01). NDK r27 and later honour this flag; the explicit
# -z max-page-size in Android.mk covers older NDKs.
APP_SUPPORT_FLEXIBLE_PAGE_SIZES := true
