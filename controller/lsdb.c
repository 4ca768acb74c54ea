/* The link-state database (lsdb.h). */
#include "lsdb.h"

#include "qkdn_err.h"

#include <stdlib.h>
#include <string.h>

struct slot {
	bool held;
	bool seen;         /* an LSA was stored once */
	struct ls_lsa lsa; /* when not held: seq and recv_ms remembered */
};

struct ls_db {
	uint32_t n;
	uint32_t *rank;
	uint64_t version;
	struct slot *slot;
	struct rt_graph *graph;
	bool dirty; /* graph out of date */
};

int
ls_db_new(struct ls_db **out, uint32_t n, const uint32_t *rank,
          uint64_t version0)
{
	*out = NULL;
	if (n == 0)
		return QKDN_E_BAD_REQUEST;
	struct ls_db *db = calloc(1, sizeof(*db));
	if (db == NULL)
		return QKDN_E_NOMEM;
	db->n = n;
	db->version = version0;
	db->dirty = true;
	db->rank = malloc(n * sizeof(*db->rank));
	db->slot = calloc(n, sizeof(*db->slot));
	if (db->rank == NULL || db->slot == NULL) {
		ls_db_free(db);
		return QKDN_E_NOMEM;
	}
	for (uint32_t i = 0; i < n; i++)
		db->rank[i] = rank != NULL ? rank[i] : i;
	*out = db;
	return 0;
}

void
ls_db_free(struct ls_db *db)
{
	if (db == NULL)
		return;
	for (uint32_t i = 0; db->slot != NULL && i < db->n; i++)
		free(db->slot[i].lsa.links);
	free(db->slot);
	free(db->rank);
	rt_graph_free(db->graph);
	free(db);
}

/* What an LSA says of one link, as far as routes care. */
enum edge_state { EDGE_NONE, EDGE_LOW, EDGE_HIGH };

static enum edge_state
edge_state(const struct ls_link *l)
{
	if (l == NULL || !l->up)
		return EDGE_NONE;
	return l->out < LS_LOW_WATER ? EDGE_LOW : EDGE_HIGH;
}

static const struct ls_link *
find(const struct ls_link *v, size_t n, int32_t link, uint32_t peer)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].link == link && v[i].peer == peer)
			return &v[i];
	return NULL;
}

/* Whether replacing LSA a (NULL: none) by b (NULL: none) changes an edge
 * in a way that could change a route. */
static bool
material(const struct ls_lsa *a, const struct ls_lsa *b)
{
	size_t na = a != NULL ? a->n : 0, nb = b != NULL ? b->n : 0;
	for (size_t i = 0; i < nb; i++) {
		const struct ls_link *l = &b->links[i];
		if (edge_state(l) !=
		    edge_state(na ? find(a->links, na, l->link, l->peer)
		                  : NULL))
			return true;
	}
	for (size_t i = 0; i < na; i++) {
		const struct ls_link *l = &a->links[i];
		if (edge_state(l) != EDGE_NONE &&
		    (nb == 0 || find(b->links, nb, l->link, l->peer) == NULL))
			return true;
	}
	return false;
}

int
ls_db_offer(struct ls_db *db, uint32_t origin, uint64_t seq,
            uint32_t max_age_ms, uint64_t now_ms, const struct ls_link *links,
            size_t n, bool *bumped)
{
	if (bumped != NULL)
		*bumped = false;
	if (origin >= db->n)
		return QKDN_E_BAD_REQUEST;
	for (size_t i = 0; i < n; i++) {
		if (links[i].peer >= db->n || links[i].peer == origin)
			return QKDN_E_BAD_REQUEST;
		if (find(links, i, links[i].link, links[i].peer) != NULL)
			return QKDN_E_BAD_REQUEST;
	}
	struct slot *s = &db->slot[origin];
	/* a dropped LSA's seq is remembered for twice its max age */
	bool remembered =
	    s->held || (s->seen && now_ms - s->lsa.recv_ms <
	                               2 * (uint64_t)s->lsa.max_age_ms);
	if (remembered && seq <= s->lsa.seq)
		return LS_OLD;
	struct ls_lsa lsa = {.seq = seq,
	                     .max_age_ms = max_age_ms,
	                     .recv_ms = now_ms,
	                     .n = n,
	                     .links = NULL};
	if (n > 0) {
		if ((lsa.links = malloc(n * sizeof(*links))) == NULL)
			return QKDN_E_NOMEM;
		memcpy(lsa.links, links, n * sizeof(*links));
	}
	if (material(s->held ? &s->lsa : NULL, &lsa)) {
		db->version++;
		if (bumped != NULL)
			*bumped = true;
	}
	free(s->lsa.links);
	s->lsa = lsa;
	s->held = true;
	s->seen = true;
	db->dirty = true;
	return LS_STORED;
}

size_t
ls_db_age(struct ls_db *db, uint64_t now_ms, uint32_t *dropped)
{
	size_t k = 0;
	bool bump = false;
	for (uint32_t i = 0; i < db->n; i++) {
		struct slot *s = &db->slot[i];
		if (!s->held || now_ms - s->lsa.recv_ms < s->lsa.max_age_ms)
			continue;
		bump |= material(&s->lsa, NULL);
		free(s->lsa.links);
		s->lsa.links = NULL;
		s->lsa.n = 0;
		s->held = false;
		db->dirty = true;
		if (dropped != NULL)
			dropped[k] = i;
		k++;
	}
	if (bump)
		db->version++;
	return k;
}

uint64_t
ls_db_version(const struct ls_db *db)
{
	return db->version;
}

const struct ls_lsa *
ls_db_get(const struct ls_db *db, uint32_t origin)
{
	if (origin >= db->n || !db->slot[origin].held)
		return NULL;
	return &db->slot[origin].lsa;
}

struct rt_graph *
ls_db_graph(struct ls_db *db)
{
	if (!db->dirty && db->graph != NULL)
		return db->graph;
	size_t m = 0;
	for (uint32_t i = 0; i < db->n; i++)
		if (db->slot[i].held)
			m += db->slot[i].lsa.n;
	struct rt_edge *e = malloc((m ? m : 1) * sizeof(*e));
	if (e == NULL)
		return NULL;
	m = 0;
	for (uint32_t i = 0; i < db->n; i++) {
		const struct slot *s = &db->slot[i];
		for (size_t j = 0; s->held && j < s->lsa.n; j++) {
			const struct ls_link *l = &s->lsa.links[j];
			if (l->up)
				e[m++] = (struct rt_edge){.from = i,
				                          .to = l->peer,
				                          .cap = l->out,
				                          .link = l->link};
		}
	}
	struct rt_graph *g;
	int rv = rt_graph_new(&g, db->n, db->rank, e, m);
	free(e);
	if (rv != 0)
		return NULL;
	rt_graph_free(db->graph);
	db->graph = g;
	db->dirty = false;
	return g;
}
