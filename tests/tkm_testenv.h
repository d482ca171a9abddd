/*
 * tkm_testenv.h - a throwaway tkmd for integration tests.
 *
 * An environment is one temporary directory (under $TMPDIR or /tmp) holding
 * a SoftHSM2 configuration with a fresh token labelled "tkm", a tkmd
 * configuration, tkmd's database, its IPC socket and its stderr log. It picks
 * free loopback TCP ports, starts the test daemon tkmd-test (tkmd plus the
 * debug.sleep method) and waits until it answers a ping. Freeing it stops the
 * daemon and removes the directory; set TKM_TEST_KEEP=1 to keep the directory
 * for a post-mortem.
 *
 * The harness is test code: it talks to tkmd only through libtkm, signals and
 * files, as a user would, and it never reads tkmd's internals. It is not
 * thread-safe; tests create and stop environments from their main thread.
 */
#ifndef TKM_TESTENV_H
#define TKM_TESTENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tkm/client.h"

typedef struct tkm_testenv tkm_testenv;

/* The status a finished child reports through the stop and run calls. */
#define TKM_TESTENV_KILLED (-1) /* did not exit in time and was killed */

/* SoftHSM2 PINs of the test token; test-only, not secret. */
#define TKM_TESTENV_SO_PIN   "tkm-test-so-pin"
#define TKM_TESTENV_USER_PIN "tkm-test-user-pin"

/*
 * Make the directory, the SoftHSM2 token and the port choice. tkmd is not
 * started yet. Prints the reason to stderr on failure.
 */
TKM_MUST_CHECK tkm_err tkm_testenv_new(tkm_testenv **out);

/* Stop tkmd if it runs (SIGTERM, then SIGKILL), remove the directory. NULL-safe. */
void tkm_testenv_free(tkm_testenv *env);

/* The temporary directory, without a trailing slash. */
const char *tkm_testenv_dir(const tkm_testenv *env);
/* "ipc://DIR/tkmd.sock", always in the configurations made here. */
const char *tkm_testenv_ipc_url(const tkm_testenv *env);
/* "tcp://127.0.0.1:PORT" for tcp_port. */
const char *tkm_testenv_tcp_url(const tkm_testenv *env);
/* Three distinct loopback ports that were free when the env was made. */
uint16_t tkm_testenv_tcp_port(const tkm_testenv *env);
uint16_t tkm_testenv_tls_port(const tkm_testenv *env);
uint16_t tkm_testenv_spare_port(const tkm_testenv *env);
/* The file that receives tkmd's stderr (truncated at each start). */
const char *tkm_testenv_log_path(const tkm_testenv *env);

/*
 * A complete tkmd configuration for this env, malloc'd (free()). listen is the
 * inside of the listen list, such as "\"ipc://...\", \"tcp://...\""; NULL means
 * the env's IPC and TCP URLs. extra (may be NULL) is appended verbatim, one
 * setting per line. NULL when out of memory.
 */
char *tkm_testenv_config(const tkm_testenv *env, const char *listen, const char *extra);

/*
 * Run tkmd-test --init with config (written to DIR/init.conf; stdout to
 * DIR/init.out, stderr to the log). The start calls below do this by
 * themselves before the first start of an env, when DIR/tkm.db does not
 * exist yet. *status is as for tkm_testenv_stop().
 */
TKM_MUST_CHECK tkm_err tkm_testenv_init(tkm_testenv *env, const char *config, int *status);

/*
 * Start tkmd-test on tkm_testenv_config(env, NULL-or-IPC+TCP+extra_listen, extra)
 * and wait up to 15 s until a ping over the IPC URL succeeds. extra_listen
 * (may be NULL) is appended to the default listen list, e.g.
 * "\"tls+tcp://localhost:1234\"". On failure the log is printed to stderr.
 */
TKM_MUST_CHECK tkm_err tkm_testenv_start(tkm_testenv *env, const char *extra_listen,
                                         const char *extra_config);

/* Start with a complete configuration text; it must listen on the env's IPC URL. */
TKM_MUST_CHECK tkm_err tkm_testenv_start_config(tkm_testenv *env, const char *config);

/* The pid of the running tkmd, or -1. */
pid_t tkm_testenv_pid(const tkm_testenv *env);

/* True while the started tkmd has not exited. */
bool tkm_testenv_alive(tkm_testenv *env);

/*
 * Send sig to tkmd and wait up to 20 s for it to exit. Returns its exit code,
 * 128 + the signal that killed it, or TKM_TESTENV_KILLED when it had to be
 * killed (or was not running).
 */
int tkm_testenv_stop(tkm_testenv *env, int sig);

/*
 * Run tkmd-test once with config (written to DIR/run.conf), expecting it to
 * exit by itself within timeout_ms; its stderr goes to the log. *status is as
 * for tkm_testenv_stop().
 */
TKM_MUST_CHECK tkm_err tkm_testenv_run_config(tkm_testenv *env, const char *config, int timeout_ms,
                                              int *status);

/*
 * Run argv[0] (searched in PATH when it has no slash) with the env's
 * SOFTHSM2_CONF, stdin from /dev/null, stdout to out_path and stderr to
 * err_path (either NULL: /dev/null; they may be the same file). Waits up to
 * timeout_ms; *status is as for tkm_testenv_stop().
 */
TKM_MUST_CHECK tkm_err tkm_testenv_run(const tkm_testenv *env, const char *const argv[],
                                       const char *out_path, const char *err_path, int timeout_ms,
                                       int *status);

/*
 * Log in as username, one of the operators tkmd --init made (officer1,
 * officer2, admin) or one whose password was set with
 * tkm_testenv_set_password. The first login uses the one-time password from
 * DIR/init.out and changes it, as tkmd demands. *out is a client on the IPC
 * URL that carries the session.
 */
TKM_MUST_CHECK tkm_err tkm_testenv_login(tkm_testenv *env, const char *username, tkm_client **out);

/* Remember username's current password (after an operator.create, say). */
TKM_MUST_CHECK tkm_err tkm_testenv_set_password(tkm_testenv *env, const char *username,
                                                const char *password);

/*
 * Make operator username with role under dual control, as people would:
 * creator (an admin) asks with operator.create, approver (a second operator)
 * approves, and the one-time password from the approval's result is kept
 * for tkm_testenv_login.
 */
TKM_MUST_CHECK tkm_err tkm_testenv_add_operator(tkm_testenv *env, const char *creator,
                                                const char *approver, const char *username,
                                                const char *role);

/* username's last session token (after tkm_testenv_login). */
TKM_MUST_CHECK tkm_err tkm_testenv_token(const tkm_testenv *env, const char *username,
                                         uint8_t token[32]);

/*
 * Write username's last session as a tkmctl session file at path (mode 0600).
 * Children the harness runs have TKM_SESSION_FILE=DIR/tkmctl.session, so
 * writing that path is how a test logs tkmctl in.
 */
TKM_MUST_CHECK tkm_err tkm_testenv_session_file(const tkm_testenv *env, const char *username,
                                                const char *path);

/* Open a libtkm client on url with default options, printing the reason on failure. */
TKM_MUST_CHECK tkm_err tkm_testenv_client(const char *url, tkm_client **out);

/* A whole file as a NUL-terminated malloc'd string (free()); NULL on failure. */
char *tkm_testenv_read_file(const char *path, size_t *len);

/* Print tkmd's log to stderr, for a failed test's output. */
void tkm_testenv_dump_log(const tkm_testenv *env);

/* tkmd's resident set size in KiB from /proc/PID/status, or -1. */
long tkm_testenv_rss_kib(const tkm_testenv *env);

/* CLOCK_MONOTONIC in microseconds. */
uint64_t tkm_testenv_now_us(void);

/* Sleep for ms milliseconds. */
void tkm_testenv_sleep_ms(unsigned ms);

#endif /* TKM_TESTENV_H */
