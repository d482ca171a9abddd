/*
 * tkm_tr31.h - the format layer of TR-31 / ANSI X9.143 key blocks.
 *
 * Parses and builds the clear parts of a key block (header, optional blocks,
 * the clear payload layout) and states the rules the standard puts on them.
 * It does no cryptography and never sees a KBPK: deriving KBEK/KBAK, CBC
 * encryption and the MAC belong to the crypto layer in tkm_hsm, which calls
 * this module for the bytes around them.
 *
 * Import order for the crypto layer: tkm_tr31_decode() (structure only, to
 * find the payload and the MAC), then decrypt in the HSM and verify the MAC
 * (it covers the clear payload), then tkm_tr31_header_check() (what the
 * standard forbids). Nothing from an unauthenticated header but the version
 * is acted upon before the MAC is verified.
 *
 * Every failure caused by the input is TKM_E_BAD_REQUEST with a sentence in
 * why; TKM_E_INVALID_ARG is a caller bug (NULL, buffer too small).
 */
#ifndef TKM_TR31_H
#define TKM_TR31_H

#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"

/* The key block length field has four decimal digits. */
#define TKM_TR31_MAX_LEN 9999
/* Version, length, usage, algorithm, mode, key version, exportability,
 * number of optional blocks, key context, reserved. */
#define TKM_TR31_FIXED_LEN 16
/* The number of optional blocks field has two decimal digits. */
#define TKM_TR31_MAX_OPT 99
/* Largest MAC (version D, 16 bytes) and cipher block (AES). */
#define TKM_TR31_MAX_MAC   16
#define TKM_TR31_MAX_BLOCK 16

/* One optional block; its data lives in the header's opt_data pool. */
typedef struct tkm_tr31_opt {
	char id[3];         /* two alphanumerics, NUL-terminated */
	uint8_t ext_digits; /* 0: two hex digit length; else the "00" form with this many digits */
	uint16_t data_off;  /* offset of the data in tkm_tr31_header.opt_data */
	uint16_t data_len;  /* data characters, excluding the block's own ID and length */
} tkm_tr31_opt;

/*
 * A key block header as typed values. Plain data: no pointers, safe to copy.
 * The one-character fields hold the header's ASCII characters ('B', 'T', ...);
 * the two-character fields are NUL-terminated.
 */
typedef struct tkm_tr31_header {
	char version;        /* 'A', 'B', 'C' or 'D' */
	char usage[3];       /* "B0", "K1", "P0", ... */
	char algorithm;      /* 'T' TDES, 'A' AES, ... */
	char mode;           /* mode of use: 'B', 'E', 'X', ... */
	char key_version[3]; /* "00" unused, "c1".."c9" component, else a version */
	char exportability;  /* 'E', 'N' or 'S' */
	char key_context;    /* '0' either, '1' storage only, '2' exchange only */
	char reserved;       /* '0' */
	size_t n_opt;
	tkm_tr31_opt opt[TKM_TR31_MAX_OPT];
	size_t opt_data_len;
	char opt_data[TKM_TR31_MAX_LEN]; /* not NUL-terminated */
} tkm_tr31_header;

/*
 * Where the parts of a key block of total_len characters are. The header is
 * characters [0, header_len); the encrypted payload is payload_len bytes,
 * hex-encoded from payload_off; the MAC is mac_len bytes, hex-encoded from
 * mac_off to the end. block_len is the cipher block size of the version.
 */
typedef struct tkm_tr31_layout {
	size_t total_len;
	size_t header_len;
	size_t payload_off;
	size_t payload_len;
	size_t mac_off;
	size_t mac_len;
	size_t block_len;
} tkm_tr31_layout;

/* A key check value from a KC, KP or PK optional block. */
typedef struct tkm_tr31_kcv {
	uint8_t algorithm; /* TKM_TR31_KCV_LEGACY or TKM_TR31_KCV_CMAC */
	uint8_t kcv[5];
	size_t len;
} tkm_tr31_kcv;

#define TKM_TR31_KCV_LEGACY 0 /* TDES: encrypt eight zero bytes */
#define TKM_TR31_KCV_CMAC   1 /* CMAC of a zero block (X9.24-1:2017, A.3) */

/*
 * The cipher block size and MAC length in bytes of version ('A'..'D').
 * TKM_E_BAD_REQUEST for any other version.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_version_params(char version, size_t *block_len, size_t *mac_len,
                                               char *why, size_t why_len);

/*
 * Parse the structure of the key block kb (kb_len characters, no NUL needed):
 * printable ASCII, known version, length field equal to kb_len, field
 * character sets, optional block lengths, PB last, header and payload aligned
 * to the cipher block, payload and MAC in upper-case hex. Fills *hdr and
 * *layout. Checks no semantic rule: call tkm_tr31_header_check() after the
 * MAC has been verified.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_decode(const char *kb, size_t kb_len, tkm_tr31_header *hdr,
                                       tkm_tr31_layout *layout, char *why, size_t why_len);

/*
 * Check hdr against the combinations X9.143 forbids: key usage vs algorithm
 * vs mode of use, exportability, key version, key context, optional block
 * IDs (known or numeric proprietary), duplicates, PB last, and the content
 * of KS, IK, KC, KP, PK, BI and HM. See docs/tr31.md for the full list.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_header_check(const tkm_tr31_header *hdr, char *why, size_t why_len);

/* Empty header: no optional blocks, key version "00", context and reserved '0'.
 * The caller sets version, usage, algorithm, mode and exportability. */
void tkm_tr31_header_clear(tkm_tr31_header *hdr);

/*
 * Append optional block id (two alphanumerics, not "PB") with data_len
 * printable characters. Refused when the header already holds id or a PB
 * block, or when there is no room.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_opt_add(tkm_tr31_header *hdr, const char *id, const char *data,
                                        size_t data_len, char *why, size_t why_len);

/* Append id with the upper-case hex of bin[0..bin_len) as its data (KS, IK). */
TKM_MUST_CHECK tkm_err tkm_tr31_opt_add_hex(tkm_tr31_header *hdr, const char *id,
                                            const uint8_t *bin, size_t bin_len, char *why,
                                            size_t why_len);

/* Append a KC, KP or PK block: two hex digits of algorithm, then the KCV. */
TKM_MUST_CHECK tkm_err tkm_tr31_opt_add_kcv(tkm_tr31_header *hdr, const char *id,
                                            const tkm_tr31_kcv *kcv, char *why, size_t why_len);

/*
 * Append the PB block that brings the header to a multiple of the version's
 * block size (nothing when it already is). Its data is the first characters
 * of fill (printable; fill_len must cover them), or '0's when fill is NULL.
 * hdr->version must be set. No optional block can follow.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_opt_add_pb(tkm_tr31_header *hdr, const char *fill, size_t fill_len,
                                           char *why, size_t why_len);

/* The optional block id in hdr, or NULL. Its data is tkm_tr31_opt_data(). */
const tkm_tr31_opt *tkm_tr31_opt_find(const tkm_tr31_header *hdr, const char *id);
const char *tkm_tr31_opt_data(const tkm_tr31_header *hdr, const tkm_tr31_opt *opt);

/* Parse the KC, KP or PK block id of hdr into *out. TKM_E_NOT_FOUND if absent. */
TKM_MUST_CHECK tkm_err tkm_tr31_opt_kcv(const tkm_tr31_header *hdr, const char *id,
                                        tkm_tr31_kcv *out, char *why, size_t why_len);

/*
 * Write the header of a key block that will carry key_len key bytes and
 * pad_len padding bytes: out[0..layout->header_len), no NUL, with the total
 * length field computed. Runs tkm_tr31_header_check() first. The header
 * must already be block-aligned (see tkm_tr31_opt_add_pb). Fills *layout so
 * that the crypto layer can append the hex payload and MAC.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_encode_header(const tkm_tr31_header *hdr, size_t key_len,
                                              size_t pad_len, char *out, size_t out_cap,
                                              tkm_tr31_layout *layout, char *why, size_t why_len);

/*
 * May a key of key_alg/key_len bytes ('T' TDES or 'A' AES) be wrapped in a
 * version key block under a KBPK of kbpk_alg/kbpk_len? TKM_OK, or
 * TKM_E_BAD_REQUEST when the KBPK does not fit the version, a length is not
 * a TDES/AES length, or the KBPK is weaker than the key.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_kbpk_ok(char version, char kbpk_alg, size_t kbpk_len, char key_alg,
                                        size_t key_len, char *why, size_t why_len);

/*
 * Length in bytes of the clear payload (2-byte key length in bits, key,
 * padding) for key_len/pad_len, after the checks of tkm_tr31_payload_parse.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_payload_len(char version, char algorithm, size_t key_len,
                                            size_t pad_len, size_t *out, char *why, size_t why_len);

/*
 * Lay out the clear payload in out (out_len must equal the payload length;
 * the caller gives locked memory, e.g. sodium_malloc): key length in bits,
 * big-endian, then key, then pad. Writes nothing on failure.
 */
TKM_MUST_CHECK tkm_err tkm_tr31_payload_build(char version, char algorithm, const uint8_t *key,
                                              size_t key_len, const uint8_t *pad, size_t pad_len,
                                              uint8_t *out, size_t out_len, char *why,
                                              size_t why_len);

/*
 * Read a decrypted clear payload: the key is payload[2..2 + *key_len).
 * Strict: whole cipher blocks, a bit length that is a multiple of 8 and fits,
 * a key length valid for algorithm ('T': 16 or 24; 'A': 16, 24 or 32), and
 * padding shorter than a block unless it hides the key length (payload of
 * the algorithm's largest key, X9.143 key length obfuscation).
 */
TKM_MUST_CHECK tkm_err tkm_tr31_payload_parse(char version, char algorithm, const uint8_t *payload,
                                              size_t payload_len, size_t *key_len, char *why,
                                              size_t why_len);

#endif /* TKM_TR31_H */
