/*
 * hsm_tr31_test.c - TR-31 / X9.143 key blocks (versions B and D) through a
 * real SoftHSM2 token: hsm/tkm_hsm_tr31.c over the format layer.
 *
 * How the published cases are compared (tests/vectors/tr31_crypto.h):
 * - KBPKs and keys enter the HSM the way an operator's do: split into two
 *   random components whose KCVs the HSM computes, and imported with
 *   tkm_hsm_device_key_import() as device key blobs.
 * - KBEK/KBAK derivation: tkm_hsm_tr31_derived_kcv() derives the key inside
 *   the HSM exactly as export and import do and returns only its 5-byte KCV
 *   (legacy TDES or AES-CMAC, computed in the HSM); it is compared with the
 *   KCV the HSM computes for the published KBEK/KBAK. The derived bytes are
 *   never returned, so this is a 40-bit comparison, not a byte comparison;
 *   the key block cases below check the same derivation end to end.
 * - Import: the new blob's KCV equals the published key's, and the blob's
 *   clear bytes, read through the internal tkm_hsm_blob_extract() (the path
 *   export uses), equal the published key.
 * - Export with the published padding reproduces the block byte for byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hsm_fixture.h"
#include "tkm_hsm_internal.h"
#include "tkm_hsm_tr31.h"
#include "tkm_test.h"
#include "tkm_tr31.h"
#include "vectors/tr31_crypto.h"

#define OWNER_KBPK "terminal:kbpk"
#define OWNER_KEY  "terminal:key"

static tkm_hsmfix fix;
static char why[512];
static tkm_tr31_header hdr, hdr2;
static char kbuf[TKM_TR31_MAX_LEN];
static char kbuf2[TKM_TR31_MAX_LEN];

static tkm_hsm_alg alg_for(bool tdes, size_t len)
{
	if (tdes) {
		return len == 24 ? TKM_HSM_TDES3 : TKM_HSM_TDES2;
	}
	return len == 16 ? TKM_HSM_AES128 : len == 24 ? TKM_HSM_AES192 : TKM_HSM_AES256;
}

static tkm_hsm_kcv_method method_for(tkm_hsm_alg alg)
{
	return alg == TKM_HSM_TDES2 || alg == TKM_HSM_TDES3 ? TKM_HSM_KCV_TDES
	                                                    : TKM_HSM_KCV_AES_CMAC;
}

/* Decode hex into fresh sodium_malloc memory; NULL if bad. */
static uint8_t *unhex_locked(const char *hex, size_t *len)
{
	size_t cap = strlen(hex) / 2;
	uint8_t *b = sodium_malloc(cap > 0 ? cap : 1);

	*len = 0;
	if (b == NULL) {
		return NULL;
	}
	*len = tkm_hsmfix_unhex(hex, b, cap);
	if (*len != cap || cap == 0) {
		sodium_free(b);
		return NULL;
	}
	return b;
}

/* Import clear bytes (sodium memory) as a device key blob through two components. */
static bool import_device(tkm_hsm_alg alg, tkm_hsm_usage usage, const uint8_t *key, size_t len,
                          const char *owner, uint8_t blob[static TKM_HSM_BLOB_MAX],
                          size_t *blob_len)
{
	tkm_hsm_component comps[2];
	tkm_hsm_kcv kcv;
	tkm_err err;

	if (!tkm_hsmfix_split(fix.h, alg, key, len, comps)) {
		return false;
	}
	err = tkm_hsm_device_key_import(fix.h, alg, usage, owner, comps, 2, blob, blob_len, &kcv,
	                                why, sizeof(why));
	tkm_hsmfix_free_components(comps, 2);
	if (err != TKM_OK) {
		fprintf(stderr, "device import: %s: %s\n", tkm_strerror(err), why);
	}
	return err == TKM_OK;
}

static bool import_hex(tkm_hsm_alg alg, tkm_hsm_usage usage, const char *hex, const char *owner,
                       uint8_t blob[static TKM_HSM_BLOB_MAX], size_t *blob_len)
{
	size_t len;
	uint8_t *key = unhex_locked(hex, &len);
	bool ok;

	if (key == NULL) {
		return false;
	}
	ok = import_device(alg, usage, key, len, owner, blob, blob_len);
	sodium_free(key);
	return ok;
}

/* The HSM's 5-byte default KCV of clear bytes. */
static bool kcv_of_hex(tkm_hsm_alg alg, const char *hex, tkm_hsm_kcv *kcv)
{
	size_t len;
	uint8_t *key = unhex_locked(hex, &len);
	tkm_err err;

	if (key == NULL) {
		return false;
	}
	err = tkm_hsm_component_kcv(fix.h, alg, key, method_for(alg), TKM_HSM_KCV_MAX, kcv, why,
	                            sizeof(why));
	sodium_free(key);
	if (err != TKM_OK) {
		fprintf(stderr, "component KCV: %s: %s\n", tkm_strerror(err), why);
	}
	return err == TKM_OK;
}

/* Key block text and headers hold no secret. */
static bool text_eq(const char *a, const char *b, size_t n)
{
	return memcmp(a, b, n) == 0; /* lint: memcmp ok (public data) */
}

static bool kcv_eq(const tkm_hsm_kcv *a, const tkm_hsm_kcv *b)
{
	return a->len == b->len && a->len > 0 && a->method == b->method &&
	       sodium_memcmp(a->b, b->b, a->len) == 0;
}

/* The clear bytes of a blob equal hex? Read through tkm_hsm_blob_extract(). */
static bool blob_bytes_eq(const uint8_t *blob, size_t blob_len, const char *owner, const char *hex)
{
	tkm_hsm_sess *s = NULL;
	uint8_t *got = sodium_malloc(32), *want = NULL;
	size_t got_len = 0, want_len = 0;
	bool eq = false;
	tkm_err err;

	want = unhex_locked(hex, &want_len);
	if (got == NULL || want == NULL) {
		goto out;
	}
	err = tkm_hsm_sess_get(fix.h, &s, why, sizeof(why));
	if (err == TKM_OK) {
		err = tkm_hsm_blob_extract(fix.h, s, blob, blob_len, owner, got, 32, &got_len, NULL,
		                           why, sizeof(why));
	}
	tkm_hsm_sess_put(fix.h, s);
	if (err != TKM_OK) {
		fprintf(stderr, "extract: %s: %s\n", tkm_strerror(err), why);
		goto out;
	}
	eq = got_len == want_len && sodium_memcmp(got, want, got_len) == 0;
out:
	sodium_free(got);
	sodium_free(want);
	return eq;
}

static void test_derivation(void)
{
	for (size_t i = 0; i < sizeof(tr31_deriv_cases) / sizeof(tr31_deriv_cases[0]); i++) {
		const struct tr31_deriv_case *c = &tr31_deriv_cases[i];
		tkm_hsm_alg alg = alg_for(c->version == 'B', strlen(c->kbpk_hex) / 2);
		uint8_t blob[TKM_HSM_BLOB_MAX];
		size_t blob_len = 0;
		tkm_hsm_kcv want_e, want_a, got_e, got_a;
		tkm_hsm_tr31_ref kbpk;
		bool ok = true;

		if (!import_hex(alg, TKM_HSM_USE_KBPK, c->kbpk_hex, OWNER_KBPK, blob, &blob_len) ||
		    !kcv_of_hex(alg, c->kbek_hex, &want_e) ||
		    !kcv_of_hex(alg, c->kbak_hex, &want_a)) {
			fprintf(stderr, "%s: setup failed\n", c->id);
			CHECK(false);
			continue;
		}
		kbpk = (tkm_hsm_tr31_ref){blob, blob_len, OWNER_KBPK};
		CHECK_EQ_INT(tkm_hsm_tr31_derived_kcv(fix.h, &kbpk, c->version, false, &got_e, why,
		                                      sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_hsm_tr31_derived_kcv(fix.h, &kbpk, c->version, true, &got_a, why,
		                                      sizeof(why)),
		             TKM_OK);
		ok = kcv_eq(&got_e, &want_e) && kcv_eq(&got_a, &want_a);
		CHECK(ok);
		printf("derivation %s: KBEK/KBAK %s\n", c->id, ok ? "match" : "DIFFER");
	}
}

/* Import kb after changing the character at pos; must be refused. */
static tkm_err import_tampered(const tkm_hsm_tr31_ref *kbpk, const char *kb, size_t pos)
{
	uint8_t blob[TKM_HSM_BLOB_MAX];
	size_t len = strlen(kb), blob_len = 1;
	tkm_hsm_kcv kcv;
	tkm_err err;

	memcpy(kbuf2, kb, len);
	kbuf2[pos] = kbuf2[pos] == '0' ? '1' : '0';
	err = tkm_hsm_tr31_import(fix.h, kbpk, kbuf2, len, TKM_HSM_USE_DATA, OWNER_KEY, blob,
	                          &blob_len, &kcv, &hdr2, why, sizeof(why));
	CHECK_EQ_INT(blob_len, 0);
	return err;
}

static void test_keyblock(const struct tr31_crypto_case *c)
{
	const size_t kb_len = strlen(c->key_block);
	const char version = c->key_block[0], algorithm = c->key_block[7];
	const size_t kbpk_len = strlen(c->kbpk_hex) / 2, key_len = strlen(c->key_hex) / 2;
	const tkm_hsm_alg kbpk_alg = alg_for(version == 'B', kbpk_len);
	uint8_t kbpk_blob[TKM_HSM_BLOB_MAX], blob[TKM_HSM_BLOB_MAX], key_blob[TKM_HSM_BLOB_MAX];
	size_t kbpk_blob_len = 0, blob_len = 0, key_blob_len = 0, out_len = 0, pad_len;
	uint8_t pad[64];
	tkm_tr31_layout layout;
	tkm_hsm_tr31_ref kbpk, key;
	tkm_hsm_kcv kcv, want, blob_kcv;
	tkm_hsm_alg key_alg;
	bool imported = false, exported = false, refused = true;
	char hbuf[TKM_TR31_MAX_LEN];
	tkm_err err;

	if (!import_hex(kbpk_alg, TKM_HSM_USE_KBPK, c->kbpk_hex, OWNER_KBPK, kbpk_blob,
	                &kbpk_blob_len)) {
		fprintf(stderr, "%s: KBPK import failed\n", c->id);
		CHECK(false);
		return;
	}
	kbpk = (tkm_hsm_tr31_ref){kbpk_blob, kbpk_blob_len, OWNER_KBPK};

	err = tkm_hsm_tr31_import(fix.h, &kbpk, c->key_block, kb_len, TKM_HSM_USE_DATA, OWNER_KEY,
	                          blob, &blob_len, &kcv, &hdr, why, sizeof(why));
	if (algorithm != 'T' && algorithm != 'A') {
		/* tkm keeps only TDES and AES device keys: the block's MAC verifies, its key is
		 * refused. */
		CHECK_EQ_INT(err, TKM_E_BAD_REQUEST);
		CHECK_EQ_INT(blob_len, 0);
		printf("keyblock %s: algorithm %c refused as expected (%s)\n", c->id, algorithm,
		       why);
		return;
	}
	if (err != TKM_OK) {
		fprintf(stderr, "%s: import: %s: %s\n", c->id, tkm_strerror(err), why);
	}
	CHECK_EQ_INT(err, TKM_OK);
	key_alg = alg_for(algorithm == 'T', key_len);
	if (err == TKM_OK) {
		CHECK(kcv_of_hex(key_alg, c->key_hex, &want));
		CHECK(kcv_eq(&kcv, &want));
		CHECK_EQ_INT(tkm_hsm_blob_kcv(fix.h, blob, blob_len, OWNER_KEY, method_for(key_alg),
		                              TKM_HSM_KCV_MAX, &blob_kcv, why, sizeof(why)),
		             TKM_OK);
		CHECK(kcv_eq(&blob_kcv, &want));
		CHECK(blob_bytes_eq(blob, blob_len, OWNER_KEY, c->key_hex));
		/* The returned header is the block's own: it rebuilds byte for byte. */
		pad_len = strlen(c->pad_hex) / 2;
		CHECK_EQ_INT(tkm_tr31_encode_header(&hdr, key_len, pad_len, hbuf, sizeof(hbuf),
		                                    &layout, why, sizeof(why)),
		             TKM_OK);
		CHECK(hdr.version == version && hdr.algorithm == algorithm);
		CHECK(text_eq(hbuf, c->key_block, layout.header_len));
		imported =
		    kcv_eq(&kcv, &want) && blob_bytes_eq(blob, blob_len, OWNER_KEY, c->key_hex);
	}

	/* Export the published key with the published padding. */
	pad_len = tkm_hsmfix_unhex(c->pad_hex, pad, sizeof(pad));
	CHECK_EQ_INT(pad_len, strlen(c->pad_hex) / 2);
	if (import_hex(key_alg, TKM_HSM_USE_DATA, c->key_hex, OWNER_KEY, key_blob, &key_blob_len) &&
	    tkm_tr31_decode(c->key_block, kb_len, &hdr, &layout, why, sizeof(why)) == TKM_OK) {
		key = (tkm_hsm_tr31_ref){key_blob, key_blob_len, OWNER_KEY};
		err = tkm_hsm_tr31_export(fix.h, &kbpk, &key, &hdr, pad, pad_len, kbuf,
		                          sizeof(kbuf), &out_len, why, sizeof(why));
		if (err != TKM_OK) {
			fprintf(stderr, "%s: export: %s: %s\n", c->id, tkm_strerror(err), why);
		}
		CHECK_EQ_INT(err, TKM_OK);
		exported =
		    err == TKM_OK && out_len == kb_len && text_eq(kbuf, c->key_block, kb_len);
		CHECK(exported);
	} else {
		CHECK(false);
	}

	/* One character changed in the header, the payload and the MAC. */
	if (tkm_tr31_decode(c->key_block, kb_len, &hdr, &layout, why, sizeof(why)) == TKM_OK) {
		size_t pos[3] = {9, layout.payload_off + 3, kb_len - 1};

		for (size_t i = 0; i < 3; i++) {
			err = import_tampered(&kbpk, c->key_block, pos[i]);
			CHECK_EQ_INT(err, TKM_E_CRYPTO);
			refused = refused && err == TKM_E_CRYPTO;
		}
	}
	printf("keyblock %s: import %s, export %s, tampered %s\n", c->id,
	       imported ? "ok" : "FAILED", exported ? "byte-exact" : "FAILED",
	       refused ? "refused" : "NOT REFUSED");
}

/* A minimal header of version/usage/algorithm/mode, exportability 'E'. */
static void header(tkm_tr31_header *h, char version, const char *usage, char algorithm, char mode)
{
	tkm_tr31_header_clear(h);
	h->version = version;
	memcpy(h->usage, usage, 3);
	h->algorithm = algorithm;
	h->mode = mode;
	h->exportability = 'E';
}

static void test_refusals(void)
{
	uint8_t aes128[TKM_HSM_BLOB_MAX], aes256[TKM_HSM_BLOB_MAX], tdes2[TKM_HSM_BLOB_MAX],
	    tdes3[TKM_HSM_BLOB_MAX], data128[TKM_HSM_BLOB_MAX];
	size_t aes128_len, aes256_len, tdes2_len, tdes3_len, data128_len, out_len = 0;
	tkm_hsm_tr31_ref k_aes128, k_aes256, k_tdes2, k_tdes3, kbpk_aes128, kbpk_tdes2, kbpk_data;
	tkm_hsm_kcv kcv;

	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, TKM_HSM_AES128, TKM_HSM_USE_KBPK,
	                                         OWNER_KBPK, aes128, &aes128_len, &kcv, why,
	                                         sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_KBPK, OWNER_KBPK,
	                                         tdes2, &tdes2_len, &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, TKM_HSM_AES128, TKM_HSM_USE_DATA,
	                                         OWNER_KBPK, data128, &data128_len, &kcv, why,
	                                         sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, TKM_HSM_AES256, TKM_HSM_USE_PIN, OWNER_KEY,
	                                         aes256, &aes256_len, &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, TKM_HSM_TDES3, TKM_HSM_USE_PIN, OWNER_KEY,
	                                         tdes3, &tdes3_len, &kcv, why, sizeof(why)),
	             TKM_OK);
	kbpk_aes128 = (tkm_hsm_tr31_ref){aes128, aes128_len, OWNER_KBPK};
	kbpk_tdes2 = (tkm_hsm_tr31_ref){tdes2, tdes2_len, OWNER_KBPK};
	kbpk_data = (tkm_hsm_tr31_ref){data128, data128_len, OWNER_KBPK};
	k_aes128 = (tkm_hsm_tr31_ref){aes128, aes128_len, OWNER_KBPK};
	k_aes256 = (tkm_hsm_tr31_ref){aes256, aes256_len, OWNER_KEY};
	k_tdes2 = (tkm_hsm_tr31_ref){tdes2, tdes2_len, OWNER_KBPK};
	k_tdes3 = (tkm_hsm_tr31_ref){tdes3, tdes3_len, OWNER_KEY};

	/* Weaker KBPK: AES-256 under AES-128, AES under TDES, 3-key under 2-key TDES. */
	header(&hdr, 'D', "P0", 'A', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_aes128, &k_aes256, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	header(&hdr, 'B', "P0", 'A', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_tdes2, &k_aes128, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	header(&hdr, 'B', "P0", 'T', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_tdes2, &k_tdes3, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	CHECK_EQ_INT(out_len, 0);
	/* Version that does not fit the KBPK; versions A and C; a non-KBPK as KBPK. */
	header(&hdr, 'D', "P0", 'T', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_tdes2, &k_tdes2, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	header(&hdr, 'C', "P0", 'T', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_tdes2, &k_tdes2, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	header(&hdr, 'D', "P0", 'T', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_data, &k_tdes3, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	/* Header algorithm not the key's. */
	header(&hdr, 'D', "P0", 'T', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_aes128, &k_aes128, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	/* Forbidden combinations: P0 with mode C, M7 (HMAC) with TDES, B0 with mode E. */
	header(&hdr, 'D', "P0", 'A', 'C');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_aes128, &k_aes128, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	header(&hdr, 'D', "M7", 'T', 'C');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_aes128, &k_tdes2, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	header(&hdr, 'B', "B0", 'T', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_tdes2, &k_tdes2, &hdr, NULL, 0, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	/* Padding the format refuses: more than a block, and not key length obfuscation. */
	header(&hdr, 'D', "P0", 'A', 'E');
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk_aes128, &k_aes128, &hdr, NULL, 46, kbuf,
	                                 sizeof(kbuf), &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
}

/* Random padding and PB: export, import back, same key; two exports differ. */
static void test_round_trip(char version, tkm_hsm_alg kbpk_alg, tkm_hsm_alg key_alg,
                            const char *usage, char mode)
{
	uint8_t kbpk_blob[TKM_HSM_BLOB_MAX], key_blob[TKM_HSM_BLOB_MAX], blob[TKM_HSM_BLOB_MAX];
	size_t kbpk_len, key_len, blob_len, len1 = 0, len2 = 0;
	tkm_hsm_kcv kcv, key_kcv, got;
	tkm_hsm_tr31_ref kbpk, key;
	const char algorithm = key_alg == TKM_HSM_TDES2 || key_alg == TKM_HSM_TDES3 ? 'T' : 'A';
	static const uint8_t ksn[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF};

	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, kbpk_alg, TKM_HSM_USE_KBPK, OWNER_KBPK,
	                                         kbpk_blob, &kbpk_len, &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, key_alg, TKM_HSM_USE_DATA, OWNER_KEY,
	                                         key_blob, &key_len, &key_kcv, why, sizeof(why)),
	             TKM_OK);
	kbpk = (tkm_hsm_tr31_ref){kbpk_blob, kbpk_len, OWNER_KBPK};
	key = (tkm_hsm_tr31_ref){key_blob, key_len, OWNER_KEY};
	header(&hdr, version, usage, algorithm, mode);
	CHECK_EQ_INT(tkm_tr31_opt_add_hex(&hdr, "KS", ksn, sizeof(ksn), why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk, &key, &hdr, NULL, 0, kbuf, sizeof(kbuf),
	                                 &len1, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk, &key, &hdr, NULL, 0, kbuf2, sizeof(kbuf2),
	                                 &len2, why, sizeof(why)),
	             TKM_OK);
	CHECK(len1 > 0 && len1 == len2 && !text_eq(kbuf, kbuf2, len1));
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kbuf, len1, TKM_HSM_USE_PIN, OWNER_KEY, blob,
	                                 &blob_len, &got, &hdr2, why, sizeof(why)),
	             TKM_OK);
	CHECK(kcv_eq(&got, &key_kcv));
	CHECK(tkm_tr31_opt_find(&hdr2, "KS") != NULL && tkm_tr31_opt_find(&hdr2, "PB") != NULL);
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kbuf2, len2, TKM_HSM_USE_PIN, OWNER_KEY,
	                                 blob, &blob_len, &got, &hdr2, why, sizeof(why)),
	             TKM_OK);
	CHECK(kcv_eq(&got, &key_kcv));
	/* Key length obfuscation: an AES-128 key padded like an AES-256 one (48 bytes). */
	if (algorithm == 'A' && key_alg == TKM_HSM_AES128) {
		CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk, &key, &hdr, NULL, 30, kbuf,
		                                 sizeof(kbuf), &len1, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kbuf, len1, TKM_HSM_USE_PIN,
		                                 OWNER_KEY, blob, &blob_len, &got, &hdr2, why,
		                                 sizeof(why)),
		             TKM_OK);
		CHECK(kcv_eq(&got, &key_kcv));
	}
	/* The wrong KBPK: the MAC does not verify. */
	CHECK_EQ_INT(tkm_hsm_device_key_generate(fix.h, kbpk_alg, TKM_HSM_USE_KBPK, OWNER_KBPK,
	                                         kbpk_blob, &kbpk_len, &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kbuf2, len2, TKM_HSM_USE_PIN, OWNER_KEY,
	                                 blob, &blob_len, &got, &hdr2, why, sizeof(why)),
	             TKM_E_CRYPTO);
	/* The KBPK blob bound to another owner does not authenticate. */
	kbpk.owner = OWNER_KEY;
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kbuf2, len2, TKM_HSM_USE_PIN, OWNER_KEY,
	                                 blob, &blob_len, &got, &hdr2, why, sizeof(why)),
	             TKM_E_CRYPTO);
}

/*
 * Build a version B block by hand with the published KBEK/KBAK of
 * tr31-kbek-kbak-test1-derive made into session objects (internal API), so
 * that its MAC is right whatever its header says. header is hlen characters
 * (a multiple of 8, its length field already right); the key is the
 * two-key TDES key 11 22 .. FF 00 (build_key); out gets hlen + 64 characters
 * and a NUL.
 */
static const uint8_t *build_key(void)
{
	static uint8_t key[16];
	for (size_t i = 0; i < 16; i++) {
		key[i] = (uint8_t)(0x11 * (i + 1));
	}
	return key;
}

static bool build_b(const char *header, size_t hlen, char *out, size_t out_cap)
{
	const struct tr31_deriv_case *c = &tr31_deriv_cases[0];
	CK_OBJECT_HANDLE kbek = CK_INVALID_HANDLE, kbak = CK_INVALID_HANDLE;
	uint8_t *e = NULL, *a = NULL, *msg = NULL;
	uint8_t mac[8], ct[24];
	size_t n = 0, len;
	tkm_hsm_sess *s = NULL;
	static const char hexd[] = "0123456789ABCDEF";
	bool ok = false;

	if (hlen % 8 != 0 || out_cap < hlen + 65) {
		return false;
	}
	msg = sodium_malloc(hlen + 24);
	e = unhex_locked(c->kbek_hex, &len);
	a = unhex_locked(c->kbak_hex, &len);
	if (e == NULL || a == NULL || msg == NULL ||
	    tkm_hsm_sess_get(fix.h, &s, why, sizeof(why)) != TKM_OK) {
		goto out;
	}
	memcpy(msg, header, hlen);
	msg[hlen] = 0x00;
	msg[hlen + 1] = 0x80;
	memcpy(msg + hlen + 2, build_key(), 16);
	memset(msg + hlen + 18, 0x5A, 6);
	ok = tkm_hsm_obj_create(fix.h, s, TKM_HSM_TDES2, TKM_HSM_A_ENCRYPT, e, 16, &kbek, why,
	                        sizeof(why)) == TKM_OK &&
	     tkm_hsm_obj_create(fix.h, s, TKM_HSM_TDES2, TKM_HSM_A_SIGN, a, 16, &kbak, why,
	                        sizeof(why)) == TKM_OK &&
	     tkm_hsm_cmac(fix.h, s, kbak, TKM_HSM_TDES2, msg, hlen + 24, mac, sizeof(mac), &n, why,
	                  sizeof(why)) == TKM_OK &&
	     tkm_hsm_cbc(fix.h, s, kbek, TKM_HSM_TDES2, true, mac, msg + hlen, 24, ct, why,
	                 sizeof(why)) == TKM_OK;
	if (ok) {
		memcpy(out, header, hlen);
		for (size_t i = 0; i < 24; i++) {
			out[hlen + 2 * i] = hexd[ct[i] >> 4];
			out[hlen + 1 + 2 * i] = hexd[ct[i] & 15];
		}
		for (size_t i = 0; i < 8; i++) {
			out[hlen + 48 + 2 * i] = hexd[mac[i] >> 4];
			out[hlen + 49 + 2 * i] = hexd[mac[i] & 15];
		}
		out[hlen + 64] = '\0';
	}
out:
	tkm_hsm_obj_destroy(fix.h, s, &kbek);
	tkm_hsm_obj_destroy(fix.h, s, &kbak);
	tkm_hsm_sess_put(fix.h, s);
	sodium_free(e);
	sodium_free(a);
	sodium_free(msg);
	return ok;
}

/* A header the standard forbids is refused even when the MAC verifies. */
static void test_forbidden_after_mac(void)
{
	const struct tr31_deriv_case *c = &tr31_deriv_cases[0];
	uint8_t kbpk_blob[TKM_HSM_BLOB_MAX], blob[TKM_HSM_BLOB_MAX];
	size_t kbpk_len = 0, blob_len = 0;
	tkm_hsm_tr31_ref kbpk;
	tkm_hsm_kcv kcv;
	char kb[81];

	CHECK(import_hex(TKM_HSM_TDES2, TKM_HSM_USE_KBPK, c->kbpk_hex, OWNER_KBPK, kbpk_blob,
	                 &kbpk_len));
	kbpk = (tkm_hsm_tr31_ref){kbpk_blob, kbpk_len, OWNER_KBPK};
	/* Control: the same construction with an allowed header imports. */
	CHECK(build_b("B0080P0TE00E0000", 16, kb, sizeof(kb)));
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kb, 80, TKM_HSM_USE_PIN, OWNER_KEY, blob,
	                                 &blob_len, &kcv, &hdr, why, sizeof(why)),
	             TKM_OK);
	/* P0 with mode C (generate and verify) is forbidden. */
	CHECK(build_b("B0080P0TC00E0000", 16, kb, sizeof(kb)));
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kb, 80, TKM_HSM_USE_PIN, OWNER_KEY, blob,
	                                 &blob_len, &kcv, &hdr, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	CHECK_EQ_INT(blob_len, 0);
	printf("forbidden header with a valid MAC: %s\n", why);
}

/*
 * KC and KP blocks must state the check values the HSM computes: export
 * refuses a wrong one, and import refuses a block whose MAC verifies but
 * whose KC is not its key's.
 */
static void test_kcv_blocks(void)
{
	const struct tr31_deriv_case *c = &tr31_deriv_cases[0];
	uint8_t kbpk_blob[TKM_HSM_BLOB_MAX], blob[TKM_HSM_BLOB_MAX];
	size_t kbpk_len = 0, blob_len = 0, out_len = 0;
	tkm_hsm_tr31_ref kbpk, key;
	tkm_hsm_kcv kcv, kbpk_kcv;
	tkm_tr31_kcv stated;
	char kb[128], hdr_text[33], out[TKM_TR31_MAX_LEN];
	int n;

	CHECK(import_hex(TKM_HSM_TDES2, TKM_HSM_USE_KBPK, c->kbpk_hex, OWNER_KBPK, kbpk_blob,
	                 &kbpk_len));
	kbpk = (tkm_hsm_tr31_ref){kbpk_blob, kbpk_len, OWNER_KBPK};
	CHECK_EQ_INT(tkm_hsm_blob_kcv(fix.h, kbpk_blob, kbpk_len, OWNER_KBPK, TKM_HSM_KCV_TDES, 3,
	                              &kbpk_kcv, why, sizeof(why)),
	             TKM_OK);
	/* The key's legacy KCV, from a block without KC. */
	CHECK(build_b("B0080P0TE00E0000", 16, kb, sizeof(kb)));
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kb, 80, TKM_HSM_USE_PIN, OWNER_KEY, blob,
	                                 &blob_len, &kcv, &hdr, why, sizeof(why)),
	             TKM_OK);

	/* KC with the right value (algorithm 00, legacy), padded by PB to 32. */
	n = snprintf(hdr_text, sizeof(hdr_text), "B0096P0TE00E0200KC0C00%02X%02X%02XPB04", kcv.b[0],
	             kcv.b[1], kcv.b[2]);
	CHECK(n == 32);
	CHECK(build_b(hdr_text, 32, kb, sizeof(kb)));
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kb, 96, TKM_HSM_USE_PIN, OWNER_KEY, blob,
	                                 &blob_len, &kcv, &hdr, why, sizeof(why)),
	             TKM_OK);
	/* The same with one KCV digit off: the MAC verifies, the KC does not. */
	hdr_text[22] = hdr_text[22] == '0' ? '1' : '0';
	CHECK(build_b(hdr_text, 32, kb, sizeof(kb)));
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kb, 96, TKM_HSM_USE_PIN, OWNER_KEY, blob,
	                                 &blob_len, &kcv, &hdr, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	CHECK(strstr(why, "KC block") != NULL);
	if (strstr(why, "KC block") == NULL) {
		fprintf(stderr, "wrong KC: %s\n", why);
	}
	CHECK_EQ_INT(blob_len, 0);

	/* Export: a right KC and KP are written, a wrong KP is refused. */
	CHECK(build_b("B0080P0TE00E0000", 16, kb, sizeof(kb)));
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, kb, 80, TKM_HSM_USE_PIN, OWNER_KEY, blob,
	                                 &blob_len, &kcv, &hdr, why, sizeof(why)),
	             TKM_OK);
	key = (tkm_hsm_tr31_ref){blob, blob_len, OWNER_KEY};
	header(&hdr, 'B', "P0", 'T', 'E');
	stated = (tkm_tr31_kcv){TKM_TR31_KCV_LEGACY, {0}, 3};
	memcpy(stated.kcv, kcv.b, 3);
	CHECK_EQ_INT(tkm_tr31_opt_add_kcv(&hdr, "KC", &stated, why, sizeof(why)), TKM_OK);
	memcpy(stated.kcv, kbpk_kcv.b, 3);
	CHECK_EQ_INT(tkm_tr31_opt_add_kcv(&hdr, "KP", &stated, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk, &key, &hdr, NULL, 0, out, sizeof(out),
	                                 &out_len, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_hsm_tr31_import(fix.h, &kbpk, out, out_len, TKM_HSM_USE_PIN, OWNER_KEY,
	                                 blob, &blob_len, &kcv, &hdr, why, sizeof(why)),
	             TKM_OK);
	header(&hdr, 'B', "P0", 'T', 'E');
	stated.kcv[0] ^= 0x01;
	CHECK_EQ_INT(tkm_tr31_opt_add_kcv(&hdr, "KP", &stated, why, sizeof(why)), TKM_OK);
	key = (tkm_hsm_tr31_ref){blob, blob_len, OWNER_KEY};
	CHECK_EQ_INT(tkm_hsm_tr31_export(fix.h, &kbpk, &key, &hdr, NULL, 0, out, sizeof(out),
	                                 &out_len, why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	CHECK(strstr(why, "KP block") != NULL);
	printf("KC/KP blocks: checked against the HSM's check values\n");
}

int main(void)
{
	size_t tok = 0, sess = 0;

	if (sodium_init() < 0) {
		return 1;
	}
	if (!tkm_hsmfix_new(&fix)) {
		return 1;
	}
	if (!tkm_hsmfix_open(&fix, NULL, 2) || !tkm_hsmfix_masters(&fix)) {
		tkm_hsmfix_free(&fix);
		return 1;
	}
	test_derivation();
	for (size_t i = 0; i < sizeof(tr31_crypto_cases) / sizeof(tr31_crypto_cases[0]); i++) {
		test_keyblock(&tr31_crypto_cases[i]);
	}
	test_refusals();
	test_forbidden_after_mac();
	test_kcv_blocks();
	test_round_trip('D', TKM_HSM_AES256, TKM_HSM_AES128, "D0", 'E');
	test_round_trip('D', TKM_HSM_AES128, TKM_HSM_TDES3, "K0", 'E');
	test_round_trip('B', TKM_HSM_TDES3, TKM_HSM_TDES3, "P0", 'E');
	test_round_trip('B', TKM_HSM_TDES2, TKM_HSM_TDES2, "M3", 'C');
	/* No session object outlives a call. */
	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &tok, &sess, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(sess, 0);
	tkm_hsmfix_free(&fix);
	return tkm_test_report("hsm_tr31");
}
