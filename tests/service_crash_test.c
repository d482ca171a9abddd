/*
 * service_crash_test.c - tkmd under SIGKILL while terminals are imported,
 * added and enrolled: nothing acknowledged is lost, no change is without its
 * audit record, and the database and the audit chain still verify.
 *
 * ROUNDS times: THREADS threads of this process, each with its own libtkm
 * clients (officer1's session, and an anonymous one for the terminal side),
 * run terminal.import batches of IMPORT_ROWS new serials, terminal.add, and
 * terminal.add + terminal.enroll_code + terminal.enroll + a signed
 * terminal.checkin that reports a new firmware version. Every call that got
 * an OK reply is recorded with what it made. After DELAY_MIN_MS plus up to
 * DELAY_SPAN_MS, tkmd is killed with SIGKILL in the middle of that load; a
 * call in flight then gets no reply and counts as not acknowledged, and each
 * thread stops at its first such call. An error reply is a refusal: this
 * load makes only calls that must succeed, so the test fails on any. While tkmd is
 * down the database file is checked as tkmd left it: PRAGMA integrity_check,
 * every acknowledged terminal with its serial, every acknowledged enrollment
 * active with its bound key, every acknowledged check-in's version, an audit
 * record for every added and every enrolled terminal, the chain with
 * tkm_audit_verify_file and with the real `tkmctl audit verify --db`. Then
 * tkmd restarts on the same files and officer1 logs in again.
 *
 * At the end tkmd answers for the acknowledged terminals itself, stops
 * cleanly (which signs the tail of the chain), and a copy of the database
 * with one acknowledged terminal deleted and one with an audit record altered
 * must each fail the same check, so the check is known to bite.
 *
 * SIGKILL leaves the page cache alone: this proves atomicity across process
 * crashes, not fsync durability across power loss.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "store_fixture.h"
#include "tkm_audit.h"
#include "tkm_cbor.h"
#include "tkm_test.h"
#include "tkm_testenv.h"

#ifndef TKM_TKMCTL_PATH
#error "TKM_TKMCTL_PATH must name the tkmctl binary"
#endif

#define ROUNDS        20
#define THREADS       3
#define IMPORT_ROWS   50
#define CALL_MS       2000
#define DELAY_MIN_MS  100
#define DELAY_SPAN_MS 701 /* so 100..800 ms */
#define SHOW_SAMPLE   300 /* terminals asked of tkmd at the end, besides the enrolled */
#define SERIAL_MAX    24
#define FW_MAX        24
#define EXTRA_CONFIG  "terminals = { last_seen_flush_seconds = 1; };"

#define TKM_STR_(x) #x
#define TKM_STR(x)  TKM_STR_(x)

/* An acknowledged terminal and what was acknowledged about it. */
typedef struct acked_term {
	uint64_t id;
	char serial[SERIAL_MAX];
	bool added;            /* terminal.add (Ingenico); else terminal.import (Verifone) */
	bool enrolled;         /* terminal.enroll answered OK and "active" */
	char firmware[FW_MAX]; /* the version of an acknowledged check-in, or "" */
} acked_term;

typedef struct term_list {
	acked_term *v;
	size_t n, cap;
} term_list;

/* What one load thread does and saw in one round. */
typedef struct worker {
	unsigned round, idx, next;
	const char *dir;
	tkm_client *so;  /* officer1's session */
	tkm_client *dev; /* enrollment (no credentials), then the terminal's key */
	const atomic_bool *stop;
	term_list terms;
	unsigned imports, import_rows, adds, codes, enrolls, checkins;
	unsigned unacked; /* calls that got no reply: the kill */
	unsigned refused; /* calls tkmd answered with an error: none expected */
	char refusal[256];
} worker;

static struct {
	tkm_testenv *env;
	tkm_client *so;
	char db[400], pubfile[400], tool_out[400];
	uint8_t pk[TKM_AUDIT_PK_LEN];
	term_list terms;
	/* figures */
	unsigned kills, imports, import_rows, adds, codes, enrolls, checkins, unacked, refused;
	uint64_t max_tail, unacked_rows, restart_ms, check_ms;
} T;

/* dir/name into buf; the names here always fit. */
static void path_in(char *buf, size_t cap, const char *dir, const char *name)
{
	int r = snprintf(buf, cap, "%s/%s", dir, name);

	if (r < 0 || (size_t)r >= cap) {
		abort();
	}
}

static void list_add(term_list *l, const acked_term *t)
{
	if (l->n == l->cap) {
		size_t cap = l->cap == 0 ? 1024 : l->cap * 2;
		acked_term *v;

		if (cap > SIZE_MAX / sizeof(*v) || (v = realloc(l->v, cap * sizeof(*v))) == NULL) {
			abort();
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *t;
}

static tkm_cbor_w *w_new(void)
{
	tkm_cbor_w *w = NULL;

	if (tkm_cbor_w_new(1 << 20, &w) != TKM_OK) {
		abort();
	}
	return w;
}

static uint64_t u_of(const tkm_cbor_val *map, const char *key)
{
	uint64_t v = 0;

	return tkm_cbor_get_uint(tkm_cbor_map_get(map, key), &v) ? v : 0;
}

/* ---- The load: one thread ---- */

/*
 * Call method with params on c. OK: *doc has the result and the call counts
 * as acknowledged. No reply: not acknowledged. An error reply from tkmd, or
 * a reply that does not decode, is a refusal, which this load never expects.
 */
static bool w_call(worker *w, tkm_client *c, const char *method, tkm_cbor_w *params,
                   tkm_cbor_doc **doc)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	const uint8_t *p = NULL;
	uint8_t *res = NULL;
	size_t n = 0, rlen = 0;
	tkm_status st;
	tkm_err err;

	*doc = NULL;
	if (tkm_cbor_w_finish(params, &p, &n) != TKM_OK) {
		abort();
	}
	memset(&st, 0, sizeof(st));
	err = tkm_call_raw(c, method, p, n, CALL_MS, &st, &res, &rlen);
	if (err == TKM_OK) {
		err = tkm_cbor_decode(res, rlen, &lim, doc, NULL, 0);
		tkm_free(res, rlen);
	} else if (err == TKM_E_TIMEOUT || err == TKM_E_CONNECT || err == TKM_E_CLOSED ||
	           err == TKM_E_IO) {
		w->unacked++;
		return false;
	}
	if (err != TKM_OK && w->refused++ == 0 &&
	    snprintf(w->refusal, sizeof(w->refusal), "%s: %s (%s)", method, tkm_strerror(err),
	             st.message) < 0) {
		w->refusal[0] = '\0';
	}
	return err == TKM_OK;
}

/* A refusal the reply itself shows (an unexpected result). */
static void w_refuse(worker *w, const char *what)
{
	if (w->refused++ == 0 && snprintf(w->refusal, sizeof(w->refusal), "%s", what) < 0) {
		w->refusal[0] = '\0';
	}
}

static void w_serial(worker *w, char serial[static SERIAL_MAX])
{
	int r = snprintf(serial, SERIAL_MAX, "CR%02u-%u-%05u", w->round, w->idx, w->next++);

	if (r < 0 || r >= SERIAL_MAX) {
		abort();
	}
}

/* terminal.import of IMPORT_ROWS new serials: every row must come back inserted. */
static void op_import(worker *w)
{
	char serials[IMPORT_ROWS][SERIAL_MAX];
	tkm_cbor_w *p = w_new();
	tkm_cbor_doc *doc = NULL;
	const tkm_cbor_val *rows, *row;
	size_t i = 0;

	tkm_cbor_put_map(p, 1);
	tkm_cbor_put_cstr(p, "rows");
	tkm_cbor_put_array(p, IMPORT_ROWS);
	for (i = 0; i < IMPORT_ROWS; i++) {
		w_serial(w, serials[i]);
		tkm_cbor_put_map(p, 3);
		tkm_cbor_put_cstr(p, "site");
		tkm_cbor_put_cstr(p, "s-crash");
		tkm_cbor_put_cstr(p, "serial");
		tkm_cbor_put_cstr(p, serials[i]);
		tkm_cbor_put_cstr(p, "manufacturer");
		tkm_cbor_put_cstr(p, "Verifone");
	}
	if (!w_call(w, w->so, "terminal.import", p, &doc)) {
		goto out;
	}
	rows = tkm_cbor_map_get(tkm_cbor_root(doc), "rows");
	if (u_of(tkm_cbor_root(doc), "inserted") != IMPORT_ROWS ||
	    tkm_cbor_count(rows) != IMPORT_ROWS) {
		w_refuse(w, "terminal.import: not every row was inserted");
		goto out;
	}
	w->imports++;
	w->import_rows += IMPORT_ROWS;
	for (i = 0, row = tkm_cbor_first(rows); row != NULL; row = tkm_cbor_next(row), i++) {
		acked_term t;

		memset(&t, 0, sizeof(t));
		t.id = u_of(row, "id");
		memcpy(t.serial, serials[i], sizeof(t.serial));
		if (u_of(row, "index") != i || t.id == 0 ||
		    !tkm_cbor_text_eq(tkm_cbor_map_get(row, "result"), "inserted")) {
			w_refuse(w, "terminal.import: a row's result is not its insert");
			continue;
		}
		list_add(&w->terms, &t);
	}
out:
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(p);
}

/* terminal.add of a new serial; the acknowledged terminal's index in w->terms, or SIZE_MAX. */
static size_t op_add(worker *w)
{
	tkm_cbor_w *p = w_new();
	tkm_cbor_doc *doc = NULL;
	size_t at = SIZE_MAX;
	acked_term t;

	memset(&t, 0, sizeof(t));
	t.added = true;
	w_serial(w, t.serial);
	tkm_cbor_put_map(p, 4);
	tkm_cbor_put_cstr(p, "site");
	tkm_cbor_put_cstr(p, "s-crash");
	tkm_cbor_put_cstr(p, "serial");
	tkm_cbor_put_cstr(p, t.serial);
	tkm_cbor_put_cstr(p, "merchant");
	tkm_cbor_put_cstr(p, "m-crash");
	tkm_cbor_put_cstr(p, "manufacturer");
	tkm_cbor_put_cstr(p, "Ingenico");
	if (w_call(w, w->so, "terminal.add", p, &doc)) {
		t.id = u_of(tkm_cbor_root(doc), "id");
		if (t.id == 0 ||
		    !tkm_cbor_text_eq(tkm_cbor_map_get(tkm_cbor_root(doc), "serial"), t.serial)) {
			w_refuse(w, "terminal.add: the reply is not the new terminal");
		} else {
			w->adds++;
			at = w->terms.n;
			list_add(&w->terms, &t);
		}
	}
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(p);
	return at;
}

/* terminal.enroll_code {"id"}: the code into code[cap]. */
static bool op_code(worker *w, uint64_t id, char *code, size_t cap)
{
	tkm_cbor_w *p = w_new();
	tkm_cbor_doc *doc = NULL;
	const char *s = NULL;
	size_t n = 0;
	bool ok = false;

	tkm_cbor_put_map(p, 1);
	tkm_cbor_put_cstr(p, "id");
	tkm_cbor_put_uint(p, id);
	if (w_call(w, w->so, "terminal.enroll_code", p, &doc)) {
		ok = tkm_cbor_get_text(tkm_cbor_map_get(tkm_cbor_root(doc), "code"), &s, &n) &&
		     n > 0 && n < cap;
		if (ok) {
			memcpy(code, s, n);
			code[n] = '\0';
			w->codes++;
		} else {
			w_refuse(w, "terminal.enroll_code: no code in the reply");
		}
	}
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(p);
	return ok;
}

/* A device key file (client/tkm_devsig.h's format) from a fresh seed; pk and sk get the key. */
static bool device_key_file(const char *path, uint8_t pk[32], uint8_t sk[64])
{
	uint8_t seed[32];
	char b64[64], line[128];
	FILE *f;
	bool ok;

	randombytes_buf(seed, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_bin2base64(b64, sizeof(b64), seed, sizeof(seed), sodium_base64_VARIANT_ORIGINAL);
	ok = snprintf(line, sizeof(line), "tkm-ed25519-sk %s\n", b64) > 0 &&
	     (f = fopen(path, "wx")) != NULL;
	if (ok) {
		ok = fputs(line, f) >= 0;
		ok = fclose(f) == 0 && ok && chmod(path, 0600) == 0;
	}
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(b64, sizeof(b64));
	sodium_memzero(line, sizeof(line));
	return ok;
}

/* terminal.enroll as a terminal sends it: both keys, signed by the new signing key. */
static bool op_enroll(worker *w, const acked_term *t, const char *code, const uint8_t pk[32],
                      const uint8_t sk[64])
{
	uint8_t box_pk[32], box_sk[32], sig[64];
	char norm[64];
	size_t n = 0, msg_len = 0;
	const uint8_t *msg = NULL;
	tkm_cbor_w *m = w_new(), *p = w_new();
	tkm_cbor_doc *doc = NULL;
	bool ok = false;

	for (const char *c = code; *c != '\0' && n + 1 < sizeof(norm); c++) {
		if (*c != '-') {
			norm[n++] = *c >= 'a' && *c <= 'z' ? (char)(*c - 32) : *c;
		}
	}
	norm[n] = '\0';
	crypto_box_keypair(box_pk, box_sk);
	tkm_cbor_put_array(m, 6);
	tkm_cbor_put_cstr(m, "tkm enroll v1");
	tkm_cbor_put_cstr(m, norm);
	tkm_cbor_put_cstr(m, "Ingenico");
	tkm_cbor_put_cstr(m, t->serial);
	tkm_cbor_put_bytes(m, pk, 32);
	tkm_cbor_put_bytes(m, box_pk, 32);
	if (tkm_cbor_w_finish(m, &msg, &msg_len) != TKM_OK) {
		abort();
	}
	crypto_sign_detached(sig, NULL, msg, msg_len, sk);
	/* Canonical key order: shorter keys first, then bytewise. */
	tkm_cbor_put_map(p, 6);
	tkm_cbor_put_cstr(p, "sig");
	tkm_cbor_put_bytes(p, sig, sizeof(sig));
	tkm_cbor_put_cstr(p, "code");
	tkm_cbor_put_cstr(p, code);
	tkm_cbor_put_cstr(p, "box_pk");
	tkm_cbor_put_bytes(p, box_pk, 32);
	tkm_cbor_put_cstr(p, "serial");
	tkm_cbor_put_cstr(p, t->serial);
	tkm_cbor_put_cstr(p, "sign_pk");
	tkm_cbor_put_bytes(p, pk, 32);
	tkm_cbor_put_cstr(p, "manufacturer");
	tkm_cbor_put_cstr(p, "Ingenico");
	if (w_call(w, w->dev, "terminal.enroll", p, &doc)) {
		ok = u_of(tkm_cbor_root(doc), "terminal") == t->id &&
		     tkm_cbor_text_eq(tkm_cbor_map_get(tkm_cbor_root(doc), "state"), "active");
		if (ok) {
			w->enrolls++;
		} else {
			w_refuse(w, "terminal.enroll: the reply is not this terminal, active");
		}
	}
	sodium_memzero(box_sk, sizeof(box_sk));
	sodium_memzero(norm, sizeof(norm));
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(m);
	tkm_cbor_w_free(p);
	return ok;
}

/* terminal.checkin with the terminal's key, reporting a version it never reported: a write. */
static bool op_checkin(worker *w, acked_term *t, const char *key_path)
{
	char principal[48], fw[FW_MAX];
	tkm_cbor_w *p = w_new();
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	bool ok = false;
	int r;

	r = snprintf(principal, sizeof(principal), "terminal-%" PRIu64, t->id);
	if (r < 0 || (size_t)r >= sizeof(principal) ||
	    (r = snprintf(fw, sizeof(fw), "fw-%" PRIu64, t->id)) < 0 || (size_t)r >= sizeof(fw)) {
		abort();
	}
	if (tkm_client_use_device_key(w->dev, principal, key_path, &st) != TKM_OK) {
		w_refuse(w, "tkm_client_use_device_key failed");
		goto out;
	}
	tkm_cbor_put_map(p, 1);
	tkm_cbor_put_cstr(p, "firmware_version");
	tkm_cbor_put_cstr(p, fw);
	if (w_call(w, w->dev, "terminal.checkin", p, &doc)) {
		ok = tkm_cbor_is(tkm_cbor_map_get(tkm_cbor_root(doc), "actions"), TKM_CBOR_ARRAY);
		if (ok) {
			memcpy(t->firmware, fw, sizeof(t->firmware));
			w->checkins++;
		} else {
			w_refuse(w, "terminal.checkin: no actions in the reply");
		}
	}
out:
	tkm_client_clear_credentials(w->dev);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(p);
	return ok;
}

/* Add, code, enroll with a new key, check in: each step only after the last was acknowledged. */
static void op_enrollment(worker *w)
{
	char code[64], key_path[400], name[64];
	uint8_t pk[32], sk[64];
	size_t at = op_add(w);
	int r;

	if (at == SIZE_MAX || atomic_load(w->stop) ||
	    !op_code(w, w->terms.v[at].id, code, sizeof(code)) || atomic_load(w->stop)) {
		return;
	}
	r = snprintf(name, sizeof(name), "k-%u-%u-%u.key", w->round, w->idx, w->next++);
	if (r < 0 || (size_t)r >= sizeof(name)) {
		abort();
	}
	path_in(key_path, sizeof(key_path), w->dir, name);
	if (!device_key_file(key_path, pk, sk)) {
		w_refuse(w, "cannot write a device key file");
		return;
	}
	if (op_enroll(w, &w->terms.v[at], code, pk, sk)) {
		w->terms.v[at].enrolled = true;
		if (!atomic_load(w->stop)) {
			(void)op_checkin(w, &w->terms.v[at], key_path);
		}
	}
	(void)unlink(key_path);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(code, sizeof(code));
}

static void *worker_main(void *arg)
{
	worker *w = arg;

	/* Until the kill: the first call that gets no reply ends the round for this thread. */
	while (!atomic_load(w->stop) && w->unacked == 0) {
		uint32_t op = randombytes_uniform(10);

		if (op < 4) {
			op_import(w);
		} else if (op < 6) {
			(void)op_add(w);
		} else {
			op_enrollment(w);
		}
	}
	return NULL;
}

/* ---- The checks, on the database file ---- */

static long long query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	long long n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		n = sqlite3_column_int64(s, 0);
	} else {
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
	}
	sqlite3_finalize(s);
	return n;
}

/* PRAGMA integrity_check answers one row, "ok", when all is well. */
static bool integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool ok = false;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		ok = t != NULL && strcmp((const char *)t, "ok") == 0 &&
		     sqlite3_step(s) == SQLITE_DONE;
		if (!ok) {
			fprintf(stderr, "integrity_check: %s\n", t != NULL ? (const char *)t : "?");
		}
	}
	sqlite3_finalize(s);
	return ok;
}

static bool col_is(sqlite3_stmt *s, int col, const char *want)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return t != NULL && strcmp((const char *)t, want) == 0;
}

/* Every acknowledged terminal, enrollment and check-in, as the replies said. */
static unsigned check_terms(sqlite3 *db)
{
	sqlite3_stmt *row = NULL, *dev = NULL;
	unsigned bad = 0;

	if (sqlite3_prepare_v2(db,
	                       "SELECT serial, manufacturer, state, firmware_version FROM terminal "
	                       "WHERE id = ?1",
	                       -1, &row, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
	        db,
	        "SELECT 1 FROM terminal_device WHERE terminal_id = ?1 AND principal = "
	        "'terminal-' || ?1",
	        -1, &dev, NULL) != SQLITE_OK) {
		fprintf(stderr, "cannot prepare: %s\n", sqlite3_errmsg(db));
		bad++;
		goto out;
	}
	for (size_t i = 0; i < T.terms.n; i++) {
		const acked_term *t = &T.terms.v[i];
		unsigned was = bad;

		sqlite3_reset(row);
		sqlite3_reset(dev);
		if (sqlite3_bind_int64(row, 1, (sqlite3_int64)t->id) != SQLITE_OK ||
		    sqlite3_bind_int64(dev, 1, (sqlite3_int64)t->id) != SQLITE_OK) {
			bad++;
			break;
		}
		if (sqlite3_step(row) != SQLITE_ROW) {
			bad++;
		} else if (!col_is(row, 0, t->serial) ||
		           !col_is(row, 1, t->added ? "Ingenico" : "Verifone") ||
		           !(t->enrolled
		                 ? col_is(row, 2, "active")
		                 : col_is(row, 2, "registered") || col_is(row, 2, "active")) ||
		           (t->firmware[0] != '\0' && !col_is(row, 3, t->firmware))) {
			bad++;
		} else if (t->enrolled && sqlite3_step(dev) != SQLITE_ROW) {
			bad++;
		}
		if (bad != was && bad <= 10) {
			fprintf(stderr,
			        "acknowledged terminal %" PRIu64 " (%s %s%s%s%s) is missing or "
			        "different\n",
			        t->id, t->added ? "added" : "imported", t->serial,
			        t->enrolled ? ", enrolled" : "", t->firmware[0] != '\0' ? ", " : "",
			        t->firmware);
		}
	}
out:
	sqlite3_finalize(row);
	sqlite3_finalize(dev);
	return bad;
}

/* Each change committed with its record: counts of rows that have none, which must be 0. */
static unsigned check_records(sqlite3 *db)
{
	static const struct {
		const char *what, *sql;
	} q[] = {
	    {"added terminals without a terminal.add record",
	     "SELECT count(*) FROM terminal t WHERE t.manufacturer = 'Ingenico' AND "
	     "('hw:Ingenico/' || t.serial) NOT IN (SELECT target FROM audit WHERE "
	     "method = 'terminal.add' AND outcome = 'ok')"},
	    /* Every import here is IMPORT_ROWS rows: the records bound the imported rows. */
	    {"imported terminals beyond what the terminal.import records cover",
	     "SELECT max(0, (SELECT count(*) FROM terminal WHERE manufacturer = 'Verifone') - "
	     "(SELECT count(*) FROM audit WHERE method = 'terminal.import' AND outcome = 'ok') "
	     "* " TKM_STR(IMPORT_ROWS) ")"},
	    {"enrolled terminals without a terminal.enroll record",
	     "SELECT count(*) FROM terminal t WHERE t.state = 'active' AND "
	     "('hw:' || t.manufacturer || '/' || t.serial) NOT IN (SELECT target FROM audit "
	     "WHERE method = 'terminal.enroll' AND outcome = 'ok')"},
	    {"bound keys without an active terminal",
	     "SELECT count(*) FROM terminal_device d WHERE NOT EXISTS "
	     "(SELECT 1 FROM terminal t WHERE t.id = d.terminal_id AND t.state = 'active')"},
	    {"new versions without a terminal.checkin record",
	     "SELECT count(*) FROM terminal t WHERE t.firmware_version IS NOT NULL AND "
	     "('terminal:' || t.id) NOT IN (SELECT target FROM audit WHERE method = "
	     "'terminal.checkin' AND outcome = 'ok')"},
	};
	unsigned bad = 0;

	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		long long n = query_int(db, q[i].sql);

		if (n != 0) {
			fprintf(stderr, "%lld %s\n", n, q[i].what);
			bad++;
		}
	}
	/* Imports and codes are one record a call: at least one per acknowledged call. */
	if (query_int(db, "SELECT count(*) FROM audit WHERE method = 'terminal.import' AND "
	                  "outcome = 'ok'") < (long long)T.imports ||
	    query_int(db, "SELECT count(*) FROM audit WHERE method = 'terminal.enroll_code' AND "
	                  "outcome = 'ok'") < (long long)T.codes) {
		fprintf(stderr, "fewer import or enroll_code records than acknowledged calls\n");
		bad++;
	}
	return bad;
}

/* The chain offline, with the library and with the real tool. */
static unsigned check_chain(const char *path, long long naudit, uint64_t *tail)
{
	const char *argv[] = {TKM_TKMCTL_PATH, "--json",  "audit", "verify", "--db", path,
	                      "--pubkey",      T.pubfile, NULL};
	tkm_audit_report rep;
	char why[256] = "", want[64];
	char *out = NULL;
	unsigned bad = 0;
	int status = -1, r;

	*tail = 0;
	if (tkm_audit_verify_file(path, T.pk, &rep, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "%s: verify: %s\n", path, why);
		return 1;
	}
	if (rep.fault != TKM_AUDIT_FAULT_NONE || rep.first_seq != 1 || naudit < 0 ||
	    rep.records != (uint64_t)naudit || rep.last_seq != rep.records ||
	    rep.unsigned_tail != rep.last_seq - rep.last_checkpoint_seq) {
		fprintf(stderr,
		        "%s: audit %s at %" PRIu64 ": %s (%" PRIu64
		        " of %lld records, tail %" PRIu64 ")\n",
		        path, tkm_audit_fault_name(rep.fault), rep.bad_seq, rep.what, rep.records,
		        naudit, rep.unsigned_tail);
		bad++;
	}
	*tail = rep.unsigned_tail;
	r = snprintf(want, sizeof(want), "\"records\":%" PRIu64 ",", rep.records);
	if (r <= 0 || (size_t)r >= sizeof(want)) {
		abort();
	}
	if (tkm_testenv_run(T.env, argv, T.tool_out, T.tool_out, 60000, &status) != TKM_OK ||
	    (out = tkm_testenv_read_file(T.tool_out, NULL)) == NULL || status != 0 ||
	    strstr(out, "\"ok\":true") == NULL || strstr(out, want) == NULL) {
		fprintf(stderr, "%s: tkmctl audit verify exited %d: %s\n", path, status,
		        out != NULL ? out : "(no output)");
		bad++;
	}
	free(out);
	return bad;
}

/*
 * Check the database at path (tkmd not running); the number of problems
 * found, each printed. *tail gets the unsigned tail, *rows the terminal rows.
 */
static unsigned check_db(const char *path, uint64_t *tail, uint64_t *rows)
{
	sqlite3 *db = NULL;
	long long naudit, nterm;
	unsigned bad = 0;

	*tail = 0;
	*rows = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: cannot open: %s\n", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	if (!integrity_ok(db)) {
		bad++;
	}
	bad += check_terms(db);
	bad += check_records(db);
	naudit = query_int(db, "SELECT count(*) FROM audit");
	nterm = query_int(db, "SELECT count(*) FROM terminal");
	sqlite3_close(db);
	*rows = nterm > 0 ? (uint64_t)nterm : 0;
	return bad + check_chain(path, naudit, tail);
}

/* ---- The rounds ---- */

static bool read_pubkey(void)
{
	char *text = tkm_testenv_read_file(T.pubfile, NULL);
	size_t bin_len = 0;
	bool ok;

	ok = text != NULL && strlen(text) == 2 * TKM_AUDIT_PK_LEN + 1 &&
	     sodium_hex2bin(T.pk, sizeof(T.pk), text, 2 * TKM_AUDIT_PK_LEN, NULL, &bin_len, NULL) ==
	         0 &&
	     bin_len == TKM_AUDIT_PK_LEN;
	free(text);
	return ok;
}

/* Start (or restart) tkmd on the same files and log officer1 in. */
static bool start_tkmd(void)
{
	uint64_t t0 = tkm_testenv_now_us();

	tkm_client_close(T.so);
	T.so = NULL;
	if (tkm_testenv_start(T.env, NULL, EXTRA_CONFIG) != TKM_OK ||
	    tkm_testenv_login(T.env, "officer1", &T.so) != TKM_OK) {
		return false;
	}
	T.restart_ms += (tkm_testenv_now_us() - t0) / 1000u;
	return true;
}

/* Clients with officer1's session and without credentials, for each thread. */
static bool workers_open(worker w[THREADS], unsigned round, const atomic_bool *stop)
{
	uint8_t token[32];
	tkm_status st;
	bool ok = tkm_testenv_token(T.env, "officer1", token) == TKM_OK;

	for (unsigned i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].round = round;
		w[i].idx = i;
		w[i].dir = tkm_testenv_dir(T.env);
		w[i].stop = stop;
		ok = ok && tkm_testenv_client(tkm_testenv_ipc_url(T.env), &w[i].so) == TKM_OK &&
		     tkm_client_use_session(w[i].so, token, &st) == TKM_OK &&
		     tkm_testenv_client(tkm_testenv_ipc_url(T.env), &w[i].dev) == TKM_OK;
	}
	sodium_memzero(token, sizeof(token));
	return ok;
}

/* Fold a thread's acknowledgements into the totals; close its clients. */
static void workers_close(worker w[THREADS])
{
	for (unsigned i = 0; i < THREADS; i++) {
		for (size_t k = 0; k < w[i].terms.n; k++) {
			list_add(&T.terms, &w[i].terms.v[k]);
		}
		T.imports += w[i].imports;
		T.import_rows += w[i].import_rows;
		T.adds += w[i].adds;
		T.codes += w[i].codes;
		T.enrolls += w[i].enrolls;
		T.checkins += w[i].checkins;
		T.unacked += w[i].unacked;
		T.refused += w[i].refused;
		if (w[i].refused != 0) {
			fprintf(stderr, "round %u thread %u: %u refusals, the first: %s\n",
			        w[i].round, i, w[i].refused, w[i].refusal);
		}
		free(w[i].terms.v);
		tkm_client_close(w[i].so);
		tkm_client_close(w[i].dev);
	}
}

/* One round: load, SIGKILL at a random moment, stop the load. */
static bool one_round(unsigned round)
{
	worker w[THREADS];
	pthread_t th[THREADS];
	atomic_bool stop = false;
	unsigned started = 0;
	int status;

	if (!workers_open(w, round, &stop)) {
		fprintf(stderr, "round %u: cannot open the clients\n", round);
		workers_close(w);
		return false;
	}
	for (; started < THREADS; started++) {
		if (pthread_create(&th[started], NULL, worker_main, &w[started]) != 0) {
			break;
		}
	}
	if (started == THREADS) {
		tkm_testenv_sleep_ms(DELAY_MIN_MS + randombytes_uniform(DELAY_SPAN_MS));
	}
	status = tkm_testenv_stop(T.env, SIGKILL);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
	}
	workers_close(w);
	if (started != THREADS || status != 128 + SIGKILL) {
		fprintf(stderr, "round %u: %u threads, tkmd status %d\n", round, started, status);
		return false;
	}
	T.kills++;
	return true;
}

/* tkmd's own answer for every enrolled terminal and a sample of the others. */
static void check_through_tkmd(void)
{
	unsigned asked = 0, bad = 0;

	for (size_t i = 0; i < T.terms.n; i++) {
		const acked_term *t = &T.terms.v[i];
		tkm_cbor_limits lim = tkm_cbor_default_limits();
		tkm_cbor_w *p;
		tkm_cbor_doc *doc = NULL;
		const uint8_t *pp = NULL;
		uint8_t *res = NULL;
		size_t n = 0, rlen = 0;
		tkm_status st;
		const tkm_cbor_val *r;

		if (!t->enrolled && randombytes_uniform((uint32_t)T.terms.n) >= SHOW_SAMPLE) {
			continue;
		}
		p = w_new();
		tkm_cbor_put_map(p, 1);
		tkm_cbor_put_cstr(p, "id");
		tkm_cbor_put_uint(p, t->id);
		if (tkm_cbor_w_finish(p, &pp, &n) != TKM_OK ||
		    tkm_call_raw(T.so, "terminal.show", pp, n, 30000, &st, &res, &rlen) != TKM_OK ||
		    tkm_cbor_decode(res, rlen, &lim, &doc, NULL, 0) != TKM_OK) {
			bad++;
		} else {
			r = tkm_cbor_root(doc);
			if (u_of(r, "id") != t->id ||
			    !tkm_cbor_text_eq(tkm_cbor_map_get(r, "serial"), t->serial) ||
			    (t->enrolled &&
			     !tkm_cbor_text_eq(tkm_cbor_map_get(r, "state"), "active")) ||
			    (t->firmware[0] != '\0' &&
			     !tkm_cbor_text_eq(tkm_cbor_map_get(r, "firmware_version"),
			                       t->firmware))) {
				bad++;
			}
		}
		if (res != NULL) {
			tkm_free(res, rlen);
		}
		tkm_cbor_doc_free(doc);
		tkm_cbor_w_free(p);
		asked++;
	}
	printf("service_crash: tkmd shows %u acknowledged terminals as acknowledged, %u not\n",
	       asked - bad, bad);
	CHECK_EQ_INT(bad, 0);
	CHECK(asked > 0);
}

/* Copies with one acknowledged terminal deleted, and with one record altered, must fail. */
static void negative_control(void)
{
	char copy[400], sql[200];
	uint64_t tail, rows;
	const acked_term *t;
	unsigned bad;
	int r;

	if (T.terms.n == 0) {
		CHECK(T.terms.n > 0);
		return;
	}
	t = &T.terms.v[randombytes_uniform((uint32_t)T.terms.n)];
	path_in(copy, sizeof(copy), tkm_testenv_dir(T.env), "control.db");
	CHECK(tkm_storefix_copy_db(T.db, copy) == SQLITE_OK);
	r = snprintf(sql, sizeof(sql),
	             "DROP TRIGGER terminal_kept; DELETE FROM terminal WHERE id = %" PRIu64, t->id);
	CHECK(r > 0 && (size_t)r < sizeof(sql));
	CHECK(tkm_storefix_run_sql(copy, sql) == SQLITE_OK);
	printf("negative control: acknowledged terminal %" PRIu64 " (%s) deleted from a copy; the "
	       "check must complain:\n",
	       t->id, t->serial);
	fflush(stdout);
	bad = check_db(copy, &tail, &rows);
	CHECK(bad >= 1);
	printf("negative control: %u problems found, as it should\n", bad);

	CHECK(tkm_storefix_copy_db(T.db, copy) == SQLITE_OK);
	CHECK(tkm_storefix_run_sql(copy, "UPDATE audit SET target = 'hw:Ingenico/forged' WHERE "
	                                 "seq = (SELECT max(seq) / 2 FROM audit)") == SQLITE_OK);
	printf("negative control: an audit record altered in a copy; the check must complain:\n");
	fflush(stdout);
	bad = check_db(copy, &tail, &rows);
	CHECK(bad >= 2); /* at least the library and tkmctl */
	printf("negative control: %u problems found, as it should\n", bad);
}

int main(void)
{
	uint64_t t0, tail = 0, rows = 0;
	unsigned bad;
	int status;

	if (sodium_init() < 0 || tkm_testenv_new(&T.env) != TKM_OK) {
		return 1;
	}
	path_in(T.db, sizeof(T.db), tkm_testenv_dir(T.env), "tkm.db");
	path_in(T.pubfile, sizeof(T.pubfile), tkm_testenv_dir(T.env), "tkm.db.audit-key.pub");
	path_in(T.tool_out, sizeof(T.tool_out), tkm_testenv_dir(T.env), "tkmctl.out");
	t0 = tkm_testenv_now_us();
	if (!start_tkmd() || !read_pubkey()) {
		tkm_testenv_free(T.env);
		return 1;
	}
	for (unsigned round = 0; round < ROUNDS; round++) {
		uint64_t c0;

		if (!one_round(round)) {
			CHECK(false);
			break;
		}
		c0 = tkm_testenv_now_us();
		bad = check_db(T.db, &tail, &rows);
		T.check_ms += (tkm_testenv_now_us() - c0) / 1000u;
		CHECK_EQ_INT(bad, 0);
		/* Rows that committed though their reply never arrived. */
		CHECK(rows >= T.terms.n);
		T.unacked_rows = rows - T.terms.n;
		T.max_tail = tail > T.max_tail ? tail : T.max_tail;
		if (bad != 0) {
			fprintf(stderr, "round %u: the database is not as acknowledged\n", round);
			tkm_testenv_dump_log(T.env);
			break;
		}
		if (!start_tkmd()) {
			fprintf(stderr, "round %u: tkmd does not come back\n", round);
			CHECK(false);
			break;
		}
	}
	CHECK_EQ_INT(T.kills, ROUNDS);
	CHECK_EQ_INT(T.refused, 0);
	CHECK(T.enrolls > 0 && T.imports > 0 && T.adds > 0 && T.checkins > 0);
	if (tkm_testenv_alive(T.env)) {
		check_through_tkmd();
		/* A clean stop signs the tail. */
		status = tkm_testenv_stop(T.env, SIGTERM);
		CHECK_EQ_INT(status, 0);
		bad = check_db(T.db, &tail, &rows);
		CHECK_EQ_INT(bad, 0);
		CHECK_EQ_INT(tail, 0);
		negative_control();
	}
	printf(
	    "service_crash: %u kills; acknowledged: %u imports (%u rows), %u adds, %u enrollment "
	    "codes, %u enrollments, %u check-ins; %u calls without a reply; %" PRIu64
	    " terminals committed without their reply; %" PRIu64 " terminal rows; max unsigned "
	    "tail %" PRIu64 " records; %.1f s (restarts %.1f s, checks %.1f s)\n",
	    T.kills, T.imports, T.import_rows, T.adds, T.codes, T.enrolls, T.checkins, T.unacked,
	    T.unacked_rows, rows, T.max_tail, (double)(tkm_testenv_now_us() - t0) / 1e6,
	    (double)T.restart_ms / 1000.0, (double)T.check_ms / 1000.0);
	tkm_client_close(T.so);
	free(T.terms.v);
	tkm_testenv_free(T.env);
	return tkm_test_report("service_crash");
}
