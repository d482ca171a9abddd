/*
 * policy_test.c - the policy engine (policy/tkm_policy.c): strict parsing with
 * line numbers, deny by default, explicit deny, wildcards, every scope kind,
 * dual control, separation of duties, the canonical form, the diff, and the
 * permission matrix of the shipped policy/default.policy (argv[1]).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tkm_policy.h"
#include "tkm_test.h"

static tkm_policy *parse_ok(const char *text)
{
	tkm_policy *p = NULL;
	char why[512] = "";
	tkm_err err = tkm_policy_parse(text, strlen(text), &p, why, sizeof(why));

	if (err != TKM_OK) {
		fprintf(stderr, "unexpected parse failure: %s\n", why);
	}
	CHECK_EQ_INT(err, TKM_OK);
	return p;
}

/* The text must fail with why exactly as expected. */
static void parse_fails(const char *text, const char *expect)
{
	tkm_policy *p = NULL;
	char why[512] = "";
	tkm_err err = tkm_policy_parse(text, strlen(text), &p, why, sizeof(why));

	CHECK_EQ_INT(err, TKM_E_CONFIG);
	CHECK(p == NULL);
	CHECK_STR(why, expect);
	tkm_policy_free(p);
}

/* ---- Parsing ---- */

#define HEAD "version = 1;\n"

static void test_parse_errors(void)
{
	parse_fails(HEAD "roles = { };\nbogus = 1;\n",
	            "line 3: unknown key 'bogus' (a policy has version, roles, dual_control, "
	            "exclusive_roles, public and authenticated)");
	parse_fails(HEAD "roles = {\n  admin = {\n    alow = ( \"a.b\" );\n  };\n};\n",
	            "line 4: unknown key 'alow' in role 'admin' (a role has 'description', "
	            "'holder', 'allow' and 'deny')");
	parse_fails(HEAD "roles = {\n  admin = {\n    allow = ( { method = \"a.b\"; scop = "
	                 "\"site:x\"; } );\n  };\n};\n",
	            "line 4: unknown key 'scop' in admin's allow list (a rule has 'method' and "
	            "optionally 'scope')");
	/* wrong types */
	parse_fails("version = \"1\";\nroles = { };\n",
	            "line 1: 'version' must be an integer, not a string");
	parse_fails(HEAD "roles = ( );\n",
	            "line 2: 'roles' must be a group { ... }, not a list ( ... )");
	parse_fails(HEAD "roles = {\n  admin = {\n    allow = \"a.b\";\n  };\n};\n",
	            "line 4: admin's allow list must be a list ( ... ), not a string");
	parse_fails(HEAD "roles = {\n  admin = {\n    allow = ( 5 );\n  };\n};\n",
	            "line 4: each rule in admin's allow list must be a method string or a group "
	            "{ method = \"...\"; scope = \"...\"; }, not an integer");
	parse_fails(HEAD "roles = {\n  admin = {\n    description = true;\n  };\n};\n",
	            "line 4: 'description' must be a string, not a boolean");
	parse_fails(HEAD "roles = {\n  admin = 3;\n};\n",
	            "line 3: role 'admin' must be a group { ... }, not an integer");
	parse_fails(HEAD "roles = { };\nauthenticated = ( \"a.b\",\n 7 );\n",
	            "line 4: each entry of authenticated must be a string, not an integer");
	parse_fails(HEAD "roles = { };\ndual_control = ( \"a.b\", [ \"c.d\" ] );\n",
	            "line 3: each entry of dual_control must be a method string or a group { "
	            "method = \"...\"; approvers = ( ... ); }, not an array [ ... ]");
	parse_fails(HEAD "roles = { };\npublic = \"sys.ping\";\n",
	            "line 3: public must be a list ( ... ), not a string");
	/* bad patterns */
	static const char *const bad_patterns[] = {"a.*.b", "a*",  ".a",   "a.",  "A.b",
	                                           "a..b",  "*.a", "a.b*", "a-b", "a.b.",
	                                           "**",    ".*",  "a b"};
	for (size_t i = 0; i < sizeof(bad_patterns) / sizeof(bad_patterns[0]); i++) {
		char text[256], expect[256];
		int n = snprintf(text, sizeof(text),
		                 HEAD "roles = {\n  r = {\n    deny = ( \"%s\" );\n  };\n};\n",
		                 bad_patterns[i]);
		int m =
		    snprintf(expect, sizeof(expect),
		             "line 4: '%s' in r's deny list is not a method pattern: use a name "
		             "like \"audit.list\", \"audit.*\" or \"*\" ([a-z0-9_] parts joined "
		             "by dots)",
		             bad_patterns[i]);
		CHECK(n > 0 && (size_t)n < sizeof(text) && m > 0 && (size_t)m < sizeof(expect));
		parse_fails(text, expect);
	}
	parse_fails(HEAD "roles = { };\ndual_control = ( \"a.*.b\" );\n",
	            "line 3: 'a.*.b' in dual_control is not a method pattern: use a name like "
	            "\"audit.list\", \"audit.*\" or \"*\"");
	parse_fails(HEAD "roles = { };\npublic = ( \"sys.*\" );\n",
	            "line 3: 'sys.*' in public is not a method name: use an exact name like "
	            "\"sys.ping\" (no wildcards here)");
	/* bad scopes */
	static const char *const bad_scopes[] = {"site",     "site:", "shop:x",     "site:$me",
	                                         "site:a b", ":x",    "site:$SELF", "terminal:a,b"};
	for (size_t i = 0; i < sizeof(bad_scopes) / sizeof(bad_scopes[0]); i++) {
		char text[256], expect[300];
		int n = snprintf(text, sizeof(text),
		                 HEAD "roles = {\n  r = {\n    allow = (\n      { method = "
		                      "\"a.b\";\n        scope = \"%s\"; } );\n  };\n};\n",
		                 bad_scopes[i]);
		int m = snprintf(expect, sizeof(expect),
		                 "line 6: scope '%s' is not KIND:ID, KIND:$self or KIND:$assigned "
		                 "with KIND merchant, group, key, site or terminal and ID "
		                 "[A-Za-z0-9._-]",
		                 bad_scopes[i]);
		CHECK(n > 0 && (size_t)n < sizeof(text) && m > 0 && (size_t)m < sizeof(expect));
		parse_fails(text, expect);
	}
	/* names and references */
	parse_fails(HEAD "roles = {\n  Admin = { };\n};\n",
	            "line 3: role name 'Admin' is not valid: use [a-z][a-z0-9-]*, at most 32 "
	            "bytes, like \"security-officer\"");
	parse_fails(HEAD "roles = {\n  admin_x = { };\n};\n",
	            "line 3: role name 'admin_x' is not valid: use [a-z][a-z0-9-]*, at most 32 "
	            "bytes, like \"security-officer\"");
	parse_fails(HEAD "roles = {\n  admin = { };\n  admin = { };\n};\n",
	            "line 4: duplicate setting name");
	parse_fails(HEAD "roles = {\n  admin = { };\n};\nexclusive_roles = (\n  (\"admin\", "
	                 "\"auditor\")\n);\n",
	            "line 6: exclusive_roles names role 'auditor', which 'roles' does not define");
	parse_fails(HEAD "roles = {\n  admin = { };\n};\nexclusive_roles = ( (\"admin\", "
	                 "\"admin\") );\n",
	            "line 5: exclusive_roles pairs role 'admin' with itself");
	parse_fails(HEAD "roles = { a = { }; b = { }; };\nexclusive_roles = ( (\"a\", \"b\"),\n "
	                 "(\"b\", \"a\") );\n",
	            "line 4: exclusive_roles gives the pair ('a', 'b') twice");
	parse_fails(HEAD "roles = { a = { }; b = { }; };\nexclusive_roles = ( (\"a\", \"b\", "
	                 "\"c\") );\n",
	            "line 3: each entry of exclusive_roles is a pair of role names, like "
	            "(\"admin\", \"auditor\")");
	parse_fails(HEAD "roles = { a = { }; };\nexclusive_roles = ( (\"a\") );\n",
	            "line 3: each entry of exclusive_roles is a pair of role names, like "
	            "(\"admin\", \"auditor\")");
	/* duplicates and contradictions */
	parse_fails(HEAD "roles = {\n  r = {\n    allow = ( \"a.b\",\n      \"a.c\",\n      "
	                 "\"a.b\" );\n  };\n};\n",
	            "line 6: rule 'a.b' (any target) is given twice in r's allow list");
	parse_fails(HEAD "roles = {\n  r = {\n    allow = ( { method = \"a.b\"; scope = "
	                 "\"site:x\"; },\n { method = \"a.b\"; scope = \"site:x\"; } );\n  "
	                 "};\n};\n",
	            "line 5: rule 'a.b' site:x is given twice in r's allow list");
	parse_fails(HEAD "roles = { };\ndual_control = ( \"a.b\",\n \"a.b\" );\n",
	            "line 4: 'a.b' is given twice in dual_control");
	parse_fails(HEAD "roles = { };\npublic = ( \"sys.ping\" );\nauthenticated = ( "
	                 "\"sys.ping\" );\n",
	            "line 3: 'sys.ping' is listed in both public and authenticated");
	parse_fails(HEAD "roles = { };\npublic = ( \"auth.login\" );\ndual_control = ( "
	                 "\"auth.*\" );\n",
	            "line 4: public method 'auth.login' cannot be dual-control (dual_control "
	            "entry 'auth.*'): an approval needs a known initiator");
	/* dual_control entries with approvers */
	parse_fails(HEAD "roles = { };\ndual_control = (\n  { method = \"a.b\"; approvers = ( "
	                 "\"ghost\" ); }\n);\n",
	            "line 4: dual_control entry 'a.b' names approver role 'ghost', which 'roles' "
	            "does not define");
	parse_fails(HEAD "roles = { };\ndual_control = ( \"key.*\",\n \"key.export\" );\n",
	            "line 4: dual_control entries 'key.*' and 'key.export' overlap: mark each "
	            "method once");
	parse_fails(HEAD "roles = { };\ndual_control = ( \"a.b\",\n \"*\" );\n",
	            "line 4: dual_control entries '*' and 'a.b' overlap: mark each method once");
	parse_fails(HEAD "roles = { };\ndual_control = ( \"a.b.*\", \"a.*\" );\n",
	            "line 3: dual_control entries 'a.*' and 'a.b.*' overlap: mark each method "
	            "once");
	parse_fails(HEAD "roles = { r = { }; };\ndual_control = ( { method = \"a.b\"; approvers "
	                 "= ( ); } );\n",
	            "line 3: 'approvers' must name at least one role (leave it out for: whoever "
	            "may call the method)");
	parse_fails(HEAD "roles = { r = { }; };\ndual_control = ( { method = \"a.b\"; approvers "
	                 "= ( \"r\", \"r\" ); } );\n",
	            "line 3: 'approvers' names role 'r' twice");
	parse_fails(HEAD "roles = { r = { }; };\ndual_control = ( { method = \"a.b\";\n who = ( "
	                 "\"r\" ); } );\n",
	            "line 4: unknown key 'who' in a dual_control entry (it has 'method' and "
	            "optionally 'approvers')");
	parse_fails(HEAD "roles = { r = { }; };\ndual_control = ( { approvers = ( \"r\" ); } "
	                 ");\n",
	            "line 3: a dual_control entry has no 'method'");
	parse_fails(HEAD "roles = { r = { }; };\ndual_control = ( { method = \"a.*.b\"; } );\n",
	            "line 3: 'a.*.b' in dual_control is not a method pattern: use a name like "
	            "\"audit.list\", \"audit.*\" or \"*\"");
	/* holder, description */
	parse_fails(HEAD "roles = {\n  r = {\n    holder = \"robot\";\n  };\n};\n",
	            "line 4: 'holder' of role 'r' must be \"operator\" or \"device\", not "
	            "\"robot\"");
	parse_fails(HEAD "roles = {\n  r = {\n    description = \"tab\\there\";\n  };\n};\n",
	            "line 4: the description of role 'r' must be printable ASCII");
	parse_fails(HEAD "roles = {\n  r = {\n    allow = ( \"a.b\",\n \"\" );\n  };\n};\n",
	            "line 5: a rule in r's allow list must not be empty");
	parse_fails(HEAD "roles = {\n  r = {\n    allow = ( \"a.b\",\n { scope = \"site:x\"; } "
	                 ");\n  };\n};\n",
	            "line 5: a rule in r's allow list has no 'method'");
	parse_fails(HEAD "roles = {\n  r = {\n    allow = ( { method = \"a.b\"; scope = "
	                 "\"terminal:x23456789012345678901234567890123456789012345678901234567890"
	                 "12345\"; } );\n  };\n};\n",
	            "line 4: 'scope' is longer than 73 bytes");
	parse_fails(HEAD "roles = {\n  r = {\n    description = \"\";\n  };\n};\n",
	            "line 4: 'description' must not be empty");
	/* version, missing sections, syntax, directives, bytes */
	parse_fails("version = 2;\nroles = { };\n",
	            "line 1: policy version 2 is not supported (only 1)");
	parse_fails("roles = { };\n", "'version' is missing");
	parse_fails(HEAD, "'roles' is missing");
	parse_fails(HEAD "roles = {\n  admin = {\n    allow = ( \"a.b\" ];\n  };\n};\n",
	            "line 4: syntax error");
	parse_fails(HEAD "roles = { };\n@include \"/etc/passwd\"\n",
	            "line 3: directives such as @include are not allowed in a policy");
	parse_fails(HEAD "roles = { };\n  \t@include \"/etc/passwd\"\n",
	            "line 3: directives such as @include are not allowed in a policy");
	parse_fails(HEAD "roles = { };\n# bell \a\n",
	            "line 3: control byte 0x07 in the policy text");
	{
		static const char nul_text[] = HEAD "roles = { };\0x = 1;\n";
		tkm_policy *p = NULL;
		char why[256] = "";

		CHECK_EQ_INT(tkm_policy_parse(nul_text, sizeof(nul_text) - 1, &p, why, sizeof(why)),
		             TKM_E_CONFIG);
		CHECK_STR(why, "line 2: control byte 0x00 in the policy text");
		CHECK(p == NULL);
	}
	{
		size_t n = (size_t)TKM_POLICY_TEXT_MAX + 1;
		char *big = malloc(n);
		tkm_policy *p = NULL;
		char why[256] = "";

		CHECK(big != NULL);
		if (big != NULL) {
			memset(big, '\n', n);
			CHECK_EQ_INT(tkm_policy_parse(big, n, &p, why, sizeof(why)), TKM_E_CONFIG);
			CHECK_STR(why, "the policy text is longer than 1048576 bytes");
			CHECK(p == NULL);
			free(big);
		}
	}
	/* a tiny why buffer is truncated, never overrun */
	{
		tkm_policy *p = NULL;
		char why[8];
		const char *t = "version = 9;\nroles = { };\n";

		CHECK_EQ_INT(tkm_policy_parse(t, strlen(t), &p, why, sizeof(why)), TKM_E_CONFIG);
		CHECK_STR(why, "line 1:");
	}
	/* load: the path names the file in messages; a missing file is TKM_E_IO */
	{
		char path[] = "/tmp/policy_test.XXXXXX";
		static const char bad[] = HEAD "roles = { };\nbogus = 1;\n";
		int fd = mkstemp(path);
		FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
		tkm_policy *p = NULL;
		char why[256] = "", expect[256];
		int n = snprintf(expect, sizeof(expect),
		                 "%s:3: unknown key 'bogus' (a policy has version, roles, "
		                 "dual_control, exclusive_roles, public and authenticated)",
		                 path);

		CHECK(f != NULL && n > 0 && (size_t)n < sizeof(expect));
		if (f != NULL) {
			CHECK_EQ_INT(fwrite(bad, 1, sizeof(bad) - 1, f), sizeof(bad) - 1);
			CHECK_EQ_INT(fclose(f), 0);
			CHECK_EQ_INT(tkm_policy_load(path, &p, why, sizeof(why)), TKM_E_CONFIG);
			CHECK_STR(why, expect);
			CHECK(p == NULL);
			CHECK_EQ_INT(unlink(path), 0);
		}
	}
	{
		tkm_policy *p = NULL;
		char why[256] = "";

		CHECK_EQ_INT(tkm_policy_load("/nonexistent/tkm.policy", &p, why, sizeof(why)),
		             TKM_E_IO);
		CHECK_STR(why, "/nonexistent/tkm.policy: cannot open: No such file or directory");
		CHECK(p == NULL);
	}
}

static void test_parse_forms(void)
{
	/* Rules as strings or groups, lists or arrays, empty lists, comments. */
	tkm_policy *p = parse_ok(HEAD "// comment\nroles = {\n  r = {\n    allow = [ \"a.b\", "
	                              "\"c.*\" ];\n    deny = ( );\n  };\n  empty = { };\n};\n"
	                              "public = [ ];\n");
	tkm_policy_role_info info;
	tkm_policy_rule_info rule;
	size_t i = 99;

	CHECK(p != NULL);
	if (p == NULL) {
		return;
	}
	CHECK_EQ_INT(tkm_policy_role_count(p), 2);
	CHECK_EQ_INT(tkm_policy_role_at(p, 0, &info), TKM_OK);
	CHECK_STR(info.name, "empty");
	CHECK(info.description == NULL);
	CHECK_EQ_INT(info.holder, TKM_POLICY_HOLDER_ANY);
	CHECK_EQ_INT(tkm_policy_role_find(p, "r", &i), TKM_OK);
	CHECK_EQ_INT(i, 1);
	CHECK_EQ_INT(tkm_policy_role_find(p, "nobody", &i), TKM_E_NOT_FOUND);
	CHECK_EQ_INT(tkm_policy_role_at(p, 1, &info), TKM_OK);
	CHECK_EQ_INT(info.nallow, 2);
	CHECK_EQ_INT(info.ndeny, 0);
	CHECK_EQ_INT(tkm_policy_rule_at(p, 1, false, 1, &rule), TKM_OK);
	CHECK_STR(rule.method, "c.*");
	CHECK(rule.scope == NULL);
	CHECK_EQ_INT(tkm_policy_rule_at(p, 1, false, 2, &rule), TKM_E_NOT_FOUND);
	CHECK_EQ_INT(tkm_policy_rule_at(p, 1, true, 0, &rule), TKM_E_NOT_FOUND);
	CHECK_EQ_INT(tkm_policy_role_at(p, 2, &info), TKM_E_NOT_FOUND);
	tkm_policy_free(p);
	tkm_policy_free(NULL);
}

/* ---- Decisions ---- */

static const char base_policy[] =
    HEAD "roles = {\n"
         "  reader = {\n"
         "    description = \"Reads things.\";\n"
         "    holder = \"operator\";\n"
         "    allow = ( \"audit.*\", \"thing.get\" );\n"
         "    deny = ( \"audit.archive\" );\n"
         "  };\n"
         "  root = {\n"
         "    allow = ( \"*\" );\n"
         "  };\n"
         "  blocker = {\n"
         "    deny = ( \"thing.get\", \"sys.info\", \"sys.ping\" );\n"
         "  };\n"
         "  scoped = {\n"
         "    allow = (\n"
         "      { method = \"m.x\"; scope = \"merchant:M1\"; },\n"
         "      { method = \"g.x\"; scope = \"group:G1\"; },\n"
         "      { method = \"k.x\"; scope = \"key:K1\"; },\n"
         "      { method = \"s.x\"; scope = \"site:S1\"; },\n"
         "      { method = \"t.x\"; scope = \"terminal:T1\"; },\n"
         "      { method = \"self.t\"; scope = \"terminal:$self\"; },\n"
         "      { method = \"self.m\"; scope = \"merchant:$self\"; },\n"
         "      { method = \"asg.s\"; scope = \"site:$assigned\"; },\n"
         "      { method = \"asg.k\"; scope = \"key:$assigned\"; },\n"
         "      \"open.*\"\n"
         "    );\n"
         "    deny = ( { method = \"open.shut\"; scope = \"site:S9\"; } );\n"
         "  };\n"
         "  gadget = {\n"
         "    holder = \"device\";\n"
         "    allow = ( \"thing.*\" );\n"
         "  };\n"
         "};\n"
         "public = ( \"sys.ping\", \"auth.login\" );\n"
         "authenticated = ( \"sys.info\" );\n"
         "dual_control = ( \"thing.put\", \"audit.*\",\n"
         "  { method = \"root.op\"; approvers = ( \"reader\", \"gadget\" ); } );\n"
         "exclusive_roles = ( (\"root\", \"reader\"), (\"blocker\", \"gadget\") );\n";

static tkm_policy_decision decide(const tkm_policy *p, const tkm_policy_principal *who,
                                  const char *method, const tkm_policy_target *t)
{
	tkm_policy_decision d;

	CHECK_EQ_INT(tkm_policy_check(p, who, method, t, &d), TKM_OK);
	return d;
}

static bool allowed(const tkm_policy *p, const tkm_policy_principal *who, const char *method,
                    const tkm_policy_target *t)
{
	return decide(p, who, method, t).allow;
}

static void test_decisions(void)
{
	tkm_policy *p = parse_ok(base_policy);
	const tkm_policy_grant reader[] = {{"reader", NULL}};
	const tkm_policy_grant root[] = {{"root", NULL}};
	const tkm_policy_grant root_blocker[] = {{"root", NULL}, {"blocker", NULL}};
	const tkm_policy_grant gadget[] = {{"gadget", NULL}};
	const tkm_policy_grant ghost[] = {{"ghost", NULL}, {NULL, NULL}};
	tkm_policy_principal op_reader = {TKM_POLICY_HOLDER_OPERATOR, "alice", reader, 1};
	tkm_policy_principal op_root = {TKM_POLICY_HOLDER_OPERATOR, "bob", root, 1};
	tkm_policy_principal op_both = {TKM_POLICY_HOLDER_OPERATOR, "carol", root_blocker, 2};
	tkm_policy_principal dev_reader = {TKM_POLICY_HOLDER_DEVICE, "d1", reader, 1};
	tkm_policy_principal dev_gadget = {TKM_POLICY_HOLDER_DEVICE, "d2", gadget, 1};
	tkm_policy_principal op_gadget = {TKM_POLICY_HOLDER_OPERATOR, "eve", gadget, 1};
	tkm_policy_principal any_reader = {TKM_POLICY_HOLDER_ANY, "x", reader, 1};
	tkm_policy_principal op_ghost = {TKM_POLICY_HOLDER_OPERATOR, "g", ghost, 2};
	tkm_policy_principal op_none = {TKM_POLICY_HOLDER_OPERATOR, "n", NULL, 3};
	tkm_policy_decision d;

	CHECK(p != NULL);
	if (p == NULL) {
		return;
	}
	/* deny by default */
	d = decide(p, &op_reader, "thing.put", NULL);
	CHECK(!d.allow);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_DEFAULT);
	CHECK_STR(d.why, "denied by default");
	CHECK_STR(d.role, "");
	CHECK(!allowed(p, NULL, "thing.get", NULL));
	d = decide(p, NULL, "thing.get", NULL);
	CHECK_STR(d.why, "denied by default: no principal");
	CHECK(!allowed(p, &op_ghost, "thing.get", NULL)); /* unknown role: nothing */
	CHECK(!allowed(p, &op_none, "thing.get", NULL));  /* NULL grants: nothing */
	CHECK(allowed(p, &op_none, "sys.info", NULL));    /* but still authenticated */
	/* allow, and which rule decided (rules are sorted: audit.* is allow[0]) */
	d = decide(p, &op_reader, "audit.list", NULL);
	CHECK(d.allow);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_ALLOW);
	CHECK_STR(d.role, "reader");
	CHECK_EQ_INT(d.rule, 0);
	CHECK(d.dual_control);
	CHECK_STR(d.why, "allowed by reader allow[0] audit.*");
	d = decide(p, &op_reader, "thing.get", NULL);
	CHECK(d.allow);
	CHECK_EQ_INT(d.rule, 1);
	CHECK(!d.dual_control);
	/* an explicit deny wins over an allow of the same role... */
	d = decide(p, &op_reader, "audit.archive", NULL);
	CHECK(!d.allow);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_DENY);
	CHECK_STR(d.role, "reader");
	CHECK_EQ_INT(d.rule, 0);
	CHECK_STR(d.why, "denied by reader deny[0] audit.archive");
	CHECK(d.dual_control);
	/* ...over another role's "*", in either grant order... */
	CHECK(allowed(p, &op_root, "thing.get", NULL));
	d = decide(p, &op_both, "thing.get", NULL);
	CHECK(!d.allow);
	CHECK_STR(d.role, "blocker");
	CHECK(allowed(p, &op_both, "thing.put", NULL));
	{
		const tkm_policy_grant rev[] = {{"blocker", NULL}, {"root", NULL}};
		tkm_policy_principal op_rev = {TKM_POLICY_HOLDER_OPERATOR, "c", rev, 2};
		CHECK(!allowed(p, &op_rev, "thing.get", NULL));
	}
	/* ...and over the public and authenticated lists */
	CHECK(allowed(p, &op_root, "sys.info", NULL));
	d = decide(p, &op_both, "sys.info", NULL);
	CHECK(!d.allow);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_DENY);
	CHECK(!allowed(p, &op_both, "sys.ping", NULL));
	/* public and authenticated */
	d = decide(p, NULL, "sys.ping", NULL);
	CHECK(d.allow);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_PUBLIC);
	CHECK_STR(d.why, "allowed: public method");
	CHECK(tkm_policy_is_public(p, "auth.login"));
	CHECK(!tkm_policy_is_public(p, "sys.info"));
	CHECK(!allowed(p, NULL, "sys.info", NULL));
	d = decide(p, &dev_gadget, "sys.info", NULL);
	CHECK(d.allow);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_AUTHENTICATED);
	/* wildcards */
	CHECK(allowed(p, &op_root, "a", NULL));
	CHECK(allowed(p, &op_root, "anything.at.all", NULL));
	CHECK(allowed(p, &op_reader, "audit.x.y", NULL));
	CHECK(!allowed(p, &op_reader, "audit", NULL));
	CHECK(!allowed(p, &op_reader, "auditx.list", NULL));
	CHECK(!allowed(p, &op_reader, "audi.list", NULL));
	CHECK(!allowed(p, &op_reader, "thing.get.x", NULL));
	/* holders: a role for devices gives an operator nothing, and the reverse */
	CHECK(allowed(p, &dev_gadget, "thing.put", NULL));
	CHECK(!allowed(p, &op_gadget, "thing.put", NULL));
	CHECK(!allowed(p, &dev_reader, "thing.get", NULL));
	CHECK(!allowed(p, &any_reader, "thing.get", NULL));
	/* malformed method names are denied, not errors */
	static const char *const bad[] = {
	    "", "*", "audit.*", "Audit.list", "audit..list", "audit.list.", "audit list"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = decide(p, &op_root, bad[i], NULL);
		CHECK(!d.allow);
		CHECK_STR(d.why, "denied by default: not a method name");
	}
	CHECK_EQ_INT(tkm_policy_check(NULL, &op_root, "a.b", NULL, &d), TKM_E_INVALID_ARG);
	CHECK(!d.allow);
	CHECK_EQ_INT(tkm_policy_check(p, &op_root, NULL, NULL, &d), TKM_E_INVALID_ARG);
	CHECK(!d.allow);
	CHECK_EQ_INT(tkm_policy_check(p, &op_root, "a.b", NULL, NULL), TKM_E_INVALID_ARG);
	/* dual control */
	CHECK(tkm_policy_is_dual_control(p, "thing.put"));
	CHECK(tkm_policy_is_dual_control(p, "audit.verify"));
	CHECK(!tkm_policy_is_dual_control(p, "thing.get"));
	CHECK(!tkm_policy_is_dual_control(p, "audit"));
	CHECK(!tkm_policy_is_dual_control(p, NULL));
	d = decide(p, NULL, "thing.put", NULL);
	CHECK(!d.allow);
	CHECK(d.dual_control);
	tkm_policy_free(p);
}

static void test_approvals(void)
{
	tkm_policy *p = parse_ok(base_policy);
	const tkm_policy_grant reader[] = {{"reader", NULL}};
	const tkm_policy_grant root[] = {{"root", NULL}};
	const tkm_policy_grant root_blocker[] = {{"root", NULL}, {"blocker", NULL}};
	const tkm_policy_grant gadget[] = {{"gadget", NULL}};
	tkm_policy_principal op_reader = {TKM_POLICY_HOLDER_OPERATOR, "alice", reader, 1};
	tkm_policy_principal op_root = {TKM_POLICY_HOLDER_OPERATOR, "bob", root, 1};
	tkm_policy_principal op_both = {TKM_POLICY_HOLDER_OPERATOR, "carol", root_blocker, 2};
	tkm_policy_principal dev_gadget = {TKM_POLICY_HOLDER_DEVICE, "d2", gadget, 1};
	tkm_policy_principal op_gadget = {TKM_POLICY_HOLDER_OPERATOR, "eve", gadget, 1};
	tkm_policy_decision d;

	CHECK(p != NULL);
	if (p == NULL) {
		return;
	}
	/* named approvers: holding the role is enough, calling rights are not */
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_reader, "root.op", NULL, &d), TKM_OK);
	CHECK(d.allow);
	CHECK(d.dual_control);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_APPROVER);
	CHECK_STR(d.role, "reader");
	CHECK_STR(d.why, "allowed: reader approves dual_control root.op");
	CHECK(!allowed(p, &op_reader, "root.op", NULL));
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_root, "root.op", NULL, &d), TKM_OK);
	CHECK(!d.allow);
	CHECK_STR(d.why, "denied: no approver role of root.op is held");
	CHECK(allowed(p, &op_root, "root.op", NULL));
	CHECK_EQ_INT(tkm_policy_check_approval(p, &dev_gadget, "root.op", NULL, &d), TKM_OK);
	CHECK(d.allow);
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_gadget, "root.op", NULL, &d), TKM_OK);
	CHECK(!d.allow); /* the holder still counts */
	/* without approvers: whoever may call it, on that target */
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_root, "thing.put", NULL, &d), TKM_OK);
	CHECK(d.allow);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_ALLOW);
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_reader, "thing.put", NULL, &d), TKM_OK);
	CHECK(!d.allow);
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_reader, "audit.list", NULL, &d), TKM_OK);
	CHECK(d.allow);
	/* an explicit deny wins here too */
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_reader, "audit.archive", NULL, &d), TKM_OK);
	CHECK(!d.allow);
	CHECK_EQ_INT(d.basis, TKM_POLICY_BY_DENY);
	/* not dual-control, no principal, malformed */
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_both, "thing.put", NULL, &d), TKM_OK);
	CHECK(d.allow);
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_root, "thing.get", NULL, &d), TKM_OK);
	CHECK(!d.allow);
	CHECK_STR(d.why, "denied: thing.get is not dual-control");
	CHECK_EQ_INT(tkm_policy_check_approval(p, NULL, "root.op", NULL, &d), TKM_OK);
	CHECK(!d.allow);
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_root, "root.*", NULL, &d), TKM_OK);
	CHECK(!d.allow);
	CHECK_EQ_INT(tkm_policy_check_approval(p, &op_root, NULL, NULL, &d), TKM_E_INVALID_ARG);
	CHECK(!d.allow);
	tkm_policy_free(p);
}

static void test_scopes(void)
{
	tkm_policy *p = parse_ok(base_policy);
	const tkm_policy_grant g1[] = {{"scoped", "site:S1,key:K7,site:S2"}};
	const tkm_policy_grant g2[] = {{"scoped", "merchant:S1,site:S3"}};
	const tkm_policy_grant g3[] = {{"scoped", "site:S1,bogus"}};
	tkm_policy_principal who = {TKM_POLICY_HOLDER_OPERATOR, "T1", g1, 1};
	tkm_policy_principal who2 = {TKM_POLICY_HOLDER_OPERATOR, NULL, g2, 1};
	tkm_policy_principal who3 = {TKM_POLICY_HOLDER_OPERATOR, "", g3, 1};
	const tkm_policy_target in = {"M1", "G1", "K1", "S1", "T1"};
	const tkm_policy_target out = {"M2", "G2", "K2", "S2", "T2"};
	const tkm_policy_target empty = {"", "", "", "", ""};
	const tkm_policy_target absent = {NULL, NULL, NULL, NULL, NULL};
	static const char *const literal[] = {"m.x", "g.x", "k.x", "s.x", "t.x"};
	tkm_policy_decision d;

	CHECK(p != NULL);
	if (p == NULL) {
		return;
	}
	/* each literal kind matches its own attribute only */
	for (size_t i = 0; i < 5; i++) {
		tkm_policy_target one = out;
		const char **field[] = {&one.merchant, &one.group, &one.key, &one.site,
		                        &one.terminal};
		const char *value[] = {"M1", "G1", "K1", "S1", "T1"};

		CHECK(allowed(p, &who, literal[i], &in));
		CHECK(!allowed(p, &who, literal[i], &out));
		CHECK(!allowed(p, &who, literal[i], &empty));
		CHECK(!allowed(p, &who, literal[i], &absent));
		CHECK(!allowed(p, &who, literal[i], NULL));
		for (size_t k = 0; k < 5; k++) {
			one = out;
			*field[k] = value[k];
			if (k == i) {
				CHECK(allowed(p, &who, literal[i], &one));
			} else {
				CHECK(!allowed(p, &who, literal[i], &one));
			}
		}
	}
	d = decide(p, &who, "s.x", &in);
	CHECK_STR(d.why, "allowed by scoped allow[6] s.x scope site:S1");
	/* $self: the principal's own id, compared with the attribute of the rule's kind */
	CHECK(allowed(p, &who, "self.t", &in));
	CHECK(!allowed(p, &who, "self.t", &out));
	CHECK(!allowed(p, &who, "self.m", &in)); /* merchant M1 is not "T1" */
	{
		tkm_policy_target t = out;
		t.merchant = "T1";
		CHECK(allowed(p, &who, "self.m", &t));
	}
	CHECK(!allowed(p, &who2, "self.t", &in)); /* no id */
	CHECK(!allowed(p, &who3, "self.t", &empty));
	/* $assigned: the values bound to the grant, of the rule's kind only */
	CHECK(allowed(p, &who, "asg.s", &in));
	CHECK(allowed(p, &who, "asg.s", &out)); /* S2 is assigned too */
	{
		tkm_policy_target t = in;
		t.site = "S3";
		CHECK(!allowed(p, &who, "asg.s", &t));
		CHECK(allowed(p, &who2, "asg.s", &t));
		t.site = "S";
		CHECK(!allowed(p, &who, "asg.s", &t)); /* no prefix matches */
		t.site = "S12";
		CHECK(!allowed(p, &who, "asg.s", &t));
		t.key = "K7";
		CHECK(allowed(p, &who, "asg.k", &t));
	}
	CHECK(!allowed(p, &who, "asg.k", &in));  /* K1 is not assigned */
	CHECK(!allowed(p, &who2, "asg.s", &in)); /* merchant:S1 is not site:S1 */
	CHECK(!allowed(p, &who, "asg.s", &absent));
	CHECK(!allowed(p, &who3, "asg.s", &in)); /* a malformed list grants nothing */
	/* a scoped deny only bites in scope; unscoped allows match any target */
	CHECK(allowed(p, &who, "open.shut", &in));
	CHECK(allowed(p, &who, "open.shut", NULL));
	{
		tkm_policy_target t = in;
		t.site = "S9";
		d = decide(p, &who, "open.shut", &t);
		CHECK(!d.allow);
		CHECK_STR(d.why, "denied by scoped deny[0] open.shut scope site:S9");
	}
	tkm_policy_free(p);
}

static void test_assignment(void)
{
	tkm_policy *p = parse_ok(base_policy);
	const char *const ok1[] = {"root", "blocker"};
	const char *const bad1[] = {"reader", "scoped", "root"};
	const char *const bad2[] = {"gadget", NULL, "blocker"};
	char why[256] = "";

	CHECK(p != NULL);
	if (p == NULL) {
		return;
	}
	CHECK_EQ_INT(tkm_policy_exclusive_ok(p, ok1, 2, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_policy_exclusive_ok(p, NULL, 0, why, sizeof(why)), TKM_OK);
	CHECK_EQ_INT(tkm_policy_exclusive_ok(p, bad1, 3, why, sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
	CHECK_STR(why, "separation of duties: no one may hold both 'reader' and 'root'");
	CHECK_EQ_INT(tkm_policy_exclusive_ok(p, bad2, 3, why, sizeof(why)),
	             TKM_E_FAILED_PRECONDITION);
	CHECK_STR(why, "separation of duties: no one may hold both 'blocker' and 'gadget'");

	CHECK_EQ_INT(
	    tkm_policy_assignable(p, "reader", TKM_POLICY_HOLDER_OPERATOR, NULL, why, sizeof(why)),
	    TKM_OK);
	CHECK_EQ_INT(
	    tkm_policy_assignable(p, "root", TKM_POLICY_HOLDER_DEVICE, "", why, sizeof(why)),
	    TKM_OK);
	CHECK_EQ_INT(
	    tkm_policy_assignable(p, "nobody", TKM_POLICY_HOLDER_OPERATOR, NULL, why, sizeof(why)),
	    TKM_E_NOT_FOUND);
	CHECK_STR(why, "the policy has no role 'nobody'");
	CHECK_EQ_INT(
	    tkm_policy_assignable(p, "gadget", TKM_POLICY_HOLDER_OPERATOR, NULL, why, sizeof(why)),
	    TKM_E_BAD_REQUEST);
	CHECK_STR(why, "role 'gadget' is held by a device, not by a operator");
	CHECK_EQ_INT(tkm_policy_assignable(p, "reader", TKM_POLICY_HOLDER_OPERATOR, "site:S1", why,
	                                   sizeof(why)),
	             TKM_E_BAD_REQUEST);
	CHECK_STR(why, "role 'reader' takes no assigned scope (none of its rules uses $assigned)");
	CHECK_EQ_INT(tkm_policy_assignable(p, "scoped", TKM_POLICY_HOLDER_OPERATOR,
	                                   "site:S1,key:K2", why, sizeof(why)),
	             TKM_OK);
	CHECK_EQ_INT(tkm_policy_assignable(p, "scoped", TKM_POLICY_HOLDER_OPERATOR,
	                                   "site:S1,merchant:M1", why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	CHECK_STR(why, "role 'scoped' has no rule scoped to merchant:$assigned");
	CHECK_EQ_INT(
	    tkm_policy_assignable(p, "scoped", TKM_POLICY_HOLDER_OPERATOR, NULL, why, sizeof(why)),
	    TKM_E_BAD_REQUEST);
	CHECK_STR(why, "role 'scoped' needs an assigned scope (KIND:ID values) for its $assigned "
	               "rules");
	CHECK_EQ_INT(tkm_policy_assignable(p, "scoped", TKM_POLICY_HOLDER_OPERATOR,
	                                   "site:S1,site:S1", why, sizeof(why)),
	             TKM_E_BAD_REQUEST);
	CHECK_STR(why, "the assigned scope names a value twice");
	static const char *const malformed[] = {"S1",       "site:",      "site:S1,",
	                                        ",site:S1", "site:S 1",   "site:S1;x",
	                                        "shop:S1",  "site:$self", "site:S1, site:S2"};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		CHECK_EQ_INT(tkm_policy_assignable(p, "scoped", TKM_POLICY_HOLDER_OPERATOR,
		                                   malformed[i], why, sizeof(why)),
		             TKM_E_BAD_REQUEST);
		CHECK(strncmp(why, "the assigned scope must be KIND:ID values", 41) == 0);
	}
	{
		/* 65 values: over the cap, and 513 bytes: over the length */
		char list[TKM_POLICY_ASSIGNED_MAX + 64];
		size_t n = 0;
		for (int i = 0; i < 65; i++) {
			int w =
			    snprintf(list + n, sizeof(list) - n, "%skey:%d", i > 0 ? "," : "", i);
			CHECK(w > 0 && (size_t)w < sizeof(list) - n);
			n += (size_t)w;
		}
		CHECK_EQ_INT(tkm_policy_assignable(p, "scoped", TKM_POLICY_HOLDER_OPERATOR, list,
		                                   why, sizeof(why)),
		             TKM_E_BAD_REQUEST);
		CHECK_STR(why, "the assigned scope holds more than 64 values");
		memset(list, 'a', TKM_POLICY_ASSIGNED_MAX + 1);
		memcpy(list, "key:", 4);
		list[TKM_POLICY_ASSIGNED_MAX + 1] = '\0';
		CHECK_EQ_INT(tkm_policy_assignable(p, "scoped", TKM_POLICY_HOLDER_OPERATOR, list,
		                                   why, sizeof(why)),
		             TKM_E_BAD_REQUEST);
	}
	tkm_policy_free(p);
}

/* ---- Canonical form and diff ---- */

static char *canonical(const tkm_policy *p)
{
	char *text = NULL;
	size_t len = 0;

	CHECK_EQ_INT(tkm_policy_canonical(p, &text, &len), TKM_OK);
	CHECK(text != NULL && strlen(text) == len);
	return text;
}

/* parse(canonical(p)) equals p, and its canonical text is the same bytes. */
static void check_round_trip(const tkm_policy *p)
{
	char *t1 = canonical(p), *t2 = NULL;
	tkm_policy *q = NULL;
	char *diff = NULL;
	size_t n = 99;

	if (t1 == NULL) {
		return;
	}
	q = parse_ok(t1);
	CHECK(q != NULL);
	if (q != NULL) {
		CHECK(tkm_policy_equal(p, q));
		t2 = canonical(q);
		CHECK_STR(t1, t2);
		CHECK_EQ_INT(tkm_policy_diff(p, q, &diff, &n), TKM_OK);
		CHECK_EQ_INT(n, 0);
		CHECK_STR(diff, "");
	}
	free(diff);
	free(t2);
	free(t1);
	tkm_policy_free(q);
}

static const char shuffled_policy[] =
    HEAD "exclusive_roles = ( (\"gadget\", \"blocker\"), (\"reader\", \"root\") );\n"
         "dual_control = ( { approvers = [ \"gadget\", \"reader\" ]; method = \"root.op\"; },\n"
         "  \"audit.*\", \"thing.put\" );\n"
         "authenticated = ( \"sys.info\" );\n"
         "public = ( \"auth.login\", \"sys.ping\" );\n"
         "roles = {\n"
         "  scoped = {\n"
         "    deny = ( { scope = \"site:S9\"; method = \"open.shut\"; } );\n"
         "    allow = (\n"
         "      \"open.*\",\n"
         "      { method = \"asg.k\"; scope = \"key:$assigned\"; },\n"
         "      { method = \"t.x\"; scope = \"terminal:T1\"; },\n"
         "      { method = \"asg.s\"; scope = \"site:$assigned\"; },\n"
         "      { method = \"s.x\"; scope = \"site:S1\"; },\n"
         "      { method = \"self.m\"; scope = \"merchant:$self\"; },\n"
         "      { method = \"k.x\"; scope = \"key:K1\"; },\n"
         "      { method = \"self.t\"; scope = \"terminal:$self\"; },\n"
         "      { method = \"g.x\"; scope = \"group:G1\"; },\n"
         "      { method = \"m.x\"; scope = \"merchant:M1\"; }\n"
         "    );\n"
         "  };\n"
         "  gadget = { allow = [ \"thing.*\" ]; holder = \"device\"; };\n"
         "  root = { allow = ( \"*\" ); };\n"
         "  blocker = { deny = ( \"sys.ping\", \"thing.get\", \"sys.info\" ); };\n"
         "  reader = {\n"
         "    deny = ( \"audit.archive\" );\n"
         "    allow = ( \"thing.get\", \"audit.*\" );\n"
         "    holder = \"operator\";\n"
         "    description = \"Reads things.\";\n"
         "  };\n"
         "};\n";

static const char base_canonical[] =
    "# tkm policy, canonical form\n"
    "version = 1;\n"
    "\n"
    "roles = {\n"
    "  blocker = {\n"
    "    deny = (\n"
    "      \"sys.info\",\n"
    "      \"sys.ping\",\n"
    "      \"thing.get\"\n"
    "    );\n"
    "  };\n"
    "\n"
    "  gadget = {\n"
    "    holder = \"device\";\n"
    "    allow = (\n"
    "      \"thing.*\"\n"
    "    );\n"
    "  };\n"
    "\n"
    "  reader = {\n"
    "    description = \"Reads things.\";\n"
    "    holder = \"operator\";\n"
    "    allow = (\n"
    "      \"audit.*\",\n"
    "      \"thing.get\"\n"
    "    );\n"
    "    deny = (\n"
    "      \"audit.archive\"\n"
    "    );\n"
    "  };\n"
    "\n"
    "  root = {\n"
    "    allow = (\n"
    "      \"*\"\n"
    "    );\n"
    "  };\n"
    "\n"
    "  scoped = {\n"
    "    allow = (\n"
    "      { method = \"asg.k\"; scope = \"key:$assigned\"; },\n"
    "      { method = \"asg.s\"; scope = \"site:$assigned\"; },\n"
    "      { method = \"g.x\"; scope = \"group:G1\"; },\n"
    "      { method = \"k.x\"; scope = \"key:K1\"; },\n"
    "      { method = \"m.x\"; scope = \"merchant:M1\"; },\n"
    "      \"open.*\",\n"
    "      { method = \"s.x\"; scope = \"site:S1\"; },\n"
    "      { method = \"self.m\"; scope = \"merchant:$self\"; },\n"
    "      { method = \"self.t\"; scope = \"terminal:$self\"; },\n"
    "      { method = \"t.x\"; scope = \"terminal:T1\"; }\n"
    "    );\n"
    "    deny = (\n"
    "      { method = \"open.shut\"; scope = \"site:S9\"; }\n"
    "    );\n"
    "  };\n"
    "};\n"
    "\n"
    "public = (\n"
    "  \"auth.login\",\n"
    "  \"sys.ping\"\n"
    ");\n"
    "\n"
    "authenticated = (\n"
    "  \"sys.info\"\n"
    ");\n"
    "\n"
    "dual_control = (\n"
    "  \"audit.*\",\n"
    "  { method = \"root.op\"; approvers = ( \"gadget\", \"reader\" ); },\n"
    "  \"thing.put\"\n"
    ");\n"
    "\n"
    "exclusive_roles = (\n"
    "  (\"blocker\", \"gadget\"),\n"
    "  (\"reader\", \"root\")\n"
    ");\n";

static void test_canonical(const tkm_policy *def)
{
	tkm_policy *a = parse_ok(base_policy);
	tkm_policy *b = parse_ok(shuffled_policy);
	tkm_policy *e = parse_ok(HEAD "roles = { };\n");
	tkm_policy *q = parse_ok(HEAD "roles = { r = { description = \"say \\\"hi\\\" \\\\ "
	                              "o/\"; }; };\n");
	char *ta = NULL, *tb = NULL, *te = NULL, *tq = NULL;

	CHECK(a != NULL && b != NULL && e != NULL && q != NULL);
	if (a == NULL || b == NULL || e == NULL || q == NULL) {
		goto out;
	}
	ta = canonical(a);
	tb = canonical(b);
	te = canonical(e);
	tq = canonical(q);
	/* the same policy written in another order renders to the same bytes */
	CHECK_STR(ta, base_canonical);
	CHECK_STR(tb, base_canonical);
	CHECK(tkm_policy_equal(a, b));
	CHECK_STR(te, "# tkm policy, canonical form\nversion = 1;\n\nroles = {\n};\n\n"
	              "public = ( );\n\nauthenticated = ( );\n\ndual_control = ( );\n\n"
	              "exclusive_roles = ( );\n");
	CHECK(strstr(tq, "description = \"say \\\"hi\\\" \\\\ o/\";") != NULL);
	check_round_trip(a);
	check_round_trip(e);
	check_round_trip(q);
	if (def != NULL) {
		check_round_trip(def);
	}
	CHECK(!tkm_policy_equal(a, e));
	CHECK(!tkm_policy_equal(a, NULL));
	CHECK(tkm_policy_equal(NULL, NULL));
out:
	free(ta);
	free(tb);
	free(te);
	free(tq);
	tkm_policy_free(a);
	tkm_policy_free(b);
	tkm_policy_free(e);
	tkm_policy_free(q);
}

static const char changed_policy[] =
    HEAD "roles = {\n"
         "  reader = {\n"
         "    description = \"Reads more things.\";\n"
         "    allow = ( \"audit.*\", \"thing.get\", \"thing.list\" );\n"
         "  };\n"
         "  root = {\n"
         "    allow = ( \"*\" );\n"
         "  };\n"
         "  blocker = {\n"
         "    deny = ( \"thing.get\", \"sys.info\", \"sys.ping\" );\n"
         "  };\n"
         "  scoped = {\n"
         "    allow = (\n"
         "      { method = \"m.x\"; scope = \"merchant:M1\"; },\n"
         "      { method = \"g.x\"; scope = \"group:G1\"; },\n"
         "      { method = \"k.x\"; scope = \"key:K1\"; },\n"
         "      { method = \"s.x\"; scope = \"site:S2\"; },\n"
         "      { method = \"t.x\"; scope = \"terminal:T1\"; },\n"
         "      { method = \"self.t\"; scope = \"terminal:$self\"; },\n"
         "      { method = \"self.m\"; scope = \"merchant:$self\"; },\n"
         "      { method = \"asg.s\"; scope = \"site:$assigned\"; },\n"
         "      { method = \"asg.k\"; scope = \"key:$assigned\"; },\n"
         "      \"open.*\"\n"
         "    );\n"
         "    deny = ( { method = \"open.shut\"; scope = \"site:S9\"; } );\n"
         "  };\n"
         "  custodian = {\n"
         "    holder = \"operator\";\n"
         "    allow = ( \"key.component_enter\" );\n"
         "  };\n"
         "};\n"
         "public = ( \"sys.ping\", \"auth.login\" );\n"
         "authenticated = ( \"sys.info\", \"auth.whoami\" );\n"
         "dual_control = ( \"thing.put\", \"key.*\",\n"
         "  { method = \"root.op\"; approvers = ( \"reader\" ); } );\n"
         "exclusive_roles = ( (\"root\", \"reader\"), (\"custodian\", \"root\") );\n";

static void test_diff(void)
{
	tkm_policy *a = parse_ok(base_policy);
	tkm_policy *b = parse_ok(changed_policy);
	char *text = NULL;
	size_t n = 0;
	static const char *const want =
	    "+ role custodian holder=operator\n"
	    "+ custodian allow key.component_enter\n"
	    "- role gadget holder=device\n"
	    "- gadget allow thing.*\n"
	    "~ role reader holder=operator -> holder=any\n"
	    "~ role reader description=\"Reads things.\" -> description=\"Reads more things.\"\n"
	    "+ reader allow thing.list\n"
	    "- reader deny audit.archive\n"
	    "- scoped allow s.x scope site:S1\n"
	    "+ scoped allow s.x scope site:S2\n"
	    "+ authenticated auth.whoami\n"
	    "- dual_control audit.*\n"
	    "+ dual_control key.*\n"
	    "~ dual_control root.op approvers=gadget,reader -> approvers=reader\n"
	    "- exclusive_roles blocker gadget\n"
	    "+ exclusive_roles custodian root\n";

	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL) {
		goto out;
	}
	CHECK_EQ_INT(tkm_policy_diff(a, b, &text, &n), TKM_OK);
	CHECK_STR(text, want);
	CHECK_EQ_INT(n, 16);
	printf("diff of two test policies:\n%s", text != NULL ? text : "(null)");
	free(text);
	text = NULL;
	/* the reverse diff swaps the signs */
	CHECK_EQ_INT(tkm_policy_diff(b, a, &text, &n), TKM_OK);
	CHECK_EQ_INT(n, 16);
	CHECK(text != NULL && strstr(text, "- role custodian holder=operator\n") != NULL);
	CHECK(text != NULL && strstr(text, "+ exclusive_roles blocker gadget\n") != NULL);
	CHECK(text != NULL &&
	      strstr(text, "~ role reader holder=any -> holder=operator\n") != NULL);
	CHECK_EQ_INT(tkm_policy_diff(a, NULL, &text, &n), TKM_E_INVALID_ARG);
out:
	free(text);
	tkm_policy_free(a);
	tkm_policy_free(b);
}

/* ---- The permission matrix of the shipped policy ---- */

static const char *const methods[] = {
    "sys.ping",
    "sys.info",
    "auth.login",
    "auth.logout",
    "auth.whoami",
    "auth.change_password",
    "operator.create",
    "operator.list",
    "operator.show",
    "operator.reset_password",
    "operator.unlock",
    "operator.disable",
    "role.assign",
    "role.revoke",
    "policy.show",
    "policy.apply",
    "approval.list",
    "approval.approve",
    "approval.reject",
    "audit.list",
    "audit.verify",
    "audit.public_key",
    "audit.checkpoint",
    "audit.archive",
    "store.backup",
    "device.register",
    "device.disable",
    "terminal.add",
    "terminal.import",
    "terminal.show",
    "terminal.list",
    "terminal.export",
    "terminal.enroll_code",
    "terminal.enroll",
    "terminal.checkin",
    "terminal.suspend",
    "terminal.resume",
    "terminal.revoke",
    "terminal.decommission",
    "terminal.maintenance_add",
    "terminal.custody_add",
    "key.ceremony_begin",
    "key.component_enter",
    "key.ceremony_finish",
    "key.export",
    "key.inject",
    "key.rotate_working",
    "password.read",
    "password.rotate",
};

#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static const char *const roles[] = {"admin",   "security-officer",     "key-custodian",
                                    "auditor", "provisioning-station", "terminal"};

#define NROLES (sizeof(roles) / sizeof(roles[0]))

/*
 * One row per method: the method, then one cell for no principal and one per
 * role (a principal holding only that role), then the dual-control mark.
 *   Y  allowed for any target
 *   S  allowed only in the role's scope (its own terminal, its assigned site)
 *   x  denied by an explicit deny rule
 *   -  denied by default
 * and "2" when the method is dual-control ("." when not).
 */
static const char *const expected_matrix[NMETHODS] = {
    /* method               an ad so kc au ps te dc */
    "sys.ping                 Y  Y  Y  Y  Y  Y  Y  .",
    "sys.info                 -  Y  Y  Y  Y  Y  Y  .",
    "auth.login               Y  Y  Y  Y  Y  Y  Y  .",
    "auth.logout              -  Y  Y  Y  Y  Y  Y  .",
    "auth.whoami              -  Y  Y  Y  Y  Y  Y  .",
    "auth.change_password     -  Y  Y  Y  Y  Y  Y  .",
    "operator.create          -  Y  -  -  -  -  -  2",
    "operator.list            -  Y  -  -  -  -  -  .",
    "operator.show            -  Y  -  -  -  -  -  .",
    "operator.reset_password  -  Y  -  -  -  -  -  2",
    "operator.unlock          -  Y  -  -  -  -  -  .",
    "operator.disable         -  Y  -  -  -  -  -  .",
    "role.assign              -  Y  -  -  -  -  -  2",
    "role.revoke              -  Y  -  -  -  -  -  2",
    "policy.show              -  Y  Y  -  -  -  -  .",
    "policy.apply             -  Y  -  -  -  -  -  2",
    "approval.list            -  Y  Y  -  -  -  -  .",
    "approval.approve         -  Y  Y  -  -  -  -  .",
    "approval.reject          -  Y  Y  -  -  -  -  .",
    "audit.list               -  -  -  -  Y  -  -  .",
    "audit.verify             -  -  -  -  Y  -  -  .",
    "audit.public_key         -  -  -  -  Y  -  -  .",
    "audit.checkpoint         -  Y  -  -  -  -  -  .",
    "audit.archive            -  Y  -  -  -  -  -  .",
    "store.backup             -  Y  -  -  -  -  -  .",
    "device.register          -  Y  Y  -  -  -  -  2",
    "device.disable           -  Y  Y  -  -  -  -  .",
    "terminal.add             -  -  Y  -  -  -  -  .",
    "terminal.import          -  -  Y  -  -  -  -  .",
    "terminal.show            -  -  Y  -  -  S  -  .",
    "terminal.list            -  -  Y  -  -  S  -  .",
    "terminal.export          -  x  Y  -  -  -  -  .",
    "terminal.enroll_code     -  -  Y  -  -  S  -  .",
    "terminal.enroll          Y  Y  Y  Y  Y  Y  Y  .",
    "terminal.checkin         -  -  x  -  -  -  S  .",
    "terminal.suspend         -  -  Y  -  -  -  -  .",
    "terminal.resume          -  -  Y  -  -  -  -  2",
    "terminal.revoke          -  -  Y  -  -  -  -  .",
    "terminal.decommission    -  -  Y  -  -  -  -  .",
    "terminal.maintenance_add -  -  Y  -  -  -  -  .",
    "terminal.custody_add     -  -  Y  -  -  -  -  .",
    "key.ceremony_begin       -  x  Y  -  -  -  -  2",
    "key.component_enter      -  x  x  Y  -  -  -  .",
    "key.ceremony_finish      -  x  Y  -  -  -  -  2",
    "key.export               -  x  Y  -  -  -  -  2",
    "key.inject               -  x  Y  -  -  S  -  .",
    "key.rotate_working       -  x  Y  -  -  -  S  .",
    "password.read            -  x  Y  -  -  -  -  .",
    "password.rotate          -  x  Y  -  -  -  S  .",
};

/* Who may approve (tkm_policy_check_approval) each dual-control method. */
static const char *const expected_approvals[] = {
    /* method               ad so kc au ps te */
    "operator.create          Y  Y  -  -  -  -", "operator.reset_password  Y  Y  -  -  -  -",
    "role.assign              Y  Y  -  -  -  -", "role.revoke              Y  Y  -  -  -  -",
    "policy.apply             Y  Y  -  -  -  -", "device.register          -  Y  -  -  -  -",
    "terminal.resume          -  Y  -  -  -  -", "key.ceremony_begin       x  Y  -  -  -  -",
    "key.ceremony_finish      x  Y  -  -  -  -", "key.export               x  Y  -  -  -  -",
};

#define NAPPROVALS (sizeof(expected_approvals) / sizeof(expected_approvals[0]))

static char cell(const tkm_policy *p, const tkm_policy_principal *who, const char *method)
{
	static const tkm_policy_target in = {"M1", "G1", "K1", "S1", "T1"};
	static const tkm_policy_target out = {"M2", "G2", "K2", "S2", "T2"};
	tkm_policy_decision din = decide(p, who, method, &in);
	tkm_policy_decision dout = decide(p, who, method, &out);
	tkm_policy_decision dnone = decide(p, who, method, NULL);

	/* Without target attributes a scoped rule never matches. */
	if (din.allow && !dout.allow) {
		CHECK(!dnone.allow);
	}
	if (din.allow) {
		return dout.allow ? 'Y' : 'S';
	}
	CHECK(!dout.allow);
	return din.basis == TKM_POLICY_BY_DENY ? 'x' : '-';
}

static void test_matrix(const tkm_policy *p)
{
	tkm_policy_grant grants[NROLES];
	tkm_policy_principal who[NROLES];
	char why[256] = "";

	/* One principal per role: its holder kind, own id T1, assigned site S1 if it takes one. */
	for (size_t r = 0; r < NROLES; r++) {
		tkm_policy_role_info info = {0};
		size_t i = 0;

		CHECK_EQ_INT(tkm_policy_role_find(p, roles[r], &i), TKM_OK);
		CHECK_EQ_INT(tkm_policy_role_at(p, i, &info), TKM_OK);
		grants[r].role = roles[r];
		grants[r].assigned =
		    strcmp(roles[r], "provisioning-station") == 0 ? "site:S1" : NULL;
		CHECK_EQ_INT(tkm_policy_assignable(p, roles[r], info.holder, grants[r].assigned,
		                                   why, sizeof(why)),
		             TKM_OK);
		who[r] = (tkm_policy_principal){info.holder, "T1", &grants[r], 1};
	}
	CHECK_EQ_INT(tkm_policy_role_count(p), NROLES);

	printf("permission matrix of policy/default.policy (Y any target, S own scope only,\n"
	       "x explicit deny, - default deny; 2 = dual control):\n");
	printf("(an: no principal, ad: admin, so: security-officer, kc: key-custodian,\n"
	       "au: auditor, ps: provisioning-station, te: terminal, dc: dual control)\n");
	printf("%-24s an ad so kc au ps te dc\n", "method");
	for (size_t m = 0; m < NMETHODS; m++) {
		char row[128];
		size_t n = 0;
		int w =
		    snprintf(row, sizeof(row), "%-24s %c", methods[m], cell(p, NULL, methods[m]));

		CHECK(w > 0 && (size_t)w < sizeof(row));
		n = (size_t)w;
		for (size_t r = 0; r < NROLES && w > 0; r++) {
			w = snprintf(row + n, sizeof(row) - n, "  %c",
			             cell(p, &who[r], methods[m]));
			CHECK(w > 0 && (size_t)w < sizeof(row) - n);
			n += (size_t)w;
		}
		w = snprintf(row + n, sizeof(row) - n, "  %c",
		             tkm_policy_is_dual_control(p, methods[m]) ? '2' : '.');
		CHECK(w > 0 && (size_t)w < sizeof(row) - n);
		printf("%s\n", row);
		CHECK_STR(row, expected_matrix[m]);
	}

	/* Who may approve each dual-control method (a principal holding only that role). */
	printf("approvers of dual-control methods (Y may approve, x denied by a deny rule):\n");
	printf("%-24s ad so kc au ps te\n", "method");
	for (size_t m = 0; m < NAPPROVALS; m++) {
		char method[TKM_POLICY_METHOD_MAX + 1] = "";
		char row[128];
		size_t len = strcspn(expected_approvals[m], " ");
		size_t n = 0;
		int w;

		/* the method is the first word of the expected row */
		CHECK(len < sizeof(method));
		if (len >= sizeof(method)) {
			continue;
		}
		memcpy(method, expected_approvals[m], len);
		method[len] = '\0';
		CHECK(tkm_policy_is_dual_control(p, method));
		w = snprintf(row, sizeof(row), "%-24s", method);
		CHECK(w > 0 && (size_t)w < sizeof(row));
		n = (size_t)w;
		for (size_t r = 0; r < NROLES && w > 0; r++) {
			static const tkm_policy_target in = {"M1", "G1", "K1", "S1", "T1"};
			tkm_policy_decision d;
			char c;

			CHECK_EQ_INT(tkm_policy_check_approval(p, &who[r], method, &in, &d),
			             TKM_OK);
			c = d.allow ? 'Y' : d.basis == TKM_POLICY_BY_DENY ? 'x' : '-';
			w = snprintf(row + n, sizeof(row) - n, "%s%c", r > 0 ? "  " : " ", c);
			CHECK(w > 0 && (size_t)w < sizeof(row) - n);
			n += (size_t)w;
		}
		printf("%s\n", row);
		CHECK_STR(row, expected_approvals[m]);
	}
	/* and every dual-control method of the list has a row */
	{
		size_t ndual = 0;
		for (size_t m = 0; m < NMETHODS; m++) {
			ndual += tkm_policy_is_dual_control(p, methods[m]) ? 1 : 0;
		}
		CHECK_EQ_INT(ndual, NAPPROVALS);
	}

	/* Separation of duties in the shipped policy. */
	{
		const char *const aa[] = {"auditor", "admin"};
		const char *const so[] = {"security-officer", "key-custodian", "admin"};
		CHECK_EQ_INT(tkm_policy_exclusive_ok(p, aa, 2, why, sizeof(why)),
		             TKM_E_FAILED_PRECONDITION);
		CHECK_STR(why, "separation of duties: no one may hold both 'admin' and 'auditor'");
		CHECK_EQ_INT(tkm_policy_exclusive_ok(p, so, 3, why, sizeof(why)), TKM_OK);
	}
	/* A station outside its sites, a terminal acting on another terminal. */
	{
		const tkm_policy_target other = {NULL, NULL, NULL, "S2", "T2"};
		const tkm_policy_target own = {NULL, NULL, NULL, "S1", "T1"};
		tkm_policy_decision d = decide(p, &who[4], "key.inject", &other);

		CHECK(!d.allow);
		CHECK_EQ_INT(d.basis, TKM_POLICY_BY_DEFAULT);
		d = decide(p, &who[4], "key.inject", &own);
		CHECK(d.allow);
		CHECK_STR(d.why, "allowed by provisioning-station allow[0] key.inject scope "
		                 "site:$assigned");
		d = decide(p, &who[5], "terminal.checkin", &other);
		CHECK(!d.allow);
		d = decide(p, &who[5], "terminal.checkin", &own);
		CHECK(d.allow);
		CHECK_STR(d.why,
		          "allowed by terminal allow[2] terminal.checkin scope terminal:$self");
		d = decide(p, &who[0], "key.export", &own);
		CHECK(!d.allow);
		CHECK(d.dual_control);
		CHECK_STR(d.why, "denied by admin deny[0] key.*");
	}
}

int main(int argc, char **argv)
{
	tkm_policy *def = NULL;
	char why[512] = "";

	test_parse_errors();
	test_parse_forms();
	test_decisions();
	test_approvals();
	test_scopes();
	test_assignment();
	test_diff();
	if (argc < 2) {
		fprintf(stderr, "usage: policy_test PATH/policy/default.policy\n");
		CHECK(argc >= 2);
	} else {
		CHECK_EQ_INT(tkm_policy_load(argv[1], &def, why, sizeof(why)), TKM_OK);
		if (def == NULL) {
			fprintf(stderr, "%s\n", why);
		}
	}
	test_canonical(def);
	if (def != NULL) {
		test_matrix(def);
	}
	tkm_policy_free(def);
	return tkm_test_report("policy");
}
