/*
 * tkm_methods_sys.c - sys.*: liveness and identity of the service.
 *
 * Read-only and cheap: no store access, and the HSM is only asked for the
 * public identity of its token (label, model, manufacturer, serial).
 */
#include <string.h>
#include <time.h>

#include "tkm/client.h"
#include "tkm_methods.h"
#include "tkm_wire.h"

/* sys.ping {} -> {"pong": true, "time": unix seconds} */
static tkm_err sys_ping(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result, char *why,
                        size_t why_len)
{
	time_t now = time(NULL);
	tkm_err err;

	(void)ctx;
	err = tkm_rpc_params_check(params, NULL, 0, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	tkm_cbor_put_map(result, 2);
	tkm_cbor_put_cstr(result, "pong");
	tkm_cbor_put_bool(result, true);
	tkm_cbor_put_cstr(result, "time");
	tkm_cbor_put_uint(result, now > 0 ? (uint64_t)now : 0);
	return tkm_cbor_w_error(result);
}

/* A token field as CBOR text: bytes that are not UTF-8 are shown as '?'. */
static void put_token_text(tkm_cbor_w *w, const char *s)
{
	char buf[40];
	size_t n = strnlen(s, sizeof(buf) - 1);

	memcpy(buf, s, n);
	buf[n] = '\0';
	if (!tkm_cbor_utf8_valid((const uint8_t *)buf, n)) {
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)buf[i] >= 0x80) {
				buf[i] = '?';
			}
		}
	}
	tkm_cbor_put_text(w, buf, n);
}

/*
 * sys.info {} -> {"server_version", "protocol_version", "uptime_s",
 *                 "hsm": {"configured", ? "token_label", ? "token_model",
 *                         ? "manufacturer", ? "serial"}}
 */
static tkm_err sys_info(tkm_rpc_ctx *ctx, const tkm_cbor_val *params, tkm_cbor_w *result, char *why,
                        size_t why_len)
{
	const tkm_rpc_env *env = tkm_rpc_ctx_env(ctx);
	tkm_hsm_token tok;
	tkm_err err;

	memset(&tok, 0, sizeof(tok));
	err = tkm_rpc_params_check(params, NULL, 0, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (env->hsm != NULL) {
		err = tkm_hsm_token_info(env->hsm, &tok, why, why_len);
		if (err == TKM_E_HSM) {
			/* The token is gone or failing: a health check should see that. */
			return TKM_E_UNAVAILABLE;
		}
		if (err != TKM_OK) {
			return err;
		}
	}
	tkm_cbor_put_map(result, 4);
	tkm_cbor_put_cstr(result, "server_version");
	tkm_cbor_put_cstr(result, tkm_version());
	tkm_cbor_put_cstr(result, "protocol_version");
	tkm_cbor_put_uint(result, TKM_PROTOCOL_VERSION);
	tkm_cbor_put_cstr(result, "uptime_s");
	tkm_cbor_put_uint(result, tkm_rpc_ctx_uptime_s(ctx));
	tkm_cbor_put_cstr(result, "hsm");
	if (env->hsm == NULL) {
		tkm_cbor_put_map(result, 1);
		tkm_cbor_put_cstr(result, "configured");
		tkm_cbor_put_bool(result, false);
	} else {
		tkm_cbor_put_map(result, 5);
		tkm_cbor_put_cstr(result, "configured");
		tkm_cbor_put_bool(result, true);
		tkm_cbor_put_cstr(result, "token_label");
		put_token_text(result, tok.label);
		tkm_cbor_put_cstr(result, "token_model");
		put_token_text(result, tok.model);
		tkm_cbor_put_cstr(result, "manufacturer");
		put_token_text(result, tok.manufacturer);
		tkm_cbor_put_cstr(result, "serial");
		put_token_text(result, tok.serial);
	}
	return tkm_cbor_w_error(result);
}

static const tkm_rpc_method tkm_methods_sys_list[] = {
    {"sys.ping", sys_ping, "sys.ping", TKM_RPC_F_READONLY, NULL},
    {"sys.info", sys_info, "sys.info", TKM_RPC_F_READONLY, NULL},
};

const tkm_rpc_table tkm_methods_sys = {
    .methods = tkm_methods_sys_list,
    .count = sizeof(tkm_methods_sys_list) / sizeof(tkm_methods_sys_list[0]),
};
