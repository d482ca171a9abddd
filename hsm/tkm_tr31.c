/*
 * tkm_tr31.c - TR-31 / ANSI X9.143 key block format: header, optional
 * blocks, clear payload layout and the rules the standard puts on them.
 *
 * Pure C over caller buffers: no PKCS#11, no cryptography, no allocation.
 * It never holds a KBPK; the only key bytes it touches are the clear payload
 * the caller lays out or reads in the caller's own (locked) memory, and it
 * copies none of them.
 *
 * References: ANSI X9.143:2021 (6.2 header, 6.3.1-6.3.6 tables 2-7 for key
 * usage, algorithm, mode of use, key version, exportability and optional
 * blocks, 7.3.1 payload), ASC TR-31:2018 (its predecessor; versions A, B, C),
 * ANSI X9.24-1:2017 (KCVs, key strength).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tkm_tr31.h"
#include "tkm_why.h"

/* Key block protection: cipher block and MAC length in bytes per version. */
static const struct tr31_version {
	char version;
	size_t block_len;
	size_t mac_len;
} tr31_versions[] = {
    {'A', 8, 4},   /* TDES key variant binding, TR-31:2005 (deprecated) */
    {'B', 8, 8},   /* TDES key derivation binding, TR-31:2010 */
    {'C', 8, 4},   /* TDES key variant binding, TR-31:2010 */
    {'D', 16, 16}, /* AES key derivation binding, TR-31:2018 / X9.143 */
};

/*
 * Key usage (X9.143:2021 6.3.1 table 2) with the algorithms (table 3) and
 * modes of use (table 4) each usage admits. 'N' ("no special restrictions
 * other than those implied by the key usage") fits every usage. Single DES
 * ('D') is in no row: X9.24-1:2017 retired it. Numeric usages are reserved
 * for proprietary use and refused, as tkm cannot know what they allow.
 */
static const struct tr31_usage_rule {
	char usage[3];
	const char *name;
	const char *algs;
	const char *modes;
} tr31_usage_rules[] = {
    {"B0", "base derivation key (BDK)", "TA", "XN"},
    {"B1", "initial DUKPT key", "TA", "XN"},
    {"B2", "base key variant key", "T", "YN"},
    {"B3", "key derivation key (non X9.24)", "TA", "XN"},
    {"C0", "card verification key", "TA", "CGVN"},
    {"D0", "symmetric data encryption key", "TA", "BDEN"},
    {"D1", "asymmetric data encryption key", "RE", "BDEN"},
    {"D2", "decimalization table encryption key", "TA", "BDEN"},
    {"E0", "EMV master key for application cryptograms", "TA", "XN"},
    {"E1", "EMV master key for secure messaging confidentiality", "TA", "XN"},
    {"E2", "EMV master key for secure messaging integrity", "TA", "XN"},
    {"E3", "EMV master key for data authentication codes", "TA", "XN"},
    {"E4", "EMV master key for dynamic numbers", "TA", "XN"},
    {"E5", "EMV master key for card personalization", "TA", "XN"},
    {"E6", "EMV master key, other", "TA", "XN"},
    {"I0", "initialization vector", "TA", "N"},
    {"K0", "key encryption or wrapping key", "TA", "BDEN"},
    {"K1", "TR-31 key block protection key", "TA", "BDEN"},
    {"K2", "TR-34 asymmetric key", "R", "BDEN"},
    {"K3", "asymmetric key for key agreement or wrapping", "RE", "BDEXN"},
    {"K4", "ISO 20038 key block protection key", "A", "BDEN"},
    {"M0", "ISO 16609 MAC algorithm 1 key", "T", "CGVN"},
    {"M1", "ISO 9797-1 MAC algorithm 1 key", "TA", "CGVN"},
    {"M2", "ISO 9797-1 MAC algorithm 2 key", "TA", "CGVN"},
    {"M3", "ISO 9797-1 MAC algorithm 3 key", "T", "CGVN"},
    {"M4", "ISO 9797-1 MAC algorithm 4 key", "TA", "CGVN"},
    {"M5", "ISO 9797-1:1999 MAC algorithm 5 key", "TA", "CGVN"},
    {"M6", "ISO 9797-1:2011 MAC algorithm 5 (CMAC) key", "TA", "CGVN"},
    {"M7", "HMAC key", "H", "CGVN"},
    {"M8", "ISO 9797-1:2011 MAC algorithm 6 key", "TA", "CGVN"},
    {"P0", "PIN encryption key", "TA", "BDEN"},
    {"S0", "asymmetric key pair for digital signature", "RES", "SVN"},
    {"S1", "asymmetric key pair for CA use", "RES", "SVN"},
    {"S2", "asymmetric key pair, non X9.24", "RES", "SVTBDEN"},
    {"V0", "PIN verification key, other algorithm", "TA", "CGVN"},
    {"V1", "PIN verification key, IBM 3624", "TA", "CGVN"},
    {"V2", "PIN verification key, VISA PVV", "TA", "CGVN"},
    {"V3", "PIN verification key, X9.132 algorithm 1", "TA", "CGVN"},
    {"V4", "PIN verification key, X9.132 algorithm 2", "TA", "CGVN"},
};

/* Algorithms (table 3) and modes of use (table 4) the standard defines. */
static const char tr31_algorithms[] = "ADEHRST";
static const char tr31_modes[] = "BCDEGNSTVXY";

/* Optional block IDs of X9.143:2021 6.3.6 table 7; numeric IDs are proprietary. */
static const char *const tr31_opt_ids[] = {
    "AL", "BI", "CT", "DA", "FL", "HM", "IK", "KC", "KP",
    "KS", "KV", "LB", "PB", "PK", "TC", "TS", "WP",
};

/*
 * The largest length of the two-digit form, and the digits of the extended
 * form used when a block outgrows it (4 hex digits cover any key block).
 */
#define TR31_EXT_DIGITS_DEFAULT 4
#define TR31_SHORT_MAX          0xFF

static bool is_print(char c)
{
	return c >= 0x20 && c <= 0x7e;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ASCII only: the standard's "AN" character set, whatever the locale. */
static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The standard's "H": upper-case hex only. */
static int hex_val(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

/* A character fit for a message: itself when printable, else '?'. */
static char show(char c)
{
	return is_print(c) ? c : '?';
}

static bool parse_dec(const char *s, size_t n, size_t *out)
{
	size_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i])) {
			return false;
		}
		v = v * 10 + (size_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

static bool parse_hex(const char *s, size_t n, size_t *out)
{
	size_t v = 0;

	for (size_t i = 0; i < n; i++) {
		int d = hex_val(s[i]);

		if (d < 0) {
			return false;
		}
		v = (v << 4) | (size_t)d;
	}
	*out = v;
	return true;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (hex_val(s[i]) < 0) {
			return false;
		}
	}
	return true;
}

static void put_dec(char *out, size_t n, size_t v)
{
	while (n > 0) {
		out[--n] = (char)('0' + v % 10);
		v /= 10;
	}
}

static void put_hex(char *out, size_t n, size_t v)
{
	static const char digits[] = "0123456789ABCDEF";

	while (n > 0) {
		out[--n] = digits[v & 0xf];
		v >>= 4;
	}
}

static bool id_eq(const char *a, const char *b)
{
	return a[0] == b[0] && a[1] == b[1];
}

/* id is exactly two alphanumerics and a NUL. */
static bool id_ok(const char *id)
{
	return id != NULL && is_alnum(id[0]) && is_alnum(id[1]) && id[2] == '\0';
}

static bool opt_id_known(const char *id)
{
	for (size_t i = 0; i < sizeof(tr31_opt_ids) / sizeof(tr31_opt_ids[0]); i++) {
		if (id_eq(id, tr31_opt_ids[i])) {
			return true;
		}
	}
	return false;
}

static const struct tr31_version *version_find(char version)
{
	for (size_t i = 0; i < sizeof(tr31_versions) / sizeof(tr31_versions[0]); i++) {
		if (tr31_versions[i].version == version) {
			return &tr31_versions[i];
		}
	}
	return NULL;
}

tkm_err tkm_tr31_version_params(char version, size_t *block_len, size_t *mac_len, char *why,
                                size_t why_len)
{
	const struct tr31_version *v = version_find(version);

	if (v == NULL) {
		if (version == 'E') {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "key block version 'E' (ISO 20038) is not supported; "
			                    "use A, B, C or D");
		}
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "unknown key block version '%c' (0x%02x); use A, B, C or D",
		                    show(version), (unsigned)(unsigned char)version);
	}
	if (block_len != NULL) {
		*block_len = v->block_len;
	}
	if (mac_len != NULL) {
		*mac_len = v->mac_len;
	}
	return TKM_OK;
}

/*
 * Characters one optional block takes in the header, and the number of
 * extended length digits it is written with (0: the two-digit form). A block
 * parsed in the extended form keeps it, so that a header round-trips.
 */
static bool opt_wire_len(const tkm_tr31_opt *opt, size_t *len, size_t *ext)
{
	size_t e = opt->ext_digits;
	size_t limit;

	if (e == 0 && 4 + (size_t)opt->data_len <= TR31_SHORT_MAX) {
		*len = 4 + (size_t)opt->data_len;
		*ext = 0;
		return true;
	}
	if (e == 0) {
		e = TR31_EXT_DIGITS_DEFAULT;
	}
	limit = ((size_t)1 << (4 * e)) - 1;
	if (6 + e + (size_t)opt->data_len > limit) {
		return false;
	}
	*len = 6 + e + (size_t)opt->data_len;
	*ext = e;
	return true;
}

/* Header length in characters of hdr as it stands, optional blocks included. */
static tkm_err header_len(const tkm_tr31_header *hdr, size_t *out, char *why, size_t why_len)
{
	size_t len = TKM_TR31_FIXED_LEN;

	for (size_t i = 0; i < hdr->n_opt; i++) {
		size_t one, ext;

		if (!opt_wire_len(&hdr->opt[i], &one, &ext)) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block %s: %u data characters do not fit its length field",
			    hdr->opt[i].id, (unsigned)hdr->opt[i].data_len);
		}
		len += one;
		if (len > TKM_TR31_MAX_LEN) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional blocks make the header longer than %d characters",
			    TKM_TR31_MAX_LEN);
		}
	}
	*out = len;
	return TKM_OK;
}

void tkm_tr31_header_clear(tkm_tr31_header *hdr)
{
	if (hdr == NULL) {
		return;
	}
	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr->key_version, "00", 3);
	hdr->key_context = '0';
	hdr->reserved = '0';
}

/* Parse the optional block at *pos of kb[0..end) into hdr; advance *pos. */
static tkm_err decode_opt(const char *kb, size_t end, size_t *pos, tkm_tr31_header *hdr, char *why,
                          size_t why_len)
{
	size_t p = *pos, blen = 0, hlen = 4, ext = 0;
	tkm_tr31_opt *opt;

	if (end - p < 4) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "optional block %zu is truncated at character %zu",
		                    hdr->n_opt + 1, p);
	}
	if (!is_alnum(kb[p]) || !is_alnum(kb[p + 1])) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "optional block %zu: ID '%c%c' is not two alphanumerics",
		                    hdr->n_opt + 1, kb[p], kb[p + 1]);
	}
	if (!parse_hex(kb + p + 2, 2, &blen)) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "optional block %.2s: length '%.2s' is not two upper-case hex digits", kb + p,
		    kb + p + 2);
	}
	if (blen == 0) {
		/* X9.143 extended length: "00", the number of length digits, the length. */
		if (end - p < 6 || !parse_hex(kb + p + 4, 2, &ext) || ext == 0 || ext > 4) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block %.2s: extended length needs a length-of-length "
			    "of 01 to 04",
			    kb + p);
		}
		if (end - p < 6 + ext || !parse_hex(kb + p + 6, ext, &blen)) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block %.2s: extended length is not %zu upper-case hex "
			    "digits",
			    kb + p, ext);
		}
		hlen = 6 + ext;
	}
	if (blen < hlen) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "optional block %.2s: length %zu is shorter than its own ID and length "
		    "(%zu)",
		    kb + p, blen, hlen);
	}
	if (blen > end - p) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "optional block %.2s: length %zu runs past the end of the key block", kb + p,
		    blen);
	}
	if (hdr->n_opt > 0 && id_eq(hdr->opt[hdr->n_opt - 1].id, "PB")) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "optional block %.2s follows PB; the padding block must be last", kb + p);
	}
	/* The pool is as large as a whole key block: data always fits. */
	opt = &hdr->opt[hdr->n_opt];
	opt->id[0] = kb[p];
	opt->id[1] = kb[p + 1];
	opt->id[2] = '\0';
	opt->ext_digits = (uint8_t)ext;
	opt->data_off = (uint16_t)hdr->opt_data_len;
	opt->data_len = (uint16_t)(blen - hlen);
	memcpy(hdr->opt_data + hdr->opt_data_len, kb + p + hlen, blen - hlen);
	hdr->opt_data_len += blen - hlen;
	hdr->n_opt++;
	*pos = p + blen;
	return TKM_OK;
}

tkm_err tkm_tr31_decode(const char *kb, size_t kb_len, tkm_tr31_header *hdr,
                        tkm_tr31_layout *layout, char *why, size_t why_len)
{
	size_t block_len = 0, mac_len = 0, declared = 0, n_opt = 0, pos, rest, payload_hex;
	tkm_err err;

	if (kb == NULL || hdr == NULL || layout == NULL) {
		return TKM_E_INVALID_ARG;
	}
	tkm_tr31_header_clear(hdr);
	memset(layout, 0, sizeof(*layout));
	if (kb_len < TKM_TR31_FIXED_LEN) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "key block is %zu characters, shorter than the %d-character header", kb_len,
		    TKM_TR31_FIXED_LEN);
	}
	if (kb_len > TKM_TR31_MAX_LEN) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key block is %zu characters; the length field allows %d",
		                    kb_len, TKM_TR31_MAX_LEN);
	}
	for (size_t i = 0; i < kb_len; i++) {
		if (!is_print(kb[i])) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "character %zu (0x%02x) is not printable ASCII", i,
			                    (unsigned)(unsigned char)kb[i]);
		}
	}
	err = tkm_tr31_version_params(kb[0], &block_len, &mac_len, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (!parse_dec(kb + 1, 4, &declared)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "length field '%.4s' is not four decimal digits", kb + 1);
	}
	if (declared != kb_len) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "length field says %zu characters, the key block has %zu",
		                    declared, kb_len);
	}
	for (size_t i = 5; i < TKM_TR31_FIXED_LEN; i++) {
		if (i != 12 && i != 13 && !is_alnum(kb[i])) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "header character %zu '%c' is not alphanumeric", i,
			                    kb[i]);
		}
	}
	if (!parse_dec(kb + 12, 2, &n_opt)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "number of optional blocks '%.2s' is not two decimal digits",
		                    kb + 12);
	}
	hdr->version = kb[0];
	memcpy(hdr->usage, kb + 5, 2);
	hdr->algorithm = kb[7];
	hdr->mode = kb[8];
	memcpy(hdr->key_version, kb + 9, 2);
	hdr->exportability = kb[11];
	hdr->key_context = kb[14];
	hdr->reserved = kb[15];

	pos = TKM_TR31_FIXED_LEN;
	for (size_t i = 0; i < n_opt; i++) {
		err = decode_opt(kb, kb_len, &pos, hdr, why, why_len);
		if (err != TKM_OK) {
			return err;
		}
	}
	if (pos % block_len != 0) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "header is %zu characters, not a multiple of version %c's %zu-byte "
		    "block",
		    pos, hdr->version, block_len);
	}
	rest = kb_len - pos;
	if (rest < 2 * (block_len + mac_len)) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "%zu characters after the header cannot hold one %zu-byte payload block "
		    "and the %zu-byte MAC",
		    rest, block_len, mac_len);
	}
	payload_hex = rest - 2 * mac_len;
	if (payload_hex % (2 * block_len) != 0) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "encrypted payload would be %zu hex characters, not whole %zu-byte "
		    "blocks: payload or MAC truncated",
		    payload_hex, block_len);
	}
	for (size_t i = pos; i < kb_len; i++) {
		if (hex_val(kb[i]) < 0) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "character %zu '%c' of the payload or MAC is not an upper-case "
			    "hex digit",
			    i, kb[i]);
		}
	}
	layout->total_len = kb_len;
	layout->header_len = pos;
	layout->payload_off = pos;
	layout->payload_len = payload_hex / 2;
	layout->mac_off = pos + payload_hex;
	layout->mac_len = mac_len;
	layout->block_len = block_len;
	return TKM_OK;
}

static const struct tr31_usage_rule *usage_find(const char *usage)
{
	for (size_t i = 0; i < sizeof(tr31_usage_rules) / sizeof(tr31_usage_rules[0]); i++) {
		if (id_eq(usage, tr31_usage_rules[i].usage)) {
			return &tr31_usage_rules[i];
		}
	}
	return NULL;
}

static bool in_set(char c, const char *set)
{
	return c != '\0' && strchr(set, c) != NULL;
}

static bool is_dukpt_usage(const tkm_tr31_header *hdr)
{
	return id_eq(hdr->usage, "B0") || id_eq(hdr->usage, "B1");
}

/*
 * KC, KP and PK data (X9.143:2021 6.3.6.7 table 15): two hex digits of KCV
 * algorithm ("00" legacy, "01" CMAC), then the KCV in hex: at most 3 bytes
 * for legacy, 5 for CMAC. tkm also asks for 2 bytes at least: a shorter
 * KCV checks nothing.
 */
static tkm_err kcv_parse(const char *id, const char *data, size_t len, tkm_tr31_kcv *out, char *why,
                         size_t why_len)
{
	size_t alg = 0, max, n;

	if (len < 2 || !parse_hex(data, 2, &alg) || alg > TKM_TR31_KCV_CMAC) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "optional block %s: KCV algorithm must be 00 (legacy) or 01 (CMAC)", id);
	}
	max = alg == TKM_TR31_KCV_LEGACY ? 3 : 5;
	n = (len - 2) / 2;
	if ((len - 2) % 2 != 0 || !all_hex(data + 2, len - 2) || n < 2 || n > max) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "optional block %s: KCV must be 2 to %zu bytes of upper-case hex", id, max);
	}
	out->algorithm = (uint8_t)alg;
	out->len = n;
	for (size_t i = 0; i < n; i++) {
		size_t b = 0;

		(void)parse_hex(data + 2 + 2 * i, 2, &b);
		out->kcv[i] = (uint8_t)b;
	}
	return TKM_OK;
}

/* The content rules of the optional blocks tkm understands. */
static tkm_err check_opt_content(const tkm_tr31_header *hdr, const tkm_tr31_opt *opt, char *why,
                                 size_t why_len)
{
	const char *d = hdr->opt_data + opt->data_off;
	size_t n = opt->data_len;

	if (id_eq(opt->id, "KS")) {
		/*
		 * Initial key serial number of a TDES DUKPT key: 10 bytes (X9.143:2021
		 * 6.3.6.8 table 16), or 8 in TR-31:2018's examples. With other key
		 * usages X9.143's own example (8.2) uses KS as a free key set label.
		 */
		if (is_dukpt_usage(hdr) && hdr->algorithm == 'A') {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block KS: an AES DUKPT key is identified by IK or BI, "
			    "not by a TDES key serial number");
		}
		if (is_dukpt_usage(hdr) && ((n != 20 && n != 16) || !all_hex(d, n))) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block KS: a TDES DUKPT key serial number is 20 (or 16) "
			    "upper-case hex digits");
		}
		if (n == 0) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "optional block KS is empty");
		}
		return TKM_OK;
	}
	if (id_eq(opt->id, "IK")) {
		/* Initial key ID of an initial AES DUKPT key (X9.24-3:2017; X9.143 6.3.6.6). */
		if (!id_eq(hdr->usage, "B1") || hdr->algorithm != 'A') {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block IK belongs only to an initial AES DUKPT key "
			    "(usage B1, algorithm A), not to %s/%c",
			    hdr->usage, show(hdr->algorithm));
		}
		if (n != 16 || !all_hex(d, n)) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block IK: the initial key ID is 16 upper-case hex digits");
		}
		return TKM_OK;
	}
	if (id_eq(opt->id, "KC") || id_eq(opt->id, "KP") || id_eq(opt->id, "PK")) {
		tkm_tr31_kcv kcv;
		tkm_err err = kcv_parse(opt->id, d, n, &kcv, why, why_len);

		if (err != TKM_OK) {
			return err;
		}
		/*
		 * X9.24-1:2017 7.7.2: an AES key's check value is CMAC-based; the legacy
		 * method (encrypt zeros) is for TDES. KC is about the wrapped key, KP
		 * about the KBPK, which is AES exactly for version D.
		 */
		if (kcv.algorithm == TKM_TR31_KCV_LEGACY &&
		    ((id_eq(opt->id, "KC") && hdr->algorithm == 'A') ||
		     (id_eq(opt->id, "KP") && hdr->version == 'D'))) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block %s: the KCV of an AES key must use CMAC (01)", opt->id);
		}
		return TKM_OK;
	}
	if (id_eq(opt->id, "BI")) {
		/* X9.143:2021 6.3.6.2 table 9: "00" + TDES KSI (5 bytes), "01" + AES BDK ID (4). */
		if (!(n == 12 && d[0] == '0' && d[1] == '0' && all_hex(d, n)) &&
		    !(n == 10 && d[0] == '0' && d[1] == '1' && all_hex(d, n))) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block BI must be 00 and a 10-digit KSI, or 01 and an "
			    "8-digit BDK ID, in upper-case hex");
		}
		return TKM_OK;
	}
	if (id_eq(opt->id, "HM")) {
		/* X9.143:2021 6.3.6.5: the hash of an HMAC key, two hex digits. */
		if (hdr->algorithm != 'H') {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block HM belongs only to an HMAC key (algorithm H)");
		}
		if (n != 2 || !all_hex(d, n)) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "optional block HM is two upper-case hex digits");
		}
		return TKM_OK;
	}
	return TKM_OK;
}

static tkm_err check_opts(const tkm_tr31_header *hdr, char *why, size_t why_len)
{
	if (hdr->n_opt > TKM_TR31_MAX_OPT) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "more than %d optional blocks",
		                    TKM_TR31_MAX_OPT);
	}
	for (size_t i = 0; i < hdr->n_opt; i++) {
		const tkm_tr31_opt *opt = &hdr->opt[i];
		tkm_err err;

		if (!id_ok(opt->id)) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "optional block %zu: ID is not two alphanumerics",
			                    i + 1);
		}
		if (!opt_id_known(opt->id) && !(is_digit(opt->id[0]) && is_digit(opt->id[1]))) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block %s is neither defined by X9.143 nor a numeric "
			    "proprietary ID",
			    opt->id);
		}
		for (size_t j = 0; j < i; j++) {
			if (id_eq(hdr->opt[j].id, opt->id)) {
				return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
				                    "optional block %s appears twice", opt->id);
			}
		}
		if (id_eq(opt->id, "PB") && i + 1 != hdr->n_opt) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "the padding block PB must be the last optional block");
		}
		if ((size_t)opt->data_off + opt->data_len > hdr->opt_data_len ||
		    hdr->opt_data_len > sizeof(hdr->opt_data)) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block %s: data lies outside the header's pool", opt->id);
		}
		for (size_t k = 0; k < opt->data_len; k++) {
			if (!is_print(hdr->opt_data[opt->data_off + k])) {
				return tkm_why_fail(
				    why, why_len, TKM_E_BAD_REQUEST,
				    "optional block %s: data is not printable ASCII", opt->id);
			}
		}
		err = check_opt_content(hdr, opt, why, why_len);
		if (err != TKM_OK) {
			return err;
		}
	}
	return TKM_OK;
}

/*
 * Key version (X9.143:2021 6.3.4 table 5): "00" when unused, 'c' and a
 * digit for a key component (1-9), otherwise any two alphanumerics.
 */
static tkm_err check_key_version(const char *kv, char *why, size_t why_len)
{
	if (!is_alnum(kv[0]) || !is_alnum(kv[1]) || kv[2] != '\0') {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key version must be two alphanumerics");
	}
	if (kv[0] == 'c' && (kv[1] < '1' || kv[1] > '9')) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key version '%s': a component number is 'c' and a digit 1-9",
		                    kv);
	}
	return TKM_OK;
}

tkm_err tkm_tr31_header_check(const tkm_tr31_header *hdr, char *why, size_t why_len)
{
	const struct tr31_usage_rule *rule;
	tkm_err err;

	if (hdr == NULL) {
		return TKM_E_INVALID_ARG;
	}
	err = tkm_tr31_version_params(hdr->version, NULL, NULL, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (!id_ok(hdr->usage)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key usage must be two alphanumerics");
	}
	rule = usage_find(hdr->usage);
	if (rule == NULL) {
		if (is_digit(hdr->usage[0]) && is_digit(hdr->usage[1])) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "key usage %s is proprietary; tkm accepts only X9.143 usages",
			    hdr->usage);
		}
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "unknown key usage %s",
		                    hdr->usage);
	}
	if (!in_set(hdr->algorithm, tr31_algorithms)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "unknown or proprietary algorithm '%c'", show(hdr->algorithm));
	}
	if (hdr->algorithm == 'D') {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "algorithm D (single DES) is retired by X9.24-1:2017");
	}
	if (!in_set(hdr->algorithm, rule->algs)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key usage %s (%s) does not allow algorithm '%c'; allowed: %s",
		                    rule->usage, rule->name, hdr->algorithm, rule->algs);
	}
	if (!in_set(hdr->mode, tr31_modes)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "unknown or proprietary mode of use '%c'", show(hdr->mode));
	}
	if (!in_set(hdr->mode, rule->modes)) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "key usage %s (%s) does not allow mode of use '%c'; allowed: %s", rule->usage,
		    rule->name, hdr->mode, rule->modes);
	}
	err = check_key_version(hdr->key_version, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	/* X9.143:2021 6.3.5 table 6: E trusted export, N none, S sensitive. */
	if (!in_set(hdr->exportability, "ENS")) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "exportability '%c' is not E, N or S",
		                    show(hdr->exportability));
	}
	/* X9.143: byte 14 is the key context (0 either, 1 storage, 2 exchange), 15 reserved. */
	if (!in_set(hdr->key_context, "012")) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key context '%c' is not 0, 1 or 2", show(hdr->key_context));
	}
	if (hdr->reserved != '0') {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "reserved header byte '%c' is not 0", show(hdr->reserved));
	}
	return check_opts(hdr, why, why_len);
}

/*
 * Append an optional block of data_len characters and return where its data
 * goes. Refuses a duplicate, anything after PB, and a header with no room.
 */
static tkm_err opt_reserve(tkm_tr31_header *hdr, const char *id, size_t data_len, char **dst,
                           char *why, size_t why_len)
{
	tkm_tr31_opt *opt;

	if (hdr == NULL || dst == NULL) {
		return TKM_E_INVALID_ARG;
	}
	if (!id_ok(id)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "optional block ID must be two alphanumerics");
	}
	if (hdr->n_opt >= TKM_TR31_MAX_OPT) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "a header holds at most %d optional blocks", TKM_TR31_MAX_OPT);
	}
	if (hdr->opt_data_len > sizeof(hdr->opt_data) ||
	    data_len > sizeof(hdr->opt_data) - hdr->opt_data_len) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "optional block %s: %zu characters do not fit a key block", id,
		                    data_len);
	}
	for (size_t i = 0; i < hdr->n_opt; i++) {
		if (id_eq(hdr->opt[i].id, "PB")) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "optional block %s after PB; the padding block must be last", id);
		}
		if (id_eq(hdr->opt[i].id, id)) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "optional block %s is already present", id);
		}
	}
	opt = &hdr->opt[hdr->n_opt];
	memcpy(opt->id, id, 3);
	opt->ext_digits = 0;
	opt->data_off = (uint16_t)hdr->opt_data_len;
	opt->data_len = (uint16_t)data_len;
	*dst = hdr->opt_data + hdr->opt_data_len;
	hdr->opt_data_len += data_len;
	hdr->n_opt++;
	return TKM_OK;
}

tkm_err tkm_tr31_opt_add(tkm_tr31_header *hdr, const char *id, const char *data, size_t data_len,
                         char *why, size_t why_len)
{
	char *dst;
	tkm_err err;

	if (hdr == NULL || id == NULL || (data == NULL && data_len > 0)) {
		return TKM_E_INVALID_ARG;
	}
	if (id_ok(id) && id_eq(id, "PB")) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "add the padding block with tkm_tr31_opt_add_pb");
	}
	for (size_t i = 0; i < data_len; i++) {
		if (!is_print(data[i])) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "optional block data must be printable ASCII");
		}
	}
	err = opt_reserve(hdr, id, data_len, &dst, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (data_len > 0) {
		memcpy(dst, data, data_len);
	}
	return TKM_OK;
}

static void hex_encode(char *dst, const uint8_t *bin, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		put_hex(dst + 2 * i, 2, bin[i]);
	}
}

tkm_err tkm_tr31_opt_add_hex(tkm_tr31_header *hdr, const char *id, const uint8_t *bin,
                             size_t bin_len, char *why, size_t why_len)
{
	char *dst;
	tkm_err err;

	if (hdr == NULL || id == NULL || bin == NULL || bin_len == 0) {
		return TKM_E_INVALID_ARG;
	}
	if (bin_len > TKM_TR31_MAX_LEN / 2) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "optional block %s: %zu bytes do not fit a key block", id,
		                    bin_len);
	}
	if (id_ok(id) && id_eq(id, "PB")) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "add the padding block with tkm_tr31_opt_add_pb");
	}
	err = opt_reserve(hdr, id, 2 * bin_len, &dst, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	hex_encode(dst, bin, bin_len);
	return TKM_OK;
}

tkm_err tkm_tr31_opt_add_kcv(tkm_tr31_header *hdr, const char *id, const tkm_tr31_kcv *kcv,
                             char *why, size_t why_len)
{
	char *dst;
	tkm_err err;

	if (hdr == NULL || id == NULL || kcv == NULL) {
		return TKM_E_INVALID_ARG;
	}
	if (!id_ok(id) || !(id_eq(id, "KC") || id_eq(id, "KP") || id_eq(id, "PK"))) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "a KCV goes in optional block KC, KP or PK");
	}
	if (kcv->algorithm > TKM_TR31_KCV_CMAC || kcv->len < 2 ||
	    kcv->len > (kcv->algorithm == TKM_TR31_KCV_LEGACY ? 3u : 5u)) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "optional block %s: a KCV is 2-3 bytes (legacy) or 2-5 bytes (CMAC)", id);
	}
	err = opt_reserve(hdr, id, 2 + 2 * kcv->len, &dst, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	put_hex(dst, 2, kcv->algorithm);
	hex_encode(dst + 2, kcv->kcv, kcv->len);
	return TKM_OK;
}

tkm_err tkm_tr31_opt_add_pb(tkm_tr31_header *hdr, const char *fill, size_t fill_len, char *why,
                            size_t why_len)
{
	size_t block_len = 0, len = 0, need;
	char *dst;
	tkm_err err;

	if (hdr == NULL) {
		return TKM_E_INVALID_ARG;
	}
	err = tkm_tr31_version_params(hdr->version, &block_len, NULL, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	err = header_len(hdr, &len, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	need = (block_len - len % block_len) % block_len;
	if (need == 0) {
		return TKM_OK;
	}
	/* The block's own ID and length take 4 characters: go one block further. */
	if (need < 4) {
		need += block_len;
	}
	if (fill != NULL && fill_len < need - 4) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "padding block needs %zu fill characters, %zu given", need - 4,
		                    fill_len);
	}
	for (size_t i = 0; fill != NULL && i < need - 4; i++) {
		if (!is_print(fill[i])) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "padding block fill must be printable ASCII");
		}
	}
	err = opt_reserve(hdr, "PB", need - 4, &dst, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (fill != NULL) {
		memcpy(dst, fill, need - 4);
	} else {
		memset(dst, '0', need - 4);
	}
	return TKM_OK;
}

const tkm_tr31_opt *tkm_tr31_opt_find(const tkm_tr31_header *hdr, const char *id)
{
	if (hdr == NULL || !id_ok(id)) {
		return NULL;
	}
	for (size_t i = 0; i < hdr->n_opt && i < TKM_TR31_MAX_OPT; i++) {
		if (id_eq(hdr->opt[i].id, id)) {
			return &hdr->opt[i];
		}
	}
	return NULL;
}

const char *tkm_tr31_opt_data(const tkm_tr31_header *hdr, const tkm_tr31_opt *opt)
{
	if (hdr == NULL || opt == NULL) {
		return NULL;
	}
	return hdr->opt_data + opt->data_off;
}

tkm_err tkm_tr31_opt_kcv(const tkm_tr31_header *hdr, const char *id, tkm_tr31_kcv *out, char *why,
                         size_t why_len)
{
	const tkm_tr31_opt *opt;

	if (hdr == NULL || id == NULL || out == NULL) {
		return TKM_E_INVALID_ARG;
	}
	memset(out, 0, sizeof(*out));
	opt = tkm_tr31_opt_find(hdr, id);
	if (opt == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no optional block %s", id);
	}
	return kcv_parse(opt->id, hdr->opt_data + opt->data_off, opt->data_len, out, why, why_len);
}

/*
 * The payload rules shared by build, parse and the header encoder: the key
 * length fits the 16-bit bit count and the algorithm, the payload is whole
 * cipher blocks, and padding of a block or more only ever hides the key
 * length (X9.143 key length obfuscation: the payload of the algorithm's
 * largest key).
 */
static tkm_err payload_rules(char version, char algorithm, size_t key_len, size_t pad_len,
                             size_t *out, char *why, size_t why_len)
{
	size_t block_len = 0, max_key = 0, total;
	tkm_err err;

	err = tkm_tr31_version_params(version, &block_len, NULL, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (key_len == 0) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "the payload holds no key");
	}
	if (key_len > TKM_TR31_MAX_LEN / 2 || pad_len > TKM_TR31_MAX_LEN / 2) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "a %zu-byte key with %zu bytes of padding does not fit a key block", key_len,
		    pad_len);
	}
	if (algorithm == 'T') {
		max_key = 24;
		if (key_len == 8) {
			return tkm_why_fail(
			    why, why_len, TKM_E_BAD_REQUEST,
			    "a single-length (8-byte) DES key is refused: X9.24-1:2017 "
			    "retired single DES");
		}
		if (key_len != 16 && key_len != 24) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "a TDES key is 16 or 24 bytes, not %zu", key_len);
		}
	} else if (algorithm == 'A') {
		max_key = 32;
		if (key_len != 16 && key_len != 24 && key_len != 32) {
			return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
			                    "an AES key is 16, 24 or 32 bytes, not %zu", key_len);
		}
	}
	total = 2 + key_len + pad_len;
	if (total % block_len != 0) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "payload of %zu bytes (2 + %zu key + %zu padding) is not whole %zu-byte "
		    "blocks",
		    total, key_len, pad_len, block_len);
	}
	if (pad_len >= block_len &&
	    (max_key == 0 || total != (2 + max_key + block_len - 1) / block_len * block_len)) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "%zu bytes of padding is a block or more and does not pad to the "
		    "algorithm's largest key",
		    pad_len);
	}
	*out = total;
	return TKM_OK;
}

tkm_err tkm_tr31_payload_len(char version, char algorithm, size_t key_len, size_t pad_len,
                             size_t *out, char *why, size_t why_len)
{
	if (out == NULL) {
		return TKM_E_INVALID_ARG;
	}
	return payload_rules(version, algorithm, key_len, pad_len, out, why, why_len);
}

tkm_err tkm_tr31_payload_build(char version, char algorithm, const uint8_t *key, size_t key_len,
                               const uint8_t *pad, size_t pad_len, uint8_t *out, size_t out_len,
                               char *why, size_t why_len)
{
	size_t total = 0;
	tkm_err err;

	if (key == NULL || out == NULL || (pad == NULL && pad_len > 0)) {
		return TKM_E_INVALID_ARG;
	}
	err = payload_rules(version, algorithm, key_len, pad_len, &total, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (out_len != total) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "payload buffer is %zu bytes, the payload %zu", out_len, total);
	}
	out[0] = (uint8_t)((key_len * 8) >> 8);
	out[1] = (uint8_t)(key_len * 8);
	memcpy(out + 2, key, key_len);
	if (pad_len > 0) {
		memcpy(out + 2 + key_len, pad, pad_len);
	}
	return TKM_OK;
}

tkm_err tkm_tr31_payload_parse(char version, char algorithm, const uint8_t *payload,
                               size_t payload_len, size_t *key_len, char *why, size_t why_len)
{
	size_t block_len = 0, bits, klen, total = 0;
	tkm_err err;

	if (payload == NULL || key_len == NULL) {
		return TKM_E_INVALID_ARG;
	}
	*key_len = 0;
	err = tkm_tr31_version_params(version, &block_len, NULL, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (payload_len < block_len || payload_len % block_len != 0) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "payload of %zu bytes is not whole %zu-byte blocks",
		                    payload_len, block_len);
	}
	bits = (size_t)payload[0] << 8 | payload[1];
	if (bits == 0 || bits % 8 != 0) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key length of %zu bits is not a whole number of bytes", bits);
	}
	klen = bits / 8;
	if (klen > payload_len - 2) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key length of %zu bytes does not fit the %zu-byte payload",
		                    klen, payload_len);
	}
	err = payload_rules(version, algorithm, klen, payload_len - 2 - klen, &total, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	*key_len = klen;
	return TKM_OK;
}

/*
 * Security strength in bits (NIST SP 800-57 Part 1 Rev. 5, table 2): 2-key
 * TDES 80, 3-key TDES 112, AES its key size. 0 for anything else.
 */
static unsigned strength(char alg, size_t len, const char **name)
{
	static const struct {
		char alg;
		size_t len;
		unsigned bits;
		const char *name;
	} table[] = {
	    {'T', 16, 80, "2-key TDES"}, {'T', 24, 112, "3-key TDES"}, {'A', 16, 128, "AES-128"},
	    {'A', 24, 192, "AES-192"},   {'A', 32, 256, "AES-256"},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].alg == alg && table[i].len == len) {
			*name = table[i].name;
			return table[i].bits;
		}
	}
	*name = "";
	return 0;
}

/*
 * X9.24-1:2017 requires a key to be protected by a key of equal or greater
 * strength; X9.143's WP ("wrapping pedigree") block exists to flag the
 * opposite, which tkm refuses instead of flagging. So: TDES under an AES
 * KBPK is fine, AES under TDES is not (AES-128 > 112 bits), AES-256 under
 * AES-128 is not, 3-key under 2-key TDES is not. The version fixes the KBPK
 * algorithm: B is TDES, D is AES. A and C bind with key variants, which
 * X9.143 keeps for legacy only: tkm reads them but never wraps with them.
 */
tkm_err tkm_tr31_kbpk_ok(char version, char kbpk_alg, size_t kbpk_len, char key_alg, size_t key_len,
                         char *why, size_t why_len)
{
	const char *kbpk_name, *key_name;
	unsigned kbpk_bits, key_bits;
	tkm_err err;

	err = tkm_tr31_version_params(version, NULL, NULL, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (version == 'A' || version == 'C') {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "version %c (key variant binding) is accepted for import only; wrap "
		    "with B (TDES) or D (AES)",
		    version);
	}
	if ((version == 'B' && kbpk_alg != 'T') || (version == 'D' && kbpk_alg != 'A')) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST, "version %c needs a%s KBPK",
		                    version, version == 'B' ? " TDES" : "n AES");
	}
	kbpk_bits = strength(kbpk_alg, kbpk_len, &kbpk_name);
	if (kbpk_bits == 0) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "a %zu-byte KBPK is not a TDES (16, 24) or AES (16, 24, 32) key", kbpk_len);
	}
	key_bits = strength(key_alg, key_len, &key_name);
	if (key_bits == 0) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "tkm wraps TDES (16 or 24 bytes) and AES (16, 24 or 32 bytes) keys, "
		    "not '%c' of %zu bytes",
		    show(key_alg), key_len);
	}
	if (key_bits > kbpk_bits) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "a %s key (%u-bit strength) may not be wrapped under a weaker %s KBPK "
		    "(%u-bit)",
		    key_name, key_bits, kbpk_name, kbpk_bits);
	}
	return TKM_OK;
}

/* Write one optional block at out; returns its length. */
static size_t encode_opt(const tkm_tr31_header *hdr, const tkm_tr31_opt *opt, char *out)
{
	size_t len = 0, ext = 0, p;

	(void)opt_wire_len(opt, &len, &ext);
	out[0] = opt->id[0];
	out[1] = opt->id[1];
	if (ext == 0) {
		put_hex(out + 2, 2, len);
		p = 4;
	} else {
		memcpy(out + 2, "00", 2);
		put_hex(out + 4, 2, ext);
		put_hex(out + 6, ext, len);
		p = 6 + ext;
	}
	memcpy(out + p, hdr->opt_data + opt->data_off, opt->data_len);
	return len;
}

tkm_err tkm_tr31_encode_header(const tkm_tr31_header *hdr, size_t key_len, size_t pad_len,
                               char *out, size_t out_cap, tkm_tr31_layout *layout, char *why,
                               size_t why_len)
{
	size_t block_len = 0, mac_len = 0, hlen = 0, payload = 0, total, pos;
	tkm_err err;

	if (hdr == NULL || out == NULL || layout == NULL) {
		return TKM_E_INVALID_ARG;
	}
	memset(layout, 0, sizeof(*layout));
	err = tkm_tr31_header_check(hdr, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	err = tkm_tr31_version_params(hdr->version, &block_len, &mac_len, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	err = header_len(hdr, &hlen, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (hlen % block_len != 0) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST,
		    "header is %zu characters, not a multiple of version %c's %zu-byte "
		    "block: add a PB block",
		    hlen, hdr->version, block_len);
	}
	err = payload_rules(hdr->version, hdr->algorithm, key_len, pad_len, &payload, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	total = hlen + 2 * payload + 2 * mac_len;
	if (total > TKM_TR31_MAX_LEN) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "key block would be %zu characters; the length field allows %d",
		                    total, TKM_TR31_MAX_LEN);
	}
	if (out_cap < hlen) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "header needs %zu characters, the buffer holds %zu", hlen,
		                    out_cap);
	}
	out[0] = hdr->version;
	put_dec(out + 1, 4, total);
	memcpy(out + 5, hdr->usage, 2);
	out[7] = hdr->algorithm;
	out[8] = hdr->mode;
	memcpy(out + 9, hdr->key_version, 2);
	out[11] = hdr->exportability;
	put_dec(out + 12, 2, hdr->n_opt);
	out[14] = hdr->key_context;
	out[15] = hdr->reserved;
	pos = TKM_TR31_FIXED_LEN;
	for (size_t i = 0; i < hdr->n_opt; i++) {
		pos += encode_opt(hdr, &hdr->opt[i], out + pos);
	}
	layout->total_len = total;
	layout->header_len = hlen;
	layout->payload_off = hlen;
	layout->payload_len = payload;
	layout->mac_off = hlen + 2 * payload;
	layout->mac_len = mac_len;
	layout->block_len = block_len;
	return TKM_OK;
}
