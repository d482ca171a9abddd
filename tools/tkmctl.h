/*
 * tkmctl.h - what tkmctl's command files share: the global options, the
 * command table row, the exit codes, output of untrusted text, error
 * reporting, argument parsing and connecting to tkmd.
 *
 * tools/tkmctl.c holds main(), the general commands and these helpers;
 * tools/tkmctl_audit.c the audit and backup commands; tools/tkmctl_auth.c the
 * identity commands (login, logout, whoami, passwd, operator, role, policy,
 * approvals) and the session file; tools/tkmctl_terminal.c the terminal
 * registry commands. Every string that came from the server or
 * from a database is untrusted and goes out through tkmctl_put_text*() or
 * tkmctl_put_json_*(), never through a format string.
 */
#ifndef TKMCTL_H
#define TKMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "tkm/client.h"
#include "tkm_cbor.h"

#define TKMCTL_EXIT_OK      0
#define TKMCTL_EXIT_SERVER  1 /* error or invalid reply, a failed check, a local I/O error */
#define TKMCTL_EXIT_USAGE   2
#define TKMCTL_EXIT_CONNECT 3

typedef struct tkmctl_opts {
	const char *url;
	int timeout_ms; /* 0: libtkm's default */
	const char *ca_file;
	const char *server_name;
	const char *session_file; /* --session FILE; NULL: the default (tkmctl_session_path) */
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

/* The row of tools/tkmctl_terminal.c. */
extern const tkmctl_cmd tkmctl_terminal_cmd;

/* The rows of tools/tkmctl_auth.c. */
extern const tkmctl_cmd tkmctl_login_cmd;
extern const tkmctl_cmd tkmctl_logout_cmd;
extern const tkmctl_cmd tkmctl_whoami_cmd;
extern const tkmctl_cmd tkmctl_passwd_cmd;
extern const tkmctl_cmd tkmctl_operator_cmd;
extern const tkmctl_cmd tkmctl_role_cmd;
extern const tkmctl_cmd tkmctl_policy_cmd;
extern const tkmctl_cmd tkmctl_approvals_cmd;

/* The row named name among cmds[0..n), or NULL. */
const tkmctl_cmd *tkmctl_find(const tkmctl_cmd *cmds, size_t n, const char *name);

/*
 * Run the subcommand of cmd named by argv[0] with the rest of argv; a usage
 * error when there is none or it is unknown. For the run function of a
 * command that has subcommands.
 */
int tkmctl_run_sub(const tkmctl_cmd *cmd, const tkmctl_opts *o, int argc, char **argv);

/*
 * Text for a terminal: control characters and invalid UTF-8 become '?'. The
 * _n forms take len bytes that need not be NUL-terminated (a NUL inside is a
 * control character).
 */
void tkmctl_put_text(FILE *f, const char *s);
void tkmctl_put_text_n(FILE *f, const char *s, size_t len);

/* As tkmctl_put_text_n, but newlines stay: for multi-line text such as a policy. */
void tkmctl_put_text_lines_n(FILE *f, const char *s, size_t len);

/* A quoted JSON string: quotes, backslashes and control characters escaped, invalid UTF-8 as
 * U+FFFD. */
void tkmctl_put_json_str(FILE *f, const char *s);
void tkmctl_put_json_str_n(FILE *f, const char *s, size_t len);

/*
 * A decoded CBOR value as JSON: maps as objects (the decoder admits only text
 * keys), byte strings as lowercase hex strings, text escaped as above.
 */
void tkmctl_put_json_cbor(FILE *f, const tkm_cbor_val *v);

/* len bytes as lowercase hex. */
void tkmctl_put_hex(FILE *f, const uint8_t *p, size_t len);

/*
 * Report a failure: `tkmctl: CODE: MESSAGE` on stderr and, with --json, an
 * {"error":{"code","message"}} object on stdout. message NULL or empty means
 * tkm_strerror(err). For unauthenticated, a hint about logging in follows on
 * stderr (not after tkmctl_connect_anon). Returns the exit status for err.
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
 * largest reply accepted (0: libtkm's default). When the session file
 * (tkmctl_session_path) exists, its token goes with every call, provided the
 * file was written for o->url; a session file that is not safe to use (see
 * tkmctl_session_load) is refused with exit status 2. Without a session the
 * calls go unauthenticated. Returns an exit status, and has reported the
 * failure when it is not TKMCTL_EXIT_OK.
 */
int tkmctl_connect(const tkmctl_opts *o, size_t max_reply, tkm_client **c);

/* tkmctl_connect without the session file: for tkmctl login and logout. */
int tkmctl_connect_anon(const tkmctl_opts *o, size_t max_reply, tkm_client **c);

/* ---- The session file (tools/tkmctl_auth.c) ---- */

#define TKMCTL_PATH_MAX        4096
#define TKMCTL_SESSION_URL_MAX 1024

typedef struct tkmctl_session tkmctl_session;

/*
 * The session file's path into buf: --session FILE, else $TKM_SESSION_FILE,
 * else $XDG_RUNTIME_DIR/tkm/session (an absolute XDG_RUNTIME_DIR only), else
 * $HOME/.config/tkm/session. buf is "" when none can be named (no HOME).
 * Returns an exit status (usage: a path too long).
 */
int tkmctl_session_path(const tkmctl_opts *o, char *buf, size_t len);

/*
 * Load the session file at path. *out is NULL when there is no file. The
 * file must be a regular file (a symbolic link is refused), owned by this
 * user and neither readable nor writable by group or others, and must hold
 * exactly the format tkmctl login writes. Returns an exit status, and has
 * reported the failure (exit 2) when it is not TKMCTL_EXIT_OK.
 */
int tkmctl_session_load(const tkmctl_opts *o, const char *path, tkmctl_session **out);

/* NULL-safe; wipes the token. */
void tkmctl_session_free(tkmctl_session *s);

/* The token, TKM_SESSION_TOKEN_LEN bytes in locked memory. */
const uint8_t *tkmctl_session_token(const tkmctl_session *s);

/* The URL the session was made for; "" when the file names none. */
const char *tkmctl_session_url(const tkmctl_session *s);

/*
 * Whether the session may go to url: the file names no URL, or the same one
 * (a relative ipc:// path is made absolute with the current directory on
 * both sides).
 */
bool tkmctl_session_is_for(const tkmctl_session *s, const char *url);

/* ---- Calls with checked replies ---- */

/*
 * A decoded result map. A dual-control method may answer
 * {"status": "pending", "approval_id", "expires_ms"} instead of its result:
 * then pending is set with those two numbers. The first problem found in the
 * reply goes to why.
 */
typedef struct tkmctl_reply {
	const char *method;
	tkm_cbor_doc *doc;
	const tkm_cbor_val *root;
	bool pending;
	uint64_t approval_id;
	uint64_t expires_ms;
	bool bad;
	char why[256];
} tkmctl_reply;

/*
 * Call method with params (NULL: {}) and decode its result, which must be a
 * map (up to TKMCTL_REPLY_STR_MAX bytes in one string). On failure r->why
 * holds the server's message or the reason the reply is invalid
 * (TKM_E_PROTOCOL). Free r with tkmctl_reply_free in any case.
 */
#define TKMCTL_REPLY_STR_MAX ((size_t)2 << 20)
TKM_MUST_CHECK tkm_err tkmctl_call(tkm_client *c, const tkmctl_opts *o, const char *method,
                                   const tkm_cbor_w *params, tkmctl_reply *r);

/* NULL-safe on the fields; wipes the decoded reply. */
void tkmctl_reply_free(tkmctl_reply *r);

/*
 * Checked fields of a map in r. On a missing field or a wrong type they mark
 * r invalid (the first reason wins) and return false. get_text wants 1 to max
 * bytes (0 to max with empty_ok) without NUL; *s is not NUL-terminated.
 */
bool tkmctl_get_uint(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, uint64_t *out);
bool tkmctl_get_bool(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, bool *out);
bool tkmctl_get_text(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, bool empty_ok,
                     size_t max, const char **s, size_t *n);
/*
 * Connect, call method with params (may be NULL) into r, report a failure,
 * and print a pending dual-control reply (then *done). An exit status; r is
 * the caller's to free with tkmctl_reply_free. max_reply 0: the default.
 */
int tkmctl_call_cmd(const tkmctl_opts *o, size_t max_reply, const char *method,
                    const tkm_cbor_w *params, tkmctl_reply *r, bool *done);

/* A params writer of at most max bytes; an exit status (out of memory reported). */
int tkmctl_params_new(const tkmctl_opts *o, size_t max, tkm_cbor_w **w);

/* Params that fit (an exit status: too large is a usage error, the arguments' fault). */
int tkmctl_params_check(const tkmctl_opts *o, const tkm_cbor_w *w);

/*
 * A decimal number without sign or spaces, from min to max (both included),
 * into *out; false for anything else. *out is untouched on failure.
 */
bool tkmctl_parse_uint(uint64_t min, const char *s, uint64_t max, uint64_t *out);

/* Mark r invalid with what (the first reason wins); returns false. */
bool tkmctl_reply_bad(tkmctl_reply *r, const char *what);
/* The same with "'key' is missing or not want", the reason the get_* give. */
bool tkmctl_reply_bad_field(tkmctl_reply *r, const char *key, const char *want);

/*
 * Report a pending dual-control request (r->pending): "pending approval N
 * (expires TIME): a second operator runs tkmctl approvals approve N", or with
 * --json {"status":"pending","method":M,"approval_id":N,"expires_ms":T,
 * "expires":TIME}. Returns TKMCTL_EXIT_OK: the request was accepted.
 */
int tkmctl_pending(const tkmctl_opts *o, const tkmctl_reply *r);

/*
 * A time as Unix milliseconds: YYYY-MM-DD (midnight UTC), or RFC 3339
 * YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), 1970 to 9999. A fraction
 * beyond milliseconds is cut off. False when s is none of these.
 */
bool tkmctl_parse_time_ms(const char *s, uint64_t *out);

/*
 * Create a local output file that must not exist yet (tkmctl never replaces
 * a file), with mode less the umask. Returns an exit status, and has
 * reported the failure when it is not TKMCTL_EXIT_OK; *f is open on success.
 */
int tkmctl_create_out(const tkmctl_opts *o, const char *path, mode_t mode, FILE **f);

/*
 * Flush, sync and close a file of tkmctl_create_out; on failure remove it and
 * report. Returns an exit status.
 */
int tkmctl_finish_out(const tkmctl_opts *o, const char *path, FILE *f);

/* Close and remove a file of tkmctl_create_out after a failure. NULL-safe on f. */
void tkmctl_discard_out(const char *path, FILE *f);

/* Unix seconds as ISO 8601 UTC ("2026-11-23T10:00:00Z"), or the plain number if gmtime cannot. */
void tkmctl_format_utc(int64_t t, char *buf, size_t len);

#endif /* TKMCTL_H */
