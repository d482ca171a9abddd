/*
 * store_crash_test.c - the store under SIGKILL: no acknowledged write lost,
 * no change without its audit record, a database and chain that verify.
 *
 * The parent runs this same program as a child (fork + exec, "child" mode).
 * The child opens the store, starts the group-commit writer (checkpoints
 * every CP_EVERY records and CP_INTERVAL_MS, signed with a libsodium Ed25519
 * key it reads from a 0600 file) and writes from THREADS threads: one state
 * row plus its "crash.put" audit record per tkm_store_write. After each
 * acknowledged write it sends "A key seq" to the parent over a pipe, in one
 * write() each, so lines never interleave.
 *
 * The parent kills the child with SIGKILL at a random moment, KILLS times
 * (some of them while the store is still opening), reads every ack that
 * reached the pipe, and before restarting checks the database file as the
 * child left it: every acked key is in `state` and its seq names its record,
 * PRAGMA integrity_check is ok, state rows and crash.put records match one
 * to one, tkm_audit_verify_file finds no fault and `tkmctl audit verify --db
 * --pubkey` exits 0. Records after the last checkpoint are unsigned after a
 * kill (docs/audit.md); that is expected, measured and bounded, not a fault.
 * A last child stops cleanly, which must sign the tail. A copy with one
 * acked row deleted must fail the same check, so the check is known to bite.
 *
 * SIGKILL leaves the page cache alone: this proves atomicity across process
 * crashes, not fsync durability across power loss.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "store_fixture.h"
#include "tkm_audit.h"
#include "tkm_store.h"
#include "tkm_test.h"

#ifndef TKM_TKMCTL_PATH
#error "TKM_TKMCTL_PATH must name the tkmctl binary"
#endif

#define KILLS            20
#define THREADS          4
#define CP_EVERY         50
#define CP_INTERVAL_MS   100
#define DELAY_MIN_MS     20  /* after the child is ready */
#define DELAY_SPAN_MS    281 /* so 20..300 ms */
#define EARLY_EVERY      5   /* every fifth kill aims at the child's start-up */
#define READY_TIMEOUT_MS 20000
#define CLEAN_PER_THREAD 25
#define KEY_MAX          48
#define LINE_MAX_LEN     96

static const uint8_t key_id[4] = {0xa1, 0xd1, 0x70, 0x0c};

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
	int r = snprintf(buf, len, "%s/%s", dir, name);

	if (r < 0 || (size_t)r >= len) {
		abort();
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		abort();
	}
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- The child: writes until killed ---- */

struct child {
	tkm_store *st;
	int ack_fd;
	unsigned run;
	unsigned id;
	unsigned limit; /* writes per thread; 0 = until killed */
};

static tkm_err child_sign(void *ctx, const uint8_t *msg, size_t msg_len,
                          uint8_t sig[static TKM_AUDIT_SIG_LEN], char *why, size_t why_len)
{
	const uint8_t *sk = ctx;

	(void)why;
	(void)why_len;
	return crypto_sign_detached(sig, NULL, msg, msg_len, sk) == 0 ? TKM_OK : TKM_E_CRYPTO;
}

static tkm_err create_state(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	(void)arg;
	return tkm_store_tx_exec(tx,
	                         "CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v INTEGER)",
	                         NULL, 0, why, why_len);
}

struct put {
	const char *k;
	int64_t v;
};

static tkm_err put_state(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const struct put *p = arg;
	tkm_store_val vals[2] = {
	    {.type = TKM_STORE_TEXT, .p = p->k, .len = strlen(p->k)},
	    {.type = TKM_STORE_INT, .i = p->v},
	};

	return tkm_store_tx_exec(tx, "INSERT INTO state (k, v) VALUES (?1, ?2)", vals, 2, why,
	                         why_len);
}

/* One line to the parent in one write(): shorter than PIPE_BUF, so atomic. */
static void send_line(int fd, const char *line, size_t len)
{
	ssize_t w;

	do {
		w = write(fd, line, len);
	} while (w < 0 && errno == EINTR);
	if (w < 0 || (size_t)w != len) {
		_exit(4);
	}
}

static void *child_thread(void *arg)
{
	const struct child *c = arg;

	for (unsigned n = 0; c->limit == 0 || n < c->limit; n++) {
		char k[KEY_MAX];
		char line[LINE_MAX_LEN];
		char why[256] = "";
		struct put p;
		tkm_audit_rec rec;
		uint64_t seq = 0;
		int r;

		r = snprintf(k, sizeof(k), "t%u-%u-%u", c->id, c->run, n);
		if (r < 0 || (size_t)r >= sizeof(k)) {
			_exit(5);
		}
		p.k = k;
		p.v = (int64_t)n;
		memset(&rec, 0, sizeof(rec));
		rec.principal = "crash";
		rec.role = "tester";
		rec.method = "crash.put";
		rec.target = k;
		rec.outcome = "ok";
		if (tkm_store_write(c->st, put_state, &p, &rec, &seq, why, sizeof(why)) != TKM_OK) {
			fprintf(stderr, "store_crash child: write %s: %s\n", k, why);
			_exit(3);
		}
		r = snprintf(line, sizeof(line), "A %s %" PRIu64 "\n", k, seq);
		if (r < 0 || (size_t)r >= sizeof(line)) {
			_exit(5);
		}
		send_line(c->ack_fd, line, (size_t)r);
	}
	return NULL;
}

/* The secret key the parent left in dir/audit.key, in guarded memory. */
static uint8_t *child_load_sk(const char *dir)
{
	char path[512];
	uint8_t *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	size_t got = 0;
	int fd;

	if (sk == NULL) {
		return NULL;
	}
	path_in(path, sizeof(path), dir, "audit.key");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd >= 0 && got < crypto_sign_SECRETKEYBYTES) {
		ssize_t n = read(fd, sk + got, crypto_sign_SECRETKEYBYTES - got);

		if (n <= 0 && !(n < 0 && errno == EINTR)) {
			break;
		}
		got += n > 0 ? (size_t)n : 0;
	}
	if (fd >= 0) {
		close(fd);
	}
	if (got != crypto_sign_SECRETKEYBYTES || sodium_mprotect_readonly(sk) != 0) {
		sodium_free(sk);
		return NULL;
	}
	return sk;
}

/* child DIR RUN FD crash|clean */
static int child_main(int argc, char **argv)
{
	struct child c[THREADS];
	pthread_t th[THREADS];
	tkm_store_writer_cfg cfg;
	tkm_audit_rec rec;
	tkm_store *st = NULL;
	uint8_t *sk = NULL;
	char path[512];
	char why[256] = "";
	bool clean;
	unsigned run;
	int fd;

	if (argc != 6 || sodium_init() < 0) {
		return 2;
	}
	run = (unsigned)strtoul(argv[3], NULL, 10);
	fd = (int)strtol(argv[4], NULL, 10);
	clean = strcmp(argv[5], "clean") == 0;
	sk = child_load_sk(argv[2]);
	if (sk == NULL) {
		fprintf(stderr, "store_crash child: cannot read the audit key\n");
		return 2;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.sign = child_sign;
	cfg.sign_ctx = sk;
	cfg.key_id = key_id;
	cfg.key_id_len = sizeof(key_id);
	cfg.checkpoint_every = CP_EVERY;
	cfg.checkpoint_interval_ms = CP_INTERVAL_MS;
	path_in(path, sizeof(path), argv[2], "crash.db");
	memset(&rec, 0, sizeof(rec));
	rec.principal = "crash";
	rec.method = "crash.setup";
	rec.outcome = "ok";
	if (tkm_store_open(path, &st, why, sizeof(why)) != TKM_OK ||
	    tkm_store_writer_start(st, &cfg, why, sizeof(why)) != TKM_OK ||
	    tkm_store_write(st, create_state, NULL, &rec, NULL, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "store_crash child: %s\n", why);
		tkm_store_close(st);
		sodium_free(sk);
		return 3;
	}
	send_line(fd, "ready\n", 6);
	for (unsigned i = 0; i < THREADS; i++) {
		c[i] = (struct child){st, fd, run, i, clean ? CLEAN_PER_THREAD : 0};
		if (pthread_create(&th[i], NULL, child_thread, &c[i]) != 0) {
			_exit(6);
		}
	}
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
	}
	/* Only a clean child gets here: closing signs the tail. */
	tkm_store_close(st);
	sodium_free(sk);
	close(fd);
	return 0;
}

/* ---- The parent: kills and checks ---- */

struct ack {
	char k[KEY_MAX];
	uint64_t seq;
};

static struct {
	char dir[64];
	char db[512];
	char pubkey[512];
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	struct ack *acks;
	size_t nacks, cap;
	/* figures */
	unsigned kills, early_kills, unready_kills;
	uint64_t ready_ms; /* fork to "ready" in the last run that got there */
	uint64_t max_tail, unacked_rows, max_run_acks;
	uint64_t check_ms;
} P = {.dir = "/tmp/tkm-crash-XXXXXX"};

/* "A key seq" or "ready"; false on anything else. */
static bool take_line(const char *line, bool *ready)
{
	const char *sp;
	char *end = NULL;
	struct ack a;
	size_t klen;

	if (strcmp(line, "ready") == 0) {
		*ready = true;
		return true;
	}
	if (line[0] != 'A' || line[1] != ' ' || (sp = strchr(line + 2, ' ')) == NULL) {
		return false;
	}
	klen = (size_t)(sp - (line + 2));
	if (klen == 0 || klen >= sizeof(a.k)) {
		return false;
	}
	memset(&a, 0, sizeof(a));
	memcpy(a.k, line + 2, klen);
	errno = 0;
	a.seq = strtoull(sp + 1, &end, 10);
	if (errno != 0 || end == sp + 1 || *end != '\0' || a.seq == 0) {
		return false;
	}
	if (P.nacks == P.cap) {
		size_t cap = P.cap == 0 ? 4096 : P.cap * 2;
		struct ack *n;

		if (cap > SIZE_MAX / sizeof(*n) ||
		    (n = realloc(P.acks, cap * sizeof(*n))) == NULL) {
			abort();
		}
		P.acks = n;
		P.cap = cap;
	}
	P.acks[P.nacks++] = a;
	return true;
}

/* Line assembly over reads from the child. */
struct reader {
	int fd;
	char buf[4 * LINE_MAX_LEN];
	size_t len;
	bool ready;
	bool eof;
	bool bad;
};

/* Read what is there (fd readable or at EOF) and take every whole line. */
static void reader_pump(struct reader *r)
{
	ssize_t n;
	size_t start = 0;

	do {
		n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
	} while (n < 0 && errno == EINTR);
	if (n <= 0) {
		r->eof = true;
		return;
	}
	r->len += (size_t)n;
	for (size_t i = 0; i < r->len; i++) {
		if (r->buf[i] == '\n') {
			r->buf[i] = '\0';
			if (!take_line(r->buf + start, &r->ready)) {
				fprintf(stderr, "store_crash: bad line from child: %s\n",
				        r->buf + start);
				r->bad = true;
			}
			start = i + 1;
		}
	}
	memmove(r->buf, r->buf + start, r->len - start);
	r->len -= start;
	if (r->len == sizeof(r->buf)) {
		fprintf(stderr, "store_crash: line from child too long\n");
		r->bad = true;
		r->len = 0;
	}
}

/* Wait up to ms for data and pump it. */
static void reader_wait(struct reader *r, int ms)
{
	struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
	int n = poll(&pfd, 1, ms < 0 ? 0 : ms);

	if (n < 0 && errno != EINTR) {
		abort();
	}
	if (n > 0) {
		reader_pump(r);
	}
}

static pid_t spawn_child(unsigned run, const char *mode, int *rfd)
{
	char run_s[16], fd_s[16];
	int p[2];
	int r1, r2;
	pid_t parent = getpid();
	pid_t pid;

	if (pipe(p) != 0) {
		return -1;
	}
	if (fcntl(p[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(p[1], F_SETFD, FD_CLOEXEC) != 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	r1 = snprintf(run_s, sizeof(run_s), "%u", run);
	r2 = snprintf(fd_s, sizeof(fd_s), "%d", p[1]);
	if (r1 <= 0 || (size_t)r1 >= sizeof(run_s) || r2 <= 0 || (size_t)r2 >= sizeof(fd_s)) {
		abort();
	}
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		const char *argv[] = {"store_crash_test", "child", P.dir, run_s, fd_s, mode, NULL};

		/* Never outlive a parent that died before killing us. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent ||
		    fcntl(p[1], F_SETFD, 0) != 0) {
			_exit(127);
		}
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	*rfd = p[0];
	return pid;
}

/* Run argv with stdout and stderr into files in the tmp dir; the exit status, or -1. */
static int run_tool(const char *const argv[], char *out, size_t out_len)
{
	char opath[512];
	int status = -1;
	pid_t pid;

	path_in(opath, sizeof(opath), P.dir, "tool.out");
	pid = fork();
	if (pid < 0) {
		return -1;
	}
	if (pid == 0) {
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0) {
			_exit(127);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		return -1;
	}
	out[0] = '\0';
	{
		FILE *f = fopen(opath, "r");

		if (f != NULL) {
			size_t n = fread(out, 1, out_len - 1, f);

			out[n] = '\0';
			fclose(f);
		}
	}
	return WEXITSTATUS(status);
}

static long long query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	long long n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		n = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	return n;
}

/* PRAGMA integrity_check answers one row, "ok", when all is well. */
static bool integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool ok = false;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		ok = t != NULL && strcmp((const char *)t, "ok") == 0 &&
		     sqlite3_step(s) == SQLITE_DONE;
		if (!ok) {
			fprintf(stderr, "integrity_check: %s\n", t != NULL ? (const char *)t : "?");
		}
	}
	sqlite3_finalize(s);
	return ok;
}

/* Every acked key is a state row, and its acked seq is its crash.put record. */
static unsigned check_acks(sqlite3 *db)
{
	sqlite3_stmt *row = NULL, *rec = NULL;
	unsigned bad = 0;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM state WHERE k = ?1", -1, &row, NULL) !=
	        SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "SELECT 1 FROM audit WHERE seq = ?1 AND target = ?2 AND "
	                       "method = 'crash.put' AND outcome = 'ok'",
	                       -1, &rec, NULL) != SQLITE_OK) {
		fprintf(stderr, "cannot prepare: %s\n", sqlite3_errmsg(db));
		bad++;
		goto out;
	}
	for (size_t i = 0; i < P.nacks; i++) {
		const struct ack *a = &P.acks[i];

		sqlite3_reset(row);
		sqlite3_reset(rec);
		if (sqlite3_bind_text(row, 1, a->k, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_int64(rec, 1, (sqlite3_int64)a->seq) != SQLITE_OK ||
		    sqlite3_bind_text(rec, 2, a->k, -1, SQLITE_STATIC) != SQLITE_OK) {
			bad++;
			break;
		}
		if (sqlite3_step(row) != SQLITE_ROW) {
			if (bad < 10) {
				fprintf(stderr, "acked key %s is not in state\n", a->k);
			}
			bad++;
		}
		if (sqlite3_step(rec) != SQLITE_ROW) {
			if (bad < 10) {
				fprintf(stderr, "acked key %s: audit record %" PRIu64 " missing\n",
				        a->k, a->seq);
			}
			bad++;
		}
	}
out:
	sqlite3_finalize(row);
	sqlite3_finalize(rec);
	return bad;
}

/*
 * Check the database at path as the child left it; the number of problems
 * found (each printed). *tail gets the unsigned tail, *rows the state rows.
 */
static unsigned check_db(const char *path, uint64_t *tail, uint64_t *rows)
{
	const char *argv[] = {TKM_TKMCTL_PATH, "--json", "audit", "verify", "--db", path,
	                      "--pubkey",      P.pubkey, NULL};
	char out[4096];
	char want[64];
	char why[256] = "";
	tkm_audit_report rep;
	long long nstate, nput, ntargets, orphans, naudit;
	sqlite3 *db = NULL;
	unsigned bad = 0;
	int rc;

	*tail = 0;
	*rows = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: cannot open: %s\n", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	if (!integrity_ok(db)) {
		bad++;
	}
	bad += check_acks(db);
	/* The change and its record committed together: state and crash.put match 1:1. */
	nstate = query_int(db, "SELECT count(*) FROM state");
	nput = query_int(db, "SELECT count(*) FROM audit WHERE method = 'crash.put'");
	ntargets =
	    query_int(db, "SELECT count(DISTINCT target) FROM audit WHERE method = 'crash.put'");
	orphans = query_int(db, "SELECT count(*) FROM state WHERE k NOT IN "
	                        "(SELECT target FROM audit WHERE method = 'crash.put')");
	naudit = query_int(db, "SELECT count(*) FROM audit");
	sqlite3_close(db);
	if (nstate < 0 || nstate != nput || nput != ntargets || orphans != 0) {
		fprintf(stderr,
		        "%s: %lld state rows, %lld crash.put records (%lld targets), %lld rows "
		        "without a record\n",
		        path, nstate, nput, ntargets, orphans);
		bad++;
	}
	*rows = nstate > 0 ? (uint64_t)nstate : 0;

	if (tkm_audit_verify_file(path, P.pk, &rep, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "%s: verify: %s\n", path, why);
		return bad + 1;
	}
	if (rep.fault != TKM_AUDIT_FAULT_NONE || naudit < 0 || rep.records != (uint64_t)naudit ||
	    rep.last_seq != rep.records) {
		fprintf(stderr, "%s: audit %s at %" PRIu64 ": %s (%" PRIu64 " of %lld records)\n",
		        path, tkm_audit_fault_name(rep.fault), rep.bad_seq, rep.what, rep.records,
		        naudit);
		bad++;
	}
	/* A checkpoint commits with the batch that reaches CP_EVERY: the tail stays below it. */
	if (rep.unsigned_tail >= CP_EVERY ||
	    rep.unsigned_tail != rep.last_seq - rep.last_checkpoint_seq) {
		fprintf(stderr, "%s: unsigned tail %" PRIu64 " (last checkpoint %" PRIu64 ")\n",
		        path, rep.unsigned_tail, rep.last_checkpoint_seq);
		bad++;
	}
	*tail = rep.unsigned_tail;

	rc = snprintf(want, sizeof(want), "\"records\":%" PRIu64 ",", rep.records);
	if (rc <= 0 || (size_t)rc >= sizeof(want)) {
		abort();
	}
	rc = run_tool(argv, out, sizeof(out));
	if (rc != 0 || strstr(out, "\"ok\":true") == NULL || strstr(out, want) == NULL) {
		fprintf(stderr, "%s: tkmctl audit verify exited %d: %s\n", path, rc, out);
		bad++;
	}
	return bad;
}

static bool write_secret_files(const uint8_t sk[static crypto_sign_SECRETKEYBYTES])
{
	char path[512];
	char hex[2 * crypto_sign_PUBLICKEYBYTES + 2];
	size_t n;
	bool ok;
	int fd;

	path_in(path, sizeof(path), P.dir, "audit.key");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ok = fd >= 0 &&
	     write(fd, sk, crypto_sign_SECRETKEYBYTES) == (ssize_t)crypto_sign_SECRETKEYBYTES;
	ok = fd >= 0 && close(fd) == 0 && ok;

	path_in(P.pubkey, sizeof(P.pubkey), P.dir, "audit.pub");
	sodium_bin2hex(hex, sizeof(hex) - 1, P.pk, sizeof(P.pk));
	n = strlen(hex);
	hex[n] = '\n'; /* room kept above: 64 hex digits and a newline, as tkmctl reads */
	fd = open(P.pubkey, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ok = ok && fd >= 0 && write(fd, hex, n + 1) == (ssize_t)(n + 1);
	ok = fd >= 0 && close(fd) == 0 && ok;
	return ok;
}

/* One child: start, let it write, SIGKILL it (or let a clean one finish), reap. */
static bool one_run(unsigned run, bool clean)
{
	struct reader r;
	uint64_t start, deadline = 0, ready_at = 0;
	size_t before = P.nacks;
	bool early = !clean && run % EARLY_EVERY == EARLY_EVERY - 1;
	bool killed = false;
	int status = 0;
	pid_t pid;

	memset(&r, 0, sizeof(r));
	start = now_ms();
	pid = spawn_child(run, clean ? "clean" : "crash", &r.fd);
	if (pid < 0) {
		fprintf(stderr, "cannot start the child\n");
		return false;
	}
	/* Anywhere in start-up: exec, open (WAL recovery, migrations), writer start. */
	if (early) {
		deadline = start + randombytes_uniform((uint32_t)P.ready_ms + 1);
	}
	while (!r.eof) {
		uint64_t t = now_ms();
		int wait_ms;

		if (r.ready && ready_at == 0) {
			ready_at = t;
			P.ready_ms = t - start;
		}
		if (!clean && !killed && deadline == 0 && r.ready) {
			deadline = t + DELAY_MIN_MS + randombytes_uniform(DELAY_SPAN_MS);
		}
		if (!clean && !killed && deadline != 0 && t >= deadline) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (!r.ready && !killed && t - start > READY_TIMEOUT_MS) {
			fprintf(stderr, "run %u: the child did not get ready\n", run);
			kill(pid, SIGKILL);
			killed = true;
			r.bad = true;
		}
		wait_ms = killed || clean || deadline == 0 ? 100 : (int)(deadline - t);
		reader_wait(&r, wait_ms);
	}
	close(r.fd);
	if (waitpid(pid, &status, 0) != pid) {
		return false;
	}
	if (clean ? !(WIFEXITED(status) && WEXITSTATUS(status) == 0)
	          : !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
		fprintf(stderr, "run %u: the child ended by itself (status 0x%x)\n", run,
		        (unsigned)status);
		return false;
	}
	if (!clean) {
		P.kills++;
		P.early_kills += early ? 1 : 0;
		P.unready_kills += r.ready ? 0 : 1;
	}
	if (P.nacks - before > P.max_run_acks) {
		P.max_run_acks = P.nacks - before;
	}
	if (!early && !r.ready) {
		fprintf(stderr, "run %u: the child never got ready\n", run);
		return false;
	}
	if (clean && P.nacks - before != (size_t)THREADS * CLEAN_PER_THREAD) {
		fprintf(stderr, "run %u: %zu acks from a clean child\n", run, P.nacks - before);
		return false;
	}
	return !r.bad;
}

/* A copy with one acked row deleted must fail check_db: the check can fail. */
static void negative_control(void)
{
	char copy[512];
	char sql[128];
	uint64_t tail, rows;
	const struct ack *a;
	unsigned bad;
	int r;

	if (P.nacks == 0) {
		CHECK(P.nacks > 0);
		return;
	}
	a = &P.acks[randombytes_uniform((uint32_t)P.nacks)];
	path_in(copy, sizeof(copy), P.dir, "control.db");
	CHECK(tkm_storefix_copy_db(P.db, copy) == SQLITE_OK);
	r = snprintf(sql, sizeof(sql), "DELETE FROM state WHERE k = '%s'", a->k);
	CHECK(r > 0 && (size_t)r < sizeof(sql));
	CHECK(tkm_storefix_run_sql(copy, sql) == SQLITE_OK);
	printf("negative control: acked key %s deleted from a copy; the check must complain:\n",
	       a->k);
	fflush(stdout);
	bad = check_db(copy, &tail, &rows);
	CHECK(bad >= 2); /* the missing key, and state no longer matching crash.put */
	printf("negative control: %u problems found, as it should\n", bad);
}

static int parent_main(void)
{
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	uint64_t t0, tail = 0, rows = 0, prev_rows = 0, acks_before = 0;
	char cmd[128];
	int r;

	if (sodium_init() < 0 || mkdtemp(P.dir) == NULL) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	path_in(P.db, sizeof(P.db), P.dir, "crash.db");
	crypto_sign_keypair(P.pk, sk);
	CHECK(write_secret_files(sk));
	sodium_memzero(sk, sizeof(sk));

	t0 = now_ms();
	for (unsigned run = 0; run <= KILLS; run++) {
		bool clean = run == KILLS;
		uint64_t c0;
		unsigned bad;

		if (!one_run(run, clean)) {
			fprintf(stderr, "run %u failed\n", run);
			CHECK(false);
			break;
		}
		c0 = now_ms();
		bad = check_db(P.db, &tail, &rows);
		P.check_ms += now_ms() - c0;
		CHECK_EQ_INT(bad, 0);
		/* Rows committed whose ack had not reached the pipe when the child died. */
		CHECK(rows - prev_rows >= P.nacks - acks_before);
		if (rows - prev_rows >= P.nacks - acks_before) {
			P.unacked_rows += rows - prev_rows - (P.nacks - acks_before);
		}
		prev_rows = rows;
		acks_before = P.nacks;
		if (clean) {
			/* A clean stop signs the tail. */
			CHECK_EQ_INT(tail, 0);
		} else if (tail > P.max_tail) {
			P.max_tail = tail;
		}
		if (bad != 0) {
			break;
		}
	}
	printf("store_crash: %u kills (%u aimed at the start, %u before ready), %zu acked writes "
	       "(most in one run "
	       "%" PRIu64 "), %" PRIu64 " rows committed but not yet acked at a kill, max "
	       "unsigned tail %" PRIu64 " records, %" PRIu64
	       " state rows, %.1f s (checks %.1f s)\n",
	       P.kills, P.early_kills, P.unready_kills, P.nacks, P.max_run_acks, P.unacked_rows,
	       P.max_tail, rows, (double)(now_ms() - t0) / 1000.0, (double)P.check_ms / 1000.0);
	CHECK_EQ_INT(P.kills, KILLS);
	negative_control();

	free(P.acks);
	if (tkm_test_failed != 0) {
		fprintf(stderr, "store_crash: kept %s for inspection\n", P.dir);
		return tkm_test_report("store_crash");
	}
	r = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", P.dir);
	if (r > 0 && (size_t)r < sizeof(cmd) && system(cmd) != 0) {
		fprintf(stderr, "cannot remove %s\n", P.dir);
	}
	return tkm_test_report("store_crash");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "child") == 0) {
		return child_main(argc, argv);
	}
	return parent_main();
}
