/*
 * tkm_p11shim.h - control API of the fault-injecting PKCS#11 module used by
 * tests (libtkm_p11shim.so). Test code only; nothing in tkm links it.
 *
 * The module forwards every PKCS#11 call to a real module (SoftHSM2) and,
 * when armed, fails chosen calls with a chosen CK_RV *without forwarding
 * them*, so the real token never sees the failed call. See tkm_p11shim.c for
 * the environment variables that arm it at load time.
 *
 * A test reaches the control functions through the same dlopen() handle the
 * code under test uses: dlopen() of an already loaded file returns the same
 * object, so tkm_p11shim_ctl_open() below works before or after the hsm code
 * loads the module, and keeps the module (and its plan) loaded until
 * tkm_p11shim_ctl_close(). All functions are thread-safe.
 *
 * Counting: only calls whose function name is in `only` (a comma-separated
 * list such as "C_Sign,C_UnwrapKey"; NULL or "" means every function,
 * C_GetFunctionList included) are counted. The count starts at 0 when armed.
 */
#ifndef TKM_P11SHIM_H
#define TKM_P11SHIM_H

#include <dlfcn.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include <p11-kit/pkcs11.h>

/* tkm_p11shim_calls() of a name that is not a PKCS#11 2.40 function. */
#define TKM_P11SHIM_UNKNOWN ULONG_MAX

/*
 * Fail the nth (1-based) counted call with rv, then forward again: a one-off
 * fault. Replaces any earlier plan and zeroes the injected count. Returns
 * CKR_ARGUMENTS_BAD, and leaves the plan unchanged, for nth == 0, rv ==
 * CKR_OK or an unknown name in only.
 */
CK_RV tkm_p11shim_arm(const char *only, unsigned long nth, CK_RV rv);

/*
 * As tkm_p11shim_arm(), but the nth and every later counted call fail until
 * tkm_p11shim_disarm(): a device that stays broken or removed.
 */
CK_RV tkm_p11shim_arm_from(const char *only, unsigned long nth, CK_RV rv);

/* Forget the plan; every call forwards. The counters are kept. */
void tkm_p11shim_disarm(void);

/*
 * Calls made to the named function ("C_UnwrapKey") since the module was
 * loaded, failed ones included; name NULL sums every function.
 * TKM_P11SHIM_UNKNOWN for a name that is not a PKCS#11 function.
 */
unsigned long tkm_p11shim_calls(const char *name);

/* Calls failed by injection since the last arm. */
unsigned long tkm_p11shim_injected(void);

/* The control functions, looked up with dlsym() by a test. */
struct tkm_p11shim_ctl {
	void *dl; /* our reference to the module */
	CK_RV (*arm)(const char *only, unsigned long nth, CK_RV rv);
	CK_RV (*arm_from)(const char *only, unsigned long nth, CK_RV rv);
	void (*disarm)(void);
	unsigned long (*calls)(const char *name);
	unsigned long (*injected)(void);
};

/*
 * dlopen() the module at path (RTLD_NOW | RTLD_LOCAL, as the hsm code does)
 * and bind the control functions. On failure prints dlerror() to stderr and
 * returns false with ctl->dl NULL.
 */
static inline bool tkm_p11shim_ctl_open(struct tkm_p11shim_ctl *ctl, const char *path)
{
	const char *e;

	ctl->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (ctl->dl == NULL) {
		e = dlerror();
		fprintf(stderr, "tkm_p11shim: cannot load %s: %s\n", path, e ? e : "?");
		return false;
	}
	/* POSIX guarantees that a dlsym() result converts to a function pointer. */
	ctl->arm = (CK_RV(*)(const char *, unsigned long, CK_RV))dlsym(ctl->dl, "tkm_p11shim_arm");
	ctl->arm_from =
	    (CK_RV(*)(const char *, unsigned long, CK_RV))dlsym(ctl->dl, "tkm_p11shim_arm_from");
	ctl->disarm = (void (*)(void))dlsym(ctl->dl, "tkm_p11shim_disarm");
	ctl->calls = (unsigned long (*)(const char *))dlsym(ctl->dl, "tkm_p11shim_calls");
	ctl->injected = (unsigned long (*)(void))dlsym(ctl->dl, "tkm_p11shim_injected");
	if (ctl->arm == NULL || ctl->arm_from == NULL || ctl->disarm == NULL ||
	    ctl->calls == NULL || ctl->injected == NULL) {
		fprintf(stderr, "tkm_p11shim: %s lacks the control functions\n", path);
		dlclose(ctl->dl);
		ctl->dl = NULL;
		return false;
	}
	return true;
}

/* Disarm and drop our reference. NULL-safe, and safe after a failed open. */
static inline void tkm_p11shim_ctl_close(struct tkm_p11shim_ctl *ctl)
{
	if (ctl == NULL || ctl->dl == NULL) {
		return;
	}
	ctl->disarm();
	dlclose(ctl->dl);
	ctl->dl = NULL;
}

#endif /* TKM_P11SHIM_H */
