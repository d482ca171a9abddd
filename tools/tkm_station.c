/*
 * tkm_station.c - tkm-station, the tool of a provisioning station: makes the
 * station's Ed25519 key, asks tkmd for terminal enrollment codes and lists
 * the terminals of a site the station serves. Every call is signed with the
 * station key (tkm_client_use_device_key) as the device principal named by
 * --name, which a security officer registered with device.register.
 *
 * The enrollment code that enroll-code prints is the only secret this tool
 * ever shows; the station key never leaves its file.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tkm/client.h"
#include "tkm_cbor.h"
#include "tkm_devsig.h"
#include "tkm_devtool.h"
#include "tkm_why.h"

#define FIELD_MAX 64  /* bytes of a manufacturer, serial, site or state */
#define CODE_MAX  128 /* bytes of an enrollment code as the server writes it */
#define PAGE_SIZE 500
#define MSG_MAX   512

/* The options every command that calls tkmd takes. */
typedef struct station_args {
	tkm_devtool_conn cn;
	const char *name;
	const char *key;
	const char *timeout;
} station_args;

#define STATION_USAGE                                                                              \
	"--url URL --name STATION --key FILE [--ca-file FILE] [--server-name NAME]\n"              \
	"       [--timeout MS] [--json]"

#define STATION_HELP                                                                               \
	"  --url URL           server: ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT\n"       \
	"  --name STATION      the station's device name, as registered with device.register\n"    \
	"  --key FILE          the station's key file (tkm-station keygen; mode 0600)\n"           \
	"  --ca-file FILE      tls+tcp:// only: PEM file of the CAs to trust (required)\n"         \
	"  --server-name NAME  tls+tcp:// only: name the server certificate must carry\n"          \
	"  --timeout MS        per-call timeout in milliseconds (default 10000)\n"

/* Check the common options, connect and sign with the station key. Returns an exit status. */
static int station_connect(station_args *a, tkm_client **c)
{
	tkm_status st;
	tkm_err err;
	int rc;

	*c = NULL;
	memset(&st, 0, sizeof(st));
	if ((rc = tkm_devtool_need(a->cn.url, "--url")) != 0 ||
	    (rc = tkm_devtool_need(a->name, "--name")) != 0 ||
	    (rc = tkm_devtool_need(a->key, "--key")) != 0 ||
	    (rc = tkm_devtool_parse_timeout(a->timeout, &a->cn.timeout_ms)) != 0) {
		return rc;
	}
	if (!tkm_devsig_principal_valid(a->name, strlen(a->name))) {
		return tkm_devtool_usage("--name is 1 to 128 bytes of text without control "
		                         "characters",
		                         NULL);
	}
	if ((rc = tkm_devtool_connect(&a->cn, c)) != TKM_DEVTOOL_EXIT_OK) {
		return rc;
	}
	if ((err = tkm_client_use_device_key(*c, a->name, a->key, &st)) != TKM_OK) {
		tkm_client_close(*c);
		*c = NULL;
		return tkm_devtool_fail(a->cn.json, err, st.message);
	}
	return TKM_DEVTOOL_EXIT_OK;
}

/* ---- keygen ---- */

static int cmd_keygen(const tkm_devtool_cmd *cmd, int argc, char **argv)
{
	const char *key = NULL;
	uint8_t pk[TKM_DEVICE_PK_LEN];
	bool json = false, help = false;
	tkm_status st;
	tkm_err err;
	int rc;
	const tkm_devtool_opt opts[] = {
	    {"--key", &key, NULL, NULL, 0, NULL},
	    {"--json", NULL, NULL, NULL, 0, &json},
	};

	rc = tkm_devtool_parse(cmd, opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &help);
	if (rc != TKM_DEVTOOL_EXIT_OK || help || (rc = tkm_devtool_need(key, "--key")) != 0) {
		return rc;
	}
	memset(&st, 0, sizeof(st));
	if ((err = tkm_device_keygen(key, pk, &st)) != TKM_OK) {
		char msg[MSG_MAX];

		tkm_why_set(msg, sizeof(msg), "%s%s", st.message,
		            err == TKM_E_ALREADY_EXISTS ? " (tkm-station never replaces a key)"
		                                        : "");
		return tkm_devtool_fail(json, err, msg);
	}
	if (json) {
		fputs("{\"key_file\":", stdout);
		tkm_devtool_put_json_str(stdout, key);
		fputs(",\"public_key\":\"", stdout);
		tkm_devtool_put_hex(stdout, pk, sizeof(pk));
		fputs("\"}\n", stdout);
	} else {
		tkm_devtool_put_hex(stdout, pk, sizeof(pk));
		fputc('\n', stdout);
		fputs("tkm-station: the public key above goes to device.register with kind "
		      "\"station\"\n",
		      stderr);
	}
	return TKM_DEVTOOL_EXIT_OK;
}

/* ---- enroll-code ---- */

static int cmd_enroll_code(const tkm_devtool_cmd *cmd, int argc, char **argv)
{
	station_args a;
	const char *manufacturer = NULL, *serial = NULL;
	const char *code;
	size_t code_len;
	char when[64];
	tkm_devtool_reply r;
	tkm_client *c = NULL;
	tkm_cbor_w *params = NULL;
	uint64_t id = 0, expires_ms = 0;
	bool help = false;
	tkm_err err;
	int rc;
	const tkm_devtool_opt opts[] = {
	    {"--url", &a.cn.url, NULL, NULL, 0, NULL},
	    {"--name", &a.name, NULL, NULL, 0, NULL},
	    {"--key", &a.key, NULL, NULL, 0, NULL},
	    {"--ca-file", &a.cn.ca_file, NULL, NULL, 0, NULL},
	    {"--server-name", &a.cn.server_name, NULL, NULL, 0, NULL},
	    {"--timeout", &a.timeout, NULL, NULL, 0, NULL},
	    {"--json", NULL, NULL, NULL, 0, &a.cn.json},
	    {"--manufacturer", &manufacturer, NULL, NULL, 0, NULL},
	    {"--serial", &serial, NULL, NULL, 0, NULL},
	};

	memset(&a, 0, sizeof(a));
	memset(&r, 0, sizeof(r));
	rc = tkm_devtool_parse(cmd, opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &help);
	if (rc != TKM_DEVTOOL_EXIT_OK || help ||
	    (rc = tkm_devtool_need(manufacturer, "--manufacturer")) != 0 ||
	    (rc = tkm_devtool_need(serial, "--serial")) != 0) {
		return rc;
	}
	if (!tkm_devtool_text_ok(serial, strlen(serial), FIELD_MAX) ||
	    !tkm_devtool_text_ok(manufacturer, strlen(manufacturer), FIELD_MAX)) {
		return tkm_devtool_usage("--serial and --manufacturer are 1 to 64 bytes of text "
		                         "without control characters",
		                         NULL);
	}
	if ((rc = station_connect(&a, &c)) != TKM_DEVTOOL_EXIT_OK) {
		goto out;
	}
	if ((err = tkm_cbor_w_new(1024, &params)) != TKM_OK) {
		rc = tkm_devtool_fail(a.cn.json, err, NULL);
		goto out;
	}
	tkm_cbor_put_map(params, 2);
	tkm_cbor_put_cstr(params, "serial");
	tkm_cbor_put_cstr(params, serial);
	tkm_cbor_put_cstr(params, "manufacturer");
	tkm_cbor_put_cstr(params, manufacturer);
	if ((err = tkm_devtool_call(c, &a.cn, "terminal.enroll_code", params, &r)) != TKM_OK) {
		rc = tkm_devtool_fail(a.cn.json, err, r.why);
		goto out;
	}
	if (!tkm_devtool_get_uint(&r, r.root, "terminal", &id) ||
	    !tkm_devtool_get_text(&r, r.root, "code", CODE_MAX, &code, &code_len) ||
	    !tkm_devtool_get_uint(&r, r.root, "expires_ms", &expires_ms) ||
	    !tkm_devtool_text_ok(code, code_len, CODE_MAX)) {
		(void)tkm_devtool_reply_bad(&r, "'code' holds control characters");
		rc = tkm_devtool_fail(a.cn.json, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	tkm_devtool_format_ms(expires_ms, when, sizeof(when));
	if (a.cn.json) {
		printf("{\"terminal\":%llu,\"code\":", (unsigned long long)id);
		tkm_devtool_put_json_str_n(stdout, code, code_len);
		printf(",\"expires_ms\":%llu,\"expires\":", (unsigned long long)expires_ms);
		tkm_devtool_put_json_str(stdout, when);
		fputs("}\n", stdout);
	} else {
		printf("terminal:        %llu\nenrollment code: ", (unsigned long long)id);
		tkm_devtool_put_text_n(stdout, code, code_len);
		printf("\nexpires:         %s\n", when);
	}
	rc = TKM_DEVTOOL_EXIT_OK;
out:
	tkm_devtool_reply_free(&r);
	tkm_client_close(c);
	tkm_cbor_w_free(params);
	return rc;
}

/* ---- terminals ---- */

static bool state_ok(const char *s)
{
	static const char *const states[] = {"registered", "active", "suspended", "revoked",
	                                     "decommissioned"};

	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		if (strcmp(s, states[i]) == 0) {
			return true;
		}
	}
	return false;
}

/* A text field, or null (absent means invalid). */
static bool opt_text(tkm_devtool_reply *r, const tkm_cbor_val *t, const char *key, const char **s,
                     size_t *n)
{
	const tkm_cbor_val *v = tkm_cbor_map_get(t, key);

	if (tkm_cbor_is(v, TKM_CBOR_NULL)) {
		*s = "-";
		*n = 1;
		return true;
	}
	return tkm_devtool_get_text(r, t, key, 1024, s, n);
}

/* Check one terminal of a page and print it as a table row or a JSON line. */
static bool terminal_row(tkm_devtool_reply *r, const tkm_cbor_val *t, bool json, uint64_t *id)
{
	const char *state, *man, *serial, *model;
	size_t state_n, man_n, serial_n, model_n;
	const tkm_cbor_val *seen;
	uint64_t seen_ms = 0;
	char when[64] = "-";
	char num[24];

	if (!tkm_cbor_is(t, TKM_CBOR_MAP)) {
		return tkm_devtool_reply_bad(r, "a terminal is not a map");
	}
	if (!tkm_devtool_get_uint(r, t, "id", id) ||
	    !tkm_devtool_get_text(r, t, "state", FIELD_MAX, &state, &state_n) ||
	    !tkm_devtool_get_text(r, t, "manufacturer", 1024, &man, &man_n) ||
	    !tkm_devtool_get_text(r, t, "serial", 1024, &serial, &serial_n) ||
	    !opt_text(r, t, "model", &model, &model_n)) {
		return false;
	}
	seen = tkm_cbor_map_get(t, "last_seen_ms");
	if (!tkm_cbor_is(seen, TKM_CBOR_NULL)) {
		if (!tkm_devtool_get_uint(r, t, "last_seen_ms", &seen_ms)) {
			return false;
		}
		tkm_devtool_format_ms(seen_ms, when, sizeof(when));
	}
	if (json) {
		tkm_devtool_put_json_cbor(stdout, t);
		fputc('\n', stdout);
		return true;
	}
	tkm_why_set(num, sizeof(num), "%llu", (unsigned long long)*id);
	tkm_devtool_put_cell(stdout, num, strlen(num), 8);
	tkm_devtool_put_cell(stdout, state, state_n, 14);
	tkm_devtool_put_cell(stdout, man, man_n, 16);
	tkm_devtool_put_cell(stdout, serial, serial_n, 20);
	tkm_devtool_put_cell(stdout, model, model_n, 16);
	fputs(when, stdout);
	fputc('\n', stdout);
	return true;
}

/*
 * One page of terminal.list after *after; moves *after to the "next" cursor,
 * or sets *last. Returns an exit status.
 */
static int terminals_page(tkm_client *c, const station_args *a, const char *site, const char *state,
                          uint64_t *after, bool *last, size_t *count)
{
	const tkm_cbor_val *list, *next;
	tkm_devtool_reply r;
	tkm_cbor_w *params = NULL;
	uint64_t id = 0, next_id = 0;
	size_t n = 0;
	tkm_err err;
	int rc = TKM_DEVTOOL_EXIT_OK;

	memset(&r, 0, sizeof(r));
	if ((err = tkm_cbor_w_new(1024, &params)) != TKM_OK) {
		rc = tkm_devtool_fail(a->cn.json, err, NULL);
		goto out;
	}
	/* Deterministic order: site, after, limit, state. */
	tkm_cbor_put_map(params, 2 + (*after != 0) + (state != NULL));
	tkm_cbor_put_cstr(params, "site");
	tkm_cbor_put_cstr(params, site);
	if (*after != 0) {
		tkm_cbor_put_cstr(params, "after");
		tkm_cbor_put_uint(params, *after);
	}
	tkm_cbor_put_cstr(params, "limit");
	tkm_cbor_put_uint(params, PAGE_SIZE);
	if (state != NULL) {
		tkm_cbor_put_cstr(params, "state");
		tkm_cbor_put_cstr(params, state);
	}
	if ((err = tkm_devtool_call(c, &a->cn, "terminal.list", params, &r)) != TKM_OK) {
		rc = tkm_devtool_fail(a->cn.json, err, r.why);
		goto out;
	}
	list = tkm_cbor_map_get(r.root, "terminals");
	next = tkm_cbor_map_get(r.root, "next");
	if (!tkm_cbor_is(list, TKM_CBOR_ARRAY) || tkm_cbor_count(list) > PAGE_SIZE) {
		(void)tkm_devtool_reply_bad(&r, "'terminals' is missing, not an array or too long");
	} else if (!tkm_cbor_is(next, TKM_CBOR_NULL) &&
	           !tkm_devtool_get_uint(&r, r.root, "next", &next_id)) {
		(void)tkm_devtool_reply_bad(&r, "'next' is not a record id or null");
	}
	if (!r.bad && *count == 0 && !a->cn.json && tkm_cbor_count(list) > 0) {
		printf("%-8s  %-14s  %-16s  %-20s  %-16s  %s\n", "ID", "STATE", "MANUFACTURER",
		       "SERIAL", "MODEL", "LAST SEEN");
	}
	for (const tkm_cbor_val *t = tkm_cbor_first(list); !r.bad && t != NULL;
	     t = tkm_cbor_next(t)) {
		if (terminal_row(&r, t, a->cn.json, &id) && id <= *after) {
			(void)tkm_devtool_reply_bad(&r,
			                            "the terminals are not in increasing order");
		}
		*after = id;
		n++;
	}
	if (!r.bad && next_id != 0 && (n == 0 || next_id != id)) {
		(void)tkm_devtool_reply_bad(&r, "'next' is not the last terminal of the page");
	}
	if (r.bad) {
		rc = tkm_devtool_fail(a->cn.json, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	*count += n;
	*last = next_id == 0;
out:
	tkm_devtool_reply_free(&r);
	tkm_cbor_w_free(params);
	return rc;
}

static int cmd_terminals(const tkm_devtool_cmd *cmd, int argc, char **argv)
{
	station_args a;
	const char *site = NULL, *state = NULL;
	tkm_client *c = NULL;
	uint64_t after = 0;
	size_t count = 0;
	bool help = false, last = false;
	int rc;
	const tkm_devtool_opt opts[] = {
	    {"--url", &a.cn.url, NULL, NULL, 0, NULL},
	    {"--name", &a.name, NULL, NULL, 0, NULL},
	    {"--key", &a.key, NULL, NULL, 0, NULL},
	    {"--ca-file", &a.cn.ca_file, NULL, NULL, 0, NULL},
	    {"--server-name", &a.cn.server_name, NULL, NULL, 0, NULL},
	    {"--timeout", &a.timeout, NULL, NULL, 0, NULL},
	    {"--json", NULL, NULL, NULL, 0, &a.cn.json},
	    {"--site", &site, NULL, NULL, 0, NULL},
	    {"--state", &state, NULL, NULL, 0, NULL},
	};

	memset(&a, 0, sizeof(a));
	rc = tkm_devtool_parse(cmd, opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &help);
	if (rc != TKM_DEVTOOL_EXIT_OK || help || (rc = tkm_devtool_need(site, "--site")) != 0) {
		return rc;
	}
	if (!tkm_devtool_text_ok(site, strlen(site), FIELD_MAX)) {
		return tkm_devtool_usage("--site is 1 to 64 bytes of text without control "
		                         "characters",
		                         NULL);
	}
	if (state != NULL && !state_ok(state)) {
		return tkm_devtool_usage("--state is registered, active, suspended, revoked or "
		                         "decommissioned",
		                         state);
	}
	if ((rc = station_connect(&a, &c)) != TKM_DEVTOOL_EXIT_OK) {
		goto out;
	}
	while (!last) {
		rc = terminals_page(c, &a, site, state, &after, &last, &count);
		if (rc != TKM_DEVTOOL_EXIT_OK) {
			goto out;
		}
	}
	if (count == 0 && !a.cn.json) {
		fputs("no terminals\n", stdout);
	}
out:
	tkm_client_close(c);
	return rc;
}

static const tkm_devtool_cmd cmds[] = {
    {"keygen", "make the station's key pair and print its public key", "--key FILE [--json]",
     "Make a new Ed25519 key pair for this station. The secret key goes to FILE, a\n"
     "new file of mode 0600 (an existing FILE is never replaced); the public key is\n"
     "printed as 64 hex digits, for the security officer's device.register of the\n"
     "station (kind \"station\").\n"
     "\n"
     "With --json:\n"
     "  {\"key_file\":FILE,\"public_key\":HEX}\n",
     cmd_keygen},
    {"enroll-code", "get a one-time enrollment code for a terminal",
     STATION_USAGE "\n       --manufacturer M --serial SN",
     "Call terminal.enroll_code for the registered terminal M/SN, signed with the\n"
     "station key. The code is single use and expires; it is typed on the terminal\n"
     "(tkm-terminal enroll --code CODE). The station must serve the terminal's site.\n"
     "\n" STATION_HELP "\n"
     "Output:\n"
     "  terminal:        ID\n"
     "  enrollment code: CODE\n"
     "  expires:         YYYY-MM-DDTHH:MM:SSZ\n"
     "With --json:\n"
     "  {\"terminal\":ID,\"code\":CODE,\"expires_ms\":T,\"expires\":TIME}\n",
     cmd_enroll_code},
    {"terminals", "list the terminals of a site this station serves",
     STATION_USAGE "\n       --site SITE [--state STATE]",
     "Call terminal.list for SITE, page by page, signed with the station key.\n"
     "STATE is registered, active, suspended, revoked or decommissioned.\n"
     "\n" STATION_HELP "\n"
     "Output: a table of ID, STATE, MANUFACTURER, SERIAL, MODEL and LAST SEEN, or\n"
     "\"no terminals\". With --json: one JSON object per terminal and line.\n",
     cmd_terminals},
};

int main(int argc, char **argv)
{
	return tkm_devtool_main("tkm-station",
	                        "The provisioning station's tool: make the station key, get\n"
	                        "enrollment codes for terminals, list the terminals of a site.\n",
	                        cmds, sizeof(cmds) / sizeof(cmds[0]), argc, argv);
}
