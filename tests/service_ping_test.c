/*
 * service_ping_test.c - sys.ping and sys.info against a real tkmd, and many
 * threads sharing one libtkm client.
 *
 * Over IPC: 16 threads x 1,000 pings on ONE tkm_client, every one answered
 * with pong; over TCP the same with fewer calls. sys.info must report the
 * SoftHSM2 token "tkm" that the harness created.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tkm_test.h"
#include "tkm_testenv.h"

#define IPC_THREADS 16
#define IPC_PINGS   1000
#define TCP_THREADS 8
#define TCP_PINGS   250

typedef struct pinger {
	pthread_t thread;
	tkm_client *client;
	unsigned pings;
	unsigned ok;      /* calls that returned TKM_OK with pong true */
	unsigned failed;  /* anything else */
	tkm_err last_err; /* the last failure, for the report */
	char last_msg[256];
	int64_t min_time, max_time;
} pinger;

static void *pinger_run(void *arg)
{
	pinger *p = arg;
	tkm_status st;
	tkm_ping_result pr;

	p->min_time = INT64_MAX;
	p->max_time = INT64_MIN;
	for (unsigned i = 0; i < p->pings; i++) {
		tkm_err err;

		memset(&pr, 0, sizeof(pr));
		err = tkm_ping(p->client, 10000, &st, &pr);
		if (err == TKM_OK && pr.pong) {
			p->ok++;
			if (pr.time < p->min_time) {
				p->min_time = pr.time;
			}
			if (pr.time > p->max_time) {
				p->max_time = pr.time;
			}
		} else {
			p->failed++;
			p->last_err = err;
			snprintf(p->last_msg, sizeof(p->last_msg), "%s", st.message);
		}
	}
	return NULL;
}

/* nthreads threads x npings pings sharing client; every one must succeed. */
static void ping_storm(tkm_client *client, unsigned nthreads, unsigned npings)
{
	pinger ps[IPC_THREADS];
	unsigned total = 0, failed = 0;
	time_t before = time(NULL);
	uint64_t t0 = tkm_testenv_now_us();

	CHECK(nthreads <= IPC_THREADS);
	memset(ps, 0, sizeof(ps));
	for (unsigned i = 0; i < nthreads; i++) {
		ps[i].client = client;
		ps[i].pings = npings;
		CHECK_EQ_INT(pthread_create(&ps[i].thread, NULL, pinger_run, &ps[i]), 0);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		CHECK_EQ_INT(pthread_join(ps[i].thread, NULL), 0);
		total += ps[i].ok;
		failed += ps[i].failed;
		if (ps[i].failed != 0) {
			fprintf(stderr, "thread %u: %u failed, last: %s: %s\n", i, ps[i].failed,
			        tkm_strerror(ps[i].last_err), ps[i].last_msg);
		}
		/* Every reply carried the server clock of this run. */
		if (ps[i].ok > 0) {
			CHECK(ps[i].min_time >= (int64_t)before - 5);
			CHECK(ps[i].max_time <= (int64_t)time(NULL) + 5);
		}
	}
	CHECK_EQ_INT(failed, 0);
	CHECK_EQ_INT(total, nthreads * npings);
	printf("%u x %u pings: %u ok in %.2f s\n", nthreads, npings, total,
	       (double)(tkm_testenv_now_us() - t0) / 1e6);
}

static void check_ping_and_info(tkm_testenv *env, const char *url)
{
	tkm_client *c = NULL;
	tkm_status st;
	tkm_ping_result pr;
	tkm_server_info info;
	time_t now = time(NULL);
	uint8_t token[32];
	size_t ml;

	CHECK_EQ_INT(tkm_testenv_client(url, &c), TKM_OK);
	if (c == NULL) {
		return;
	}

	memset(&pr, 0, sizeof(pr));
	CHECK_EQ_INT(tkm_ping(c, 0, &st, &pr), TKM_OK);
	CHECK(pr.pong);
	CHECK(pr.time >= (int64_t)now - 5 && pr.time <= (int64_t)now + 5);

	/* sys.info needs a principal: refused without a session, answered with one. */
	memset(&info, 0, sizeof(info));
	CHECK_EQ_INT(tkm_info(c, 0, &st, &info), TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(tkm_testenv_token(env, "officer1", token), TKM_OK);
	CHECK_EQ_INT(tkm_client_use_session(c, token, &st), TKM_OK);
	CHECK_EQ_INT(tkm_info(c, 0, &st, &info), TKM_OK);
	CHECK(info.server_version[0] != '\0');
	CHECK_EQ_INT(info.protocol_version, 1);
	CHECK(info.uptime_s < 600);
	CHECK(info.hsm_configured);
	CHECK_STR(info.hsm_token_label, "tkm");
	/*
	 * SoftHSM2 calls its model "SoftHSM v2"; require some model, not that
	 * text. CK_TOKEN_INFO pads with spaces, which the server trims.
	 */
	ml = strlen(info.hsm_token_model);
	CHECK(ml > 0 && info.hsm_token_model[ml - 1] != ' ');
	CHECK(info.hsm_manufacturer[0] != '\0');
	/* SoftHSM2 gives every token a 16-character hex serial. */
	CHECK_EQ_INT(strlen(info.hsm_serial), 16);
	printf("%s: server %s, token %s (%s, %s)\n", url, info.server_version, info.hsm_token_label,
	       info.hsm_token_model, info.hsm_manufacturer);
	tkm_client_close(c);
}

int main(void)
{
	tkm_testenv *env = NULL;
	tkm_client *c = NULL;
	int status;

	if (tkm_testenv_new(&env) != TKM_OK || tkm_testenv_start(env, NULL, NULL) != TKM_OK) {
		CHECK(!"test environment");
		goto out;
	}

	{
		tkm_client *officer = NULL;

		CHECK_EQ_INT(tkm_testenv_login(env, "officer1", &officer), TKM_OK);
		tkm_client_close(officer);
	}
	check_ping_and_info(env, tkm_testenv_ipc_url(env));
	check_ping_and_info(env, tkm_testenv_tcp_url(env));

	/* 16 threads x 1,000 pings over IPC on one shared client. */
	CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_ipc_url(env), &c), TKM_OK);
	if (c != NULL) {
		ping_storm(c, IPC_THREADS, IPC_PINGS);
	}
	tkm_client_close(c);
	c = NULL;

	/* The same over TCP, fewer calls. */
	CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_tcp_url(env), &c), TKM_OK);
	if (c != NULL) {
		ping_storm(c, TCP_THREADS, TCP_PINGS);
	}
	tkm_client_close(c);
	c = NULL;

	CHECK(tkm_testenv_alive(env));
	status = tkm_testenv_stop(env, SIGTERM);
	CHECK_EQ_INT(status, 0);
out:
	if (tkm_test_failed != 0 && env != NULL) {
		tkm_testenv_dump_log(env);
	}
	tkm_testenv_free(env);
	return tkm_test_report("service_ping");
}
