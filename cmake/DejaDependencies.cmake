# Finds deja's dependencies, all Debian 12 packages; a missing one stops configure with the name of
# the package that provides it (`make deps` installs them all).
function(deja_require_package found package)
  if(NOT ${found})
    message(FATAL_ERROR "deja: missing dependency; install the Debian package '${package}' (apt-get install ${package}), or run 'make deps'")
  endif()
endfunction()

find_package(Threads REQUIRED)
find_package(fmt QUIET)
deja_require_package(fmt_FOUND libfmt-dev)

if(DEJA_BUILD_TESTS)
  find_package(Catch2 2 QUIET)
  deja_require_package(Catch2_FOUND catch2)
  find_package(rapidcheck QUIET)
  deja_require_package(rapidcheck_FOUND librapidcheck-dev)
endif()

find_package(PkgConfig QUIET)
deja_require_package(PKG_CONFIG_FOUND pkg-config)
pkg_check_modules(LIBURING QUIET IMPORTED_TARGET liburing)
deja_require_package(LIBURING_FOUND liburing-dev)
