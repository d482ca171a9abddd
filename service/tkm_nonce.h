/*
 * tkm_nonce.h - tkmd's replay cache for signed device requests.
 *
 * It remembers each (principal, nonce) pair it accepted for as long as the
 * request that carried it could still pass the timestamp check: an entry for
 * timestamp ts lives until now > ts + window. A pair seen again while its
 * entry lives is a replay. Call it only after tkm_devsig_verify() accepted
 * the request, so that only signed requests take room.
 *
 * Memory is bounded and allocated once, in tkm_nonce_new(): when max_entries
 * pairs are live, new requests are refused with TKM_E_RESOURCE_EXHAUSTED
 * until entries expire. Live entries are never evicted, since evicting one
 * would let its request be replayed. Entries are keyed by a keyed BLAKE2b
 * hash (random key per cache) of principal and nonce; no principal or nonce
 * is stored. All functions are thread-safe.
 */
#ifndef TKM_NONCE_H
#define TKM_NONCE_H

#include <stddef.h>
#include <stdint.h>

#include "tkm/error.h"
#include "tkm_devsig.h"

#define TKM_NONCE_WINDOW_MAX  86400u       /* seconds */
#define TKM_NONCE_ENTRIES_MAX (1u << 22)   /* a table of at most 192 MiB */
#define TKM_NONCE_NOW_MAX     (1ull << 62) /* a sane clock, so that ts + window fits */

typedef struct tkm_nonce tkm_nonce;

/*
 * A cache for a timestamp window of window_s seconds (1..TKM_NONCE_WINDOW_MAX,
 * the same window the signature check uses) holding at most max_entries
 * (1..TKM_NONCE_ENTRIES_MAX) live pairs. Its table takes 48 to 96 bytes per
 * entry. TKM_E_INVALID_ARG or TKM_E_NOMEM on failure.
 */
TKM_MUST_CHECK tkm_err tkm_nonce_new(uint64_t window_s, size_t max_entries, tkm_nonce **out);

/* NULL-safe. */
void tkm_nonce_free(tkm_nonce *cache);

/*
 * Record (principal, nonce) of a request with timestamp ts, at time now
 * (unix seconds; now <= TKM_NONCE_NOW_MAX). Returns TKM_OK the first time;
 * TKM_E_UNAUTHENTICATED when the pair is live already ("replayed request") or
 * ts is outside now +/- window; TKM_E_RESOURCE_EXHAUSTED when the cache is
 * full of live entries; TKM_E_INVALID_ARG for a bad argument. why says which.
 */
TKM_MUST_CHECK tkm_err tkm_nonce_check_and_add(tkm_nonce *cache, const char *principal, uint64_t ts,
                                               const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN],
                                               uint64_t now, char *why, size_t why_len);

/*
 * Entries held, live or expired but not yet dropped; for tests and metrics.
 * Expired entries are dropped at least once per window, and whenever the
 * cache is full (at most once per second of now).
 */
size_t tkm_nonce_count(tkm_nonce *cache);

#endif /* TKM_NONCE_H */
