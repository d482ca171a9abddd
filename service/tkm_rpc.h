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

typedef struct tkm_rpc_method {
	const char *name; /* "sys.ping" */
	tkm_rpc_handler handler;
	const char *permission; /* checked by the policy engine (a later issue) */
	unsigned flags;         /* TKM_RPC_F_* */
} tkm_rpc_method;

typedef struct tkm_rpc_table {
	const tkm_rpc_method *methods;
	size_t count;
} tkm_rpc_table;

/* What handlers may use. Owned by the caller; must outlive the dispatcher. */
typedef struct tkm_rpc_env {
	const tkm_hsm *hsm; /* NULL when no HSM is configured */
	tkm_store *store;
	tkm_cbor_limits limits;  /* for decoding requests */
	size_t max_message_size; /* largest reply; larger results become errors */
} tkm_rpc_env;

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
                                      tkm_cbor_w **reply);

/* For handlers. */
const tkm_rpc_env *tkm_rpc_ctx_env(const tkm_rpc_ctx *ctx);
uint64_t tkm_rpc_ctx_uptime_s(const tkm_rpc_ctx *ctx);
uint64_t tkm_rpc_ctx_rid(const tkm_rpc_ctx *ctx); /* the server's sequence number */

/*
 * Check that params (a map) has only text keys among the nkeys allowed ones.
 * TKM_E_BAD_REQUEST with a reason naming the first offending key otherwise.
 */
TKM_MUST_CHECK tkm_err tkm_rpc_params_check(const tkm_cbor_val *params, const char *const *keys,
                                            size_t nkeys, char *why, size_t why_len);

#endif /* TKM_RPC_H */
