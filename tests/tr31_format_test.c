/*
 * tr31_format_test.c - the TR-31 / X9.143 format layer (hsm/tkm_tr31.c):
 * every published header of shared/vectors/payment-crypto.json parses to its
 * fields and is rebuilt byte for byte, the clear payload round-trips, and
 * the structures and combinations the standard forbids are refused.
 *
 * No cryptography here: MACs and encrypted payloads are opaque hex.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tkm_test.h"
#include "tkm_tr31.h"
#include "vectors/tr31_format.h"

#define NCASES (sizeof(tr31_fmt_cases) / sizeof(tr31_fmt_cases[0]))

static char why[256];

/* Expect a refusal with err whose why names substr. */
static void expect_err(tkm_err got, tkm_err want, const char *substr, const char *what)
{
	CHECK_EQ_INT(got, want);
	if (got != want || (substr != NULL && strstr(why, substr) == NULL)) {
		fprintf(stderr, "  case: %s (why: \"%s\", expected to mention \"%s\")\n", what, why,
		        substr != NULL ? substr : "");
	}
	if (substr != NULL) {
		CHECK(strstr(why, substr) != NULL);
	}
}

static tkm_err decode_str(const char *kb, tkm_tr31_header *hdr, tkm_tr31_layout *lay)
{
	why[0] = '\0';
	return tkm_tr31_decode(kb, strlen(kb), hdr, lay, why, sizeof(why));
}

static tkm_err check_hdr(const tkm_tr31_header *hdr)
{
	why[0] = '\0';
	return tkm_tr31_header_check(hdr, why, sizeof(why));
}

static size_t hex_len(const char *hex)
{
	return hex != NULL ? strlen(hex) / 2 : 0;
}

/* kcv bytes as upper-case hex, in a static buffer. */
static const char *kcv_hex(const tkm_tr31_kcv *kcv)
{
	static char buf[11];

	if (sodium_bin2hex(buf, sizeof(buf), kcv->kcv, kcv->len) == NULL) {
		return "";
	}
	for (char *p = buf; *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'f') {
			*p = (char)(*p - 'a' + 'A');
		}
	}
	return buf;
}

static bool opt_is(const tkm_tr31_header *hdr, const char *id, const char *data)
{
	const tkm_tr31_opt *opt = tkm_tr31_opt_find(hdr, id);

	return opt != NULL && opt->data_len == strlen(data) &&
	       sodium_memcmp(tkm_tr31_opt_data(hdr, opt), data, opt->data_len) == 0;
}

/* Clear payload of a published case through sodium_malloc'd buffers. */
static void payload_roundtrip(const struct tr31_fmt_case *c)
{
	size_t key_len = hex_len(c->key_hex), pad_len = hex_len(c->pad_hex), total, got_len = 0;
	uint8_t *key = NULL, *pad = NULL, *payload = NULL;
	tkm_err err;

	key = sodium_malloc(key_len);
	pad = sodium_malloc(pad_len > 0 ? pad_len : 1);
	CHECK(key != NULL && pad != NULL);
	if (key == NULL || pad == NULL) {
		goto out;
	}
	CHECK(sodium_hex2bin(key, key_len, c->key_hex, strlen(c->key_hex), NULL, NULL, NULL) == 0);
	CHECK(sodium_hex2bin(pad, pad_len, c->pad_hex, strlen(c->pad_hex), NULL, NULL, NULL) == 0);

	err = tkm_tr31_payload_len(c->version, c->algorithm, key_len, pad_len, &total, why,
	                           sizeof(why));
	if (c->algorithm == 'T' && key_len == 8) {
		/* Single-length DES in a TDES block (psec's version A/C samples). */
		expect_err(err, TKM_E_BAD_REQUEST, "single-length", c->id);
		goto out;
	}
	CHECK_EQ_INT(err, TKM_OK);
	CHECK_EQ_INT(total, c->payload_len);
	if (err != TKM_OK) {
		fprintf(stderr, "  payload of %s: %s\n", c->id, why);
		goto out;
	}
	payload = sodium_malloc(total);
	CHECK(payload != NULL);
	if (payload == NULL) {
		goto out;
	}
	CHECK_EQ_INT(tkm_tr31_payload_build(c->version, c->algorithm, key, key_len, pad, pad_len,
	                                    payload, total, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT((payload[0] << 8) | payload[1], key_len * 8);
	CHECK(sodium_memcmp(payload + 2, key, key_len) == 0);
	CHECK(sodium_memcmp(payload + 2 + key_len, pad, pad_len) == 0);
	CHECK_EQ_INT(tkm_tr31_payload_parse(c->version, c->algorithm, payload, total, &got_len, why,
	                                    sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(got_len, key_len);
	/* A buffer of the wrong size is a caller bug and nothing is written. */
	CHECK_EQ_INT(tkm_tr31_payload_build(c->version, c->algorithm, key, key_len, pad, pad_len,
	                                    payload, total - 1, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
out:
	sodium_free(payload);
	sodium_free(pad);
	sodium_free(key);
}

/* Every published case: fields, optional blocks, layout, rebuild, payload. */
static void test_vectors(void)
{
	static tkm_tr31_header hdr;
	static char out[TKM_TR31_MAX_LEN];
	tkm_tr31_layout lay, lay2;
	size_t n_bd = 0, n_rebuilt = 0;

	for (size_t i = 0; i < NCASES; i++) {
		const struct tr31_fmt_case *c = &tr31_fmt_cases[i];
		size_t kb_len = strlen(c->key_block), key_len, pad_len;
		tkm_tr31_kcv kcv;
		tkm_err err;

		err = decode_str(c->key_block, &hdr, &lay);
		if (c->version == 'E') {
			/* ISO 20038 version E is outside tkm's A-D. */
			expect_err(err, TKM_E_BAD_REQUEST, "ISO 20038", c->id);
			continue;
		}
		CHECK_EQ_INT(err, TKM_OK);
		if (err != TKM_OK) {
			fprintf(stderr, "  %s: %s\n", c->id, why);
			continue;
		}
		CHECK_EQ_INT(hdr.version, c->version);
		CHECK_STR(hdr.usage, c->usage);
		CHECK_EQ_INT(hdr.algorithm, c->algorithm);
		CHECK_EQ_INT(hdr.mode, c->mode);
		CHECK_STR(hdr.key_version, c->key_version);
		CHECK_EQ_INT(hdr.exportability, c->exportability);
		CHECK_EQ_INT(hdr.key_context, '0');
		CHECK_EQ_INT(hdr.reserved, '0');
		CHECK_EQ_INT(hdr.n_opt, c->n_opt);
		for (size_t k = 0; k < c->n_opt && k < 4; k++) {
			CHECK_STR(hdr.opt[k].id, c->opts[k].id);
			CHECK(opt_is(&hdr, c->opts[k].id, c->opts[k].data));
		}
		CHECK_EQ_INT(lay.total_len, kb_len);
		CHECK_EQ_INT(lay.header_len, c->header_len);
		CHECK_EQ_INT(lay.payload_off, c->header_len);
		CHECK_EQ_INT(lay.payload_len, c->payload_len);
		CHECK_EQ_INT(lay.mac_off, c->header_len + 2 * c->payload_len);
		CHECK_EQ_INT(lay.mac_len, c->version == 'D' ? 16 : c->version == 'B' ? 8 : 4);
		CHECK_EQ_INT(lay.block_len, c->version == 'D' ? 16 : 8);
		CHECK_EQ_INT(lay.mac_off + 2 * lay.mac_len, kb_len);

		/* What the vectors say about the optional blocks. */
		if (c->out_ks != NULL) {
			CHECK(opt_is(&hdr, "KS", c->out_ks));
		}
		if (c->out_ts != NULL) {
			CHECK(opt_is(&hdr, "TS", c->out_ts));
		}
		if (c->out_kc_kcv != NULL) {
			CHECK_EQ_INT(tkm_tr31_opt_kcv(&hdr, "KC", &kcv, why, sizeof(why)), TKM_OK);
			CHECK_STR(kcv_hex(&kcv), c->out_kc_kcv);
		}
		if (c->out_kp_kcv != NULL) {
			CHECK_EQ_INT(tkm_tr31_opt_kcv(&hdr, "KP", &kcv, why, sizeof(why)), TKM_OK);
			CHECK_STR(kcv_hex(&kcv), c->out_kp_kcv);
		}

		/* Every published header is one the standard allows. */
		err = check_hdr(&hdr);
		CHECK_EQ_INT(err, TKM_OK);
		if (err != TKM_OK) {
			fprintf(stderr, "  %s: %s\n", c->id, why);
		}

		/* Rebuild the header from the parsed struct with the published lengths. */
		key_len = c->key_hex != NULL ? hex_len(c->key_hex) : 16;
		pad_len = c->pad_hex != NULL ? hex_len(c->pad_hex) : c->payload_len - 2 - key_len;
		memset(out, 0, sizeof(out));
		err = tkm_tr31_encode_header(&hdr, key_len, pad_len, out, sizeof(out), &lay2, why,
		                             sizeof(why));
		if (c->algorithm == 'T' && key_len == 8) {
			expect_err(err, TKM_E_BAD_REQUEST, "single DES", c->id);
		} else {
			CHECK_EQ_INT(err, TKM_OK);
			CHECK(sodium_memcmp(out, c->key_block, c->header_len) == 0);
			CHECK(sodium_memcmp(&lay, &lay2, sizeof(lay)) == 0);
			if (err == TKM_OK && sodium_memcmp(out, c->key_block, c->header_len) == 0) {
				n_rebuilt++;
			} else {
				fprintf(stderr, "  rebuild %s: %s\n", c->id, why);
			}
			if (c->version == 'B' || c->version == 'D') {
				n_bd++;
			}
		}
		if (c->key_hex != NULL && c->pad_hex != NULL) {
			payload_roundtrip(c);
		}
	}
	/*
	 * 46 cases: one of version E (refused) and two single-DES samples of
	 * versions A/C (the builder refuses them); the other 43 are rebuilt, 28 of
	 * them of version B or D.
	 */
	CHECK_EQ_INT(NCASES, 46);
	CHECK_EQ_INT(n_rebuilt, NCASES - 3);
	CHECK_EQ_INT(n_bd, 28);
	printf("tr31 vectors: %zu cases, %zu headers rebuilt byte for byte (%zu of version B/D)\n",
	       NCASES, n_rebuilt, n_bd);
}

static const struct tr31_fmt_case *find_case(const char *id)
{
	for (size_t i = 0; i < NCASES; i++) {
		if (strcmp(tr31_fmt_cases[i].id, id) == 0) {
			return &tr31_fmt_cases[i];
		}
	}
	fprintf(stderr, "no vector %s\n", id);
	abort();
}

static void set_fields(tkm_tr31_header *hdr, char version, const char *usage, char alg, char mode,
                       const char *kv, char exp)
{
	tkm_tr31_header_clear(hdr);
	hdr->version = version;
	memcpy(hdr->usage, usage, 3);
	hdr->algorithm = alg;
	hdr->mode = mode;
	memcpy(hdr->key_version, kv, 3);
	hdr->exportability = exp;
}

/* Encode hdr for key_len/pad_len and compare with the published header of id. */
static void expect_header(const tkm_tr31_header *hdr, size_t key_len, size_t pad_len,
                          const char *id)
{
	static char out[TKM_TR31_MAX_LEN];
	const struct tr31_fmt_case *c = find_case(id);
	tkm_tr31_layout lay;
	tkm_err err;

	err =
	    tkm_tr31_encode_header(hdr, key_len, pad_len, out, sizeof(out), &lay, why, sizeof(why));
	CHECK_EQ_INT(err, TKM_OK);
	CHECK_EQ_INT(lay.header_len, c->header_len);
	CHECK_EQ_INT(lay.total_len, strlen(c->key_block));
	CHECK(sodium_memcmp(out, c->key_block, c->header_len) == 0);
	if (err != TKM_OK || sodium_memcmp(out, c->key_block, c->header_len) != 0) {
		fprintf(stderr, "  build %s: %s\n  got  %.*s\n  want %.*s\n", id, why,
		        (int)lay.header_len, out, (int)c->header_len, c->key_block);
	}
}

/* Headers built from typed values, not from a parse, match the vectors. */
static void test_build(void)
{
	static tkm_tr31_header hdr;
	static const uint8_t iksn10[] = {0x00, 0x60, 0x4B, 0x12, 0x0F,
	                                 0x92, 0x92, 0x80, 0x00, 0x00};
	static const uint8_t iksn_ff[] = {0xFF, 0xFF, 0x00, 0xA0, 0x20,
	                                  0x00, 0x01, 0xE0, 0x00, 0x00};
	static char out[TKM_TR31_MAX_LEN];
	const struct tr31_fmt_case *ct;
	tkm_tr31_kcv kcv;
	tkm_tr31_layout lay;

	/* TR-31:2018 A.7.3.2: B, BDK with a 10-byte KSN, aligned without PB. */
	set_fields(&hdr, 'B', "B0", 'T', 'X', "12", 'S');
	CHECK_EQ_INT(tkm_tr31_opt_add_hex(&hdr, "KS", iksn10, sizeof(iksn10), why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_tr31_opt_add_pb(&hdr, NULL, 0, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(hdr.n_opt, 1);
	expect_header(&hdr, 16, 6, "tr31-psec-B0104B0TX12S0100-4B433627");

	/* Version A, 8-byte KSN: 36 characters, so an empty PB brings it to 40. */
	set_fields(&hdr, 'A', "P0", 'T', 'E', "12", 'E');
	CHECK_EQ_INT(tkm_tr31_opt_add_hex(&hdr, "KS", iksn10, 8, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_opt_add_pb(&hdr, NULL, 0, why, sizeof(why)), TKM_OK);
	CHECK(opt_is(&hdr, "PB", ""));
	expect_header(&hdr, 16, 14, "tr31-psec-A0112P0TE12E0200-8B2C8CD7");

	/* X9.143:2021 8.2: KS label, TS, zero-filled PB to 64 characters. */
	set_fields(&hdr, 'D', "C0", 'A', 'V', "A1", 'N');
	CHECK_EQ_INT(tkm_tr31_opt_add(&hdr, "KS", "VM9A", 4, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_opt_add(&hdr, "TS", "2018-06-18T20:42:39.22", 22, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_tr31_opt_add_pb(&hdr, "00000000000000000000", 20, why, sizeof(why)),
	             TKM_OK);
	expect_header(&hdr, 32, 14, "tr31-warthog-test_x9_143_2021_aes_keyblock_8_2");

	/* openemv decode test 4: KS, legacy KC and KP. */
	set_fields(&hdr, 'B', "B1", 'T', 'X', "00", 'N');
	CHECK_EQ_INT(tkm_tr31_opt_add_hex(&hdr, "KS", iksn_ff, sizeof(iksn_ff), why, sizeof(why)),
	             TKM_OK);
	kcv = (tkm_tr31_kcv){.algorithm = TKM_TR31_KCV_LEGACY, .kcv = {0x01, 0x69, 0xE3}, .len = 3};
	CHECK_EQ_INT(tkm_tr31_opt_add_kcv(&hdr, "KC", &kcv, why, sizeof(why)), TKM_OK);
	kcv = (tkm_tr31_kcv){.algorithm = TKM_TR31_KCV_LEGACY, .kcv = {0xEC, 0xAD, 0x62}, .len = 3};
	CHECK_EQ_INT(tkm_tr31_opt_add_kcv(&hdr, "KP", &kcv, why, sizeof(why)), TKM_OK);
	expect_header(&hdr, 16, 6, "tr31-decode-test4");

	/* X9.143:2021 8.5: a 1280-character CT takes the extended length form. */
	ct = find_case("tr31-openemv-test17-ascii");
	set_fields(&hdr, 'D', "S0", 'R', 'S', "00", 'N');
	CHECK_EQ_INT(tkm_tr31_opt_add(&hdr, "CT", ct->opts[0].data, strlen(ct->opts[0].data), why,
	                              sizeof(why)),
	             TKM_OK);
	kcv = (tkm_tr31_kcv){
	    .algorithm = TKM_TR31_KCV_CMAC, .kcv = {0xD7, 0x7F, 0x00, 0x77, 0x24}, .len = 5};
	CHECK_EQ_INT(tkm_tr31_opt_add_kcv(&hdr, "KP", &kcv, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_opt_add(&hdr, "TS", "20200818221218Z", 15, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_opt_add_pb(&hdr, NULL, 0, why, sizeof(why)), TKM_OK);
	expect_header(&hdr, 1192, 6, "tr31-openemv-test17-ascii");

	/* An initial AES DUKPT key with IK and a CMAC KC round-trips. */
	{
		static tkm_tr31_header back;
		static const uint8_t ikid[] = {0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56};
		tkm_tr31_layout lay2;
		char kb[TKM_TR31_MAX_LEN + 1];

		set_fields(&hdr, 'D', "B1", 'A', 'X', "00", 'E');
		CHECK_EQ_INT(tkm_tr31_opt_add_hex(&hdr, "IK", ikid, sizeof(ikid), why, sizeof(why)),
		             TKM_OK);
		kcv = (tkm_tr31_kcv){
		    .algorithm = TKM_TR31_KCV_CMAC, .kcv = {1, 2, 3, 4, 5}, .len = 5};
		CHECK_EQ_INT(tkm_tr31_opt_add_kcv(&hdr, "KC", &kcv, why, sizeof(why)), TKM_OK);
		CHECK_EQ_INT(tkm_tr31_opt_add_pb(&hdr, "QWERTYUIOPASDFGH", 16, why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(
		    tkm_tr31_encode_header(&hdr, 16, 14, out, sizeof(out), &lay, why, sizeof(why)),
		    TKM_OK);
		CHECK_EQ_INT(lay.header_len, 64);
		CHECK_EQ_INT(lay.total_len, 160);
		CHECK(sodium_memcmp(
		          out, "D0160B1AX00E0300IK141234567890123456KC10010102030405PB0CQWERTYUI",
		          64) == 0);
		/* Give it a zero payload and MAC and read it back. */
		memcpy(kb, out, lay.header_len);
		memset(kb + lay.header_len, '0', lay.total_len - lay.header_len);
		kb[lay.total_len] = '\0';
		CHECK_EQ_INT(decode_str(kb, &back, &lay2), TKM_OK);
		CHECK_EQ_INT(check_hdr(&back), TKM_OK);
		CHECK(sodium_memcmp(&lay, &lay2, sizeof(lay)) == 0);
		CHECK(opt_is(&back, "IK", "1234567890123456"));
		CHECK_EQ_INT(tkm_tr31_opt_kcv(&back, "KC", &kcv, why, sizeof(why)), TKM_OK);
		CHECK_EQ_INT(kcv.algorithm, TKM_TR31_KCV_CMAC);
		CHECK_STR(kcv_hex(&kcv), "0102030405");
		CHECK_EQ_INT(tkm_tr31_opt_kcv(&back, "KP", &kcv, why, sizeof(why)),
		             TKM_E_NOT_FOUND);
	}

	/* Builder refusals. */
	set_fields(&hdr, 'D', "P0", 'A', 'E', "00", 'E');
	CHECK_EQ_INT(tkm_tr31_opt_add(&hdr, "KS", "ABCD", 4, why, sizeof(why)), TKM_OK);
	expect_err(tkm_tr31_encode_header(&hdr, 16, 14, out, sizeof(out), &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "add a PB block", "unaligned header");
	expect_err(tkm_tr31_opt_add(&hdr, "KS", "EFGH", 4, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "already present", "duplicate add");
	expect_err(tkm_tr31_opt_add(&hdr, "PB", "00", 2, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "tkm_tr31_opt_add_pb", "PB by opt_add");
	expect_err(tkm_tr31_opt_add(&hdr, "L-", "x", 1, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "alphanumerics", "bad id");
	expect_err(tkm_tr31_opt_add(&hdr, "LB", "a\tb", 3, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "printable", "non-printable data");
	expect_err(tkm_tr31_opt_add_pb(&hdr, "12", 2, why, sizeof(why)), TKM_E_INVALID_ARG,
	           "fill characters", "short fill");
	CHECK_EQ_INT(tkm_tr31_opt_add_pb(&hdr, NULL, 0, why, sizeof(why)), TKM_OK);
	expect_err(tkm_tr31_opt_add(&hdr, "LB", "x", 1, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "must be last", "add after PB");
	CHECK_EQ_INT(tkm_tr31_encode_header(&hdr, 16, 14, out, sizeof(out), &lay, why, sizeof(why)),
	             TKM_OK);
	expect_err(tkm_tr31_encode_header(&hdr, 16, 14, out, 10, &lay, why, sizeof(why)),
	           TKM_E_INVALID_ARG, "buffer", "small buffer");
	expect_err(tkm_tr31_encode_header(&hdr, 16, 15, out, sizeof(out), &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "whole 16-byte blocks", "unaligned payload");
	expect_err(tkm_tr31_encode_header(&hdr, 20, 10, out, sizeof(out), &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "AES key is 16, 24 or 32", "AES key length");
	kcv = (tkm_tr31_kcv){.algorithm = TKM_TR31_KCV_LEGACY, .kcv = {1, 2, 3, 4}, .len = 4};
	expect_err(tkm_tr31_opt_add_kcv(&hdr, "KC", &kcv, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "2-3 bytes", "long legacy KCV");
	kcv.len = 3;
	expect_err(tkm_tr31_opt_add_kcv(&hdr, "KS", &kcv, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "KC, KP or PK", "KCV in KS");
	/* A forbidden combination is refused by the encoder too. */
	hdr.mode = 'C';
	expect_err(tkm_tr31_encode_header(&hdr, 16, 14, out, sizeof(out), &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "mode of use 'C'", "P0 mode C");
	/* A header so long the block would pass 9999 characters. */
	{
		static char big[4000];

		memset(big, 'X', sizeof(big));
		set_fields(&hdr, 'D', "D0", 'A', 'B', "00", 'E');
		CHECK_EQ_INT(tkm_tr31_opt_add(&hdr, "LB", big, sizeof(big), why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_tr31_opt_add(&hdr, "CT", big, sizeof(big), why, sizeof(why)),
		             TKM_OK);
		CHECK_EQ_INT(tkm_tr31_opt_add(&hdr, "TS", big, 1900, why, sizeof(why)), TKM_OK);
		CHECK_EQ_INT(tkm_tr31_opt_add_pb(&hdr, NULL, 0, why, sizeof(why)), TKM_OK);
		expect_err(
		    tkm_tr31_encode_header(&hdr, 32, 14, out, sizeof(out), &lay, why, sizeof(why)),
		    TKM_E_BAD_REQUEST, "length field allows 9999", "too long");
	}
}

/* Replace kb[at] by c in a copy, and decode. */
static tkm_err decode_patched(const char *kb, size_t at, char c, tkm_tr31_header *hdr)
{
	char buf[TKM_TR31_MAX_LEN + 1];
	tkm_tr31_layout lay;
	size_t n = strlen(kb);

	memcpy(buf, kb, n + 1);
	buf[at] = c;
	why[0] = '\0';
	return tkm_tr31_decode(buf, n, hdr, &lay, why, sizeof(why));
}

/* Structural refusals of the decoder. */
static void test_decode_negative(void)
{
	static tkm_tr31_header hdr;
	const char *b = find_case("tr31-psec-B0080P0TE00E0000-7B8A248E")->key_block;
	const char *ks = find_case("tr31-psec-B0104B0TX12S0100-4B433627")->key_block;
	const char *d = find_case("tr31-openemv-test6-ascii")->key_block;
	char buf[TKM_TR31_MAX_LEN + 2];
	tkm_tr31_layout lay;
	size_t n;

	/* Length field. */
	expect_err(decode_patched(b, 4, '8', &hdr), TKM_E_BAD_REQUEST, "length field says 88",
	           "length 0088 on an 80-character block");
	expect_err(decode_patched(b, 2, 'A', &hdr), TKM_E_BAD_REQUEST, "four decimal digits",
	           "length with a letter");
	/* Printable ASCII only, everywhere. */
	expect_err(decode_patched(b, 40, '\x01', &hdr), TKM_E_BAD_REQUEST, "not printable",
	           "control byte in the payload");
	expect_err(decode_patched(b, 6, '\x80', &hdr), TKM_E_BAD_REQUEST, "not printable",
	           "high byte in the header");
	n = strlen(b);
	memcpy(buf, b, n + 1);
	buf[9] = '\0';
	expect_err(tkm_tr31_decode(buf, n, &hdr, &lay, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "not printable", "NUL in the header");
	/* Payload and MAC are upper-case hex. */
	expect_err(decode_patched(b, 20, 'b', &hdr), TKM_E_BAD_REQUEST, "upper-case hex",
	           "lower-case payload");
	expect_err(decode_patched(b, 79, 'G', &hdr), TKM_E_BAD_REQUEST, "upper-case hex",
	           "G in the MAC");
	/* Versions. */
	expect_err(decode_patched(b, 0, 'Z', &hdr), TKM_E_BAD_REQUEST, "unknown key block version",
	           "version Z");
	expect_err(decode_patched(b, 0, '0', &hdr), TKM_E_BAD_REQUEST, "unknown key block version",
	           "proprietary version 0");
	expect_err(decode_patched(b, 0, 'E', &hdr), TKM_E_BAD_REQUEST, "ISO 20038", "version E");
	/* Header characters. */
	expect_err(decode_patched(b, 7, '-', &hdr), TKM_E_BAD_REQUEST, "not alphanumeric",
	           "algorithm '-'");
	expect_err(decode_patched(b, 12, 'X', &hdr), TKM_E_BAD_REQUEST, "two decimal digits",
	           "optional block count 'X0'");
	/* An optional block count with no blocks behind it eats the payload. */
	expect_err(decode_patched(b, 13, '1', &hdr), TKM_E_BAD_REQUEST, "", "count 01, no block");

	/* Bad optional block lengths, on "...KS18<20 hex>..." at offset 16. */
	expect_err(decode_patched(ks, 18, 'Z', &hdr), TKM_E_BAD_REQUEST, "two upper-case hex",
	           "KS length Z8");
	memcpy(buf, ks, strlen(ks) + 1);
	memcpy(buf + 18, "00", 2);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "length-of-length", "KS00 with length-of-length 60");
	memcpy(buf + 18, "03", 2);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "shorter than its own ID", "KS length 03");
	memcpy(buf + 18, "FF", 2);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "runs past the end", "KS length FF");
	memcpy(buf + 18, "19", 2);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "not a multiple", "KS length 19: header of 41");
	memcpy(buf + 18, "0005", 4);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "length-of-length", "extended length of 5 digits");
	memcpy(buf + 18, "0002FF", 6);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "runs past the end", "extended length FF");
	memcpy(buf + 18, "0002G0", 6);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "extended length is not 2", "extended length G0");
	expect_err(decode_patched(ks, 17, '*', &hdr), TKM_E_BAD_REQUEST, "two alphanumerics",
	           "ID K*");
	/* The extended form parses, and is kept when the header is rebuilt. */
	snprintf(buf, sizeof(buf), "B0104B0TX12S0100KS00021800604B120F929280%s", ks + 40);
	CHECK_EQ_INT(strlen(buf), 104);
	CHECK_EQ_INT(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(hdr.opt[0].ext_digits, 2);
	CHECK(opt_is(&hdr, "KS", "00604B120F929280"));
	{
		static char out[TKM_TR31_MAX_LEN];
		tkm_tr31_layout lay2;

		CHECK_EQ_INT(
		    tkm_tr31_encode_header(&hdr, 16, 6, out, sizeof(out), &lay2, why, sizeof(why)),
		    TKM_OK);
		CHECK(sodium_memcmp(out, buf, 40) == 0);
	}

	/* Truncated MAC: two hex characters fewer, length field fixed up. */
	n = strlen(b);
	memcpy(buf, b, n - 2);
	buf[n - 2] = '\0';
	memcpy(buf + 1, "0078", 4);
	expect_err(tkm_tr31_decode(buf, n - 2, &hdr, &lay, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "truncated", "MAC short by one byte");
	/* Nothing but a header and a MAC. */
	expect_err(decode_str("B0032P0TE00E00000123456789ABCDEF", &hdr, &lay), TKM_E_BAD_REQUEST,
	           "cannot hold", "no payload");
	expect_err(decode_str("B0010P0TE", &hdr, &lay), TKM_E_BAD_REQUEST, "shorter than",
	           "9 characters");
	{
		static char huge[TKM_TR31_MAX_LEN + 2];

		memset(huge, '0', sizeof(huge) - 1);
		huge[sizeof(huge) - 1] = '\0';
		expect_err(decode_str(huge, &hdr, &lay), TKM_E_BAD_REQUEST, "allows 9999",
		           "10000 characters");
	}

	/* Header not aligned to the block: B with 26 characters, D with 24. */
	snprintf(buf, sizeof(buf), "B0090P0TE00E0100KS0A00ABCD%s", b + 16);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "not a multiple of version B's 8-byte block", "B header 26");
	snprintf(buf, sizeof(buf), "D0120P0AE00E0100KS0800AB%s", d + 16);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "not a multiple of version D's 16-byte block", "D header 24");
	/* PB must be last. */
	snprintf(buf, sizeof(buf), "B0096P0TE00E0200PB04KS0C00604B12%s", b + 16);
	expect_err(tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "must be last", "PB first");
	/* Arguments. */
	CHECK_EQ_INT(tkm_tr31_decode(NULL, 0, &hdr, &lay, why, sizeof(why)), TKM_E_INVALID_ARG);
	CHECK_EQ_INT(tkm_tr31_decode(b, strlen(b), &hdr, &lay, NULL, 0), TKM_OK);
}

/* Decode a valid B block with header fields patched, then run the rules. */
static tkm_err check_patched(const char *kb, size_t at, const char *with)
{
	static tkm_tr31_header hdr;
	char buf[TKM_TR31_MAX_LEN + 1];
	tkm_tr31_layout lay;
	tkm_err err;

	memcpy(buf, kb, strlen(kb) + 1);
	memcpy(buf + at, with, strlen(with));
	err = tkm_tr31_decode(buf, strlen(buf), &hdr, &lay, why, sizeof(why));
	CHECK_EQ_INT(err, TKM_OK);
	if (err != TKM_OK) {
		fprintf(stderr, "  decode of %s: %s\n", buf, why);
		return err;
	}
	return check_hdr(&hdr);
}

/* Combinations X9.143 forbids, and some it allows. */
static void test_rules(void)
{
	/* B0080P0TE00E0000: usage at 5, algorithm 7, mode 8, version 9, export 11, ctx 14. */
	const char *b = find_case("tr31-psec-B0080P0TE00E0000-7B8A248E")->key_block;
	/* B0104B0TX12S0100KS18<20 hex>: one optional block at 16, data at 20. */
	const char *ks = find_case("tr31-psec-B0104B0TX12S0100-4B433627")->key_block;
	/* B0128B1TX00N0300KS18...KC0C000169E3KP0C00ECAD62 */
	const char *kc = find_case("tr31-decode-test4")->key_block;
	char buf[TKM_TR31_MAX_LEN + 1];
	static tkm_tr31_header hdr;

	/* Allowed. */
	CHECK_EQ_INT(check_patched(b, 5, "K0TB"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 5, "K1AD"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 5, "M6AC"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 5, "M7HG"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 5, "D0TN"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 5, "V2TV"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 5, "I0TN"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 9, "c2"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 9, "Z9"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 11, "S"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 14, "1"), TKM_OK);
	CHECK_EQ_INT(check_patched(b, 14, "2"), TKM_OK);

	/* Usage vs algorithm vs mode of use. */
	expect_err(check_patched(b, 5, "B0TE"), TKM_E_BAD_REQUEST, "does not allow mode of use 'E'",
	           "BDK for encryption");
	expect_err(check_patched(b, 5, "B0RX"), TKM_E_BAD_REQUEST, "does not allow algorithm 'R'",
	           "RSA BDK");
	expect_err(check_patched(b, 5, "B1TB"), TKM_E_BAD_REQUEST, "mode of use 'B'",
	           "initial key for encryption");
	expect_err(check_patched(b, 5, "K0TC"), TKM_E_BAD_REQUEST, "mode of use 'C'",
	           "KEK for MAC");
	expect_err(check_patched(b, 5, "K0TX"), TKM_E_BAD_REQUEST, "mode of use 'X'",
	           "KEK for derivation");
	expect_err(check_patched(b, 5, "P0TG"), TKM_E_BAD_REQUEST, "mode of use 'G'",
	           "PIN key for MAC generation");
	expect_err(check_patched(b, 5, "P0TS"), TKM_E_BAD_REQUEST, "mode of use 'S'",
	           "PIN key for signing");
	expect_err(check_patched(b, 5, "M3TE"), TKM_E_BAD_REQUEST, "mode of use 'E'",
	           "MAC key for encryption");
	expect_err(check_patched(b, 5, "M3AC"), TKM_E_BAD_REQUEST, "algorithm 'A'",
	           "AES retail MAC");
	expect_err(check_patched(b, 5, "M7TC"), TKM_E_BAD_REQUEST, "algorithm 'T'",
	           "TDES HMAC key");
	expect_err(check_patched(b, 5, "D0TC"), TKM_E_BAD_REQUEST, "mode of use 'C'",
	           "data key for MAC");
	expect_err(check_patched(b, 5, "C0TE"), TKM_E_BAD_REQUEST, "mode of use 'E'",
	           "CVK for encryption");
	expect_err(check_patched(b, 5, "V2TB"), TKM_E_BAD_REQUEST, "mode of use 'B'",
	           "PVK for encryption");
	expect_err(check_patched(b, 5, "S0TS"), TKM_E_BAD_REQUEST, "algorithm 'T'",
	           "symmetric signature key");
	expect_err(check_patched(b, 5, "I0TB"), TKM_E_BAD_REQUEST, "mode of use 'B'", "IV mode B");
	expect_err(check_patched(b, 5, "E0TE"), TKM_E_BAD_REQUEST, "mode of use 'E'",
	           "EMV master key for encryption");
	expect_err(check_patched(b, 5, "P0DE"), TKM_E_BAD_REQUEST, "single DES", "single DES");
	expect_err(check_patched(b, 5, "P0QE"), TKM_E_BAD_REQUEST,
	           "unknown or proprietary algorithm", "algorithm Q");
	expect_err(check_patched(b, 5, "P0T1"), TKM_E_BAD_REQUEST, "unknown or proprietary mode",
	           "mode 1");
	expect_err(check_patched(b, 5, "10"), TKM_E_BAD_REQUEST, "proprietary", "usage 10");
	expect_err(check_patched(b, 5, "Z9"), TKM_E_BAD_REQUEST, "unknown key usage", "usage Z9");
	/* Key version, exportability, key context, reserved. */
	expect_err(check_patched(b, 9, "c0"), TKM_E_BAD_REQUEST, "component number", "component 0");
	expect_err(check_patched(b, 9, "cA"), TKM_E_BAD_REQUEST, "component number", "component A");
	expect_err(check_patched(b, 11, "X"), TKM_E_BAD_REQUEST, "exportability 'X'",
	           "exportability X");
	expect_err(check_patched(b, 11, "e"), TKM_E_BAD_REQUEST, "exportability 'e'",
	           "exportability e");
	expect_err(check_patched(b, 14, "3"), TKM_E_BAD_REQUEST, "key context '3'", "context 3");
	expect_err(check_patched(b, 15, "1"), TKM_E_BAD_REQUEST, "reserved", "reserved 1");

	/* Optional block IDs: known, numeric proprietary, unknown, duplicated. */
	CHECK_EQ_INT(check_patched(ks, 16, "10"), TKM_OK);
	CHECK_EQ_INT(check_patched(ks, 16, "LB"), TKM_OK);
	expect_err(check_patched(ks, 16, "ZZ"), TKM_E_BAD_REQUEST, "neither defined", "block ZZ");
	expect_err(check_patched(ks, 16, "1A"), TKM_E_BAD_REQUEST, "neither defined", "block 1A");
	snprintf(buf, sizeof(buf), "B0104P0TE00E0200KS0C00604B12KS0C00604B12%s", ks + 40);
	expect_err(check_patched(buf, 0, "B"), TKM_E_BAD_REQUEST, "appears twice", "KS twice");

	/* KS of a TDES DUKPT key is its key serial number in hex. */
	expect_err(check_patched(ks, 20, "0060xB12"), TKM_E_BAD_REQUEST, "key serial number",
	           "KS with x");
	expect_err(check_patched(ks, 5, "B0AX"), TKM_E_BAD_REQUEST, "IK or BI", "KS on an AES BDK");
	CHECK_EQ_INT(check_patched(ks, 5, "P0TE"), TKM_OK); /* a free label elsewhere */
	/* IK only on an initial AES DUKPT key. */
	{
		const char *dk = find_case("tr31-openemv-test6-ascii")->key_block;
		char kb[TKM_TR31_MAX_LEN + 1];

		snprintf(kb, sizeof(kb), "D0144B1AX00E0200IK140123456789ABCDEFPB0C00000000%s",
		         dk + 16);
		CHECK_EQ_INT(strlen(kb), 144);
		CHECK_EQ_INT(check_patched(kb, 0, "D"), TKM_OK);
		expect_err(check_patched(kb, 5, "B0"), TKM_E_BAD_REQUEST, "initial AES DUKPT",
		           "IK on a BDK");
		expect_err(check_patched(kb, 5, "B1T"), TKM_E_BAD_REQUEST, "initial AES DUKPT",
		           "IK on a TDES initial key");
		expect_err(check_patched(kb, 5, "K0AB"), TKM_E_BAD_REQUEST, "initial AES DUKPT",
		           "IK on a KEK");
		expect_err(check_patched(kb, 20, "0123x"), TKM_E_BAD_REQUEST, "16 upper-case hex",
		           "IK with x");
		/* KP of a version D block: the KBPK is AES, so its KCV is CMAC. */
		snprintf(kb, sizeof(kb), "D0144P0AE00E0200KP0C00ABCDEFPB140000000000000000%s",
		         dk + 16);
		expect_err(check_patched(kb, 0, "D"), TKM_E_BAD_REQUEST, "must use CMAC",
		           "legacy KP in D");
		CHECK_EQ_INT(check_patched(kb, 20, "01"), TKM_OK);
	}

	/* KC / KP content: algorithm and KCV length. */
	CHECK_EQ_INT(check_patched(kc, 0, "B"), TKM_OK);
	expect_err(check_patched(kc, 44, "02"), TKM_E_BAD_REQUEST, "00 (legacy) or 01 (CMAC)",
	           "KC algorithm 02");
	expect_err(check_patched(kc, 46, "01x9"), TKM_E_BAD_REQUEST, "upper-case hex", "KC with x");
	/* A legacy KCV for an AES key (KC of a B1/A block). */
	expect_err(check_patched(kc, 5, "B1AX"), TKM_E_BAD_REQUEST, "IK or BI", "KS on AES B1");
	snprintf(buf, sizeof(buf), "B0096D0AB00E0200KC0A00ABCDPB0600%s", kc + 64);
	CHECK_EQ_INT(strlen(buf), 96);
	expect_err(check_patched(buf, 0, "B"), TKM_E_BAD_REQUEST, "must use CMAC",
	           "legacy KC of an AES key");
	CHECK_EQ_INT(check_patched(buf, 20, "01"), TKM_OK);
	/* KC with one byte of KCV: "KC0800AB" + PB to 32. */
	snprintf(buf, sizeof(buf), "B0096D0TB00E0200KC0800ABPB0800AA%s", kc + 64);
	expect_err(check_patched(buf, 0, "B"), TKM_E_BAD_REQUEST, "2 to 3 bytes", "1-byte KCV");

	/* BI and HM. */
	snprintf(buf, sizeof(buf), "B0096B0TX00E0100BI1000ABCDEF0123%s", kc + 64);
	CHECK_EQ_INT(strlen(buf), 96);
	CHECK_EQ_INT(check_patched(buf, 0, "B"), TKM_OK);
	expect_err(check_patched(buf, 20, "01"), TKM_E_BAD_REQUEST, "optional block BI",
	           "BI 01+10");
	snprintf(buf, sizeof(buf), "B0096M7HC00E0200HM0621PB0A000000%s", kc + 64);
	CHECK_EQ_INT(strlen(buf), 96);
	CHECK_EQ_INT(check_patched(buf, 0, "B"), TKM_OK);
	expect_err(check_patched(buf, 5, "M6TC"), TKM_E_BAD_REQUEST, "HMAC key", "HM on CMAC key");

	/* Header struct built by hand with out-of-range values. */
	set_fields(&hdr, 'B', "P0", 'T', 'E', "00", 'E');
	CHECK_EQ_INT(check_hdr(&hdr), TKM_OK);
	hdr.version = 'Q';
	expect_err(check_hdr(&hdr), TKM_E_BAD_REQUEST, "unknown key block version", "version Q");
	hdr.version = 'B';
	memcpy(hdr.key_version, "0\n", 3);
	expect_err(check_hdr(&hdr), TKM_E_BAD_REQUEST, "two alphanumerics", "key version 0\\n");
	tkm_tr31_header_clear(&hdr);
	expect_err(check_hdr(&hdr), TKM_E_BAD_REQUEST, "version", "cleared header");
}

/* Refusal to wrap under a weaker KBPK. */
static void test_kbpk(void)
{
	CHECK_EQ_INT(tkm_tr31_kbpk_ok('D', 'A', 32, 'A', 32, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_kbpk_ok('D', 'A', 16, 'A', 16, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_kbpk_ok('D', 'A', 16, 'T', 24, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_kbpk_ok('D', 'A', 16, 'T', 16, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_kbpk_ok('D', 'A', 24, 'A', 24, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_kbpk_ok('B', 'T', 24, 'T', 24, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_kbpk_ok('B', 'T', 24, 'T', 16, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_kbpk_ok('B', 'T', 16, 'T', 16, why, sizeof(why)), TKM_OK);

	expect_err(tkm_tr31_kbpk_ok('D', 'A', 16, 'A', 32, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "weaker AES-128 KBPK", "AES-256 under AES-128");
	expect_err(tkm_tr31_kbpk_ok('D', 'A', 24, 'A', 32, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "weaker AES-192", "AES-256 under AES-192");
	expect_err(tkm_tr31_kbpk_ok('B', 'T', 24, 'A', 16, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "weaker 3-key TDES", "AES under TDES");
	expect_err(tkm_tr31_kbpk_ok('B', 'T', 16, 'T', 24, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "weaker 2-key TDES", "3-key under 2-key");
	expect_err(tkm_tr31_kbpk_ok('D', 'T', 24, 'T', 16, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "needs an AES KBPK", "TDES KBPK in D");
	expect_err(tkm_tr31_kbpk_ok('B', 'A', 32, 'T', 16, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "needs a TDES KBPK", "AES KBPK in B");
	expect_err(tkm_tr31_kbpk_ok('A', 'T', 16, 'T', 16, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "import only", "wrap with A");
	expect_err(tkm_tr31_kbpk_ok('C', 'T', 24, 'T', 16, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "import only", "wrap with C");
	expect_err(tkm_tr31_kbpk_ok('E', 'A', 32, 'A', 16, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "ISO 20038", "wrap with E");
	expect_err(tkm_tr31_kbpk_ok('D', 'A', 20, 'A', 16, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "20-byte KBPK", "KBPK of 20 bytes");
	expect_err(tkm_tr31_kbpk_ok('B', 'T', 8, 'T', 8, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "8-byte KBPK", "single DES KBPK");
	expect_err(tkm_tr31_kbpk_ok('D', 'A', 32, 'T', 8, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "tkm wraps TDES", "single DES key");
	expect_err(tkm_tr31_kbpk_ok('D', 'A', 32, 'H', 32, why, sizeof(why)), TKM_E_BAD_REQUEST,
	           "tkm wraps TDES", "HMAC key");
}

/* The clear payload's strict checks. */
static void test_payload(void)
{
	uint8_t *p = sodium_malloc(64);
	uint8_t key[32];
	size_t key_len = 0, total = 0;

	CHECK(p != NULL);
	if (p == NULL) {
		return;
	}
	memset(key, 0x5A, sizeof(key));
	memset(p, 0xAA, 64);

	/* Version B, 16-byte TDES key: 2 + 16 + 6 = 24. */
	CHECK_EQ_INT(tkm_tr31_payload_build('B', 'T', key, 16, p + 40, 6, p, 24, why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(p[0], 0x00);
	CHECK_EQ_INT(p[1], 0x80);
	CHECK_EQ_INT(tkm_tr31_payload_parse('B', 'T', p, 24, &key_len, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(key_len, 16);
	/* Length in bits not a multiple of 8, zero, larger than the payload. */
	p[1] = 0x81;
	expect_err(tkm_tr31_payload_parse('B', 'T', p, 24, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "whole number of bytes", "129 bits");
	CHECK_EQ_INT(key_len, 0);
	p[1] = 0x00;
	expect_err(tkm_tr31_payload_parse('B', 'T', p, 24, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "whole number of bytes", "0 bits");
	p[0] = 0x01;
	expect_err(tkm_tr31_payload_parse('B', 'T', p, 24, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "does not fit", "256 bits in 24 bytes");
	p[0] = 0xFF;
	p[1] = 0xF8;
	expect_err(tkm_tr31_payload_parse('D', 'A', p, 32, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "does not fit", "65528 bits");
	/* A key length the algorithm does not have. */
	p[0] = 0x00;
	p[1] = 0xA0;
	expect_err(tkm_tr31_payload_parse('D', 'A', p, 32, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "AES key is 16, 24 or 32", "20-byte AES key");
	p[1] = 0x40;
	expect_err(tkm_tr31_payload_parse('B', 'T', p, 24, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "single-length", "8-byte TDES key");
	/* Padding of a block or more that does not hide the key length. */
	p[1] = 0x80;
	expect_err(tkm_tr31_payload_parse('B', 'T', p, 40, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "block or more", "16-byte key in 40 bytes");
	expect_err(tkm_tr31_payload_parse('D', 'A', p, 64, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "block or more", "16-byte key in 64 bytes");
	expect_err(tkm_tr31_payload_parse('D', 'R', p, 48, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "block or more", "RSA with 30 bytes of padding");
	/* ...while padding to the largest key is X9.143 key length obfuscation. */
	CHECK_EQ_INT(tkm_tr31_payload_parse('B', 'T', p, 32, &key_len, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_payload_parse('D', 'A', p, 48, &key_len, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_tr31_payload_parse('D', 'T', p, 32, &key_len, why, sizeof(why)), TKM_OK);
	/* Payloads that are not whole blocks. */
	expect_err(tkm_tr31_payload_parse('D', 'A', p, 24, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "whole 16-byte blocks", "24 bytes in D");
	expect_err(tkm_tr31_payload_parse('B', 'T', p, 1, &key_len, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "whole 8-byte blocks", "1 byte");
	expect_err(tkm_tr31_payload_len('B', 'T', 16, 5, &total, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "whole 8-byte blocks", "23 bytes");
	expect_err(tkm_tr31_payload_len('D', 'A', 0, 14, &total, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "no key", "empty key");
	expect_err(tkm_tr31_payload_len('E', 'A', 16, 14, &total, why, sizeof(why)),
	           TKM_E_BAD_REQUEST, "ISO 20038", "version E");
	CHECK_EQ_INT(tkm_tr31_payload_len('D', 'A', 32, 14, &total, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(total, 48);
	CHECK_EQ_INT(tkm_tr31_payload_parse('B', 'T', NULL, 24, &key_len, why, sizeof(why)),
	             TKM_E_INVALID_ARG);
	sodium_free(p);
}

int main(void)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "sodium_init failed\n");
		return 1;
	}
	test_vectors();
	test_build();
	test_decode_negative();
	test_rules();
	test_kbpk();
	test_payload();
	return tkm_test_report("tr31_format");
}
