# The terminal registry's store layer (issue 6) on a real SQLite file through
# the writer: records, partial uniqueness, filtered cursor pages over 10,000
# rows, import idempotency, states, append-only histories, enrollment codes
# and batched last seen, with the audit chain verified at the end
# (tests/store_terminal_test.c).

add_executable(store_terminal_test ${CMAKE_CURRENT_LIST_DIR}/store_terminal_test.c)
target_include_directories(store_terminal_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(store_terminal_test PRIVATE tkm_store tkm_store_fixture)
add_test(NAME store_terminal COMMAND store_terminal_test)
set_tests_properties(store_terminal PROPERTIES LABELS unit TIMEOUT 300)
