/* Fuzz target: the XEP-0227 reader of `xedgectl user import`
 * (src/prog/import_xep227.h) and its sink (src/prog/import.h), against the test store.
 *
 * Input: one flags byte, then the document.
 * flags bit 0: --replace
 *       bits 1-7: bytes per read (0: 64 KiB)
 * The sink runs as --dry-run (nothing is written, so every input meets the
 * same store), deriving secrets with the test store's low PBKDF2 count.
 *
 * Checked: the reader returns 0 or 1 (the store never fails here), every
 * record is counted once (the counts never exceed the records begun), and
 * the store is unchanged (alice's password still checks). */
#define _GNU_SOURCE /* fmemopen */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "import.h"
#include "import_xep227.h"

static FILE *devnull;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_logs();
    fuzz_sasl_setup();
    devnull = fopen("/dev/null", "w");
    FUZZ_CHECK(devnull != NULL);
    return 0;
}

/* "<user" in the input: an upper bound of the records a run may count */
static unsigned long
users_begun(const uint8_t *data, size_t size)
{
    unsigned long n = 0;

    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == '<' && data[i + 1] != '/')
            n++;
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xe_import_opts o = {.dry_run = true, .iterations = FUZZ_ITERATIONS};
    struct xe_import_sink *sink;
    struct xe_import_stats st;
    struct xe_user *u;
    unsigned flags;
    FILE *in;
    int r;

    if (!fuzz_take_flags(&data, &size, &flags))
        return 0;
    o.replace = flags & 1;
    o.err = devnull;
    xe_import_xep227_chunk = flags >> 1;
    in = size > 0 ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "r");
    FUZZ_CHECK(in != NULL);
    sink = xe_import_sink_new(fuzz_store, &o);
    r = xe_import_xep227(sink, in, NULL, "fuzz");
    xe_import_stats(sink, &st);
    xe_import_sink_free(&sink);
    fclose(in);
    FUZZ_CHECK(r == 0 || r == 1);
    FUZZ_CHECK(st.added + st.replaced + st.skipped + st.failed <=
               users_begun(data, size));
    u = calloc(1, sizeof(*u));
    FUZZ_CHECK(u != NULL &&
               xe_userstore_get(fuzz_store, FUZZ_USER, u, NULL) == XE_US_OK &&
               xe_user_check_password(u, FUZZ_PASSWORD, strlen(FUZZ_PASSWORD)));
    free(u);
    return 0;
}
