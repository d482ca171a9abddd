/*
 * tkm_audit.c - canonical audit record encoding, the hash chain, checkpoint
 * messages and the offline verifier.
 *
 * Everything here is pure computation over rows that tkm_store hands over;
 * no SQL and no key material. The verifier trusts nothing in the database
 * but the public key it is given.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tkm_audit.h"
#include "tkm_cbor.h"
#include "tkm_store.h"
#include "tkm_why.h"

#define TKM_AUDIT_CHECKPOINT_CTX "tkm audit checkpoint v1"
/* Format version of the record encoding, the "v" field. */
#define TKM_AUDIT_REC_VERSION 1
/* How far back the verifier looks to tell an insertion from a broken link. */
#define TKM_AUDIT_RING 1024

static const uint8_t tkm_audit_empty_map[1] = {0xa0};

const char *tkm_audit_fault_name(tkm_audit_fault f)
{
	switch (f) {
	case TKM_AUDIT_FAULT_NONE:
		return "none";
	case TKM_AUDIT_FAULT_CHANGED:
		return "changed";
	case TKM_AUDIT_FAULT_MISSING:
		return "missing";
	case TKM_AUDIT_FAULT_INSERTED:
		return "inserted";
	case TKM_AUDIT_FAULT_LINK:
		return "out of order";
	case TKM_AUDIT_FAULT_GENESIS:
		return "bad genesis";
	case TKM_AUDIT_FAULT_MALFORMED:
		return "malformed";
	case TKM_AUDIT_FAULT_CHECKPOINT:
		return "checkpoint mismatch";
	case TKM_AUDIT_FAULT_SIGNATURE:
		return "bad checkpoint signature";
	case TKM_AUDIT_FAULT_TRUNCATED:
		return "truncated";
	case TKM_AUDIT_FAULT_ANCHOR:
		return "bad archive cut";
	}
	return "unknown";
}

/* Encoded-key order of RFC 8949 4.2.1: shorter first, then bytewise. */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen) {
		return alen < blen ? -1 : 1;
	}
	return memcmp(a, b, alen); /* lint: memcmp ok (public data) */
}

/*
 * Re-encode v with the shortest forms and check map key order; a canonical
 * input re-encodes to itself.
 */
static bool reencode(tkm_cbor_w *w, const tkm_cbor_val *v)
{
	const tkm_cbor_val *c;
	const uint8_t *p, *prev = NULL;
	const char *s;
	size_t len, prev_len = 0;
	uint64_t u;
	int64_t i;
	bool b;

	switch (tkm_cbor_type_of(v)) {
	case TKM_CBOR_UINT:
		return tkm_cbor_get_uint(v, &u) && (tkm_cbor_put_uint(w, u), true);
	case TKM_CBOR_NINT:
		return tkm_cbor_get_int(v, &i) && (tkm_cbor_put_int(w, i), true);
	case TKM_CBOR_BYTES:
		return tkm_cbor_get_bytes(v, &p, &len) && (tkm_cbor_put_bytes(w, p, len), true);
	case TKM_CBOR_TEXT:
		return tkm_cbor_get_text(v, &s, &len) && (tkm_cbor_put_text(w, s, len), true);
	case TKM_CBOR_BOOL:
		return tkm_cbor_get_bool(v, &b) && (tkm_cbor_put_bool(w, b), true);
	case TKM_CBOR_NULL:
		tkm_cbor_put_null(w);
		return true;
	case TKM_CBOR_ARRAY:
		tkm_cbor_put_array(w, tkm_cbor_count(v));
		for (c = tkm_cbor_first(v); c != NULL; c = tkm_cbor_next(c)) {
			if (!reencode(w, c)) {
				return false;
			}
		}
		return true;
	case TKM_CBOR_MAP:
		tkm_cbor_put_map(w, tkm_cbor_count(v));
		for (c = tkm_cbor_first(v); c != NULL; c = tkm_cbor_next(tkm_cbor_next(c))) {
			tkm_cbor_raw(c, &p, &len);
			if (prev != NULL && key_cmp(prev, prev_len, p, len) >= 0) {
				return false;
			}
			prev = p;
			prev_len = len;
			if (!reencode(w, c) || !reencode(w, tkm_cbor_next(c))) {
				return false;
			}
		}
		return true;
	}
	return false;
}

static tkm_err check_details(const uint8_t *d, size_t len, char *why, size_t why_len)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *w = NULL;
	const uint8_t *p = NULL;
	bool canonical;
	size_t n = 0;
	tkm_err err;

	lim.max_depth = 4;
	lim.max_str_len = TKM_AUDIT_DETAILS_MAX;
	err = tkm_cbor_decode(d, len, &lim, &doc, why, why_len);
	if (err != TKM_OK) {
		err = TKM_E_INVALID_ARG;
		goto out;
	}
	if (!tkm_cbor_is(tkm_cbor_root(doc), TKM_CBOR_MAP)) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "audit details are not a map");
		goto out;
	}
	err = tkm_cbor_w_new(len, &w);
	if (err != TKM_OK) {
		goto out;
	}
	canonical =
	    reencode(w, tkm_cbor_root(doc)) && tkm_cbor_w_finish(w, &p, &n) == TKM_OK && n == len;
	canonical = canonical && memcmp(p, d, len) == 0; /* lint: memcmp ok (public data) */
	if (!canonical) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                   "audit details are not canonical CBOR (RFC 8949 4.2.1)");
		goto out;
	}
out:
	tkm_cbor_w_free(w);
	tkm_cbor_doc_free(doc);
	return err;
}

static tkm_err check_text(const char *name, const char *s, bool required, char *why, size_t why_len)
{
	size_t n;

	if (s == NULL) {
		return required ? tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                               "audit record has no %s", name)
		                : TKM_OK;
	}
	n = strnlen(s, TKM_AUDIT_TEXT_MAX + 1);
	if (n > TKM_AUDIT_TEXT_MAX || !tkm_cbor_utf8_valid((const uint8_t *)s, n)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "audit record field %s is too long or not UTF-8", name);
	}
	return TKM_OK;
}

tkm_err tkm_audit_rec_check(const tkm_audit_rec *rec, char *why, size_t why_len)
{
	tkm_err err;

	if ((err = check_text("principal", rec->principal, false, why, why_len)) != TKM_OK ||
	    (err = check_text("role", rec->role, false, why, why_len)) != TKM_OK ||
	    (err = check_text("method", rec->method, true, why, why_len)) != TKM_OK ||
	    (err = check_text("target", rec->target, false, why, why_len)) != TKM_OK ||
	    (err = check_text("outcome", rec->outcome, true, why, why_len)) != TKM_OK ||
	    (err = check_text("error_code", rec->error_code, false, why, why_len)) != TKM_OK) {
		return err;
	}
	if (rec->details == NULL) {
		return TKM_OK;
	}
	if (rec->details_len > TKM_AUDIT_DETAILS_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "audit details are %zu bytes, more than %d", rec->details_len,
		                    TKM_AUDIT_DETAILS_MAX);
	}
	return check_details(rec->details, rec->details_len, why, why_len);
}

static void put_opt_text(tkm_cbor_w *w, const char *s)
{
	if (s == NULL) {
		tkm_cbor_put_null(w);
	} else {
		tkm_cbor_put_cstr(w, s);
	}
}

/* Keys in encoded order: v ts seq role method target details outcome principal error_code. */
static tkm_err encode_w(const tkm_audit_rec *rec, tkm_cbor_w *w)
{
	tkm_cbor_put_map(w, 10);
	tkm_cbor_put_cstr(w, "v");
	tkm_cbor_put_uint(w, TKM_AUDIT_REC_VERSION);
	tkm_cbor_put_cstr(w, "ts");
	tkm_cbor_put_uint(w, rec->ts_ms);
	tkm_cbor_put_cstr(w, "seq");
	tkm_cbor_put_uint(w, rec->seq);
	tkm_cbor_put_cstr(w, "role");
	put_opt_text(w, rec->role);
	tkm_cbor_put_cstr(w, "method");
	put_opt_text(w, rec->method);
	tkm_cbor_put_cstr(w, "target");
	put_opt_text(w, rec->target);
	tkm_cbor_put_cstr(w, "details");
	if (rec->details == NULL) {
		tkm_cbor_put_raw(w, tkm_audit_empty_map, sizeof(tkm_audit_empty_map));
	} else {
		tkm_cbor_put_raw(w, rec->details, rec->details_len);
	}
	tkm_cbor_put_cstr(w, "outcome");
	put_opt_text(w, rec->outcome);
	tkm_cbor_put_cstr(w, "principal");
	put_opt_text(w, rec->principal);
	tkm_cbor_put_cstr(w, "error_code");
	put_opt_text(w, rec->error_code);
	return tkm_cbor_w_error(w);
}

/* Encode rec into a new writer *w (the caller frees it) and borrow its bytes. */
static tkm_err encode_new(const tkm_audit_rec *rec, tkm_cbor_w **w, const uint8_t **p, size_t *n)
{
	tkm_err err;

	err = tkm_cbor_w_new(TKM_AUDIT_CBOR_MAX, w);
	if (err == TKM_OK) {
		err = encode_w(rec, *w);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_finish(*w, p, n);
	}
	return err;
}

tkm_err tkm_audit_encode(const tkm_audit_rec *rec, uint8_t *buf, size_t cap, size_t *len)
{
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t n = 0;
	tkm_err err;

	err = encode_new(rec, &w, &p, &n);
	if (err != TKM_OK) {
		goto out;
	}
	if (n > cap) {
		err = TKM_E_RESOURCE_EXHAUSTED;
		goto out;
	}
	memcpy(buf, p, n);
	*len = n;
out:
	tkm_cbor_w_free(w);
	return err;
}

tkm_err tkm_audit_hash(const tkm_audit_rec *rec, const uint8_t prev_hash[static TKM_AUDIT_HASH_LEN],
                       uint8_t hash[static TKM_AUDIT_HASH_LEN])
{
	crypto_generichash_state hs;
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t n = 0;
	tkm_err err;

	err = encode_new(rec, &w, &p, &n);
	if (err != TKM_OK) {
		goto out;
	}
	if (crypto_generichash_init(&hs, NULL, 0, TKM_AUDIT_HASH_LEN) != 0 ||
	    crypto_generichash_update(&hs, prev_hash, TKM_AUDIT_HASH_LEN) != 0 ||
	    crypto_generichash_update(&hs, p, n) != 0 ||
	    crypto_generichash_final(&hs, hash, TKM_AUDIT_HASH_LEN) != 0) {
		err = TKM_E_CRYPTO;
		goto out;
	}
out:
	tkm_cbor_w_free(w);
	return err;
}

tkm_err tkm_audit_checkpoint_msg(uint64_t seq, const uint8_t hash[static TKM_AUDIT_HASH_LEN],
                                 uint64_t ts_ms, uint8_t *buf, size_t cap, size_t *len)
{
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t n = 0;
	tkm_err err;

	err = tkm_cbor_w_new(256, &w);
	if (err != TKM_OK) {
		goto out;
	}
	/* Encoded key order: "ts" (2), "ctx" < "seq" (3), "hash" (4). */
	tkm_cbor_put_map(w, 4);
	tkm_cbor_put_cstr(w, "ts");
	tkm_cbor_put_uint(w, ts_ms);
	tkm_cbor_put_cstr(w, "ctx");
	tkm_cbor_put_cstr(w, TKM_AUDIT_CHECKPOINT_CTX);
	tkm_cbor_put_cstr(w, "seq");
	tkm_cbor_put_uint(w, seq);
	tkm_cbor_put_cstr(w, "hash");
	tkm_cbor_put_bytes(w, hash, TKM_AUDIT_HASH_LEN);
	err = tkm_cbor_w_finish(w, &p, &n);
	if (err != TKM_OK) {
		goto out;
	}
	if (n > cap) {
		err = TKM_E_RESOURCE_EXHAUSTED;
		goto out;
	}
	memcpy(buf, p, n);
	*len = n;
out:
	tkm_cbor_w_free(w);
	return err;
}

/* ---- Verifier ---- */

struct verify_state {
	const uint8_t *pk;
	tkm_audit_report *rep;
	tkm_audit_checkpoint *cps; /* sorted by seq (the scan's order) */
	size_t ncps, cap_cps;
	size_t next_cp;      /* first checkpoint not yet matched against a record */
	uint64_t cp_bad_seq; /* first checkpoint with a bad signature, 0 if none */
	uint64_t expect;     /* seq the next record must have */
	uint8_t prev[TKM_AUDIT_HASH_LEN];
	uint8_t ring[TKM_AUDIT_RING][TKM_AUDIT_HASH_LEN];
	uint64_t ring_seq[TKM_AUDIT_RING];
	bool stopped;             /* a record fault was found; the walk stops */
	uint64_t anchor;          /* records up to it were archived (0: none) */
	uint64_t archive_through; /* through_seq of the last audit.archive record, 0 if none */
	uint64_t archive_seq;     /* that record's seq */
};

__attribute__((format(printf, 4, 5))) static void fault(struct verify_state *vs, tkm_audit_fault f,
                                                        uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	vs->rep->fault = f;
	vs->rep->bad_seq = seq;
	va_start(ap, fmt);
	if (vsnprintf(vs->rep->what, sizeof(vs->rep->what), fmt, ap) < 0) {
		vs->rep->what[0] = '\0';
	}
	va_end(ap);
}

static tkm_err on_checkpoint(void *arg, const tkm_store_checkpoint_row *row)
{
	struct verify_state *vs = arg;
	tkm_audit_checkpoint *cp;
	uint8_t msg[256];
	size_t n = 0;
	bool ok;

	if (vs->ncps == vs->cap_cps) {
		size_t cap = vs->cap_cps == 0 ? 64 : vs->cap_cps * 2;
		tkm_audit_checkpoint *p;

		if (cap > SIZE_MAX / sizeof(*p)) {
			return TKM_E_NOMEM;
		}
		p = realloc(vs->cps, cap * sizeof(*p));
		if (p == NULL) {
			return TKM_E_NOMEM;
		}
		vs->cps = p;
		vs->cap_cps = cap;
	}
	cp = &vs->cps[vs->ncps++];
	memset(cp, 0, sizeof(*cp));
	cp->seq = row->seq;
	cp->ts_ms = row->ts_ms;
	ok = row->hash_len == TKM_AUDIT_HASH_LEN && row->sig_len == TKM_AUDIT_SIG_LEN;
	if (ok) {
		memcpy(cp->hash, row->hash, TKM_AUDIT_HASH_LEN);
		memcpy(cp->sig, row->sig, TKM_AUDIT_SIG_LEN);
		ok = tkm_audit_checkpoint_msg(cp->seq, cp->hash, cp->ts_ms, msg, sizeof(msg), &n) ==
		         TKM_OK &&
		     crypto_sign_verify_detached(cp->sig, msg, n, vs->pk) == 0;
	}
	if (!ok && vs->cp_bad_seq == 0) {
		vs->cp_bad_seq = cp->seq == 0 ? 1 : cp->seq;
	}
	vs->rep->checkpoints++;
	vs->rep->last_checkpoint_seq = cp->seq;
	return TKM_OK;
}

/* The seq of an earlier record (before the previous one) whose hash is h, or 0. */
static uint64_t ring_find(const struct verify_state *vs, const uint8_t *h)
{
	for (size_t i = 0; i < TKM_AUDIT_RING; i++) {
		if (vs->ring_seq[i] == 0 || vs->ring_seq[i] + 1 >= vs->expect) {
			continue;
		}
		const uint8_t *r = vs->ring[i];

		if (memcmp(r, h, TKM_AUDIT_HASH_LEN) == 0) { /* lint: memcmp ok (public data) */
			return vs->ring_seq[i];
		}
	}
	return 0;
}

/* The through_seq an "audit.archive" record states, or 0 if it states none. */
static uint64_t archived_through(const tkm_audit_rec *rec)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_cbor_doc *doc = NULL;
	uint64_t through = 0;

	if (rec->method == NULL || strcmp(rec->method, TKM_AUDIT_METHOD_ARCHIVE) != 0 ||
	    rec->outcome == NULL || strcmp(rec->outcome, "ok") != 0) {
		return 0;
	}
	if (tkm_cbor_decode(rec->details, rec->details_len, &lim, &doc, NULL, 0) == TKM_OK &&
	    !tkm_cbor_get_uint(tkm_cbor_map_get(tkm_cbor_root(doc), "through_seq"), &through)) {
		through = 0;
	}
	tkm_cbor_doc_free(doc);
	return through;
}

/* Start the walk after the anchor: its signed checkpoint's hash is the first prev_hash. */
static bool start_at_anchor(struct verify_state *vs, uint64_t seq)
{
	for (size_t i = 0; i < vs->ncps; i++) {
		if (vs->cps[i].seq == vs->anchor) {
			memcpy(vs->prev, vs->cps[i].hash, TKM_AUDIT_HASH_LEN);
			vs->expect = vs->anchor + 1;
			vs->rep->first_seq = vs->expect;
			return true;
		}
	}
	vs->stopped = true;
	fault(vs, TKM_AUDIT_FAULT_GENESIS, seq,
	      "records up to %llu are marked archived, but their checkpoint is gone",
	      (unsigned long long)vs->anchor);
	return false;
}

static tkm_err on_record(void *arg, const tkm_store_audit_row *row)
{
	struct verify_state *vs = arg;
	tkm_audit_rec rec = row->rec;
	uint8_t h[TKM_AUDIT_HASH_LEN];
	uint64_t seq = rec.seq;
	uint64_t j;
	tkm_err err;

	if (vs->stopped) {
		return TKM_OK;
	}
	if (vs->rep->records == 0 && vs->anchor != 0 && !start_at_anchor(vs, seq)) {
		return TKM_OK;
	}
	vs->rep->records++;
	vs->rep->last_seq = seq;
	if (seq != vs->expect) {
		vs->stopped = true;
		if (vs->expect == vs->anchor + 1) {
			fault(vs, TKM_AUDIT_FAULT_GENESIS, vs->expect,
			      "the chain starts at record %llu, not %llu", (unsigned long long)seq,
			      (unsigned long long)vs->expect);
		} else {
			fault(vs, TKM_AUDIT_FAULT_MISSING, vs->expect,
			      "record %llu is missing (next present is %llu)",
			      (unsigned long long)vs->expect, (unsigned long long)seq);
		}
		return TKM_OK;
	}
	if (row->malformed || row->prev_hash_len != TKM_AUDIT_HASH_LEN ||
	    row->hash_len != TKM_AUDIT_HASH_LEN) {
		vs->stopped = true;
		fault(vs, TKM_AUDIT_FAULT_MALFORMED, seq, "record %llu has a malformed column",
		      (unsigned long long)seq);
		return TKM_OK;
	}
	if (sodium_memcmp(row->prev_hash, vs->prev, TKM_AUDIT_HASH_LEN) != 0) {
		vs->stopped = true;
		if (seq == 1) {
			fault(vs, TKM_AUDIT_FAULT_GENESIS, 1,
			      "record 1 does not start from the zero hash");
		} else if ((j = ring_find(vs, row->prev_hash)) != 0) {
			fault(vs, TKM_AUDIT_FAULT_INSERTED, j + 1,
			      "records %llu..%llu were inserted after record %llu",
			      (unsigned long long)(j + 1), (unsigned long long)(seq - 1),
			      (unsigned long long)j);
		} else {
			fault(vs, TKM_AUDIT_FAULT_LINK, seq,
			      "record %llu does not follow record %llu (reordered or replaced)",
			      (unsigned long long)seq, (unsigned long long)(seq - 1));
		}
		return TKM_OK;
	}
	err = tkm_audit_hash(&rec, vs->prev, h);
	if (err != TKM_OK) {
		return err;
	}
	if (sodium_memcmp(h, row->hash, TKM_AUDIT_HASH_LEN) != 0) {
		vs->stopped = true;
		fault(vs, TKM_AUDIT_FAULT_CHANGED, seq, "record %llu was changed",
		      (unsigned long long)seq);
		return TKM_OK;
	}
	while (vs->next_cp < vs->ncps && vs->cps[vs->next_cp].seq <= seq) {
		const tkm_audit_checkpoint *cp = &vs->cps[vs->next_cp++];

		if (cp->seq == seq && sodium_memcmp(cp->hash, h, TKM_AUDIT_HASH_LEN) != 0) {
			vs->stopped = true;
			fault(vs, TKM_AUDIT_FAULT_CHECKPOINT, seq,
			      "record %llu does not match its signed checkpoint",
			      (unsigned long long)seq);
			return TKM_OK;
		}
	}
	if ((j = archived_through(&rec)) != 0) {
		vs->archive_through = j;
		vs->archive_seq = seq;
	}
	memcpy(vs->prev, h, TKM_AUDIT_HASH_LEN);
	memcpy(vs->ring[seq % TKM_AUDIT_RING], h, TKM_AUDIT_HASH_LEN);
	vs->ring_seq[seq % TKM_AUDIT_RING] = seq;
	vs->expect = seq + 1;
	return TKM_OK;
}

tkm_err tkm_audit_verify(tkm_store *st, const uint8_t pk[static TKM_AUDIT_PK_LEN],
                         tkm_audit_report *report, char *why, size_t why_len)
{
	struct verify_state *vs = NULL;
	tkm_err err;

	memset(report, 0, sizeof(*report));
	vs = calloc(1, sizeof(*vs));
	if (vs == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	vs->pk = pk;
	vs->rep = report;
	vs->expect = 1;
	report->first_seq = 1;
	err = tkm_store_audit_scan(st, on_checkpoint, on_record, vs, &vs->anchor, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	/*
	 * An anchor must be the cut that the last archive record in the chain
	 * describes: a cut moved later, or made without the archive record,
	 * deletes records that were never archived.
	 */
	if (!vs->stopped && vs->anchor != vs->archive_through &&
	    (vs->anchor != 0 || vs->archive_through != 0)) {
		vs->stopped = true;
		if (vs->rep->records == 0) {
			fault(vs, TKM_AUDIT_FAULT_TRUNCATED, vs->anchor + 1,
			      "records up to %llu are archived and none follow the cut",
			      (unsigned long long)vs->anchor);
		} else if (vs->archive_seq == 0) {
			fault(
			    vs, TKM_AUDIT_FAULT_ANCHOR, vs->anchor + 1,
			    "the chain starts after record %llu, but no audit.archive record says "
			    "records were archived",
			    (unsigned long long)vs->anchor);
		} else {
			fault(vs, TKM_AUDIT_FAULT_ANCHOR, vs->anchor + 1,
			      "the chain starts after record %llu, but the last archive record "
			      "(%llu) says records up to %llu were archived",
			      (unsigned long long)vs->anchor, (unsigned long long)vs->archive_seq,
			      (unsigned long long)vs->archive_through);
		}
	}
	/* A signed checkpoint beyond the last record: the tail was cut. */
	if (!vs->stopped && vs->ncps > 0 && vs->cps[vs->ncps - 1].seq >= vs->expect) {
		fault(vs, TKM_AUDIT_FAULT_TRUNCATED, vs->expect,
		      "records from %llu are gone, but checkpoint %llu signed them",
		      (unsigned long long)vs->expect,
		      (unsigned long long)vs->cps[vs->ncps - 1].seq);
	}
	/* The first bad seq over both walks. */
	if (vs->cp_bad_seq != 0 &&
	    (report->fault == TKM_AUDIT_FAULT_NONE || vs->cp_bad_seq <= report->bad_seq)) {
		fault(vs, TKM_AUDIT_FAULT_SIGNATURE, vs->cp_bad_seq,
		      "checkpoint %llu has a bad signature", (unsigned long long)vs->cp_bad_seq);
	}
	report->unsigned_tail = report->last_seq > report->last_checkpoint_seq
	                            ? report->last_seq - report->last_checkpoint_seq
	                            : 0;
out:
	if (vs != NULL) {
		free(vs->cps);
		free(vs);
	}
	return err;
}

tkm_err tkm_audit_verify_file(const char *path, const uint8_t pk[static TKM_AUDIT_PK_LEN],
                              tkm_audit_report *report, char *why, size_t why_len)
{
	tkm_store *st = NULL;
	tkm_err err;

	memset(report, 0, sizeof(*report));
	err = tkm_store_open_readonly(path, &st, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_audit_verify(st, pk, report, why, why_len);
out:
	tkm_store_close(st);
	return err;
}
