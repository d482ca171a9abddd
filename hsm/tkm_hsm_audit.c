/*
 * tkm_hsm_audit.c - the audit signing key: an Ed25519 key pair generated in
 * the HSM, whose private half signs audit checkpoints (CKM_EDDSA, pure
 * Ed25519 without context) and never leaves the token.
 *
 * The public half is a token object too, so that anyone with the token can
 * read the key that verifies the log; it is returned as the raw 32 bytes of
 * RFC 8032, whatever DER wrapping the module puts around CKA_EC_POINT.
 */
#include <string.h>

#include "tkm_hsm.h"
#include "tkm_hsm_internal.h"

#define AUDIT_MSG_MAX (1024 * 1024)

/* The DER encoding of OID 1.3.101.112 (id-Ed25519, RFC 8410): CKA_EC_PARAMS. */
static const uint8_t ed25519_oid[] = {0x06, 0x03, 0x2B, 0x65, 0x70};

tkm_err tkm_hsm_audit_generate(tkm_hsm *h, tkm_hsm_sess *s, const tkm_hsm_id *id, char *why,
                               size_t why_len)
{
	static const CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY, priv_cls = CKO_PRIVATE_KEY;
	static const CK_KEY_TYPE ckk = CKK_EC_EDWARDS;
	static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	static const CK_MECHANISM_TYPE allowed = CKM_EDDSA;
	CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pub[] = {
	    {CKA_CLASS, (void *)&pub_cls, sizeof(pub_cls)},
	    {CKA_KEY_TYPE, (void *)&ckk, sizeof(ckk)},
	    {CKA_TOKEN, (void *)&yes, sizeof(yes)},
	    {CKA_PRIVATE, (void *)&no, sizeof(no)},
	    {CKA_MODIFIABLE, (void *)&no, sizeof(no)},
	    {CKA_VERIFY, (void *)&yes, sizeof(yes)},
	    {CKA_ENCRYPT, (void *)&no, sizeof(no)},
	    {CKA_WRAP, (void *)&no, sizeof(no)},
	    {CKA_EC_PARAMS, (void *)ed25519_oid, sizeof(ed25519_oid)},
	    {CKA_ID, (void *)id->b, TKM_HSM_ID_LEN},
	    {CKA_LABEL, (void *)TKM_HSM_LABEL_AUDIT, sizeof(TKM_HSM_LABEL_AUDIT) - 1},
	};
	CK_ATTRIBUTE priv[] = {
	    {CKA_CLASS, (void *)&priv_cls, sizeof(priv_cls)},
	    {CKA_KEY_TYPE, (void *)&ckk, sizeof(ckk)},
	    {CKA_TOKEN, (void *)&yes, sizeof(yes)},
	    {CKA_PRIVATE, (void *)&yes, sizeof(yes)},
	    {CKA_SENSITIVE, (void *)&yes, sizeof(yes)},
	    {CKA_EXTRACTABLE, (void *)&no, sizeof(no)},
	    {CKA_MODIFIABLE, (void *)&no, sizeof(no)},
	    {CKA_COPYABLE, (void *)&no, sizeof(no)},
	    {CKA_SIGN, (void *)&yes, sizeof(yes)},
	    {CKA_DECRYPT, (void *)&no, sizeof(no)},
	    {CKA_UNWRAP, (void *)&no, sizeof(no)},
	    {CKA_DERIVE, (void *)&no, sizeof(no)},
	    {CKA_ALLOWED_MECHANISMS, (void *)&allowed, sizeof(allowed)},
	    {CKA_ID, (void *)id->b, TKM_HSM_ID_LEN},
	    {CKA_LABEL, (void *)TKM_HSM_LABEL_AUDIT, sizeof(TKM_HSM_LABEL_AUDIT) - 1},
	};
	CK_OBJECT_HANDLE pk = CK_INVALID_HANDLE, sk = CK_INVALID_HANDLE;
	CK_RV rv;

	rv = h->p11->C_GenerateKeyPair(s->h, &mech, pub, sizeof(pub) / sizeof(pub[0]), priv,
	                               sizeof(priv) / sizeof(priv[0]), &pk, &sk);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_GenerateKeyPair(EC_EDWARDS)", why, why_len);
	}
	return TKM_OK;
}

tkm_err tkm_hsm_audit_public_key(tkm_hsm *h, tkm_hsm_id *id,
                                 uint8_t pk[static TKM_HSM_ED25519_PK_LEN], char *why,
                                 size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	uint8_t point[64];
	CK_ATTRIBUTE a = {CKA_EC_POINT, point, sizeof(point)};
	tkm_hsm_sess *s = NULL;
	tkm_err err;
	CK_RV rv;

	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err == TKM_OK) {
		err =
		    tkm_hsm_find_role(h, s, TKM_HSM_AUDIT, CKO_PUBLIC_KEY, &obj, id, why, why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		/* No audit key yet: the token is not set up. */
		err = TKM_E_FAILED_PRECONDITION;
	}
	if (err != TKM_OK) {
		goto out;
	}
	rv = h->p11->C_GetAttributeValue(s->h, obj, &a, 1);
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_GetAttributeValue(CKA_EC_POINT)", why, why_len);
		goto out;
	}
	/* PKCS#11 3.0 says DER OCTET STRING (04 20 ...); some modules give the raw 32 bytes. */
	if (a.ulValueLen == 2 + TKM_HSM_ED25519_PK_LEN && point[0] == 0x04 &&
	    point[1] == TKM_HSM_ED25519_PK_LEN) {
		memcpy(pk, point + 2, TKM_HSM_ED25519_PK_LEN);
	} else if (a.ulValueLen == TKM_HSM_ED25519_PK_LEN) {
		memcpy(pk, point, TKM_HSM_ED25519_PK_LEN);
	} else {
		err =
		    tkm_why_fail(why, why_len, TKM_E_HSM,
		                 "the audit public key is not a 32-byte Ed25519 point (%lu bytes)",
		                 (unsigned long)a.ulValueLen);
	}
out:
	tkm_hsm_sess_put(h, s);
	return err;
}

tkm_err tkm_hsm_audit_sign(tkm_hsm *h, const uint8_t *msg, size_t msg_len,
                           uint8_t sig[static TKM_HSM_ED25519_SIG_LEN], char *why, size_t why_len)
{
	static uint8_t empty_input[1];
	CK_MECHANISM mech = {CKM_EDDSA, NULL, 0};
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	tkm_hsm_sess *s = NULL;
	CK_ULONG n = TKM_HSM_ED25519_SIG_LEN;
	tkm_err err;
	CK_RV rv;

	if ((msg == NULL && msg_len != 0) || msg_len > AUDIT_MSG_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "an audit signature covers at most %d bytes", AUDIT_MSG_MAX);
	}
	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_find_role(h, s, TKM_HSM_AUDIT, CKO_PRIVATE_KEY, &key, NULL, why,
		                        why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		err = TKM_E_FAILED_PRECONDITION;
	}
	if (err != TKM_OK) {
		goto out;
	}
	rv = h->p11->C_SignInit(s->h, &mech, key);
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_SignInit(EDDSA)", why, why_len);
		goto out;
	}
	rv = h->p11->C_Sign(s->h, msg_len > 0 ? (CK_BYTE_PTR)msg : empty_input, (CK_ULONG)msg_len,
	                    sig, &n);
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_Sign(EDDSA)", why, why_len);
		goto out;
	}
	if (n != TKM_HSM_ED25519_SIG_LEN) {
		s->reset = true;
		err =
		    tkm_why_fail(why, why_len, TKM_E_HSM,
		                 "the HSM returned a %lu-byte Ed25519 signature", (unsigned long)n);
	}
out:
	tkm_hsm_sess_put(h, s);
	return err;
}
