/*
 * service_terminal_test.c - the terminal registry through tkmd: add, show,
 * list with filters and cursor, idempotent import with refused rows, the
 * lifecycle table of docs/terminals.md (resume under dual control, revoked
 * is final), the histories, and a station's site-scoped permissions.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "tkm_cbor.h"
#include "tkm_test.h"
#include "tkm_testenv.h"

static tkm_testenv *env;
static tkm_client *so1, *so2, *adm;

/* Call method with params (NULL: {}); *doc gets the decoded result on success. */
static tkm_err call(tkm_client *c, const char *method, tkm_cbor_w *params, tkm_cbor_doc **doc)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	const uint8_t *p = NULL;
	uint8_t *res = NULL;
	size_t n = 0, rlen = 0;
	tkm_status st;
	tkm_err err;

	*doc = NULL;
	if (params != NULL && tkm_cbor_w_finish(params, &p, &n) != TKM_OK) {
		return TKM_E_INTERNAL;
	}
	memset(&st, 0, sizeof(st));
	err = tkm_call_raw(c, method, p, n, 30000, &st, &res, &rlen);
	if (err == TKM_OK) {
		err = tkm_cbor_decode(res, rlen, &lim, doc, NULL, 0);
		tkm_free(res, rlen);
	} else if (getenv("TKM_TEST_VERBOSE") != NULL) {
		fprintf(stderr, "%s: %s (%s)\n", method, tkm_strerror(err), st.message);
	}
	return err;
}

static tkm_cbor_w *w_new(void)
{
	tkm_cbor_w *w = NULL;

	if (tkm_cbor_w_new(1 << 20, &w) != TKM_OK) {
		abort();
	}
	return w;
}

static uint64_t u_of(const tkm_cbor_doc *doc, const char *key)
{
	uint64_t v = 0;

	return doc != NULL && tkm_cbor_get_uint(tkm_cbor_map_get(tkm_cbor_root(doc), key), &v) ? v
	                                                                                       : 0;
}

static bool text_is(const tkm_cbor_doc *doc, const char *key, const char *want)
{
	return doc != NULL && tkm_cbor_text_eq(tkm_cbor_map_get(tkm_cbor_root(doc), key), want);
}

/* terminal.add with manufacturer, serial, merchant, site; returns the id or 0. */
static uint64_t add(tkm_client *c, const char *serial, const char *site, tkm_err want)
{
	tkm_cbor_w *w = w_new();
	tkm_cbor_doc *doc = NULL;
	uint64_t id;

	tkm_cbor_put_map(w, 4);
	tkm_cbor_put_cstr(w, "site");
	tkm_cbor_put_cstr(w, site);
	tkm_cbor_put_cstr(w, "serial");
	tkm_cbor_put_cstr(w, serial);
	tkm_cbor_put_cstr(w, "merchant");
	tkm_cbor_put_cstr(w, "m-1");
	tkm_cbor_put_cstr(w, "manufacturer");
	tkm_cbor_put_cstr(w, "Ingenico");
	CHECK_EQ_INT(call(c, "terminal.add", w, &doc), want);
	id = u_of(doc, "id");
	CHECK(want != TKM_OK || (id != 0 && text_is(doc, "state", "registered")));
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	return id;
}

static tkm_err by_id(tkm_client *c, const char *method, uint64_t id, const char *reason,
                     tkm_cbor_doc **doc)
{
	tkm_cbor_w *w = w_new();
	tkm_err err;

	tkm_cbor_put_map(w, reason != NULL ? 2 : 1);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	if (reason != NULL) {
		tkm_cbor_put_cstr(w, "reason");
		tkm_cbor_put_cstr(w, reason);
	}
	err = call(c, method, w, doc);
	tkm_cbor_w_free(w);
	return err;
}

static void expect_state(uint64_t id, const char *state)
{
	tkm_cbor_doc *doc = NULL;

	CHECK_EQ_INT(by_id(so1, "terminal.show", id, NULL, &doc), TKM_OK);
	CHECK(text_is(doc, "state", state));
	tkm_cbor_doc_free(doc);
}

/* Import n rows (serial PREFIX-i), with every tenth row bad when bad is set. */
static void import_rows(const char *prefix, size_t n, bool bad, uint64_t *ins, uint64_t *unch,
                        uint64_t *refused)
{
	tkm_cbor_w *w = w_new();
	tkm_cbor_doc *doc = NULL;
	char serial[64];

	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "rows");
	tkm_cbor_put_array(w, n);
	for (size_t i = 0; i < n; i++) {
		bool this_bad = bad && i % 10 == 9;

		CHECK(snprintf(serial, sizeof(serial), "%s-%zu", prefix, i) > 0);
		tkm_cbor_put_map(w, this_bad ? 3 : 4);
		tkm_cbor_put_cstr(w, "site");
		tkm_cbor_put_cstr(w, "s-2");
		tkm_cbor_put_cstr(w, "serial");
		tkm_cbor_put_cstr(w, serial);
		tkm_cbor_put_cstr(w, this_bad ? "purchase_date" : "manufacturer");
		tkm_cbor_put_cstr(w, this_bad ? "2026-02-30" : "Verifone");
		if (!this_bad) {
			tkm_cbor_put_cstr(w, "purchase_date");
			tkm_cbor_put_cstr(w, "2026-02-28");
		}
	}
	CHECK_EQ_INT(call(so1, "terminal.import", w, &doc), TKM_OK);
	*ins = u_of(doc, "inserted");
	*unch = u_of(doc, "unchanged");
	*refused = u_of(doc, "refused");
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
}

static void test_registry(void)
{
	uint64_t a, b, ins = 0, unch = 0, refused = 0, after = 0, seen = 0;
	tkm_cbor_doc *doc = NULL;

	a = add(so1, "SN-A", "s-1", TKM_OK);
	b = add(so1, "SN-B", "s-2", TKM_OK);
	/* One live record per piece of hardware. */
	(void)add(so1, "SN-A", "s-1", TKM_E_ALREADY_EXISTS);
	/* Adding terminals is not the admin's. */
	(void)add(adm, "SN-C", "s-1", TKM_E_PERMISSION_DENIED);
	CHECK(a != 0 && b != 0 && a != b);

	import_rows("IMP", 250, true, &ins, &unch, &refused);
	CHECK_EQ_INT(ins, 225);
	CHECK_EQ_INT(refused, 25);
	import_rows("IMP", 250, true, &ins, &unch, &refused);
	CHECK_EQ_INT(ins, 0);
	CHECK_EQ_INT(unch, 225);

	/* A filtered list, by cursor. */
	for (int pages = 0; pages < 20; pages++) {
		tkm_cbor_w *w = w_new();
		const tkm_cbor_val *next;

		tkm_cbor_put_map(w, 3);
		tkm_cbor_put_cstr(w, "site");
		tkm_cbor_put_cstr(w, "s-2");
		tkm_cbor_put_cstr(w, "after");
		tkm_cbor_put_uint(w, after);
		tkm_cbor_put_cstr(w, "limit");
		tkm_cbor_put_uint(w, 50);
		CHECK_EQ_INT(call(so1, "terminal.list", w, &doc), TKM_OK);
		tkm_cbor_w_free(w);
		if (doc == NULL) {
			break;
		}
		seen += tkm_cbor_count(tkm_cbor_map_get(tkm_cbor_root(doc), "terminals"));
		next = tkm_cbor_map_get(tkm_cbor_root(doc), "next");
		if (!tkm_cbor_get_uint(next, &after)) {
			tkm_cbor_doc_free(doc);
			break;
		}
		tkm_cbor_doc_free(doc);
	}
	CHECK_EQ_INT(seen, 226); /* SN-B and the 225 imported rows */
}

static void test_lifecycle(void)
{
	uint64_t id = add(so1, "SN-LIFE", "s-1", TKM_OK), approval;
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w;

	/* registered -> suspended is not in the table. */
	CHECK_EQ_INT(by_id(so1, "terminal.suspend", id, "test", &doc), TKM_E_FAILED_PRECONDITION);
	/* A reason is required. */
	CHECK_EQ_INT(by_id(so1, "terminal.revoke", id, NULL, &doc), TKM_E_BAD_REQUEST);
	CHECK_EQ_INT(by_id(so1, "terminal.show", 999999, NULL, &doc), TKM_E_NOT_FOUND);

	/* Histories append. */
	w = w_new();
	tkm_cbor_put_map(w, 5);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	tkm_cbor_put_cstr(w, "at");
	tkm_cbor_put_cstr(w, "2026-11-20");
	tkm_cbor_put_cstr(w, "kind");
	tkm_cbor_put_cstr(w, "repair");
	tkm_cbor_put_cstr(w, "technician");
	tkm_cbor_put_cstr(w, "tech-7");
	tkm_cbor_put_cstr(w, "description");
	tkm_cbor_put_cstr(w, "replaced the card reader");
	CHECK_EQ_INT(call(so1, "terminal.maintenance_add", w, &doc), TKM_OK);
	CHECK(u_of(doc, "seq") != 0);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	w = w_new();
	tkm_cbor_put_map(w, 4);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	tkm_cbor_put_cstr(w, "at");
	tkm_cbor_put_cstr(w, "2026-11-21");
	tkm_cbor_put_cstr(w, "action");
	tkm_cbor_put_cstr(w, "lent");
	tkm_cbor_put_cstr(w, "person");
	tkm_cbor_put_cstr(w, "ops-1");
	CHECK_EQ_INT(call(so1, "terminal.custody_add", w, &doc), TKM_E_BAD_REQUEST);
	tkm_cbor_w_free(w);

	/* Revoke is final: nothing brings it back, and the hardware registers anew. */
	CHECK_EQ_INT(by_id(so1, "terminal.revoke", id, "stolen from the shop", &doc), TKM_OK);
	CHECK(text_is(doc, "from", "registered") && text_is(doc, "state", "revoked"));
	tkm_cbor_doc_free(doc);
	expect_state(id, "revoked");
	CHECK_EQ_INT(by_id(so1, "terminal.decommission", id, "x", &doc), TKM_E_FAILED_PRECONDITION);
	/* resume is dual control: parked, and refused when the second person approves. */
	CHECK_EQ_INT(by_id(so1, "terminal.resume", id, "found it", &doc), TKM_OK);
	CHECK(text_is(doc, "status", "pending"));
	approval = u_of(doc, "approval_id");
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(by_id(so2, "approval.approve", approval, NULL, &doc), TKM_OK);
	CHECK(text_is(doc, "state", "failed"));
	tkm_cbor_doc_free(doc);
	expect_state(id, "revoked");
	CHECK(add(so1, "SN-LIFE", "s-1", TKM_OK) != id);
}

/* A station may see terminals of its own sites only (site:$assigned). */
static void test_station_scope(void)
{
	char key_path[400];
	uint8_t pk[32];
	tkm_client *st = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w;
	tkm_status sts;
	uint64_t here = add(so1, "SN-HERE", "s-1", TKM_OK),
	         there = add(so1, "SN-THERE", "s-9", TKM_OK);
	uint64_t approval;

	CHECK(snprintf(key_path, sizeof(key_path), "%s/station.key", tkm_testenv_dir(env)) > 0);
	CHECK_EQ_INT(tkm_device_keygen(key_path, pk, &sts), TKM_OK);
	w = w_new();
	tkm_cbor_put_map(w, 3);
	tkm_cbor_put_cstr(w, "kind");
	tkm_cbor_put_cstr(w, "station");
	tkm_cbor_put_cstr(w, "name");
	tkm_cbor_put_cstr(w, "station-1");
	tkm_cbor_put_cstr(w, "public_key");
	tkm_cbor_put_bytes(w, pk, sizeof(pk));
	/* Registering a station is dual control: a security officer approves. */
	CHECK_EQ_INT(call(adm, "device.register", w, &doc), TKM_OK);
	approval = u_of(doc, "approval_id");
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	CHECK_EQ_INT(by_id(so1, "approval.approve", approval, NULL, &doc), TKM_OK);
	CHECK(text_is(doc, "state", "executed"));
	tkm_cbor_doc_free(doc);
	w = w_new();
	tkm_cbor_put_map(w, 3);
	tkm_cbor_put_cstr(w, "role");
	tkm_cbor_put_cstr(w, "provisioning-station");
	tkm_cbor_put_cstr(w, "scope");
	tkm_cbor_put_cstr(w, "site:s-1");
	tkm_cbor_put_cstr(w, "principal");
	tkm_cbor_put_cstr(w, "device:station-1");
	CHECK_EQ_INT(call(adm, "role.assign", w, &doc), TKM_OK);
	approval = u_of(doc, "approval_id");
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	CHECK_EQ_INT(by_id(so1, "approval.approve", approval, NULL, &doc), TKM_OK);
	CHECK(text_is(doc, "state", "executed"));
	tkm_cbor_doc_free(doc);

	CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_ipc_url(env), &st), TKM_OK);
	CHECK_EQ_INT(tkm_client_use_device_key(st, "station-1", key_path, &sts), TKM_OK);
	CHECK_EQ_INT(by_id(st, "terminal.show", here, NULL, &doc), TKM_OK);
	CHECK(text_is(doc, "serial", "SN-HERE"));
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(by_id(st, "terminal.show", there, NULL, &doc), TKM_E_PERMISSION_DENIED);
	/* Nor may it list, add or revoke. */
	CHECK_EQ_INT(call(st, "terminal.list", NULL, &doc), TKM_E_PERMISSION_DENIED);
	CHECK_EQ_INT(by_id(st, "terminal.revoke", here, "x", &doc), TKM_E_PERMISSION_DENIED);
	tkm_client_close(st);
}

/* A device key file (the format of client/tkm_devsig.h) from a fresh seed; sk gets the key. */
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
	return ok;
}

/* The enroll call a terminal makes: keys, and the new key's signature over them and the code. */
static tkm_err enroll(const char *code, const char *serial, const uint8_t pk[32],
                      const uint8_t sk[64], tkm_cbor_doc **doc)
{
	uint8_t box_pk[32], box_sk[32], sig[64];
	char norm[64];
	size_t n = 0;
	tkm_cbor_w *m = w_new(), *w = w_new();
	tkm_client *anon = NULL;
	const uint8_t *msg;
	size_t msg_len;
	tkm_err err;

	for (const char *p = code; *p != '\0' && n + 1 < sizeof(norm); p++) {
		if (*p != '-') {
			norm[n++] = *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
		}
	}
	norm[n] = '\0';
	crypto_box_keypair(box_pk, box_sk);
	tkm_cbor_put_array(m, 6);
	tkm_cbor_put_cstr(m, "tkm enroll v1");
	tkm_cbor_put_cstr(m, norm);
	tkm_cbor_put_cstr(m, "Ingenico");
	tkm_cbor_put_cstr(m, serial);
	tkm_cbor_put_bytes(m, pk, 32);
	tkm_cbor_put_bytes(m, box_pk, 32);
	CHECK(tkm_cbor_w_finish(m, &msg, &msg_len) == TKM_OK);
	crypto_sign_detached(sig, NULL, msg, msg_len, sk);
	/* Canonical key order: shorter keys first, then bytewise. */
	tkm_cbor_put_map(w, 6);
	tkm_cbor_put_cstr(w, "sig");
	tkm_cbor_put_bytes(w, sig, sizeof(sig));
	tkm_cbor_put_cstr(w, "code");
	tkm_cbor_put_cstr(w, code);
	tkm_cbor_put_cstr(w, "box_pk");
	tkm_cbor_put_bytes(w, box_pk, 32);
	tkm_cbor_put_cstr(w, "serial");
	tkm_cbor_put_cstr(w, serial);
	tkm_cbor_put_cstr(w, "sign_pk");
	tkm_cbor_put_bytes(w, pk, 32);
	tkm_cbor_put_cstr(w, "manufacturer");
	tkm_cbor_put_cstr(w, "Ingenico");
	CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_ipc_url(env), &anon), TKM_OK);
	err = call(anon, "terminal.enroll", w, doc);
	tkm_client_close(anon);
	tkm_cbor_w_free(m);
	tkm_cbor_w_free(w);
	sodium_memzero(box_sk, sizeof(box_sk));
	return err;
}

static tkm_err enroll_code(tkm_client *c, const char *serial, char *code, size_t cap)
{
	tkm_cbor_w *w = w_new();
	tkm_cbor_doc *doc = NULL;
	const char *s;
	size_t n;
	tkm_err err;

	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "serial");
	tkm_cbor_put_cstr(w, serial);
	tkm_cbor_put_cstr(w, "manufacturer");
	tkm_cbor_put_cstr(w, "Ingenico");
	err = call(c, "terminal.enroll_code", w, &doc);
	if (err == TKM_OK) {
		CHECK(tkm_cbor_get_text(tkm_cbor_map_get(tkm_cbor_root(doc), "code"), &s, &n) &&
		      n < cap);
		memcpy(code, s, n < cap ? n : 0);
		code[n < cap ? n : 0] = '\0';
	}
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	return err;
}

static tkm_err checkin(tkm_client *t, const char *firmware)
{
	tkm_cbor_w *w = w_new();
	tkm_cbor_doc *doc = NULL;
	tkm_err err;

	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "firmware_version");
	tkm_cbor_put_cstr(w, firmware);
	err = call(t, "terminal.checkin", w, &doc);
	CHECK(err != TKM_OK ||
	      tkm_cbor_is(tkm_cbor_map_get(tkm_cbor_root(doc), "actions"), TKM_CBOR_ARRAY));
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	return err;
}

/* Code, enroll with tkm-terminal's message, check in, suspend, resume, revoke. */
static void test_enrollment(void)
{
	char code[64], code2[64], key_path[400], principal[64];
	uint8_t pk[32], sk[64];
	uint64_t id = add(so1, "SN-ENR", "s-1", TKM_OK), approval;
	tkm_cbor_doc *doc = NULL;
	tkm_client *t = NULL;
	tkm_status sts;
	const char *s;
	size_t n;

	CHECK(snprintf(key_path, sizeof(key_path), "%s/terminal.key", tkm_testenv_dir(env)) > 0);
	CHECK(device_key_file(key_path, pk, sk));
	CHECK_EQ_INT(enroll_code(so1, "SN-ENR", code, sizeof(code)), TKM_OK);
	CHECK(strlen(code) == 34); /* 28 base32 letters in groups of 4 */
	/* A mistyped code, and an unknown one. */
	CHECK_EQ_INT(enroll("AAAA", "SN-ENR", pk, sk, &doc), TKM_E_NOT_FOUND);
	CHECK_EQ_INT(enroll("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", "SN-ENR", pk, sk, &doc),
	             TKM_E_NOT_FOUND);
	/* A new code supersedes the older one. */
	CHECK_EQ_INT(enroll_code(so1, "SN-ENR", code2, sizeof(code2)), TKM_OK);
	CHECK_EQ_INT(enroll(code, "SN-ENR", pk, sk, &doc), TKM_E_FAILED_PRECONDITION);
	/* The code of another terminal's record. */
	CHECK_EQ_INT(enroll(code2, "SN-A", pk, sk, &doc), TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(enroll_code(so1, "SN-ENR", code2, sizeof(code2)), TKM_OK);
	CHECK_EQ_INT(enroll(code2, "SN-ENR", pk, sk, &doc), TKM_OK);
	CHECK(u_of(doc, "terminal") == id && text_is(doc, "state", "active"));
	CHECK(tkm_cbor_get_text(tkm_cbor_map_get(tkm_cbor_root(doc), "principal"), &s, &n) &&
	      n < sizeof(principal));
	memcpy(principal, s, n);
	principal[n] = '\0';
	tkm_cbor_doc_free(doc);
	/* Single use; and an active terminal gets no new code. */
	CHECK_EQ_INT(enroll(code2, "SN-ENR", pk, sk, &doc), TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(enroll_code(so1, "SN-ENR", code, sizeof(code)), TKM_E_FAILED_PRECONDITION);
	expect_state(id, "active");

	CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_ipc_url(env), &t), TKM_OK);
	CHECK_EQ_INT(tkm_client_use_device_key(t, principal, key_path, &sts), TKM_OK);
	CHECK_EQ_INT(checkin(t, "fw-1.0"), TKM_OK);
	/* A terminal acts on itself only. */
	CHECK_EQ_INT(by_id(t, "terminal.show", id, NULL, &doc), TKM_E_PERMISSION_DENIED);
	/* Last seen is written in batches (terminals.last_seen_flush_seconds = 1 here). */
	tkm_testenv_sleep_ms(1200);
	CHECK_EQ_INT(checkin(t, "fw-1.1"), TKM_OK);
	CHECK_EQ_INT(by_id(so1, "terminal.show", id, NULL, &doc), TKM_OK);
	CHECK(u_of(doc, "last_seen_ms") != 0);
	CHECK(text_is(doc, "firmware_version", "fw-1.1"));
	tkm_cbor_doc_free(doc);

	CHECK_EQ_INT(by_id(so1, "terminal.suspend", id, "under investigation", &doc), TKM_OK);
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(checkin(t, "fw-1.1"), TKM_E_PERMISSION_DENIED);
	/* Lifting a suspension: one asks, a second approves; not the same person. */
	CHECK_EQ_INT(by_id(so1, "terminal.resume", id, "cleared", &doc), TKM_OK);
	approval = u_of(doc, "approval_id");
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(by_id(so1, "approval.approve", approval, NULL, &doc), TKM_E_PERMISSION_DENIED);
	CHECK_EQ_INT(by_id(so2, "approval.approve", approval, NULL, &doc), TKM_OK);
	CHECK(text_is(doc, "state", "executed"));
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(checkin(t, "fw-1.1"), TKM_OK);

	/* Revoked: refused at its very next request. */
	CHECK_EQ_INT(by_id(so1, "terminal.revoke", id, "reported stolen", &doc), TKM_OK);
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(checkin(t, "fw-1.1"), TKM_E_UNAUTHENTICATED);
	tkm_client_close(t);
	sodium_memzero(sk, sizeof(sk));
}

/* Run a tool (argv[0] a path) with the env's environment; stdout into out. */
static int run_tool(const char *const *argv, const char *out)
{
	int status = -1;

	if (tkm_testenv_run(env, argv, out, NULL, 60000, &status) != TKM_OK) {
		return -1;
	}
	return status;
}

/* The last "KEY VALUE" word after key in file, e.g. "enrollment code: XXXX". */
static bool word_after(const char *path, const char *key, char *buf, size_t cap)
{
	char *text = tkm_testenv_read_file(path, NULL), *p;
	size_t n = 0;

	if (text == NULL || (p = strstr(text, key)) == NULL) {
		free(text);
		return false;
	}
	p += strlen(key);
	while (*p == ' ') {
		p++;
	}
	while (p[n] != '\0' && p[n] != '\n' && p[n] != ' ' && n + 1 < cap) {
		n++;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	free(text);
	return n > 0;
}

/*
 * The people's path with the real tools: tkmctl imports a CSV file twice,
 * a station (tkm-station) gets a code, the terminal (tkm-terminal) enrolls
 * and checks in, tkmctl lists and exports.
 */
static void test_tools(void)
{
	char dir_key[400], out[400], csv[400], state_dir[400], session[400], pk_hex[80], code[64];
	char exported[400];
	const char *url = tkm_testenv_ipc_url(env);
	uint8_t pk[32];
	size_t pk_len = 0;
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w;
	uint64_t approval;
	FILE *f;

	CHECK(snprintf(dir_key, sizeof(dir_key), "%s/station-9.key", tkm_testenv_dir(env)) > 0);
	CHECK(snprintf(out, sizeof(out), "%s/tool.out", tkm_testenv_dir(env)) > 0);
	CHECK(snprintf(csv, sizeof(csv), "%s/terminals.csv", tkm_testenv_dir(env)) > 0);
	CHECK(snprintf(exported, sizeof(exported), "%s/export.csv", tkm_testenv_dir(env)) > 0);
	CHECK(snprintf(state_dir, sizeof(state_dir), "%s/pos-1", tkm_testenv_dir(env)) > 0);
	CHECK(snprintf(session, sizeof(session), "%s/tkmctl.session", tkm_testenv_dir(env)) > 0);
	CHECK_EQ_INT(tkm_testenv_session_file(env, "officer1", session), TKM_OK);

	/* tkmctl terminal import: 3 good rows, 1 bad; then the same file again. */
	f = fopen(csv, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs("Serial,Manufacturer,Site,Merchant\n"
		      "POS-1,Ingenico,s-1,m-1\n"
		      "POS-2,Ingenico,s-1,m-1\n"
		      "POS 3,Ingenico,s-1,m-1\n"
		      "POS-4,Ingenico,s-2,m-1\n",
		      f);
		fclose(f);
	}
	{
		const char *argv[] = {TKM_TKMCTL_PATH, "--url", url, "terminal",
		                      "import",        csv,     NULL};

		CHECK_EQ_INT(run_tool(argv, out), 1); /* one bad row */
		CHECK(word_after(out, "inserted", pk_hex, sizeof(pk_hex)) &&
		      strcmp(pk_hex, "3,") == 0);
		CHECK_EQ_INT(run_tool(argv, out), 1);
		CHECK(word_after(out, "inserted", pk_hex, sizeof(pk_hex)) &&
		      strcmp(pk_hex, "0,") == 0);
	}

	/* 10,000 rows with 50 bad ones, twice: nothing is duplicated the second time. */
	f = fopen(csv, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs("serial,manufacturer,merchant,site,group,purchase_date\n", f);
		for (int i = 0; i < 10000; i++) {
			fprintf(f, "BULK-%05d,Verifone,m-9,s-%d,g-%d,%s\n", i, i % 7, i % 3,
			        i % 200 == 199 ? "2026-13-01" : "2025-06-30");
		}
		fclose(f);
	}
	{
		const char *argv[] = {TKM_TKMCTL_PATH, "--url", url, "terminal",
		                      "import",        csv,     NULL};
		uint64_t t0 = tkm_testenv_now_us();

		CHECK_EQ_INT(run_tool(argv, out), 1);
		CHECK(word_after(out, "inserted", pk_hex, sizeof(pk_hex)) &&
		      strcmp(pk_hex, "9950,") == 0);
		printf("import of 10,000 rows (50 bad): %.2f s\n",
		       (double)(tkm_testenv_now_us() - t0) / 1e6);
		CHECK_EQ_INT(run_tool(argv, out), 1);
		CHECK(word_after(out, "inserted", pk_hex, sizeof(pk_hex)) &&
		      strcmp(pk_hex, "0,") == 0);
		CHECK(word_after(out, "unchanged", pk_hex, sizeof(pk_hex)) &&
		      strcmp(pk_hex, "9950,") == 0);
	}

	/* A station: key, registration (admin), role under dual control. */
	{
		const char *argv[] = {TKM_STATION_PATH, "keygen", "--key", dir_key, NULL};

		CHECK_EQ_INT(run_tool(argv, out), 0);
		CHECK(word_after(out, "", pk_hex, sizeof(pk_hex)));
		CHECK(sodium_hex2bin(pk, sizeof(pk), pk_hex, strlen(pk_hex), NULL, &pk_len, NULL) ==
		          0 &&
		      pk_len == 32);
	}
	w = w_new();
	tkm_cbor_put_map(w, 3);
	tkm_cbor_put_cstr(w, "kind");
	tkm_cbor_put_cstr(w, "station");
	tkm_cbor_put_cstr(w, "name");
	tkm_cbor_put_cstr(w, "station-9");
	tkm_cbor_put_cstr(w, "public_key");
	tkm_cbor_put_bytes(w, pk, sizeof(pk));
	/* Registering a station is dual control: a security officer approves. */
	CHECK_EQ_INT(call(adm, "device.register", w, &doc), TKM_OK);
	approval = u_of(doc, "approval_id");
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	CHECK_EQ_INT(by_id(so1, "approval.approve", approval, NULL, &doc), TKM_OK);
	CHECK(text_is(doc, "state", "executed"));
	tkm_cbor_doc_free(doc);
	w = w_new();
	tkm_cbor_put_map(w, 3);
	tkm_cbor_put_cstr(w, "role");
	tkm_cbor_put_cstr(w, "provisioning-station");
	tkm_cbor_put_cstr(w, "scope");
	tkm_cbor_put_cstr(w, "site:s-1");
	tkm_cbor_put_cstr(w, "principal");
	tkm_cbor_put_cstr(w, "device:station-9");
	CHECK_EQ_INT(call(adm, "role.assign", w, &doc), TKM_OK);
	approval = u_of(doc, "approval_id");
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	CHECK_EQ_INT(by_id(so2, "approval.approve", approval, NULL, &doc), TKM_OK);
	tkm_cbor_doc_free(doc);

	/* The station gets a code for a terminal of its site, not for another site. */
	{
		const char *argv[] = {TKM_STATION_PATH,
		                      "enroll-code",
		                      "--url",
		                      url,
		                      "--name",
		                      "station-9",
		                      "--key",
		                      dir_key,
		                      "--manufacturer",
		                      "Ingenico",
		                      "--serial",
		                      "POS-1",
		                      NULL};
		const char *other[] = {TKM_STATION_PATH,
		                       "enroll-code",
		                       "--url",
		                       url,
		                       "--name",
		                       "station-9",
		                       "--key",
		                       dir_key,
		                       "--manufacturer",
		                       "Ingenico",
		                       "--serial",
		                       "POS-4",
		                       NULL};

		CHECK_EQ_INT(run_tool(other, out), 1);
		CHECK_EQ_INT(run_tool(argv, out), 0);
		CHECK(word_after(out, "enrollment code:", code, sizeof(code)));
	}
	/* The terminal enrolls with it, and checks in. */
	{
		const char *argv[] = {TKM_TERMINAL_PATH,
		                      "enroll",
		                      "--url",
		                      url,
		                      "--code",
		                      code,
		                      "--serial",
		                      "POS-1",
		                      "--manufacturer",
		                      "Ingenico",
		                      "--state-dir",
		                      state_dir,
		                      NULL};
		const char *again[] = {TKM_TERMINAL_PATH, "checkin", "--state-dir", state_dir,
		                       "--firmware",      "9.9",     NULL};

		CHECK_EQ_INT(run_tool(argv, out), 0);
		CHECK_EQ_INT(run_tool(again, out), 0);
		CHECK(word_after(out, "no pending", pk_hex, sizeof(pk_hex)));
	}
	/* A security officer gets codes with tkmctl as well: for POS-2, record 1 of the import. */
	{
		const char *argv[] = {TKM_TKMCTL_PATH, "--url",   url,   "terminal",
		                      "list",          "--site",  "s-1", "--state",
		                      "registered",    "--limit", "1",   NULL};
		char id[32], code2[64];

		CHECK_EQ_INT(run_tool(argv, out), 0);
		CHECK(word_after(out, "\n", id, sizeof(id)));
		{
			const char *ec[] = {TKM_TKMCTL_PATH, "--url", url, "terminal",
			                    "enroll-code",   id,      NULL};

			CHECK_EQ_INT(run_tool(ec, out), 0);
			CHECK(word_after(out, "enrollment code:", code2, sizeof(code2)) &&
			      strlen(code2) == 34);
		}
	}
	/* tkmctl lists it active, and exports the registry. */
	{
		const char *argv[] = {TKM_TKMCTL_PATH, "--url", url,       "terminal", "list",
		                      "--site",        "s-1",   "--state", "active",   NULL};
		const char *exp[] = {TKM_TKMCTL_PATH, "--url", url,      "terminal",
		                     "export",        "--out", exported, NULL};
		char *text;

		CHECK_EQ_INT(run_tool(argv, out), 0);
		text = tkm_testenv_read_file(out, NULL);
		CHECK(text != NULL && strstr(text, "POS-1") != NULL &&
		      strstr(text, "POS-2") == NULL);
		free(text);
		CHECK_EQ_INT(run_tool(exp, out), 0);
		text = tkm_testenv_read_file(exported, NULL);
		CHECK(text != NULL && strstr(text, "POS-4") != NULL);
		free(text);
	}
}

int main(void)
{
	if (sodium_init() < 0 || tkm_testenv_new(&env) != TKM_OK) {
		return 1;
	}
	if (tkm_testenv_start(env, NULL, "terminals = { last_seen_flush_seconds = 1; };") !=
	        TKM_OK ||
	    tkm_testenv_login(env, "officer1", &so1) != TKM_OK ||
	    tkm_testenv_login(env, "officer2", &so2) != TKM_OK ||
	    tkm_testenv_login(env, "admin", &adm) != TKM_OK) {
		tkm_testenv_free(env);
		return 1;
	}
	test_registry();
	test_lifecycle();
	test_station_scope();
	test_enrollment();
	test_tools();
	tkm_client_close(so1);
	tkm_client_close(so2);
	tkm_client_close(adm);
	tkm_testenv_free(env);
	return tkm_test_report("service_terminal");
}
