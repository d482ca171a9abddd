/*
 * tkm_csv.c - the streaming CSV reader for terminal import (see tkm_csv.h).
 *
 * The input is cut into pieces that end at a line end (CR or LF) or after
 * PIECE_MAX bytes, and each piece goes to csv_parse() on its own. A record can
 * only end at a line end, so a piece completes at most one record, and it does
 * so on its last byte; the reader therefore knows the physical line of every
 * byte it feeds, which is how records get their line numbers across quoted
 * multi-line cells (libcsv's callbacks report no positions). Checking libcsv's
 * entry buffer after each piece bounds a growing cell to two pieces' worth.
 *
 * Reads its input only; holds no secrets.
 */
#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tkm_csv.h"
#include "tkm_why.h"

#define READ_CHUNK  65536 /* bytes per read() from a file */
#define PIECE_MAX   4096  /* bytes per csv_parse() call */
#define ERR_LEN     1024  /* the reader's error sentence */
#define REASON_LEN  512   /* a refused row's sentence */
#define MAX_COLUMNS 256   /* caller's column list */
#define NAME_SHOWN  40    /* bytes of an unknown column name quoted in errors */

const tkm_csv_column tkm_csv_terminal_columns[TKM_CSV_T_NCOLUMNS] = {
    [TKM_CSV_T_SERIAL] = {"serial", TKM_CSV_IDENT, 64, true},
    [TKM_CSV_T_MANUFACTURER] = {"manufacturer", TKM_CSV_IDENT, 64, true},
    [TKM_CSV_T_MODEL] = {"model", TKM_CSV_PRINTABLE, 64, false},
    [TKM_CSV_T_MERCHANT] = {"merchant", TKM_CSV_IDENT, 64, false},
    [TKM_CSV_T_SITE] = {"site", TKM_CSV_IDENT, 64, false},
    [TKM_CSV_T_GROUP] = {"group", TKM_CSV_IDENT, 64, false},
    [TKM_CSV_T_PURCHASE_DATE] = {"purchase_date", TKM_CSV_DATE, 10, false},
    [TKM_CSV_T_FIRMWARE_VERSION] = {"firmware_version", TKM_CSV_PRINTABLE, 32, false},
    [TKM_CSV_T_APP_VERSION] = {"app_version", TKM_CSV_PRINTABLE, 32, false},
    [TKM_CSV_T_NOTES] = {"notes", TKM_CSV_TEXT, 1000, false},
};

enum phase {
	PHASE_OPEN,   /* opened, header not read yet */
	PHASE_HEADER, /* the header record is being parsed */
	PHASE_ROWS,   /* header mapped, data records */
};

struct tkm_csv {
	/* Input: a file descriptor, or the caller's memory when fd is -1. */
	int fd;
	const unsigned char *mem;
	size_t mem_len;
	unsigned char *buf; /* READ_CHUNK bytes, file input only */
	const unsigned char *chunk;
	size_t chunk_len;
	size_t chunk_pos;
	uint64_t size;  /* regular file or memory size; 0 for a pipe */
	uint64_t nread; /* bytes taken from the input so far */
	bool src_eof;   /* the input has no more bytes */
	bool started;   /* the first chunk (and its BOM) has been seen */
	bool done;      /* csv_fini() has run */

	struct csv_parser parser;
	bool parser_init;

	/* Positions. */
	unsigned long line;       /* physical line of the next byte fed */
	bool last_cr;             /* the last byte fed was a CR */
	unsigned long piece_line; /* physical line of the piece being parsed */
	unsigned long rec_line;   /* where the record in progress began; 0 none */

	/* Columns. */
	enum phase phase;
	const tkm_csv_column *cols;
	size_t ncols;
	size_t *map;   /* header position -> column index, nhdr entries */
	size_t nhdr;   /* cells in the header */
	bool *seen;    /* per column: named by the header */
	char *cells;   /* per column: TKM_CSV_MAX_FIELD + 1 bytes */
	char **values; /* per column: into cells, or NULL */

	/* The record in progress. */
	size_t nfield; /* cells seen so far */
	bool row_bad;
	char reason[REASON_LEN];
	bool rec_ready; /* a record is complete and not handed out yet */
	unsigned long ready_line;

	/* Header problems, gathered while the header record is parsed. */
	char unknown[ERR_LEN / 2]; /* "a", "b", ...; half, so the sentence has room */
	size_t unknown_len;
	bool unknown_cut;
	size_t dup_col;   /* 1 + column index named twice; 0 none */
	size_t empty_pos; /* 1 + position of the first unnamed header cell; 0 none */

	/* The error that ends the reading, sticky. */
	tkm_err fatal;
	char err[ERR_LEN];
	unsigned long err_line;
};

static void set_fatal(tkm_csv *r, tkm_err err, unsigned long line, const char *what)
{
	if (r->fatal != TKM_OK) {
		return;
	}
	r->fatal = err;
	r->err_line = line;
	tkm_why_set(r->err, sizeof(r->err), "%s", what);
}

static bool is_ident_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i], lo = 0x80, hi = 0xbf;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c == 0xe0) {
			n = 2;
			lo = 0xa0;
		} else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
			n = 2;
		} else if (c == 0xed) {
			n = 2;
			hi = 0x9f;
		} else if (c == 0xf0) {
			n = 3;
			lo = 0x90;
		} else if (c >= 0xf1 && c <= 0xf3) {
			n = 3;
		} else if (c == 0xf4) {
			n = 3;
			hi = 0x8f;
		} else {
			return false;
		}
		if (len - i - 1 < n || s[i + 1] < lo || s[i + 1] > hi) {
			return false;
		}
		for (size_t k = 2; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80) {
				return false;
			}
		}
		i += n + 1;
	}
	return true;
}

static bool leap_year(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static const char *check_date(const unsigned char *s, size_t len)
{
	static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned v[3] = {0, 0, 0};
	static const size_t start[3] = {0, 5, 8}, width[3] = {4, 2, 2};

	if (len != 10 || s[4] != '-' || s[7] != '-') {
		return "not a date in the form YYYY-MM-DD";
	}
	for (size_t f = 0; f < 3; f++) {
		for (size_t k = start[f]; k < start[f] + width[f]; k++) {
			if (s[k] < '0' || s[k] > '9') {
				return "not a date in the form YYYY-MM-DD";
			}
			v[f] = v[f] * 10 + (unsigned)(s[k] - '0');
		}
	}
	if (v[0] < 1900) {
		return "a year before 1900";
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1) {
		return "not a real date";
	}
	unsigned last = mdays[v[1] - 1] + (v[1] == 2 && leap_year(v[0]) ? 1u : 0u);
	if (v[2] > last) {
		return "not a real date";
	}
	return NULL;
}

const char *tkm_csv_check_value(const tkm_csv_column *col, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	if (col == NULL || (s == NULL && len != 0)) {
		return "no value";
	}
	if (len == 0) {
		return "missing";
	}
	if (len > col->max_len) {
		return "too long";
	}
	switch (col->kind) {
	case TKM_CSV_IDENT:
		for (size_t i = 0; i < len; i++) {
			if (!is_ident_byte(u[i])) {
				return "only letters, digits, '.', '_' and '-' are allowed";
			}
		}
		return NULL;
	case TKM_CSV_PRINTABLE:
		for (size_t i = 0; i < len; i++) {
			if (u[i] < 0x20 || u[i] > 0x7e) {
				return "only printable ASCII is allowed";
			}
		}
		return NULL;
	case TKM_CSV_DATE:
		return check_date(u, len);
	case TKM_CSV_TEXT:
		if (!utf8_valid(u, len)) {
			return "not valid UTF-8";
		}
		for (size_t i = 0; i < len; i++) {
			/* C0 and DEL; in valid UTF-8, C2 80..9F is exactly C1. */
			if (u[i] < 0x20 || u[i] == 0x7f ||
			    (u[i] == 0xc2 && i + 1 < len && u[i + 1] <= 0x9f)) {
				return "contains a control character";
			}
		}
		return NULL;
	}
	return "unknown rule";
}

/* Append s[0..len) to buf (cap bytes, NUL-terminated), printable ASCII only. */
static bool append_shown(char *buf, size_t cap, size_t *pos, const char *s, size_t len)
{
	if (*pos + len + 1 > cap) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[(*pos)++] = c >= 0x20 && c <= 0x7e ? (char)c : '?';
	}
	buf[*pos] = '\0';
	return true;
}

static void header_unknown(tkm_csv *r, const char *name, size_t len)
{
	size_t pos = r->unknown_len, shown = len > NAME_SHOWN ? NAME_SHOWN : len;
	bool ok = true;

	if (r->unknown_cut) {
		return;
	}
	/* Room for the separator, the quoted name, "..." and a final ", ...". */
	if (pos + shown + 16 > sizeof(r->unknown)) {
		ok = append_shown(r->unknown, sizeof(r->unknown), &pos, ", ...", 5);
		r->unknown_cut = true;
		r->unknown_len = ok ? pos : r->unknown_len;
		return;
	}
	if (pos > 0) {
		ok = ok && append_shown(r->unknown, sizeof(r->unknown), &pos, ", ", 2);
	}
	ok = ok && append_shown(r->unknown, sizeof(r->unknown), &pos, "\"", 1);
	ok = ok && append_shown(r->unknown, sizeof(r->unknown), &pos, name, shown);
	if (shown < len) {
		ok = ok && append_shown(r->unknown, sizeof(r->unknown), &pos, "...", 3);
	}
	ok = ok && append_shown(r->unknown, sizeof(r->unknown), &pos, "\"", 1);
	if (ok) {
		r->unknown_len = pos;
	}
}

static void header_cell(tkm_csv *r, const char *s, size_t len)
{
	size_t pos = r->nfield++;

	while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
		len--;
	}
	if (len == 0) {
		if (r->empty_pos == 0) {
			r->empty_pos = pos + 1;
		}
		return;
	}
	size_t i;
	for (i = 0; i < r->ncols; i++) {
		const char *name = r->cols[i].name;
		size_t k = 0;
		while (k < len && name[k] != '\0' &&
		       ascii_lower((unsigned char)s[k]) == (unsigned char)name[k]) {
			k++;
		}
		if (k == len && name[k] == '\0') {
			break;
		}
	}
	if (i == r->ncols) {
		header_unknown(r, s, len);
		return;
	}
	if (r->seen[i]) {
		if (r->dup_col == 0) {
			r->dup_col = i + 1;
		}
		return;
	}
	r->seen[i] = true;
	/* Distinct known names are at most ncols, so pos < ncols here. */
	if (pos < r->ncols) {
		r->map[pos] = i;
	}
}

static void row_fail(tkm_csv *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void row_fail(tkm_csv *r, const char *fmt, ...)
{
	va_list ap;

	r->row_bad = true;
	va_start(ap, fmt);
	if (vsnprintf(r->reason, sizeof(r->reason), fmt, ap) < 0) {
		r->reason[0] = '\0';
	}
	va_end(ap);
	if (r->reason[0] == '\0') {
		tkm_why_set(r->reason, sizeof(r->reason), "%s", "refused");
	}
}

static void row_cell(tkm_csv *r, const char *s, size_t len)
{
	size_t pos = r->nfield++;

	if (pos >= r->nhdr || r->row_bad || len == 0) {
		return; /* a wrong cell count is reported at the end of the record */
	}
	size_t c = r->map[pos];
	if (memchr(s, '\0', len) != NULL) {
		row_fail(r, "%s: contains a NUL byte", r->cols[c].name);
		return;
	}
	if (!utf8_valid((const unsigned char *)s, len)) {
		row_fail(r, "%s: not valid UTF-8", r->cols[c].name);
		return;
	}
	char *cell = r->cells + c * (TKM_CSV_MAX_FIELD + 1);
	memcpy(cell, s, len);
	cell[len] = '\0';
	r->values[c] = cell;
}

static void row_check(tkm_csv *r)
{
	if (r->nfield != r->nhdr) {
		row_fail(r, "%zu cells where the header has %zu", r->nfield, r->nhdr);
		return;
	}
	for (size_t i = 0; i < r->ncols && !r->row_bad; i++) {
		const tkm_csv_column *col = &r->cols[i];
		const char *v = r->values[i];
		size_t len = v != NULL ? strlen(v) : 0;

		if (v == NULL) {
			if (col->required) {
				row_fail(r, "%s: missing, and the column is required", col->name);
			}
		} else if (len > col->max_len) {
			row_fail(r, "%s: longer than %zu bytes", col->name, col->max_len);
		} else {
			const char *why = tkm_csv_check_value(col, v, len);
			if (why != NULL) {
				row_fail(r, "%s: %s", col->name, why);
			}
		}
	}
}

/* libcsv's end-of-cell callback. */
static void on_cell(void *s, size_t len, void *data)
{
	tkm_csv *r = data;

	if (r->fatal != TKM_OK) {
		return;
	}
	if (len > TKM_CSV_MAX_FIELD) {
		set_fatal(r, TKM_E_BAD_REQUEST, r->rec_line != 0 ? r->rec_line : r->piece_line,
		          "a cell is longer than 4096 bytes (an unclosed quote?)");
		return;
	}
	if (r->phase == PHASE_HEADER) {
		header_cell(r, s, len);
	} else {
		row_cell(r, s, len);
	}
}

/* libcsv's end-of-record callback. */
static void on_record(int c, void *data)
{
	tkm_csv *r = data;

	(void)c;
	if (r->fatal != TKM_OK) {
		return;
	}
	if (r->phase == PHASE_HEADER) {
		r->nhdr = r->nfield;
	} else {
		row_check(r);
	}
	r->ready_line = r->rec_line != 0 ? r->rec_line : r->piece_line;
	r->rec_ready = true;
	r->rec_line = 0;
	r->nfield = 0;
}

static tkm_err refill(tkm_csv *r)
{
	size_t got = 0;

	if (r->fd < 0) {
		r->chunk = r->mem;
		r->chunk_len = r->mem_len;
		r->src_eof = true;
		got = r->mem_len;
	} else {
		/* Fill the whole buffer, so that a BOM is never split by a pipe. */
		while (got < READ_CHUNK) {
			ssize_t n = read(r->fd, r->buf + got, READ_CHUNK - got);
			if (n < 0 && errno == EINTR) {
				continue;
			}
			if (n < 0) {
				set_fatal(r, TKM_E_IO, 0, "cannot read the input");
				return r->fatal;
			}
			if (n == 0) {
				r->src_eof = true;
				break;
			}
			got += (size_t)n;
		}
		r->chunk = r->buf;
		r->chunk_len = got;
	}
	r->chunk_pos = 0;
	r->nread += got;
	if (r->nread > TKM_CSV_MAX_FILE) {
		set_fatal(r, TKM_E_RESOURCE_EXHAUSTED, 0, "the input is larger than 64 MiB");
		return r->fatal;
	}
	if (!r->started) {
		r->started = true;
		if (r->chunk_len >= 3 && r->chunk[0] == 0xef && r->chunk[1] == 0xbb &&
		    r->chunk[2] == 0xbf) {
			r->chunk_pos = 3;
		}
	}
	return TKM_OK;
}

static void feed_piece(tkm_csv *r)
{
	const unsigned char *p = r->chunk + r->chunk_pos;
	size_t avail = r->chunk_len - r->chunk_pos;
	size_t lim = avail < PIECE_MAX ? avail : PIECE_MAX, n = 0;
	bool content = false;

	while (n < lim) {
		unsigned char c = p[n++];
		if (c == '\n' || c == '\r') {
			break;
		}
		if (c != ' ' && c != '\t') {
			content = true;
		}
	}
	r->piece_line = r->line;
	/* Outside a record libcsv skips blanks and line ends; anything else starts one. */
	if (r->rec_line == 0 && content) {
		r->rec_line = r->line;
	}
	size_t used = csv_parse(&r->parser, p, n, on_cell, on_record, r);
	r->chunk_pos += n;
	if (r->fatal != TKM_OK) {
		return;
	}
	if (used < n) {
		int e = csv_error(&r->parser);
		if (e == CSV_ENOMEM) {
			set_fatal(r, TKM_E_NOMEM, r->piece_line, "out of memory");
		} else {
			set_fatal(r, TKM_E_BAD_REQUEST, r->piece_line,
			          "broken quoting: a quote inside an unquoted cell, or text after "
			          "a closing quote");
		}
		return;
	}
	if (r->parser.entry_pos > TKM_CSV_MAX_FIELD) {
		set_fatal(r, TKM_E_BAD_REQUEST, r->rec_line != 0 ? r->rec_line : r->piece_line,
		          "a cell is longer than 4096 bytes (an unclosed quote?)");
		return;
	}
	unsigned char last = p[n - 1];
	if (last == '\r') {
		r->line++;
		r->last_cr = true;
	} else {
		if (last == '\n' && !r->last_cr) {
			r->line++;
		}
		r->last_cr = false;
	}
}

static void finish(tkm_csv *r)
{
	r->done = true;
	r->piece_line = r->line;
	if (csv_fini(&r->parser, on_cell, on_record, r) != 0) {
		set_fatal(r, TKM_E_BAD_REQUEST, r->rec_line != 0 ? r->rec_line : r->line,
		          "a quoted cell is never closed");
	}
}

/* Parse until a record is complete, the input ends or reading fails. */
static tkm_err pump(tkm_csv *r)
{
	while (!r->rec_ready && !r->done && r->fatal == TKM_OK) {
		if (r->chunk_pos < r->chunk_len) {
			feed_piece(r);
		} else if (!r->src_eof) {
			(void)refill(r); /* a failure is in r->fatal */
		} else {
			finish(r);
		}
	}
	return r->fatal;
}

static tkm_err reader_new(tkm_csv **out, int fd, const void *mem, size_t mem_len, uint64_t size)
{
	tkm_csv *r = NULL;
	tkm_err err = TKM_E_NOMEM;

	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		goto out;
	}
	r->fd = -1;
	if (fd >= 0) {
		r->buf = malloc(READ_CHUNK);
		if (r->buf == NULL) {
			goto out;
		}
	}
	if (csv_init(&r->parser, CSV_STRICT | CSV_STRICT_FINI) != 0) {
		goto out;
	}
	r->parser_init = true;
	r->fd = fd;
	r->mem = mem;
	r->mem_len = mem_len;
	r->size = size;
	r->line = 1;
	r->phase = PHASE_OPEN;
	*out = r;
	r = NULL;
	err = TKM_OK;
out:
	tkm_csv_free(r);
	return err;
}

tkm_err tkm_csv_open_file(tkm_csv **out, const char *path)
{
	int fd = -1;
	struct stat st;
	uint64_t size = 0;
	tkm_err err;

	if (out == NULL || path == NULL) {
		return TKM_E_INVALID_ARG;
	}
	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			err = TKM_E_NOT_FOUND;
		} else if (errno == EACCES || errno == EPERM) {
			err = TKM_E_PERMISSION_DENIED;
		} else {
			err = TKM_E_IO;
		}
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		err = TKM_E_IO;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		err = TKM_E_BAD_REQUEST;
		goto out;
	}
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
		if (size > TKM_CSV_MAX_FILE) {
			err = TKM_E_RESOURCE_EXHAUSTED;
			goto out;
		}
	}
	err = reader_new(out, fd, NULL, 0, size);
	if (err == TKM_OK) {
		fd = -1; /* the reader owns it */
	}
out:
	if (fd >= 0) {
		close(fd);
	}
	return err;
}

tkm_err tkm_csv_open_mem(tkm_csv **out, const void *buf, size_t len)
{
	if (out == NULL || (buf == NULL && len != 0)) {
		return TKM_E_INVALID_ARG;
	}
	*out = NULL;
	if ((uint64_t)len > TKM_CSV_MAX_FILE) {
		return TKM_E_RESOURCE_EXHAUSTED;
	}
	return reader_new(out, -1, buf, len, len);
}

void tkm_csv_free(tkm_csv *r)
{
	if (r == NULL) {
		return;
	}
	if (r->parser_init) {
		csv_free(&r->parser);
	}
	if (r->fd >= 0) {
		close(r->fd);
	}
	free(r->buf);
	free(r->map);
	free(r->seen);
	free(r->cells);
	free(r->values);
	free(r);
}

/* Join the names of cols (all, or only the required ones not seen) into buf. */
static void join_names(const tkm_csv *r, bool missing_only, char *buf, size_t cap)
{
	size_t pos = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < r->ncols; i++) {
		if (missing_only && (!r->cols[i].required || r->seen[i])) {
			continue;
		}
		const char *name = r->cols[i].name;
		if ((pos > 0 && !append_shown(buf, cap, &pos, ", ", 2)) ||
		    !append_shown(buf, cap, &pos, name, strlen(name))) {
			return;
		}
	}
}

static tkm_err header_verdict(tkm_csv *r)
{
	char names[ERR_LEN], missing[ERR_LEN / 2];

	r->err_line = r->ready_line;
	join_names(r, true, missing, sizeof(missing));
	if (r->unknown_len > 0) {
		join_names(r, false, names, sizeof(names));
		tkm_why_set(r->err, sizeof(r->err),
		            "unknown column%s %s%s%s; the known columns are %s",
		            strchr(r->unknown, ',') != NULL ? "s" : "", r->unknown,
		            missing[0] != '\0' ? "; missing required: " : "", missing, names);
		return TKM_E_BAD_REQUEST;
	}
	if (r->dup_col != 0) {
		tkm_why_set(r->err, sizeof(r->err), "column \"%s\" is named twice",
		            r->cols[r->dup_col - 1].name);
		return TKM_E_BAD_REQUEST;
	}
	if (r->empty_pos != 0) {
		tkm_why_set(r->err, sizeof(r->err), "header cell %zu has no column name",
		            r->empty_pos);
		return TKM_E_BAD_REQUEST;
	}
	if (missing[0] != '\0') {
		tkm_why_set(r->err, sizeof(r->err), "missing required column%s: %s",
		            strchr(missing, ',') != NULL ? "s" : "", missing);
		return TKM_E_BAD_REQUEST;
	}
	r->err_line = 0;
	return TKM_OK;
}

tkm_err tkm_csv_read_header(tkm_csv *r, const tkm_csv_column *cols, size_t ncols)
{
	tkm_err err;

	if (r == NULL || cols == NULL || ncols == 0 || ncols > MAX_COLUMNS ||
	    r->phase != PHASE_OPEN) {
		return TKM_E_INVALID_ARG;
	}
	for (size_t i = 0; i < ncols; i++) {
		if (cols[i].name == NULL || cols[i].name[0] == '\0' ||
		    cols[i].max_len > TKM_CSV_MAX_FIELD || cols[i].max_len == 0) {
			return TKM_E_INVALID_ARG;
		}
	}
	r->map = calloc(ncols, sizeof(*r->map));
	r->seen = calloc(ncols, sizeof(*r->seen));
	r->values = calloc(ncols, sizeof(*r->values));
	r->cells = malloc(ncols * (TKM_CSV_MAX_FIELD + 1));
	if (r->map == NULL || r->seen == NULL || r->values == NULL || r->cells == NULL) {
		set_fatal(r, TKM_E_NOMEM, 0, "out of memory");
		return r->fatal;
	}
	r->cols = cols;
	r->ncols = ncols;
	r->phase = PHASE_HEADER;
	err = pump(r);
	if (err != TKM_OK) {
		return err;
	}
	if (!r->rec_ready) {
		set_fatal(r, TKM_E_BAD_REQUEST, 0, "the file is empty: no header row");
		return r->fatal;
	}
	r->rec_ready = false;
	err = header_verdict(r);
	if (err != TKM_OK) {
		r->fatal = err; /* nothing after a bad header is read */
		return err;
	}
	r->phase = PHASE_ROWS;
	return TKM_OK;
}

tkm_err tkm_csv_next(tkm_csv *r, tkm_csv_row *row, bool *eof)
{
	tkm_err err;

	if (r == NULL || row == NULL || eof == NULL) {
		return TKM_E_INVALID_ARG;
	}
	if (r->fatal != TKM_OK) {
		return r->fatal;
	}
	if (r->phase != PHASE_ROWS) {
		return TKM_E_INVALID_ARG;
	}
	for (size_t i = 0; i < r->ncols; i++) {
		r->values[i] = NULL;
	}
	r->row_bad = false;
	r->reason[0] = '\0';
	err = pump(r);
	if (err != TKM_OK) {
		return err;
	}
	row->values = (const char *const *)r->values;
	row->nvalues = r->ncols;
	if (!r->rec_ready) {
		row->line = 0;
		row->error = NULL;
		*eof = true;
		return TKM_OK;
	}
	r->rec_ready = false;
	row->line = r->ready_line;
	row->error = r->row_bad ? r->reason : NULL;
	*eof = false;
	return TKM_OK;
}

const char *tkm_csv_error(const tkm_csv *r)
{
	return r != NULL ? r->err : "";
}

unsigned long tkm_csv_error_line(const tkm_csv *r)
{
	return r != NULL ? r->err_line : 0;
}

uint64_t tkm_csv_bytes_read(const tkm_csv *r)
{
	return r != NULL ? r->nread - (r->chunk_len - r->chunk_pos) : 0;
}

uint64_t tkm_csv_size(const tkm_csv *r)
{
	return r != NULL ? r->size : 0;
}
