/*
 * tkmctl_audit_test.c - `tkmctl audit verify --db FILE --pubkey FILE`, the
 * offline check of a database copy, run as the real tkmctl binary.
 *
 * Builds a database with the store's own writer (checkpoints every 10
 * records, signed with a libsodium Ed25519 key), copies it with the SQLite
 * backup API while records after the last checkpoint are still unsigned, and
 * checks tkmctl's exit status and output on the copy: intact, tampered, with
 * the wrong key, with bad key files and bad arguments, and as JSON.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* The whole file, NUL-terminated (empty on error); the caller frees. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	if (buf == NULL) {
		abort();
	}
	if (f == NULL) {
		return buf;
	}
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Run argv with stdout and stderr into files in tmpdir; the exit status, or -1. */
static int run(const char *const argv[], char **out, char **err)
{
	char opath[256], epath[256];
	int status = -1;
	pid_t pid;

	path_in_tmp(opath, sizeof(opath), "stdout");
	path_in_tmp(epath, sizeof(epath), "stderr");
	pid = fork();
	if (pid < 0) {
		return -1;
	}
	if (pid == 0) {
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
			_exit(127);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		return -1;
	}
	if (out != NULL) {
		*out = read_file(opath);
	}
	if (err != NULL) {
		*err = read_file(epath);
	}
	return WEXITSTATUS(status);
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
	CHECK(out != NULL && strncmp(out, "audit chain BROKEN at seq 17: ", 30) == 0);
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
	CHECK(out != NULL && strncmp(out, "audit chain BROKEN at seq 10: ", 30) == 0);
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
	free(out);
	free(err);
	CHECK_EQ_INT(verify(false, NULL, NULL, &out, &err), 2);
	CHECK(err != NULL &&
	      strstr(err, "tkmctl: usage: audit verify needs --db FILE --pubkey FILE "
	                  "(asking the service comes with the audit RPCs)") != NULL);
	free(out);
	free(err);
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
	CHECK(out != NULL && strstr(out, "usage: tkmctl [OPTIONS] audit verify --db FILE --pubkey "
	                                 "FILE") != NULL);
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
