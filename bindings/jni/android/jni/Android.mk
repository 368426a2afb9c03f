# ndk-build for libsazukari_jni.so: libmegaki + libsazukari + the JNI layer
# in one shared library that exports only the JNI entry points.
# NOT EXERCISED in this project's CI: no Android NDK is installed here.
#
#   ndk-build -C bindings/jni/android OPENSSL_ANDROID=/path/to/openssl-android
#
# OPENSSL_ANDROID must hold an OpenSSL 3 build per ABI:
#   $(OPENSSL_ANDROID)/<abi>/include/openssl/*.h
#   $(OPENSSL_ANDROID)/<abi>/lib/libcrypto.a      (static, -fPIC)
# Only libcrypto is used (never libssl).
#
# Keep MK_FILES and SZ_FILES in step with libmegaki/CMakeLists.txt and
# libsazukari/CMakeLists.txt.
LOCAL_PATH := $(call my-dir)
SZ_ROOT := ../../../..

ifndef OPENSSL_ANDROID
$(error set OPENSSL_ANDROID to a directory with <abi>/include and <abi>/lib/libcrypto.a)
endif

include $(CLEAR_VARS)
LOCAL_MODULE := megaki_crypto
LOCAL_SRC_FILES := $(OPENSSL_ANDROID)/$(TARGET_ARCH_ABI)/lib/libcrypto.a
LOCAL_EXPORT_C_INCLUDES := $(OPENSSL_ANDROID)/$(TARGET_ARCH_ABI)/include
include $(PREBUILT_STATIC_LIBRARY)

MK_FILES := error.c codec.c msg.c crypto_evp.c env.c keys.c keysched.c \
            record.c ticket.c session.c hs_client.c hs_server.c
SZ_FILES := errors.c client.c conn.c net.c service.c

include $(CLEAR_VARS)
LOCAL_MODULE := sazukari_jni
LOCAL_SRC_FILES := $(addprefix $(SZ_ROOT)/libmegaki/,$(MK_FILES)) \
                   $(addprefix $(SZ_ROOT)/libsazukari/,$(SZ_FILES)) \
                   $(SZ_ROOT)/bindings/jni/c/sazukari_jni.c
LOCAL_C_INCLUDES := $(LOCAL_PATH)/$(SZ_ROOT)/include \
                    $(LOCAL_PATH)/$(SZ_ROOT)/libmegaki \
                    $(LOCAL_PATH)/$(SZ_ROOT)/libsazukari
# The same definitions as cmake/MegakiWarnings.cmake. Without javac -h
# headers the JNI functions have no prototypes, hence the one -Wno.
LOCAL_CFLAGS := -std=c11 -fvisibility=hidden -fstack-protector-strong \
                -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED \
                -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
                -Wall -Wextra -Wno-unused-parameter -Wno-missing-prototypes
LOCAL_STATIC_LIBRARIES := megaki_crypto
# 16 KB pages; and nothing of libcrypto re-exported.
LOCAL_LDFLAGS := -Wl,-z,max-page-size=16384 -Wl,--exclude-libs,ALL
include $(BUILD_SHARED_LIBRARY)
