/* xedge: the SASL mechanisms xedge knows. See mech.h. */
#include "mech.h"
#include "xelimits.h"

#include <stdio.h>
#include <string.h>

#define M(name, flags, about)                                                            \
    {                                                                                    \
        name, sizeof(name) - 1, flags, about                                             \
    }
#define P(name, flags, about)                                                            \
    {                                                                                    \
        name, sizeof(name) - 1 - 5, flags, about                                         \
    }

const struct xe_mech xe_mechs[XE_MECH_COUNT] = {
    P("SCRAM-SHA-256-PLUS", XE_MECH_DEFAULT | XE_MECH_PLUS,
      "SCRAM-SHA-256 bound to the TLS channel (RFC 7677, RFC 5802)"),
    P("SCRAM-SHA-1-PLUS", XE_MECH_DEFAULT | XE_MECH_PLUS,
      "SCRAM-SHA-1 bound to the TLS channel (RFC 5802)"),
    M("SCRAM-SHA-256", XE_MECH_DEFAULT | XE_MECH_PEER, "SCRAM-SHA-256 (RFC 7677)"),
    M("SCRAM-SHA-1", XE_MECH_DEFAULT | XE_MECH_PEER, "SCRAM-SHA-1 (RFC 5802)"),
    M("PLAIN", XE_MECH_DEFAULT | XE_MECH_TLS,
      "the password under TLS, checked against the SCRAM secrets (RFC 4616)"),
    /* SCRAM-SHA-512 only when configured: a user whose password was set (or
     * imported) without a SHA-512 secret could not log in with it, and
     * clients that support it prefer it */
    P("SCRAM-SHA-512-PLUS", XE_MECH_PLUS, "SCRAM-SHA-512 bound to the TLS channel"),
    M("SCRAM-SHA-512", XE_MECH_PEER, "SCRAM-SHA-512"),
    /* legacy: a plaintext-equivalent is kept only for the users they are for */
    M("DIGEST-MD5", XE_MECH_LEGACY | XE_MECH_PEER,
      "legacy (RFC 2831, historic): users with a plaintext-equivalent"),
    M("CRAM-MD5", XE_MECH_LEGACY, "legacy (RFC 2195): users with a plaintext-equivalent"),
    M("ANONYMOUS", XE_MECH_ANON, "no account, a temporary JID (RFC 4505)"),
    M("EXTERNAL", XE_MECH_CERT,
      "a client certificate from the domain's client_ca (XEP-0178)"),
};

bool
xe_mech_name_ok(const char *name)
{
    size_t l = strlen(name);

    if (l == 0 || l > XE_SASL2_MAX_MECH)
        return false;
    for (; *name; name++)
        if (!((*name >= 'A' && *name <= 'Z') || (*name >= '0' && *name <= '9') ||
              *name == '-' || *name == '_'))
            return false;
    return true;
}

const struct xe_mech *
xe_mech_find(const char *name)
{
    for (size_t i = 0; i < XE_MECH_COUNT; i++)
        if (strcmp(xe_mechs[i].name, name) == 0)
            return &xe_mechs[i];
    return NULL;
}

void
xe_mech_flag_words(unsigned flags, char *out, size_t max)
{
    static const struct {
        unsigned flag;
        const char *word;
    } words[] = {
        {XE_MECH_DEFAULT, "default"},  {XE_MECH_PLUS, "channel-binding"},
        {XE_MECH_TLS, "tls-only"},     {XE_MECH_CERT, "client-certificate"},
        {XE_MECH_PEER, "peer-secret"}, {XE_MECH_LEGACY, "legacy"},
        {XE_MECH_ANON, "anonymous"},
    };
    size_t off = 0;

    if (max == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        int n;
        if (!(flags & words[i].flag))
            continue;
        n = snprintf(out + off, max - off, "%s%s", off ? "," : "", words[i].word);
        if (n < 0 || (size_t)n >= max - off)
            return;
        off += (size_t)n;
    }
    if (off == 0)
        snprintf(out, max, "-");
}

void
xe_mech_list(unsigned flags, char *out, size_t max)
{
    size_t off = 0;

    if (max == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < XE_MECH_COUNT; i++) {
        int n;
        if ((xe_mechs[i].flags & flags) != flags)
            continue;
        n = snprintf(out + off, max - off, "%s%s", off ? ", " : "", xe_mechs[i].name);
        if (n < 0 || (size_t)n >= max - off)
            return;
        off += (size_t)n;
    }
}
