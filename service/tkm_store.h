/*
 * tkm_store.h - tkmd's SQLite database. All SQL in tkm lives behind tkm_store_*.
 *
 * Opening creates the file if needed (never its directory), turns on WAL,
 * synchronous=FULL and foreign keys, and brings the schema up to
 * TKM_STORE_SCHEMA_VERSION through numbered migrations recorded in
 * PRAGMA user_version. A database written by a newer tkm is refused.
 * The handle is safe to use from several threads (SQLite serialized mode).
 */
#ifndef TKM_STORE_H
#define TKM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_audit.h"

/* The schema this build knows; migration N brings user_version to N. */
#define TKM_STORE_SCHEMA_VERSION 5

typedef struct tkm_store tkm_store;

/*
 * Open or create the database at path and run pending migrations. Fails with
 * TKM_E_IO (missing directory, unreadable or corrupt file, SQLite error) or
 * TKM_E_FAILED_PRECONDITION (schema newer than this build), with a sentence
 * in why.
 */
TKM_MUST_CHECK tkm_err tkm_store_open(const char *path, tkm_store **out, char *why, size_t why_len);

/* NULL-safe. */
void tkm_store_close(tkm_store *st);

/* The schema version of the open database (TKM_STORE_SCHEMA_VERSION after open). */
int tkm_store_schema_version(const tkm_store *st);

/*
 * Copy the meta value stored under key into buf (NUL-terminated). TKM_E_NOT_FOUND
 * if there is none, TKM_E_RESOURCE_EXHAUSTED if it does not fit.
 */
TKM_MUST_CHECK tkm_err tkm_store_meta_get(tkm_store *st, const char *key, char *buf,
                                          size_t buf_len);

/*
 * Open an existing database read-only, for verifying a copy or a backup.
 * Nothing is migrated; a schema without the audit tables (older than 2) or
 * newer than this build is refused with TKM_E_FAILED_PRECONDITION.
 */
TKM_MUST_CHECK tkm_err tkm_store_open_readonly(const char *path, tkm_store **out, char *why,
                                               size_t why_len);

/* ---- Writes: one writer thread, group commit ---- */

/* The writer's open transaction, handed to a change callback. */
typedef struct tkm_store_tx tkm_store_tx;

/* A change: runs its SQL through tkm_store_tx_* and returns TKM_OK to keep it. */
typedef tkm_err (*tkm_store_change_fn)(tkm_store_tx *tx, void *arg, char *why, size_t why_len);

/* Signs a checkpoint message with the audit key (tkm_hsm_audit_sign in tkmd). */
typedef tkm_err (*tkm_store_sign_fn)(void *ctx, const uint8_t *msg, size_t msg_len,
                                     uint8_t sig[static TKM_AUDIT_SIG_LEN], char *why,
                                     size_t why_len);

typedef struct tkm_store_writer_cfg {
	tkm_store_sign_fn sign; /* NULL: no checkpoints */
	void *sign_ctx;
	const uint8_t *key_id; /* stored with each checkpoint; at most TKM_AUDIT_KEY_ID_MAX */
	size_t key_id_len;
	uint64_t checkpoint_every;       /* records between checkpoints; 0 = never by count */
	uint32_t checkpoint_interval_ms; /* time between checkpoints; 0 = never by time */
	size_t max_batch;                /* changes per transaction; 0 = 1024 */
} tkm_store_writer_cfg;

/*
 * Start the writer thread with its own connection. It reads the chain head
 * (last seq and hash) from the database. TKM_E_FAILED_PRECONDITION if already
 * started or the store is read-only.
 */
TKM_MUST_CHECK tkm_err tkm_store_writer_start(tkm_store *st, const tkm_store_writer_cfg *cfg,
                                              char *why, size_t why_len);

/*
 * Run change (may be NULL: an audit record alone) and append rec to the audit
 * chain in one transaction shared with other callers' changes (group commit).
 * Blocks until that transaction has committed (synchronous=FULL) or failed.
 * If the change or the audit append fails, neither is kept and the error is
 * returned; other changes in the batch are not affected. *seq gets the
 * record's sequence number (seq may be NULL). rec->seq and rec->ts_ms are
 * ignored: the writer assigns them. The change runs on the writer thread:
 * it must not call tkm_store_write itself, nor block for long (it holds up
 * the whole batch).
 */
TKM_MUST_CHECK tkm_err tkm_store_write(tkm_store *st, tkm_store_change_fn change, void *arg,
                                       const tkm_audit_rec *rec, uint64_t *seq, char *why,
                                       size_t why_len);

/*
 * Sign a checkpoint now over the chain head if it has moved since the last
 * one (and wait for it). TKM_OK without a new checkpoint when nothing moved.
 */
TKM_MUST_CHECK tkm_err tkm_store_checkpoint_now(tkm_store *st, char *why, size_t why_len);

typedef struct tkm_store_writer_stats {
	uint64_t writes_ok;        /* acknowledged changes */
	uint64_t writes_failed;    /* changes that returned an error */
	uint64_t transactions;     /* committed batches */
	uint64_t max_batch_seen;   /* largest batch */
	uint64_t checkpoints;      /* checkpoints written */
	uint64_t checkpoint_fails; /* checkpoints that could not be signed or stored */
} tkm_store_writer_stats;

void tkm_store_writer_stats_get(tkm_store *st, tkm_store_writer_stats *out);

/* A bound value for tkm_store_tx_exec. */
typedef enum tkm_store_val_type {
	TKM_STORE_NULL,
	TKM_STORE_INT,
	TKM_STORE_TEXT, /* p, len: UTF-8 */
	TKM_STORE_BLOB, /* p, len */
} tkm_store_val_type;

typedef struct tkm_store_val {
	tkm_store_val_type type;
	int64_t i;
	const void *p;
	size_t len;
} tkm_store_val;

/*
 * Run one statement with ?1..?n bound to vals inside the writer's
 * transaction. For tkm_store_* modules only: handlers never see SQL.
 * SQLite errors become TKM_E_CONFLICT (constraint) or TKM_E_IO.
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_exec(tkm_store_tx *tx, const char *sql,
                                         const tkm_store_val *vals, size_t nvals, char *why,
                                         size_t why_len);

/* Set a meta value inside the writer's transaction (tkm_store_* modules only). */
TKM_MUST_CHECK tkm_err tkm_store_tx_meta_set(tkm_store_tx *tx, const char *key, const char *value,
                                             char *why, size_t why_len);

/* Read a meta value inside the writer's transaction, as tkm_store_meta_get. */
TKM_MUST_CHECK tkm_err tkm_store_tx_meta_get(tkm_store_tx *tx, const char *key, char *buf,
                                             size_t buf_len);

/* ---- Reading the audit log ---- */

/* The meta key holding the seq of the checkpoint the retained chain starts after. */
#define TKM_STORE_META_ANCHOR "audit_anchor_seq"
/* Most records in one page. */
#define TKM_STORE_PAGE_MAX 1000

/* An audit row as stored; pointers are valid during the callback only. */
typedef struct tkm_store_audit_row {
	tkm_audit_rec rec;
	const uint8_t *prev_hash;
	size_t prev_hash_len;
	const uint8_t *hash;
	size_t hash_len;
	bool malformed; /* a column had a type or content the writer never stores */
} tkm_store_audit_row;

typedef struct tkm_store_checkpoint_row {
	uint64_t seq;
	uint64_t ts_ms;
	const uint8_t *hash;
	size_t hash_len;
	const uint8_t *sig;
	size_t sig_len;
	const uint8_t *key_id;
	size_t key_id_len;
} tkm_store_checkpoint_row;

/*
 * In one read snapshot: the archive anchor (0 if nothing was archived), then
 * every checkpoint in seq order, then every audit record in seq order. A
 * callback's error stops the scan and is returned.
 */
TKM_MUST_CHECK tkm_err tkm_store_audit_scan(
    tkm_store *st, tkm_err (*on_checkpoint)(void *arg, const tkm_store_checkpoint_row *row),
    tkm_err (*on_record)(void *arg, const tkm_store_audit_row *row), void *arg,
    uint64_t *anchor_seq, char *why, size_t why_len);

/* The archive anchor now: records up to it were archived; 0 if none. */
TKM_MUST_CHECK tkm_err tkm_store_audit_anchor(tkm_store *st, uint64_t *anchor_seq, char *why,
                                              size_t why_len);

/* One page of the audit log: records with seq > after_seq and ts >= since_ms. */
typedef struct tkm_store_audit_query {
	uint64_t after_seq; /* the cursor: the last seq of the previous page, 0 first */
	uint64_t since_ms;  /* 0: from the start */
	size_t limit;       /* 1 to TKM_STORE_PAGE_MAX */
} tkm_store_audit_query;

/*
 * Call on_record for each record of the page in seq order; *more says
 * whether records follow it. Pages by seq cursor, never by OFFSET.
 */
TKM_MUST_CHECK tkm_err tkm_store_audit_page(tkm_store *st, const tkm_store_audit_query *q,
                                            tkm_err (*on_record)(void *arg,
                                                                 const tkm_store_audit_row *row),
                                            void *arg, bool *more, char *why, size_t why_len);

/* ---- Copies: backup and audit archive (tkm_store_copy.c) ---- */

typedef struct tkm_store_copy_info {
	uint64_t bytes;     /* size of the file written */
	uint64_t first_seq; /* audit records in it: first_seq..last_seq (0, 0 if none) */
	uint64_t last_seq;
	uint64_t checkpoint; /* the last signed checkpoint in it, 0 if none */
} tkm_store_copy_info;

/*
 * Write a consistent copy of the whole database to dest with SQLite's backup
 * API while writes go on: one read snapshot, written to a temporary file in
 * dest's directory, synced, then linked to dest (mode 0600). dest must be an
 * absolute path that does not exist yet (TKM_E_ALREADY_EXISTS); nothing is
 * left behind on failure.
 */
TKM_MUST_CHECK tkm_err tkm_store_backup(tkm_store *st, const char *dest, tkm_store_copy_info *info,
                                        char *why, size_t why_len);

/* Checks an archive file before the live records it holds are deleted. */
typedef tkm_err (*tkm_store_archive_check_fn)(void *ctx, const char *path, char *why,
                                              size_t why_len);

/*
 * Move the audit records older than before_ms out to the new file dest, cut
 * at the last signed checkpoint C whose record is older than before_ms: the
 * file gets records anchor+1..C and their checkpoints (a database that
 * tkm_audit_verify_file accepts), check() must accept it, and then one
 * transaction deletes those records, keeps checkpoint C as the new anchor and
 * appends rec (method "audit.archive"; its details are set here to
 * {"records", "through_seq"}) to the chain. TKM_E_FAILED_PRECONDITION when
 * no checkpoint is old enough. Archives run one at a time.
 */
TKM_MUST_CHECK tkm_err tkm_store_audit_archive(tkm_store *st, const char *dest, uint64_t before_ms,
                                               tkm_store_archive_check_fn check, void *check_ctx,
                                               const tkm_audit_rec *rec, tkm_store_copy_info *info,
                                               uint64_t *seq, char *why, size_t why_len);

#endif /* TKM_STORE_H */
