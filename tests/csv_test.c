/*
 * csv_test.c - unit tests of tkm_csv, the CSV reader of terminal import.
 *
 * Header mapping, quoting, line ends and the BOM, every cell rule with the
 * line it is reported on, the errors that stop a reading, the size caps, and
 * a generated 10,000-row file with bad rows spread through it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tkm_csv.h"
#include "tkm_test.h"

#define T  tkm_csv_terminal_columns
#define NT TKM_CSV_T_NCOLUMNS

/* What one record gave: its line, its refusal reason, and a few cells. */
typedef struct got {
	unsigned long line;
	bool bad;
	char error[256];
	/* Columns 0, 1 and 2 of the caller's list, then notes (9); "" for NULL. */
	char cell[4][128];
	bool null[4];
} got;

typedef struct result {
	tkm_err header;     /* tkm_csv_read_header's result */
	tkm_err end;        /* the result that ended the reading */
	char error[1024];   /* tkm_csv_error() at the end */
	unsigned long line; /* tkm_csv_error_line() at the end */
	size_t n;
	got rows[64];
} result;

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = src != NULL ? strlen(src) : 0;

	if (n >= cap) {
		n = cap - 1;
	}
	if (n > 0) {
		memcpy(dst, src, n);
	}
	dst[n] = '\0';
}

/* Read text[0..len) with cols to the end; keep what came out in res. */
static void run(const char *text, size_t len, const tkm_csv_column *cols, size_t ncols, result *res)
{
	tkm_csv *r = NULL;
	tkm_csv_row row;
	bool eof = false;

	memset(res, 0, sizeof(*res));
	res->end = tkm_csv_open_mem(&r, text, len);
	if (res->end != TKM_OK) {
		return;
	}
	res->header = tkm_csv_read_header(r, cols, ncols);
	res->end = res->header;
	while (res->end == TKM_OK) {
		res->end = tkm_csv_next(r, &row, &eof);
		if (res->end != TKM_OK || eof) {
			break;
		}
		if (res->n == sizeof(res->rows) / sizeof(res->rows[0])) {
			continue;
		}
		got *g = &res->rows[res->n++];
		g->line = row.line;
		g->bad = row.error != NULL;
		copy_str(g->error, sizeof(g->error), row.error);
		for (size_t i = 0; i < 4; i++) {
			size_t c = i < 3 ? i : TKM_CSV_T_NOTES;
			if (c < row.nvalues) {
				g->null[i] = row.values[c] == NULL;
				copy_str(g->cell[i], sizeof(g->cell[i]), row.values[c]);
			}
		}
	}
	copy_str(res->error, sizeof(res->error), tkm_csv_error(r));
	res->line = tkm_csv_error_line(r);
	tkm_csv_free(r);
}

static void run_str(const char *text, result *res)
{
	run(text, strlen(text), T, NT, res);
}

static bool has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static void test_header(void)
{
	static result res;

	/* Case, spaces and tabs around names, quoted names, absent columns. */
	run_str(" Serial ,\tMANUFACTURER\t,\"  Notes \",Purchase_Date\nsn1,acme,hello,\n", &res);
	CHECK_EQ_INT(res.header, TKM_OK);
	CHECK_EQ_INT(res.end, TKM_OK);
	CHECK_EQ_INT(res.n, 1);
	CHECK_EQ_INT(res.rows[0].line, 2);
	CHECK(!res.rows[0].bad);
	CHECK_STR(res.rows[0].cell[0], "sn1");
	CHECK_STR(res.rows[0].cell[1], "acme");
	CHECK(res.rows[0].null[2]); /* model: not in the header */
	CHECK_STR(res.rows[0].cell[3], "hello");

	/* Unknown columns are named, every one of them. */
	run_str("serial,manufacturer,colour,Size\nsn1,acme,red,xl\n", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
	CHECK(has(res.error, "unknown columns \"colour\", \"Size\""));
	CHECK(has(res.error, "known columns are serial, manufacturer, model"));
	run_str("Serial,colour\n", &res);
	CHECK(
	    has(res.error, "unknown column \"colour\"; missing required: manufacturer; the known"));
	CHECK_EQ_INT(res.line, 1);
	CHECK_EQ_INT(res.n, 0);

	/* One unknown column, after blank lines: its line is reported. */
	run_str("\n  \n\r\nserial,manufacturer,\"we\"\"ird\x01\"\n", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
	CHECK(has(res.error, "unknown column \"we\"ird?\""));
	CHECK_EQ_INT(res.line, 4);

	/* Missing required columns. */
	run_str("model,site\nx,y\n", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
	CHECK(has(res.error, "missing required columns: serial, manufacturer"));
	run_str("Serial,model\nx,y\n", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
	CHECK(has(res.error, "missing required column: manufacturer"));

	/* Duplicate and unnamed columns. */
	run_str("serial,manufacturer, SERIAL\n", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
	CHECK(has(res.error, "\"serial\" is named twice"));
	run_str("serial,,manufacturer\n", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
	CHECK(has(res.error, "header cell 2 has no column name"));

	/* No header at all. */
	run_str("", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
	CHECK(has(res.error, "no header row"));
	run_str("\n\r\n   \n", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);

	/* A header and nothing else is an empty import, not an error. */
	run_str("serial,manufacturer", &res);
	CHECK_EQ_INT(res.header, TKM_OK);
	CHECK_EQ_INT(res.end, TKM_OK);
	CHECK_EQ_INT(res.n, 0);

	/* A long unknown name is shortened in the message. */
	static char big[6000];
	size_t pos = 0;
	const char *head = "serial,manufacturer,";
	memcpy(big, head, strlen(head));
	pos = strlen(head);
	for (int i = 0; i < 200; i++) {
		big[pos++] = 'x';
	}
	for (int i = 0; i < 200; i++) {
		memcpy(big + pos, ",abcdefghij", 11);
		pos += 11;
	}
	big[pos++] = '\n';
	run(big, pos, T, NT, &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
	CHECK(has(res.error, "xxxxxxxxxx...\""));
	CHECK(has(res.error, ", ..."));

	/* Misuse: rows before the header, a second header, bad column lists. */
	tkm_csv *r = NULL;
	tkm_csv_row row;
	bool eof;
	tkm_csv_column toolong = {"x", TKM_CSV_TEXT, TKM_CSV_MAX_FIELD + 1, false};
	CHECK_EQ_INT(tkm_csv_open_mem(&r, "serial,manufacturer\n", 20), TKM_OK);
	CHECK_EQ_INT(tkm_csv_next(r, &row, &eof), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_csv_read_header(r, T, 0), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_csv_read_header(r, &toolong, 1), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_csv_read_header(r, T, NT), TKM_OK);
	CHECK_EQ_INT(tkm_csv_read_header(r, T, NT), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_csv_next(r, &row, &eof), TKM_OK);
	CHECK(eof);
	CHECK_EQ_INT(tkm_csv_next(r, &row, &eof), TKM_OK);
	CHECK(eof);
	tkm_csv_free(r);
	tkm_csv_free(NULL);
}

static void test_quoting(void)
{
	static result res;

	/* Commas, doubled quotes, spaces kept inside quotes, empty quoted cells. */
	run_str("serial,manufacturer,model,notes\n"
	        "sn1,acme,\"Move, \"\"5000\"\"\",\"a, b\"\n"
	        "\"sn2\" , \"acme\" ,\"\",\n"
	        "sn3,acme,  spaced  ,\n",
	        &res);
	CHECK_EQ_INT(res.end, TKM_OK);
	CHECK_EQ_INT(res.n, 3);
	CHECK_STR(res.rows[0].cell[2], "Move, \"5000\"");
	CHECK_STR(res.rows[0].cell[3], "a, b");
	CHECK(!res.rows[0].bad);
	CHECK_STR(res.rows[1].cell[0], "sn2");
	CHECK(res.rows[1].null[2]); /* "" is an empty cell */
	CHECK(!res.rows[1].bad);
	CHECK_STR(res.rows[2].cell[2], "spaced"); /* unquoted: trimmed */
	CHECK_EQ_INT(res.rows[2].line, 4);

	/*
	 * A quoted cell over three lines is one cell (so the row fails the notes
	 * rule, not the cell count), and the rows after it keep their lines.
	 */
	run_str("serial,manufacturer,notes\n"
	        "sn1,acme,\"line one\nline, two\n\"\"three\"\"\"\n"
	        "sn2,acme,ok\n"
	        "\n"
	        "\"sn\n3\",acme,\n"
	        "sn4,acme,\"x\r\ny\"\r\n"
	        "sn5,acme,last",
	        &res);
	CHECK_EQ_INT(res.end, TKM_OK);
	CHECK_EQ_INT(res.n, 5);
	CHECK_EQ_INT(res.rows[0].line, 2);
	CHECK(has(res.rows[0].error, "notes: contains a control character"));
	CHECK_EQ_INT(res.rows[1].line, 5);
	CHECK(!res.rows[1].bad);
	CHECK_STR(res.rows[1].cell[3], "ok");
	CHECK_EQ_INT(res.rows[2].line, 7);
	CHECK(has(res.rows[2].error, "serial: only letters"));
	CHECK_EQ_INT(res.rows[3].line, 9);
	CHECK(has(res.rows[3].error, "notes: contains a control character"));
	CHECK_EQ_INT(res.rows[4].line, 11);
	CHECK_STR(res.rows[4].cell[3], "last");

	/* Broken quoting stops the reading at its line. */
	run_str("serial,manufacturer\nsn1,acme\nsn\"2,acme\nsn3,acme\n", &res);
	CHECK_EQ_INT(res.end, TKM_E_BAD_REQUEST);
	CHECK_EQ_INT(res.n, 1);
	CHECK_EQ_INT(res.line, 3);
	CHECK(has(res.error, "broken quoting"));
	run_str("serial,manufacturer\nsn1,acme\n\n\"sn2\"x,acme\n", &res);
	CHECK_EQ_INT(res.end, TKM_E_BAD_REQUEST);
	CHECK_EQ_INT(res.line, 4);

	/* An unclosed quote: reported on the line where the record began. */
	run_str("serial,manufacturer\nsn1,acme\nsn2,\"acme\nsn3,acme\n", &res);
	CHECK_EQ_INT(res.end, TKM_E_BAD_REQUEST);
	CHECK_EQ_INT(res.n, 1);
	CHECK_EQ_INT(res.line, 3);
	CHECK(has(res.error, "never closed"));
}

static void test_line_ends(void)
{
	static result res;

	/* CRLF throughout, a blank CRLF line, no CR left in the cells. */
	run_str("serial,manufacturer,model\r\nsn1,acme,m1\r\n\r\nsn2,acme,m2\r\n", &res);
	CHECK_EQ_INT(res.end, TKM_OK);
	CHECK_EQ_INT(res.n, 2);
	CHECK_STR(res.rows[0].cell[2], "m1");
	CHECK_EQ_INT(res.rows[0].line, 2);
	CHECK_STR(res.rows[1].cell[2], "m2");
	CHECK_EQ_INT(res.rows[1].line, 4);

	/* Old Mac CR line ends count as lines too. */
	run_str("serial,manufacturer\rsn1,acme\r\rsn2,acme", &res);
	CHECK_EQ_INT(res.n, 2);
	CHECK_EQ_INT(res.rows[0].line, 2);
	CHECK_EQ_INT(res.rows[1].line, 4);

	/* A UTF-8 BOM before the header is skipped; one later is data. */
	run_str("\xef\xbb\xbfserial,manufacturer\r\nsn1,acme\r\n\xef\xbb\xbfsn2,acme\r\n", &res);
	CHECK_EQ_INT(res.header, TKM_OK);
	CHECK_EQ_INT(res.n, 2);
	CHECK(!res.rows[0].bad);
	CHECK_EQ_INT(res.rows[1].line, 3);
	CHECK(has(res.rows[1].error, "serial: only letters"));
	/* A BOM alone is an empty file. */
	run_str("\xef\xbb\xbf", &res);
	CHECK_EQ_INT(res.header, TKM_E_BAD_REQUEST);
}

/* One row per rule; the expected line and the start of the reason. */
static const struct {
	const char *row;
	const char *reason; /* NULL: the row passes */
} rules[] = {
    {"sn-1.a_B,acme,,,,,,,,", NULL},
    {"SN12345678901234567890123456789012345678901234567890123456789012,acme,,,,,,,,",
     NULL}, /* 64 bytes */
    {"SN123456789012345678901234567890123456789012345678901234567890123,acme,,,,,,,,",
     "serial: longer than 64 bytes"},
    {"sn 1,acme,,,,,,,,", "serial: only letters"},
    {"sn/1,acme,,,,,,,,", "serial: only letters"},
    {",acme,,,,,,,,", "serial: missing, and the column is required"},
    {"sn1,,,,,,,,,", "manufacturer: missing"},
    {"sn1,ac:me,,,,,,,,", "manufacturer: only letters"},
    {"sn1,acme,Move/5000 (EU),m-1,site.2,grp_3,2024-02-29,1.2.3-rc1,app 4,ok", NULL},
    {"sn1,acme,Mov\xc3\xa9,,,,,,,", "model: only printable ASCII"},
    {"sn1,acme,,m 1,,,,,,", "merchant: only letters"},
    {"sn1,acme,,,s#1,,,,,", "site: only letters"},
    {"sn1,acme,,,,g1234567890123456789012345678901234567890123456789012345678901234,,,,",
     "group: longer than 64 bytes"},
    {"sn1,acme,,,,,2023-02-29,,,", "purchase_date: not a real date"},
    {"sn1,acme,,,,,2023-04-31,,,", "purchase_date: not a real date"},
    {"sn1,acme,,,,,2023-13-01,,,", "purchase_date: not a real date"},
    {"sn1,acme,,,,,2023-00-10,,,", "purchase_date: not a real date"},
    {"sn1,acme,,,,,2023-1-01,,,", "purchase_date: not a date in the form"},
    {"sn1,acme,,,,,2023-01-011,,,", "purchase_date: longer than 10 bytes"},
    {"sn1,acme,,,,,2023/01/01,,,", "purchase_date: not a date in the form"},
    {"sn1,acme,,,,,1899-12-31,,,", "purchase_date: a year before 1900"},
    {"sn1,acme,,,,,2000-02-29,,,", NULL},
    {"sn1,acme,,,,,1900-02-29,,,", "purchase_date: not a real date"},
    {"sn1,acme,,,,,,123456789012345678901234567890123,,", "firmware_version: longer than 32"},
    {"sn1,acme,,,,,,,\"v\t1\",", "app_version: only printable ASCII"},
    {"sn1,acme,,,,,,,,\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80, \"\"ok\"\"\"", NULL},
    {"sn1,acme,,,,,,,,\"tab\there\"", "notes: contains a control character"},
    {"sn1,acme,,,,,,,,del\x7f", "notes: contains a control character"},
    {"sn1,acme,,,,,,,,c1\xc2\x85", "notes: contains a control character"},
    {"sn1,acme,,,,,,,,bad\xff", "notes: not valid UTF-8"},
    {"sn1,acme,,,,,,,,over\xc0\x80long", "notes: not valid UTF-8"},
    {"sn1,acme,,,,,,,,sur\xed\xa0\x80rogate", "notes: not valid UTF-8"},
    {"sn1,acme,,,,,,,,cut\xe2\x82", "notes: not valid UTF-8"},
    {"sn1,acme\xe2,,,,,,,,", "manufacturer: not valid UTF-8"},
    {"sn1,acme,,,,,,,", "9 cells where the header has 10"},
    {"sn1,acme,,,,,,,,,", "11 cells where the header has 10"},
    {"sn1", "1 cells where the header has 10"},
};

static void test_rules(void)
{
	static result res;
	static char text[16384];
	size_t pos = 0, nrules = sizeof(rules) / sizeof(rules[0]);
	const char *header = "serial,manufacturer,model,merchant,site,group,purchase_date,"
	                     "firmware_version,app_version,notes\n";

	memcpy(text, header, strlen(header));
	pos = strlen(header);
	for (size_t i = 0; i < nrules; i++) {
		size_t n = strlen(rules[i].row);
		memcpy(text + pos, rules[i].row, n);
		pos += n;
		/* A blank line after every row: row i is on line 2 + 2 i. */
		memcpy(text + pos, "\n\n", 2);
		pos += 2;
	}
	run(text, pos, T, NT, &res);
	CHECK_EQ_INT(res.end, TKM_OK);
	CHECK_EQ_INT(res.n, nrules);
	for (size_t i = 0; i < nrules && i < res.n; i++) {
		CHECK_EQ_INT(res.rows[i].line, 2 + 2 * i);
		if (rules[i].reason == NULL) {
			if (res.rows[i].bad) {
				fprintf(stderr, "rule %zu: unexpected refusal: %s\n", i,
				        res.rows[i].error);
			}
			CHECK(!res.rows[i].bad);
		} else if (strncmp(res.rows[i].error, rules[i].reason, strlen(rules[i].reason)) !=
		           0) {
			fprintf(stderr, "rule %zu: got \"%s\", want \"%s\"\n", i, res.rows[i].error,
			        rules[i].reason);
			CHECK(false);
		}
	}

	/* A NUL byte inside a cell. */
	static const char nul[] = "serial,manufacturer\nsn1,ac\0me\nsn2,acme\n";
	run(nul, sizeof(nul) - 1, T, NT, &res);
	CHECK_EQ_INT(res.n, 2);
	CHECK(has(res.rows[0].error, "manufacturer: contains a NUL byte"));
	CHECK_EQ_INT(res.rows[0].line, 2);
	CHECK(!res.rows[1].bad);

	/* tkm_csv_check_value on its own, as `terminal add` would use it. */
	const tkm_csv_column *date = &T[TKM_CSV_T_PURCHASE_DATE];
	CHECK(tkm_csv_check_value(date, "2024-12-31", 10) == NULL);
	CHECK_STR(tkm_csv_check_value(date, "", 0), "missing");
	CHECK_STR(tkm_csv_check_value(date, "2024-12-311", 11), "too long");
	CHECK_STR(tkm_csv_check_value(&T[TKM_CSV_T_SERIAL], "a b", 3),
	          "only letters, digits, '.', '_' and '-' are allowed");
	CHECK(tkm_csv_check_value(&T[TKM_CSV_T_NOTES], "\xe2\x80\xa8", 3) == NULL);
}

static void test_limits(void)
{
	static result res;
	size_t big = 3 * 3000 + 64;
	char *text = malloc(big + TKM_CSV_MAX_FIELD + 64);
	const tkm_csv_column wide[3] = {
	    {"a", TKM_CSV_TEXT, TKM_CSV_MAX_FIELD, true},
	    {"b", TKM_CSV_TEXT, TKM_CSV_MAX_FIELD, false},
	    {"c", TKM_CSV_TEXT, TKM_CSV_MAX_FIELD, false},
	};
	size_t pos = 0;

	CHECK(text != NULL);
	if (text == NULL) {
		return;
	}
	/* A 9 KB line of three 3000-byte cells, then a cell of exactly 4096. */
	memcpy(text, "a,b,c\n", 6);
	pos = 6;
	for (int c = 0; c < 3; c++) {
		memset(text + pos, 'x' + c, 3000);
		pos += 3000;
		text[pos++] = c < 2 ? ',' : '\n';
	}
	text[pos++] = '"';
	memset(text + pos, 'q', TKM_CSV_MAX_FIELD);
	pos += TKM_CSV_MAX_FIELD;
	memcpy(text + pos, "\",,\nend,,\n", 10);
	pos += 10;
	run(text, pos, wide, 3, &res);
	CHECK_EQ_INT(res.end, TKM_OK);
	CHECK_EQ_INT(res.n, 3);
	CHECK(!res.rows[0].bad && !res.rows[1].bad && !res.rows[2].bad);
	CHECK_EQ_INT(res.rows[1].line, 3);
	CHECK_EQ_INT(res.rows[2].line, 4);
	CHECK_STR(res.rows[2].cell[0], "end");

	/* 4097 bytes, quoted or not, stops the reading. */
	for (int quoted = 0; quoted < 2; quoted++) {
		pos = 0;
		memcpy(text, "a\nok\n", 5);
		pos = 5;
		if (quoted) {
			text[pos++] = '"';
		}
		memset(text + pos, 'q', TKM_CSV_MAX_FIELD + 1);
		pos += TKM_CSV_MAX_FIELD + 1;
		if (quoted) {
			text[pos++] = '"';
		}
		memcpy(text + pos, "\nok\n", 4);
		pos += 4;
		run(text, pos, wide, 1, &res);
		CHECK_EQ_INT(res.end, TKM_E_BAD_REQUEST);
		CHECK_EQ_INT(res.n, 1);
		CHECK_EQ_INT(res.line, 3);
		CHECK(has(res.error, "longer than 4096 bytes"));
	}
	free(text);

	/* An unclosed quote near the start of a long file stops at 4 KiB. */
	size_t longlen = 200000;
	char *lng = malloc(longlen);
	CHECK(lng != NULL);
	if (lng != NULL) {
		memcpy(lng, "a\n\"", 3);
		for (size_t i = 3; i < longlen; i++) {
			lng[i] = i % 50 == 0 ? '\n' : 'z';
		}
		run(lng, longlen, wide, 1, &res);
		CHECK_EQ_INT(res.end, TKM_E_BAD_REQUEST);
		CHECK_EQ_INT(res.line, 2);
		free(lng);
	}

	/* Over 64 MiB: refused before reading, from memory or from a file. */
	size_t over = (size_t)TKM_CSV_MAX_FILE + 1;
	char *huge = calloc(1, over);
	tkm_csv *r = NULL;
	if (huge != NULL) {
		CHECK_EQ_INT(tkm_csv_open_mem(&r, huge, over), TKM_E_RESOURCE_EXHAUSTED);
		CHECK(r == NULL);
		free(huge);
	}
	char path[] = "/tmp/tkm_csv_test_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(ftruncate(fd, (off_t)over) == 0);
		CHECK_EQ_INT(tkm_csv_open_file(&r, path), TKM_E_RESOURCE_EXHAUSTED);
		CHECK(ftruncate(fd, (off_t)TKM_CSV_MAX_FILE) == 0);
		CHECK_EQ_INT(tkm_csv_open_file(&r, path), TKM_OK);
		tkm_csv_free(r);
		r = NULL;
		close(fd);
		unlink(path);
	}
	CHECK_EQ_INT(tkm_csv_open_file(&r, "/nonexistent/tkm.csv"), TKM_E_NOT_FOUND);
	CHECK_EQ_INT(tkm_csv_open_file(&r, "/tmp"), TKM_E_BAD_REQUEST);
	CHECK(r == NULL);
}

/* A child writes total bytes of "a" rows into a pipe; returns the read end's fd. */
static int pipe_writer(size_t total, pid_t *child)
{
	int fds[2];
	static char line[4001];

	if (pipe(fds) != 0) {
		return -1;
	}
	*child = fork();
	if (*child < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (*child == 0) {
		signal(SIGPIPE, SIG_IGN);
		close(fds[0]);
		memset(line, 'x', sizeof(line) - 1);
		line[sizeof(line) - 1] = '\n';
		size_t done = 0;
		if (write(fds[1], "a\n", 2) != 2) {
			_exit(1);
		}
		while (done < total) {
			if (write(fds[1], line, sizeof(line)) != (ssize_t)sizeof(line)) {
				_exit(0); /* the reader stopped */
			}
			done += sizeof(line);
		}
		_exit(0);
	}
	close(fds[1]);
	return fds[0];
}

/* Input from a pipe: read to the end, and cut off past 64 MiB. */
static void test_pipe(void)
{
	const tkm_csv_column one = {"a", TKM_CSV_TEXT, TKM_CSV_MAX_FIELD, true};
	size_t sizes[2] = {100000, (size_t)TKM_CSV_MAX_FILE + 8192};

	for (int i = 0; i < 2; i++) {
		pid_t child = -1;
		int fd = pipe_writer(sizes[i], &child);
		char path[64];
		tkm_csv *r = NULL;
		tkm_csv_row row;
		bool eof = false;
		size_t rows = 0, refused = 0;
		tkm_err err = TKM_OK;

		CHECK(fd >= 0);
		if (fd < 0) {
			return;
		}
		CHECK(snprintf(path, sizeof(path), "/dev/fd/%d", fd) > 0);
		CHECK_EQ_INT(tkm_csv_open_file(&r, path), TKM_OK);
		close(fd); /* the reader opened its own descriptor */
		CHECK_EQ_INT(tkm_csv_size(r), 0);
		CHECK_EQ_INT(tkm_csv_read_header(r, &one, 1), TKM_OK);
		while ((err = tkm_csv_next(r, &row, &eof)) == TKM_OK && !eof) {
			refused += row.error != NULL;
			rows++;
		}
		if (i == 0) {
			CHECK_EQ_INT(err, TKM_OK);
			CHECK_EQ_INT(rows, (sizes[0] + 4000) / 4001);
		} else {
			CHECK_EQ_INT(err, TKM_E_RESOURCE_EXHAUSTED);
			CHECK(has(tkm_csv_error(r), "larger than 64 MiB"));
			CHECK(rows > 16000);
		}
		CHECK_EQ_INT(refused, 0);
		tkm_csv_free(r);
		int status = 0;
		CHECK(waitpid(child, &status, 0) == child);
	}
}

/* A growing text buffer for the generated file. */
typedef struct gen {
	char *p;
	size_t len, cap;
	bool failed;
} gen;

static void gen_add(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void gen_add(gen *g, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (g->failed) {
		return;
	}
	if (g->cap - g->len < 4096) {
		size_t cap = g->cap * 2 + 65536;
		char *p = realloc(g->p, cap);
		if (p == NULL) {
			g->failed = true;
			return;
		}
		g->p = p;
		g->cap = cap;
	}
	va_start(ap, fmt);
	n = vsnprintf(g->p + g->len, g->cap - g->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= g->cap - g->len) {
		g->failed = true;
		return;
	}
	g->len += (size_t)n;
}

#define GEN_ROWS 10000
#define GEN_BAD  50

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_generated(void)
{
	static unsigned long want_line[GEN_ROWS];
	static bool want_bad[GEN_ROWS];
	gen g = {NULL, 0, 0, false};
	unsigned long line = 1;

	/* CRLF header; data rows with LF; every 200th row bad in one of 5 ways. */
	gen_add(&g, "\xef\xbb\xbfSerial,Manufacturer,Model,Merchant,Site,Group,Purchase_Date,"
	            "Firmware_Version,App_Version,Notes\r\n");
	line++;
	for (size_t i = 0; i < GEN_ROWS; i++) {
		const char *model = i % 7 == 0 ? "\"Move, \"\"5000\"\"\"" : "Move5000";
		const char *notes = i % 3 == 0 ? "\"shop, back office\"" : "";
		const char *date = "2023-06-15";
		const char *serial_tail = "";
		want_line[i] = line;
		want_bad[i] = i % (GEN_ROWS / GEN_BAD) == 99;
		if (want_bad[i]) {
			switch ((i / (GEN_ROWS / GEN_BAD)) % 5) {
			case 0:
				date = "2023-02-30";
				break;
			case 1:
				serial_tail = " x";
				break;
			case 2:
				notes = "\"two\nlines\"";
				line++;
				break;
			case 3:
				notes = "bad\xff";
				break;
			default:
				notes = "a,b";
				break;
			}
		}
		gen_add(&g, "SN%06zu%s,ACME,%s,m%03zu,site-%zu,grp.%zu,%s,1.2.%zu,4.5,%s\n", i,
		        serial_tail, model, i % 1000, i % 17, i % 5, date, i % 10, notes);
		line++;
		if (i % 1000 == 500) {
			gen_add(&g, "\n");
			line++;
		}
	}
	CHECK(!g.failed);
	if (g.failed) {
		free(g.p);
		return;
	}

	char path[] = "/tmp/tkm_csv_gen_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0) {
		free(g.p);
		return;
	}
	CHECK(write(fd, g.p, g.len) == (ssize_t)g.len);
	close(fd);

	tkm_csv *r = NULL;
	tkm_csv_row row;
	bool eof = false;
	size_t n = 0, good = 0, bad = 0, mismatched = 0;
	double t0 = now_s();
	CHECK_EQ_INT(tkm_csv_open_file(&r, path), TKM_OK);
	CHECK_EQ_INT(tkm_csv_size(r), g.len);
	CHECK_EQ_INT(tkm_csv_read_header(r, T, NT), TKM_OK);
	for (;;) {
		tkm_err err = tkm_csv_next(r, &row, &eof);
		if (err != TKM_OK) {
			fprintf(stderr, "line %lu: %s\n", tkm_csv_error_line(r), tkm_csv_error(r));
			CHECK_EQ_INT(err, TKM_OK);
			break;
		}
		if (eof) {
			break;
		}
		if (n < GEN_ROWS) {
			bool ok_line = row.line == want_line[n];
			bool ok_bad = (row.error != NULL) == want_bad[n];
			bool ok_serial = true;
			if (row.error == NULL) {
				char serial[16];
				int k = snprintf(serial, sizeof(serial), "SN%06zu", n);
				ok_serial = k > 0 && row.values[TKM_CSV_T_SERIAL] != NULL &&
				            strcmp(row.values[TKM_CSV_T_SERIAL], serial) == 0 &&
				            row.values[TKM_CSV_T_MODEL] != NULL &&
				            (n % 3 == 0) == (row.values[TKM_CSV_T_NOTES] != NULL);
			}
			if (!ok_line || !ok_bad || !ok_serial) {
				if (mismatched++ < 5) {
					fprintf(stderr, "row %zu: line %lu want %lu, error %s\n", n,
					        row.line, want_line[n],
					        row.error != NULL ? row.error : "(none)");
				}
			}
		}
		n++;
		if (row.error != NULL) {
			bad++;
		} else {
			good++;
		}
	}
	double t1 = now_s();
	CHECK_EQ_INT(tkm_csv_bytes_read(r), g.len);
	tkm_csv_free(r);
	unlink(path);
	CHECK_EQ_INT(n, GEN_ROWS);
	CHECK_EQ_INT(bad, GEN_BAD);
	CHECK_EQ_INT(good, GEN_ROWS - GEN_BAD);
	CHECK_EQ_INT(mismatched, 0);
	printf("csv: %d rows (%zu bytes, %zu refused) read in %.1f ms\n", GEN_ROWS, g.len, bad,
	       (t1 - t0) * 1e3);
	free(g.p);
}

int main(void)
{
	test_header();
	test_quoting();
	test_line_ends();
	test_rules();
	test_limits();
	test_pipe();
	test_generated();
	return tkm_test_report("csv");
}
