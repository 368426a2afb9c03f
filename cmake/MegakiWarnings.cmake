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
if(MK_ASAN)
  add_compile_options(-fsanitize=address -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address)
endif()
if(MK_UBSAN)
  add_compile_options(-fsanitize=undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer)
  add_link_options(-fsanitize=undefined)
endif()

# mk_add_test(name src...): a cmocka test executable registered with ctest,
# run from the source tree so that it finds its vector files.
function(mk_add_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE megaki_static PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES TIMEOUT 600)
endfunction()
