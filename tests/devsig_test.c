/*
 * devsig_test.c - request credentials without tkmd: device signatures and
 * auth maps (client/tkm_devsig.c), the replay cache (service/tkm_nonce.c),
 * device key files, and libtkm attaching credentials to its calls, seen by a
 * REP responder in this process that verifies them as tkmd would.
 *
 * The golden vector (seed, signed message, signature, key file line) was
 * computed independently of tkm: the CBOR by hand in Python, the Ed25519
 * signature with Python's cryptography package (OpenSSL), the base64 with
 * Python's base64 module.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sodium.h>

#include "tkm/client.h"
#include "tkm_devsig.h"
#include "tkm_nonce.h"
#include "tkm_test.h"
#include "tkm_wire.h"

#define NOW    1700000000ull
#define WINDOW 300ull

/* ---- Golden vector ---- */

static const uint8_t gv_seed[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static const uint8_t gv_nonce[16] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                     0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
#define GV_PRINCIPAL "station-1"
#define GV_METHOD    "key.inject"
#define GV_TS        1700000000ull
/* {"a": 1, "b": "x"} */
static const uint8_t gv_params[] = {0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x61, 0x78};
static const uint8_t gv_msg[67] = "\x86\x6e\x74\x6b\x6d\x20\x72\x65\x71\x75\x65\x73\x74\x20\x76\x31"
                                  "\x6a\x6b\x65\x79\x2e\x69\x6e\x6a\x65\x63\x74\xa2\x61\x61\x01\x61"
                                  "\x62\x61\x78\x69\x73\x74\x61\x74\x69\x6f\x6e\x2d\x31\x1a\x65\x53"
                                  "\xf1\x00\x50\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac"
                                  "\xad\xae\xaf";
static const uint8_t gv_pk[32] = "\x03\xa1\x07\xbf\xf3\xce\x10\xbe\x1d\x70\xdd\x18\xe7\x4b\xc0\x99"
                                 "\x67\xe4\xd6\x30\x9b\xa5\x0d\x5f\x1d\xdc\x86\x64\x12\x55\x31\xb8";
static const uint8_t gv_auth[122] =
    "\xa4\x62\x74\x73\x1a\x65\x53\xf1\x00\x63\x73\x69\x67\x58\x40\xc7"
    "\x55\x32\x12\x40\xe5\x70\x97\xfb\xdf\xa6\x39\x98\x75\x16\x3c\x46"
    "\xa9\x06\x44\xaf\x32\x46\x43\x8d\x57\x91\x67\x83\x66\xd8\x24\x91"
    "\x79\x4d\xd1\x18\xf6\xed\xae\xa1\x04\x0a\x52\xb8\x9b\x2e\xd6\x4e"
    "\xd2\x7a\x4c\x90\xbc\x15\x27\x5d\x25\xaf\x9a\xe7\x02\xda\x08\x65"
    "\x6e\x6f\x6e\x63\x65\x50\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9"
    "\xaa\xab\xac\xad\xae\xaf\x69\x70\x72\x69\x6e\x63\x69\x70\x61\x6c"
    "\x69\x73\x74\x61\x74\x69\x6f\x6e\x2d\x31";
static const char gv_keyfile[] = "tkm-ed25519-sk AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";

static bool bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || sodium_memcmp(a, b, alen) == 0);
}

/* ---- Principals the verifier knows ---- */

static tkm_devsig_key *key1; /* station-1 and disabled-1 */
static tkm_devsig_key *key2; /* station-2 */
static bool lookup_fails;

static tkm_err lookup(void *arg, const char *principal, uint8_t pk[static TKM_DEVSIG_PK_LEN],
                      char *why, size_t why_len)
{
	(void)arg;
	if (lookup_fails) {
		snprintf(why, why_len, "store unavailable");
		return TKM_E_INTERNAL;
	}
	if (strcmp(principal, "station-1") == 0) {
		tkm_devsig_key_public(key1, pk);
		return TKM_OK;
	}
	if (strcmp(principal, "station-2") == 0) {
		tkm_devsig_key_public(key2, pk);
		return TKM_OK;
	}
	if (strcmp(principal, "disabled-1") == 0) {
		snprintf(why, why_len, "principal disabled-1 is disabled");
		return TKM_E_UNAUTHENTICATED;
	}
	return TKM_E_NOT_FOUND;
}

/*
 * Send (method, params, auth) through the real envelope encoder and decoder,
 * then verify the decoded auth map against the decoded request, as tkmd does.
 */
static tkm_err through_wire(const char *method, const uint8_t *params, size_t params_len,
                            const uint8_t *auth, size_t auth_len, uint64_t now,
                            tkm_devsig_claim *claim, char *why, size_t why_len)
{
	tkm_cbor_w *w = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_wire_request req;
	const uint8_t *p, *raw;
	size_t len, raw_len;
	tkm_err err;

	why[0] = '\0';
	if (tkm_cbor_w_new(4096, &w) != TKM_OK) {
		abort();
	}
	tkm_wire_encode_request(w, 7, method, params, params_len, auth, auth_len);
	if (tkm_cbor_w_finish(w, &p, &len) != TKM_OK ||
	    tkm_wire_decode_request(p, len, NULL, &doc, &req, why, why_len) != TKM_OK) {
		fprintf(stderr, "through_wire: envelope refused: %s\n", why);
		abort();
	}
	tkm_cbor_raw(req.params, &raw, &raw_len);
	err = tkm_devsig_verify(req.auth, req.method, raw, raw_len, now, WINDOW, lookup, NULL,
	                        claim, why, why_len);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	return err;
}

/* Sign (principal, method, params, ts, nonce) with key into a caller buffer. */
static size_t sign_into(const tkm_devsig_key *key, const char *principal, const char *method,
                        const uint8_t *params, size_t params_len, uint64_t ts,
                        const uint8_t nonce[16], uint8_t *out, size_t out_len)
{
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t len = 0;
	char why[128];

	if (tkm_cbor_w_new(TKM_DEVSIG_AUTH_MAX, &w) != TKM_OK) {
		abort();
	}
	if (tkm_devsig_sign_at(key, principal, method, params, params_len, ts, nonce, w, why,
	                       sizeof(why)) != TKM_OK ||
	    tkm_cbor_w_finish(w, &p, &len) != TKM_OK || len > out_len) {
		fprintf(stderr, "sign_into: %s\n", why);
		abort();
	}
	memcpy(out, p, len);
	tkm_cbor_w_free(w);
	return len;
}

static void test_golden(void)
{
	tkm_devsig_key *k = NULL;
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	uint8_t pk[32], auth[TKM_DEVSIG_AUTH_MAX];
	size_t len;

	CHECK_EQ_INT(tkm_devsig_key_from_seed(gv_seed, &k), TKM_OK);
	tkm_devsig_key_public(k, pk);
	CHECK(bytes_eq(pk, sizeof(pk), gv_pk, sizeof(gv_pk)));

	CHECK_EQ_INT(tkm_cbor_w_new(1024, &w), TKM_OK);
	tkm_devsig_message(w, GV_METHOD, gv_params, sizeof(gv_params), GV_PRINCIPAL, GV_TS,
	                   gv_nonce);
	CHECK(tkm_cbor_w_finish(w, &p, &len) == TKM_OK && bytes_eq(p, len, gv_msg, sizeof(gv_msg)));
	tkm_cbor_w_free(w);

	len = sign_into(k, GV_PRINCIPAL, GV_METHOD, gv_params, sizeof(gv_params), GV_TS, gv_nonce,
	                auth, sizeof(auth));
	CHECK(bytes_eq(auth, len, gv_auth, sizeof(gv_auth)));
	tkm_devsig_key_free(k);
}

/* ---- Signatures ---- */

static void test_sign_verify(void)
{
	/* {"a": 1, "b": "y"}: the same shape, another value */
	static const uint8_t other[] = {0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x61, 0x79};
	/* {"a": 1, "b": "x"} with 1 written as 0x18 0x01: the same value, other bytes */
	static const uint8_t longer[] = {0xa2, 0x61, 0x61, 0x18, 0x01, 0x61, 0x62, 0x61, 0x78};
	static const uint8_t empty[] = {0xa0};
	uint8_t auth[TKM_DEVSIG_AUTH_MAX];
	tkm_devsig_claim claim;
	char why[256];
	size_t len;

	len = sign_into(key1, "station-1", GV_METHOD, gv_params, sizeof(gv_params), NOW, gv_nonce,
	                auth, sizeof(auth));
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), auth, len, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_NONE);
	CHECK_STR(claim.principal, "station-1");
	CHECK_EQ_INT(claim.ts, NOW);
	CHECK(bytes_eq(claim.nonce, sizeof(claim.nonce), gv_nonce, sizeof(gv_nonce)));

	/* Body changed after signing. */
	CHECK_EQ_INT(
	    through_wire(GV_METHOD, other, sizeof(other), auth, len, NOW, &claim, why, sizeof(why)),
	    TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_BAD_SIGNATURE);
	CHECK(strstr(why, "signature does not verify") != NULL);
	CHECK_STR(claim.principal, "station-1");
	/* Same meaning, other bytes: the signature covers the bytes. */
	CHECK_EQ_INT(through_wire(GV_METHOD, longer, sizeof(longer), auth, len, NOW, &claim, why,
	                          sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_BAD_SIGNATURE);
	CHECK_EQ_INT(
	    through_wire(GV_METHOD, empty, sizeof(empty), auth, len, NOW, &claim, why, sizeof(why)),
	    TKM_E_UNAUTHENTICATED);

	/* Method changed. */
	CHECK_EQ_INT(through_wire("key.export", gv_params, sizeof(gv_params), auth, len, NOW,
	                          &claim, why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_BAD_SIGNATURE);

	/* Wrong key: station-2 signs as station-1. */
	len = sign_into(key2, "station-1", GV_METHOD, gv_params, sizeof(gv_params), NOW, gv_nonce,
	                auth, sizeof(auth));
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), auth, len, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_BAD_SIGNATURE);

	/* Empty params (NULL in the envelope encoder is the empty map). */
	len = sign_into(key1, "station-1", "sys.ping", empty, sizeof(empty), NOW, gv_nonce, auth,
	                sizeof(auth));
	CHECK_EQ_INT(through_wire("sys.ping", NULL, 0, auth, len, NOW, &claim, why, sizeof(why)),
	             TKM_OK);
}

/* Re-encode a device auth map with one field replaced (NULL: keep the signed one). */
static size_t tamper(const uint8_t *auth, size_t auth_len, const char *principal,
                     const uint64_t *ts, const uint8_t *nonce, uint8_t *out, size_t out_len)
{
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w = NULL;
	const tkm_cbor_val *root;
	const uint8_t *sig, *n, *p;
	const char *s;
	size_t sig_len, n_len, s_len, len;
	uint64_t t;

	if (tkm_cbor_decode(auth, auth_len, NULL, &doc, NULL, 0) != TKM_OK ||
	    tkm_cbor_w_new(out_len, &w) != TKM_OK) {
		abort();
	}
	root = tkm_cbor_root(doc);
	if (!tkm_cbor_get_bytes(tkm_cbor_map_get(root, "sig"), &sig, &sig_len) ||
	    !tkm_cbor_get_bytes(tkm_cbor_map_get(root, "nonce"), &n, &n_len) ||
	    !tkm_cbor_get_text(tkm_cbor_map_get(root, "principal"), &s, &s_len) ||
	    !tkm_cbor_get_uint(tkm_cbor_map_get(root, "ts"), &t)) {
		abort();
	}
	tkm_cbor_put_map(w, 4);
	tkm_cbor_put_cstr(w, "principal");
	if (principal != NULL) {
		tkm_cbor_put_cstr(w, principal);
	} else {
		tkm_cbor_put_text(w, s, s_len);
	}
	tkm_cbor_put_cstr(w, "ts");
	tkm_cbor_put_uint(w, ts != NULL ? *ts : t);
	tkm_cbor_put_cstr(w, "nonce");
	tkm_cbor_put_bytes(w, nonce != NULL ? nonce : n, 16);
	tkm_cbor_put_cstr(w, "sig");
	tkm_cbor_put_bytes(w, sig, sig_len);
	if (tkm_cbor_w_finish(w, &p, &len) != TKM_OK) {
		abort();
	}
	memcpy(out, p, len);
	tkm_cbor_w_free(w);
	tkm_cbor_doc_free(doc);
	return len;
}

static void test_tampered_auth(void)
{
	uint8_t auth[TKM_DEVSIG_AUTH_MAX], t[TKM_DEVSIG_AUTH_MAX], nonce2[16];
	uint64_t ts2 = NOW + 1;
	tkm_devsig_claim claim;
	char why[256];
	size_t len, tlen;

	len = sign_into(key1, "station-1", GV_METHOD, gv_params, sizeof(gv_params), NOW, gv_nonce,
	                auth, sizeof(auth));
	/* Re-encoded in another key order, unchanged: still fine. */
	tlen = tamper(auth, len, NULL, NULL, NULL, t, sizeof(t));
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), t, tlen, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_OK);
	/* Principal changed to another known device. */
	tlen = tamper(auth, len, "station-2", NULL, NULL, t, sizeof(t));
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), t, tlen, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_BAD_SIGNATURE);
	CHECK_STR(claim.principal, "station-2");
	/* Principal changed to an unknown one. */
	tlen = tamper(auth, len, "station-9", NULL, NULL, t, sizeof(t));
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), t, tlen, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_UNKNOWN_PRINCIPAL);
	CHECK(strstr(why, "unknown principal") != NULL);
	/* A disabled principal: the lookup's reason is kept. */
	tlen = tamper(auth, len, "disabled-1", NULL, NULL, t, sizeof(t));
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), t, tlen, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_PRINCIPAL_REFUSED);
	CHECK(strstr(why, "is disabled") != NULL);
	/* ts or nonce changed. */
	tlen = tamper(auth, len, NULL, &ts2, NULL, t, sizeof(t));
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), t, tlen, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_BAD_SIGNATURE);
	memcpy(nonce2, gv_nonce, sizeof(nonce2));
	nonce2[15] ^= 1;
	tlen = tamper(auth, len, NULL, NULL, nonce2, t, sizeof(t));
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), t, tlen, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_BAD_SIGNATURE);
	/* A local failure of the lookup is passed on, not called unauthenticated. */
	lookup_fails = true;
	CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), auth, len, NOW, &claim,
	                          why, sizeof(why)),
	             TKM_E_INTERNAL);
	CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_LOCAL);
	lookup_fails = false;
}

static void test_window(void)
{
	static const struct {
		uint64_t ts;
		tkm_err want;
	} cases[] = {
	    {NOW, TKM_OK},
	    {NOW - WINDOW, TKM_OK},
	    {NOW + WINDOW, TKM_OK},
	    {NOW - WINDOW - 1, TKM_E_UNAUTHENTICATED},
	    {NOW + WINDOW + 1, TKM_E_UNAUTHENTICATED},
	    {0, TKM_E_UNAUTHENTICATED},
	    {UINT64_MAX, TKM_E_UNAUTHENTICATED},
	};
	uint8_t auth[TKM_DEVSIG_AUTH_MAX];
	tkm_devsig_claim claim;
	char why[256];
	size_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = sign_into(key1, "station-1", GV_METHOD, gv_params, sizeof(gv_params),
		                cases[i].ts, gv_nonce, auth, sizeof(auth));
		CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), auth, len, NOW,
		                          &claim, why, sizeof(why)),
		             cases[i].want);
		if (cases[i].want != TKM_OK) {
			CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_STALE);
			CHECK(strstr(why, "window") != NULL);
		}
	}
}

/* Field writers for malformed auth maps. */
enum fv {
	FV_GOOD,
	FV_MISSING,
	FV_TEXT,
	FV_UINT,
	FV_NINT,
	FV_BYTES15,
	FV_BYTES17,
	FV_BYTES63,
	FV_BYTES65,
	FV_EMPTY_TEXT,
	FV_CTRL_TEXT,
	FV_C1_TEXT,
	FV_LONG_TEXT,
	FV_MAX_TEXT
};

static void put_fv(tkm_cbor_w *w, enum fv v, const char *good_text, uint64_t good_uint,
                   const uint8_t *good_bytes, size_t good_len)
{
	static const uint8_t z[65] = {0};
	char longs[TKM_DEVSIG_PRINCIPAL_MAX + 2];

	switch (v) {
	case FV_GOOD:
		if (good_text != NULL) {
			tkm_cbor_put_cstr(w, good_text);
		} else if (good_bytes != NULL) {
			tkm_cbor_put_bytes(w, good_bytes, good_len);
		} else {
			tkm_cbor_put_uint(w, good_uint);
		}
		break;
	case FV_TEXT:
		tkm_cbor_put_cstr(w, "1700000000");
		break;
	case FV_UINT:
		tkm_cbor_put_uint(w, 1);
		break;
	case FV_NINT:
		tkm_cbor_put_int(w, -1);
		break;
	case FV_BYTES15:
		tkm_cbor_put_bytes(w, z, 15);
		break;
	case FV_BYTES17:
		tkm_cbor_put_bytes(w, z, 17);
		break;
	case FV_BYTES63:
		tkm_cbor_put_bytes(w, z, 63);
		break;
	case FV_BYTES65:
		tkm_cbor_put_bytes(w, z, 65);
		break;
	case FV_EMPTY_TEXT:
		tkm_cbor_put_cstr(w, "");
		break;
	case FV_CTRL_TEXT:
		tkm_cbor_put_cstr(w, "station\n1");
		break;
	case FV_C1_TEXT:
		tkm_cbor_put_cstr(w, "station\xc2\x85"
		                     "1");
		break;
	case FV_LONG_TEXT:
	case FV_MAX_TEXT:
		memset(longs, 'a', sizeof(longs));
		tkm_cbor_put_text(w, longs,
		                  v == FV_LONG_TEXT ? TKM_DEVSIG_PRINCIPAL_MAX + 1
		                                    : TKM_DEVSIG_PRINCIPAL_MAX);
		break;
	case FV_MISSING:
		break;
	}
}

/* A device auth map with each field as told, plus an extra key if asked. */
static size_t build_auth(enum fv principal, enum fv ts, enum fv nonce, enum fv sig, bool extra,
                         uint8_t *out, size_t out_len)
{
	static const uint8_t sig64[64] = {1};
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t len, pairs = (size_t)extra;

	pairs += principal != FV_MISSING;
	pairs += ts != FV_MISSING;
	pairs += nonce != FV_MISSING;
	pairs += sig != FV_MISSING;
	if (tkm_cbor_w_new(out_len, &w) != TKM_OK) {
		abort();
	}
	tkm_cbor_put_map(w, pairs);
	if (principal != FV_MISSING) {
		tkm_cbor_put_cstr(w, "principal");
		put_fv(w, principal, "station-1", 0, NULL, 0);
	}
	if (ts != FV_MISSING) {
		tkm_cbor_put_cstr(w, "ts");
		put_fv(w, ts, NULL, NOW, NULL, 0);
	}
	if (nonce != FV_MISSING) {
		tkm_cbor_put_cstr(w, "nonce");
		put_fv(w, nonce, NULL, 0, gv_nonce, 16);
	}
	if (sig != FV_MISSING) {
		tkm_cbor_put_cstr(w, "sig");
		put_fv(w, sig, NULL, 0, sig64, 64);
	}
	if (extra) {
		tkm_cbor_put_cstr(w, "role");
		tkm_cbor_put_cstr(w, "admin");
	}
	if (tkm_cbor_w_finish(w, &p, &len) != TKM_OK) {
		abort();
	}
	memcpy(out, p, len);
	tkm_cbor_w_free(w);
	return len;
}

static void test_malformed_auth(void)
{
	static const struct {
		enum fv principal, ts, nonce, sig;
		bool extra;
		const char *why;
	} cases[] = {
	    {FV_MISSING, FV_GOOD, FV_GOOD, FV_GOOD, false, "missing key \"principal\""},
	    {FV_GOOD, FV_MISSING, FV_GOOD, FV_GOOD, false, "missing key \"ts\""},
	    {FV_GOOD, FV_GOOD, FV_MISSING, FV_GOOD, false, "missing key \"nonce\""},
	    {FV_GOOD, FV_GOOD, FV_GOOD, FV_MISSING, false, "not a device auth map"},
	    {FV_GOOD, FV_GOOD, FV_GOOD, FV_GOOD, true, "holds only"},
	    {FV_UINT, FV_GOOD, FV_GOOD, FV_GOOD, false, "\"principal\" must be text"},
	    {FV_BYTES15, FV_GOOD, FV_GOOD, FV_GOOD, false, "\"principal\" must be text"},
	    {FV_EMPTY_TEXT, FV_GOOD, FV_GOOD, FV_GOOD, false, "\"principal\" must be text"},
	    {FV_CTRL_TEXT, FV_GOOD, FV_GOOD, FV_GOOD, false, "\"principal\" must be text"},
	    {FV_C1_TEXT, FV_GOOD, FV_GOOD, FV_GOOD, false, "\"principal\" must be text"},
	    {FV_LONG_TEXT, FV_GOOD, FV_GOOD, FV_GOOD, false, "\"principal\" must be text"},
	    {FV_GOOD, FV_TEXT, FV_GOOD, FV_GOOD, false, "\"ts\" must be an unsigned"},
	    {FV_GOOD, FV_NINT, FV_GOOD, FV_GOOD, false, "\"ts\" must be an unsigned"},
	    {FV_GOOD, FV_BYTES15, FV_GOOD, FV_GOOD, false, "\"ts\" must be an unsigned"},
	    {FV_GOOD, FV_GOOD, FV_BYTES15, FV_GOOD, false, "\"nonce\" must be a byte string"},
	    {FV_GOOD, FV_GOOD, FV_BYTES17, FV_GOOD, false, "\"nonce\" must be a byte string"},
	    {FV_GOOD, FV_GOOD, FV_TEXT, FV_GOOD, false, "\"nonce\" must be a byte string"},
	    {FV_GOOD, FV_GOOD, FV_GOOD, FV_BYTES63, false, "\"sig\" must be a byte string"},
	    {FV_GOOD, FV_GOOD, FV_GOOD, FV_BYTES65, false, "\"sig\" must be a byte string"},
	    {FV_GOOD, FV_GOOD, FV_GOOD, FV_TEXT, false, "\"sig\" must be a byte string"},
	    {FV_GOOD, FV_GOOD, FV_GOOD, FV_UINT, false, "\"sig\" must be a byte string"},
	    /* Well formed but unsigned: the shape passes, the signature does not. */
	    {FV_GOOD, FV_GOOD, FV_GOOD, FV_GOOD, false, "signature does not verify"},
	    {FV_MAX_TEXT, FV_GOOD, FV_GOOD, FV_GOOD, false, "unknown principal"},
	};
	uint8_t auth[512];
	tkm_devsig_claim claim;
	char why[256];
	size_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = build_auth(cases[i].principal, cases[i].ts, cases[i].nonce, cases[i].sig,
		                 cases[i].extra, auth, sizeof(auth));
		CHECK_EQ_INT(through_wire(GV_METHOD, gv_params, sizeof(gv_params), auth, len, NOW,
		                          &claim, why, sizeof(why)),
		             TKM_E_UNAUTHENTICATED);
		if (strstr(why, cases[i].why) == NULL) {
			fprintf(stderr, "case %zu: why \"%s\", want \"%s\"\n", i, why,
			        cases[i].why);
		}
		CHECK(strstr(why, cases[i].why) != NULL);
		if (i < sizeof(cases) / sizeof(cases[0]) - 2) {
			CHECK_EQ_INT(claim.reason, TKM_DEVSIG_R_MALFORMED);
			CHECK_STR(claim.principal, "");
		}
	}
}

/* Decode buf, which the test built: a failure is a bug in the test. */
static tkm_cbor_doc *decode(const uint8_t *buf, size_t len)
{
	tkm_cbor_doc *doc = NULL;
	char why[128];

	if (tkm_cbor_decode(buf, len, NULL, &doc, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "decode: %s\n", why);
		abort();
	}
	return doc;
}

static void test_session_and_kind(void)
{
	static const uint8_t not_map[] = {0x80};
	static const uint8_t empty[] = {0xa0};
	static const uint8_t other[] = {0xa1, 0x61, 0x78, 0x01};
	/* {"token": h'00' * 31} */
	static const uint8_t short_tok[] = {0xa1, 0x65, 't', 'o', 'k', 'e', 'n', 0x58, 31};
	uint8_t tok[32], got[32], buf[256], auth[TKM_DEVSIG_AUTH_MAX];
	tkm_cbor_w *w = NULL;
	tkm_cbor_doc *doc;
	const uint8_t *p;
	char why[128];
	size_t len;

	CHECK_EQ_INT(tkm_devsig_auth_kind(NULL), TKM_DEVSIG_AUTH_NONE);
	doc = decode(not_map, sizeof(not_map));
	CHECK_EQ_INT(tkm_devsig_auth_kind(tkm_cbor_root(doc)), TKM_DEVSIG_AUTH_MALFORMED);
	tkm_cbor_doc_free(doc);
	doc = decode(empty, sizeof(empty));
	CHECK_EQ_INT(tkm_devsig_auth_kind(tkm_cbor_root(doc)), TKM_DEVSIG_AUTH_MALFORMED);
	tkm_cbor_doc_free(doc);
	doc = decode(other, sizeof(other));
	CHECK_EQ_INT(tkm_devsig_auth_kind(tkm_cbor_root(doc)), TKM_DEVSIG_AUTH_MALFORMED);
	tkm_cbor_doc_free(doc);
	len = sign_into(key1, "station-1", GV_METHOD, gv_params, sizeof(gv_params), NOW, gv_nonce,
	                auth, sizeof(auth));
	doc = decode(auth, len);
	CHECK_EQ_INT(tkm_devsig_auth_kind(tkm_cbor_root(doc)), TKM_DEVSIG_AUTH_DEVICE);
	CHECK_EQ_INT(tkm_devsig_session_parse(tkm_cbor_root(doc), got, why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	tkm_cbor_doc_free(doc);

	randombytes_buf(tok, sizeof(tok));
	CHECK_EQ_INT(tkm_cbor_w_new(TKM_DEVSIG_AUTH_MAX, &w), TKM_OK);
	tkm_devsig_put_session(w, tok);
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_OK);
	memcpy(buf, p, len);
	tkm_cbor_w_free(w);
	doc = decode(buf, len);
	CHECK_EQ_INT(tkm_devsig_auth_kind(tkm_cbor_root(doc)), TKM_DEVSIG_AUTH_SESSION);
	CHECK_EQ_INT(tkm_devsig_session_parse(tkm_cbor_root(doc), got, why, sizeof(why)), TKM_OK);
	CHECK(bytes_eq(got, sizeof(got), tok, sizeof(tok)));
	tkm_cbor_doc_free(doc);

	/* Wrong length, wrong type, extra key. */
	memcpy(buf, short_tok, sizeof(short_tok));
	memset(buf + sizeof(short_tok), 0, 31);
	doc = decode(buf, sizeof(short_tok) + 31);
	CHECK_EQ_INT(tkm_devsig_session_parse(tkm_cbor_root(doc), got, why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK(strstr(why, "32 bytes") != NULL);
	tkm_cbor_doc_free(doc);
	CHECK_EQ_INT(tkm_cbor_w_new(256, &w), TKM_OK);
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "token");
	tkm_cbor_put_cstr(w, "0123456789abcdef0123456789abcdef");
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_OK);
	doc = decode(p, len);
	CHECK_EQ_INT(tkm_devsig_session_parse(tkm_cbor_root(doc), got, why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	CHECK_EQ_INT(tkm_cbor_w_new(256, &w), TKM_OK);
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "token");
	tkm_cbor_put_bytes(w, tok, sizeof(tok));
	tkm_cbor_put_cstr(w, "sig");
	tkm_cbor_put_bytes(w, tok, sizeof(tok));
	CHECK_EQ_INT(tkm_cbor_w_finish(w, &p, &len), TKM_OK);
	doc = decode(p, len);
	CHECK_EQ_INT(tkm_devsig_auth_kind(tkm_cbor_root(doc)), TKM_DEVSIG_AUTH_SESSION);
	CHECK_EQ_INT(tkm_devsig_session_parse(tkm_cbor_root(doc), got, why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK(strstr(why, "exactly one key") != NULL);
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	sodium_memzero(tok, sizeof(tok));
	sodium_memzero(got, sizeof(got));
}

static void test_sign_args(void)
{
	tkm_cbor_w *w = NULL;
	char why[128];

	CHECK_EQ_INT(tkm_cbor_w_new(TKM_DEVSIG_AUTH_MAX, &w), TKM_OK);
	CHECK_EQ_INT(tkm_devsig_sign(key1, "", "sys.ping", gv_params, sizeof(gv_params), w, why,
	                             sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_devsig_sign(key1, "a\tb", "sys.ping", gv_params, sizeof(gv_params), w, why,
	                             sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_devsig_sign(key1, "station-1", "Sys.Ping", gv_params, sizeof(gv_params), w,
	                             why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_devsig_sign(key1, "station-1", "sys.ping", NULL, 0, w, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_cbor_w_error(w), TKM_OK);
	tkm_cbor_w_free(w);
	/* A writer too small for the map reports the writer's error. */
	CHECK_EQ_INT(tkm_cbor_w_new(16, &w), TKM_OK);
	CHECK_EQ_INT(tkm_devsig_sign(key1, "station-1", "sys.ping", gv_params, sizeof(gv_params), w,
	                             why, sizeof(why)),
	             TKM_E_RESOURCE_EXHAUSTED);
	tkm_cbor_w_free(w);
}

static void test_canonical(void)
{
	static const struct {
		const char *hex;
		bool ok;
	} cases[] = {
	    {"a0", true},
	    {"a2616101616261", false}, /* truncated: the decoder refuses it first */
	    {"a261610161626178", true},
	    {"a2616201616101", false},           /* keys out of order */
	    {"a262616101616202", false},         /* "aa" before "b": longer encoding first */
	    {"a261620162616102", true},          /* "b" before "aa" */
	    {"a161611817", false},               /* 23 as 0x18 0x17 */
	    {"a161611818", true},                /* 24 as 0x18 0x18 */
	    {"a1616119 00ff", false},            /* 255 in two bytes */
	    {"a16161190100", true},              /* 256 in two bytes */
	    {"a161611a0000ffff", false},         /* 65535 in four bytes */
	    {"a161611b00000000ffffffff", false}, /* 2^32-1 in eight bytes */
	    {"a161611b0000000100000000", true},  /* 2^32 in eight bytes */
	    {"a1616138 00", false},              /* -1 as 0x38 0x00 */
	    {"a1617801 61 01", false},           /* key "a" with a one-byte length */
	    {"a1616141 00", true},
	    {"a1616158 0100", false},              /* h'00' with a one-byte length */
	    {"a16161 98 01 01", false},            /* [1] with a one-byte count */
	    {"b801 6161 01", false},               /* the map's own count */
	    {"a16161 81 a2 616201 616101", false}, /* nested: keys out of order */
	    {"a16161 81 a2 616101 616201", true},
	    {"a16161 83 f4 f5 f6", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t buf[64];
		size_t len = 0;
		tkm_cbor_doc *doc = NULL;
		char why[128];

		if (sodium_hex2bin(buf, sizeof(buf), cases[i].hex, strlen(cases[i].hex), " ", &len,
		                   NULL) != 0) {
			abort();
		}
		if (tkm_cbor_decode(buf, len, NULL, &doc, why, sizeof(why)) != TKM_OK) {
			CHECK(!cases[i].ok);
			continue;
		}
		why[0] = '\0';
		CHECK_EQ_INT(tkm_devsig_check_canonical(tkm_cbor_root(doc), why, sizeof(why)) ==
		                 TKM_OK,
		             cases[i].ok);
		if (!cases[i].ok) {
			CHECK(strstr(why, "deterministic CBOR") != NULL);
		}
		tkm_cbor_doc_free(doc);
	}
}

/* ---- Replay cache ---- */

static void nonce_of(uint8_t out[16], unsigned i)
{
	memset(out, 0, 16);
	out[0] = (uint8_t)i;
	out[1] = (uint8_t)(i >> 8);
}

static void test_nonce_basic(void)
{
	tkm_nonce *c = NULL;
	uint8_t n1[16], n2[16];
	char why[128];

	CHECK_EQ_INT(tkm_nonce_new(0, 10, &c), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_nonce_new(WINDOW, 0, &c), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_nonce_new(TKM_NONCE_WINDOW_MAX + 1, 10, &c), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_nonce_new(WINDOW, (size_t)TKM_NONCE_ENTRIES_MAX + 1, &c),
	             TKM_E_INVALID_ARG);
	CHECK(c == NULL);
	tkm_nonce_free(NULL);
	CHECK_EQ_INT(tkm_nonce_new(WINDOW, 100, &c), TKM_OK);
	nonce_of(n1, 1);
	nonce_of(n2, 2);

	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW, n1, NOW, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW, n1, NOW, why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	CHECK(strstr(why, "replayed") != NULL);
	/* The same nonce with another ts is still a replay within the window. */
	CHECK_EQ_INT(
	    tkm_nonce_check_and_add(c, "station-1", NOW + 5, n1, NOW + 10, why, sizeof(why)),
	    TKM_E_UNAUTHENTICATED);
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW, n2, NOW, why, sizeof(why)),
	             TKM_OK);
	/* Another principal may use the same nonce. */
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-2", NOW, n1, NOW, why, sizeof(why)),
	             TKM_OK);
	/* A prefix of a principal is another principal. */
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-", NOW, n1, NOW, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_nonce_count(c), 4);
	/* Still live at the window's edge: now == ts + window. */
	CHECK_EQ_INT(
	    tkm_nonce_check_and_add(c, "station-1", NOW, n1, NOW + WINDOW, why, sizeof(why)),
	    TKM_E_UNAUTHENTICATED);
	CHECK(strstr(why, "replayed") != NULL);
	/* One second later the old request is stale, so the check refuses it by time. */
	CHECK_EQ_INT(
	    tkm_nonce_check_and_add(c, "station-1", NOW, n1, NOW + WINDOW + 1, why, sizeof(why)),
	    TKM_E_UNAUTHENTICATED);
	CHECK(strstr(why, "outside the window") != NULL);
	CHECK_EQ_INT(
	    tkm_nonce_check_and_add(c, "station-1", NOW + 2 * WINDOW, n2, NOW, why, sizeof(why)),
	    TKM_E_UNAUTHENTICATED);
	/* After the entry expired, a new request may use the nonce again. */
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW + WINDOW + 1, n1, NOW + WINDOW + 1,
	                                     why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW + WINDOW + 1, n1, NOW + WINDOW + 2,
	                                     why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	/* Bad arguments. */
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "", NOW, n1, NOW, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW, n1, TKM_NONCE_NOW_MAX + 1, why,
	                                     sizeof(why)),
	             TKM_E_INVALID_ARG);
	tkm_nonce_free(c);
}

static void test_nonce_full_and_expiry(void)
{
	tkm_nonce *c = NULL;
	uint8_t n[16];
	char why[128];

	CHECK_EQ_INT(tkm_nonce_new(WINDOW, 8, &c), TKM_OK);
	for (unsigned i = 0; i < 8; i++) {
		nonce_of(n, i);
		CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW, n, NOW, why, sizeof(why)),
		             TKM_OK);
	}
	nonce_of(n, 100);
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW, n, NOW, why, sizeof(why)),
	             TKM_E_RESOURCE_EXHAUSTED);
	CHECK(strstr(why, "full") != NULL);
	/* Full, but a replay is still called a replay. */
	nonce_of(n, 3);
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW, n, NOW + 1, why, sizeof(why)),
	             TKM_E_UNAUTHENTICATED);
	/* Live entries are never evicted: still full at the window's edge. */
	nonce_of(n, 101);
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW + WINDOW, n, NOW + WINDOW, why,
	                                     sizeof(why)),
	             TKM_E_RESOURCE_EXHAUSTED);
	CHECK_EQ_INT(tkm_nonce_count(c), 8);
	/* After the window the eight are dropped and the cache takes new requests. */
	CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW + WINDOW + 1, n, NOW + WINDOW + 1,
	                                     why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_nonce_count(c), 1);
	tkm_nonce_free(c);

	/* Expired entries are dropped once per window even when the cache is not full. */
	CHECK_EQ_INT(tkm_nonce_new(10, 1000, &c), TKM_OK);
	for (unsigned i = 0; i < 50; i++) {
		nonce_of(n, i);
		CHECK_EQ_INT(tkm_nonce_check_and_add(c, "station-1", NOW, n, NOW, why, sizeof(why)),
		             TKM_OK);
	}
	CHECK_EQ_INT(tkm_nonce_count(c), 50);
	nonce_of(n, 999);
	CHECK_EQ_INT(
	    tkm_nonce_check_and_add(c, "station-1", NOW + 11, n, NOW + 11, why, sizeof(why)),
	    TKM_OK);
	CHECK_EQ_INT(tkm_nonce_count(c), 1);
	tkm_nonce_free(c);
}

/*
 * Random requests against a list that remembers every accepted pair: the
 * cache must call a replay exactly when the list has a live entry. A small
 * table with many deletions exercises the backward-shift deletion.
 */
struct model_entry {
	unsigned principal;
	unsigned nonce;
	uint64_t expires;
};

static void test_nonce_model(uint64_t window, size_t max, unsigned steps)
{
	static const char *const principals[] = {"p0", "p1", "p2"};
	struct model_entry *m = NULL;
	size_t nm = 0, live;
	tkm_nonce *c = NULL;
	uint64_t now = NOW;
	unsigned replays = 0, accepted = 0, mismatches = 0, full = 0;
	uint8_t n[16];
	char why[128];

	m = calloc(steps, sizeof(*m));
	CHECK(m != NULL);
	CHECK_EQ_INT(tkm_nonce_new(window, max, &c), TKM_OK);
	if (m == NULL || c == NULL) {
		goto out;
	}
	for (unsigned s = 0; s < steps; s++) {
		unsigned pr = randombytes_uniform(3), no = randombytes_uniform(16);
		uint64_t ts, skew;
		bool is_live = false;
		tkm_err want, got;
		size_t k;

		if (randombytes_uniform(4) == 0) {
			now += randombytes_uniform(3);
		}
		/* ts in [now - window - 2, now + window + 2]: some outside the window. */
		ts = now - window - 2 + randombytes_uniform((uint32_t)(2 * window + 5));
		skew = ts > now ? ts - now : now - ts;
		live = 0;
		for (k = 0; k < nm; k++) {
			if (m[k].expires >= now) {
				live++;
				if (m[k].principal == pr && m[k].nonce == no) {
					is_live = true;
				}
			}
		}
		if (skew > window || is_live) {
			want = TKM_E_UNAUTHENTICATED;
		} else {
			want = TKM_OK;
		}
		nonce_of(n, no);
		got = tkm_nonce_check_and_add(c, principals[pr], ts, n, now, why, sizeof(why));
		if (got != want) {
			mismatches++;
		}
		if (got == TKM_OK) {
			m[nm].principal = pr;
			m[nm].nonce = no;
			m[nm].expires = ts + window;
			nm++;
			accepted++;
			live++;
		} else if (skew <= window) {
			replays++;
		}
		if (live >= max) {
			full++;
		}
		if (live >= max || tkm_nonce_count(c) < live) {
			mismatches++;
		}
	}
	if (mismatches != 0) {
		fprintf(stderr, "model window %llu max %zu: %u mismatches (full: %u)\n",
		        (unsigned long long)window, max, mismatches, full);
	}
	CHECK_EQ_INT(mismatches, 0);
	CHECK(replays > steps / 50);
	CHECK(accepted > steps / 10);
out:
	tkm_nonce_free(c);
	free(m);
}

struct nonce_thread {
	tkm_nonce *cache;
	unsigned base;
	unsigned ok;
};

static void *nonce_worker(void *arg)
{
	struct nonce_thread *t = arg;
	uint8_t n[16];
	char why[128];

	/* Every thread submits the same 500 nonces: each is accepted once in all. */
	for (unsigned i = 0; i < 500; i++) {
		nonce_of(n, i);
		if (tkm_nonce_check_and_add(t->cache, "station-1", NOW, n, NOW, why, sizeof(why)) ==
		    TKM_OK) {
			t->ok++;
		}
	}
	return NULL;
}

static void test_nonce_threads(void)
{
	struct nonce_thread t[4];
	pthread_t thr[4];
	tkm_nonce *c = NULL;
	unsigned total = 0;

	CHECK_EQ_INT(tkm_nonce_new(WINDOW, 1000, &c), TKM_OK);
	for (unsigned i = 0; i < 4; i++) {
		t[i] = (struct nonce_thread){c, i, 0};
		CHECK_EQ_INT(pthread_create(&thr[i], NULL, nonce_worker, &t[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		CHECK_EQ_INT(pthread_join(thr[i], NULL), 0);
		total += t[i].ok;
	}
	CHECK_EQ_INT(total, 500);
	CHECK_EQ_INT(tkm_nonce_count(c), 500);
	tkm_nonce_free(c);
}

/* ---- Key files ---- */

static char tmpdir[64];

static void path_in(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", tmpdir, name);
	if (n < 0 || (size_t)n >= len) {
		abort();
	}
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(content, f) < 0 || fclose(f) != 0 || chmod(path, mode) != 0) {
		abort();
	}
}

static void test_key_files(void)
{
	static const char *const bad[] = {
	    "tkm-ed25519-sk AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",     /* no newline */
	    "tkm-ed25519-sk AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n", /* extra line */
	    "tkm-ed25519-pk AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",   /* wrong tag */
	    "tkm-ed25519-sk AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh*=\n",   /* not base64 */
	    "tkm-ed25519-sk AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n",   /* 31 bytes */
	    "tkm-ed25519-sk AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",    /* no padding */
	    "",
	};
	tkm_devsig_key *k = NULL, *back = NULL;
	uint8_t pk[32], pk2[32];
	char path[128], other[128], buf[128], why[256];
	struct stat sb;
	FILE *f;
	size_t n;
	mode_t old;

	path_in(path, sizeof(path), "gv.key");
	CHECK_EQ_INT(tkm_devsig_key_from_seed(gv_seed, &k), TKM_OK);
	/* 0600 whatever the umask says. */
	old = umask(0);
	CHECK_EQ_INT(tkm_devsig_key_write(path, k, why, sizeof(why)), TKM_OK);
	umask(old);
	CHECK(stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 07777) == 0600);
	f = fopen(path, "r");
	n = f != NULL ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f != NULL) {
		fclose(f);
	}
	CHECK(
	    bytes_eq((const uint8_t *)buf, n, (const uint8_t *)gv_keyfile, sizeof(gv_keyfile) - 1));
	/* Never overwritten. */
	CHECK_EQ_INT(tkm_devsig_key_write(path, k, why, sizeof(why)), TKM_E_ALREADY_EXISTS);
	CHECK(stat(path, &sb) == 0 && sb.st_size == (off_t)(sizeof(gv_keyfile) - 1));
	CHECK_EQ_INT(tkm_devsig_key_read(path, &back, why, sizeof(why)), TKM_OK);
	tkm_devsig_key_public(back, pk);
	CHECK(bytes_eq(pk, sizeof(pk), gv_pk, sizeof(gv_pk)));
	tkm_devsig_key_free(back);
	back = NULL;

	/* A file open to others is refused; 0400 is fine. */
	CHECK_EQ_INT(chmod(path, 0644), 0);
	CHECK_EQ_INT(tkm_devsig_key_read(path, &back, why, sizeof(why)), TKM_E_CONFIG);
	CHECK(back == NULL && strstr(why, "group or others") != NULL);
	CHECK_EQ_INT(chmod(path, 0640), 0);
	CHECK_EQ_INT(tkm_devsig_key_read(path, &back, why, sizeof(why)), TKM_E_CONFIG);
	CHECK_EQ_INT(chmod(path, 0602), 0);
	CHECK_EQ_INT(tkm_devsig_key_read(path, &back, why, sizeof(why)), TKM_E_CONFIG);
	CHECK_EQ_INT(chmod(path, 0400), 0);
	CHECK_EQ_INT(tkm_devsig_key_read(path, &back, why, sizeof(why)), TKM_OK);
	tkm_devsig_key_free(back);
	back = NULL;
	CHECK_EQ_INT(chmod(path, 0600), 0);
	if (geteuid() == 0) {
		/* Owned by someone else. */
		CHECK_EQ_INT(chown(path, 1, (gid_t)-1), 0);
		CHECK_EQ_INT(tkm_devsig_key_read(path, &back, why, sizeof(why)), TKM_E_CONFIG);
		CHECK(strstr(why, "owned by") != NULL);
		CHECK_EQ_INT(chown(path, 0, (gid_t)-1), 0);
	}

	/* Missing, a directory, a FIFO. */
	path_in(other, sizeof(other), "missing.key");
	CHECK_EQ_INT(tkm_devsig_key_read(other, &back, why, sizeof(why)), TKM_E_NOT_FOUND);
	CHECK(strstr(why, "missing.key") != NULL);
	CHECK_EQ_INT(tkm_devsig_key_read(tmpdir, &back, why, sizeof(why)), TKM_E_CONFIG);
	CHECK(strstr(why, "not a regular file") != NULL);
	path_in(other, sizeof(other), "fifo.key");
	CHECK_EQ_INT(mkfifo(other, 0600), 0);
	CHECK_EQ_INT(tkm_devsig_key_read(other, &back, why, sizeof(why)), TKM_E_CONFIG);
	CHECK_EQ_INT(unlink(other), 0);
	/* Into a missing directory: nothing left behind. */
	path_in(other, sizeof(other), "nodir/x.key");
	CHECK_EQ_INT(tkm_devsig_key_write(other, k, why, sizeof(why)), TKM_E_IO);

	/* Not the format. */
	path_in(other, sizeof(other), "bad.key");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(other, bad[i], 0600);
		CHECK_EQ_INT(tkm_devsig_key_read(other, &back, why, sizeof(why)), TKM_E_CONFIG);
		CHECK(back == NULL);
		CHECK_EQ_INT(unlink(other), 0);
	}

	/* A generated key round-trips and signs. */
	tkm_devsig_key_free(k);
	k = NULL;
	path_in(other, sizeof(other), "new.key");
	CHECK_EQ_INT(tkm_devsig_key_generate(&k), TKM_OK);
	CHECK_EQ_INT(tkm_devsig_key_write(other, k, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_devsig_key_read(other, &back, why, sizeof(why)), TKM_OK);
	tkm_devsig_key_public(k, pk);
	tkm_devsig_key_public(back, pk2);
	CHECK(bytes_eq(pk, sizeof(pk), pk2, sizeof(pk2)));
	tkm_devsig_key_free(back);
	tkm_devsig_key_free(k);
	CHECK_EQ_INT(unlink(other), 0);
	CHECK_EQ_INT(unlink(path), 0);
}

/* ---- libtkm: credentials on the wire ---- */

static nng_socket rep;
static atomic_bool stop;
static tkm_nonce *server_cache;
static uint8_t server_token[32];
static atomic_uint server_requests;

/*
 * The result of one request: {"kind": tstr, "nonce": bstr} for an accepted
 * device request, {"kind": "session"} for the right token, {"kind": "none"}
 * without auth. sys.ping answers as tkmd does. Refusals are error replies.
 */
static void serve_one(const tkm_wire_request *req, tkm_cbor_w *w)
{
	tkm_cbor_w *res = NULL;
	tkm_devsig_claim claim;
	uint8_t tok[32];
	const uint8_t *raw, *p;
	size_t raw_len, len;
	const char *kind = "none";
	char why[256];
	tkm_err err = TKM_OK;

	why[0] = '\0';
	if (tkm_cbor_w_new(1024, &res) != TKM_OK) {
		abort();
	}
	switch (tkm_devsig_auth_kind(req->auth)) {
	case TKM_DEVSIG_AUTH_NONE:
		break;
	case TKM_DEVSIG_AUTH_SESSION:
		kind = "session";
		if ((err = tkm_devsig_session_parse(req->auth, tok, why, sizeof(why))) == TKM_OK &&
		    sodium_memcmp(tok, server_token, sizeof(tok)) != 0) {
			err = TKM_E_UNAUTHENTICATED;
			snprintf(why, sizeof(why), "unknown session");
		}
		sodium_memzero(tok, sizeof(tok));
		break;
	case TKM_DEVSIG_AUTH_DEVICE:
		kind = "device";
		tkm_cbor_raw(req->params, &raw, &raw_len);
		err = tkm_devsig_verify(req->auth, req->method, raw, raw_len, (uint64_t)time(NULL),
		                        WINDOW, lookup, NULL, &claim, why, sizeof(why));
		if (err == TKM_OK) {
			err = tkm_nonce_check_and_add(server_cache, claim.principal, claim.ts,
			                              claim.nonce, (uint64_t)time(NULL), why,
			                              sizeof(why));
		}
		break;
	case TKM_DEVSIG_AUTH_MALFORMED:
		err = TKM_E_UNAUTHENTICATED;
		snprintf(why, sizeof(why), "malformed auth");
		break;
	}
	if (err != TKM_OK) {
		tkm_wire_encode_error(w, req->id, err, why, NULL, 0);
		goto out;
	}
	if (strcmp(req->method, "sys.ping") == 0) {
		tkm_cbor_put_map(res, 2);
		tkm_cbor_put_cstr(res, "pong");
		tkm_cbor_put_bool(res, true);
		tkm_cbor_put_cstr(res, "time");
		tkm_cbor_put_uint(res, (uint64_t)time(NULL));
	} else if (strcmp(kind, "device") == 0) {
		tkm_cbor_put_map(res, 2);
		tkm_cbor_put_cstr(res, "kind");
		tkm_cbor_put_cstr(res, kind);
		tkm_cbor_put_cstr(res, "nonce");
		tkm_cbor_put_bytes(res, claim.nonce, sizeof(claim.nonce));
	} else {
		tkm_cbor_put_map(res, 1);
		tkm_cbor_put_cstr(res, "kind");
		tkm_cbor_put_cstr(res, kind);
	}
	if (tkm_cbor_w_finish(res, &p, &len) != TKM_OK) {
		abort();
	}
	tkm_wire_encode_result(w, req->id, p, len);
out:
	tkm_cbor_w_free(res);
}

static void *responder(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		nng_msg *in = NULL;
		tkm_cbor_doc *doc = NULL;
		tkm_cbor_w *w = NULL;
		tkm_wire_request req;
		const uint8_t *p;
		size_t len;
		char why[128];

		if (nng_recvmsg(rep, &in, 0) != 0) {
			continue;
		}
		atomic_fetch_add(&server_requests, 1);
		if (tkm_cbor_w_new(1 << 16, &w) != TKM_OK) {
			abort();
		}
		if (tkm_wire_decode_request(nng_msg_body(in), nng_msg_len(in), NULL, &doc, &req,
		                            why, sizeof(why)) != TKM_OK) {
			tkm_wire_encode_error(w, req.id, TKM_E_BAD_REQUEST, why, NULL, 0);
		} else {
			serve_one(&req, w);
		}
		if (tkm_cbor_w_finish(w, &p, &len) != TKM_OK) {
			abort();
		}
		nng_msg_clear(in);
		if (nng_msg_append(in, p, len) != 0 || nng_sendmsg(rep, in, 0) != 0) {
			nng_msg_free(in);
		}
		tkm_cbor_w_free(w);
		tkm_cbor_doc_free(doc);
	}
	return NULL;
}

/* Call test.echo and return the "kind" the responder saw, and the nonce if any. */
static tkm_err echo(tkm_client *c, const uint8_t *params, size_t params_len, char *kind,
                    size_t kind_len, uint8_t nonce[16], tkm_status *st)
{
	uint8_t *res = NULL;
	size_t res_len = 0, n;
	tkm_cbor_doc *doc = NULL;
	const char *s;
	const uint8_t *p;
	tkm_err err;

	kind[0] = '\0';
	err = tkm_call_raw(c, "test.echo", params, params_len, 0, st, &res, &res_len);
	if (err != TKM_OK) {
		return err;
	}
	doc = decode(res, res_len);
	if (tkm_cbor_get_text(tkm_cbor_map_get(tkm_cbor_root(doc), "kind"), &s, &n) &&
	    n < kind_len) {
		memcpy(kind, s, n);
		kind[n] = '\0';
	}
	if (tkm_cbor_get_bytes(tkm_cbor_map_get(tkm_cbor_root(doc), "nonce"), &p, &n) && n == 16) {
		memcpy(nonce, p, 16);
	}
	tkm_cbor_doc_free(doc);
	tkm_free(res, res_len);
	return TKM_OK;
}

static void test_client(const char *url)
{
	/* {"b": 1, "a": 2}: keys out of order */
	static const uint8_t unsorted[] = {0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02};
	tkm_client *c = NULL;
	tkm_status st;
	tkm_ping_result ping;
	uint8_t pk[32], pk_file[32], n1[16] = {0}, n2[16] = {0}, tok[32];
	char kind[32], key_path[128], bad_path[128];
	tkm_devsig_key *k = NULL;
	struct stat sb;
	unsigned before;
	char why[128];

	/* tkm_device_keygen writes a 0600 key whose public half it returns. */
	path_in(key_path, sizeof(key_path), "station-1.key");
	CHECK_EQ_INT(tkm_device_keygen(key_path, pk, &st), TKM_OK);
	CHECK(stat(key_path, &sb) == 0 && (sb.st_mode & 07777) == 0600);
	CHECK_EQ_INT(tkm_device_keygen(key_path, pk, &st), TKM_E_ALREADY_EXISTS);
	CHECK_EQ_INT(tkm_devsig_key_read(key_path, &k, why, sizeof(why)), TKM_OK);
	tkm_devsig_key_public(k, pk_file);
	CHECK(bytes_eq(pk, sizeof(pk), pk_file, sizeof(pk_file)));
	/* The responder knows station-1 by this key from now on. */
	tkm_devsig_key_free(key1);
	key1 = k;

	CHECK_EQ_INT(tkm_client_open(url, NULL, &st, &c), TKM_OK);
	if (c == NULL) {
		return;
	}
	CHECK_EQ_INT(echo(c, NULL, 0, kind, sizeof(kind), n1, &st), TKM_OK);
	CHECK_STR(kind, "none");

	/* Refusals leave the handle as it was. */
	path_in(bad_path, sizeof(bad_path), "missing.key");
	CHECK_EQ_INT(tkm_client_use_device_key(c, "station-1", bad_path, &st), TKM_E_NOT_FOUND);
	CHECK_EQ_INT(tkm_client_use_device_key(c, "bad\nname", key_path, &st), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(chmod(key_path, 0644), 0);
	CHECK_EQ_INT(tkm_client_use_device_key(c, "station-1", key_path, &st), TKM_E_CONFIG);
	CHECK(strstr(st.message, "group or others") != NULL);
	CHECK_EQ_INT(chmod(key_path, 0600), 0);
	CHECK_EQ_INT(echo(c, NULL, 0, kind, sizeof(kind), n1, &st), TKM_OK);
	CHECK_STR(kind, "none");

	/* Device key: every call signed, each with its own nonce. */
	CHECK_EQ_INT(tkm_client_use_device_key(c, "station-1", key_path, &st), TKM_OK);
	CHECK_EQ_INT(echo(c, gv_params, sizeof(gv_params), kind, sizeof(kind), n1, &st), TKM_OK);
	CHECK_STR(kind, "device");
	CHECK_EQ_INT(echo(c, gv_params, sizeof(gv_params), kind, sizeof(kind), n2, &st), TKM_OK);
	CHECK_STR(kind, "device");
	CHECK(sodium_memcmp(n1, n2, sizeof(n1)) != 0);
	CHECK_EQ_INT(echo(c, NULL, 0, kind, sizeof(kind), n1, &st), TKM_OK);
	CHECK_STR(kind, "device");
	CHECK_EQ_INT(tkm_ping(c, 0, &st, &ping), TKM_OK);
	CHECK(ping.pong);
	/* Params that are not deterministic CBOR never leave. */
	before = atomic_load(&server_requests);
	CHECK_EQ_INT(echo(c, unsorted, sizeof(unsorted), kind, sizeof(kind), n1, &st),
	             TKM_E_INVALID_ARG);
	CHECK(strstr(st.message, "deterministic CBOR") != NULL);
	CHECK_EQ_INT(atomic_load(&server_requests), before);

	/* The right key under another principal's name is refused by the server. */
	CHECK_EQ_INT(tkm_client_use_device_key(c, "station-2", key_path, &st), TKM_OK);
	CHECK_EQ_INT(echo(c, NULL, 0, kind, sizeof(kind), n1, &st), TKM_E_UNAUTHENTICATED);
	CHECK(strstr(st.message, "signature does not verify") != NULL);

	/* Session token: sent as it is; a wrong one is refused. */
	randombytes_buf(tok, sizeof(tok));
	CHECK_EQ_INT(tkm_client_use_session(c, tok, &st), TKM_OK);
	CHECK_EQ_INT(echo(c, NULL, 0, kind, sizeof(kind), n1, &st), TKM_E_UNAUTHENTICATED);
	memcpy(server_token, tok, sizeof(tok));
	CHECK_EQ_INT(echo(c, NULL, 0, kind, sizeof(kind), n1, &st), TKM_OK);
	CHECK_STR(kind, "session");
	/* Session calls take any params: only signed calls must be deterministic. */
	CHECK_EQ_INT(echo(c, unsorted, sizeof(unsorted), kind, sizeof(kind), n1, &st), TKM_OK);

	tkm_client_clear_credentials(c);
	CHECK_EQ_INT(echo(c, NULL, 0, kind, sizeof(kind), n1, &st), TKM_OK);
	CHECK_STR(kind, "none");
	tkm_client_clear_credentials(c);
	tkm_client_clear_credentials(NULL);

	/* Closing with credentials set frees them (ASan would see a leak). */
	CHECK_EQ_INT(tkm_client_use_device_key(c, "station-1", key_path, &st), TKM_OK);
	tkm_client_close(c);
	CHECK_EQ_INT(tkm_client_use_session(NULL, tok, &st), TKM_E_INVALID_ARG);
	sodium_memzero(tok, sizeof(tok));
	CHECK_EQ_INT(unlink(key_path), 0);
}

int main(void)
{
	pthread_t thr;
	char url[128];
	int n;

	if (sodium_init() < 0) {
		return 1;
	}
	n = snprintf(tmpdir, sizeof(tmpdir), "/tmp/tkm-devsig-test-XXXXXX");
	if (n < 0 || (size_t)n >= sizeof(tmpdir) || mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	if (tkm_devsig_key_generate(&key1) != TKM_OK || tkm_devsig_key_generate(&key2) != TKM_OK) {
		return 1;
	}

	test_golden();
	test_sign_verify();
	test_tampered_auth();
	test_window();
	test_malformed_auth();
	test_session_and_kind();
	test_sign_args();
	test_canonical();
	test_nonce_basic();
	test_nonce_full_and_expiry();
	test_nonce_model(5, 49, 20000);
	test_nonce_model(1, 32, 20000);
	test_nonce_threads();
	test_key_files();

	n = snprintf(url, sizeof(url), "ipc://%s/tkmd.sock", tmpdir);
	if (n < 0 || (size_t)n >= sizeof(url) ||
	    tkm_nonce_new(WINDOW, 1000, &server_cache) != TKM_OK || nng_rep0_open(&rep) != 0 ||
	    nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 100) != 0 ||
	    nng_listen(rep, url, NULL, 0) != 0) {
		fprintf(stderr, "cannot listen on %s\n", url);
		return 1;
	}
	if (pthread_create(&thr, NULL, responder, NULL) != 0) {
		return 1;
	}
	test_client(url);
	atomic_store(&stop, true);
	pthread_join(thr, NULL);
	nng_close(rep);
	unlink(url + strlen("ipc://"));
	tkm_nonce_free(server_cache);
	tkm_devsig_key_free(key1);
	tkm_devsig_key_free(key2);
	if (rmdir(tmpdir) != 0) {
		fprintf(stderr, "rmdir %s: %s\n", tmpdir, strerror(errno));
	}
	return tkm_test_report("devsig");
}
