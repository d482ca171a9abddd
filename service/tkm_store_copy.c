/*
 * tkm_store_copy.c - copies of the database that leave tkmd: the online
 * backup (SQLite's backup API) and the audit archive (old records moved out
 * to their own verifiable file, cut at a signed checkpoint).
 *
 * Both write a temporary file next to the destination, sync it, and only
 * then give it its name with link(2), which never replaces an existing
 * file. A failure at any step removes the temporary file, so a destination
 * that exists is always complete.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tkm_cbor.h"
#include "tkm_store_internal.h"
#include "tkm_why.h"

#define TKM_COPY_PATH_MAX 4096

/* snprintf that says whether everything fit. */
__attribute__((format(printf, 3, 4))) static bool fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < len;
}

/* A temporary file beside dest, made with mkstemp; removed by tmp_drop. */
typedef struct tkm_copy_tmp {
	char path[TKM_COPY_PATH_MAX];
	bool made;
} tkm_copy_tmp;

static void tmp_drop(tkm_copy_tmp *t)
{
	char side[TKM_COPY_PATH_MAX + 8];

	if (!t->made) {
		return;
	}
	(void)unlink(t->path);
	/* SQLite's own side files, should a connection have died with them. */
	if (fmt(side, sizeof(side), "%s-wal", t->path)) {
		(void)unlink(side);
	}
	if (fmt(side, sizeof(side), "%s-shm", t->path)) {
		(void)unlink(side);
	}
	if (fmt(side, sizeof(side), "%s-journal", t->path)) {
		(void)unlink(side);
	}
	t->made = false;
}

static tkm_err tmp_make(const char *dest, tkm_copy_tmp *t, char *why, size_t why_len)
{
	struct stat sb;
	int fd;

	t->made = false;
	if (dest[0] != '/') {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "%s: the destination must be an absolute path on the server",
		                    dest);
	}
	if (lstat(dest, &sb) == 0) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
		                    "%s already exists; tkm never overwrites a copy", dest);
	}
	if (!fmt(t->path, sizeof(t->path), "%s.tmp-XXXXXX", dest)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "%s: path too long", dest);
	}
	fd = mkstemp(t->path);
	if (fd < 0) {
		return tkm_why_fail(why, why_len, TKM_E_IO, "%s: cannot create a file there: %s",
		                    dest, strerror(errno));
	}
	t->made = true;
	(void)fchmod(fd, 0600);
	(void)close(fd);
	return TKM_OK;
}

static tkm_err fsync_path(const char *path, int flags, char *why, size_t why_len)
{
	int fd = open(path, flags | O_CLOEXEC);
	tkm_err err = TKM_OK;

	if (fd < 0 || fsync(fd) != 0) {
		err = tkm_why_fail(why, why_len,
		                   errno == ENOSPC ? TKM_E_RESOURCE_EXHAUSTED : TKM_E_IO,
		                   "%s: cannot sync: %s", path, strerror(errno));
	}
	if (fd >= 0) {
		(void)close(fd);
	}
	return err;
}

/* Sync the finished temporary file and give it dest's name, never replacing a file. */
static tkm_err tmp_publish(tkm_copy_tmp *t, const char *dest, uint64_t *bytes, char *why,
                           size_t why_len)
{
	char dir[TKM_COPY_PATH_MAX];
	struct stat sb;
	tkm_err err;

	err = fsync_path(t->path, O_RDONLY, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (stat(t->path, &sb) != 0) {
		return tkm_why_fail(why, why_len, TKM_E_IO, "%s: %s", t->path, strerror(errno));
	}
	*bytes = (uint64_t)sb.st_size;
	if (link(t->path, dest) != 0) {
		return tkm_why_fail(why, why_len, errno == EEXIST ? TKM_E_ALREADY_EXISTS : TKM_E_IO,
		                    "%s: cannot create it: %s", dest, strerror(errno));
	}
	tmp_drop(t);
	if (!fmt(dir, sizeof(dir), "%s", dest)) {
		return TKM_OK;
	}
	/* The new name is durable only once the directory is. */
	return fsync_path(dirname(dir), O_RDONLY | O_DIRECTORY, why, why_len);
}

/* Leave WAL mode, so that the copy is one self-contained file. */
static tkm_err make_single_file(const char *path, char *why, size_t why_len)
{
	sqlite3 *db = NULL;
	tkm_err err = TKM_OK;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE, NULL) !=
	    SQLITE_OK) {
		err = tkm_store_db_fail(db, path, "cannot reopen the copy", why, why_len);
	} else {
		err = tkm_store_exec(db, path, "PRAGMA journal_mode=DELETE", why, why_len);
	}
	if (sqlite3_close_v2(db) != SQLITE_OK && err == TKM_OK) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "%s: cannot close the copy", path);
	}
	return err;
}

/* min and max record seq and the last checkpoint of the database at path. */
static tkm_err read_extent(const char *path, tkm_store_copy_info *info, char *why, size_t why_len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	tkm_err err = TKM_OK;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_EXRESCODE, NULL) !=
	        SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "SELECT (SELECT ifnull(min(seq), 0) FROM audit), "
	                       "(SELECT ifnull(max(seq), 0) FROM audit), "
	                       "(SELECT ifnull(max(seq), 0) FROM audit_checkpoint)",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		err = tkm_store_db_fail(db, path, "cannot read the copy back", why, why_len);
		goto out;
	}
	info->first_seq = (uint64_t)sqlite3_column_int64(s, 0);
	info->last_seq = (uint64_t)sqlite3_column_int64(s, 1);
	info->checkpoint = (uint64_t)sqlite3_column_int64(s, 2);
out:
	sqlite3_finalize(s);
	sqlite3_close_v2(db);
	return err;
}

tkm_err tkm_store_backup(tkm_store *st, const char *dest, tkm_store_copy_info *info, char *why,
                         size_t why_len)
{
	tkm_copy_tmp tmp = {.made = false};
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b = NULL;
	tkm_err err;
	int rc;

	memset(info, 0, sizeof(*info));
	err = tmp_make(dest, &tmp, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	if (sqlite3_open_v2(st->path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_EXRESCODE, NULL) !=
	        SQLITE_OK ||
	    sqlite3_busy_timeout(src, TKM_STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		err = tkm_store_db_fail(src, st->path, "cannot open for the backup", why, why_len);
		goto out;
	}
	if (sqlite3_open_v2(tmp.path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE, NULL) !=
	    SQLITE_OK) {
		err = tkm_store_db_fail(dst, tmp.path, "cannot open the backup file", why, why_len);
		goto out;
	}
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (b == NULL) {
		err = tkm_store_db_fail(dst, tmp.path, "cannot start the backup", why, why_len);
		goto out;
	}
	/* All pages in one step: one read snapshot, so the copy is consistent. */
	rc = sqlite3_backup_step(b, -1);
	(void)sqlite3_backup_finish(b);
	b = NULL;
	if (rc != SQLITE_DONE) {
		err = tkm_store_db_fail(dst, tmp.path, "backup failed", why, why_len);
		goto out;
	}
	if (sqlite3_close_v2(dst) != SQLITE_OK) {
		dst = NULL;
		err = tkm_why_fail(why, why_len, TKM_E_IO, "%s: cannot close the backup file",
		                   tmp.path);
		goto out;
	}
	dst = NULL;
	err = make_single_file(tmp.path, why, why_len);
	if (err == TKM_OK) {
		err = read_extent(tmp.path, info, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	err = tmp_publish(&tmp, dest, &info->bytes, why, why_len);
out:
	sqlite3_close_v2(dst);
	sqlite3_close_v2(src);
	tmp_drop(&tmp);
	return err;
}

/* ---- Audit archive ---- */

/* The newest signed checkpoint after the anchor whose record is older than before_ms. */
static tkm_err find_cut(tkm_store *st, uint64_t anchor, uint64_t before_ms, uint64_t *cut,
                        uint64_t *nrec, char *why, size_t why_len)
{
	sqlite3_stmt *s = NULL;
	sqlite3 *db = NULL;
	tkm_err err = TKM_OK;
	int rc;

	*cut = 0;
	*nrec = 0;
	err = tkm_store_reader_get(st, &db, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (sqlite3_prepare_v2(db,
	                       "SELECT c.seq, (SELECT count(*) FROM audit WHERE seq > ?2 AND "
	                       "seq <= c.seq) FROM audit_checkpoint c JOIN audit a ON a.seq = "
	                       "c.seq WHERE a.ts < ?1 AND c.seq > ?2 ORDER BY c.seq DESC LIMIT 1",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(
	        s, 1, before_ms > INT64_MAX ? INT64_MAX : (sqlite3_int64)before_ms) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (sqlite3_int64)anchor) != SQLITE_OK) {
		err =
		    tkm_store_db_fail(db, st->path, "cannot look for an archive cut", why, why_len);
		goto out;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "no signed checkpoint covers records older than the cut-off; "
		                   "nothing to archive");
		goto out;
	}
	if (rc != SQLITE_ROW) {
		err =
		    tkm_store_db_fail(db, st->path, "cannot look for an archive cut", why, why_len);
		goto out;
	}
	*cut = (uint64_t)sqlite3_column_int64(s, 0);
	*nrec = (uint64_t)sqlite3_column_int64(s, 1);
out:
	sqlite3_finalize(s);
	tkm_store_reader_put(st, db);
	return err;
}

/* Copy records anchor+1..cut and checkpoints up to cut into the new database at path. */
static tkm_err fill_archive(tkm_store *st, const char *path, uint64_t anchor, uint64_t cut,
                            char *why, size_t why_len)
{
	char anchor_txt[24], cut_txt[24];
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	bool in_tx = false, attached = false;
	tkm_err err;

	if (!fmt(anchor_txt, sizeof(anchor_txt), "%llu", (unsigned long long)anchor) ||
	    !fmt(cut_txt, sizeof(cut_txt), "%llu", (unsigned long long)cut)) {
		return TKM_E_INTERNAL;
	}
	if (sqlite3_open_v2(st->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE, NULL) !=
	        SQLITE_OK ||
	    sqlite3_busy_timeout(db, TKM_STORE_BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "ATTACH ?1 AS arch", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE) {
		err = tkm_store_db_fail(db, path, "cannot open the archive file", why, why_len);
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	attached = true;
	err = tkm_store_exec(db, path, "PRAGMA arch.synchronous=FULL; BEGIN", why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	in_tx = true;
	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO arch.audit SELECT * FROM main.audit "
	                       "WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 1, (sqlite3_int64)anchor) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (sqlite3_int64)cut) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE) {
		err = tkm_store_db_fail(db, path, "cannot copy audit records", why, why_len);
		goto out;
	}
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO arch.audit_checkpoint SELECT * FROM "
	                       "main.audit_checkpoint WHERE seq <= ?1 ORDER BY seq",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 1, (sqlite3_int64)cut) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE) {
		err = tkm_store_db_fail(db, path, "cannot copy audit checkpoints", why, why_len);
		goto out;
	}
	sqlite3_finalize(s);
	/* The archive chain starts where the live one did: after the previous cut. */
	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO arch.meta (key, value) VALUES ('archive_through_seq', "
	                       "?2), (" TKM_STORE_META_ANCHOR_SQL ", ?1)",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(s, 1, anchor_txt, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, cut_txt, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE) {
		err = tkm_store_db_fail(db, path, "cannot label the archive", why, why_len);
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (anchor == 0) {
		err = tkm_store_exec(db, path,
		                     "DELETE FROM arch.meta WHERE key = " TKM_STORE_META_ANCHOR_SQL,
		                     why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
	}
	err = tkm_store_exec(db, path, "COMMIT", why, why_len);
	if (err == TKM_OK) {
		in_tx = false;
	}
out:
	sqlite3_finalize(s);
	if (in_tx) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (attached) {
		(void)sqlite3_exec(db, "DETACH arch", NULL, NULL, NULL);
	}
	sqlite3_close_v2(db);
	return err;
}

/* The cut, as the writer applies it with its audit record. */
typedef struct tkm_archive_cut {
	uint64_t anchor; /* expected current anchor */
	uint64_t cut;
} tkm_archive_cut;

static tkm_err apply_cut(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const tkm_archive_cut *c = arg;
	const tkm_store_val cut = {.type = TKM_STORE_INT, .i = (int64_t)c->cut};
	char now[32], want[32], next[24];
	tkm_err err;

	if (!fmt(want, sizeof(want), "%llu", (unsigned long long)c->anchor) ||
	    !fmt(next, sizeof(next), "%llu", (unsigned long long)c->cut)) {
		return TKM_E_INTERNAL;
	}
	err = tkm_store_tx_meta_get(tx, TKM_STORE_META_ANCHOR, now, sizeof(now));
	if (err == TKM_E_NOT_FOUND) {
		now[0] = '0';
		now[1] = '\0';
	} else if (err != TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_IO, "cannot read the archive anchor");
	}
	if (strcmp(now, want) != 0) {
		return tkm_why_fail(why, why_len, TKM_E_CONFLICT,
		                    "another archive moved the cut meanwhile; try again");
	}
	err = tkm_store_tx_exec(tx, "DELETE FROM audit WHERE seq <= ?1", &cut, 1, why, why_len);
	if (err == TKM_OK) {
		err = tkm_store_tx_exec(tx, "DELETE FROM audit_checkpoint WHERE seq < ?1", &cut, 1,
		                        why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_store_tx_meta_set(tx, TKM_STORE_META_ANCHOR, next, why, why_len);
	}
	return err;
}

static tkm_err archive_details(uint64_t records, uint64_t through, tkm_cbor_w **out)
{
	tkm_err err = tkm_cbor_w_new(64, out);

	if (err != TKM_OK) {
		return err;
	}
	/* Canonical order: "records" (7 bytes) before "through_seq" (11). */
	tkm_cbor_put_map(*out, 2);
	tkm_cbor_put_cstr(*out, "records");
	tkm_cbor_put_uint(*out, records);
	tkm_cbor_put_cstr(*out, "through_seq");
	tkm_cbor_put_uint(*out, through);
	return TKM_OK;
}

static bool archive_begin(tkm_store *st)
{
	bool ok;

	pthread_mutex_lock(&st->mu);
	ok = !st->archiving;
	st->archiving = true;
	pthread_mutex_unlock(&st->mu);
	return ok;
}

static void archive_end(tkm_store *st)
{
	pthread_mutex_lock(&st->mu);
	st->archiving = false;
	pthread_mutex_unlock(&st->mu);
}

tkm_err tkm_store_audit_archive(tkm_store *st, const char *dest, uint64_t before_ms,
                                tkm_store_archive_check_fn check, void *check_ctx,
                                const tkm_audit_rec *rec, tkm_store_copy_info *info, uint64_t *seq,
                                char *why, size_t why_len)
{
	tkm_copy_tmp tmp = {.made = false};
	tkm_archive_cut cut = {0, 0};
	tkm_audit_rec r = *rec;
	tkm_store *arch = NULL;
	tkm_cbor_w *details = NULL;
	uint64_t nrec = 0, bytes = 0;
	tkm_err err;

	memset(info, 0, sizeof(*info));
	if (!archive_begin(st)) {
		return tkm_why_fail(why, why_len, TKM_E_CONFLICT, "an audit archive is running");
	}
	err = tkm_store_audit_anchor(st, &cut.anchor, why, why_len);
	if (err == TKM_OK) {
		err = find_cut(st, cut.anchor, before_ms, &cut.cut, &nrec, why, why_len);
	}
	if (err == TKM_OK) {
		err = tmp_make(dest, &tmp, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	/* A fresh database with the current schema, then the records. */
	err = tkm_store_open(tmp.path, &arch, why, why_len);
	tkm_store_close(arch);
	if (err == TKM_OK) {
		err = fill_archive(st, tmp.path, cut.anchor, cut.cut, why, why_len);
	}
	if (err == TKM_OK) {
		err = make_single_file(tmp.path, why, why_len);
	}
	if (err == TKM_OK) {
		err = check(check_ctx, tmp.path, why, why_len);
	}
	if (err == TKM_OK) {
		err = read_extent(tmp.path, info, why, why_len);
	}
	if (err == TKM_OK) {
		err = tmp_publish(&tmp, dest, &bytes, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	info->bytes = bytes;
	err = archive_details(nrec, cut.cut, &details);
	if (err == TKM_OK) {
		err = tkm_cbor_w_finish(details, &r.details, &r.details_len);
	}
	if (err != TKM_OK) {
		err = tkm_why_fail(why, why_len, err, "cannot encode the archive record");
		goto out;
	}
	r.method = TKM_AUDIT_METHOD_ARCHIVE;
	r.outcome = "ok";
	r.error_code = NULL;
	err = tkm_store_write(st, apply_cut, &cut, &r, seq, why, why_len);
out:
	tkm_cbor_w_free(details);
	tmp_drop(&tmp);
	archive_end(st);
	return err;
}
