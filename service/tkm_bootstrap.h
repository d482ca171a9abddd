/*
 * tkm_bootstrap.h - the one-time initialisation of a database and an HSM
 * token (tkmd --init), and the start-up check that the two belong together.
 *
 * Init makes the token keys (master KEK, master sealing key, audit signing
 * key), records them in the first audit record with a signed checkpoint,
 * and writes the audit public key for offline verification. It refuses a
 * database or token that was initialised before. At every later start,
 * tkmd checks that the token's audit key is the one the database recorded,
 * and starts the store's writer with the HSM as checkpoint signer.
 */
#ifndef TKM_BOOTSTRAP_H
#define TKM_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_audit.h"
#include "tkm_auth.h"
#include "tkm_hsm.h"
#include "tkm_store.h"

/* Meta keys written by init. */
#define TKM_BOOTSTRAP_META_INIT_AT  "initialized_at"
#define TKM_BOOTSTRAP_META_AUDIT_PK "audit_public_key"

/* The first people: two security officers and one admin, each with a one-time password. */
#define TKM_BOOTSTRAP_PEOPLE  3
#define TKM_BOOTSTRAP_OTP_MAX 32

typedef struct tkm_bootstrap_person {
	char username[65];
	const char *role;
	char *otp; /* sodium_malloc'd; shown once by tkmd --init, then wiped */
} tkm_bootstrap_person;

typedef struct tkm_bootstrap_keys {
	tkm_hsm_id audit_id;
	uint8_t audit_pk[TKM_AUDIT_PK_LEN];
	tkm_hsm_kcv kek_kcv; /* len 0 when the module computes none */
	tkm_hsm_kcv seal_kcv;
	uint64_t init_seq; /* the init audit record */
	tkm_bootstrap_person people[TKM_BOOTSTRAP_PEOPLE];
} tkm_bootstrap_keys;

/* Wipe and free the one-time passwords in keys. NULL-safe. */
void tkm_bootstrap_keys_wipe(tkm_bootstrap_keys *keys);

typedef struct tkm_bootstrap_writer {
	uint64_t checkpoint_every;
	uint32_t checkpoint_interval_ms;
} tkm_bootstrap_writer;

/*
 * Initialise: st must be a database with no audit record and no init mark,
 * and the token must hold no tkm key (TKM_E_ALREADY_EXISTS otherwise).
 * Stores policy_text (the default policy) as policy version 1, and creates
 * the operators named in usernames (two security officers, then an admin)
 * with one-time passwords, each change with its audit record. Leaves the
 * writer running. The public key goes to pubkey_file as 64 hex characters
 * and a newline, replacing the file atomically.
 */
TKM_MUST_CHECK tkm_err tkm_bootstrap_init(tkm_hsm *hsm, tkm_store *st, tkm_auth *auth,
                                          const tkm_bootstrap_writer *wc, const char *pubkey_file,
                                          const char *policy_text,
                                          const char *const usernames[TKM_BOOTSTRAP_PEOPLE],
                                          tkm_bootstrap_keys *out, char *why, size_t why_len);

/*
 * Check that st was initialised with this token (TKM_E_FAILED_PRECONDITION
 * with what to do otherwise) and start the writer with the HSM as signer.
 */
TKM_MUST_CHECK tkm_err tkm_bootstrap_open(tkm_hsm *hsm, tkm_store *st,
                                          const tkm_bootstrap_writer *wc, tkm_bootstrap_keys *out,
                                          char *why, size_t why_len);

/* 64 lowercase hex characters and a NUL. */
void tkm_bootstrap_pk_hex(const uint8_t pk[static TKM_AUDIT_PK_LEN],
                          char hex[static 2 * TKM_AUDIT_PK_LEN + 1]);

#endif /* TKM_BOOTSTRAP_H */
