/*
 * tkm_config.h - tkmd's configuration file, read with libconfig.
 *
 * The file is parsed once, at start-up, into the checked values below; no
 * other module sees libconfig. Every setting, its type and its default are
 * documented in docs/configuration.md. Unknown settings and wrong types are
 * errors that name the file and line. Relative paths are kept as written and
 * resolve against tkmd's working directory.
 *
 * The struct is plain data on purpose: it is filled once by
 * tkm_config_load(), never changed afterwards, and only read.
 */
#ifndef TKM_CONFIG_H
#define TKM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "tkm/error.h"
#include "tkm_log.h"

#define TKM_CONFIG_MAX_LISTEN  16  /* listen URLs */
#define TKM_CONFIG_MAX_URL     512 /* bytes in one listen URL */
#define TKM_CONFIG_MAX_WORKERS 256
#define TKM_CONFIG_MIN_MSGSZ   1024
#define TKM_CONFIG_MAX_MSGSZ   268435456LL /* 256 MiB */
#define TKM_CONFIG_MAX_DEPTH   128
#define TKM_CONFIG_MIN_STRLEN  256

#define TKM_CONFIG_DEFAULT_HSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* The transports tkmd can listen on; see tkm_config_url_scheme(). */
typedef enum tkm_config_scheme {
	TKM_SCHEME_IPC,
	TKM_SCHEME_TCP, /* tcp://, tcp4://, tcp6:// */
	TKM_SCHEME_TLS, /* tls+tcp://, tls+tcp4://, tls+tcp6:// */
} tkm_config_scheme;

typedef struct tkm_config {
	char **listen; /* nlisten URLs, distinct */
	size_t nlisten;
	unsigned workers;
	size_t max_message_size;
	size_t max_depth;
	size_t max_string_length;
	bool allow_insecure_tcp;
	char *tls_cert_file; /* both set iff a tls+tcp:// URL is listed */
	char *tls_key_file;
	char *hsm_module;   /* both NULL when no hsm group is given */
	char *hsm_token;    /* an RFC 7512 pkcs11: URI */
	char *hsm_pin_file; /* at most one of the two: where the user PIN is read from */
	char *hsm_pin_env;  /* (a file, an environment variable); never the PIN itself */
	char *database_path;
	char *audit_public_key_file; /* written by tkmd --init; default DATABASE.audit-key.pub */
	unsigned long audit_checkpoint_every;      /* records between signed checkpoints */
	unsigned long audit_checkpoint_interval_s; /* and at most this long apart */
	unsigned long audit_retention_days; /* records younger than this are never archived */
	/* auth: docs/configuration.md; the defaults follow PCI DSS v4 8.3 */
	unsigned long auth_password_min_length;
	unsigned long auth_password_history;
	unsigned long auth_password_max_age_days;
	unsigned long auth_max_failed_logins;
	unsigned long auth_lockout_s;
	unsigned long auth_session_idle_s;
	unsigned long auth_session_lifetime_s;
	unsigned long auth_argon2_opslimit;
	unsigned long auth_argon2_memlimit_kib;
	unsigned long auth_approval_ttl_s;
	unsigned long auth_signature_window_s;
	char *auth_common_passwords_file; /* NULL: the list built into tkmd */
	/* terminals: docs/terminals.md */
	unsigned long terminal_enroll_code_ttl_s; /* 86400 */
	unsigned long terminal_last_seen_flush_s; /* 60 */
	tkm_log_level log_level;
} tkm_config;

/*
 * Read and check the file at path. On failure returns TKM_E_CONFIG (or
 * TKM_E_NOMEM) and writes "FILE:LINE: what is wrong" to why.
 */
TKM_MUST_CHECK tkm_err tkm_config_load(const char *path, tkm_config **out, char *why,
                                       size_t why_len);

/* NULL-safe. */
void tkm_config_free(tkm_config *cfg);

/* The transport of a listen URL; TKM_E_CONFIG for a scheme tkmd does not serve. */
TKM_MUST_CHECK tkm_err tkm_config_url_scheme(const char *url, tkm_config_scheme *out);

#endif /* TKM_CONFIG_H */
