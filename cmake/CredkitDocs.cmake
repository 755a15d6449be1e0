# `cmake --build build --target docs` renders the API reference from the doc comments.
find_package(Doxygen QUIET)
if(DOXYGEN_FOUND)
  set(DOXYGEN_PROJECT_NAME credkit)
  set(DOXYGEN_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/docs/api)
  set(DOXYGEN_EXTRACT_ALL YES)
  set(DOXYGEN_WARN_AS_ERROR NO)
  set(DOXYGEN_EXCLUDE_SYMBOLS "detail")
  set(DOXYGEN_USE_MDFILE_AS_MAINPAGE ${CMAKE_CURRENT_SOURCE_DIR}/docs/guide.md)
  doxygen_add_docs(docs ${CMAKE_CURRENT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR}/docs
    COMMENT "Generating the credkit API reference into ${CMAKE_CURRENT_BINARY_DIR}/docs/api")
endif()
