/* xedge fuzz targets: shared helpers (header only, static functions).
 *
 * - a private temporary directory, removed at exit;
 * - a "chunker" that turns the first bytes of an input into the sizes of the
 *   chunks the rest is fed in (so that every split point gets tried);
 * - the test user store (alice@example.test, a disabled bob@example.test)
 *   and Cyrus SASL initialised over it, for the c2s and sasl targets;
 * - log silencing (XE_FUZZ_LOG=debug shows xedge's log lines).
 *
 * Any invariant a target checks fails through FUZZ_CHECK, which prints the
 * condition and aborts, so that libFuzzer records a crash and a reproducer. */
#ifndef XE_FUZZ_H
#define XE_FUZZ_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sasl.h"
#include "userstore.h"

#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define FUZZ_USER "alice@example.test"
#define FUZZ_PASSWORD "correct horse"
#define FUZZ_DISABLED_USER "bob@example.test"
#define FUZZ_DISABLED_PASSWORD "battery staple"
/* PBKDF2 rounds of the test store's secrets (and of the fake secrets of
 * unknown users): low, so that a PLAIN or SCRAM attempt is cheap. The code
 * paths do not depend on the count. */
#define FUZZ_ITERATIONS 16

static char fuzz_dir[512];

/* Remove the files directly in fuzz_dir, then fuzz_dir (one level of
 * subdirectories, as the LMDB store uses). */
static inline void
fuzz_rm_tree(const char *path, int depth)
{
    DIR *d = opendir(path);
    struct dirent *de;

    if (d) {
        while ((de = readdir(d)) != NULL) {
            char p[1024];
            struct stat st;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 2)
                fuzz_rm_tree(p, depth + 1);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

static inline void
fuzz_cleanup(void)
{
    if (fuzz_dir[0])
        fuzz_rm_tree(fuzz_dir, 0);
}

/* Create the private temporary directory (under $TMPDIR) once. */
static inline const char *
fuzz_tmpdir(void)
{
    const char *t = getenv("TMPDIR");

    if (fuzz_dir[0])
        return fuzz_dir;
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/xedge-fuzz.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(fuzz_dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(fuzz_cleanup);
    return fuzz_dir;
}

static inline void
fuzz_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* xedge's log lines are quiet unless XE_FUZZ_LOG names a level. */
static inline void
fuzz_logs(void)
{
    const char *l = getenv("XE_FUZZ_LOG");

    xe_log_level = l ? xe_log_level_parse(l) : -1;
}

/* Take the first byte of an input as the target's flags. Returns false for
 * an empty input (nothing to run). */
static inline bool
fuzz_take_flags(const uint8_t **data, size_t *size, unsigned *flags)
{
    if (*size == 0)
        return false;
    *flags = (*data)[0];
    (*data)++;
    (*size)--;
    return true;
}

/* ---- chunking ----------------------------------------------------------- */

/* The first byte (n & 7) says how many of the following bytes are chunk
 * sizes; those sizes are used in turn (0 means: all the rest). With n = 0
 * the whole input is fed at once. */
struct fuzz_chunker {
    const uint8_t *sizes;
    size_t n, i;
};

static inline void
fuzz_chunker_init(struct fuzz_chunker *ch, const uint8_t **data, size_t *size)
{
    size_t n;

    memset(ch, 0, sizeof(*ch));
    if (*size == 0)
        return;
    n = (*data)[0] & 7;
    (*data)++;
    (*size)--;
    if (n > *size)
        n = *size;
    ch->sizes = *data;
    ch->n = n;
    *data += n;
    *size -= n;
}

static inline size_t
fuzz_chunk_len(struct fuzz_chunker *ch, size_t left)
{
    size_t l;

    if (ch->n == 0)
        return left;
    l = ch->sizes[ch->i++ % ch->n];
    return l == 0 || l > left ? left : l;
}

/* ---- the test user store and SASL ----------------------------------------- */

static struct xe_userstore *fuzz_store;

static inline void
fuzz_add_user(const char *jid, const char *password, bool disabled)
{
    struct xe_user *u = calloc(1, sizeof(*u));
    char *err = NULL;

    snprintf(u->jid, sizeof(u->jid), "%s", jid);
    u->created = u->modified = 1700000000;
    u->disabled = disabled;
    if (xe_user_set_password(u, password, strlen(password), FUZZ_ITERATIONS) != 0 ||
        xe_userstore_put(fuzz_store, u, false, &err) != 0) {
        fprintf(stderr, "fuzz: cannot add %s: %s\n", jid, err ? err : "?");
        abort();
    }
    free(u);
}

/* Open a fresh store in the temporary directory, add the test users, and
 * initialise Cyrus SASL over it. Returns the store's path. */
static inline const char *
fuzz_sasl_setup(void)
{
    static char path[600];
    char *err = NULL;

    if (fuzz_store)
        return path;
    snprintf(path, sizeof(path), "%s/users", fuzz_tmpdir());
    if (xe_userstore_open(path, false, 16, &fuzz_store, &err) != 0) {
        fprintf(stderr, "fuzz: cannot open the user store: %s\n", err ? err : "?");
        abort();
    }
    fuzz_add_user(FUZZ_USER, FUZZ_PASSWORD, false);
    fuzz_add_user(FUZZ_DISABLED_USER, FUZZ_DISABLED_PASSWORD, true);
    if (xe_sasl_global_init(fuzz_store, "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN",
                            FUZZ_ITERATIONS, &err) != 0) {
        fprintf(stderr, "fuzz: xe_sasl_global_init: %s\n", err ? err : "?");
        abort();
    }
    return path;
}

/* libFuzzer's entry points, defined by each target */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
