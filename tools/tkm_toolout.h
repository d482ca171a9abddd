/*
 * tkm_toolout.h - output of untrusted text for the command-line programs
 * (tkmctl, tkm-terminal, tkm-station): every string that came from the
 * server, a database or a file goes out through these, never through a
 * format string, so that it cannot drive the terminal or break the JSON.
 * Nothing here allocates or keeps state.
 */
#ifndef TKM_TOOLOUT_H
#define TKM_TOOLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tkm/error.h"
#include "tkm_cbor.h"

/*
 * Text for a terminal: control characters (C0, DEL, C1) and invalid UTF-8
 * become '?'. The _n forms take len bytes that need not be NUL-terminated (a
 * NUL inside is a control character).
 */
void tkm_toolout_put_text(FILE *f, const char *s);
void tkm_toolout_put_text_n(FILE *f, const char *s, size_t len);

/* As tkm_toolout_put_text_n, but newlines stay: for multi-line text such as a policy. */
void tkm_toolout_put_text_lines_n(FILE *f, const char *s, size_t len);

/*
 * A table cell: the text as tkm_toolout_put_text_n prints it, then spaces up
 * to width characters, and always at least two.
 */
void tkm_toolout_put_cell(FILE *f, const char *s, size_t len, size_t width);

/* len bytes of valid UTF-8 without control characters, len from 1 to max. */
bool tkm_toolout_text_ok(const char *s, size_t len, size_t max);

/*
 * A quoted JSON string: quotes, backslashes and control characters escaped
 * (\b \f \n \r \t in short form, the others as \u00XX), invalid UTF-8 as
 * \ufffd, one per bad byte.
 */
void tkm_toolout_put_json_str(FILE *f, const char *s);
void tkm_toolout_put_json_str_n(FILE *f, const char *s, size_t len);

/*
 * A decoded CBOR value as JSON: maps as objects (the decoder admits only text
 * keys), byte strings as lowercase hex strings, text escaped as above, every
 * integer exactly (down to -2^64), anything else as null.
 */
void tkm_toolout_put_json_cbor(FILE *f, const tkm_cbor_val *v);

/* len bytes as lowercase hex. */
void tkm_toolout_put_hex(FILE *f, const uint8_t *p, size_t len);

/* A short name for every code: the wire name for wire codes, a local one otherwise. */
const char *tkm_toolout_err_name(tkm_err err);

#endif /* TKM_TOOLOUT_H */
