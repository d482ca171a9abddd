/*
 * tkm_methods.h - the method tables tkmd serves.
 *
 * Each table is one const array of {name, handler, permission, flags} in its
 * own file. tkm_methods_debug exists only in the test binary tkmd-test
 * (tkm_methods_debug.c is linked into nothing else).
 */
#ifndef TKM_METHODS_H
#define TKM_METHODS_H

#include "tkm_rpc.h"

/* sys.ping, sys.info */
extern const tkm_rpc_table tkm_methods_sys;

/* audit.verify, audit.list, audit.public_key, audit.checkpoint, audit.archive, store.backup */
extern const tkm_rpc_table tkm_methods_audit;

/* auth.*, operator.*, role.* */
extern const tkm_rpc_table tkm_methods_auth;

/* approval.*, policy.* */
extern const tkm_rpc_table tkm_methods_approval;

/* terminal.*: the registry and the lifecycle */
extern const tkm_rpc_table tkm_methods_terminal;

/* debug.sleep: test builds only (TKM_TEST_METHODS) */
extern const tkm_rpc_table tkm_methods_debug;

#endif /* TKM_METHODS_H */
