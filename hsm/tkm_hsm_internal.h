/*
 * tkm_hsm_internal.h - what the tkm_hsm_*.c files share, and the building
 * blocks for code inside hsm/ that needs a session and key objects (TR-31
 * key blocks). Nothing outside hsm/ and its tests includes this header.
 *
 * Shape of an operation: check a session out (tkm_hsm_sess_get), make or
 * find the objects it needs, run the mechanism, destroy every session object
 * it made (tkm_hsm_obj_destroy), check the session in (tkm_hsm_sess_put).
 * Any failed PKCS#11 call goes through tkm_hsm_ck(), which marks the session
 * for a reset: at check-in it is closed, which also destroys any session
 * object left behind, and the next check-out opens a fresh one and logs in
 * again if the token forgot the login.
 *
 * Clear key bytes appear on this side of PKCS#11 only in sodium_malloc()
 * memory: the caller of tkm_hsm_obj_create() and tkm_hsm_blob_extract()
 * passes such memory and wipes it.
 */
#ifndef TKM_HSM_INTERNAL_H
#define TKM_HSM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "tkm_hsm.h"
#include "tkm_why.h"

/* One pooled session. */
typedef struct tkm_hsm_sess {
	CK_SESSION_HANDLE h;
	bool open;         /* h is a session we opened */
	bool busy;         /* checked out */
	bool reset;        /* close it at check-in: a call failed on it */
	unsigned long gen; /* h->gen when it was opened */
} tkm_hsm_sess;

struct tkm_hsm {
	void *dl;
	CK_FUNCTION_LIST_PTR p11;
	bool initialized; /* we called C_Initialize and owe a C_Finalize */
	CK_SLOT_ID slot;

	bool sync;                /* mu, cv, login_mu and keys_mu are initialised */
	pthread_mutex_t mu;       /* guards the pool, gen and pin_rejected */
	pthread_cond_t cv;        /* a session was checked in */
	pthread_mutex_t login_mu; /* one C_Login at a time */
	pthread_mutex_t keys_mu;  /* one token-key creation or destruction at a time */
	unsigned long gen;        /* bumped when the token went away: reopen every session */
	bool pin_rejected;        /* never retry a PIN the token refused */
	char *pin_file;           /* the PIN's source, never the PIN; one is set after login */
	char *pin_env;
	tkm_hsm_sess *pool;
	size_t npool;
};

/* ---- Messages and CK_RV translation (tkm_hsm.c) ---- */

/* "CKR_..." for rv, "CKR_?" for a code this file does not name. */
const char *tkm_hsm_ckr_name(CK_RV rv);

/*
 * Translate rv, returned by fn on session s (may be NULL), into a tkm_err
 * with a message. rv must not be CKR_OK. Lost sessions and a lost token
 * (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT, CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_ERROR, ...) give
 * TKM_E_UNAVAILABLE, CKR_HOST_MEMORY TKM_E_NOMEM, the rest TKM_E_HSM. The
 * session is marked for reset.
 */
tkm_err tkm_hsm_ck(tkm_hsm *h, tkm_hsm_sess *s, CK_RV rv, const char *fn, char *why,
                   size_t why_len);

/* ---- Session pool (tkm_hsm.c) ---- */

/*
 * Check out a logged-in session; waits while all are busy. TKM_E_UNAVAILABLE
 * when not logged in or the session cannot be (re)opened.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_sess_get(tkm_hsm *h, tkm_hsm_sess **out, char *why, size_t why_len);

/* Check a session back in (closing it if marked for reset). NULL-safe. */
void tkm_hsm_sess_put(tkm_hsm *h, tkm_hsm_sess *s);

/* ---- Algorithms (tkm_hsm_keys.c) ---- */

typedef struct tkm_hsm_alg_info {
	tkm_hsm_alg alg;
	const char *name; /* "AES-128" */
	CK_KEY_TYPE ckk;
	size_t len;                               /* key bytes; 0 for Ed25519 */
	size_t block;                             /* cipher block bytes; 0 for Ed25519 */
	CK_MECHANISM_TYPE gen;                    /* C_GenerateKey mechanism */
	CK_MECHANISM_TYPE ecb, cbc, cmac, derive; /* ECB, CBC, CMAC, ECB_ENCRYPT_DATA */
} tkm_hsm_alg_info;

/* The table row of alg; NULL for a value outside the enum. */
const tkm_hsm_alg_info *tkm_hsm_alg_get(tkm_hsm_alg alg);
/* The row of a symmetric algorithm (not Ed25519); NULL otherwise. */
const tkm_hsm_alg_info *tkm_hsm_alg_sym(tkm_hsm_alg alg);

/* ---- Key objects (tkm_hsm_keys.c) ---- */

/* What a session object made by tkm may do. */
enum {
	TKM_HSM_A_ENCRYPT = 1u << 0,
	TKM_HSM_A_DECRYPT = 1u << 1,
	TKM_HSM_A_SIGN = 1u << 2,
	TKM_HSM_A_VERIFY = 1u << 3,
	TKM_HSM_A_WRAP = 1u << 4,
	TKM_HSM_A_UNWRAP = 1u << 5,
	TKM_HSM_A_DERIVE = 1u << 6,
	TKM_HSM_A_EXTRACTABLE = 1u << 7, /* may be wrapped (still sensitive) */
	TKM_HSM_A_CLEAR = 1u << 8,       /* not sensitive: CKA_VALUE readable */
	/* What the KCV computations need on a direct object. */
	TKM_HSM_A_KCV = TKM_HSM_A_ENCRYPT | TKM_HSM_A_SIGN,
};

/*
 * Make a secret-key session object of alg from len clear bytes (sodium_malloc
 * memory; len must be the algorithm's key length) with the given TKM_HSM_A_
 * attributes. The caller destroys it with tkm_hsm_obj_destroy().
 */
TKM_MUST_CHECK tkm_err tkm_hsm_obj_create(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_alg alg,
                                          unsigned attrs, const uint8_t *key, size_t len,
                                          CK_OBJECT_HANDLE *out, char *why, size_t why_len);

/* Generate a secret-key session object of alg inside the HSM. */
TKM_MUST_CHECK tkm_err tkm_hsm_obj_generate(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_alg alg,
                                            unsigned attrs, CK_OBJECT_HANDLE *out, char *why,
                                            size_t why_len);

/*
 * Destroy a session object made by this process and set *obj to
 * CK_INVALID_HANDLE; if that fails the session is marked for reset, whose
 * close destroys it. NULL-safe in both pointers, no-op on CK_INVALID_HANDLE.
 */
void tkm_hsm_obj_destroy(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE *obj);

/* Read exactly len bytes of CKA_VALUE of a TKM_HSM_A_CLEAR object into out (sodium memory). */
TKM_MUST_CHECK tkm_err tkm_hsm_obj_value(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj,
                                         uint8_t *out, size_t len, char *why, size_t why_len);

/*
 * Find exactly one token object of class cls whose CKA_ID is id (id_len
 * bytes) and, when must is not 0, whose boolean attribute must is true.
 * TKM_E_NOT_FOUND for none, TKM_E_FAILED_PRECONDITION for several.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_find_id(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_CLASS cls,
                                       const uint8_t *id, size_t id_len, CK_ATTRIBUTE_TYPE must,
                                       CK_OBJECT_HANDLE *out, char *why, size_t why_len);

/*
 * Find the key of a fixed role (not BDK) by its label: the master KEK, the
 * master sealing key, or the audit key's private (cls CKO_PRIVATE_KEY) or
 * public half. id (may be NULL) gets its CKA_ID.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_find_role(tkm_hsm *h, tkm_hsm_sess *s, tkm_hsm_role role,
                                         CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out, tkm_hsm_id *id,
                                         char *why, size_t why_len);

/* The algorithm of a token key object, from CKA_KEY_TYPE and CKA_VALUE_LEN. */
TKM_MUST_CHECK tkm_err tkm_hsm_obj_alg(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj,
                                       tkm_hsm_alg *alg, char *why, size_t why_len);

/*
 * A TDES BDK's variant (BDK XOR C0C0C0C000000000C0C0C0C000000000) is its own
 * token object, made with the BDK because the HSM cannot XOR a key it may
 * not reveal. Its CKA_ID is the BDK's id followed by this byte.
 */
#define TKM_HSM_VARIANT_TAG 0x56 /* 'V' */

/* The CKA_LABEL of both halves of the audit key pair. */
#define TKM_HSM_LABEL_AUDIT "tkm audit"

/* ---- Audit key (tkm_hsm_audit.c) ---- */

/* Generate the audit key pair as token objects with CKA_ID id. */
TKM_MUST_CHECK tkm_err tkm_hsm_audit_generate(tkm_hsm *h, tkm_hsm_sess *s, const tkm_hsm_id *id,
                                              char *why, size_t why_len);

/* ---- Device key blobs (tkm_hsm_keys.c) ---- */

/* Check owner: 1 to TKM_HSM_OWNER_MAX bytes. */
TKM_MUST_CHECK tkm_err tkm_hsm_owner_check(const char *owner, char *why, size_t why_len);

/*
 * Wrap obj (alg, TKM_HSM_A_EXTRACTABLE) under the current master KEK into a
 * blob for usage and owner; kcv is stored in its header. Does not destroy obj.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_blob_make(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj,
                                         tkm_hsm_alg alg, tkm_hsm_usage usage,
                                         const tkm_hsm_kcv *kcv, const char *owner,
                                         uint8_t blob[static TKM_HSM_BLOB_MAX], size_t *blob_len,
                                         char *why, size_t why_len);

/*
 * Authenticate blob for owner and unwrap it into a session object with the
 * TKM_HSM_A_ attributes attrs. info (may be NULL) gets its header.
 * TKM_E_CRYPTO when the blob does not authenticate.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_blob_unwrap(tkm_hsm *h, tkm_hsm_sess *s, const uint8_t *blob,
                                           size_t blob_len, const char *owner, unsigned attrs,
                                           CK_OBJECT_HANDLE *out, tkm_hsm_blob_meta *info,
                                           char *why, size_t why_len);

/*
 * The clear bytes of a device key, for assembling a key block in locked
 * memory: the blob is authenticated and unwrapped into a non-sensitive
 * session object, whose CKA_VALUE is read into key (sodium_malloc memory,
 * key_cap >= the key length) and which is destroyed before returning.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_blob_extract(tkm_hsm *h, tkm_hsm_sess *s, const uint8_t *blob,
                                            size_t blob_len, const char *owner, uint8_t *key,
                                            size_t key_cap, size_t *key_len,
                                            tkm_hsm_blob_meta *info, char *why, size_t why_len);

/* ---- Mechanisms on key objects (tkm_hsm_keys.c) ---- */

/*
 * CMAC (AES-CMAC or TDES-CMAC by alg) of msg with obj (TKM_HSM_A_SIGN);
 * mac gets the full block (16 or 8 bytes), mac_cap must hold it.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_cmac(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj,
                                    tkm_hsm_alg alg, const uint8_t *msg, size_t msg_len,
                                    uint8_t *mac, size_t mac_cap, size_t *mac_len, char *why,
                                    size_t why_len);

/*
 * CBC without padding (len a multiple of the block) with obj
 * (TKM_HSM_A_ENCRYPT or _DECRYPT); iv is one block; out holds len bytes.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_cbc(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj,
                                   tkm_hsm_alg alg, bool encrypt, const uint8_t *iv,
                                   const uint8_t *in, size_t len, uint8_t *out, char *why,
                                   size_t why_len);

/* ECB encryption of len bytes (a multiple of the block) with obj (TKM_HSM_A_ENCRYPT). */
TKM_MUST_CHECK tkm_err tkm_hsm_ecb_encrypt(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj,
                                           tkm_hsm_alg alg, const uint8_t *in, size_t len,
                                           uint8_t *out, char *why, size_t why_len);

/*
 * E(base, data) computed by C_DeriveKey with the algorithm's ECB_ENCRYPT_DATA
 * into a non-sensitive session object that is read into out (len bytes of
 * data, a multiple of the block) and destroyed: how a derive-only key (a
 * BDK) encrypts a block whose result is not secret, such as a KCV.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_derive_encrypt(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE base,
                                              tkm_hsm_alg alg, const uint8_t *data, size_t len,
                                              uint8_t *out, char *why, size_t why_len);

/* ---- KCV (tkm_hsm_kcv.c) ---- */

/* Check method and len (0: default) against alg; fills kcv->method and kcv->len. */
TKM_MUST_CHECK tkm_err tkm_hsm_kcv_spec(tkm_hsm_alg alg, tkm_hsm_kcv_method method, size_t len,
                                        tkm_hsm_kcv *kcv, char *why, size_t why_len);

/* The default method of alg (TDES for TDES keys, AES_CMAC for AES keys). */
tkm_hsm_kcv_method tkm_hsm_kcv_default(tkm_hsm_alg alg);

/*
 * The KCV of obj (alg) as specified in kcv->method and kcv->len (fill those
 * with tkm_hsm_kcv_spec first). derive_only: obj allows only
 * ECB_ENCRYPT_DATA derivation (a BDK); otherwise it needs TKM_HSM_A_KCV.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_kcv_obj(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE obj,
                                       tkm_hsm_alg alg, bool derive_only, tkm_hsm_kcv *kcv,
                                       char *why, size_t why_len);

/* ---- AES-GCM under the master sealing key (tkm_hsm_seal.c) ---- */

#define TKM_HSM_GCM_IV_LEN  12
#define TKM_HSM_GCM_TAG_LEN 16

/*
 * AES-GCM with key (CKA_ENCRYPT/DECRYPT, CKM_AES_GCM). Encrypt: out gets
 * in_len + 16 bytes (ciphertext, tag). Decrypt: in is ciphertext and tag,
 * out gets in_len - 16 bytes; TKM_E_CRYPTO when the tag does not verify.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_gcm(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE key, bool encrypt,
                                   const uint8_t iv[static TKM_HSM_GCM_IV_LEN], const uint8_t *aad,
                                   size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *out,
                                   char *why, size_t why_len);

/* ---- Tests only ---- */

/*
 * Count the token's objects visible to our sessions: token objects and
 * session objects. For tests that show the object count does not grow.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_count_objects(tkm_hsm *h, size_t *token, size_t *session, char *why,
                                             size_t why_len);

#endif /* TKM_HSM_INTERNAL_H */
