/*
 * tkm_test.h - the assertions every tkm test program uses.
 *
 * A failed check prints file:line and the expression, counts the failure and
 * goes on, so one run shows every broken case. A test's main() ends with
 * `return tkm_test_report(name);`, which prints "N passed, N failed" and
 * exits non-zero when anything failed.
 */
#ifndef TKM_TEST_H
#define TKM_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static unsigned tkm_test_passed;
static unsigned tkm_test_failed;

#define CHECK(expr)                                                                                \
	do {                                                                                       \
		if (expr) {                                                                        \
			tkm_test_passed++;                                                         \
		} else {                                                                           \
			tkm_test_failed++;                                                         \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);   \
		}                                                                                  \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
	do {                                                                                       \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                    \
		if (check_a_ == check_b_) {                                                        \
			tkm_test_passed++;                                                         \
		} else {                                                                           \
			tkm_test_failed++;                                                         \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",          \
			        __FILE__, __LINE__, #a, #b, check_a_, check_b_);                   \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *check_a_ = (a), *check_b_ = (b);                                       \
		if (check_a_ != NULL && check_b_ != NULL && strcmp(check_a_, check_b_) == 0) {     \
			tkm_test_passed++;                                                         \
		} else {                                                                           \
			tkm_test_failed++;                                                         \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n",      \
			        __FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",        \
			        check_b_ ? check_b_ : "(null)");                                   \
		}                                                                                  \
	} while (0)

static inline int tkm_test_report(const char *name)
{
	printf("%s: %u passed, %u failed\n", name, tkm_test_passed, tkm_test_failed);
	return tkm_test_failed == 0 && tkm_test_passed > 0 ? 0 : 1;
}

#endif /* TKM_TEST_H */
