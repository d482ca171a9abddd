/*
 * tkm_wire.h - the tkm RPC envelope: requests and responses as specified in
 * docs/protocol.md. libtkm and tkmd both link this one implementation.
 *
 * Decoding checks the envelope only (keys, types, version, method syntax);
 * whether a method exists and what its params mean is the service's business.
 */
#ifndef TKM_WIRE_H
#define TKM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm_cbor.h"

#define TKM_PROTOCOL_VERSION   1
#define TKM_WIRE_METHOD_MAX    64  /* longest method name, in bytes */
#define TKM_WIRE_MESSAGE_MAX   200 /* longest error message we send, in bytes */
#define TKM_WIRE_DEFAULT_MAXSZ (1024 * 1024)

typedef struct tkm_wire_request {
	uint64_t v;
	uint64_t id;                          /* 0 when the id could not be read */
	bool has_id;                          /* id was read, so an error reply can echo it */
	char method[TKM_WIRE_METHOD_MAX + 1]; /* NUL-terminated, [a-z0-9._-]+ */
	const tkm_cbor_val *params;           /* a map; lives in the doc */
	const tkm_cbor_val *auth;             /* a map, or NULL when absent */
} tkm_wire_request;

/*
 * Decode a request. On TKM_OK, *doc owns the values req points into. On
 * failure *doc is NULL, why holds the first problem found, and req->id /
 * req->has_id are set as far as the id could be read, so the error reply can
 * echo it. Returns TKM_E_BAD_REQUEST, or TKM_E_UNSUPPORTED_VERSION for a
 * well-formed request whose "v" is not TKM_PROTOCOL_VERSION.
 */
TKM_MUST_CHECK tkm_err tkm_wire_decode_request(const uint8_t *buf, size_t len,
                                               const tkm_cbor_limits *lim, tkm_cbor_doc **doc,
                                               tkm_wire_request *req, char *why, size_t why_len);

/*
 * Encode a request. params is one encoded CBOR map (NULL means an empty map);
 * auth is one encoded CBOR map or NULL to leave "auth" out.
 */
void tkm_wire_encode_request(tkm_cbor_w *w, uint64_t id, const char *method, const uint8_t *params,
                             size_t params_len, const uint8_t *auth, size_t auth_len);

/* Encode a success reply; result is one encoded CBOR item (NULL means null). */
void tkm_wire_encode_result(tkm_cbor_w *w, uint64_t id, const uint8_t *result, size_t result_len);

/*
 * Encode an error reply. code must be a wire code (TKM_E_BAD_REQUEST ..
 * TKM_E_UNSUPPORTED_VERSION); a local code is sent as "internal". message is
 * cut to TKM_WIRE_MESSAGE_MAX bytes at a UTF-8 boundary. details is one
 * encoded CBOR map or NULL.
 */
void tkm_wire_encode_error(tkm_cbor_w *w, uint64_t id, tkm_err code, const char *message,
                           const uint8_t *details, size_t details_len);

typedef struct tkm_wire_response {
	uint64_t v;
	uint64_t id;
	bool is_error;
	const tkm_cbor_val *result; /* when !is_error: any item */
	tkm_err code;               /* when is_error: a wire code */
	const char *message;        /* when is_error: not NUL-terminated */
	size_t message_len;
	const tkm_cbor_val *details; /* when is_error: a map, or NULL */
} tkm_wire_response;

/*
 * Decode a response, as strictly as a request. A reply that is not a valid
 * envelope, or names an error code outside the closed set, is TKM_E_PROTOCOL.
 */
TKM_MUST_CHECK tkm_err tkm_wire_decode_response(const uint8_t *buf, size_t len,
                                                const tkm_cbor_limits *lim, tkm_cbor_doc **doc,
                                                tkm_wire_response *resp, char *why, size_t why_len);

#endif /* TKM_WIRE_H */
