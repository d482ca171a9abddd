/*
 * tkm_server.h - tkmd's transport: one nng REP socket, its listeners, and a
 * pool of workers that each serve one request at a time on their own nng
 * context, so a slow request occupies only its own worker.
 *
 * Every listener gets NNG_OPT_RECVMAXSZ before it starts (nng 1.5 has no
 * limit by default). Plain tcp:// is refused on non-loopback addresses unless
 * the configuration says allow_insecure_tcp. Stopping drains: requests being
 * handled finish and their replies are sent; nothing new is taken.
 */
#ifndef TKM_SERVER_H
#define TKM_SERVER_H

#include <stddef.h>

#include "tkm/error.h"
#include "tkm_config.h"
#include "tkm_rpc.h"

typedef struct tkm_srv tkm_srv;

/*
 * Check the listen URLs of cfg against the transport policy without opening
 * anything: well-formed URLs, IPC paths that fit a socket address, and no
 * plain tcp:// on a non-loopback host unless cfg->allow_insecure_tcp.
 * TKM_E_CONFIG with the reason in why.
 */
TKM_MUST_CHECK tkm_err tkm_srv_check_config(const tkm_config *cfg, char *why, size_t why_len);

/*
 * Open the socket, start every listener and cfg->workers workers that hand
 * requests to rpc. rpc must outlive the server. Fails with TKM_E_CONFIG
 * (policy, TLS files) or TKM_E_IO (cannot listen), with the reason in why.
 */
TKM_MUST_CHECK tkm_err tkm_srv_start(const tkm_config *cfg, tkm_rpc *rpc, tkm_srv **out, char *why,
                                     size_t why_len);

/*
 * Drain and free: stop taking requests, let requests in flight finish and
 * their replies go out, join the workers, close the socket. NULL-safe.
 */
void tkm_srv_stop(tkm_srv *srv);

#endif /* TKM_SERVER_H */
