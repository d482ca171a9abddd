/*
 * hsm_seal_test.c - sealing records with AES-GCM under the master sealing
 * key, and signing with the audit key, through a real SoftHSM2 token.
 * Signatures are verified with libsodium, independently of the HSM.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "hsm_fixture.h"
#include "tkm_test.h"

static tkm_hsmfix fix;
static char why[512];

static tkm_hsm_seal_ctx ctx(const char *table, const char *row, uint64_t version)
{
	tkm_hsm_seal_ctx c = {table, (const uint8_t *)row, strlen(row), version};
	return c;
}

static void test_before_setup(void)
{
	tkm_hsm_seal_ctx c = ctx("secrets", "1", 1);
	uint8_t out[64], sig[64], pk[32];
	size_t n = 0;
	tkm_hsm_id id;

	CHECK_EQ_INT(tkm_hsm_seal(fix.h, &c, (const uint8_t *)"x", 1, out, sizeof(out), &n, why,
	                          sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(tkm_hsm_audit_sign(fix.h, (const uint8_t *)"x", 1, sig, why, sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
	CHECK_EQ_INT(tkm_hsm_audit_public_key(fix.h, &id, pk, why, sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
}

static void test_seal(void)
{
	static const size_t sizes[] = {0, 1, 16, 1000, 65536};
	tkm_hsm_seal_ctx c = ctx("terminal_secret", "42", 7);
	uint8_t *plain = sodium_malloc(65536), *back = sodium_malloc(65536);
	uint8_t *sealed = sodium_malloc(65536 + TKM_HSM_SEAL_OVERHEAD);
	size_t n = 0, m = 0;

	randombytes_buf(plain, 65536);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		CHECK_EQ_INT(tkm_hsm_seal(fix.h, &c, plain, sizes[i], sealed,
		                          65536 + TKM_HSM_SEAL_OVERHEAD, &n, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(n, sizes[i] + TKM_HSM_SEAL_OVERHEAD);
		CHECK_EQ_INT(
		    tkm_hsm_unseal(fix.h, &c, sealed, n, back, sizes[i], &m, why, sizeof(why)),
		    TKM_OK);
		CHECK(m == sizes[i] && (m == 0 || sodium_memcmp(back, plain, m) == 0));
	}
	/* Moved to another row, table or version: it does not open. */
	CHECK_EQ_INT(tkm_hsm_seal(fix.h, &c, plain, 32, sealed, 65536, &n, why, sizeof(why)),
	             TKM_OK);
	{
		tkm_hsm_seal_ctx other[] = {
		    ctx("terminal_secret", "43", 7), ctx("terminal_secret", "4", 7),
		    ctx("terminal_secrets", "42", 7), ctx("terminal_secret", "42", 8)};
		for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
			CHECK_EQ_INT(tkm_hsm_unseal(fix.h, &other[i], sealed, n, back, 65536, &m,
			                            why, sizeof(why)),
			             TKM_E_CRYPTO);
			CHECK_EQ_INT(m, 0);
		}
	}
	/* Any changed byte, a cut and a missing tag: it does not open. */
	for (size_t i = 0; i < n; i++) {
		sealed[i] ^= 0x80;
		CHECK_EQ_INT(
		    tkm_hsm_unseal(fix.h, &c, sealed, n, back, 65536, &m, why, sizeof(why)),
		    TKM_E_CRYPTO);
		sealed[i] ^= 0x80;
	}
	CHECK_EQ_INT(tkm_hsm_unseal(fix.h, &c, sealed, n - 1, back, 65536, &m, why, sizeof(why)),
	             TKM_E_CRYPTO);
	CHECK_EQ_INT(tkm_hsm_unseal(fix.h, &c, sealed, 10, back, 65536, &m, why, sizeof(why)),
	             TKM_E_CRYPTO);
	CHECK_EQ_INT(tkm_hsm_unseal(fix.h, &c, sealed, n, back, 65536, &m, why, sizeof(why)),
	             TKM_OK);
	/* Bad arguments. */
	CHECK_EQ_INT(tkm_hsm_unseal(fix.h, &c, sealed, n, back, 31, &m, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_seal(fix.h, &c, plain, 32, sealed, 32 + TKM_HSM_SEAL_OVERHEAD - 1, &n,
	                          why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	{
		tkm_hsm_seal_ctx bad[] = {ctx("", "1", 1), ctx("t", "", 1)};
		for (size_t i = 0; i < 2; i++) {
			CHECK_EQ_INT(tkm_hsm_seal(fix.h, &bad[i], plain, 1, sealed, 65536, &n, why,
			                          sizeof(why)),
			             TKM_E_INVALID_ARG);
		}
	}
	/* Two seals of the same record differ (fresh IV). */
	{
		uint8_t a[64], b[64];
		size_t na = 0, nb = 0;
		CHECK_EQ_INT(tkm_hsm_seal(fix.h, &c, plain, 8, a, sizeof(a), &na, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_hsm_seal(fix.h, &c, plain, 8, b, sizeof(b), &nb, why, sizeof(why)),
		             TKM_OK);
		CHECK(na == nb && memcmp(a, b, na) != 0); /* lint: memcmp ok (public data) */
	}
	sodium_free(plain);
	sodium_free(back);
	sodium_free(sealed);
}

static void test_audit(void)
{
	static const uint8_t msg[] = "checkpoint seq=1000 hash=...";
	uint8_t sig[TKM_HSM_ED25519_SIG_LEN], pk[TKM_HSM_ED25519_PK_LEN];
	tkm_hsm_id id;

	CHECK_EQ_INT(tkm_hsm_audit_public_key(fix.h, &id, pk, why, sizeof(why)), TKM_OK);
	CHECK(sodium_memcmp(id.b, fix.audit.b, TKM_HSM_ID_LEN) == 0);
	CHECK_EQ_INT(tkm_hsm_audit_sign(fix.h, msg, sizeof(msg), sig, why, sizeof(why)), TKM_OK);
	CHECK(crypto_sign_verify_detached(sig, msg, sizeof(msg), pk) == 0);
	sig[10] ^= 1;
	CHECK(crypto_sign_verify_detached(sig, msg, sizeof(msg), pk) != 0);
	CHECK_EQ_INT(tkm_hsm_audit_sign(fix.h, NULL, 0, sig, why, sizeof(why)), TKM_OK);
	CHECK(crypto_sign_verify_detached(sig, (const uint8_t *)"", 0, pk) == 0);
	CHECK_EQ_INT(tkm_hsm_audit_sign(fix.h, NULL, 1, sig, why, sizeof(why)), TKM_E_INVALID_ARG);
}

/*
 * The master keys from components, as a key ceremony loads them; the audit
 * key is generated. The token's check value of each imported key must be
 * the KCV of the clear key the components make.
 */
static void import_masters(void)
{
	static const tkm_hsm_role roles[] = {TKM_HSM_MASTER_KEK, TKM_HSM_MASTER_SEAL};
	tkm_hsm_id *ids[] = {&fix.kek, &fix.seal};
	uint8_t *key = sodium_malloc(32);
	tkm_hsm_component comps[2];
	tkm_hsm_kcv kcv, want, got;

	for (size_t i = 0; i < 2; i++) {
		randombytes_buf(key, 32);
		CHECK(tkm_hsmfix_split(fix.h, TKM_HSM_AES256, key, 32, comps));
		CHECK_EQ_INT(tkm_hsm_token_key_import(fix.h, roles[i], TKM_HSM_AES256, NULL, comps,
		                                      2, ids[i], &kcv, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_hsm_token_key_import(fix.h, roles[i], TKM_HSM_AES256, NULL, comps,
		                                      2, ids[i], &got, why, sizeof(why)),
		             TKM_E_ALREADY_EXISTS);
		tkm_hsmfix_free_components(comps, 2);
		CHECK_EQ_INT(kcv.method, TKM_HSM_KCV_AES_CMAC);
		CHECK_EQ_INT(tkm_hsm_component_kcv(fix.h, TKM_HSM_AES256, key, TKM_HSM_KCV_AES_CMAC,
		                                   5, &want, why, sizeof(why)),
		             TKM_OK);
		CHECK(sodium_memcmp(kcv.b, want.b, 5) == 0);
		CHECK_EQ_INT(tkm_hsm_component_kcv(fix.h, TKM_HSM_AES256, key, TKM_HSM_KCV_AES_ECB,
		                                   3, &want, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_hsm_token_kcv(fix.h, ids[i], TKM_HSM_KCV_AES_ECB, 3, &got, why,
		                               sizeof(why)),
		             TKM_OK);
		CHECK(sodium_memcmp(got.b, want.b, 3) == 0);
	}
	CHECK_EQ_INT(tkm_hsm_token_key_import(fix.h, TKM_HSM_AUDIT, TKM_HSM_ED25519, NULL, comps, 2,
	                                      &fix.audit, &kcv, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_AUDIT, TKM_HSM_ED25519, NULL,
	                                        &fix.audit, &kcv, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(kcv.len, 0);
	sodium_free(key);
}

int main(void)
{
	if (!tkm_hsmfix_new(&fix) || !tkm_hsmfix_open(&fix, NULL, 2)) {
		tkm_hsmfix_free(&fix);
		return 1;
	}
	test_before_setup();
	import_masters();
	test_seal();
	test_audit();
	tkm_hsmfix_free(&fix);
	return tkm_test_report("hsm_seal");
}
