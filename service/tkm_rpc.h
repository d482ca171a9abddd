/*
 * tkm_rpc.h - tkmd's request dispatcher: bytes in, reply bytes out.
 *
 * Methods live in const tables of {name, handler, permission, flags}; the
 * tables a daemon serves are chosen when the dispatcher is created, so the
 * test build can add its debug methods without the release build carrying
 * them. tkm_rpc_handle() decodes the envelope with the shared codec (limits
 * from the config), looks the method up, runs its handler, encodes the reply
 * and writes the one log line of the request. It never logs params.
 */
#ifndef TKM_RPC_H
#define TKM_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_cbor.h"
#include "tkm_hsm.h"
#include "tkm_store.h"

typedef struct tkm_rpc tkm_rpc;
typedef struct tkm_rpc_ctx tkm_rpc_ctx; /* one request in flight */
typedef struct tkm_rpc_method tkm_rpc_method;
typedef struct tkm_rpc_env tkm_rpc_env;

#define TKM_RPC_PRINCIPAL_MAX 140
#define TKM_RPC_ROLES_MAX     8

/* Who sent a request, once the gate has authenticated it. */
typedef struct tkm_rpc_who {
	bool authenticated;
	bool is_operator;                       /* else a device */
	char principal[TKM_RPC_PRINCIPAL_MAX];  /* "operator:alice", "device:station-01" */
	char role_text[TKM_RPC_ROLES_MAX * 33]; /* "admin,auditor" for the audit record */
	int64_t operator_id;                    /* operators only */
	bool must_change;                       /* the password must change first */
	bool has_session;
	uint8_t session_hash[32];
	size_t nroles;
	struct {
		char role[33];
		char scope[513]; /* comma-separated values bound to the assignment */
	} roles[TKM_RPC_ROLES_MAX];
} tkm_rpc_who;

/*
 * A handler reads its checked params map and writes exactly one CBOR item,
 * its result, to result. On failure it returns a wire code with a message
 * for the client in why; a local code (TKM_E_NOMEM, TKM_E_HSM, ...) is sent
 * as "internal" with a generic message, and why goes only to the log.
 */
typedef tkm_err (*tkm_rpc_handler)(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                                   char *why, size_t why_len);

/* The method changes no state, so running it twice is harmless. */
#define TKM_RPC_F_READONLY (1u << 0)
/* Test-build only: tkm_rpc_new() refuses it unless debug methods are allowed. */
#define TKM_RPC_F_DEBUG (1u << 1)
/* Read-only, but it hands out secrets (or the whole database): audited like a change. */
#define TKM_RPC_F_SECRET (1u << 2)

/* The attributes of the object a request acts on, for scoped permissions; "" absent. */
typedef struct tkm_rpc_target {
	char merchant[65];
	char group[65];
	char key[65];
	char site[65];
	char terminal[65];
} tkm_rpc_target;

/*
 * Fill t from a request's params (looking the object up in the store). The
 * gate calls it before the policy check; without one, the params' own
 * "merchant", "group", "key", "site" and "terminal" texts are the target.
 * TKM_E_NOT_FOUND lets the policy decide on an empty target.
 */
typedef tkm_err (*tkm_rpc_resolve_fn)(const tkm_rpc_env *env, const struct tkm_rpc_who *who,
                                      const tkm_cbor_val *params, tkm_rpc_target *t, char *why,
                                      size_t why_len);

struct tkm_rpc_method {
	const char *name; /* "sys.ping" */
	tkm_rpc_handler handler;
	const char *permission;     /* checked by the policy engine (a later issue) */
	unsigned flags;             /* TKM_RPC_F_* */
	tkm_rpc_resolve_fn resolve; /* NULL: the target comes from the params by name */
};

typedef struct tkm_rpc_table {
	const tkm_rpc_method *methods;
	size_t count;
} tkm_rpc_table;

/*
 * The gate: authentication, authorization and dual control, in one place
 * before any handler (service/tkm_gate.c). It fills the request's who, and
 * returns TKM_OK to run the handler, or an error for the reply. It may
 * answer the request itself (a dual-control request becomes a pending
 * approval): then it writes the result, returns TKM_OK and sets *answered.
 * The gate audits its own refusals.
 */
typedef tkm_err (*tkm_rpc_gate_fn)(void *gate, tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                                   const tkm_cbor_val *auth, tkm_cbor_w *result, bool *answered,
                                   char *why, size_t why_len);

/* What handlers may use. Owned by the caller; must outlive the dispatcher. */
struct tkm_rpc_env {
	tkm_hsm *hsm;                /* logged in; NULL only in dispatcher unit tests */
	tkm_store *store;            /* its writer is running */
	const uint8_t *audit_pk;     /* the HSM audit key's Ed25519 public key (32 bytes) */
	uint64_t audit_retention_ms; /* records younger than this are never archived */
	tkm_rpc_gate_fn gate;        /* NULL: every method runs unauthenticated (unit tests) */
	void *gate_ctx;
	void *auth; /* tkm_auth, for the auth.* handlers */
	void *seen; /* tkm_seen: batched last-seen times of check-ins */
	uint64_t enroll_code_ttl_ms;
	tkm_cbor_limits limits;  /* for decoding requests */
	size_t max_message_size; /* largest reply; larger results become errors */
};

/*
 * Build a dispatcher over ntables tables. Fails with TKM_E_INVALID_ARG (and a
 * reason) on a duplicate method name, or on a TKM_RPC_F_DEBUG method when
 * allow_debug is false.
 */
TKM_MUST_CHECK tkm_err tkm_rpc_new(const tkm_rpc_env *env, const tkm_rpc_table *const *tables,
                                   size_t ntables, bool allow_debug, tkm_rpc **out, char *why,
                                   size_t why_len);

/* NULL-safe. */
void tkm_rpc_free(tkm_rpc *rpc);

/*
 * Handle one request of len bytes. On TKM_OK *reply holds the encoded
 * response (a result or an error reply) for the caller to send and free
 * with tkm_cbor_w_free(). Fails only when no reply at all can be built
 * (TKM_E_NOMEM); the caller then drops the request. Thread-safe.
 */
TKM_MUST_CHECK tkm_err tkm_rpc_handle(tkm_rpc *rpc, const uint8_t *req, size_t len,
                                      const char *peer, tkm_cbor_w **reply);

/*
 * Run method with params as principal who, inside the request ctx (the
 * approval of a dual-control request): the gate is not asked again, the
 * method's own audit record names who, and its result goes to result.
 */
TKM_MUST_CHECK tkm_err tkm_rpc_run_as(tkm_rpc_ctx *ctx, const char *method,
                                      const tkm_cbor_val *params, const tkm_rpc_who *who,
                                      tkm_cbor_w *result, char *why, size_t why_len);

/* For handlers. */
const tkm_rpc_env *tkm_rpc_ctx_env(const tkm_rpc_ctx *ctx);
uint64_t tkm_rpc_ctx_uptime_s(const tkm_rpc_ctx *ctx);
uint64_t tkm_rpc_ctx_rid(const tkm_rpc_ctx *ctx); /* the server's sequence number */
/* The wall clock in Unix milliseconds, as audit records and expiries use it. */
uint64_t tkm_rpc_now_ms(void);

const char *tkm_rpc_ctx_peer(const tkm_rpc_ctx *ctx); /* "192.0.2.7:50412", "ipc:pid=9" */
const tkm_rpc_method *tkm_rpc_ctx_method(const tkm_rpc_ctx *ctx);
tkm_rpc_who *tkm_rpc_ctx_who(tkm_rpc_ctx *ctx);    /* the gate fills it */
bool tkm_rpc_ctx_approved(const tkm_rpc_ctx *ctx); /* running an approved request */

/*
 * Audit: every method that is not TKM_RPC_F_READONLY, and every
 * TKM_RPC_F_SECRET one, leaves exactly one audit record per request. A
 * handler that changes state calls tkm_rpc_commit() once, so that its change
 * and its record share one transaction (fail closed: if the record cannot be
 * written, the change is not kept). If the handler returns without having
 * committed, the dispatcher appends the record itself with the outcome, and
 * a successful result is replaced by an error when that record cannot be
 * written.
 */

/*
 * Run change (may be NULL) and append this request's audit record, in one
 * transaction: principal, role and method come from the request, target and
 * details (a canonical CBOR map, NULL for none) from the handler, outcome
 * "ok". Blocks until durable. At most once per request
 * (TKM_E_FAILED_PRECONDITION otherwise).
 */
TKM_MUST_CHECK tkm_err tkm_rpc_commit(tkm_rpc_ctx *ctx, tkm_store_change_fn change, void *arg,
                                      const char *target, const uint8_t *details,
                                      size_t details_len, uint64_t *seq, char *why, size_t why_len);

/*
 * As tkm_rpc_commit with another outcome: outcome_name ("denied", "error",
 * "pending") and code's wire name as the error code (none for TKM_OK). For
 * refusals that still change state (a failed login counts towards the
 * lockout) and for the gate's own records; the handler then returns code.
 */
TKM_MUST_CHECK tkm_err tkm_rpc_commit_outcome(tkm_rpc_ctx *ctx, tkm_store_change_fn change,
                                              void *arg, const char *target, const uint8_t *details,
                                              size_t details_len, const char *outcome_name,
                                              tkm_err code, char *why, size_t why_len);

/* The target recorded when the handler fails before it commits (say, the key it was given). */
void tkm_rpc_set_target(tkm_rpc_ctx *ctx, const char *target);

/*
 * For a handler whose store call appends the record itself (tkm_store_audit_archive):
 * fill rec's principal, role, method and target, and, once that call has
 * succeeded, mark the request audited.
 */
void tkm_rpc_audit_fill(const tkm_rpc_ctx *ctx, tkm_audit_rec *rec, const char *target);
void tkm_rpc_audit_done(tkm_rpc_ctx *ctx);

/*
 * Check that params (a map) has only text keys among the nkeys allowed ones.
 * TKM_E_BAD_REQUEST with a reason naming the first offending key otherwise.
 */
TKM_MUST_CHECK tkm_err tkm_rpc_params_check(const tkm_cbor_val *params, const char *const *keys,
                                            size_t nkeys, char *why, size_t why_len);

#endif /* TKM_RPC_H */
