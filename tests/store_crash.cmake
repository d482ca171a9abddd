# The store crash test (tests/store_crash_test.c): a child process writes
# state rows and their audit records through the store from several threads
# and reports each acknowledged write; the parent kills it with SIGKILL at
# random moments, 20 times, and checks the database after every kill with
# SQLite, the audit verifier and the real `tkmctl audit verify --db`.

add_executable(store_crash_test ${CMAKE_CURRENT_LIST_DIR}/store_crash_test.c)
target_include_directories(store_crash_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# tkm_store brings SQLite, libsodium and threads (PUBLIC); the fixture copies
# the database for the negative control.
target_link_libraries(store_crash_test PRIVATE tkm_store tkm_store_fixture)
add_dependencies(store_crash_test tkmctl)
target_compile_definitions(store_crash_test PRIVATE TKM_TKMCTL_PATH="$<TARGET_FILE:tkmctl>")
add_test(NAME store_crash COMMAND store_crash_test)
set_tests_properties(store_crash PROPERTIES LABELS unit TIMEOUT 120)
