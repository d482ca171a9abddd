# TR-31 / X9.143 key blocks, crypto layer (hsm/tkm_hsm_tr31.c): versions B
# and D through a real SoftHSM2 token, against the published cases copied
# into tests/vectors/tr31_crypto.h. Needs tests/hsm.cmake (tkm_hsm_fixture)
# and hsm/tkm_hsm_tr31.c + hsm/tkm_tr31.c in the tkm_hsm library.

add_executable(hsm_tr31_test ${CMAKE_CURRENT_LIST_DIR}/hsm_tr31_test.c)
target_include_directories(hsm_tr31_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(hsm_tr31_test PRIVATE tkm_hsm_fixture Threads::Threads)
add_test(NAME hsm_tr31 COMMAND hsm_tr31_test)
set_tests_properties(hsm_tr31 PROPERTIES LABELS unit TIMEOUT 300
  ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan-softhsm2.supp")
