# Warnings, sanitizers and the OpenSSL API level for every Megaki target.
add_compile_options(-Wall -Wextra -Wshadow -Wstrict-prototypes
  -Wmissing-prototypes -Wformat=2 -Wvla -Wcast-qual -Wpointer-arith
  -Wundef -Wno-unused-parameter)
# Deprecated OpenSSL APIs are not even declared: EVP interfaces only.
add_compile_definitions(OPENSSL_API_COMPAT=30000 OPENSSL_NO_DEPRECATED
  _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
if(MK_WERROR)
  add_compile_options(-Werror)
endif()
add_compile_options(-fstack-protector-strong)
if(MK_ASAN AND MK_TSAN)
  message(FATAL_ERROR "MK_ASAN and MK_TSAN cannot be combined: use two "
    "build directories")
endif()
if(MK_ASAN)
  add_compile_options(-fsanitize=address -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address)
endif()
if(MK_UBSAN)
  add_compile_options(-fsanitize=undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer)
  add_link_options(-fsanitize=undefined)
endif()
if(MK_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
