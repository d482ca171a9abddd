# tkmd under SIGKILL (tests/service_crash_test.c): threads import, add and
# enroll terminals through libtkm while tkmd is killed at random moments, 20
# times; after every kill the database file is checked with SQLite, the audit
# verifier and the real `tkmctl audit verify --db`, and tkmd restarts on it.

tkm_integration_test(service_crash 240)
# The offline checks: SQLite on the file, tkm_audit_verify_file, and the
# fixture's copies for the negative control.
target_link_libraries(service_crash_test PRIVATE tkm_store tkm_store_fixture PkgConfig::SQLITE)
add_dependencies(service_crash_test tkmctl)
target_compile_definitions(service_crash_test PRIVATE TKM_TKMCTL_PATH="$<TARGET_FILE:tkmctl>")
