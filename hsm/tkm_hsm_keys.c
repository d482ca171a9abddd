/*
 * tkm_hsm_keys.c - key objects: the token's fixed set (master keys, BDKs),
 * device keys as blobs wrapped under the master KEK, and the mechanisms that
 * run on them.
 *
 * The token holds only the fixed set; a device key lives in the HSM only as
 * a session object inside one call and is destroyed before the call
 * returns, so the token's object count does not grow with the fleet.
 *
 * Clear key bytes exist here only for imports (components and their XOR),
 * the TDES BDK and its variant, the joined halves of a TDES IPEK, and
 * tkm_hsm_blob_extract(); always in sodium_malloc() memory, wiped before
 * the call returns. This file never logs or returns a key.
 *
 * Device key blob, version 1 (all lengths fixed except the wrapped key):
 *   0   1  version (1)
 *   1   1  algorithm (tkm_hsm_alg)
 *   2   1  usage (tkm_hsm_usage)
 *   3   5  KCV, the algorithm's default method
 *   8  16  CKA_ID of the master KEK it is wrapped under
 *  24  16  CKA_ID of the master sealing key that authenticates it
 *  40  12  GCM IV
 *  52   1  n, the length of the wrapped key
 *  53   n  the key wrapped with CKM_AES_KEY_WRAP_PAD (RFC 5649)
 *  53+n 16 GCM tag (GMAC) over "tkm key blob v1" || bytes 0..53+n ||
 *          owner length (1 byte) || owner
 * AES key wrap authenticates the key but not what it is for; the GMAC under
 * the sealing key binds the header and the owner to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tkm_hsm.h"
#include "tkm_hsm_internal.h"

#define BLOB_VERSION  1
#define BLOB_HDR      53
#define BLOB_WRAP_MAX (TKM_HSM_BLOB_MAX - BLOB_HDR - TKM_HSM_GCM_TAG_LEN)
#define BLOB_AAD_TAG  "tkm key blob v1"

#define LABEL_KEK   "tkm master kek"
#define LABEL_SEAL  "tkm master seal"
#define LABEL_AUDIT TKM_HSM_LABEL_AUDIT
#define LABEL_BDK   "tkm bdk "
#define LABEL_MAX   (sizeof(LABEL_BDK) + TKM_HSM_NAME_MAX + sizeof(" variant"))

/* Attribute templates: room for every attribute any object here gets. */
#define TMPL_MAX 24

typedef struct tmpl {
	CK_ATTRIBUTE a[TMPL_MAX];
	CK_ULONG n;
} tmpl;

static const CK_BBOOL ck_true = CK_TRUE;
static const CK_BBOOL ck_false = CK_FALSE;
static const CK_OBJECT_CLASS cls_secret = CKO_SECRET_KEY;

static const tkm_hsm_alg_info algs[] = {
    {TKM_HSM_AES128, "AES-128", CKK_AES, 16, 16, CKM_AES_KEY_GEN, CKM_AES_ECB, CKM_AES_CBC,
     CKM_AES_CMAC, CKM_AES_ECB_ENCRYPT_DATA},
    {TKM_HSM_AES192, "AES-192", CKK_AES, 24, 16, CKM_AES_KEY_GEN, CKM_AES_ECB, CKM_AES_CBC,
     CKM_AES_CMAC, CKM_AES_ECB_ENCRYPT_DATA},
    {TKM_HSM_AES256, "AES-256", CKK_AES, 32, 16, CKM_AES_KEY_GEN, CKM_AES_ECB, CKM_AES_CBC,
     CKM_AES_CMAC, CKM_AES_ECB_ENCRYPT_DATA},
    {TKM_HSM_TDES2, "TDES-2key", CKK_DES2, 16, 8, CKM_DES2_KEY_GEN, CKM_DES3_ECB, CKM_DES3_CBC,
     CKM_DES3_CMAC, CKM_DES3_ECB_ENCRYPT_DATA},
    {TKM_HSM_TDES3, "TDES-3key", CKK_DES3, 24, 8, CKM_DES3_KEY_GEN, CKM_DES3_ECB, CKM_DES3_CBC,
     CKM_DES3_CMAC, CKM_DES3_ECB_ENCRYPT_DATA},
    {TKM_HSM_ED25519, "Ed25519", CKK_EC_EDWARDS, 0, 0, CKM_EC_EDWARDS_KEY_PAIR_GEN, 0, 0, 0, 0},
};

const tkm_hsm_alg_info *tkm_hsm_alg_get(tkm_hsm_alg alg)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (algs[i].alg == alg) {
			return &algs[i];
		}
	}
	return NULL;
}

const tkm_hsm_alg_info *tkm_hsm_alg_sym(tkm_hsm_alg alg)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_get(alg);

	return ai != NULL && ai->len != 0 ? ai : NULL;
}

static void t_add(tmpl *t, CK_ATTRIBUTE_TYPE type, const void *value, size_t len)
{
	/* Every template here is fixed in size; overflowing one is a bug. */
	if (t->n >= TMPL_MAX) {
		abort();
	}
	t->a[t->n].type = type;
	t->a[t->n].pValue = (void *)value;
	t->a[t->n].ulValueLen = (CK_ULONG)len;
	t->n++;
}

static void t_bool(tmpl *t, CK_ATTRIBUTE_TYPE type, bool v)
{
	t_add(t, type, v ? &ck_true : &ck_false, sizeof(CK_BBOOL));
}

/* The usage and custody attributes of a session object from TKM_HSM_A_ flags. */
static void t_attrs(tmpl *t, unsigned attrs)
{
	t_bool(t, CKA_TOKEN, false);
	t_bool(t, CKA_PRIVATE, true);
	t_bool(t, CKA_SENSITIVE, (attrs & TKM_HSM_A_CLEAR) == 0);
	t_bool(t, CKA_EXTRACTABLE, (attrs & (TKM_HSM_A_EXTRACTABLE | TKM_HSM_A_CLEAR)) != 0);
	t_bool(t, CKA_ENCRYPT, (attrs & TKM_HSM_A_ENCRYPT) != 0);
	t_bool(t, CKA_DECRYPT, (attrs & TKM_HSM_A_DECRYPT) != 0);
	t_bool(t, CKA_SIGN, (attrs & TKM_HSM_A_SIGN) != 0);
	t_bool(t, CKA_VERIFY, (attrs & TKM_HSM_A_VERIFY) != 0);
	t_bool(t, CKA_WRAP, (attrs & TKM_HSM_A_WRAP) != 0);
	t_bool(t, CKA_UNWRAP, (attrs & TKM_HSM_A_UNWRAP) != 0);
	t_bool(t, CKA_DERIVE, (attrs & TKM_HSM_A_DERIVE) != 0);
}

/* ---- Session objects ---- */

tkm_err tkm_hsm_obj_create(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_alg alg, unsigned attrs,
                           const uint8_t *key, size_t len, CK_OBJECT_HANDLE *out, char *why,
                           size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	tmpl t = {.n = 0};
	CK_RV rv;

	*out = CK_INVALID_HANDLE;
	if (ai == NULL || key == NULL || len != ai->len) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a key of this algorithm is not %zu bytes long", len);
	}
	t_add(&t, CKA_CLASS, &cls_secret, sizeof(cls_secret));
	t_add(&t, CKA_KEY_TYPE, &ai->ckk, sizeof(ai->ckk));
	t_add(&t, CKA_VALUE, key, len);
	t_attrs(&t, attrs);
	rv = h->p11->C_CreateObject(s->h, t.a, t.n, out);
	if (rv != CKR_OK) {
		*out = CK_INVALID_HANDLE;
		return tkm_hsm_ck(h, s, rv, "C_CreateObject", why, why_len);
	}
	return TKM_OK;
}

tkm_err tkm_hsm_obj_generate(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_alg alg, unsigned attrs,
                             CK_OBJECT_HANDLE *out, char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	CK_MECHANISM mech = {0, NULL, 0};
	CK_ULONG value_len;
	tmpl t = {.n = 0};
	CK_RV rv;

	*out = CK_INVALID_HANDLE;
	if (ai == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "not a symmetric key algorithm: %d", (int)alg);
	}
	mech.mechanism = ai->gen;
	value_len = (CK_ULONG)ai->len;
	t_add(&t, CKA_CLASS, &cls_secret, sizeof(cls_secret));
	t_add(&t, CKA_KEY_TYPE, &ai->ckk, sizeof(ai->ckk));
	if (ai->ckk == CKK_AES) {
		t_add(&t, CKA_VALUE_LEN, &value_len, sizeof(value_len));
	}
	t_attrs(&t, attrs);
	rv = h->p11->C_GenerateKey(s->h, &mech, t.a, t.n, out);
	if (rv != CKR_OK) {
		*out = CK_INVALID_HANDLE;
		return tkm_hsm_ck(h, s, rv, "C_GenerateKey", why, why_len);
	}
	return TKM_OK;
}

void tkm_hsm_obj_destroy(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE *obj)
{
	if (h == NULL || s == NULL || obj == NULL || *obj == CK_INVALID_HANDLE) {
		return;
	}
	if (h->p11->C_DestroyObject(s->h, *obj) != CKR_OK) {
		/* Closing the session at check-in destroys it instead. */
		s->reset = true;
	}
	*obj = CK_INVALID_HANDLE;
}

tkm_err tkm_hsm_obj_value(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, uint8_t *out,
                          size_t len, char *why, size_t why_len)
{
	CK_ATTRIBUTE a = {CKA_VALUE, out, (CK_ULONG)len};
	CK_RV rv;

	rv = h->p11->C_GetAttributeValue(s->h, obj, &a, 1);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_GetAttributeValue(CKA_VALUE)", why, why_len);
	}
	if (a.ulValueLen != (CK_ULONG)len) {
		s->reset = true;
		return tkm_why_fail(why, why_len, TKM_E_HSM,
		                    "the HSM returned a %lu-byte value where %zu were expected",
		                    (unsigned long)a.ulValueLen, len);
	}
	return TKM_OK;
}

tkm_err tkm_hsm_obj_alg(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, tkm_hsm_alg *alg,
                        char *why, size_t why_len)
{
	CK_KEY_TYPE kt = 0;
	CK_ULONG vlen = 0;
	CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof(kt)};
	CK_ATTRIBUTE v = {CKA_VALUE_LEN, &vlen, sizeof(vlen)};
	CK_RV rv;

	rv = h->p11->C_GetAttributeValue(s->h, obj, &a, 1);
	if (rv == CKR_OK && kt == CKK_AES) {
		/* Only AES keys vary in length; DES and key pairs have no CKA_VALUE_LEN. */
		rv = h->p11->C_GetAttributeValue(s->h, obj, &v, 1);
	}
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_GetAttributeValue(CKA_KEY_TYPE)", why, why_len);
	}
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (algs[i].ckk == kt && (kt != CKK_AES || algs[i].len == vlen)) {
			*alg = algs[i].alg;
			return TKM_OK;
		}
	}
	return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
	                    "the token key has a type tkm does not use (0x%lx, %lu bytes)",
	                    (unsigned long)kt, (unsigned long)vlen);
}

/* Find one object matching t; TKM_E_NOT_FOUND, or TKM_E_FAILED_PRECONDITION for several. */
static tkm_err find_one(tkm_hsm *h, tkm_hsm_sess *s, tmpl *t, const char *what,
                        CK_OBJECT_HANDLE *out, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	CK_RV rv;

	*out = CK_INVALID_HANDLE;
	rv = h->p11->C_FindObjectsInit(s->h, t->a, t->n);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_FindObjectsInit", why, why_len);
	}
	rv = h->p11->C_FindObjects(s->h, found, 2, &n);
	if (rv != CKR_OK) {
		(void)h->p11->C_FindObjectsFinal(s->h);
		return tkm_hsm_ck(h, s, rv, "C_FindObjects", why, why_len);
	}
	rv = h->p11->C_FindObjectsFinal(s->h);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_FindObjectsFinal", why, why_len);
	}
	if (n == 0) {
		return tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "the token holds no %s", what);
	}
	if (n > 1) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "the token holds more than one %s; remove the extra with the "
		                    "token's tools",
		                    what);
	}
	*out = found[0];
	return TKM_OK;
}

tkm_err tkm_hsm_find_id(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_CLASS cls, const uint8_t *id,
                        size_t id_len, CK_ATTRIBUTE_TYPE must, CK_OBJECT_HANDLE *out, char *why,
                        size_t why_len)
{
	tmpl t = {.n = 0};

	t_add(&t, CKA_CLASS, &cls, sizeof(cls));
	t_bool(&t, CKA_TOKEN, true);
	t_add(&t, CKA_ID, id, id_len);
	if (must != 0) {
		t_bool(&t, must, true);
	}
	return find_one(h, s, &t, "key with this id", out, why, why_len);
}

static const char *role_label(tkm_hsm_role role)
{
	switch (role) {
	case TKM_HSM_MASTER_KEK:
		return LABEL_KEK;
	case TKM_HSM_MASTER_SEAL:
		return LABEL_SEAL;
	case TKM_HSM_AUDIT:
		return LABEL_AUDIT;
	case TKM_HSM_BDK:
		break;
	}
	return NULL;
}

static const char *role_name(tkm_hsm_role role)
{
	switch (role) {
	case TKM_HSM_MASTER_KEK:
		return "master key-encryption key";
	case TKM_HSM_MASTER_SEAL:
		return "master sealing key";
	case TKM_HSM_AUDIT:
		return "audit signing key";
	case TKM_HSM_BDK:
		return "BDK";
	}
	return "key";
}

/* Read an object's CKA_ID into id (exactly TKM_HSM_ID_LEN bytes). */
static tkm_err obj_id(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, tkm_hsm_id *id, char *why,
                      size_t why_len)
{
	CK_ATTRIBUTE a = {CKA_ID, id->b, sizeof(id->b)};
	CK_RV rv;

	rv = h->p11->C_GetAttributeValue(s->h, obj, &a, 1);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_GetAttributeValue(CKA_ID)", why, why_len);
	}
	if (a.ulValueLen != TKM_HSM_ID_LEN) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "a token key tkm uses has a %lu-byte CKA_ID, not %d",
		                    (unsigned long)a.ulValueLen, TKM_HSM_ID_LEN);
	}
	return TKM_OK;
}

tkm_err tkm_hsm_find_role(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_role role, CK_OBJECT_CLASS cls,
                          CK_OBJECT_HANDLE *out, tkm_hsm_id *id, char *why, size_t why_len)
{
	const char *label = role_label(role);
	tmpl t = {.n = 0};
	tkm_err err;

	*out = CK_INVALID_HANDLE;
	if (label == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a BDK is found by id or name");
	}
	t_add(&t, CKA_CLASS, &cls, sizeof(cls));
	t_bool(&t, CKA_TOKEN, true);
	t_add(&t, CKA_LABEL, label, strlen(label));
	err = find_one(h, s, &t, role_name(role), out, why, why_len);
	if (err == TKM_OK && id != NULL) {
		err = obj_id(h, s, *out, id, why, why_len);
	}
	return err;
}

/* The label of a role's key: "tkm bdk NAME" (with " variant") for a BDK; name checked. */
static void key_label(char label[static LABEL_MAX], tkm_hsm_role role, const char *name,
                      bool variant)
{
	int r;

	if (role == TKM_HSM_BDK) {
		r = snprintf(label, LABEL_MAX, "%s%s%s", LABEL_BDK, name,
		             variant ? " variant" : "");
	} else {
		r = snprintf(label, LABEL_MAX, "%s", role_label(role));
	}
	/* LABEL_MAX holds the longest name name_check() lets through. */
	if (r < 0 || (size_t)r >= LABEL_MAX) {
		abort();
	}
}

static tkm_err name_check(const char *name, char *why, size_t why_len)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > TKM_HSM_NAME_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a BDK name is 1 to %d characters long", TKM_HSM_NAME_MAX);
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
			                    "a BDK name uses only A-Z a-z 0-9 . _ -");
		}
	}
	return TKM_OK;
}

static tkm_err find_bdk_name(tkm_hsm *h, tkm_hsm_sess *s, const char *name, CK_OBJECT_HANDLE *out,
                             char *why, size_t why_len)
{
	char label[LABEL_MAX];
	tmpl t = {.n = 0};

	key_label(label, TKM_HSM_BDK, name, false);
	t_add(&t, CKA_CLASS, &cls_secret, sizeof(cls_secret));
	t_bool(&t, CKA_TOKEN, true);
	t_bool(&t, CKA_DERIVE, true);
	t_add(&t, CKA_LABEL, label, strlen(label));
	return find_one(h, s, &t, "BDK of this name", out, why, why_len);
}

tkm_err tkm_hsm_owner_check(const char *owner, char *why, size_t why_len)
{
	size_t n = owner != NULL ? strlen(owner) : 0;

	if (n == 0 || n > TKM_HSM_OWNER_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a key blob's owner is 1 to %d bytes long", TKM_HSM_OWNER_MAX);
	}
	return TKM_OK;
}

/* ---- Mechanisms ---- */

/* PKCS#11 wants a pointer even for zero bytes; SoftHSM2 refuses NULL. */
static uint8_t empty_input[1];

tkm_err tkm_hsm_cmac(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, tkm_hsm_alg alg,
                     const uint8_t *msg, size_t msg_len, uint8_t *mac, size_t mac_cap,
                     size_t *mac_len, char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	CK_MECHANISM mech = {0, NULL, 0};
	CK_ULONG n;
	CK_RV rv;

	*mac_len = 0;
	if (ai == NULL || mac_cap < ai->block || (msg == NULL && msg_len != 0)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "bad CMAC arguments");
	}
	mech.mechanism = ai->cmac;
	rv = h->p11->C_SignInit(s->h, &mech, obj);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_SignInit(CMAC)", why, why_len);
	}
	n = (CK_ULONG)mac_cap;
	rv = h->p11->C_Sign(s->h, msg_len > 0 ? (CK_BYTE_PTR)msg : empty_input, (CK_ULONG)msg_len,
	                    mac, &n);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_Sign(CMAC)", why, why_len);
	}
	if (n != ai->block) {
		s->reset = true;
		return tkm_why_fail(why, why_len, TKM_E_HSM, "the HSM returned a %lu-byte CMAC",
		                    (unsigned long)n);
	}
	*mac_len = n;
	return TKM_OK;
}

/* One-shot encryption or decryption of len bytes with mech; out holds len bytes. */
static tkm_err cipher(tkm_hsm *h, tkm_hsm_sess *s, CK_MECHANISM *mech, CK_OBJECT_HANDLE obj,
                      bool encrypt, const uint8_t *in, size_t len, uint8_t *out, char *why,
                      size_t why_len)
{
	CK_ULONG n = (CK_ULONG)len;
	CK_RV rv;

	rv = encrypt ? h->p11->C_EncryptInit(s->h, mech, obj)
	             : h->p11->C_DecryptInit(s->h, mech, obj);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, encrypt ? "C_EncryptInit" : "C_DecryptInit", why,
		                  why_len);
	}
	rv = encrypt ? h->p11->C_Encrypt(s->h, (CK_BYTE_PTR)in, (CK_ULONG)len, out, &n)
	             : h->p11->C_Decrypt(s->h, (CK_BYTE_PTR)in, (CK_ULONG)len, out, &n);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, encrypt ? "C_Encrypt" : "C_Decrypt", why, why_len);
	}
	if (n != (CK_ULONG)len) {
		s->reset = true;
		return tkm_why_fail(why, why_len, TKM_E_HSM,
		                    "the HSM returned %lu bytes for a %zu-byte block cipher input",
		                    (unsigned long)n, len);
	}
	return TKM_OK;
}

tkm_err tkm_hsm_cbc(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, tkm_hsm_alg alg,
                    bool encrypt, const uint8_t *iv, const uint8_t *in, size_t len, uint8_t *out,
                    char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	uint8_t ivbuf[16];
	CK_MECHANISM mech = {0, ivbuf, 0};

	if (ai == NULL || iv == NULL || in == NULL || out == NULL || len == 0 ||
	    len % ai->block != 0) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "CBC input must be a non-empty multiple of the block size");
	}
	memcpy(ivbuf, iv, ai->block);
	mech.mechanism = ai->cbc;
	mech.ulParameterLen = (CK_ULONG)ai->block;
	return cipher(h, s, &mech, obj, encrypt, in, len, out, why, why_len);
}

tkm_err tkm_hsm_ecb_encrypt(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, tkm_hsm_alg alg,
                            const uint8_t *in, size_t len, uint8_t *out, char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	CK_MECHANISM mech = {0, NULL, 0};

	if (ai == NULL || in == NULL || out == NULL || len == 0 || len % ai->block != 0) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "ECB input must be a non-empty multiple of the block size");
	}
	mech.mechanism = ai->ecb;
	return cipher(h, s, &mech, obj, true, in, len, out, why, why_len);
}

tkm_err tkm_hsm_derive_encrypt(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE base, tkm_hsm_alg alg,
                               const uint8_t *data, size_t len, uint8_t *out, char *why,
                               size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	static const CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
	CK_KEY_DERIVATION_STRING_DATA sd;
	CK_MECHANISM mech = {0, &sd, sizeof(sd)};
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	CK_ULONG value_len = (CK_ULONG)len;
	tmpl t = {.n = 0};
	tkm_err err;
	CK_RV rv;

	if (ai == NULL || data == NULL || len == 0 || len % ai->block != 0 || len > 64) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "derivation data must be 1 to 4 blocks");
	}
	sd.pData = (CK_BYTE_PTR)data;
	sd.ulLen = (CK_ULONG)len;
	mech.mechanism = ai->derive;
	t_add(&t, CKA_CLASS, &cls_secret, sizeof(cls_secret));
	t_add(&t, CKA_KEY_TYPE, &generic, sizeof(generic));
	t_add(&t, CKA_VALUE_LEN, &value_len, sizeof(value_len));
	t_attrs(&t, TKM_HSM_A_CLEAR);
	rv = h->p11->C_DeriveKey(s->h, &mech, base, t.a, t.n, &obj);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_DeriveKey(ECB_ENCRYPT_DATA)", why, why_len);
	}
	err = tkm_hsm_obj_value(h, s, obj, out, len, why, why_len);
	tkm_hsm_obj_destroy(h, s, &obj);
	return err;
}

/* ---- Device key blobs ---- */

/* The RFC 5649 output length for a key of len bytes. */
static size_t kwp_len(size_t len)
{
	return (len + 7) / 8 * 8 + 8;
}

static bool usage_ok(tkm_hsm_usage usage)
{
	return usage >= TKM_HSM_USE_KBPK && usage <= TKM_HSM_USE_KEK;
}

/* Parse and check a blob's layout; *wrap_len is n. */
static tkm_err blob_parse(const uint8_t *blob, size_t blob_len, tkm_hsm_blob_meta *info,
                          size_t *wrap_len)
{
	const tkm_hsm_alg_info *ai;
	size_t n;

	memset(info, 0, sizeof(*info));
	if (blob == NULL || blob_len < BLOB_HDR + TKM_HSM_GCM_TAG_LEN || blob[0] != BLOB_VERSION) {
		return TKM_E_INVALID_ARG;
	}
	ai = tkm_hsm_alg_sym((tkm_hsm_alg)blob[1]);
	n = blob[52];
	if (ai == NULL || !usage_ok((tkm_hsm_usage)blob[2]) || n != kwp_len(ai->len) ||
	    blob_len != BLOB_HDR + n + TKM_HSM_GCM_TAG_LEN) {
		return TKM_E_INVALID_ARG;
	}
	info->alg = ai->alg;
	info->usage = (tkm_hsm_usage)blob[2];
	info->kcv.method = tkm_hsm_kcv_default(ai->alg);
	info->kcv.len = TKM_HSM_KCV_MAX;
	memcpy(info->kcv.b, blob + 3, TKM_HSM_KCV_MAX);
	memcpy(info->kek.b, blob + 8, TKM_HSM_ID_LEN);
	*wrap_len = n;
	return TKM_OK;
}

tkm_err tkm_hsm_blob_info(const uint8_t *blob, size_t blob_len, tkm_hsm_blob_meta *info)
{
	size_t n;

	return blob_parse(blob, blob_len, info, &n);
}

/* AAD of a blob's GMAC: tag, the blob without its GMAC, the owner. */
static size_t
blob_aad(const uint8_t *blob, size_t body_len, const char *owner,
         uint8_t aad[static sizeof(BLOB_AAD_TAG) + TKM_HSM_BLOB_MAX + 1 + TKM_HSM_OWNER_MAX])
{
	size_t olen = strlen(owner), n = 0;

	memcpy(aad, BLOB_AAD_TAG, sizeof(BLOB_AAD_TAG) - 1);
	n += sizeof(BLOB_AAD_TAG) - 1;
	memcpy(aad + n, blob, body_len);
	n += body_len;
	aad[n++] = (uint8_t)olen;
	memcpy(aad + n, owner, olen);
	return n + olen;
}

tkm_err tkm_hsm_blob_make(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj, tkm_hsm_alg alg,
                          tkm_hsm_usage usage, const tkm_hsm_kcv *kcv, const char *owner,
                          uint8_t blob[static TKM_HSM_BLOB_MAX], size_t *blob_len, char *why,
                          size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	uint8_t aad[sizeof(BLOB_AAD_TAG) + TKM_HSM_BLOB_MAX + 1 + TKM_HSM_OWNER_MAX];
	CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, seal = CK_INVALID_HANDLE;
	tkm_hsm_id kek_id, seal_id;
	CK_ULONG n = BLOB_WRAP_MAX;
	size_t aad_len;
	tkm_err err;
	CK_RV rv;

	*blob_len = 0;
	if (ai == NULL || !usage_ok(usage) || kcv->len != TKM_HSM_KCV_MAX ||
	    kcv->method != tkm_hsm_kcv_default(alg)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "bad key blob arguments");
	}
	err = tkm_hsm_owner_check(owner, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	err = tkm_hsm_find_role(h, s, TKM_HSM_MASTER_KEK, CKO_SECRET_KEY, &kek, &kek_id, why,
	                        why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_find_role(h, s, TKM_HSM_MASTER_SEAL, CKO_SECRET_KEY, &seal, &seal_id,
		                        why, why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		/* A token without its master keys is not set up yet: a precondition. */
		return TKM_E_FAILED_PRECONDITION;
	}
	if (err != TKM_OK) {
		return err;
	}
	rv = h->p11->C_WrapKey(s->h, &kwp, kek, obj, blob + BLOB_HDR, &n);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_WrapKey(AES_KEY_WRAP_PAD)", why, why_len);
	}
	if (n != kwp_len(ai->len)) {
		s->reset = true;
		return tkm_why_fail(why, why_len, TKM_E_HSM,
		                    "the HSM wrapped a %zu-byte key into %lu bytes", ai->len,
		                    (unsigned long)n);
	}
	blob[0] = BLOB_VERSION;
	blob[1] = (uint8_t)alg;
	blob[2] = (uint8_t)usage;
	memcpy(blob + 3, kcv->b, TKM_HSM_KCV_MAX);
	memcpy(blob + 8, kek_id.b, TKM_HSM_ID_LEN);
	memcpy(blob + 24, seal_id.b, TKM_HSM_ID_LEN);
	randombytes_buf(blob + 40, TKM_HSM_GCM_IV_LEN);
	blob[52] = (uint8_t)n;
	aad_len = blob_aad(blob, BLOB_HDR + n, owner, aad);
	err = tkm_hsm_gcm(h, s, seal, true, blob + 40, aad, aad_len, NULL, 0, blob + BLOB_HDR + n,
	                  why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	*blob_len = BLOB_HDR + n + TKM_HSM_GCM_TAG_LEN;
	return TKM_OK;
}

tkm_err tkm_hsm_blob_unwrap(tkm_hsm *h, tkm_hsm_sess *s, const uint8_t *blob, size_t blob_len,
                            const char *owner, unsigned attrs, CK_OBJECT_HANDLE *out,
                            tkm_hsm_blob_meta *info, char *why, size_t why_len)
{
	uint8_t aad[sizeof(BLOB_AAD_TAG) + TKM_HSM_BLOB_MAX + 1 + TKM_HSM_OWNER_MAX];
	CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, seal = CK_INVALID_HANDLE;
	const tkm_hsm_alg_info *ai;
	tkm_hsm_blob_meta bi;
	size_t n, aad_len;
	tmpl t = {.n = 0};
	tkm_err err;
	CK_RV rv;

	*out = CK_INVALID_HANDLE;
	if (blob_parse(blob, blob_len, &bi, &n) != TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_CRYPTO, "not a tkm key blob");
	}
	err = tkm_hsm_owner_check(owner, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	ai = tkm_hsm_alg_sym(bi.alg);
	err = tkm_hsm_find_id(h, s, CKO_SECRET_KEY, blob + 24, TKM_HSM_ID_LEN, CKA_DECRYPT, &seal,
	                      why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_find_id(h, s, CKO_SECRET_KEY, blob + 8, TKM_HSM_ID_LEN, CKA_UNWRAP,
		                      &kek, why, why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, TKM_E_CRYPTO,
		                    "the key blob names master keys this token does not hold");
	}
	if (err != TKM_OK) {
		return err;
	}
	aad_len = blob_aad(blob, BLOB_HDR + n, owner, aad);
	err = tkm_hsm_gcm(h, s, seal, false, blob + 40, aad, aad_len, blob + BLOB_HDR + n,
	                  TKM_HSM_GCM_TAG_LEN, NULL, why, why_len);
	if (err == TKM_E_CRYPTO) {
		return tkm_why_fail(why, why_len, TKM_E_CRYPTO,
		                    "the key blob does not authenticate: it was changed or belongs "
		                    "to another owner");
	}
	if (err != TKM_OK) {
		return err;
	}
	t_add(&t, CKA_CLASS, &cls_secret, sizeof(cls_secret));
	t_add(&t, CKA_KEY_TYPE, &ai->ckk, sizeof(ai->ckk));
	t_attrs(&t, attrs);
	rv = h->p11->C_UnwrapKey(s->h, &kwp, kek, (CK_BYTE_PTR)(blob + BLOB_HDR), (CK_ULONG)n, t.a,
	                         t.n, out);
	if (rv != CKR_OK) {
		*out = CK_INVALID_HANDLE;
		return tkm_hsm_ck(h, s, rv, "C_UnwrapKey(AES_KEY_WRAP_PAD)", why, why_len);
	}
	if (info != NULL) {
		*info = bi;
	}
	return TKM_OK;
}

tkm_err tkm_hsm_blob_extract(tkm_hsm *h, tkm_hsm_sess *s, const uint8_t *blob, size_t blob_len,
                             const char *owner, uint8_t *key, size_t key_cap, size_t *key_len,
                             tkm_hsm_blob_meta *info, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	const tkm_hsm_alg_info *ai;
	tkm_hsm_blob_meta bi;
	tkm_err err;

	*key_len = 0;
	err = tkm_hsm_blob_unwrap(h, s, blob, blob_len, owner, TKM_HSM_A_CLEAR, &obj, &bi, why,
	                          why_len);
	if (err != TKM_OK) {
		goto out;
	}
	ai = tkm_hsm_alg_sym(bi.alg);
	if (key_cap < ai->len) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "no room for a %s key", ai->name);
		goto out;
	}
	err = tkm_hsm_obj_value(h, s, obj, key, ai->len, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	*key_len = ai->len;
	if (info != NULL) {
		*info = bi;
	}
out:
	tkm_hsm_obj_destroy(h, s, &obj);
	return err;
}

/* ---- Components ---- */

/*
 * Check each component against its own KCV inside the HSM, then XOR them
 * into *key (sodium_malloc memory, the caller frees it with sodium_free).
 */
static tkm_err combine(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_alg alg, const tkm_hsm_component *comps,
                       size_t ncomps, uint8_t **key, char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	uint8_t *k = NULL;
	tkm_err err = TKM_OK;

	*key = NULL;
	if (ai == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "components make only symmetric keys");
	}
	if (comps == NULL || ncomps < 2 || ncomps > 3) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "a key is imported from 2 or 3 components, not %zu", ncomps);
	}
	k = sodium_malloc(ai->len);
	if (k == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory");
	}
	memset(k, 0, ai->len);
	for (size_t i = 0; i < ncomps; i++) {
		tkm_hsm_kcv got;

		if (comps[i].key == NULL) {
			err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                   "component %zu is missing", i + 1);
			goto out;
		}
		if (comps[i].kcv.len == 0) {
			err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                   "component %zu has no check value", i + 1);
			goto out;
		}
		if (sodium_is_zero(comps[i].key, ai->len)) {
			err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                   "component %zu is all zeros", i + 1);
			goto out;
		}
		err = tkm_hsm_kcv_spec(alg, comps[i].kcv.method, comps[i].kcv.len, &got, why,
		                       why_len);
		if (err != TKM_OK) {
			err = TKM_E_BAD_REQUEST;
			goto out;
		}
		err = tkm_hsm_obj_create(h, s, alg, TKM_HSM_A_KCV, comps[i].key, ai->len, &obj, why,
		                         why_len);
		if (err != TKM_OK) {
			goto out;
		}
		err = tkm_hsm_kcv_obj(h, s, obj, alg, false, &got, why, why_len);
		tkm_hsm_obj_destroy(h, s, &obj);
		if (err != TKM_OK) {
			goto out;
		}
		if (sodium_memcmp(got.b, comps[i].kcv.b, got.len) != 0) {
			err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                   "component %zu of %zu does not match its check value",
			                   i + 1, ncomps);
			goto out;
		}
		for (size_t j = 0; j < ai->len; j++) {
			k[j] ^= comps[i].key[j];
		}
	}
	if (sodium_is_zero(k, ai->len)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "the components cancel out to a zero key");
		goto out;
	}
	*key = k;
	k = NULL;
out:
	tkm_hsm_obj_destroy(h, s, &obj);
	if (k != NULL) {
		sodium_free(k); /* zeroes before freeing */
	}
	return err;
}

/* The default KCV (5 bytes) of len clear key bytes, through a short-lived session object. */
static tkm_err kcv_of_bytes(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_alg alg, const uint8_t *key,
                            size_t len, tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	tkm_err err;

	err = tkm_hsm_kcv_spec(alg, tkm_hsm_kcv_default(alg), TKM_HSM_KCV_MAX, kcv, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_obj_create(h, s, alg, TKM_HSM_A_KCV, key, len, &obj, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, obj, alg, false, kcv, why, why_len);
	}
	tkm_hsm_obj_destroy(h, s, &obj);
	return err;
}

/* ---- Token keys ---- */

/*
 * The template of a token secret key of role (not the audit key): fixed
 * custody attributes, the role's one use, and the one mechanism it may run.
 */
static void token_tmpl(tmpl *t, tkm_hsm_role role, const tkm_hsm_alg_info *ai, const uint8_t *id,
                       size_t id_len, const char *label, const CK_MECHANISM_TYPE *allowed)
{
	t_add(t, CKA_CLASS, &cls_secret, sizeof(cls_secret));
	t_add(t, CKA_KEY_TYPE, &ai->ckk, sizeof(ai->ckk));
	t_bool(t, CKA_TOKEN, true);
	t_bool(t, CKA_PRIVATE, true);
	t_bool(t, CKA_SENSITIVE, true);
	t_bool(t, CKA_EXTRACTABLE, false);
	t_bool(t, CKA_MODIFIABLE, false);
	t_bool(t, CKA_COPYABLE, false);
	t_bool(t, CKA_ENCRYPT, role == TKM_HSM_MASTER_SEAL);
	t_bool(t, CKA_DECRYPT, role == TKM_HSM_MASTER_SEAL);
	t_bool(t, CKA_SIGN, false);
	t_bool(t, CKA_VERIFY, false);
	t_bool(t, CKA_WRAP, role == TKM_HSM_MASTER_KEK);
	t_bool(t, CKA_UNWRAP, role == TKM_HSM_MASTER_KEK);
	t_bool(t, CKA_DERIVE, role == TKM_HSM_BDK);
	t_add(t, CKA_ID, id, id_len);
	t_add(t, CKA_LABEL, label, strlen(label));
	t_add(t, CKA_ALLOWED_MECHANISMS, allowed, sizeof(*allowed));
}

static CK_MECHANISM_TYPE role_mech(tkm_hsm_role role, const tkm_hsm_alg_info *ai)
{
	switch (role) {
	case TKM_HSM_MASTER_KEK:
		return CKM_AES_KEY_WRAP_PAD;
	case TKM_HSM_MASTER_SEAL:
		return CKM_AES_GCM;
	case TKM_HSM_BDK:
		return ai->derive;
	case TKM_HSM_AUDIT:
		break;
	}
	return CKM_EDDSA;
}

/* Check a role, algorithm and name before anything touches the token. */
static tkm_err role_check(tkm_hsm_role role, tkm_hsm_alg alg, const char *name, char *why,
                          size_t why_len)
{
	switch (role) {
	case TKM_HSM_MASTER_KEK:
	case TKM_HSM_MASTER_SEAL:
		if (alg != TKM_HSM_AES256) {
			return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
			                    "the master keys are AES-256");
		}
		break;
	case TKM_HSM_AUDIT:
		if (alg != TKM_HSM_ED25519) {
			return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
			                    "the audit key is Ed25519");
		}
		break;
	case TKM_HSM_BDK:
		/* X9.24-1 defines double-length TDES BDKs only. */
		if (alg != TKM_HSM_AES128 && alg != TKM_HSM_AES192 && alg != TKM_HSM_AES256 &&
		    alg != TKM_HSM_TDES2) {
			return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
			                    "a BDK is AES-128, AES-192, AES-256 or TDES-2key");
		}
		return name_check(name, why, why_len);
	default:
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "unknown key role %d",
		                    (int)role);
	}
	if (name != NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "only BDKs have names");
	}
	return TKM_OK;
}

/* TKM_OK when the role (or BDK name) is free, TKM_E_ALREADY_EXISTS when taken. */
static tkm_err role_free(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_role role, const char *name,
                         char *why, size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	CK_OBJECT_CLASS cls = role == TKM_HSM_AUDIT ? CKO_PRIVATE_KEY : CKO_SECRET_KEY;
	tkm_err err;

	if (role == TKM_HSM_BDK) {
		err = find_bdk_name(h, s, name, &obj, why, why_len);
	} else {
		err = tkm_hsm_find_role(h, s, role, cls, &obj, NULL, why, why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		return TKM_OK;
	}
	if (err == TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
		                    "the token already holds %s %s",
		                    role == TKM_HSM_BDK ? "a" : "the",
		                    role == TKM_HSM_BDK ? "BDK of this name" : role_name(role));
	}
	return err;
}

/*
 * Make the token object(s) of a BDK or master key from clear bytes: for a
 * TDES BDK also its variant (key XOR C0C0C0C000000000C0C0C0C000000000).
 */
static tkm_err token_from_bytes(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_role role, tkm_hsm_alg alg,
                                const char *name, const uint8_t *key, const tkm_hsm_id *id,
                                char *why, size_t why_len)
{
	static const uint8_t variant_mask[16] = {0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0,
	                                         0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0};
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	CK_MECHANISM_TYPE allowed = role_mech(role, ai);
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE, vobj = CK_INVALID_HANDLE;
	uint8_t vid[TKM_HSM_ID_LEN + 1];
	char label[LABEL_MAX];
	uint8_t *variant = NULL;
	tmpl t = {.n = 0};
	tkm_err err = TKM_OK;
	CK_RV rv;

	key_label(label, role, name, false);
	token_tmpl(&t, role, ai, id->b, TKM_HSM_ID_LEN, label, &allowed);
	t_add(&t, CKA_VALUE, key, ai->len);
	rv = h->p11->C_CreateObject(s->h, t.a, t.n, &obj);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_CreateObject", why, why_len);
	}
	if (role != TKM_HSM_BDK || alg != TKM_HSM_TDES2) {
		return TKM_OK;
	}
	variant = sodium_malloc(ai->len);
	if (variant == NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory");
		goto out;
	}
	for (size_t i = 0; i < ai->len; i++) {
		variant[i] = key[i] ^ variant_mask[i];
	}
	memcpy(vid, id->b, TKM_HSM_ID_LEN);
	vid[TKM_HSM_ID_LEN] = TKM_HSM_VARIANT_TAG;
	key_label(label, role, name, true);
	t.n = 0;
	token_tmpl(&t, role, ai, vid, sizeof(vid), label, &allowed);
	t_add(&t, CKA_VALUE, variant, ai->len);
	rv = h->p11->C_CreateObject(s->h, t.a, t.n, &vobj);
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_CreateObject(BDK variant)", why, why_len);
		goto out;
	}
out:
	if (err != TKM_OK && obj != CK_INVALID_HANDLE) {
		/* A TDES BDK without its variant is useless: take it back. */
		(void)h->p11->C_DestroyObject(s->h, obj);
	}
	if (variant != NULL) {
		sodium_free(variant);
	}
	return err;
}

/* Odd parity in every byte, as DES key generators leave it. */
static void des_parity(uint8_t *key, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t b = key[i] & 0xFE, p = b;
		p ^= p >> 4;
		p ^= p >> 2;
		p ^= p >> 1;
		key[i] = b | (uint8_t)(~p & 1);
	}
}

/* The module's CKA_CHECK_VALUE of obj (3 bytes: E(K, zero block)), if it has one. */
static tkm_err check_value(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj,
                           tkm_hsm_kcv_method method, size_t len, tkm_hsm_kcv *kcv, char *why,
                           size_t why_len)
{
	uint8_t cv[8];
	CK_ATTRIBUTE a = {CKA_CHECK_VALUE, cv, sizeof(cv)};
	CK_RV rv;

	rv = h->p11->C_GetAttributeValue(s->h, obj, &a, 1);
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID || (rv == CKR_OK && a.ulValueLen < len)) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "the token computes no check value for this key");
	}
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_GetAttributeValue(CKA_CHECK_VALUE)", why, why_len);
	}
	kcv->method = method;
	kcv->len = len;
	memcpy(kcv->b, cv, len);
	return TKM_OK;
}

tkm_err tkm_hsm_token_key_generate(tkm_hsm *h, tkm_hsm_role role, tkm_hsm_alg alg, const char *name,
                                   tkm_hsm_id *id, tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_get(alg);
	CK_MECHANISM mech = {0, NULL, 0};
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	CK_MECHANISM_TYPE allowed;
	CK_ULONG value_len;
	tkm_hsm_sess *s = NULL;
	uint8_t *key = NULL;
	char label[LABEL_MAX];
	bool locked = false;
	tmpl t = {.n = 0};
	tkm_hsm_id nid;
	tkm_err err;
	CK_RV rv;

	memset(kcv, 0, sizeof(*kcv));
	err = role_check(role, alg, name, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	pthread_mutex_lock(&h->keys_mu);
	locked = true;
	err = role_free(h, s, role, name, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	randombytes_buf(nid.b, sizeof(nid.b));
	if (role == TKM_HSM_AUDIT) {
		err = tkm_hsm_audit_generate(h, s, &nid, why, why_len);
		if (err == TKM_OK) {
			*id = nid;
		}
		goto out;
	}
	if (alg == TKM_HSM_TDES2) {
		/*
		 * The variant needs the clear BDK: draw it from the HSM's RNG into
		 * locked memory, as an import would hold it, and make both objects.
		 */
		key = sodium_malloc(ai->len);
		if (key == NULL) {
			err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory");
			goto out;
		}
		rv = h->p11->C_GenerateRandom(s->h, key, (CK_ULONG)ai->len);
		if (rv != CKR_OK) {
			err = tkm_hsm_ck(h, s, rv, "C_GenerateRandom", why, why_len);
			goto out;
		}
		des_parity(key, ai->len);
		err = kcv_of_bytes(h, s, alg, key, ai->len, kcv, why, why_len);
		if (err == TKM_OK) {
			err = token_from_bytes(h, s, role, alg, name, key, &nid, why, why_len);
		}
		if (err == TKM_OK) {
			*id = nid;
		}
		goto out;
	}
	key_label(label, role, name, false);
	allowed = role_mech(role, ai);
	value_len = (CK_ULONG)ai->len;
	mech.mechanism = ai->gen;
	token_tmpl(&t, role, ai, nid.b, TKM_HSM_ID_LEN, label, &allowed);
	t_add(&t, CKA_VALUE_LEN, &value_len, sizeof(value_len));
	rv = h->p11->C_GenerateKey(s->h, &mech, t.a, t.n, &obj);
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_GenerateKey", why, why_len);
		goto out;
	}
	if (role == TKM_HSM_BDK) {
		err = tkm_hsm_kcv_spec(alg, tkm_hsm_kcv_default(alg), TKM_HSM_KCV_MAX, kcv, why,
		                       why_len);
		if (err == TKM_OK) {
			err = tkm_hsm_kcv_obj(h, s, obj, alg, true, kcv, why, why_len);
		}
		if (err != TKM_OK) {
			/* All or nothing: no BDK whose creator was told it failed. */
			(void)h->p11->C_DestroyObject(s->h, obj);
			goto out;
		}
	} else if (check_value(h, s, obj, TKM_HSM_KCV_AES_ECB, TKM_HSM_KCV_DEFAULT, kcv, why,
	                       why_len) != TKM_OK) {
		/* The key is made; a module without CKA_CHECK_VALUE just gives no KCV. */
		memset(kcv, 0, sizeof(*kcv));
	}
	*id = nid;
out:
	if (err != TKM_OK) {
		memset(kcv, 0, sizeof(*kcv));
	}
	if (locked) {
		pthread_mutex_unlock(&h->keys_mu);
	}
	if (key != NULL) {
		sodium_free(key);
	}
	tkm_hsm_sess_put(h, s);
	return err;
}

tkm_err tkm_hsm_token_key_import(tkm_hsm *h, tkm_hsm_role role, tkm_hsm_alg alg, const char *name,
                                 const tkm_hsm_component *components, size_t ncomponents,
                                 tkm_hsm_id *id, tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	tkm_hsm_sess *s = NULL;
	uint8_t *key = NULL;
	bool locked = false;
	tkm_hsm_id nid;
	tkm_err err;

	memset(kcv, 0, sizeof(*kcv));
	if (role == TKM_HSM_AUDIT) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "the audit key is generated in the HSM, never imported");
	}
	err = role_check(role, alg, name, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	pthread_mutex_lock(&h->keys_mu);
	locked = true;
	err = role_free(h, s, role, name, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = combine(h, s, alg, components, ncomponents, &key, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = kcv_of_bytes(h, s, alg, key, ai->len, kcv, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	randombytes_buf(nid.b, sizeof(nid.b));
	err = token_from_bytes(h, s, role, alg, name, key, &nid, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	*id = nid;
out:
	if (err != TKM_OK) {
		memset(kcv, 0, sizeof(*kcv));
	}
	if (locked) {
		pthread_mutex_unlock(&h->keys_mu);
	}
	if (key != NULL) {
		sodium_free(key);
	}
	tkm_hsm_sess_put(h, s);
	return err;
}

tkm_err tkm_hsm_token_key_find(tkm_hsm *h, tkm_hsm_role role, const char *name, tkm_hsm_id *id,
                               tkm_hsm_alg *alg, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	tkm_hsm_sess *s = NULL;
	tkm_err err;

	if (role == TKM_HSM_BDK) {
		err = name_check(name, why, why_len);
	} else {
		err = role_label(role) != NULL && name == NULL
		          ? TKM_OK
		          : tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "bad key role or name");
	}
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (role == TKM_HSM_BDK) {
		err = find_bdk_name(h, s, name, &obj, why, why_len);
		if (err == TKM_OK) {
			err = obj_id(h, s, obj, id, why, why_len);
		}
	} else {
		err = tkm_hsm_find_role(h, s, role,
		                        role == TKM_HSM_AUDIT ? CKO_PRIVATE_KEY : CKO_SECRET_KEY,
		                        &obj, id, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_obj_alg(h, s, obj, alg, why, why_len);
	}
out:
	tkm_hsm_sess_put(h, s);
	return err;
}

tkm_err tkm_hsm_token_kcv(tkm_hsm *h, const tkm_hsm_id *id, tkm_hsm_kcv_method method, size_t len,
                          tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	CK_BBOOL derive = CK_FALSE;
	CK_ATTRIBUTE a = {CKA_DERIVE, &derive, sizeof(derive)};
	tkm_hsm_sess *s = NULL;
	tkm_hsm_alg alg;
	tkm_hsm_kcv want;
	tkm_err err;
	CK_RV rv;

	memset(kcv, 0, sizeof(*kcv));
	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_hsm_find_id(h, s, CKO_SECRET_KEY, id->b, TKM_HSM_ID_LEN, 0, &obj, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_obj_alg(h, s, obj, &alg, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_spec(alg, method, len, &want, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	rv = h->p11->C_GetAttributeValue(s->h, obj, &a, 1);
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_GetAttributeValue(CKA_DERIVE)", why, why_len);
		goto out;
	}
	if (derive == CK_TRUE) {
		err = tkm_hsm_kcv_obj(h, s, obj, alg, true, &want, why, why_len);
	} else if ((want.method == TKM_HSM_KCV_AES_ECB || want.method == TKM_HSM_KCV_TDES) &&
	           want.len <= 3) {
		err = check_value(h, s, obj, want.method, want.len, &want, why, why_len);
	} else {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "a master key's attributes allow no KCV but the token's own "
		                   "check value (legacy method, at most 3 bytes)");
	}
	if (err == TKM_OK) {
		*kcv = want;
	}
out:
	tkm_hsm_sess_put(h, s);
	return err;
}

tkm_err tkm_hsm_token_key_destroy(tkm_hsm *h, const tkm_hsm_id *id, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE, vobj = CK_INVALID_HANDLE;
	CK_BBOOL derive = CK_FALSE;
	CK_ATTRIBUTE a = {CKA_DERIVE, &derive, sizeof(derive)};
	uint8_t vid[TKM_HSM_ID_LEN + 1];
	tkm_hsm_sess *s = NULL;
	bool locked = false;
	tkm_err err;
	CK_RV rv;

	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	pthread_mutex_lock(&h->keys_mu);
	locked = true;
	err = tkm_hsm_find_id(h, s, CKO_SECRET_KEY, id->b, TKM_HSM_ID_LEN, 0, &obj, why, why_len);
	if (err == TKM_E_NOT_FOUND && tkm_hsm_find_id(h, s, CKO_PRIVATE_KEY, id->b, TKM_HSM_ID_LEN,
	                                              0, &obj, NULL, 0) == TKM_OK) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "tkm does not destroy the audit key");
	}
	if (err != TKM_OK) {
		goto out;
	}
	rv = h->p11->C_GetAttributeValue(s->h, obj, &a, 1);
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_GetAttributeValue(CKA_DERIVE)", why, why_len);
		goto out;
	}
	if (derive != CK_TRUE) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "tkm does not destroy master keys; that is a ceremony with the "
		                   "token's own tools");
		goto out;
	}
	memcpy(vid, id->b, TKM_HSM_ID_LEN);
	vid[TKM_HSM_ID_LEN] = TKM_HSM_VARIANT_TAG;
	err = tkm_hsm_find_id(h, s, CKO_SECRET_KEY, vid, sizeof(vid), 0, &vobj, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		err = TKM_OK;
	}
	if (err != TKM_OK) {
		goto out;
	}
	/* The variant first: a BDK never stays without its variant. */
	if (vobj != CK_INVALID_HANDLE) {
		rv = h->p11->C_DestroyObject(s->h, vobj);
		if (rv != CKR_OK) {
			err = tkm_hsm_ck(h, s, rv, "C_DestroyObject(BDK variant)", why, why_len);
			goto out;
		}
	}
	rv = h->p11->C_DestroyObject(s->h, obj);
	if (rv != CKR_OK) {
		err = tkm_hsm_ck(h, s, rv, "C_DestroyObject(BDK)", why, why_len);
		goto out;
	}
out:
	if (locked) {
		pthread_mutex_unlock(&h->keys_mu);
	}
	tkm_hsm_sess_put(h, s);
	return err;
}

/* ---- Device keys ---- */

static tkm_err device_check(tkm_hsm_alg alg, tkm_hsm_usage usage, const char *owner, char *why,
                            size_t why_len)
{
	if (tkm_hsm_alg_sym(alg) == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a device key is AES-128/192/256 or TDES");
	}
	if (!usage_ok(usage)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "unknown key usage %d",
		                    (int)usage);
	}
	return tkm_hsm_owner_check(owner, why, why_len);
}

tkm_err tkm_hsm_device_key_generate(tkm_hsm *h, tkm_hsm_alg alg, tkm_hsm_usage usage,
                                    const char *owner, uint8_t blob[static TKM_HSM_BLOB_MAX],
                                    size_t *blob_len, tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	tkm_hsm_sess *s = NULL;
	tkm_err err;

	*blob_len = 0;
	memset(kcv, 0, sizeof(*kcv));
	err = device_check(alg, usage, owner, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_spec(alg, tkm_hsm_kcv_default(alg), TKM_HSM_KCV_MAX, kcv, why,
		                       why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_sess_get(h, &s, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_obj_generate(h, s, alg, TKM_HSM_A_KCV | TKM_HSM_A_EXTRACTABLE, &obj,
		                           why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, obj, alg, false, kcv, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_blob_make(h, s, obj, alg, usage, kcv, owner, blob, blob_len, why,
		                        why_len);
	}
	tkm_hsm_obj_destroy(h, s, &obj);
	tkm_hsm_sess_put(h, s);
	if (err != TKM_OK) {
		*blob_len = 0;
		memset(kcv, 0, sizeof(*kcv));
	}
	return err;
}

tkm_err tkm_hsm_device_key_import(tkm_hsm *h, tkm_hsm_alg alg, tkm_hsm_usage usage,
                                  const char *owner, const tkm_hsm_component *components,
                                  size_t ncomponents, uint8_t blob[static TKM_HSM_BLOB_MAX],
                                  size_t *blob_len, tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	tkm_hsm_sess *s = NULL;
	uint8_t *key = NULL;
	tkm_err err;

	*blob_len = 0;
	memset(kcv, 0, sizeof(*kcv));
	err = device_check(alg, usage, owner, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_spec(alg, tkm_hsm_kcv_default(alg), TKM_HSM_KCV_MAX, kcv, why,
		                       why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_sess_get(h, &s, why, why_len);
	}
	if (err == TKM_OK) {
		err = combine(h, s, alg, components, ncomponents, &key, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_obj_create(h, s, alg, TKM_HSM_A_KCV | TKM_HSM_A_EXTRACTABLE, key,
		                         tkm_hsm_alg_sym(alg)->len, &obj, why, why_len);
	}
	if (key != NULL) {
		sodium_free(key);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, obj, alg, false, kcv, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_blob_make(h, s, obj, alg, usage, kcv, owner, blob, blob_len, why,
		                        why_len);
	}
	tkm_hsm_obj_destroy(h, s, &obj);
	tkm_hsm_sess_put(h, s);
	if (err != TKM_OK) {
		*blob_len = 0;
		memset(kcv, 0, sizeof(*kcv));
	}
	return err;
}

tkm_err tkm_hsm_blob_kcv(tkm_hsm *h, const uint8_t *blob, size_t blob_len, const char *owner,
                         tkm_hsm_kcv_method method, size_t len, tkm_hsm_kcv *kcv, char *why,
                         size_t why_len)
{
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	tkm_hsm_blob_meta info;
	tkm_hsm_sess *s = NULL;
	tkm_hsm_kcv want;
	tkm_err err;

	memset(kcv, 0, sizeof(*kcv));
	if (tkm_hsm_blob_info(blob, blob_len, &info) != TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_CRYPTO, "not a tkm key blob");
	}
	err = tkm_hsm_kcv_spec(info.alg, method, len, &want, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_sess_get(h, &s, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_blob_unwrap(h, s, blob, blob_len, owner, TKM_HSM_A_KCV, &obj, NULL,
		                          why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, obj, info.alg, false, &want, why, why_len);
	}
	if (err == TKM_OK) {
		*kcv = want;
	}
	tkm_hsm_obj_destroy(h, s, &obj);
	tkm_hsm_sess_put(h, s);
	return err;
}

tkm_err tkm_hsm_component_kcv(tkm_hsm *h, tkm_hsm_alg alg, const uint8_t *key,
                              tkm_hsm_kcv_method method, size_t len, tkm_hsm_kcv *kcv, char *why,
                              size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	tkm_hsm_sess *s = NULL;
	tkm_hsm_kcv want;
	tkm_err err;

	memset(kcv, 0, sizeof(*kcv));
	if (ai == NULL || key == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a component is a symmetric key");
	}
	err = tkm_hsm_kcv_spec(alg, method, len, &want, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_sess_get(h, &s, why, why_len);
	}
	if (err == TKM_OK) {
		err =
		    tkm_hsm_obj_create(h, s, alg, TKM_HSM_A_KCV, key, ai->len, &obj, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, obj, alg, false, &want, why, why_len);
	}
	if (err == TKM_OK) {
		*kcv = want;
	}
	tkm_hsm_obj_destroy(h, s, &obj);
	tkm_hsm_sess_put(h, s);
	return err;
}

/* ---- Tests ---- */

static tkm_err count(tkm_hsm *h, tkm_hsm_sess *s, bool token, size_t *out, char *why,
                     size_t why_len)
{
	CK_OBJECT_HANDLE batch[64];
	tmpl t = {.n = 0};
	CK_ULONG n = 0;
	size_t total = 0;
	CK_RV rv;

	t_bool(&t, CKA_TOKEN, token);
	rv = h->p11->C_FindObjectsInit(s->h, t.a, t.n);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_FindObjectsInit", why, why_len);
	}
	do {
		rv = h->p11->C_FindObjects(s->h, batch, 64, &n);
		if (rv != CKR_OK) {
			(void)h->p11->C_FindObjectsFinal(s->h);
			return tkm_hsm_ck(h, s, rv, "C_FindObjects", why, why_len);
		}
		total += n;
	} while (n > 0);
	rv = h->p11->C_FindObjectsFinal(s->h);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_FindObjectsFinal", why, why_len);
	}
	*out = total;
	return TKM_OK;
}

tkm_err tkm_hsm_count_objects(tkm_hsm *h, size_t *token, size_t *session, char *why, size_t why_len)
{
	tkm_hsm_sess *s = NULL;
	tkm_err err;

	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err == TKM_OK) {
		err = count(h, s, true, token, why, why_len);
	}
	if (err == TKM_OK) {
		err = count(h, s, false, session, why, why_len);
	}
	tkm_hsm_sess_put(h, s);
	return err;
}
