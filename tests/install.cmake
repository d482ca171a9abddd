# libtkm and its packaging: unit tests of the client library, and the install
# test that builds programs outside the tree against an installed tkm.

add_executable(client_test ${CMAKE_CURRENT_LIST_DIR}/client_test.c)
target_include_directories(client_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(client_test PRIVATE TKM_VERSION_STRING="${PROJECT_VERSION}")
target_link_libraries(client_test PRIVATE tkm_static Threads::Threads)
add_test(NAME client COMMAND client_test)
set_tests_properties(client PROPERTIES LABELS unit TIMEOUT 120)

# `cmake --install` into a temporary prefix, then find_package(tkm) and
# pkg-config consumers, each linked shared and static, must build and run.
# A sanitizer build hands its flags on, since its objects need the runtime.
set(TKM_INSTALL_TEST_FLAGS "")
if(TKM_SANITIZE)
  set(TKM_INSTALL_TEST_FLAGS "-fsanitize=address,undefined")
endif()
add_test(NAME install
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/install/run.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR} ${CMAKE_C_COMPILER} ${PROJECT_VERSION}
          "${TKM_INSTALL_TEST_FLAGS}")
set_tests_properties(install PROPERTIES LABELS install TIMEOUT 300)
