/*
 * tkm_devtool.c - the helpers tkm-terminal and tkm-station share
 * (tkm_devtool.h): the command table and option parsing, errors and exit
 * codes, output of untrusted text, connecting, calls with checked replies,
 * and new private files. It holds no key bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "tkm/client.h"
#include "tkm_cbor.h"
#include "tkm_devtool.h"
#include "tkm_toolout.h"
#include "tkm_why.h"

#ifndef TKM_VERSION_STRING
#error "TKM_VERSION_STRING must be defined by the build"
#endif

#define DEVTOOL_TIMEOUT_MAX 3600000
#define DEVTOOL_REPLY_DEPTH (TKM_CBOR_DEFAULT_MAX_DEPTH + 4)

static const char *prog_name = "tkm";

/* ---- Errors and exit codes ---- */

const char *tkm_devtool_err_name(tkm_err err)
{
	return tkm_toolout_err_name(err);
}

int tkm_devtool_exit_of(tkm_err err)
{
	switch (err) {
	case TKM_OK:
		return TKM_DEVTOOL_EXIT_OK;
	case TKM_E_CONNECT:
	case TKM_E_TIMEOUT:
	case TKM_E_CLOSED:
		return TKM_DEVTOOL_EXIT_CONNECT;
	case TKM_E_INVALID_ARG:
	case TKM_E_CONFIG:
		return TKM_DEVTOOL_EXIT_USAGE;
	default:
		return TKM_DEVTOOL_EXIT_SERVER;
	}
}

int tkm_devtool_fail(bool json, tkm_err err, const char *message)
{
	if (message == NULL || message[0] == '\0') {
		message = tkm_strerror(err);
	}
	fprintf(stderr, "%s: %s: ", prog_name, tkm_devtool_err_name(err));
	tkm_devtool_put_text(stderr, message);
	fputc('\n', stderr);
	if (json) {
		fputs("{\"error\":{\"code\":", stdout);
		tkm_devtool_put_json_str(stdout, tkm_devtool_err_name(err));
		fputs(",\"message\":", stdout);
		tkm_devtool_put_json_str(stdout, message);
		fputs("}}\n", stdout);
	}
	return tkm_devtool_exit_of(err);
}

int tkm_devtool_usage(const char *what, const char *arg)
{
	fprintf(stderr, "%s: usage: %s", prog_name, what);
	if (arg != NULL) {
		fputs(": ", stderr);
		tkm_devtool_put_text(stderr, arg);
	}
	fprintf(stderr, "\nRun '%s --help' for usage.\n", prog_name);
	return TKM_DEVTOOL_EXIT_USAGE;
}

int tkm_devtool_need(const char *value, const char *name)
{
	char what[96];

	if (value != NULL && value[0] != '\0') {
		return TKM_DEVTOOL_EXIT_OK;
	}
	tkm_why_set(what, sizeof(what), "%s is required", name);
	return tkm_devtool_usage(what, NULL);
}

/* ---- Commands and options ---- */

void tkm_devtool_cmd_help(const tkm_devtool_cmd *cmd)
{
	printf("usage: %s %s %s\n\n%s\nExit status: 0 ok, 1 server error (error or invalid reply)"
	       " or local failure,\n2 usage error, 3 connection error (cannot connect, timeout, "
	       "connection closed).\n",
	       prog_name, cmd->name, cmd->usage, cmd->help);
}

static int unknown_option(const char *a);

static void main_help(const char *about, const tkm_devtool_cmd *cmds, size_t ncmds)
{
	printf("usage: %s COMMAND [OPTIONS]\n       %s --version\n\n%s\nCommands:\n", prog_name,
	       prog_name, about);
	for (size_t i = 0; i < ncmds; i++) {
		printf("  %-12s  %s\n", cmds[i].name, cmds[i].summary);
	}
	printf("\nRun '%s COMMAND --help' for the options of one command.\n"
	       "\n"
	       "Exit status: 0 ok, 1 server error (error or invalid reply) or local failure,\n"
	       "2 usage error, 3 connection error (cannot connect, timeout, connection closed).\n",
	       prog_name);
}

int tkm_devtool_main(const char *prog, const char *about, const tkm_devtool_cmd *cmds, size_t ncmds,
                     int argc, char **argv)
{
	const char *a;
	int rc;

	prog_name = prog;
	if (sodium_init() < 0) {
		fprintf(stderr, "%s: crypto: libsodium cannot be initialised\n", prog_name);
		return TKM_DEVTOOL_EXIT_SERVER;
	}
	if (argc < 2) {
		return tkm_devtool_usage("no command given", NULL);
	}
	a = argv[1];
	if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
		main_help(about, cmds, ncmds);
		rc = TKM_DEVTOOL_EXIT_OK;
	} else if (strcmp(a, "--version") == 0) {
		printf("%s %s (libtkm %s)\n", prog_name, TKM_VERSION_STRING, tkm_version());
		rc = TKM_DEVTOOL_EXIT_OK;
	} else {
		const tkm_devtool_cmd *cmd = NULL;

		for (size_t i = 0; i < ncmds && cmd == NULL; i++) {
			if (strcmp(cmds[i].name, a) == 0) {
				cmd = &cmds[i];
			}
		}
		if (cmd == NULL) {
			return a[0] == '-' ? unknown_option(a)
			                   : tkm_devtool_usage("unknown command", a);
		}
		rc = cmd->run(cmd, argc - 2, argv + 2);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: io: cannot write the output\n", prog_name);
		if (rc == TKM_DEVTOOL_EXIT_OK) {
			rc = TKM_DEVTOOL_EXIT_SERVER;
		}
	}
	return rc;
}

/* The option of opts named by a ("--name" or "--name=..."), or NULL. */
static const tkm_devtool_opt *find_opt(const tkm_devtool_opt *opts, size_t nopts, const char *a,
                                       const char **inline_value)
{
	for (size_t i = 0; i < nopts; i++) {
		size_t n = strlen(opts[i].name);

		if (strncmp(a, opts[i].name, n) != 0) {
			continue;
		}
		if (a[n] == '\0') {
			*inline_value = NULL;
			return &opts[i];
		}
		if (a[n] == '=') {
			*inline_value = a + n + 1;
			return &opts[i];
		}
	}
	return NULL;
}

/* The name of an unknown option without its "=VALUE": the value may be a secret. */
static int unknown_option(const char *a)
{
	const char *eq = strchr(a, '=');
	char name[64];

	if (a[0] != '-') {
		return tkm_devtool_usage("unexpected argument", a);
	}
	if (eq == NULL) {
		return tkm_devtool_usage("unknown option", a);
	}
	tkm_why_set(name, sizeof(name), "%.*s", (int)((size_t)(eq - a) < 40 ? eq - a : 40), a);
	return tkm_devtool_usage("unknown option (its value is not shown)", name);
}

int tkm_devtool_parse(const tkm_devtool_cmd *cmd, const tkm_devtool_opt *opts, size_t nopts,
                      int argc, char **argv, bool *help)
{
	*help = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v = NULL;
		const tkm_devtool_opt *o;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			tkm_devtool_cmd_help(cmd);
			*help = true;
			return TKM_DEVTOOL_EXIT_OK;
		}
		if ((o = find_opt(opts, nopts, a, &v)) == NULL) {
			return unknown_option(a);
		}
		if (o->flag != NULL) {
			if (v != NULL) {
				return tkm_devtool_usage("option takes no value", o->name);
			}
			*o->flag = true;
			continue;
		}
		if (v == NULL) {
			if (i + 1 >= argc) {
				return tkm_devtool_usage("option needs a value", o->name);
			}
			v = argv[++i];
		}
		if (o->value != NULL) {
			if (*o->value != NULL) {
				return tkm_devtool_usage("option given twice", o->name);
			}
			*o->value = v;
		} else {
			if (*o->list_n >= o->list_max) {
				return tkm_devtool_usage("option given too many times", o->name);
			}
			o->list[(*o->list_n)++] = v;
		}
	}
	return TKM_DEVTOOL_EXIT_OK;
}

int tkm_devtool_parse_timeout(const char *s, int *out)
{
	char *end;
	long v;

	if (s == NULL) {
		return TKM_DEVTOOL_EXIT_OK;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > DEVTOOL_TIMEOUT_MAX) {
		return tkm_devtool_usage("--timeout needs milliseconds from 1 to 3600000", s);
	}
	*out = (int)v;
	return TKM_DEVTOOL_EXIT_OK;
}

/* ---- Output of untrusted text ---- */

/* The tkm_devtool_put_* names of tkm_toolout's functions, for the tools. */

void tkm_devtool_put_text_n(FILE *f, const char *s, size_t len)
{
	tkm_toolout_put_text_n(f, s, len);
}

void tkm_devtool_put_text(FILE *f, const char *s)
{
	tkm_toolout_put_text(f, s);
}

void tkm_devtool_put_cell(FILE *f, const char *s, size_t len, size_t width)
{
	tkm_toolout_put_cell(f, s, len, width);
}

bool tkm_devtool_text_ok(const char *s, size_t len, size_t max)
{
	return tkm_toolout_text_ok(s, len, max);
}

void tkm_devtool_put_json_str_n(FILE *f, const char *s, size_t len)
{
	tkm_toolout_put_json_str_n(f, s, len);
}

void tkm_devtool_put_json_str(FILE *f, const char *s)
{
	tkm_toolout_put_json_str(f, s);
}

void tkm_devtool_put_hex(FILE *f, const uint8_t *p, size_t len)
{
	tkm_toolout_put_hex(f, p, len);
}

void tkm_devtool_put_json_cbor(FILE *f, const tkm_cbor_val *v)
{
	tkm_toolout_put_json_cbor(f, v);
}

void tkm_devtool_format_ms(uint64_t ms, char *buf, size_t len)
{
	time_t tt = (time_t)(ms / 1000u);
	struct tm tm;
	int n;

	if ((uint64_t)tt == ms / 1000u && gmtime_r(&tt, &tm) != NULL &&
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0) {
		return;
	}
	n = snprintf(buf, len, "%llu ms", (unsigned long long)ms);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
	}
}

/* ---- Talking to tkmd ---- */

int tkm_devtool_connect(const tkm_devtool_conn *cn, tkm_client **c)
{
	tkm_client_opts co;
	tkm_status st;
	tkm_err err;

	memset(&co, 0, sizeof(co));
	memset(&st, 0, sizeof(st));
	co.timeout_ms = cn->timeout_ms;
	co.tls_ca_file = cn->ca_file;
	co.tls_server_name = cn->server_name;
	if ((err = tkm_client_open(cn->url, &co, &st, c)) != TKM_OK) {
		return tkm_devtool_fail(cn->json, err, st.message);
	}
	return TKM_DEVTOOL_EXIT_OK;
}

void tkm_devtool_reply_free(tkm_devtool_reply *r)
{
	tkm_cbor_doc_free(r->doc);
	r->doc = NULL;
	r->root = NULL;
}

bool tkm_devtool_reply_bad(tkm_devtool_reply *r, const char *what)
{
	if (!r->bad) {
		r->bad = true;
		tkm_why_set(r->why, sizeof(r->why), "%s: invalid reply: %s", r->method, what);
	}
	return false;
}

static bool bad_field(tkm_devtool_reply *r, const char *key, const char *want)
{
	char what[160];

	tkm_why_set(what, sizeof(what), "'%s' is missing or not %s", key, want);
	return tkm_devtool_reply_bad(r, what);
}

bool tkm_devtool_get_uint(tkm_devtool_reply *r, const tkm_cbor_val *map, const char *key,
                          uint64_t *out)
{
	if (!tkm_cbor_get_uint(tkm_cbor_map_get(map, key), out)) {
		return bad_field(r, key, "an unsigned integer");
	}
	return true;
}

bool tkm_devtool_get_text(tkm_devtool_reply *r, const tkm_cbor_val *map, const char *key,
                          size_t max, const char **s, size_t *n)
{
	char want[80];

	if (tkm_cbor_get_text(tkm_cbor_map_get(map, key), s, n) && *n > 0 && *n <= max &&
	    memchr(*s, '\0', *n) == NULL) {
		return true;
	}
	tkm_why_set(want, sizeof(want), "text of 1 to %zu bytes without NUL", max);
	return bad_field(r, key, want);
}

tkm_err tkm_devtool_call(tkm_client *c, const tkm_devtool_conn *cn, const char *method,
                         const tkm_cbor_w *params, tkm_devtool_reply *r)
{
	const uint8_t *p = NULL;
	uint8_t *res = NULL;
	size_t plen = 0, rlen = 0;
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_status st;
	char why[200] = "";
	tkm_err err;

	memset(r, 0, sizeof(*r));
	memset(&st, 0, sizeof(st));
	r->method = method;
	if (params != NULL && (err = tkm_cbor_w_finish(params, &p, &plen)) != TKM_OK) {
		return tkm_why_fail(r->why, sizeof(r->why), err, "%s: cannot encode the params",
		                    method);
	}
	if ((err = tkm_call_raw(c, method, p, plen, cn->timeout_ms, &st, &res, &rlen)) != TKM_OK) {
		tkm_why_set(r->why, sizeof(r->why), "%s", st.message);
		return err;
	}
	lim.max_depth = DEVTOOL_REPLY_DEPTH;
	err = tkm_cbor_decode(res, rlen, &lim, &r->doc, why, sizeof(why));
	tkm_free(res, rlen);
	if (err != TKM_OK) {
		return tkm_why_fail(r->why, sizeof(r->why), TKM_E_PROTOCOL, "%s: invalid reply: %s",
		                    method, why);
	}
	r->root = tkm_cbor_root(r->doc);
	if (!tkm_cbor_is(r->root, TKM_CBOR_MAP)) {
		tkm_devtool_reply_free(r);
		return tkm_why_fail(r->why, sizeof(r->why), TKM_E_PROTOCOL,
		                    "%s: invalid reply: the result is not a map", method);
	}
	return TKM_OK;
}

/* ---- Local files ---- */

bool tkm_devtool_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n > 0 && (size_t)n < len;
}

tkm_err tkm_devtool_write_new(const char *path, const void *data, size_t len, mode_t mode,
                              char *why, size_t why_len)
{
	const uint8_t *p = data;
	size_t done = 0;
	tkm_err err = TKM_OK;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
	if (fd < 0) {
		return tkm_why_fail(why, why_len, errno == EEXIST ? TKM_E_ALREADY_EXISTS : TKM_E_IO,
		                    "cannot create %s: %s", path, strerror(errno));
	}
	/* The umask may have taken bits away: exactly mode, whatever it is. */
	if (fchmod(fd, mode) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot chmod %s: %s", path,
		                   strerror(errno));
		goto out;
	}
	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);

		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot write %s: %s", path,
			                   strerror(errno));
			goto out;
		}
		done += (size_t)w;
	}
	if (fsync(fd) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot sync %s: %s", path,
		                   strerror(errno));
	}
out:
	if (close(fd) != 0 && err == TKM_OK) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot close %s: %s", path,
		                   strerror(errno));
	}
	if (err != TKM_OK) {
		(void)unlink(path);
	}
	return err;
}

tkm_err tkm_devtool_sync_dir(const char *dir, char *why, size_t why_len)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	tkm_err err = TKM_OK;

	if (fd < 0 || fsync(fd) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot sync the directory %s: %s", dir,
		                   strerror(errno));
	}
	if (fd >= 0) {
		(void)close(fd);
	}
	return err;
}
