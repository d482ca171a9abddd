/*
 * tkm_log.c - logfmt lines on stderr, one write(2) per line.
 *
 * Holds nothing secret and formats nothing it is not given: what reaches the
 * log is decided by the callers, who never pass params or key material.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tkm_log.h"

/* Room kept at the end of every line for " truncated=true\n". */
#define TKM_LOG_TAIL 24

static atomic_int tkm_log_min = TKM_LOG_INFO;
static pthread_mutex_t tkm_log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const tkm_log_names[] = {"debug", "info", "warn", "error"};

void tkm_log_set_level(tkm_log_level lvl)
{
	atomic_store(&tkm_log_min, (int)lvl);
}

bool tkm_log_enabled(tkm_log_level lvl)
{
	return (int)lvl >= atomic_load(&tkm_log_min);
}

tkm_err tkm_log_level_parse(const char *s, tkm_log_level *out)
{
	for (size_t i = 0; i < sizeof(tkm_log_names) / sizeof(tkm_log_names[0]); i++) {
		if (s != NULL && strcmp(s, tkm_log_names[i]) == 0) {
			*out = (tkm_log_level)i;
			return TKM_OK;
		}
	}
	return TKM_E_CONFIG;
}

const char *tkm_log_level_name(tkm_log_level lvl)
{
	if ((size_t)lvl < sizeof(tkm_log_names) / sizeof(tkm_log_names[0])) {
		return tkm_log_names[lvl];
	}
	return "unknown";
}

/* Append raw bytes if they fit before the tail reserve; else mark the line cut. */
static bool put(tkm_log_line *l, const char *s, size_t n)
{
	if (n > sizeof(l->buf) - TKM_LOG_TAIL - l->len) {
		l->cut = true;
		return false;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return true;
}

static bool needs_quotes(const char *v)
{
	if (*v == '\0') {
		return true;
	}
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '=' || *p == '\\') {
			return true;
		}
	}
	return false;
}

/* Write key=value as one unit: either all of it fits or none of it is kept. */
static void put_field(tkm_log_line *l, const char *key, const char *val)
{
	size_t mark = l->len;
	bool ok;

	if (!l->on || l->cut) {
		return;
	}
	if (val == NULL) {
		val = "-";
	}
	ok = put(l, " ", 1) && put(l, key, strlen(key)) && put(l, "=", 1);
	if (ok && !needs_quotes(val)) {
		ok = put(l, val, strlen(val));
	} else if (ok) {
		ok = put(l, "\"", 1);
		for (const unsigned char *p = (const unsigned char *)val; ok && *p != '\0'; p++) {
			char esc[5];
			size_t n = 2;

			esc[0] = '\\';
			switch (*p) {
			case '"':
				esc[1] = '"';
				break;
			case '\\':
				esc[1] = '\\';
				break;
			case '\n':
				esc[1] = 'n';
				break;
			case '\r':
				esc[1] = 'r';
				break;
			case '\t':
				esc[1] = 't';
				break;
			default:
				if (*p >= 0x20 && *p < 0x7f) {
					esc[0] = (char)*p;
					n = 1;
				} else {
					static const char hex[] = "0123456789abcdef";
					esc[1] = 'x';
					esc[2] = hex[*p >> 4];
					esc[3] = hex[*p & 0xf];
					n = 4;
				}
				break;
			}
			ok = put(l, esc, n);
		}
		ok = ok && put(l, "\"", 1);
	}
	if (!ok) {
		l->len = mark;
		l->cut = true;
	}
}

void tkm_log_begin(tkm_log_line *l, tkm_log_level lvl, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char stamp[40];
	size_t n;

	l->len = 0;
	l->cut = false;
	l->on = tkm_log_enabled(lvl);
	if (!l->on) {
		return;
	}
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL) {
		memset(&tm, 0, sizeof(tm));
		ts.tv_nsec = 0;
	}
	n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0) {
		stamp[0] = '\0';
	}
	int r = snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", ts.tv_nsec / 1000000L);
	if (r < 0 || (size_t)r >= sizeof(stamp) - n) {
		stamp[n] = '\0';
	}
	(void)put(l, "ts=", 3);
	(void)put(l, stamp, strlen(stamp));
	(void)put(l, " level=", 7);
	(void)put(l, tkm_log_level_name(lvl), strlen(tkm_log_level_name(lvl)));
	put_field(l, "msg", msg);
}

void tkm_log_str(tkm_log_line *l, const char *key, const char *val)
{
	put_field(l, key, val);
}

void tkm_log_uint(tkm_log_line *l, const char *key, uint64_t val)
{
	char num[24];
	int r = snprintf(num, sizeof(num), "%" PRIu64, val);

	put_field(l, key, (r > 0 && (size_t)r < sizeof(num)) ? num : "?");
}

void tkm_log_int(tkm_log_line *l, const char *key, int64_t val)
{
	char num[24];
	int r = snprintf(num, sizeof(num), "%" PRId64, val);

	put_field(l, key, (r > 0 && (size_t)r < sizeof(num)) ? num : "?");
}

void tkm_log_end(tkm_log_line *l)
{
	static const char cut[] = " truncated=true";
	const char *p;
	size_t left;

	if (!l->on) {
		return;
	}
	/* The tail reserve guarantees room for these. */
	if (l->cut) {
		memcpy(l->buf + l->len, cut, sizeof(cut) - 1);
		l->len += sizeof(cut) - 1;
	}
	l->buf[l->len++] = '\n';

	pthread_mutex_lock(&tkm_log_lock);
	p = l->buf;
	left = l->len;
	while (left > 0) {
		ssize_t w = write(STDERR_FILENO, p, left);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			break; /* nowhere else to report a failing stderr */
		}
		p += w;
		left -= (size_t)w;
	}
	pthread_mutex_unlock(&tkm_log_lock);
	l->on = false;
}

void tkm_log_msg(tkm_log_level lvl, const char *msg, const char *err)
{
	tkm_log_line l;

	tkm_log_begin(&l, lvl, msg);
	if (err != NULL) {
		tkm_log_str(&l, "error", err);
	}
	tkm_log_end(&l);
}
