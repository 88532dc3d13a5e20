/* Minimal TAP producer for the unit tests (no sockets, no network). */
#ifndef XE_TAP_H
#define XE_TAP_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                                    \
    do {                                                                                 \
        int ok_c_ = (cond) ? 1 : 0;                                                      \
        printf("%s %d - ", ok_c_ ? "ok" : "not ok", ++tap_n);                            \
        printf(__VA_ARGS__);                                                             \
        printf("\n");                                                                    \
        if (!ok_c_) {                                                                    \
            tap_failed++;                                                                \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                                \
        fflush(stdout);                                                                  \
    } while (0)

#define is_int(got, want, ...)                                                           \
    do {                                                                                 \
        long long is_g_ = (long long)(got), is_w_ = (long long)(want);                   \
        ok(is_g_ == is_w_, __VA_ARGS__);                                                 \
        if (is_g_ != is_w_)                                                              \
            printf("#   got %lld, want %lld\n", is_g_, is_w_);                           \
    } while (0)

#define is_str(got, want, ...)                                                           \
    do {                                                                                 \
        const char *is_g_ = (got), *is_w_ = (want);                                      \
        int is_e_ = is_g_ && is_w_ && strcmp(is_g_, is_w_) == 0;                         \
        ok(is_e_, __VA_ARGS__);                                                          \
        if (!is_e_)                                                                      \
            printf("#   got '%s', want '%s'\n", is_g_ ? is_g_ : "(null)",                \
                   is_w_ ? is_w_ : "(null)");                                            \
    } while (0)

/* Remove a test's temporary directory tree. */
static inline void
rm_rf(const char *path)
{
    DIR *d;
    struct dirent *e;
    char sub[4096];
    struct stat st;

    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) <
                sizeof(sub))
                rm_rf(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Create a private temporary directory named after the test, under $TMPDIR
 * (or /tmp). Returns the path (static storage) or NULL after perror. */
static inline char *
tap_mkdtemp(const char *name)
{
    static char path[512];
    const char *t = getenv("TMPDIR");

    snprintf(path, sizeof(path), "%s/xe-%s-XXXXXX", t && *t ? t : "/tmp", name);
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        return NULL;
    }
    return path;
}

static inline int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
