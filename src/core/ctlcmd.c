/* xedge: the commands of the control socket. See ctlcmd.h. */
#include "ctlcmd.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockout.h"
#include "userstore.h"
#include "xelimits.h"

#define MAX_WORDS 16

const char *const xe_ctlcmd_actions[] = {
    "user-add",     "user-del",      "user-passwd",     "user-disable", "user-enable",
    "user-expire",  "user-pin",      "user-import",     "user-purged",  "lockout-clear",
    "session-kick", "backend-drain", "backend-undrain", "reload",       NULL};

static void
audit(const struct xe_ctlcmd_env *env, const char *action, const char *jid,
      const char *detail)
{
    if (env->audit)
        env->audit(env->audit_ctx, action, jid, detail);
}

const char *
xe_ctlcmd_reason_text(const char *reason)
{
    if (strcmp(reason, "disabled") == 0)
        return "the account was disabled";
    if (strcmp(reason, "removed") == 0)
        return "the account was removed";
    if (strcmp(reason, "password") == 0)
        return "the account's password was changed";
    return NULL;
}

struct command {
    const char *words[3]; /* the command's words, NULL-terminated */
    unsigned min_args, max_args;
    /* NULL, or the error text */
    const char *(*run)(const struct xe_ctlcmd_env *env, char **args, size_t n,
                       struct xe_buf *out);
    const char *usage;
};

static int
list_one(void *ctx, const struct xe_lockout_info *e)
{
    struct xe_buf *out = ctx;

    xe_buf_appendf(out,
                   "entry kind=%s key=%s failures=%u locked=%s remaining_ms=%llu "
                   "lockouts=%u\n",
                   xe_lockout_kind_name(e->kind), e->key, e->failures,
                   e->locked ? "yes" : "no", (unsigned long long)e->remaining_ms,
                   e->lockouts);
    return 0;
}

static const char *
cmd_lockout_list(const struct xe_ctlcmd_env *env, char **args, size_t n,
                 struct xe_buf *out)
{
    struct xe_lockout_stats st;

    (void)args;
    (void)n;
    if (env->lockout == NULL)
        return "brute-force protection is not running";
    xe_lockout_foreach(env->lockout, env->now_ms, list_one, out);
    xe_lockout_get_stats(env->lockout, env->now_ms, &st);
    xe_buf_appendf(
        out,
        "stats entries=%zu locked=%zu failures=%llu lockouts=%llu refused=%llu "
        "evicted=%llu\n",
        st.entries, st.locked, (unsigned long long)st.failures,
        (unsigned long long)st.lockouts, (unsigned long long)st.refused,
        (unsigned long long)st.evicted);
    return NULL;
}

static const char *
cmd_lockout_clear(const struct xe_ctlcmd_env *env, char **args, size_t n,
                  struct xe_buf *out)
{
    size_t cleared;

    (void)n;
    if (env->lockout == NULL)
        return "brute-force protection is not running";
    if (strcmp(args[0], "--all") == 0)
        cleared = xe_lockout_clear_all(env->lockout);
    else
        cleared = xe_lockout_clear(env->lockout, args[0]);
    xe_buf_appendf(out, "cleared=%zu\n", cleared);
    {
        /* an account key is a JID; an address (or --all) goes in the detail */
        char detail[XE_CONTROL_MAX_REQUEST + 64];
        bool account = strchr(args[0], '@') != NULL;
        snprintf(detail, sizeof(detail), "%s%s cleared=%zu",
                 account ? "" : " key=", account ? "" : args[0], cleared);
        audit(env, "lockout-clear", account ? args[0] : "-", detail);
    }
    return NULL;
}

static const char *
cmd_session_list(const struct xe_ctlcmd_env *env, char **args, size_t n,
                 struct xe_buf *out)
{
    (void)args;
    (void)n;
    if (env->sessions == NULL)
        return "sessions are not available";
    env->sessions(env->srv, out);
    return NULL;
}

static const char *
cmd_s2s_list(const struct xe_ctlcmd_env *env, char **args, size_t n, struct xe_buf *out)
{
    (void)args;
    (void)n;
    if (env->s2s == NULL)
        return "federation is not available";
    env->s2s(env->srv, out);
    return NULL;
}

static const char *
cmd_session_kick(const struct xe_ctlcmd_env *env, char **args, size_t n,
                 struct xe_buf *out)
{
    (void)n;
    if (env->kick == NULL)
        return "sessions are not available";
    size_t k = env->kick(env->srv, args[0]);
    char detail[XE_CONTROL_MAX_REQUEST + 64];
    bool jid = strchr(args[0], '@') != NULL;

    xe_buf_appendf(out, "kicked=%zu\n", k);
    snprintf(detail, sizeof(detail), "%s%s kicked=%zu",
             jid ? "" : " id=", jid ? "" : args[0], k);
    audit(env, "session-kick", jid ? args[0] : "-", detail);
    return NULL;
}

static const char *
cmd_backend_list(const struct xe_ctlcmd_env *env, char **args, size_t n,
                 struct xe_buf *out)
{
    (void)args;
    (void)n;
    if (env->backends == NULL)
        return "backends are not available";
    env->backends(env->srv, out);
    return NULL;
}

static const char *
backend_drain(const struct xe_ctlcmd_env *env, const char *name, bool drain,
              struct xe_buf *out)
{
    size_t k;

    if (env->drain == NULL)
        return "backends are not available";
    if ((k = env->drain(env->srv, name, drain)) == 0)
        return "no backend server of that name";
    xe_buf_appendf(out, "%s=%zu\n", drain ? "draining" : "undrained", k);
    {
        char detail[XE_CONTROL_MAX_REQUEST + 64];
        snprintf(detail, sizeof(detail), " server=%s servers=%zu", name, k);
        audit(env, drain ? "backend-drain" : "backend-undrain", "-", detail);
    }
    return NULL;
}

static const char *
cmd_backend_drain(const struct xe_ctlcmd_env *env, char **args, size_t n,
                  struct xe_buf *out)
{
    (void)n;
    return backend_drain(env, args[0], true, out);
}

static const char *
cmd_backend_undrain(const struct xe_ctlcmd_env *env, char **args, size_t n,
                    struct xe_buf *out)
{
    (void)n;
    return backend_drain(env, args[0], false, out);
}

static const char *
cmd_stats(const struct xe_ctlcmd_env *env, char **args, size_t n, struct xe_buf *out)
{
    (void)args;
    (void)n;
    if (env->stats == NULL)
        return "statistics are not available";
    env->stats(env->srv, out);
    if (env->lockout) {
        struct xe_lockout_stats st;
        xe_lockout_get_stats(env->lockout, env->now_ms, &st);
        xe_buf_appendf(out, "lockout entries=%zu locked=%zu lockouts=%llu refused=%llu\n",
                       st.entries, st.locked, (unsigned long long)st.lockouts,
                       (unsigned long long)st.refused);
    }
    return NULL;
}

static const char *
cmd_reload(const struct xe_ctlcmd_env *env, char **args, size_t n, struct xe_buf *out)
{
    static char error[XE_CONTROL_MAX_ERROR]; /* one request at a time */
    unsigned long generation = 0;
    char *err = NULL;

    (void)args;
    (void)n;
    if (env->reload == NULL)
        return "reload is not available";
    if (env->reload(env->reload_ctx, &generation, &err) < 0) {
        /* one line: the answer is line-based */
        snprintf(error, sizeof(error), "%s", err ? err : "the reload failed");
        for (char *p = error; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
                *p = ' ';
        free(err);
        return error;
    }
    xe_buf_appendf(out, "reload result=ok generation=%lu\n", generation);
    {
        char detail[64];
        snprintf(detail, sizeof(detail), " generation=%lu", generation);
        audit(env, "reload", "-", detail);
    }
    return NULL;
}

/* The keys of the details xedgectl sends with "admin" (and end=). The
 * audit line is "event=admin action= jid= uid= pid=" then the details: a
 * free key would let anyone who may write to the socket append uid=0, or
 * a second action= or jid=, to the line, and a reader of the log that
 * takes the last value would believe it. */
static const char *const detail_keys[] = {"legacy_mechs", "keep_data", "purge",    "pin",
                                          "expires",      "added",     "replaced", "kept",
                                          "failed",       NULL};

/* A detail word of "admin": key=value, a key of detail_keys, the value
 * printable without spaces, quotes or '=' */
static bool
detail_word(const char *w)
{
    const char *eq = strchr(w, '=');
    bool known = false;

    if (eq == NULL || eq == w || eq[1] == '\0')
        return false;
    if (strncmp(w, "end=", 4) == 0)
        return true; /* checked by cmd_admin */
    for (size_t i = 0; detail_keys[i] && !known; i++)
        known = strlen(detail_keys[i]) == (size_t)(eq - w) &&
                strncmp(w, detail_keys[i], (size_t)(eq - w)) == 0;
    return known && strpbrk(eq + 1, "\"'=") == NULL;
}

/* admin ACTION JID|- [end=REASON] [KEY=VALUE...]: xedgectl changed the user
 * store (it writes LMDB itself) and tells the daemon: the audit trail, and
 * with end=REASON the account's live sessions end (on every worker). */
static const char *
cmd_admin(const struct xe_ctlcmd_env *env, char **args, size_t n, struct xe_buf *out)
{
    char detail[XE_CONTROL_MAX_REQUEST + 64], bare[XE_CONTROL_MAX_REQUEST + 1];
    const char *reason = NULL, *jid = args[1];
    size_t i, off = 0, ended = 0;
    bool known = false;

    for (i = 0; xe_ctlcmd_actions[i]; i++)
        known = known || strcmp(xe_ctlcmd_actions[i], args[0]) == 0;
    if (!known || strncmp(args[0], "user-", 5) != 0)
        return "unknown action";
    if (strcmp(jid, "-") != 0) {
        /* a bare JID as the user store keeps it: UTF-8, no quote, '=' or
         * '/', one '@' (the log line and end_account take it as it is) */
        if (strlen(jid) >= sizeof(bare) || strpbrk(jid, "=\"'") != NULL)
            return "not a bare JID";
        memcpy(bare, jid, strlen(jid) + 1);
        if (xe_jid_normalize(bare, sizeof(bare), NULL) != 0 || strcmp(bare, jid) != 0)
            return "not a bare JID";
    }
    detail[0] = '\0';
    for (i = 2; i < n; i++) {
        if (!detail_word(args[i]))
            return "bad detail (KEY=VALUE)";
        if (strncmp(args[i], "end=", 4) == 0) {
            reason = args[i] + 4;
            if (xe_ctlcmd_reason_text(reason) == NULL)
                return "bad end= (disabled, removed, password)";
            if (strcmp(jid, "-") == 0)
                return "end= needs a JID";
            continue;
        }
        off += (size_t)snprintf(detail + off, sizeof(detail) - off, " %s", args[i]);
        if (off >= sizeof(detail))
            return "request too long";
    }
    if (reason) {
        if (env->end_account == NULL)
            return "sessions are not available";
        ended = env->end_account(env->srv, jid, reason);
        snprintf(detail + off, sizeof(detail) - off, " end=%s ended=%zu", reason, ended);
    }
    audit(env, args[0], jid, detail);
    if (strcmp(args[0], "user-del") == 0 && strstr(detail, " purge=pending") &&
        env->purge_kick)
        env->purge_kick(env->purge_ctx);
    xe_buf_appendf(out, "ended=%zu\n", ended);
    return NULL;
}

static const char *cmd_help(const struct xe_ctlcmd_env *env, char **args, size_t n,
                            struct xe_buf *out);

static const struct command commands[] = {
    {{"lockout", "list", NULL}, 0, 0, cmd_lockout_list, "lockout list"},
    {{"lockout", "clear", NULL}, 1, 1, cmd_lockout_clear, "lockout clear KEY|--all"},
    {{"session", "list", NULL}, 0, 0, cmd_session_list, "session list"},
    {{"session", "kick", NULL}, 1, 1, cmd_session_kick, "session kick JID|ID"},
    {{"s2s", "list", NULL}, 0, 0, cmd_s2s_list, "s2s list"},
    {{"backend", "list", NULL}, 0, 0, cmd_backend_list, "backend list"},
    {{"backend", "drain", NULL}, 1, 1, cmd_backend_drain, "backend drain NAME"},
    {{"backend", "undrain", NULL}, 1, 1, cmd_backend_undrain, "backend undrain NAME"},
    {{"stats", NULL}, 0, 0, cmd_stats, "stats"},
    {{"reload", NULL}, 0, 0, cmd_reload, "reload"},
    {{"admin", NULL}, 2, 8, cmd_admin, "admin ACTION JID|- [end=REASON] [KEY=VALUE...]"},
    {{"help", NULL}, 0, 0, cmd_help, "help"},
};

static const char *
cmd_help(const struct xe_ctlcmd_env *env, char **args, size_t n, struct xe_buf *out)
{
    (void)env;
    (void)args;
    (void)n;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        xe_buf_appendf(out, "command usage=\"%s\"\n", commands[i].usage);
    return NULL;
}

int
xe_ctlcmd_run(const struct xe_ctlcmd_env *env, const char *line, size_t len,
              struct xe_buf *out)
{
    char buf[XE_CONTROL_MAX_REQUEST + 1], *words[MAX_WORDS], *p;
    size_t nw = 0, w;
    struct xe_buf body;
    const char *err = NULL;
    const struct command *cmd = NULL;

    if (len > XE_CONTROL_MAX_REQUEST) {
        xe_buf_append_str(out, "error request too long\n");
        return -1;
    }
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (len > 0 && buf[len - 1] == '\r')
        buf[len - 1] = '\0';
    for (p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) {
            xe_buf_append_str(out, "error control characters in the request\n");
            return -1;
        }
    for (p = strtok(buf, " "); p; p = strtok(NULL, " ")) {
        if (nw == MAX_WORDS) {
            xe_buf_append_str(out, "error too many words\n");
            return -1;
        }
        words[nw++] = p;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]) && cmd == NULL; i++) {
        for (w = 0; commands[i].words[w]; w++)
            if (w >= nw || strcmp(commands[i].words[w], words[w]) != 0)
                break;
        if (commands[i].words[w] == NULL)
            cmd = &commands[i];
    }
    if (cmd == NULL) {
        xe_buf_append_str(out, "error unknown command (try: help)\n");
        return -1;
    }
    for (w = 0; cmd->words[w]; w++)
        ;
    if (nw - w < cmd->min_args || nw - w > cmd->max_args) {
        xe_buf_appendf(out, "error usage: %s\n", cmd->usage);
        return -1;
    }
    xe_buf_init(&body, 0);
    err = cmd->run(env, words + w, nw - w, &body);
    if (err) {
        xe_buf_appendf(out, "error %s\n", err);
    } else {
        xe_buf_append_str(out, "ok\n");
        xe_buf_append(out, body.data, body.len);
    }
    xe_buf_free(&body);
    return err ? -1 : 0;
}
