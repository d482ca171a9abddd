/*
 * tkm_gate.h - the one place where tkmd decides whether a request may run:
 * authentication (operator session or device signature), the forced
 * password change, the policy check, and dual control. tkm_rpc calls
 * tkm_gate_check() before every handler.
 *
 * Every refusal is audited here, with the source, before the reply leaves.
 * A request to a dual-control method becomes a pending approval; the
 * approval.* methods (tkm_methods_approval.c) run it later as its
 * initiator, once a different principal allowed to call it approves.
 *
 * The policy in effect lives in the database (table policy); the gate holds
 * the parsed newest version and swaps it when policy.apply stores a new one.
 */
#ifndef TKM_GATE_H
#define TKM_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_auth.h"
#include "tkm_policy.h"
#include "tkm_rpc.h"
#include "tkm_store.h"

typedef struct tkm_gate tkm_gate;

typedef struct tkm_gate_cfg {
	uint64_t signature_window_s; /* device request timestamps: now +/- this */
	uint64_t approval_ttl_s;     /* a pending request expires after this */
	size_t nonce_entries;        /* replay cache size */
} tkm_gate_cfg;

/* Loads the newest policy from st (TKM_E_FAILED_PRECONDITION if there is none). */
TKM_MUST_CHECK tkm_err tkm_gate_new(const tkm_gate_cfg *cfg, tkm_store *st, tkm_auth *auth,
                                    tkm_gate **out, char *why, size_t why_len);
void tkm_gate_free(tkm_gate *g);

/* The tkm_rpc_gate_fn: gate is a tkm_gate. */
TKM_MUST_CHECK tkm_err tkm_gate_check(void *gate, tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                                      const tkm_cbor_val *auth, tkm_cbor_w *result, bool *answered,
                                      char *why, size_t why_len);

/*
 * May who call method with params now (the initiator of a request that is
 * being approved: roles may have changed since)? TKM_E_PERMISSION_DENIED
 * with the reason otherwise.
 */
TKM_MUST_CHECK tkm_err tkm_gate_allowed(void *gate, const tkm_rpc_who *who, const char *method,
                                        const tkm_cbor_val *params, char *why, size_t why_len);

/*
 * May who approve a pending call of method with params (the policy's
 * approvers, or whoever may call it)? TKM_E_PERMISSION_DENIED with the
 * reason otherwise. Self-approval and expiry are the caller's checks.
 */
TKM_MUST_CHECK tkm_err tkm_gate_may_approve(void *gate, const tkm_rpc_who *who, const char *method,
                                            const tkm_cbor_val *params, char *why, size_t why_len);

/*
 * The roles one operator would hold all exist in the policy, are held by
 * operators, and contain no exclusive pair. TKM_E_BAD_REQUEST or
 * TKM_E_FAILED_PRECONDITION with the reason otherwise.
 */
TKM_MUST_CHECK tkm_err tkm_gate_roles_ok(void *gate, const char *const *roles, size_t n, char *why,
                                         size_t why_len);

/*
 * May principal ("operator:NAME" or "device:NAME") hold role with scope
 * (NULL: none) besides the roles it holds already (others, n)? The role must
 * exist, be for that kind of principal, fit the scope, and make no
 * exclusive pair. TKM_E_BAD_REQUEST or TKM_E_FAILED_PRECONDITION otherwise.
 */
TKM_MUST_CHECK tkm_err tkm_gate_assign_ok(void *gate, const char *principal, const char *role,
                                          const char *scope, const char *const *others, size_t n,
                                          char *why, size_t why_len);

/* Rebuild a principal's who from the store (the initiator of an approved request). */
TKM_MUST_CHECK tkm_err tkm_gate_who(void *gate, const char *principal, tkm_rpc_who *who, char *why,
                                    size_t why_len);

/*
 * The policy in effect and its version. Replaced policies stay allocated
 * until the gate is freed (they are few and small), so a pointer stays valid
 * for the request that got it.
 */
const tkm_policy *tkm_gate_policy_get(void *gate, uint64_t *version);

/* Make p (parsed from the text stored as version) the policy in effect; takes ownership. */
void tkm_gate_policy_swap(void *gate, tkm_policy *p, uint64_t version);

/* The configured approval lifetime, in ms. */
uint64_t tkm_gate_approval_ttl_ms(void *gate);

/* The default policy built into tkmd (policy/default.policy), NUL-terminated. */
extern const char tkm_gate_default_policy[];

#endif /* TKM_GATE_H */
