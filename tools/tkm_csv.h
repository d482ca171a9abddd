/*
 * tkm_csv.h - the streaming CSV reader behind `tkmctl terminal import FILE.csv`.
 *
 * A reader takes a header row that names the columns, maps the names onto the
 * caller's list of known columns, and then yields one record at a time with
 * the physical line where it starts and every cell checked against its
 * column's rule. A record that breaks a rule comes back with a reason instead
 * of being dropped, so that the caller reports it and sends nothing of it.
 *
 * Parsing is libcsv's callback parser fed from a bounded read buffer: the file
 * is never held whole, no cell may exceed TKM_CSV_MAX_FIELD bytes and no input
 * TKM_CSV_MAX_FILE bytes. Strict RFC 4180 quoting; CRLF, LF and CR line ends;
 * a UTF-8 byte order mark at the start is skipped. The reader only reads its
 * input: it never talks to tkmd and never writes anything.
 */
#ifndef TKM_CSV_H
#define TKM_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"

#define TKM_CSV_MAX_FILE  ((uint64_t)64 * 1024 * 1024) /* bytes of input, BOM included */
#define TKM_CSV_MAX_FIELD 4096                         /* bytes of one cell, header cells too */

/* The rule a column's cells must follow; an empty cell is "absent" (NULL). */
typedef enum tkm_csv_kind {
	TKM_CSV_IDENT,     /* 1..max_len bytes of [A-Za-z0-9._-] */
	TKM_CSV_PRINTABLE, /* 1..max_len bytes of printable ASCII, 0x20..0x7e */
	TKM_CSV_DATE,      /* YYYY-MM-DD, a real Gregorian date, year 1900..9999 */
	TKM_CSV_TEXT,      /* 1..max_len bytes of UTF-8 without C0, DEL or C1 controls */
} tkm_csv_kind;

typedef struct tkm_csv_column {
	const char *name; /* lower case ASCII; the header matches it ignoring case */
	tkm_csv_kind kind;
	size_t max_len; /* in bytes, at most TKM_CSV_MAX_FIELD */
	bool required;  /* the header must name it and every row must fill it */
} tkm_csv_column;

/* The columns of a terminal import file, indexed by enum tkm_csv_terminal_col. */
enum tkm_csv_terminal_col {
	TKM_CSV_T_SERIAL,
	TKM_CSV_T_MANUFACTURER,
	TKM_CSV_T_MODEL,
	TKM_CSV_T_MERCHANT,
	TKM_CSV_T_SITE,
	TKM_CSV_T_GROUP,
	TKM_CSV_T_PURCHASE_DATE,
	TKM_CSV_T_FIRMWARE_VERSION,
	TKM_CSV_T_APP_VERSION,
	TKM_CSV_T_NOTES,
	TKM_CSV_T_NCOLUMNS
};
extern const tkm_csv_column tkm_csv_terminal_columns[TKM_CSV_T_NCOLUMNS];

/*
 * One record. Everything it points to belongs to the reader and stays valid
 * until the next tkm_csv_next() or tkm_csv_free().
 */
typedef struct tkm_csv_row {
	unsigned long line; /* 1-based physical line where the record starts */
	/*
	 * values[i] is the cell of the caller's column i, NUL-terminated, or NULL
	 * when the header lacks the column or the cell is empty.
	 */
	const char *const *values;
	size_t nvalues; /* the caller's column count */
	/*
	 * NULL when every cell passed its rule. Otherwise one sentence saying why
	 * the record is refused (wrong cell count, invalid UTF-8, a NUL byte, a
	 * missing required cell, a cell breaking its rule); values must then not
	 * be used.
	 */
	const char *error;
} tkm_csv_row;

typedef struct tkm_csv tkm_csv;

/*
 * Open path for reading. TKM_E_NOT_FOUND, TKM_E_PERMISSION_DENIED or TKM_E_IO
 * when it cannot be opened, TKM_E_BAD_REQUEST when it is a directory, and
 * TKM_E_RESOURCE_EXHAUSTED when it is a regular file over TKM_CSV_MAX_FILE.
 * Pipes are read too; their size is checked while reading.
 */
TKM_MUST_CHECK tkm_err tkm_csv_open_file(tkm_csv **out, const char *path);

/* Read buf[0..len), which the caller keeps unchanged until tkm_csv_free(). */
TKM_MUST_CHECK tkm_err tkm_csv_open_mem(tkm_csv **out, const void *buf, size_t len);

/* NULL-safe. */
void tkm_csv_free(tkm_csv *r);

/*
 * Read the header row (blank lines before it are skipped) and map its names,
 * trimmed and ignoring ASCII case, onto cols[0..ncols), which must outlive the
 * reader. An unknown, duplicate or empty column name, or a required column
 * missing, is TKM_E_BAD_REQUEST; tkm_csv_error() names every offending column.
 * Called once, before tkm_csv_next().
 */
TKM_MUST_CHECK tkm_err tkm_csv_read_header(tkm_csv *r, const tkm_csv_column *cols, size_t ncols);

/*
 * Fill *row with the next record and set *eof false, or set *eof true at the
 * end of the input. A refused record is still TKM_OK (see row->error). A
 * failure the reader cannot step over ends the reading and every later call
 * returns it again: TKM_E_BAD_REQUEST for broken quoting or a cell over
 * TKM_CSV_MAX_FIELD, TKM_E_RESOURCE_EXHAUSTED for input over
 * TKM_CSV_MAX_FILE, TKM_E_IO or TKM_E_NOMEM; see tkm_csv_error().
 */
TKM_MUST_CHECK tkm_err tkm_csv_next(tkm_csv *r, tkm_csv_row *row, bool *eof);

/* One sentence about the last failure of read_header or next; "" if none. */
const char *tkm_csv_error(const tkm_csv *r);

/* The physical line that sentence is about, or 0 when it is about no line. */
unsigned long tkm_csv_error_line(const tkm_csv *r);

/* For progress: the bytes read so far, and the input size (0 for a pipe). */
uint64_t tkm_csv_bytes_read(const tkm_csv *r);
uint64_t tkm_csv_size(const tkm_csv *r);

/*
 * Check one cell value s[0..len) against col's rule. Returns NULL when it
 * passes, or a static phrase ("not a real date", ...). An empty value is
 * "missing". Also for checking command-line flags the same way as imports.
 */
const char *tkm_csv_check_value(const tkm_csv_column *col, const char *s, size_t len);

#endif /* TKM_CSV_H */
