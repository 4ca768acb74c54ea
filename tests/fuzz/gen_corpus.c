/* Writes a seed corpus for fuzz_decode: for every message type one valid
 * encoding with every field set and one with optional fields left out and
 * arrays at their smallest. Usage: gen_corpus DIR */
#include "qkdn_err.h"
#include "qkdn_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *
alloc(struct qkdn_msg *m, size_t len)
{
	void *p = qkdn_msg_alloc(m, len);
	if (p == NULL) {
		fprintf(stderr, "gen_corpus: out of memory\n");
		exit(1);
	}
	return p;
}

static void
name(qkdn_name dst, const char *src)
{
	if (qkdn_name_set(dst, src) != 0)
		abort();
}

static struct qkdn_ids
ids(struct qkdn_msg *m, uint32_t n)
{
	struct qkdn_ids r = {n, alloc(m, n * sizeof(qkdn_uuid))};
	for (uint32_t i = 0; i < n; i++)
		qkdn_uuid_random(&r.v[i]);
	return r;
}

static struct qkdn_bytes
bytes(struct qkdn_msg *m, uint32_t len)
{
	struct qkdn_bytes b = {len, alloc(m, len)};
	for (uint32_t i = 0; i < len; i++)
		b.ptr[i] = (uint8_t)(i * 37 + 11);
	return b;
}

static struct qkdn_keys
keys(struct qkdn_msg *m, uint32_t n, uint32_t len)
{
	struct qkdn_keys k = {n, alloc(m, n * sizeof(struct qkdn_key))};
	for (uint32_t i = 0; i < n; i++) {
		struct qkdn_bytes b = bytes(m, len);
		qkdn_uuid_random(&k.v[i].id);
		k.v[i].len = b.len;
		k.v[i].bytes = b.ptr;
	}
	return k;
}

static struct qkdn_route
route(struct qkdn_msg *m, uint32_t n)
{
	struct qkdn_route r = {n, alloc(m, n * sizeof(qkdn_name))};
	for (uint32_t i = 0; i < n; i++)
		snprintf(r.v[i], sizeof(r.v[i]), "node-%u", i + 1);
	return r;
}

static struct qkdn_segments
segs(struct qkdn_msg *m, uint32_t n)
{
	struct qkdn_segments s = {n, alloc(m, n * sizeof(struct qkdn_segment))};
	for (uint32_t i = 0; i < n; i++)
		s.v[i] = (struct qkdn_segment){
		    .block_id = 1000 + i, .offset = 64 * i, .len = 32 + 32 * i};
	return s;
}

/* full: every field set, arrays of a few elements; else the smallest valid
 * message of the type. */
static void
fill(struct qkdn_msg *m, uint32_t type, int full)
{
	uint32_t n = full ? 3 : 1;
	qkdn_uuid id;
	qkdn_uuid_random(&id);
	m->type = type;
	m->req_id = full ? 0x0123456789abcdefULL : 0;
	switch (type) {
	case QKDN_KEY_REQ:
		name(m->u.key_req.sae, "sae-a");
		name(m->u.key_req.dst_sae, "sae-b");
		m->u.key_req.bits = 256;
		m->u.key_req.count = n;
		break;
	case QKDN_KEY_RSP:
		m->u.key_rsp.keys = keys(m, n, 32);
		break;
	case QKDN_KEY_REQ_ID:
		name(m->u.key_req_id.sae, "sae-b");
		m->u.key_req_id.ids = ids(m, n);
		break;
	case QKDN_SESSION_CREATE_REQ:
		name(m->u.session_create_req.sae, "sae-a");
		name(m->u.session_create_req.dst_sae, "sae-b");
		if (full) {
			name(m->u.session_create_req.src_node, "node-1");
			name(m->u.session_create_req.dst_node, "node-2");
		}
		m->u.session_create_req.bits = 256;
		break;
	case QKDN_SESSION_CREATE_NOTIF:
		m->u.session_create_notif.session_id = id;
		name(m->u.session_create_notif.src_sae, "sae-a");
		name(m->u.session_create_notif.dst_sae, "sae-b");
		name(m->u.session_create_notif.src_node, "node-1");
		m->u.session_create_notif.bits = 128;
		break;
	case QKDN_SESSION_NOTIF_RSP:
		m->u.session_notif_rsp.session_id = id;
		m->u.session_notif_rsp.result =
		    full ? QKDN_E_NOT_AUTHORISED : 0;
		break;
	case QKDN_SESSION_CREATE_RSP:
		m->u.session_create_rsp.session_id = id;
		m->u.session_create_rsp.result = full ? QKDN_E_NO_ROUTE : 0;
		break;
	case QKDN_KEY_REQ_SESSION:
		m->u.key_req_session.session_id = id;
		name(m->u.key_req_session.sae, "sae-a");
		m->u.key_req_session.count = n;
		break;
	case QKDN_KEY_SUPPLY_NOTIF:
		m->u.key_supply_notif.session_id = id;
		m->u.key_supply_notif.count = n;
		m->u.key_supply_notif.bits = 256;
		m->u.key_supply_notif.ids = ids(m, full ? n : 0);
		break;
	case QKDN_PROACTIVE_SUPPLY:
		m->u.proactive_supply.session_id = id;
		m->u.proactive_supply.keys = keys(m, n, 32);
		break;
	case QKDN_PROACTIVE_SUPPLY_RSP:
		m->u.proactive_supply_rsp.session_id = id;
		m->u.proactive_supply_rsp.ids = ids(m, full ? n : 0);
		break;
	case QKDN_KEY_SUPPLY_NOTIF_RSP:
		m->u.key_supply_notif_rsp.session_id = id;
		m->u.key_supply_notif_rsp.result = full ? QKDN_E_TIMEOUT : 0;
		m->u.key_supply_notif_rsp.ids = ids(m, full ? n : 0);
		break;
	case QKDN_KEY_REQ_SESSION_RSP:
		m->u.key_req_session_rsp.session_id = id;
		m->u.key_req_session_rsp.keys = keys(m, n, 16);
		break;
	case QKDN_NEXT_HOP_REQ:
		m->u.next_hop_req.relay_id = id;
		name(m->u.next_hop_req.here, "node-1");
		name(m->u.next_hop_req.dst_node, "node-3");
		break;
	case QKDN_NEXT_HOP_RSP:
		m->u.next_hop_rsp.relay_id = id;
		m->u.next_hop_rsp.result = full ? 0 : QKDN_E_NO_ROUTE;
		if (full)
			name(m->u.next_hop_rsp.next_hop, "node-2");
		break;
	case QKDN_RELAY_DONE_NOTIF:
		m->u.relay_done_notif.relay_id = id;
		m->u.relay_done_notif.ids = ids(m, full ? n : 0);
		break;
	case QKDN_RELAY_REQ_NOTIF:
		m->u.relay_req_notif.relay_id = id;
		name(m->u.relay_req_notif.src_node, "node-1");
		name(m->u.relay_req_notif.dst_node, "node-3");
		m->u.relay_req_notif.count = n;
		m->u.relay_req_notif.bits = 256;
		break;
	case QKDN_RELAY_REQ:
		m->u.relay_req.relay_id = id;
		m->u.relay_req.route = route(m, full ? 4 : 2);
		break;
	case QKDN_KEY_RELAY:
		m->u.key_relay.relay_id = id;
		m->u.key_relay.route = route(m, full ? 4 : 2);
		m->u.key_relay.hop = 1;
		name(m->u.key_relay.src_sae, "sae-a");
		name(m->u.key_relay.dst_sae, "sae-b");
		name(m->u.key_relay.link, "link-1-2");
		m->u.key_relay.segs = segs(m, n);
		m->u.key_relay.ids = ids(m, n);
		m->u.key_relay.ciphertext = bytes(m, 32 * n);
		m->u.key_relay.tag = bytes(m, 16);
		break;
	case QKDN_RELAY_REQ_RSP:
		m->u.relay_req_rsp.relay_id = id;
		m->u.relay_req_rsp.result = full ? QKDN_E_AUTH_FAILED : 0;
		break;
	case QKDN_RESERVE_REQ:
		m->u.reserve_req.reservation_id = id;
		name(m->u.reserve_req.dst_node, "node-3");
		m->u.reserve_req.count = n;
		m->u.reserve_req.bits = 512;
		break;
	case QKDN_RESERVE_RSP:
		m->u.reserve_rsp.reservation_id = id;
		m->u.reserve_rsp.ids = ids(m, full ? n : 0);
		break;
	case QKDN_ALLOC_REQ:
		m->u.alloc_req.reservation_id = id;
		name(m->u.alloc_req.dst_node, "node-3");
		break;
	case QKDN_ALLOC_RSP:
		m->u.alloc_rsp.reservation_id = id;
		m->u.alloc_rsp.result = full ? QKDN_E_STORE : 0;
		break;
	case QKDN_ERROR:
		m->u.error.code = -QKDN_E_INSUFFICIENT_KEY;
		if (full)
			snprintf(m->u.error.reason, sizeof(m->u.error.reason),
			         "link-1-2 has 0 bytes left");
		break;
	case QKDN_STATUS_REQ:
		break;
	case QKDN_STATUS_RSP:
		name(m->u.status_rsp.node, "node-1");
		m->u.status_rsp.keys_supplied = full ? 12345 : 0;
		if (full) {
			m->u.status_rsp.n_links = n;
			m->u.status_rsp.links =
			    alloc(m, n * sizeof(struct qkdn_link_status));
			for (uint32_t i = 0; i < n; i++) {
				struct qkdn_link_status *l =
				    &m->u.status_rsp.links[i];
				snprintf(l->link, sizeof(l->link), "link-%u",
				         i);
				snprintf(l->peer, sizeof(l->peer), "node-%u",
				         i);
				l->out_bytes = 4096;
				l->up = 1;
			}
		}
		break;
	case QKDN_LINK_BLOCK:
		name(m->u.link_block.link, "link-1-2");
		m->u.link_block.block_id = 7;
		m->u.link_block.bytes = bytes(m, full ? 1024 : 1);
		break;
	case QKDN_KEY_SYNC:
		name(m->u.key_sync.link, "link-1-2");
		m->u.key_sync.segs = segs(m, n);
		m->u.key_sync.reqs.n = n;
		m->u.key_sync.reqs.v =
		    alloc(m, n * sizeof(struct qkdn_sync_req));
		for (uint32_t i = 0; i < n; i++) {
			struct qkdn_sync_req *r = &m->u.key_sync.reqs.v[i];
			name(r->src_sae, "sae-a");
			name(r->dst_sae, "sae-b");
			r->bits = 256;
			r->ids = ids(m, n);
		}
		break;
	case QKDN_ACK:
		m->u.ack.result = full ? QKDN_E_BLOCK_MISSING : 0;
		m->u.ack.value = full ? 77 : 0;
		break;
	case QKDN_KEY_SYNC_AUTH:
		m->u.key_sync_auth.sync = bytes(m, full ? 300 : 1);
		m->u.key_sync_auth.tag = bytes(m, 16);
		break;
	case QKDN_LINK_CTL:
		name(m->u.link_ctl.link, "link-1-2");
		m->u.link_ctl.action =
		    full ? QKDN_LINK_RESUME : QKDN_LINK_PAUSE;
		break;
	default:
		fprintf(stderr, "gen_corpus: no sample for type %u (%s)\n",
		        type, qkdn_msg_type_name(type));
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	int written = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (uint32_t type = 0; type < 1000; type++) {
		if (qkdn_msg_type_name(type) == NULL)
			continue;
		for (int full = 0; full < 2; full++) {
			struct qkdn_msg m;
			struct qkdn_buf b = {0};
			char path[4096];
			FILE *f;
			int rv;
			memset(&m, 0, sizeof(m));
			fill(&m, type, full);
			if ((rv = qkdn_msg_encode(&m, qkdn_buf_write, &b)) !=
			    0) {
				fprintf(stderr, "gen_corpus: type %u: %s\n",
				        type, qkdn_strerror(rv));
				return 1;
			}
			snprintf(path, sizeof(path), "%s/seed-%03u-%s.msgpack",
			         argv[1], type, full ? "full" : "min");
			if ((f = fopen(path, "wb")) == NULL ||
			    fwrite(b.data, 1, b.len, f) != b.len ||
			    fclose(f) != 0) {
				perror(path);
				return 1;
			}
			qkdn_buf_free(&b);
			qkdn_msg_clear(&m);
			written++;
		}
	}
	printf("gen_corpus: wrote %d seeds to %s\n", written, argv[1]);
	return 0;
}
