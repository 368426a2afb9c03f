# The Debian package, built by CPack's DEB generator from the install
# rules of cmake/MegakiInstall.cmake:
#   cpack -G DEB --config BUILD/CPackConfig.cmake
# CPack rather than debian/ + dpkg-buildpackage: the install rules are
# already the one list of what goes where, and CPack packs the build tree
# as it is, so the package test needs no second build of the project and
# no debhelper; the maintainer scripts (dist/debian/) are those
# dh_installsystemd would write, plus the users and the data directory.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME megaki)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Megaki maintainers <megaki@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Megaki protocol v2: the daemon mkd, the client sazukari and libraries")
set(CPACK_PACKAGE_DESCRIPTION
  "mkd serves a PHP application over the Megaki protocol, an authenticated \
and encrypted request/response protocol whose clients pin the server's \
public key. This package holds mkd (with its systemd unit, enabled on \
installation), the client sazukari, libmegaki and libsazukari with their \
headers, pkg-config files and CMake package, and Arcangelo, the PHP worker \
shell.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# Library dependencies from dpkg-shlibdeps; PHP for the workers, adduser
# and init-system-helpers for the maintainer scripts.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "php-cli (>= 2:8.2) | php8.2-cli, adduser, init-system-helpers (>= 1.54~)")
# The paths written into the package's files (pkg-config, the unit) are
# those under /usr, with /etc for the configuration: DESTDIR packing, so
# the install scripts see the real prefix.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Everything a plain install installs, and /etc/megaki/mkd.conf.
set(CPACK_INSTALL_CMAKE_PROJECTS
  "${PROJECT_BINARY_DIR};megaki;ALL;/"
  "${PROJECT_BINARY_DIR};megaki;conffile;/")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/dist/debian/conffiles
  ${PROJECT_SOURCE_DIR}/dist/debian/postinst
  ${PROJECT_SOURCE_DIR}/dist/debian/prerm
  ${PROJECT_SOURCE_DIR}/dist/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
