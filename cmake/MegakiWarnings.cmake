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

# With MK_VALGRIND, unit tests run under memcheck and any error or leak
# fails them (scripts/test.sh runs them with `ctest -L unit`).
option(MK_VALGRIND "Run unit tests under valgrind memcheck" OFF)
set(MK_TEST_WRAPPER "")
if(MK_VALGRIND)
  set(MK_TEST_WRAPPER valgrind --quiet --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
    --track-fds=no)
endif()

# mk_add_test(name src...): a cmocka unit test registered with ctest (label
# "unit"), run from the source tree so that it finds its vector files.
function(mk_add_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE megaki_static PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${MK_TEST_WRAPPER} $<TARGET_FILE:${name}>
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES TIMEOUT 900 LABELS unit)
endfunction()
