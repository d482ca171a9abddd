/*
 * hsm_fault_test.c - every tkm_hsm_ operation under injected PKCS#11
 * failures, through the fault-injecting shim (tests/p11shim) in front of
 * SoftHSM2.
 *
 * For each operation, a clean run first counts the calls it makes to each
 * PKCS#11 function. Then, for every function F it calls and every k up to
 * that count, the k-th call of F fails (without reaching SoftHSM2) with each
 * return value below, and the test checks that
 *   - the operation returns an error (a failed C_DestroyObject or
 *     C_CloseSession may instead be absorbed: the session is closed, which
 *     destroys its objects, and the answer is still right; so may a lone
 *     CKR_GENERAL_ERROR of an AES-GCM C_Decrypt, which is tried once more
 *     because SoftHSM2 also reports a bad tag that way);
 *   - lost sessions and a lost token give TKM_E_UNAVAILABLE exactly;
 *   - any answer it gives is correct (checked afterwards without faults);
 *   - the next call, without faults, succeeds with a correct answer;
 *   - no object is left behind: the token holds its fixed set only and no
 *     session object remains.
 * Then the session-reopen path (C_OpenSession, C_GetSessionInfo, C_Login)
 * is failed after the token forgot every session. Run under ASan
 * (TKM_SANITIZE=ON) this also shows that the failure paths leak nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hsm_fixture.h"
#include "tkm_hsm_tr31.h"
#include "tkm_hsm_internal.h"
#include "tkm_p11shim.h"
#include "tkm_test.h"

static tkm_hsmfix fix;
static struct tkm_p11shim_ctl ctl;
static char why[512];

/* Material the operations work on, made without faults. */
static uint8_t blob[TKM_HSM_BLOB_MAX];
static size_t blob_len;
static tkm_hsm_kcv blob_kcv;
static tkm_hsm_id bdk_aes, bdk_tdes;
static uint8_t sealed[64];
static size_t sealed_len;
static tkm_hsm_component comps[2];
static const uint8_t clear_key[16] = {0x2B, 0x7E, 0x15, 0x16, 0x28, 0xAE, 0xD2, 0xA6,
                                      0xAB, 0xF7, 0x15, 0x88, 0x09, 0xCF, 0x4F, 0x3C};
static const tkm_hsm_seal_ctx seal_ctx = {"t", (const uint8_t *)"row", 3, 1};

/* One operation's output, checked after the run. */
typedef struct out {
	uint8_t blob[TKM_HSM_BLOB_MAX];
	size_t blob_len;
	tkm_hsm_kcv kcv;
	tkm_hsm_id id;
	uint8_t buf[128];
	size_t len;
	char text[TKM_TR31_MAX_LEN]; /* a key block */
	size_t text_len;
} out;

typedef struct op {
	const char *name;
	tkm_err (*run)(out *o);
	bool (*check)(const out *o); /* the answer is right (runs without faults) */
	void (*undo)(const out *o);  /* remove what a successful run made (without faults) */
	void (*prepare)(void);       /* make what the run consumes (without faults) */
} op;

static unsigned long seq;

/* ---- The operations ---- */

static tkm_err run_dev_gen(out *o)
{
	return tkm_hsm_device_key_generate(fix.h, TKM_HSM_TDES2, TKM_HSM_USE_PIN, "t:1", o->blob,
	                                   &o->blob_len, &o->kcv, why, sizeof(why));
}

static bool check_blob_out(const out *o)
{
	tkm_hsm_kcv got;

	return tkm_hsm_blob_kcv(fix.h, o->blob, o->blob_len, "t:1", o->kcv.method, 5, &got, why,
	                        sizeof(why)) == TKM_OK &&
	       sodium_memcmp(got.b, o->kcv.b, 5) == 0;
}

static tkm_err run_dev_import(out *o)
{
	return tkm_hsm_device_key_import(fix.h, TKM_HSM_AES128, TKM_HSM_USE_MAC, "t:1", comps, 2,
	                                 o->blob, &o->blob_len, &o->kcv, why, sizeof(why));
}

static bool check_import_out(const out *o)
{
	/* The same key as the setup's blob, so the same KCV. */
	return check_blob_out(o) && sodium_memcmp(o->kcv.b, blob_kcv.b, 5) == 0;
}

static tkm_err run_blob_kcv(out *o)
{
	return tkm_hsm_blob_kcv(fix.h, blob, blob_len, "t:1", TKM_HSM_KCV_AES_CMAC, 5, &o->kcv, why,
	                        sizeof(why));
}

static bool check_kcv_out(const out *o)
{
	return o->kcv.len == 5 && sodium_memcmp(o->kcv.b, blob_kcv.b, 5) == 0;
}

static tkm_err run_component_kcv(out *o)
{
	return tkm_hsm_component_kcv(fix.h, TKM_HSM_AES128, comps[0].key, comps[0].kcv.method, 3,
	                             &o->kcv, why, sizeof(why));
}

static bool check_component_out(const out *o)
{
	return o->kcv.len == 3 && sodium_memcmp(o->kcv.b, comps[0].kcv.b, 3) == 0;
}

static tkm_err run_bdk_gen(out *o)
{
	char name[32];

	snprintf(name, sizeof(name), "g%lu", ++seq);
	return tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_AES128, name, &o->id, &o->kcv,
	                                  why, sizeof(why));
}

static tkm_err run_bdk_gen_tdes(out *o)
{
	char name[32];

	snprintf(name, sizeof(name), "g%lu", ++seq);
	return tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_TDES2, name, &o->id, &o->kcv,
	                                  why, sizeof(why));
}

static bool check_bdk_out(const out *o)
{
	tkm_hsm_kcv got;

	return tkm_hsm_token_kcv(fix.h, &o->id, o->kcv.method, 5, &got, why, sizeof(why)) ==
	           TKM_OK &&
	       sodium_memcmp(got.b, o->kcv.b, 5) == 0;
}

static void undo_bdk(const out *o)
{
	CHECK_EQ_INT(tkm_hsm_token_key_destroy(fix.h, &o->id, why, sizeof(why)), TKM_OK);
}

static tkm_err run_bdk_import(out *o)
{
	char name[32];

	snprintf(name, sizeof(name), "i%lu", ++seq);
	return tkm_hsm_token_key_import(fix.h, TKM_HSM_BDK, TKM_HSM_AES128, name, comps, 2, &o->id,
	                                &o->kcv, why, sizeof(why));
}

static tkm_err run_token_kcv(out *o)
{
	o->id = bdk_aes;
	return tkm_hsm_token_kcv(fix.h, &bdk_aes, TKM_HSM_KCV_AES_CMAC, 5, &o->kcv, why,
	                         sizeof(why));
}

static tkm_err run_token_find(out *o)
{
	tkm_hsm_alg alg;

	return tkm_hsm_token_key_find(fix.h, TKM_HSM_MASTER_KEK, NULL, &o->id, &alg, why,
	                              sizeof(why));
}

static bool check_find_out(const out *o)
{
	return sodium_memcmp(o->id.b, fix.kek.b, TKM_HSM_ID_LEN) == 0;
}

static tkm_hsm_id victim;

static void prepare_victim(void)
{
	tkm_hsm_kcv kcv;
	char name[32];

	snprintf(name, sizeof(name), "v%lu", ++seq);
	CHECK_EQ_INT(tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_TDES2, name, &victim,
	                                        &kcv, why, sizeof(why)),
	             TKM_OK);
}

static tkm_err run_token_destroy(out *o)
{
	o->id = victim;
	return tkm_hsm_token_key_destroy(fix.h, &victim, why, sizeof(why));
}

static bool check_destroyed(const out *o)
{
	tkm_hsm_kcv kcv;

	return tkm_hsm_token_kcv(fix.h, &o->id, TKM_HSM_KCV_TDES, 3, &kcv, why, sizeof(why)) ==
	       TKM_E_NOT_FOUND;
}

static void undo_victim(const out *o)
{
	/* A failed destroy leaves the victim (and its variant); remove it for the count. */
	(void)o;
	if (tkm_hsm_token_key_destroy(fix.h, &victim, why, sizeof(why)) != TKM_E_NOT_FOUND) {
		CHECK(check_destroyed(o));
	}
}

static tkm_err run_aes_ik(out *o)
{
	static const uint8_t ikid[8] = {1, 2, 3, 4, 5, 6, 7, 8};

	return tkm_hsm_dukpt_aes_initial_key(fix.h, &bdk_aes, ikid, "t:1", o->blob, &o->blob_len,
	                                     &o->kcv, why, sizeof(why));
}

static tkm_err run_tdes_ipek(out *o)
{
	static const uint8_t ksn[10] = {0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0, 0};

	return tkm_hsm_dukpt_tdes_ipek(fix.h, &bdk_tdes, ksn, "t:1", o->blob, &o->blob_len, &o->kcv,
	                               why, sizeof(why));
}

static tkm_err run_seal(out *o)
{
	return tkm_hsm_seal(fix.h, &seal_ctx, (const uint8_t *)"secret", 6, o->buf, sizeof(o->buf),
	                    &o->len, why, sizeof(why));
}

static bool check_seal_out(const out *o)
{
	uint8_t plain[16];
	size_t n = 0;

	return tkm_hsm_unseal(fix.h, &seal_ctx, o->buf, o->len, plain, sizeof(plain), &n, why,
	                      sizeof(why)) == TKM_OK &&
	       n == 6 && sodium_memcmp(plain, "secret", 6) == 0;
}

static tkm_err run_unseal(out *o)
{
	return tkm_hsm_unseal(fix.h, &seal_ctx, sealed, sealed_len, o->buf, sizeof(o->buf), &o->len,
	                      why, sizeof(why));
}

static bool check_unseal_out(const out *o)
{
	return o->len == 6 && sodium_memcmp(o->buf, "secret", 6) == 0;
}

static tkm_err run_sign(out *o)
{
	return tkm_hsm_audit_sign(fix.h, (const uint8_t *)"checkpoint", 10, o->buf, why,
	                          sizeof(why));
}

static bool check_sign_out(const out *o)
{
	uint8_t pk[32];
	tkm_hsm_id id;

	return tkm_hsm_audit_public_key(fix.h, &id, pk, why, sizeof(why)) == TKM_OK &&
	       crypto_sign_verify_detached(o->buf, (const uint8_t *)"checkpoint", 10, pk) == 0;
}

static tkm_err run_pubkey(out *o)
{
	return tkm_hsm_audit_public_key(fix.h, &o->id, o->buf, why, sizeof(why));
}

static bool check_pubkey_out(const out *o)
{
	uint8_t sig[64];

	return sodium_memcmp(o->id.b, fix.audit.b, TKM_HSM_ID_LEN) == 0 &&
	       tkm_hsm_audit_sign(fix.h, (const uint8_t *)"x", 1, sig, why, sizeof(why)) ==
	           TKM_OK &&
	       crypto_sign_verify_detached(sig, (const uint8_t *)"x", 1, o->buf) == 0;
}

/* TR-31: the setup's key exported under an AES-256 KBPK, and imported back. */
static uint8_t kbpk[TKM_HSM_BLOB_MAX];
static size_t kbpk_len;
static char block[TKM_TR31_MAX_LEN];
static size_t block_len;

static tkm_err tr31_export(char *text, size_t cap, size_t *text_len)
{
	static tkm_tr31_header hdr;
	const tkm_hsm_tr31_ref k = {kbpk, kbpk_len, "t:1"}, key = {blob, blob_len, "t:1"};

	tkm_tr31_header_clear(&hdr);
	hdr.version = 'D';
	memcpy(hdr.usage, "P0", 3);
	hdr.algorithm = 'A';
	hdr.mode = 'E';
	hdr.exportability = 'E';
	return tkm_hsm_tr31_export(fix.h, &k, &key, &hdr, NULL, 0, text, cap, text_len, why,
	                           sizeof(why));
}

static tkm_err tr31_import(const char *text, size_t text_len, out *o)
{
	static tkm_tr31_header hdr;
	const tkm_hsm_tr31_ref k = {kbpk, kbpk_len, "t:1"};

	return tkm_hsm_tr31_import(fix.h, &k, text, text_len, TKM_HSM_USE_PIN, "t:1", o->blob,
	                           &o->blob_len, &o->kcv, &hdr, why, sizeof(why));
}

static tkm_err run_tr31_export(out *o)
{
	return tr31_export(o->text, sizeof(o->text), &o->text_len);
}

static bool check_tr31_export_out(const out *o)
{
	static out back;

	/* The block opens to the setup's key. */
	return tr31_import(o->text, o->text_len, &back) == TKM_OK &&
	       sodium_memcmp(back.kcv.b, blob_kcv.b, 5) == 0;
}

static tkm_err run_tr31_import(out *o)
{
	return tr31_import(block, block_len, o);
}

static const op ops[] = {
    {"device_key_generate", run_dev_gen, check_blob_out, NULL, NULL},
    {"device_key_import", run_dev_import, check_import_out, NULL, NULL},
    {"blob_kcv", run_blob_kcv, check_kcv_out, NULL, NULL},
    {"component_kcv", run_component_kcv, check_component_out, NULL, NULL},
    {"token_key_generate(AES BDK)", run_bdk_gen, check_bdk_out, undo_bdk, NULL},
    {"token_key_generate(TDES BDK)", run_bdk_gen_tdes, check_bdk_out, undo_bdk, NULL},
    {"token_key_import(BDK)", run_bdk_import, check_bdk_out, undo_bdk, NULL},
    {"token_kcv", run_token_kcv, check_bdk_out, NULL, NULL},
    {"token_key_find", run_token_find, check_find_out, NULL, NULL},
    {"token_key_destroy", run_token_destroy, check_destroyed, undo_victim, prepare_victim},
    {"dukpt_aes_initial_key", run_aes_ik, check_blob_out, NULL, NULL},
    {"dukpt_tdes_ipek", run_tdes_ipek, check_blob_out, NULL, NULL},
    {"seal", run_seal, check_seal_out, NULL, NULL},
    {"unseal", run_unseal, check_unseal_out, NULL, NULL},
    {"audit_sign", run_sign, check_sign_out, NULL, NULL},
    {"audit_public_key", run_pubkey, check_pubkey_out, NULL, NULL},
    {"tr31_export", run_tr31_export, check_tr31_export_out, NULL, NULL},
    {"tr31_import", run_tr31_import, check_import_out, NULL, NULL},
};

/* Every PKCS#11 function hsm/ calls. */
static const char *const functions[] = {
    "C_OpenSession",     "C_CloseSession",  "C_GetSessionInfo",   "C_Login",
    "C_FindObjectsInit", "C_FindObjects",   "C_FindObjectsFinal", "C_GetAttributeValue",
    "C_CreateObject",    "C_DestroyObject", "C_GenerateKey",      "C_GenerateKeyPair",
    "C_GenerateRandom",  "C_WrapKey",       "C_UnwrapKey",        "C_DeriveKey",
    "C_EncryptInit",     "C_Encrypt",       "C_DecryptInit",      "C_Decrypt",
    "C_SignInit",        "C_Sign",
};

static const struct {
	CK_RV rv;
	bool lost; /* tkm must say TKM_E_UNAVAILABLE */
} faults[] = {
    {CKR_DEVICE_ERROR, true},       {CKR_SESSION_HANDLE_INVALID, true}, {CKR_DEVICE_REMOVED, true},
    {CKR_USER_NOT_LOGGED_IN, true}, {CKR_TOKEN_NOT_PRESENT, true},      {CKR_SESSION_CLOSED, true},
    {CKR_FUNCTION_FAILED, false},   {CKR_HOST_MEMORY, false},           {CKR_GENERAL_ERROR, false},
};

static size_t base_token;
static unsigned long injected_total, absorbed_total;

static void check_clean(const char *what)
{
	size_t token = 0, session = 0;

	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &token, &session, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(token, base_token);
	CHECK_EQ_INT(session, 0);
	if (token != base_token || session != 0) {
		fprintf(stderr, "  objects left after %s: %zu token (want %zu), %zu session\n",
		        what, token, base_token, session);
	}
}

/* Calls of each function in functions[] so far. */
static void snapshot(unsigned long *counts)
{
	for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
		counts[i] = ctl.calls(functions[i]);
	}
}

/*
 * A run of o without faults, checked and undone. counts (may be NULL) gets
 * the calls of each function the run itself made.
 */
static bool clean_run(const op *o, bool report, unsigned long *counts)
{
	unsigned long before[sizeof(functions) / sizeof(functions[0])];
	out res;
	tkm_err err;

	memset(&res, 0, sizeof(res));
	if (o->prepare != NULL) {
		o->prepare();
	}
	snapshot(before);
	err = o->run(&res);
	if (counts != NULL) {
		snapshot(counts);
		for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
			counts[i] -= before[i];
		}
	}
	if (err != TKM_OK || !o->check(&res)) {
		if (report) {
			fprintf(stderr, "  %s without faults: %s: %s\n", o->name, tkm_strerror(err),
			        why);
		}
		return false;
	}
	if (o->undo != NULL) {
		o->undo(&res);
	}
	return true;
}

static void sweep(const op *o)
{
	unsigned long counts[sizeof(functions) / sizeof(functions[0])];
	size_t nf = sizeof(functions) / sizeof(functions[0]);

	/* Count the calls of a clean run, twice so that no session is being reopened. */
	CHECK(clean_run(o, true, NULL));
	CHECK(clean_run(o, true, counts));
	for (size_t i = 0; i < nf; i++) {
		bool absorbable_fn = strcmp(functions[i], "C_DestroyObject") == 0 ||
		                     strcmp(functions[i], "C_CloseSession") == 0;
		for (unsigned long k = 1; k <= counts[i]; k++) {
			for (size_t f = 0; f < sizeof(faults) / sizeof(faults[0]); f++) {
				/* A lone CKR_GENERAL_ERROR of an AES-GCM decryption is retried. */
				bool absorbable =
				    absorbable_fn || (strcmp(functions[i], "C_Decrypt") == 0 &&
				                      faults[f].rv == CKR_GENERAL_ERROR);
				out res;
				tkm_err err;

				memset(&res, 0, sizeof(res));
				if (o->prepare != NULL) {
					o->prepare();
				}
				CHECK_EQ_INT(ctl.arm(functions[i], k, faults[f].rv), CKR_OK);
				err = o->run(&res);
				injected_total += ctl.injected();
				CHECK_EQ_INT(ctl.injected(), 1);
				ctl.disarm();
				if (err == TKM_OK) {
					CHECK(absorbable);
					absorbed_total++;
					CHECK(o->check(&res));
					if (o->undo != NULL) {
						o->undo(&res);
					}
				} else {
					if (faults[f].lost) {
						CHECK_EQ_INT(err, TKM_E_UNAVAILABLE);
					}
					if (o->undo == undo_victim) {
						undo_victim(&res);
					}
				}
				if ((err == TKM_OK && !absorbable) ||
				    (err != TKM_OK && faults[f].lost && err != TKM_E_UNAVAILABLE)) {
					fprintf(stderr,
					        "  %s: call %lu of %s failed with %s: %s (%s)\n",
					        o->name, k, functions[i],
					        tkm_hsm_ckr_name(faults[f].rv), tkm_strerror(err),
					        why);
				}
				/* The next call recovers, and nothing is left behind. */
				CHECK(clean_run(o, true, NULL));
				check_clean(o->name);
			}
		}
	}
}

/* The token forgets every session and the login; reopening it fails once. */
static void sweep_reopen(void)
{
	static const char *const reopen[] = {"C_OpenSession", "C_GetSessionInfo", "C_Login"};
	out res;

	for (size_t i = 0; i < 3; i++) {
		CHECK_EQ_INT(fix.h->p11->C_CloseAllSessions(fix.h->slot), CKR_OK);
		CHECK_EQ_INT(run_blob_kcv(&res), TKM_E_UNAVAILABLE);
		CHECK_EQ_INT(ctl.arm(reopen[i], 1, CKR_DEVICE_ERROR), CKR_OK);
		CHECK_EQ_INT(run_blob_kcv(&res), TKM_E_UNAVAILABLE);
		CHECK_EQ_INT(ctl.injected(), 1);
		ctl.disarm();
		CHECK_EQ_INT(run_blob_kcv(&res), TKM_OK);
		CHECK(check_kcv_out(&res));
	}
	/* A device that stays broken: every call fails cleanly until it is back. */
	CHECK_EQ_INT(ctl.arm_from(NULL, 1, CKR_DEVICE_REMOVED), CKR_OK);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_INT(run_blob_kcv(&res), TKM_E_UNAVAILABLE);
	}
	ctl.disarm();
	CHECK_EQ_INT(run_blob_kcv(&res), TKM_OK);
	check_clean("reopen");
}

static bool setup(void)
{
	tkm_hsm_kcv kcv;
	char name[] = "fault-aes";

	if (!tkm_hsmfix_new(&fix) || !tkm_hsmfix_open(&fix, TKM_P11SHIM_PATH, 2) ||
	    !tkm_hsmfix_masters(&fix) || !tkm_p11shim_ctl_open(&ctl, TKM_P11SHIM_PATH)) {
		return false;
	}
	if (!tkm_hsmfix_split(fix.h, TKM_HSM_AES128, clear_key, 16, comps) ||
	    tkm_hsm_device_key_import(fix.h, TKM_HSM_AES128, TKM_HSM_USE_MAC, "t:1", comps, 2, blob,
	                              &blob_len, &blob_kcv, why, sizeof(why)) != TKM_OK ||
	    tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_AES256, name, &bdk_aes, &kcv,
	                               why, sizeof(why)) != TKM_OK ||
	    tkm_hsm_token_key_generate(fix.h, TKM_HSM_BDK, TKM_HSM_TDES2, "fault-tdes", &bdk_tdes,
	                               &kcv, why, sizeof(why)) != TKM_OK ||
	    tkm_hsm_seal(fix.h, &seal_ctx, (const uint8_t *)"secret", 6, sealed, sizeof(sealed),
	                 &sealed_len, why, sizeof(why)) != TKM_OK ||
	    tkm_hsm_device_key_generate(fix.h, TKM_HSM_AES256, TKM_HSM_USE_KBPK, "t:1", kbpk,
	                                &kbpk_len, &kcv, why, sizeof(why)) != TKM_OK ||
	    tr31_export(block, sizeof(block), &block_len) != TKM_OK) {
		fprintf(stderr, "setup: %s\n", why);
		return false;
	}
	return true;
}

int main(void)
{
	size_t session = 0;

	if (!setup()) {
		tkm_p11shim_ctl_close(&ctl);
		tkm_hsmfix_free_components(comps, 2);
		tkm_hsmfix_free(&fix);
		return 1;
	}
	CHECK_EQ_INT(tkm_hsm_count_objects(fix.h, &base_token, &session, why, sizeof(why)), TKM_OK);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		unsigned long before = injected_total;
		sweep(&ops[i]);
		printf("%-30s %4lu injected failures\n", ops[i].name, injected_total - before);
	}
	sweep_reopen();
	printf("%lu injected failures in all; %lu absorbed (a failed C_DestroyObject or "
	       "C_CloseSession, or a lone GCM CKR_GENERAL_ERROR), each with a correct answer\n",
	       injected_total, absorbed_total);
	tkm_p11shim_ctl_close(&ctl);
	tkm_hsmfix_free_components(comps, 2);
	tkm_hsmfix_free(&fix);
	return tkm_test_report("hsm_fault");
}
