/*
 * tkm_policy.h - roles, permissions, scopes and dual control: pure decisions.
 *
 * A policy is a libconfig text (policy/README.md, policy/default.policy)
 * parsed once into an immutable tkm_policy. Given a principal (its kind, its
 * own id and its role assignments), a method name and the attributes of the
 * target, tkm_policy_check() answers allow or deny, names the rule that
 * decided and says whether the method is under dual control.
 *
 * Deny by default; an explicit deny in any role the principal holds wins over
 * every allow, including the public and authenticated lists. The module does
 * no I/O except reading a policy file in tkm_policy_load(), keeps no global
 * state, and a parsed policy may be read from many threads at once.
 */
#ifndef TKM_POLICY_H
#define TKM_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "tkm/error.h"

#define TKM_POLICY_TEXT_MAX     (1024 * 1024)           /* bytes of policy text */
#define TKM_POLICY_NAME_MAX     32                      /* bytes in a role name */
#define TKM_POLICY_METHOD_MAX   64                      /* bytes in a method name or pattern */
#define TKM_POLICY_ID_MAX       64                      /* bytes in a scope id ("site:ID") */
#define TKM_POLICY_SCOPE_MAX    (9 + TKM_POLICY_ID_MAX) /* "terminal:" + id */
#define TKM_POLICY_DESC_MAX     200                     /* bytes in a role description */
#define TKM_POLICY_ASSIGNED_MAX 512                     /* bytes in an assigned list */
#define TKM_POLICY_WHY_MAX      256                     /* bytes in a decision's why, with NUL */

typedef struct tkm_policy tkm_policy;

/* Who may hold a role; a principal is an operator or a device. */
typedef enum tkm_policy_holder {
	TKM_POLICY_HOLDER_ANY = 0, /* role: held by anyone; principal: matches only such roles */
	TKM_POLICY_HOLDER_OPERATOR,
	TKM_POLICY_HOLDER_DEVICE,
} tkm_policy_holder;

/*
 * One role assignment. assigned is the comma-separated list of "kind:id"
 * values bound to it ("site:paris-1,site:lyon-2"), as stored with the
 * assignment; rules scoped to "kind:$assigned" match those ids. NULL or "":
 * none.
 */
typedef struct tkm_policy_grant {
	const char *role;
	const char *assigned;
} tkm_policy_grant;

/*
 * An authenticated principal. id is what "$self" compares with: the
 * principal's own id as the target attributes spell it (a terminal's
 * terminal id, without any "device:" prefix). NULL: "$self" never matches.
 * Grants of roles the policy does not define, or whose holder differs from
 * kind, give nothing.
 */
typedef struct tkm_policy_principal {
	tkm_policy_holder kind;
	const char *id;
	const tkm_policy_grant *grants;
	size_t ngrants;
} tkm_policy_principal;

/* The attributes of the object a request acts on; NULL or "": absent. */
typedef struct tkm_policy_target {
	const char *merchant;
	const char *group;
	const char *key;
	const char *site;
	const char *terminal;
} tkm_policy_target;

/* What decided. */
typedef enum tkm_policy_basis {
	TKM_POLICY_BY_DEFAULT = 0,   /* no rule matched: deny */
	TKM_POLICY_BY_DENY,          /* an explicit deny rule of a held role */
	TKM_POLICY_BY_ALLOW,         /* an allow rule of a held role */
	TKM_POLICY_BY_PUBLIC,        /* the method is public: no principal needed */
	TKM_POLICY_BY_AUTHENTICATED, /* the method is open to any principal */
	TKM_POLICY_BY_APPROVER,      /* tkm_policy_check_approval(): a named approver role */
} tkm_policy_basis;

typedef struct tkm_policy_decision {
	bool allow;
	bool dual_control; /* the method is marked dual-control (whatever allow says) */
	tkm_policy_basis basis;
	char role[TKM_POLICY_NAME_MAX + 1]; /* BY_ALLOW, BY_DENY: the rule's role; else "" */
	size_t rule;                        /* its index in the role's allow or deny list */
	char why[TKM_POLICY_WHY_MAX];       /* e.g. "denied by admin deny[0] key.*" */
} tkm_policy_decision;

/* A role, for listing (pointers valid while the policy lives). */
typedef struct tkm_policy_role_info {
	const char *name;
	const char *description; /* NULL: none */
	tkm_policy_holder holder;
	size_t nallow;
	size_t ndeny;
} tkm_policy_role_info;

/* One rule of a role (pointers valid while the policy lives). */
typedef struct tkm_policy_rule_info {
	const char *method; /* exact name, "prefix.*" or "*" */
	const char *scope;  /* "kind:id", "kind:$self", "kind:$assigned"; NULL: any target */
} tkm_policy_rule_info;

/*
 * Parse len bytes of policy text (no NUL needed). On failure returns
 * TKM_E_CONFIG (or TKM_E_NOMEM) and writes "line N: what is wrong" to why.
 * The text may not use libconfig's @include.
 */
TKM_MUST_CHECK tkm_err tkm_policy_parse(const char *text, size_t len, tkm_policy **out, char *why,
                                        size_t why_len);

/* Read and parse the file at path; why gets "PATH:N: what is wrong" (TKM_E_IO: unreadable). */
TKM_MUST_CHECK tkm_err tkm_policy_load(const char *path, tkm_policy **out, char *why,
                                       size_t why_len);

void tkm_policy_free(tkm_policy *p);

/*
 * Decide whether who may call method on target. who NULL: no principal (only
 * public methods pass); target NULL: no attributes. out is always filled, deny
 * unless a rule allows. Returns TKM_E_INVALID_ARG only for NULL p, method or
 * out; a malformed method name is simply denied.
 */
TKM_MUST_CHECK tkm_err tkm_policy_check(const tkm_policy *p, const tkm_policy_principal *who,
                                        const char *method, const tkm_policy_target *target,
                                        tkm_policy_decision *out);

/*
 * May approver approve a pending call of method on target (dual control)?
 * When the method's dual_control entry names approver roles, holding one of
 * them is enough; without approvers, the approver must be allowed to call the
 * method on the target itself (tkm_policy_check). Either way a deny rule of a
 * role the approver holds wins, and a method that is not dual-control is
 * denied. The caller checks the rest: approval.approve itself, that approver
 * and initiator differ, and the request's TTL.
 */
TKM_MUST_CHECK tkm_err tkm_policy_check_approval(const tkm_policy *p,
                                                 const tkm_policy_principal *approver,
                                                 const char *method,
                                                 const tkm_policy_target *target,
                                                 tkm_policy_decision *out);

/* The method needs no principal (the "public" list). */
bool tkm_policy_is_public(const tkm_policy *p, const char *method);

/* The method is marked dual-control (a "dual_control" pattern matches it). */
bool tkm_policy_is_dual_control(const tkm_policy *p, const char *method);

/* Roles in name order, and their rules in canonical order. */
size_t tkm_policy_role_count(const tkm_policy *p);
TKM_MUST_CHECK tkm_err tkm_policy_role_at(const tkm_policy *p, size_t i, tkm_policy_role_info *out);
/* TKM_E_NOT_FOUND when the policy has no role of that name. */
TKM_MUST_CHECK tkm_err tkm_policy_role_find(const tkm_policy *p, const char *name, size_t *i);
TKM_MUST_CHECK tkm_err tkm_policy_rule_at(const tkm_policy *p, size_t role, bool deny, size_t i,
                                          tkm_policy_rule_info *out);

/*
 * May role be assigned to a principal of kind with these assigned values
 * (NULL or "": none)? TKM_E_NOT_FOUND: no such role; TKM_E_BAD_REQUEST: the
 * holder differs, assigned is malformed, names a kind that none of the role's
 * "$assigned" rules uses, or is empty while the role has such rules.
 */
TKM_MUST_CHECK tkm_err tkm_policy_assignable(const tkm_policy *p, const char *role,
                                             tkm_policy_holder kind, const char *assigned,
                                             char *why, size_t why_len);

/*
 * Separation of duties: the n roles one principal would hold must not contain
 * an exclusive pair. TKM_E_FAILED_PRECONDITION names the pair.
 */
TKM_MUST_CHECK tkm_err tkm_policy_exclusive_ok(const tkm_policy *p, const char *const *roles,
                                               size_t n, char *why, size_t why_len);

/*
 * The canonical text: sorted roles, sorted rules, fixed layout, no comments.
 * Parsing it gives an equal policy, and rendering that gives the same bytes.
 * *text is malloc'd and NUL-terminated (free()); *len excludes the NUL.
 */
TKM_MUST_CHECK tkm_err tkm_policy_canonical(const tkm_policy *p, char **text, size_t *len);

/* Same roles, rules, marks and lists (descriptions and holders included). */
bool tkm_policy_equal(const tkm_policy *a, const tkm_policy *b);

/*
 * The changes from a to b, one per line ("+ role auditor", "- admin deny
 * key.*", "+ dual_control key.export", ...), in canonical order. *text is
 * malloc'd and NUL-terminated, "" when equal; *nchanges counts the lines.
 */
TKM_MUST_CHECK tkm_err tkm_policy_diff(const tkm_policy *a, const tkm_policy *b, char **text,
                                       size_t *nchanges);

/* "operator", "device" or "any". */
const char *tkm_policy_holder_name(tkm_policy_holder h);

#endif /* TKM_POLICY_H */
