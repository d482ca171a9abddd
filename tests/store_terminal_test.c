/*
 * store_terminal_test.c - the terminal registry's store layer
 * (service/tkm_store_terminal.c) on a real SQLite file, every change going
 * through the group-commit writer with its audit record, checkpoints signed
 * with a libsodium Ed25519 key. Rules the schema must hold whoever writes
 * (append-only histories, final states, no deletes) are attacked with raw
 * SQL behind the store's back. The audit chain must verify at the end.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "store_fixture.h"
#include "tkm_audit.h"
#include "tkm_store.h"
#include "tkm_store_terminal.h"
#include "tkm_test.h"
#include "tkm_why.h"

#define BULK       10000
#define BATCH      500
#define T0         1700000000000ull /* a fixed "now" in ms */
#define SEEN_SPLIT (T0 + 5000ull * 1000ull)

static char tmpdir[] = "/tmp/tkm-store-terminal-XXXXXX";
static uint8_t pk[crypto_sign_PUBLICKEYBYTES];
static uint8_t sk[crypto_sign_SECRETKEYBYTES];
static const uint8_t key_id[4] = {0x7e, 0x41, 0x00, 0x06};

static tkm_store *st;
static char db_path[256];
static uint64_t writes_ok; /* audit records the chain must hold */

static tkm_err test_sign(void *ctx, const uint8_t *msg, size_t msg_len,
                         uint8_t sig[static TKM_AUDIT_SIG_LEN], char *why, size_t why_len)
{
	(void)ctx;
	(void)why;
	(void)why_len;
	return crypto_sign_detached(sig, NULL, msg, msg_len, sk) == 0 ? TKM_OK : TKM_E_CRYPTO;
}

static void open_store(const char *name)
{
	tkm_store_writer_cfg cfg;
	char why[256] = "";
	int r = snprintf(db_path, sizeof(db_path), "%s/%s", tmpdir, name);

	if (r < 0 || (size_t)r >= sizeof(db_path)) {
		abort();
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.sign = test_sign;
	cfg.key_id = key_id;
	cfg.key_id_len = sizeof(key_id);
	cfg.checkpoint_every = 100;
	writes_ok = 0;
	if (tkm_store_open(db_path, &st, why, sizeof(why)) != TKM_OK ||
	    tkm_store_writer_start(st, &cfg, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "open %s: %s\n", db_path, why);
		abort();
	}
	CHECK_EQ_INT(tkm_store_schema_version(st), 5);
}

/* Sign the tail, verify the whole chain, close. */
static void close_and_verify(void)
{
	tkm_audit_report rep;
	char why[256] = "";

	CHECK(tkm_store_checkpoint_now(st, why, sizeof(why)) == TKM_OK);
	CHECK(tkm_audit_verify(st, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK_EQ_INT(rep.records, writes_ok);
	CHECK_EQ_INT(rep.unsigned_tail, 0);
	tkm_store_close(st);
	st = NULL;
	CHECK(tkm_audit_verify_file(db_path, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
}

/* Run change in the writer with an audit record; count it when kept. */
static tkm_err run(tkm_store_change_fn change, void *arg, const char *method, char *why,
                   size_t why_len)
{
	tkm_audit_rec rec;
	tkm_err err;

	memset(&rec, 0, sizeof(rec));
	rec.principal = "operator:tester";
	rec.role = "security_officer";
	rec.method = method;
	rec.outcome = "ok";
	err = tkm_store_write(st, change, arg, &rec, NULL, why, why_len);
	if (err == TKM_OK) {
		writes_ok++;
	}
	return err;
}

static void set_text(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap) {
		abort();
	}
	memcpy(dst, src, n + 1);
}

#define SET(field, s) set_text((field), sizeof(field), (s))

static void fmt(char *dst, size_t cap, const char *f, unsigned v)
{
	int r = snprintf(dst, cap, f, v);

	if (r < 0 || (size_t)r >= cap) {
		abort();
	}
}

static tkm_store_terminal make(const char *manufacturer, const char *serial)
{
	tkm_store_terminal t;

	memset(&t, 0, sizeof(t));
	SET(t.manufacturer, manufacturer);
	SET(t.serial, serial);
	SET(t.model, "V400m");
	SET(t.merchant, "M-1");
	SET(t.site, "site-a");
	SET(t.group, "north");
	SET(t.purchase_date, "2024-02-29");
	SET(t.notes, "counter 3");
	t.created_ms = T0;
	return t;
}

/* ---- Changes: one per store function ---- */

struct one {
	tkm_store_terminal t;
	int64_t id;
	tkm_store_import_result res;
};

static tkm_err ch_insert(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct one *a = arg;

	return tkm_store_tx_terminal_insert(tx, &a->t, &a->id, why, why_len);
}

static tkm_err ch_import(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct one *a = arg;

	return tkm_store_tx_terminal_import(tx, &a->t, &a->id, &a->res, why, why_len);
}

struct batch {
	const tkm_store_terminal *rows;
	int64_t *ids;
	size_t n;
	size_t counts[4]; /* by tkm_store_import_result */
};

static tkm_err ch_import_batch(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct batch *b = arg;
	tkm_store_import_result res;
	tkm_err err;

	memset(b->counts, 0, sizeof(b->counts));
	for (size_t i = 0; i < b->n; i++) {
		err = tkm_store_tx_terminal_import(tx, &b->rows[i], &b->ids[i], &res, why, why_len);
		if (err != TKM_OK) {
			return err;
		}
		b->counts[res]++;
	}
	return TKM_OK;
}

struct state_change {
	int64_t id;
	tkm_store_terminal_state from, to;
};

static tkm_err ch_state(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct state_change *a = arg;

	return tkm_store_tx_terminal_set_state(tx, a->id, a->from, a->to, why, why_len);
}

struct states {
	struct state_change *v;
	size_t n;
};

static tkm_err ch_states(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct states *a = arg;
	tkm_err err = TKM_OK;

	for (size_t i = 0; i < a->n && err == TKM_OK; i++) {
		err = tkm_store_tx_terminal_set_state(tx, a->v[i].id, a->v[i].from, a->v[i].to, why,
		                                      why_len);
	}
	return err;
}

struct enroll {
	int64_t id;
	const char *principal;
	uint8_t sign_pk[32], box_pk[32];
};

static tkm_err ch_enroll(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct enroll *a = arg;

	return tkm_store_tx_terminal_set_enrolled(tx, a->id, a->principal, a->sign_pk, a->box_pk,
	                                          T0 + 42, why, why_len);
}

struct touch {
	const tkm_store_terminal_seen *seen;
	size_t n, updated;
};

static tkm_err ch_touch(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct touch *a = arg;

	return tkm_store_tx_terminal_touch_many(tx, a->seen, a->n, &a->updated, why, why_len);
}

struct code {
	uint8_t hash[TKM_STORE_ENROLL_HASH_LEN];
	int64_t terminal_id;
	uint64_t created, expires, now;
	int64_t got_id;
	tkm_store_code_fault fault;
	struct enroll *then_enroll; /* consume, then enroll, in one change */
};

static tkm_err ch_code_insert(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct code *a = arg;

	return tkm_store_tx_enroll_code_insert(tx, a->hash, a->terminal_id, a->created, a->expires,
	                                       why, why_len);
}

static tkm_err ch_code_consume(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct code *a = arg;
	tkm_err err;

	a->got_id = -1;
	a->fault = (tkm_store_code_fault)-1;
	err = tkm_store_tx_enroll_code_consume(tx, a->hash, a->now, &a->got_id, &a->fault, why,
	                                       why_len);
	if (err == TKM_OK && a->then_enroll != NULL) {
		err = ch_enroll(tx, a->then_enroll, why, why_len);
	}
	return err;
}

struct hist {
	int64_t terminal_id;
	tkm_store_maintenance m;
	tkm_store_custody c;
	bool custody;
	int64_t seq;
};

static tkm_err ch_hist(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct hist *a = arg;

	if (a->custody) {
		return tkm_store_tx_custody_add(tx, a->terminal_id, &a->c, T0 + 7, &a->seq, why,
		                                why_len);
	}
	return tkm_store_tx_maintenance_add(tx, a->terminal_id, &a->m, T0 + 7, &a->seq, why,
	                                    why_len);
}

struct versions {
	int64_t id;
	const char *fw, *app;
};

static tkm_err ch_versions(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	struct versions *a = arg;

	return tkm_store_tx_terminal_set_versions(tx, a->id, a->fw, a->app, why, why_len);
}

static tkm_err insert(const tkm_store_terminal *t, int64_t *id)
{
	struct one a = {.t = *t};
	char why[256] = "";
	tkm_err err = run(ch_insert, &a, "terminal.add", why, sizeof(why));

	*id = a.id;
	return err;
}

static tkm_err set_state(int64_t id, tkm_store_terminal_state from, tkm_store_terminal_state to)
{
	struct state_change a = {id, from, to};
	char why[256] = "";

	return run(ch_state, &a, "terminal.state", why, sizeof(why));
}

static tkm_store_terminal get(int64_t id)
{
	tkm_store_terminal t;
	char why[256] = "";

	memset(&t, 0, sizeof(t));
	CHECK(tkm_store_terminal_get(st, id, &t, why, sizeof(why)) == TKM_OK);
	return t;
}

/* ---- Records, uniqueness among live records, validation ---- */

static void test_records(void)
{
	tkm_store_terminal t = make("Acme", "SN-1"), got;
	struct versions ver;
	int64_t id = 0, id2 = 0, id3 = 0, dup = 0;
	char why[256] = "";

	CHECK(insert(&t, &id) == TKM_OK);
	CHECK(id > 0);
	got = get(id);
	CHECK_STR(got.manufacturer, "Acme");
	CHECK_STR(got.serial, "SN-1");
	CHECK_STR(got.model, "V400m");
	CHECK_STR(got.merchant, "M-1");
	CHECK_STR(got.site, "site-a");
	CHECK_STR(got.group, "north");
	CHECK_STR(got.purchase_date, "2024-02-29");
	CHECK_STR(got.notes, "counter 3");
	CHECK_STR(got.firmware_version, "");
	CHECK_EQ_INT(got.state, TKM_STORE_TERMINAL_REGISTERED);
	CHECK_EQ_INT(got.created_ms, T0);
	CHECK_EQ_INT(got.enrolled_ms, 0);
	CHECK_EQ_INT(got.last_seen_ms, 0);
	CHECK(tkm_store_terminal_get(st, id + 1000, &got, why, sizeof(why)) == TKM_E_NOT_FOUND);

	/* The same hardware twice while live; another manufacturer is another device. */
	CHECK(insert(&t, &dup) == TKM_E_ALREADY_EXISTS);
	{
		struct one a = {.t = t};

		CHECK(run(ch_insert, &a, "terminal.add", why, sizeof(why)) == TKM_E_ALREADY_EXISTS);
		CHECK(strstr(why, "already registered") != NULL);
	}
	{
		tkm_store_terminal other = make("Verifone", "SN-1");

		CHECK(insert(&other, &dup) == TKM_OK);
	}

	/* Revoked: the same hardware comes back as a new record; the old one stays. */
	CHECK(set_state(id, TKM_STORE_TERMINAL_REGISTERED, TKM_STORE_TERMINAL_REVOKED) == TKM_OK);
	CHECK(tkm_store_terminal_get_hw(st, "Acme", "SN-1", &got, why, sizeof(why)) ==
	      TKM_E_NOT_FOUND);
	CHECK(insert(&t, &id2) == TKM_OK);
	CHECK(id2 > id);
	CHECK(tkm_store_terminal_get_hw(st, "Acme", "SN-1", &got, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(got.id, id2);
	CHECK_EQ_INT(get(id).state, TKM_STORE_TERMINAL_REVOKED);
	/* ... and again after a decommission. */
	CHECK(set_state(id2, TKM_STORE_TERMINAL_REGISTERED, TKM_STORE_TERMINAL_DECOMMISSIONED) ==
	      TKM_OK);
	CHECK(insert(&t, &id3) == TKM_OK);
	CHECK(insert(&t, &dup) == TKM_E_ALREADY_EXISTS);

	/* The partial unique index holds behind the store's back too. */
	CHECK(tkm_storefix_run_sql(db_path,
	                           "INSERT INTO terminal (manufacturer, serial, state, created) "
	                           "VALUES ('Acme', 'SN-1', 'registered', 1)") != SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path, "UPDATE terminal SET serial = 'SN-9' WHERE id = 1") !=
	      SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path, "DELETE FROM terminal WHERE state = 'revoked'") !=
	      SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path,
	                           "INSERT INTO terminal (manufacturer, serial, state, created) "
	                           "VALUES ('Acme', 'SN-77', 'active', 1)") != SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path, "INSERT INTO terminal (manufacturer, serial, state, "
	                                    "purchase_date, created) VALUES ('Acme', 'SN-78', "
	                                    "'registered', '2023-02-29', 1)") != SQLITE_OK);

	/* Bad input is refused by the store with a sentence. */
	{
		tkm_store_terminal b;

		b = make("Acme", "");
		CHECK(insert(&b, &dup) == TKM_E_INVALID_ARG);
		b = make("", "SN-2");
		CHECK(insert(&b, &dup) == TKM_E_INVALID_ARG);
		b = make("Acme", "SN-2");
		SET(b.purchase_date, "2023-02-29");
		CHECK(insert(&b, &dup) == TKM_E_INVALID_ARG);
		SET(b.purchase_date, "2023-2-28");
		CHECK(insert(&b, &dup) == TKM_E_INVALID_ARG);
		SET(b.purchase_date, "2000-02-29");
		CHECK(insert(&b, &dup) == TKM_OK);
		b = make("Acme", "SN-3");
		SET(b.site, "caf\xc3");
		CHECK(insert(&b, &dup) == TKM_E_INVALID_ARG);
		b = make("Acme", "SN-3");
		SET(b.model, "a\x01");
		CHECK(insert(&b, &dup) == TKM_E_INVALID_ARG);
		b = make("Acme", "SN-3");
		memset(b.serial, 'x', sizeof(b.serial)); /* no NUL within the field */
		CHECK(insert(&b, &dup) == TKM_E_INVALID_ARG);
	}

	/* Versions reported by the device. */
	ver = (struct versions){id3, "fw-1.2", "app-7"};
	CHECK(run(ch_versions, &ver, "terminal.checkin", why, sizeof(why)) == TKM_OK);
	got = get(id3);
	CHECK_STR(got.firmware_version, "fw-1.2");
	CHECK_STR(got.app_version, "app-7");
	ver = (struct versions){id3, NULL, ""};
	CHECK(run(ch_versions, &ver, "terminal.checkin", why, sizeof(why)) == TKM_OK);
	CHECK_STR(get(id3).firmware_version, "");
	ver = (struct versions){id3 + 1000, "x", "y"};
	CHECK(run(ch_versions, &ver, "terminal.checkin", why, sizeof(why)) == TKM_E_NOT_FOUND);
}

/* ---- Lifecycle, enrollment and the keys bound ---- */

static void test_states(void)
{
	tkm_store_terminal t = make("Ingenico", "L-1"), got;
	tkm_store_terminal_keys keys;
	struct enroll e = {.principal = "terminal:ingenico-l-1"};
	int64_t id = 0, id2 = 0;
	char why[256] = "";

	randombytes_buf(e.sign_pk, sizeof(e.sign_pk));
	randombytes_buf(e.box_pk, sizeof(e.box_pk));
	CHECK(insert(&t, &id) == TKM_OK);
	e.id = id;

	/* Not in `from`: conflict, and the sentence says what it is. */
	{
		struct state_change a = {id, TKM_STORE_TERMINAL_ACTIVE,
		                         TKM_STORE_TERMINAL_SUSPENDED};

		CHECK(run(ch_state, &a, "terminal.suspend", why, sizeof(why)) == TKM_E_CONFLICT);
		CHECK(strstr(why, "is registered, not active") != NULL);
	}
	CHECK(set_state(id + 1000, TKM_STORE_TERMINAL_REGISTERED, TKM_STORE_TERMINAL_ACTIVE) ==
	      TKM_E_NOT_FOUND);
	CHECK(set_state(id, TKM_STORE_TERMINAL_ANY, TKM_STORE_TERMINAL_ACTIVE) ==
	      TKM_E_INVALID_ARG);
	/* Active needs keys bound: set_state alone cannot get there. */
	CHECK(set_state(id, TKM_STORE_TERMINAL_REGISTERED, TKM_STORE_TERMINAL_ACTIVE) ==
	      TKM_E_CONFLICT);
	CHECK(tkm_store_terminal_keys_get(st, id, &keys, why, sizeof(why)) == TKM_E_NOT_FOUND);

	CHECK(run(ch_enroll, &e, "terminal.enroll", why, sizeof(why)) == TKM_OK);
	got = get(id);
	CHECK_EQ_INT(got.state, TKM_STORE_TERMINAL_ACTIVE);
	CHECK_EQ_INT(got.enrolled_ms, T0 + 42);
	CHECK(tkm_store_terminal_keys_get(st, id, &keys, why, sizeof(why)) == TKM_OK);
	CHECK_STR(keys.principal, "terminal:ingenico-l-1");
	CHECK(sodium_memcmp(keys.sign_pk, e.sign_pk, 32) == 0);
	CHECK(sodium_memcmp(keys.box_pk, e.box_pk, 32) == 0);
	CHECK_EQ_INT(keys.bound_ms, T0 + 42);
	memset(&got, 0, sizeof(got));
	memset(&keys, 0, sizeof(keys));
	CHECK(tkm_store_terminal_by_principal(st, "terminal:ingenico-l-1", &got, &keys, why,
	                                      sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(got.id, id);
	CHECK_STR(got.serial, "L-1");
	CHECK_EQ_INT(keys.terminal_id, id);
	CHECK(sodium_memcmp(keys.box_pk, e.box_pk, 32) == 0);
	CHECK(tkm_store_terminal_by_principal(st, "terminal:nobody", &got, &keys, why,
	                                      sizeof(why)) == TKM_E_NOT_FOUND);

	/* An active terminal is not enrolled again. */
	CHECK(run(ch_enroll, &e, "terminal.enroll", why, sizeof(why)) == TKM_E_CONFLICT);
	CHECK(strstr(why, "is active") != NULL);
	/* A principal is bound to one record only. */
	{
		tkm_store_terminal t2 = make("Ingenico", "L-2");
		struct enroll e2 = e;

		CHECK(insert(&t2, &id2) == TKM_OK);
		e2.id = id2;
		CHECK(run(ch_enroll, &e2, "terminal.enroll", why, sizeof(why)) ==
		      TKM_E_ALREADY_EXISTS);
		CHECK_EQ_INT(get(id2).state, TKM_STORE_TERMINAL_REGISTERED);
	}

	CHECK(set_state(id, TKM_STORE_TERMINAL_ACTIVE, TKM_STORE_TERMINAL_SUSPENDED) == TKM_OK);
	CHECK(set_state(id, TKM_STORE_TERMINAL_ACTIVE, TKM_STORE_TERMINAL_SUSPENDED) ==
	      TKM_E_CONFLICT);
	CHECK(set_state(id, TKM_STORE_TERMINAL_SUSPENDED, TKM_STORE_TERMINAL_REGISTERED) ==
	      TKM_E_CONFLICT);
	CHECK(set_state(id, TKM_STORE_TERMINAL_SUSPENDED, TKM_STORE_TERMINAL_ACTIVE) == TKM_OK);
	CHECK(set_state(id, TKM_STORE_TERMINAL_ACTIVE, TKM_STORE_TERMINAL_REVOKED) == TKM_OK);
	/* Final. */
	CHECK(set_state(id, TKM_STORE_TERMINAL_REVOKED, TKM_STORE_TERMINAL_ACTIVE) ==
	      TKM_E_CONFLICT);
	{
		struct state_change a = {id, TKM_STORE_TERMINAL_REVOKED,
		                         TKM_STORE_TERMINAL_DECOMMISSIONED};

		CHECK(run(ch_state, &a, "terminal.decommission", why, sizeof(why)) ==
		      TKM_E_CONFLICT);
		CHECK(strstr(why, "final") != NULL);
	}
	CHECK_EQ_INT(get(id).state, TKM_STORE_TERMINAL_REVOKED);
	/* The revoked record keeps its keys, so its principal still resolves to it. */
	CHECK(tkm_store_terminal_by_principal(st, "terminal:ingenico-l-1", &got, &keys, why,
	                                      sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(got.state, TKM_STORE_TERMINAL_REVOKED);
	CHECK(tkm_storefix_run_sql(
	          db_path, "UPDATE terminal SET state = 'active' WHERE state = 'revoked'") !=
	      SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path, "UPDATE terminal_device SET box_pk = sign_pk") !=
	      SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path, "DELETE FROM terminal_device") != SQLITE_OK);

	CHECK_STR(tkm_store_terminal_state_name(TKM_STORE_TERMINAL_SUSPENDED), "suspended");
	CHECK(tkm_store_terminal_state_name(TKM_STORE_TERMINAL_ANY) == NULL);
	CHECK(tkm_store_terminal_state_name((tkm_store_terminal_state)99) == NULL);
	{
		tkm_store_terminal_state s;

		CHECK(tkm_store_terminal_state_parse("revoked", 7, &s) &&
		      s == TKM_STORE_TERMINAL_REVOKED);
		CHECK(!tkm_store_terminal_state_parse("revoke", 6, &s));
		CHECK(!tkm_store_terminal_state_parse("revokedx", 8, &s));
	}
}

/* ---- Histories ---- */

struct hist_seen {
	int64_t seqs[16];
	size_t n;
	char first[TKM_STORE_TERMINAL_NOTES_MAX + 1];
};

static tkm_err on_maint(void *arg, const tkm_store_maintenance *m)
{
	struct hist_seen *h = arg;

	if (h->n == 0) {
		SET(h->first, m->description);
	}
	h->seqs[h->n++] = m->seq;
	return TKM_OK;
}

static tkm_err on_custody(void *arg, const tkm_store_custody *c)
{
	struct hist_seen *h = arg;

	if (h->n == 0) {
		SET(h->first, c->counterparty);
		if (c->action != TKM_STORE_CUSTODY_RETURNED || strcmp(c->person, "bob") != 0 ||
		    strcmp(c->at, "2024-05-02") != 0 || c->recorded_ms != T0 + 7) {
			return TKM_E_INTERNAL;
		}
	}
	h->seqs[h->n++] = c->seq;
	return TKM_OK;
}

static void test_histories(void)
{
	tkm_store_terminal t = make("PAX", "H-1");
	struct hist h;
	struct hist_seen seen;
	int64_t id = 0, other = 0;
	bool more = false;
	char why[256] = "";

	CHECK(insert(&t, &id) == TKM_OK);
	t = make("PAX", "H-2");
	CHECK(insert(&t, &other) == TKM_OK);

	for (int i = 0; i < 5; i++) {
		char desc[32];

		memset(&h, 0, sizeof(h));
		h.terminal_id = i == 2 ? other : id;
		SET(h.m.at, "2024-05-01");
		SET(h.m.kind, "repair");
		fmt(desc, sizeof(desc), "replaced keypad %u", (unsigned)i);
		SET(h.m.description, desc);
		SET(h.m.technician, "tech-9");
		CHECK(run(ch_hist, &h, "terminal.maintenance.add", why, sizeof(why)) == TKM_OK);
		CHECK(h.seq > 0);
	}
	memset(&seen, 0, sizeof(seen));
	CHECK(tkm_store_maintenance_page(st, id, 0, 3, on_maint, &seen, &more, why, sizeof(why)) ==
	      TKM_OK);
	CHECK_EQ_INT(seen.n, 3);
	CHECK(more);
	CHECK_STR(seen.first, "replaced keypad 0");
	{
		int64_t last = seen.seqs[2];

		memset(&seen, 0, sizeof(seen));
		CHECK(tkm_store_maintenance_page(st, id, last, 3, on_maint, &seen, &more, why,
		                                 sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(seen.n, 1);
		CHECK(!more);
		CHECK_STR(seen.first, "replaced keypad 4");
	}
	CHECK(tkm_store_maintenance_page(st, id, 0, 0, on_maint, &seen, &more, why, sizeof(why)) ==
	      TKM_E_INVALID_ARG);

	/* Refused: no such terminal, a bad date, missing technician. */
	h.terminal_id = id + 1000;
	CHECK(run(ch_hist, &h, "terminal.maintenance.add", why, sizeof(why)) == TKM_E_NOT_FOUND);
	h.terminal_id = id;
	SET(h.m.at, "2024-13-01");
	CHECK(run(ch_hist, &h, "terminal.maintenance.add", why, sizeof(why)) == TKM_E_INVALID_ARG);
	SET(h.m.at, "2024-12-01");
	SET(h.m.technician, "");
	CHECK(run(ch_hist, &h, "terminal.maintenance.add", why, sizeof(why)) == TKM_E_INVALID_ARG);

	memset(&h, 0, sizeof(h));
	h.custody = true;
	h.terminal_id = id;
	SET(h.c.at, "2024-05-02");
	h.c.action = TKM_STORE_CUSTODY_RETURNED;
	SET(h.c.person, "bob");
	SET(h.c.counterparty, "depot");
	CHECK(run(ch_hist, &h, "terminal.custody.add", why, sizeof(why)) == TKM_OK);
	SET(h.c.counterparty, "");
	h.c.action = TKM_STORE_CUSTODY_RECEIVED;
	CHECK(run(ch_hist, &h, "terminal.custody.add", why, sizeof(why)) == TKM_OK);
	h.c.action = (tkm_store_custody_action)7;
	CHECK(run(ch_hist, &h, "terminal.custody.add", why, sizeof(why)) == TKM_E_INVALID_ARG);
	h.c.action = TKM_STORE_CUSTODY_RECEIVED;
	SET(h.c.person, "");
	CHECK(run(ch_hist, &h, "terminal.custody.add", why, sizeof(why)) == TKM_E_INVALID_ARG);
	memset(&seen, 0, sizeof(seen));
	CHECK(tkm_store_custody_page(st, id, 0, 10, on_custody, &seen, &more, why, sizeof(why)) ==
	      TKM_OK);
	CHECK_EQ_INT(seen.n, 2);
	CHECK(!more);
	CHECK_STR(seen.first, "depot");
	memset(&seen, 0, sizeof(seen));
	CHECK(tkm_store_custody_page(st, other, 0, 10, on_custody, &seen, &more, why,
	                             sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(seen.n, 0);

	/* Append-only whoever writes. */
	CHECK(tkm_storefix_run_sql(db_path, "UPDATE terminal_maintenance SET kind = 'x'") !=
	      SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path, "DELETE FROM terminal_maintenance") != SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path, "UPDATE terminal_custody SET person = 'eve'") !=
	      SQLITE_OK);
	CHECK(tkm_storefix_run_sql(db_path, "DELETE FROM terminal_custody WHERE seq = 1") !=
	      SQLITE_OK);
	memset(&seen, 0, sizeof(seen));
	CHECK(tkm_store_maintenance_page(st, id, 0, 10, on_maint, &seen, &more, why, sizeof(why)) ==
	      TKM_OK);
	CHECK_EQ_INT(seen.n, 4);
}

/* ---- Enrollment codes ---- */

static void test_codes(void)
{
	tkm_store_terminal t = make("Castles", "C-1");
	struct code a, b;
	struct enroll e = {.principal = "terminal:castles-c-1"};
	int64_t id = 0, id2 = 0;
	char why[256] = "";

	CHECK(insert(&t, &id) == TKM_OK);
	memset(&a, 0, sizeof(a));
	randombytes_buf(a.hash, sizeof(a.hash));
	a.terminal_id = id;
	a.created = T0;
	a.expires = T0 + 1000;
	CHECK(run(ch_code_insert, &a, "terminal.enroll_code", why, sizeof(why)) == TKM_OK);
	/* The same hash twice. */
	CHECK(run(ch_code_insert, &a, "terminal.enroll_code", why, sizeof(why)) ==
	      TKM_E_ALREADY_EXISTS);
	b = a;
	randombytes_buf(b.hash, sizeof(b.hash));
	b.expires = b.created;
	CHECK(run(ch_code_insert, &b, "terminal.enroll_code", why, sizeof(why)) ==
	      TKM_E_INVALID_ARG);
	b.expires = T0 + 1000;
	b.terminal_id = id + 1000;
	CHECK(run(ch_code_insert, &b, "terminal.enroll_code", why, sizeof(why)) == TKM_E_NOT_FOUND);

	/* Unknown (mistyped) code. */
	b.now = T0 + 1;
	CHECK(run(ch_code_consume, &b, "terminal.enroll", why, sizeof(why)) == TKM_E_NOT_FOUND);
	CHECK_EQ_INT(b.fault, TKM_STORE_CODE_UNKNOWN);
	CHECK_EQ_INT(b.got_id, 0);
	/* Expired at exactly its time. */
	a.now = T0 + 1000;
	CHECK(run(ch_code_consume, &a, "terminal.enroll", why, sizeof(why)) ==
	      TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(a.fault, TKM_STORE_CODE_EXPIRED);
	CHECK_EQ_INT(a.got_id, id);

	/*
	 * Consumed together with an enrollment that fails: both roll back, so the
	 * code is still unused. (The terminal is made active by another path first.)
	 */
	{
		tkm_store_terminal t2 = make("Castles", "C-2");
		struct enroll e2 = {.principal = "terminal:castles-c-2"};
		struct code c2;

		CHECK(insert(&t2, &id2) == TKM_OK);
		memset(&c2, 0, sizeof(c2));
		randombytes_buf(c2.hash, sizeof(c2.hash));
		c2.terminal_id = id2;
		c2.created = T0;
		c2.expires = T0 + 1000;
		CHECK(run(ch_code_insert, &c2, "terminal.enroll_code", why, sizeof(why)) == TKM_OK);
		e2.id = id2;
		randombytes_buf(e2.sign_pk, 32);
		randombytes_buf(e2.box_pk, 32);
		CHECK(run(ch_enroll, &e2, "terminal.enroll", why, sizeof(why)) == TKM_OK);
		c2.now = T0 + 10;
		c2.then_enroll = &e2;
		CHECK(run(ch_code_consume, &c2, "terminal.enroll", why, sizeof(why)) ==
		      TKM_E_CONFLICT);
		c2.then_enroll = NULL;
		CHECK(run(ch_code_consume, &c2, "terminal.enroll", why, sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(c2.fault, TKM_STORE_CODE_OK);
		CHECK_EQ_INT(c2.got_id, id2);
		/* No new codes for an active terminal. */
		randombytes_buf(c2.hash, sizeof(c2.hash));
		CHECK(run(ch_code_insert, &c2, "terminal.enroll_code", why, sizeof(why)) ==
		      TKM_E_FAILED_PRECONDITION);
	}

	/* A newer code supersedes the older unused one. */
	a.created = T0 + 2000;
	a.expires = T0 + 2000 + 86400000ull;
	randombytes_buf(a.hash, sizeof(a.hash));
	CHECK(run(ch_code_insert, &a, "terminal.enroll_code", why, sizeof(why)) == TKM_OK);
	b = a;
	b.created = T0 + 3000;
	randombytes_buf(b.hash, sizeof(b.hash));
	CHECK(run(ch_code_insert, &b, "terminal.enroll_code", why, sizeof(why)) == TKM_OK);
	a.now = T0 + 4000;
	CHECK(run(ch_code_consume, &a, "terminal.enroll", why, sizeof(why)) ==
	      TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(a.fault, TKM_STORE_CODE_EXPIRED);

	/* The good one: consumed and enrolled in one change; then it is used. */
	e.id = id;
	randombytes_buf(e.sign_pk, 32);
	randombytes_buf(e.box_pk, 32);
	b.now = T0 + 4000;
	b.then_enroll = &e;
	CHECK(run(ch_code_consume, &b, "terminal.enroll", why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(b.fault, TKM_STORE_CODE_OK);
	CHECK_EQ_INT(b.got_id, id);
	CHECK_EQ_INT(get(id).state, TKM_STORE_TERMINAL_ACTIVE);
	b.then_enroll = NULL;
	b.now = T0 + 5000;
	CHECK(run(ch_code_consume, &b, "terminal.enroll", why, sizeof(why)) ==
	      TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(b.fault, TKM_STORE_CODE_USED);
	CHECK_EQ_INT(b.got_id, id);
	CHECK(strstr(why, "used") != NULL);
}

/* ---- Last seen ---- */

static void test_touch(void)
{
	tkm_store_terminal t = make("Newland", "N-1");
	tkm_store_terminal_seen seen[3];
	struct touch a;
	int64_t x = 0, y = 0;
	char why[256] = "";

	CHECK(insert(&t, &x) == TKM_OK);
	t = make("Newland", "N-2");
	CHECK(insert(&t, &y) == TKM_OK);
	seen[0] = (tkm_store_terminal_seen){x, T0 + 100};
	seen[1] = (tkm_store_terminal_seen){y + 1000, T0 + 100}; /* no such record */
	seen[2] = (tkm_store_terminal_seen){y, T0 + 200};
	a = (struct touch){seen, 3, 99};
	CHECK(run(ch_touch, &a, "terminal.seen", why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(a.updated, 2);
	CHECK_EQ_INT(get(x).last_seen_ms, T0 + 100);
	CHECK_EQ_INT(get(y).last_seen_ms, T0 + 200);
	/* An older batch written late never moves last seen back. */
	seen[0].ts_ms = T0 + 50;
	seen[2].ts_ms = T0 + 300;
	CHECK(run(ch_touch, &a, "terminal.seen", why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(a.updated, 1);
	CHECK_EQ_INT(get(x).last_seen_ms, T0 + 100);
	CHECK_EQ_INT(get(y).last_seen_ms, T0 + 300);
	a.n = 0;
	CHECK(run(ch_touch, &a, "terminal.seen", why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(a.updated, 0);
	seen[0].ts_ms = UINT64_MAX;
	a.n = 1;
	CHECK(run(ch_touch, &a, "terminal.seen", why, sizeof(why)) == TKM_E_INVALID_ARG);
}

/* ---- 10,000 records: import, idempotency, filters and cursor pages ---- */

static tkm_store_terminal *rows;
static int64_t *ids;

static void make_row(unsigned i, tkm_store_terminal *t)
{
	memset(t, 0, sizeof(*t));
	SET(t->manufacturer, i % 2 == 0 ? "Acme" : "Verifone");
	fmt(t->serial, sizeof(t->serial), "SN%05u", i);
	SET(t->model, i % 3 == 0 ? "A920" : "V400m");
	fmt(t->merchant, sizeof(t->merchant), "M%u", i % 10);
	fmt(t->site, sizeof(t->site), "S%u", i % 25);
	if (i % 11 != 0) { /* some have no group */
		fmt(t->group, sizeof(t->group), "G%u", i % 7);
	}
	fmt(t->purchase_date, sizeof(t->purchase_date), "2023-01-%02u", 1 + i % 28);
	t->created_ms = T0;
}

static tkm_store_terminal_state model_state(unsigned i)
{
	if (i % 13 == 0) {
		return TKM_STORE_TERMINAL_REVOKED;
	}
	if (i % 17 == 0) {
		return TKM_STORE_TERMINAL_DECOMMISSIONED;
	}
	return TKM_STORE_TERMINAL_REGISTERED;
}

/* 0: never seen */
static uint64_t model_seen(unsigned i)
{
	return i % 3 == 0 ? 0 : T0 + (uint64_t)i * 1000;
}

static void import_all(size_t want[4])
{
	struct batch b;
	size_t total[4] = {0, 0, 0, 0};
	char why[256] = "";

	for (size_t at = 0; at < BULK; at += BATCH) {
		memset(&b, 0, sizeof(b));
		b.rows = rows + at;
		b.ids = ids + at;
		b.n = BATCH;
		CHECK(run(ch_import_batch, &b, "terminal.import", why, sizeof(why)) == TKM_OK);
		for (int k = 0; k < 4; k++) {
			total[k] += b.counts[k];
		}
	}
	for (int k = 1; k < 4; k++) {
		CHECK_EQ_INT(total[k], want[k]);
	}
}

struct collect {
	int64_t *ids;
	size_t n, cap;
	int64_t last;
	bool order_ok;
	const tkm_store_terminal_filter *f;
	bool match_ok;
};

static tkm_err on_terminal(void *arg, const tkm_store_terminal *t)
{
	struct collect *c = arg;
	const tkm_store_terminal_filter *f = c->f;

	if (t->id <= c->last) {
		c->order_ok = false;
	}
	c->last = t->id;
	if ((f->merchant != NULL && strcmp(f->merchant, t->merchant) != 0) ||
	    (f->site != NULL && strcmp(f->site, t->site) != 0) ||
	    (f->group != NULL && strcmp(f->group, t->group) != 0) ||
	    (f->state != TKM_STORE_TERMINAL_ANY && f->state != t->state) ||
	    (f->seen_since_ms != 0 &&
	     (t->last_seen_ms == 0 || t->last_seen_ms < f->seen_since_ms)) ||
	    (f->not_seen_since_ms != 0 && t->last_seen_ms != 0 &&
	     t->last_seen_ms >= f->not_seen_since_ms)) {
		c->match_ok = false;
	}
	if (c->n == c->cap) {
		return TKM_E_RESOURCE_EXHAUSTED;
	}
	c->ids[c->n++] = t->id;
	return TKM_OK;
}

static bool same_ids(const int64_t *a, const int64_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i]) {
			return false;
		}
	}
	return true;
}

/* Page through f with limit and compare with the model: exactly the ids expected, in order. */
static void check_pages(const tkm_store_terminal_filter *f, size_t limit, const int64_t *want,
                        size_t nwant)
{
	struct collect c = {.cap = 2 * BULK, .order_ok = true, .f = f, .match_ok = true};
	int64_t after = 0;
	bool more = true;
	size_t pages = 0;
	char why[256] = "";

	c.ids = calloc(c.cap, sizeof(*c.ids));
	if (c.ids == NULL) {
		abort();
	}
	while (more) {
		size_t before = c.n;

		CHECK(tkm_store_terminal_page(st, f, after, limit, on_terminal, &c, &more, why,
		                              sizeof(why)) == TKM_OK);
		CHECK(c.n - before <= limit);
		if (more) {
			CHECK_EQ_INT(c.n - before, limit);
		}
		if (c.n == before) {
			break;
		}
		after = c.ids[c.n - 1];
		pages++;
		if (pages > BULK + 1) {
			break;
		}
	}
	CHECK(c.order_ok);
	CHECK(c.match_ok);
	CHECK_EQ_INT(c.n, nwant);
	CHECK(c.n == nwant && same_ids(c.ids, want, nwant));
	CHECK_EQ_INT(pages, (nwant + limit - 1) / limit);
	free(c.ids);
}

/* The model's ids matching f (the bulk database holds only the bulk rows). */
static size_t model_select(const tkm_store_terminal_filter *f, int64_t *out)
{
	size_t n = 0;

	for (unsigned i = 0; i < BULK; i++) {
		const tkm_store_terminal *t = &rows[i];
		uint64_t seen = model_seen(i);

		if ((f->merchant != NULL && strcmp(f->merchant, t->merchant) != 0) ||
		    (f->site != NULL && strcmp(f->site, t->site) != 0) ||
		    (f->group != NULL && strcmp(f->group, t->group) != 0) ||
		    (f->state != TKM_STORE_TERMINAL_ANY && f->state != model_state(i)) ||
		    (f->seen_since_ms != 0 && (seen == 0 || seen < f->seen_since_ms)) ||
		    (f->not_seen_since_ms != 0 && seen != 0 && seen >= f->not_seen_since_ms)) {
			continue;
		}
		out[n++] = ids[i];
	}
	return n;
}

static void test_bulk(void)
{
	static const struct {
		tkm_store_terminal_filter f;
		size_t limit;
	} cases[] = {
	    {{.merchant = NULL}, 1000},
	    {{.merchant = NULL}, 7},
	    {{.merchant = "M3"}, 97},
	    {{.site = "S7", .group = "G2"}, 10},
	    {{.group = "G0"}, 1},
	    {{.state = TKM_STORE_TERMINAL_REVOKED}, 50},
	    {{.state = TKM_STORE_TERMINAL_REGISTERED, .merchant = "M1"}, 333},
	    {{.seen_since_ms = SEEN_SPLIT}, 333},
	    {{.not_seen_since_ms = SEEN_SPLIT}, 1000},
	    {{.merchant = "M4",
	      .state = TKM_STORE_TERMINAL_DECOMMISSIONED,
	      .seen_since_ms = T0 + 1},
	     3},
	    {{.merchant = "no-such"}, 10},
	};
	size_t want[4] = {0, BULK, 0, 0};
	size_t nfinal = 0;
	int64_t *expect;
	tkm_store_terminal_seen *seen;
	struct states sc;
	char why[256] = "";
	bool more = false;

	rows = calloc(BULK, sizeof(*rows));
	ids = calloc(BULK, sizeof(*ids));
	expect = calloc(BULK, sizeof(*expect));
	seen = calloc(BULK, sizeof(*seen));
	sc.v = calloc(BULK, sizeof(*sc.v));
	if (rows == NULL || ids == NULL || expect == NULL || seen == NULL || sc.v == NULL) {
		abort();
	}
	for (unsigned i = 0; i < BULK; i++) {
		make_row(i, &rows[i]);
	}
	import_all(want);
	for (unsigned i = 1; i < BULK; i++) {
		CHECK(ids[i] > ids[i - 1]);
	}
	/* The same rows again: nothing new. */
	want[TKM_STORE_IMPORT_INSERTED] = 0;
	want[TKM_STORE_IMPORT_UNCHANGED] = BULK;
	import_all(want);

	/* States and last seen as the model says. */
	sc.n = 0;
	for (unsigned i = 0; i < BULK; i++) {
		if (model_state(i) != TKM_STORE_TERMINAL_REGISTERED) {
			sc.v[sc.n++] = (struct state_change){ids[i], TKM_STORE_TERMINAL_REGISTERED,
			                                     model_state(i)};
			nfinal++;
		}
	}
	CHECK(run(ch_states, &sc, "terminal.revoke", why, sizeof(why)) == TKM_OK);
	{
		struct touch a = {seen, 0, 0};

		for (unsigned i = 0; i < BULK; i++) {
			if (model_seen(i) != 0) {
				seen[a.n++] = (tkm_store_terminal_seen){ids[i], model_seen(i)};
			}
		}
		CHECK(run(ch_touch, &a, "terminal.seen", why, sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(a.updated, a.n);
	}

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t n = model_select(&cases[k].f, expect);

		if (k < 10) {
			CHECK(n > 0);
		}
		check_pages(&cases[k].f, cases[k].limit, expect, n);
	}
	{
		struct collect c = {.ids = expect, .cap = BULK, .order_ok = true};
		tkm_store_terminal_filter bad = {.state = (tkm_store_terminal_state)9};

		c.f = &bad;
		CHECK(tkm_store_terminal_page(st, NULL, 0, 0, on_terminal, &c, &more, why,
		                              sizeof(why)) == TKM_E_INVALID_ARG);
		CHECK(tkm_store_terminal_page(st, NULL, 0, TKM_STORE_PAGE_MAX + 1, on_terminal, &c,
		                              &more, why, sizeof(why)) == TKM_E_INVALID_ARG);
		CHECK(tkm_store_terminal_page(st, &bad, 0, 10, on_terminal, &c, &more, why,
		                              sizeof(why)) == TKM_E_INVALID_ARG);
	}

	/*
	 * A third import: the revoked and decommissioned rows have no live
	 * record any more, so they come back as new records (re-registration);
	 * everything else is unchanged. A fourth changes nothing.
	 */
	want[TKM_STORE_IMPORT_INSERTED] = nfinal;
	want[TKM_STORE_IMPORT_UNCHANGED] = BULK - nfinal;
	import_all(want);
	want[TKM_STORE_IMPORT_INSERTED] = 0;
	want[TKM_STORE_IMPORT_UNCHANGED] = BULK;
	import_all(want);

	/*
	 * A changed row: a registered record takes it; an active one refuses,
	 * and the whole batch with it (nothing half-imported).
	 */
	{
		struct one a = {.t = rows[1]};
		tkm_store_terminal got;
		struct enroll e = {.id = ids[2], .principal = "terminal:bulk-2"};
		tkm_store_terminal three[3] = {rows[4], rows[5], rows[2]};
		int64_t three_ids[3];
		struct batch b = {three, three_ids, 3, {0}};

		SET(a.t.site, "S-moved");
		SET(a.t.notes, "moved");
		CHECK(run(ch_import, &a, "terminal.import", why, sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(a.res, TKM_STORE_IMPORT_UPDATED);
		CHECK_EQ_INT(a.id, ids[1]);
		got = get(ids[1]);
		CHECK_STR(got.site, "S-moved");
		CHECK_STR(got.notes, "moved");
		CHECK_EQ_INT(got.last_seen_ms, model_seen(1)); /* untouched */
		CHECK(run(ch_import, &a, "terminal.import", why, sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(a.res, TKM_STORE_IMPORT_UNCHANGED);

		randombytes_buf(e.sign_pk, 32);
		randombytes_buf(e.box_pk, 32);
		CHECK(run(ch_enroll, &e, "terminal.enroll", why, sizeof(why)) == TKM_OK);
		/* Identical rows of an active terminal are still "unchanged". */
		a.t = rows[2];
		CHECK(run(ch_import, &a, "terminal.import", why, sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(a.res, TKM_STORE_IMPORT_UNCHANGED);
		/* Versions are the device's: not compared. */
		SET(a.t.firmware_version, "fw-other");
		CHECK(run(ch_import, &a, "terminal.import", why, sizeof(why)) == TKM_OK);
		CHECK_EQ_INT(a.res, TKM_STORE_IMPORT_UNCHANGED);

		SET(three[0].model, "changed-4");
		SET(three[1].model, "changed-5");
		SET(three[2].model, "changed-2");
		CHECK(run(ch_import_batch, &b, "terminal.import", why, sizeof(why)) ==
		      TKM_E_CONFLICT);
		CHECK(strstr(why, "is active") != NULL);
		CHECK_STR(get(ids[4]).model, rows[4].model);
		CHECK_STR(get(ids[5]).model, rows[5].model);
		CHECK_STR(get(ids[2]).model, rows[2].model);
	}
	/* The field checks apply to imports too. */
	{
		struct one a = {.t = rows[7]};

		SET(a.t.purchase_date, "2023-04-31");
		CHECK(run(ch_import, &a, "terminal.import", why, sizeof(why)) == TKM_E_INVALID_ARG);
		CHECK(strstr(why, "purchase date") != NULL);
	}

	free(sc.v);
	free(seen);
	free(expect);
	free(ids);
	free(rows);
}

int main(void)
{
	char cmd[300];

	if (sodium_init() < 0 || mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	crypto_sign_keypair(pk, sk);

	open_store("registry.db");
	test_records();
	test_states();
	test_histories();
	test_codes();
	test_touch();
	close_and_verify();

	open_store("bulk.db");
	test_bulk();
	close_and_verify();

	sodium_memzero(sk, sizeof(sk));
	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir) > 0 && system(cmd) != 0) {
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
	return tkm_test_report("store_terminal");
}
