/*
 * p11shim_test.c - the fault-injecting PKCS#11 module (tests/p11shim) in
 * front of a real SoftHSM2 token made in a temporary directory: calls
 * forward, an armed call fails exactly once (or from the Nth on until
 * disarmed) without reaching the token, the counters count, bad plans are
 * refused, and the TKM_P11SHIM_* variables arm the module at load time.
 *
 * The load-time cases run in forked children before the parent loads the
 * module, because the variables are read only when it is loaded.
 */
#include "tkm_p11shim.h"
#include "tkm_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TKM_P11SHIM_PATH
#error "TKM_P11SHIM_PATH (the shim module) must be defined by the build"
#endif
#ifndef TKM_SOFTHSM2_UTIL
#define TKM_SOFTHSM2_UTIL "softhsm2-util"
#endif

/* Test-only PINs of the throwaway token. */
#define SO_PIN   "p11shim-test-so-pin"
#define USER_PIN "p11shim-test-user-pin"

#define THREADS          4
#define CALLS_PER_THREAD 100

static char test_dir[256];

/* ---- The token directory ---- */

static bool fmt_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n > 0 && (size_t)n < len;
}

static bool write_file(const char *path, const char *text)
{
	size_t len = strlen(text), off = 0;
	ssize_t n;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		return false;
	}
	while (off < len) {
		n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			close(fd);
			return false;
		}
		off += (size_t)n;
	}
	return close(fd) == 0;
}

static void rm_tree(const char *path)
{
	char child[512];
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(path);

	if (d != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
				continue;
			}
			if (!fmt_path(child, sizeof(child), path, de->d_name) ||
			    lstat(child, &st) != 0) {
				continue;
			}
			if (S_ISDIR(st.st_mode)) {
				rm_tree(child);
			} else {
				(void)unlink(child);
			}
		}
		closedir(d);
	}
	(void)rmdir(path);
}

/* Run softhsm2-util with its output in DIR/softhsm2-util.out; its exit status. */
static int run_softhsm2_util(const char *const argv[])
{
	char out[300];
	int status = -1, fd;
	pid_t pid;

	if (!fmt_path(out, sizeof(out), test_dir, "softhsm2-util.out")) {
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		return -1;
	}
	if (pid == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
			_exit(126);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			return -1;
		}
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A fresh directory with a SoftHSM2 configuration and a token labelled tkm. */
static bool make_token(void)
{
	const char *tmp = getenv("TMPDIR");
	char conf[300], tokens[300], text[600];
	const char *argv[] = {TKM_SOFTHSM2_UTIL, "--init-token", "--free", "--label", "tkm",
	                      "--so-pin",        SO_PIN,         "--pin",  USER_PIN,  NULL};
	int n, status;

	if (tmp == NULL || tmp[0] == '\0') {
		tmp = "/tmp";
	}
	n = snprintf(test_dir, sizeof(test_dir), "%s/tkm-p11shim-XXXXXX", tmp);
	if (n < 0 || (size_t)n >= sizeof(test_dir) || mkdtemp(test_dir) == NULL) {
		fprintf(stderr, "mkdtemp in %s: %s\n", tmp, strerror(errno));
		test_dir[0] = '\0';
		return false;
	}
	if (!fmt_path(conf, sizeof(conf), test_dir, "softhsm2.conf") ||
	    !fmt_path(tokens, sizeof(tokens), test_dir, "tokens") || mkdir(tokens, 0700) != 0) {
		return false;
	}
	n = snprintf(text, sizeof(text),
	             "directories.tokendir = %s\n"
	             "objectstore.backend = file\n"
	             "log.level = ERROR\n"
	             "slots.removable = false\n",
	             tokens);
	if (n < 0 || (size_t)n >= sizeof(text) || !write_file(conf, text) ||
	    setenv("SOFTHSM2_CONF", conf, 1) != 0) {
		return false;
	}
	status = run_softhsm2_util(argv);
	if (status != 0) {
		fprintf(stderr, "softhsm2-util --init-token exited %d (see %s)\n", status,
		        test_dir);
		return false;
	}
	return true;
}

/* ---- PKCS#11 helpers ---- */

/* Open the shim and fetch its function list; the C_GetFunctionList result. */
static CK_RV open_shim(struct tkm_p11shim_ctl *ctl, CK_FUNCTION_LIST_PTR *p11)
{
	CK_C_GetFunctionList get_list;

	*p11 = NULL;
	if (!tkm_p11shim_ctl_open(ctl, TKM_P11SHIM_PATH)) {
		return CKR_LIBRARY_LOAD_FAILED;
	}
	get_list = (CK_C_GetFunctionList)dlsym(ctl->dl, "C_GetFunctionList");
	if (get_list == NULL) {
		return CKR_LIBRARY_LOAD_FAILED;
	}
	return get_list(p11);
}

static CK_RV initialize(CK_FUNCTION_LIST_PTR p11)
{
	CK_C_INITIALIZE_ARGS args;

	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	return p11->C_Initialize(&args);
}

/* The slot whose token is labelled "tkm" (label is blank-padded to 32). */
static bool find_token(CK_FUNCTION_LIST_PTR p11, CK_SLOT_ID *slot)
{
	CK_SLOT_ID slots[16];
	CK_ULONG n = sizeof(slots) / sizeof(slots[0]);
	CK_TOKEN_INFO ti;
	unsigned char want[sizeof(ti.label)];

	memset(want, ' ', sizeof(want));
	memcpy(want, "tkm", 3);
	if (p11->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) {
		return false;
	}
	for (CK_ULONG i = 0; i < n; i++) {
		if (p11->C_GetTokenInfo(slots[i], &ti) != CKR_OK) {
			continue;
		}
		if (memcmp(ti.label, want, sizeof(want)) == 0) { /* lint: memcmp ok (public data) */
			*slot = slots[i];
			return true;
		}
	}
	return false;
}

/* A session AES-256 key. */
static CK_RV gen_aes(CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *key)
{
	CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ULONG len = 32;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &kt, sizeof(kt)},
	    {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},
	    {CKA_ENCRYPT, &yes, sizeof(yes)},
	};

	return p11->C_GenerateKey(s, &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), key);
}

/* Secret-key objects visible to the session, or -1. */
static long count_keys(CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE objs[32];
	CK_ULONG n;
	long total = 0;

	if (p11->C_FindObjectsInit(s, tmpl, 1) != CKR_OK) {
		return -1;
	}
	do {
		if (p11->C_FindObjects(s, objs, sizeof(objs) / sizeof(objs[0]), &n) != CKR_OK) {
			total = -1;
			break;
		}
		total += (long)n;
	} while (n > 0);
	if (p11->C_FindObjectsFinal(s) != CKR_OK) {
		return -1;
	}
	return total;
}

static CK_RV random16(CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s)
{
	CK_BYTE buf[16];

	return p11->C_GenerateRandom(s, buf, sizeof(buf));
}

static CK_RV session_info(CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO si;

	return p11->C_GetSessionInfo(s, &si);
}

/* ---- Load-time control, each case in a child process ---- */

/* Set name/value pairs (NULL-terminated), run body, exit 0 when all checks passed. */
static void in_child(const char *const *vars, void (*body)(void))
{
	int status = -1;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid < 0) {
		return;
	}
	if (pid == 0) {
		tkm_test_passed = 0;
		tkm_test_failed = 0;
		for (size_t i = 0; vars[i] != NULL; i += 2) {
			if (setenv(vars[i], vars[i + 1], 1) != 0) {
				exit(2);
			}
		}
		body();
		fflush(NULL);
		exit(tkm_test_failed == 0 && tkm_test_passed > 0 ? 0 : 1);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		fprintf(stderr, "child with %s=%s failed (status 0x%x)\n", vars[0], vars[1],
		        (unsigned)status);
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* TKM_P11SHIM_FAIL_AT=2, ONLY=C_GetInfo, RV=CKR_DEVICE_MEMORY. */
static void body_env_once(void)
{
	struct tkm_p11shim_ctl ctl;
	CK_FUNCTION_LIST_PTR p11;
	CK_INFO info;

	CHECK_EQ_INT(open_shim(&ctl, &p11), CKR_OK);
	if (p11 == NULL) {
		return;
	}
	CHECK_EQ_INT(initialize(p11), CKR_OK);
	CHECK_EQ_INT(p11->C_GetInfo(&info), CKR_OK);
	CHECK_EQ_INT(p11->C_GetInfo(&info), CKR_DEVICE_MEMORY);
	CHECK_EQ_INT(p11->C_GetInfo(&info), CKR_OK);
	CHECK_EQ_INT(ctl.injected(), 1);
	CHECK_EQ_INT(ctl.calls("C_GetInfo"), 3);
	CHECK_EQ_INT(p11->C_Finalize(NULL), CKR_OK);
	tkm_p11shim_ctl_close(&ctl);
}

/* TKM_P11SHIM_FAIL_FROM=1, ONLY="C_GetSlotList, C_GetInfo", RV=0xb3. */
static void body_env_from(void)
{
	struct tkm_p11shim_ctl ctl;
	CK_FUNCTION_LIST_PTR p11;
	CK_INFO info;
	CK_ULONG n = 0;

	CHECK_EQ_INT(open_shim(&ctl, &p11), CKR_OK);
	if (p11 == NULL) {
		return;
	}
	CHECK_EQ_INT(initialize(p11), CKR_OK);
	CHECK_EQ_INT(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_SESSION_HANDLE_INVALID);
	CHECK_EQ_INT(p11->C_GetInfo(&info), CKR_SESSION_HANDLE_INVALID);
	CHECK_EQ_INT(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_SESSION_HANDLE_INVALID);
	CHECK_EQ_INT(ctl.injected(), 3);
	ctl.disarm();
	CHECK_EQ_INT(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	CHECK(n >= 1);
	CHECK_EQ_INT(p11->C_Finalize(NULL), CKR_OK);
	tkm_p11shim_ctl_close(&ctl);
}

/* TKM_P11SHIM_FAIL_AT=1, RV=CKR_HOST_MEMORY: C_GetFunctionList itself fails once. */
static void body_env_get_list(void)
{
	struct tkm_p11shim_ctl ctl;
	CK_FUNCTION_LIST_PTR p11;
	CK_C_GetFunctionList get_list;

	CHECK_EQ_INT(open_shim(&ctl, &p11), CKR_HOST_MEMORY);
	CHECK(p11 == NULL);
	if (ctl.dl == NULL) {
		return;
	}
	get_list = (CK_C_GetFunctionList)dlsym(ctl.dl, "C_GetFunctionList");
	CHECK_EQ_INT(get_list(&p11), CKR_OK);
	CHECK(p11 != NULL);
	CHECK_EQ_INT(ctl.calls("C_GetFunctionList"), 2);
	tkm_p11shim_ctl_close(&ctl);
}

/* A malformed variable: C_GetFunctionList refuses. */
static void body_env_bad(void)
{
	struct tkm_p11shim_ctl ctl;
	CK_FUNCTION_LIST_PTR p11;

	CHECK_EQ_INT(open_shim(&ctl, &p11), CKR_GENERAL_ERROR);
	CHECK(p11 == NULL);
	tkm_p11shim_ctl_close(&ctl);
}

static void test_env(void)
{
	static const char *const once[] = {
	    "TKM_P11SHIM_FAIL_AT", "2", "TKM_P11SHIM_ONLY", "C_GetInfo", "TKM_P11SHIM_RV",
	    "CKR_DEVICE_MEMORY",   NULL};
	static const char *const from[] = {"TKM_P11SHIM_FAIL_FROM",
	                                   "1",
	                                   "TKM_P11SHIM_ONLY",
	                                   "C_GetSlotList, C_GetInfo",
	                                   "TKM_P11SHIM_RV",
	                                   "0xb3",
	                                   NULL};
	static const char *const get_list[] = {"TKM_P11SHIM_FAIL_AT", "1", "TKM_P11SHIM_RV",
	                                       "CKR_HOST_MEMORY", NULL};
	static const char *const bad[][7] = {
	    {"TKM_P11SHIM_FAIL_AT", "x", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "0", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "-1", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "3z", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "1", "TKM_P11SHIM_FAIL_FROM", "1", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "1", "TKM_P11SHIM_RV", "CKR_NO_SUCH_THING", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "1", "TKM_P11SHIM_RV", "0", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "1", "TKM_P11SHIM_ONLY", "C_Bogus", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "1", "TKM_P11SHIM_ONLY", "C_Sign,,C_Verify", NULL},
	    {"TKM_P11SHIM_FAIL_AT", "1", "TKM_P11SHIM_ONLY", "C_Sign C_Verify", NULL},
	    {"TKM_P11SHIM_RV", "CKR_DEVICE_ERROR", NULL},
	    {"TKM_P11SHIM_ONLY", "C_Sign", NULL},
	    {"TKM_P11SHIM_MODULE", "", NULL},
	    {"TKM_P11SHIM_MODULE", "/nonexistent/libnothing.so", NULL},
	    {"TKM_P11SHIM_MODULE", TKM_P11SHIM_PATH, NULL},
	};

	in_child(once, body_env_once);
	in_child(from, body_env_from);
	in_child(get_list, body_env_get_list);
	fprintf(stderr,
	        "p11shim: malformed variables next; their tkm_p11shim messages are expected\n");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in_child(bad[i], body_env_bad);
	}
}

/* ---- Run-time control against the live token ---- */

struct hammer {
	CK_FUNCTION_LIST_PTR p11;
	CK_SLOT_ID slot;
	unsigned failed;  /* CKR_DEVICE_ERROR, the injected value */
	unsigned strange; /* anything else but CKR_OK */
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	CK_SESSION_HANDLE s;
	CK_RV rv;

	if (h->p11->C_OpenSession(h->slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
		h->strange = CALLS_PER_THREAD;
		return NULL;
	}
	for (int i = 0; i < CALLS_PER_THREAD; i++) {
		rv = random16(h->p11, s);
		if (rv == CKR_DEVICE_ERROR) {
			h->failed++;
		} else if (rv != CKR_OK) {
			h->strange++;
		}
	}
	if (h->p11->C_CloseSession(s) != CKR_OK) {
		h->strange++;
	}
	return NULL;
}

/* One armed call among THREADS x CALLS_PER_THREAD concurrent ones fails. */
static void test_threads(struct tkm_p11shim_ctl *ctl, CK_FUNCTION_LIST_PTR p11, CK_SLOT_ID slot)
{
	struct hammer h[THREADS];
	pthread_t tid[THREADS];
	unsigned long before = ctl->calls("C_GenerateRandom");
	unsigned failed = 0, strange = 0;
	int started = 0;

	CHECK_EQ_INT(ctl->arm("C_GenerateRandom", 150, CKR_DEVICE_ERROR), CKR_OK);
	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){.p11 = p11, .slot = slot};
		if (pthread_create(&tid[i], NULL, hammer_main, &h[i]) != 0) {
			break;
		}
		started++;
	}
	CHECK_EQ_INT(started, THREADS);
	for (int i = 0; i < started; i++) {
		pthread_join(tid[i], NULL);
		failed += h[i].failed;
		strange += h[i].strange;
	}
	CHECK_EQ_INT(failed, 1);
	CHECK_EQ_INT(strange, 0);
	CHECK_EQ_INT(ctl->injected(), 1);
	CHECK_EQ_INT(ctl->calls("C_GenerateRandom") - before, THREADS * CALLS_PER_THREAD);
}

/* Every entry of the list is filled, and it names itself. */
static void test_list(CK_FUNCTION_LIST_PTR p11)
{
	const size_t first = offsetof(CK_FUNCTION_LIST, C_Initialize);
	const size_t n = (sizeof(CK_FUNCTION_LIST) - first) / sizeof(CK_C_Initialize);
	CK_FUNCTION_LIST_PTR again = NULL;
	CK_C_Initialize f;
	size_t filled = 0;

	CHECK_EQ_INT(n, 68); /* PKCS#11 2.40 */
	for (size_t i = 0; i < n; i++) {
		memcpy(&f, (const unsigned char *)p11 + first + i * sizeof(f), sizeof(f));
		filled += f != NULL;
	}
	CHECK_EQ_INT(filled, n);
	CHECK_EQ_INT(p11->version.major, 2);
	CHECK_EQ_INT(p11->version.minor, 40);
	CHECK_EQ_INT(p11->C_GetFunctionList(&again), CKR_OK);
	CHECK(again == p11);
}

static void test_live(void)
{
	struct tkm_p11shim_ctl ctl;
	CK_FUNCTION_LIST_PTR p11 = NULL;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE key;
	CK_SLOT_ID slot = 0;
	CK_INFO info;
	CK_TOKEN_INFO ti;
	unsigned long all;
	void *again;
	long keys;

	CHECK_EQ_INT(open_shim(&ctl, &p11), CKR_OK);
	if (p11 == NULL) {
		tkm_p11shim_ctl_close(&ctl);
		return;
	}
	/* The hsm code's own dlopen() of the path gets this same object. */
	again = dlopen(TKM_P11SHIM_PATH, RTLD_NOW | RTLD_LOCAL);
	CHECK(again == ctl.dl);
	if (again != NULL) {
		dlclose(again);
	}
	test_list(p11);

	/* Forwarding. */
	CHECK_EQ_INT(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_EQ_INT(initialize(p11), CKR_OK);
	CHECK_EQ_INT(p11->C_GetInfo(&info), CKR_OK);
	CHECK(memcmp(info.manufacturerID, "SoftHSM", 7) == 0); /* lint: memcmp ok (public data) */
	CHECK(find_token(p11, &slot));
	CHECK_EQ_INT(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
	             CKR_OK);
	CHECK_EQ_INT(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)USER_PIN, strlen(USER_PIN)),
	             CKR_OK);
	key = CK_INVALID_HANDLE;
	CHECK_EQ_INT(gen_aes(p11, s, &key), CKR_OK);
	CHECK(key != CK_INVALID_HANDLE);

	/* Counters. */
	CHECK_EQ_INT(ctl.calls("C_GenerateKey"), 1);
	CHECK_EQ_INT(ctl.calls("C_OpenSession"), 1);
	CHECK_EQ_INT(ctl.calls("C_Login"), 1);
	CHECK_EQ_INT(ctl.calls("C_Initialize"), 1);
	CHECK_EQ_INT(ctl.calls("C_GetInfo"), 2);
	CHECK_EQ_INT(ctl.calls("C_GetFunctionList"), 2);
	CHECK_EQ_INT(ctl.calls("C_Bogus"), TKM_P11SHIM_UNKNOWN);
	CHECK_EQ_INT(ctl.calls(""), TKM_P11SHIM_UNKNOWN);
	all = ctl.calls(NULL);
	CHECK(all >= 9);
	CHECK_EQ_INT(session_info(p11, s), CKR_OK);
	CHECK_EQ_INT(ctl.calls(NULL), all + 1);
	CHECK_EQ_INT(ctl.injected(), 0);

	/* Once: the 3rd C_GenerateKey fails and creates nothing; others are not counted. */
	keys = count_keys(p11, s);
	CHECK_EQ_INT(keys, 1);
	CHECK_EQ_INT(ctl.arm("C_GenerateKey", 3, CKR_DEVICE_ERROR), CKR_OK);
	CHECK_EQ_INT(gen_aes(p11, s, &key), CKR_OK);
	CHECK_EQ_INT(session_info(p11, s), CKR_OK);
	CHECK_EQ_INT(gen_aes(p11, s, &key), CKR_OK);
	key = CK_INVALID_HANDLE;
	CHECK_EQ_INT(gen_aes(p11, s, &key), CKR_DEVICE_ERROR);
	CHECK(key == CK_INVALID_HANDLE);
	CHECK_EQ_INT(ctl.injected(), 1);
	CHECK_EQ_INT(gen_aes(p11, s, &key), CKR_OK);
	CHECK_EQ_INT(gen_aes(p11, s, &key), CKR_OK);
	CHECK_EQ_INT(ctl.injected(), 1);
	CHECK_EQ_INT(count_keys(p11, s), keys + 4);
	CHECK_EQ_INT(ctl.calls("C_GenerateKey"), 6);

	/* A list of functions counts together. */
	CHECK_EQ_INT(ctl.arm("C_GenerateRandom, C_GetSessionInfo", 2, CKR_SESSION_HANDLE_INVALID),
	             CKR_OK);
	CHECK_EQ_INT(p11->C_GetTokenInfo(slot, &ti), CKR_OK);
	CHECK_EQ_INT(random16(p11, s), CKR_OK);
	CHECK_EQ_INT(session_info(p11, s), CKR_SESSION_HANDLE_INVALID);
	CHECK_EQ_INT(random16(p11, s), CKR_OK);
	CHECK_EQ_INT(session_info(p11, s), CKR_OK);

	/* From: a removed device fails every call, C_GetFunctionList too, until disarmed. */
	CHECK_EQ_INT(ctl.arm_from(NULL, 2, CKR_DEVICE_REMOVED), CKR_OK);
	CHECK_EQ_INT(session_info(p11, s), CKR_OK);
	CHECK_EQ_INT(random16(p11, s), CKR_DEVICE_REMOVED);
	CHECK_EQ_INT(p11->C_GetTokenInfo(slot, &ti), CKR_DEVICE_REMOVED);
	CHECK_EQ_INT(session_info(p11, s), CKR_DEVICE_REMOVED);
	CHECK_EQ_INT(gen_aes(p11, s, &key), CKR_DEVICE_REMOVED);
	{
		CK_FUNCTION_LIST_PTR l = NULL;
		CHECK_EQ_INT(p11->C_GetFunctionList(&l), CKR_DEVICE_REMOVED);
		CHECK(l == NULL);
	}
	CHECK_EQ_INT(ctl.injected(), 5);
	ctl.disarm();
	CHECK_EQ_INT(session_info(p11, s), CKR_OK); /* the token never saw the failures */
	CHECK_EQ_INT(random16(p11, s), CKR_OK);
	CHECK_EQ_INT(count_keys(p11, s), keys + 4);
	CHECK_EQ_INT(ctl.injected(), 5);

	/* Bad plans are refused and leave the current plan alone. */
	CHECK_EQ_INT(ctl.arm("C_GenerateRandom", 1, CKR_FUNCTION_FAILED), CKR_OK);
	CHECK_EQ_INT(ctl.arm(NULL, 0, CKR_DEVICE_ERROR), CKR_ARGUMENTS_BAD);
	CHECK_EQ_INT(ctl.arm(NULL, 1, CKR_OK), CKR_ARGUMENTS_BAD);
	CHECK_EQ_INT(ctl.arm("C_Nope", 1, CKR_DEVICE_ERROR), CKR_ARGUMENTS_BAD);
	CHECK_EQ_INT(ctl.arm("C_Sign,", 1, CKR_DEVICE_ERROR), CKR_ARGUMENTS_BAD);
	CHECK_EQ_INT(ctl.arm("C_Sign C_Verify", 1, CKR_DEVICE_ERROR), CKR_ARGUMENTS_BAD);
	CHECK_EQ_INT(ctl.arm_from("c_sign", 1, CKR_DEVICE_ERROR), CKR_ARGUMENTS_BAD);
	CHECK_EQ_INT(random16(p11, s), CKR_FUNCTION_FAILED);
	CHECK_EQ_INT(random16(p11, s), CKR_OK);

	test_threads(&ctl, p11, slot);
	ctl.disarm();

	CHECK_EQ_INT(p11->C_Logout(s), CKR_OK);
	CHECK_EQ_INT(p11->C_CloseSession(s), CKR_OK);
	CHECK_EQ_INT(p11->C_Finalize(NULL), CKR_OK);
	CHECK_EQ_INT(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	tkm_p11shim_ctl_close(&ctl);
}

int main(void)
{
	if (!make_token()) {
		CHECK(!"cannot make the SoftHSM2 token");
	} else {
		test_env();
		test_live();
	}
	if (test_dir[0] != '\0') {
		rm_tree(test_dir);
	}
	return tkm_test_report("p11shim");
}
