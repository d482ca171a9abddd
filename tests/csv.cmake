# CSV reader of terminal import: header mapping, quoting, line numbers, cell
# rules, limits, and a generated 10,000-row file.

add_executable(csv_test ${CMAKE_CURRENT_LIST_DIR}/csv_test.c)
target_include_directories(csv_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(csv_test PRIVATE tkm_csv)
add_test(NAME csv COMMAND csv_test)
set_tests_properties(csv PROPERTIES LABELS unit TIMEOUT 60)
