/*
 * service_tls_test.c - tkmd over nng's TLS transport (tls+tcp://).
 *
 * The test makes a self-signed P-256 certificate for "localhost" with the
 * openssl command, starts tkmd with a tls+tcp://localhost:PORT listener, and
 * checks that a client trusting that certificate pings it, while a client
 * trusting another CA is refused.
 *
 * Why "localhost" and not 127.0.0.1: Debian 12's nng links mbedtls 2.28,
 * which verifies DNS names in the subjectAltName but not IP addresses. A
 * client dialing tls+tcp://127.0.0.1:PORT fails with "Cryptographic error"
 * even with an IP SAN in the certificate. Tests (and users, see
 * docs/operations.md) therefore name the server by DNS name.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkm_test.h"
#include "tkm_testenv.h"

#ifndef TKM_OPENSSL
#define TKM_OPENSSL "openssl"
#endif

/* A self-signed certificate for localhost into dir/NAME.crt and dir/NAME.key. */
static bool make_cert(const tkm_testenv *env, const char *name, char *crt, size_t crt_len,
                      char *key, size_t key_len)
{
	char out[512];
	int status = -1;
	const char *dir = tkm_testenv_dir(env);

	if (snprintf(crt, crt_len, "%s/%s.crt", dir, name) >= (int)crt_len ||
	    snprintf(key, key_len, "%s/%s.key", dir, name) >= (int)key_len ||
	    snprintf(out, sizeof(out), "%s/openssl-%s.out", dir, name) >= (int)sizeof(out)) {
		return false;
	}
	{
		const char *argv[] = {TKM_OPENSSL,
		                      "req",
		                      "-x509",
		                      "-newkey",
		                      "ec",
		                      "-pkeyopt",
		                      "ec_paramgen_curve:P-256",
		                      "-nodes",
		                      "-subj",
		                      "/CN=localhost",
		                      "-addext",
		                      "subjectAltName=DNS:localhost",
		                      "-days",
		                      "2",
		                      "-keyout",
		                      key,
		                      "-out",
		                      crt,
		                      NULL};
		if (tkm_testenv_run(env, argv, out, out, 30000, &status) != TKM_OK) {
			return false;
		}
	}
	if (status != 0) {
		char *o = tkm_testenv_read_file(out, NULL);

		fprintf(stderr, "openssl req exited %d:\n%s\n", status, o ? o : "");
		free(o);
		return false;
	}
	return true;
}

/* Open a TLS client trusting ca and ping; returns the first error. */
static tkm_err tls_ping(const char *url, const char *ca, tkm_status *st)
{
	tkm_client_opts o;
	tkm_client *c = NULL;
	tkm_ping_result pr;
	tkm_err err;

	memset(&o, 0, sizeof(o));
	o.tls_ca_file = ca;
	o.timeout_ms = 5000;
	memset(st, 0, sizeof(*st));
	if ((err = tkm_client_open(url, &o, st, &c)) != TKM_OK) {
		return err;
	}
	memset(&pr, 0, sizeof(pr));
	err = tkm_ping(c, 5000, st, &pr);
	if (err == TKM_OK && !pr.pong) {
		err = TKM_E_PROTOCOL;
	}
	tkm_client_close(c);
	return err;
}

int main(void)
{
	tkm_testenv *env = NULL;
	char crt[320], key[320], other_crt[320], other_key[320];
	char url[64], listen[96], extra[800];
	tkm_status st;
	tkm_err err;

	if (tkm_testenv_new(&env) != TKM_OK) {
		CHECK(!"test environment");
		goto out;
	}
	if (!make_cert(env, "server", crt, sizeof(crt), key, sizeof(key)) ||
	    !make_cert(env, "other", other_crt, sizeof(other_crt), other_key, sizeof(other_key))) {
		CHECK(!"certificates");
		goto out;
	}
	snprintf(url, sizeof(url), "tls+tcp://localhost:%u", (unsigned)tkm_testenv_tls_port(env));
	snprintf(listen, sizeof(listen), "\"%s\"", url);
	snprintf(extra, sizeof(extra), "tls = {\n  cert_file = \"%s\";\n  key_file = \"%s\";\n};\n",
	         crt, key);
	if (tkm_testenv_start(env, listen, extra) != TKM_OK) {
		CHECK(!"start tkmd with a TLS listener");
		goto out;
	}

	/* Trusting the server's certificate: works, repeatedly. */
	for (int i = 0; i < 3; i++) {
		err = tls_ping(url, crt, &st);
		if (err != TKM_OK) {
			fprintf(stderr, "TLS ping: %s: %s\n", tkm_strerror(err), st.message);
		}
		CHECK_EQ_INT(err, TKM_OK);
	}

	/* Trusting another CA: the handshake fails, at open or at the first call. */
	err = tls_ping(url, other_crt, &st);
	printf("with the wrong CA: %s (%s)\n", tkm_strerror(err), st.message);
	CHECK(err != TKM_OK);
	CHECK(err != TKM_E_BAD_REQUEST);

	/* A TLS client needs a CA file: refused locally, before any connection. */
	err = tls_ping(url, NULL, &st);
	CHECK(err != TKM_OK);

	/* The plain listeners still serve, and so does TLS after the failures. */
	{
		tkm_client *c = NULL;
		tkm_ping_result pr;

		CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_tcp_url(env), &c), TKM_OK);
		if (c != NULL) {
			CHECK_EQ_INT(tkm_ping(c, 5000, NULL, &pr), TKM_OK);
		}
		tkm_client_close(c);
	}
	CHECK_EQ_INT(tls_ping(url, crt, &st), TKM_OK);

	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
out:
	if (tkm_test_failed != 0 && env != NULL) {
		tkm_testenv_dump_log(env);
	}
	tkm_testenv_free(env);
	return tkm_test_report("service_tls");
}
