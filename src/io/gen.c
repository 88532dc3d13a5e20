/* xedge: configuration generations and the backends' live state: a generation is a
 * configuration and the TLS contexts built from it, held by every connection
 * accepted under it; a server's state lives on across reloads.
 * Part of the c2s I/O glue (server_impl.h holds the shared types). */
#include "config.h"

#include "server_impl.h"

/* ---- generations ---------------------------------------------------------- */

void
xe_srv_bstate_unref(struct bstate *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    free(b->pool);
    free(b->name);
    free(b->adm);
    free(b);
}

/* The generation's server states: PREV's for the servers it lists too (by
 * pool and server name: health, draining and sessions go on), new ones
 * (up) for the others. */
static void
gen_states(struct gen *g, const struct gen *prev)
{
    const struct xe_conf *conf = g->conf;
    size_t k = 0;

    for (size_t p = 0; p < conf->n_pools; p++)
        g->n_bs += conf->pools[p].n_servers;
    g->bs = xe_calloc(g->n_bs ? g->n_bs : 1, sizeof(*g->bs));
    g->st = xe_calloc(g->n_bs ? g->n_bs : 1, sizeof(*g->st));
    g->pool_off = xe_calloc(conf->n_pools ? conf->n_pools : 1, sizeof(*g->pool_off));
    for (size_t p = 0; p < conf->n_pools; p++) {
        const struct xe_pool_conf *pc = &conf->pools[p];

        g->pool_off[p] = k;
        for (size_t i = 0; i < pc->n_servers; i++, k++) {
            const struct xe_server_conf *sc = &pc->servers[i];
            struct bstate *b = NULL;

            for (size_t j = 0; prev && j < prev->n_bs && b == NULL; j++)
                if (strcmp(prev->bs[j]->pool, pc->name) == 0 &&
                    strcmp(prev->bs[j]->name, sc->name) == 0)
                    b = prev->bs[j];
            if (b == NULL) {
                b = xe_calloc(1, sizeof(*b));
                b->pool = xe_strdup(pc->name);
                b->name = xe_strdup(sc->name);
                b->st.up = true;
            }
            b->refs++;
            if (pc->health.interval_ms == 0)
                b->st.up = true; /* unchecked: always up */
            g->bs[k] = b;
            g->st[k] = &b->st;
        }
    }
}

/* The servers of the current generation, in the log (at start and after a
 * reload). */
void
xe_srv_log_backends(const struct gen *g)
{
    for (size_t i = 0; i < g->n_bs; i++) {
        const struct xe_pool_conf *pc = g->bs[i]->pc;
        const struct xe_server_conf *sc = g->bs[i]->sc;
        xe_info("event=backend pool=%s backend=%s kind=%s address=%s port=%d "
                "weight=%u policy=%s on_down=%s health_interval_s=%u",
                pc->name, sc->name, xe_server_kind_name(sc->kind), sc->host, sc->port,
                sc->weight, xe_pool_policy_name(pc->policy),
                pc->on_down == XE_ON_DOWN_NEXT ? "next" : "error",
                pc->health.interval_ms / 1000);
    }
}

/* This generation becomes the current one: its servers' states point to
 * its configuration; the servers PREV had and it has not are orphaned. */
void
xe_srv_gen_adopt(struct gen *g, const struct gen *prev)
{
    const struct xe_conf *conf = g->conf;

    for (size_t i = 0; prev && i < prev->n_bs; i++) {
        prev->bs[i]->pc = NULL;
        prev->bs[i]->sc = NULL;
    }
    for (size_t p = 0; p < conf->n_pools; p++) {
        const struct xe_pool_conf *pc = &conf->pools[p];
        const char *domain = conf->n_domains ? conf->domains[0].name : "localhost";

        for (size_t d = 0; d < conf->n_domains; d++)
            if (conf->domains[d].pool == pc) {
                domain = conf->domains[d].name;
                break;
            }
        for (size_t i = 0; i < pc->n_servers; i++) {
            struct bstate *b = g->bs[g->pool_off[p] + i];
            b->pc = pc;
            b->sc = &pc->servers[i];
            b->domain = domain;
        }
    }
}

struct gen *
xe_srv_gen_ref(struct gen *g)
{
    g->refs++;
    return g;
}

void
xe_srv_gen_unref(struct gen **gp)
{
    struct gen *g = *gp;

    *gp = NULL;
    if (g == NULL || --g->refs > 0)
        return;
    xe_debug("event=generation-freed generation=%lu", g->number);
    for (size_t i = 0; i < g->n_bs; i++)
        xe_srv_bstate_unref(g->bs[i]);
    free(g->bs);
    free(g->st);
    free(g->pool_off);
    xe_tls_ctx_free(&g->tls_starttls);
    xe_tls_ctx_free(&g->tls_direct);
    xe_tls_ctx_free(&g->tls_ws);
    xe_conf_free(&g->owned);
    free(g);
}

/* A generation for CONF (not owned), with its TLS contexts; NULL and
 * *error_r on a certificate or key that does not load. */
struct gen *
xe_srv_gen_new(const struct xe_conf *conf, const struct gen *prev, char **error_r)
{
    struct gen *g = xe_calloc(1, sizeof(*g));
    struct xe_tls_cert *certs = xe_calloc(conf->n_domains, sizeof(*certs));

    g->refs = 1;
    g->conf = conf;
    gen_states(g, prev);
    for (size_t i = 0; i < conf->n_domains; i++) {
        certs[i].domain = conf->domains[i].name;
        certs[i].certificate = conf->domains[i].certificate;
        certs[i].key = conf->domains[i].key;
        certs[i].client_ca = conf->domains[i].client_ca;
        certs[i].settings = &conf->domains[i].tls;
        certs[i].ticket_keys = conf->ticket_keys;
        certs[i].ticket_keys_len = conf->ticket_keys_len;
    }
    if (xe_tls_ctx_new(certs, conf->n_domains, NULL, &g->tls_starttls, error_r) < 0 ||
        xe_tls_ctx_new(certs, conf->n_domains, "xmpp-client", &g->tls_direct, error_r) <
            0 ||
        /* wss: browsers offer h2 and http/1.1; the Upgrade is HTTP/1.1's */
        (conf->n_websockets > 0 &&
         xe_tls_ctx_new(certs, conf->n_domains, "http/1.1", &g->tls_ws, error_r) < 0))
        xe_srv_gen_unref(&g);
    free(certs);
    return g;
}
