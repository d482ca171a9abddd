/*
 * tkm_methods_audit.c - audit.* and store.backup: reading, verifying,
 * checkpointing and archiving the audit log, and the online backup.
 *
 * Paths in params are files on the server's host: tkmd writes them itself,
 * as its own user, and never replaces an existing file.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tkm_audit.h"
#include "tkm_methods.h"
#include "tkm_why.h"

#define TKM_AUDIT_PAGE_DEFAULT 100
#define TKM_PATH_PARAM_MAX     4096

/* An optional uint param; *present says whether it was given. */
static tkm_err opt_uint(const tkm_cbor_val *params, const char *key, uint64_t *out, bool *present,
                        char *why, size_t why_len)
{
	const tkm_cbor_val *v = tkm_cbor_map_get(params, key);

	*present = v != NULL;
	if (v != NULL && !tkm_cbor_get_uint(v, out)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "'%s' must be an unsigned integer", key);
	}
	return TKM_OK;
}

/* The required "path" param: an absolute path without NUL, copied into buf. */
static tkm_err path_param(const tkm_cbor_val *params, char *buf, size_t buf_len, char *why,
                          size_t why_len)
{
	const char *s;
	size_t n;

	if (!tkm_cbor_get_text(tkm_cbor_map_get(params, "path"), &s, &n)) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "'path' (text) is required: an absolute file name on the server");
	}
	if (n == 0 || n >= buf_len || memchr(s, '\0', n) != NULL || s[0] != '/') {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "'path' must be an absolute file name on the server, shorter than "
		    "%zu bytes",
		    buf_len);
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return TKM_OK;
}

static void put_opt_text(tkm_cbor_w *w, const char *key, const char *v)
{
	tkm_cbor_put_cstr(w, key);
	if (v != NULL) {
		tkm_cbor_put_cstr(w, v);
	} else {
		tkm_cbor_put_null(w);
	}
}

/*
 * audit.verify {} -> {"ok", "fault", "bad_seq", "what", "first_seq", "records",
 *                     "last_seq", "checkpoints", "last_checkpoint_seq", "unsigned_tail"}
 * The service checks its own database against its HSM's audit key.
 */
static tkm_err audit_verify(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                            char *why, size_t why_len)
{
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	tkm_audit_report rep;
	tkm_err err;

	err = tkm_rpc_params_check(params, NULL, 0, why, why_len);
	if (err == TKM_OK) {
		err = tkm_audit_verify(env->store, env->audit_pk, &rep, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 10);
	tkm_cbor_put_cstr(result, "ok");
	tkm_cbor_put_bool(result, rep.fault == TKM_AUDIT_FAULT_NONE);
	tkm_cbor_put_cstr(result, "fault");
	tkm_cbor_put_cstr(result, tkm_audit_fault_name(rep.fault));
	tkm_cbor_put_cstr(result, "bad_seq");
	tkm_cbor_put_uint(result, rep.bad_seq);
	tkm_cbor_put_cstr(result, "what");
	tkm_cbor_put_cstr(result, rep.what);
	tkm_cbor_put_cstr(result, "first_seq");
	tkm_cbor_put_uint(result, rep.first_seq);
	tkm_cbor_put_cstr(result, "records");
	tkm_cbor_put_uint(result, rep.records);
	tkm_cbor_put_cstr(result, "last_seq");
	tkm_cbor_put_uint(result, rep.last_seq);
	tkm_cbor_put_cstr(result, "checkpoints");
	tkm_cbor_put_uint(result, rep.checkpoints);
	tkm_cbor_put_cstr(result, "last_checkpoint_seq");
	tkm_cbor_put_uint(result, rep.last_checkpoint_seq);
	tkm_cbor_put_cstr(result, "unsigned_tail");
	tkm_cbor_put_uint(result, rep.unsigned_tail);
	return tkm_cbor_w_error(result);
}

typedef struct list_state {
	tkm_cbor_w *w;
	uint64_t last;
	size_t n;
} list_state;

static tkm_err put_record(void *arg, const tkm_store_audit_row *row)
{
	list_state *ls = arg;
	const tkm_audit_rec *r = &row->rec;
	tkm_cbor_w *w = ls->w;

	tkm_cbor_put_map(w, 11);
	tkm_cbor_put_cstr(w, "seq");
	tkm_cbor_put_uint(w, r->seq);
	tkm_cbor_put_cstr(w, "ts_ms");
	tkm_cbor_put_uint(w, r->ts_ms);
	put_opt_text(w, "principal", r->principal);
	put_opt_text(w, "role", r->role);
	put_opt_text(w, "method", r->method);
	put_opt_text(w, "target", r->target);
	put_opt_text(w, "outcome", r->outcome);
	put_opt_text(w, "error_code", r->error_code);
	tkm_cbor_put_cstr(w, "details");
	/* Stored as a canonical map by the writer; shown as an empty map if not. */
	if (!row->malformed && r->details_len > 0 && (r->details[0] & 0xe0) == 0xa0) {
		tkm_cbor_put_raw(w, r->details, r->details_len);
	} else {
		tkm_cbor_put_map(w, 0);
	}
	tkm_cbor_put_cstr(w, "prev_hash");
	tkm_cbor_put_bytes(w, row->prev_hash, row->prev_hash_len);
	tkm_cbor_put_cstr(w, "hash");
	tkm_cbor_put_bytes(w, row->hash, row->hash_len);
	ls->last = r->seq;
	ls->n++;
	return tkm_cbor_w_error(w);
}

/*
 * audit.list {? "after": seq, ? "since_ms": uint, ? "limit": 1..1000}
 *   -> {"records": [record...], "next": seq / null, "anchor": seq}
 * "next" is the cursor for the following page (pass it as "after").
 */
static tkm_err audit_list(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                          char *why, size_t why_len)
{
	static const char *const keys[] = {"after", "since_ms", "limit"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	tkm_store_audit_query q = {0, 0, TKM_AUDIT_PAGE_DEFAULT};
	list_state ls = {NULL, 0, 0};
	uint64_t limit = TKM_AUDIT_PAGE_DEFAULT, anchor = 0;
	tkm_cbor_w *recs = NULL;
	const uint8_t *p;
	size_t len;
	bool present, more = false;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 3, why, why_len);
	if (err == TKM_OK) {
		err = opt_uint(params, "after", &q.after_seq, &present, why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_uint(params, "since_ms", &q.since_ms, &present, why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_uint(params, "limit", &limit, &present, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	if (limit == 0 || limit > TKM_STORE_PAGE_MAX || q.after_seq > INT64_MAX ||
	    q.since_ms > INT64_MAX) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "'limit' must be 1 to %d, 'after' and 'since_ms' at most 2^63-1",
		    TKM_STORE_PAGE_MAX);
	}
	q.limit = (size_t)limit;
	/* The records go to their own writer first: the array's length comes first. */
	err = tkm_cbor_w_new(env->max_message_size, &recs);
	if (err != TKM_OK) {
		return err;
	}
	ls.w = recs;
	err = tkm_store_audit_anchor(env->store, &anchor, why, why_len);
	if (err == TKM_OK) {
		err = tkm_store_audit_page(env->store, &q, put_record, &ls, &more, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_finish(recs, &p, &len);
		if (err == TKM_E_RESOURCE_EXHAUSTED) {
			tkm_why_set(why, why_len,
			            "the page is larger than max_message_size; ask for a "
			            "smaller 'limit'");
		}
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 3);
		tkm_cbor_put_cstr(result, "records");
		tkm_cbor_put_array(result, ls.n);
		tkm_cbor_put_raw(result, p, len);
		tkm_cbor_put_cstr(result, "next");
		if (more) {
			tkm_cbor_put_uint(result, ls.last);
		} else {
			tkm_cbor_put_null(result);
		}
		tkm_cbor_put_cstr(result, "anchor");
		tkm_cbor_put_uint(result, anchor);
		err = tkm_cbor_w_error(result);
	}
	tkm_cbor_w_free(recs);
	return err;
}

/* audit.public_key {} -> {"public_key": bstr .size 32, "key_id": bstr} */
static tkm_err audit_public_key(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                                char *why, size_t why_len)
{
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	uint8_t pk[TKM_HSM_ED25519_PK_LEN];
	tkm_hsm_id id;
	tkm_err err;

	err = tkm_rpc_params_check(params, NULL, 0, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_audit_public_key(env->hsm, &id, pk, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 2);
	tkm_cbor_put_cstr(result, "key_id");
	tkm_cbor_put_bytes(result, id.b, sizeof(id.b));
	tkm_cbor_put_cstr(result, "public_key");
	tkm_cbor_put_bytes(result, pk, sizeof(pk));
	return tkm_cbor_w_error(result);
}

/* audit.checkpoint {} -> {"seq": the checkpoint's seq}: sign the chain up to this request. */
static tkm_err audit_checkpoint(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                                char *why, size_t why_len)
{
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	uint64_t seq = 0;
	tkm_err err;

	err = tkm_rpc_params_check(params, NULL, 0, why, why_len);
	if (err == TKM_OK) {
		err = tkm_rpc_commit(ctx, NULL, NULL, "audit", NULL, 0, &seq, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_checkpoint_now(env->store, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 1);
	tkm_cbor_put_cstr(result, "seq");
	tkm_cbor_put_uint(result, seq);
	return tkm_cbor_w_error(result);
}

static tkm_err check_archive(void *ctx, const char *path, char *why, size_t why_len)
{
	const tkm_rpc_env *env = ctx;
	tkm_audit_report rep;
	tkm_err err = tkm_audit_verify_file(path, env->audit_pk, &rep, why, why_len);

	if (err == TKM_OK && rep.fault != TKM_AUDIT_FAULT_NONE) {
		err = tkm_why_fail(
		    why, why_len, TKM_E_FAILED_PRECONDITION,
		    "the archive does not verify (%s at record %llu: %s); nothing was "
		    "archived: run tkmctl audit verify",
		    tkm_audit_fault_name(rep.fault), (unsigned long long)rep.bad_seq, rep.what);
	}
	return err;
}

static void put_copy_info(tkm_cbor_w *w, const char *path, const tkm_store_copy_info *info,
                          size_t extra)
{
	tkm_cbor_put_map(w, 5 + extra);
	tkm_cbor_put_cstr(w, "path");
	tkm_cbor_put_cstr(w, path);
	tkm_cbor_put_cstr(w, "bytes");
	tkm_cbor_put_uint(w, info->bytes);
	tkm_cbor_put_cstr(w, "first_seq");
	tkm_cbor_put_uint(w, info->first_seq);
	tkm_cbor_put_cstr(w, "last_seq");
	tkm_cbor_put_uint(w, info->last_seq);
	tkm_cbor_put_cstr(w, "checkpoint_seq");
	tkm_cbor_put_uint(w, info->checkpoint);
}

/*
 * audit.archive {"path": tstr, ? "before_ms": uint}
 *   -> {"path", "bytes", "first_seq", "last_seq", "checkpoint_seq", "seq"}
 * Moves records older than before_ms (default and latest: now minus the
 * retention period) to a new file, cut at a signed checkpoint.
 */
static tkm_err audit_archive(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                             char *why, size_t why_len)
{
	static const char *const keys[] = {"path", "before_ms"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	char path[TKM_PATH_PARAM_MAX];
	uint64_t now = tkm_rpc_now_ms(), latest, before = 0, seq = 0;
	tkm_store_copy_info info;
	tkm_audit_rec rec;
	bool present = false;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK) {
		err = path_param(params, path, sizeof(path), why, why_len);
	}
	if (err == TKM_OK) {
		tkm_rpc_set_target(ctx, path);
		err = opt_uint(params, "before_ms", &before, &present, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	latest = now > env->audit_retention_ms ? now - env->audit_retention_ms : 0;
	if (!present) {
		before = latest;
	} else if (before > latest) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "records younger than the retention period (%llu days) stay in "
		                    "the database: 'before_ms' must be at most %llu",
		                    (unsigned long long)(env->audit_retention_ms / 86400000u),
		                    (unsigned long long)latest);
	}
	tkm_rpc_audit_fill(ctx, &rec, path);
	err = tkm_store_audit_archive(env->store, path, before, check_archive, (void *)env, &rec,
	                              &info, &seq, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	tkm_rpc_audit_done(ctx);
	put_copy_info(result, path, &info, 1);
	tkm_cbor_put_cstr(result, "seq");
	tkm_cbor_put_uint(result, seq);
	return tkm_cbor_w_error(result);
}

/*
 * store.backup {"path": tstr} -> {"path", "bytes", "first_seq", "last_seq", "checkpoint_seq"}
 * Signs the audit chain up to now, then copies the whole database online.
 */
static tkm_err store_backup(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                            char *why, size_t why_len)
{
	static const char *const keys[] = {"path"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	char path[TKM_PATH_PARAM_MAX];
	tkm_store_copy_info info;
	tkm_cbor_w *d = NULL;
	const uint8_t *p = NULL;
	size_t n = 0;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err == TKM_OK) {
		err = path_param(params, path, sizeof(path), why, why_len);
	}
	if (err == TKM_OK) {
		tkm_rpc_set_target(ctx, path);
		/* So that the copy's last record is covered by a signature. */
		err = tkm_store_checkpoint_now(env->store, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_backup(env->store, path, &info, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	err = tkm_cbor_w_new(64, &d);
	if (err == TKM_OK) {
		/* Canonical order: "bytes" (5) before "last_seq" (8). */
		tkm_cbor_put_map(d, 2);
		tkm_cbor_put_cstr(d, "bytes");
		tkm_cbor_put_uint(d, info.bytes);
		tkm_cbor_put_cstr(d, "last_seq");
		tkm_cbor_put_uint(d, info.last_seq);
		err = tkm_cbor_w_finish(d, &p, &n);
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit(ctx, NULL, NULL, path, p, n, NULL, why, why_len);
	}
	tkm_cbor_w_free(d);
	if (err != TKM_OK) {
		/* No audit record, no backup: a copy of every secret must be accounted for. */
		(void)unlink(path);
		return err;
	}
	put_copy_info(result, path, &info, 0);
	return tkm_cbor_w_error(result);
}

static const tkm_rpc_method audit_methods[] = {
    {"audit.verify", audit_verify, "audit.verify", TKM_RPC_F_READONLY, NULL},
    {"audit.list", audit_list, "audit.list", TKM_RPC_F_READONLY, NULL},
    {"audit.public_key", audit_public_key, "audit.public_key", TKM_RPC_F_READONLY, NULL},
    {"audit.checkpoint", audit_checkpoint, "audit.checkpoint", 0, NULL},
    {"audit.archive", audit_archive, "audit.archive", 0, NULL},
    {"store.backup", store_backup, "store.backup", TKM_RPC_F_READONLY | TKM_RPC_F_SECRET, NULL},
};

const tkm_rpc_table tkm_methods_audit = {audit_methods,
                                         sizeof(audit_methods) / sizeof(audit_methods[0])};
