/*
 * service_slow_test.c - one slow request must not hold up the others.
 *
 * A thread calls debug.sleep for 3,000 ms. While it is in flight, 50 pings
 * from other threads (on the same shared client, and on a second connection)
 * must all be answered, and all of them before the sleep returns. The test
 * asserts only the order of events, never a latency, so a loaded machine
 * cannot make it flaky: if the pings were queued behind the sleep, they would
 * finish after it.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "tkm_cbor.h"
#include "tkm_test.h"
#include "tkm_testenv.h"

#define SLEEP_MS     3000
#define PING_THREADS 5
#define PINGS_EACH   10 /* 50 pings in all */

typedef struct sleeper {
	tkm_client *client;
	tkm_err err;
	uint64_t slept_ms;
	char message[256];
	atomic_bool started; /* just before the call is made */
	atomic_bool done;    /* set as soon as the call returned */
	uint64_t done_us;
} sleeper;

typedef struct pinger {
	pthread_t thread;
	tkm_client *client;
	sleeper *sl;
	unsigned ok;
	unsigned after_sleep; /* pings that completed after the sleep had returned */
	uint64_t last_us;
} pinger;

/* Encode {"ms": ms} with libtkm's CBOR writer. */
static tkm_err sleep_params(uint64_t ms, tkm_cbor_w **w, const uint8_t **p, size_t *len)
{
	tkm_err err;

	if ((err = tkm_cbor_w_new(64, w)) != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(*w, 1);
	tkm_cbor_put_cstr(*w, "ms");
	tkm_cbor_put_uint(*w, ms);
	return tkm_cbor_w_finish(*w, p, len);
}

static void *sleeper_run(void *arg)
{
	sleeper *s = arg;
	tkm_cbor_w *w = NULL;
	tkm_cbor_doc *doc = NULL;
	const uint8_t *params;
	size_t params_len, res_len = 0;
	uint8_t *res = NULL;
	tkm_status st;

	memset(&st, 0, sizeof(st));
	if ((s->err = sleep_params(SLEEP_MS, &w, &params, &params_len)) != TKM_OK) {
		goto out;
	}
	atomic_store(&s->started, true);
	s->err = tkm_call_raw(s->client, "debug.sleep", params, params_len, SLEEP_MS + 10000, &st,
	                      &res, &res_len);
	s->done_us = tkm_testenv_now_us();
	atomic_store(&s->done, true);
	snprintf(s->message, sizeof(s->message), "%s", st.message);
	if (s->err == TKM_OK) {
		tkm_cbor_limits lim = tkm_cbor_default_limits();

		s->err = tkm_cbor_decode(res, res_len, &lim, &doc, NULL, 0);
		if (s->err == TKM_OK &&
		    !tkm_cbor_get_uint(tkm_cbor_map_get(tkm_cbor_root(doc), "slept_ms"),
		                       &s->slept_ms)) {
			s->err = TKM_E_PROTOCOL;
		}
	}
out:
	atomic_store(&s->done, true);
	tkm_cbor_doc_free(doc);
	tkm_free(res, res_len);
	tkm_cbor_w_free(w);
	return NULL;
}

static void *pinger_run(void *arg)
{
	pinger *p = arg;
	tkm_ping_result pr;

	for (unsigned i = 0; i < PINGS_EACH; i++) {
		if (tkm_ping(p->client, 10000, NULL, &pr) == TKM_OK && pr.pong) {
			p->ok++;
			/* Read after the reply: did the sleep finish first? */
			if (atomic_load(&p->sl->done)) {
				p->after_sleep++;
			}
		}
	}
	p->last_us = tkm_testenv_now_us();
	return NULL;
}

int main(void)
{
	tkm_testenv *env = NULL;
	tkm_client *shared = NULL, *other = NULL;
	sleeper sl;
	pinger ps[PING_THREADS];
	pthread_t sleep_thread;
	unsigned ok = 0, after = 0;
	uint64_t pings_done_us = 0;

	memset(&sl, 0, sizeof(sl));
	memset(ps, 0, sizeof(ps));
	if (tkm_testenv_new(&env) != TKM_OK || tkm_testenv_start(env, NULL, NULL) != TKM_OK) {
		CHECK(!"test environment");
		goto out;
	}
	if (tkm_testenv_client(tkm_testenv_ipc_url(env), &shared) != TKM_OK ||
	    tkm_testenv_client(tkm_testenv_tcp_url(env), &other) != TKM_OK) {
		CHECK(!"clients");
		goto out;
	}

	sl.client = shared;
	CHECK_EQ_INT(pthread_create(&sleep_thread, NULL, sleeper_run, &sl), 0);
	/* Let the sleep request reach the server: ordering, not timing, is asserted below. */
	while (!atomic_load(&sl.started)) {
		tkm_testenv_sleep_ms(1);
	}
	tkm_testenv_sleep_ms(300);
	CHECK(!atomic_load(&sl.done));

	for (unsigned i = 0; i < PING_THREADS; i++) {
		ps[i].client = i % 2 == 0 ? shared : other;
		ps[i].sl = &sl;
		CHECK_EQ_INT(pthread_create(&ps[i].thread, NULL, pinger_run, &ps[i]), 0);
	}
	for (unsigned i = 0; i < PING_THREADS; i++) {
		CHECK_EQ_INT(pthread_join(ps[i].thread, NULL), 0);
		ok += ps[i].ok;
		after += ps[i].after_sleep;
		if (ps[i].last_us > pings_done_us) {
			pings_done_us = ps[i].last_us;
		}
	}
	/* All 50 pings answered, every one while the sleep was still in flight. */
	CHECK_EQ_INT(ok, PING_THREADS * PINGS_EACH);
	CHECK_EQ_INT(after, 0);
	CHECK(!atomic_load(&sl.done));

	CHECK_EQ_INT(pthread_join(sleep_thread, NULL), 0);
	if (sl.err != TKM_OK) {
		fprintf(stderr, "debug.sleep: %s: %s\n", tkm_strerror(sl.err), sl.message);
	}
	CHECK_EQ_INT(sl.err, TKM_OK);
	CHECK_EQ_INT(sl.slept_ms, SLEEP_MS);
	CHECK(pings_done_us < sl.done_us);
	printf("50 pings done %.3f s before the %d ms sleep returned\n",
	       ((double)sl.done_us - (double)pings_done_us) / 1e6, SLEEP_MS);

	/* debug.sleep is bounded: more than 10,000 ms is a bad request. */
	{
		tkm_cbor_w *w = NULL;
		const uint8_t *p;
		size_t len, res_len = 0;
		uint8_t *res = NULL;
		tkm_status st;

		CHECK_EQ_INT(sleep_params(10001, &w, &p, &len), TKM_OK);
		CHECK_EQ_INT(tkm_call_raw(shared, "debug.sleep", p, len, 0, &st, &res, &res_len),
		             TKM_E_BAD_REQUEST);
		tkm_free(res, res_len);
		tkm_cbor_w_free(w);
	}

	tkm_client_close(shared);
	tkm_client_close(other);
	shared = other = NULL;
	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
out:
	tkm_client_close(shared);
	tkm_client_close(other);
	if (tkm_test_failed != 0 && env != NULL) {
		tkm_testenv_dump_log(env);
	}
	tkm_testenv_free(env);
	return tkm_test_report("service_slow");
}
