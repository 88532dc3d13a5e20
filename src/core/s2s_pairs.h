/* xedge: federation's pair routing (sans-IO): how the glue's streams find
 * each other, by hashed lookups instead of scans of every connection.
 *
 * Every stream is known by its id (unique, never 0) and carries the
 * caller's pointer. Three relations are kept:
 *   - by id: a verification stream names the IN stream that asked by its
 *     id, so that a stream that closed leaves no dangling pointer;
 *   - by pair: the one OUT stream (ours to a remote server) and the one
 *     LINK stream (ours to a backend) of a (local, remote) pair;
 *   - the BACKEND streams waiting on (or pumped into) an OUT stream.
 * A stream that is closing is hidden (xe_s2s_pairs_hide: no longer found by
 * id or pair, so that a new one can take its pair) but keeps its BACKENDs
 * until it is removed. No I/O, no clock; not thread-safe (one loop). */
#ifndef XE_S2S_PAIRS_H
#define XE_S2S_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#include "s2s.h"

struct xe_s2s_pairs;

struct xe_s2s_pairs *xe_s2s_pairs_new(void);
/* (every stream forgotten; the callers' pointers are theirs) */
void xe_s2s_pairs_free(struct xe_s2s_pairs **pp);

/* Stream ID of KIND, the caller's V. -1: id 0, V NULL or the id taken. */
int xe_s2s_pairs_add(struct xe_s2s_pairs *p, uint64_t id, enum xe_s2s_kind kind, void *v);
/* Not found by id or pair any more; its BACKENDs (an OUT) and its OUT (a
 * BACKEND) stay until xe_s2s_pairs_remove. */
void xe_s2s_pairs_hide(struct xe_s2s_pairs *p, uint64_t id);
/* Forgotten: its id, its pair, its OUT; an OUT's BACKENDs have none then. */
void xe_s2s_pairs_remove(struct xe_s2s_pairs *p, uint64_t id);
/* The stream (not hidden) with this id, else NULL. */
void *xe_s2s_pairs_get(struct xe_s2s_pairs *p, uint64_t id);
size_t xe_s2s_pairs_count(const struct xe_s2s_pairs *p);

/* Stream ID (an OUT or a LINK) is its kind's stream for (LOCAL, REMOTE).
 * -1: not such a stream, hidden, bound already, or the pair has one. */
int xe_s2s_pairs_bind(struct xe_s2s_pairs *p, uint64_t id, const char *local,
                      const char *remote);
/* The stream of KIND (OUT or LINK) for (LOCAL, REMOTE), else NULL. */
void *xe_s2s_pairs_find(struct xe_s2s_pairs *p, enum xe_s2s_kind kind, const char *local,
                        const char *remote);

/* BACKEND stream B uses OUT stream O (0: none any more). -1: not a
 * BACKEND, or O not an OUT. */
int xe_s2s_pairs_attach(struct xe_s2s_pairs *p, uint64_t b, uint64_t o);
/* B's OUT (hidden or not), else NULL. */
void *xe_s2s_pairs_out(struct xe_s2s_pairs *p, uint64_t b);
/* O's BACKENDs, in the order they were attached: the I-th, NULL past the
 * end; and how many. */
void *xe_s2s_pairs_backend(struct xe_s2s_pairs *p, uint64_t o, size_t i);
size_t xe_s2s_pairs_n_backends(struct xe_s2s_pairs *p, uint64_t o);
/* O's first BACKEND, detached from it (NULL: none left). */
void *xe_s2s_pairs_detach_first(struct xe_s2s_pairs *p, uint64_t o);
/* Every BACKEND of FROM moves to TO (an OUT that takes over). */
int xe_s2s_pairs_move(struct xe_s2s_pairs *p, uint64_t from, uint64_t to);

/* FN on every stream of KIND (hidden ones too), oldest first; FN may not
 * add or remove streams. */
void xe_s2s_pairs_each(struct xe_s2s_pairs *p, enum xe_s2s_kind kind,
                       void (*fn)(void *v, void *ctx), void *ctx);

#endif
