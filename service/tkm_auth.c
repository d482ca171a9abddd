/*
 * tkm_auth.c - operator passwords, lockout checks and sessions. See tkm_auth.h.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tkm_auth.h"
#include "tkm_cbor.h"
#include "tkm_why.h"

/* policy/common-passwords.txt, embedded at build time (tkm_auth_common.c). */
extern const char tkm_auth_common_text[];

#define TKM_AUTH_IDLE_SLOTS 4096 /* open-addressed idle clocks; more sessions than this fail */

typedef struct idle_slot {
	uint8_t hash[TKM_STORE_TOKEN_HASH];
	uint64_t last_ms;
	bool used;
} idle_slot;

struct tkm_auth {
	tkm_auth_cfg cfg;
	tkm_store *st;
	char **common; /* sorted, lowercase */
	size_t ncommon;
	char dummy_hash[TKM_STORE_PWHASH_MAX]; /* checked for unknown users */
	pthread_mutex_t mu;                    /* idle clocks */
	idle_slot *idle;
};

void tkm_auth_cfg_default(tkm_auth_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->min_length = 12;
	cfg->history = 4;
	cfg->max_age_s = 90u * 86400u;
	cfg->max_failed = 5;
	cfg->lockout_s = 1800;
	cfg->idle_s = 900;
	cfg->lifetime_s = 8u * 3600u;
	cfg->opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
	cfg->memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lower_ascii(char *s)
{
	for (; *s != '\0'; s++) {
		*s = (char)tolower((unsigned char)*s);
	}
}

/* Parse the list: one entry per line, '#' comments, blank lines skipped. */
static tkm_err load_common(tkm_auth *a, const char *text, char *why, size_t why_len)
{
	size_t cap = 0;
	const char *p = text;

	while (*p != '\0') {
		const char *e = strchr(p, '\n');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);

		while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) {
			n--;
		}
		if (n > 0 && p[0] != '#') {
			char *w;

			if (a->ncommon == cap) {
				char **grown;

				cap = cap == 0 ? 128 : cap * 2;
				grown = realloc(a->common, cap * sizeof(*grown));
				if (grown == NULL) {
					return TKM_E_NOMEM;
				}
				a->common = grown;
			}
			w = malloc(n + 1);
			if (w == NULL) {
				return TKM_E_NOMEM;
			}
			memcpy(w, p, n);
			w[n] = '\0';
			lower_ascii(w);
			a->common[a->ncommon++] = w;
		}
		p = e != NULL ? e + 1 : p + n;
	}
	if (a->ncommon == 0) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                    "the common-password list is empty");
	}
	qsort(a->common, a->ncommon, sizeof(*a->common), cmp_str);
	return TKM_OK;
}

static char *read_text_file(const char *path, char *why, size_t why_len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > (1L << 24) ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		tkm_why_set(why, why_len, "%s: cannot read the common-password list: %s", path,
		            strerror(errno));
		free(buf);
		buf = NULL;
	} else {
		buf[n] = '\0';
	}
	if (f != NULL) {
		fclose(f);
	}
	return buf;
}

tkm_err tkm_auth_new(const tkm_auth_cfg *cfg, tkm_store *st, tkm_auth **out, char *why,
                     size_t why_len)
{
	tkm_auth *a = calloc(1, sizeof(*a));
	char *text = NULL;
	tkm_err err;

	*out = NULL;
	if (a == NULL) {
		return TKM_E_NOMEM;
	}
	a->cfg = *cfg;
	a->cfg.common_file = NULL;
	a->st = st;
	if (pthread_mutex_init(&a->mu, NULL) != 0) {
		free(a);
		return TKM_E_NOMEM;
	}
	a->idle = calloc(TKM_AUTH_IDLE_SLOTS, sizeof(*a->idle));
	if (a->idle == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	if (cfg->common_file != NULL) {
		text = read_text_file(cfg->common_file, why, why_len);
		if (text == NULL) {
			err = TKM_E_CONFIG;
			goto out;
		}
	}
	err = load_common(a, text != NULL ? text : tkm_auth_common_text, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	/* A hash to check against when the user does not exist: same cost, same timing. */
	if (crypto_pwhash_str(a->dummy_hash, "tkm unknown operator", 20, a->cfg.opslimit,
	                      a->cfg.memlimit) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM,
		                   "Argon2id with memlimit %zu bytes failed (out of memory?)",
		                   a->cfg.memlimit);
		goto out;
	}
	*out = a;
	a = NULL;
out:
	free(text);
	tkm_auth_free(a);
	return err;
}

void tkm_auth_free(tkm_auth *a)
{
	if (a == NULL) {
		return;
	}
	for (size_t i = 0; i < a->ncommon; i++) {
		free(a->common[i]);
	}
	free(a->common);
	if (a->idle != NULL) {
		sodium_memzero(a->idle, TKM_AUTH_IDLE_SLOTS * sizeof(*a->idle));
		free(a->idle);
	}
	pthread_mutex_destroy(&a->mu);
	free(a);
}

const tkm_auth_cfg *tkm_auth_config(const tkm_auth *a)
{
	return &a->cfg;
}

/* ---- Passwords ---- */

/* Lowercase ASCII copy of s into sodium_malloc() memory; NULL when out of memory. */
static char *folded_copy(const char *s, size_t len)
{
	char *c = sodium_malloc(len + 1);

	if (c != NULL) {
		memcpy(c, s, len);
		c[len] = '\0';
		lower_ascii(c);
	}
	return c;
}

static void folded_free(char *c, size_t len)
{
	if (c != NULL) {
		sodium_memzero(c, len + 1);
		sodium_free(c);
	}
}

static bool is_common(const tkm_auth *a, const char *folded)
{
	return bsearch(&folded, a->common, a->ncommon, sizeof(*a->common), cmp_str) != NULL;
}

tkm_err tkm_auth_password_rules(const tkm_auth *a, const char *username, const char *password,
                                size_t len, char *why, size_t why_len)
{
	char *pw = NULL, *user = NULL;
	size_t chars = 0;
	tkm_err err = TKM_OK;

	if (len > TKM_AUTH_PASSWORD_MAX || memchr(password, '\0', len) != NULL ||
	    !tkm_cbor_utf8_valid((const uint8_t *)password, len)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "a password is valid UTF-8 of at most %d bytes",
		                    TKM_AUTH_PASSWORD_MAX);
	}
	for (size_t i = 0; i < len; i++) {
		chars += ((unsigned char)password[i] & 0xc0) != 0x80;
	}
	if (chars < a->cfg.min_length) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "the password is too short: at least %zu characters",
		                    a->cfg.min_length);
	}
	pw = folded_copy(password, len);
	user = folded_copy(username, strlen(username));
	if (pw == NULL || user == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	if (user[0] != '\0' && strstr(pw, user) != NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "the password must not contain the username");
		goto out;
	}
	if (is_common(a, pw)) {
		err = tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                   "the password is on the list of common passwords");
	}
out:
	folded_free(pw, len);
	folded_free(user, strlen(username));
	return err;
}

tkm_err tkm_auth_password_hash(const tkm_auth *a, const char *password, size_t len,
                               char out[static TKM_STORE_PWHASH_MAX])
{
	_Static_assert(crypto_pwhash_STRBYTES <= TKM_STORE_PWHASH_MAX, "hash fits");
	return crypto_pwhash_str_alg(out, password, len, a->cfg.opslimit, a->cfg.memlimit,
	                             crypto_pwhash_ALG_ARGON2ID13) == 0
	           ? TKM_OK
	           : TKM_E_NOMEM;
}

typedef struct reuse_check {
	const char *pw;
	size_t len;
	bool reused;
} reuse_check;

static tkm_err check_one(void *arg, const char *pw_hash)
{
	reuse_check *r = arg;

	if (!r->reused && crypto_pwhash_str_verify(pw_hash, r->pw, r->len) == 0) {
		r->reused = true;
	}
	return TKM_OK;
}

tkm_err tkm_auth_password_reused(const tkm_auth *a, int64_t operator_id, const char *password,
                                 size_t len, char *why, size_t why_len)
{
	reuse_check r = {password, len, false};
	tkm_err err;

	err = tkm_store_operator_history(a->st, operator_id, a->cfg.history, check_one, &r, why,
	                                 why_len);
	if (err == TKM_OK && r.reused) {
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "the password was one of the last %zu; choose a new one",
		                   a->cfg.history);
	}
	return err;
}

tkm_err tkm_auth_password_generate(char *out, size_t cap)
{
	/* No look-alikes (0/O, 1/l/I): people type these from paper. */
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	const size_t groups = 4, per = 5; /* 20 characters, about 116 bits */

	if (cap < groups * (per + 1)) {
		return TKM_E_INVALID_ARG;
	}
	for (size_t g = 0, o = 0; g < groups; g++) {
		for (size_t i = 0; i < per; i++) {
			out[o++] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
		}
		out[o++] = g + 1 < groups ? '-' : '\0';
	}
	return TKM_OK;
}

/* ---- Login ---- */

tkm_err tkm_auth_login_check(tkm_auth *a, const char *username, const char *password, size_t len,
                             uint64_t now_ms, tkm_store_operator *op, bool *found,
                             tkm_auth_login_result *result, char *why, size_t why_len)
{
	tkm_err err;
	bool match;

	*found = false;
	*result = TKM_AUTH_LOGIN_BAD;
	err = tkm_store_operator_get(a->st, username, op, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		/* The same work as for a real user; the result does not matter. */
		if (crypto_pwhash_str_verify(a->dummy_hash, password, len) == 0) {
			*result = TKM_AUTH_LOGIN_BAD;
		}
		return TKM_OK;
	}
	if (err != TKM_OK) {
		return err;
	}
	*found = true;
	/* The hash runs in every case, so that timing tells nothing about the state. */
	match = crypto_pwhash_str_verify(op->pw_hash, password, len) == 0;
	if (op->disabled) {
		*result = TKM_AUTH_LOGIN_DISABLED;
	} else if (op->locked_until_ms > now_ms) {
		*result = TKM_AUTH_LOGIN_LOCKED;
	} else {
		*result = match ? TKM_AUTH_LOGIN_OK : TKM_AUTH_LOGIN_BAD;
	}
	return TKM_OK;
}

bool tkm_auth_must_change(const tkm_auth *a, const tkm_store_operator *op, uint64_t now_ms)
{
	return op->must_change ||
	       (a->cfg.max_age_s != 0 && now_ms > op->pw_changed_ms + a->cfg.max_age_s * 1000u);
}

/* ---- Sessions ---- */

void tkm_auth_token_hash(const uint8_t *token, size_t len,
                         uint8_t hash[static TKM_STORE_TOKEN_HASH])
{
	static const uint8_t ctx[] = "tkm session token v1";

	(void)crypto_generichash(hash, TKM_STORE_TOKEN_HASH, token, len, ctx, sizeof(ctx) - 1);
}

void tkm_auth_token_new(uint8_t token[static TKM_AUTH_TOKEN_LEN],
                        uint8_t hash[static TKM_STORE_TOKEN_HASH])
{
	randombytes_buf(token, TKM_AUTH_TOKEN_LEN);
	tkm_auth_token_hash(token, TKM_AUTH_TOKEN_LEN, hash);
}

/* The slot of hash, or the free slot where it would go; NULL when the table is full. */
static idle_slot *idle_find(tkm_auth *a, const uint8_t *hash, bool for_insert)
{
	size_t start, i;
	uint64_t h = 0;

	memcpy(&h, hash, sizeof(h));
	start = (size_t)(h % TKM_AUTH_IDLE_SLOTS);
	for (size_t k = 0; k < TKM_AUTH_IDLE_SLOTS; k++) {
		i = (start + k) % TKM_AUTH_IDLE_SLOTS;
		if (!a->idle[i].used) {
			return for_insert ? &a->idle[i] : NULL;
		}
		if (sodium_memcmp(a->idle[i].hash, hash, TKM_STORE_TOKEN_HASH) == 0) {
			return &a->idle[i];
		}
	}
	return NULL;
}

/* Drop idle clocks older than the session lifetime (their sessions are over anyway). */
static void idle_sweep(tkm_auth *a, uint64_t now_ms)
{
	uint64_t horizon = a->cfg.lifetime_s * 1000u;
	idle_slot *keep = NULL;
	size_t n = 0;

	for (size_t i = 0; i < TKM_AUTH_IDLE_SLOTS; i++) {
		n += a->idle[i].used;
	}
	if (n < TKM_AUTH_IDLE_SLOTS / 2) {
		return;
	}
	keep = calloc(TKM_AUTH_IDLE_SLOTS, sizeof(*keep));
	if (keep == NULL) {
		return;
	}
	memcpy(keep, a->idle, TKM_AUTH_IDLE_SLOTS * sizeof(*keep));
	memset(a->idle, 0, TKM_AUTH_IDLE_SLOTS * sizeof(*keep));
	for (size_t i = 0; i < TKM_AUTH_IDLE_SLOTS; i++) {
		if (keep[i].used && keep[i].last_ms + horizon > now_ms) {
			idle_slot *s = idle_find(a, keep[i].hash, true);

			if (s != NULL) {
				*s = keep[i];
			}
		}
	}
	sodium_memzero(keep, TKM_AUTH_IDLE_SLOTS * sizeof(*keep));
	free(keep);
}

void tkm_auth_session_started(tkm_auth *a, const uint8_t hash[static TKM_STORE_TOKEN_HASH],
                              uint64_t now_ms)
{
	idle_slot *s;

	pthread_mutex_lock(&a->mu);
	idle_sweep(a, now_ms);
	s = idle_find(a, hash, true);
	if (s != NULL) {
		memcpy(s->hash, hash, TKM_STORE_TOKEN_HASH);
		s->last_ms = now_ms;
		s->used = true;
	}
	pthread_mutex_unlock(&a->mu);
}

void tkm_auth_session_ended(tkm_auth *a, const uint8_t hash[static TKM_STORE_TOKEN_HASH])
{
	idle_slot *s;

	pthread_mutex_lock(&a->mu);
	s = idle_find(a, hash, false);
	if (s != NULL) {
		/* Mark it expired rather than free: the probe chains stay intact. */
		s->last_ms = 0;
	}
	pthread_mutex_unlock(&a->mu);
}

tkm_err tkm_auth_session_check(tkm_auth *a, const uint8_t *token, size_t len, uint64_t now_ms,
                               tkm_store_operator *op, char *why, size_t why_len)
{
	uint8_t hash[TKM_STORE_TOKEN_HASH];
	tkm_store_session sess;
	idle_slot *s;
	bool fresh = false;
	tkm_err err;

	if (len != TKM_AUTH_TOKEN_LEN) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED, "malformed session token");
	}
	tkm_auth_token_hash(token, len, hash);
	err = tkm_store_session_get(a->st, hash, &sess, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "unknown or ended session: log in");
	}
	if (err != TKM_OK) {
		return err;
	}
	if (now_ms >= sess.expires_ms) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "the session reached its lifetime: log in again");
	}
	pthread_mutex_lock(&a->mu);
	s = idle_find(a, hash, false);
	if (s != NULL && s->last_ms != 0 && now_ms < s->last_ms + a->cfg.idle_s * 1000u) {
		s->last_ms = now_ms;
		fresh = true;
	}
	pthread_mutex_unlock(&a->mu);
	if (!fresh) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "the session was idle too long: log in again");
	}
	err = tkm_store_operator_get_id(a->st, sess.operator_id, op, why, why_len);
	if (err == TKM_E_NOT_FOUND || (err == TKM_OK && op->disabled)) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "the operator is disabled");
	}
	return err;
}
