# Fault injection: the PKCS#11 shim module (tests/p11shim) that forwards to
# SoftHSM2 and fails the Nth call on demand, and its own test. The hsm tests
# link tkm_p11shim_ctl to use it.

add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/p11shim ${CMAKE_CURRENT_BINARY_DIR}/p11shim)

find_program(TKM_SOFTHSM2_UTIL softhsm2-util REQUIRED)

add_executable(p11shim_test ${CMAKE_CURRENT_LIST_DIR}/p11shim_test.c)
target_include_directories(p11shim_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(p11shim_test PRIVATE TKM_SOFTHSM2_UTIL="${TKM_SOFTHSM2_UTIL}")
target_link_libraries(p11shim_test PRIVATE tkm_p11shim_ctl Threads::Threads)
add_test(NAME p11shim COMMAND p11shim_test)
set_tests_properties(p11shim PROPERTIES LABELS unit TIMEOUT 60)
