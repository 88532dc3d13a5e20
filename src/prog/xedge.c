/* xedge: the daemon. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "conf.h"
#include "control.h"
#include "mech.h"
#include "purge_io.h"
#include "pgsync_io.h"
#include "tokens_io.h"
#include "log.h"
#include "metrics.h"
#include "sasl.h"
#include "server.h"
#include "register.h"
#include "userstore.h"
#include "util.h"

#ifndef XE_SYSCONFDIR
#define XE_SYSCONFDIR "/etc"
#endif

static struct xe_server *g_srv;
static struct xe_control *g_ctl;
static struct xe_purger *g_purger;
static struct xe_pgsync *g_pgsync; /* several nodes: pgsync_io.h */
static struct xe_tokio *g_tokio;   /* FAST tokens: tokens_io.h */
static struct xe_metrics_http *g_metrics;
/* for reloads: the file, the configuration xedge started with (what a
 * reload cannot change is compared with it), the store, -d */
static const char *g_path;
static const struct xe_conf *g_conf;
static struct xe_userstore *g_store;
static bool g_debug;

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: xedge [-c FILE] [-t] [-d] [-M] [-V] [-h]\n"
            "  -c FILE   configuration file (default " XE_SYSCONFDIR "/xedge.conf)\n"
            "  -t        check the configuration (and certificates) and exit\n"
            "  -d        log at debug level, whatever the configuration says\n"
            "  -M        list the SASL mechanisms xedge knows and exit: NAME, what it\n"
            "            is or needs (default: in the default list), a description\n"
            "  -V        print the version and exit\n"
            "  -h        this help\n"
            "xedge runs in the foreground and logs to stderr (or where log_to says);\n"
            "SIGTERM or SIGINT stop it; SIGHUP (or xedgectl reload) reloads the\n"
            "configuration for new connections. Under systemd (Type=notify) it reports\n"
            "READY=1 once it listens, RELOADING=1 and STOPPING=1.\n");
}

/* Tell systemd (Type=notify), when it started us. */
static void
notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
    int r = sd_notify(0, state);
    if (r < 0)
        xe_warn("event=sd-notify error=\"%s\"", strerror(-r));
#else
    (void)state;
#endif
}

/* After binding and loading keys: run as conf->run_user (and run_group, or
 * the user's group, with the user's supplementary groups). */
static int
drop_privileges(const struct xe_conf *conf, char **error_r)
{
    struct passwd *pw;
    gid_t gid;

    if (conf->run_user == NULL)
        return 0;
    errno = 0;
    if ((pw = getpwnam(conf->run_user)) == NULL) {
        *error_r = xe_asprintf("user %s: no such user", conf->run_user);
        return -1;
    }
    gid = pw->pw_gid;
    if (conf->run_group) {
        struct group *gr = getgrnam(conf->run_group);
        if (gr == NULL) {
            *error_r = xe_asprintf("group %s: no such group", conf->run_group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (geteuid() == pw->pw_uid && getuid() == pw->pw_uid && getegid() == gid &&
        getgid() == gid)
        return 0; /* started as that user already (systemd User=) */
    if (geteuid() != 0) {
        *error_r =
            xe_asprintf("cannot switch to user %s: not started as root", conf->run_user);
        return -1;
    }
    /* the control socket, made as root, belongs to the user xedge runs as,
     * so that xedgectl run as that user reaches it too */
    if (conf->control.socket && chown(conf->control.socket, pw->pw_uid, gid) != 0) {
        *error_r = xe_asprintf("cannot give the control socket %s to %s: %s",
                               conf->control.socket, conf->run_user, strerror(errno));
        return -1;
    }
    if (initgroups(pw->pw_name, gid) != 0 || setgid(gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        *error_r =
            xe_asprintf("cannot switch to user %s: %s", conf->run_user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0 || seteuid(0) == 0) {
        *error_r = xe_asprintf("root privileges could be regained after switching to %s",
                               conf->run_user);
        return -1;
    }
    xe_info("event=privileges user=%s uid=%lu gid=%lu", conf->run_user,
            (unsigned long)getuid(), (unsigned long)getgid());
    return 0;
}

static unsigned g_grace_ms, g_signals;

/* Every connection is gone (or the second signal came): end the loop. */
static void
drained(void *ctx)
{
    if (g_srv)
        xe_server_stop(g_srv);
    uv_stop(ctx);
}

/* SIGTERM, SIGINT: a graceful shutdown (sessions go on for timeouts.
 * shutdown_grace, then end with <system-shutdown/>); a second one: at once. */
static void
on_signal(uv_signal_t *s, int signum)
{
    if (g_signals++ > 0) {
        xe_info("event=stopping-now signal=%d", signum);
        drained(s->loop);
        return;
    }
    notify("STOPPING=1");
    xe_info("event=stopping signal=%d grace_ms=%u", signum, g_grace_ms);
    xe_control_stop(g_ctl);
    xe_purger_stop(g_purger);
    xe_pgsync_stop(g_pgsync);
    xe_metrics_http_stop(&g_metrics);
    if (g_srv)
        xe_server_shutdown(g_srv, g_grace_ms, drained, s->loop);
    else
        drained(s->loop);
}

static char *mech_list(const struct xe_conf *conf);

/* several nodes: an account disabled or removed elsewhere ends here too */
static void
account_changed(void *ctx, const char *jid, const char *reason)
{
    (void)ctx;
    if (g_srv != NULL)
        xe_server_end_account(g_srv, jid, reason);
}

static void
purge_kick(void *ctx)
{
    (void)ctx;
    xe_purger_kick(g_purger);
}

/* Reload the configuration file: certificates, domains, pools, limits,
 * timeouts and mechanisms change for new connections; established ones go
 * on under the configuration they started with. A file that does not load,
 * a certificate that does not, or a change of what needs a restart is
 * refused: the running configuration stays. */
static int
reload(void *ctx, unsigned long *generation_r, char **error_r)
{
    struct xe_conf *conf = NULL;
    const struct xe_conf *now;
    char *err = NULL, *mechs;

    (void)ctx;
    notify("RELOADING=1");
    if (xe_conf_load(g_path, &conf, &err) < 0 ||
        (err = xe_conf_fixed_changes(g_conf, conf)) != NULL) {
        xe_conf_free(&conf);
        goto refused;
    }
    now = conf; /* the server's from here, and current */
    if (xe_server_reload(g_srv, conf, generation_r, &err) < 0)
        goto refused;
    mechs = mech_list(now);
    if (xe_sasl_global_init(g_store, mechs, now->scram_iterations, &err) < 0) {
        /* Cyrus is initialised: this only swaps the lists; cannot fail */
        xe_err("event=reload error=\"%s\"", err);
        free(err);
        err = NULL;
    }
    for (const char *p = mechs; *p;) {
        size_t w = strcspn(p, " ");
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)w, p);
        if (!xe_sasl_mech_loaded(name))
            xe_warn("event=reload mechanism=%s warning=\"Cyrus SASL did not load this "
                    "mechanism at start: unavailable until a restart\"",
                    name);
        p += w;
        p += strspn(p, " ");
    }
    free(mechs);
    xe_register_global_reconfigure(now);
    xe_purger_set_conf(g_purger, now);
    xe_log_level = g_debug ? XE_LOG_DEBUG : now->log_level;
    g_grace_ms = now->shutdown_grace_ms;
    xe_info("event=reload result=ok generation=%lu config=%s domains=%zu", *generation_r,
            g_path, now->n_domains);
    notify("READY=1");
    return 0;
refused:
    xe_err("event=reload result=error config=%s error=\"%s\"", g_path, err);
    notify("READY=1");
    *error_r = err;
    return -1;
}

/* SIGHUP: reload; the outcome is in the log. */
static void
on_hup(uv_signal_t *s, int signum)
{
    unsigned long generation;
    char *err = NULL;

    (void)s;
    xe_info("event=reload signal=%d", signum);
    if (reload(NULL, &generation, &err) < 0)
        free(err);
}

static char *
mech_list(const struct xe_conf *conf)
{
    struct xe_buf b;
    char *s;

    xe_buf_init(&b, 0);
    /* Every mechanism of the sasl group and of the domains' own lists, by
     * its base name: Cyrus loads the -PLUS variants with channel binding. */
    for (size_t k = 0; k <= conf->n_domains; k++) {
        size_t n;
        char *const *list =
            xe_conf_mechanisms(conf, k == 0 ? NULL : &conf->domains[k - 1], &n);
        for (size_t i = 0; i < n; i++) {
            const struct xe_mech *m = xe_mech_find(list[i]); /* conf checked it */
            xe_buf_appendf(&b, "%s%.*s", b.len ? " " : "", (int)m->cyrus_len, m->name);
        }
    }
    /* and those of the peers' secrets (server-to-server SASL): Cyrus loads
     * them; clients are offered only their domain's list */
    for (size_t k = 0; k < conf->s2s.n_peers; k++)
        for (size_t i = 0; i < conf->s2s.peers[k].n_mechanisms; i++)
            xe_buf_appendf(&b, "%s%s", b.len ? " " : "",
                           conf->s2s.peers[k].mechanisms[i]);
    xe_buf_append(&b, "", 1);
    s = xe_strdup((char *)b.data);
    xe_buf_free(&b);
    return s;
}

int
main(int argc, char **argv)
{
    const char *path = XE_SYSCONFDIR "/xedge.conf";
    bool check = false, debug = false;
    struct xe_conf *conf = NULL;
    struct xe_userstore *store = NULL;
    uv_signal_t sigterm, sigint, sighup;
    uv_prepare_t log_turn;
    char *err = NULL, *mechs = NULL;
    uv_loop_t *loop = uv_default_loop();
    int opt, rc = 1;

    while ((opt = getopt(argc, argv, "c:tdMVh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check = true;
            break;
        case 'd':
            debug = true;
            break;
        case 'M':
            for (size_t i = 0; i < XE_MECH_COUNT; i++) {
                char words[128];
                xe_mech_flag_words(xe_mechs[i].flags, words, sizeof(words));
                printf("%-19s %-27s %s\n", xe_mechs[i].name, words, xe_mechs[i].about);
            }
            return 0;
        case 'V':
            printf("xedge %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (xe_conf_load(path, &conf, &err) < 0) {
        fprintf(stderr, "xedge: %s\n", err);
        goto out;
    }
    xe_log_level = debug ? XE_LOG_DEBUG : conf->log_level;
    g_path = path;
    g_conf = conf;
    g_debug = debug;
    if (xe_server_new(loop, conf, &g_srv, &err) < 0) {
        fprintf(stderr, "xedge: %s: %s\n", path, err);
        goto out;
    }
    if (check) {
        printf("xedge: configuration %s is valid\n", path);
        for (size_t i = 0; i < conf->n_websockets; i++)
            printf("xedge: websocket listener %s port %d: %s, path %s%s\n",
                   conf->websockets[i].address, conf->websockets[i].port,
                   conf->websockets[i].tls ? "wss" : "plain ws behind trusted proxies",
                   conf->websockets[i].path,
                   conf->websockets[i].host_meta_url ? ", host-meta" : "");
        rc = 0;
        goto out;
    }
    xe_log_open(conf->log_to, conf->syslog_facility);
    if (xe_userstore_open(conf->user_store, false, conf->user_store_map_mb, &store,
                          &err) < 0) {
        fprintf(stderr, "xedge: user store: %s\n", err);
        goto out;
    }
    xe_server_set_store(g_srv, store);
    g_store = store;
    mechs = mech_list(conf);
    if (xe_sasl_global_init(store, mechs, conf->scram_iterations, &err) < 0) {
        fprintf(stderr, "xedge: SASL: %s\n", err);
        goto out;
    }
    xe_register_global_init(store, conf); /* in-band registration writes the store */
    /* FAST tokens: read on the loop, written in the thread pool */
    if ((g_tokio = xe_tokio_new(loop, store, 0, &err)) == NULL) {
        fprintf(stderr, "xedge: FAST token store: %s\n", err);
        goto out;
    }
    xe_server_set_tokens(g_srv, g_tokio);
    xe_register_set_tokens(xe_tokio_tokens(g_tokio));
    /* several nodes: the store is a replica, caught up before we listen */
    if (conf->user_store_database != NULL) {
        if (xe_pgsync_new(loop, conf, store, &g_pgsync, &err) < 0) {
            fprintf(stderr, "xedge: user store: %s\n", err);
            goto out;
        }
        xe_pgsync_set_account_cb(g_pgsync, account_changed, NULL);
        xe_pgsync_set_lockout(g_pgsync, xe_server_lockout(g_srv));
    }
    {
        /* every client costs two descriptors: use what the system allows */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                xe_warn("event=rlimit error=\"cannot raise the descriptor limit\"");
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
            xe_info("event=rlimit nofile=%llu", (unsigned long long)rl.rlim_cur);
    }
    if (xe_server_listen(g_srv, &err) < 0) {
        fprintf(stderr, "xedge: %s\n", err);
        goto out;
    }
    if (conf->control.socket && xe_control_new(loop, conf, g_srv, &g_ctl, &err) < 0) {
        fprintf(stderr, "xedge: %s\n", err);
        goto out;
    }
    if (conf->metrics_address &&
        xe_metrics_http_start(loop, conf->metrics_address, conf->metrics_port, &g_metrics,
                              &err) < 0) {
        fprintf(stderr, "xedge: %s\n", err);
        goto out;
    }
    /* the ports are bound, the keys, the store and SASL loaded: no more need
     * for root */
    if (drop_privileges(conf, &err) < 0) {
        xe_err("event=privileges error=\"%s\"", err);
        fprintf(stderr, "xedge: %s\n", err);
        goto out;
    }
    g_grace_ms = conf->shutdown_grace_ms;
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_init(loop, &sighup);
    uv_signal_start(&sighup, on_hup, SIGHUP);
    if (g_ctl)
        xe_control_set_reload(g_ctl, reload, NULL);
    /* deleted users' data at the backends (the tombstones xedgectl leaves) */
    g_purger = xe_purger_new(loop, store, conf);
    if (g_pgsync) /* several nodes: one purges */
        xe_purger_set_gate(g_purger, xe_pgsync_purge_gate, g_pgsync);
    if (g_ctl)
        xe_control_set_purge(g_ctl, purge_kick, NULL);
    xe_info("event=started version=%s config=%s domains=%zu", PACKAGE_VERSION, path,
            conf->n_domains);
    xe_server_start_health(g_srv);
    notify("READY=1");
    xe_srv_log_turns(loop, &log_turn); /* a write(2) per turn, not per line */
    uv_run(loop, UV_RUN_DEFAULT);
    /* let the close callbacks run */
    if (!uv_is_closing((uv_handle_t *)&sigterm))
        uv_close((uv_handle_t *)&sigterm, NULL);
    if (!uv_is_closing((uv_handle_t *)&sigint))
        uv_close((uv_handle_t *)&sigint, NULL);
    if (!uv_is_closing((uv_handle_t *)&sighup))
        uv_close((uv_handle_t *)&sighup, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    xe_srv_log_turns_stop(&log_turn);
    uv_run(loop, UV_RUN_NOWAIT);
    xe_info("event=stopped");
    rc = 0;
out:
    /* after an error, what was started is still open: close it, and let the
     * close callbacks run before its memory goes */
    xe_control_stop(g_ctl);
    xe_purger_stop(g_purger);
    xe_pgsync_stop(g_pgsync);
    xe_metrics_http_stop(&g_metrics);
    uv_run(loop, UV_RUN_NOWAIT);
    xe_pgsync_free(&g_pgsync);
    xe_control_free(&g_ctl);
    xe_purger_free(&g_purger);
    xe_server_free(&g_srv);
    xe_sasl_global_done();
    xe_register_global_free();
    xe_tokio_free(&g_tokio);
    xe_userstore_close(&store);
    xe_conf_free(&conf);
    free(mechs);
    free(err);
    uv_loop_close(loop);
    return rc;
}
