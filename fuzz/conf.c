/* Fuzz target: the configuration loader (src/core/conf.h).
 *
 * The input is written to a file in a private temporary directory and loaded
 * with xe_conf_load; everything is freed. Every "@TMP@" in the input is
 * replaced by that directory, which holds secret files for the pools:
 *   @TMP@/secret      48 bytes and a newline (valid)
 *   @TMP@/short       10 bytes (too short)
 *   @TMP@/large       5000 bytes (too large)
 *   @TMP@/blank       white space only
 * Inputs with "@include", "/dev/" or "/proc/" are skipped: libconfig and the
 * secret reader read any file named there (a configuration is trusted;
 * /dev/zero or /dev/tty would only hang the fuzzer).
 *
 * Debian 12's libconfig (1.5) leaks in its scanner on some syntax errors (a
 * libconfig bug, reproducible without xedge), so an input that libconfig
 * itself cannot parse is loaded with leak detection off; every input that
 * parses is leak-checked in full (config_destroy and xedge's own frees).
 *
 * Checked: success and failure are exclusive (a message exactly on failure),
 * a loaded configuration is consistent (every domain has a pool of the
 * configuration, secrets are at least 32 bytes, ...). */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#endif
#endif

#include "conf.h"
#include "fuzz.h"
#include "mech.h"

#ifndef HAVE_LSAN
#define __lsan_disable() ((void)0)
#define __lsan_enable() ((void)0)
#endif

static char conf_path[1024];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_tmpdir();
    char p[1024], big[5000];

    fuzz_logs();
    snprintf(p, sizeof(p), "%s/secret", dir);
    fuzz_write_file(p, "0123456789abcdef0123456789abcdef0123456789abcdef\n", 49);
    snprintf(p, sizeof(p), "%s/short", dir);
    fuzz_write_file(p, "0123456789", 10);
    memset(big, 'x', sizeof(big));
    snprintf(p, sizeof(p), "%s/large", dir);
    fuzz_write_file(p, big, sizeof(big));
    snprintf(p, sizeof(p), "%s/blank", dir);
    fuzz_write_file(p, " \t\r\n\n", 5);
    snprintf(conf_path, sizeof(conf_path), "%s/xedge.conf", dir);
    return 0;
}

static void
check_conf(const struct xe_conf *c)
{
    FUZZ_CHECK(c->n_listeners >= 1 && c->n_domains >= 1 && c->n_pools >= 1);
    FUZZ_CHECK(c->n_mechanisms >= 1 && c->mechanisms);
    FUZZ_CHECK(c->user_store && *c->user_store);
    for (size_t i = 0; i < c->n_listeners; i++)
        FUZZ_CHECK(c->listeners[i].port >= 1 && c->listeners[i].port <= 65535 &&
                   c->listeners[i].address);
    for (size_t i = 0; i < c->n_domains; i++) {
        const struct xe_domain_conf *d = &c->domains[i];
        FUZZ_CHECK(d->name && d->certificate && d->key);
        FUZZ_CHECK(d->pool >= c->pools && d->pool < c->pools + c->n_pools);
        FUZZ_CHECK(xe_conf_domain(c, d->name) == d);
        for (const char *p = d->name; *p; p++)
            FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
    }
    for (size_t i = 0; i < c->n_pools; i++) {
        const struct xe_pool_conf *p = &c->pools[i];
        FUZZ_CHECK(p->name && p->secret && p->secret_len >= 32 && p->secret_len <= 4096);
        FUZZ_CHECK(p->n_servers >= 1);
        for (size_t j = 0; j < p->n_servers; j++)
            FUZZ_CHECK(p->servers[j].name && p->servers[j].host &&
                       p->servers[j].unix_socket == (p->servers[j].host[0] == '/') &&
                       (p->servers[j].unix_socket
                            ? p->servers[j].port == 0
                            : p->servers[j].port >= 1 && p->servers[j].port <= 65535) &&
                       p->servers[j].weight >= 1);
    }
    /* every list fits the offer: names of the table, each once (mech.h) */
    FUZZ_CHECK(c->n_mechanisms <= XE_MECH_COUNT);
    for (size_t k = 0; k <= c->n_domains; k++) {
        size_t n;
        char *const *m = xe_conf_mechanisms(c, k ? &c->domains[k - 1] : NULL, &n);
        FUZZ_CHECK(n >= 1 && n <= XE_MECH_COUNT);
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(m[i] != NULL && xe_mech_find(m[i]) != NULL);
            for (size_t j = 0; j < i; j++)
                FUZZ_CHECK(strcmp(m[i], m[j]) != 0);
        }
    }
    FUZZ_CHECK(c->max_preauth_connections <= c->max_connections);
    FUZZ_CHECK(c->max_auth_attempts >= 1 && c->scram_iterations >= 4096);
    (void)xe_conf_domain(c, "example.test");
    (void)xe_conf_domain(c, "");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_tmpdir();
    size_t dl = strlen(dir);
    struct xe_conf *c = NULL;
    char *err = NULL, *text;
    size_t n = 0;
    FILE *f;
    bool syntax_ok;
    int r;

    if (memmem(data, size, "@include", 8) || memmem(data, size, "/dev/", 5) ||
        memmem(data, size, "/proc/", 6))
        return -1; /* not added to the corpus */
    /* substitute @TMP@ */
    text = malloc(size * (dl > 5 ? dl / 5 + 1 : 1) + 1);
    for (size_t i = 0; i < size;) {
        if (size - i >= 5 && memcmp(data + i, "@TMP@", 5) == 0) {
            memcpy(text + n, dir, dl);
            n += dl;
            i += 5;
        } else {
            text[n++] = (char)data[i++];
        }
    }
    f = fopen(conf_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(text, 1, n, f) == n && fclose(f) == 0);
    free(text);

    /* does libconfig parse it? (if not, it may leak: see above) */
    {
        config_t lc;
        __lsan_disable();
        config_init(&lc);
        syntax_ok = config_read_file(&lc, conf_path) == CONFIG_TRUE;
        config_destroy(&lc);
        __lsan_enable();
    }
    if (!syntax_ok)
        __lsan_disable();
    r = xe_conf_load(conf_path, &c, &err);
    if (!syntax_ok)
        __lsan_enable();
    if (r == 0) {
        FUZZ_CHECK(c != NULL && err == NULL);
        check_conf(c);
        xe_conf_free(&c);
        FUZZ_CHECK(c == NULL);
    } else {
        FUZZ_CHECK(r < 0 && err != NULL && c == NULL);
        FUZZ_CHECK(strncmp(err, conf_path, strlen(conf_path)) == 0);
        free(err);
    }
    return 0;
}
