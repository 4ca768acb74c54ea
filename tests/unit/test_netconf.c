/* The network file: the example loads with the documented values and
 * expansions, every kind of mistake is reported as "FILE:LINE: reason" at
 * the right line, and the lookups find what the file names. */
#include "qkdn_err.h"
#include "qkdn_netconf.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char tmp[PATH_MAX];      /* realpath of the temporary directory */
static char cnf[PATH_MAX + 16]; /* tmp/net.cnf, rewritten by each test */
static char src_dir[PATH_MAX];  /* the source tree, for examples/ */

static int
group_setup(void **state)
{
	(void)state;
	char t[] = "/tmp/qkdn-netconf-XXXXXX";
	if (mkdtemp(t) == NULL || realpath(t, tmp) == NULL)
		return -1;
	snprintf(cnf, sizeof(cnf), "%s/net.cnf", tmp);
	/* CMake compiles with absolute source paths: tests/unit/<this>. */
	const char *env = getenv("QKDN_SRC");
	if (env != NULL) {
		snprintf(src_dir, sizeof(src_dir), "%s", env);
	} else {
		if (realpath(__FILE__, src_dir) == NULL)
			return -1;
		for (int i = 0; i < 3; i++) {
			char *slash = strrchr(src_dir, '/');
			if (slash == NULL)
				return -1;
			*slash = '\0';
		}
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	unlink(cnf);
	rmdir(tmp);
	return 0;
}

static void
write_cnf(const char *text)
{
	FILE *f = fopen(cnf, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static struct qkdn_net *
load_ok(const char *path, const char *run_dir)
{
	struct qkdn_net *net = calloc(1, sizeof(*net));
	char err[512];
	assert_non_null(net);
	int rv = qkdn_net_load(path, run_dir, net, err, sizeof(err));
	if (rv != 0)
		fail_msg("%s", err);
	return net;
}

/* Loading path fails with "path:line: ..." whose reason contains want. */
static void
expect_error(const char *path, long line, const char *want)
{
	struct qkdn_net *net = calloc(1, sizeof(*net));
	char err[512], prefix[PATH_MAX + 32];
	assert_non_null(net);
	int rv = qkdn_net_load(path, "/tmp/qkdn-run", net, err, sizeof(err));
	if (rv != QKDN_E_CONFIG)
		fail_msg("%s: expected an error at line %ld mentioning '%s'",
		         path, line, want);
	snprintf(prefix, sizeof(prefix), "%s:%ld: ", path, line);
	if (strncmp(err, prefix, strlen(prefix)) != 0 ||
	    strstr(err + strlen(prefix), want) == NULL)
		fail_msg("got '%s', expected '%s...%s...'", err, prefix, want);
	/* nothing half-loaded is left behind */
	assert_int_equal(net->n_nodes, 0);
	free(net);
}

static void
expect_text_error(const char *text, long line, const char *want)
{
	write_cnf(text);
	expect_error(cnf, line, want);
}

static void
test_example_loads(void **state)
{
	(void)state;
	char path[PATH_MAX + 32], run[PATH_MAX + 8];
	snprintf(path, sizeof(path), "%s/examples/two-node.cnf", src_dir);
	snprintf(run, sizeof(run), "%s/run", tmp);
	struct qkdn_net *net = load_ok(path, run);

	assert_string_equal(net->path, path);
	assert_string_equal(net->run_dir, run);
	assert_int_equal(net->controller, QKDN_CTL_DISTRIBUTED);
	assert_int_equal(net->n_nodes, 2);
	assert_int_equal(net->n_links, 1);
	assert_int_equal(net->n_saes, 2);

	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "ipc://%s/sim.ctl", run);
	assert_string_equal(net->sim_url, want);

	const struct qkdn_net_node *a = &net->nodes[0], *b = &net->nodes[1];
	assert_string_equal(a->id, "A");
	assert_string_equal(b->id, "B");
	assert_string_equal(a->kx_url, "tcp://127.0.0.1:17101");
	assert_string_equal(b->kx_url, "tcp://127.0.0.1:17102");
	snprintf(want, sizeof(want), "ipc://%s/A.ak", run);
	assert_string_equal(a->ak_url, want);
	snprintf(want, sizeof(want), "ipc://%s/B.kq", run);
	assert_string_equal(b->kq_url, want);
	snprintf(want, sizeof(want), "%s/A.db", run);
	assert_string_equal(a->store, want);
	assert_int_equal(a->map_bytes, 1024ull << 20);
	assert_int_equal(a->key_ttl_s, 600);
	assert_int_equal(a->kx_timeout_ms, 2000);

	const struct qkdn_net_link *l = &net->links[0];
	assert_string_equal(l->id, "A_B");
	assert_int_equal(l->node[0], 0);
	assert_int_equal(l->node[1], 1);
	assert_int_equal(l->rate_bps, 2000000);
	assert_int_equal(l->block_bytes, 4096);
	assert_int_equal(l->pool_max_bytes, 64ull << 20);

	assert_string_equal(net->saes[0].id, "alice");
	assert_int_equal(net->saes[0].node, 0);
	assert_int_equal(net->saes[0].uid, -1);
	assert_string_equal(net->saes[1].id, "bob");
	assert_int_equal(net->saes[1].node, 1);
	free(net);
}

static void
test_values_and_expansion(void **state)
{
	(void)state;
	write_cnf("[qkdn]\n"
	          "nodes = zeta, alpha\n"
	          "links = l1\n"
	          "saes = s1\n"
	          "controller = centralized\n"
	          "sim = tcp://127.0.0.1:17999\n"
	          "run_dir = /tmp/qkdn-file-run\n"
	          "[ zeta ]\n"
	          "id = Z.1\n"
	          "ak = /tmp/z.ak\n"
	          "kx = tcp://127.0.0.1:17201\n"
	          "kq = sub/z.kq\n"
	          "store = /var/tmp/z.db\n"
	          "map_size_mb = 16\n"
	          "key_ttl = 30\n"
	          "kx_timeout_ms = 250\n"
	          "[alpha]\n"
	          "kx = tcp://127.0.0.1:17202\n"
	          "store = alpha-store\n"
	          "[l1]\n"
	          "id = link-1\n"
	          "nodes = Z.1 ,alpha\n"
	          "rate = 10 \n"
	          "block_bytes = 64\n"
	          "pool_max_bytes = 128\n"
	          "rate = 1000\n" /* OpenSSL keeps the last */
	          "[s1]\n"
	          "node = Z.1\n"
	          "uid = 1000\n");
	struct qkdn_net *net = load_ok(cnf, NULL);
	assert_string_equal(net->run_dir, "/tmp/qkdn-file-run");
	assert_int_equal(net->controller, QKDN_CTL_CENTRALIZED);
	assert_string_equal(net->sim_url, "tcp://127.0.0.1:17999");

	const struct qkdn_net_node *z = &net->nodes[0], *a = &net->nodes[1];
	assert_string_equal(z->id, "Z.1");
	assert_string_equal(z->ak_url, "ipc:///tmp/z.ak");
	assert_string_equal(z->kq_url, "ipc:///tmp/qkdn-file-run/sub/z.kq");
	assert_string_equal(z->store, "/var/tmp/z.db");
	assert_int_equal(z->map_bytes, 16u << 20);
	assert_int_equal(z->key_ttl_s, 30);
	assert_int_equal(z->kx_timeout_ms, 250);
	assert_string_equal(a->id, "alpha");
	assert_string_equal(a->ak_url, "ipc:///tmp/qkdn-file-run/alpha.ak");
	assert_string_equal(a->store, "/tmp/qkdn-file-run/alpha-store");

	/* node[0] is the ID that sorts first, whatever the file's order */
	const struct qkdn_net_link *l = &net->links[0];
	assert_string_equal(l->id, "link-1");
	assert_int_equal(l->node[0], 0); /* "Z.1" < "alpha" */
	assert_int_equal(l->node[1], 1);
	assert_int_equal(l->rate_bps, 1000);
	assert_int_equal(l->block_bytes, 64);
	assert_int_equal(l->pool_max_bytes, 128);

	assert_int_equal(net->saes[0].node, 0);
	assert_int_equal(net->saes[0].uid, 1000);
	free(net);
}

static void
test_link_sorted(void **state)
{
	(void)state;
	write_cnf("[qkdn]\nnodes = B, A\nlinks = L\n"
	          "[A]\nkx = tcp://127.0.0.1:1\n"
	          "[B]\nkx = tcp://127.0.0.1:2\n"
	          "[L]\nnodes = B, A\nrate = 1\n");
	struct qkdn_net *net = load_ok(cnf, "/tmp/qkdn-run");
	assert_int_equal(net->links[0].node[0], 1); /* A */
	assert_int_equal(net->links[0].node[1], 0); /* B */
	free(net);
}

static void
test_run_dir(void **state)
{
	(void)state;
	char cwd[PATH_MAX], want[PATH_MAX + 32];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	write_cnf("[qkdn]\nnodes = A\nrun_dir = from-file\n"
	          "[A]\nkx = tcp://127.0.0.1:1\n");

	/* the file's run_dir, relative to the current directory */
	struct qkdn_net *net = load_ok(cnf, NULL);
	snprintf(want, sizeof(want), "%s/from-file", cwd);
	assert_string_equal(net->run_dir, want);
	free(net);

	/* the argument overrides it; a missing parent is fine */
	net = load_ok(cnf, "no/such/dir/");
	snprintf(want, sizeof(want), "%s/no/such/dir", cwd);
	assert_string_equal(net->run_dir, want);
	free(net);

	/* an existing directory is resolved */
	net = load_ok(cnf, "/tmp/../tmp");
	assert_string_equal(net->run_dir, "/tmp");
	free(net);

	/* default: ./run */
	write_cnf("[qkdn]\nnodes = A\n[A]\nkx = tcp://127.0.0.1:1\n");
	net = load_ok(cnf, NULL);
	snprintf(want, sizeof(want), "%s/run", cwd);
	assert_string_equal(net->run_dir, want);
	free(net);
}

static void
test_example_errors(void **state)
{
	(void)state;
	static const struct {
		const char *file;
		long line;
		const char *want;
	} cases[] = {
	    {"syntax.cnf", 6, "missing equal sign"},
	    {"unknown-node.cnf", 13, "[A_C] nodes: unknown node 'C'"},
	    {"zero-rate.cnf", 14, "[A_B] rate: 0 is out of range"},
	    {"duplicate-id.cnf", 9, "node ID 'A' already used by [A]"},
	    {"missing-kx.cnf", 8, "[B] kx: required key missing"},
	    {"unknown-key.cnf", 14, "[A_B] rat: unknown key"},
	    {"self-link.cnf", 10, "joins node 'A' to itself"},
	    {"bad-controller.cnf", 4, "neither 'distributed' nor"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/examples/bad/%s", src_dir,
		         cases[i].file);
		expect_error(path, cases[i].line, cases[i].want);
	}
}

#define NODES_AB                                                               \
	"[A]\nkx = tcp://127.0.0.1:1\n"                                        \
	"[B]\nkx = tcp://127.0.0.1:2\n"

static void
test_syntax_errors(void **state)
{
	(void)state;
	expect_text_error("[qkdn]\nnodes = A\n[A\nkx = x\n", 3,
	                  "missing close square bracket");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = $nothing\n", 4,
	                  "variable has no value");
	expect_error("/no/such/file.cnf", 0, "cannot open");
}

static void
test_root_errors(void **state)
{
	(void)state;
	expect_text_error("[other]\nx = 1\n", 0, "no [qkdn] section");
	expect_text_error("# c\n[qkdn]\nlinks =\n", 2,
	                  "[qkdn] nodes: at least one node");
	expect_text_error("[qkdn]\nnodes = A\nsaes = s\nnode = A\n" NODES_AB, 4,
	                  "[qkdn] node: unknown key (known: nodes,");
	expect_text_error("[qkdn]\nnodes = A, C\n" NODES_AB, 2,
	                  "[qkdn] nodes: no section [C]");
	expect_text_error("[qkdn]\nnodes = A,,B\n" NODES_AB, 2,
	                  "empty name in the list");
	expect_text_error("[qkdn]\nnodes = A, B, A\n" NODES_AB, 2,
	                  "section [A] listed twice");
	expect_text_error("[qkdn]\nnodes = A\nlinks = A\n" NODES_AB, 3,
	                  "section [A] listed twice");
	expect_text_error("[qkdn]\nnodes = A\n" NODES_AB, 5,
	                  "[B] section is not listed");
	expect_text_error("[qkdn]\ncontroller = Distributed\nnodes = A\n[A]\n"
	                  "kx = tcp://h:1\n",
	                  2, "[qkdn] controller: 'Distributed'");
}

static void
test_too_many(void **state)
{
	(void)state;
	size_t cap = 64 * 1024, len = 0;
	char *t = malloc(cap);
	assert_non_null(t);
	len += (size_t)snprintf(t + len, cap - len, "[qkdn]\nnodes = ");
	for (int i = 0; i <= QKDN_NET_NODES_MAX; i++)
		len += (size_t)snprintf(t + len, cap - len, "%sn%d",
		                        i > 0 ? ", " : "", i);
	len += (size_t)snprintf(t + len, cap - len, "\n");
	for (int i = 0; i <= QKDN_NET_NODES_MAX; i++)
		len += (size_t)snprintf(t + len, cap - len,
		                        "[n%d]\nkx = tcp://127.0.0.1:%d\n", i,
		                        20000 + i);
	expect_text_error(t, 2, "more than 64 nodes");
	free(t);
}

static void
test_node_errors(void **state)
{
	(void)state;
	char long_id[QKDN_NAME_MAX + 1], text[512];
	memset(long_id, 'x', QKDN_NAME_MAX);
	long_id[QKDN_NAME_MAX] = '\0';
	snprintf(text, sizeof(text),
	         "[qkdn]\nnodes = %s\n\n[%s]\nkx = tcp://h:1\n", long_id,
	         long_id);
	expect_text_error(text, 4, "id: '" /* the 64-byte section name */);
	expect_text_error(text, 4, "is not a valid ID");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nid = A/B\nkx = tcp://h:1\n",
	                  4, "[A] id: 'A/B' is not a valid ID");
	expect_text_error("[qkdn]\nnodes = A, B\n[A]\nkx = tcp://h:1\n"
	                  "[B]\nid = A\nkx = tcp://h:2\n",
	                  6, "[B] id: node ID 'A' already used by [A]");
	expect_text_error("[qkdn]\nnodes = A\n\n[A]\nak = x.ak\n", 4,
	                  "[A] kx: required key missing");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\nkq = \n", 5,
	                  "[A] kq: empty value");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\nkxx = 1\n",
	                  5, "[A] kxx: unknown key (known: id, ak, kx");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "key_ttl = 10m\n",
	                  5, "[A] key_ttl: '10m' is not a whole decimal");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "map_size_mb = 0\n",
	                  5, "[A] map_size_mb: 0 is out of range");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "kx_timeout_ms = -5\n",
	                  5, "not a whole decimal number");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "key_ttl = 99999999999999999999999\n",
	                  5, "not a whole decimal number");
	expect_text_error("[qkdn]\nnodes = A, B\n[A]\nkx = tcp://h:1\n"
	                  "[B]\nkx = tcp://h:1\n",
	                  6, "[B] kx: address tcp://h:1 is also [A] kx");
	expect_text_error("[qkdn]\nnodes = A, B\n[A]\nkx = tcp://h:1\n"
	                  "[B]\nkx = tcp://h:2\nstore = A.db\n",
	                  7, "[B] store:");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "ak = sim.ctl\n",
	                  5, "is also [qkdn] sim");
	expect_text_error("[qkdn]\nnodes = A\nlog_level = loud\n[A]\n"
	                  "kx = tcp://h:1\n",
	                  3,
	                  "[qkdn] log_level: 'loud' is not error, warn, info "
	                  "or debug");
}

/* TLS: the CA and each TLS node's certificate and key are required; a
 * plain tcp:// Ak stays on loopback; ak_trusted only for it; an SAE may
 * not take a node's ID (a certificate CN names one or the other). */
static void
test_tls_errors(void **state)
{
	(void)state;
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tls+tcp://h:1\n"
	                  "cert = A.pem\nkey = A.key\n",
	                  1, "[qkdn] ca: required: node [A] uses tls+tcp://");
	expect_text_error("[qkdn]\nnodes = A\nca = ca.pem\n[A]\n"
	                  "kx = tcp://h:1\nak = tls+tcp://h:2\nkey = A.key\n",
	                  4, "[A] cert: required: this node uses tls+tcp://");
	/* a node whose peer listens with TLS needs its own certificate */
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\nca = ca.pem\n"
	                  "[A]\nkx = tcp://h:1\n"
	                  "[B]\nkx = tls+tcp://h:2\ncert = B.pem\nkey = B.key\n"
	                  "[L]\nnodes = A, B\nrate = 1\n",
	                  5, "[A] cert: required");
	/* ... and so does one whose neighbour's controller takes Cx over
	 * TLS (its controller floods link state to it) */
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\nca = ca.pem\n"
	                  "[A]\nkx = tcp://h:1\n"
	                  "[B]\nkx = tcp://h:2\ncx = tls+tcp://h:3\n"
	                  "cert = B.pem\nkey = B.key\n"
	                  "[L]\nnodes = A, B\nrate = 1\n",
	                  5, "[A] cert: required");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "ak = tcp://10.0.0.1:2\n",
	                  5,
	                  "[A] ak: tcp://10.0.0.1:2: a plain tcp:// Ak "
	                  "carries no identity");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "ak_trusted = yes\n",
	                  5, "[A] ak_trusted: applies to a tcp:// ak only");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "ak = tcp://127.0.0.1:2\nak_trusted = maybe\n",
	                  6, "[A] ak_trusted: 'maybe' is not yes or no");
	expect_text_error("[qkdn]\nnodes = A\nsaes = s\n[A]\nkx = tcp://h:1\n"
	                  "[s]\nid = A\nnode = A\n",
	                  7, "[s] id: SAE ID 'A' is also the ID of node [A]");
	write_cnf("[qkdn]\nnodes = A\nca = /etc/ca.pem\n[A]\n"
	          "kx = tls+tcp://h:1\nak = tcp://127.0.0.1:2\n"
	          "ak_trusted = yes\ncert = A.pem\nkey = /k/A.key\n");
	struct qkdn_net *net = load_ok(cnf, "/tmp/qkdn-run");
	assert_string_equal(net->ca, "/etc/ca.pem");
	assert_string_equal(net->nodes[0].cert, "/tmp/qkdn-run/A.pem");
	assert_string_equal(net->nodes[0].key, "/k/A.key");
	assert_true(net->nodes[0].ak_trusted);
	free(net);
}

/* The central controller over TLS (its Ck, or orders to a tls+tcp:// Kx)
 * has its certificate and key; its name (default "controller") is no
 * node's or SAE's, since a certificate with it may order KMs; every KM
 * reaching a TLS central Ck has its certificate. */
static void
test_central_tls(void **state)
{
	(void)state;
	expect_text_error("[qkdn]\nnodes = A\ncontroller = centralized\n"
	                  "ca = ca.pem\nck = tls+tcp://h:9\n[A]\n"
	                  "kx = tcp://h:1\ncert = A.pem\nkey = A.key\n",
	                  1,
	                  "[qkdn] ctl_cert: required: the central controller "
	                  "uses tls+tcp://");
	expect_text_error("[qkdn]\nnodes = A\ncontroller = centralized\n"
	                  "ca = ca.pem\nctl_cert = c.pem\n[A]\n"
	                  "kx = tls+tcp://h:1\ncert = A.pem\nkey = A.key\n",
	                  1, "[qkdn] ctl_key: required");
	expect_text_error("[qkdn]\nnodes = A\ncontroller = centralized\n"
	                  "ca = ca.pem\nck = tls+tcp://h:9\nctl_cert = c.pem\n"
	                  "ctl_key = c.key\n[A]\nkx = tcp://h:1\n",
	                  8, "[A] cert: required");
	expect_text_error("[qkdn]\nnodes = controller\n[controller]\n"
	                  "kx = tcp://h:1\n",
	                  1,
	                  "[qkdn] ctl_name: 'controller' is node "
	                  "[controller]'s ID too");
	expect_text_error("[qkdn]\nnodes = A\nsaes = c\nctl_name = c\n[A]\n"
	                  "kx = tcp://h:1\n[c]\nnode = A\n",
	                  4, "[qkdn] ctl_name: 'c' is an SAE's ID too");
	expect_text_error("[qkdn]\nnodes = A\nctl_name = a b\n[A]\n"
	                  "kx = tcp://h:1\n",
	                  3, "[qkdn] ctl_name: 'a b' is not a valid ID");
	write_cnf("[qkdn]\nnodes = A\ncontroller = centralized\n"
	          "ca = /ca.pem\nck = tls+tcp://h:9\nctl_cert = /c.pem\n"
	          "ctl_key = c.key\nctl_name = ctl-1\n[A]\nkx = tcp://h:1\n"
	          "cert = A.pem\nkey = A.key\n");
	struct qkdn_net *net = load_ok(cnf, "/tmp/qkdn-run");
	assert_string_equal(net->ctl_cert, "/c.pem");
	assert_string_equal(net->ctl_key, "/tmp/qkdn-run/c.key");
	assert_string_equal(net->ctl_name, "ctl-1");
	assert_string_equal(net->central_ck_url, "tls+tcp://h:9");
	free(net);
	write_cnf("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n");
	net = load_ok(cnf, "/tmp/qkdn-run");
	assert_string_equal(net->ctl_name, "controller");
	free(net);
}

/* The ETSI 014 gateway's keys: a test PKI in the run dir when no
 * certificate is named, else the named files (CA default: [qkdn] ca). */
static void
test_etsi014(void **state)
{
	(void)state;
	write_cnf("[qkdn]\nnodes = A, B\nsaes = s\nca = /etc/ca.pem\n"
	          "[A]\nkx = tcp://h:1\netsi014 = https://127.0.0.1:8443\n"
	          "[B]\nkx = tcp://h:2\netsi014 = https://[::1]:8444\n"
	          "etsi014_cert = gw.pem\netsi014_key = gw.key\n"
	          "etsi014_name = gwb\netsi014_uid = 1000\n"
	          "etsi014_sae_dns = yes\n[s]\nnode = A\n");
	struct qkdn_net *net = load_ok(cnf, "/tmp/qkdn-run");
	const struct qkdn_net_node *a = &net->nodes[0], *b = &net->nodes[1];
	assert_string_equal(a->etsi014_url, "https://127.0.0.1:8443");
	assert_true(a->etsi014_test_pki);
	assert_string_equal(a->etsi014_name, "etsi014-A");
	assert_string_equal(a->etsi014_cert,
	                    "/tmp/qkdn-run/etsi014-pki/etsi014-A.pem");
	assert_string_equal(a->etsi014_key,
	                    "/tmp/qkdn-run/etsi014-pki/etsi014-A.key");
	assert_string_equal(a->etsi014_ca, "/tmp/qkdn-run/etsi014-pki/ca.pem");
	assert_int_equal(a->etsi014_uid, -1);
	assert_false(a->etsi014_sae_dns);
	assert_false(b->etsi014_test_pki);
	assert_string_equal(b->etsi014_cert, "/tmp/qkdn-run/gw.pem");
	assert_string_equal(b->etsi014_ca, "/etc/ca.pem");
	assert_string_equal(b->etsi014_name, "gwb");
	assert_int_equal(b->etsi014_uid, 1000);
	assert_true(b->etsi014_sae_dns);
	free(net);
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "etsi014 = http://127.0.0.1:80\n",
	                  5, "[A] etsi014: 'http://127.0.0.1:80' is not https");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "etsi014 = https://h:0\n",
	                  5, "is not https://HOST:PORT");
	expect_text_error("[qkdn]\nnodes = A, B\n[A]\nkx = tcp://h:1\n"
	                  "etsi014 = https://h:9\n[B]\nkx = tcp://h:2\n"
	                  "etsi014 = https://h:9\n",
	                  8, "[B] etsi014: address https://h:9 is also [A]");
	expect_text_error("[qkdn]\nnodes = A\nsaes = s\n[A]\nkx = tcp://h:1\n"
	                  "etsi014 = https://h:9\netsi014_name = s\n[s]\n"
	                  "node = A\n",
	                  7, "[A] etsi014_name: 's' is also a node or SAE ID");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "etsi014 = https://h:9\netsi014_cert = c.pem\n",
	                  3, "[A] etsi014_key: name both");
	expect_text_error("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n"
	                  "etsi014 = https://h:9\netsi014_cert = c.pem\n"
	                  "etsi014_key = c.key\n",
	                  3, "[A] etsi014_ca: required");
}

/* A link fed by ETSI 014 KMEs: kme turns it on; the master end is node[0]
 * (the ID that sorts first); every kme_* key is checked. */
#define KME_LINK                                                               \
	"[L]\nnodes = B, A\nrate = 1\nkme = https://127.0.0.1:9443/\n"         \
	"kme_ca = kca.pem\nkme_master_sae = sa\nkme_master_cert = a.pem\n"     \
	"kme_master_key = /k/a.key\nkme_slave_sae = sb\n"                      \
	"kme_slave_cert = b.pem\nkme_slave_key = b.key\n"
static void
test_kme(void **state)
{
	(void)state;
	write_cnf("[qkdn]\nnodes = A, B\nlinks = L, M\n" NODES_AB KME_LINK
	          "kme_slave_url = https://kme-b.example/qkd\n"
	          "[M]\nnodes = A, B\nrate = 1\n");
	struct qkdn_net *net = calloc(1, sizeof(*net));
	char err[512];
	assert_non_null(net);
	/* two links between A and B are refused before the KME checks */
	assert_int_equal(
	    qkdn_net_load(cnf, "/tmp/qkdn-run", net, err, sizeof(err)),
	    QKDN_E_CONFIG);
	free(net);
	write_cnf("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB KME_LINK);
	net = load_ok(cnf, "/tmp/qkdn-run");
	const struct qkdn_net_link *l = &net->links[0];
	assert_string_equal(net->nodes[l->node[0]].id, "A");
	assert_string_equal(l->kme[0].url, "https://127.0.0.1:9443");
	assert_string_equal(l->kme[1].url, "https://127.0.0.1:9443");
	assert_string_equal(l->kme_ca, "/tmp/qkdn-run/kca.pem");
	assert_string_equal(l->kme[0].sae, "sa");
	assert_string_equal(l->kme[0].cert, "/tmp/qkdn-run/a.pem");
	assert_string_equal(l->kme[0].key, "/k/a.key");
	assert_string_equal(l->kme[1].sae, "sb");
	assert_string_equal(l->kme[1].cert, "/tmp/qkdn-run/b.pem");
	assert_string_equal(l->kme[1].key, "/tmp/qkdn-run/b.key");
	free(net);
	write_cnf("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB KME_LINK
	          "kme_slave_url = https://kme-b.example/qkd//\n");
	net = load_ok(cnf, "/tmp/qkdn-run");
	assert_string_equal(net->links[0].kme[1].url,
	                    "https://kme-b.example/qkd");
	free(net);
	/* an emulator link has no KME */
	write_cnf("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	          "[L]\nnodes = A, B\nrate = 1\n");
	net = load_ok(cnf, "/tmp/qkdn-run");
	assert_string_equal(net->links[0].kme[0].url, "");
	free(net);

	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\nkme_ca = c.pem\n",
	                  11, "[L] kme_ca: only with kme");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\n"
	                  "kme_slave_url = https://h:1\n",
	                  11, "[L] kme_slave_url: only with kme");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB KME_LINK
	                  "kme = http://127.0.0.1:9443\n",
	                  19, "[L] kme: 'http://127.0.0.1:9443' is not https");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB KME_LINK
	                  "kme_slave_url = https://\n",
	                  19, "[L] kme_slave_url: 'https://' is not https");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\n"
	                  "kme = https://h:1\nkme_ca = c.pem\n"
	                  "kme_master_sae = a\nkme_master_cert = a.pem\n"
	                  "kme_master_key = a.key\nkme_slave_sae = b\n"
	                  "kme_slave_cert = b.pem\n",
	                  8,
	                  "[L] kme_slave_key: required: the link is fed "
	                  "by a KME");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\nkme = https://h:1\n",
	                  8, "[L] kme_ca: required");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB KME_LINK
	                  "kme_slave_sae = sa\n",
	                  19, "[L] kme_slave_sae: 'sa' is also kme_master_sae");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB KME_LINK
	                  "kme_master_sae = s a\n",
	                  19, "[L] kme_master_sae: 's a' is not a valid ID");
}

static void
test_ipc_path_too_long(void **state)
{
	(void)state;
	char run[200];
	memset(run, 'r', sizeof(run) - 1);
	run[0] = '/';
	run[sizeof(run) - 1] = '\0';
	write_cnf("[qkdn]\nnodes = A\n[A]\nkx = tcp://h:1\n");
	struct qkdn_net *net = calloc(1, sizeof(*net));
	char err[512];
	assert_non_null(net);
	assert_int_equal(qkdn_net_load(cnf, run, net, err, sizeof(err)),
	                 QKDN_E_CONFIG);
	assert_non_null(strstr(err, "ipc socket path"));
	free(net);
}

static void
test_link_errors(void **state)
{
	(void)state;
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\n",
	                  8, "[L] rate: required key missing");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1k\n",
	                  10, "[L] rate: '1k' is not a whole decimal");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 0\n",
	                  10, "[L] rate: 0 is out of range");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A\nrate = 1\n",
	                  9, "[L] nodes: needs exactly two node IDs");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B, A\nrate = 1\n",
	                  9, "[L] nodes: needs exactly two node IDs");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nrate = 1\nnodes = B, X\n",
	                  10, "[L] nodes: unknown node 'X'");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = B,B\nrate = 1\n",
	                  9, "[L] nodes: joins node 'B' to itself");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\nblock_bytes = 101\n",
	                  11, "[L] block_bytes: 101 is odd; it must be even");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\nblock_bytes = 32\n",
	                  11, "[L] block_bytes: 32 is out of range 64..");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\n"
	                  "block_bytes = 2097152\n",
	                  11, "out of range 64..1048576");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\n"
	                  "pool_max_bytes = 4096\n",
	                  11, "less than two blocks");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L, M\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\n"
	                  "[M]\nid = L\nnodes = A, B\nrate = 1\n",
	                  12, "[M] id: link ID 'L' already used by [L]");
	expect_text_error("[qkdn]\nnodes = A, B\nlinks = L, M\n" NODES_AB
	                  "[L]\nnodes = A, B\nrate = 1\n"
	                  "[M]\nnodes = B, A\nrate = 1\n",
	                  12,
	                  "[M] nodes: nodes 'A' and 'B' are already "
	                  "joined by [L]");
}

static void
test_sae_errors(void **state)
{
	(void)state;
	expect_text_error("[qkdn]\nnodes = A\nsaes = s\n[A]\nkx = tcp://h:1\n"
	                  "[s]\n",
	                  6, "[s] node: required key missing");
	expect_text_error("[qkdn]\nnodes = A\nsaes = s\n[A]\nkx = tcp://h:1\n"
	                  "[s]\nnode = B\n",
	                  7, "[s] node: unknown node 'B'");
	expect_text_error("[qkdn]\nnodes = A\nsaes = s\n[A]\nkx = tcp://h:1\n"
	                  "[s]\nnode = A, A\n",
	                  7, "[s] node: 'A, A' is not one node ID");
	expect_text_error("[qkdn]\nnodes = A\nsaes = s\n[A]\nkx = tcp://h:1\n"
	                  "[s]\nnode = A\nuid = root\n",
	                  8, "[s] uid: 'root' is not a whole decimal");
	expect_text_error("[qkdn]\nnodes = A\nsaes = s, t\n[A]\n"
	                  "kx = tcp://h:1\n[s]\nnode = A\n[t]\nnode = A\n"
	                  "id = s\n",
	                  10, "[t] id: SAE ID 's' already used by [s]");
}

static void
test_lookups(void **state)
{
	(void)state;
	write_cnf("[qkdn]\nnodes = A, B, C\nlinks = A_B, B_C\n"
	          "saes = alice, carol\n"
	          "[A]\nkx = tcp://h:1\n[B]\nkx = tcp://h:2\n"
	          "[C]\nkx = tcp://h:3\n"
	          "[A_B]\nnodes = A, B\nrate = 1\n"
	          "[B_C]\nnodes = C, B\nrate = 1\n"
	          "[alice]\nnode = A\n[carol]\nnode = C\n");
	struct qkdn_net *net = load_ok(cnf, "/tmp/qkdn-run");
	assert_int_equal(qkdn_net_node_index(net, "A"), 0);
	assert_int_equal(qkdn_net_node_index(net, "C"), 2);
	assert_int_equal(qkdn_net_node_index(net, "D"), -1);
	assert_int_equal(qkdn_net_sae_index(net, "carol"), 1);
	assert_int_equal(qkdn_net_sae_index(net, "bob"), -1);
	assert_int_equal(qkdn_net_link_index(net, "B_C"), 1);
	assert_int_equal(qkdn_net_link_index(net, "A_C"), -1);
	assert_int_equal(qkdn_net_link_between(net, 0, 1), 0);
	assert_int_equal(qkdn_net_link_between(net, 1, 0), 0);
	assert_int_equal(qkdn_net_link_between(net, 2, 1), 1);
	assert_int_equal(qkdn_net_link_between(net, 0, 2), -1);
	assert_int_equal(qkdn_net_link_between(net, 0, 0), -1);
	free(net);
}

static void
test_small_err_buffer(void **state)
{
	(void)state;
	write_cnf("[qkdn]\nnodes = A\n[A]\n");
	struct qkdn_net *net = calloc(1, sizeof(*net));
	char err[8];
	assert_non_null(net);
	assert_int_equal(qkdn_net_load(cnf, NULL, net, err, sizeof(err)),
	                 QKDN_E_CONFIG);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(qkdn_net_load(cnf, NULL, net, NULL, 0), QKDN_E_CONFIG);
	free(net);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_example_loads),
	    cmocka_unit_test(test_values_and_expansion),
	    cmocka_unit_test(test_link_sorted),
	    cmocka_unit_test(test_run_dir),
	    cmocka_unit_test(test_example_errors),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_root_errors),
	    cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_node_errors),
	    cmocka_unit_test(test_etsi014),
	    cmocka_unit_test(test_kme),
	    cmocka_unit_test(test_ipc_path_too_long),
	    cmocka_unit_test(test_tls_errors),
	    cmocka_unit_test(test_central_tls),
	    cmocka_unit_test(test_link_errors),
	    cmocka_unit_test(test_sae_errors),
	    cmocka_unit_test(test_lookups),
	    cmocka_unit_test(test_small_err_buffer),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
