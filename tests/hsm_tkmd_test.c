/*
 * hsm_tkmd_test.c - tkmd logs in to the HSM at start with the PIN from
 * hsm.pin_file or hsm.pin_env, refuses to start on a bad PIN source, and
 * answers sys.info as before.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tkm_test.h"
#include "tkm_testenv.h"

#define RUN_TIMEOUT_MS 20000

static tkm_testenv *env;

/* A complete configuration whose hsm group has the given extra members. */
static char *config_with(const char *hsm_members)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL) {
		return NULL;
	}
	fprintf(f,
	        "listen = [\"%s\"];\n"
	        "workers = 4;\n"
	        "hsm = {\n"
	        "  module = \"%s\";\n"
	        "  token = \"pkcs11:token=tkm\";\n"
	        "  %s\n"
	        "};\n"
	        "database = { path = \"%s/tkm.db\"; };\n",
	        tkm_testenv_ipc_url(env), TKM_SOFTHSM_MODULE, hsm_members, tkm_testenv_dir(env));
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static bool write_pin(const char *path, const char *pin, mode_t mode)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (f == NULL) {
		return false;
	}
	ok = fputs(pin, f) >= 0;
	ok = fclose(f) == 0 && ok;
	return ok && chmod(path, mode) == 0;
}

static void check_info(void)
{
	tkm_client *c = NULL;
	tkm_server_info info;
	tkm_status st;

	/* Sessions last across restarts only in the database; each start logs in anew. */
	CHECK_EQ_INT(tkm_testenv_login(env, "officer1", &c), TKM_OK);
	if (c == NULL) {
		return;
	}
	memset(&info, 0, sizeof(info));
	CHECK_EQ_INT(tkm_info(c, 0, &st, &info), TKM_OK);
	CHECK(info.hsm_configured);
	CHECK_STR(info.hsm_token_label, "tkm");
	tkm_client_close(c);
}

static bool log_has(const char *text)
{
	char *log = tkm_testenv_read_file(tkm_testenv_log_path(env), NULL);
	bool found = log != NULL && strstr(log, text) != NULL;

	if (!found) {
		fprintf(stderr, "tkmd's log lacks \"%s\":\n%s\n", text, log != NULL ? log : "");
	}
	free(log);
	return found;
}

static void run_expect(const char *members, int want, const char *log_text)
{
	char *config = config_with(members);
	int status = -1;

	CHECK(config != NULL);
	if (config == NULL) {
		return;
	}
	CHECK_EQ_INT(tkm_testenv_run_config(env, config, RUN_TIMEOUT_MS, &status), TKM_OK);
	CHECK_EQ_INT(status, want);
	if (status != want) {
		fprintf(stderr, "hsm members \"%s\": exit %d, want %d\n", members, status, want);
	}
	if (log_text != NULL) {
		CHECK(log_has(log_text));
	}
	free(config);
}

int main(void)
{
	char pin_file[400], members[512], *config;
	int n;

	/* tkmd inherits the environment the harness captures when it is made. */
	setenv("TKM_TEST_HSM_PIN", TKM_TESTENV_USER_PIN, 1);
	if (tkm_testenv_new(&env) != TKM_OK) {
		return 1;
	}
	n = snprintf(pin_file, sizeof(pin_file), "%s/user.pin", tkm_testenv_dir(env));
	CHECK(n > 0 && (size_t)n < sizeof(pin_file));
	CHECK(write_pin(pin_file, TKM_TESTENV_USER_PIN "\n", 0600));

	/* PIN from a file. */
	n = snprintf(members, sizeof(members), "pin_file = \"%s\";", pin_file);
	CHECK(n > 0 && (size_t)n < sizeof(members));
	config = config_with(members);
	CHECK(config != NULL);
	if (config != NULL) {
		CHECK_EQ_INT(tkm_testenv_start_config(env, config), TKM_OK);
		check_info();
		CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
		free(config);
	}

	/* PIN from the environment. */
	config = config_with("pin_env = \"TKM_TEST_HSM_PIN\";");
	CHECK(config != NULL);
	if (config != NULL) {
		CHECK_EQ_INT(tkm_testenv_start_config(env, config), TKM_OK);
		check_info();
		CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
		free(config);
	}

	/* Refusals: both sources, a bad name, an unset variable, a loose file, a wrong PIN. */
	run_expect("pin_env = \"A\"; pin_file = \"/x\";", 2, "not both");
	run_expect("pin_env = \"NOT-A-NAME\";", 2, "environment variable");
	run_expect("pin_env = \"TKM_TEST_HSM_PIN_UNSET\";", 2, "is not set");
	CHECK(write_pin(pin_file, TKM_TESTENV_USER_PIN "\n", 0644));
	run_expect(members, 2, "group or others");
	CHECK(write_pin(pin_file, "wrong\n", 0600));
	run_expect(members, 2, "CKR_PIN_INCORRECT");

	tkm_testenv_free(env);
	return tkm_test_report("hsm_tkmd");
}
