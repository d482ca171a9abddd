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

#include <stddef.h>

#include "tkm/error.h"

/* The schema this build knows; migration N brings user_version to N. */
#define TKM_STORE_SCHEMA_VERSION 1

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

#endif /* TKM_STORE_H */
