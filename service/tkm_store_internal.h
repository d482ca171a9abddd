/*
 * tkm_store_internal.h - what the tkm_store_*.c files share: the handle's
 * layout and the SQLite helpers. Never included outside service/tkm_store*.c.
 */
#ifndef TKM_STORE_INTERNAL_H
#define TKM_STORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include <sqlite3.h>

#include "tkm_store.h"

#define TKM_STORE_BUSY_TIMEOUT_MS 5000
#define TKM_STORE_DEFAULT_BATCH   1024
#define TKM_STORE_WHY_LEN         256
#define TKM_STORE_READERS_MAX     64 /* idle reader connections kept */
/* TKM_STORE_META_ANCHOR as an SQL string literal. */
#define TKM_STORE_META_ANCHOR_SQL "'" TKM_STORE_META_ANCHOR "'"

/* One queued write; lives on the caller's stack until done. */
typedef struct tkm_store_req {
	tkm_store_change_fn change;
	void *arg;
	const tkm_audit_rec *rec; /* NULL: a checkpoint request */
	tkm_err err;
	uint64_t seq;
	char why[TKM_STORE_WHY_LEN];
	bool done;
	struct tkm_store_req *next;
} tkm_store_req;

struct tkm_store_tx {
	sqlite3 *db;
};

struct tkm_store {
	sqlite3 *db; /* readers (and migrations) */
	int version;
	bool readonly;
	char *path;

	/* Writer: the queue and stats under mu. */
	pthread_mutex_t mu;
	pthread_cond_t work_cv;
	pthread_cond_t done_cv;
	bool sync_init;

	/*
	 * Reader connections, one per concurrent read (tkm_store_reader_get):
	 * a connection shared by threads would let a read join another's older
	 * snapshot and miss a row the writer has just committed.
	 */
	pthread_mutex_t rmu;
	sqlite3 *readers[TKM_STORE_READERS_MAX];
	size_t nreaders;
	bool writer_running;
	bool stopping;
	bool archiving; /* an audit archive is running (tkm_store_copy.c) */
	pthread_t writer;
	tkm_store_req *q_head, *q_tail;
	tkm_store_writer_stats stats;

	/* Owned by the writer thread once started. */
	sqlite3 *wdb;
	sqlite3_stmt *ins_audit;
	sqlite3_stmt *ins_cp;
	tkm_store_writer_cfg cfg;
	uint8_t key_id[TKM_AUDIT_KEY_ID_MAX];
	uint64_t head_seq;
	uint8_t head_hash[TKM_AUDIT_HASH_LEN];
	uint64_t cp_seq;
	uint64_t cp_time_ms;
};

/* TKM_E_IO with "database PATH: WHAT: SQLite's message" in why. */
tkm_err tkm_store_db_fail(sqlite3 *db, const char *path, const char *what, char *why,
                          size_t why_len);

/* Run sql (no rows) on db; a failure is reported as by tkm_store_db_fail. */
tkm_err tkm_store_exec(sqlite3 *db, const char *path, const char *sql, char *why, size_t why_len);

/*
 * A read-only connection of this thread's own for one read: nothing else
 * runs on it until tkm_store_reader_put, so each read sees everything
 * committed before it began. TKM_E_IO when none can be opened.
 */
tkm_err tkm_store_reader_get(tkm_store *st, sqlite3 **db, char *why, size_t why_len);
void tkm_store_reader_put(tkm_store *st, sqlite3 *db);

/* Bind vals to ?1..?n of s; an SQLite result code (SQLITE_TOOBIG past 2 GiB). */
int tkm_store_bind(sqlite3_stmt *s, const tkm_store_val *vals, size_t n);

/*
 * Copy TEXT column i into buf (cap bytes, NUL-terminated): false for another
 * type, an embedded NUL or a value that does not fit; SQL NULL gives "" and
 * null_ok.
 */
bool tkm_store_col_text(sqlite3_stmt *s, int i, char *buf, size_t cap, bool null_ok);

#endif /* TKM_STORE_INTERNAL_H */
