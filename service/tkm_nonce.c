/*
 * tkm_nonce.c - the replay cache of signed device requests (see tkm_nonce.h).
 *
 * One open-addressing hash table with linear probing, allocated once at
 * twice the entry limit or more, so probes stay short and an empty slot
 * always exists. Expired entries are removed by backward-shift deletion, so
 * the table never holds tombstones. The table holds keyed hashes and expiry
 * times only: nothing a reader could turn back into principals or nonces.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tkm_nonce.h"
#include "tkm_why.h"

#define NONCE_KEY_LEN 16

typedef struct nonce_slot {
	uint8_t key[NONCE_KEY_LEN]; /* keyed BLAKE2b of principal and nonce */
	uint64_t expires;           /* last second the entry is live; 0 = empty slot */
} nonce_slot;

struct tkm_nonce {
	pthread_mutex_t mu;
	nonce_slot *slots;
	size_t mask; /* slot count - 1; the count is a power of two */
	size_t count;
	size_t max;
	uint64_t window;
	uint64_t last_sweep; /* now of the last sweep */
	uint8_t hkey[crypto_generichash_KEYBYTES];
};

tkm_err tkm_nonce_new(uint64_t window_s, size_t max_entries, tkm_nonce **out)
{
	tkm_nonce *c = NULL;
	size_t cap = 16;
	tkm_err err = TKM_OK;

	if (out == NULL) {
		return TKM_E_INVALID_ARG;
	}
	*out = NULL;
	if (window_s == 0 || window_s > TKM_NONCE_WINDOW_MAX || max_entries == 0 ||
	    max_entries > TKM_NONCE_ENTRIES_MAX) {
		return TKM_E_INVALID_ARG;
	}
	if (sodium_init() < 0) {
		return TKM_E_CRYPTO;
	}
	while (cap < 2 * max_entries) {
		cap <<= 1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return TKM_E_NOMEM;
	}
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		return TKM_E_NOMEM;
	}
	if ((c->slots = calloc(cap, sizeof(*c->slots))) == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	c->mask = cap - 1;
	c->max = max_entries;
	c->window = window_s;
	randombytes_buf(c->hkey, sizeof(c->hkey));
	*out = c;
	c = NULL;
out:
	tkm_nonce_free(c);
	return err;
}

void tkm_nonce_free(tkm_nonce *c)
{
	if (c == NULL) {
		return;
	}
	(void)pthread_mutex_destroy(&c->mu);
	free(c->slots);
	sodium_memzero(c->hkey, sizeof(c->hkey));
	free(c);
}

static size_t nonce_home(const tkm_nonce *c, const uint8_t key[static NONCE_KEY_LEN])
{
	uint64_t h = 0;

	for (size_t i = 0; i < 8; i++) {
		h |= (uint64_t)key[i] << (8 * i);
	}
	return (size_t)h & c->mask;
}

/* key = BLAKE2b-128 under the cache's key of len(principal) || principal || nonce. */
static tkm_err nonce_key(const tkm_nonce *c, const char *principal, size_t plen,
                         const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN],
                         uint8_t key[static NONCE_KEY_LEN])
{
	crypto_generichash_state st;
	uint8_t len_le[8];
	int rv;

	for (size_t i = 0; i < sizeof(len_le); i++) {
		len_le[i] = (uint8_t)((uint64_t)plen >> (8 * i));
	}
	rv = crypto_generichash_init(&st, c->hkey, sizeof(c->hkey), NONCE_KEY_LEN);
	rv |= crypto_generichash_update(&st, len_le, sizeof(len_le));
	rv |= crypto_generichash_update(&st, (const uint8_t *)principal, plen);
	rv |= crypto_generichash_update(&st, nonce, TKM_DEVSIG_NONCE_LEN);
	rv |= crypto_generichash_final(&st, key, NONCE_KEY_LEN);
	sodium_memzero(&st, sizeof(st));
	return rv == 0 ? TKM_OK : TKM_E_CRYPTO;
}

/*
 * Empty slot `hole` and pull later entries of its cluster back into it
 * whenever hole lies on their probe path, so that every lookup still finds
 * them before it meets an empty slot.
 */
static void nonce_delete(tkm_nonce *c, size_t hole)
{
	size_t j = hole;

	for (;;) {
		j = (j + 1) & c->mask;
		if (c->slots[j].expires == 0) {
			break;
		}
		/* The entry may move iff hole is in [home, j): hole is no farther from j. */
		if (((j - nonce_home(c, c->slots[j].key)) & c->mask) >= ((j - hole) & c->mask)) {
			c->slots[hole] = c->slots[j];
			hole = j;
		}
	}
	memset(&c->slots[hole], 0, sizeof(c->slots[hole]));
	c->count--;
}

/*
 * Drop every entry that expired before now. The walk starts just after an
 * empty slot and goes once round: a deletion only moves entries from slots
 * not yet visited into the current slot, which is then looked at again.
 */
static void nonce_sweep(tkm_nonce *c, uint64_t now)
{
	size_t start = 0, i;

	c->last_sweep = now;
	if (c->count == 0) {
		return;
	}
	/* count <= max < slot count / 2: an empty slot exists. */
	while (c->slots[start].expires != 0) {
		start++;
	}
	i = (start + 1) & c->mask;
	while (i != start) {
		if (c->slots[i].expires != 0 && c->slots[i].expires < now) {
			nonce_delete(c, i);
			continue;
		}
		i = (i + 1) & c->mask;
	}
}

tkm_err tkm_nonce_check_and_add(tkm_nonce *c, const char *principal, uint64_t ts,
                                const uint8_t nonce[static TKM_DEVSIG_NONCE_LEN], uint64_t now,
                                char *why, size_t why_len)
{
	uint8_t key[NONCE_KEY_LEN];
	uint64_t skew, expires;
	size_t plen, i;
	tkm_err err = TKM_OK;

	if (c == NULL || principal == NULL || nonce == NULL || now > TKM_NONCE_NOW_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "replay check: bad argument");
	}
	plen = strnlen(principal, TKM_DEVSIG_PRINCIPAL_MAX + 1);
	if (plen == 0 || plen > TKM_DEVSIG_PRINCIPAL_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "replay check: bad principal length");
	}
	skew = ts > now ? ts - now : now - ts;
	if (skew > c->window) {
		return tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
		                    "auth: timestamp outside the window of %llu s",
		                    (unsigned long long)c->window);
	}
	/* ts <= now + window <= 2^62 + 86400: no overflow. */
	expires = ts + c->window;
	if ((err = nonce_key(c, principal, plen, nonce, key)) != TKM_OK) {
		return tkm_why_fail(why, why_len, err, "replay check: hash failed");
	}

	(void)pthread_mutex_lock(&c->mu);
	if (now < c->last_sweep || now - c->last_sweep >= c->window) {
		nonce_sweep(c, now);
	}
	for (i = nonce_home(c, key); c->slots[i].expires != 0; i = (i + 1) & c->mask) {
		if (sodium_memcmp(c->slots[i].key, key, NONCE_KEY_LEN) != 0) {
			continue;
		}
		if (c->slots[i].expires >= now) {
			err = tkm_why_fail(why, why_len, TKM_E_UNAUTHENTICATED,
			                   "auth: replayed request (nonce already used)");
			goto out;
		}
		/* The old request can no longer pass the timestamp check: reuse its slot. */
		c->slots[i].expires = expires;
		goto out;
	}
	if (c->count >= c->max) {
		if (now != c->last_sweep) {
			nonce_sweep(c, now);
		}
		if (c->count >= c->max) {
			err = tkm_why_fail(why, why_len, TKM_E_RESOURCE_EXHAUSTED,
			                   "replay cache full (%zu requests in the last %llu s); "
			                   "try again later",
			                   c->max, (unsigned long long)c->window);
			goto out;
		}
		/* The sweep moved entries: find the empty slot again. */
		i = nonce_home(c, key);
		while (c->slots[i].expires != 0) {
			i = (i + 1) & c->mask;
		}
	}
	memcpy(c->slots[i].key, key, NONCE_KEY_LEN);
	c->slots[i].expires = expires;
	c->count++;
out:
	(void)pthread_mutex_unlock(&c->mu);
	sodium_memzero(key, sizeof(key));
	return err;
}

size_t tkm_nonce_count(tkm_nonce *c)
{
	size_t n;

	(void)pthread_mutex_lock(&c->mu);
	n = c->count;
	(void)pthread_mutex_unlock(&c->mu);
	return n;
}
