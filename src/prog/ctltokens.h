/* xedgectl user tokens: the FAST tokens of a user (tokens.h). */
#ifndef XE_CTLTOKENS_H
#define XE_CTLTOKENS_H

/* xedgectl user tokens list JID | revoke JID [USER-AGENT-ID] (argv: the
 * arguments after "tokens"). Returns xedgectl's exit status. */
int xe_ctltokens_main(const char *config, int argc, char **argv);

#endif
