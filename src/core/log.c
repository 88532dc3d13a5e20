/* xedge: logging, one line per event. See log.h. */
#include "config.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <sys/time.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>
#endif

_Atomic int xe_log_level = XE_LOG_INFO;
_Thread_local int xe_log_worker = -1;
static int log_to = XE_LOG_TO_STDERR;

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
    /* one write per line, so lines from concurrent writers do not interleave */
    fprintf(stderr, "%s\n", line);
}
