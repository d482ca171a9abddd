/*
 * tkm_fuzz_request.c - libFuzzer target for the request decoder, the bounded
 * CBOR decoder under it, and the response decoder libtkm runs on replies.
 *
 * Every input must either decode or fail with a reason; a decoded request is
 * walked completely and its error reply is encoded and decoded again, so the
 * tree links and the writer are exercised on whatever the fuzzer finds.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tkm_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const tkm_cbor_val *v, size_t depth)
{
	size_t n = 1;
	const uint8_t *raw;
	size_t raw_len;

	if (depth > TKM_CBOR_DEFAULT_MAX_DEPTH + 1) {
		abort(); /* the decoder let through more nesting than its limit */
	}
	tkm_cbor_raw(v, &raw, &raw_len);
	if (raw_len == 0) {
		abort();
	}
	for (const tkm_cbor_val *c = tkm_cbor_first(v); c != NULL; c = tkm_cbor_next(c)) {
		n += walk(c, depth + 1);
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_cbor_doc *doc = NULL;
	tkm_wire_request req;
	tkm_wire_response resp;
	tkm_cbor_w *w = NULL;
	char why[160];

	lim.max_str_len = 1024;
	if (tkm_cbor_decode(data, size, &lim, &doc, why, sizeof(why)) == TKM_OK) {
		(void)walk(tkm_cbor_root(doc), 1);
	} else if (why[0] == '\0') {
		abort(); /* every rejection names its reason */
	}
	tkm_cbor_doc_free(doc);
	doc = NULL;

	tkm_err err = tkm_wire_decode_request(data, size, &lim, &doc, &req, why, sizeof(why));
	if (tkm_cbor_w_new(4096, &w) == TKM_OK) {
		const uint8_t *p;
		size_t len;
		tkm_cbor_doc *again = NULL;
		tkm_wire_encode_error(w, req.id, err == TKM_OK ? TKM_E_NOT_FOUND : err, why, NULL,
		                      0);
		if (tkm_cbor_w_finish(w, &p, &len) != TKM_OK ||
		    tkm_wire_decode_response(p, len, NULL, &again, &resp, NULL, 0) != TKM_OK ||
		    resp.id != req.id) {
			abort(); /* our own error replies must always decode */
		}
		tkm_cbor_doc_free(again);
		tkm_cbor_w_free(w);
	}
	tkm_cbor_doc_free(doc);
	doc = NULL;

	if (tkm_wire_decode_response(data, size, &lim, &doc, &resp, why, sizeof(why)) == TKM_OK &&
	    !resp.is_error) {
		(void)walk(resp.result, 1);
	}
	tkm_cbor_doc_free(doc);
	return 0;
}
