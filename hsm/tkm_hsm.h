/*
 * tkm_hsm.h - the HSM boundary: the only code in tkm that touches PKCS#11
 * or holds clear key bytes.
 *
 * The API is deliberately narrow and typed: plain values in, plain values
 * out, no PKCS#11 types and no pointers into module memory. That keeps it
 * ready to move behind a process boundary (a helper reached over a
 * socketpair, as ssh-agent does) without changing its callers.
 *
 * Key custody follows the LMK model of payment HSMs (docs/security-model.md,
 * "Key hierarchy and the HSM boundary"): the token holds a small fixed set of
 * objects (master KEK, master sealing key, audit signing key, BDKs), named by
 * a random 16-byte id. Every other key is a "device key blob" the caller
 * stores: the key wrapped under the master KEK, with a header (algorithm,
 * usage, check value, master key ids) that is authenticated together with the
 * blob's owner, so a blob that is edited or moved to another owner is
 * refused. Each operation on a blob unwraps it into a session object that is
 * destroyed before the call returns. Destroying a device key is erasing its
 * blob: no HSM object outlives the call that made it.
 *
 * Every function but tkm_hsm_login() and tkm_hsm_close(), which run alone,
 * is safe to call from several threads on one handle: calls check a session
 * out of a pool (tkm_hsm_login), so up to that many run in parallel and the
 * rest wait. Every fallible call writes a sentence to why. Besides the
 * errors each function names, key operations return
 *   TKM_E_UNAVAILABLE          the HSM or its session failed (device removed,
 *                              session lost, not logged in): no result, and
 *                              the next call reopens the session and logs in
 *                              again;
 *   TKM_E_FAILED_PRECONDITION  the token is not set up (no master key or no
 *                              audit key);
 *   TKM_E_HSM                  any other failure of the module;
 *   TKM_E_NOMEM, TKM_E_INVALID_ARG (a caller's bug).
 */
#ifndef TKM_HSM_H
#define TKM_HSM_H

#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"

typedef struct tkm_hsm tkm_hsm;

/*
 * CK_TOKEN_INFO's identifying fields with the blank padding trimmed,
 * NUL-terminated. They are UTF-8 as far as the module keeps to the standard.
 */
typedef struct tkm_hsm_token {
	char label[33];
	char model[17];
	char manufacturer[33];
	char serial[17];
} tkm_hsm_token;

/* The stable, random CKA_ID of a token key, drawn from libsodium at creation. */
#define TKM_HSM_ID_LEN 16
typedef struct tkm_hsm_id {
	uint8_t b[TKM_HSM_ID_LEN];
} tkm_hsm_id;

typedef enum tkm_hsm_alg {
	TKM_HSM_AES128 = 1,
	TKM_HSM_AES192 = 2,
	TKM_HSM_AES256 = 3,
	TKM_HSM_TDES2 = 4, /* two-key triple DES, 16 bytes */
	TKM_HSM_TDES3 = 5, /* three-key triple DES, 24 bytes */
	TKM_HSM_ED25519 = 6,
} tkm_hsm_alg;

/* The token keys. Each role has one key, except BDKs, which have a name. */
typedef enum tkm_hsm_role {
	TKM_HSM_MASTER_KEK = 1,  /* AES-256; wraps every device key; wrap/unwrap only */
	TKM_HSM_MASTER_SEAL = 2, /* AES-256; AES-GCM seal and blob binding; not extractable */
	TKM_HSM_AUDIT = 3,       /* Ed25519; signs audit checkpoints; sign only */
	TKM_HSM_BDK = 4,         /* AES-128/192/256 or TDES2; DUKPT derivation only */
} tkm_hsm_role;

/* What a device key is for; bound into its blob. */
typedef enum tkm_hsm_usage {
	TKM_HSM_USE_KBPK = 1,          /* TR-31 key block protection key */
	TKM_HSM_USE_DUKPT_INITIAL = 2, /* AES DUKPT initial key or TDES DUKPT IPEK */
	TKM_HSM_USE_PIN = 3,           /* PIN encryption working key */
	TKM_HSM_USE_MAC = 4,           /* MAC working key */
	TKM_HSM_USE_DATA = 5,          /* data encryption working key */
	TKM_HSM_USE_KEK = 6,           /* key encryption key */
} tkm_hsm_usage;

/*
 * Key check values, all computed inside the HSM:
 *   TDES       E(K, 8 zero bytes), the legacy TDES KCV (TDES keys)
 *   AES_CMAC   AES-CMAC(K, 16 zero bytes), per X9.24-3 (AES keys)
 *   AES_ECB    E(K, 16 zero bytes), the legacy AES KCV (AES keys)
 *   AES_CMAC_EMPTY  AES-CMAC(K, empty message), as some tools compute it
 * A KCV is the first 2 to 5 bytes; 3 unless asked otherwise.
 */
typedef enum tkm_hsm_kcv_method {
	TKM_HSM_KCV_TDES = 1,
	TKM_HSM_KCV_AES_CMAC = 2,
	TKM_HSM_KCV_AES_ECB = 3,
	TKM_HSM_KCV_AES_CMAC_EMPTY = 4,
} tkm_hsm_kcv_method;

#define TKM_HSM_KCV_MIN     2
#define TKM_HSM_KCV_MAX     5
#define TKM_HSM_KCV_DEFAULT 3

typedef struct tkm_hsm_kcv {
	tkm_hsm_kcv_method method;
	size_t len; /* 0: none (the key has no KCV, or the module computes none) */
	uint8_t b[TKM_HSM_KCV_MAX];
} tkm_hsm_kcv;

/*
 * One clear key component, as a key custodian enters it. key must point to
 * sodium_malloc() memory holding the algorithm's key length; kcv is the
 * component's own check value from its form (method and 2 to 5 bytes).
 */
typedef struct tkm_hsm_component {
	const uint8_t *key;
	tkm_hsm_kcv kcv;
} tkm_hsm_component;

/* A device key blob is at most this long; see docs/security-model.md for its layout. */
#define TKM_HSM_BLOB_MAX 128
/* An owner ("terminal:42") is 1 to this many bytes. */
#define TKM_HSM_OWNER_MAX 255
/* A BDK name is 1 to this many characters of [A-Za-z0-9._-]. */
#define TKM_HSM_NAME_MAX 32

/* What a blob's header says; read without the HSM, so not yet authenticated. */
typedef struct tkm_hsm_blob_meta {
	tkm_hsm_alg alg;
	tkm_hsm_usage usage;
	tkm_hsm_kcv kcv; /* the default method for alg, 5 bytes */
	tkm_hsm_id kek;  /* the master KEK it is wrapped under */
} tkm_hsm_blob_meta;

/*
 * The owner of a sealed record: its table, its row's primary key (bytes) and
 * the row version. A sealed blob opens only with the same three values.
 */
typedef struct tkm_hsm_seal_ctx {
	const char *table;  /* 1 to 64 bytes */
	const uint8_t *row; /* 1 to 255 bytes */
	size_t row_len;
	uint64_t version;
} tkm_hsm_seal_ctx;

/* Sealed length = plaintext length + this; plaintexts are at most TKM_HSM_SEAL_MAX. */
#define TKM_HSM_SEAL_OVERHEAD (1 + TKM_HSM_ID_LEN + 12 + 16)
#define TKM_HSM_SEAL_MAX      (1024 * 1024)

#define TKM_HSM_ED25519_PK_LEN  32
#define TKM_HSM_ED25519_SIG_LEN 64

/* ---- Module, token and login ---- */

/*
 * Load the PKCS#11 module at module_path (an absolute path to a regular
 * file), initialise it, and select the one token matching token_uri (an
 * RFC 7512 "pkcs11:" URI). Fails with TKM_E_CONFIG (bad path, module or
 * URI; several tokens match), TKM_E_NOT_FOUND (no token matches) or
 * TKM_E_HSM (the module failed), with a sentence in why. No login happens.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_open(const char *module_path, const char *token_uri, tkm_hsm **out,
                                    char *why, size_t why_len);

/*
 * Log in as the token's user and set up a pool of `sessions` (1 to 256)
 * sessions. The PIN comes from exactly one source: pin_file, a file that is
 * not accessible to group or others (trailing newline ignored), or pin_env,
 * the name of an environment variable. The PIN is read for each login and
 * wiped right after C_Login; only its source is kept, to log in again after
 * a session dies. Fails with TKM_E_CONFIG (bad source, PIN rejected),
 * TKM_E_UNAVAILABLE or TKM_E_HSM. Call once, before any key operation.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_login(tkm_hsm *h, const char *pin_file, const char *pin_env,
                                     unsigned sessions, char *why, size_t why_len);

/* Read the selected token's identity now. TKM_E_HSM if the token is gone. */
TKM_MUST_CHECK tkm_err tkm_hsm_token_info(const tkm_hsm *h, tkm_hsm_token *out, char *why,
                                          size_t why_len);

/* Close the sessions, finalise and unload the module. No call may be running. NULL-safe. */
void tkm_hsm_close(tkm_hsm *h);

/* ---- Token keys: the fixed set ---- */

/*
 * Generate a token key inside the HSM. name is the BDK's name and must be
 * NULL for the other roles. alg: AES256 for the master keys, ED25519 for the
 * audit key, AES128/192/256 or TDES2 for a BDK. *kcv gets the default KCV
 * (5 bytes) for a BDK, the module's 3-byte CKA_CHECK_VALUE (AES_ECB) for a
 * master key when it computes one, nothing for the audit key.
 * TKM_E_ALREADY_EXISTS when the role (or the BDK name) is taken.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_token_key_generate(tkm_hsm *h, tkm_hsm_role role, tkm_hsm_alg alg,
                                                  const char *name, tkm_hsm_id *id,
                                                  tkm_hsm_kcv *kcv, char *why, size_t why_len);

/*
 * Import a master key or a BDK from 2 or 3 clear components (XOR). Each
 * component is checked against its own KCV in the HSM before they are
 * combined (TKM_E_BAD_REQUEST names the first that does not match); the
 * combined key exists only in sodium_malloc() memory and is wiped before the
 * call returns. *kcv gets the combined key's default KCV (5 bytes).
 */
TKM_MUST_CHECK tkm_err tkm_hsm_token_key_import(tkm_hsm *h, tkm_hsm_role role, tkm_hsm_alg alg,
                                                const char *name,
                                                const tkm_hsm_component *components,
                                                size_t ncomponents, tkm_hsm_id *id,
                                                tkm_hsm_kcv *kcv, char *why, size_t why_len);

/* The id and algorithm of a role's key (name: the BDK's). TKM_E_NOT_FOUND if none. */
TKM_MUST_CHECK tkm_err tkm_hsm_token_key_find(tkm_hsm *h, tkm_hsm_role role, const char *name,
                                              tkm_hsm_id *id, tkm_hsm_alg *alg, char *why,
                                              size_t why_len);

/*
 * A token key's KCV by method and length (0: default 3). Any method that
 * fits a BDK's algorithm; for the master keys only what the token exposes
 * (CKA_CHECK_VALUE: AES_ECB, up to 3 bytes), TKM_E_FAILED_PRECONDITION
 * otherwise, since their attributes allow no other computation.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_token_kcv(tkm_hsm *h, const tkm_hsm_id *id,
                                         tkm_hsm_kcv_method method, size_t len, tkm_hsm_kcv *kcv,
                                         char *why, size_t why_len);

/*
 * Destroy a BDK (and a TDES BDK's variant). The master keys and the audit key
 * are refused with TKM_E_FAILED_PRECONDITION: retiring them is a ceremony
 * done with the token's own tools. TKM_E_NOT_FOUND if no such key.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_token_key_destroy(tkm_hsm *h, const tkm_hsm_id *id, char *why,
                                                 size_t why_len);

/* ---- Device keys: blobs wrapped under the master KEK ---- */

/*
 * Generate a device key (AES128/192/256, TDES2, TDES3) inside the HSM and
 * return it as a blob bound to owner (1 to TKM_HSM_OWNER_MAX bytes), with
 * its default KCV (5 bytes).
 */
TKM_MUST_CHECK tkm_err tkm_hsm_device_key_generate(tkm_hsm *h, tkm_hsm_alg alg, tkm_hsm_usage usage,
                                                   const char *owner,
                                                   uint8_t blob[static TKM_HSM_BLOB_MAX],
                                                   size_t *blob_len, tkm_hsm_kcv *kcv, char *why,
                                                   size_t why_len);

/* As tkm_hsm_token_key_import(), for a device key returned as a blob. */
TKM_MUST_CHECK tkm_err tkm_hsm_device_key_import(
    tkm_hsm *h, tkm_hsm_alg alg, tkm_hsm_usage usage, const char *owner,
    const tkm_hsm_component *components, size_t ncomponents, uint8_t blob[static TKM_HSM_BLOB_MAX],
    size_t *blob_len, tkm_hsm_kcv *kcv, char *why, size_t why_len);

/*
 * A blob's KCV computed in the HSM (method and len as tkm_hsm_token_kcv).
 * This also proves the blob authentic for owner: TKM_E_CRYPTO when it was
 * changed, belongs to another owner or to other master keys.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_blob_kcv(tkm_hsm *h, const uint8_t *blob, size_t blob_len,
                                        const char *owner, tkm_hsm_kcv_method method, size_t len,
                                        tkm_hsm_kcv *kcv, char *why, size_t why_len);

/* Parse a blob's header without the HSM (unauthenticated). TKM_E_INVALID_ARG if malformed. */
TKM_MUST_CHECK tkm_err tkm_hsm_blob_info(const uint8_t *blob, size_t blob_len,
                                         tkm_hsm_blob_meta *info);

/*
 * The KCV of one clear component (sodium_malloc memory, the algorithm's key
 * length), computed in the HSM, for a custodian to check what was typed.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_component_kcv(tkm_hsm *h, tkm_hsm_alg alg, const uint8_t *key,
                                             tkm_hsm_kcv_method method, size_t len,
                                             tkm_hsm_kcv *kcv, char *why, size_t why_len);

/* ---- DUKPT ---- */

/*
 * AES DUKPT (X9.24-3) initial key from an AES BDK and an 8-byte initial key
 * ID, derived in the HSM (CKM_AES_ECB_ENCRYPT_DATA); the key has the BDK's
 * algorithm and comes back as a blob (usage DUKPT_INITIAL) bound to owner.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_dukpt_aes_initial_key(tkm_hsm *h, const tkm_hsm_id *bdk,
                                                     const uint8_t initial_key_id[static 8],
                                                     const char *owner,
                                                     uint8_t blob[static TKM_HSM_BLOB_MAX],
                                                     size_t *blob_len, tkm_hsm_kcv *kcv, char *why,
                                                     size_t why_len);

/*
 * TDES DUKPT (X9.24-1) IPEK from a TDES2 BDK and a 10-byte KSN (its counter
 * bits are ignored). Each half is derived in the HSM
 * (CKM_DES3_ECB_ENCRYPT_DATA) under the BDK and under its variant object; the
 * halves are joined in locked memory (see docs/security-model.md). Returned
 * as a TDES2 blob (usage DUKPT_INITIAL) bound to owner.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_dukpt_tdes_ipek(tkm_hsm *h, const tkm_hsm_id *bdk,
                                               const uint8_t ksn[static 10], const char *owner,
                                               uint8_t blob[static TKM_HSM_BLOB_MAX],
                                               size_t *blob_len, tkm_hsm_kcv *kcv, char *why,
                                               size_t why_len);

/* ---- Sealing records ---- */

/*
 * Seal plain (at most TKM_HSM_SEAL_MAX bytes) with AES-GCM under the master
 * sealing key, bound to ctx. out_cap must hold plain_len +
 * TKM_HSM_SEAL_OVERHEAD bytes.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_seal(tkm_hsm *h, const tkm_hsm_seal_ctx *ctx, const uint8_t *plain,
                                    size_t plain_len, uint8_t *out, size_t out_cap, size_t *out_len,
                                    char *why, size_t why_len);

/*
 * Open a sealed blob for ctx into plain (pass sodium_malloc() memory for
 * secrets), plain_cap >= sealed_len - TKM_HSM_SEAL_OVERHEAD. TKM_E_CRYPTO
 * when it does not authenticate: changed, or sealed for another table, row
 * or version.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_unseal(tkm_hsm *h, const tkm_hsm_seal_ctx *ctx,
                                      const uint8_t *sealed, size_t sealed_len, uint8_t *plain,
                                      size_t plain_cap, size_t *plain_len, char *why,
                                      size_t why_len);

/* ---- Audit signing ---- */

/* The audit key's id and raw Ed25519 public key (RFC 8032). */
TKM_MUST_CHECK tkm_err tkm_hsm_audit_public_key(tkm_hsm *h, tkm_hsm_id *id,
                                                uint8_t pk[static TKM_HSM_ED25519_PK_LEN],
                                                char *why, size_t why_len);

/* Sign msg (at most 1 MiB) with the audit key inside the HSM (CKM_EDDSA, pure Ed25519). */
TKM_MUST_CHECK tkm_err tkm_hsm_audit_sign(tkm_hsm *h, const uint8_t *msg, size_t msg_len,
                                          uint8_t sig[static TKM_HSM_ED25519_SIG_LEN], char *why,
                                          size_t why_len);

#endif /* TKM_HSM_H */
