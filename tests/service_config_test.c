/*
 * service_config_test.c - tkmd's start-up checks, its shutdown and its log.
 *
 * - plain tcp:// on a non-loopback address is refused (exit 2, and the
 *   message says why) unless allow_insecure_tcp = true;
 * - an unknown setting is a configuration error (exit 2);
 * - SIGTERM and SIGINT drain: a request in flight when the signal arrives
 *   still gets its reply, and tkmd exits 0;
 * - one logfmt line per request with rid=, method=, outcome=, latency_us=,
 *   and never the params.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkm_cbor.h"
#include "tkm_test.h"
#include "tkm_testenv.h"

#define RUN_TIMEOUT_MS 20000
#define MARKER_KEY     "zq_marker_key_5b1e"
#define MARKER_VALUE   "S3CRET-zq-9f27c4d1"

static char *read_log(const tkm_testenv *env)
{
	char *log = tkm_testenv_read_file(tkm_testenv_log_path(env), NULL);

	CHECK(log != NULL);
	return log;
}

/* tcp://0.0.0.0 is refused with exit 2, and the log says it is not loopback. */
static void check_insecure_tcp(tkm_testenv *env)
{
	char listen[512], *config, *log;
	int status = -1;

	snprintf(listen, sizeof(listen), "\"%s\", \"tcp://0.0.0.0:%u\"", tkm_testenv_ipc_url(env),
	         (unsigned)tkm_testenv_spare_port(env));

	config = tkm_testenv_config(env, listen, NULL);
	CHECK(config != NULL);
	if (config == NULL) {
		return;
	}
	CHECK_EQ_INT(tkm_testenv_run_config(env, config, RUN_TIMEOUT_MS, &status), TKM_OK);
	CHECK_EQ_INT(status, 2);
	log = read_log(env);
	CHECK(log != NULL && strstr(log, "loopback") != NULL);
	if (log != NULL && strstr(log, "loopback") == NULL) {
		fprintf(stderr, "refusal message does not mention loopback:\n%s\n", log);
	}
	free(log);
	free(config);

	/* With the development switch it starts, and answers on 127.0.0.1. */
	config = tkm_testenv_config(env, listen, "allow_insecure_tcp = true;");
	CHECK(config != NULL);
	if (config == NULL) {
		return;
	}
	CHECK_EQ_INT(tkm_testenv_start_config(env, config), TKM_OK);
	{
		char url[64];
		tkm_client *c = NULL;
		tkm_ping_result pr;

		snprintf(url, sizeof(url), "tcp://127.0.0.1:%u",
		         (unsigned)tkm_testenv_spare_port(env));
		CHECK_EQ_INT(tkm_testenv_client(url, &c), TKM_OK);
		if (c != NULL) {
			memset(&pr, 0, sizeof(pr));
			CHECK_EQ_INT(tkm_ping(c, 5000, NULL, &pr), TKM_OK);
			CHECK(pr.pong);
		}
		tkm_client_close(c);
	}
	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
	free(config);
}

/* Bad configurations: each exits 2 without serving. */
static void check_bad_configs(tkm_testenv *env)
{
	static const char *const extras[] = {
	    "no_such_setting = 1;",  /* unknown key */
	    "workers = \"eight\";",  /* wrong type */
	    "max_message_size = 0;", /* out of range */
	    "log_level = \"loud\";", /* unknown value */
	};
	int status;

	for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
		char *config = tkm_testenv_config(env, NULL, extras[i]);

		CHECK(config != NULL);
		if (config == NULL) {
			continue;
		}
		status = -1;
		CHECK_EQ_INT(tkm_testenv_run_config(env, config, RUN_TIMEOUT_MS, &status), TKM_OK);
		if (status != 2) {
			fprintf(stderr, "config \"%s\": exit %d, want 2\n", extras[i], status);
		}
		CHECK_EQ_INT(status, 2);
		free(config);
	}
	/* Not parseable at all. */
	status = -1;
	CHECK_EQ_INT(tkm_testenv_run_config(env, "listen = [;\n", RUN_TIMEOUT_MS, &status), TKM_OK);
	CHECK_EQ_INT(status, 2);
}

typedef struct sleeper {
	tkm_client *client;
	tkm_err err;
	uint64_t slept_ms;
	char message[256];
	atomic_bool started;
} sleeper;

static void *sleeper_run(void *arg)
{
	sleeper *s = arg;
	tkm_cbor_w *w = NULL;
	tkm_cbor_doc *doc = NULL;
	const uint8_t *p;
	size_t n, res_len = 0;
	uint8_t *res = NULL;
	tkm_status st;
	tkm_cbor_limits lim = tkm_cbor_default_limits();

	memset(&st, 0, sizeof(st));
	if ((s->err = tkm_cbor_w_new(64, &w)) != TKM_OK) {
		goto out;
	}
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "ms");
	tkm_cbor_put_uint(w, 1000);
	if ((s->err = tkm_cbor_w_finish(w, &p, &n)) != TKM_OK) {
		goto out;
	}
	atomic_store(&s->started, true);
	s->err = tkm_call_raw(s->client, "debug.sleep", p, n, 15000, &st, &res, &res_len);
	snprintf(s->message, sizeof(s->message), "%s", st.message);
	if (s->err == TKM_OK) {
		s->err = tkm_cbor_decode(res, res_len, &lim, &doc, NULL, 0);
		if (s->err == TKM_OK &&
		    !tkm_cbor_get_uint(tkm_cbor_map_get(tkm_cbor_root(doc), "slept_ms"),
		                       &s->slept_ms)) {
			s->err = TKM_E_PROTOCOL;
		}
	}
out:
	atomic_store(&s->started, true);
	tkm_cbor_doc_free(doc);
	tkm_free(res, res_len);
	tkm_cbor_w_free(w);
	return NULL;
}

/* sig arrives while debug.sleep(1000) runs: the reply still comes, then exit 0. */
static void check_drain(tkm_testenv *env, int sig, const char *url_kind)
{
	tkm_client *c = NULL;
	sleeper sl;
	pthread_t t;
	int status;
	const char *url =
	    strcmp(url_kind, "ipc") == 0 ? tkm_testenv_ipc_url(env) : tkm_testenv_tcp_url(env);

	memset(&sl, 0, sizeof(sl));
	if (tkm_testenv_start(env, NULL, NULL) != TKM_OK) {
		CHECK(!"start tkmd");
		return;
	}
	CHECK_EQ_INT(tkm_testenv_client(url, &c), TKM_OK);
	if (c == NULL) {
		return;
	}
	sl.client = c;
	CHECK_EQ_INT(pthread_create(&t, NULL, sleeper_run, &sl), 0);
	while (!atomic_load(&sl.started)) {
		tkm_testenv_sleep_ms(1);
	}
	/* Give the request time to reach a worker; the sleep lasts 1,000 ms. */
	tkm_testenv_sleep_ms(300);
	status = tkm_testenv_stop(env, sig);
	CHECK_EQ_INT(pthread_join(t, NULL), 0);
	if (sl.err != TKM_OK) {
		fprintf(stderr, "signal %d: in-flight debug.sleep: %s: %s\n", sig,
		        tkm_strerror(sl.err), sl.message);
	}
	CHECK_EQ_INT(sl.err, TKM_OK);
	CHECK_EQ_INT(sl.slept_ms, 1000);
	CHECK_EQ_INT(status, 0);
	tkm_client_close(c);
}

/* One line per request, with the fields the issue names, and no params. */
static void check_log(tkm_testenv *env)
{
	tkm_client *c = NULL;
	tkm_ping_result pr;
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t n, res_len = 0;
	uint8_t *res = NULL;
	tkm_status st;
	char *log = NULL, *line, *save = NULL;
	unsigned ping_lines = 0, ok_lines = 0, bad_lines = 0;

	if (tkm_testenv_start(env, NULL, NULL) != TKM_OK) {
		CHECK(!"start tkmd");
		return;
	}
	CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_ipc_url(env), &c), TKM_OK);
	if (c == NULL) {
		return;
	}
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(tkm_ping(c, 5000, NULL, &pr), TKM_OK);
	}

	/* A ping whose params carry a secret-looking key and value: a bad request. */
	CHECK_EQ_INT(tkm_cbor_w_new(256, &w), TKM_OK);
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, MARKER_KEY);
	tkm_cbor_put_cstr(w, MARKER_VALUE);
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &n), TKM_OK);
	CHECK_EQ_INT(tkm_call_raw(c, "sys.ping", p, n, 5000, &st, &res, &res_len),
	             TKM_E_BAD_REQUEST);
	/* The error message may name the problem, but not echo the secret value. */
	CHECK(strstr(st.message, MARKER_VALUE) == NULL);
	tkm_free(res, res_len);
	tkm_cbor_w_free(w);
	tkm_client_close(c);

	/* Stop first, so that every line is flushed. */
	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
	log = read_log(env);
	if (log == NULL) {
		return;
	}
	CHECK(strstr(log, MARKER_VALUE) == NULL);
	CHECK(strstr(log, MARKER_KEY) == NULL);
	for (line = strtok_r(log, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "method=sys.ping") == NULL) {
			continue;
		}
		ping_lines++;
		CHECK(strstr(line, "rid=") != NULL);
		CHECK(strstr(line, "latency_us=") != NULL);
		CHECK(strstr(line, "outcome=") != NULL);
		if (strstr(line, "outcome=ok") != NULL) {
			ok_lines++;
		} else {
			bad_lines++;
		}
	}
	/* The harness's readiness pings are logged too, hence at least. */
	CHECK(ping_lines >= 4);
	CHECK(ok_lines >= 3);
	CHECK_EQ_INT(bad_lines, 1);
	free(log);
}

int main(void)
{
	tkm_testenv *env = NULL;

	if (tkm_testenv_new(&env) != TKM_OK) {
		CHECK(!"test environment");
		goto out;
	}
	check_insecure_tcp(env);
	check_bad_configs(env);
	check_drain(env, SIGTERM, "ipc");
	check_drain(env, SIGINT, "tcp");
	check_log(env);
out:
	if (tkm_test_failed != 0 && env != NULL) {
		tkm_testenv_dump_log(env);
	}
	tkm_testenv_free(env);
	return tkm_test_report("service_config");
}
