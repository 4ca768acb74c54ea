/* qkdn Ak client: how an application (the CLI, the OpenSSL provider, your
 * program) gets keys from its key manager, as in ITU-T Q.4160 I.1.
 *
 *   struct qkdn_ak *ak;
 *   qkdn_ak_open(&ak, "ipc:///run/qkdn/A.ak", "alice", 2000);
 *   qkdn_ak_get_keys(ak, "bob", 256, 1, keys);       // source side
 *   qkdn_ak_get_keys_by_id(ak, &keys[0].id, 1, out); // destination side
 *
 * Over tls+tcp:// the KM is authenticated by its certificate (chain to
 * the network's CA, subject CN = its node ID) and the SAE by its own
 * (subject CN = the SAE ID); see struct qkdn_ak_opts.
 *
 * A handle may be used from several threads at once. Every call waits at
 * most the handle's timeout. Calls return 0 or a negative qkdn error code
 * (qkdn_err.h); qkdn_ak_last_error() then gives the reason.
 *
 * The types here are the application's, not the wire's: this header
 * includes no message header, and libqkdn converts to and from the
 * messages, so an application is not rebuilt when the wire changes. */
#ifndef QKDN_AK_H
#define QKDN_AK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QKDN_AK_NAME_MAX      64   /* SAE, node, link IDs: 1..63 bytes, NUL */
#define QKDN_AK_KEY_BYTES_MAX 1024 /* one key: up to 8192 bits */
#define QKDN_AK_KEYS_MAX      4096 /* keys or key IDs in one call */
#define QKDN_KEY_ID_TEXT_LEN  37   /* 36 characters and the NUL */
#define QKDN_AK_REASON_MAX    256  /* reasons: up to 255 bytes, NUL */

struct qkdn_ak;

/* A key's ID (a UUID): what the source application tells the destination
 * application (in TLS, the handshake carries it) so that it fetches the
 * same key from its own KM. */
typedef struct {
	uint8_t b[16];
} qkdn_key_id;

/* The text form, "a496b2ee-408a-4077-8e6e-c1aeb7487741" (lowercase hex on
 * output, either case on input). parse returns 0, or QKDN_E_BAD_REQUEST
 * and leaves out alone. */
void qkdn_key_id_format(const qkdn_key_id *id, char out[QKDN_KEY_ID_TEXT_LEN]);
int qkdn_key_id_parse(const char *text, qkdn_key_id *out)
    __attribute__((warn_unused_result));

struct qkdn_ak_key {
	qkdn_key_id id;
	uint32_t len; /* bytes */
	uint8_t bytes[QKDN_AK_KEY_BYTES_MAX];
};

/* km_url is ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT (the last
 * needs qkdn_ak_open_opts). Opening contacts nobody: connections are made
 * per call. */
int qkdn_ak_open(struct qkdn_ak **out, const char *km_url, const char *sae,
                 int timeout_ms) __attribute__((warn_unused_result));

/* What qkdn_ak_open_opts takes besides the KM and the SAE. Zero it, then
 * set what applies; a field added later is zero for old callers. */
struct qkdn_ak_opts {
	int timeout_ms; /* deadline of each call; <= 0: 5000 */
	/* For a tls+tcp:// KM, PEM files (required there, unused for
	 * ipc:// and tcp://): */
	const char *ca;   /* the network's CA, which signs the KM */
	const char *cert; /* this SAE's certificate (subject CN = SAE ID) */
	const char *key;  /* its private key */
	/* The KM's node ID: its certificate's subject CN must equal it.
	 * NULL: any server certificate the CA signed. */
	const char *km_name;
};

/* As qkdn_ak_open, with options; opts may be NULL. The files are read
 * here, so a missing or bad one fails at once (QKDN_E_CONFIG). */
int qkdn_ak_open_opts(struct qkdn_ak **out, const char *km_url, const char *sae,
                      const struct qkdn_ak_opts *opts)
    __attribute__((warn_unused_result));
void qkdn_ak_close(struct qkdn_ak *ak);

/* Key request: count keys of bits each, shared with dst_sae. out must hold
 * count entries. */
int qkdn_ak_get_keys(struct qkdn_ak *ak, const char *dst_sae, uint32_t bits,
                     uint32_t count, struct qkdn_ak_key *out)
    __attribute__((warn_unused_result));

/* Key request with ID: the keys for count IDs made for this SAE. */
int qkdn_ak_get_keys_by_id(struct qkdn_ak *ak, const qkdn_key_id *ids,
                           uint32_t count, struct qkdn_ak_key *out)
    __attribute__((warn_unused_result));
/* The same, and each key must have been requested by src_sae (ETSI 014's
 * master_SAE_ID): a key of another source is QKDN_E_NOT_AUTHORISED and
 * nothing is taken. A KM older than this check ignores it. */
int qkdn_ak_get_keys_by_id_from(struct qkdn_ak *ak, const char *src_sae,
                                const qkdn_key_id *ids, uint32_t count,
                                struct qkdn_ak_key *out)
    __attribute__((warn_unused_result));

/* A KM's state, as `qkdn status` shows it. */
struct qkdn_ak_link_status {
	char link[QKDN_AK_NAME_MAX];
	char peer[QKDN_AK_NAME_MAX]; /* the node at the other end */
	uint64_t out_bytes;          /* key left for keys this node starts */
	uint64_t in_bytes;           /* key left for the peer's keys */
	uint64_t blocks;             /* link key blocks held */
	bool up;                     /* the peer KM answered lately */
	bool in_sync;                /* the last key sync authenticated */
	uint64_t sync_failures;      /* key syncs that failed authentication */
	uint64_t out_max_bytes;      /* cap on out_bytes (0: not reported) */
	/* why the link is down at this node when its keys come from an ETSI
	 * 014 KME that fails ("" otherwise, and from an older KM) */
	char down[QKDN_AK_REASON_MAX];
};

/* Key relay as one KM saw it (a KM that reports none leaves it zero). */
struct qkdn_ak_relay_status {
	uint64_t started;   /* relays this KM began (source, or KM2 in I.4b) */
	uint64_t completed; /* of those, completed (notification verified) */
	uint64_t failed;    /* of those, failed or timed out */
	uint64_t in_flight; /* of those, still waiting */
	uint64_t forwarded; /* key relays passed on (intermediate node) */
	uint64_t delivered; /* key relays ending here (destination node) */
	uint64_t rejected;  /* key relays refused (MAC, replay, order) */
	uint64_t next_hop_reqs;    /* next hop requests sent (14) */
	uint64_t relay_req_notifs; /* relay request notifications sent (17) */
	uint64_t relay_req_rsps;   /* relay request responses sent (20) */
	uint64_t done_notifs;      /* completion notifications sent (16) */
	uint64_t reservations;     /* reservation requests served (21) */
	uint64_t allocations;      /* allocation requests served (23) */
	uint64_t keys_relayed;     /* keys delivered by completed relays */
};

/* links is allocated for as many links as the KM reports, rather than
 * being a fixed array: a fixed one would build the wire's limit on links
 * into every caller's struct (and this ABI), and cost each status call
 * some 10 KiB for a node that has one or two. */
struct qkdn_ak_status {
	char node[QKDN_AK_NAME_MAX];
	uint64_t supplied;  /* key ends handed to applications */
	uint64_t pending;   /* keys waiting for their destination */
	uint64_t errors;    /* error replies sent: ak_errors + kx_errors */
	uint64_t ak_errors; /* to applications */
	uint64_t kx_errors; /* to peer KMs */
	size_t n_links;
	struct qkdn_ak_link_status *links;
	/* last, so that the members above keep their offsets */
	struct qkdn_ak_relay_status relay;
	/* what the KM enforces on key requests (zero: a KM that does not
	 * say) */
	struct qkdn_ak_limits {
		uint32_t max_keys; /* keys or key IDs in one request */
		uint32_t min_bits; /* size of one key */
		uint32_t max_bits;
		uint64_t max_request_bytes; /* key in one key request */
	} limits;
};

/* Status of the KM into out (zeroed on failure); free it with
 * qkdn_ak_status_free(). */
int qkdn_ak_status(struct qkdn_ak *ak, struct qkdn_ak_status *out)
    __attribute__((warn_unused_result));
/* Free what a status holds and zero it (safe on a zeroed one). */
void qkdn_ak_status_free(struct qkdn_ak_status *st);

/* Reason for the last failure of this thread's calls (never NULL). */
const char *qkdn_ak_last_error(void);

/* Wipe n keys. */
void qkdn_ak_keys_wipe(struct qkdn_ak_key *keys, size_t n);

#endif
