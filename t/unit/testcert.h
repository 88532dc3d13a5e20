/* Certificates made at test time for the unit tests with TLS (tls.c,
 * stream.c): self-signed, valid from an hour ago for a day, written as PEM
 * beside each other in a temporary directory. */
#ifndef XE_TESTCERT_H
#define XE_TESTCERT_H

#include <stdbool.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* A self-signed certificate with CN = domain, the key KEY (taken: freed
 * here, NULL fails), serial number SERIAL, the subjectAltName SANS
 * (OpenSSL's syntax, "DNS:a.test"; NULL: none), signed with MD. Written to
 * DIR/DOMAIN.crt and DIR/DOMAIN.key, the paths returned in cert_path and
 * key_path (LEN bytes each). */
static inline bool
tap_self_signed(const char *dir, const char *domain, EVP_PKEY *key, long serial,
                const char *sans, const EVP_MD *md, char *cert_path, char *key_path,
                size_t len)
{
    X509 *x = X509_new();
    X509_NAME *name;
    X509_EXTENSION *ext;
    X509V3_CTX v3;
    char san[512];
    FILE *f;
    bool ok_ = false;

    if (key == NULL || x == NULL)
        goto out;
    snprintf(cert_path, len, "%s/%s.crt", dir, domain);
    snprintf(key_path, len, "%s/%s.key", dir, domain);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)domain,
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (sans != NULL) {
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        snprintf(san, sizeof(san), "%s", sans);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        if (ext == NULL)
            goto out;
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(x, key, md) == 0)
        goto out;
    if ((f = fopen(cert_path, "w")) == NULL)
        goto out;
    PEM_write_X509(f, x);
    fclose(f);
    if ((f = fopen(key_path, "w")) == NULL)
        goto out;
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    ok_ = true;
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return ok_;
}

#endif
