# Identities, authentication, role permissions and dual control (issue 5) end
# to end through tkmd-test: the permission matrix generated from
# policy/default.policy, lockout, tokens, device signatures over a raw nng
# socket, dual control, password rules, separation of duties, and no secrets
# in the log, the audit records or the database file.

tkm_integration_test(service_auth 120)
target_link_libraries(service_auth_test PRIVATE tkm_policy tkm_store nng::nng)
target_compile_definitions(service_auth_test PRIVATE
  TKM_DEFAULT_POLICY="${PROJECT_SOURCE_DIR}/policy/default.policy")
# Under ASan, SoftHSM2's own leaks through libcrypto in tkmd-test are not tkm's.
set_tests_properties(service_auth PROPERTIES
  ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan-softhsm2.supp")
