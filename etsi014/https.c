#include "https.h"

#include "qkdn_err.h"
#include "qkdn_log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC          "https"
#define BODY_MAX     (512u << 10) /* 4096 key IDs fit with room */
#define HEADERS_MAX  (16u << 10)
#define IDLE_S       60
#define NAME_MAX_LEN 63 /* an SAE ID */

struct job {
	struct job *next;
	struct evhttp_request *req; /* touched on the loop thread only */
	char method[8];
	char *path, *query, *body;
	size_t body_len;
	char sae[NAME_MAX_LEN + 1];
	struct https_rsp rsp;
};

struct https {
	struct https_config cfg;
	SSL_CTX *ctx;
	struct event_base *base;
	struct evhttp *http;
	struct event *done_ev;
	pthread_t loop;
	bool loop_started;
	pthread_t *workers;
	int n_workers;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	struct job *todo, **todo_tail, *done;
	bool stopping;
	struct qkdn_log_limit refusals;
};

static void
wipe_free(char *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

static void
job_free(struct job *j)
{
	free(j->path);
	free(j->query);
	free(j->body);
	wipe_free(j->rsp.body, j->rsp.len);
	free(j);
}

void
https_rsp_text(struct https_rsp *rs, int status, const char *text)
{
	rs->status = status;
	rs->len = strlen(text);
	rs->body = strdup(text);
	if (rs->body == NULL)
		rs->len = 0;
}

static const char *
reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

/* libevent calls this once the bytes left the output buffer (into
 * OpenSSL, which encrypts them): the plaintext reply is wiped. */
static void
cleanup_body(const void *data, size_t len, void *arg)
{
	(void)arg;
	wipe_free((char *)data, len);
}

static void
send_reply(struct job *j)
{
	struct evkeyvalq *hd = evhttp_request_get_output_headers(j->req);
	evhttp_add_header(hd, "Content-Type", "application/json");
	struct evbuffer *b = j->rsp.len > 0 ? evbuffer_new() : NULL;
	if (b != NULL && evbuffer_add_reference(b, j->rsp.body, j->rsp.len,
	                                        cleanup_body, NULL) == 0)
		j->rsp.body = NULL; /* the buffer owns it now */
	evhttp_send_reply(j->req, j->rsp.status, reason_phrase(j->rsp.status),
	                  b);
	if (b != NULL)
		evbuffer_free(b);
}

/* Loop thread: the workers' replies. */
static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	struct https *h = arg;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&h->mtx);
	struct job *j = h->done;
	h->done = NULL;
	pthread_mutex_unlock(&h->mtx);
	while (j != NULL) {
		struct job *next = j->next;
		send_reply(j);
		job_free(j);
		j = next;
	}
}

static void *
worker_main(void *arg)
{
	struct https *h = arg;
	pthread_mutex_lock(&h->mtx);
	for (;;) {
		while (h->todo == NULL && !h->stopping)
			pthread_cond_wait(&h->cv, &h->mtx);
		if (h->stopping)
			break;
		struct job *j = h->todo;
		h->todo = j->next;
		if (h->todo == NULL)
			h->todo_tail = &h->todo;
		pthread_mutex_unlock(&h->mtx);
		struct https_req rq = {.method = j->method,
		                       .path = j->path,
		                       .query = j->query,
		                       .body = j->body,
		                       .body_len = j->body_len,
		                       .sae = j->sae};
		h->cfg.handler(h->cfg.arg, &rq, &j->rsp);
		pthread_mutex_lock(&h->mtx);
		j->next = h->done;
		h->done = j;
		event_active(h->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&h->mtx);
	return NULL;
}

/* The SAE a verified client certificate names: its subject CN, or its
 * first DNS subjectAltName. An empty, long or NUL-carrying one is none. */
static bool
copy_name(const ASN1_STRING *s, char out[NAME_MAX_LEN + 1])
{
	int len = ASN1_STRING_length(s);
	const unsigned char *d = ASN1_STRING_get0_data(s);
	if (len <= 0 || len > NAME_MAX_LEN || memchr(d, '\0', (size_t)len))
		return false;
	memcpy(out, d, (size_t)len);
	out[len] = '\0';
	return true;
}

static bool
peer_sae(const struct https *h, struct evhttp_request *req,
         char out[NAME_MAX_LEN + 1])
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev =
	    c != NULL ? evhttp_connection_get_bufferevent(c) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *cert = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	if (!h->cfg.sae_dns) {
		X509_NAME *n = X509_get_subject_name(cert);
		int i = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
		return i >= 0 && copy_name(X509_NAME_ENTRY_get_data(
		                               X509_NAME_get_entry(n, i)),
		                           out);
	}
	GENERAL_NAMES *sans =
	    X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	bool ok = false;
	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type == GEN_DNS) {
			ok = copy_name(g->d.dNSName, out);
			break;
		}
	}
	GENERAL_NAMES_free(sans);
	return ok;
}

static void
refuse(struct evhttp_request *req, int status, const char *json)
{
	struct evbuffer *b = evbuffer_new();
	if (b != NULL)
		evbuffer_add(b, json, strlen(json));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	                  "Content-Type", "application/json");
	evhttp_send_reply(req, status, reason_phrase(status), b);
	if (b != NULL)
		evbuffer_free(b);
}

/* Loop thread: copy what the handler needs and queue it. */
static void
on_request(struct evhttp_request *req, void *arg)
{
	struct https *h = arg;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		refuse(req, 503, "{\"message\":\"out of memory\"}");
		return;
	}
	j->req = req;
	snprintf(j->method, sizeof(j->method), "%s",
	         evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST"
	                                                            : "GET");
	if (!peer_sae(h, req, j->sae)) {
		QLOG_LIMITED(&h->refusals, QKDN_LOG_INFO, SRC, "%s",
		             "a client certificate names no SAE: refused");
		refuse(req, 401,
		       "{\"message\":\"the client certificate names no "
		       "SAE\"}");
		job_free(j);
		return;
	}
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u != NULL ? evhttp_uri_get_path(u) : NULL;
	const char *query = u != NULL ? evhttp_uri_get_query(u) : NULL;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	j->body_len = evbuffer_get_length(in);
	j->path = evhttp_uridecode(path != NULL ? path : "/", 0, NULL);
	j->query = query != NULL ? strdup(query) : NULL;
	j->body = malloc(j->body_len + 1);
	if (j->path == NULL || (query != NULL && j->query == NULL) ||
	    j->body == NULL) {
		refuse(req, 503, "{\"message\":\"out of memory\"}");
		job_free(j);
		return;
	}
	evbuffer_copyout(in, j->body, j->body_len);
	j->body[j->body_len] = '\0';
	pthread_mutex_lock(&h->mtx);
	*h->todo_tail = j;
	h->todo_tail = &j->next;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mtx);
}

static struct bufferevent *
make_bev(struct event_base *base, void *arg)
{
	struct https *h = arg;
	SSL *ssl = SSL_new(h->ctx);
	if (ssl == NULL)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* clients (curl) often close without close_notify */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static int
ssl_fail(char *why, size_t whylen, const char *what, const char *file)
{
	char e[256] = "";
	unsigned long code = ERR_get_error();
	if (code != 0)
		ERR_error_string_n(code, e, sizeof(e));
	ERR_clear_error();
	snprintf(why, whylen, "%s %s: %s", what, file, e);
	return QKDN_E_CONFIG;
}

/* Server certificate and key; clients must show a certificate the CA
 * signed for client authentication (OpenSSL checks the purpose). */
static int
make_ctx(struct https *h, char *why, size_t whylen)
{
	const struct https_config *c = &h->cfg;
	static const unsigned char sid_ctx[] = "qkdn-etsi014";
	SSL_CTX *ctx = h->ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return ssl_fail(why, whylen, "TLS context", "");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1)
		return ssl_fail(why, whylen, "certificate", c->cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		return ssl_fail(why, whylen, "key", c->key);
	if (SSL_CTX_load_verify_locations(ctx, c->ca, NULL) != 1)
		return ssl_fail(why, whylen, "CA", c->ca);
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->ca);
	if (names != NULL)
		SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(
	    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* resumed sessions keep the client's identity */
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	return 0;
}

/* "https://HOST:PORT" into host (brackets of an IPv6 literal dropped). */
static int
split_url(const char *url, char *host, size_t hostlen, unsigned *port)
{
	const char *h = url + strlen("https://"), *colon = strrchr(h, ':');
	if (strncmp(url, "https://", 8) != 0 || colon == NULL)
		return -1;
	size_t n = (size_t)(colon - h);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || p == 0 || p > 65535)
		return -1;
	*port = (unsigned)p;
	return 0;
}

static void *
loop_main(void *arg)
{
	struct https *h = arg;
	event_base_dispatch(h->base);
	return NULL;
}

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static void
use_threads(void)
{
	evthread_use_pthreads();
}

static int
setup(struct https *h, char *why, size_t whylen)
{
	char host[256];
	unsigned port;
	int rv;
	if (split_url(h->cfg.url, host, sizeof(host), &port) != 0) {
		snprintf(why, whylen, "'%s' is not https://HOST:PORT",
		         h->cfg.url);
		return QKDN_E_CONFIG;
	}
	if ((rv = make_ctx(h, why, whylen)) != 0)
		return rv;
	if ((h->base = event_base_new()) == NULL ||
	    (h->http = evhttp_new(h->base)) == NULL ||
	    (h->done_ev = event_new(h->base, -1, 0, on_done, h)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return QKDN_E_NOMEM;
	}
	evhttp_set_bevcb(h->http, make_bev, h);
	evhttp_set_gencb(h->http, on_request, h);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_max_body_size(h->http, BODY_MAX);
	evhttp_set_max_headers_size(h->http, HEADERS_MAX);
	evhttp_set_timeout(h->http, IDLE_S);
	struct evhttp_bound_socket *bound =
	    evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port);
	if (bound == NULL) {
		snprintf(why, whylen, "cannot listen on %s", h->cfg.url);
		return QKDN_E_IO;
	}
	/* accepted sockets inherit it (Linux): a reply's header and body go
	 * out at once, not the body a delayed ACK (40 ms) later */
	int one = 1;
	setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY,
	           &one, sizeof(one));
	return 0;
}

int
https_start(struct https **out, const struct https_config *cfg, char *why,
            size_t whylen)
{
	struct https *h = calloc(1, sizeof(*h));
	int rv;
	if (h == NULL)
		return QKDN_E_NOMEM;
	pthread_once(&threads_once, use_threads);
	h->cfg = *cfg;
	h->n_workers = cfg->workers > 0 ? cfg->workers : 1;
	h->todo_tail = &h->todo;
	pthread_mutex_init(&h->mtx, NULL);
	pthread_cond_init(&h->cv, NULL);
	if ((rv = setup(h, why, whylen)) != 0)
		goto fail;
	rv = QKDN_E_NOMEM;
	snprintf(why, whylen, "cannot start threads");
	if ((h->workers = calloc((size_t)h->n_workers, sizeof(pthread_t))) ==
	    NULL)
		goto fail;
	for (int i = 0; i < h->n_workers; i++)
		if (pthread_create(&h->workers[i], NULL, worker_main, h) != 0) {
			h->n_workers = i;
			goto fail;
		}
	if (pthread_create(&h->loop, NULL, loop_main, h) != 0)
		goto fail;
	h->loop_started = true;
	*out = h;
	return 0;
fail:
	https_stop(h);
	return rv;
}

void
https_stop(struct https *h)
{
	if (h == NULL)
		return;
	if (h->loop_started) {
		event_base_loopbreak(h->base);
		pthread_join(h->loop, NULL);
	}
	pthread_mutex_lock(&h->mtx);
	h->stopping = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mtx);
	for (int i = 0; h->workers != NULL && i < h->n_workers; i++)
		pthread_join(h->workers[i], NULL);
	/* replies never sent: evhttp_free frees their requests */
	for (struct job *j = h->todo, *n; j != NULL; j = n) {
		n = j->next;
		job_free(j);
	}
	for (struct job *j = h->done, *n; j != NULL; j = n) {
		n = j->next;
		job_free(j);
	}
	if (h->http != NULL)
		evhttp_free(h->http);
	if (h->done_ev != NULL)
		event_free(h->done_ev);
	if (h->base != NULL)
		event_base_free(h->base);
	SSL_CTX_free(h->ctx);
	pthread_mutex_destroy(&h->mtx);
	pthread_cond_destroy(&h->cv);
	free(h->workers);
	free(h);
}
