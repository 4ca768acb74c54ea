/* Routing of a key request: how this node reaches the node of the
 * destination SAE: a direct QKD link, a relay through trusted nodes routed
 * by the QKDN controller (Q.4160 I.3-I.5; relay.h), or a refusal. */
#ifndef KM_ROUTE_H
#define KM_ROUTE_H

#include "km.h"

#include <stddef.h>

enum km_route_kind {
	KM_ROUTE_DIRECT, /* over link */
	KM_ROUTE_RELAY,  /* hop by hop via the controller's route */
	KM_ROUTE_REFUSE, /* code and why say why */
};

struct km_route {
	enum km_route_kind kind;
	struct km_link *link; /* KM_ROUTE_DIRECT */
	int code;             /* KM_ROUTE_REFUSE: a qkdn error code */
	int node;             /* KM_ROUTE_RELAY: the destination node */
};

/* The route from this node to the node of dst_sae; why is filled when it
 * refuses. */
struct km_route km_route(struct km *km, const char *dst_sae, char *why,
                         size_t whylen);

#endif
