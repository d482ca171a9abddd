/*
 * tools_device_test.c - the device tools tkm-terminal and tkm-station, run as
 * the real binaries against a fake tkmd.
 *
 * The fake is an nng REP socket in this process. It checks what the tools
 * send the way tkmd must: the enrollment signature with libsodium over
 * ["tkm enroll v1", code, manufacturer, serial, sign_pk, box_pk] (code in its
 * normal form), signed requests with tkm_devsig_verify against the keys the
 * tools made, and deterministic CBOR params. It answers with canned results,
 * error replies, or what a real tkmd never sends (control characters, a
 * wrong terminal id, cursors that do not move).
 *
 * What is checked: argument validation (exit 2), the state directory and its
 * files (modes 0700 and 0600, the key file formats, refusal to overwrite an
 * enrollment, clean-up after a refused or unreachable enrollment), that no
 * secret key reaches stdout or stderr, check-in params and output, the
 * station key, enroll-code and the paged terminal table. The end-to-end
 * test through a real tkmd is the lead's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#include "tkm_cbor.h"
#include "tkm_devsig.h"
#include "tkm_test.h"
#include "tkm_wire.h"

#ifndef TKM_TERMINAL_PATH
#error "TKM_TERMINAL_PATH must name the tkm-terminal binary"
#endif
#ifndef TKM_STATION_PATH
#error "TKM_STATION_PATH must name the tkm-station binary"
#endif

#define CODE_TYPED "abcd-efgh 2345-wxyz"
#define CODE_NORM  "ABCDEFGH2345WXYZ"
#define FAKE_MAX   ((size_t)1 << 20)

extern char **environ;

static char tmpdir[] = "/tmp/tkm-devtools-XXXXXX";

/* ---- Files and processes ---- */

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	int r = snprintf(buf, len, "%s/%s", tmpdir, name);

	if (r < 0 || (size_t)r >= len) {
		abort();
	}
}

/* The whole file, NUL-terminated (empty on error); the caller frees. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);

	if (buf == NULL) {
		abort();
	}
	buf[0] = '\0';
	if (f == NULL) {
		return buf;
	}
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static bool has(const char *s, const char *what)
{
	return s != NULL && strstr(s, what) != NULL;
}

static int mode_of(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

static bool exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

/* Run argv with stdout and stderr into files; the exit status, 128+N for signal N. */
static int run(const char *const argv[], char **out, char **err)
{
	char opath[300], epath[300];
	int status = -1, rc = -1;
	pid_t pid;

	path_in_tmp(opath, sizeof(opath), "stdout");
	path_in_tmp(epath, sizeof(epath), "stderr");
	pid = fork();
	if (pid == 0) {
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
			_exit(127);
		}
		execve(argv[0], (char *const *)argv, environ);
		_exit(127);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid) {
		rc = WIFEXITED(status)     ? WEXITSTATUS(status)
		     : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
		                           : -1;
	}
	*out = read_file(opath);
	*err = read_file(epath);
	return rc;
}

/* Run a tool with the arguments that follow (NULL-terminated). */
static int tool(const char *path, char **out, char **err, ...)
{
	const char *argv[40];
	va_list ap;
	int n = 0;

	argv[n++] = path;
	va_start(ap, err);
	while (n < 39 && (argv[n] = va_arg(ap, const char *)) != NULL) {
		n++;
	}
	va_end(ap);
	argv[n] = NULL;
	return run(argv, out, err);
}

#define TERMINAL(out, err, ...) tool(TKM_TERMINAL_PATH, out, err, __VA_ARGS__, (char *)NULL)
#define STATION(out, err, ...)  tool(TKM_STATION_PATH, out, err, __VA_ARGS__, (char *)NULL)

static void free2(char **out, char **err)
{
	free(*out);
	free(*err);
	*out = *err = NULL;
}

/* ---- The fake tkmd ---- */

typedef enum fake_mode {
	FAKE_OK,
	FAKE_NOT_FOUND,    /* terminal.enroll: unknown code */
	FAKE_USED,         /* terminal.enroll: failed_precondition */
	FAKE_UNAUTH,       /* every method: unauthenticated */
	FAKE_BAD_STATE,    /* terminal.enroll answers state "registered" */
	FAKE_EVIL,         /* control characters in server text */
	FAKE_OTHER_ID,     /* terminal.checkin answers another terminal's id */
	FAKE_NO_ACTIONS,   /* terminal.checkin: an empty list */
	FAKE_STUCK_CURSOR, /* terminal.list: "next" is not the page's last id */
} fake_mode;

/* What the fake saw. */
typedef struct fake_seen {
	unsigned calls;
	char method[80];
	bool params_canonical;
	bool enroll_sig_ok;
	char code[200];
	char serial[100];
	char manufacturer[100];
	uint8_t sign_pk[32];
	uint8_t box_pk[32];
	bool auth_ok; /* the request was signed with the expected key as principal */
	char principal[200];
	uint8_t params[4096];
	size_t params_len;
	uint64_t after;
	uint64_t limit;
	char site[100];
	unsigned list_calls;
} fake_seen;

static struct {
	pthread_mutex_t mu;
	nng_socket sock;
	pthread_t thr;
	char url[300];
	fake_mode mode;
	uint8_t terminal_pk[32]; /* the key of principal "terminal-42" */
	uint8_t station_pk[32];  /* the key of principal "station-01" */
	fake_seen seen;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fake_set(fake_mode mode)
{
	pthread_mutex_lock(&fake.mu);
	fake.mode = mode;
	memset(&fake.seen, 0, sizeof(fake.seen));
	pthread_mutex_unlock(&fake.mu);
}

static fake_seen seen(void)
{
	fake_seen s;

	pthread_mutex_lock(&fake.mu);
	s = fake.seen;
	pthread_mutex_unlock(&fake.mu);
	return s;
}

static void copy_text(const tkm_cbor_val *params, const char *key, char *buf, size_t len)
{
	const char *s;
	size_t n;

	buf[0] = '\0';
	if (tkm_cbor_get_text(tkm_cbor_map_get(params, key), &s, &n) && n < len) {
		memcpy(buf, s, n);
		buf[n] = '\0';
	}
}

/* tkm_devsig_lookup_fn over the two principals the fake knows (fake.mu held). */
static tkm_err fake_lookup(void *arg, const char *principal, uint8_t pk[static TKM_DEVSIG_PK_LEN],
                           char *why, size_t why_len)
{
	(void)arg;
	(void)why;
	(void)why_len;
	if (strcmp(principal, "terminal-42") == 0) {
		memcpy(pk, fake.terminal_pk, 32);
		return TKM_OK;
	}
	if (strcmp(principal, "station-01") == 0) {
		memcpy(pk, fake.station_pk, 32);
		return TKM_OK;
	}
	return TKM_E_NOT_FOUND;
}

/* Check terminal.enroll's params and signature (fake.mu held). */
static void fake_check_enroll(const tkm_cbor_val *params)
{
	const uint8_t *sig = NULL, *spk = NULL, *bpk = NULL, *m = NULL;
	size_t sig_n = 0, spk_n = 0, bpk_n = 0, m_n = 0;
	tkm_cbor_w *w = NULL;

	copy_text(params, "code", fake.seen.code, sizeof(fake.seen.code));
	copy_text(params, "serial", fake.seen.serial, sizeof(fake.seen.serial));
	copy_text(params, "manufacturer", fake.seen.manufacturer, sizeof(fake.seen.manufacturer));
	if (tkm_cbor_count(params) != 6 ||
	    !tkm_cbor_get_bytes(tkm_cbor_map_get(params, "sig"), &sig, &sig_n) || sig_n != 64 ||
	    !tkm_cbor_get_bytes(tkm_cbor_map_get(params, "sign_pk"), &spk, &spk_n) || spk_n != 32 ||
	    !tkm_cbor_get_bytes(tkm_cbor_map_get(params, "box_pk"), &bpk, &bpk_n) || bpk_n != 32 ||
	    tkm_cbor_w_new(4096, &w) != TKM_OK) {
		return;
	}
	memcpy(fake.seen.sign_pk, spk, 32);
	memcpy(fake.seen.box_pk, bpk, 32);
	/* The message as tkmd builds it, with the code in its normal form. */
	tkm_cbor_put_array(w, 6);
	tkm_cbor_put_cstr(w, "tkm enroll v1");
	tkm_cbor_put_cstr(w, CODE_NORM);
	tkm_cbor_put_cstr(w, fake.seen.manufacturer);
	tkm_cbor_put_cstr(w, fake.seen.serial);
	tkm_cbor_put_bytes(w, spk, 32);
	tkm_cbor_put_bytes(w, bpk, 32);
	if (tkm_cbor_w_finish(w, &m, &m_n) == TKM_OK) {
		fake.seen.enroll_sig_ok = crypto_sign_verify_detached(sig, m, m_n, spk) == 0;
	}
	tkm_cbor_w_free(w);
}

static void put_terminal(tkm_cbor_w *w, uint64_t id, const char *serial, bool seen_null)
{
	tkm_cbor_put_map(w, 6);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	tkm_cbor_put_cstr(w, "state");
	tkm_cbor_put_cstr(w, "active");
	tkm_cbor_put_cstr(w, "manufacturer");
	tkm_cbor_put_cstr(w, "Ingenico");
	tkm_cbor_put_cstr(w, "serial");
	tkm_cbor_put_cstr(w, serial);
	tkm_cbor_put_cstr(w, "model");
	tkm_cbor_put_null(w);
	tkm_cbor_put_cstr(w, "last_seen_ms");
	if (seen_null) {
		tkm_cbor_put_null(w);
	} else {
		tkm_cbor_put_uint(w, 1795428000000ull);
	}
}

/* The result of a request (fake.mu held); an error code to refuse it. */
static tkm_err fake_result(const tkm_wire_request *req, tkm_cbor_w *w)
{
	const tkm_cbor_val *p = req->params;
	fake_mode mode = fake.mode;

	if (mode == FAKE_UNAUTH) {
		return TKM_E_UNAUTHENTICATED;
	}
	if (strcmp(req->method, "terminal.enroll") == 0) {
		fake_check_enroll(p);
		if (mode == FAKE_NOT_FOUND) {
			return TKM_E_NOT_FOUND;
		}
		if (mode == FAKE_USED) {
			return TKM_E_FAILED_PRECONDITION;
		}
		tkm_cbor_put_map(w, 3);
		tkm_cbor_put_cstr(w, "terminal");
		tkm_cbor_put_uint(w, 42);
		tkm_cbor_put_cstr(w, "principal");
		tkm_cbor_put_cstr(w, mode == FAKE_EVIL ? "terminal-42\x1b]0;x" : "terminal-42");
		tkm_cbor_put_cstr(w, "state");
		tkm_cbor_put_cstr(w, mode == FAKE_BAD_STATE ? "registered" : "active");
		return TKM_OK;
	}
	if (!fake.seen.auth_ok) {
		return TKM_E_UNAUTHENTICATED;
	}
	if (strcmp(req->method, "terminal.checkin") == 0) {
		tkm_cbor_put_map(w, 3);
		tkm_cbor_put_cstr(w, "terminal");
		tkm_cbor_put_uint(w, mode == FAKE_OTHER_ID ? 43 : 42);
		tkm_cbor_put_cstr(w, "server_time_ms");
		tkm_cbor_put_uint(w, 1795428000000ull);
		tkm_cbor_put_cstr(w, "actions");
		if (mode == FAKE_NO_ACTIONS) {
			tkm_cbor_put_array(w, 0);
		} else {
			tkm_cbor_put_array(w, 2);
			tkm_cbor_put_cstr(w, "rotate-working-keys");
			tkm_cbor_put_cstr(w, mode == FAKE_EVIL ? "wipe\x1b[2J" : "wipe");
		}
		return TKM_OK;
	}
	if (strcmp(req->method, "terminal.enroll_code") == 0) {
		copy_text(p, "serial", fake.seen.serial, sizeof(fake.seen.serial));
		copy_text(p, "manufacturer", fake.seen.manufacturer,
		          sizeof(fake.seen.manufacturer));
		tkm_cbor_put_map(w, 3);
		tkm_cbor_put_cstr(w, "terminal");
		tkm_cbor_put_uint(w, 7);
		tkm_cbor_put_cstr(w, "code");
		tkm_cbor_put_cstr(w, mode == FAKE_EVIL ? "ABCD\x1b[2J" : "ABCD-EFGH-2345-WXYZ");
		tkm_cbor_put_cstr(w, "expires_ms");
		tkm_cbor_put_uint(w, 1795428000000ull);
		return TKM_OK;
	}
	if (strcmp(req->method, "terminal.list") == 0) {
		fake.seen.list_calls++;
		copy_text(p, "site", fake.seen.site, sizeof(fake.seen.site));
		fake.seen.after = 0;
		(void)tkm_cbor_get_uint(tkm_cbor_map_get(p, "after"), &fake.seen.after);
		(void)tkm_cbor_get_uint(tkm_cbor_map_get(p, "limit"), &fake.seen.limit);
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "terminals");
		if (fake.seen.after == 0) {
			tkm_cbor_put_array(w, 2);
			put_terminal(w, 1, "SN-0001", false);
			put_terminal(w, 2, mode == FAKE_EVIL ? "SN\x1b[31m" : "SN-0002", true);
			tkm_cbor_put_cstr(w, "next");
			tkm_cbor_put_uint(w, mode == FAKE_STUCK_CURSOR ? 1 : 2);
		} else {
			tkm_cbor_put_array(w, 1);
			put_terminal(w, 3, "SN-0003", false);
			tkm_cbor_put_cstr(w, "next");
			tkm_cbor_put_null(w);
		}
		return TKM_OK;
	}
	return TKM_E_NOT_FOUND;
}

static void fake_answer(const uint8_t *buf, size_t len)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_w *res = NULL, *w = NULL;
	tkm_wire_request req;
	tkm_devsig_claim claim;
	const uint8_t *p = NULL, *out = NULL, *raw = NULL;
	size_t n = 0, out_len = 0, raw_len = 0;
	char why[200];
	tkm_err err;

	if (tkm_wire_decode_request(buf, len, &lim, &doc, &req, why, sizeof(why)) != TKM_OK ||
	    tkm_cbor_w_new(FAKE_MAX, &res) != TKM_OK || tkm_cbor_w_new(FAKE_MAX, &w) != TKM_OK) {
		goto out;
	}
	pthread_mutex_lock(&fake.mu);
	fake.seen.calls++;
	(void)snprintf(fake.seen.method, sizeof(fake.seen.method), "%s", req.method);
	fake.seen.params_canonical =
	    tkm_devsig_check_canonical(req.params, why, sizeof(why)) == TKM_OK;
	tkm_cbor_raw(req.params, &raw, &raw_len);
	if (raw_len <= sizeof(fake.seen.params)) {
		memcpy(fake.seen.params, raw, raw_len);
		fake.seen.params_len = raw_len;
	}
	memset(&claim, 0, sizeof(claim));
	fake.seen.auth_ok =
	    req.auth != NULL &&
	    tkm_devsig_verify(req.auth, req.method, raw, raw_len, (uint64_t)time(NULL),
	                      TKM_DEVSIG_DEFAULT_WINDOW_S, fake_lookup, NULL, &claim, why,
	                      sizeof(why)) == TKM_OK;
	(void)snprintf(fake.seen.principal, sizeof(fake.seen.principal), "%s", claim.principal);
	err = fake_result(&req, res);
	pthread_mutex_unlock(&fake.mu);
	if (err == TKM_OK && tkm_cbor_w_finish(res, &p, &n) == TKM_OK) {
		tkm_wire_encode_result(w, req.id, p, n);
	} else {
		tkm_wire_encode_error(w, req.id, err != TKM_OK ? err : TKM_E_INTERNAL,
		                      "the fake says no\x1b[31m", NULL, 0);
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
	    nng_rep0_open(&fake.sock) != 0 || nng_listen(fake.sock, fake.url, NULL, 0) != 0) {
		return false;
	}
	return pthread_create(&fake.thr, NULL, fake_serve, NULL) == 0;
}

static void fake_stop(void)
{
	nng_close(fake.sock);
	pthread_join(fake.thr, NULL);
}

/* The public key of a key file, through libtkm's own reader. */
static bool key_public(const char *path, uint8_t pk[static 32])
{
	tkm_devsig_key *key = NULL;
	char why[200];

	if (tkm_devsig_key_read(path, &key, why, sizeof(why)) != TKM_OK) {
		fprintf(stderr, "%s\n", why);
		return false;
	}
	tkm_devsig_key_public(key, pk);
	tkm_devsig_key_free(key);
	return true;
}

/* ---- Tests ---- */

static void test_usage(void)
{
	char *out = NULL, *err = NULL;
	char dir[300];

	path_in_tmp(dir, sizeof(dir), "usage-state");
	CHECK_EQ_INT(tool(TKM_TERMINAL_PATH, &out, &err, (char *)NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "--help"), 0);
	CHECK(has(out, "enroll") && has(out, "checkin"));
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "--version"), 0);
	CHECK(has(out, "tkm-terminal "));
	free2(&out, &err);
	CHECK_EQ_INT(STATION(&out, &err, "--version"), 0);
	CHECK(has(out, "tkm-station "));
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "frobnicate"), 2);
	CHECK(has(err, "unknown command"));
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "enroll", "--help"), 0);
	CHECK(has(out, "--state-dir"));
	free2(&out, &err);
	/* Missing --code, a bad code, an unknown option whose value is not shown. */
	CHECK_EQ_INT(TERMINAL(&out, &err, "enroll", "--url", fake.url, "--serial", "S1",
	                      "--manufacturer", "M", "--state-dir", dir),
	             2);
	CHECK(has(err, "--code is required"));
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "enroll", "--url", fake.url, "--code", "AB!CD",
	                      "--serial", "S1", "--manufacturer", "M", "--state-dir", dir),
	             2);
	CHECK(has(err, "letters and digits"));
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "enroll", "--cod=SECRETCODE"), 2);
	CHECK(has(err, "--cod") && !has(err, "SECRETCODE"));
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "enroll", "--url", fake.url, "--url", fake.url), 2);
	CHECK(has(err, "given twice"));
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "enroll", "--url", fake.url, "--code", CODE_TYPED,
	                      "--serial", "S\x01", "--manufacturer", "M", "--state-dir", dir),
	             2);
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "enroll", "--url", fake.url, "--code", CODE_TYPED,
	                      "--serial", "S1", "--manufacturer", "M", "--state-dir", dir,
	                      "--timeout", "0"),
	             2);
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", dir, "--health", "novalue"), 2);
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", dir, "--health", "a=1",
	                      "--health", "a=2"),
	             2);
	CHECK(has(err, "twice"));
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", dir, "stray"), 2);
	free2(&out, &err);
	CHECK_EQ_INT(STATION(&out, &err, "terminals", "--url", fake.url, "--name", "station-01",
	                     "--key", "k"),
	             2);
	CHECK(has(err, "--site is required"));
	free2(&out, &err);
	CHECK_EQ_INT(STATION(&out, &err, "terminals", "--url", fake.url, "--name", "station-01",
	                     "--key", "k", "--site", "x", "--state", "lost"),
	             2);
	free2(&out, &err);
	CHECK_EQ_INT(STATION(&out, &err, "enroll-code", "--url", fake.url, "--name", "station-01",
	                     "--key", "k", "--serial", "S1"),
	             2);
	free2(&out, &err);
	CHECK_EQ_INT(STATION(&out, &err, "keygen"), 2);
	free2(&out, &err);
	/* None of these made the state directory. */
	CHECK(!exists(dir));
	CHECK_EQ_INT(seen().calls, 0);
}

/* tkm-terminal enroll into dir against the fake; the exit status. */
static int enroll(const char *dir, const char *url, char **out, char **err)
{
	return TERMINAL(out, err, "enroll", "--url", url, "--code", CODE_TYPED, "--serial",
	                "SN-0042", "--manufacturer", "Ingenico", "--state-dir", dir);
}

static bool dir_empty(const char *dir)
{
	char path[400];
	static const char *const names[] = {"sign.key", "box.key", "terminal.conf",
	                                    "terminal.conf.tmp"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (exists(path)) {
			return false;
		}
	}
	return true;
}

static void test_enroll_refused(void)
{
	char *out = NULL, *err = NULL;
	char dir[300], made[300], url[400];
	fake_seen s;

	/* An unknown code: a clear sentence, and the directory it made is gone. */
	path_in_tmp(dir, sizeof(dir), "refused-state");
	fake_set(FAKE_NOT_FOUND);
	CHECK_EQ_INT(enroll(dir, fake.url, &out, &err), 1);
	CHECK(has(err, "enrollment code is not known"));
	CHECK(has(err, "the fake says no?[31m") && !has(err, "\x1b"));
	CHECK(!exists(dir));
	s = seen();
	CHECK(s.enroll_sig_ok);
	CHECK_STR(s.code, CODE_NORM);
	CHECK(s.params_canonical);
	free2(&out, &err);

	/* A used code into a directory that was there: it stays, empty. */
	path_in_tmp(made, sizeof(made), "kept-state");
	CHECK(mkdir(made, 0700) == 0);
	fake_set(FAKE_USED);
	CHECK_EQ_INT(enroll(made, fake.url, &out, &err), 1);
	CHECK(has(err, "failed_precondition") && has(err, "enrollment refused"));
	CHECK(exists(made) && dir_empty(made));
	free2(&out, &err);

	/* An invalid reply is a refusal too. */
	fake_set(FAKE_BAD_STATE);
	CHECK_EQ_INT(enroll(made, fake.url, &out, &err), 1);
	CHECK(has(err, "protocol") && has(err, "'state'"));
	CHECK(exists(made) && dir_empty(made));
	free2(&out, &err);
	fake_set(FAKE_EVIL);
	CHECK_EQ_INT(enroll(made, fake.url, &out, &err), 1);
	CHECK(!has(err, "\x1b") && !has(out, "\x1b"));
	CHECK(exists(made) && dir_empty(made));
	free2(&out, &err);

	/* No server: exit 3, nothing made. */
	(void)snprintf(url, sizeof(url), "ipc://%s/nobody.sock", tmpdir);
	CHECK_EQ_INT(enroll(dir, url, &out, &err), 3);
	CHECK(!exists(dir));
	free2(&out, &err);

	/* A directory open to others is refused before anything is made. */
	CHECK(chmod(made, 0755) == 0);
	fake_set(FAKE_OK);
	CHECK_EQ_INT(enroll(made, fake.url, &out, &err), 2);
	CHECK(has(err, "0700") && dir_empty(made));
	CHECK_EQ_INT(seen().calls, 0);
	free2(&out, &err);
}

/* The X25519 public key of box.key, which must be exactly one line in its format. */
static bool box_public(const char *path, uint8_t pk[static 32])
{
	static const char tag[] = "tkm-x25519-sk ";
	char *text = read_file(path);
	uint8_t sk[32];
	size_t n = strlen(text), sk_len = 0;
	const char *end = NULL;
	bool ok;

	ok = n == sizeof(tag) - 1 + 44 + 1 && strncmp(text, tag, sizeof(tag) - 1) == 0 &&
	     text[n - 1] == '\n' &&
	     sodium_base642bin(sk, sizeof(sk), text + sizeof(tag) - 1, 44, NULL, &sk_len, &end,
	                       sodium_base64_VARIANT_ORIGINAL) == 0 &&
	     sk_len == 32 && crypto_scalarmult_base(pk, sk) == 0;
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(text, n);
	free(text);
	return ok;
}

static char state_dir[300];

static void test_enroll_ok(void)
{
	char *out = NULL, *err = NULL, *conf = NULL, *sign1 = NULL, *sign2 = NULL, *box = NULL;
	char sign[400], boxp[400], confp[400];
	uint8_t pk[32];
	fake_seen s;

	path_in_tmp(state_dir, sizeof(state_dir), "state");
	(void)snprintf(sign, sizeof(sign), "%s/sign.key", state_dir);
	(void)snprintf(boxp, sizeof(boxp), "%s/box.key", state_dir);
	(void)snprintf(confp, sizeof(confp), "%s/terminal.conf", state_dir);
	fake_set(FAKE_OK);
	CHECK_EQ_INT(enroll(state_dir, fake.url, &out, &err), 0);
	CHECK(has(out, "enrolled as terminal 42 (principal terminal-42)"));
	s = seen();
	CHECK_STR(s.method, "terminal.enroll");
	CHECK(s.enroll_sig_ok);
	CHECK(s.params_canonical);
	CHECK_STR(s.code, CODE_NORM);
	CHECK_STR(s.serial, "SN-0042");
	CHECK_STR(s.manufacturer, "Ingenico");
	CHECK_EQ_INT(mode_of(state_dir), 0700);
	CHECK_EQ_INT(mode_of(sign), 0600);
	CHECK_EQ_INT(mode_of(boxp), 0600);
	CHECK_EQ_INT(mode_of(confp), 0600);
	CHECK(key_public(sign, pk) && sodium_memcmp(pk, s.sign_pk, 32) == 0);
	CHECK(box_public(boxp, pk) && sodium_memcmp(pk, s.box_pk, 32) == 0);
	memcpy(fake.terminal_pk, s.sign_pk, 32);
	conf = read_file(confp);
	CHECK(has(conf, "principal=terminal-42\n") && has(conf, "terminal=42\n"));
	CHECK(has(conf, "url=ipc://"));
	/* No secret key in the output. */
	sign1 = read_file(sign);
	box = read_file(boxp);
	CHECK(strlen(sign1) > 20 && !has(out, sign1 + 15) && !has(err, sign1 + 15));
	CHECK(strlen(box) > 20 && !has(out, box + 14) && !has(err, box + 14));
	free2(&out, &err);

	/* A second enrollment into the same directory is refused and changes nothing. */
	fake_set(FAKE_OK);
	CHECK_EQ_INT(enroll(state_dir, fake.url, &out, &err), 1);
	CHECK(has(err, "already holds an enrollment"));
	CHECK_EQ_INT(seen().calls, 0);
	sign2 = read_file(sign);
	CHECK_STR(sign1, sign2);
	CHECK(exists(confp));
	free2(&out, &err);

	/* --json */
	{
		char dir2[300];

		path_in_tmp(dir2, sizeof(dir2), "state-json");
		CHECK_EQ_INT(TERMINAL(&out, &err, "enroll", "--url", fake.url, "--code", CODE_TYPED,
		                      "--serial", "SN-0042", "--manufacturer", "Ingenico",
		                      "--state-dir", dir2, "--json"),
		             0);
		CHECK(has(out,
		          "{\"terminal\":42,\"principal\":\"terminal-42\",\"state\":\"active\""));
		free2(&out, &err);
	}
	sodium_memzero(sign1, strlen(sign1));
	sodium_memzero(sign2, strlen(sign2));
	free(sign1);
	free(sign2);
	free(box);
	free(conf);
}

static void test_checkin(void)
{
	char *out = NULL, *err = NULL;
	tkm_cbor_doc *doc = NULL;
	const tkm_cbor_val *health;
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	fake_seen s;
	uint64_t u = 0;
	bool b = false;
	char why[200];

	fake_set(FAKE_OK);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", state_dir, "--firmware",
	                      "4.2.1", "--app", "pos-7", "--health", "battery=87", "--health",
	                      "charging=true", "--health", "ip=10.0.0.5", "--health",
	                      "a.long-key_name=0"),
	             0);
	CHECK_STR(out, "rotate-working-keys\nwipe\n");
	s = seen();
	CHECK_STR(s.method, "terminal.checkin");
	CHECK(s.auth_ok);
	CHECK_STR(s.principal, "terminal-42");
	CHECK(s.params_canonical);
	CHECK(tkm_cbor_decode(s.params, s.params_len, &lim, &doc, why, sizeof(why)) == TKM_OK);
	if (doc != NULL) {
		const tkm_cbor_val *root = tkm_cbor_root(doc);

		CHECK(tkm_cbor_text_eq(tkm_cbor_map_get(root, "firmware_version"), "4.2.1"));
		CHECK(tkm_cbor_text_eq(tkm_cbor_map_get(root, "app_version"), "pos-7"));
		health = tkm_cbor_map_get(root, "health");
		CHECK_EQ_INT(tkm_cbor_count(health), 4);
		CHECK(tkm_cbor_get_uint(tkm_cbor_map_get(health, "battery"), &u) && u == 87);
		CHECK(tkm_cbor_get_bool(tkm_cbor_map_get(health, "charging"), &b) && b);
		CHECK(tkm_cbor_text_eq(tkm_cbor_map_get(health, "ip"), "10.0.0.5"));
		CHECK(tkm_cbor_get_uint(tkm_cbor_map_get(health, "a.long-key_name"), &u) && u == 0);
	}
	tkm_cbor_doc_free(doc);
	free2(&out, &err);

	/* No params at all, no actions; and --json. */
	fake_set(FAKE_NO_ACTIONS);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", state_dir), 0);
	CHECK_STR(out, "no pending actions\n");
	CHECK(seen().auth_ok && seen().params_len == 1);
	free2(&out, &err);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", state_dir, "--json"), 0);
	CHECK_STR(out, "{\"terminal\":42,\"server_time_ms\":1795428000000,\"actions\":[]}\n");
	free2(&out, &err);

	/* Hostile or wrong replies. */
	fake_set(FAKE_EVIL);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", state_dir), 1);
	CHECK(has(err, "invalid reply") && !has(out, "\x1b") && !has(err, "\x1b"));
	free2(&out, &err);
	fake_set(FAKE_OTHER_ID);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", state_dir), 1);
	CHECK(has(err, "not this terminal's id"));
	free2(&out, &err);
	fake_set(FAKE_UNAUTH);
	CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", state_dir, "--json"), 1);
	CHECK(has(out, "{\"error\":{\"code\":\"unauthenticated\""));
	free2(&out, &err);

	/* A state directory without an enrollment. */
	{
		char empty[300];

		path_in_tmp(empty, sizeof(empty), "empty-state");
		CHECK(mkdir(empty, 0700) == 0);
		CHECK_EQ_INT(TERMINAL(&out, &err, "checkin", "--state-dir", empty), 1);
		CHECK(has(err, "enroll first"));
		free2(&out, &err);
	}
}

static void test_station(void)
{
	char *out = NULL, *err = NULL, *k1 = NULL, *k2 = NULL;
	char key[300], hex[65];
	uint8_t pk[32];
	fake_seen s;

	path_in_tmp(key, sizeof(key), "station.key");
	CHECK_EQ_INT(STATION(&out, &err, "keygen", "--key", key), 0);
	CHECK_EQ_INT(mode_of(key), 0600);
	CHECK(key_public(key, pk));
	sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));
	CHECK(strncmp(out, hex, 64) == 0 && out[64] == '\n');
	memcpy(fake.station_pk, pk, 32);
	k1 = read_file(key);
	CHECK(!has(out, k1 + 15) && !has(err, k1 + 15));
	free2(&out, &err);
	CHECK_EQ_INT(STATION(&out, &err, "keygen", "--key", key), 1);
	CHECK(has(err, "never replaces"));
	k2 = read_file(key);
	CHECK_STR(k1, k2);
	free2(&out, &err);

	fake_set(FAKE_OK);
	CHECK_EQ_INT(STATION(&out, &err, "enroll-code", "--url", fake.url, "--name", "station-01",
	                     "--key", key, "--manufacturer", "Ingenico", "--serial", "SN-0042"),
	             0);
	CHECK(has(out, "enrollment code: ABCD-EFGH-2345-WXYZ\n"));
	CHECK(has(out, "expires:         2026-11-23T10:00:00Z"));
	s = seen();
	CHECK(s.auth_ok && s.params_canonical);
	CHECK_STR(s.principal, "station-01");
	CHECK_STR(s.serial, "SN-0042");
	CHECK_STR(s.manufacturer, "Ingenico");
	free2(&out, &err);
	fake_set(FAKE_EVIL);
	CHECK_EQ_INT(STATION(&out, &err, "enroll-code", "--url", fake.url, "--name", "station-01",
	                     "--key", key, "--manufacturer", "Ingenico", "--serial", "SN-0042"),
	             1);
	CHECK(!has(out, "\x1b") && !has(err, "\x1b"));
	free2(&out, &err);

	/* The table, over two pages. */
	fake_set(FAKE_OK);
	CHECK_EQ_INT(STATION(&out, &err, "terminals", "--url", fake.url, "--name", "station-01",
	                     "--key", key, "--site", "paris-1"),
	             0);
	s = seen();
	CHECK_EQ_INT(s.list_calls, 2);
	CHECK_EQ_INT(s.after, 2);
	CHECK_STR(s.site, "paris-1");
	CHECK(s.auth_ok && s.params_canonical);
	CHECK(has(out, "ID ") && has(out, "SN-0001") && has(out, "SN-0002") && has(out, "SN-0003"));
	CHECK(has(out, "2026-11-23T10:00:00Z"));
	free2(&out, &err);
	fake_set(FAKE_EVIL);
	CHECK_EQ_INT(STATION(&out, &err, "terminals", "--url", fake.url, "--name", "station-01",
	                     "--key", key, "--site", "paris-1", "--state", "active", "--json"),
	             0);
	CHECK(has(out, "\"serial\":\"SN\\u001b[31m\"") && !has(out, "\x1b"));
	free2(&out, &err);
	fake_set(FAKE_STUCK_CURSOR);
	CHECK_EQ_INT(STATION(&out, &err, "terminals", "--url", fake.url, "--name", "station-01",
	                     "--key", key, "--site", "paris-1"),
	             1);
	CHECK(has(err, "'next'"));
	free2(&out, &err);
	/* A key file open to others is refused by libtkm: a usage error. */
	CHECK(chmod(key, 0644) == 0);
	CHECK_EQ_INT(STATION(&out, &err, "terminals", "--url", fake.url, "--name", "station-01",
	                     "--key", key, "--site", "paris-1"),
	             2);
	free2(&out, &err);
	sodium_memzero(k1, strlen(k1));
	sodium_memzero(k2, strlen(k2));
	free(k1);
	free(k2);
}

int main(void)
{
	char cmd[400];

	if (sodium_init() < 0 || mkdtemp(tmpdir) == NULL || !fake_start()) {
		fprintf(stderr, "cannot set up the test\n");
		return 1;
	}
	test_usage();
	test_enroll_refused();
	test_enroll_ok();
	test_checkin();
	test_station();
	fake_stop();
	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir) > 0 && system(cmd) != 0) {
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
	return tkm_test_report("tools_device");
}
