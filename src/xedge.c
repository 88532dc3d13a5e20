/* xedge: the daemon. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include "conf.h"
#include "control.h"
#include "log.h"
#include "sasl.h"
#include "server.h"
#include "userstore.h"
#include "util.h"

#ifndef XE_SYSCONFDIR
#define XE_SYSCONFDIR "/etc"
#endif

static struct xe_server *g_srv;
static struct xe_control *g_ctl;

static void
usage(FILE *f)
{
    fprintf(
        f,
        "Usage: xedge [-c FILE] [-t] [-d] [-V] [-h]\n"
        "  -c FILE   configuration file (default " XE_SYSCONFDIR "/xedge.conf)\n"
        "  -t        check the configuration (and certificates) and exit\n"
        "  -d        log at debug level, whatever the configuration says\n"
        "  -V        print the version and exit\n"
        "  -h        this help\n"
        "xedge runs in the foreground and logs to stderr; SIGTERM or SIGINT stop it.\n");
}

static void
on_signal(uv_signal_t *s, int signum)
{
    xe_info("event=stopping signal=%d", signum);
    xe_control_stop(g_ctl);
    if (g_srv)
        xe_server_stop(g_srv);
    uv_close((uv_handle_t *)s, NULL);
    uv_stop(s->loop);
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
            const char *m = list[i];
            size_t l = strlen(m);
            if (l > 5 && strcmp(m + l - 5, "-PLUS") == 0)
                l -= 5;
            xe_buf_appendf(&b, "%s%.*s", b.len ? " " : "", (int)l, m);
        }
    }
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
    uv_signal_t sigterm, sigint;
    char *err = NULL, *mechs = NULL;
    uv_loop_t *loop = uv_default_loop();
    int opt, rc = 1;

    while ((opt = getopt(argc, argv, "c:tdVh")) != -1) {
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
    if (xe_server_new(loop, conf, &g_srv, &err) < 0) {
        fprintf(stderr, "xedge: %s: %s\n", path, err);
        goto out;
    }
    if (check) {
        printf("xedge: configuration %s is valid\n", path);
        rc = 0;
        goto out;
    }
    if (xe_userstore_open(conf->user_store, false, conf->user_store_map_mb, &store,
                          &err) < 0) {
        fprintf(stderr, "xedge: user store: %s\n", err);
        goto out;
    }
    mechs = mech_list(conf);
    if (xe_sasl_global_init(store, mechs, conf->scram_iterations, &err) < 0) {
        fprintf(stderr, "xedge: SASL: %s\n", err);
        goto out;
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
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    xe_info("event=started version=%s config=%s domains=%zu", PACKAGE_VERSION, path,
            conf->n_domains);
    uv_run(loop, UV_RUN_DEFAULT);
    /* let the close callbacks run */
    if (!uv_is_closing((uv_handle_t *)&sigterm))
        uv_close((uv_handle_t *)&sigterm, NULL);
    if (!uv_is_closing((uv_handle_t *)&sigint))
        uv_close((uv_handle_t *)&sigint, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    xe_info("event=stopped");
    rc = 0;
out:
    xe_control_free(&g_ctl);
    xe_server_free(&g_srv);
    xe_sasl_global_done();
    xe_userstore_close(&store);
    xe_conf_free(&conf);
    free(mechs);
    free(err);
    uv_loop_close(loop);
    return rc;
}
