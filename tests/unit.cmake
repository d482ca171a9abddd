# Unit tests: one program per module, each linking only what it tests.

add_executable(cbor_test ${CMAKE_CURRENT_LIST_DIR}/cbor_test.c $<TARGET_OBJECTS:tkm_proto>)
target_include_directories(cbor_test PRIVATE ${PROJECT_SOURCE_DIR}/client
                                             ${PROJECT_SOURCE_DIR}/client/include
                                             ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(cbor_test PRIVATE PkgConfig::CBOR PkgConfig::SODIUM)
add_test(NAME cbor COMMAND cbor_test)

add_executable(wire_test ${CMAKE_CURRENT_LIST_DIR}/wire_test.c $<TARGET_OBJECTS:tkm_proto>)
target_include_directories(wire_test PRIVATE ${PROJECT_SOURCE_DIR}/client
                                             ${PROJECT_SOURCE_DIR}/client/include
                                             ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(wire_test PRIVATE PkgConfig::CBOR PkgConfig::SODIUM)
add_test(NAME wire COMMAND wire_test)
set_tests_properties(cbor wire PROPERTIES LABELS unit TIMEOUT 60)
