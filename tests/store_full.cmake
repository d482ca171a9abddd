# Disk full: the store on a real SQLite file whose growth a VFS shim refuses
# with SQLITE_FULL on demand (tests/store_full_test.c, tests/store_fullvfs.c).

add_executable(store_full_test ${CMAKE_CURRENT_LIST_DIR}/store_full_test.c
                               ${CMAKE_CURRENT_LIST_DIR}/store_fullvfs.c)
target_include_directories(store_full_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# tkm_store brings SQLite, libsodium, threads and libtkm (PUBLIC).
target_link_libraries(store_full_test PRIVATE tkm_store)
add_test(NAME store_full COMMAND store_full_test)
set_tests_properties(store_full PROPERTIES LABELS unit TIMEOUT 120)
