#include "route.h"

#include "node.h"
#include "qkdn_err.h"

#include <stdio.h>

struct km_route
km_route(struct km *km, const char *dst_sae, char *why, size_t whylen)
{
	const struct qkdn_net *net = km->net;
	struct km_route r = {.kind = KM_ROUTE_REFUSE, .code = QKDN_E_NO_ROUTE};
	int dst = qkdn_net_sae_index(net, dst_sae);
	if (dst < 0) {
		snprintf(why, whylen, "unknown destination SAE %s", dst_sae);
		return r;
	}
	int node = net->saes[dst].node;
	if (node == km->self) {
		/* no QKD link is involved: local key generation is not in
		 * Q.4160 I.1 */
		r.code = QKDN_E_UNSUPPORTED;
		snprintf(why, whylen,
		         "SAE %s is on this node (%s): key supply needs a QKD "
		         "link",
		         dst_sae, km->node->id);
		return r;
	}
	if ((r.link = km_link_to(km, node)) != NULL) {
		r.kind = KM_ROUTE_DIRECT;
		return r;
	}
	/* no direct link: the controller routes a relay (relay.h) */
	r.kind = KM_ROUTE_RELAY;
	r.node = node;
	return r;
}
