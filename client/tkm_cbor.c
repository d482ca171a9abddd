/*
 * tkm_cbor.c - bounded CBOR decoding into a read-only tree, and a CBOR writer.
 *
 * The decoder drives libcbor's streaming decoder one header at a time and
 * builds its own compact tree, so nothing is ever allocated from a length or
 * count that the input declares: the value array grows only as values are
 * actually read, and every declared count is checked against the bytes left
 * before it is believed. It never calls cbor_load(), which in libcbor 0.8
 * allocates whatever a header claims before reading the data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <sodium.h>

#include "tkm_cbor.h"
#include "tkm_why.h"

struct tkm_cbor_val {
	const tkm_cbor_doc *doc;
	uint64_t num;     /* uint, nint argument, or bool */
	uint32_t start;   /* first byte of the encoded item in doc->buf */
	uint32_t end;     /* one past its last byte */
	uint32_t str_off; /* string payload offset */
	uint32_t count;   /* string length, array items or map pairs */
	uint32_t first;   /* index + 1 of the first child, 0 for none */
	uint32_t next;    /* index + 1 of the next sibling, 0 for none */
	tkm_cbor_type type;
};

struct tkm_cbor_doc {
	uint8_t *buf;
	size_t len;
	tkm_cbor_val *vals;
	size_t nvals;
	size_t cap;
};

typedef struct tkm_cbor_frame {
	uint32_t idx;       /* the open container */
	uint32_t last;      /* index + 1 of its last child so far */
	uint64_t remaining; /* children still to come (2 per map pair) */
} tkm_cbor_frame;

/* Decoder state shared with libcbor's callbacks. */
typedef struct tkm_cbor_dec {
	tkm_cbor_doc *doc;
	const tkm_cbor_limits *lim;
	size_t pos;       /* offset of the item being decoded */
	uint32_t made;    /* index + 1 of the value the last callback made */
	const char *fail; /* first problem, a static string */
	tkm_err err;
} tkm_cbor_dec;

tkm_cbor_limits tkm_cbor_default_limits(void)
{
	tkm_cbor_limits lim = {
	    .max_depth = TKM_CBOR_DEFAULT_MAX_DEPTH,
	    .max_str_len = TKM_CBOR_DEFAULT_MAX_STR_LEN,
	};
	return lim;
}

static void dec_fail(tkm_cbor_dec *d, tkm_err err, const char *why)
{
	if (d->fail == NULL) {
		d->fail = why;
		d->err = err;
	}
}

static tkm_cbor_val *dec_new(tkm_cbor_dec *d, tkm_cbor_type type)
{
	tkm_cbor_doc *doc = d->doc;

	if (d->fail != NULL) {
		return NULL;
	}
	if (d->made != 0) {
		dec_fail(d, TKM_E_BAD_REQUEST, "internal decoder state");
		return NULL;
	}
	if (doc->nvals == doc->cap) {
		size_t cap = doc->cap == 0 ? 16 : doc->cap * 2;
		tkm_cbor_val *vals = NULL;
		if (cap > UINT32_MAX - 1 || cap > SIZE_MAX / sizeof(*vals)) {
			dec_fail(d, TKM_E_RESOURCE_EXHAUSTED, "too many items");
			return NULL;
		}
		vals = realloc(doc->vals, cap * sizeof(*vals));
		if (vals == NULL) {
			dec_fail(d, TKM_E_NOMEM, "out of memory");
			return NULL;
		}
		doc->vals = vals;
		doc->cap = cap;
	}
	tkm_cbor_val *v = &doc->vals[doc->nvals++];
	memset(v, 0, sizeof(*v));
	v->doc = doc;
	v->type = type;
	v->start = (uint32_t)d->pos;
	d->made = (uint32_t)doc->nvals;
	return v;
}

static void on_uint(void *ctx, uint64_t n)
{
	tkm_cbor_val *v = dec_new(ctx, TKM_CBOR_UINT);
	if (v != NULL) {
		v->num = n;
	}
}

static void on_uint8(void *ctx, uint8_t n)
{
	on_uint(ctx, n);
}

static void on_uint16(void *ctx, uint16_t n)
{
	on_uint(ctx, n);
}

static void on_uint32(void *ctx, uint32_t n)
{
	on_uint(ctx, n);
}

static void on_nint(void *ctx, uint64_t n)
{
	tkm_cbor_val *v = dec_new(ctx, TKM_CBOR_NINT);
	if (v != NULL) {
		v->num = n;
	}
}

static void on_nint8(void *ctx, uint8_t n)
{
	on_nint(ctx, n);
}

static void on_nint16(void *ctx, uint16_t n)
{
	on_nint(ctx, n);
}

static void on_nint32(void *ctx, uint32_t n)
{
	on_nint(ctx, n);
}

bool tkm_cbor_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n) {
			return false;
		}
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80) {
				return false;
			}
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			return false;
		}
		i += n + 1;
	}
	return true;
}

static void on_string(tkm_cbor_dec *d, tkm_cbor_type type, cbor_data data, size_t len)
{
	const uint8_t *base = d->doc->buf;
	size_t off;

	/* Never trust libcbor's arithmetic alone: the payload must lie inside the input. */
	if (data < base || (size_t)(data - base) > d->doc->len ||
	    len > d->doc->len - (size_t)(data - base)) {
		dec_fail(d, TKM_E_BAD_REQUEST, "string length exceeds the message");
		return;
	}
	if (len > d->lim->max_str_len) {
		dec_fail(d, TKM_E_BAD_REQUEST, "string longer than the limit");
		return;
	}
	off = (size_t)(data - base);
	if (type == TKM_CBOR_TEXT && !tkm_cbor_utf8_valid(data, len)) {
		dec_fail(d, TKM_E_BAD_REQUEST, "text string is not valid UTF-8");
		return;
	}
	tkm_cbor_val *v = dec_new(d, type);
	if (v != NULL) {
		v->str_off = (uint32_t)off;
		v->count = (uint32_t)len;
	}
}

static void on_text(void *ctx, cbor_data data, size_t len)
{
	on_string(ctx, TKM_CBOR_TEXT, data, len);
}

static void on_bytes(void *ctx, cbor_data data, size_t len)
{
	on_string(ctx, TKM_CBOR_BYTES, data, len);
}

static void on_container(tkm_cbor_dec *d, tkm_cbor_type type, size_t count)
{
	tkm_cbor_val *v = dec_new(d, type);
	if (v != NULL) {
		v->num = count; /* checked against the remaining bytes by the caller */
	}
}

static void on_array(void *ctx, size_t count)
{
	on_container(ctx, TKM_CBOR_ARRAY, count);
}

static void on_map(void *ctx, size_t count)
{
	on_container(ctx, TKM_CBOR_MAP, count);
}

static void on_bool(void *ctx, bool b)
{
	tkm_cbor_val *v = dec_new(ctx, TKM_CBOR_BOOL);
	if (v != NULL) {
		v->num = b ? 1 : 0;
	}
}

static void on_null(void *ctx)
{
	(void)dec_new(ctx, TKM_CBOR_NULL);
}

static void on_indefinite(void *ctx)
{
	dec_fail(ctx, TKM_E_BAD_REQUEST, "indefinite-length items are not allowed");
}

static void on_break(void *ctx)
{
	dec_fail(ctx, TKM_E_BAD_REQUEST, "unexpected break code");
}

static void on_tag(void *ctx, uint64_t tag)
{
	(void)tag;
	dec_fail(ctx, TKM_E_BAD_REQUEST, "tags are not allowed");
}

static void on_float(void *ctx, float f)
{
	(void)f;
	dec_fail(ctx, TKM_E_BAD_REQUEST, "floating-point values are not allowed");
}

static void on_double(void *ctx, double f)
{
	(void)f;
	dec_fail(ctx, TKM_E_BAD_REQUEST, "floating-point values are not allowed");
}

static void on_undefined(void *ctx)
{
	dec_fail(ctx, TKM_E_BAD_REQUEST, "undefined is not allowed");
}

static const struct cbor_callbacks tkm_cbor_callbacks = {
    .uint8 = on_uint8,
    .uint16 = on_uint16,
    .uint32 = on_uint32,
    .uint64 = on_uint,
    .negint8 = on_nint8,
    .negint16 = on_nint16,
    .negint32 = on_nint32,
    .negint64 = on_nint,
    .byte_string = on_bytes,
    .byte_string_start = on_indefinite,
    .string = on_text,
    .string_start = on_indefinite,
    .array_start = on_array,
    .indef_array_start = on_indefinite,
    .map_start = on_map,
    .indef_map_start = on_indefinite,
    .tag = on_tag,
    .float2 = on_float,
    .float4 = on_float,
    .float8 = on_double,
    .undefined = on_undefined,
    .null = on_null,
    .boolean = on_bool,
    .indef_break = on_break,
};

typedef struct tkm_cbor_key {
	const uint8_t *p;
	size_t len;
} tkm_cbor_key;

static int key_cmp(const void *a, const void *b)
{
	const tkm_cbor_key *x = a, *y = b;

	if (x->len != y->len) {
		return x->len < y->len ? -1 : 1;
	}
	return x->len == 0 ? 0 : memcmp(x->p, y->p, x->len); /* lint: memcmp ok (public data) */
}

/* Map keys must be text and unique; sorting keeps this O(n log n). */
static tkm_err check_map_keys(const tkm_cbor_doc *doc, const tkm_cbor_val *map, const char **why)
{
	tkm_cbor_key *keys = NULL;
	tkm_err err = TKM_OK;
	size_t n = 0;

	if (map->count < 2) {
		return TKM_OK;
	}
	keys = calloc(map->count, sizeof(*keys));
	if (keys == NULL) {
		*why = "out of memory";
		return TKM_E_NOMEM;
	}
	for (const tkm_cbor_val *k = tkm_cbor_first(map); k != NULL; k = tkm_cbor_next(k)) {
		keys[n].p = doc->buf + k->str_off;
		keys[n].len = k->count;
		n++;
		k = tkm_cbor_next(k); /* skip the value */
		if (k == NULL) {
			break;
		}
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (size_t i = 1; i < n; i++) {
		if (key_cmp(&keys[i - 1], &keys[i]) == 0) {
			*why = "duplicate map key";
			err = TKM_E_BAD_REQUEST;
			break;
		}
	}
	free(keys);
	return err;
}

tkm_err tkm_cbor_decode(const uint8_t *buf, size_t len, const tkm_cbor_limits *lim,
                        tkm_cbor_doc **out, char *why, size_t why_len)
{
	tkm_cbor_limits defaults = tkm_cbor_default_limits();
	tkm_cbor_frame *stack = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_dec d = {0};
	size_t depth = 0;
	bool done = false;
	tkm_err err = TKM_E_BAD_REQUEST;
	const char *fail = NULL;

	*out = NULL;
	if (why != NULL && why_len > 0) {
		why[0] = '\0';
	}
	if (lim == NULL) {
		lim = &defaults;
	}
	if (buf == NULL || len == 0) {
		fail = "empty message";
		goto out;
	}
	if (len > UINT32_MAX - 1) {
		err = TKM_E_RESOURCE_EXHAUSTED;
		fail = "message too large";
		goto out;
	}
	if (lim->max_depth == 0 || lim->max_depth > 256) {
		err = TKM_E_INVALID_ARG;
		fail = "bad depth limit";
		goto out;
	}
	stack = calloc(lim->max_depth, sizeof(*stack));
	doc = calloc(1, sizeof(*doc));
	if (stack == NULL || doc == NULL || (doc->buf = malloc(len)) == NULL) {
		err = TKM_E_NOMEM;
		fail = "out of memory";
		goto out;
	}
	memcpy(doc->buf, buf, len);
	doc->len = len;

	d.doc = doc;
	d.lim = lim;
	while (!done) {
		struct cbor_decoder_result r;
		tkm_cbor_val *v;

		if (d.pos == len) {
			fail = "truncated CBOR";
			goto out;
		}
		d.made = 0;
		r = cbor_stream_decode(doc->buf + d.pos, len - d.pos, &tkm_cbor_callbacks, &d);
		if (d.fail != NULL) {
			err = d.err;
			fail = d.fail;
			goto out;
		}
		if (r.status == CBOR_DECODER_NEDATA) {
			fail = "truncated CBOR";
			goto out;
		}
		if (r.status != CBOR_DECODER_FINISHED || d.made == 0 || r.read == 0 ||
		    r.read > len - d.pos) {
			fail = "malformed CBOR";
			goto out;
		}
		v = &doc->vals[d.made - 1];
		if (depth > 0) {
			tkm_cbor_frame *top = &stack[depth - 1];
			tkm_cbor_val *parent = &doc->vals[top->idx];
			bool is_key = parent->type == TKM_CBOR_MAP && (top->remaining % 2) == 0;
			if (is_key && v->type != TKM_CBOR_TEXT) {
				fail = "map key is not a text string";
				goto out;
			}
			if (top->last == 0) {
				parent->first = d.made;
			} else {
				doc->vals[top->last - 1].next = d.made;
			}
			top->last = d.made;
			top->remaining--;
		}
		d.pos += r.read;
		v->end = (uint32_t)d.pos;

		if ((v->type == TKM_CBOR_ARRAY || v->type == TKM_CBOR_MAP)) {
			uint64_t declared = v->num;
			uint64_t children = v->type == TKM_CBOR_MAP ? declared * 2 : declared;
			/* Each child takes at least one byte: a larger count is a lie. */
			if (declared > len - d.pos || children > len - d.pos) {
				fail = "container count exceeds the message";
				goto out;
			}
			v->count = (uint32_t)declared;
			v->num = 0;
			if (children > 0) {
				if (depth == lim->max_depth) {
					fail = "nesting deeper than the limit";
					goto out;
				}
				stack[depth].idx = d.made - 1;
				stack[depth].last = 0;
				stack[depth].remaining = children;
				depth++;
				continue;
			}
			if (depth == lim->max_depth) {
				fail = "nesting deeper than the limit";
				goto out;
			}
		}
		/* Close every container this item completed. */
		while (depth > 0 && stack[depth - 1].remaining == 0) {
			tkm_cbor_val *c = &doc->vals[stack[depth - 1].idx];
			c->end = (uint32_t)d.pos;
			if (c->type == TKM_CBOR_MAP) {
				err = check_map_keys(doc, c, &fail);
				if (err != TKM_OK) {
					d.pos = c->start;
					goto out;
				}
				err = TKM_E_BAD_REQUEST;
			}
			depth--;
		}
		done = depth == 0;
	}
	if (d.pos != len) {
		fail = "trailing bytes after the CBOR item";
		goto out;
	}
	*out = doc;
	doc = NULL;
	err = TKM_OK;
out:
	if (err != TKM_OK) {
		tkm_why_set(why, why_len, "%s at byte %zu", fail != NULL ? fail : "malformed CBOR",
		            d.pos);
	}
	free(stack);
	tkm_cbor_doc_free(doc);
	return err;
}

void tkm_cbor_doc_free(tkm_cbor_doc *doc)
{
	if (doc == NULL) {
		return;
	}
	if (doc->buf != NULL) {
		sodium_memzero(doc->buf, doc->len);
		free(doc->buf);
	}
	if (doc->vals != NULL) {
		sodium_memzero(doc->vals, doc->cap * sizeof(*doc->vals));
		free(doc->vals);
	}
	free(doc);
}

const tkm_cbor_val *tkm_cbor_root(const tkm_cbor_doc *doc)
{
	return doc != NULL && doc->nvals > 0 ? &doc->vals[0] : NULL;
}

bool tkm_cbor_is(const tkm_cbor_val *v, tkm_cbor_type t)
{
	return v != NULL && tkm_cbor_type_of(v) == t;
}

tkm_cbor_type tkm_cbor_type_of(const tkm_cbor_val *v)
{
	return v->type;
}

const char *tkm_cbor_type_name(tkm_cbor_type t)
{
	switch (t) {
	case TKM_CBOR_UINT:
		return "unsigned integer";
	case TKM_CBOR_NINT:
		return "negative integer";
	case TKM_CBOR_BYTES:
		return "byte string";
	case TKM_CBOR_TEXT:
		return "text string";
	case TKM_CBOR_ARRAY:
		return "array";
	case TKM_CBOR_MAP:
		return "map";
	case TKM_CBOR_BOOL:
		return "boolean";
	case TKM_CBOR_NULL:
		return "null";
	}
	return "unknown";
}

size_t tkm_cbor_count(const tkm_cbor_val *v)
{
	if (v == NULL || (v->type != TKM_CBOR_ARRAY && v->type != TKM_CBOR_MAP)) {
		return 0;
	}
	return v->count;
}

const tkm_cbor_val *tkm_cbor_first(const tkm_cbor_val *v)
{
	if (v == NULL || v->first == 0) {
		return NULL;
	}
	return &v->doc->vals[v->first - 1];
}

const tkm_cbor_val *tkm_cbor_next(const tkm_cbor_val *v)
{
	if (v == NULL || v->next == 0) {
		return NULL;
	}
	return &v->doc->vals[v->next - 1];
}

bool tkm_cbor_text_eq(const tkm_cbor_val *v, const char *s)
{
	size_t n = strlen(s);

	if (v == NULL || v->type != TKM_CBOR_TEXT || v->count != n) {
		return false;
	}
	return n == 0 ||
	       memcmp(v->doc->buf + v->str_off, s, n) == 0; /* lint: memcmp ok (public data) */
}

const tkm_cbor_val *tkm_cbor_map_get(const tkm_cbor_val *map, const char *key)
{
	if (map == NULL || map->type != TKM_CBOR_MAP) {
		return NULL;
	}
	for (const tkm_cbor_val *k = tkm_cbor_first(map); k != NULL;) {
		const tkm_cbor_val *val = tkm_cbor_next(k);
		if (tkm_cbor_text_eq(k, key)) {
			return val;
		}
		k = tkm_cbor_next(val);
	}
	return NULL;
}

bool tkm_cbor_get_uint(const tkm_cbor_val *v, uint64_t *out)
{
	if (v == NULL || v->type != TKM_CBOR_UINT) {
		return false;
	}
	*out = v->num;
	return true;
}

bool tkm_cbor_get_int(const tkm_cbor_val *v, int64_t *out)
{
	if (v == NULL || v->num > (uint64_t)INT64_MAX) {
		return false;
	}
	if (v->type == TKM_CBOR_UINT) {
		*out = (int64_t)v->num;
		return true;
	}
	if (v->type == TKM_CBOR_NINT) {
		*out = -1 - (int64_t)v->num;
		return true;
	}
	return false;
}

bool tkm_cbor_get_bool(const tkm_cbor_val *v, bool *out)
{
	if (v == NULL || v->type != TKM_CBOR_BOOL) {
		return false;
	}
	*out = v->num != 0;
	return true;
}

bool tkm_cbor_get_text(const tkm_cbor_val *v, const char **s, size_t *len)
{
	if (v == NULL || v->type != TKM_CBOR_TEXT) {
		return false;
	}
	*s = (const char *)v->doc->buf + v->str_off;
	*len = v->count;
	return true;
}

bool tkm_cbor_get_bytes(const tkm_cbor_val *v, const uint8_t **p, size_t *len)
{
	if (v == NULL || v->type != TKM_CBOR_BYTES) {
		return false;
	}
	*p = v->doc->buf + v->str_off;
	*len = v->count;
	return true;
}

void tkm_cbor_raw(const tkm_cbor_val *v, const uint8_t **p, size_t *len)
{
	*p = v->doc->buf + v->start;
	*len = (size_t)(v->end - v->start);
}

/* ---- Writer ---- */

struct tkm_cbor_w {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t max;
	tkm_err err;
};

tkm_err tkm_cbor_w_new(size_t max_len, tkm_cbor_w **out)
{
	tkm_cbor_w *w = NULL;

	*out = NULL;
	if (max_len == 0) {
		return TKM_E_INVALID_ARG;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		return TKM_E_NOMEM;
	}
	w->max = max_len;
	*out = w;
	return TKM_OK;
}

void tkm_cbor_w_free(tkm_cbor_w *w)
{
	if (w == NULL) {
		return;
	}
	if (w->buf != NULL) {
		sodium_memzero(w->buf, w->cap);
		free(w->buf);
	}
	free(w);
}

/* Grow by copying, so that no unwiped copy of the old buffer is left behind. */
static bool w_reserve(tkm_cbor_w *w, size_t more)
{
	size_t need, cap;
	uint8_t *buf;

	if (w->err != TKM_OK) {
		return false;
	}
	if (more > w->max - w->len) {
		w->err = TKM_E_RESOURCE_EXHAUSTED;
		return false;
	}
	need = w->len + more;
	if (need <= w->cap) {
		return true;
	}
	cap = w->cap == 0 ? 256 : w->cap;
	while (cap < need) {
		cap = cap > w->max / 2 ? w->max : cap * 2;
	}
	buf = malloc(cap);
	if (buf == NULL) {
		w->err = TKM_E_NOMEM;
		return false;
	}
	if (w->buf != NULL) {
		memcpy(buf, w->buf, w->len);
		sodium_memzero(w->buf, w->cap);
		free(w->buf);
	}
	w->buf = buf;
	w->cap = cap;
	return true;
}

static void w_append(tkm_cbor_w *w, const void *p, size_t len)
{
	if (len == 0 || !w_reserve(w, len)) {
		return;
	}
	memcpy(w->buf + w->len, p, len);
	w->len += len;
}

/* Encoded heads are at most 9 bytes; libcbor returns 0 if the buffer is short. */
static void w_head(tkm_cbor_w *w, size_t (*enc)(uint64_t, unsigned char *, size_t), uint64_t arg)
{
	unsigned char head[9];
	size_t n = enc(arg, head, sizeof(head));

	if (n == 0) {
		if (w->err == TKM_OK) {
			w->err = TKM_E_INTERNAL;
		}
		return;
	}
	w_append(w, head, n);
}

static size_t enc_uint(uint64_t v, unsigned char *b, size_t n)
{
	return cbor_encode_uint(v, b, n);
}

static size_t enc_nint(uint64_t v, unsigned char *b, size_t n)
{
	return cbor_encode_negint(v, b, n);
}

static size_t enc_text(uint64_t v, unsigned char *b, size_t n)
{
	return cbor_encode_string_start((size_t)v, b, n);
}

static size_t enc_bytes(uint64_t v, unsigned char *b, size_t n)
{
	return cbor_encode_bytestring_start((size_t)v, b, n);
}

static size_t enc_array(uint64_t v, unsigned char *b, size_t n)
{
	return cbor_encode_array_start((size_t)v, b, n);
}

static size_t enc_map(uint64_t v, unsigned char *b, size_t n)
{
	return cbor_encode_map_start((size_t)v, b, n);
}

void tkm_cbor_put_uint(tkm_cbor_w *w, uint64_t v)
{
	w_head(w, enc_uint, v);
}

void tkm_cbor_put_int(tkm_cbor_w *w, int64_t v)
{
	if (v >= 0) {
		w_head(w, enc_uint, (uint64_t)v);
	} else {
		w_head(w, enc_nint, (uint64_t)(-(v + 1)));
	}
}

void tkm_cbor_put_bool(tkm_cbor_w *w, bool v)
{
	uint8_t b = v ? 0xf5 : 0xf4;
	w_append(w, &b, 1);
}

void tkm_cbor_put_null(tkm_cbor_w *w)
{
	uint8_t b = 0xf6;
	w_append(w, &b, 1);
}

void tkm_cbor_put_text(tkm_cbor_w *w, const char *s, size_t len)
{
	w_head(w, enc_text, len);
	w_append(w, s, len);
}

void tkm_cbor_put_cstr(tkm_cbor_w *w, const char *s)
{
	tkm_cbor_put_text(w, s, strlen(s));
}

void tkm_cbor_put_bytes(tkm_cbor_w *w, const uint8_t *p, size_t len)
{
	w_head(w, enc_bytes, len);
	w_append(w, p, len);
}

void tkm_cbor_put_array(tkm_cbor_w *w, size_t count)
{
	w_head(w, enc_array, count);
}

void tkm_cbor_put_map(tkm_cbor_w *w, size_t pairs)
{
	w_head(w, enc_map, pairs);
}

void tkm_cbor_put_raw(tkm_cbor_w *w, const uint8_t *p, size_t len)
{
	w_append(w, p, len);
}

tkm_err tkm_cbor_w_error(const tkm_cbor_w *w)
{
	return w->err;
}

tkm_err tkm_cbor_w_finish(const tkm_cbor_w *w, const uint8_t **p, size_t *len)
{
	if (w->err != TKM_OK) {
		return w->err;
	}
	*p = w->buf;
	*len = w->len;
	return TKM_OK;
}
