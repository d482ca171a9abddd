/*
 * tkmd_main.c - tkmd, the tkm key management daemon: start-up and shutdown.
 *
 * Order matters: core dumps are off and SIGTERM/SIGINT are blocked before
 * any thread exists (so every thread inherits the mask and only sigwait()
 * here sees them), then config, store, HSM, dispatcher and server come up in
 * that order and go down in reverse after a signal. Built twice from this
 * file: tkmd, and tkmd-test with TKM_TEST_METHODS adding debug.* methods.
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure, 2 usage or configuration.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "tkm/client.h"
#include "tkm_auth.h"
#include "tkm_bootstrap.h"
#include "tkm_gate.h"
#include "tkm_seen.h"
#include "tkm_cbor.h"
#include "tkm_config.h"
#include "tkm_hsm.h"
#include "tkm_log.h"
#include "tkm_methods.h"
#include "tkm_rpc.h"
#include "tkm_server.h"
#include "tkm_store.h"
#include "tkm_why.h"

#ifndef TKM_TEST_METHODS
#define TKM_TEST_METHODS 0
#endif

#define TKMD_EXIT_OK      0
#define TKMD_EXIT_RUNTIME 1
#define TKMD_EXIT_USAGE   2

#define TKMD_WHY_MAX 512

static void usage(FILE *f)
{
	fprintf(f, "usage: tkmd --config FILE [--check-config | --init [--first-operators LIST]]\n"
	           "       tkmd --help | --version\n"
	           "\n"
	           "  --config FILE    read the configuration from FILE "
	           "(docs/configuration.md)\n"
	           "  --check-config   check FILE and exit: 0 when valid, 2 when not\n"
	           "  --init           once, on an empty database and HSM token: make the\n"
	           "                   master keys and the audit signing key, start the audit\n"
	           "                   log, store the default policy, create the first two\n"
	           "                   security officers and the first admin, print their\n"
	           "                   one-time passwords, write the audit public key file,\n"
	           "                   and exit\n"
	           "  --first-operators SO1,SO2,ADMIN\n"
	           "                   with --init: their usernames (default\n"
	           "                   officer1,officer2,admin)\n"
	           "  --help           show this help\n"
	           "  --version        show the version\n"
	           "\n"
	           "Runs in the foreground and logs to stderr. SIGTERM or SIGINT drains\n"
	           "requests in flight and exits 0. Exit codes: 0 ok, 1 runtime failure,\n"
	           "2 usage or configuration error.\n");
}

/* A core file of a key manager could hold key material: never write one. */
static int disable_core_dumps(void)
{
	struct rlimit rl = {.rlim_cur = 0, .rlim_max = 0};

	if (setrlimit(RLIMIT_CORE, &rl) != 0) {
		return -1;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		return -1;
	}
	return 0;
}

/* Exit status for a start-up failure: configuration problems are 2, the rest 1. */
static int exit_for(tkm_err err)
{
	return err == TKM_E_CONFIG ? TKMD_EXIT_USAGE : TKMD_EXIT_RUNTIME;
}

static void log_fail(const char *msg, tkm_err err, const char *why)
{
	tkm_log_line line;

	tkm_log_begin(&line, TKM_LOG_ERROR, msg);
	tkm_log_str(&line, "error", why != NULL && why[0] != '\0' ? why : tkm_strerror(err));
	tkm_log_end(&line);
}

static void log_started(const tkm_config *cfg, const tkm_hsm *hsm, tkm_store *store)
{
	tkm_hsm_token tok;
	char why[TKMD_WHY_MAX];
	char listen[TKM_CONFIG_MAX_LISTEN * (TKM_CONFIG_MAX_URL + 1)];
	char created[64];
	size_t off = 0;
	tkm_log_line line;

	listen[0] = '\0';
	for (size_t i = 0; i < cfg->nlisten; i++) {
		size_t n = strlen(cfg->listen[i]);
		if (off + n + 2 > sizeof(listen)) {
			break;
		}
		if (i > 0) {
			listen[off++] = ' ';
		}
		memcpy(listen + off, cfg->listen[i], n);
		off += n;
		listen[off] = '\0';
	}
	tkm_log_begin(&line, TKM_LOG_INFO, "tkmd started");
	tkm_log_str(&line, "version", tkm_version());
	tkm_log_int(&line, "pid", (int64_t)getpid());
	tkm_log_str(&line, "listen", listen);
	tkm_log_uint(&line, "workers", cfg->workers);
	tkm_log_uint(&line, "max_message_size", cfg->max_message_size);
	tkm_log_str(&line, "database", cfg->database_path);
	tkm_log_int(&line, "schema", tkm_store_schema_version(store));
	if (tkm_store_meta_get(store, "created_at", created, sizeof(created)) == TKM_OK) {
		tkm_log_str(&line, "db_created_at", created);
	}
	if (hsm == NULL) {
		tkm_log_str(&line, "hsm", "none");
	} else if (tkm_hsm_token_info(hsm, &tok, why, sizeof(why)) == TKM_OK) {
		tkm_log_str(&line, "hsm_token", tok.label);
		tkm_log_str(&line, "hsm_model", tok.model);
	}
	if (TKM_TEST_METHODS) {
		tkm_log_str(&line, "test_methods", "enabled");
	}
	tkm_log_end(&line);
}

/* One audit record of tkmd's own: start and stop. */
static tkm_err audit_self(tkm_store *store, const char *method, char *why, size_t why_len)
{
	tkm_cbor_w *d = NULL;
	tkm_audit_rec rec;
	tkm_err err;

	memset(&rec, 0, sizeof(rec));
	err = tkm_cbor_w_new(128, &d);
	if (err == TKM_OK) {
		tkm_cbor_put_map(d, 2);
		tkm_cbor_put_cstr(d, "pid");
		tkm_cbor_put_uint(d, (uint64_t)getpid());
		tkm_cbor_put_cstr(d, "version");
		tkm_cbor_put_cstr(d, tkm_version());
		err = tkm_cbor_w_finish(d, &rec.details, &rec.details_len);
	}
	if (err == TKM_OK) {
		rec.principal = "tkmd";
		rec.method = method;
		rec.outcome = "ok";
		err = tkm_store_write(store, NULL, NULL, &rec, NULL, why, why_len);
	}
	tkm_cbor_w_free(d);
	return err;
}

/* tkmd --init: print what was made; the key file is what operators keep. */
static void report_init(const tkm_config *cfg, const tkm_bootstrap_keys *keys)
{
	char pk[2 * TKM_AUDIT_PK_LEN + 1];
	char kcv[2 * TKM_HSM_KCV_MAX + 1];

	tkm_bootstrap_pk_hex(keys->audit_pk, pk);
	printf("tkmd: initialised database %s and its HSM token\n", cfg->database_path);
	(void)sodium_bin2hex(kcv, sizeof(kcv), keys->kek_kcv.b, keys->kek_kcv.len);
	printf("  master KEK            made in the HSM%s%s\n", keys->kek_kcv.len ? ", KCV " : "",
	       kcv);
	(void)sodium_bin2hex(kcv, sizeof(kcv), keys->seal_kcv.b, keys->seal_kcv.len);
	printf("  master sealing key    made in the HSM%s%s\n", keys->seal_kcv.len ? ", KCV " : "",
	       kcv);
	printf("  audit signing key     Ed25519, public key %s\n", pk);
	printf("  audit public key file %s\n", cfg->audit_public_key_file);
	printf("  first audit record    %llu (system.init), signed\n",
	       (unsigned long long)keys->init_seq);
	printf("First operators (one-time passwords, shown only now; each must be changed at\n"
	       "the first login with tkmctl login):\n");
	for (size_t i = 0; i < TKM_BOOTSTRAP_PEOPLE; i++) {
		printf("  %-20s %-18s %s\n", keys->people[i].username, keys->people[i].role,
		       keys->people[i].otp != NULL ? keys->people[i].otp : "?");
	}
	printf("Keep a copy of the public key file away from this host: tkmctl audit verify\n"
	       "--db FILE --pubkey FILE checks any copy of the database against it.\n");
	fflush(stdout);
}

/* Split "a,b,c" in place into exactly TKM_BOOTSTRAP_PEOPLE names; -1 otherwise. */
static int split_names(char *list, const char *names[TKM_BOOTSTRAP_PEOPLE])
{
	size_t n = 0;
	char *p = list;

	for (;;) {
		char *comma = strchr(p, ',');

		if (n == TKM_BOOTSTRAP_PEOPLE || *p == '\0' || p == comma) {
			return -1;
		}
		names[n++] = p;
		if (comma == NULL) {
			break;
		}
		*comma = '\0';
		p = comma + 1;
	}
	return n == TKM_BOOTSTRAP_PEOPLE ? 0 : -1;
}

/* Block until SIGTERM or SIGINT; returns the signal's name. */
static const char *wait_for_signal(const sigset_t *set)
{
	for (;;) {
		int sig = 0;
		int rc = sigwait(set, &sig);

		if (rc == 0 && sig == SIGTERM) {
			return "SIGTERM";
		}
		if (rc == 0 && sig == SIGINT) {
			return "SIGINT";
		}
	}
}

int main(int argc, char **argv)
{
	static const tkm_rpc_table *const tables[] = {
		&tkm_methods_sys,
		&tkm_methods_audit,
		&tkm_methods_auth,
		&tkm_methods_approval,
		&tkm_methods_terminal,
#if TKM_TEST_METHODS
		&tkm_methods_debug,
#endif
	};
	const char *config_path = NULL;
	bool check_only = false, init = false;
	char first_ops[3 * 70] = "officer1,officer2,admin";
	const char *first[TKM_BOOTSTRAP_PEOPLE];
	tkm_bootstrap_keys keys;
	tkm_auth_cfg acfg;
	tkm_auth *auth = NULL;
	tkm_gate *gate = NULL;
	tkm_gate_cfg gcfg;
	tkm_seen *seen = NULL;
	tkm_bootstrap_writer wc;
	tkm_config *cfg = NULL;
	tkm_store *store = NULL;
	tkm_hsm *hsm = NULL;
	tkm_rpc *rpc = NULL;
	tkm_srv *srv = NULL;
	tkm_rpc_env env;
	char why[TKMD_WHY_MAX] = "";
	const char *signame;
	tkm_log_line line;
	bool stopped = false;
	sigset_t set;
	tkm_err err;
	int status = TKMD_EXIT_RUNTIME;

	memset(&keys, 0, sizeof(keys));
	if (disable_core_dumps() != 0) {
		fprintf(stderr, "tkmd: cannot disable core dumps: %s\n", strerror(errno));
		return TKMD_EXIT_RUNTIME;
	}
	/* Database, WAL files and IPC sockets are private to tkmd's user. */
	umask(077);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		fprintf(stderr, "tkmd: cannot set up signal handling\n");
		return TKMD_EXIT_RUNTIME;
	}

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return TKMD_EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("tkmd %s\n", tkm_version());
			return TKMD_EXIT_OK;
		} else if (strcmp(argv[i], "--check-config") == 0) {
			check_only = true;
		} else if (strcmp(argv[i], "--init") == 0) {
			init = true;
		} else if (strcmp(argv[i], "--first-operators") == 0 && i + 1 < argc) {
			int r = snprintf(first_ops, sizeof(first_ops), "%s", argv[++i]);

			if (r < 0 || (size_t)r >= sizeof(first_ops)) {
				fprintf(stderr, "tkmd: --first-operators is too long\n");
				return TKMD_EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0 && argv[i][9] != '\0') {
			config_path = argv[i] + 9;
		} else {
			fprintf(stderr, "tkmd: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return TKMD_EXIT_USAGE;
		}
	}
	if (config_path == NULL) {
		fprintf(stderr, "tkmd: --config FILE is required\n");
		usage(stderr);
		return TKMD_EXIT_USAGE;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "tkmd: libsodium failed to initialise\n");
		return TKMD_EXIT_RUNTIME;
	}

	err = tkm_config_load(config_path, &cfg, why, sizeof(why));
	if (err == TKM_OK) {
		tkm_log_set_level(cfg->log_level);
		err = tkm_srv_check_config(cfg, why, sizeof(why));
	}
	/* Every key and every audit signature lives in the HSM: no HSM, no tkmd. */
	if (err == TKM_OK && cfg->hsm_token == NULL) {
		err = tkm_why_fail(why, sizeof(why), TKM_E_CONFIG,
		                   "%s: an hsm = { token = \"pkcs11:...\"; pin_file = \"...\"; } "
		                   "group is required",
		                   config_path);
	}
	if (err == TKM_OK && cfg->hsm_pin_file == NULL && cfg->hsm_pin_env == NULL) {
		err = tkm_why_fail(why, sizeof(why), TKM_E_CONFIG,
		                   "%s: hsm.pin_file or hsm.pin_env is required: tkmd signs the "
		                   "audit log with the HSM from its first request",
		                   config_path);
	}
	if (err == TKM_OK && split_names(first_ops, first) != 0) {
		err = tkm_why_fail(why, sizeof(why), TKM_E_CONFIG,
		                   "--first-operators takes three usernames: SO1,SO2,ADMIN");
	}
	if (err == TKM_OK && check_only && init) {
		err = tkm_why_fail(why, sizeof(why), TKM_E_CONFIG,
		                   "--check-config and --init do not go together");
	}
	if (err != TKM_OK) {
		log_fail("invalid configuration", err, why);
		status = TKMD_EXIT_USAGE;
		goto out;
	}
	if (check_only) {
		printf("tkmd: configuration %s is valid\n", config_path);
		status = TKMD_EXIT_OK;
		goto out;
	}

	err = tkm_store_open(cfg->database_path, &store, why, sizeof(why));
	if (err != TKM_OK) {
		log_fail("cannot open the database", err, why);
		status = exit_for(err);
		goto out;
	}
	err = tkm_hsm_open(cfg->hsm_module, cfg->hsm_token, &hsm, why, sizeof(why));
	if (err != TKM_OK) {
		log_fail("cannot open the HSM; refusing to start", err, why);
		status = exit_for(err);
		goto out;
	}
	/* One HSM session per worker thread; the PIN is wiped right after C_Login. */
	err = tkm_hsm_login(hsm, cfg->hsm_pin_file, cfg->hsm_pin_env, cfg->workers + 1, why,
	                    sizeof(why));
	if (err != TKM_OK) {
		log_fail("cannot log in to the HSM; refusing to start", err, why);
		status = exit_for(err);
		goto out;
	}
	tkm_auth_cfg_default(&acfg);
	acfg.min_length = cfg->auth_password_min_length;
	acfg.history = cfg->auth_password_history;
	acfg.max_age_s = (uint64_t)cfg->auth_password_max_age_days * 86400u;
	acfg.max_failed = (uint32_t)cfg->auth_max_failed_logins;
	acfg.lockout_s = cfg->auth_lockout_s;
	acfg.idle_s = cfg->auth_session_idle_s;
	acfg.lifetime_s = cfg->auth_session_lifetime_s;
	acfg.opslimit = cfg->auth_argon2_opslimit;
	acfg.memlimit = (size_t)cfg->auth_argon2_memlimit_kib * 1024u;
	acfg.common_file = cfg->auth_common_passwords_file;
	err = tkm_auth_new(&acfg, store, &auth, why, sizeof(why));
	if (err != TKM_OK) {
		log_fail("cannot set up password checking", err, why);
		status = exit_for(err);
		goto out;
	}
	if (cfg->auth_lockout_s < 1800) {
		tkm_log_msg(
		    TKM_LOG_WARN,
		    "auth.lockout_seconds is below the 30 minutes PCI DSS v4 8.3.4 requires", NULL);
	}
	wc.checkpoint_every = cfg->audit_checkpoint_every;
	wc.checkpoint_interval_ms = (uint32_t)(cfg->audit_checkpoint_interval_s * 1000u);
	if (init) {
		err = tkm_bootstrap_init(hsm, store, auth, &wc, cfg->audit_public_key_file,
		                         tkm_gate_default_policy, first, &keys, why, sizeof(why));
		if (err != TKM_OK) {
			log_fail("initialisation refused", err, why);
			status = err == TKM_E_ALREADY_EXISTS ? TKMD_EXIT_USAGE : TKMD_EXIT_RUNTIME;
			goto out;
		}
		report_init(cfg, &keys);
		status = TKMD_EXIT_OK;
		goto out;
	}
	err = tkm_bootstrap_open(hsm, store, &wc, &keys, why, sizeof(why));
	if (err == TKM_OK) {
		err = audit_self(store, "system.start", why, sizeof(why));
	}
	if (err != TKM_OK) {
		log_fail("cannot start the audit log; refusing to start", err, why);
		status = err == TKM_E_FAILED_PRECONDITION ? TKMD_EXIT_USAGE : TKMD_EXIT_RUNTIME;
		goto out;
	}
	memset(&env, 0, sizeof(env));
	env.hsm = hsm;
	env.store = store;
	memset(&gcfg, 0, sizeof(gcfg));
	gcfg.signature_window_s = cfg->auth_signature_window_s;
	gcfg.approval_ttl_s = cfg->auth_approval_ttl_s;
	gcfg.nonce_entries = 1u << 20;
	err = tkm_gate_new(&gcfg, store, auth, &gate, why, sizeof(why));
	if (err != TKM_OK) {
		log_fail("cannot load the policy; refusing to start", err, why);
		status = exit_for(err);
		goto out;
	}
	err = tkm_seen_new((uint64_t)cfg->terminal_last_seen_flush_s * 1000u, &seen);
	if (err != TKM_OK) {
		log_fail("out of memory", err, "");
		goto out;
	}
	env.seen = seen;
	env.enroll_code_ttl_ms = (uint64_t)cfg->terminal_enroll_code_ttl_s * 1000u;
	env.audit_pk = keys.audit_pk;
	env.gate = tkm_gate_check;
	env.gate_ctx = gate;
	env.auth = auth;
	env.audit_retention_ms = (uint64_t)cfg->audit_retention_days * 86400000u;
	env.limits.max_depth = cfg->max_depth;
	env.limits.max_str_len = cfg->max_string_length;
	env.max_message_size = cfg->max_message_size;
	err = tkm_rpc_new(&env, tables, sizeof(tables) / sizeof(tables[0]), TKM_TEST_METHODS, &rpc,
	                  why, sizeof(why));
	if (err != TKM_OK) {
		log_fail("cannot set up the method table", err, why);
		goto out;
	}
	err = tkm_srv_start(cfg, rpc, &srv, why, sizeof(why));
	if (err != TKM_OK) {
		log_fail("cannot start the server", err, why);
		status = exit_for(err);
		goto out;
	}
	log_started(cfg, hsm, store);

	signame = wait_for_signal(&set);
	tkm_log_begin(&line, TKM_LOG_INFO, "shutting down; draining requests in flight");
	tkm_log_str(&line, "signal", signame);
	tkm_log_end(&line);
	tkm_srv_stop(srv);
	srv = NULL;
	stopped = true;
	status = TKMD_EXIT_OK;
	if (tkm_seen_flush(seen, store, tkm_rpc_now_ms(), why, sizeof(why)) != TKM_OK) {
		log_fail("last-seen times not written", TKM_E_IO, why);
	}
	if (audit_self(store, "system.stop", why, sizeof(why)) != TKM_OK) {
		log_fail("cannot write the stop record", TKM_E_IO, why);
	}
out:
	tkm_srv_stop(srv);
	tkm_rpc_free(rpc);
	tkm_gate_free(gate);
	tkm_seen_free(seen);
	tkm_bootstrap_keys_wipe(&keys);
	/* The writer signs the tail of the audit log as it stops: store before HSM. */
	tkm_store_close(store);
	tkm_auth_free(auth);
	tkm_hsm_close(hsm);
	tkm_config_free(cfg);
	if (stopped) {
		tkm_log_msg(TKM_LOG_INFO, "tkmd stopped", NULL);
	}
	return status;
}
