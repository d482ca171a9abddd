/*
 * service_malformed_test.c - tkmd answers every malformed request with the
 * right error and stays up, also under a flood.
 *
 * The requests are sent with plain nng REQ sockets, not libtkm, because
 * libtkm cannot produce broken messages. Each class of malformed input from
 * docs/protocol.md gets one case with the error code it must draw; then
 * 10,000 malformed and oversize messages arrive from several connections at
 * once (oversize frames are written on raw TCP connections, since an nng
 * socket would only resend them), and tkmd must still answer pings.
 *
 * The replies are decoded with libtkm's strict response decoder, which also
 * checks that every error reply is a valid envelope with a closed-set code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "tkm_cbor.h"
#include "tkm_test.h"
#include "tkm_testenv.h"
#include "tkm_wire.h"

#define MAX_MSG    65536 /* max_message_size for this test */
#define MAX_STR    1024  /* max_string_length for this test */
#define FLOOD_NNG  4     /* nng sockets sending malformed messages */
#define FLOOD_EACH 2400  /* messages per nng socket */
#define FLOOD_RAW  400   /* oversize frames on raw TCP connections */
#define CASE_BUFSZ 4096
#define RECV_TIMEO 10000 /* ms */
#define WATCHDOG_S 150   /* the whole test, in seconds */

/* How the id of an error reply must relate to the request's. */
enum id_rule {
	ID_ECHO, /* the envelope was readable: the id is echoed */
	ID_ZERO, /* the id could not be read: 0 */
	ID_ANY,  /* the CBOR itself is broken: 0, or the id if the server got that far */
};

typedef struct mcase {
	const char *name;
	tkm_err code; /* expected error */
	enum id_rule id_rule;
} mcase;

enum {
	C_EMPTY,
	C_NOT_MAP_ARRAY,
	C_NOT_MAP_TEXT,
	C_TRUNCATED,
	C_TRAILING,
	C_V_TEXT,
	C_ID_TEXT,
	C_ID_NEGATIVE,
	C_METHOD_INT,
	C_PARAMS_ARRAY,
	C_DUP_KEY,
	C_DEEP,
	C_LONG_STRING,
	C_UNKNOWN_METHOD,
	C_V2,
	C_INDEF_MAP,
	C_MISSING_PARAMS,
	C_UNKNOWN_KEY,
	C_UNKNOWN_PARAM,
	C_BAD_UTF8,
	C_TAG,
	C_FLOAT,
	C_HUGE_COUNT,
	C_HUGE_STRING,
	C_BAD_METHOD_NAME,
	NCASES
};

static const mcase cases[NCASES] = {
    [C_EMPTY] = {"empty message", TKM_E_BAD_REQUEST, ID_ZERO},
    [C_NOT_MAP_ARRAY] = {"not a map (array)", TKM_E_BAD_REQUEST, ID_ZERO},
    [C_NOT_MAP_TEXT] = {"not a map (text)", TKM_E_BAD_REQUEST, ID_ZERO},
    [C_TRUNCATED] = {"truncated CBOR", TKM_E_BAD_REQUEST, ID_ANY},
    [C_TRAILING] = {"trailing bytes", TKM_E_BAD_REQUEST, ID_ANY},
    [C_V_TEXT] = {"v as text", TKM_E_BAD_REQUEST, ID_ECHO},
    [C_ID_TEXT] = {"id as text", TKM_E_BAD_REQUEST, ID_ZERO},
    [C_ID_NEGATIVE] = {"id negative", TKM_E_BAD_REQUEST, ID_ZERO},
    [C_METHOD_INT] = {"method as int", TKM_E_BAD_REQUEST, ID_ECHO},
    [C_PARAMS_ARRAY] = {"params as array", TKM_E_BAD_REQUEST, ID_ECHO},
    [C_DUP_KEY] = {"duplicate key", TKM_E_BAD_REQUEST, ID_ANY},
    [C_DEEP] = {"nesting deeper than 16", TKM_E_BAD_REQUEST, ID_ANY},
    [C_LONG_STRING] = {"string over max_string_length", TKM_E_BAD_REQUEST, ID_ANY},
    [C_UNKNOWN_METHOD] = {"unknown method", TKM_E_BAD_REQUEST, ID_ECHO},
    [C_V2] = {"v = 2", TKM_E_UNSUPPORTED_VERSION, ID_ECHO},
    [C_INDEF_MAP] = {"indefinite-length map", TKM_E_BAD_REQUEST, ID_ANY},
    [C_MISSING_PARAMS] = {"missing params", TKM_E_BAD_REQUEST, ID_ECHO},
    [C_UNKNOWN_KEY] = {"unknown envelope key", TKM_E_BAD_REQUEST, ID_ECHO},
    [C_UNKNOWN_PARAM] = {"unknown params key of sys.ping", TKM_E_BAD_REQUEST, ID_ECHO},
    [C_BAD_UTF8] = {"invalid UTF-8 in method", TKM_E_BAD_REQUEST, ID_ANY},
    [C_TAG] = {"tagged item", TKM_E_BAD_REQUEST, ID_ANY},
    [C_FLOAT] = {"float id", TKM_E_BAD_REQUEST, ID_ANY},
    [C_HUGE_COUNT] = {"array claiming 2^32 items", TKM_E_BAD_REQUEST, ID_ANY},
    [C_HUGE_STRING] = {"string claiming 2 GiB", TKM_E_BAD_REQUEST, ID_ANY},
    [C_BAD_METHOD_NAME] = {"method name with bad characters", TKM_E_BAD_REQUEST, ID_ECHO},
};

/* Append the envelope's pairs for a sys.ping request with this id, but for params. */
static void put_head(tkm_cbor_w *w, uint64_t id, const char *method)
{
	tkm_cbor_put_cstr(w, "v");
	tkm_cbor_put_uint(w, 1);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, method);
}

/* A valid sys.ping request. */
static void put_ping(tkm_cbor_w *w, uint64_t id)
{
	tkm_cbor_put_map(w, 4);
	put_head(w, id, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 0);
}

/* Encode malformed case k with request id into buf; false if it does not fit. */
static bool build_case(int k, uint64_t id, uint8_t *buf, size_t cap, size_t *len)
{
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t n;
	bool ok = false;
	static char long_str[MAX_STR + 200];

	if (tkm_cbor_w_new(cap, &w) != TKM_OK) {
		return false;
	}
	switch (k) {
	case C_EMPTY:
		break;
	case C_NOT_MAP_ARRAY:
		tkm_cbor_put_array(w, 2);
		tkm_cbor_put_uint(w, 1);
		tkm_cbor_put_uint(w, 2);
		break;
	case C_NOT_MAP_TEXT:
		tkm_cbor_put_cstr(w, "sys.ping");
		break;
	case C_TRUNCATED:
	case C_TRAILING:
		put_ping(w, id);
		break;
	case C_V_TEXT:
		tkm_cbor_put_map(w, 4);
		tkm_cbor_put_cstr(w, "v");
		tkm_cbor_put_cstr(w, "1");
		tkm_cbor_put_cstr(w, "id");
		tkm_cbor_put_uint(w, id);
		tkm_cbor_put_cstr(w, "method");
		tkm_cbor_put_cstr(w, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		break;
	case C_ID_TEXT:
	case C_ID_NEGATIVE:
		tkm_cbor_put_map(w, 4);
		tkm_cbor_put_cstr(w, "v");
		tkm_cbor_put_uint(w, 1);
		tkm_cbor_put_cstr(w, "id");
		if (k == C_ID_TEXT) {
			tkm_cbor_put_cstr(w, "17");
		} else {
			tkm_cbor_put_int(w, -17);
		}
		tkm_cbor_put_cstr(w, "method");
		tkm_cbor_put_cstr(w, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		break;
	case C_METHOD_INT:
		tkm_cbor_put_map(w, 4);
		tkm_cbor_put_cstr(w, "v");
		tkm_cbor_put_uint(w, 1);
		tkm_cbor_put_cstr(w, "id");
		tkm_cbor_put_uint(w, id);
		tkm_cbor_put_cstr(w, "method");
		tkm_cbor_put_uint(w, 42);
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		break;
	case C_PARAMS_ARRAY:
		tkm_cbor_put_map(w, 4);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_array(w, 0);
		break;
	case C_DUP_KEY:
		tkm_cbor_put_map(w, 5);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		tkm_cbor_put_cstr(w, "id");
		tkm_cbor_put_uint(w, id);
		break;
	case C_DEEP:
		/* The envelope is level 1 and params level 2: 20 more arrays make 22. */
		tkm_cbor_put_map(w, 4);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 1);
		tkm_cbor_put_cstr(w, "a");
		for (int i = 0; i < 20; i++) {
			tkm_cbor_put_array(w, 1);
		}
		tkm_cbor_put_uint(w, 0);
		break;
	case C_LONG_STRING:
		memset(long_str, 'x', sizeof(long_str));
		tkm_cbor_put_map(w, 4);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 1);
		tkm_cbor_put_cstr(w, "a");
		tkm_cbor_put_text(w, long_str, MAX_STR + 1);
		break;
	case C_UNKNOWN_METHOD:
		tkm_cbor_put_map(w, 4);
		put_head(w, id, "sys.nope");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		break;
	case C_V2:
		tkm_cbor_put_map(w, 4);
		tkm_cbor_put_cstr(w, "v");
		tkm_cbor_put_uint(w, 2);
		tkm_cbor_put_cstr(w, "id");
		tkm_cbor_put_uint(w, id);
		tkm_cbor_put_cstr(w, "method");
		tkm_cbor_put_cstr(w, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		break;
	case C_INDEF_MAP: {
		static const uint8_t indef_open = 0xbf, brk = 0xff;

		tkm_cbor_put_raw(w, &indef_open, 1);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		tkm_cbor_put_raw(w, &brk, 1);
		break;
	}
	case C_MISSING_PARAMS:
		tkm_cbor_put_map(w, 3);
		put_head(w, id, "sys.ping");
		break;
	case C_UNKNOWN_KEY:
		tkm_cbor_put_map(w, 5);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		tkm_cbor_put_cstr(w, "extra");
		tkm_cbor_put_bool(w, true);
		break;
	case C_UNKNOWN_PARAM:
		tkm_cbor_put_map(w, 4);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 1);
		tkm_cbor_put_cstr(w, "verbose");
		tkm_cbor_put_bool(w, true);
		break;
	case C_BAD_UTF8: {
		static const char bad[] = {'s', 'y', 's', '.', (char)0xc3, (char)0x28};

		tkm_cbor_put_map(w, 4);
		tkm_cbor_put_cstr(w, "v");
		tkm_cbor_put_uint(w, 1);
		tkm_cbor_put_cstr(w, "id");
		tkm_cbor_put_uint(w, id);
		tkm_cbor_put_cstr(w, "method");
		tkm_cbor_put_text(w, bad, sizeof(bad));
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		break;
	}
	case C_TAG: {
		static const uint8_t tag1 = 0xc1; /* tag 1 (epoch time) before params */

		tkm_cbor_put_map(w, 4);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_raw(w, &tag1, 1);
		tkm_cbor_put_map(w, 0);
		break;
	}
	case C_FLOAT: {
		static const uint8_t half_one[] = {0xf9, 0x3c, 0x00}; /* 1.0 as a half float */

		tkm_cbor_put_map(w, 4);
		tkm_cbor_put_cstr(w, "v");
		tkm_cbor_put_uint(w, 1);
		tkm_cbor_put_cstr(w, "id");
		tkm_cbor_put_raw(w, half_one, sizeof(half_one));
		tkm_cbor_put_cstr(w, "method");
		tkm_cbor_put_cstr(w, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		break;
	}
	case C_HUGE_COUNT: {
		static const uint8_t arr[] = {0x9b, 0, 0, 0, 1, 0, 0, 0, 0, 0x01};

		tkm_cbor_put_map(w, 4);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 1);
		tkm_cbor_put_cstr(w, "a");
		tkm_cbor_put_raw(w, arr, sizeof(arr));
		break;
	}
	case C_HUGE_STRING: {
		static const uint8_t str[] = {0x5a, 0x7f, 0xff, 0xff, 0xff, 'a', 'b'};

		tkm_cbor_put_map(w, 4);
		put_head(w, id, "sys.ping");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 1);
		tkm_cbor_put_cstr(w, "a");
		tkm_cbor_put_raw(w, str, sizeof(str));
		break;
	}
	case C_BAD_METHOD_NAME:
		tkm_cbor_put_map(w, 4);
		put_head(w, id, "Sys Ping;");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 0);
		break;
	default:
		goto out;
	}
	if (k == C_EMPTY) {
		*len = 0;
		ok = true;
		goto out;
	}
	if (tkm_cbor_w_finish(w, &p, &n) != TKM_OK || n + 1 > cap) {
		goto out;
	}
	memcpy(buf, p, n);
	if (k == C_TRUNCATED) {
		n -= 3; /* into "params" */
	}
	if (k == C_TRAILING) {
		buf[n++] = 0x00;
	}
	*len = n;
	ok = true;
out:
	tkm_cbor_w_free(w);
	return ok;
}

/* A REQ socket dialed to url, without automatic resends. */
static bool open_req(const char *url, nng_socket *s, int recv_timeout_ms)
{
	int rv;

	if ((rv = nng_req0_open(s)) != 0 ||
	    (rv = nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, recv_timeout_ms)) != 0 ||
	    (rv = nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, 10000)) != 0 ||
	    (rv = nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, 1 << 20)) != 0 ||
	    (rv = nng_dial(*s, url, NULL, 0)) != 0) {
		fprintf(stderr, "nng socket to %s: %s\n", url, nng_strerror(rv));
		return false;
	}
	return true;
}

typedef struct reply {
	int nng_rv; /* 0, or the nng error of send/recv */
	tkm_err decode;
	bool is_error;
	tkm_err code;
	uint64_t id;
	char message[256];
} reply;

/* Send len bytes on s and decode the reply strictly. */
static void roundtrip(nng_socket s, const uint8_t *buf, size_t len, reply *r)
{
	void *in = NULL;
	size_t in_len = 0;
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_cbor_doc *doc = NULL;
	tkm_wire_response resp;
	char why[128];
	uint8_t dummy = 0;

	memset(r, 0, sizeof(*r));
	r->decode = TKM_E_PROTOCOL;
	/* nng_send does not take a NULL buffer, even for an empty message. */
	if ((r->nng_rv = nng_send(s, len > 0 ? (void *)buf : &dummy, len, 0)) != 0) {
		return;
	}
	if ((r->nng_rv = nng_recv(s, &in, &in_len, NNG_FLAG_ALLOC)) != 0) {
		return;
	}
	memset(&resp, 0, sizeof(resp));
	r->decode = tkm_wire_decode_response(in, in_len, &lim, &doc, &resp, why, sizeof(why));
	if (r->decode == TKM_OK) {
		r->is_error = resp.is_error;
		r->code = resp.code;
		r->id = resp.id;
		if (resp.is_error) {
			size_t n = resp.message_len < sizeof(r->message) - 1
			               ? resp.message_len
			               : sizeof(r->message) - 1;
			memcpy(r->message, resp.message, n);
			r->message[n] = '\0';
		}
	} else {
		snprintf(r->message, sizeof(r->message), "undecodable reply: %s", why);
	}
	tkm_cbor_doc_free(doc);
	nng_free(in, in_len);
}

/* Does reply r fit case k sent with id? */
static bool reply_ok(int k, uint64_t id, const reply *r)
{
	if (r->nng_rv != 0 || r->decode != TKM_OK || !r->is_error || r->code != cases[k].code) {
		return false;
	}
	switch (cases[k].id_rule) {
	case ID_ECHO:
		return r->id == id;
	case ID_ZERO:
		return r->id == 0;
	case ID_ANY:
		return r->id == 0 || r->id == id;
	}
	return false;
}

/* Every case once, each with its own id, checked in detail. */
static void check_each_case(const char *url)
{
	nng_socket s;
	uint8_t buf[CASE_BUFSZ];
	size_t len;
	reply r;

	if (!open_req(url, &s, RECV_TIMEO)) {
		CHECK(!"REQ socket");
		return;
	}
	for (int k = 0; k < NCASES; k++) {
		uint64_t id = 1000 + (uint64_t)k;

		CHECK(build_case(k, id, buf, sizeof(buf), &len));
		roundtrip(s, buf, len, &r);
		if (!reply_ok(k, id, &r)) {
			fprintf(stderr,
			        "%s: case \"%s\": nng %s, reply %s, %s code %s id %llu "
			        "(want %s, id rule %d for id %llu): %s\n",
			        url, cases[k].name, nng_strerror(r.nng_rv), tkm_strerror(r.decode),
			        r.is_error ? "error" : "RESULT", tkm_err_wire_name(r.code),
			        (unsigned long long)r.id, tkm_err_wire_name(cases[k].code),
			        (int)cases[k].id_rule, (unsigned long long)id, r.message);
			CHECK(!"malformed case answered as expected");
		} else {
			tkm_test_passed++;
		}
		if (k == C_UNKNOWN_METHOD) {
			CHECK(strstr(r.message, "unknown method") != NULL);
		}
		/* Error messages are for people: bounded and never empty. */
		CHECK(r.message[0] != '\0' && strlen(r.message) <= 200);
	}
	/* The same socket still serves a valid request. */
	{
		tkm_cbor_w *w = NULL;
		const uint8_t *p;
		size_t n;

		CHECK_EQ_INT(tkm_cbor_w_new(sizeof(buf), &w), TKM_OK);
		put_ping(w, 4242);
		CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &n), TKM_OK);
		roundtrip(s, p, n, &r);
		CHECK_EQ_INT(r.nng_rv, 0);
		CHECK_EQ_INT(r.decode, TKM_OK);
		CHECK(!r.is_error);
		CHECK_EQ_INT(r.id, 4242);
		tkm_cbor_w_free(w);
	}
	nng_close(s);
}

/*
 * Messages around max_message_size: one just under the limit is read and
 * answered (bad_request: its params are not sys.ping's); one over it is
 * dropped with its connection, so no reply comes.
 */
static void check_size_limit(const char *url)
{
	nng_socket s;
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t n;
	reply r;
	char chunk[1000];
	uint8_t *big = NULL;

	memset(chunk, 'k', sizeof(chunk));
	if (!open_req(url, &s, 3000)) {
		CHECK(!"REQ socket");
		return;
	}
	/* 60 strings of 1,000 bytes: about 60 KiB, under 64 KiB with the envelope. */
	CHECK_EQ_INT(tkm_cbor_w_new(MAX_MSG, &w), TKM_OK);
	tkm_cbor_put_map(w, 4);
	put_head(w, 77, "sys.ping");
	tkm_cbor_put_cstr(w, "params");
	tkm_cbor_put_map(w, 60);
	for (int i = 0; i < 60; i++) {
		char key[8];

		snprintf(key, sizeof(key), "k%02d", i);
		tkm_cbor_put_cstr(w, key);
		tkm_cbor_put_text(w, chunk, sizeof(chunk));
	}
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &n), TKM_OK);
	CHECK(n > 60000 && n < MAX_MSG - 64);
	roundtrip(s, p, n, &r);
	CHECK_EQ_INT(r.nng_rv, 0);
	CHECK(r.is_error && r.code == TKM_E_BAD_REQUEST && r.id == 77);
	tkm_cbor_w_free(w);

	/*
	 * Over the limit: tkmd's transport drops the message and the
	 * connection, so no reply comes; nng's REQ socket reports the lost
	 * connection (ECONNRESET, as resends are off) or its receive timeout.
	 */
	if ((big = calloc(1, MAX_MSG + 1024)) != NULL) {
		roundtrip(s, big, MAX_MSG + 1024, &r);
		if (r.nng_rv != NNG_ECONNRESET && r.nng_rv != NNG_ETIMEDOUT) {
			fprintf(stderr, "%s: oversize message: %s\n", url,
			        r.nng_rv == 0 ? "answered" : nng_strerror(r.nng_rv));
		}
		CHECK(r.nng_rv == NNG_ECONNRESET || r.nng_rv == NNG_ETIMEDOUT);
		free(big);
	}
	nng_close(s);
}

/* ---- The flood ---- */

typedef struct flooder {
	pthread_t thread;
	const char *url;
	unsigned seed; /* names the flooder's ids */
	unsigned rnd;  /* rand_r state */
	unsigned sent, answered, wrong;
} flooder;

static void *flood_nng(void *arg)
{
	flooder *f = arg;
	nng_socket s;
	uint8_t buf[CASE_BUFSZ];
	size_t len;
	reply r;

	if (!open_req(f->url, &s, RECV_TIMEO)) {
		return NULL;
	}
	for (unsigned i = 0; i < FLOOD_EACH; i++) {
		int k = (int)((i + f->seed) % (NCASES + 1));
		uint64_t id = 1 + ((uint64_t)f->seed << 20) + i;

		if (k == NCASES) {
			/* Random bytes: must draw an error, whatever they are. */
			len = 1 + (size_t)(rand_r(&f->rnd) % 512);
			for (size_t j = 0; j < len; j++) {
				buf[j] = (uint8_t)rand_r(&f->rnd);
			}
		} else if (!build_case(k, id, buf, sizeof(buf), &len)) {
			f->wrong++;
			continue;
		}
		roundtrip(s, buf, len, &r);
		f->sent++;
		if (r.nng_rv == 0) {
			f->answered++;
		}
		if (k == NCASES ? (r.nng_rv != 0 || r.decode != TKM_OK || !r.is_error)
		                : !reply_ok(k, id, &r)) {
			f->wrong++;
		}
	}
	nng_close(s);
	return NULL;
}

typedef struct raw_flooder {
	pthread_t thread;
	uint16_t port;
	unsigned sent, closed_by_server;
} raw_flooder;

/* Read until EOF or error within ms; true when the peer closed the connection. */
static bool wait_closed(int fd, int ms)
{
	uint64_t deadline = tkm_testenv_now_us() + (uint64_t)ms * 1000u;
	char buf[256];

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint64_t now = tkm_testenv_now_us();
		ssize_t n;

		if (now >= deadline) {
			return false;
		}
		if (poll(&pfd, 1, (int)((deadline - now) / 1000u) + 1) <= 0) {
			continue;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
			return true;
		}
	}
}

/*
 * SP over TCP: each side first sends 8 bytes (0x00 'S' 'P' 0x00, its
 * protocol number as 16 bits big-endian, 0x00 0x00; REQ is 0x0030), then
 * every message is an 8-byte big-endian length and the body. nng refuses a
 * length above the listener's NNG_OPT_RECVMAXSZ and closes the connection.
 */
static void *flood_raw(void *arg)
{
	raw_flooder *f = arg;
	static uint8_t body[MAX_MSG + 4096];

	for (unsigned i = 0; i < FLOOD_RAW; i++) {
		struct sockaddr_in sa;
		uint64_t frame_len = MAX_MSG + 1 + (i * 7) % 4000;
		uint8_t head[16] = {0x00, 'S', 'P', 0x00, 0x00, 0x30, 0x00, 0x00};
		int fd;

		for (int b = 0; b < 8; b++) {
			head[8 + b] = (uint8_t)(frame_len >> (56 - 8 * b));
		}
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = htons(f->port);
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
			continue;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			(void)send(fd, head, sizeof(head), MSG_NOSIGNAL);
			/* The body may be cut short by the server's close; that is the point. */
			(void)send(fd, body, (size_t)frame_len, MSG_NOSIGNAL);
			f->sent++;
			if (wait_closed(fd, 10000)) {
				f->closed_by_server++;
			}
		}
		close(fd);
	}
	return NULL;
}

/*
 * nng's REQ socket does not always honour its receive timeout when the peer
 * stops reading; rather than hang until ctest's limit, fail with a message.
 */
static void *watchdog(void *arg)
{
	tkm_testenv *env = arg;

	tkm_testenv_sleep_ms(WATCHDOG_S * 1000u);
	fprintf(stderr, "service_malformed: still running after %d s: tkmd stopped answering\n",
	        WATCHDOG_S);
	tkm_testenv_dump_log(env);
	fflush(stderr);
	if (tkm_testenv_pid(env) > 0) {
		(void)kill(tkm_testenv_pid(env), SIGKILL);
	}
	_exit(1);
	return NULL;
}

static void flood(tkm_testenv *env)
{
	flooder fs[FLOOD_NNG];
	raw_flooder rf;
	unsigned sent = 0, answered = 0, wrong = 0;
	uint64_t t0 = tkm_testenv_now_us();

	memset(fs, 0, sizeof(fs));
	memset(&rf, 0, sizeof(rf));
	for (unsigned i = 0; i < FLOOD_NNG; i++) {
		fs[i].url = i % 2 == 0 ? tkm_testenv_ipc_url(env) : tkm_testenv_tcp_url(env);
		fs[i].seed = 17 + i;
		fs[i].rnd = 17 + i;
		CHECK_EQ_INT(pthread_create(&fs[i].thread, NULL, flood_nng, &fs[i]), 0);
	}
	rf.port = tkm_testenv_tcp_port(env);
	CHECK_EQ_INT(pthread_create(&rf.thread, NULL, flood_raw, &rf), 0);
	for (unsigned i = 0; i < FLOOD_NNG; i++) {
		CHECK_EQ_INT(pthread_join(fs[i].thread, NULL), 0);
		sent += fs[i].sent;
		answered += fs[i].answered;
		wrong += fs[i].wrong;
	}
	CHECK_EQ_INT(pthread_join(rf.thread, NULL), 0);
	printf("flood: %u malformed sent, %u answered, %u wrong; %u oversize frames, %u "
	       "connections closed by tkmd; %.2f s\n",
	       sent, answered, wrong, rf.sent, rf.closed_by_server,
	       (double)(tkm_testenv_now_us() - t0) / 1e6);
	CHECK_EQ_INT(sent + rf.sent, FLOOD_NNG * FLOOD_EACH + FLOOD_RAW);
	CHECK_EQ_INT(answered, sent);
	CHECK_EQ_INT(wrong, 0);
	CHECK_EQ_INT(rf.closed_by_server, FLOOD_RAW);
}

static void check_ping(const char *url)
{
	tkm_client *c = NULL;
	tkm_ping_result pr;
	tkm_status st;

	CHECK_EQ_INT(tkm_testenv_client(url, &c), TKM_OK);
	if (c == NULL) {
		return;
	}
	memset(&pr, 0, sizeof(pr));
	CHECK_EQ_INT(tkm_ping(c, 5000, &st, &pr), TKM_OK);
	CHECK(pr.pong);
	tkm_client_close(c);
}

int main(void)
{
	tkm_testenv *env = NULL;
	char extra[256];

	snprintf(extra, sizeof(extra),
	         "max_message_size = %d;\nmax_depth = 16;\nmax_string_length = %d;\n", MAX_MSG,
	         MAX_STR);
	if (tkm_testenv_new(&env) != TKM_OK || tkm_testenv_start(env, NULL, extra) != TKM_OK) {
		CHECK(!"test environment");
		goto out;
	}
	{
		pthread_t wd;

		CHECK_EQ_INT(pthread_create(&wd, NULL, watchdog, env), 0);
		CHECK_EQ_INT(pthread_detach(wd), 0);
	}

	check_each_case(tkm_testenv_ipc_url(env));
	check_each_case(tkm_testenv_tcp_url(env));
	/*
	 * Over TCP only: Debian's nng 1.5.2 can wedge an IPC listener (it
	 * accepts but never reads again) after a few dozen oversize messages
	 * on IPC connections, a race in its ipc transport that a plain nng
	 * REP socket shows as well. The TCP listener is not affected.
	 */
	check_size_limit(tkm_testenv_tcp_url(env));

	flood(env);

	/* Still up and answering, on both transports. */
	CHECK(tkm_testenv_alive(env));
	check_ping(tkm_testenv_ipc_url(env));
	check_ping(tkm_testenv_tcp_url(env));
	printf("tkmd VmRSS after the flood: %ld KiB\n", tkm_testenv_rss_kib(env));
	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
out:
	if (tkm_test_failed != 0 && env != NULL) {
		tkm_testenv_dump_log(env);
	}
	tkm_testenv_free(env);
	return tkm_test_report("service_malformed");
}
