/*
 * hsm_dukpt_test.c - DUKPT initial keys derived inside SoftHSM2.
 *
 * Every tdes_dukpt_ipek and aes_dukpt_initial_key vector: the published BDK
 * is imported from two components as a token BDK, the initial key is
 * derived by tkm_hsm_dukpt_*() into a blob, and then
 *   - its KCV (computed by the HSM on the derived key) must equal the KCV
 *     the HSM computes on the published initial key, imported separately;
 *   - its bytes, read through the internal tkm_hsm_blob_extract() (the path
 *     TR-31 export uses; tkm's API offers no other), must equal the
 *     published initial key.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "hsm_fixture.h"
#include "hsm_vectors.h"
#include "tkm_hsm_internal.h"
#include "tkm_test.h"

static tkm_hsmfix fix;
static char why[512];

static bool import_bdk(tkm_hsm_alg alg, const uint8_t *key, size_t len, const char *name,
                       tkm_hsm_id *id)
{
	tkm_hsm_component comps[2];
	tkm_hsm_kcv kcv;
	tkm_err err;

	if (!tkm_hsmfix_split(fix.h, alg, key, len, comps)) {
		return false;
	}
	err = tkm_hsm_token_key_import(fix.h, TKM_HSM_BDK, alg, name, comps, 2, id, &kcv, why,
	                               sizeof(why));
	tkm_hsmfix_free_components(comps, 2);
	if (err != TKM_OK) {
		fprintf(stderr, "BDK import: %s: %s\n", tkm_strerror(err), why);
	}
	return err == TKM_OK;
}

/* The default KCV of clear bytes, imported as a device key. */
static bool kcv_of(tkm_hsm_alg alg, const uint8_t *key, size_t len, tkm_hsm_kcv *kcv)
{
	uint8_t blob[TKM_HSM_BLOB_MAX];
	tkm_hsm_component comps[2];
	size_t blob_len = 0;
	tkm_err err;

	if (!tkm_hsmfix_split(fix.h, alg, key, len, comps)) {
		return false;
	}
	err = tkm_hsm_device_key_import(fix.h, alg, TKM_HSM_USE_DUKPT_INITIAL, "test:reference",
	                                comps, 2, blob, &blob_len, kcv, why, sizeof(why));
	tkm_hsmfix_free_components(comps, 2);
	return err == TKM_OK;
}

/* Compare a derived blob with the published key: KCV and, test-only, the bytes. */
static void check_blob(const uint8_t *blob, size_t blob_len, const char *owner, tkm_hsm_alg alg,
                       const tkm_hsm_kcv *kcv, const uint8_t *want, size_t want_len, const char *id)
{
	uint8_t *clear = sodium_malloc(32);
	tkm_hsm_sess *s = NULL;
	tkm_hsm_blob_meta meta;
	tkm_hsm_kcv ref;
	size_t n = 0;

	CHECK(kcv_of(alg, want, want_len, &ref));
	CHECK(sodium_memcmp(ref.b, kcv->b, TKM_HSM_KCV_MAX) == 0);
	CHECK_EQ_INT(tkm_hsm_blob_info(blob, blob_len, &meta), TKM_OK);
	CHECK_EQ_INT(meta.alg, alg);
	CHECK_EQ_INT(meta.usage, TKM_HSM_USE_DUKPT_INITIAL);
	CHECK_EQ_INT(tkm_hsm_sess_get(fix.h, &s, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_hsm_blob_extract(fix.h, s, blob, blob_len, owner, clear, 32, &n, NULL, why,
	                                  sizeof(why)),
	             TKM_OK);
	tkm_hsm_sess_put(fix.h, s);
	CHECK(n == want_len && sodium_memcmp(clear, want, want_len) == 0);
	if (n != want_len || sodium_memcmp(clear, want, want_len) != 0) {
		fprintf(stderr, "  vector %s\n", id);
	}
	sodium_free(clear);
}

static void test_tdes_vectors(void)
{
	for (size_t i = 0; i < HSMVEC_COUNT(hsmvec_tdes_ipeks); i++) {
		const hsmvec_tdes_ipek *v = &hsmvec_tdes_ipeks[i];
		uint8_t bdk[16], ksn[10], ipek[16], blob[TKM_HSM_BLOB_MAX], blob2[TKM_HSM_BLOB_MAX];
		size_t blob_len = 0, blob2_len = 0;
		tkm_hsm_kcv kcv, kcv2;
		char name[32];
		tkm_hsm_id id;

		CHECK_EQ_INT(tkm_hsmfix_unhex(v->bdk, bdk, sizeof(bdk)), 16);
		CHECK_EQ_INT(tkm_hsmfix_unhex(v->ksn, ksn, sizeof(ksn)), 10);
		CHECK_EQ_INT(tkm_hsmfix_unhex(v->ipek, ipek, sizeof(ipek)), 16);
		snprintf(name, sizeof(name), "tdes-%zu", i);
		CHECK(import_bdk(TKM_HSM_TDES2, bdk, 16, name, &id));
		CHECK_EQ_INT(tkm_hsm_dukpt_tdes_ipek(fix.h, &id, ksn, "terminal:1", blob, &blob_len,
		                                     &kcv, why, sizeof(why)),
		             TKM_OK);
		check_blob(blob, blob_len, "terminal:1", TKM_HSM_TDES2, &kcv, ipek, 16, v->id);
		/* The counter bits of the KSN do not change the IPEK. */
		ksn[9] ^= 0x5A;
		ksn[7] ^= 0x1F;
		CHECK_EQ_INT(tkm_hsm_dukpt_tdes_ipek(fix.h, &id, ksn, "terminal:1", blob2,
		                                     &blob2_len, &kcv2, why, sizeof(why)),
		             TKM_OK);
		CHECK(sodium_memcmp(kcv2.b, kcv.b, TKM_HSM_KCV_MAX) == 0);
		/* Another device's KSN gives another key. */
		ksn[3] ^= 0x01;
		CHECK_EQ_INT(tkm_hsm_dukpt_tdes_ipek(fix.h, &id, ksn, "terminal:1", blob2,
		                                     &blob2_len, &kcv2, why, sizeof(why)),
		             TKM_OK);
		CHECK(sodium_memcmp(kcv2.b, kcv.b, TKM_HSM_KCV_MAX) != 0);
		/* The blob is bound to its owner. */
		CHECK_EQ_INT(tkm_hsm_blob_kcv(fix.h, blob, blob_len, "terminal:2", TKM_HSM_KCV_TDES,
		                              3, &kcv2, why, sizeof(why)),
		             TKM_E_CRYPTO);
		printf("%s: IPEK derived in the HSM matches (KCV %02X%02X%02X)\n", v->id, kcv.b[0],
		       kcv.b[1], kcv.b[2]);
	}
}

static void test_aes_vectors(void)
{
	for (size_t i = 0; i < HSMVEC_COUNT(hsmvec_aes_iks); i++) {
		const hsmvec_aes_ik *v = &hsmvec_aes_iks[i];
		uint8_t bdk[32], ikid[8], ik[32], blob[TKM_HSM_BLOB_MAX];
		size_t blen = tkm_hsmfix_unhex(v->bdk, bdk, sizeof(bdk)), blob_len = 0;
		size_t iklen = tkm_hsmfix_unhex(v->initial_key, ik, sizeof(ik));
		tkm_hsm_alg alg = blen == 16   ? TKM_HSM_AES128
		                  : blen == 24 ? TKM_HSM_AES192
		                               : TKM_HSM_AES256;
		tkm_hsm_kcv kcv;
		char name[32];
		tkm_hsm_id id;

		CHECK_EQ_INT(tkm_hsmfix_unhex(v->initial_key_id, ikid, sizeof(ikid)), 8);
		CHECK(blen == iklen);
		snprintf(name, sizeof(name), "aes-%zu", i);
		CHECK(import_bdk(alg, bdk, blen, name, &id));
		CHECK_EQ_INT(tkm_hsm_dukpt_aes_initial_key(fix.h, &id, ikid, "terminal:1", blob,
		                                           &blob_len, &kcv, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(kcv.method, TKM_HSM_KCV_AES_CMAC);
		check_blob(blob, blob_len, "terminal:1", alg, &kcv, ik, iklen, v->id);
		printf("%s: initial key derived in the HSM matches (KCV %02X%02X%02X)\n", v->id,
		       kcv.b[0], kcv.b[1], kcv.b[2]);
	}
}

static void test_generated_and_errors(void)
{
	static const uint8_t ikid[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	static const uint8_t ksn[10] = {0xFF, 0xFF, 1, 2, 3, 4, 5, 0xE0, 0, 0};
	uint8_t blob[TKM_HSM_BLOB_MAX];
	tkm_hsm_id aes192, tdes, unknown;
	tkm_hsm_kcv kcv, kcv2;
	size_t blob_len = 0;

	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_AES192, "gen-aes192",
	                                        &aes192, &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_TDES2, "gen-tdes",
	                                        &tdes, &kcv, why, sizeof(why)),
	             TKM_OK);
	/* Deterministic: the same initial key ID gives the same key. */
	CHECK_EQ_INT(tkm_hsm_dukpt_aes_initial_key(fix.h, &aes192, ikid, "t:9", blob, &blob_len,
	                                           &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_dukpt_aes_initial_key(fix.h, &aes192, ikid, "t:9", blob, &blob_len,
	                                           &kcv2, why, sizeof(why)),
	             TKM_OK);
	CHECK(sodium_memcmp(kcv.b, kcv2.b, TKM_HSM_KCV_MAX) == 0);
	CHECK_EQ_INT(blob_len, 53 + 32 + 16); /* AES-192 wraps into 32 bytes */
	CHECK_EQ_INT(tkm_hsm_dukpt_tdes_ipek(fix.h, &tdes, ksn, "t:9", blob, &blob_len, &kcv, why,
	                                     sizeof(why)),
	             TKM_OK);
	/* Wrong BDK types and unknown BDKs. */
	CHECK_EQ_INT(tkm_hsm_dukpt_aes_initial_key(fix.h, &tdes, ikid, "t:9", blob, &blob_len, &kcv,
	                                           why, sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(blob_len, 0);
	CHECK_EQ_INT(tkm_hsm_dukpt_tdes_ipek(fix.h, &aes192, ksn, "t:9", blob, &blob_len, &kcv, why,
	                                     sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
	randombytes_buf(unknown.b, sizeof(unknown.b));
	CHECK_EQ_INT(tkm_hsm_dukpt_tdes_ipek(fix.h, &unknown, ksn, "t:9", blob, &blob_len, &kcv,
	                                     why, sizeof(why)),
	             TKM_E_NOT_FOUND);
	/* The master KEK is not a BDK: its id does not derive. */
	CHECK_EQ_INT(tkm_hsm_dukpt_aes_initial_key(fix.h, &fix.kek, ikid, "t:9", blob, &blob_len,
	                                           &kcv, why, sizeof(why)),
	             TKM_E_NOT_FOUND);
	CHECK_EQ_INT(tkm_hsm_dukpt_aes_initial_key(fix.h, &aes192, ikid, "", blob, &blob_len, &kcv,
	                                           why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	/* After the BDK is destroyed nothing derives from it. */
	CHECK_EQ_INT(tkm_hsm_token_key_destroy(fix.h, &tdes, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_hsm_dukpt_tdes_ipek(fix.h, &tdes, ksn, "t:9", blob, &blob_len, &kcv, why,
	                                     sizeof(why)),
	             TKM_E_NOT_FOUND);
}

int main(void)
{
	size_t token = 0, session = 0;

	if (!tkm_hsmfix_new(&fix) || !tkm_hsmfix_open(&fix, NULL, 2) || !tkm_hsmfix_masters(&fix)) {
		tkm_hsmfix_free(&fix);
		return 1;
	}
	test_tdes_vectors();
	test_aes_vectors();
	test_generated_and_errors();
	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &token, &session, why, sizeof(why)), TKM_OK);
	/* masters (4), tdes-0 and its variant, aes-0, aes-1, gen-aes192 */
	CHECK_EQ_INT(token, 9);
	CHECK_EQ_INT(session, 0);
	tkm_hsmfix_free(&fix);
	return tkm_test_report("hsm_dukpt");
}
