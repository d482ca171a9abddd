/*
 * tkm_methods_terminal.c - the terminal registry: add, import, show, list,
 * the maintenance and custody histories, and the lifecycle moves
 * (docs/terminals.md). Enrollment and check-in build on these.
 *
 * A terminal is named by its record id ("id"). The gate resolves the record
 * to its merchant, site and group before the policy check, so that a
 * station's site-scoped permissions apply to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tkm_log.h"
#include "tkm_methods.h"
#include "tkm_seen.h"
#include "tkm_store_auth.h"
#include "tkm_store_terminal.h"
#include "tkm_why.h"

#define TERMINAL_PAGE_DEFAULT 100
#define TERMINAL_IMPORT_MAX   1000 /* rows per terminal.import call */
#define REASON_MAX            500

/* ---- Params ---- */

/* An optional text param into buf; absent leaves buf "". */
static tkm_err opt_text(const tkm_cbor_val *params, const char *key, char *buf, size_t cap,
                        char *why, size_t why_len)
{
	const tkm_cbor_val *v = tkm_cbor_map_get(params, key);
	const char *s;
	size_t n;

	buf[0] = '\0';
	if (v == NULL) {
		return TKM_OK;
	}
	if (!tkm_cbor_get_text(v, &s, &n) || n >= cap || memchr(s, '\0', n) != NULL) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "'%s' must be text of at most %zu bytes", key, cap - 1);
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return TKM_OK;
}

static tkm_err req_text(const tkm_cbor_val *params, const char *key, char *buf, size_t cap,
                        char *why, size_t why_len)
{
	tkm_err err = opt_text(params, key, buf, cap, why, why_len);

	if (err == TKM_OK && buf[0] == '\0') {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'%s' (text) is required", key);
	}
	return err;
}

static tkm_err id_param(const tkm_cbor_val *params, int64_t *id, char *why, size_t why_len)
{
	uint64_t v = 0;

	if (!tkm_cbor_get_uint(tkm_cbor_map_get(params, "id"), &v) || v == 0 || v > INT64_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "'id' (the terminal's record id) is required");
	}
	*id = (int64_t)v;
	return TKM_OK;
}

/* The registry fields of a terminal from a params map (add, or one import row). */
static tkm_err terminal_fields(const tkm_cbor_val *m, tkm_store_terminal *t, char *why,
                               size_t why_len)
{
	static const char *const keys[] = {
	    "manufacturer",  "serial",           "model",       "merchant", "site", "group",
	    "purchase_date", "firmware_version", "app_version", "notes",
	};
	tkm_err err;

	memset(t, 0, sizeof(*t));
	err = tkm_rpc_params_check(m, keys, sizeof(keys) / sizeof(keys[0]), why, why_len);
	if (err == TKM_OK) {
		err = req_text(m, "manufacturer", t->manufacturer, sizeof(t->manufacturer), why,
		               why_len);
	}
	if (err == TKM_OK) {
		err = req_text(m, "serial", t->serial, sizeof(t->serial), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(m, "model", t->model, sizeof(t->model), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(m, "merchant", t->merchant, sizeof(t->merchant), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(m, "site", t->site, sizeof(t->site), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(m, "group", t->group, sizeof(t->group), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(m, "purchase_date", t->purchase_date, sizeof(t->purchase_date), why,
		               why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(m, "firmware_version", t->firmware_version,
		               sizeof(t->firmware_version), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(m, "app_version", t->app_version, sizeof(t->app_version), why,
		               why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(m, "notes", t->notes, sizeof(t->notes), why, why_len);
	}
	t->created_ms = tkm_rpc_now_ms();
	return err;
}

static void put_opt(tkm_cbor_w *w, const char *key, const char *v)
{
	tkm_cbor_put_cstr(w, key);
	if (v[0] != '\0') {
		tkm_cbor_put_cstr(w, v);
	} else {
		tkm_cbor_put_null(w);
	}
}

static void put_opt_ms(tkm_cbor_w *w, const char *key, uint64_t ms)
{
	tkm_cbor_put_cstr(w, key);
	if (ms != 0) {
		tkm_cbor_put_uint(w, ms);
	} else {
		tkm_cbor_put_null(w);
	}
}

static void put_terminal(tkm_cbor_w *w, const tkm_store_terminal *t)
{
	tkm_cbor_put_map(w, 15);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, (uint64_t)t->id);
	tkm_cbor_put_cstr(w, "state");
	tkm_cbor_put_cstr(w, tkm_store_terminal_state_name(t->state));
	tkm_cbor_put_cstr(w, "manufacturer");
	tkm_cbor_put_cstr(w, t->manufacturer);
	tkm_cbor_put_cstr(w, "serial");
	tkm_cbor_put_cstr(w, t->serial);
	put_opt(w, "model", t->model);
	put_opt(w, "merchant", t->merchant);
	put_opt(w, "site", t->site);
	put_opt(w, "group", t->group);
	put_opt(w, "purchase_date", t->purchase_date);
	put_opt(w, "firmware_version", t->firmware_version);
	put_opt(w, "app_version", t->app_version);
	put_opt(w, "notes", t->notes);
	put_opt_ms(w, "enrolled_ms", t->enrolled_ms);
	put_opt_ms(w, "last_seen_ms", t->last_seen_ms);
	tkm_cbor_put_cstr(w, "created_ms");
	tkm_cbor_put_uint(w, t->created_ms);
}

static void target_name(int64_t id, char *buf, size_t cap)
{
	tkm_why_set(buf, cap, "terminal:%lld", (long long)id);
}

/* A terminal's device principal: "terminal-ID" ("device:terminal-ID" in role assignments). */
static void principal_name(int64_t id, char *buf, size_t cap)
{
	tkm_why_set(buf, cap, "terminal-%lld", (long long)id);
}

/* The record a request names: by "id", or by "manufacturer" and "serial" (the live one). */
static tkm_err terminal_named(const tkm_rpc_env *env, const tkm_cbor_val *params,
                              tkm_store_terminal *t, char *why, size_t why_len)
{
	char manufacturer[TKM_STORE_TERMINAL_FIELD_MAX + 1],
	    serial[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	int64_t id = 0;
	tkm_err err;

	if (tkm_cbor_map_get(params, "id") != NULL) {
		err = id_param(params, &id, why, why_len);
		if (err == TKM_OK) {
			err = tkm_store_terminal_get(env->store, id, t, why, why_len);
		}
		if (err == TKM_E_NOT_FOUND) {
			err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no terminal %lld",
			                   (long long)id);
		}
		return err;
	}
	err = req_text(params, "manufacturer", manufacturer, sizeof(manufacturer), why, why_len);
	if (err == TKM_OK) {
		err = req_text(params, "serial", serial, sizeof(serial), why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_terminal_get_hw(env->store, manufacturer, serial, t, why, why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND,
		                   "no live terminal %s/%s: register or import it first",
		                   manufacturer, serial);
	}
	return err == TKM_E_BAD_REQUEST
	           ? tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
	                          "name the terminal by 'id', or by 'manufacturer' and 'serial'")
	           : err;
}

/* The gate's resolver: a terminal's merchant, site and group, for scoped permissions. */
static tkm_err resolve_terminal(const tkm_rpc_env *env, const tkm_rpc_who *who,
                                const tkm_cbor_val *params, tkm_rpc_target *rt, char *why,
                                size_t why_len)
{
	tkm_store_terminal t;
	int64_t id = 0;
	tkm_err err;

	(void)who;
	err = terminal_named(env, params, &t, why, why_len);
	if (err != TKM_OK) {
		return err == TKM_E_BAD_REQUEST ? TKM_E_NOT_FOUND : err;
	}
	id = t.id;
	_Static_assert(sizeof(rt->site) >= sizeof(t.site), "site fits");
	memcpy(rt->merchant, t.merchant, sizeof(t.merchant));
	memcpy(rt->site, t.site, sizeof(t.site));
	memcpy(rt->group, t.group, sizeof(t.group));
	principal_name(id, rt->terminal, sizeof(rt->terminal));
	return TKM_OK;
}

/* The resolver of a terminal's own calls: the target is the caller itself. */
static tkm_err resolve_self(const tkm_rpc_env *env, const tkm_rpc_who *who,
                            const tkm_cbor_val *params, tkm_rpc_target *rt, char *why,
                            size_t why_len)
{
	(void)env;
	(void)params;
	(void)why;
	(void)why_len;
	if (who != NULL && who->authenticated && !who->is_operator &&
	    strncmp(who->principal, "device:", 7) == 0) {
		tkm_why_set(rt->terminal, sizeof(rt->terminal), "%s", who->principal + 7);
	}
	return TKM_OK;
}

/* ---- terminal.add, terminal.show, terminal.list ---- */

typedef struct add_arg {
	tkm_store_terminal t;
	int64_t id;
} add_arg;

static tkm_err add_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	add_arg *a = arg;

	return tkm_store_tx_terminal_insert(tx, &a->t, &a->id, why, why_len);
}

/* terminal.add {"manufacturer", "serial", ? registry fields} -> terminal */
static tkm_err terminal_add(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                            char *why, size_t why_len)
{
	char target[160];
	add_arg *a = calloc(1, sizeof(*a));
	tkm_err err;

	if (a == NULL) {
		return TKM_E_NOMEM;
	}
	err = terminal_fields(params, &a->t, why, why_len);
	if (err == TKM_OK) {
		tkm_why_set(target, sizeof(target), "hw:%s/%s", a->t.manufacturer, a->t.serial);
		tkm_rpc_set_target(ctx, target);
		err = tkm_rpc_commit(ctx, add_change, a, target, NULL, 0, NULL, why, why_len);
	}
	if (err == TKM_E_INVALID_ARG) {
		err = TKM_E_BAD_REQUEST;
	}
	if (err == TKM_OK) {
		err =
		    tkm_store_terminal_get(tkm_rpc_ctx_env(ctx)->store, a->id, &a->t, why, why_len);
	}
	if (err == TKM_OK) {
		put_terminal(result, &a->t);
		err = tkm_cbor_w_error(result);
	}
	free(a);
	return err;
}

/* terminal.show {"id"} -> terminal */
static tkm_err terminal_show(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                             char *why, size_t why_len)
{
	static const char *const keys[] = {"id"};
	tkm_store_terminal *t = calloc(1, sizeof(*t));
	int64_t id = 0;
	tkm_err err;

	if (t == NULL) {
		return TKM_E_NOMEM;
	}
	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err == TKM_OK) {
		err = id_param(params, &id, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_terminal_get(tkm_rpc_ctx_env(ctx)->store, id, t, why, why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no terminal %lld", (long long)id);
	}
	if (err == TKM_OK) {
		put_terminal(result, t);
		err = tkm_cbor_w_error(result);
	}
	free(t);
	return err;
}

typedef struct list_acc {
	tkm_cbor_w *w;
	size_t n;
	int64_t last;
} list_acc;

static tkm_err list_one(void *arg, const tkm_store_terminal *t)
{
	list_acc *l = arg;

	put_terminal(l->w, t);
	l->n++;
	l->last = t->id;
	return tkm_cbor_w_error(l->w);
}

/*
 * terminal.list {? "merchant", ? "site", ? "group", ? "state", ? "seen_since_ms",
 *                ? "not_seen_since_ms", ? "after": id, ? "limit"} -> {"terminals", "next"}
 */
static tkm_err terminal_list(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                             char *why, size_t why_len)
{
	static const char *const keys[] = {"merchant",      "site",  "group", "state",
	                                   "seen_since_ms", "after", "limit", "not_seen_since_ms"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	char merchant[65], site[65], group[65], state[32];
	tkm_store_terminal_filter f;
	uint64_t after = 0, limit = TERMINAL_PAGE_DEFAULT;
	list_acc l = {NULL, 0, 0};
	const uint8_t *p;
	size_t len;
	bool more = false;
	tkm_err err;

	memset(&f, 0, sizeof(f));
	err = tkm_rpc_params_check(params, keys, sizeof(keys) / sizeof(keys[0]), why, why_len);
	if (err == TKM_OK) {
		err = opt_text(params, "merchant", merchant, sizeof(merchant), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(params, "site", site, sizeof(site), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(params, "group", group, sizeof(group), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(params, "state", state, sizeof(state), why, why_len);
	}
	if (err == TKM_OK && state[0] != '\0' &&
	    !tkm_store_terminal_state_parse(state, strlen(state), &f.state)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "'state' is registered, active, suspended, revoked or "
		                   "decommissioned");
	}
	if (err == TKM_OK && tkm_cbor_map_get(params, "seen_since_ms") != NULL &&
	    !tkm_cbor_get_uint(tkm_cbor_map_get(params, "seen_since_ms"), &f.seen_since_ms)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'seen_since_ms' is a time");
	}
	if (err == TKM_OK && tkm_cbor_map_get(params, "not_seen_since_ms") != NULL &&
	    !tkm_cbor_get_uint(tkm_cbor_map_get(params, "not_seen_since_ms"),
	                       &f.not_seen_since_ms)) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'not_seen_since_ms' is a time");
	}
	if (err == TKM_OK && tkm_cbor_map_get(params, "after") != NULL &&
	    (!tkm_cbor_get_uint(tkm_cbor_map_get(params, "after"), &after) || after > INT64_MAX)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'after' is a record id");
	}
	if (err == TKM_OK && tkm_cbor_map_get(params, "limit") != NULL &&
	    (!tkm_cbor_get_uint(tkm_cbor_map_get(params, "limit"), &limit) || limit == 0 ||
	     limit > TKM_STORE_PAGE_MAX)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'limit' must be 1 to %d",
		                   TKM_STORE_PAGE_MAX);
	}
	if (err != TKM_OK) {
		return err;
	}
	f.merchant = merchant[0] != '\0' ? merchant : NULL;
	f.site = site[0] != '\0' ? site : NULL;
	f.group = group[0] != '\0' ? group : NULL;
	err = tkm_cbor_w_new(env->max_message_size, &l.w);
	if (err == TKM_OK) {
		err = tkm_store_terminal_page(env->store, &f, (int64_t)after, (size_t)limit,
		                              list_one, &l, &more, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_finish(l.w, &p, &len);
		if (err == TKM_E_RESOURCE_EXHAUSTED) {
			tkm_why_set(why, why_len,
			            "the page is larger than max_message_size; ask for a "
			            "smaller 'limit'");
		}
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 2);
		tkm_cbor_put_cstr(result, "next");
		if (more) {
			tkm_cbor_put_uint(result, (uint64_t)l.last);
		} else {
			tkm_cbor_put_null(result);
		}
		tkm_cbor_put_cstr(result, "terminals");
		tkm_cbor_put_array(result, l.n);
		tkm_cbor_put_raw(result, p, len);
		err = tkm_cbor_w_error(result);
	}
	tkm_cbor_w_free(l.w);
	return err;
}

/* ---- terminal.import ---- */

/* One row's outcome, kept for the reply. */
typedef struct import_row {
	tkm_store_terminal t;
	int64_t id;
	tkm_store_import_result result;
	tkm_err err;
	char why[160];
} import_row;

typedef struct import_arg {
	import_row *rows;
	size_t n;
	size_t inserted, updated, unchanged, refused;
} import_arg;

/*
 * Every row in its own savepoint: a bad row is refused alone and never half
 * written, the good rows and the one audit record commit together.
 */
static tkm_err import_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	import_arg *a = arg;
	tkm_err err;

	(void)why;
	(void)why_len;
	a->inserted = a->updated = a->unchanged = a->refused = 0;
	for (size_t i = 0; i < a->n; i++) {
		import_row *r = &a->rows[i];

		if (r->err != TKM_OK) {
			a->refused++;
			continue;
		}
		err = tkm_store_tx_exec(tx, "SAVEPOINT row", NULL, 0, r->why, sizeof(r->why));
		if (err == TKM_OK) {
			r->err = tkm_store_tx_terminal_import(tx, &r->t, &r->id, &r->result, r->why,
			                                      sizeof(r->why));
			err = tkm_store_tx_exec(
			    tx, r->err == TKM_OK ? "RELEASE row" : "ROLLBACK TO row", NULL, 0,
			    r->why, sizeof(r->why));
		}
		if (err == TKM_OK && r->err != TKM_OK) {
			err = tkm_store_tx_exec(tx, "RELEASE row", NULL, 0, r->why, sizeof(r->why));
		}
		if (err != TKM_OK) {
			return err;
		}
		if (r->err != TKM_OK) {
			a->refused++;
		} else if (r->result == TKM_STORE_IMPORT_INSERTED) {
			a->inserted++;
		} else if (r->result == TKM_STORE_IMPORT_UPDATED) {
			a->updated++;
		} else {
			a->unchanged++;
		}
	}
	return TKM_OK;
}

/*
 * terminal.import {"rows": [registry fields...]} -> {"inserted", "updated",
 *   "unchanged", "refused", "rows": [{"index", ? "id", "result" / "error"}]}
 * Idempotent: the same rows again change nothing. At most 1000 rows a call;
 * tkmctl terminal import sends a file in such batches.
 */
static tkm_err terminal_import(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                               char *why, size_t why_len)
{
	static const char *const keys[] = {"rows"};
	const tkm_cbor_val *rows = tkm_cbor_map_get(params, "rows"), *v;
	import_arg a = {NULL, 0, 0, 0, 0, 0};
	tkm_cbor_w *d = NULL;
	const uint8_t *dp = NULL;
	size_t dn = 0, i = 0;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err == TKM_OK && (!tkm_cbor_is(rows, TKM_CBOR_ARRAY) || tkm_cbor_count(rows) == 0 ||
	                      tkm_cbor_count(rows) > TERMINAL_IMPORT_MAX)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "'rows' is an array of 1 to %d terminals", TERMINAL_IMPORT_MAX);
	}
	if (err != TKM_OK) {
		return err;
	}
	a.n = tkm_cbor_count(rows);
	a.rows = calloc(a.n, sizeof(*a.rows));
	if (a.rows == NULL) {
		return TKM_E_NOMEM;
	}
	for (v = tkm_cbor_first(rows); v != NULL; v = tkm_cbor_next(v), i++) {
		if (!tkm_cbor_is(v, TKM_CBOR_MAP)) {
			a.rows[i].err = tkm_why_fail(a.rows[i].why, sizeof(a.rows[i].why),
			                             TKM_E_BAD_REQUEST, "a row is a map of fields");
		} else {
			a.rows[i].err =
			    terminal_fields(v, &a.rows[i].t, a.rows[i].why, sizeof(a.rows[i].why));
		}
	}
	tkm_rpc_set_target(ctx, "terminals");
	err = tkm_cbor_w_new(128, &d);
	if (err == TKM_OK) {
		/* The counts are known only inside the change: the record gives the batch size. */
		tkm_cbor_put_map(d, 1);
		tkm_cbor_put_cstr(d, "rows");
		tkm_cbor_put_uint(d, a.n);
		err = tkm_cbor_w_finish(d, &dp, &dn);
	}
	if (err == TKM_OK) {
		err =
		    tkm_rpc_commit(ctx, import_change, &a, "terminals", dp, dn, NULL, why, why_len);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 5);
		tkm_cbor_put_cstr(result, "rows");
		tkm_cbor_put_array(result, a.n);
		for (i = 0; i < a.n; i++) {
			const import_row *r = &a.rows[i];

			tkm_cbor_put_map(result, r->err == TKM_OK ? 3 : 2);
			tkm_cbor_put_cstr(result, "index");
			tkm_cbor_put_uint(result, i);
			if (r->err == TKM_OK) {
				tkm_cbor_put_cstr(result, "id");
				tkm_cbor_put_uint(result, (uint64_t)r->id);
				tkm_cbor_put_cstr(result, "result");
				tkm_cbor_put_cstr(
				    result, r->result == TKM_STORE_IMPORT_INSERTED  ? "inserted"
				            : r->result == TKM_STORE_IMPORT_UPDATED ? "updated"
				                                                    : "unchanged");
			} else {
				tkm_cbor_put_cstr(result, "error");
				tkm_cbor_put_cstr(result, r->why[0] != '\0' ? r->why
				                                            : tkm_strerror(r->err));
			}
		}
		tkm_cbor_put_cstr(result, "refused");
		tkm_cbor_put_uint(result, a.refused);
		tkm_cbor_put_cstr(result, "updated");
		tkm_cbor_put_uint(result, a.updated);
		tkm_cbor_put_cstr(result, "inserted");
		tkm_cbor_put_uint(result, a.inserted);
		tkm_cbor_put_cstr(result, "unchanged");
		tkm_cbor_put_uint(result, a.unchanged);
		err = tkm_cbor_w_error(result);
	}
	tkm_cbor_w_free(d);
	free(a.rows);
	return err;
}

/* ---- Lifecycle ---- */

typedef struct move_arg {
	int64_t id;
	tkm_store_terminal_state to;
	tkm_store_terminal_state from; /* set inside the change */
} move_arg;

/* Which moves a method may make: the table of docs/terminals.md. */
static bool move_allowed(tkm_store_terminal_state from, tkm_store_terminal_state to)
{
	switch (to) {
	case TKM_STORE_TERMINAL_SUSPENDED:
		return from == TKM_STORE_TERMINAL_ACTIVE;
	case TKM_STORE_TERMINAL_ACTIVE:
		return from == TKM_STORE_TERMINAL_SUSPENDED;
	case TKM_STORE_TERMINAL_REVOKED:
	case TKM_STORE_TERMINAL_DECOMMISSIONED:
		return from == TKM_STORE_TERMINAL_REGISTERED || from == TKM_STORE_TERMINAL_ACTIVE ||
		       from == TKM_STORE_TERMINAL_SUSPENDED;
	default:
		return false;
	}
}

static tkm_err move_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	move_arg *m = arg;
	tkm_store_terminal t;
	tkm_store_terminal_keys keys;
	tkm_err err = tkm_store_tx_terminal_get(tx, m->id, &t, why, why_len);

	if (err != TKM_OK) {
		return err;
	}
	m->from = t.state;
	if (!move_allowed(t.state, m->to)) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "terminal %lld is %s: it cannot become %s (docs/terminals.md)",
		                    (long long)m->id, tkm_store_terminal_state_name(t.state),
		                    tkm_store_terminal_state_name(m->to));
	}
	err = tkm_store_tx_terminal_set_state(tx, m->id, t.state, m->to, why, why_len);
	/* Revoked or retired: its identity is refused from its next request on. */
	if (err == TKM_OK &&
	    (m->to == TKM_STORE_TERMINAL_REVOKED || m->to == TKM_STORE_TERMINAL_DECOMMISSIONED)) {
		char principal[TKM_STORE_TERMINAL_PRINCIPAL_MAX + 1];

		principal_name(m->id, principal, sizeof(principal));
		err = tkm_store_tx_device_disable(tx, principal, true, why, why_len);
		if (err == TKM_E_NOT_FOUND) {
			err = TKM_OK; /* never enrolled: no identity to refuse */
		}
	}
	(void)keys;
	return err;
}

/* Suspend, resume, revoke, decommission: {"id", "reason"} -> {"id", "from", "state"}. */
static tkm_err terminal_move(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                             tkm_store_terminal_state to, char *why, size_t why_len)
{
	static const char *const keys[] = {"id", "reason"};
	char reason[REASON_MAX + 1], target[48];
	move_arg m = {0, to, TKM_STORE_TERMINAL_ANY};
	tkm_cbor_w *d = NULL;
	const uint8_t *dp = NULL;
	size_t dn = 0;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK) {
		err = id_param(params, &m.id, why, why_len);
	}
	if (err == TKM_OK) {
		target_name(m.id, target, sizeof(target));
		tkm_rpc_set_target(ctx, target);
		err = req_text(params, "reason", reason, sizeof(reason), why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_new(REASON_MAX + 64, &d);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(d, 1);
		tkm_cbor_put_cstr(d, "reason");
		tkm_cbor_put_cstr(d, reason);
		err = tkm_cbor_w_finish(d, &dp, &dn);
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit(ctx, move_change, &m, target, dp, dn, NULL, why, why_len);
	}
	tkm_cbor_w_free(d);
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no terminal %lld",
		                   (long long)m.id);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 3);
	tkm_cbor_put_cstr(result, "id");
	tkm_cbor_put_uint(result, (uint64_t)m.id);
	tkm_cbor_put_cstr(result, "from");
	tkm_cbor_put_cstr(result, tkm_store_terminal_state_name(m.from));
	tkm_cbor_put_cstr(result, "state");
	tkm_cbor_put_cstr(result, tkm_store_terminal_state_name(to));
	return tkm_cbor_w_error(result);
}

static tkm_err terminal_suspend(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                                char *why, size_t why_len)
{
	return terminal_move(ctx, params, result, TKM_STORE_TERMINAL_SUSPENDED, why, why_len);
}

static tkm_err terminal_resume(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                               char *why, size_t why_len)
{
	return terminal_move(ctx, params, result, TKM_STORE_TERMINAL_ACTIVE, why, why_len);
}

static tkm_err terminal_revoke(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                               char *why, size_t why_len)
{
	return terminal_move(ctx, params, result, TKM_STORE_TERMINAL_REVOKED, why, why_len);
}

static tkm_err terminal_decommission(tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                                     tkm_cbor_w *result, char *why, size_t why_len)
{
	return terminal_move(ctx, params, result, TKM_STORE_TERMINAL_DECOMMISSIONED, why, why_len);
}

/* ---- Histories ---- */

typedef struct history_arg {
	int64_t id;
	bool custody;
	tkm_store_maintenance m;
	tkm_store_custody c;
	int64_t seq;
} history_arg;

static tkm_err history_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	history_arg *h = arg;
	uint64_t now = tkm_rpc_now_ms();

	return h->custody
	           ? tkm_store_tx_custody_add(tx, h->id, &h->c, now, &h->seq, why, why_len)
	           : tkm_store_tx_maintenance_add(tx, h->id, &h->m, now, &h->seq, why, why_len);
}

static tkm_err history_commit(tkm_rpc_ctx *ctx, history_arg *h, tkm_cbor_w *result, char *why,
                              size_t why_len)
{
	char target[48];
	tkm_err err;

	target_name(h->id, target, sizeof(target));
	err = tkm_rpc_commit(ctx, history_change, h, target, NULL, 0, NULL, why, why_len);
	if (err == TKM_E_INVALID_ARG) {
		err = TKM_E_BAD_REQUEST;
	}
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no terminal %lld",
		                   (long long)h->id);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 1);
	tkm_cbor_put_cstr(result, "seq");
	tkm_cbor_put_uint(result, (uint64_t)h->seq);
	return tkm_cbor_w_error(result);
}

/* terminal.maintenance_add {"id", "at": date, "kind", "description", "technician"} -> {"seq"} */
static tkm_err terminal_maintenance_add(tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                                        tkm_cbor_w *result, char *why, size_t why_len)
{
	static const char *const keys[] = {"id", "at", "kind", "description", "technician"};
	history_arg *h = calloc(1, sizeof(*h));
	tkm_err err;

	if (h == NULL) {
		return TKM_E_NOMEM;
	}
	err = tkm_rpc_params_check(params, keys, 5, why, why_len);
	if (err == TKM_OK) {
		err = id_param(params, &h->id, why, why_len);
	}
	if (err == TKM_OK) {
		err = req_text(params, "at", h->m.at, sizeof(h->m.at), why, why_len);
	}
	if (err == TKM_OK) {
		err = req_text(params, "kind", h->m.kind, sizeof(h->m.kind), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(params, "description", h->m.description, sizeof(h->m.description),
		               why, why_len);
	}
	if (err == TKM_OK) {
		err = req_text(params, "technician", h->m.technician, sizeof(h->m.technician), why,
		               why_len);
	}
	if (err == TKM_OK) {
		err = history_commit(ctx, h, result, why, why_len);
	}
	free(h);
	return err;
}

/*
 * terminal.custody_add {"id", "at": date, "action": "received" / "returned", "person",
 *                       ? "counterparty"} -> {"seq"}
 */
static tkm_err terminal_custody_add(tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                                    tkm_cbor_w *result, char *why, size_t why_len)
{
	static const char *const keys[] = {"id", "at", "action", "person", "counterparty"};
	history_arg *h = calloc(1, sizeof(*h));
	char action[16];
	tkm_err err;

	if (h == NULL) {
		return TKM_E_NOMEM;
	}
	h->custody = true;
	err = tkm_rpc_params_check(params, keys, 5, why, why_len);
	if (err == TKM_OK) {
		err = id_param(params, &h->id, why, why_len);
	}
	if (err == TKM_OK) {
		err = req_text(params, "at", h->c.at, sizeof(h->c.at), why, why_len);
	}
	if (err == TKM_OK) {
		err = req_text(params, "action", action, sizeof(action), why, why_len);
	}
	if (err == TKM_OK &&
	    !tkm_store_custody_action_parse(action, strlen(action), &h->c.action)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "'action' is \"received\" or \"returned\"");
	}
	if (err == TKM_OK) {
		err = req_text(params, "person", h->c.person, sizeof(h->c.person), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(params, "counterparty", h->c.counterparty, sizeof(h->c.counterparty),
		               why, why_len);
	}
	if (err == TKM_OK) {
		err = history_commit(ctx, h, result, why, why_len);
	}
	free(h);
	return err;
}

/* ---- Enrollment ---- */

#define CODE_CHARS 28 /* base32: 140 bits */
#define CODE_GROUP 4
#define CODE_TEXT  (CODE_CHARS + CODE_CHARS / CODE_GROUP)
#define ENROLL_CTX "tkm enroll v1"

/* A code as people type it: uppercase base32, '-' and ' ' ignored. 0 if malformed. */
static size_t code_normalise(const char *in, size_t len, char out[static CODE_CHARS + 1])
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '-' || c == ' ') {
			continue;
		}
		if (c >= 'a' && c <= 'z') {
			c = (char)(c - 'a' + 'A');
		}
		if (!((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7')) || n == CODE_CHARS) {
			return 0;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return n == CODE_CHARS ? n : 0;
}

static void code_hash(const char *norm, uint8_t hash[static TKM_STORE_ENROLL_HASH_LEN])
{
	static const uint8_t key[] = "tkm enrollment code v1";

	(void)crypto_generichash(hash, TKM_STORE_ENROLL_HASH_LEN, (const uint8_t *)norm,
	                         strlen(norm), key, sizeof(key) - 1);
}

typedef struct code_arg {
	uint8_t hash[TKM_STORE_ENROLL_HASH_LEN];
	int64_t id;
	uint64_t now_ms, expires_ms;
} code_arg;

static tkm_err code_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const code_arg *c = arg;

	return tkm_store_tx_enroll_code_insert(tx, c->hash, c->id, c->now_ms, c->expires_ms, why,
	                                       why_len);
}

/*
 * terminal.enroll_code {"id"} or {"manufacturer", "serial"}
 *   -> {"terminal", "code", "expires_ms"}
 * A single-use code of 140 random bits in base32 groups; only its hash is
 * stored, and a new code supersedes the terminal's older one.
 */
static tkm_err terminal_enroll_code(tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                                    tkm_cbor_w *result, char *why, size_t why_len)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	static const char *const keys[] = {"id", "manufacturer", "serial"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	char norm[CODE_CHARS + 1], shown[CODE_TEXT + 1], target[48];
	tkm_store_terminal *t = calloc(1, sizeof(*t));
	tkm_cbor_w *d = NULL;
	const uint8_t *dp = NULL;
	size_t dn = 0, o = 0;
	code_arg c;
	tkm_err err;

	if (t == NULL) {
		return TKM_E_NOMEM;
	}
	err = tkm_rpc_params_check(params, keys, 3, why, why_len);
	if (err == TKM_OK) {
		err = terminal_named(env, params, t, why, why_len);
	}
	if (err != TKM_OK) {
		free(t);
		return err;
	}
	target_name(t->id, target, sizeof(target));
	tkm_rpc_set_target(ctx, target);
	for (size_t i = 0; i < CODE_CHARS; i++) {
		norm[i] = alphabet[randombytes_uniform(32)];
		if (i > 0 && i % CODE_GROUP == 0) {
			shown[o++] = '-';
		}
		shown[o++] = norm[i];
	}
	norm[CODE_CHARS] = '\0';
	shown[o] = '\0';
	memset(&c, 0, sizeof(c));
	code_hash(norm, c.hash);
	c.id = t->id;
	c.now_ms = tkm_rpc_now_ms();
	c.expires_ms = c.now_ms + env->enroll_code_ttl_ms;
	err = tkm_cbor_w_new(64, &d);
	if (err == TKM_OK) {
		/* The record says when it expires, never the code. */
		tkm_cbor_put_map(d, 1);
		tkm_cbor_put_cstr(d, "expires_ms");
		tkm_cbor_put_uint(d, c.expires_ms);
		err = tkm_cbor_w_finish(d, &dp, &dn);
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit(ctx, code_change, &c, target, dp, dn, NULL, why, why_len);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 3);
		tkm_cbor_put_cstr(result, "terminal");
		tkm_cbor_put_uint(result, (uint64_t)t->id);
		tkm_cbor_put_cstr(result, "code");
		tkm_cbor_put_cstr(result, shown);
		tkm_cbor_put_cstr(result, "expires_ms");
		tkm_cbor_put_uint(result, c.expires_ms);
		err = tkm_cbor_w_error(result);
	}
	sodium_memzero(norm, sizeof(norm));
	sodium_memzero(shown, sizeof(shown));
	tkm_cbor_w_free(d);
	free(t);
	return err;
}

typedef struct enroll_arg {
	uint8_t hash[TKM_STORE_ENROLL_HASH_LEN];
	const char *manufacturer, *serial;
	const uint8_t *sign_pk, *box_pk;
	int64_t id;
	char principal[TKM_STORE_TERMINAL_PRINCIPAL_MAX + 1];
} enroll_arg;

static tkm_err enroll_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	enroll_arg *e = arg;
	tkm_store_code_fault fault = TKM_STORE_CODE_OK;
	tkm_store_terminal t;
	tkm_store_device d;
	uint64_t now = tkm_rpc_now_ms();
	tkm_err err;

	err = tkm_store_tx_enroll_code_consume(tx, e->hash, now, &e->id, &fault, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, TKM_E_NOT_FOUND,
		                    "unknown enrollment code: mistyped, or never issued");
	}
	if (err == TKM_E_FAILED_PRECONDITION) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    fault == TKM_STORE_CODE_USED
		                        ? "the enrollment code was used already: ask for a new one"
		                        : "the enrollment code expired: ask for a new one");
	}
	if (err == TKM_OK) {
		err = tkm_store_tx_terminal_get(tx, e->id, &t, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	if (strcmp(t.manufacturer, e->manufacturer) != 0 || strcmp(t.serial, e->serial) != 0) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "the code is for another terminal");
	}
	if (t.state != TKM_STORE_TERMINAL_REGISTERED) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "terminal %lld is %s: only a registered terminal enrolls; "
		                    "re-enrollment goes through revoke and a new record",
		                    (long long)e->id, tkm_store_terminal_state_name(t.state));
	}
	principal_name(e->id, e->principal, sizeof(e->principal));
	memset(&d, 0, sizeof(d));
	memcpy(d.principal, e->principal, strlen(e->principal) + 1);
	memcpy(d.kind, "terminal", sizeof("terminal"));
	memcpy(d.public_key, e->sign_pk, sizeof(d.public_key));
	err = tkm_store_tx_device_insert(tx, &d, now, why, why_len);
	if (err == TKM_OK) {
		char holder[TKM_STORE_TERMINAL_PRINCIPAL_MAX + 16];

		tkm_why_set(holder, sizeof(holder), "device:%s", e->principal);
		err = tkm_store_tx_role_set(tx, holder, "terminal", NULL, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_tx_terminal_set_enrolled(tx, e->id, e->principal, e->sign_pk,
		                                         e->box_pk, now, why, why_len);
	}
	return err == TKM_E_CONFLICT || err == TKM_E_ALREADY_EXISTS
	           ? tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
	                          "terminal %lld cannot be enrolled now", (long long)e->id)
	           : err;
}

/* bstr .size n from params */
static tkm_err key_param(const tkm_cbor_val *params, const char *key, size_t n, const uint8_t **out,
                         char *why, size_t why_len)
{
	size_t len = 0;

	if (!tkm_cbor_get_bytes(tkm_cbor_map_get(params, key), out, &len) || len != n) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'%s' is %zu bytes", key, n);
	}
	return TKM_OK;
}

/*
 * terminal.enroll (public: the code authenticates it)
 *   {"code", "manufacturer", "serial", "sign_pk", "box_pk", "sig"}
 *   -> {"terminal", "principal", "state": "active"}
 * sig is the new Ed25519 key's signature over ["tkm enroll v1", code
 * (normalised), manufacturer, serial, sign_pk, box_pk]: the device holds the
 * key it binds. Every attempt is audited; the code never is.
 */
static tkm_err terminal_enroll(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                               char *why, size_t why_len)
{
	static const char *const keys[] = {"code",    "manufacturer", "serial",
	                                   "sign_pk", "box_pk",       "sig"};
	char code[64], norm[CODE_CHARS + 1];
	char manufacturer[TKM_STORE_TERMINAL_FIELD_MAX + 1],
	    serial[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	char target[160];
	const uint8_t *sig = NULL, *msg = NULL;
	size_t msg_len = 0;
	tkm_cbor_w *m = NULL;
	enroll_arg e;
	tkm_err err;

	memset(&e, 0, sizeof(e));
	err = tkm_rpc_params_check(params, keys, 6, why, why_len);
	if (err == TKM_OK) {
		err = req_text(params, "manufacturer", manufacturer, sizeof(manufacturer), why,
		               why_len);
	}
	if (err == TKM_OK) {
		err = req_text(params, "serial", serial, sizeof(serial), why, why_len);
	}
	if (err == TKM_OK) {
		tkm_why_set(target, sizeof(target), "hw:%s/%s", manufacturer, serial);
		tkm_rpc_set_target(ctx, target);
		err = req_text(params, "code", code, sizeof(code), why, why_len);
	}
	if (err == TKM_OK && code_normalise(code, strlen(code), norm) == 0) {
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND,
		                   "that is not an enrollment code (%d letters A-Z and digits 2-7)",
		                   CODE_CHARS);
	}
	if (err == TKM_OK) {
		err = key_param(params, "sign_pk", 32, &e.sign_pk, why, why_len);
	}
	if (err == TKM_OK) {
		err = key_param(params, "box_pk", 32, &e.box_pk, why, why_len);
	}
	if (err == TKM_OK) {
		err = key_param(params, "sig", 64, &sig, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_new(1024, &m);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_array(m, 6);
		tkm_cbor_put_cstr(m, ENROLL_CTX);
		tkm_cbor_put_cstr(m, norm);
		tkm_cbor_put_cstr(m, manufacturer);
		tkm_cbor_put_cstr(m, serial);
		tkm_cbor_put_bytes(m, e.sign_pk, 32);
		tkm_cbor_put_bytes(m, e.box_pk, 32);
		err = tkm_cbor_w_finish(m, &msg, &msg_len);
	}
	if (err == TKM_OK && crypto_sign_verify_detached(sig, msg, msg_len, e.sign_pk) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                   "the enrollment is not signed by the key it binds");
	}
	if (err == TKM_OK) {
		code_hash(norm, e.hash);
		e.manufacturer = manufacturer;
		e.serial = serial;
		err = tkm_rpc_commit(ctx, enroll_change, &e, target, NULL, 0, NULL, why, why_len);
	}
	sodium_memzero(code, sizeof(code));
	sodium_memzero(norm, sizeof(norm));
	tkm_cbor_w_free(m);
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 3);
	tkm_cbor_put_cstr(result, "terminal");
	tkm_cbor_put_uint(result, (uint64_t)e.id);
	tkm_cbor_put_cstr(result, "principal");
	tkm_cbor_put_cstr(result, e.principal);
	tkm_cbor_put_cstr(result, "state");
	tkm_cbor_put_cstr(result, "active");
	return tkm_cbor_w_error(result);
}

/* ---- Check-in ---- */

typedef struct versions_arg {
	int64_t id;
	const char *firmware, *app;
} versions_arg;

static tkm_err versions_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const versions_arg *v = arg;

	return tkm_store_tx_terminal_set_versions(tx, v->id, v->firmware, v->app, why, why_len);
}

/*
 * terminal.checkin (the terminal's own signed request)
 *   {? "firmware_version", ? "app_version", ? "health": map}
 *   -> {"terminal", "server_time_ms", "actions": [tstr]}
 * Cheap: reads, and a write only when the versions changed; last seen is
 * batched (tkm_seen.h). Actions are filled by the key and password issues.
 */
static tkm_err terminal_checkin(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                                char *why, size_t why_len)
{
	static const char *const keys[] = {"firmware_version", "app_version", "health"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	char firmware[TKM_STORE_TERMINAL_FIELD_MAX + 1], app[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	char target[48], fwhy[128];
	tkm_store_terminal *t = calloc(1, sizeof(*t));
	tkm_store_terminal_keys k;
	const tkm_cbor_val *health = tkm_cbor_map_get(params, "health");
	uint64_t now = tkm_rpc_now_ms();
	tkm_err err;

	if (t == NULL) {
		return TKM_E_NOMEM;
	}
	err = tkm_rpc_params_check(params, keys, 3, why, why_len);
	if (err == TKM_OK && health != NULL &&
	    (!tkm_cbor_is(health, TKM_CBOR_MAP) || tkm_cbor_count(health) > 32)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "'health' is a map of at most 32 entries");
	}
	if (err == TKM_OK) {
		err =
		    opt_text(params, "firmware_version", firmware, sizeof(firmware), why, why_len);
	}
	if (err == TKM_OK) {
		err = opt_text(params, "app_version", app, sizeof(app), why, why_len);
	}
	if (err == TKM_OK && (who->is_operator || strncmp(who->principal, "device:", 7) != 0)) {
		err = tkm_why_fail(why, why_len, TKM_E_PERMISSION_DENIED,
		                   "only a terminal checks in, with its own key");
	}
	if (err == TKM_OK) {
		err = tkm_store_terminal_by_principal(env->store, who->principal + 7, t, &k, why,
		                                      why_len);
		if (err == TKM_E_NOT_FOUND) {
			err = tkm_why_fail(why, why_len, TKM_E_PERMISSION_DENIED,
			                   "%s is not an enrolled terminal", who->principal);
		}
	}
	if (err == TKM_OK && t->state != TKM_STORE_TERMINAL_ACTIVE) {
		err = tkm_why_fail(why, why_len, TKM_E_PERMISSION_DENIED, "terminal %lld is %s",
		                   (long long)t->id, tkm_store_terminal_state_name(t->state));
	}
	if (err == TKM_OK && ((firmware[0] != '\0' && strcmp(firmware, t->firmware_version) != 0) ||
	                      (app[0] != '\0' && strcmp(app, t->app_version) != 0))) {
		versions_arg v = {t->id, firmware[0] != '\0' ? firmware : t->firmware_version,
		                  app[0] != '\0' ? app : t->app_version};

		target_name(t->id, target, sizeof(target));
		err = tkm_rpc_commit(ctx, versions_change, &v, target, NULL, 0, NULL, why, why_len);
	}
	if (err == TKM_OK && tkm_seen_note(env->seen, t->id, now) &&
	    tkm_seen_flush(env->seen, env->store, now, fwhy, sizeof(fwhy)) != TKM_OK) {
		/* The check-in itself is fine; the times wait for the next flush. */
		tkm_log_msg(TKM_LOG_WARN, "last-seen times not written yet", fwhy);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 3);
		tkm_cbor_put_cstr(result, "actions");
		tkm_cbor_put_array(result, 0);
		tkm_cbor_put_cstr(result, "terminal");
		tkm_cbor_put_uint(result, (uint64_t)t->id);
		tkm_cbor_put_cstr(result, "server_time_ms");
		tkm_cbor_put_uint(result, now);
		err = tkm_cbor_w_error(result);
	}
	free(t);
	return err;
}

static const tkm_rpc_method terminal_methods[] = {
    {"terminal.add", terminal_add, "terminal.add", 0, NULL},
    {"terminal.import", terminal_import, "terminal.import", 0, NULL},
    {"terminal.show", terminal_show, "terminal.show", TKM_RPC_F_READONLY, resolve_terminal},
    {"terminal.list", terminal_list, "terminal.list", TKM_RPC_F_READONLY, NULL},
    {"terminal.suspend", terminal_suspend, "terminal.suspend", 0, resolve_terminal},
    {"terminal.resume", terminal_resume, "terminal.resume", 0, resolve_terminal},
    {"terminal.revoke", terminal_revoke, "terminal.revoke", 0, resolve_terminal},
    {"terminal.decommission", terminal_decommission, "terminal.decommission", 0, resolve_terminal},
    {"terminal.maintenance_add", terminal_maintenance_add, "terminal.maintenance_add", 0,
     resolve_terminal},
    {"terminal.custody_add", terminal_custody_add, "terminal.custody_add", 0, resolve_terminal},
    {"terminal.enroll_code", terminal_enroll_code, "terminal.enroll_code", 0, resolve_terminal},
    {"terminal.enroll", terminal_enroll, "terminal.enroll", 0, NULL},
    /* Read-only for the audit log: a check-in that changes versions commits its own record. */
    {"terminal.checkin", terminal_checkin, "terminal.checkin", TKM_RPC_F_READONLY, resolve_self},
};

const tkm_rpc_table tkm_methods_terminal = {terminal_methods,
                                            sizeof(terminal_methods) / sizeof(terminal_methods[0])};
