/*
 * tkm_server.c - nng REP socket, listeners and the worker pool of tkmd.
 *
 * Each worker owns one nng context and one aio and runs recv -> handle ->
 * send synchronously, so requests are served concurrently up to the pool
 * size and a slow handler holds only its own worker. Received bytes are
 * wiped once handled: later methods carry secrets in their params. The TLS
 * private key is read into guarded memory and wiped as soon as nng has it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <sodium.h>

#include "tkm_log.h"
#include "tkm_server.h"
#include "tkm_why.h"

/* A reply the client does not take within this time is dropped. */
#define TKM_SRV_SEND_TIMEOUT_MS 5000
/*
 * nng 1.5 has no linger: closing the socket drops replies still queued in a
 * transport. After a drain that sent replies, wait this long before closing.
 */
#define TKM_SRV_LINGER_MS 200
/* Largest certificate or key file we read. */
#define TKM_SRV_PEM_MAX 1048576

typedef struct tkm_srv_worker {
	tkm_srv *srv;
	nng_ctx ctx;
	nng_aio *aio;
	pthread_t thread;
	bool ctx_open;
	bool running;   /* thread was created and must be joined */
	bool receiving; /* a recv is pending on aio; guarded by srv->lock */
} tkm_srv_worker;

struct tkm_srv {
	nng_socket sock;
	bool sock_open;
	tkm_rpc *rpc;
	tkm_srv_worker *workers;
	size_t nworkers;
	pthread_mutex_t lock;
	bool stopping;          /* guarded by lock */
	atomic_bool drain_sent; /* a reply was sent after stopping began */
};

/* 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and the name "localhost". */
static bool host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0) {
		return true;
	}
	if (inet_pton(AF_INET, host, &a4) == 1) {
		return (ntohl(a4.s_addr) >> 24) == 127;
	}
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	}
	return false;
}

static const char *ipc_path(const char *url)
{
	return url + strlen("ipc://");
}

tkm_err tkm_srv_check_config(const tkm_config *cfg, char *why, size_t why_len)
{
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const char *url = cfg->listen[i];
		tkm_config_scheme scheme;
		nng_url *u = NULL;
		bool loopback;
		int rv;

		if (tkm_config_url_scheme(url, &scheme) != TKM_OK) {
			return tkm_why_fail(why, why_len, TKM_E_CONFIG,
			                    "listen URL '%s' has an unsupported scheme", url);
		}
		if (scheme == TKM_SCHEME_IPC) {
			if (strlen(ipc_path(url)) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
				return tkm_why_fail(
				    why, why_len, TKM_E_CONFIG,
				    "listen URL '%s': the socket path is longer than "
				    "%zu bytes",
				    url, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			}
			continue;
		}
		rv = nng_url_parse(&u, url);
		if (rv != 0) {
			return tkm_why_fail(why, why_len, TKM_E_CONFIG, "listen URL '%s': %s", url,
			                    nng_strerror(rv));
		}
		if (u->u_port == NULL || u->u_port[0] == '\0') {
			nng_url_free(u);
			return tkm_why_fail(why, why_len, TKM_E_CONFIG,
			                    "listen URL '%s' needs a port (HOST:PORT)", url);
		}
		loopback = host_is_loopback(u->u_hostname);
		nng_url_free(u);
		if (scheme == TKM_SCHEME_TCP && !loopback && !cfg->allow_insecure_tcp) {
			return tkm_why_fail(
			    why, why_len, TKM_E_CONFIG,
			    "refusing to listen on '%s': plain tcp:// on an address other than "
			    "loopback (127.0.0.0/8, ::1, localhost) would expose requests and "
			    "replies unencrypted and unauthenticated to the network. Use "
			    "tls+tcp:// with a certificate, or bind tcp:// to 127.0.0.1; "
			    "allow_insecure_tcp = true permits it for development only",
			    url);
		}
	}
	return TKM_OK;
}

/*
 * Remove an IPC socket file left by a tkmd that died, but only if nothing
 * answers on it: a live server keeps its socket, and we refuse to start.
 */
static tkm_err ipc_remove_stale(const char *url, char *why, size_t why_len)
{
	const char *path = ipc_path(url);
	struct sockaddr_un sa;
	struct stat st;
	tkm_log_line line;
	tkm_err err = TKM_OK;
	int fd = -1;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT) {
			return TKM_OK;
		}
		return tkm_why_fail(why, why_len, TKM_E_IO, "listen URL '%s': %s", url,
		                    strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode)) {
		return tkm_why_fail(
		    why, why_len, TKM_E_IO,
		    "listen URL '%s': %s exists and is not a socket; not removing it", url, path);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path)); /* length checked by tkm_srv_check_config */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO,
		                   "listen URL '%s': another process is already listening on %s",
		                   url, path);
		goto out;
	}
	if (errno != ECONNREFUSED) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "listen URL '%s': cannot probe %s: %s",
		                   url, path, strerror(errno));
		goto out;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		err = tkm_why_fail(why, why_len, TKM_E_IO,
		                   "listen URL '%s': cannot remove stale socket %s: %s", url, path,
		                   strerror(errno));
		goto out;
	}
	tkm_log_begin(&line, TKM_LOG_INFO, "removed stale IPC socket");
	tkm_log_str(&line, "path", path);
	tkm_log_end(&line);
out:
	if (fd >= 0) {
		close(fd);
	}
	return err;
}

/*
 * Read a whole PEM file, NUL-terminated, into *out. With secret set the
 * buffer is sodium_malloc'ed (guarded, locked) and must be sodium_free'd.
 */
static tkm_err read_pem(const char *what, const char *path, bool secret, char **out, char *why,
                        size_t why_len)
{
	struct stat st;
	char *buf = NULL;
	size_t len, got = 0;
	tkm_err err = TKM_OK;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG, "tls.%s %s: %s", what, path,
		                    strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > TKM_SRV_PEM_MAX) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                   "tls.%s %s: not a regular, non-empty file of at most %d bytes",
		                   what, path, TKM_SRV_PEM_MAX);
		goto out;
	}
	len = (size_t)st.st_size;
	buf = secret ? sodium_malloc(len + 1) : malloc(len + 1);
	if (buf == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			err = tkm_why_fail(why, why_len, TKM_E_CONFIG, "tls.%s %s: %s", what, path,
			                   r < 0 ? strerror(errno) : "file shrank while reading");
			goto out;
		}
		got += (size_t)r;
	}
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
out:
	if (buf != NULL) {
		sodium_memzero(buf, len);
		if (secret) {
			sodium_free(buf);
		} else {
			free(buf);
		}
	}
	close(fd);
	return err;
}

static tkm_err make_tls(const tkm_config *cfg, nng_tls_config **out, char *why, size_t why_len)
{
	nng_tls_config *tls = NULL;
	char *cert = NULL, *key = NULL;
	tkm_err err;
	int rv;

	*out = NULL;
	if (strcmp(nng_tls_engine_name(), "none") == 0) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                    "tls+tcp:// needs an nng built with TLS support");
	}
	err = read_pem("cert_file", cfg->tls_cert_file, false, &cert, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	err = read_pem("key_file", cfg->tls_key_file, true, &key, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	rv = nng_tls_config_alloc(&tls, NNG_TLS_MODE_SERVER);
	if (rv != 0) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_IO, "TLS configuration: %s", nng_strerror(rv));
		goto out;
	}
	rv = nng_tls_config_own_cert(tls, cert, key, NULL);
	if (rv != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFIG,
		                   "cannot use tls.cert_file %s with tls.key_file %s: %s "
		                   "(both must be PEM, the key unencrypted and matching the "
		                   "certificate)",
		                   cfg->tls_cert_file, cfg->tls_key_file, nng_strerror(rv));
		goto out;
	}
	*out = tls;
	tls = NULL;
out:
	if (key != NULL) {
		sodium_memzero(key, strlen(key));
		sodium_free(key);
	}
	free(cert);
	if (tls != NULL) {
		nng_tls_config_free(tls);
	}
	return err;
}

static tkm_err start_listener(tkm_srv *srv, const tkm_config *cfg, const char *url,
                              nng_tls_config *tls, char *why, size_t why_len)
{
	tkm_config_scheme scheme;
	nng_listener l;
	tkm_log_line line;
	int port = -1;
	int rv;

	if (tkm_config_url_scheme(url, &scheme) != TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_CONFIG, "listen URL '%s': unsupported",
		                    url);
	}
	if (scheme == TKM_SCHEME_IPC) {
		tkm_err err = ipc_remove_stale(url, why, why_len);
		if (err != TKM_OK) {
			return err;
		}
	}
	rv = nng_listener_create(&l, srv->sock, url);
	if (rv == 0) {
		rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, cfg->max_message_size);
	}
	if (rv == 0 && scheme == TKM_SCHEME_TLS) {
		rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls);
	}
	if (rv == 0) {
		rv = nng_listener_start(l, 0);
	}
	if (rv != 0) {
		return tkm_why_fail(why, why_len, TKM_E_IO, "cannot listen on '%s': %s", url,
		                    nng_strerror(rv));
	}
	if (scheme != TKM_SCHEME_IPC &&
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0) {
		port = -1;
	}
	tkm_log_begin(&line, TKM_LOG_INFO, "listening");
	tkm_log_str(&line, "url", url);
	if (port >= 0) {
		tkm_log_int(&line, "port", port);
	}
	tkm_log_end(&line);
	if (scheme == TKM_SCHEME_TCP && cfg->allow_insecure_tcp) {
		nng_url *u = NULL;
		if (nng_url_parse(&u, url) == 0 && !host_is_loopback(u->u_hostname)) {
			tkm_log_begin(&line, TKM_LOG_WARN,
			              "plain tcp on a non-loopback address: traffic is neither "
			              "encrypted nor authenticated; allowed by allow_insecure_tcp, "
			              "for development only");
			tkm_log_str(&line, "url", url);
			tkm_log_end(&line);
		}
		nng_url_free(u);
	}
	return TKM_OK;
}

/* Where a request came from, for the audit log: "192.0.2.7:50412", "[2001:db8::1]:443",
 * "ipc:pid=812". */
static void peer_of(nng_msg *msg, char *buf, size_t len)
{
	nng_pipe pipe = nng_msg_get_pipe(msg);
	nng_sockaddr sa;
	char ip[INET6_ADDRSTRLEN];
	uint64_t pid = 0;
	int r = -1;

	buf[0] = '\0';
	if (nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa) != 0) {
		r = snprintf(buf, len, "unknown");
	} else if (sa.s_family == NNG_AF_INET &&
	           inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)) != NULL) {
		r = snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(sa.s_in.sa_port));
	} else if (sa.s_family == NNG_AF_INET6 &&
	           inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip)) != NULL) {
		r = snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(sa.s_in6.sa_port));
	} else if (sa.s_family == NNG_AF_IPC &&
	           nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &pid) == 0) {
		r = snprintf(buf, len, "ipc:pid=%llu", (unsigned long long)pid);
	} else if (sa.s_family == NNG_AF_IPC) {
		r = snprintf(buf, len, "ipc");
	} else {
		r = snprintf(buf, len, "unknown");
	}
	if (r < 0 || (size_t)r >= len) {
		buf[0] = '\0';
	}
}

/* Handle one received request and send its reply; consumes msg. */
static void serve(tkm_srv_worker *w, nng_msg *msg)
{
	tkm_srv *srv = w->srv;
	tkm_cbor_w *reply = NULL;
	char peer[80];
	const uint8_t *p;
	size_t len;
	tkm_err err;
	int rv;

	peer_of(msg, peer, sizeof(peer));
	err = tkm_rpc_handle(srv->rpc, nng_msg_body(msg), nng_msg_len(msg), peer, &reply);
	sodium_memzero(nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_clear(msg);
	if (err == TKM_OK) {
		err = tkm_cbor_w_finish(reply, &p, &len);
	}
	if (err != TKM_OK) {
		tkm_log_msg(TKM_LOG_ERROR, "no reply could be built; request dropped",
		            tkm_strerror(err));
		nng_msg_free(msg);
		goto out;
	}
	rv = nng_msg_append(msg, p, len);
	if (rv != 0) {
		tkm_log_msg(TKM_LOG_ERROR, "no reply could be built; request dropped",
		            nng_strerror(rv));
		nng_msg_free(msg);
		goto out;
	}
	nng_aio_set_msg(w->aio, msg);
	nng_aio_set_timeout(w->aio, TKM_SRV_SEND_TIMEOUT_MS);
	nng_ctx_send(w->ctx, w->aio);
	nng_aio_wait(w->aio);
	rv = nng_aio_result(w->aio);
	if (rv != 0) {
		/* On failure the message is still ours. */
		nng_msg_free(nng_aio_get_msg(w->aio));
		nng_aio_set_msg(w->aio, NULL);
		tkm_log_msg(TKM_LOG_WARN, "reply not sent", nng_strerror(rv));
		goto out;
	}
	pthread_mutex_lock(&srv->lock);
	if (srv->stopping) {
		atomic_store(&srv->drain_sent, true);
	}
	pthread_mutex_unlock(&srv->lock);
out:
	tkm_cbor_w_free(reply);
}

static void *worker_main(void *arg)
{
	tkm_srv_worker *w = arg;
	tkm_srv *srv = w->srv;

	for (;;) {
		nng_msg *msg;
		int rv;

		/* Start the recv under the lock so that a stop cannot miss it. */
		pthread_mutex_lock(&srv->lock);
		if (srv->stopping) {
			pthread_mutex_unlock(&srv->lock);
			break;
		}
		nng_aio_set_timeout(w->aio, NNG_DURATION_INFINITE);
		nng_ctx_recv(w->ctx, w->aio);
		w->receiving = true;
		pthread_mutex_unlock(&srv->lock);

		nng_aio_wait(w->aio);

		pthread_mutex_lock(&srv->lock);
		w->receiving = false;
		pthread_mutex_unlock(&srv->lock);

		rv = nng_aio_result(w->aio);
		if (rv == NNG_ECLOSED) {
			break;
		}
		if (rv == NNG_ECANCELED) {
			continue; /* the loop head sees the stop */
		}
		if (rv != 0) {
			tkm_log_msg(TKM_LOG_WARN, "receive failed", nng_strerror(rv));
			continue;
		}
		msg = nng_aio_get_msg(w->aio);
		nng_aio_set_msg(w->aio, NULL);
		serve(w, msg);
	}
	return NULL;
}

tkm_err tkm_srv_start(const tkm_config *cfg, tkm_rpc *rpc, tkm_srv **out, char *why, size_t why_len)
{
	tkm_srv *srv = NULL;
	nng_tls_config *tls = NULL;
	tkm_err err;
	int rv;

	*out = NULL;
	err = tkm_srv_check_config(cfg, why, why_len);
	if (err != TKM_OK) {
		goto out;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	srv->rpc = rpc;
	atomic_init(&srv->drain_sent, false);
	if (pthread_mutex_init(&srv->lock, NULL) != 0) {
		free(srv);
		srv = NULL;
		err = TKM_E_NOMEM;
		goto out;
	}
	srv->workers = calloc(cfg->workers, sizeof(*srv->workers));
	if (srv->workers == NULL) {
		err = TKM_E_NOMEM;
		goto out;
	}
	srv->nworkers = cfg->workers;
	rv = nng_rep0_open(&srv->sock);
	if (rv != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot open the REP socket: %s",
		                   nng_strerror(rv));
		goto out;
	}
	srv->sock_open = true;
	rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, cfg->max_message_size);
	if (rv != 0) {
		err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot limit the message size: %s",
		                   nng_strerror(rv));
		goto out;
	}
	if (cfg->tls_cert_file != NULL) {
		err = make_tls(cfg, &tls, why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
	}
	for (size_t i = 0; i < cfg->nlisten; i++) {
		err = start_listener(srv, cfg, cfg->listen[i], tls, why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
	}
	for (size_t i = 0; i < srv->nworkers; i++) {
		tkm_srv_worker *w = &srv->workers[i];

		w->srv = srv;
		rv = nng_ctx_open(&w->ctx, srv->sock);
		if (rv == 0) {
			w->ctx_open = true;
			rv = nng_aio_alloc(&w->aio, NULL, NULL);
		}
		if (rv != 0) {
			err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot set up worker %zu: %s",
			                   i, nng_strerror(rv));
			goto out;
		}
		rv = pthread_create(&w->thread, NULL, worker_main, w);
		if (rv != 0) {
			err = tkm_why_fail(why, why_len, TKM_E_IO, "cannot start worker %zu: %s", i,
			                   strerror(rv));
			goto out;
		}
		w->running = true;
	}
	*out = srv;
	srv = NULL;
out:
	if (err == TKM_E_NOMEM) {
		(void)tkm_why_fail(why, why_len, err, "out of memory while starting the server");
	}
	if (tls != NULL) {
		nng_tls_config_free(tls); /* listeners hold their own reference */
	}
	tkm_srv_stop(srv);
	return err;
}

void tkm_srv_stop(tkm_srv *srv)
{
	if (srv == NULL) {
		return;
	}
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	for (size_t i = 0; i < srv->nworkers; i++) {
		if (srv->workers[i].receiving) {
			nng_aio_cancel(srv->workers[i].aio);
		}
	}
	pthread_mutex_unlock(&srv->lock);

	for (size_t i = 0; i < srv->nworkers; i++) {
		if (srv->workers[i].running) {
			pthread_join(srv->workers[i].thread, NULL);
		}
	}
	if (atomic_load(&srv->drain_sent)) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = TKM_SRV_LINGER_MS * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		}
	}
	for (size_t i = 0; i < srv->nworkers; i++) {
		if (srv->workers[i].ctx_open) {
			nng_ctx_close(srv->workers[i].ctx);
		}
		if (srv->workers[i].aio != NULL) {
			nng_aio_free(srv->workers[i].aio);
		}
	}
	if (srv->sock_open) {
		nng_close(srv->sock);
	}
	pthread_mutex_destroy(&srv->lock);
	free(srv->workers);
	free(srv);
}
