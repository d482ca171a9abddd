/*
 * tkm_p11shim.c - a PKCS#11 module for tests that forwards every call to a
 * real module and fails chosen calls on demand. Test code only: it must
 * never be configured for a production tkmd.
 *
 * Loading. The module exports C_GetFunctionList. Its first call dlopen()s the
 * real module named by TKM_P11SHIM_MODULE (default: the SoftHSM2 found at
 * build time, TKM_P11SHIM_DEFAULT_MODULE) and returns the shim's own
 * CK_FUNCTION_LIST (version 2.40), whose every entry first consults the fault
 * plan and then calls the real module's entry. C_Initialize, C_Finalize and
 * their arguments go to the real module unchanged; the real module stays
 * loaded until the shim is unloaded.
 *
 * Fault plan. Calls whose name is in a filter are counted from 0 when the
 * plan is armed. The nth counted call returns the chosen CK_RV without being
 * forwarded, so the real token's state does not change (a session the caller
 * now thinks dead is still open in SoftHSM2). In "once" mode later calls
 * forward again; in "from" mode every counted call from the nth on fails
 * until disarmed. Every call is also counted per function, armed or not.
 *
 * Control at load time, read once when the module is loaded:
 *   TKM_P11SHIM_FAIL_AT=N     arm "once" at the Nth counted call
 *   TKM_P11SHIM_FAIL_FROM=N   arm "from" the Nth counted call (not with _AT)
 *   TKM_P11SHIM_RV=R          the return value: a number (0x30, 48) or a
 *                             name (CKR_DEVICE_ERROR); default CKR_DEVICE_ERROR
 *   TKM_P11SHIM_ONLY=LIST     count only these functions, comma-separated
 *                             (C_Sign,C_UnwrapKey); default every function
 *   TKM_P11SHIM_MODULE=PATH   the real module
 * A malformed variable is reported on stderr and makes C_GetFunctionList
 * fail with CKR_GENERAL_ERROR, so a typo cannot pass as a clean run.
 *
 * Control at run time, from a test in the same process (tkm_p11shim.h;
 * look the functions up with dlsym() on the module's handle):
 *   tkm_p11shim_arm(only, nth, rv)       fail the nth call in only, once
 *   tkm_p11shim_arm_from(only, nth, rv)  fail the nth and all later ones
 *   tkm_p11shim_disarm()                 forward everything again
 *   tkm_p11shim_calls(name)              calls of name (NULL: all) so far
 *   tkm_p11shim_injected()               failures injected since arming
 * e.g. "fail the 3rd C_UnwrapKey with CKR_DEVICE_ERROR, then recover" is
 * tkm_p11shim_arm("C_UnwrapKey", 3, CKR_DEVICE_ERROR).
 *
 * One mutex guards the plan and the counters; it is held only to decide,
 * never across a forwarded call.
 */
#include "tkm_p11shim.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef TKM_P11SHIM_DEFAULT_MODULE
#define TKM_P11SHIM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

/*
 * Every PKCS#11 2.40 function except C_GetFunctionList, which the shim
 * answers itself: X(name, parameter list, argument list).
 */
/* clang-format off */
#define SHIM_FORWARDED(X)                                                                          \
	X(C_Initialize, (CK_VOID_PTR init_args), (init_args))                                      \
	X(C_Finalize, (CK_VOID_PTR reserved), (reserved))                                          \
	X(C_GetInfo, (CK_INFO_PTR info), (info))                                                   \
	X(C_GetSlotList, (CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count),              \
	  (present, list, count))                                                                  \
	X(C_GetSlotInfo, (CK_SLOT_ID slot, CK_SLOT_INFO_PTR info), (slot, info))                   \
	X(C_GetTokenInfo, (CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info), (slot, info))                 \
	X(C_GetMechanismList, (CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count),   \
	  (slot, list, count))                                                                     \
	X(C_GetMechanismInfo, (CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info), \
	  (slot, type, info))                                                                      \
	X(C_InitToken, (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,                    \
	  CK_UTF8CHAR_PTR label), (slot, pin, pin_len, label))                                     \
	X(C_InitPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len),                 \
	  (s, pin, pin_len))                                                                       \
	X(C_SetPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,               \
	  CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len), (s, old_pin, old_len, new_pin, new_len))     \
	X(C_OpenSession, (CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,      \
	  CK_SESSION_HANDLE_PTR s), (slot, flags, app, notify, s))                                 \
	X(C_CloseSession, (CK_SESSION_HANDLE s), (s))                                              \
	X(C_CloseAllSessions, (CK_SLOT_ID slot), (slot))                                           \
	X(C_GetSessionInfo, (CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info), (s, info))            \
	X(C_GetOperationState, (CK_SESSION_HANDLE s, CK_BYTE_PTR state, CK_ULONG_PTR state_len),   \
	  (s, state, state_len))                                                                   \
	X(C_SetOperationState, (CK_SESSION_HANDLE s, CK_BYTE_PTR state, CK_ULONG state_len,        \
	  CK_OBJECT_HANDLE enc_key, CK_OBJECT_HANDLE auth_key),                                    \
	  (s, state, state_len, enc_key, auth_key))                                                \
	X(C_Login, (CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len),\
	  (s, user, pin, pin_len))                                                                 \
	X(C_Logout, (CK_SESSION_HANDLE s), (s))                                                    \
	X(C_CreateObject, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,             \
	  CK_OBJECT_HANDLE_PTR obj), (s, tmpl, count, obj))                                        \
	X(C_CopyObject, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,         \
	  CK_ULONG count, CK_OBJECT_HANDLE_PTR new_obj), (s, obj, tmpl, count, new_obj))           \
	X(C_DestroyObject, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj), (s, obj))                  \
	X(C_GetObjectSize, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_ULONG_PTR size),         \
	  (s, obj, size))                                                                          \
	X(C_GetAttributeValue, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,  \
	  CK_ULONG count), (s, obj, tmpl, count))                                                  \
	X(C_SetAttributeValue, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,  \
	  CK_ULONG count), (s, obj, tmpl, count))                                                  \
	X(C_FindObjectsInit, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count),         \
	  (s, tmpl, count))                                                                        \
	X(C_FindObjects, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max,            \
	  CK_ULONG_PTR n), (s, objs, max, n))                                                      \
	X(C_FindObjectsFinal, (CK_SESSION_HANDLE s), (s))                                          \
	X(C_EncryptInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),       \
	  (s, mech, key))                                                                          \
	X(C_Encrypt, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,       \
	  CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                                    \
	X(C_EncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, \
	  CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                                    \
	X(C_EncryptFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len),            \
	  (s, out, out_len))                                                                       \
	X(C_DecryptInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),       \
	  (s, mech, key))                                                                          \
	X(C_Decrypt, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,       \
	  CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                                    \
	X(C_DecryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, \
	  CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                                    \
	X(C_DecryptFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len),            \
	  (s, out, out_len))                                                                       \
	X(C_DigestInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech), (s, mech))                   \
	X(C_Digest, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,        \
	  CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                                    \
	X(C_DigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len), (s, in, in_len)) \
	X(C_DigestKey, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key), (s, key))                      \
	X(C_DigestFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len),             \
	  (s, out, out_len))                                                                       \
	X(C_SignInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),          \
	  (s, mech, key))                                                                          \
	X(C_Sign, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,          \
	  CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                                    \
	X(C_SignUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len), (s, in, in_len))   \
	X(C_SignFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len),               \
	  (s, out, out_len))                                                                       \
	X(C_SignRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),   \
	  (s, mech, key))                                                                          \
	X(C_SignRecover, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,   \
	  CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                                    \
	X(C_VerifyInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),        \
	  (s, mech, key))                                                                          \
	X(C_Verify, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,        \
	  CK_ULONG sig_len), (s, in, in_len, sig, sig_len))                                        \
	X(C_VerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len), (s, in, in_len)) \
	X(C_VerifyFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG sig_len),                 \
	  (s, sig, sig_len))                                                                       \
	X(C_VerifyRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key), \
	  (s, mech, key))                                                                          \
	X(C_VerifyRecover, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG sig_len,                \
	  CK_BYTE_PTR out, CK_ULONG_PTR out_len), (s, sig, sig_len, out, out_len))                 \
	X(C_DigestEncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,            \
	  CK_BYTE_PTR out, CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                   \
	X(C_DecryptDigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,            \
	  CK_BYTE_PTR out, CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                   \
	X(C_SignEncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,              \
	  CK_BYTE_PTR out, CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                   \
	X(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,            \
	  CK_BYTE_PTR out, CK_ULONG_PTR out_len), (s, in, in_len, out, out_len))                   \
	X(C_GenerateKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl,       \
	  CK_ULONG count, CK_OBJECT_HANDLE_PTR key), (s, mech, tmpl, count, key))                  \
	X(C_GenerateKeyPair, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,                          \
	  CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_count, CK_ATTRIBUTE_PTR priv_tmpl,               \
	  CK_ULONG priv_count, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv),               \
	  (s, mech, pub_tmpl, pub_count, priv_tmpl, priv_count, pub, priv))                        \
	X(C_WrapKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping_key,   \
	  CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR out_len),                            \
	  (s, mech, wrapping_key, key, out, out_len))                                              \
	X(C_UnwrapKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,                                \
	  CK_OBJECT_HANDLE unwrapping_key, CK_BYTE_PTR in, CK_ULONG in_len, CK_ATTRIBUTE_PTR tmpl, \
	  CK_ULONG count, CK_OBJECT_HANDLE_PTR key),                                               \
	  (s, mech, unwrapping_key, in, in_len, tmpl, count, key))                                 \
	X(C_DeriveKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE base_key,     \
	  CK_ATTRIBUTE_PTR tmpl, CK_ULONG count, CK_OBJECT_HANDLE_PTR key),                        \
	  (s, mech, base_key, tmpl, count, key))                                                   \
	X(C_SeedRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR seed, CK_ULONG seed_len),                \
	  (s, seed, seed_len))                                                                     \
	X(C_GenerateRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG len), (s, out, len))   \
	X(C_GetFunctionStatus, (CK_SESSION_HANDLE s), (s))                                         \
	X(C_CancelFunction, (CK_SESSION_HANDLE s), (s))                                            \
	X(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved),         \
	  (flags, slot, reserved))
/* clang-format on */

/* One index per function: the forwarded ones, then C_GetFunctionList. */
#define SHIM_ENUM(name, params, args) SHIM_##name,
enum shim_fn { SHIM_FORWARDED(SHIM_ENUM) SHIM_C_GetFunctionList, SHIM_NFUNCS };
#undef SHIM_ENUM

/* The table must cover every entry of CK_FUNCTION_LIST, no more, no less. */
_Static_assert(SHIM_NFUNCS ==
                   (sizeof(CK_FUNCTION_LIST) - offsetof(CK_FUNCTION_LIST, C_Initialize)) /
                       sizeof(CK_C_Initialize),
               "the shim's function table does not match CK_FUNCTION_LIST");

#define SHIM_NAME(name, params, args) #name,
static const char *const shim_names[SHIM_NFUNCS] = {SHIM_FORWARDED(SHIM_NAME) "C_GetFunctionList"};
#undef SHIM_NAME

/* What to fail. Counted calls saturate at nth, so "from" keeps failing. */
struct shim_plan {
	bool armed;
	bool sticky; /* fail every counted call from the nth on */
	bool match[SHIM_NFUNCS];
	unsigned long nth;
	unsigned long seen;
	CK_RV rv;
};

static struct {
	pthread_mutex_t mu;
	struct shim_plan plan;            /* under mu */
	unsigned long calls[SHIM_NFUNCS]; /* under mu */
	unsigned long injected;           /* under mu */
	bool env_bad;                     /* set by the constructor only */
	pthread_once_t load_once;
	CK_RV load_rv; /* outcome of loading the real module */
	void *dl;
	CK_FUNCTION_LIST_PTR real;
} shim = {.mu = PTHREAD_MUTEX_INITIALIZER, .load_once = PTHREAD_ONCE_INIT};

static const struct {
	CK_RV rv;
	const char *name;
} shim_rv_names[] = {
#define RV(x)                                                                                      \
	{                                                                                          \
		x, #x                                                                              \
	}
    RV(CKR_CANCEL),
    RV(CKR_HOST_MEMORY),
    RV(CKR_SLOT_ID_INVALID),
    RV(CKR_GENERAL_ERROR),
    RV(CKR_FUNCTION_FAILED),
    RV(CKR_ARGUMENTS_BAD),
    RV(CKR_NO_EVENT),
    RV(CKR_NEED_TO_CREATE_THREADS),
    RV(CKR_CANT_LOCK),
    RV(CKR_ATTRIBUTE_READ_ONLY),
    RV(CKR_ATTRIBUTE_SENSITIVE),
    RV(CKR_ATTRIBUTE_TYPE_INVALID),
    RV(CKR_ATTRIBUTE_VALUE_INVALID),
    RV(CKR_ACTION_PROHIBITED),
    RV(CKR_DATA_INVALID),
    RV(CKR_DATA_LEN_RANGE),
    RV(CKR_DEVICE_ERROR),
    RV(CKR_DEVICE_MEMORY),
    RV(CKR_DEVICE_REMOVED),
    RV(CKR_ENCRYPTED_DATA_INVALID),
    RV(CKR_ENCRYPTED_DATA_LEN_RANGE),
    RV(CKR_FUNCTION_CANCELED),
    RV(CKR_FUNCTION_NOT_PARALLEL),
    RV(CKR_FUNCTION_NOT_SUPPORTED),
    RV(CKR_KEY_HANDLE_INVALID),
    RV(CKR_KEY_SIZE_RANGE),
    RV(CKR_KEY_TYPE_INCONSISTENT),
    RV(CKR_KEY_NOT_NEEDED),
    RV(CKR_KEY_CHANGED),
    RV(CKR_KEY_NEEDED),
    RV(CKR_KEY_INDIGESTIBLE),
    RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
    RV(CKR_KEY_NOT_WRAPPABLE),
    RV(CKR_KEY_UNEXTRACTABLE),
    RV(CKR_MECHANISM_INVALID),
    RV(CKR_MECHANISM_PARAM_INVALID),
    RV(CKR_OBJECT_HANDLE_INVALID),
    RV(CKR_OPERATION_ACTIVE),
    RV(CKR_OPERATION_NOT_INITIALIZED),
    RV(CKR_PIN_INCORRECT),
    RV(CKR_PIN_INVALID),
    RV(CKR_PIN_LEN_RANGE),
    RV(CKR_PIN_EXPIRED),
    RV(CKR_PIN_LOCKED),
    RV(CKR_SESSION_CLOSED),
    RV(CKR_SESSION_COUNT),
    RV(CKR_SESSION_HANDLE_INVALID),
    RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    RV(CKR_SESSION_READ_ONLY),
    RV(CKR_SESSION_EXISTS),
    RV(CKR_SESSION_READ_ONLY_EXISTS),
    RV(CKR_SESSION_READ_WRITE_SO_EXISTS),
    RV(CKR_SIGNATURE_INVALID),
    RV(CKR_SIGNATURE_LEN_RANGE),
    RV(CKR_TEMPLATE_INCOMPLETE),
    RV(CKR_TEMPLATE_INCONSISTENT),
    RV(CKR_TOKEN_NOT_PRESENT),
    RV(CKR_TOKEN_NOT_RECOGNIZED),
    RV(CKR_TOKEN_WRITE_PROTECTED),
    RV(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    RV(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    RV(CKR_USER_ALREADY_LOGGED_IN),
    RV(CKR_USER_NOT_LOGGED_IN),
    RV(CKR_USER_PIN_NOT_INITIALIZED),
    RV(CKR_USER_TYPE_INVALID),
    RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    RV(CKR_USER_TOO_MANY_TYPES),
    RV(CKR_WRAPPED_KEY_INVALID),
    RV(CKR_WRAPPED_KEY_LEN_RANGE),
    RV(CKR_WRAPPING_KEY_HANDLE_INVALID),
    RV(CKR_WRAPPING_KEY_SIZE_RANGE),
    RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    RV(CKR_RANDOM_NO_RNG),
    RV(CKR_DOMAIN_PARAMS_INVALID),
    RV(CKR_CURVE_NOT_SUPPORTED),
    RV(CKR_BUFFER_TOO_SMALL),
    RV(CKR_SAVED_STATE_INVALID),
    RV(CKR_INFORMATION_SENSITIVE),
    RV(CKR_STATE_UNSAVEABLE),
    RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    RV(CKR_MUTEX_BAD),
    RV(CKR_MUTEX_NOT_LOCKED),
    RV(CKR_NEW_PIN_MODE),
    RV(CKR_NEXT_OTP),
    RV(CKR_EXCEEDED_MAX_ITERATIONS),
    RV(CKR_FIPS_SELF_TEST_FAILED),
    RV(CKR_LIBRARY_LOAD_FAILED),
    RV(CKR_PIN_TOO_WEAK),
    RV(CKR_PUBLIC_KEY_INVALID),
    RV(CKR_FUNCTION_REJECTED),
#undef RV
};

/* ---- The plan ---- */

static int shim_fn_index(const char *name, size_t len)
{
	for (int i = 0; i < SHIM_NFUNCS; i++) {
		if (strlen(shim_names[i]) == len && strncmp(shim_names[i], name, len) == 0) {
			return i;
		}
	}
	return -1;
}

/* Parse "C_A, C_B" into match[]; NULL or "" selects every function. */
static bool shim_parse_only(const char *only, bool match[SHIM_NFUNCS])
{
	const char *p = only, *end;
	size_t len;
	int i;

	if (only == NULL || only[0] == '\0') {
		for (i = 0; i < SHIM_NFUNCS; i++) {
			match[i] = true;
		}
		return true;
	}
	memset(match, 0, SHIM_NFUNCS * sizeof(match[0]));
	for (;;) {
		while (*p == ' ') {
			p++;
		}
		end = p + strcspn(p, ", ");
		len = (size_t)(end - p);
		if ((i = shim_fn_index(p, len)) < 0) {
			return false;
		}
		match[i] = true;
		p = end;
		while (*p == ' ') {
			p++;
		}
		if (*p == '\0') {
			return true;
		}
		if (*p != ',') {
			return false;
		}
		p++;
	}
}

static CK_RV shim_arm(const char *only, unsigned long nth, CK_RV rv, bool sticky)
{
	struct shim_plan plan;

	memset(&plan, 0, sizeof(plan));
	if (nth == 0 || rv == CKR_OK || !shim_parse_only(only, plan.match)) {
		return CKR_ARGUMENTS_BAD;
	}
	plan.armed = true;
	plan.sticky = sticky;
	plan.nth = nth;
	plan.rv = rv;
	pthread_mutex_lock(&shim.mu);
	shim.plan = plan;
	shim.injected = 0;
	pthread_mutex_unlock(&shim.mu);
	return CKR_OK;
}

/* Count one call of fn; true, with *rv set, when the plan fails it. */
static bool shim_should_fail(enum shim_fn fn, CK_RV *rv)
{
	struct shim_plan *p = &shim.plan;
	bool fail = false;

	pthread_mutex_lock(&shim.mu);
	shim.calls[fn]++;
	if (p->armed && p->match[fn]) {
		if (p->seen < p->nth) {
			p->seen++;
		}
		if (p->seen == p->nth) {
			fail = true;
			*rv = p->rv;
			shim.injected++;
			p->armed = p->sticky;
		}
	}
	pthread_mutex_unlock(&shim.mu);
	return fail;
}

/* ---- Control API (tkm_p11shim.h) ---- */

CK_RV tkm_p11shim_arm(const char *only, unsigned long nth, CK_RV rv)
{
	return shim_arm(only, nth, rv, false);
}

CK_RV tkm_p11shim_arm_from(const char *only, unsigned long nth, CK_RV rv)
{
	return shim_arm(only, nth, rv, true);
}

void tkm_p11shim_disarm(void)
{
	pthread_mutex_lock(&shim.mu);
	memset(&shim.plan, 0, sizeof(shim.plan));
	pthread_mutex_unlock(&shim.mu);
}

unsigned long tkm_p11shim_calls(const char *name)
{
	unsigned long n = 0;
	int fn = -1;

	if (name != NULL && (fn = shim_fn_index(name, strlen(name))) < 0) {
		return TKM_P11SHIM_UNKNOWN;
	}
	pthread_mutex_lock(&shim.mu);
	for (int i = 0; i < SHIM_NFUNCS; i++) {
		if (fn < 0 || fn == i) {
			n += shim.calls[i];
		}
	}
	pthread_mutex_unlock(&shim.mu);
	return n;
}

unsigned long tkm_p11shim_injected(void)
{
	unsigned long n;

	pthread_mutex_lock(&shim.mu);
	n = shim.injected;
	pthread_mutex_unlock(&shim.mu);
	return n;
}

/* ---- Environment, read when the module is loaded ---- */

/* A decimal or 0x-hex unsigned long; no sign, no trailing bytes. */
static bool shim_parse_ulong(const char *s, unsigned long *out)
{
	char *end = NULL;

	if (s[0] < '0' || s[0] > '9') {
		return false;
	}
	errno = 0;
	*out = strtoul(s, &end, 0);
	return errno == 0 && end != s && *end == '\0';
}

static bool shim_parse_rv(const char *s, CK_RV *out)
{
	unsigned long v;

	for (size_t i = 0; i < sizeof(shim_rv_names) / sizeof(shim_rv_names[0]); i++) {
		if (strcmp(s, shim_rv_names[i].name) == 0) {
			*out = shim_rv_names[i].rv;
			return true;
		}
	}
	if (!shim_parse_ulong(s, &v)) {
		return false;
	}
	*out = v;
	return true;
}

static bool shim_env_bad(const char *var, const char *value, const char *why)
{
	fprintf(stderr, "tkm_p11shim: %s='%s': %s\n", var, value, why);
	return false;
}

static bool shim_read_env(void)
{
	const char *at = getenv("TKM_P11SHIM_FAIL_AT");
	const char *from = getenv("TKM_P11SHIM_FAIL_FROM");
	const char *rv_s = getenv("TKM_P11SHIM_RV");
	const char *only = getenv("TKM_P11SHIM_ONLY");
	const char *mod = getenv("TKM_P11SHIM_MODULE");
	const char *nth_var = at != NULL ? "TKM_P11SHIM_FAIL_AT" : "TKM_P11SHIM_FAIL_FROM";
	const char *nth_s = at != NULL ? at : from;
	unsigned long nth;
	CK_RV rv = CKR_DEVICE_ERROR;

	if (mod != NULL && mod[0] == '\0') {
		return shim_env_bad("TKM_P11SHIM_MODULE", mod, "empty path");
	}
	if (at != NULL && from != NULL) {
		return shim_env_bad("TKM_P11SHIM_FAIL_FROM", from, "set together with _FAIL_AT");
	}
	if (nth_s == NULL) {
		if (rv_s != NULL) {
			return shim_env_bad("TKM_P11SHIM_RV", rv_s, "set without _FAIL_AT/_FROM");
		}
		if (only != NULL) {
			return shim_env_bad("TKM_P11SHIM_ONLY", only, "set without _FAIL_AT/_FROM");
		}
		return true;
	}
	if (!shim_parse_ulong(nth_s, &nth) || nth == 0) {
		return shim_env_bad(nth_var, nth_s, "not a call number >= 1");
	}
	if (rv_s != NULL && (!shim_parse_rv(rv_s, &rv) || rv == CKR_OK)) {
		return shim_env_bad("TKM_P11SHIM_RV", rv_s, "not a CKR_ name or non-zero number");
	}
	if (shim_arm(only, nth, rv, at == NULL) != CKR_OK) {
		return shim_env_bad("TKM_P11SHIM_ONLY", only ? only : "",
		                    "not a comma-separated list of PKCS#11 function names");
	}
	return true;
}

static void shim_load_env(void) __attribute__((constructor));
static void shim_load_env(void)
{
	shim.env_bad = !shim_read_env();
}

/* ---- Loading the real module ---- */

/*
 * Set while this thread runs the real module's C_GetFunctionList: if that is
 * the shim again (TKM_P11SHIM_MODULE naming the shim), the inner call fails
 * instead of waiting forever on load_once.
 */
static _Thread_local bool shim_loading;

/* pthread_once routine: shim.real and shim.load_rv, or an error on stderr. */
static void shim_load_real(void)
{
	const char *path = getenv("TKM_P11SHIM_MODULE");
	CK_FUNCTION_LIST_PTR real = NULL;
	CK_C_GetFunctionList get_list;
	const char *e;
	CK_RV rv;

	if (path == NULL) {
		path = TKM_P11SHIM_DEFAULT_MODULE;
	}
	shim.load_rv = CKR_GENERAL_ERROR;
	shim.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (shim.dl == NULL) {
		e = dlerror();
		fprintf(stderr, "tkm_p11shim: cannot load %s: %s\n", path, e ? e : "?");
		goto out;
	}
	/* POSIX guarantees that a dlsym() result converts to a function pointer. */
	get_list = (CK_C_GetFunctionList)dlsym(shim.dl, "C_GetFunctionList");
	if (get_list == NULL) {
		fprintf(stderr, "tkm_p11shim: %s has no C_GetFunctionList\n", path);
		goto out;
	}
	shim_loading = true;
	rv = get_list(&real);
	shim_loading = false;
	if (rv != CKR_OK || real == NULL) {
		fprintf(stderr, "tkm_p11shim: %s: C_GetFunctionList failed (0x%lx)\n", path, rv);
		goto out;
	}
	if (real->version.major != 2) {
		fprintf(stderr, "tkm_p11shim: %s: function list version %u.%u\n", path,
		        real->version.major, real->version.minor);
		goto out;
	}
	shim.real = real;
	shim.load_rv = CKR_OK;
out:
	if (shim.load_rv != CKR_OK && shim.dl != NULL) {
		dlclose(shim.dl);
		shim.dl = NULL;
	}
}

static void shim_unload(void) __attribute__((destructor));
static void shim_unload(void)
{
	if (shim.dl != NULL) {
		dlclose(shim.dl);
		shim.dl = NULL;
		shim.real = NULL;
	}
}

/* ---- The forwarding function list ---- */

/* shim.real is set before shim_list is ever handed out. */
#define SHIM_FORWARDER(name, params, args)                                                         \
	static CK_RV shim_##name params                                                            \
	{                                                                                          \
		CK_RV rv;                                                                          \
		if (shim_should_fail(SHIM_##name, &rv)) {                                          \
			return rv;                                                                 \
		}                                                                                  \
		return shim.real->name args;                                                       \
	}
SHIM_FORWARDED(SHIM_FORWARDER)
#undef SHIM_FORWARDER

/*
 * The list names the static shim_C_GetFunctionList, not C_GetFunctionList:
 * another C_GetFunctionList in the process's global scope (libp11-kit's, say)
 * would interpose on the exported name.
 */
static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

#define SHIM_ENTRY(name, params, args) .name = shim_##name,
static CK_FUNCTION_LIST shim_list = {.version = {CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR},
                                     .C_GetFunctionList = shim_C_GetFunctionList,
                                     SHIM_FORWARDED(SHIM_ENTRY)};
#undef SHIM_ENTRY

static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	CK_RV rv;

	if (list == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if (shim.env_bad) {
		return CKR_GENERAL_ERROR;
	}
	if (shim_loading) {
		fprintf(stderr, "tkm_p11shim: TKM_P11SHIM_MODULE leads back to the shim\n");
		return CKR_GENERAL_ERROR;
	}
	pthread_once(&shim.load_once, shim_load_real);
	if (shim.load_rv != CKR_OK) {
		return shim.load_rv;
	}
	if (shim_should_fail(SHIM_C_GetFunctionList, &rv)) {
		return rv;
	}
	*list = &shim_list;
	return CKR_OK;
}

/* The module's one PKCS#11 export (declared by pkcs11.h). */
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return shim_C_GetFunctionList(list);
}
