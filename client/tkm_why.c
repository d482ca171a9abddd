/*
 * tkm_why.c - fill a caller's "why" buffer (see tkm_why.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "tkm_why.h"

static void why_vset(char *why, size_t why_len, const char *fmt, va_list ap)
{
	if (why == NULL || why_len == 0) {
		return;
	}
	if (vsnprintf(why, why_len, fmt, ap) < 0) {
		why[0] = '\0';
	}
}

void tkm_why_set(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_vset(why, why_len, fmt, ap);
	va_end(ap);
}

tkm_err tkm_why_fail(char *why, size_t why_len, tkm_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_vset(why, why_len, fmt, ap);
	va_end(ap);
	return err;
}
