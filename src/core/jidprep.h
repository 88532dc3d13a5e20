/* xedge: the XMPP stringprep profiles of a JID's parts (RFC 3920 appendix A
 * nodeprep, RFC 3491 nameprep; kept by RFC 6122), through ICU's usprep.
 *
 * Why ICU: it is the code Debian's Prosody runs for the same job
 * (util.encodings is built with ICU: usprep_openByType(USPREP_RFC3920_NODEPREP),
 * unassigned code points allowed), so xedge and the Prosody glue fold a
 * user's name to the same bytes, hash it to the same home and find it under
 * the same key. ASCII takes a short path that gives what the profile gives
 * (lower case; the profile's prohibited ASCII refused), so an ASCII JID is
 * what it always was. */
#ifndef XE_JIDPREP_H
#define XE_JIDPREP_H

#include <stddef.h>

/* Longest part before and after preparation, in bytes (Prosody's bound). */
#define XE_JIDPREP_PART_MAX 1023

/* Prepare the localpart IN (INLEN bytes of UTF-8) into OUT (OUTMAX bytes,
 * NUL-terminated). 0, or -1 with *why_r (static text) when the name fails
 * the profile (a prohibited or bidi-mixed character, invalid UTF-8, empty,
 * too long before or after). */
int xe_jidprep_node(const char *in, size_t inlen, char *out, size_t outmax,
                    const char **why_r);

/* The same with nameprep, for a domain (no trailing dot removed). */
int xe_jidprep_domain(const char *in, size_t inlen, char *out, size_t outmax,
                      const char **why_r);

/* The same for a domain that may be written with A-labels (xn--..., as in
 * DNS, TLS's SNI and certificates: RFC 5890): those are decoded to Unicode
 * (IDNA, UTS #46) first, so "xn--xample-9ua.test" prepares as
 * "éxample.test", the form a JID has. */
int xe_jidprep_domain_ace(const char *in, size_t inlen, char *out, size_t outmax,
                          const char **why_r);

/* The profile's own answer for IN, without the ASCII short path: for the
 * tests that hold the short path to the profile. */
int xe_jidprep_node_profile(const char *in, size_t inlen, char *out, size_t outmax,
                            const char **why_r);

#endif
