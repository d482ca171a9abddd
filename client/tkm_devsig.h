/*
 * tkm_devsig.h - request credentials shared by libtkm and tkmd: the "auth" map
 * of a request, device request signatures (Ed25519), and device key files.
 *
 * libtkm signs with it; tkmd parses and verifies with it; both build the
 * signed message with the one function below, so the two sides cannot drift.
 * It holds a device secret key only inside a tkm_devsig_key (sodium_malloc'd,
 * read-only after loading) and never writes key bytes anywhere but a key file.
 *
 * Wire format (protocol v1). The request envelope's optional "auth" map is
 * one of:
 *
 *   session-auth = { "token": bstr .size 32 }  ; the token auth.login returned
 *
 *   device-auth = {
 *     "principal": tstr,        ; the device's name: 1..128 bytes of UTF-8, no
 *                               ; control characters (U+0000..U+001F, U+007F..U+009F)
 *     "ts": uint,               ; the signer's clock, unix seconds
 *     "nonce": bstr .size 16,   ; random; the signer never uses one twice
 *     "sig": bstr .size 64,     ; Ed25519 signature over signed-msg
 *   }
 *
 *   signed-msg = [
 *     "tkm request v1",         ; context string: domain separation
 *     method: tstr,             ; the request's "method", as sent
 *     params: { * tstr => any },; the request's "params" value, as sent
 *     principal: tstr,          ; the four values of device-auth, as sent
 *     ts: uint,
 *     nonce: bstr .size 16,
 *   ]
 *
 * Each map holds exactly the keys shown, each once, in any order on the
 * wire (libtkm writes them in deterministic order: ts, sig, nonce,
 * principal). A map holding "token" is a session; one holding "sig" is a
 * device; anything else is malformed. signed-msg is never sent: each side
 * encodes it as deterministic CBOR (RFC 8949 4.2.1: definite lengths, every
 * integer and length in its shortest form), with params embedded as the
 * exact bytes of the request's "params" value (the server takes them from
 * the received request, it does not re-encode them), so the signature covers
 * the params byte for byte. sig = Ed25519 (RFC 8032, pure; libsodium's
 * crypto_sign_detached) of signed-msg under the device's secret key,
 * checked with the public key the server holds for principal.
 *
 * The server refuses a device request (unauthenticated) when: the auth map
 * is malformed; |now - ts| > window (default TKM_DEVSIG_DEFAULT_WINDOW_S;
 * |now - ts| == window is accepted); the principal is unknown or disabled;
 * the signature does not verify; the (principal, nonce) pair was already
 * accepted within the window (tkm_nonce, service/). A signing client must
 * also send params as deterministic CBOR (tkm_devsig_check_canonical), which
 * libtkm checks before signing; whether tkmd insists on it is its choice.
 *
 * Device key file: one line of ASCII, mode 0600, owned by the user:
 *
 *   "tkm-ed25519-sk " <base64 (RFC 4648, with padding) of the 32-byte
 *   Ed25519 seed> "\n"
 *
 * (60 bytes). The seed is the RFC 8032 private key; the 64-byte libsodium
 * secret key and the public key are derived from it when the file is read.
 */
#ifndef TKM_DEVSIG_H
#define TKM_DEVSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_cbor.h"

#define TKM_DEVSIG_CONTEXT          "tkm request v1"
#define TKM_DEVSIG_PK_LEN           32
#define TKM_DEVSIG_SEED_LEN         32
#define TKM_DEVSIG_SIG_LEN          64
#define TKM_DEVSIG_NONCE_LEN        16
#define TKM_DEVSIG_TOKEN_LEN        32
#define TKM_DEVSIG_PRINCIPAL_MAX    128 /* bytes */
#define TKM_DEVSIG_DEFAULT_WINDOW_S 300
/* An encoded auth map of either kind is never longer than this. */
#define TKM_DEVSIG_AUTH_MAX 256
/* signed-msg is at most params_len plus this. */
#define TKM_DEVSIG_MSG_OVERHEAD 256
/* The key file's first bytes. */
#define TKM_DEVSIG_KEYFILE_TAG "tkm-ed25519-sk "

/* What an auth map claims to be. */
typedef enum tkm_devsig_kind {
	TKM_DEVSIG_AUTH_NONE,      /* no auth map */
	TKM_DEVSIG_AUTH_SESSION,   /* holds "token" */
	TKM_DEVSIG_AUTH_DEVICE,    /* holds "sig" */
	TKM_DEVSIG_AUTH_MALFORMED, /* not a map, or neither key */
} tkm_devsig_kind;

/* Why tkm_devsig_verify() refused, for logs and tests; the reply is the caller's choice. */
typedef enum tkm_devsig_reason {
	TKM_DEVSIG_R_NONE,              /* accepted */
	TKM_DEVSIG_R_MALFORMED,         /* auth map: key missing, extra, wrong type or length */
	TKM_DEVSIG_R_STALE,             /* ts outside now +/- window */
	TKM_DEVSIG_R_UNKNOWN_PRINCIPAL, /* lookup returned TKM_E_NOT_FOUND */
	TKM_DEVSIG_R_PRINCIPAL_REFUSED, /* lookup returned TKM_E_UNAUTHENTICATED (disabled...) */
	TKM_DEVSIG_R_BAD_SIGNATURE,     /* sig does not verify under the principal's key */
	TKM_DEVSIG_R_LOCAL,             /* a local failure (lookup error, memory) */
} tkm_devsig_reason;

/* What a device request claims, filled by tkm_devsig_verify(). */
typedef struct tkm_devsig_claim {
	char principal[TKM_DEVSIG_PRINCIPAL_MAX + 1]; /* NUL-terminated; "" until parsed */
	uint64_t ts;
	uint8_t nonce[TKM_DEVSIG_NONCE_LEN];
	tkm_devsig_reason reason;
} tkm_devsig_claim;

/* A device key pair; the secret half lives in read-only sodium_malloc memory. */
typedef struct tkm_devsig_key tkm_devsig_key;

/* ---- Auth maps ---- */

/* Classify req->auth (NULL is TKM_DEVSIG_AUTH_NONE); the parse functions check the rest. */
tkm_devsig_kind tkm_devsig_auth_kind(const tkm_cbor_val *auth);

/*
 * A valid principal: 1..TKM_DEVSIG_PRINCIPAL_MAX bytes of UTF-8 without
 * control characters (so it can be logged and NUL-terminated as it is).
 */
bool tkm_devsig_principal_valid(const char *s, size_t len);

/* Append the session auth map {"token": token} to w as one item. */
void tkm_devsig_put_session(tkm_cbor_w *w, const uint8_t token[static TKM_DEVSIG_TOKEN_LEN]);

/*
 * Parse a session auth map: exactly {"token": bstr .size 32}. On TKM_OK the
 * token is copied to token (the caller wipes it); otherwise
 * TKM_E_UNAUTHENTICATED with the problem in why.
 */
TKM_MUST_CHECK tkm_err tkm_devsig_session_parse(const tkm_cbor_val *auth,
                                                uint8_t token[static TKM_DEVSIG_TOKEN_LEN],
                                                char *why, size_t why_len);

/* ---- Device signatures ---- */

/*
 * Append signed-msg (the array in the comment at the top) to w. params is the
 * encoded params map exactly as sent; nothing is checked here, so callers
 * pass values they have validated.
 */
void tkm_devsig_message(tkm_cbor_w *w, const char *method, const uint8_t *params, size_t params_len,
                        const char *principal, uint64_t ts,
                        const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN]);

/*
 * Sign a request for principal at time ts with nonce, and append the device
 * auth map to w as one item. params is the encoded params map exactly as it
 * will be sent (never NULL: an empty map is the byte 0xa0). Returns
 * TKM_E_INVALID_ARG for an invalid principal or method name, a writer error
 * (TKM_E_NOMEM, TKM_E_RESOURCE_EXHAUSTED) otherwise; why says which.
 * Does not check that params are canonical: see tkm_devsig_check_canonical().
 */
TKM_MUST_CHECK tkm_err tkm_devsig_sign_at(const tkm_devsig_key *key, const char *principal,
                                          const char *method, const uint8_t *params,
                                          size_t params_len, uint64_t ts,
                                          const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN],
                                          tkm_cbor_w *w, char *why, size_t why_len);

/* tkm_devsig_sign_at() with ts = the realtime clock and a fresh random nonce. */
TKM_MUST_CHECK tkm_err tkm_devsig_sign(const tkm_devsig_key *key, const char *principal,
                                       const char *method, const uint8_t *params, size_t params_len,
                                       tkm_cbor_w *w, char *why, size_t why_len);

/*
 * Look up the public key of a principal: TKM_OK and pk filled; TKM_E_NOT_FOUND
 * for an unknown principal; TKM_E_UNAUTHENTICATED for one that may not log in
 * (disabled, say), with the reason in why; any other code is a local failure.
 */
typedef tkm_err (*tkm_devsig_lookup_fn)(void *arg, const char *principal,
                                        uint8_t pk[static TKM_DEVSIG_PK_LEN], char *why,
                                        size_t why_len);

/*
 * Verify a device auth map against the request it came with: method as
 * decoded, params the raw bytes of the request's params value
 * (tkm_cbor_raw), now and window_s in seconds. Checks, in this order: the
 * map's shape, |now - ts| <= window_s, the principal (lookup), the signature.
 * Returns TKM_OK, or TKM_E_UNAUTHENTICATED with claim->reason and a sentence
 * in why, or a local error with reason TKM_DEVSIG_R_LOCAL: the lookup's,
 * unchanged, TKM_E_NOMEM, or TKM_E_INVALID_ARG for a NULL argument.
 * claim->principal is filled as soon as the map parses, so a refusal can be
 * logged with it; claim->ts and claim->nonce on TKM_OK are what the replay
 * check (tkm_nonce_check_and_add) takes next. Never records the nonce itself.
 */
TKM_MUST_CHECK tkm_err tkm_devsig_verify(const tkm_cbor_val *auth, const char *method,
                                         const uint8_t *params, size_t params_len, uint64_t now,
                                         uint64_t window_s, tkm_devsig_lookup_fn lookup,
                                         void *lookup_arg, tkm_devsig_claim *claim, char *why,
                                         size_t why_len);

/*
 * TKM_OK when v (a decoded value, typically a params map) is deterministic
 * CBOR per RFC 8949 4.2.1: every integer, length and count in its shortest
 * form, and every map's keys in bytewise order of their encodings, at every
 * depth. Otherwise TKM_E_BAD_REQUEST with the first problem in why.
 */
TKM_MUST_CHECK tkm_err tkm_devsig_check_canonical(const tkm_cbor_val *v, char *why, size_t why_len);

/* ---- Device keys ---- */

/* A new random key pair. */
TKM_MUST_CHECK tkm_err tkm_devsig_key_generate(tkm_devsig_key **out);

/* The key pair of a 32-byte seed (RFC 8032 private key), for tests and vectors. */
TKM_MUST_CHECK tkm_err tkm_devsig_key_from_seed(const uint8_t seed[static TKM_DEVSIG_SEED_LEN],
                                                tkm_devsig_key **out);

/* NULL-safe; wipes the secret key. */
void tkm_devsig_key_free(tkm_devsig_key *key);

void tkm_devsig_key_public(const tkm_devsig_key *key, uint8_t pk[static TKM_DEVSIG_PK_LEN]);

/*
 * Write key to a new file at path in the key file format (top of this file):
 * created with O_EXCL (an existing file is TKM_E_ALREADY_EXISTS), mode 0600,
 * fsync'd together with its directory. A failure removes the partial file.
 * Other failures are TKM_E_IO; why names the step and the errno text.
 */
TKM_MUST_CHECK tkm_err tkm_devsig_key_write(const char *path, const tkm_devsig_key *key, char *why,
                                            size_t why_len);

/*
 * Read a key file. Refused (TKM_E_CONFIG, with why): not a regular file, not
 * owned by the effective user, readable or writable by group or others, or
 * not exactly in the key file format. A missing file is TKM_E_NOT_FOUND, other
 * read errors TKM_E_IO. Every copy of the seed is wiped before returning.
 */
TKM_MUST_CHECK tkm_err tkm_devsig_key_read(const char *path, tkm_devsig_key **out, char *why,
                                           size_t why_len);

#endif /* TKM_DEVSIG_H */
