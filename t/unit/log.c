/* Unit tests: the log's per-thread line buffer (src/core/log.c): nothing
 * written before the flush, the lines in order, a warning at once after what
 * waits, a full buffer written before it overflows with whole lines only, the
 * stop's flush, and a crash or an abort that still writes the lines. */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

#if defined(__SANITIZE_ADDRESS__)
#define XE_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XE_UNDER_ASAN 1
#endif
#endif
#ifndef XE_UNDER_ASAN
#define XE_UNDER_ASAN 0
#endif

static char path[4096];

/* fd 2 onto a fresh empty file */
static void
fresh(void)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    dup2(fd, STDERR_FILENO);
    close(fd);
}

static size_t
written(void)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static char *
slurp(void)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Every line of the file whole: a timestamp, a level, a newline. */
static bool
whole_lines(size_t *n_r)
{
    char *p = slurp(), *nl;
    size_t n = 0;

    for (; *p; p = nl + 1) {
        if ((nl = strchr(p, '\n')) == NULL ||
            !(p[4] == '-' && strstr(p, " level=") && strstr(p, " level=") < nl))
            return false;
        n++;
    }
    *n_r = n;
    return true;
}

static volatile int *volatile fault_at; /* NULL */

static int
crash_child(bool by_abort)
{
    pid_t pid = fork();
    int st = 0;

    if (pid == 0) {
        xe_log_buffer_start();
        xe_info("event=before-crash n=1");
        xe_info("event=before-crash n=2");
        if (by_abort)
            abort();
#if XE_UNDER_ASAN
        /* ASan owns SIGSEGV, SIGBUS and SIGFPE (it reports the fault and
         * exits, our handler never runs); SIGILL is left to the program */
        raise(SIGILL);
#else
        *fault_at = 1; /* a fault */
#endif
        _exit(0);
    }
    waitpid(pid, &st, 0);
    return st;
}

int
main(void)
{
    const char *dir = tap_mkdtemp("log");
    int saved = dup(STDERR_FILENO), st;
    size_t before, lines;
    char *all;

    if (dir == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/err", dir);
    xe_log_level = XE_LOG_INFO;

    fresh();
    xe_info("event=plain n=1");
    ok(strstr(slurp(), "event=plain n=1\n") != NULL,
       "without a buffer a line is written at once");

    fresh();
    xe_log_buffer_start();
    xe_info("event=one");
    xe_info("event=two");
    is_int(written(), 0, "buffered: info lines wait for the flush");
    xe_log_flush();
    all = slurp();
    ok(strstr(all, "event=one\n") && strstr(all, "event=two\n") &&
           strstr(all, "event=one") < strstr(all, "event=two"),
       "the flush writes them, in order");
    before = written();
    xe_log_flush();
    is_int(written(), before, "a second flush writes nothing");

    fresh();
    xe_info("event=three");
    xe_warn("event=warned");
    all = slurp();
    ok(strstr(all, "event=three\n") && strstr(all, "event=warned\n") &&
           strstr(all, "event=three") < strstr(all, "event=warned"),
       "a warning goes out at once, after the line that waited");
    fresh();
    xe_info("event=four");
    xe_err("event=failed");
    ok(strstr(slurp(), "event=failed\n") != NULL, "an error too");
    xe_log_level = XE_LOG_DEBUG;
    fresh();
    xe_debug("event=detail");
    is_int(written(), 0, "debug lines wait like info lines");
    xe_log_flush();
    xe_log_level = XE_LOG_INFO;

    /* more than the buffer holds, with no flush: written as it fills */
    fresh();
    {
        char pad[301];
        size_t n = 0;
        memset(pad, 'x', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = '\0';
        for (int i = 0; i < 200; i++) /* about 70 KiB */
            xe_info("event=fill i=%d pad=%s", i, pad);
        ok(written() > 0 && written() <= 200 * 400,
           "a full buffer is written before it overflows");
        ok(whole_lines(&n) && n > 0 && n < 200, "whole lines only (%zu so far)", n);
        xe_log_flush();
        ok(whole_lines(&n) && n == 200, "all 200 after the flush, each whole");
        all = slurp();
        ok(strstr(all, "i=0 ") < strstr(all, "i=100 ") &&
               strstr(all, "i=100 ") < strstr(all, "i=199 "),
           "in order across the writes");
    }
    {
        char big[4000];
        memset(big, 'y', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        fresh();
        xe_info("event=long v=%s", big);
        xe_log_flush();
        ok(whole_lines(&lines) && lines == 1, "a line cut at the line limit still ends");
    }

    fresh();
    xe_info("event=at-stop");
    xe_log_buffer_stop();
    ok(strstr(slurp(), "event=at-stop\n") != NULL, "the stop writes what waits");
    fresh();
    xe_info("event=after-stop");
    ok(strstr(slurp(), "event=after-stop\n") != NULL, "and lines go out at once again");

    fresh();
    st = crash_child(false);
    all = slurp();
    ok(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "the child crashed");
    ok(strstr(all, "n=1\n") && strstr(all, "n=2\n"), "its buffered lines were written");
    fresh();
    st = crash_child(true);
    all = slurp();
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "an abort still ends by SIGABRT");
    ok(strstr(all, "n=1\n") && strstr(all, "n=2\n"), "its buffered lines were written");

    dup2(saved, STDERR_FILENO);
    rm_rf(dir);
    return tap_done();
}
