/* xedge: logging. One line per event, key=value fields, to stderr, syslog
 * or the systemd journal. */
#ifndef XE_LOG_H
#define XE_LOG_H

enum { XE_LOG_ERROR = 0, XE_LOG_WARN = 1, XE_LOG_INFO = 2, XE_LOG_DEBUG = 3 };
enum { XE_LOG_TO_STDERR = 0, XE_LOG_TO_SYSLOG = 1, XE_LOG_TO_JOURNAL = 2 };

extern _Atomic int xe_log_level;
/* With workers > 1, each worker thread sets its number here: its lines
 * carry worker=K after the level (-1: none). */
extern _Thread_local int xe_log_worker;
void xe_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int xe_log_level_parse(const char *name);
int xe_log_to_parse(const char *name); /* "stderr", "syslog", "journal"; -1 */
/* Send the lines to TO from now on (facility: for syslog). */
void xe_log_open(int to, int facility);

/* Buffered lines (stderr only): from xe_log_buffer_start() on, the calling
 * thread's info and debug lines wait in its own buffer (XE_LOG_BUFFER bytes)
 * and go out in one write(2) at xe_log_flush(), which its event loop calls
 * once per turn before it sleeps, and the connection layer before it writes
 * to or closes a socket (a line is out before the peer sees what it tells
 * of: operators and tests read the log after the effect); a full buffer is
 * written first, and a warn
 * or error line goes out at once, after what waits, so that the lines of
 * one thread keep their order. xe_log_buffer_stop() flushes and ends it.
 * A crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) writes the crashing
 * thread's buffer before the previous handler runs; xedge's own aborts
 * flush first. Threads that never start it write each line at once. */
#define XE_LOG_BUFFER 16384
void xe_log_buffer_start(void);
void xe_log_flush(void);
void xe_log_buffer_stop(void);

#define xe_err(...) xe_log(XE_LOG_ERROR, __VA_ARGS__)
#define xe_warn(...) xe_log(XE_LOG_WARN, __VA_ARGS__)
#define xe_info(...) xe_log(XE_LOG_INFO, __VA_ARGS__)
#define xe_debug(...)                                                                    \
    do {                                                                                 \
        if (xe_log_level >= XE_LOG_DEBUG)                                                \
            xe_log(XE_LOG_DEBUG, __VA_ARGS__);                                           \
    } while (0)

#endif
