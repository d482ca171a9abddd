/*
 * tkm_hsm_dukpt.c - DUKPT initial keys derived from a BDK inside the HSM.
 *
 * AES DUKPT (ANSI X9.24-3-2017, "Derive Initial Key"): the initial key is
 * E(BDK, D1) || E(BDK, D2) ... truncated to the key length, where each
 * 16-byte derivation block is
 *   01 | counter | 80 01 | algorithm | length in bits | initial key ID
 * with the key usage 8001 ("initial key"), the algorithm indicator 0002,
 * 0003 or 0004 for AES-128/192/256 and the lengths 0080, 00C0 and 0100.
 * C_DeriveKey with CKM_AES_ECB_ENCRYPT_DATA encrypts every block of the
 * data under the BDK and keeps the first CKA_VALUE_LEN bytes, so the whole
 * derivation is one call and the key never leaves the HSM until it is
 * wrapped under the master KEK.
 *
 * TDES DUKPT (ANSI X9.24-1-2009, A.6): with R = the leftmost 8 bytes of the
 * KSN with its 21 counter bits cleared, IPEK = E(BDK, R) || E(BDK', R)
 * where BDK' = BDK XOR C0C0C0C000000000C0C0C0C000000000 is the variant
 * object stored beside the BDK. The HSM has no mechanism to concatenate two
 * derived values into one key, so each half is derived as a non-sensitive
 * value, the halves are joined in sodium_malloc() memory, made into a
 * session key object, wrapped, and wiped at once.
 */
#include <string.h>

#include <sodium.h>

#include "tkm_hsm.h"
#include "tkm_hsm_internal.h"

/* X9.24-3 algorithm indicator and key length in bits of an AES initial key. */
static bool aes_params(tkm_hsm_alg alg, uint16_t *indicator, uint16_t *bits)
{
	switch (alg) {
	case TKM_HSM_AES128:
		*indicator = 0x0002;
		*bits = 128;
		return true;
	case TKM_HSM_AES192:
		*indicator = 0x0003;
		*bits = 192;
		return true;
	case TKM_HSM_AES256:
		*indicator = 0x0004;
		*bits = 256;
		return true;
	default:
		return false;
	}
}

/* Find a BDK by id and its algorithm. */
static tkm_err find_bdk(tkm_hsm *h, tkm_hsm_sess *s, const tkm_hsm_id *id, CK_OBJECT_HANDLE *obj,
                        tkm_hsm_alg *alg, char *why, size_t why_len)
{
	tkm_err err;

	err = tkm_hsm_find_id(h, s, CKO_SECRET_KEY, id->b, TKM_HSM_ID_LEN, CKA_DERIVE, obj, why,
	                      why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, TKM_E_NOT_FOUND,
		                    "the token holds no BDK with this id");
	}
	if (err != TKM_OK) {
		return err;
	}
	return tkm_hsm_obj_alg(h, s, *obj, alg, why, why_len);
}

tkm_err tkm_hsm_dukpt_aes_initial_key(tkm_hsm *h, const tkm_hsm_id *bdk,
                                      const uint8_t initial_key_id[static 8], const char *owner,
                                      uint8_t blob[static TKM_HSM_BLOB_MAX], size_t *blob_len,
                                      tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	static const CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	static const CK_KEY_TYPE ckk = CKK_AES;
	static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	uint8_t data[32];
	CK_KEY_DERIVATION_STRING_DATA sd = {data, 0};
	CK_MECHANISM mech = {CKM_AES_ECB_ENCRYPT_DATA, &sd, sizeof(sd)};
	CK_OBJECT_HANDLE base = CK_INVALID_HANDLE, ik = CK_INVALID_HANDLE;
	CK_ULONG value_len = 0;
	/* Wrappable (sensitive), and able to sign for its CMAC KCV. */
	CK_ATTRIBUTE t[] = {
	    {CKA_CLASS, (void *)&cls, sizeof(cls)},
	    {CKA_KEY_TYPE, (void *)&ckk, sizeof(ckk)},
	    {CKA_VALUE_LEN, &value_len, sizeof(value_len)},
	    {CKA_TOKEN, (void *)&no, sizeof(no)},
	    {CKA_PRIVATE, (void *)&yes, sizeof(yes)},
	    {CKA_SENSITIVE, (void *)&yes, sizeof(yes)},
	    {CKA_EXTRACTABLE, (void *)&yes, sizeof(yes)},
	    {CKA_SIGN, (void *)&yes, sizeof(yes)},
	    {CKA_ENCRYPT, (void *)&yes, sizeof(yes)},
	    {CKA_DECRYPT, (void *)&no, sizeof(no)},
	    {CKA_WRAP, (void *)&no, sizeof(no)},
	    {CKA_UNWRAP, (void *)&no, sizeof(no)},
	    {CKA_DERIVE, (void *)&no, sizeof(no)},
	};
	tkm_hsm_sess *s = NULL;
	uint16_t indicator = 0, bits = 0;
	size_t nblocks;
	tkm_hsm_alg alg;
	tkm_err err;
	CK_RV rv;

	*blob_len = 0;
	memset(kcv, 0, sizeof(*kcv));
	err = tkm_hsm_owner_check(owner, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_sess_get(h, &s, why, why_len);
	}
	if (err == TKM_OK) {
		err = find_bdk(h, s, bdk, &base, &alg, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	if (!aes_params(alg, &indicator, &bits)) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "an AES DUKPT initial key needs an AES BDK");
		goto out;
	}
	nblocks = bits > 128 ? 2 : 1;
	for (size_t i = 0; i < nblocks; i++) {
		uint8_t *d = data + 16 * i;
		d[0] = 0x01;             /* version */
		d[1] = (uint8_t)(i + 1); /* key block counter */
		d[2] = 0x80;             /* key usage: initial key */
		d[3] = 0x01;
		d[4] = (uint8_t)(indicator >> 8);
		d[5] = (uint8_t)indicator;
		d[6] = (uint8_t)(bits >> 8); /* length of the derived key in bits */
		d[7] = (uint8_t)bits;
		memcpy(d + 8, initial_key_id, 8);
	}
	sd.ulLen = (CK_ULONG)(16 * nblocks);
	value_len = bits / 8;
	rv = h->p11->C_DeriveKey(s->h, &mech, base, t, sizeof(t) / sizeof(t[0]), &ik);
	if (rv != CKR_OK) {
		ik = CK_INVALID_HANDLE;
		err = tkm_hsm_ck(h, s, rv, "C_DeriveKey(AES_ECB_ENCRYPT_DATA)", why, why_len);
		goto out;
	}
	err = tkm_hsm_kcv_spec(alg, tkm_hsm_kcv_default(alg), TKM_HSM_KCV_MAX, kcv, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, ik, alg, false, kcv, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_blob_make(h, s, ik, alg, TKM_HSM_USE_DUKPT_INITIAL, kcv, owner, blob,
		                        blob_len, why, why_len);
	}
out:
	if (err != TKM_OK) {
		*blob_len = 0;
		memset(kcv, 0, sizeof(*kcv));
	}
	tkm_hsm_obj_destroy(h, s, &ik);
	tkm_hsm_sess_put(h, s);
	return err;
}

tkm_err tkm_hsm_dukpt_tdes_ipek(tkm_hsm *h, const tkm_hsm_id *bdk, const uint8_t ksn[static 10],
                                const char *owner, uint8_t blob[static TKM_HSM_BLOB_MAX],
                                size_t *blob_len, tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE base = CK_INVALID_HANDLE, variant = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE ipek = CK_INVALID_HANDLE;
	uint8_t vid[TKM_HSM_ID_LEN + 1];
	uint8_t reg[8];
	tkm_hsm_sess *s = NULL;
	uint8_t *key = NULL;
	tkm_hsm_alg alg;
	tkm_err err;

	*blob_len = 0;
	memset(kcv, 0, sizeof(*kcv));
	err = tkm_hsm_owner_check(owner, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_sess_get(h, &s, why, why_len);
	}
	if (err == TKM_OK) {
		err = find_bdk(h, s, bdk, &base, &alg, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	if (alg != TKM_HSM_TDES2) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "a TDES DUKPT IPEK needs a TDES-2key BDK");
		goto out;
	}
	memcpy(vid, bdk->b, TKM_HSM_ID_LEN);
	vid[TKM_HSM_ID_LEN] = TKM_HSM_VARIANT_TAG;
	err = tkm_hsm_find_id(h, s, CKO_SECRET_KEY, vid, sizeof(vid), CKA_DERIVE, &variant, why,
	                      why_len);
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "the TDES BDK's variant object is missing from the token");
	}
	if (err != TKM_OK) {
		goto out;
	}
	/* The leftmost 8 bytes of the KSN; the counter's top 5 bits are in the last. */
	memcpy(reg, ksn, 8);
	reg[7] &= 0xE0;
	key = sodium_malloc(16);
	if (key == NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory");
		goto out;
	}
	err = tkm_hsm_derive_encrypt(h, s, base, alg, reg, 8, key, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_derive_encrypt(h, s, variant, alg, reg, 8, key + 8, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_obj_create(h, s, alg, TKM_HSM_A_KCV | TKM_HSM_A_EXTRACTABLE, key, 16,
		                         &ipek, why, why_len);
	}
	/* The joined halves are not needed once the key object exists. */
	sodium_free(key);
	key = NULL;
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_spec(alg, TKM_HSM_KCV_TDES, TKM_HSM_KCV_MAX, kcv, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, ipek, alg, false, kcv, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_blob_make(h, s, ipek, alg, TKM_HSM_USE_DUKPT_INITIAL, kcv, owner,
		                        blob, blob_len, why, why_len);
	}
out:
	if (err != TKM_OK) {
		*blob_len = 0;
		memset(kcv, 0, sizeof(*kcv));
	}
	if (key != NULL) {
		sodium_free(key);
	}
	tkm_hsm_obj_destroy(h, s, &ipek);
	tkm_hsm_sess_put(h, s);
	return err;
}
