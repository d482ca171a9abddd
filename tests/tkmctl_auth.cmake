# tkmctl's identity commands and session file (tests/tkmctl_auth_test.c): the
# real tkmctl binary against a scripted nng server in the test that records
# what tkmctl sends (passwords, the session token) and sends pending
# approvals, malformed and hostile replies. Also the password prompt on a
# pseudo-terminal (echo off, restored after SIGINT). --json output is checked
# with python3's json.tool.

find_program(TKM_PYTHON3 python3 REQUIRED)
add_executable(tkmctl_auth_test ${CMAKE_CURRENT_LIST_DIR}/tkmctl_auth_test.c)
target_include_directories(tkmctl_auth_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tkmctl_auth_test PRIVATE tkm_static Threads::Threads)
add_dependencies(tkmctl_auth_test tkmctl)
target_compile_definitions(tkmctl_auth_test PRIVATE
    TKM_TKMCTL_PATH="$<TARGET_FILE:tkmctl>"
    TKM_PYTHON3="${TKM_PYTHON3}"
    TKM_DEFAULT_POLICY="${PROJECT_SOURCE_DIR}/policy/default.policy")
add_test(NAME tkmctl_auth COMMAND tkmctl_auth_test)
set_tests_properties(tkmctl_auth PROPERTIES LABELS unit TIMEOUT 180)
