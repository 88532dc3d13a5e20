/* xedge: what conf.c, conf_listen.c and conf_pool.c share, private to them
 * (the split keeps each file under issue 14's size bound). Not for other
 * files: the public interface is conf.h. */
#ifndef XE_CONF_IMPL_H
#define XE_CONF_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "conf.h"

/* one load: the file's path (for the errors) and the first error */
struct xe_conf_ctx {
    const char *path;
    char *error;
};

int xe_conf_fail(struct xe_conf_ctx *c, const config_setting_t *s, const char *what,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int xe_conf_get_string(struct xe_conf_ctx *c, const config_setting_t *group,
                       const char *name, bool required, const char *dflt, char **out);
int xe_conf_get_uint(struct xe_conf_ctx *c, const config_setting_t *group,
                     const char *name, unsigned long long min, unsigned long long max,
                     unsigned long long dflt, unsigned long long *out);
int xe_conf_get_bool(struct xe_conf_ctx *c, const config_setting_t *group,
                     const char *name, bool dflt, bool *out);
int xe_conf_get_enum(struct xe_conf_ctx *c, const config_setting_t *g, const char *name,
                     const char *const *names, int *v);
int xe_conf_check_address(struct xe_conf_ctx *c, const config_setting_t *s,
                          const char *addr);
int xe_conf_read_secret_file(struct xe_conf_ctx *c, const config_setting_t *s,
                             const char *what, const char *path, unsigned char **secret_r,
                             size_t *len_r);
int xe_conf_load_mech_list(struct xe_conf_ctx *c, const config_setting_t *m,
                           const char *what, char ***out, size_t *n_out);

/* conf_pool.c: the "pools" list (at least one pool) into conf->pools */
int xe_conf_load_pools(struct xe_conf_ctx *c, struct xe_conf *conf,
                       const config_setting_t *root);

/* conf_listen.c */
/* A configured domain name (NAME: a domain, a component, a peer) folded
 * through nameprep (jidprep.h), as a JID's domain is: *NAME replaced by its
 * prepared form. -1 (the error names S and WHAT) for a name that fails the
 * profile or holds a character no domain has (a space, '@', '/', a quote). */
int xe_conf_prep_domain(struct xe_conf_ctx *c, const config_setting_t *s,
                        const char *what, char **name);
int xe_conf_load_listeners(struct xe_conf_ctx *c, struct xe_conf *conf,
                           const config_setting_t *root);
int xe_conf_load_routing(struct xe_conf_ctx *c, struct xe_conf *conf,
                         const config_setting_t *root);
int xe_conf_load_metrics(struct xe_conf_ctx *c, struct xe_conf *conf,
                         const config_setting_t *root);
int xe_conf_load_s2s(struct xe_conf_ctx *c, struct xe_conf *conf,
                     const config_setting_t *root);

#endif
