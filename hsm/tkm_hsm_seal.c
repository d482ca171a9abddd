/*
 * tkm_hsm_seal.c - AES-GCM under the master sealing key: sealing records
 * for the store, and the GMAC that binds a device key blob to its header
 * and owner (tkm_hsm_keys.c).
 *
 * Sealed record, version 1:
 *   0   1  version (1)
 *   1  16  CKA_ID of the master sealing key
 *  17  12  IV, random (libsodium)
 *  29   n  ciphertext
 *  29+n 16 tag
 * The associated data is "tkm seal v1" || bytes 0..29 || table length (1) ||
 * table || row length (1) || row || version (8, big-endian), so a record
 * opens only for the table, row and version it was sealed for.
 *
 * IVs are random 96-bit values; NIST SP 800-38D allows 2^32 such messages
 * per key, far beyond the records and blobs one sealing key protects.
 * Plaintexts pass through here on their way in or out and are never kept;
 * the decrypt side decrypts into sodium_malloc() memory first, because the
 * module may need room for the tag as well.
 */
#include <string.h>

#include <sodium.h>

#include "tkm_hsm.h"
#include "tkm_hsm_internal.h"

#define SEAL_VERSION   1
#define SEAL_HDR       (1 + TKM_HSM_ID_LEN + TKM_HSM_GCM_IV_LEN)
#define SEAL_AAD_TAG   "tkm seal v1"
#define SEAL_TABLE_MAX 64
#define SEAL_ROW_MAX   255
#define SEAL_AAD_MAX   (sizeof(SEAL_AAD_TAG) + SEAL_HDR + 1 + SEAL_TABLE_MAX + 1 + SEAL_ROW_MAX + 8)

/* PKCS#11 wants a pointer even for zero bytes; SoftHSM2 refuses NULL. */
static uint8_t empty_input[1];

tkm_err tkm_hsm_gcm(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE key, bool encrypt,
                    const uint8_t iv[static TKM_HSM_GCM_IV_LEN], const uint8_t *aad, size_t aad_len,
                    const uint8_t *in, size_t in_len, uint8_t *out, char *why, size_t why_len)
{
	uint8_t ivbuf[TKM_HSM_GCM_IV_LEN];
	CK_GCM_PARAMS gp;
	CK_MECHANISM mech = {CKM_AES_GCM, &gp, sizeof(gp)};
	uint8_t *plain = NULL;
	size_t want;
	CK_ULONG n;
	tkm_err err = TKM_OK;
	CK_RV rv;

	if ((in == NULL && in_len != 0) || (!encrypt && in_len < TKM_HSM_GCM_TAG_LEN) ||
	    in_len > TKM_HSM_SEAL_MAX + TKM_HSM_GCM_TAG_LEN) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "bad AES-GCM arguments");
	}
	memcpy(ivbuf, iv, sizeof(ivbuf));
	memset(&gp, 0, sizeof(gp));
	gp.pIv = ivbuf;
	gp.ulIvLen = sizeof(ivbuf);
	gp.ulIvBits = sizeof(ivbuf) * 8;
	gp.pAAD = (CK_BYTE_PTR)aad;
	gp.ulAADLen = (CK_ULONG)aad_len;
	gp.ulTagBits = TKM_HSM_GCM_TAG_LEN * 8;
	if (encrypt) {
		want = in_len + TKM_HSM_GCM_TAG_LEN;
		rv = h->p11->C_EncryptInit(s->h, &mech, key);
		if (rv != CKR_OK) {
			return tkm_hsm_ck(h, s, rv, "C_EncryptInit(AES_GCM)", why, why_len);
		}
		n = (CK_ULONG)want;
		rv = h->p11->C_Encrypt(s->h, in_len > 0 ? (CK_BYTE_PTR)in : empty_input,
		                       (CK_ULONG)in_len, out, &n);
		if (rv != CKR_OK) {
			return tkm_hsm_ck(h, s, rv, "C_Encrypt(AES_GCM)", why, why_len);
		}
		if (n != want) {
			s->reset = true;
			return tkm_why_fail(why, why_len, TKM_E_HSM,
			                    "the HSM returned %lu bytes of AES-GCM output, not %zu",
			                    (unsigned long)n, want);
		}
		return TKM_OK;
	}
	want = in_len - TKM_HSM_GCM_TAG_LEN;
	plain = sodium_malloc(in_len);
	if (plain == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory");
	}
	/*
	 * A tag that does not verify is CKR_ENCRYPTED_DATA_INVALID, but
	 * SoftHSM2 2.6 reports it as CKR_GENERAL_ERROR, which a failing module
	 * may also return. A forged tag fails every time, so a
	 * CKR_GENERAL_ERROR is tried once more before it is called forgery.
	 */
	for (int attempt = 0; attempt < 2; attempt++) {
		rv = h->p11->C_DecryptInit(s->h, &mech, key);
		if (rv != CKR_OK) {
			err = tkm_hsm_ck(h, s, rv, "C_DecryptInit(AES_GCM)", why, why_len);
			goto out;
		}
		n = (CK_ULONG)in_len;
		rv = h->p11->C_Decrypt(s->h, (CK_BYTE_PTR)in, (CK_ULONG)in_len, plain, &n);
		if (rv != CKR_GENERAL_ERROR) {
			break;
		}
	}
	if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_GENERAL_ERROR) {
		s->reset = true;
		err = tkm_why_fail(why, why_len, TKM_E_CRYPTO, "AES-GCM tag does not verify (%s)",
		                   tkm_hsm_ckr_name(rv));
		goto out;
	}
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_Decrypt(AES_GCM)", why, why_len);
		goto out;
	}
	if (n != want) {
		s->reset = true;
		err = tkm_why_fail(why, why_len, TKM_E_HSM,
		                   "the HSM returned %lu bytes of AES-GCM plaintext, not %zu",
		                   (unsigned long)n, want);
		goto out;
	}
	if (want > 0) {
		memcpy(out, plain, want);
	}
out:
	sodium_free(plain);
	return err;
}

static tkm_err ctx_check(const tkm_hsm_seal_ctx *ctx, char *why, size_t why_len)
{
	size_t tl = ctx != NULL && ctx->table != NULL ? strlen(ctx->table) : 0;

	if (tl == 0 || tl > SEAL_TABLE_MAX || ctx->row == NULL || ctx->row_len == 0 ||
	    ctx->row_len > SEAL_ROW_MAX) {
		return tkm_why_fail(
		    why, why_len, TKM_E_INVALID_ARG,
		    "a sealed record's owner is a table name of 1 to %d bytes and a "
		    "row key of 1 to %d bytes",
		    SEAL_TABLE_MAX, SEAL_ROW_MAX);
	}
	return TKM_OK;
}

/* The associated data: tag, header, table, row, version. */
static size_t seal_aad(const uint8_t hdr[static SEAL_HDR], const tkm_hsm_seal_ctx *ctx,
                       uint8_t aad[static SEAL_AAD_MAX])
{
	size_t tl = strlen(ctx->table), n = 0;

	memcpy(aad, SEAL_AAD_TAG, sizeof(SEAL_AAD_TAG) - 1);
	n += sizeof(SEAL_AAD_TAG) - 1;
	memcpy(aad + n, hdr, SEAL_HDR);
	n += SEAL_HDR;
	aad[n++] = (uint8_t)tl;
	memcpy(aad + n, ctx->table, tl);
	n += tl;
	aad[n++] = (uint8_t)ctx->row_len;
	memcpy(aad + n, ctx->row, ctx->row_len);
	n += ctx->row_len;
	for (int i = 7; i >= 0; i--) {
		aad[n++] = (uint8_t)(ctx->version >> (8 * i));
	}
	return n;
}

tkm_err tkm_hsm_seal(tkm_hsm *h, const tkm_hsm_seal_ctx *ctx, const uint8_t *plain,
                     size_t plain_len, uint8_t *out, size_t out_cap, size_t *out_len, char *why,
                     size_t why_len)
{
	uint8_t aad[SEAL_AAD_MAX];
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	tkm_hsm_sess *s = NULL;
	tkm_hsm_id id;
	size_t aad_len;
	tkm_err err;

	*out_len = 0;
	err = ctx_check(ctx, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if ((plain == NULL && plain_len != 0) || plain_len > TKM_HSM_SEAL_MAX || out == NULL ||
	    out_cap < plain_len + TKM_HSM_SEAL_OVERHEAD) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                   "a sealed record holds at most %d bytes and needs %d bytes more "
		                   "room",
		                   TKM_HSM_SEAL_MAX, TKM_HSM_SEAL_OVERHEAD);
		goto out;
	}
	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_hsm_find_role(h, s, TKM_HSM_MASTER_SEAL, CKO_SECRET_KEY, &key, &id, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		err = TKM_E_FAILED_PRECONDITION;
	}
	if (err != TKM_OK) {
		goto out;
	}
	out[0] = SEAL_VERSION;
	memcpy(out + 1, id.b, TKM_HSM_ID_LEN);
	randombytes_buf(out + 1 + TKM_HSM_ID_LEN, TKM_HSM_GCM_IV_LEN);
	aad_len = seal_aad(out, ctx, aad);
	err = tkm_hsm_gcm(h, s, key, true, out + 1 + TKM_HSM_ID_LEN, aad, aad_len, plain, plain_len,
	                  out + SEAL_HDR, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	*out_len = plain_len + TKM_HSM_SEAL_OVERHEAD;
out:
	tkm_hsm_sess_put(h, s);
	return err;
}

tkm_err tkm_hsm_unseal(tkm_hsm *h, const tkm_hsm_seal_ctx *ctx, const uint8_t *sealed,
                       size_t sealed_len, uint8_t *plain, size_t plain_cap, size_t *plain_len,
                       char *why, size_t why_len)
{
	uint8_t aad[SEAL_AAD_MAX];
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	tkm_hsm_sess *s = NULL;
	size_t aad_len, n;
	tkm_err err;

	*plain_len = 0;
	err = ctx_check(ctx, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (sealed == NULL || sealed_len < TKM_HSM_SEAL_OVERHEAD || sealed[0] != SEAL_VERSION ||
	    sealed_len - TKM_HSM_SEAL_OVERHEAD > TKM_HSM_SEAL_MAX) {
		err = tkm_why_fail(why, why_len, TKM_E_CRYPTO, "not a tkm sealed record");
		goto out;
	}
	n = sealed_len - TKM_HSM_SEAL_OVERHEAD;
	if ((plain == NULL && n != 0) || plain_cap < n) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                   "no room for the %zu-byte plaintext", n);
		goto out;
	}
	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_hsm_find_id(h, s, CKO_SECRET_KEY, sealed + 1, TKM_HSM_ID_LEN, CKA_DECRYPT, &key,
	                      why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		err = tkm_why_fail(why, why_len, TKM_E_CRYPTO,
		                   "the record was sealed under a key this token does not hold");
	}
	if (err != TKM_OK) {
		goto out;
	}
	aad_len = seal_aad(sealed, ctx, aad);
	err = tkm_hsm_gcm(h, s, key, false, sealed + 1 + TKM_HSM_ID_LEN, aad, aad_len,
	                  sealed + SEAL_HDR, n + TKM_HSM_GCM_TAG_LEN, plain, why, why_len);
	if (err == TKM_E_CRYPTO) {
		err = tkm_why_fail(why, why_len, TKM_E_CRYPTO,
		                   "the sealed record does not open: it was changed, or sealed for "
		                   "another table, row or version");
	}
	if (err != TKM_OK) {
		goto out;
	}
	*plain_len = n;
out:
	tkm_hsm_sess_put(h, s);
	return err;
}
