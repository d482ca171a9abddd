/*
 * tkm_testenv.c - a throwaway tkmd for integration tests (see tkm_testenv.h).
 *
 * Children (softhsm2-util, tkmd-test, tools under test) are started with
 * posix_spawn and an explicit environment, never through a shell, so no path
 * or argument is ever parsed twice. Everything the harness makes lives in one
 * mkdtemp() directory that it removes at the end.
 */
#include "tkm_testenv.h"
#include "tkm_cbor.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#ifndef TKM_TKMD_TEST_PATH
#error "TKM_TKMD_TEST_PATH (the tkmd-test binary) must be defined by the build"
#endif
#ifndef TKM_SOFTHSM2_UTIL
#define TKM_SOFTHSM2_UTIL "softhsm2-util"
#endif
#ifndef TKM_SOFTHSM_MODULE
#define TKM_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

#define TESTENV_READY_MS  15000
#define TESTENV_STOP_MS   20000
#define TESTENV_NPORTS    3
#define TESTENV_OPERATORS 16

extern char **environ;

struct tkm_testenv {
	char dir[256];
	char softhsm_conf[300];
	char log_path[300];
	char ipc_url[300];
	char tcp_url[64];
	uint16_t ports[TESTENV_NPORTS]; /* tcp, tls, spare */
	char **envp;                    /* environ with our SOFTHSM2_CONF */
	pid_t pid;                      /* running tkmd-test, or -1 */
	int exit_status;                /* of the last tkmd that exited by itself */
	struct {
		char username[64];
		char password[64]; /* test passwords: not secret */
		uint8_t token[32];
		bool has_token;
	} ops[TESTENV_OPERATORS];
	size_t nops;
};

/* ---- Small helpers ---- */

uint64_t tkm_testenv_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void tkm_testenv_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		;
	}
}

/* snprintf into a fixed buffer; false (and a message) when it does not fit. */
static bool testenv_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool testenv_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "testenv: path or text too long for its buffer (%d bytes)\n", n);
		return false;
	}
	return true;
}

/* vsnprintf into a malloc'd string; NULL when out of memory. */
static char *testenv_aprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *testenv_aprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL) {
		return NULL;
	}
	va_start(ap, fmt);
	if (vsnprintf(s, (size_t)n + 1, fmt, ap) != n) {
		free(s);
		s = NULL;
	}
	va_end(ap);
	return s;
}

char *tkm_testenv_read_file(const char *path, size_t *len)
{
	FILE *f = NULL;
	char *buf = NULL, *grown;
	size_t cap = 0, used = 0, n;

	if ((f = fopen(path, "rb")) == NULL) {
		return NULL;
	}
	for (;;) {
		if (cap - used < 4096) {
			cap = cap == 0 ? 8192 : cap * 2;
			if ((grown = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				buf = NULL;
				goto out;
			}
			buf = grown;
		}
		n = fread(buf + used, 1, cap - used, f);
		used += n;
		if (n == 0) {
			break;
		}
	}
	if (ferror(f)) {
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[used] = '\0';
	if (len != NULL) {
		*len = used;
	}
out:
	fclose(f);
	return buf;
}

static bool testenv_write_file(const char *path, const char *text)
{
	FILE *f;
	size_t len = strlen(text);
	bool ok;

	if ((f = fopen(path, "w")) == NULL) {
		fprintf(stderr, "testenv: %s: %s\n", path, strerror(errno));
		return false;
	}
	ok = fwrite(text, 1, len, f) == len;
	if (fclose(f) != 0) {
		ok = false;
	}
	if (!ok) {
		fprintf(stderr, "testenv: %s: write failed\n", path);
	}
	return ok;
}

/* Remove path and everything under it; does not follow symbolic links. */
static void testenv_rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char child[1024];

	if (lstat(path, &st) != 0) {
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		(void)unlink(path);
		return;
	}
	if ((d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
				continue;
			}
			if (testenv_fmt(child, sizeof(child), "%s/%s", path, e->d_name)) {
				testenv_rm_rf(child);
			}
		}
		closedir(d);
	}
	(void)rmdir(path);
}

/* Three distinct loopback ports, free at the moment (held open together). */
static bool testenv_pick_ports(uint16_t ports[TESTENV_NPORTS])
{
	int fds[TESTENV_NPORTS];
	bool ok = true;
	size_t i;

	for (i = 0; i < TESTENV_NPORTS; i++) {
		fds[i] = -1;
	}
	for (i = 0; i < TESTENV_NPORTS && ok; i++) {
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);

		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = 0;
		if ((fds[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    getsockname(fds[i], (struct sockaddr *)&sa, &sl) != 0) {
			fprintf(stderr, "testenv: picking a free port: %s\n", strerror(errno));
			ok = false;
			break;
		}
		ports[i] = ntohs(sa.sin_port);
	}
	for (i = 0; i < TESTENV_NPORTS; i++) {
		if (fds[i] >= 0) {
			close(fds[i]);
		}
	}
	return ok;
}

/*
 * environ without SOFTHSM2_CONF and TKM_SESSION_FILE, plus ours: tkmctl run
 * by a test uses DIR/tkmctl.session (tkm_testenv_session_file writes it),
 * never the session file of the person running the tests.
 */
static char **testenv_make_envp(const char *dir, const char *softhsm_conf)
{
	size_t n = 0, j = 0;
	char **envp;

	while (environ != NULL && environ[n] != NULL) {
		n++;
	}
	if ((envp = calloc(n + 3, sizeof(*envp))) == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], "SOFTHSM2_CONF=", 14) == 0 ||
		    strncmp(environ[i], "TKM_SESSION_FILE=", 17) == 0) {
			continue;
		}
		envp[j++] = environ[i];
	}
	/* The two strings this array owns; freed in tkm_testenv_free(). */
	if ((envp[j] = testenv_aprintf("SOFTHSM2_CONF=%s", softhsm_conf)) == NULL ||
	    (envp[j + 1] = testenv_aprintf("TKM_SESSION_FILE=%s/tkmctl.session", dir)) == NULL) {
		free(envp[j]);
		free(envp);
		return NULL;
	}
	j++;
	envp[j + 1] = NULL;
	return envp;
}

static void testenv_free_envp(char **envp)
{
	size_t i;

	if (envp == NULL) {
		return;
	}
	for (i = 0; envp[i] != NULL; i++) {
		if (strncmp(envp[i], "SOFTHSM2_CONF=", 14) == 0 ||
		    strncmp(envp[i], "TKM_SESSION_FILE=", 17) == 0) {
			free(envp[i]);
		}
	}
	free(envp);
}

/* Decode a wait status into the convention of tkm_testenv_stop(). */
static int testenv_status(int ws)
{
	if (WIFEXITED(ws)) {
		return WEXITSTATUS(ws);
	}
	if (WIFSIGNALED(ws)) {
		return 128 + WTERMSIG(ws);
	}
	return TKM_TESTENV_KILLED;
}

/* Wait up to ms for pid; TKM_TESTENV_KILLED after killing it when it does not exit. */
static int testenv_wait(pid_t pid, int ms)
{
	uint64_t deadline = tkm_testenv_now_us() + (uint64_t)ms * 1000u;
	int ws;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &ws, WNOHANG);
		if (r == pid) {
			return testenv_status(ws);
		}
		if (r < 0 && errno != EINTR) {
			return TKM_TESTENV_KILLED;
		}
		if (tkm_testenv_now_us() >= deadline) {
			break;
		}
		tkm_testenv_sleep_ms(10);
	}
	fprintf(stderr, "testenv: pid %ld did not exit within %d ms; killing it\n", (long)pid, ms);
	(void)kill(pid, SIGKILL);
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
		;
	}
	return TKM_TESTENV_KILLED;
}

/*
 * Spawn argv with envp; stdin from /dev/null, stdout and stderr to the given
 * files (NULL: /dev/null), opened for appending when append is set.
 */
static tkm_err testenv_spawn(char *const envp[], const char *const argv[], const char *out_path,
                             const char *err_path, bool append, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
	int rv;

	if (posix_spawn_file_actions_init(&fa) != 0) {
		return TKM_E_NOMEM;
	}
	rv = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (rv == 0) {
		rv = posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null",
		                                      flags, 0600);
	}
	if (rv == 0 && err_path != NULL && out_path != NULL && strcmp(err_path, out_path) == 0) {
		rv = posix_spawn_file_actions_adddup2(&fa, 1, 2);
	} else if (rv == 0) {
		rv = posix_spawn_file_actions_addopen(&fa, 2, err_path ? err_path : "/dev/null",
		                                      flags, 0600);
	}
	if (rv == 0) {
		rv = posix_spawnp(pid, argv[0], &fa, NULL, (char *const *)argv, envp);
	}
	posix_spawn_file_actions_destroy(&fa);
	if (rv != 0) {
		fprintf(stderr, "testenv: cannot run %s: %s\n", argv[0], strerror(rv));
		return TKM_E_IO;
	}
	return TKM_OK;
}

/* ---- The environment ---- */

tkm_err tkm_testenv_new(tkm_testenv **out)
{
	tkm_testenv *env = NULL;
	const char *tmp = getenv("TMPDIR");
	char path[320], text[1024];
	int status;
	tkm_err err = TKM_E_IO;

	*out = NULL;
	if ((env = calloc(1, sizeof(*env))) == NULL) {
		return TKM_E_NOMEM;
	}
	env->pid = -1;
	if (tmp == NULL || tmp[0] == '\0') {
		tmp = "/tmp";
	}
	if (!testenv_fmt(env->dir, sizeof(env->dir), "%s/tkmtest.XXXXXX", tmp)) {
		goto out;
	}
	if (mkdtemp(env->dir) == NULL) {
		fprintf(stderr, "testenv: mkdtemp %s: %s\n", env->dir, strerror(errno));
		env->dir[0] = '\0';
		goto out;
	}
	if (!testenv_fmt(env->softhsm_conf, sizeof(env->softhsm_conf), "%s/softhsm2.conf",
	                 env->dir) ||
	    !testenv_fmt(env->log_path, sizeof(env->log_path), "%s/tkmd.log", env->dir) ||
	    !testenv_fmt(env->ipc_url, sizeof(env->ipc_url), "ipc://%s/tkmd.sock", env->dir)) {
		goto out;
	}
	/* sun_path holds 108 bytes; a long $TMPDIR would break the IPC listener. */
	if (strlen(env->ipc_url) - strlen("ipc://") >=
	    sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "testenv: %s is too long for a UNIX socket path\n", env->ipc_url);
		goto out;
	}
	if (!testenv_pick_ports(env->ports)) {
		goto out;
	}
	if (!testenv_fmt(env->tcp_url, sizeof(env->tcp_url), "tcp://127.0.0.1:%u",
	                 (unsigned)env->ports[0])) {
		goto out;
	}

	if (!testenv_fmt(path, sizeof(path), "%s/tokens", env->dir) || mkdir(path, 0700) != 0) {
		goto out;
	}
	if (!testenv_fmt(text, sizeof(text),
	                 "directories.tokendir = %s\n"
	                 "objectstore.backend = file\n"
	                 "log.level = ERROR\n"
	                 "slots.removable = false\n",
	                 path) ||
	    !testenv_write_file(env->softhsm_conf, text)) {
		goto out;
	}
	if ((env->envp = testenv_make_envp(env->dir, env->softhsm_conf)) == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}

	{
		const char *argv[] = {TKM_SOFTHSM2_UTIL,
		                      "--init-token",
		                      "--free",
		                      "--label",
		                      "tkm",
		                      "--so-pin",
		                      TKM_TESTENV_SO_PIN,
		                      "--pin",
		                      TKM_TESTENV_USER_PIN,
		                      NULL};
		if (!testenv_fmt(path, sizeof(path), "%s/softhsm2-util.out", env->dir)) {
			goto out;
		}
		if ((err = tkm_testenv_run(env, argv, path, path, 30000, &status)) != TKM_OK) {
			goto out;
		}
		if (status != 0) {
			char *o = tkm_testenv_read_file(path, NULL);
			fprintf(stderr, "testenv: softhsm2-util --init-token exited %d: %s\n",
			        status, o ? o : "");
			free(o);
			err = TKM_E_HSM;
			goto out;
		}
	}
	/* tkmd logs in with the user PIN from a file only its owner may read. */
	if (!testenv_fmt(path, sizeof(path), "%s/hsm-user.pin", env->dir) ||
	    !testenv_write_file(path, TKM_TESTENV_USER_PIN "\n") || chmod(path, 0600) != 0) {
		goto out;
	}
	*out = env;
	env = NULL;
	err = TKM_OK;
out:
	tkm_testenv_free(env);
	return err;
}

void tkm_testenv_free(tkm_testenv *env)
{
	const char *keep;

	if (env == NULL) {
		return;
	}
	if (env->pid > 0) {
		(void)tkm_testenv_stop(env, SIGTERM);
	}
	keep = getenv("TKM_TEST_KEEP");
	if (env->dir[0] != '\0') {
		if (keep != NULL && keep[0] != '\0' && strcmp(keep, "0") != 0) {
			fprintf(stderr, "testenv: keeping %s\n", env->dir);
		} else {
			testenv_rm_rf(env->dir);
		}
	}
	testenv_free_envp(env->envp);
	free(env);
}

const char *tkm_testenv_dir(const tkm_testenv *env)
{
	return env->dir;
}

const char *tkm_testenv_ipc_url(const tkm_testenv *env)
{
	return env->ipc_url;
}

const char *tkm_testenv_tcp_url(const tkm_testenv *env)
{
	return env->tcp_url;
}

uint16_t tkm_testenv_tcp_port(const tkm_testenv *env)
{
	return env->ports[0];
}

uint16_t tkm_testenv_tls_port(const tkm_testenv *env)
{
	return env->ports[1];
}

uint16_t tkm_testenv_spare_port(const tkm_testenv *env)
{
	return env->ports[2];
}

const char *tkm_testenv_log_path(const tkm_testenv *env)
{
	return env->log_path;
}

pid_t tkm_testenv_pid(const tkm_testenv *env)
{
	return env->pid;
}

char *tkm_testenv_config(const tkm_testenv *env, const char *listen, const char *extra)
{
	char *dflt = NULL, *text;

	if (listen == NULL) {
		if ((dflt = testenv_aprintf("\"%s\", \"%s\"", env->ipc_url, env->tcp_url)) ==
		    NULL) {
			return NULL;
		}
		listen = dflt;
	}
	text =
	    testenv_aprintf("# tkmd configuration made by the test harness\n"
	                    "listen = [%s];\n"
	                    "workers = 8;\n"
	                    "log_level = \"info\";\n"
	                    "hsm = {\n"
	                    "  module = \"%s\";\n"
	                    "  token = \"pkcs11:token=tkm\";\n"
	                    "  pin_file = \"%s/hsm-user.pin\";\n"
	                    "};\n"
	                    "database = {\n"
	                    "  path = \"%s/tkm.db\";\n"
	                    "};\n"
	                    "%s\n"
	                    "%s\n",
	                    listen, TKM_SOFTHSM_MODULE, env->dir, env->dir, extra ? extra : "",
	                    /* Cheap Argon2id unless the test sets its own auth group. */
	                    extra != NULL && strstr(extra, "auth") != NULL
	                        ? ""
	                        : "auth = { argon2_opslimit = 1; argon2_memlimit_kib = 8192; };");
	free(dflt);
	return text;
}

tkm_err tkm_testenv_client(const char *url, tkm_client **out)
{
	tkm_status st;
	tkm_err err;

	memset(&st, 0, sizeof(st));
	if ((err = tkm_client_open(url, NULL, &st, out)) != TKM_OK) {
		fprintf(stderr, "testenv: open %s: %s (%s)\n", url, tkm_strerror(err), st.message);
	}
	return err;
}

bool tkm_testenv_alive(tkm_testenv *env)
{
	int ws;
	pid_t r;

	if (env->pid <= 0) {
		return false;
	}
	r = waitpid(env->pid, &ws, WNOHANG);
	if (r == 0) {
		return true;
	}
	if (r == env->pid) {
		env->exit_status = testenv_status(ws);
	}
	env->pid = -1;
	return false;
}

/* One ping on a fresh connection, with a short timeout: is tkmd serving? */
static bool testenv_ping_once(const char *url)
{
	tkm_client *c = NULL;
	tkm_ping_result pr;
	bool ok;

	if (tkm_client_open(url, NULL, NULL, &c) != TKM_OK) {
		return false;
	}
	ok = tkm_ping(c, 1000, NULL, &pr) == TKM_OK && pr.pong;
	tkm_client_close(c);
	return ok;
}

tkm_err tkm_testenv_init(tkm_testenv *env, const char *config, int *status)
{
	char conf_path[320], out_path[320];
	const char *argv[] = {TKM_TKMD_TEST_PATH, "--init", "--config", conf_path, NULL};

	if (!testenv_fmt(conf_path, sizeof(conf_path), "%s/init.conf", env->dir) ||
	    !testenv_fmt(out_path, sizeof(out_path), "%s/init.out", env->dir) ||
	    !testenv_write_file(conf_path, config)) {
		return TKM_E_IO;
	}
	return tkm_testenv_run(env, argv, out_path, env->log_path, 30000, status);
}

/* The first start in an env initialises its database and token, as an operator would. */
static tkm_err testenv_init_once(tkm_testenv *env, const char *config)
{
	char db[320];
	struct stat sb;
	int status = -1;
	tkm_err err;

	if (!testenv_fmt(db, sizeof(db), "%s/tkm.db", env->dir)) {
		return TKM_E_IO;
	}
	if (stat(db, &sb) == 0) {
		return TKM_OK;
	}
	err = tkm_testenv_init(env, config, &status);
	if (err == TKM_OK && status != 0) {
		fprintf(stderr, "testenv: tkmd-test --init exited with status %d\n", status);
		tkm_testenv_dump_log(env);
		err = TKM_E_INTERNAL;
	}
	return err;
}

tkm_err tkm_testenv_start_config(tkm_testenv *env, const char *config)
{
	char conf_path[320];
	const char *argv[] = {TKM_TKMD_TEST_PATH, "--config", conf_path, NULL};
	uint64_t deadline;
	tkm_err err;

	if (env->pid > 0) {
		fprintf(stderr, "testenv: tkmd already running\n");
		return TKM_E_INVALID_ARG;
	}
	if ((err = testenv_init_once(env, config)) != TKM_OK) {
		return err;
	}
	if (!testenv_fmt(conf_path, sizeof(conf_path), "%s/tkmd.conf", env->dir) ||
	    !testenv_write_file(conf_path, config)) {
		return TKM_E_IO;
	}
	if ((err = testenv_spawn(env->envp, argv, env->log_path, env->log_path, false,
	                         &env->pid)) != TKM_OK) {
		env->pid = -1;
		return err;
	}
	deadline = tkm_testenv_now_us() + TESTENV_READY_MS * 1000u;
	while (tkm_testenv_now_us() < deadline) {
		if (!tkm_testenv_alive(env)) {
			fprintf(stderr, "testenv: tkmd exited at start-up with status %d\n",
			        env->exit_status);
			tkm_testenv_dump_log(env);
			return TKM_E_CONNECT;
		}
		if (testenv_ping_once(env->ipc_url)) {
			return TKM_OK;
		}
		tkm_testenv_sleep_ms(50);
	}
	fprintf(stderr, "testenv: tkmd does not answer a ping on %s after %d ms\n", env->ipc_url,
	        TESTENV_READY_MS);
	tkm_testenv_dump_log(env);
	(void)tkm_testenv_stop(env, SIGKILL);
	return TKM_E_TIMEOUT;
}

tkm_err tkm_testenv_start(tkm_testenv *env, const char *extra_listen, const char *extra_config)
{
	char *listen = NULL, *config = NULL;
	tkm_err err = TKM_E_NOMEM;

	if (extra_listen != NULL &&
	    (listen = testenv_aprintf("\"%s\", \"%s\", %s", env->ipc_url, env->tcp_url,
	                              extra_listen)) == NULL) {
		goto out;
	}
	if ((config = tkm_testenv_config(env, listen, extra_config)) == NULL) {
		goto out;
	}
	err = tkm_testenv_start_config(env, config);
out:
	free(listen);
	free(config);
	return err;
}

int tkm_testenv_stop(tkm_testenv *env, int sig)
{
	int status;

	if (env->pid <= 0) {
		return TKM_TESTENV_KILLED;
	}
	(void)kill(env->pid, sig);
	status = testenv_wait(env->pid, TESTENV_STOP_MS);
	env->pid = -1;
	env->exit_status = status;
	return status;
}

tkm_err tkm_testenv_run_config(tkm_testenv *env, const char *config, int timeout_ms, int *status)
{
	char conf_path[320];
	const char *argv[] = {TKM_TKMD_TEST_PATH, "--config", conf_path, NULL};

	if (!testenv_fmt(conf_path, sizeof(conf_path), "%s/run.conf", env->dir) ||
	    !testenv_write_file(conf_path, config)) {
		return TKM_E_IO;
	}
	return tkm_testenv_run(env, argv, env->log_path, env->log_path, timeout_ms, status);
}

tkm_err tkm_testenv_run(const tkm_testenv *env, const char *const argv[], const char *out_path,
                        const char *err_path, int timeout_ms, int *status)
{
	pid_t pid;
	tkm_err err;

	if ((err = testenv_spawn(env->envp, argv, out_path, err_path, false, &pid)) != TKM_OK) {
		return err;
	}
	*status = testenv_wait(pid, timeout_ms);
	return TKM_OK;
}

void tkm_testenv_dump_log(const tkm_testenv *env)
{
	char *log = tkm_testenv_read_file(env->log_path, NULL);

	fprintf(stderr, "---- %s ----\n%s---- end of log ----\n", env->log_path,
	        log ? log : "(unreadable)\n");
	free(log);
}

long tkm_testenv_rss_kib(const tkm_testenv *env)
{
	char path[64], *text, *p;
	long kib = -1;

	if (env->pid <= 0 || !testenv_fmt(path, sizeof(path), "/proc/%ld/status", (long)env->pid)) {
		return -1;
	}
	if ((text = tkm_testenv_read_file(path, NULL)) == NULL) {
		return -1;
	}
	if ((p = strstr(text, "\nVmRSS:")) != NULL) {
		kib = strtol(p + strlen("\nVmRSS:"), NULL, 10);
	}
	free(text);
	return kib;
}

/* ---- Operators ---- */

/* The slot of username, made if new; NULL when full. */
static size_t testenv_op(tkm_testenv *env, const char *username)
{
	for (size_t i = 0; i < env->nops; i++) {
		if (strcmp(env->ops[i].username, username) == 0) {
			return i;
		}
	}
	if (env->nops == TESTENV_OPERATORS || strlen(username) >= sizeof(env->ops[0].username)) {
		return SIZE_MAX;
	}
	memset(&env->ops[env->nops], 0, sizeof(env->ops[0]));
	memcpy(env->ops[env->nops].username, username, strlen(username) + 1);
	return env->nops++;
}

/* The one-time password tkmd --init printed for username (DIR/init.out). */
static bool testenv_init_otp(const tkm_testenv *env, const char *username, char *buf, size_t cap)
{
	char path[320], *text, *line;
	bool found = false;

	if (!testenv_fmt(path, sizeof(path), "%s/init.out", env->dir) ||
	    (text = tkm_testenv_read_file(path, NULL)) == NULL) {
		return false;
	}
	for (line = strtok(text, "\n"); line != NULL && !found; line = strtok(NULL, "\n")) {
		char user[64], role[64], otp[64];

		if (sscanf(line, " %63s %63s %63s", user, role, otp) == 3 &&
		    strcmp(user, username) == 0 && strlen(otp) < cap) {
			memcpy(buf, otp, strlen(otp) + 1);
			found = true;
		}
	}
	free(text);
	return found;
}

tkm_err tkm_testenv_set_password(tkm_testenv *env, const char *username, const char *password)
{
	size_t i = testenv_op(env, username);

	if (i == SIZE_MAX || strlen(password) >= sizeof(env->ops[0].password)) {
		return TKM_E_INVALID_ARG;
	}
	memcpy(env->ops[i].password, password, strlen(password) + 1);
	return TKM_OK;
}

/* Call method on c with a map of n text pairs; *doc gets the decoded result. */
static tkm_err testenv_call(tkm_client *c, const char *method, const char *const *kv, size_t n,
                            tkm_cbor_doc **doc, tkm_status *st)
{
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	uint8_t *res = NULL;
	size_t len = 0, rlen = 0;
	tkm_err err;

	*doc = NULL;
	if ((err = tkm_cbor_w_new(4096, &w)) != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(w, n);
	for (size_t i = 0; i < n; i++) {
		tkm_cbor_put_cstr(w, kv[2 * i]);
		tkm_cbor_put_cstr(w, kv[2 * i + 1]);
	}
	err = tkm_cbor_w_finish(w, &p, &len);
	if (err == TKM_OK) {
		err = tkm_call_raw(c, method, p, len, 30000, st, &res, &rlen);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_decode(res, rlen, &lim, doc, NULL, 0);
		tkm_free(res, rlen);
	}
	tkm_cbor_w_free(w);
	return err;
}

tkm_err tkm_testenv_login(tkm_testenv *env, const char *username, tkm_client **out)
{
	char otp[64];
	size_t i = testenv_op(env, username);
	tkm_client *c = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_status st;
	const uint8_t *tok = NULL;
	size_t tok_len = 0;
	bool must_change = false;
	tkm_err err;

	*out = NULL;
	if (i == SIZE_MAX) {
		return TKM_E_INVALID_ARG;
	}
	if (env->ops[i].password[0] == '\0') {
		if (!testenv_init_otp(env, username, otp, sizeof(otp))) {
			fprintf(stderr, "testenv: no one-time password for %s in init.out\n",
			        username);
			return TKM_E_NOT_FOUND;
		}
		memcpy(env->ops[i].password, otp, strlen(otp) + 1);
	}
	if ((err = tkm_testenv_client(env->ipc_url, &c)) != TKM_OK) {
		return err;
	}
	{
		const char *kv[] = {"password", env->ops[i].password, "username", username};

		memset(&st, 0, sizeof(st));
		err = testenv_call(c, "auth.login", kv, 2, &doc, &st);
	}
	if (err != TKM_OK) {
		fprintf(stderr, "testenv: login %s: %s (%s)\n", username, tkm_strerror(err),
		        st.message);
		goto out;
	}
	if (!tkm_cbor_get_bytes(tkm_cbor_map_get(tkm_cbor_root(doc), "token"), &tok, &tok_len) ||
	    tok_len != sizeof(env->ops[i].token) ||
	    !tkm_cbor_get_bool(tkm_cbor_map_get(tkm_cbor_root(doc), "must_change_password"),
	                       &must_change)) {
		err = TKM_E_PROTOCOL;
		goto out;
	}
	memcpy(env->ops[i].token, tok, tok_len);
	env->ops[i].has_token = true;
	if ((err = tkm_client_use_session(c, env->ops[i].token, &st)) != TKM_OK) {
		goto out;
	}
	if (must_change) {
		char fresh[64];
		const char *kv[4];

		tkm_cbor_doc_free(doc);
		doc = NULL;
		if (!testenv_fmt(fresh, sizeof(fresh), "Tt-%u-%s-Vq9",
		                 (unsigned)randombytes_random(), "pass")) {
			err = TKM_E_INTERNAL;
			goto out;
		}
		kv[0] = "new_password";
		kv[1] = fresh;
		kv[2] = "old_password";
		kv[3] = env->ops[i].password;
		err = testenv_call(c, "auth.change_password", kv, 2, &doc, &st);
		if (err != TKM_OK) {
			fprintf(stderr, "testenv: change password %s: %s (%s)\n", username,
			        tkm_strerror(err), st.message);
			goto out;
		}
		memcpy(env->ops[i].password, fresh, strlen(fresh) + 1);
	}
	*out = c;
	c = NULL;
out:
	tkm_cbor_doc_free(doc);
	tkm_client_close(c);
	return err;
}

tkm_err tkm_testenv_session_file(const tkm_testenv *env, const char *username, const char *path)
{
	char hex[65], line[128];

	for (size_t i = 0; i < env->nops; i++) {
		if (strcmp(env->ops[i].username, username) == 0 && env->ops[i].has_token) {
			for (size_t k = 0; k < 32; k++) {
				static const char digits[] = "0123456789abcdef";

				hex[2 * k] = digits[env->ops[i].token[k] >> 4];
				hex[2 * k + 1] = digits[env->ops[i].token[k] & 15];
			}
			hex[64] = '\0';
			if (!testenv_fmt(line, sizeof(line), "tkm-session %s\n", hex) ||
			    !testenv_write_file(path, line) || chmod(path, 0600) != 0) {
				return TKM_E_IO;
			}
			return TKM_OK;
		}
	}
	return TKM_E_NOT_FOUND;
}

tkm_err tkm_testenv_token(const tkm_testenv *env, const char *username, uint8_t token[32])
{
	for (size_t i = 0; i < env->nops; i++) {
		if (strcmp(env->ops[i].username, username) == 0 && env->ops[i].has_token) {
			memcpy(token, env->ops[i].token, 32);
			return TKM_OK;
		}
	}
	return TKM_E_NOT_FOUND;
}

tkm_err tkm_testenv_add_operator(tkm_testenv *env, const char *creator, const char *approver,
                                 const char *username, const char *role)
{
	tkm_client *c = NULL, *a = NULL;
	tkm_cbor_w *w = NULL;
	tkm_cbor_doc *doc = NULL;
	tkm_cbor_limits lim = tkm_cbor_default_limits();
	tkm_status st;
	const uint8_t *p;
	uint8_t *res = NULL;
	size_t len = 0, rlen = 0;
	uint64_t id = 0;
	const char *otp;
	size_t otp_len;
	char id_text[24], otp_buf[64];
	tkm_err err;

	memset(&st, 0, sizeof(st));
	err = tkm_testenv_login(env, creator, &c);
	if (err == TKM_OK) {
		err = tkm_testenv_login(env, approver, &a);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_new(1024, &w);
	}
	if (err != TKM_OK) {
		goto out;
	}
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "roles");
	tkm_cbor_put_array(w, 1);
	tkm_cbor_put_cstr(w, role);
	tkm_cbor_put_cstr(w, "username");
	tkm_cbor_put_cstr(w, username);
	err = tkm_cbor_w_finish(w, &p, &len);
	if (err == TKM_OK) {
		err = tkm_call_raw(c, "operator.create", p, len, 30000, &st, &res, &rlen);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_decode(res, rlen, &lim, &doc, NULL, 0);
		tkm_free(res, rlen);
		res = NULL;
	}
	if (err != TKM_OK ||
	    !tkm_cbor_get_uint(tkm_cbor_map_get(tkm_cbor_root(doc), "approval_id"), &id)) {
		fprintf(stderr, "testenv: operator.create %s: %s (%s)\n", username,
		        tkm_strerror(err), st.message);
		err = err != TKM_OK ? err : TKM_E_PROTOCOL;
		goto out;
	}
	tkm_cbor_doc_free(doc);
	doc = NULL;
	tkm_cbor_w_free(w);
	w = NULL;
	if ((err = tkm_cbor_w_new(64, &w)) != TKM_OK) {
		goto out;
	}
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	err = tkm_cbor_w_finish(w, &p, &len);
	if (err == TKM_OK) {
		err = tkm_call_raw(a, "approval.approve", p, len, 30000, &st, &res, &rlen);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_decode(res, rlen, &lim, &doc, NULL, 0);
		tkm_free(res, rlen);
	}
	if (err != TKM_OK ||
	    !tkm_cbor_get_text(tkm_cbor_map_get(tkm_cbor_map_get(tkm_cbor_root(doc), "result"),
	                                        "one_time_password"),
	                       &otp, &otp_len) ||
	    otp_len >= sizeof(otp_buf)) {
		fprintf(stderr, "testenv: approval %s of operator.create: %s (%s)\n",
		        testenv_fmt(id_text, sizeof(id_text), "%llu", (unsigned long long)id)
		            ? id_text
		            : "?",
		        tkm_strerror(err), st.message);
		err = err != TKM_OK ? err : TKM_E_PROTOCOL;
		goto out;
	}
	memcpy(otp_buf, otp, otp_len);
	otp_buf[otp_len] = '\0';
	err = tkm_testenv_set_password(env, username, otp_buf);
out:
	tkm_cbor_doc_free(doc);
	tkm_cbor_w_free(w);
	tkm_client_close(c);
	tkm_client_close(a);
	return err;
}
