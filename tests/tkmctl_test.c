/*
 * tkmctl_test.c - the tkmctl command as a user runs it, against a real tkmd.
 *
 * Exit codes are part of tkmctl's interface (0 ok, 1 server error, 2 usage,
 * 3 connection), and --json output must be valid JSON: python3's json.tool
 * is the judge, so that the test does not trust a parser of its own.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkm_test.h"
#include "tkm_testenv.h"

#ifndef TKM_TKMCTL_PATH
#error "TKM_TKMCTL_PATH (the tkmctl binary) must be defined by the build"
#endif
#ifndef TKM_PYTHON3
#define TKM_PYTHON3 "python3"
#endif

static tkm_testenv *env;
static char out_path[320], err_path[320];

/*
 * Run tkmctl with up to 8 arguments; returns its exit status. *out gets its
 * stdout (free()) when out is not NULL.
 */
static int tkmctl(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
                  const char *a5)
{
	const char *argv[8] = {TKM_TKMCTL_PATH, a1, a2, a3, a4, a5, NULL, NULL};
	int status = -1;

	if (tkm_testenv_run(env, argv, out_path, err_path, 30000, &status) != TKM_OK) {
		return -1;
	}
	if (out != NULL) {
		*out = tkm_testenv_read_file(out_path, NULL);
	}
	return status;
}

static bool has(const char *text, const char *needle)
{
	bool ok = text != NULL && strstr(text, needle) != NULL;

	if (!ok) {
		fprintf(stderr, "output lacks \"%s\":\n%s\n", needle, text ? text : "(none)");
	}
	return ok;
}

/* python3 -m json.tool FILE exits 0 exactly when FILE holds valid JSON. */
static int json_valid(const char *path)
{
	char jout[320];
	const char *argv[] = {TKM_PYTHON3, "-m", "json.tool", path, NULL};
	int status = -1;

	snprintf(jout, sizeof(jout), "%s/json.out", tkm_testenv_dir(env));
	if (tkm_testenv_run(env, argv, jout, jout, 30000, &status) != TKM_OK) {
		return -1;
	}
	if (status != 0) {
		char *o = tkm_testenv_read_file(jout, NULL);

		fprintf(stderr, "json.tool exited %d: %s\n", status, o ? o : "");
		free(o);
	}
	return status;
}

int main(void)
{
	char *out = NULL;
	const char *ipc, *tcp;
	char missing_ipc[320], missing_tcp[64];
	char json_copy[320];

	if (tkm_testenv_new(&env) != TKM_OK || tkm_testenv_start(env, NULL, NULL) != TKM_OK) {
		CHECK(!"test environment");
		goto out;
	}
	ipc = tkm_testenv_ipc_url(env);
	tcp = tkm_testenv_tcp_url(env);
	snprintf(out_path, sizeof(out_path), "%s/tkmctl.out", tkm_testenv_dir(env));
	snprintf(err_path, sizeof(err_path), "%s/tkmctl.err", tkm_testenv_dir(env));
	snprintf(json_copy, sizeof(json_copy), "%s/tkmctl.json", tkm_testenv_dir(env));
	snprintf(missing_ipc, sizeof(missing_ipc), "ipc://%s/nobody-here.sock",
	         tkm_testenv_dir(env));
	snprintf(missing_tcp, sizeof(missing_tcp), "tcp://127.0.0.1:%u",
	         (unsigned)tkm_testenv_spare_port(env));

	/* info needs a session: refused without one (with a hint), then as officer1. */
	CHECK_EQ_INT(tkmctl(NULL, "--url", ipc, "info", NULL, NULL), 1);
	{
		char session[320];
		tkm_client *officer = NULL;

		snprintf(session, sizeof(session), "%s/tkmctl.session", tkm_testenv_dir(env));
		CHECK_EQ_INT(tkm_testenv_login(env, "officer1", &officer), TKM_OK);
		tkm_client_close(officer);
		CHECK_EQ_INT(tkm_testenv_session_file(env, "officer1", session), TKM_OK);
	}

	/* ping and info, text output, over both transports. */
	CHECK_EQ_INT(tkmctl(&out, "--url", ipc, "ping", NULL, NULL), 0);
	CHECK(has(out, "pong"));
	free(out);
	CHECK_EQ_INT(tkmctl(&out, "--url", tcp, "ping", NULL, NULL), 0);
	free(out);
	CHECK_EQ_INT(tkmctl(&out, "--url", tcp, "info", NULL, NULL), 0);
	CHECK(has(out, "tkm"));
	free(out);
	/* Options may follow the command. */
	CHECK_EQ_INT(tkmctl(&out, "info", "--url", ipc, NULL, NULL), 0);
	free(out);

	/* --json output is one valid JSON document with the fields of sys.info. */
	CHECK_EQ_INT(tkmctl(&out, "--url", ipc, "--json", "info", NULL), 0);
	CHECK(has(out, "\"token_label\""));
	CHECK(has(out, "\"protocol_version\""));
	CHECK(has(out, "\"tkm\""));
	free(out);
	CHECK_EQ_INT(json_valid(out_path), 0);
	CHECK_EQ_INT(tkmctl(&out, "--json", "--url", tcp, "ping", NULL), 0);
	CHECK(has(out, "\"pong\""));
	free(out);
	CHECK_EQ_INT(json_valid(out_path), 0);
	/* The judge judges: a broken document is refused. */
	{
		FILE *f = fopen(json_copy, "w");

		CHECK(f != NULL);
		if (f != NULL) {
			fputs("{\"pong\": true,", f);
			fclose(f);
		}
		CHECK(json_valid(json_copy) != 0);
	}

	/* No server: exit 3. */
	CHECK_EQ_INT(tkmctl(NULL, "--url", missing_ipc, "ping", NULL, NULL), 3);
	CHECK_EQ_INT(tkmctl(NULL, "--url", missing_tcp, "info", NULL, NULL), 3);
	CHECK_EQ_INT(tkmctl(NULL, "--url", missing_tcp, "--json", "ping", NULL), 3);

	/* Usage errors: exit 2. */
	CHECK_EQ_INT(tkmctl(NULL, NULL, NULL, NULL, NULL, NULL), 2);
	CHECK_EQ_INT(tkmctl(NULL, "--no-such-option", "ping", NULL, NULL, NULL), 2);
	CHECK_EQ_INT(tkmctl(NULL, "--url", ipc, "frobnicate", NULL, NULL), 2);
	CHECK_EQ_INT(tkmctl(NULL, "--url", ipc, "--timeout", "soon", "ping"), 2);
	CHECK_EQ_INT(tkmctl(NULL, "--url", ipc, "ping", "extra-argument", NULL), 2);
	CHECK_EQ_INT(tkmctl(NULL, "--url", NULL, NULL, NULL, NULL), 2);
	CHECK_EQ_INT(tkmctl(NULL, "--url", "gopher://localhost:70", "ping", NULL, NULL), 2);

	/* --help everywhere: exit 0 and a usage line on stdout. */
	CHECK_EQ_INT(tkmctl(&out, "--help", NULL, NULL, NULL, NULL), 0);
	CHECK(has(out, "usage: tkmctl"));
	free(out);
	CHECK_EQ_INT(tkmctl(&out, "ping", "--help", NULL, NULL, NULL), 0);
	CHECK(has(out, "usage: tkmctl"));
	CHECK(has(out, "ping"));
	free(out);
	CHECK_EQ_INT(tkmctl(&out, "info", "--help", NULL, NULL, NULL), 0);
	CHECK(has(out, "info"));
	free(out);
	CHECK_EQ_INT(tkmctl(&out, "help", "info", NULL, NULL, NULL), 0);
	free(out);
	out = NULL;

	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
	/* And with tkmd gone, the same URL is a connection error. */
	CHECK_EQ_INT(tkmctl(NULL, "--url", ipc, "ping", NULL, NULL), 3);
out:
	if (tkm_test_failed != 0 && env != NULL) {
		tkm_testenv_dump_log(env);
	}
	tkm_testenv_free(env);
	return tkm_test_report("tkmctl");
}
