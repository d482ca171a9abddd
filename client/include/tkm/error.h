/*
 * tkm/error.h - the one error enum of tkm, shared by libtkm, tkmd and the tools.
 *
 * 0 is success. The first block mirrors the closed set of wire error codes in
 * docs/protocol.md; the second block is local to the caller (transport, memory,
 * configuration) and never travels on the wire.
 */
#ifndef TKM_ERROR_H
#define TKM_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TKM_MUST_CHECK __attribute__((warn_unused_result))
#define TKM_API        __attribute__((visibility("default")))
#else
#define TKM_MUST_CHECK
#define TKM_API
#endif

typedef enum tkm_err {
	TKM_OK = 0,

	/* Wire error codes: a server reply carries one of these by name. */
	TKM_E_BAD_REQUEST = 1,
	TKM_E_UNAUTHENTICATED,
	TKM_E_PERMISSION_DENIED,
	TKM_E_NOT_FOUND,
	TKM_E_ALREADY_EXISTS,
	TKM_E_FAILED_PRECONDITION,
	TKM_E_CONFLICT,
	TKM_E_RESOURCE_EXHAUSTED,
	TKM_E_UNAVAILABLE,
	TKM_E_INTERNAL,
	TKM_E_UNSUPPORTED_VERSION,

	/* Local errors: raised by this process, never sent. */
	TKM_E_NOMEM = 100,
	TKM_E_INVALID_ARG,
	TKM_E_TIMEOUT,
	TKM_E_CONNECT,
	TKM_E_PROTOCOL,
	TKM_E_CLOSED,
	TKM_E_IO,
	TKM_E_CONFIG,
	TKM_E_HSM,
	TKM_E_CRYPTO,
} tkm_err;

/* A short human sentence for err; never NULL, also for unknown values. */
TKM_API const char *tkm_strerror(tkm_err err);

/*
 * The wire name of a wire error code ("bad_request", ...). Local errors map to
 * "internal": a server never leaks its local failure modes to a peer.
 */
TKM_API const char *tkm_err_wire_name(tkm_err err);

/*
 * Parse a wire error name of len bytes. Returns TKM_E_PROTOCOL for a name
 * outside the closed set, so that a client never invents a meaning.
 */
TKM_API tkm_err tkm_err_from_wire_name(const char *name, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TKM_ERROR_H */
