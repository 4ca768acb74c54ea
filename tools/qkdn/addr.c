/* Where the daemons are: an address given on the command line, or one read
 * from the network file (--config FILE [--run-dir DIR]); and one request to
 * them: over nng, or for a tls+tcp:// controller over libqkdn's SP client
 * (nng has no TLS here). */
#include "cli.h"

#include "qkdn_ak.h"
#include "qkdn_clock.h"
#include "qkdn_err.h"
#include "qkdn_rpc.h"
#include "qkdn_sp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
cli_load_net(const struct cli_args *a, const char *path, const char *run_dir,
             struct qkdn_net **out)
{
	char err[QKDN_NET_PATH_MAX + QKDN_REASON_MAX] = "";
	struct qkdn_net *net = calloc(1, sizeof(*net));
	if (net == NULL)
		return cli_fail(a, NULL, QKDN_E_NOMEM, "loading %s", path);
	if (qkdn_net_load(path, run_dir, net, err, sizeof(err)) != 0) {
		free(net);
		if (err[0] == '\0')
			snprintf(err, sizeof(err), "%s: cannot be loaded",
			         path);
		return cli_fail_config(a, err);
	}
	*out = net;
	return CLI_OK;
}

static int
copy_url(const struct cli_cmd *cmd, const char *opt, const char *src, char *url,
         size_t len)
{
	if (strlen(src) >= len || src[0] == '\0')
		return cli_usage(cmd, "--%s: address empty or too long", opt);
	memcpy(url, src, strlen(src) + 1);
	return CLI_OK;
}

/* The address given as --OPT ADDR (*given set), copied to url; else
 * --config, which the caller reads, is required. --run-dir and --node only
 * mean something with --config. */
static int
given_url(const struct cli_cmd *cmd, const struct cli_args *a, const char *opt,
          const char *addr, char *url, size_t len, bool *given)
{
	*given = addr != NULL;
	if (addr == NULL && a->config == NULL)
		return cli_usage(
		    cmd, "--%s ADDR (or --config FILE) is required", opt);
	if (addr == NULL)
		return CLI_OK;
	if (a->config != NULL)
		return cli_usage(cmd, "give --%s or --config, not both", opt);
	if (a->run_dir != NULL)
		return cli_usage(cmd, "--run-dir applies only with --config");
	if (a->node != NULL)
		return cli_usage(cmd, "--node applies only with --config");
	return copy_url(cmd, opt, addr, url, len);
}

int
cli_km_find(const struct cli_cmd *cmd, const struct cli_args *a,
            struct cli_km *km)
{
	struct qkdn_net *net = NULL;
	bool given;
	int rv;
	memset(km, 0, sizeof(*km));
	rv = given_url(cmd, a, "km", a->km, km->url, sizeof(km->url), &given);
	if (rv != 0 || given)
		return rv;
	/* The KM is the --node one, else that of the SAE asking. */
	const char *node = a->node;
	if (node == NULL && a->sae == NULL)
		return cli_usage(cmd, "--config needs --node ID");
	if ((rv = cli_load_net(a, a->config, a->run_dir, &net)) != 0)
		return rv;
	int i;
	if (node != NULL) {
		i = qkdn_net_node_index(net, node);
		if (i < 0)
			rv = cli_usage(cmd, "%s has no node '%s'", a->config,
			               node);
	} else {
		int s = qkdn_net_sae_index(net, a->sae);
		i = s >= 0 ? net->saes[s].node : -1;
		if (s < 0)
			rv =
			    cli_usage(cmd, "%s has no SAE '%s'; give --node ID",
			              a->config, a->sae);
	}
	if (rv == 0)
		rv = copy_url(cmd, "config", net->nodes[i].ak_url, km->url,
		              sizeof(km->url));
	if (rv == 0) {
		snprintf(km->node, sizeof(km->node), "%s", net->nodes[i].id);
		snprintf(km->ca, sizeof(km->ca), "%s", net->ca);
	}
	free(net);
	return rv;
}

/* An option's value, else the environment's, else NULL. */
static const char *
opt_or_env(const char *opt, const char *env)
{
	const char *v = opt != NULL ? opt : secure_getenv(env);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* v, else dflt if not "", else NULL. */
static const char *
or_default(const char *v, const char *dflt)
{
	return v != NULL ? v : dflt[0] != '\0' ? dflt : NULL;
}

int
cli_ak_open(const struct cli_args *a, const struct cli_km *km, const char *sae,
            struct qkdn_ak **out)
{
	char reason[QKDN_REASON_MAX + QKDN_NET_URL_MAX + 64];
	struct qkdn_ak_opts o = {
	    .timeout_ms = cli_timeout(a, CLI_TIMEOUT_MS),
	    .ca = or_default(opt_or_env(a->ca, "QKDN_CA"), km->ca),
	    .cert = opt_or_env(a->cert, "QKDN_CERT"),
	    .key = opt_or_env(a->key, "QKDN_KEY"),
	    /* the node whose address --config gave */
	    .km_name =
	        or_default(opt_or_env(a->km_name, "QKDN_KM_NAME"), km->node),
	};
	/* status takes --ctl-name for a controller; a KM's is --km-name */
	if (a->ctl_name != NULL)
		return cli_usage(NULL, "--ctl-name is for a controller (--ctl, "
		                       "--controller); a KM's is --km-name");
	int rv = qkdn_ak_open_opts(out, km->url, sae, &o);
	if (rv == 0)
		return CLI_OK;
	snprintf(reason, sizeof(reason), "%s (%s)", qkdn_ak_last_error(),
	         km->url);
	/* an address or a TLS file that is no good: the command line's */
	if (rv == QKDN_E_CONFIG)
		return cli_fail_config(a, reason);
	return cli_fail_reason(a, NULL, rv, reason);
}

int
cli_sim_url(const struct cli_cmd *cmd, const struct cli_args *a, char *url,
            size_t len)
{
	struct qkdn_net *net = NULL;
	bool given;
	int rv = given_url(cmd, a, "sim", a->sim, url, len, &given);
	if (rv != 0 || given)
		return rv;
	if ((rv = cli_load_net(a, a->config, a->run_dir, &net)) != 0)
		return rv;
	if (a->arg[0] != NULL && qkdn_net_link_index(net, a->arg[0]) < 0)
		rv =
		    cli_usage(cmd, "%s has no link '%s'", a->config, a->arg[0]);
	else if (net->sim_url[0] == '\0')
		rv = cli_usage(cmd, "%s names no emulator address", a->config);
	else
		rv = copy_url(cmd, "config", net->sim_url, url, len);
	free(net);
	return rv;
}

bool
cli_conn_error(const char *url, char *why, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = url + 6;
	if (strncmp(url, "ipc://", 6) != 0 ||
	    strlen(path) >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int rv = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
	int err = errno;
	close(fd);
	if (rv == 0)
		return false;
	snprintf(why, len, "cannot connect to %s: %s", url, strerror(err));
	return true;
}

/* One round trip over nng: 0, or a qkdn code with the reason in why. */
static int
nng_rpc(const struct cli_args *a, const char *url, const struct qkdn_msg *req,
        struct qkdn_msg *rsp, char *why, size_t whylen)
{
	struct qkdn_decode_error err = {0};
	nng_socket s;
	int rv = qkdn_rpc_dial(&s, url);
	if (rv != 0) {
		snprintf(why, whylen, "cannot dial %s", url);
		return rv;
	}
	rv = qkdn_rpc_call(s, req, rsp, cli_timeout(a, CLI_TIMEOUT_MS), &err);
	nng_close(s);
	if ((rv == QKDN_E_TIMEOUT || rv == QKDN_E_UNREACHABLE) &&
	    cli_conn_error(url, why, whylen))
		return QKDN_E_UNREACHABLE;
	if (rv != 0)
		snprintf(why, whylen, "%s (%s)", err.reason, url);
	return rv;
}

bool
cli_is_tls(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0;
}

int
cli_ctl_tls(const struct cli_args *a, struct cli_ctl *ctl, const char *ca,
            const char *cert, const char *key)
{
	char why[QKDN_REASON_MAX], reason[sizeof(why) + QKDN_NET_URL_MAX + 64];
	int rv = qkdn_sp_tls_new(&ctl->tls, ca, cert, key, why, sizeof(why));
	if (rv == 0)
		return CLI_OK;
	snprintf(reason, sizeof(reason), "%s: %s (%s)", qkdn_strerror(rv), why,
	         ctl->url);
	/* the files the command line or the network file named */
	if (rv == QKDN_E_CONFIG)
		return cli_fail_config(a, reason);
	return cli_fail_reason(a, NULL, rv, reason);
}

void
cli_ctl_close(struct cli_ctl *ctl)
{
	qkdn_sp_tls_free(ctl->tls);
	ctl->tls = NULL;
}

/* One round trip over TLS on a connection of its own (a command makes
 * one or two calls: nothing to pool), within --timeout for the connection
 * and the call together. Connecting is done here, not left to
 * qkdn_rpc_sp_call, to keep the TLS failure's own code: a certificate that
 * does not verify or names another peer is authentication_failed, as on a
 * KM's tls+tcp:// Ak, not merely unreachable. */
static int
tls_rpc(const struct cli_args *a, const struct cli_ctl *ctl,
        const struct qkdn_msg *req, struct qkdn_msg *rsp, char *why,
        size_t whylen)
{
	uint64_t deadline =
	    qkdn_now_ms() + (uint64_t)cli_timeout(a, CLI_TIMEOUT_MS);
	struct qkdn_sp_conn c = {
	    .fd = -1, .tls = ctl->tls, .peer_name = ctl->name};
	struct qkdn_decode_error err = {0};
	/* once: a controller that is not there fails at once, as an ipc
	 * socket without a daemon does on the nng path */
	int rv = qkdn_sp_connect_once(&c, ctl->url, deadline);
	if (rv != 0) {
		memset(rsp, 0, sizeof(*rsp));
		snprintf(why, whylen,
		         "cannot connect to the controller: %s (%s)",
		         qkdn_sp_last_error(), ctl->url);
		return rv;
	}
	uint64_t now = qkdn_now_ms();
	/* the reply's bytes are wiped once decoded */
	rv = qkdn_rpc_sp_call(&c, ctl->url, req, rsp, QKDN_MSG_BYTES_MAX,
	                      now < deadline ? (int)(deadline - now) : 1, &err);
	qkdn_sp_close(&c);
	if (rv != 0)
		snprintf(why, whylen, "%s (%s)",
		         rv == QKDN_E_TIMEOUT ? "no reply within the deadline"
		                              : err.reason,
		         ctl->url);
	return rv;
}

int
cli_ctl_rpc(const struct cli_args *a, const struct cli_ctl *ctl,
            const struct qkdn_msg *req, struct qkdn_msg *rsp, char *why,
            size_t whylen)
{
	if (cli_is_tls(ctl->url))
		return tls_rpc(a, ctl, req, rsp, why, whylen);
	return nng_rpc(a, ctl->url, req, rsp, why, whylen);
}

/* The outcome of one call to url, printed if it failed; CLI_OK with rsp
 * of want_type. */
static int
call_done(const struct cli_args *a, const char *url, int rv, const char *why,
          struct qkdn_msg *rsp, uint32_t want_type)
{
	if (rv != 0)
		return cli_fail(a, NULL, rv, "%s", why);
	if (rsp->type != want_type) {
		const char *name = qkdn_msg_type_name(rsp->type);
		qkdn_msg_clear(rsp);
		return cli_fail(a, NULL, QKDN_E_BAD_REQUEST,
		                "%s answered with a %s message", url,
		                name != NULL ? name : "unknown");
	}
	return CLI_OK;
}

int
cli_call(const struct cli_args *a, const char *url, const struct qkdn_msg *req,
         struct qkdn_msg *rsp, uint32_t want_type)
{
	char why[QKDN_REASON_MAX + QKDN_NET_URL_MAX + 128];
	int rv = nng_rpc(a, url, req, rsp, why, sizeof(why));
	return call_done(a, url, rv, why, rsp, want_type);
}

int
cli_ctl_call(const struct cli_args *a, const struct cli_ctl *ctl,
             const struct qkdn_msg *req, struct qkdn_msg *rsp,
             uint32_t want_type)
{
	char why[QKDN_REASON_MAX + QKDN_NET_URL_MAX + 128];
	int rv = cli_ctl_rpc(a, ctl, req, rsp, why, sizeof(why));
	return call_done(a, ctl->url, rv, why, rsp, want_type);
}
