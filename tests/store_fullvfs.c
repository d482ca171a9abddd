/*
 * store_fullvfs.c - the disk-full VFS shim (store_fullvfs.h).
 *
 * Each file the shim opens is its own small header followed by the real
 * VFS's file object; every method forwards to the real one, and only xWrite
 * looks at the quota. The quota and the counters sit under one mutex, taken
 * around the bookkeeping only, never around the real I/O.
 */
#include <pthread.h>
#include <stddef.h>

#include <sqlite3.h>

#include "store_fullvfs.h"

typedef struct fullvfs_file {
	sqlite3_file base; /* pMethods: one of fullvfs_io[] */
	sqlite3_file *real;
	bool metered; /* main database, WAL or rollback journal */
} fullvfs_file;

static pthread_mutex_t fullvfs_mu = PTHREAD_MUTEX_INITIALIZER;
static sqlite3_vfs *fullvfs_real;
static int64_t fullvfs_quota = -1; /* bytes of growth left; < 0: unlimited */
static tkm_fullvfs_stats fullvfs_stats;

static sqlite3_file *real_of(sqlite3_file *f)
{
	return ((fullvfs_file *)f)->real;
}

/* ---- Files ---- */

static int fv_close(sqlite3_file *f)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xClose(r);
}

static int fv_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 ofs)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xRead(r, buf, amt, ofs);
}

/*
 * How much of a write of amt bytes at ofs may go through: all of it, or the
 * part that ends where the quota does (possibly none). Counts the growth.
 */
static int64_t write_allowance(int64_t size, int64_t ofs, int amt, bool *refused)
{
	int64_t end = ofs + amt;
	int64_t growth = end > size ? end - size : 0;
	int64_t allowed = amt;

	*refused = false;
	pthread_mutex_lock(&fullvfs_mu);
	fullvfs_stats.writes++;
	if (growth > 0 && fullvfs_quota >= 0 && growth > fullvfs_quota) {
		int64_t limit = size + fullvfs_quota; /* the file may reach this length */

		allowed = limit > ofs ? limit - ofs : 0;
		*refused = true;
		fullvfs_stats.refused++;
		if (allowed > 0) {
			fullvfs_stats.short_writes++;
		}
		growth = limit > size ? limit - size : 0;
		fullvfs_quota -= growth;
	} else if (growth > 0 && fullvfs_quota >= 0) {
		fullvfs_quota -= growth;
	}
	fullvfs_stats.grown_bytes += (uint64_t)growth;
	pthread_mutex_unlock(&fullvfs_mu);
	return allowed;
}

static int fv_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 ofs)
{
	fullvfs_file *ff = (fullvfs_file *)f;
	sqlite3_file *r = ff->real;
	sqlite3_int64 size = 0;
	int64_t allowed;
	bool refused;
	int rc;

	if (!ff->metered) {
		return r->pMethods->xWrite(r, buf, amt, ofs);
	}
	rc = r->pMethods->xFileSize(r, &size);
	if (rc != SQLITE_OK) {
		return rc;
	}
	allowed = write_allowance(size, ofs, amt, &refused);
	if (!refused) {
		return r->pMethods->xWrite(r, buf, amt, ofs);
	}
	if (allowed > 0) {
		rc = r->pMethods->xWrite(r, buf, (int)allowed, ofs);
		if (rc != SQLITE_OK) {
			return rc;
		}
	}
	return SQLITE_FULL;
}

static int fv_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xTruncate(r, size);
}

static int fv_sync(sqlite3_file *f, int flags)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xSync(r, flags);
}

static int fv_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xFileSize(r, size);
}

static int fv_lock(sqlite3_file *f, int level)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xLock(r, level);
}

static int fv_unlock(sqlite3_file *f, int level)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xUnlock(r, level);
}

static int fv_check_reserved(sqlite3_file *f, int *out)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xCheckReservedLock(r, out);
}

static int fv_file_control(sqlite3_file *f, int op, void *arg)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xFileControl(r, op, arg);
}

static int fv_sector_size(sqlite3_file *f)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xSectorSize(r);
}

static int fv_device_chars(sqlite3_file *f)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xDeviceCharacteristics(r);
}

static int fv_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **p)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xShmMap(r, region, size, extend, p);
}

static int fv_shm_lock(sqlite3_file *f, int ofs, int n, int flags)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xShmLock(r, ofs, n, flags);
}

static void fv_shm_barrier(sqlite3_file *f)
{
	sqlite3_file *r = real_of(f);

	r->pMethods->xShmBarrier(r);
}

static int fv_shm_unmap(sqlite3_file *f, int delete_flag)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xShmUnmap(r, delete_flag);
}

static int fv_fetch(sqlite3_file *f, sqlite3_int64 ofs, int amt, void **p)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xFetch(r, ofs, amt, p);
}

static int fv_unfetch(sqlite3_file *f, sqlite3_int64 ofs, void *p)
{
	sqlite3_file *r = real_of(f);

	return r->pMethods->xUnfetch(r, ofs, p);
}

/* One table per io_methods version, so that SQLite never calls what the real file lacks. */
#define FULLVFS_IO(v)                                                                              \
	{                                                                                          \
		(v), fv_close, fv_read, fv_write, fv_truncate, fv_sync, fv_file_size, fv_lock,     \
		    fv_unlock, fv_check_reserved, fv_file_control, fv_sector_size,                 \
		    fv_device_chars, (v) >= 2 ? fv_shm_map : NULL, (v) >= 2 ? fv_shm_lock : NULL,  \
		    (v) >= 2 ? fv_shm_barrier : NULL, (v) >= 2 ? fv_shm_unmap : NULL,              \
		    (v) >= 3 ? fv_fetch : NULL, (v) >= 3 ? fv_unfetch : NULL                       \
	}

static const sqlite3_io_methods fullvfs_io[3] = {FULLVFS_IO(1), FULLVFS_IO(2), FULLVFS_IO(3)};

/* ---- The VFS ---- */

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
	fullvfs_file *ff = (fullvfs_file *)f;
	int rc;

	(void)vfs;
	ff->base.pMethods = NULL;
	ff->real = (sqlite3_file *)&ff[1];
	ff->real->pMethods = NULL;
	ff->metered =
	    (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)) != 0;
	rc = fullvfs_real->xOpen(fullvfs_real, name, ff->real, flags, out_flags);
	/* A real file with methods must be closed through us even if the open failed. */
	if (ff->real->pMethods != NULL) {
		int v = ff->real->pMethods->iVersion;

		v = v < 1 ? 1 : v > 3 ? 3 : v;
		ff->base.pMethods = &fullvfs_io[v - 1];
	}
	return rc;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return fullvfs_real->xDelete(fullvfs_real, name, sync_dir);
}

static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return fullvfs_real->xAccess(fullvfs_real, name, flags, out);
}

static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return fullvfs_real->xFullPathname(fullvfs_real, name, n, out);
}

static void *fv_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return fullvfs_real->xDlOpen(fullvfs_real, name);
}

static void fv_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	fullvfs_real->xDlError(fullvfs_real, n, msg);
}

static void (*fv_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return fullvfs_real->xDlSym(fullvfs_real, h, sym);
}

static void fv_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	fullvfs_real->xDlClose(fullvfs_real, h);
}

static int fv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return fullvfs_real->xRandomness(fullvfs_real, n, out);
}

static int fv_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return fullvfs_real->xSleep(fullvfs_real, us);
}

static int fv_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return fullvfs_real->xCurrentTime(fullvfs_real, out);
}

static int fv_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return fullvfs_real->xGetLastError != NULL
	           ? fullvfs_real->xGetLastError(fullvfs_real, n, out)
	           : 0;
}

static int fv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return fullvfs_real->xCurrentTimeInt64(fullvfs_real, out);
}

static int fv_set_system_call(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr p)
{
	(void)vfs;
	return fullvfs_real->xSetSystemCall(fullvfs_real, name, p);
}

static sqlite3_syscall_ptr fv_get_system_call(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return fullvfs_real->xGetSystemCall(fullvfs_real, name);
}

static const char *fv_next_system_call(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return fullvfs_real->xNextSystemCall(fullvfs_real, name);
}

static sqlite3_vfs fullvfs = {
    .zName = "tkm-fullvfs",
    .xOpen = fv_open,
    .xDelete = fv_delete,
    .xAccess = fv_access,
    .xFullPathname = fv_full_pathname,
    .xDlOpen = fv_dl_open,
    .xDlError = fv_dl_error,
    .xDlSym = fv_dl_sym,
    .xDlClose = fv_dl_close,
    .xRandomness = fv_randomness,
    .xSleep = fv_sleep,
    .xCurrentTime = fv_current_time,
    .xGetLastError = fv_get_last_error,
    .xCurrentTimeInt64 = fv_current_time_int64,
    .xSetSystemCall = fv_set_system_call,
    .xGetSystemCall = fv_get_system_call,
    .xNextSystemCall = fv_next_system_call,
};

int tkm_fullvfs_install(void)
{
	sqlite3_vfs *real;
	int rc;

	rc = sqlite3_initialize();
	if (rc != SQLITE_OK) {
		return rc;
	}
	pthread_mutex_lock(&fullvfs_mu);
	if (fullvfs_real != NULL) {
		pthread_mutex_unlock(&fullvfs_mu);
		return SQLITE_OK;
	}
	real = sqlite3_vfs_find(NULL);
	if (real == NULL) {
		pthread_mutex_unlock(&fullvfs_mu);
		return SQLITE_ERROR;
	}
	/* The v2/v3 entry points above forward unconditionally: ask for them. */
	if (real->iVersion < 3) {
		pthread_mutex_unlock(&fullvfs_mu);
		return SQLITE_MISUSE;
	}
	fullvfs.iVersion = 3;
	fullvfs.szOsFile = (int)sizeof(fullvfs_file) + real->szOsFile;
	fullvfs.mxPathname = real->mxPathname;
	fullvfs_real = real;
	rc = sqlite3_vfs_register(&fullvfs, 1);
	if (rc != SQLITE_OK) {
		fullvfs_real = NULL;
	}
	pthread_mutex_unlock(&fullvfs_mu);
	return rc;
}

void tkm_fullvfs_set_full(bool full)
{
	tkm_fullvfs_set_quota(full ? 0 : -1);
}

void tkm_fullvfs_set_quota(int64_t bytes)
{
	pthread_mutex_lock(&fullvfs_mu);
	fullvfs_quota = bytes < 0 ? -1 : bytes;
	pthread_mutex_unlock(&fullvfs_mu);
}

void tkm_fullvfs_stats_get(tkm_fullvfs_stats *out)
{
	pthread_mutex_lock(&fullvfs_mu);
	*out = fullvfs_stats;
	pthread_mutex_unlock(&fullvfs_mu);
}
