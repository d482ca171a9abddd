/*
 * tkm_rpc.c - decode, dispatch by table, encode, log: one request at a time.
 *
 * Untrusted bytes reach handlers only as a checked tkm_cbor tree. Whatever
 * happens, a request gets exactly one reply and exactly one log line; the
 * log line carries the method name (already syntax-checked by the codec) and
 * never any params. Local failures are answered as "internal" with the
 * request's server id, and their detail goes to the log only.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tkm_log.h"
#include "tkm_rpc.h"
#include "tkm_why.h"
#include "tkm_wire.h"

/* Room left in a reply for the envelope around a result. */
#define TKM_RPC_ENVELOPE_ROOM 64
#define TKM_RPC_WHY_MAX       256
#define TKM_RPC_TARGET_MAX    256

struct tkm_rpc {
	tkm_rpc_env env;
	const tkm_rpc_method **methods;
	size_t count;
	struct timespec started; /* CLOCK_MONOTONIC */
	atomic_uint_fast64_t seq;
};

struct tkm_rpc_ctx {
	tkm_rpc *rpc;
	uint64_t rid;
	const char *peer;
	const tkm_rpc_method *method;
	tkm_rpc_who who;
	char target[TKM_RPC_TARGET_MAX];
	bool audited;  /* this request's audit record is written */
	bool approved; /* running a dual-control request after its approval */
	bool answered; /* the gate answered: a dual-control request is now pending */
};

static uint64_t elapsed_us(const struct timespec *since)
{
	struct timespec now;
	int64_t us;

	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) {
		return 0;
	}
	us =
	    (int64_t)(now.tv_sec - since->tv_sec) * 1000000 + (now.tv_nsec - since->tv_nsec) / 1000;
	return us > 0 ? (uint64_t)us : 0;
}

tkm_err tkm_rpc_new(const tkm_rpc_env *env, const tkm_rpc_table *const *tables, size_t ntables,
                    bool allow_debug, tkm_rpc **out, char *why, size_t why_len)
{
	tkm_rpc *rpc = NULL;
	size_t total = 0;
	tkm_err err;

	*out = NULL;
	for (size_t t = 0; t < ntables; t++) {
		total += tables[t]->count;
	}
	rpc = calloc(1, sizeof(*rpc));
	if (rpc == NULL || (rpc->methods = calloc(total + 1, sizeof(*rpc->methods))) == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	rpc->env = *env;
	atomic_init(&rpc->seq, 0);
	if (clock_gettime(CLOCK_MONOTONIC, &rpc->started) != 0) {
		err = TKM_E_INTERNAL;
		tkm_why_set(why, why_len, "no monotonic clock");
		goto out;
	}
	for (size_t t = 0; t < ntables; t++) {
		for (size_t i = 0; i < tables[t]->count; i++) {
			const tkm_rpc_method *m = &tables[t]->methods[i];

			if ((m->flags & TKM_RPC_F_DEBUG) && !allow_debug) {
				err = TKM_E_INVALID_ARG;
				tkm_why_set(why, why_len, "debug method '%s' in a release build",
				            m->name);
				goto out;
			}
			for (size_t k = 0; k < rpc->count; k++) {
				if (strcmp(rpc->methods[k]->name, m->name) == 0) {
					err = TKM_E_INVALID_ARG;
					tkm_why_set(why, why_len, "method '%s' is defined twice",
					            m->name);
					goto out;
				}
			}
			rpc->methods[rpc->count++] = m;
		}
	}
	*out = rpc;
	rpc = NULL;
	err = TKM_OK;
out:
	tkm_rpc_free(rpc);
	return err;
}

void tkm_rpc_free(tkm_rpc *rpc)
{
	if (rpc == NULL) {
		return;
	}
	free(rpc->methods);
	free(rpc);
}

static const tkm_rpc_method *lookup(const tkm_rpc *rpc, const char *name)
{
	for (size_t i = 0; i < rpc->count; i++) {
		if (strcmp(rpc->methods[i]->name, name) == 0) {
			return rpc->methods[i];
		}
	}
	return NULL;
}

const tkm_rpc_env *tkm_rpc_ctx_env(const tkm_rpc_ctx *ctx)
{
	return &ctx->rpc->env;
}

uint64_t tkm_rpc_ctx_uptime_s(const tkm_rpc_ctx *ctx)
{
	return elapsed_us(&ctx->rpc->started) / 1000000;
}

uint64_t tkm_rpc_ctx_rid(const tkm_rpc_ctx *ctx)
{
	return ctx->rid;
}

uint64_t tkm_rpc_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0) {
		return 0;
	}
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *tkm_rpc_ctx_peer(const tkm_rpc_ctx *ctx)
{
	return ctx->peer != NULL ? ctx->peer : "";
}

const tkm_rpc_method *tkm_rpc_ctx_method(const tkm_rpc_ctx *ctx)
{
	return ctx->method;
}

tkm_rpc_who *tkm_rpc_ctx_who(tkm_rpc_ctx *ctx)
{
	return &ctx->who;
}

bool tkm_rpc_ctx_approved(const tkm_rpc_ctx *ctx)
{
	return ctx->approved;
}

static bool audited_method(const tkm_rpc_method *m)
{
	return (m->flags & TKM_RPC_F_READONLY) == 0 || (m->flags & TKM_RPC_F_SECRET) != 0;
}

static void fill_rec(const tkm_rpc_ctx *ctx, tkm_audit_rec *rec, const char *target)
{
	memset(rec, 0, sizeof(*rec));
	rec->principal = ctx->who.authenticated ? ctx->who.principal : NULL;
	rec->role =
	    ctx->who.authenticated && ctx->who.role_text[0] != '\0' ? ctx->who.role_text : NULL;
	rec->method = ctx->method->name;
	rec->target = target != NULL ? target : (ctx->target[0] != '\0' ? ctx->target : NULL);
}

tkm_err tkm_rpc_commit(tkm_rpc_ctx *ctx, tkm_store_change_fn change, void *arg, const char *target,
                       const uint8_t *details, size_t details_len, uint64_t *seq, char *why,
                       size_t why_len)
{
	tkm_audit_rec rec;
	tkm_err err;

	if (ctx->audited) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "%s: a request commits once", ctx->method->name);
	}
	fill_rec(ctx, &rec, target);
	rec.outcome = "ok";
	rec.details = details;
	rec.details_len = details_len;
	err = tkm_store_write(ctx->rpc->env.store, change, arg, &rec, seq, why, why_len);
	/* Written or not, the dispatcher must not add a second record of success. */
	ctx->audited = err == TKM_OK;
	return err;
}

tkm_err tkm_rpc_commit_outcome(tkm_rpc_ctx *ctx, tkm_store_change_fn change, void *arg,
                               const char *target, const uint8_t *details, size_t details_len,
                               const char *outcome_name, tkm_err code, char *why, size_t why_len)
{
	char wwhy[TKM_RPC_WHY_MAX] = "";
	tkm_audit_rec rec;
	tkm_err err;

	if (ctx->audited) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "%s: a request commits once", ctx->method->name);
	}
	fill_rec(ctx, &rec, target);
	rec.outcome = outcome_name;
	rec.error_code = code == TKM_OK ? NULL : tkm_err_wire_name(code);
	rec.details = details;
	rec.details_len = details_len;
	err = tkm_store_write(ctx->rpc->env.store, change, arg, &rec, NULL, wwhy, sizeof(wwhy));
	ctx->audited = err == TKM_OK;
	if (err != TKM_OK) {
		tkm_why_set(why, why_len, "the audit record could not be written: %s", wwhy);
	}
	return err;
}

void tkm_rpc_audit_fill(const tkm_rpc_ctx *ctx, tkm_audit_rec *rec, const char *target)
{
	fill_rec(ctx, rec, target);
}

void tkm_rpc_audit_done(tkm_rpc_ctx *ctx)
{
	ctx->audited = true;
}

void tkm_rpc_set_target(tkm_rpc_ctx *ctx, const char *target)
{
	size_t n = strnlen(target, sizeof(ctx->target) - 1);

	memcpy(ctx->target, target, n);
	ctx->target[n] = '\0';
}

/*
 * The record of a request whose handler did not commit one: its outcome.
 * Returns the error that replaces a successful result when it cannot be written.
 */
static tkm_err audit_outcome(tkm_rpc_ctx *ctx, tkm_err outcome, char *why, size_t why_len)
{
	char wwhy[TKM_RPC_WHY_MAX] = "";
	tkm_audit_rec rec;
	tkm_log_line line;
	tkm_err err;

	fill_rec(ctx, &rec, NULL);
	rec.outcome = outcome == TKM_OK ? "ok" : "error";
	rec.error_code = outcome == TKM_OK ? NULL : tkm_err_wire_name(outcome);
	err = tkm_store_write(ctx->rpc->env.store, NULL, NULL, &rec, NULL, wwhy, sizeof(wwhy));
	if (err == TKM_OK) {
		ctx->audited = true;
		return outcome;
	}
	tkm_log_begin(&line, TKM_LOG_ERROR, "audit record not written");
	tkm_log_uint(&line, "rid", ctx->rid);
	tkm_log_str(&line, "method", ctx->method->name);
	tkm_log_str(&line, "error", tkm_strerror(err));
	tkm_log_str(&line, "reason", wwhy);
	tkm_log_end(&line);
	if (outcome != TKM_OK) {
		return outcome;
	}
	tkm_why_set(why, why_len, "the audit record could not be written: %s", wwhy);
	return err == TKM_E_RESOURCE_EXHAUSTED ? err : TKM_E_UNAVAILABLE;
}

tkm_err tkm_rpc_params_check(const tkm_cbor_val *params, const char *const *keys, size_t nkeys,
                             char *why, size_t why_len)
{
	for (const tkm_cbor_val *k = tkm_cbor_first(params); k != NULL;
	     k = tkm_cbor_next(tkm_cbor_next(k))) {
		const char *name;
		size_t len;
		bool known = false;

		if (!tkm_cbor_get_text(k, &name, &len)) {
			tkm_why_set(why, why_len, "params keys must be text strings");
			return TKM_E_BAD_REQUEST;
		}
		for (size_t i = 0; i < nkeys && !known; i++) {
			known = tkm_cbor_text_eq(k, keys[i]);
		}
		if (!known) {
			char shown[33];
			size_t n = len < sizeof(shown) - 1 ? len : sizeof(shown) - 1;

			/* Echo only printable ASCII of the peer's key. */
			for (size_t i = 0; i < n; i++) {
				bool printable =
				    name[i] >= 0x20 && name[i] < 0x7f && name[i] != '\'';
				shown[i] = printable ? name[i] : '?';
			}
			shown[n] = '\0';
			tkm_why_set(why, why_len, "unknown param '%s'%s", shown,
			            len > n ? " (cut)" : "");
			return TKM_E_BAD_REQUEST;
		}
	}
	return TKM_OK;
}

/* Encode the error reply for err; local codes get a generic message naming the request. */
static tkm_err encode_error(const tkm_rpc *rpc, uint64_t rid, uint64_t id, tkm_err err,
                            const char *why, tkm_cbor_w **reply)
{
	char msg[96];
	tkm_cbor_w *w = NULL;
	tkm_err rc;

	if (strcmp(tkm_err_wire_name(err), "internal") == 0) {
		int r = snprintf(msg, sizeof(msg), "internal error (request %llu)",
		                 (unsigned long long)rid);
		if (r < 0 || (size_t)r >= sizeof(msg)) {
			msg[0] = '\0';
		}
		why = msg;
	} else if (why == NULL || why[0] == '\0') {
		why = tkm_strerror(err);
	}
	rc = tkm_cbor_w_new(rpc->env.max_message_size, &w);
	if (rc != TKM_OK) {
		return rc;
	}
	tkm_wire_encode_error(w, id, err, why, NULL, 0);
	rc = tkm_cbor_w_error(w);
	if (rc != TKM_OK) {
		tkm_cbor_w_free(w);
		return rc;
	}
	*reply = w;
	return TKM_OK;
}

/* Run the handler and wrap its result; on TKM_OK *reply holds a result reply. */
static tkm_err run(tkm_rpc_ctx *ctx, const tkm_rpc_method *m, const tkm_wire_request *req,
                   tkm_cbor_w **reply, char *why, size_t why_len)
{
	tkm_rpc *rpc = ctx->rpc;
	tkm_cbor_w *result = NULL, *w = NULL;
	const uint8_t *p;
	size_t len;
	tkm_err err;

	err = tkm_cbor_w_new(rpc->env.max_message_size - TKM_RPC_ENVELOPE_ROOM, &result);
	if (err != TKM_OK) {
		goto out;
	}
	ctx->method = m;
	if (rpc->env.gate != NULL) {
		bool answered = false;

		err = rpc->env.gate(rpc->env.gate_ctx, ctx, req->params, req->auth, result,
		                    &answered, why, why_len);
		ctx->answered = answered;
		if (err != TKM_OK || answered) {
			goto finish;
		}
	}
	err = m->handler(ctx, req->params, result, why, why_len);
	if (audited_method(m) && !ctx->audited) {
		err = audit_outcome(ctx, err, why, why_len);
	}
finish:
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_cbor_w_finish(result, &p, &len);
	if (err == TKM_E_RESOURCE_EXHAUSTED) {
		tkm_why_set(why, why_len,
		            "the result is larger than the server's max_message_size");
	}
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_cbor_w_new(rpc->env.max_message_size, &w);
	if (err != TKM_OK) {
		goto out;
	}
	tkm_wire_encode_result(w, req->id, p, len);
	err = tkm_cbor_w_error(w);
	if (err != TKM_OK) {
		goto out;
	}
	*reply = w;
	w = NULL;
out:
	tkm_cbor_w_free(result);
	tkm_cbor_w_free(w);
	return err;
}

tkm_err tkm_rpc_run_as(tkm_rpc_ctx *outer, const char *method, const tkm_cbor_val *params,
                       const tkm_rpc_who *who, tkm_cbor_w *result, char *why, size_t why_len)
{
	tkm_rpc_ctx ctx = {.rpc = outer->rpc, .rid = outer->rid, .peer = outer->peer};
	const tkm_rpc_method *m = lookup(outer->rpc, method);
	tkm_err err;

	if (m == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "method '%s' is no longer served", method);
	}
	ctx.method = m;
	ctx.who = *who;
	ctx.approved = true;
	err = m->handler(&ctx, params, result, why, why_len);
	if (audited_method(m) && !ctx.audited) {
		err = audit_outcome(&ctx, err, why, why_len);
	}
	return err;
}

tkm_err tkm_rpc_handle(tkm_rpc *rpc, const uint8_t *buf, size_t len, const char *peer,
                       tkm_cbor_w **reply)
{
	tkm_rpc_ctx ctx = {.rpc = rpc, .peer = peer};
	tkm_cbor_doc *doc = NULL;
	tkm_wire_request req;
	const tkm_rpc_method *m = NULL;
	char why[TKM_RPC_WHY_MAX] = "";
	struct timespec t0;
	tkm_log_line line;
	tkm_err err, rc;

	*reply = NULL;
	if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0) {
		memset(&t0, 0, sizeof(t0));
	}
	ctx.rid = atomic_fetch_add(&rpc->seq, 1) + 1;

	err = tkm_wire_decode_request(buf, len, &rpc->env.limits, &doc, &req, why, sizeof(why));
	if (err == TKM_OK) {
		m = lookup(rpc, req.method);
		if (m == NULL) {
			err = TKM_E_BAD_REQUEST;
			tkm_why_set(why, sizeof(why), "unknown method '%s'", req.method);
		}
	}
	if (err == TKM_OK) {
		err = run(&ctx, m, &req, reply, why, sizeof(why));
	}
	rc = TKM_OK;
	if (err != TKM_OK) {
		rc = encode_error(rpc, ctx.rid, req.id, err, why, reply);
	}

	if (err != TKM_OK && strcmp(tkm_err_wire_name(err), "internal") == 0) {
		tkm_log_begin(&line, TKM_LOG_ERROR, "request failed");
		tkm_log_uint(&line, "rid", ctx.rid);
		tkm_log_str(&line, "method", req.method[0] != '\0' ? req.method : NULL);
		tkm_log_str(&line, "error", tkm_strerror(err));
		tkm_log_str(&line, "reason", why);
		tkm_log_end(&line);
	}
	tkm_log_begin(&line, TKM_LOG_INFO, "request");
	tkm_log_uint(&line, "rid", ctx.rid);
	if (req.has_id) {
		tkm_log_uint(&line, "id", req.id);
	} else {
		tkm_log_str(&line, "id", NULL);
	}
	tkm_log_str(&line, "method", req.method[0] != '\0' ? req.method : NULL);
	tkm_log_str(&line, "principal", ctx.who.authenticated ? ctx.who.principal : NULL);
	tkm_log_str(&line, "peer", peer);
	tkm_log_str(&line, "outcome",
	            err != TKM_OK  ? tkm_err_wire_name(err)
	            : ctx.answered ? "pending"
	                           : "ok");
	tkm_log_uint(&line, "latency_us", elapsed_us(&t0));
	if (err != TKM_OK && tkm_log_enabled(TKM_LOG_DEBUG)) {
		/* Our own decoder's words about the peer's bytes; never the bytes. */
		tkm_log_str(&line, "reason", why);
	}
	tkm_log_end(&line);

	tkm_cbor_doc_free(doc);
	return rc;
}
