/* ETSI GS QKD 014 v1.1.1 on the KM core: status, enc_keys (a key request)
 * and dec_keys (a key request with ID), with the spec's Status, Key
 * request, Key container, Key IDs and Error objects. Runs on the HTTPS
 * workers (https.h); may block on the KM. */
#ifndef ETSI_API_H
#define ETSI_API_H

#include "https.h"

#include <stdint.h>

struct qkdn_net;
struct kmc;
struct stock;

struct api {
	const struct qkdn_net *net;
	int node;            /* this gateway's node */
	struct kmc *kmc;     /* its KM */
	struct stock *stock; /* keys ahead of enc_keys, or NULL */
	uint32_t key_bits;   /* key_size when a request names none */
};

/* The https_handler of the gateway; arg is a struct api. */
void api_handle(void *arg, const struct https_req *rq, struct https_rsp *rs);

/* cJSON frees through a wiping free from now on: a reply's tree and text
 * hold keys in base64. Call once before serving. */
void api_json_wipe_hooks(void);

#endif
