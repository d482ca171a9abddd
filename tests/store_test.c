/*
 * store_test.c - the store's group-commit writer and the audit chain.
 *
 * Drives a real SQLite file in a mkdtemp directory through tkm_store_* and
 * signs checkpoints with a libsodium Ed25519 key (the HSM signer is tested
 * in tests/hsm_*). Tampering is done behind the store's back with plain SQL
 * on copies of one database, and each kind must be named at the right seq.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "store_fixture.h"
#include "tkm_audit.h"
#include "tkm_cbor.h"
#include "tkm_store.h"
#include "tkm_test.h"
#include "tkm_why.h"

#define THREADS      8
#define PER_THREAD   500
#define TAMPER_RECS  55
#define TAMPER_EVERY 10

static char tmpdir[] = "/tmp/tkm-store-XXXXXX";
static uint8_t pk[crypto_sign_PUBLICKEYBYTES];
static uint8_t sk[crypto_sign_SECRETKEYBYTES];
static const uint8_t key_id[4] = {0xa1, 0xd1, 0x70, 0x01};

static tkm_err test_sign(void *ctx, const uint8_t *msg, size_t msg_len,
                         uint8_t sig[static TKM_AUDIT_SIG_LEN], char *why, size_t why_len)
{
	const bool *fail = ctx;

	if (fail != NULL && *fail) {
		return tkm_why_fail(why, why_len, TKM_E_HSM, "test signer refuses");
	}
	return crypto_sign_detached(sig, NULL, msg, msg_len, sk) == 0 ? TKM_OK : TKM_E_CRYPTO;
}

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	int r = snprintf(buf, len, "%s/%s", tmpdir, name);

	if (r < 0 || (size_t)r >= len) {
		abort();
	}
}

static tkm_store *open_writer_cfg(const char *path, uint64_t every, uint32_t interval_ms,
                                  bool *fail_sign)
{
	tkm_store_writer_cfg cfg;
	tkm_store *st = NULL;
	char why[256] = "";

	memset(&cfg, 0, sizeof(cfg));
	cfg.sign = test_sign;
	cfg.key_id = key_id;
	cfg.key_id_len = sizeof(key_id);
	cfg.checkpoint_every = every;
	cfg.checkpoint_interval_ms = interval_ms;
	cfg.sign_ctx = fail_sign;
	if (tkm_store_open(path, &st, why, sizeof(why)) != TKM_OK ||
	    tkm_store_writer_start(st, &cfg, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "open %s: %s\n", path, why);
		tkm_store_close(st);
		return NULL;
	}
	return st;
}

static tkm_store *open_writer(const char *path, uint64_t every)
{
	return open_writer_cfg(path, every, 0, NULL);
}

static tkm_err create_state(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	(void)arg;
	return tkm_store_tx_exec(tx,
	                         "CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v INTEGER)",
	                         NULL, 0, why, why_len);
}

/* The fail-closed test's gate: set by the change holding the writer. */
static atomic_bool fc_gate_in;
static atomic_int fc_submitted;

struct put {
	const char *k;
	int64_t v;
	unsigned sleep_ms; /* hold the writer, so that others queue behind */
};

static tkm_err put_state(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const struct put *p = arg;
	tkm_store_val vals[2] = {
	    {.type = TKM_STORE_TEXT, .p = p->k, .len = strlen(p->k)},
	    {.type = TKM_STORE_INT, .i = p->v},
	};

	if (p->sleep_ms != 0) {
		struct timespec ts = {0, (long)p->sleep_ms * 1000000L};
		struct timespec tick = {0, 1000000L};

		/* Hold the writer until the others have queued, and a little longer. */
		atomic_store(&fc_gate_in, true);
		for (int i = 0; i < 5000 && atomic_load(&fc_submitted) < 4; i++) {
			nanosleep(&tick, NULL);
		}
		nanosleep(&ts, NULL);
	}
	return tkm_store_tx_exec(tx, "INSERT INTO state (k, v) VALUES (?1, ?2)", vals, 2, why,
	                         why_len);
}

static tkm_err write_put(tkm_store *st, struct put *p, const char *method, uint64_t *seq, char *why,
                         size_t why_len)
{
	tkm_audit_rec rec;

	memset(&rec, 0, sizeof(rec));
	rec.principal = "tester";
	rec.role = "admin";
	rec.method = method;
	rec.target = p->k;
	rec.outcome = "ok";
	return tkm_store_write(st, put_state, p, &rec, seq, why, why_len);
}

static long long count_rows(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	long long n = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		n = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/* ---- Canonical encoding ---- */

static void test_encoding(void)
{
	/* Computed independently (Python, hand-rolled CBOR and hashlib.blake2b). */
	static const char want_cbor[] =
	    "aa6176016274731b0000018bcfe56800637365710164726f6c656561646d696e666d6574686f646a6b65"
	    "792e637265617465667461726765746562646b2f316764657461696c73a0676f7574636f6d65626f6b69"
	    "7072696e636970616c65616c6963656a6572726f725f636f6465f6";
	static const char want_hash[] =
	    "59cb22ab4afc777a9ae7ad0f88a449218eb5c820f306bac4ede11e9c5139bda9";
	static const uint8_t bad_order[] = {0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02};
	static const uint8_t long_int[] = {0xa1, 0x61, 0x61, 0x18, 0x01};
	static const uint8_t good[] = {0xa2, 0x61, 0x61, 0x01, 0x62, 0x61, 0x61, 0x02};
	uint8_t buf[TKM_AUDIT_CBOR_MAX];
	uint8_t zero[TKM_AUDIT_HASH_LEN] = {0};
	uint8_t h[TKM_AUDIT_HASH_LEN];
	char hex[2 * TKM_AUDIT_CBOR_MAX + 1];
	tkm_audit_rec rec;
	size_t n = 0;

	memset(&rec, 0, sizeof(rec));
	rec.seq = 1;
	rec.ts_ms = 1700000000000ull;
	rec.principal = "alice";
	rec.role = "admin";
	rec.method = "key.create";
	rec.target = "bdk/1";
	rec.outcome = "ok";
	CHECK(tkm_audit_rec_check(&rec, NULL, 0) == TKM_OK);
	CHECK(tkm_audit_encode(&rec, buf, sizeof(buf), &n) == TKM_OK);
	sodium_bin2hex(hex, sizeof(hex), buf, n);
	CHECK_STR(hex, want_cbor);
	CHECK(tkm_audit_hash(&rec, zero, h) == TKM_OK);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	CHECK_STR(hex, want_hash);

	rec.details = good;
	rec.details_len = sizeof(good);
	CHECK(tkm_audit_rec_check(&rec, NULL, 0) == TKM_OK);
	rec.details = bad_order;
	rec.details_len = sizeof(bad_order);
	CHECK(tkm_audit_rec_check(&rec, NULL, 0) == TKM_E_INVALID_ARG);
	rec.details = long_int;
	rec.details_len = sizeof(long_int);
	CHECK(tkm_audit_rec_check(&rec, NULL, 0) == TKM_E_INVALID_ARG);
	rec.details = NULL;
	rec.outcome = NULL;
	CHECK(tkm_audit_rec_check(&rec, NULL, 0) == TKM_E_INVALID_ARG);
}

/* ---- Group commit ---- */

struct worker {
	tkm_store *st;
	int id;
	int ok;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		char k[32];
		char why[256] = "";
		uint8_t details[16];
		tkm_audit_rec rec;
		tkm_cbor_w *cw = NULL;
		const uint8_t *p;
		size_t n = 0;
		struct put put;
		uint64_t seq = 0;

		if (snprintf(k, sizeof(k), "t%d-%d", w->id, i) < 0 ||
		    tkm_cbor_w_new(sizeof(details), &cw) != TKM_OK) {
			break;
		}
		tkm_cbor_put_map(cw, 1);
		tkm_cbor_put_cstr(cw, "n");
		tkm_cbor_put_uint(cw, (uint64_t)i);
		if (tkm_cbor_w_finish(cw, &p, &n) != TKM_OK) {
			tkm_cbor_w_free(cw);
			break;
		}
		memcpy(details, p, n);
		tkm_cbor_w_free(cw);
		memset(&rec, 0, sizeof(rec));
		rec.principal = "worker";
		rec.role = "operator";
		rec.method = "test.put";
		rec.target = k;
		rec.outcome = "ok";
		rec.details = details;
		rec.details_len = n;
		put.k = k;
		put.v = i;
		put.sleep_ms = 0;
		if (tkm_store_write(w->st, put_state, &put, &rec, &seq, why, sizeof(why)) ==
		        TKM_OK &&
		    seq > 0) {
			w->ok++;
		} else {
			fprintf(stderr, "write %s: %s\n", k, why);
		}
	}
	return NULL;
}

static void test_group_commit(void)
{
	char path[256];
	char why[256] = "";
	struct worker w[THREADS];
	pthread_t th[THREADS];
	struct timespec t0, t1;
	tkm_store_writer_stats stats;
	tkm_audit_report rep;
	tkm_audit_rec rec;
	tkm_store *st;
	double secs;
	int total = 0;

	path_in_tmp(path, sizeof(path), "group.db");
	st = open_writer(path, 1000);
	CHECK(st != NULL);
	if (st == NULL) {
		return;
	}
	memset(&rec, 0, sizeof(rec));
	rec.method = "test.setup";
	rec.outcome = "ok";
	CHECK(tkm_store_write(st, create_state, NULL, &rec, NULL, why, sizeof(why)) == TKM_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < THREADS; i++) {
		w[i].st = st;
		w[i].id = i;
		w[i].ok = 0;
		CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		total += w[i].ok;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK_EQ_INT(total, THREADS * PER_THREAD);
	tkm_store_writer_stats_get(st, &stats);
	printf("group commit: %d writes from %d threads in %.3f s = %.0f writes/s; %llu "
	       "transactions, largest batch %llu, %llu checkpoints\n",
	       total, THREADS, secs, total / secs, (unsigned long long)stats.transactions,
	       (unsigned long long)stats.max_batch_seen, (unsigned long long)stats.checkpoints);
	CHECK(stats.max_batch_seen > 1);
	CHECK(stats.checkpoints >= 3);
	CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM state"), THREADS * PER_THREAD);
	CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM audit"), THREADS * PER_THREAD + 1);
	CHECK(tkm_store_checkpoint_now(st, why, sizeof(why)) == TKM_OK);
	CHECK(tkm_audit_verify(st, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK_EQ_INT(rep.records, THREADS * PER_THREAD + 1);
	CHECK_EQ_INT(rep.last_checkpoint_seq, THREADS * PER_THREAD + 1);
	CHECK_EQ_INT(rep.unsigned_tail, 0);
	tkm_store_close(st);

	/* Reopened, the writer continues the chain from its head. */
	st = open_writer(path, 1000);
	CHECK(st != NULL);
	if (st != NULL) {
		struct put p = {"after-reopen", 1, 0};
		uint64_t seq = 0;

		CHECK(write_put(st, &p, "test.put", &seq, why, sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(seq, THREADS * PER_THREAD + 2);
		tkm_store_close(st);
	}
	CHECK(tkm_audit_verify_file(path, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	/* close signs the tail */
	CHECK_EQ_INT(rep.last_checkpoint_seq, THREADS * PER_THREAD + 2);
}

/* ---- Fail closed ---- */

struct fc_call {
	tkm_store *st;
	struct put put;
	const char *method;
	tkm_err err;
	uint64_t seq;
	unsigned delay_ms; /* after the gate holds the writer, before submitting */
};

static void *fc_main(void *arg)
{
	struct fc_call *c = arg;
	char why[256] = "";

	if (c->delay_ms != 0) {
		struct timespec ts = {0, (long)c->delay_ms * 1000000L};
		struct timespec tick = {0, 1000000L};

		for (int i = 0; i < 5000 && !atomic_load(&fc_gate_in); i++) {
			nanosleep(&tick, NULL);
		}
		nanosleep(&ts, NULL);
		atomic_fetch_add(&fc_submitted, 1);
	}
	c->err = write_put(c->st, &c->put, c->method, &c->seq, why, sizeof(why));
	return NULL;
}

static void test_fail_closed(void)
{
	char path[256];
	char why[256] = "";
	struct fc_call calls[5];
	pthread_t th[5];
	tkm_store_writer_stats stats;
	tkm_audit_report rep;
	tkm_audit_rec rec;
	tkm_store *st;

	path_in_tmp(path, sizeof(path), "failclosed.db");
	st = open_writer(path, 0);
	CHECK(st != NULL);
	if (st == NULL) {
		return;
	}
	memset(&rec, 0, sizeof(rec));
	rec.method = "test.setup";
	rec.outcome = "ok";
	CHECK(tkm_store_write(st, create_state, NULL, &rec, NULL, why, sizeof(why)) == TKM_OK);
	CHECK(tkm_storefix_run_sql(
	          path, "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit "
	                "WHEN NEW.method = 'test.boom' "
	                "BEGIN SELECT RAISE(ABORT, 'audit refused by test'); END") == SQLITE_OK);

	memset(calls, 0, sizeof(calls));
	/* The first holds the writer until the others have queued: one batch of four. */
	calls[0] = (struct fc_call){st, {"gate", 0, 100}, "test.put", TKM_OK, 0, 0};
	calls[1] = (struct fc_call){st, {"ok-1", 1, 0}, "test.put", TKM_OK, 0, 1};
	calls[2] = (struct fc_call){st, {"boom", 2, 0}, "test.boom", TKM_OK, 0, 10};
	calls[3] = (struct fc_call){st, {"ok-1", 3, 0}, "test.put", TKM_OK, 0, 20};
	calls[4] = (struct fc_call){st, {"ok-2", 4, 0}, "test.put", TKM_OK, 0, 30};
	for (int i = 0; i < 5; i++) {
		CHECK(pthread_create(&th[i], NULL, fc_main, &calls[i]) == 0);
	}
	for (int i = 0; i < 5; i++) {
		pthread_join(th[i], NULL);
	}
	CHECK_EQ_INT(calls[0].err, TKM_OK);
	CHECK_EQ_INT(calls[1].err, TKM_OK);
	CHECK_EQ_INT(calls[2].err, TKM_E_IO);       /* audit insert refused: change undone */
	CHECK_EQ_INT(calls[3].err, TKM_E_CONFLICT); /* its own change failed */
	CHECK_EQ_INT(calls[4].err, TKM_OK);
	tkm_store_writer_stats_get(st, &stats);
	CHECK(stats.max_batch_seen >= 4);
	CHECK_EQ_INT(stats.writes_failed, 2);
	CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM state WHERE k = 'boom'"), 0);
	CHECK_EQ_INT(count_rows(path, "SELECT v FROM state WHERE k = 'ok-1'"), 1);
	CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM state WHERE k = 'ok-2'"), 1);
	CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM audit WHERE method = 'test.boom'"), 0);
	CHECK_EQ_INT(count_rows(path, "SELECT count(*) FROM audit"), 4);
	/* The batch after the gate's: two records, no hole left by the failed ones. */
	CHECK(calls[1].seq > calls[0].seq && calls[4].seq > calls[0].seq);
	CHECK(calls[1].seq != calls[4].seq);
	CHECK(calls[1].seq <= 4 && calls[4].seq <= 4);
	CHECK(tkm_audit_verify(st, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK_EQ_INT(rep.records, 4);
	tkm_store_close(st);
}

/* ---- Tampering ---- */

/* Copy base, apply sql, verify: the fault and first bad seq must be as expected. */
static void tamper_case(const char *base, const char *name, const char *sql, tkm_audit_fault want,
                        uint64_t want_seq)
{
	char path[256];
	char why[256] = "";
	tkm_audit_report rep;

	path_in_tmp(path, sizeof(path), name);
	CHECK(tkm_storefix_copy_db(base, path) == SQLITE_OK);
	if (sql != NULL) {
		CHECK(tkm_storefix_run_sql(path, sql) == SQLITE_OK);
	}
	CHECK(tkm_audit_verify_file(path, pk, &rep, why, sizeof(why)) == TKM_OK);
	printf("tamper %-10s -> %s at %llu: %s\n", name, tkm_audit_fault_name(rep.fault),
	       (unsigned long long)rep.bad_seq, rep.what);
	CHECK_EQ_INT(rep.fault, want);
	CHECK_EQ_INT(rep.bad_seq, want_seq);
}

/* Shift records after 12 up by one and splice a well-formed forged record 13 in. */
static void tamper_insert(const char *base)
{
	char path[256];
	char why[256] = "";
	uint8_t prev[TKM_AUDIT_HASH_LEN], h[TKM_AUDIT_HASH_LEN];
	tkm_audit_report rep;
	tkm_audit_rec rec;
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int ok;

	path_in_tmp(path, sizeof(path), "inserted");
	CHECK(tkm_storefix_copy_db(base, path) == SQLITE_OK);
	ok = sqlite3_open(path, &db) == SQLITE_OK &&
	     sqlite3_prepare_v2(db, "SELECT hash FROM audit WHERE seq = 12", -1, &s, NULL) ==
	         SQLITE_OK &&
	     sqlite3_step(s) == SQLITE_ROW && sqlite3_column_bytes(s, 0) == TKM_AUDIT_HASH_LEN;
	CHECK(ok);
	if (!ok) {
		goto out;
	}
	memcpy(prev, sqlite3_column_blob(s, 0), sizeof(prev));
	sqlite3_finalize(s);
	s = NULL;
	memset(&rec, 0, sizeof(rec));
	rec.seq = 13;
	rec.ts_ms = 1;
	rec.principal = "mallory";
	rec.method = "key.export";
	rec.outcome = "ok";
	rec.details = (const uint8_t *)"\xa0";
	rec.details_len = 1;
	CHECK(tkm_audit_hash(&rec, prev, h) == TKM_OK);
	CHECK(sqlite3_exec(db,
	                   "UPDATE audit SET seq = -seq WHERE seq > 12;"
	                   "UPDATE audit SET seq = 1 - seq WHERE seq < 0",
	                   NULL, NULL, NULL) == SQLITE_OK);
	ok = sqlite3_prepare_v2(db,
	                        "INSERT INTO audit (seq, ts, principal, method, outcome, details, "
	                        "prev_hash, hash) VALUES (13, 1, 'mallory', 'key.export', 'ok', "
	                        "X'a0', ?1, ?2)",
	                        -1, &s, NULL) == SQLITE_OK &&
	     sqlite3_bind_blob(s, 1, prev, sizeof(prev), SQLITE_STATIC) == SQLITE_OK &&
	     sqlite3_bind_blob(s, 2, h, sizeof(h), SQLITE_STATIC) == SQLITE_OK &&
	     sqlite3_step(s) == SQLITE_DONE;
	CHECK(ok);
	sqlite3_finalize(s);
	s = NULL;
	sqlite3_close(db);
	db = NULL;
	CHECK(tkm_audit_verify_file(path, pk, &rep, why, sizeof(why)) == TKM_OK);
	printf("tamper %-10s -> %s at %llu: %s\n", "inserted", tkm_audit_fault_name(rep.fault),
	       (unsigned long long)rep.bad_seq, rep.what);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_INSERTED);
	CHECK_EQ_INT(rep.bad_seq, 13);
out:
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/*
 * Change record k's outcome and recompute hashes as an attacker without the
 * signing key would: record k only, or k and every later record.
 */
static void tamper_rehash(const char *base, const char *name, uint64_t k, bool to_end,
                          tkm_audit_fault want, uint64_t want_seq)
{
	char path[256];
	char why[256] = "";
	uint8_t prev[TKM_AUDIT_HASH_LEN] = {0};
	tkm_audit_report rep;
	sqlite3 *db = NULL;
	sqlite3_stmt *sel = NULL, *upd = NULL;
	bool ok;

	path_in_tmp(path, sizeof(path), name);
	CHECK(tkm_storefix_copy_db(base, path) == SQLITE_OK);
	ok = sqlite3_open(path, &db) == SQLITE_OK &&
	     sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
	     sqlite3_prepare_v2(db,
	                        "SELECT seq, ts, principal, role, method, target, outcome, "
	                        "error_code, details, hash FROM audit WHERE seq >= ?1 - 1 "
	                        "ORDER BY seq",
	                        -1, &sel, NULL) == SQLITE_OK &&
	     sqlite3_prepare_v2(db,
	                        "UPDATE audit SET outcome = ?2, prev_hash = ?3, hash = ?4 "
	                        "WHERE seq = ?1",
	                        -1, &upd, NULL) == SQLITE_OK &&
	     sqlite3_bind_int64(sel, 1, (sqlite3_int64)k) == SQLITE_OK;
	CHECK(ok);
	while (ok && sqlite3_step(sel) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(sel, 0);
		uint8_t h[TKM_AUDIT_HASH_LEN];
		tkm_audit_rec rec;

		if (seq == k - 1) {
			memcpy(prev, sqlite3_column_blob(sel, 9), sizeof(prev));
			continue;
		}
		if (seq > k && !to_end) {
			break;
		}
		memset(&rec, 0, sizeof(rec));
		rec.seq = seq;
		rec.ts_ms = (uint64_t)sqlite3_column_int64(sel, 1);
		rec.principal = (const char *)sqlite3_column_text(sel, 2);
		rec.role = (const char *)sqlite3_column_text(sel, 3);
		rec.method = (const char *)sqlite3_column_text(sel, 4);
		rec.target = (const char *)sqlite3_column_text(sel, 5);
		rec.outcome = seq == k ? "denied" : (const char *)sqlite3_column_text(sel, 6);
		rec.error_code = (const char *)sqlite3_column_text(sel, 7);
		rec.details = sqlite3_column_blob(sel, 8);
		rec.details_len = (size_t)sqlite3_column_bytes(sel, 8);
		ok = tkm_audit_hash(&rec, prev, h) == TKM_OK && sqlite3_reset(upd) == SQLITE_OK &&
		     sqlite3_bind_int64(upd, 1, (sqlite3_int64)seq) == SQLITE_OK &&
		     sqlite3_bind_text(upd, 2, rec.outcome, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
		     sqlite3_bind_blob(upd, 3, prev, sizeof(prev), SQLITE_TRANSIENT) == SQLITE_OK &&
		     sqlite3_bind_blob(upd, 4, h, sizeof(h), SQLITE_TRANSIENT) == SQLITE_OK &&
		     sqlite3_step(upd) == SQLITE_DONE;
		CHECK(ok);
		memcpy(prev, h, sizeof(prev));
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	CHECK(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK(tkm_audit_verify_file(path, pk, &rep, why, sizeof(why)) == TKM_OK);
	printf("tamper %-10s -> %s at %llu: %s\n", name, tkm_audit_fault_name(rep.fault),
	       (unsigned long long)rep.bad_seq, rep.what);
	CHECK_EQ_INT(rep.fault, want);
	CHECK_EQ_INT(rep.bad_seq, want_seq);
}

static void test_tamper(void)
{
	char live[256], base[256];
	char why[256] = "";
	tkm_audit_report rep;
	tkm_store *st;

	path_in_tmp(live, sizeof(live), "tamper-live.db");
	path_in_tmp(base, sizeof(base), "tamper-base.db");
	st = open_writer(live, TAMPER_EVERY);
	CHECK(st != NULL);
	if (st == NULL) {
		return;
	}
	{
		tkm_audit_rec rec;

		memset(&rec, 0, sizeof(rec));
		rec.method = "test.setup";
		rec.outcome = "ok";
		CHECK(tkm_store_write(st, create_state, NULL, &rec, NULL, why, sizeof(why)) ==
		      TKM_OK);
	}
	for (int i = 2; i <= TAMPER_RECS; i++) {
		char k[16];
		struct put p = {k, i, 0};

		CHECK(snprintf(k, sizeof(k), "k%d", i) > 0);
		CHECK(write_put(st, &p, "test.put", NULL, why, sizeof(why)) == TKM_OK);
	}
	/* A copy of the live database: checkpoints 10..50, records 1..55. */
	CHECK(tkm_storefix_copy_db(live, base) == SQLITE_OK);
	tkm_store_close(st);

	CHECK(tkm_audit_verify_file(base, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK_EQ_INT(rep.records, TAMPER_RECS);
	CHECK_EQ_INT(rep.checkpoints, 5);
	CHECK_EQ_INT(rep.last_checkpoint_seq, 50);
	CHECK_EQ_INT(rep.unsigned_tail, 5);
	{
		uint8_t other[crypto_sign_PUBLICKEYBYTES];
		uint8_t other_sk[crypto_sign_SECRETKEYBYTES];

		crypto_sign_keypair(other, other_sk);
		CHECK(tkm_audit_verify_file(base, other, &rep, why, sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_SIGNATURE);
		CHECK_EQ_INT(rep.bad_seq, 10);
		sodium_memzero(other_sk, sizeof(other_sk));
	}

	tamper_case(base, "changed", "UPDATE audit SET outcome = 'error' WHERE seq = 17",
	            TKM_AUDIT_FAULT_CHANGED, 17);
	tamper_case(base, "details", "UPDATE audit SET details = X'a16178f5' WHERE seq = 3",
	            TKM_AUDIT_FAULT_CHANGED, 3);
	tamper_case(base, "deleted", "DELETE FROM audit WHERE seq = 23", TKM_AUDIT_FAULT_MISSING,
	            23);
	tamper_case(base, "deleted-1", "DELETE FROM audit WHERE seq = 1", TKM_AUDIT_FAULT_GENESIS,
	            1);
	tamper_case(base, "reordered",
	            "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (31, 32);"
	            "UPDATE audit SET (ts, principal, role, method, target, outcome, error_code, "
	            "details, prev_hash, hash) = (SELECT ts, principal, role, method, target, "
	            "outcome, error_code, details, prev_hash, hash FROM t WHERE t.seq = 63 - "
	            "audit.seq) WHERE seq IN (31, 32)",
	            TKM_AUDIT_FAULT_LINK, 31);
	tamper_insert(base);
	tamper_rehash(base, "rehashed", 17, false, TKM_AUDIT_FAULT_LINK, 18);
	tamper_rehash(base, "rechained", 17, true, TKM_AUDIT_FAULT_CHECKPOINT, 20);
	/* Rewritten after the last checkpoint, chain and all: not detectable. */
	tamper_rehash(base, "tail-redo", 52, true, TKM_AUDIT_FAULT_NONE, 0);
	tamper_case(base, "signature",
	            "UPDATE audit_checkpoint SET signature = randomblob(64) WHERE seq = 30",
	            TKM_AUDIT_FAULT_SIGNATURE, 30);
	tamper_case(base, "cp-hash",
	            "UPDATE audit_checkpoint SET hash = randomblob(32) WHERE seq = 20",
	            TKM_AUDIT_FAULT_SIGNATURE, 20);
	/* Cut into signed records: detected at the first missing one. */
	tamper_case(base, "truncated", "DELETE FROM audit WHERE seq > 47",
	            TKM_AUDIT_FAULT_TRUNCATED, 48);
	tamper_case(base, "truncated-all", "DELETE FROM audit", TKM_AUDIT_FAULT_TRUNCATED, 1);
	/* Cut only the unsigned tail: not detectable, but the report shows the tail. */
	tamper_case(base, "tail-cut", "DELETE FROM audit WHERE seq > 52", TKM_AUDIT_FAULT_NONE, 0);
	CHECK(tkm_audit_verify_file(base, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.unsigned_tail, 5);
}

/* Timed checkpoints, and a signer that fails: writes go on, checkpoints retry. */
static void test_checkpoints(void)
{
	char path[256];
	char why[256] = "";
	struct timespec wait = {0, 400 * 1000000L};
	tkm_store_writer_stats stats;
	tkm_audit_report rep;
	tkm_audit_rec rec;
	bool fail = false;
	tkm_store *st;

	path_in_tmp(path, sizeof(path), "timed.db");
	st = open_writer_cfg(path, 0, 100, &fail);
	CHECK(st != NULL);
	if (st == NULL) {
		return;
	}
	memset(&rec, 0, sizeof(rec));
	rec.method = "test.note";
	rec.outcome = "ok";
	for (int i = 0; i < 3; i++) {
		CHECK(tkm_store_write(st, NULL, NULL, &rec, NULL, why, sizeof(why)) == TKM_OK);
	}
	nanosleep(&wait, NULL);
	tkm_store_writer_stats_get(st, &stats);
	CHECK_EQ_INT(stats.checkpoints, 1);
	CHECK(tkm_audit_verify(st, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK_EQ_INT(rep.last_checkpoint_seq, 3);

	fail = true;
	CHECK(tkm_store_write(st, NULL, NULL, &rec, NULL, why, sizeof(why)) == TKM_OK);
	CHECK(tkm_store_checkpoint_now(st, why, sizeof(why)) == TKM_E_HSM);
	nanosleep(&wait, NULL);
	tkm_store_writer_stats_get(st, &stats);
	CHECK(stats.checkpoint_fails >= 2);
	CHECK_EQ_INT(stats.checkpoints, 1);
	fail = false;
	CHECK(tkm_store_checkpoint_now(st, why, sizeof(why)) == TKM_OK);
	CHECK(tkm_audit_verify(st, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK_EQ_INT(rep.last_checkpoint_seq, 4);
	CHECK_EQ_INT(rep.records, 4);

	/* Not a canonical details map: refused before it reaches the writer. */
	rec.details = (const uint8_t *)"\xa2\x61\x62\x01\x61\x61\x02";
	rec.details_len = 7;
	CHECK(tkm_store_write(st, NULL, NULL, &rec, NULL, why, sizeof(why)) == TKM_E_INVALID_ARG);
	tkm_store_close(st);
}

/* ---- Archive cuts ---- */

static tkm_err check_archive_file(void *ctx, const char *path, char *why, size_t why_len)
{
	tkm_audit_report rep;
	tkm_err err = tkm_audit_verify_file(path, pk, &rep, why, why_len);

	(void)ctx;
	return err == TKM_OK && rep.fault != TKM_AUDIT_FAULT_NONE ? TKM_E_CRYPTO : err;
}

static tkm_err refuse_archive_file(void *ctx, const char *path, char *why, size_t why_len)
{
	(void)ctx;
	(void)path;
	return tkm_why_fail(why, why_len, TKM_E_CRYPTO, "the test refuses the archive");
}

static void expect_verify(const char *path, tkm_audit_fault want, uint64_t first_or_bad)
{
	tkm_audit_report rep;
	char why[256] = "";

	CHECK(tkm_audit_verify_file(path, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, want);
	if (want == TKM_AUDIT_FAULT_NONE) {
		CHECK_EQ_INT(rep.first_seq, first_or_bad);
	} else {
		CHECK_EQ_INT(rep.bad_seq, first_or_bad);
	}
	printf("archive %s -> %s first %llu bad %llu: %s\n", path, tkm_audit_fault_name(rep.fault),
	       (unsigned long long)rep.first_seq, (unsigned long long)rep.bad_seq, rep.what);
}

/*
 * Records 1..20 with a checkpoint every 5; archive through 20 (the newest
 * checkpoint); 10 more; archive again through 30. Each file and the live
 * chain verify; cuts made behind the store's back are caught.
 */
static void test_archive(void)
{
	char live[256], a1[256], a2[256], a3[256], copy[256], why[256] = "";
	tkm_store_copy_info info;
	tkm_audit_rec rec, arec;
	uint64_t seq = 0, far = UINT64_C(1) << 62;
	tkm_store *st;

	path_in_tmp(live, sizeof(live), "archive-live.db");
	path_in_tmp(a1, sizeof(a1), "archive-1.db");
	path_in_tmp(a2, sizeof(a2), "archive-2.db");
	path_in_tmp(a3, sizeof(a3), "archive-refused.db");
	st = open_writer(live, 5);
	CHECK(st != NULL);
	if (st == NULL) {
		return;
	}
	memset(&rec, 0, sizeof(rec));
	rec.method = "test.note";
	rec.outcome = "ok";
	memset(&arec, 0, sizeof(arec));
	arec.principal = "archivist";
	for (int i = 0; i < 20; i++) {
		CHECK(tkm_store_write(st, NULL, NULL, &rec, NULL, why, sizeof(why)) == TKM_OK);
	}
	/* A refused check leaves no file and cuts nothing. */
	CHECK(tkm_store_audit_archive(st, a3, far, refuse_archive_file, NULL, &arec, &info, &seq,
	                              why, sizeof(why)) == TKM_E_CRYPTO);
	CHECK(access(a3, F_OK) != 0);
	CHECK(tkm_store_audit_archive(st, a1, far, check_archive_file, NULL, &arec, &info, &seq,
	                              why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(info.first_seq, 1);
	CHECK_EQ_INT(info.last_seq, 20);
	CHECK_EQ_INT(info.checkpoint, 20);
	CHECK_EQ_INT(seq, 21);
	/* Nothing signed after the anchor yet; nothing older than the cut-off. */
	CHECK(tkm_store_audit_archive(st, a2, far, check_archive_file, NULL, &arec, &info, &seq,
	                              why, sizeof(why)) == TKM_E_FAILED_PRECONDITION);
	for (int i = 0; i < 9; i++) {
		CHECK(tkm_store_write(st, NULL, NULL, &rec, NULL, why, sizeof(why)) == TKM_OK);
	}
	CHECK(tkm_store_audit_archive(st, a2, 1, check_archive_file, NULL, &arec, &info, &seq, why,
	                              sizeof(why)) == TKM_E_FAILED_PRECONDITION);
	/* Never over an existing file. */
	CHECK(tkm_store_audit_archive(st, a1, far, check_archive_file, NULL, &arec, &info, &seq,
	                              why, sizeof(why)) == TKM_E_ALREADY_EXISTS);
	CHECK(tkm_store_audit_archive(st, a2, far, check_archive_file, NULL, &arec, &info, &seq,
	                              why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(info.first_seq, 21);
	CHECK_EQ_INT(info.last_seq, 30);
	CHECK_EQ_INT(seq, 31);
	for (int i = 0; i < 9; i++) {
		CHECK(tkm_store_write(st, NULL, NULL, &rec, NULL, why, sizeof(why)) == TKM_OK);
	}
	tkm_store_close(st);
	expect_verify(a1, TKM_AUDIT_FAULT_NONE, 1);
	expect_verify(a2, TKM_AUDIT_FAULT_NONE, 21);
	expect_verify(live, TKM_AUDIT_FAULT_NONE, 31);

	/* Records cut later than the archive record says: 31..35 gone, anchor moved to 35. */
	path_in_tmp(copy, sizeof(copy), "archive-moved.db");
	CHECK(tkm_storefix_copy_db(live, copy) == SQLITE_OK);
	CHECK(tkm_storefix_run_sql(copy, "DELETE FROM audit WHERE seq <= 35; "
	                                 "DELETE FROM audit_checkpoint WHERE seq < 35; "
	                                 "UPDATE meta SET value = '35' WHERE key = "
	                                 "'audit_anchor_seq'") == SQLITE_OK);
	expect_verify(copy, TKM_AUDIT_FAULT_ANCHOR, 36);
	/* The anchor's checkpoint deleted. */
	path_in_tmp(copy, sizeof(copy), "archive-nocp.db");
	CHECK(tkm_storefix_copy_db(live, copy) == SQLITE_OK);
	CHECK(tkm_storefix_run_sql(copy, "DELETE FROM audit_checkpoint WHERE seq = 30") ==
	      SQLITE_OK);
	expect_verify(copy, TKM_AUDIT_FAULT_GENESIS, 31);
	/* The anchor removed: the chain seems to start at 31 instead of 1. */
	path_in_tmp(copy, sizeof(copy), "archive-noanchor.db");
	CHECK(tkm_storefix_copy_db(live, copy) == SQLITE_OK);
	CHECK(tkm_storefix_run_sql(copy, "DELETE FROM meta WHERE key = 'audit_anchor_seq'") ==
	      SQLITE_OK);
	expect_verify(copy, TKM_AUDIT_FAULT_GENESIS, 1);
	/* The archive record changed to match a forged cut. */
	path_in_tmp(copy, sizeof(copy), "archive-rec.db");
	CHECK(tkm_storefix_copy_db(live, copy) == SQLITE_OK);
	CHECK(tkm_storefix_run_sql(copy, "UPDATE audit SET principal = 'someone' WHERE seq = 31") ==
	      SQLITE_OK);
	expect_verify(copy, TKM_AUDIT_FAULT_CHANGED, 31);
}

int main(void)
{
	char cmd[300];

	if (sodium_init() < 0 || mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	crypto_sign_keypair(pk, sk);
	test_encoding();
	test_fail_closed();
	test_tamper();
	test_checkpoints();
	test_archive();
	test_group_commit();
	sodium_memzero(sk, sizeof(sk));
	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir) > 0 && system(cmd) != 0) {
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
	return tkm_test_report("store");
}
