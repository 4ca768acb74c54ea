/* The controllers' commands: `status --ctl` (a controller's status,
 * CTL_STATUS), `route` (ROUTE_QUERY: the routes it would use now) and
 * `relay reserve` (RELAY_REQ_NOTIF with reserve = 1: I.4b through the
 * central controller). Controllers answer on Ck over REQ/REP: over nng
 * as the emulator control does, or, on a tls+tcp:// Ck, over TLS with
 * libqkdn's SP client (cli_ctl_call). */
#include "cli.h"

#include "qkdn_err.h"
#include "qkdn_rpc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Key a relay takes per hop for one 256-bit key: MAC key, ack key, key
 * (docs/cli.md, route --bytes): what a default key request would need. */
#define ROUTE_DEFAULT_BYTES  (64 + 256 / 8)
#define RESERVE_DEFAULT_BITS 256

static const char *
mode_name(uint32_t centralized)
{
	return centralized ? "centralized" : "distributed";
}

/* The Ck address of a controller: --ctl ADDR as given, else from --config
 * FILE: the central controller's in centralized mode, else node's (NULL:
 * the caller's usage error need_node). *netp gets the loaded file (NULL
 * with --ctl) and *nodep the index of the node whose controller it is (-1:
 * the central one); the caller frees the file. */
static int
ctl_url(const struct cli_cmd *cmd, const struct cli_args *a, const char *node,
        const char *need_node, char *url, size_t len, struct qkdn_net **netp,
        int *nodep)
{
	struct qkdn_net *net = NULL;
	int rv;
	*netp = NULL;
	*nodep = -1;
	if (a->ctl != NULL) {
		if (a->config != NULL)
			return cli_usage(cmd,
			                 "give --ctl or --config, not both");
		if (a->run_dir != NULL)
			return cli_usage(
			    cmd, "--run-dir applies only with --config");
		if (a->ctl[0] == '\0' || strlen(a->ctl) >= len)
			return cli_usage(cmd,
			                 "--ctl: address empty or too long");
		snprintf(url, len, "%s", a->ctl);
		return CLI_OK;
	}
	if (a->config == NULL)
		return cli_usage(cmd,
		                 "--ctl ADDR (or --config FILE) is required");
	if ((rv = cli_load_net(a, a->config, a->run_dir, &net)) != 0)
		return rv;
	const char *src = net->central_ck_url;
	int i = node != NULL ? qkdn_net_node_index(net, node) : -1;
	if (node != NULL && i < 0)
		rv = cli_usage(cmd, "%s has no node '%s'", a->config, node);
	else if (net->controller == QKDN_CTL_DISTRIBUTED && node == NULL)
		rv = cli_usage(cmd,
		               "%s runs one controller per node "
		               "(controller = distributed): %s",
		               a->config, need_node);
	else if (net->controller == QKDN_CTL_DISTRIBUTED)
		src = net->nodes[i].ck_url;
	if (rv == 0 && (src[0] == '\0' || strlen(src) >= len))
		rv =
		    cli_usage(cmd, "%s names no controller address", a->config);
	if (rv != 0) {
		free(net);
		return rv;
	}
	snprintf(url, len, "%s", src);
	*netp = net;
	*nodep = net->controller == QKDN_CTL_DISTRIBUTED ? i : -1;
	return CLI_OK;
}

void
cli_ctl_files(const struct qkdn_net *net, int node, struct cli_ctl_files *f)
{
	const struct qkdn_net_node *nd = node >= 0 ? &net->nodes[node] : NULL;
	*f = (struct cli_ctl_files){
	    .ca = net->ca,
	    .cert = nd != NULL ? nd->cert : net->ctl_cert,
	    .key = nd != NULL ? nd->key : net->ctl_key,
	    .name = nd != NULL ? nd->id : net->ctl_name};
}

/* v, else the network file's f if it names one, else NULL. */
static const char *
or_file(const char *v, const char *f)
{
	return v != NULL ? v : f[0] != '\0' ? f : NULL;
}

/* The TLS credentials for a tls+tcp:// controller and the name its
 * certificate must carry. From the network file: the central controller's
 * own certificate (the one its orders of the reservation scheme need), or
 * a node's (its KM and controller share it) and the node's ID; each
 * replaced by its option (--ca, --cert, --key, --ctl-name), which are all
 * there is with --ctl. The name defaults to the network file's default
 * ctl_name, "controller". */
static int
ctl_tls(const struct cli_cmd *cmd, const struct cli_args *a,
        const struct qkdn_net *net, int node, struct cli_ctl *ctl)
{
	const char *ca = a->ca, *cert = a->cert, *key = a->key;
	const char *name = a->ctl_name != NULL ? a->ctl_name : "controller";
	static const char *const opt[3] = {"--ca FILE", "--cert FILE",
	                                   "--key FILE"};
	char missing[64] = "";
	if (net != NULL) {
		struct cli_ctl_files f;
		cli_ctl_files(net, node, &f);
		ca = or_file(ca, f.ca);
		cert = or_file(cert, f.cert);
		key = or_file(key, f.key);
		if (a->ctl_name == NULL)
			name = f.name;
	}
	const char *const have[3] = {ca, cert, key};
	size_t len = 0;
	for (int k = 0; k < 3; k++)
		if (have[k] == NULL)
			len += (size_t)snprintf(missing + len,
			                        sizeof(missing) - len, "%s%s",
			                        len > 0 ? ", " : "", opt[k]);
	if (len > 0)
		return cli_usage(cmd,
		                 "the tls+tcp:// controller %s needs TLS "
		                 "credentials: give %s%s",
		                 ctl->url, missing,
		                 net != NULL ? " (the network file names none)"
		                             : "");
	if (qkdn_name_set(ctl->name, name) != 0)
		return cli_usage(cmd, "--ctl-name: a name is 1..%d bytes",
		                 QKDN_NAME_MAX - 1);
	return cli_ctl_tls(a, ctl, ca, cert, key);
}

/* The controller to ask (ctl_url) and, for tls+tcp://, its credentials
 * (ctl_tls); the TLS options with any other address are a usage error.
 * The caller closes ctl (also on failure) and frees *netp. */
static int
ctl_find(const struct cli_cmd *cmd, const struct cli_args *a, const char *node,
         const char *need_node, struct cli_ctl *ctl, struct qkdn_net **netp)
{
	int i, rv;
	memset(ctl, 0, sizeof(*ctl));
	if ((rv = ctl_url(cmd, a, node, need_node, ctl->url, sizeof(ctl->url),
	                  netp, &i)) != 0)
		return rv;
	if (cli_is_tls(ctl->url))
		return ctl_tls(cmd, a, *netp, i, ctl);
	if (a->seen & OPT_CTL_TLS)
		return cli_usage(cmd,
		                 "--ca, --cert, --key and --ctl-name are for a "
		                 "tls+tcp:// controller, not %s",
		                 ctl->url);
	return CLI_OK;
}

/* One request without printing anything: 0 with rsp of want_type. For
 * what a command may go without (the bottlenecks of `route`). */
static int
quiet_call(const struct cli_args *a, const struct cli_ctl *ctl,
           const struct qkdn_msg *req, struct qkdn_msg *rsp, uint32_t want_type)
{
	char why[QKDN_REASON_MAX + QKDN_NET_URL_MAX + 128];
	int rv = cli_ctl_rpc(a, ctl, req, rsp, why, sizeof(why));
	if (rv == 0 && rsp->type != want_type) {
		qkdn_msg_clear(rsp);
		rv = QKDN_E_BAD_REQUEST;
	}
	return rv;
}

/* ---- status --ctl ---- */

enum { C_LINK, C_A, C_B, C_UP, C_AOUT, C_BOUT, C_RATE, C_AGE, N_C };
static const char *const c_head[N_C] = {"LINK",  "A",     "B",    "UP",
                                        "A_OUT", "B_OUT", "RATE", "AGE_MS"};

static void
ctl_cells(const struct qkdn_link_state *l, char cell[N_C][QKDN_NAME_MAX])
{
	snprintf(cell[C_LINK], QKDN_NAME_MAX, "%s", l->link);
	snprintf(cell[C_A], QKDN_NAME_MAX, "%s", l->a);
	snprintf(cell[C_B], QKDN_NAME_MAX, "%s", l->b);
	snprintf(cell[C_UP], QKDN_NAME_MAX, "%s", l->up ? "yes" : "no");
	snprintf(cell[C_AOUT], QKDN_NAME_MAX, "%" PRIu64, l->a_out);
	snprintf(cell[C_BOUT], QKDN_NAME_MAX, "%" PRIu64, l->b_out);
	snprintf(cell[C_RATE], QKDN_NAME_MAX, "%" PRIu64, l->rate_bps);
	snprintf(cell[C_AGE], QKDN_NAME_MAX, "%" PRIu32, l->age_ms);
}

static void
ctl_row(char cell[N_C][QKDN_NAME_MAX], const int *width)
{
	for (int c = 0; c < N_C; c++) {
		/* names to the left, numbers to the right */
		bool left = c <= C_UP;
		if (c + 1 == N_C)
			printf("%*s\n", width[c], cell[c]);
		else
			printf("%*s  ", left ? -width[c] : width[c], cell[c]);
	}
}

static void
ctl_status_text(const struct qkdn_ctl_status *s)
{
	char cell[N_C][QKDN_NAME_MAX];
	int width[N_C];
	printf("controller: %s (%s)\n", s->node, mode_name(s->centralized));
	printf("topology version: %" PRIu64 "\n", s->version);
	printf("link-state updates: %" PRIu64 "\n", s->updates);
	printf("next hop requests: %" PRIu64 "\n", s->next_hop_reqs);
	printf("relay request notifications: %" PRIu64 "\n",
	       s->relay_req_notifs);
	printf("relay request responses: %" PRIu64 "\n", s->relay_req_rsps);
	printf("reservations: %" PRIu64 "\n", s->reservations);
	printf("allocations: %" PRIu64 "\n", s->allocations);
	if (s->links.n == 0) {
		printf("links: none\n");
		return;
	}
	for (int c = 0; c < N_C; c++)
		width[c] = (int)strlen(c_head[c]);
	for (uint32_t i = 0; i < s->links.n; i++) {
		ctl_cells(&s->links.v[i], cell);
		for (int c = 0; c < N_C; c++)
			if ((int)strlen(cell[c]) > width[c])
				width[c] = (int)strlen(cell[c]);
	}
	for (int c = 0; c < N_C; c++)
		snprintf(cell[c], QKDN_NAME_MAX, "%s", c_head[c]);
	ctl_row(cell, width);
	for (uint32_t i = 0; i < s->links.n; i++) {
		ctl_cells(&s->links.v[i], cell);
		ctl_row(cell, width);
	}
}

static cJSON *
ctl_status_json(const struct qkdn_ctl_status *s)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "node", s->node);
	cJSON_AddStringToObject(doc, "mode", mode_name(s->centralized));
	cJSON_AddNumberToObject(doc, "version", (double)s->version);
	cJSON_AddNumberToObject(doc, "updates", (double)s->updates);
	cJSON_AddNumberToObject(doc, "next_hop_reqs", (double)s->next_hop_reqs);
	cJSON_AddNumberToObject(doc, "relay_req_notifs",
	                        (double)s->relay_req_notifs);
	cJSON_AddNumberToObject(doc, "relay_req_rsps",
	                        (double)s->relay_req_rsps);
	cJSON_AddNumberToObject(doc, "reservations", (double)s->reservations);
	cJSON_AddNumberToObject(doc, "allocations", (double)s->allocations);
	cJSON *links = cJSON_AddArrayToObject(doc, "links");
	for (uint32_t i = 0; i < s->links.n; i++) {
		const struct qkdn_link_state *l = &s->links.v[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "link", l->link);
		cJSON_AddStringToObject(o, "a", l->a);
		cJSON_AddStringToObject(o, "b", l->b);
		cJSON_AddBoolToObject(o, "up", l->up != 0);
		cJSON_AddNumberToObject(o, "a_out", (double)l->a_out);
		cJSON_AddNumberToObject(o, "b_out", (double)l->b_out);
		cJSON_AddNumberToObject(o, "rate_bps", (double)l->rate_bps);
		cJSON_AddNumberToObject(o, "age_ms", (double)l->age_ms);
		cJSON_AddItemToArray(links, o);
	}
	return doc;
}

int
cli_ctl_status(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_msg req = {.type = QKDN_STATUS_REQ}, rsp;
	struct qkdn_net *net = NULL;
	struct cli_ctl ctl;
	int rv;
	/* --controller NODE, or --controller --node NODE */
	const char *node = a->controller != NULL && a->controller[0] != '\0'
	                       ? a->controller
	                       : a->node;
	if (a->km_name != NULL)
		return cli_usage(cmd, "--km-name is for a KM; a tls+tcp:// "
		                      "controller's name is --ctl-name");
	if (a->km != NULL)
		return cli_usage(cmd, "give --km (a KM) or --ctl/--controller "
		                      "(a controller), not both");
	if (a->ctl != NULL && a->controller != NULL)
		return cli_usage(cmd, "give --ctl ADDR or --config FILE "
		                      "--controller [NODE], not both");
	if (a->controller != NULL && a->config == NULL)
		return cli_usage(cmd, "--controller needs --config FILE");
	if (a->ctl != NULL && a->node != NULL)
		return cli_usage(cmd, "--node applies only with --config");
	if (a->node != NULL && a->controller != NULL &&
	    a->controller[0] != '\0' && strcmp(a->node, a->controller) != 0)
		return cli_usage(cmd,
		                 "--controller %s and --node %s name "
		                 "different nodes",
		                 a->controller, a->node);
	rv = ctl_find(cmd, a, node, "give --controller NODE", &ctl, &net);
	free(net);
	if (rv == 0)
		rv = cli_ctl_call(a, &ctl, &req, &rsp, QKDN_CTL_STATUS);
	cli_ctl_close(&ctl);
	if (rv != 0)
		return rv;
	if (a->json)
		rv = cli_emit(a, ctl_status_json(&rsp.u.ctl_status));
	else
		ctl_status_text(&rsp.u.ctl_status);
	qkdn_msg_clear(&rsp);
	return rv;
}

/* ---- route ---- */

/* Key u can send to v now, in st's view: u's a_out of the u-v link (or
 * b_out when st lists the link from v's end); false if st has no such
 * link. */
static bool
edge_bytes(const struct qkdn_ctl_status *st, const char *u, const char *v,
           uint64_t *out)
{
	for (uint32_t i = 0; i < st->links.n; i++) {
		const struct qkdn_link_state *l = &st->links.v[i];
		if (strcmp(l->a, u) == 0 && strcmp(l->b, v) == 0) {
			*out = l->a_out;
			return true;
		}
	}
	for (uint32_t i = 0; i < st->links.n; i++) {
		const struct qkdn_link_state *l = &st->links.v[i];
		if (strcmp(l->a, v) == 0 && strcmp(l->b, u) == 0) {
			*out = l->b_out;
			return true;
		}
	}
	return false;
}

/* The scarcest hop of a route (what routing maximises), if st knows
 * every hop. */
static bool
bottleneck(const struct qkdn_ctl_status *st, const struct qkdn_route *r,
           uint64_t *out)
{
	uint64_t min = UINT64_MAX;
	if (st == NULL || r->n < 2)
		return false;
	for (uint32_t i = 0; i + 1 < r->n; i++) {
		uint64_t b;
		if (!edge_bytes(st, r->v[i], r->v[i + 1], &b))
			return false;
		min = b < min ? b : min;
	}
	*out = min;
	return true;
}

static cJSON *
routes_json(const struct qkdn_relay_req *rr)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *routes = cJSON_AddArrayToObject(doc, "routes");
	for (uint32_t i = 0; i < rr->routes.n; i++) {
		const struct qkdn_route *r = &rr->routes.v[i].nodes;
		cJSON *nodes = cJSON_CreateArray();
		for (uint32_t j = 0; j < r->n; j++)
			cJSON_AddItemToArray(nodes,
			                     cJSON_CreateString(r->v[j]));
		cJSON_AddItemToArray(routes, nodes);
	}
	cJSON_AddNumberToObject(doc, "version", (double)rr->version);
	return doc;
}

static void
routes_text(const struct qkdn_relay_req *rr, const struct qkdn_ctl_status *st)
{
	for (uint32_t i = 0; i < rr->routes.n; i++) {
		const struct qkdn_route *r = &rr->routes.v[i].nodes;
		uint64_t b;
		for (uint32_t j = 0; j < r->n; j++)
			printf("%s%s", j > 0 ? " -> " : "", r->v[j]);
		if (bottleneck(st, r, &b))
			printf(" (bottleneck %" PRIu64 " bytes)", b);
		putchar('\n');
	}
}

int
cli_route(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_msg req = {.type = QKDN_ROUTE_QUERY}, rsp, st_rsp;
	struct qkdn_route_query *q = &req.u.route_query;
	struct qkdn_net *net = NULL;
	struct cli_ctl ctl;
	int rv;
	if (a->from == NULL || a->to == NULL)
		return cli_usage(cmd, "--from NODE and --to NODE are required");
	if (qkdn_name_set(q->src_node, a->from) != 0 ||
	    qkdn_name_set(q->dst_node, a->to) != 0)
		return cli_usage(cmd, "a node ID is 1..%d bytes",
		                 QKDN_NAME_MAX - 1);
	if (strcmp(a->from, a->to) == 0)
		return cli_usage(cmd, "--from and --to name the same node");
	q->bytes = (a->seen & OPT_BYTES) ? a->bytes : ROUTE_DEFAULT_BYTES;
	/* distributed: the source node's controller, which routes from it */
	rv = ctl_find(cmd, a, a->from, "", &ctl, &net);
	if (rv == 0 && net != NULL && qkdn_net_node_index(net, a->to) < 0)
		rv = cli_usage(cmd, "%s has no node '%s'", a->config, a->to);
	free(net);
	if (rv == 0)
		rv = cli_ctl_call(a, &ctl, &req, &rsp, QKDN_RELAY_REQ);
	if (rv != 0) {
		cli_ctl_close(&ctl);
		return rv;
	}
	const struct qkdn_relay_req *rr = &rsp.u.relay_req;
	if (rr->routes.n == 0) {
		rv = cli_fail(a, a->json ? routes_json(rr) : NULL,
		              QKDN_E_NO_ROUTE,
		              "no route from %s to %s with %" PRIu64
		              " bytes of key per hop (%s)",
		              a->from, a->to, q->bytes, ctl.url);
	} else if (a->json) {
		rv = cli_emit(a, routes_json(rr));
	} else {
		/* the bottlenecks come from the same controller's view of
		 * the links; without it the routes are shown alone */
		struct qkdn_msg st_req = {.type = QKDN_STATUS_REQ};
		bool have =
		    quiet_call(a, &ctl, &st_req, &st_rsp, QKDN_CTL_STATUS) == 0;
		routes_text(rr, have ? &st_rsp.u.ctl_status : NULL);
		if (have)
			qkdn_msg_clear(&st_rsp);
	}
	qkdn_msg_clear(&rsp);
	cli_ctl_close(&ctl);
	return rv;
}

/* ---- relay reserve ---- */

/* With --config: both nodes exist, the controller is the central one and
 * each SAE is attached to its node. */
static int
check_reserve(const struct cli_cmd *cmd, const struct cli_args *a,
              const struct qkdn_net *net)
{
	const char *const node[2] = {a->from, a->to};
	const char *const sae[2] = {a->sae, a->dst_sae};
	if (net->controller != QKDN_CTL_CENTRALIZED)
		return cli_usage(cmd,
		                 "relay reserve runs through the central "
		                 "controller, but %s has controller = "
		                 "distributed",
		                 a->config);
	for (int i = 0; i < 2; i++) {
		int n = qkdn_net_node_index(net, node[i]);
		int s = qkdn_net_sae_index(net, sae[i]);
		if (n < 0)
			return cli_usage(cmd, "%s has no node '%s'", a->config,
			                 node[i]);
		if (s < 0)
			return cli_usage(cmd, "%s has no SAE '%s'", a->config,
			                 sae[i]);
		if (net->saes[s].node != n)
			return cli_usage(
			    cmd, "SAE %s is attached to node %s, not %s",
			    sae[i], net->nodes[net->saes[s].node].id, node[i]);
	}
	return CLI_OK;
}

static cJSON *
alloc_json(const struct qkdn_alloc_rsp *r)
{
	char id[37];
	cJSON *doc = cJSON_CreateObject();
	qkdn_uuid_format(&r->reservation_id, id);
	cJSON_AddStringToObject(doc, "reservation_id", id);
	cJSON *ids = cJSON_AddArrayToObject(doc, "ids");
	for (uint32_t i = 0; i < r->ids.n; i++) {
		qkdn_uuid_format(&r->ids.v[i], id);
		cJSON_AddItemToArray(ids, cJSON_CreateString(id));
	}
	return doc;
}

int
cli_relay_reserve(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_msg req = {.type = QKDN_RELAY_REQ_NOTIF}, rsp;
	struct qkdn_relay_req_notif *n = &req.u.relay_req_notif;
	struct qkdn_net *net = NULL;
	struct cli_ctl ctl;
	char id[37];
	int rv;
	if (a->from == NULL || a->to == NULL || a->sae == NULL ||
	    a->dst_sae == NULL)
		return cli_usage(cmd, "--from NODE, --to NODE, --sae SAE and "
		                      "--dst-sae SAE are required");
	if (qkdn_name_set(n->src_node, a->from) != 0 ||
	    qkdn_name_set(n->dst_node, a->to) != 0 ||
	    qkdn_name_set(n->src_sae, a->sae) != 0 ||
	    qkdn_name_set(n->dst_sae, a->dst_sae) != 0)
		return cli_usage(cmd, "a node or SAE ID is 1..%d bytes",
		                 QKDN_NAME_MAX - 1);
	if (strcmp(a->from, a->to) == 0)
		return cli_usage(cmd, "--from and --to name the same node");
	n->count = (a->seen & OPT_COUNT) ? a->count : 1;
	n->bits = (a->seen & OPT_BITS) ? a->bits : RESERVE_DEFAULT_BITS;
	if (n->count > QKDN_KEYS_MAX)
		return cli_usage(cmd, "--count takes 1 to %d keys here, not %u",
		                 QKDN_KEYS_MAX, n->count);
	n->reserve = 1;
	qkdn_uuid_random(&n->relay_id);
	/* a node is passed so that only the mode check speaks for a
	 * distributed file */
	rv = ctl_find(cmd, a, a->from, "", &ctl, &net);
	if (rv == 0 && net != NULL)
		rv = check_reserve(cmd, a, net);
	free(net);
	if (rv == 0)
		rv = cli_ctl_call(a, &ctl, &req, &rsp, QKDN_ALLOC_RSP);
	cli_ctl_close(&ctl);
	if (rv != 0)
		return rv;
	const struct qkdn_alloc_rsp *r = &rsp.u.alloc_rsp;
	qkdn_uuid_format(&r->reservation_id, id);
	if (r->result != 0) {
		/* a qkdn code, whichever sign the controller sent it with */
		int code = r->result > 0 ? -r->result : r->result;
		rv =
		    cli_fail(a, NULL, code, "reservation %s from %s to %s (%s)",
		             id, a->from, a->to, ctl.url);
	} else if (r->ids.n != n->count) {
		rv =
		    cli_fail(a, a->json ? alloc_json(r) : NULL, QKDN_E_INTERNAL,
		             "the controller allocated %u keys of %u (%s)",
		             r->ids.n, n->count, ctl.url);
	} else if (a->json) {
		rv = cli_emit(a, alloc_json(r));
	} else {
		for (uint32_t i = 0; i < r->ids.n; i++) {
			qkdn_uuid_format(&r->ids.v[i], id);
			printf("%s\n", id);
		}
	}
	qkdn_msg_clear(&rsp);
	return rv;
}
