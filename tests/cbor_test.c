/*
 * cbor_test.c - the bounded CBOR decoder and the writer (client/tkm_cbor.c).
 *
 * Well-formed cases include encodings from RFC 8949 Appendix A ("Examples of
 * Encoded CBOR Data Items"); the rest exercise every rejection the decoder
 * promises, each checked for its error code and its message.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tkm_cbor.h"
#include "tkm_test.h"

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; hex[i] != '\0';) {
		unsigned v;
		if (hex[i] == ' ') {
			i++;
			continue;
		}
		if (n == cap || hex[i + 1] == '\0' || sscanf(hex + i, "%2x", &v) != 1) {
			abort();
		}
		out[n++] = (uint8_t)v;
		i += 2;
	}
	return n;
}

/* Decode hex with limits lim (NULL: defaults); returns the error and the reason. */
static tkm_err decode_hex(const char *hex, const tkm_cbor_limits *lim, tkm_cbor_doc **doc,
                          char *why, size_t why_len)
{
	static uint8_t buf[4096];
	size_t n = unhex(hex, buf, sizeof(buf));
	return tkm_cbor_decode(buf, n, lim, doc, why, why_len);
}

static void expect_ok(const char *hex)
{
	tkm_cbor_doc *doc = NULL;
	char why[128];
	tkm_err err = decode_hex(hex, NULL, &doc, why, sizeof(why));

	CHECK_EQ_INT(err, TKM_OK);
	if (err != TKM_OK) {
		fprintf(stderr, "  %s: %s\n", hex, why);
	}
	tkm_cbor_doc_free(doc);
}

static void expect_bad(const char *hex, const tkm_cbor_limits *lim, tkm_err want,
                       const char *reason)
{
	tkm_cbor_doc *doc = NULL;
	char why[128] = "";
	tkm_err err = decode_hex(hex, lim, &doc, why, sizeof(why));

	CHECK_EQ_INT(err, want);
	CHECK(doc == NULL);
	CHECK(strstr(why, reason) != NULL);
	if (strstr(why, reason) == NULL) {
		fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", hex, why, reason);
	}
	tkm_cbor_doc_free(doc);
}

static void test_rfc8949_examples(void)
{
	/* RFC 8949 Appendix A, Table 6: integers, strings, arrays, maps, simple values. */
	expect_ok("00");
	expect_ok("17");
	expect_ok("1818");
	expect_ok("1903e8");
	expect_ok("1bffffffffffffffff");
	expect_ok("20");
	expect_ok("3903e7");
	expect_ok("3bffffffffffffffff");
	expect_ok("f4");
	expect_ok("f5");
	expect_ok("f6");
	expect_ok("40");
	expect_ok("4401020304");
	expect_ok("60");
	expect_ok("6449455446");
	expect_ok("62c3bc");
	expect_ok("63e6b0b4");
	expect_ok("64f0908591");
	expect_ok("80");
	expect_ok("83010203");
	expect_ok("8301820203820405");
	expect_ok("98190102030405060708090a0b0c0d0e0f101112131415161718181819");
	expect_ok("a0");
	expect_ok("a26161016162820203");
	expect_ok("826161a161626163");
	expect_ok("a56161614161626142616361436164614461656145");
}

static void test_values(void)
{
	tkm_cbor_doc *doc = NULL;
	const tkm_cbor_val *root, *b, *item;
	uint64_t u = 0;
	int64_t i = 0;
	const char *s;
	size_t len = 0;
	const uint8_t *raw;

	/* {"a": 1, "b": [2, 3], "c": -1000, "d": h'0102', "e": true} */
	CHECK_EQ_INT(
	    decode_hex("a5616101616282020361633903e761644201026165f5", NULL, &doc, NULL, 0),
	    TKM_OK);
	root = tkm_cbor_root(doc);
	CHECK_EQ_INT(tkm_cbor_type_of(root), TKM_CBOR_MAP);
	CHECK_EQ_INT(tkm_cbor_count(root), 5);
	CHECK(tkm_cbor_get_uint(tkm_cbor_map_get(root, "a"), &u) && u == 1);
	CHECK(!tkm_cbor_get_text(tkm_cbor_map_get(root, "a"), &s, &len));
	b = tkm_cbor_map_get(root, "b");
	CHECK_EQ_INT(tkm_cbor_count(b), 2);
	item = tkm_cbor_first(b);
	CHECK(tkm_cbor_get_uint(item, &u) && u == 2);
	item = tkm_cbor_next(item);
	CHECK(tkm_cbor_get_uint(item, &u) && u == 3);
	CHECK(tkm_cbor_next(item) == NULL);
	tkm_cbor_raw(b, &raw, &len);
	CHECK_EQ_INT(len, 3);
	CHECK(len == 3 && raw[0] == 0x82 && raw[1] == 0x02 && raw[2] == 0x03);
	CHECK(tkm_cbor_get_int(tkm_cbor_map_get(root, "c"), &i) && i == -1000);
	CHECK(!tkm_cbor_get_uint(tkm_cbor_map_get(root, "c"), &u));
	CHECK(tkm_cbor_get_bytes(tkm_cbor_map_get(root, "d"), &raw, &len) && len == 2 &&
	      raw[1] == 0x02);
	bool flag = false;
	CHECK(tkm_cbor_get_bool(tkm_cbor_map_get(root, "e"), &flag) && flag);
	CHECK(tkm_cbor_map_get(root, "zz") == NULL);
	CHECK(tkm_cbor_map_get(b, "a") == NULL);
	tkm_cbor_raw(root, &raw, &len);
	CHECK_EQ_INT(len, 22);
	tkm_cbor_doc_free(doc);

	/* Integers at the edges of int64. */
	CHECK_EQ_INT(decode_hex("3b7fffffffffffffff", NULL, &doc, NULL, 0), TKM_OK);
	CHECK(tkm_cbor_get_int(tkm_cbor_root(doc), &i) && i == INT64_MIN);
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(decode_hex("3b8000000000000000", NULL, &doc, NULL, 0), TKM_OK);
	CHECK(!tkm_cbor_get_int(tkm_cbor_root(doc), &i));
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(decode_hex("1b8000000000000000", NULL, &doc, NULL, 0), TKM_OK);
	CHECK(!tkm_cbor_get_int(tkm_cbor_root(doc), &i));
	CHECK(tkm_cbor_get_uint(tkm_cbor_root(doc), &u) && u == 0x8000000000000000ULL);
	tkm_cbor_doc_free(doc);
}

static void test_rejections(void)
{
	tkm_cbor_limits small = tkm_cbor_default_limits();

	expect_bad("", NULL, TKM_E_BAD_REQUEST, "empty message");
	/* Truncation: in a head, in a string, in an array, in a map. */
	expect_bad("19 03", NULL, TKM_E_BAD_REQUEST, "truncated");
	expect_bad("1a000000", NULL, TKM_E_BAD_REQUEST, "truncated");
	expect_bad("1903", NULL, TKM_E_BAD_REQUEST, "truncated");
	expect_bad("6261", NULL, TKM_E_BAD_REQUEST, "truncated");
	expect_bad("8201", NULL, TKM_E_BAD_REQUEST, "container count exceeds");
	expect_bad("821903", NULL, TKM_E_BAD_REQUEST, "truncated");
	expect_bad("a1616101a0", NULL, TKM_E_BAD_REQUEST, "trailing");
	expect_bad("a16161", NULL, TKM_E_BAD_REQUEST, "truncated");
	expect_bad("0101", NULL, TKM_E_BAD_REQUEST, "trailing bytes");
	expect_bad("a0a0", NULL, TKM_E_BAD_REQUEST, "trailing bytes");
	/* Indefinite lengths, tags, floats, undefined, reserved values. */
	expect_bad("9f01ff", NULL, TKM_E_BAD_REQUEST, "indefinite");
	expect_bad("bfff", NULL, TKM_E_BAD_REQUEST, "indefinite");
	expect_bad("5f42010243030405ff", NULL, TKM_E_BAD_REQUEST, "indefinite");
	expect_bad("7f657374726561646d696e67ff", NULL, TKM_E_BAD_REQUEST, "indefinite");
	expect_bad("c074323031332d30332d32315432303a30343a30305a", NULL, TKM_E_BAD_REQUEST, "tags");
	expect_bad("f93c00", NULL, TKM_E_BAD_REQUEST, "floating-point");
	expect_bad("fb3ff199999999999a", NULL, TKM_E_BAD_REQUEST, "floating-point");
	expect_bad("f7", NULL, TKM_E_BAD_REQUEST, "undefined");
	expect_bad("ff", NULL, TKM_E_BAD_REQUEST, "");
	expect_bad("1c", NULL, TKM_E_BAD_REQUEST, "malformed");
	/* Text must be UTF-8: bad continuation, overlong, surrogate, beyond U+10FFFF. */
	expect_bad("62c328", NULL, TKM_E_BAD_REQUEST, "UTF-8");
	expect_bad("62c080", NULL, TKM_E_BAD_REQUEST, "UTF-8");
	expect_bad("63eda080", NULL, TKM_E_BAD_REQUEST, "UTF-8");
	expect_bad("64f4908080", NULL, TKM_E_BAD_REQUEST, "UTF-8");
	/* Maps: text keys only, each once, also when nested. */
	expect_bad("a2616101616102", NULL, TKM_E_BAD_REQUEST, "duplicate map key");
	expect_bad("a161788182a2616101616102", NULL, TKM_E_BAD_REQUEST, "duplicate map key");
	expect_bad("a10102", NULL, TKM_E_BAD_REQUEST, "map key is not a text string");
	/* Declared lengths larger than the message: refused before any allocation. */
	expect_bad("5b000000007fffffff00", NULL, TKM_E_BAD_REQUEST, "");
	expect_bad("7bffffffffffffffff", NULL, TKM_E_BAD_REQUEST, "");
	expect_bad("9b00000000ffffffff01", NULL, TKM_E_BAD_REQUEST, "container count exceeds");
	expect_bad("9bffffffffffffffff", NULL, TKM_E_BAD_REQUEST, "");
	expect_bad("bb7fffffffffffffff", NULL, TKM_E_BAD_REQUEST, "");
	expect_bad("a36161016162", NULL, TKM_E_BAD_REQUEST, "container count exceeds");

	/* Nesting: 16 levels pass with the default limit, 17 do not. */
	char deep[128] = "";
	for (int i = 0; i < 16; i++) {
		strncat(deep, "81", sizeof(deep) - strlen(deep) - 1);
	}
	strncat(deep, "8101", sizeof(deep) - strlen(deep) - 1);
	expect_bad(deep, NULL, TKM_E_BAD_REQUEST, "nesting deeper");
	deep[strlen(deep) - 4] = '\0';
	strncat(deep, "01", sizeof(deep) - strlen(deep) - 1);
	expect_ok(deep);
	/* An empty container beyond the limit counts too. */
	small.max_depth = 1;
	expect_bad("8180", &small, TKM_E_BAD_REQUEST, "nesting deeper");
	expect_bad("a1616180", &small, TKM_E_BAD_REQUEST, "nesting deeper");

	/* String length limit, for text and bytes. */
	small = tkm_cbor_default_limits();
	small.max_str_len = 4;
	expect_bad("6568656c6c6f", &small, TKM_E_BAD_REQUEST, "longer than the limit");
	expect_bad("450102030405", &small, TKM_E_BAD_REQUEST, "longer than the limit");
	tkm_cbor_doc *doc = NULL;
	uint8_t four[] = {0x64, 'a', 'b', 'c', 'd'};
	CHECK_EQ_INT(tkm_cbor_decode(four, sizeof(four), &small, &doc, NULL, 0), TKM_OK);
	tkm_cbor_doc_free(doc);
}

static void test_large_map_duplicates(void)
{
	/* A map of 5,000 distinct keys decodes; the same with one repeat does not. */
	tkm_cbor_w *w = NULL;
	tkm_cbor_doc *doc = NULL;
	const uint8_t *p;
	size_t len;
	char key[16];

	for (int dup = 0; dup < 2; dup++) {
		CHECK_EQ_INT(tkm_cbor_w_new(1 << 20, &w), TKM_OK);
		tkm_cbor_put_map(w, 5000);
		for (int i = 0; i < 5000; i++) {
			int n = snprintf(key, sizeof(key), "k%d", (dup && i == 4999) ? 17 : i);
			tkm_cbor_put_text(w, key, (size_t)n);
			tkm_cbor_put_uint(w, (uint64_t)i);
		}
		CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_OK);
		CHECK_EQ_INT(tkm_cbor_decode(p, len, NULL, &doc, NULL, 0),
		             dup ? TKM_E_BAD_REQUEST : TKM_OK);
		if (!dup) {
			uint64_t u = 0;
			CHECK(
			    tkm_cbor_get_uint(tkm_cbor_map_get(tkm_cbor_root(doc), "k4321"), &u) &&
			    u == 4321);
		}
		tkm_cbor_doc_free(doc);
		doc = NULL;
		tkm_cbor_w_free(w);
	}
}

static void check_written(void (*write)(tkm_cbor_w *), const char *hex)
{
	uint8_t want[256];
	size_t want_len = unhex(hex, want, sizeof(want));
	tkm_cbor_w *w = NULL;
	const uint8_t *p = NULL;
	size_t len = 0;

	CHECK_EQ_INT(tkm_cbor_w_new(4096, &w), TKM_OK);
	write(w);
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_OK);
	CHECK_EQ_INT(len, want_len);
	CHECK(len == want_len && memcmp(p, want, len) == 0); /* lint: memcmp ok (public data) */
	tkm_cbor_w_free(w);
}

static void write_rfc_map(tkm_cbor_w *w)
{
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "a");
	tkm_cbor_put_uint(w, 1);
	tkm_cbor_put_cstr(w, "b");
	tkm_cbor_put_array(w, 2);
	tkm_cbor_put_uint(w, 2);
	tkm_cbor_put_uint(w, 3);
}

static void write_ints(tkm_cbor_w *w)
{
	tkm_cbor_put_array(w, 7);
	tkm_cbor_put_uint(w, 0);
	tkm_cbor_put_uint(w, 24);
	tkm_cbor_put_uint(w, 1000000);
	tkm_cbor_put_uint(w, UINT64_MAX);
	tkm_cbor_put_int(w, -1);
	tkm_cbor_put_int(w, -1000);
	tkm_cbor_put_int(w, INT64_MIN);
}

static void write_scalars(tkm_cbor_w *w)
{
	static const uint8_t bytes[] = {1, 2, 3, 4};
	tkm_cbor_put_array(w, 5);
	tkm_cbor_put_bool(w, false);
	tkm_cbor_put_bool(w, true);
	tkm_cbor_put_null(w);
	tkm_cbor_put_bytes(w, bytes, sizeof(bytes));
	tkm_cbor_put_cstr(w, "\xc3\xbc");
}

static void test_writer(void)
{
	tkm_cbor_w *w = NULL;
	const uint8_t *p = NULL;
	size_t len = 0;

	/* RFC 8949 Appendix A encodings, written back byte for byte. */
	check_written(write_rfc_map, "a26161016162820203");
	check_written(write_ints, "870018181a000f42401bffffffffffffffff203903e73b7fffffffffffffff");
	check_written(write_scalars, "85f4f5f64401020304 62c3bc");

	/* The size cap is sticky and reported at the end. */
	CHECK_EQ_INT(tkm_cbor_w_new(8, &w), TKM_OK);
	tkm_cbor_put_cstr(w, "12345678");
	CHECK_EQ_INT(tkm_cbor_w_error(w), TKM_E_RESOURCE_EXHAUSTED);
	tkm_cbor_put_uint(w, 1);
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_E_RESOURCE_EXHAUSTED);
	tkm_cbor_w_free(w);
	CHECK_EQ_INT(tkm_cbor_w_new(0, &w), TKM_E_INVALID_ARG);
	tkm_cbor_w_free(NULL);
	tkm_cbor_doc_free(NULL);

	/* Growth keeps the content intact. */
	CHECK_EQ_INT(tkm_cbor_w_new(1 << 20, &w), TKM_OK);
	tkm_cbor_put_array(w, 10000);
	for (uint64_t i = 0; i < 10000; i++) {
		tkm_cbor_put_uint(w, i);
	}
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_OK);
	tkm_cbor_doc *doc = NULL;
	CHECK_EQ_INT(tkm_cbor_decode(p, len, NULL, &doc, NULL, 0), TKM_OK);
	uint64_t sum = 0, u = 0;
	for (const tkm_cbor_val *v = tkm_cbor_first(tkm_cbor_root(doc)); v; v = tkm_cbor_next(v)) {
		if (tkm_cbor_get_uint(v, &u)) {
			sum += u;
		}
	}
	CHECK_EQ_INT(sum, 49995000);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
}

int main(void)
{
	test_rfc8949_examples();
	test_values();
	test_rejections();
	test_large_map_duplicates();
	test_writer();
	return tkm_test_report("cbor_test");
}
