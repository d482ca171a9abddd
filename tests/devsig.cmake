# Request credentials: device signatures, auth maps, key files, the replay
# cache and libtkm attaching credentials, without tkmd. tkm_nonce.c is compiled
# in directly so that the test does not pull in the whole daemon.

add_executable(devsig_test ${CMAKE_CURRENT_LIST_DIR}/devsig_test.c
                           ${PROJECT_SOURCE_DIR}/service/tkm_nonce.c)
target_include_directories(devsig_test PRIVATE ${PROJECT_SOURCE_DIR}/client
                                               ${PROJECT_SOURCE_DIR}/service
                                               ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(devsig_test PRIVATE tkm_static nng::nng PkgConfig::CBOR PkgConfig::SODIUM
                                          Threads::Threads)
add_test(NAME devsig COMMAND devsig_test)
set_tests_properties(devsig PROPERTIES LABELS unit TIMEOUT 120)
