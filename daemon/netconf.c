/* The network file, read with OpenSSL's CONF API (openssl.cnf syntax).
 *
 * OpenSSL checks the syntax and reports the line of a syntax error; the
 * meaning is checked here, item by item from one schema table per section
 * kind. OpenSSL keeps no line numbers for values, so a semantic error finds
 * its line by scanning the file text for the section header and the key. */
#include "qkdn_netconf.h"

#include "qkdn_err.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROOT         "qkdn"
#define FILE_MAX     (4u << 20)
#define IPC_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 */
#define SECTS_MAX    (QKDN_NET_NODES_MAX + QKDN_NET_LINKS_MAX + QKDN_NET_SAES_MAX)

struct ctx {
	const char *path;
	char *text; /* the file, for finding lines */
	CONF *conf;
	struct qkdn_net *net;
	char *err;
	size_t errlen;
	/* every section named by a list in [qkdn], in load order */
	char *sect[SECTS_MAX];
	size_t n_sect;
	const char *node_sect[QKDN_NET_NODES_MAX];
	const char *link_sect[QKDN_NET_LINKS_MAX];
	const char *sae_sect[QKDN_NET_SAES_MAX];
};

/* ---- finding lines ---- */

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

/* If [p, end) is a "[ name ]" header, return 1 and the trimmed name. */
static int
header_name(const char *p, const char *end, const char **name, size_t *len)
{
	p = skip_space(p, end);
	if (p == end || *p != '[')
		return 0;
	p = skip_space(p + 1, end);
	const char *close = memchr(p, ']', (size_t)(end - p));
	if (close == NULL)
		return 0;
	const char *e = close;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*name = p;
	*len = (size_t)(e - p);
	return 1;
}

/* Line of "key =" in [section] (the last one: OpenSSL keeps the last), else
 * of the section's first header, else 0. Keys before any header are in
 * OpenSSL's "default" section. */
static long
line_of(const char *text, const char *section, const char *key)
{
	long lineno = 0, header = 0, found = 0;
	bool in = strcmp(section, "default") == 0, continued = false;
	size_t klen = key != NULL ? strlen(key) : 0;

	for (const char *p = text; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		const char *end = nl != NULL ? nl : p + strlen(p);
		const char *name;
		size_t len;
		bool was_continued = continued;

		lineno++;
		continued = end > p && end[-1] == '\\';
		if (was_continued) {
			/* the tail of a value continued with '\' */
		} else if (header_name(p, end, &name, &len)) {
			in = len == strlen(section) &&
			     memcmp(name, section, len) == 0;
			if (in && header == 0)
				header = lineno;
		} else if (in && key != NULL) {
			const char *k = skip_space(p, end);
			if ((size_t)(end - k) > klen &&
			    memcmp(k, key, klen) == 0) {
				const char *eq = skip_space(k + klen, end);
				if (eq < end && *eq == '=')
					found = lineno;
			}
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return found != 0 ? found : header;
}

/* Write "FILE:LINE: [section] key: reason" (parts absent when NULL). */
static int fail(struct ctx *c, const char *section, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
fail(struct ctx *c, const char *section, const char *key, const char *fmt, ...)
{
	char msg[QKDN_REASON_MAX + QKDN_NET_PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	long line = section != NULL && c->text != NULL
	                ? line_of(c->text, section, key)
	                : 0;
	if (c->errlen == 0)
		return QKDN_E_CONFIG;
	if (section != NULL && key != NULL)
		snprintf(c->err, c->errlen, "%s:%ld: [%s] %s: %s", c->path,
		         line, section, key, msg);
	else if (section != NULL)
		snprintf(c->err, c->errlen, "%s:%ld: [%s] %s", c->path, line,
		         section, msg);
	else
		snprintf(c->err, c->errlen, "%s:%ld: %s", c->path, line, msg);
	return QKDN_E_CONFIG;
}

/* ---- values ---- */

static bool
valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= QKDN_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

static int
parse_u64(const char *s, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* Next element of a comma-separated list, trimmed, into out. Returns 1 for
 * an element, 0 at the end, -1 for an empty element, -2 if too long. */
static int
next_elem(const char **p, char *out, size_t outlen)
{
	const char *s = *p;
	if (s == NULL)
		return 0;
	const char *comma = strchr(s, ',');
	const char *end = comma != NULL ? comma : s + strlen(s);
	*p = comma != NULL ? comma + 1 : NULL;
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if (end == s)
		return -1;
	if ((size_t)(end - s) >= outlen)
		return -2;
	memcpy(out, s, (size_t)(end - s));
	out[end - s] = '\0';
	return 1;
}

static bool
blank(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return *s == '\0';
}

/* Value of key in a section's own list. NCONF_get_string is not used for
 * this: it falls back to the "default" section, which would let a stray
 * global key fill in a node's missing one. */
static const char *
get(STACK_OF(CONF_VALUE) * sk, const char *key)
{
	const char *v = NULL;
	for (int i = 0; i < sk_CONF_VALUE_num(sk); i++) {
		const CONF_VALUE *cv = sk_CONF_VALUE_value(sk, i);
		if (strcmp(cv->name, key) == 0)
			v = cv->value;
	}
	return v;
}

static int
copy(char *out, size_t outlen, const char *s)
{
	int w = snprintf(out, outlen, "%s", s);
	return w < 0 || (size_t)w >= outlen ? -1 : 0;
}

static int
join(char *out, size_t outlen, const char *dir, const char *name)
{
	size_t n = strlen(dir);
	int w = snprintf(out, outlen, "%s%s%s", dir,
	                 n > 0 && dir[n - 1] == '/' ? "" : "/", name);
	return w < 0 || (size_t)w >= outlen ? -1 : 0;
}

/* Absolute form of dir, which need not exist yet. */
static int
make_abs(const char *dir, char *out, size_t outlen)
{
	char buf[PATH_MAX], tmp[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, dir, n + 1);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	if (realpath(tmp, buf) != NULL)
		return copy(out, outlen, buf);
	/* Not there yet: resolve the parent if it exists, else only make the
	 * name absolute. */
	char *slash = strrchr(tmp, '/');
	if (slash != NULL) {
		*slash = '\0';
		if (realpath(slash == tmp ? "/" : tmp, buf) != NULL)
			return join(out, outlen, buf, slash + 1);
		*slash = '/';
	}
	if (tmp[0] == '/')
		return copy(out, outlen, tmp);
	if (getcwd(buf, sizeof(buf)) == NULL)
		return -1;
	return join(out, outlen, buf, tmp);
}

/* ---- schema ---- */

enum kind {
	K_ID,   /* qkdn_name, checked characters; default the section name */
	K_ADDR, /* nng URL; "x" -> ipc://<run_dir>/x */
	K_PATH, /* path; relative -> <run_dir>/x */
	K_U32,  /* uint32_t in [lo, hi] */
	K_U64,  /* uint64_t in [lo, hi] */
	K_MIB,  /* uint64_t bytes, given in MiB in [lo, hi] */
	K_UID,  /* int64_t uid, absent -> -1 */
	K_NODE, /* int: index of a node named by ID */
	K_PAIR, /* int[2]: two distinct node IDs, sorted by ID */
	K_BOOL, /* bool: yes/no, true/false, 1/0 */
};

struct item {
	const char *key;
	enum kind kind;
	bool required;
	size_t off;
	const char *def; /* default; "%s" stands for the object's ID */
	uint64_t lo, hi;
};

#define ITEM(k_, kind_, req_, s_, m_, def_, lo_, hi_)                          \
	{                                                                      \
		.key = k_, .kind = kind_, .required = req_,                    \
		.off = offsetof(s_, m_), .def = def_, .lo = lo_, .hi = hi_     \
	}

#define N struct qkdn_net_node
static const struct item node_items[] = {
    ITEM("id", K_ID, false, N, id, "%s", 0, 0),
    ITEM("ak", K_ADDR, false, N, ak_url, "%s.ak", 0, 0),
    ITEM("kx", K_ADDR, true, N, kx_url, NULL, 0, 0),
    ITEM("kq", K_ADDR, false, N, kq_url, "%s.kq", 0, 0),
    ITEM("ck", K_ADDR, false, N, ck_url, "%s.ck", 0, 0),
    ITEM("cx", K_ADDR, false, N, cx_url, "%s.cx", 0, 0),
    ITEM("store", K_PATH, false, N, store, "%s.db", 0, 0),
    ITEM("storage_key", K_PATH, false, N, storage_key, "%s.storage.key", 0, 0),
    ITEM("kq_uid", K_UID, false, N, kq_uid, NULL, 0, 4294967294u),
    ITEM("cert", K_PATH, false, N, cert, NULL, 0, 0),
    ITEM("key", K_PATH, false, N, key, NULL, 0, 0),
    ITEM("ak_trusted", K_BOOL, false, N, ak_trusted, NULL, 0, 0),
    ITEM("map_size_mb", K_MIB, false, N, map_bytes, "1024", 1, 1u << 20),
    ITEM("key_ttl", K_U32, false, N, key_ttl_s, "600", 1, 31536000),
    ITEM("kx_timeout_ms", K_U32, false, N, kx_timeout_ms, "2000", 1, 3600000),
    ITEM("etsi014", K_ADDR, false, N, etsi014_url, NULL, 0, 0),
    ITEM("etsi014_cert", K_PATH, false, N, etsi014_cert, NULL, 0, 0),
    ITEM("etsi014_key", K_PATH, false, N, etsi014_key, NULL, 0, 0),
    ITEM("etsi014_ca", K_PATH, false, N, etsi014_ca, NULL, 0, 0),
    ITEM("etsi014_name", K_ID, false, N, etsi014_name, "etsi014-%s", 0, 0),
    ITEM("etsi014_uid", K_UID, false, N, etsi014_uid, NULL, 0, 4294967294u),
    ITEM("etsi014_sae_dns", K_BOOL, false, N, etsi014_sae_dns, NULL, 0, 0),
    ITEM("etsi014_stock", K_U32, false, N, etsi014_stock, "32", 0, 1024),
};
#undef N
#define L struct qkdn_net_link
static const struct item link_items[] = {
    ITEM("id", K_ID, false, L, id, "%s", 0, 0),
    ITEM("nodes", K_PAIR, true, L, node, NULL, 0, 0),
    ITEM("rate", K_U64, true, L, rate_bps, NULL, 1, 1000000000000ull),
    ITEM("block_bytes", K_U32, false, L, block_bytes, "4096", 64,
         QKDN_BLOCK_BYTES_MAX),
    ITEM("pool_max_bytes", K_U64, false, L, pool_max_bytes, "67108864", 128,
         1ull << 40),
    /* ETSI 014 KMEs (check_kme); K_ID items last: they would become the
     * "%s" of later defaults */
    ITEM("kme", K_ADDR, false, L, kme[0].url, NULL, 0, 0),
    ITEM("kme_slave_url", K_ADDR, false, L, kme[1].url, NULL, 0, 0),
    ITEM("kme_ca", K_PATH, false, L, kme_ca, NULL, 0, 0),
    ITEM("kme_master_cert", K_PATH, false, L, kme[0].cert, NULL, 0, 0),
    ITEM("kme_master_key", K_PATH, false, L, kme[0].key, NULL, 0, 0),
    ITEM("kme_slave_cert", K_PATH, false, L, kme[1].cert, NULL, 0, 0),
    ITEM("kme_slave_key", K_PATH, false, L, kme[1].key, NULL, 0, 0),
    ITEM("kme_master_sae", K_ID, false, L, kme[0].sae, NULL, 0, 0),
    ITEM("kme_slave_sae", K_ID, false, L, kme[1].sae, NULL, 0, 0),
};
#undef L
#define S struct qkdn_net_sae
static const struct item sae_items[] = {
    ITEM("id", K_ID, false, S, id, "%s", 0, 0),
    ITEM("node", K_NODE, true, S, node, NULL, 0, 0),
    ITEM("uid", K_UID, false, S, uid, NULL, 0, 4294967294u),
};
#undef S
/* [qkdn] is read by hand (load_root); the table only names its keys. */
static const struct item root_items[] = {
    {.key = "nodes"},      {.key = "links"},   {.key = "saes"},
    {.key = "controller"}, {.key = "sim"},     {.key = "run_dir"},
    {.key = "ca"},         {.key = "ck"},      {.key = "log_level"},
    {.key = "ctl_cert"},   {.key = "ctl_key"}, {.key = "ctl_name"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Reject keys the table does not know, so that typos are caught. */
static int
check_keys(struct ctx *c, const char *sect, STACK_OF(CONF_VALUE) * sk,
           const struct item *items, size_t n)
{
	for (int i = 0; i < sk_CONF_VALUE_num(sk); i++) {
		const char *name = sk_CONF_VALUE_value(sk, i)->name;
		size_t k = 0;
		while (k < n && strcmp(items[k].key, name) != 0)
			k++;
		if (k < n)
			continue;
		char known[256] = "";
		for (k = 0; k < n; k++) {
			size_t used = strlen(known);
			snprintf(known + used, sizeof(known) - used, "%s%s",
			         k > 0 ? ", " : "", items[k].key);
		}
		return fail(c, sect, name, "unknown key (known: %s)", known);
	}
	return 0;
}

static int
expand(struct ctx *c, const char *sect, const char *key, enum kind kind,
       const char *v, char *out, size_t outlen)
{
	const char *run = c->net->run_dir;
	int w;
	if (blank(v))
		return fail(c, sect, key, "empty value");
	if (kind == K_ADDR && strstr(v, "://") != NULL)
		w = snprintf(out, outlen, "%s", v);
	else if (kind == K_ADDR)
		w = v[0] == '/' ? snprintf(out, outlen, "ipc://%s", v)
		                : snprintf(out, outlen, "ipc://%s/%s", run, v);
	else
		w = v[0] == '/' ? snprintf(out, outlen, "%s", v)
		                : snprintf(out, outlen, "%s/%s", run, v);
	if (w < 0 || (size_t)w >= outlen)
		return fail(c, sect, key, "'%s' expands to more than %zu bytes",
		            v, outlen - 1);
	if (strncmp(out, "ipc://", 6) == 0 && strlen(out + 6) > IPC_PATH_MAX)
		return fail(c, sect, key,
		            "ipc socket path '%s' is longer than %d bytes "
		            "(shorten the run directory)",
		            out + 6, IPC_PATH_MAX);
	return 0;
}

static int
node_ref(struct ctx *c, const char *sect, const char *key, const char *id)
{
	int i = qkdn_net_node_index(c->net, id);
	if (i < 0)
		fail(c, sect, key, "unknown node '%s'", id);
	return i;
}

static int
parse_pair(struct ctx *c, const char *sect, const char *key, const char *v,
           int node[2])
{
	const char *p = v;
	char id[QKDN_NAME_MAX];
	size_t n = 0;
	int r;
	while ((r = next_elem(&p, id, sizeof(id))) != 0) {
		if (r < 0 || n == 2)
			return fail(
			    c, sect, key,
			    "needs exactly two node IDs, comma separated");
		if ((node[n++] = node_ref(c, sect, key, id)) < 0)
			return QKDN_E_CONFIG;
	}
	if (n != 2)
		return fail(c, sect, key,
		            "needs exactly two node IDs, comma separated");
	const struct qkdn_net_node *a = &c->net->nodes[node[0]],
	                           *b = &c->net->nodes[node[1]];
	if (node[0] == node[1])
		return fail(c, sect, key, "joins node '%s' to itself", a->id);
	if (strcmp(a->id, b->id) > 0) {
		int t = node[0];
		node[0] = node[1];
		node[1] = t;
	}
	return 0;
}

static int
parse_item(struct ctx *c, const char *sect, const struct item *it,
           const char *v, uint8_t *obj)
{
	void *dst = obj + it->off;
	uint64_t u;

	switch (it->kind) {
	case K_ID:
		if (!valid_id(v))
			return fail(
			    c, sect, it->key,
			    "'%s' is not a valid ID (1 to %d of A-Z a-z "
			    "0-9 - _ .)",
			    v, QKDN_NAME_MAX - 1);
		memcpy(dst, v, strlen(v) + 1);
		return 0;
	case K_ADDR:
		return expand(c, sect, it->key, it->kind, v, dst,
		              QKDN_NET_URL_MAX);
	case K_PATH:
		return expand(c, sect, it->key, it->kind, v, dst,
		              QKDN_NET_PATH_MAX);
	case K_U32:
	case K_U64:
	case K_MIB:
	case K_UID:
		if (parse_u64(v, &u) != 0)
			return fail(c, sect, it->key,
			            "'%s' is not a whole decimal number", v);
		if (u < it->lo || u > it->hi)
			return fail(c, sect, it->key,
			            "%s is out of range %llu..%llu", v,
			            (unsigned long long)it->lo,
			            (unsigned long long)it->hi);
		if (it->kind == K_U32)
			*(uint32_t *)dst = (uint32_t)u;
		else if (it->kind == K_U64)
			*(uint64_t *)dst = u;
		else if (it->kind == K_MIB)
			*(uint64_t *)dst = u << 20;
		else
			*(int64_t *)dst = (int64_t)u;
		return 0;
	case K_NODE: {
		char id[QKDN_NAME_MAX];
		const char *p = v;
		if (next_elem(&p, id, sizeof(id)) != 1 || p != NULL)
			return fail(c, sect, it->key, "'%s' is not one node ID",
			            v);
		int i = node_ref(c, sect, it->key, id);
		if (i < 0)
			return QKDN_E_CONFIG;
		*(int *)dst = i;
		return 0;
	}
	case K_PAIR:
		return parse_pair(c, sect, it->key, v, dst);
	case K_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
		    strcmp(v, "1") == 0)
			*(bool *)dst = true;
		else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
		         strcmp(v, "0") == 0)
			*(bool *)dst = false;
		else
			return fail(c, sect, it->key, "'%s' is not yes or no",
			            v);
		return 0;
	}
	return QKDN_E_INTERNAL;
}

/* Fill obj from section sect by the table. */
static int
read_items(struct ctx *c, const char *sect, const struct item *items, size_t n,
           void *obj)
{
	STACK_OF(CONF_VALUE) *sk = NCONF_get_section(c->conf, sect);
	const char *id = sect;
	int rv;

	if ((rv = check_keys(c, sect, sk, items, n)) != 0)
		return rv;
	for (size_t i = 0; i < n; i++) {
		const struct item *it = &items[i];
		const char *v = get(sk, it->key);
		char def[QKDN_NET_PATH_MAX];
		if (v == NULL && it->required)
			return fail(c, sect, it->key, "required key missing");
		if (v == NULL && it->def == NULL)
			continue;
		if (v == NULL) {
			const char *pct = strstr(it->def, "%s");
			if (pct == NULL)
				snprintf(def, sizeof(def), "%s", it->def);
			else
				snprintf(def, sizeof(def), "%.*s%s%s",
				         (int)(pct - it->def), it->def, id,
				         pct + 2);
			v = def;
		}
		if ((rv = parse_item(c, sect, it, v, obj)) != 0)
			return rv;
		if (it->kind == K_ID)
			id = (const char *)obj + it->off;
	}
	return 0;
}

/* Sections named by [qkdn]'s lists: each at most once. */
static int
claim_section(struct ctx *c, const char *key, const char *name)
{
	if (strcmp(name, ROOT) == 0 || strcmp(name, "default") == 0)
		return fail(c, ROOT, key, "section [%s] cannot be listed",
		            name);
	for (size_t i = 0; i < c->n_sect; i++)
		if (strcmp(c->sect[i], name) == 0)
			return fail(c, ROOT, key, "section [%s] listed twice",
			            name);
	if ((c->sect[c->n_sect] = strdup(name)) == NULL)
		return QKDN_E_NOMEM;
	c->n_sect++;
	return 0;
}

static int
load_node(struct ctx *c, const char *sect)
{
	struct qkdn_net *net = c->net;
	struct qkdn_net_node *n = &net->nodes[net->n_nodes];
	n->kq_uid = -1;
	n->etsi014_uid = -1;
	int rv = read_items(c, sect, node_items, COUNT(node_items), n);
	if (rv != 0)
		return rv;
	int dup = qkdn_net_node_index(net, n->id);
	if (dup >= 0)
		return fail(c, sect, "id", "node ID '%s' already used by [%s]",
		            n->id, c->node_sect[dup]);
	c->node_sect[net->n_nodes++] = sect;
	return 0;
}

static int
load_link(struct ctx *c, const char *sect)
{
	struct qkdn_net *net = c->net;
	struct qkdn_net_link *l = &net->links[net->n_links];
	int rv = read_items(c, sect, link_items, COUNT(link_items), l);
	if (rv != 0)
		return rv;
	int dup = qkdn_net_link_index(net, l->id);
	if (dup >= 0)
		return fail(c, sect, "id", "link ID '%s' already used by [%s]",
		            l->id, c->link_sect[dup]);
	if ((dup = qkdn_net_link_between(net, l->node[0], l->node[1])) >= 0)
		return fail(c, sect, "nodes",
		            "nodes '%s' and '%s' are already joined by [%s]",
		            net->nodes[l->node[0]].id,
		            net->nodes[l->node[1]].id, c->link_sect[dup]);
	if (l->block_bytes % 2 != 0)
		return fail(c, sect, "block_bytes",
		            "%u is odd; it must be even", l->block_bytes);
	if (l->pool_max_bytes < 2 * (uint64_t)l->block_bytes)
		return fail(c, sect, "pool_max_bytes",
		            "%llu is less than two blocks of %u bytes",
		            (unsigned long long)l->pool_max_bytes,
		            l->block_bytes);
	c->link_sect[net->n_links++] = sect;
	return 0;
}

static int
load_sae(struct ctx *c, const char *sect)
{
	struct qkdn_net *net = c->net;
	struct qkdn_net_sae *s = &net->saes[net->n_saes];
	s->uid = -1;
	int rv = read_items(c, sect, sae_items, COUNT(sae_items), s);
	if (rv != 0)
		return rv;
	int dup = qkdn_net_sae_index(net, s->id);
	if (dup >= 0)
		return fail(c, sect, "id", "SAE ID '%s' already used by [%s]",
		            s->id, c->sae_sect[dup]);
	/* a certificate names a node or an SAE by one CN: never both */
	if ((dup = qkdn_net_node_index(net, s->id)) >= 0)
		return fail(c, sect, "id",
		            "SAE ID '%s' is also the ID of node [%s]", s->id,
		            c->node_sect[dup]);
	c->sae_sect[net->n_saes++] = sect;
	return 0;
}

/* Load every section a list in [qkdn] names. */
static int
load_list(struct ctx *c, STACK_OF(CONF_VALUE) * root, const char *key,
          size_t max, const char *what, int (*load)(struct ctx *, const char *))
{
	const char *v = get(root, key);
	char name[256];
	size_t n = 0;
	int r, rv;

	if (v == NULL || blank(v))
		return 0;
	for (const char *p = v; (r = next_elem(&p, name, sizeof(name))) != 0;) {
		if (r == -1)
			return fail(c, ROOT, key, "empty name in the list");
		if (r == -2)
			return fail(c, ROOT, key, "section name too long");
		if (++n > max)
			return fail(c, ROOT, key, "more than %zu %s", max,
			            what);
		if (NCONF_get_section(c->conf, name) == NULL)
			return fail(c, ROOT, key, "no section [%s] in the file",
			            name);
		if ((rv = claim_section(c, key, name)) != 0)
			return rv;
		if ((rv = load(c, c->sect[c->n_sect - 1])) != 0)
			return rv;
	}
	return 0;
}

/* Each ipc socket or TCP port is bound by one listener only, and each
 * store and storage key belongs to one KM. */
static int
check_unique(struct ctx *c)
{
	const struct qkdn_net *net = c->net;
	struct {
		const char *addr, *sect, *key;
	} a[2 + 5 * QKDN_NET_NODES_MAX] = {{net->sim_url, ROOT, "sim"}};
	size_t n = 1;
	/* the controllers' addresses of the mode in use */
	bool central = net->controller == QKDN_CTL_CENTRALIZED;
	if (central)
		a[n].addr = net->central_ck_url, a[n].sect = ROOT,
		a[n++].key = "ck";

	for (size_t i = 0; i < net->n_nodes; i++) {
		const struct qkdn_net_node *nd = &net->nodes[i];
		const char *s = c->node_sect[i];
		a[n].addr = nd->ak_url, a[n].sect = s, a[n++].key = "ak";
		a[n].addr = nd->kx_url, a[n].sect = s, a[n++].key = "kx";
		a[n].addr = nd->kq_url, a[n].sect = s, a[n++].key = "kq";
		if (!central) {
			a[n].addr = nd->ck_url, a[n].sect = s,
			a[n++].key = "ck";
			a[n].addr = nd->cx_url, a[n].sect = s,
			a[n++].key = "cx";
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(nd->store, net->nodes[j].store) == 0)
				return fail(c, s, "store",
				            "%s is also the store of [%s]",
				            nd->store, c->node_sect[j]);
		/* a copy of the store must not carry the key that opens it */
		size_t sl = strlen(nd->store);
		if (strncmp(nd->storage_key, nd->store, sl) == 0 &&
		    (nd->storage_key[sl] == '/' || nd->storage_key[sl] == '\0'))
			return fail(c, s, "storage_key",
			            "%s lies in the store %s it seals",
			            nd->storage_key, nd->store);
		for (size_t j = 0; j < i; j++)
			if (strcmp(nd->storage_key,
			           net->nodes[j].storage_key) == 0)
				return fail(
				    c, s, "storage_key",
				    "%s is also the storage key of [%s]",
				    nd->storage_key, c->node_sect[j]);
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(a[i].addr, a[j].addr) == 0)
				return fail(c, a[i].sect, a[i].key,
				            "address %s is also [%s] %s",
				            a[i].addr, a[j].sect, a[j].key);
	return 0;
}

static bool
is_tls(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0;
}

/* Whether a tcp:// URL's host is a loopback address. */
static bool
tcp_on_loopback(const char *url)
{
	const char *h = url + strlen("tcp://");
	return strncmp(h, "127.", 4) == 0 ||
	       strncmp(h, "localhost:", 10) == 0 ||
	       strncmp(h, "[::1]:", 6) == 0;
}

/* Does node i speak TLS on Kx, as a server or as a client of a peer? */
static bool
node_needs_tls(const struct qkdn_net *net, size_t i)
{
	const struct qkdn_net_node *nd = &net->nodes[i];
	if (is_tls(nd->kx_url) || is_tls(nd->ak_url) || is_tls(nd->cx_url) ||
	    is_tls(nd->ck_url))
		return true;
	/* as a client: the central controller's Ck, a neighbour's Kx (the
	 * KM) or Cx (the controller) */
	if (net->controller == QKDN_CTL_CENTRALIZED &&
	    is_tls(net->central_ck_url))
		return true;
	for (size_t k = 0; k < net->n_links; k++) {
		const struct qkdn_net_link *l = &net->links[k];
		for (int e = 0; e < 2; e++) {
			const struct qkdn_net_node *peer =
			    &net->nodes[l->node[1 - e]];
			if ((size_t)l->node[e] == i &&
			    (is_tls(peer->kx_url) || is_tls(peer->cx_url)))
				return true;
		}
	}
	return false;
}

/* The central controller speaks TLS when its Ck is tls+tcp://, or to order
 * a KM whose Kx is: then it needs the CA, its certificate and its key. */
static int
check_central_tls(struct ctx *c)
{
	const struct qkdn_net *net = c->net;
	bool tls = is_tls(net->central_ck_url);
	/* a certificate naming ctl_name gives a controller's orders: no
	 * node or SAE may carry that name */
	for (size_t i = 0; i < net->n_nodes; i++)
		if (strcmp(net->nodes[i].id, net->ctl_name) == 0)
			return fail(c, ROOT, "ctl_name",
			            "'%s' is node [%s]'s ID too", net->ctl_name,
			            c->node_sect[i]);
	for (size_t i = 0; i < net->n_saes; i++)
		if (strcmp(net->saes[i].id, net->ctl_name) == 0)
			return fail(c, ROOT, "ctl_name",
			            "'%s' is an SAE's ID too", net->ctl_name);
	for (size_t i = 0; !tls && i < net->n_nodes; i++)
		tls = is_tls(net->nodes[i].kx_url);
	if (net->controller != QKDN_CTL_CENTRALIZED || !tls)
		return 0;
	if (net->ca[0] == '\0')
		return fail(c, ROOT, "ca",
		            "required: the central controller uses tls+tcp://");
	if (net->ctl_cert[0] == '\0' || net->ctl_key[0] == '\0')
		return fail(c, ROOT,
		            net->ctl_cert[0] == '\0' ? "ctl_cert" : "ctl_key",
		            "required: the central controller uses tls+tcp:// "
		            "(its Ck, or a KM's Kx it orders)");
	return 0;
}

/* TLS needs the CA, and each node that uses it its certificate and key;
 * a plain tcp:// Ak carries no identity, so it stays on loopback. */
static int
check_tls(struct ctx *c, STACK_OF(CONF_VALUE) * root)
{
	struct qkdn_net *net = c->net;
	const char *ca = get(root, "ca");
	int rv;
	if (ca != NULL && (rv = expand(c, ROOT, "ca", K_PATH, ca, net->ca,
	                               sizeof(net->ca))) != 0)
		return rv;
	for (size_t i = 0; i < net->n_nodes; i++) {
		const struct qkdn_net_node *nd = &net->nodes[i];
		const char *s = c->node_sect[i];
		bool tcp_ak = strncmp(nd->ak_url, "tcp://", 6) == 0;
		if (tcp_ak && !tcp_on_loopback(nd->ak_url))
			return fail(
			    c, s, "ak",
			    "%s: a plain tcp:// Ak carries no identity; "
			    "bind it to a loopback address or use "
			    "tls+tcp://",
			    nd->ak_url);
		if (nd->ak_trusted && !tcp_ak)
			return fail(
			    c, s, "ak_trusted",
			    "applies to a tcp:// ak only (ipc:// checks "
			    "the peer's uid, tls+tcp:// its certificate)");
		if (!node_needs_tls(net, i))
			continue;
		if (net->ca[0] == '\0')
			return fail(c, ROOT, "ca",
			            "required: node [%s] uses tls+tcp://", s);
		if (nd->cert[0] == '\0' || nd->key[0] == '\0')
			return fail(
			    c, s, nd->cert[0] == '\0' ? "cert" : "key",
			    "required: this node uses tls+tcp:// (its own "
			    "address, a peer's Kx or Cx, or the central "
			    "controller's Ck)");
	}
	return check_central_tls(c);
}

/* "https://HOST:PORT", PORT 1..65535: what the gateway binds. */
static bool
etsi014_url_ok(const char *url)
{
	const char *h = url + strlen("https://"), *colon = strrchr(h, ':');
	char *end;
	if (strncmp(url, "https://", 8) != 0 || colon == NULL || colon == h)
		return false;
	unsigned long port = strtoul(colon + 1, &end, 10);
	return colon[1] != '\0' && *end == '\0' && port >= 1 && port <= 65535;
}

/* The ETSI 014 gateways (docs/etsi014.md): an https:// address used once,
 * a name that no certificate of a node or an SAE carries, and its files:
 * all named, or none (then net up makes a test PKI in the run dir). */
static int
check_etsi014(struct ctx *c)
{
	struct qkdn_net *net = c->net;
	for (size_t i = 0; i < net->n_nodes; i++) {
		struct qkdn_net_node *nd = &net->nodes[i];
		const char *s = c->node_sect[i], *dir = "etsi014-pki";
		if (nd->etsi014_url[0] == '\0')
			continue;
		if (!etsi014_url_ok(nd->etsi014_url))
			return fail(c, s, "etsi014",
			            "'%s' is not https://HOST:PORT",
			            nd->etsi014_url);
		for (size_t j = 0; j < i; j++)
			if (strcmp(nd->etsi014_url,
			           net->nodes[j].etsi014_url) == 0)
				return fail(c, s, "etsi014",
				            "address %s is also [%s] etsi014",
				            nd->etsi014_url, c->node_sect[j]);
		if (qkdn_net_node_index(net, nd->etsi014_name) >= 0 ||
		    qkdn_net_sae_index(net, nd->etsi014_name) >= 0)
			return fail(c, s, "etsi014_name",
			            "'%s' is also a node or SAE ID",
			            nd->etsi014_name);
		if ((nd->etsi014_cert[0] == '\0') !=
		    (nd->etsi014_key[0] == '\0'))
			return fail(
			    c, s,
			    nd->etsi014_cert[0] == '\0' ? "etsi014_cert"
			                                : "etsi014_key",
			    "name both etsi014_cert and etsi014_key, or "
			    "neither (a test PKI)");
		int w = 0;
		if (nd->etsi014_cert[0] == '\0') {
			nd->etsi014_test_pki = true;
			w |= snprintf(nd->etsi014_cert,
			              sizeof(nd->etsi014_cert), "%s/%s/%s.pem",
			              net->run_dir, dir, nd->etsi014_name) < 0;
			w |= snprintf(nd->etsi014_key, sizeof(nd->etsi014_key),
			              "%s/%s/%s.key", net->run_dir, dir,
			              nd->etsi014_name) < 0;
		}
		if (nd->etsi014_ca[0] == '\0' && nd->etsi014_test_pki)
			w |= snprintf(nd->etsi014_ca, sizeof(nd->etsi014_ca),
			              "%s/%s/ca.pem", net->run_dir, dir) < 0;
		else if (nd->etsi014_ca[0] == '\0' && net->ca[0] != '\0')
			memcpy(nd->etsi014_ca, net->ca, sizeof(net->ca));
		else if (nd->etsi014_ca[0] == '\0')
			return fail(c, s, "etsi014_ca",
			            "required: the CA of the SAEs' client "
			            "certificates (or [%s] ca)",
			            ROOT);
		if (w != 0)
			return fail(c, s, "etsi014", "run dir path too long");
	}
	return 0;
}

/* "https://HOST[:PORT]" with an optional path prefix: a KME's base URL,
 * before /api/v1/keys. A trailing '/' is dropped. */
static bool
kme_url_ok(char *url)
{
	size_t n = strlen(url);
	if (strncmp(url, "https://", 8) != 0 || n == 8 || url[8] == '/' ||
	    url[8] == ':')
		return false;
	for (size_t i = 8; i < n; i++)
		if (isspace((unsigned char)url[i]) || url[i] == '?' ||
		    url[i] == '#')
			return false;
	while (n > 9 && url[n - 1] == '/')
		url[--n] = '\0';
	return true;
}

/* Links fed by ETSI 014 KMEs (docs/etsi014.md, southbound): kme names the
 * KME; then each end's SAE ID, certificate and key, and the KMEs' CA are
 * required; without kme no kme_* key may be given. */
static int
check_kme(struct ctx *c)
{
	struct qkdn_net *net = c->net;
	for (size_t i = 0; i < net->n_links; i++) {
		struct qkdn_net_link *l = &net->links[i];
		const char *s = c->link_sect[i];
		const struct {
			const char *key;
			char *v;
		} req[] = {
		    {"kme_ca", l->kme_ca},
		    {"kme_master_sae", l->kme[0].sae},
		    {"kme_master_cert", l->kme[0].cert},
		    {"kme_master_key", l->kme[0].key},
		    {"kme_slave_sae", l->kme[1].sae},
		    {"kme_slave_cert", l->kme[1].cert},
		    {"kme_slave_key", l->kme[1].key},
		    {"kme_slave_url", l->kme[1].url},
		};
		if (l->kme[0].url[0] == '\0') {
			for (size_t k = 0; k < COUNT(req); k++)
				if (req[k].v[0] != '\0')
					return fail(c, s, req[k].key,
					            "only with kme (the link's "
					            "KME)");
			continue;
		}
		if (!kme_url_ok(l->kme[0].url))
			return fail(c, s, "kme",
			            "'%s' is not https://HOST[:PORT]",
			            l->kme[0].url);
		if (l->kme[1].url[0] == '\0')
			memcpy(l->kme[1].url, l->kme[0].url,
			       sizeof(l->kme[1].url));
		else if (!kme_url_ok(l->kme[1].url))
			return fail(c, s, "kme_slave_url",
			            "'%s' is not https://HOST[:PORT]",
			            l->kme[1].url);
		for (size_t k = 0; k + 1 < COUNT(req); k++)
			if (req[k].v[0] == '\0')
				return fail(
				    c, s, req[k].key,
				    "required: the link is fed by a KME "
				    "(kme)");
		if (strcmp(l->kme[0].sae, l->kme[1].sae) == 0)
			return fail(
			    c, s, "kme_slave_sae",
			    "'%s' is also kme_master_sae: the KME tells "
			    "the two ends apart by SAE ID",
			    l->kme[1].sae);
	}
	return 0;
}

/* A section no list names is most likely a typo in a list. */
static int
check_unlisted(struct ctx *c)
{
	STACK_OF(OPENSSL_CSTRING) *names = NCONF_get_section_names(c->conf);
	int rv = 0;
	if (names == NULL)
		return QKDN_E_NOMEM;
	for (int i = 0; i < sk_OPENSSL_CSTRING_num(names) && rv == 0; i++) {
		const char *s = sk_OPENSSL_CSTRING_value(names, i);
		bool listed = strcmp(s, ROOT) == 0 || strcmp(s, "default") == 0;
		for (size_t k = 0; k < c->n_sect && !listed; k++)
			listed = strcmp(c->sect[k], s) == 0;
		if (!listed)
			rv = fail(c, s, NULL,
			          "section is not listed in [%s] nodes, links "
			          "or saes",
			          ROOT);
	}
	sk_OPENSSL_CSTRING_free(names);
	return rv;
}

static int
load_root(struct ctx *c, const char *run_dir)
{
	struct qkdn_net *net = c->net;
	STACK_OF(CONF_VALUE) *root = NCONF_get_section(c->conf, ROOT);
	int rv;

	if (root == NULL)
		return fail(c, NULL, NULL, "no [%s] section", ROOT);
	if ((rv = check_keys(c, ROOT, root, root_items, COUNT(root_items))) !=
	    0)
		return rv;

	/* The run directory first: addresses and paths expand into it. */
	if (run_dir == NULL)
		run_dir = get(root, "run_dir");
	if (run_dir == NULL)
		run_dir = "run";
	if (blank(run_dir) ||
	    make_abs(run_dir, net->run_dir, sizeof(net->run_dir)) != 0)
		return fail(c, ROOT, "run_dir",
		            "cannot make '%s' an absolute path of at most %zu "
		            "bytes",
		            run_dir, sizeof(net->run_dir) - 1);

	const char *ctl = get(root, "controller");
	if (ctl == NULL || strcmp(ctl, "distributed") == 0)
		net->controller = QKDN_CTL_DISTRIBUTED;
	else if (strcmp(ctl, "centralized") == 0)
		net->controller = QKDN_CTL_CENTRALIZED;
	else
		return fail(c, ROOT, "controller",
		            "'%s' is neither 'distributed' nor 'centralized'",
		            ctl);

	static const char *const levels[] = {"error", "warn", "info", "debug"};
	const char *lvl = get(root, "log_level");
	net->log_level = -1;
	for (int i = 0; lvl != NULL && i < 4; i++)
		if (strcmp(lvl, levels[i]) == 0)
			net->log_level = i;
	if (lvl != NULL && net->log_level < 0)
		return fail(c, ROOT, "log_level",
		            "'%s' is not error, warn, info or debug", lvl);

	const char *ck = get(root, "ck");
	if ((rv = expand(c, ROOT, "ck", K_ADDR, ck != NULL ? ck : "central.ck",
	                 net->central_ck_url, sizeof(net->central_ck_url))) !=
	    0)
		return rv;

	const char *ctl_cert = get(root, "ctl_cert");
	const char *ctl_key = get(root, "ctl_key");
	const char *ctl_name = get(root, "ctl_name");
	if (ctl_cert != NULL &&
	    (rv = expand(c, ROOT, "ctl_cert", K_PATH, ctl_cert, net->ctl_cert,
	                 sizeof(net->ctl_cert))) != 0)
		return rv;
	if (ctl_key != NULL &&
	    (rv = expand(c, ROOT, "ctl_key", K_PATH, ctl_key, net->ctl_key,
	                 sizeof(net->ctl_key))) != 0)
		return rv;
	if (ctl_name == NULL)
		ctl_name = "controller";
	if (!valid_id(ctl_name))
		return fail(
		    c, ROOT, "ctl_name",
		    "'%s' is not a valid ID (1 to %d of A-Z a-z 0-9 - _ "
		    ".)",
		    ctl_name, QKDN_NAME_MAX - 1);
	memcpy(net->ctl_name, ctl_name, strlen(ctl_name) + 1);

	const char *sim = get(root, "sim");
	if ((rv = expand(c, ROOT, "sim", K_ADDR, sim != NULL ? sim : "sim.ctl",
	                 net->sim_url, sizeof(net->sim_url))) != 0)
		return rv;

	/* Nodes before links and SAEs, which name them. */
	const char *nodes = get(root, "nodes");
	if (nodes == NULL || blank(nodes))
		return fail(c, ROOT, "nodes", "at least one node is required");
	if ((rv = load_list(c, root, "nodes", QKDN_NET_NODES_MAX, "nodes",
	                    load_node)) != 0 ||
	    (rv = load_list(c, root, "links", QKDN_NET_LINKS_MAX, "links",
	                    load_link)) != 0 ||
	    (rv = load_list(c, root, "saes", QKDN_NET_SAES_MAX, "SAEs",
	                    load_sae)) != 0)
		return rv;
	if ((rv = check_unique(c)) != 0 || (rv = check_tls(c, root)) != 0 ||
	    (rv = check_etsi014(c)) != 0 || (rv = check_kme(c)) != 0)
		return rv;
	return check_unlisted(c);
}

/* Read the whole file: OpenSSL parses this same text, and semantic errors
 * find their lines in it. */
static int
read_text(struct ctx *c)
{
	FILE *f = fopen(c->path, "rb");
	size_t cap = 4096, len = 0, got;
	int rv = 0;

	if (f == NULL)
		return fail(c, NULL, NULL, "cannot open: %s", strerror(errno));
	if ((c->text = malloc(cap)) == NULL) {
		fclose(f);
		return QKDN_E_NOMEM;
	}
	while ((got = fread(c->text + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (len + 1 < cap)
			continue;
		if (cap >= FILE_MAX) {
			rv = fail(c, NULL, NULL, "file larger than %u bytes",
			          FILE_MAX);
			break;
		}
		char *t = realloc(c->text, cap * 2);
		if (t == NULL) {
			rv = QKDN_E_NOMEM;
			break;
		}
		c->text = t;
		cap *= 2;
	}
	if (rv == 0 && ferror(f))
		rv = fail(c, NULL, NULL, "cannot read: %s", strerror(errno));
	fclose(f);
	c->text[len] = '\0';
	if (rv == 0 && strlen(c->text) != len)
		rv = fail(c, NULL, NULL, "file contains a NUL byte");
	return rv;
}

/* Parse the text with OpenSSL; a syntax error names its own line. */
static int
parse_text(struct ctx *c)
{
	BIO *bio = BIO_new_mem_buf(c->text, -1);
	long eline = 0;
	int rv = 0;

	if (bio == NULL || (c->conf = NCONF_new(NULL)) == NULL) {
		BIO_free(bio);
		return QKDN_E_NOMEM;
	}
	/* Leave the caller's OpenSSL error queue as it was. */
	ERR_set_mark();
	if (NCONF_load_bio(c->conf, bio, &eline) <= 0) {
		const char *why =
		    ERR_reason_error_string(ERR_peek_last_error());
		if (c->errlen > 0)
			snprintf(c->err, c->errlen, "%s:%ld: %s", c->path,
			         eline, why != NULL ? why : "syntax error");
		rv = QKDN_E_CONFIG;
	}
	ERR_pop_to_mark();
	BIO_free(bio);
	return rv;
}

int
qkdn_net_load(const char *path, const char *run_dir, struct qkdn_net *out,
              char *err, size_t errlen)
{
	struct ctx c = {.path = path, .net = out, .err = err, .errlen = errlen};
	int rv;

	memset(out, 0, sizeof(*out));
	if (errlen > 0)
		err[0] = '\0';
	if (snprintf(out->path, sizeof(out->path), "%s", path) >=
	    (int)sizeof(out->path))
		rv = fail(&c, NULL, NULL, "file name longer than %zu bytes",
		          sizeof(out->path) - 1);
	else if ((rv = read_text(&c)) == 0 && (rv = parse_text(&c)) == 0)
		rv = load_root(&c, run_dir);

	if (rv == QKDN_E_NOMEM && errlen > 0)
		snprintf(err, errlen, "%s:0: out of memory", path);
	if (rv != 0) {
		memset(out, 0, sizeof(*out));
		rv = rv == QKDN_E_NOMEM ? rv : QKDN_E_CONFIG;
	}
	for (size_t i = 0; i < c.n_sect; i++)
		free(c.sect[i]);
	NCONF_free(c.conf);
	free(c.text);
	return rv;
}

/* ---- lookups ---- */

int
qkdn_net_node_index(const struct qkdn_net *net, const char *id)
{
	for (size_t i = 0; i < net->n_nodes; i++)
		if (strcmp(net->nodes[i].id, id) == 0)
			return (int)i;
	return -1;
}

int
qkdn_net_sae_index(const struct qkdn_net *net, const char *id)
{
	for (size_t i = 0; i < net->n_saes; i++)
		if (strcmp(net->saes[i].id, id) == 0)
			return (int)i;
	return -1;
}

int
qkdn_net_link_index(const struct qkdn_net *net, const char *id)
{
	for (size_t i = 0; i < net->n_links; i++)
		if (strcmp(net->links[i].id, id) == 0)
			return (int)i;
	return -1;
}

int
qkdn_net_link_between(const struct qkdn_net *net, int a, int b)
{
	for (size_t i = 0; i < net->n_links; i++) {
		const int *n = net->links[i].node;
		if ((n[0] == a && n[1] == b) || (n[0] == b && n[1] == a))
			return (int)i;
	}
	return -1;
}
