/*
 * tkm_store_terminal.h - the terminal registry in the database: terminal
 * records, their append-only maintenance and custody histories, the keys
 * bound at enrollment, and enrollment codes (by hash only). Reads take the
 * store; changes take the writer's transaction (tkm_store_tx), so that each
 * commits with its audit record.
 *
 * What the schema itself enforces (migration 5), whoever writes:
 * - (manufacturer, serial) is unique among live records (not revoked, not
 *   decommissioned); the same hardware comes back only as a new record;
 * - a record starts registered, is never deleted, keeps its manufacturer
 *   and serial, and never leaves revoked or decommissioned;
 * - a terminal is active only with keys bound; bound keys never change;
 * - maintenance and custody entries are never changed or deleted.
 * Which other transitions are allowed, and who may make them, is decided
 * above this module (docs/terminals.md); nothing here decides anything.
 */
#ifndef TKM_STORE_TERMINAL_H
#define TKM_STORE_TERMINAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_store.h"

#define TKM_STORE_TERMINAL_FIELD_MAX     64   /* bytes, without the NUL: names, ids, versions */
#define TKM_STORE_TERMINAL_NOTES_MAX     1024 /* notes and maintenance descriptions */
#define TKM_STORE_TERMINAL_DATE_LEN      10   /* YYYY-MM-DD */
#define TKM_STORE_TERMINAL_PRINCIPAL_MAX 128
#define TKM_STORE_TERMINAL_PK_LEN        32 /* Ed25519 and X25519 public keys */
#define TKM_STORE_ENROLL_HASH_LEN        32 /* the stored hash of an enrollment code */

typedef enum tkm_store_terminal_state {
	TKM_STORE_TERMINAL_ANY = 0, /* in filters only */
	TKM_STORE_TERMINAL_REGISTERED,
	TKM_STORE_TERMINAL_ACTIVE,
	TKM_STORE_TERMINAL_SUSPENDED,
	TKM_STORE_TERMINAL_REVOKED,
	TKM_STORE_TERMINAL_DECOMMISSIONED,
} tkm_store_terminal_state;

/* "registered", "active"...; NULL for ANY or a value out of range. */
const char *tkm_store_terminal_state_name(tkm_store_terminal_state s);

/* The state named by name (len bytes); false if it names none. */
bool tkm_store_terminal_state_parse(const char *name, size_t len, tkm_store_terminal_state *out);

/* A terminal record. Empty strings and 0 times stand for "not set". */
typedef struct tkm_store_terminal {
	int64_t id;
	char manufacturer[TKM_STORE_TERMINAL_FIELD_MAX + 1]; /* required */
	char serial[TKM_STORE_TERMINAL_FIELD_MAX + 1];       /* required */
	char model[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	char merchant[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	char site[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	char group[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	char purchase_date[TKM_STORE_TERMINAL_DATE_LEN + 1]; /* a real calendar date */
	tkm_store_terminal_state state;
	char firmware_version[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	char app_version[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	uint64_t enrolled_ms;
	uint64_t last_seen_ms;
	char notes[TKM_STORE_TERMINAL_NOTES_MAX + 1];
	uint64_t created_ms;
} tkm_store_terminal;

/* TKM_E_NOT_FOUND when there is no such record. */
TKM_MUST_CHECK tkm_err tkm_store_terminal_get(tkm_store *st, int64_t id, tkm_store_terminal *out,
                                              char *why, size_t why_len);

/* The live (not revoked, not decommissioned) record of that hardware; TKM_E_NOT_FOUND if none. */
TKM_MUST_CHECK tkm_err tkm_store_terminal_get_hw(tkm_store *st, const char *manufacturer,
                                                 const char *serial, tkm_store_terminal *out,
                                                 char *why, size_t why_len);

/* tkm_store_terminal_get inside the writer's transaction, for a change that decides on it. */
TKM_MUST_CHECK tkm_err tkm_store_tx_terminal_get(tkm_store_tx *tx, int64_t id,
                                                 tkm_store_terminal *out, char *why,
                                                 size_t why_len);

/* What a page of terminals is filtered by; zero fields filter nothing. */
typedef struct tkm_store_terminal_filter {
	const char *merchant; /* NULL: any */
	const char *site;     /* NULL: any */
	const char *group;    /* NULL: any */
	tkm_store_terminal_state state;
	uint64_t seen_since_ms;     /* last_seen >= this */
	uint64_t not_seen_since_ms; /* last_seen < this, or never seen */
} tkm_store_terminal_filter;

/*
 * Call fn for each record matching f with id > after_id, in id order, at most
 * limit (1 to TKM_STORE_PAGE_MAX) of them; *more says whether more match.
 * The next page starts after the last id seen. Pages by id cursor, never by
 * OFFSET. f may be NULL.
 */
TKM_MUST_CHECK tkm_err tkm_store_terminal_page(tkm_store *st, const tkm_store_terminal_filter *f,
                                               int64_t after_id, size_t limit,
                                               tkm_err (*fn)(void *arg,
                                                             const tkm_store_terminal *t),
                                               void *arg, bool *more, char *why, size_t why_len);

/*
 * Insert t as a new record in state registered, created at t->created_ms
 * (t->id, state, enrolled and last seen are ignored); *id gets its id.
 * TKM_E_ALREADY_EXISTS if the hardware has a live record, TKM_E_INVALID_ARG
 * for a missing manufacturer or serial, a bad date or text that is not
 * UTF-8.
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_terminal_insert(tkm_store_tx *tx, const tkm_store_terminal *t,
                                                    int64_t *id, char *why, size_t why_len);

typedef enum tkm_store_import_result {
	TKM_STORE_IMPORT_INSERTED = 1, /* a new record */
	TKM_STORE_IMPORT_UNCHANGED,    /* the live record already says exactly this */
	TKM_STORE_IMPORT_UPDATED,      /* a registered record took the new registry fields */
} tkm_store_import_result;

/*
 * One import row, idempotent. The registry fields are model, merchant, site,
 * group, purchase date and notes. No live record of the hardware: inserted
 * as by tkm_store_tx_terminal_insert (versions too). A live record with the
 * same registry fields: unchanged. Different registry fields: a registered
 * record takes them (updated); any later state is TKM_E_CONFLICT, because a
 * terminal that has been enrolled moves merchant or site only by an explicit
 * command. Versions, state and times of an existing record are never touched
 * nor compared: the device reports its versions. *id gets the record's id.
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_terminal_import(tkm_store_tx *tx, const tkm_store_terminal *t,
                                                    int64_t *id, tkm_store_import_result *result,
                                                    char *why, size_t why_len);

/*
 * Move a record from state `from` to `to`. TKM_E_NOT_FOUND if there is no
 * such record, TKM_E_CONFLICT if it is not in `from` (someone was first) or
 * the schema refuses the move (out of revoked or decommissioned; to active
 * without bound keys).
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_terminal_set_state(tkm_store_tx *tx, int64_t id,
                                                       tkm_store_terminal_state from,
                                                       tkm_store_terminal_state to, char *why,
                                                       size_t why_len);

/* The versions the device reported (NULL or "": not known). TKM_E_NOT_FOUND if no record. */
TKM_MUST_CHECK tkm_err tkm_store_tx_terminal_set_versions(tkm_store_tx *tx, int64_t id,
                                                          const char *firmware_version,
                                                          const char *app_version, char *why,
                                                          size_t why_len);

/* ---- Enrollment: keys bound to a record ---- */

typedef struct tkm_store_terminal_keys {
	int64_t terminal_id;
	char principal[TKM_STORE_TERMINAL_PRINCIPAL_MAX + 1];
	uint8_t sign_pk[TKM_STORE_TERMINAL_PK_LEN]; /* Ed25519: the device signs requests */
	uint8_t box_pk[TKM_STORE_TERMINAL_PK_LEN];  /* X25519: sealed secrets go to it */
	uint64_t bound_ms;
} tkm_store_terminal_keys;

/*
 * Bind the device principal and its public keys to a registered record and
 * make it active, enrolled at now_ms, in one step. TKM_E_NOT_FOUND if there
 * is no such record, TKM_E_CONFLICT if it is not registered (an active
 * terminal is not enrolled again), TKM_E_ALREADY_EXISTS if the principal is
 * bound to another record. The principal's row in the device table
 * (tkm_store_tx_device_insert) is the caller's, in the same change.
 */
TKM_MUST_CHECK tkm_err
tkm_store_tx_terminal_set_enrolled(tkm_store_tx *tx, int64_t id, const char *principal,
                                   const uint8_t sign_pk[static TKM_STORE_TERMINAL_PK_LEN],
                                   const uint8_t box_pk[static TKM_STORE_TERMINAL_PK_LEN],
                                   uint64_t now_ms, char *why, size_t why_len);

/* The keys bound to a record; TKM_E_NOT_FOUND if it was never enrolled. */
TKM_MUST_CHECK tkm_err tkm_store_terminal_keys_get(tkm_store *st, int64_t id,
                                                   tkm_store_terminal_keys *out, char *why,
                                                   size_t why_len);

/*
 * The record a device principal was bound to, and its keys, whatever the
 * record's state now (a revoked one too: refusing it is the caller's).
 * TKM_E_NOT_FOUND if the principal was never bound.
 */
TKM_MUST_CHECK tkm_err tkm_store_terminal_by_principal(tkm_store *st, const char *principal,
                                                       tkm_store_terminal *t,
                                                       tkm_store_terminal_keys *keys, char *why,
                                                       size_t why_len);

/* ---- Enrollment codes: only their hash is stored ---- */

/*
 * Store the hash of a new code for a registered record, valid until
 * expires_ms. The record's older unused codes expire at created_ms: one code
 * is outstanding per terminal. TKM_E_NOT_FOUND if there is no such record,
 * TKM_E_FAILED_PRECONDITION if it is not registered, TKM_E_ALREADY_EXISTS if
 * the hash is already stored.
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_enroll_code_insert(
    tkm_store_tx *tx, const uint8_t hash[static TKM_STORE_ENROLL_HASH_LEN], int64_t terminal_id,
    uint64_t created_ms, uint64_t expires_ms, char *why, size_t why_len);

/* Why a code was not accepted. */
typedef enum tkm_store_code_fault {
	TKM_STORE_CODE_OK = 0,
	TKM_STORE_CODE_UNKNOWN, /* no such hash: never issued, or mistyped */
	TKM_STORE_CODE_USED,    /* consumed before */
	TKM_STORE_CODE_EXPIRED, /* past its time, or superseded by a newer code */
} tkm_store_code_fault;

/*
 * Mark the code with this hash used at now_ms and give its terminal's id.
 * Unknown: TKM_E_NOT_FOUND. Used or expired: TKM_E_FAILED_PRECONDITION, and
 * *terminal_id still names the record (for the audit record of the
 * attempt). *fault tells the three apart (fault may be NULL). A failed
 * change rolls back with its audit record, so the caller audits a refused
 * code in a write of its own.
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_enroll_code_consume(
    tkm_store_tx *tx, const uint8_t hash[static TKM_STORE_ENROLL_HASH_LEN], uint64_t now_ms,
    int64_t *terminal_id, tkm_store_code_fault *fault, char *why, size_t why_len);

/* ---- Check-in: last seen, batched by the caller ---- */

typedef struct tkm_store_terminal_seen {
	int64_t id;
	uint64_t ts_ms;
} tkm_store_terminal_seen;

/*
 * Set last_seen for each (id, ts) with one prepared statement; last_seen
 * never moves back, so batches may be written out of order. Ids with no
 * record are skipped. *updated (may be NULL) gets how many records moved.
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_terminal_touch_many(tkm_store_tx *tx,
                                                        const tkm_store_terminal_seen *seen,
                                                        size_t n, size_t *updated, char *why,
                                                        size_t why_len);

/* ---- Histories: append-only ---- */

typedef struct tkm_store_maintenance {
	int64_t seq; /* the cursor */
	int64_t terminal_id;
	char at[TKM_STORE_TERMINAL_DATE_LEN + 1];
	char kind[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	char description[TKM_STORE_TERMINAL_NOTES_MAX + 1];
	char technician[TKM_STORE_TERMINAL_FIELD_MAX + 1];
	uint64_t recorded_ms;
} tkm_store_maintenance;

typedef enum tkm_store_custody_action {
	TKM_STORE_CUSTODY_RECEIVED = 1,
	TKM_STORE_CUSTODY_RETURNED,
} tkm_store_custody_action;

/* "received" or "returned"; NULL for a value out of range. */
const char *tkm_store_custody_action_name(tkm_store_custody_action a);
bool tkm_store_custody_action_parse(const char *name, size_t len, tkm_store_custody_action *out);

typedef struct tkm_store_custody {
	int64_t seq;
	int64_t terminal_id;
	char at[TKM_STORE_TERMINAL_DATE_LEN + 1];
	tkm_store_custody_action action;
	char person[TKM_STORE_TERMINAL_FIELD_MAX + 1];       /* who received or returned it */
	char counterparty[TKM_STORE_TERMINAL_FIELD_MAX + 1]; /* from or to whom; "" unknown */
	uint64_t recorded_ms;
} tkm_store_custody;

/*
 * Append an entry (m->seq and m->terminal_id are ignored; recorded at
 * now_ms); *seq (may be NULL) gets its seq. at, kind and technician are
 * required. TKM_E_NOT_FOUND if there is no such record.
 */
TKM_MUST_CHECK tkm_err tkm_store_tx_maintenance_add(tkm_store_tx *tx, int64_t terminal_id,
                                                    const tkm_store_maintenance *m, uint64_t now_ms,
                                                    int64_t *seq, char *why, size_t why_len);

/* The same for custody; at, action and person are required. */
TKM_MUST_CHECK tkm_err tkm_store_tx_custody_add(tkm_store_tx *tx, int64_t terminal_id,
                                                const tkm_store_custody *c, uint64_t now_ms,
                                                int64_t *seq, char *why, size_t why_len);

/* A terminal's entries with seq > after_seq, oldest first, at most limit (1 to TKM_STORE_PAGE_MAX).
 */
TKM_MUST_CHECK tkm_err tkm_store_maintenance_page(tkm_store *st, int64_t terminal_id,
                                                  int64_t after_seq, size_t limit,
                                                  tkm_err (*fn)(void *arg,
                                                                const tkm_store_maintenance *m),
                                                  void *arg, bool *more, char *why, size_t why_len);
TKM_MUST_CHECK tkm_err tkm_store_custody_page(tkm_store *st, int64_t terminal_id, int64_t after_seq,
                                              size_t limit,
                                              tkm_err (*fn)(void *arg, const tkm_store_custody *c),
                                              void *arg, bool *more, char *why, size_t why_len);

#endif /* TKM_STORE_TERMINAL_H */
