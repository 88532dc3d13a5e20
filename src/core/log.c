/* xedge: logging, one line per event. See log.h. */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>
#endif

_Atomic int xe_log_level = XE_LOG_INFO;
_Thread_local int xe_log_worker = -1;
static int log_to = XE_LOG_TO_STDERR;

/* the calling thread's buffered lines (xe_log_buffer_start); NULL: none */
static _Thread_local char *lbuf;
static _Thread_local size_t lbuf_len;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int level_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

int
xe_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int
xe_log_to_parse(const char *name)
{
    static const char *const names[] = {"stderr", "syslog", "journal"};

    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void
xe_log_open(int to, int facility)
{
    if (to == XE_LOG_TO_SYSLOG)
        openlog("xedge", LOG_PID | LOG_NDELAY, facility);
    log_to = to;
}

/* All of P to stderr (async-signal-safe); a failed write drops the rest, as
 * stdio does. */
static void
write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void
xe_log_flush(void)
{
    if (lbuf != NULL && lbuf_len > 0) {
        size_t n = lbuf_len;
        lbuf_len = 0;
        write_all(lbuf, n);
    }
}

/* A crash: the crashing thread's lines first, then the handler that was
 * there before (the default: the core dump; a sanitizer's report). */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static struct sigaction fatal_old[sizeof(fatal_signals) / sizeof(fatal_signals[0])];

static void
on_fatal(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    if (lbuf != NULL && lbuf_len > 0) {
        write_all(lbuf, lbuf_len);
        lbuf_len = 0;
    }
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
        if (fatal_signals[i] == sig)
            sigaction(sig, &fatal_old[i], NULL);
    /* a fault happens again on return, now to the old handler; a signal
     * sent (kill, raise, abort) is sent again */
    if (info == NULL || info->si_code <= 0 || sig == SIGABRT)
        raise(sig);
}

static void
install_fatal(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
        if (sigaction(fatal_signals[i], &sa, &fatal_old[i]) != 0)
            fatal_old[i].sa_handler = SIG_DFL;
}

void
xe_log_buffer_start(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    if (lbuf != NULL)
        return;
    lbuf = malloc(XE_LOG_BUFFER);
    lbuf_len = 0;
    if (lbuf != NULL)
        pthread_once(&once, install_fatal);
}

void
xe_log_buffer_stop(void)
{
    xe_log_flush();
    free(lbuf);
    lbuf = NULL;
    lbuf_len = 0;
}

void
xe_log(int level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n, t;

    if (level > xe_log_level)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    t = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, (long)(tv.tv_usec / 1000));
    n = t + snprintf(line + t, sizeof(line) - (size_t)t, "level=%s ", level_names[level]);
    if (xe_log_worker >= 0) /* workers > 1: which worker thread logs */
        n += snprintf(line + n, sizeof(line) - (size_t)n, "worker=%d ", xe_log_worker);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* one event, one line: a peer's bytes that reach a field cannot start
     * another line or carry terminal escapes */
    for (char *p = line + n; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    /* syslog and the journal keep their own time: the line from level= on */
    switch (log_to) {
    case XE_LOG_TO_SYSLOG:
        syslog(level_prio[level], "%s", line + t);
        return;
#ifdef HAVE_LIBSYSTEMD
    case XE_LOG_TO_JOURNAL:
        if (sd_journal_send("MESSAGE=%s", line + t, "PRIORITY=%d", level_prio[level],
                            "SYSLOG_IDENTIFIER=xedge", NULL) == 0)
            return;
        break; /* no journal to write to: stderr rather than nothing */
#endif
    default:
        break;
    }
    n = (int)strlen(line);
    line[n < (int)sizeof(line) - 1 ? n++ : n - 1] = '\n'; /* (a cut line ends too) */
    if (lbuf != NULL) {
        /* buffered: whole lines only, in order; a warning or an error
         * goes out now, after the lines before it */
        if (lbuf_len + (size_t)n > XE_LOG_BUFFER)
            xe_log_flush();
        memcpy(lbuf + lbuf_len, line, (size_t)n);
        lbuf_len += (size_t)n;
        if (level <= XE_LOG_WARN)
            xe_log_flush();
        return;
    }
    /* one write per line, so lines from concurrent writers do not interleave */
    write_all(line, (size_t)n);
}
