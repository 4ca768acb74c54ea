/* status: a KM's counters and the key left in each of its link pools,
 * asked over Ak (so tls+tcp:// works as for key get). */
#include "cli.h"

#include "qkdn_ak.h"
#include "qkdn_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum {
	COL_LINK,
	COL_PEER,
	COL_OUT,
	COL_IN,
	COL_BLOCKS,
	COL_UP,
	COL_SYNC,
	N_COLS
};

static const char *const col_head[N_COLS] = {
    "LINK", "PEER", "OUT_BYTES", "IN_BYTES", "BLOCKS", "UP", "SYNC"};

static void
link_cells(const struct qkdn_ak_link_status *l,
           char cell[N_COLS][QKDN_NAME_MAX])
{
	snprintf(cell[COL_LINK], QKDN_NAME_MAX, "%s", l->link);
	snprintf(cell[COL_PEER], QKDN_NAME_MAX, "%s", l->peer);
	snprintf(cell[COL_OUT], QKDN_NAME_MAX, "%" PRIu64, l->out_bytes);
	snprintf(cell[COL_IN], QKDN_NAME_MAX, "%" PRIu64, l->in_bytes);
	snprintf(cell[COL_BLOCKS], QKDN_NAME_MAX, "%" PRIu64, l->blocks);
	snprintf(cell[COL_UP], QKDN_NAME_MAX, "%s", l->up ? "yes" : "no");
	/* "ok", or how many key syncs failed authentication */
	if (!l->in_sync || l->sync_failures > 0)
		snprintf(cell[COL_SYNC], QKDN_NAME_MAX,
		         "%s (%" PRIu64 " failed)", !l->in_sync ? "OUT" : "ok",
		         l->sync_failures);
	else
		snprintf(cell[COL_SYNC], QKDN_NAME_MAX, "ok");
}

static void
print_row(char cell[N_COLS][QKDN_NAME_MAX], const int *width)
{
	for (int c = 0; c < N_COLS; c++) {
		/* names to the left, numbers to the right */
		bool left = c == COL_LINK || c == COL_PEER;
		if (c + 1 == N_COLS) /* last: no padding */
			printf("%s\n", cell[c]);
		else
			printf("%*s  ", left ? -width[c] : width[c], cell[c]);
	}
}

/* The relay counters: their names are those of struct qkdn_relay_stats
 * (and of the JSON object), in its order. */
#define RELAY_COUNTERS(X)                                                      \
	X(started)                                                             \
	X(completed)                                                           \
	X(failed)                                                              \
	X(in_flight)                                                           \
	X(forwarded)                                                           \
	X(delivered)                                                           \
	X(rejected)                                                            \
	X(next_hop_reqs)                                                       \
	X(relay_req_notifs)                                                    \
	X(relay_req_rsps)                                                      \
	X(done_notifs)                                                         \
	X(reservations)                                                        \
	X(allocations)                                                         \
	X(keys_relayed)

/* "relays: started 0, completed 0, ..." on two lines: the relays, then
 * the procedure messages */
static void
relay_text(const struct qkdn_ak_relay_status *r)
{
	printf("relays: started %" PRIu64 ", completed %" PRIu64
	       ", failed %" PRIu64 ", in flight %" PRIu64 ", forwarded %" PRIu64
	       ", delivered %" PRIu64 ", rejected %" PRIu64
	       ", keys relayed %" PRIu64 "\n",
	       r->started, r->completed, r->failed, r->in_flight, r->forwarded,
	       r->delivered, r->rejected, r->keys_relayed);
	printf("relay messages: next hop requests %" PRIu64
	       ", relay request notifications %" PRIu64
	       ", relay request responses %" PRIu64
	       ", done notifications %" PRIu64 ", reservations %" PRIu64
	       ", allocations %" PRIu64 "\n",
	       r->next_hop_reqs, r->relay_req_notifs, r->relay_req_rsps,
	       r->done_notifs, r->reservations, r->allocations);
}

static cJSON *
relay_json(const struct qkdn_ak_relay_status *r)
{
	cJSON *o = cJSON_CreateObject();
#define ADD(name) cJSON_AddNumberToObject(o, #name, (double)r->name);
	RELAY_COUNTERS(ADD)
#undef ADD
	return o;
}

static void
status_text(const struct qkdn_ak_status *s)
{
	char cell[N_COLS][QKDN_NAME_MAX];
	int width[N_COLS];
	printf("node: %s\n", s->node);
	printf("keys supplied: %" PRIu64 "\n", s->supplied);
	printf("keys pending: %" PRIu64 "\n", s->pending);
	printf("errors: %" PRIu64 " (Ak %" PRIu64 ", Kx %" PRIu64 ")\n",
	       s->errors, s->ak_errors, s->kx_errors);
	relay_text(&s->relay);
	if (s->limits.max_keys != 0)
		printf("limits: 1..%" PRIu32 " keys of %" PRIu32 "..%" PRIu32
		       " bits a request, at most %" PRIu64 " bytes of key\n",
		       s->limits.max_keys, s->limits.min_bits,
		       s->limits.max_bits, s->limits.max_request_bytes);
	if (s->n_links == 0) {
		printf("links: none\n");
		return;
	}
	for (int c = 0; c < N_COLS; c++)
		width[c] = (int)strlen(col_head[c]);
	for (size_t i = 0; i < s->n_links; i++) {
		link_cells(&s->links[i], cell);
		for (int c = 0; c < N_COLS; c++)
			if ((int)strlen(cell[c]) > width[c])
				width[c] = (int)strlen(cell[c]);
	}
	for (int c = 0; c < N_COLS; c++)
		snprintf(cell[c], QKDN_NAME_MAX, "%s", col_head[c]);
	print_row(cell, width);
	for (size_t i = 0; i < s->n_links; i++) {
		link_cells(&s->links[i], cell);
		print_row(cell, width);
	}
	/* a reason is too long for a column: one line per link below */
	for (size_t i = 0; i < s->n_links; i++)
		if (s->links[i].down[0] != '\0')
			printf("link %s down: %s\n", s->links[i].link,
			       s->links[i].down);
}

static cJSON *
status_json(const struct qkdn_ak_status *s)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "node", s->node);
	cJSON_AddNumberToObject(doc, "supplied", (double)s->supplied);
	cJSON_AddNumberToObject(doc, "pending", (double)s->pending);
	cJSON_AddNumberToObject(doc, "errors", (double)s->errors);
	cJSON_AddNumberToObject(doc, "ak_errors", (double)s->ak_errors);
	cJSON_AddNumberToObject(doc, "kx_errors", (double)s->kx_errors);
	cJSON *links = cJSON_AddArrayToObject(doc, "links");
	for (size_t i = 0; i < s->n_links; i++) {
		const struct qkdn_ak_link_status *l = &s->links[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "link", l->link);
		cJSON_AddStringToObject(o, "peer", l->peer);
		cJSON_AddNumberToObject(o, "out", (double)l->out_bytes);
		cJSON_AddNumberToObject(o, "in", (double)l->in_bytes);
		cJSON_AddNumberToObject(o, "blocks", (double)l->blocks);
		cJSON_AddBoolToObject(o, "up", l->up);
		cJSON_AddBoolToObject(o, "in_sync", l->in_sync);
		cJSON_AddNumberToObject(o, "sync_failures",
		                        (double)l->sync_failures);
		cJSON_AddNumberToObject(o, "out_max", (double)l->out_max_bytes);
		if (l->down[0] != '\0')
			cJSON_AddStringToObject(o, "down", l->down);
		else
			cJSON_AddNullToObject(o, "down");
		cJSON_AddItemToArray(links, o);
	}
	cJSON_AddItemToObject(doc, "relay", relay_json(&s->relay));
	/* zeros: a KM that does not report its limits */
	cJSON *lim = cJSON_AddObjectToObject(doc, "limits");
	cJSON_AddNumberToObject(lim, "max_keys", s->limits.max_keys);
	cJSON_AddNumberToObject(lim, "min_bits", s->limits.min_bits);
	cJSON_AddNumberToObject(lim, "max_bits", s->limits.max_bits);
	cJSON_AddNumberToObject(lim, "max_request_bytes",
	                        (double)s->limits.max_request_bytes);
	return doc;
}

/* A failed status call, as key get words it. */
static int
status_failed(const struct cli_args *a, const char *url, int rv)
{
	char reason[QKDN_REASON_MAX + QKDN_NET_URL_MAX + 64];
	if ((rv == QKDN_E_TIMEOUT || rv == QKDN_E_UNREACHABLE) &&
	    cli_conn_error(url, reason, sizeof(reason)))
		return cli_fail(a, NULL, QKDN_E_UNREACHABLE, "%s", reason);
	snprintf(reason, sizeof(reason), "%s (%s)", qkdn_ak_last_error(), url);
	return cli_fail_reason(a, NULL, rv, reason);
}

int
cli_status(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_ak_status st = {0};
	struct qkdn_ak *ak = NULL;
	struct cli_km km;
	int rv;
	if (a->ctl != NULL || a->controller != NULL)
		return cli_ctl_status(cmd, a);
	/* a status request names no SAE: the handle's is a placeholder */
	if ((rv = cli_km_find(cmd, a, &km)) != 0 ||
	    (rv = cli_ak_open(a, &km, "qkdn-cli", &ak)) != 0)
		return rv;
	if ((rv = qkdn_ak_status(ak, &st)) != 0)
		rv = status_failed(a, km.url, rv);
	else if (a->json)
		rv = cli_emit(a, status_json(&st));
	else
		status_text(&st);
	qkdn_ak_status_free(&st);
	qkdn_ak_close(ak);
	return rv;
}
