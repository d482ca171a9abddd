# Store tests: the group-commit writer and the audit chain on a real SQLite
# file, with tampering done behind the store's back (tests/store_test.c).

add_executable(store_test ${CMAKE_CURRENT_LIST_DIR}/store_test.c)
target_include_directories(store_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# tkm_store brings SQLite, libsodium and threads (PUBLIC).
target_link_libraries(store_test PRIVATE tkm_store)
add_test(NAME store COMMAND store_test)
set_tests_properties(store PROPERTIES LABELS unit TIMEOUT 300)
