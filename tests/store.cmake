# Store tests: the group-commit writer and the audit chain on a real SQLite
# file, with tampering done behind the store's back (tests/store_test.c).

# Copies and raw SQL on database files, shared with tests/tkmctl_audit.cmake.
add_library(tkm_store_fixture STATIC ${CMAKE_CURRENT_LIST_DIR}/store_fixture.c)
target_include_directories(tkm_store_fixture PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tkm_store_fixture PUBLIC PkgConfig::SQLITE)

add_executable(store_test ${CMAKE_CURRENT_LIST_DIR}/store_test.c)
target_include_directories(store_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# tkm_store brings SQLite, libsodium and threads (PUBLIC).
target_link_libraries(store_test PRIVATE tkm_store tkm_store_fixture)
add_test(NAME store COMMAND store_test)
set_tests_properties(store PROPERTIES LABELS unit TIMEOUT 300)
