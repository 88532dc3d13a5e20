/* xedge: the I/O glue: listeners, connections, TLS driving, the backend
 * connection, timers and the pump, on one libuv loop. */
#ifndef XE_SERVER_H
#define XE_SERVER_H

#include <stdbool.h>
#include <uv.h>

#include "conf.h"

struct xe_server;

int xe_server_new(uv_loop_t *loop, const struct xe_conf *conf, struct xe_server **srv_r,
                  char **error_r);
/* Reload: new connections use CONF (which the server takes, also on
 * error) and the TLS contexts built from it; established ones keep the
 * configuration they were accepted under until they end. The per-address
 * limits and the lockout settings change at once. Refused, with *error_r,
 * when a certificate or key does not load or the listeners changed (they
 * need a restart); the current configuration then goes on. */
int xe_server_reload(struct xe_server *srv, struct xe_conf *conf,
                     unsigned long *generation_r, char **error_r);
/* Bind and listen on every configured listener. */
int xe_server_listen(struct xe_server *srv, char **error_r);
/* The calling thread's log lines wait for the end of LOOP's turn: P (not
 * keeping the loop alive) writes them before the loop sleeps (log.h's
 * xe_log_buffer_start). xe_srv_log_turns_stop: written, P closed (run the
 * loop once more before closing it). */
void xe_srv_log_turns(uv_loop_t *loop, uv_prepare_t *p);
void xe_srv_log_turns_stop(uv_prepare_t *p);
/* Stop accepting and close every connection at once; the loop then ends. */
void xe_server_stop(struct xe_server *srv);
/* Graceful shutdown: stop accepting now; after grace_ms (sessions go on),
 * end every session with <system-shutdown/> between two stanzas; call
 * on_drained(ctx) once no connection is left, or a few seconds later at
 * most (the rest are then closed at once). */
void xe_server_shutdown(struct xe_server *srv, uint64_t grace_ms,
                        void (*on_drained)(void *), void *ctx);
/* For the control socket: one "session k=v ..." line per connection; end
 * the sessions of a bare JID, or one by its id, with <policy-violation/>
 * (returns how many); one "stats k=v ..." line. */
struct xe_buf;
void xe_server_sessions(struct xe_server *srv, struct xe_buf *out);
/* One "s2s k=v ..." line per server-to-server stream (s2s_io.h). */
void xe_server_s2s(struct xe_server *srv, struct xe_buf *out);
size_t xe_server_kick(struct xe_server *srv, const char *what);
/* End every session of the bare JID (on every worker) with <not-authorized/>
 * and a text that says why: its account was disabled, removed (REASON
 * "disabled", "removed") or had its password changed ("password"; see
 * xe_ctlcmd_reason_text); logged (event=account-end) and counted. Returns
 * how many. */
size_t xe_server_end_account(struct xe_server *srv, const char *jid, const char *reason);
void xe_server_stats(struct xe_server *srv, struct xe_buf *out);
void xe_server_free(struct xe_server **srv);
/* Start the backends' active health checks (each pool's health group);
 * they stop with the listeners. */
void xe_server_start_health(struct xe_server *srv);
/* For the control socket: one "backend k=v ..." line per configured server
 * (name, pool, kind, address, weight, state up|down|draining, health,
 * sessions); drain or undrain the servers named NAME (in any pool): a
 * draining server gets no new sessions and keeps its open ones. Returns how
 * many servers have that name. */
void xe_server_backends(struct xe_server *srv, struct xe_buf *out);
size_t xe_server_drain(struct xe_server *srv, const char *name, bool drain);
/* The user store, for the users' pins (xedgectl user pin). */
struct xe_userstore;
void xe_server_set_store(struct xe_server *srv, struct xe_userstore *store);
/* The FAST token store (tokens_io.h), for the login's SASL2/FAST. */
struct xe_tokio;
void xe_server_set_tokens(struct xe_server *srv, struct xe_tokio *tokens);
struct xe_tokio *xe_server_tokens(struct xe_server *srv);
/* The brute-force protection table (lockout.h), for the control socket. */
struct xe_lockout *xe_server_lockout(struct xe_server *srv);

#endif
