/*
 * tkm_hsm_kcv.c - key check values, computed inside the HSM.
 *
 * A key that may encrypt and sign (the short-lived session objects tkm makes
 * for a KCV) runs the mechanism itself: ECB for the legacy methods, CMAC for
 * the CMAC ones. A derive-only key (a BDK) cannot encrypt, so its KCV comes
 * from C_DeriveKey with ECB_ENCRYPT_DATA, which yields E(K, data) as a
 * non-sensitive value. For AES-CMAC that takes the CMAC apart (NIST SP
 * 800-38B): L = E(K, 0), subkey K1 = dbl(L) (K2 = dbl(K1) for the empty
 * message), and the tag is E(K, M XOR K1) for one full block M. The
 * doubling runs in locked memory on values that are not key material (L is
 * the legacy KCV's whole block); the key never leaves the HSM.
 */
#include <string.h>

#include <sodium.h>

#include "tkm_hsm.h"
#include "tkm_hsm_internal.h"

tkm_hsm_kcv_method tkm_hsm_kcv_default(tkm_hsm_alg alg)
{
	return alg == TKM_HSM_TDES2 || alg == TKM_HSM_TDES3 ? TKM_HSM_KCV_TDES
	                                                    : TKM_HSM_KCV_AES_CMAC;
}

tkm_err tkm_hsm_kcv_spec(tkm_hsm_alg alg, tkm_hsm_kcv_method method, size_t len, tkm_hsm_kcv *kcv,
                         char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	bool tdes = alg == TKM_HSM_TDES2 || alg == TKM_HSM_TDES3;
	bool fits;

	memset(kcv, 0, sizeof(*kcv));
	if (ai == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "only symmetric keys have a KCV");
	}
	switch (method) {
	case TKM_HSM_KCV_TDES:
		fits = tdes;
		break;
	case TKM_HSM_KCV_AES_CMAC:
	case TKM_HSM_KCV_AES_ECB:
	case TKM_HSM_KCV_AES_CMAC_EMPTY:
		fits = !tdes;
		break;
	default:
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "unknown KCV method %d",
		                    (int)method);
	}
	if (!fits) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "this KCV method does not apply to %s keys", ai->name);
	}
	if (len == 0) {
		len = TKM_HSM_KCV_DEFAULT;
	}
	if (len < TKM_HSM_KCV_MIN || len > TKM_HSM_KCV_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a KCV is %d to %d bytes, not %zu", TKM_HSM_KCV_MIN,
		                    TKM_HSM_KCV_MAX, len);
	}
	kcv->method = method;
	kcv->len = len;
	return TKM_OK;
}

/* CMAC subkey doubling in GF(2^128), in constant time. */
static void dbl(uint8_t out[16], const uint8_t in[16])
{
	uint8_t carry = in[0] >> 7;

	for (size_t i = 0; i < 15; i++) {
		out[i] = (uint8_t)(in[i] << 1) | (in[i + 1] >> 7);
	}
	out[15] = (uint8_t)(in[15] << 1) ^ (uint8_t)(0x87 & (0 - carry));
}

/* AES-CMAC of one block (16 zero bytes, or the empty message) with a derive-only key. */
static tkm_err derive_cmac(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, tkm_hsm_alg alg,
                           bool empty, uint8_t out[16], char *why, size_t why_len)
{
	static const uint8_t zero[16];
	uint8_t *w = NULL; /* L, K1, K2 and the last block, 16 bytes each */
	tkm_err err;

	w = sodium_malloc(64);
	if (w == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory");
	}
	err = tkm_hsm_derive_encrypt(h, s, obj, alg, zero, 16, w, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	dbl(w + 16, w);
	if (empty) {
		/* The padded empty message is 0x80 00...00, masked with K2. */
		dbl(w + 32, w + 16);
		memcpy(w + 48, w + 32, 16);
		w[48] ^= 0x80;
	} else {
		/* One full block of zeros, masked with K1. */
		memcpy(w + 48, w + 16, 16);
	}
	err = tkm_hsm_derive_encrypt(h, s, obj, alg, w + 48, 16, out, why, why_len);
out:
	sodium_free(w);
	return err;
}

tkm_err tkm_hsm_kcv_obj(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, tkm_hsm_alg alg,
                        bool derive_only, tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	static const uint8_t zero[16];
	uint8_t block[16];
	size_t n = 0;
	tkm_err err;

	if (ai == NULL || kcv->len < TKM_HSM_KCV_MIN || kcv->len > TKM_HSM_KCV_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "bad KCV arguments");
	}
	switch (kcv->method) {
	case TKM_HSM_KCV_TDES:
	case TKM_HSM_KCV_AES_ECB:
		err = derive_only ? tkm_hsm_derive_encrypt(h, s, obj, alg, zero, ai->block, block,
		                                           why, why_len)
		                  : tkm_hsm_ecb_encrypt(h, s, obj, alg, zero, ai->block, block, why,
		                                        why_len);
		break;
	case TKM_HSM_KCV_AES_CMAC:
	case TKM_HSM_KCV_AES_CMAC_EMPTY:
		if (derive_only) {
			err = derive_cmac(h, s, obj, alg, kcv->method == TKM_HSM_KCV_AES_CMAC_EMPTY,
			                  block, why, why_len);
		} else {
			err = tkm_hsm_cmac(h, s, obj, alg, zero,
			                   kcv->method == TKM_HSM_KCV_AES_CMAC ? 16 : 0, block,
			                   sizeof(block), &n, why, why_len);
		}
		break;
	default:
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "unknown KCV method");
	}
	if (err == TKM_OK) {
		memcpy(kcv->b, block, kcv->len);
	}
	return err;
}
