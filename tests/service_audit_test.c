/*
 * service_audit_test.c - tkmd's audit log and backup, driven through libtkm
 * and tkmctl against a real tkmd-test, SoftHSM2 token and SQLite file.
 *
 * Covers: tkmd --init (once only, public key file), the pairing check of
 * database and token, audit.list paging by cursor, audit.checkpoint,
 * audit.verify, store.backup (an online copy that verifies offline and whose
 * tampering is caught), audit.archive twice (each archive and the live
 * chain verify across the cuts), fail-closed audit records at the RPC level
 * (a trigger makes every audit insert fail: the call fails and leaves
 * nothing), and a restart that continues the chain.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "store_fixture.h"
#include "tkm_audit.h"
#include "tkm_cbor.h"
#include "tkm_test.h"
#include "tkm_testenv.h"

static tkm_testenv *env;
static tkm_client *cli; /* the auditor: reads the log */
static tkm_client *adm; /* the admin: checkpoints, backups, archives */

/* Log in (again, after a restart) as the auditor and the admin. */
static bool log_in(void)
{
	tkm_client_close(cli);
	tkm_client_close(adm);
	cli = NULL;
	adm = NULL;
	return tkm_testenv_login(env, "auditor1", &cli) == TKM_OK &&
	       tkm_testenv_login(env, "admin", &adm) == TKM_OK;
}

/* Reading the log is the auditor's; the rest the admin's (policy/default.policy). */
static tkm_client *client_for(const char *method)
{
	return strcmp(method, "audit.list") == 0 || strcmp(method, "audit.verify") == 0 ||
	               strcmp(method, "audit.public_key") == 0
	           ? cli
	           : adm;
}
static uint8_t pk[TKM_AUDIT_PK_LEN];

static void path_in(const tkm_testenv *e, char *buf, size_t len, const char *name)
{
	int r = snprintf(buf, len, "%s/%s", tkm_testenv_dir(e), name);

	if (r < 0 || (size_t)r >= len) {
		abort();
	}
}

/* Call method with params (NULL: {}); on success *doc holds the decoded result. */
static tkm_err call(const char *method, tkm_cbor_w *params, tkm_cbor_doc **doc, tkm_status *st)
{
	const uint8_t *p = NULL;
	uint8_t *res = NULL;
	size_t n = 0, rlen = 0;
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_err err;

	*doc = NULL;
	if (params != NULL && tkm_cbor_w_finish(params, &p, &n) != TKM_OK) {
		return TKM_E_INTERNAL;
	}
	err = tkm_call_raw(client_for(method), method, p, n, 30000, st, &res, &rlen);
	if (err == TKM_OK) {
		err = tkm_cbor_decode(res, rlen, &lim, doc, NULL, 0);
		tkm_free(res, rlen);
	}
	return err;
}

static uint64_t get_u(const tkm_cbor_doc *doc, const char *key)
{
	uint64_t v = UINT64_MAX;

	if (doc == NULL || !tkm_cbor_get_uint(tkm_cbor_map_get(tkm_cbor_root(doc), key), &v)) {
		fprintf(stderr, "result has no uint '%s'\n", key);
	}
	return v;
}

static tkm_cbor_w *path_params(const char *path)
{
	tkm_cbor_w *w = NULL;

	if (tkm_cbor_w_new(8192, &w) != TKM_OK) {
		abort();
	}
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "path");
	tkm_cbor_put_cstr(w, path);
	return w;
}

static bool read_pubkey_file(const char *path, uint8_t out[static TKM_AUDIT_PK_LEN])
{
	char *text = tkm_testenv_read_file(path, NULL);
	size_t bin_len = 0;
	bool ok;

	ok = text != NULL && strlen(text) == 2 * TKM_AUDIT_PK_LEN + 1 &&
	     text[2 * TKM_AUDIT_PK_LEN] == '\n' &&
	     sodium_hex2bin(out, TKM_AUDIT_PK_LEN, text, 2 * TKM_AUDIT_PK_LEN, NULL, &bin_len,
	                    NULL) == 0 &&
	     bin_len == TKM_AUDIT_PK_LEN;
	free(text);
	return ok;
}

static void verify_file_ok(const char *path, uint64_t want_first)
{
	tkm_audit_report rep;
	char why[256] = "";

	CHECK_EQ_INT(tkm_audit_verify_file(path, pk, &rep, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK(rep.first_seq == want_first);
	if (rep.fault != TKM_AUDIT_FAULT_NONE || rep.first_seq != want_first) {
		fprintf(stderr, "%s: %s (first %llu, want %llu) %s\n", path, rep.what,
		        (unsigned long long)rep.first_seq, (unsigned long long)want_first, why);
	}
}

/* The service's own verdict on its chain. */
static void verify_live(uint64_t want_first)
{
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	bool ok = false;

	CHECK_EQ_INT(call("audit.verify", NULL, &doc, &st), TKM_OK);
	CHECK(doc != NULL && tkm_cbor_get_bool(tkm_cbor_map_get(tkm_cbor_root(doc), "ok"), &ok) &&
	      ok);
	CHECK(get_u(doc, "first_seq") == want_first);
	tkm_cbor_doc_free(doc);
}

/* Every record through audit.list pages of limit, following the cursor; returns how many. */
static uint64_t list_all(size_t limit, uint64_t *first, uint64_t *last, size_t *pages)
{
	uint64_t after = 0, n = 0, expect = 0;

	*first = 0;
	*last = 0;
	*pages = 0;
	for (;;) {
		tkm_cbor_doc *doc = NULL;
		tkm_cbor_w *w = NULL;
		tkm_status st;
		const tkm_cbor_val *recs, *next, *r;
		uint64_t cursor = 0;

		if (tkm_cbor_w_new(64, &w) != TKM_OK) {
			abort();
		}
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "after");
		tkm_cbor_put_uint(w, after);
		tkm_cbor_put_cstr(w, "limit");
		tkm_cbor_put_uint(w, limit);
		CHECK_EQ_INT(call("audit.list", w, &doc, &st), TKM_OK);
		tkm_cbor_w_free(w);
		if (doc == NULL) {
			return n;
		}
		(*pages)++;
		recs = tkm_cbor_map_get(tkm_cbor_root(doc), "records");
		next = tkm_cbor_map_get(tkm_cbor_root(doc), "next");
		CHECK(recs != NULL && tkm_cbor_count(recs) <= limit);
		for (r = tkm_cbor_first(recs); r != NULL; r = tkm_cbor_next(r)) {
			uint64_t seq = 0;

			CHECK(tkm_cbor_get_uint(tkm_cbor_map_get(r, "seq"), &seq));
			CHECK(expect == 0 || seq == expect);
			if (*first == 0) {
				*first = seq;
			}
			*last = seq;
			expect = seq + 1;
			n++;
		}
		if (next == NULL || !tkm_cbor_get_uint(next, &cursor)) {
			tkm_cbor_doc_free(doc);
			return n;
		}
		CHECK(cursor == *last);
		after = cursor;
		tkm_cbor_doc_free(doc);
	}
}

/* A method's records: how many with this outcome. */
static size_t count_method(const char *method, const char *outcome)
{
	uint64_t after = 0;
	size_t n = 0;

	for (;;) {
		tkm_cbor_doc *doc = NULL;
		tkm_cbor_w *w = NULL;
		tkm_status st;
		const tkm_cbor_val *r;
		uint64_t cursor = 0;

		if (tkm_cbor_w_new(64, &w) != TKM_OK) {
			abort();
		}
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "after");
		tkm_cbor_put_uint(w, after);
		tkm_cbor_put_cstr(w, "limit");
		tkm_cbor_put_uint(w, 1000);
		if (call("audit.list", w, &doc, &st) != TKM_OK) {
			tkm_cbor_w_free(w);
			return n;
		}
		tkm_cbor_w_free(w);
		for (r = tkm_cbor_first(tkm_cbor_map_get(tkm_cbor_root(doc), "records")); r != NULL;
		     r = tkm_cbor_next(r)) {
			if (tkm_cbor_text_eq(tkm_cbor_map_get(r, "method"), method) &&
			    tkm_cbor_text_eq(tkm_cbor_map_get(r, "outcome"), outcome)) {
				n++;
			}
		}
		if (!tkm_cbor_get_uint(tkm_cbor_map_get(tkm_cbor_root(doc), "next"), &cursor)) {
			tkm_cbor_doc_free(doc);
			return n;
		}
		after = cursor;
		tkm_cbor_doc_free(doc);
	}
}

static void test_init_and_pubkey(void)
{
	char pubfile[400], out[400], *text;
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	const uint8_t *p = NULL;
	size_t n = 0;
	char *config;
	int status = -1;

	path_in(env, pubfile, sizeof(pubfile), "tkm.db.audit-key.pub");
	CHECK(read_pubkey_file(pubfile, pk));
	path_in(env, out, sizeof(out), "init.out");
	text = tkm_testenv_read_file(out, NULL);
	CHECK(text != NULL && strstr(text, "audit signing key") != NULL);
	free(text);

	/* The file holds the key the HSM signs with. */
	CHECK_EQ_INT(call("audit.public_key", NULL, &doc, &st), TKM_OK);
	CHECK(doc != NULL &&
	      tkm_cbor_get_bytes(tkm_cbor_map_get(tkm_cbor_root(doc), "public_key"), &p, &n) &&
	      n == TKM_AUDIT_PK_LEN && sodium_memcmp(p, pk, n) == 0);
	tkm_cbor_doc_free(doc);

	/* Init runs once: a second run is refused with exit 2 and changes nothing. */
	config = tkm_testenv_config(env, NULL, NULL);
	CHECK(config != NULL);
	CHECK_EQ_INT(tkm_testenv_init(env, config, &status), TKM_OK);
	CHECK_EQ_INT(status, 2);
	text = tkm_testenv_read_file(tkm_testenv_log_path(env), NULL);
	CHECK(text != NULL && strstr(text, "init runs once") != NULL);
	free(text);
	free(config);
	CHECK(count_method("system.init", "ok") == 1);
	CHECK(count_method("system.start", "ok") == 1);
}

static void test_list_and_checkpoint(void)
{
	uint64_t first = 0, last = 0, n;
	size_t pages = 0;
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w = NULL;
	tkm_status st;

	for (int i = 0; i < 7; i++) {
		CHECK_EQ_INT(call("audit.checkpoint", NULL, &doc, &st), TKM_OK);
		tkm_cbor_doc_free(doc);
	}
	n = list_all(3, &first, &last, &pages);
	CHECK(first == 1);
	CHECK(n == last);
	CHECK(n >= 9);
	CHECK(pages == (size_t)((n + 2) / 3) || pages == (size_t)((n + 2) / 3) + 1);
	CHECK(count_method("audit.checkpoint", "ok") == 7);
	verify_live(1);

	/* Bad params are refused and leave one error record. */
	CHECK(tkm_cbor_w_new(64, &w) == TKM_OK);
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "limit");
	tkm_cbor_put_uint(w, 5000);
	CHECK_EQ_INT(call("audit.list", w, &doc, &st), TKM_E_BAD_REQUEST);
	tkm_cbor_w_free(w);
	CHECK(tkm_cbor_w_new(64, &w) == TKM_OK);
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "bogus");
	tkm_cbor_put_uint(w, 1);
	CHECK_EQ_INT(call("audit.checkpoint", w, &doc, &st), TKM_E_BAD_REQUEST);
	tkm_cbor_w_free(w);
	CHECK(count_method("audit.checkpoint", "error") == 1);
}

static void test_backup(void)
{
	char backup[400], tampered[400], sql[128];
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w;
	tkm_audit_report rep;
	tkm_status st;
	struct stat sb;
	char why[256];

	path_in(env, backup, sizeof(backup), "backup.db");
	w = path_params(backup);
	CHECK_EQ_INT(call("store.backup", w, &doc, &st), TKM_OK);
	tkm_cbor_w_free(w);
	CHECK(get_u(doc, "bytes") > 0);
	/* The service signs up to the copy's last record first: no unsigned tail. */
	CHECK(get_u(doc, "checkpoint_seq") == get_u(doc, "last_seq"));
	tkm_cbor_doc_free(doc);
	CHECK(stat(backup, &sb) == 0 && (sb.st_mode & 0077) == 0);
	verify_file_ok(backup, 1);
	CHECK_EQ_INT(tkm_audit_verify_file(backup, pk, &rep, why, sizeof(why)), TKM_OK);
	CHECK(rep.unsigned_tail == 0);
	CHECK(count_method("store.backup", "ok") == 1);

	/* A changed record in a copy of the backup is named by its seq. */
	path_in(env, tampered, sizeof(tampered), "tampered.db");
	CHECK(tkm_storefix_copy_db(backup, tampered) == 0);
	CHECK(snprintf(sql, sizeof(sql), "UPDATE audit SET target = 'x' WHERE seq = 3") > 0);
	CHECK(tkm_storefix_run_sql(tampered, sql) == 0);
	CHECK_EQ_INT(tkm_audit_verify_file(tampered, pk, &rep, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_CHANGED);
	CHECK(rep.bad_seq == 3);

	/* Never over an existing file, never a relative path. */
	w = path_params(backup);
	CHECK_EQ_INT(call("store.backup", w, &doc, &st), TKM_E_ALREADY_EXISTS);
	tkm_cbor_w_free(w);
	w = path_params("relative.db");
	CHECK_EQ_INT(call("store.backup", w, &doc, &st), TKM_E_BAD_REQUEST);
	tkm_cbor_w_free(w);
	CHECK(count_method("store.backup", "error") == 2);
}

static void test_archive(void)
{
	char a1[400], a2[400], a3[400];
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w;
	tkm_status st;
	uint64_t through1, through2, first = 0, last = 0;
	size_t pages = 0;

	path_in(env, a1, sizeof(a1), "archive-1.db");
	w = path_params(a1);
	CHECK_EQ_INT(call("audit.archive", w, &doc, &st), TKM_OK);
	tkm_cbor_w_free(w);
	through1 = get_u(doc, "checkpoint_seq");
	CHECK(get_u(doc, "first_seq") == 1 && get_u(doc, "last_seq") == through1);
	tkm_cbor_doc_free(doc);
	verify_file_ok(a1, 1);
	verify_live(through1 + 1);
	(void)list_all(1000, &first, &last, &pages);
	CHECK(first == through1 + 1);

	/* Nothing older than a cut-off before the first record: nothing to take, no file. */
	path_in(env, a3, sizeof(a3), "archive-none.db");
	w = path_params(a3);
	tkm_cbor_w_free(w);
	CHECK(tkm_cbor_w_new(8192, &w) == TKM_OK);
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "path");
	tkm_cbor_put_cstr(w, a3);
	tkm_cbor_put_cstr(w, "before_ms");
	tkm_cbor_put_uint(w, 1);
	CHECK_EQ_INT(call("audit.archive", w, &doc, &st), TKM_E_FAILED_PRECONDITION);
	tkm_cbor_w_free(w);
	CHECK(access(a3, F_OK) != 0);

	/* More records, signed; the second archive starts where the first ended. */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(call("audit.checkpoint", NULL, &doc, &st), TKM_OK);
		tkm_cbor_doc_free(doc);
	}
	tkm_testenv_sleep_ms(5);
	path_in(env, a2, sizeof(a2), "archive-2.db");
	w = path_params(a2);
	CHECK_EQ_INT(call("audit.archive", w, &doc, &st), TKM_OK);
	tkm_cbor_w_free(w);
	through2 = get_u(doc, "checkpoint_seq");
	CHECK(get_u(doc, "first_seq") == through1 + 1);
	CHECK(through2 > through1);
	tkm_cbor_doc_free(doc);
	verify_file_ok(a2, through1 + 1);
	verify_live(through2 + 1);
	/* The second cut took the first cut's record along: one left in the live chain. */
	CHECK(count_method("audit.archive", "ok") == 1);
}

/* Every audit insert fails: each audited call fails and leaves nothing behind. */
static void test_fail_closed(void)
{
	char db[400], backup[400];
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w;
	tkm_status st;
	uint64_t before, after, first = 0;
	size_t pages = 0;

	path_in(env, db, sizeof(db), "tkm.db");
	before = list_all(1000, &first, &before, &pages);
	(void)before;
	(void)list_all(1000, &first, &before, &pages);
	CHECK(tkm_storefix_run_sql(db,
	                           "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN "
	                           "SELECT RAISE(ABORT, 'audit disabled by the test'); END") == 0);
	CHECK(call("audit.checkpoint", NULL, &doc, &st) != TKM_OK);
	path_in(env, backup, sizeof(backup), "backup-unaudited.db");
	w = path_params(backup);
	CHECK(call("store.backup", w, &doc, &st) != TKM_OK);
	tkm_cbor_w_free(w);
	/* No record of a copy means no copy. */
	CHECK(access(backup, F_OK) != 0);
	CHECK(tkm_storefix_run_sql(db, "DROP TRIGGER no_audit") == 0);
	(void)list_all(1000, &first, &after, &pages);
	CHECK(after == before);
	/* Service and chain carry on. */
	CHECK_EQ_INT(call("audit.checkpoint", NULL, &doc, &st), TKM_OK);
	tkm_cbor_doc_free(doc);
	(void)list_all(1000, &first, &after, &pages);
	CHECK(after == before + 1);
}

/* Run tkmctl with args against the env's IPC URL; returns its exit status, stdout in out. */
static int tkmctl(const char *out, const char *const *args, size_t nargs)
{
	const char *argv[16];
	size_t n = 0;
	int status = -1;

	argv[n++] = TKM_TKMCTL_PATH;
	argv[n++] = "--url";
	argv[n++] = tkm_testenv_ipc_url(env);
	for (size_t i = 0; i < nargs && n + 1 < sizeof(argv) / sizeof(argv[0]); i++) {
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	if (tkm_testenv_run(env, argv, out, NULL, 30000, &status) != TKM_OK) {
		return -1;
	}
	return status;
}

/* The operator's path: tkmctl backup, then tkmctl audit verify --db on the copy. */
static void test_tkmctl(void)
{
	char backup[400], pubfile[400], out[400], session[400], *text;
	const char *backup_args[] = {"backup", backup};
	const char *verify_args[] = {"audit", "verify", "--db", backup, "--pubkey", pubfile};
	const char *live_args[] = {"audit", "verify"};
	const char *export_args[] = {"audit", "export", "--since", "1"};
	size_t lines = 0;

	path_in(env, backup, sizeof(backup), "tkmctl-backup.db");
	path_in(env, pubfile, sizeof(pubfile), "tkm.db.audit-key.pub");
	path_in(env, out, sizeof(out), "tkmctl.out");
	path_in(env, session, sizeof(session), "tkmctl.session");
	/* Backups are the admin's; reading the log the auditor's. */
	CHECK_EQ_INT(tkm_testenv_session_file(env, "admin", session), TKM_OK);
	CHECK_EQ_INT(tkmctl(out, backup_args, 2), 0);
	CHECK_EQ_INT(tkmctl(out, live_args, 2), 1);
	CHECK_EQ_INT(tkmctl(out, verify_args, 6), 0);
	text = tkm_testenv_read_file(out, NULL);
	CHECK(text != NULL && strstr(text, "audit chain ok") != NULL);
	free(text);
	CHECK_EQ_INT(tkm_testenv_session_file(env, "auditor1", session), TKM_OK);
	CHECK_EQ_INT(tkmctl(out, live_args, 2), 0);
	CHECK_EQ_INT(tkmctl(out, export_args, 4), 0);
	text = tkm_testenv_read_file(out, NULL);
	CHECK(text != NULL && strncmp(text, "{\"seq\":1,", 9) == 0);
	for (const char *p = text; p != NULL && *p != '\0'; p++) {
		lines += *p == '\n';
	}
	CHECK(lines >= 10);
	free(text);
	/* A tampered copy fails the same command with exit 1. */
	CHECK(tkm_storefix_run_sql(backup, "UPDATE audit SET outcome = 'ok' WHERE seq = 2") == 0);
	CHECK(tkm_storefix_run_sql(backup, "UPDATE audit SET method = 'x' WHERE seq = 2") == 0);
	CHECK_EQ_INT(tkmctl(out, verify_args, 6), 1);
}

static void test_restart(uint64_t want_first)
{
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	tkm_audit_report rep;
	char db[400], why[256];

	tkm_client_close(cli);
	tkm_client_close(adm);
	cli = NULL;
	adm = NULL;
	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
	/* A clean stop leaves system.stop signed. */
	path_in(env, db, sizeof(db), "tkm.db");
	CHECK_EQ_INT(tkm_audit_verify_file(db, pk, &rep, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK(rep.unsigned_tail == 0);
	CHECK_EQ_INT(tkm_testenv_start(env, NULL, "audit = { retention_days = 0; };"), TKM_OK);
	/* Idle clocks live in tkmd's memory: after a restart everyone logs in again. */
	CHECK(log_in());
	CHECK_EQ_INT(call("audit.verify", NULL, &doc, &st), TKM_OK);
	tkm_cbor_doc_free(doc);
	verify_live(want_first);
	CHECK(count_method("system.stop", "ok") == 1);
}

/* A database paired with another token's audit key is refused at start. */
static void test_wrong_token(void)
{
	tkm_testenv *other = NULL;
	char src[400], dst[400], *config, *log;
	int status = -1;

	CHECK_EQ_INT(tkm_testenv_new(&other), TKM_OK);
	if (other == NULL) {
		return;
	}
	path_in(env, src, sizeof(src), "backup.db");
	path_in(other, dst, sizeof(dst), "tkm.db");
	CHECK(tkm_storefix_copy_db(src, dst) == 0);
	/* other's token is empty, so it has no audit key at all... */
	config = tkm_testenv_config(other, NULL, NULL);
	CHECK(config != NULL);
	CHECK_EQ_INT(tkm_testenv_run_config(other, config, 20000, &status), TKM_OK);
	CHECK_EQ_INT(status, 2);
	log = tkm_testenv_read_file(tkm_testenv_log_path(other), NULL);
	CHECK(log != NULL && strstr(log, "no tkm audit key") != NULL);
	free(log);
	/* ...and once it has its own keys, they are not this database's. */
	CHECK(unlink(dst) == 0);
	CHECK_EQ_INT(tkm_testenv_init(other, config, &status), TKM_OK);
	CHECK_EQ_INT(status, 0);
	CHECK(unlink(dst) == 0);
	CHECK(tkm_storefix_copy_db(src, dst) == 0);
	CHECK_EQ_INT(tkm_testenv_run_config(other, config, 20000, &status), TKM_OK);
	CHECK_EQ_INT(status, 2);
	log = tkm_testenv_read_file(tkm_testenv_log_path(other), NULL);
	CHECK(log != NULL && strstr(log, "do not belong together") != NULL);
	free(log);
	free(config);
	tkm_testenv_free(other);
}

int main(void)
{
	uint64_t first = 0, last = 0;
	size_t pages = 0;

	if (sodium_init() < 0 || tkm_testenv_new(&env) != TKM_OK) {
		return 1;
	}
	/* Retention 0: every signed record may be archived, so the test need not wait years. */
	if (tkm_testenv_start(env, NULL,
	                      "audit = { retention_days = 0; checkpoint_every = 4; };") != TKM_OK ||
	    tkm_testenv_add_operator(env, "admin", "officer1", "auditor1", "auditor") != TKM_OK ||
	    !log_in()) {
		tkm_testenv_free(env);
		return 1;
	}
	test_init_and_pubkey();
	test_list_and_checkpoint();
	test_backup();
	test_fail_closed();
	test_tkmctl();
	test_archive();
	(void)list_all(1000, &first, &last, &pages);
	test_restart(first);
	test_wrong_token();
	tkm_client_close(cli);
	tkm_client_close(adm);
	tkm_testenv_free(env);
	return tkm_test_report("service_audit");
}
