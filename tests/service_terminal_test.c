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
	CHECK_EQ_INT(call(adm, "device.register", w, &doc), TKM_OK);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
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

int main(void)
{
	if (sodium_init() < 0 || tkm_testenv_new(&env) != TKM_OK) {
		return 1;
	}
	if (tkm_testenv_start(env, NULL, NULL) != TKM_OK ||
	    tkm_testenv_login(env, "officer1", &so1) != TKM_OK ||
	    tkm_testenv_login(env, "officer2", &so2) != TKM_OK ||
	    tkm_testenv_login(env, "admin", &adm) != TKM_OK) {
		tkm_testenv_free(env);
		return 1;
	}
	test_registry();
	test_lifecycle();
	test_station_scope();
	tkm_client_close(so1);
	tkm_client_close(so2);
	tkm_client_close(adm);
	tkm_testenv_free(env);
	return tkm_test_report("service_terminal");
}
