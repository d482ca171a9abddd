/*
 * tkm_store.c - open, configure and migrate tkmd's SQLite database.
 *
 * Migrations are numbered and run in one IMMEDIATE transaction together with
 * the user_version bump, so a crash leaves either the old or the new schema.
 * Every SQLite error is turned into a tkm_err here with the file name and
 * SQLite's own words; nothing above this module sees sqlite3 types.
 */
#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "tkm/client.h"
#include "tkm_store.h"
#include "tkm_why.h"

#define TKM_STORE_BUSY_TIMEOUT_MS 5000

struct tkm_store {
	sqlite3 *db;
	int version;
};

static tkm_err db_fail(sqlite3 *db, const char *path, const char *what, char *why, size_t why_len)
{
	return tkm_why_fail(why, why_len, TKM_E_IO, "database %s: %s: %s", path, what,
	                    db != NULL ? sqlite3_errmsg(db) : "out of memory");
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
		err = db_fail(db, path, sql, why, why_len);
		goto out;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW && result != NULL) {
		*result = sqlite3_column_int(stmt, 0);
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		err = db_fail(db, path, sql, why, why_len);
		goto out;
	} else if (result != NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "database %s: %s returned no row", path,
		                   sql);
	}
out:
	sqlite3_finalize(stmt);
	return err;
}

static tkm_err exec_sql(sqlite3 *db, const char *path, const char *sql, char *why, size_t why_len)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		return db_fail(db, path, sql, why, why_len);
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
		err = db_fail(db, path, "cannot switch to WAL journal mode", why, why_len);
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

	err = exec_sql(db, path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
	               why, why_len);
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
		err = db_fail(db, path, "cannot fill the meta table", why, why_len);
		goto out;
	}
out:
	sqlite3_finalize(stmt);
	return err;
}

static const struct {
	int version;
	tkm_err (*apply)(sqlite3 *db, const char *path, char *why, size_t why_len);
} tkm_store_migrations[] = {
    {1, migrate_1},
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
	err = exec_sql(db, path, "BEGIN IMMEDIATE", why, why_len);
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
		err = exec_sql(db, path, sql, why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
		current = tkm_store_migrations[i].version;
	}
	err = exec_sql(db, path, "COMMIT", why, why_len);
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
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	if (sqlite3_open_v2(path, &db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX |
	                        SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK) {
		err = db_fail(db, path, "cannot open", why, why_len);
		goto out;
	}
	if (sqlite3_busy_timeout(db, TKM_STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		err = db_fail(db, path, "cannot set the busy timeout", why, why_len);
		goto out;
	}
	err = set_wal(db, path, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = exec_sql(db, path, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", why, why_len);
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

void tkm_store_close(tkm_store *st)
{
	if (st == NULL) {
		return;
	}
	sqlite3_close_v2(st->db);
	free(st);
}

int tkm_store_schema_version(const tkm_store *st)
{
	return st->version;
}

tkm_err tkm_store_meta_get(tkm_store *st, const char *key, char *buf, size_t buf_len)
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
	if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = ?1", -1, &stmt, NULL) !=
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
