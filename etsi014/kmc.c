#include "kmc.h"

#include "qkdn_err.h"
#include "qkdn_netconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct kmc {
	const struct qkdn_net *net;
	const struct qkdn_net_node *node;
	int timeout_ms;
	pthread_mutex_t mtx;
	struct qkdn_ak **by_sae; /* index: the network's SAEs */
	struct qkdn_ak *status;  /* status names no SAE */
};

int
kmc_open(struct kmc **out, const struct qkdn_net *net, int node, int timeout_ms)
{
	struct kmc *k = calloc(1, sizeof(*k));
	if (k == NULL)
		return QKDN_E_NOMEM;
	k->by_sae =
	    calloc(net->n_saes > 0 ? net->n_saes : 1, sizeof(*k->by_sae));
	if (k->by_sae == NULL) {
		free(k);
		return QKDN_E_NOMEM;
	}
	k->net = net;
	k->node = &net->nodes[node];
	k->timeout_ms = timeout_ms;
	pthread_mutex_init(&k->mtx, NULL);
	*out = k;
	return 0;
}

void
kmc_close(struct kmc *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->net->n_saes; i++)
		qkdn_ak_close(k->by_sae[i]);
	qkdn_ak_close(k->status);
	pthread_mutex_destroy(&k->mtx);
	free(k->by_sae);
	free(k);
}

/* A handle for sae (the gateway's own name for status). On a tls+tcp://
 * Ak the gateway shows its own certificate (CN etsi014_name), which the
 * KM trusts to speak for the node's SAEs. */
static int
handle(struct kmc *k, const char *sae, struct qkdn_ak **slot,
       struct qkdn_ak **out)
{
	int rv = 0;
	pthread_mutex_lock(&k->mtx);
	if (*slot == NULL) {
		struct qkdn_ak_opts o = {.timeout_ms = k->timeout_ms,
		                         .ca = k->net->ca,
		                         .cert = k->node->etsi014_cert,
		                         .key = k->node->etsi014_key,
		                         .km_name = k->node->id};
		bool tls = strncmp(k->node->ak_url, "tls+tcp://", 10) == 0;
		rv = qkdn_ak_open_opts(
		    slot, k->node->ak_url, sae,
		    tls ? &o
		        : &(struct qkdn_ak_opts){.timeout_ms = k->timeout_ms});
	}
	*out = *slot;
	pthread_mutex_unlock(&k->mtx);
	return rv;
}

static int
sae_handle(struct kmc *k, const char *sae, struct qkdn_ak **out)
{
	int i = qkdn_net_sae_index(k->net, sae);
	if (i < 0)
		return QKDN_E_NOT_AUTHORISED;
	return handle(k, sae, &k->by_sae[i], out);
}

int
kmc_get_keys(struct kmc *k, const char *sae, const char *dst, uint32_t bits,
             uint32_t count, struct qkdn_ak_key *out)
{
	struct qkdn_ak *ak;
	int rv = sae_handle(k, sae, &ak);
	return rv != 0 ? rv : qkdn_ak_get_keys(ak, dst, bits, count, out);
}

int
kmc_get_keys_by_id(struct kmc *k, const char *sae, const char *src,
                   const qkdn_key_id *ids, uint32_t count,
                   struct qkdn_ak_key *out)
{
	struct qkdn_ak *ak;
	int rv = sae_handle(k, sae, &ak);
	return rv != 0 ? rv
	               : qkdn_ak_get_keys_by_id_from(ak, src, ids, count, out);
}

int
kmc_status(struct kmc *k, struct qkdn_ak_status *out)
{
	struct qkdn_ak *ak;
	int rv = handle(k, k->node->etsi014_name, &k->status, &ak);
	return rv != 0 ? rv : qkdn_ak_status(ak, out);
}
