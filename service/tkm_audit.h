/*
 * tkm_audit.h - the audit record's canonical encoding, its hash chain and
 * checkpoints, and the offline verifier.
 *
 * A record is hashed as BLAKE2b-256(prev_hash || canonical CBOR of the
 * record); docs/audit.md lists the fields and their order. Checkpoints sign
 * (seq, hash, ts) with Ed25519. This module computes and checks; it holds no
 * key and runs no SQL (rows come from tkm_store_audit_scan).
 */
#ifndef TKM_AUDIT_H
#define TKM_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"

#define TKM_AUDIT_HASH_LEN   32 /* BLAKE2b-256 */
#define TKM_AUDIT_SIG_LEN    64 /* Ed25519 */
#define TKM_AUDIT_PK_LEN     32 /* Ed25519 */
#define TKM_AUDIT_KEY_ID_MAX 64
/* Longest details map and longest text field, in bytes. */
#define TKM_AUDIT_DETAILS_MAX 4096
#define TKM_AUDIT_TEXT_MAX    1024
/* Longest canonical record: every field at its maximum, with CBOR headers. */
#define TKM_AUDIT_CBOR_MAX (TKM_AUDIT_DETAILS_MAX + 6 * TKM_AUDIT_TEXT_MAX + 256)

typedef struct tkm_store tkm_store;

/*
 * One audit record. Text fields are NUL-terminated UTF-8; NULL means absent
 * (encoded as CBOR null). details is a canonical CBOR map (NULL = empty map).
 * seq and ts_ms are assigned by the store's writer, not by the caller.
 */
typedef struct tkm_audit_rec {
	uint64_t seq;
	uint64_t ts_ms; /* Unix time in milliseconds */
	const char *principal;
	const char *role;
	const char *method;
	const char *target;
	const char *outcome; /* "ok", "error", "denied"... never NULL */
	const char *error_code;
	const uint8_t *details;
	size_t details_len;
} tkm_audit_rec;

/* A checkpoint row: the record seq whose hash was signed, and the signature. */
typedef struct tkm_audit_checkpoint {
	uint64_t seq;
	uint8_t hash[TKM_AUDIT_HASH_LEN];
	uint64_t ts_ms;
	uint8_t sig[TKM_AUDIT_SIG_LEN];
	uint8_t key_id[TKM_AUDIT_KEY_ID_MAX];
	size_t key_id_len;
} tkm_audit_checkpoint;

/*
 * Check rec's caller-supplied fields: outcome present, text valid UTF-8 and at
 * most TKM_AUDIT_TEXT_MAX bytes, details a canonical CBOR map (text keys in
 * RFC 8949 4.2.1 order) of at most TKM_AUDIT_DETAILS_MAX bytes.
 */
TKM_MUST_CHECK tkm_err tkm_audit_rec_check(const tkm_audit_rec *rec, char *why, size_t why_len);

/*
 * The canonical CBOR of rec into buf (cap bytes, TKM_AUDIT_CBOR_MAX suffices).
 * Does not validate; call tkm_audit_rec_check on untrusted input first.
 */
TKM_MUST_CHECK tkm_err tkm_audit_encode(const tkm_audit_rec *rec, uint8_t *buf, size_t cap,
                                        size_t *len);

/* hash = BLAKE2b-256(prev_hash || canonical CBOR of rec). */
TKM_MUST_CHECK tkm_err tkm_audit_hash(const tkm_audit_rec *rec,
                                      const uint8_t prev_hash[static TKM_AUDIT_HASH_LEN],
                                      uint8_t hash[static TKM_AUDIT_HASH_LEN]);

/*
 * The bytes a checkpoint signature covers: the canonical CBOR map
 * {"ts": ts_ms, "ctx": "tkm audit checkpoint v1", "seq": seq, "hash": hash}.
 */
TKM_MUST_CHECK tkm_err tkm_audit_checkpoint_msg(uint64_t seq,
                                                const uint8_t hash[static TKM_AUDIT_HASH_LEN],
                                                uint64_t ts_ms, uint8_t *buf, size_t cap,
                                                size_t *len);

/* What the verifier found first. */
typedef enum tkm_audit_fault {
	TKM_AUDIT_FAULT_NONE = 0,
	TKM_AUDIT_FAULT_CHANGED,    /* record's content does not hash to its stored hash */
	TKM_AUDIT_FAULT_MISSING,    /* a sequence number is absent (deleted record) */
	TKM_AUDIT_FAULT_INSERTED,   /* records spliced in between two chained records */
	TKM_AUDIT_FAULT_LINK,       /* prev_hash is not the previous record's hash (reordered) */
	TKM_AUDIT_FAULT_GENESIS,    /* first record is not seq 1 with a zero prev_hash */
	TKM_AUDIT_FAULT_MALFORMED,  /* a column has the wrong type or length */
	TKM_AUDIT_FAULT_CHECKPOINT, /* checkpoint hash differs from the record's hash */
	TKM_AUDIT_FAULT_SIGNATURE,  /* checkpoint signature does not verify */
	TKM_AUDIT_FAULT_TRUNCATED,  /* records up to a signed checkpoint are gone */
	TKM_AUDIT_FAULT_ANCHOR,     /* the archive cut is not the one the chain records */
} tkm_audit_fault;

/* The method of the record that an archive cut appends (docs/audit.md). */
#define TKM_AUDIT_METHOD_ARCHIVE "audit.archive"

typedef struct tkm_audit_report {
	tkm_audit_fault fault;
	uint64_t bad_seq;   /* the first bad sequence number when fault != NONE */
	char what[256];     /* one sentence for the operator */
	uint64_t first_seq; /* where the retained chain starts: 1, or after an archive cut */
	uint64_t records;   /* records walked */
	uint64_t last_seq;  /* highest record seq seen */
	uint64_t checkpoints;
	uint64_t last_checkpoint_seq; /* 0 if none */
	uint64_t unsigned_tail;       /* records after the last checkpoint: not protected */
} tkm_audit_report;

/* Name of a fault, for messages ("changed", "missing"...). */
const char *tkm_audit_fault_name(tkm_audit_fault f);

/*
 * Walk the whole chain and every checkpoint of st against the Ed25519 public
 * key pk. Returns TKM_OK with report->fault == NONE if all holds, TKM_OK with
 * a fault and the first bad seq if tampering is found, or an error if the
 * database cannot be read. See docs/audit.md for what is detectable.
 */
TKM_MUST_CHECK tkm_err tkm_audit_verify(tkm_store *st, const uint8_t pk[static TKM_AUDIT_PK_LEN],
                                        tkm_audit_report *report, char *why, size_t why_len);

/* The same on a database file opened read-only (a copy or a backup). */
TKM_MUST_CHECK tkm_err tkm_audit_verify_file(const char *path,
                                             const uint8_t pk[static TKM_AUDIT_PK_LEN],
                                             tkm_audit_report *report, char *why, size_t why_len);

#endif /* TKM_AUDIT_H */
