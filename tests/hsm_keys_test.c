/*
 * hsm_keys_test.c - token keys, device key blobs, components, KCV and CMAC
 * through a real SoftHSM2 token.
 *
 * How the vectors are compared: every published key is split into two
 * random components whose own KCVs the HSM computes, and imported through
 * tkm_hsm_device_key_import() or tkm_hsm_token_key_import(), the paths an
 * operator uses. KCVs are then computed by the HSM (through the blob, and
 * through the derive-only BDK path) and compared with the published ones.
 * CMACs are computed by the HSM with the imported key (unwrapped from its
 * blob) and compared with the published tags. The key bytes themselves are
 * compared only through tkm_hsm_blob_extract(), the internal path TR-31
 * export uses, which this test calls directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "hsm_fixture.h"
#include "hsm_vectors.h"
#include "tkm_hsm_internal.h"
#include "tkm_test.h"

static tkm_hsmfix fix;
static char why[512];

static tkm_hsm_alg alg_for(tkm_hsm_kcv_method method, size_t len)
{
	if (method == TKM_HSM_KCV_TDES) {
		return len == 24 ? TKM_HSM_TDES3 : TKM_HSM_TDES2;
	}
	return len == 16 ? TKM_HSM_AES128 : len == 24 ? TKM_HSM_AES192 : TKM_HSM_AES256;
}

static tkm_hsm_alg alg_of_len(bool tdes, size_t len)
{
	return alg_for(tdes ? TKM_HSM_KCV_TDES : TKM_HSM_KCV_AES_CMAC, len);
}

/* Import clear bytes as a device key blob through two components. */
static bool import_device(tkm_hsm_alg alg, tkm_hsm_usage usage, const uint8_t *key, size_t len,
                          const char *owner, uint8_t blob[static TKM_HSM_BLOB_MAX],
                          size_t *blob_len, tkm_hsm_kcv *kcv)
{
	tkm_hsm_component comps[2];
	tkm_err err;

	if (!tkm_hsmfix_split(fix.h, alg, key, len, comps)) {
		return false;
	}
	err = tkm_hsm_device_key_import(fix.h, alg, usage, owner, comps, 2, blob, blob_len, kcv,
	                                why, sizeof(why));
	tkm_hsmfix_free_components(comps, 2);
	if (err != TKM_OK) {
		fprintf(stderr, "device import: %s: %s\n", tkm_strerror(err), why);
	}
	return err == TKM_OK;
}

static bool import_bdk(tkm_hsm_alg alg, const uint8_t *key, size_t len, const char *name,
                       tkm_hsm_id *id, tkm_hsm_kcv *kcv)
{
	tkm_hsm_component comps[2];
	tkm_err err;

	if (!tkm_hsmfix_split(fix.h, alg, key, len, comps)) {
		return false;
	}
	err = tkm_hsm_token_key_import(fix.h, TKM_HSM_BDK, alg, name, comps, 2, id, kcv, why,
	                               sizeof(why));
	tkm_hsmfix_free_components(comps, 2);
	if (err != TKM_OK) {
		fprintf(stderr, "BDK import: %s: %s\n", tkm_strerror(err), why);
	}
	return err == TKM_OK;
}

static void test_masters(void)
{
	tkm_hsm_id id;
	tkm_hsm_alg alg;
	tkm_hsm_kcv kcv;

	CHECK(tkm_hsmfix_masters(&fix));
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_MASTER_KEK, TKM_HSM_AES256, NULL,
	                                        &id, &kcv, why, sizeof(why)),
	             TKM_E_ALREADY_EXISTS);
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_MASTER_SEAL, TKM_HSM_AES128, NULL,
	                                        &id, &kcv, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_AUDIT, TKM_HSM_ED25519, "x", &id,
	                                        &kcv, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(
	    tkm_hsm_token_key_find(fix.h, TKM_HSM_MASTER_KEK, NULL, &id, &alg, why, sizeof(why)),
	    TKM_OK);
	CHECK(sodium_memcmp(id.b, fix.kek.b, TKM_HSM_ID_LEN) == 0);
	CHECK_EQ_INT(alg, TKM_HSM_AES256);
	CHECK_EQ_INT(
	    tkm_hsm_token_key_find(fix.h, TKM_HSM_AUDIT, NULL, &id, &alg, why, sizeof(why)),
	    TKM_OK);
	CHECK_EQ_INT(alg, TKM_HSM_ED25519);
	CHECK(sodium_memcmp(id.b, fix.audit.b, TKM_HSM_ID_LEN) == 0);
	/* The master keys expose only the token's own check value. */
	CHECK_EQ_INT(
	    tkm_hsm_token_kcv(fix.h, &fix.kek, TKM_HSM_KCV_AES_ECB, 3, &kcv, why, sizeof(why)),
	    TKM_OK);
	CHECK_EQ_INT(kcv.len, 3);
	CHECK_EQ_INT(
	    tkm_hsm_token_kcv(fix.h, &fix.seal, TKM_HSM_KCV_AES_CMAC, 3, &kcv, why, sizeof(why)),
	    TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(tkm_hsm_token_key_destroy(fix.h, &fix.kek, why, sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(tkm_hsm_token_key_destroy(fix.h, &fix.audit, why, sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
}

/* Every kcv vector: as a device key (direct path) and, where it can be one, as a BDK. */
static void test_kcv_vectors(void)
{
	for (size_t i = 0; i < HSMVEC_COUNT(hsmvec_kcvs); i++) {
		const hsmvec_kcv *v = &hsmvec_kcvs[i];
		uint8_t key[32], want[8], blob[TKM_HSM_BLOB_MAX];
		size_t klen = tkm_hsmfix_unhex(v->key, key, sizeof(key));
		size_t wlen = tkm_hsmfix_unhex(v->kcv, want, sizeof(want));
		tkm_hsm_alg alg = alg_for(v->method, klen);
		tkm_hsm_kcv kcv, got;
		size_t blob_len = 0;
		char name[32];
		tkm_hsm_id id;
		bool ok;

		CHECK(klen > 0 && wlen >= 2 && wlen <= 5);
		ok = import_device(alg, TKM_HSM_USE_DATA, key, klen, "test:kcv", blob, &blob_len,
		                   &kcv);
		CHECK(ok);
		if (!ok) {
			continue;
		}
		if (v->method == kcv.method) {
			CHECK(sodium_memcmp(kcv.b, want, wlen) == 0);
		}
		CHECK_EQ_INT(tkm_hsm_blob_kcv(fix.h, blob, blob_len, "test:kcv", v->method, wlen,
		                              &got, why, sizeof(why)),
		             TKM_OK);
		CHECK(got.len == wlen && sodium_memcmp(got.b, want, wlen) == 0);
		if (got.len != wlen || sodium_memcmp(got.b, want, wlen) != 0) {
			fprintf(stderr, "  vector %s (device key path)\n", v->id);
		}
		if (alg == TKM_HSM_TDES3) {
			continue; /* not a BDK algorithm */
		}
		snprintf(name, sizeof(name), "kcv-%zu", i);
		ok = import_bdk(alg, key, klen, name, &id, &kcv);
		CHECK(ok);
		if (!ok) {
			continue;
		}
		CHECK_EQ_INT(tkm_hsm_token_kcv(fix.h, &id, v->method, wlen, &got, why, sizeof(why)),
		             TKM_OK);
		CHECK(got.len == wlen && sodium_memcmp(got.b, want, wlen) == 0);
		if (got.len != wlen || sodium_memcmp(got.b, want, wlen) != 0) {
			fprintf(stderr, "  vector %s (BDK derive path)\n", v->id);
		}
		CHECK_EQ_INT(tkm_hsm_token_key_destroy(fix.h, &id, why, sizeof(why)), TKM_OK);
	}
}

/* Every cmac vector: the HSM's CMAC with the imported key equals the published tag. */
static void test_cmac_vectors(void)
{
	for (size_t i = 0; i < HSMVEC_COUNT(hsmvec_cmacs); i++) {
		const hsmvec_cmac *v = &hsmvec_cmacs[i];
		uint8_t key[32], msg[64], want[16], mac[16], blob[TKM_HSM_BLOB_MAX];
		size_t klen = tkm_hsmfix_unhex(v->key, key, sizeof(key));
		size_t mlen = v->message[0] ? tkm_hsmfix_unhex(v->message, msg, sizeof(msg)) : 0;
		size_t wlen = tkm_hsmfix_unhex(v->cmac, want, sizeof(want));
		bool tdes = strncmp(v->id, "cmac_tdes", 9) == 0;
		tkm_hsm_alg alg = alg_of_len(tdes, klen);
		CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
		tkm_hsm_sess *s = NULL;
		size_t blob_len = 0, mac_len = 0;
		tkm_hsm_kcv kcv;

		CHECK(klen > 0 && wlen > 0 && (v->message[0] == '\0' || mlen > 0));
		CHECK(import_device(alg, TKM_HSM_USE_MAC, key, klen, "test:cmac", blob, &blob_len,
		                    &kcv));
		CHECK_EQ_INT(tkm_hsm_sess_get(fix.h, &s, why, sizeof(why)), TKM_OK);
		if (s == NULL) {
			continue;
		}
		CHECK_EQ_INT(tkm_hsm_blob_unwrap(fix.h, s, blob, blob_len, "test:cmac",
		                                 TKM_HSM_A_SIGN, &obj, NULL, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_hsm_cmac(fix.h, s, obj, alg, msg, mlen, mac, sizeof(mac), &mac_len,
		                          why, sizeof(why)),
		             TKM_OK);
		CHECK(mac_len == wlen && sodium_memcmp(mac, want, wlen) == 0);
		if (mac_len != wlen || sodium_memcmp(mac, want, wlen) != 0) {
			fprintf(stderr, "  vector %s\n", v->id);
		}
		tkm_hsm_obj_destroy(fix.h, s, &obj);
		tkm_hsm_sess_put(fix.h, s);
	}
}

static void test_components(void)
{
	static const uint8_t key[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
	                                0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10};
	uint8_t blob[TKM_HSM_BLOB_MAX], *clear = sodium_malloc(32);
	tkm_hsm_component comps[3];
	tkm_hsm_sess *s = NULL;
	size_t blob_len = 0, clen = 0;
	tkm_hsm_kcv kcv, direct;
	tkm_hsm_blob_meta meta;

	/* Three components; the result is their XOR, checked through the test-only extract. */
	CHECK(tkm_hsmfix_split(fix.h, TKM_HSM_TDES2, key, 16, comps));
	{
		uint8_t *third = sodium_malloc(16), *second = (uint8_t *)comps[1].key;
		randombytes_buf(third, 16);
		for (size_t i = 0; i < 16; i++) {
			second[i] ^= third[i];
		}
		comps[2].key = third;
		CHECK_EQ_INT(tkm_hsm_component_kcv(fix.h, TKM_HSM_TDES2, second, TKM_HSM_KCV_TDES,
		                                   3, &comps[1].kcv, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_hsm_component_kcv(fix.h, TKM_HSM_TDES2, third, TKM_HSM_KCV_TDES, 3,
		                                   &comps[2].kcv, why, sizeof(why)),
		             TKM_OK);
	}
	CHECK_EQ_INT(tkm_hsm_device_key_import(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_KBPK, "t:1", comps,
	                                       3, blob, &blob_len, &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(kcv.method, TKM_HSM_KCV_TDES);
	CHECK_EQ_INT(kcv.len, 5);
	CHECK(kcv.b[0] == 0x08 && kcv.b[1] == 0xD7 && kcv.b[2] == 0xB4); /* psec's 08D7, 3 bytes */
	CHECK_EQ_INT(tkm_hsm_sess_get(fix.h, &s, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_hsm_blob_extract(fix.h, s, blob, blob_len, "t:1", clear, 32, &clen, &meta,
	                                  why, sizeof(why)),
	             TKM_OK);
	CHECK(clen == 16 && sodium_memcmp(clear, key, 16) == 0);
	CHECK_EQ_INT(meta.usage, TKM_HSM_USE_KBPK);
	tkm_hsm_sess_put(fix.h, s);

	/* A component that does not match its check value is named and nothing is made. */
	comps[1].kcv.b[0] ^= 1;
	CHECK_EQ_INT(tkm_hsm_device_key_import(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_KBPK, "t:1", comps,
	                                       3, blob, &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	CHECK(strstr(why, "component 2 of 3") != NULL);
	CHECK_EQ_INT(blob_len, 0);
	comps[1].kcv.b[0] ^= 1;
	/* One component is not enough; four are too many; a missing KCV is refused. */
	CHECK_EQ_INT(tkm_hsm_device_key_import(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_KBPK, "t:1", comps,
	                                       1, blob, &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	comps[2].kcv.len = 0;
	CHECK_EQ_INT(tkm_hsm_device_key_import(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_KBPK, "t:1", comps,
	                                       3, blob, &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	/* A KCV method that does not fit the algorithm. */
	comps[2].kcv.len = 3;
	comps[2].kcv.method = TKM_HSM_KCV_AES_CMAC;
	CHECK_EQ_INT(tkm_hsm_device_key_import(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_KBPK, "t:1", comps,
	                                       3, blob, &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	comps[2].kcv.method = TKM_HSM_KCV_TDES;
	/* Two equal components cancel out. */
	memcpy((uint8_t *)comps[1].key, comps[0].key, 16);
	comps[1].kcv = comps[0].kcv;
	CHECK_EQ_INT(tkm_hsm_device_key_import(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_KBPK, "t:1", comps,
	                                       2, blob, &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	/* An all-zero component. */
	memset((uint8_t *)comps[1].key, 0, 16);
	CHECK_EQ_INT(tkm_hsm_device_key_import(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_KBPK, "t:1", comps,
	                                       2, blob, &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	tkm_hsmfix_free_components(comps, 3);
	(void)direct;
	sodium_free(clear);
}

static void test_device_keys(void)
{
	static const tkm_hsm_alg algs[] = {TKM_HSM_AES128, TKM_HSM_AES192, TKM_HSM_AES256,
	                                   TKM_HSM_TDES2, TKM_HSM_TDES3};
	uint8_t blob[TKM_HSM_BLOB_MAX], copy[TKM_HSM_BLOB_MAX];
	size_t blob_len = 0;
	tkm_hsm_blob_meta meta;
	tkm_hsm_kcv kcv, got;

	for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
		CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, algs[a], TKM_HSM_USE_PIN,
		                                         "terminal:42", blob, &blob_len, &kcv, why,
		                                         sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_hsm_blob_info(blob, blob_len, &meta), TKM_OK);
		CHECK_EQ_INT(meta.alg, algs[a]);
		CHECK_EQ_INT(meta.usage, TKM_HSM_USE_PIN);
		CHECK(sodium_memcmp(meta.kek.b, fix.kek.b, TKM_HSM_ID_LEN) == 0);
		CHECK(sodium_memcmp(meta.kcv.b, kcv.b, TKM_HSM_KCV_MAX) == 0);
		CHECK_EQ_INT(tkm_hsm_blob_kcv(fix.h, blob, blob_len, "terminal:42", kcv.method, 5,
		                              &got, why, sizeof(why)),
		             TKM_OK);
		CHECK(sodium_memcmp(got.b, kcv.b, 5) == 0);
	}
	/* Every single-byte change, a wrong owner and a wrong length are refused. */
	for (size_t i = 0; i < blob_len; i++) {
		tkm_err err;
		memcpy(copy, blob, blob_len);
		copy[i] ^= 0x01;
		err = tkm_hsm_blob_kcv(fix.h, copy, blob_len, "terminal:42", TKM_HSM_KCV_TDES, 3,
		                       &got, why, sizeof(why));
		CHECK_EQ_INT(err, TKM_E_CRYPTO);
		if (err != TKM_E_CRYPTO) {
			fprintf(stderr, "  byte %zu of the blob: %s\n", i, why);
		}
	}
	CHECK_EQ_INT(tkm_hsm_blob_kcv(fix.h, blob, blob_len, "terminal:43", TKM_HSM_KCV_TDES, 3,
	                              &got, why, sizeof(why)),
	             TKM_E_CRYPTO);
	CHECK_EQ_INT(tkm_hsm_blob_kcv(fix.h, blob, blob_len - 1, "terminal:42", TKM_HSM_KCV_TDES, 3,
	                              &got, why, sizeof(why)),
	             TKM_E_CRYPTO);
	CHECK_EQ_INT(tkm_hsm_blob_kcv(fix.h, blob, blob_len, "", TKM_HSM_KCV_TDES, 3, &got, why,
	                              sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_blob_info(blob, 10, &meta), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, TKM_HSM_ED25519, TKM_HSM_USE_PIN, "t", blob,
	                                         &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, TKM_HSM_AES128, (tkm_hsm_usage)99, "t",
	                                         blob, &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
}

static void test_bdks(void)
{
	static const tkm_hsm_alg algs[] = {TKM_HSM_AES128, TKM_HSM_AES192, TKM_HSM_AES256,
	                                   TKM_HSM_TDES2};
	tkm_hsm_id ids[4], id;
	tkm_hsm_kcv kcv, again;
	tkm_hsm_alg alg;
	char name[16];

	for (size_t a = 0; a < 4; a++) {
		snprintf(name, sizeof(name), "gen-%zu", a);
		CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, algs[a], name, &ids[a],
		                                        &kcv, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(kcv.len, 5);
		CHECK_EQ_INT(
		    tkm_hsm_token_kcv(fix.h, &ids[a], kcv.method, 5, &again, why, sizeof(why)),
		    TKM_OK);
		CHECK(sodium_memcmp(again.b, kcv.b, 5) == 0);
		CHECK_EQ_INT(
		    tkm_hsm_token_key_find(fix.h, TKM_HSM_BDK, name, &id, &alg, why, sizeof(why)),
		    TKM_OK);
		CHECK(sodium_memcmp(id.b, ids[a].b, TKM_HSM_ID_LEN) == 0);
		CHECK_EQ_INT(alg, algs[a]);
	}
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_AES128, "gen-0", &id,
	                                        &kcv, why, sizeof(why)),
	             TKM_E_ALREADY_EXISTS);
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_TDES3, "t3", &id, &kcv,
	                                        why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_AES128, "bad name", &id,
	                                        &kcv, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_AES128, NULL, &id, &kcv,
	                                        why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_token_key_destroy(fix.h, &ids[3], why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_hsm_token_key_destroy(fix.h, &ids[3], why, sizeof(why)), TKM_E_NOT_FOUND);
	CHECK_EQ_INT(
	    tkm_hsm_token_key_find(fix.h, TKM_HSM_BDK, "gen-3", &id, &alg, why, sizeof(why)),
	    TKM_E_NOT_FOUND);
}

/* Read CKA_SENSITIVE, CKA_EXTRACTABLE and try to read CKA_VALUE and to wrap the key out. */
static void check_custody(tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, CK_OBJECT_HANDLE wrapper,
                          const char *what)
{
	CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
	CK_ATTRIBUTE a[] = {{CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
	                    {CKA_EXTRACTABLE, &extractable, sizeof(extractable)}};
	uint8_t buf[256];
	CK_ATTRIBUTE v = {CKA_VALUE, buf, sizeof(buf)};
	CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
	CK_MECHANISM cbc = {CKM_AES_CBC, buf, 16};
	CK_ULONG n = sizeof(buf);
	CK_RV rv;

	CHECK_EQ_INT(fix.h->p11->C_GetAttributeValue(s->h, obj, a, 2), CKR_OK);
	CHECK(sensitive == CK_TRUE);
	CHECK(extractable == CK_FALSE);
	CHECK_EQ_INT(fix.h->p11->C_GetAttributeValue(s->h, obj, &v, 1), CKR_ATTRIBUTE_SENSITIVE);
	rv = fix.h->p11->C_WrapKey(s->h, &kwp, wrapper, obj, buf, &n);
	CHECK(rv != CKR_OK);
	memset(buf, 0, 16);
	n = sizeof(buf);
	rv = fix.h->p11->C_WrapKey(s->h, &cbc, wrapper, obj, buf, &n);
	CHECK(rv != CKR_OK);
	if (sensitive != CK_TRUE || extractable != CK_FALSE) {
		fprintf(stderr, "  custody of %s\n", what);
	}
}

static void test_custody(void)
{
	static const uint8_t wkey[32] = {1, 2, 3};
	CK_OBJECT_HANDLE kek, seal, audit, bdk, variant, wrapper = CK_INVALID_HANDLE;
	uint8_t vid[TKM_HSM_ID_LEN + 1];
	tkm_hsm_sess *s = NULL;
	tkm_hsm_id id;
	tkm_hsm_kcv kcv;

	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_TDES2, "custody", &id,
	                                        &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_sess_get(fix.h, &s, why, sizeof(why)), TKM_OK);
	if (s == NULL) {
		return;
	}
	memcpy(vid, id.b, TKM_HSM_ID_LEN);
	vid[TKM_HSM_ID_LEN] = TKM_HSM_VARIANT_TAG;
	CHECK_EQ_INT(tkm_hsm_find_role(fix.h, s, TKM_HSM_MASTER_KEK, CKO_SECRET_KEY, &kek, NULL,
	                               why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_find_role(fix.h, s, TKM_HSM_MASTER_SEAL, CKO_SECRET_KEY, &seal, NULL,
	                               why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_find_role(fix.h, s, TKM_HSM_AUDIT, CKO_PRIVATE_KEY, &audit, NULL, why,
	                               sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_find_id(fix.h, s, CKO_SECRET_KEY, id.b, TKM_HSM_ID_LEN, CKA_DERIVE,
	                             &bdk, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_find_id(fix.h, s, CKO_SECRET_KEY, vid, sizeof(vid), CKA_DERIVE,
	                             &variant, why, sizeof(why)),
	             TKM_OK);
	/* A wrapping key this test controls: the attempt fails on the keys, not on it. */
	CHECK_EQ_INT(tkm_hsm_obj_create(fix.h, s, TKM_HSM_AES256, TKM_HSM_A_WRAP, wkey, 32,
	                                &wrapper, why, sizeof(why)),
	             TKM_OK);
	check_custody(s, kek, kek, "master KEK");
	check_custody(s, seal, kek, "master sealing key");
	check_custody(s, bdk, kek, "BDK");
	check_custody(s, variant, kek, "BDK variant");
	check_custody(s, kek, wrapper, "master KEK");
	check_custody(s, seal, wrapper, "master sealing key");
	check_custody(s, bdk, wrapper, "BDK");
	check_custody(s, variant, wrapper, "BDK variant");
	{
		CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
		CK_ATTRIBUTE a[] = {{CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
		                    {CKA_EXTRACTABLE, &extractable, sizeof(extractable)}};
		CHECK_EQ_INT(fix.h->p11->C_GetAttributeValue(s->h, audit, a, 2), CKR_OK);
		CHECK(sensitive == CK_TRUE && extractable == CK_FALSE);
	}
	/* The master KEK wraps only with AES key wrap (CKA_ALLOWED_MECHANISMS). */
	{
		CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
		uint8_t out[64];
		CK_ULONG n = sizeof(out);
		CHECK(fix.h->p11->C_WrapKey(s->h, &kw, kek, wrapper, out, &n) != CKR_OK);
	}
	tkm_hsm_obj_destroy(fix.h, s, &wrapper);
	tkm_hsm_sess_put(fix.h, s);
}

/* pkcs11-tool, as an operator would run it, shows only the fixed set, all sensitive. */
static void test_pkcs11_tool(void)
{
	char out[400], line[512];
	size_t objects = 0, ours = 0;
	bool in_ours = false;
	FILE *f;
	int n;

	n = snprintf(out, sizeof(out), "%s/pkcs11-tool.out", fix.dir);
	CHECK(n > 0 && (size_t)n < sizeof(out));
	{
		const char *argv[] = {
		    TKM_PKCS11_TOOL, "--module", TKM_SOFTHSM_MODULE,  "--token-label",  "tkm",
		    "--login",       "--pin",    TKM_HSMFIX_USER_PIN, "--list-objects", NULL};
		CHECK_EQ_INT(tkm_hsmfix_run(argv, out), 0);
	}
	f = fopen(out, "r");
	CHECK(f != NULL);
	if (f == NULL) {
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, " Object;") != NULL) {
			objects++;
			in_ours = false;
		} else if (strncmp(line, "  label:", 8) == 0) {
			in_ours =
			    strstr(line, "tkm master") != NULL || strstr(line, "tkm bdk") != NULL;
			ours += in_ours;
		} else if (in_ours && strncmp(line, "  Access:", 9) == 0) {
			bool sensitive = false, extractable = false;
			char *save = NULL;
			/* "sensitive, always sensitive, never extractable, local" */
			for (char *tok = strtok_r(line + 9, ",\n", &save); tok != NULL;
			     tok = strtok_r(NULL, ",\n", &save)) {
				while (*tok == ' ') {
					tok++;
				}
				sensitive |= strcmp(tok, "sensitive") == 0;
				extractable |= strcmp(tok, "extractable") == 0;
			}
			CHECK(sensitive);
			CHECK(!extractable);
		}
	}
	fclose(f);
	/*
	 * KEK, seal, audit pair (2), BDKs gen-0..gen-2, and the "custody" TDES
	 * BDK with its variant: 9 objects, no device key among them.
	 */
	CHECK_EQ_INT(objects, 9);
	CHECK_EQ_INT(ours, 7);
	printf("pkcs11-tool lists %zu objects, %zu of them master keys and BDKs\n", objects, ours);
}

int main(void)
{
	size_t token = 0, session = 0;

	if (!tkm_hsmfix_new(&fix) || !tkm_hsmfix_open(&fix, NULL, 4)) {
		tkm_hsmfix_free(&fix);
		return 1;
	}
	test_masters();
	test_kcv_vectors();
	test_cmac_vectors();
	test_components();
	test_device_keys();
	test_bdks();
	test_custody();
	/* Device keys of every test above left nothing behind in the token. */
	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &token, &session, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(token, 9);
	CHECK_EQ_INT(session, 0);
	test_pkcs11_tool();
	tkm_hsmfix_free(&fix);
	return tkm_test_report("hsm_keys");
}
