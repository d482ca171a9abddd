/*
 * tkm_seen.c - batched last-seen times. See tkm_seen.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tkm_cbor.h"
#include "tkm_seen.h"
#include "tkm_store_terminal.h"
#include "tkm_why.h"

/* A flush is due early when this many times wait, whatever the interval. */
#define TKM_SEEN_BATCH_MAX 100000

struct tkm_seen {
	pthread_mutex_t mu;
	uint64_t flush_ms;
	uint64_t last_flush_ms;
	bool flushing;
	tkm_store_terminal_seen *v;
	size_t n, cap;
};

tkm_err tkm_seen_new(uint64_t flush_ms, tkm_seen **out)
{
	tkm_seen *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s == NULL) {
		return TKM_E_NOMEM;
	}
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s);
		return TKM_E_NOMEM;
	}
	s->flush_ms = flush_ms;
	*out = s;
	return TKM_OK;
}

void tkm_seen_free(tkm_seen *s)
{
	if (s == NULL) {
		return;
	}
	pthread_mutex_destroy(&s->mu);
	free(s->v);
	free(s);
}

bool tkm_seen_note(tkm_seen *s, int64_t id, uint64_t now_ms)
{
	bool due;

	pthread_mutex_lock(&s->mu);
	if (s->last_flush_ms == 0) {
		s->last_flush_ms = now_ms;
	}
	if (s->n == s->cap && s->cap < TKM_SEEN_BATCH_MAX) {
		size_t cap = s->cap == 0 ? 1024 : s->cap * 2;
		tkm_store_terminal_seen *v = realloc(s->v, cap * sizeof(*v));

		if (v != NULL) {
			s->v = v;
			s->cap = cap;
		}
	}
	if (s->n < s->cap) {
		s->v[s->n].id = id;
		s->v[s->n].ts_ms = now_ms;
		s->n++;
	}
	/* When full, the newest times wait: a flush is due anyway. */
	due = !s->flushing && (s->n == s->cap || now_ms >= s->last_flush_ms + s->flush_ms);
	pthread_mutex_unlock(&s->mu);
	return due;
}

size_t tkm_seen_pending(tkm_seen *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

typedef struct flush_arg {
	const tkm_store_terminal_seen *v;
	size_t n, updated;
} flush_arg;

static tkm_err flush_change(tkm_store_tx *tx, void *arg, char *why, size_t why_len)
{
	flush_arg *f = arg;

	return tkm_store_tx_terminal_touch_many(tx, f->v, f->n, &f->updated, why, why_len);
}

tkm_err tkm_seen_flush(tkm_seen *s, tkm_store *st, uint64_t now_ms, char *why, size_t why_len)
{
	tkm_store_terminal_seen *v;
	tkm_cbor_w *d = NULL;
	tkm_audit_rec rec;
	flush_arg f = {NULL, 0, 0};
	size_t n, cap;
	tkm_err err;

	pthread_mutex_lock(&s->mu);
	if (s->flushing || s->n == 0) {
		pthread_mutex_unlock(&s->mu);
		return TKM_OK;
	}
	s->flushing = true;
	v = s->v;
	n = s->n;
	cap = s->cap;
	s->v = NULL;
	s->n = 0;
	s->cap = 0;
	s->last_flush_ms = now_ms;
	pthread_mutex_unlock(&s->mu);

	memset(&rec, 0, sizeof(rec));
	err = tkm_cbor_w_new(64, &d);
	if (err == TKM_OK) {
		tkm_cbor_put_map(d, 1);
		tkm_cbor_put_cstr(d, "check_ins");
		tkm_cbor_put_uint(d, n);
		err = tkm_cbor_w_finish(d, &rec.details, &rec.details_len);
	}
	if (err == TKM_OK) {
		rec.principal = "tkmd";
		rec.method = "terminal.last_seen";
		rec.target = "terminals";
		rec.outcome = "ok";
		f.v = v;
		f.n = n;
		err = tkm_store_write(st, flush_change, &f, &rec, NULL, why, why_len);
	}
	tkm_cbor_w_free(d);

	pthread_mutex_lock(&s->mu);
	if (err != TKM_OK && s->v == NULL) {
		/*
		 * Keep them for the next try. If check-ins arrived meanwhile, the
		 * failed batch is dropped instead: those newer times supersede most
		 * of it, and a last-seen time is not worth unbounded memory.
		 */
		s->v = v;
		s->n = n;
		s->cap = cap;
		v = NULL;
	}
	s->flushing = false;
	pthread_mutex_unlock(&s->mu);
	free(v);
	return err;
}
