/*
 * tkm_auth.h - operator authentication: Argon2id passwords and their rules,
 * lockout after failed logins, and session tokens.
 *
 * Passwords are hashed with libsodium's crypto_pwhash_str (Argon2id) and
 * checked against the rules of PCI DSS v4 8.3 by default: length, not the
 * username, not a shipped common password, not one of the last four, a
 * maximum age, and a change forced at first login and after an admin reset.
 * A session token is 256 random bits; only its BLAKE2b-256 is stored. A
 * session ends after idle_s without use or lifetime_s in all. The idle clock
 * lives in this process only: after a restart every session counts as idle
 * and its operator logs in again (fail safe).
 *
 * Every secret (password, token) passed in is only read, never kept or
 * logged; callers hold them in sodium_malloc() memory.
 */
#ifndef TKM_AUTH_H
#define TKM_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_store.h"
#include "tkm_store_auth.h"

#define TKM_AUTH_TOKEN_LEN    32
#define TKM_AUTH_PASSWORD_MAX 256 /* bytes */

typedef struct tkm_auth_cfg {
	size_t min_length;           /* characters (UTF-8 code points); default 12 */
	size_t history;              /* a new password differs from the last this many; 4 */
	uint64_t max_age_s;          /* 90 days; 0: no maximum */
	uint32_t max_failed;         /* failed logins before a lock; 5 (PCI DSS: at most 10) */
	uint64_t lockout_s;          /* 1800 (PCI DSS: at least 30 minutes) */
	uint64_t idle_s;             /* 900 */
	uint64_t lifetime_s;         /* 28800 */
	unsigned long long opslimit; /* Argon2id; crypto_pwhash_OPSLIMIT_INTERACTIVE */
	size_t memlimit;             /* crypto_pwhash_MEMLIMIT_INTERACTIVE */
	const char *common_file;     /* one common password per line; NULL: the built-in list */
} tkm_auth_cfg;

/* The defaults above. */
void tkm_auth_cfg_default(tkm_auth_cfg *cfg);

typedef struct tkm_auth tkm_auth;

/* Loads the common-password list. The store must outlive the handle. */
TKM_MUST_CHECK tkm_err tkm_auth_new(const tkm_auth_cfg *cfg, tkm_store *st, tkm_auth **out,
                                    char *why, size_t why_len);
void tkm_auth_free(tkm_auth *a);

/*
 * Check a new password for username against the rules (not the history).
 * TKM_E_BAD_REQUEST with the rule that failed; the password is never echoed.
 */
TKM_MUST_CHECK tkm_err tkm_auth_password_rules(const tkm_auth *a, const char *username,
                                               const char *password, size_t len, char *why,
                                               size_t why_len);

/* Argon2id hash of password into out (crypto_pwhash_STRBYTES). */
TKM_MUST_CHECK tkm_err tkm_auth_password_hash(const tkm_auth *a, const char *password, size_t len,
                                              char out[static TKM_STORE_PWHASH_MAX]);

/* TKM_E_FAILED_PRECONDITION when password equals one of the operator's last `history`. */
TKM_MUST_CHECK tkm_err tkm_auth_password_reused(const tkm_auth *a, int64_t operator_id,
                                                const char *password, size_t len, char *why,
                                                size_t why_len);

/* A random one-time password that meets the rules (for init and admin resets). */
TKM_MUST_CHECK tkm_err tkm_auth_password_generate(char *out, size_t cap);

/* What a login attempt found; the caller writes it with its audit record. */
typedef enum tkm_auth_login_result {
	TKM_AUTH_LOGIN_OK = 0,
	TKM_AUTH_LOGIN_BAD,      /* unknown user or wrong password (not told apart) */
	TKM_AUTH_LOGIN_LOCKED,   /* locked now, whatever the password */
	TKM_AUTH_LOGIN_DISABLED, /* disabled by an admin */
} tkm_auth_login_result;

/*
 * Check username/password at now_ms. *op gets the operator when one exists
 * (also for BAD, so that the caller can count the failure). Runs the hash
 * for unknown users too, so that timing does not tell which names exist.
 */
TKM_MUST_CHECK tkm_err tkm_auth_login_check(tkm_auth *a, const char *username, const char *password,
                                            size_t len, uint64_t now_ms, tkm_store_operator *op,
                                            bool *found, tkm_auth_login_result *result, char *why,
                                            size_t why_len);

/* A new token and its hash; token into sodium_malloc() memory of the caller. */
void tkm_auth_token_new(uint8_t token[static TKM_AUTH_TOKEN_LEN],
                        uint8_t hash[static TKM_STORE_TOKEN_HASH]);
void tkm_auth_token_hash(const uint8_t *token, size_t len,
                         uint8_t hash[static TKM_STORE_TOKEN_HASH]);

/* Start the idle clock of a session just stored. */
void tkm_auth_session_started(tkm_auth *a, const uint8_t hash[static TKM_STORE_TOKEN_HASH],
                              uint64_t now_ms);
/* Forget a session's idle clock (logout). */
void tkm_auth_session_ended(tkm_auth *a, const uint8_t hash[static TKM_STORE_TOKEN_HASH]);

/*
 * Resolve a token to its operator at now_ms: stored, within its lifetime,
 * used within idle_s (and touched), operator enabled. TKM_E_UNAUTHENTICATED
 * with the reason otherwise ("expired", "idle", "unknown").
 */
TKM_MUST_CHECK tkm_err tkm_auth_session_check(tkm_auth *a, const uint8_t *token, size_t len,
                                              uint64_t now_ms, tkm_store_operator *op, char *why,
                                              size_t why_len);

/* True when the operator must change the password before anything else. */
bool tkm_auth_must_change(const tkm_auth *a, const tkm_store_operator *op, uint64_t now_ms);

const tkm_auth_cfg *tkm_auth_config(const tkm_auth *a);

#endif /* TKM_AUTH_H */
