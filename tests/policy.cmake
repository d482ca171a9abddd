# Policy engine tests: parsing, decisions, canonical form, diff, and the
# permission matrix of the shipped policy/default.policy.

add_executable(policy_test ${CMAKE_CURRENT_LIST_DIR}/policy_test.c)
target_include_directories(policy_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(policy_test PRIVATE tkm_policy)
add_test(NAME policy COMMAND policy_test ${PROJECT_SOURCE_DIR}/policy/default.policy)
set_tests_properties(policy PROPERTIES LABELS unit TIMEOUT 60)
