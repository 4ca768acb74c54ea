/* The network file: nodes, QKD links, SAEs and the controller mode of one
 * QKD network, in openssl.cnf INI syntax read with OpenSSL's CONF API.
 * docs/network-file.md is the reference; examples/two-node.cnf a sample.
 *
 *   [qkdn]                  # the root section
 *   nodes = A, B            # sections describing nodes
 *   links = A_B             # sections describing links
 *   saes  = alice, bob      # sections describing SAEs
 *   controller = distributed   # or centralized
 *   sim = sim.ctl           # emulator control address (optional)
 *   ca = ca.pem             # CA of every tls+tcp:// certificate
 *   ck = central.ck         # centralized: the controller's Ck address
 *
 *   [A]                     # a node; its ID is the section name unless
 *   ak = A.ak               # "id = ..." is given. Addresses without "://"
 *   kx = tcp://127.0.0.1:17101  # are ipc sockets in the run directory.
 *   kq = A.kq
 *   ck = A.ck               # distributed: this node's controller (Ck)
 *   cx = A.cx               # distributed: its Cx, for peer controllers
 *   store = A.db            # relative paths are in the run directory
 *   storage_key = A.storage.key   # the store's sealing key (default)
 *   kq_uid = 0              # uid of the QKD module (default: the KM's)
 *   cert = A.pem            # TLS certificate (CN = node ID) and key, for
 *   key = A.key             # tls+tcp:// addresses (docs/tls.md)
 *   ak_trusted = yes        # a tcp:// ak (loopback only) serves keys
 *   etsi014 = https://127.0.0.1:8443  # ETSI 014 gateway (docs/etsi014.md)
 *
 *   [A_B]
 *   nodes = A, B
 *   rate = 1000000          # secret key rate, bits/s
 *   kme = https://kme:443   # fed by ETSI 014 KMEs, not the emulator:
 *   kme_ca = kme-ca.pem     # kme_master_{sae,cert,key} (node[0]) and
 *                           # kme_slave_{sae,cert,key}, kme_slave_url
 *
 *   [alice]
 *   node = A
 */
#ifndef QKDN_NETCONF_H
#define QKDN_NETCONF_H

#include "qkdn_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QKDN_NET_URL_MAX   256
#define QKDN_NET_PATH_MAX  512
#define QKDN_NET_NODES_MAX 64
#define QKDN_NET_LINKS_MAX 256
#define QKDN_NET_SAES_MAX  1024

struct qkdn_net_node {
	qkdn_name id;
	char ak_url[QKDN_NET_URL_MAX]; /* Ak: applications -> this KM */
	char kx_url[QKDN_NET_URL_MAX]; /* Kx: peer KMs -> this KM */
	char kq_url[QKDN_NET_URL_MAX]; /* Kq-1: emulator -> this KM */
	/* distributed mode: this node's controller, Ck (its KM -> it, and
	 * CLI queries) and Cx (peer controllers -> it) */
	char ck_url[QKDN_NET_URL_MAX];
	char cx_url[QKDN_NET_URL_MAX];
	char store[QKDN_NET_PATH_MAX]; /* LMDB directory */
	/* node storage key file, kept apart from the store it seals */
	char storage_key[QKDN_NET_PATH_MAX];
	/* this node's TLS certificate (CN = id) and key: for its tls+tcp://
	 * listeners and as a Kx client of tls+tcp:// peers */
	char cert[QKDN_NET_PATH_MAX];
	char key[QKDN_NET_PATH_MAX];
	bool ak_trusted;    /* a tcp:// Ak (loopback) may serve key requests */
	int64_t kq_uid;     /* Kq-1 peers must run as this uid; -1: the KM's */
	uint64_t map_bytes; /* LMDB map size (default 1 GiB) */
	uint32_t key_ttl_s; /* unfetched keys expire (default 600) */
	uint32_t kx_timeout_ms; /* KM to KM deadline (default 2000) */
	/* ETSI GS QKD 014 gateway of this node (docs/etsi014.md), or "" */
	char etsi014_url[QKDN_NET_URL_MAX]; /* https://127.0.0.1:PORT */
	/* its HTTPS certificate and key (also its Ak client certificate on a
	 * tls+tcp:// Ak) and the CA of the SAEs' client certificates; when
	 * the file names none, a test PKI in <run_dir>/etsi014-pki */
	char etsi014_cert[QKDN_NET_PATH_MAX];
	char etsi014_key[QKDN_NET_PATH_MAX];
	char etsi014_ca[QKDN_NET_PATH_MAX];
	bool etsi014_test_pki; /* the paths above are the test PKI's */
	/* how the KM knows the gateway: its certificate CN on a tls+tcp://
	 * Ak (default "etsi014-<id>"), its uid on ipc:// (-1: the KM's) */
	qkdn_name etsi014_name;
	int64_t etsi014_uid;
	bool etsi014_sae_dns; /* the caller is its cert's first DNS SAN */
	/* keys the gateway holds ahead of enc_keys per (caller, slave, size)
	 * (etsi014/stock.h); 0: none (default 32) */
	uint32_t etsi014_stock;
};

/* One end of a link fed by ETSI GS QKD 014 KMEs: where its KM asks, with
 * which client certificate, as which SAE (docs/etsi014.md, southbound). */
struct qkdn_net_kme_end {
	char url[QKDN_NET_URL_MAX]; /* https://HOST[:PORT], no trailing / */
	char cert[QKDN_NET_PATH_MAX];
	char key[QKDN_NET_PATH_MAX];
	qkdn_name sae;
};

struct qkdn_net_link {
	qkdn_name id;
	int node[2];          /* indices into nodes; node[0] < node[1] by ID */
	uint64_t rate_bps;    /* emulated secret key rate, bits/s */
	uint32_t block_bytes; /* key block size (default 4096) */
	uint64_t
	    pool_max_bytes; /* KM keeps at most this much (default 64 MiB) */
	/* fed by KMEs instead of the emulator when kme[0].url is set:
	 * kme[0] is the master end, node[0] (enc_keys), kme[1] node[1]
	 * (dec_keys); kme_ca is the CA of the KMEs' server certificates */
	struct qkdn_net_kme_end kme[2];
	char kme_ca[QKDN_NET_PATH_MAX];
};

struct qkdn_net_sae {
	qkdn_name id;
	int node;    /* index into nodes */
	int64_t uid; /* if >= 0, Ak peers must run as this uid */
};

enum qkdn_ctl_mode { QKDN_CTL_DISTRIBUTED = 0, QKDN_CTL_CENTRALIZED = 1 };

struct qkdn_net {
	char path[QKDN_NET_PATH_MAX];    /* the file read */
	char run_dir[QKDN_NET_PATH_MAX]; /* absolute */
	char sim_url[QKDN_NET_URL_MAX];  /* emulator control (REP) */
	char ca[QKDN_NET_PATH_MAX];      /* CA of every tls+tcp:// peer */
	/* centralized mode: the controller's Ck address (KMs, CLI) */
	char central_ck_url[QKDN_NET_URL_MAX];
	/* centralized mode over TLS: the central controller's certificate
	 * and key (its Ck server; its orders to tls+tcp:// Kx), and the name
	 * (subject CN) that certificate carries, which KMs check */
	char ctl_cert[QKDN_NET_PATH_MAX];
	char ctl_key[QKDN_NET_PATH_MAX];
	qkdn_name ctl_name;
	enum qkdn_ctl_mode controller;
	/* [qkdn] log_level: error, warn, info or debug (QKDN_LOG_*); -1 when
	 * the file names none (QKDN_LOG_LEVEL or info then). The one key a
	 * SIGHUP applies to running daemons. */
	int log_level;
	size_t n_nodes, n_links, n_saes;
	struct qkdn_net_node nodes[QKDN_NET_NODES_MAX];
	struct qkdn_net_link links[QKDN_NET_LINKS_MAX];
	struct qkdn_net_sae saes[QKDN_NET_SAES_MAX];
};

/* Read and check a network file. run_dir (may be NULL) overrides the file's
 * run_dir; the default is "./run" next to the current directory. On failure
 * returns QKDN_E_CONFIG and writes "FILE:LINE: reason" to err. The struct is
 * large: allocate it on the heap. */
int qkdn_net_load(const char *path, const char *run_dir, struct qkdn_net *out,
                  char *err, size_t errlen) __attribute__((warn_unused_result));

/* Lookups: index or -1. */
int qkdn_net_node_index(const struct qkdn_net *net, const char *id);
int qkdn_net_sae_index(const struct qkdn_net *net, const char *id);
/* The link between two nodes (by index), or -1 if not direct neighbours. */
int qkdn_net_link_between(const struct qkdn_net *net, int a, int b);
int qkdn_net_link_index(const struct qkdn_net *net, const char *id);

#endif
