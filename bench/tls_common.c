/* qkdn-bench tls: the TLS pieces both benchmarks use (tls.h). */
#include "tls.h"

#include "qkdn_err.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Collects ERR_print_errors_cb's lines into a 512-byte buffer. */
static int
err_line(const char *str, size_t len, void *u)
{
	char *buf = u;
	size_t have = strlen(buf);
	if (have + len + 1 < 512) {
		memcpy(buf + have, str, len);
		buf[have + len] = '\0';
	}
	return 1;
}

void
bench_tls_errors(char *why, size_t whylen, const char *what)
{
	char errs[512] = "";
	ERR_print_errors_cb(err_line, errs);
	errs[strcspn(errs, "\n")] = '\0';
	snprintf(why, whylen, "%s: %s", what,
	         errs[0] != '\0' ? errs : "no error on the queue");
}

int
bench_tls_cert_make(struct bench_tls_cert *c)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	unsigned char *p;
	int ok = 0;
	if (pk == NULL || x == NULL)
		goto out;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
	    !X509_set_pubkey(x, pk) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                (const unsigned char *)"qkdn-bench", -1,
	                                -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_sign(x, pk, EVP_sha256()))
		goto out;
	c->x509_len = i2d_X509(x, NULL);
	c->key_len = i2d_PrivateKey(pk, NULL);
	if (c->x509_len <= 0 || c->key_len <= 0 ||
	    (c->x509 = malloc((size_t)c->x509_len)) == NULL ||
	    (c->key = malloc((size_t)c->key_len)) == NULL)
		goto out;
	p = c->x509;
	i2d_X509(x, &p);
	p = c->key;
	i2d_PrivateKey(pk, &p);
	ok = 1;
out:
	X509_free(x);
	EVP_PKEY_free(pk);
	return ok ? 0 : QKDN_E_INTERNAL;
}

void
bench_tls_cert_free(struct bench_tls_cert *c)
{
	if (c->key != NULL)
		OPENSSL_cleanse(c->key, (size_t)c->key_len);
	free(c->key);
	free(c->x509);
}

/* The certificate and its key, in the context's library context. */
static int
use_cert(SSL_CTX *ctx, OSSL_LIB_CTX *lib, const struct bench_tls_cert *c)
{
	const unsigned char *p = c->x509;
	X509 *x = X509_new_ex(lib, NULL);
	EVP_PKEY *pk;
	int ok = x != NULL && d2i_X509(&x, &p, c->x509_len) != NULL;
	p = c->key;
	pk = d2i_AutoPrivateKey_ex(NULL, &p, c->key_len, lib, NULL);
	ok = ok && pk != NULL && SSL_CTX_use_certificate(ctx, x) == 1 &&
	     SSL_CTX_use_PrivateKey(ctx, pk) == 1;
	X509_free(x);
	EVP_PKEY_free(pk);
	return ok;
}

SSL_CTX *
bench_tls_ctx(OSSL_LIB_CTX *lib, bool server, const char *group,
              const struct bench_tls_cert *c)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(
	    lib, NULL, server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL ||
	    !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    SSL_CTX_set1_groups_list(ctx, group) != 1 ||
	    (server &&
	     (!use_cert(ctx, lib, c) || !SSL_CTX_set_num_tickets(ctx, 0)))) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (!server)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

/* ---- provider configurations ---- */

static int
write_cnf(const char *path, const struct bench_tls_opts *op, const char *km,
          const char *sae, int batch, bool activate)
{
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		bench_note("cannot write %s: %s", path, strerror(errno));
		return QKDN_E_IO;
	}
	fprintf(f,
	        "# written by qkdn-bench tls\n"
	        "openssl_conf = openssl_init\n[openssl_init]\n"
	        "providers = provider_sect\n[provider_sect]\n"
	        "default = default_sect\nqkdn = qkdn_sect\n"
	        "[default_sect]\nactivate = 1\n[qkdn_sect]\nmodule = %s\n"
	        "%skm = %s\nsae = %s\ntimeout_ms = %d\nbatch = %d\n",
	        op->provider, activate ? "activate = 1\n" : "", km, sae,
	        BENCH_TLS_KM_TIMEOUT_MS, batch);
	return fclose(f) == 0 ? 0 : QKDN_E_IO;
}

int
bench_tls_write_cnfs(struct bench_tls *t)
{
	const char *dir = t->net->dir, *km_a = bench_net_ak_url(t->net, 0),
	           *km_b = bench_net_ak_url(t->net, 1);
	int rv;
	snprintf(t->server_cnf[0], sizeof(t->server_cnf[0]), "%s/server.cnf",
	         dir);
	snprintf(t->server_cnf[1], sizeof(t->server_cnf[1]),
	         "%s/server-batch1.cnf", dir);
	snprintf(t->client_cnf, sizeof(t->client_cnf), "%s/client.cnf", dir);
	snprintf(t->mem_cnf[0], sizeof(t->mem_cnf[0]), "%s/mem-server.cnf",
	         dir);
	snprintf(t->mem_cnf[1], sizeof(t->mem_cnf[1]), "%s/mem-client.cnf",
	         dir);
	if ((rv = write_cnf(t->server_cnf[0], t->op, km_a, BENCH_TLS_SERVER_SAE,
	                    BENCH_TLS_BATCH, true)) != 0 ||
	    (rv = write_cnf(t->server_cnf[1], t->op, km_a, BENCH_TLS_SERVER_SAE,
	                    1, true)) != 0 ||
	    (rv = write_cnf(t->client_cnf, t->op, km_b, BENCH_TLS_CLIENT_SAE,
	                    BENCH_TLS_BATCH, true)) != 0 ||
	    (rv = write_cnf(t->mem_cnf[0], t->op, km_a, BENCH_TLS_SERVER_SAE,
	                    BENCH_TLS_BATCH, false)) != 0 ||
	    (rv = write_cnf(t->mem_cnf[1], t->op, km_b, BENCH_TLS_CLIENT_SAE,
	                    BENCH_TLS_BATCH, false)) != 0)
		return rv;
	return 0;
}
