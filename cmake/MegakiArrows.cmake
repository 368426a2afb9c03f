# The arrows between Megaki's parts, checked when the build is configured:
# a target may link only what its row allows, a room's internals only its
# own tests, and no source reaches another directory with "../" (which
# would walk around the include directories that keep rooms apart). A
# violation stops the configuration with the offending edge named.
#
# Each row: "target|allowed,allowed,...", the targets it may link
# (PUBLIC or PRIVATE).
# Imported targets (OpenSSL::Crypto, Threads::Threads, PkgConfig::LIBUV)
# are named like any other.
set(MK_ARROWS
  "megaki_obj|OpenSSL::Crypto,Threads::Threads"
  "megaki|OpenSSL::Crypto,Threads::Threads"
  "megaki_static|OpenSSL::Crypto,Threads::Threads"
  "sazukari_obj|megaki_static,Threads::Threads,megaki_version"
  "sazukari|megaki_static,Threads::Threads"
  "sazukari_static|megaki_static,Threads::Threads"
  "sazukari_cli|sazukari_static"
  "sazukari_jni|sazukari_jni_headers,sazukari_static"
  "mkd_common|"
  "mkd_config|mkd_common"
  "mkd_keys|mkd_common,megaki_static"
  "mkd_backend|"
  "mkd_proxy|"
  "mkd_echo|mkd_backend,mkd_common,PkgConfig::LIBUV"
  "mkd_fcgi|mkd_common"
  "mkd_fastcgi|mkd_fcgi,mkd_backend,mkd_common,PkgConfig::LIBUV"
  "pegasus|mkd_backend,mkd_common,PkgConfig::LIBUV"
  "spawner|pegasus,mkd_common,PkgConfig::LIBUV"
  "yami|mkd_common,megaki_static,PkgConfig::LIBUV"
  "yugi|yami,mkd_backend,mkd_proxy,mkd_common,megaki_static,PkgConfig::LIBUV"
  "mkd_control|yugi,yami,mkd_common,PkgConfig::LIBUV"
  "mkd_metrics|yugi,yami,mkd_backend,mkd_common,PkgConfig::LIBUV"
  "mkd|mkd_config,mkd_keys,mkd_echo,mkd_proxy,mkd_fastcgi,pegasus,spawner,yugi,yami,mkd_control,mkd_metrics,mkd_common,megaki_static,megaki_version"
)

# Internal targets, and the directories every source of a target that
# links one must live in: a room's own tests (and, for libmegaki, the fuzz
# harnesses).
set(MK_INTERNALS
  "megaki_internal|libmegaki/tests,fuzz"
  "mkd_common_internal|mkd/common/tests"
  "mkd_config_internal|mkd/config/tests"
  "mkd_keys_internal|mkd/keys/tests"
  "mkd_backend_internal|mkd/backend/tests"
  "mkd_proxy_internal|mkd/proxy/tests"
  "mkd_echo_internal|mkd/echo/tests"
  "mkd_fcgi_internal|mkd/fcgi/tests"
  "mkd_fastcgi_internal|mkd/fastcgi/tests"
  "pegasus_internal|mkd/pegasus/tests"
  "yami_internal|mkd/yami/tests"
  "yugi_internal|mkd/yugi/tests"
  "mkd_control_internal|mkd/control/tests"
  "mkd_metrics_internal|mkd/metrics/tests"
  "spawner_internal|mkd/spawner/tests"
)

function(mk_collect_targets dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub ${subdirs})
    mk_collect_targets(${sub} more)
    list(APPEND targets ${more})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# What target t links: its own list, without generator expressions.
function(mk_links t out)
  get_target_property(type ${t} TYPE)
  set(links "")
  if(NOT type STREQUAL "INTERFACE_LIBRARY")
    get_target_property(l ${t} LINK_LIBRARIES)
    if(l)
      list(APPEND links ${l})
    endif()
  endif()
  get_target_property(l ${t} INTERFACE_LINK_LIBRARIES)
  if(l)
    list(APPEND links ${l})
  endif()
  list(FILTER links EXCLUDE REGEX "^\\$<")
  list(REMOVE_DUPLICATES links)
  set(${out} ${links} PARENT_SCOPE)
endfunction()

# Every source of target t lies under one of dirs (relative to the
# project), or the configuration stops.
function(mk_check_sources_in t dirs internal)
  get_target_property(sources ${t} SOURCES)
  get_target_property(tdir ${t} SOURCE_DIR)
  foreach(src ${sources})
    if(NOT IS_ABSOLUTE ${src})
      set(src ${tdir}/${src})
    endif()
    file(RELATIVE_PATH rsrc ${PROJECT_SOURCE_DIR} ${src})
    set(ok 0)
    foreach(d ${dirs})
      string(LENGTH "${d}/" dl)
      string(SUBSTRING "${rsrc}" 0 ${dl} head)
      if(head STREQUAL "${d}/")
        set(ok 1)
      endif()
    endforeach()
    if(NOT ok)
      message(FATAL_ERROR "arrows: ${t} links ${internal} but builds "
        "${rsrc}: a room's internals are for its own tests")
    endif()
  endforeach()
endfunction()

function(mk_check_arrows)
  foreach(row ${MK_ARROWS})
    string(REPLACE "|" ";" parts "${row}")
    list(GET parts 0 t)
    list(LENGTH parts n)
    set(allowed "")
    if(n GREATER 1)
      list(GET parts 1 a)
      string(REPLACE "," ";" allowed "${a}")
    endif()
    if(NOT TARGET ${t})
      message(FATAL_ERROR "arrows: no target ${t} (update MK_ARROWS)")
    endif()
    mk_links(${t} links)
    foreach(l ${links})
      if(NOT l IN_LIST allowed)
        message(FATAL_ERROR "arrows: ${t} may not link ${l} "
          "(cmake/MegakiArrows.cmake)")
      endif()
    endforeach()
  endforeach()

  mk_collect_targets(${PROJECT_SOURCE_DIR} all)
  foreach(row ${MK_INTERNALS})
    string(REPLACE "|" ";" parts "${row}")
    list(GET parts 0 internal)
    list(GET parts 1 a)
    string(REPLACE "," ";" dirs "${a}")
    foreach(t ${all})
      mk_links(${t} links)
      if(NOT internal IN_LIST links OR t MATCHES "_internal$")
        continue()
      endif()
      mk_check_sources_in(${t} "${dirs}" ${internal})
    endforeach()
  endforeach()

  # No source includes a header by walking up: "../" bypasses the include
  # directories that keep the rooms apart.
  file(GLOB_RECURSE srcs RELATIVE ${PROJECT_SOURCE_DIR}
    ${PROJECT_SOURCE_DIR}/libmegaki/*.[ch]
    ${PROJECT_SOURCE_DIR}/libsazukari/*.[ch]
    ${PROJECT_SOURCE_DIR}/mkd/*.[ch]
    ${PROJECT_SOURCE_DIR}/bindings/*.[ch]
    ${PROJECT_SOURCE_DIR}/tests/*.[ch]
    ${PROJECT_SOURCE_DIR}/fuzz/*.[ch]
    ${PROJECT_SOURCE_DIR}/bench/*.[ch]
    ${PROJECT_SOURCE_DIR}/examples/*.[ch])
  foreach(src ${srcs})
    file(STRINGS ${PROJECT_SOURCE_DIR}/${src} bad REGEX "^#include \"\\.\\./")
    if(bad)
      message(FATAL_ERROR "arrows: ${src} includes by \"../\": ${bad}")
    endif()
  endforeach()
endfunction()
