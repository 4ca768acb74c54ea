/* HTTPS with mutual TLS for the gateway (and the benchmark's floor):
 * libevent's evhttp over OpenSSL bufferevents (docs/etsi014.md says why),
 * HTTP/1.1 keep-alive. One thread runs the event loop; a request is
 * handed, copied, to a pool of workers (the handler may block on the KM),
 * and its reply goes back to the loop, which sends it. The calling SAE is
 * the one its verified client certificate names, never the request. */
#ifndef ETSI_HTTPS_H
#define ETSI_HTTPS_H

#include <stdbool.h>
#include <stddef.h>

struct https;

/* What a worker sees of a request. */
struct https_req {
	const char *method; /* "GET", "POST" */
	const char *path;   /* decoded path, no query */
	const char *query;  /* raw query string, or NULL */
	const char *body;   /* NUL-terminated copy */
	size_t body_len;
	const char *sae; /* from the client certificate */
};

/* A worker's reply: body is malloc'd (may hold key material) and is
 * wiped and freed once sent. */
struct https_rsp {
	int status;
	char *body;
	size_t len;
};

typedef void (*https_handler)(void *arg, const struct https_req *rq,
                              struct https_rsp *rs);

struct https_config {
	const char *url; /* https://HOST:PORT */
	const char *cert, *key;
	const char *ca; /* verifies the clients' certificates */
	bool sae_dns;   /* caller = first DNS SAN, not the subject CN */
	int workers;    /* handler threads */
	https_handler handler;
	void *arg;
};

/* Bind, then serve on a thread of its own. 0, or a qkdn error with why. */
int https_start(struct https **out, const struct https_config *cfg, char *why,
                size_t whylen) __attribute__((warn_unused_result));
/* Stop serving, join every thread, free. */
void https_stop(struct https *h);

/* A reply body of text (copied), for errors and the floor. */
void https_rsp_text(struct https_rsp *rs, int status, const char *text);

#endif
