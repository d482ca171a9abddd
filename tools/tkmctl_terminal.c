/*
 * tkmctl_terminal.c - tkmctl's terminal registry commands: add, show, list,
 * import (a CSV file read with tkm_csv and sent in batches), export (CSV or
 * JSON Lines), the lifecycle moves (suspend, resume, revoke, decommission)
 * and the maintenance and custody histories.
 *
 * Flags that become registry fields are checked here with the rules of the
 * import file's columns (tkm_csv_terminal_columns), so that what a file may
 * not hold the command line may not either, and nothing is sent before every
 * flag has passed. Replies are checked field by field, a whole page or
 * batch before any of it is printed; every string from tkmd is untrusted and
 * goes out through tkmctl_put_text*, tkmctl_put_json_* or the CSV writer
 * below, which quotes it and replaces control characters. Terminal records
 * hold no secrets, and this file handles none.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tkm/client.h"
#include "tkm_cbor.h"
#include "tkm_csv.h"
#include "tkm_why.h"
#include "tkmctl.h"

#define ID_MAX            ((uint64_t)INT64_MAX)
#define FIELD_MAX         64   /* tkmd's limit on names, ids and versions */
#define NOTES_MAX         1024 /* tkmd's limit on notes and descriptions */
#define STATE_MAX         32
#define REASON_MAX        500
#define ROW_ERROR_MAX     1024
#define PARAMS_MAX        8192
#define LIST_PAGE_DEFAULT 100
#define LIST_PAGE_MAX     1000 /* tkmd's largest page */
#define EXPORT_PAGE       250  /* pages of list --all and export; halved while too large */
#define IMPORT_BATCH_MAX  1000 /* tkmd's most rows in one terminal.import */
#define IMPORT_ROW_MAX    8192 /* one encoded row: 10 cells of at most 1000 bytes */
/* The rows of one batch, encoded: well under tkmd's default max_message_size (1 MiB). */
#define IMPORT_BATCH_BYTES ((size_t)768 * 1024)

static int cmd_terminal(const tkmctl_opts *o, int argc, char **argv);
static int cmd_add(const tkmctl_opts *o, int argc, char **argv);
static int cmd_show(const tkmctl_opts *o, int argc, char **argv);
static int cmd_enroll_code(const tkmctl_opts *o, int argc, char **argv);
static int cmd_list(const tkmctl_opts *o, int argc, char **argv);
static int cmd_import(const tkmctl_opts *o, int argc, char **argv);
static int cmd_export(const tkmctl_opts *o, int argc, char **argv);
static int cmd_suspend(const tkmctl_opts *o, int argc, char **argv);
static int cmd_resume(const tkmctl_opts *o, int argc, char **argv);
static int cmd_revoke(const tkmctl_opts *o, int argc, char **argv);
static int cmd_decommission(const tkmctl_opts *o, int argc, char **argv);
static int cmd_maintenance(const tkmctl_opts *o, int argc, char **argv);
static int cmd_custody(const tkmctl_opts *o, int argc, char **argv);

#define RECORD_JSON_HELP                                                                           \
	"  {\"id\":N,\"state\":S,\"manufacturer\":S,\"serial\":S,\"model\":S|null,"                \
	"\"merchant\":S|null,\n"                                                                   \
	"   \"site\":S|null,\"group\":S|null,\"purchase_date\":S|null,"                            \
	"\"firmware_version\":S|null,\n"                                                           \
	"   \"app_version\":S|null,\"notes\":S|null,\"enrolled_ms\":T|null,"                       \
	"\"last_seen_ms\":T|null,\"created_ms\":T}\n"

#define FILTER_HELP                                                                                \
	"  --merchant M          only this merchant id\n"                                          \
	"  --site S              only this site\n"                                                 \
	"  --group G             only this terminal group\n"                                       \
	"  --state S             registered, active, suspended, revoked or decommissioned\n"       \
	"  --seen-since TIME     last seen at or after TIME\n"                                     \
	"  --not-seen-since TIME never seen, or last seen before TIME\n"

#define TIME_HELP "TIME is 2026-11-23 (midnight UTC) or 2026-11-23T10:00:00Z (RFC 3339).\n"

#define MOVE_HELP(from, to, method)                                                                \
	"Move terminal ID from " from " to " to " (" method "). --reason, 1 to 500\n"              \
	"bytes of text, goes into the audit record. docs/terminals.md has the table of\n"          \
	"the moves tkmd allows.\n"                                                                 \
	"\n"                                                                                       \
	"Output:\n"                                                                                \
	"  terminal ID: FROM -> " to "\n"                                                          \
	"With --json:\n"                                                                           \
	"  {\"id\":N,\"from\":S,\"state\":\"" to "\"}\n"

#define RESUME_HELP                                                                                \
	"\n"                                                                                       \
	"Lifting a suspension is under dual control: tkmd answers\n"                               \
	"  pending approval N (expires TIME): a second operator runs tkmctl approvals\n"           \
	"  approve N\n"                                                                            \
	"  {\"status\":\"pending\",\"method\":M,\"approval_id\":N,\"expires_ms\":T,"               \
	"\"expires\":TIME}   (--json)\n"                                                           \
	"and the command exits with status 0.\n"

#define REVOKE_HELP                                                                                \
	"\n"                                                                                       \
	"Revocation is at once and for good: the terminal's identity is refused and\n"             \
	"its keys are destroyed. The same hardware comes back only as a new record.\n"

static const tkmctl_cmd terminal_cmds[] = {
    {"add", "register a terminal",
     "--manufacturer M --serial S [--model X] [--merchant M] [--site S] [--group G]\n"
     "       [--purchase-date YYYY-MM-DD] [--notes TEXT]",
     "Register a terminal (terminal.add); it starts in state registered. The\n"
     "values follow the rules of the import file's columns (see 'terminal import'):\n"
     "manufacturer, serial, merchant, site and group are 1 to 64 of A-Z a-z 0-9 . _ -,\n"
     "model is printable ASCII, notes up to 1000 bytes of text. A serial is unique\n"
     "per manufacturer.\n"
     "\n"
     "Output: the new record, as 'terminal show' prints it.\n"
     "With --json:\n" RECORD_JSON_HELP,
     cmd_add, NULL, 0},
    {"show", "show one terminal", "ID",
     "Show terminal ID, its record id (terminal.show).\n"
     "\n"
     "Output:\n"
     "  id                1\n"
     "  state             registered\n"
     "  manufacturer      acme\n"
     "  serial            SN0001\n"
     "  ... one line per field; '-' for a field without a value\n"
     "With --json:\n" RECORD_JSON_HELP,
     cmd_show, NULL, 0},
    {"enroll-code", "get a one-time enrollment code for a terminal", "ID",
     "Get a one-time enrollment code for the registered terminal ID\n"
     "(terminal.enroll_code). The code is typed on the terminal (tkm-terminal\n"
     "enroll --code CODE); it is single use, expires (24 hours by default), and a\n"
     "new code replaces the terminal's older one. tkmd keeps only its hash.\n"
     "\n"
     "Output:\n"
     "  terminal:        ID\n"
     "  enrollment code: CODE\n"
     "  expires:         YYYY-MM-DDTHH:MM:SSZ\n"
     "With --json:\n"
     "  {\"terminal\":ID,\"code\":CODE,\"expires_ms\":T}\n",
     cmd_enroll_code, NULL, 0},
    {"list", "list terminals, with filters", "[FILTERS] [--after ID] [--limit N] [--all]",
     "List terminals in record id order (terminal.list).\n"
     "\n" FILTER_HELP "  --after ID            start after record id ID (the cursor)\n"
     "  --limit N             at most N terminals, 1 to 1000 (default 100); with\n"
     "                        --all, the size of each page\n"
     "  --all                 follow the cursor to the end\n" TIME_HELP "\n"
     "When more terminals follow, a line on stderr gives the --after to go on with.\n"
     "Nothing is printed unless every page arrived and passed its checks.\n"
     "\n"
     "Output:\n"
     "  ID  STATE  MANUFACTURER  SERIAL  MERCHANT  SITE  GROUP  LAST SEEN\n"
     "With --json, one object (for JSON Lines use 'terminal export --format json'):\n"
     "  {\"terminals\":[RECORD...],\"next\":ID|null}   with RECORD as in 'show'\n",
     cmd_list, NULL, 0},
    {"import", "register or update terminals from a CSV file", "FILE.csv [--batch N]",
     "Import terminals from a CSV file (RFC 4180; UTF-8; CRLF or LF). The first row\n"
     "names the columns, in any order and case:\n"
     "  manufacturer, serial          required; 1 to 64 of A-Z a-z 0-9 . _ -\n"
     "  merchant, site, group         optional; the same rule\n"
     "  model                         optional; printable ASCII, up to 64 bytes\n"
     "  firmware_version, app_version optional; printable ASCII, up to 32 bytes\n"
     "  purchase_date                 optional; YYYY-MM-DD\n"
     "  notes                         optional; text without control characters,\n"
     "                                up to 1000 bytes\n"
     "  id, state, enrolled_ms, last_seen_ms, created_ms\n"
     "                                accepted and ignored, so that a file of\n"
     "                                'terminal export' imports back; an import\n"
     "                                never changes a terminal's state\n"
     "An empty cell is a field without a value.\n"
     "\n"
     "A terminal is named by manufacturer and serial: a new one is inserted, a\n"
     "known one updated when a field differs, else left unchanged, so importing the\n"
     "same file again changes nothing. Each bad row is reported on stderr as\n"
     "FILE:LINE: REASON and never sent; the good rows go in batches of up to N\n"
     "rows (--batch, 1 to 1000, default 1000; fewer when the rows are long), and a\n"
     "row tkmd refuses is reported the same way. On a terminal, stderr shows the\n"
     "progress. A file that cannot be parsed further (broken quoting, a cell over\n"
     "4096 bytes) stops the import; batches already sent stay imported.\n"
     "\n"
     "Output:\n"
     "  inserted N, updated N, unchanged N, refused N (bad rows N)\n"
     "With --json:\n"
     "  {\"file\":F,\"rows\":N,\"batches\":N,\"inserted\":N,\"updated\":N,"
     "\"unchanged\":N,\n"
     "   \"refused\":N,\"bad_rows\":N}\n"
     "Exit status 0 when every row was imported, 1 when any was bad or refused.\n",
     cmd_import, NULL, 0},
    {"export", "write terminals as CSV or JSON Lines", "[--format csv|json] [--out FILE] [FILTERS]",
     "Write the terminals that match the filters, in record id order, paging\n"
     "through terminal.list.\n"
     "\n"
     "  --format csv   (the default) a header row, then one row per terminal:\n"
     "                 id,state,manufacturer,serial,model,merchant,site,group,\n"
     "                 purchase_date,firmware_version,app_version,notes,enrolled_ms,\n"
     "                 last_seen_ms,created_ms\n"
     "                 Cells are quoted as RFC 4180 wants; times are Unix ms. The\n"
     "                 file imports back with 'terminal import'.\n"
     "  --format json  JSON Lines: one RECORD as in 'show' per line (the default\n"
     "                 with --json)\n"
     "  --out FILE     write FILE (created, never replaced) instead of stdout;\n"
     "                 removed again on failure\n" FILTER_HELP TIME_HELP "\n"
     "With --out, stderr says how many terminals went to FILE, and with --json\n"
     "stdout gets {\"file\":F,\"format\":S,\"terminals\":N}.\n",
     cmd_export, NULL, 0},
    {"suspend", "suspend an active terminal", "ID --reason TEXT",
     MOVE_HELP("active", "suspended", "terminal.suspend"), cmd_suspend, NULL, 0},
    {"resume", "lift a suspension (dual control)", "ID --reason TEXT",
     MOVE_HELP("suspended", "active", "terminal.resume") RESUME_HELP, cmd_resume, NULL, 0},
    {"revoke", "revoke a lost or stolen terminal, for good", "ID --reason TEXT",
     MOVE_HELP("registered, active or suspended", "revoked", "terminal.revoke") REVOKE_HELP,
     cmd_revoke, NULL, 0},
    {"decommission", "retire a terminal", "ID --reason TEXT",
     MOVE_HELP("registered, active or suspended", "decommissioned", "terminal.decommission"),
     cmd_decommission, NULL, 0},
    {"maintenance", "add to a terminal's maintenance history",
     "add ID --at YYYY-MM-DD --kind K --technician T [--description D]",
     "Add an entry to the append-only maintenance history of terminal ID\n"
     "(terminal.maintenance_add). --kind is printable ASCII and --technician text,\n"
     "1 to 64 bytes each; --description up to 1024 bytes of text.\n"
     "\n"
     "Output:\n"
     "  maintenance entry SEQ added to terminal ID\n"
     "With --json:\n"
     "  {\"id\":N,\"seq\":N}\n",
     cmd_maintenance, NULL, 0},
    {"custody", "add to a terminal's custody history",
     "add ID --at YYYY-MM-DD --action received|returned --person P [--counterparty C]",
     "Add an entry to the append-only custody history of terminal ID\n"
     "(terminal.custody_add): who received or returned the device, when, and from\n"
     "or to whom. --person and --counterparty are 1 to 64 bytes of text.\n"
     "\n"
     "Output:\n"
     "  custody entry SEQ added to terminal ID\n"
     "With --json:\n"
     "  {\"id\":N,\"seq\":N}\n",
     cmd_custody, NULL, 0},
};

const tkmctl_cmd tkmctl_terminal_cmd = {
    "terminal",
    "register, list, import, export and move terminals",
    "SUBCOMMAND [ARGS]",
    "The terminal registry: records of the payment terminals tkm manages, their\n"
    "lifecycle (registered, active, suspended, revoked, decommissioned; see\n"
    "docs/terminals.md) and their maintenance and custody histories. A terminal\n"
    "is named by its record id (ID).\n",
    cmd_terminal,
    terminal_cmds,
    sizeof(terminal_cmds) / sizeof(terminal_cmds[0]),
};

static int cmd_terminal(const tkmctl_opts *o, int argc, char **argv)
{
	return tkmctl_run_sub(&tkmctl_terminal_cmd, o, argc, argv);
}

/* ---- Rules of the flags ---- */

static const char *const state_names[] = {"registered", "active", "suspended", "revoked",
                                          "decommissioned"};

static bool state_known(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strlen(state_names[i]) == n && strncmp(state_names[i], s, n) == 0) {
			return true;
		}
	}
	return false;
}

static const tkm_csv_column col_reason = {"reason", TKM_CSV_TEXT, REASON_MAX, true};
static const tkm_csv_column col_date = {"at", TKM_CSV_DATE, 10, true};
static const tkm_csv_column col_kind = {"kind", TKM_CSV_PRINTABLE, FIELD_MAX, true};
static const tkm_csv_column col_person = {"person", TKM_CSV_TEXT, FIELD_MAX, true};
static const tkm_csv_column col_name_opt = {"counterparty", TKM_CSV_TEXT, FIELD_MAX, false};
static const tkm_csv_column col_description = {"description", TKM_CSV_TEXT, NOTES_MAX, false};

#define TCOL(c) (&tkm_csv_terminal_columns[TKM_CSV_T_##c])

/*
 * One option of a command: its flag, the params key its value goes to (NULL:
 * the command reads the value itself) and the rule the value must pass
 * (NULL: the command checks it).
 */
typedef struct flag_spec {
	const char *flag;
	const char *key;
	const tkm_csv_column *col;
	bool is_switch; /* takes no value; vals[i] is the flag itself when given */
} flag_spec;

/*
 * An argument a command does not take. An option is named without its
 * "=VALUE".
 */
static int unknown_arg(const char *cmd, const char *a)
{
	const char *eq = a[0] == '-' ? strchr(a, '=') : NULL;
	char what[96], name[48];

	tkm_why_set(what, sizeof(what), "terminal %s: unknown argument", cmd);
	if (eq != NULL) {
		tkm_why_set(name, sizeof(name), "%.*s=...", (int)(eq - a < 40 ? eq - a : 40), a);
		return tkmctl_usage_error(what, name);
	}
	return tkmctl_usage_error(what, a);
}

/*
 * Sort argv into the options of specs[0..n) (vals[i] for specs[i], NULL when
 * not given) and up to max_pos positional arguments. Every option once.
 * Returns an exit status (usage errors reported).
 */
static int parse_args(const char *cmd, int argc, char **argv, const flag_spec *specs, size_t n,
                      const char **vals, const char **pos, size_t max_pos, size_t *npos)
{
	*npos = 0;
	for (size_t k = 0; k < n; k++) {
		vals[k] = NULL;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		bool matched = false;

		if (a[0] != '-' || a[1] == '\0') {
			if (*npos >= max_pos) {
				char what[96];

				tkm_why_set(what, sizeof(what), "terminal %s: unexpected argument",
				            cmd);
				return tkmctl_usage_error(what, a);
			}
			pos[(*npos)++] = a;
			continue;
		}
		for (size_t k = 0; k < n && !matched; k++) {
			const char *v;
			bool missing = false;

			if (specs[k].is_switch) {
				v = strcmp(a, specs[k].flag) == 0 ? a : NULL;
			} else {
				v = tkmctl_opt_value(argc, argv, &i, specs[k].flag, &missing);
			}
			if (missing) {
				return tkmctl_usage_error("option needs a value", a);
			}
			if (v == NULL) {
				continue;
			}
			if (vals[k] != NULL) {
				return tkmctl_usage_error("option given twice", specs[k].flag);
			}
			vals[k] = v;
			matched = true;
		}
		if (!matched) {
			return unknown_arg(cmd, a);
		}
	}
	return TKMCTL_EXIT_OK;
}

/* Every flag with a rule: present when required, and passing it. Returns an exit status. */
static int check_flags(const flag_spec *specs, size_t n, const char **vals)
{
	char what[160];

	for (size_t k = 0; k < n; k++) {
		const char *why;

		if (specs[k].col == NULL) {
			continue;
		}
		if (vals[k] == NULL) {
			if (specs[k].col->required) {
				tkm_why_set(what, sizeof(what), "%s is required", specs[k].flag);
				return tkmctl_usage_error(what, NULL);
			}
			continue;
		}
		if ((why = tkm_csv_check_value(specs[k].col, vals[k], strlen(vals[k]))) != NULL) {
			tkm_why_set(what, sizeof(what), "%s: %s", specs[k].flag, why);
			return tkmctl_usage_error(what, vals[k]);
		}
	}
	return TKMCTL_EXIT_OK;
}

/* The terminal ID among the positional arguments (exactly one). Returns an exit status. */
static int id_of(const char *cmd, const char **pos, size_t npos, uint64_t *id)
{
	char what[96];

	if (npos != 1) {
		tkm_why_set(what, sizeof(what), "terminal %s needs the terminal's ID", cmd);
		return tkmctl_usage_error(what, NULL);
	}
	if (!tkmctl_parse_uint(1, pos[0], ID_MAX, id)) {
		tkm_why_set(what, sizeof(what), "terminal %s: ID is a record id (1 or more)", cmd);
		return tkmctl_usage_error(what, pos[0]);
	}
	return TKMCTL_EXIT_OK;
}

/*
 * A params map of "id" (when id > 0) and every given flag of specs that has a
 * key. Returns an exit status.
 */
static int flag_params(const tkmctl_opts *o, uint64_t id, const flag_spec *specs, size_t n,
                       const char **vals, tkm_cbor_w **w)
{
	size_t pairs = id > 0 ? 1 : 0;
	int rc;

	for (size_t k = 0; k < n; k++) {
		pairs += specs[k].key != NULL && vals[k] != NULL;
	}
	if ((rc = tkmctl_params_new(o, PARAMS_MAX, w)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	tkm_cbor_put_map(*w, pairs);
	if (id > 0) {
		tkm_cbor_put_cstr(*w, "id");
		tkm_cbor_put_uint(*w, id);
	}
	for (size_t k = 0; k < n; k++) {
		if (specs[k].key != NULL && vals[k] != NULL) {
			tkm_cbor_put_cstr(*w, specs[k].key);
			tkm_cbor_put_cstr(*w, vals[k]);
		}
	}
	return tkmctl_params_check(o, *w);
}

/* ---- Terminal records in replies ---- */

/* Untrusted text of a reply; s NULL for null. */
typedef struct tstr {
	const char *s;
	size_t n;
} tstr;

/* The text fields of a record, in the order of show, JSON and CSV. */
enum rec_text {
	R_STATE,
	R_MANUFACTURER,
	R_SERIAL,
	R_MODEL,
	R_MERCHANT,
	R_SITE,
	R_GROUP,
	R_PURCHASE_DATE,
	R_FIRMWARE_VERSION,
	R_APP_VERSION,
	R_NOTES,
	R_NTEXT
};

static const struct rec_field {
	const char *key;
	const char *label; /* in show's output */
	size_t max;
	bool required; /* else null is allowed */
} rec_fields[R_NTEXT] = {
    [R_STATE] = {"state", "state", STATE_MAX, true},
    [R_MANUFACTURER] = {"manufacturer", "manufacturer", FIELD_MAX, true},
    [R_SERIAL] = {"serial", "serial", FIELD_MAX, true},
    [R_MODEL] = {"model", "model", FIELD_MAX, false},
    [R_MERCHANT] = {"merchant", "merchant", FIELD_MAX, false},
    [R_SITE] = {"site", "site", FIELD_MAX, false},
    [R_GROUP] = {"group", "group", FIELD_MAX, false},
    [R_PURCHASE_DATE] = {"purchase_date", "purchase date", 10, false},
    [R_FIRMWARE_VERSION] = {"firmware_version", "firmware version", FIELD_MAX, false},
    [R_APP_VERSION] = {"app_version", "app version", FIELD_MAX, false},
    [R_NOTES] = {"notes", "notes", NOTES_MAX, false},
};

/* The time fields, after the text ones; enrolled and last seen may be null. */
enum rec_time { T_ENROLLED, T_LAST_SEEN, T_CREATED, T_NTIME };

static const struct time_field {
	const char *key;
	const char *label;
	bool required;
} time_fields[T_NTIME] = {
    [T_ENROLLED] = {"enrolled_ms", "enrolled", false},
    [T_LAST_SEEN] = {"last_seen_ms", "last seen", false},
    [T_CREATED] = {"created_ms", "created", true},
};

typedef struct term_rec {
	uint64_t id;
	tstr text[R_NTEXT];
	uint64_t ms[T_NTIME];
	bool has_ms[T_NTIME];
} term_rec;

/* A terminal record of terminal.add, .show or .list, checked field by field. */
static bool parse_terminal(tkmctl_reply *r, const tkm_cbor_val *v, term_rec *t)
{
	memset(t, 0, sizeof(*t));
	if (!tkm_cbor_is(v, TKM_CBOR_MAP)) {
		return tkmctl_reply_bad(r, "a terminal is not a map");
	}
	if (!tkmctl_get_uint(r, v, "id", &t->id)) {
		return false;
	}
	if (t->id == 0 || t->id > ID_MAX) {
		return tkmctl_reply_bad(r, "a terminal's 'id' is out of range");
	}
	for (size_t k = 0; k < R_NTEXT; k++) {
		const struct rec_field *f = &rec_fields[k];
		const tkm_cbor_val *x = tkm_cbor_map_get(v, f->key);

		if (!f->required && tkm_cbor_is(x, TKM_CBOR_NULL)) {
			continue;
		}
		if (!tkmctl_get_text(r, v, f->key, false, f->max, &t->text[k].s, &t->text[k].n)) {
			return false;
		}
	}
	if (!state_known(t->text[R_STATE].s, t->text[R_STATE].n)) {
		return tkmctl_reply_bad(r, "a terminal's 'state' is not a known state");
	}
	for (size_t k = 0; k < T_NTIME; k++) {
		const struct time_field *f = &time_fields[k];

		if (!f->required && tkm_cbor_is(tkm_cbor_map_get(v, f->key), TKM_CBOR_NULL)) {
			continue;
		}
		if (!tkmctl_get_uint(r, v, f->key, &t->ms[k])) {
			return false;
		}
		t->has_ms[k] = true;
	}
	return true;
}

static void put_time(FILE *f, const term_rec *t, size_t k)
{
	char buf[64];

	if (!t->has_ms[k]) {
		fputc('-', f);
		return;
	}
	tkmctl_format_utc((int64_t)(t->ms[k] / 1000u), buf, sizeof(buf));
	fputs(buf, f);
}

/* show's lines: "label  value", '-' for null. */
static void print_terminal_text(FILE *f, const term_rec *t)
{
	fprintf(f, "%-17s %llu\n", "id", (unsigned long long)t->id);
	for (size_t k = 0; k < R_NTEXT; k++) {
		fprintf(f, "%-17s ", rec_fields[k].label);
		if (t->text[k].s != NULL) {
			tkmctl_put_text_n(f, t->text[k].s, t->text[k].n);
		} else {
			fputc('-', f);
		}
		fputc('\n', f);
	}
	for (size_t k = 0; k < T_NTIME; k++) {
		fprintf(f, "%-17s ", time_fields[k].label);
		put_time(f, t, k);
		fputc('\n', f);
	}
}

static void print_terminal_json(FILE *f, const term_rec *t)
{
	fprintf(f, "{\"id\":%llu", (unsigned long long)t->id);
	for (size_t k = 0; k < R_NTEXT; k++) {
		fprintf(f, ",\"%s\":", rec_fields[k].key);
		if (t->text[k].s != NULL) {
			tkmctl_put_json_str_n(f, t->text[k].s, t->text[k].n);
		} else {
			fputs("null", f);
		}
	}
	for (size_t k = 0; k < T_NTIME; k++) {
		fprintf(f, ",\"%s\":", time_fields[k].key);
		if (t->has_ms[k]) {
			fprintf(f, "%llu", (unsigned long long)t->ms[k]);
		} else {
			fputs("null", f);
		}
	}
	fputc('}', f);
}

/* Untrusted text padded with spaces to width bytes, '-' for null. */
static void put_padded(FILE *f, const tstr *s, size_t width)
{
	size_t n = 1;

	if (s->s != NULL) {
		tkmctl_put_text_n(f, s->s, s->n);
		n = s->n;
	} else {
		fputc('-', f);
	}
	for (; n < width; n++) {
		fputc(' ', f);
	}
}

static void print_list_header(FILE *f)
{
	fprintf(f, "%6s  %-14s  %-14s  %-20s  %-12s  %-12s  %-12s  %s\n", "ID", "STATE",
	        "MANUFACTURER", "SERIAL", "MERCHANT", "SITE", "GROUP", "LAST SEEN");
}

static void print_list_line(FILE *f, const term_rec *t)
{
	fprintf(f, "%6llu  ", (unsigned long long)t->id);
	put_padded(f, &t->text[R_STATE], 14);
	fputs("  ", f);
	put_padded(f, &t->text[R_MANUFACTURER], 14);
	fputs("  ", f);
	put_padded(f, &t->text[R_SERIAL], 20);
	fputs("  ", f);
	put_padded(f, &t->text[R_MERCHANT], 12);
	fputs("  ", f);
	put_padded(f, &t->text[R_SITE], 12);
	fputs("  ", f);
	put_padded(f, &t->text[R_GROUP], 12);
	fputs("  ", f);
	put_time(f, t, T_LAST_SEEN);
	fputc('\n', f);
}

/*
 * One CSV cell: quoted (quotes doubled) when it holds a comma, a quote, a tab
 * or a line end or starts or ends with a space. Tabs and newlines stay as
 * they are inside the quotes; other control characters and invalid UTF-8
 * become '?' (tkmctl_put_text_n).
 */
static void put_csv_cell(FILE *f, const char *s, size_t n)
{
	bool quote = n > 0 && (s[0] == ' ' || s[n - 1] == ' ');

	for (size_t i = 0; i < n && !quote; i++) {
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t';
	}
	if (!quote) {
		tkmctl_put_text_n(f, s, n);
		return;
	}
	fputc('"', f);
	while (n > 0) {
		size_t k = 0;

		while (k < n && s[k] != '"' && s[k] != '\n' && s[k] != '\t') {
			k++;
		}
		tkmctl_put_text_n(f, s, k);
		if (k < n) {
			if (s[k] == '"') {
				fputs("\"\"", f);
			} else {
				fputc(s[k], f);
			}
			k++;
		}
		s += k;
		n -= k;
	}
	fputc('"', f);
}

static void print_csv_header(FILE *f)
{
	fputs("id", f);
	for (size_t k = 0; k < R_NTEXT; k++) {
		fprintf(f, ",%s", rec_fields[k].key);
	}
	for (size_t k = 0; k < T_NTIME; k++) {
		fprintf(f, ",%s", time_fields[k].key);
	}
	fputs("\r\n", f);
}

static void print_csv_row(FILE *f, const term_rec *t)
{
	fprintf(f, "%llu", (unsigned long long)t->id);
	for (size_t k = 0; k < R_NTEXT; k++) {
		fputc(',', f);
		if (t->text[k].s != NULL) {
			put_csv_cell(f, t->text[k].s, t->text[k].n);
		}
	}
	for (size_t k = 0; k < T_NTIME; k++) {
		fputc(',', f);
		if (t->has_ms[k]) {
			fprintf(f, "%llu", (unsigned long long)t->ms[k]);
		}
	}
	fputs("\r\n", f);
}

/* ---- add, show ---- */

static int print_one(const tkmctl_opts *o, tkmctl_reply *r)
{
	term_rec t;

	if (!parse_terminal(r, r->root, &t)) {
		return tkmctl_fail(o, TKM_E_PROTOCOL, r->why);
	}
	if (o->json) {
		print_terminal_json(stdout, &t);
		fputc('\n', stdout);
	} else {
		print_terminal_text(stdout, &t);
	}
	return TKMCTL_EXIT_OK;
}

static int cmd_add(const tkmctl_opts *o, int argc, char **argv)
{
	static const flag_spec specs[] = {
	    {"--manufacturer", "manufacturer", TCOL(MANUFACTURER), false},
	    {"--serial", "serial", TCOL(SERIAL), false},
	    {"--model", "model", TCOL(MODEL), false},
	    {"--merchant", "merchant", TCOL(MERCHANT), false},
	    {"--site", "site", TCOL(SITE), false},
	    {"--group", "group", TCOL(GROUP), false},
	    {"--purchase-date", "purchase_date", TCOL(PURCHASE_DATE), false},
	    {"--notes", "notes", TCOL(NOTES), false},
	};
	enum { NSPECS = sizeof(specs) / sizeof(specs[0]) };
	const char *vals[NSPECS];
	const char *pos[1];
	size_t npos = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = parse_args("add", argc, argv, specs, NSPECS, vals, pos, 0, &npos)) !=
	        TKMCTL_EXIT_OK ||
	    (rc = check_flags(specs, NSPECS, vals)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = flag_params(o, 0, specs, NSPECS, vals, &w)) == TKMCTL_EXIT_OK &&
	    (rc = tkmctl_call_cmd(o, 0, "terminal.add", w, &r, &done)) == TKMCTL_EXIT_OK && !done) {
		rc = print_one(o, &r);
	}
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

static int cmd_show(const tkmctl_opts *o, int argc, char **argv)
{
	const char *pos[1];
	size_t npos = 0;
	uint64_t id = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = parse_args("show", argc, argv, NULL, 0, NULL, pos, 1, &npos)) != TKMCTL_EXIT_OK ||
	    (rc = id_of("show", pos, npos, &id)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = flag_params(o, id, NULL, 0, NULL, &w)) == TKMCTL_EXIT_OK &&
	    (rc = tkmctl_call_cmd(o, 0, "terminal.show", w, &r, &done)) == TKMCTL_EXIT_OK &&
	    !done) {
		uint64_t got = 0;

		if (tkm_cbor_get_uint(tkm_cbor_map_get(r.root, "id"), &got) && got != id) {
			rc = tkmctl_fail(o, TKM_E_PROTOCOL,
			                 "terminal.show: invalid reply: another terminal's record");
		} else {
			rc = print_one(o, &r);
		}
	}
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

static int cmd_enroll_code(const tkmctl_opts *o, int argc, char **argv)
{
	const char *pos[1], *code = NULL;
	size_t npos = 0, code_n = 0;
	uint64_t id = 0, got = 0, expires = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	char when[32];
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = parse_args("enroll-code", argc, argv, NULL, 0, NULL, pos, 1, &npos)) !=
	        TKMCTL_EXIT_OK ||
	    (rc = id_of("enroll-code", pos, npos, &id)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = flag_params(o, id, NULL, 0, NULL, &w)) == TKMCTL_EXIT_OK &&
	    (rc = tkmctl_call_cmd(o, 0, "terminal.enroll_code", w, &r, &done)) == TKMCTL_EXIT_OK &&
	    !done) {
		if (!tkmctl_get_uint(&r, r.root, "terminal", &got) ||
		    !tkmctl_get_text(&r, r.root, "code", false, 64, &code, &code_n) ||
		    !tkmctl_get_uint(&r, r.root, "expires_ms", &expires) || got != id) {
			rc = tkmctl_fail(
			    o, TKM_E_PROTOCOL,
			    "terminal.enroll_code: invalid reply (another terminal, or a "
			    "field missing)");
		} else if (o->json) {
			printf("{\"terminal\":%llu,\"code\":", (unsigned long long)id);
			tkmctl_put_json_str_n(stdout, code, code_n);
			printf(",\"expires_ms\":%llu}\n", (unsigned long long)expires);
		} else {
			tkmctl_format_utc((int64_t)(expires / 1000u), when, sizeof(when));
			printf("terminal:        %llu\nenrollment code: ", (unsigned long long)id);
			tkmctl_put_text_n(stdout, code, code_n);
			printf("\nexpires:         %s\n", when);
		}
	}
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

/* ---- list, export: pages of terminal.list ---- */

enum filter_flag {
	F_MERCHANT,
	F_SITE,
	F_GROUP,
	F_STATE,
	F_SEEN_SINCE,
	F_NOT_SEEN_SINCE,
	F_NFILTERS
};

/* The filters of list and export, checked. */
typedef struct filter {
	const flag_spec *specs; /* the first F_NFILTERS of the command's specs */
	const char **vals;
	uint64_t seen_since_ms, not_seen_since_ms; /* 0: not given */
} filter;

static int filter_check(const flag_spec *specs, const char **vals, filter *f)
{
	const char *s;
	int rc;

	f->specs = specs;
	f->vals = vals;
	f->seen_since_ms = f->not_seen_since_ms = 0;
	if ((rc = check_flags(specs, F_NFILTERS, vals)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((s = vals[F_STATE]) != NULL && !state_known(s, strlen(s))) {
		return tkmctl_usage_error(
		    "--state is registered, active, suspended, revoked or decommissioned", s);
	}
	if ((s = vals[F_SEEN_SINCE]) != NULL &&
	    (!tkmctl_parse_time_ms(s, &f->seen_since_ms) || f->seen_since_ms == 0)) {
		return tkmctl_usage_error("--seen-since needs a time such as 2026-11-23T10:00:00Z "
		                          "or a date such as 2026-11-23",
		                          s);
	}
	if ((s = vals[F_NOT_SEEN_SINCE]) != NULL &&
	    (!tkmctl_parse_time_ms(s, &f->not_seen_since_ms) || f->not_seen_since_ms == 0)) {
		return tkmctl_usage_error("--not-seen-since needs a time such as "
		                          "2026-11-23T10:00:00Z or a date such as 2026-11-23",
		                          s);
	}
	return TKMCTL_EXIT_OK;
}

typedef struct page {
	tkmctl_reply r;
	term_rec *recs;
	size_t n;
	bool has_next;
	uint64_t next;
} page;

static void page_free(page *pg)
{
	tkmctl_reply_free(&pg->r);
	free(pg->recs);
	pg->recs = NULL;
	pg->n = 0;
}

/*
 * One terminal.list page after record id after (0: from the start), at most
 * limit: every record checked, ids rising after the cursor, and "next" null
 * or the last id of the page. On failure pg->r.why says why.
 */
static tkm_err list_page(tkm_client *c, const tkmctl_opts *o, const filter *f, uint64_t after,
                         uint64_t limit, page *pg)
{
	const tkm_cbor_val *arr, *nx;
	tkm_cbor_w *w = NULL;
	size_t pairs = 1 + (after > 0) + (f->seen_since_ms > 0) + (f->not_seen_since_ms > 0);
	uint64_t prev = after;
	tkm_err err;

	memset(pg, 0, sizeof(*pg));
	for (size_t k = 0; k < F_NFILTERS; k++) {
		pairs += f->specs[k].key != NULL && f->vals[k] != NULL;
	}
	if ((err = tkm_cbor_w_new(PARAMS_MAX, &w)) != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(w, pairs);
	for (size_t k = 0; k < F_NFILTERS; k++) {
		if (f->specs[k].key != NULL && f->vals[k] != NULL) {
			tkm_cbor_put_cstr(w, f->specs[k].key);
			tkm_cbor_put_cstr(w, f->vals[k]);
		}
	}
	if (f->seen_since_ms > 0) {
		tkm_cbor_put_cstr(w, "seen_since_ms");
		tkm_cbor_put_uint(w, f->seen_since_ms);
	}
	if (f->not_seen_since_ms > 0) {
		tkm_cbor_put_cstr(w, "not_seen_since_ms");
		tkm_cbor_put_uint(w, f->not_seen_since_ms);
	}
	if (after > 0) {
		tkm_cbor_put_cstr(w, "after");
		tkm_cbor_put_uint(w, after);
	}
	tkm_cbor_put_cstr(w, "limit");
	tkm_cbor_put_uint(w, limit);
	err = tkmctl_call(c, o, "terminal.list", w, &pg->r);
	tkm_cbor_w_free(w);
	if (err != TKM_OK) {
		return err;
	}
	if (pg->r.pending) {
		tkmctl_reply_bad(&pg->r, "a pending reply to a listing");
		return TKM_E_PROTOCOL;
	}
	arr = tkm_cbor_map_get(pg->r.root, "terminals");
	nx = tkm_cbor_map_get(pg->r.root, "next");
	if (!tkm_cbor_is(arr, TKM_CBOR_ARRAY) || tkm_cbor_count(arr) > limit) {
		tkmctl_reply_bad(&pg->r,
		                 "'terminals' is missing, not an array, or longer than the limit");
		return TKM_E_PROTOCOL;
	}
	if (!tkm_cbor_is(nx, TKM_CBOR_NULL)) {
		if (!tkmctl_get_uint(&pg->r, pg->r.root, "next", &pg->next)) {
			return TKM_E_PROTOCOL;
		}
		pg->has_next = true;
	}
	if (tkm_cbor_count(arr) > 0 &&
	    (pg->recs = calloc(tkm_cbor_count(arr), sizeof(*pg->recs))) == NULL) {
		return TKM_E_NOMEM;
	}
	for (const tkm_cbor_val *v = tkm_cbor_first(arr); v != NULL; v = tkm_cbor_next(v)) {
		term_rec *t = &pg->recs[pg->n];

		if (!parse_terminal(&pg->r, v, t)) {
			return TKM_E_PROTOCOL;
		}
		if (t->id <= prev) {
			tkmctl_reply_bad(&pg->r, "terminals are not in rising id order after the "
			                         "cursor");
			return TKM_E_PROTOCOL;
		}
		prev = t->id;
		pg->n++;
	}
	if (pg->has_next && (pg->n == 0 || pg->next != prev)) {
		tkmctl_reply_bad(&pg->r, "'next' is not the last id of the page");
		return TKM_E_PROTOCOL;
	}
	return TKM_OK;
}

/* list_page, asking again with half the limit while tkmd says the page is too large. */
static tkm_err list_page_fit(tkm_client *c, const tkmctl_opts *o, const filter *f, uint64_t after,
                             uint64_t *limit, page *pg)
{
	tkm_err err;

	while ((err = list_page(c, o, f, after, *limit, pg)) == TKM_E_RESOURCE_EXHAUSTED &&
	       *limit > 1) {
		page_free(pg);
		*limit /= 2;
	}
	return err;
}

static int cmd_list(const tkmctl_opts *o, int argc, char **argv)
{
	static const flag_spec specs[] = {
	    /* The filters first, in the order of enum filter_flag. */
	    {"--merchant", "merchant", TCOL(MERCHANT), false},
	    {"--site", "site", TCOL(SITE), false},
	    {"--group", "group", TCOL(GROUP), false},
	    {"--state", "state", NULL, false},
	    {"--seen-since", NULL, NULL, false},
	    {"--not-seen-since", NULL, NULL, false},
	    {"--after", NULL, NULL, false},
	    {"--limit", NULL, NULL, false},
	    {"--all", NULL, NULL, true},
	};
	enum { NSPECS = sizeof(specs) / sizeof(specs[0]), S_AFTER = F_NFILTERS, S_LIMIT, S_ALL };
	const char *vals[NSPECS];
	const char *pos[1];
	size_t npos = 0;
	uint64_t after = 0, limit = LIST_PAGE_DEFAULT;
	bool all, first = true, more = true;
	tkm_client *c = NULL;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = NULL;
	filter flt;
	page pg;
	tkm_err err;
	int rc;

	memset(&pg, 0, sizeof(pg));
	if ((rc = parse_args("list", argc, argv, specs, NSPECS, vals, pos, 0, &npos)) !=
	        TKMCTL_EXIT_OK ||
	    (rc = filter_check(specs, vals, &flt)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if (vals[S_AFTER] != NULL && !tkmctl_parse_uint(1, vals[S_AFTER], ID_MAX, &after)) {
		return tkmctl_usage_error("--after needs a record id", vals[S_AFTER]);
	}
	if (vals[S_LIMIT] != NULL && !tkmctl_parse_uint(1, vals[S_LIMIT], LIST_PAGE_MAX, &limit)) {
		return tkmctl_usage_error("--limit needs a number from 1 to 1000", vals[S_LIMIT]);
	}
	all = vals[S_ALL] != NULL;
	if (all && vals[S_LIMIT] == NULL) {
		limit = EXPORT_PAGE;
	}
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	/* The listing goes out only once every page has come and passed its checks. */
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	if (o->json) {
		fputs("{\"terminals\":[", f);
	} else {
		print_list_header(f);
	}
	while (more) {
		err = all ? list_page_fit(c, o, &flt, after, &limit, &pg)
		          : list_page(c, o, &flt, after, limit, &pg);
		if (err != TKM_OK) {
			rc = tkmctl_fail(o, err, pg.r.why);
			goto out;
		}
		for (size_t i = 0; i < pg.n; i++) {
			if (o->json) {
				if (!first) {
					fputc(',', f);
				}
				print_terminal_json(f, &pg.recs[i]);
			} else {
				print_list_line(f, &pg.recs[i]);
			}
			first = false;
		}
		more = pg.has_next;
		after = pg.next;
		page_free(&pg);
		if (!all) {
			break;
		}
	}
	if (o->json) {
		fputs("],\"next\":", f);
		if (more) {
			fprintf(f, "%llu", (unsigned long long)after);
		} else {
			fputs("null", f);
		}
		fputs("}\n", f);
	}
	if (fclose(f) != 0) {
		f = NULL;
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	f = NULL;
	fwrite(buf, 1, blen, stdout);
	if (more && !o->json) {
		fprintf(stderr,
		        "tkmctl: more terminals follow: tkmctl terminal list --after %llu (or "
		        "--all)\n",
		        (unsigned long long)after);
	}
out:
	page_free(&pg);
	if (f != NULL) {
		(void)fclose(f);
	}
	free(buf);
	tkm_client_close(c);
	return rc;
}

static int cmd_export(const tkmctl_opts *o, int argc, char **argv)
{
	static const flag_spec specs[] = {
	    /* The filters first, in the order of enum filter_flag. */
	    {"--merchant", "merchant", TCOL(MERCHANT), false},
	    {"--site", "site", TCOL(SITE), false},
	    {"--group", "group", TCOL(GROUP), false},
	    {"--state", "state", NULL, false},
	    {"--seen-since", NULL, NULL, false},
	    {"--not-seen-since", NULL, NULL, false},
	    {"--format", NULL, NULL, false},
	    {"--out", NULL, NULL, false},
	};
	enum { NSPECS = sizeof(specs) / sizeof(specs[0]), S_FORMAT = F_NFILTERS, S_OUT };
	const char *vals[NSPECS];
	const char *pos[1];
	const char *out_path;
	size_t npos = 0;
	uint64_t after = 0, limit = EXPORT_PAGE, count = 0;
	bool csv = !o->json, more = true;
	tkm_client *c = NULL;
	FILE *f = NULL, *dst = stdout;
	filter flt;
	page pg;
	tkm_err err;
	int rc;

	memset(&pg, 0, sizeof(pg));
	if ((rc = parse_args("export", argc, argv, specs, NSPECS, vals, pos, 0, &npos)) !=
	        TKMCTL_EXIT_OK ||
	    (rc = filter_check(specs, vals, &flt)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if (vals[S_FORMAT] != NULL) {
		if (strcmp(vals[S_FORMAT], "csv") != 0 && strcmp(vals[S_FORMAT], "json") != 0) {
			return tkmctl_usage_error("--format is csv or json", vals[S_FORMAT]);
		}
		csv = strcmp(vals[S_FORMAT], "csv") == 0;
	}
	out_path = vals[S_OUT];
	if (out_path != NULL && out_path[0] == '\0') {
		return tkmctl_usage_error("--out needs a file name", NULL);
	}
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if (out_path != NULL) {
		if ((rc = tkmctl_create_out(o, out_path, 0644, &f)) != TKMCTL_EXIT_OK) {
			goto out;
		}
		dst = f;
	}
	if (csv) {
		print_csv_header(dst);
	}
	while (more) {
		if ((err = list_page_fit(c, o, &flt, after, &limit, &pg)) != TKM_OK) {
			rc = tkmctl_fail(o, err, pg.r.why);
			goto out;
		}
		for (size_t i = 0; i < pg.n; i++) {
			if (csv) {
				print_csv_row(dst, &pg.recs[i]);
			} else {
				print_terminal_json(dst, &pg.recs[i]);
				fputc('\n', dst);
			}
		}
		count += pg.n;
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
		fprintf(stderr, "exported %llu terminal%s to ", (unsigned long long)count,
		        count == 1 ? "" : "s");
		tkmctl_put_text(stderr, out_path);
		fputc('\n', stderr);
		if (o->json) {
			fputs("{\"file\":", stdout);
			tkmctl_put_json_str(stdout, out_path);
			printf(",\"format\":\"%s\",\"terminals\":%llu}\n", csv ? "csv" : "json",
			       (unsigned long long)count);
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

/* ---- Lifecycle ---- */

static int move(const tkmctl_opts *o, int argc, char **argv, const char *cmd, const char *method,
                const char *to)
{
	static const flag_spec specs[] = {{"--reason", "reason", &col_reason, false}};
	const char *vals[1];
	const char *pos[1];
	size_t npos = 0;
	uint64_t id = 0, got = 0;
	const char *from = NULL, *state = NULL;
	size_t from_n = 0, state_n = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = parse_args(cmd, argc, argv, specs, 1, vals, pos, 1, &npos)) != TKMCTL_EXIT_OK ||
	    (rc = id_of(cmd, pos, npos, &id)) != TKMCTL_EXIT_OK ||
	    (rc = check_flags(specs, 1, vals)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = flag_params(o, id, specs, 1, vals, &w)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_call_cmd(o, 0, method, w, &r, &done)) != TKMCTL_EXIT_OK || done) {
		goto out;
	}
	if (tkmctl_get_uint(&r, r.root, "id", &got) &&
	    tkmctl_get_text(&r, r.root, "from", false, STATE_MAX, &from, &from_n) &&
	    tkmctl_get_text(&r, r.root, "state", false, STATE_MAX, &state, &state_n)) {
		if (got != id) {
			tkmctl_reply_bad(&r, "'id' is not the terminal asked for");
		} else if (!state_known(from, from_n)) {
			tkmctl_reply_bad(&r, "'from' is not a known state");
		} else if (state_n != strlen(to) || strncmp(state, to, state_n) != 0) {
			tkmctl_reply_bad(&r, "'state' is not the state asked for");
		}
	}
	if (r.bad) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (o->json) {
		printf("{\"id\":%llu,\"from\":", (unsigned long long)id);
		tkmctl_put_json_str_n(stdout, from, from_n);
		printf(",\"state\":\"%s\"}\n", to);
	} else {
		printf("terminal %llu: ", (unsigned long long)id);
		tkmctl_put_text_n(stdout, from, from_n);
		printf(" -> %s\n", to);
	}
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

static int cmd_suspend(const tkmctl_opts *o, int argc, char **argv)
{
	return move(o, argc, argv, "suspend", "terminal.suspend", "suspended");
}

static int cmd_resume(const tkmctl_opts *o, int argc, char **argv)
{
	return move(o, argc, argv, "resume", "terminal.resume", "active");
}

static int cmd_revoke(const tkmctl_opts *o, int argc, char **argv)
{
	return move(o, argc, argv, "revoke", "terminal.revoke", "revoked");
}

static int cmd_decommission(const tkmctl_opts *o, int argc, char **argv)
{
	return move(o, argc, argv, "decommission", "terminal.decommission", "decommissioned");
}

/* ---- Histories ---- */

/*
 * `terminal maintenance add ID ...` and `terminal custody add ID ...`: the
 * word "add", then ID and the flags of specs. An exit status.
 */
static int history_add(const tkmctl_opts *o, int argc, char **argv, const char *cmd,
                       const char *method, const flag_spec *specs, size_t n, const char **vals)
{
	const char *pos[1];
	size_t npos = 0;
	uint64_t id = 0, seq = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	char what[96];
	int rc;

	memset(&r, 0, sizeof(r));
	if (argc == 0 || strcmp(argv[0], "add") != 0) {
		tkm_why_set(what, sizeof(what), "terminal %s: the subcommand is add", cmd);
		return tkmctl_usage_error(what, argc > 0 ? argv[0] : NULL);
	}
	if ((rc = parse_args(cmd, argc - 1, argv + 1, specs, n, vals, pos, 1, &npos)) !=
	        TKMCTL_EXIT_OK ||
	    (rc = id_of(cmd, pos, npos, &id)) != TKMCTL_EXIT_OK ||
	    (rc = check_flags(specs, n, vals)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	/* custody's --action has no column rule: it is one of two words. */
	for (size_t k = 0; k < n; k++) {
		if (strcmp(specs[k].flag, "--action") != 0) {
			continue;
		}
		if (vals[k] == NULL) {
			return tkmctl_usage_error("--action is required", NULL);
		}
		if (strcmp(vals[k], "received") != 0 && strcmp(vals[k], "returned") != 0) {
			return tkmctl_usage_error("--action is received or returned", vals[k]);
		}
	}
	if ((rc = flag_params(o, id, specs, n, vals, &w)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_call_cmd(o, 0, method, w, &r, &done)) != TKMCTL_EXIT_OK || done) {
		goto out;
	}
	if (tkmctl_get_uint(&r, r.root, "seq", &seq) && (seq == 0 || seq > ID_MAX)) {
		tkmctl_reply_bad(&r, "'seq' is out of range");
	}
	if (r.bad) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (o->json) {
		printf("{\"id\":%llu,\"seq\":%llu}\n", (unsigned long long)id,
		       (unsigned long long)seq);
	} else {
		printf("%s entry %llu added to terminal %llu\n", cmd, (unsigned long long)seq,
		       (unsigned long long)id);
	}
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

static int cmd_maintenance(const tkmctl_opts *o, int argc, char **argv)
{
	static const flag_spec specs[] = {
	    {"--at", "at", &col_date, false},
	    {"--kind", "kind", &col_kind, false},
	    {"--technician", "technician", &col_person, false},
	    {"--description", "description", &col_description, false},
	};
	const char *vals[sizeof(specs) / sizeof(specs[0])];

	return history_add(o, argc, argv, "maintenance", "terminal.maintenance_add", specs,
	                   sizeof(specs) / sizeof(specs[0]), vals);
}

static int cmd_custody(const tkmctl_opts *o, int argc, char **argv)
{
	static const flag_spec specs[] = {
	    {"--at", "at", &col_date, false},
	    {"--action", "action", NULL, false},
	    {"--person", "person", &col_person, false},
	    {"--counterparty", "counterparty", &col_name_opt, false},
	};
	const char *vals[sizeof(specs) / sizeof(specs[0])];

	return history_add(o, argc, argv, "custody", "terminal.custody_add", specs,
	                   sizeof(specs) / sizeof(specs[0]), vals);
}

/* ---- import ---- */

/*
 * The columns an import file may name: the registry's, then those only an
 * export file has, which are checked and ignored.
 */
enum { IMPORT_EXTRA = 5, IMPORT_NCOLS = TKM_CSV_T_NCOLUMNS + IMPORT_EXTRA };

static const tkm_csv_column import_extra[IMPORT_EXTRA] = {
    {"id", TKM_CSV_PRINTABLE, 20, false},          {"state", TKM_CSV_IDENT, STATE_MAX, false},
    {"enrolled_ms", TKM_CSV_PRINTABLE, 20, false}, {"last_seen_ms", TKM_CSV_PRINTABLE, 20, false},
    {"created_ms", TKM_CSV_PRINTABLE, 20, false},
};

typedef struct import_state {
	const tkmctl_opts *o;
	const char *path;
	tkm_csv *csv;
	tkm_client *c;
	size_t batch_max;
	/* The batch: encoded row maps back to back, and the file line of each. */
	uint8_t *buf;
	size_t len;
	unsigned long lines[IMPORT_BATCH_MAX];
	size_t n;
	/* Totals. */
	uint64_t rows, batches, inserted, updated, unchanged, refused, bad;
	uint64_t final; /* export rows of revoked or decommissioned records: not imported */
	bool progress;  /* stderr is a terminal */
	bool progress_shown;
} import_state;

static void progress_clear(import_state *s)
{
	if (s->progress_shown) {
		fputs("\r\033[K", stderr);
		s->progress_shown = false;
	}
}

static void progress_show(import_state *s)
{
	uint64_t done = tkm_csv_bytes_read(s->csv), size = tkm_csv_size(s->csv);

	if (!s->progress) {
		return;
	}
	if (size > 0) {
		fprintf(stderr, "\rimport: %llu rows, %llu of %llu bytes (%llu%%)",
		        (unsigned long long)s->rows, (unsigned long long)done,
		        (unsigned long long)size,
		        (unsigned long long)(done >= size ? 100 : done * 100 / size));
	} else {
		fprintf(stderr, "\rimport: %llu rows, %llu bytes", (unsigned long long)s->rows,
		        (unsigned long long)done);
	}
	fflush(stderr);
	s->progress_shown = true;
}

/* "FILE:LINE: " then the untrusted reason, on stderr. */
static void report_line(import_state *s, unsigned long line, const char *prefix, const char *msg,
                        size_t n)
{
	progress_clear(s);
	tkmctl_put_text(stderr, s->path);
	if (line > 0) {
		fprintf(stderr, ":%lu", line);
	}
	fprintf(stderr, ": %s", prefix);
	tkmctl_put_text_n(stderr, msg, n);
	fputc('\n', stderr);
}

static const char *const import_results[] = {"inserted", "updated", "unchanged"};

/*
 * The reply to a batch of n rows, checked whole before anything is counted:
 * one entry per row in order, each a result with an id or an error, and
 * totals that agree with the entries.
 */
static bool check_import_reply(tkmctl_reply *r, size_t n, uint64_t tally[4])
{
	static const char *const totals[] = {"inserted", "updated", "unchanged", "refused"};
	const tkm_cbor_val *rows = tkm_cbor_map_get(r->root, "rows");
	uint64_t counted[4] = {0, 0, 0, 0};
	size_t i = 0;

	for (size_t k = 0; k < 4; k++) {
		if (!tkmctl_get_uint(r, r->root, totals[k], &tally[k])) {
			return false;
		}
	}
	if (!tkm_cbor_is(rows, TKM_CBOR_ARRAY) || tkm_cbor_count(rows) != n) {
		return tkmctl_reply_bad(r, "'rows' is missing, not an array, or not one entry per "
		                           "row sent");
	}
	for (const tkm_cbor_val *v = tkm_cbor_first(rows); v != NULL; v = tkm_cbor_next(v), i++) {
		uint64_t index = 0, id = 0;
		const char *s;
		size_t sn, k;

		if (!tkm_cbor_is(v, TKM_CBOR_MAP)) {
			return tkmctl_reply_bad(r, "a row entry is not a map");
		}
		if (!tkmctl_get_uint(r, v, "index", &index)) {
			return false;
		}
		if (index != i) {
			return tkmctl_reply_bad(r, "row entries are not in the order of the rows");
		}
		if (tkm_cbor_map_get(v, "error") != NULL) {
			if (!tkmctl_get_text(r, v, "error", false, ROW_ERROR_MAX, &s, &sn)) {
				return false;
			}
			if (tkm_cbor_count(v) != 2) {
				return tkmctl_reply_bad(r, "a refused row has an id or a result");
			}
			counted[3]++;
			continue;
		}
		if (!tkmctl_get_uint(r, v, "id", &id) ||
		    !tkmctl_get_text(r, v, "result", false, 16, &s, &sn)) {
			return false;
		}
		if (id == 0 || id > ID_MAX) {
			return tkmctl_reply_bad(r, "a row's 'id' is out of range");
		}
		for (k = 0; k < 3; k++) {
			if (strlen(import_results[k]) == sn &&
			    strncmp(import_results[k], s, sn) == 0) {
				break;
			}
		}
		if (k == 3) {
			return tkmctl_reply_bad(r, "a row's 'result' is not inserted, updated or "
			                           "unchanged");
		}
		counted[k]++;
	}
	for (size_t k = 0; k < 4; k++) {
		if (counted[k] != tally[k]) {
			return tkmctl_reply_bad(r, "the totals do not agree with the rows");
		}
	}
	return true;
}

/*
 * Send the batch and count its outcome; last: no rows follow it. Returns an
 * exit status (reported).
 */
static int import_flush(import_state *s, bool last)
{
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	uint64_t tally[4];
	tkm_err err;
	int rc = TKMCTL_EXIT_OK;

	memset(&r, 0, sizeof(r));
	if (s->n == 0) {
		return TKMCTL_EXIT_OK;
	}
	if (s->c == NULL && (rc = tkmctl_connect(s->o, 0, &s->c)) != TKMCTL_EXIT_OK) {
		progress_clear(s);
		return rc;
	}
	if ((rc = tkmctl_params_new(s->o, s->len + 64, &w)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "rows");
	tkm_cbor_put_array(w, s->n);
	tkm_cbor_put_raw(w, s->buf, s->len);
	err = tkmctl_call(s->c, s->o, "terminal.import", w, &r);
	progress_clear(s);
	if (err != TKM_OK) {
		rc = tkmctl_fail(s->o, err, r.why);
		goto out;
	}
	if (r.pending) {
		/*
		 * The policy put imports under dual control: this batch waits for a
		 * second operator, and the rest of the file is not sent.
		 */
		rc = tkmctl_pending(s->o, &r);
		if (!last) {
			rc = tkmctl_fail(s->o, TKM_E_FAILED_PRECONDITION,
			                 "terminal.import is under dual control: only the first "
			                 "batch was sent; import the rest after its approval, or "
			                 "with a larger --batch");
		}
		s->n = 0;
		s->len = 0;
		goto out;
	}
	if (!check_import_reply(&r, s->n, tally)) {
		rc = tkmctl_fail(s->o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	{
		const tkm_cbor_val *v = tkm_cbor_first(tkm_cbor_map_get(r.root, "rows"));

		for (size_t i = 0; i < s->n; i++, v = tkm_cbor_next(v)) {
			const char *msg;
			size_t mn;

			if (tkm_cbor_get_text(tkm_cbor_map_get(v, "error"), &msg, &mn)) {
				report_line(s, s->lines[i], "refused by tkmd: ", msg, mn);
			}
		}
	}
	s->batches++;
	s->rows += s->n;
	s->inserted += tally[0];
	s->updated += tally[1];
	s->unchanged += tally[2];
	s->refused += tally[3];
	s->n = 0;
	s->len = 0;
	progress_show(s);
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

/* Encode one good row and add it to the batch, sending the batch first when it is full. */
static int import_add(import_state *s, const tkm_csv_row *row)
{
	tkm_cbor_w *w = NULL;
	const uint8_t *p;
	size_t n = 0, pairs = 0;
	tkm_err err;
	int rc = TKMCTL_EXIT_OK;

	for (size_t k = 0; k < TKM_CSV_T_NCOLUMNS; k++) {
		pairs += row->values[k] != NULL;
	}
	if ((rc = tkmctl_params_new(s->o, IMPORT_ROW_MAX, &w)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	tkm_cbor_put_map(w, pairs);
	for (size_t k = 0; k < TKM_CSV_T_NCOLUMNS; k++) {
		if (row->values[k] != NULL) {
			tkm_cbor_put_cstr(w, tkm_csv_terminal_columns[k].name);
			tkm_cbor_put_cstr(w, row->values[k]);
		}
	}
	if ((err = tkm_cbor_w_finish(w, &p, &n)) != TKM_OK) {
		rc = tkmctl_fail(s->o, err, "cannot encode a row");
		goto out;
	}
	if (s->n >= s->batch_max || s->len + n > IMPORT_BATCH_BYTES) {
		if ((rc = import_flush(s, false)) != TKMCTL_EXIT_OK) {
			goto out;
		}
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->lines[s->n++] = row->line;
out:
	tkm_cbor_w_free(w);
	return rc;
}

static bool row_is_final(const tkm_csv_row *row)
{
	const char *state =
	    row->nvalues > TKM_CSV_T_NCOLUMNS + 1 ? row->values[TKM_CSV_T_NCOLUMNS + 1] : NULL;

	return state != NULL &&
	       (strcmp(state, "revoked") == 0 || strcmp(state, "decommissioned") == 0);
}

static void import_summary(const import_state *s, FILE *f)
{
	fprintf(f, "inserted %llu, updated %llu, unchanged %llu, refused %llu (bad rows %llu)",
	        (unsigned long long)s->inserted, (unsigned long long)s->updated,
	        (unsigned long long)s->unchanged, (unsigned long long)s->refused,
	        (unsigned long long)s->bad);
	if (s->final > 0) {
		fprintf(f, "; skipped %llu revoked or decommissioned",
		        (unsigned long long)s->final);
	}
	fputc('\n', f);
}

static int cmd_import(const tkmctl_opts *o, int argc, char **argv)
{
	static const flag_spec specs[] = {{"--batch", NULL, NULL, false}};
	const char *vals[1];
	const char *pos[1];
	size_t npos = 0;
	uint64_t batch = IMPORT_BATCH_MAX;
	tkm_csv_column cols[IMPORT_NCOLS];
	import_state s;
	tkm_csv_row row;
	bool eof = false;
	char msg[300];
	tkm_err err;
	int rc;

	memset(&s, 0, sizeof(s));
	if ((rc = parse_args("import", argc, argv, specs, 1, vals, pos, 1, &npos)) !=
	    TKMCTL_EXIT_OK) {
		return rc;
	}
	if (npos != 1 || pos[0][0] == '\0') {
		return tkmctl_usage_error("terminal import needs a CSV file", NULL);
	}
	if (vals[0] != NULL && !tkmctl_parse_uint(1, vals[0], IMPORT_BATCH_MAX, &batch)) {
		return tkmctl_usage_error("--batch needs a number of rows from 1 to 1000", vals[0]);
	}
	s.o = o;
	s.path = pos[0];
	s.batch_max = (size_t)batch;
	s.progress = isatty(STDERR_FILENO) == 1;
	memcpy(cols, tkm_csv_terminal_columns, sizeof(tkm_csv_terminal_columns));
	memcpy(cols + TKM_CSV_T_NCOLUMNS, import_extra, sizeof(import_extra));
	if ((s.buf = malloc(IMPORT_BATCH_BYTES)) == NULL) {
		return tkmctl_fail(o, TKM_E_NOMEM, NULL);
	}
	if ((err = tkm_csv_open_file(&s.csv, s.path)) != TKM_OK) {
		tkm_why_set(msg, sizeof(msg), "cannot read %s: %s", s.path, tkm_strerror(err));
		rc = tkmctl_fail(o, err, msg);
		goto out;
	}
	if ((err = tkm_csv_read_header(s.csv, cols, IMPORT_NCOLS)) != TKM_OK) {
		report_line(&s, tkm_csv_error_line(s.csv), "", tkm_csv_error(s.csv),
		            strlen(tkm_csv_error(s.csv)));
		rc =
		    tkmctl_fail(o, err, "the header row names no usable columns; nothing was sent");
		goto out;
	}
	for (;;) {
		if ((err = tkm_csv_next(s.csv, &row, &eof)) != TKM_OK) {
			report_line(&s, tkm_csv_error_line(s.csv), "", tkm_csv_error(s.csv),
			            strlen(tkm_csv_error(s.csv)));
			rc = tkmctl_fail(o, err,
			                 "the file cannot be read further; rows not yet sent were "
			                 "not imported");
			goto summary;
		}
		if (eof) {
			break;
		}
		if (row.error != NULL) {
			report_line(&s, row.line, "", row.error, strlen(row.error));
			s.bad++;
			continue;
		}
		/*
		 * An export's revoked and decommissioned records are history: the
		 * hardware would come back as a new registered record.
		 */
		if (row_is_final(&row)) {
			s.final++;
			continue;
		}
		if ((rc = import_add(&s, &row)) != TKMCTL_EXIT_OK) {
			goto summary;
		}
	}
	if ((rc = import_flush(&s, true)) != TKMCTL_EXIT_OK) {
		goto summary;
	}
	if (o->json) {
		fputs("{\"file\":", stdout);
		tkmctl_put_json_str(stdout, s.path);
		printf(",\"rows\":%llu,\"batches\":%llu,\"inserted\":%llu,\"updated\":%llu,"
		       "\"unchanged\":%llu,\"refused\":%llu,\"bad_rows\":%llu}\n",
		       (unsigned long long)s.rows, (unsigned long long)s.batches,
		       (unsigned long long)s.inserted, (unsigned long long)s.updated,
		       (unsigned long long)s.unchanged, (unsigned long long)s.refused,
		       (unsigned long long)s.bad);
	} else {
		import_summary(&s, stdout);
	}
	rc = s.refused == 0 && s.bad == 0 ? TKMCTL_EXIT_OK : TKMCTL_EXIT_SERVER;
	goto out;
summary:
	progress_clear(&s);
	fputs("tkmctl: import stopped; so far: ", stderr);
	import_summary(&s, stderr);
out:
	progress_clear(&s);
	tkm_client_close(s.c);
	tkm_csv_free(s.csv);
	free(s.buf);
	return rc;
}
