/* The link-state database of a controller: the latest link-state
 * advertisement (LSA) of every origin node, their ageing, the topology
 * version, and the routing graph they make.
 *
 * Pure bookkeeping like route.h (no I/O, no locks; the caller passes the
 * time and serialises calls), so the rules below are unit-tested directly:
 *
 * - An LSA replaces the one held for its origin only if its seq is larger.
 *   The seq of an LSA that aged out is remembered for twice its max age,
 *   so a late copy of it cannot come back; after that any seq is taken
 *   (an origin restarted with a clock set back is not shut out for long).
 * - An LSA is dropped once max_age_ms have passed since it was received.
 * - Edge u->v exists while u's LSA is held and lists the u-v link up; its
 *   capacity is what u reports it can send (out).
 * - The version grows by one whenever a change could change a route: an
 *   edge appears or disappears, or its capacity crosses LS_LOW_WATER
 *   either way. Other capacity changes keep it, so the KMs' caches of
 *   routes computed on it survive the steady trickle of reports. */
#ifndef CTL_LSDB_H
#define CTL_LSDB_H

#include "route.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_LOW_WATER (64u * 1024) /* bytes */

/* One link as its origin reports it. */
struct ls_link {
	int32_t link;  /* the caller's link index */
	uint32_t peer; /* node index of the other end */
	bool up;
	uint64_t out; /* key the origin can send on it, bytes */
	uint64_t rate_bps;
};

struct ls_lsa {
	uint64_t seq;
	uint32_t max_age_ms;
	uint64_t recv_ms; /* caller's clock when stored */
	size_t n;
	struct ls_link *links;
};

struct ls_db;

/* A database for n nodes (indices 0..n-1; rank as in rt_graph_new, copied;
 * NULL: the index) whose version starts at version0. */
int ls_db_new(struct ls_db **out, uint32_t n, const uint32_t *rank,
              uint64_t version0) __attribute__((warn_unused_result));
void ls_db_free(struct ls_db *db);

enum ls_offer { LS_STORED = 0, LS_OLD = 1 };

/* Offer origin's LSA, received at now_ms. Returns LS_STORED (held from now
 * on), LS_OLD (seq not newer: ignored), or QKDN_E_BAD_REQUEST (a node out
 * of range, a link listed twice) or QKDN_E_NOMEM. *bumped (may be NULL)
 * says whether the version moved. */
int ls_db_offer(struct ls_db *db, uint32_t origin, uint64_t seq,
                uint32_t max_age_ms, uint64_t now_ms,
                const struct ls_link *links, size_t n, bool *bumped)
    __attribute__((warn_unused_result));

/* Drop every LSA max_age_ms or more old at now_ms (the version moves if an
 * edge went with them). Returns how many went; their origins are written
 * to dropped (room for every node) if not NULL. */
size_t ls_db_age(struct ls_db *db, uint64_t now_ms, uint32_t *dropped);

uint64_t ls_db_version(const struct ls_db *db);

/* The LSA held for origin, or NULL. Valid until the next offer or age. */
const struct ls_lsa *ls_db_get(const struct ls_db *db, uint32_t origin);

/* The graph of the held LSAs, rebuilt only after they changed; NULL when
 * out of memory. Owned by the database: valid until the next offer or
 * age. */
struct rt_graph *ls_db_graph(struct ls_db *db);

#endif
