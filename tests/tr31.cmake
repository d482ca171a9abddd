# TR-31 / X9.143 key block format layer (hsm/tkm_tr31.c): parsing, building
# and the standard's rules, against the published cases copied into
# tests/vectors/tr31_format.h. Pure C: no token, no PKCS#11, so the test
# compiles the one module it tests instead of linking tkm_hsm.

add_executable(tr31_format_test ${CMAKE_CURRENT_LIST_DIR}/tr31_format_test.c
                                ${PROJECT_SOURCE_DIR}/hsm/tkm_tr31.c
                                ${PROJECT_SOURCE_DIR}/client/tkm_why.c)
target_include_directories(tr31_format_test PRIVATE ${PROJECT_SOURCE_DIR}/hsm
                                                    ${PROJECT_SOURCE_DIR}/client
                                                    ${PROJECT_SOURCE_DIR}/client/include
                                                    ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tr31_format_test PRIVATE PkgConfig::SODIUM)
add_test(NAME tr31_format COMMAND tr31_format_test)
set_tests_properties(tr31_format PROPERTIES LABELS unit TIMEOUT 60)
