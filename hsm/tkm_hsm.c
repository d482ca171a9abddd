/*
 * tkm_hsm.c - load a PKCS#11 module, select a token by RFC 7512 URI, log in,
 * and keep the pool of sessions the other tkm_hsm_*.c files work on.
 *
 * Every CK_RV is translated to a tkm_err in this directory, with the
 * function and the CKR_ name in the message; nothing above hsm/ sees PKCS#11
 * types. Only absolute paths to regular files are loaded, so the
 * configuration cannot make the dynamic loader search for a library.
 *
 * The PIN is never kept: only its source (a file or an environment
 * variable) is. Each login reads it into sodium_malloc() memory and wipes it
 * right after C_Login. A session that dies is closed at check-in and a
 * fresh one is opened, and logged in again if the token forgot the login, at
 * the next check-out; the failed call itself reports TKM_E_UNAVAILABLE. A PIN
 * the token refuses is never tried again by this process, so a changed PIN
 * file cannot lock the token through retries.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>
#include <sodium.h>

#include "tkm_hsm.h"
#include "tkm_hsm_internal.h"

/* More slots than this is a broken module, not a big HSM. */
#define TKM_HSM_MAX_SLOTS 1024
/* Pool size bounds: one session per worker thread. */
#define TKM_HSM_MAX_SESSIONS 256
/* A PIN longer than this is a wrong file, not a PIN. */
#define TKM_HSM_PIN_MAX 256

const char *tkm_hsm_ckr_name(CK_RV rv)
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
	    {CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY"},
	    {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
	    {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
	    {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
	    {CKR_DATA_INVALID, "CKR_DATA_INVALID"},
	    {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
	    {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
	    {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
	    {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
	    {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
	    {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
	    {CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED"},
	    {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
	    {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
	    {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"},
	    {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
	    {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
	    {CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE"},
	    {CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE"},
	    {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
	    {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
	    {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
	    {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
	    {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED"},
	    {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
	    {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
	    {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
	    {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
	    {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
	    {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
	    {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
	    {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
	    {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
	    {CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID"},
	    {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
	    {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
	    {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
	    {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
	    {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"},
	    {CKR_UNWRAPPING_KEY_HANDLE_INVALID, "CKR_UNWRAPPING_KEY_HANDLE_INVALID"},
	    {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"},
	    {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
	    {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
	    {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
	    {CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID"},
	    {CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE"},
	    {CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID"},
	    {CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG"},
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

/*
 * Return values after which the session, its login or the token is gone. A
 * session rarely dies alone (the token was reset, all sessions closed, the
 * device pulled), so every pooled session is reopened at its next use.
 */
static bool ckr_lost(CK_RV rv)
{
	return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	       rv == CKR_CRYPTOKI_NOT_INITIALIZED || rv == CKR_SESSION_HANDLE_INVALID ||
	       rv == CKR_SESSION_CLOSED || rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_ERROR ||
	       rv == CKR_DEVICE_MEMORY || rv == CKR_SESSION_COUNT;
}

tkm_err tkm_hsm_ck(tkm_hsm *h, tkm_hsm_sess *s, CK_RV rv, const char *fn, char *why, size_t why_len)
{
	if (s != NULL) {
		s->reset = true;
	}
	if (rv == CKR_HOST_MEMORY) {
		return tkm_why_fail(why, why_len, TKM_E_NOMEM, "PKCS#11 %s failed: %s", fn,
		                    tkm_hsm_ckr_name(rv));
	}
	if (ckr_lost(rv)) {
		if (h != NULL && h->sync) {
			pthread_mutex_lock(&h->mu);
			h->gen++;
			pthread_mutex_unlock(&h->mu);
		}
		return tkm_why_fail(
		    why, why_len, TKM_E_UNAVAILABLE,
		    "HSM unavailable: PKCS#11 %s failed with %s (0x%lx); the session "
		    "is reopened and logged in again on the next call",
		    fn, tkm_hsm_ckr_name(rv), (unsigned long)rv);
	}
	return tkm_why_fail(why, why_len, TKM_E_HSM, "PKCS#11 %s failed: %s (0x%lx)", fn,
	                    tkm_hsm_ckr_name(rv), (unsigned long)rv);
}

/* Open and token errors: the module is there but failed (TKM_E_HSM). */
static tkm_err ck_fail(CK_RV rv, const char *fn, char *why, size_t why_len)
{
	tkm_err err = rv == CKR_HOST_MEMORY ? TKM_E_NOMEM : TKM_E_HSM;

	return tkm_why_fail(why, why_len, err, "PKCS#11 %s failed: %s (0x%lx)", fn,
	                    tkm_hsm_ckr_name(rv), (unsigned long)rv);
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
		return tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                    "PKCS#11 module path '%s' is not absolute", path ? path : "");
	}
	if (stat(path, &st) != 0) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG, "PKCS#11 module %s: %s", path,
		                    strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                    "PKCS#11 module %s is not a regular file", path);
	}
	h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h->dl == NULL) {
		dlerr = dlerror();
		return tkm_why_fail(why, why_len, TKM_E_CONFIG, "cannot load PKCS#11 module: %s",
		                    dlerr != NULL ? dlerr : path);
	}
	/* POSIX guarantees that a dlsym() result converts to a function pointer. */
	get_list = (CK_C_GetFunctionList)dlsym(h->dl, "C_GetFunctionList");
	if (get_list == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                    "%s is not a PKCS#11 module: no C_GetFunctionList", path);
	}
	rv = get_list(&h->p11);
	if (rv != CKR_OK) {
		return ck_fail(rv, "C_GetFunctionList", why, why_len);
	}
	if (h->p11 == NULL || h->p11->version.major != 2) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG,
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
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG, "PKCS#11 token URI '%s': %s",
		                   token_uri, p11_kit_uri_message(rc));
		goto out;
	}
	/* p11-kit matches nothing when it meets an attribute it does not know. */
	if (p11_kit_uri_any_unrecognized(uri)) {
		err = tkm_why_fail(
		    why, why_len, TKM_E_CONFIG,
		    "PKCS#11 token URI '%s' has attributes that do not describe a token",
		    token_uri);
		goto out;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL || p11_kit_uri_get_pin_source(uri) != NULL) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_CONFIG,
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
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND,
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
			err =
			    tkm_why_fail(why, why_len, TKM_E_HSM,
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
		err = tkm_why_fail(why, why_len, TKM_E_NOT_FOUND,
		                   "no PKCS#11 token matches '%s' (%lu token%s present)", token_uri,
		                   (unsigned long)count, count == 1 ? "" : "s");
		goto out;
	}
	if (matches > 1) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                   "%zu PKCS#11 tokens match '%s'; make the URI select one, for "
		                   "example with serial=",
		                   matches, token_uri);
		goto out;
	}
out:
	free(slots);
	return err;
}

static tkm_err init_sync(tkm_hsm *h)
{
	if (pthread_mutex_init(&h->mu, NULL) != 0) {
		return TKM_E_NOMEM;
	}
	if (pthread_cond_init(&h->cv, NULL) != 0) {
		pthread_mutex_destroy(&h->mu);
		return TKM_E_NOMEM;
	}
	if (pthread_mutex_init(&h->login_mu, NULL) != 0) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		return TKM_E_NOMEM;
	}
	if (pthread_mutex_init(&h->keys_mu, NULL) != 0) {
		pthread_mutex_destroy(&h->login_mu);
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		return TKM_E_NOMEM;
	}
	h->sync = true;
	return TKM_OK;
}

tkm_err tkm_hsm_open(const char *module_path, const char *token_uri, tkm_hsm **out, char *why,
                     size_t why_len)
{
	tkm_hsm *h = NULL;
	P11KitUri *uri = NULL;
	tkm_err err;

	*out = NULL;
	if (token_uri == NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG, "no PKCS#11 token URI given");
		goto out;
	}
	err = parse_uri(token_uri, &uri, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	/* Idempotent and thread-safe; sodium_malloc() needs it. */
	if (sodium_init() < 0) {
		err = tkm_why_fail(why, why_len, TKM_E_INTERNAL, "libsodium failed to initialise");
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	err = init_sync(h);
	if (err != TKM_OK) {
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
		(void)tkm_why_fail(why, why_len, err, "out of memory while opening the HSM");
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

/* ---- Login ---- */

/*
 * Read the PIN from its source into sodium_malloc() memory (*pin, *len; the
 * caller wipes and frees it). A trailing "\n" or "\r\n" is not part of it.
 */
static tkm_err pin_read(const tkm_hsm *h, uint8_t **pin, size_t *len, char *why, size_t why_len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	struct stat st;
	int fd = -1;
	tkm_err err = TKM_OK;

	*pin = NULL;
	*len = 0;
	buf = sodium_malloc(TKM_HSM_PIN_MAX + 1);
	if (buf == NULL) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of locked memory for the PIN");
		goto out;
	}
	if (h->pin_file != NULL) {
		fd = open(h->pin_file, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) != 0) {
			err = tkm_why_fail(why, why_len, TKM_E_CONFIG, "HSM PIN file %s: %s",
			                   h->pin_file, strerror(errno));
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
			                   "HSM PIN file %s is not a regular file", h->pin_file);
			goto out;
		}
		if ((st.st_mode & 077) != 0) {
			err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
			                   "HSM PIN file %s is accessible to group or others (mode "
			                   "%04o); make it 0600 or 0400",
			                   h->pin_file, (unsigned)(st.st_mode & 07777));
			goto out;
		}
		if (st.st_uid != geteuid() && st.st_uid != 0) {
			err =
			    tkm_why_fail(why, why_len, TKM_E_CONFIG,
			                 "HSM PIN file %s is owned by uid %lu, not by tkmd's user "
			                 "or root",
			                 h->pin_file, (unsigned long)st.st_uid);
			goto out;
		}
		while (n <= TKM_HSM_PIN_MAX) {
			ssize_t r = read(fd, buf + n, TKM_HSM_PIN_MAX + 1 - n);
			if (r < 0 && errno == EINTR) {
				continue;
			}
			if (r < 0) {
				err =
				    tkm_why_fail(why, why_len, TKM_E_CONFIG, "HSM PIN file %s: %s",
				                 h->pin_file, strerror(errno));
				goto out;
			}
			if (r == 0) {
				break;
			}
			n += (size_t)r;
		}
	} else {
		const char *v = getenv(h->pin_env);

		if (v == NULL) {
			err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
			                   "environment variable %s (hsm.pin_env) is not set",
			                   h->pin_env);
			goto out;
		}
		n = strlen(v);
		if (n <= TKM_HSM_PIN_MAX) {
			memcpy(buf, v, n);
		}
	}
	if (n > TKM_HSM_PIN_MAX) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                   "the HSM PIN is longer than %d bytes", TKM_HSM_PIN_MAX);
		goto out;
	}
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r') {
			n--;
		}
	}
	if (n == 0) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG, "the HSM PIN from %s is empty",
		                   h->pin_file != NULL ? h->pin_file : h->pin_env);
		goto out;
	}
	*pin = buf;
	*len = n;
	buf = NULL;
out:
	if (buf != NULL) {
		sodium_memzero(buf, TKM_HSM_PIN_MAX + 1);
		sodium_free(buf);
	}
	if (fd >= 0) {
		close(fd);
	}
	return err;
}

/* Log the token in through s unless it already is. PIN problems are TKM_E_CONFIG. */
static tkm_err ensure_login(tkm_hsm *h, tkm_hsm_sess *s, char *why, size_t why_len)
{
	CK_SESSION_INFO si;
	uint8_t *pin = NULL;
	size_t pin_len = 0;
	bool rejected;
	tkm_err err = TKM_OK;
	CK_RV rv;

	rv = h->p11->C_GetSessionInfo(s->h, &si);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, s, rv, "C_GetSessionInfo", why, why_len);
	}
	if (si.state == CKS_RW_USER_FUNCTIONS || si.state == CKS_RO_USER_FUNCTIONS) {
		return TKM_OK;
	}
	pthread_mutex_lock(&h->login_mu);
	pthread_mutex_lock(&h->mu);
	rejected = h->pin_rejected;
	pthread_mutex_unlock(&h->mu);
	if (rejected) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                   "the token refused tkmd's PIN before; it is not tried again "
		                   "until tkmd restarts");
		goto out;
	}
	err = pin_read(h, &pin, &pin_len, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	rv = h->p11->C_Login(s->h, CKU_USER, pin, (CK_ULONG)pin_len);
	sodium_memzero(pin, pin_len);
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
		goto out;
	}
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
	    rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED || rv == CKR_USER_PIN_NOT_INITIALIZED) {
		pthread_mutex_lock(&h->mu);
		h->pin_rejected = true;
		pthread_mutex_unlock(&h->mu);
		s->reset = true;
		err = tkm_why_fail(
		    why, why_len, TKM_E_CONFIG, "the token refused the PIN from %s %s: %s",
		    h->pin_file ? "file" : "variable",
		    h->pin_file != NULL ? h->pin_file : h->pin_env, tkm_hsm_ckr_name(rv));
		goto out;
	}
	err = tkm_hsm_ck(h, s, rv, "C_Login", why, why_len);
out:
	if (pin != NULL) {
		sodium_free(pin);
	}
	pthread_mutex_unlock(&h->login_mu);
	return err;
}

static void sess_close(tkm_hsm *h, tkm_hsm_sess *s)
{
	if (s->open) {
		/* Closing also destroys the session objects left in it. */
		(void)h->p11->C_CloseSession(s->h);
		s->open = false;
	}
	s->reset = false;
}

static tkm_err sess_open(tkm_hsm *h, tkm_hsm_sess *s, unsigned long gen, char *why, size_t why_len)
{
	CK_SESSION_HANDLE hs = CK_INVALID_HANDLE;
	tkm_err err;
	CK_RV rv;

	rv = h->p11->C_OpenSession(h->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &hs);
	if (rv != CKR_OK) {
		return tkm_hsm_ck(h, NULL, rv, "C_OpenSession", why, why_len);
	}
	s->h = hs;
	s->open = true;
	s->reset = false;
	s->gen = gen;
	err = ensure_login(h, s, why, why_len);
	if (err != TKM_OK) {
		sess_close(h, s);
	}
	return err;
}

/* Check out a session; startup keeps PIN problems as TKM_E_CONFIG. */
static tkm_err sess_get(tkm_hsm *h, tkm_hsm_sess **out, bool startup, char *why, size_t why_len)
{
	tkm_hsm_sess *s = NULL;
	unsigned long gen;
	tkm_err err = TKM_OK;

	*out = NULL;
	if (h == NULL || h->pool == NULL) {
		return tkm_why_fail(
		    why, why_len, TKM_E_UNAVAILABLE,
		    "not logged in to the HSM: configure hsm.pin_file or hsm.pin_env");
	}
	pthread_mutex_lock(&h->mu);
	for (;;) {
		for (size_t i = 0; i < h->npool; i++) {
			tkm_hsm_sess *c = &h->pool[i];
			if (!c->busy && (s == NULL || (c->open && !s->open))) {
				s = c;
			}
		}
		if (s != NULL) {
			break;
		}
		pthread_cond_wait(&h->cv, &h->mu);
	}
	s->busy = true;
	gen = h->gen;
	pthread_mutex_unlock(&h->mu);

	if (s->open && s->gen != gen) {
		sess_close(h, s);
	}
	if (!s->open) {
		err = sess_open(h, s, gen, why, why_len);
	}
	if (err != TKM_OK) {
		tkm_hsm_sess_put(h, s);
		if (err == TKM_E_CONFIG && !startup) {
			err = TKM_E_UNAVAILABLE;
		}
		return err;
	}
	*out = s;
	return TKM_OK;
}

tkm_err tkm_hsm_sess_get(tkm_hsm *h, tkm_hsm_sess **out, char *why, size_t why_len)
{
	return sess_get(h, out, false, why, why_len);
}

void tkm_hsm_sess_put(tkm_hsm *h, tkm_hsm_sess *s)
{
	if (s == NULL) {
		return;
	}
	if (s->reset) {
		sess_close(h, s);
	}
	pthread_mutex_lock(&h->mu);
	s->busy = false;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static bool env_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 128 || (name[0] >= '0' && name[0] <= '9')) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_')) {
			return false;
		}
	}
	return true;
}

static void pool_free(tkm_hsm *h)
{
	for (size_t i = 0; i < h->npool; i++) {
		sess_close(h, &h->pool[i]);
	}
	free(h->pool);
	h->pool = NULL;
	h->npool = 0;
	free(h->pin_file);
	free(h->pin_env);
	h->pin_file = NULL;
	h->pin_env = NULL;
}

tkm_err tkm_hsm_login(tkm_hsm *h, const char *pin_file, const char *pin_env, unsigned sessions,
                      char *why, size_t why_len)
{
	tkm_hsm_sess *s = NULL;
	tkm_err err;

	if ((pin_file == NULL) == (pin_env == NULL)) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                    "give the HSM PIN by exactly one of a file and an environment "
		                    "variable");
	}
	if (pin_file != NULL && pin_file[0] == '\0') {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG, "the HSM PIN file name is empty");
	}
	if (pin_env != NULL && !env_name_ok(pin_env)) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                    "'%s' is not an environment variable name", pin_env);
	}
	if (sessions < 1 || sessions > TKM_HSM_MAX_SESSIONS) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "HSM session pool size %u is not between 1 and %d", sessions,
		                    TKM_HSM_MAX_SESSIONS);
	}
	if (h->pool != NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "already logged in to the HSM");
	}
	pthread_mutex_lock(&h->mu);
	h->pool = calloc(sessions, sizeof(*h->pool));
	h->npool = h->pool != NULL ? sessions : 0;
	h->pin_file = pin_file != NULL ? strdup(pin_file) : NULL;
	h->pin_env = pin_env != NULL ? strdup(pin_env) : NULL;
	h->pin_rejected = false;
	pthread_mutex_unlock(&h->mu);
	if (h->pool == NULL || (pin_file != NULL && h->pin_file == NULL) ||
	    (pin_env != NULL && h->pin_env == NULL)) {
		err = tkm_why_fail(why, why_len, TKM_E_NOMEM, "out of memory for the HSM sessions");
		goto out;
	}
	/* Log in now, so that a wrong PIN stops tkmd at start rather than at first use. */
	err = sess_get(h, &s, true, why, why_len);
	tkm_hsm_sess_put(h, s);
out:
	if (err != TKM_OK) {
		pthread_mutex_lock(&h->mu);
		pool_free(h);
		pthread_mutex_unlock(&h->mu);
	}
	return err;
}

void tkm_hsm_close(tkm_hsm *h)
{
	if (h == NULL) {
		return;
	}
	if (h->sync) {
		pool_free(h);
		pthread_mutex_destroy(&h->keys_mu);
		pthread_mutex_destroy(&h->login_mu);
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
	}
	if (h->initialized) {
		(void)h->p11->C_Finalize(NULL);
	}
	if (h->dl != NULL) {
		dlclose(h->dl);
	}
	free(h);
}
