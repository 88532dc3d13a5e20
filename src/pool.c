/* xedge: weighted rendezvous hashing. See pool.h. */
#include "pool.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

/* A uniform value in (0, 1) from SHA-256(server NUL jid). */
static double
unit_hash(const char *server, const char *jid)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint64_t v = 0;

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, server, strlen(server) + 1) != 1 ||
        EVP_DigestUpdate(ctx, jid, strlen(jid)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
        EVP_MD_CTX_free(ctx);
        return 0.5;
    }
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 8; i++)
        v = (v << 8) | md[i];
    /* 53 bits, shifted away from 0 and 1 */
    return ((double)(v >> 11) + 0.5) / 9007199254740992.0;
}

size_t
xe_pool_pick(const struct xe_pool_conf *pool, const char *jid)
{
    size_t best = 0;
    double best_score = -1.0;

    for (size_t i = 0; i < pool->n_servers; i++) {
        double score =
            (double)pool->servers[i].weight / -log(unit_hash(pool->servers[i].name, jid));
        if (score > best_score) {
            best_score = score;
            best = i;
        }
    }
    return best;
}
