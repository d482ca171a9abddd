/*
 * tkmctl_auth_test.c - tkmctl's identity commands (login, logout, whoami,
 * passwd, operator, role, policy, approvals) and its session file, run as the
 * real tkmctl binary against a fake tkmd.
 *
 * The fake is an nng REP socket in this process that answers the auth.*,
 * operator.*, role.*, policy.* and approval.* methods with canned replies and
 * records what tkmctl sent: the params (passwords included) and the session
 * token of the auth map. It can also answer what a real tkmd never sends:
 * pending approvals for every method, malformed pending replies, missing or
 * mistyped fields, cursors that do not move, and control characters.
 *
 * What is checked: the session file (mode 0600 in a 0700 directory, its
 * format, refused when open to others, a symbolic link, not a regular file,
 * another user's or malformed; sent only to its own server; the default
 * paths), --password-fd (one password per line, its errors), that a password
 * is never taken from the command line nor shown back, that no password or
 * token reaches stdout or stderr except the one-time passwords of create and
 * reset, strict reply decoding, the pending-approval reply of every mutating
 * command, and, on a pseudo-terminal, that the password prompt turns echo off
 * and restores it, also when SIGINT ends tkmctl. The end-to-end test through
 * a real tkmd is the lead's (tests/service_*).
 */
#define _GNU_SOURCE /* posix_openpt, grantpt, unlockpt, ptsname */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sodium.h>

#include "tkm_cbor.h"
#include "tkm_test.h"
#include "tkm_wire.h"

#ifndef TKM_TKMCTL_PATH
#error "TKM_TKMCTL_PATH must name the tkmctl binary"
#endif
#ifndef TKM_PYTHON3
#error "TKM_PYTHON3 must name the python3 binary"
#endif
#ifndef TKM_DEFAULT_POLICY
#error "TKM_DEFAULT_POLICY must name policy/default.policy"
#endif

#define PASSWORD     "correct horse battery staple"
#define NEW_PASSWORD "a much longer new passphrase"
#define OTP          "abcde-fghij-kmnpq-rstuv"
#define FAKE_MAX     ((size_t)4 << 20)

extern char **environ;

static char tmpdir[] = "/tmp/tkm-ctlauth-XXXXXX";
static uint8_t token[32];
static char token_hex[65];

/* ---- Files and processes ---- */

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	int r = snprintf(buf, len, "%s/%s", tmpdir, name);

	if (r < 0 || (size_t)r >= len) {
		abort();
	}
}

static int write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	int rc = 0;

	if (fd < 0) {
		return -1;
	}
	if (write(fd, text, len) != (ssize_t)len) {
		rc = -1;
	}
	if (close(fd) != 0 || fchmodat(AT_FDCWD, path, mode, 0) != 0) {
		rc = -1;
	}
	return rc;
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

static bool has(const char *s, const char *what)
{
	return s != NULL && strstr(s, what) != NULL;
}

static size_t count_of(const char *s, const char *what)
{
	size_t n = 0;

	while (s != NULL && (s = strstr(s, what)) != NULL) {
		n++;
		s += strlen(what);
	}
	return n;
}

/* How a child is started. */
typedef struct how {
	const char *dir;      /* chdir there first; NULL: here */
	const char *stdin_s;  /* text for --password-fd 3 (fd 3 is a pipe with it); NULL: none */
	const char *home;     /* HOME; NULL: tmpdir/home */
	const char *xdg;      /* XDG_RUNTIME_DIR; NULL: unset */
	const char *sess_env; /* TKM_SESSION_FILE; NULL: unset */
	bool no_tty;          /* setsid() first, so that there is no /dev/tty */
} how;

/* The child's environment: PATH, HOME and the sanitizer settings of ours, plus h's. */
static void child_env(const how *h, char **envp, size_t cap, char bufs[][512])
{
	size_t n = 0, b = 0;
	char home[300];

	path_in_tmp(home, sizeof(home), "home");
	(void)snprintf(bufs[b], 512, "HOME=%s", h->home != NULL ? h->home : home);
	envp[n++] = bufs[b++];
	if (h->xdg != NULL) {
		(void)snprintf(bufs[b], 512, "XDG_RUNTIME_DIR=%s", h->xdg);
		envp[n++] = bufs[b++];
	}
	if (h->sess_env != NULL) {
		(void)snprintf(bufs[b], 512, "TKM_SESSION_FILE=%s", h->sess_env);
		envp[n++] = bufs[b++];
	}
	for (char **e = environ; *e != NULL && n + 1 < cap; e++) {
		if (strncmp(*e, "PATH=", 5) == 0 || strncmp(*e, "ASAN_", 5) == 0 ||
		    strncmp(*e, "UBSAN_", 6) == 0 || strncmp(*e, "LSAN_", 5) == 0) {
			envp[n++] = *e;
		}
	}
	envp[n] = NULL;
}

/* Run argv as h says with stdout and stderr into files; the exit status, 128+N for signal N. */
static int run_how(const how *h, const char *const argv[], char **out, char **err)
{
	char opath[256], epath[256];
	char bufs[4][512];
	char *envp[64];
	int pfd[2] = {-1, -1};
	int status = -1, rc = -1;
	pid_t pid;

	path_in_tmp(opath, sizeof(opath), "stdout");
	path_in_tmp(epath, sizeof(epath), "stderr");
	child_env(h, envp, sizeof(envp) / sizeof(envp[0]), bufs);
	if (h->stdin_s != NULL && pipe(pfd) != 0) {
		abort();
	}
	pid = fork();
	if (pid == 0) {
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 ||
		    (h->dir != NULL && chdir(h->dir) != 0) || (h->no_tty && setsid() < 0)) {
			_exit(127);
		}
		if (pfd[0] >= 0) {
			if (dup2(pfd[0], 3) < 0) {
				_exit(127);
			}
			close(pfd[1]);
		}
		execve(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	if (pfd[0] >= 0) {
		size_t n = strlen(h->stdin_s);

		close(pfd[0]);
		if (write(pfd[1], h->stdin_s, n) != (ssize_t)n) {
			fprintf(stderr, "cannot feed the password pipe\n");
		}
		close(pfd[1]);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid) {
		rc = WIFEXITED(status)     ? WEXITSTATUS(status)
		     : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
		                           : -1;
	}
	if (out != NULL) {
		*out = read_file(opath);
	}
	if (err != NULL) {
		*err = read_file(epath);
	}
	return rc;
}

static void free2(char **out, char **err)
{
	free(*out);
	free(*err);
	*out = *err = NULL;
}

/* python3 -m json.tool on text: 0 exactly when it is valid JSON. */
static int json_valid(const char *text)
{
	char path[256];
	const char *argv[] = {TKM_PYTHON3, "-m", "json.tool", path, NULL};
	how h = {0};
	char *py = NULL;
	int rc;

	path_in_tmp(path, sizeof(path), "out.json");
	if (write_file(path, text, strlen(text), 0600) != 0) {
		return -1;
	}
	rc = run_how(&h, argv, &py, NULL);
	free(py);
	return rc;
}

/* ---- The fake tkmd ---- */

typedef enum fake_mode {
	FAKE_OK,
	FAKE_PENDING,       /* every mutating method answers a pending approval */
	FAKE_PENDING_BAD,   /* "status": "pending" without approval_id */
	FAKE_PENDING_EXTRA, /* a pending reply with one more key */
	FAKE_NO_FIELD,      /* results miss a required field */
	FAKE_BAD_TYPE,      /* a 31-byte token, a text where a number goes */
	FAKE_NOT_MAP,       /* every result is an array */
	FAKE_BAD_NEXT,      /* list pages whose "next" is not their last item */
	FAKE_EVIL,          /* control characters in server text */
	FAKE_FAILED,        /* approval.approve: the request ran and failed */
} fake_mode;

/* What the fake saw. */
typedef struct fake_seen {
	unsigned calls;
	char method[80];
	bool had_token;  /* the last request carried the expected session token */
	bool had_auth;   /* the last request carried an auth map at all */
	char pw[300];    /* auth.login password */
	char user[100];  /* the last "username" param */
	char oldpw[300]; /* auth.change_password */
	char newpw[300];
	unsigned logins, changes, logouts;
	uint64_t base_version;
	size_t text_len;
	char after[100];
	char state[40];
	bool has_state;
	size_t nroles;
	char principal[200];
	char scope[100];
} fake_seen;

static struct {
	pthread_mutex_t mu;
	nng_socket sock;
	pthread_t thr;
	char url[300], url2[300];
	fake_mode mode;
	bool must_change;
	size_t page_max;
	char *policy;
	size_t policy_len;
	fake_seen seen;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fake_set(fake_mode mode, bool must_change, size_t page_max)
{
	pthread_mutex_lock(&fake.mu);
	fake.mode = mode;
	fake.must_change = must_change;
	fake.page_max = page_max;
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

static void put_roles(tkm_cbor_w *w)
{
	tkm_cbor_put_array(w, 2);
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "role");
	tkm_cbor_put_cstr(w, "admin");
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "role");
	tkm_cbor_put_cstr(w, "key-custodian");
	tkm_cbor_put_cstr(w, "scope");
	tkm_cbor_put_cstr(w, "site:paris-1");
}

static void put_pending(tkm_cbor_w *w, fake_mode mode)
{
	tkm_cbor_put_map(w, mode == FAKE_PENDING_BAD ? 2 : mode == FAKE_PENDING_EXTRA ? 4 : 3);
	tkm_cbor_put_cstr(w, "status");
	tkm_cbor_put_cstr(w, "pending");
	if (mode != FAKE_PENDING_BAD) {
		tkm_cbor_put_cstr(w, "approval_id");
		tkm_cbor_put_uint(w, 42);
	}
	tkm_cbor_put_cstr(w, "expires_ms");
	tkm_cbor_put_uint(w, 1795428000000ull); /* 2026-11-23T10:00:00Z */
	if (mode == FAKE_PENDING_EXTRA) {
		tkm_cbor_put_cstr(w, "result");
		tkm_cbor_put_uint(w, 1);
	}
}

/* An operator of operator.show and operator.list. */
static void put_operator(tkm_cbor_w *w, const char *name, fake_mode mode)
{
	tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? 6 : 7);
	tkm_cbor_put_cstr(w, "username");
	tkm_cbor_put_cstr(w, mode == FAKE_EVIL ? "bob\x1b[31m" : name);
	tkm_cbor_put_cstr(w, "roles");
	put_roles(w);
	tkm_cbor_put_cstr(w, "locked");
	tkm_cbor_put_bool(w, false);
	tkm_cbor_put_cstr(w, "disabled");
	tkm_cbor_put_bool(w, strcmp(name, "op02") == 0);
	tkm_cbor_put_cstr(w, "failed_logins");
	if (mode == FAKE_BAD_TYPE) {
		tkm_cbor_put_cstr(w, "3");
	} else {
		tkm_cbor_put_uint(w, 3);
	}
	tkm_cbor_put_cstr(w, "created_ms");
	tkm_cbor_put_uint(w, 1795428000000ull);
	if (mode != FAKE_NO_FIELD) {
		tkm_cbor_put_cstr(w, "password_changed_ms");
		tkm_cbor_put_uint(w, 1795428000000ull);
	}
}

#define FAKE_OPERATORS 5
#define FAKE_APPROVALS 3

static void fake_operator_list(const tkm_cbor_val *params, fake_mode mode, size_t page_max,
                               tkm_cbor_w *w)
{
	char after[100], name[16];
	uint64_t limit = 100;
	size_t first = 0, n;

	copy_text(params, "after", after, sizeof(after));
	(void)tkm_cbor_get_uint(tkm_cbor_map_get(params, "limit"), &limit);
	pthread_mutex_lock(&fake.mu);
	memcpy(fake.seen.after, after, sizeof(after));
	pthread_mutex_unlock(&fake.mu);
	/* Operators op01..op05; "after" is one of them or "". */
	if (after[0] != '\0') {
		first = (size_t)strtoul(after + 2, NULL, 10);
	}
	n = FAKE_OPERATORS - (first < FAKE_OPERATORS ? first : FAKE_OPERATORS);
	n = n < limit ? n : (size_t)limit;
	n = n < page_max ? n : page_max;
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "operators");
	tkm_cbor_put_array(w, n);
	for (size_t i = 0; i < n; i++) {
		(void)snprintf(name, sizeof(name), "op%02zu", first + i + 1);
		put_operator(w, name, mode);
	}
	tkm_cbor_put_cstr(w, "next");
	if (first + n < FAKE_OPERATORS && n > 0) {
		(void)snprintf(name, sizeof(name), "op%02zu",
		               first + n + (mode == FAKE_BAD_NEXT ? 0 : 0));
		tkm_cbor_put_cstr(w, mode == FAKE_BAD_NEXT ? "op01" : name);
	} else {
		tkm_cbor_put_null(w);
	}
}

static void fake_approval_list(const tkm_cbor_val *params, fake_mode mode, size_t page_max,
                               tkm_cbor_w *w)
{
	uint64_t after = 0, limit = 50;
	size_t n;

	(void)tkm_cbor_get_uint(tkm_cbor_map_get(params, "after"), &after);
	(void)tkm_cbor_get_uint(tkm_cbor_map_get(params, "limit"), &limit);
	pthread_mutex_lock(&fake.mu);
	copy_text(params, "state", fake.seen.state, sizeof(fake.seen.state));
	fake.seen.has_state = tkm_cbor_map_get(params, "state") != NULL;
	pthread_mutex_unlock(&fake.mu);
	n = FAKE_APPROVALS - (after < FAKE_APPROVALS ? (size_t)after : FAKE_APPROVALS);
	n = n < limit ? n : (size_t)limit;
	n = n < page_max ? n : page_max;
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "approvals");
	tkm_cbor_put_array(w, n);
	for (size_t i = 0; i < n; i++) {
		uint64_t id = after + i + 1;

		tkm_cbor_put_map(w, 8);
		tkm_cbor_put_cstr(w, "id");
		tkm_cbor_put_uint(w, id);
		tkm_cbor_put_cstr(w, "state");
		tkm_cbor_put_cstr(w, id == 3 ? "rejected" : "pending");
		tkm_cbor_put_cstr(w, "method");
		tkm_cbor_put_cstr(w, mode == FAKE_EVIL ? "operator.create\x1b]0;owned\x07"
		                                       : "operator.create");
		tkm_cbor_put_cstr(w, "params");
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "roles");
		tkm_cbor_put_array(w, 1);
		tkm_cbor_put_cstr(w, "admin");
		tkm_cbor_put_cstr(w, "username");
		tkm_cbor_put_cstr(w, mode == FAKE_EVIL ? "x\x1b[2Jy" : "bob");
		tkm_cbor_put_cstr(w, "initiator");
		tkm_cbor_put_cstr(w, "operator:alice");
		tkm_cbor_put_cstr(w, "created_ms");
		tkm_cbor_put_uint(w, 1795424400000ull);
		tkm_cbor_put_cstr(w, "expires_ms");
		tkm_cbor_put_uint(w, 1795428000000ull);
		tkm_cbor_put_cstr(w, "decided_by");
		if (id == 3) {
			tkm_cbor_put_cstr(w, "operator:carol");
		} else {
			tkm_cbor_put_null(w);
		}
	}
	tkm_cbor_put_cstr(w, "next");
	if (after + n < FAKE_APPROVALS && n > 0) {
		tkm_cbor_put_uint(w, mode == FAKE_BAD_NEXT ? after : after + n);
	} else {
		tkm_cbor_put_null(w);
	}
}

static void fake_approve(const tkm_cbor_val *params, fake_mode mode, tkm_cbor_w *w)
{
	uint64_t id = 0;

	(void)tkm_cbor_get_uint(tkm_cbor_map_get(params, "id"), &id);
	tkm_cbor_put_map(w, 3);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, mode == FAKE_BAD_TYPE ? id + 1 : id);
	tkm_cbor_put_cstr(w, "state");
	tkm_cbor_put_cstr(w, mode == FAKE_FAILED ? "failed" : "executed");
	if (mode == FAKE_FAILED) {
		tkm_cbor_put_cstr(w, "error");
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "code");
		tkm_cbor_put_cstr(w, "already_exists");
		tkm_cbor_put_cstr(w, "message");
		tkm_cbor_put_cstr(w, "operator 'bob' exists");
		return;
	}
	tkm_cbor_put_cstr(w, "result");
	if (id == 7) {
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "version");
		tkm_cbor_put_uint(w, 4);
		tkm_cbor_put_cstr(w, "changes");
		tkm_cbor_put_cstr(w, "+ role auditor2\n");
	} else if (id == 8) {
		tkm_cbor_put_map(w, 0);
	} else {
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "username");
		tkm_cbor_put_cstr(w, "bob");
		tkm_cbor_put_cstr(w, "one_time_password");
		tkm_cbor_put_cstr(w, OTP);
	}
}

static bool is_mutating(const char *m)
{
	static const char *const list[] = {
	    "auth.change_password", "operator.create",  "operator.reset_password",
	    "operator.unlock",      "operator.disable", "role.assign",
	    "role.revoke",          "policy.apply",
	};

	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
		if (strcmp(m, list[i]) == 0) {
			return true;
		}
	}
	return false;
}

/* The result of one request into w; an error code for an error reply. */
static tkm_err fake_result(const tkm_wire_request *req, tkm_cbor_w *w)
{
	const tkm_cbor_val *p = req->params;
	fake_mode mode;
	bool must_change, authed;
	size_t page_max;

	pthread_mutex_lock(&fake.mu);
	mode = fake.mode;
	must_change = fake.must_change;
	page_max = fake.page_max;
	authed = fake.seen.had_token;
	pthread_mutex_unlock(&fake.mu);
	if (strcmp(req->method, "auth.login") == 0) {
		char pw[300];

		copy_text(p, "password", pw, sizeof(pw));
		pthread_mutex_lock(&fake.mu);
		memcpy(fake.seen.pw, pw, sizeof(pw));
		copy_text(p, "username", fake.seen.user, sizeof(fake.seen.user));
		fake.seen.logins++;
		pthread_mutex_unlock(&fake.mu);
		if (strcmp(pw, PASSWORD) != 0) {
			return TKM_E_UNAUTHENTICATED;
		}
		if (mode == FAKE_NOT_MAP) {
			tkm_cbor_put_array(w, 0);
			return TKM_OK;
		}
		tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? 4 : 5);
		if (mode != FAKE_NO_FIELD) {
			tkm_cbor_put_cstr(w, "token");
			tkm_cbor_put_bytes(w, token, mode == FAKE_BAD_TYPE ? 31 : 32);
		}
		tkm_cbor_put_cstr(w, "expires_ms");
		tkm_cbor_put_uint(w, 1795428000000ull);
		tkm_cbor_put_cstr(w, "idle_seconds");
		tkm_cbor_put_uint(w, 900);
		tkm_cbor_put_cstr(w, "must_change_password");
		tkm_cbor_put_bool(w, must_change);
		tkm_cbor_put_cstr(w, "roles");
		put_roles(w);
		return TKM_OK;
	}
	if (strcmp(req->method, "sys.ping") == 0) {
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "pong");
		tkm_cbor_put_bool(w, true);
		tkm_cbor_put_cstr(w, "time");
		tkm_cbor_put_uint(w, 1795428000);
		return TKM_OK;
	}
	/* Everything else needs the session, as in tkmd. */
	if (!authed) {
		return TKM_E_UNAUTHENTICATED;
	}
	if (mode == FAKE_NOT_MAP) {
		tkm_cbor_put_array(w, 1);
		tkm_cbor_put_uint(w, 1);
		return TKM_OK;
	}
	pthread_mutex_lock(&fake.mu);
	copy_text(p, "username", fake.seen.user, sizeof(fake.seen.user));
	if (strcmp(req->method, "policy.apply") == 0) {
		const char *t;
		size_t n = 0;

		(void)tkm_cbor_get_uint(tkm_cbor_map_get(p, "base_version"),
		                        &fake.seen.base_version);
		(void)tkm_cbor_get_text(tkm_cbor_map_get(p, "text"), &t, &n);
		fake.seen.text_len = n;
	}
	pthread_mutex_unlock(&fake.mu);
	if ((mode == FAKE_PENDING || mode == FAKE_PENDING_BAD || mode == FAKE_PENDING_EXTRA) &&
	    is_mutating(req->method)) {
		put_pending(w, mode);
		return TKM_OK;
	}
	if (strcmp(req->method, "auth.logout") == 0) {
		pthread_mutex_lock(&fake.mu);
		fake.seen.logouts++;
		pthread_mutex_unlock(&fake.mu);
		tkm_cbor_put_map(w, 0);
	} else if (strcmp(req->method, "auth.change_password") == 0) {
		pthread_mutex_lock(&fake.mu);
		copy_text(p, "old_password", fake.seen.oldpw, sizeof(fake.seen.oldpw));
		copy_text(p, "new_password", fake.seen.newpw, sizeof(fake.seen.newpw));
		fake.seen.changes++;
		pthread_mutex_unlock(&fake.mu);
		tkm_cbor_put_map(w, 0);
	} else if (strcmp(req->method, "auth.whoami") == 0) {
		tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? 3 : 4);
		tkm_cbor_put_cstr(w, "principal");
		tkm_cbor_put_cstr(w,
		                  mode == FAKE_EVIL ? "operator:al\x1b[2Jice" : "operator:alice");
		tkm_cbor_put_cstr(w, "kind");
		tkm_cbor_put_cstr(w, "operator");
		tkm_cbor_put_cstr(w, "roles");
		if (mode == FAKE_BAD_TYPE) {
			tkm_cbor_put_cstr(w, "admin");
		} else {
			put_roles(w);
		}
		if (mode != FAKE_NO_FIELD) {
			tkm_cbor_put_cstr(w, "must_change_password");
			tkm_cbor_put_bool(w, false);
		}
	} else if (strcmp(req->method, "operator.create") == 0 ||
	           strcmp(req->method, "operator.reset_password") == 0) {
		const tkm_cbor_val *roles = tkm_cbor_map_get(p, "roles");

		pthread_mutex_lock(&fake.mu);
		fake.seen.nroles = tkm_cbor_count(roles);
		pthread_mutex_unlock(&fake.mu);
		tkm_cbor_put_map(w, mode == FAKE_NO_FIELD ? 1 : 2);
		tkm_cbor_put_cstr(w, "username");
		tkm_cbor_put_cstr(w, "bob");
		if (mode != FAKE_NO_FIELD) {
			tkm_cbor_put_cstr(w, "one_time_password");
			tkm_cbor_put_cstr(w, OTP);
		}
	} else if (strcmp(req->method, "operator.unlock") == 0 ||
	           strcmp(req->method, "operator.disable") == 0) {
		tkm_cbor_put_map(w, 0);
	} else if (strcmp(req->method, "operator.show") == 0) {
		put_operator(w, "bob", mode);
	} else if (strcmp(req->method, "operator.list") == 0) {
		fake_operator_list(p, mode, page_max, w);
	} else if (strcmp(req->method, "role.assign") == 0 ||
	           strcmp(req->method, "role.revoke") == 0) {
		pthread_mutex_lock(&fake.mu);
		copy_text(p, "principal", fake.seen.principal, sizeof(fake.seen.principal));
		copy_text(p, "scope", fake.seen.scope, sizeof(fake.seen.scope));
		pthread_mutex_unlock(&fake.mu);
		tkm_cbor_put_map(w, 0);
	} else if (strcmp(req->method, "policy.show") == 0) {
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "version");
		tkm_cbor_put_uint(w, 3);
		tkm_cbor_put_cstr(w, "text");
		tkm_cbor_put_text(w, fake.policy, fake.policy_len);
	} else if (strcmp(req->method, "policy.apply") == 0) {
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "version");
		tkm_cbor_put_uint(w, 4);
		tkm_cbor_put_cstr(w, "changes");
		tkm_cbor_put_cstr(w, "+ role x\n");
	} else if (strcmp(req->method, "approval.list") == 0) {
		fake_approval_list(p, mode, page_max, w);
	} else if (strcmp(req->method, "approval.approve") == 0) {
		fake_approve(p, mode, w);
	} else if (strcmp(req->method, "approval.reject") == 0) {
		uint64_t id = 0;

		(void)tkm_cbor_get_uint(tkm_cbor_map_get(p, "id"), &id);
		tkm_cbor_put_map(w, 2);
		tkm_cbor_put_cstr(w, "id");
		tkm_cbor_put_uint(w, id);
		tkm_cbor_put_cstr(w, "state");
		tkm_cbor_put_cstr(w, mode == FAKE_BAD_TYPE ? "executed" : "rejected");
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
	const uint8_t *p = NULL, *out = NULL, *t = NULL;
	size_t n = 0, out_len = 0, tn = 0;
	char why[128];
	tkm_err err;

	lim.max_str_len = FAKE_MAX;
	if (tkm_wire_decode_request(buf, len, &lim, &doc, &req, why, sizeof(why)) != TKM_OK ||
	    tkm_cbor_w_new(FAKE_MAX, &res) != TKM_OK || tkm_cbor_w_new(FAKE_MAX, &w) != TKM_OK) {
		goto out;
	}
	pthread_mutex_lock(&fake.mu);
	fake.seen.calls++;
	(void)snprintf(fake.seen.method, sizeof(fake.seen.method), "%s", req.method);
	fake.seen.had_auth = req.auth != NULL;
	fake.seen.had_token = req.auth != NULL &&
	                      tkm_cbor_get_bytes(tkm_cbor_map_get(req.auth, "token"), &t, &tn) &&
	                      tn == sizeof(token) && sodium_memcmp(t, token, tn) == 0;
	pthread_mutex_unlock(&fake.mu);
	err = fake_result(&req, res);
	if (err == TKM_OK && tkm_cbor_w_finish(res, &p, &n) == TKM_OK) {
		tkm_wire_encode_result(w, req.id, p, n);
	} else {
		tkm_wire_encode_error(w, req.id, err != TKM_OK ? err : TKM_E_INTERNAL,
		                      err == TKM_E_UNAUTHENTICATED ? "the fake wants a session"
		                                                   : "the fake says no",
		                      NULL, 0);
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
	char path[300];

	path_in_tmp(path, sizeof(path), "policy.txt");
	fake.policy = read_file(TKM_DEFAULT_POLICY);
	fake.policy_len = strlen(fake.policy);
	if (fake.policy_len == 0 ||
	    snprintf(fake.url, sizeof(fake.url), "ipc://%s/fake.sock", tmpdir) <= 0 ||
	    snprintf(fake.url2, sizeof(fake.url2), "ipc://%s/fake2.sock", tmpdir) <= 0 ||
	    nng_rep0_open(&fake.sock) != 0 ||
	    nng_socket_set_size(fake.sock, NNG_OPT_RECVMAXSZ, FAKE_MAX) != 0 ||
	    nng_listen(fake.sock, fake.url, NULL, 0) != 0 ||
	    nng_listen(fake.sock, fake.url2, NULL, 0) != 0) {
		return false;
	}
	return pthread_create(&fake.thr, NULL, fake_serve, NULL) == 0;
}

static void fake_stop(void)
{
	nng_close(fake.sock);
	pthread_join(fake.thr, NULL);
	free(fake.policy);
}

/* ---- Running tkmctl ---- */

static char session_path[300];

/* tkmctl --url FAKE --session SESSION ARGS... (NULL-terminated) as h says; the exit status. */
static int ctl_how(const how *h, char **out, char **err, ...)
{
	const char *argv[32];
	va_list ap;
	int n = 0;

	argv[n++] = TKM_TKMCTL_PATH;
	argv[n++] = "--url";
	argv[n++] = fake.url;
	argv[n++] = "--session";
	argv[n++] = session_path;
	va_start(ap, err);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL) {
		n++;
	}
	va_end(ap);
	argv[n] = NULL;
	return run_how(h, argv, out, err);
}

/* The same with passwords on fd 3. */
#define CTL_PW(pw, out, err, ...) ctl_how(&(how){.stdin_s = (pw)}, out, err, __VA_ARGS__)
#define CTL(out, err, ...)        ctl_how(&(how){0}, out, err, __VA_ARGS__)

/* Neither a password nor the token in out or err. */
static bool no_secrets(const char *out, const char *err)
{
	const char *const secrets[] = {PASSWORD, NEW_PASSWORD, "hunter2secret", token_hex};

	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		if (has(out, secrets[i]) || has(err, secrets[i])) {
			fprintf(stderr, "secret '%s' was printed\n", secrets[i]);
			return false;
		}
	}
	return true;
}

static bool login_ok(void)
{
	char *out = NULL, *err = NULL;
	int rc;

	fake_set(FAKE_OK, false, 100);
	rc = CTL_PW(PASSWORD "\n", &out, &err, "login", "alice", "--password-fd", "3", NULL);
	if (rc != 0) {
		fprintf(stderr, "login failed: %s", err != NULL ? err : "");
	}
	free2(&out, &err);
	return rc == 0;
}

static mode_t mode_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_mode & 07777 : (mode_t)-1;
}

/* ---- Tests ---- */

static void test_login_session_file(void)
{
	char *out = NULL, *err = NULL, *text, want[300], dir[300];
	fake_seen s;

	/* A fresh directory two levels down: made with 0700. */
	path_in_tmp(dir, sizeof(dir), "s1");
	path_in_tmp(session_path, sizeof(session_path), "s1/tkm/session");
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(
	    CTL_PW(PASSWORD "\n", &out, &err, "login", "alice", "--password-fd", "3", NULL), 0);
	CHECK(has(out, "logged in as operator:alice (roles: admin, key-custodian [site:paris-1]); "
	               "the session ends at 2026-11-23T10:00:00Z, or after 900 s idle\n"));
	CHECK(has(out, "session saved in "));
	CHECK(no_secrets(out, err));
	s = seen();
	CHECK_STR(s.pw, PASSWORD);
	CHECK_STR(s.user, "alice");
	CHECK(!s.had_auth);
	CHECK_EQ_INT(mode_of(session_path), 0600);
	CHECK_EQ_INT(mode_of(dir), 0700);
	path_in_tmp(dir, sizeof(dir), "s1/tkm");
	CHECK_EQ_INT(mode_of(dir), 0700);
	text = read_file(session_path);
	CHECK(snprintf(want, sizeof(want), "tkm-session %s\nurl %s\n", token_hex, fake.url) > 0);
	CHECK_STR(text, want);
	free(text);
	free2(&out, &err);

	/* The token goes with the next call, and whoami prints what tkmd said. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 0);
	CHECK(seen().had_token);
	CHECK_STR(out, "principal             operator:alice\n"
	               "kind                  operator\n"
	               "roles                 admin, key-custodian [site:paris-1]\n"
	               "must change password  no\n");
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "whoami", NULL), 0);
	CHECK_STR(out,
	          "{\"principal\":\"operator:alice\",\"kind\":\"operator\",\"roles\":[{\"role\":"
	          "\"admin\"},{\"role\":\"key-custodian\",\"scope\":\"site:paris-1\"}],"
	          "\"must_change_password\":false}\n");
	CHECK(json_valid(out) == 0);
	free2(&out, &err);

	/* A second login replaces the file (rename over it) and leaves no temporary file. */
	CHECK(login_ok());
	CHECK_EQ_INT(mode_of(session_path), 0600);
	{
		char cmd[400];
		int r =
		    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s/s1/tkm' | wc -l) -eq 1", tmpdir);

		CHECK(r > 0 && system(cmd) == 0);
	}

	/* --json login: no token, no password. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL_PW(PASSWORD "\n", &out, &err, "--json", "login", "alice", "--password-fd",
	                    "3", NULL),
	             0);
	CHECK(has(out, "{\"principal\":\"operator:alice\",\"roles\":[{\"role\":\"admin\"},"));
	CHECK(has(out, "\"must_change_password\":false,\"password_changed\":false,"
	               "\"session_file\":"));
	CHECK(json_valid(out) == 0);
	CHECK(no_secrets(out, err));
	free2(&out, &err);

	/* A wrong password: exit 1, no hint about logging in, the old file stays. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(
	    CTL_PW("hunter2secret\n", &out, &err, "login", "alice", "--password-fd", "3", NULL), 1);
	CHECK(has(err, "tkmctl: unauthenticated: "));
	CHECK(!has(err, "hint"));
	CHECK(no_secrets(out, err));
	CHECK_EQ_INT(mode_of(session_path), 0600);
	free2(&out, &err);

	/* Logout: tkmd told, file gone. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "logout", NULL), 0);
	s = seen();
	CHECK_EQ_INT(s.logouts, 1);
	CHECK(s.had_token);
	CHECK(has(out, "logged out; removed "));
	CHECK(access(session_path, F_OK) != 0);
	free2(&out, &err);
	/* Not logged in any more: logout says so (exit 1), whoami gets the hint. */
	CHECK_EQ_INT(CTL(&out, &err, "logout", NULL), 1);
	CHECK(has(err, "not logged in: no session file at "));
	free2(&out, &err);
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 1);
	CHECK(!seen().had_auth);
	CHECK(has(err, "tkmctl: unauthenticated: the fake wants a session\n"
	               "tkmctl: hint: not logged in: log in with tkmctl login USERNAME\n"));
	free2(&out, &err);
	/* sys.ping needs no session. */
	CHECK_EQ_INT(CTL(&out, &err, "ping", NULL), 0);
	free2(&out, &err);
}

static void test_session_refused(void)
{
	char *out = NULL, *err = NULL, link[300], other[300];

	path_in_tmp(session_path, sizeof(session_path), "s2/session");
	CHECK(login_ok());

	/* Open to group or others: refused before anything is sent, exit 2. */
	CHECK(chmod(session_path, 0644) == 0);
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 2);
	CHECK(has(err, "is open to group or others (mode 0644; tkmctl writes 0600): refused"));
	CHECK_EQ_INT(seen().calls, 0);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK(chmod(session_path, 0640) == 0);
	CHECK_EQ_INT(CTL(&out, &err, "ping", NULL), 2);
	free2(&out, &err);
	CHECK(chmod(session_path, 0604) == 0);
	CHECK_EQ_INT(CTL(&out, &err, "logout", NULL), 2);
	CHECK(access(session_path, F_OK) == 0);
	free2(&out, &err);
	CHECK(chmod(session_path, 0400) == 0);
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 0);
	CHECK(seen().had_token);
	free2(&out, &err);
	CHECK(chmod(session_path, 0600) == 0);

	/* A symbolic link to a good file: refused. */
	path_in_tmp(link, sizeof(link), "s2/link");
	CHECK(symlink(session_path, link) == 0);
	{
		char keep[300];

		memcpy(keep, session_path, sizeof(keep));
		memcpy(session_path, link, sizeof(link));
		fake_set(FAKE_OK, false, 100);
		CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 2);
		CHECK(has(err, "cannot be opened (it is a symbolic link): refused"));
		CHECK_EQ_INT(seen().calls, 0);
		free2(&out, &err);

		/* Not a regular file. */
		path_in_tmp(session_path, sizeof(session_path), "s2");
		CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 2);
		CHECK(has(err, "is not a regular file"));
		free2(&out, &err);
		path_in_tmp(session_path, sizeof(session_path), "s2/fifo");
		CHECK(mkfifo(session_path, 0600) == 0);
		CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 2);
		CHECK(has(err, "is not a regular file"));
		free2(&out, &err);

		/* Another user's file. */
		path_in_tmp(other, sizeof(other), "s2/other");
		if (geteuid() == 0) {
			CHECK(write_file(other, "x", 1, 0600) == 0);
			CHECK(chown(other, 65534, 65534) == 0);
		} else {
			/* Not root: a root-owned file; the owner is checked before the mode. */
			memcpy(other, "/etc/passwd", sizeof("/etc/passwd"));
		}
		memcpy(session_path, other, sizeof(other));
		CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 2);
		CHECK(has(err, "belongs to another user"));
		free2(&out, &err);

		/* Malformed contents, each with mode 0600. */
		{
			static const char *const bad[] = {
			    "",
			    "tkm-session 00\n",
			    "tkm-session "
			    "0000000000000000000000000000000000000000000000000000000000000000",
			    "tkm-session "
			    "000000000000000000000000000000000000000000000000000000000000000G\n",
			    "tkm-session "
			    "00000000000000000000000000000000000000000000000000000000000000AA\n",
			    "tkm-session "
			    "0000000000000000000000000000000000000000000000000000000000000000\nurl "
			    "\n",
			    "tkm-session "
			    "0000000000000000000000000000000000000000000000000000000000000000\nurl "
			    "x",
			    "tkm-session "
			    "0000000000000000000000000000000000000000000000000000000000000000\nurl "
			    "x\ny\n",
			    "tkm-session "
			    "0000000000000000000000000000000000000000000000000000000000000000\nurl "
			    "a\x1b[2Jb\n",
			    "TKM-SESSION "
			    "0000000000000000000000000000000000000000000000000000000000000000\n",
			};

			path_in_tmp(session_path, sizeof(session_path), "s2/bad");
			for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
				CHECK(write_file(session_path, bad[i], strlen(bad[i]), 0600) == 0);
				fake_set(FAKE_OK, false, 100);
				CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 2);
				CHECK(has(err, "is not in tkmctl's format: refused"));
				CHECK_EQ_INT(seen().calls, 0);
				free2(&out, &err);
			}
			/* A NUL byte. */
			CHECK(write_file(session_path, "tkm-session \0", 13, 0600) == 0);
			CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 2);
			free2(&out, &err);
			/* Too long. */
			{
				char big[4000];

				memset(big, 'a', sizeof(big));
				CHECK(write_file(session_path, big, sizeof(big), 0600) == 0);
				CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 2);
				free2(&out, &err);
			}
		}
		/* Without a url line, the token goes to any server. */
		{
			char text[200];

			CHECK(snprintf(text, sizeof(text), "tkm-session %s\n", token_hex) > 0);
			CHECK(write_file(session_path, text, strlen(text), 0600) == 0);
			fake_set(FAKE_OK, false, 100);
			CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 0);
			CHECK(seen().had_token);
			free2(&out, &err);
		}
		memcpy(session_path, keep, sizeof(keep));
	}
}

/* The token goes only to the server it came from. */
static void test_session_url(void)
{
	char *out = NULL, *err = NULL, rel[300];
	const char *argv[10];
	how h = {0};

	path_in_tmp(session_path, sizeof(session_path), "s3/session");
	CHECK(login_ok());
	fake_set(FAKE_OK, false, 100);
	argv[0] = TKM_TKMCTL_PATH;
	argv[1] = "--url";
	argv[2] = fake.url2;
	argv[3] = "--session";
	argv[4] = session_path;
	argv[5] = "whoami";
	argv[6] = NULL;
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 1);
	CHECK(!seen().had_auth);
	CHECK(has(err, "tkmctl: note: the session in "));
	CHECK(has(err, ": calling without it\n"));
	CHECK(has(err, "tkmctl: hint: the session is for ipc://"));
	CHECK(no_secrets(out, err));
	free2(&out, &err);

	/* A relative ipc:// URL is stored absolute, and matches from the same directory. */
	h.dir = tmpdir;
	h.stdin_s = PASSWORD "\n";
	argv[2] = "ipc://./fake.sock";
	argv[5] = "login";
	argv[6] = "alice";
	argv[7] = "--password-fd";
	argv[8] = "3";
	argv[9] = NULL;
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 0);
	free2(&out, &err);
	{
		char *text = read_file(session_path);
		char want[400];

		CHECK(snprintf(want, sizeof(want), "url %s\n", fake.url) > 0);
		CHECK(has(text, want));
		free(text);
	}
	h.stdin_s = NULL;
	argv[2] = "ipc://fake.sock";
	argv[5] = "whoami";
	argv[6] = NULL;
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 0);
	CHECK(seen().had_token);
	free2(&out, &err);
	/* The same relative URL from another directory is another server (none there: exit 3). */
	path_in_tmp(rel, sizeof(rel), "s3");
	h.dir = rel;
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 3);
	CHECK_EQ_INT(seen().calls, 0);
	free2(&out, &err);

	/* Logout goes to the session's own server even when --url names another. */
	argv[2] = fake.url2;
	argv[5] = "logout";
	h.dir = NULL;
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 0);
	CHECK_EQ_INT(seen().logouts, 1);
	CHECK(seen().had_token);
	free2(&out, &err);

	/* Logout with the server gone: the file is removed all the same, exit 3. */
	CHECK(login_ok());
	{
		char text[400];

		CHECK(snprintf(text, sizeof(text), "tkm-session %s\nurl ipc://%s/nobody.sock\n",
		               token_hex, tmpdir) > 0);
		CHECK(write_file(session_path, text, strlen(text), 0600) == 0);
	}
	CHECK_EQ_INT(CTL(&out, &err, "logout", NULL), 3);
	CHECK(has(err, " was removed all the same\n"));
	CHECK(access(session_path, F_OK) != 0);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
}

/* Where the session file goes without --session. */
static void test_session_defaults(void)
{
	char *out = NULL, *err = NULL, home[300], xdg[300], env_file[300], p[400];
	const char *argv[] = {TKM_TKMCTL_PATH, "--url",         fake.url, "login",
	                      "alice",         "--password-fd", "3",      NULL};
	how h = {0};

	path_in_tmp(home, sizeof(home), "h1");
	path_in_tmp(xdg, sizeof(xdg), "x1");
	path_in_tmp(env_file, sizeof(env_file), "e1/sess");
	CHECK(mkdir(home, 0700) == 0 && mkdir(xdg, 0700) == 0);
	h.stdin_s = PASSWORD "\n";
	h.home = home;
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 0);
	CHECK(snprintf(p, sizeof(p), "%s/.config/tkm/session", home) > 0);
	CHECK_EQ_INT(mode_of(p), 0600);
	free2(&out, &err);
	h.xdg = xdg;
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 0);
	CHECK(snprintf(p, sizeof(p), "%s/tkm/session", xdg) > 0);
	CHECK_EQ_INT(mode_of(p), 0600);
	free2(&out, &err);
	/* A relative XDG_RUNTIME_DIR is ignored (XDG spec). */
	h.xdg = "relative/dir";
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 0);
	CHECK(has(out, home));
	free2(&out, &err);
	h.xdg = xdg;
	h.sess_env = env_file;
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 0);
	CHECK_EQ_INT(mode_of(env_file), 0600);
	free2(&out, &err);
	/* whoami finds the same file through the same variable. */
	{
		const char *wargv[] = {TKM_TKMCTL_PATH, "--url", fake.url, "whoami", NULL};

		h.stdin_s = NULL;
		fake_set(FAKE_OK, false, 100);
		CHECK_EQ_INT(run_how(&h, wargv, &out, &err), 0);
		CHECK(seen().had_token);
		free2(&out, &err);
	}
}

static void test_password_fd(void)
{
	char *out = NULL, *err = NULL, big[400];
	fake_seen s;

	path_in_tmp(session_path, sizeof(session_path), "s4/session");
	/* Bad descriptors. */
	CHECK_EQ_INT(CTL(&out, &err, "login", "alice", "--password-fd", "abc", NULL), 2);
	CHECK(has(err, "--password-fd needs a file descriptor number"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "login", "alice", "--password-fd", "77", NULL), 2);
	CHECK(has(err, "not an open file descriptor"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "login", "alice", "--password-fd", "-1", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL_PW("", &out, &err, "login", "alice", "--password-fd", "3", "--password-fd",
	                    "3", NULL),
	             2);
	free2(&out, &err);
	/* No line, an empty line, too long, a NUL byte. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL_PW("", &out, &err, "login", "alice", "--password-fd", "3", NULL), 2);
	CHECK(has(err, "no more lines"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL_PW("\n", &out, &err, "login", "alice", "--password-fd", "3", NULL), 2);
	CHECK(has(err, "the password is empty"));
	free2(&out, &err);
	memset(big, 'p', 257);
	big[257] = '\n';
	big[258] = '\0';
	CHECK_EQ_INT(CTL_PW(big, &out, &err, "login", "alice", "--password-fd", "3", NULL), 2);
	CHECK(has(err, "a password is at most 256 bytes"));
	free2(&out, &err);
	CHECK_EQ_INT(seen().logins, 0);
	/* 256 bytes is fine, and the last line needs no newline. */
	big[256] = '\0';
	CHECK_EQ_INT(CTL_PW(big, &out, &err, "login", "alice", "--password-fd", "3", NULL), 1);
	CHECK_EQ_INT(strlen(seen().pw), 256);
	free2(&out, &err);
	CHECK_EQ_INT(CTL_PW(PASSWORD, &out, &err, "login", "--password-fd", "3", "alice", NULL), 0);
	CHECK_STR(seen().pw, PASSWORD);
	free2(&out, &err);

	/* passwd: old, new, new again. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL_PW(PASSWORD "\n" NEW_PASSWORD "\n" NEW_PASSWORD "\n", &out, &err, "passwd",
	                    "--password-fd", "3", NULL),
	             0);
	s = seen();
	CHECK_STR(s.oldpw, PASSWORD);
	CHECK_STR(s.newpw, NEW_PASSWORD);
	CHECK(s.had_token);
	CHECK_STR(out, "password changed\n");
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	/* The two new ones differ: nothing is sent. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL_PW(PASSWORD "\n" NEW_PASSWORD "\n" NEW_PASSWORD "x\n", &out, &err,
	                    "passwd", "--password-fd", "3", NULL),
	             2);
	CHECK(has(err, "the two new passwords differ"));
	CHECK_EQ_INT(seen().changes, 0);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	/* Too few lines. */
	CHECK_EQ_INT(CTL_PW(PASSWORD "\n" NEW_PASSWORD "\n", &out, &err, "passwd", "--password-fd",
	                    "3", NULL),
	             2);
	CHECK(has(err, "no more lines"));
	free2(&out, &err);
	/* passwd without a session says so before asking. */
	{
		char keep[300];

		memcpy(keep, session_path, sizeof(keep));
		path_in_tmp(session_path, sizeof(session_path), "s4/none");
		CHECK_EQ_INT(CTL(&out, &err, "passwd", NULL), 1);
		CHECK(has(err, "there is no session"));
		free2(&out, &err);
		memcpy(session_path, keep, sizeof(keep));
	}

	/* First login: the forced change, from lines 2 and 3. */
	fake_set(FAKE_OK, true, 100);
	CHECK_EQ_INT(CTL_PW(PASSWORD "\n" NEW_PASSWORD "\n" NEW_PASSWORD "\n", &out, &err, "login",
	                    "alice", "--password-fd", "3", NULL),
	             0);
	s = seen();
	CHECK_EQ_INT(s.logins, 1);
	CHECK_EQ_INT(s.changes, 1);
	CHECK_STR(s.oldpw, PASSWORD);
	CHECK_STR(s.newpw, NEW_PASSWORD);
	CHECK(s.had_token);
	CHECK(has(out, "the password must be changed now"));
	CHECK(has(out, "password changed\n"));
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	fake_set(FAKE_OK, true, 100);
	CHECK_EQ_INT(CTL_PW(PASSWORD "\n" NEW_PASSWORD "\n" NEW_PASSWORD "\n", &out, &err, "--json",
	                    "login", "alice", "--password-fd", "3", NULL),
	             0);
	CHECK(has(out, "\"must_change_password\":true,\"password_changed\":true"));
	CHECK(json_valid(out) == 0);
	free2(&out, &err);
	/* The forced change fails (no more lines): logged in, told to run passwd. */
	fake_set(FAKE_OK, true, 100);
	CHECK_EQ_INT(
	    CTL_PW(PASSWORD "\n", &out, &err, "login", "alice", "--password-fd", "3", NULL), 2);
	CHECK(has(err, "logged in, but the password is not changed yet: run tkmctl passwd"));
	CHECK_EQ_INT(mode_of(session_path), 0600);
	free2(&out, &err);
	fake_set(FAKE_OK, true, 100);
	CHECK_EQ_INT(CTL_PW(PASSWORD "\n", &out, &err, "--json", "login", "alice", "--password-fd",
	                    "3", NULL),
	             2);
	CHECK(has(out,
	          "{\"error\":{\"code\":\"invalid_argument\",\"message\":\"--password-fd 3: "
	          "no more lines (a password per line)\"}}\n{\"principal\":\"operator:alice\""));
	CHECK(has(out, "\"must_change_password\":true,\"password_changed\":false,"));
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	/* tkmd not there: no password is read (the line stays in the pipe), exit 3. */
	{
		char keep[300];

		memcpy(keep, fake.url, sizeof(keep));
		CHECK(snprintf(fake.url, sizeof(fake.url), "ipc://%s/nobody.sock", tmpdir) > 0);
		CHECK_EQ_INT(
		    CTL_PW(PASSWORD "\n", &out, &err, "login", "alice", "--password-fd", "3", NULL),
		    3);
		CHECK(no_secrets(out, err));
		free2(&out, &err);
		memcpy(fake.url, keep, sizeof(keep));
	}

	/* No terminal and no --password-fd: refused, not read from stdin. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(ctl_how(&(how){.no_tty = true, .stdin_s = PASSWORD "\n"}, &out, &err, "login",
	                     "alice", NULL),
	             2);
	CHECK(has(err, "no terminal to ask for the password on"));
	CHECK_EQ_INT(seen().logins, 0);
	free2(&out, &err);
}

/* A password is never taken from the command line, and never shown back. */
static void test_password_not_argument(void)
{
	char *out = NULL, *err = NULL;
	const char *argv[] = {TKM_TKMCTL_PATH, "--url", fake.url, "--password=hunter2secret",
	                      "login",         "alice", NULL};
	how h = {0};

	path_in_tmp(session_path, sizeof(session_path), "s5/session");
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "login", "alice", "hunter2secret", NULL), 2);
	CHECK(no_secrets(out, err));
	CHECK(has(err, "passwords are never taken as arguments"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "login", "alice", "--password", "hunter2secret", NULL), 2);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "login", "alice", "--password=hunter2secret", NULL), 2);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "login", "alice", "-phunter2secret", NULL), 2);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "passwd", "hunter2secret", NULL), 2);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "passwd", "--new=hunter2secret", NULL), 2);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK_EQ_INT(run_how(&h, argv, &out, &err), 2);
	CHECK(no_secrets(out, err));
	CHECK(has(err, "unknown option (its value is not shown): --password"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "create", "bob", "--secret=hunter2secret", NULL),
	             2);
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK_EQ_INT(seen().calls, 0);
}

/* Every mutating command reports a pending approval the same way. */
static void test_pending(void)
{
	static const char *const cmds[][6] = {
	    {"operator", "create", "bob", "--role", "admin", NULL},
	    {"operator", "reset-password", "bob", NULL},
	    {"operator", "unlock", "bob", NULL},
	    {"operator", "disable", "bob", NULL},
	    {"operator", "enable", "bob", NULL},
	    {"role", "assign", "bob", "admin", NULL},
	    {"role", "revoke", "device:st-1", "admin", NULL},
	};
	const char *want = "pending approval 42 (expires 2026-11-23T10:00:00Z): a second operator "
	                   "runs tkmctl approvals approve 42\n";
	char *out = NULL, *err = NULL, policy[300];

	path_in_tmp(session_path, sizeof(session_path), "s6/session");
	CHECK(login_ok());
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		fake_set(FAKE_PENDING, false, 100);
		CHECK_EQ_INT(CTL(&out, &err, cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3],
		                 cmds[i][4], NULL),
		             0);
		CHECK_STR(out, want);
		CHECK(seen().had_token);
		free2(&out, &err);
		CHECK_EQ_INT(CTL(&out, &err, "--json", cmds[i][0], cmds[i][1], cmds[i][2],
		                 cmds[i][3], cmds[i][4], NULL),
		             0);
		CHECK(has(out, "{\"status\":\"pending\",\"method\":\""));
		CHECK(has(out, "\"approval_id\":42,\"expires_ms\":1795428000000,\"expires\":"
		               "\"2026-11-23T10:00:00Z\"}\n"));
		CHECK(json_valid(out) == 0);
		free2(&out, &err);
		/* A malformed pending reply: invalid, exit 1, nothing on stdout. */
		fake_set(FAKE_PENDING_BAD, false, 100);
		CHECK_EQ_INT(CTL(&out, &err, cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3],
		                 cmds[i][4], NULL),
		             1);
		CHECK(has(err, "invalid reply: 'approval_id' is missing"));
		CHECK_STR(out, "");
		free2(&out, &err);
		fake_set(FAKE_PENDING_EXTRA, false, 100);
		CHECK_EQ_INT(CTL(&out, &err, cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3],
		                 cmds[i][4], NULL),
		             1);
		CHECK(has(err, "a pending reply holds status, approval_id and expires_ms only"));
		free2(&out, &err);
	}
	/* policy apply, and passwd. */
	path_in_tmp(policy, sizeof(policy), "changed.policy");
	{
		char *text = read_file(TKM_DEFAULT_POLICY);
		/* One more allow rule for auditor. */
		char *p = strstr(text, "\"audit.export\"");

		CHECK(p != NULL);
		if (p != NULL) {
			FILE *f = fopen(policy, "w");

			CHECK(f != NULL);
			if (f != NULL) {
				fwrite(text, 1, (size_t)(p - text), f);
				fputs("\"audit.export\", \"audit.checkpoint\"", f);
				fputs(p + strlen("\"audit.export\""), f);
				fclose(f);
			}
		}
		free(text);
	}
	fake_set(FAKE_PENDING, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "apply", policy, NULL), 0);
	CHECK(has(out,
	          "proposing 1 change to policy version 3:\n+ auditor allow audit.checkpoint\n"));
	CHECK(has(out, want));
	CHECK_EQ_INT(seen().base_version, 3);
	free2(&out, &err);
	fake_set(FAKE_PENDING, false, 100);
	CHECK_EQ_INT(CTL_PW(PASSWORD "\n" NEW_PASSWORD "\n" NEW_PASSWORD "\n", &out, &err, "passwd",
	                    "--password-fd", "3", NULL),
	             0);
	CHECK_STR(out, want);
	free2(&out, &err);
}

static void test_operator(void)
{
	char *out = NULL, *err = NULL;
	fake_seen s;

	path_in_tmp(session_path, sizeof(session_path), "s7/session");
	CHECK(login_ok());
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(
	    CTL(&out, &err, "operator", "create", "bob", "--role", "admin", "--role=auditor", NULL),
	    0);
	s = seen();
	CHECK_STR(s.user, "bob");
	CHECK_EQ_INT(s.nroles, 2);
	CHECK(has(out, "operator bob created; its one-time password:\n\n    " OTP "\n\n"));
	CHECK_EQ_INT(count_of(out, OTP), 1);
	CHECK(!has(err, OTP));
	CHECK(no_secrets(out, err));
	free2(&out, &err);
	CHECK_EQ_INT(
	    CTL(&out, &err, "--json", "operator", "create", "bob", "--role", "admin", NULL), 0);
	CHECK_STR(out, "{\"username\":\"bob\",\"one_time_password\":\"" OTP "\"}\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "create", "bob", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "reset-password", "bob", NULL), 0);
	CHECK(has(out, "operator bob: password reset; the one-time password:\n\n    " OTP));
	CHECK_EQ_INT(count_of(out, OTP), 1);
	free2(&out, &err);
	fake_set(FAKE_NO_FIELD, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "create", "bob", "--role", "admin", NULL), 1);
	CHECK(has(err, "operator.create: invalid reply: 'one_time_password' is missing"));
	CHECK_STR(out, "");
	free2(&out, &err);

	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "unlock", "bob", NULL), 0);
	CHECK_STR(out, "operator bob unlocked\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "operator", "disable", "bob", NULL), 0);
	CHECK_STR(out, "{\"username\":\"bob\",\"state\":\"disabled\"}\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "enable", "bob", "extra", NULL), 2);
	free2(&out, &err);

	/* show */
	CHECK_EQ_INT(CTL(&out, &err, "operator", "show", "bob", NULL), 0);
	CHECK_STR(out, "username              bob\n"
	               "roles                 admin, key-custodian [site:paris-1]\n"
	               "state                 active\n"
	               "failed logins         3\n"
	               "password changed      2026-11-23T10:00:00Z\n"
	               "created               2026-11-23T10:00:00Z\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "operator", "show", "bob", NULL), 0);
	CHECK(json_valid(out) == 0);
	free2(&out, &err);
	fake_set(FAKE_BAD_TYPE, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "show", "bob", NULL), 1);
	CHECK(has(err, "'failed_logins' is missing or not an unsigned integer"));
	CHECK_STR(out, "");
	free2(&out, &err);
	fake_set(FAKE_EVIL, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "show", "bob", NULL), 0);
	CHECK(!has(out, "\x1b"));
	CHECK(has(out, "bob?[31m"));
	free2(&out, &err);

	/* list: five operators in pages of two. */
	fake_set(FAKE_OK, false, 2);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "list", NULL), 0);
	CHECK(has(out, "USERNAME          STATE            FAILED  PASSWORD CHANGED      CREATED"));
	CHECK_EQ_INT(count_of(out, "\nop0"), 5);
	CHECK(has(out, "op02              disabled"));
	CHECK_STR(seen().after, "op04");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "operator", "list", "--limit", "3", NULL), 0);
	CHECK(json_valid(out) == 0);
	CHECK_EQ_INT(count_of(out, "\"username\""), 3);
	CHECK(has(out, "],\"next\":\"op03\"}\n"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "list", "--after", "op03", NULL), 0);
	CHECK_EQ_INT(count_of(out, "\nop0"), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "list", "--limit", "1", NULL), 0);
	CHECK(has(err, "more operators follow: tkmctl operator list --after op01"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "list", "--limit", "0", NULL), 2);
	free2(&out, &err);
	/* A cursor that goes back: refused, and nothing printed. */
	fake_set(FAKE_BAD_NEXT, false, 2);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "list", NULL), 1);
	CHECK(has(err, "'next' is not the last username of the page"));
	CHECK_STR(out, "");
	free2(&out, &err);
	fake_set(FAKE_NOT_MAP, false, 2);
	CHECK_EQ_INT(CTL(&out, &err, "operator", "list", NULL), 1);
	CHECK(has(err, "the result is not a map"));
	free2(&out, &err);
}

static void test_role(void)
{
	char *out = NULL, *err = NULL;

	path_in_tmp(session_path, sizeof(session_path), "s8/session");
	CHECK(login_ok());
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "role", "assign", "st-1", "provisioning-station", "--scope",
	                 "site:paris-1", NULL),
	             0);
	CHECK_STR(seen().principal, "operator:st-1");
	CHECK_STR(seen().scope, "site:paris-1");
	CHECK_STR(out,
	          "role provisioning-station assigned to operator:st-1 [scope site:paris-1]\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "role", "revoke", "device:st-1", "admin", NULL), 0);
	CHECK_STR(seen().principal, "device:st-1");
	CHECK_STR(out, "{\"principal\":\"device:st-1\",\"role\":\"admin\",\"revoked\":true}\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "role", "revoke", "bob", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "role", "revoke", "bob", "admin", "--scope", "x", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "role", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "role", "frob", NULL), 2);
	free2(&out, &err);
}

static void test_policy(void)
{
	char *out = NULL, *err = NULL, same[300], broken[300], changed[300];

	path_in_tmp(session_path, sizeof(session_path), "s9/session");
	CHECK(login_ok());
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "show", NULL), 0);
	CHECK_STR(out, fake.policy);
	CHECK_STR(err, "policy version 3\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "policy", "show", NULL), 0);
	CHECK(json_valid(out) == 0);
	CHECK(has(out, "{\"version\":3,\"text\":\""));
	free2(&out, &err);

	/* diff: the same policy with other comments is equal (exit 0). */
	path_in_tmp(same, sizeof(same), "same.policy");
	{
		char *text = read_file(TKM_DEFAULT_POLICY);
		size_t n = strlen(text);
		char *more = malloc(n + 64);

		CHECK(more != NULL);
		if (more != NULL) {
			memcpy(more, "# a comment that changes nothing\n", 33);
			memcpy(more + 33, text, n + 1);
			CHECK(write_file(same, more, strlen(more), 0600) == 0);
		}
		free(more);
		free(text);
	}
	CHECK_EQ_INT(CTL(&out, &err, "policy", "diff", same, NULL), 0);
	CHECK_STR(out, "");
	CHECK(has(err, " is the same as policy version 3\n"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "apply", same, NULL), 0);
	CHECK(has(out, "is the same as policy version 3: nothing to apply"));
	CHECK(strcmp(seen().method, "policy.show") == 0);
	free2(&out, &err);
	/* A change (made in test_pending): exit 1, the change shown. */
	path_in_tmp(changed, sizeof(changed), "changed.policy");
	CHECK_EQ_INT(CTL(&out, &err, "policy", "diff", changed, NULL), 1);
	CHECK_STR(out, "+ auditor allow audit.checkpoint\n");
	CHECK(has(err, "1 change from policy version 3 to "));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "policy", "diff", changed, NULL), 1);
	CHECK(json_valid(out) == 0);
	CHECK(has(out, "\"equal\":false,\"changes\":1,\"diff\":\"+ auditor allow "
	               "audit.checkpoint\\n\"}"));
	free2(&out, &err);
	/* apply without dual control: the new version. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "apply", changed, NULL), 0);
	CHECK(has(out, "policy version 4 is in effect\n"));
	CHECK_EQ_INT(seen().base_version, 3);
	CHECK(seen().text_len > 100);
	free2(&out, &err);
	/* A file that does not parse: exit 2 with the line, nothing sent. */
	path_in_tmp(broken, sizeof(broken), "broken.policy");
	CHECK(write_file(broken, "version = 1;\nroles = {\n  admin = { allow = ( 42 ); };\n};\n",
	                 55, 0600) == 0);
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "diff", broken, NULL), 2);
	CHECK(has(err, "broken.policy: line "));
	CHECK(has(err, " | "));
	CHECK_EQ_INT(seen().calls, 0);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "apply", broken, NULL), 2);
	CHECK_EQ_INT(seen().calls, 0);
	free2(&out, &err);
	CHECK(write_file(broken, "version = 1;\nroles = {\n  admin = {\n    allow = ( \"x\" \n", 50,
	                 0600) == 0);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "diff", broken, NULL), 2);
	CHECK(has(err, "line "));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "diff", "/nonexistent/file", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "policy", "diff", NULL), 2);
	free2(&out, &err);
}

static void test_approvals(void)
{
	char *out = NULL, *err = NULL;

	path_in_tmp(session_path, sizeof(session_path), "s10/session");
	CHECK(login_ok());
	/* list: three requests in pages of two, pending by default. */
	fake_set(FAKE_OK, false, 2);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "list", NULL), 0);
	CHECK(seen().has_state);
	CHECK_STR(seen().state, "pending");
	CHECK(has(out, "ID      STATE     METHOD                   INITIATOR             CREATED"));
	CHECK(has(out, "1       pending   operator.create          operator:alice        "
	               "2026-11-23T09:00:00Z  2026-11-23T10:00:00Z\n"
	               "        params: {\"roles\":[\"admin\"],\"username\":\"bob\"}\n"));
	CHECK(has(out, "        decided by operator:carol\n"));
	CHECK_EQ_INT(count_of(out, "params: "), 3);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "approvals", "list", "--all", NULL), 0);
	CHECK(!seen().has_state);
	CHECK(json_valid(out) == 0);
	CHECK(has(out, "{\"approvals\":[{\"id\":1,\"state\":\"pending\",\"method\":"
	               "\"operator.create\",\"initiator\":\"operator:alice\",\"created_ms\":"
	               "1795424400000,\"created\":\"2026-11-23T09:00:00Z\",\"expires_ms\":"
	               "1795428000000,\"expires\":\"2026-11-23T10:00:00Z\",\"decided_by\":null,"
	               "\"params\":{\"roles\":[\"admin\"],\"username\":\"bob\"}},"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "list", "--state", "rejected", NULL), 0);
	CHECK_STR(seen().state, "rejected");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "list", "--state", "x", "--all", NULL), 2);
	free2(&out, &err);
	fake_set(FAKE_EVIL, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "list", NULL), 0);
	CHECK(!has(out, "\x1b"));
	CHECK(!has(out, "\x07"));
	CHECK(has(out, "\"username\":\"x\\u001b[2Jy\""));
	free2(&out, &err);
	fake_set(FAKE_BAD_NEXT, false, 2);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "list", NULL), 1);
	CHECK(has(err, "'next' is not the id of the page's last request"));
	CHECK_STR(out, "");
	free2(&out, &err);

	/* approve: the one-time password of an approved operator.create, once. */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "approve", "5", NULL), 0);
	CHECK(has(out, "request 5 executed: operator bob, one-time password:\n\n    " OTP "\n"));
	CHECK_EQ_INT(count_of(out, OTP), 1);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "approvals", "approve", "5", NULL), 0);
	CHECK_STR(out, "{\"id\":5,\"state\":\"executed\",\"result\":{\"username\":\"bob\","
	               "\"one_time_password\":\"" OTP "\"}}\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "approve", "7", NULL), 0);
	CHECK_STR(out, "request 7 executed: policy version 4 is in effect\n");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "approve", "8", NULL), 0);
	CHECK_STR(out, "request 8 executed\n");
	free2(&out, &err);
	fake_set(FAKE_FAILED, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "approve", "5", NULL), 1);
	CHECK_STR(err, "tkmctl: request 5 failed: already_exists: operator 'bob' exists\n");
	CHECK_STR(out, "");
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "--json", "approvals", "approve", "5", NULL), 1);
	CHECK_STR(out, "{\"id\":5,\"state\":\"failed\",\"error\":{\"code\":\"already_exists\","
	               "\"message\":\"operator 'bob' exists\"}}\n");
	free2(&out, &err);
	fake_set(FAKE_BAD_TYPE, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "approve", "5", NULL), 1);
	CHECK(has(err, "'id' is not the request approved"));
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "approve", "0", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "approve", "x", NULL), 2);
	free2(&out, &err);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "approve", "99999999999999999999", NULL), 2);
	free2(&out, &err);

	/* reject */
	fake_set(FAKE_OK, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "reject", "6", NULL), 0);
	CHECK_STR(out, "request 6 rejected\n");
	free2(&out, &err);
	fake_set(FAKE_BAD_TYPE, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "approvals", "reject", "6", NULL), 1);
	free2(&out, &err);
}

/* Strict decoding of the login and whoami replies. */
static void test_strict(void)
{
	char *out = NULL, *err = NULL;
	static const fake_mode modes[] = {FAKE_NO_FIELD, FAKE_BAD_TYPE, FAKE_NOT_MAP};

	path_in_tmp(session_path, sizeof(session_path), "s11/session");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		fake_set(modes[i], false, 100);
		CHECK_EQ_INT(
		    CTL_PW(PASSWORD "\n", &out, &err, "login", "alice", "--password-fd", "3", NULL),
		    1);
		CHECK(has(err, "auth.login: invalid reply: "));
		CHECK(access(session_path, F_OK) != 0);
		CHECK(no_secrets(out, err));
		free2(&out, &err);
	}
	CHECK(login_ok());
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		fake_set(modes[i], false, 100);
		CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 1);
		CHECK(has(err, "auth.whoami: invalid reply: "));
		CHECK_STR(out, "");
		free2(&out, &err);
	}
	fake_set(FAKE_EVIL, false, 100);
	CHECK_EQ_INT(CTL(&out, &err, "whoami", NULL), 0);
	CHECK(!has(out, "\x1b"));
	free2(&out, &err);
}

/* ---- The terminal prompt, on a pseudo-terminal ---- */

/* Read from the master until want shows up or ms pass; what came is appended to buf. */
static bool pty_wait(int master, const char *want, char *buf, size_t cap, int ms)
{
	size_t n = strlen(buf);

	for (int waited = 0; waited < ms && strstr(buf, want) == NULL; waited += 20) {
		struct pollfd p = {master, POLLIN, 0};

		if (poll(&p, 1, 20) == 1 && (p.revents & POLLIN) != 0 && n + 1 < cap) {
			ssize_t r = read(master, buf + n, cap - n - 1);

			if (r > 0) {
				n += (size_t)r;
				buf[n] = '\0';
			}
		}
	}
	return strstr(buf, want) != NULL;
}

static bool echo_on(int slave)
{
	struct termios t;

	return tcgetattr(slave, &t) == 0 && (t.c_lflag & ECHO) != 0;
}

/* tkmctl login on a pty: returns the child's pid, with master and (our) slave open. */
static pid_t pty_login(int *master, int *slave)
{
	const char *argv[] = {TKM_TKMCTL_PATH, "--url", fake.url, "--session",
	                      session_path,    "login", "alice",  NULL};
	char opath[300], epath[300], *name;
	char bufs[4][512];
	char *envp[64];
	how h = {0};
	pid_t pid;

	*master = posix_openpt(O_RDWR | O_NOCTTY);
	if (*master < 0 || grantpt(*master) != 0 || unlockpt(*master) != 0 ||
	    (name = ptsname(*master)) == NULL) {
		return -1;
	}
	/* Ours, to look at its settings; O_NOCTTY keeps it from becoming our terminal. */
	*slave = open(name, O_RDWR | O_NOCTTY);
	if (*slave < 0) {
		return -1;
	}
	path_in_tmp(opath, sizeof(opath), "pty.out");
	path_in_tmp(epath, sizeof(epath), "pty.err");
	child_env(&h, envp, sizeof(envp) / sizeof(envp[0]), bufs);
	pid = fork();
	if (pid == 0) {
		int t, o, e;

		if (setsid() < 0 || (t = open(name, O_RDWR)) < 0) {
			_exit(127);
		}
		o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (o < 0 || e < 0 || dup2(t, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) {
			_exit(127);
		}
		execve(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	return pid;
}

static int wait_status(pid_t pid)
{
	int status = -1;

	if (waitpid(pid, &status, 0) != pid) {
		return -1;
	}
	return WIFEXITED(status)     ? WEXITSTATUS(status)
	       : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
	                             : -1;
}

static void test_tty(void)
{
	char buf[4096] = "";
	int master = -1, slave = -1;
	pid_t pid;

	path_in_tmp(session_path, sizeof(session_path), "s12/session");
	/* Typed at the prompt: echo off while reading, on again after, nothing echoed. */
	fake_set(FAKE_OK, false, 100);
	pid = pty_login(&master, &slave);
	CHECK(pid > 0);
	if (pid <= 0) {
		return;
	}
	CHECK(echo_on(slave));
	CHECK(pty_wait(master, "Password: ", buf, sizeof(buf), 10000));
	CHECK(!echo_on(slave));
	CHECK(write(master, PASSWORD "\n", strlen(PASSWORD) + 1) == (ssize_t)strlen(PASSWORD) + 1);
	CHECK_EQ_INT(wait_status(pid), 0);
	CHECK(echo_on(slave));
	(void)pty_wait(master, "\n", buf, sizeof(buf), 200);
	CHECK(!has(buf, PASSWORD));
	CHECK_STR(seen().pw, PASSWORD);
	CHECK_EQ_INT(mode_of(session_path), 0600);
	close(master);
	close(slave);

	/* SIGINT at the prompt: tkmctl dies of it, with echo back on. */
	buf[0] = '\0';
	fake_set(FAKE_OK, false, 100);
	pid = pty_login(&master, &slave);
	CHECK(pid > 0);
	if (pid <= 0) {
		return;
	}
	CHECK(pty_wait(master, "Password: ", buf, sizeof(buf), 10000));
	CHECK(!echo_on(slave));
	CHECK(write(master, "half", 4) == 4);
	CHECK(kill(pid, SIGINT) == 0);
	CHECK_EQ_INT(wait_status(pid), 128 + SIGINT);
	CHECK(echo_on(slave));
	CHECK_EQ_INT(seen().logins, 0);
	close(master);
	close(slave);

	/* The forced change at the terminal: a mismatch, then a second try that works. */
	buf[0] = '\0';
	fake_set(FAKE_OK, true, 100);
	pid = pty_login(&master, &slave);
	CHECK(pid > 0);
	if (pid <= 0) {
		return;
	}
	CHECK(pty_wait(master, "Password: ", buf, sizeof(buf), 10000));
	CHECK(write(master, PASSWORD "\n", strlen(PASSWORD) + 1) == (ssize_t)strlen(PASSWORD) + 1);
	CHECK(pty_wait(master, "New password: ", buf, sizeof(buf), 10000));
	CHECK(!echo_on(slave));
	CHECK(write(master, NEW_PASSWORD "\n", strlen(NEW_PASSWORD) + 1) > 0);
	CHECK(pty_wait(master, "New password again: ", buf, sizeof(buf), 10000));
	CHECK(write(master, "not the same\n", 13) == 13);
	buf[0] = '\0';
	CHECK(pty_wait(master, "New password: ", buf, sizeof(buf), 10000));
	CHECK(write(master, NEW_PASSWORD "\n", strlen(NEW_PASSWORD) + 1) > 0);
	CHECK(pty_wait(master, "New password again: ", buf, sizeof(buf), 10000));
	CHECK(write(master, NEW_PASSWORD "\n", strlen(NEW_PASSWORD) + 1) > 0);
	CHECK_EQ_INT(wait_status(pid), 0);
	CHECK(echo_on(slave));
	CHECK_EQ_INT(seen().changes, 1);
	CHECK_STR(seen().newpw, NEW_PASSWORD);
	{
		char path[300], *text;

		path_in_tmp(path, sizeof(path), "pty.err");
		text = read_file(path);
		CHECK(has(text, "the two new passwords differ\ntkmctl: try another password\n"));
		CHECK(no_secrets(NULL, text));
		free(text);
		path_in_tmp(path, sizeof(path), "pty.out");
		text = read_file(path);
		CHECK(has(text, "password changed\n"));
		free(text);
	}
	close(master);
	close(slave);

	/* Ctrl-C typed on the terminal does the same. */
	buf[0] = '\0';
	pid = pty_login(&master, &slave);
	CHECK(pid > 0);
	if (pid <= 0) {
		return;
	}
	CHECK(pty_wait(master, "Password: ", buf, sizeof(buf), 10000));
	CHECK(write(master, "\x03", 1) == 1);
	CHECK_EQ_INT(wait_status(pid), 128 + SIGINT);
	CHECK(echo_on(slave));
	close(master);
	close(slave);
}

int main(void)
{
	char home[300];

	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	randombytes_buf(token, sizeof(token));
	sodium_bin2hex(token_hex, sizeof(token_hex), token, sizeof(token));
	path_in_tmp(home, sizeof(home), "home");
	if (mkdir(home, 0700) != 0 || !fake_start()) {
		fprintf(stderr, "cannot start the fake tkmd\n");
		CHECK(false);
	} else {
		test_login_session_file();
		test_session_refused();
		test_session_url();
		test_session_defaults();
		test_password_fd();
		test_password_not_argument();
		test_pending();
		test_operator();
		test_role();
		test_policy();
		test_approvals();
		test_strict();
		test_tty();
		fake_stop();
	}
	{
		char cmd[300];
		int r = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);

		if (r > 0 && (size_t)r < sizeof(cmd) && system(cmd) != 0) {
			fprintf(stderr, "cannot remove %s\n", tmpdir);
		}
	}
	return tkm_test_report("tkmctl_auth");
}
