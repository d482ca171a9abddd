# tkmctl's audit commands (tests/tkmctl_audit_test.c): the real tkmctl
# binary. Offline, `audit verify --db FILE --pubkey FILE` on a database
# written by the store's own writer, intact and tampered (checkpoints signed
# with a libsodium key). Online, verify, pubkey, export, tail, archive,
# checkpoint and backup against a scripted nng server in the test that also
# sends malformed replies. --json output is checked with python3's json.tool.
# tests/service_audit_test.c drives the same commands against a real tkmd.

find_program(TKM_PYTHON3 python3 REQUIRED)
add_executable(tkmctl_audit_test ${CMAKE_CURRENT_LIST_DIR}/tkmctl_audit_test.c)
target_include_directories(tkmctl_audit_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# tkm_store brings SQLite, libsodium and threads (PUBLIC).
target_link_libraries(tkmctl_audit_test PRIVATE tkm_store tkm_store_fixture)
add_dependencies(tkmctl_audit_test tkmctl)
target_compile_definitions(tkmctl_audit_test PRIVATE TKM_TKMCTL_PATH="$<TARGET_FILE:tkmctl>"
                                                     TKM_PYTHON3="${TKM_PYTHON3}")
add_test(NAME tkmctl_audit COMMAND tkmctl_audit_test)
set_tests_properties(tkmctl_audit PROPERTIES LABELS unit TIMEOUT 120)
