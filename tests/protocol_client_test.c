/*
 * protocol_client_test.c - a client written only from docs/protocol.md.
 *
 * It uses nothing of tkm's own code to talk to tkmd: a plain nng REQ socket,
 * requests built with libcbor's builder API, and replies read with
 * cbor_load. (cbor_load allocates what a header claims, so a real client
 * must bound the reply first: the socket's NNG_OPT_RECVMAXSZ does that here,
 * and the server is the one under test, not an attacker.) The harness starts
 * tkmd and uses libtkm to see that it is up; nothing else does.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cbor.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "tkm_test.h"
#include "tkm_testenv.h"

/* The value under text key `key` in map, or NULL. */
static cbor_item_t *map_get(const cbor_item_t *map, const char *key)
{
	struct cbor_pair *pairs;
	size_t n, klen = strlen(key);

	if (map == NULL || !cbor_isa_map(map)) {
		return NULL;
	}
	pairs = cbor_map_handle(map);
	n = cbor_map_size(map);
	for (size_t i = 0; i < n; i++) {
		cbor_item_t *k = pairs[i].key;

		if (cbor_isa_string(k) && cbor_string_is_definite(k) &&
		    cbor_string_length(k) == klen &&
		    strncmp((const char *)cbor_string_handle(k), key, klen) == 0) {
			return pairs[i].value;
		}
	}
	return NULL;
}

static bool text_is(const cbor_item_t *item, const char *s)
{
	size_t len = strlen(s);

	return item != NULL && cbor_isa_string(item) && cbor_string_is_definite(item) &&
	       cbor_string_length(item) == len &&
	       strncmp((const char *)cbor_string_handle(item), s, len) == 0;
}

static bool add_pair(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value)
{
	if (key == NULL || value == NULL) {
		return false;
	}
	return cbor_map_add(map,
	                    (struct cbor_pair){.key = cbor_move(key), .value = cbor_move(value)});
}

/* {"v": 1, "id": id, "method": method, "params": {}}, serialized; free() the result. */
static unsigned char *build_request(uint32_t id, const char *method, size_t *len)
{
	cbor_item_t *req = cbor_new_definite_map(4);
	unsigned char *buf = NULL;
	size_t cap = 0;

	*len = 0;
	if (req == NULL) {
		return NULL;
	}
	if (add_pair(req, cbor_build_string("v"), cbor_build_uint8(1)) &&
	    add_pair(req, cbor_build_string("id"), cbor_build_uint32(id)) &&
	    add_pair(req, cbor_build_string("method"), cbor_build_string(method)) &&
	    add_pair(req, cbor_build_string("params"), cbor_new_definite_map(0))) {
		*len = cbor_serialize_alloc(req, &buf, &cap);
	}
	cbor_decref(&req);
	return *len > 0 ? buf : NULL;
}

/* Send one request and load the reply; NULL on any failure. */
static cbor_item_t *call(nng_socket s, uint32_t id, const char *method)
{
	unsigned char *req;
	size_t req_len, rep_len = 0;
	void *rep = NULL;
	cbor_item_t *item = NULL;
	struct cbor_load_result res;
	int rv;

	if ((req = build_request(id, method, &req_len)) == NULL) {
		fprintf(stderr, "cannot build the request\n");
		return NULL;
	}
	if ((rv = nng_send(s, req, req_len, 0)) != 0 ||
	    (rv = nng_recv(s, &rep, &rep_len, NNG_FLAG_ALLOC)) != 0) {
		fprintf(stderr, "%s: %s\n", method, nng_strerror(rv));
		free(req);
		return NULL;
	}
	free(req);
	item = cbor_load(rep, rep_len, &res);
	if (item == NULL || res.error.code != CBOR_ERR_NONE || res.read != rep_len) {
		fprintf(stderr, "%s: reply is not one CBOR item (error %d at %zu)\n", method,
		        (int)res.error.code, res.error.position);
		if (item != NULL) {
			cbor_decref(&item);
		}
	}
	nng_free(rep, rep_len);
	return item;
}

static void check_envelope(const cbor_item_t *reply, uint32_t id)
{
	const cbor_item_t *v = map_get(reply, "v"), *rid = map_get(reply, "id");

	CHECK(reply != NULL && cbor_isa_map(reply));
	CHECK(v != NULL && cbor_isa_uint(v) && cbor_get_int(v) == 1);
	CHECK(rid != NULL && cbor_isa_uint(rid) && cbor_get_int(rid) == id);
	/* A response holds v, id and exactly one of result / error. */
	CHECK(reply != NULL && cbor_map_size(reply) == 3);
}

int main(void)
{
	tkm_testenv *env = NULL;
	const char *urls[2];
	int rv;

	if (tkm_testenv_new(&env) != TKM_OK || tkm_testenv_start(env, NULL, NULL) != TKM_OK) {
		CHECK(!"test environment");
		goto out;
	}
	urls[0] = tkm_testenv_tcp_url(env);
	urls[1] = tkm_testenv_ipc_url(env);

	for (int u = 0; u < 2; u++) {
		nng_socket s;
		cbor_item_t *reply, *result, *pong, *t, *err;
		uint32_t id = 0x01020304u + (uint32_t)u;
		time_t now;

		if ((rv = nng_req0_open(&s)) != 0 ||
		    (rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000)) != 0 ||
		    (rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 65536)) != 0 ||
		    (rv = nng_dial(s, urls[u], NULL, 0)) != 0) {
			fprintf(stderr, "%s: %s\n", urls[u], nng_strerror(rv));
			CHECK(!"REQ socket");
			continue;
		}

		/* sys.ping -> {"v": 1, "id": id, "result": {"pong": true, "time": now}} */
		now = time(NULL);
		reply = call(s, id, "sys.ping");
		CHECK(reply != NULL);
		if (reply != NULL) {
			check_envelope(reply, id);
			result = map_get(reply, "result");
			CHECK(result != NULL && cbor_isa_map(result));
			pong = map_get(result, "pong");
			t = map_get(result, "time");
			CHECK(pong != NULL && cbor_is_bool(pong) && cbor_get_bool(pong));
			CHECK(t != NULL && cbor_isa_uint(t));
			if (t != NULL && cbor_isa_uint(t)) {
				uint64_t secs = cbor_get_int(t);

				CHECK(secs + 60 >= (uint64_t)now && secs <= (uint64_t)now + 60);
			}
			CHECK(map_get(reply, "error") == NULL);
			cbor_decref(&reply);
		}

		/* An unknown method -> {"v": 1, "id": id, "error": {"code": "bad_request", ...}} */
		reply = call(s, id + 100, "sys.no-such-method");
		CHECK(reply != NULL);
		if (reply != NULL) {
			check_envelope(reply, id + 100);
			err = map_get(reply, "error");
			CHECK(err != NULL && cbor_isa_map(err));
			CHECK(text_is(map_get(err, "code"), "bad_request"));
			t = map_get(err, "message");
			CHECK(t != NULL && cbor_isa_string(t) && cbor_string_length(t) > 0 &&
			      cbor_string_length(t) <= 200);
			CHECK(map_get(reply, "result") == NULL);
			cbor_decref(&reply);
		}
		nng_close(s);
	}
	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
out:
	if (tkm_test_failed != 0 && env != NULL) {
		tkm_testenv_dump_log(env);
	}
	tkm_testenv_free(env);
	return tkm_test_report("protocol_client");
}
