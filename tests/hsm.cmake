# hsm/ tests: every test makes its own SoftHSM2 token in a temporary
# directory (hsm_fixture.c) and drives the real module, or the
# fault-injecting shim in front of it (tests/p11shim), through tkm_hsm_*.

find_program(TKM_SOFTHSM2_UTIL softhsm2-util REQUIRED)
find_file(TKM_SOFTHSM_MODULE libsofthsm2.so
  PATHS /usr/lib/softhsm /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/softhsm
  NO_DEFAULT_PATH REQUIRED)
# OpenSC's pkcs11-tool lists the token's objects as an operator would
# (tools/test installs the opensc package).
find_program(TKM_PKCS11_TOOL pkcs11-tool REQUIRED)

add_library(tkm_hsm_fixture STATIC ${CMAKE_CURRENT_LIST_DIR}/hsm_fixture.c)
target_include_directories(tkm_hsm_fixture PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(tkm_hsm_fixture PRIVATE
  TKM_SOFTHSM2_UTIL="${TKM_SOFTHSM2_UTIL}"
  TKM_SOFTHSM_MODULE="${TKM_SOFTHSM_MODULE}")
target_link_libraries(tkm_hsm_fixture PUBLIC tkm_hsm tkm_static)

# tkm_hsm_test(NAME TIMEOUT): hsm_NAME_test.c becomes the ctest test hsm_NAME.
function(tkm_hsm_test name timeout)
  add_executable(hsm_${name}_test ${CMAKE_CURRENT_LIST_DIR}/hsm_${name}_test.c)
  target_link_libraries(hsm_${name}_test PRIVATE tkm_hsm_fixture Threads::Threads)
  target_compile_definitions(hsm_${name}_test PRIVATE
    TKM_SOFTHSM_MODULE="${TKM_SOFTHSM_MODULE}"
    TKM_PKCS11_TOOL="${TKM_PKCS11_TOOL}")
  add_test(NAME hsm_${name} COMMAND hsm_${name}_test)
  # Under ASan, SoftHSM2's own leaks (tests/lsan-softhsm2.supp) are not tkm's.
  set_tests_properties(hsm_${name} PROPERTIES LABELS unit TIMEOUT ${timeout}
    ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan-softhsm2.supp")
endfunction()

foreach(t login keys dukpt seal scale)
  tkm_hsm_test(${t} 120)
endforeach()

# tkmd logs in at start (PIN from hsm.pin_file or hsm.pin_env): driven through
# the integration harness (tests/integration.cmake).
add_executable(hsm_tkmd_test ${CMAKE_CURRENT_LIST_DIR}/hsm_tkmd_test.c)
target_link_libraries(hsm_tkmd_test PRIVATE tkm_testenv)
target_compile_definitions(hsm_tkmd_test PRIVATE
  TKM_SOFTHSM_MODULE="${TKM_SOFTHSM_MODULE}")
add_test(NAME hsm_tkmd COMMAND hsm_tkmd_test)
set_tests_properties(hsm_tkmd PROPERTIES LABELS integration TIMEOUT 180
  ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan-softhsm2.supp")

# Every tkm_hsm_ operation under injected failures, through the shim module
# of tests/hsm_fault.cmake (which defines tkm_p11shim_ctl).
tkm_hsm_test(fault 600)
target_link_libraries(hsm_fault_test PRIVATE tkm_p11shim_ctl)
