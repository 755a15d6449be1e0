# Every dependency comes from Debian packages installed by scripts/setup.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED)                 # header-only parts: Asio, Beast
find_package(OpenSSL 3 REQUIRED)
find_package(CURL REQUIRED)
find_package(ZLIB REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
# The OS keychains (include/credkit/caches/keychain_key.hpp) are optional: a backend whose
# library is missing is still declared and fails with keychain_unavailable.
if(CREDKIT_KEYCHAIN)
  pkg_check_modules(LIBSECRET QUIET IMPORTED_TARGET libsecret-1)
  pkg_check_modules(LIBKEYUTILS QUIET IMPORTED_TARGET libkeyutils)
endif()
foreach(keychain_library IN ITEMS LIBSECRET LIBKEYUTILS)
  if(NOT ${keychain_library}_FOUND)
    message(STATUS "credkit: ${keychain_library} not found or CREDKIT_KEYCHAIN off: that keychain fails with keychain_unavailable")
  endif()
endforeach()
if(CREDKIT_BUILD_TESTS)
  find_package(doctest REQUIRED)
endif()
# Optional: the credkit::prometheus component (Debian prometheus-cpp-dev), built when found.
option(CREDKIT_PROMETHEUS "Build the credkit::prometheus component when prometheus-cpp is found" ON)
if(CREDKIT_PROMETHEUS)
  find_package(prometheus-cpp CONFIG QUIET)
endif()
