# The device tools tkm-terminal and tkm-station (tests/tools_device_test.c):
# the real binaries against a scripted nng server in the test that verifies
# the enrollment signature with libsodium and signed requests with
# tkm_devsig_verify, and checks the state directory, key files and output.

add_executable(tools_device_test ${CMAKE_CURRENT_LIST_DIR}/tools_device_test.c)
target_include_directories(tools_device_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tools_device_test PRIVATE tkm_static Threads::Threads)
add_dependencies(tools_device_test tkm-terminal tkm-station)
target_compile_definitions(tools_device_test PRIVATE
    TKM_TERMINAL_PATH="$<TARGET_FILE:tkm-terminal>"
    TKM_STATION_PATH="$<TARGET_FILE:tkm-station>")
add_test(NAME tools_device COMMAND tools_device_test)
set_tests_properties(tools_device PROPERTIES LABELS unit TIMEOUT 120)
