/*
 * tkm_hsm_tr31.c - TR-31 / X9.143 key blocks, versions B and D: KBEK/KBAK
 * derivation, MAC and CBC encryption through the HSM, around the format
 * layer of tkm_tr31.c.
 *
 * Both versions use key derivation binding (TR-31:2018 A.3, X9.143 6.3):
 *   KBEK, KBAK = CMAC(KBPK, counter || usage || 00 || algorithm || bits)
 *   MAC        = CMAC(KBAK, header || clear payload), one cipher block
 *   payload    = CBC(KBEK, IV = MAC, clear payload)
 * with TDES-CMAC/TDES-CBC for B (8-byte MAC) and AES for D (16-byte MAC).
 *
 * The KBPK is unwrapped from its blob into a sign-only session object; the
 * derivation CMACs run with it inside the HSM. Their output (the KBEK and
 * KBAK bytes), the key being exported and the clear payload exist only in
 * sodium_malloc() memory, are wiped as soon as they are made into session
 * objects or encrypted, and never leave this file. Every session object is
 * destroyed before a call returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tkm_hsm.h"
#include "tkm_hsm_internal.h"
#include "tkm_hsm_tr31.h"
#include "tkm_tr31.h"

/* Derivation data: counter, key usage, separator, algorithm, length in bits. */
#define DERIV_LEN      8
#define DERIV_USE_ENC  0x0000
#define DERIV_USE_MAC  0x0001
#define DERIV_KEY_MAX  32 /* AES-256 */
#define DERIV_CMAC_MAX 16
#define PB_FILL_LEN    32

static const char hexdig[] = "0123456789ABCDEF";

/* The derivation data's algorithm code for a KBPK (TR-31:2018 A.3.1). */
static int deriv_alg(tkm_hsm_alg alg)
{
	switch (alg) {
	case TKM_HSM_TDES2:
		return 0x0000;
	case TKM_HSM_TDES3:
		return 0x0001;
	case TKM_HSM_AES128:
		return 0x0002;
	case TKM_HSM_AES192:
		return 0x0003;
	case TKM_HSM_AES256:
		return 0x0004;
	default:
		return -1;
	}
}

static bool alg_is_tdes(tkm_hsm_alg alg)
{
	return alg == TKM_HSM_TDES2 || alg == TKM_HSM_TDES3;
}

/* The header's algorithm character of a device key: 'T' or 'A'. */
static char alg_char(tkm_hsm_alg alg)
{
	return alg_is_tdes(alg) ? 'T' : 'A';
}

/* The device key algorithm of a payload key: 'T' 16/24 bytes, 'A' 16/24/32. */
static tkm_err alg_of(char algorithm, size_t len, tkm_hsm_alg *out, char *why, size_t why_len)
{
	if (algorithm == 'T' && (len == 16 || len == 24)) {
		*out = len == 16 ? TKM_HSM_TDES2 : TKM_HSM_TDES3;
		return TKM_OK;
	}
	if (algorithm == 'A' && (len == 16 || len == 24 || len == 32)) {
		*out = len == 16 ? TKM_HSM_AES128 : len == 24 ? TKM_HSM_AES192 : TKM_HSM_AES256;
		return TKM_OK;
	}
	return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
	                    "tkm imports only TDES and AES keys, not algorithm '%c' with %zu bytes",
	                    algorithm, len);
}

/* Does a KBPK of alg protect key blocks of version? B: TDES; D: AES. */
static tkm_err version_fits(char version, tkm_hsm_alg kbpk_alg, char *why, size_t why_len)
{
	if (version != 'B' && version != 'D') {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "tkm handles key block versions B and D, not '%c'", version);
	}
	if ((version == 'B') != alg_is_tdes(kbpk_alg)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "a version %c key block needs %s KBPK", version,
		                    version == 'B' ? "a TDES" : "an AES");
	}
	return TKM_OK;
}

/* Check a blob's unauthenticated header for a KBPK of version. */
static tkm_err kbpk_meta(const tkm_hsm_tr31_ref *kbpk, char version, tkm_hsm_blob_meta *meta,
                         char *why, size_t why_len)
{
	if (kbpk == NULL || tkm_hsm_blob_info(kbpk->blob, kbpk->blob_len, meta) != TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_CRYPTO, "the KBPK is not a tkm key blob");
	}
	if (meta->usage != TKM_HSM_USE_KBPK) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "the key given as KBPK is not a key block protection key");
	}
	return version_fits(version, meta->alg, why, why_len);
}

/*
 * Unwrap the KBPK into a sign-only session object (it runs nothing but the
 * derivation CMACs) and check it again from its authenticated header.
 */
static tkm_err kbpk_open(tkm_hsm *h, tkm_hsm_sess *s, const tkm_hsm_tr31_ref *kbpk, char version,
                         CK_OBJECT_HANDLE *obj, tkm_hsm_alg *alg, char *why, size_t why_len)
{
	tkm_hsm_blob_meta meta;
	tkm_err err;

	err = tkm_hsm_blob_unwrap(h, s, kbpk->blob, kbpk->blob_len, kbpk->owner, TKM_HSM_A_SIGN,
	                          obj, &meta, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (meta.usage != TKM_HSM_USE_KBPK) {
		tkm_hsm_obj_destroy(h, s, obj);
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "the key given as KBPK is not a key block protection key");
	}
	err = version_fits(version, meta.alg, why, why_len);
	if (err != TKM_OK) {
		tkm_hsm_obj_destroy(h, s, obj);
		return err;
	}
	*alg = meta.alg;
	return TKM_OK;
}

/*
 * Derive the KBEK (mac false) or KBAK (mac true) from the KBPK object, of
 * the KBPK's algorithm and length, into a session object with attrs. The
 * CMACs run in the HSM; their output is in locked memory only until
 * C_CreateObject has it.
 */
static tkm_err derive(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE kbpk, tkm_hsm_alg alg, bool mac,
                      unsigned attrs, CK_OBJECT_HANDLE *out, char *why, size_t why_len)
{
	const tkm_hsm_alg_info *ai = tkm_hsm_alg_sym(alg);
	int code = deriv_alg(alg);
	unsigned use = mac ? DERIV_USE_MAC : DERIV_USE_ENC;
	uint8_t data[DERIV_LEN];
	uint8_t *buf = NULL;
	size_t done = 0, n;
	tkm_err err = TKM_OK;

	*out = CK_INVALID_HANDLE;
	if (ai == NULL || code < 0) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "no KBEK/KBAK for this KBPK");
	}
	/* Whole CMAC blocks, then one spare block of room for the last CMAC. */
	buf = sodium_malloc(DERIV_KEY_MAX + DERIV_CMAC_MAX);
	if (buf == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory");
	}
	data[1] = (uint8_t)(use >> 8);
	data[2] = (uint8_t)use;
	data[3] = 0x00;
	data[4] = (uint8_t)((unsigned)code >> 8);
	data[5] = (uint8_t)code;
	data[6] = (uint8_t)((ai->len * 8) >> 8);
	data[7] = (uint8_t)(ai->len * 8);
	for (unsigned counter = 1; done < ai->len; counter++) {
		data[0] = (uint8_t)counter;
		err = tkm_hsm_cmac(h, s, kbpk, alg, data, sizeof(data), buf + done, ai->block, &n,
		                   why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
		done += n;
	}
	err = tkm_hsm_obj_create(h, s, alg, attrs, buf, ai->len, out, why, why_len);
out:
	sodium_free(buf); /* zeroes before freeing */
	return err;
}

/* Upper-case hex of in[0..len) into out[0..2 len). */
static void hex_put(const uint8_t *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 0x0f];
	}
}

/* Decode 2 len hex characters (upper case, checked by tkm_tr31_decode). */
static tkm_err hex_get(const char *in, size_t len, uint8_t *out, char *why, size_t why_len)
{
	size_t n = 0;

	if (sodium_hex2bin(out, len, in, 2 * len, NULL, &n, NULL) != 0 || n != len) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "the key block has a character that is not hex");
	}
	return TKM_OK;
}

/*
 * MAC = CMAC(KBAK, header || clear payload), one cipher block, computed in
 * the HSM; the message is assembled in locked memory since it holds the key.
 */
static tkm_err block_mac(tkm_hsm *h, tkm_hsm_sess *s, CK_OBJECT_HANDLE kbak, tkm_hsm_alg alg,
                         const char *header, size_t header_len, const uint8_t *payload,
                         size_t payload_len, uint8_t mac[static TKM_TR31_MAX_MAC], char *why,
                         size_t why_len)
{
	uint8_t *msg = NULL;
	size_t n;
	tkm_err err;

	if (header_len > TKM_TR31_MAX_LEN || payload_len > TKM_TR31_MAX_LEN) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "key block too long");
	}
	msg = sodium_malloc(header_len + payload_len);
	if (msg == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory");
	}
	memcpy(msg, header, header_len);
	memcpy(msg + header_len, payload, payload_len);
	err = tkm_hsm_cmac(h, s, kbak, alg, msg, header_len + payload_len, mac, TKM_TR31_MAX_MAC,
	                   &n, why, why_len);
	sodium_free(msg);
	return err;
}

/* Printable random filler for a PB block (X9.143: random, printable). */
static void pb_fill(char fill[static PB_FILL_LEN])
{
	static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	for (size_t i = 0; i < PB_FILL_LEN; i++) {
		fill[i] = alnum[randombytes_uniform(sizeof(alnum) - 1)];
	}
}

/*
 * The tkm KCV method for a TR-31 KCV algorithm on a key of alg: legacy is
 * E(K, zero block) (TDES or AES), CMAC is AES-CMAC of a zero block. TDES CMAC
 * check values are not computed by tkm_hsm and are refused.
 */
static tkm_err kcv_method(uint8_t tr31_alg, tkm_hsm_alg alg, tkm_hsm_kcv_method *out, char *why,
                          size_t why_len)
{
	if (tr31_alg == TKM_TR31_KCV_LEGACY) {
		*out = alg_is_tdes(alg) ? TKM_HSM_KCV_TDES : TKM_HSM_KCV_AES_ECB;
		return TKM_OK;
	}
	if (tr31_alg == TKM_TR31_KCV_CMAC && !alg_is_tdes(alg)) {
		*out = TKM_HSM_KCV_AES_CMAC;
		return TKM_OK;
	}
	return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
	                    "CMAC check values of TDES keys are not supported");
}

/*
 * When hdr carries the optional block id ("KC" for the key, "KP" for the
 * KBPK), its check value must be the one the HSM computes for ref: a key
 * block never states a KCV that its key does not have. Takes its own
 * session, so the caller must not hold one.
 */
static tkm_err kcv_block_check(tkm_hsm *h, const tkm_tr31_header *hdr, const char *id,
                               const tkm_hsm_tr31_ref *ref, char *why, size_t why_len)
{
	tkm_hsm_blob_meta meta;
	tkm_hsm_kcv_method method = TKM_HSM_KCV_TDES;
	tkm_tr31_kcv stated;
	tkm_hsm_kcv got;
	tkm_err err;

	err = tkm_tr31_opt_kcv(hdr, id, &stated, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return TKM_OK;
	}
	if (err != TKM_OK) {
		return err;
	}
	if (tkm_hsm_blob_info(ref->blob, ref->blob_len, &meta) != TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_CRYPTO, "not a tkm key blob");
	}
	err = kcv_method(stated.algorithm, meta.alg, &method, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_blob_kcv(h, ref->blob, ref->blob_len, ref->owner, method, stated.len,
		                       &got, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	if (sodium_memcmp(got.b, stated.kcv, stated.len) != 0) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "the %s block's check value is not the %s's", id,
		                    strcmp(id, "KC") == 0 ? "key" : "KBPK");
	}
	return TKM_OK;
}

tkm_err tkm_hsm_tr31_export(tkm_hsm *h, const tkm_hsm_tr31_ref *kbpk, const tkm_hsm_tr31_ref *key,
                            const tkm_tr31_header *hdr, const uint8_t *pad, size_t pad_len,
                            char *out, size_t out_cap, size_t *out_len, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE kbpk_obj = CK_INVALID_HANDLE, kbek = CK_INVALID_HANDLE,
	                 kbak = CK_INVALID_HANDLE;
	const tkm_hsm_alg_info *kbpk_ai, *key_ai;
	tkm_hsm_blob_meta kbpk_m, key_m, key_auth;
	tkm_tr31_header *th = NULL;
	tkm_tr31_layout layout;
	tkm_hsm_alg kbpk_alg;
	tkm_hsm_sess *s = NULL;
	uint8_t *keybuf = NULL, *padbuf = NULL, *plain = NULL, *ct = NULL;
	uint8_t mac[TKM_TR31_MAX_MAC];
	size_t key_len = 0, plain_len = 0, block, mac_len;
	char fill[PB_FILL_LEN];
	tkm_err err;

	*out_len = 0;
	if (hdr == NULL || key == NULL || out == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "bad key block export arguments");
	}
	/* Every check that needs no key bytes comes first, on the blobs' headers. */
	err = kbpk_meta(kbpk, hdr->version, &kbpk_m, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (tkm_hsm_blob_info(key->blob, key->blob_len, &key_m) != TKM_OK) {
		err = tkm_why_fail(why, why_len, TKM_E_CRYPTO, "the key is not a tkm key blob");
		goto out;
	}
	kbpk_ai = tkm_hsm_alg_sym(kbpk_m.alg);
	key_ai = tkm_hsm_alg_sym(key_m.alg);
	if (hdr->algorithm != alg_char(key_m.alg)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "the header's algorithm '%c' is not the key's (%s)",
		                   hdr->algorithm, key_ai->name);
		goto out;
	}
	err = tkm_tr31_kbpk_ok(hdr->version, alg_char(kbpk_m.alg), kbpk_ai->len,
	                       alg_char(key_m.alg), key_ai->len, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = kcv_block_check(h, hdr, "KC", key, why, why_len);
	if (err == TKM_OK) {
		err = kcv_block_check(h, hdr, "KP", kbpk, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_tr31_version_params(hdr->version, &block, &mac_len, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	if (pad == NULL && pad_len == 0) {
		pad_len = (block - (2 + key_ai->len) % block) % block;
	}
	err = tkm_tr31_payload_len(hdr->version, hdr->algorithm, key_ai->len, pad_len, &plain_len,
	                           why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	th = malloc(sizeof(*th));
	if (th == NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(th, hdr, sizeof(*th));
	if (tkm_tr31_opt_find(th, "PB") == NULL) {
		pb_fill(fill);
		err = tkm_tr31_opt_add_pb(th, fill, sizeof(fill), why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
	}
	err = tkm_tr31_encode_header(th, key_ai->len, pad_len, out, out_cap, &layout, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (layout.total_len > out_cap || layout.payload_len != plain_len ||
	    layout.mac_len != mac_len) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                   "no room for a %zu-character key block", layout.total_len);
		goto out;
	}

	keybuf = sodium_malloc(DERIV_KEY_MAX);
	padbuf = sodium_malloc(pad_len > 0 ? pad_len : 1);
	plain = sodium_malloc(plain_len);
	ct = malloc(plain_len);
	if (keybuf == NULL || padbuf == NULL || plain == NULL || ct == NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of memory");
		goto out;
	}
	if (pad != NULL) {
		memcpy(padbuf, pad, pad_len);
	} else {
		randombytes_buf(padbuf, pad_len);
	}
	err = tkm_hsm_sess_get(h, &s, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = kbpk_open(h, s, kbpk, hdr->version, &kbpk_obj, &kbpk_alg, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (kbpk_alg != kbpk_m.alg) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_CRYPTO, "the KBPK blob changed during export");
		goto out;
	}
	err = tkm_hsm_blob_extract(h, s, key->blob, key->blob_len, key->owner, keybuf,
	                           DERIV_KEY_MAX, &key_len, &key_auth, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (key_auth.alg != key_m.alg || key_len != key_ai->len) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_CRYPTO, "the key blob changed during export");
		goto out;
	}
	err = tkm_tr31_payload_build(hdr->version, hdr->algorithm, keybuf, key_len, padbuf, pad_len,
	                             plain, plain_len, why, why_len);
	sodium_memzero(keybuf, DERIV_KEY_MAX);
	if (err != TKM_OK) {
		goto out;
	}
	err = derive(h, s, kbpk_obj, kbpk_alg, true, TKM_HSM_A_SIGN, &kbak, why, why_len);
	if (err == TKM_OK) {
		err =
		    derive(h, s, kbpk_obj, kbpk_alg, false, TKM_HSM_A_ENCRYPT, &kbek, why, why_len);
	}
	if (err == TKM_OK) {
		err = block_mac(h, s, kbak, kbpk_alg, out, layout.header_len, plain, plain_len, mac,
		                why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_cbc(h, s, kbek, kbpk_alg, true, mac, plain, plain_len, ct, why,
		                  why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	hex_put(ct, plain_len, out + layout.payload_off);
	hex_put(mac, mac_len, out + layout.mac_off);
	*out_len = layout.total_len;
out:
	tkm_hsm_obj_destroy(h, s, &kbek);
	tkm_hsm_obj_destroy(h, s, &kbak);
	tkm_hsm_obj_destroy(h, s, &kbpk_obj);
	tkm_hsm_sess_put(h, s);
	sodium_free(keybuf);
	sodium_free(padbuf);
	sodium_free(plain);
	free(ct);
	free(th);
	sodium_memzero(mac, sizeof(mac));
	return err;
}

/* Import up to the new blob; the caller checks the KC and KP blocks. */
static tkm_err import_block(tkm_hsm *h, const tkm_hsm_tr31_ref *kbpk, const char *kb, size_t kb_len,
                            tkm_hsm_usage usage, const char *owner,
                            uint8_t blob[static TKM_HSM_BLOB_MAX], size_t *blob_len,
                            tkm_hsm_kcv *kcv, tkm_tr31_header *hdr, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE kbpk_obj = CK_INVALID_HANDLE, kbek = CK_INVALID_HANDLE,
	                 kbak = CK_INVALID_HANDLE, key = CK_INVALID_HANDLE;
	tkm_hsm_blob_meta kbpk_m;
	tkm_tr31_layout layout;
	tkm_hsm_alg kbpk_alg = 0, key_alg = 0;
	tkm_hsm_sess *s = NULL;
	uint8_t *ct = NULL, *plain = NULL;
	uint8_t mac[TKM_TR31_MAX_MAC], got[TKM_TR31_MAX_MAC];
	size_t key_len;
	tkm_err err;

	*blob_len = 0;
	memset(kcv, 0, sizeof(*kcv));
	if (hdr == NULL || kb == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "bad key block import arguments");
	}
	if (usage < TKM_HSM_USE_KBPK || usage > TKM_HSM_USE_KEK) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "unknown key usage %d",
		                    (int)usage);
	}
	err = tkm_hsm_owner_check(owner, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	/* Structure only: where the header, payload and MAC are. */
	err = tkm_tr31_decode(kb, kb_len, hdr, &layout, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = kbpk_meta(kbpk, hdr->version, &kbpk_m, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	ct = malloc(layout.payload_len);
	plain = sodium_malloc(layout.payload_len);
	if (ct == NULL || plain == NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of memory");
		goto out;
	}
	err = hex_get(kb + layout.payload_off, layout.payload_len, ct, why, why_len);
	if (err == TKM_OK) {
		err = hex_get(kb + layout.mac_off, layout.mac_len, mac, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_sess_get(h, &s, why, why_len);
	}
	if (err == TKM_OK) {
		err = kbpk_open(h, s, kbpk, hdr->version, &kbpk_obj, &kbpk_alg, why, why_len);
	}
	if (err == TKM_OK && kbpk_alg != kbpk_m.alg) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_CRYPTO, "the KBPK blob changed during import");
	}
	if (err == TKM_OK) {
		err =
		    derive(h, s, kbpk_obj, kbpk_alg, false, TKM_HSM_A_DECRYPT, &kbek, why, why_len);
	}
	if (err == TKM_OK) {
		err = derive(h, s, kbpk_obj, kbpk_alg, true, TKM_HSM_A_SIGN, &kbak, why, why_len);
	}
	/*
	 * The MAC covers the clear payload, so the payload is decrypted (in the
	 * HSM, into locked memory) before the MAC can be checked; nothing in it
	 * or in the header is read until the MAC has verified.
	 */
	if (err == TKM_OK) {
		err = tkm_hsm_cbc(h, s, kbek, kbpk_alg, false, mac, ct, layout.payload_len, plain,
		                  why, why_len);
	}
	if (err == TKM_OK) {
		err = block_mac(h, s, kbak, kbpk_alg, kb, layout.header_len, plain,
		                layout.payload_len, got, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	if (sodium_memcmp(got, mac, layout.mac_len) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_CRYPTO,
		                   "the key block's MAC does not verify: wrong KBPK, or the block "
		                   "was changed");
		goto out;
	}
	err = tkm_tr31_header_check(hdr, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_tr31_payload_parse(hdr->version, hdr->algorithm, plain, layout.payload_len,
	                             &key_len, why, why_len);
	if (err == TKM_OK) {
		err = alg_of(hdr->algorithm, key_len, &key_alg, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_obj_create(h, s, key_alg, TKM_HSM_A_KCV | TKM_HSM_A_EXTRACTABLE,
		                         plain + 2, key_len, &key, why, why_len);
	}
	sodium_memzero(plain, layout.payload_len);
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_spec(key_alg, tkm_hsm_kcv_default(key_alg), TKM_HSM_KCV_MAX, kcv,
		                       why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, key, key_alg, false, kcv, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_blob_make(h, s, key, key_alg, usage, kcv, owner, blob, blob_len, why,
		                        why_len);
	}
out:
	tkm_hsm_obj_destroy(h, s, &key);
	tkm_hsm_obj_destroy(h, s, &kbek);
	tkm_hsm_obj_destroy(h, s, &kbak);
	tkm_hsm_obj_destroy(h, s, &kbpk_obj);
	tkm_hsm_sess_put(h, s);
	sodium_free(plain);
	free(ct);
	sodium_memzero(got, sizeof(got));
	if (err != TKM_OK) {
		*blob_len = 0;
		memset(kcv, 0, sizeof(*kcv));
		tkm_tr31_header_clear(hdr);
	}
	return err;
}

tkm_err tkm_hsm_tr31_import(tkm_hsm *h, const tkm_hsm_tr31_ref *kbpk, const char *kb, size_t kb_len,
                            tkm_hsm_usage usage, const char *owner,
                            uint8_t blob[static TKM_HSM_BLOB_MAX], size_t *blob_len,
                            tkm_hsm_kcv *kcv, tkm_tr31_header *hdr, char *why, size_t why_len)
{
	tkm_err err;

	err =
	    import_block(h, kbpk, kb, kb_len, usage, owner, blob, blob_len, kcv, hdr, why, why_len);
	if (err == TKM_OK) {
		const tkm_hsm_tr31_ref key = {blob, *blob_len, owner};
		err = kcv_block_check(h, hdr, "KC", &key, why, why_len);
		if (err == TKM_OK) {
			err = kcv_block_check(h, hdr, "KP", kbpk, why, why_len);
		}
	}
	if (err != TKM_OK) {
		sodium_memzero(blob, TKM_HSM_BLOB_MAX);
		*blob_len = 0;
		memset(kcv, 0, sizeof(*kcv));
		tkm_tr31_header_clear(hdr);
	}
	return err;
}

tkm_err tkm_hsm_tr31_derived_kcv(tkm_hsm *h, const tkm_hsm_tr31_ref *kbpk, char version, bool mac,
                                 tkm_hsm_kcv *kcv, char *why, size_t why_len)
{
	CK_OBJECT_HANDLE kbpk_obj = CK_INVALID_HANDLE, obj = CK_INVALID_HANDLE;
	tkm_hsm_blob_meta meta;
	tkm_hsm_alg alg = 0;
	tkm_hsm_sess *s = NULL;
	tkm_err err;

	memset(kcv, 0, sizeof(*kcv));
	err = kbpk_meta(kbpk, version, &meta, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_sess_get(h, &s, why, why_len);
	}
	if (err == TKM_OK) {
		err = kbpk_open(h, s, kbpk, version, &kbpk_obj, &alg, why, why_len);
	}
	if (err == TKM_OK) {
		err = derive(h, s, kbpk_obj, alg, mac, TKM_HSM_A_KCV, &obj, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_spec(alg, tkm_hsm_kcv_default(alg), TKM_HSM_KCV_MAX, kcv, why,
		                       why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_kcv_obj(h, s, obj, alg, false, kcv, why, why_len);
	}
	tkm_hsm_obj_destroy(h, s, &obj);
	tkm_hsm_obj_destroy(h, s, &kbpk_obj);
	tkm_hsm_sess_put(h, s);
	if (err != TKM_OK) {
		memset(kcv, 0, sizeof(*kcv));
	}
	return err;
}
