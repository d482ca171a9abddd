/*
 * main.c - a program outside the tkm tree that uses an installed libtkm: it
 * prints the library version and checks that connecting to a server that is
 * not there fails with TKM_E_CONNECT (so nng, libcbor and libsodium linked).
 */
#include <stdio.h>

#include <tkm/client.h>

int main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : "ipc:///nonexistent/tkm-consumer.sock";
	tkm_client *c = NULL;
	tkm_status st;
	tkm_err err;

	err = tkm_client_open(url, NULL, &st, &c);
	if (err != TKM_E_CONNECT) {
		fprintf(stderr, "tkm_client_open(%s): got %s, want %s\n", url, tkm_strerror(err),
		        tkm_strerror(TKM_E_CONNECT));
		tkm_client_close(c);
		return 1;
	}
	printf("tkm %s: %s\n", tkm_version(), tkm_strerror(err));
	return 0;
}
