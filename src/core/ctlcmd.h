/* xedge: the commands of the control socket (sans-IO).
 *
 * One request line in ("WORD... [ARG...]", words separated by spaces),
 * response lines out: "ok" or "error TEXT" first, then the command's lines
 * (key=value fields), then the connection ends. The glue (control.c) moves
 * the bytes; this module parses the request and runs the command from a
 * table, so that a new command is one more row. */
#ifndef XE_CTLCMD_H
#define XE_CTLCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct xe_lockout;

/* What the commands act on; fields are added as commands are. */
struct xe_ctlcmd_env {
    struct xe_lockout *lockout; /* NULL: no brute-force protection */
    uint64_t now_ms;            /* the loop's clock, as the lockout table uses it */
    /* the sessions (server.c); NULL: the commands say they are unavailable */
    void *srv;
    void (*sessions)(void *srv, struct xe_buf *out);
    void (*s2s)(void *srv, struct xe_buf *out); /* federation's streams */
    size_t (*kick)(void *srv, const char *what);
    void (*stats)(void *srv, struct xe_buf *out);
    /* the backend servers: list, drain/undrain by name (the number of
     * servers of that name) */
    void (*backends)(void *srv, struct xe_buf *out);
    size_t (*drain)(void *srv, const char *name, bool drain);
    /* reload the configuration (xedge.c); NULL: unavailable. Returns 0 and
     * the new generation's number, or -1 and a malloc'ed error. */
    int (*reload)(void *ctx, unsigned long *generation_r, char **error_r);
    void *reload_ctx;
    /* end every session of the bare JID with <not-authorized/> and the text
     * of REASON (xe_ctlcmd_reason_text); returns how many. NULL: unavailable */
    size_t (*end_account)(void *srv, const char *jid, const char *reason);
    /* the audit trail: a change an administrator made (ACTION, one of
     * xe_ctlcmd_actions; JID or "-"; DETAIL: "" or " key=value..."), logged
     * with who asked and counted by the glue. NULL: not recorded */
    void (*audit)(void *ctx, const char *action, const char *jid, const char *detail);
    void *audit_ctx;
    /* look for the purges due now (purge_io.h): a user was deleted. NULL:
     * none run here */
    void (*purge_kick)(void *ctx);
    void *purge_ctx;
};

/* The actions of the audit trail (NULL-terminated): the changes made through
 * the control socket and those xedgectl made in the user store and tells
 * the daemon of ("admin ACTION JID ..."). */
extern const char *const xe_ctlcmd_actions[];

/* Why the sessions of an account are ended: "disabled", "removed",
 * "password"; the text of the stream error, or NULL for another word. */
const char *xe_ctlcmd_reason_text(const char *reason);

/* Run the request LINE (len bytes, without the newline) and append the whole
 * response to OUT. Returns 0, or -1 when the response is an error. */
int xe_ctlcmd_run(const struct xe_ctlcmd_env *env, const char *line, size_t len,
                  struct xe_buf *out);

#endif
