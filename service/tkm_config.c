/*
 * tkm_config.c - parse and check tkmd's configuration file with libconfig.
 *
 * Every setting has one entry in a table below with its expected libconfig
 * type; anything else in the file is refused with its file and line, so a
 * typo never silently falls back to a default. Semantic checks that span
 * settings (TLS needed iff a tls+tcp:// URL is listed, string limit within
 * the message limit) run after the whole file is read. Reads no secrets:
 * the TLS key and the HSM PIN are only ever named here (by path, or for the
 * PIN also by environment variable), never read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "tkm_config.h"
#include "tkm_why.h"

#define TKM_CONFIG_MAX_PATH 4096

/* Parsing state: the file name for messages and where the first problem goes. */
typedef struct cfg_parse {
	const char *path;
	char *why;
	size_t why_len;
	tkm_config *cfg;
} cfg_parse;

__attribute__((format(printf, 3, 4))) static tkm_err fail(cfg_parse *p, const config_setting_t *s,
                                                          const char *fmt, ...)
{
	char msg[512];
	const char *file = p->path;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r < 0) {
		msg[0] = '\0';
	}
	if (s != NULL && config_setting_source_file(s) != NULL) {
		file = config_setting_source_file(s);
	}
	if (p->why != NULL && p->why_len > 0) {
		if (s != NULL) {
			r = snprintf(p->why, p->why_len, "%s:%u: %s", file,
			             (unsigned)config_setting_source_line(s), msg);
		} else {
			r = snprintf(p->why, p->why_len, "%s: %s", file, msg);
		}
		if (r < 0) {
			p->why[0] = '\0';
		}
	}
	return TKM_E_CONFIG;
}

static const char *type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group { ... }";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a floating-point number";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array [ ... ]";
	case CONFIG_TYPE_LIST:
		return "a list ( ... )";
	default:
		return "an unknown type";
	}
}

static tkm_err get_int(cfg_parse *p, const config_setting_t *s, const char *name, long long min,
                       long long max, long long *out)
{
	long long v = 0;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		return fail(p, s, "'%s' must be an integer, not %s", name,
		            type_name(config_setting_type(s)));
	}
	v = config_setting_get_int64(s);
	if (v < min || v > max) {
		return fail(p, s, "'%s' must be between %lld and %lld, got %lld", name, min, max,
		            v);
	}
	*out = v;
	return TKM_OK;
}

static tkm_err get_bool(cfg_parse *p, const config_setting_t *s, const char *name, bool *out)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		return fail(p, s, "'%s' must be true or false, not %s", name,
		            type_name(config_setting_type(s)));
	}
	*out = config_setting_get_bool(s) != 0;
	return TKM_OK;
}

/* A non-empty string of at most max bytes, copied into *out (replacing it). */
static tkm_err get_str(cfg_parse *p, const config_setting_t *s, const char *name, size_t max,
                       char **out)
{
	const char *v;
	char *copy;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		return fail(p, s, "'%s' must be a string, not %s", name,
		            type_name(config_setting_type(s)));
	}
	v = config_setting_get_string(s);
	if (v == NULL || v[0] == '\0') {
		return fail(p, s, "'%s' must not be empty", name);
	}
	if (strlen(v) > max) {
		return fail(p, s, "'%s' is longer than %zu bytes", name, max);
	}
	copy = strdup(v);
	if (copy == NULL) {
		return TKM_E_NOMEM;
	}
	free(*out);
	*out = copy;
	return TKM_OK;
}

tkm_err tkm_config_url_scheme(const char *url, tkm_config_scheme *out)
{
	static const struct {
		const char *prefix;
		tkm_config_scheme scheme;
	} schemes[] = {
	    {"ipc://", TKM_SCHEME_IPC},      {"tcp://", TKM_SCHEME_TCP},
	    {"tcp4://", TKM_SCHEME_TCP},     {"tcp6://", TKM_SCHEME_TCP},
	    {"tls+tcp://", TKM_SCHEME_TLS},  {"tls+tcp4://", TKM_SCHEME_TLS},
	    {"tls+tcp6://", TKM_SCHEME_TLS},
	};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].prefix);
		if (strncmp(url, schemes[i].prefix, n) == 0 && url[n] != '\0') {
			*out = schemes[i].scheme;
			return TKM_OK;
		}
	}
	return TKM_E_CONFIG;
}

static tkm_err set_listen(cfg_parse *p, const config_setting_t *s)
{
	tkm_config *cfg = p->cfg;
	int type = config_setting_type(s);
	int n;

	if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
		return fail(p, s, "'listen' must be an array of URL strings, not %s",
		            type_name(type));
	}
	n = config_setting_length(s);
	if (n < 1 || n > TKM_CONFIG_MAX_LISTEN) {
		return fail(p, s, "'listen' must hold 1 to %d URLs, got %d", TKM_CONFIG_MAX_LISTEN,
		            n);
	}
	cfg->listen = calloc((size_t)n, sizeof(*cfg->listen));
	if (cfg->listen == NULL) {
		return TKM_E_NOMEM;
	}
	cfg->nlisten = (size_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		tkm_config_scheme scheme;
		tkm_err err;

		err = get_str(p, e, "listen", TKM_CONFIG_MAX_URL, &cfg->listen[i]);
		if (err != TKM_OK) {
			return err;
		}
		if (tkm_config_url_scheme(cfg->listen[i], &scheme) != TKM_OK) {
			return fail(p, e,
			            "listen URL '%s' is not supported; use ipc://PATH, "
			            "tcp://HOST:PORT or tls+tcp://HOST:PORT",
			            cfg->listen[i]);
		}
		for (int k = 0; k < i; k++) {
			if (strcmp(cfg->listen[k], cfg->listen[i]) == 0) {
				return fail(p, e, "listen URL '%s' is given twice", cfg->listen[i]);
			}
		}
	}
	return TKM_OK;
}

static tkm_err set_workers(cfg_parse *p, const config_setting_t *s)
{
	long long v = 0;
	tkm_err err = get_int(p, s, "workers", 1, TKM_CONFIG_MAX_WORKERS, &v);

	if (err == TKM_OK) {
		p->cfg->workers = (unsigned)v;
	}
	return err;
}

static tkm_err set_max_message_size(cfg_parse *p, const config_setting_t *s)
{
	long long v = 0;
	tkm_err err =
	    get_int(p, s, "max_message_size", TKM_CONFIG_MIN_MSGSZ, TKM_CONFIG_MAX_MSGSZ, &v);

	if (err == TKM_OK) {
		p->cfg->max_message_size = (size_t)v;
	}
	return err;
}

static tkm_err set_max_depth(cfg_parse *p, const config_setting_t *s)
{
	long long v = 0;
	/* A request needs 2 levels: the envelope and its params map. */
	tkm_err err = get_int(p, s, "max_depth", 2, TKM_CONFIG_MAX_DEPTH, &v);

	if (err == TKM_OK) {
		p->cfg->max_depth = (size_t)v;
	}
	return err;
}

static tkm_err set_max_string_length(cfg_parse *p, const config_setting_t *s)
{
	long long v = 0;
	tkm_err err =
	    get_int(p, s, "max_string_length", TKM_CONFIG_MIN_STRLEN, TKM_CONFIG_MAX_MSGSZ, &v);

	if (err == TKM_OK) {
		p->cfg->max_string_length = (size_t)v;
	}
	return err;
}

static tkm_err set_allow_insecure_tcp(cfg_parse *p, const config_setting_t *s)
{
	return get_bool(p, s, "allow_insecure_tcp", &p->cfg->allow_insecure_tcp);
}

static tkm_err set_log_level(cfg_parse *p, const config_setting_t *s)
{
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		return fail(p, s, "'log_level' must be a string, not %s",
		            type_name(config_setting_type(s)));
	}
	v = config_setting_get_string(s);
	if (tkm_log_level_parse(v, &p->cfg->log_level) != TKM_OK) {
		return fail(p, s, "'log_level' must be \"debug\", \"info\", \"warn\" or \"error\"");
	}
	return TKM_OK;
}

/* One member of a group: its name and where its string value goes. */
typedef struct cfg_member {
	const char *name;
	char **dst;
	size_t max;
	bool required;
} cfg_member;

/* A group of string members; unknown members and missing required ones fail. */
static tkm_err get_group(cfg_parse *p, const config_setting_t *s, const char *group,
                         const cfg_member *members, size_t nmembers)
{
	int n;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		return fail(p, s, "'%s' must be a group { ... }, not %s", group,
		            type_name(config_setting_type(s)));
	}
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(e);
		bool known = false;

		for (size_t k = 0; k < nmembers && name != NULL; k++) {
			if (strcmp(name, members[k].name) == 0) {
				char full[64];
				int r = snprintf(full, sizeof(full), "%s.%s", group, name);
				tkm_err err;

				if (r < 0 || (size_t)r >= sizeof(full)) {
					return fail(p, e, "setting name too long");
				}
				err = get_str(p, e, full, members[k].max, members[k].dst);
				if (err != TKM_OK) {
					return err;
				}
				known = true;
			}
		}
		if (!known) {
			return fail(p, e, "unknown setting '%s.%s'", group,
			            name != NULL ? name : "?");
		}
	}
	for (size_t k = 0; k < nmembers; k++) {
		if (members[k].required && *members[k].dst == NULL) {
			return fail(p, s, "'%s.%s' is required", group, members[k].name);
		}
	}
	return TKM_OK;
}

static tkm_err set_tls(cfg_parse *p, const config_setting_t *s)
{
	const cfg_member members[] = {
	    {"cert_file", &p->cfg->tls_cert_file, TKM_CONFIG_MAX_PATH, true},
	    {"key_file", &p->cfg->tls_key_file, TKM_CONFIG_MAX_PATH, true},
	};

	return get_group(p, s, "tls", members, sizeof(members) / sizeof(members[0]));
}

static tkm_err set_hsm(cfg_parse *p, const config_setting_t *s)
{
	const cfg_member members[] = {
	    {"module", &p->cfg->hsm_module, TKM_CONFIG_MAX_PATH, false},
	    {"token", &p->cfg->hsm_token, TKM_CONFIG_MAX_URL, true},
	    {"pin_file", &p->cfg->hsm_pin_file, TKM_CONFIG_MAX_PATH, false},
	    {"pin_env", &p->cfg->hsm_pin_env, 128, false},
	};
	tkm_err err = get_group(p, s, "hsm", members, sizeof(members) / sizeof(members[0]));

	if (err != TKM_OK) {
		return err;
	}
	if (p->cfg->hsm_module == NULL) {
		p->cfg->hsm_module = strdup(TKM_CONFIG_DEFAULT_HSM_MODULE);
		if (p->cfg->hsm_module == NULL) {
			return TKM_E_NOMEM;
		}
	}
	/* Only an absolute path: a relative one would depend on the loader's search. */
	if (p->cfg->hsm_module[0] != '/') {
		return fail(p, config_setting_get_member(s, "module"),
		            "'hsm.module' must be an absolute path, got '%s'", p->cfg->hsm_module);
	}
	if (strncmp(p->cfg->hsm_token, "pkcs11:", 7) != 0) {
		return fail(p, config_setting_get_member(s, "token"),
		            "'hsm.token' must be a PKCS#11 URI (RFC 7512) starting with "
		            "\"pkcs11:\", such as \"pkcs11:token=tkm\"");
	}
	if (p->cfg->hsm_pin_file != NULL && p->cfg->hsm_pin_env != NULL) {
		return fail(p, config_setting_get_member(s, "pin_env"),
		            "give the HSM PIN by 'hsm.pin_file' or by 'hsm.pin_env', not both");
	}
	if (p->cfg->hsm_pin_env != NULL &&
	    (strspn(p->cfg->hsm_pin_env, "0123456789") > 0 ||
	     strspn(p->cfg->hsm_pin_env, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                 "0123456789_") != strlen(p->cfg->hsm_pin_env))) {
		return fail(p, config_setting_get_member(s, "pin_env"),
		            "'hsm.pin_env' must name an environment variable ([A-Za-z_] then "
		            "[A-Za-z0-9_]), got '%s'",
		            p->cfg->hsm_pin_env);
	}
	return TKM_OK;
}

static tkm_err set_database(cfg_parse *p, const config_setting_t *s)
{
	const cfg_member members[] = {
	    {"path", &p->cfg->database_path, TKM_CONFIG_MAX_PATH, false},
	};

	return get_group(p, s, "database", members, sizeof(members) / sizeof(members[0]));
}

/* An integer member of a group: name, bounds, where it goes. */
typedef struct cfg_int_member {
	const char *name;
	long long min, max;
	unsigned long *dst;
} cfg_int_member;

/* A group of integer and string members; unknown members fail. */
static tkm_err get_mixed_group(cfg_parse *p, const config_setting_t *s, const char *group,
                               const cfg_int_member *ints, size_t nints, const cfg_member *strs,
                               size_t nstrs)
{
	int n;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		return fail(p, s, "'%s' must be a group { ... }, not %s", group,
		            type_name(config_setting_type(s)));
	}
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(e);
		bool known = false;
		char full[96];
		int r;

		r = snprintf(full, sizeof(full), "%s.%s", group, name != NULL ? name : "?");
		if (r < 0 || (size_t)r >= sizeof(full)) {
			return fail(p, e, "setting name too long");
		}
		for (size_t k = 0; k < nints && name != NULL && !known; k++) {
			if (strcmp(name, ints[k].name) == 0) {
				long long v = 0;
				tkm_err err = get_int(p, e, full, ints[k].min, ints[k].max, &v);

				if (err != TKM_OK) {
					return err;
				}
				*ints[k].dst = (unsigned long)v;
				known = true;
			}
		}
		for (size_t k = 0; k < nstrs && name != NULL && !known; k++) {
			if (strcmp(name, strs[k].name) == 0) {
				tkm_err err = get_str(p, e, full, strs[k].max, strs[k].dst);

				if (err != TKM_OK) {
					return err;
				}
				known = true;
			}
		}
		if (!known) {
			return fail(p, e, "unknown setting '%s'", full);
		}
	}
	return TKM_OK;
}

/* audit = { public_key_file; checkpoint_every; checkpoint_interval; retention_days; } */
static tkm_err set_audit(cfg_parse *p, const config_setting_t *s)
{
	tkm_config *cfg = p->cfg;
	const cfg_int_member ints[] = {
	    {"checkpoint_every", 1, 1000000, &cfg->audit_checkpoint_every},
	    {"checkpoint_interval", 1, 86400, &cfg->audit_checkpoint_interval_s},
	    {"retention_days", 0, 36500, &cfg->audit_retention_days},
	};
	const cfg_member strs[] = {
	    {"public_key_file", &cfg->audit_public_key_file, TKM_CONFIG_MAX_PATH, false},
	};

	return get_mixed_group(p, s, "audit", ints, sizeof(ints) / sizeof(ints[0]), strs, 1);
}

/* auth = { password and lockout rules, session lifetimes, Argon2id cost, approvals } */
static tkm_err set_auth(cfg_parse *p, const config_setting_t *s)
{
	tkm_config *cfg = p->cfg;
	const cfg_int_member ints[] = {
	    {"password_min_length", 8, 256, &cfg->auth_password_min_length},
	    {"password_history", 1, 24, &cfg->auth_password_history},
	    {"password_max_age_days", 0, 3650, &cfg->auth_password_max_age_days},
	    /* PCI DSS v4 8.3.4: lock out after at most 10 attempts. */
	    {"max_failed_logins", 1, 10, &cfg->auth_max_failed_logins},
	    {"lockout_seconds", 1, 86400 * 7, &cfg->auth_lockout_s},
	    {"session_idle_seconds", 1, 86400, &cfg->auth_session_idle_s},
	    {"session_lifetime_seconds", 1, 7 * 86400, &cfg->auth_session_lifetime_s},
	    {"argon2_opslimit", 1, 16, &cfg->auth_argon2_opslimit},
	    {"argon2_memlimit_kib", 8, 4194304, &cfg->auth_argon2_memlimit_kib},
	    {"approval_ttl_seconds", 1, 7 * 86400, &cfg->auth_approval_ttl_s},
	    {"signature_window_seconds", 1, 3600, &cfg->auth_signature_window_s},
	};
	const cfg_member strs[] = {
	    {"common_passwords_file", &cfg->auth_common_passwords_file, TKM_CONFIG_MAX_PATH, false},
	};

	return get_mixed_group(p, s, "auth", ints, sizeof(ints) / sizeof(ints[0]), strs, 1);
}

/* terminals = { enroll_code_ttl_seconds; last_seen_flush_seconds; } */
static tkm_err set_terminals(cfg_parse *p, const config_setting_t *s)
{
	tkm_config *cfg = p->cfg;
	const cfg_int_member ints[] = {
	    {"enroll_code_ttl_seconds", 60, 30 * 86400, &cfg->terminal_enroll_code_ttl_s},
	    {"last_seen_flush_seconds", 1, 3600, &cfg->terminal_last_seen_flush_s},
	};

	return get_mixed_group(p, s, "terminals", ints, sizeof(ints) / sizeof(ints[0]), NULL, 0);
}

static const struct {
	const char *name;
	tkm_err (*set)(cfg_parse *p, const config_setting_t *s);
} tkm_config_settings[] = {
    {"listen", set_listen},
    {"workers", set_workers},
    {"max_message_size", set_max_message_size},
    {"max_depth", set_max_depth},
    {"max_string_length", set_max_string_length},
    {"allow_insecure_tcp", set_allow_insecure_tcp},
    {"tls", set_tls},
    {"hsm", set_hsm},
    {"database", set_database},
    {"audit", set_audit},
    {"auth", set_auth},
    {"terminals", set_terminals},
    {"log_level", set_log_level},
};

static tkm_err set_defaults(tkm_config *cfg)
{
	static const char *const listen[] = {"ipc://./var/tkmd.sock", "tcp://127.0.0.1:7450"};

	if (cfg->listen == NULL) {
		cfg->listen = calloc(2, sizeof(*cfg->listen));
		if (cfg->listen == NULL) {
			return TKM_E_NOMEM;
		}
		cfg->nlisten = 2;
		for (size_t i = 0; i < 2; i++) {
			cfg->listen[i] = strdup(listen[i]);
			if (cfg->listen[i] == NULL) {
				return TKM_E_NOMEM;
			}
		}
	}
	if (cfg->database_path == NULL) {
		cfg->database_path = strdup("./var/tkm.db");
		if (cfg->database_path == NULL) {
			return TKM_E_NOMEM;
		}
	}
	if (cfg->audit_public_key_file == NULL) {
		size_t n = strlen(cfg->database_path) + sizeof(".audit-key.pub");

		cfg->audit_public_key_file = malloc(n);
		if (cfg->audit_public_key_file == NULL) {
			return TKM_E_NOMEM;
		}
		memcpy(cfg->audit_public_key_file, cfg->database_path, strlen(cfg->database_path));
		memcpy(cfg->audit_public_key_file + strlen(cfg->database_path), ".audit-key.pub",
		       sizeof(".audit-key.pub"));
	}
	return TKM_OK;
}

/* Checks that need the whole file. */
static tkm_err check_whole(cfg_parse *p, config_setting_t *root)
{
	tkm_config *cfg = p->cfg;
	bool any_tls = false;

	for (size_t i = 0; i < cfg->nlisten; i++) {
		tkm_config_scheme scheme;
		if (tkm_config_url_scheme(cfg->listen[i], &scheme) == TKM_OK &&
		    scheme == TKM_SCHEME_TLS) {
			any_tls = true;
		}
	}
	if (any_tls && cfg->tls_cert_file == NULL) {
		return fail(p, config_setting_get_member(root, "listen"),
		            "a tls+tcp:// listen URL needs a tls = { cert_file = \"...\"; "
		            "key_file = \"...\"; } group");
	}
	if (!any_tls && cfg->tls_cert_file != NULL) {
		return fail(p, config_setting_get_member(root, "tls"),
		            "'tls' is set but no tls+tcp:// URL is listed in 'listen'");
	}
	if (cfg->max_string_length > cfg->max_message_size &&
	    config_setting_get_member(root, "max_string_length") == NULL) {
		/* Only the default is too large: follow the smaller message limit. */
		cfg->max_string_length = cfg->max_message_size;
	}
	if (cfg->max_string_length > cfg->max_message_size) {
		return fail(p, config_setting_get_member(root, "max_string_length"),
		            "'max_string_length' (%zu) must not exceed 'max_message_size' (%zu)",
		            cfg->max_string_length, cfg->max_message_size);
	}
	return TKM_OK;
}

tkm_err tkm_config_load(const char *path, tkm_config **out, char *why, size_t why_len)
{
	tkm_config *cfg = NULL;
	config_t lc;
	config_setting_t *root;
	FILE *f = NULL;
	cfg_parse p = {.path = path, .why = why, .why_len = why_len};
	tkm_err err;
	int n;

	*out = NULL;
	config_init(&lc);
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	p.cfg = cfg;
	cfg->workers = 8;
	cfg->max_message_size = 1048576;
	cfg->max_depth = 16;
	cfg->max_string_length = 65536;
	cfg->allow_insecure_tcp = false;
	cfg->log_level = TKM_LOG_INFO;
	cfg->audit_checkpoint_every = 1000;
	cfg->audit_checkpoint_interval_s = 60;
	cfg->audit_retention_days = 1095;
	cfg->auth_password_min_length = 12;
	cfg->auth_password_history = 4;
	cfg->auth_password_max_age_days = 90;
	cfg->auth_max_failed_logins = 5;
	cfg->auth_lockout_s = 1800;
	cfg->auth_session_idle_s = 900;
	cfg->auth_session_lifetime_s = 8 * 3600;
	cfg->auth_argon2_opslimit = 2;         /* crypto_pwhash_OPSLIMIT_INTERACTIVE */
	cfg->auth_argon2_memlimit_kib = 65536; /* crypto_pwhash_MEMLIMIT_INTERACTIVE */
	cfg->auth_approval_ttl_s = 3600;
	cfg->auth_signature_window_s = 300;
	cfg->terminal_enroll_code_ttl_s = 86400;
	cfg->terminal_last_seen_flush_s = 60;

	f = fopen(path, "r");
	if (f == NULL) {
		err = fail(&p, NULL, "cannot open configuration file: %s", strerror(errno));
		goto out;
	}
	if (config_read(&lc, f) != CONFIG_TRUE) {
		const char *file = config_error_file(&lc) != NULL ? config_error_file(&lc) : path;
		tkm_why_set(why, why_len, "%s:%d: %s", file, config_error_line(&lc),
		            config_error_text(&lc) != NULL ? config_error_text(&lc)
		                                           : "syntax error");
		err = TKM_E_CONFIG;
		goto out;
	}
	root = config_root_setting(&lc);
	n = config_setting_length(root);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);
		size_t k;

		for (k = 0; k < sizeof(tkm_config_settings) / sizeof(tkm_config_settings[0]); k++) {
			if (name != NULL && strcmp(name, tkm_config_settings[k].name) == 0) {
				break;
			}
		}
		if (k == sizeof(tkm_config_settings) / sizeof(tkm_config_settings[0])) {
			err = fail(&p, s, "unknown setting '%s'", name != NULL ? name : "?");
			goto out;
		}
		err = tkm_config_settings[k].set(&p, s);
		if (err != TKM_OK) {
			goto out;
		}
	}
	err = set_defaults(cfg);
	if (err != TKM_OK) {
		goto out;
	}
	err = check_whole(&p, root);
	if (err != TKM_OK) {
		goto out;
	}
	*out = cfg;
	cfg = NULL;
out:
	if (err == TKM_E_NOMEM) {
		(void)fail(&p, NULL, "out of memory");
	}
	if (f != NULL) {
		fclose(f);
	}
	config_destroy(&lc);
	tkm_config_free(cfg);
	return err;
}

void tkm_config_free(tkm_config *cfg)
{
	if (cfg == NULL) {
		return;
	}
	for (size_t i = 0; i < cfg->nlisten; i++) {
		free(cfg->listen[i]);
	}
	free(cfg->listen);
	free(cfg->tls_cert_file);
	free(cfg->tls_key_file);
	free(cfg->hsm_module);
	free(cfg->hsm_token);
	free(cfg->hsm_pin_file);
	free(cfg->hsm_pin_env);
	free(cfg->database_path);
	free(cfg->audit_public_key_file);
	free(cfg->auth_common_passwords_file);
	free(cfg);
}
