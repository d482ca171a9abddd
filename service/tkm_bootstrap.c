/*
 * tkm_bootstrap.c - tkmd --init, and the start-up pairing of database and
 * HSM token. See tkm_bootstrap.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "tkm/client.h"
#include "tkm_bootstrap.h"
#include "tkm_cbor.h"
#include "tkm_policy.h"
#include "tkm_store_auth.h"
#include "tkm_why.h"

_Static_assert(TKM_HSM_ED25519_PK_LEN == TKM_AUDIT_PK_LEN, "one Ed25519 key size");
_Static_assert(TKM_HSM_ID_LEN <= TKM_AUDIT_KEY_ID_MAX, "the audit key id fits a checkpoint");

#define TKM_PK_HEX_LEN (2 * TKM_AUDIT_PK_LEN + 1)

static tkm_err hsm_sign(void *ctx, const uint8_t *msg, size_t msg_len,
                        uint8_t sig[static TKM_AUDIT_SIG_LEN], char *why, size_t why_len)
{
	return tkm_hsm_audit_sign(ctx, msg, msg_len, sig, why, why_len);
}

void tkm_bootstrap_pk_hex(const uint8_t pk[static TKM_AUDIT_PK_LEN],
                          char hex[static TKM_PK_HEX_LEN])
{
	(void)sodium_bin2hex(hex, TKM_PK_HEX_LEN, pk, TKM_AUDIT_PK_LEN);
}

static tkm_err start_writer(tkm_hsm *hsm, tkm_store *st, const tkm_bootstrap_writer *wc,
                            const tkm_bootstrap_keys *keys, char *why, size_t why_len)
{
	tkm_store_writer_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.sign = hsm_sign;
	cfg.sign_ctx = hsm;
	cfg.key_id = keys->audit_id.b;
	cfg.key_id_len = sizeof(keys->audit_id.b);
	cfg.checkpoint_every = wc->checkpoint_every;
	cfg.checkpoint_interval_ms = wc->checkpoint_interval_ms;
	return tkm_store_writer_start(st, &cfg, why, why_len);
}

/* Write the key as hex to a temporary file beside path, sync it, rename it over path. */
static tkm_err write_pubkey(const char *path, const uint8_t pk[static TKM_AUDIT_PK_LEN], char *why,
                            size_t why_len)
{
	char hex[TKM_PK_HEX_LEN + 1];
	char tmp[4096];
	size_t n;
	int fd = -1, r;
	tkm_err err = TKM_OK;

	tkm_bootstrap_pk_hex(pk, hex);
	n = strlen(hex);
	hex[n++] = '\n';
	r = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (r < 0 || (size_t)r >= sizeof(tmp)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "%s: path too long", path);
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, hex, n) != (ssize_t)n || fsync(fd) != 0) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_IO,
		                 "%s: cannot write the audit public key: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path) != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO,
		                   "%s: cannot write the audit public key: %s", path,
		                   strerror(errno));
	}
out:
	if (fd >= 0) {
		(void)close(fd);
	}
	if (err != TKM_OK) {
		(void)unlink(tmp);
	}
	return err;
}

static tkm_err count_record(void *arg, const tkm_store_audit_row *row)
{
	uint64_t *n = arg;

	(void)row;
	(*n)++;
	return TKM_OK;
}

/* The database must be fresh: no init mark and no audit record. */
static tkm_err check_fresh_db(tkm_store *st, char *why, size_t why_len)
{
	char when[64];
	tkm_store_audit_query q = {.after_seq = 0, .since_ms = 0, .limit = 1};
	uint64_t anchor = 0, n = 0;
	bool more = false;
	tkm_err err;

	if (tkm_store_meta_get(st, TKM_BOOTSTRAP_META_INIT_AT, when, sizeof(when)) == TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
		                    "the database was initialised at %s; init runs once", when);
	}
	err = tkm_store_audit_anchor(st, &anchor, why, why_len);
	if (err == TKM_OK) {
		err = tkm_store_audit_page(st, &q, count_record, &n, &more, why, why_len);
	}
	if (err != TKM_OK) {
		return err;
	}
	if (anchor != 0 || n != 0) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
		                    "the database already holds audit records; init runs once, on "
		                    "an empty database");
	}
	return TKM_OK;
}

/* The token must hold none of the keys init makes. */
static tkm_err check_fresh_token(tkm_hsm *hsm, char *why, size_t why_len)
{
	static const struct {
		tkm_hsm_role role;
		const char *name;
	} roles[] = {
	    {TKM_HSM_MASTER_KEK, "master KEK"},
	    {TKM_HSM_MASTER_SEAL, "master sealing key"},
	    {TKM_HSM_AUDIT, "audit signing key"},
	};

	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		tkm_hsm_id id;
		tkm_hsm_alg alg;
		tkm_err err =
		    tkm_hsm_token_key_find(hsm, roles[i].role, NULL, &id, &alg, why, why_len);

		if (err == TKM_OK) {
			return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
			                    "the HSM token already holds a tkm %s; init runs once, "
			                    "on an empty token",
			                    roles[i].name);
		}
		if (err != TKM_E_NOT_FOUND) {
			return err;
		}
	}
	return TKM_OK;
}

static void put_kcv(tkm_cbor_w *w, const char *key, const tkm_hsm_kcv *kcv)
{
	char hex[2 * TKM_HSM_KCV_MAX + 1];

	(void)sodium_bin2hex(hex, sizeof(hex), kcv->b, kcv->len);
	tkm_cbor_put_cstr(w, key);
	tkm_cbor_put_cstr(w, hex);
}

static tkm_err mark_initialised(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const tkm_bootstrap_keys *keys = arg;
	char hex[TKM_PK_HEX_LEN];
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	tkm_err err;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		return tkm_why_fail(why, why_len, TKM_E_INTERNAL, "cannot format the time");
	}
	tkm_bootstrap_pk_hex(keys->audit_pk, hex);
	err = tkm_store_tx_meta_set(tx, TKM_BOOTSTRAP_META_AUDIT_PK, hex, why, why_len);
	if (err == TKM_OK) {
		err = tkm_store_tx_meta_set(tx, TKM_BOOTSTRAP_META_INIT_AT, when, why, why_len);
	}
	return err;
}

void tkm_bootstrap_keys_wipe(tkm_bootstrap_keys *keys)
{
	if (keys == NULL) {
		return;
	}
	for (size_t i = 0; i < TKM_BOOTSTRAP_PEOPLE; i++) {
		if (keys->people[i].otp != NULL) {
			sodium_memzero(keys->people[i].otp, TKM_BOOTSTRAP_OTP_MAX);
			sodium_free(keys->people[i].otp);
			keys->people[i].otp = NULL;
		}
	}
}

typedef struct policy_arg {
	const char *text;
} policy_arg;

static tkm_err store_policy(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	const policy_arg *p = arg;

	return tkm_store_tx_policy_put(tx, 1, p->text, 0, "tkmd --init", why, why_len);
}

/* Policy version 1: the default policy's canonical text. */
static tkm_err init_policy(tkm_store *st, const char *text, char *why, size_t why_len)
{
	tkm_policy *p = NULL;
	char *canon = NULL;
	size_t len = 0;
	policy_arg a;
	tkm_audit_rec rec;
	tkm_err err;

	err = tkm_policy_parse(text, strlen(text), &p, why, why_len);
	if (err == TKM_OK) {
		err = tkm_policy_canonical(p, &canon, &len);
	}
	if (err == TKM_OK) {
		memset(&rec, 0, sizeof(rec));
		rec.principal = "tkmd --init";
		rec.method = "policy.apply";
		rec.target = "policy";
		rec.outcome = "ok";
		a.text = canon;
		err = tkm_store_write(st, store_policy, &a, &rec, NULL, why, why_len);
	}
	free(canon);
	tkm_policy_free(p);
	return err;
}

typedef struct person_arg {
	tkm_store_operator op;
	char principal[80];
	const char *role;
} person_arg;

static tkm_err store_person(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	person_arg *pa = arg;
	int64_t id = 0;
	tkm_err err = tkm_store_tx_operator_insert(tx, &pa->op, &id, why, why_len);

	if (err == TKM_OK) {
		err = tkm_store_tx_role_set(tx, pa->principal, pa->role, NULL, why, why_len);
	}
	return err;
}

/* One of the first operators, with a one-time password that must change at first login. */
static tkm_err init_person(tkm_store *st, tkm_auth *auth, tkm_bootstrap_person *who, char *why,
                           size_t why_len)
{
	person_arg pa;
	tkm_audit_rec rec;
	tkm_cbor_w *d = NULL;
	tkm_err err;

	memset(&pa, 0, sizeof(pa));
	who->otp = sodium_malloc(TKM_BOOTSTRAP_OTP_MAX);
	if (who->otp == NULL) {
		return TKM_E_NOMEM;
	}
	err = tkm_auth_password_generate(who->otp, TKM_BOOTSTRAP_OTP_MAX);
	if (err == TKM_OK) {
		err = tkm_auth_password_hash(auth, who->otp, strlen(who->otp), pa.op.pw_hash);
	}
	if (err == TKM_OK) {
		err = tkm_cbor_w_new(128, &d);
	}
	if (err != TKM_OK) {
		goto out;
	}
	tkm_cbor_put_map(d, 1);
	tkm_cbor_put_cstr(d, "roles");
	tkm_cbor_put_array(d, 1);
	tkm_cbor_put_cstr(d, who->role);
	memset(&rec, 0, sizeof(rec));
	err = tkm_cbor_w_finish(d, &rec.details, &rec.details_len);
	if (err != TKM_OK) {
		goto out;
	}
	memcpy(pa.op.username, who->username, sizeof(pa.op.username));
	pa.op.must_change = true;
	pa.op.pw_changed_ms = (uint64_t)time(NULL) * 1000u;
	pa.op.created_ms = pa.op.pw_changed_ms;
	pa.role = who->role;
	tkm_why_set(pa.principal, sizeof(pa.principal), "operator:%s", who->username);
	rec.principal = "tkmd --init";
	rec.method = "operator.create";
	rec.target = pa.principal;
	rec.outcome = "ok";
	err = tkm_store_write(st, store_person, &pa, &rec, NULL, why, why_len);
out:
	sodium_memzero(pa.op.pw_hash, sizeof(pa.op.pw_hash));
	tkm_cbor_w_free(d);
	return err;
}

tkm_err tkm_bootstrap_init(tkm_hsm *hsm, tkm_store *st, tkm_auth *auth,
                           const tkm_bootstrap_writer *wc, const char *pubkey_file,
                           const char *policy_text,
                           const char *const usernames[TKM_BOOTSTRAP_PEOPLE],
                           tkm_bootstrap_keys *out, char *why, size_t why_len)
{
	static const char *const roles[TKM_BOOTSTRAP_PEOPLE] = {"security-officer",
	                                                        "security-officer", "admin"};
	char pk_hex[TKM_PK_HEX_LEN], id_hex[2 * TKM_HSM_ID_LEN + 1];
	tkm_hsm_id id;
	tkm_hsm_kcv none;
	tkm_cbor_w *d = NULL;
	tkm_audit_rec rec;
	tkm_err err;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < TKM_BOOTSTRAP_PEOPLE; i++) {
		size_t n = strlen(usernames[i]);

		if (n == 0 || n >= sizeof(out->people[i].username) || usernames[i][0] < 'a' ||
		    usernames[i][0] > 'z' ||
		    strspn(usernames[i], "abcdefghijklmnopqrstuvwxyz0123456789._-") != n) {
			return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
			                    "'%s' is not a username (a-z 0-9 . _ -, from a letter)",
			                    usernames[i]);
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(usernames[i], usernames[j]) == 0) {
				return tkm_why_fail(
				    why, why_len, TKM_E_INVALID_ARG,
				    "the first operators need three names, '%s' twice",
				    usernames[i]);
			}
		}
		memcpy(out->people[i].username, usernames[i], n + 1);
		out->people[i].role = roles[i];
	}
	err = check_fresh_db(st, why, why_len);
	if (err == TKM_OK) {
		err = check_fresh_token(hsm, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_token_key_generate(hsm, TKM_HSM_MASTER_KEK, TKM_HSM_AES256, NULL, &id,
		                                 &out->kek_kcv, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_token_key_generate(hsm, TKM_HSM_MASTER_SEAL, TKM_HSM_AES256, NULL,
		                                 &id, &out->seal_kcv, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_token_key_generate(hsm, TKM_HSM_AUDIT, TKM_HSM_ED25519, NULL, &id,
		                                 &none, why, why_len);
	}
	if (err == TKM_OK) {
		err = tkm_hsm_audit_public_key(hsm, &out->audit_id, out->audit_pk, why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	err = start_writer(hsm, st, wc, out, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	tkm_bootstrap_pk_hex(out->audit_pk, pk_hex);
	(void)sodium_bin2hex(id_hex, sizeof(id_hex), out->audit_id.b, sizeof(out->audit_id.b));
	err = tkm_cbor_w_new(512, &d);
	if (err != TKM_OK) {
		goto out;
	}
	/* Canonical key order: shorter keys first, then bytewise. */
	tkm_cbor_put_map(d, 4);
	put_kcv(d, "kek_kcv", &out->kek_kcv);
	put_kcv(d, "seal_kcv", &out->seal_kcv);
	tkm_cbor_put_cstr(d, "audit_key_id");
	tkm_cbor_put_cstr(d, id_hex);
	tkm_cbor_put_cstr(d, "audit_public_key");
	tkm_cbor_put_cstr(d, pk_hex);
	memset(&rec, 0, sizeof(rec));
	err = tkm_cbor_w_finish(d, &rec.details, &rec.details_len);
	if (err != TKM_OK) {
		goto out;
	}
	rec.principal = "tkmd --init";
	rec.method = "system.init";
	rec.target = "token";
	rec.outcome = "ok";
	err = tkm_store_write(st, mark_initialised, out, &rec, &out->init_seq, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = init_policy(st, policy_text, why, why_len);
	for (size_t i = 0; i < TKM_BOOTSTRAP_PEOPLE && err == TKM_OK; i++) {
		err = init_person(st, auth, &out->people[i], why, why_len);
	}
	if (err != TKM_OK) {
		goto out;
	}
	/* The first records are signed at once: the chain is anchored from its start. */
	err = tkm_store_checkpoint_now(st, why, why_len);
	if (err == TKM_OK) {
		err = write_pubkey(pubkey_file, out->audit_pk, why, why_len);
	}
out:
	tkm_cbor_w_free(d);
	return err;
}

tkm_err tkm_bootstrap_open(tkm_hsm *hsm, tkm_store *st, const tkm_bootstrap_writer *wc,
                           tkm_bootstrap_keys *out, char *why, size_t why_len)
{
	char recorded[TKM_PK_HEX_LEN + 8], hex[TKM_PK_HEX_LEN];
	tkm_hsm_alg alg;
	tkm_err err;

	memset(out, 0, sizeof(*out));
	if (tkm_store_meta_get(st, TKM_BOOTSTRAP_META_INIT_AT, recorded, sizeof(recorded)) !=
	        TKM_OK ||
	    tkm_store_meta_get(st, TKM_BOOTSTRAP_META_AUDIT_PK, recorded, sizeof(recorded)) !=
	        TKM_OK) {
		return tkm_why_fail(
		    why, why_len, TKM_E_FAILED_PRECONDITION,
		    "the database is not initialised: run tkmd --init --config FILE "
		    "once (docs/operations.md)");
	}
	err = tkm_hsm_token_key_find(hsm, TKM_HSM_AUDIT, NULL, &out->audit_id, &alg, why, why_len);
	if (err == TKM_OK) {
		err = tkm_hsm_audit_public_key(hsm, &out->audit_id, out->audit_pk, why, why_len);
	}
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "the HSM token has no tkm audit key, but the database was "
		                    "initialised: wrong token, or its keys are gone");
	}
	if (err != TKM_OK) {
		return err;
	}
	tkm_bootstrap_pk_hex(out->audit_pk, hex);
	if (strcmp(hex, recorded) != 0) {
		return tkm_why_fail(
		    why, why_len, TKM_E_FAILED_PRECONDITION,
		    "the HSM token's audit key (%.16s...) is not the one the database "
		    "was initialised with (%.16s...): database and token do not "
		    "belong together",
		    hex, recorded);
	}
	return start_writer(hsm, st, wc, out, why, why_len);
}
