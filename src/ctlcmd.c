/* xedge: the commands of the control socket. See ctlcmd.h. */
#include "ctlcmd.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockout.h"
#include "xelimits.h"

#define MAX_WORDS 16

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
    xe_buf_appendf(out, "kicked=%zu\n", env->kick(env->srv, args[0]));
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
