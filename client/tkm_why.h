/*
 * tkm_why.h - the one way tkm modules fill a caller's "why" buffer.
 *
 * Fallible internal functions take (char *why, size_t why_len) next to their
 * tkm_err result and write one sentence there for logs and error replies.
 * why may be NULL or why_len 0; a formatting failure leaves an empty string.
 */
#ifndef TKM_WHY_H
#define TKM_WHY_H

#include <stddef.h>

#include "tkm/error.h"

/* Write the sentence. */
void tkm_why_set(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write the sentence and return err, for `return tkm_why_fail(...)`. */
tkm_err tkm_why_fail(char *why, size_t why_len, tkm_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* TKM_WHY_H */
