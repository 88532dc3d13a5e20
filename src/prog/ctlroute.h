/* xedgectl user where (doc/pool-routing.md). */
#ifndef XE_CTLROUTE_H
#define XE_CTLROUTE_H

/* xedgectl user where JID (argv: the arguments after "where"): prints the
 * user's home, pin and why. Returns xedgectl's exit status. */
int xe_ctlroute_where(const char *config, int argc, char **argv);

#endif
