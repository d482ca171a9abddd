/*
 * store_fullvfs.h - a SQLite VFS shim that makes the disk "fill up" on demand,
 * for the store's disk-full test (tests/store_full_test.c).
 *
 * Installed as SQLite's default VFS, it wraps the previous default ("unix")
 * and forwards everything. Writes that would make a main database, WAL or
 * rollback journal file longer are metered against a growth quota: once it is
 * spent they fail with SQLITE_FULL, as the unix VFS does on ENOSPC (a write
 * that only partly fits is written up to the limit first, like a short
 * write). Writes inside a file's current size, reads, truncation, syncs,
 * locks and shared memory always pass. Test code only: the shim holds no
 * data of its own and changes nothing on disk that SQLite did not ask for.
 */
#ifndef TKM_STORE_FULLVFS_H
#define TKM_STORE_FULLVFS_H

#include <stdbool.h>
#include <stdint.h>

#include "tkm/error.h"

/*
 * Register the shim as the default VFS, wrapping the current default. Call
 * before the database under test is opened. Idempotent. SQLITE_OK or the
 * SQLite error that stopped it.
 */
TKM_MUST_CHECK int tkm_fullvfs_install(void);

/* full: no file may grow any more (quota 0); !full: unlimited growth. */
void tkm_fullvfs_set_full(bool full);

/* Allow bytes more of file growth from now on, then refuse; bytes < 0: unlimited. */
void tkm_fullvfs_set_quota(int64_t bytes);

typedef struct tkm_fullvfs_stats {
	uint64_t writes;       /* xWrite calls on metered files */
	uint64_t refused;      /* of those, failed with SQLITE_FULL */
	uint64_t short_writes; /* of those, partly written before failing */
	uint64_t grown_bytes;  /* bytes by which metered files grew */
} tkm_fullvfs_stats;

/* The counters since install. */
void tkm_fullvfs_stats_get(tkm_fullvfs_stats *out);

#endif /* TKM_STORE_FULLVFS_H */
