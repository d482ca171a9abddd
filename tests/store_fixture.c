/*
 * store_fixture.c - database copies and raw SQL for the store tests
 * (store_fixture.h).
 */
#include <stdio.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store_fixture.h"

int tkm_storefix_copy_db(const char *src, const char *dst)
{
	sqlite3 *a = NULL, *b = NULL;
	sqlite3_backup *bk;
	int rc;

	unlink(dst);
	rc = sqlite3_open_v2(src, &a, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_open(dst, &b);
	}
	if (rc == SQLITE_OK) {
		bk = sqlite3_backup_init(b, "main", a, "main");
		rc = bk == NULL ? SQLITE_ERROR : sqlite3_backup_step(bk, -1);
		rc = sqlite3_backup_finish(bk) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK
		                                                                 : SQLITE_ERROR;
	}
	sqlite3_close(a);
	sqlite3_close(b);
	return rc;
}

int tkm_storefix_run_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc;

	rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	}
	if (rc != SQLITE_OK) {
		fprintf(stderr, "sql %s: %s\n", sql, msg != NULL ? msg : sqlite3_errmsg(db));
	}
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc;
}
