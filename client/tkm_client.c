/*
 * tkm_client.c - libtkm: connections to tkmd and the typed calls of the
 * protocol (docs/protocol.md), over one nng REQ socket per handle.
 *
 * Each call opens its own nng context, so one handle serves many threads. The
 * handle is read-only during calls apart from the atomic request id counter;
 * only the credential setters change it, and they must not race with calls
 * (tkm/client.h). Credentials live in sodium_malloc memory: a device key is
 * used to sign each request (tkm_devsig), a session token is copied into the
 * request's auth map; both are wiped when cleared or when the handle closes.
 * nng's automatic resend is switched off: a call either gets its reply within
 * its timeout or fails, and is never sent twice by this library.
 * Replies are untrusted input: they are decoded by the bounded codec and every
 * field of a typed result is type-checked before it reaches the caller.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "tkm/client.h"
#include "tkm_cbor.h"
#include "tkm_devsig.h"
#include "tkm_wire.h"

#ifndef TKM_VERSION_STRING
#error "TKM_VERSION_STRING must be defined by the build"
#endif

/* Room for the envelope around the params and auth map of a request. */
#define CLIENT_ENVELOPE_MAX (256 + TKM_DEVSIG_AUTH_MAX)

_Static_assert(TKM_SESSION_TOKEN_LEN == TKM_DEVSIG_TOKEN_LEN, "session token length");
_Static_assert(TKM_DEVICE_PK_LEN == TKM_DEVSIG_PK_LEN, "device public key length");

struct tkm_client {
	nng_socket sock;
	bool sock_open;
	nng_tls_config *tls; /* NULL unless tls+tcp:// */
	int timeout_ms;
	size_t max_msg;
	tkm_cbor_limits lim;
	_Atomic uint64_t next_id;
	/* Credentials: at most one of dev_key and session is set. */
	tkm_devsig_key *dev_key;
	char dev_principal[TKM_DEVSIG_PRINCIPAL_MAX + 1];
	uint8_t *session; /* TKM_DEVSIG_TOKEN_LEN bytes, sodium_malloc'd, read-only */
};

const char *tkm_version(void)
{
	return TKM_VERSION_STRING;
}

void tkm_free(void *p, size_t len)
{
	if (p == NULL) {
		return;
	}
	sodium_memzero(p, len);
	free(p);
}

/* Drop a multi-byte UTF-8 sequence that truncation left incomplete at the end of s. */
static void client_trim_utf8(char *s)
{
	size_t len = strlen(s), i = len, cont = 0, need;
	unsigned char lead;

	while (i > 0 && cont < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
		i--;
		cont++;
	}
	if (i == 0) {
		return;
	}
	lead = (unsigned char)s[i - 1];
	need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
	if (cont < need) {
		s[i - 1] = '\0';
	}
}

/*
 * Fill st with code and a formatted local message. Returns code so that
 * callers can write `return client_fail(...)` or `err = client_fail(...)`.
 */
static tkm_err client_fail(tkm_status *st, tkm_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static tkm_err client_fail(tkm_status *st, tkm_err code, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (st == NULL) {
		return code;
	}
	st->code = code;
	va_start(ap, fmt);
	n = vsnprintf(st->message, sizeof(st->message), fmt, ap);
	va_end(ap);
	/* A cut message is still useful; a failed format is replaced. */
	if (n >= 0 && (size_t)n >= sizeof(st->message)) {
		client_trim_utf8(st->message);
	}
	if (n < 0) {
		n = snprintf(st->message, sizeof(st->message), "%s", tkm_strerror(code));
		if (n < 0) {
			st->message[0] = '\0';
		}
	}
	return code;
}

static void client_ok(tkm_status *st)
{
	if (st == NULL) {
		return;
	}
	st->code = TKM_OK;
	st->message[0] = '\0';
}

/* Copy a server message (valid UTF-8, not NUL-terminated), cut at a character boundary. */
static void client_copy_message(tkm_status *st, tkm_err code, const char *msg, size_t len)
{
	size_t n = len;

	if (st == NULL) {
		return;
	}
	st->code = code;
	if (n > sizeof(st->message) - 1) {
		n = sizeof(st->message) - 1;
		/* Back off over continuation bytes so no character is split. */
		while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80) {
			n--;
		}
	}
	if (n > 0) {
		memcpy(st->message, msg, n);
	}
	st->message[n] = '\0';
	/* A message with an embedded NUL is shown up to the NUL, which is harmless. */
}

static uint64_t client_now_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Errors of an established connection during a call. */
static tkm_err client_map_call_error(int rv)
{
	switch (rv) {
	case NNG_ETIMEDOUT:
		return TKM_E_TIMEOUT;
	case NNG_ENOMEM:
		return TKM_E_NOMEM;
	case NNG_ECLOSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_ECONNABORTED:
	case NNG_ESTATE: /* the pipe went away and nng reset the request */
		return TKM_E_CLOSED;
	default:
		return TKM_E_CONNECT;
	}
}

/* Errors of dialing: bad addresses are the caller's, the rest is the network's. */
static tkm_err client_map_dial_error(int rv)
{
	switch (rv) {
	case NNG_ENOMEM:
		return TKM_E_NOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
		return TKM_E_INVALID_ARG;
	default:
		return TKM_E_CONNECT;
	}
}

static bool client_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * TLS settings for a tls+tcp:// dialer: CA file required, peer always
 * verified. The name checked against the certificate goes to name_buf.
 */
static tkm_err client_setup_tls(tkm_client *c, const char *url, const tkm_client_opts *opts,
                                char *name_buf, size_t name_len, tkm_status *st)
{
	nng_url *u = NULL;
	const char *name;
	tkm_err err = TKM_OK;
	int rv;

	if (opts == NULL || opts->tls_ca_file == NULL || opts->tls_ca_file[0] == '\0') {
		err =
		    client_fail(st, TKM_E_INVALID_ARG, "%s: a tls+tcp:// URL needs a CA file", url);
		goto out;
	}
	if ((rv = nng_url_parse(&u, url)) != 0) {
		err = client_fail(st, client_map_dial_error(rv), "%s: %s", url, nng_strerror(rv));
		goto out;
	}
	name = opts->tls_server_name != NULL ? opts->tls_server_name : u->u_hostname;
	if (name == NULL || name[0] == '\0') {
		err = client_fail(st, TKM_E_INVALID_ARG, "%s: no host name to verify", url);
		goto out;
	}
	rv = snprintf(name_buf, name_len, "%s", name);
	if (rv < 0 || (size_t)rv >= name_len) {
		err = client_fail(st, TKM_E_INVALID_ARG, "%s: server name too long", url);
		goto out;
	}
	if ((rv = nng_tls_config_alloc(&c->tls, NNG_TLS_MODE_CLIENT)) != 0) {
		err = client_fail(st, rv == NNG_ENOMEM ? TKM_E_NOMEM : TKM_E_CRYPTO,
		                  "TLS setup: %s", nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_auth_mode(c->tls, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (rv = nng_tls_config_server_name(c->tls, name)) != 0) {
		err = client_fail(st, rv == NNG_ENOMEM ? TKM_E_NOMEM : TKM_E_CRYPTO,
		                  "TLS setup: %s", nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_ca_file(c->tls, opts->tls_ca_file)) != 0) {
		err = client_fail(st, TKM_E_CONFIG, "CA file %s: %s", opts->tls_ca_file,
		                  nng_strerror(rv));
		goto out;
	}
out:
	nng_url_free(u);
	return err;
}

tkm_err tkm_client_open(const char *url, const tkm_client_opts *opts, tkm_status *st,
                        tkm_client **out)
{
	tkm_client *c = NULL;
	nng_dialer d;
	bool tls;
	char tls_name[256] = "";
	tkm_err err = TKM_OK;
	int rv;

	if (out == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG, "no place for the handle");
	}
	*out = NULL;
	if (url == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG, "no URL given");
	}
	tls = client_has_prefix(url, "tls+tcp://");
	if (!tls && !client_has_prefix(url, "ipc://") && !client_has_prefix(url, "tcp://")) {
		return client_fail(st, TKM_E_INVALID_ARG,
		                   "%s: URL must start with ipc://, tcp:// or tls+tcp://", url);
	}
	if (!tls && opts != NULL && (opts->tls_ca_file != NULL || opts->tls_server_name != NULL)) {
		return client_fail(st, TKM_E_INVALID_ARG,
		                   "%s: TLS options given for a URL without TLS", url);
	}
	if (opts != NULL && opts->timeout_ms < 0) {
		return client_fail(st, TKM_E_INVALID_ARG, "negative timeout");
	}
	if (sodium_init() < 0) {
		return client_fail(st, TKM_E_CRYPTO, "libsodium failed to initialise");
	}

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return client_fail(st, TKM_E_NOMEM, "%s", tkm_strerror(TKM_E_NOMEM));
	}
	c->timeout_ms = TKM_DEFAULT_TIMEOUT_MS;
	c->max_msg = (size_t)TKM_WIRE_DEFAULT_MAXSZ;
	if (opts != NULL && opts->timeout_ms > 0) {
		c->timeout_ms = opts->timeout_ms;
	}
	if (opts != NULL && opts->max_message_size > 0) {
		c->max_msg = opts->max_message_size;
	}
	c->lim = tkm_cbor_default_limits();
	/* A reply may carry one string as long as the whole message. */
	if (c->lim.max_str_len < c->max_msg) {
		c->lim.max_str_len = c->max_msg;
	}
	atomic_init(&c->next_id, 1);

	if ((rv = nng_req0_open(&c->sock)) != 0) {
		err = client_fail(st, TKM_E_NOMEM, "open socket: %s", nng_strerror(rv));
		goto out;
	}
	c->sock_open = true;
	/*
	 * No automatic resend: a request must never reach the server twice
	 * behind the caller's back. Contexts copy this when they are opened,
	 * and each call sets it on its context again.
	 */
	if ((rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->max_msg)) != 0) {
		err = client_fail(st, TKM_E_INTERNAL, "socket options: %s", nng_strerror(rv));
		goto out;
	}
	if (tls &&
	    (err = client_setup_tls(c, url, opts, tls_name, sizeof(tls_name), st)) != TKM_OK) {
		goto out;
	}
	if ((rv = nng_dialer_create(&d, c->sock, url)) != 0) {
		err = client_fail(st, client_map_dial_error(rv), "%s: %s", url, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, c->max_msg)) != 0 ||
	    (tls && (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, c->tls)) != 0)) {
		err = client_fail(st, TKM_E_INTERNAL, "%s: dialer options: %s", url,
		                  nng_strerror(rv));
		goto out;
	}
	/* Synchronous: a missing server fails here; nng redials after later drops. */
	if ((rv = nng_dialer_start(d, 0)) != 0) {
		if (tls && (rv == NNG_ECRYPTO || rv == NNG_EPEERAUTH)) {
			err = client_fail(st, TKM_E_CONNECT,
			                  "connect to %s: %s (TLS handshake failed: the server "
			                  "certificate must chain to a CA in %s and carry the DNS "
			                  "name %s)",
			                  url, nng_strerror(rv), opts->tls_ca_file, tls_name);
		} else {
			err = client_fail(st, client_map_dial_error(rv), "connect to %s: %s", url,
			                  nng_strerror(rv));
		}
		goto out;
	}
	client_ok(st);
	*out = c;
	c = NULL;
out:
	tkm_client_close(c);
	return err;
}

void tkm_client_close(tkm_client *c)
{
	if (c == NULL) {
		return;
	}
	if (c->sock_open) {
		(void)nng_close(c->sock);
	}
	if (c->tls != NULL) {
		nng_tls_config_free(c->tls);
	}
	tkm_client_clear_credentials(c);
	free(c);
}

void tkm_client_clear_credentials(tkm_client *c)
{
	if (c == NULL) {
		return;
	}
	tkm_devsig_key_free(c->dev_key);
	c->dev_key = NULL;
	sodium_memzero(c->dev_principal, sizeof(c->dev_principal));
	/* sodium_free makes the region writable again and wipes it. */
	sodium_free(c->session);
	c->session = NULL;
}

tkm_err tkm_device_keygen(const char *sk_path, uint8_t pk[TKM_DEVICE_PK_LEN], tkm_status *st)
{
	tkm_devsig_key *key = NULL;
	char why[256];
	tkm_err err;

	if (sk_path == NULL || pk == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG, "no key file path or place for the key");
	}
	if ((err = tkm_devsig_key_generate(&key)) != TKM_OK) {
		err = client_fail(st, err, "generate a device key: %s", tkm_strerror(err));
		goto out;
	}
	why[0] = '\0';
	if ((err = tkm_devsig_key_write(sk_path, key, why, sizeof(why))) != TKM_OK) {
		err = client_fail(st, err, "%s", why);
		goto out;
	}
	tkm_devsig_key_public(key, pk);
	client_ok(st);
out:
	tkm_devsig_key_free(key);
	return err;
}

tkm_err tkm_client_use_device_key(tkm_client *c, const char *principal, const char *sk_path,
                                  tkm_status *st)
{
	tkm_devsig_key *key = NULL;
	size_t len;
	char why[256];
	tkm_err err;

	if (c == NULL || principal == NULL || sk_path == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG,
		                   "no client handle, principal or key file");
	}
	len = strnlen(principal, TKM_DEVSIG_PRINCIPAL_MAX + 1);
	if (!tkm_devsig_principal_valid(principal, len)) {
		return client_fail(st, TKM_E_INVALID_ARG,
		                   "a principal is 1 to %d bytes of UTF-8 without control "
		                   "characters",
		                   TKM_DEVSIG_PRINCIPAL_MAX);
	}
	why[0] = '\0';
	if ((err = tkm_devsig_key_read(sk_path, &key, why, sizeof(why))) != TKM_OK) {
		return client_fail(st, err, "%s", why);
	}
	tkm_client_clear_credentials(c);
	memcpy(c->dev_principal, principal, len);
	c->dev_principal[len] = '\0';
	c->dev_key = key;
	client_ok(st);
	return TKM_OK;
}

tkm_err tkm_client_use_session(tkm_client *c, const uint8_t token[TKM_SESSION_TOKEN_LEN],
                               tkm_status *st)
{
	uint8_t *copy;

	if (c == NULL || token == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG, "no client handle or token");
	}
	if (sodium_init() < 0) {
		return client_fail(st, TKM_E_CRYPTO, "libsodium failed to initialise");
	}
	if ((copy = sodium_malloc(TKM_DEVSIG_TOKEN_LEN)) == NULL) {
		return client_fail(st, TKM_E_NOMEM, "%s", tkm_strerror(TKM_E_NOMEM));
	}
	memcpy(copy, token, TKM_DEVSIG_TOKEN_LEN);
	if (sodium_mprotect_readonly(copy) != 0) {
		sodium_free(copy);
		return client_fail(st, TKM_E_CRYPTO, "cannot protect the session token's memory");
	}
	tkm_client_clear_credentials(c);
	c->session = copy;
	client_ok(st);
	return TKM_OK;
}

/* Methods are [a-z0-9._-]{1,TKM_WIRE_METHOD_MAX}, as the server checks. */
static bool client_method_ok(const char *method)
{
	size_t n = 0;

	if (method == NULL) {
		return false;
	}
	for (; method[n] != '\0'; n++) {
		char ch = method[n];
		if (n >= TKM_WIRE_METHOD_MAX) {
			return false;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-')) {
			return false;
		}
	}
	return n > 0;
}

/*
 * params must be exactly one CBOR map, so that nothing malformed is ever sent,
 * and deterministic CBOR when the call is signed.
 */
static tkm_err client_check_params(const tkm_client *c, const uint8_t *params, size_t params_len,
                                   tkm_status *st)
{
	tkm_cbor_doc *doc = NULL;
	char why[128];
	tkm_err err;

	if (params == NULL) {
		return params_len == 0
		           ? TKM_OK
		           : client_fail(st, TKM_E_INVALID_ARG, "params length without params");
	}
	if (params_len == 0) {
		return client_fail(st, TKM_E_INVALID_ARG, "empty params");
	}
	why[0] = '\0';
	if ((err = tkm_cbor_decode(params, params_len, &c->lim, &doc, why, sizeof(why))) !=
	    TKM_OK) {
		err = client_fail(st, TKM_E_INVALID_ARG, "params: %s", why);
		goto out;
	}
	if (!tkm_cbor_is(tkm_cbor_root(doc), TKM_CBOR_MAP)) {
		err = client_fail(st, TKM_E_INVALID_ARG, "params must be a CBOR map");
		goto out;
	}
	if (c->dev_key != NULL &&
	    tkm_devsig_check_canonical(tkm_cbor_root(doc), why, sizeof(why)) != TKM_OK) {
		err = client_fail(st, TKM_E_INVALID_ARG, "signed call: %s", why);
		goto out;
	}
out:
	tkm_cbor_doc_free(doc);
	return err;
}

/*
 * The auth map of one call into a new writer, or *out = NULL for a handle
 * without credentials. params are the bytes the request will carry.
 */
static tkm_err client_build_auth(const tkm_client *c, const char *method, const uint8_t *params,
                                 size_t params_len, tkm_status *st, tkm_cbor_w **out)
{
	tkm_cbor_w *w = NULL;
	char why[256];
	tkm_err err;

	*out = NULL;
	if (c->dev_key == NULL && c->session == NULL) {
		return TKM_OK;
	}
	if ((err = tkm_cbor_w_new(TKM_DEVSIG_AUTH_MAX, &w)) != TKM_OK) {
		err = client_fail(st, err, "encode auth: %s", tkm_strerror(err));
		goto out;
	}
	why[0] = '\0';
	if (c->dev_key != NULL) {
		if ((err = tkm_devsig_sign(c->dev_key, c->dev_principal, method, params, params_len,
		                           w, why, sizeof(why))) != TKM_OK) {
			err = client_fail(st, err, "%s: %s", method, why);
			goto out;
		}
	} else {
		tkm_devsig_put_session(w, c->session);
	}
	*out = w;
	w = NULL;
out:
	tkm_cbor_w_free(w);
	return err;
}

static const uint8_t client_empty_map[] = {0xa0};

/* Encode a request, with the handle's credentials, into a new nng message. */
static tkm_err client_build_request(const tkm_client *c, uint64_t id, const char *method,
                                    const uint8_t *params, size_t params_len, tkm_status *st,
                                    nng_msg **out)
{
	tkm_cbor_w *w = NULL, *aw = NULL;
	nng_msg *msg = NULL;
	const uint8_t *p, *auth = NULL;
	size_t len, auth_len = 0;
	tkm_err err;
	int rv;

	/* The bytes signed are the bytes sent: an absent params is the empty map. */
	if (params == NULL) {
		params = client_empty_map;
		params_len = sizeof(client_empty_map);
	}
	if (params_len > SIZE_MAX - CLIENT_ENVELOPE_MAX) {
		err = client_fail(st, TKM_E_INVALID_ARG, "params too large");
		goto out;
	}
	if ((err = client_build_auth(c, method, params, params_len, st, &aw)) != TKM_OK) {
		goto out;
	}
	if (aw != NULL && (err = tkm_cbor_w_finish(aw, &auth, &auth_len)) != TKM_OK) {
		err = client_fail(st, err, "encode auth: %s", tkm_strerror(err));
		goto out;
	}
	if ((err = tkm_cbor_w_new(params_len + CLIENT_ENVELOPE_MAX, &w)) != TKM_OK) {
		err = client_fail(st, err, "encode request: %s", tkm_strerror(err));
		goto out;
	}
	tkm_wire_encode_request(w, id, method, params, params_len, auth, auth_len);
	if ((err = tkm_cbor_w_finish(w, &p, &len)) != TKM_OK) {
		err = client_fail(st, err, "encode request: %s", tkm_strerror(err));
		goto out;
	}
	if ((rv = nng_msg_alloc(&msg, 0)) != 0 || (rv = nng_msg_append(msg, p, len)) != 0) {
		err = client_fail(st, TKM_E_NOMEM, "encode request: %s", nng_strerror(rv));
		goto out;
	}
	*out = msg;
	msg = NULL;
out:
	if (msg != NULL) {
		sodium_memzero(nng_msg_body(msg), nng_msg_len(msg));
		nng_msg_free(msg);
	}
	tkm_cbor_w_free(aw);
	tkm_cbor_w_free(w);
	return err;
}

/* Wipe a message that may hold params or results, then free it. NULL-safe. */
static void client_msg_free(nng_msg *msg)
{
	if (msg == NULL) {
		return;
	}
	sodium_memzero(nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_free(msg);
}

/*
 * One round trip. On TKM_OK *doc owns the reply and *resp is a success reply
 * whose id matches. An error reply returns its code with the server's message
 * in st; every other failure returns a local code with a local message.
 */
static tkm_err client_call(tkm_client *c, const char *method, const uint8_t *params,
                           size_t params_len, int timeout_ms, tkm_status *st, tkm_cbor_doc **doc,
                           tkm_wire_response *resp)
{
	nng_ctx ctx;
	bool ctx_open = false;
	nng_aio *aio = NULL;
	nng_msg *msg = NULL;
	tkm_cbor_doc *d = NULL;
	tkm_wire_response r = {0};
	uint64_t id, deadline, now;
	char why[128];
	tkm_err err = TKM_OK;
	int rv;

	if (c == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG, "no client handle");
	}
	if (!client_method_ok(method)) {
		return client_fail(st, TKM_E_INVALID_ARG, "invalid method name");
	}
	if (timeout_ms < 0) {
		return client_fail(st, TKM_E_INVALID_ARG, "negative timeout");
	}
	if (timeout_ms == 0) {
		timeout_ms = c->timeout_ms;
	}
	if ((err = client_check_params(c, params, params_len, st)) != TKM_OK) {
		return err;
	}
	deadline = client_now_ms() + (uint64_t)timeout_ms;

	id = atomic_fetch_add(&c->next_id, 1);
	if ((err = client_build_request(c, id, method, params, params_len, st, &msg)) != TKM_OK) {
		goto out;
	}

	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
		err =
		    client_fail(st, client_map_call_error(rv), "%s: %s", method, nng_strerror(rv));
		goto out;
	}
	ctx_open = true;
	if ((rv = nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0) {
		err = client_fail(st, TKM_E_INTERNAL, "%s: context options: %s", method,
		                  nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		err = client_fail(st, TKM_E_NOMEM, "%s: %s", method, nng_strerror(rv));
		goto out;
	}

	/* The send completes once the request is on a connection. */
	nng_aio_set_timeout(aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(aio, msg);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		/* On failure the message is still ours, and it never left. */
		err = client_map_call_error(rv);
		if (err == TKM_E_TIMEOUT) {
			client_fail(st, err,
			            "%s: not connected to the server within %d ms; "
			            "request not sent",
			            method, timeout_ms);
		} else {
			client_fail(st, err, "%s: send: %s", method, nng_strerror(rv));
		}
		goto out;
	}
	msg = NULL;

	now = client_now_ms();
	nng_aio_set_timeout(aio, now < deadline ? (nng_duration)(deadline - now) : 1);
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		err = client_map_call_error(rv);
		if (err == TKM_E_TIMEOUT) {
			client_fail(st, err, "%s: no reply within %d ms", method, timeout_ms);
		} else if (err == TKM_E_CLOSED) {
			client_fail(st, err, "%s: connection lost before the reply: %s", method,
			            nng_strerror(rv));
		} else {
			client_fail(st, err, "%s: receive: %s", method, nng_strerror(rv));
		}
		goto out;
	}
	msg = nng_aio_get_msg(aio);

	why[0] = '\0';
	if (tkm_wire_decode_response(nng_msg_body(msg), nng_msg_len(msg), &c->lim, &d, &r, why,
	                             sizeof(why)) != TKM_OK) {
		err = client_fail(st, TKM_E_PROTOCOL, "%s: invalid reply: %s", method, why);
		goto out;
	}
	/*
	 * nng matched the reply to this context already; the id is a second
	 * check. A server that could not read the id answers with id 0, and
	 * that error is ours: it is reported as the server sent it.
	 */
	if (r.id != id && !(r.is_error && r.id == 0)) {
		err = client_fail(st, TKM_E_PROTOCOL,
		                  "%s: reply id %llu does not match request id %llu", method,
		                  (unsigned long long)r.id, (unsigned long long)id);
		goto out;
	}
	if (r.is_error) {
		err = r.code;
		client_copy_message(st, r.code, r.message, r.message_len);
		goto out;
	}
	client_ok(st);
	*doc = d;
	d = NULL;
	*resp = r;
out:
	tkm_cbor_doc_free(d);
	client_msg_free(msg);
	nng_aio_free(aio);
	if (ctx_open) {
		(void)nng_ctx_close(ctx);
	}
	return err;
}

/* A text field of a result into a fixed buffer: too long or holding NUL is a protocol error. */
static bool client_get_text(const tkm_cbor_val *v, char *buf, size_t buf_len)
{
	const char *s;
	size_t len;

	if (!tkm_cbor_get_text(v, &s, &len) || len >= buf_len) {
		return false;
	}
	if (len > 0) {
		if (memchr(s, '\0', len) != NULL) {
			return false;
		}
		memcpy(buf, s, len);
	}
	buf[len] = '\0';
	return true;
}

tkm_err tkm_ping(tkm_client *c, int timeout_ms, tkm_status *st, tkm_ping_result *out)
{
	tkm_cbor_doc *doc = NULL;
	tkm_wire_response r = {0};
	tkm_ping_result res;
	uint64_t t;
	tkm_err err;

	if (out == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG, "no place for the result");
	}
	if ((err = client_call(c, "sys.ping", NULL, 0, timeout_ms, st, &doc, &r)) != TKM_OK) {
		goto out;
	}
	if (!tkm_cbor_is(r.result, TKM_CBOR_MAP) ||
	    !tkm_cbor_get_bool(tkm_cbor_map_get(r.result, "pong"), &res.pong) ||
	    !tkm_cbor_get_uint(tkm_cbor_map_get(r.result, "time"), &t) || t > INT64_MAX) {
		err = client_fail(st, TKM_E_PROTOCOL,
		                  "sys.ping: reply lacks pong (bool) or time (uint)");
		goto out;
	}
	res.time = (int64_t)t;
	*out = res;
out:
	tkm_cbor_doc_free(doc);
	return err;
}

/* The "hsm" map of sys.info; the optional strings stay empty when absent. */
static bool client_get_hsm(const tkm_cbor_val *hsm, tkm_server_info *info)
{
	static const struct {
		const char *key;
		size_t off;
		size_t len;
	} fields[] = {
	    {"token_label", offsetof(tkm_server_info, hsm_token_label),
	     sizeof(info->hsm_token_label)},
	    {"token_model", offsetof(tkm_server_info, hsm_token_model),
	     sizeof(info->hsm_token_model)},
	    {"manufacturer", offsetof(tkm_server_info, hsm_manufacturer),
	     sizeof(info->hsm_manufacturer)},
	    {"serial", offsetof(tkm_server_info, hsm_serial), sizeof(info->hsm_serial)},
	};
	size_t i;

	if (!tkm_cbor_is(hsm, TKM_CBOR_MAP) ||
	    !tkm_cbor_get_bool(tkm_cbor_map_get(hsm, "configured"), &info->hsm_configured)) {
		return false;
	}
	if (!info->hsm_configured) {
		return true;
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const tkm_cbor_val *v = tkm_cbor_map_get(hsm, fields[i].key);
		if (v != NULL && !client_get_text(v, (char *)info + fields[i].off, fields[i].len)) {
			return false;
		}
	}
	return true;
}

tkm_err tkm_info(tkm_client *c, int timeout_ms, tkm_status *st, tkm_server_info *out)
{
	tkm_cbor_doc *doc = NULL;
	tkm_wire_response r = {0};
	tkm_server_info info;
	const tkm_cbor_val *hsm;
	tkm_err err;

	if (out == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG, "no place for the result");
	}
	if ((err = client_call(c, "sys.info", NULL, 0, timeout_ms, st, &doc, &r)) != TKM_OK) {
		goto out;
	}
	memset(&info, 0, sizeof(info));
	if (!tkm_cbor_is(r.result, TKM_CBOR_MAP) ||
	    !client_get_text(tkm_cbor_map_get(r.result, "server_version"), info.server_version,
	                     sizeof(info.server_version)) ||
	    !tkm_cbor_get_uint(tkm_cbor_map_get(r.result, "protocol_version"),
	                       &info.protocol_version) ||
	    !tkm_cbor_get_uint(tkm_cbor_map_get(r.result, "uptime_s"), &info.uptime_s)) {
		err = client_fail(st, TKM_E_PROTOCOL,
		                  "sys.info: reply lacks server_version (text of at most %zu "
		                  "bytes), protocol_version or uptime_s (uint)",
		                  sizeof(info.server_version) - 1);
		goto out;
	}
	hsm = tkm_cbor_map_get(r.result, "hsm");
	if (hsm == NULL || !client_get_hsm(hsm, &info)) {
		err =
		    client_fail(st, TKM_E_PROTOCOL, "sys.info: reply has a missing or bad hsm map");
		goto out;
	}
	*out = info;
out:
	tkm_cbor_doc_free(doc);
	return err;
}

tkm_err tkm_call_raw(tkm_client *c, const char *method, const uint8_t *params, size_t params_len,
                     int timeout_ms, tkm_status *st, uint8_t **result, size_t *result_len)
{
	tkm_cbor_doc *doc = NULL;
	tkm_wire_response r = {0};
	const uint8_t *p;
	uint8_t *copy = NULL;
	size_t len;
	tkm_err err;

	if (result == NULL || result_len == NULL) {
		return client_fail(st, TKM_E_INVALID_ARG, "no place for the result");
	}
	if ((err = client_call(c, method, params, params_len, timeout_ms, st, &doc, &r)) !=
	    TKM_OK) {
		goto out;
	}
	tkm_cbor_raw(r.result, &p, &len);
	/* Every CBOR item is at least one byte, so len is never 0 here. */
	if ((copy = malloc(len)) == NULL) {
		err = client_fail(st, TKM_E_NOMEM, "%s", tkm_strerror(TKM_E_NOMEM));
		goto out;
	}
	memcpy(copy, p, len);
	*result = copy;
	*result_len = len;
out:
	tkm_cbor_doc_free(doc);
	return err;
}
