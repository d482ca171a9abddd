/*
 * hsm_fixture.h - a fresh SoftHSM2 token for the hsm/ tests.
 *
 * tkm_hsmfix_new() makes a temporary directory with a SoftHSM2
 * configuration and a token labelled "tkm" (softhsm2-util, started without
 * a shell), points SOFTHSM2_CONF of this process at it, and writes the user
 * PIN to a 0600 file there. tkm_hsmfix_open() then opens a PKCS#11 module
 * (SoftHSM2, or the fault-injecting shim in front of it) on that token and
 * logs in with the PIN file. tkm_hsmfix_free() closes and removes it all
 * (TKM_TEST_KEEP=1 keeps the directory).
 *
 * Test code only; the PINs below are not secrets.
 */
#ifndef TKM_HSM_FIXTURE_H
#define TKM_HSM_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm_hsm.h"

#define TKM_HSMFIX_SO_PIN   "tkm-test-so-pin"
#define TKM_HSMFIX_USER_PIN "tkm-test-user-pin"

typedef struct tkm_hsmfix {
	char dir[256];
	char conf[300];
	char pin_file[300];
	tkm_hsm *h;
	tkm_hsm_id kek, seal, audit; /* after tkm_hsmfix_masters() */
} tkm_hsmfix;

/* Make the directory, the token and the PIN file; false (with a message) on failure. */
bool tkm_hsmfix_new(tkm_hsmfix *f);

/* Open module (NULL: SoftHSM2) on the token and log in with the PIN file. */
bool tkm_hsmfix_open(tkm_hsmfix *f, const char *module, unsigned sessions);

/* Generate the master KEK, the master sealing key and the audit key. */
bool tkm_hsmfix_masters(tkm_hsmfix *f);

/* Close the HSM and remove the directory. */
void tkm_hsmfix_free(tkm_hsmfix *f);

/* Run argv (PATH searched) with stdout and stderr to out_path; its exit status or -1. */
int tkm_hsmfix_run(const char *const argv[], const char *out_path);

/* Decode hex (upper or lower case) into out; the byte count, or 0 if bad or too long. */
size_t tkm_hsmfix_unhex(const char *hex, uint8_t *out, size_t cap);

/*
 * Split a clear key into two components in sodium_malloc() memory (random R
 * and key XOR R), each with its own KCV computed by the HSM. Free them with
 * tkm_hsmfix_free_components().
 */
bool tkm_hsmfix_split(tkm_hsm *h, tkm_hsm_alg alg, const uint8_t *key, size_t len,
                      tkm_hsm_component comps[2]);
void tkm_hsmfix_free_components(tkm_hsm_component *comps, size_t n);

/* Key bytes of an algorithm (0 for Ed25519 and unknown values). */
size_t tkm_hsmfix_alg_len(tkm_hsm_alg alg);

#endif /* TKM_HSM_FIXTURE_H */
