/*
 * tkm_methods_debug.c - debug.*: methods for the test suite only.
 *
 * Linked into tkmd-test and nothing else; the release tkmd cannot serve these
 * (tkm_rpc_new refuses TKM_RPC_F_DEBUG methods unless built with
 * TKM_TEST_METHODS). debug.sleep occupies one worker for a while, so that
 * tests can show that a slow request does not hold up the others and that
 * shutdown drains requests in flight.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "tkm_methods.h"
#include "tkm_why.h"

#define TKM_DEBUG_SLEEP_MAX_MS 10000

/* debug.sleep {"ms": uint <= 10000} -> {"slept_ms": uint} */
static tkm_err debug_sleep(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result,
                           char *why, size_t why_len)
{
	static const char *const keys[] = {"ms"};
	struct timespec ts;
	uint64_t ms;
	tkm_err err;

	(void)ctx;
	err = tkm_rpc_params_check(params, keys, 1, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (!tkm_cbor_get_uint(tkm_cbor_map_get(params, "ms"), &ms) ||
	    ms > TKM_DEBUG_SLEEP_MAX_MS) {
		return tkm_why_fail(why, why_len, TKM_E_BAD_REQUEST,
		                    "param 'ms' must be an unsigned integer up to %d",
		                    TKM_DEBUG_SLEEP_MAX_MS);
	}
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
	tkm_cbor_put_map(result, 1);
	tkm_cbor_put_cstr(result, "slept_ms");
	tkm_cbor_put_uint(result, ms);
	return tkm_cbor_w_error(result);
}

static const tkm_rpc_method tkm_methods_debug_list[] = {
    {"debug.sleep", debug_sleep, "debug.sleep", TKM_RPC_F_READONLY | TKM_RPC_F_DEBUG, NULL},
};

const tkm_rpc_table tkm_methods_debug = {
    .methods = tkm_methods_debug_list,
    .count = sizeof(tkm_methods_debug_list) / sizeof(tkm_methods_debug_list[0]),
};
