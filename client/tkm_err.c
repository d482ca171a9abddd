/*
 * tkm_err.c - names and sentences for tkm_err, and the mapping to and from
 * the closed set of wire error codes in docs/protocol.md.
 */
#include <string.h>

#include "tkm/error.h"

static const struct {
	tkm_err err;
	const char *wire;
	const char *text;
} tkm_err_table[] = {
    {TKM_OK, NULL, "success"},
    {TKM_E_BAD_REQUEST, "bad_request", "bad request"},
    {TKM_E_UNAUTHENTICATED, "unauthenticated", "not authenticated"},
    {TKM_E_PERMISSION_DENIED, "permission_denied", "permission denied"},
    {TKM_E_NOT_FOUND, "not_found", "not found"},
    {TKM_E_ALREADY_EXISTS, "already_exists", "already exists"},
    {TKM_E_FAILED_PRECONDITION, "failed_precondition", "failed precondition"},
    {TKM_E_CONFLICT, "conflict", "conflict"},
    {TKM_E_RESOURCE_EXHAUSTED, "resource_exhausted", "resource exhausted"},
    {TKM_E_UNAVAILABLE, "unavailable", "service unavailable"},
    {TKM_E_INTERNAL, "internal", "internal error"},
    {TKM_E_UNSUPPORTED_VERSION, "unsupported_version", "unsupported protocol version"},
    {TKM_E_NOMEM, NULL, "out of memory"},
    {TKM_E_INVALID_ARG, NULL, "invalid argument"},
    {TKM_E_TIMEOUT, NULL, "timed out"},
    {TKM_E_CONNECT, NULL, "cannot connect"},
    {TKM_E_PROTOCOL, NULL, "malformed reply from server"},
    {TKM_E_CLOSED, NULL, "connection closed"},
    {TKM_E_IO, NULL, "input/output error"},
    {TKM_E_CONFIG, NULL, "configuration error"},
    {TKM_E_HSM, NULL, "HSM error"},
    {TKM_E_CRYPTO, NULL, "cryptographic failure"},
};

#define TKM_ERR_TABLE_LEN (sizeof(tkm_err_table) / sizeof(tkm_err_table[0]))

const char *tkm_strerror(tkm_err err)
{
	for (size_t i = 0; i < TKM_ERR_TABLE_LEN; i++) {
		if (tkm_err_table[i].err == err) {
			return tkm_err_table[i].text;
		}
	}
	return "unknown error";
}

const char *tkm_err_wire_name(tkm_err err)
{
	for (size_t i = 0; i < TKM_ERR_TABLE_LEN; i++) {
		if (tkm_err_table[i].err == err && tkm_err_table[i].wire != NULL) {
			return tkm_err_table[i].wire;
		}
	}
	return "internal";
}

tkm_err tkm_err_from_wire_name(const char *name, size_t len)
{
	if (name == NULL) {
		return TKM_E_PROTOCOL;
	}
	for (size_t i = 0; i < TKM_ERR_TABLE_LEN; i++) {
		const char *wire = tkm_err_table[i].wire;
		if (wire != NULL && strlen(wire) == len &&
		    memcmp(wire, name, len) == 0) { /* lint: memcmp ok (public data) */
			return tkm_err_table[i].err;
		}
	}
	return TKM_E_PROTOCOL;
}
