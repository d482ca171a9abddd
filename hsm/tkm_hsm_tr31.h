/*
 * tkm_hsm_tr31.h - the crypto layer of TR-31 / ANSI X9.143 key blocks,
 * versions B (TDES KBPK) and D (AES KBPK), key derivation binding.
 *
 * The KBPK is a device key blob (usage TKM_HSM_USE_KBPK); the key that goes
 * into or comes out of a key block is a device key blob too. KBEK and KBAK
 * are derived from the KBPK by CMAC inside the HSM; the MAC and the CBC
 * encryption run inside the HSM. The clear payload (length, key, padding)
 * exists only in sodium_malloc() memory and is wiped before a call returns.
 * docs/tr31.md ("TR-31: what runs where") lists every step.
 *
 * The format (header, optional blocks, payload layout, the standard's rules)
 * is tkm_tr31.h; this module adds the cryptography and never parses a key
 * block itself.
 */
#ifndef TKM_HSM_TR31_H
#define TKM_HSM_TR31_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_hsm.h"
#include "tkm_tr31.h"

/* A device key blob and the owner it is bound to. */
typedef struct tkm_hsm_tr31_ref {
	const uint8_t *blob;
	size_t blob_len;
	const char *owner;
} tkm_hsm_tr31_ref;

/*
 * Export the device key *key as a key block under the KBPK *kbpk (a blob of
 * usage KBPK; TDES for version B, AES for version D). hdr gives the version
 * and every header field; its algorithm must be the key's ('T' or 'A').
 * When hdr has no PB block one is added with random printable filler.
 * Padding of the clear payload: pad (pad_len bytes) when not NULL, to
 * reproduce a published block; otherwise pad_len random bytes, or the
 * fewest that fill the last cipher block when pad_len is 0.
 * Refused with TKM_E_BAD_REQUEST: a KBPK weaker than the key, a version that
 * does not fit the KBPK, a header the standard forbids, bad padding.
 * TKM_E_CRYPTO: a blob that does not authenticate. out gets *out_len
 * printable characters, not NUL-terminated (out_cap >= TKM_TR31_MAX_LEN
 * always suffices).
 */
TKM_MUST_CHECK tkm_err tkm_hsm_tr31_export(tkm_hsm *h, const tkm_hsm_tr31_ref *kbpk,
                                           const tkm_hsm_tr31_ref *key, const tkm_tr31_header *hdr,
                                           const uint8_t *pad, size_t pad_len, char *out,
                                           size_t out_cap, size_t *out_len, char *why,
                                           size_t why_len);

/*
 * Import the key block kb (kb_len characters) under the KBPK *kbpk. The MAC
 * is verified (constant time) before any header field is checked or used
 * and before the key is read from the payload; then the header rules
 * (tkm_tr31_header_check) and the payload. The key (TDES or AES) comes back
 * as a new device key blob for usage and owner, with its default KCV
 * (5 bytes), and *hdr gets the parsed header. Versions other than B and D
 * are refused (TKM_E_BAD_REQUEST); a MAC that does not verify is
 * TKM_E_CRYPTO. On failure blob_len is 0 and *hdr is cleared.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_tr31_import(tkm_hsm *h, const tkm_hsm_tr31_ref *kbpk, const char *kb,
                                           size_t kb_len, tkm_hsm_usage usage, const char *owner,
                                           uint8_t blob[static TKM_HSM_BLOB_MAX], size_t *blob_len,
                                           tkm_hsm_kcv *kcv, tkm_tr31_header *hdr, char *why,
                                           size_t why_len);

/* ---- Tests only ---- */

/*
 * Derive the KBEK (mac false) or the KBAK (mac true) of version ('B' or
 * 'D') from *kbpk exactly as export and import do, and return the derived
 * key's default KCV (5 bytes), computed in the HSM. The derived bytes are
 * never returned: tests compare this with the KCV of the published KBEK or
 * KBAK.
 */
TKM_MUST_CHECK tkm_err tkm_hsm_tr31_derived_kcv(tkm_hsm *h, const tkm_hsm_tr31_ref *kbpk,
                                                char version, bool mac, tkm_hsm_kcv *kcv, char *why,
                                                size_t why_len);

#endif /* TKM_HSM_TR31_H */
