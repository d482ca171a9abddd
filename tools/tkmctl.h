/*
 * tkmctl.h - what tkmctl's command files share: the global options, the
 * command table row, the exit codes, output of untrusted text, error
 * reporting, argument parsing and connecting to tkmd.
 *
 * tools/tkmctl.c holds main(), the general commands and these helpers;
 * tools/tkmctl_audit.c the audit and backup commands. Every string that came
 * from the server or from a database is untrusted and goes out through
 * tkmctl_put_text() or tkmctl_put_json_str(), never through a format string.
 */
#ifndef TKMCTL_H
#define TKMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tkm/client.h"

#define TKMCTL_EXIT_OK      0
#define TKMCTL_EXIT_SERVER  1 /* error or invalid reply, a failed check, a local I/O error */
#define TKMCTL_EXIT_USAGE   2
#define TKMCTL_EXIT_CONNECT 3

typedef struct tkmctl_opts {
	const char *url;
	int timeout_ms; /* 0: libtkm's default */
	const char *ca_file;
	const char *server_name;
	bool json;
} tkmctl_opts;

typedef struct tkmctl_cmd tkmctl_cmd;

/* One command, or one subcommand of a command, as a row of a const table. */
struct tkmctl_cmd {
	const char *name;
	const char *summary; /* one line for the command list */
	const char *usage;   /* arguments after the command name */
	const char *help;    /* what it does and what it prints */
	int (*run)(const tkmctl_opts *o, int argc, char **argv); /* returns the exit status */
	const tkmctl_cmd *subs; /* subcommands (their help is `tkmctl CMD SUB --help`) */
	size_t nsubs;
};

/* The rows of tools/tkmctl_audit.c for the main command table. */
extern const tkmctl_cmd tkmctl_audit_cmd;
extern const tkmctl_cmd tkmctl_backup_cmd;

/* The row named name among cmds[0..n), or NULL. */
const tkmctl_cmd *tkmctl_find(const tkmctl_cmd *cmds, size_t n, const char *name);

/*
 * Text for a terminal: control characters and invalid UTF-8 become '?'. The
 * _n forms take len bytes that need not be NUL-terminated (a NUL inside is a
 * control character).
 */
void tkmctl_put_text(FILE *f, const char *s);
void tkmctl_put_text_n(FILE *f, const char *s, size_t len);

/* A quoted JSON string: quotes, backslashes and control characters escaped, invalid UTF-8 as
 * U+FFFD. */
void tkmctl_put_json_str(FILE *f, const char *s);
void tkmctl_put_json_str_n(FILE *f, const char *s, size_t len);

/*
 * Report a failure: `tkmctl: CODE: MESSAGE` on stderr and, with --json, an
 * {"error":{"code","message"}} object on stdout. message NULL or empty means
 * tkm_strerror(err). Returns the exit status for err.
 */
int tkmctl_fail(const tkmctl_opts *o, tkm_err err, const char *message);

/* `tkmctl: usage: WHAT[: ARG]` on stderr; returns TKMCTL_EXIT_USAGE. arg may be NULL. */
int tkmctl_usage_error(const char *what, const char *arg);

/*
 * The value of option `name` at argv[*i]: "--name=VALUE" or "--name VALUE"
 * (then *i moves past VALUE). NULL when argv[*i] is not this option, and
 * *missing set when it is but has no value.
 */
const char *tkmctl_opt_value(int argc, char **argv, int *i, const char *name, bool *missing);

/*
 * Open a client on o->url with o's timeout and TLS settings. max_reply is the
 * largest reply accepted (0: libtkm's default). Returns an exit status, and
 * has reported the failure when it is not TKMCTL_EXIT_OK.
 */
int tkmctl_connect(const tkmctl_opts *o, size_t max_reply, tkm_client **c);

/* Unix seconds as ISO 8601 UTC ("2026-11-23T10:00:00Z"), or the plain number if gmtime cannot. */
void tkmctl_format_utc(int64_t t, char *buf, size_t len);

#endif /* TKMCTL_H */
