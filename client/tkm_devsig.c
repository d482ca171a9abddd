/*
 * tkm_devsig.c - request credentials: auth maps, device request signatures
 * and device key files (format and rules in tkm_devsig.h).
 *
 * Auth maps come from the network: they are read key by key through the
 * bounded decoder's tree, every key known, every type and length checked,
 * before anything is looked up or verified. A secret key is held only in
 * sodium_malloc memory that is read-only once filled; the seed passes through
 * stack buffers that are wiped before every return.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "tkm_devsig.h"
#include "tkm_why.h"
#include "tkm_wire.h"

struct tkm_devsig_key {
	uint8_t *sk; /* crypto_sign_SECRETKEYBYTES, sodium_malloc'd, read-only once set */
	uint8_t pk[TKM_DEVSIG_PK_LEN];
};

#define DEVSIG_B64_LEN  44 /* base64 of 32 bytes, with padding */
#define DEVSIG_FILE_LEN (sizeof(TKM_DEVSIG_KEYFILE_TAG) - 1 + DEVSIG_B64_LEN + 1)

_Static_assert(crypto_sign_PUBLICKEYBYTES == TKM_DEVSIG_PK_LEN, "Ed25519 public key size");
_Static_assert(crypto_sign_SEEDBYTES == TKM_DEVSIG_SEED_LEN, "Ed25519 seed size");
_Static_assert(crypto_sign_BYTES == TKM_DEVSIG_SIG_LEN, "Ed25519 signature size");
_Static_assert(sodium_base64_ENCODED_LEN(TKM_DEVSIG_SEED_LEN, sodium_base64_VARIANT_ORIGINAL) ==
                   DEVSIG_B64_LEN + 1,
               "base64 length of a seed");

/* ---- Auth maps ---- */

tkm_devsig_kind tkm_devsig_auth_kind(const tkm_cbor_val *auth)
{
	if (auth == NULL) {
		return TKM_DEVSIG_AUTH_NONE;
	}
	if (!tkm_cbor_is(auth, TKM_CBOR_MAP)) {
		return TKM_DEVSIG_AUTH_MALFORMED;
	}
	if (tkm_cbor_map_get(auth, "token") != NULL) {
		return TKM_DEVSIG_AUTH_SESSION;
	}
	if (tkm_cbor_map_get(auth, "sig") != NULL) {
		return TKM_DEVSIG_AUTH_DEVICE;
	}
	return TKM_DEVSIG_AUTH_MALFORMED;
}

bool tkm_devsig_principal_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	if (s == NULL || len == 0 || len > TKM_DEVSIG_PRINCIPAL_MAX ||
	    !tkm_cbor_utf8_valid(u, len)) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f) {
			return false;
		}
		/* U+0080..U+009F are C2 80..C2 9F in UTF-8. */
		if (u[i] == 0xc2 && i + 1 < len && u[i + 1] <= 0x9f) {
			return false;
		}
	}
	return true;
}

/* The same rule tkm_wire applies to a request's method. */
static bool devsig_method_valid(const char *m)
{
	size_t n;

	if (m == NULL || m[0] < 'a' || m[0] > 'z') {
		return false;
	}
	for (n = 0; m[n] != '\0'; n++) {
		char c = m[n];
		if (n >= TKM_WIRE_METHOD_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-')) {
			return false;
		}
	}
	return true;
}

void tkm_devsig_put_session(tkm_cbor_w *w, const uint8_t token[static TKM_DEVSIG_TOKEN_LEN])
{
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "token");
	tkm_cbor_put_bytes(w, token, TKM_DEVSIG_TOKEN_LEN);
}

tkm_err tkm_devsig_session_parse(const tkm_cbor_val *auth,
                                 uint8_t token[static TKM_DEVSIG_TOKEN_LEN], char *why,
                                 size_t why_len)
{
	const uint8_t *p;
	size_t len;

	if (!tkm_cbor_is(auth, TKM_CBOR_MAP) || tkm_cbor_count(auth) != 1) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "auth: a session auth map holds exactly one key, \"token\"");
	}
	if (!tkm_cbor_get_bytes(tkm_cbor_map_get(auth, "token"), &p, &len) ||
	    len != TKM_DEVSIG_TOKEN_LEN) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "auth: \"token\" must be a byte string of %d bytes",
		                    TKM_DEVSIG_TOKEN_LEN);
	}
	memcpy(token, p, TKM_DEVSIG_TOKEN_LEN);
	return TKM_OK;
}

/* ---- Device signatures ---- */

void tkm_devsig_message(tkm_cbor_w *w, const char *method, const uint8_t *params, size_t params_len,
                        const char *principal, uint64_t ts,
                        const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN])
{
	tkm_cbor_put_array(w, 6);
	tkm_cbor_put_cstr(w, TKM_DEVSIG_CONTEXT);
	tkm_cbor_put_cstr(w, method);
	tkm_cbor_put_raw(w, params, params_len);
	tkm_cbor_put_cstr(w, principal);
	tkm_cbor_put_uint(w, ts);
	tkm_cbor_put_bytes(w, nonce, TKM_DEVSIG_NONCE_LEN);
}

/* Encode signed-msg into a new writer; *msg and *msg_len borrow from *wp. */
static tkm_err devsig_build(const char *method, const uint8_t *params, size_t params_len,
                            const char *principal, uint64_t ts,
                            const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN], tkm_cbor_w **wp,
                            const uint8_t **msg, size_t *msg_len)
{
	tkm_cbor_w *w = NULL;
	tkm_err err;

	*wp = NULL;
	if (params_len > SIZE_MAX - TKM_DEVSIG_MSG_OVERHEAD) {
		return TKM_E_RESOURCE_EXHAUSTED;
	}
	if ((err = tkm_cbor_w_new(params_len + TKM_DEVSIG_MSG_OVERHEAD, &w)) != TKM_OK) {
		goto out;
	}
	tkm_devsig_message(w, method, params, params_len, principal, ts, nonce);
	if ((err = tkm_cbor_w_finish(w, msg, msg_len)) != TKM_OK) {
		goto out;
	}
	*wp = w;
	w = NULL;
out:
	tkm_cbor_w_free(w);
	return err;
}

tkm_err tkm_devsig_sign_at(const tkm_devsig_key *key, const char *principal, const char *method,
                           const uint8_t *params, size_t params_len, uint64_t ts,
                           const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN], tkm_cbor_w *w,
                           char *why, size_t why_len)
{
	tkm_cbor_w *mw = NULL;
	const uint8_t *msg;
	size_t msg_len;
	uint8_t sig[TKM_DEVSIG_SIG_LEN];
	tkm_err err;

	if (key == NULL || principal == NULL || params == NULL || params_len == 0) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "sign: key, principal and params are required");
	}
	if (!tkm_devsig_principal_valid(principal,
	                                strnlen(principal, TKM_DEVSIG_PRINCIPAL_MAX + 1))) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "sign: a principal is 1 to %d bytes of UTF-8 without control "
		                    "characters",
		                    TKM_DEVSIG_PRINCIPAL_MAX);
	}
	if (!devsig_method_valid(method)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "sign: invalid method name");
	}
	if ((err = devsig_build(method, params, params_len, principal, ts, nonce, &mw, &msg,
	                        &msg_len)) != TKM_OK) {
		tkm_why_set(why, why_len, "sign: encode the signed message: %s", tkm_strerror(err));
		goto out;
	}
	/* Cannot fail for Ed25519 with a valid key. */
	(void)crypto_sign_detached(sig, NULL, msg, msg_len, key->sk);

	/* Deterministic key order: the keys' encodings sorted bytewise. */
	tkm_cbor_put_map(w, 4);
	tkm_cbor_put_cstr(w, "ts");
	tkm_cbor_put_uint(w, ts);
	tkm_cbor_put_cstr(w, "sig");
	tkm_cbor_put_bytes(w, sig, sizeof(sig));
	tkm_cbor_put_cstr(w, "nonce");
	tkm_cbor_put_bytes(w, nonce, TKM_DEVSIG_NONCE_LEN);
	tkm_cbor_put_cstr(w, "principal");
	tkm_cbor_put_cstr(w, principal);
	if ((err = tkm_cbor_w_error(w)) != TKM_OK) {
		tkm_why_set(why, why_len, "sign: encode the auth map: %s", tkm_strerror(err));
	}
out:
	tkm_cbor_w_free(mw);
	return err;
}

tkm_err tkm_devsig_sign(const tkm_devsig_key *key, const char *principal, const char *method,
                        const uint8_t *params, size_t params_len, tkm_cbor_w *w, char *why,
                        size_t why_len)
{
	uint8_t nonce[TKM_DEVSIG_NONCE_LEN];
	struct timespec now;

	if (clock_gettime(CLOCK_REALTIME, &now) != 0 || now.tv_sec < 0) {
		return tkm_why_fail(why, why_len, TKM_E_INTERNAL, "sign: the clock is unreadable");
	}
	randombytes_buf(nonce, sizeof(nonce));
	return tkm_devsig_sign_at(key, principal, method, params, params_len, (uint64_t)now.tv_sec,
	                          nonce, w, why, why_len);
}

/* The four fields of a device auth map, each checked; sig points into the doc. */
static bool devsig_parse(const tkm_cbor_val *auth, tkm_devsig_claim *claim, const uint8_t **sig,
                         char *why, size_t why_len)
{
	static const char *const keys[] = {"principal", "ts", "nonce", "sig"};
	const tkm_cbor_val *v;
	const char *s;
	const uint8_t *p;
	size_t len;

	if (tkm_devsig_auth_kind(auth) != TKM_DEVSIG_AUTH_DEVICE) {
		tkm_why_set(why, why_len, "auth: not a device auth map");
		return false;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (tkm_cbor_map_get(auth, keys[i]) == NULL) {
			tkm_why_set(why, why_len, "auth: missing key \"%s\"", keys[i]);
			return false;
		}
	}
	/* The decoder refuses duplicate keys, so four pairs are exactly these four. */
	if (tkm_cbor_count(auth) != sizeof(keys) / sizeof(keys[0])) {
		tkm_why_set(why, why_len,
		            "auth: a device auth map holds only principal, ts, nonce and sig");
		return false;
	}
	v = tkm_cbor_map_get(auth, "principal");
	if (!tkm_cbor_get_text(v, &s, &len) || !tkm_devsig_principal_valid(s, len)) {
		tkm_why_set(why, why_len,
		            "auth: \"principal\" must be text of 1 to %d bytes without control "
		            "characters",
		            TKM_DEVSIG_PRINCIPAL_MAX);
		return false;
	}
	if (!tkm_cbor_get_uint(tkm_cbor_map_get(auth, "ts"), &claim->ts)) {
		tkm_why_set(why, why_len, "auth: \"ts\" must be an unsigned integer");
		return false;
	}
	if (!tkm_cbor_get_bytes(tkm_cbor_map_get(auth, "nonce"), &p, &len) ||
	    len != TKM_DEVSIG_NONCE_LEN) {
		tkm_why_set(why, why_len, "auth: \"nonce\" must be a byte string of %d bytes",
		            TKM_DEVSIG_NONCE_LEN);
		return false;
	}
	memcpy(claim->nonce, p, TKM_DEVSIG_NONCE_LEN);
	if (!tkm_cbor_get_bytes(tkm_cbor_map_get(auth, "sig"), sig, &len) ||
	    len != TKM_DEVSIG_SIG_LEN) {
		tkm_why_set(why, why_len, "auth: \"sig\" must be a byte string of %d bytes",
		            TKM_DEVSIG_SIG_LEN);
		return false;
	}
	(void)tkm_cbor_get_text(v, &s, &len);
	memcpy(claim->principal, s, len);
	claim->principal[len] = '\0';
	return true;
}

tkm_err tkm_devsig_verify(const tkm_cbor_val *auth, const char *method, const uint8_t *params,
                          size_t params_len, uint64_t now, uint64_t window_s,
                          tkm_devsig_lookup_fn lookup, void *lookup_arg, tkm_devsig_claim *claim,
                          char *why, size_t why_len)
{
	tkm_cbor_w *mw = NULL;
	const uint8_t *sig = NULL, *msg;
	size_t msg_len;
	uint8_t pk[TKM_DEVSIG_PK_LEN];
	uint64_t skew;
	tkm_err err;

	memset(claim, 0, sizeof(*claim));
	claim->reason = TKM_DEVSIG_R_MALFORMED;
	if (method == NULL || params == NULL || params_len == 0 || lookup == NULL) {
		claim->reason = TKM_DEVSIG_R_LOCAL;
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "verify: method, params and lookup are required");
	}
	if (!devsig_parse(auth, claim, &sig, why, why_len)) {
		return TKM_E_UNAUTHENTICATED;
	}

	skew = claim->ts > now ? claim->ts - now : now - claim->ts;
	if (skew > window_s) {
		claim->reason = TKM_DEVSIG_R_STALE;
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "auth: timestamp is %llu s %s the server's clock; the window "
		                    "is %llu s",
		                    (unsigned long long)skew,
		                    claim->ts > now ? "ahead of" : "behind",
		                    (unsigned long long)window_s);
	}

	err = lookup(lookup_arg, claim->principal, pk, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		claim->reason = TKM_DEVSIG_R_UNKNOWN_PRINCIPAL;
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "auth: unknown principal \"%s\"", claim->principal);
	}
	if (err == TKM_E_UNAUTHENTICATED) {
		claim->reason = TKM_DEVSIG_R_PRINCIPAL_REFUSED;
		return err;
	}
	if (err != TKM_OK) {
		claim->reason = TKM_DEVSIG_R_LOCAL;
		return err;
	}

	if ((err = devsig_build(method, params, params_len, claim->principal, claim->ts,
	                        claim->nonce, &mw, &msg, &msg_len)) != TKM_OK) {
		claim->reason = TKM_DEVSIG_R_LOCAL;
		tkm_why_set(why, why_len, "verify: encode the signed message: %s",
		            tkm_strerror(err));
		goto out;
	}
	if (crypto_sign_verify_detached(sig, msg, msg_len, pk) != 0) {
		claim->reason = TKM_DEVSIG_R_BAD_SIGNATURE;
		err = tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                   "auth: the signature does not verify for principal \"%s\"",
		                   claim->principal);
		goto out;
	}
	claim->reason = TKM_DEVSIG_R_NONE;
out:
	tkm_cbor_w_free(mw);
	return err;
}

/*
 * The head of an encoded item uses the shortest form of its argument. Simple
 * values (false, true, null) are one byte; the decoder admits nothing else of
 * major type 7.
 */
static bool devsig_head_shortest(const uint8_t *p, size_t len)
{
	static const uint64_t min[4] = {24, 0x100, 0x10000, 0x100000000ull};
	unsigned major = p[0] >> 5, ai = p[0] & 0x1f;
	uint64_t arg = 0;
	size_t n;

	if (major == 7) {
		return len == 1 && ai < 24;
	}
	if (ai < 24) {
		return true;
	}
	if (ai > 27) {
		return false;
	}
	n = (size_t)1 << (ai - 24);
	if (len < 1 + n) {
		return false;
	}
	for (size_t i = 1; i <= n; i++) {
		arg = (arg << 8) | p[i];
	}
	return arg >= min[ai - 24];
}

/* Bytewise order of two encodings; a proper prefix sorts first. */
static int devsig_bytes_order(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i]) {
			return a[i] < b[i] ? -1 : 1;
		}
	}
	return alen == blen ? 0 : alen < blen ? -1 : 1;
}

/* Recursion is bounded by the decoder's depth limit, which the tree already obeys. */
static tkm_err devsig_canonical(const tkm_cbor_val *v, char *why, size_t why_len)
{
	const uint8_t *p, *prev = NULL;
	size_t len, prev_len = 0;
	tkm_cbor_type t = tkm_cbor_type_of(v);
	bool is_map = t == TKM_CBOR_MAP;
	bool at_key = true;
	tkm_err err;

	tkm_cbor_raw(v, &p, &len);
	if (!devsig_head_shortest(p, len)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "params are not deterministic CBOR: a %s is not in its "
		                    "shortest form",
		                    tkm_cbor_type_name(t));
	}
	if (t != TKM_CBOR_ARRAY && !is_map) {
		return TKM_OK;
	}
	for (const tkm_cbor_val *c = tkm_cbor_first(v); c != NULL; c = tkm_cbor_next(c)) {
		if (is_map && at_key) {
			tkm_cbor_raw(c, &p, &len);
			if (prev != NULL && devsig_bytes_order(prev, prev_len, p, len) >= 0) {
				return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
				                    "params are not deterministic CBOR: map keys "
				                    "are not in bytewise order of their encodings");
			}
			prev = p;
			prev_len = len;
		}
		if ((err = devsig_canonical(c, why, why_len)) != TKM_OK) {
			return err;
		}
		at_key = !at_key;
	}
	return TKM_OK;
}

tkm_err tkm_devsig_check_canonical(const tkm_cbor_val *v, char *why, size_t why_len)
{
	if (v == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "no value to check");
	}
	return devsig_canonical(v, why, why_len);
}

/* ---- Device keys ---- */

/* A key with room for the secret half; the caller fills sk and pk, then seals it. */
static tkm_err devsig_key_alloc(tkm_devsig_key **out)
{
	tkm_devsig_key *key = NULL;

	*out = NULL;
	if (sodium_init() < 0) {
		return TKM_E_CRYPTO;
	}
	if ((key = calloc(1, sizeof(*key))) == NULL) {
		return TKM_E_NOMEM;
	}
	if ((key->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		free(key);
		return TKM_E_NOMEM;
	}
	*out = key;
	return TKM_OK;
}

/* From here on the secret key can be read but not changed. */
static tkm_err devsig_key_seal(tkm_devsig_key *key)
{
	return sodium_mprotect_readonly(key->sk) == 0 ? TKM_OK : TKM_E_CRYPTO;
}

tkm_err tkm_devsig_key_generate(tkm_devsig_key **out)
{
	tkm_devsig_key *key = NULL;
	tkm_err err;

	*out = NULL;
	if ((err = devsig_key_alloc(&key)) != TKM_OK) {
		goto out;
	}
	if (crypto_sign_keypair(key->pk, key->sk) != 0) {
		err = TKM_E_CRYPTO;
		goto out;
	}
	if ((err = devsig_key_seal(key)) != TKM_OK) {
		goto out;
	}
	*out = key;
	key = NULL;
out:
	tkm_devsig_key_free(key);
	return err;
}

tkm_err tkm_devsig_key_from_seed(const uint8_t seed[static TKM_DEVSIG_SEED_LEN],
                                 tkm_devsig_key **out)
{
	tkm_devsig_key *key = NULL;
	tkm_err err;

	*out = NULL;
	if ((err = devsig_key_alloc(&key)) != TKM_OK) {
		goto out;
	}
	if (crypto_sign_seed_keypair(key->pk, key->sk, seed) != 0) {
		err = TKM_E_CRYPTO;
		goto out;
	}
	if ((err = devsig_key_seal(key)) != TKM_OK) {
		goto out;
	}
	*out = key;
	key = NULL;
out:
	tkm_devsig_key_free(key);
	return err;
}

void tkm_devsig_key_free(tkm_devsig_key *key)
{
	if (key == NULL) {
		return;
	}
	/* sodium_free makes the region writable again and wipes it. */
	sodium_free(key->sk);
	free(key);
}

void tkm_devsig_key_public(const tkm_devsig_key *key, uint8_t pk[static TKM_DEVSIG_PK_LEN])
{
	memcpy(pk, key->pk, TKM_DEVSIG_PK_LEN);
}

static tkm_err devsig_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return TKM_E_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return TKM_OK;
}

/* fsync the directory holding path, so that the new entry survives a crash. */
static tkm_err devsig_sync_dir(const char *path, char *why, size_t why_len)
{
	const char *slash = strrchr(path, '/');
	char *dir = NULL;
	size_t n;
	int fd = -1;
	tkm_err err = TKM_OK;

	if (slash == NULL) {
		dir = strdup(".");
	} else {
		n = slash == path ? 1 : (size_t)(slash - path);
		if ((dir = malloc(n + 1)) != NULL) {
			memcpy(dir, path, n);
			dir[n] = '\0';
		}
	}
	if (dir == NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "%s", tkm_strerror(TKM_E_NOMEM));
		goto out;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "sync directory %s: %s", dir,
		                   strerror(errno));
		goto out;
	}
out:
	if (fd >= 0) {
		(void)close(fd);
	}
	free(dir);
	return err;
}

tkm_err tkm_devsig_key_write(const char *path, const tkm_devsig_key *key, char *why, size_t why_len)
{
	static const char tag[] = TKM_DEVSIG_KEYFILE_TAG;
	uint8_t seed[TKM_DEVSIG_SEED_LEN];
	char line[DEVSIG_FILE_LEN + 1]; /* + the NUL sodium_bin2base64 writes */
	bool created = false;
	int fd = -1;
	tkm_err err = TKM_OK;

	if (path == NULL || key == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "no key file path or key");
	}
	/* O_EXCL: never replace a key, never follow a symbolic link. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		err = tkm_why_fail(why, why_len, errno == EEXIST ? TKM_E_ALREADY_EXISTS : TKM_E_IO,
		                   "create key file %s: %s", path, strerror(errno));
		goto out;
	}
	created = true;
	/* The umask may have taken bits away; 0600 exactly, whatever it is. */
	if (fchmod(fd, 0600) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "chmod key file %s: %s", path,
		                   strerror(errno));
		goto out;
	}
	crypto_sign_ed25519_sk_to_seed(seed, key->sk);
	memcpy(line, tag, sizeof(tag) - 1);
	(void)sodium_bin2base64(line + sizeof(tag) - 1, DEVSIG_B64_LEN + 1, seed, sizeof(seed),
	                        sodium_base64_VARIANT_ORIGINAL);
	line[DEVSIG_FILE_LEN - 1] = '\n';
	if (devsig_write_all(fd, (const uint8_t *)line, DEVSIG_FILE_LEN) != TKM_OK ||
	    fsync(fd) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "write key file %s: %s", path,
		                   strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		err = tkm_why_fail(why, why_len, TKM_E_IO, "close key file %s: %s", path,
		                   strerror(errno));
		goto out;
	}
	fd = -1;
	err = devsig_sync_dir(path, why, why_len);
out:
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(line, sizeof(line));
	if (fd >= 0) {
		(void)close(fd);
	}
	if (err != TKM_OK && created) {
		(void)unlink(path);
	}
	return err;
}

tkm_err tkm_devsig_key_read(const char *path, tkm_devsig_key **out, char *why, size_t why_len)
{
	static const char tag[] = TKM_DEVSIG_KEYFILE_TAG;
	uint8_t seed[TKM_DEVSIG_SEED_LEN];
	char buf[DEVSIG_FILE_LEN + 8]; /* room to see that a file is too long */
	const char *end = NULL;
	size_t n = 0, seed_len = 0;
	struct stat sb;
	int fd = -1;
	tkm_err err = TKM_OK;

	if (out == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "no place for the key");
	}
	*out = NULL;
	if (path == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "no key file path");
	}
	/* O_NONBLOCK: a FIFO must not hang the open; it is refused below. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		err = tkm_why_fail(why, why_len, errno == ENOENT ? TKM_E_NOT_FOUND : TKM_E_IO,
		                   "open key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "stat key file %s: %s", path,
		                   strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG, "key file %s is not a regular file",
		                   path);
		goto out;
	}
	if (sb.st_uid != geteuid()) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                   "key file %s is owned by uid %lu, not by this user (uid %lu)",
		                   path, (unsigned long)sb.st_uid, (unsigned long)geteuid());
		goto out;
	}
	if ((sb.st_mode & 077) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                   "key file %s is open to group or others (mode %04o); it must "
		                   "be 0600",
		                   path, (unsigned)(sb.st_mode & 07777));
		goto out;
	}
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			err = tkm_why_fail(why, why_len, TKM_E_IO, "read key file %s: %s", path,
			                   strerror(errno));
			goto out;
		}
		if (r == 0) {
			break;
		}
		n += (size_t)r;
	}
	if (n != DEVSIG_FILE_LEN || strncmp(buf, tag, sizeof(tag) - 1) != 0 ||
	    buf[DEVSIG_FILE_LEN - 1] != '\n' ||
	    sodium_base642bin(seed, sizeof(seed), buf + sizeof(tag) - 1, DEVSIG_B64_LEN, NULL,
	                      &seed_len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    seed_len != sizeof(seed) || end != buf + sizeof(tag) - 1 + DEVSIG_B64_LEN) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                   "key file %s is not one line \"%s<base64 of a 32-byte seed>\"",
		                   path, tag);
		goto out;
	}
	if ((err = tkm_devsig_key_from_seed(seed, out)) != TKM_OK) {
		tkm_why_set(why, why_len, "load key from %s: %s", path, tkm_strerror(err));
		goto out;
	}
out:
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(buf, sizeof(buf));
	if (fd >= 0) {
		(void)close(fd);
	}
	return err;
}
