/*
 * tkm_policy.c - parse a policy text, decide requests, render and compare
 * policies (see tkm_policy.h and policy/README.md).
 *
 * Parsing is strict: unknown keys, wrong types, malformed names, duplicates
 * and references to undefined roles are errors naming the line, and
 * libconfig's @include is refused so that a policy text proposed over RPC can
 * never make the server read another file. After parsing, every list is
 * sorted, which makes the canonical text, the rule indices in decisions and
 * the diff deterministic. A parsed policy is never changed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "tkm_policy.h"
#include "tkm_why.h"

#define POL_MAX_ROLES           64
#define POL_MAX_RULES           512 /* per allow or deny list */
#define POL_MAX_LIST            512 /* dual_control, public, authenticated */
#define POL_MAX_PAIRS           256
#define POL_MAX_ASSIGNED_VALUES 64
#define POL_MAX_APPROVERS       8 /* roles named by one dual_control entry */

/* The kinds of scope, in the order of tkm_policy_target's fields. */
typedef enum pol_kind {
	POL_ANY = 0, /* unscoped rule */
	POL_MERCHANT,
	POL_GROUP,
	POL_KEY,
	POL_SITE,
	POL_TERMINAL,
	POL_NKINDS,
} pol_kind;

static const char *const pol_kind_names[POL_NKINDS] = {
    NULL, "merchant", "group", "key", "site", "terminal",
};

typedef enum pol_val {
	POL_LITERAL = 0, /* "site:paris-1" */
	POL_SELF,        /* "terminal:$self" */
	POL_ASSIGNED,    /* "site:$assigned" */
} pol_val;

enum { POL_ALLOW = 0, POL_DENY = 1 };
static const char *const pol_effect_names[2] = {"allow", "deny"};

/* The method lists at the top level. */
enum { POL_DUAL = 0, POL_PUBLIC, POL_AUTHENTICATED, POL_NLISTS };
static const char *const pol_list_names[POL_NLISTS] = {"dual_control", "public", "authenticated"};

typedef struct pol_rule {
	char method[TKM_POLICY_METHOD_MAX + 1];
	char scope[TKM_POLICY_SCOPE_MAX + 1]; /* "" = any target */
	pol_kind kind;
	pol_val val;
	size_t value_off; /* where the id starts in scope */
	unsigned line;    /* for messages only; not part of the policy */
} pol_rule;

typedef struct pol_role {
	char name[TKM_POLICY_NAME_MAX + 1];
	char description[TKM_POLICY_DESC_MAX + 1]; /* "" = none */
	tkm_policy_holder holder;
	pol_rule *rules[2]; /* [POL_ALLOW], [POL_DENY] */
	size_t nrules[2];
	unsigned line;
} pol_role;

/* An entry of a top-level method list; approvers only in dual_control. */
typedef struct pol_name {
	char s[TKM_POLICY_METHOD_MAX + 1];
	char approvers[POL_MAX_APPROVERS][TKM_POLICY_NAME_MAX + 1]; /* sorted */
	size_t napprovers; /* 0: whoever may call the method */
	unsigned line;
} pol_name;

typedef struct pol_pair {
	char a[TKM_POLICY_NAME_MAX + 1]; /* a < b */
	char b[TKM_POLICY_NAME_MAX + 1];
	unsigned line;
} pol_pair;

struct tkm_policy {
	pol_role *roles; /* by name */
	size_t nroles;
	pol_name *lists[POL_NLISTS]; /* each sorted */
	size_t nlists[POL_NLISTS];
	pol_pair *pairs; /* sorted */
	size_t npairs;
};

/* ---- Names ---- */

static bool is_lower_digit_us(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* [a-z0-9_]+(\.[a-z0-9_]+)* within the length limit. */
static bool method_valid(const char *m)
{
	size_t n = strlen(m);
	bool seg_empty = true;

	if (n == 0 || n > TKM_POLICY_METHOD_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (m[i] == '.') {
			if (seg_empty) {
				return false;
			}
			seg_empty = true;
		} else if (is_lower_digit_us(m[i])) {
			seg_empty = false;
		} else {
			return false;
		}
	}
	return !seg_empty;
}

/* A method name, "NAME.*" or "*". */
static bool pattern_valid(const char *p)
{
	size_t n = strlen(p);
	char prefix[TKM_POLICY_METHOD_MAX + 1];

	if (n == 1 && p[0] == '*') {
		return true;
	}
	if (n > TKM_POLICY_METHOD_MAX) {
		return false;
	}
	if (n > 2 && p[n - 2] == '.' && p[n - 1] == '*') {
		memcpy(prefix, p, n - 2);
		prefix[n - 2] = '\0';
		return method_valid(prefix);
	}
	return method_valid(p);
}

/*
 * Does pattern match method? Given a pattern for method, it answers whether
 * the first pattern matches everything the second one does ("*" and ".*" in
 * the second are plain bytes), which is how overlaps are found.
 */
static bool pattern_match(const char *pattern, const char *method)
{
	size_t n = strlen(pattern);

	if (n == 1 && pattern[0] == '*') {
		return true;
	}
	if (n > 2 && pattern[n - 2] == '.' && pattern[n - 1] == '*') {
		/* "audit.*" matches "audit.list" (and deeper names), never "audit". */
		return strncmp(pattern, method, n - 1) == 0 && method[n - 1] != '\0';
	}
	return strcmp(pattern, method) == 0;
}

/* [a-z][a-z0-9-]*, no trailing '-', within the length limit. */
static bool role_name_valid(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n > TKM_POLICY_NAME_MAX || r[0] < 'a' || r[0] > 'z' || r[n - 1] == '-') {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') ||
		      r[i] == '-')) {
			return false;
		}
	}
	return true;
}

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* [A-Za-z0-9._-]{1,TKM_POLICY_ID_MAX}, n bytes at s. */
static bool id_valid(const char *s, size_t n)
{
	if (n == 0 || n > TKM_POLICY_ID_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!id_char(s[i])) {
			return false;
		}
	}
	return true;
}

/* The kind named by the n bytes at s, or POL_ANY. */
static pol_kind kind_lookup(const char *s, size_t n)
{
	for (int k = POL_MERCHANT; k < POL_NKINDS; k++) {
		if (strlen(pol_kind_names[k]) == n && strncmp(pol_kind_names[k], s, n) == 0) {
			return (pol_kind)k;
		}
	}
	return POL_ANY;
}

/* Split "kind:value" into the rule's scope fields. */
static bool scope_parse(const char *s, pol_rule *r)
{
	const char *colon = strchr(s, ':');
	const char *v;
	size_t n = strlen(s);

	if (colon == NULL || n > TKM_POLICY_SCOPE_MAX) {
		return false;
	}
	r->kind = kind_lookup(s, (size_t)(colon - s));
	if (r->kind == POL_ANY) {
		return false;
	}
	v = colon + 1;
	if (strcmp(v, "$self") == 0) {
		r->val = POL_SELF;
	} else if (strcmp(v, "$assigned") == 0) {
		r->val = POL_ASSIGNED;
	} else if (id_valid(v, strlen(v))) {
		r->val = POL_LITERAL;
	} else {
		return false;
	}
	memcpy(r->scope, s, n + 1);
	r->value_off = (size_t)(v - s);
	return true;
}

/*
 * Walk an assigned list "kind:id,kind:id". For each entry fn gets the kind
 * and the id's bytes (and stops the walk by returning false); returns false
 * on the first malformed entry.
 */
typedef bool (*assigned_fn)(void *arg, pol_kind kind, const char *id, size_t n);

static bool assigned_walk(const char *list, assigned_fn fn, void *arg)
{
	const char *s = list;

	if (list == NULL || list[0] == '\0') {
		return true;
	}
	if (strlen(list) > TKM_POLICY_ASSIGNED_MAX) {
		return false;
	}
	for (;;) {
		const char *end = strchr(s, ',');
		const char *colon;
		size_t n = end != NULL ? (size_t)(end - s) : strlen(s);
		pol_kind kind;

		colon = memchr(s, ':', n);
		if (colon == NULL) {
			return false;
		}
		kind = kind_lookup(s, (size_t)(colon - s));
		if (kind == POL_ANY || !id_valid(colon + 1, n - (size_t)(colon - s) - 1)) {
			return false;
		}
		if (!fn(arg, kind, colon + 1, n - (size_t)(colon - s) - 1)) {
			return true;
		}
		if (end == NULL) {
			return true;
		}
		s = end + 1;
	}
}

/* ---- Parsing ---- */

typedef struct pol_parse {
	const char *name; /* file path, or NULL for "line N" */
	char *why;
	size_t why_len;
} pol_parse;

__attribute__((format(printf, 3, 4))) static tkm_err fail_line(pol_parse *c, unsigned line,
                                                               const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r < 0) {
		msg[0] = '\0';
	}
	if (c->name != NULL && line > 0) {
		tkm_why_set(c->why, c->why_len, "%s:%u: %s", c->name, line, msg);
	} else if (c->name != NULL) {
		tkm_why_set(c->why, c->why_len, "%s: %s", c->name, msg);
	} else if (line > 0) {
		tkm_why_set(c->why, c->why_len, "line %u: %s", line, msg);
	} else {
		tkm_why_set(c->why, c->why_len, "%s", msg);
	}
	return TKM_E_CONFIG;
}

static unsigned line_of(const config_setting_t *s)
{
	return s != NULL ? (unsigned)config_setting_source_line(s) : 0;
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

/* A string setting copied into dst (cap bytes with the NUL); empty is refused. */
static tkm_err get_string(pol_parse *c, const config_setting_t *s, const char *what, char *dst,
                          size_t cap)
{
	const char *v;
	size_t n;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		return fail_line(c, line_of(s), "%s must be a string, not %s", what,
		                 type_name(config_setting_type(s)));
	}
	v = config_setting_get_string(s);
	n = v != NULL ? strlen(v) : 0;
	if (n == 0) {
		return fail_line(c, line_of(s), "%s must not be empty", what);
	}
	if (n >= cap) {
		return fail_line(c, line_of(s), "%s is longer than %zu bytes", what, cap - 1);
	}
	memcpy(dst, v, n + 1);
	return TKM_OK;
}

/* A list ( ... ) or array [ ... ] of at most max elements; *n gets the count. */
static tkm_err get_list(pol_parse *c, const config_setting_t *s, const char *what, size_t max,
                        size_t *n)
{
	int type = config_setting_type(s);
	int len;

	if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY) {
		return fail_line(c, line_of(s), "%s must be a list ( ... ), not %s", what,
		                 type_name(type));
	}
	len = config_setting_length(s);
	if (len < 0 || (size_t)len > max) {
		return fail_line(c, line_of(s), "%s holds more than %zu entries", what, max);
	}
	*n = (size_t)len;
	return TKM_OK;
}

static int rule_cmp(const void *x, const void *y)
{
	const pol_rule *a = x, *b = y;
	int r = strcmp(a->method, b->method);

	return r != 0 ? r : strcmp(a->scope, b->scope);
}

static int role_cmp(const void *x, const void *y)
{
	return strcmp(((const pol_role *)x)->name, ((const pol_role *)y)->name);
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(((const pol_name *)x)->s, ((const pol_name *)y)->s);
}

static int pair_cmp(const void *x, const void *y)
{
	const pol_pair *a = x, *b = y;
	int r = strcmp(a->a, b->a);

	return r != 0 ? r : strcmp(a->b, b->b);
}

static unsigned later(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

static const char *scope_or_any(const char *scope)
{
	return scope[0] != '\0' ? scope : "(any target)";
}

/* One rule: "method" or { method = "..."; scope = "kind:value"; }. */
static tkm_err parse_rule(pol_parse *c, const config_setting_t *e, const char *what, pol_rule *r)
{
	char scope[TKM_POLICY_SCOPE_MAX + 1];
	char label[TKM_POLICY_NAME_MAX + 48];
	bool have_method = false;
	tkm_err err;
	int n;

	r->line = line_of(e);
	if (config_setting_type(e) == CONFIG_TYPE_STRING) {
		n = snprintf(label, sizeof(label), "a rule in %s", what);
		if (n < 0 || (size_t)n >= sizeof(label)) {
			return fail_line(c, r->line, "role name too long");
		}
		err = get_string(c, e, label, r->method, sizeof(r->method));
		if (err != TKM_OK) {
			return err;
		}
	} else if (config_setting_type(e) == CONFIG_TYPE_GROUP) {
		n = config_setting_length(e);
		for (int i = 0; i < n; i++) {
			const config_setting_t *m = config_setting_get_elem(e, (unsigned)i);
			const char *key = config_setting_name(m);

			if (key != NULL && strcmp(key, "method") == 0) {
				err = get_string(c, m, "'method'", r->method, sizeof(r->method));
				have_method = true;
			} else if (key != NULL && strcmp(key, "scope") == 0) {
				err = get_string(c, m, "'scope'", scope, sizeof(scope));
				if (err == TKM_OK && !scope_parse(scope, r)) {
					err =
					    fail_line(c, line_of(m),
					              "scope '%s' is not KIND:ID, KIND:$self or "
					              "KIND:$assigned with KIND merchant, group, "
					              "key, site or terminal and ID [A-Za-z0-9._-]",
					              scope);
				}
			} else {
				err = fail_line(c, line_of(m),
				                "unknown key '%s' in %s (a rule has 'method' and "
				                "optionally 'scope')",
				                key != NULL ? key : "?", what);
			}
			if (err != TKM_OK) {
				return err;
			}
		}
		if (!have_method) {
			return fail_line(c, line_of(e), "a rule in %s has no 'method'", what);
		}
	} else {
		return fail_line(c, line_of(e),
		                 "each rule in %s must be a method string or a group { method = "
		                 "\"...\"; scope = \"...\"; }, not %s",
		                 what, type_name(config_setting_type(e)));
	}
	if (!pattern_valid(r->method)) {
		return fail_line(c, r->line,
		                 "'%s' in %s is not a method pattern: use a name like "
		                 "\"audit.list\", \"audit.*\" or \"*\" ([a-z0-9_] parts joined by "
		                 "dots)",
		                 r->method, what);
	}
	return TKM_OK;
}

static tkm_err parse_rules(pol_parse *c, const config_setting_t *s, pol_role *role, int effect)
{
	char what[TKM_POLICY_NAME_MAX + 32];
	size_t n = 0;
	tkm_err err;
	int w;

	w = snprintf(what, sizeof(what), "%s's %s list", role->name, pol_effect_names[effect]);
	if (w < 0 || (size_t)w >= sizeof(what)) {
		return fail_line(c, line_of(s), "role name too long");
	}
	err = get_list(c, s, what, POL_MAX_RULES, &n);
	if (err != TKM_OK) {
		return err;
	}
	if (n == 0) {
		return TKM_OK;
	}
	role->rules[effect] = calloc(n, sizeof(pol_rule));
	if (role->rules[effect] == NULL) {
		return TKM_E_NOMEM;
	}
	role->nrules[effect] = n;
	for (size_t i = 0; i < n; i++) {
		err = parse_rule(c, config_setting_get_elem(s, (unsigned)i), what,
		                 &role->rules[effect][i]);
		if (err != TKM_OK) {
			return err;
		}
	}
	qsort(role->rules[effect], n, sizeof(pol_rule), rule_cmp);
	for (size_t i = 1; i < n; i++) {
		const pol_rule *a = &role->rules[effect][i - 1], *b = &role->rules[effect][i];
		if (rule_cmp(a, b) == 0) {
			return fail_line(c, later(a->line, b->line),
			                 "rule '%s' %s is given twice in %s", b->method,
			                 scope_or_any(b->scope), what);
		}
	}
	return TKM_OK;
}

static tkm_err parse_role(pol_parse *c, const config_setting_t *s, pol_role *role)
{
	const char *name = config_setting_name(s);
	int n;
	tkm_err err;

	role->line = line_of(s);
	if (name == NULL || !role_name_valid(name)) {
		return fail_line(c, role->line,
		                 "role name '%s' is not valid: use [a-z][a-z0-9-]*, at most %d "
		                 "bytes, like \"security-officer\"",
		                 name != NULL ? name : "?", TKM_POLICY_NAME_MAX);
	}
	memcpy(role->name, name, strlen(name) + 1);
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		return fail_line(c, role->line, "role '%s' must be a group { ... }, not %s", name,
		                 type_name(config_setting_type(s)));
	}
	n = config_setting_length(s);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
		const char *key = config_setting_name(m);

		if (key != NULL && strcmp(key, "description") == 0) {
			err = get_string(c, m, "'description'", role->description,
			                 sizeof(role->description));
			for (const char *d = role->description; err == TKM_OK && *d != '\0'; d++) {
				if ((unsigned char)*d < 0x20 || (unsigned char)*d > 0x7e) {
					err = fail_line(c, line_of(m),
					                "the description of role '%s' must be "
					                "printable ASCII",
					                name);
				}
			}
		} else if (key != NULL && strcmp(key, "holder") == 0) {
			char h[TKM_POLICY_NAME_MAX + 1];

			err = get_string(c, m, "'holder'", h, sizeof(h));
			if (err == TKM_OK && strcmp(h, "operator") == 0) {
				role->holder = TKM_POLICY_HOLDER_OPERATOR;
			} else if (err == TKM_OK && strcmp(h, "device") == 0) {
				role->holder = TKM_POLICY_HOLDER_DEVICE;
			} else if (err == TKM_OK) {
				err = fail_line(c, line_of(m),
				                "'holder' of role '%s' must be \"operator\" or "
				                "\"device\", not \"%s\"",
				                name, h);
			}
		} else if (key != NULL && strcmp(key, "allow") == 0) {
			err = parse_rules(c, m, role, POL_ALLOW);
		} else if (key != NULL && strcmp(key, "deny") == 0) {
			err = parse_rules(c, m, role, POL_DENY);
		} else {
			err = fail_line(c, line_of(m),
			                "unknown key '%s' in role '%s' (a role has 'description', "
			                "'holder', 'allow' and 'deny')",
			                key != NULL ? key : "?", name);
		}
		if (err != TKM_OK) {
			return err;
		}
	}
	return TKM_OK;
}

static tkm_err parse_version(pol_parse *c, tkm_policy *p, const config_setting_t *s)
{
	(void)p;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		return fail_line(c, line_of(s), "'version' must be an integer, not %s",
		                 type_name(config_setting_type(s)));
	}
	if (config_setting_get_int64(s) != 1) {
		return fail_line(c, line_of(s), "policy version %lld is not supported (only 1)",
		                 (long long)config_setting_get_int64(s));
	}
	return TKM_OK;
}

static tkm_err parse_roles(pol_parse *c, tkm_policy *p, const config_setting_t *s)
{
	int n;
	tkm_err err;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		return fail_line(c, line_of(s), "'roles' must be a group { ... }, not %s",
		                 type_name(config_setting_type(s)));
	}
	n = config_setting_length(s);
	if (n < 0 || n > POL_MAX_ROLES) {
		return fail_line(c, line_of(s), "'roles' holds more than %d roles", POL_MAX_ROLES);
	}
	if (n == 0) {
		return TKM_OK;
	}
	p->roles = calloc((size_t)n, sizeof(pol_role));
	if (p->roles == NULL) {
		return TKM_E_NOMEM;
	}
	p->nroles = (size_t)n;
	for (int i = 0; i < n; i++) {
		err = parse_role(c, config_setting_get_elem(s, (unsigned)i), &p->roles[i]);
		if (err != TKM_OK) {
			return err;
		}
	}
	/* libconfig refuses two settings of one name in a group: names are distinct. */
	qsort(p->roles, p->nroles, sizeof(pol_role), role_cmp);
	return TKM_OK;
}

static int approver_cmp(const void *x, const void *y)
{
	return strcmp(x, y);
}

/* { method = "role.assign"; approvers = ( "admin", "security-officer" ); } */
static tkm_err parse_dual_entry(pol_parse *c, const config_setting_t *e, pol_name *m)
{
	bool have_method = false;
	int n = config_setting_length(e);
	tkm_err err = TKM_OK;

	for (int i = 0; i < n && err == TKM_OK; i++) {
		const config_setting_t *s = config_setting_get_elem(e, (unsigned)i);
		const char *key = config_setting_name(s);
		size_t k = 0;

		if (key != NULL && strcmp(key, "method") == 0) {
			err = get_string(c, s, "'method'", m->s, sizeof(m->s));
			have_method = true;
		} else if (key != NULL && strcmp(key, "approvers") == 0) {
			err = get_list(c, s, "'approvers'", POL_MAX_APPROVERS, &k);
			if (err == TKM_OK && k == 0) {
				err = fail_line(c, line_of(s),
				                "'approvers' must name at least one role (leave it "
				                "out for: whoever may call the method)");
			}
			for (size_t j = 0; j < k && err == TKM_OK; j++) {
				err = get_string(c, config_setting_get_elem(s, (unsigned)j),
				                 "a role in 'approvers'", m->approvers[j],
				                 sizeof(m->approvers[j]));
			}
			m->napprovers = k;
			qsort(m->approvers, k, sizeof(m->approvers[0]), approver_cmp);
			for (size_t j = 1; j < k && err == TKM_OK; j++) {
				if (strcmp(m->approvers[j - 1], m->approvers[j]) == 0) {
					err = fail_line(c, line_of(s),
					                "'approvers' names role '%s' twice",
					                m->approvers[j]);
				}
			}
		} else {
			err = fail_line(c, line_of(s),
			                "unknown key '%s' in a dual_control entry (it has 'method' "
			                "and optionally 'approvers')",
			                key != NULL ? key : "?");
		}
	}
	if (err == TKM_OK && !have_method) {
		err = fail_line(c, line_of(e), "a dual_control entry has no 'method'");
	}
	return err;
}

/* A top-level list of method names (exact ones only unless patterns). */
static tkm_err parse_methods(pol_parse *c, tkm_policy *p, const config_setting_t *s, int list,
                             bool patterns)
{
	const char *what = pol_list_names[list];
	size_t n = 0;
	tkm_err err;

	err = get_list(c, s, what, POL_MAX_LIST, &n);
	if (err != TKM_OK) {
		return err;
	}
	if (n == 0) {
		return TKM_OK;
	}
	p->lists[list] = calloc(n, sizeof(pol_name));
	if (p->lists[list] == NULL) {
		return TKM_E_NOMEM;
	}
	p->nlists[list] = n;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		pol_name *m = &p->lists[list][i];

		m->line = line_of(e);
		if (list == POL_DUAL && config_setting_type(e) == CONFIG_TYPE_GROUP) {
			err = parse_dual_entry(c, e, m);
		} else if (list == POL_DUAL && config_setting_type(e) != CONFIG_TYPE_STRING) {
			err = fail_line(c, m->line,
			                "each entry of dual_control must be a method string or a "
			                "group { method = \"...\"; approvers = ( ... ); }, not %s",
			                type_name(config_setting_type(e)));
		} else {
			err = get_string(c, e,
			                 list == POL_PUBLIC ? "each entry of public"
			                                    : "each entry of authenticated",
			                 m->s, sizeof(m->s));
		}
		if (err != TKM_OK) {
			return err;
		}
		if (patterns && !pattern_valid(m->s)) {
			return fail_line(c, m->line,
			                 "'%s' in %s is not a method pattern: use a name like "
			                 "\"audit.list\", \"audit.*\" or \"*\"",
			                 m->s, what);
		}
		if (!patterns && !method_valid(m->s)) {
			return fail_line(c, m->line,
			                 "'%s' in %s is not a method name: use an exact name like "
			                 "\"sys.ping\" (no wildcards here)",
			                 m->s, what);
		}
	}
	qsort(p->lists[list], n, sizeof(pol_name), name_cmp);
	for (size_t i = 1; i < n; i++) {
		const pol_name *a = &p->lists[list][i - 1], *b = &p->lists[list][i];
		if (name_cmp(a, b) == 0) {
			return fail_line(c, later(a->line, b->line), "'%s' is given twice in %s",
			                 b->s, what);
		}
	}
	/* Overlapping marks would leave open whose approvers apply. */
	for (size_t i = 0; list == POL_DUAL && i < n; i++) {
		for (size_t k = i + 1; k < n; k++) {
			const pol_name *a = &p->lists[list][i], *b = &p->lists[list][k];
			if (pattern_match(a->s, b->s) || pattern_match(b->s, a->s)) {
				return fail_line(c, later(a->line, b->line),
				                 "dual_control entries '%s' and '%s' overlap: mark "
				                 "each method once",
				                 a->s, b->s);
			}
		}
	}
	return TKM_OK;
}

static tkm_err parse_dual(pol_parse *c, tkm_policy *p, const config_setting_t *s)
{
	return parse_methods(c, p, s, POL_DUAL, true);
}

static tkm_err parse_public(pol_parse *c, tkm_policy *p, const config_setting_t *s)
{
	return parse_methods(c, p, s, POL_PUBLIC, false);
}

static tkm_err parse_authenticated(pol_parse *c, tkm_policy *p, const config_setting_t *s)
{
	return parse_methods(c, p, s, POL_AUTHENTICATED, false);
}

static tkm_err parse_exclusive(pol_parse *c, tkm_policy *p, const config_setting_t *s)
{
	size_t n = 0;
	tkm_err err;

	err = get_list(c, s, "exclusive_roles", POL_MAX_PAIRS, &n);
	if (err != TKM_OK) {
		return err;
	}
	if (n == 0) {
		return TKM_OK;
	}
	p->pairs = calloc(n, sizeof(pol_pair));
	if (p->pairs == NULL) {
		return TKM_E_NOMEM;
	}
	p->npairs = n;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		pol_pair *pr = &p->pairs[i];
		char x[TKM_POLICY_NAME_MAX + 1], y[TKM_POLICY_NAME_MAX + 1];
		size_t k = 0;

		pr->line = line_of(e);
		err = get_list(c, e, "each entry of exclusive_roles", POL_MAX_ROLES, &k);
		if (err != TKM_OK) {
			return err;
		}
		if (k != 2) {
			return fail_line(
			    c, pr->line,
			    "each entry of exclusive_roles is a pair of role names, like "
			    "(\"admin\", \"auditor\")");
		}
		err = get_string(c, config_setting_get_elem(e, 0), "a role in exclusive_roles", x,
		                 sizeof(x));
		if (err == TKM_OK) {
			err = get_string(c, config_setting_get_elem(e, 1),
			                 "a role in exclusive_roles", y, sizeof(y));
		}
		if (err != TKM_OK) {
			return err;
		}
		if (strcmp(x, y) == 0) {
			return fail_line(c, pr->line, "exclusive_roles pairs role '%s' with itself",
			                 x);
		}
		memcpy(pr->a, strcmp(x, y) < 0 ? x : y, sizeof(pr->a));
		memcpy(pr->b, strcmp(x, y) < 0 ? y : x, sizeof(pr->b));
	}
	qsort(p->pairs, n, sizeof(pol_pair), pair_cmp);
	for (size_t i = 1; i < n; i++) {
		const pol_pair *a = &p->pairs[i - 1], *b = &p->pairs[i];
		if (pair_cmp(a, b) == 0) {
			return fail_line(c, later(a->line, b->line),
			                 "exclusive_roles gives the pair ('%s', '%s') twice", b->a,
			                 b->b);
		}
	}
	return TKM_OK;
}

/* bsearch comparators: a NUL-terminated key against an element's name. */
static int role_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const pol_role *)elem)->name);
}

static int name_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const pol_name *)elem)->s);
}

static const pol_role *role_lookup(const tkm_policy *p, const char *name)
{
	if (p->nroles == 0) {
		return NULL;
	}
	return bsearch(name, p->roles, p->nroles, sizeof(pol_role), role_key_cmp);
}

static bool name_listed(const tkm_policy *p, int list, const char *method)
{
	if (p->nlists[list] == 0) {
		return false;
	}
	return bsearch(method, p->lists[list], p->nlists[list], sizeof(pol_name), name_key_cmp) !=
	       NULL;
}

static const pol_name *dual_match(const tkm_policy *p, const char *method)
{
	for (size_t i = 0; i < p->nlists[POL_DUAL]; i++) {
		if (pattern_match(p->lists[POL_DUAL][i].s, method)) {
			return &p->lists[POL_DUAL][i];
		}
	}
	return NULL;
}

/* Checks across sections, once everything is read. */
static tkm_err check_whole(pol_parse *c, const tkm_policy *p)
{
	for (size_t i = 0; i < p->nlists[POL_DUAL]; i++) {
		const pol_name *d = &p->lists[POL_DUAL][i];
		for (size_t k = 0; k < d->napprovers; k++) {
			if (role_lookup(p, d->approvers[k]) == NULL) {
				return fail_line(
				    c, d->line,
				    "dual_control entry '%s' names approver role '%s', "
				    "which 'roles' does not define",
				    d->s, d->approvers[k]);
			}
		}
	}
	for (size_t i = 0; i < p->npairs; i++) {
		const char *names[2] = {p->pairs[i].a, p->pairs[i].b};
		for (size_t k = 0; k < 2; k++) {
			if (role_lookup(p, names[k]) == NULL) {
				return fail_line(c, p->pairs[i].line,
				                 "exclusive_roles names role '%s', which 'roles' "
				                 "does not define",
				                 names[k]);
			}
		}
	}
	for (size_t i = 0; i < p->nlists[POL_PUBLIC]; i++) {
		const pol_name *m = &p->lists[POL_PUBLIC][i];
		const pol_name *d = dual_match(p, m->s);

		if (name_listed(p, POL_AUTHENTICATED, m->s)) {
			return fail_line(c, m->line,
			                 "'%s' is listed in both public and authenticated", m->s);
		}
		if (d != NULL) {
			return fail_line(c, later(m->line, d->line),
			                 "public method '%s' cannot be dual-control (dual_control "
			                 "entry '%s'): an approval needs a known initiator",
			                 m->s, d->s);
		}
	}
	return TKM_OK;
}

static const struct {
	const char *name;
	tkm_err (*parse)(pol_parse *c, tkm_policy *p, const config_setting_t *s);
	bool required;
} pol_sections[] = {
    {"version", parse_version, true},    {"roles", parse_roles, true},
    {"dual_control", parse_dual, false}, {"exclusive_roles", parse_exclusive, false},
    {"public", parse_public, false},     {"authenticated", parse_authenticated, false},
};

#define POL_NSECTIONS (sizeof(pol_sections) / sizeof(pol_sections[0]))

/*
 * Refuse what libconfig would accept but a policy must not hold: NUL and
 * control bytes, and @include directives (which read files; libconfig 1.5
 * offers no hook to turn them off). A line whose first non-blank byte is '@'
 * is refused outright, also inside a multi-line string.
 */
static tkm_err screen_text(pol_parse *c, const char *text, size_t len)
{
	unsigned line = 1;
	bool line_start = true;

	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)text[i];

		if (b == '\n') {
			line++;
			line_start = true;
			continue;
		}
		if ((b < 0x20 && b != '\t' && b != '\r') || b == 0x7f) {
			return fail_line(c, line, "control byte 0x%02x in the policy text", b);
		}
		if (line_start && b == '@') {
			return fail_line(c, line,
			                 "directives such as @include are not allowed in a "
			                 "policy");
		}
		if (b != ' ' && b != '\t' && b != '\r') {
			line_start = false;
		}
	}
	return TKM_OK;
}

static tkm_err parse_text(pol_parse *c, const char *text, size_t len, tkm_policy **out)
{
	tkm_policy *p = NULL;
	char *copy = NULL;
	config_t lc;
	const config_setting_t *root;
	bool seen[POL_NSECTIONS] = {false};
	tkm_err err;
	int n;

	config_init(&lc);
	if (out == NULL || (text == NULL && len > 0)) {
		err = TKM_E_INVALID_ARG;
		goto out;
	}
	*out = NULL;
	if (len > TKM_POLICY_TEXT_MAX) {
		err =
		    fail_line(c, 0, "the policy text is longer than %d bytes", TKM_POLICY_TEXT_MAX);
		goto out;
	}
	err = screen_text(c, text, len);
	if (err != TKM_OK) {
		goto out;
	}
	copy = malloc(len + 1);
	p = calloc(1, sizeof(*p));
	if (copy == NULL || p == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	if (len > 0) {
		memcpy(copy, text, len);
	}
	copy[len] = '\0';
	if (config_read_string(&lc, copy) != CONFIG_TRUE) {
		err = fail_line(c, (unsigned)config_error_line(&lc), "%s",
		                config_error_text(&lc) != NULL ? config_error_text(&lc)
		                                               : "syntax error");
		goto out;
	}
	root = config_root_setting(&lc);
	n = config_setting_length(root);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);
		size_t k;

		for (k = 0; k < POL_NSECTIONS; k++) {
			if (name != NULL && strcmp(name, pol_sections[k].name) == 0) {
				break;
			}
		}
		if (k == POL_NSECTIONS) {
			err = fail_line(c, line_of(s),
			                "unknown key '%s' (a policy has version, roles, "
			                "dual_control, exclusive_roles, public and authenticated)",
			                name != NULL ? name : "?");
			goto out;
		}
		seen[k] = true;
		err = pol_sections[k].parse(c, p, s);
		if (err != TKM_OK) {
			goto out;
		}
	}
	for (size_t k = 0; k < POL_NSECTIONS; k++) {
		if (pol_sections[k].required && !seen[k]) {
			err = fail_line(c, 0, "'%s' is missing", pol_sections[k].name);
			goto out;
		}
	}
	err = check_whole(c, p);
	if (err != TKM_OK) {
		goto out;
	}
	*out = p;
	p = NULL;
out:
	if (err == TKM_E_NOMEM) {
		(void)fail_line(c, 0, "out of memory");
	}
	config_destroy(&lc);
	free(copy);
	tkm_policy_free(p);
	return err;
}

tkm_err tkm_policy_parse(const char *text, size_t len, tkm_policy **out, char *why, size_t why_len)
{
	pol_parse c = {.name = NULL, .why = why, .why_len = why_len};

	tkm_why_set(why, why_len, "%s", "");
	return parse_text(&c, text, len, out);
}

tkm_err tkm_policy_load(const char *path, tkm_policy **out, char *why, size_t why_len)
{
	pol_parse c = {.name = path, .why = why, .why_len = why_len};
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0;
	tkm_err err;

	tkm_why_set(why, why_len, "%s", "");
	if (path == NULL || out == NULL) {
		return TKM_E_INVALID_ARG;
	}
	*out = NULL;
	f = fopen(path, "rb");
	if (f == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_IO, "%s: cannot open: %s", path,
		                    strerror(errno));
	}
	/* One byte more than allowed, to see a file that is too long. */
	buf = malloc((size_t)TKM_POLICY_TEXT_MAX + 1);
	if (buf == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	len = fread(buf, 1, (size_t)TKM_POLICY_TEXT_MAX + 1, f);
	if (ferror(f)) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "%s: cannot read: %s", path,
		                   strerror(errno));
		goto out;
	}
	err = parse_text(&c, buf, len, out);
out:
	free(buf);
	fclose(f);
	return err;
}

void tkm_policy_free(tkm_policy *p)
{
	if (p == NULL) {
		return;
	}
	for (size_t i = 0; i < p->nroles; i++) {
		free(p->roles[i].rules[POL_ALLOW]);
		free(p->roles[i].rules[POL_DENY]);
	}
	free(p->roles);
	for (int k = 0; k < POL_NLISTS; k++) {
		free(p->lists[k]);
	}
	free(p->pairs);
	free(p);
}

/* ---- Decisions ---- */

static const char *target_attr(const tkm_policy_target *t, pol_kind kind)
{
	const char *v = NULL;

	switch (kind) {
	case POL_MERCHANT:
		v = t->merchant;
		break;
	case POL_GROUP:
		v = t->group;
		break;
	case POL_KEY:
		v = t->key;
		break;
	case POL_SITE:
		v = t->site;
		break;
	case POL_TERMINAL:
		v = t->terminal;
		break;
	default:
		break;
	}
	return v != NULL && v[0] != '\0' ? v : NULL;
}

typedef struct assigned_find {
	pol_kind kind;
	const char *want;
	bool found;
} assigned_find;

static bool assigned_find_fn(void *arg, pol_kind kind, const char *id, size_t n)
{
	assigned_find *f = arg;

	if (kind == f->kind && strlen(f->want) == n && strncmp(f->want, id, n) == 0) {
		f->found = true;
	}
	return true;
}

static bool rule_match(const pol_rule *r, const char *method, const tkm_policy_principal *who,
                       const tkm_policy_grant *g, const tkm_policy_target *t)
{
	const char *v;

	if (!pattern_match(r->method, method)) {
		return false;
	}
	if (r->kind == POL_ANY) {
		return true;
	}
	v = target_attr(t, r->kind);
	if (v == NULL) {
		return false;
	}
	switch (r->val) {
	case POL_LITERAL:
		return strcmp(v, r->scope + r->value_off) == 0;
	case POL_SELF:
		return who->id != NULL && who->id[0] != '\0' && strcmp(v, who->id) == 0;
	case POL_ASSIGNED: {
		assigned_find f = {.kind = r->kind, .want = v, .found = false};
		/* The whole list is read: a malformed one grants nothing at all. */
		return assigned_walk(g->assigned, assigned_find_fn, &f) && f.found;
	}
	}
	return false;
}

static const pol_role *grant_role(const tkm_policy *p, const tkm_policy_principal *who,
                                  const tkm_policy_grant *g)
{
	const pol_role *r;

	if (g->role == NULL) {
		return NULL;
	}
	r = role_lookup(p, g->role);
	if (r == NULL || (r->holder != TKM_POLICY_HOLDER_ANY && r->holder != who->kind)) {
		return NULL;
	}
	return r;
}

static void decide_rule(tkm_policy_decision *out, const pol_role *role, int effect, size_t i)
{
	const pol_rule *r = &role->rules[effect][i];

	out->allow = effect == POL_ALLOW;
	out->basis = effect == POL_ALLOW ? TKM_POLICY_BY_ALLOW : TKM_POLICY_BY_DENY;
	memcpy(out->role, role->name, sizeof(out->role));
	out->rule = i;
	tkm_why_set(out->why, sizeof(out->why), "%s by %s %s[%zu] %s%s%s",
	            effect == POL_ALLOW ? "allowed" : "denied", role->name,
	            pol_effect_names[effect], i, r->method, r->scope[0] != '\0' ? " scope " : "",
	            r->scope);
}

/*
 * The first matching rule of the effect over the principal's grants, in the
 * order given, into out.
 */
static bool find_rule(const tkm_policy *p, const tkm_policy_principal *who, const char *method,
                      const tkm_policy_target *t, int effect, tkm_policy_decision *out)
{
	for (size_t g = 0; who->grants != NULL && g < who->ngrants; g++) {
		const pol_role *role = grant_role(p, who, &who->grants[g]);

		if (role == NULL) {
			continue;
		}
		for (size_t i = 0; i < role->nrules[effect]; i++) {
			if (rule_match(&role->rules[effect][i], method, who, &who->grants[g], t)) {
				decide_rule(out, role, effect, i);
				return true;
			}
		}
	}
	return false;
}

tkm_err tkm_policy_check(const tkm_policy *p, const tkm_policy_principal *who, const char *method,
                         const tkm_policy_target *target, tkm_policy_decision *out)
{
	static const tkm_policy_target none;

	if (out == NULL) {
		return TKM_E_INVALID_ARG;
	}
	memset(out, 0, sizeof(*out));
	out->allow = false;
	out->basis = TKM_POLICY_BY_DEFAULT;
	tkm_why_set(out->why, sizeof(out->why), "denied by default");
	if (p == NULL || method == NULL) {
		return TKM_E_INVALID_ARG;
	}
	if (target == NULL) {
		target = &none;
	}
	if (!method_valid(method)) {
		tkm_why_set(out->why, sizeof(out->why), "denied by default: not a method name");
		return TKM_OK;
	}
	out->dual_control = dual_match(p, method) != NULL;
	if (who != NULL && find_rule(p, who, method, target, POL_DENY, out)) {
		return TKM_OK;
	}
	if (name_listed(p, POL_PUBLIC, method)) {
		out->allow = true;
		out->basis = TKM_POLICY_BY_PUBLIC;
		tkm_why_set(out->why, sizeof(out->why), "allowed: public method");
		return TKM_OK;
	}
	if (who == NULL) {
		tkm_why_set(out->why, sizeof(out->why), "denied by default: no principal");
		return TKM_OK;
	}
	if (name_listed(p, POL_AUTHENTICATED, method)) {
		out->allow = true;
		out->basis = TKM_POLICY_BY_AUTHENTICATED;
		tkm_why_set(out->why, sizeof(out->why), "allowed: any authenticated principal");
		return TKM_OK;
	}
	(void)find_rule(p, who, method, target, POL_ALLOW, out);
	return TKM_OK;
}

tkm_err tkm_policy_check_approval(const tkm_policy *p, const tkm_policy_principal *approver,
                                  const char *method, const tkm_policy_target *target,
                                  tkm_policy_decision *out)
{
	const pol_name *mark;
	tkm_err err;

	err = tkm_policy_check(p, approver, method, target, out);
	if (err != TKM_OK || out->basis == TKM_POLICY_BY_DENY || !method_valid(method)) {
		return err;
	}
	mark = dual_match(p, method);
	if (mark == NULL) {
		out->allow = false;
		out->basis = TKM_POLICY_BY_DEFAULT;
		out->role[0] = '\0';
		tkm_why_set(out->why, sizeof(out->why), "denied: %s is not dual-control", method);
		return TKM_OK;
	}
	if (mark->napprovers == 0 || approver == NULL) {
		/* Whoever may call the method may approve it: the decision above. */
		return TKM_OK;
	}
	/* Named approvers: holding one of the roles is enough, whatever the target. */
	memset(out, 0, sizeof(*out));
	out->dual_control = true;
	out->basis = TKM_POLICY_BY_DEFAULT;
	tkm_why_set(out->why, sizeof(out->why), "denied: no approver role of %s is held", mark->s);
	for (size_t g = 0; approver->grants != NULL && g < approver->ngrants; g++) {
		const pol_role *role = grant_role(p, approver, &approver->grants[g]);

		for (size_t k = 0; role != NULL && k < mark->napprovers; k++) {
			if (strcmp(role->name, mark->approvers[k]) == 0) {
				out->allow = true;
				out->basis = TKM_POLICY_BY_APPROVER;
				memcpy(out->role, role->name, sizeof(out->role));
				tkm_why_set(out->why, sizeof(out->why),
				            "allowed: %s approves dual_control %s", role->name,
				            mark->s);
				return TKM_OK;
			}
		}
	}
	return TKM_OK;
}

bool tkm_policy_is_public(const tkm_policy *p, const char *method)
{
	return p != NULL && method != NULL && name_listed(p, POL_PUBLIC, method);
}

bool tkm_policy_is_dual_control(const tkm_policy *p, const char *method)
{
	return p != NULL && method != NULL && method_valid(method) && dual_match(p, method) != NULL;
}

/* ---- Listing and assignment checks ---- */

size_t tkm_policy_role_count(const tkm_policy *p)
{
	return p != NULL ? p->nroles : 0;
}

tkm_err tkm_policy_role_at(const tkm_policy *p, size_t i, tkm_policy_role_info *out)
{
	const pol_role *r;

	if (p == NULL || out == NULL) {
		return TKM_E_INVALID_ARG;
	}
	if (i >= p->nroles) {
		return TKM_E_NOT_FOUND;
	}
	r = &p->roles[i];
	out->name = r->name;
	out->description = r->description[0] != '\0' ? r->description : NULL;
	out->holder = r->holder;
	out->nallow = r->nrules[POL_ALLOW];
	out->ndeny = r->nrules[POL_DENY];
	return TKM_OK;
}

tkm_err tkm_policy_role_find(const tkm_policy *p, const char *name, size_t *i)
{
	const pol_role *r;

	if (p == NULL || name == NULL || i == NULL) {
		return TKM_E_INVALID_ARG;
	}
	r = role_lookup(p, name);
	if (r == NULL) {
		return TKM_E_NOT_FOUND;
	}
	*i = (size_t)(r - p->roles);
	return TKM_OK;
}

tkm_err tkm_policy_rule_at(const tkm_policy *p, size_t role, bool deny, size_t i,
                           tkm_policy_rule_info *out)
{
	const pol_rule *r;
	int effect = deny ? POL_DENY : POL_ALLOW;

	if (p == NULL || out == NULL) {
		return TKM_E_INVALID_ARG;
	}
	if (role >= p->nroles || i >= p->roles[role].nrules[effect]) {
		return TKM_E_NOT_FOUND;
	}
	r = &p->roles[role].rules[effect][i];
	out->method = r->method;
	out->scope = r->scope[0] != '\0' ? r->scope : NULL;
	return TKM_OK;
}

const char *tkm_policy_holder_name(tkm_policy_holder h)
{
	switch (h) {
	case TKM_POLICY_HOLDER_OPERATOR:
		return "operator";
	case TKM_POLICY_HOLDER_DEVICE:
		return "device";
	case TKM_POLICY_HOLDER_ANY:
		return "any";
	}
	return "any";
}

/* Which kinds the role's $assigned rules use, as a bit set. */
static unsigned assigned_kinds(const pol_role *r)
{
	unsigned kinds = 0;

	for (int e = POL_ALLOW; e <= POL_DENY; e++) {
		for (size_t i = 0; i < r->nrules[e]; i++) {
			if (r->rules[e][i].kind != POL_ANY && r->rules[e][i].val == POL_ASSIGNED) {
				kinds |= 1u << r->rules[e][i].kind;
			}
		}
	}
	return kinds;
}

typedef struct assigned_scan {
	unsigned kinds; /* allowed kinds */
	pol_kind bad;   /* first kind outside them, or POL_ANY */
	size_t count;
	bool dup;
	const char *ids[POL_MAX_ASSIGNED_VALUES];
	size_t lens[POL_MAX_ASSIGNED_VALUES];
	pol_kind k[POL_MAX_ASSIGNED_VALUES];
} assigned_scan;

static bool assigned_scan_fn(void *arg, pol_kind kind, const char *id, size_t n)
{
	assigned_scan *a = arg;

	if ((a->kinds & (1u << kind)) == 0 && a->bad == POL_ANY) {
		a->bad = kind;
	}
	for (size_t i = 0; i < a->count && i < POL_MAX_ASSIGNED_VALUES; i++) {
		if (a->k[i] == kind && a->lens[i] == n && strncmp(a->ids[i], id, n) == 0) {
			a->dup = true;
		}
	}
	if (a->count < POL_MAX_ASSIGNED_VALUES) {
		a->ids[a->count] = id;
		a->lens[a->count] = n;
		a->k[a->count] = kind;
	}
	a->count++;
	return true;
}

tkm_err tkm_policy_assignable(const tkm_policy *p, const char *role, tkm_policy_holder kind,
                              const char *assigned, char *why, size_t why_len)
{
	const pol_role *r;
	assigned_scan a;

	if (p == NULL || role == NULL) {
		return TKM_E_INVALID_ARG;
	}
	r = role_lookup(p, role);
	if (r == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "the policy has no role '%s'",
		                    role);
	}
	if (r->holder != TKM_POLICY_HOLDER_ANY && r->holder != kind) {
		return tkm_why_fail(
		    why, why_len, TKM_E_BAD_REQUEST, "role '%s' is held by a %s, not by a %s",
		    r->name, tkm_policy_holder_name(r->holder), tkm_policy_holder_name(kind));
	}
	memset(&a, 0, sizeof(a));
	a.kinds = assigned_kinds(r);
	a.bad = POL_ANY;
	if (!assigned_walk(assigned, assigned_scan_fn, &a)) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "the assigned scope must be KIND:ID values joined by commas "
		                    "(KIND merchant, group, key, site or terminal; ID "
		                    "[A-Za-z0-9._-]; at most %d bytes)",
		                    TKM_POLICY_ASSIGNED_MAX);
	}
	if (a.count > POL_MAX_ASSIGNED_VALUES) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "the assigned scope holds more than %d values",
		                    POL_MAX_ASSIGNED_VALUES);
	}
	if (a.dup) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "the assigned scope names a value twice");
	}
	if (a.kinds == 0 && a.count > 0) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "role '%s' takes no assigned scope (none of its rules uses "
		                    "$assigned)",
		                    r->name);
	}
	if (a.bad != POL_ANY) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "role '%s' has no rule scoped to %s:$assigned", r->name,
		                    pol_kind_names[a.bad]);
	}
	if (a.kinds != 0 && a.count == 0) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "role '%s' needs an assigned scope (KIND:ID values) for its "
		                    "$assigned rules",
		                    r->name);
	}
	return TKM_OK;
}

tkm_err tkm_policy_exclusive_ok(const tkm_policy *p, const char *const *roles, size_t n, char *why,
                                size_t why_len)
{
	if (p == NULL || (roles == NULL && n > 0)) {
		return TKM_E_INVALID_ARG;
	}
	for (size_t i = 0; i < p->npairs; i++) {
		bool has_a = false, has_b = false;

		for (size_t k = 0; k < n; k++) {
			if (roles[k] == NULL) {
				continue;
			}
			has_a = has_a || strcmp(roles[k], p->pairs[i].a) == 0;
			has_b = has_b || strcmp(roles[k], p->pairs[i].b) == 0;
		}
		if (has_a && has_b) {
			return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
			                    "separation of duties: no one may hold both '%s' and "
			                    "'%s'",
			                    p->pairs[i].a, p->pairs[i].b);
		}
	}
	return TKM_OK;
}

/* ---- Rendering ---- */

/* A growing text with a sticky error. */
typedef struct pol_buf {
	char *s;
	size_t len;
	size_t cap;
	tkm_err err;
	size_t lines;
} pol_buf;

static void buf_grow(pol_buf *b, size_t more)
{
	size_t cap;
	char *s;

	if (b->err != TKM_OK) {
		return;
	}
	if (more > SIZE_MAX - b->len - 1) {
		b->err = TKM_E_NOMEM;
		return;
	}
	if (b->len + more + 1 <= b->cap) {
		return;
	}
	cap = b->cap != 0 ? b->cap : 1024;
	while (cap < b->len + more + 1) {
		if (cap > SIZE_MAX / 2) {
			b->err = TKM_E_NOMEM;
			return;
		}
		cap *= 2;
	}
	s = realloc(b->s, cap);
	if (s == NULL) {
		b->err = TKM_E_NOMEM;
		return;
	}
	b->s = s;
	b->cap = cap;
}

__attribute__((format(printf, 2, 3))) static void buf_addf(pol_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = b->err != TKM_OK ? b->err : TKM_E_INTERNAL;
		return;
	}
	buf_grow(b, (size_t)n);
	if (b->err != TKM_OK) {
		return;
	}
	va_start(ap, fmt);
	if (vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap) != n) {
		b->err = TKM_E_INTERNAL;
	}
	va_end(ap);
	if (b->err == TKM_OK) {
		b->len += (size_t)n;
	}
}

/* A description as a libconfig string literal (printable ASCII: escape " and \). */
static void buf_quoted(pol_buf *b, const char *s)
{
	buf_addf(b, "\"");
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\') {
			buf_addf(b, "\\%c", *s);
		} else {
			buf_addf(b, "%c", *s);
		}
	}
	buf_addf(b, "\"");
}

static tkm_err buf_finish(pol_buf *b, char **text, size_t *len)
{
	buf_grow(b, 0);
	if (b->err != TKM_OK) {
		free(b->s);
		return b->err;
	}
	b->s[b->len] = '\0';
	*text = b->s;
	if (len != NULL) {
		*len = b->len;
	}
	return TKM_OK;
}

static void render_rule(pol_buf *b, const pol_rule *r)
{
	if (r->scope[0] == '\0') {
		buf_addf(b, "\"%s\"", r->method);
	} else {
		buf_addf(b, "{ method = \"%s\"; scope = \"%s\"; }", r->method, r->scope);
	}
}

static void render_methods(pol_buf *b, const tkm_policy *p, int list)
{
	buf_addf(b, "%s = (", pol_list_names[list]);
	for (size_t i = 0; i < p->nlists[list]; i++) {
		const pol_name *m = &p->lists[list][i];

		if (m->napprovers == 0) {
			buf_addf(b, "%s\n  \"%s\"", i > 0 ? "," : "", m->s);
			continue;
		}
		buf_addf(b, "%s\n  { method = \"%s\"; approvers = (", i > 0 ? "," : "", m->s);
		for (size_t k = 0; k < m->napprovers; k++) {
			buf_addf(b, "%s\"%s\"", k > 0 ? ", " : " ", m->approvers[k]);
		}
		buf_addf(b, " ); }");
	}
	buf_addf(b, "%s);\n", p->nlists[list] > 0 ? "\n" : " ");
}

tkm_err tkm_policy_canonical(const tkm_policy *p, char **text, size_t *len)
{
	pol_buf b = {0};

	if (p == NULL || text == NULL) {
		return TKM_E_INVALID_ARG;
	}
	*text = NULL;
	buf_addf(&b, "# tkm policy, canonical form\nversion = 1;\n\nroles = {\n");
	for (size_t i = 0; i < p->nroles; i++) {
		const pol_role *r = &p->roles[i];

		buf_addf(&b, "%s  %s = {\n", i > 0 ? "\n" : "", r->name);
		if (r->description[0] != '\0') {
			buf_addf(&b, "    description = ");
			buf_quoted(&b, r->description);
			buf_addf(&b, ";\n");
		}
		if (r->holder != TKM_POLICY_HOLDER_ANY) {
			buf_addf(&b, "    holder = \"%s\";\n", tkm_policy_holder_name(r->holder));
		}
		for (int e = POL_ALLOW; e <= POL_DENY; e++) {
			if (r->nrules[e] == 0) {
				continue;
			}
			buf_addf(&b, "    %s = (", pol_effect_names[e]);
			for (size_t k = 0; k < r->nrules[e]; k++) {
				buf_addf(&b, "%s\n      ", k > 0 ? "," : "");
				render_rule(&b, &r->rules[e][k]);
			}
			buf_addf(&b, "\n    );\n");
		}
		buf_addf(&b, "  };\n");
	}
	buf_addf(&b, "};\n\n");
	render_methods(&b, p, POL_PUBLIC);
	buf_addf(&b, "\n");
	render_methods(&b, p, POL_AUTHENTICATED);
	buf_addf(&b, "\n");
	render_methods(&b, p, POL_DUAL);
	buf_addf(&b, "\nexclusive_roles = (");
	for (size_t i = 0; i < p->npairs; i++) {
		buf_addf(&b, "%s\n  (\"%s\", \"%s\")", i > 0 ? "," : "", p->pairs[i].a,
		         p->pairs[i].b);
	}
	buf_addf(&b, "%s);\n", p->npairs > 0 ? "\n" : " ");
	return buf_finish(&b, text, len);
}

/* ---- Comparing ---- */

static bool approvers_equal(const pol_name *a, const pol_name *b)
{
	if (a->napprovers != b->napprovers) {
		return false;
	}
	for (size_t i = 0; i < a->napprovers; i++) {
		if (strcmp(a->approvers[i], b->approvers[i]) != 0) {
			return false;
		}
	}
	return true;
}

static bool rules_equal(const pol_role *a, const pol_role *b)
{
	for (int e = POL_ALLOW; e <= POL_DENY; e++) {
		if (a->nrules[e] != b->nrules[e]) {
			return false;
		}
		for (size_t i = 0; i < a->nrules[e]; i++) {
			if (rule_cmp(&a->rules[e][i], &b->rules[e][i]) != 0) {
				return false;
			}
		}
	}
	return true;
}

bool tkm_policy_equal(const tkm_policy *a, const tkm_policy *b)
{
	if (a == NULL || b == NULL) {
		return a == b;
	}
	if (a->nroles != b->nroles || a->npairs != b->npairs) {
		return false;
	}
	for (size_t i = 0; i < a->nroles; i++) {
		const pol_role *x = &a->roles[i], *y = &b->roles[i];
		if (strcmp(x->name, y->name) != 0 || strcmp(x->description, y->description) != 0 ||
		    x->holder != y->holder || !rules_equal(x, y)) {
			return false;
		}
	}
	for (int k = 0; k < POL_NLISTS; k++) {
		if (a->nlists[k] != b->nlists[k]) {
			return false;
		}
		for (size_t i = 0; i < a->nlists[k]; i++) {
			if (name_cmp(&a->lists[k][i], &b->lists[k][i]) != 0 ||
			    !approvers_equal(&a->lists[k][i], &b->lists[k][i])) {
				return false;
			}
		}
	}
	for (size_t i = 0; i < a->npairs; i++) {
		if (pair_cmp(&a->pairs[i], &b->pairs[i]) != 0) {
			return false;
		}
	}
	return true;
}

static void diff_line_rule(pol_buf *b, char sign, const char *role, int effect, const pol_rule *r)
{
	buf_addf(b, "%c %s %s %s%s%s\n", sign, role, pol_effect_names[effect], r->method,
	         r->scope[0] != '\0' ? " scope " : "", r->scope);
	b->lines++;
}

static void diff_role_head(pol_buf *b, char sign, const pol_role *r)
{
	buf_addf(b, "%c role %s holder=%s", sign, r->name, tkm_policy_holder_name(r->holder));
	if (r->description[0] != '\0') {
		buf_addf(b, " description=");
		buf_quoted(b, r->description);
	}
	buf_addf(b, "\n");
	b->lines++;
}

/* A whole role added (+) or removed (-). */
static void diff_role_all(pol_buf *b, char sign, const pol_role *r)
{
	diff_role_head(b, sign, r);
	for (int e = POL_ALLOW; e <= POL_DENY; e++) {
		for (size_t i = 0; i < r->nrules[e]; i++) {
			diff_line_rule(b, sign, r->name, e, &r->rules[e][i]);
		}
	}
}

/* The changes within a role present in both: a merge walk over sorted rules. */
static void diff_role(pol_buf *b, const pol_role *x, const pol_role *y)
{
	if (x->holder != y->holder) {
		buf_addf(b, "~ role %s holder=%s -> holder=%s\n", x->name,
		         tkm_policy_holder_name(x->holder), tkm_policy_holder_name(y->holder));
		b->lines++;
	}
	if (strcmp(x->description, y->description) != 0) {
		buf_addf(b, "~ role %s description=", x->name);
		buf_quoted(b, x->description);
		buf_addf(b, " -> description=");
		buf_quoted(b, y->description);
		buf_addf(b, "\n");
		b->lines++;
	}
	for (int e = POL_ALLOW; e <= POL_DENY; e++) {
		size_t i = 0, k = 0;

		while (i < x->nrules[e] || k < y->nrules[e]) {
			int c = i == x->nrules[e]   ? 1
			        : k == y->nrules[e] ? -1
			                            : rule_cmp(&x->rules[e][i], &y->rules[e][k]);
			if (c < 0) {
				diff_line_rule(b, '-', x->name, e, &x->rules[e][i++]);
			} else if (c > 0) {
				diff_line_rule(b, '+', y->name, e, &y->rules[e][k++]);
			} else {
				i++;
				k++;
			}
		}
	}
}

/* " approvers=a,b" for a dual_control entry that names approvers. */
static void diff_approvers(pol_buf *b, const pol_name *m)
{
	for (size_t i = 0; i < m->napprovers; i++) {
		buf_addf(b, "%s%s", i > 0 ? "," : " approvers=", m->approvers[i]);
	}
}

static void diff_lists(pol_buf *b, const tkm_policy *x, const tkm_policy *y, int list)
{
	size_t i = 0, k = 0;

	while (i < x->nlists[list] || k < y->nlists[list]) {
		int c = i == x->nlists[list]   ? 1
		        : k == y->nlists[list] ? -1
		                               : name_cmp(&x->lists[list][i], &y->lists[list][k]);
		if (c < 0) {
			buf_addf(b, "- %s %s", pol_list_names[list], x->lists[list][i].s);
			diff_approvers(b, &x->lists[list][i++]);
		} else if (c > 0) {
			buf_addf(b, "+ %s %s", pol_list_names[list], y->lists[list][k].s);
			diff_approvers(b, &y->lists[list][k++]);
		} else if (!approvers_equal(&x->lists[list][i], &y->lists[list][k])) {
			buf_addf(b, "~ %s %s", pol_list_names[list], x->lists[list][i].s);
			diff_approvers(b, &x->lists[list][i]);
			if (x->lists[list][i].napprovers == 0) {
				buf_addf(b, " approvers=(callers)");
			}
			buf_addf(b, " ->");
			diff_approvers(b, &y->lists[list][k]);
			if (y->lists[list][k].napprovers == 0) {
				buf_addf(b, " approvers=(callers)");
			}
			i++;
			k++;
		} else {
			i++;
			k++;
			continue;
		}
		buf_addf(b, "\n");
		b->lines++;
	}
}

tkm_err tkm_policy_diff(const tkm_policy *a, const tkm_policy *b, char **text, size_t *nchanges)
{
	pol_buf o = {0};
	size_t i = 0, k = 0;

	if (a == NULL || b == NULL || text == NULL) {
		return TKM_E_INVALID_ARG;
	}
	*text = NULL;
	while (i < a->nroles || k < b->nroles) {
		int c = i == a->nroles   ? 1
		        : k == b->nroles ? -1
		                         : role_cmp(&a->roles[i], &b->roles[k]);
		if (c < 0) {
			diff_role_all(&o, '-', &a->roles[i++]);
		} else if (c > 0) {
			diff_role_all(&o, '+', &b->roles[k++]);
		} else {
			diff_role(&o, &a->roles[i++], &b->roles[k++]);
		}
	}
	diff_lists(&o, a, b, POL_PUBLIC);
	diff_lists(&o, a, b, POL_AUTHENTICATED);
	diff_lists(&o, a, b, POL_DUAL);
	i = 0;
	k = 0;
	while (i < a->npairs || k < b->npairs) {
		int c = i == a->npairs   ? 1
		        : k == b->npairs ? -1
		                         : pair_cmp(&a->pairs[i], &b->pairs[k]);
		const pol_pair *pr = c < 0 ? &a->pairs[i] : &b->pairs[k];

		if (c == 0) {
			i++;
			k++;
			continue;
		}
		buf_addf(&o, "%c exclusive_roles %s %s\n", c < 0 ? '-' : '+', pr->a, pr->b);
		o.lines++;
		if (c < 0) {
			i++;
		} else {
			k++;
		}
	}
	if (nchanges != NULL) {
		*nchanges = o.lines;
	}
	return buf_finish(&o, text, NULL);
}
