/*
 * hsm_scale_test.c - the cost of using a device key does not grow with the
 * fleet, because device keys are blobs outside the token.
 *
 * Two fleets of device keys (10 and 10,000 AES-128 KBPK blobs, kept in
 * memory as a database would hand them over) are made on one token. The
 * test asserts that the token's object count is the same before and after
 * (the fixed set only) and that no session object is left, then REPORTS
 * the mean cost of one unwrap-and-use (tkm_hsm_blob_kcv: authenticate the
 * blob, unwrap it into a session object, CMAC, destroy) for random keys of
 * each fleet, and their ratio. Timing is reported, not asserted: it depends
 * on the machine and on what else runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "hsm_fixture.h"
#include "tkm_hsm_internal.h"
#include "tkm_test.h"

#define SMALL  10
#define LARGE  10000
#define OPS    2000
#define ROUNDS 3

typedef struct fleet {
	size_t n;
	uint8_t (*blob)[TKM_HSM_BLOB_MAX];
	size_t *len;
	tkm_hsm_kcv *kcv;
} fleet;

static tkm_hsmfix fix;
static char why[512];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void owner_of(size_t i, char owner[static 32])
{
	snprintf(owner, 32, "terminal:%zu", i);
}

static bool make_fleet(fleet *f, size_t n)
{
	char owner[32];
	double t0 = now_s();

	f->n = n;
	f->blob = calloc(n, sizeof(*f->blob));
	f->len = calloc(n, sizeof(*f->len));
	f->kcv = calloc(n, sizeof(*f->kcv));
	if (f->blob == NULL || f->len == NULL || f->kcv == NULL) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		owner_of(i, owner);
		if (tkm_hsm_device_key_generate(fix.h, TKM_HSM_AES128, TKM_HSM_USE_KBPK, owner,
		                                f->blob[i], &f->len[i], &f->kcv[i], why,
		                                sizeof(why)) != TKM_OK) {
			fprintf(stderr, "generate %zu: %s\n", i, why);
			return false;
		}
	}
	printf("made %zu device keys in %.2f s (%.0f us each)\n", n, now_s() - t0,
	       (now_s() - t0) * 1e6 / (double)n);
	return true;
}

static void free_fleet(fleet *f)
{
	free(f->blob);
	free(f->len);
	free(f->kcv);
}

/* Mean seconds of one unwrap-and-use of a random key of f; counts wrong answers. */
static double use(const fleet *f, size_t *bad)
{
	char owner[32];
	double t0 = now_s();

	for (size_t k = 0; k < OPS; k++) {
		size_t i = randombytes_uniform((uint32_t)f->n);
		tkm_hsm_kcv got;

		owner_of(i, owner);
		if (tkm_hsm_blob_kcv(fix.h, f->blob[i], f->len[i], owner, TKM_HSM_KCV_AES_CMAC, 5,
		                     &got, why, sizeof(why)) != TKM_OK ||
		    sodium_memcmp(got.b, f->kcv[i].b, 5) != 0) {
			(*bad)++;
		}
	}
	return (now_s() - t0) / OPS;
}

int main(void)
{
	fleet small = {0}, large = {0};
	size_t token0 = 0, token = 0, session = 0, bad = 0;
	double t_small = 0, t_large = 0;

	if (!tkm_hsmfix_new(&fix) || !tkm_hsmfix_open(&fix, NULL, 2) || !tkm_hsmfix_masters(&fix)) {
		tkm_hsmfix_free(&fix);
		return 1;
	}
	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &token0, &session, why, sizeof(why)), TKM_OK);
	CHECK(make_fleet(&small, SMALL));
	CHECK(make_fleet(&large, LARGE));
	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &token, &session, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(token, token0);
	CHECK_EQ_INT(session, 0);
	/* Warm up, then alternate so that drift hits both fleets alike. */
	(void)use(&small, &bad);
	for (int r = 0; r < ROUNDS; r++) {
		t_small += use(&small, &bad) / ROUNDS;
		t_large += use(&large, &bad) / ROUNDS;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &token, &session, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(token, token0);
	CHECK_EQ_INT(session, 0);
	printf("token objects: %zu before and after %d device keys; session objects left: %zu\n",
	       token0, SMALL + LARGE, session);
	printf("unwrap-and-use, mean of %d x %d random keys: %.1f us with %d keys, %.1f us with "
	       "%d keys; ratio %.2f (reported, not asserted)\n",
	       ROUNDS, OPS, t_small * 1e6, SMALL, t_large * 1e6, LARGE, t_large / t_small);
	free_fleet(&small);
	free_fleet(&large);
	tkm_hsmfix_free(&fix);
	return tkm_test_report("hsm_scale");
}
