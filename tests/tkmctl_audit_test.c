/*
 * tkmctl_audit_test.c - tkmctl's audit and backup commands, run as the real
 * tkmctl binary.
 *
 * Offline: `tkmctl audit verify --db FILE --pubkey FILE` on a database built
 * with the store's own writer (checkpoints every 10 records, signed with a
 * libsodium Ed25519 key) and copied with the SQLite backup API while records
 * after the last checkpoint are still unsigned: intact, tampered, with the
 * wrong key, with bad key files and bad arguments, and as JSON.
 *
 * Against a fake tkmd: an nng REP socket in this process that answers the
 * audit.* and store.backup methods with canned replies built from a
 * synthetic log, so that what a real tkmd never sends can be sent: invalid
 * replies (a missing field, a wrong type, a short hash, a cursor that does
 * not move), pages too large for the server, a huge log for `tail`, details
 * of every CBOR type, and control characters in server text. It also
 * records the params tkmctl sent (cursor, since_ms, paths). The end-to-end
 * test against tkmd-test is tests/service_audit_test.c.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sodium.h>
#include <sqlite3.h>

#include "store_fixture.h"
#include "tkm_audit.h"
#include "tkm_cbor.h"
#include "tkm_store.h"
#include "tkm_test.h"
#include "tkm_wire.h"

#ifndef TKM_TKMCTL_PATH
#error "TKM_TKMCTL_PATH must name the tkmctl binary"
#endif
#ifndef TKM_PYTHON3
#error "TKM_PYTHON3 must name the python3 binary"
#endif

#define RECORDS 35
#define EVERY   10

static char tmpdir[] = "/tmp/tkm-ctlaudit-XXXXXX";
static uint8_t pk[crypto_sign_PUBLICKEYBYTES];
static uint8_t sk[crypto_sign_SECRETKEYBYTES];
static const uint8_t key_id[4] = {0xa1, 0xd1, 0x70, 0x02};

static tkm_err test_sign(void *ctx, const uint8_t *msg, size_t msg_len,
                         uint8_t sig[static TKM_AUDIT_SIG_LEN], char *why, size_t why_len)
{
	(void)ctx;
	(void)why;
	(void)why_len;
	return crypto_sign_detached(sig, NULL, msg, msg_len, sk) == 0 ? TKM_OK : TKM_E_CRYPTO;
}

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	int r = snprintf(buf, len, "%s/%s", tmpdir, name);

	if (r < 0 || (size_t)r >= len) {
		abort();
	}
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc = -1;

	if (f == NULL) {
		return -1;
	}
	if (fputs(text, f) >= 0) {
		rc = 0;
	}
	if (fclose(f) != 0) {
		rc = -1;
	}
	return rc;
}

static bool starts_with(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The whole file, NUL-terminated (empty on error); the caller frees. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);

	if (buf == NULL) {
		abort();
	}
	buf[0] = '\0';
	if (f == NULL) {
		return buf;
	}
	for (;;) {
		size_t r = fread(buf + n, 1, cap - n - 1, f);

		n += r;
		if (n < cap - 1) {
			break;
		}
		cap *= 2;
		if ((buf = realloc(buf, cap)) == NULL) {
			abort();
		}
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Start argv in dir (NULL: here) with stdout and stderr into opath and epath; the pid or -1. */
static pid_t start(const char *dir, const char *const argv[], const char *opath, const char *epath)
{
	pid_t pid = fork();

	if (pid == 0) {
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 ||
		    (dir != NULL && chdir(dir) != 0)) {
			_exit(127);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* The exit status of pid, or -1. */
static int finish(pid_t pid)
{
	int status = -1;

	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		return -1;
	}
	return WEXITSTATUS(status);
}

/* Run argv in dir (NULL: here) with stdout and stderr into files in tmpdir; the exit status. */
static int run_in(const char *dir, const char *const argv[], char **out, char **err)
{
	char opath[256], epath[256];
	int rc;

	path_in_tmp(opath, sizeof(opath), "stdout");
	path_in_tmp(epath, sizeof(epath), "stderr");
	rc = finish(start(dir, argv, opath, epath));
	if (out != NULL) {
		*out = read_file(opath);
	}
	if (err != NULL) {
		*err = read_file(epath);
	}
	return rc;
}

/* Run argv with stdout and stderr into files in tmpdir; the exit status, or -1. */
static int run(const char *const argv[], char **out, char **err)
{
	return run_in(NULL, argv, out, err);
}

/* tkmctl [--json] audit verify --db DB --pubkey PUBKEY; NULL leaves an option out. */
static int verify(bool json, const char *db, const char *pubkey, char **out, char **err)
{
	const char *argv[10];
	int n = 0;

	argv[n++] = TKM_TKMCTL_PATH;
	if (json) {
		argv[n++] = "--json";
	}
	argv[n++] = "audit";
	argv[n++] = "verify";
	if (db != NULL) {
		argv[n++] = "--db";
		argv[n++] = db;
	}
	if (pubkey != NULL) {
		argv[n++] = "--pubkey";
		argv[n++] = pubkey;
	}
	argv[n] = NULL;
	return run(argv, out, err);
}

/* python3 -m json.tool on text: 0 exactly when it is valid JSON. */
static int json_valid(const char *text)
{
	char path[256];
	const char *argv[] = {TKM_PYTHON3, "-m", "json.tool", path, NULL};
	char *py = NULL;
	int rc;

	path_in_tmp(path, sizeof(path), "out.json");
	if (write_file(path, text) != 0) {
		return -1;
	}
	rc = run(argv, &py, NULL);
	free(py);
	return rc;
}

/* Records 1..RECORDS, checkpoints every EVERY; base gets a copy before the tail is signed. */
static bool make_db(const char *live, const char *base)
{
	tkm_store_writer_cfg cfg;
	tkm_store *st = NULL;
	char why[256] = "";
	bool ok = false;

	memset(&cfg, 0, sizeof(cfg));
	cfg.sign = test_sign;
	cfg.key_id = key_id;
	cfg.key_id_len = sizeof(key_id);
	cfg.checkpoint_every = EVERY;
	if (tkm_store_open(live, &st, why, sizeof(why)) != TKM_OK ||
	    tkm_store_writer_start(st, &cfg, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "open %s: %s\n", live, why);
		goto out;
	}
	for (int i = 1; i <= RECORDS; i++) {
		tkm_audit_rec rec;
		char target[16];

		if (snprintf(target, sizeof(target), "k%d", i) <= 0) {
			goto out;
		}
		memset(&rec, 0, sizeof(rec));
		rec.principal = "tester";
		rec.role = "admin";
		rec.method = "test.put";
		rec.target = target;
		rec.outcome = "ok";
		if (tkm_store_write(st, NULL, NULL, &rec, NULL, why, sizeof(why)) != TKM_OK) {
			fprintf(stderr, "write %d: %s\n", i, why);
			goto out;
		}
	}
	ok = tkm_storefix_copy_db(live, base) == SQLITE_OK;
out:
	tkm_store_close(st);
	return ok;
}

static void test_ok(const char *base, const char *pubkey)
{
	char *out = NULL, *err = NULL;

	CHECK_EQ_INT(verify(false, base, pubkey, &out, &err), 0);
	CHECK_STR(out, "audit chain ok: 35 records, 3 checkpoints, last checkpoint at seq 30; 5 "
	               "records after it are not yet covered by a signature\n");
	free(out);
	free(err);

	CHECK_EQ_INT(verify(true, base, pubkey, &out, &err), 0);
	CHECK(out != NULL && strstr(out, "\"ok\":true") != NULL);
	CHECK(out != NULL && strstr(out, "\"records\":35") != NULL);
	CHECK(out != NULL && strstr(out, "\"checkpoints\":3") != NULL);
	CHECK(out != NULL && strstr(out, "\"last_checkpoint_seq\":30") != NULL);
	CHECK(out != NULL && strstr(out, "\"unsigned_tail\":5") != NULL);
	CHECK(out != NULL && json_valid(out) == 0);
	free(out);
	free(err);
}

static void test_tampered(const char *base, const char *pubkey)
{
	char path[256];
	char *out = NULL, *err = NULL;

	path_in_tmp(path, sizeof(path), "tampered.db");
	CHECK(tkm_storefix_copy_db(base, path) == SQLITE_OK);
	CHECK(tkm_storefix_run_sql(path, "UPDATE audit SET method = 'test.get' WHERE seq = 17") ==
	      SQLITE_OK);

	CHECK_EQ_INT(verify(false, path, pubkey, &out, &err), 1);
	printf("tampered: %s", out != NULL ? out : "");
	CHECK(out != NULL && starts_with(out, "audit chain BROKEN at seq 17: "));
	free(out);
	free(err);

	CHECK_EQ_INT(verify(true, path, pubkey, &out, &err), 1);
	CHECK(out != NULL && strstr(out, "\"ok\":false") != NULL);
	CHECK(out != NULL && strstr(out, "\"kind\":\"changed\"") != NULL);
	CHECK(out != NULL && strstr(out, "\"seq\":17") != NULL);
	CHECK(out != NULL && strstr(out, "\"message\":\"record 17") != NULL);
	CHECK(out != NULL && json_valid(out) == 0);
	free(out);
	free(err);
}

static void test_wrong_key(const char *base)
{
	uint8_t other[crypto_sign_PUBLICKEYBYTES], other_sk[crypto_sign_SECRETKEYBYTES];
	char hex[2 * sizeof(other) + 2];
	char path[256];
	char *out = NULL, *err = NULL;

	crypto_sign_keypair(other, other_sk);
	sodium_memzero(other_sk, sizeof(other_sk));
	sodium_bin2hex(hex, sizeof(hex), other, sizeof(other));
	path_in_tmp(path, sizeof(path), "other.pub");
	CHECK(write_file(path, hex) == 0);
	CHECK_EQ_INT(verify(false, base, path, &out, &err), 1);
	CHECK(out != NULL && starts_with(out, "audit chain BROKEN at seq 10: "));
	free(out);
	free(err);
}

/* Key files that must be refused with exit 2, before the database is read. */
static void test_bad_keys(const char *base, const char *hex)
{
	char path[256];
	char cases[6][160];
	char *out = NULL, *err = NULL;
	char text[80];

	CHECK(snprintf(cases[0], sizeof(cases[0]), "%s", "") == 0);            /* empty */
	CHECK(snprintf(cases[1], sizeof(cases[1]), "%.63s\n", hex) > 0);       /* one digit short */
	CHECK(snprintf(cases[2], sizeof(cases[2]), "%s0\n", hex) > 0);         /* one digit long */
	CHECK(snprintf(cases[3], sizeof(cases[3]), "%s\n%s\n", hex, hex) > 0); /* two keys */
	CHECK(snprintf(cases[4], sizeof(cases[4]), "0x%.62s\n", hex) > 0);     /* a prefix */
	CHECK(snprintf(cases[5], sizeof(cases[5]), "%.31s %s\n", hex, hex + 31) > 0); /* a space */

	path_in_tmp(path, sizeof(path), "bad.pub");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK(write_file(path, cases[i]) == 0);
		CHECK_EQ_INT(verify(false, base, path, &out, &err), 2);
		CHECK(err != NULL && strstr(err, "64 hex characters") != NULL);
		free(out);
		free(err);
		out = err = NULL;
	}
	/* Not hex, right length. */
	memset(text, 'g', 64);
	text[64] = '\0';
	CHECK(write_file(path, text) == 0);
	CHECK_EQ_INT(verify(false, base, path, &out, &err), 2);
	free(out);
	free(err);

	path_in_tmp(path, sizeof(path), "absent.pub");
	CHECK_EQ_INT(verify(false, base, path, &out, &err), 2);
	free(out);
	free(err);
}

static void test_usage(const char *base, const char *pubkey)
{
	const char *audit_help[] = {TKM_TKMCTL_PATH, "audit", "--help", NULL};
	const char *verify_help[] = {TKM_TKMCTL_PATH, "audit", "verify", "--help", NULL};
	const char *extra[] = {TKM_TKMCTL_PATH, "audit", "verify",  "--db", base,
	                       "--pubkey",      pubkey,  "--bogus", NULL};
	const char *nosub[] = {TKM_TKMCTL_PATH, "audit", NULL};
	char *out = NULL, *err = NULL;

	CHECK_EQ_INT(verify(false, base, NULL, &out, &err), 2);
	free(out);
	free(err);
	CHECK_EQ_INT(verify(false, NULL, pubkey, &out, &err), 2);
	CHECK(err != NULL && strstr(err, "tkmctl: usage: audit verify needs both --db FILE and "
	                                 "--pubkey FILE") != NULL);
	free(out);
	free(err);
	/* Neither: ask the service, which is not there. */
	{
		char url[300];
		const char *argv[] = {TKM_TKMCTL_PATH, "--url", url, "audit", "verify", NULL};

		CHECK(snprintf(url, sizeof(url), "ipc://%s/absent.sock", tmpdir) > 0);
		CHECK_EQ_INT(run(argv, &out, &err), 3);
		free(out);
		free(err);
	}
	CHECK_EQ_INT(run(extra, &out, &err), 2);
	free(out);
	free(err);
	CHECK_EQ_INT(run(nosub, &out, &err), 2);
	free(out);
	free(err);

	CHECK_EQ_INT(run(audit_help, &out, &err), 0);
	CHECK(out != NULL && strstr(out, "usage: tkmctl [OPTIONS] audit SUBCOMMAND") != NULL);
	free(out);
	free(err);
	CHECK_EQ_INT(run(verify_help, &out, &err), 0);
	CHECK(out != NULL && strstr(out, "usage: tkmctl [OPTIONS] audit verify [--db FILE --pubkey "
	                                 "FILE]") != NULL);
	free(out);
	free(err);

	/* A database that is not there is a failure, not a usage error. */
	{
		char path[256];

		path_in_tmp(path, sizeof(path), "absent.db");
		CHECK_EQ_INT(verify(false, path, pubkey, &out, &err), 1);
		free(out);
		free(err);
	}
}

/* ---- A fake tkmd: canned replies from a synthetic log ---- */

#define FAKE_T0        1700000000000ull /* ts_ms of record 0: 2023-11-14T22:13:20Z */
#define FAKE_REPLY_MAX ((size_t)8 << 20)

typedef enum fake_mode {
	FAKE_OK,
	FAKE_BAD_NEXT, /* audit.list: "next" is not the page's last seq */
	FAKE_BAD_HASH, /* audit.list: 31-byte hashes */
	FAKE_NO_FIELD, /* every result misses its last field */
	FAKE_NOT_MAP,  /* every result is an array */
	FAKE_BROKEN,   /* audit.verify: the chain is broken at seq 17 */
	FAKE_DISAGREE, /* audit.verify: "ok" true with a fault */
} fake_mode;

/* What the fake saw: the params tkmctl sent. */
typedef struct fake_seen {
	unsigned list_calls;
	bool list_seen;
	uint64_t first_after, first_since; /* of the first audit.list call */
	char path[600];                    /* of the last archive or backup */
	bool has_before;
	uint64_t before_ms;
} fake_seen;

static struct {
	pthread_mutex_t mu;
	nng_socket sock;
	pthread_t thr;
	char url[300];
	/* Set by the test: the log holds records anchor+1..head. */
	fake_mode mode;
	uint64_t anchor, head;
	uint64_t max_limit; /* audit.list with a larger limit: resource_exhausted */
	fake_seen seen;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* What the fake saw since fake_set(), under its lock. */
static fake_seen seen(void)
{
	fake_seen s;

	pthread_mutex_lock(&fake.mu);
	s = fake.seen;
	pthread_mutex_unlock(&fake.mu);
	return s;
}

static void fake_set(fake_mode mode, uint64_t anchor, uint64_t head, uint64_t max_limit)
{
	pthread_mutex_lock(&fake.mu);
	fake.mode = mode;
	fake.anchor = anchor;
	fake.head = head;
	fake.max_limit = max_limit;
	memset(&fake.seen, 0, sizeof(fake.seen));
	pthread_mutex_unlock(&fake.mu);
}

static void fake_set_head(uint64_t head)
{
	pthread_mutex_lock(&fake.mu);
	fake.head = head;
	pthread_mutex_unlock(&fake.mu);
}

/* Record 2's details: every CBOR type the decoder accepts, nested. */
static void fake_put_details(tkm_cbor_w *w)
{
	static const uint8_t nint_max[] = {0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t b[] = {0x00, 0xff};

	tkm_cbor_put_map(w, 5);
	tkm_cbor_put_cstr(w, "a");
	tkm_cbor_put_int(w, -1);
	tkm_cbor_put_cstr(w, "b");
	tkm_cbor_put_bytes(w, b, sizeof(b));
	tkm_cbor_put_cstr(w, "c");
	tkm_cbor_put_array(w, 4);
	tkm_cbor_put_uint(w, 1);
	tkm_cbor_put_bool(w, true);
	tkm_cbor_put_null(w);
	tkm_cbor_put_cstr(w, "x\n\"q");
	tkm_cbor_put_cstr(w, "d");
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "e");
	tkm_cbor_put_raw(w, nint_max, sizeof(nint_max)); /* -2^64 */
	tkm_cbor_put_cstr(w, "f");
	tkm_cbor_put_int(w, INT64_MIN);
}

#define FAKE_DETAILS_JSON                                                                          \
	"{\"a\":-1,\"b\":\"00ff\",\"c\":[1,true,null,\"x\\n\\\"q\"],\"d\":{\"e\":"                 \
	"-18446744073709551616},\"f\":-9223372036854775808}"

/*
 * Record seq of the synthetic log: principal "alice" (3: with an escape
 * sequence), role "admin" for odd seqs, target "kSEQ" (5: none), outcome
 * "ok" (4: error not_found), prev_hash and hash bytes seq-1 and seq.
 */
static void fake_put_record(tkm_cbor_w *w, uint64_t seq, bool bad_hash)
{
	uint8_t prev[32], hash[32];
	char target[32];

	memset(prev, (int)((seq - 1) & 0xff), sizeof(prev));
	memset(hash, (int)(seq & 0xff), sizeof(hash));
	if (snprintf(target, sizeof(target), "k%llu", (unsigned long long)seq) <= 0) {
		abort();
	}
	tkm_cbor_put_map(w, 11);
	tkm_cbor_put_cstr(w, "seq");
	tkm_cbor_put_uint(w, seq);
	tkm_cbor_put_cstr(w, "ts_ms");
	tkm_cbor_put_uint(w, FAKE_T0 + seq * 1000);
	tkm_cbor_put_cstr(w, "principal");
	tkm_cbor_put_cstr(w, seq == 3 ? "\x1b[31mevil" : "alice");
	tkm_cbor_put_cstr(w, "role");
	if (seq % 2 == 1) {
		tkm_cbor_put_cstr(w, "admin");
	} else {
		tkm_cbor_put_null(w);
	}
	tkm_cbor_put_cstr(w, "method");
	tkm_cbor_put_cstr(w, "test.put");
	tkm_cbor_put_cstr(w, "target");
	if (seq == 5) {
		tkm_cbor_put_null(w);
	} else {
		tkm_cbor_put_cstr(w, target);
	}
	tkm_cbor_put_cstr(w, "outcome");
	tkm_cbor_put_cstr(w, seq == 4 ? "error" : "ok");
	tkm_cbor_put_cstr(w, "error_code");
	if (seq == 4) {
		tkm_cbor_put_cstr(w, "not_found");
	} else {
		tkm_cbor_put_null(w);
	}
	tkm_cbor_put_cstr(w, "details");
	if (seq == 2) {
		fake_put_details(w);
	} else {
		tkm_cbor_put_map(w, 0);
	}
	tkm_cbor_put_cstr(w, "prev_hash");
	tkm_cbor_put_bytes(w, prev, sizeof(prev));
	tkm_cbor_put_cstr(w, "hash");
	tkm_cbor_put_bytes(w, hash, bad_hash ? sizeof(hash) - 1 : sizeof(hash));
}

static tkm_err fake_list(const tkm_cbor_val *params, fake_mode mode, tkm_cbor_w *w)
{
	uint64_t after = 0, since = 0, limit = 100, anchor, head, max_limit, first, n, last;

	(void)tkm_cbor_get_uint(tkm_cbor_map_get(params, "after"), &after);
	(void)tkm_cbor_get_uint(tkm_cbor_map_get(params, "since_ms"), &since);
	(void)tkm_cbor_get_uint(tkm_cbor_map_get(params, "limit"), &limit);
	pthread_mutex_lock(&fake.mu);
	if (!fake.seen.list_seen) {
		fake.seen.list_seen = true;
		fake.seen.first_after = after;
		fake.seen.first_since = since;
	}
	fake.seen.list_calls++;
	anchor = fake.anchor;
	head = fake.head;
	max_limit = fake.max_limit;
	pthread_mutex_unlock(&fake.mu);
	if (limit > max_limit) {
		return TKM_E_RESOURCE_EXHAUSTED;
	}
	first = after + 1 > anchor + 1 ? after + 1 : anchor + 1;
	if (since > FAKE_T0 && first < (since - FAKE_T0 + 999) / 1000) {
		first = (since - FAKE_T0 + 999) / 1000;
	}
	n = first <= head ? head - first + 1 : 0;
	n = n < limit ? n : limit;
	last = first + n - 1;
	tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? 2 : 3);
	tkm_cbor_put_cstr(w, "records");
	tkm_cbor_put_array(w, (size_t)n);
	for (uint64_t s = first; s <= last && n > 0; s++) {
		fake_put_record(w, s, mode == FAKE_BAD_HASH);
	}
	tkm_cbor_put_cstr(w, "next");
	if (mode == FAKE_BAD_NEXT && n > 0) {
		tkm_cbor_put_uint(w, last + 1);
	} else if (n > 0 && last < head) {
		tkm_cbor_put_uint(w, last);
	} else {
		tkm_cbor_put_null(w);
	}
	if (mode != FAKE_NO_FIELD) {
		tkm_cbor_put_cstr(w, "anchor");
		tkm_cbor_put_uint(w, anchor);
	}
	return TKM_OK;
}

static void fake_verify(fake_mode mode, tkm_cbor_w *w)
{
	bool ok = mode != FAKE_BROKEN;

	tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? 9 : 10);
	tkm_cbor_put_cstr(w, "ok");
	tkm_cbor_put_bool(w, ok);
	tkm_cbor_put_cstr(w, "fault");
	tkm_cbor_put_cstr(w, mode == FAKE_BROKEN || mode == FAKE_DISAGREE ? "changed" : "none");
	tkm_cbor_put_cstr(w, "bad_seq");
	tkm_cbor_put_uint(w, ok ? 0 : 17);
	tkm_cbor_put_cstr(w, "what");
	tkm_cbor_put_cstr(w, ok ? "" : "record 17 was changed \x1b[2J");
	tkm_cbor_put_cstr(w, "first_seq");
	tkm_cbor_put_uint(w, 1);
	tkm_cbor_put_cstr(w, "records");
	tkm_cbor_put_uint(w, 35);
	tkm_cbor_put_cstr(w, "last_seq");
	tkm_cbor_put_uint(w, 35);
	tkm_cbor_put_cstr(w, "checkpoints");
	tkm_cbor_put_uint(w, 3);
	tkm_cbor_put_cstr(w, "last_checkpoint_seq");
	tkm_cbor_put_uint(w, 30);
	if (mode != FAKE_NO_FIELD) {
		tkm_cbor_put_cstr(w, "unsigned_tail");
		tkm_cbor_put_uint(w, 5);
	}
}

/* audit.archive (with_seq) and store.backup: remember the params, echo the path. */
static void fake_copy(const tkm_cbor_val *params, fake_mode mode, bool with_seq, tkm_cbor_w *w)
{
	const char *path = "";
	size_t len = 0;
	size_t fields = with_seq ? 6 : 5;

	(void)tkm_cbor_get_text(tkm_cbor_map_get(params, "path"), &path, &len);
	pthread_mutex_lock(&fake.mu);
	if (len < sizeof(fake.seen.path)) {
		memcpy(fake.seen.path, path, len);
		fake.seen.path[len] = '\0';
	}
	fake.seen.has_before =
	    tkm_cbor_get_uint(tkm_cbor_map_get(params, "before_ms"), &fake.seen.before_ms);
	pthread_mutex_unlock(&fake.mu);
	tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? fields - 1 : fields);
	tkm_cbor_put_cstr(w, "path");
	tkm_cbor_put_text(w, path, len);
	tkm_cbor_put_cstr(w, "bytes");
	tkm_cbor_put_uint(w, 4096);
	tkm_cbor_put_cstr(w, "first_seq");
	tkm_cbor_put_uint(w, 1);
	tkm_cbor_put_cstr(w, "last_seq");
	tkm_cbor_put_uint(w, 30);
	if (with_seq) {
		tkm_cbor_put_cstr(w, "checkpoint_seq");
		tkm_cbor_put_uint(w, 30);
		if (mode != FAKE_NO_FIELD) {
			tkm_cbor_put_cstr(w, "seq");
			tkm_cbor_put_uint(w, 31);
		}
	} else if (mode != FAKE_NO_FIELD) {
		tkm_cbor_put_cstr(w, "checkpoint_seq");
		tkm_cbor_put_uint(w, 30);
	}
}

/* The result of one request into w; an error code for an error reply. */
static tkm_err fake_result(const tkm_wire_request *req, tkm_cbor_w *w)
{
	static const uint8_t id[16] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	                               0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11};
	fake_mode mode;

	pthread_mutex_lock(&fake.mu);
	mode = fake.mode;
	pthread_mutex_unlock(&fake.mu);
	if (mode == FAKE_NOT_MAP) {
		tkm_cbor_put_array(w, 1);
		tkm_cbor_put_uint(w, 1);
		return TKM_OK;
	}
	if (strcmp(req->method, "audit.list") == 0) {
		return fake_list(req->params, mode, w);
	}
	if (strcmp(req->method, "audit.verify") == 0) {
		fake_verify(mode, w);
	} else if (strcmp(req->method, "audit.public_key") == 0) {
		tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? 1 : 2);
		tkm_cbor_put_cstr(w, "key_id");
		tkm_cbor_put_bytes(w, id, sizeof(id));
		if (mode != FAKE_NO_FIELD) {
			tkm_cbor_put_cstr(w, "public_key");
			tkm_cbor_put_bytes(w, pk, sizeof(pk));
		}
	} else if (strcmp(req->method, "audit.checkpoint") == 0) {
		tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? 0 : 1);
		if (mode != FAKE_NO_FIELD) {
			tkm_cbor_put_cstr(w, "seq");
			tkm_cbor_put_uint(w, 77);
		}
	} else if (strcmp(req->method, "audit.archive") == 0) {
		fake_copy(req->params, mode, true, w);
	} else if (strcmp(req->method, "store.backup") == 0) {
		fake_copy(req->params, mode, false, w);
	} else {
		return TKM_E_BAD_REQUEST;
	}
	return TKM_OK;
}

static void fake_answer(const uint8_t *buf, size_t len)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *res = NULL, *w = NULL;
	tkm_wire_request req;
	const uint8_t *p = NULL, *out = NULL;
	size_t n = 0, out_len = 0;
	char why[128];
	tkm_err err;

	if (tkm_wire_decode_request(buf, len, &lim, &doc, &req, why, sizeof(why)) != TKM_OK ||
	    tkm_cbor_w_new(FAKE_REPLY_MAX, &res) != TKM_OK ||
	    tkm_cbor_w_new(FAKE_REPLY_MAX, &w) != TKM_OK) {
		goto out;
	}
	err = fake_result(&req, res);
	if (err == TKM_OK && tkm_cbor_w_finish(res, &p, &n) == TKM_OK) {
		tkm_wire_encode_result(w, req.id, p, n);
	} else {
		tkm_wire_encode_error(w, req.id, err != TKM_OK ? err : TKM_E_INTERNAL,
		                      "the fake says no", NULL, 0);
	}
	if (tkm_cbor_w_finish(w, &out, &out_len) == TKM_OK) {
		(void)nng_send(fake.sock, (void *)out, out_len, 0);
	}
out:
	tkm_cbor_w_free(res);
	tkm_cbor_w_free(w);
	tkm_cbor_doc_free(doc);
}

static void *fake_serve(void *arg)
{
	(void)arg;
	for (;;) {
		void *buf = NULL;
		size_t len = 0;
		int rv = nng_recv(fake.sock, &buf, &len, NNG_FLAG_ALLOC);

		if (rv == NNG_ECLOSED) {
			break;
		}
		if (rv == 0) {
			fake_answer(buf, len);
			nng_free(buf, len);
		}
	}
	return NULL;
}

static bool fake_start(void)
{
	if (snprintf(fake.url, sizeof(fake.url), "ipc://%s/fake.sock", tmpdir) <= 0 ||
	    nng_rep0_open(&fake.sock) != 0 ||
	    nng_socket_set_size(fake.sock, NNG_OPT_RECVMAXSZ, 65536) != 0 ||
	    nng_listen(fake.sock, fake.url, NULL, 0) != 0) {
		return false;
	}
	return pthread_create(&fake.thr, NULL, fake_serve, NULL) == 0;
}

static void fake_stop(void)
{
	nng_close(fake.sock);
	pthread_join(fake.thr, NULL);
}

/* tkmctl --url FAKE ARGS... (NULL-terminated) in dir (NULL: here); the exit status. */
static int ctl(const char *dir, char **out, char **err, ...)
{
	const char *argv[24];
	va_list ap;
	int n = 0;

	argv[n++] = TKM_TKMCTL_PATH;
	argv[n++] = "--url";
	argv[n++] = fake.url;
	va_start(ap, err);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)) != NULL) {
		n++;
	}
	va_end(ap);
	argv[n] = NULL;
	return run_in(dir, argv, out, err);
}

/* python3: 0 when every line of text is a JSON value. */
static int json_lines_valid(const char *text)
{
	char path[256];
	const char *argv[] = {TKM_PYTHON3, "-c",
	                      "import json, sys\n"
	                      "for line in open(sys.argv[1]):\n"
	                      "    json.loads(line)\n",
	                      path, NULL};
	char *py = NULL;
	int rc;

	path_in_tmp(path, sizeof(path), "out.jsonl");
	if (write_file(path, text) != 0) {
		return -1;
	}
	rc = run(argv, &py, NULL);
	free(py);
	return rc;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0) {
	}
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		n += *s == '\n';
	}
	return n;
}

/* 64 hex digits of the byte b repeated. */
static void hex_of(uint8_t b, char out[65])
{
	uint8_t bytes[32];

	memset(bytes, b, sizeof(bytes));
	sodium_bin2hex(out, 65, bytes, sizeof(bytes));
}

static void free2(char **out, char **err)
{
	free(*out);
	free(*err);
	*out = *err = NULL;
}

static void test_fake_verify(void)
{
	char *out = NULL, *err = NULL;

	fake_set(FAKE_OK, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "verify", NULL), 0);
	CHECK_STR(out, "audit chain ok: 35 records, 3 checkpoints, last checkpoint at seq 30; 5 "
	               "records after it are not yet covered by a signature\n");
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "audit", "verify", NULL), 0);
	CHECK(out != NULL && starts_with(out, "{\"ok\":true,\"url\":\"ipc://"));
	CHECK(out != NULL &&
	      strstr(out, ",\"records\":35,\"last_seq\":35,\"checkpoints\":3,"
	                  "\"last_checkpoint_seq\":30,\"unsigned_tail\":5}\n") != NULL);
	CHECK(out != NULL && json_valid(out) == 0);
	free2(&out, &err);

	/* A broken chain: exit 1, the server's sentence with its escape sequence defused. */
	fake_set(FAKE_BROKEN, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "verify", NULL), 1);
	CHECK_STR(out, "audit chain BROKEN at seq 17: record 17 was changed ?[2J\n");
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "audit", "verify", NULL), 1);
	CHECK(out != NULL && strstr(out, "\"ok\":false") != NULL);
	CHECK(out != NULL && strstr(out, ",\"kind\":\"changed\",\"seq\":17,\"message\":\"record 17 "
	                                 "was changed \\u001b[2J\"}\n") != NULL);
	CHECK(out != NULL && json_valid(out) == 0);
	free2(&out, &err);

	/* Invalid replies: exit 1 and nothing on stdout. */
	fake_set(FAKE_DISAGREE, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "verify", NULL), 1);
	CHECK(err != NULL && strstr(err, "audit.verify: invalid reply: 'ok' and 'fault' disagree"));
	CHECK_STR(out, "");
	free2(&out, &err);
	fake_set(FAKE_NO_FIELD, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "verify", NULL), 1);
	CHECK(err != NULL && strstr(err, "tkmctl: protocol: audit.verify: invalid reply: "
	                                 "'unsigned_tail' is missing") != NULL);
	CHECK_STR(out, "");
	free2(&out, &err);
	fake_set(FAKE_NOT_MAP, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "verify", NULL), 1);
	CHECK(err != NULL && strstr(err, "the result is not a map") != NULL);
	free2(&out, &err);
}

static void test_fake_pubkey(const char *base)
{
	char hex[2 * sizeof(pk) + 1], want[200], path[256];
	char *out = NULL, *err = NULL, *text;
	struct stat sb;
	mode_t mask = umask(0);

	umask(mask);
	sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));
	fake_set(FAKE_OK, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "pubkey", NULL), 0);
	CHECK(snprintf(want, sizeof(want), "%s\n", hex) > 0);
	CHECK_STR(out, want);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "audit", "pubkey", NULL), 0);
	CHECK(snprintf(want, sizeof(want), "{\"public_key\":\"%s\",\"key_id\":\"%s\"}\n", hex,
	               "11111111111111111111111111111111") > 0);
	CHECK_STR(out, want);
	free2(&out, &err);

	/* --out writes the file that verify --pubkey reads, and never replaces one. */
	path_in_tmp(path, sizeof(path), "fake.pub");
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "pubkey", "--out", path, NULL), 0);
	CHECK(snprintf(want, sizeof(want), "audit public key written to %s (key id %s)\n", path,
	               "11111111111111111111111111111111") > 0);
	CHECK_STR(out, want);
	free2(&out, &err);
	text = read_file(path);
	CHECK(snprintf(want, sizeof(want), "%s\n", hex) > 0);
	CHECK_STR(text, want);
	free(text);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == (0644 & ~mask));
	CHECK_EQ_INT(verify(false, base, path, &out, &err), 0);
	free2(&out, &err);
	CHECK(write_file(path, "left alone\n") == 0);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "pubkey", "--out", path, NULL), 1);
	CHECK(err != NULL && strstr(err, "tkmctl: already_exists: ") != NULL);
	free2(&out, &err);
	text = read_file(path);
	CHECK_STR(text, "left alone\n");
	free(text);

	/* An invalid reply writes no file. */
	path_in_tmp(path, sizeof(path), "fake2.pub");
	fake_set(FAKE_NO_FIELD, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "pubkey", "--out", path, NULL), 1);
	CHECK(err != NULL && strstr(err, "'public_key' is missing") != NULL);
	CHECK(access(path, F_OK) != 0);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "pubkey", "extra", NULL), 2);
	free2(&out, &err);
}

static void test_fake_export(void)
{
	char want[1024], prev[65], hash[65], path[256];
	char *out = NULL, *err = NULL, *text;
	struct stat sb;

	fake_set(FAKE_OK, 0, 2500, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", NULL), 0);
	CHECK_EQ_INT(count_lines(out), 2500);
	CHECK_EQ_INT(seen().list_calls, 3);
	CHECK_EQ_INT(seen().first_after, 0);
	CHECK(starts_with(out,
	                  "{\"seq\":1,\"ts\":\"2023-11-14T22:13:21.000Z\",\"ts_ms\":"
	                  "1700000001000,\"principal\":\"alice\",\"role\":\"admin\",\"method\":"
	                  "\"test.put\",\"target\":\"k1\",\"outcome\":\"ok\",\"error_code\":"
	                  "null,\"details\":{},"));
	hex_of(1, prev);
	hex_of(2, hash);
	CHECK(snprintf(want, sizeof(want),
	               "\n{\"seq\":2,\"ts\":\"2023-11-14T22:13:22.000Z\",\"ts_ms\":1700000002000,"
	               "\"principal\":\"alice\",\"role\":null,\"method\":\"test.put\","
	               "\"target\":\"k2\",\"outcome\":\"ok\",\"error_code\":null,"
	               "\"details\":" FAKE_DETAILS_JSON ",\"prev_hash\":\"%s\",\"hash\":\"%s\"}\n",
	               prev, hash) > 0);
	CHECK(strstr(out, want) != NULL);
	CHECK(strstr(out, "\"principal\":\"\\u001b[31mevil\"") != NULL);
	CHECK(strstr(out, "\"outcome\":\"error\",\"error_code\":\"not_found\"") != NULL);
	CHECK(strstr(out, "\"target\":null") != NULL);
	CHECK(strstr(out, "{\"seq\":2500,") != NULL);
	CHECK(json_lines_valid(out) == 0);
	free2(&out, &err);

	/* A server whose pages must be smaller: the limit halves until they fit. */
	fake_set(FAKE_OK, 0, 2500, 300);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", NULL), 0);
	CHECK_EQ_INT(count_lines(out), 2500);
	CHECK_EQ_INT(seen().list_calls, 2 + 10); /* 1000 and 500 refused, then 10 pages of 250 */
	free2(&out, &err);
	fake_set(FAKE_OK, 0, 10, 0);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", NULL), 1);
	CHECK(err != NULL && strstr(err, "tkmctl: resource_exhausted: ") != NULL);
	free2(&out, &err);

	/* --since SEQ and --since TIME. */
	fake_set(FAKE_OK, 0, 20, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", "--since", "5", NULL), 0);
	CHECK_EQ_INT(seen().first_after, 4);
	CHECK_EQ_INT(seen().first_since, 0);
	CHECK_EQ_INT(count_lines(out), 16);
	CHECK(starts_with(out, "{\"seq\":5,"));
	free2(&out, &err);
	{
		static const struct {
			const char *arg;
			uint64_t ms;
		} times[] = {
		    {"2023-11-14T22:13:30Z", 1700000010000ull},
		    {"2023-11-14t22:13:30z", 1700000010000ull},
		    {"2023-11-14T23:43:30+01:30", 1700000010000ull},
		    {"2023-11-14T21:13:30-01:00", 1700000010000ull},
		    {"2023-11-14T22:13:30.5Z", 1700000010500ull},
		    {"2023-11-14T22:13:30.123456Z", 1700000010123ull},
		    {"2023-11-14", 1699920000000ull},
		    {"2024-02-29", 1709164800000ull},
		};

		for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
			fake_set(FAKE_OK, 0, 20, 1000);
			CHECK_EQ_INT(
			    ctl(NULL, &out, &err, "audit", "export", "--since", times[i].arg, NULL),
			    0);
			CHECK_EQ_INT(seen().first_since, times[i].ms);
			CHECK_EQ_INT(seen().first_after, 0);
			free2(&out, &err);
		}
	}
	fake_set(FAKE_OK, 0, 20, 1000);
	CHECK_EQ_INT(
	    ctl(NULL, &out, &err, "audit", "export", "--since", "2023-11-14T22:13:30Z", NULL), 0);
	CHECK(out != NULL && starts_with(out, "{\"seq\":10,"));
	CHECK_EQ_INT(count_lines(out), 11);
	free2(&out, &err);
	{
		static const char *const bad[] = {
		    "yesterday",
		    "2023-02-29",
		    "2023-11-14T25:00:00Z",
		    "2023-11-14T22:13:30",
		    "2023-11-14T22:13Z",
		    "1969-12-31",
		    "-5",
		    "2023-11-14T22:13:30.Z",
		    "99999999999999999999",
		    "",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			CHECK_EQ_INT(
			    ctl(NULL, &out, &err, "audit", "export", "--since", bad[i], NULL), 2);
			free2(&out, &err);
		}
	}

	/* --out: a new file of mode 0600 and a summary on stderr; never over a file. */
	path_in_tmp(path, sizeof(path), "export.jsonl");
	fake_set(FAKE_OK, 0, 2500, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", "--out", path, NULL), 0);
	CHECK_STR(out, "");
	CHECK(snprintf(want, sizeof(want), "exported 2500 records, seq 1..2500 to %s\n", path) > 0);
	CHECK_STR(err, want);
	free2(&out, &err);
	text = read_file(path);
	CHECK_EQ_INT(count_lines(text), 2500);
	free(text);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", "--out", path, NULL), 1);
	CHECK(err != NULL && strstr(err, "tkmctl: already_exists: ") != NULL);
	free2(&out, &err);
	path_in_tmp(path, sizeof(path), "export2.jsonl");
	fake_set(FAKE_OK, 100, 99, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "audit", "export", "--out", path, NULL), 0);
	CHECK(snprintf(want, sizeof(want),
	               "{\"file\":\"%s\",\"records\":0,\"first_seq\":0,\"last_seq\":0}\n",
	               path) > 0);
	CHECK_STR(out, want);
	CHECK(snprintf(want, sizeof(want), "exported 0 records to %s\n", path) > 0);
	CHECK_STR(err, want);
	free2(&out, &err);

	/* Invalid pages: exit 1, and the --out file is gone again. */
	path_in_tmp(path, sizeof(path), "export3.jsonl");
	fake_set(FAKE_BAD_HASH, 0, 20, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", "--out", path, NULL), 1);
	CHECK(err != NULL && strstr(err, "audit.list: invalid reply: 'hash' is missing or not a "
	                                 "byte string of 32 bytes") != NULL);
	CHECK(access(path, F_OK) != 0);
	free2(&out, &err);
	fake_set(FAKE_BAD_NEXT, 0, 20, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", NULL), 1);
	CHECK(err != NULL &&
	      strstr(err, "'next' is not the seq of the page's last record") != NULL);
	CHECK_STR(out, "");
	free2(&out, &err);
	fake_set(FAKE_NO_FIELD, 0, 20, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", NULL), 1);
	CHECK(err != NULL && strstr(err, "'anchor' is missing") != NULL);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "export", "--bogus", NULL), 2);
	free2(&out, &err);
}

static void test_fake_tail(void)
{
	char opath[256], epath[256];
	char *out = NULL, *err = NULL;

	fake_set(FAKE_OK, 0, 5, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "tail", NULL), 0);
	CHECK_STR(out, "2023-11-14T22:13:21.000Z  1  alice (admin)  test.put  k1  ok\n"
	               "2023-11-14T22:13:22.000Z  2  alice  test.put  k2  ok\n"
	               "2023-11-14T22:13:23.000Z  3  ?[31mevil (admin)  test.put  k3  ok\n"
	               "2023-11-14T22:13:24.000Z  4  alice  test.put  k4  error: not_found\n"
	               "2023-11-14T22:13:25.000Z  5  alice (admin)  test.put  -  ok\n");
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "audit", "tail", "-n", "2", NULL), 0);
	CHECK_EQ_INT(count_lines(out), 2);
	CHECK(out != NULL && starts_with(out, "{\"seq\":4,"));
	CHECK(out != NULL && json_lines_valid(out) == 0);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "tail", "-n", "0", NULL), 0);
	CHECK_STR(out, "");
	free2(&out, &err);
	fake_set(FAKE_OK, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "tail", NULL), 0);
	CHECK_STR(out, "");
	free2(&out, &err);

	/* A long log after an archive cut: the head is found in a few calls of one record. */
	fake_set(FAKE_OK, 1000, 123456789, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "tail", "-n=3", NULL), 0);
	CHECK(out != NULL && strstr(out, "  123456787  ") != NULL);
	CHECK(out != NULL && strstr(out, "  123456789  ") != NULL);
	CHECK_EQ_INT(count_lines(out), 3);
	CHECK(seen().list_calls < 80);
	printf("tail of 123456789 records: %u calls\n", seen().list_calls);
	free2(&out, &err);
	fake_set(FAKE_OK, 1000, 1001, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "tail", "-n", "5", NULL), 0);
	CHECK_EQ_INT(count_lines(out), 1);
	free2(&out, &err);

	/* --follow prints new records as they come, and SIGTERM ends it with 0. */
	fake_set(FAKE_OK, 0, 5, 1000);
	path_in_tmp(opath, sizeof(opath), "follow.out");
	path_in_tmp(epath, sizeof(epath), "follow.err");
	{
		const char *argv[] = {TKM_TKMCTL_PATH, "--url", fake.url, "audit",
		                      "tail",          "-n",    "2",      "--follow",
		                      "--interval",    "50",    NULL};
		pid_t pid = start(NULL, argv, opath, epath);

		CHECK(pid > 0);
		sleep_ms(300);
		fake_set_head(8);
		sleep_ms(400);
		CHECK(kill(pid, SIGTERM) == 0);
		CHECK_EQ_INT(finish(pid), 0);
	}
	out = read_file(opath);
	CHECK_EQ_INT(count_lines(out), 5);
	CHECK(strstr(out, "  4  alice") != NULL && strstr(out, "  8  alice") != NULL);
	CHECK(strstr(out, "  3  ") == NULL);
	free(out);
	out = NULL;

	fake_set(FAKE_BAD_HASH, 0, 5, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "tail", NULL), 1);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "tail", "-n", "x", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "tail", "--interval", "5", NULL), 2);
	free2(&out, &err);
}

static void test_fake_copies(void)
{
	fake_seen sn;
	char want[1024];
	char *out = NULL, *err = NULL;

	/* archive: a relative path is made absolute; --before is sent as before_ms. */
	fake_set(FAKE_OK, 0, 0, 1000);
	CHECK_EQ_INT(ctl(tmpdir, &out, &err, "audit", "archive", "--out", "arch.db", NULL), 0);
	CHECK(snprintf(want, sizeof(want), "%s/arch.db", tmpdir) > 0);
	sn = seen();
	CHECK_STR(sn.path, want);
	CHECK(!seen().has_before);
	CHECK(
	    snprintf(want, sizeof(want),
	             "archived records 1..30 to %s/arch.db (4096 bytes); the live chain now starts "
	             "after checkpoint 30; the cut is audit record 31\n",
	             tmpdir) > 0);
	CHECK_STR(out, want);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "audit", "archive", "--out", "/x/a.db",
	                 "--before", "2024-01-01", NULL),
	             0);
	CHECK(seen().has_before && seen().before_ms == 1704067200000ull);
	CHECK_STR(out, "{\"path\":\"/x/a.db\",\"bytes\":4096,\"first_seq\":1,\"last_seq\":30,"
	               "\"checkpoint_seq\":30,\"seq\":31}\n");
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "archive", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(
	    ctl(NULL, &out, &err, "audit", "archive", "--out", "/x", "--before", "soon", NULL), 2);
	free2(&out, &err);
	fake_set(FAKE_NO_FIELD, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "archive", "--out", "/x/a.db", NULL), 1);
	CHECK(err != NULL && strstr(err, "'seq' is missing") != NULL);
	free2(&out, &err);

	/* backup */
	fake_set(FAKE_OK, 0, 0, 1000);
	CHECK_EQ_INT(ctl(tmpdir, &out, &err, "backup", "b.db", NULL), 0);
	CHECK(snprintf(want, sizeof(want),
	               "backup written to %s/b.db: 4096 bytes, audit records 1..30, signed through "
	               "checkpoint 30\n",
	               tmpdir) > 0);
	CHECK_STR(out, want);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "backup", "/x/b.db", NULL), 0);
	sn = seen();
	CHECK_STR(sn.path, "/x/b.db");
	CHECK_STR(out, "{\"path\":\"/x/b.db\",\"bytes\":4096,\"first_seq\":1,\"last_seq\":30,"
	               "\"checkpoint_seq\":30}\n");
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "backup", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "backup", "a", "b", NULL), 2);
	free2(&out, &err);
	fake_set(FAKE_NO_FIELD, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "backup", "/x/b.db", NULL), 1);
	CHECK(err != NULL && strstr(err, "'checkpoint_seq' is missing") != NULL);
	free2(&out, &err);

	/* checkpoint */
	fake_set(FAKE_OK, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "checkpoint", NULL), 0);
	CHECK_STR(out, "checkpoint signed at seq 77\n");
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "audit", "checkpoint", NULL), 0);
	CHECK_STR(out, "{\"seq\":77}\n");
	free2(&out, &err);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "audit", "checkpoint", "now", NULL), 2);
	free2(&out, &err);
	fake_set(FAKE_NOT_MAP, 0, 0, 1000);
	CHECK_EQ_INT(ctl(NULL, &out, &err, "--json", "audit", "checkpoint", NULL), 1);
	CHECK(out != NULL && starts_with(out, "{\"error\":{\"code\":\"protocol\","));
	free2(&out, &err);

	/* An unknown method at the server is a server error. */
	{
		const char *argv[] = {TKM_TKMCTL_PATH, "--url", fake.url, "backup", "--help", NULL};

		CHECK_EQ_INT(run(argv, &out, &err), 0);
		CHECK(out != NULL && strstr(out, "usage: tkmctl [OPTIONS] backup FILE") != NULL);
		free2(&out, &err);
	}
}

int main(void)
{
	char live[256], base[256], pubkey[256];
	char hex[2 * sizeof(pk) + 1];
	char text[sizeof(hex) + 8];

	if (sodium_init() < 0 || mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	crypto_sign_keypair(pk, sk);
	sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));
	path_in_tmp(live, sizeof(live), "live.db");
	path_in_tmp(base, sizeof(base), "base.db");
	path_in_tmp(pubkey, sizeof(pubkey), "audit.pub");
	/* Whitespace around the key is accepted. */
	CHECK(snprintf(text, sizeof(text), " \t%s\n\n", hex) > 0);
	CHECK(write_file(pubkey, text) == 0);

	CHECK(make_db(live, base));
	test_ok(base, pubkey);
	test_tampered(base, pubkey);
	test_wrong_key(base);
	test_bad_keys(base, hex);
	test_usage(base, pubkey);

	if (!fake_start()) {
		fprintf(stderr, "cannot start the fake tkmd\n");
		CHECK(false);
	} else {
		test_fake_verify();
		test_fake_pubkey(base);
		test_fake_export();
		test_fake_tail();
		test_fake_copies();
		fake_stop();
	}

	sodium_memzero(sk, sizeof(sk));
	{
		char cmd[300];
		int r = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);

		if (r > 0 && (size_t)r < sizeof(cmd) && system(cmd) != 0) {
			fprintf(stderr, "cannot remove %s\n", tmpdir);
		}
	}
	return tkm_test_report("tkmctl_audit");
}
