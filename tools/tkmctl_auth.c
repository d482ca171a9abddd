/*
 * tkmctl_auth.c - tkmctl's identity commands: login, logout, whoami, passwd,
 * operator, role, policy and approvals, and the session file that login
 * writes and every other command reads (tkmctl.h).
 *
 * Secrets: passwords are read from /dev/tty with echo off, or from the file
 * descriptor of --password-fd, never from the command line or stdin by
 * default; they live in sodium_malloc memory and are wiped after use. The
 * session token is held the same way and is written only to the session
 * file. Neither ever reaches stdout or stderr; the one secret tkmctl prints
 * is the one-time password of a new or reset operator, once. While a
 * password is read, core dumps are off and the process is not dumpable.
 *
 * Replies are decoded with libtkm's bounded CBOR decoder and checked field by
 * field (presence, type, length) before anything of them is printed; unknown
 * result fields are ignored so that a newer tkmd may add some. A method under
 * dual control may answer with a pending approval instead of its result:
 * every command reports that the same way (tkmctl_pending).
 *
 * The session file (mode 0600, in a 0700 directory):
 *   tkm-session <64 lowercase hex: the 32-byte token>\n
 *   url <the URL of the server that issued it>\n
 * The url line is written by tkmctl login and may be left out by hand; a
 * token is sent only to the server of its url line (a relative ipc:// path
 * is made absolute), or to any server when the file has none.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <sodium.h>

#include "tkm/client.h"
#include "tkm_cbor.h"
#include "tkm_policy.h"
#include "tkm_why.h"
#include "tkmctl.h"

#define PW_MAX            256 /* bytes in a password: tkmd's limit (TKM_AUTH_PASSWORD_MAX) */
#define USERNAME_MAX      64
#define PRINCIPAL_MAX     140
#define ROLE_MAX          64
#define SCOPE_MAX         512
#define ROLES_MAX         64
#define OTP_MAX           128
#define STATE_MAX         32
#define METHOD_MAX        64
#define MESSAGE_MAX       1024
#define PARAMS_MAX        8192
#define OPERATOR_PAGE_MAX 500
#define APPROVAL_PAGE_MAX 200
#define ID_MAX            ((uint64_t)INT64_MAX)
/* The session file: "tkm-session " + 64 hex + "\n", then "url " + URL + "\n". */
#define SESSION_MAGIC    "tkm-session "
#define SESSION_LINE_LEN (sizeof(SESSION_MAGIC) - 1 + 2 * TKM_SESSION_TOKEN_LEN + 1)
#define SESSION_FILE_MAX (SESSION_LINE_LEN + 4 + TKMCTL_SESSION_URL_MAX + 1)
/* Replies that carry a whole policy text (policy.show, policy.apply's approval). */
#define POLICY_REPLY_MAX ((size_t)4 << 20)
/* approval.list pages, whose params may hold a policy text each. */
#define APPROVAL_REPLY_MAX ((size_t)16 << 20)

static int cmd_login(const tkmctl_opts *o, int argc, char **argv);
static int cmd_logout(const tkmctl_opts *o, int argc, char **argv);
static int cmd_whoami(const tkmctl_opts *o, int argc, char **argv);
static int cmd_passwd(const tkmctl_opts *o, int argc, char **argv);
static int cmd_operator(const tkmctl_opts *o, int argc, char **argv);
static int cmd_operator_create(const tkmctl_opts *o, int argc, char **argv);
static int cmd_operator_list(const tkmctl_opts *o, int argc, char **argv);
static int cmd_operator_show(const tkmctl_opts *o, int argc, char **argv);
static int cmd_operator_reset(const tkmctl_opts *o, int argc, char **argv);
static int cmd_operator_unlock(const tkmctl_opts *o, int argc, char **argv);
static int cmd_operator_disable(const tkmctl_opts *o, int argc, char **argv);
static int cmd_operator_enable(const tkmctl_opts *o, int argc, char **argv);
static int cmd_role(const tkmctl_opts *o, int argc, char **argv);
static int cmd_role_assign(const tkmctl_opts *o, int argc, char **argv);
static int cmd_role_revoke(const tkmctl_opts *o, int argc, char **argv);
static int cmd_policy(const tkmctl_opts *o, int argc, char **argv);
static int cmd_policy_show(const tkmctl_opts *o, int argc, char **argv);
static int cmd_policy_diff(const tkmctl_opts *o, int argc, char **argv);
static int cmd_policy_apply(const tkmctl_opts *o, int argc, char **argv);
static int cmd_approvals(const tkmctl_opts *o, int argc, char **argv);
static int cmd_approvals_list(const tkmctl_opts *o, int argc, char **argv);
static int cmd_approvals_approve(const tkmctl_opts *o, int argc, char **argv);
static int cmd_approvals_reject(const tkmctl_opts *o, int argc, char **argv);

#define PENDING_HELP                                                                               \
	"\n"                                                                                       \
	"Under dual control tkmd answers with a pending request instead:\n"                        \
	"  pending approval N (expires TIME): a second operator runs tkmctl approvals\n"           \
	"  approve N\n"                                                                            \
	"  {\"status\":\"pending\",\"method\":M,\"approval_id\":N,\"expires_ms\":T,"               \
	"\"expires\":TIME}   (--json)\n"                                                           \
	"and the command exits with status 0.\n"

#define PASSWORD_FD_HELP                                                                           \
	"Passwords are read from the terminal (/dev/tty) with echo off, never from\n"              \
	"the command line. For scripts and tests:\n"                                               \
	"  --password-fd N  read them from file descriptor N instead, one per line\n"              \
	"                   (everything before the newline; at most 256 bytes)\n"

const tkmctl_cmd tkmctl_login_cmd = {
    "login",
    "log in as an operator and save the session",
    "USERNAME [--password-fd N]",
    "Log in to tkmd as operator USERNAME (auth.login) and save the session token\n"
    "in the session file (see --session in 'tkmctl --help'), which later commands\n"
    "send with every call. The session ends after 15 minutes idle or 8 hours in\n"
    "all (tkmd's settings), or with 'tkmctl logout'.\n"
    "\n" PASSWORD_FD_HELP
    "                   (the password; then, when tkmd asks for a change, the\n"
    "                   new password twice)\n"
    "\n"
    "After the first login and after an admin reset the password must be\n"
    "changed: login then asks for the new one twice and changes it at once\n"
    "(auth.change_password). Until it is changed, only passwd, whoami and\n"
    "logout work.\n"
    "\n"
    "The session file is written for the server of --url: its token is not sent\n"
    "to another server. Format (mode 0600, directory 0700 if tkmctl makes it):\n"
    "  tkm-session <64 lowercase hex characters>\n"
    "  url <URL>\n"
    "\n"
    "Output:\n"
    "  logged in as operator:USERNAME (roles: R1, R2 [SCOPE]); the session ends at\n"
    "  TIME, or after N s idle\n"
    "  session saved in FILE\n"
    "  [the password must be changed now ...; password changed]\n"
    "With --json:\n"
    "  {\"principal\":P,\"roles\":[{\"role\":R[,\"scope\":S]}],\"expires_ms\":T,\"expires\":TIME,\n"
    "   \"idle_seconds\":N,\"must_change_password\":B,\"password_changed\":B,"
    "\"session_file\":FILE}\n"
    "(when the forced change fails, an error object comes first and the exit\n"
    "status is that of the error).\n",
    cmd_login,
    NULL,
    0,
};

const tkmctl_cmd tkmctl_logout_cmd = {
    "logout",
    "end the session and remove the session file",
    "",
    "End the session (auth.logout) at the server it was made for (its url line),\n"
    "and remove the session file. The file is removed even when the call fails\n"
    "(tkmd unreachable, session already expired); tkmctl then says so and exits\n"
    "with the call's status.\n"
    "\n"
    "Output:\n"
    "  logged out; removed FILE\n"
    "With --json:\n"
    "  {\"logged_out\":true,\"session_file\":FILE}\n",
    cmd_logout,
    NULL,
    0,
};

const tkmctl_cmd tkmctl_whoami_cmd = {
    "whoami",
    "show who the session belongs to and its roles",
    "",
    "Ask tkmd who the caller is (auth.whoami): the principal, its kind, its roles\n"
    "and whether its password must be changed.\n"
    "\n"
    "Output:\n"
    "  principal             operator:alice\n"
    "  kind                  operator\n"
    "  roles                 admin, key-custodian [site:paris-1]\n"
    "  must change password  no\n"
    "With --json:\n"
    "  {\"principal\":P,\"kind\":K,\"roles\":[{\"role\":R[,\"scope\":S]}],"
    "\"must_change_password\":B}\n",
    cmd_whoami,
    NULL,
    0,
};

const tkmctl_cmd tkmctl_passwd_cmd = {
    "passwd",
    "change your password",
    "[--password-fd N]",
    "Change the password of the logged-in operator (auth.change_password): asks\n"
    "for the current password, then the new one twice. tkmd checks its rules\n"
    "(length, not the username, not a common password, not a recent one).\n"
    "\n" PASSWORD_FD_HELP "                   (current, new, new again)\n"
    "\n"
    "Output:\n"
    "  password changed\n"
    "With --json:\n"
    "  {\"password_changed\":true}\n",
    cmd_passwd,
    NULL,
    0,
};

static const tkmctl_cmd operator_cmds[] = {
    {"create", "create an operator with a one-time password",
     "USERNAME --role ROLE [--role ROLE...]",
     "Create operator USERNAME holding the roles given (operator.create). tkmd\n"
     "makes a one-time password, which is printed here once and never again\n"
     "(tkmd keeps only its hash); the operator must change it at the first login.\n"
     "A username is 1 to 64 of a-z 0-9 . _ -, starting with a letter.\n"
     "\n"
     "Output:\n"
     "  operator bob created; its one-time password:\n"
     "\n"
     "      abcde-fghij-kmnpq-rstuv\n"
     "\n"
     "  Hand it to bob in person or over a trusted channel: ...\n"
     "With --json:\n"
     "  {\"username\":U,\"one_time_password\":P}\n" PENDING_HELP
     "The password then comes with 'tkmctl approvals approve N'.\n",
     cmd_operator_create, NULL, 0},
    {"list", "list operators", "[--after NAME] [--limit N]",
     "List operators in username order (operator.list, paged by tkmd).\n"
     "\n"
     "  --after NAME  start after this username\n"
     "  --limit N     at most N operators (default: all); when more follow, a line\n"
     "                on stderr says how to go on\n"
     "\n"
     "Output (one line per operator; STATE is active, disabled, locked or both):\n"
     "  USERNAME  STATE  FAILED  PASSWORD CHANGED  CREATED  ROLES\n"
     "With --json:\n"
     "  {\"operators\":[OPERATOR...],\"next\":NAME|null}   with OPERATOR as in 'show'\n",
     cmd_operator_list, NULL, 0},
    {"show", "show one operator", "USERNAME",
     "Show operator USERNAME (operator.show).\n"
     "\n"
     "Output:\n"
     "  username          bob\n"
     "  roles             admin\n"
     "  state             active\n"
     "  failed logins     0\n"
     "  password changed  TIME\n"
     "  created           TIME\n"
     "With --json:\n"
     "  {\"username\":U,\"roles\":[{\"role\":R[,\"scope\":S]}],\"disabled\":B,\"locked\":B,\n"
     "   \"failed_logins\":N,\"password_changed_ms\":T,\"created_ms\":T}\n",
     cmd_operator_show, NULL, 0},
    {"reset-password", "give an operator a new one-time password", "USERNAME",
     "Reset the password of operator USERNAME (operator.reset_password): tkmd\n"
     "makes a one-time password, ends the operator's sessions, unlocks the account\n"
     "and forces a change at the next login. The password is printed once.\n"
     "\n"
     "Output and --json as for 'operator create'.\n" PENDING_HELP
     "The password then comes with 'tkmctl approvals approve N'.\n",
     cmd_operator_reset, NULL, 0},
    {"unlock", "unlock an account locked after failed logins", "USERNAME",
     "Unlock operator USERNAME after too many failed logins (operator.unlock).\n"
     "\n"
     "Output:\n"
     "  operator bob unlocked\n"
     "With --json:\n"
     "  {\"username\":U,\"state\":\"unlocked\"}\n" PENDING_HELP,
     cmd_operator_unlock, NULL, 0},
    {"disable", "disable an operator and end its sessions", "USERNAME",
     "Disable operator USERNAME (operator.disable): no more logins, and its\n"
     "sessions end.\n"
     "\n"
     "Output:\n"
     "  operator bob disabled\n"
     "With --json:\n"
     "  {\"username\":U,\"state\":\"disabled\"}\n" PENDING_HELP,
     cmd_operator_disable, NULL, 0},
    {"enable", "enable a disabled operator", "USERNAME",
     "Enable operator USERNAME again (operator.disable with disabled false).\n"
     "\n"
     "Output:\n"
     "  operator bob enabled\n"
     "With --json:\n"
     "  {\"username\":U,\"state\":\"enabled\"}\n" PENDING_HELP,
     cmd_operator_enable, NULL, 0},
};

const tkmctl_cmd tkmctl_operator_cmd = {
    "operator",
    "create, list, reset, unlock, disable and enable operators",
    "SUBCOMMAND [ARGS]",
    "Manage the operators (people) who log in to tkmd.\n",
    cmd_operator,
    operator_cmds,
    sizeof(operator_cmds) / sizeof(operator_cmds[0]),
};

static const tkmctl_cmd role_cmds[] = {
    {"assign", "give a principal a role", "PRINCIPAL ROLE [--scope S]",
     "Give PRINCIPAL the role ROLE (role.assign). PRINCIPAL is operator:NAME or\n"
     "device:NAME; a plain NAME means operator:NAME. tkmd refuses roles the policy\n"
     "does not define and pairs the policy keeps apart (such as admin and auditor).\n"
     "\n"
     "  --scope S  what a role with \"$assigned\" rules is bound to, as a comma-\n"
     "             separated list: site:paris-1,site:lyon-2\n"
     "\n"
     "Output:\n"
     "  role ROLE assigned to PRINCIPAL [scope S]\n"
     "With --json:\n"
     "  {\"principal\":P,\"role\":R[,\"scope\":S],\"assigned\":true}\n" PENDING_HELP,
     cmd_role_assign, NULL, 0},
    {"revoke", "take a role from a principal", "PRINCIPAL ROLE",
     "Take the role ROLE from PRINCIPAL (role.revoke); PRINCIPAL as for assign.\n"
     "\n"
     "Output:\n"
     "  role ROLE revoked from PRINCIPAL\n"
     "With --json:\n"
     "  {\"principal\":P,\"role\":R,\"revoked\":true}\n" PENDING_HELP,
     cmd_role_revoke, NULL, 0},
};

const tkmctl_cmd tkmctl_role_cmd = {
    "role",
    "assign and revoke roles",
    "SUBCOMMAND [ARGS]",
    "Assign roles to principals and revoke them. Role changes are under dual\n"
    "control in the default policy.\n",
    cmd_role,
    role_cmds,
    sizeof(role_cmds) / sizeof(role_cmds[0]),
};

static const tkmctl_cmd policy_cmds[] = {
    {"show", "print the policy in effect", "",
     "Print the policy in effect (policy.show) in its canonical form: the text\n"
     "on stdout, 'policy version V' on stderr.\n"
     "\n"
     "With --json:\n"
     "  {\"version\":V,\"text\":TEXT}\n",
     cmd_policy_show, NULL, 0},
    {"diff", "compare a policy file with the policy in effect", "FILE",
     "Parse FILE and the policy in effect with the policy engine and print what\n"
     "FILE changes, one line per change ('+ role auditor', '- admin deny key.*').\n"
     "Descriptions, holders and rule order count; comments and layout do not.\n"
     "\n"
     "Exit status as for diff(1): 0 when they are the same, 1 when they differ (or\n"
     "on a server error), 2 when FILE cannot be read or does not parse (the line\n"
     "is shown).\n"
     "\n"
     "Output: the changes on stdout, and on stderr\n"
     "  N changes from policy version V to FILE   (or: FILE is the same as ...)\n"
     "With --json:\n"
     "  {\"version\":V,\"file\":FILE,\"equal\":B,\"changes\":N,\"diff\":TEXT}\n",
     cmd_policy_diff, NULL, 0},
    {"apply", "propose a policy file as the new policy", "FILE",
     "Propose FILE as the new policy (policy.apply with the version that\n"
     "policy.show returned, so that a change made in between is refused). FILE\n"
     "is parsed here first and refused with the line of the first error (exit 2).\n"
     "The changes are shown before the proposal is sent; a FILE that changes\n"
     "nothing is not sent.\n"
     "\n"
     "Output:\n"
     "  proposing N changes to policy version V:\n"
     "  + ...\n"
     "  policy version V+1 is in effect   (when no approval is needed)\n"
     "With --json:\n"
     "  {\"version\":V+1,\"changes\":TEXT}   or   {\"version\":V,\"equal\":true}\n" PENDING_HELP,
     cmd_policy_apply, NULL, 0},
};

const tkmctl_cmd tkmctl_policy_cmd = {
    "policy",
    "show, compare and propose the role policy",
    "SUBCOMMAND [ARGS]",
    "The policy of roles, permissions and dual control lives in tkmd's database\n"
    "and changes only through 'policy apply', under dual control (policy/README.md).\n",
    cmd_policy,
    policy_cmds,
    sizeof(policy_cmds) / sizeof(policy_cmds[0]),
};

static const tkmctl_cmd approvals_cmds[] = {
    {"list", "list dual-control requests", "[--state STATE | --all]",
     "List dual-control requests (approval.list), oldest first, with what each\n"
     "would run.\n"
     "\n"
     "  --state STATE  pending (the default), approved, rejected, executed or failed\n"
     "  --all          every request, whatever its state\n"
     "\n"
     "A pending request past its lifetime is shown as expired.\n"
     "\n"
     "Output, per request:\n"
     "  ID  STATE  METHOD  INITIATOR  CREATED  EXPIRES\n"
     "      params: {JSON}\n"
     "      decided by PRINCIPAL\n"
     "With --json:\n"
     "  {\"approvals\":[{\"id\":N,\"state\":S,\"method\":M,\"initiator\":P,\"created_ms\":T,\n"
     "   \"created\":TIME,\"expires_ms\":T,\"expires\":TIME,\"decided_by\":P|null,"
     "\"params\":{...}}]}\n"
     "Byte strings in params are shown as hex strings.\n",
     cmd_approvals_list, NULL, 0},
    {"approve", "approve a request, which then runs", "ID",
     "Approve request ID (approval.approve). You must not be its initiator and\n"
     "must be allowed to call its method. tkmd then runs it as its initiator and\n"
     "answers with its outcome: for operator create and reset-password, the\n"
     "one-time password, printed once.\n"
     "\n"
     "Output:\n"
     "  request N executed[: RESULT]\n"
     "  request N failed: CODE: MESSAGE          (stderr; exit status 1)\n"
     "With --json:\n"
     "  {\"id\":N,\"state\":\"executed\",\"result\":{...}}\n"
     "  {\"id\":N,\"state\":\"failed\",\"error\":{\"code\":C,\"message\":M}}\n",
     cmd_approvals_approve, NULL, 0},
    {"reject", "reject a request, which then never runs", "ID",
     "Reject request ID (approval.reject); it never runs. You must not be its\n"
     "initiator.\n"
     "\n"
     "Output:\n"
     "  request N rejected\n"
     "With --json:\n"
     "  {\"id\":N,\"state\":\"rejected\"}\n",
     cmd_approvals_reject, NULL, 0},
};

const tkmctl_cmd tkmctl_approvals_cmd = {
    "approvals",
    "list, approve and reject dual-control requests",
    "SUBCOMMAND [ARGS]",
    "A method under dual control does not run when it is called: it becomes a\n"
    "pending request that a second, different operator approves or rejects\n"
    "before it expires (1 hour by default).\n",
    cmd_approvals,
    approvals_cmds,
    sizeof(approvals_cmds) / sizeof(approvals_cmds[0]),
};

static int cmd_operator(const tkmctl_opts *o, int argc, char **argv)
{
	return tkmctl_run_sub(&tkmctl_operator_cmd, o, argc, argv);
}

static int cmd_role(const tkmctl_opts *o, int argc, char **argv)
{
	return tkmctl_run_sub(&tkmctl_role_cmd, o, argc, argv);
}

static int cmd_policy(const tkmctl_opts *o, int argc, char **argv)
{
	return tkmctl_run_sub(&tkmctl_policy_cmd, o, argc, argv);
}

static int cmd_approvals(const tkmctl_opts *o, int argc, char **argv)
{
	return tkmctl_run_sub(&tkmctl_approvals_cmd, o, argc, argv);
}

/* ---- Small helpers ---- */

/*
 * An argument a command does not take. An option is named without its
 * "=VALUE", and with hide the argument is not shown at all: either may be a
 * password typed by mistake.
 */
static int unknown_arg(const char *cmd, const char *a, bool hide)
{
	const char *eq = a[0] == '-' ? strchr(a, '=') : NULL;
	char what[96], name[48];

	if (hide) {
		tkm_why_set(what, sizeof(what),
		            "%s: unexpected argument (not shown; passwords are never taken as "
		            "arguments)",
		            cmd);
		return tkmctl_usage_error(what, NULL);
	}
	tkm_why_set(what, sizeof(what), "%s: unknown argument", cmd);
	if (eq != NULL) {
		tkm_why_set(name, sizeof(name), "%.*s=...", (int)(eq - a < 40 ? eq - a : 40), a);
		return tkmctl_usage_error(what, name);
	}
	return tkmctl_usage_error(what, a);
}

/* Unix milliseconds as ISO 8601 UTC to the second. */
static void format_ms(uint64_t ms, char *buf, size_t len)
{
	tkmctl_format_utc((int64_t)(ms / 1000u), buf, len);
}

/* "label   value" with the value untrusted text of n bytes. */
static void put_row(FILE *f, const char *label, const char *s, size_t n)
{
	fprintf(f, "%-21s ", label);
	tkmctl_put_text_n(f, s, n);
	fputc('\n', f);
}

/* ---- Roles in replies ---- */

typedef struct role_item {
	const char *role, *scope; /* scope NULL: none */
	size_t role_n, scope_n;
} role_item;

/* "roles": an array of {"role": text, ? "scope": text}. */
static bool get_roles(tkmctl_reply *r, const tkm_cbor_val *map, role_item *out, size_t *n)
{
	const tkm_cbor_val *arr = tkm_cbor_map_get(map, "roles");

	*n = 0;
	if (!tkm_cbor_is(arr, TKM_CBOR_ARRAY) || tkm_cbor_count(arr) > ROLES_MAX) {
		return tkmctl_reply_bad(r, "'roles' is missing, not an array, or too long");
	}
	for (const tkm_cbor_val *v = tkm_cbor_first(arr); v != NULL; v = tkm_cbor_next(v)) {
		role_item *it = &out[(*n)++];

		if (!tkm_cbor_is(v, TKM_CBOR_MAP)) {
			return tkmctl_reply_bad(r, "a role is not a map");
		}
		if (!tkmctl_get_text(r, v, "role", false, ROLE_MAX, &it->role, &it->role_n)) {
			return false;
		}
		it->scope = NULL;
		it->scope_n = 0;
		if (tkm_cbor_map_get(v, "scope") != NULL &&
		    !tkmctl_get_text(r, v, "scope", true, SCOPE_MAX, &it->scope, &it->scope_n)) {
			return false;
		}
	}
	return true;
}

/* "admin, key-custodian [site:paris-1]", or "-" for none. */
static void put_roles_text(FILE *f, const role_item *roles, size_t n)
{
	if (n == 0) {
		fputc('-', f);
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0) {
			fputs(", ", f);
		}
		tkmctl_put_text_n(f, roles[i].role, roles[i].role_n);
		if (roles[i].scope != NULL && roles[i].scope_n > 0) {
			fputs(" [", f);
			tkmctl_put_text_n(f, roles[i].scope, roles[i].scope_n);
			fputc(']', f);
		}
	}
}

static void put_roles_json(FILE *f, const role_item *roles, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		fputs(i > 0 ? ",{\"role\":" : "{\"role\":", f);
		tkmctl_put_json_str_n(f, roles[i].role, roles[i].role_n);
		if (roles[i].scope != NULL) {
			fputs(",\"scope\":", f);
			tkmctl_put_json_str_n(f, roles[i].scope, roles[i].scope_n);
		}
		fputc('}', f);
	}
	fputc(']', f);
}

/* ---- The session file ---- */

struct tkmctl_session {
	uint8_t *token; /* TKM_SESSION_TOKEN_LEN bytes, sodium_malloc'd */
	char url[TKMCTL_SESSION_URL_MAX + 1];
};

int tkmctl_session_path(const tkmctl_opts *o, char *buf, size_t len)
{
	const char *env;
	int n;

	buf[0] = '\0';
	if (o->session_file != NULL) {
		n = snprintf(buf, len, "%s", o->session_file);
	} else if ((env = getenv("TKM_SESSION_FILE")) != NULL && env[0] != '\0') {
		n = snprintf(buf, len, "%s", env);
	} else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && env[0] == '/') {
		n = snprintf(buf, len, "%s/tkm/session", env);
	} else if ((env = getenv("HOME")) != NULL && env[0] == '/') {
		n = snprintf(buf, len, "%s/.config/tkm/session", env);
	} else {
		return TKMCTL_EXIT_OK;
	}
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return tkmctl_usage_error("the session file's path is too long", NULL);
	}
	return TKMCTL_EXIT_OK;
}

/* url with a relative ipc:// path made absolute with the current directory. */
static bool session_url_of(const char *url, char *buf, size_t len)
{
	char cwd[TKMCTL_PATH_MAX];
	const char *rel;
	int n;

	if (strncmp(url, "ipc://", 6) != 0 || url[6] == '/' || url[6] == '\0') {
		n = snprintf(buf, len, "%s", url);
	} else if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return false;
	} else {
		rel = url + 6;
		while (strncmp(rel, "./", 2) == 0) {
			rel += 2;
		}
		n = snprintf(buf, len, "ipc://%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, rel);
	}
	return n >= 0 && (size_t)n < len;
}

void tkmctl_session_free(tkmctl_session *s)
{
	if (s == NULL) {
		return;
	}
	if (s->token != NULL) {
		sodium_memzero(s->token, TKM_SESSION_TOKEN_LEN);
		sodium_free(s->token);
	}
	free(s);
}

const uint8_t *tkmctl_session_token(const tkmctl_session *s)
{
	return s->token;
}

const char *tkmctl_session_url(const tkmctl_session *s)
{
	return s->url;
}

bool tkmctl_session_is_for(const tkmctl_session *s, const char *url)
{
	char norm[TKMCTL_SESSION_URL_MAX + 1];

	if (s->url[0] == '\0') {
		return true;
	}
	return session_url_of(url, norm, sizeof(norm)) && strcmp(norm, s->url) == 0;
}

/* Refuse the session file at path with a reason: exit status 2. */
static int session_refuse(const tkmctl_opts *o, const char *path, const char *reason)
{
	char msg[TKMCTL_PATH_MAX + 256];

	tkm_why_set(msg, sizeof(msg),
	            "the session file %s %s: refused (remove it and log in again)", path, reason);
	return tkmctl_fail(o, TKM_E_CONFIG, msg);
}

/* Parse the n bytes of a session file into s; false when they are not in the format. */
static bool session_parse(const char *buf, size_t n, tkmctl_session *s)
{
	const char *hex = buf + sizeof(SESSION_MAGIC) - 1;
	const char *url, *end = buf + n;
	size_t bin_len = 0, url_n;

	if (n < SESSION_LINE_LEN || strncmp(buf, SESSION_MAGIC, sizeof(SESSION_MAGIC) - 1) != 0 ||
	    buf[SESSION_LINE_LEN - 1] != '\n') {
		return false;
	}
	for (size_t i = 0; i < 2 * TKM_SESSION_TOKEN_LEN; i++) {
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) {
			return false;
		}
	}
	if (sodium_hex2bin(s->token, TKM_SESSION_TOKEN_LEN, hex, 2 * TKM_SESSION_TOKEN_LEN, NULL,
	                   &bin_len, NULL) != 0 ||
	    bin_len != TKM_SESSION_TOKEN_LEN) {
		return false;
	}
	s->url[0] = '\0';
	url = buf + SESSION_LINE_LEN;
	if (url == end) {
		return true;
	}
	if ((size_t)(end - url) < 6 || strncmp(url, "url ", 4) != 0 || end[-1] != '\n') {
		return false;
	}
	url += 4;
	url_n = (size_t)(end - url) - 1;
	if (url_n == 0 || url_n > TKMCTL_SESSION_URL_MAX) {
		return false;
	}
	for (size_t i = 0; i < url_n; i++) {
		if ((unsigned char)url[i] < 0x20 || url[i] == 0x7f) {
			return false;
		}
	}
	memcpy(s->url, url, url_n);
	s->url[url_n] = '\0';
	return true;
}

int tkmctl_session_load(const tkmctl_opts *o, const char *path, tkmctl_session **out)
{
	tkmctl_session *s = NULL;
	char *buf = NULL;
	char reason[160];
	struct stat sb;
	size_t n = 0;
	int fd = -1, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT) {
			return TKMCTL_EXIT_OK;
		}
		tkm_why_set(reason, sizeof(reason), "cannot be opened (%s)",
		            e == ELOOP ? "it is a symbolic link" : strerror(e));
		return session_refuse(o, path, reason);
	}
	if (fstat(fd, &sb) != 0) {
		tkm_why_set(reason, sizeof(reason), "cannot be read (%s)", strerror(errno));
		rc = session_refuse(o, path, reason);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = session_refuse(o, path, "is not a regular file");
		goto out;
	}
	if (sb.st_uid != geteuid()) {
		rc = session_refuse(o, path, "belongs to another user");
		goto out;
	}
	if ((sb.st_mode & 077) != 0) {
		tkm_why_set(reason, sizeof(reason),
		            "is open to group or others (mode %04o; tkmctl writes 0600)",
		            (unsigned)(sb.st_mode & 07777));
		rc = session_refuse(o, path, reason);
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->token = sodium_malloc(TKM_SESSION_TOKEN_LEN)) == NULL ||
	    (buf = sodium_malloc(SESSION_FILE_MAX + 1)) == NULL) {
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, SESSION_FILE_MAX + 1 - n);

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			tkm_why_set(reason, sizeof(reason), "cannot be read (%s)", strerror(errno));
			rc = session_refuse(o, path, reason);
			goto out;
		}
		if (r == 0 || (n += (size_t)r) > SESSION_FILE_MAX) {
			break;
		}
	}
	if (n > SESSION_FILE_MAX || !session_parse(buf, n, s)) {
		rc = session_refuse(o, path, "is not in tkmctl's format");
		goto out;
	}
	*out = s;
	s = NULL;
	rc = TKMCTL_EXIT_OK;
out:
	if (buf != NULL) {
		sodium_memzero(buf, SESSION_FILE_MAX + 1);
		sodium_free(buf);
	}
	tkmctl_session_free(s);
	if (fd >= 0) {
		(void)close(fd);
	}
	return rc;
}

/* The directory part of path into buf ("." for none). */
static bool dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	int n;

	if (slash == NULL) {
		n = snprintf(buf, len, ".");
	} else if (slash == path) {
		n = snprintf(buf, len, "/");
	} else {
		n = snprintf(buf, len, "%.*s", (int)(slash - path), path);
	}
	return n >= 0 && (size_t)n < len;
}

/* mkdir -p with mode 0700 for every directory made; errno set on failure. */
static bool make_dirs(const char *dir)
{
	char buf[TKMCTL_PATH_MAX];
	struct stat sb;
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return false;
	}
	memcpy(buf, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0') {
			continue;
		}
		buf[i] = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
			return false;
		}
		buf[i] = i < n ? '/' : '\0';
	}
	if (stat(dir, &sb) != 0) {
		return false;
	}
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return false;
	}
	return true;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Make the session file's directory (0700) before logging in; an exit status. */
static int session_dir(const tkmctl_opts *o, const char *path)
{
	char dir[TKMCTL_PATH_MAX], msg[TKMCTL_PATH_MAX + 128];

	if (!dir_of(path, dir, sizeof(dir))) {
		return tkmctl_usage_error("the session file's path is too long", NULL);
	}
	if (!make_dirs(dir)) {
		tkm_why_set(msg, sizeof(msg),
		            "cannot make the directory %s for the session file: %s", dir,
		            strerror(errno));
		return tkmctl_fail(o, TKM_E_IO, msg);
	}
	return TKMCTL_EXIT_OK;
}

/*
 * Write the session file: a new temporary file in the same directory
 * (O_EXCL, O_NOFOLLOW, mode 0600), synced, then renamed over path, and the
 * directory synced. An exit status.
 */
static int session_save(const tkmctl_opts *o, const char *path,
                        const uint8_t token[static TKM_SESSION_TOKEN_LEN], const char *url)
{
	char dir[TKMCTL_PATH_MAX], tmp[TKMCTL_PATH_MAX], msg[TKMCTL_PATH_MAX + 128];
	char rnd_hex[17];
	uint8_t rnd[8];
	char *text = NULL;
	size_t cap = SESSION_FILE_MAX + 1, n;
	int fd = -1, dfd = -1, rc = TKMCTL_EXIT_OK, w;
	bool made = false;

	if (!dir_of(path, dir, sizeof(dir))) {
		return tkmctl_usage_error("the session file's path is too long", NULL);
	}
	for (int tries = 0; tries < 8 && fd < 0; tries++) {
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2hex(rnd_hex, sizeof(rnd_hex), rnd, sizeof(rnd));
		w = snprintf(tmp, sizeof(tmp), "%s/.tkm-session.%s", dir, rnd_hex);
		if (w < 0 || (size_t)w >= sizeof(tmp)) {
			return tkmctl_usage_error("the session file's path is too long", NULL);
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) {
			break;
		}
	}
	if (fd < 0) {
		tkm_why_set(msg, sizeof(msg), "cannot create a file in %s for the session: %s", dir,
		            strerror(errno));
		return tkmctl_fail(o, TKM_E_IO, msg);
	}
	made = true;
	if ((text = sodium_malloc(cap)) == NULL) {
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	memcpy(text, SESSION_MAGIC, sizeof(SESSION_MAGIC) - 1);
	n = sizeof(SESSION_MAGIC) - 1;
	sodium_bin2hex(text + n, cap - n, token, TKM_SESSION_TOKEN_LEN);
	n += 2 * TKM_SESSION_TOKEN_LEN;
	text[n++] = '\n';
	if (url[0] != '\0') {
		w = snprintf(text + n, cap - n, "url %s\n", url);
		if (w < 0 || (size_t)w >= cap - n) {
			rc = tkmctl_usage_error("the URL is too long for the session file", NULL);
			goto out;
		}
		n += (size_t)w;
	}
	if (!write_all(fd, text, n) || fsync(fd) != 0) {
		tkm_why_set(msg, sizeof(msg), "cannot write %s: %s", tmp, strerror(errno));
		rc = tkmctl_fail(o, TKM_E_IO, msg);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		tkm_why_set(msg, sizeof(msg), "cannot write %s: %s", tmp, strerror(errno));
		rc = tkmctl_fail(o, TKM_E_IO, msg);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		tkm_why_set(msg, sizeof(msg), "cannot put the session file in place at %s: %s",
		            path, strerror(errno));
		rc = tkmctl_fail(o, TKM_E_IO, msg);
		goto out;
	}
	made = false;
	/* The rename is durable once the directory is synced; a failure here loses nothing yet. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		(void)close(dfd);
	}
out:
	if (text != NULL) {
		sodium_memzero(text, cap);
		sodium_free(text);
	}
	if (fd >= 0) {
		(void)close(fd);
	}
	if (made) {
		(void)unlink(tmp);
	}
	return rc;
}

/* ---- Passwords ---- */

/* A password in locked memory, NUL-terminated. */
typedef struct secret {
	char *s; /* PW_MAX + 1 bytes */
	size_t len;
} secret;

static tkm_err secret_new(secret *x)
{
	x->len = 0;
	if ((x->s = sodium_malloc(PW_MAX + 1)) == NULL) {
		return TKM_E_NOMEM;
	}
	x->s[0] = '\0';
	return TKM_OK;
}

static void secret_free(secret *x)
{
	if (x->s != NULL) {
		sodium_memzero(x->s, PW_MAX + 1);
		sodium_free(x->s);
	}
	x->s = NULL;
	x->len = 0;
}

/* Where passwords come from: fd -1 is the terminal, otherwise --password-fd. */
typedef struct pw_in {
	int fd;
} pw_in;

/* No core file and no ptrace by other processes of this user while a secret is here. */
static void no_core_dumps(void)
{
	struct rlimit rl = {0, 0};

	(void)setrlimit(RLIMIT_CORE, &rl);
#ifdef __linux__
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

/* --password-fd N: N must be an open file descriptor. An exit status. */
static int parse_password_fd(const char *v, pw_in *in)
{
	uint64_t n = 0;

	if (strcmp(v, "0") != 0 && !tkmctl_parse_uint(1, v, INT_MAX, &n)) {
		return tkmctl_usage_error("--password-fd needs a file descriptor number", v);
	}
	if (fcntl((int)n, F_GETFD) == -1) {
		return tkmctl_usage_error("--password-fd: not an open file descriptor", v);
	}
	in->fd = (int)n;
	return TKMCTL_EXIT_OK;
}

/* The checks every password read gets, after the line is in x. */
static tkm_err password_ok(const secret *x, bool too_long, char *why, size_t why_len)
{
	if (too_long) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a password is at most %d bytes", PW_MAX);
	}
	if (memchr(x->s, '\0', x->len) != NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "a password holds a NUL byte");
	}
	if (x->len == 0) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "the password is empty");
	}
	return TKM_OK;
}

/* One line from fd: everything before '\n' (or the end of the input). */
static tkm_err read_fd_line(int fd, secret *x, char *why, size_t why_len)
{
	bool any = false, too_long = false;
	char c = 0;

	x->len = 0;
	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			return tkm_why_fail(why, why_len, TKM_E_IO,
			                    "cannot read --password-fd %d: %s", fd,
			                    strerror(errno));
		}
		if (r == 0 || c == '\n') {
			any = any || r == 1;
			break;
		}
		any = true;
		if (x->len == PW_MAX) {
			too_long = true;
		} else {
			x->s[x->len++] = c;
		}
	}
	c = 0;
	x->s[x->len] = '\0';
	if (!any) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "--password-fd %d: no more lines (a password per line)", fd);
	}
	return password_ok(x, too_long, why, why_len);
}

/* The signals that must not leave the terminal without echo. */
static const int pw_signals[] = {SIGALRM, SIGHUP,  SIGINT,  SIGPIPE, SIGQUIT,
                                 SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU};
#define PW_NSIGNALS (sizeof(pw_signals) / sizeof(pw_signals[0]))

static volatile sig_atomic_t pw_signo;

static void pw_on_signal(int sig)
{
	pw_signo = sig;
}

/* Write s to the terminal; a signal caught (pw_signo) ends it. */
static void tty_puts(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR && pw_signo == 0) {
			continue;
		}
		if (w <= 0) {
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

/*
 * Put the terminal's settings back and end the line that was typed without
 * echo. SIGTTOU is blocked meanwhile, so that this works even if the process
 * was moved to the background during the prompt (POSIX lets a background
 * process change the terminal while it blocks SIGTTOU).
 */
static void tty_restore(int fd, const struct termios *saved)
{
	sigset_t ttou, prev;

	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	(void)sigprocmask(SIG_BLOCK, &ttou, &prev);
	while (tcsetattr(fd, TCSAFLUSH, saved) != 0 && errno == EINTR) {
	}
	tty_puts(fd, "\n");
	(void)sigprocmask(SIG_SETMASK, &prev, NULL);
}

/*
 * Read one password line from /dev/tty with echo off. Catches the signals
 * above so that the terminal's settings are restored first; then the signal
 * is raised again with its old disposition (a stop signal asks again after
 * the process continues, as readpassphrase(3) does).
 */
static tkm_err read_tty_line(const char *prompt, secret *x, char *why, size_t why_len)
{
	struct sigaction sa, old[PW_NSIGNALS];
	struct termios saved, quiet;
	bool too_long, term_set;
	int fd, sig;
	char c = 0;

	for (;;) {
		too_long = false;
		term_set = false;
		x->len = 0;
		fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0) {
			return tkm_why_fail(
			    why, why_len, TKM_E_INVALID_ARG,
			    "no terminal to ask for the password on (/dev/tty: %s); "
			    "use --password-fd N",
			    strerror(errno));
		}
		pw_signo = 0;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = pw_on_signal;
		sigemptyset(&sa.sa_mask);
		/* No SA_RESTART: a signal ends the read at once. */
		for (size_t i = 0; i < PW_NSIGNALS; i++) {
			(void)sigaction(pw_signals[i], &sa, &old[i]);
		}
		if (tcgetattr(fd, &saved) == 0) {
			quiet = saved;
			quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
			term_set = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
		}
		if (!term_set) {
			for (size_t i = 0; i < PW_NSIGNALS; i++) {
				(void)sigaction(pw_signals[i], &old[i], NULL);
			}
			(void)close(fd);
			return tkm_why_fail(
			    why, why_len, TKM_E_INVALID_ARG,
			    "cannot turn off echo on /dev/tty; use --password-fd N");
		}
		tty_puts(fd, prompt);
		while (pw_signo == 0) {
			ssize_t r = read(fd, &c, 1);

			if (r < 0 && errno == EINTR) {
				continue;
			}
			if (r <= 0 || c == '\n') {
				break;
			}
			if (x->len == PW_MAX) {
				too_long = true;
			} else {
				x->s[x->len++] = c;
			}
		}
		c = 0;
		x->s[x->len] = '\0';
		tty_restore(fd, &saved);
		for (size_t i = 0; i < PW_NSIGNALS; i++) {
			(void)sigaction(pw_signals[i], &old[i], NULL);
		}
		(void)close(fd);
		if ((sig = pw_signo) == 0) {
			break;
		}
		sodium_memzero(x->s, PW_MAX + 1);
		x->len = 0;
		(void)kill(getpid(), sig);
		if (sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU) {
			return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
			                    "interrupted while reading the password");
		}
	}
	return password_ok(x, too_long, why, why_len);
}

/* Read one password from in into x (a new secret). An exit status, reported. */
static int read_password(const tkmctl_opts *o, const pw_in *in, const char *prompt, secret *x)
{
	char why[256];
	tkm_err err;

	if ((err = secret_new(x)) != TKM_OK) {
		return tkmctl_fail(o, err, NULL);
	}
	err = in->fd >= 0 ? read_fd_line(in->fd, x, why, sizeof(why))
	                  : read_tty_line(prompt, x, why, sizeof(why));
	if (err != TKM_OK) {
		secret_free(x);
		return tkmctl_fail(o, err, why);
	}
	return TKMCTL_EXIT_OK;
}

/* Tries at the terminal for a new password that is refused; --password-fd has one. */
#define PW_TTY_TRIES 3

/*
 * One try: ask for a new password twice and change it from old
 * (auth.change_password) on c, which carries the session. *pending: tkmd
 * answered with a pending approval, reported here. *again: the new password
 * was refused (the two differ, or tkmd's rules), so another may be tried. An
 * exit status, reported.
 */
static int change_password_once(const tkmctl_opts *o, tkm_client *c, const pw_in *in,
                                const secret *old, bool *pending, bool *again)
{
	secret n1 = {NULL, 0}, n2 = {NULL, 0};
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	tkm_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	*pending = false;
	*again = false;
	if ((rc = read_password(o, in, "New password: ", &n1)) != TKMCTL_EXIT_OK ||
	    (rc = read_password(o, in, "New password again: ", &n2)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if (n1.len != n2.len || sodium_memcmp(n1.s, n2.s, n1.len) != 0) {
		*again = true;
		rc = tkmctl_fail(o, TKM_E_INVALID_ARG, "the two new passwords differ");
		goto out;
	}
	if ((rc = tkmctl_params_new(o, 4 * PW_MAX, &w)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	/* Deterministic key order: both keys are 12 bytes, "new..." < "old...". */
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "new_password");
	tkm_cbor_put_text(w, n1.s, n1.len);
	tkm_cbor_put_cstr(w, "old_password");
	tkm_cbor_put_text(w, old->s, old->len);
	if ((err = tkmctl_call(c, o, "auth.change_password", w, &r)) != TKM_OK) {
		/* bad_request: the new password breaks one of tkmd's rules. */
		*again = err == TKM_E_BAD_REQUEST;
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	if (r.pending) {
		*pending = true;
		rc = tkmctl_pending(o, &r);
		goto out;
	}
	rc = TKMCTL_EXIT_OK;
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	secret_free(&n1);
	secret_free(&n2);
	return rc;
}

/*
 * Change the password from old to a new one asked for: at the terminal up to
 * PW_TTY_TRIES times while it is refused, from --password-fd once. An exit
 * status, reported.
 */
static int change_password(const tkmctl_opts *o, tkm_client *c, const pw_in *in, const secret *old,
                           bool *pending)
{
	int tries = in->fd >= 0 ? 1 : PW_TTY_TRIES;
	bool again = false;
	int rc;

	for (;;) {
		rc = change_password_once(o, c, in, old, pending, &again);
		if (rc == TKMCTL_EXIT_OK || !again || --tries == 0) {
			return rc;
		}
		fputs("tkmctl: try another password\n", stderr);
	}
}

/*
 * Parse [--password-fd N] and, when user is not NULL, one USERNAME; nothing
 * else, and nothing else is shown back (it may be a password). An exit status.
 */
static int parse_pw_args(const char *cmd, int argc, char **argv, const char **user, pw_in *in)
{
	in->fd = -1;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;
		int rc;

		if ((v = tkmctl_opt_value(argc, argv, &i, "--password-fd", &missing)) != NULL) {
			if (in->fd >= 0) {
				return tkmctl_usage_error("option given twice", "--password-fd");
			}
			if ((rc = parse_password_fd(v, in)) != TKMCTL_EXIT_OK) {
				return rc;
			}
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else if (strncmp(a, "--password", 10) == 0 || strncmp(a, "-p", 2) == 0) {
			return tkmctl_usage_error(
			    "passwords are never taken as arguments: type it at the prompt, or use "
			    "--password-fd N",
			    NULL);
		} else if (user != NULL && *user == NULL && a[0] != '-') {
			*user = a;
		} else {
			return unknown_arg(cmd, a, true);
		}
	}
	if (user != NULL && *user == NULL) {
		return tkmctl_usage_error("login needs a USERNAME", NULL);
	}
	return TKMCTL_EXIT_OK;
}

/* ---- login ---- */

typedef struct login_result {
	const uint8_t *token;
	uint64_t expires_ms, idle_s;
	bool must_change;
	role_item roles[ROLES_MAX];
	size_t nroles;
} login_result;

static bool parse_login(tkmctl_reply *r, login_result *lr)
{
	size_t n = 0;

	if (!tkm_cbor_get_bytes(tkm_cbor_map_get(r->root, "token"), &lr->token, &n) ||
	    n != TKM_SESSION_TOKEN_LEN) {
		return tkmctl_reply_bad(r, "'token' is missing or not 32 bytes");
	}
	return tkmctl_get_uint(r, r->root, "expires_ms", &lr->expires_ms) &&
	       tkmctl_get_uint(r, r->root, "idle_seconds", &lr->idle_s) &&
	       tkmctl_get_bool(r, r->root, "must_change_password", &lr->must_change) &&
	       get_roles(r, r->root, lr->roles, &lr->nroles);
}

static void print_login(const tkmctl_opts *o, const char *user, const login_result *lr,
                        const char *path, bool changed)
{
	char when[64];

	format_ms(lr->expires_ms, when, sizeof(when));
	if (o->json) {
		char principal[USERNAME_MAX + 16];

		tkm_why_set(principal, sizeof(principal), "operator:%s", user);
		fputs("{\"principal\":", stdout);
		tkmctl_put_json_str(stdout, principal);
		fputs(",\"roles\":", stdout);
		put_roles_json(stdout, lr->roles, lr->nroles);
		printf(",\"expires_ms\":%llu,\"expires\":\"%s\",\"idle_seconds\":%llu,"
		       "\"must_change_password\":%s,\"password_changed\":%s,\"session_file\":",
		       (unsigned long long)lr->expires_ms, when, (unsigned long long)lr->idle_s,
		       lr->must_change ? "true" : "false", changed ? "true" : "false");
		tkmctl_put_json_str(stdout, path);
		fputs("}\n", stdout);
		return;
	}
	fputs("logged in as operator:", stdout);
	tkmctl_put_text(stdout, user);
	fputs(" (roles: ", stdout);
	put_roles_text(stdout, lr->roles, lr->nroles);
	printf("); the session ends at %s, or after %llu s idle\nsession saved in ", when,
	       (unsigned long long)lr->idle_s);
	tkmctl_put_text(stdout, path);
	fputc('\n', stdout);
}

static int cmd_login(const tkmctl_opts *o, int argc, char **argv)
{
	char path[TKMCTL_PATH_MAX], url[TKMCTL_SESSION_URL_MAX + 1];
	const char *user = NULL;
	pw_in in;
	secret pw = {NULL, 0};
	uint8_t *token = NULL;
	tkm_client *c = NULL;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	login_result lr;
	tkm_status st;
	bool pending = false;
	tkm_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = parse_pw_args("login", argc, argv, &user, &in)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if (user[0] == '\0' || strlen(user) > USERNAME_MAX) {
		return tkmctl_usage_error("a username is 1 to 64 characters", NULL);
	}
	if ((rc = tkmctl_session_path(o, path, sizeof(path))) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if (path[0] == '\0') {
		return tkmctl_usage_error("no place for the session file: set HOME or "
		                          "TKM_SESSION_FILE, or give --session FILE",
		                          NULL);
	}
	if (!session_url_of(o->url, url, sizeof(url))) {
		return tkmctl_usage_error("the URL is too long for the session file", o->url);
	}
	if ((rc = session_dir(o, path)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	no_core_dumps();
	/* Connect first: no password is asked for when tkmd is not there. */
	if ((rc = tkmctl_connect_anon(o, 0, &c)) != TKMCTL_EXIT_OK ||
	    (rc = read_password(o, &in, "Password: ", &pw)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_params_new(o, 2 * PW_MAX + 256, &w)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	/* Deterministic key order: both keys are 8 bytes, "password" < "username". */
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "password");
	tkm_cbor_put_text(w, pw.s, pw.len);
	tkm_cbor_put_cstr(w, "username");
	tkm_cbor_put_cstr(w, user);
	err = tkmctl_call(c, o, "auth.login", w, &r);
	tkm_cbor_w_free(w);
	w = NULL;
	if (err != TKM_OK) {
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	if (r.pending) {
		rc = tkmctl_pending(o, &r);
		goto out;
	}
	memset(&lr, 0, sizeof(lr));
	if (!parse_login(&r, &lr)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if ((token = sodium_malloc(TKM_SESSION_TOKEN_LEN)) == NULL) {
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	memcpy(token, lr.token, TKM_SESSION_TOKEN_LEN);
	if ((err = tkm_client_use_session(c, token, &st)) != TKM_OK) {
		rc = tkmctl_fail(o, err, st.message);
		goto out;
	}
	if ((rc = session_save(o, path, token, url)) != TKMCTL_EXIT_OK) {
		/* Logged in but nowhere to keep the session: end it rather than leave it open. */
		tkmctl_reply_free(&r);
		if (tkmctl_call(c, o, "auth.logout", NULL, &r) == TKM_OK) {
			fputs("tkmctl: the session was ended again\n", stderr);
		}
		goto out;
	}
	if (!lr.must_change) {
		print_login(o, user, &lr, path, false);
		goto out;
	}
	if (!o->json) {
		print_login(o, user, &lr, path, false);
		fputs("the password must be changed now (first login, or after a reset)\n", stdout);
		(void)fflush(stdout);
	}
	rc = change_password(o, c, &in, &pw, &pending);
	if (pending) {
		goto out;
	}
	if (o->json) {
		print_login(o, user, &lr, path, rc == TKMCTL_EXIT_OK);
	}
	if (rc != TKMCTL_EXIT_OK) {
		fputs("tkmctl: logged in, but the password is not changed yet: run tkmctl passwd "
		      "(until then only passwd, whoami and logout work)\n",
		      stderr);
	} else if (!o->json) {
		fputs("password changed\n", stdout);
	}
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	tkm_client_close(c);
	if (token != NULL) {
		sodium_memzero(token, TKM_SESSION_TOKEN_LEN);
		sodium_free(token);
	}
	secret_free(&pw);
	return rc;
}

/* ---- logout, whoami, passwd ---- */

static int cmd_logout(const tkmctl_opts *o, int argc, char **argv)
{
	char path[TKMCTL_PATH_MAX], msg[TKMCTL_PATH_MAX + 64];
	tkmctl_session *s = NULL;
	tkmctl_opts lo = *o;
	tkm_client *c = NULL;
	tkmctl_reply r;
	tkm_status st;
	tkm_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	if (argc > 0) {
		return unknown_arg("logout", argv[0], false);
	}
	if ((rc = tkmctl_session_path(o, path, sizeof(path))) != TKMCTL_EXIT_OK ||
	    (path[0] != '\0' && (rc = tkmctl_session_load(o, path, &s)) != TKMCTL_EXIT_OK)) {
		return rc;
	}
	if (s == NULL) {
		tkm_why_set(msg, sizeof(msg), "not logged in: no session file%s%s",
		            path[0] != '\0' ? " at " : "", path);
		return tkmctl_fail(o, TKM_E_NOT_FOUND, msg);
	}
	if (tkmctl_session_url(s)[0] != '\0') {
		lo.url = tkmctl_session_url(s);
	}
	if ((rc = tkmctl_connect_anon(&lo, 0, &c)) == TKMCTL_EXIT_OK) {
		if ((err = tkm_client_use_session(c, tkmctl_session_token(s), &st)) != TKM_OK) {
			rc = tkmctl_fail(o, err, st.message);
		} else if ((err = tkmctl_call(c, o, "auth.logout", NULL, &r)) != TKM_OK) {
			rc = tkmctl_fail(o, err, r.why);
		}
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		tkm_why_set(msg, sizeof(msg), "cannot remove the session file %s: %s", path,
		            strerror(errno));
		rc = tkmctl_fail(o, TKM_E_IO, msg);
		goto out;
	}
	if (rc != TKMCTL_EXIT_OK) {
		fputs("tkmctl: the session file ", stderr);
		tkmctl_put_text(stderr, path);
		fputs(" was removed all the same\n", stderr);
		goto out;
	}
	if (o->json) {
		fputs("{\"logged_out\":true,\"session_file\":", stdout);
		tkmctl_put_json_str(stdout, path);
		fputs("}\n", stdout);
	} else {
		fputs("logged out; removed ", stdout);
		tkmctl_put_text(stdout, path);
		fputc('\n', stdout);
	}
out:
	tkmctl_reply_free(&r);
	tkm_client_close(c);
	tkmctl_session_free(s);
	return rc;
}

static int cmd_whoami(const tkmctl_opts *o, int argc, char **argv)
{
	role_item roles[ROLES_MAX];
	const char *principal, *kind;
	size_t pn, kn, nroles = 0;
	bool must = false, done;
	tkmctl_reply r;
	int rc;

	if (argc > 0) {
		return unknown_arg("whoami", argv[0], false);
	}
	if ((rc = tkmctl_call_cmd(o, 0, "auth.whoami", NULL, &r, &done)) != TKMCTL_EXIT_OK ||
	    done) {
		goto out;
	}
	if (!tkmctl_get_text(&r, r.root, "principal", false, PRINCIPAL_MAX, &principal, &pn) ||
	    !tkmctl_get_text(&r, r.root, "kind", false, 16, &kind, &kn) ||
	    !get_roles(&r, r.root, roles, &nroles) ||
	    !tkmctl_get_bool(&r, r.root, "must_change_password", &must)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (o->json) {
		fputs("{\"principal\":", stdout);
		tkmctl_put_json_str_n(stdout, principal, pn);
		fputs(",\"kind\":", stdout);
		tkmctl_put_json_str_n(stdout, kind, kn);
		fputs(",\"roles\":", stdout);
		put_roles_json(stdout, roles, nroles);
		printf(",\"must_change_password\":%s}\n", must ? "true" : "false");
	} else {
		put_row(stdout, "principal", principal, pn);
		put_row(stdout, "kind", kind, kn);
		printf("%-21s ", "roles");
		put_roles_text(stdout, roles, nroles);
		printf("\n%-21s %s\n", "must change password",
		       must ? "yes (run tkmctl passwd)" : "no");
	}
out:
	tkmctl_reply_free(&r);
	return rc;
}

static int cmd_passwd(const tkmctl_opts *o, int argc, char **argv)
{
	char path[TKMCTL_PATH_MAX];
	tkmctl_session *s = NULL;
	secret old = {NULL, 0};
	tkm_client *c = NULL;
	bool pending = false;
	pw_in in;
	int rc;

	if ((rc = parse_pw_args("passwd", argc, argv, NULL, &in)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	/* Without a session tkmd would refuse: say so before asking for three passwords. */
	if ((rc = tkmctl_session_path(o, path, sizeof(path))) != TKMCTL_EXIT_OK ||
	    (path[0] != '\0' && (rc = tkmctl_session_load(o, path, &s)) != TKMCTL_EXIT_OK)) {
		return rc;
	}
	if (s == NULL) {
		return tkmctl_fail(o, TKM_E_UNAUTHENTICATED,
		                   "passwd changes the password of the "
		                   "operator logged in, and there is no "
		                   "session");
	}
	tkmctl_session_free(s);
	no_core_dumps();
	if ((rc = tkmctl_connect(o, 0, &c)) != TKMCTL_EXIT_OK ||
	    (rc = read_password(o, &in, "Current password: ", &old)) != TKMCTL_EXIT_OK ||
	    (rc = change_password(o, c, &in, &old, &pending)) != TKMCTL_EXIT_OK || pending) {
		goto out;
	}
	if (o->json) {
		fputs("{\"password_changed\":true}\n", stdout);
	} else {
		fputs("password changed\n", stdout);
	}
out:
	tkm_client_close(c);
	secret_free(&old);
	return rc;
}

/* ---- operator ---- */

/*
 * The one-time password of a new or reset operator, from a result map
 * {"username", "one_time_password"}. In text, the first line is pre, the
 * username and post.
 */
static int print_otp(const tkmctl_opts *o, tkmctl_reply *r, const tkm_cbor_val *map,
                     const char *pre, const char *post)
{
	const char *user, *otp;
	size_t un, pn;

	if (!tkmctl_get_text(r, map, "username", false, USERNAME_MAX, &user, &un) ||
	    !tkmctl_get_text(r, map, "one_time_password", false, OTP_MAX, &otp, &pn)) {
		return tkmctl_fail(o, TKM_E_PROTOCOL, r->why);
	}
	if (o->json) {
		fputs("{\"username\":", stdout);
		tkmctl_put_json_str_n(stdout, user, un);
		fputs(",\"one_time_password\":", stdout);
		tkmctl_put_json_str_n(stdout, otp, pn);
		fputs("}\n", stdout);
		return TKMCTL_EXIT_OK;
	}
	fputs(pre, stdout);
	tkmctl_put_text_n(stdout, user, un);
	fputs(post, stdout);
	fputs("\n    ", stdout);
	tkmctl_put_text_n(stdout, otp, pn);
	fputs("\n\nHand it to ", stdout);
	tkmctl_put_text_n(stdout, user, un);
	fputs(" in person or over a trusted channel: it is shown once and never\n"
	      "again (tkmd keeps only its hash), and it must be changed at the first login\n"
	      "(tkmctl login ",
	      stdout);
	tkmctl_put_text_n(stdout, user, un);
	fputs(").\n", stdout);
	return TKMCTL_EXIT_OK;
}

static int cmd_operator_create(const tkmctl_opts *o, int argc, char **argv)
{
	const char *roles[ROLES_MAX];
	const char *user = NULL;
	size_t nroles = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;

		if ((v = tkmctl_opt_value(argc, argv, &i, "--role", &missing)) != NULL) {
			if (v[0] == '\0' || nroles == ROLES_MAX) {
				return tkmctl_usage_error(
				    "--role needs a role name (at most 64 roles)", NULL);
			}
			roles[nroles++] = v;
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else if (a[0] != '-' && user == NULL) {
			user = a;
		} else {
			return unknown_arg("operator create", a, false);
		}
	}
	if (user == NULL || user[0] == '\0' || nroles == 0) {
		return tkmctl_usage_error(
		    "operator create needs USERNAME and at least one --role ROLE", NULL);
	}
	if ((rc = tkmctl_params_new(o, PARAMS_MAX, &w)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "roles");
	tkm_cbor_put_array(w, nroles);
	for (size_t i = 0; i < nroles; i++) {
		tkm_cbor_put_cstr(w, roles[i]);
	}
	tkm_cbor_put_cstr(w, "username");
	tkm_cbor_put_cstr(w, user);
	if ((rc = tkmctl_params_check(o, w)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_call_cmd(o, 0, "operator.create", w, &r, &done)) != TKMCTL_EXIT_OK ||
	    done) {
		goto out;
	}
	rc = print_otp(o, &r, r.root, "operator ", " created; its one-time password:\n");
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

/* {"username": user} plus, with has_bool, {bool_key: bool_val}; an exit status. */
static int username_params(const tkmctl_opts *o, const char *user, const char *bool_key,
                           bool bool_val, tkm_cbor_w **w)
{
	int rc = tkmctl_params_new(o, PARAMS_MAX, w);

	if (rc != TKMCTL_EXIT_OK) {
		return rc;
	}
	/* Deterministic key order: both keys are 8 bytes, "disabled" < "username". */
	tkm_cbor_put_map(*w, bool_key != NULL ? 2 : 1);
	if (bool_key != NULL) {
		tkm_cbor_put_cstr(*w, bool_key);
		tkm_cbor_put_bool(*w, bool_val);
	}
	tkm_cbor_put_cstr(*w, "username");
	tkm_cbor_put_cstr(*w, user);
	return tkmctl_params_check(o, *w);
}

/* The one USERNAME argument of a subcommand; an exit status. */
static int one_username(const char *cmd, int argc, char **argv, const char **user)
{
	char what[96];

	if (argc != 1 || argv[0][0] == '\0' || argv[0][0] == '-') {
		if (argc > 1) {
			return unknown_arg(cmd, argv[1], false);
		}
		tkm_why_set(what, sizeof(what), "%s needs one USERNAME", cmd);
		return tkmctl_usage_error(what, argc == 1 ? argv[0] : NULL);
	}
	*user = argv[0];
	return TKMCTL_EXIT_OK;
}

static int cmd_operator_reset(const tkmctl_opts *o, int argc, char **argv)
{
	const char *user = NULL;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = one_username("operator reset-password", argc, argv, &user)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = username_params(o, user, NULL, false, &w)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_call_cmd(o, 0, "operator.reset_password", w, &r, &done)) !=
	        TKMCTL_EXIT_OK ||
	    done) {
		goto out;
	}
	rc = print_otp(o, &r, r.root, "operator ", ": password reset; the one-time password:\n");
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

/* unlock, disable, enable: method {"username"[, "disabled"]} -> {}. */
static int operator_simple(const tkmctl_opts *o, int argc, char **argv, const char *cmd,
                           const char *method, const char *bool_key, bool bool_val,
                           const char *state)
{
	const char *user = NULL;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = one_username(cmd, argc, argv, &user)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = username_params(o, user, bool_key, bool_val, &w)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_call_cmd(o, 0, method, w, &r, &done)) != TKMCTL_EXIT_OK || done) {
		goto out;
	}
	if (o->json) {
		fputs("{\"username\":", stdout);
		tkmctl_put_json_str(stdout, user);
		printf(",\"state\":\"%s\"}\n", state);
	} else {
		fputs("operator ", stdout);
		tkmctl_put_text(stdout, user);
		printf(" %s\n", state);
	}
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

static int cmd_operator_unlock(const tkmctl_opts *o, int argc, char **argv)
{
	return operator_simple(o, argc, argv, "operator unlock", "operator.unlock", NULL, false,
	                       "unlocked");
}

static int cmd_operator_disable(const tkmctl_opts *o, int argc, char **argv)
{
	return operator_simple(o, argc, argv, "operator disable", "operator.disable", "disabled",
	                       true, "disabled");
}

static int cmd_operator_enable(const tkmctl_opts *o, int argc, char **argv)
{
	return operator_simple(o, argc, argv, "operator enable", "operator.disable", "disabled",
	                       false, "enabled");
}

/* One operator of operator.show or operator.list, checked. */
typedef struct op_item {
	const char *user;
	size_t user_n;
	role_item roles[ROLES_MAX];
	size_t nroles;
	bool locked, disabled;
	uint64_t failed, created_ms, pw_changed_ms;
} op_item;

static bool parse_operator(tkmctl_reply *r, const tkm_cbor_val *v, op_item *op)
{
	if (!tkm_cbor_is(v, TKM_CBOR_MAP)) {
		return tkmctl_reply_bad(r, "an operator is not a map");
	}
	return tkmctl_get_text(r, v, "username", false, USERNAME_MAX, &op->user, &op->user_n) &&
	       get_roles(r, v, op->roles, &op->nroles) &&
	       tkmctl_get_bool(r, v, "locked", &op->locked) &&
	       tkmctl_get_bool(r, v, "disabled", &op->disabled) &&
	       tkmctl_get_uint(r, v, "failed_logins", &op->failed) &&
	       tkmctl_get_uint(r, v, "created_ms", &op->created_ms) &&
	       tkmctl_get_uint(r, v, "password_changed_ms", &op->pw_changed_ms);
}

static const char *op_state(const op_item *op)
{
	if (op->disabled && op->locked) {
		return "disabled,locked";
	}
	return op->disabled ? "disabled" : op->locked ? "locked" : "active";
}

static void print_operator_json(FILE *f, const op_item *op)
{
	fputs("{\"username\":", f);
	tkmctl_put_json_str_n(f, op->user, op->user_n);
	fputs(",\"roles\":", f);
	put_roles_json(f, op->roles, op->nroles);
	fprintf(
	    f,
	    ",\"disabled\":%s,\"locked\":%s,\"failed_logins\":%llu,\"password_changed_ms\":%llu,"
	    "\"created_ms\":%llu}",
	    op->disabled ? "true" : "false", op->locked ? "true" : "false",
	    (unsigned long long)op->failed, (unsigned long long)op->pw_changed_ms,
	    (unsigned long long)op->created_ms);
}

static void print_operator_line(FILE *f, const op_item *op)
{
	char changed[64], created[64];

	format_ms(op->pw_changed_ms, changed, sizeof(changed));
	format_ms(op->created_ms, created, sizeof(created));
	tkmctl_put_text_n(f, op->user, op->user_n);
	for (size_t i = op->user_n; i < 16; i++) {
		fputc(' ', f);
	}
	fprintf(f, "  %-15s  %6llu  %-20s  %-20s  ", op_state(op), (unsigned long long)op->failed,
	        changed, created);
	put_roles_text(f, op->roles, op->nroles);
	fputc('\n', f);
}

static int cmd_operator_show(const tkmctl_opts *o, int argc, char **argv)
{
	const char *user = NULL;
	char t[64];
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	op_item op;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = one_username("operator show", argc, argv, &user)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = username_params(o, user, NULL, false, &w)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_call_cmd(o, 0, "operator.show", w, &r, &done)) != TKMCTL_EXIT_OK || done) {
		goto out;
	}
	if (!parse_operator(&r, r.root, &op)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (o->json) {
		print_operator_json(stdout, &op);
		fputc('\n', stdout);
		goto out;
	}
	put_row(stdout, "username", op.user, op.user_n);
	printf("%-21s ", "roles");
	put_roles_text(stdout, op.roles, op.nroles);
	printf("\n%-21s %s\n%-21s %llu\n", "state", op_state(&op), "failed logins",
	       (unsigned long long)op.failed);
	format_ms(op.pw_changed_ms, t, sizeof(t));
	printf("%-21s %s\n", "password changed", t);
	format_ms(op.created_ms, t, sizeof(t));
	printf("%-21s %s\n", "created", t);
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

/*
 * One operator.list page after `after` (""), at most limit: checked (names
 * rise after the cursor, "next" is the last name) and printed to f. *next is
 * the cursor for the following page, "" when there is none.
 */
static int list_operators_page(const tkmctl_opts *o, tkm_client *c, const char *after,
                               uint64_t limit, FILE *f, bool *first, uint64_t *count,
                               char next[static USERNAME_MAX + 1])
{
	char prev[USERNAME_MAX + 1];
	const tkm_cbor_val *ops, *nx;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	op_item op;
	const char *s;
	size_t n;
	tkm_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	next[0] = '\0';
	if ((rc = tkmctl_params_new(o, PARAMS_MAX, &w)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	tkm_cbor_put_map(w, after[0] != '\0' ? 2 : 1);
	tkm_cbor_put_cstr(w, "limit");
	tkm_cbor_put_uint(w, limit);
	if (after[0] != '\0') {
		tkm_cbor_put_cstr(w, "after");
		tkm_cbor_put_cstr(w, after);
	}
	if ((rc = tkmctl_params_check(o, w)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if ((err = tkmctl_call(c, o, "operator.list", w, &r)) != TKM_OK) {
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	if (r.pending) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, "operator.list: a pending reply to a listing");
		goto out;
	}
	ops = tkm_cbor_map_get(r.root, "operators");
	nx = tkm_cbor_map_get(r.root, "next");
	if (!tkm_cbor_is(ops, TKM_CBOR_ARRAY) || tkm_cbor_count(ops) > limit) {
		tkmctl_reply_bad(&r,
		                 "'operators' is missing, not an array, or longer than the limit");
	} else if (tkm_cbor_is(nx, TKM_CBOR_NULL)) {
		next[0] = '\0';
	} else if (tkmctl_get_text(&r, r.root, "next", false, USERNAME_MAX, &s, &n)) {
		memcpy(next, s, n);
		next[n] = '\0';
	}
	/* Check the whole page before printing any of it. */
	memcpy(prev, after, strlen(after) + 1);
	for (const tkm_cbor_val *v = tkm_cbor_first(ops); v != NULL && !r.bad;
	     v = tkm_cbor_next(v)) {
		if (parse_operator(&r, v, &op)) {
			char name[USERNAME_MAX + 1];

			memcpy(name, op.user, op.user_n);
			name[op.user_n] = '\0';
			if (strcmp(name, prev) <= 0) {
				tkmctl_reply_bad(
				    &r, "operators are not in rising order after the cursor");
			}
			memcpy(prev, name, sizeof(prev));
		}
	}
	if (!r.bad && next[0] != '\0' && (tkm_cbor_count(ops) == 0 || strcmp(next, prev) != 0)) {
		tkmctl_reply_bad(&r, "'next' is not the last username of the page");
	}
	if (r.bad) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	for (const tkm_cbor_val *v = tkm_cbor_first(ops); v != NULL; v = tkm_cbor_next(v)) {
		(void)parse_operator(&r, v, &op);
		if (o->json) {
			if (!*first) {
				fputc(',', f);
			}
			print_operator_json(f, &op);
		} else {
			print_operator_line(f, &op);
		}
		*first = false;
		(*count)++;
	}
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

static int cmd_operator_list(const tkmctl_opts *o, int argc, char **argv)
{
	char after[USERNAME_MAX + 1] = "", next[USERNAME_MAX + 1] = "";
	uint64_t limit = UINT64_MAX, count = 0;
	bool have_limit = false, first = true;
	tkm_client *c = NULL;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = NULL;
	int rc;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;

		if ((v = tkmctl_opt_value(argc, argv, &i, "--after", &missing)) != NULL) {
			if (v[0] == '\0' || strlen(v) > USERNAME_MAX) {
				return tkmctl_usage_error("--after needs a username", NULL);
			}
			memcpy(after, v, strlen(v) + 1);
		} else if ((v = tkmctl_opt_value(argc, argv, &i, "--limit", &missing)) != NULL) {
			if (have_limit || !tkmctl_parse_uint(1, v, UINT32_MAX, &limit)) {
				return tkmctl_usage_error(
				    "--limit needs a number of operators, once", v);
			}
			have_limit = true;
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else {
			return unknown_arg("operator list", a, false);
		}
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
		fputs("{\"operators\":[", f);
	} else {
		fprintf(f, "%-16s  %-15s  %6s  %-20s  %-20s  %s\n", "USERNAME", "STATE", "FAILED",
		        "PASSWORD CHANGED", "CREATED", "ROLES");
	}
	do {
		uint64_t want =
		    limit - count < OPERATOR_PAGE_MAX ? limit - count : OPERATOR_PAGE_MAX;

		if ((rc = list_operators_page(o, c, after, want, f, &first, &count, next)) !=
		    TKMCTL_EXIT_OK) {
			goto out;
		}
		memcpy(after, next, sizeof(after));
	} while (next[0] != '\0' && count < limit);
	if (o->json) {
		fputs("],\"next\":", f);
		if (next[0] != '\0') {
			tkmctl_put_json_str(f, next);
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
	if (next[0] != '\0' && !o->json) {
		fputs("tkmctl: more operators follow: tkmctl operator list --after ", stderr);
		tkmctl_put_text(stderr, next);
		fputc('\n', stderr);
	}
out:
	if (f != NULL) {
		(void)fclose(f);
	}
	free(buf);
	tkm_client_close(c);
	return rc;
}

/* ---- role ---- */

/* "operator:NAME" or "device:NAME"; a plain NAME is an operator. An exit status. */
static int principal_arg(const char *a, char *buf, size_t len)
{
	int n;

	if (a[0] == '\0' || a[0] == '-') {
		return tkmctl_usage_error("PRINCIPAL is operator:NAME, device:NAME or NAME", a);
	}
	n = snprintf(buf, len, "%s%s", strchr(a, ':') != NULL ? "" : "operator:", a);
	if (n < 0 || (size_t)n >= len) {
		return tkmctl_usage_error("PRINCIPAL is too long", NULL);
	}
	return TKMCTL_EXIT_OK;
}

static int role_change(const tkmctl_opts *o, int argc, char **argv, bool assign)
{
	const char *cmd = assign ? "role assign" : "role revoke";
	char principal[PRINCIPAL_MAX + 16];
	const char *role = NULL, *scope = NULL, *pos[2];
	int npos = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;

		if (assign && (v = tkmctl_opt_value(argc, argv, &i, "--scope", &missing)) != NULL) {
			if (scope != NULL || v[0] == '\0') {
				return tkmctl_usage_error("--scope needs a value, once", NULL);
			}
			scope = v;
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else if (a[0] != '-' && npos < 2) {
			pos[npos++] = a;
		} else {
			return unknown_arg(cmd, a, false);
		}
	}
	if (npos != 2 || pos[1][0] == '\0') {
		return tkmctl_usage_error(assign ? "role assign needs PRINCIPAL and ROLE"
		                                 : "role revoke needs PRINCIPAL and ROLE",
		                          NULL);
	}
	if ((rc = principal_arg(pos[0], principal, sizeof(principal))) != TKMCTL_EXIT_OK) {
		return rc;
	}
	role = pos[1];
	if ((rc = tkmctl_params_new(o, PARAMS_MAX, &w)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	/* Deterministic key order: "role", "scope", "principal" (shorter keys first). */
	tkm_cbor_put_map(w, scope != NULL ? 3 : 2);
	tkm_cbor_put_cstr(w, "role");
	tkm_cbor_put_cstr(w, role);
	if (scope != NULL) {
		tkm_cbor_put_cstr(w, "scope");
		tkm_cbor_put_cstr(w, scope);
	}
	tkm_cbor_put_cstr(w, "principal");
	tkm_cbor_put_cstr(w, principal);
	if ((rc = tkmctl_params_check(o, w)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_call_cmd(o, 0, assign ? "role.assign" : "role.revoke", w, &r, &done)) !=
	        TKMCTL_EXIT_OK ||
	    done) {
		goto out;
	}
	if (o->json) {
		fputs("{\"principal\":", stdout);
		tkmctl_put_json_str(stdout, principal);
		fputs(",\"role\":", stdout);
		tkmctl_put_json_str(stdout, role);
		if (scope != NULL) {
			fputs(",\"scope\":", stdout);
			tkmctl_put_json_str(stdout, scope);
		}
		printf(",\"%s\":true}\n", assign ? "assigned" : "revoked");
	} else {
		fputs("role ", stdout);
		tkmctl_put_text(stdout, role);
		fputs(assign ? " assigned to " : " revoked from ", stdout);
		tkmctl_put_text(stdout, principal);
		if (scope != NULL) {
			fputs(" [scope ", stdout);
			tkmctl_put_text(stdout, scope);
			fputc(']', stdout);
		}
		fputc('\n', stdout);
	}
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

static int cmd_role_assign(const tkmctl_opts *o, int argc, char **argv)
{
	return role_change(o, argc, argv, true);
}

static int cmd_role_revoke(const tkmctl_opts *o, int argc, char **argv)
{
	return role_change(o, argc, argv, false);
}

/* ---- policy ---- */

/* A policy text: the file's bytes, or the server's. */
typedef struct policy_text {
	char *text; /* malloc'd, NUL-terminated */
	size_t len;
	tkm_policy *p;
} policy_text;

static void policy_text_free(policy_text *pt)
{
	free(pt->text);
	tkm_policy_free(pt->p);
	pt->text = NULL;
	pt->p = NULL;
}

/* Show line `line` of text on stderr, for a parse error. */
static void show_line(const char *text, size_t len, unsigned long line)
{
	const char *p = text, *end = text + len, *nl;

	for (unsigned long i = 1; i < line && p < end; i++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		p = nl != NULL ? nl + 1 : end;
	}
	if (p >= end) {
		return;
	}
	nl = memchr(p, '\n', (size_t)(end - p));
	fprintf(stderr, "  %lu | ", line);
	tkmctl_put_text_n(stderr, p, nl != NULL ? (size_t)(nl - p) : (size_t)(end - p));
	fputc('\n', stderr);
}

/*
 * Read and parse the policy file at path. A file that cannot be read or does
 * not parse is a usage error (exit 2), with the line shown. An exit status.
 */
static int policy_file(const tkmctl_opts *o, const char *path, policy_text *pt)
{
	char why[256], msg[TKMCTL_PATH_MAX + 300];
	FILE *f = NULL;
	size_t n = 0;
	tkm_err err;
	int rc = TKMCTL_EXIT_USAGE;

	memset(pt, 0, sizeof(*pt));
	if ((f = fopen(path, "r")) == NULL) {
		tkm_why_set(msg, sizeof(msg), "cannot open %s: %s", path, strerror(errno));
		return tkmctl_fail(o, TKM_E_CONFIG, msg);
	}
	if ((pt->text = malloc(TKM_POLICY_TEXT_MAX + 2)) == NULL) {
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	n = fread(pt->text, 1, TKM_POLICY_TEXT_MAX + 1, f);
	if (ferror(f)) {
		tkm_why_set(msg, sizeof(msg), "cannot read %s", path);
		rc = tkmctl_fail(o, TKM_E_CONFIG, msg);
		goto out;
	}
	if (n > TKM_POLICY_TEXT_MAX) {
		tkm_why_set(msg, sizeof(msg), "%s: a policy is at most %d bytes", path,
		            TKM_POLICY_TEXT_MAX);
		rc = tkmctl_fail(o, TKM_E_CONFIG, msg);
		goto out;
	}
	pt->text[n] = '\0';
	pt->len = n;
	if (memchr(pt->text, '\0', n) != NULL) {
		tkm_why_set(msg, sizeof(msg),
		            "%s: a policy is text, and this file holds a NUL byte", path);
		rc = tkmctl_fail(o, TKM_E_CONFIG, msg);
		goto out;
	}
	if ((err = tkm_policy_parse(pt->text, n, &pt->p, why, sizeof(why))) != TKM_OK) {
		unsigned long line = 0;

		tkm_why_set(msg, sizeof(msg), "%s: %s", path, why);
		rc = tkmctl_fail(o, err, msg);
		if (strncmp(why, "line ", 5) == 0) {
			line = strtoul(why + 5, NULL, 10);
		}
		if (line > 0) {
			show_line(pt->text, n, line);
		}
		goto out;
	}
	rc = TKMCTL_EXIT_OK;
out:
	if (rc != TKMCTL_EXIT_OK) {
		policy_text_free(pt);
	}
	fclose(f);
	return rc;
}

/* policy.show on c: the version and the parsed text in effect. An exit status. */
static int policy_current(const tkmctl_opts *o, tkm_client *c, uint64_t *version, policy_text *pt)
{
	char why[256];
	tkmctl_reply r;
	const char *s;
	size_t n;
	tkm_err err;
	int rc = TKMCTL_EXIT_OK;

	memset(pt, 0, sizeof(*pt));
	if ((err = tkmctl_call(c, o, "policy.show", NULL, &r)) != TKM_OK) {
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	if (r.pending) {
		rc = tkmctl_pending(o, &r);
		rc = rc == TKMCTL_EXIT_OK ? TKMCTL_EXIT_SERVER : rc;
		goto out;
	}
	if (!tkmctl_get_uint(&r, r.root, "version", version) ||
	    !tkmctl_get_text(&r, r.root, "text", false, TKM_POLICY_TEXT_MAX, &s, &n)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if ((pt->text = malloc(n + 1)) == NULL) {
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	memcpy(pt->text, s, n);
	pt->text[n] = '\0';
	pt->len = n;
	if ((err = tkm_policy_parse(pt->text, n, &pt->p, why, sizeof(why))) != TKM_OK) {
		tkmctl_reply_bad(&r, why);
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
out:
	if (rc != TKMCTL_EXIT_OK) {
		policy_text_free(pt);
	}
	tkmctl_reply_free(&r);
	return rc;
}

static int cmd_policy_show(const tkmctl_opts *o, int argc, char **argv)
{
	tkm_client *c = NULL;
	policy_text pt;
	uint64_t version = 0;
	int rc;

	memset(&pt, 0, sizeof(pt));
	if (argc > 0) {
		return unknown_arg("policy show", argv[0], false);
	}
	if ((rc = tkmctl_connect(o, POLICY_REPLY_MAX, &c)) != TKMCTL_EXIT_OK ||
	    (rc = policy_current(o, c, &version, &pt)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if (o->json) {
		printf("{\"version\":%llu,\"text\":", (unsigned long long)version);
		tkmctl_put_json_str_n(stdout, pt.text, pt.len);
		fputs("}\n", stdout);
	} else {
		tkmctl_put_text_lines_n(stdout, pt.text, pt.len);
		if (pt.len > 0 && pt.text[pt.len - 1] != '\n') {
			fputc('\n', stdout);
		}
		fprintf(stderr, "policy version %llu\n", (unsigned long long)version);
	}
out:
	policy_text_free(&pt);
	tkm_client_close(c);
	return rc;
}

/* The one FILE argument of policy diff and apply; an exit status. */
static int one_file(const char *cmd, int argc, char **argv, const char **file)
{
	char what[64];

	if (argc != 1 || argv[0][0] == '\0') {
		if (argc > 1) {
			return unknown_arg(cmd, argv[1], false);
		}
		tkm_why_set(what, sizeof(what), "%s needs one FILE", cmd);
		return tkmctl_usage_error(what, NULL);
	}
	*file = argv[0];
	return TKMCTL_EXIT_OK;
}

/* Fetch the policy in effect and diff FILE against it. An exit status. */
static int policy_compare(const tkmctl_opts *o, tkm_client *c, const policy_text *file,
                          uint64_t *version, char **diff, size_t *nchanges)
{
	policy_text cur;
	tkm_err err;
	int rc;

	*diff = NULL;
	*nchanges = 0;
	if ((rc = policy_current(o, c, version, &cur)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((err = tkm_policy_diff(cur.p, file->p, diff, nchanges)) != TKM_OK) {
		rc = tkmctl_fail(o, err, "cannot compare the policies");
	}
	policy_text_free(&cur);
	return rc;
}

static int cmd_policy_diff(const tkmctl_opts *o, int argc, char **argv)
{
	const char *path = NULL;
	tkm_client *c = NULL;
	policy_text file;
	char *diff = NULL;
	size_t nchanges = 0;
	uint64_t version = 0;
	int rc;

	memset(&file, 0, sizeof(file));
	if ((rc = one_file("policy diff", argc, argv, &path)) != TKMCTL_EXIT_OK ||
	    (rc = policy_file(o, path, &file)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = tkmctl_connect(o, POLICY_REPLY_MAX, &c)) != TKMCTL_EXIT_OK ||
	    (rc = policy_compare(o, c, &file, &version, &diff, &nchanges)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if (o->json) {
		printf("{\"version\":%llu,\"file\":", (unsigned long long)version);
		tkmctl_put_json_str(stdout, path);
		printf(",\"equal\":%s,\"changes\":%zu,\"diff\":", nchanges == 0 ? "true" : "false",
		       nchanges);
		tkmctl_put_json_str(stdout, diff);
		fputs("}\n", stdout);
	} else {
		tkmctl_put_text_lines_n(stdout, diff, strlen(diff));
		if (nchanges == 0) {
			tkmctl_put_text(stderr, path);
			fprintf(stderr, " is the same as policy version %llu\n",
			        (unsigned long long)version);
		} else {
			fprintf(stderr, "%zu change%s from policy version %llu to ", nchanges,
			        nchanges == 1 ? "" : "s", (unsigned long long)version);
			tkmctl_put_text(stderr, path);
			fputc('\n', stderr);
		}
	}
	rc = nchanges == 0 ? TKMCTL_EXIT_OK : TKMCTL_EXIT_SERVER;
out:
	free(diff);
	policy_text_free(&file);
	tkm_client_close(c);
	return rc;
}

/* The result of policy.apply, directly or through an approval: {"version", "changes"}. */
static int print_policy_applied(const tkmctl_opts *o, tkmctl_reply *r, const tkm_cbor_val *map)
{
	uint64_t version = 0;
	const char *changes;
	size_t n;

	if (!tkmctl_get_uint(r, map, "version", &version) ||
	    !tkmctl_get_text(r, map, "changes", true, TKM_POLICY_TEXT_MAX, &changes, &n)) {
		return tkmctl_fail(o, TKM_E_PROTOCOL, r->why);
	}
	if (o->json) {
		printf("{\"version\":%llu,\"changes\":", (unsigned long long)version);
		tkmctl_put_json_str_n(stdout, changes, n);
		fputs("}\n", stdout);
	} else {
		printf("policy version %llu is in effect\n", (unsigned long long)version);
	}
	return TKMCTL_EXIT_OK;
}

static int cmd_policy_apply(const tkmctl_opts *o, int argc, char **argv)
{
	const char *path = NULL;
	tkm_client *c = NULL;
	tkm_cbor_w *w = NULL;
	policy_text file;
	tkmctl_reply r;
	char *diff = NULL;
	size_t nchanges = 0;
	uint64_t version = 0;
	tkm_err err;
	int rc;

	memset(&file, 0, sizeof(file));
	memset(&r, 0, sizeof(r));
	if ((rc = one_file("policy apply", argc, argv, &path)) != TKMCTL_EXIT_OK ||
	    (rc = policy_file(o, path, &file)) != TKMCTL_EXIT_OK) {
		return rc;
	}
	if ((rc = tkmctl_connect(o, POLICY_REPLY_MAX, &c)) != TKMCTL_EXIT_OK ||
	    (rc = policy_compare(o, c, &file, &version, &diff, &nchanges)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if (nchanges == 0) {
		if (o->json) {
			printf("{\"version\":%llu,\"equal\":true}\n", (unsigned long long)version);
		} else {
			tkmctl_put_text(stdout, path);
			printf(" is the same as policy version %llu: nothing to apply\n",
			       (unsigned long long)version);
		}
		goto out;
	}
	if (!o->json) {
		printf("proposing %zu change%s to policy version %llu:\n", nchanges,
		       nchanges == 1 ? "" : "s", (unsigned long long)version);
		tkmctl_put_text_lines_n(stdout, diff, strlen(diff));
		(void)fflush(stdout);
	}
	if ((rc = tkmctl_params_new(o, TKM_POLICY_TEXT_MAX + 1024, &w)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	/* Deterministic key order: "text" (4 bytes) before "base_version" (12). */
	tkm_cbor_put_map(w, 2);
	tkm_cbor_put_cstr(w, "text");
	tkm_cbor_put_text(w, file.text, file.len);
	tkm_cbor_put_cstr(w, "base_version");
	tkm_cbor_put_uint(w, version);
	if ((rc = tkmctl_params_check(o, w)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	if ((err = tkmctl_call(c, o, "policy.apply", w, &r)) != TKM_OK) {
		rc = tkmctl_fail(o, err, r.why);
		goto out;
	}
	rc = r.pending ? tkmctl_pending(o, &r) : print_policy_applied(o, &r, r.root);
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	free(diff);
	policy_text_free(&file);
	tkm_client_close(c);
	return rc;
}

/* ---- approvals ---- */

/* A request id argument; an exit status. */
static int id_arg(const char *cmd, int argc, char **argv, uint64_t *id)
{
	char what[80];

	if (argc != 1 || !tkmctl_parse_uint(1, argv[0], ID_MAX, id)) {
		if (argc > 1) {
			return unknown_arg(cmd, argv[1], false);
		}
		tkm_why_set(what, sizeof(what), "%s needs one request ID (a number)", cmd);
		return tkmctl_usage_error(what, argc == 1 ? argv[0] : NULL);
	}
	return TKMCTL_EXIT_OK;
}

/* One request of approval.list, checked. */
typedef struct approval_item {
	uint64_t id, created_ms, expires_ms;
	const char *state, *method, *initiator, *decided_by; /* decided_by NULL: null */
	size_t state_n, method_n, initiator_n, decided_by_n;
	const tkm_cbor_val *params;
} approval_item;

static bool parse_approval(tkmctl_reply *r, const tkm_cbor_val *v, approval_item *a)
{
	const tkm_cbor_val *d;

	if (!tkm_cbor_is(v, TKM_CBOR_MAP)) {
		return tkmctl_reply_bad(r, "a request is not a map");
	}
	if (!tkmctl_get_uint(r, v, "id", &a->id) ||
	    !tkmctl_get_text(r, v, "state", false, STATE_MAX, &a->state, &a->state_n) ||
	    !tkmctl_get_text(r, v, "method", false, METHOD_MAX, &a->method, &a->method_n) ||
	    !tkmctl_get_text(r, v, "initiator", false, PRINCIPAL_MAX, &a->initiator,
	                     &a->initiator_n) ||
	    !tkmctl_get_uint(r, v, "created_ms", &a->created_ms) ||
	    !tkmctl_get_uint(r, v, "expires_ms", &a->expires_ms)) {
		return false;
	}
	a->params = tkm_cbor_map_get(v, "params");
	if (!tkm_cbor_is(a->params, TKM_CBOR_MAP)) {
		return tkmctl_reply_bad(r, "a request's 'params' is missing or not a map");
	}
	d = tkm_cbor_map_get(v, "decided_by");
	a->decided_by = NULL;
	a->decided_by_n = 0;
	if (tkm_cbor_is(d, TKM_CBOR_NULL)) {
		return true;
	}
	return tkmctl_get_text(r, v, "decided_by", false, PRINCIPAL_MAX, &a->decided_by,
	                       &a->decided_by_n);
}

static void print_approval_json(FILE *f, const approval_item *a, bool first)
{
	char t[64];

	fprintf(f, "%s{\"id\":%llu,\"state\":", first ? "" : ",", (unsigned long long)a->id);
	tkmctl_put_json_str_n(f, a->state, a->state_n);
	fputs(",\"method\":", f);
	tkmctl_put_json_str_n(f, a->method, a->method_n);
	fputs(",\"initiator\":", f);
	tkmctl_put_json_str_n(f, a->initiator, a->initiator_n);
	format_ms(a->created_ms, t, sizeof(t));
	fprintf(f, ",\"created_ms\":%llu,\"created\":\"%s\"", (unsigned long long)a->created_ms, t);
	format_ms(a->expires_ms, t, sizeof(t));
	fprintf(f, ",\"expires_ms\":%llu,\"expires\":\"%s\",\"decided_by\":",
	        (unsigned long long)a->expires_ms, t);
	if (a->decided_by != NULL) {
		tkmctl_put_json_str_n(f, a->decided_by, a->decided_by_n);
	} else {
		fputs("null", f);
	}
	fputs(",\"params\":", f);
	tkmctl_put_json_cbor(f, a->params);
	fputc('}', f);
}

static void print_approval_text(FILE *f, const approval_item *a)
{
	char created[64], expires[64];

	format_ms(a->created_ms, created, sizeof(created));
	format_ms(a->expires_ms, expires, sizeof(expires));
	fprintf(f, "%-6llu  ", (unsigned long long)a->id);
	tkmctl_put_text_n(f, a->state, a->state_n);
	for (size_t i = a->state_n; i < 8; i++) {
		fputc(' ', f);
	}
	fputs("  ", f);
	tkmctl_put_text_n(f, a->method, a->method_n);
	for (size_t i = a->method_n; i < 23; i++) {
		fputc(' ', f);
	}
	fputs("  ", f);
	tkmctl_put_text_n(f, a->initiator, a->initiator_n);
	for (size_t i = a->initiator_n; i < 20; i++) {
		fputc(' ', f);
	}
	fprintf(f, "  %-20s  %s\n        params: ", created, expires);
	/* JSON escapes every control character, so it is safe on a terminal too. */
	tkmctl_put_json_cbor(f, a->params);
	fputc('\n', f);
	if (a->decided_by != NULL) {
		fputs("        decided by ", f);
		tkmctl_put_text_n(f, a->decided_by, a->decided_by_n);
		fputc('\n', f);
	}
}

/*
 * One approval.list page after the id `after`, at most limit: checked (ids
 * rise after the cursor, "next" is the last id) and printed to f. *next is
 * the cursor of the following page, 0 when there is none.
 */
static tkm_err list_approvals_page(const tkmctl_opts *o, tkm_client *c, const char *state,
                                   uint64_t after, uint64_t limit, FILE *f, size_t *count,
                                   uint64_t *next, char *why, size_t why_len)
{
	bool has_next = false;
	const tkm_cbor_val *list, *nx;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	approval_item a;
	uint64_t prev = after;
	tkm_err err;

	*next = 0;
	memset(&r, 0, sizeof(r));
	if ((err = tkm_cbor_w_new(PARAMS_MAX, &w)) != TKM_OK) {
		return tkm_why_fail(why, why_len, err, "out of memory");
	}
	/* Deterministic key order: "after", "limit", "state" (5 bytes each). */
	tkm_cbor_put_map(w, state != NULL ? 3 : 2);
	tkm_cbor_put_cstr(w, "after");
	tkm_cbor_put_uint(w, after);
	tkm_cbor_put_cstr(w, "limit");
	tkm_cbor_put_uint(w, limit);
	if (state != NULL) {
		tkm_cbor_put_cstr(w, "state");
		tkm_cbor_put_cstr(w, state);
	}
	err = tkmctl_call(c, o, "approval.list", w, &r);
	tkm_cbor_w_free(w);
	if (err != TKM_OK) {
		tkm_why_set(why, why_len, "%s", r.why);
		return err;
	}
	list = tkm_cbor_map_get(r.root, "approvals");
	nx = tkm_cbor_map_get(r.root, "next");
	if (r.pending) {
		tkmctl_reply_bad(&r, "a pending reply to a listing");
	} else if (!tkm_cbor_is(list, TKM_CBOR_ARRAY) || tkm_cbor_count(list) > limit) {
		tkmctl_reply_bad(&r,
		                 "'approvals' is missing, not an array, or longer than the limit");
	} else if (!tkm_cbor_is(nx, TKM_CBOR_NULL)) {
		has_next = tkmctl_get_uint(&r, r.root, "next", next);
	}
	for (const tkm_cbor_val *v = tkm_cbor_first(list); v != NULL && !r.bad;
	     v = tkm_cbor_next(v)) {
		if (parse_approval(&r, v, &a)) {
			if (a.id <= prev || a.id > ID_MAX) {
				tkmctl_reply_bad(
				    &r, "requests are not in rising id order after the cursor");
			}
			prev = a.id;
		}
	}
	if (!r.bad && has_next && (tkm_cbor_count(list) == 0 || *next != prev)) {
		tkmctl_reply_bad(&r, "'next' is not the id of the page's last request");
	}
	if (r.bad) {
		tkm_why_set(why, why_len, "%s", r.why);
		tkmctl_reply_free(&r);
		return TKM_E_PROTOCOL;
	}
	for (const tkm_cbor_val *v = tkm_cbor_first(list); v != NULL; v = tkm_cbor_next(v)) {
		(void)parse_approval(&r, v, &a);
		if (o->json) {
			print_approval_json(f, &a, *count == 0);
		} else {
			print_approval_text(f, &a);
		}
		(*count)++;
	}
	tkmctl_reply_free(&r);
	return TKM_OK;
}

static int cmd_approvals_list(const tkmctl_opts *o, int argc, char **argv)
{
	const char *state = "pending";
	bool all = false, have_state = false;
	uint64_t after = 0, next = 0, limit = APPROVAL_PAGE_MAX;
	tkm_client *c = NULL;
	char why[256] = "";
	char *buf = NULL;
	size_t blen = 0, count = 0;
	FILE *f = NULL;
	tkm_err err;
	int rc;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v;
		bool missing = false;

		if (strcmp(a, "--all") == 0) {
			all = true;
		} else if ((v = tkmctl_opt_value(argc, argv, &i, "--state", &missing)) != NULL) {
			if (have_state || v[0] == '\0' || strlen(v) > STATE_MAX) {
				return tkmctl_usage_error("--state needs a state, once", NULL);
			}
			state = v;
			have_state = true;
		} else if (missing) {
			return tkmctl_usage_error("option needs a value", a);
		} else {
			return unknown_arg("approvals list", a, false);
		}
	}
	if (all && have_state) {
		return tkmctl_usage_error("give --state STATE or --all, not both", NULL);
	}
	if (all) {
		state = NULL;
	}
	if ((rc = tkmctl_connect(o, APPROVAL_REPLY_MAX, &c)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	/* The listing goes out only once every page has come and passed its checks. */
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	if (o->json) {
		fputs("{\"approvals\":[", f);
	} else {
		fprintf(f, "%-6s  %-8s  %-23s  %-20s  %-20s  %s\n", "ID", "STATE", "METHOD",
		        "INITIATOR", "CREATED", "EXPIRES");
	}
	do {
		/* A page too large for tkmd's message limit is asked for again, halved. */
		while ((err = list_approvals_page(o, c, state, after, limit, f, &count, &next, why,
		                                  sizeof(why))) == TKM_E_RESOURCE_EXHAUSTED &&
		       limit > 1) {
			limit /= 2;
		}
		if (err != TKM_OK) {
			rc = tkmctl_fail(o, err, why);
			goto out;
		}
		after = next;
	} while (next != 0);
	if (o->json) {
		fputs("]}\n", f);
	} else if (count == 0) {
		fprintf(f, "(no %s%srequests)\n", state != NULL ? state : "",
		        state != NULL ? " " : "");
	}
	if (fclose(f) != 0) {
		f = NULL;
		rc = tkmctl_fail(o, TKM_E_NOMEM, NULL);
		goto out;
	}
	f = NULL;
	if (!o->json && count == 0) {
		/* Only the header and the "(no ...)" line: the header is noise then. */
		const char *nl = memchr(buf, '\n', blen);

		if (nl != NULL) {
			fputs(nl + 1, stdout);
		}
	} else {
		fwrite(buf, 1, blen, stdout);
	}
out:
	if (f != NULL) {
		(void)fclose(f);
	}
	free(buf);
	tkm_client_close(c);
	return rc;
}

static int cmd_approvals_approve(const tkmctl_opts *o, int argc, char **argv)
{
	const tkm_cbor_val *result, *error;
	const char *state, *code = NULL, *msg = NULL;
	size_t sn, cn = 0, mn = 0;
	uint64_t id = 0, rid = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false, executed;
	char head[64];
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = id_arg("approvals approve", argc, argv, &id)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_params_new(o, PARAMS_MAX, &w)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	if ((rc = tkmctl_call_cmd(o, POLICY_REPLY_MAX, "approval.approve", w, &r, &done)) !=
	        TKMCTL_EXIT_OK ||
	    done) {
		goto out;
	}
	if (!tkmctl_get_uint(&r, r.root, "id", &rid) ||
	    !tkmctl_get_text(&r, r.root, "state", false, STATE_MAX, &state, &sn)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	executed = sn == 8 && strncmp(state, "executed", 8) == 0;
	result = tkm_cbor_map_get(r.root, "result");
	error = tkm_cbor_map_get(r.root, "error");
	if (rid != id) {
		tkmctl_reply_bad(&r, "'id' is not the request approved");
	} else if (!executed && !(sn == 6 && strncmp(state, "failed", 6) == 0)) {
		tkmctl_reply_bad(&r, "'state' is neither executed nor failed");
	} else if (executed && (result == NULL || error != NULL)) {
		tkmctl_reply_bad(&r, "an executed request has a 'result' and no 'error'");
	} else if (!executed && (result != NULL || !tkm_cbor_is(error, TKM_CBOR_MAP))) {
		tkmctl_reply_bad(&r, "a failed request has an 'error' map and no 'result'");
	} else if (!executed) {
		(void)(tkmctl_get_text(&r, error, "code", false, METHOD_MAX, &code, &cn) &&
		       tkmctl_get_text(&r, error, "message", true, MESSAGE_MAX, &msg, &mn));
	}
	if (r.bad) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (!executed) {
		if (o->json) {
			printf("{\"id\":%llu,\"state\":\"failed\",\"error\":{\"code\":",
			       (unsigned long long)id);
			tkmctl_put_json_str_n(stdout, code, cn);
			fputs(",\"message\":", stdout);
			tkmctl_put_json_str_n(stdout, msg, mn);
			fputs("}}\n", stdout);
		}
		fprintf(stderr, "tkmctl: request %llu failed: ", (unsigned long long)id);
		tkmctl_put_text_n(stderr, code, cn);
		fputs(": ", stderr);
		tkmctl_put_text_n(stderr, msg, mn);
		fputc('\n', stderr);
		rc = TKMCTL_EXIT_SERVER;
		goto out;
	}
	if (o->json) {
		printf("{\"id\":%llu,\"state\":\"executed\",\"result\":", (unsigned long long)id);
		tkmctl_put_json_cbor(stdout, result);
		fputs("}\n", stdout);
		goto out;
	}
	tkm_why_set(head, sizeof(head), "request %llu executed: ", (unsigned long long)id);
	if (tkm_cbor_is(result, TKM_CBOR_MAP) &&
	    tkm_cbor_map_get(result, "one_time_password") != NULL) {
		fputs(head, stdout);
		rc = print_otp(o, &r, result, "operator ", ", one-time password:\n");
	} else if (tkm_cbor_is(result, TKM_CBOR_MAP) &&
	           tkm_cbor_map_get(result, "changes") != NULL) {
		fputs(head, stdout);
		rc = print_policy_applied(o, &r, result);
	} else if (tkm_cbor_is(result, TKM_CBOR_MAP) && tkm_cbor_count(result) == 0) {
		printf("request %llu executed\n", (unsigned long long)id);
	} else {
		fputs(head, stdout);
		tkmctl_put_json_cbor(stdout, result);
		fputc('\n', stdout);
	}
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}

static int cmd_approvals_reject(const tkmctl_opts *o, int argc, char **argv)
{
	const char *state;
	size_t sn;
	uint64_t id = 0, rid = 0;
	tkm_cbor_w *w = NULL;
	tkmctl_reply r;
	bool done = false;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = id_arg("approvals reject", argc, argv, &id)) != TKMCTL_EXIT_OK ||
	    (rc = tkmctl_params_new(o, PARAMS_MAX, &w)) != TKMCTL_EXIT_OK) {
		goto out;
	}
	tkm_cbor_put_map(w, 1);
	tkm_cbor_put_cstr(w, "id");
	tkm_cbor_put_uint(w, id);
	if ((rc = tkmctl_call_cmd(o, 0, "approval.reject", w, &r, &done)) != TKMCTL_EXIT_OK ||
	    done) {
		goto out;
	}
	if (!tkmctl_get_uint(&r, r.root, "id", &rid) ||
	    !tkmctl_get_text(&r, r.root, "state", false, STATE_MAX, &state, &sn)) {
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (rid != id || sn != 8 || strncmp(state, "rejected", 8) != 0) {
		tkmctl_reply_bad(&r, "not the rejection of the request given");
		rc = tkmctl_fail(o, TKM_E_PROTOCOL, r.why);
		goto out;
	}
	if (o->json) {
		printf("{\"id\":%llu,\"state\":\"rejected\"}\n", (unsigned long long)id);
	} else {
		printf("request %llu rejected\n", (unsigned long long)id);
	}
out:
	tkmctl_reply_free(&r);
	tkm_cbor_w_free(w);
	return rc;
}
