/*
 * tkm_terminal.c - tkm-terminal, the tool that runs on a POS terminal:
 * `enroll` turns a one-time enrollment code into the terminal's identity,
 * `checkin` reports versions and health and prints the pending actions.
 *
 * The state directory holds everything the terminal keeps:
 *
 *   sign.key       the Ed25519 request-signing key (tkm_devsig key file, 0600)
 *   box.key        the X25519 key for sealed secrets, one line
 *                  "tkm-x25519-sk " <base64 of the 32-byte secret key> "\n" (0600)
 *   terminal.conf  url=, principal=, terminal=, and ca_file=, server_name= when
 *                  TLS was used (0600), written last and atomically
 *
 * Enrollment proof (terminal.enroll): sig = Ed25519 with the new signing key
 * over the deterministic CBOR array
 * ["tkm enroll v1", code, manufacturer, serial, sign_pk, box_pk], code in its
 * normal form (uppercase, '-' and ' ' removed). A refused enrollment leaves
 * the directory as it found it. Secret keys live in sodium_malloc memory,
 * are never printed, and are wiped before the memory is freed.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "tkm/client.h"
#include "tkm_cbor.h"
#include "tkm_devsig.h"
#include "tkm_devtool.h"
#include "tkm_why.h"

#define ENROLL_CONTEXT  "tkm enroll v1"
#define SIGN_KEY_FILE   "sign.key"
#define BOX_KEY_FILE    "box.key"
#define CONF_FILE       "terminal.conf"
#define CONF_TMP_FILE   "terminal.conf.tmp"
#define BOX_KEY_TAG     "tkm-x25519-sk "
#define CODE_MAX        128  /* characters of a code in its normal form */
#define FIELD_MAX       64   /* bytes of a manufacturer, serial or version */
#define URL_MAX         1024 /* bytes of a URL in terminal.conf */
#define SERVER_NAME_MAX 255
#define CONF_MAX        8192 /* bytes of terminal.conf */
#define HEALTH_MAX      16   /* --health entries */
#define HEALTH_KEY_MAX  32
#define ACTION_MAX      64
#define MSG_MAX         (4 * 1024)

/* What enrollment keeps secret, in one sodium_malloc'd block. */
typedef struct enroll_secrets {
	uint8_t seed[TKM_DEVSIG_SEED_LEN];
	uint8_t sign_sk[crypto_sign_SECRETKEYBYTES];
	uint8_t box_sk[crypto_box_SECRETKEYBYTES];
	char box_line[sizeof(BOX_KEY_TAG) +
	              sodium_base64_ENCODED_LEN(crypto_box_SECRETKEYBYTES,
	                                        sodium_base64_VARIANT_ORIGINAL)];
} enroll_secrets;

/* terminal.conf. */
typedef struct term_conf {
	char url[URL_MAX + 1];
	char principal[TKM_DEVSIG_PRINCIPAL_MAX + 1];
	uint64_t terminal;
	char ca_file[TKM_DEVTOOL_PATH_MAX];
	char server_name[SERVER_NAME_MAX + 1];
} term_conf;

/* The paths in a state directory. */
typedef struct state_paths {
	char sign[TKM_DEVTOOL_PATH_MAX];
	char box[TKM_DEVTOOL_PATH_MAX];
	char conf[TKM_DEVTOOL_PATH_MAX];
	char tmp[TKM_DEVTOOL_PATH_MAX];
} state_paths;

static bool state_paths_of(const char *dir, state_paths *p)
{
	return tkm_devtool_join(p->sign, sizeof(p->sign), dir, SIGN_KEY_FILE) &&
	       tkm_devtool_join(p->box, sizeof(p->box), dir, BOX_KEY_FILE) &&
	       tkm_devtool_join(p->conf, sizeof(p->conf), dir, CONF_FILE) &&
	       tkm_devtool_join(p->tmp, sizeof(p->tmp), dir, CONF_TMP_FILE);
}

/*
 * The code in its normal form into out (CODE_MAX + 1 bytes): letters
 * uppercased, '-' and ' ' dropped. False when anything else is in it or it
 * is empty or too long.
 */
static bool code_normalise(const char *code, char *out)
{
	size_t n = 0;

	for (const char *p = code; *p != '\0'; p++) {
		char c = *p;

		if (c == '-' || c == ' ') {
			continue;
		}
		if (c >= 'a' && c <= 'z') {
			c = (char)(c - 'a' + 'A');
		}
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) || n == CODE_MAX) {
			return false;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return n > 0;
}

/*
 * The state directory: a directory (not a link) of this user that group and
 * others cannot use. With create, a missing directory is made (0700, its
 * parent must exist) and *created set. Returns an exit status and has
 * reported the failure.
 */
static int state_dir_check(bool json, const char *dir, bool create, bool *created)
{
	char msg[MSG_MAX];
	struct stat sb;

	if (created != NULL) {
		*created = false;
	}
	if (lstat(dir, &sb) != 0) {
		if (errno != ENOENT || !create) {
			tkm_why_set(msg, sizeof(msg), "state directory %s: %s", dir,
			            strerror(errno));
			return tkm_devtool_fail(json, errno == ENOENT ? TKM_E_NOT_FOUND : TKM_E_IO,
			                        msg);
		}
		if (mkdir(dir, 0700) != 0) {
			tkm_why_set(msg, sizeof(msg), "cannot create the state directory %s: %s",
			            dir, strerror(errno));
			return tkm_devtool_fail(json, TKM_E_IO, msg);
		}
		*created = true;
		if (lstat(dir, &sb) != 0) {
			tkm_why_set(msg, sizeof(msg), "state directory %s: %s", dir,
			            strerror(errno));
			return tkm_devtool_fail(json, TKM_E_IO, msg);
		}
	}
	if (!S_ISDIR(sb.st_mode)) {
		tkm_why_set(msg, sizeof(msg), "state directory %s is not a directory", dir);
		return tkm_devtool_fail(json, TKM_E_CONFIG, msg);
	}
	if (sb.st_uid != geteuid() || (sb.st_mode & 077) != 0) {
		tkm_why_set(msg, sizeof(msg),
		            "state directory %s must belong to this user with mode 0700 (it holds "
		            "private keys)",
		            dir);
		return tkm_devtool_fail(json, TKM_E_CONFIG, msg);
	}
	return TKM_DEVTOOL_EXIT_OK;
}

/* ---- terminal.conf ---- */

/* One "key=value\n" line into buf at *n; false when it does not fit. */
static bool conf_line(char *buf, size_t cap, size_t *n, const char *key, const char *value)
{
	int r = snprintf(buf + *n, cap - *n, "%s=%s\n", key, value);

	if (r < 0 || (size_t)r >= cap - *n) {
		return false;
	}
	*n += (size_t)r;
	return true;
}

/* Write terminal.conf: a temporary file, synced, renamed, and the directory synced. */
static tkm_err conf_write(const char *dir, const state_paths *sp, const term_conf *tc, char *why,
                          size_t why_len)
{
	static const char head[] = "# this terminal's enrollment, written by tkm-terminal enroll\n";
	char buf[CONF_MAX];
	char id[24];
	size_t n = 0;
	tkm_err err;

	memcpy(buf, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	tkm_why_set(id, sizeof(id), "%llu", (unsigned long long)tc->terminal);
	if (!conf_line(buf, sizeof(buf), &n, "url", tc->url) ||
	    !conf_line(buf, sizeof(buf), &n, "principal", tc->principal) ||
	    !conf_line(buf, sizeof(buf), &n, "terminal", id) ||
	    (tc->ca_file[0] != '\0' && !conf_line(buf, sizeof(buf), &n, "ca_file", tc->ca_file)) ||
	    (tc->server_name[0] != '\0' &&
	     !conf_line(buf, sizeof(buf), &n, "server_name", tc->server_name))) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "%s is too long", sp->conf);
	}
	if ((err = tkm_devtool_write_new(sp->tmp, buf, n, 0600, why, why_len)) != TKM_OK) {
		return err;
	}
	if (rename(sp->tmp, sp->conf) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot rename %s to %s: %s", sp->tmp,
		                   sp->conf, strerror(errno));
		(void)unlink(sp->tmp);
		return err;
	}
	return tkm_devtool_sync_dir(dir, why, why_len);
}

/* value (len bytes) into buf of cap bytes as text: false when empty, too long or with controls. */
static bool conf_value(const char *value, size_t len, char *buf, size_t cap)
{
	if (len >= cap || !tkm_devtool_text_ok(value, len, cap - 1)) {
		return false;
	}
	memcpy(buf, value, len);
	buf[len] = '\0';
	return true;
}

/* One "key=value" line (without its newline) into tc; false with why when it is wrong. */
static bool conf_parse_line(const char *line, size_t len, term_conf *tc, unsigned *seen, char *why,
                            size_t why_len)
{
	static const char *const keys[] = {"url", "principal", "terminal", "ca_file",
	                                   "server_name"};
	const char *eq = memchr(line, '=', len);
	size_t klen, vlen;
	const char *v;
	char num[24];
	char *end;
	size_t k;
	bool ok;

	if (eq == NULL) {
		tkm_why_set(why, why_len, "a line is not key=value");
		return false;
	}
	klen = (size_t)(eq - line);
	v = eq + 1;
	vlen = len - klen - 1;
	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		if (strlen(keys[k]) == klen &&
		    memcmp(keys[k], line, klen) == 0) { /* lint: memcmp ok (public data) */
			break;
		}
	}
	if (k == sizeof(keys) / sizeof(keys[0]) || (*seen & (1u << k)) != 0) {
		tkm_why_set(why, why_len, "an unknown or repeated key");
		return false;
	}
	*seen |= 1u << k;
	switch (k) {
	case 0:
		ok = conf_value(v, vlen, tc->url, sizeof(tc->url));
		break;
	case 1:
		ok = conf_value(v, vlen, tc->principal, sizeof(tc->principal)) &&
		     tkm_devsig_principal_valid(tc->principal, vlen);
		break;
	case 2:
		errno = 0;
		ok = conf_value(v, vlen, num, sizeof(num)) && num[0] >= '1' && num[0] <= '9' &&
		     (tc->terminal = strtoull(num, &end, 10)) != 0 && *end == '\0' && errno == 0 &&
		     tc->terminal <= INT64_MAX;
		break;
	case 3:
		ok = conf_value(v, vlen, tc->ca_file, sizeof(tc->ca_file));
		break;
	default:
		ok = conf_value(v, vlen, tc->server_name, sizeof(tc->server_name));
		break;
	}
	if (!ok) {
		tkm_why_set(why, why_len, "a bad %s", keys[k]);
	}
	return ok;
}

/*
 * Read terminal.conf: a regular file of this user that group and others
 * cannot write, in the format conf_write() writes (comment lines start with
 * '#'); url, principal and terminal are required.
 */
static int conf_read(bool json, const state_paths *sp, term_conf *tc)
{
	char buf[CONF_MAX + 1];
	char msg[MSG_MAX];
	char why[128] = "";
	struct stat sb;
	unsigned seen = 0;
	size_t n = 0;
	ssize_t r;
	int fd;
	tkm_err err = TKM_OK;

	memset(tc, 0, sizeof(*tc));
	fd = open(sp->conf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;

		tkm_why_set(msg, sizeof(msg), "cannot read %s: %s%s", sp->conf, strerror(e),
		            e == ENOENT ? " (run tkm-terminal enroll first)" : "");
		return tkm_devtool_fail(json, e == ENOENT ? TKM_E_NOT_FOUND : TKM_E_CONFIG, msg);
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 022) != 0) {
		tkm_why_set(why, sizeof(why),
		            "not a regular file of this user, or writable by group or others");
		err = TKM_E_CONFIG;
	}
	while (err == TKM_OK && n < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - n)) != 0) {
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			tkm_why_set(why, sizeof(why), "%s", strerror(errno));
			err = TKM_E_IO;
			break;
		}
		n += (size_t)r;
	}
	(void)close(fd);
	if (err == TKM_OK && (n > CONF_MAX || n == 0 || buf[n - 1] != '\n')) {
		tkm_why_set(why, sizeof(why), "empty, too long, or its last line is cut short");
		err = TKM_E_CONFIG;
	}
	for (size_t i = 0; err == TKM_OK && i < n;) {
		const char *nl = memchr(buf + i, '\n', n - i);
		size_t len = (size_t)(nl - (buf + i));

		if (buf[i] != '#' && !conf_parse_line(buf + i, len, tc, &seen, why, sizeof(why))) {
			err = TKM_E_CONFIG;
		}
		i += len + 1;
	}
	if (err == TKM_OK && (seen & 7u) != 7u) {
		tkm_why_set(why, sizeof(why), "url, principal or terminal is missing");
		err = TKM_E_CONFIG;
	}
	if (err != TKM_OK) {
		tkm_why_set(msg, sizeof(msg), "%s: %s", sp->conf, why);
		return tkm_devtool_fail(json, err, msg);
	}
	return TKM_DEVTOOL_EXIT_OK;
}

/* ---- enroll ---- */

/* The enrollment message, signed with the new key into sig. */
static tkm_err enroll_sign(const enroll_secrets *s, const char *code, const char *manufacturer,
                           const char *serial, const uint8_t sign_pk[static 32],
                           const uint8_t box_pk[static 32], uint8_t sig[static 64])
{
	tkm_cbor_w *w = NULL;
	const uint8_t *m;
	size_t mlen;
	tkm_err err;

	if ((err = tkm_cbor_w_new(1024, &w)) != TKM_OK) {
		return err;
	}
	tkm_cbor_put_array(w, 6);
	tkm_cbor_put_cstr(w, ENROLL_CONTEXT);
	tkm_cbor_put_cstr(w, code);
	tkm_cbor_put_cstr(w, manufacturer);
	tkm_cbor_put_cstr(w, serial);
	tkm_cbor_put_bytes(w, sign_pk, 32);
	tkm_cbor_put_bytes(w, box_pk, 32);
	if ((err = tkm_cbor_w_finish(w, &m, &mlen)) == TKM_OK &&
	    crypto_sign_detached(sig, NULL, m, mlen, s->sign_sk) != 0) {
		err = TKM_E_CRYPTO;
	}
	tkm_cbor_w_free(w);
	return err;
}

/*
 * Make both key pairs: sign.key through tkm_devsig (its one file format) and
 * box.key. *made_sign and *made_box say which files exist now.
 */
static tkm_err enroll_keys(enroll_secrets *s, const state_paths *sp, uint8_t sign_pk[static 32],
                           uint8_t box_pk[static 32], bool *made_sign, bool *made_box, char *why,
                           size_t why_len)
{
	static const char tag[] = BOX_KEY_TAG;
	uint8_t check_pk[crypto_sign_PUBLICKEYBYTES];
	tkm_devsig_key *key = NULL;
	size_t len;
	tkm_err err;

	randombytes_buf(s->seed, sizeof(s->seed));
	if ((err = tkm_devsig_key_from_seed(s->seed, &key)) != TKM_OK) {
		return tkm_why_fail(why, why_len, err, "cannot make the signing key");
	}
	tkm_devsig_key_public(key, sign_pk);
	err = tkm_devsig_key_write(sp->sign, key, why, why_len);
	tkm_devsig_key_free(key);
	if (err != TKM_OK) {
		return err;
	}
	*made_sign = true;
	if (crypto_sign_seed_keypair(check_pk, s->sign_sk, s->seed) != 0 ||
	    sodium_memcmp(check_pk, sign_pk, sizeof(check_pk)) != 0 ||
	    crypto_box_keypair(box_pk, s->box_sk) != 0) {
		return tkm_why_fail(why, why_len, TKM_E_CRYPTO, "cannot make the key pairs");
	}
	memcpy(s->box_line, tag, sizeof(tag) - 1);
	(void)sodium_bin2base64(s->box_line + sizeof(tag) - 1,
	                        sizeof(s->box_line) - sizeof(tag) + 1, s->box_sk, sizeof(s->box_sk),
	                        sodium_base64_VARIANT_ORIGINAL);
	len = strlen(s->box_line);
	s->box_line[len++] = '\n';
	err = tkm_devtool_write_new(sp->box, s->box_line, len, 0600, why, why_len);
	if (err == TKM_OK) {
		*made_box = true;
	}
	return err;
}

/* The params of terminal.enroll, keys in deterministic order. */
static void enroll_params(tkm_cbor_w *w, const char *code, const char *manufacturer,
                          const char *serial, const uint8_t sign_pk[static 32],
                          const uint8_t box_pk[static 32], const uint8_t sig[static 64])
{
	tkm_cbor_put_map(w, 6);
	tkm_cbor_put_cstr(w, "sig");
	tkm_cbor_put_bytes(w, sig, 64);
	tkm_cbor_put_cstr(w, "code");
	tkm_cbor_put_cstr(w, code);
	tkm_cbor_put_cstr(w, "box_pk");
	tkm_cbor_put_bytes(w, box_pk, 32);
	tkm_cbor_put_cstr(w, "serial");
	tkm_cbor_put_cstr(w, serial);
	tkm_cbor_put_cstr(w, "sign_pk");
	tkm_cbor_put_bytes(w, sign_pk, 32);
	tkm_cbor_put_cstr(w, "manufacturer");
	tkm_cbor_put_cstr(w, manufacturer);
}

/* Check the result of terminal.enroll into tc. */
static bool enroll_result(tkm_devtool_reply *r, term_conf *tc)
{
	const char *s;
	size_t n;

	if (!tkm_devtool_get_uint(r, r->root, "terminal", &tc->terminal) ||
	    !tkm_devtool_get_text(r, r->root, "principal", TKM_DEVSIG_PRINCIPAL_MAX, &s, &n)) {
		return false;
	}
	if (tc->terminal == 0 || tc->terminal > INT64_MAX) {
		return tkm_devtool_reply_bad(r, "'terminal' is out of range");
	}
	if (!tkm_devsig_principal_valid(s, n)) {
		return tkm_devtool_reply_bad(r, "'principal' is not a valid principal");
	}
	memcpy(tc->principal, s, n);
	tc->principal[n] = '\0';
	if (!tkm_cbor_text_eq(tkm_cbor_map_get(r->root, "state"), "active")) {
		return tkm_devtool_reply_bad(r, "'state' is not \"active\"");
	}
	return true;
}

/* The sentence for a refused enrollment: what the server said, and what to do. */
static int enroll_refused(bool json, tkm_err err, const char *server)
{
	char msg[MSG_MAX];

	switch (err) {
	case TKM_E_NOT_FOUND:
		tkm_why_set(msg, sizeof(msg),
		            "the enrollment code is not known: check it for typing mistakes, or "
		            "ask for a new one (server: %s)",
		            server);
		break;
	case TKM_E_FAILED_PRECONDITION:
		tkm_why_set(msg, sizeof(msg),
		            "enrollment refused: %s (a used or expired code cannot be used again: "
		            "ask for a new one; check --serial and --manufacturer)",
		            server);
		break;
	case TKM_E_TIMEOUT:
		tkm_why_set(msg, sizeof(msg),
		            "%s (the server may have used the code; if a retry says it is used, "
		            "ask for a new one)",
		            server);
		break;
	default:
		tkm_why_set(msg, sizeof(msg), "%s", server);
		break;
	}
	return tkm_devtool_fail(json, err, msg);
}

static int cmd_enroll(const tkm_devtool_cmd *cmd, int argc, char **argv)
{
	const char *code = NULL, *serial = NULL, *manufacturer = NULL, *dir = NULL;
	const char *timeout = NULL;
	char norm[CODE_MAX + 1];
	char ca_abs[PATH_MAX];
	char msg[MSG_MAX];
	char why[MSG_MAX] = "";
	tkm_devtool_conn cn;
	tkm_devtool_reply r;
	state_paths sp;
	term_conf tc;
	enroll_secrets *sec = NULL;
	tkm_client *c = NULL;
	tkm_cbor_w *params = NULL;
	uint8_t sign_pk[32], box_pk[32], sig[64];
	bool help = false, created = false, made_sign = false, made_box = false, done = false;
	tkm_err err;
	int rc;

	memset(&cn, 0, sizeof(cn));
	memset(&r, 0, sizeof(r));
	memset(&tc, 0, sizeof(tc));
	const tkm_devtool_opt opts[] = {
	    {"--url", &cn.url, NULL, NULL, 0, NULL},
	    {"--code", &code, NULL, NULL, 0, NULL},
	    {"--serial", &serial, NULL, NULL, 0, NULL},
	    {"--manufacturer", &manufacturer, NULL, NULL, 0, NULL},
	    {"--state-dir", &dir, NULL, NULL, 0, NULL},
	    {"--ca-file", &cn.ca_file, NULL, NULL, 0, NULL},
	    {"--server-name", &cn.server_name, NULL, NULL, 0, NULL},
	    {"--timeout", &timeout, NULL, NULL, 0, NULL},
	    {"--json", NULL, NULL, NULL, 0, &cn.json},
	};

	rc = tkm_devtool_parse(cmd, opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &help);
	if (rc != TKM_DEVTOOL_EXIT_OK || help) {
		return rc;
	}
	if ((rc = tkm_devtool_need(cn.url, "--url")) != 0 ||
	    (rc = tkm_devtool_need(code, "--code")) != 0 ||
	    (rc = tkm_devtool_need(serial, "--serial")) != 0 ||
	    (rc = tkm_devtool_need(manufacturer, "--manufacturer")) != 0 ||
	    (rc = tkm_devtool_need(dir, "--state-dir")) != 0 ||
	    (rc = tkm_devtool_parse_timeout(timeout, &cn.timeout_ms)) != 0) {
		return rc;
	}
	if (!tkm_devtool_text_ok(serial, strlen(serial), FIELD_MAX) ||
	    !tkm_devtool_text_ok(manufacturer, strlen(manufacturer), FIELD_MAX)) {
		return tkm_devtool_usage("--serial and --manufacturer are 1 to 64 bytes of text "
		                         "without control characters",
		                         NULL);
	}
	if (!tkm_devtool_text_ok(cn.url, strlen(cn.url), URL_MAX) ||
	    (cn.server_name != NULL &&
	     !tkm_devtool_text_ok(cn.server_name, strlen(cn.server_name), SERVER_NAME_MAX))) {
		return tkm_devtool_usage("--url or --server-name is too long or holds control "
		                         "characters",
		                         NULL);
	}
	/* checkin runs from anywhere: keep the CA file's absolute path. */
	if (cn.ca_file != NULL) {
		if (realpath(cn.ca_file, ca_abs) == NULL) {
			tkm_why_set(msg, sizeof(msg), "--ca-file %s: %s", cn.ca_file,
			            strerror(errno));
			return tkm_devtool_usage(msg, NULL);
		}
		if (!tkm_devtool_text_ok(ca_abs, strlen(ca_abs), sizeof(tc.ca_file) - 1)) {
			return tkm_devtool_usage("the --ca-file path is too long or holds control "
			                         "characters",
			                         NULL);
		}
		cn.ca_file = ca_abs;
	}
	if (strlen(dir) + 32 >= TKM_DEVTOOL_PATH_MAX || !state_paths_of(dir, &sp)) {
		return tkm_devtool_usage("--state-dir is too long", NULL);
	}
	if (!code_normalise(code, norm)) {
		sodium_memzero(norm, sizeof(norm));
		return tkm_devtool_usage("the enrollment code is letters and digits (dashes and "
		                         "spaces are ignored), at most 128 of them",
		                         NULL);
	}
	if ((rc = state_dir_check(cn.json, dir, true, &created)) != TKM_DEVTOOL_EXIT_OK) {
		goto out;
	}
	{
		const char *const files[] = {sp.sign, sp.box, sp.conf, sp.tmp};
		struct stat sb;

		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			if (lstat(files[i], &sb) == 0 || errno != ENOENT) {
				tkm_why_set(
				    msg, sizeof(msg),
				    "%s already holds an enrollment (%s exists): a terminal "
				    "enrolls once; use an empty --state-dir for a new one",
				    dir, files[i]);
				rc = tkm_devtool_fail(cn.json, TKM_E_ALREADY_EXISTS, msg);
				goto out;
			}
		}
	}
	/* Connect first: no keys are made for a server that is not there. */
	if ((rc = tkm_devtool_connect(&cn, &c)) != TKM_DEVTOOL_EXIT_OK) {
		goto out;
	}
	if ((sec = sodium_malloc(sizeof(*sec))) == NULL) {
		rc = tkm_devtool_fail(cn.json, TKM_E_NOMEM, NULL);
		goto out;
	}
	err = enroll_keys(sec, &sp, sign_pk, box_pk, &made_sign, &made_box, why, sizeof(why));
	if (err == TKM_OK) {
		err = tkm_devtool_sync_dir(dir, why, sizeof(why));
	}
	if (err == TKM_OK &&
	    (err = enroll_sign(sec, norm, manufacturer, serial, sign_pk, box_pk, sig)) != TKM_OK) {
		tkm_why_set(why, sizeof(why), "cannot sign the enrollment request");
	}
	if (err == TKM_OK && (err = tkm_cbor_w_new(4096, &params)) == TKM_OK) {
		enroll_params(params, norm, manufacturer, serial, sign_pk, box_pk, sig);
	}
	sodium_free(sec);
	sec = NULL;
	if (err != TKM_OK) {
		rc = tkm_devtool_fail(cn.json, err, why);
		goto out;
	}
	if ((err = tkm_devtool_call(c, &cn, "terminal.enroll", params, &r)) != TKM_OK) {
		rc = enroll_refused(cn.json, err, r.why);
		goto out;
	}
	if (!enroll_result(&r, &tc)) {
		rc = tkm_devtool_fail(cn.json, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	/* From here on the server has bound the keys: keep them whatever happens. */
	done = true;
	tkm_why_set(tc.url, sizeof(tc.url), "%s", cn.url);
	tkm_why_set(tc.ca_file, sizeof(tc.ca_file), "%s", cn.ca_file != NULL ? cn.ca_file : "");
	tkm_why_set(tc.server_name, sizeof(tc.server_name), "%s",
	            cn.server_name != NULL ? cn.server_name : "");
	if ((err = conf_write(dir, &sp, &tc, why, sizeof(why))) != TKM_OK) {
		tkm_why_set(msg, sizeof(msg),
		            "enrolled as terminal %llu (principal %s), but %s; the keys stay in %s",
		            (unsigned long long)tc.terminal, tc.principal, why, dir);
		rc = tkm_devtool_fail(cn.json, err, msg);
		goto out;
	}
	if (cn.json) {
		printf("{\"terminal\":%llu,\"principal\":", (unsigned long long)tc.terminal);
		tkm_devtool_put_json_str(stdout, tc.principal);
		fputs(",\"state\":\"active\",\"state_dir\":", stdout);
		tkm_devtool_put_json_str(stdout, dir);
		fputs("}\n", stdout);
	} else {
		printf("enrolled as terminal %llu (principal ", (unsigned long long)tc.terminal);
		tkm_devtool_put_text(stdout, tc.principal);
		fputs("); keys and configuration in ", stdout);
		tkm_devtool_put_text(stdout, dir);
		fputc('\n', stdout);
	}
	rc = TKM_DEVTOOL_EXIT_OK;
out:
	tkm_devtool_reply_free(&r);
	tkm_client_close(c);
	tkm_cbor_w_free(params);
	sodium_free(sec);
	sodium_memzero(sig, sizeof(sig));
	sodium_memzero(norm, sizeof(norm));
	if (rc != TKM_DEVTOOL_EXIT_OK && !done) {
		if (made_sign) {
			(void)unlink(sp.sign);
		}
		if (made_box) {
			(void)unlink(sp.box);
		}
		if (created) {
			(void)rmdir(dir);
		}
	}
	return rc;
}

/* ---- checkin ---- */

/* One --health KEY=VALUE. */
typedef struct health_item {
	const char *key;
	size_t klen;
	const char *value;
	size_t vlen;
} health_item;

/* Deterministic CBOR order of text keys: shorter first, then bytewise. */
static int health_cmp(const void *a, const void *b)
{
	const health_item *x = a, *y = b;

	if (x->klen != y->klen) {
		return x->klen < y->klen ? -1 : 1;
	}
	return memcmp(x->key, y->key, x->klen); /* lint: memcmp ok (public data) */
}

static bool health_key_ok(const char *k, size_t n)
{
	if (n == 0 || n > HEALTH_KEY_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = k[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.')) {
			return false;
		}
	}
	return true;
}

/* The --health arguments, checked and sorted. Returns an exit status. */
static int health_parse(const char *const *args, size_t n, health_item *items)
{
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');

		if (eq == NULL) {
			return tkm_devtool_usage("--health is KEY=VALUE", args[i]);
		}
		items[i].key = args[i];
		items[i].klen = (size_t)(eq - args[i]);
		items[i].value = eq + 1;
		items[i].vlen = strlen(eq + 1);
		if (!health_key_ok(items[i].key, items[i].klen)) {
			return tkm_devtool_usage("a --health KEY is 1 to 32 letters, digits, '_', "
			                         "'-' or '.'",
			                         args[i]);
		}
		if (items[i].vlen > 0 && !tkm_devtool_text_ok(items[i].value, items[i].vlen, 64)) {
			return tkm_devtool_usage("a --health VALUE is up to 64 bytes of text "
			                         "without control characters",
			                         args[i]);
		}
	}
	qsort(items, n, sizeof(items[0]), health_cmp);
	for (size_t i = 1; i < n; i++) {
		if (health_cmp(&items[i - 1], &items[i]) == 0) {
			return tkm_devtool_usage("--health names a key twice", NULL);
		}
	}
	return TKM_DEVTOOL_EXIT_OK;
}

/* A health value: true/false as a bool, a plain decimal number as a uint, else text. */
static void health_value(tkm_cbor_w *w, const health_item *h)
{
	unsigned long long u;
	char *end;

	if (strcmp(h->value, "true") == 0 || strcmp(h->value, "false") == 0) {
		tkm_cbor_put_bool(w, h->value[0] == 't');
		return;
	}
	if (h->vlen > 0 && h->value[0] >= '0' && h->value[0] <= '9' &&
	    (h->value[0] != '0' || h->vlen == 1)) {
		errno = 0;
		u = strtoull(h->value, &end, 10);
		if (errno == 0 && *end == '\0') {
			tkm_cbor_put_uint(w, (uint64_t)u);
			return;
		}
	}
	tkm_cbor_put_text(w, h->value, h->vlen);
}

/* The params of terminal.checkin, keys in deterministic order. */
static void checkin_params(tkm_cbor_w *w, const char *fw, const char *app, const health_item *items,
                           size_t nitems)
{
	tkm_cbor_put_map(w, (nitems > 0) + (app != NULL) + (fw != NULL));
	if (nitems > 0) {
		tkm_cbor_put_cstr(w, "health");
		tkm_cbor_put_map(w, nitems);
		for (size_t i = 0; i < nitems; i++) {
			tkm_cbor_put_text(w, items[i].key, items[i].klen);
			health_value(w, &items[i]);
		}
	}
	if (app != NULL) {
		tkm_cbor_put_cstr(w, "app_version");
		tkm_cbor_put_cstr(w, app);
	}
	if (fw != NULL) {
		tkm_cbor_put_cstr(w, "firmware_version");
		tkm_cbor_put_cstr(w, fw);
	}
}

/* Check the result of terminal.checkin: our id, a time and an array of action names. */
static bool checkin_result(tkm_devtool_reply *r, const term_conf *tc, uint64_t *now_ms,
                           const tkm_cbor_val **actions)
{
	uint64_t id;

	if (!tkm_devtool_get_uint(r, r->root, "terminal", &id) ||
	    !tkm_devtool_get_uint(r, r->root, "server_time_ms", now_ms)) {
		return false;
	}
	if (id != tc->terminal) {
		return tkm_devtool_reply_bad(r, "'terminal' is not this terminal's id");
	}
	*actions = tkm_cbor_map_get(r->root, "actions");
	if (!tkm_cbor_is(*actions, TKM_CBOR_ARRAY)) {
		return tkm_devtool_reply_bad(r, "'actions' is missing or not an array");
	}
	for (const tkm_cbor_val *a = tkm_cbor_first(*actions); a != NULL; a = tkm_cbor_next(a)) {
		const char *s;
		size_t n;

		if (!tkm_cbor_get_text(a, &s, &n) || !tkm_devtool_text_ok(s, n, ACTION_MAX)) {
			return tkm_devtool_reply_bad(r, "an action is not text of 1 to 64 bytes");
		}
	}
	return true;
}

static int cmd_checkin(const tkm_devtool_cmd *cmd, int argc, char **argv)
{
	const char *dir = NULL, *fw = NULL, *app = NULL, *timeout = NULL;
	const char *health[HEALTH_MAX];
	health_item items[HEALTH_MAX];
	size_t nhealth = 0;
	const tkm_cbor_val *actions = NULL;
	tkm_devtool_conn cn;
	tkm_devtool_reply r;
	state_paths sp;
	term_conf tc;
	tkm_client *c = NULL;
	tkm_cbor_w *params = NULL;
	tkm_status st;
	uint64_t now_ms = 0;
	bool help = false, first = true;
	tkm_err err;
	int rc;

	memset(&cn, 0, sizeof(cn));
	memset(&r, 0, sizeof(r));
	memset(&st, 0, sizeof(st));
	const tkm_devtool_opt opts[] = {
	    {"--state-dir", &dir, NULL, NULL, 0, NULL},
	    {"--firmware", &fw, NULL, NULL, 0, NULL},
	    {"--app", &app, NULL, NULL, 0, NULL},
	    {"--health", NULL, health, &nhealth, HEALTH_MAX, NULL},
	    {"--timeout", &timeout, NULL, NULL, 0, NULL},
	    {"--json", NULL, NULL, NULL, 0, &cn.json},
	};

	rc = tkm_devtool_parse(cmd, opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &help);
	if (rc != TKM_DEVTOOL_EXIT_OK || help) {
		return rc;
	}
	if ((rc = tkm_devtool_need(dir, "--state-dir")) != 0 ||
	    (rc = tkm_devtool_parse_timeout(timeout, &cn.timeout_ms)) != 0 ||
	    (rc = health_parse(health, nhealth, items)) != 0) {
		return rc;
	}
	if ((fw != NULL && !tkm_devtool_text_ok(fw, strlen(fw), FIELD_MAX)) ||
	    (app != NULL && !tkm_devtool_text_ok(app, strlen(app), FIELD_MAX))) {
		return tkm_devtool_usage("--firmware and --app are 1 to 64 bytes of text without "
		                         "control characters",
		                         NULL);
	}
	if (strlen(dir) + 32 >= TKM_DEVTOOL_PATH_MAX || !state_paths_of(dir, &sp)) {
		return tkm_devtool_usage("--state-dir is too long", NULL);
	}
	if ((rc = state_dir_check(cn.json, dir, false, NULL)) != TKM_DEVTOOL_EXIT_OK ||
	    (rc = conf_read(cn.json, &sp, &tc)) != TKM_DEVTOOL_EXIT_OK) {
		return rc;
	}
	cn.url = tc.url;
	cn.ca_file = tc.ca_file[0] != '\0' ? tc.ca_file : NULL;
	cn.server_name = tc.server_name[0] != '\0' ? tc.server_name : NULL;

	if ((err = tkm_cbor_w_new(8192, &params)) != TKM_OK) {
		rc = tkm_devtool_fail(cn.json, err, NULL);
		goto out;
	}
	checkin_params(params, fw, app, items, nhealth);
	if ((rc = tkm_devtool_connect(&cn, &c)) != TKM_DEVTOOL_EXIT_OK) {
		goto out;
	}
	if ((err = tkm_client_use_device_key(c, tc.principal, sp.sign, &st)) != TKM_OK) {
		rc = tkm_devtool_fail(cn.json, err, st.message);
		goto out;
	}
	if ((err = tkm_devtool_call(c, &cn, "terminal.checkin", params, &r)) != TKM_OK) {
		rc = tkm_devtool_fail(cn.json, err, r.why);
		goto out;
	}
	if (!checkin_result(&r, &tc, &now_ms, &actions)) {
		rc = tkm_devtool_fail(cn.json, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (cn.json) {
		printf("{\"terminal\":%llu,\"server_time_ms\":%llu,\"actions\":",
		       (unsigned long long)tc.terminal, (unsigned long long)now_ms);
		tkm_devtool_put_json_cbor(stdout, actions);
		fputs("}\n", stdout);
	} else {
		for (const tkm_cbor_val *a = tkm_cbor_first(actions); a != NULL;
		     a = tkm_cbor_next(a)) {
			const char *s;
			size_t n;

			if (tkm_cbor_get_text(a, &s, &n)) {
				tkm_devtool_put_text_n(stdout, s, n);
				fputc('\n', stdout);
				first = false;
			}
		}
		if (first) {
			fputs("no pending actions\n", stdout);
		}
	}
	rc = TKM_DEVTOOL_EXIT_OK;
out:
	tkm_devtool_reply_free(&r);
	tkm_client_close(c);
	tkm_cbor_w_free(params);
	return rc;
}

static const tkm_devtool_cmd cmds[] = {
    {"enroll", "enroll this terminal with a one-time code",
     "--url URL --code CODE --serial SN --manufacturer M --state-dir DIR\n"
     "       [--ca-file FILE] [--server-name NAME] [--timeout MS] [--json]",
     "Make this terminal's key pairs in DIR and enroll them with the code from the\n"
     "provisioning station (tkm-station enroll-code) or the security officer.\n"
     "\n"
     "DIR is created (mode 0700) when it does not exist; it must belong to this user\n"
     "and be closed to group and others. A DIR that already holds an enrollment is\n"
     "refused. enroll writes DIR/sign.key (Ed25519, for signing requests) and\n"
     "DIR/box.key (X25519, for sealed secrets), both mode 0600, sends the public\n"
     "keys to terminal.enroll with a signature made with the new signing key, and on\n"
     "success writes DIR/terminal.conf (server, principal, terminal id). A refused\n"
     "enrollment removes what it made. The code is case-insensitive; dashes and\n"
     "spaces in it are ignored.\n"
     "\n"
     "  --url URL           server: ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT\n"
     "  --ca-file FILE      tls+tcp:// only: PEM file of the CAs to trust (required)\n"
     "  --server-name NAME  tls+tcp:// only: name the server certificate must carry\n"
     "  --timeout MS        per-call timeout in milliseconds (default 10000)\n"
     "\n"
     "Output:\n"
     "  enrolled as terminal ID (principal NAME); keys and configuration in DIR\n"
     "With --json:\n"
     "  {\"terminal\":ID,\"principal\":NAME,\"state\":\"active\",\"state_dir\":DIR}\n",
     cmd_enroll},
    {"checkin", "report versions and health, and list pending actions",
     "--state-dir DIR [--firmware V] [--app V] [--health KEY=VALUE]...\n"
     "       [--timeout MS] [--json]",
     "Call terminal.checkin, signed with DIR/sign.key, on the server and as the\n"
     "principal in DIR/terminal.conf. --health may be given up to 16 times; a VALUE\n"
     "of true or false is sent as a boolean, a plain decimal number as a number,\n"
     "anything else as text.\n"
     "\n"
     "Output: the pending actions, one per line (rotate-admin-password,\n"
     "rotate-working-keys, inject-keys, wipe...), or \"no pending actions\".\n"
     "With --json:\n"
     "  {\"terminal\":ID,\"server_time_ms\":T,\"actions\":[ACTION...]}\n",
     cmd_checkin},
};

int main(int argc, char **argv)
{
	return tkm_devtool_main(
	    "tkm-terminal",
	    "The terminal side of tkm: enroll this POS terminal with a one-time\n"
	    "code, then check in with tkmd using the terminal's own key.\n",
	    cmds, sizeof(cmds) / sizeof(cmds[0]), argc, argv);
}
