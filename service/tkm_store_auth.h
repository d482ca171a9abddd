/*
 * tkm_store_auth.h - identities in the database: operators and their
 * password history, role assignments, sessions, device principals and the
 * policy in effect. Reads take the store; changes take the writer's
 * transaction (tkm_store_tx), so that each commits with its audit record.
 *
 * Nothing here decides anything: password rules, lockout and session
 * lifetimes are tkm_auth's, permissions are policy/'s.
 */
#ifndef TKM_STORE_AUTH_H
#define TKM_STORE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_store.h"

#define TKM_STORE_USERNAME_MAX 64  /* bytes, without the NUL */
#define TKM_STORE_PWHASH_MAX   128 /* crypto_pwhash_STRBYTES */
#define TKM_STORE_ROLE_MAX     32
#define TKM_STORE_SCOPE_MAX    512
#define TKM_STORE_TOKEN_HASH   32

typedef struct tkm_store_operator {
	int64_t id;
	char username[TKM_STORE_USERNAME_MAX + 1];
	char pw_hash[TKM_STORE_PWHASH_MAX];
	uint64_t pw_changed_ms;
	bool must_change;
	uint32_t failed;          /* consecutive failed logins */
	uint64_t locked_until_ms; /* 0: not locked */
	bool disabled;
	uint64_t created_ms;
} tkm_store_operator;

/* TKM_E_NOT_FOUND when there is no such operator. */
TKM_MUST_CHECK tkm_err tkm_store_operator_get(tkm_store *st, const char *username,
                                              tkm_store_operator *out, char *why, size_t why_len);
TKM_MUST_CHECK tkm_err tkm_store_operator_get_id(tkm_store *st, int64_t id, tkm_store_operator *out,
                                                 char *why, size_t why_len);

/* Call fn for each operator in username order after the cursor (NULL: from the start). */
TKM_MUST_CHECK tkm_err tkm_store_operator_page(tkm_store *st, const char *after, size_t limit,
                                               tkm_err (*fn)(void *arg,
                                                             const tkm_store_operator *op),
                                               void *arg, bool *more, char *why, size_t why_len);

/* The last n password hashes of an operator, newest first (the current one included). */
TKM_MUST_CHECK tkm_err tkm_store_operator_history(tkm_store *st, int64_t id, size_t n,
                                                  tkm_err (*fn)(void *arg, const char *pw_hash),
                                                  void *arg, char *why, size_t why_len);

/* Insert; *id gets the new id. TKM_E_ALREADY_EXISTS if the username is taken. */
TKM_MUST_CHECK tkm_err tkm_store_tx_operator_insert(tkm_store_tx *tx, const tkm_store_operator *op,
                                                    int64_t *id, char *why, size_t why_len);

/* Set a new password hash, keep it in the history (pruned to keep entries). */
TKM_MUST_CHECK tkm_err tkm_store_tx_operator_password(tkm_store_tx *tx, int64_t id,
                                                      const char *pw_hash, uint64_t now_ms,
                                                      bool must_change, size_t keep, char *why,
                                                      size_t why_len);

/* Record a failed login: failed + 1, and locked_until when it reaches max_failed. */
TKM_MUST_CHECK tkm_err tkm_store_tx_operator_failed(tkm_store_tx *tx, int64_t id,
                                                    uint32_t max_failed, uint64_t lock_until_ms,
                                                    char *why, size_t why_len);

/* A successful login or an admin unlock: failed = 0, not locked. */
TKM_MUST_CHECK tkm_err tkm_store_tx_operator_unlock(tkm_store_tx *tx, int64_t id, char *why,
                                                    size_t why_len);

TKM_MUST_CHECK tkm_err tkm_store_tx_operator_disable(tkm_store_tx *tx, int64_t id, bool disabled,
                                                     char *why, size_t why_len);

/* ---- Role assignments: principal ("operator:alice", "device:st-01") -> roles ---- */

typedef struct tkm_store_role {
	char role[TKM_STORE_ROLE_MAX + 1];
	char scope[TKM_STORE_SCOPE_MAX + 1]; /* comma-separated values; empty: none */
} tkm_store_role;

TKM_MUST_CHECK tkm_err tkm_store_roles_of(tkm_store *st, const char *principal,
                                          tkm_store_role *roles, size_t cap, size_t *n, char *why,
                                          size_t why_len);

/* Add or replace (principal, role); scope may be NULL. */
TKM_MUST_CHECK tkm_err tkm_store_tx_role_set(tkm_store_tx *tx, const char *principal,
                                             const char *role, const char *scope, char *why,
                                             size_t why_len);

/* TKM_E_NOT_FOUND if the principal did not hold the role. */
TKM_MUST_CHECK tkm_err tkm_store_tx_role_remove(tkm_store_tx *tx, const char *principal,
                                                const char *role, char *why, size_t why_len);

/* ---- Sessions: only the BLAKE2b-256 of the token is stored ---- */

typedef struct tkm_store_session {
	int64_t operator_id;
	uint64_t created_ms;
	uint64_t expires_ms; /* absolute lifetime */
} tkm_store_session;

TKM_MUST_CHECK tkm_err tkm_store_session_get(tkm_store *st,
                                             const uint8_t hash[static TKM_STORE_TOKEN_HASH],
                                             tkm_store_session *out, char *why, size_t why_len);
TKM_MUST_CHECK tkm_err tkm_store_tx_session_insert(tkm_store_tx *tx,
                                                   const uint8_t hash[static TKM_STORE_TOKEN_HASH],
                                                   const tkm_store_session *s, char *why,
                                                   size_t why_len);
TKM_MUST_CHECK tkm_err tkm_store_tx_session_delete(tkm_store_tx *tx,
                                                   const uint8_t hash[static TKM_STORE_TOKEN_HASH],
                                                   char *why, size_t why_len);
/* Every session of an operator (a password reset or disable ends them). */
TKM_MUST_CHECK tkm_err tkm_store_tx_session_delete_all(tkm_store_tx *tx, int64_t operator_id,
                                                       char *why, size_t why_len);

/* ---- Device principals ---- */

#define TKM_STORE_PRINCIPAL_MAX 128

typedef struct tkm_store_device {
	char principal[TKM_STORE_PRINCIPAL_MAX + 1];
	char kind[32];
	uint8_t public_key[32];
	bool disabled;
} tkm_store_device;

TKM_MUST_CHECK tkm_err tkm_store_device_get(tkm_store *st, const char *principal,
                                            tkm_store_device *out, char *why, size_t why_len);
TKM_MUST_CHECK tkm_err tkm_store_tx_device_insert(tkm_store_tx *tx, const tkm_store_device *d,
                                                  uint64_t now_ms, char *why, size_t why_len);
TKM_MUST_CHECK tkm_err tkm_store_tx_device_disable(tkm_store_tx *tx, const char *principal,
                                                   bool disabled, char *why, size_t why_len);

/* ---- The policy in effect: versions of its canonical text ---- */

/* The newest version; *text is malloc'd (free()). TKM_E_NOT_FOUND before the first. */
TKM_MUST_CHECK tkm_err tkm_store_policy_current(tkm_store *st, uint64_t *version, char **text,
                                                char *why, size_t why_len);
/* Store text as version (the current + 1; TKM_E_CONFLICT if someone was first). */
TKM_MUST_CHECK tkm_err tkm_store_tx_policy_put(tkm_store_tx *tx, uint64_t version, const char *text,
                                               uint64_t now_ms, const char *applied_by, char *why,
                                               size_t why_len);

/* ---- Dual-control requests ---- */

#define TKM_STORE_METHOD_MAX 64

typedef struct tkm_store_approval {
	int64_t id;
	char method[TKM_STORE_METHOD_MAX + 1];
	const uint8_t *params; /* the request's params map, as sent; valid during a callback */
	size_t params_len;
	char target[TKM_STORE_PRINCIPAL_MAX + 1];
	char initiator[TKM_STORE_PRINCIPAL_MAX + 1];
	uint64_t created_ms;
	uint64_t expires_ms;
	char state[16]; /* pending, approved, rejected, executed, failed */
	char decided_by[TKM_STORE_PRINCIPAL_MAX + 1];
	uint64_t decided_ms;
	char error_code[32];
} tkm_store_approval;

/* Insert a pending request; *id gets its id. */
TKM_MUST_CHECK tkm_err tkm_store_tx_approval_insert(tkm_store_tx *tx, const tkm_store_approval *a,
                                                    int64_t *id, char *why, size_t why_len);

/*
 * Move a request from state `from` to `to`, recording who decided, when, and
 * an error code (NULL for none). TKM_E_CONFLICT when it is no longer in `from`.
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_approval_decide(tkm_store_tx *tx, int64_t id, const char *from,
                                                    const char *to, const char *by, uint64_t now_ms,
                                                    const char *error_code, char *why,
                                                    size_t why_len);

/* One request by id (fn sees it with its params); TKM_E_NOT_FOUND if none. */
TKM_MUST_CHECK tkm_err tkm_store_approval_get(tkm_store *st, int64_t id,
                                              tkm_err (*fn)(void *arg, const tkm_store_approval *a),
                                              void *arg, char *why, size_t why_len);

/* Requests with id > after, newest last; only those in state (NULL: all). */
TKM_MUST_CHECK tkm_err tkm_store_approval_page(tkm_store *st, int64_t after, const char *state,
                                               size_t limit,
                                               tkm_err (*fn)(void *arg,
                                                             const tkm_store_approval *a),
                                               void *arg, bool *more, char *why, size_t why_len);

#endif /* TKM_STORE_AUTH_H */
