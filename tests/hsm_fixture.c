/*
 * hsm_fixture.c - a fresh SoftHSM2 token for the hsm/ tests (see hsm_fixture.h).
 */
#include "hsm_fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#ifndef TKM_SOFTHSM2_UTIL
#define TKM_SOFTHSM2_UTIL "softhsm2-util"
#endif
#ifndef TKM_SOFTHSM_MODULE
#define TKM_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

extern char **environ;

static bool fmt(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s%s", a, b);

	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "hsm_fixture: path too long: %s%s\n", a, b);
		return false;
	}
	return true;
}

static bool write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t len = strlen(text);
	bool ok;

	if (fd < 0) {
		fprintf(stderr, "hsm_fixture: %s: %s\n", path, strerror(errno));
		return false;
	}
	ok = write(fd, text, len) == (ssize_t)len;
	if (close(fd) != 0) {
		ok = false;
	}
	return ok;
}

int tkm_hsmfix_run(const char *const argv[], const char *out_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int ws, rv;

	if (posix_spawn_file_actions_init(&fa) != 0) {
		return -1;
	}
	rv = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (rv == 0) {
		rv = posix_spawn_file_actions_addopen(&fa, 1, out_path,
		                                      O_WRONLY | O_CREAT | O_TRUNC, 0600);
	}
	if (rv == 0) {
		rv = posix_spawn_file_actions_adddup2(&fa, 1, 2);
	}
	if (rv == 0) {
		rv = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	}
	posix_spawn_file_actions_destroy(&fa);
	if (rv != 0) {
		fprintf(stderr, "hsm_fixture: cannot run %s: %s\n", argv[0], strerror(rv));
		return -1;
	}
	while (waitpid(pid, &ws, 0) < 0) {
		if (errno != EINTR) {
			return -1;
		}
	}
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

bool tkm_hsmfix_new(tkm_hsmfix *f)
{
	const char *tmp = getenv("TMPDIR");
	char tokens[300], text[512], out[320];
	int n;

	memset(f, 0, sizeof(*f));
	if (sodium_init() < 0) {
		return false;
	}
	if (tmp == NULL || tmp[0] == '\0') {
		tmp = "/tmp";
	}
	if (!fmt(f->dir, sizeof(f->dir), tmp, "/tkmhsm.XXXXXX")) {
		return false;
	}
	if (mkdtemp(f->dir) == NULL) {
		fprintf(stderr, "hsm_fixture: mkdtemp: %s\n", strerror(errno));
		f->dir[0] = '\0';
		return false;
	}
	if (!fmt(tokens, sizeof(tokens), f->dir, "/tokens") ||
	    !fmt(f->conf, sizeof(f->conf), f->dir, "/softhsm2.conf") ||
	    !fmt(f->pin_file, sizeof(f->pin_file), f->dir, "/user.pin") ||
	    !fmt(out, sizeof(out), f->dir, "/softhsm2-util.out")) {
		return false;
	}
	if (mkdir(tokens, 0700) != 0) {
		return false;
	}
	n = snprintf(text, sizeof(text),
	             "directories.tokendir = %s\nobjectstore.backend = file\n"
	             "log.level = ERROR\nslots.removable = false\n",
	             tokens);
	if (n < 0 || (size_t)n >= sizeof(text) || !write_file(f->conf, text, 0600) ||
	    !write_file(f->pin_file, TKM_HSMFIX_USER_PIN "\n", 0600)) {
		return false;
	}
	/* SoftHSM2 reads this at C_Initialize: set it before any module is opened. */
	if (setenv("SOFTHSM2_CONF", f->conf, 1) != 0) {
		return false;
	}
	{
		const char *argv[] = {
		    TKM_SOFTHSM2_UTIL, "--init-token",    "--free", "--label",           "tkm",
		    "--so-pin",        TKM_HSMFIX_SO_PIN, "--pin",  TKM_HSMFIX_USER_PIN, NULL};
		if (tkm_hsmfix_run(argv, out) != 0) {
			fprintf(stderr, "hsm_fixture: softhsm2-util --init-token failed (see %s)\n",
			        out);
			return false;
		}
	}
	return true;
}

bool tkm_hsmfix_open(tkm_hsmfix *f, const char *module, unsigned sessions)
{
	char why[512] = "";
	tkm_err err;

	err = tkm_hsm_open(module != NULL ? module : TKM_SOFTHSM_MODULE, "pkcs11:token=tkm", &f->h,
	                   why, sizeof(why));
	if (err == TKM_OK) {
		err = tkm_hsm_login(f->h, f->pin_file, NULL, sessions, why, sizeof(why));
	}
	if (err != TKM_OK) {
		fprintf(stderr, "hsm_fixture: open/login: %s: %s\n", tkm_strerror(err), why);
		tkm_hsm_close(f->h);
		f->h = NULL;
		return false;
	}
	return true;
}

bool tkm_hsmfix_masters(tkm_hsmfix *f)
{
	static const struct {
		tkm_hsm_role role;
		tkm_hsm_alg alg;
	} keys[] = {
	    {TKM_HSM_MASTER_KEK, TKM_HSM_AES256},
	    {TKM_HSM_MASTER_SEAL, TKM_HSM_AES256},
	    {TKM_HSM_AUDIT, TKM_HSM_ED25519},
	};
	tkm_hsm_id *ids[] = {&f->kek, &f->seal, &f->audit};
	char why[512] = "";
	tkm_hsm_kcv kcv;

	for (size_t i = 0; i < 3; i++) {
		tkm_err err = tkm_hsm_token_key_generate(f->h, keys[i].role, keys[i].alg, NULL,
		                                         ids[i], &kcv, why, sizeof(why));
		if (err != TKM_OK) {
			fprintf(stderr, "hsm_fixture: generate role %d: %s: %s\n",
			        (int)keys[i].role, tkm_strerror(err), why);
			return false;
		}
	}
	return true;
}

static void rm_rf(const char *path)
{
	struct stat st;
	struct dirent *e;
	char child[1024];
	DIR *d;

	if (lstat(path, &st) != 0) {
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		(void)unlink(path);
		return;
	}
	if ((d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			int n;
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
				continue;
			}
			n = snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
			if (n > 0 && (size_t)n < sizeof(child)) {
				rm_rf(child);
			}
		}
		closedir(d);
	}
	(void)rmdir(path);
}

void tkm_hsmfix_free(tkm_hsmfix *f)
{
	const char *keep = getenv("TKM_TEST_KEEP");

	tkm_hsm_close(f->h);
	f->h = NULL;
	if (f->dir[0] == '\0') {
		return;
	}
	if (keep != NULL && strcmp(keep, "1") == 0) {
		fprintf(stderr, "hsm_fixture: keeping %s\n", f->dir);
		return;
	}
	rm_rf(f->dir);
	f->dir[0] = '\0';
}

size_t tkm_hsmfix_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex);

	if (n % 2 != 0 || n / 2 > cap) {
		return 0;
	}
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v = 0;
		for (size_t j = 0; j < 2; j++) {
			char c = hex[2 * i + j];
			v <<= 4;
			if (c >= '0' && c <= '9') {
				v |= (unsigned)(c - '0');
			} else if (c >= 'A' && c <= 'F') {
				v |= (unsigned)(c - 'A' + 10);
			} else if (c >= 'a' && c <= 'f') {
				v |= (unsigned)(c - 'a' + 10);
			} else {
				return 0;
			}
		}
		out[i] = (uint8_t)v;
	}
	return n / 2;
}

size_t tkm_hsmfix_alg_len(tkm_hsm_alg alg)
{
	switch (alg) {
	case TKM_HSM_AES128:
	case TKM_HSM_TDES2:
		return 16;
	case TKM_HSM_AES192:
	case TKM_HSM_TDES3:
		return 24;
	case TKM_HSM_AES256:
		return 32;
	default:
		return 0;
	}
}

void tkm_hsmfix_free_components(tkm_hsm_component *comps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sodium_free((void *)comps[i].key);
		comps[i].key = NULL;
	}
}

bool tkm_hsmfix_split(tkm_hsm *h, tkm_hsm_alg alg, const uint8_t *key, size_t len,
                      tkm_hsm_component comps[2])
{
	tkm_hsm_kcv_method method =
	    alg == TKM_HSM_TDES2 || alg == TKM_HSM_TDES3 ? TKM_HSM_KCV_TDES : TKM_HSM_KCV_AES_CMAC;
	uint8_t *a = sodium_malloc(len), *b = sodium_malloc(len);
	char why[512] = "";

	memset(comps, 0, 2 * sizeof(*comps));
	if (a == NULL || b == NULL) {
		sodium_free(a);
		sodium_free(b);
		return false;
	}
	randombytes_buf(a, len);
	for (size_t i = 0; i < len; i++) {
		b[i] = key[i] ^ a[i];
	}
	comps[0].key = a;
	comps[1].key = b;
	for (size_t i = 0; i < 2; i++) {
		tkm_err err = tkm_hsm_component_kcv(h, alg, comps[i].key, method, 3, &comps[i].kcv,
		                                    why, sizeof(why));
		if (err != TKM_OK) {
			fprintf(stderr, "hsm_fixture: component KCV: %s: %s\n", tkm_strerror(err),
			        why);
			tkm_hsmfix_free_components(comps, 2);
			return false;
		}
	}
	return true;
}
