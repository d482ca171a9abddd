/*
 * client_test.c - libtkm (client/tkm_client.c) without tkmd: argument and URL
 * checks, connect failures, tkm_strerror, and the typed calls against a
 * scripted REP responder in this process that sends good, malformed, wrong-id,
 * error and missing replies, and drops the connection mid-call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "tkm/client.h"
#include "tkm_test.h"
#include "tkm_wire.h"

/* What the responder does with the next requests. */
enum mode {
	M_PING_OK,
	M_PING_BAD_TYPE,
	M_PING_MISSING,
	M_INFO_PLAIN,
	M_INFO_HSM,
	M_INFO_LONG_VERSION,
	M_INFO_NO_HSM,
	M_ERROR,
	M_ERROR_ID0,
	M_WRONG_ID,
	M_GARBAGE,
	M_SILENT,
	M_DROP,
	M_ECHO_PARAMS,
};

static nng_socket rep;
static _Atomic int mode;
static atomic_uint requests;
static atomic_bool stop;
static char url[128];

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The result the responder sends for mode m, encoded into w. */
static void put_result(tkm_cbor_w *w, int m, const tkm_wire_request *req)
{
	const uint8_t *p = NULL;
	size_t len = 0;

	switch (m) {
	case M_PING_OK:
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "pong");
		tkm_cbor_put_bool(w, true);
		tkm_cbor_put_cstr(w, "time");
		tkm_cbor_put_uint(w, 1767225600);
		break;
	case M_PING_BAD_TYPE:
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "pong");
		tkm_cbor_put_cstr(w, "yes");
		tkm_cbor_put_cstr(w, "time");
		tkm_cbor_put_uint(w, 1);
		break;
	case M_PING_MISSING:
		tkm_cbor_put_map(w, 1);
		tkm_cbor_put_cstr(w, "pong");
		tkm_cbor_put_bool(w, true);
		break;
	case M_INFO_PLAIN:
	case M_INFO_HSM:
	case M_INFO_LONG_VERSION:
	case M_INFO_NO_HSM:
		tkm_cbor_put_map(w, m == M_INFO_NO_HSM ? 3 : 4);
		tkm_cbor_put_cstr(w, "server_version");
		tkm_cbor_put_cstr(w, m == M_INFO_LONG_VERSION ? "0123456789012345678901234567890123"
		                                              : "9.8.7");
		tkm_cbor_put_cstr(w, "protocol_version");
		tkm_cbor_put_uint(w, 1);
		tkm_cbor_put_cstr(w, "uptime_s");
		tkm_cbor_put_uint(w, 90061);
		if (m == M_INFO_NO_HSM) {
			break;
		}
		tkm_cbor_put_cstr(w, "hsm");
		if (m != M_INFO_HSM) {
			tkm_cbor_put_map(w, 1);
			tkm_cbor_put_cstr(w, "configured");
			tkm_cbor_put_bool(w, false);
			break;
		}
		tkm_cbor_put_map(w, 5);
		tkm_cbor_put_cstr(w, "configured");
		tkm_cbor_put_bool(w, true);
		tkm_cbor_put_cstr(w, "token_label");
		tkm_cbor_put_cstr(w, "tkm-dev");
		tkm_cbor_put_cstr(w, "token_model");
		tkm_cbor_put_cstr(w, "SoftHSM v2");
		tkm_cbor_put_cstr(w, "manufacturer");
		tkm_cbor_put_cstr(w, "SoftHSM project");
		tkm_cbor_put_cstr(w, "serial");
		tkm_cbor_put_cstr(w, "1234");
		break;
	case M_ECHO_PARAMS:
		tkm_cbor_raw(req->params, &p, &len);
		tkm_cbor_put_raw(w, p, len);
		break;
	default:
		tkm_cbor_put_null(w);
		break;
	}
}

static void *responder(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		nng_msg *in = NULL;
		tkm_cbor_doc *doc = NULL;
		tkm_cbor_w *w = NULL;
		tkm_cbor_w *res = NULL;
		tkm_wire_request req;
		const uint8_t *p = NULL;
		size_t len = 0;
		char why[128];
		int m;

		if (nng_recvmsg(rep, &in, 0) != 0) {
			continue; /* receive timeout: look at stop again */
		}
		atomic_fetch_add(&requests, 1);
		m = atomic_load(&mode);
		if (tkm_wire_decode_request(nng_msg_body(in), nng_msg_len(in), NULL, &doc, &req,
		                            why, sizeof(why)) != TKM_OK) {
			m = M_ERROR_ID0;
		}
		if (m == M_SILENT) {
			nng_msg_free(in);
			tkm_cbor_doc_free(doc);
			continue;
		}
		if (m == M_DROP) {
			nng_pipe_close(nng_msg_get_pipe(in));
			nng_msg_free(in);
			tkm_cbor_doc_free(doc);
			continue;
		}
		if (tkm_cbor_w_new(1 << 16, &w) != TKM_OK ||
		    tkm_cbor_w_new(1 << 16, &res) != TKM_OK) {
			abort();
		}
		if (m == M_ERROR) {
			tkm_wire_encode_error(w, req.id, TKM_E_NOT_FOUND, "no such \x1b[31mthing",
			                      NULL, 0);
		} else if (m == M_ERROR_ID0) {
			tkm_wire_encode_error(w, 0, TKM_E_BAD_REQUEST, "id unreadable", NULL, 0);
		} else if (m == M_GARBAGE) {
			static const uint8_t junk[] = {0xa1, 0xff, 0x00};
			tkm_cbor_put_raw(w, junk, sizeof(junk));
		} else {
			put_result(res, m, &req);
			if (tkm_cbor_w_finish(res, &p, &len) != TKM_OK) {
				abort();
			}
			tkm_wire_encode_result(w, m == M_WRONG_ID ? req.id + 1000 : req.id, p, len);
		}
		if (tkm_cbor_w_finish(w, &p, &len) != TKM_OK) {
			abort();
		}
		nng_msg_clear(in);
		if (nng_msg_append(in, p, len) != 0 || nng_sendmsg(rep, in, 0) != 0) {
			nng_msg_free(in);
		}
		tkm_cbor_w_free(res);
		tkm_cbor_w_free(w);
		tkm_cbor_doc_free(doc);
	}
	return NULL;
}

static void test_strerror(void)
{
	static const tkm_err all[] = {
	    TKM_OK,
	    TKM_E_BAD_REQUEST,
	    TKM_E_UNAUTHENTICATED,
	    TKM_E_PERMISSION_DENIED,
	    TKM_E_NOT_FOUND,
	    TKM_E_ALREADY_EXISTS,
	    TKM_E_FAILED_PRECONDITION,
	    TKM_E_CONFLICT,
	    TKM_E_RESOURCE_EXHAUSTED,
	    TKM_E_UNAVAILABLE,
	    TKM_E_INTERNAL,
	    TKM_E_UNSUPPORTED_VERSION,
	    TKM_E_NOMEM,
	    TKM_E_INVALID_ARG,
	    TKM_E_TIMEOUT,
	    TKM_E_CONNECT,
	    TKM_E_PROTOCOL,
	    TKM_E_CLOSED,
	    TKM_E_IO,
	    TKM_E_CONFIG,
	    TKM_E_HSM,
	    TKM_E_CRYPTO,
	};
	const char *unknown = tkm_strerror((tkm_err)9999);

	CHECK(unknown != NULL && unknown[0] != '\0');
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *s = tkm_strerror(all[i]);
		CHECK(s != NULL && s[0] != '\0' && strcmp(s, unknown) != 0);
		for (size_t j = 0; j < i; j++) {
			CHECK(strcmp(s, tkm_strerror(all[j])) != 0);
		}
	}
	CHECK_STR(tkm_version(), TKM_VERSION_STRING);
}

static void test_bad_args(void)
{
	tkm_client *c = (tkm_client *)&c; /* must be reset to NULL on failure */
	tkm_client_opts o;
	tkm_status st;

	CHECK_EQ_INT(tkm_client_open(NULL, NULL, &st, &c), TKM_E_INVALID_ARG);
	CHECK(c == NULL);
	CHECK_EQ_INT(st.code, TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_client_open("ipc:///x", NULL, &st, NULL), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_client_open("http://localhost:80", NULL, &st, &c), TKM_E_INVALID_ARG);
	CHECK(strstr(st.message, "ipc://") != NULL);
	CHECK_EQ_INT(tkm_client_open("", NULL, NULL, &c), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_client_open("tcp://", NULL, &st, &c), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_client_open("tcp://localhost", NULL, &st, &c), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_client_open("tls+tcp://localhost:1", NULL, &st, &c), TKM_E_INVALID_ARG);
	CHECK(strstr(st.message, "CA file") != NULL);

	memset(&o, 0, sizeof(o));
	o.tls_ca_file = "/nonexistent/ca.pem";
	CHECK_EQ_INT(tkm_client_open("tcp://127.0.0.1:1", &o, &st, &c), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_client_open("tls+tcp://localhost:1", &o, &st, &c), TKM_E_CONFIG);
	CHECK(strstr(st.message, "/nonexistent/ca.pem") != NULL);
	o.tls_ca_file = NULL;
	o.timeout_ms = -1;
	CHECK_EQ_INT(tkm_client_open("ipc:///x", &o, &st, &c), TKM_E_INVALID_ARG);
	CHECK(c == NULL);

	/* Calls on no handle fail cleanly; close and free are NULL-safe. */
	tkm_ping_result pr;
	uint8_t *res = NULL;
	size_t res_len = 0;
	CHECK_EQ_INT(tkm_ping(NULL, 0, &st, &pr), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_call_raw(NULL, "sys.ping", NULL, 0, 0, &st, &res, &res_len),
	             TKM_E_INVALID_ARG);
	tkm_client_close(NULL);
	tkm_free(NULL, 0);
}

static void test_connect_failure(void)
{
	tkm_client *c = NULL;
	tkm_status st;
	char path[128];

	snprintf(path, sizeof(path), "ipc:///tmp/tkm-client-test-missing-%ld.sock", (long)getpid());
	CHECK_EQ_INT(tkm_client_open(path, NULL, &st, &c), TKM_E_CONNECT);
	CHECK_EQ_INT(st.code, TKM_E_CONNECT);
	CHECK(strstr(st.message, path) != NULL);
	CHECK(c == NULL);
	/* Port 1 on loopback: nothing listens there. */
	CHECK_EQ_INT(tkm_client_open("tcp://127.0.0.1:1", NULL, &st, &c), TKM_E_CONNECT);
}

static void test_calls(void)
{
	tkm_client *c = NULL;
	tkm_status st;
	tkm_ping_result pr;
	tkm_server_info info;
	uint8_t *res = NULL;
	size_t res_len = 0;

	if (tkm_client_open(url, NULL, &st, &c) != TKM_OK) {
		fprintf(stderr, "open %s: %s\n", url, st.message);
		CHECK(false);
		return;
	}

	atomic_store(&mode, M_PING_OK);
	memset(&pr, 0, sizeof(pr));
	CHECK_EQ_INT(tkm_ping(c, 0, &st, &pr), TKM_OK);
	CHECK_EQ_INT(st.code, TKM_OK);
	CHECK(pr.pong);
	CHECK_EQ_INT(pr.time, 1767225600);
	CHECK_EQ_INT(tkm_ping(c, 0, NULL, &pr), TKM_OK);
	CHECK_EQ_INT(tkm_ping(c, -5, &st, &pr), TKM_E_INVALID_ARG);

	pr.time = 77;
	atomic_store(&mode, M_PING_BAD_TYPE);
	CHECK_EQ_INT(tkm_ping(c, 0, &st, &pr), TKM_E_PROTOCOL);
	CHECK_EQ_INT(st.code, TKM_E_PROTOCOL);
	CHECK_EQ_INT(pr.time, 77); /* untouched on failure */
	atomic_store(&mode, M_PING_MISSING);
	CHECK_EQ_INT(tkm_ping(c, 0, &st, &pr), TKM_E_PROTOCOL);

	atomic_store(&mode, M_INFO_PLAIN);
	memset(&info, 0x55, sizeof(info));
	CHECK_EQ_INT(tkm_info(c, 0, &st, &info), TKM_OK);
	CHECK_STR(info.server_version, "9.8.7");
	CHECK_EQ_INT(info.protocol_version, 1);
	CHECK_EQ_INT(info.uptime_s, 90061);
	CHECK(!info.hsm_configured);
	CHECK_STR(info.hsm_token_label, "");
	CHECK_STR(info.hsm_token_model, "");
	CHECK_STR(info.hsm_manufacturer, "");

	atomic_store(&mode, M_INFO_HSM);
	CHECK_EQ_INT(tkm_info(c, 0, &st, &info), TKM_OK);
	CHECK(info.hsm_configured);
	CHECK_STR(info.hsm_token_label, "tkm-dev");
	CHECK_STR(info.hsm_token_model, "SoftHSM v2");
	CHECK_STR(info.hsm_manufacturer, "SoftHSM project");

	atomic_store(&mode, M_INFO_LONG_VERSION);
	CHECK_EQ_INT(tkm_info(c, 0, &st, &info), TKM_E_PROTOCOL);
	atomic_store(&mode, M_INFO_NO_HSM);
	CHECK_EQ_INT(tkm_info(c, 0, &st, &info), TKM_E_PROTOCOL);
	CHECK_STR(info.hsm_token_label, "tkm-dev"); /* untouched on failure */

	/* An error reply carries the server's code and message. */
	atomic_store(&mode, M_ERROR);
	CHECK_EQ_INT(tkm_ping(c, 0, &st, &pr), TKM_E_NOT_FOUND);
	CHECK_EQ_INT(st.code, TKM_E_NOT_FOUND);
	CHECK(strncmp(st.message, "no such ", 8) == 0);
	atomic_store(&mode, M_ERROR_ID0);
	CHECK_EQ_INT(tkm_info(c, 0, &st, &info), TKM_E_BAD_REQUEST);
	CHECK_STR(st.message, "id unreadable");

	atomic_store(&mode, M_WRONG_ID);
	CHECK_EQ_INT(tkm_ping(c, 0, &st, &pr), TKM_E_PROTOCOL);
	CHECK(strstr(st.message, "does not match") != NULL);
	atomic_store(&mode, M_GARBAGE);
	CHECK_EQ_INT(tkm_ping(c, 0, &st, &pr), TKM_E_PROTOCOL);
	CHECK(strstr(st.message, "invalid reply") != NULL);

	/* Raw calls: params must be one map; the result comes back byte for byte. */
	static const uint8_t params[] = {0xa1, 0x61, 'k', 0x82, 0x01, 0x62, 'h', 'i'};
	static const uint8_t not_map[] = {0x82, 0x01, 0x02};
	static const uint8_t trailing[] = {0xa0, 0x00};
	atomic_store(&mode, M_ECHO_PARAMS);
	CHECK_EQ_INT(tkm_call_raw(c, "test.echo", params, sizeof(params), 0, &st, &res, &res_len),
	             TKM_OK);
	CHECK(res != NULL && res_len == sizeof(params) &&
	      memcmp(res, params, res_len) == 0); /* lint: memcmp ok (public data) */
	tkm_free(res, res_len);
	res = NULL;
	CHECK_EQ_INT(tkm_call_raw(c, "test.echo", NULL, 0, 0, &st, &res, &res_len), TKM_OK);
	CHECK(res != NULL && res_len == 1 && res[0] == 0xa0);
	tkm_free(res, res_len);
	res = NULL;
	CHECK_EQ_INT(tkm_call_raw(c, "test.echo", not_map, sizeof(not_map), 0, &st, &res, &res_len),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(
	    tkm_call_raw(c, "test.echo", trailing, sizeof(trailing), 0, &st, &res, &res_len),
	    TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_call_raw(c, "test.echo", params, 0, 0, &st, &res, &res_len),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_call_raw(c, "Bad Method", NULL, 0, 0, &st, &res, &res_len),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_call_raw(c, "", NULL, 0, 0, &st, &res, &res_len), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_call_raw(c, NULL, NULL, 0, 0, &st, &res, &res_len), TKM_E_INVALID_ARG);
	CHECK(res == NULL);

	/* No reply: a timeout, and the request reached the server exactly once. */
	atomic_store(&mode, M_SILENT);
	atomic_store(&requests, 0);
	CHECK_EQ_INT(tkm_ping(c, 300, &st, &pr), TKM_E_TIMEOUT);
	CHECK_EQ_INT(st.code, TKM_E_TIMEOUT);
	sleep_ms(200);
	CHECK_EQ_INT(atomic_load(&requests), 1);

	/*
	 * The server drops the connection after reading the request: the call
	 * fails at once, and after nng redials the request is not sent again.
	 */
	atomic_store(&mode, M_DROP);
	atomic_store(&requests, 0);
	CHECK_EQ_INT(tkm_ping(c, 5000, &st, &pr), TKM_E_CLOSED);
	sleep_ms(500);
	CHECK_EQ_INT(atomic_load(&requests), 1);

	/* The handle recovers once the dialer has reconnected. */
	atomic_store(&mode, M_PING_OK);
	tkm_err err = TKM_E_TIMEOUT;
	for (int i = 0; i < 50 && err != TKM_OK; i++) {
		err = tkm_ping(c, 200, &st, &pr);
		if (err != TKM_OK) {
			sleep_ms(100);
		}
	}
	CHECK_EQ_INT(err, TKM_OK);
	tkm_client_close(c);
}

/* One handle shared by threads: every reply reaches its own caller. */
#define N_THREADS 8
#define N_CALLS   200

static void *pinger(void *arg)
{
	tkm_client *c = arg;
	uintptr_t fails = 0;

	for (int i = 0; i < N_CALLS; i++) {
		tkm_ping_result pr;
		tkm_status st;
		if (tkm_ping(c, 5000, &st, &pr) != TKM_OK || !pr.pong || pr.time != 1767225600) {
			fails++;
		}
	}
	return (void *)fails;
}

static void test_threads(void)
{
	tkm_client *c = NULL;
	tkm_status st;
	pthread_t t[N_THREADS];

	atomic_store(&mode, M_PING_OK);
	if (tkm_client_open(url, NULL, &st, &c) != TKM_OK) {
		CHECK(false);
		return;
	}
	for (int i = 0; i < N_THREADS; i++) {
		CHECK_EQ_INT(pthread_create(&t[i], NULL, pinger, c), 0);
	}
	for (int i = 0; i < N_THREADS; i++) {
		void *fails = NULL;
		CHECK_EQ_INT(pthread_join(t[i], &fails), 0);
		CHECK_EQ_INT((uintptr_t)fails, 0);
	}
	tkm_client_close(c);
}

int main(void)
{
	pthread_t thr;

	test_strerror();
	test_bad_args();
	test_connect_failure();

	snprintf(url, sizeof(url), "ipc:///tmp/tkm-client-test-%ld.sock", (long)getpid());
	if (nng_rep0_open(&rep) != 0 || nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 100) != 0 ||
	    nng_listen(rep, url, NULL, 0) != 0) {
		fprintf(stderr, "cannot listen on %s\n", url);
		return 1;
	}
	if (pthread_create(&thr, NULL, responder, NULL) != 0) {
		return 1;
	}
	test_calls();
	test_threads();
	atomic_store(&stop, true);
	pthread_join(thr, NULL);
	nng_close(rep);
	unlink(url + strlen("ipc://"));
	return tkm_test_report("client");
}
