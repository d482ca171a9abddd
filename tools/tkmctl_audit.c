/*
 * tkmctl_audit.c - tkmctl's audit and backup commands: audit verify (offline
 * on a database copy, or by asking tkmd), pubkey, export, tail, archive and
 * checkpoint, and backup.
 *
 * Every reply is decoded with libtkm's bounded CBOR decoder and checked field
 * by field before anything of it is printed: a missing field or a wrong type
 * is an invalid reply (exit 1), never half a line. Unknown result fields are
 * ignored, so that a newer tkmd may add some.
 *
 * Files: the PATH of archive and backup is a file on tkmd's host that tkmd
 * writes itself; the --out FILE of pubkey and export is a local file that
 * tkmctl creates and never replaces (O_EXCL), and removes again if the
 * command fails.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "tkm/client.h"
#include "tkm_audit.h"
#include "tkm_cbor.h"
#include "tkm_why.h"
#include "tkmctl.h"

/* A public key file: 64 hex characters and some whitespace; anything longer is refused. */
#define TKMCTL_PUBKEY_FILE_MAX 1024
/* audit.list pages: the protocol's largest. */
#define AUDIT_PAGE_MAX 1000
/*
 * The largest reply the paging commands accept. A record is at most about
 * 10.7 KB (TKM_AUDIT_CBOR_MAX plus its two hashes), so a full page of 1000
 * fits in 16 MiB. nng drops a larger reply without a word (the call would
 * time out), so the limit must hold every page tkmd may send; tkmd itself
 * refuses a page larger than its max_message_size, and then the limit is
 * halved and the page asked for again.
 */
#define AUDIT_REPLY_MAX  ((size_t)16 << 20)
#define PARAMS_MAX       8192
#define PATH_MAX_LEN     4096 /* tkmd's limit for "path" */
#define TAIL_DEFAULT     10
#define INTERVAL_DEFAULT 1000
#define INTERVAL_MIN     10
#define INTERVAL_MAX     3600000
#define SEQ_MAX          ((uint64_t)INT64_MAX)

static int cmd_audit(const tkmctl_opts *o, int argc, char **argv);
static int cmd_audit_verify(const tkmctl_opts *o, int argc, char **argv);
static int cmd_audit_pubkey(const tkmctl_opts *o, int argc, char **argv);
static int cmd_audit_export(const tkmctl_opts *o, int argc, char **argv);
static int cmd_audit_tail(const tkmctl_opts *o, int argc, char **argv);
static int cmd_audit_archive(const tkmctl_opts *o, int argc, char **argv);
static int cmd_audit_checkpoint(const tkmctl_opts *o, int argc, char **argv);
static int cmd_backup(const tkmctl_opts *o, int argc, char **argv);

/* The JSON Lines record format, shared by the help of export and tail. */
#define RECORD_JSON_HELP                                                                           \
	"  {\"seq\":N,\"ts\":\"2026-11-23T10:00:00.123Z\",\"ts_ms\":N,\"principal\":S|null,\n"     \
	"   \"role\":S|null,\"method\":S,\"target\":S|null,\"outcome\":S,\"error_code\":S|null,\n" \
	"   \"details\":{...},\"prev_hash\":HEX,\"hash\":HEX}\n"                                   \
	"ts is ts_ms (Unix milliseconds) in UTC. details is the record's CBOR map as\n"            \
	"JSON, with byte strings as lowercase hex strings. The hashes are 64 lowercase\n"          \
	"hex characters (docs/audit.md).\n"

static const tkmctl_cmd audit_cmds[] = {
    {"verify", "check the audit hash chain and checkpoint signatures", "[--db FILE --pubkey FILE]",
     "Verify the audit log: walk the hash chain of every record and check every\n"
     "checkpoint signature against the Ed25519 audit public key.\n"
     "\n"
     "Without arguments tkmd checks its own database against its HSM's audit key\n"
     "(audit.verify). With --db and --pubkey the check runs here, offline, on FILE,\n"
     "a copy, a backup or an archive of tkmd's database, opened read-only:\n"
     "\n"
     "  --db FILE      the database copy\n"
     "  --pubkey FILE  the 32-byte Ed25519 audit public key as 64 hex characters\n"
     "                 (one line; surrounding whitespace is ignored; 'tkmctl audit\n"
     "                 pubkey --out FILE' writes it)\n"
     "\n"
     "Records after the last checkpoint are chained but not yet signed: cutting\n"
     "or rewriting them cannot be seen from the database alone (docs/audit.md).\n"
     "\n"
     "Output (exit status 1 when the chain is broken):\n"
     "  audit chain ok: N records, M checkpoints, last checkpoint at seq S; U records\n"
     "  after it are not yet covered by a signature\n"
     "  audit chain BROKEN at seq N: SENTENCE\n"
     "With --json (\"db\":FILE offline, \"url\":URL when tkmd checks):\n"
     "  {\"ok\":true,\"db\":FILE,\"records\":N,\"last_seq\":N,\"checkpoints\":M,\n"
     "   \"last_checkpoint_seq\":S,\"unsigned_tail\":U}\n"
     "  {\"ok\":false,\"db\":FILE,\"kind\":KIND,\"seq\":N,\"message\":SENTENCE}\n"
     "KIND is one of: changed, missing, inserted, out of order, bad genesis,\n"
     "malformed, checkpoint mismatch, bad checkpoint signature, truncated,\n"
     "bad archive cut.\n",
     cmd_audit_verify, NULL, 0},
    {"pubkey", "print the audit public key", "[--out FILE]",
     "Ask tkmd for its HSM's Ed25519 audit public key (audit.public_key) and print\n"
     "it as 64 lowercase hex characters and a newline: the file format that\n"
     "'tkmctl audit verify --db FILE --pubkey KEYFILE' reads.\n"
     "\n"
     "  --out FILE  write the key to FILE instead (mode 0644 less the umask); an\n"
     "              existing FILE is never replaced\n"
     "\n"
     "Output:\n"
     "  HEX                                  (the key)\n"
     "  audit public key written to FILE (key id HEX)   (with --out)\n"
     "With --json:\n"
     "  {\"public_key\":HEX,\"key_id\":HEX[,\"file\":FILE]}\n",
     cmd_audit_pubkey, NULL, 0},
    {"export", "write audit records as JSON Lines", "[--since SEQ|TIME] [--out FILE]",
     "Write audit records as JSON Lines, one record per line, oldest first, paging\n"
     "through audit.list by its cursor.\n"
     "\n"
     "  --since SEQ   records with seq >= SEQ (a plain number)\n"
     "  --since TIME  records written at or after TIME: 2026-11-23T10:00:00Z (RFC 3339,\n"
     "                also with a fraction of a second or an offset such as +01:00)\n"
     "                or a date, 2026-11-23 (midnight UTC)\n"
     "  --out FILE    write to FILE (created with mode 0600; an existing FILE is never\n"
     "                replaced, and FILE is removed again if the export fails), and\n"
     "                print 'exported N records, seq A..B to FILE' on stderr\n"
     "\n"
     "Each line:\n" RECORD_JSON_HELP "\n"
     "The output is JSON Lines with or without --json. With --json and --out, a\n"
     "summary goes to stdout as well:\n"
     "  {\"file\":FILE,\"records\":N,\"first_seq\":A,\"last_seq\":B}   (A, B 0 when N is 0)\n",
     cmd_audit_export, NULL, 0},
    {"tail", "print the newest audit records, and follow", "[-n N] [--follow] [--interval MS]",
     "Print the newest N audit records, oldest first, and with --follow keep\n"
     "printing new ones as they are written until interrupted (SIGINT or SIGTERM\n"
     "end it with exit status 0; a failed call ends it with that call's status).\n"
     "\n"
     "  -n N           how many records (default 10; 0 prints none)\n"
     "  -f, --follow   poll for new records after printing them\n"
     "  --interval MS  time between polls with --follow (default 1000, 10..3600000)\n"
     "\n"
     "Output, one line per record (\"-\" for an absent principal or target; details\n"
     "and hashes only with --json):\n"
     "  TIME  SEQ  PRINCIPAL (ROLE)  METHOD  TARGET  OUTCOME[: ERROR_CODE]\n"
     "  2026-11-23T10:00:00.123Z  42  alice (admin)  key.create  bdk/1  ok\n"
     "With --json, JSON Lines as 'tkmctl audit export' writes them:\n" RECORD_JSON_HELP,
     cmd_audit_tail, NULL, 0},
    {"archive", "move old audit records to an archive file on tkmd's host",
     "--out PATH [--before TIME]",
     "Move audit records older than the retention period (audit.retention_days)\n"
     "out of the database into a new database file (audit.archive). The cut is\n"
     "made at the newest signed checkpoint older than the cut-off, so that the\n"
     "archive and the live chain both still verify (docs/operations.md).\n"
     "\n"
     "  --out PATH     the archive file. It is written by tkmd, as tkmd's user, on\n"
     "                 tkmd's host, and must not exist. A relative PATH is made\n"
     "                 absolute with tkmctl's current directory, which names the\n"
     "                 right place only when tkmctl runs on tkmd's host.\n"
     "  --before TIME  cut-off: 2026-11-23T10:00:00Z or 2026-11-23 (default and\n"
     "                 latest: now minus the retention period)\n"
     "\n"
     "The archive verifies on its own with 'tkmctl audit verify --db PATH --pubkey\n"
     "KEYFILE'.\n"
     "\n"
     "Output:\n"
     "  archived records A..B to PATH (N bytes); the live chain now starts after\n"
     "  checkpoint C; the cut is audit record S\n"
     "With --json:\n"
     "  "
     "{\"path\":PATH,\"bytes\":N,\"first_seq\":A,\"last_seq\":B,\"checkpoint_seq\":C,\"seq\":S}\n",
     cmd_audit_archive, NULL, 0},
    {"checkpoint", "sign the audit chain up to now", "",
     "Ask tkmd to append an audit record and sign a checkpoint over the chain up\n"
     "to it at once (audit.checkpoint), so that no record is left unsigned.\n"
     "\n"
     "Output:\n"
     "  checkpoint signed at seq S\n"
     "With --json:\n"
     "  {\"seq\":S}\n",
     cmd_audit_checkpoint, NULL, 0},
};

const tkmctl_cmd tkmctl_audit_cmd = {
    "audit",
    "verify, export, follow and archive the audit log",
    "SUBCOMMAND [ARGS]",
    "Work with tkmd's audit log: check it, read it, sign it and archive it\n"
    "(docs/audit.md).\n",
    cmd_audit,
    audit_cmds,
    sizeof(audit_cmds) / sizeof(audit_cmds[0]),
};

const tkmctl_cmd tkmctl_backup_cmd = {
    "backup",
    "make an online copy of tkmd's database on tkmd's host",
    "FILE",
    "Ask tkmd for an online, consistent copy of its whole database (store.backup):\n"
    "tkmd signs an audit checkpoint over everything written so far, then copies\n"
    "the database with SQLite's backup API while requests go on.\n"
    "\n"
    "FILE is written by tkmd, as tkmd's user (mode 0600), on tkmd's host, and must\n"
    "not exist. A relative FILE is made absolute with tkmctl's current directory,\n"
    "which names the right place only when tkmctl runs on tkmd's host.\n"
    "\n"
    "Check the copy anywhere, without tkmd or the HSM:\n"
    "  tkmctl audit verify --db FILE --pubkey KEYFILE\n"
    "A backup is of use only with the HSM token that holds its keys\n"
    "(docs/operations.md).\n"
    "\n"
    "Output:\n"
    "  backup written to PATH: N bytes, audit records A..B, signed through checkpoint C\n"
    "With --json:\n"
    "  {\"path\":PATH,\"bytes\":N,\"first_seq\":A,\"last_seq\":B,\"checkpoint_seq\":C}\n",
    cmd_backup,
    NULL,
    0,
};

static int cmd_audit(const tkmctl_opts *o, int argc, char **argv)
{
	/* Names the subcommands, where tkmctl_run_sub would point at --help. */
	if (argc == 0) {
		return tkmctl_usage_error(
		    "audit needs a subcommand (verify, pubkey, export, tail, archive, checkpoint)",
		    NULL);
	}
	return tkmctl_run_sub(&tkmctl_audit_cmd, o, argc, argv);
}

/* ---- Small parsers ---- */

/* Unix milliseconds as "2026-11-23T10:00:00.123Z", or the plain number if gmtime cannot. */
static void format_ms(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000u);
	struct tm tm;
	char day[40];
	int n = -1;

	if ((uint64_t)t == ms / 1000u && gmtime_r(&t, &tm) != NULL &&
	    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm) > 0) {
		n = snprintf(buf, len, "%s.%03uZ", day, (unsigned)(ms % 1000u));
	}
	if (n < 0 || (size_t)n >= len) {
		n = snprintf(buf, len, "%llu", (unsigned long long)ms);
	}
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
	}
}

/* path, or path made absolute with the current directory, into buf. Returns an exit status. */
static int absolute_path(const char *what, const char *path, char *buf, size_t len)
{
	char cwd[PATH_MAX_LEN];
	int n;

	if (path[0] == '\0') {
		return tkmctl_usage_error(what, "(empty)");
	}
	if (path[0] == '/') {
		n = snprintf(buf, len, "%s", path);
	} else if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return tkmctl_usage_error("cannot find the current directory to make the path "
		                          "absolute; give an absolute path",
		                          path);
	} else {
		n = snprintf(buf, len, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
	}
	if (n < 0 || (size_t)n >= len) {
		return tkmctl_usage_error("the path is too long", path);
	}
	return TKMCTL_EXIT_OK;
}

/* ---- Checked reply fields beyond tkmctl.h's ---- */

/* A text field; with or_null, CBOR null is accepted and gives *s == NULL. */
static bool get_text(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, bool or_null,
                     const char **s, size_t *n)
{
	const tkm_cbor_val *v = tkm_cbor_map_get(map, key);

	if (or_null && v != NULL && tkm_cbor_is(v, TKM_CBOR_NULL)) {
		*s = NULL;
		*n = 0;
		return true;
	}
	if (!tkm_cbor_get_text(v, s, n)) {
		return tkmctl_reply_bad_field(r, key, or_null ? "text or null" : "text");
	}
	return true;
}

/*
 * A text field copied NUL-terminated into buf. With cut, longer text is cut
 * to fit (for sentences meant for the operator); without, longer text or a
 * NUL inside is an invalid reply (for names such as paths).
 */
static bool get_cstr(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, bool cut, char *buf,
                     size_t len)
{
	const char *s;
	const char *nul;
	size_t n;

	if (!get_text(r, map, key, false, &s, &n)) {
		return false;
	}
	nul = memchr(s, '\0', n);
	if (cut) {
		n = nul != NULL ? (size_t)(nul - s) : n;
		n = n < len ? n : len - 1;
	} else if (n >= len || nul != NULL) {
		return tkmctl_reply_bad_field(r, key, "a text short enough and without NUL");
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return true;
}

static bool get_bytes(tkmctl_reply *r, const tkm_cbor_val *map, const char *key, size_t want,
                      const uint8_t **p)
{
	size_t n;

	if (!tkm_cbor_get_bytes(tkm_cbor_map_get(map, key), p, &n) || n != want) {
		char what[48];

		tkm_why_set(what, sizeof(what), "a byte string of %zu bytes", want);
		return tkmctl_reply_bad_field(r, key, what);
	}
	return true;
}

/* ---- Audit records and pages ---- */

typedef struct tstr {
	const char *s; /* NULL: null */
	size_t n;
} tstr;

/* One record of an audit.list page, checked; it points into the page's doc. */
typedef struct audit_rec {
	uint64_t seq;
	uint64_t ts_ms;
	tstr principal, role, method, target, outcome, error_code;
	const tkm_cbor_val *details;
	const uint8_t *prev_hash;
	const uint8_t *hash;
} audit_rec;

typedef struct page {
	tkmctl_reply r;
	audit_rec *recs;
	size_t n;
	bool has_next;
	uint64_t next;
	uint64_t anchor;
} page;

static void page_free(page *pg)
{
	tkmctl_reply_free(&pg->r);
	free(pg->recs);
	pg->recs = NULL;
	pg->n = 0;
}

static bool parse_record(tkmctl_reply *r, const tkm_cbor_val *v, audit_rec *rec)
{
	if (!tkm_cbor_is(v, TKM_CBOR_MAP)) {
		return tkmctl_reply_bad(r, "a record is not a map");
	}
	if (!tkmctl_get_uint(r, v, "seq", &rec->seq) ||
	    !tkmctl_get_uint(r, v, "ts_ms", &rec->ts_ms) ||
	    !get_text(r, v, "principal", true, &rec->principal.s, &rec->principal.n) ||
	    !get_text(r, v, "role", true, &rec->role.s, &rec->role.n) ||
	    !get_text(r, v, "method", false, &rec->method.s, &rec->method.n) ||
	    !get_text(r, v, "target", true, &rec->target.s, &rec->target.n) ||
	    !get_text(r, v, "outcome", false, &rec->outcome.s, &rec->outcome.n) ||
	    !get_text(r, v, "error_code", true, &rec->error_code.s, &rec->error_code.n) ||
	    !get_bytes(r, v, "prev_hash", TKM_AUDIT_HASH_LEN, &rec->prev_hash) ||
	    !get_bytes(r, v, "hash", TKM_AUDIT_HASH_LEN, &rec->hash)) {
		return false;
	}
	rec->details = tkm_cbor_map_get(v, "details");
	if (!tkm_cbor_is(rec->details, TKM_CBOR_MAP)) {
		return tkmctl_reply_bad_field(r, "details", "a map");
	}
	if (rec->seq == 0 || rec->seq > SEQ_MAX) {
		return tkmctl_reply_bad(r, "a record's seq is out of range");
	}
	return true;
}

/*
 * One audit.list page: records with seq > after (and ts_ms >= since_ms), at
 * most limit. Checks every record, that seqs rise, and that "next" is the
 * last seq (so that paging always moves on).
 */
static tkm_err list_page(tkm_client *c, const tkmctl_opts *o, uint64_t after, uint64_t since_ms,
                         uint64_t limit, page *pg)
{
	const tkm_cbor_val *recs, *next, *v;
	tkm_cbor_w *w = NULL;
	uint64_t prev = after;
	size_t i = 0;
	tkm_err err;

	memset(pg, 0, sizeof(pg[0]));
	if ((err = tkm_cbor_w_new(PARAMS_MAX, &w)) != TKM_OK) {
		return tkm_why_fail(pg->r.why, sizeof(pg->r.why), err, "out of memory");
	}
	tkm_cbor_put_map(w, since_ms > 0 ? 3 : 2);
	tkm_cbor_put_cstr(w, "after");
	tkm_cbor_put_uint(w, after);
	if (since_ms > 0) {
		tkm_cbor_put_cstr(w, "since_ms");
		tkm_cbor_put_uint(w, since_ms);
	}
	tkm_cbor_put_cstr(w, "limit");
	tkm_cbor_put_uint(w, limit);
	err = tkmctl_call(c, o, "audit.list", w, &pg->r);
	tkm_cbor_w_free(w);
	if (err != TKM_OK) {
		return err;
	}
	recs = tkm_cbor_map_get(pg->r.root, "records");
	next = tkm_cbor_map_get(pg->r.root, "next");
	if (!tkm_cbor_is(recs, TKM_CBOR_ARRAY)) {
		tkmctl_reply_bad_field(&pg->r, "records", "an array");
		goto bad;
	}
	if (!tkmctl_get_uint(&pg->r, pg->r.root, "anchor", &pg->anchor)) {
		goto bad;
	}
	if (next != NULL && tkm_cbor_is(next, TKM_CBOR_NULL)) {
		pg->has_next = false;
	} else if (tkm_cbor_get_uint(next, &pg->next)) {
		pg->has_next = true;
	} else {
		tkmctl_reply_bad_field(&pg->r, "next", "an unsigned integer or null");
		goto bad;
	}
	pg->n = tkm_cbor_count(recs);
	if (pg->n > limit) {
		tkmctl_reply_bad(&pg->r, "more records than the limit");
		goto bad;
	}
	if (pg->n > 0 && (pg->recs = calloc(pg->n, sizeof(pg->recs[0]))) == NULL) {
		page_free(pg);
		return tkm_why_fail(pg->r.why, sizeof(pg->r.why), TKM_E_NOMEM, "out of memory");
	}
	for (v = tkm_cbor_first(recs); v != NULL; v = tkm_cbor_next(v), i++) {
		if (!parse_record(&pg->r, v, &pg->recs[i])) {
			goto bad;
		}
		if (pg->recs[i].seq <= prev) {
			tkmctl_reply_bad(&pg->r,
			                 "records are not in rising seq order after the cursor");
			goto bad;
		}
		prev = pg->recs[i].seq;
	}
	if (pg->has_next && (pg->n == 0 || pg->next != prev)) {
		tkmctl_reply_bad(&pg->r, "'next' is not the seq of the page's last record");
		goto bad;
	}
	return TKM_OK;
bad:
	page_free(pg);
	return TKM_E_PROTOCOL;
}

/*
 * list_page, asking again with half the limit while tkmd says that the page
 * is larger than its max_message_size. *limit keeps the size that worked.
 */
static tkm_err list_page_fit(tkm_client *c, const tkmctl_opts *o, uint64_t after, uint64_t since_ms,
                             uint64_t *limit, page *pg)
{
	tkm_err err;

	while ((err = list_page(c, o, after, since_ms, *limit, pg)) == TKM_E_RESOURCE_EXHAUSTED &&
	       *limit > 1) {
		*limit /= 2;
	}
	return err;
}

static void put_json_opt(FILE *f, const char *key, const tstr *t)
{
	fprintf(f, ",\"%s\":", key);
	if (t->s == NULL) {
		fputs("null", f);
	} else {
		tkmctl_put_json_str_n(f, t->s, t->n);
	}
}

static void print_record_json(FILE *f, const audit_rec *r)
{
	char ts[48];

	format_ms(r->ts_ms, ts, sizeof(ts));
	fprintf(f, "{\"seq\":%llu,\"ts\":", (unsigned long long)r->seq);
	tkmctl_put_json_str(f, ts);
	fprintf(f, ",\"ts_ms\":%llu", (unsigned long long)r->ts_ms);
	put_json_opt(f, "principal", &r->principal);
	put_json_opt(f, "role", &r->role);
	put_json_opt(f, "method", &r->method);
	put_json_opt(f, "target", &r->target);
	put_json_opt(f, "outcome", &r->outcome);
	put_json_opt(f, "error_code", &r->error_code);
	fputs(",\"details\":", f);
	tkmctl_put_json_cbor(f, r->details);
	fputs(",\"prev_hash\":\"", f);
	tkmctl_put_hex(f, r->prev_hash, TKM_AUDIT_HASH_LEN);
	fputs("\",\"hash\":\"", f);
	tkmctl_put_hex(f, r->hash, TKM_AUDIT_HASH_LEN);
	fputs("\"}\n", f);
}

static void put_text_or_dash(FILE *f, const tstr *t)
{
	if (t->s == NULL || t->n == 0) {
		fputc('-', f);
	} else {
		tkmctl_put_text_n(f, t->s, t->n);
	}
}

/* TIME  SEQ  PRINCIPAL (ROLE)  METHOD  TARGET  OUTCOME[: ERROR_CODE] */
static void print_record_text(FILE *f, const audit_rec *r)
{
	char ts[48];

	format_ms(r->ts_ms, ts, sizeof(ts));
	fprintf(f, "%s  %llu  ", ts, (unsigned long long)r->seq);
	put_text_or_dash(f, &r->principal);
	if (r->role.s != NULL && r->role.n > 0) {
		fputs(" (", f);
		tkmctl_put_text_n(f, r->role.s, r->role.n);
		fputc(')', f);
	}
	fputs("  ", f);
	put_text_or_dash(f, &r->method);
	fputs("  ", f);
	put_text_or_dash(f, &r->target);
	fputs("  ", f);
	put_text_or_dash(f, &r->outcome);
	if (r->error_code.s != NULL) {
		fputs(": ", f);
		tkmctl_put_text_n(f, r->error_code.s, r->error_code.n);
	}
	fputc('\n', f);
}

/* ---- audit verify ---- */

/*
 * Read the audit public key: 64 hex characters, with whitespace around them
 * and nothing else. A public key, so no wiping. Returns an exit code.
 */
static int read_pubkey(const char *path, uint8_t pk[static TKM_AUDIT_PK_LEN])
{
	static const char bad[] = "--pubkey FILE must hold the 32-byte Ed25519 audit public key as "
	                          "64 hex characters";
	char buf[TKMCTL_PUBKEY_FILE_MAX + 1];
	char what[160];
	FILE *f = NULL;
	size_t n, b = 0, e, bin_len = 0;
	const char *end = NULL;
	int rc = TKMCTL_EXIT_USAGE;
	int r;

	if ((f = fopen(path, "r")) == NULL) {
		r = snprintf(what, sizeof(what), "cannot open the --pubkey file (%s)",
		             strerror(errno));
		rc = tkmctl_usage_error(
		    r > 0 && (size_t)r < sizeof(what) ? what : "cannot open the --pubkey file",
		    path);
		goto out;
	}
	n = fread(buf, 1, sizeof(buf), f);
	if (ferror(f)) {
		rc = tkmctl_usage_error("cannot read the --pubkey file", path);
		goto out;
	}
	if (n > TKMCTL_PUBKEY_FILE_MAX) {
		rc = tkmctl_usage_error(bad, path);
		goto out;
	}
	e = n;
	while (b < e && isspace((unsigned char)buf[b])) {
		b++;
	}
	while (e > b && isspace((unsigned char)buf[e - 1])) {
		e--;
	}
	if (e - b != 2 * TKM_AUDIT_PK_LEN) {
		rc = tkmctl_usage_error(bad, path);
		goto out;
	}
	for (size_t i = b; i < e; i++) {
		if (!isxdigit((unsigned char)buf[i])) {
			rc = tkmctl_usage_error(bad, path);
			goto out;
		}
	}
	if (sodium_hex2bin(pk, TKM_AUDIT_PK_LEN, buf + b, e - b, NULL, &bin_len, &end) != 0 ||
	    bin_len != TKM_AUDIT_PK_LEN || end != buf + e) {
		rc = tkmctl_usage_error(bad, path);
		goto out;
	}
	rc = TKMCTL_EXIT_OK;
out:
	if (f != NULL) {
		fclose(f);
	}
	return rc;
}

/*
 * The report of either mode. src_key is "db" (offline, src the file) or
 * "url" (tkmd checked itself); kind is the fault's name. Returns the exit
 * status: 1 when the chain is broken.
 */
static int print_verify(const tkmctl_opts *o, const char *src_key, const char *src, bool ok,
                        const char *kind, const tkm_audit_report *rep)
{
	if (o->json) {
		fprintf(stdout, "{\"ok\":%s,\"%s\":", ok ? "true" : "false", src_key);
		tkmctl_put_json_str(stdout, src);
		if (ok) {
			printf(",\"records\":%llu,\"last_seq\":%llu,\"checkpoints\":%llu,"
			       "\"last_checkpoint_seq\":%llu,\"unsigned_tail\":%llu}\n",
			       (unsigned long long)rep->records, (unsigned long long)rep->last_seq,
			       (unsigned long long)rep->checkpoints,
			       (unsigned long long)rep->last_checkpoint_seq,
			       (unsigned long long)rep->unsigned_tail);
		} else {
			fputs(",\"kind\":", stdout);
			tkmctl_put_json_str(stdout, kind);
			printf(",\"seq\":%llu,\"message\":", (unsigned long long)rep->bad_seq);
			tkmctl_put_json_str(stdout, rep->what);
			fputs("}\n", stdout);
		}
	} else if (ok) {
		printf(
		    "audit chain ok: %llu records, %llu checkpoints, last checkpoint at seq %llu; "
		    "%llu records after it are not yet covered by a signature\n",
		    (unsigned long long)rep->records, (unsigned long long)rep->checkpoints,
		    (unsigned long long)rep->last_checkpoint_seq,
		    (unsigned long long)rep->unsigned_tail);
	} else {
		printf("audit chain BROKEN at seq %llu: ", (unsigned long long)rep->bad_seq);
		tkmctl_put_text(stdout, rep->what);
		fputc('\n', stdout);
	}
	return ok ? TKMCTL_EXIT_OK : TKMCTL_EXIT_SERVER;
}

static int verify_offline(const tkmctl_opts *o, const char *db, const char *pubkey)
{
	uint8_t pk[TKM_AUDIT_PK_LEN];
	tkm_audit_report rep;
	char why[256] = "";
	tkm_err err;
	int rc;

	if ((rc = read_pubkey(pubkey, pk)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((err = tkm_audit_verify_file(db, pk, &rep, why, sizeof(why))) != TKM_OK) {
		return tkmctl_fail(o, err, why);
	}
	return print_verify(o, "db", db, rep.fault == TKM_AUDIT_FAULT_NONE,
	                    tkm_audit_fault_name(rep.fault), &rep);
}

static int verify_service(const tkmctl_opts *o)
{
	tkm_client *c = NULL;
	tkm_audit_report rep;
	tkmctl_reply r;
	char kind[64];
	bool ok = false;
	tkm_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(&rep, 0, sizeof(rep));
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if ((err = tkmctl_call(c, o, "audit.verify", NULL, &r)) != TKM_OK) {
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	if (!tkmctl_get_bool(&r, r.root, "ok", &ok) ||
	    !get_cstr(&r, r.root, "fault", true, kind, sizeof(kind)) ||
	    !tkmctl_get_uint(&r, r.root, "bad_seq", &rep.bad_seq) ||
	    !get_cstr(&r, r.root, "what", true, rep.what, sizeof(rep.what)) ||
	    !tkmctl_get_uint(&r, r.root, "first_seq", &rep.first_seq) ||
	    !tkmctl_get_uint(&r, r.root, "records", &rep.records) ||
	    !tkmctl_get_uint(&r, r.root, "last_seq", &rep.last_seq) ||
	    !tkmctl_get_uint(&r, r.root, "checkpoints", &rep.checkpoints) ||
	    !tkmctl_get_uint(&r, r.root, "last_checkpoint_seq", &rep.last_checkpoint_seq) ||
	    !tkmctl_get_uint(&r, r.root, "unsigned_tail", &rep.unsigned_tail)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (ok != (strcmp(kind, "none") == 0)) {
		tkmctl_reply_bad(&r, "'ok' and 'fault' disagree");
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	rc = print_verify(o, "url", o->url, ok, kind, &rep);
out:
	tkmctl_reply_free(&r);
	tkm_client_close(c);
	return rc;
}

static int cmd_audit_verify(const tkmctl_opts *o, int argc, char **argv)
{
	const char *db = NULL, *pubkey = NULL;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;

		if ((v = tkmctl_opt_value(argc, argv, &i, "--db", &missing)) != NULL) {
			if (db != NULL) {
				return tkmctl_usage_error("option given twice", a);
			}
			db = v;
		} else if ((v = tkmctl_opt_value(argc, argv, &i, "--pubkey", &missing)) != NULL) {
			if (pubkey != NULL) {
				return tkmctl_usage_error("option given twice", a);
			}
			pubkey = v;
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else {
			return tkmctl_usage_error("audit verify: unknown argument", a);
		}
	}
	if (db == NULL && pubkey == NULL) {
		return verify_service(o);
	}
	if (db == NULL || pubkey == NULL) {
		return tkmctl_usage_error("audit verify needs both --db FILE and --pubkey FILE to "
		                          "check a copy offline, or neither to ask the service",
		                          NULL);
	}
	return verify_offline(o, db, pubkey);
}

/* ---- audit pubkey ---- */

static int cmd_audit_pubkey(const tkmctl_opts *o, int argc, char **argv)
{
	const char *out_path = NULL;
	const uint8_t *pk = NULL, *id = NULL;
	tkm_client *c = NULL;
	FILE *f = NULL;
	tkmctl_reply r;
	tkm_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;

		if ((v = tkmctl_opt_value(argc, argv, &i, "--out", &missing)) != NULL) {
			if (out_path != NULL) {
				return tkmctl_usage_error("option given twice", a);
			}
			if (v[0] == '\0') {
				return tkmctl_usage_error("--out needs a file name", a);
			}
			out_path = v;
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else {
			return tkmctl_usage_error("audit pubkey: unknown argument", a);
		}
	}
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if ((err = tkmctl_call(c, o, "audit.public_key", NULL, &r)) != TKM_OK) {
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	if (!get_bytes(&r, r.root, "public_key", TKM_AUDIT_PK_LEN, &pk) ||
	    !get_bytes(&r, r.root, "key_id", 16, &id)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (out_path != NULL) {
		if ((rc = tkmctl_create_out(o, out_path, 0644, &f)) != TKMCTL_EXIT_OK) {
			goto out;
		}
		tkmctl_put_hex(f, pk, TKM_AUDIT_PK_LEN);
		fputc('\n', f);
		rc = tkmctl_finish_out(o, out_path, f);
		f = NULL;
		if (rc != TKMCTL_EXIT_OK) {
			goto out;
		}
	}
	if (o->json) {
		fputs("{\"public_key\":\"", stdout);
		tkmctl_put_hex(stdout, pk, TKM_AUDIT_PK_LEN);
		fputs("\",\"key_id\":\"", stdout);
		tkmctl_put_hex(stdout, id, 16);
		fputc('"', stdout);
		if (out_path != NULL) {
			fputs(",\"file\":", stdout);
			tkmctl_put_json_str(stdout, out_path);
		}
		fputs("}\n", stdout);
	} else if (out_path != NULL) {
		fputs("audit public key written to ", stdout);
		tkmctl_put_text(stdout, out_path);
		fputs(" (key id ", stdout);
		tkmctl_put_hex(stdout, id, 16);
		fputs(")\n", stdout);
	} else {
		tkmctl_put_hex(stdout, pk, TKM_AUDIT_PK_LEN);
		fputc('\n', stdout);
	}
	rc = TKMCTL_EXIT_OK;
out:
	tkmctl_reply_free(&r);
	tkm_client_close(c);
	return rc;
}

/* ---- audit export ---- */

static int cmd_audit_export(const tkmctl_opts *o, int argc, char **argv)
{
	const char *out_path = NULL, *since = NULL;
	uint64_t after = 0, since_ms = 0, limit = AUDIT_PAGE_MAX;
	uint64_t count = 0, first = 0, last = 0;
	tkm_client *c = NULL;
	FILE *f = NULL, *dst = stdout;
	bool more = true;
	page pg;
	tkm_err err;
	int rc;

	memset(&pg, 0, sizeof(pg));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;

		if ((v = tkmctl_opt_value(argc, argv, &i, "--out", &missing)) != NULL) {
			if (out_path != NULL) {
				return tkmctl_usage_error("option given twice", a);
			}
			if (v[0] == '\0') {
				return tkmctl_usage_error("--out needs a file name", a);
			}
			out_path = v;
		} else if ((v = tkmctl_opt_value(argc, argv, &i, "--since", &missing)) != NULL) {
			if (since != NULL) {
				return tkmctl_usage_error("option given twice", a);
			}
			since = v;
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else {
			return tkmctl_usage_error("audit export: unknown argument", a);
		}
	}
	if (since != NULL) {
		uint64_t seq;

		if (tkmctl_parse_uint(0, since, SEQ_MAX, &seq)) {
			after = seq > 0 ? seq - 1 : 0;
		} else if (!tkmctl_parse_time_ms(since, &since_ms)) {
			return tkmctl_usage_error(
			    "--since needs a seq number, a time such as "
			    "2026-11-23T10:00:00Z, or a date such as 2026-11-23",
			    since);
		}
	}
	if ((rc = tkmctl_connect(o, AUDIT_REPLY_MAX, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if (out_path != NULL) {
		if ((rc = tkmctl_create_out(o, out_path, 0600, &f)) != TKMCTL_EXIT_OK) {
			goto out;
		}
		dst = f;
	}
	while (more) {
		if ((err = list_page_fit(c, o, after, since_ms, &limit, &pg)) != TKM_OK) {
			rc = tkmctl_fail(o, err, pg.r.why);
			goto out;
		}
		for (size_t i = 0; i < pg.n; i++) {
			print_record_json(dst, &pg.recs[i]);
		}
		if (pg.n > 0) {
			first = count == 0 ? pg.recs[0].seq : first;
			last = pg.recs[pg.n - 1].seq;
			count += pg.n;
		}
		more = pg.has_next;
		after = pg.next;
		page_free(&pg);
		if (ferror(dst)) {
			rc = tkmctl_fail(o, TKM_E_IO, "cannot write the output");
			goto out;
		}
	}
	if (f != NULL) {
		rc = tkmctl_finish_out(o, out_path, f);
		f = NULL;
		if (rc != TKMCTL_EXIT_OK) {
			goto out;
		}
		fprintf(stderr, "exported %llu record%s", (unsigned long long)count,
		        count == 1 ? "" : "s");
		if (count > 0) {
			fprintf(stderr, ", seq %llu..%llu", (unsigned long long)first,
			        (unsigned long long)last);
		}
		fputs(" to ", stderr);
		tkmctl_put_text(stderr, out_path);
		fputc('\n', stderr);
		if (o->json) {
			fputs("{\"file\":", stdout);
			tkmctl_put_json_str(stdout, out_path);
			printf(",\"records\":%llu,\"first_seq\":%llu,\"last_seq\":%llu}\n",
			       (unsigned long long)count, (unsigned long long)first,
			       (unsigned long long)last);
		}
	}
	rc = TKMCTL_EXIT_OK;
out:
	page_free(&pg);
	if (out_path != NULL) {
		tkmctl_discard_out(out_path, f);
	}
	tkm_client_close(c);
	return rc;
}

/* ---- audit tail ---- */

static volatile sig_atomic_t tail_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	tail_stop = 1;
}

/*
 * Whether a record with seq > after exists: *seq is the first one, and *newest
 * says that none follows it. One audit.list call with limit 1.
 */
static tkm_err probe(tkm_client *c, const tkmctl_opts *o, uint64_t after, bool *found,
                     uint64_t *seq, bool *newest, char *why, size_t why_len)
{
	page pg;
	tkm_err err = list_page(c, o, after, 0, 1, &pg);

	if (err != TKM_OK) {
		tkm_why_set(why, why_len, "%s", pg.r.why);
		return err;
	}
	*found = pg.n == 1;
	if (*found) {
		*seq = pg.recs[0].seq;
		*newest = !pg.has_next;
	}
	page_free(&pg);
	return TKM_OK;
}

/*
 * The newest seq (0 for an empty log), found with audit.list calls of one
 * record each instead of reading the whole log: "is there a record after
 * X?" is monotone in X, so a doubling search brackets the head and a binary
 * search pins it, in about 2 log2(head) calls.
 */
static tkm_err find_head(tkm_client *c, const tkmctl_opts *o, uint64_t *head, char *why,
                         size_t why_len)
{
	uint64_t lo, hi = SEQ_MAX, step = 1024, s = 0;
	bool found = false, newest = false;
	tkm_err err;

	/* Invariant: a record after lo exists, none after hi. */
	if ((err = probe(c, o, 0, &found, &s, &newest, why, why_len)) != TKM_OK) {
		return err;
	}
	if (!found || newest) {
		*head = found ? s : 0;
		return TKM_OK;
	}
	lo = s;
	while (SEQ_MAX - lo > step) {
		if ((err = probe(c, o, lo + step, &found, &s, &newest, why, why_len)) != TKM_OK) {
			return err;
		}
		if (!found) {
			hi = lo + step;
			break;
		}
		if (newest) {
			*head = s;
			return TKM_OK;
		}
		lo = s;
		step = step < SEQ_MAX / 4 ? step * 2 : step;
	}
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if ((err = probe(c, o, mid, &found, &s, &newest, why, why_len)) != TKM_OK) {
			return err;
		}
		if (!found) {
			hi = mid;
		} else if (newest) {
			*head = s;
			return TKM_OK;
		} else {
			lo = s;
		}
	}
	*head = hi;
	return TKM_OK;
}

/* Sleep ms milliseconds in short steps, returning early once a stop signal came. */
static void tail_sleep(unsigned ms)
{
	while (ms > 0 && !tail_stop) {
		unsigned step = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)step * 1000000L};

		(void)nanosleep(&ts, NULL);
		ms -= step;
	}
}

static bool parse_tail_args(int argc, char **argv, uint64_t *n, bool *follow, unsigned *interval,
                            int *rc)
{
	bool have_n = false, have_interval = false;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;
		uint64_t u;

		if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0) {
			*follow = true;
		} else if ((v = tkmctl_opt_value(argc, argv, &i, "-n", &missing)) != NULL) {
			if (have_n) {
				*rc = tkmctl_usage_error("option given twice", a);
				return false;
			}
			if (!tkmctl_parse_uint(0, v, SEQ_MAX, n)) {
				*rc = tkmctl_usage_error("-n needs a number of records", v);
				return false;
			}
			have_n = true;
		} else if ((v = tkmctl_opt_value(argc, argv, &i, "--interval", &missing)) != NULL) {
			if (have_interval) {
				*rc = tkmctl_usage_error("option given twice", a);
				return false;
			}
			if (!tkmctl_parse_uint(0, v, INTERVAL_MAX, &u) || u < INTERVAL_MIN) {
				*rc = tkmctl_usage_error(
				    "--interval needs milliseconds from 10 to 3600000", v);
				return false;
			}
			*interval = (unsigned)u;
			have_interval = true;
		} else if (missing) {
			*rc = tkmctl_usage_error("option needs a value", a);
			return false;
		} else {
			*rc = tkmctl_usage_error("audit tail: unknown argument", a);
			return false;
		}
	}
	return true;
}

static int cmd_audit_tail(const tkmctl_opts *o, int argc, char **argv)
{
	uint64_t n = TAIL_DEFAULT, head = 0, after, limit = AUDIT_PAGE_MAX;
	unsigned interval = INTERVAL_DEFAULT;
	bool follow = false, done = false;
	tkm_client *c = NULL;
	struct sigaction sa, old_int, old_term;
	bool handlers = false;
	char why[256] = "";
	page pg;
	tkm_err err;
	int rc = TKMCTL_EXIT_USAGE;

	memset(&pg, 0, sizeof(pg));
	if (!parse_tail_args(argc, argv, &n, &follow, &interval, &rc)) {
		return rc;
	}
	if ((rc = tkmctl_connect(o, AUDIT_REPLY_MAX, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if (follow) {
		/* No SA_RESTART: a signal ends the sleep between polls at once. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop_signal;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGINT, &sa, &old_int) != 0 ||
		    sigaction(SIGTERM, &sa, &old_term) != 0) {
			rc = tkmctl_fail(o, TKM_E_INTERNAL, "cannot install the signal handlers");
			goto out;
		}
		handlers = true;
	}
	if ((err = find_head(c, o, &head, why, sizeof(why))) != TKM_OK) {
		rc = tkmctl_fail(o, err, why);
		goto out;
	}
	/* Seqs are contiguous from the archive anchor on, so the last n start after head - n. */
	after = head > n ? head - n : 0;
	while (!done && !tail_stop) {
		if ((err = list_page_fit(c, o, after, 0, &limit, &pg)) != TKM_OK) {
			rc = tail_stop ? TKMCTL_EXIT_OK : tkmctl_fail(o, err, pg.r.why);
			goto out;
		}
		for (size_t i = 0; i < pg.n; i++) {
			/* Without --follow, records written after the head was found wait. */
			if (!follow && pg.recs[i].seq > head) {
				done = true;
				break;
			}
			if (o->json) {
				print_record_json(stdout, &pg.recs[i]);
			} else {
				print_record_text(stdout, &pg.recs[i]);
			}
			after = pg.recs[i].seq;
		}
		if (fflush(stdout) != 0 || ferror(stdout)) {
			rc = tkmctl_fail(o, TKM_E_IO, "cannot write the output");
			goto out;
		}
		if (!pg.has_next) {
			if (!follow) {
				done = true;
			} else {
				tail_sleep(interval);
			}
		}
		page_free(&pg);
	}
	rc = TKMCTL_EXIT_OK;
out:
	page_free(&pg);
	if (handlers) {
		(void)sigaction(SIGINT, &old_int, NULL);
		(void)sigaction(SIGTERM, &old_term, NULL);
	}
	tkm_client_close(c);
	return rc;
}

/* ---- audit archive, audit checkpoint, backup ---- */

/* The result of audit.archive and store.backup: where the copy went and what it holds. */
typedef struct copy_result {
	char path[PATH_MAX_LEN + 1];
	uint64_t bytes, first_seq, last_seq, checkpoint_seq, seq;
} copy_result;

/*
 * Call method with {"path": path[, "before_ms": before_ms]}; with_seq: the
 * result has "seq" too. Returns an exit status.
 */
static int call_copy(const tkmctl_opts *o, const char *method, const char *path, bool has_before,
                     uint64_t before_ms, bool with_seq, copy_result *res)
{
	tkm_client *c = NULL;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	tkm_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(res, 0, sizeof(*res));
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if ((err = tkm_cbor_w_new(PARAMS_MAX, &w)) != TKM_OK) {
		rc = tkmctl_fail(o, err, NULL);
		goto out;
	}
	tkm_cbor_put_map(w, has_before ? 2 : 1);
	tkm_cbor_put_cstr(w, "path");
	tkm_cbor_put_cstr(w, path);
	if (has_before) {
		tkm_cbor_put_cstr(w, "before_ms");
		tkm_cbor_put_uint(w, before_ms);
	}
	if ((err = tkmctl_call(c, o, method, w, &r)) != TKM_OK) {
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	if (!get_cstr(&r, r.root, "path", false, res->path, sizeof(res->path)) ||
	    !tkmctl_get_uint(&r, r.root, "bytes", &res->bytes) ||
	    !tkmctl_get_uint(&r, r.root, "first_seq", &res->first_seq) ||
	    !tkmctl_get_uint(&r, r.root, "last_seq", &res->last_seq) ||
	    !tkmctl_get_uint(&r, r.root, "checkpoint_seq", &res->checkpoint_seq) ||
	    (with_seq && !tkmctl_get_uint(&r, r.root, "seq", &res->seq))) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	rc = TKMCTL_EXIT_OK;
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	tkm_client_close(c);
	return rc;
}

static void print_copy_json(const copy_result *res, bool with_seq)
{
	fputs("{\"path\":", stdout);
	tkmctl_put_json_str(stdout, res->path);
	printf(",\"bytes\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,\"checkpoint_seq\":%llu",
	       (unsigned long long)res->bytes, (unsigned long long)res->first_seq,
	       (unsigned long long)res->last_seq, (unsigned long long)res->checkpoint_seq);
	if (with_seq) {
		printf(",\"seq\":%llu", (unsigned long long)res->seq);
	}
	fputs("}\n", stdout);
}

static int cmd_audit_archive(const tkmctl_opts *o, int argc, char **argv)
{
	const char *out_path = NULL, *before = NULL;
	char path[PATH_MAX_LEN];
	uint64_t before_ms = 0;
	copy_result res;
	int rc;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;

		if ((v = tkmctl_opt_value(argc, argv, &i, "--out", &missing)) != NULL) {
			if (out_path != NULL) {
				return tkmctl_usage_error("option given twice", a);
			}
			out_path = v;
		} else if ((v = tkmctl_opt_value(argc, argv, &i, "--before", &missing)) != NULL) {
			if (before != NULL) {
				return tkmctl_usage_error("option given twice", a);
			}
			before = v;
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else {
			return tkmctl_usage_error("audit archive: unknown argument", a);
		}
	}
	if (out_path == NULL) {
		return tkmctl_usage_error(
		    "audit archive needs --out PATH, a new file on tkmd's host", NULL);
	}
	if (before != NULL && !tkmctl_parse_time_ms(before, &before_ms)) {
		return tkmctl_usage_error("--before needs a time such as 2026-11-23T10:00:00Z or a "
		                          "date such as 2026-11-23",
		                          before);
	}
	if ((rc = absolute_path("--out needs a file name", out_path, path, sizeof(path))) !=
	    TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = call_copy(o, "audit.archive", path, before != NULL, before_ms, true, &res)) !=
	    TKMCTL_EXIT_OK) {
		return rc;
	}
	if (o->json) {
		print_copy_json(&res, true);
	} else {
		printf("archived records %llu..%llu to ", (unsigned long long)res.first_seq,
		       (unsigned long long)res.last_seq);
		tkmctl_put_text(stdout, res.path);
		printf(" (%llu bytes); the live chain now starts after checkpoint %llu; the cut is "
		       "audit record %llu\n",
		       (unsigned long long)res.bytes, (unsigned long long)res.checkpoint_seq,
		       (unsigned long long)res.seq);
	}
	return TKMCTL_EXIT_OK;
}

static int cmd_audit_checkpoint(const tkmctl_opts *o, int argc, char **argv)
{
	tkm_client *c = NULL;
	uint64_t seq = 0;
	tkmctl_reply r;
	tkm_err err;
	int rc;

	if (argc > 0) {
		return tkmctl_usage_error("audit checkpoint takes no arguments", argv[0]);
	}
	memset(&r, 0, sizeof(r));
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if ((err = tkmctl_call(c, o, "audit.checkpoint", NULL, &r)) != TKM_OK) {
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	if (!tkmctl_get_uint(&r, r.root, "seq", &seq)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (o->json) {
		printf("{\"seq\":%llu}\n", (unsigned long long)seq);
	} else {
		printf("checkpoint signed at seq %llu\n", (unsigned long long)seq);
	}
	rc = TKMCTL_EXIT_OK;
out:
	tkmctl_reply_free(&r);
	tkm_client_close(c);
	return rc;
}

static int cmd_backup(const tkmctl_opts *o, int argc, char **argv)
{
	char path[PATH_MAX_LEN];
	copy_result res;
	int rc;

	if (argc != 1) {
		return tkmctl_usage_error("backup takes one FILE, a new file on tkmd's host",
		                          argc > 1 ? argv[1] : NULL);
	}
	if ((rc = absolute_path("backup needs a file name", argv[0], path, sizeof(path))) !=
	    TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = call_copy(o, "store.backup", path, false, 0, false, &res)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if (o->json) {
		print_copy_json(&res, false);
	} else {
		fputs("backup written to ", stdout);
		tkmctl_put_text(stdout, res.path);
		printf(": %llu bytes, audit records %llu..%llu, signed through checkpoint %llu\n",
		       (unsigned long long)res.bytes, (unsigned long long)res.first_seq,
		       (unsigned long long)res.last_seq, (unsigned long long)res.checkpoint_seq);
	}
	return TKMCTL_EXIT_OK;
}
