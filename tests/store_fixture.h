/*
 * store_fixture.h - what the store tests share for working on database files
 * behind the store's back: consistent copies and raw SQL (tampering).
 */
#ifndef TKM_STORE_FIXTURE_H
#define TKM_STORE_FIXTURE_H

/* Copy the database at src to dst with SQLite's backup API; SQLITE_OK or an error. */
int tkm_storefix_copy_db(const char *src, const char *dst);

/* Run sql on the database at path; prints SQLite's message on failure. */
int tkm_storefix_run_sql(const char *path, const char *sql);

#endif /* TKM_STORE_FIXTURE_H */
