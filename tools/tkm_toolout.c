/*
 * tkm_toolout.c - output of untrusted text for the command-line programs
 * (tkm_toolout.h): terminal text with control characters and invalid UTF-8
 * replaced, JSON strings and decoded CBOR values as JSON. It writes only to
 * the FILE it is given and holds nothing.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tkm_cbor.h"
#include "tkm_toolout.h"

/*
 * Length of the valid UTF-8 sequence at p (1..4, within the n > 0 bytes
 * left) and its code point, or 0 when it is invalid (overlong, surrogate,
 * above U+10FFFF, cut short).
 */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];
	uint32_t min, v;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		v = c & 0x1Fu;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		v = c & 0x0Fu;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		v = c & 0x07u;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n) {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80) {
			return 0;
		}
		v = (v << 6) | (p[i] & 0x3Fu);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
		return 0;
	}
	*cp = v;
	return len;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

void tkm_toolout_put_text_n(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;

	while (p < end) {
		uint32_t cp;
		size_t n = utf8_next(p, (size_t)(end - p), &cp);
		if (n == 0 || is_control(cp)) {
			fputc('?', f);
			p += n == 0 ? 1 : n;
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
}

void tkm_toolout_put_text(FILE *f, const char *s)
{
	tkm_toolout_put_text_n(f, s, strlen(s));
}

void tkm_toolout_put_text_lines_n(FILE *f, const char *s, size_t len)
{
	const char *end = s + len;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);

		tkm_toolout_put_text_n(f, s, n);
		if (nl == NULL) {
			break;
		}
		fputc('\n', f);
		s = nl + 1;
	}
}

void tkm_toolout_put_cell(FILE *f, const char *s, size_t len, size_t width)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;
	size_t cols = 0;

	while (p < end) {
		uint32_t cp;
		size_t n = utf8_next(p, (size_t)(end - p), &cp);

		p += n == 0 ? 1 : n;
		cols++;
	}
	tkm_toolout_put_text_n(f, s, len);
	for (size_t pad = (cols < width ? width - cols : 0) + 2; pad > 0; pad--) {
		fputc(' ', f);
	}
}

bool tkm_toolout_text_ok(const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;

	if (len == 0 || len > max) {
		return false;
	}
	while (p < end) {
		uint32_t cp;
		size_t n = utf8_next(p, (size_t)(end - p), &cp);

		if (n == 0 || is_control(cp)) {
			return false;
		}
		p += n;
	}
	return true;
}

void tkm_toolout_put_json_str_n(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;

	fputc('"', f);
	while (p < end) {
		uint32_t cp;
		size_t n = utf8_next(p, (size_t)(end - p), &cp);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		switch (cp) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (is_control(cp)) {
				fprintf(f, "\\u%04x", (unsigned)cp);
			} else {
				fwrite(p, 1, n, f);
			}
			break;
		}
		p += n;
	}
	fputc('"', f);
}

void tkm_toolout_put_json_str(FILE *f, const char *s)
{
	tkm_toolout_put_json_str_n(f, s, strlen(s));
}

void tkm_toolout_put_hex(FILE *f, const uint8_t *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		fputc(hex[p[i] >> 4], f);
		fputc(hex[p[i] & 0x0f], f);
	}
}

/*
 * The n of a negative integer (-1 - n) from its encoding: tkm_cbor_get_int
 * cannot hold those below INT64_MIN.
 */
static bool nint_arg(const tkm_cbor_val *v, uint64_t *n)
{
	const uint8_t *p;
	size_t len, k;
	uint8_t info;

	tkm_cbor_raw(v, &p, &len);
	if (len == 0 || (p[0] >> 5) != 1) {
		return false;
	}
	info = p[0] & 0x1f;
	if (info < 24) {
		*n = info;
		return len == 1;
	}
	if (info > 27) {
		return false;
	}
	k = (size_t)1 << (info - 24);
	if (len != 1 + k) {
		return false;
	}
	*n = 0;
	for (size_t i = 1; i <= k; i++) {
		*n = (*n << 8) | p[i];
	}
	return true;
}

static void json_scalar(FILE *f, const tkm_cbor_val *v)
{
	const uint8_t *p;
	const char *s;
	size_t n;
	uint64_t u;
	bool b;

	switch (tkm_cbor_type_of(v)) {
	case TKM_CBOR_UINT:
		if (tkm_cbor_get_uint(v, &u)) {
			fprintf(f, "%llu", (unsigned long long)u);
		}
		break;
	case TKM_CBOR_NINT:
		/* -1 - n; n + 1 overflows only for n = 2^64 - 1. */
		if (nint_arg(v, &u)) {
			if (u == UINT64_MAX) {
				fputs("-18446744073709551616", f);
			} else {
				fprintf(f, "-%llu", (unsigned long long)u + 1);
			}
		}
		break;
	case TKM_CBOR_TEXT:
		if (tkm_cbor_get_text(v, &s, &n)) {
			tkm_toolout_put_json_str_n(f, s, n);
		}
		break;
	case TKM_CBOR_BYTES:
		if (tkm_cbor_get_bytes(v, &p, &n)) {
			fputc('"', f);
			tkm_toolout_put_hex(f, p, n);
			fputc('"', f);
		}
		break;
	case TKM_CBOR_BOOL:
		fputs(tkm_cbor_get_bool(v, &b) && b ? "true" : "false", f);
		break;
	default:
		fputs("null", f);
		break;
	}
}

void tkm_toolout_put_json_cbor(FILE *f, const tkm_cbor_val *v)
{
	tkm_cbor_type t = tkm_cbor_type_of(v);
	bool first = true, key = true;

	if (t != TKM_CBOR_ARRAY && t != TKM_CBOR_MAP) {
		json_scalar(f, v);
		return;
	}
	fputc(t == TKM_CBOR_MAP ? '{' : '[', f);
	for (const tkm_cbor_val *c = tkm_cbor_first(v); c != NULL; c = tkm_cbor_next(c)) {
		if (t == TKM_CBOR_MAP && !key) {
			fputc(':', f);
		} else if (!first) {
			fputc(',', f);
		}
		first = false;
		tkm_toolout_put_json_cbor(f, c);
		key = !key;
	}
	fputc(t == TKM_CBOR_MAP ? '}' : ']', f);
}

/* A short name for every code: the wire name for wire codes, a local one otherwise. */
const char *tkm_toolout_err_name(tkm_err err)
{
	static const struct {
		tkm_err err;
		const char *name;
	} local[] = {
	    {TKM_E_NOMEM, "nomem"},
	    {TKM_E_INVALID_ARG, "invalid_argument"},
	    {TKM_E_TIMEOUT, "timeout"},
	    {TKM_E_CONNECT, "connect"},
	    {TKM_E_PROTOCOL, "protocol"},
	    {TKM_E_CLOSED, "closed"},
	    {TKM_E_IO, "io"},
	    {TKM_E_CONFIG, "config"},
	    {TKM_E_HSM, "hsm"},
	    {TKM_E_CRYPTO, "crypto"},
	};

	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		if (local[i].err == err) {
			return local[i].name;
		}
	}
	return tkm_err_wire_name(err);
}
