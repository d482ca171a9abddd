/*
 * tkm_wire.c - the tkm RPC envelope (docs/protocol.md, "Envelope").
 *
 * Requests and responses are checked key by key: every key known, every type
 * right, nothing missing, nothing extra. The first problem is reported in
 * words a client developer can act on; nothing from the peer is echoed
 * except a method name that has already passed its syntax check.
 */
#include <stdio.h>
#include <string.h>

#include "tkm_why.h"
#include "tkm_wire.h"

static bool method_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > TKM_WIRE_METHOD_MAX || s[0] < 'a' || s[0] > 'z') {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
		          c == '_' || c == '-';
		if (!ok) {
			return false;
		}
	}
	return true;
}

/* One expected key of a map: its name, its type, and whether it must be there. */
typedef struct tkm_wire_field {
	const char *name;
	tkm_cbor_type type;
	bool required;
	bool any_type; /* type is not checked */
} tkm_wire_field;

/*
 * True when every key of map is one of fields with the right type and every
 * required field is present; otherwise why names the first offending key.
 */
static bool fields_valid(const tkm_cbor_val *map, const tkm_wire_field *fields, size_t nfields,
                         char *why, size_t why_len)
{
	for (const tkm_cbor_val *k = tkm_cbor_first(map); k != NULL;) {
		const tkm_cbor_val *v = tkm_cbor_next(k);
		const char *name = NULL;
		size_t name_len = 0;
		bool known = false;

		(void)tkm_cbor_get_text(k, &name, &name_len);
		for (size_t i = 0; i < nfields; i++) {
			if (tkm_cbor_text_eq(k, fields[i].name)) {
				known = true;
				if (!fields[i].any_type && tkm_cbor_type_of(v) != fields[i].type) {
					tkm_why_set(why, why_len, "key \"%s\" must be a %s",
					            fields[i].name,
					            tkm_cbor_type_name(fields[i].type));
					return false;
				}
			}
		}
		if (!known) {
			char shown[33];
			size_t n = name_len < sizeof(shown) - 1 ? name_len : sizeof(shown) - 1;
			/* Show only printable ASCII of the peer's key. */
			for (size_t i = 0; i < n; i++) {
				shown[i] = (name[i] >= 0x20 && name[i] < 0x7f && name[i] != '"')
				               ? name[i]
				               : '?';
			}
			shown[n] = '\0';
			tkm_why_set(why, why_len, "unknown key \"%s\"%s", shown,
			            name_len > n ? " (cut)" : "");
			return false;
		}
		k = tkm_cbor_next(v);
	}
	for (size_t i = 0; i < nfields; i++) {
		if (fields[i].required && tkm_cbor_map_get(map, fields[i].name) == NULL) {
			tkm_why_set(why, why_len, "missing key \"%s\"", fields[i].name);
			return false;
		}
	}
	return true;
}

static const tkm_wire_field tkm_wire_request_fields[] = {
    {"v", TKM_CBOR_UINT, true, false},      {"id", TKM_CBOR_UINT, true, false},
    {"method", TKM_CBOR_TEXT, true, false}, {"params", TKM_CBOR_MAP, true, false},
    {"auth", TKM_CBOR_MAP, false, false},
};

tkm_err tkm_wire_decode_request(const uint8_t *buf, size_t len, const tkm_cbor_limits *lim,
                                tkm_cbor_doc **doc, tkm_wire_request *req, char *why,
                                size_t why_len)
{
	tkm_cbor_doc *d = NULL;
	const tkm_cbor_val *root;
	const char *method;
	size_t method_len;
	tkm_err err;

	memset(req, 0, sizeof(*req));
	*doc = NULL;
	err = tkm_cbor_decode(buf, len, lim, &d, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = TKM_E_BAD_REQUEST;
	root = tkm_cbor_root(d);
	if (!tkm_cbor_is(root, TKM_CBOR_MAP)) {
		tkm_why_set(why, why_len, "request must be a map, got a %s",
		            tkm_cbor_type_name(tkm_cbor_type_of(root)));
		goto out;
	}
	/* Read the id first, so that every later error can echo it. */
	req->has_id = tkm_cbor_get_uint(tkm_cbor_map_get(root, "id"), &req->id);
	if (!req->has_id) {
		req->id = 0;
	}
	/* The version decides how to read the rest, so it is checked next. */
	if (tkm_cbor_get_uint(tkm_cbor_map_get(root, "v"), &req->v) &&
	    req->v != TKM_PROTOCOL_VERSION) {
		err = TKM_E_UNSUPPORTED_VERSION;
		tkm_why_set(why, why_len,
		            "protocol version %llu is not supported; this server speaks %d",
		            (unsigned long long)req->v, TKM_PROTOCOL_VERSION);
		goto out;
	}
	if (!fields_valid(root, tkm_wire_request_fields,
	                  sizeof(tkm_wire_request_fields) / sizeof(tkm_wire_request_fields[0]), why,
	                  why_len)) {
		goto out;
	}
	(void)tkm_cbor_get_text(tkm_cbor_map_get(root, "method"), &method, &method_len);
	if (!method_name_valid(method, method_len)) {
		tkm_why_set(why, why_len, "method name must be 1 to 64 characters of [a-z0-9._-]");
		goto out;
	}
	memcpy(req->method, method, method_len);
	req->method[method_len] = '\0';
	req->params = tkm_cbor_map_get(root, "params");
	req->auth = tkm_cbor_map_get(root, "auth");
	*doc = d;
	d = NULL;
	err = TKM_OK;
out:
	if (err != TKM_OK) {
		req->params = NULL;
		req->auth = NULL;
	}
	tkm_cbor_doc_free(d);
	return err;
}

static void put_envelope(tkm_cbor_w *w, size_t pairs, uint64_t id)
{
	tkm_cbor_put_map(w, pairs);
	tkm_cbor_put_cstr(w, "v");
	tkm_cbor_put_uint(w, TKM_PROTOCOL_VERSION);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
}

static const uint8_t tkm_wire_empty_map[] = {0xa0};

void tkm_wire_encode_request(tkm_cbor_w *w, uint64_t id, const char *method, const uint8_t *params,
                             size_t params_len, const uint8_t *auth, size_t auth_len)
{
	put_envelope(w, auth != NULL ? 5 : 4, id);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, method);
	tkm_cbor_put_cstr(w, "params");
	if (params == NULL) {
		tkm_cbor_put_raw(w, tkm_wire_empty_map, sizeof(tkm_wire_empty_map));
	} else {
		tkm_cbor_put_raw(w, params, params_len);
	}
	if (auth != NULL) {
		tkm_cbor_put_cstr(w, "auth");
		tkm_cbor_put_raw(w, auth, auth_len);
	}
}

void tkm_wire_encode_result(tkm_cbor_w *w, uint64_t id, const uint8_t *result, size_t result_len)
{
	put_envelope(w, 3, id);
	tkm_cbor_put_cstr(w, "result");
	if (result == NULL) {
		tkm_cbor_put_null(w);
	} else {
		tkm_cbor_put_raw(w, result, result_len);
	}
}

/* Cut to TKM_WIRE_MESSAGE_MAX bytes on a character boundary; mask invalid UTF-8. */
static size_t clean_message(const char *in, char out[static TKM_WIRE_MESSAGE_MAX])
{
	size_t len = in == NULL ? 0 : strnlen(in, TKM_WIRE_MESSAGE_MAX + 1);

	if (len > TKM_WIRE_MESSAGE_MAX) {
		len = TKM_WIRE_MESSAGE_MAX;
		while (len > 0 && ((uint8_t)in[len] & 0xc0) == 0x80) {
			len--;
		}
	}
	if (len > 0) {
		memcpy(out, in, len);
	}
	if (len > 0 && !tkm_cbor_utf8_valid((const uint8_t *)out, len)) {
		for (size_t i = 0; i < len; i++) {
			if ((uint8_t)out[i] >= 0x80) {
				out[i] = '?';
			}
		}
	}
	return len;
}

void tkm_wire_encode_error(tkm_cbor_w *w, uint64_t id, tkm_err code, const char *message,
                           const uint8_t *details, size_t details_len)
{
	char msg[TKM_WIRE_MESSAGE_MAX];
	size_t msg_len = clean_message(message, msg);

	put_envelope(w, 3, id);
	tkm_cbor_put_cstr(w, "error");
	tkm_cbor_put_map(w, details != NULL ? 3 : 2);
	tkm_cbor_put_cstr(w, "code");
	tkm_cbor_put_cstr(w, tkm_err_wire_name(code));
	tkm_cbor_put_cstr(w, "message");
	tkm_cbor_put_text(w, msg, msg_len);
	if (details != NULL) {
		tkm_cbor_put_cstr(w, "details");
		tkm_cbor_put_raw(w, details, details_len);
	}
}

static const tkm_wire_field tkm_wire_response_fields[] = {
    {"v", TKM_CBOR_UINT, true, false},
    {"id", TKM_CBOR_UINT, true, false},
    {"result", TKM_CBOR_NULL, false, true},
    {"error", TKM_CBOR_MAP, false, false},
};

static const tkm_wire_field tkm_wire_error_fields[] = {
    {"code", TKM_CBOR_TEXT, true, false},
    {"message", TKM_CBOR_TEXT, true, false},
    {"details", TKM_CBOR_MAP, false, false},
};

tkm_err tkm_wire_decode_response(const uint8_t *buf, size_t len, const tkm_cbor_limits *lim,
                                 tkm_cbor_doc **doc, tkm_wire_response *resp, char *why,
                                 size_t why_len)
{
	tkm_cbor_doc *d = NULL;
	const tkm_cbor_val *root, *error;
	const char *code;
	size_t code_len;
	tkm_err err;

	memset(resp, 0, sizeof(*resp));
	*doc = NULL;
	err = tkm_cbor_decode(buf, len, lim, &d, why, why_len);
	if (err != TKM_OK) {
		if (err == TKM_E_BAD_REQUEST) {
			err = TKM_E_PROTOCOL;
		}
		goto out;
	}
	err = TKM_E_PROTOCOL;
	root = tkm_cbor_root(d);
	if (!tkm_cbor_is(root, TKM_CBOR_MAP)) {
		tkm_why_set(why, why_len, "reply is not a map");
		goto out;
	}
	if (!fields_valid(root, tkm_wire_response_fields,
	                  sizeof(tkm_wire_response_fields) / sizeof(tkm_wire_response_fields[0]),
	                  why, why_len)) {
		goto out;
	}
	error = tkm_cbor_map_get(root, "error");
	resp->result = tkm_cbor_map_get(root, "result");
	resp->is_error = error != NULL;
	if ((error == NULL) == (resp->result == NULL)) {
		tkm_why_set(why, why_len,
		            "reply must hold exactly one of \"result\" and \"error\"");
		goto out;
	}
	(void)tkm_cbor_get_uint(tkm_cbor_map_get(root, "v"), &resp->v);
	(void)tkm_cbor_get_uint(tkm_cbor_map_get(root, "id"), &resp->id);
	if (resp->v != TKM_PROTOCOL_VERSION) {
		tkm_why_set(why, why_len, "reply speaks another protocol version");
		goto out;
	}
	if (resp->is_error) {
		if (!fields_valid(error, tkm_wire_error_fields,
		                  sizeof(tkm_wire_error_fields) / sizeof(tkm_wire_error_fields[0]),
		                  why, why_len)) {
			goto out;
		}
		(void)tkm_cbor_get_text(tkm_cbor_map_get(error, "code"), &code, &code_len);
		resp->code = tkm_err_from_wire_name(code, code_len);
		if (resp->code == TKM_E_PROTOCOL) {
			tkm_why_set(why, why_len, "reply names an unknown error code");
			goto out;
		}
		(void)tkm_cbor_get_text(tkm_cbor_map_get(error, "message"), &resp->message,
		                        &resp->message_len);
		resp->details = tkm_cbor_map_get(error, "details");
	}
	*doc = d;
	d = NULL;
	err = TKM_OK;
out:
	tkm_cbor_doc_free(d);
	return err;
}
