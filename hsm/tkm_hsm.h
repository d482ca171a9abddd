/*
 * tkm_hsm.h - the HSM boundary: the only code in tkm that touches PKCS#11.
 *
 * The API is deliberately narrow and typed: plain values in, plain values
 * out, no PKCS#11 types and no pointers into module memory. That keeps it
 * ready to move behind a process boundary (a helper reached over a
 * socketpair, as ssh-agent does) without changing its callers.
 *
 * Functions are safe to call from several threads on one handle: the module
 * is initialised with CKF_OS_LOCKING_OK.
 */
#ifndef TKM_HSM_H
#define TKM_HSM_H

#include <stddef.h>

#include "tkm/error.h"

typedef struct tkm_hsm tkm_hsm;

/*
 * CK_TOKEN_INFO's identifying fields with the blank padding trimmed,
 * NUL-terminated. They are UTF-8 as far as the module keeps to the standard.
 */
typedef struct tkm_hsm_token {
	char label[33];
	char model[17];
	char manufacturer[33];
	char serial[17];
} tkm_hsm_token;

/*
 * Load the PKCS#11 module at module_path (an absolute path to a regular
 * file), initialise it, and select the one token matching token_uri (an
 * RFC 7512 "pkcs11:" URI). Fails with TKM_E_CONFIG (bad path, module or
 * URI; several tokens match), TKM_E_NOT_FOUND (no token matches) or
 * TKM_E_HSM (the module failed), with a sentence in why. No login happens.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_open(const char *module_path, const char *token_uri, tkm_hsm **out,
                                    char *why, size_t why_len);

/* Read the selected token's identity now. TKM_E_HSM if the token is gone. */
TKM_MUST_CHECK tkm_err tkm_hsm_token_info(const tkm_hsm *h, tkm_hsm_token *out, char *why,
                                          size_t why_len);

/* Finalise and unload the module. NULL-safe. */
void tkm_hsm_close(tkm_hsm *h);

#endif /* TKM_HSM_H */
