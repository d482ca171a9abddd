/*
 * service_oversize_test.c - a frame header claiming 3 GiB must not make tkmd
 * reserve 3 GiB.
 *
 * SP over TCP (nng's tcp transport): after connecting, each side sends an
 * 8-byte header, 0x00 'S' 'P' 0x00, its protocol number as a 16-bit
 * big-endian value (REQ is 0x0030, REP 0x0031) and two zero bytes. Every
 * message then travels as an 8-byte big-endian length and that many bytes.
 * So these 16 bytes, written on a plain socket, announce a 3 GiB request.
 * nng 1.5 has no size limit by default and would allocate the message before
 * reading it; tkmd sets NNG_OPT_RECVMAXSZ on every listener, so nng must
 * refuse the length and close the connection at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tkm_test.h"
#include "tkm_testenv.h"

#define CLAIM       (3ull * 1024 * 1024 * 1024) /* 3 GiB */
#define RSS_MAX_KIB (256L * 1024)
#define CLOSE_MS    5000
#define CONNECTIONS 8

static int connect_loopback(uint16_t port)
{
	struct sockaddr_in sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool send_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/*
 * Read what the server sends until it closes the connection. Returns the
 * number of bytes read before EOF or a reset, or -1 if the connection is
 * still open after ms.
 */
static long read_until_closed(int fd, int ms, uint8_t *first, size_t first_len)
{
	uint64_t deadline = tkm_testenv_now_us() + (uint64_t)ms * 1000u;
	long total = 0;
	uint8_t buf[512];

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint64_t now = tkm_testenv_now_us();
		ssize_t n;

		if (now >= deadline) {
			return -1;
		}
		if (poll(&pfd, 1, (int)((deadline - now) / 1000u) + 1) <= 0) {
			continue;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return total;
		}
		for (ssize_t i = 0; i < n && (size_t)total + (size_t)i < first_len; i++) {
			first[total + i] = buf[i];
		}
		total += n;
	}
}

int main(void)
{
	tkm_testenv *env = NULL;
	long rss_before, rss_after;

	if (tkm_testenv_new(&env) != TKM_OK || tkm_testenv_start(env, NULL, NULL) != TKM_OK) {
		CHECK(!"test environment");
		goto out;
	}
	rss_before = tkm_testenv_rss_kib(env);
	CHECK(rss_before > 0);

	for (int c = 0; c < CONNECTIONS; c++) {
		uint8_t frame[16] = {0x00, 'S', 'P', 0x00, 0x00, 0x30, 0x00, 0x00};
		uint8_t server_hello[8] = {0};
		long got;
		int fd;

		for (int b = 0; b < 8; b++) {
			frame[8 + b] = (uint8_t)(CLAIM >> (56 - 8 * b));
		}
		fd = connect_loopback(tkm_testenv_tcp_port(env));
		CHECK(fd >= 0);
		if (fd < 0) {
			continue;
		}
		CHECK(send_all(fd, frame, sizeof(frame)));
		/* A few bytes of the "body", as an attacker would trickle them. */
		(void)send_all(fd, (const uint8_t *)"abcd", 4);

		got = read_until_closed(fd, CLOSE_MS, server_hello, sizeof(server_hello));
		if (got < 0) {
			fprintf(stderr, "connection %d: still open after %d ms\n", c, CLOSE_MS);
		}
		/* tkmd closed the connection, after no more than its own SP header. */
		CHECK(got >= 0 && got <= 8);
		if (got == 8) {
			/* The server's header names REP (0x0031). */
			CHECK(server_hello[0] == 0 && server_hello[1] == 'S' &&
			      server_hello[2] == 'P' && server_hello[3] == 0);
			CHECK(server_hello[4] == 0x00 && server_hello[5] == 0x31);
		}
		close(fd);
	}

	rss_after = tkm_testenv_rss_kib(env);
	printf("tkmd VmRSS: %ld KiB before, %ld KiB after %d claims of 3 GiB\n", rss_before,
	       rss_after, CONNECTIONS);
	CHECK(rss_after > 0 && rss_after < RSS_MAX_KIB);
	CHECK(tkm_testenv_alive(env));

	/* And it still serves. */
	{
		tkm_client *c = NULL;
		tkm_ping_result pr;

		CHECK_EQ_INT(tkm_testenv_client(tkm_testenv_tcp_url(env), &c), TKM_OK);
		if (c != NULL) {
			memset(&pr, 0, sizeof(pr));
			CHECK_EQ_INT(tkm_ping(c, 5000, NULL, &pr), TKM_OK);
			CHECK(pr.pong);
		}
		tkm_client_close(c);
	}
	CHECK_EQ_INT(tkm_testenv_stop(env, SIGTERM), 0);
out:
	if (tkm_test_failed != 0 && env != NULL) {
		tkm_testenv_dump_log(env);
	}
	tkm_testenv_free(env);
	return tkm_test_report("service_oversize");
}
