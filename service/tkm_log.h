/*
 * tkm_log.h - tkmd's structured log: one logfmt line per event on stderr.
 *
 *   ts=2026-11-23T09:00:00.123Z level=info msg=request rid=7 method=sys.ping
 *
 * A line is built field by field on the caller's stack and written with one
 * write(2) under a lock, so lines from different threads never interleave.
 * Values are quoted and escaped when they need it; bytes outside printable
 * ASCII are written as \xHH. Callers must never log params, PINs, keys or any
 * other secret: the log is meant to be shipped and kept.
 */
#ifndef TKM_LOG_H
#define TKM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"

#define TKM_LOG_LINE_MAX 2048

typedef enum tkm_log_level {
	TKM_LOG_DEBUG = 0,
	TKM_LOG_INFO,
	TKM_LOG_WARN,
	TKM_LOG_ERROR,
} tkm_log_level;

/* Lines below lvl are dropped. The default is TKM_LOG_INFO. Thread-safe. */
void tkm_log_set_level(tkm_log_level lvl);
bool tkm_log_enabled(tkm_log_level lvl);

/* "debug", "info", "warn", "error"; TKM_E_CONFIG for anything else. */
TKM_MUST_CHECK tkm_err tkm_log_level_parse(const char *s, tkm_log_level *out);
const char *tkm_log_level_name(tkm_log_level lvl);

/*
 * A line under construction. Its fields are private to tkm_log.c; it lives on
 * the caller's stack between tkm_log_begin() and tkm_log_end(). A line whose
 * level is disabled costs nothing more than the calls. Fields that do not fit
 * in TKM_LOG_LINE_MAX are dropped and the line ends with truncated=true.
 */
typedef struct tkm_log_line {
	char buf[TKM_LOG_LINE_MAX];
	size_t len;
	bool on;
	bool cut;
} tkm_log_line;

void tkm_log_begin(tkm_log_line *l, tkm_log_level lvl, const char *msg);
/* key must be a literal of [a-z0-9_]; val may be anything, NULL logs "-". */
void tkm_log_str(tkm_log_line *l, const char *key, const char *val);
void tkm_log_uint(tkm_log_line *l, const char *key, uint64_t val);
void tkm_log_int(tkm_log_line *l, const char *key, int64_t val);
void tkm_log_end(tkm_log_line *l);

/* A line with a message and an optional "error" field (err may be NULL). */
void tkm_log_msg(tkm_log_level lvl, const char *msg, const char *err);

#endif /* TKM_LOG_H */
