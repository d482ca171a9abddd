/*
 * tkm_cbor.h - bounded CBOR decoding into a read-only tree, and a CBOR writer.
 *
 * The decoder is the only code in tkm that reads untrusted CBOR. It walks the
 * input with libcbor's streaming decoder and never allocates more than the
 * input justifies: every declared length and count is checked against the
 * bytes that remain before anything is built. It accepts the subset of CBOR
 * that the tkm protocol uses (unsigned and negative integers, byte and text
 * strings, arrays, maps, booleans and null, all of definite length) and
 * rejects everything else with a message naming the first problem found.
 *
 * The writer appends definite-length items with the shortest integer forms.
 * Its errors are sticky: the first failure is kept and reported by
 * tkm_cbor_w_finish(), so encoders can be written as straight-line code.
 * Both the decoded tree and the writer wipe their memory when freed.
 */
#ifndef TKM_CBOR_H
#define TKM_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"

/* Defaults for tkm_cbor_limits; tkmd may override them from its config. */
#define TKM_CBOR_DEFAULT_MAX_DEPTH   16
#define TKM_CBOR_DEFAULT_MAX_STR_LEN 65536

typedef struct tkm_cbor_limits {
	size_t max_depth;   /* nesting of arrays and maps; the root is depth 1 */
	size_t max_str_len; /* longest byte or text string, in bytes */
} tkm_cbor_limits;

typedef enum tkm_cbor_type {
	TKM_CBOR_UINT,
	TKM_CBOR_NINT, /* negative integer: value is -1 - n */
	TKM_CBOR_BYTES,
	TKM_CBOR_TEXT, /* valid UTF-8, checked while decoding */
	TKM_CBOR_ARRAY,
	TKM_CBOR_MAP,
	TKM_CBOR_BOOL,
	TKM_CBOR_NULL,
} tkm_cbor_type;

typedef struct tkm_cbor_doc tkm_cbor_doc; /* owns every value in a decoded tree */
typedef struct tkm_cbor_val tkm_cbor_val; /* one value inside a doc */

/* Limits filled with the defaults above. */
tkm_cbor_limits tkm_cbor_default_limits(void);

/*
 * Decode exactly one CBOR item filling buf[0..len). Trailing bytes, truncation,
 * indefinite lengths, tags, floats, undefined, invalid UTF-8, duplicate map
 * keys, nesting deeper than lim->max_depth and strings longer than
 * lim->max_str_len all fail with TKM_E_BAD_REQUEST, and a NUL-terminated
 * reason is written to why (why_len bytes; why may be NULL). On success *out
 * owns a copy of the input; free it with tkm_cbor_doc_free().
 */
TKM_MUST_CHECK tkm_err tkm_cbor_decode(const uint8_t *buf, size_t len, const tkm_cbor_limits *lim,
                                       tkm_cbor_doc **out, char *why, size_t why_len);

/* NULL-safe; wipes the copy of the input. */
void tkm_cbor_doc_free(tkm_cbor_doc *doc);

const tkm_cbor_val *tkm_cbor_root(const tkm_cbor_doc *doc);

tkm_cbor_type tkm_cbor_type_of(const tkm_cbor_val *v); /* v must not be NULL */

/* v is present and of type t: the NULL-safe check for optional members. */
bool tkm_cbor_is(const tkm_cbor_val *v, tkm_cbor_type t);
const char *tkm_cbor_type_name(tkm_cbor_type t);

/* Number of array items or map pairs; 0 for scalars. */
size_t tkm_cbor_count(const tkm_cbor_val *v);

/*
 * Children in order. For an array: the items. For a map: key, value, key,
 * value... tkm_cbor_first() returns NULL for an empty container or a scalar;
 * tkm_cbor_next() returns NULL after the last child.
 */
const tkm_cbor_val *tkm_cbor_first(const tkm_cbor_val *v);
const tkm_cbor_val *tkm_cbor_next(const tkm_cbor_val *v);

/* The value stored under the text key `key` in a map, or NULL. */
const tkm_cbor_val *tkm_cbor_map_get(const tkm_cbor_val *map, const char *key);

/* Typed reads: false when v is NULL or of another type. */
bool tkm_cbor_get_uint(const tkm_cbor_val *v, uint64_t *out);
bool tkm_cbor_get_int(const tkm_cbor_val *v, int64_t *out); /* false if out of range */
bool tkm_cbor_get_bool(const tkm_cbor_val *v, bool *out);
bool tkm_cbor_get_text(const tkm_cbor_val *v, const char **s, size_t *len); /* not NUL-terminated */
bool tkm_cbor_get_bytes(const tkm_cbor_val *v, const uint8_t **p, size_t *len);
bool tkm_cbor_text_eq(const tkm_cbor_val *v, const char *s);

/* RFC 3629 UTF-8: shortest forms only, no surrogates, nothing above U+10FFFF. */
bool tkm_cbor_utf8_valid(const uint8_t *s, size_t len);

/* The exact encoded bytes of v inside the doc's copy of the input. */
void tkm_cbor_raw(const tkm_cbor_val *v, const uint8_t **p, size_t *len);

/* ---- Writer ---- */

typedef struct tkm_cbor_w tkm_cbor_w;

/* A writer whose output may grow to max_len bytes; more is TKM_E_RESOURCE_EXHAUSTED. */
TKM_MUST_CHECK tkm_err tkm_cbor_w_new(size_t max_len, tkm_cbor_w **out);
/* NULL-safe; wipes the buffer. */
void tkm_cbor_w_free(tkm_cbor_w *w);

void tkm_cbor_put_uint(tkm_cbor_w *w, uint64_t v);
void tkm_cbor_put_int(tkm_cbor_w *w, int64_t v);
void tkm_cbor_put_bool(tkm_cbor_w *w, bool v);
void tkm_cbor_put_null(tkm_cbor_w *w);
void tkm_cbor_put_text(tkm_cbor_w *w, const char *s, size_t len);
void tkm_cbor_put_cstr(tkm_cbor_w *w, const char *s);
void tkm_cbor_put_bytes(tkm_cbor_w *w, const uint8_t *p, size_t len);
void tkm_cbor_put_array(tkm_cbor_w *w, size_t count);
void tkm_cbor_put_map(tkm_cbor_w *w, size_t pairs);
/* Append an already-encoded item (for example a params map) unchanged. */
void tkm_cbor_put_raw(tkm_cbor_w *w, const uint8_t *p, size_t len);

/* The first error met while writing, or TKM_OK. */
tkm_err tkm_cbor_w_error(const tkm_cbor_w *w);

/*
 * Borrow the encoded bytes; valid until the next put or free. Returns the
 * sticky error if any put failed, and then *p and *len are not set.
 */
TKM_MUST_CHECK tkm_err tkm_cbor_w_finish(const tkm_cbor_w *w, const uint8_t **p, size_t *len);

#endif /* TKM_CBOR_H */
