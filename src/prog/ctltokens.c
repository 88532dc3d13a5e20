/* xedgectl user tokens list|revoke: the FAST tokens (XEP-0484) this node
 * keeps for a user, one record per client (user agent id), in the user
 * store's LMDB environment (tokens.h). Never prints a token. */
#include "ctltokens.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "tokens.h"
#include "userstore.h"
#include "xedgectl_pg.h"

static void
when(int64_t t, char *out, size_t max)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, max, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, max, "%" PRId64, t);
}

static void
print_slot(const char *ua, const char *name, const struct xe_token_slot *s)
{
    char is[32], ex[32], cnt[24];

    if (!s->present)
        return;
    when(s->issued, is, sizeof(is));
    when(s->expiry, ex, sizeof(ex));
    if (s->has_count)
        snprintf(cnt, sizeof(cnt), "%llu", s->count);
    else
        snprintf(cnt, sizeof(cnt), "-");
    printf("%-38s %-4s %-16s %-20s %-20s %s\n", ua[0] ? ua : "-", name, s->mech, is, ex,
           cnt);
}

static int
list_cb(const char *ua, const struct xe_token_rec *rec, void *ctx)
{
    int *n = ctx;

    if (!rec->cur.present && !rec->next.present)
        printf("%-38s (a corrupt record: revoke it)\n", ua[0] ? ua : "-");
    print_slot(ua, "cur", &rec->cur);
    print_slot(ua, "next", &rec->next);
    (*n)++;
    return 0;
}

int
xe_ctltokens_main(const char *config, int argc, char **argv)
{
    struct xe_conf *conf = NULL;
    struct xe_userstore *store = NULL;
    struct xe_tokens *tokens = NULL;
    char jid[3072], *err = NULL;
    const char *why = "";
    bool list;
    int ret = 2, r, n = 0;

    if (argc < 2 || (strcmp(argv[0], "list") == 0 && argc != 2) ||
        (strcmp(argv[0], "revoke") == 0 && argc > 3) ||
        (strcmp(argv[0], "list") != 0 && strcmp(argv[0], "revoke") != 0)) {
        fprintf(stderr, "xedgectl: usage: xedgectl user tokens list JID\n"
                        "       xedgectl user tokens revoke JID [USER-AGENT-ID]\n");
        return 64;
    }
    list = strcmp(argv[0], "list") == 0;
    if (strlen(argv[1]) >= sizeof(jid)) {
        fprintf(stderr, "xedgectl: user tokens: the JID is too long\n");
        return 1;
    }
    strcpy(jid, argv[1]);
    if (xe_jid_normalize(jid, sizeof(jid), &why) != 0) {
        fprintf(stderr, "xedgectl: user tokens: '%s' is not a valid bare JID: %s\n",
                argv[1], why);
        return 1;
    }
    if (xe_conf_load(config, &conf, &err) != 0) {
        fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot load the configuration");
        goto out;
    }
    if (conf->user_store == NULL) {
        fprintf(stderr, "xedgectl: %s: no user_store path\n", config);
        goto out;
    }
    if (conf->user_store_database != NULL) { /* several nodes: the database */
        size_t k = 0;
        if (list)
            printf("%-38s %-4s %-16s %-20s %-20s %s\n", "USER-AGENT", "SLOT", "MECHANISM",
                   "ISSUED", "EXPIRES", "COUNT");
        if (xe_ctlpg_tokens(conf, jid, argc == 3 ? argv[2] : NULL, list, list_cb, &n, &k,
                            &err) < 0) {
            fprintf(stderr, "xedgectl: %s\n", err ? err : "the user database failed");
            goto out;
        }
        ret = 0;
        if (list)
            goto out;
        if (argc == 3 && k == 0) {
            fprintf(stderr, "xedgectl: user tokens: %s has no token for user agent %s\n",
                    jid, argv[2]);
            ret = 1;
        } else if (argc == 3) {
            printf("revoked the tokens of %s for user agent %s\n", jid, argv[2]);
        } else {
            printf("revoked the tokens of %s: %zu client%s\n", jid, k, k == 1 ? "" : "s");
        }
        goto out;
    }
    if ((r = xe_userstore_open(conf->user_store, false, conf->user_store_map_mb, &store,
                               &err)) != XE_US_OK ||
        (r = xe_tokens_open(store, &tokens, &err)) != XE_US_OK) {
        fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot open the token store");
        goto out;
    }
    if (list) {
        printf("%-38s %-4s %-16s %-20s %-20s %s\n", "USER-AGENT", "SLOT", "MECHANISM",
               "ISSUED", "EXPIRES", "COUNT");
        if (xe_tokens_list(tokens, jid, list_cb, &n, &err) != XE_US_OK) {
            fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot read the token store");
            goto out;
        }
        ret = 0;
    } else if (argc == 3) {
        r = xe_tokens_revoke(tokens, jid, argv[2], &err);
        if (r == XE_US_NOTFOUND) {
            fprintf(stderr, "xedgectl: user tokens: %s has no token for user agent %s\n",
                    jid, argv[2]);
            ret = 1;
            goto out;
        }
        if (r != XE_US_OK) {
            fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot write the token store");
            goto out;
        }
        printf("revoked the tokens of %s for user agent %s\n", jid, argv[2]);
        ret = 0;
    } else {
        size_t k = 0;
        if (xe_tokens_revoke_user(tokens, jid, &k, &err) != XE_US_OK) {
            fprintf(stderr, "xedgectl: %s\n", err ? err : "cannot write the token store");
            goto out;
        }
        printf("revoked the tokens of %s: %zu client%s\n", jid, k, k == 1 ? "" : "s");
        ret = 0;
    }
out:
    xe_tokens_close(&tokens);
    xe_userstore_close(&store);
    if (conf != NULL)
        xe_conf_free(&conf);
    free(err);
    return ret;
}
