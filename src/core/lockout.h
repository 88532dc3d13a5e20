/* xedge: brute-force protection (sans-IO).
 *
 * Failed logins are counted per source address (the keys of addrlimit.h: an
 * IPv4 address, an IPv6 /64) and per account (the bare JID an attempt named,
 * whether or not it exists: the answers never depend on that). Past
 * free_failures, each failure's answer is held for a growing delay (delay_ms,
 * doubling, at most max_delay_ms); at a key's threshold the key is locked out
 * for lockout_ms: its attempts are refused without any credential being
 * checked. A key's count is forgotten after window_ms without a failure, when
 * its lockout ends, and (for an account) at a successful login.
 *
 * Memory is bounded: each kind of key has its own table of at most
 * max_entries (so that a flood of addresses cannot push the accounts out, or
 * the reverse); quiet entries expire, and a full table evicts its least
 * recently active entry (counted). Keys are printable: an account key is the
 * JID prepared as the user store keys it (xe_jid_normalize: nodeprep; as it
 * came, lower-cased (ASCII), when it is no valid JID), with every byte
 * outside printable ASCII, and '%', '=', '"', '\\', percent-escaped,
 * truncated to XE_LOCKOUT_KEY_MAX - 1 bytes. */
#ifndef XE_LOCKOUT_H
#define XE_LOCKOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XE_LOCKOUT_KEY_MAX 256
/* the text of a refused attempt's <failure/> */
#define XE_LOCKOUT_TEXT "too many failed login attempts; try again later"

enum xe_lockout_kind { XE_LOCKOUT_ADDRESS = 0, XE_LOCKOUT_ACCOUNT = 1 };

struct xe_lockout_conf {
    unsigned free_failures;     /* failures answered at once */
    unsigned delay_ms;          /* the first delay; 0 = no delays */
    unsigned max_delay_ms;      /* the delay doubles up to this */
    unsigned address_threshold; /* failures that lock an address out; 0 = never */
    unsigned account_threshold; /* failures that lock an account out; 0 = never */
    uint64_t lockout_ms;        /* how long a lockout lasts */
    uint64_t window_ms;         /* a count is forgotten after this long quiet */
    size_t max_entries;         /* per kind of key */
};

struct xe_lockout_stats {
    size_t entries, locked;
    uint64_t failures; /* counted failures */
    uint64_t lockouts; /* lockouts so far */
    uint64_t refused;  /* attempts refused while locked out */
    uint64_t evicted;  /* entries pushed out of a full table */
};

struct xe_lockout_info {
    enum xe_lockout_kind kind;
    const char *key;
    unsigned failures;
    bool locked;
    uint64_t remaining_ms; /* of the lockout */
    unsigned lockouts;     /* of this key, while it has been tracked */
};

struct xe_lockout;

struct xe_lockout *xe_lockout_new(const struct xe_lockout_conf *conf);
void xe_lockout_free(struct xe_lockout **lo);
/* New settings (a reload), for the next attempts; what is tracked stays
 * (counts, lockouts in force until their end). A smaller max_entries takes
 * effect as new keys come: the least recently active ones go then. */
void xe_lockout_reconfigure(struct xe_lockout *lo, const struct xe_lockout_conf *conf);

/* In every call, addr and account are keys, or NULL or "" for none. */

/* Is an attempt from addr naming account refused (either key locked out)?
 * Counts the refusal. *remaining_ms_r (may be NULL): the longer lockout left. */
bool xe_lockout_check(struct xe_lockout *lo, const char *addr, const char *account,
                      uint64_t now_ms, uint64_t *remaining_ms_r);
/* A failed attempt whose credentials were checked: counted against both keys
 * (a key reaching its threshold is locked out, and logged: event=lockout).
 * Returns the delay (ms) to hold the answer for: the larger of the keys'. */
unsigned xe_lockout_failure(struct xe_lockout *lo, const char *addr, const char *account,
                            uint64_t now_ms);
/* The delay for an attempt that is not counted (refused, malformed): the
 * keys' current one. */
unsigned xe_lockout_delay(struct xe_lockout *lo, const char *addr, const char *account,
                          uint64_t now_ms);
/* A successful login: the account's count is forgotten. */
void xe_lockout_success(struct xe_lockout *lo, const char *account, uint64_t now_ms);

/* Every tracked entry (with failures or a lockout), addresses first; stops
 * when fn returns non-zero. */
void xe_lockout_foreach(struct xe_lockout *lo, uint64_t now_ms,
                        int (*fn)(void *ctx, const struct xe_lockout_info *e), void *ctx);
/* Forget KEY (an address or an account key); returns the entries removed. */
size_t xe_lockout_clear(struct xe_lockout *lo, const char *key);
size_t xe_lockout_clear_all(struct xe_lockout *lo);
void xe_lockout_get_stats(struct xe_lockout *lo, uint64_t now_ms,
                          struct xe_lockout_stats *st_r);
const char *xe_lockout_kind_name(enum xe_lockout_kind k);

/* The key of the account JID (len bytes), as described above. */
void xe_lockout_account_key(const char *jid, size_t len, char out[XE_LOCKOUT_KEY_MAX]);
/* The account a SASL message of mech names (PLAIN's authcid, SCRAM's
 * client-first n=, DIGEST-MD5's username and realm, CRAM-MD5's user), as a
 * key; domain is appended to a name without '@'. "" when it names none. */
void xe_lockout_sasl_account(const char *mech, const char *msg, size_t len,
                             const char *domain, char out[XE_LOCKOUT_KEY_MAX]);

/* ---- several nodes (doc/scaling.md) ----------------------------------------
 *
 * The account counts are shared through the database: fn is called (outside
 * the lock, on the caller's thread) after a counted failure naming an
 * account (failed true), and after a success that forgot an account's
 * entry (failed false); apply sets what another node counted: failures
 * (0: forgotten) and the lockout's remaining time (0: none). The counts
 * applied never go below this node's own, and a lockout never ends early.
 * The addresses stay per node. */
typedef void (*xe_lockout_share_fn)(void *ctx, const char *account, bool failed,
                                    const struct xe_lockout_conf *conf);
void xe_lockout_set_share(struct xe_lockout *lo, xe_lockout_share_fn fn, void *ctx);
void xe_lockout_apply_account(struct xe_lockout *lo, const char *account,
                              unsigned failures, uint64_t remaining_ms, uint64_t now_ms);

#endif
