/*
 * store_full_test.c - the store when the disk fills up (issue 4, "Disk full").
 *
 * A real SQLite file in a mkdtemp directory, written through tkm_store_* from
 * several threads, with the disk-full VFS shim (store_fullvfs.h) underneath:
 * file growth is refused with SQLITE_FULL, all at once or when a quota runs
 * out, at small writes, at writes large enough to spill SQLite's cache in the
 * middle of a transaction, and at checkpoints. Every write must be either
 * acknowledged and kept, or refused with an error naming the full disk and
 * leave nothing behind; the open store must work again once space returns,
 * with the audit chain unbroken, and keep everything acknowledged across a
 * reopen. Checkpoints are signed with a libsodium Ed25519 key.
 */
#define _XOPEN_SOURCE 700

#include <ctype.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "store_fullvfs.h"
#include "tkm_audit.h"
#include "tkm_store.h"
#include "tkm_test.h"

#define THREADS          4
#define FILL_PER_THREAD  100
#define FULL_PER_THREAD  25
#define BUSY_PER_THREAD  1500 /* at most: the busy writers run until the toggler is done */
#define QUOTA_PER_THREAD 300
#define SMALL_PAD        200
#define BIG_PAD          (3 * 1024 * 1024) /* more than SQLite's default 2 MB page cache */
#define TOGGLES          25
#define QUOTA_BYTES      (96 * 1024)
#define MAX_ACKS         8192
#define MAX_MESSAGES     8
#define KEY_LEN          48
#define WHY_LEN          512

static char tmpdir[] = "/tmp/tkm-storefull-XXXXXX";
static char dbpath[256];
static uint8_t pk[crypto_sign_PUBLICKEYBYTES];
static uint8_t sk[crypto_sign_SECRETKEYBYTES];
static const uint8_t key_id[4] = {0xd1, 0x5c, 0xf0, 0x11};

/* Every acknowledged write: what the file must hold. */
static pthread_mutex_t acks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ack {
	char k[KEY_LEN];
	uint64_t seq;
} acks[MAX_ACKS];
static size_t n_acks;
static uint64_t head_seq; /* highest acknowledged seq, puts and others */
static bool acks_overflow;

/* The distinct refusals callers saw, digits folded, to show at the end. */
static char messages[MAX_MESSAGES][WHY_LEN];
static size_t n_messages;
static unsigned seen_io, seen_exhausted;

struct tally {
	unsigned ok;
	unsigned refused;
	unsigned bad;
};

static tkm_err test_sign(void *ctx, const uint8_t *msg, size_t msg_len,
                         uint8_t sig[static TKM_AUDIT_SIG_LEN], char *why, size_t why_len)
{
	(void)ctx;
	(void)why;
	(void)why_len;
	return crypto_sign_detached(sig, NULL, msg, msg_len, sk) == 0 ? TKM_OK : TKM_E_CRYPTO;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};

	nanosleep(&ts, NULL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool contains_ci(const char *s, const char *needle)
{
	size_t n = strlen(needle);

	for (; *s != '\0'; s++) {
		size_t i = 0;

		while (i < n && s[i] != '\0' &&
		       tolower((unsigned char)s[i]) == tolower((unsigned char)needle[i])) {
			i++;
		}
		if (i == n) {
			return true;
		}
	}
	return false;
}

/* A full disk is resource_exhausted wherever the store meets it, and the sentence says so. */
static bool is_full_error(tkm_err err, const char *why)
{
	return err == TKM_E_RESOURCE_EXHAUSTED && contains_ci(why, "full");
}

static void message_seen(tkm_err err, const char *why)
{
	char folded[WHY_LEN];
	size_t j = 0;

	for (size_t i = 0; why[i] != '\0' && j + 1 < sizeof(folded); i++) {
		if (isdigit((unsigned char)why[i])) {
			if (j == 0 || folded[j - 1] != '#') {
				folded[j++] = '#';
			}
		} else {
			folded[j++] = why[i];
		}
	}
	folded[j] = '\0';
	pthread_mutex_lock(&acks_mu);
	if (err == TKM_E_IO) {
		seen_io++;
	} else {
		seen_exhausted++;
	}
	for (size_t i = 0; i < n_messages; i++) {
		if (strcmp(messages[i], folded) == 0) {
			pthread_mutex_unlock(&acks_mu);
			return;
		}
	}
	if (n_messages < MAX_MESSAGES) {
		memcpy(messages[n_messages], folded, j + 1);
		n_messages++;
	}
	pthread_mutex_unlock(&acks_mu);
}

static void head_advance(uint64_t seq)
{
	pthread_mutex_lock(&acks_mu);
	if (seq > head_seq) {
		head_seq = seq;
	}
	pthread_mutex_unlock(&acks_mu);
}

static void ack_add(const char *k, uint64_t seq)
{
	pthread_mutex_lock(&acks_mu);
	if (n_acks < MAX_ACKS) {
		int r = snprintf(acks[n_acks].k, sizeof(acks[n_acks].k), "%s", k);

		if (r < 0 || (size_t)r >= sizeof(acks[n_acks].k)) {
			acks_overflow = true;
		} else {
			acks[n_acks].seq = seq;
			n_acks++;
		}
	} else {
		acks_overflow = true;
	}
	if (seq > head_seq) {
		head_seq = seq;
	}
	pthread_mutex_unlock(&acks_mu);
}

static uint64_t head_get(void)
{
	uint64_t h;

	pthread_mutex_lock(&acks_mu);
	h = head_seq;
	pthread_mutex_unlock(&acks_mu);
	return h;
}

/* One outcome: acknowledged (and remembered), refused for the full disk, or wrong. */
static void tally_note(struct tally *t, const char *what, tkm_err err, const char *why)
{
	if (err == TKM_OK) {
		t->ok++;
	} else if (is_full_error(err, why)) {
		t->refused++;
		message_seen(err, why);
	} else {
		t->bad++;
		fprintf(stderr, "%s: unexpected error %d (%s): %s\n", what, (int)err,
		        tkm_strerror(err), why);
	}
}

/* ---- Writes ---- */

struct put {
	const char *k;
	int64_t v;
	int64_t pad; /* random bytes stored with the row */
	bool hold;   /* hold the writer until the batch test's others have queued */
};

/* The batch test's gate: set by the change holding the writer. */
static atomic_bool gate_in;
static atomic_int gate_queued;

static tkm_err create_state(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	(void)arg;
	return tkm_store_tx_exec(
	    tx,
	    "CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v INTEGER NOT NULL, pad BLOB)",
	    NULL, 0, why, why_len);
}

static tkm_err put_state(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const struct put *p = arg;
	tkm_store_val vals[3] = {
	    {.type = TKM_STORE_TEXT, .p = p->k, .len = strlen(p->k)},
	    {.type = TKM_STORE_INT, .i = p->v},
	    {.type = TKM_STORE_INT, .i = p->pad},
	};

	if (p->hold) {
		atomic_store(&gate_in, true);
		for (int i = 0; i < 5000 && atomic_load(&gate_queued) < 3; i++) {
			sleep_ms(1);
		}
		/* The last one counted itself just before it queued. */
		sleep_ms(50);
	}
	return tkm_store_tx_exec(tx,
	                         "INSERT INTO state (k, v, pad) VALUES (?1, ?2, randomblob(?3))",
	                         vals, 3, why, why_len);
}

/* One state row and its audit record; an acknowledged one is remembered. */
static tkm_err put_held(tkm_store *st, const char *k, int64_t v, int64_t pad, bool hold,
                        uint64_t *seq, char *why, size_t why_len)
{
	struct put p = {k, v, pad, hold};
	tkm_audit_rec rec;
	uint64_t s = 0;
	tkm_err err;

	memset(&rec, 0, sizeof(rec));
	rec.principal = "filler";
	rec.role = "operator";
	rec.method = "test.put";
	rec.target = k;
	rec.outcome = "ok";
	why[0] = '\0';
	err = tkm_store_write(st, put_state, &p, &rec, &s, why, why_len);
	if (err == TKM_OK) {
		ack_add(k, s);
	}
	if (seq != NULL) {
		*seq = s;
	}
	return err;
}

static tkm_err put_one(tkm_store *st, const char *k, int64_t v, int64_t pad, uint64_t *seq,
                       char *why, size_t why_len)
{
	return put_held(st, k, v, pad, false, seq, why, why_len);
}

struct job {
	tkm_store *st;
	const char *phase;
	int id;
	int count;         /* writes to try */
	int big_every;     /* every big_every-th write is BIG_PAD bytes; 0: never */
	int stop_refusals; /* stop after this many refusals; 0: never */
	atomic_bool *stop; /* stop early when set; may be NULL */
	unsigned pause_ms; /* between writes */
	struct tally t;
};

static void *job_main(void *arg)
{
	struct job *j = arg;

	for (int i = 0; i < j->count; i++) {
		char k[KEY_LEN];
		char why[WHY_LEN];
		bool big = j->big_every != 0 && i % j->big_every == j->big_every - 1;
		int r;
		tkm_err err;

		if (j->stop != NULL && atomic_load(j->stop)) {
			break;
		}
		r = snprintf(k, sizeof(k), "%s-%d-%d", j->phase, j->id, i);
		if (r < 0 || (size_t)r >= sizeof(k)) {
			j->t.bad++;
			break;
		}
		err = put_one(j->st, k, i, big ? BIG_PAD : SMALL_PAD, NULL, why, sizeof(why));
		tally_note(&j->t, k, err, why);
		if (j->stop_refusals != 0 && (int)j->t.refused >= j->stop_refusals) {
			break;
		}
		if (j->pause_ms != 0) {
			sleep_ms(j->pause_ms);
		}
	}
	return NULL;
}

/* Run n jobs like proto (with ids 0..n-1) and add up their tallies. */
static struct tally run_jobs(const struct job *proto, int n)
{
	struct job jobs[THREADS];
	pthread_t th[THREADS];
	struct tally sum = {0, 0, 0};
	bool started[THREADS];

	for (int i = 0; i < n && i < THREADS; i++) {
		jobs[i] = *proto;
		jobs[i].id = i;
		/* One writer carries the big writes; the others stay small. */
		if (i != 0) {
			jobs[i].big_every = 0;
		}
		started[i] = pthread_create(&th[i], NULL, job_main, &jobs[i]) == 0;
		CHECK(started[i]);
	}
	for (int i = 0; i < n && i < THREADS; i++) {
		if (!started[i]) {
			continue;
		}
		pthread_join(th[i], NULL);
		sum.ok += jobs[i].t.ok;
		sum.refused += jobs[i].t.refused;
		sum.bad += jobs[i].t.bad;
	}
	return sum;
}

/* ---- Looking at the file behind the store's back ---- */

static long long query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	long long n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		n = sqlite3_column_int64(s, 0);
	} else {
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
	}
	sqlite3_finalize(s);
	return n;
}

static bool integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool ok = false;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		ok = t != NULL && strcmp((const char *)t, "ok") == 0;
		if (!ok) {
			fprintf(stderr, "integrity_check: %s\n", t != NULL ? (const char *)t : "?");
		}
	}
	sqlite3_finalize(s);
	return ok;
}

/*
 * The file holds exactly what was acknowledged: one state row and one audit
 * record per acknowledged put, each at the seq its caller was given, records
 * 1..head without a gap, and a sound b-tree.
 */
static void check_file(const char *phase)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	size_t missing = 0;
	uint64_t head = head_get();

	printf("%s: checking %zu acknowledged writes, head %llu\n", phase, n_acks,
	       (unsigned long long)head);
	CHECK(!acks_overflow);
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 5000) != SQLITE_OK) {
		CHECK(!"open the database read-only");
		goto out;
	}
	CHECK(integrity_ok(db));
	CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM state"), n_acks);
	CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM audit WHERE method = 'test.put'"), n_acks);
	CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM audit"), head);
	CHECK_EQ_INT(query_int(db, "SELECT coalesce(max(seq), 0) FROM audit"), head);
	CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM audit_checkpoint WHERE seq > "
	                           "(SELECT coalesce(max(seq), 0) FROM audit)"),
	             0);
	if (sqlite3_prepare_v2(db,
	                       "SELECT count(*) FROM audit a JOIN state s ON s.k = a.target "
	                       "WHERE a.seq = ?1 AND a.target = ?2 AND a.method = 'test.put'",
	                       -1, &s, NULL) != SQLITE_OK) {
		CHECK(!"prepare the acknowledgement query");
		goto out;
	}
	for (size_t i = 0; i < n_acks; i++) {
		sqlite3_reset(s);
		if (sqlite3_bind_int64(s, 1, (sqlite3_int64)acks[i].seq) != SQLITE_OK ||
		    sqlite3_bind_text(s, 2, acks[i].k, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_step(s) != SQLITE_ROW || sqlite3_column_int64(s, 0) != 1) {
			if (missing++ < 5) {
				fprintf(stderr,
				        "%s: acknowledged %s at seq %llu is not in the file\n",
				        phase, acks[i].k, (unsigned long long)acks[i].seq);
			}
		}
	}
	CHECK_EQ_INT(missing, 0);
out:
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static long long count_checkpoints(void)
{
	sqlite3 *db = NULL;
	long long n = -1;

	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		n = query_int(db, "SELECT count(*) FROM audit_checkpoint");
	}
	sqlite3_close(db);
	return n;
}

/*
 * Empty the WAL into the database and cut it to zero bytes, so that the
 * store's next commit has to grow it: while the disk is full, no commit can
 * then slip into WAL space left over from before.
 */
static void truncate_wal(const char *path)
{
	sqlite3 *db = NULL;
	long long busy = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 5000) == SQLITE_OK) {
		busy = query_int(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	}
	sqlite3_close(db);
	CHECK_EQ_INT(busy, 0);
}

/* The chain from 1 to head verifies, and the last checkpoint signs head. */
static void verify_chain(tkm_store *st, const char *phase)
{
	tkm_audit_report rep;
	char why[WHY_LEN] = "";
	uint64_t head = head_get();

	memset(&rep, 0, sizeof(rep));
	CHECK(tkm_audit_verify(st, pk, &rep, why, sizeof(why)) == TKM_OK);
	if (rep.fault != TKM_AUDIT_FAULT_NONE) {
		fprintf(stderr, "%s: audit verify: %s at %llu: %s\n", phase,
		        tkm_audit_fault_name(rep.fault), (unsigned long long)rep.bad_seq, rep.what);
	}
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK_EQ_INT(rep.records, head);
	CHECK_EQ_INT(rep.last_seq, head);
	CHECK_EQ_INT(rep.last_checkpoint_seq, head);
	CHECK_EQ_INT(rep.unsigned_tail, 0);
}

/* Space is back: the same store takes the next write at head + 1, and signs it. */
static void check_recovered(tkm_store *st, const char *phase)
{
	char k[KEY_LEN];
	char why[WHY_LEN] = "";
	uint64_t before = head_get();
	uint64_t seq = 0;
	int r;

	r = snprintf(k, sizeof(k), "%s-after", phase);
	CHECK(r > 0 && (size_t)r < sizeof(k));
	CHECK(put_one(st, k, 1, SMALL_PAD, &seq, why, sizeof(why)) == TKM_OK);
	/* No gap: the writer's chain head did not move on a failed commit. */
	CHECK_EQ_INT(seq, before + 1);
	CHECK(tkm_store_checkpoint_now(st, why, sizeof(why)) == TKM_OK);
	verify_chain(st, phase);
	check_file(phase);
}

static tkm_store *open_store(const char *path, uint64_t every, uint32_t interval_ms)
{
	tkm_store_writer_cfg cfg;
	tkm_store *st = NULL;
	char why[WHY_LEN] = "";

	memset(&cfg, 0, sizeof(cfg));
	cfg.sign = test_sign;
	cfg.key_id = key_id;
	cfg.key_id_len = sizeof(key_id);
	cfg.checkpoint_every = every;
	cfg.checkpoint_interval_ms = interval_ms;
	if (tkm_store_open(path, &st, why, sizeof(why)) != TKM_OK ||
	    tkm_store_writer_start(st, &cfg, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "open %s: %s\n", path, why);
		tkm_store_close(st);
		return NULL;
	}
	return st;
}

static void print_tally(const char *phase, const struct tally *t, double secs)
{
	printf("%s: %u acknowledged, %u refused (disk full), %u wrong, %.2f s\n", phase, t->ok,
	       t->refused, t->bad, secs);
}

/* ---- Phases ---- */

/* Fill with space: everything is acknowledged, with count checkpoints on the way. */
static void phase_fill(tkm_store *st)
{
	struct job proto = {st, "fill", 0, FILL_PER_THREAD, 0, 0, NULL, 0, {0, 0, 0}};
	char why[WHY_LEN] = "";
	tkm_store_writer_stats stats;
	tkm_audit_rec rec;
	uint64_t seq = 0;
	struct tally t;
	double t0 = now_s();

	memset(&rec, 0, sizeof(rec));
	rec.method = "test.setup";
	rec.outcome = "ok";
	CHECK(tkm_store_write(st, create_state, NULL, &rec, &seq, why, sizeof(why)) == TKM_OK);
	head_advance(seq);
	t = run_jobs(&proto, THREADS);
	print_tally("fill", &t, now_s() - t0);
	CHECK_EQ_INT(t.ok, THREADS * FILL_PER_THREAD);
	CHECK_EQ_INT(t.bad, 0);
	tkm_store_writer_stats_get(st, &stats);
	CHECK(stats.checkpoints >= 3);
	check_file("fill");
}

/*
 * The disk is full from the start: every write, small or big enough to spill
 * the cache mid-transaction, and a checkpoint over an unsigned tail, fails
 * with an error about the full disk, and the file keeps exactly what it had.
 */
static void phase_full(tkm_store *st)
{
	struct job proto = {st, "full", 0, FULL_PER_THREAD, 5, 0, NULL, 0, {0, 0, 0}};
	tkm_store_writer_stats s0, s1;
	tkm_fullvfs_stats v0, v1;
	char why[WHY_LEN] = "";
	long long cps;
	uint64_t seq = 0;
	struct tally t = {0, 0, 0};
	double t0;
	tkm_err err;

	/* An acknowledged record after the last checkpoint: something left to sign. */
	CHECK(put_one(st, "full-tail", 0, SMALL_PAD, NULL, why, sizeof(why)) == TKM_OK);
	truncate_wal(dbpath);
	cps = count_checkpoints();
	tkm_store_writer_stats_get(st, &s0);
	tkm_fullvfs_stats_get(&v0);
	tkm_fullvfs_set_full(true);
	t0 = now_s();

	/* Alone: one small and one big write. */
	err = put_one(st, "full-one", 0, SMALL_PAD, &seq, why, sizeof(why));
	tally_note(&t, "full-one", err, why);
	printf("full: a small write gets %s: %s\n", tkm_strerror(err), why);
	err = put_one(st, "full-big", 0, BIG_PAD, &seq, why, sizeof(why));
	tally_note(&t, "full-big", err, why);
	printf("full: a big write gets %s: %s\n", tkm_strerror(err), why);

	/* Together, so that batches mix small and big changes. */
	{
		struct tally m = run_jobs(&proto, THREADS);

		t.ok += m.ok;
		t.refused += m.refused;
		t.bad += m.bad;
	}
	err = tkm_store_checkpoint_now(st, why, sizeof(why));
	printf("full: a checkpoint gets %s: %s\n", tkm_strerror(err), why);
	CHECK(is_full_error(err, why));
	print_tally("full", &t, now_s() - t0);
	CHECK_EQ_INT(t.ok, 0);
	CHECK_EQ_INT(t.bad, 0);
	CHECK_EQ_INT(t.refused, 2 + THREADS * FULL_PER_THREAD);

	tkm_store_writer_stats_get(st, &s1);
	tkm_fullvfs_stats_get(&v1);
	printf("full: the shim refused %llu writes (%llu short)\n",
	       (unsigned long long)(v1.refused - v0.refused),
	       (unsigned long long)(v1.short_writes - v0.short_writes));
	CHECK(v1.refused > v0.refused);
	CHECK_EQ_INT(s1.writes_ok, s0.writes_ok);
	CHECK_EQ_INT(s1.writes_failed - s0.writes_failed, 2 + THREADS * FULL_PER_THREAD);
	CHECK_EQ_INT(s1.checkpoints, s0.checkpoints);
	/* Still full: the file did not change. */
	CHECK_EQ_INT(count_checkpoints(), cps);
	check_file("full");

	tkm_fullvfs_set_full(false);
	check_recovered(st, "full");
}

/* Flips the disk between full and not while writers and checkpoints run. */
struct toggler {
	atomic_bool *stop;
	int flips;
};

static void *toggler_main(void *arg)
{
	struct toggler *tg = arg;

	for (int i = 0; i < TOGGLES; i++) {
		/* Cut the WAL while there is space, so that the full spell finds it growing. */
		truncate_wal(dbpath);
		tkm_fullvfs_set_full(true);
		tg->flips++;
		sleep_ms(15);
		tkm_fullvfs_set_full(false);
		sleep_ms(10);
	}
	atomic_store(tg->stop, true);
	return NULL;
}

struct checkpointer {
	tkm_store *st;
	atomic_bool *stop;
	struct tally t;
};

static void *checkpointer_main(void *arg)
{
	struct checkpointer *c = arg;

	while (!atomic_load(c->stop)) {
		char why[WHY_LEN] = "";
		tkm_err err = tkm_store_checkpoint_now(c->st, why, sizeof(why));

		tally_note(&c->t, "checkpoint", err, why);
		sleep_ms(3);
	}
	return NULL;
}

/* One caller of the batch test: queues after the holder, delay_ms apart. */
struct bcall {
	tkm_store *st;
	const char *k;
	int64_t pad;
	bool hold;
	unsigned delay_ms;
	tkm_err err;
	char why[WHY_LEN];
};

static void *bcall_main(void *arg)
{
	struct bcall *c = arg;

	if (!c->hold) {
		for (int i = 0; i < 5000 && !atomic_load(&gate_in); i++) {
			sleep_ms(1);
		}
		sleep_ms(c->delay_ms);
		atomic_fetch_add(&gate_queued, 1);
	}
	c->err = put_held(c->st, c->k, 0, c->pad, c->hold, NULL, c->why, sizeof(c->why));
	return NULL;
}

/*
 * The disk is full under one batch of three: a small change that succeeds in
 * its savepoint, a big one whose cache spill hits the full disk in the middle
 * of the transaction (SQLite then rolls the whole transaction back), and a
 * small one that never runs. All three callers, and the holder before them,
 * get an error about the full disk, and none of them leaves anything behind.
 */
static void phase_batch(tkm_store *st)
{
	struct bcall calls[4] = {
	    {st, "batch-holder", SMALL_PAD, true, 0, TKM_OK, ""},
	    {st, "batch-small-1", SMALL_PAD, false, 1, TKM_OK, ""},
	    {st, "batch-big", BIG_PAD, false, 15, TKM_OK, ""},
	    {st, "batch-small-2", SMALL_PAD, false, 30, TKM_OK, ""},
	};
	tkm_store_writer_stats s0, s1;
	pthread_t th[4];
	bool started[4];
	struct tally t = {0, 0, 0};

	truncate_wal(dbpath);
	tkm_store_writer_stats_get(st, &s0);
	atomic_store(&gate_in, false);
	atomic_store(&gate_queued, 0);
	tkm_fullvfs_set_full(true);
	for (int i = 0; i < 4; i++) {
		started[i] = pthread_create(&th[i], NULL, bcall_main, &calls[i]) == 0;
		CHECK(started[i]);
	}
	for (int i = 0; i < 4; i++) {
		if (started[i]) {
			pthread_join(th[i], NULL);
		}
		tally_note(&t, calls[i].k, calls[i].err, calls[i].why);
		printf("batch: %s gets %s: %s\n", calls[i].k, tkm_strerror(calls[i].err),
		       calls[i].why);
	}
	tkm_store_writer_stats_get(st, &s1);
	CHECK_EQ_INT(t.ok, 0);
	CHECK_EQ_INT(t.bad, 0);
	CHECK_EQ_INT(t.refused, 4);
	CHECK_EQ_INT(s1.writes_failed - s0.writes_failed, 4);
	check_file("batch");
	tkm_fullvfs_set_full(false);
	check_recovered(st, "batch");
}

/*
 * The disk fills and empties under load: big writes that spill mid-batch,
 * count checkpoints and checkpoint_now calls are all in flight when it does.
 * Each write is acknowledged or refused; whatever was acknowledged is kept.
 */
static void phase_busy(tkm_store *st)
{
	atomic_bool stop = false;
	struct job proto = {st, "busy", 0, BUSY_PER_THREAD, 40, 0, &stop, 1, {0, 0, 0}};
	struct toggler tg = {&stop, 0};
	struct checkpointer cp = {st, &stop, {0, 0, 0}};
	tkm_fullvfs_stats v0, v1;
	pthread_t tth, cth;
	struct tally t;
	double t0 = now_s();
	bool tok, cok;

	tkm_fullvfs_stats_get(&v0);
	tok = pthread_create(&tth, NULL, toggler_main, &tg) == 0;
	cok = pthread_create(&cth, NULL, checkpointer_main, &cp) == 0;
	CHECK(tok && cok);
	if (!tok) {
		atomic_store(&stop, true);
	}
	t = run_jobs(&proto, THREADS);
	if (tok) {
		pthread_join(tth, NULL);
	}
	atomic_store(&stop, true);
	if (cok) {
		pthread_join(cth, NULL);
	}
	tkm_fullvfs_set_full(false);
	tkm_fullvfs_stats_get(&v1);
	print_tally("busy", &t, now_s() - t0);
	printf("busy: %d full spells; checkpoints %u ok, %u refused, %u wrong; the shim refused "
	       "%llu writes (%llu short)\n",
	       tg.flips, cp.t.ok, cp.t.refused, cp.t.bad,
	       (unsigned long long)(v1.refused - v0.refused),
	       (unsigned long long)(v1.short_writes - v0.short_writes));
	CHECK_EQ_INT(t.bad, 0);
	CHECK_EQ_INT(cp.t.bad, 0);
	CHECK(t.ok > 0);
	CHECK(t.refused > 0);
	CHECK(v1.refused > v0.refused);
	check_recovered(st, "busy");
}

/*
 * The disk runs out part-way: a growth quota lets the first commits through,
 * cuts one short in the middle of a write, and refuses the rest.
 */
static void phase_quota(tkm_store *st)
{
	struct job proto = {st, "quota", 0, QUOTA_PER_THREAD, 0, 3, NULL, 0, {0, 0, 0}};
	tkm_fullvfs_stats v0, v1;
	struct tally t;
	double t0;

	truncate_wal(dbpath);
	tkm_fullvfs_stats_get(&v0);
	tkm_fullvfs_set_quota(QUOTA_BYTES);
	t0 = now_s();
	t = run_jobs(&proto, THREADS);
	tkm_fullvfs_stats_get(&v1);
	tkm_fullvfs_set_full(false);
	print_tally("quota", &t, now_s() - t0);
	printf("quota: %d KiB of growth; the shim refused %llu writes (%llu short), files grew "
	       "%llu bytes\n",
	       QUOTA_BYTES / 1024, (unsigned long long)(v1.refused - v0.refused),
	       (unsigned long long)(v1.short_writes - v0.short_writes),
	       (unsigned long long)(v1.grown_bytes - v0.grown_bytes));
	CHECK_EQ_INT(t.bad, 0);
	CHECK(t.ok > 0);
	CHECK(t.refused >= THREADS * 3);
	/* The quota ends inside a WAL frame: the write that crosses it is torn. */
	CHECK(v1.short_writes > v0.short_writes);
	CHECK(v1.grown_bytes - v0.grown_bytes <= QUOTA_BYTES);
	check_recovered(st, "quota");
}

/*
 * A timed checkpoint that falls due while the disk is full is retried once
 * per interval, not in a loop, and is written once space returns.
 */
static void phase_timed(void)
{
	char path[300];
	char why[WHY_LEN] = "";
	tkm_fullvfs_stats v0, v1;
	tkm_store_writer_stats s;
	tkm_audit_rec rec;
	tkm_store *st;
	int r;

	r = snprintf(path, sizeof(path), "%s/timed.db", tmpdir);
	CHECK(r > 0 && (size_t)r < sizeof(path));
	st = open_store(path, 0, 200);
	CHECK(st != NULL);
	if (st == NULL) {
		return;
	}
	memset(&rec, 0, sizeof(rec));
	rec.method = "test.note";
	rec.outcome = "ok";
	CHECK(tkm_store_write(st, NULL, NULL, &rec, NULL, why, sizeof(why)) == TKM_OK);
	tkm_fullvfs_stats_get(&v0);
	tkm_fullvfs_set_full(true);
	sleep_ms(700);
	tkm_fullvfs_stats_get(&v1);
	tkm_fullvfs_set_full(false);
	/* The next attempt, one interval later, goes through. */
	for (int i = 0; i < 300; i++) {
		tkm_store_writer_stats_get(st, &s);
		if (s.checkpoints != 0) {
			break;
		}
		sleep_ms(10);
	}
	printf("timed: while full for 0.7 s, the 200 ms checkpoint timer made %llu writes fail\n",
	       (unsigned long long)(v1.refused - v0.refused));
	CHECK(v1.refused > v0.refused);
	CHECK(v1.refused - v0.refused <= 6);
	CHECK_EQ_INT(s.checkpoints, 1);
	tkm_store_close(st);
}

/* Closed and reopened: everything acknowledged is there and the chain goes on. */
static void phase_reopen(tkm_store **stp)
{
	char why[WHY_LEN] = "";
	tkm_audit_report rep;
	uint64_t before = head_get();
	uint64_t seq = 0;

	tkm_store_close(*stp);
	*stp = open_store(dbpath, 64, 0);
	CHECK(*stp != NULL);
	if (*stp == NULL) {
		return;
	}
	check_file("reopen");
	CHECK(put_one(*stp, "reopen-after", 1, SMALL_PAD, &seq, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(seq, before + 1);
	tkm_store_close(*stp);
	*stp = NULL;
	memset(&rep, 0, sizeof(rep));
	CHECK(tkm_audit_verify_file(dbpath, pk, &rep, why, sizeof(why)) == TKM_OK);
	CHECK_EQ_INT(rep.fault, TKM_AUDIT_FAULT_NONE);
	CHECK_EQ_INT(rep.records, before + 1);
	/* The clean close signed the tail. */
	CHECK_EQ_INT(rep.last_checkpoint_seq, before + 1);
	check_file("closed");
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	tkm_store *st;
	double t0 = now_s();
	int r;

	/* Before anything opens a database: every connection goes through the shim. */
	if (tkm_fullvfs_install() != SQLITE_OK || sodium_init() < 0 || mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	r = snprintf(dbpath, sizeof(dbpath), "%s/full.db", tmpdir);
	if (r < 0 || (size_t)r >= sizeof(dbpath)) {
		return 1;
	}
	crypto_sign_keypair(pk, sk);
	st = open_store(dbpath, 64, 0);
	CHECK(st != NULL);
	if (st != NULL) {
		phase_fill(st);
		phase_full(st);
		phase_batch(st);
		phase_busy(st);
		phase_quota(st);
		phase_reopen(&st);
	}
	tkm_store_close(st);
	phase_timed();
	printf("callers saw %u TKM_E_IO and %u TKM_E_RESOURCE_EXHAUSTED refusals, worded:\n",
	       seen_io, seen_exhausted);
	for (size_t i = 0; i < n_messages; i++) {
		printf("  %s\n", messages[i]);
	}
	printf("total %.2f s\n", now_s() - t0);
	sodium_memzero(sk, sizeof(sk));
	if (nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
	return tkm_test_report("store_full");
}
