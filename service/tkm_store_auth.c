/*
 * tkm_store_auth.c - the SQL of identities: operators, password history,
 * role assignments, sessions, devices, policy versions. See tkm_store_auth.h.
 */
#include <stdlib.h>
#include <string.h>

#include "tkm_store_auth.h"
#include "tkm_store_internal.h"
#include "tkm_why.h"

#define V_INT(x)                                                                                   \
	{                                                                                          \
		.type = TKM_STORE_INT, .i = (int64_t)(x)                                           \
	}
#define V_TEXT(s)                                                                                  \
	{                                                                                          \
		.type = TKM_STORE_TEXT, .p = (s), .len = strlen(s)                                 \
	}
#define V_BLOB(b, n)                                                                               \
	{                                                                                          \
		.type = TKM_STORE_BLOB, .p = (b), .len = (n)                                       \
	}

/*
 * Run a SELECT on the store's reader connection and call row() for each row
 * (at most max rows, 0: all). TKM_E_NOT_FOUND when there is none.
 */
static tkm_err query(tkm_store *st, const char *sql, const tkm_store_val *vals, size_t n,
                     tkm_err (*row)(sqlite3_stmt *s, void *arg), void *arg, char *why,
                     size_t why_len)
{
	sqlite3_stmt *s = NULL;
	sqlite3 *db = NULL;
	size_t rows = 0;
	tkm_err err = TKM_OK;
	int rc;

	err = tkm_store_reader_get(st, &db, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK ||
	    tkm_store_bind(s, vals, n) != SQLITE_OK) {
		err = tkm_store_db_fail(db, st->path, "cannot read identities", why, why_len);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		rows++;
		err = row(s, arg);
		if (err != TKM_OK) {
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		err = tkm_store_db_fail(db, st->path, "cannot read identities", why, why_len);
	} else if (rows == 0) {
		err = TKM_E_NOT_FOUND;
	}
out:
	sqlite3_finalize(s);
	tkm_store_reader_put(st, db);
	return err;
}

static uint64_t col_u64(sqlite3_stmt *s, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(s, i);

	return v > 0 ? (uint64_t)v : 0;
}

/* ---- Operators ---- */

#define OPERATOR_COLUMNS                                                                           \
	"id, username, pw_hash, pw_changed, must_change, failed, locked_until, disabled, created"

static tkm_err operator_row(sqlite3_stmt *s, void *arg)
{
	tkm_store_operator *op = arg;

	memset(op, 0, sizeof(*op));
	op->id = sqlite3_column_int64(s, 0);
	if (!tkm_store_col_text(s, 1, op->username, sizeof(op->username), false) ||
	    !tkm_store_col_text(s, 2, op->pw_hash, sizeof(op->pw_hash), false)) {
		return TKM_E_IO;
	}
	op->pw_changed_ms = col_u64(s, 3);
	op->must_change = sqlite3_column_int(s, 4) != 0;
	op->failed = (uint32_t)col_u64(s, 5);
	op->locked_until_ms = col_u64(s, 6);
	op->disabled = sqlite3_column_int(s, 7) != 0;
	op->created_ms = col_u64(s, 8);
	return TKM_OK;
}

tkm_err tkm_store_operator_get(tkm_store *st, const char *username, tkm_store_operator *out,
                               char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(username)};

	return query(st, "SELECT " OPERATOR_COLUMNS " FROM operator WHERE username = ?1", v, 1,
	             operator_row, out, why, why_len);
}

tkm_err tkm_store_operator_get_id(tkm_store *st, int64_t id, tkm_store_operator *out, char *why,
                                  size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id)};

	return query(st, "SELECT " OPERATOR_COLUMNS " FROM operator WHERE id = ?1", v, 1,
	             operator_row, out, why, why_len);
}

typedef struct op_page {
	tkm_err (*fn)(void *arg, const tkm_store_operator *op);
	void *arg;
	size_t limit, n;
	bool more;
} op_page;

static tkm_err op_page_row(sqlite3_stmt *s, void *arg)
{
	op_page *pg = arg;
	tkm_store_operator op;
	tkm_err err;

	if (pg->n == pg->limit) {
		pg->more = true;
		return TKM_OK;
	}
	err = operator_row(s, &op);
	if (err == TKM_OK) {
		err = pg->fn(pg->arg, &op);
	}
	pg->n++;
	return err;
}

tkm_err tkm_store_operator_page(tkm_store *st, const char *after, size_t limit,
                                tkm_err (*fn)(void *arg, const tkm_store_operator *op), void *arg,
                                bool *more, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(after != NULL ? after : ""), V_INT(limit + 1)};
	op_page pg = {fn, arg, limit, 0, false};
	tkm_err err;

	err = query(st,
	            "SELECT " OPERATOR_COLUMNS " FROM operator WHERE username > ?1 "
	            "ORDER BY username LIMIT ?2",
	            v, 2, op_page_row, &pg, why, why_len);
	*more = pg.more;
	return err == TKM_E_NOT_FOUND ? TKM_OK : err;
}

typedef struct hist_cb {
	tkm_err (*fn)(void *arg, const char *pw_hash);
	void *arg;
} hist_cb;

static tkm_err hist_row(sqlite3_stmt *s, void *arg)
{
	hist_cb *h = arg;
	char hash[TKM_STORE_PWHASH_MAX];

	if (!tkm_store_col_text(s, 0, hash, sizeof(hash), false)) {
		return TKM_E_IO;
	}
	return h->fn(h->arg, hash);
}

tkm_err tkm_store_operator_history(tkm_store *st, int64_t id, size_t n,
                                   tkm_err (*fn)(void *arg, const char *pw_hash), void *arg,
                                   char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id), V_INT(n)};
	hist_cb h = {fn, arg};
	tkm_err err;

	err = query(st,
	            "SELECT pw_hash FROM operator_password WHERE operator_id = ?1 "
	            "ORDER BY rowid DESC LIMIT ?2",
	            v, 2, hist_row, &h, why, why_len);
	return err == TKM_E_NOT_FOUND ? TKM_OK : err;
}

tkm_err tkm_store_tx_operator_insert(tkm_store_tx *tx, const tkm_store_operator *op, int64_t *id,
                                     char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(op->username), V_TEXT(op->pw_hash),
	                           V_INT(op->pw_changed_ms), V_INT(op->must_change ? 1 : 0),
	                           V_INT(op->created_ms)};
	tkm_err err;

	err = tkm_store_tx_exec(tx,
	                        "INSERT INTO operator (username, pw_hash, pw_changed, must_change, "
	                        "created) VALUES (?1, ?2, ?3, ?4, ?5)",
	                        v, 5, why, why_len);
	if (err == TKM_E_CONFLICT) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS, "operator '%s' exists",
		                    op->username);
	}
	if (err != TKM_OK) {
		return err;
	}
	*id = sqlite3_last_insert_rowid(tx->db);
	{
		const tkm_store_val h[] = {V_INT(*id), V_TEXT(op->pw_hash),
		                           V_INT(op->pw_changed_ms)};

		return tkm_store_tx_exec(
		    tx,
		    "INSERT INTO operator_password (operator_id, pw_hash, changed) "
		    "VALUES (?1, ?2, ?3)",
		    h, 3, why, why_len);
	}
}

/* TKM_E_NOT_FOUND when the last statement changed no row. */
static tkm_err changed_one(tkm_store_tx *tx, tkm_err err, char *why, size_t why_len)
{
	if (err == TKM_OK && sqlite3_changes(tx->db) == 0) {
		return tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no such principal");
	}
	return err;
}

tkm_err tkm_store_tx_operator_password(tkm_store_tx *tx, int64_t id, const char *pw_hash,
                                       uint64_t now_ms, bool must_change, size_t keep, char *why,
                                       size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id), V_TEXT(pw_hash), V_INT(now_ms),
	                           V_INT(must_change ? 1 : 0)};
	const tkm_store_val k[] = {V_INT(id), V_INT(keep)};
	tkm_err err;

	err = tkm_store_tx_exec(
	    tx,
	    "UPDATE operator SET pw_hash = ?2, pw_changed = ?3, must_change = ?4, "
	    "failed = 0, locked_until = 0 WHERE id = ?1",
	    v, 4, why, why_len);
	err = changed_one(tx, err, why, why_len);
	if (err == TKM_OK) {
		err = tkm_store_tx_exec(
		    tx,
		    "INSERT INTO operator_password (operator_id, pw_hash, changed) "
		    "VALUES (?1, ?2, ?3)",
		    v, 3, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_tx_exec(
		    tx,
		    "DELETE FROM operator_password WHERE operator_id = ?1 AND rowid "
		    "NOT IN (SELECT rowid FROM operator_password WHERE operator_id "
		    "= ?1 ORDER BY rowid DESC LIMIT ?2)",
		    k, 2, why, why_len);
	}
	return err;
}

tkm_err tkm_store_tx_operator_failed(tkm_store_tx *tx, int64_t id, uint32_t max_failed,
                                     uint64_t lock_until_ms, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id), V_INT(max_failed), V_INT(lock_until_ms)};

	return changed_one(
	    tx,
	    tkm_store_tx_exec(tx,
	                      "UPDATE operator SET failed = failed + 1, locked_until = "
	                      "CASE WHEN failed + 1 >= ?2 THEN ?3 ELSE locked_until "
	                      "END WHERE id = ?1",
	                      v, 3, why, why_len),
	    why, why_len);
}

tkm_err tkm_store_tx_operator_unlock(tkm_store_tx *tx, int64_t id, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id)};

	return changed_one(
	    tx,
	    tkm_store_tx_exec(tx, "UPDATE operator SET failed = 0, locked_until = 0 WHERE id = ?1",
	                      v, 1, why, why_len),
	    why, why_len);
}

tkm_err tkm_store_tx_operator_disable(tkm_store_tx *tx, int64_t id, bool disabled, char *why,
                                      size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id), V_INT(disabled ? 1 : 0)};

	return changed_one(tx,
	                   tkm_store_tx_exec(tx, "UPDATE operator SET disabled = ?2 WHERE id = ?1",
	                                     v, 2, why, why_len),
	                   why, why_len);
}

/* ---- Roles ---- */

typedef struct role_acc {
	tkm_store_role *roles;
	size_t cap, n;
} role_acc;

static tkm_err role_row(sqlite3_stmt *s, void *arg)
{
	role_acc *a = arg;
	tkm_store_role *r;

	if (a->n == a->cap) {
		return TKM_E_RESOURCE_EXHAUSTED;
	}
	r = &a->roles[a->n];
	if (!tkm_store_col_text(s, 0, r->role, sizeof(r->role), false)) {
		return TKM_E_IO;
	}
	if (sqlite3_column_type(s, 1) == SQLITE_NULL) {
		r->scope[0] = '\0';
	} else if (!tkm_store_col_text(s, 1, r->scope, sizeof(r->scope), false)) {
		return TKM_E_IO;
	}
	a->n++;
	return TKM_OK;
}

tkm_err tkm_store_roles_of(tkm_store *st, const char *principal, tkm_store_role *roles, size_t cap,
                           size_t *n, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(principal)};
	role_acc a = {roles, cap, 0};
	tkm_err err;

	err =
	    query(st, "SELECT role, scope FROM role_assignment WHERE principal = ?1 ORDER BY role",
	          v, 1, role_row, &a, why, why_len);
	*n = a.n;
	return err == TKM_E_NOT_FOUND ? TKM_OK : err;
}

tkm_err tkm_store_tx_role_set(tkm_store_tx *tx, const char *principal, const char *role,
                              const char *scope, char *why, size_t why_len)
{
	tkm_store_val v[] = {V_TEXT(principal), V_TEXT(role), {.type = TKM_STORE_NULL}};

	if (scope != NULL && scope[0] != '\0') {
		v[2].type = TKM_STORE_TEXT;
		v[2].p = scope;
		v[2].len = strlen(scope);
	}
	return tkm_store_tx_exec(tx,
	                         "INSERT INTO role_assignment (principal, role, scope) VALUES (?1, "
	                         "?2, ?3) ON CONFLICT (principal, role) DO UPDATE SET scope = "
	                         "excluded.scope",
	                         v, 3, why, why_len);
}

tkm_err tkm_store_tx_role_remove(tkm_store_tx *tx, const char *principal, const char *role,
                                 char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(principal), V_TEXT(role)};

	return changed_one(tx,
	                   tkm_store_tx_exec(tx,
	                                     "DELETE FROM role_assignment WHERE principal = ?1 AND "
	                                     "role = ?2",
	                                     v, 2, why, why_len),
	                   why, why_len);
}

/* ---- Sessions ---- */

static tkm_err session_row(sqlite3_stmt *s, void *arg)
{
	tkm_store_session *out = arg;

	out->operator_id = sqlite3_column_int64(s, 0);
	out->created_ms = col_u64(s, 1);
	out->expires_ms = col_u64(s, 2);
	return TKM_OK;
}

tkm_err tkm_store_session_get(tkm_store *st, const uint8_t hash[static TKM_STORE_TOKEN_HASH],
                              tkm_store_session *out, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_BLOB(hash, TKM_STORE_TOKEN_HASH)};

	return query(st, "SELECT operator_id, created, expires FROM session WHERE token_hash = ?1",
	             v, 1, session_row, out, why, why_len);
}

tkm_err tkm_store_tx_session_insert(tkm_store_tx *tx,
                                    const uint8_t hash[static TKM_STORE_TOKEN_HASH],
                                    const tkm_store_session *s, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_BLOB(hash, TKM_STORE_TOKEN_HASH), V_INT(s->operator_id),
	                           V_INT(s->created_ms), V_INT(s->expires_ms)};
	const tkm_store_val old[] = {V_INT(s->created_ms)};
	tkm_err err;

	/* Sessions past their lifetime go as new ones come. */
	err = tkm_store_tx_exec(tx, "DELETE FROM session WHERE expires < ?1", old, 1, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	return tkm_store_tx_exec(tx,
	                         "INSERT INTO session (token_hash, operator_id, created, expires) "
	                         "VALUES (?1, ?2, ?3, ?4)",
	                         v, 4, why, why_len);
}

tkm_err tkm_store_tx_session_delete(tkm_store_tx *tx,
                                    const uint8_t hash[static TKM_STORE_TOKEN_HASH], char *why,
                                    size_t why_len)
{
	const tkm_store_val v[] = {V_BLOB(hash, TKM_STORE_TOKEN_HASH)};

	return changed_one(
	    tx,
	    tkm_store_tx_exec(tx, "DELETE FROM session WHERE token_hash = ?1", v, 1, why, why_len),
	    why, why_len);
}

tkm_err tkm_store_tx_session_delete_all(tkm_store_tx *tx, int64_t operator_id, char *why,
                                        size_t why_len)
{
	const tkm_store_val v[] = {V_INT(operator_id)};

	return tkm_store_tx_exec(tx, "DELETE FROM session WHERE operator_id = ?1", v, 1, why,
	                         why_len);
}

/* ---- Devices ---- */

static tkm_err device_row(sqlite3_stmt *s, void *arg)
{
	tkm_store_device *d = arg;

	memset(d, 0, sizeof(*d));
	if (!tkm_store_col_text(s, 0, d->principal, sizeof(d->principal), false) ||
	    !tkm_store_col_text(s, 1, d->kind, sizeof(d->kind), false) ||
	    sqlite3_column_type(s, 2) != SQLITE_BLOB ||
	    sqlite3_column_bytes(s, 2) != (int)sizeof(d->public_key)) {
		return TKM_E_IO;
	}
	memcpy(d->public_key, sqlite3_column_blob(s, 2), sizeof(d->public_key));
	d->disabled = sqlite3_column_int(s, 3) != 0;
	return TKM_OK;
}

tkm_err tkm_store_device_get(tkm_store *st, const char *principal, tkm_store_device *out, char *why,
                             size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(principal)};

	return query(
	    st, "SELECT principal, kind, public_key, disabled FROM device WHERE principal = ?1", v,
	    1, device_row, out, why, why_len);
}

tkm_err tkm_store_tx_device_insert(tkm_store_tx *tx, const tkm_store_device *d, uint64_t now_ms,
                                   char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(d->principal), V_TEXT(d->kind),
	                           V_BLOB(d->public_key, sizeof(d->public_key)), V_INT(now_ms)};
	tkm_err err;

	err = tkm_store_tx_exec(tx,
	                        "INSERT INTO device (principal, kind, public_key, created) VALUES "
	                        "(?1, ?2, ?3, ?4)",
	                        v, 4, why, why_len);
	if (err == TKM_E_CONFLICT) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS, "device '%s' exists",
		                    d->principal);
	}
	return err;
}

tkm_err tkm_store_tx_device_disable(tkm_store_tx *tx, const char *principal, bool disabled,
                                    char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(principal), V_INT(disabled ? 1 : 0)};

	return changed_one(tx,
	                   tkm_store_tx_exec(tx,
	                                     "UPDATE device SET disabled = ?2 WHERE principal = ?1",
	                                     v, 2, why, why_len),
	                   why, why_len);
}

/* ---- Policy ---- */

typedef struct policy_out {
	uint64_t *version;
	char **text;
} policy_out;

static tkm_err policy_row(sqlite3_stmt *s, void *arg)
{
	policy_out *o = arg;
	const unsigned char *p = sqlite3_column_text(s, 1);
	size_t n = (size_t)sqlite3_column_bytes(s, 1);

	*o->version = col_u64(s, 0);
	if (p == NULL) {
		return TKM_E_IO;
	}
	*o->text = malloc(n + 1);
	if (*o->text == NULL) {
		return TKM_E_NOMEM;
	}
	memcpy(*o->text, p, n);
	(*o->text)[n] = '\0';
	return TKM_OK;
}

tkm_err tkm_store_policy_current(tkm_store *st, uint64_t *version, char **text, char *why,
                                 size_t why_len)
{
	policy_out o = {version, text};

	*version = 0;
	*text = NULL;
	return query(st, "SELECT version, text FROM policy ORDER BY version DESC LIMIT 1", NULL, 0,
	             policy_row, &o, why, why_len);
}

tkm_err tkm_store_tx_policy_put(tkm_store_tx *tx, uint64_t version, const char *text,
                                uint64_t now_ms, const char *applied_by, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_INT(version), V_TEXT(text), V_INT(now_ms), V_TEXT(applied_by)};
	tkm_err err;

	err =
	    tkm_store_tx_exec(tx,
	                      "INSERT INTO policy (version, text, applied, applied_by) SELECT ?1, "
	                      "?2, ?3, ?4 WHERE ?1 = 1 + (SELECT ifnull(max(version), 0) FROM "
	                      "policy)",
	                      v, 4, why, why_len);
	if (err == TKM_OK && sqlite3_changes(tx->db) == 0) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFLICT,
		                   "the policy changed meanwhile; look at it again");
	}
	return err;
}

/* ---- Approvals ---- */

#define APPROVAL_COLUMNS                                                                           \
	"id, method, params, target, initiator, created, expires, state, decided_by, decided, "    \
	"error_code"

typedef struct approval_cb {
	tkm_err (*fn)(void *arg, const tkm_store_approval *a);
	void *arg;
	size_t limit, n;
	bool more;
} approval_cb;

static tkm_err approval_row(sqlite3_stmt *s, void *arg)
{
	approval_cb *cb = arg;
	tkm_store_approval a;

	if (cb->limit != 0 && cb->n == cb->limit) {
		cb->more = true;
		return TKM_OK;
	}
	memset(&a, 0, sizeof(a));
	a.id = sqlite3_column_int64(s, 0);
	if (!tkm_store_col_text(s, 1, a.method, sizeof(a.method), false) ||
	    sqlite3_column_type(s, 2) != SQLITE_BLOB ||
	    !tkm_store_col_text(s, 3, a.target, sizeof(a.target), true) ||
	    !tkm_store_col_text(s, 4, a.initiator, sizeof(a.initiator), false) ||
	    !tkm_store_col_text(s, 7, a.state, sizeof(a.state), false) ||
	    !tkm_store_col_text(s, 8, a.decided_by, sizeof(a.decided_by), true) ||
	    !tkm_store_col_text(s, 10, a.error_code, sizeof(a.error_code), true)) {
		return TKM_E_IO;
	}
	a.params = sqlite3_column_blob(s, 2);
	a.params_len = (size_t)sqlite3_column_bytes(s, 2);
	a.created_ms = col_u64(s, 5);
	a.expires_ms = col_u64(s, 6);
	a.decided_ms = col_u64(s, 9);
	cb->n++;
	return cb->fn(cb->arg, &a);
}

tkm_err tkm_store_tx_approval_insert(tkm_store_tx *tx, const tkm_store_approval *a, int64_t *id,
                                     char *why, size_t why_len)
{
	tkm_store_val v[] = {V_TEXT(a->method),        V_BLOB(a->params, a->params_len),
	                     {.type = TKM_STORE_NULL}, V_TEXT(a->initiator),
	                     V_INT(a->created_ms),     V_INT(a->expires_ms)};
	tkm_err err;

	if (a->target[0] != '\0') {
		v[2].type = TKM_STORE_TEXT;
		v[2].p = a->target;
		v[2].len = strlen(a->target);
	}
	err = tkm_store_tx_exec(tx,
	                        "INSERT INTO approval (method, params, target, initiator, created, "
	                        "expires, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
	                        v, 6, why, why_len);
	if (err == TKM_OK) {
		*id = sqlite3_last_insert_rowid(tx->db);
	}
	return err;
}

tkm_err tkm_store_tx_approval_decide(tkm_store_tx *tx, int64_t id, const char *from, const char *to,
                                     const char *by, uint64_t now_ms, const char *error_code,
                                     char *why, size_t why_len)
{
	tkm_store_val v[] = {V_INT(id),  V_TEXT(from),  V_TEXT(to),
	                     V_TEXT(by), V_INT(now_ms), {.type = TKM_STORE_NULL}};
	tkm_err err;

	if (error_code != NULL) {
		v[5].type = TKM_STORE_TEXT;
		v[5].p = error_code;
		v[5].len = strlen(error_code);
	}
	err = tkm_store_tx_exec(tx,
	                        "UPDATE approval SET state = ?3, decided_by = ?4, decided = ?5, "
	                        "error_code = ?6 WHERE id = ?1 AND state = ?2",
	                        v, 6, why, why_len);
	if (err == TKM_OK && sqlite3_changes(tx->db) == 0) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFLICT, "request %lld is no longer %s",
		                   (long long)id, from);
	}
	return err;
}

tkm_err tkm_store_approval_get(tkm_store *st, int64_t id,
                               tkm_err (*fn)(void *arg, const tkm_store_approval *a), void *arg,
                               char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id)};
	approval_cb cb = {fn, arg, 0, 0, false};

	return query(st, "SELECT " APPROVAL_COLUMNS " FROM approval WHERE id = ?1", v, 1,
	             approval_row, &cb, why, why_len);
}

tkm_err tkm_store_approval_page(tkm_store *st, int64_t after, const char *state, size_t limit,
                                tkm_err (*fn)(void *arg, const tkm_store_approval *a), void *arg,
                                bool *more, char *why, size_t why_len)
{
	tkm_store_val v[] = {V_INT(after), {.type = TKM_STORE_NULL}, V_INT(limit + 1)};
	approval_cb cb = {fn, arg, limit, 0, false};
	tkm_err err;

	if (state != NULL) {
		v[1].type = TKM_STORE_TEXT;
		v[1].p = state;
		v[1].len = strlen(state);
	}
	err = query(st,
	            "SELECT " APPROVAL_COLUMNS " FROM approval WHERE id > ?1 AND (?2 IS NULL OR "
	            "state = ?2) ORDER BY id LIMIT ?3",
	            v, 3, approval_row, &cb, why, why_len);
	*more = cb.more;
	return err == TKM_E_NOT_FOUND ? TKM_OK : err;
}
