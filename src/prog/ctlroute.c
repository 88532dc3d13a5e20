/* xedgectl user where JID: a user's home in its pool (doc/pool-routing.md):
 * the server, whether a pin put it there, and why. Read from the
 * configuration and the user store, as the daemon decides (route.h). */
#include "ctlroute.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "pool.h"
#include "route.h"
#include "userstore.h"

int
xe_ctlroute_where(const char *config, int argc, char **argv)
{
    struct xe_conf *conf = NULL;
    struct xe_userstore *store = NULL;
    struct xe_route_map *map = NULL;
    struct xe_user *user = NULL;
    const struct xe_domain_conf *d;
    char jid[sizeof(user->jid)], *err = NULL;
    const char *why = NULL, *at, *bad = "";
    bool exists = false, pinned = false;
    size_t home;
    int ret = 2, r;

    if (argc != 1) {
        fprintf(stderr, "xedgectl: usage: xedgectl user where JID\n");
        return 64;
    }
    if (strlen(argv[0]) >= sizeof(jid)) {
        fprintf(stderr, "xedgectl: user where: the JID is too long\n");
        return 1;
    }
    strcpy(jid, argv[0]);
    if (xe_jid_normalize(jid, sizeof(jid), &bad) != 0 ||
        (at = strchr(jid, '@')) == NULL) {
        fprintf(stderr, "xedgectl: user where: '%s' is not a valid bare JID: %s\n",
                argv[0], bad);
        return 1;
    }
    if (xe_conf_load(config, &conf, &err) != 0) {
        fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot load the configuration");
        goto out;
    }
    if ((d = xe_conf_domain(conf, at + 1)) == NULL) {
        fprintf(stderr,
                "xedgectl: user where: the domain %s is not served by this "
                "configuration\n",
                at + 1);
        ret = 1;
        goto out;
    }
    if ((r = xe_userstore_open(conf->user_store, true, conf->user_store_map_mb, &store,
                               &err)) != XE_US_OK) {
        fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot open the user store");
        goto out;
    }
    user = calloc(1, sizeof(*user));
    if (user == NULL)
        goto out;
    r = xe_userstore_get(store, jid, user, &err);
    if (r != XE_US_OK && r != XE_US_NOTFOUND) {
        fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot read the user store");
        goto out;
    }
    exists = r == XE_US_OK;
    map = xe_route_map_new(d->pool);
    if (exists && user->pin[0] && xe_route_map_add_pin(map, jid, user->pin, &why) < 0)
        why = "pinned to a server the pool does not have: the rendezvous choice";
    xe_route_map_seal(map);
    home = xe_route_home(map, jid, &pinned);
    printf("jid: %s\nuser: %s\npool: %s (policy %s%s)\nhome: %s\npinned: %s\n", jid,
           exists ? "in the store" : "not in the store", d->pool->name,
           xe_pool_policy_name(d->pool->policy), d->pool->route ? ", route = true" : "",
           xe_route_map_server_name(map, home), pinned ? user->pin : "no");
    if (why == NULL)
        why = pinned
                  ? "pinned by the operator (xedgectl user pin)"
                  : "the rendezvous choice (weighted rendezvous hashing of the bare JID)";
    if (d->pool->policy != XE_POLICY_STICKY)
        why = "no home: the pool's policy puts each session on any server (this is "
              "where a sticky policy would put the user)";
    printf("why: %s\n", why);
    ret = 0;
out:
    free(err);
    free(user);
    xe_route_map_free(&map);
    xe_userstore_close(&store);
    xe_conf_free(&conf);
    return ret;
}
