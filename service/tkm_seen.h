/*
 * tkm_seen.h - last-seen times of terminals, batched.
 *
 * A check-in must not cost a durable write: 10,000 terminals checking in
 * every minute would be 170 commits a second for a timestamp. Check-ins
 * note (terminal, time) here in memory; at most every flush interval one
 * check-in writes everything noted so far in one transaction with one audit
 * record ("terminal.last_seen"), and tkmd writes the rest when it stops. A
 * crash loses at most one interval of last-seen times, nothing else
 * (docs/terminals.md).
 */
#ifndef TKM_SEEN_H
#define TKM_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_store.h"

typedef struct tkm_seen tkm_seen;

/* flush_ms: the longest a noted time waits for its write. */
TKM_MUST_CHECK tkm_err tkm_seen_new(uint64_t flush_ms, tkm_seen **out);
void tkm_seen_free(tkm_seen *s);

/* Note that terminal id checked in at now_ms; true when a flush is due. */
bool tkm_seen_note(tkm_seen *s, int64_t id, uint64_t now_ms);

/*
 * Write what is noted (if anything) through the store's writer, audited as
 * principal "tkmd". One flush runs at a time; a caller that finds one
 * running returns at once. On failure the times are kept for the next try.
 */
TKM_MUST_CHECK tkm_err tkm_seen_flush(tkm_seen *s, tkm_store *st, uint64_t now_ms, char *why,
                                      size_t why_len);

/* Times noted and not yet written, for tests and metrics. */
size_t tkm_seen_pending(tkm_seen *s);

#endif /* TKM_SEEN_H */
