/* Unit tests for src/core/metrics.c: series, label folding, the exposition. */
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "tap.h"

static char *
render(void)
{
    static char text[65536];
    struct xe_buf b;

    xe_buf_init(&b, 0);
    xe_metrics_render(&b);
    snprintf(text, sizeof(text), "%.*s", (int)b.len, (const char *)b.data);
    xe_buf_free(&b);
    return text;
}

static void
gauges(void *ctx, struct xe_buf *out)
{
    xe_buf_appendf(out, "test_gauge %d\n", *(int *)ctx);
}

int
main(void)
{
    char name[32], *t;
    int g = 7;

    xe_metrics_reset();
    xe_metrics_allow_label("SCRAM-SHA-256");
    xe_metrics_inc(XE_M_LOGINS, "SCRAM-SHA-256", "success");
    xe_metrics_inc(XE_M_LOGINS, "SCRAM-SHA-256", "success");
    xe_metrics_inc(XE_M_LOGINS, "SCRAM-SHA-256", "not-authorized");
    xe_metrics_inc(XE_M_LOGINS, "X-CHOSEN-BY-A-PEER", "invalid-mechanism");
    xe_metrics_bytes(true, 1000);
    xe_metrics_bytes(true, 234);
    xe_metrics_inc(XE_M_TLS_FAILED, NULL, NULL);
    xe_metrics_login_duration(3);
    xe_metrics_login_duration(700);
    t = render();
    ok(strstr(t, "xedge_logins_total{mechanism=\"SCRAM-SHA-256\",result=\"success\","
                 "transport=\"other\"} 2\n") != NULL,
       "a labelled counter, added twice");
    ok(strstr(t, "xedge_logins_total{mechanism=\"SCRAM-SHA-256\",result=\"not-"
                 "authorized\",transport=\"other\"} "
                 "1\n") != NULL,
       "another result: its own series");
    ok(strstr(
           t,
           "mechanism=\"other\",result=\"invalid-mechanism\",transport=\"other\"} 1\n") !=
               NULL &&
           strstr(t, "X-CHOSEN") == NULL,
       "a mechanism name a peer chose is counted as \"other\"");
    ok(strstr(t, "xedge_bytes_total{direction=\"up\"} 1234\n") != NULL, "deltas add up");
    ok(strstr(t, "xedge_tls_handshake_failures_total 1\n") != NULL,
       "a counter without labels");
    ok(strstr(t, "# TYPE xedge_lockouts_total counter\n") != NULL,
       "a family with no series yet still has its TYPE line");
    ok(strstr(t, "xedge_login_duration_seconds_bucket{le=\"0.005\"} 1\n") != NULL &&
           strstr(t, "xedge_login_duration_seconds_bucket{le=\"0.5\"} 1\n") != NULL &&
           strstr(t, "xedge_login_duration_seconds_bucket{le=\"1\"} 2\n") != NULL &&
           strstr(t, "xedge_login_duration_seconds_bucket{le=\"+Inf\"} 2\n") != NULL,
       "the histogram's buckets are cumulative");
    ok(strstr(t, "xedge_login_duration_seconds_sum 0.703\n") != NULL &&
           strstr(t, "xedge_login_duration_seconds_count 2\n") != NULL,
       "... with its sum (seconds) and count");
    xe_metrics_set_gauges(gauges, &g);
    ok(strstr(render(), "test_gauge 7\n") != NULL, "the glue's gauges are rendered last");
    xe_metrics_set_gauges(NULL, NULL);

    /* our own label values are kept, but a family holds a bounded number of
     * series: the rest are folded into one */
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "backend-%d", i);
        xe_metrics_inc(XE_M_BACKEND_FAILED, name, NULL);
    }
    t = render();
    ok(strstr(t, "xedge_backend_failures_total{backend=\"backend-62\"} 1\n") != NULL,
       "the first series are kept");
    ok(strstr(t, "backend=\"backend-150\"") == NULL &&
           strstr(t, "xedge_backend_failures_total{backend=\"other\"} 137\n") != NULL,
       "past the bound, the rest are counted together as \"other\"");
    xe_metrics_inc(XE_M_STREAM_ERRORS, "bad\"value\\", NULL);
    ok(strstr(render(), "condition=\"bad\\\"value\\\\\"") != NULL,
       "quotes and backslashes in a label value are escaped");
    return tap_done();
}
