/*
 * tkm_hsm.c - load a PKCS#11 module, select a token by RFC 7512 URI.
 *
 * Every CK_RV is translated to a tkm_err here, with the function and the
 * CKR_ name in the message; nothing above this file sees PKCS#11 types.
 * Only absolute paths to regular files are loaded, so the configuration
 * cannot make the dynamic loader search for a library. This issue needs no
 * login, so this file holds no PIN and no key bytes yet.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "tkm_hsm.h"

/* More slots than this is a broken module, not a big HSM. */
#define TKM_HSM_MAX_SLOTS 1024

struct tkm_hsm {
	void *dl;
	CK_FUNCTION_LIST_PTR p11;
	bool initialized; /* we called C_Initialize and owe a C_Finalize */
	CK_SLOT_ID slot;
};

__attribute__((format(printf, 4, 5))) static tkm_err set_why(char *why, size_t why_len, tkm_err err,
                                                             const char *fmt, ...)
{
	va_list ap;
	int r;

	if (why == NULL || why_len == 0) {
		return err;
	}
	va_start(ap, fmt);
	r = vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	if (r < 0) {
		why[0] = '\0';
	}
	return err;
}

static const char *ckr_name(CK_RV rv)
{
	static const struct {
		CK_RV rv;
		const char *name;
	} names[] = {
	    {CKR_OK, "CKR_OK"},
	    {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
	    {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
	    {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
	    {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
	    {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
	    {CKR_CANT_LOCK, "CKR_CANT_LOCK"},
	    {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
	    {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
	    {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
	    {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
	    {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
	    {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
	    {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
	    {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
	    {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (names[i].rv == rv) {
			return names[i].name;
		}
	}
	return "CKR_?";
}

/* Translate a failed CK_RV of function fn into a tkm_err and a message. */
static tkm_err ck_fail(CK_RV rv, const char *fn, char *why, size_t why_len)
{
	tkm_err err = rv == CKR_HOST_MEMORY ? TKM_E_NOMEM : TKM_E_HSM;

	return set_why(why, why_len, err, "PKCS#11 %s failed: %s (0x%lx)", fn, ckr_name(rv),
	               (unsigned long)rv);
}

/* Copy a blank-padded, unterminated PKCS#11 field into a C string without the padding. */
static void trim_copy(char *dst, size_t dst_len, const unsigned char *src, size_t src_len)
{
	size_t n = src_len < dst_len - 1 ? src_len : dst_len - 1;

	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0')) {
		n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
	/* An embedded NUL would silently shorten the string; show it instead. */
	for (size_t i = 0; i < n; i++) {
		if (dst[i] == '\0') {
			dst[i] = '?';
		}
	}
}

static tkm_err load_module(tkm_hsm *h, const char *path, char *why, size_t why_len)
{
	CK_C_GetFunctionList get_list;
	struct stat st;
	const char *dlerr;
	CK_RV rv;

	if (path == NULL || path[0] != '/') {
		return set_why(why, why_len, TKM_E_CONFIG,
		               "PKCS#11 module path '%s' is not absolute", path ? path : "");
	}
	if (stat(path, &st) != 0) {
		return set_why(why, why_len, TKM_E_CONFIG, "PKCS#11 module %s: %s", path,
		               strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		return set_why(why, why_len, TKM_E_CONFIG,
		               "PKCS#11 module %s is not a regular file", path);
	}
	h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h->dl == NULL) {
		dlerr = dlerror();
		return set_why(why, why_len, TKM_E_CONFIG, "cannot load PKCS#11 module: %s",
		               dlerr != NULL ? dlerr : path);
	}
	/* POSIX guarantees that a dlsym() result converts to a function pointer. */
	get_list = (CK_C_GetFunctionList)dlsym(h->dl, "C_GetFunctionList");
	if (get_list == NULL) {
		return set_why(why, why_len, TKM_E_CONFIG,
		               "%s is not a PKCS#11 module: no C_GetFunctionList", path);
	}
	rv = get_list(&h->p11);
	if (rv != CKR_OK) {
		return ck_fail(rv, "C_GetFunctionList", why, why_len);
	}
	if (h->p11 == NULL || h->p11->version.major != 2) {
		return set_why(why, why_len, TKM_E_CONFIG,
		               "PKCS#11 module %s: unsupported function list version", path);
	}
	return TKM_OK;
}

static tkm_err initialize(tkm_hsm *h, char *why, size_t why_len)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = h->p11->C_Initialize(&args);
	if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		/* Someone else in this process owns the module's lifetime. */
		return TKM_OK;
	}
	if (rv != CKR_OK) {
		return ck_fail(rv, "C_Initialize", why, why_len);
	}
	h->initialized = true;
	return TKM_OK;
}

static tkm_err parse_uri(const char *token_uri, P11KitUri **out, char *why, size_t why_len)
{
	P11KitUri *uri = p11_kit_uri_new();
	tkm_err err = TKM_OK;
	int rc;

	*out = NULL;
	if (uri == NULL) {
		return TKM_E_NOMEM;
	}
	rc = p11_kit_uri_parse(token_uri,
	                       P11_KIT_URI_FOR_TOKEN | P11_KIT_URI_FOR_SLOT |
	                           P11_KIT_URI_FOR_MODULE_WITH_VERSION,
	                       uri);
	if (rc != P11_KIT_URI_OK) {
		err = set_why(why, why_len, TKM_E_CONFIG, "PKCS#11 token URI '%s': %s", token_uri,
		              p11_kit_uri_message(rc));
		goto out;
	}
	/* p11-kit matches nothing when it meets an attribute it does not know. */
	if (p11_kit_uri_any_unrecognized(uri)) {
		err = set_why(why, why_len, TKM_E_CONFIG,
		              "PKCS#11 token URI '%s' has attributes that do not describe a token",
		              token_uri);
		goto out;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL || p11_kit_uri_get_pin_source(uri) != NULL) {
		err = set_why(why, why_len, TKM_E_CONFIG,
		              "PKCS#11 token URI must not carry a PIN (pin-value, pin-source)");
		goto out;
	}
	*out = uri;
	uri = NULL;
out:
	p11_kit_uri_free(uri);
	return err;
}

/* Find the one slot whose module, slot and token match uri. */
static tkm_err select_token(tkm_hsm *h, const char *token_uri, const P11KitUri *uri, char *why,
                            size_t why_len)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG count = 0;
	CK_INFO minfo;
	size_t matches = 0;
	tkm_err err = TKM_OK;
	CK_RV rv;

	rv = h->p11->C_GetInfo(&minfo);
	if (rv != CKR_OK) {
		err = ck_fail(rv, "C_GetInfo", why, why_len);
		goto out;
	}
	if (p11_kit_uri_match_module_info(uri, &minfo) != 1) {
		err = set_why(why, why_len, TKM_E_NOT_FOUND,
		              "PKCS#11 module does not match the library attributes of '%s'",
		              token_uri);
		goto out;
	}
	/* The slot list can grow between the two calls (hot-plug); retry a few times. */
	for (int attempt = 0; attempt < 4; attempt++) {
		rv = h->p11->C_GetSlotList(CK_TRUE, NULL, &count);
		if (rv != CKR_OK) {
			err = ck_fail(rv, "C_GetSlotList", why, why_len);
			goto out;
		}
		if (count == 0) {
			break;
		}
		if (count > TKM_HSM_MAX_SLOTS) {
			err = set_why(why, why_len, TKM_E_HSM,
			              "PKCS#11 module reports %lu slots; refusing more than %d",
			              (unsigned long)count, TKM_HSM_MAX_SLOTS);
			goto out;
		}
		free(slots);
		slots = calloc(count, sizeof(*slots));
		if (slots == NULL) {
			err = TKM_E_NOMEM;
			goto out;
		}
		rv = h->p11->C_GetSlotList(CK_TRUE, slots, &count);
		if (rv != CKR_BUFFER_TOO_SMALL) {
			break;
		}
	}
	if (rv != CKR_OK) {
		err = ck_fail(rv, "C_GetSlotList", why, why_len);
		goto out;
	}
	for (CK_ULONG i = 0; i < count; i++) {
		CK_SLOT_ID want = p11_kit_uri_get_slot_id((P11KitUri *)uri);
		CK_SLOT_INFO sinfo;
		CK_TOKEN_INFO tinfo;

		if (want != (CK_SLOT_ID)-1 && want != slots[i]) {
			continue;
		}
		rv = h->p11->C_GetSlotInfo(slots[i], &sinfo);
		if (rv == CKR_OK && p11_kit_uri_match_slot_info(uri, &sinfo) != 1) {
			continue;
		}
		/* A token removed since C_GetSlotList is simply not a candidate. */
		rv = rv == CKR_OK ? h->p11->C_GetTokenInfo(slots[i], &tinfo) : rv;
		if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_REMOVED) {
			continue;
		}
		if (rv != CKR_OK) {
			err = ck_fail(rv, "C_GetTokenInfo", why, why_len);
			goto out;
		}
		if (p11_kit_uri_match_token_info(uri, &tinfo) == 1) {
			h->slot = slots[i];
			matches++;
		}
	}
	if (matches == 0) {
		err = set_why(why, why_len, TKM_E_NOT_FOUND,
		              "no PKCS#11 token matches '%s' (%lu token%s present)", token_uri,
		              (unsigned long)count, count == 1 ? "" : "s");
		goto out;
	}
	if (matches > 1) {
		err = set_why(why, why_len, TKM_E_CONFIG,
		              "%zu PKCS#11 tokens match '%s'; make the URI select one, for "
		              "example with serial=",
		              matches, token_uri);
		goto out;
	}
out:
	free(slots);
	return err;
}

tkm_err tkm_hsm_open(const char *module_path, const char *token_uri, tkm_hsm **out, char *why,
                     size_t why_len)
{
	tkm_hsm *h = NULL;
	P11KitUri *uri = NULL;
	tkm_err err;

	*out = NULL;
	if (token_uri == NULL) {
		err = set_why(why, why_len, TKM_E_CONFIG, "no PKCS#11 token URI given");
		goto out;
	}
	err = parse_uri(token_uri, &uri, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	err = load_module(h, module_path, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = initialize(h, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = select_token(h, token_uri, uri, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	*out = h;
	h = NULL;
out:
	if (err == TKM_E_NOMEM) {
		(void)set_why(why, why_len, err, "out of memory while opening the HSM");
	}
	p11_kit_uri_free(uri);
	tkm_hsm_close(h);
	return err;
}

tkm_err tkm_hsm_token_info(const tkm_hsm *h, tkm_hsm_token *out, char *why, size_t why_len)
{
	CK_TOKEN_INFO info;
	CK_RV rv;

	memset(out, 0, sizeof(*out));
	rv = h->p11->C_GetTokenInfo(h->slot, &info);
	if (rv != CKR_OK) {
		return ck_fail(rv, "C_GetTokenInfo", why, why_len);
	}
	trim_copy(out->label, sizeof(out->label), info.label, sizeof(info.label));
	trim_copy(out->model, sizeof(out->model), info.model, sizeof(info.model));
	trim_copy(out->manufacturer, sizeof(out->manufacturer), info.manufacturerID,
	          sizeof(info.manufacturerID));
	trim_copy(out->serial, sizeof(out->serial), info.serialNumber, sizeof(info.serialNumber));
	return TKM_OK;
}

void tkm_hsm_close(tkm_hsm *h)
{
	if (h == NULL) {
		return;
	}
	if (h->initialized) {
		(void)h->p11->C_Finalize(NULL);
	}
	if (h->dl != NULL) {
		dlclose(h->dl);
	}
	free(h);
}
