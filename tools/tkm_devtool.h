/*
 * tkm_devtool.h - what the device tools tkm-terminal and tkm-station share:
 * exit codes, error reporting, option tables, output of untrusted text,
 * connecting, calls with checked replies, and new private files.
 *
 * Every string that came from the server goes out through
 * tkm_devtool_put_text*() or tkm_devtool_put_json_*(), never through a format
 * string. Nothing here prints a key, and nothing here keeps secrets: the
 * tools wipe what they hold themselves.
 */
#ifndef TKM_DEVTOOL_H
#define TKM_DEVTOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "tkm/client.h"
#include "tkm_cbor.h"

#define TKM_DEVTOOL_EXIT_OK      0
#define TKM_DEVTOOL_EXIT_SERVER  1 /* an error or invalid reply, or a local failure */
#define TKM_DEVTOOL_EXIT_USAGE   2 /* bad arguments, URL, TLS settings or key file */
#define TKM_DEVTOOL_EXIT_CONNECT 3 /* cannot connect, timeout, connection closed */

#define TKM_DEVTOOL_PATH_MAX 4096

/* One command of a tool, as a row of a const table. */
typedef struct tkm_devtool_cmd {
	const char *name;
	const char *summary; /* one line for the command list */
	const char *usage;   /* the options after the command name */
	const char *help;    /* what it does and what it prints */
	int (*run)(const struct tkm_devtool_cmd *cmd, int argc, char **argv); /* exit status */
} tkm_devtool_cmd;

/*
 * main() of a tool: TOOL --help, TOOL --version, TOOL COMMAND [OPTIONS].
 * prog names the tool in messages ("tkm-terminal"); about is the paragraph
 * of its help. Returns the exit status.
 */
int tkm_devtool_main(const char *prog, const char *about, const tkm_devtool_cmd *cmds, size_t ncmds,
                     int argc, char **argv);

/* Print cmd's help on stdout. */
void tkm_devtool_cmd_help(const tkm_devtool_cmd *cmd);

/*
 * An option of a command. Exactly one of value (a single value: given twice
 * is a usage error), list (a repeatable value, at most list_max of them) or
 * flag (no value) is set. --name=VALUE and --name VALUE are both accepted.
 */
typedef struct tkm_devtool_opt {
	const char *name; /* "--url" */
	const char **value;
	const char **list;
	size_t *list_n;
	size_t list_max;
	bool *flag;
} tkm_devtool_opt;

/*
 * Parse a command's arguments with its option table. --help and -h print
 * the command's help and set *help. Positional arguments and unknown options
 * are usage errors; an unknown option's value is never echoed. Returns an
 * exit status (TKM_DEVTOOL_EXIT_OK to go on) and has reported a usage error.
 */
int tkm_devtool_parse(const tkm_devtool_cmd *cmd, const tkm_devtool_opt *opts, size_t nopts,
                      int argc, char **argv, bool *help);

/* `PROG: usage: WHAT[: ARG]` on stderr (arg sanitised; may be NULL). Returns exit 2. */
int tkm_devtool_usage(const char *what, const char *arg);

/* A required option that is missing or empty: a usage error naming it. */
int tkm_devtool_need(const char *value, const char *name);

/*
 * Report a failure: `PROG: CODE: MESSAGE` on stderr and, with json, an
 * {"error":{"code","message"}} object on stdout. message NULL or "" means
 * tkm_strerror(err). Returns the exit status for err.
 */
int tkm_devtool_fail(bool json, tkm_err err, const char *message);

/* The exit status of err (0 for TKM_OK). */
int tkm_devtool_exit_of(tkm_err err);

/* The short name of err: its wire name, or a local one ("connect", "io"...). */
const char *tkm_devtool_err_name(tkm_err err);

/* ---- Output of untrusted text (tkm_toolout.h under the tools' names) ---- */

/* Control characters and invalid UTF-8 become '?'. len bytes, not NUL-terminated. */
void tkm_devtool_put_text_n(FILE *f, const char *s, size_t len);
void tkm_devtool_put_text(FILE *f, const char *s);

/* A quoted JSON string: quotes, backslashes and controls escaped, invalid UTF-8 as U+FFFD. */
void tkm_devtool_put_json_str_n(FILE *f, const char *s, size_t len);
void tkm_devtool_put_json_str(FILE *f, const char *s);

/* A decoded value as JSON: byte strings as lowercase hex strings, integers exactly. */
void tkm_devtool_put_json_cbor(FILE *f, const tkm_cbor_val *v);

void tkm_devtool_put_hex(FILE *f, const uint8_t *p, size_t len);

/*
 * A table cell: the text as tkm_devtool_put_text_n prints it, then spaces up
 * to width characters, and always at least two.
 */
void tkm_devtool_put_cell(FILE *f, const char *s, size_t len, size_t width);

/* len bytes of UTF-8 without control characters, len from 1 to max. */
bool tkm_devtool_text_ok(const char *s, size_t len, size_t max);

/* Unix milliseconds as ISO 8601 UTC ("2026-11-23T10:00:00Z"), or the number. */
void tkm_devtool_format_ms(uint64_t ms, char *buf, size_t len);

/* ---- Talking to tkmd ---- */

/* Where and how to connect. */
typedef struct tkm_devtool_conn {
	const char *url;
	const char *ca_file;     /* tls+tcp:// only */
	const char *server_name; /* tls+tcp:// only */
	int timeout_ms;          /* 0: libtkm's default */
	bool json;
} tkm_devtool_conn;

/*
 * A timeout option's value: milliseconds, 1 to 3600000. NULL leaves *out.
 * Returns an exit status and has reported a usage error.
 */
int tkm_devtool_parse_timeout(const char *s, int *out);

/* Open a client. Returns an exit status and has reported the failure. */
int tkm_devtool_connect(const tkm_devtool_conn *cn, tkm_client **c);

/*
 * A result map. The first problem found in the reply, or the server's
 * message, goes to why.
 */
typedef struct tkm_devtool_reply {
	const char *method;
	tkm_cbor_doc *doc;
	const tkm_cbor_val *root;
	bool bad;
	char why[256];
} tkm_devtool_reply;

/*
 * Call method with params (NULL: {}) and decode its result, which must be a
 * map. On failure r->why holds the server's message or why the reply is
 * invalid (TKM_E_PROTOCOL). Free r with tkm_devtool_reply_free in any case.
 */
TKM_MUST_CHECK tkm_err tkm_devtool_call(tkm_client *c, const tkm_devtool_conn *cn,
                                        const char *method, const tkm_cbor_w *params,
                                        tkm_devtool_reply *r);

/* Wipes and frees the decoded reply. */
void tkm_devtool_reply_free(tkm_devtool_reply *r);

/*
 * Checked fields of a map in r: a missing field or a wrong type marks r
 * invalid (the first reason wins) and returns false. get_text wants 1 to max
 * bytes without NUL; *s is not NUL-terminated.
 */
bool tkm_devtool_get_uint(tkm_devtool_reply *r, const tkm_cbor_val *map, const char *key,
                          uint64_t *out);
bool tkm_devtool_get_text(tkm_devtool_reply *r, const tkm_cbor_val *map, const char *key,
                          size_t max, const char **s, size_t *n);
/* Mark r invalid with what (the first reason wins); returns false. */
bool tkm_devtool_reply_bad(tkm_devtool_reply *r, const char *what);

/* ---- Local files ---- */

/*
 * Write len bytes to a new file at path with exactly mode: O_EXCL and
 * O_NOFOLLOW (an existing file or link is TKM_E_ALREADY_EXISTS), fsync'd.
 * A failure removes the partial file. why names the step and errno.
 */
TKM_MUST_CHECK tkm_err tkm_devtool_write_new(const char *path, const void *data, size_t len,
                                             mode_t mode, char *why, size_t why_len);

/* fsync the directory dir, so that new entries in it survive a crash. */
TKM_MUST_CHECK tkm_err tkm_devtool_sync_dir(const char *dir, char *why, size_t why_len);

/* dir "/" name into buf; false when it does not fit. */
bool tkm_devtool_join(char *buf, size_t len, const char *dir, const char *name);

#endif /* TKM_DEVTOOL_H */
