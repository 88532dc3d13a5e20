/* xedge: nodeprep and nameprep of a JID's parts with ICU (jidprep.h). */
#include "jidprep.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <unicode/urename.h>
#include <unicode/uidna.h>
#include <unicode/ustring.h>
#include <unicode/usprep.h>

enum { PREP_NODE, PREP_NAME, PREP_N };

static UStringPrepProfile *profiles[PREP_N];
static pthread_once_t profiles_once = PTHREAD_ONCE_INIT;

/* ICU keeps an opened profile in its cache for the process; usprep_prepare
 * on one profile is safe from several threads. */
static void
open_profiles(void)
{
    UErrorCode err = U_ZERO_ERROR;

    profiles[PREP_NODE] = usprep_openByType(USPREP_RFC3920_NODEPREP, &err);
    if (U_FAILURE(err))
        profiles[PREP_NODE] = NULL;
    err = U_ZERO_ERROR;
    profiles[PREP_NAME] = usprep_openByType(USPREP_RFC3491_NAMEPREP, &err);
    if (U_FAILURE(err))
        profiles[PREP_NAME] = NULL;
}

static const char *
icu_why(UErrorCode err)
{
    switch (err) {
    case U_STRINGPREP_PROHIBITED_ERROR:
        return "a character the profile prohibits";
    case U_STRINGPREP_CHECK_BIDI_ERROR:
        return "right-to-left and left-to-right characters mixed (RFC 3454 section 6)";
    case U_INVALID_CHAR_FOUND:
    case U_ILLEGAL_CHAR_FOUND:
        return "not valid UTF-8";
    case U_BUFFER_OVERFLOW_ERROR:
    case U_STRING_NOT_TERMINATED_WARNING:
        return "longer than 1023 bytes once prepared";
    default:
        return "the profile refused it";
    }
}

static int
prep_profile(int which, const char *in, size_t inlen, char *out, size_t outmax,
             const char **why_r)
{
    UChar src[XE_JIDPREP_PART_MAX + 1], dst[XE_JIDPREP_PART_MAX + 1];
    int32_t srclen = 0, dstlen, outlen = 0;
    UErrorCode err = U_ZERO_ERROR;
    const char *why = "empty";
    int r = -1;

    if (inlen == 0)
        goto out;
    why = "longer than 1023 bytes";
    if (inlen > XE_JIDPREP_PART_MAX)
        goto out;
    why = "a NUL byte";
    if (memchr(in, '\0', inlen) != NULL)
        goto out;
    pthread_once(&profiles_once, open_profiles);
    why = "the stringprep profile could not be loaded (ICU data)";
    if (profiles[which] == NULL)
        goto out;
    u_strFromUTF8(src, XE_JIDPREP_PART_MAX + 1, &srclen, in, (int32_t)inlen, &err);
    if (U_FAILURE(err) || srclen > XE_JIDPREP_PART_MAX) {
        why = U_FAILURE(err) ? icu_why(err) : "longer than 1023 characters";
        goto out;
    }
    dstlen = usprep_prepare(profiles[which], src, srclen, dst, XE_JIDPREP_PART_MAX + 1,
                            USPREP_ALLOW_UNASSIGNED, NULL, &err);
    if (U_FAILURE(err) || dstlen > XE_JIDPREP_PART_MAX) {
        why = U_FAILURE(err) ? icu_why(err) : "longer than 1023 characters once prepared";
        goto out;
    }
    why = "empty once prepared";
    if (dstlen == 0)
        goto out;
    u_strToUTF8(
        out,
        (int32_t)(outmax < XE_JIDPREP_PART_MAX + 1 ? outmax : XE_JIDPREP_PART_MAX + 1),
        &outlen, dst, dstlen, &err);
    if (U_FAILURE(err) || err == U_STRING_NOT_TERMINATED_WARNING ||
        (size_t)outlen >= outmax || outlen > XE_JIDPREP_PART_MAX) {
        why = "longer than 1023 bytes once prepared";
        goto out;
    }
    out[outlen] = '\0';
    r = 0;
out:
    if (r != 0 && why_r != NULL)
        *why_r = why;
    return r;
}

/* ASCII: nodeprep maps A-Z to a-z (table B.2) and changes nothing else
 * (NFKC keeps ASCII); it prohibits controls (C.2.1), the space (C.1.1) and
 * " & ' / : < > @ (appendix A.5). Nameprep likewise lowers and keeps the
 * rest; the domain's own checks (no space, control, '@' or '/') are the
 * caller's. So nothing in ASCII needs ICU. -1 when IN is not all ASCII. */
static int
prep_ascii(int which, const char *in, size_t inlen, char *out, size_t outmax,
           const char **why_r, bool *ascii_r)
{
    size_t i;

    *ascii_r = false;
    for (i = 0; i < inlen; i++)
        if ((unsigned char)in[i] >= 0x80)
            return -1;
    *ascii_r = true;
    if (inlen == 0 || inlen > XE_JIDPREP_PART_MAX || inlen >= outmax) {
        *why_r = inlen == 0 ? "empty" : "longer than 1023 bytes";
        return -1;
    }
    for (i = 0; i < inlen; i++) {
        unsigned char u = (unsigned char)in[i];
        if (u < 0x20 || u == 0x7f ||
            (which == PREP_NODE && strchr(" \"&'/:<>@", u) != NULL)) {
            *why_r = u < 0x20 || u == 0x7f ? "a control character"
                                           : "a character the profile prohibits";
            return -1;
        }
        out[i] = (char)(u >= 'A' && u <= 'Z' ? u - 'A' + 'a' : u);
    }
    out[inlen] = '\0';
    return 0;
}

static int
prep(int which, const char *in, size_t inlen, char *out, size_t outmax,
     const char **why_r)
{
    const char *why = NULL;
    bool ascii;
    int r;

    if ((r = prep_ascii(which, in, inlen, out, outmax, &why, &ascii)) == 0 || ascii) {
        if (r != 0 && why_r != NULL)
            *why_r = why;
        return r;
    }
    return prep_profile(which, in, inlen, out, outmax, why_r);
}

int
xe_jidprep_node(const char *in, size_t inlen, char *out, size_t outmax,
                const char **why_r)
{
    return prep(PREP_NODE, in, inlen, out, outmax, why_r);
}

int
xe_jidprep_domain(const char *in, size_t inlen, char *out, size_t outmax,
                  const char **why_r)
{
    return prep(PREP_NAME, in, inlen, out, outmax, why_r);
}

/* Whether IN has a label in ACE form (xn--: an A-label, RFC 5890). */
static bool
has_ace_label(const char *in, size_t inlen)
{
    for (size_t i = 0; i + 4 <= inlen; i++)
        if ((i == 0 || in[i - 1] == '.') && strncasecmp(in + i, "xn--", 4) == 0)
            return true;
    return false;
}

static UIDNA *uts46;
static pthread_once_t uts46_once = PTHREAD_ONCE_INIT;

static void
open_uts46(void)
{
    UErrorCode err = U_ZERO_ERROR;

    uts46 = uidna_openUTS46(UIDNA_DEFAULT, &err);
    if (U_FAILURE(err))
        uts46 = NULL;
}

int
xe_jidprep_domain_ace(const char *in, size_t inlen, char *out, size_t outmax,
                      const char **why_r)
{
    char u[XE_JIDPREP_PART_MAX + 1];
    UIDNAInfo info = UIDNA_INFO_INITIALIZER;
    UErrorCode err = U_ZERO_ERROR;
    int32_t n;

    if (!has_ace_label(in, inlen))
        return xe_jidprep_domain(in, inlen, out, outmax, why_r);
    if (inlen > XE_JIDPREP_PART_MAX) {
        if (why_r)
            *why_r = "longer than 1023 bytes";
        return -1;
    }
    pthread_once(&uts46_once, open_uts46);
    if (uts46 == NULL) {
        if (why_r)
            *why_r = "the IDNA data could not be loaded (ICU data)";
        return -1;
    }
    n = uidna_nameToUnicodeUTF8(uts46, in, (int32_t)inlen, u, (int32_t)sizeof(u) - 1,
                                &info, &err);
    if (U_FAILURE(err) || n < 0 || n >= (int32_t)sizeof(u) || info.errors != 0) {
        if (why_r)
            *why_r = "an A-label (xn--) that does not decode (IDNA, UTS #46)";
        return -1;
    }
    u[n] = '\0';
    return xe_jidprep_domain(u, (size_t)n, out, outmax, why_r);
}

int
xe_jidprep_node_profile(const char *in, size_t inlen, char *out, size_t outmax,
                        const char **why_r)
{
    return prep_profile(PREP_NODE, in, inlen, out, outmax, why_r);
}
