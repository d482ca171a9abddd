/*
 * tkm_methods_auth.c - auth.* (login, logout, whoami, change_password),
 * operator.* and role.*: people and their roles.
 *
 * Passwords arrive as params, are copied into locked memory, checked and
 * wiped; they never reach a log line, an audit record or a reply. The one
 * exception is a one-time password that tkmd makes for a new or reset
 * operator: it is returned once, in that call's reply, and stored only as
 * its Argon2id hash.
 */
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "tkm_auth.h"
#include "tkm_devsig.h"
#include "tkm_gate.h"
#include "tkm_methods.h"
#include "tkm_store_auth.h"
#include "tkm_why.h"

#define OTP_MAX 32

static tkm_auth *auth_of(tkm_rpc_ctx *ctx)
{
	return tkm_rpc_ctx_env(ctx)->auth;
}

/* A text param copied into buf (NUL-terminated, no NUL inside, 1..cap-1 bytes). */
static tkm_err text_param(const tkm_cbor_val *params, const char *key, char *buf, size_t cap,
                          char *why, size_t why_len)
{
	const char *s;
	size_t n;

	if (!tkm_cbor_get_text(tkm_cbor_map_get(params, key), &s, &n)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'%s' (text) is required",
		                    key);
	}
	if (n == 0 || n >= cap || memchr(s, '\0', n) != NULL) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "'%s' must be 1 to %zu bytes without NUL", key, cap - 1);
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return TKM_OK;
}

/* A username: 1-64 of [a-z0-9._-], starting with a letter. */
static tkm_err username_param(const tkm_cbor_val *params, const char *key,
                              char buf[static TKM_STORE_USERNAME_MAX + 1], char *why,
                              size_t why_len)
{
	tkm_err err = text_param(params, key, buf, TKM_STORE_USERNAME_MAX + 1, why, why_len);

	if (err != TKM_OK) {
		return err;
	}
	if (buf[0] < 'a' || buf[0] > 'z' ||
	    strspn(buf, "abcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(buf)) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "a username is 1 to %d of a-z 0-9 . _ -, starting with a letter",
		    TKM_STORE_USERNAME_MAX);
	}
	return TKM_OK;
}

/* A password param copied into locked memory (*pw, *len); free with secret_free. */
static tkm_err password_param(const tkm_cbor_val *params, const char *key, char **pw, size_t *len,
                              char *why, size_t why_len)
{
	const char *s;
	size_t n;

	*pw = NULL;
	*len = 0;
	if (!tkm_cbor_get_text(tkm_cbor_map_get(params, key), &s, &n)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'%s' (text) is required",
		                    key);
	}
	if (n > TKM_AUTH_PASSWORD_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'%s' is longer than %d bytes",
		                    key, TKM_AUTH_PASSWORD_MAX);
	}
	*pw = sodium_malloc(n + 1);
	if (*pw == NULL) {
		return TKM_E_NOMEM;
	}
	memcpy(*pw, s, n);
	(*pw)[n] = '\0';
	*len = n;
	return TKM_OK;
}

static void secret_free(char *pw, size_t len)
{
	if (pw != NULL) {
		sodium_memzero(pw, len + 1);
		sodium_free(pw);
	}
}

/* {"source": peer} plus an optional "reason", canonical ("reason" < "source"). */
static tkm_err source_details(tkm_rpc_ctx *ctx, const char *reason, tkm_cbor_w **out,
                              const uint8_t **p, size_t *n)
{
	tkm_err err = tkm_cbor_w_new(512, out);

	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(*out, reason != NULL ? 2 : 1);
	if (reason != NULL) {
		tkm_cbor_put_cstr(*out, "reason");
		tkm_cbor_put_cstr(*out, reason);
	}
	tkm_cbor_put_cstr(*out, "source");
	tkm_cbor_put_cstr(*out, tkm_rpc_ctx_peer(ctx));
	return tkm_cbor_w_finish(*out, p, n);
}

static void operator_principal(const char *username, char *buf, size_t cap)
{
	tkm_why_set(buf, cap, "operator:%s", username);
}

/* ---- auth.login ---- */

typedef struct login_change {
	int64_t operator_id;
	uint32_t max_failed;
	uint64_t lock_until_ms;
	const uint8_t *hash;
	tkm_store_session sess;
} login_change;

static tkm_err login_ok_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	login_change *c = arg;
	tkm_err err = tkm_store_tx_operator_unlock(tx, c->operator_id, why, why_len);

	if (err == TKM_OK) {
		err = tkm_store_tx_session_insert(tx, c->hash, &c->sess, why, why_len);
	}
	return err;
}

static tkm_err login_failed_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	login_change *c = arg;

	return tkm_store_tx_operator_failed(tx, c->operator_id, c->max_failed, c->lock_until_ms,
	                                    why, why_len);
}

static void put_roles(tkm_cbor_w *w, const tkm_store_role *roles, size_t n)
{
	tkm_cbor_put_array(w, n);
	for (size_t i = 0; i < n; i++) {
		tkm_cbor_put_map(w, roles[i].scope[0] != '\0' ? 2 : 1);
		tkm_cbor_put_cstr(w, "role");
		tkm_cbor_put_cstr(w, roles[i].role);
		if (roles[i].scope[0] != '\0') {
			tkm_cbor_put_cstr(w, "scope");
			tkm_cbor_put_cstr(w, roles[i].scope);
		}
	}
}

/*
 * auth.login {"username", "password"} -> {"token": bstr .size 32, "expires_ms",
 *   "idle_seconds", "must_change_password": bool, "roles": [...]}
 * Wrong user and wrong password get the same answer. Every failure is
 * audited with the source; failures count towards the lockout.
 */
static tkm_err auth_login(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                          char *why, size_t why_len)
{
	static const char *const keys[] = {"username", "password"};
	tkm_auth *a = auth_of(ctx);
	const tkm_auth_cfg *cfg = tkm_auth_config(a);
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	char user[TKM_STORE_USERNAME_MAX + 1], target[TKM_STORE_USERNAME_MAX + 16];
	tkm_store_role roles[TKM_RPC_ROLES_MAX];
	uint8_t *token = NULL, hash[TKM_STORE_TOKEN_HASH];
	char *pw = NULL;
	size_t pw_len = 0, nroles = 0;
	tkm_store_operator op;
	tkm_auth_login_result res;
	login_change c;
	tkm_cbor_w *d = NULL;
	const uint8_t *dp = NULL;
	size_t dn = 0;
	uint64_t now = tkm_rpc_now_ms();
	bool found = false;
	const char *reason;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK) {
		err = username_param(params, "username", user, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	operator_principal(user, target, sizeof(target));
	tkm_rpc_set_target(ctx, target);
	err = password_param(params, "password", &pw, &pw_len, why, why_len);
	if (err == TKM_OK) {
		err =
		    tkm_auth_login_check(a, user, pw, pw_len, now, &op, &found, &res, why, why_len);
	}
	secret_free(pw, pw_len);
	if (err != TKM_OK) {
		return err;
	}
	memset(&c, 0, sizeof(c));
	c.operator_id = op.id;
	if (res != TKM_AUTH_LOGIN_OK) {
		reason = res == TKM_AUTH_LOGIN_LOCKED     ? "locked"
		         : res == TKM_AUTH_LOGIN_DISABLED ? "disabled"
		         : found                          ? "wrong password"
		                                          : "unknown user";
		err = source_details(ctx, reason, &d, &dp, &dn);
		if (err == TKM_OK) {
			c.max_failed = cfg->max_failed;
			c.lock_until_ms = now + cfg->lockout_s * 1000u;
			/* Only a wrong password on an open account counts towards the lock. */
			err = tkm_rpc_commit_outcome(
			    ctx, found && res == TKM_AUTH_LOGIN_BAD ? login_failed_change : NULL,
			    &c, target, dp, dn, "denied", TKM_E_UNAUTHENTICATED, why, why_len);
		}
		tkm_cbor_w_free(d);
		if (err != TKM_OK) {
			return err;
		}
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    res == TKM_AUTH_LOGIN_LOCKED
		                        ? "the account is locked after too many failed logins; an "
		                          "admin can unlock it, or wait"
		                        : "wrong username or password, or the account is disabled");
	}
	token = sodium_malloc(TKM_AUTH_TOKEN_LEN);
	if (token == NULL) {
		return TKM_E_NOMEM;
	}
	tkm_auth_token_new(token, hash);
	c.hash = hash;
	c.sess.operator_id = op.id;
	c.sess.created_ms = now;
	c.sess.expires_ms = now + cfg->lifetime_s * 1000u;
	err =
	    tkm_store_roles_of(env->store, target, roles, TKM_RPC_ROLES_MAX, &nroles, why, why_len);
	if (err == TKM_OK) {
		err = source_details(ctx, NULL, &d, &dp, &dn);
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit(ctx, login_ok_change, &c, target, dp, dn, NULL, why, why_len);
	}
	tkm_cbor_w_free(d);
	if (err == TKM_OK) {
		tkm_auth_session_started(a, hash, now);
		tkm_cbor_put_map(result, 5);
		tkm_cbor_put_cstr(result, "roles");
		put_roles(result, roles, nroles);
		tkm_cbor_put_cstr(result, "token");
		tkm_cbor_put_bytes(result, token, TKM_AUTH_TOKEN_LEN);
		tkm_cbor_put_cstr(result, "expires_ms");
		tkm_cbor_put_uint(result, c.sess.expires_ms);
		tkm_cbor_put_cstr(result, "idle_seconds");
		tkm_cbor_put_uint(result, cfg->idle_s);
		tkm_cbor_put_cstr(result, "must_change_password");
		tkm_cbor_put_bool(result, tkm_auth_must_change(a, &op, now));
		err = tkm_cbor_w_error(result);
	}
	sodium_memzero(token, TKM_AUTH_TOKEN_LEN);
	sodium_free(token);
	return err;
}

/* ---- auth.logout, auth.whoami ---- */

static tkm_err logout_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	return tkm_store_tx_session_delete(tx, arg, why, why_len);
}

/* auth.logout {} -> {}: the session of this request ends. */
static tkm_err auth_logout(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                           char *why, size_t why_len)
{
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	tkm_err err = tkm_rpc_params_check(params, NULL, 0, why, why_len);

	if (err == TKM_OK && !who->has_session) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "only an operator session can log out");
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit(ctx, logout_change, who->session_hash, who->principal, NULL, 0,
		                     NULL, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_auth_session_ended(auth_of(ctx), who->session_hash);
	tkm_cbor_put_map(result, 0);
	return tkm_cbor_w_error(result);
}

/* auth.whoami {} -> {"principal", "kind", "roles": [...], "must_change_password"} */
static tkm_err auth_whoami(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                           char *why, size_t why_len)
{
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	tkm_err err = tkm_rpc_params_check(params, NULL, 0, why, why_len);

	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 4);
	tkm_cbor_put_cstr(result, "kind");
	tkm_cbor_put_cstr(result, who->is_operator ? "operator" : "device");
	tkm_cbor_put_cstr(result, "roles");
	tkm_cbor_put_array(result, who->nroles);
	for (size_t i = 0; i < who->nroles; i++) {
		tkm_cbor_put_map(result, who->roles[i].scope[0] != '\0' ? 2 : 1);
		tkm_cbor_put_cstr(result, "role");
		tkm_cbor_put_cstr(result, who->roles[i].role);
		if (who->roles[i].scope[0] != '\0') {
			tkm_cbor_put_cstr(result, "scope");
			tkm_cbor_put_cstr(result, who->roles[i].scope);
		}
	}
	tkm_cbor_put_cstr(result, "principal");
	tkm_cbor_put_cstr(result, who->principal);
	tkm_cbor_put_cstr(result, "must_change_password");
	tkm_cbor_put_bool(result, who->must_change);
	return tkm_cbor_w_error(result);
}

/* ---- Passwords ---- */

typedef struct pw_change {
	int64_t operator_id;
	const char *hash;
	uint64_t now_ms;
	bool must_change;
	size_t keep;
	bool end_sessions;
	bool unlock;
} pw_change;

static tkm_err password_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	pw_change *c = arg;
	tkm_err err = tkm_store_tx_operator_password(tx, c->operator_id, c->hash, c->now_ms,
	                                             c->must_change, c->keep, why, why_len);

	if (err == TKM_OK && c->end_sessions) {
		err = tkm_store_tx_session_delete_all(tx, c->operator_id, why, why_len);
	}
	return err;
}

/*
 * auth.change_password {"old_password", "new_password"} -> {}
 * The operator's own password; the rules and the last passwords apply.
 */
static tkm_err auth_change_password(tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                                    tkm_cbor_w *result, char *why, size_t why_len)
{
	static const char *const keys[] = {"old_password", "new_password"};
	tkm_rpc_who *who = tkm_rpc_ctx_who(ctx);
	tkm_auth *a = auth_of(ctx);
	const tkm_auth_cfg *cfg = tkm_auth_config(a);
	char *old = NULL, *new_pw = NULL, hash[TKM_STORE_PWHASH_MAX];
	size_t old_len = 0, new_len = 0;
	tkm_store_operator op;
	tkm_auth_login_result res = TKM_AUTH_LOGIN_BAD;
	bool found = false;
	pw_change c;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK && !who->is_operator) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "devices have no password: they sign with their key");
	}
	if (err == TKM_OK) {
		err = tkm_store_operator_get_id(tkm_rpc_ctx_env(ctx)->store, who->operator_id, &op,
		                                why, why_len);
	}
	if (err == TKM_OK) {
		err = password_param(params, "old_password", &old, &old_len, why, why_len);
	}
	if (err == TKM_OK) {
		err = password_param(params, "new_password", &new_pw, &new_len, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_auth_login_check(a, op.username, old, old_len, tkm_rpc_now_ms(), &op,
		                           &found, &res, why, why_len);
	}
	if (err == TKM_OK && res != TKM_AUTH_LOGIN_OK) {
		err = tkm_why_fail(why, why_len, TKM_E_PERMISSION_DENIED,
		                   "the old password is wrong");
	}
	if (err == TKM_OK) {
		err = tkm_auth_password_rules(a, op.username, new_pw, new_len, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_auth_password_reused(a, op.id, new_pw, new_len, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_auth_password_hash(a, new_pw, new_len, hash);
	}
	secret_free(old, old_len);
	secret_free(new_pw, new_len);
	if (err != TKM_OK) {
		return err;
	}
	memset(&c, 0, sizeof(c));
	c.operator_id = op.id;
	c.hash = hash;
	c.now_ms = tkm_rpc_now_ms();
	c.keep = cfg->history;
	err = tkm_rpc_commit(ctx, password_change, &c, who->principal, NULL, 0, NULL, why, why_len);
	sodium_memzero(hash, sizeof(hash));
	if (err != TKM_OK) {
		return err;
	}
	who->must_change = false;
	tkm_cbor_put_map(result, 0);
	return tkm_cbor_w_error(result);
}

/* ---- operator.* ---- */

typedef struct op_create {
	tkm_store_operator op;
	const char *principal;
	const char *const *roles;
	size_t nroles;
	int64_t id;
} op_create;

static tkm_err operator_create_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	op_create *c = arg;
	tkm_err err = tkm_store_tx_operator_insert(tx, &c->op, &c->id, why, why_len);

	for (size_t i = 0; i < c->nroles && err == TKM_OK; i++) {
		err = tkm_store_tx_role_set(tx, c->principal, c->roles[i], NULL, why, why_len);
	}
	return err;
}

typedef char role_name[TKM_STORE_ROLE_MAX + 1];

/* The "roles" param: 1..8 role names the policy knows, allowed together. */
static tkm_err roles_param(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, role_name *buf,
                           const char **roles, size_t *n, char *why, size_t why_len)
{
	const tkm_cbor_val *arr = tkm_cbor_map_get(params, "roles"), *v;
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);

	*n = 0;
	if (arr == NULL || !tkm_cbor_is(arr, TKM_CBOR_ARRAY) || tkm_cbor_count(arr) == 0 ||
	    tkm_cbor_count(arr) > TKM_RPC_ROLES_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "'roles' must be an array of 1 to %d role names",
		                    TKM_RPC_ROLES_MAX);
	}
	for (v = tkm_cbor_first(arr); v != NULL; v = tkm_cbor_next(v)) {
		const char *s;
		size_t len;

		if (!tkm_cbor_get_text(v, &s, &len) || len == 0 || len > TKM_STORE_ROLE_MAX ||
		    memchr(s, '\0', len) != NULL) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "'roles' holds role names (text)");
		}
		memcpy(buf[*n], s, len);
		buf[*n][len] = '\0';
		roles[*n] = buf[*n];
		(*n)++;
	}
	return tkm_gate_roles_ok(env->gate_ctx, roles, *n, why, why_len);
}

/*
 * operator.create {"username", "roles": [tstr]} -> {"username", "one_time_password"}
 * The password is shown once, here; the operator must change it at first login.
 */
static tkm_err operator_create(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                               char *why, size_t why_len)
{
	static const char *const keys[] = {"username", "roles"};
	tkm_auth *a = auth_of(ctx);
	char principal[TKM_STORE_USERNAME_MAX + 16];
	const char *roles[TKM_RPC_ROLES_MAX];
	role_name role_buf[TKM_RPC_ROLES_MAX];
	char *otp = NULL;
	op_create c;
	tkm_err err;

	memset(&c, 0, sizeof(c));
	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK) {
		err = username_param(params, "username", c.op.username, why, why_len);
	}
	if (err == TKM_OK) {
		operator_principal(c.op.username, principal, sizeof(principal));
		tkm_rpc_set_target(ctx, principal);
		err = roles_param(ctx, params, role_buf, roles, &c.nroles, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	otp = sodium_malloc(OTP_MAX);
	if (otp == NULL) {
		return TKM_E_NOMEM;
	}
	err = tkm_auth_password_generate(otp, OTP_MAX);
	if (err == TKM_OK) {
		err = tkm_auth_password_hash(a, otp, strlen(otp), c.op.pw_hash);
	}
	if (err == TKM_OK) {
		c.op.pw_changed_ms = tkm_rpc_now_ms();
		c.op.created_ms = c.op.pw_changed_ms;
		c.op.must_change = true;
		c.principal = principal;
		c.roles = roles;
		err = tkm_rpc_commit(ctx, operator_create_change, &c, principal, NULL, 0, NULL, why,
		                     why_len);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 2);
		tkm_cbor_put_cstr(result, "username");
		tkm_cbor_put_cstr(result, c.op.username);
		tkm_cbor_put_cstr(result, "one_time_password");
		tkm_cbor_put_cstr(result, otp);
		err = tkm_cbor_w_error(result);
	}
	sodium_memzero(otp, OTP_MAX);
	sodium_free(otp);
	return err;
}

/* Look up the "username" param's operator; sets the target. */
static tkm_err target_operator(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_store_operator *op,
                               char *principal, size_t cap, char *why, size_t why_len)
{
	char user[TKM_STORE_USERNAME_MAX + 1];
	tkm_err err = username_param(params, "username", user, why, why_len);

	if (err != TKM_OK) {
		return err;
	}
	operator_principal(user, principal, cap);
	tkm_rpc_set_target(ctx, principal);
	err = tkm_store_operator_get(tkm_rpc_ctx_env(ctx)->store, user, op, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no operator '%s'", user);
	}
	return err;
}

/*
 * operator.reset_password {"username"} -> {"username", "one_time_password"}
 * Ends the operator's sessions, unlocks the account, forces a change.
 */
static tkm_err operator_reset_password(tkm_rpc_ctx *ctx, const tkm_cbor_val *params,
                                       tkm_cbor_w *result, char *why, size_t why_len)
{
	static const char *const keys[] = {"username"};
	tkm_auth *a = auth_of(ctx);
	char principal[TKM_STORE_USERNAME_MAX + 16], hash[TKM_STORE_PWHASH_MAX];
	tkm_store_operator op;
	char *otp = NULL;
	pw_change c;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err == TKM_OK) {
		err = target_operator(ctx, params, &op, principal, sizeof(principal), why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	otp = sodium_malloc(OTP_MAX);
	if (otp == NULL) {
		return TKM_E_NOMEM;
	}
	err = tkm_auth_password_generate(otp, OTP_MAX);
	if (err == TKM_OK) {
		err = tkm_auth_password_hash(a, otp, strlen(otp), hash);
	}
	if (err == TKM_OK) {
		memset(&c, 0, sizeof(c));
		c.operator_id = op.id;
		c.hash = hash;
		c.now_ms = tkm_rpc_now_ms();
		c.must_change = true;
		c.keep = tkm_auth_config(a)->history;
		c.end_sessions = true;
		err = tkm_rpc_commit(ctx, password_change, &c, principal, NULL, 0, NULL, why,
		                     why_len);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 2);
		tkm_cbor_put_cstr(result, "username");
		tkm_cbor_put_cstr(result, op.username);
		tkm_cbor_put_cstr(result, "one_time_password");
		tkm_cbor_put_cstr(result, otp);
		err = tkm_cbor_w_error(result);
	}
	sodium_memzero(otp, OTP_MAX);
	sodium_free(otp);
	return err;
}

static tkm_err unlock_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	return tkm_store_tx_operator_unlock(tx, *(const int64_t *)arg, why, why_len);
}

/* operator.unlock {"username"} -> {} */
static tkm_err operator_unlock(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                               char *why, size_t why_len)
{
	static const char *const keys[] = {"username"};
	char principal[TKM_STORE_USERNAME_MAX + 16];
	tkm_store_operator op;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err == TKM_OK) {
		err = target_operator(ctx, params, &op, principal, sizeof(principal), why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit(ctx, unlock_change, &op.id, principal, NULL, 0, NULL, why,
		                     why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 0);
	return tkm_cbor_w_error(result);
}

typedef struct disable_change_arg {
	int64_t id;
	bool disabled;
} disable_change_arg;

static tkm_err disable_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const disable_change_arg *d = arg;
	tkm_err err = tkm_store_tx_operator_disable(tx, d->id, d->disabled, why, why_len);

	if (err == TKM_OK && d->disabled) {
		err = tkm_store_tx_session_delete_all(tx, d->id, why, why_len);
	}
	return err;
}

/* operator.disable {"username", "disabled": bool} -> {} */
static tkm_err operator_disable(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                                char *why, size_t why_len)
{
	static const char *const keys[] = {"username", "disabled"};
	char principal[TKM_STORE_USERNAME_MAX + 16];
	tkm_store_operator op;
	disable_change_arg d;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK) {
		err = target_operator(ctx, params, &op, principal, sizeof(principal), why, why_len);
	}
	if (err == TKM_OK &&
	    !tkm_cbor_get_bool(tkm_cbor_map_get(params, "disabled"), &d.disabled)) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'disabled' (bool) is required");
	}
	if (err == TKM_OK) {
		d.id = op.id;
		err =
		    tkm_rpc_commit(ctx, disable_change, &d, principal, NULL, 0, NULL, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 0);
	return tkm_cbor_w_error(result);
}

static void put_operator(tkm_rpc_ctx *ctx, tkm_cbor_w *w, const tkm_store_operator *op,
                         const tkm_store_role *roles, size_t nroles)
{
	uint64_t now = tkm_rpc_now_ms();

	tkm_cbor_put_map(w, 7);
	tkm_cbor_put_cstr(w, "roles");
	put_roles(w, roles, nroles);
	tkm_cbor_put_cstr(w, "locked");
	tkm_cbor_put_bool(w, op->locked_until_ms > now);
	tkm_cbor_put_cstr(w, "disabled");
	tkm_cbor_put_bool(w, op->disabled);
	tkm_cbor_put_cstr(w, "username");
	tkm_cbor_put_cstr(w, op->username);
	tkm_cbor_put_cstr(w, "created_ms");
	tkm_cbor_put_uint(w, op->created_ms);
	tkm_cbor_put_cstr(w, "failed_logins");
	tkm_cbor_put_uint(w, op->failed);
	tkm_cbor_put_cstr(w, "password_changed_ms");
	tkm_cbor_put_uint(w, op->pw_changed_ms);
	(void)ctx;
}

/* operator.show {"username"} -> operator */
static tkm_err operator_show(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                             char *why, size_t why_len)
{
	static const char *const keys[] = {"username"};
	char principal[TKM_STORE_USERNAME_MAX + 16];
	tkm_store_role roles[TKM_RPC_ROLES_MAX];
	tkm_store_operator op;
	size_t n = 0;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err == TKM_OK) {
		err = target_operator(ctx, params, &op, principal, sizeof(principal), why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_roles_of(tkm_rpc_ctx_env(ctx)->store, principal, roles,
		                         TKM_RPC_ROLES_MAX, &n, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	put_operator(ctx, result, &op, roles, n);
	return tkm_cbor_w_error(result);
}

typedef struct list_acc {
	tkm_rpc_ctx *ctx;
	tkm_cbor_w *w;
	size_t n;
	char last[TKM_STORE_USERNAME_MAX + 1];
} list_acc;

static tkm_err list_one(void *arg, const tkm_store_operator *op)
{
	list_acc *l = arg;
	char principal[TKM_STORE_USERNAME_MAX + 16];
	tkm_store_role roles[TKM_RPC_ROLES_MAX];
	size_t n = 0;
	char why[64];
	tkm_err err;

	operator_principal(op->username, principal, sizeof(principal));
	err = tkm_store_roles_of(tkm_rpc_ctx_env(l->ctx)->store, principal, roles,
	                         TKM_RPC_ROLES_MAX, &n, why, sizeof(why));
	if (err != TKM_OK) {
		return err;
	}
	put_operator(l->ctx, l->w, op, roles, n);
	memcpy(l->last, op->username, sizeof(l->last));
	l->n++;
	return TKM_OK;
}

/* operator.list {? "after": username, ? "limit": 1..500} -> {"operators": [...], "next"} */
static tkm_err operator_list(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                             char *why, size_t why_len)
{
	static const char *const keys[] = {"after", "limit"};
	char after[TKM_STORE_USERNAME_MAX + 1] = "";
	uint64_t limit = 100;
	list_acc l = {ctx, NULL, 0, ""};
	const uint8_t *p;
	size_t len;
	bool more = false;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK && tkm_cbor_map_get(params, "after") != NULL) {
		err = text_param(params, "after", after, sizeof(after), why, why_len);
	}
	if (err == TKM_OK && tkm_cbor_map_get(params, "limit") != NULL &&
	    (!tkm_cbor_get_uint(tkm_cbor_map_get(params, "limit"), &limit) || limit == 0 ||
	     limit > 500)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "'limit' must be 1 to 500");
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_new(tkm_rpc_ctx_env(ctx)->max_message_size, &l.w);
	}
	if (err == TKM_OK) {
		err = tkm_store_operator_page(tkm_rpc_ctx_env(ctx)->store, after, (size_t)limit,
		                              list_one, &l, &more, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_finish(l.w, &p, &len);
	}
	if (err == TKM_OK) {
		tkm_cbor_put_map(result, 2);
		tkm_cbor_put_cstr(result, "next");
		if (more) {
			tkm_cbor_put_cstr(result, l.last);
		} else {
			tkm_cbor_put_null(result);
		}
		tkm_cbor_put_cstr(result, "operators");
		tkm_cbor_put_array(result, l.n);
		tkm_cbor_put_raw(result, p, len);
		err = tkm_cbor_w_error(result);
	}
	tkm_cbor_w_free(l.w);
	return err;
}

/* ---- role.* ---- */

typedef struct role_change_arg {
	const char *principal;
	const char *role;
	const char *scope;
} role_change_arg;

static tkm_err role_assign_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const role_change_arg *r = arg;

	return tkm_store_tx_role_set(tx, r->principal, r->role, r->scope, why, why_len);
}

static tkm_err role_revoke_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const role_change_arg *r = arg;

	return tkm_store_tx_role_remove(tx, r->principal, r->role, why, why_len);
}

/* "operator:NAME" of an existing operator or "device:NAME" of a registered device. */
static tkm_err principal_param(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, char *buf, size_t cap,
                               char *why, size_t why_len)
{
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	tkm_store_operator op;
	tkm_store_device dev;
	tkm_err err = text_param(params, "principal", buf, cap, why, why_len);

	if (err != TKM_OK) {
		return err;
	}
	tkm_rpc_set_target(ctx, buf);
	if (strncmp(buf, "operator:", 9) == 0) {
		err = tkm_store_operator_get(env->store, buf + 9, &op, why, why_len);
	} else if (strncmp(buf, "device:", 7) == 0) {
		err = tkm_store_device_get(env->store, buf + 7, &dev, why, why_len);
	} else {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "'principal' is operator:NAME or device:NAME");
	}
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no principal '%s'", buf);
	}
	return err;
}

/*
 * role.assign {"principal", "role", ? "scope": tstr} -> {}
 * scope: the comma-separated values a "$assigned" scope of the role means.
 */
static tkm_err role_assign(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                           char *why, size_t why_len)
{
	static const char *const keys[] = {"principal", "role", "scope"};
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	char principal[TKM_STORE_PRINCIPAL_MAX + 16], role[TKM_STORE_ROLE_MAX + 1];
	char scope[TKM_STORE_SCOPE_MAX + 1] = "";
	tkm_store_role held[TKM_RPC_ROLES_MAX];
	const char *names[TKM_RPC_ROLES_MAX + 1];
	role_change_arg r;
	size_t n = 0, k = 0;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 3, why, why_len);
	if (err == TKM_OK) {
		err = principal_param(ctx, params, principal, sizeof(principal), why, why_len);
	}
	if (err == TKM_OK) {
		err = text_param(params, "role", role, sizeof(role), why, why_len);
	}
	if (err == TKM_OK && tkm_cbor_map_get(params, "scope") != NULL) {
		err = text_param(params, "scope", scope, sizeof(scope), why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_roles_of(env->store, principal, held, TKM_RPC_ROLES_MAX, &n, why,
		                         why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	/* The roles the principal would hold: separation of duties holds on the whole set. */
	for (size_t i = 0; i < n; i++) {
		if (strcmp(held[i].role, role) != 0) {
			names[k++] = held[i].role;
		}
	}
	err = tkm_gate_assign_ok(env->gate_ctx, principal, role, scope[0] != '\0' ? scope : NULL,
	                         names, k, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	r.principal = principal;
	r.role = role;
	r.scope = scope;
	err = tkm_rpc_commit(ctx, role_assign_change, &r, principal, NULL, 0, NULL, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 0);
	return tkm_cbor_w_error(result);
}

/* role.revoke {"principal", "role"} -> {} */
static tkm_err role_revoke(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                           char *why, size_t why_len)
{
	static const char *const keys[] = {"principal", "role"};
	char principal[TKM_STORE_PRINCIPAL_MAX + 16], role[TKM_STORE_ROLE_MAX + 1];
	role_change_arg r;
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK) {
		err = principal_param(ctx, params, principal, sizeof(principal), why, why_len);
	}
	if (err == TKM_OK) {
		err = text_param(params, "role", role, sizeof(role), why, why_len);
	}
	if (err == TKM_OK) {
		r.principal = principal;
		r.role = role;
		r.scope = NULL;
		err = tkm_rpc_commit(ctx, role_revoke_change, &r, principal, NULL, 0, NULL, why,
		                     why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "%s does not hold role '%s'",
		                   principal, role);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 0);
	return tkm_cbor_w_error(result);
}

/* ---- device.* ---- */

typedef struct device_arg {
	tkm_store_device d;
	uint64_t now_ms;
} device_arg;

static tkm_err device_register_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const device_arg *a = arg;

	return tkm_store_tx_device_insert(tx, &a->d, a->now_ms, why, why_len);
}

/*
 * device.register {"name", "kind": "station" / "terminal", "public_key": bstr .size 32} -> {}
 * A device principal that signs its requests with this Ed25519 key
 * (docs/protocol.md); its roles come with role.assign "device:NAME".
 */
static tkm_err device_register(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                               char *why, size_t why_len)
{
	static const char *const keys[] = {"name", "kind", "public_key"};
	char principal[TKM_STORE_PRINCIPAL_MAX + 16];
	const uint8_t *pk = NULL;
	const char *s;
	size_t n = 0;
	device_arg a;
	tkm_err err;

	memset(&a, 0, sizeof(a));
	err = tkm_rpc_params_check(params, keys, 3, why, why_len);
	if (err == TKM_OK) {
		err =
		    text_param(params, "name", a.d.principal, sizeof(a.d.principal), why, why_len);
	}
	if (err == TKM_OK && !tkm_devsig_principal_valid(a.d.principal, strlen(a.d.principal))) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "a device name is 1 to 128 bytes of UTF-8 without control "
		                   "characters");
	}
	if (err == TKM_OK) {
		tkm_why_set(principal, sizeof(principal), "device:%s", a.d.principal);
		tkm_rpc_set_target(ctx, principal);
		if (!tkm_cbor_get_text(tkm_cbor_map_get(params, "kind"), &s, &n) ||
		    !((n == 7 &&
		       memcmp(s, "station", 7) == 0) || /* lint: memcmp ok (public data) */
		      (n == 8 &&
		       memcmp(s, "terminal", 8) == 0))) { /* lint: memcmp ok (public data) */
			err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                   "'kind' is \"station\" or \"terminal\"");
		} else {
			memcpy(a.d.kind, s, n);
			a.d.kind[n] = '\0';
		}
	}
	if (err == TKM_OK &&
	    (!tkm_cbor_get_bytes(tkm_cbor_map_get(params, "public_key"), &pk, &n) ||
	     n != sizeof(a.d.public_key))) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "'public_key' is the device's 32-byte Ed25519 public key");
	}
	if (err != TKM_OK) {
		return err;
	}
	memcpy(a.d.public_key, pk, sizeof(a.d.public_key));
	a.now_ms = tkm_rpc_now_ms();
	err =
	    tkm_rpc_commit(ctx, device_register_change, &a, principal, NULL, 0, NULL, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 0);
	return tkm_cbor_w_error(result);
}

typedef struct device_disable_arg {
	const char *name;
	bool disabled;
} device_disable_arg;

static tkm_err device_disable_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const device_disable_arg *a = arg;

	return tkm_store_tx_device_disable(tx, a->name, a->disabled, why, why_len);
}

/* device.disable {"name", "disabled": bool} -> {}: a disabled device's signatures are refused. */
static tkm_err device_disable(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                              char *why, size_t why_len)
{
	static const char *const keys[] = {"name", "disabled"};
	char name[TKM_STORE_PRINCIPAL_MAX + 1], principal[TKM_STORE_PRINCIPAL_MAX + 16];
	device_disable_arg a = {name, false};
	tkm_err err;

	err = tkm_rpc_params_check(params, keys, 2, why, why_len);
	if (err == TKM_OK) {
		err = text_param(params, "name", name, sizeof(name), why, why_len);
	}
	if (err == TKM_OK) {
		tkm_why_set(principal, sizeof(principal), "device:%s", name);
		tkm_rpc_set_target(ctx, principal);
		if (!tkm_cbor_get_bool(tkm_cbor_map_get(params, "disabled"), &a.disabled)) {
			err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                   "'disabled' (bool) is required");
		}
	}
	if (err == TKM_OK) {
		err = tkm_rpc_commit(ctx, device_disable_change, &a, principal, NULL, 0, NULL, why,
		                     why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no device '%s'", name);
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 0);
	return tkm_cbor_w_error(result);
}

static const tkm_rpc_method auth_methods[] = {
    {"auth.login", auth_login, "auth.login", 0, NULL},
    {"auth.logout", auth_logout, "auth.logout", 0, NULL},
    {"auth.whoami", auth_whoami, "auth.whoami", TKM_RPC_F_READONLY, NULL},
    {"auth.change_password", auth_change_password, "auth.change_password", 0, NULL},
    {"operator.create", operator_create, "operator.create", 0, NULL},
    {"operator.reset_password", operator_reset_password, "operator.reset_password", 0, NULL},
    {"operator.unlock", operator_unlock, "operator.unlock", 0, NULL},
    {"operator.disable", operator_disable, "operator.disable", 0, NULL},
    {"operator.show", operator_show, "operator.show", TKM_RPC_F_READONLY, NULL},
    {"operator.list", operator_list, "operator.list", TKM_RPC_F_READONLY, NULL},
    {"role.assign", role_assign, "role.assign", 0, NULL},
    {"role.revoke", role_revoke, "role.revoke", 0, NULL},
    {"device.register", device_register, "device.register", 0, NULL},
    {"device.disable", device_disable, "device.disable", 0, NULL},
};

const tkm_rpc_table tkm_methods_auth = {auth_methods,
                                        sizeof(auth_methods) / sizeof(auth_methods[0])};
