/* Unit tests: per source address limits (src/core/addrlimit.h). No sockets: the
 * addresses are built by hand. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addrlimit.h"
#include "tap.h"

static struct sockaddr_storage
addr(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, text, &a->sin6_addr);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, text, &a->sin_addr);
    }
    return ss;
}

static enum xe_addrlimit_result
take(struct xe_addrlimit *al, const char *text, uint64_t now, char *key, size_t klen)
{
    struct sockaddr_storage ss = addr(text);
    return xe_addrlimit_acquire(al, (struct sockaddr *)&ss, now, key, klen);
}

static void
give(struct xe_addrlimit *al, const char *text, uint64_t now)
{
    struct sockaddr_storage ss = addr(text);
    xe_addrlimit_release(al, (struct sockaddr *)&ss, now);
}

static void
test_per_address(void)
{
    struct xe_addrlimit_conf c = {.max_per_address = 3, .max_entries = 1000};
    struct xe_addrlimit *al = xe_addrlimit_new(&c);
    char key[64];
    int n_ok = 0;

    for (int i = 0; i < 3; i++)
        n_ok += take(al, "192.0.2.1", 0, key, sizeof(key)) == XE_AL_OK;
    is_int(n_ok, 3, "IPv4: three connections from one address");
    is_str(key, "192.0.2.1", "IPv4: the key is the address");
    is_int(take(al, "192.0.2.1", 0, NULL, 0), XE_AL_TOO_MANY,
           "IPv4: the fourth is refused");
    is_int(take(al, "192.0.2.2", 0, NULL, 0), XE_AL_OK, "IPv4: another address is not");
    give(al, "192.0.2.1", 0);
    is_int(take(al, "192.0.2.1", 0, NULL, 0), XE_AL_OK, "IPv4: after one left, one more");
    is_int(take(al, "::ffff:192.0.2.1", 0, key, sizeof(key)), XE_AL_TOO_MANY,
           "a v4-mapped IPv6 address counts as the IPv4 one");
    is_str(key, "192.0.2.1", "v4-mapped: the key is the IPv4 address");

    n_ok = 0;
    n_ok += take(al, "2001:db8::1", 0, key, sizeof(key)) == XE_AL_OK;
    is_str(key, "2001:db8::/64", "IPv6: the key is the /64");
    n_ok += take(al, "2001:db8::ffff:1", 0, NULL, 0) == XE_AL_OK;
    n_ok += take(al, "2001:db8::abcd:ef01:2345:6789", 0, NULL, 0) == XE_AL_OK;
    is_int(n_ok, 3, "IPv6: three connections from one /64");
    is_int(take(al, "2001:db8::2", 0, NULL, 0), XE_AL_TOO_MANY,
           "IPv6: a fourth address of the same /64 is refused");
    is_int(take(al, "2001:db8:0:1::1", 0, key, sizeof(key)), XE_AL_OK,
           "IPv6: the next /64 is not");
    is_str(key, "2001:db8:0:1::/64", "IPv6: its key");
    xe_addrlimit_free(&al);
    ok(al == NULL, "free clears the pointer");
}

static void
test_rate(void)
{
    struct xe_addrlimit_conf c = {.rate = 10, .burst = 5, .max_entries = 1000};
    struct xe_addrlimit *al = xe_addrlimit_new(&c);
    int n_ok = 0;

    for (int i = 0; i < 5; i++)
        n_ok += take(al, "198.51.100.7", 1000, NULL, 0) == XE_AL_OK;
    is_int(n_ok, 5, "rate: a burst of 5 at once");
    is_int(take(al, "198.51.100.7", 1000, NULL, 0), XE_AL_TOO_FAST,
           "rate: the 6th is too fast");
    is_int(take(al, "198.51.100.8", 1000, NULL, 0), XE_AL_OK,
           "rate: another address is not");
    is_int(take(al, "198.51.100.7", 1050, NULL, 0), XE_AL_TOO_FAST,
           "rate: 50 ms later, still no token (10/s)");
    is_int(take(al, "198.51.100.7", 1100, NULL, 0), XE_AL_OK, "rate: 100 ms later, one");
    is_int(take(al, "198.51.100.7", 1100, NULL, 0), XE_AL_TOO_FAST, "rate: ... only one");
    n_ok = 0;
    for (int i = 0; i < 10; i++)
        n_ok += take(al, "198.51.100.7", 60000, NULL, 0) == XE_AL_OK;
    is_int(n_ok, 5, "rate: after a long pause, the bucket holds only the burst");
    xe_addrlimit_free(&al);
}

static void
test_bounded(void)
{
    struct xe_addrlimit_conf c = {.max_per_address = 10, .max_entries = 100};
    struct xe_addrlimit *al = xe_addrlimit_new(&c);
    char a[64];
    int n_ok = 0;

    for (int i = 0; i < 100; i++) {
        snprintf(a, sizeof(a), "10.0.%d.%d", i / 250, i % 250 + 1);
        n_ok += take(al, a, 0, NULL, 0) == XE_AL_OK;
    }
    is_int(n_ok, 100, "table: 100 addresses, each holding a connection");
    is_int((long long)xe_addrlimit_entries(al), 100, "table: 100 entries");
    is_int(take(al, "10.1.0.1", 0, NULL, 0), XE_AL_FULL,
           "table: full, a new address is refused");
    for (int i = 0; i < 100; i++) {
        snprintf(a, sizeof(a), "10.0.%d.%d", i / 250, i % 250 + 1);
        give(al, a, 0);
    }
    is_int(take(al, "10.1.0.1", 0, NULL, 0), XE_AL_OK,
           "table: once they left, a new address gets in (idle entries are swept)");
    ok(xe_addrlimit_entries(al) <= 100, "table: never above its cap (%zu)",
       xe_addrlimit_entries(al));
    xe_addrlimit_free(&al);

    c.max_per_address = 0;
    al = xe_addrlimit_new(&c);
    for (int i = 0; i < 1000; i++) {
        snprintf(a, sizeof(a), "10.2.%d.%d", i / 250, i % 250 + 1);
        take(al, a, 0, NULL, 0);
    }
    is_int((long long)xe_addrlimit_entries(al), 0,
           "no limits configured: nothing is kept");
    xe_addrlimit_free(&al);
}

/* A reload: new limits at once, the counts kept; no limits: forgotten. */
static void
test_reconfigure(void)
{
    struct xe_addrlimit_conf c = {.max_per_address = 3, .max_entries = 1000};
    struct xe_addrlimit *al = xe_addrlimit_new(&c);

    for (int i = 0; i < 3; i++)
        take(al, "192.0.2.9", 0, NULL, 0);
    c.max_per_address = 5;
    xe_addrlimit_reconfigure(al, &c);
    is_int(take(al, "192.0.2.9", 0, NULL, 0), XE_AL_OK,
           "reconfigure: a higher limit lets a fourth in");
    c.max_per_address = 2;
    xe_addrlimit_reconfigure(al, &c);
    is_int(take(al, "192.0.2.9", 0, NULL, 0), XE_AL_TOO_MANY,
           "reconfigure: a lower one counts the connections still open");
    c.max_per_address = 0;
    xe_addrlimit_reconfigure(al, &c);
    is_int((long long)xe_addrlimit_entries(al), 0,
           "reconfigure: no limits left, the table is forgotten");
    give(al, "192.0.2.9", 0); /* a connection of the old counts leaves */
    c.max_per_address = 1;
    xe_addrlimit_reconfigure(al, &c);
    is_int(take(al, "192.0.2.9", 0, NULL, 0), XE_AL_OK,
           "reconfigure: limits again, counting from nothing");
    is_int(take(al, "192.0.2.9", 0, NULL, 0), XE_AL_TOO_MANY, "... and holding");
    xe_addrlimit_free(&al);
}

int
main(void)
{
    test_per_address();
    test_reconfigure();
    test_rate();
    test_bounded();
    is_str(xe_addrlimit_result_name(XE_AL_TOO_MANY), "max_connections_per_address",
           "result names are the setting that refused");
    return tap_done();
}
