/*
 * tkmctl.c - the command-line client of tkmd, built on libtkm's public API:
 * main(), the general commands (ping, info, help) and the helpers that every
 * command file shares (tkmctl.h): output of untrusted text, errors and exit
 * codes, connecting (with the session file), calls with checked replies and
 * the report of a pending dual-control request. The audit and backup
 * commands, with the offline audit verifier, live in tkmctl_audit.c; the
 * identity commands and the session file in tkmctl_auth.c; the terminal
 * registry commands in tkmctl_terminal.c.
 *
 * Commands are const rows ({name, summary, usage, help, handler,
 * subcommands}) that each command file defines; the table below lists them
 * in help order, so a later command is one more row, one more handler and
 * one more pointer here. Every string that came from the server or a
 * database is untrusted: text output replaces control characters so it
 * cannot drive the terminal, and --json output escapes them.
 *
 * Exit status: 0 ok, 1 server error (an error reply, an invalid reply or
 * another failure, such as a local file that exists or cannot be written)
 * or a failed check (a broken audit chain), 2 usage (bad arguments, bad URL
 * or TLS settings, bad key file), 3 connection (cannot connect, timeout,
 * connection closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "tkm/client.h"
#include "tkm_cbor.h"
#include "tkm_toolout.h"
#include "tkm_why.h"
#include "tkmctl.h"

#ifndef TKM_VERSION_STRING
#error "TKM_VERSION_STRING must be defined by the build"
#endif

#define TKMCTL_DEFAULT_URL "ipc://./var/tkmd.sock"
#define TKMCTL_TIMEOUT_MAX 3600000
/*
 * Nesting in a reply: the result map, then what it holds (approval params are
 * a client's, an audit record's details map its own).
 */
#define TKMCTL_REPLY_DEPTH (TKM_CBOR_DEFAULT_MAX_DEPTH + 4)

static int cmd_ping(const tkmctl_opts *o, int argc, char **argv);
static int cmd_info(const tkmctl_opts *o, int argc, char **argv);
static int cmd_help(const tkmctl_opts *o, int argc, char **argv);

static const tkmctl_cmd cmd_ping_row = {
    "ping",
    "check that the server answers and time the round trip",
    "",
    "Call sys.ping and print the server's clock and the round-trip time.\n"
    "\n"
    "Output:\n"
    "  pong from URL: server time YYYY-MM-DDTHH:MM:SSZ, round trip N us\n"
    "With --json:\n"
    "  {\"url\":URL,\"pong\":true,\"time\":UNIX_SECONDS,\"time_utc\":\"YYYY-MM-DDTHH:MM:SSZ\","
    "\"rtt_us\":N}\n",
    cmd_ping,
    NULL,
    0};

static const tkmctl_cmd cmd_info_row = {
    "info",
    "show the server and protocol versions, uptime and HSM token",
    "",
    "Call sys.info and print what the server reports about itself: its version,\n"
    "the protocol version, its uptime and the HSM token it uses (\"not configured\"\n"
    "when it has none).\n"
    "\n"
    "With --json:\n"
    "  {\"url\":URL,\"server_version\":V,\"protocol_version\":N,\"uptime_s\":N,\n"
    "   \"hsm\":{\"configured\":BOOL[,\"token_label\":S,\"token_model\":S,"
    "\"manufacturer\":S,\"serial\":S]}}\n",
    cmd_info,
    NULL,
    0};

static const tkmctl_cmd cmd_help_row = {
    "help",
    "show help for tkmctl or for one command",
    "[COMMAND]",
    "Print the help of tkmctl, or of COMMAND (the same as 'tkmctl COMMAND --help').\n",
    cmd_help,
    NULL,
    0};

/* The commands in the order of `tkmctl --help`; each file defines its own rows. */
static const tkmctl_cmd *const tkmctl_cmds[] = {
    &cmd_ping_row,      &cmd_info_row,         &tkmctl_login_cmd,    &tkmctl_logout_cmd,
    &tkmctl_whoami_cmd, &tkmctl_passwd_cmd,    &tkmctl_operator_cmd, &tkmctl_role_cmd,
    &tkmctl_policy_cmd, &tkmctl_approvals_cmd, &tkmctl_terminal_cmd, &tkmctl_audit_cmd,
    &tkmctl_backup_cmd, &cmd_help_row,
};

#define TKMCTL_NCMDS (sizeof(tkmctl_cmds) / sizeof(tkmctl_cmds[0]))

const tkmctl_cmd *tkmctl_find(const tkmctl_cmd *cmds, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cmds[i].name, name) == 0) {
			return &cmds[i];
		}
	}
	return NULL;
}

int tkmctl_run_sub(const tkmctl_cmd *cmd, const tkmctl_opts *o, int argc, char **argv)
{
	const tkmctl_cmd *sub;
	char what[160];

	if (argc == 0) {
		tkm_why_set(what, sizeof(what),
		            "%s needs a subcommand (tkmctl %s --help lists them)", cmd->name,
		            cmd->name);
		return tkmctl_usage_error(what, NULL);
	}
	if ((sub = tkmctl_find(cmd->subs, cmd->nsubs, argv[0])) == NULL) {
		tkm_why_set(what, sizeof(what), "unknown %s subcommand", cmd->name);
		return tkmctl_usage_error(what, argv[0]);
	}
	return sub->run(o, argc - 1, argv + 1);
}

static const tkmctl_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < TKMCTL_NCMDS; i++) {
		if (strcmp(tkmctl_cmds[i]->name, name) == 0) {
			return tkmctl_cmds[i];
		}
	}
	return NULL;
}

/* ---- Output of untrusted text ---- */

/* The tkmctl_put_* names of tkm_toolout's functions, for the command files. */

void tkmctl_put_text_n(FILE *f, const char *s, size_t len)
{
	tkm_toolout_put_text_n(f, s, len);
}

void tkmctl_put_text(FILE *f, const char *s)
{
	tkm_toolout_put_text(f, s);
}

void tkmctl_put_text_lines_n(FILE *f, const char *s, size_t len)
{
	tkm_toolout_put_text_lines_n(f, s, len);
}

void tkmctl_put_json_str_n(FILE *f, const char *s, size_t len)
{
	tkm_toolout_put_json_str_n(f, s, len);
}

void tkmctl_put_json_str(FILE *f, const char *s)
{
	tkm_toolout_put_json_str(f, s);
}

void tkmctl_put_hex(FILE *f, const uint8_t *p, size_t len)
{
	tkm_toolout_put_hex(f, p, len);
}

void tkmctl_put_json_cbor(FILE *f, const tkm_cbor_val *v)
{
	tkm_toolout_put_json_cbor(f, v);
}

/* ---- Errors and exit codes ---- */

/* What tkmctl_connect did with the session file, for the hint after an unauthenticated. */
typedef enum session_use {
	SESSION_NONE,      /* no session file: the calls went unauthenticated */
	SESSION_SENT,      /* its token went with the calls */
	SESSION_OTHER_URL, /* it was made for another server, so it was not sent */
	SESSION_ANON,      /* tkmctl_connect_anon: login and logout say it themselves */
} session_use;

static session_use session_state = SESSION_NONE;
static char session_other_url[TKMCTL_SESSION_URL_MAX + 1];

static int exit_code_of(tkm_err err)
{
	switch (err) {
	case TKM_OK:
		return TKMCTL_EXIT_OK;
	case TKM_E_CONNECT:
	case TKM_E_TIMEOUT:
	case TKM_E_CLOSED:
		return TKMCTL_EXIT_CONNECT;
	case TKM_E_INVALID_ARG:
	case TKM_E_CONFIG:
		return TKMCTL_EXIT_USAGE;
	default:
		return TKMCTL_EXIT_SERVER;
	}
}

int tkmctl_fail(const tkmctl_opts *o, tkm_err err, const char *message)
{
	if (message == NULL || message[0] == '\0') {
		message = tkm_strerror(err);
	}
	fprintf(stderr, "tkmctl: %s: ", tkm_toolout_err_name(err));
	tkmctl_put_text(stderr, message);
	fputc('\n', stderr);
	if (o->json) {
		fputs("{\"error\":{\"code\":", stdout);
		tkmctl_put_json_str(stdout, tkm_toolout_err_name(err));
		fputs(",\"message\":", stdout);
		tkmctl_put_json_str(stdout, message);
		fputs("}}\n", stdout);
	}
	if (err == TKM_E_UNAUTHENTICATED) {
		switch (session_state) {
		case SESSION_NONE:
			fputs("tkmctl: hint: not logged in: log in with tkmctl login USERNAME\n",
			      stderr);
			break;
		case SESSION_SENT:
			fputs("tkmctl: hint: the session has ended or expired: log in again with "
			      "tkmctl login USERNAME\n",
			      stderr);
			break;
		case SESSION_OTHER_URL:
			fputs("tkmctl: hint: the session is for ", stderr);
			tkmctl_put_text(stderr, session_other_url);
			fputs(
			    ": use --url with that server, or log in with tkmctl login USERNAME\n",
			    stderr);
			break;
		case SESSION_ANON:
			break;
		}
	}
	return exit_code_of(err);
}

int tkmctl_usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "tkmctl: usage: %s", what);
	if (arg != NULL) {
		fputs(": ", stderr);
		tkmctl_put_text(stderr, arg);
	}
	fputs("\nRun 'tkmctl --help' for usage.\n", stderr);
	return TKMCTL_EXIT_USAGE;
}

/* ---- Help ---- */

static void print_main_help(FILE *f)
{
	fputs("usage: tkmctl [OPTIONS] COMMAND [ARGS]\n"
	      "\n"
	      "Talk to tkmd, the tkm terminal key management service.\n"
	      "\n"
	      "Options:\n"
	      "  --url URL           server: ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT\n"
	      "                      (default: $TKM_URL, else " TKMCTL_DEFAULT_URL ")\n"
	      "  --timeout MS        per-call timeout in milliseconds (default 10000)\n"
	      "  --ca-file FILE      tls+tcp:// only: PEM file of the CAs to trust (required)\n"
	      "  --server-name NAME  tls+tcp:// only: name the server certificate must carry\n"
	      "                      (default: the host of the URL)\n"
	      "  --session FILE      the session file of tkmctl login (default:\n"
	      "                      $TKM_SESSION_FILE, else $XDG_RUNTIME_DIR/tkm/session,\n"
	      "                      else $HOME/.config/tkm/session)\n"
	      "  --json              print JSON on stdout instead of text: one object, or\n"
	      "                      JSON Lines (audit export, audit tail,\n"
	      "                      terminal export)\n"
	      "  --version           print the version and exit\n"
	      "  -h, --help          print this help, or a command's help after COMMAND\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < TKMCTL_NCMDS; i++) {
		fprintf(f, "  %-10s  %s\n", tkmctl_cmds[i]->name, tkmctl_cmds[i]->summary);
	}
	fputs("\n"
	      "Run 'tkmctl COMMAND --help' for the help of one command.\n"
	      "\n"
	      "Exit status: 0 ok, 1 server error (error or invalid reply) or failed check,\n"
	      "2 usage error, 3 connection error (cannot connect, timeout, connection closed).\n",
	      f);
}

/* The help of cmd, or of its subcommand named by args[0] when it has one. */
static void print_cmd_help(FILE *f, const tkmctl_cmd *cmd, int nargs, char **args)
{
	const tkmctl_cmd *sub = NULL;

	if (cmd->nsubs > 0 && nargs > 0) {
		sub = tkmctl_find(cmd->subs, cmd->nsubs, args[0]);
	}
	if (sub != NULL) {
		fprintf(f,
		        "usage: tkmctl [OPTIONS] %s %s%s%s\n\n%s\nRun 'tkmctl --help' for the "
		        "options.\n",
		        cmd->name, sub->name, sub->usage[0] != '\0' ? " " : "", sub->usage,
		        sub->help);
		return;
	}
	fprintf(f, "usage: tkmctl [OPTIONS] %s%s%s\n\n%s", cmd->name,
	        cmd->usage[0] != '\0' ? " " : "", cmd->usage, cmd->help);
	if (cmd->nsubs > 0) {
		fputs("\nSubcommands:\n", f);
		for (size_t i = 0; i < cmd->nsubs; i++) {
			fprintf(f, "  %-14s  %s\n", cmd->subs[i].name, cmd->subs[i].summary);
		}
		fprintf(f, "\nRun 'tkmctl %s SUBCOMMAND --help' for the help of one subcommand.\n",
		        cmd->name);
	}
	fputs("\nRun 'tkmctl --help' for the options.\n", f);
}

static int cmd_help(const tkmctl_opts *o, int argc, char **argv)
{
	const tkmctl_cmd *cmd;

	(void)o;
	if (argc == 0) {
		print_main_help(stdout);
		return TKMCTL_EXIT_OK;
	}
	if ((cmd = find_cmd(argv[0])) == NULL) {
		return tkmctl_usage_error("unknown command", argv[0]);
	}
	if (argc > 2 || (argc == 2 && tkmctl_find(cmd->subs, cmd->nsubs, argv[1]) == NULL)) {
		return tkmctl_usage_error("help takes a command and, for some, a subcommand",
		                          argv[argc > 2 ? 2 : 1]);
	}
	print_cmd_help(stdout, cmd, argc - 1, argv + 1);
	return TKMCTL_EXIT_OK;
}

/* ---- Commands that talk to the server ---- */

static int open_client(const tkmctl_opts *o, size_t max_reply, tkm_client **c)
{
	tkm_client_opts co;
	tkm_status st;
	tkm_err err;

	memset(&co, 0, sizeof(co));
	co.timeout_ms = o->timeout_ms;
	co.max_message_size = max_reply;
	co.tls_ca_file = o->ca_file;
	co.tls_server_name = o->server_name;
	if ((err = tkm_client_open(o->url, &co, &st, c)) != TKM_OK) {
		return tkmctl_fail(o, err, st.message);
	}
	return TKMCTL_EXIT_OK;
}

int tkmctl_connect_anon(const tkmctl_opts *o, size_t max_reply, tkm_client **c)
{
	session_state = SESSION_ANON;
	return open_client(o, max_reply, c);
}

int tkmctl_connect(const tkmctl_opts *o, size_t max_reply, tkm_client **c)
{
	static bool noted;
	char path[TKMCTL_PATH_MAX];
	tkmctl_session *s = NULL;
	tkm_status st;
	tkm_err err;
	int rc;

	*c = NULL;
	session_state = SESSION_NONE;
	if ((rc = tkmctl_session_path(o, path, sizeof(path))) != TKMCTL_EXIT_OK ||
	    (path[0] != '\0' && (rc = tkmctl_session_load(o, path, &s)) != TKMCTL_EXIT_OK)) {
		goto out;
	}
	if ((rc = open_client(o, max_reply, c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if (s == NULL) {
		goto out;
	}
	if (!tkmctl_session_is_for(s, o->url)) {
		session_state = SESSION_OTHER_URL;
		tkm_why_set(session_other_url, sizeof(session_other_url), "%s",
		            tkmctl_session_url(s));
		if (!noted) {
			noted = true;
			fputs("tkmctl: note: the session in ", stderr);
			tkmctl_put_text(stderr, path);
			fputs(" is for ", stderr);
			tkmctl_put_text(stderr, tkmctl_session_url(s));
			fputs(", not ", stderr);
			tkmctl_put_text(stderr, o->url);
			fputs(": calling without it\n", stderr);
		}
		goto out;
	}
	if ((err = tkm_client_use_session(*c, tkmctl_session_token(s), &st)) != TKM_OK) {
		rc = tkmctl_fail(o, err, st.message);
		tkm_client_close(*c);
		*c = NULL;
		goto out;
	}
	session_state = SESSION_SENT;
out:
	tkmctl_session_free(s);
	return rc;
}

/* ---- Calls with checked replies ---- */

void tkmctl_reply_free(tkmctl_reply *r)
{
	tkm_cbor_doc_free(r->doc);
	r->doc = NULL;
	r->root = NULL;
}

bool tkmctl_reply_bad(tkmctl_reply *r, const char *what)
{
	if (!r->bad) {
		r->bad = true;
		tkm_why_set(r->why, sizeof(r->why), "%s: invalid reply: %s", r->method, what);
	}
	return false;
}

bool tkmctl_reply_bad_field(tkmctl_reply *r, const char *key, const char *want)
{
	if (!r->bad) {
		r->bad = true;
		tkm_why_set(r->why, sizeof(r->why), "%s: invalid reply: '%s' is missing or not %s",
		            r->method, key, want);
	}
	return false;
}

bool tkmctl_get_uint(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, uint64_t *out)
{
	if (!tkm_cbor_get_uint(tkm_cbor_map_get(map, key), out)) {
		return tkmctl_reply_bad_field(r, key, "an unsigned integer");
	}
	return true;
}

bool tkmctl_get_bool(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, bool *out)
{
	if (!tkm_cbor_get_bool(tkm_cbor_map_get(map, key), out)) {
		return tkmctl_reply_bad_field(r, key, "a boolean");
	}
	return true;
}

bool tkmctl_get_text(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, bool empty_ok,
                     size_t max, const char **s, size_t *n)
{
	char want[80];

	if (tkm_cbor_get_text(tkm_cbor_map_get(map, key), s, n) && (*n > 0 || empty_ok) &&
	    *n <= max && memchr(*s, '\0', *n) == NULL) {
		return true;
	}
	tkm_why_set(want, sizeof(want), "text of %s to %zu bytes without NUL", empty_ok ? "0" : "1",
	            max);
	return tkmctl_reply_bad_field(r, key, want);
}

/* A pending reply: exactly {"status": "pending", "approval_id": N > 0, "expires_ms": T}. */
static bool check_pending(tkmctl_reply *r)
{
	const tkm_cbor_val *status = tkm_cbor_map_get(r->root, "status");

	if (status == NULL || !tkm_cbor_text_eq(status, "pending")) {
		return true;
	}
	r->pending = true;
	if (!tkmctl_get_uint(r, r->root, "approval_id", &r->approval_id) ||
	    !tkmctl_get_uint(r, r->root, "expires_ms", &r->expires_ms)) {
		return false;
	}
	if (r->approval_id == 0 || r->approval_id > INT64_MAX) {
		return tkmctl_reply_bad(r, "'approval_id' is out of range");
	}
	if (tkm_cbor_count(r->root) != 3) {
		return tkmctl_reply_bad(r, "a pending reply holds status, approval_id and "
		                           "expires_ms only");
	}
	return true;
}

tkm_err tkmctl_call(tkm_client *c, const tkmctl_opts *o, const char *method,
                    const tkm_cbor_w *params, tkmctl_reply *r)
{
	const uint8_t *p = NULL;
	uint8_t *res = NULL;
	size_t plen = 0, rlen = 0;
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_status st;
	char why[200] = "";
	tkm_err err;

	memset(r, 0, sizeof(*r));
	r->method = method;
	memset(&st, 0, sizeof(st));
	if (params != NULL && (err = tkm_cbor_w_finish(params, &p, &plen)) != TKM_OK) {
		return tkm_why_fail(r->why, sizeof(r->why), err, "%s: cannot encode the params",
		                    method);
	}
	if ((err = tkm_call_raw(c, method, p, plen, o->timeout_ms, &st, &res, &rlen)) != TKM_OK) {
		tkm_why_set(r->why, sizeof(r->why), "%s", st.message);
		return err;
	}
	lim.max_depth = TKMCTL_REPLY_DEPTH;
	lim.max_str_len = TKMCTL_REPLY_STR_MAX;
	err = tkm_cbor_decode(res, rlen, &lim, &r->doc, why, sizeof(why));
	tkm_free(res, rlen);
	if (err != TKM_OK) {
		return tkm_why_fail(r->why, sizeof(r->why), TKM_E_PROTOCOL, "%s: invalid reply: %s",
		                    method, why);
	}
	r->root = tkm_cbor_root(r->doc);
	if (!tkm_cbor_is(r->root, TKM_CBOR_MAP)) {
		tkmctl_reply_free(r);
		return tkm_why_fail(r->why, sizeof(r->why), TKM_E_PROTOCOL,
		                    "%s: invalid reply: the result is not a map", method);
	}
	if (!check_pending(r)) {
		tkmctl_reply_free(r);
		return TKM_E_PROTOCOL;
	}
	return TKM_OK;
}

int tkmctl_pending(const tkmctl_opts *o, const tkmctl_reply *r)
{
	char when[64];

	tkmctl_format_utc((int64_t)(r->expires_ms / 1000u), when, sizeof(when));
	if (o->json) {
		fputs("{\"status\":\"pending\",\"method\":", stdout);
		tkmctl_put_json_str(stdout, r->method);
		printf(",\"approval_id\":%llu,\"expires_ms\":%llu,\"expires\":",
		       (unsigned long long)r->approval_id, (unsigned long long)r->expires_ms);
		tkmctl_put_json_str(stdout, when);
		fputs("}\n", stdout);
	} else {
		printf(
		    "pending approval %llu (expires %s): a second operator runs tkmctl approvals "
		    "approve %llu\n",
		    (unsigned long long)r->approval_id, when, (unsigned long long)r->approval_id);
	}
	return TKMCTL_EXIT_OK;
}

static int64_t elapsed_us(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000000 + (b->tv_nsec - a->tv_nsec) / 1000;
}

/* ISO 8601 UTC, or the plain number for a time gmtime cannot represent. */
void tkmctl_format_utc(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	int n;

	if ((int64_t)tt == t && gmtime_r(&tt, &tm) != NULL &&
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0) {
		return;
	}
	n = snprintf(buf, len, "%lld", (long long)t);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
	}
}

/* ---- Times and output files ---- */

/* Exactly n decimal digits at *p, moving *p past them. */
static bool time_digits(const char **p, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9') {
			return false;
		}
		v = v * 10 + (unsigned)(c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool time_expect(const char **p, char c)
{
	if (**p != c) {
		return false;
	}
	(*p)++;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (valid y, m, d). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

bool tkmctl_parse_time_ms(const char *s, uint64_t *out)
{
	const char *p = s;
	unsigned y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, oh = 0, om = 0;
	int64_t t, off = 0;

	if (!time_digits(&p, 4, &y) || !time_expect(&p, '-') || !time_digits(&p, 2, &mo) ||
	    !time_expect(&p, '-') || !time_digits(&p, 2, &d)) {
		return false;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
		return false;
	}
	if (*p != '\0') {
		if (*p != 'T' && *p != 't') {
			return false;
		}
		p++;
		if (!time_digits(&p, 2, &h) || !time_expect(&p, ':') || !time_digits(&p, 2, &mi) ||
		    !time_expect(&p, ':') || !time_digits(&p, 2, &sec)) {
			return false;
		}
		/* 60 is a leap second; it lands on the next minute's first second. */
		if (h > 23 || mi > 59 || sec > 60) {
			return false;
		}
		if (*p == '.') {
			unsigned scale = 100;

			p++;
			if (*p < '0' || *p > '9') {
				return false;
			}
			for (; *p >= '0' && *p <= '9'; p++) {
				ms += (unsigned)(*p - '0') * scale;
				scale /= 10;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p == '-' ? -1 : 1;

			p++;
			if (!time_digits(&p, 2, &oh) || !time_expect(&p, ':') ||
			    !time_digits(&p, 2, &om) || oh > 23 || om > 59) {
				return false;
			}
			off = sign * (int64_t)(oh * 3600 + om * 60);
		} else {
			return false;
		}
		if (*p != '\0') {
			return false;
		}
	}
	t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - off;
	if (t < 0) {
		return false;
	}
	*out = (uint64_t)t * 1000u + ms;
	return true;
}

int tkmctl_create_out(const tkmctl_opts *o, const char *path, mode_t mode, FILE **f)
{
	char msg[256];
	int fd;

	*f = NULL;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		int e = errno;

		tkm_why_set(msg, sizeof(msg), "cannot create %s: %s%s", path, strerror(e),
		            e == EEXIST ? " (tkmctl never replaces a file)" : "");
		return tkmctl_fail(o, e == EEXIST ? TKM_E_ALREADY_EXISTS : TKM_E_IO, msg);
	}
	if ((*f = fdopen(fd, "w")) == NULL) {
		tkm_why_set(msg, sizeof(msg), "cannot write %s: %s", path, strerror(errno));
		(void)close(fd);
		(void)unlink(path);
		return tkmctl_fail(o, TKM_E_IO, msg);
	}
	return TKMCTL_EXIT_OK;
}

int tkmctl_finish_out(const tkmctl_opts *o, const char *path, FILE *f)
{
	char msg[256];
	bool ok;

	ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
	if (fclose(f) != 0) {
		ok = false;
	}
	if (!ok) {
		tkm_why_set(msg, sizeof(msg), "cannot write %s: %s", path, strerror(errno));
		(void)unlink(path);
		return tkmctl_fail(o, TKM_E_IO, msg);
	}
	return TKMCTL_EXIT_OK;
}

void tkmctl_discard_out(const char *path, FILE *f)
{
	if (f != NULL) {
		(void)fclose(f);
		(void)unlink(path);
	}
}

static int cmd_ping(const tkmctl_opts *o, int argc, char **argv)
{
	tkm_client *c = NULL;
	tkm_ping_result res;
	tkm_status st;
	struct timespec t0, t1;
	char when[64];
	int64_t rtt;
	tkm_err err;
	int rc;

	if (argc > 0) {
		return tkmctl_usage_error("ping takes no arguments", argv[0]);
	}
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	err = tkm_ping(c, o->timeout_ms, &st, &res);
	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	if (err != TKM_OK) {
		rc = tkmctl_fail(o, err, st.message);
		goto out;
	}
	if (!res.pong) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, "sys.ping: the server answered pong = false");
		goto out;
	}
	rtt = elapsed_us(&t0, &t1);
	tkmctl_format_utc(res.time, when, sizeof(when));
	if (o->json) {
		fputs("{\"url\":", stdout);
		tkmctl_put_json_str(stdout, o->url);
		printf(",\"pong\":true,\"time\":%lld,\"time_utc\":", (long long)res.time);
		tkmctl_put_json_str(stdout, when);
		printf(",\"rtt_us\":%lld}\n", (long long)rtt);
	} else {
		fputs("pong from ", stdout);
		tkmctl_put_text(stdout, o->url);
		printf(": server time %s, round trip %lld us\n", when, (long long)rtt);
	}
out:
	tkm_client_close(c);
	return rc;
}

static void print_row(const char *label, const char *value)
{
	printf("%-17s ", label);
	tkmctl_put_text(stdout, value);
	fputc('\n', stdout);
}

static void print_info_text(const tkmctl_opts *o, const tkm_server_info *info)
{
	unsigned long long up = info->uptime_s;
	char buf[96];
	int n;

	print_row("server", o->url);
	print_row("server version", info->server_version);
	printf("%-17s %llu\n", "protocol version", (unsigned long long)info->protocol_version);
	if (up >= 86400) {
		n = snprintf(buf, sizeof(buf), "%llud %02llu:%02llu:%02llu (%llu s)", up / 86400,
		             up / 3600 % 24, up / 60 % 60, up % 60, up);
	} else {
		n = snprintf(buf, sizeof(buf), "%02llu:%02llu:%02llu (%llu s)", up / 3600,
		             up / 60 % 60, up % 60, up);
	}
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		buf[0] = '\0';
	}
	print_row("uptime", buf);
	if (!info->hsm_configured) {
		print_row("hsm", "not configured");
		return;
	}
	print_row("hsm", "configured");
	print_row("hsm token label", info->hsm_token_label);
	print_row("hsm token model", info->hsm_token_model);
	print_row("hsm manufacturer", info->hsm_manufacturer);
	print_row("hsm token serial", info->hsm_serial);
}

static void print_info_json(const tkmctl_opts *o, const tkm_server_info *info)
{
	fputs("{\"url\":", stdout);
	tkmctl_put_json_str(stdout, o->url);
	fputs(",\"server_version\":", stdout);
	tkmctl_put_json_str(stdout, info->server_version);
	printf(",\"protocol_version\":%llu,\"uptime_s\":%llu,\"hsm\":{\"configured\":%s",
	       (unsigned long long)info->protocol_version, (unsigned long long)info->uptime_s,
	       info->hsm_configured ? "true" : "false");
	if (info->hsm_configured) {
		fputs(",\"token_label\":", stdout);
		tkmctl_put_json_str(stdout, info->hsm_token_label);
		fputs(",\"token_model\":", stdout);
		tkmctl_put_json_str(stdout, info->hsm_token_model);
		fputs(",\"manufacturer\":", stdout);
		tkmctl_put_json_str(stdout, info->hsm_manufacturer);
		fputs(",\"serial\":", stdout);
		tkmctl_put_json_str(stdout, info->hsm_serial);
	}
	fputs("}}\n", stdout);
}

static int cmd_info(const tkmctl_opts *o, int argc, char **argv)
{
	tkm_client *c = NULL;
	tkm_server_info info;
	tkm_status st;
	tkm_err err;
	int rc;

	if (argc > 0) {
		return tkmctl_usage_error("info takes no arguments", argv[0]);
	}
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if ((err = tkm_info(c, o->timeout_ms, &st, &info)) != TKM_OK) {
		rc = tkmctl_fail(o, err, st.message);
		goto out;
	}
	if (o->json) {
		print_info_json(o, &info);
	} else {
		print_info_text(o, &info);
	}
out:
	tkm_client_close(c);
	return rc;
}

/* ---- Arguments ---- */

/*
 * The value of option `name` at argv[*i]: "--name=VALUE" or "--name VALUE".
 * Returns NULL when argv[*i] is not this option; *missing when it is but has
 * no value.
 */
const char *tkmctl_opt_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (strncmp(a, name, n) != 0) {
		return NULL;
	}
	if (a[n] == '=') {
		return a + n + 1;
	}
	if (a[n] != '\0') {
		return NULL;
	}
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
}

int tkmctl_call_cmd(const tkmctl_opts *o, size_t max_reply, const char *method,
                    const tkm_cbor_w *params, tkmctl_reply *r, bool *done)
{
	tkm_client *c = NULL;
	tkm_err err;
	int rc;

	memset(r, 0, sizeof(*r));
	*done = false;
	if ((rc = tkmctl_connect(o, max_reply, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if ((err = tkmctl_call(c, o, method, params, r)) != TKM_OK) {
		rc = tkmctl_fail(o, err, r->why);
		goto out;
	}
	if (r->pending) {
		*done = true;
		rc = tkmctl_pending(o, r);
	}
out:
	tkm_client_close(c);
	return rc;
}

int tkmctl_params_new(const tkmctl_opts *o, size_t max, tkm_cbor_w **w)
{
	tkm_err err = tkm_cbor_w_new(max, w);

	return err == TKM_OK ? TKMCTL_EXIT_OK : tkmctl_fail(o, err, NULL);
}

int tkmctl_params_check(const tkmctl_opts *o, const tkm_cbor_w *w)
{
	const uint8_t *p;
	size_t n;
	tkm_err err = tkm_cbor_w_finish(w, &p, &n);

	if (err == TKM_E_RESOURCE_EXHAUSTED) {
		return tkmctl_usage_error("the arguments are too long", NULL);
	}
	return err == TKM_OK ? TKMCTL_EXIT_OK : tkmctl_fail(o, err, NULL);
}

bool tkmctl_parse_uint(uint64_t min, const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0') {
		return false;
	}
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s < '0' || *s > '9') {
			return false;
		}
		d = (unsigned)(*s - '0');
		if (v > (max - d) / 10) {
			return false;
		}
		v = v * 10 + d;
	}
	if (v < min) {
		return false;
	}
	*out = v;
	return true;
}

static bool parse_timeout(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > TKMCTL_TIMEOUT_MAX) {
		return false;
	}
	*out = (int)v;
	return true;
}

enum { OPT_NONE, OPT_DONE, OPT_BAD };

/* An unknown option, named without its "=VALUE": the value may be a secret typed by mistake. */
static int unknown_option(const char *a)
{
	const char *eq = strchr(a, '=');
	char name[64];

	if (eq == NULL) {
		return tkmctl_usage_error("unknown option", a);
	}
	tkm_why_set(name, sizeof(name), "%.*s", (int)((size_t)(eq - a) < 40 ? eq - a : 40), a);
	return tkmctl_usage_error("unknown option (its value is not shown)", name);
}

/* Parse one global option at argv[*i]; OPT_NONE when it is not one. */
static int parse_global(tkmctl_opts *o, int argc, char **argv, int *i, bool *help, bool *version)
{
	const char *a = argv[*i];
	const char *v;
	bool missing = false;

	if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
		*help = true;
		return OPT_DONE;
	}
	if (strcmp(a, "--version") == 0) {
		*version = true;
		return OPT_DONE;
	}
	if (strcmp(a, "--json") == 0) {
		o->json = true;
		return OPT_DONE;
	}
	if ((v = tkmctl_opt_value(argc, argv, i, "--url", &missing)) != NULL) {
		o->url = v;
	} else if ((v = tkmctl_opt_value(argc, argv, i, "--timeout", &missing)) != NULL) {
		if (!parse_timeout(v, &o->timeout_ms)) {
			tkmctl_usage_error("--timeout needs milliseconds from 1 to 3600000", v);
			return OPT_BAD;
		}
	} else if ((v = tkmctl_opt_value(argc, argv, i, "--ca-file", &missing)) != NULL) {
		o->ca_file = v;
	} else if ((v = tkmctl_opt_value(argc, argv, i, "--server-name", &missing)) != NULL) {
		o->server_name = v;
	} else if ((v = tkmctl_opt_value(argc, argv, i, "--session", &missing)) != NULL) {
		if (v[0] == '\0') {
			tkmctl_usage_error("--session needs a file name", NULL);
			return OPT_BAD;
		}
		o->session_file = v;
	} else if (missing) {
		tkmctl_usage_error("option needs a value", a);
		return OPT_BAD;
	} else {
		return OPT_NONE;
	}
	return OPT_DONE;
}

int main(int argc, char **argv)
{
	tkmctl_opts o;
	const tkmctl_cmd *cmd = NULL;
	char **args = NULL;
	int nargs = 0;
	bool help = false, version = false, no_more_opts = false;
	const char *env;
	int rc;

	memset(&o, 0, sizeof(o));
	if (sodium_init() < 0) {
		fputs("tkmctl: crypto: libsodium cannot be initialised\n", stderr);
		return TKMCTL_EXIT_SERVER;
	}
	env = getenv("TKM_URL");
	o.url = env != NULL && env[0] != '\0' ? env : TKMCTL_DEFAULT_URL;
	if (argc < 1 || (args = calloc((size_t)argc, sizeof(*args))) == NULL) {
		fputs("tkmctl: nomem: out of memory\n", stderr);
		return TKMCTL_EXIT_SERVER;
	}

	/* Global options go anywhere; the first word is the command, the rest its arguments. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!no_more_opts && strcmp(a, "--") == 0) {
			no_more_opts = true;
			continue;
		}
		if (!no_more_opts && a[0] == '-' && a[1] != '\0') {
			int r = parse_global(&o, argc, argv, &i, &help, &version);
			if (r == OPT_BAD) {
				rc = TKMCTL_EXIT_USAGE;
				goto out;
			}
			if (r == OPT_DONE) {
				continue;
			}
			if (cmd == NULL) {
				rc = unknown_option(a);
				goto out;
			}
		} else if (cmd == NULL) {
			if ((cmd = find_cmd(a)) == NULL) {
				rc = tkmctl_usage_error("unknown command", a);
				goto out;
			}
			continue;
		}
		args[nargs++] = argv[i];
	}

	if (version) {
		printf("tkmctl %s (libtkm %s)\n", TKM_VERSION_STRING, tkm_version());
		rc = TKMCTL_EXIT_OK;
	} else if (help && cmd != NULL && cmd->run != cmd_help) {
		print_cmd_help(stdout, cmd, nargs, args);
		rc = TKMCTL_EXIT_OK;
	} else if (help) {
		rc = cmd_help(&o, nargs, args);
	} else if (cmd == NULL) {
		rc = tkmctl_usage_error("no command given", NULL);
	} else {
		rc = cmd->run(&o, nargs, args);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fputs("tkmctl: io: cannot write the output\n", stderr);
		if (rc == TKMCTL_EXIT_OK) {
			rc = TKMCTL_EXIT_SERVER;
		}
	}
out:
	free(args);
	return rc;
}
