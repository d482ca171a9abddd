/*
 * wire_test.c - the RPC envelope (client/tkm_wire.c): request and response
 * round trips, and each malformed request class of docs/protocol.md answered
 * with the right error code and a reason that names the problem.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tkm_test.h"
#include "tkm_wire.h"

typedef void (*build_fn)(tkm_cbor_w *w);

/* Encode with build, decode as a request, check code and reason. */
static void expect_request(build_fn build, tkm_err want, const char *reason, bool want_id)
{
	tkm_cbor_w *w = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_wire_request req;
	const uint8_t *p = NULL;
	size_t len = 0;
	char why[160] = "";

	if (tkm_cbor_w_new(1 << 20, &w) != TKM_OK) {
		abort();
	}
	build(w);
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_OK);
	tkm_err err = tkm_wire_decode_request(p, len, NULL, &doc, &req, why, sizeof(why));
	CHECK_EQ_INT(err, want);
	CHECK(strstr(why, reason) != NULL);
	if (err != want || strstr(why, reason) == NULL) {
		fprintf(stderr, "  got %s \"%s\", want %s \"%s\"\n", tkm_err_wire_name(err), why,
		        tkm_err_wire_name(want), reason);
	}
	CHECK(want_id == req.has_id);
	if (want_id) {
		CHECK_EQ_INT(req.id, 42);
	}
	CHECK((err == TKM_OK) == (doc != NULL));
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
}

static void head(tkm_cbor_w *w, size_t pairs)
{
	tkm_cbor_put_map(w, pairs);
	tkm_cbor_put_cstr(w, "v");
	tkm_cbor_put_uint(w, 1);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, 42);
}

static void good(tkm_cbor_w *w)
{
	head(w, 4);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

static void not_a_map(tkm_cbor_w *w)
{
	tkm_cbor_put_array(w, 1);
	tkm_cbor_put_uint(w, 1);
}

static void v_as_text(tkm_cbor_w *w)
{
	tkm_cbor_put_map(w, 4);
	tkm_cbor_put_cstr(w, "v");
	tkm_cbor_put_cstr(w, "1");
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, 42);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

static void id_as_text(tkm_cbor_w *w)
{
	tkm_cbor_put_map(w, 4);
	tkm_cbor_put_cstr(w, "v");
	tkm_cbor_put_uint(w, 1);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_cstr(w, "42");
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

static void method_as_int(tkm_cbor_w *w)
{
	head(w, 4);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_uint(w, 7);
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

static void params_as_array(tkm_cbor_w *w)
{
	head(w, 4);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_array(w, 0);
}

static void auth_as_text(tkm_cbor_w *w)
{
	head(w, 5);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
	tkm_cbor_put_cstr(w, "auth");
	tkm_cbor_put_cstr(w, "x");
}

static void missing_params(tkm_cbor_w *w)
{
	head(w, 3);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
}

static void missing_v(tkm_cbor_w *w)
{
	tkm_cbor_put_map(w, 3);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, 42);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

static void extra_key(tkm_cbor_w *w)
{
	head(w, 5);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
	tkm_cbor_put_cstr(w, "secret\n\x01");
	tkm_cbor_put_uint(w, 1);
}

static void duplicate_key(tkm_cbor_w *w)
{
	head(w, 5);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.info");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

static void version_two(tkm_cbor_w *w)
{
	tkm_cbor_put_map(w, 4);
	tkm_cbor_put_cstr(w, "v");
	tkm_cbor_put_uint(w, 2);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, 42);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "whatever-v2-has");
	tkm_cbor_put_map(w, 0);
}

static void bad_method_name(tkm_cbor_w *w)
{
	head(w, 4);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "Sys.Ping; drop");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

static void long_method_name(tkm_cbor_w *w)
{
	char name[TKM_WIRE_METHOD_MAX + 2];
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	head(w, 4);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, name);
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

static void deep_params(tkm_cbor_w *w)
{
	head(w, 4);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	for (int i = 0; i < 16; i++) {
		tkm_cbor_put_map(w, 1);
		tkm_cbor_put_cstr(w, "x");
	}
	tkm_cbor_put_uint(w, 0);
}

static void long_string(tkm_cbor_w *w)
{
	static char big[TKM_CBOR_DEFAULT_MAX_STR_LEN + 1];
	memset(big, 'x', sizeof(big));
	head(w, 4);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "note");
	tkm_cbor_put_text(w, big, sizeof(big));
}

static void with_auth(tkm_cbor_w *w)
{
	static const uint8_t auth[] = {0xa1, 0x61, 'p', 0x61, 'x'};
	tkm_wire_encode_request(w, 42, "sys.ping", NULL, 0, auth, sizeof(auth));
}

static void test_requests(void)
{
	expect_request(good, TKM_OK, "", true);
	expect_request(with_auth, TKM_OK, "", true);
	expect_request(not_a_map, TKM_E_BAD_REQUEST, "request must be a map", false);
	expect_request(v_as_text, TKM_E_BAD_REQUEST, "key \"v\" must be a unsigned integer", true);
	expect_request(id_as_text, TKM_E_BAD_REQUEST, "key \"id\" must be a unsigned integer",
	               false);
	expect_request(method_as_int, TKM_E_BAD_REQUEST, "key \"method\" must be a text string",
	               true);
	expect_request(params_as_array, TKM_E_BAD_REQUEST, "key \"params\" must be a map", true);
	expect_request(auth_as_text, TKM_E_BAD_REQUEST, "key \"auth\" must be a map", true);
	expect_request(missing_params, TKM_E_BAD_REQUEST, "missing key \"params\"", true);
	expect_request(missing_v, TKM_E_BAD_REQUEST, "missing key \"v\"", true);
	expect_request(extra_key, TKM_E_BAD_REQUEST, "unknown key \"secret??\"", true);
	expect_request(duplicate_key, TKM_E_BAD_REQUEST, "duplicate map key", false);
	expect_request(version_two, TKM_E_UNSUPPORTED_VERSION, "version 2 is not supported", true);
	expect_request(bad_method_name, TKM_E_BAD_REQUEST, "method name", true);
	expect_request(long_method_name, TKM_E_BAD_REQUEST, "method name", true);
	expect_request(deep_params, TKM_E_BAD_REQUEST, "nesting deeper", false);
	expect_request(long_string, TKM_E_BAD_REQUEST, "longer than the limit", false);
}

static void test_request_fields(void)
{
	tkm_cbor_w *w = NULL, *pw = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_wire_request req;
	const uint8_t *p, *params;
	size_t len, params_len;
	uint64_t ms = 0;

	CHECK_EQ_INT(tkm_cbor_w_new(1024, &pw), TKM_OK);
	tkm_cbor_put_map(pw, 1);
	tkm_cbor_put_cstr(pw, "ms");
	tkm_cbor_put_uint(pw, 250);
	CHECK_EQ_INT(tkm_cbor_w_finish(pw, &params, &params_len), TKM_OK);
	CHECK_EQ_INT(tkm_cbor_w_new(1024, &w), TKM_OK);
	tkm_wire_encode_request(w, 7, "debug.sleep", params, params_len, NULL, 0);
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_OK);
	CHECK_EQ_INT(tkm_wire_decode_request(p, len, NULL, &doc, &req, NULL, 0), TKM_OK);
	CHECK_EQ_INT(req.v, 1);
	CHECK_EQ_INT(req.id, 7);
	CHECK_STR(req.method, "debug.sleep");
	CHECK(req.auth == NULL);
	CHECK(tkm_cbor_get_uint(tkm_cbor_map_get(req.params, "ms"), &ms) && ms == 250);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	tkm_cbor_w_free(pw);
}

static tkm_err roundtrip_response(tkm_cbor_w *w, tkm_cbor_doc **doc, tkm_wire_response *resp)
{
	const uint8_t *p = NULL;
	size_t len = 0;
	tkm_err err = tkm_cbor_w_finish(w, &p, &len);
	if (err != TKM_OK) {
		return err;
	}
	return tkm_wire_decode_response(p, len, NULL, doc, resp, NULL, 0);
}

static void test_responses(void)
{
	static const uint8_t result[] = {0xa1, 0x64, 'p', 'o', 'n', 'g', 0xf5};
	static const uint8_t details[] = {0xa1, 0x61, 'k', 0x01};
	tkm_cbor_w *w = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_wire_response resp;
	bool pong = false;

	CHECK_EQ_INT(tkm_cbor_w_new(4096, &w), TKM_OK);
	tkm_wire_encode_result(w, 9, result, sizeof(result));
	CHECK_EQ_INT(roundtrip_response(w, &doc, &resp), TKM_OK);
	CHECK(!resp.is_error);
	CHECK_EQ_INT(resp.id, 9);
	CHECK(tkm_cbor_get_bool(tkm_cbor_map_get(resp.result, "pong"), &pong) && pong);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);

	/* A null result is a result. */
	CHECK_EQ_INT(tkm_cbor_w_new(4096, &w), TKM_OK);
	tkm_wire_encode_result(w, 10, NULL, 0);
	CHECK_EQ_INT(roundtrip_response(w, &doc, &resp), TKM_OK);
	CHECK(!resp.is_error && tkm_cbor_is(resp.result, TKM_CBOR_NULL));
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);

	/* Errors carry their code, message and details; local codes go out as internal. */
	CHECK_EQ_INT(tkm_cbor_w_new(4096, &w), TKM_OK);
	tkm_wire_encode_error(w, 11, TKM_E_NOT_FOUND, "no such terminal", details, sizeof(details));
	CHECK_EQ_INT(roundtrip_response(w, &doc, &resp), TKM_OK);
	CHECK(resp.is_error);
	CHECK_EQ_INT(resp.code, TKM_E_NOT_FOUND);
	CHECK(resp.message_len == 16 && strncmp(resp.message, "no such terminal", 16) == 0);
	CHECK_EQ_INT(tkm_cbor_count(resp.details), 1);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);

	CHECK_EQ_INT(tkm_cbor_w_new(4096, &w), TKM_OK);
	tkm_wire_encode_error(w, 12, TKM_E_NOMEM, "out of memory", NULL, 0);
	CHECK_EQ_INT(roundtrip_response(w, &doc, &resp), TKM_OK);
	CHECK_EQ_INT(resp.code, TKM_E_INTERNAL);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);

	/* Long messages are cut on a character boundary; bad UTF-8 is masked. */
	char long_msg[400];
	memset(long_msg, 'a', sizeof(long_msg));
	memcpy(long_msg + TKM_WIRE_MESSAGE_MAX - 1, "\xc3\xbc", 2);
	long_msg[sizeof(long_msg) - 1] = '\0';
	CHECK_EQ_INT(tkm_cbor_w_new(4096, &w), TKM_OK);
	tkm_wire_encode_error(w, 13, TKM_E_BAD_REQUEST, long_msg, NULL, 0);
	CHECK_EQ_INT(roundtrip_response(w, &doc, &resp), TKM_OK);
	CHECK_EQ_INT(resp.message_len, TKM_WIRE_MESSAGE_MAX - 1);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);

	CHECK_EQ_INT(tkm_cbor_w_new(4096, &w), TKM_OK);
	tkm_wire_encode_error(w, 14, TKM_E_BAD_REQUEST, "bad \xff byte", NULL, 0);
	CHECK_EQ_INT(roundtrip_response(w, &doc, &resp), TKM_OK);
	CHECK(resp.message_len == 10 && strncmp(resp.message, "bad ? byte", 10) == 0);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
}

static void expect_bad_response(const uint8_t *p, size_t len)
{
	tkm_cbor_doc *doc = NULL;
	tkm_wire_response resp;
	char why[128] = "";

	CHECK_EQ_INT(tkm_wire_decode_response(p, len, NULL, &doc, &resp, why, sizeof(why)),
	             TKM_E_PROTOCOL);
	CHECK(doc == NULL);
	CHECK(why[0] != '\0');
}

static void test_bad_responses(void)
{
	/* {"v":1,"id":1} - neither result nor error */
	static const uint8_t neither[] = {0xa2, 0x61, 'v', 0x01, 0x62, 'i', 'd', 0x01};
	/* {"v":1,"id":1,"result":1,"error":{}} - both */
	static const uint8_t both[] = {0xa4, 0x61, 'v', 0x01, 0x62, 'i', 'd', 0x01,
	                               0x66, 'r',  'e', 's',  'u',  'l', 't', 0x01,
	                               0x65, 'e',  'r', 'r',  'o',  'r', 0xa0};
	/* {"v":2,"id":1,"result":1} */
	static const uint8_t v2[] = {0xa3, 0x61, 'v', 0x02, 0x62, 'i', 'd', 0x01,
	                             0x66, 'r',  'e', 's',  'u',  'l', 't', 0x01};
	/* {"v":1,"id":1,"error":{"code":"teapot","message":""}} */
	static const uint8_t teapot[] = {0xa3, 0x61, 'v',  0x01, 0x62, 'i',  'd',  0x01, 0x65,
	                                 'e',  'r',  'r',  'o',  'r',  0xa2, 0x64, 'c',  'o',
	                                 'd',  'e',  0x66, 't',  'e',  'a',  'p',  'o',  't',
	                                 0x67, 'm',  'e',  's',  's',  'a',  'g',  'e',  0x60};
	static const uint8_t not_map[] = {0x01};

	expect_bad_response(neither, sizeof(neither));
	expect_bad_response(both, sizeof(both));
	expect_bad_response(v2, sizeof(v2));
	expect_bad_response(teapot, sizeof(teapot));
	expect_bad_response(not_map, sizeof(not_map));
	expect_bad_response(not_map, 0);
}

static void test_error_names(void)
{
	static const char *names[] = {
	    "bad_request", "unauthenticated",     "permission_denied",
	    "not_found",   "already_exists",      "failed_precondition",
	    "conflict",    "resource_exhausted",  "unavailable",
	    "internal",    "unsupported_version",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		tkm_err e = tkm_err_from_wire_name(names[i], strlen(names[i]));
		CHECK_EQ_INT(e, (tkm_err)(TKM_E_BAD_REQUEST + (int)i));
		CHECK_STR(tkm_err_wire_name(e), names[i]);
		CHECK(strcmp(tkm_strerror(e), "unknown error") != 0);
	}
	CHECK_EQ_INT(tkm_err_from_wire_name("bad_reques", 10), TKM_E_PROTOCOL);
	CHECK_EQ_INT(tkm_err_from_wire_name("bad_requestx", 12), TKM_E_PROTOCOL);
	CHECK_STR(tkm_err_wire_name(TKM_E_TIMEOUT), "internal");
	CHECK_STR(tkm_strerror((tkm_err)9999), "unknown error");
	CHECK_STR(tkm_strerror(TKM_OK), "success");
}

int main(void)
{
	test_requests();
	test_request_fields();
	test_responses();
	test_bad_responses();
	test_error_names();
	return tkm_test_report("wire_test");
}
