include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS credkit EXPORT credkitTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The prometheus component's header is installed with the component, when it is built.
install(DIRECTORY include/credkit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} PATTERN prometheus EXCLUDE)
install(EXPORT credkitTargets NAMESPACE credkit:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/credkit)
if(TARGET credkit_prometheus)
  install(TARGETS credkit_prometheus EXPORT credkitPrometheusTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(DIRECTORY include/credkit/prometheus DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/credkit)
  install(EXPORT credkitPrometheusTargets NAMESPACE credkit:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/credkit)
endif()

# The config file of a static credkit finds every library the archive links.
if(CREDKIT_SHARED)
  set(CREDKIT_PACKAGE_STATIC FALSE)
else()
  set(CREDKIT_PACKAGE_STATIC TRUE)
endif()
set(CREDKIT_PACKAGE_KEYCHAIN_MODULES "")
if(LIBSECRET_FOUND)
  list(APPEND CREDKIT_PACKAGE_KEYCHAIN_MODULES LIBSECRET=libsecret-1)
endif()
if(LIBKEYUTILS_FOUND)
  list(APPEND CREDKIT_PACKAGE_KEYCHAIN_MODULES LIBKEYUTILS=libkeyutils)
endif()
string(REPLACE ";" " " CREDKIT_PACKAGE_KEYCHAIN_MODULES "${CREDKIT_PACKAGE_KEYCHAIN_MODULES}")
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/credkitConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/credkitConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/credkit)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/credkitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/credkitConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/credkitConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/credkit)
