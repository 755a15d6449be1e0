# Applied to every target of the build so the library, tests and samples agree.
if(CREDKIT_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
elseif(CREDKIT_SANITIZE STREQUAL "thread")
  # -Wno-tsan: Asio's atomic_thread_fence calls draw one warning per translation unit.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  add_link_options(-fsanitize=thread)
elseif(NOT CREDKIT_SANITIZE STREQUAL "")
  message(FATAL_ERROR "CREDKIT_SANITIZE must be '', 'address' or 'thread', not '${CREDKIT_SANITIZE}'")
endif()
