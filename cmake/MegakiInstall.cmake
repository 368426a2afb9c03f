# Installation (GNUInstallDirs): what `cmake --install` puts where. The
# Debian package (cmake/MegakiPackage.cmake) packs what these same rules
# install.
#
#   sbin/mkd, bin/sazukari
#   lib/libmegaki.so.2, lib/libsazukari.so.2 (SONAME from the project
#     version's major number) and the static libraries
#   include/: megaki.h, sazukari.h and the error tables they include
#   lib/pkgconfig/megaki.pc, sazukari.pc; lib/cmake/Megaki/ for
#     find_package(Megaki): Megaki::megaki, Megaki::sazukari, ..._static
#   share/megaki/arcangelo, share/megaki/apps/hello: what mkd runs by
#     default, found from mkd's own directory (MK_SHARE_REL)
#   share/man: mkd(8), mkd.conf(5), sazukari(1); share/doc/megaki
#   lib/systemd/system/mkd.service (MK_SYSTEMD_UNITDIR)
#   share/doc/megaki/examples/mkd.conf; SYSCONFDIR/megaki/mkd.conf only
#     with the component "conffile" (the Debian package installs it; a
#     plain `cmake --install` leaves /etc alone)
#
# The build tree mirrors share/megaki beside the build's mkd, with links
# into the source tree, so that mkd runs from the build tree unchanged.
include(CMakePackageConfigHelpers)

set(MK_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
  "Where mkd.service is installed (relative: under the prefix)")
set(MK_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Megaki)

# --- the build tree's share/megaki -----------------------------------------
get_target_property(mk_mkd_dir mkd BINARY_DIR)
get_filename_component(mk_mirror "${mk_mkd_dir}/${MK_SHARE_REL}" ABSOLUTE)
string(FIND "${mk_mirror}/" "${PROJECT_BINARY_DIR}/" mk_at)
if(NOT mk_at EQUAL 0)
  message(FATAL_ERROR "install dirs: share/megaki is ${MK_SHARE_REL} from "
    "sbin, which the build tree cannot mirror (${mk_mirror} is outside "
    "${PROJECT_BINARY_DIR}): choose CMAKE_INSTALL_SBINDIR and "
    "CMAKE_INSTALL_DATADIR closer together")
endif()
file(MAKE_DIRECTORY ${mk_mirror}/apps)
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/arcangelo ${mk_mirror}/arcangelo
  SYMBOLIC)
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/apps/hello ${mk_mirror}/apps/hello
  SYMBOLIC)

# --- programs and libraries ------------------------------------------------
install(TARGETS mkd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS sazukari_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# libmegaki.a and libsazukari.a beside the shared libraries.
set_target_properties(megaki_static PROPERTIES OUTPUT_NAME megaki)
set_target_properties(sazukari_static PROPERTIES OUTPUT_NAME sazukari)
install(TARGETS megaki megaki_static sazukari sazukari_static
  EXPORT MegakiTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The public headers: include/ holds nothing else.
file(GLOB mk_public_headers ${PROJECT_SOURCE_DIR}/include/*.h
  ${PROJECT_SOURCE_DIR}/include/*.def)
install(FILES ${mk_public_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT MegakiTargets NAMESPACE Megaki:: DESTINATION ${MK_CMAKEDIR})
configure_package_config_file(cmake/MegakiConfig.cmake.in
  ${PROJECT_BINARY_DIR}/MegakiConfig.cmake INSTALL_DESTINATION ${MK_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/MegakiConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/MegakiConfig.cmake
  ${PROJECT_BINARY_DIR}/MegakiConfigVersion.cmake DESTINATION ${MK_CMAKEDIR})

# --- what mkd runs by default ----------------------------------------------
install(DIRECTORY arcangelo/bin arcangelo/src
  DESTINATION ${CMAKE_INSTALL_DATADIR}/megaki/arcangelo)
install(DIRECTORY apps/hello DESTINATION ${CMAKE_INSTALL_DATADIR}/megaki/apps)

# --- manual pages and documentation ----------------------------------------
install(FILES man/mkd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES man/mkd.conf.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES man/sazukari.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
file(GLOB mk_docs ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES README.md ${mk_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES libsazukari/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}
  RENAME SAZUKARI.md)
install(FILES arcangelo/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}
  RENAME ARCANGELO.md)

# --- files that name installed paths: written at install time --------------
configure_file(cmake/MegakiInstallDirs.cmake.in
  ${PROJECT_BINARY_DIR}/MegakiInstallDirs.cmake @ONLY)
configure_file(cmake/MegakiInstallFiles.cmake.in
  ${PROJECT_BINARY_DIR}/MegakiInstallFiles.cmake @ONLY)
install(SCRIPT ${PROJECT_BINARY_DIR}/MegakiInstallFiles.cmake)
configure_file(cmake/MegakiInstallConf.cmake.in
  ${PROJECT_BINARY_DIR}/MegakiInstallConf.cmake @ONLY)
install(SCRIPT ${PROJECT_BINARY_DIR}/MegakiInstallConf.cmake
  COMPONENT conffile EXCLUDE_FROM_ALL)
include(cmake/MegakiPackage.cmake)
