# Integration tests: each program starts the real test daemon (tkmd-test) on a
# temporary IPC path and loopback TCP ports, with its own SoftHSM2 token and
# configuration (tests/tkm_testenv.c), and talks to it as a client would.

set(TKM_IT_DIR ${CMAKE_CURRENT_LIST_DIR})

if(NOT TARGET tkmd-test)
  message(FATAL_ERROR "integration tests need the tkmd-test target (service/CMakeLists.txt)")
endif()

find_program(TKM_SOFTHSM2_UTIL softhsm2-util REQUIRED)
find_program(TKM_OPENSSL openssl REQUIRED)
# The tkmctl test checks --json output with python3's json.tool; tools/test
# installs python3 when there is none.
find_program(TKM_PYTHON3 python3 REQUIRED)
find_file(TKM_SOFTHSM_MODULE libsofthsm2.so
  PATHS /usr/lib/softhsm /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/softhsm
  NO_DEFAULT_PATH REQUIRED)

# The harness: temporary directory, token, ports, start and stop of tkmd-test.
add_library(tkm_testenv STATIC ${TKM_IT_DIR}/tkm_testenv.c)
target_include_directories(tkm_testenv PUBLIC ${TKM_IT_DIR})
target_link_libraries(tkm_testenv PUBLIC tkm_static Threads::Threads)
target_compile_definitions(tkm_testenv PRIVATE
  TKM_TKMD_TEST_PATH="$<TARGET_FILE:tkmd-test>"
  TKM_SOFTHSM2_UTIL="${TKM_SOFTHSM2_UTIL}"
  TKM_SOFTHSM_MODULE="${TKM_SOFTHSM_MODULE}")
add_dependencies(tkm_testenv tkmd-test)

# tkm_integration_test(NAME TIMEOUT): NAME_test.c becomes the ctest test NAME.
function(tkm_integration_test name timeout)
  add_executable(${name}_test ${TKM_IT_DIR}/${name}_test.c)
  target_link_libraries(${name}_test PRIVATE tkm_testenv)
  add_test(NAME ${name} COMMAND ${name}_test)
  # tkmd signs audit checkpoints with SoftHSM2's Ed25519 from its first
  # start; under ASan, SoftHSM2's own leaks (lsan-softhsm2.supp) are not tkm's.
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT ${timeout}
    ENVIRONMENT "LSAN_OPTIONS=suppressions=${TKM_IT_DIR}/lsan-softhsm2.supp")
endfunction()

tkm_integration_test(service_ping 240)
tkm_integration_test(service_slow 120)
tkm_integration_test(service_malformed 240)
tkm_integration_test(service_oversize 120)
tkm_integration_test(service_config 180)
tkm_integration_test(service_tls 120)
target_compile_definitions(service_tls_test PRIVATE TKM_OPENSSL="${TKM_OPENSSL}")
tkm_integration_test(tkmctl 120)
add_dependencies(tkmctl_test tkmctl)
target_compile_definitions(tkmctl_test PRIVATE TKM_TKMCTL_PATH="$<TARGET_FILE:tkmctl>"
                                               TKM_PYTHON3="${TKM_PYTHON3}")

# The client written only from docs/protocol.md: nng and libcbor, no libtkm
# code in the test itself (the harness uses libtkm to see tkmd is up).
tkm_integration_test(protocol_client 60)
target_link_libraries(protocol_client_test PRIVATE nng::nng PkgConfig::CBOR)

# Audit log and backup through tkmd: init, paging, checkpoints, backup,
# archive, fail-closed records; copies are checked with the offline verifier.
tkm_integration_test(service_audit 300)
target_link_libraries(service_audit_test PRIVATE tkm_store tkm_store_fixture)
add_dependencies(service_audit_test tkmctl)
target_compile_definitions(service_audit_test PRIVATE TKM_TKMCTL_PATH="$<TARGET_FILE:tkmctl>")

# The terminal registry through tkmd: add, import, list, lifecycle, histories,
# a station's site scope.
tkm_integration_test(service_terminal 180)
add_dependencies(service_terminal_test tkmctl tkm-terminal tkm-station)
target_compile_definitions(service_terminal_test PRIVATE
  TKM_TKMCTL_PATH="$<TARGET_FILE:tkmctl>"
  TKM_TERMINAL_PATH="$<TARGET_FILE:tkm-terminal>"
  TKM_STATION_PATH="$<TARGET_FILE:tkm-station>")
