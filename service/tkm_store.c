/*
 * tkm_store.c - open, configure and migrate tkmd's SQLite database, and write
 * to it through one writer thread with group commit.
 *
 * Migrations are numbered and run in one IMMEDIATE transaction together with
 * the user_version bump, so a crash leaves either the old or the new schema.
 * Every SQLite error is turned into a tkm_err here with the file name and
 * SQLite's own words; nothing above this module sees sqlite3 types.
 *
 * Writes: callers queue a change plus its audit record and sleep. The writer
 * takes everything queued, runs each change and appends its audit record in
 * its own SAVEPOINT inside one IMMEDIATE transaction, commits once, and only
 * then wakes the callers with their own outcomes. The writer alone owns the
 * audit chain head (last seq and hash), so the chain needs no lock.
 */
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "tkm/client.h"
#include "tkm_store_internal.h"
#include "tkm_why.h"

tkm_err tkm_store_db_fail(sqlite3 *db, const char *path, const char *what, char *why,
                          size_t why_len)
{
	if (db != NULL && (sqlite3_extended_errcode(db) & 0xff) == SQLITE_FULL) {
		return tkm_why_fail(why, why_len, TKM_E_RESOURCE_EXHAUSTED,
		                    "database %s: %s: the disk is full", path, what);
	}
	return tkm_why_fail(why, why_len, TKM_E_IO, "database %s: %s: %s", path, what,
	                    db != NULL ? sqlite3_errmsg(db) : "out of memory");
}

/* The tkm_err for db's last error: a full disk is resource_exhausted, not an I/O fault. */
static tkm_err err_of(sqlite3 *db)
{
	return (sqlite3_extended_errcode(db) & 0xff) == SQLITE_FULL ? TKM_E_RESOURCE_EXHAUSTED
	                                                            : TKM_E_IO;
}

/* SQLite would say only "unable to open database file"; say which directory is missing. */
static tkm_err check_parent_dir(const char *path, char *why, size_t why_len)
{
	char *copy = strdup(path);
	const char *dir;
	struct stat st;
	tkm_err err = TKM_OK;

	if (copy == NULL) {
		return TKM_E_NOMEM;
	}
	dir = dirname(copy);
	if (stat(dir, &st) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO,
		                   "database %s: directory %s: %s (tkmd does not create it)", path,
		                   dir, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "database %s: %s is not a directory",
		                   path, dir);
	}
	free(copy);
	return err;
}

/* Run one statement that returns at most one row; copy an integer result if asked. */
static tkm_err exec_int(sqlite3 *db, const char *path, const char *sql, int *result, char *why,
                        size_t why_len)
{
	sqlite3_stmt *stmt = NULL;
	tkm_err err = TKM_OK;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		err = tkm_store_db_fail(db, path, sql, why, why_len);
		goto out;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW && result != NULL) {
		*result = sqlite3_column_int(stmt, 0);
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		err = tkm_store_db_fail(db, path, sql, why, why_len);
		goto out;
	} else if (result != NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "database %s: %s returned no row", path,
		                   sql);
	}
out:
	sqlite3_finalize(stmt);
	return err;
}

tkm_err tkm_store_exec(sqlite3 *db, const char *path, const char *sql, char *why, size_t why_len)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		return tkm_store_db_fail(db, path, sql, why, why_len);
	}
	return TKM_OK;
}

static tkm_err set_wal(sqlite3 *db, const char *path, char *why, size_t why_len)
{
	sqlite3_stmt *stmt = NULL;
	const unsigned char *mode;
	tkm_err err = TKM_OK;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_ROW) {
		err =
		    tkm_store_db_fail(db, path, "cannot switch to WAL journal mode", why, why_len);
		goto out;
	}
	mode = sqlite3_column_text(stmt, 0);
	if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO,
		                   "database %s: journal mode is \"%s\", not \"wal\"", path,
		                   mode != NULL ? (const char *)mode : "?");
	}
out:
	sqlite3_finalize(stmt);
	return err;
}

/* Migration 1: the meta table, with when and by which tkm the database was made. */
static tkm_err migrate_1(sqlite3 *db, const char *path, char *why, size_t why_len)
{
	sqlite3_stmt *stmt = NULL;
	char created_at[32];
	time_t now = time(NULL);
	struct tm tm;
	tkm_err err;

	err = tkm_store_exec(db, path,
	                     "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", why,
	                     why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(created_at, sizeof(created_at), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "database %s: cannot format the time",
		                   path);
		goto out;
	}
	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO meta (key, value) VALUES ('created_at', ?1), "
	                       "('created_by_version', ?2)",
	                       -1, &stmt, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 1, created_at, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(stmt, 2, tkm_version(), -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE) {
		err = tkm_store_db_fail(db, path, "cannot fill the meta table", why, why_len);
		goto out;
	}
out:
	sqlite3_finalize(stmt);
	return err;
}

/*
 * Migration 2: the audit chain and its signed checkpoints (docs/audit.md).
 * details holds the canonical CBOR map exactly as hashed.
 */
static tkm_err migrate_2(sqlite3 *db, const char *path, char *why, size_t why_len)
{
	return tkm_store_exec(db, path,
	                      "CREATE TABLE audit ("
	                      " seq INTEGER PRIMARY KEY,"
	                      " ts INTEGER NOT NULL,"
	                      " principal TEXT,"
	                      " role TEXT,"
	                      " method TEXT NOT NULL,"
	                      " target TEXT,"
	                      " outcome TEXT NOT NULL,"
	                      " error_code TEXT,"
	                      " details BLOB NOT NULL,"
	                      " prev_hash BLOB NOT NULL,"
	                      " hash BLOB NOT NULL);"
	                      "CREATE TABLE audit_checkpoint ("
	                      " seq INTEGER PRIMARY KEY,"
	                      " hash BLOB NOT NULL,"
	                      " ts INTEGER NOT NULL,"
	                      " signature BLOB NOT NULL,"
	                      " key_id BLOB NOT NULL)",
	                      why, why_len);
}

/*
 * Migration 3: export and tail page the audit log by time; records archived
 * away leave their last signed checkpoint behind as the chain's anchor
 * (meta "audit_anchor_seq", docs/audit.md).
 */
static tkm_err migrate_3(sqlite3 *db, const char *path, char *why, size_t why_len)
{
	return tkm_store_exec(db, path, "CREATE INDEX audit_ts ON audit (ts)", why, why_len);
}

/*
 * Migration 4: identities (docs/security-model.md). Operators with Argon2id
 * password hashes and their last passwords, role assignments (with the
 * scope values bound to each), sessions by token hash only, device
 * principals by public key, the policy in effect, and pending dual-control
 * requests.
 */
static tkm_err migrate_4(sqlite3 *db, const char *path, char *why, size_t why_len)
{
	return tkm_store_exec(
	    db, path,
	    "CREATE TABLE operator ("
	    " id INTEGER PRIMARY KEY,"
	    " username TEXT NOT NULL UNIQUE,"
	    " pw_hash TEXT NOT NULL,"
	    " pw_changed INTEGER NOT NULL,"
	    " must_change INTEGER NOT NULL,"
	    " failed INTEGER NOT NULL DEFAULT 0,"
	    " locked_until INTEGER NOT NULL DEFAULT 0,"
	    " disabled INTEGER NOT NULL DEFAULT 0,"
	    " created INTEGER NOT NULL);"
	    "CREATE TABLE operator_password ("
	    " operator_id INTEGER NOT NULL REFERENCES operator (id),"
	    " pw_hash TEXT NOT NULL,"
	    " changed INTEGER NOT NULL);"
	    "CREATE INDEX operator_password_op ON operator_password (operator_id);"
	    "CREATE TABLE role_assignment ("
	    " principal TEXT NOT NULL,"
	    " role TEXT NOT NULL,"
	    " scope TEXT,"
	    " PRIMARY KEY (principal, role));"
	    "CREATE TABLE session ("
	    " token_hash BLOB PRIMARY KEY,"
	    " operator_id INTEGER NOT NULL REFERENCES operator (id),"
	    " created INTEGER NOT NULL,"
	    " expires INTEGER NOT NULL);"
	    "CREATE TABLE device ("
	    " principal TEXT PRIMARY KEY,"
	    " kind TEXT NOT NULL,"
	    " public_key BLOB NOT NULL,"
	    " disabled INTEGER NOT NULL DEFAULT 0,"
	    " created INTEGER NOT NULL);"
	    "CREATE TABLE policy ("
	    " version INTEGER PRIMARY KEY,"
	    " text TEXT NOT NULL,"
	    " applied INTEGER NOT NULL,"
	    " applied_by TEXT NOT NULL);"
	    "CREATE TABLE approval ("
	    " id INTEGER PRIMARY KEY,"
	    " method TEXT NOT NULL,"
	    " params BLOB NOT NULL,"
	    " target TEXT,"
	    " initiator TEXT NOT NULL,"
	    " created INTEGER NOT NULL,"
	    " expires INTEGER NOT NULL,"
	    " state TEXT NOT NULL,"
	    " decided_by TEXT,"
	    " decided INTEGER,"
	    " result BLOB,"
	    " error_code TEXT);",
	    why, why_len);
}

/*
 * Migration 5: the terminal registry (docs/terminals.md). Records keyed by
 * id; (manufacturer, serial) unique among live ones, so that revoked or
 * decommissioned hardware comes back as a new record. Triggers hold what
 * must stay true whoever writes: records start registered, are never
 * deleted and keep their hardware identity, never go back to registered,
 * revoked and decommissioned are final, active needs bound keys, bound keys
 * and the histories never change. Dates are checked as real calendar days
 * (date() alone lets 2023-02-30 through; the '+0 days' modifier normalises
 * it). Enrollment codes are kept as hashes only. The list filters on
 * merchant, site, group and state have indexes (each also orders by id, for
 * the cursor); last_seen has none on purpose: an id-ordered page cannot use
 * one, and every batched last-seen write would pay for it.
 */
static tkm_err migrate_5(sqlite3 *db, const char *path, char *why, size_t why_len)
{
	return tkm_store_exec(
	    db, path,
	    "CREATE TABLE terminal ("
	    " id INTEGER PRIMARY KEY,"
	    " manufacturer TEXT NOT NULL CHECK (length(manufacturer) > 0),"
	    " serial TEXT NOT NULL CHECK (length(serial) > 0),"
	    " model TEXT,"
	    " merchant TEXT,"
	    " site TEXT,"
	    " grp TEXT,"
	    " purchase_date TEXT CHECK (purchase_date IS NULL OR"
	    "  date(purchase_date, '+0 days') IS purchase_date),"
	    " state TEXT NOT NULL CHECK (state IN"
	    "  ('registered', 'active', 'suspended', 'revoked', 'decommissioned')),"
	    " firmware_version TEXT,"
	    " app_version TEXT,"
	    " enrolled_at INTEGER,"
	    " last_seen INTEGER,"
	    " notes TEXT,"
	    " created INTEGER NOT NULL);"
	    "CREATE UNIQUE INDEX terminal_hw ON terminal (manufacturer, serial)"
	    " WHERE state NOT IN ('revoked', 'decommissioned');"
	    "CREATE INDEX terminal_merchant ON terminal (merchant);"
	    "CREATE INDEX terminal_site ON terminal (site);"
	    "CREATE INDEX terminal_grp ON terminal (grp);"
	    "CREATE INDEX terminal_state ON terminal (state);"
	    "CREATE TRIGGER terminal_starts BEFORE INSERT ON terminal"
	    " WHEN NEW.state != 'registered' OR NEW.enrolled_at IS NOT NULL"
	    " BEGIN SELECT RAISE(ABORT, 'a terminal record starts registered'); END;"
	    "CREATE TRIGGER terminal_kept BEFORE DELETE ON terminal"
	    " BEGIN SELECT RAISE(ABORT, 'terminal records are never deleted'); END;"
	    "CREATE TRIGGER terminal_hw_fixed BEFORE UPDATE OF manufacturer, serial ON terminal"
	    " WHEN NEW.manufacturer IS NOT OLD.manufacturer OR NEW.serial IS NOT OLD.serial"
	    " BEGIN SELECT RAISE(ABORT, 'a terminal record keeps its hardware'); END;"
	    "CREATE TRIGGER terminal_final BEFORE UPDATE OF state ON terminal"
	    " WHEN OLD.state IN ('revoked', 'decommissioned') AND NEW.state IS NOT OLD.state"
	    " BEGIN SELECT RAISE(ABORT, 'revoked and decommissioned are final'); END;"
	    "CREATE TRIGGER terminal_once_registered BEFORE UPDATE OF state ON terminal"
	    " WHEN NEW.state = 'registered' AND OLD.state != 'registered'"
	    " BEGIN SELECT RAISE(ABORT, 'a terminal never goes back to registered'); END;"
	    "CREATE TABLE terminal_device ("
	    " terminal_id INTEGER PRIMARY KEY REFERENCES terminal (id),"
	    " principal TEXT NOT NULL UNIQUE,"
	    " sign_pk BLOB NOT NULL CHECK (typeof(sign_pk) = 'blob' AND length(sign_pk) = 32),"
	    " box_pk BLOB NOT NULL CHECK (typeof(box_pk) = 'blob' AND length(box_pk) = 32),"
	    " bound INTEGER NOT NULL);"
	    "CREATE TRIGGER terminal_device_fixed BEFORE UPDATE ON terminal_device"
	    " BEGIN SELECT RAISE(ABORT, 'bound keys never change'); END;"
	    "CREATE TRIGGER terminal_device_kept BEFORE DELETE ON terminal_device"
	    " BEGIN SELECT RAISE(ABORT, 'bound keys never change'); END;"
	    "CREATE TRIGGER terminal_active_keys BEFORE UPDATE OF state ON terminal"
	    " WHEN NEW.state = 'active' AND NOT EXISTS"
	    "  (SELECT 1 FROM terminal_device WHERE terminal_id = NEW.id)"
	    " BEGIN SELECT RAISE(ABORT, 'an active terminal needs bound keys'); END;"
	    "CREATE TABLE terminal_maintenance ("
	    " seq INTEGER PRIMARY KEY,"
	    " terminal_id INTEGER NOT NULL REFERENCES terminal (id),"
	    " at TEXT NOT NULL CHECK (date(at, '+0 days') IS at),"
	    " kind TEXT NOT NULL CHECK (length(kind) > 0),"
	    " description TEXT,"
	    " technician TEXT NOT NULL CHECK (length(technician) > 0),"
	    " recorded INTEGER NOT NULL);"
	    "CREATE INDEX terminal_maintenance_t ON terminal_maintenance (terminal_id);"
	    "CREATE TRIGGER terminal_maintenance_fixed BEFORE UPDATE ON terminal_maintenance"
	    " BEGIN SELECT RAISE(ABORT, 'maintenance history is append-only'); END;"
	    "CREATE TRIGGER terminal_maintenance_kept BEFORE DELETE ON terminal_maintenance"
	    " BEGIN SELECT RAISE(ABORT, 'maintenance history is append-only'); END;"
	    "CREATE TABLE terminal_custody ("
	    " seq INTEGER PRIMARY KEY,"
	    " terminal_id INTEGER NOT NULL REFERENCES terminal (id),"
	    " at TEXT NOT NULL CHECK (date(at, '+0 days') IS at),"
	    " action TEXT NOT NULL CHECK (action IN ('received', 'returned')),"
	    " person TEXT NOT NULL CHECK (length(person) > 0),"
	    " counterparty TEXT,"
	    " recorded INTEGER NOT NULL);"
	    "CREATE INDEX terminal_custody_t ON terminal_custody (terminal_id);"
	    "CREATE TRIGGER terminal_custody_fixed BEFORE UPDATE ON terminal_custody"
	    " BEGIN SELECT RAISE(ABORT, 'custody history is append-only'); END;"
	    "CREATE TRIGGER terminal_custody_kept BEFORE DELETE ON terminal_custody"
	    " BEGIN SELECT RAISE(ABORT, 'custody history is append-only'); END;"
	    "CREATE TABLE enrollment_code ("
	    " code_hash BLOB PRIMARY KEY CHECK (typeof(code_hash) = 'blob' AND"
	    "  length(code_hash) = 32),"
	    " terminal_id INTEGER NOT NULL REFERENCES terminal (id),"
	    " created INTEGER NOT NULL,"
	    " expires INTEGER NOT NULL,"
	    " used INTEGER);"
	    "CREATE INDEX enrollment_code_t ON enrollment_code (terminal_id);",
	    why, why_len);
}

static const struct {
	int version;
	tkm_err (*apply)(sqlite3 *db, const char *path, char *why, size_t why_len);
} tkm_store_migrations[] = {
    {1, migrate_1}, {2, migrate_2}, {3, migrate_3}, {4, migrate_4}, {5, migrate_5},
};

_Static_assert(sizeof(tkm_store_migrations) / sizeof(tkm_store_migrations[0]) ==
                   TKM_STORE_SCHEMA_VERSION,
               "one migration per schema version");

static tkm_err migrate(sqlite3 *db, const char *path, int *version, char *why, size_t why_len)
{
	bool in_tx = false;
	int current = 0;
	tkm_err err;

	/* IMMEDIATE: two tkmd starting at once must not both migrate. */
	err = tkm_store_exec(db, path, "BEGIN IMMEDIATE", why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	in_tx = true;
	err = exec_int(db, path, "PRAGMA user_version", &current, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (current > TKM_STORE_SCHEMA_VERSION || current < 0) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "database %s has schema version %d, but this tkm %s knows only "
		                   "versions up to %d; it was written by a newer tkm, use that one",
		                   path, current, tkm_version(), TKM_STORE_SCHEMA_VERSION);
		goto out;
	}
	for (size_t i = 0; i < sizeof(tkm_store_migrations) / sizeof(tkm_store_migrations[0]);
	     i++) {
		char sql[64];
		int r;

		if (tkm_store_migrations[i].version <= current) {
			continue;
		}
		err = tkm_store_migrations[i].apply(db, path, why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
		/* PRAGMA takes no bound parameters; the value is our own constant. */
		r = snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
		             tkm_store_migrations[i].version);
		if (r < 0 || (size_t)r >= sizeof(sql)) {
			err = tkm_why_fail(why, why_len, TKM_E_IO,
			                   "database %s: migration bookkeeping", path);
			goto out;
		}
		err = tkm_store_exec(db, path, sql, why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
		current = tkm_store_migrations[i].version;
	}
	err = tkm_store_exec(db, path, "COMMIT", why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	in_tx = false;
	*version = current;
out:
	if (in_tx) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return err;
}

static tkm_err store_new(const char *path, tkm_store **out)
{
	tkm_store *st = calloc(1, sizeof(*st));
	pthread_condattr_t attr;

	*out = NULL;
	if (st == NULL) {
		return TKM_E_NOMEM;
	}
	st->path = strdup(path);
	if (st->path == NULL) {
		free(st);
		return TKM_E_NOMEM;
	}
	if (pthread_mutex_init(&st->mu, NULL) != 0) {
		goto fail;
	}
	/* The writer sleeps until a timed checkpoint against the monotonic clock. */
	if (pthread_condattr_init(&attr) != 0) {
		pthread_mutex_destroy(&st->mu);
		goto fail;
	}
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&st->work_cv, &attr) != 0) {
		pthread_condattr_destroy(&attr);
		pthread_mutex_destroy(&st->mu);
		goto fail;
	}
	pthread_condattr_destroy(&attr);
	if (pthread_cond_init(&st->done_cv, NULL) != 0) {
		pthread_cond_destroy(&st->work_cv);
		pthread_mutex_destroy(&st->mu);
		goto fail;
	}
	if (pthread_mutex_init(&st->rmu, NULL) != 0) {
		pthread_cond_destroy(&st->done_cv);
		pthread_cond_destroy(&st->work_cv);
		pthread_mutex_destroy(&st->mu);
		goto fail;
	}
	st->sync_init = true;
	*out = st;
	return TKM_OK;
fail:
	free(st->path);
	free(st);
	return TKM_E_NOMEM;
}

tkm_err tkm_store_open(const char *path, tkm_store **out, char *why, size_t why_len)
{
	tkm_store *st = NULL;
	sqlite3 *db = NULL;
	int fk = 0;
	tkm_err err;

	*out = NULL;
	err = check_parent_dir(path, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = store_new(path, &st);
	if (err != TKM_OK) {
		goto out;
	}
	if (sqlite3_open_v2(path, &db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX |
	                        SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK) {
		err = tkm_store_db_fail(db, path, "cannot open", why, why_len);
		goto out;
	}
	if (sqlite3_busy_timeout(db, TKM_STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		err = tkm_store_db_fail(db, path, "cannot set the busy timeout", why, why_len);
		goto out;
	}
	err = set_wal(db, path, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = tkm_store_exec(db, path, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", why,
	                     why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = exec_int(db, path, "PRAGMA foreign_keys", &fk, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (fk != 1) {
		err = tkm_why_fail(why, why_len, TKM_E_IO,
		                   "database %s: this SQLite cannot enforce foreign keys", path);
		goto out;
	}
	err = migrate(db, path, &st->version, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	st->db = db;
	db = NULL;
	*out = st;
	st = NULL;
out:
	if (err == TKM_E_NOMEM) {
		(void)tkm_why_fail(why, why_len, err, "database %s: out of memory", path);
	}
	sqlite3_close_v2(db);
	tkm_store_close(st);
	return err;
}

static void writer_stop(tkm_store *st);

void tkm_store_close(tkm_store *st)
{
	if (st == NULL) {
		return;
	}
	writer_stop(st);
	for (size_t i = 0; i < st->nreaders; i++) {
		sqlite3_close_v2(st->readers[i]);
	}
	sqlite3_close_v2(st->db);
	if (st->sync_init) {
		pthread_mutex_destroy(&st->rmu);
		pthread_cond_destroy(&st->done_cv);
		pthread_cond_destroy(&st->work_cv);
		pthread_mutex_destroy(&st->mu);
	}
	free(st->path);
	free(st);
}

int tkm_store_schema_version(const tkm_store *st)
{
	return st->version;
}

static tkm_err meta_get_on(sqlite3 *db, const char *key, char *buf, size_t buf_len)
{
	sqlite3_stmt *stmt = NULL;
	const unsigned char *v;
	size_t n;
	tkm_err err = TKM_E_IO;
	int rc;

	if (buf_len == 0) {
		return TKM_E_INVALID_ARG;
	}
	buf[0] = '\0';
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &stmt, NULL) !=
	        SQLITE_OK ||
	    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC) != SQLITE_OK) {
		goto out;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		err = TKM_E_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		goto out;
	}
	v = sqlite3_column_text(stmt, 0);
	n = (size_t)sqlite3_column_bytes(stmt, 0);
	if (v == NULL || n >= buf_len) {
		err = v == NULL ? TKM_E_NOMEM : TKM_E_RESOURCE_EXHAUSTED;
		goto out;
	}
	memcpy(buf, v, n);
	buf[n] = '\0';
	err = TKM_OK;
out:
	sqlite3_finalize(stmt);
	return err;
}

tkm_err tkm_store_reader_get(tkm_store *st, sqlite3 **db, char *why, size_t why_len)
{
	sqlite3 *c = NULL;

	pthread_mutex_lock(&st->rmu);
	if (st->nreaders > 0) {
		c = st->readers[--st->nreaders];
	}
	pthread_mutex_unlock(&st->rmu);
	if (c == NULL) {
		if (sqlite3_open_v2(st->path, &c,
		                    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
		                        SQLITE_OPEN_EXRESCODE,
		                    NULL) != SQLITE_OK ||
		    sqlite3_busy_timeout(c, TKM_STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
			tkm_err err =
			    tkm_store_db_fail(c, st->path, "cannot open a reader", why, why_len);

			sqlite3_close_v2(c);
			return err;
		}
	}
	*db = c;
	return TKM_OK;
}

void tkm_store_reader_put(tkm_store *st, sqlite3 *db)
{
	if (db == NULL) {
		return;
	}
	pthread_mutex_lock(&st->rmu);
	if (st->nreaders < TKM_STORE_READERS_MAX) {
		st->readers[st->nreaders++] = db;
		db = NULL;
	}
	pthread_mutex_unlock(&st->rmu);
	sqlite3_close_v2(db);
}

tkm_err tkm_store_meta_get(tkm_store *st, const char *key, char *buf, size_t buf_len)
{
	sqlite3 *db = NULL;
	tkm_err err = tkm_store_reader_get(st, &db, NULL, 0);

	if (err == TKM_OK) {
		err = meta_get_on(db, key, buf, buf_len);
	}
	tkm_store_reader_put(st, db);
	return err;
}

tkm_err tkm_store_open_readonly(const char *path, tkm_store **out, char *why, size_t why_len)
{
	tkm_store *st = NULL;
	sqlite3 *db = NULL;
	int version = 0;
	tkm_err err;

	*out = NULL;
	err = store_new(path, &st);
	if (err != TKM_OK) {
		goto out;
	}
	if (sqlite3_open_v2(path, &db,
	                    SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK) {
		err = tkm_store_db_fail(db, path, "cannot open read-only", why, why_len);
		goto out;
	}
	if (sqlite3_busy_timeout(db, TKM_STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		err = tkm_store_db_fail(db, path, "cannot set the busy timeout", why, why_len);
		goto out;
	}
	err = exec_int(db, path, "PRAGMA user_version", &version, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (version < 2 || version > TKM_STORE_SCHEMA_VERSION) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "database %s has schema version %d; this tkm %s reads versions "
		                   "2 to %d",
		                   path, version, tkm_version(), TKM_STORE_SCHEMA_VERSION);
		goto out;
	}
	st->db = db;
	db = NULL;
	st->version = version;
	st->readonly = true;
	*out = st;
	st = NULL;
out:
	if (err == TKM_E_NOMEM) {
		(void)tkm_why_fail(why, why_len, err, "database %s: out of memory", path);
	}
	sqlite3_close_v2(db);
	tkm_store_close(st);
	return err;
}

/* ---- Writer ---- */

static const uint8_t tkm_store_empty_map[1] = {0xa0};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
		return 0;
	}
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		return 0;
	}
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int bind_opt_text(sqlite3_stmt *s, int idx, const char *t)
{
	return t == NULL ? sqlite3_bind_null(s, idx)
	                 : sqlite3_bind_text(s, idx, t, -1, SQLITE_STATIC);
}

/* Append in after (*seq, hash) on the writer's connection; advance them on success. */
static tkm_err append_audit(tkm_store *st, const tkm_audit_rec *in, uint64_t *seq,
                            uint8_t hash[static TKM_AUDIT_HASH_LEN], char *why, size_t why_len)
{
	sqlite3_stmt *s = st->ins_audit;
	uint8_t h[TKM_AUDIT_HASH_LEN];
	tkm_audit_rec rec = *in;
	tkm_err err;

	rec.seq = *seq + 1;
	rec.ts_ms = wall_ms();
	if (rec.details == NULL) {
		rec.details = tkm_store_empty_map;
		rec.details_len = sizeof(tkm_store_empty_map);
	}
	err = tkm_audit_hash(&rec, hash, h);
	if (err != TKM_OK) {
		return tkm_why_fail(why, why_len, err, "audit record %llu: cannot hash it",
		                    (unsigned long long)rec.seq);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (sqlite3_bind_int64(s, 1, (sqlite3_int64)rec.seq) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (sqlite3_int64)rec.ts_ms) != SQLITE_OK ||
	    bind_opt_text(s, 3, rec.principal) != SQLITE_OK ||
	    bind_opt_text(s, 4, rec.role) != SQLITE_OK ||
	    bind_opt_text(s, 5, rec.method) != SQLITE_OK ||
	    bind_opt_text(s, 6, rec.target) != SQLITE_OK ||
	    bind_opt_text(s, 7, rec.outcome) != SQLITE_OK ||
	    bind_opt_text(s, 8, rec.error_code) != SQLITE_OK ||
	    sqlite3_bind_blob(s, 9, rec.details, (int)rec.details_len, SQLITE_STATIC) !=
	        SQLITE_OK ||
	    sqlite3_bind_blob(s, 10, hash, TKM_AUDIT_HASH_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(s, 11, h, TKM_AUDIT_HASH_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE) {
		err = tkm_why_fail(why, why_len, err_of(st->wdb),
		                   "database %s: audit record %llu not written, change refused: %s",
		                   st->path, (unsigned long long)rec.seq, sqlite3_errmsg(st->wdb));
		sqlite3_reset(s);
		return err;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	*seq = rec.seq;
	memcpy(hash, h, TKM_AUDIT_HASH_LEN);
	return TKM_OK;
}

/* Sign (seq, hash) and insert the checkpoint on the writer's connection. */
static tkm_err write_checkpoint(tkm_store *st, uint64_t seq,
                                const uint8_t hash[static TKM_AUDIT_HASH_LEN], char *why,
                                size_t why_len)
{
	sqlite3_stmt *s = st->ins_cp;
	uint8_t msg[256];
	uint8_t sig[TKM_AUDIT_SIG_LEN];
	uint64_t ts = wall_ms();
	size_t n = 0;
	tkm_err err;

	err = tkm_audit_checkpoint_msg(seq, hash, ts, msg, sizeof(msg), &n);
	if (err != TKM_OK) {
		return tkm_why_fail(why, why_len, err, "audit checkpoint %llu: cannot encode it",
		                    (unsigned long long)seq);
	}
	err = st->cfg.sign(st->cfg.sign_ctx, msg, n, sig, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	sqlite3_reset(s);
	if (sqlite3_bind_int64(s, 1, (sqlite3_int64)seq) != SQLITE_OK ||
	    sqlite3_bind_blob(s, 2, hash, TKM_AUDIT_HASH_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, (sqlite3_int64)ts) != SQLITE_OK ||
	    sqlite3_bind_blob(s, 4, sig, TKM_AUDIT_SIG_LEN, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(s, 5, st->key_id, (int)st->cfg.key_id_len, SQLITE_STATIC) !=
	        SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE) {
		err = tkm_why_fail(why, why_len, err_of(st->wdb),
		                   "database %s: audit checkpoint %llu not written: %s", st->path,
		                   (unsigned long long)seq, sqlite3_errmsg(st->wdb));
	}
	sqlite3_reset(s);
	return err;
}

static tkm_err wexec(tkm_store *st, const char *sql, char *why, size_t why_len)
{
	return tkm_store_exec(st->wdb, st->path, sql, why, why_len);
}

/* Undo one change's savepoint; false if the transaction itself is gone. */
static bool savepoint_undo(tkm_store *st, const char *name_rollback, const char *name_release)
{
	if (sqlite3_get_autocommit(st->wdb)) {
		return false;
	}
	return sqlite3_exec(st->wdb, name_rollback, NULL, NULL, NULL) == SQLITE_OK &&
	       sqlite3_exec(st->wdb, name_release, NULL, NULL, NULL) == SQLITE_OK;
}

static bool checkpoint_due(const tkm_store *st, uint64_t seq, bool force)
{
	if (st->cfg.sign == NULL || seq <= st->cp_seq) {
		return false;
	}
	if (force) {
		return true;
	}
	if (st->cfg.checkpoint_every != 0 && seq - st->cp_seq >= st->cfg.checkpoint_every) {
		return true;
	}
	return st->cfg.checkpoint_interval_ms != 0 &&
	       mono_ms() - st->cp_time_ms >= st->cfg.checkpoint_interval_ms;
}

/*
 * One group commit: every request of list in its own savepoint, an optional
 * checkpoint, one COMMIT. Each request's err is final when this returns.
 */
static void run_batch(tkm_store *st, tkm_store_req *list, bool force_cp)
{
	uint8_t hash[TKM_AUDIT_HASH_LEN];
	char why[TKM_STORE_WHY_LEN] = "";
	uint64_t seq = st->head_seq;
	uint64_t nreq = 0, nok = 0, nfail = 0;
	tkm_err cp_err = TKM_OK;
	bool tx_lost = false;
	bool cp_written = false;
	tkm_store_req *r;
	tkm_err err;

	memcpy(hash, st->head_hash, sizeof(hash));
	for (r = list; r != NULL; r = r->next) {
		r->err = TKM_OK;
		r->why[0] = '\0';
		if (r->rec == NULL) {
			force_cp = true;
		}
	}
	err = wexec(st, "BEGIN IMMEDIATE", why, sizeof(why));
	if (err != TKM_OK) {
		tx_lost = true;
		goto settle;
	}
	for (r = list; r != NULL; r = r->next) {
		uint8_t h2[TKM_AUDIT_HASH_LEN];
		tkm_store_tx tx = {st->wdb};
		uint64_t s2 = seq;

		if (r->rec == NULL) {
			continue;
		}
		err = wexec(st, "SAVEPOINT w", why, sizeof(why));
		if (err != TKM_OK) {
			tx_lost = true;
			break;
		}
		memcpy(h2, hash, sizeof(h2));
		if (r->change != NULL) {
			r->err = r->change(&tx, r->arg, r->why, sizeof(r->why));
		}
		if (r->err == TKM_OK) {
			r->err = append_audit(st, r->rec, &s2, h2, r->why, sizeof(r->why));
		}
		if (r->err == TKM_OK) {
			err = wexec(st, "RELEASE w", why, sizeof(why));
			if (err != TKM_OK) {
				tx_lost = true;
				break;
			}
			seq = s2;
			memcpy(hash, h2, sizeof(hash));
			r->seq = seq;
		} else if (!savepoint_undo(st, "ROLLBACK TO w", "RELEASE w")) {
			err = err_of(st->wdb);
			tkm_why_set(why, sizeof(why), "database %s: transaction lost: %s", st->path,
			            sqlite3_errmsg(st->wdb));
			tx_lost = true;
			break;
		}
	}
	if (tx_lost) {
		goto settle;
	}
	if (checkpoint_due(st, seq, force_cp)) {
		err = wexec(st, "SAVEPOINT cp", why, sizeof(why));
		if (err != TKM_OK) {
			tx_lost = true;
			goto settle;
		}
		cp_err = write_checkpoint(st, seq, hash, why, sizeof(why));
		if (cp_err == TKM_OK) {
			err = wexec(st, "RELEASE cp", why, sizeof(why));
			if (err != TKM_OK) {
				tx_lost = true;
				goto settle;
			}
			cp_written = true;
		} else if (!savepoint_undo(st, "ROLLBACK TO cp", "RELEASE cp")) {
			err = err_of(st->wdb);
			tx_lost = true;
			goto settle;
		}
	}
	err = wexec(st, "COMMIT", why, sizeof(why));
	if (err != TKM_OK) {
		tx_lost = true;
		goto settle;
	}
	st->head_seq = seq;
	memcpy(st->head_hash, hash, sizeof(hash));
	if (cp_written) {
		st->cp_seq = seq;
	}
settle:
	/* Written or failed, the next timed attempt is one interval away. */
	if (cp_written || cp_err != TKM_OK) {
		st->cp_time_ms = mono_ms();
	}
	if (tx_lost) {
		if (!sqlite3_get_autocommit(st->wdb)) {
			(void)sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
		}
		cp_written = false;
	}
	for (r = list; r != NULL; r = r->next) {
		nreq++;
		if (tx_lost && r->err == TKM_OK) {
			r->err = err != TKM_OK ? err : TKM_E_IO;
			tkm_why_set(r->why, sizeof(r->why), "%s", why);
		}
		if (r->rec == NULL && r->err == TKM_OK && cp_err != TKM_OK) {
			r->err = cp_err;
			tkm_why_set(r->why, sizeof(r->why), "%s", why);
		}
		if (r->rec != NULL) {
			if (r->err == TKM_OK) {
				nok++;
			} else {
				nfail++;
			}
		}
	}
	pthread_mutex_lock(&st->mu);
	st->stats.writes_ok += nok;
	st->stats.writes_failed += nfail;
	st->stats.transactions += tx_lost ? 0 : 1;
	if (nreq > st->stats.max_batch_seen) {
		st->stats.max_batch_seen = nreq;
	}
	st->stats.checkpoints += cp_written ? 1 : 0;
	st->stats.checkpoint_fails += cp_err != TKM_OK ? 1 : 0;
	for (r = list; r != NULL; r = r->next) {
		r->done = true;
	}
	pthread_cond_broadcast(&st->done_cv);
	pthread_mutex_unlock(&st->mu);
}

/* Called with mu held: how long the writer may sleep before a timed checkpoint. */
static bool timed_checkpoint_pending(const tkm_store *st, struct timespec *deadline)
{
	uint64_t at;

	if (st->cfg.sign == NULL || st->cfg.checkpoint_interval_ms == 0 ||
	    st->head_seq <= st->cp_seq) {
		return false;
	}
	at = st->cp_time_ms + st->cfg.checkpoint_interval_ms;
	deadline->tv_sec = (time_t)(at / 1000u);
	deadline->tv_nsec = (long)(at % 1000u) * 1000000L;
	return true;
}

static void *writer_main(void *arg)
{
	tkm_store *st = arg;
	struct timespec deadline;

	/* A tail left unsigned by a crash is signed before anything new is written. */
	if (checkpoint_due(st, st->head_seq, true)) {
		run_batch(st, NULL, true);
	}
	pthread_mutex_lock(&st->mu);
	while (!st->stopping || st->q_head != NULL) {
		tkm_store_req *list, *last;
		size_t n = 1;

		if (st->q_head == NULL) {
			if (!timed_checkpoint_pending(st, &deadline)) {
				pthread_cond_wait(&st->work_cv, &st->mu);
			} else if (pthread_cond_timedwait(&st->work_cv, &st->mu, &deadline) ==
			               ETIMEDOUT &&
			           st->q_head == NULL) {
				pthread_mutex_unlock(&st->mu);
				run_batch(st, NULL, false);
				pthread_mutex_lock(&st->mu);
			}
			continue;
		}
		list = st->q_head;
		last = list;
		while (last->next != NULL && n < st->cfg.max_batch) {
			last = last->next;
			n++;
		}
		st->q_head = last->next;
		if (st->q_head == NULL) {
			st->q_tail = NULL;
		}
		last->next = NULL;
		pthread_mutex_unlock(&st->mu);
		run_batch(st, list, false);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	/* Sign the tail on a clean stop so that no record is left unprotected. */
	if (checkpoint_due(st, st->head_seq, true)) {
		run_batch(st, NULL, true);
	}
	return NULL;
}

static tkm_err read_head(tkm_store *st, char *why, size_t why_len)
{
	sqlite3_stmt *s = NULL;
	tkm_err err = TKM_OK;
	int rc;

	if (sqlite3_prepare_v2(st->wdb, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1,
	                       &s, NULL) != SQLITE_OK) {
		err = tkm_store_db_fail(st->wdb, st->path, "cannot read the audit chain head", why,
		                        why_len);
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_int64(s, 0) < 1 || sqlite3_column_type(s, 1) != SQLITE_BLOB ||
		    sqlite3_column_bytes(s, 1) != TKM_AUDIT_HASH_LEN) {
			err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
			                   "database %s: the last audit record is malformed; run "
			                   "tkmctl audit verify",
			                   st->path);
			goto out;
		}
		st->head_seq = (uint64_t)sqlite3_column_int64(s, 0);
		memcpy(st->head_hash, sqlite3_column_blob(s, 1), TKM_AUDIT_HASH_LEN);
	} else if (rc != SQLITE_DONE) {
		err = tkm_store_db_fail(st->wdb, st->path, "cannot read the audit chain head", why,
		                        why_len);
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(st->wdb, "SELECT max(seq) FROM audit_checkpoint", -1, &s, NULL) !=
	        SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		err = tkm_store_db_fail(st->wdb, st->path, "cannot read the last audit checkpoint",
		                        why, why_len);
		goto out;
	}
	st->cp_seq = (uint64_t)sqlite3_column_int64(s, 0);
	st->cp_time_ms = mono_ms();
out:
	sqlite3_finalize(s);
	return err;
}

tkm_err tkm_store_writer_start(tkm_store *st, const tkm_store_writer_cfg *cfg, char *why,
                               size_t why_len)
{
	tkm_err err = TKM_OK;

	if (st->readonly || st->writer_running) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION, "database %s: %s",
		                    st->path,
		                    st->readonly ? "opened read-only" : "writer already running");
	}
	if (cfg->key_id_len > TKM_AUDIT_KEY_ID_MAX ||
	    (cfg->key_id_len > 0 && cfg->key_id == NULL)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "audit key id is longer than %d bytes", TKM_AUDIT_KEY_ID_MAX);
	}
	st->cfg = *cfg;
	if (st->cfg.max_batch == 0) {
		st->cfg.max_batch = TKM_STORE_DEFAULT_BATCH;
	}
	if (cfg->key_id_len > 0) {
		memcpy(st->key_id, cfg->key_id, cfg->key_id_len);
	}
	st->cfg.key_id = st->key_id;
	if (sqlite3_open_v2(st->path, &st->wdb,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK) {
		err = tkm_store_db_fail(st->wdb, st->path, "writer cannot open", why, why_len);
		goto out;
	}
	if (sqlite3_busy_timeout(st->wdb, TKM_STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		err = tkm_store_db_fail(st->wdb, st->path, "cannot set the busy timeout", why,
		                        why_len);
		goto out;
	}
	err = wexec(st, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (sqlite3_prepare_v3(st->wdb,
	                       "INSERT INTO audit (seq, ts, principal, role, method, target, "
	                       "outcome, error_code, details, prev_hash, hash) "
	                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	                       -1, SQLITE_PREPARE_PERSISTENT, &st->ins_audit, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(st->wdb,
	                       "INSERT INTO audit_checkpoint (seq, hash, ts, signature, key_id) "
	                       "VALUES (?1, ?2, ?3, ?4, ?5)",
	                       -1, SQLITE_PREPARE_PERSISTENT, &st->ins_cp, NULL) != SQLITE_OK) {
		err = tkm_store_db_fail(st->wdb, st->path, "cannot prepare the audit statements",
		                        why, why_len);
		goto out;
	}
	err = read_head(st, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	st->stopping = false;
	if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "cannot start the writer thread");
		goto out;
	}
	pthread_mutex_lock(&st->mu);
	st->writer_running = true;
	pthread_mutex_unlock(&st->mu);
out:
	if (err != TKM_OK) {
		sqlite3_finalize(st->ins_audit);
		sqlite3_finalize(st->ins_cp);
		sqlite3_close_v2(st->wdb);
		st->ins_audit = NULL;
		st->ins_cp = NULL;
		st->wdb = NULL;
	}
	return err;
}

static void writer_stop(tkm_store *st)
{
	bool running;

	if (!st->sync_init) {
		return;
	}
	pthread_mutex_lock(&st->mu);
	running = st->writer_running;
	st->stopping = true;
	pthread_cond_signal(&st->work_cv);
	pthread_mutex_unlock(&st->mu);
	if (!running) {
		return;
	}
	pthread_join(st->writer, NULL);
	sqlite3_finalize(st->ins_audit);
	sqlite3_finalize(st->ins_cp);
	sqlite3_close_v2(st->wdb);
	st->ins_audit = NULL;
	st->ins_cp = NULL;
	st->wdb = NULL;
	st->writer_running = false;
}

/* Queue r and sleep until the writer has settled it. */
static tkm_err submit(tkm_store *st, tkm_store_req *r, char *why, size_t why_len)
{
	pthread_mutex_lock(&st->mu);
	if (!st->writer_running || st->stopping) {
		pthread_mutex_unlock(&st->mu);
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "database %s: the writer is not running", st->path);
	}
	if (st->q_tail != NULL) {
		st->q_tail->next = r;
	} else {
		st->q_head = r;
	}
	st->q_tail = r;
	pthread_cond_signal(&st->work_cv);
	while (!r->done) {
		pthread_cond_wait(&st->done_cv, &st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	if (r->err != TKM_OK) {
		tkm_why_set(why, why_len, "%s", r->why);
	}
	return r->err;
}

tkm_err tkm_store_write(tkm_store *st, tkm_store_change_fn change, void *arg,
                        const tkm_audit_rec *rec, uint64_t *seq, char *why, size_t why_len)
{
	tkm_store_req r;
	tkm_err err;

	memset(&r, 0, sizeof(r));
	if (rec == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a write needs an audit record");
	}
	err = tkm_audit_rec_check(rec, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	r.change = change;
	r.arg = arg;
	r.rec = rec;
	err = submit(st, &r, why, why_len);
	if (err == TKM_OK && seq != NULL) {
		*seq = r.seq;
	}
	return err;
}

tkm_err tkm_store_checkpoint_now(tkm_store *st, char *why, size_t why_len)
{
	tkm_store_req r;

	memset(&r, 0, sizeof(r));
	if (st->cfg.sign == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "database %s: no audit checkpoint signer", st->path);
	}
	return submit(st, &r, why, why_len);
}

void tkm_store_writer_stats_get(tkm_store *st, tkm_store_writer_stats *out)
{
	pthread_mutex_lock(&st->mu);
	*out = st->stats;
	pthread_mutex_unlock(&st->mu);
}

int tkm_store_bind(sqlite3_stmt *s, const tkm_store_val *vals, size_t n)
{
	int rc = SQLITE_OK;

	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		int idx = (int)i + 1;

		if (vals[i].len > INT32_MAX) {
			return SQLITE_TOOBIG;
		}
		switch (vals[i].type) {
		case TKM_STORE_NULL:
			rc = sqlite3_bind_null(s, idx);
			break;
		case TKM_STORE_INT:
			rc = sqlite3_bind_int64(s, idx, vals[i].i);
			break;
		case TKM_STORE_TEXT:
			rc = sqlite3_bind_text(s, idx, vals[i].p, (int)vals[i].len, SQLITE_STATIC);
			break;
		case TKM_STORE_BLOB:
			rc = sqlite3_bind_blob(s, idx, vals[i].p, (int)vals[i].len, SQLITE_STATIC);
			break;
		}
	}
	return rc;
}

bool tkm_store_col_text(sqlite3_stmt *s, int i, char *buf, size_t cap, bool null_ok)
{
	const unsigned char *p;
	size_t n;

	buf[0] = '\0';
	if (sqlite3_column_type(s, i) == SQLITE_NULL) {
		return null_ok;
	}
	if (sqlite3_column_type(s, i) != SQLITE_TEXT) {
		return false;
	}
	p = sqlite3_column_text(s, i);
	n = (size_t)sqlite3_column_bytes(s, i);
	if (p == NULL || n >= cap || memchr(p, '\0', n) != NULL) {
		return false;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}

tkm_err tkm_store_tx_exec(tkm_store_tx *tx, const char *sql, const tkm_store_val *vals,
                          size_t nvals, char *why, size_t why_len)
{
	sqlite3_stmt *s = NULL;
	tkm_err err = TKM_OK;
	int rc = SQLITE_OK;

	if (sqlite3_prepare_v2(tx->db, sql, -1, &s, NULL) != SQLITE_OK) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "SQL error: %s", sqlite3_errmsg(tx->db));
		goto out;
	}
	if (nvals > (size_t)sqlite3_bind_parameter_count(s)) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "%zu values for %d parameters",
		                   nvals, sqlite3_bind_parameter_count(s));
		goto out;
	}
	rc = tkm_store_bind(s, vals, nvals);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		}
	}
	if (rc != SQLITE_DONE) {
		err =
		    tkm_why_fail(why, why_len,
		                 (rc & 0xff) == SQLITE_CONSTRAINT ? TKM_E_CONFLICT : err_of(tx->db),
		                 "SQL error: %s", sqlite3_errmsg(tx->db));
	}
out:
	sqlite3_finalize(s);
	return err;
}

tkm_err tkm_store_tx_meta_set(tkm_store_tx *tx, const char *key, const char *value, char *why,
                              size_t why_len)
{
	const tkm_store_val vals[] = {
	    {.type = TKM_STORE_TEXT, .p = key, .len = strlen(key)},
	    {.type = TKM_STORE_TEXT, .p = value, .len = strlen(value)},
	};

	return tkm_store_tx_exec(tx,
	                         "INSERT INTO meta (key, value) VALUES (?1, ?2) "
	                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	                         vals, 2, why, why_len);
}

tkm_err tkm_store_tx_meta_get(tkm_store_tx *tx, const char *key, char *buf, size_t buf_len)
{
	return meta_get_on(tx->db, key, buf, buf_len);
}

/* ---- Reading the audit log ---- */

/* A text column as the writer stores it: TEXT without NUL, or NULL. */
static bool col_text(sqlite3_stmt *s, int i, const char **out)
{
	int t = sqlite3_column_type(s, i);
	const unsigned char *p;

	*out = NULL;
	if (t == SQLITE_NULL) {
		return true;
	}
	if (t != SQLITE_TEXT) {
		return false;
	}
	p = sqlite3_column_text(s, i);
	if (p == NULL) {
		return false;
	}
	*out = (const char *)p;
	return strlen(*out) == (size_t)sqlite3_column_bytes(s, i);
}

static bool col_blob(sqlite3_stmt *s, int i, const uint8_t **p, size_t *len)
{
	*p = NULL;
	*len = 0;
	if (sqlite3_column_type(s, i) != SQLITE_BLOB) {
		return false;
	}
	*p = sqlite3_column_blob(s, i);
	*len = (size_t)sqlite3_column_bytes(s, i);
	return *p != NULL;
}

static bool col_uint(sqlite3_stmt *s, int i, uint64_t *out)
{
	sqlite3_int64 v;

	*out = 0;
	if (sqlite3_column_type(s, i) != SQLITE_INTEGER) {
		return false;
	}
	v = sqlite3_column_int64(s, i);
	if (v < 0) {
		return false;
	}
	*out = (uint64_t)v;
	return true;
}

#define TKM_STORE_AUDIT_COLUMNS                                                                    \
	"seq, ts, principal, role, method, target, outcome, error_code, details, prev_hash, hash"

/* One row of SELECT TKM_STORE_AUDIT_COLUMNS; pointers live until the next step. */
static void read_audit_row(sqlite3_stmt *s, tkm_store_audit_row *row)
{
	bool ok;

	memset(row, 0, sizeof(*row));
	row->rec.seq = (uint64_t)sqlite3_column_int64(s, 0);
	ok = col_uint(s, 1, &row->rec.ts_ms);
	ok = col_text(s, 2, &row->rec.principal) && ok;
	ok = col_text(s, 3, &row->rec.role) && ok;
	ok = col_text(s, 4, &row->rec.method) && ok;
	ok = col_text(s, 5, &row->rec.target) && ok;
	ok = col_text(s, 6, &row->rec.outcome) && ok;
	ok = col_text(s, 7, &row->rec.error_code) && ok;
	ok = col_blob(s, 8, &row->rec.details, &row->rec.details_len) && ok;
	ok = col_blob(s, 9, &row->prev_hash, &row->prev_hash_len) && ok;
	ok = col_blob(s, 10, &row->hash, &row->hash_len) && ok;
	row->malformed = !ok;
}

/* The archive anchor in meta: 0 when nothing was archived. */
static tkm_err read_anchor(sqlite3 *db, const char *path, uint64_t *anchor, char *why,
                           size_t why_len)
{
	char buf[32];
	char *end = NULL;
	unsigned long long v;
	tkm_err err;

	*anchor = 0;
	err = meta_get_on(db, TKM_STORE_META_ANCHOR, buf, sizeof(buf));
	if (err == TKM_E_NOT_FOUND) {
		return TKM_OK;
	}
	if (err != TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_IO, "database %s: cannot read %s", path,
		                    TKM_STORE_META_ANCHOR);
	}
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf || *end != '\0' || v == 0 || v > INT64_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "database %s: meta %s is not a sequence number", path,
		                    TKM_STORE_META_ANCHOR);
	}
	*anchor = v;
	return TKM_OK;
}

tkm_err tkm_store_audit_anchor(tkm_store *st, uint64_t *anchor_seq, char *why, size_t why_len)
{
	sqlite3 *db = NULL;
	tkm_err err = tkm_store_reader_get(st, &db, why, why_len);

	if (err == TKM_OK) {
		err = read_anchor(db, st->path, anchor_seq, why, why_len);
	}
	tkm_store_reader_put(st, db);
	return err;
}

tkm_err tkm_store_audit_page(tkm_store *st, const tkm_store_audit_query *q,
                             tkm_err (*on_record)(void *arg, const tkm_store_audit_row *row),
                             void *arg, bool *more, char *why, size_t why_len)
{
	sqlite3_stmt *s = NULL;
	sqlite3 *db = NULL;
	size_t n = 0;
	tkm_err err = TKM_OK;
	int rc;

	*more = false;
	if (q->limit == 0 || q->limit > TKM_STORE_PAGE_MAX || q->after_seq > INT64_MAX ||
	    q->since_ms > INT64_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a page holds 1 to %d records from seq and time within range",
		                    TKM_STORE_PAGE_MAX);
	}
	err = tkm_store_reader_get(st, &db, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	/* A seq cursor over the primary key: no OFFSET, so every page costs the same. */
	if (sqlite3_prepare_v2(db,
	                       "SELECT " TKM_STORE_AUDIT_COLUMNS " FROM audit "
	                       "WHERE seq > ?1 AND ts >= ?2 ORDER BY seq LIMIT ?3",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 1, (sqlite3_int64)q->after_seq) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (sqlite3_int64)q->since_ms) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, (sqlite3_int64)q->limit + 1) != SQLITE_OK) {
		err = tkm_store_db_fail(db, st->path, "cannot read the audit log", why, why_len);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		tkm_store_audit_row row;

		if (n == q->limit) {
			*more = true;
			break;
		}
		read_audit_row(s, &row);
		err = on_record(arg, &row);
		if (err != TKM_OK) {
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		err = tkm_store_db_fail(db, st->path, "cannot read the audit log", why, why_len);
	}
out:
	sqlite3_finalize(s);
	tkm_store_reader_put(st, db);
	return err;
}

tkm_err tkm_store_audit_scan(tkm_store *st,
                             tkm_err (*on_checkpoint)(void *arg,
                                                      const tkm_store_checkpoint_row *row),
                             tkm_err (*on_record)(void *arg, const tkm_store_audit_row *row),
                             void *arg, uint64_t *anchor_seq, char *why, size_t why_len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	bool in_tx = false;
	tkm_err err = TKM_OK;
	int rc;

	*anchor_seq = 0;

	/* Its own connection: one snapshot for both tables, whoever else reads. */
	if (sqlite3_open_v2(st->path, &db,
	                    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, TKM_STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		err = tkm_store_db_fail(db, st->path, "cannot open for reading the audit log", why,
		                        why_len);
		goto out;
	}
	err = tkm_store_exec(db, st->path, "BEGIN", why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	in_tx = true;
	err = read_anchor(db, st->path, anchor_seq, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (sqlite3_prepare_v2(db,
	                       "SELECT seq, hash, ts, signature, key_id FROM audit_checkpoint "
	                       "ORDER BY seq",
	                       -1, &s, NULL) != SQLITE_OK) {
		err =
		    tkm_store_db_fail(db, st->path, "cannot read audit checkpoints", why, why_len);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		tkm_store_checkpoint_row row;

		memset(&row, 0, sizeof(row));
		row.seq = (uint64_t)sqlite3_column_int64(s, 0);
		(void)col_uint(s, 2, &row.ts_ms);
		(void)col_blob(s, 1, &row.hash, &row.hash_len);
		(void)col_blob(s, 3, &row.sig, &row.sig_len);
		(void)col_blob(s, 4, &row.key_id, &row.key_id_len);
		err = on_checkpoint(arg, &row);
		if (err != TKM_OK) {
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		err =
		    tkm_store_db_fail(db, st->path, "cannot read audit checkpoints", why, why_len);
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(db, "SELECT " TKM_STORE_AUDIT_COLUMNS " FROM audit ORDER BY seq", -1,
	                       &s, NULL) != SQLITE_OK) {
		err = tkm_store_db_fail(db, st->path, "cannot read the audit log", why, why_len);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		tkm_store_audit_row row;

		read_audit_row(s, &row);
		err = on_record(arg, &row);
		if (err != TKM_OK) {
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		err = tkm_store_db_fail(db, st->path, "cannot read the audit log", why, why_len);
		goto out;
	}
out:
	sqlite3_finalize(s);
	if (in_tx) {
		(void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_close_v2(db);
	return err;
}
