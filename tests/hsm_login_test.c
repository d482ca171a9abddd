/*
 * hsm_login_test.c - PIN sources, login, and the session pool: parallel
 * use, and recovery after the token forgets every session and the login
 * (real C_CloseAllSessions on SoftHSM2, no fault injection).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "hsm_fixture.h"
#include "tkm_hsm_internal.h"
#include "tkm_test.h"

static tkm_hsmfix fix;
static char why[512];

static void write_pin(const char *path, const char *pin, mode_t mode)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (f != NULL) {
		fputs(pin, f);
		fclose(f);
	}
	CHECK(chmod(path, mode) == 0);
}

/* Open the module without logging in. */
static tkm_hsm *open_only(void)
{
	tkm_hsm *h = NULL;

	CHECK_EQ_INT(tkm_hsm_open(TKM_SOFTHSM_MODULE, "pkcs11:token=tkm", &h, why, sizeof(why)),
	             TKM_OK);
	return h;
}

static void test_pin_sources(void)
{
	char path[400];
	tkm_hsm *h = open_only();
	uint8_t blob[TKM_HSM_BLOB_MAX];
	size_t blob_len = 0;
	tkm_hsm_kcv kcv;
	int n;

	if (h == NULL) {
		return;
	}
	/* No login: key operations are unavailable, token info still works. */
	CHECK_EQ_INT(tkm_hsm_device_key_generate(h, TKM_HSM_AES128, TKM_HSM_USE_DATA, "t", blob,
	                                         &blob_len, &kcv, why, sizeof(why)),
	             TKM_E_UNAVAILABLE);
	CHECK(strstr(why, "pin_file") != NULL);

	n = snprintf(path, sizeof(path), "%s/other.pin", fix.dir);
	CHECK(n > 0 && (size_t)n < sizeof(path));
	CHECK_EQ_INT(tkm_hsm_login(h, NULL, NULL, 2, why, sizeof(why)), TKM_E_CONFIG);
	CHECK_EQ_INT(tkm_hsm_login(h, fix.pin_file, "TKM_PIN", 2, why, sizeof(why)), TKM_E_CONFIG);
	CHECK_EQ_INT(tkm_hsm_login(h, NULL, "1BAD-NAME", 2, why, sizeof(why)), TKM_E_CONFIG);
	CHECK_EQ_INT(tkm_hsm_login(h, fix.pin_file, NULL, 0, why, sizeof(why)), TKM_E_INVALID_ARG);
	/* Missing, readable by others, empty, wrong. */
	CHECK_EQ_INT(tkm_hsm_login(h, path, NULL, 2, why, sizeof(why)), TKM_E_CONFIG);
	write_pin(path, TKM_HSMFIX_USER_PIN, 0644);
	CHECK_EQ_INT(tkm_hsm_login(h, path, NULL, 2, why, sizeof(why)), TKM_E_CONFIG);
	CHECK(strstr(why, "group or others") != NULL);
	write_pin(path, TKM_HSMFIX_USER_PIN, 0640);
	CHECK_EQ_INT(tkm_hsm_login(h, path, NULL, 2, why, sizeof(why)), TKM_E_CONFIG);
	write_pin(path, "\n", 0600);
	CHECK_EQ_INT(tkm_hsm_login(h, path, NULL, 2, why, sizeof(why)), TKM_E_CONFIG);
	CHECK(strstr(why, "empty") != NULL);
	write_pin(path, "not-the-pin\n", 0600);
	CHECK_EQ_INT(tkm_hsm_login(h, path, NULL, 2, why, sizeof(why)), TKM_E_CONFIG);
	CHECK(strstr(why, "CKR_PIN_INCORRECT") != NULL);
	/* The environment: unset, then set. */
	unsetenv("TKM_TEST_HSM_PIN");
	CHECK_EQ_INT(tkm_hsm_login(h, NULL, "TKM_TEST_HSM_PIN", 2, why, sizeof(why)), TKM_E_CONFIG);
	setenv("TKM_TEST_HSM_PIN", TKM_HSMFIX_USER_PIN, 1);
	CHECK_EQ_INT(tkm_hsm_login(h, NULL, "TKM_TEST_HSM_PIN", 2, why, sizeof(why)), TKM_OK);
	unsetenv("TKM_TEST_HSM_PIN");
	CHECK_EQ_INT(tkm_hsm_login(h, fix.pin_file, NULL, 2, why, sizeof(why)), TKM_E_INVALID_ARG);
	tkm_hsm_close(h);

	/* A "\r\n" ending and a 0400 file are fine. */
	h = open_only();
	write_pin(path, TKM_HSMFIX_USER_PIN "\r\n", 0400);
	CHECK_EQ_INT(tkm_hsm_login(h, path, NULL, 1, why, sizeof(why)), TKM_OK);
	tkm_hsm_close(h);
	unlink(path);
}

/* Close every session behind tkm's back: the token also forgets the login. */
static void kill_sessions(void)
{
	CHECK_EQ_INT(fix.h->p11->C_CloseAllSessions(fix.h->slot), CKR_OK);
}

static tkm_err one_op(void)
{
	uint8_t blob[TKM_HSM_BLOB_MAX];
	size_t blob_len = 0;
	tkm_hsm_kcv kcv;

	return tkm_hsm_device_key_generate(fix.h, TKM_HSM_AES128, TKM_HSM_USE_DATA, "t:1", blob,
	                                   &blob_len, &kcv, why, sizeof(why));
}

static void test_recovery(void)
{
	char saved[400];
	int n;

	/* Use all four sessions so that all four are open when they die. */
	CHECK_EQ_INT(one_op(), TKM_OK);
	kill_sessions();
	CHECK_EQ_INT(one_op(), TKM_E_UNAVAILABLE);
	CHECK(strstr(why, "CKR_SESSION_HANDLE_INVALID") != NULL);
	CHECK_EQ_INT(one_op(), TKM_OK);
	CHECK_EQ_INT(one_op(), TKM_OK);

	/* Log in again needs the PIN: without its file the call is unavailable, then recovers. */
	n = snprintf(saved, sizeof(saved), "%s.saved", fix.pin_file);
	CHECK(n > 0 && (size_t)n < sizeof(saved));
	CHECK(rename(fix.pin_file, saved) == 0);
	kill_sessions();
	CHECK_EQ_INT(one_op(), TKM_E_UNAVAILABLE);
	CHECK_EQ_INT(one_op(), TKM_E_UNAVAILABLE);
	CHECK(strstr(why, "PIN file") != NULL);
	CHECK(rename(saved, fix.pin_file) == 0);
	CHECK_EQ_INT(one_op(), TKM_OK);

	/* A PIN the token refuses is not retried, even once the file is right again. */
	write_pin(fix.pin_file, "wrong-pin", 0600);
	kill_sessions();
	CHECK_EQ_INT(one_op(), TKM_E_UNAVAILABLE);
	CHECK_EQ_INT(one_op(), TKM_E_UNAVAILABLE);
	CHECK(strstr(why, "refused") != NULL);
	write_pin(fix.pin_file, TKM_HSMFIX_USER_PIN, 0600);
	CHECK_EQ_INT(one_op(), TKM_E_UNAVAILABLE);
}

#define THREADS    8
#define ITERATIONS 40

static void *worker(void *arg)
{
	size_t *failures = arg;
	char w[256];

	for (int i = 0; i < ITERATIONS; i++) {
		uint8_t blob[TKM_HSM_BLOB_MAX];
		size_t blob_len = 0;
		tkm_hsm_kcv kcv, again;
		char owner[32];

		snprintf(owner, sizeof(owner), "terminal:%d", i);
		if (tkm_hsm_device_key_generate(fix.h, i % 2 ? TKM_HSM_TDES2 : TKM_HSM_AES256,
		                                TKM_HSM_USE_KBPK, owner, blob, &blob_len, &kcv, w,
		                                sizeof(w)) != TKM_OK ||
		    tkm_hsm_blob_kcv(fix.h, blob, blob_len, owner, kcv.method, 5, &again, w,
		                     sizeof(w)) != TKM_OK ||
		    sodium_memcmp(kcv.b, again.b, 5) != 0) {
			fprintf(stderr, "worker: %s\n", w);
			(*failures)++;
		}
	}
	return NULL;
}

static void test_parallel(void)
{
	pthread_t t[THREADS];
	size_t failures[THREADS] = {0};
	size_t token = 0, session = 0;

	for (int i = 0; i < THREADS; i++) {
		CHECK(pthread_create(&t[i], NULL, worker, &failures[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(failures[i], 0);
	}
	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &token, &session, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(token, 4);
	CHECK_EQ_INT(session, 0);
}

int main(void)
{
	if (!tkm_hsmfix_new(&fix)) {
		tkm_hsmfix_free(&fix);
		return 1;
	}
	test_pin_sources();
	if (!tkm_hsmfix_open(&fix, NULL, 4) || !tkm_hsmfix_masters(&fix)) {
		tkm_hsmfix_free(&fix);
		return 1;
	}
	/* 8 threads share 4 sessions. */
	test_parallel();
	test_recovery();
	tkm_hsmfix_free(&fix);
	return tkm_test_report("hsm_login");
}
