/*
 * service_auth_test.c - identities, authentication, role permissions and
 * dual control (issue 5), end to end: libtkm calls against a real tkmd-test,
 * SoftHSM2 token and SQLite file, as a user would make them.
 *
 * Covers: the permission matrix of policy/default.policy (every role, as an
 * operator or a device holding only that role, times every method tkmd
 * serves, decided by tkm_policy_check and asserted through tkmd; printed);
 * lockout after 5 wrong passwords, its end after the period and an admin's
 * unlock, each failure audited with its source; session tokens refused after
 * logout, when forged, after an admin reset, idle too long and past their
 * lifetime; device signatures refused when replayed, stale, from the future,
 * made with the wrong key, over a changed body, or from an unknown or disabled
 * device; dual control (no self-approval, a second operator's approval runs
 * the request, an approver role is needed, a rejected request never runs, an
 * expired one cannot be approved); password rules (length, username, common
 * list, the last 4, a forced change at first login and after a reset);
 * separation of duties (admin and auditor never together); and that no
 * password or token used here shows up in tkmd's log (at debug level), in
 * any audit record, in an approval listing or in the database file.
 *
 * It reads only what a user can: replies, tkmd's log file, the audit key file
 * and the database through the offline verifier (plus a byte search of the
 * database file for the secrets). Two environments: A (debug log, lockout
 * 2 s) for most of it, B (idle 2 s, lifetime 4 s, approval TTL 1 s) for the
 * clocks.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "tkm_audit.h"
#include "tkm_cbor.h"
#include "tkm_devsig.h"
#include "tkm_policy.h"
#include "tkm_test.h"
#include "tkm_testenv.h"
#include "tkm_wire.h"

#ifndef TKM_DEFAULT_POLICY
#error "TKM_DEFAULT_POLICY (path of policy/default.policy) must be defined by the build"
#endif

#define WINDOW_S 30 /* signature_window_seconds in env A */

static tkm_testenv *env;
static tkm_policy *pol;
static char source[40]; /* how tkmd names this process as a peer: "ipc:pid=N" */

/* snprintf that must fit: a test bug otherwise. */
static void fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "test bug: text too long for its buffer\n");
		abort();
	}
}

/* Sleep until ms milliseconds after t0_us (tkm_testenv_now_us); at once when past. */
static void sleep_until(uint64_t t0_us, unsigned ms)
{
	uint64_t now = tkm_testenv_now_us(), at = t0_us + (uint64_t)ms * 1000u;

	if (now < at) {
		tkm_testenv_sleep_ms((unsigned)((at - now + 999u) / 1000u));
	}
}

/* ---- Secrets used by the test, searched for at the end ---- */

#define SECRETS_MAX 160

static char pw_secret[SECRETS_MAX][80];
static size_t npw;
static uint8_t tok_secret[SECRETS_MAX][TKM_SESSION_TOKEN_LEN];
static size_t ntok;

static void keep_password(const char *pw)
{
	size_t n = strlen(pw);

	for (size_t i = 0; i < npw; i++) {
		if (strcmp(pw_secret[i], pw) == 0) {
			return;
		}
	}
	if (npw < SECRETS_MAX && n < sizeof(pw_secret[0])) {
		memcpy(pw_secret[npw++], pw, n + 1);
	}
}

static void keep_token(const uint8_t tok[static TKM_SESSION_TOKEN_LEN])
{
	for (size_t i = 0; i < ntok; i++) {
		if (sodium_memcmp(tok_secret[i], tok, TKM_SESSION_TOKEN_LEN) == 0) {
			return;
		}
	}
	if (ntok < SECRETS_MAX) {
		memcpy(tok_secret[ntok++], tok, TKM_SESSION_TOKEN_LEN);
	}
}

/* ---- Calls ---- */

static tkm_cbor_w *w_new(void)
{
	tkm_cbor_w *w = NULL;

	if (tkm_cbor_w_new(8192, &w) != TKM_OK) {
		abort();
	}
	return w;
}

/* A params map of n text pairs: key, value, key, value... */
static tkm_cbor_w *p_text(size_t n, ...)
{
	tkm_cbor_w *w = w_new();
	va_list ap;

	va_start(ap, n);
	tkm_cbor_put_map(w, n);
	for (size_t i = 0; i < 2 * n; i++) {
		tkm_cbor_put_cstr(w, va_arg(ap, const char *));
	}
	va_end(ap);
	return w;
}

/* {"id": id}, for approval.approve and approval.reject. */
static tkm_cbor_w *p_id(uint64_t id)
{
	tkm_cbor_w *w = w_new();

	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	return w;
}

/*
 * Call method on c with params (consumed; NULL: {}). Returns the call's code;
 * on TKM_OK *doc (when doc is not NULL) holds the decoded result.
 */
static tkm_err call(tkm_client *c, const char *method, tkm_cbor_w *params, tkm_cbor_doc **doc,
                    tkm_status *st)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	const uint8_t *p = NULL;
	uint8_t *res = NULL;
	size_t n = 0, rlen = 0;
	tkm_cbor_doc *d = NULL;
	tkm_err err;

	memset(st, 0, sizeof(*st));
	if (doc != NULL) {
		*doc = NULL;
	}
	if (params != NULL && tkm_cbor_w_finish(params, &p, &n) != TKM_OK) {
		tkm_cbor_w_free(params);
		return TKM_E_INTERNAL;
	}
	err = tkm_call_raw(c, method, p, n, 30000, st, &res, &rlen);
	tkm_cbor_w_free(params);
	if (err == TKM_OK) {
		err = tkm_cbor_decode(res, rlen, &lim, &d, NULL, 0);
		tkm_free(res, rlen);
	}
	if (doc != NULL) {
		*doc = d;
	} else {
		tkm_cbor_doc_free(d);
	}
	return err;
}

static const tkm_cbor_val *res_get(const tkm_cbor_doc *doc, const char *key)
{
	return doc != NULL ? tkm_cbor_map_get(tkm_cbor_root(doc), key) : NULL;
}

/* A text value copied into buf; "" when absent. */
static const char *text_of(const tkm_cbor_val *v, char *buf, size_t cap)
{
	const char *s;
	size_t n;

	buf[0] = '\0';
	if (v != NULL && tkm_cbor_get_text(v, &s, &n) && n < cap) {
		memcpy(buf, s, n);
		buf[n] = '\0';
	}
	return buf;
}

static bool has_words(const char *msg, const char *a, const char *b)
{
	bool ok = strstr(msg, a) != NULL && (b == NULL || strstr(msg, b) != NULL);

	if (!ok) {
		fprintf(stderr, "  message \"%s\" lacks \"%s\"%s%s\n", msg, a, b ? " / " : "",
		        b ? b : "");
	}
	return ok;
}

/* Expect code from a call; print what came back when it differs. */
static bool expect(const char *what, tkm_err got, const tkm_status *st, tkm_err want)
{
	if (got != want) {
		fprintf(stderr, "  %s: want %s, got %s (%s)\n", what,
		        want == TKM_OK ? "ok" : tkm_err_wire_name(want),
		        got == TKM_OK ? "ok" : tkm_strerror(got), st->message);
	}
	return got == want;
}

/* ---- Logging in ---- */

/*
 * auth.login as user with pw on a new client that then carries the session.
 * The token goes to token (may be NULL) and to the secrets.
 */
static tkm_err login(const char *user, const char *pw, tkm_client **out,
                     uint8_t token[TKM_SESSION_TOKEN_LEN], bool *must_change, tkm_status *st)
{
	tkm_client *c = NULL;
	tkm_cbor_doc *doc = NULL;
	const uint8_t *tok = NULL;
	size_t tok_len = 0;
	bool mc = false;
	tkm_err err;

	*out = NULL;
	keep_password(pw);
	if ((err = tkm_testenv_client(tkm_testenv_ipc_url(env), &c)) != TKM_OK) {
		return err;
	}
	err = call(c, "auth.login", p_text(2, "username", user, "password", pw), &doc, st);
	if (err == TKM_OK && (!tkm_cbor_get_bytes(res_get(doc, "token"), &tok, &tok_len) ||
	                      tok_len != TKM_SESSION_TOKEN_LEN ||
	                      !tkm_cbor_get_bool(res_get(doc, "must_change_password"), &mc))) {
		err = TKM_E_PROTOCOL;
	}
	if (err == TKM_OK) {
		keep_token(tok);
		if (token != NULL) {
			memcpy(token, tok, TKM_SESSION_TOKEN_LEN);
		}
		err = tkm_client_use_session(c, tok, st);
	}
	if (err == TKM_OK) {
		if (must_change != NULL) {
			*must_change = mc;
		}
		*out = c;
		c = NULL;
	}
	tkm_cbor_doc_free(doc);
	tkm_client_close(c);
	return err;
}

/* A client with token attached (forged, ended or expired tokens). */
static tkm_client *client_with_token(const uint8_t token[TKM_SESSION_TOKEN_LEN])
{
	tkm_client *c = NULL;
	tkm_status st;

	if (tkm_testenv_client(tkm_testenv_ipc_url(env), &c) != TKM_OK ||
	    tkm_client_use_session(c, token, &st) != TKM_OK) {
		abort();
	}
	return c;
}

static tkm_err change_password(tkm_client *c, const char *old_pw, const char *new_pw,
                               tkm_status *st)
{
	keep_password(new_pw);
	return call(c, "auth.change_password",
	            p_text(2, "old_password", old_pw, "new_password", new_pw), NULL, st);
}

/* The one-time password tkmd --init printed for user (DIR/init.out). */
static bool init_otp(const char *user, char *buf, size_t cap)
{
	char path[400], *text, *line, *save = NULL;
	bool found = false;

	fmt(path, sizeof(path), "%s/init.out", tkm_testenv_dir(env));
	if ((text = tkm_testenv_read_file(path, NULL)) == NULL) {
		return false;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL && !found;
	     line = strtok_r(NULL, "\n", &save)) {
		char u[64], role[64], otp[64];

		if (sscanf(line, " %63s %63s %63s", u, role, otp) == 3 && strcmp(u, user) == 0 &&
		    strlen(otp) < cap) {
			memcpy(buf, otp, strlen(otp) + 1);
			found = true;
		}
	}
	free(text);
	return found;
}

/*
 * First login of an operator tkmd --init made: the one-time password works,
 * the session may do nothing but change it (checked for check_forced), then
 * the password becomes new_pw, which the harness learns for its own logins.
 */
static tkm_client *first_login(const char *user, const char *new_pw, bool check_forced)
{
	char otp[64], msg[256], want[96];
	tkm_client *c = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	bool mc = false, mc2 = false;

	CHECK(init_otp(user, otp, sizeof(otp)));
	keep_password(otp);
	CHECK(expect("first login", login(user, otp, &c, NULL, &mc, &st), &st, TKM_OK));
	if (c == NULL) {
		return NULL;
	}
	CHECK(mc);
	if (check_forced) {
		/* Before the change: only change_password, whoami and logout. */
		CHECK(expect("sys.info before the change", call(c, "sys.info", NULL, NULL, &st),
		             &st, TKM_E_PERMISSION_DENIED));
		CHECK(has_words(st.message, "password", "change"));
		CHECK(expect("operator.list before the change",
		             call(c, "operator.list", NULL, NULL, &st), &st,
		             TKM_E_PERMISSION_DENIED));
		CHECK(expect("whoami before the change", call(c, "auth.whoami", NULL, &doc, &st),
		             &st, TKM_OK));
		CHECK(tkm_cbor_get_bool(res_get(doc, "must_change_password"), &mc2) && mc2);
		fmt(want, sizeof(want), "operator:%s", user);
		CHECK_STR(text_of(res_get(doc, "principal"), msg, sizeof(msg)), want);
		tkm_cbor_doc_free(doc);
	}
	CHECK(expect("change_password", change_password(c, otp, new_pw, &st), &st, TKM_OK));
	CHECK(
	    expect("sys.info after the change", call(c, "sys.info", NULL, NULL, &st), &st, TKM_OK));
	CHECK_EQ_INT(tkm_testenv_set_password(env, user, new_pw), TKM_OK);
	return c;
}

/* A pending request's id from a dual-control call's result; 0 when it is not one. */
static uint64_t pending_id(const tkm_cbor_doc *doc)
{
	uint64_t id = 0;

	if (!tkm_cbor_text_eq(res_get(doc, "status"), "pending") ||
	    !tkm_cbor_get_uint(res_get(doc, "approval_id"), &id)) {
		fprintf(stderr, "  not a pending request\n");
		return 0;
	}
	return id;
}

/* approval.approve id as c: returns the call's code, *state the request's new state. */
static tkm_err approve(tkm_client *c, uint64_t id, tkm_cbor_doc **doc, char *state, size_t cap,
                       tkm_status *st)
{
	tkm_err err = call(c, "approval.approve", p_id(id), doc, st);

	state[0] = '\0';
	if (err == TKM_OK) {
		text_of(res_get(*doc, "state"), state, cap);
	}
	return err;
}

/* The error code of an approved request that failed ("" when it ran). */
static const char *run_error(const tkm_cbor_doc *doc, char *buf, size_t cap)
{
	return text_of(tkm_cbor_map_get(res_get(doc, "error"), "code"), buf, cap);
}

/*
 * operator.create by creator, approved by approver; the new operator's
 * one-time password goes to otp (and to the secrets).
 */
static bool make_operator(tkm_client *creator, tkm_client *approver, const char *user,
                          const char *role, char *otp, size_t cap)
{
	tkm_cbor_w *w = w_new();
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	char state[32];
	uint64_t id;
	bool ok;

	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "roles");
	tkm_cbor_put_array(w, 1);
	tkm_cbor_put_cstr(w, role);
	tkm_cbor_put_cstr(w, "username");
	tkm_cbor_put_cstr(w, user);
	CHECK(
	    expect("operator.create", call(creator, "operator.create", w, &doc, &st), &st, TKM_OK));
	id = pending_id(doc);
	tkm_cbor_doc_free(doc);
	CHECK(id != 0);
	CHECK(expect("approve operator.create",
	             approve(approver, id, &doc, state, sizeof(state), &st), &st, TKM_OK));
	CHECK_STR(state, "executed");
	text_of(tkm_cbor_map_get(res_get(doc, "result"), "one_time_password"), otp, cap);
	tkm_cbor_doc_free(doc);
	ok = otp[0] != '\0';
	CHECK(ok);
	keep_password(otp);
	return ok;
}

/* ---- The permission matrix ---- */

#define MX_METHODS 96
#define MX_COLS    12

/* Method names to try: what tkmd serves is found by asking it. */
static const char *const mx_candidates[] = {
    "sys.ping",
    "sys.info",
    "debug.sleep",
    "auth.login",
    "auth.logout",
    "auth.whoami",
    "auth.change_password",
    "operator.create",
    "operator.reset_password",
    "operator.unlock",
    "operator.disable",
    "operator.show",
    "operator.list",
    "operator.delete",
    "role.assign",
    "role.revoke",
    "role.list",
    "device.register",
    "device.disable",
    "device.list",
    "device.show",
    "approval.list",
    "approval.approve",
    "approval.reject",
    "approval.show",
    "policy.show",
    "policy.apply",
    "policy.diff",
    "audit.list",
    "audit.verify",
    "audit.public_key",
    "audit.export",
    "audit.checkpoint",
    "audit.archive",
    "store.backup",
    "terminal.enroll",
    "terminal.enroll_code",
    "terminal.show",
    "terminal.list",
    "terminal.checkin",
    "terminal.suspend",
    "terminal.resume",
    "terminal.export",
    "key.inject",
    "key.rotate_working",
    "key.component_enter",
    "key.ceremony_begin",
    "key.ceremony_finish",
    "key.export",
    "key.list",
    "key.show",
    "password.rotate",
    "password.show",
};

typedef struct mx_col {
	char label[40];
	char role[TKM_POLICY_NAME_MAX + 1]; /* "" for none */
	char assigned[64];                  /* the role assignment's scope */
	char name[64];                      /* operator username or device name */
	tkm_policy_holder kind;             /* TKM_POLICY_HOLDER_ANY: anonymous */
	tkm_client *c;
} mx_col;

typedef struct mx_cell {
	bool allow; /* tkm_policy_check's verdict */
	bool dual;
	tkm_err got;
	bool pending;
	bool bad;
} mx_cell;

static char mx_methods[MX_METHODS][TKM_POLICY_METHOD_MAX + 1];
static size_t mx_nmethods;
static mx_col mx_cols[MX_COLS];
static size_t mx_ncols;
static mx_cell mx_cells[MX_METHODS][MX_COLS];

static void mx_add_candidate(const char *m, const char **list, size_t *n, size_t cap)
{
	if (strchr(m, '*') != NULL) {
		return;
	}
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(list[i], m) == 0) {
			return;
		}
	}
	if (*n < cap) {
		list[(*n)++] = m;
	}
}

static int mx_cmp(const void *a, const void *b)
{
	const char *x = a, *y = b;

	/* auth.logout ends the session: it goes last. */
	if (strcmp(x, "auth.logout") == 0) {
		return strcmp(y, "auth.logout") == 0 ? 0 : 1;
	}
	if (strcmp(y, "auth.logout") == 0) {
		return -1;
	}
	return strcmp(x, y);
}

/* Every candidate and every exact method name of the policy that tkmd serves. */
static void mx_served(tkm_client *anon)
{
	const char *cand[160];
	size_t n = 0;
	tkm_status st;

	for (size_t i = 0; i < sizeof(mx_candidates) / sizeof(mx_candidates[0]); i++) {
		mx_add_candidate(mx_candidates[i], cand, &n, 160);
	}
	for (size_t r = 0; r < tkm_policy_role_count(pol); r++) {
		tkm_policy_role_info ri;

		CHECK_EQ_INT(tkm_policy_role_at(pol, r, &ri), TKM_OK);
		for (int deny = 0; deny < 2; deny++) {
			size_t count = deny ? ri.ndeny : ri.nallow;

			for (size_t k = 0; k < count; k++) {
				tkm_policy_rule_info rule;

				if (tkm_policy_rule_at(pol, r, deny != 0, k, &rule) == TKM_OK) {
					mx_add_candidate(rule.method, cand, &n, 160);
				}
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		tkm_err err = call(anon, cand[i], NULL, NULL, &st);

		if (err == TKM_E_BAD_REQUEST && strncmp(st.message, "unknown method", 14) == 0) {
			continue;
		}
		/* debug.* exists only in tkmd-test and skips the policy by design. */
		if (strncmp(cand[i], "debug.", 6) == 0) {
			printf("served but outside the matrix (test daemon only): %s\n", cand[i]);
			continue;
		}
		if (mx_nmethods < MX_METHODS) {
			memcpy(mx_methods[mx_nmethods++], cand[i], strlen(cand[i]) + 1);
		}
	}
	qsort(mx_methods, mx_nmethods, sizeof(mx_methods[0]), mx_cmp);
	/* Sanity: the methods of this issue are all there. */
	CHECK(mx_nmethods >= 20);
}

/* "site:$assigned" in any rule of role r becomes the assignment "site:s1". */
static void mx_assigned_for(size_t r, char *buf, size_t cap)
{
	tkm_policy_role_info ri;

	buf[0] = '\0';
	if (tkm_policy_role_at(pol, r, &ri) != TKM_OK) {
		return;
	}
	for (size_t k = 0; k < ri.nallow; k++) {
		tkm_policy_rule_info rule;
		const char *d;

		if (tkm_policy_rule_at(pol, r, false, k, &rule) == TKM_OK && rule.scope != NULL &&
		    (d = strstr(rule.scope, ":$assigned")) != NULL && buf[0] == '\0' &&
		    (size_t)(d - rule.scope) + 4 < cap) {
			memcpy(buf, rule.scope, (size_t)(d - rule.scope));
			memcpy(buf + (d - rule.scope), ":s1", 4);
		}
	}
}

/* Register device name with a new key (file DIR/name.key) and open a client signing as it. */
static tkm_client *mx_device(tkm_client *adm, const char *name, const char *kind, char *key_path,
                             size_t cap)
{
	uint8_t pk[TKM_DEVICE_PK_LEN];
	tkm_client *c = NULL;
	tkm_cbor_w *w;
	tkm_status st;

	fmt(key_path, cap, "%s/%s.key", tkm_testenv_dir(env), name);
	CHECK_EQ_INT(tkm_device_keygen(key_path, pk, &st), TKM_OK);
	w = w_new();
	tkm_cbor_put_map(w, 3);
	tkm_cbor_put_cstr(w, "kind");
	tkm_cbor_put_cstr(w, kind);
	tkm_cbor_put_cstr(w, "name");
	tkm_cbor_put_cstr(w, name);
	tkm_cbor_put_cstr(w, "public_key");
	tkm_cbor_put_bytes(w, pk, sizeof(pk));
	/* Dual control: the admin asks, a security officer approves. */
	{
		tkm_cbor_doc *doc = NULL;
		tkm_client *officer = NULL;
		char state[32];
		uint64_t id;

		CHECK(expect("device.register", call(adm, "device.register", w, &doc, &st), &st,
		             TKM_OK));
		id = pending_id(doc);
		tkm_cbor_doc_free(doc);
		doc = NULL;
		CHECK_EQ_INT(tkm_testenv_login(env, "officer2", &officer), TKM_OK);
		CHECK_EQ_INT(approve(officer, id, &doc, state, sizeof(state), &st), TKM_OK);
		CHECK_STR(state, "executed");
		tkm_cbor_doc_free(doc);
		tkm_client_close(officer);
	}
	CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_ipc_url(env), &c), TKM_OK);
	CHECK_EQ_INT(tkm_client_use_device_key(c, name, key_path, &st), TKM_OK);
	return c;
}

/* role.assign under dual control: asker asks, approver approves; the run's error code. */
static void assign_role(tkm_client *asker, tkm_client *approver, const char *principal,
                        const char *role, const char *scope, char *code, size_t cap)
{
	tkm_cbor_w *w = w_new();
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	char state[32];
	uint64_t id;

	tkm_cbor_put_map(w, scope != NULL ? 3 : 2);
	tkm_cbor_put_cstr(w, "principal");
	tkm_cbor_put_cstr(w, principal);
	tkm_cbor_put_cstr(w, "role");
	tkm_cbor_put_cstr(w, role);
	if (scope != NULL) {
		tkm_cbor_put_cstr(w, "scope");
		tkm_cbor_put_cstr(w, scope);
	}
	CHECK(expect("role.assign", call(asker, "role.assign", w, &doc, &st), &st, TKM_OK));
	id = pending_id(doc);
	tkm_cbor_doc_free(doc);
	CHECK(id != 0);
	CHECK(expect("approve role.assign", approve(approver, id, &doc, state, sizeof(state), &st),
	             &st, TKM_OK));
	run_error(doc, code, cap);
	if (strcmp(state, "executed") != 0 && code[0] == '\0') {
		memcpy(code, "?", 2);
	}
	tkm_cbor_doc_free(doc);
}

static void mx_print(void)
{
	printf("\nPermission matrix (policy/default.policy through tkmd; params {}):\n");
	printf("  deny     refused as the policy says (permission_denied; unauthenticated for\n"
	       "           anonymous)\n"
	       "  other    allowed by the policy and past the gate: what the handler answered\n"
	       "           (ok, pending = a dual-control request was made, or the error code)\n"
	       "  !        the cell differs from tkm_policy_check\n\n");
	printf("%-24s", "method");
	for (size_t j = 0; j < mx_ncols; j++) {
		printf(" %-14.14s", mx_cols[j].label);
	}
	printf("\n");
	for (size_t i = 0; i < mx_nmethods; i++) {
		printf("%-24s", mx_methods[i]);
		for (size_t j = 0; j < mx_ncols; j++) {
			const mx_cell *cell = &mx_cells[i][j];
			char txt[24];
			const char *what = cell->got == TKM_OK ? (cell->pending ? "pending" : "ok")
			                   : (cell->got == TKM_E_PERMISSION_DENIED ||
			                      cell->got == TKM_E_UNAUTHENTICATED)
			                       ? "deny"
			                       : tkm_err_wire_name(cell->got);

			fmt(txt, sizeof(txt), "%s%.20s", cell->bad ? "!" : "", what);
			printf(" %-14.14s", txt);
		}
		printf("\n");
	}
	printf("\n");
}

static void test_matrix(tkm_client *adm, tkm_client *off1)
{
	tkm_client *anon = NULL;
	char key_path[400], code[32];
	size_t mismatches = 0;

	CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_ipc_url(env), &anon), TKM_OK);
	mx_served(anon);

	/* Columns: anonymous, each role of the policy, and a device with no role. */
	mx_ncols = 0;
	memcpy(mx_cols[mx_ncols].label, "(anonymous)", 12);
	mx_cols[mx_ncols].kind = TKM_POLICY_HOLDER_ANY;
	mx_cols[mx_ncols++].c = anon;
	for (size_t r = 0; r < tkm_policy_role_count(pol) && mx_ncols + 1 < MX_COLS; r++) {
		tkm_policy_role_info ri;
		mx_col *col = &mx_cols[mx_ncols];

		CHECK_EQ_INT(tkm_policy_role_at(pol, r, &ri), TKM_OK);
		memset(col, 0, sizeof(*col));
		fmt(col->role, sizeof(col->role), "%s", ri.name);
		/* Short enough for a column: "provisioning-station" is "prov-station". */
		if (strlen(ri.name) > 13 && strchr(ri.name, '-') != NULL) {
			fmt(col->label, sizeof(col->label), "%.4s%s", ri.name,
			    strchr(ri.name, '-'));
		} else {
			fmt(col->label, sizeof(col->label), "%s", ri.name);
		}
		fmt(col->name, sizeof(col->name), "mx-%s", ri.name);
		if (ri.holder == TKM_POLICY_HOLDER_DEVICE) {
			char principal[80];

			col->kind = TKM_POLICY_HOLDER_DEVICE;
			mx_assigned_for(r, col->assigned, sizeof(col->assigned));
			col->c =
			    mx_device(adm, col->name,
			              strstr(ri.name, "terminal") != NULL ? "terminal" : "station",
			              key_path, sizeof(key_path));
			fmt(principal, sizeof(principal), "device:%s", col->name);
			assign_role(adm, off1, principal, ri.name,
			            col->assigned[0] != '\0' ? col->assigned : NULL, code,
			            sizeof(code));
			CHECK_STR(code, "");
		} else {
			col->kind = TKM_POLICY_HOLDER_OPERATOR;
			CHECK_EQ_INT(
			    tkm_testenv_add_operator(env, "admin", "officer1", col->name, ri.name),
			    TKM_OK);
			CHECK_EQ_INT(tkm_testenv_login(env, col->name, &col->c), TKM_OK);
		}
		mx_ncols++;
	}
	{
		mx_col *col = &mx_cols[mx_ncols];

		memset(col, 0, sizeof(*col));
		memcpy(col->label, "(dev, no role)", 15);
		memcpy(col->name, "mx-no-role", 11);
		col->kind = TKM_POLICY_HOLDER_DEVICE;
		col->c = mx_device(adm, col->name, "station", key_path, sizeof(key_path));
		mx_ncols++;
	}

	for (size_t j = 0; j < mx_ncols; j++) {
		mx_col *col = &mx_cols[j];
		tkm_policy_grant grant = {col->role, col->assigned};
		tkm_policy_principal pr = {col->kind,
		                           col->kind == TKM_POLICY_HOLDER_DEVICE ? col->name : NULL,
		                           &grant, col->role[0] != '\0' ? 1 : 0};
		tkm_policy_target none;

		memset(&none, 0, sizeof(none));
		if (col->c == NULL) {
			continue;
		}
		for (size_t i = 0; i < mx_nmethods; i++) {
			mx_cell *cell = &mx_cells[i][j];
			tkm_policy_decision d;
			tkm_cbor_doc *doc = NULL;
			tkm_status st;
			tkm_err deny_code;

			CHECK_EQ_INT(
			    tkm_policy_check(pol, col->kind == TKM_POLICY_HOLDER_ANY ? NULL : &pr,
			                     mx_methods[i], &none, &d),
			    TKM_OK);
			cell->allow = d.allow;
			cell->dual = d.dual_control;
			cell->got = call(col->c, mx_methods[i], NULL, &doc, &st);
			cell->pending = cell->got == TKM_OK &&
			                tkm_cbor_text_eq(res_get(doc, "status"), "pending");
			tkm_cbor_doc_free(doc);
			deny_code = col->kind == TKM_POLICY_HOLDER_ANY ? TKM_E_UNAUTHENTICATED
			                                               : TKM_E_PERMISSION_DENIED;
			if (!d.allow) {
				cell->bad = cell->got != deny_code;
			} else {
				cell->bad = cell->got == TKM_E_PERMISSION_DENIED ||
				            cell->got == TKM_E_UNAUTHENTICATED ||
				            cell->got == TKM_E_INTERNAL ||
				            cell->got >= TKM_E_NOMEM ||
				            /* An allowed dual-control call waits for approval. */
				            (d.dual_control && !cell->pending);
			}
			if (cell->bad) {
				mismatches++;
				fprintf(stderr,
				        "matrix: %s as %s: policy says %s (%s), tkmd answered %s "
				        "(%s)\n",
				        mx_methods[i], col->label, d.allow ? "allow" : "deny",
				        d.why,
				        cell->got == TKM_OK ? (cell->pending ? "pending" : "ok")
				                            : tkm_strerror(cell->got),
				        st.message);
			}
		}
	}
	CHECK_EQ_INT(mismatches, 0);
	mx_print();
	for (size_t j = 0; j < mx_ncols; j++) {
		tkm_client_close(mx_cols[j].c);
		mx_cols[j].c = NULL;
	}
}

/* ---- Audit records ---- */

typedef struct audit_count {
	const char *method, *outcome, *target, *reason; /* NULL target, reason: any */
	size_t n;
	size_t with_source;
	const char *principal, *initiator; /* NULL: any */
} audit_count;

/*
 * Page through audit.list as the auditor c. Appends the raw bytes of every
 * page to *raw (may be NULL); counts records matching *q (may be NULL).
 */
static void audit_walk(tkm_client *c, uint8_t **raw, size_t *raw_len, audit_count *q)
{
	uint64_t after = 0;

	for (;;) {
		tkm_cbor_w *w = w_new();
		tkm_cbor_limits lim = tkm_cbor_default_limits();
		tkm_cbor_doc *doc = NULL;
		tkm_status st;
		const uint8_t *p;
		uint8_t *res = NULL;
		size_t n = 0, rlen = 0;
		uint64_t next = 0;
		tkm_err err;

		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "after");
		tkm_cbor_put_uint(w, after);
		tkm_cbor_put_cstr(w, "limit");
		tkm_cbor_put_uint(w, 500);
		if (tkm_cbor_w_finish(w, &p, &n) != TKM_OK) {
			abort();
		}
		err = tkm_call_raw(c, "audit.list", p, n, 30000, &st, &res, &rlen);
		tkm_cbor_w_free(w);
		CHECK(expect("audit.list", err, &st, TKM_OK));
		if (err != TKM_OK) {
			return;
		}
		if (raw != NULL) {
			uint8_t *grown = realloc(*raw, *raw_len + rlen);

			if (grown == NULL) {
				abort();
			}
			memcpy(grown + *raw_len, res, rlen);
			*raw = grown;
			*raw_len += rlen;
		}
		CHECK_EQ_INT(tkm_cbor_decode(res, rlen, &lim, &doc, NULL, 0), TKM_OK);
		tkm_free(res, rlen);
		for (const tkm_cbor_val *r = tkm_cbor_first(res_get(doc, "records"));
		     q != NULL && r != NULL; r = tkm_cbor_next(r)) {
			const tkm_cbor_val *d = tkm_cbor_map_get(r, "details");
			char buf[128];

			if (tkm_cbor_text_eq(tkm_cbor_map_get(r, "method"), q->method) &&
			    tkm_cbor_text_eq(tkm_cbor_map_get(r, "outcome"), q->outcome) &&
			    (q->target == NULL ||
			     tkm_cbor_text_eq(tkm_cbor_map_get(r, "target"), q->target)) &&
			    (q->reason == NULL ||
			     tkm_cbor_text_eq(tkm_cbor_map_get(d, "reason"), q->reason)) &&
			    (q->principal == NULL ||
			     tkm_cbor_text_eq(tkm_cbor_map_get(r, "principal"), q->principal)) &&
			    (q->initiator == NULL ||
			     tkm_cbor_text_eq(tkm_cbor_map_get(d, "initiator"), q->initiator))) {
				q->n++;
				q->with_source +=
				    strcmp(text_of(tkm_cbor_map_get(d, "source"), buf, sizeof(buf)),
				           source) == 0;
			}
		}
		if (!tkm_cbor_get_uint(res_get(doc, "next"), &next)) {
			tkm_cbor_doc_free(doc);
			return;
		}
		after = next;
		tkm_cbor_doc_free(doc);
	}
}

static size_t audit_count_of(tkm_client *aud, const char *method, const char *outcome,
                             const char *target, const char *reason, size_t *with_source)
{
	audit_count q = {method, outcome, target, reason, 0, 0, NULL, NULL};

	audit_walk(aud, NULL, NULL, &q);
	if (with_source != NULL) {
		*with_source = q.with_source;
	}
	return q.n;
}

/* How many approval.approve records of target name this approver and initiator. */
static size_t audit_trail_ok(tkm_client *aud, const char *target, const char *initiator,
                             const char *approver)
{
	audit_count q = {"approval.approve", "ok", target, NULL, 0, 0, approver, initiator};

	audit_walk(aud, NULL, NULL, &q);
	return q.n;
}

/* ---- Lockout ---- */

static void login_fails(const char *user, const char *pw, const char *words)
{
	tkm_client *c = NULL;
	tkm_status st;

	CHECK(expect("login", login(user, pw, &c, NULL, NULL, &st), &st, TKM_E_UNAUTHENTICATED));
	if (words != NULL) {
		CHECK(has_words(st.message, words, NULL));
	}
	tkm_client_close(c);
}

static void login_works(const char *user, const char *pw)
{
	tkm_client *c = NULL;
	tkm_status st;

	CHECK(expect("login", login(user, pw, &c, NULL, NULL, &st), &st, TKM_OK));
	tkm_client_close(c);
}

static void lock_out(const char *user, int attempt)
{
	for (int i = 0; i < 5; i++) {
		char wrong[64];

		fmt(wrong, sizeof(wrong), "Wrong-%d-%d-Zq7x", attempt, i);
		login_fails(user, wrong, NULL);
	}
}

static void test_lockout(tkm_client *adm, tkm_client *off1, tkm_client *aud)
{
	const char *pw = "Lk-Good-Pass-9931";
	char otp[64];
	tkm_client *c = NULL, *lk = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	bool locked = false;
	size_t n, with_source = 0;
	uint64_t t0;

	CHECK(make_operator(adm, off1, "lock1", "auditor", otp, sizeof(otp)));
	CHECK(expect("login lock1", login("lock1", otp, &lk, NULL, NULL, &st), &st, TKM_OK));
	CHECK(expect("change lock1", change_password(lk, otp, pw, &st), &st, TKM_OK));
	tkm_client_close(lk);

	/* Four failures and a success: the count starts again. */
	for (int i = 0; i < 4; i++) {
		char wrong[64];

		fmt(wrong, sizeof(wrong), "Almost-%d-Zq7x", i);
		login_fails("lock1", wrong, "wrong username or password");
	}
	login_works("lock1", pw);

	/* Five: locked, and the right password is refused too. */
	lock_out("lock1", 1);
	t0 = tkm_testenv_now_us();
	login_fails("lock1", pw, "locked");
	CHECK(expect("operator.show",
	             call(adm, "operator.show", p_text(1, "username", "lock1"), &doc, &st), &st,
	             TKM_OK));
	CHECK(tkm_cbor_get_bool(res_get(doc, "locked"), &locked) && locked);
	tkm_cbor_doc_free(doc);
	/* lockout_seconds = 2, counted from the fifth failure. */
	sleep_until(t0, 2200);
	login_works("lock1", pw);

	/* Locked again; an admin's unlock lifts it at once. */
	lock_out("lock1", 2);
	login_fails("lock1", pw, "locked");
	CHECK(expect("operator.unlock",
	             call(adm, "operator.unlock", p_text(1, "username", "lock1"), NULL, &st), &st,
	             TKM_OK));
	CHECK(expect("login after unlock", login("lock1", pw, &c, NULL, NULL, &st), &st, TKM_OK));
	tkm_client_close(c);

	/* An unknown user is refused with the same words, and audited too. */
	login_fails("nosuchuser", "Whatever-Pass-123", "wrong username or password");

	/* Every failure is audited: outcome denied, with the source and the reason. */
	n = audit_count_of(aud, "auth.login", "denied", "operator:lock1", "wrong password",
	                   &with_source);
	CHECK_EQ_INT(n, 4 + 5 + 5);
	CHECK_EQ_INT(with_source, n);
	n = audit_count_of(aud, "auth.login", "denied", "operator:lock1", "locked", &with_source);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(with_source, n);
	n = audit_count_of(aud, "auth.login", "denied", "operator:nosuchuser", "unknown user",
	                   &with_source);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(with_source, n);
	CHECK_EQ_INT(audit_count_of(aud, "auth.login", "ok", "operator:lock1", NULL, NULL), 4);
	CHECK_EQ_INT(audit_count_of(aud, "operator.unlock", "ok", "operator:lock1", NULL, NULL), 1);
}

/* ---- Tokens ---- */

static void test_tokens_logout_forged(const char *user, const char *pw)
{
	uint8_t tok[TKM_SESSION_TOKEN_LEN], forged[TKM_SESSION_TOKEN_LEN];
	tkm_client *c = NULL, *f = NULL;
	tkm_status st;

	CHECK(expect("login", login(user, pw, &c, tok, NULL, &st), &st, TKM_OK));
	if (c == NULL) {
		return;
	}
	CHECK(expect("sys.info", call(c, "sys.info", NULL, NULL, &st), &st, TKM_OK));
	CHECK(expect("logout", call(c, "auth.logout", NULL, NULL, &st), &st, TKM_OK));
	CHECK(expect("sys.info after logout", call(c, "sys.info", NULL, NULL, &st), &st,
	             TKM_E_UNAUTHENTICATED));
	CHECK(expect("logout twice", call(c, "auth.logout", NULL, NULL, &st), &st,
	             TKM_E_UNAUTHENTICATED));
	tkm_client_close(c);

	/* A random token, and a live token with one bit flipped. */
	randombytes_buf(forged, sizeof(forged));
	f = client_with_token(forged);
	CHECK(expect("forged token", call(f, "sys.info", NULL, NULL, &st), &st,
	             TKM_E_UNAUTHENTICATED));
	tkm_client_close(f);
	CHECK(expect("login", login(user, pw, &c, tok, NULL, &st), &st, TKM_OK));
	memcpy(forged, tok, sizeof(forged));
	forged[7] ^= 0x10;
	f = client_with_token(forged);
	CHECK(expect("token with a flipped bit", call(f, "sys.info", NULL, NULL, &st), &st,
	             TKM_E_UNAUTHENTICATED));
	CHECK(expect("the real token", call(c, "sys.info", NULL, NULL, &st), &st, TKM_OK));
	tkm_client_close(f);
	tkm_client_close(c);
}

/* ---- Device signatures ---- */

static nng_socket raw_sock;

/* Send one request's bytes over a raw REQ socket; the reply's code and message. */
static tkm_err raw_send(const uint8_t *req, size_t len, char *msg, size_t cap)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_cbor_doc *doc = NULL;
	tkm_wire_response resp;
	char why[128];
	void *rep = NULL;
	size_t rlen = 0;
	tkm_err err;
	int rv;

	msg[0] = '\0';
	if ((rv = nng_send(raw_sock, (void *)(uintptr_t)req, len, 0)) != 0 ||
	    (rv = nng_recv(raw_sock, &rep, &rlen, NNG_FLAG_ALLOC)) != 0) {
		fmt(msg, cap, "nng: %s", nng_strerror(rv));
		return TKM_E_CONNECT;
	}
	err = tkm_wire_decode_response(rep, rlen, &lim, &doc, &resp, why, sizeof(why));
	nng_free(rep, rlen);
	if (err != TKM_OK) {
		fmt(msg, cap, "bad reply: %s", why);
		return err;
	}
	if (resp.is_error) {
		fmt(msg, cap, "%.*s", (int)resp.message_len, resp.message);
		err = resp.code;
	}
	tkm_cbor_doc_free(doc);
	return err;
}

/*
 * A request envelope signed by key as principal over (sign_method,
 * sign_params) at ts with nonce, but carrying send_method and send_params.
 * Returns its length in out, 0 on failure.
 */
static size_t signed_request(uint8_t *out, size_t cap, uint64_t id, const tkm_devsig_key *key,
                             const char *principal, const char *sign_method,
                             const uint8_t *sign_params, size_t sign_len, const char *send_method,
                             const uint8_t *send_params, size_t send_len, uint64_t ts,
                             const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN])
{
	tkm_cbor_w *a = NULL, *w = NULL;
	const uint8_t *ap = NULL, *wp = NULL;
	size_t an = 0, wn = 0, n = 0;
	char why[128];

	if (tkm_cbor_w_new(TKM_DEVSIG_AUTH_MAX, &a) != TKM_OK ||
	    tkm_devsig_sign_at(key, principal, sign_method, sign_params, sign_len, ts, nonce, a,
	                       why, sizeof(why)) != TKM_OK ||
	    tkm_cbor_w_finish(a, &ap, &an) != TKM_OK || tkm_cbor_w_new(4096, &w) != TKM_OK) {
		goto out;
	}
	tkm_wire_encode_request(w, id, send_method, send_params, send_len, ap, an);
	if (tkm_cbor_w_finish(w, &wp, &wn) == TKM_OK && wn <= cap) {
		memcpy(out, wp, wn);
		n = wn;
	}
out:
	tkm_cbor_w_free(a);
	tkm_cbor_w_free(w);
	return n;
}

/* A whoami signed by key as principal at ts with a fresh nonce: the reply's code. */
static tkm_err signed_whoami(const tkm_devsig_key *key, const char *principal, uint64_t ts,
                             char *msg, size_t cap)
{
	static const uint8_t empty[] = {0xa0};
	static uint64_t id = 5000;
	uint8_t req[1024], nonce[TKM_DEVSIG_NONCE_LEN];
	size_t n;

	randombytes_buf(nonce, sizeof(nonce));
	n = signed_request(req, sizeof(req), ++id, key, principal, "auth.whoami", empty,
	                   sizeof(empty), "auth.whoami", empty, sizeof(empty), ts, nonce);
	CHECK(n > 0);
	return raw_send(req, n, msg, cap);
}

static void test_device_signatures(tkm_client *adm)
{
	static const uint8_t empty[] = {0xa0};
	static const uint8_t changed[] = {0xa1, 0x61, 'x', 0x01}; /* {"x": 1} */
	char key_path[400], msg[256];
	uint8_t req[1024], req2[1024], nonce[TKM_DEVSIG_NONCE_LEN];
	tkm_devsig_key *key = NULL, *other = NULL;
	tkm_client *dev = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	uint64_t now = (uint64_t)time(NULL);
	size_t n, n2;
	int rv;

	dev = mx_device(adm, "sig-dev", "station", key_path, sizeof(key_path));
	CHECK_EQ_INT(tkm_devsig_key_read(key_path, &key, msg, sizeof(msg)), TKM_OK);
	CHECK_EQ_INT(tkm_devsig_key_generate(&other), TKM_OK);
	if (dev == NULL || key == NULL || other == NULL) {
		goto out;
	}
	if ((rv = nng_req0_open(&raw_sock)) != 0 ||
	    (rv = nng_socket_set_ms(raw_sock, NNG_OPT_RECVTIMEO, 10000)) != 0 ||
	    (rv = nng_dial(raw_sock, tkm_testenv_ipc_url(env), NULL, 0)) != 0) {
		fprintf(stderr, "raw socket: %s\n", nng_strerror(rv));
		CHECK(false);
		goto out;
	}

	/* libtkm signs for the caller. */
	CHECK(expect("whoami as a device", call(dev, "auth.whoami", NULL, &doc, &st), &st, TKM_OK));
	CHECK_STR(text_of(res_get(doc, "principal"), msg, sizeof(msg)), "device:sig-dev");
	CHECK_STR(text_of(res_get(doc, "kind"), msg, sizeof(msg)), "device");
	tkm_cbor_doc_free(doc);

	/* Replay: the same bytes twice; then the same nonce in a new envelope. */
	randombytes_buf(nonce, sizeof(nonce));
	n = signed_request(req, sizeof(req), 4001, key, "sig-dev", "auth.whoami", empty,
	                   sizeof(empty), "auth.whoami", empty, sizeof(empty), now, nonce);
	n2 = signed_request(req2, sizeof(req2), 4002, key, "sig-dev", "auth.whoami", empty,
	                    sizeof(empty), "auth.whoami", empty, sizeof(empty), now, nonce);
	CHECK(n > 0 && n2 > 0);
	CHECK_EQ_INT(raw_send(req, n, msg, sizeof(msg)), TKM_OK);
	CHECK_EQ_INT(raw_send(req, n, msg, sizeof(msg)), TKM_E_UNAUTHENTICATED);
	CHECK(has_words(msg, "replay", NULL));
	CHECK_EQ_INT(raw_send(req2, n2, msg, sizeof(msg)), TKM_E_UNAUTHENTICATED);

	/* Timestamps: at the window's edge fine, past it (either way) refused. */
	CHECK_EQ_INT(signed_whoami(key, "sig-dev", now - WINDOW_S + 3, msg, sizeof(msg)), TKM_OK);
	CHECK_EQ_INT(signed_whoami(key, "sig-dev", now - WINDOW_S - 5, msg, sizeof(msg)),
	             TKM_E_UNAUTHENTICATED);
	CHECK(has_words(msg, "window", NULL));
	CHECK_EQ_INT(signed_whoami(key, "sig-dev", now + WINDOW_S + 5, msg, sizeof(msg)),
	             TKM_E_UNAUTHENTICATED);
	CHECK(has_words(msg, "window", NULL));

	/* The wrong key, and a principal tkmd does not know. */
	CHECK_EQ_INT(signed_whoami(other, "sig-dev", now, msg, sizeof(msg)), TKM_E_UNAUTHENTICATED);
	CHECK(has_words(msg, "signature", NULL));
	CHECK_EQ_INT(signed_whoami(other, "no-such-device", now, msg, sizeof(msg)),
	             TKM_E_UNAUTHENTICATED);
	CHECK(has_words(msg, "unknown", NULL));

	/* A body changed after signing: other params, or another method. */
	randombytes_buf(nonce, sizeof(nonce));
	n = signed_request(req, sizeof(req), 4003, key, "sig-dev", "auth.whoami", empty,
	                   sizeof(empty), "auth.whoami", changed, sizeof(changed), now, nonce);
	CHECK(n > 0);
	CHECK_EQ_INT(raw_send(req, n, msg, sizeof(msg)), TKM_E_UNAUTHENTICATED);
	CHECK(has_words(msg, "signature", NULL));
	randombytes_buf(nonce, sizeof(nonce));
	n = signed_request(req, sizeof(req), 4004, key, "sig-dev", "auth.whoami", empty,
	                   sizeof(empty), "sys.info", empty, sizeof(empty), now, nonce);
	CHECK(n > 0);
	CHECK_EQ_INT(raw_send(req, n, msg, sizeof(msg)), TKM_E_UNAUTHENTICATED);
	CHECK(has_words(msg, "signature", NULL));
	/* The unchanged request with that nonce still passes: the refusals did not burn it. */
	n = signed_request(req, sizeof(req), 4005, key, "sig-dev", "auth.whoami", empty,
	                   sizeof(empty), "auth.whoami", empty, sizeof(empty), now, nonce);
	CHECK_EQ_INT(raw_send(req, n, msg, sizeof(msg)), TKM_OK);

	/* A disabled device is refused, through libtkm too; enabled again it works. */
	{
		tkm_cbor_w *w = w_new();

		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "name");
		tkm_cbor_put_cstr(w, "sig-dev");
		tkm_cbor_put_cstr(w, "disabled");
		tkm_cbor_put_bool(w, true);
		CHECK(expect("device.disable", call(adm, "device.disable", w, NULL, &st), &st,
		             TKM_OK));
	}
	CHECK_EQ_INT(signed_whoami(key, "sig-dev", now, msg, sizeof(msg)), TKM_E_UNAUTHENTICATED);
	CHECK(has_words(msg, "disabled", NULL));
	CHECK(expect("whoami as a disabled device", call(dev, "auth.whoami", NULL, NULL, &st), &st,
	             TKM_E_UNAUTHENTICATED));
	{
		tkm_cbor_w *w = w_new();

		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "name");
		tkm_cbor_put_cstr(w, "sig-dev");
		tkm_cbor_put_cstr(w, "disabled");
		tkm_cbor_put_bool(w, false);
		CHECK(expect("device.disable false", call(adm, "device.disable", w, NULL, &st), &st,
		             TKM_OK));
	}
	CHECK(expect("whoami as an enabled device", call(dev, "auth.whoami", NULL, NULL, &st), &st,
	             TKM_OK));
	nng_close(raw_sock);
out:
	tkm_devsig_key_free(key);
	tkm_devsig_key_free(other);
	tkm_client_close(dev);
}

/* ---- Dual control ---- */

static tkm_cbor_w *p_create(const char *user, const char *role1, const char *role2)
{
	tkm_cbor_w *w = w_new();

	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "roles");
	tkm_cbor_put_array(w, role2 != NULL ? 2 : 1);
	tkm_cbor_put_cstr(w, role1);
	if (role2 != NULL) {
		tkm_cbor_put_cstr(w, role2);
	}
	tkm_cbor_put_cstr(w, "username");
	tkm_cbor_put_cstr(w, user);
	return w;
}

static void test_dual_control(tkm_client *adm, tkm_client *off1, tkm_client *off2, tkm_client *cust,
                              tkm_client *aud)
{
	tkm_cbor_doc *doc = NULL;
	tkm_client *c = NULL;
	tkm_status st;
	char state[32], otp[64], buf[64];
	uint64_t id;
	bool mc = false;

	/* Self-approval and self-rejection are refused; a custodian may not approve. */
	CHECK(expect("operator.create",
	             call(adm, "operator.create", p_create("dc-ok", "auditor", NULL), &doc, &st),
	             &st, TKM_OK));
	id = pending_id(doc);
	tkm_cbor_doc_free(doc);
	CHECK(id != 0);
	CHECK(expect("self-approval", approve(adm, id, &doc, state, sizeof(state), &st), &st,
	             TKM_E_PERMISSION_DENIED));
	CHECK(has_words(st.message, "own", NULL));
	CHECK(expect("self-rejection", call(adm, "approval.reject", p_id(id), NULL, &st), &st,
	             TKM_E_PERMISSION_DENIED));
	CHECK(expect("approval by a key custodian",
	             approve(cust, id, &doc, state, sizeof(state), &st), &st,
	             TKM_E_PERMISSION_DENIED));
	CHECK(expect("operator.show before approval",
	             call(adm, "operator.show", p_text(1, "username", "dc-ok"), NULL, &st), &st,
	             TKM_E_NOT_FOUND));

	/* A second operator's approval runs it: the new operator can log in. */
	CHECK(expect("approval", approve(off1, id, &doc, state, sizeof(state), &st), &st, TKM_OK));
	CHECK_STR(state, "executed");
	text_of(tkm_cbor_map_get(res_get(doc, "result"), "one_time_password"), otp, sizeof(otp));
	tkm_cbor_doc_free(doc);
	CHECK(otp[0] != '\0');
	keep_password(otp);
	CHECK(expect("login dc-ok", login("dc-ok", otp, &c, NULL, &mc, &st), &st, TKM_OK));
	CHECK(mc);
	tkm_client_close(c);
	/* Initiator, approver and outcome are in the audit chain. */
	fmt(buf, sizeof(buf), "approval:%llu", (unsigned long long)id);
	CHECK_EQ_INT(audit_count_of(aud, "approval.approve", "ok", buf, NULL, NULL), 1);
	CHECK_EQ_INT(audit_count_of(aud, "approval.result", "ok", buf, NULL, NULL), 1);
	CHECK_EQ_INT(audit_trail_ok(aud, buf, "operator:admin", "operator:officer1"), 1);
	/* Decided is decided: a second approval of the same request is refused. */
	CHECK(expect("approve twice", approve(off2, id, &doc, state, sizeof(state), &st), &st,
	             TKM_E_FAILED_PRECONDITION));

	/* A rejected request never runs. */
	CHECK(expect(
	    "operator.create",
	    call(adm, "operator.create", p_create("dc-rejected", "auditor", NULL), &doc, &st), &st,
	    TKM_OK));
	id = pending_id(doc);
	tkm_cbor_doc_free(doc);
	CHECK(expect("reject", call(off1, "approval.reject", p_id(id), &doc, &st), &st, TKM_OK));
	CHECK_STR(text_of(res_get(doc, "state"), buf, sizeof(buf)), "rejected");
	tkm_cbor_doc_free(doc);
	CHECK(expect("approve after reject", approve(off2, id, &doc, state, sizeof(state), &st),
	             &st, TKM_E_FAILED_PRECONDITION));
	CHECK(expect("operator.show of a rejected create",
	             call(adm, "operator.show", p_text(1, "username", "dc-rejected"), NULL, &st),
	             &st, TKM_E_NOT_FOUND));
}

/* ---- Password rules ---- */

static void test_passwords(tkm_client *adm, tkm_client *off1)
{
	const char *user = "pwuser";
	static const char *const pws[] = {"Pw-First-7731x", "Pw-Second-8842y", "Pw-Third-9953z",
	                                  "Pw-Fourth-1064w", "Pw-Fifth-2175v"};
	uint8_t old_tok[TKM_SESSION_TOKEN_LEN];
	char otp[64], state[32];
	tkm_client *c = NULL, *old = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	bool mc = false;
	uint64_t id;

	CHECK(make_operator(adm, off1, user, "key-custodian", otp, sizeof(otp)));
	CHECK(expect("first login", login(user, otp, &c, NULL, &mc, &st), &st, TKM_OK));
	if (c == NULL) {
		return;
	}
	CHECK(mc);
	CHECK(expect("sys.info before the change", call(c, "sys.info", NULL, NULL, &st), &st,
	             TKM_E_PERMISSION_DENIED));
	CHECK(has_words(st.message, "password", "change"));

	/* The rules. */
	CHECK(
	    expect("too short", change_password(c, otp, "Sh0rt-pw", &st), &st, TKM_E_BAD_REQUEST));
	CHECK(has_words(st.message, "short", NULL));
	CHECK(expect("contains the username", change_password(c, otp, "My-PwUser-2024-xq", &st),
	             &st, TKM_E_BAD_REQUEST));
	CHECK(has_words(st.message, "username", NULL));
	CHECK(expect("common password", change_password(c, otp, "password1234", &st), &st,
	             TKM_E_BAD_REQUEST));
	CHECK(has_words(st.message, "common", NULL));
	CHECK(expect("wrong old password", change_password(c, "Not-The-Otp-123", pws[0], &st), &st,
	             TKM_E_PERMISSION_DENIED));
	CHECK(expect("the one-time password again", change_password(c, otp, otp, &st), &st,
	             TKM_E_FAILED_PRECONDITION));
	/* Still forced: nothing above changed it. */
	CHECK(
	    expect("sys.info", call(c, "sys.info", NULL, NULL, &st), &st, TKM_E_PERMISSION_DENIED));

	/* otp -> 1 -> 2 -> 3 -> 4: the last four are 1..4 and none may come back. */
	CHECK(expect("change 1", change_password(c, otp, pws[0], &st), &st, TKM_OK));
	CHECK(
	    expect("sys.info after the change", call(c, "sys.info", NULL, NULL, &st), &st, TKM_OK));
	for (int i = 1; i < 4; i++) {
		CHECK(expect("change", change_password(c, pws[i - 1], pws[i], &st), &st, TKM_OK));
	}
	for (int i = 0; i < 4; i++) {
		CHECK(expect("reuse of one of the last 4", change_password(c, pws[3], pws[i], &st),
		             &st, TKM_E_FAILED_PRECONDITION));
		CHECK(has_words(st.message, "last", NULL));
	}
	/* After a fifth, the first is five back and allowed again. */
	CHECK(expect("change 5", change_password(c, pws[3], pws[4], &st), &st, TKM_OK));
	CHECK(expect("the first again", change_password(c, pws[4], pws[0], &st), &st, TKM_OK));
	tkm_client_close(c);
	login_fails(user, pws[4], NULL);
	CHECK(expect("login", login(user, pws[0], &old, old_tok, &mc, &st), &st, TKM_OK));
	CHECK(!mc);

	/* An admin reset (dual control) ends the sessions and forces a change again. */
	CHECK(expect("reset",
	             call(adm, "operator.reset_password", p_text(1, "username", user), &doc, &st),
	             &st, TKM_OK));
	id = pending_id(doc);
	tkm_cbor_doc_free(doc);
	CHECK(expect("approve reset", approve(off1, id, &doc, state, sizeof(state), &st), &st,
	             TKM_OK));
	CHECK_STR(state, "executed");
	text_of(tkm_cbor_map_get(res_get(doc, "result"), "one_time_password"), otp, sizeof(otp));
	tkm_cbor_doc_free(doc);
	CHECK(otp[0] != '\0');
	keep_password(otp);
	CHECK(expect("session after a reset", call(old, "sys.info", NULL, NULL, &st), &st,
	             TKM_E_UNAUTHENTICATED));
	tkm_client_close(old);
	login_fails(user, pws[0], NULL);
	CHECK(expect("login after reset", login(user, otp, &c, NULL, &mc, &st), &st, TKM_OK));
	CHECK(mc);
	CHECK(expect("sys.info after reset", call(c, "sys.info", NULL, NULL, &st), &st,
	             TKM_E_PERMISSION_DENIED));
	CHECK(expect("change after reset", change_password(c, otp, "Pw-Sixth-3286u", &st), &st,
	             TKM_OK));
	CHECK(expect("sys.info", call(c, "sys.info", NULL, NULL, &st), &st, TKM_OK));
	tkm_client_close(c);
}

/* ---- Separation of duties ---- */

static void test_separation(tkm_client *adm, tkm_client *off1)
{
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	char code[32], state[32];
	const tkm_cbor_val *r;
	size_t nroles = 0;
	uint64_t id;

	/* An admin never becomes an auditor, nor an auditor an admin. */
	assign_role(adm, off1, "operator:mx-admin", "auditor", NULL, code, sizeof(code));
	CHECK_STR(code, "failed_precondition");
	assign_role(adm, off1, "operator:mx-auditor", "admin", NULL, code, sizeof(code));
	CHECK_STR(code, "failed_precondition");
	CHECK(expect("operator.show",
	             call(adm, "operator.show", p_text(1, "username", "mx-admin"), &doc, &st), &st,
	             TKM_OK));
	for (r = tkm_cbor_first(res_get(doc, "roles")); r != NULL; r = tkm_cbor_next(r)) {
		CHECK(tkm_cbor_text_eq(tkm_cbor_map_get(r, "role"), "admin"));
		nroles++;
	}
	CHECK_EQ_INT(nroles, 1);
	tkm_cbor_doc_free(doc);

	/* Nor is an operator made with both. */
	CHECK(expect(
	    "operator.create",
	    call(adm, "operator.create", p_create("sod-both", "admin", "auditor"), &doc, &st), &st,
	    TKM_OK));
	id = pending_id(doc);
	tkm_cbor_doc_free(doc);
	CHECK(expect("approve", approve(off1, id, &doc, state, sizeof(state), &st), &st, TKM_OK));
	CHECK_STR(state, "failed");
	CHECK_STR(run_error(doc, code, sizeof(code)), "failed_precondition");
	tkm_cbor_doc_free(doc);
	CHECK(expect("operator.show",
	             call(adm, "operator.show", p_text(1, "username", "sod-both"), NULL, &st), &st,
	             TKM_E_NOT_FOUND));
}

/* ---- No secrets in logs, audit records, approvals or the database ---- */

static bool find_bytes(const uint8_t *hay, size_t hay_len, const void *needle, size_t n)
{
	if (n == 0 || hay == NULL || hay_len < n) {
		return false;
	}
	for (size_t i = 0; i + n <= hay_len; i++) {
		if (hay[i] == *(const uint8_t *)needle && sodium_memcmp(hay + i, needle, n) == 0) {
			return true;
		}
	}
	return false;
}

/* How many of the test's secrets occur in buf; each hit is named. */
static size_t secrets_in(const char *what, const uint8_t *buf, size_t len, bool quiet)
{
	size_t hits = 0;

	for (size_t i = 0; i < npw; i++) {
		if (find_bytes(buf, len, pw_secret[i], strlen(pw_secret[i]))) {
			if (!quiet) {
				fprintf(stderr, "secret: password \"%s\" found in %s\n",
				        pw_secret[i], what);
			}
			hits++;
		}
	}
	for (size_t i = 0; i < ntok; i++) {
		char hex[2 * TKM_SESSION_TOKEN_LEN + 1], upper[sizeof(hex)];

		sodium_bin2hex(hex, sizeof(hex), tok_secret[i], TKM_SESSION_TOKEN_LEN);
		for (size_t k = 0; k < sizeof(hex); k++) {
			upper[k] =
			    hex[k] >= 'a' && hex[k] <= 'f' ? (char)(hex[k] - 'a' + 'A') : hex[k];
		}
		if (find_bytes(buf, len, tok_secret[i], TKM_SESSION_TOKEN_LEN) ||
		    find_bytes(buf, len, hex, strlen(hex)) ||
		    find_bytes(buf, len, upper, strlen(upper))) {
			if (!quiet) {
				fprintf(stderr, "secret: token %.16s... found in %s\n", hex, what);
			}
			hits++;
		}
	}
	/* The harness's own passwords ("Tt-N-pass-Vq9") are not known here, but their shape is. */
	if (find_bytes(buf, len, "-pass-Vq9", 9)) {
		if (!quiet) {
			fprintf(stderr, "secret: a harness password found in %s\n", what);
		}
		hits++;
	}
	return hits;
}

/* The approval list as admin c, every page's raw bytes. */
static void approvals_walk(tkm_client *c, uint8_t **raw, size_t *raw_len)
{
	uint64_t after = 0;

	for (;;) {
		tkm_cbor_w *w = w_new();
		tkm_cbor_limits lim = tkm_cbor_default_limits();
		tkm_cbor_doc *doc = NULL;
		tkm_status st;
		const uint8_t *p;
		uint8_t *res = NULL, *grown;
		size_t n = 0, rlen = 0;
		uint64_t next = 0;

		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "after");
		tkm_cbor_put_uint(w, after);
		tkm_cbor_put_cstr(w, "limit");
		tkm_cbor_put_uint(w, 200);
		if (tkm_cbor_w_finish(w, &p, &n) != TKM_OK) {
			abort();
		}
		CHECK(expect("approval.list",
		             tkm_call_raw(c, "approval.list", p, n, 30000, &st, &res, &rlen), &st,
		             TKM_OK));
		tkm_cbor_w_free(w);
		if (res == NULL) {
			return;
		}
		if ((grown = realloc(*raw, *raw_len + rlen)) == NULL) {
			abort();
		}
		memcpy(grown + *raw_len, res, rlen);
		*raw = grown;
		*raw_len += rlen;
		CHECK_EQ_INT(tkm_cbor_decode(res, rlen, &lim, &doc, NULL, 0), TKM_OK);
		tkm_free(res, rlen);
		if (!tkm_cbor_get_uint(res_get(doc, "next"), &next)) {
			tkm_cbor_doc_free(doc);
			return;
		}
		after = next;
		tkm_cbor_doc_free(doc);
	}
}

static void keep_harness_tokens(void)
{
	static const char *const users[] = {
	    "admin",      "officer1",         "officer2",           "mx-admin",
	    "mx-auditor", "mx-key-custodian", "mx-security-officer"};
	uint8_t tok[TKM_SESSION_TOKEN_LEN];

	for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		if (tkm_testenv_token(env, users[i], tok) == TKM_OK) {
			keep_token(tok);
		}
	}
}

static void file_has_no_secrets(const char *name)
{
	char path[400];
	char *text;
	size_t len = 0;

	fmt(path, sizeof(path), "%s/%s", tkm_testenv_dir(env), name);
	if ((text = tkm_testenv_read_file(path, &len)) == NULL) {
		return; /* a -wal that was checkpointed away */
	}
	CHECK_EQ_INT(secrets_in(path, (const uint8_t *)text, len, false), 0);
	free(text);
}

/*
 * Search the log, every audit record and every approval for the secrets;
 * then stop tkmd, verify the chain offline and search the database file.
 */
static void test_no_secrets(tkm_client *aud, tkm_client *adm)
{
	uint8_t *raw = NULL, pk[TKM_AUDIT_PK_LEN];
	size_t raw_len = 0, bin_len = 0;
	char *log, path[400], why[256], *pub;
	size_t log_len = 0;
	tkm_audit_report rep;

	keep_harness_tokens();
	CHECK(npw >= 10 && ntok >= 5);
	/* The search finds what is there: init.out holds the first one-time passwords. */
	fmt(path, sizeof(path), "%s/init.out", tkm_testenv_dir(env));
	log = tkm_testenv_read_file(path, &log_len);
	CHECK(log != NULL && secrets_in(path, (const uint8_t *)log, log_len, true) >= 2);
	free(log);
	log = tkm_testenv_read_file(tkm_testenv_log_path(env), &log_len);
	CHECK(log != NULL);
	/* The search looks where it should: the log has its request lines. */
	CHECK(log != NULL && strstr(log, "auth.login") != NULL);
	/* A dual-control call's request line says it is pending, not done. */
	CHECK(log != NULL && strstr(log, "method=operator.create") != NULL &&
	      strstr(log, "outcome=pending") != NULL);
	if (log != NULL) {
		CHECK_EQ_INT(secrets_in("tkmd's log", (const uint8_t *)log, log_len, false), 0);
	}
	free(log);

	audit_walk(aud, &raw, &raw_len, NULL);
	CHECK(find_bytes(raw, raw_len, "auth.change_password", 20));
	CHECK_EQ_INT(secrets_in("the audit records", raw, raw_len, false), 0);
	free(raw);
	raw = NULL;
	raw_len = 0;
	approvals_walk(adm, &raw, &raw_len);
	CHECK(find_bytes(raw, raw_len, "operator.create", 15));
	CHECK_EQ_INT(secrets_in("the approval list", raw, raw_len, false), 0);
	free(raw);

	/* Offline: the chain holds after all of the above, and the file has no secrets. */
	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
	fmt(path, sizeof(path), "%s/tkm.db.audit-key.pub", tkm_testenv_dir(env));
	pub = tkm_testenv_read_file(path, NULL);
	CHECK(pub != NULL &&
	      sodium_hex2bin(pk, sizeof(pk), pub, 2 * TKM_AUDIT_PK_LEN, NULL, &bin_len, NULL) ==
	          0 &&
	      bin_len == sizeof(pk));
	free(pub);
	fmt(path, sizeof(path), "%s/tkm.db", tkm_testenv_dir(env));
	CHECK_EQ_INT(tkm_audit_verify_file(path, pk, &rep, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	if (rep.fault != TKM_AUDIT_FAULT_NONE) {
		fprintf(stderr, "audit chain: %s (seq %llu)\n", rep.what,
		        (unsigned long long)rep.bad_seq);
	}
	file_has_no_secrets("tkm.db");
	file_has_no_secrets("tkm.db-wal");
	log = tkm_testenv_read_file(tkm_testenv_log_path(env), &log_len);
	if (log != NULL) {
		CHECK_EQ_INT(
		    secrets_in("tkmd's log after stop", (const uint8_t *)log, log_len, false), 0);
	}
	free(log);
}

/* ---- Environment B: the clocks ---- */

static void test_clocks(void)
{
	uint8_t tok_idle[TKM_SESSION_TOKEN_LEN], tok_life[TKM_SESSION_TOKEN_LEN];
	tkm_client *adm = NULL, *off1 = NULL, *idle = NULL, *life = NULL, *aud = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	char state[32], buf[64];
	uint64_t t0, id;
	const tkm_cbor_val *a;
	bool seen = false;

	adm = first_login("admin", "Clock-Adm-Pw-5511", false);
	off1 = first_login("officer1", "Clock-Off1-Pw-6622", false);
	if (adm == NULL || off1 == NULL) {
		goto out;
	}
	CHECK(expect("login", login("admin", "Clock-Adm-Pw-5511", &life, tok_life, NULL, &st), &st,
	             TKM_OK));
	CHECK(expect("login", login("officer1", "Clock-Off1-Pw-6622", &idle, tok_idle, NULL, &st),
	             &st, TKM_OK));
	t0 = tkm_testenv_now_us();
	/* A request made now expires after approval_ttl_seconds = 1. */
	CHECK(expect("operator.create",
	             call(adm, "operator.create", p_create("ttl-late", "auditor", NULL), &doc, &st),
	             &st, TKM_OK));
	id = pending_id(doc);
	tkm_cbor_doc_free(doc);

	/* t = 1.0 s: both sessions fine (idle limit 2 s, lifetime 4 s). */
	sleep_until(t0, 1000);
	CHECK(expect("life 1.0 s", call(life, "sys.info", NULL, NULL, &st), &st, TKM_OK));

	/* t = 1.5 s: the request has expired; an approval cannot run it. */
	sleep_until(t0, 1500);
	tkm_client_close(off1);
	CHECK_EQ_INT(tkm_testenv_login(env, "officer1", &off1), TKM_OK);
	CHECK(expect("approve expired", approve(off1, id, &doc, state, sizeof(state), &st), &st,
	             TKM_E_FAILED_PRECONDITION));
	CHECK(has_words(st.message, "expired", NULL));
	CHECK(expect("approval.list", call(off1, "approval.list", NULL, &doc, &st), &st, TKM_OK));
	for (a = tkm_cbor_first(res_get(doc, "approvals")); a != NULL; a = tkm_cbor_next(a)) {
		uint64_t v = 0;

		if (tkm_cbor_get_uint(tkm_cbor_map_get(a, "id"), &v) && v == id) {
			seen = true;
			CHECK_STR(text_of(tkm_cbor_map_get(a, "state"), buf, sizeof(buf)),
			          "expired");
		}
	}
	CHECK(seen);
	tkm_cbor_doc_free(doc);

	/* t = 2.0 s */
	sleep_until(t0, 2000);
	CHECK(expect("life 2.0 s", call(life, "sys.info", NULL, NULL, &st), &st, TKM_OK));
	/* t = 2.6 s: the untouched session has been idle for more than 2 s. */
	sleep_until(t0, 2600);
	CHECK(expect("idle token", call(idle, "sys.info", NULL, NULL, &st), &st,
	             TKM_E_UNAUTHENTICATED));
	CHECK(has_words(st.message, "idle", NULL));
	/* t = 3.2 s */
	sleep_until(t0, 3200);
	CHECK(expect("life 3.2 s", call(life, "sys.info", NULL, NULL, &st), &st, TKM_OK));
	/* t = 4.4 s: never idle, but past session_lifetime_seconds = 4. */
	sleep_until(t0, 4400);
	CHECK(expect("lifetime token", call(life, "sys.info", NULL, NULL, &st), &st,
	             TKM_E_UNAUTHENTICATED));
	CHECK(has_words(st.message, "lifetime", NULL));

	/* The request never ran. */
	tkm_client_close(adm);
	CHECK_EQ_INT(tkm_testenv_login(env, "admin", &adm), TKM_OK);
	CHECK(expect("operator.show of an expired create",
	             call(adm, "operator.show", p_text(1, "username", "ttl-late"), NULL, &st), &st,
	             TKM_E_NOT_FOUND));

	/* Nothing of this env's secrets in its log or audit records either. */
	CHECK_EQ_INT(tkm_testenv_add_operator(env, "admin", "officer1", "mx-auditor", "auditor"),
	             TKM_OK);
	CHECK_EQ_INT(tkm_testenv_login(env, "mx-auditor", &aud), TKM_OK);
	tkm_client_close(adm);
	adm = NULL;
	CHECK_EQ_INT(tkm_testenv_login(env, "admin", &adm), TKM_OK);
	if (aud != NULL && adm != NULL) {
		test_no_secrets(aud, adm);
	}
out:
	tkm_client_close(adm);
	tkm_client_close(off1);
	tkm_client_close(idle);
	tkm_client_close(life);
	tkm_client_close(aud);
}

/* Start env with extra (the auth group) and the log at debug level. */
static bool start_env(const char *extra)
{
	static const char info[] = "log_level = \"info\";";
	static const char debug[] = "log_level = \"debug\";";
	char *config = tkm_testenv_config(env, NULL, extra), *at, *text = NULL;
	size_t len, head;
	bool ok = false;

	if (config != NULL && (at = strstr(config, info)) != NULL) {
		len = strlen(config);
		head = (size_t)(at - config);
		if ((text = malloc(len + sizeof(debug))) != NULL) {
			memcpy(text, config, head);
			memcpy(text + head, debug, sizeof(debug) - 1);
			memcpy(text + head + sizeof(debug) - 1, at + sizeof(info) - 1,
			       len - head - (sizeof(info) - 1) + 1);
			ok = tkm_testenv_start_config(env, text) == TKM_OK;
		}
	}
	free(text);
	free(config);
	return ok;
}

int main(void)
{
	char why[256];
	tkm_client *adm = NULL, *off1 = NULL, *off2 = NULL, *aud = NULL, *cust = NULL;
	uint64_t t_start = tkm_testenv_now_us();

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0) {
		return 1;
	}
	fmt(source, sizeof(source), "ipc:pid=%ld", (long)getpid());
	if (tkm_policy_load(TKM_DEFAULT_POLICY, &pol, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "%s\n", why);
		return 1;
	}

	/* Environment A: most of it, with the log at debug level. */
	if (tkm_testenv_new(&env) != TKM_OK ||
	    !start_env("auth = { argon2_opslimit = 1; argon2_memlimit_kib = 8192;\n"
	               "  max_failed_logins = 5; lockout_seconds = 2;\n"
	               "  signature_window_seconds = 30; };")) {
		tkm_testenv_free(env);
		tkm_policy_free(pol);
		return 1;
	}
	adm = first_login("admin", "Adm-Secret-Pw-4471", true);
	off1 = first_login("officer1", "Off1-Secret-Pw-5582", false);
	off2 = first_login("officer2", "Off2-Secret-Pw-6693", false);
	if (adm != NULL && off1 != NULL && off2 != NULL) {
		test_matrix(adm, off1);
		CHECK_EQ_INT(tkm_testenv_login(env, "mx-auditor", &aud), TKM_OK);
		CHECK_EQ_INT(tkm_testenv_login(env, "mx-key-custodian", &cust), TKM_OK);
		if (aud != NULL && cust != NULL) {
			test_lockout(adm, off1, aud);
			test_tokens_logout_forged("lock1", "Lk-Good-Pass-9931");
			test_device_signatures(adm);
			test_dual_control(adm, off1, off2, cust, aud);
			test_passwords(adm, off1);
			test_separation(adm, off1);
			test_no_secrets(aud, adm);
		}
	}
	tkm_client_close(adm);
	tkm_client_close(off1);
	tkm_client_close(off2);
	tkm_client_close(aud);
	tkm_client_close(cust);
	tkm_testenv_free(env);
	printf("environment A: %.1f s\n", (double)(tkm_testenv_now_us() - t_start) / 1e6);

	/* Environment B: idle and lifetime clocks, and the approval TTL. */
	env = NULL;
	if (tkm_testenv_new(&env) == TKM_OK &&
	    start_env("auth = { argon2_opslimit = 1; argon2_memlimit_kib = 8192;\n"
	              "  session_idle_seconds = 2; session_lifetime_seconds = 4;\n"
	              "  approval_ttl_seconds = 1; };")) {
		test_clocks();
	} else {
		CHECK(false);
	}
	tkm_testenv_free(env);
	tkm_policy_free(pol);
	printf("total: %.1f s\n", (double)(tkm_testenv_now_us() - t_start) / 1e6);
	return tkm_test_report("service_auth");
}
