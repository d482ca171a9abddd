# tkmctl's terminal commands (tests/tkmctl_terminal_test.c): the real tkmctl
# binary against a scripted nng server in the test that records what tkmctl
# sends (params, list cursors, the rows of each import batch) and sends
# malformed and hostile replies. Argument checks, import's bad rows by file
# line, batching, export's CSV quoting, strict reply decoding. --json output
# is checked with python3's json.tool.

find_program(TKM_PYTHON3 python3 REQUIRED)
add_executable(tkmctl_terminal_test ${CMAKE_CURRENT_LIST_DIR}/tkmctl_terminal_test.c)
target_include_directories(tkmctl_terminal_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tkmctl_terminal_test PRIVATE tkm_static Threads::Threads)
add_dependencies(tkmctl_terminal_test tkmctl)
target_compile_definitions(tkmctl_terminal_test PRIVATE
    TKM_TKMCTL_PATH="$<TARGET_FILE:tkmctl>"
    TKM_PYTHON3="${TKM_PYTHON3}")
add_test(NAME tkmctl_terminal COMMAND tkmctl_terminal_test)
set_tests_properties(tkmctl_terminal PROPERTIES LABELS unit TIMEOUT 120)
