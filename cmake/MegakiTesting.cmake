# How tests are built and registered.
#
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
# "unit"), run from the source tree so that it finds its vector files. It
# links cmocka and the shared test library; the caller adds what it tests.
function(mk_add_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE PkgConfig::CMOCKA mk_testlib)
  add_test(NAME ${name} COMMAND ${MK_TEST_WRAPPER} $<TARGET_FILE:${name}>
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES TIMEOUT 900 LABELS unit)
endfunction()
