/*
 * tkm_methods_approval.c - dual control (approval.list, approval.approve,
 * approval.reject) and the policy in effect (policy.show, policy.apply).
 *
 * A dual-control request waits in the approval table with its params as
 * sent (tkm_gate.c). approval.approve checks that the approver is not the
 * initiator, that the request has not expired, and that the approver may
 * call the method too; then it records the approval, runs the request as
 * its initiator (whose own audit record follows), and records the outcome.
 * Initiator, approver and outcome are therefore all in the audit chain.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tkm_gate.h"
#include "tkm_log.h"
#include "tkm_methods.h"
#include "tkm_store_auth.h"
#include "tkm_why.h"

#define APPROVAL_PAGE_MAX 200

static void put_approval(tkm_cbor_w *w, const tkm_store_approval *a, uint64_t now)
{
	const char *state = a->state;

	/* A pending request past its lifetime is shown as expired: it can no longer run. */
	if (strcmp(state, "pending") == 0 && now >= a->expires_ms) {
		state = "expired";
	}
	tkm_cbor_put_map(w, 8);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, (uint64_t)a->id);
	tkm_cbor_put_cstr(w, "state");
	tkm_cbor_put_cstr(w, state);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, a->method);
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_raw(w, a->params, a->params_len);
	tkm_cbor_put_cstr(w, "initiator");
	tkm_cbor_put_cstr(w, a->initiator);
	tkm_cbor_put_cstr(w, "created_ms");
	tkm_cbor_put_uint(w, a->created_ms);
	tkm_cbor_put_cstr(w, "expires_ms");
	tkm_cbor_put_uint(w, a->expires_ms);
	tkm_cbor_put_cstr(w, "decided_by");
	if (a->decided_by[0] != '\0') {
		tkm_cbor_put_cstr(w, a->decided_by);
	} else {
		tkm_cbor_put_null(w);
	}
}

typedef struct list_acc {
	tkm_cbor_w *w;
	size_t n;
	int64_t last;
	uint64_t now;
} list_acc;

static tkm_err list_one(void *arg, const tkm_store_approval *a)
{
	list_acc *l = arg;

	put_approval(l->w, a, l->now);
	l->n++;
	l->last = a->id;
	return tkm_cbor_w_error(l->w);
}

/*
 * approval.list {? "state": tstr, ? "after": id, ? "limit": 1..200}
 *   -> {"approvals": [...], "next": id / null}
 * Params of pending requests are shown so that an approver sees what runs.
 */
static tkm_err approval_list(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                             char *why, size_t why_len)
{
	static const char *const keys[] = {"state", "after", "limit"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	char state[16] = "";
	uint64_t after = 0, limit = 50;
	list_acc l = {NULL, 0, 0, tkm_rpc_now_ms()};
	const uint8_t *p;
	const char *s;
	size_t len, n;
	bool more = false;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 3, why, why_len);
	if (err == TKM_OK && tkm_cbor_map_get(params, "state") != NULL) {
		if (!tkm_cbor_get_text(tkm_cbor_map_get(params, "state"), &s, &n) || n == 0 ||
		    n >= sizeof(state)) {
			err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                   "'state' is pending, rejected, executed or failed");
		} else {
			memcpy(state, s, n);
			state[n] = '\0';
		}
	}
	if (err == TKM_OK && tkm_cbor_map_get(params, "after") != NULL &&
	    (!tkm_cbor_get_uint(tkm_cbor_map_get(params, "after"), &after) || after > INT64_MAX)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'after' is a request id");
	}
	if (err == TKM_OK && tkm_cbor_map_get(params, "limit") != NULL &&
	    (!tkm_cbor_get_uint(tkm_cbor_map_get(params, "limit"), &limit) || limit == 0 ||
	     limit > APPROVAL_PAGE_MAX)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'limit' must be 1 to %d",
		                   APPROVAL_PAGE_MAX);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_new(env->max_message_size, &l.w);
	}
	if (err == TKM_OK) {
		err = tkm_store_approval_page(env->store, (int64_t)after,
		                              state[0] != '\0' ? state : NULL, (size_t)limit,
		                              list_one, &l, &more, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_finish(l.w, &p, &len);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 2);
		tkm_cbor_put_cstr(result, "next");
		if (more) {
			tkm_cbor_put_uint(result, (uint64_t)l.last);
		} else {
			tkm_cbor_put_null(result);
		}
		tkm_cbor_put_cstr(result, "approvals");
		tkm_cbor_put_array(result, l.n);
		tkm_cbor_put_raw(result, p, len);
		err = tkm_cbor_w_error(result);
	}
	tkm_cbor_w_free(l.w);
	return err;
}

/* A request copied out of the store, with its params decoded. */
typedef struct loaded {
	tkm_store_approval a;
	uint8_t params[65536];
	bool too_big;
} loaded;

static tkm_err load_one(void *arg, const tkm_store_approval *a)
{
	loaded *l = arg;

	l->a = *a;
	l->a.params = NULL;
	if (a->params_len > sizeof(l->params)) {
		l->too_big = true;
		return TKM_OK;
	}
	memcpy(l->params, a->params, a->params_len);
	l->a.params = l->params;
	return TKM_OK;
}

static tkm_err id_param(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, int64_t *id, char *target,
                        size_t cap, char *why, size_t why_len)
{
	uint64_t v = 0;

	if (!tkm_cbor_get_uint(tkm_cbor_map_get(params, "id"), &v) || v == 0 || v > INT64_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "'id' (a request id) is required");
	}
	*id = (int64_t)v;
	tkm_why_set(target, cap, "approval:%llu", (unsigned long long)v);
	tkm_rpc_set_target(ctx, target);
	return TKM_OK;
}

/* Load request id and check that who may decide it now. */
static tkm_err load_pending(tkm_rpc_ctx *ctx, int64_t id, loaded *l, char *why, size_t why_len)
{
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	tkm_err err;

	err = tkm_store_approval_get(env->store, id, load_one, l, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no request %lld",
		                    (long long)id);
	}
	if (err != TKM_OK) {
		return err;
	}
	if (l->too_big) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "request %lld is too large to run", (long long)id);
	}
	if (strcmp(l->a.state, "pending") != 0) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION, "request %lld is %s",
		                    (long long)id, l->a.state);
	}
	if (tkm_rpc_now_ms() >= l->a.expires_ms) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "request %lld expired; the initiator asks again",
		                    (long long)id);
	}
	if (strcmp(l->a.initiator, who->principal) == 0) {
		return tkm_why_fail(why, why_len, TKM_E_PERMISSION_DENIED,
		                    "no one approves or rejects their own request; a second person "
		                    "must");
	}
	return TKM_OK;
}

typedef struct decide_arg {
	int64_t id;
	const char *from, *to, *by, *error_code;
} decide_arg;

static tkm_err decide_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const decide_arg *d = arg;

	return tkm_store_tx_approval_decide(tx, d->id, d->from, d->to, d->by, tkm_rpc_now_ms(),
	                                    d->error_code, why, why_len);
}

/* Details of an approval record: {"initiator", "method"} (canonical order). */
static tkm_err approval_details(const loaded *l, tkm_cbor_w **d, const uint8_t **p, size_t *n)
{
	tkm_err err = tkm_cbor_w_new(512, d);

	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(*d, 2);
	tkm_cbor_put_cstr(*d, "method");
	tkm_cbor_put_cstr(*d, l->a.method);
	tkm_cbor_put_cstr(*d, "initiator");
	tkm_cbor_put_cstr(*d, l->a.initiator);
	return tkm_cbor_w_finish(*d, p, n);
}

/* Record the outcome of an approved request: executed or failed, with its code. */
static void record_outcome(tkm_rpc_ctx *ctx, const loaded *l, int64_t id, tkm_err run_err)
{
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	char why[256], target[48];
	decide_arg da = {id, "approved", run_err == TKM_OK ? "executed" : "failed", who->principal,
	                 run_err == TKM_OK ? NULL : tkm_err_wire_name(run_err)};
	tkm_audit_rec rec;
	tkm_cbor_w *d = NULL;
	const uint8_t *p = NULL;
	size_t n = 0;

	tkm_why_set(target, sizeof(target), "approval:%lld", (long long)id);
	if (approval_details(l, &d, &p, &n) == TKM_OK) {
		tkm_rpc_audit_fill(ctx, &rec, target);
		rec.method = "approval.result";
		rec.outcome = run_err == TKM_OK ? "ok" : "error";
		rec.error_code = da.error_code;
		rec.details = p;
		rec.details_len = n;
		if (tkm_store_write(tkm_rpc_ctx_env(ctx)->store, decide_change, &da, &rec, NULL,
		                    why, sizeof(why)) != TKM_OK) {
			/* The request ran and has its own record; only its state stays "approved".
			 */
			tkm_log_msg(TKM_LOG_ERROR, "approval outcome not recorded", why);
		}
	}
	tkm_cbor_w_free(d);
}

/*
 * approval.approve {"id"} -> {"id", "state": "executed" / "failed", ? "result", ? "error"}
 * The approver must not be the initiator and must be allowed the method.
 */
static tkm_err approval_approve(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                                char *why, size_t why_len)
{
	static const char *const keys[] = {"id"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	tkm_cbor_limits lim = env->limits;
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *run = NULL, *d = NULL;
	const uint8_t *dp = NULL, *rp = NULL;
	size_t dn = 0, rn = 0;
	char target[48], run_why[256] = "";
	tkm_rpc_who initiator;
	loaded *l = NULL;
	decide_arg da;
	int64_t id = 0;
	tkm_err err, run_err;

	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err == TKM_OK) {
		err = id_param(ctx, params, &id, target, sizeof(target), why, why_len);
	}
	if (err == TKM_OK && (l = calloc(1, sizeof(*l))) == NULL) {
		err = TKM_E_NOMEM;
	}
	if (err == TKM_OK) {
		err = load_pending(ctx, id, l, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_decode(l->a.params, l->a.params_len, &lim, &doc, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_gate_may_approve(env->gate_ctx, who, l->a.method, tkm_cbor_root(doc), why,
		                           why_len);
	}
	if (err == TKM_OK) {
		err = tkm_gate_who(env->gate_ctx, l->a.initiator, &initiator, why, why_len);
	}
	/* The initiator's roles may have changed since the request was made. */
	if (err == TKM_OK) {
		err = tkm_gate_allowed(env->gate_ctx, &initiator, l->a.method, tkm_cbor_root(doc),
		                       why, why_len);
	}
	if (err == TKM_OK) {
		err = approval_details(l, &d, &dp, &dn);
	}
	if (err == TKM_OK) {
		da = (decide_arg){id, "pending", "approved", who->principal, NULL};
		err = tkm_rpc_commit(ctx, decide_change, &da, target, dp, dn, NULL, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	/* Approved and recorded: now it runs, as its initiator. */
	err = tkm_cbor_w_new(env->max_message_size - 256, &run);
	if (err != TKM_OK) {
		goto out;
	}
	run_err = tkm_rpc_run_as(ctx, l->a.method, tkm_cbor_root(doc), &initiator, run, run_why,
	                         sizeof(run_why));
	if (run_err == TKM_OK) {
		run_err = tkm_cbor_w_finish(run, &rp, &rn);
	}
	record_outcome(ctx, l, id, run_err);
	tkm_cbor_put_map(result, 3);
	tkm_cbor_put_cstr(result, "id");
	tkm_cbor_put_uint(result, (uint64_t)id);
	tkm_cbor_put_cstr(result, "state");
	tkm_cbor_put_cstr(result, run_err == TKM_OK ? "executed" : "failed");
	if (run_err == TKM_OK) {
		tkm_cbor_put_cstr(result, "result");
		tkm_cbor_put_raw(result, rp, rn);
	} else {
		const char *code = tkm_err_wire_name(run_err);

		tkm_cbor_put_cstr(result, "error");
		tkm_cbor_put_map(result, 2);
		tkm_cbor_put_cstr(result, "code");
		tkm_cbor_put_cstr(result, code);
		tkm_cbor_put_cstr(result, "message");
		tkm_cbor_put_cstr(result,
		                  strcmp(code, "internal") == 0 ? "internal error" : run_why);
	}
	err = tkm_cbor_w_error(result);
out:
	tkm_cbor_w_free(run);
	tkm_cbor_w_free(d);
	tkm_cbor_doc_free(doc);
	free(l);
	return err;
}

/* approval.reject {"id"} -> {"id", "state": "rejected"}: it never runs. */
static tkm_err approval_reject(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                               char *why, size_t why_len)
{
	static const char *const keys[] = {"id"};
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	tkm_cbor_w *d = NULL;
	const uint8_t *dp = NULL;
	size_t dn = 0;
	char target[48];
	loaded *l = NULL;
	decide_arg da;
	int64_t id = 0;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err == TKM_OK) {
		err = id_param(ctx, params, &id, target, sizeof(target), why, why_len);
	}
	if (err == TKM_OK && (l = calloc(1, sizeof(*l))) == NULL) {
		err = TKM_E_NOMEM;
	}
	if (err == TKM_OK) {
		err = load_pending(ctx, id, l, why, why_len);
	}
	if (err == TKM_OK) {
		err = approval_details(l, &d, &dp, &dn);
	}
	if (err == TKM_OK) {
		da = (decide_arg){id, "pending", "rejected", who->principal, NULL};
		err = tkm_rpc_commit(ctx, decide_change, &da, target, dp, dn, NULL, why, why_len);
	}
	tkm_cbor_w_free(d);
	free(l);
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 2);
	tkm_cbor_put_cstr(result, "id");
	tkm_cbor_put_uint(result, (uint64_t)id);
	tkm_cbor_put_cstr(result, "state");
	tkm_cbor_put_cstr(result, "rejected");
	return tkm_cbor_w_error(result);
}

/* ---- policy.* ---- */

/* policy.show {} -> {"version", "text": the canonical policy text} */
static tkm_err policy_show(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                           char *why, size_t why_len)
{
	uint64_t version = 0;
	const tkm_policy *p = tkm_gate_policy_get(tkm_rpc_ctx_env(ctx)->gate_ctx, &version);
	char *text = NULL;
	size_t len = 0;
	tkm_err err;

	err = tkm_rpc_params_check(params, NULL, 0, why, why_len);
	if (err == TKM_OK) {
		err = tkm_policy_canonical(p, &text, &len);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 2);
	tkm_cbor_put_cstr(result, "text");
	tkm_cbor_put_text(result, text, len);
	tkm_cbor_put_cstr(result, "version");
	tkm_cbor_put_uint(result, version);
	free(text);
	return tkm_cbor_w_error(result);
}

typedef struct apply_arg {
	uint64_t version;
	const char *text;
	const char *by;
} apply_arg;

static tkm_err apply_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const apply_arg *a = arg;

	return tkm_store_tx_policy_put(tx, a->version, a->text, tkm_rpc_now_ms(), a->by, why,
	                               why_len);
}

/*
 * policy.apply {"text": policy text, "base_version": uint} -> {"version"}
 * Dual control. base_version is the version the proposer looked at: if the
 * policy changed since, the change is refused (conflict).
 */
static tkm_err policy_apply(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                            char *why, size_t why_len)
{
	static const char *const keys[] = {"text", "base_version"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	uint64_t base = 0, current = 0;
	tkm_policy *p = NULL;
	char *canon = NULL;
	const char *text;
	size_t len = 0, clen = 0;
	apply_arg a;
	tkm_cbor_w *d = NULL;
	const uint8_t *dp = NULL;
	size_t dn = 0, nchanges = 0;
	char *diff = NULL;
	tkm_err err;

	(void)tkm_gate_policy_get(env->gate_ctx, &current);
	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK && !tkm_cbor_get_text(tkm_cbor_map_get(params, "text"), &text, &len)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "'text' (the policy) is required");
	}
	if (err == TKM_OK && !tkm_cbor_get_uint(tkm_cbor_map_get(params, "base_version"), &base)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "'base_version' (the version the change was made against) is "
		                   "required");
	}
	if (err == TKM_OK && base != current) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFLICT,
		                   "the policy is at version %llu now, not %llu: look at it again",
		                   (unsigned long long)current, (unsigned long long)base);
	}
	if (err == TKM_OK) {
		tkm_rpc_set_target(ctx, "policy");
		err = tkm_policy_parse(text, len, &p, why, why_len);
		if (err == TKM_E_CONFIG) {
			err = TKM_E_BAD_REQUEST;
		}
	}
	if (err == TKM_OK) {
		err = tkm_policy_canonical(p, &canon, &clen);
	}
	if (err == TKM_OK) {
		err =
		    tkm_policy_diff(tkm_gate_policy_get(env->gate_ctx, NULL), p, &diff, &nchanges);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_new(1024, &d);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(d, 2);
		tkm_cbor_put_cstr(d, "changes");
		tkm_cbor_put_uint(d, nchanges);
		tkm_cbor_put_cstr(d, "version");
		tkm_cbor_put_uint(d, current + 1);
		err = tkm_cbor_w_finish(d, &dp, &dn);
	}
	if (err == TKM_OK) {
		a.version = current + 1;
		a.text = canon;
		a.by = who->principal;
		err = tkm_rpc_commit(ctx, apply_change, &a, "policy", dp, dn, NULL, why, why_len);
	}
	if (err == TKM_OK) {
		tkm_gate_policy_swap(env->gate_ctx, p, current + 1);
		p = NULL;
		tkm_cbor_put_map(result, 2);
		tkm_cbor_put_cstr(result, "version");
		tkm_cbor_put_uint(result, current + 1);
		tkm_cbor_put_cstr(result, "changes");
		tkm_cbor_put_cstr(result, diff);
		err = tkm_cbor_w_error(result);
	}
	tkm_cbor_w_free(d);
	tkm_policy_free(p);
	free(canon);
	free(diff);
	return err;
}

static const tkm_rpc_method approval_methods[] = {
    {"approval.list", approval_list, "approval.list", TKM_RPC_F_READONLY, NULL},
    {"approval.approve", approval_approve, "approval.approve", 0, NULL},
    {"approval.reject", approval_reject, "approval.reject", 0, NULL},
    {"policy.show", policy_show, "policy.show", TKM_RPC_F_READONLY, NULL},
    {"policy.apply", policy_apply, "policy.apply", 0, NULL},
};

const tkm_rpc_table tkm_methods_approval = {approval_methods,
                                            sizeof(approval_methods) / sizeof(approval_methods[0])};
