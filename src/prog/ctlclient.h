/* xedgectl: the client side of xedge's control socket (control.c). */
#ifndef XE_CTLCLIENT_H
#define XE_CTLCLIENT_H

#include <stddef.h>
#include <stdio.h>

#include "util.h"

/* exit status when the daemon cannot be reached on its control socket */
#define CTL_UNREACHABLE 4

/* Send REQUEST (one line, without its newline) to the socket at PATH and
 * read the whole answer into OUT (bounded, with a timeout). 0, or -1 with a
 * malloc'ed *error_r. */
int xe_ctlclient_request(const char *path, const char *request, struct xe_buf *out,
                         char **error_r);

/* xedgectl [-c FILE] lockout ...: argv[0] is "lockout". Returns the exit
 * status. */
int xe_ctlclient_lockout(const char *config, int argc, char **argv);
void xe_ctlclient_lockout_usage(FILE *f);
/* xedgectl [-c FILE] session list|kick ... and stats: argv[0] is "session"
 * or "stats". */
int xe_ctlclient_session(const char *config, int argc, char **argv);
void xe_ctlclient_session_usage(FILE *f);
/* xedgectl [-c FILE] backend list [--json] | drain NAME | undrain NAME:
 * argv[0] is "backend". */
int xe_ctlclient_backend(const char *config, int argc, char **argv);
int xe_ctlclient_s2s(const char *config, int argc, char **argv);
void xe_ctlclient_s2s_usage(FILE *f);
void xe_ctlclient_backend_usage(FILE *f);
/* xedgectl [-c FILE] reload: argv[0] is "reload". 0 reloaded, 1 refused. */
int xe_ctlclient_reload(const char *config, int argc, char **argv);
void xe_ctlclient_reload_usage(FILE *f);

#endif
