/*
 * tkm/client.h - libtkm, the client library of the tkm key management service.
 *
 * Thread safety: a tkm_client may be shared by any number of threads. Each
 * call runs on its own nng context, so calls from different threads proceed
 * concurrently and never see each other's replies. All results and errors are
 * returned through caller-owned structs; the library keeps no per-call state
 * in the handle. tkm_client_close() must not race with calls on the same
 * handle: join the callers first. The same holds for the functions that set
 * or clear the handle's credentials (tkm_client_use_device_key,
 * tkm_client_use_session, tkm_client_clear_credentials): set them before the
 * handle is shared, or join the callers first. Calls that run concurrently
 * with the same credentials are fine: each signs with its own nonce.
 *
 * Resends: libtkm switches off nng's automatic request resend. A call that
 * gets no reply within its timeout fails with TKM_E_TIMEOUT; it may or may not
 * have been applied. State-changing methods take an idempotency key so that a
 * caller can retry safely (docs/protocol.md).
 */
#ifndef TKM_CLIENT_H
#define TKM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TKM_DEFAULT_TIMEOUT_MS 10000

typedef struct tkm_client tkm_client;

typedef struct tkm_client_opts {
	int timeout_ms;              /* default per-call timeout; 0 = TKM_DEFAULT_TIMEOUT_MS */
	size_t max_message_size;     /* largest reply accepted; 0 = 1 MiB */
	const char *tls_ca_file;     /* tls+tcp:// only: PEM file of trusted CAs (required) */
	const char *tls_server_name; /* tls+tcp:// only: name to verify; default: the URL host */
} tkm_client_opts;

/*
 * What the server said when a call failed with a wire error code, or a local
 * description otherwise. message is always NUL-terminated.
 */
typedef struct tkm_status {
	tkm_err code;
	char message[256];
} tkm_status;

/* The library's version string, such as "0.1.0". */
TKM_API const char *tkm_version(void);

/*
 * Connect to url: ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT. opts may
 * be NULL for the defaults. The connection is made synchronously, so a
 * server that is not there fails here with TKM_E_CONNECT and a reason in st
 * (st may be NULL).
 */
TKM_API TKM_MUST_CHECK tkm_err tkm_client_open(const char *url, const tkm_client_opts *opts,
                                               tkm_status *st, tkm_client **out);

/* NULL-safe; wipes the handle's credentials. */
TKM_API void tkm_client_close(tkm_client *c);

typedef struct tkm_ping_result {
	bool pong;
	int64_t time; /* server clock, unix seconds */
} tkm_ping_result;

typedef struct tkm_server_info {
	char server_version[32];
	uint64_t protocol_version;
	uint64_t uptime_s;
	bool hsm_configured;
	char hsm_token_label[33]; /* empty unless hsm_configured */
	char hsm_token_model[17];
	char hsm_manufacturer[33];
	char hsm_serial[17];
} tkm_server_info;

/*
 * Typed calls. timeout_ms 0 means the handle's default. On failure the
 * return value equals st->code (when st is not NULL) and *out is untouched.
 */
TKM_API TKM_MUST_CHECK tkm_err tkm_ping(tkm_client *c, int timeout_ms, tkm_status *st,
                                        tkm_ping_result *out);
TKM_API TKM_MUST_CHECK tkm_err tkm_info(tkm_client *c, int timeout_ms, tkm_status *st,
                                        tkm_server_info *out);

/*
 * Call any method with pre-encoded CBOR params (one map; NULL means empty).
 * On success *result is a malloc'd copy of the encoded "result" item that
 * the caller frees with tkm_free(). For tools and for methods that have no
 * typed call yet.
 */
TKM_API TKM_MUST_CHECK tkm_err tkm_call_raw(tkm_client *c, const char *method,
                                            const uint8_t *params, size_t params_len,
                                            int timeout_ms, tkm_status *st, uint8_t **result,
                                            size_t *result_len);

/* ---- Credentials ---- */

#define TKM_SESSION_TOKEN_LEN 32 /* an operator session token, from auth.login */
#define TKM_DEVICE_PK_LEN     32 /* a device's Ed25519 public key */

/*
 * Make a new device key pair. The secret key goes to a new file at sk_path
 * (mode 0600, refused with TKM_E_ALREADY_EXISTS if the file exists; format in
 * docs/protocol.md); the public key, which the server must be given for the
 * device's principal, is returned in pk.
 */
TKM_API TKM_MUST_CHECK tkm_err tkm_device_keygen(const char *sk_path, uint8_t pk[TKM_DEVICE_PK_LEN],
                                                 tkm_status *st);

/*
 * Sign every later call on c as device principal with the secret key in
 * sk_path, which is loaded into locked memory now. Each call then carries a
 * fresh timestamp and nonce, and its params must be deterministic CBOR
 * (shortest integer forms, map keys in RFC 8949 4.2.1 order), or the call
 * fails with TKM_E_INVALID_ARG before anything is sent. The key file must be
 * a regular file of this user with mode 0600 (or stricter): otherwise
 * TKM_E_CONFIG; a missing file is TKM_E_NOT_FOUND. Replaces any credentials
 * set before; on failure they are left as they were.
 */
TKM_API TKM_MUST_CHECK tkm_err tkm_client_use_device_key(tkm_client *c, const char *principal,
                                                         const char *sk_path, tkm_status *st);

/*
 * Attach the operator session token (from auth.login) to every later call on
 * c. The library keeps a copy in locked memory. Replaces any credentials set
 * before; on failure they are left as they were.
 */
TKM_API TKM_MUST_CHECK tkm_err tkm_client_use_session(tkm_client *c,
                                                      const uint8_t token[TKM_SESSION_TOKEN_LEN],
                                                      tkm_status *st);

/* Send later calls without credentials; wipes the key or token. NULL-safe. */
TKM_API void tkm_client_clear_credentials(tkm_client *c);

/* Free memory returned by libtkm; wipes it first. NULL-safe. */
TKM_API void tkm_free(void *p, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TKM_CLIENT_H */
