/*
 * tkm_gate.c - authentication, authorization and dual control before every
 * handler. See tkm_gate.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "tkm_devsig.h"
#include "tkm_gate.h"
#include "tkm_nonce.h"
#include "tkm_store_auth.h"
#include "tkm_why.h"

/* What an operator who must change the password may still call. */
static const char *const tkm_gate_while_must_change[] = {
    "auth.change_password",
    "auth.logout",
    "auth.whoami",
};

typedef struct policy_node {
	tkm_policy *p;
	uint64_t version;
	struct policy_node *older;
} policy_node;

struct tkm_gate {
	tkm_gate_cfg cfg;
	tkm_store *st;
	tkm_auth *auth;
	tkm_nonce *nonces;
	pthread_mutex_t mu; /* the policy list */
	policy_node *policy;
};

tkm_err tkm_gate_new(const tkm_gate_cfg *cfg, tkm_store *st, tkm_auth *auth, tkm_gate **out,
                     char *why, size_t why_len)
{
	tkm_gate *g = calloc(1, sizeof(*g));
	tkm_policy *p = NULL;
	uint64_t version = 0;
	char *text = NULL;
	tkm_err err;

	*out = NULL;
	if (g == NULL) {
		return TKM_E_NOMEM;
	}
	g->cfg = *cfg;
	g->st = st;
	g->auth = auth;
	if (pthread_mutex_init(&g->mu, NULL) != 0) {
		free(g);
		return TKM_E_NOMEM;
	}
	err = tkm_nonce_new(cfg->signature_window_s, cfg->nonce_entries, &g->nonces);
	if (err != TKM_OK) {
		tkm_why_set(why, why_len, "cannot make the replay cache");
		goto out;
	}
	err = tkm_store_policy_current(st, &version, &text, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(
		    why, why_len, TKM_E_FAILED_PRECONDITION,
		    "the database holds no policy: was it initialised with tkmd --init?");
	}
	if (err == TKM_OK) {
		err = tkm_policy_parse(text, strlen(text), &p, why, why_len);
		if (err != TKM_OK) {
			err = TKM_E_FAILED_PRECONDITION;
		}
	}
	if (err != TKM_OK) {
		goto out;
	}
	tkm_gate_policy_swap(g, p, version);
	*out = g;
	g = NULL;
out:
	free(text);
	tkm_gate_free(g);
	return err;
}

void tkm_gate_free(tkm_gate *g)
{
	policy_node *n, *next;

	if (g == NULL) {
		return;
	}
	for (n = g->policy; n != NULL; n = next) {
		next = n->older;
		tkm_policy_free(n->p);
		free(n);
	}
	tkm_nonce_free(g->nonces);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

const tkm_policy *tkm_gate_policy_get(void *gate, uint64_t *version)
{
	tkm_gate *g = gate;
	const tkm_policy *p;

	pthread_mutex_lock(&g->mu);
	p = g->policy->p;
	if (version != NULL) {
		*version = g->policy->version;
	}
	pthread_mutex_unlock(&g->mu);
	return p;
}

void tkm_gate_policy_swap(void *gate, tkm_policy *p, uint64_t version)
{
	tkm_gate *g = gate;
	policy_node *n = calloc(1, sizeof(*n));

	if (n == NULL) {
		/* Keep the policy in effect rather than lose track of one. */
		tkm_policy_free(p);
		return;
	}
	n->p = p;
	n->version = version;
	pthread_mutex_lock(&g->mu);
	n->older = g->policy;
	g->policy = n;
	pthread_mutex_unlock(&g->mu);
}

uint64_t tkm_gate_approval_ttl_ms(void *gate)
{
	return ((tkm_gate *)gate)->cfg.approval_ttl_s * 1000u;
}

/* ---- Who ---- */

static tkm_err fill_roles(tkm_gate *g, tkm_rpc_who *who, char *why, size_t why_len)
{
	tkm_store_role roles[TKM_RPC_ROLES_MAX];
	size_t n = 0, off = 0;
	tkm_err err;

	err = tkm_store_roles_of(g->st, who->principal, roles, TKM_RPC_ROLES_MAX, &n, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	who->nroles = n;
	who->role_text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t rl = strlen(roles[i].role);

		memcpy(who->roles[i].role, roles[i].role, rl + 1);
		memcpy(who->roles[i].scope, roles[i].scope, strlen(roles[i].scope) + 1);
		if (off + rl + 2 < sizeof(who->role_text)) {
			if (off > 0) {
				who->role_text[off++] = ',';
			}
			memcpy(who->role_text + off, roles[i].role, rl + 1);
			off += rl;
		}
	}
	return TKM_OK;
}

static tkm_err who_operator(tkm_gate *g, const tkm_store_operator *op, tkm_rpc_who *who, char *why,
                            size_t why_len)
{
	memset(who, 0, sizeof(*who));
	who->authenticated = true;
	who->is_operator = true;
	who->operator_id = op->id;
	who->must_change = tkm_auth_must_change(g->auth, op, tkm_rpc_now_ms());
	tkm_why_set(who->principal, sizeof(who->principal), "operator:%s", op->username);
	return fill_roles(g, who, why, why_len);
}

static tkm_err who_device(tkm_gate *g, const char *name, tkm_rpc_who *who, char *why,
                          size_t why_len)
{
	memset(who, 0, sizeof(*who));
	who->authenticated = true;
	tkm_why_set(who->principal, sizeof(who->principal), "device:%s", name);
	return fill_roles(g, who, why, why_len);
}

tkm_err tkm_gate_who(void *gate, const char *principal, tkm_rpc_who *who, char *why, size_t why_len)
{
	tkm_gate *g = gate;
	tkm_store_operator op;
	tkm_store_device dev;
	tkm_err err;

	if (strncmp(principal, "operator:", 9) == 0) {
		err = tkm_store_operator_get(g->st, principal + 9, &op, why, why_len);
		if (err == TKM_OK && op.disabled) {
			err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
			                   "%s is disabled", principal);
		}
		return err == TKM_OK ? who_operator(g, &op, who, why, why_len) : err;
	}
	if (strncmp(principal, "device:", 7) == 0) {
		err = tkm_store_device_get(g->st, principal + 7, &dev, why, why_len);
		if (err == TKM_OK && dev.disabled) {
			err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
			                   "%s is disabled", principal);
		}
		return err == TKM_OK ? who_device(g, principal + 7, who, why, why_len) : err;
	}
	return tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no principal '%s'", principal);
}

static tkm_err device_lookup(void *arg, const char *principal, uint8_t pk[static TKM_DEVSIG_PK_LEN],
                             char *why, size_t why_len)
{
	tkm_gate *g = arg;
	tkm_store_device dev;
	tkm_err err = tkm_store_device_get(g->st, principal, &dev, why, why_len);

	if (err != TKM_OK) {
		return err;
	}
	if (dev.disabled) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED, "device '%s' is disabled",
		                    principal);
	}
	memcpy(pk, dev.public_key, TKM_DEVSIG_PK_LEN);
	return TKM_OK;
}

/* Establish who sent the request from its auth map. */
static tkm_err authenticate(tkm_gate *g, tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                            const tkm_cbor_val *auth, char *why, size_t why_len)
{
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	const char *method = tkm_rpc_ctx_method(ctx)->name;
	uint8_t token[TKM_DEVSIG_TOKEN_LEN];
	tkm_store_operator op;
	tkm_devsig_claim claim;
	const uint8_t *raw;
	size_t raw_len;
	uint64_t now = tkm_rpc_now_ms();
	tkm_err err;

	switch (tkm_devsig_auth_kind(auth)) {
	case TKM_DEVSIG_AUTH_NONE:
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "%s needs a session (tkmctl login) or a device signature",
		                    method);
	case TKM_DEVSIG_AUTH_SESSION:
		err = tkm_devsig_session_parse(auth, token, why, why_len);
		if (err == TKM_OK) {
			err = tkm_auth_session_check(g->auth, token, sizeof(token), now, &op, why,
			                             why_len);
		}
		if (err == TKM_OK) {
			err = who_operator(g, &op, who, why, why_len);
			who->has_session = true;
			tkm_auth_token_hash(token, sizeof(token), who->session_hash);
		}
		sodium_memzero(token, sizeof(token));
		return err;
	case TKM_DEVSIG_AUTH_DEVICE:
		tkm_cbor_raw(params, &raw, &raw_len);
		err = tkm_devsig_verify(auth, method, raw, raw_len, now / 1000u,
		                        g->cfg.signature_window_s, device_lookup, g, &claim, why,
		                        why_len);
		if (err == TKM_OK) {
			err = tkm_nonce_check_and_add(g->nonces, claim.principal, claim.ts,
			                              claim.nonce, now / 1000u, why, why_len);
		}
		if (err == TKM_OK) {
			err = who_device(g, claim.principal, who, why, why_len);
		} else if (claim.principal[0] != '\0') {
			/* For the audit record of the refusal: who it claimed to be. */
			tkm_why_set(who->principal, sizeof(who->principal), "device:%s",
			            claim.principal);
		}
		return err;
	case TKM_DEVSIG_AUTH_MALFORMED:
		break;
	}
	return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
	                    "'auth' must hold a session token or a device signature");
}

/* ---- Policy ---- */

static void target_attr(const tkm_cbor_val *params, const char *key, char *buf, size_t cap,
                        const char **out)
{
	const char *s;
	size_t n;

	*out = NULL;
	if (tkm_cbor_get_text(tkm_cbor_map_get(params, key), &s, &n) && n > 0 && n < cap &&
	    memchr(s, '\0', n) == NULL) {
		memcpy(buf, s, n);
		buf[n] = '\0';
		*out = buf;
	}
}

typedef struct target_buf {
	char merchant[TKM_POLICY_ID_MAX + 1];
	char group[TKM_POLICY_ID_MAX + 1];
	char key[TKM_POLICY_ID_MAX + 1];
	char site[TKM_POLICY_ID_MAX + 1];
	char terminal[TKM_POLICY_ID_MAX + 1];
} target_buf;

/*
 * The target of a request, by convention from its params: "merchant",
 * "group", "key", "site" and "terminal" name the object it acts on.
 */
static void target_of(const tkm_cbor_val *params, target_buf *b, tkm_policy_target *t)
{
	target_attr(params, "merchant", b->merchant, sizeof(b->merchant), &t->merchant);
	target_attr(params, "group", b->group, sizeof(b->group), &t->group);
	target_attr(params, "key", b->key, sizeof(b->key), &t->key);
	target_attr(params, "site", b->site, sizeof(b->site), &t->site);
	target_attr(params, "terminal", b->terminal, sizeof(b->terminal), &t->terminal);
}

/* The target from the method's resolver: the object the request names, looked up. */
static tkm_err resolved_target(const tkm_rpc_env *env, tkm_rpc_resolve_fn resolve,
                               const tkm_rpc_who *who, const tkm_cbor_val *params, target_buf *b,
                               tkm_policy_target *t)
{
	tkm_rpc_target rt;
	char why[128];
	tkm_err err;

	memset(&rt, 0, sizeof(rt));
	err = resolve(env, who, params, &rt, why, sizeof(why));
	if (err != TKM_OK && err != TKM_E_NOT_FOUND) {
		return err;
	}
	_Static_assert(sizeof(rt.site) == sizeof(b->site), "same id length");
	memcpy(b->merchant, rt.merchant, sizeof(b->merchant));
	memcpy(b->group, rt.group, sizeof(b->group));
	memcpy(b->key, rt.key, sizeof(b->key));
	memcpy(b->site, rt.site, sizeof(b->site));
	memcpy(b->terminal, rt.terminal, sizeof(b->terminal));
	t->merchant = b->merchant;
	t->group = b->group;
	t->key = b->key;
	t->site = b->site;
	t->terminal = b->terminal;
	return TKM_OK;
}

static tkm_err decide_for(tkm_gate *g, const tkm_rpc_env *env, tkm_rpc_resolve_fn resolve,
                          const tkm_rpc_who *who, const char *method, const tkm_cbor_val *params,
                          bool approval, tkm_policy_decision *d)
{
	tkm_policy_grant grants[TKM_RPC_ROLES_MAX];
	tkm_policy_principal pr;
	tkm_policy_target t;
	target_buf tb;
	const tkm_policy *p = tkm_gate_policy_get(g, NULL);
	tkm_err err;

	memset(&t, 0, sizeof(t));
	if (resolve != NULL) {
		err = resolved_target(env, resolve, who, params, &tb, &t);
		if (err != TKM_OK) {
			return err;
		}
	} else {
		target_of(params, &tb, &t);
	}
	if (who == NULL || !who->authenticated) {
		return tkm_policy_check(p, NULL, method, &t, d);
	}
	for (size_t i = 0; i < who->nroles; i++) {
		grants[i].role = who->roles[i].role;
		grants[i].assigned = who->roles[i].scope;
	}
	memset(&pr, 0, sizeof(pr));
	pr.kind = who->is_operator ? TKM_POLICY_HOLDER_OPERATOR : TKM_POLICY_HOLDER_DEVICE;
	pr.id = who->is_operator ? NULL : who->principal + strlen("device:");
	pr.grants = grants;
	pr.ngrants = who->nroles;
	return approval ? tkm_policy_check_approval(p, &pr, method, &t, d)
	                : tkm_policy_check(p, &pr, method, &t, d);
}

/* Without a resolver: the target by param names (approvals re-check on stored params). */
static tkm_err decide(tkm_gate *g, const tkm_rpc_who *who, const char *method,
                      const tkm_cbor_val *params, bool approval, tkm_policy_decision *d)
{
	return decide_for(g, NULL, NULL, who, method, params, approval, d);
}

tkm_err tkm_gate_allowed(void *gate, const tkm_rpc_who *who, const char *method,
                         const tkm_cbor_val *params, char *why, size_t why_len)
{
	tkm_policy_decision d;
	tkm_err err = decide(gate, who, method, params, false, &d);

	if (err != TKM_OK) {
		return err;
	}
	if (!d.allow) {
		return tkm_why_fail(why, why_len, TKM_E_PERMISSION_DENIED,
		                    "%s may not call %s (%s)", who->principal, method, d.why);
	}
	return TKM_OK;
}

tkm_err tkm_gate_may_approve(void *gate, const tkm_rpc_who *who, const char *method,
                             const tkm_cbor_val *params, char *why, size_t why_len)
{
	tkm_policy_decision d;
	tkm_err err = decide(gate, who, method, params, true, &d);

	if (err != TKM_OK) {
		return err;
	}
	if (!d.allow) {
		return tkm_why_fail(why, why_len, TKM_E_PERMISSION_DENIED,
		                    "%s may not approve %s (%s)", who->principal, method, d.why);
	}
	return TKM_OK;
}

tkm_err tkm_gate_roles_ok(void *gate, const char *const *roles, size_t n, char *why, size_t why_len)
{
	const tkm_policy *p = tkm_gate_policy_get(gate, NULL);
	tkm_err err;

	for (size_t i = 0; i < n; i++) {
		err = tkm_policy_assignable(p, roles[i], TKM_POLICY_HOLDER_OPERATOR, NULL, why,
		                            why_len);
		if (err == TKM_E_NOT_FOUND) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "the policy has no role '%s'", roles[i]);
		}
		if (err != TKM_OK) {
			return err;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(roles[i], roles[j]) == 0) {
				return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
				                    "role '%s' is listed twice", roles[i]);
			}
		}
	}
	return tkm_policy_exclusive_ok(p, roles, n, why, why_len);
}

tkm_err tkm_gate_assign_ok(void *gate, const char *principal, const char *role, const char *scope,
                           const char *const *others, size_t n, char *why, size_t why_len)
{
	const tkm_policy *p = tkm_gate_policy_get(gate, NULL);
	const char *all[TKM_RPC_ROLES_MAX + 1];
	tkm_policy_holder kind = strncmp(principal, "device:", 7) == 0 ? TKM_POLICY_HOLDER_DEVICE
	                                                               : TKM_POLICY_HOLDER_OPERATOR;
	tkm_err err;

	if (n >= TKM_RPC_ROLES_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_RESOURCE_EXHAUSTED,
		                    "a principal holds at most %d roles", TKM_RPC_ROLES_MAX);
	}
	err = tkm_policy_assignable(p, role, kind, scope, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "the policy has no role '%s'",
		                    role);
	}
	if (err != TKM_OK) {
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		all[i] = others[i];
	}
	all[n] = role;
	return tkm_policy_exclusive_ok(p, all, n + 1, why, why_len);
}

/* ---- The gate ---- */

/* Audit a refusal: outcome "denied" with the source and the reason. */
static tkm_err refuse(tkm_rpc_ctx *ctx, tkm_err code, const char *reason, char *why, size_t why_len)
{
	char wwhy[256] = "";
	tkm_cbor_w *d = NULL;
	const uint8_t *p = NULL;
	size_t n = 0;
	tkm_err err;

	err = tkm_cbor_w_new(1024, &d);
	if (err == TKM_OK) {
		/* Canonical order: "reason" before "source" (both 6 bytes). */
		tkm_cbor_put_map(d, 2);
		tkm_cbor_put_cstr(d, "reason");
		tkm_cbor_put_cstr(d, reason);
		tkm_cbor_put_cstr(d, "source");
		tkm_cbor_put_cstr(d, tkm_rpc_ctx_peer(ctx));
		err = tkm_cbor_w_finish(d, &p, &n);
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit_outcome(ctx, NULL, NULL, NULL, p, n, "denied", code, wwhy,
		                             sizeof(wwhy));
	}
	tkm_cbor_w_free(d);
	if (err != TKM_OK) {
		/* Fail closed: an unaudited refusal is still a refusal, but say why it is odd. */
		tkm_why_set(why, why_len, "refused, and the audit record could not be written");
		return err == TKM_E_RESOURCE_EXHAUSTED ? err : TKM_E_UNAVAILABLE;
	}
	if (why != reason) {
		tkm_why_set(why, why_len, "%s", reason);
	}
	return code;
}

typedef struct pending_arg {
	tkm_store_approval a;
	int64_t id;
} pending_arg;

static tkm_err pending_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	pending_arg *pa = arg;

	return tkm_store_tx_approval_insert(tx, &pa->a, &pa->id, why, why_len);
}

/* A dual-control request: store it, audit it as pending, answer with its id. */
static tkm_err make_pending(tkm_gate *g, tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                            tkm_cbor_w *result, char *why, size_t why_len)
{
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	pending_arg pa;
	tkm_cbor_w *d = NULL;
	const uint8_t *dp = NULL;
	size_t dn = 0;
	tkm_err err;

	memset(&pa, 0, sizeof(pa));
	tkm_why_set(pa.a.method, sizeof(pa.a.method), "%s", tkm_rpc_ctx_method(ctx)->name);
	tkm_cbor_raw(params, &pa.a.params, &pa.a.params_len);
	tkm_why_set(pa.a.initiator, sizeof(pa.a.initiator), "%s", who->principal);
	pa.a.created_ms = tkm_rpc_now_ms();
	pa.a.expires_ms = pa.a.created_ms + g->cfg.approval_ttl_s * 1000u;
	err = tkm_cbor_w_new(64, &d);
	if (err == TKM_OK) {
		tkm_cbor_put_map(d, 1);
		tkm_cbor_put_cstr(d, "expires_ms");
		tkm_cbor_put_uint(d, pa.a.expires_ms);
		err = tkm_cbor_w_finish(d, &dp, &dn);
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit_outcome(ctx, pending_change, &pa, NULL, dp, dn, "pending",
		                             TKM_OK, why, why_len);
	}
	tkm_cbor_w_free(d);
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 3);
	tkm_cbor_put_cstr(result, "status");
	tkm_cbor_put_cstr(result, "pending");
	tkm_cbor_put_cstr(result, "approval_id");
	tkm_cbor_put_uint(result, (uint64_t)pa.id);
	tkm_cbor_put_cstr(result, "expires_ms");
	tkm_cbor_put_uint(result, pa.a.expires_ms);
	return tkm_cbor_w_error(result);
}

tkm_err tkm_gate_check(void *gate, tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                       const tkm_cbor_val *auth, tkm_cbor_w *result, bool *answered, char *why,
                       size_t why_len)
{
	tkm_gate *g = gate;
	const char *method = tkm_rpc_ctx_method(ctx)->name;
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	const tkm_policy *p = tkm_gate_policy_get(g, NULL);
	tkm_policy_decision d;
	char reason[256];
	tkm_err err;

	*answered = false;
	/* debug.* exists only in the test daemon (tkm_rpc_new refuses it elsewhere). */
	if (tkm_policy_is_public(p, method) ||
	    (tkm_rpc_ctx_method(ctx)->flags & TKM_RPC_F_DEBUG) != 0) {
		return TKM_OK;
	}
	err = authenticate(g, ctx, params, auth, reason, sizeof(reason));
	if (err == TKM_E_UNAUTHENTICATED) {
		/* The claimed principal goes into the record, but the request stays anonymous. */
		who->authenticated = who->principal[0] != '\0';
		err = refuse(ctx, TKM_E_UNAUTHENTICATED, reason, why, why_len);
		who->authenticated = false;
		return err;
	}
	if (err != TKM_OK) {
		tkm_why_set(why, why_len, "%s", reason);
		return err;
	}
	if (who->must_change) {
		bool allowed = false;

		for (size_t i = 0; i < sizeof(tkm_gate_while_must_change) / sizeof(char *); i++) {
			allowed = allowed || strcmp(method, tkm_gate_while_must_change[i]) == 0;
		}
		if (!allowed) {
			return refuse(ctx, TKM_E_PERMISSION_DENIED,
			              "the password must be changed first (auth.change_password)",
			              why, why_len);
		}
	}
	err = decide_for(g, tkm_rpc_ctx_env(ctx), tkm_rpc_ctx_method(ctx)->resolve, who, method,
	                 params, false, &d);
	if (err != TKM_OK) {
		return err;
	}
	if (!d.allow) {
		tkm_why_set(reason, sizeof(reason), "%s may not call %s (%s)", who->principal,
		            method, d.why);
		return refuse(ctx, TKM_E_PERMISSION_DENIED, reason, why, why_len);
	}
	/*
	 * A pending request keeps its params in the database: never for auth.*,
	 * whose params are passwords. A policy that asks for it is refused here.
	 */
	if (d.dual_control && strncmp(method, "auth.", 5) == 0) {
		return refuse(ctx, TKM_E_FAILED_PRECONDITION,
		              "the policy marks an auth.* method dual-control; its params would be "
		              "stored: fix the policy",
		              why, why_len);
	}
	if (d.dual_control && !tkm_rpc_ctx_approved(ctx)) {
		*answered = true;
		return make_pending(g, ctx, params, result, why, why_len);
	}
	return TKM_OK;
}
