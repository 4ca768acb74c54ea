/* qkdn-bench tls (b): what loading the provider adds to a process's
 * memory, measured in forked children before and after OSSL_PROVIDER_load
 * and after the first handshake. */
#include "tls.h"

#include "qkdn_err.h"

#include <elf.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MEM_WAIT_MS    20000
#define SOCK_TIMEOUT_S 10

enum { M_BEFORE, M_LOADED, M_HANDSHAKE, N_MARKS };

struct mem_side {
	long rss_kib[N_MARKS], dirty_kib[N_MARKS];
	long deps_kib; /* Rss of the deps, mapped before the module was */
	int ok;
	char err[256];
};

/* Both sides, and the libraries the module needs besides libc and
 * libcrypto (module_deps). */
struct bench_tls_mem {
	struct mem_side side[2];
	char deps[256];
};

struct mem_job {
	const struct bench_tls *t;
	const char *deps;
	int side;             /* 0 server, 1 client */
	int fd[2];            /* X25519 handshake, then x25519_qkd */
	int other[2];         /* the peer's ends, closed here */
	struct mem_side *out; /* shared with the parent */
};

/* VmRSS, and Private_Dirty of every mapping (smaps_rollup): the pages
 * this process wrote, including a module's relocated data. */
static int
self_mem(long *rss_kib, long *dirty_kib)
{
	char line[256];
	struct bench_mem m;
	FILE *f;
	if (bench_mem_read(getpid(), &m) != 0 ||
	    (f = fopen("/proc/self/smaps_rollup", "r")) == NULL)
		return -1;
	*rss_kib = m.rss_kib;
	*dirty_kib = -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Private_Dirty: %ld kB", dirty_kib) == 1)
			break;
	fclose(f);
	return *dirty_kib >= 0 ? 0 : -1;
}

/* Libraries every TLS program maps anyway. */
static bool
common_lib(const char *name)
{
	static const char *const common[] = {
	    "libc.so", "libcrypto.so", "ld-linux", "libpthread.so", "libdl.so"};
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		if (strncmp(name, common[i], strlen(common[i])) == 0)
			return true;
	return false;
}

/* The libraries a module needs (DT_NEEDED) beyond the common ones, as
 * "a b ...": what a program that does not map them already pays on top
 * of the module. "" if the file cannot be read as 64-bit ELF. */
static void
module_deps(const char *path, char *out, size_t len)
{
	size_t at = 0, size = 0;
	unsigned char *buf = NULL;
	FILE *f = fopen(path, "rb");
	out[0] = '\0';
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (size = (size_t)ftell(f)) < sizeof(Elf64_Ehdr) ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc(size)) == NULL ||
	    fread(buf, 1, size, f) != size)
		goto out;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size)
		goto out;
	const Elf64_Shdr *sh = (const Elf64_Shdr *)(buf + eh->e_shoff);
	for (size_t i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_DYNAMIC ||
		    sh[i].sh_link >= eh->e_shnum ||
		    sh[i].sh_offset + sh[i].sh_size > size)
			continue;
		const Elf64_Dyn *d = (const Elf64_Dyn *)(buf + sh[i].sh_offset);
		size_t strtab = sh[sh[i].sh_link].sh_offset;
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*d); k++) {
			size_t off = strtab + d[k].d_un.d_val;
			const char *name = (const char *)buf + off;
			if (d[k].d_tag != DT_NEEDED || off >= size ||
			    memchr(name, '\0', size - off) == NULL ||
			    common_lib(name) || at + strlen(name) + 2 > len)
				continue;
			at += (size_t)snprintf(out + at, len - at, "%s%s",
			                       at > 0 ? " " : "", name);
		}
	}
out:
	free(buf);
	if (f != NULL)
		fclose(f);
}

/* Rss of this process's mappings of the libraries in deps (by file name,
 * which maps show with the full version: libsodium.so.23.3.0). */
static long
deps_rss_kib(const char *deps)
{
	char line[1024], cur[256] = "";
	long kib, total = 0;
	FILE *f;
	if (deps[0] == '\0' || (f = fopen("/proc/self/smaps", "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi,
		           &off) == 2 &&
		    off > 0) {
			char *p = line + off, *slash = strrchr(p, '/');
			p[strcspn(p, "\n")] = '\0';
			snprintf(cur, sizeof(cur), "%s",
			         slash != NULL ? slash + 1 : "");
		} else if (cur[0] != '\0' &&
		           sscanf(line, "Rss: %ld kB", &kib) == 1) {
			/* whole words of deps that start cur */
			for (const char *d = deps; *d != '\0';) {
				size_t n = strcspn(d, " ");
				if (strncmp(cur, d, n) == 0 &&
				    (cur[n] == '\0' || cur[n] == '.')) {
					total += kib;
					break;
				}
				d += n + (d[n] == ' ');
			}
		}
	}
	fclose(f);
	return total;
}

static int
fd_handshake(SSL_CTX *ctx, int side, int fd)
{
	SSL *ssl = SSL_new(ctx);
	int ok = ssl != NULL && SSL_set_fd(ssl, fd) == 1 &&
	         (side == 0 ? SSL_accept(ssl) : SSL_connect(ssl)) == 1;
	SSL_free(ssl);
	return ok;
}

/* In a forked child: a fresh library context with the default provider
 * and one X25519 handshake with the peer child, then qkdn loaded, then a
 * first x25519_qkd handshake. */
static int
mem_child(void *arg)
{
	struct mem_job *j = arg;
	struct mem_side *m = j->out;
	const char *what = "loading the configuration";
	OSSL_LIB_CTX *lib = NULL;
	SSL_CTX *ctx = NULL;
	bool server = j->side == 0;

	close(j->other[0]);
	close(j->other[1]);
	if ((lib = OSSL_LIB_CTX_new()) == NULL ||
	    !OSSL_LIB_CTX_load_config(lib, j->t->mem_cnf[j->side]))
		goto err;
	what = "an X25519 handshake before loading qkdn";
	if ((ctx = bench_tls_ctx(lib, server, "X25519", &j->t->cert)) == NULL ||
	    !fd_handshake(ctx, j->side, j->fd[0]))
		goto err;
	SSL_CTX_free(ctx);
	ctx = NULL;
	what = "reading memory";
	if (self_mem(&m->rss_kib[M_BEFORE], &m->dirty_kib[M_BEFORE]) != 0)
		goto err;
	what = "OSSL_PROVIDER_load(qkdn)";
	if (OSSL_PROVIDER_load(lib, "qkdn") == NULL)
		goto err;
	what = "reading memory";
	if (self_mem(&m->rss_kib[M_LOADED], &m->dirty_kib[M_LOADED]) != 0)
		goto err;
	what = "the first x25519_qkd handshake";
	if ((ctx = bench_tls_ctx(lib, server, "x25519_qkd", &j->t->cert)) ==
	        NULL ||
	    !fd_handshake(ctx, j->side, j->fd[1]))
		goto err;
	SSL_CTX_free(ctx);
	ctx = NULL;
	what = "reading memory";
	if (self_mem(&m->rss_kib[M_HANDSHAKE], &m->dirty_kib[M_HANDSHAKE]) != 0)
		goto err;
	m->deps_kib = deps_rss_kib(j->deps);
	m->ok = 1;
	return 0;
err:
	bench_tls_errors(m->err, sizeof(m->err), what);
	SSL_CTX_free(ctx);
	return 1;
}

static void
sock_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = SOCK_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int
measure_memory(const struct bench_tls *t, const char *deps,
               struct mem_side out[2])
{
	int sp[2][2] = {{-1, -1}, {-1, -1}}, rv = 0;
	struct qkdn_proc procs[2] = {{.name = "server child"},
	                             {.name = "client child"}};
	struct mem_side *shared =
	    mmap(NULL, 2 * sizeof(*shared), PROT_READ | PROT_WRITE,
	         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return QKDN_E_NOMEM;
	memset(shared, 0, 2 * sizeof(*shared));
	for (int i = 0; i < 2; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]) !=
		    0) {
			rv = QKDN_E_IO;
			goto out;
		}
	for (int i = 0; i < 2; i++) {
		sock_timeouts(sp[i][0]);
		sock_timeouts(sp[i][1]);
	}
	for (int side = 0; side < 2 && rv == 0; side++) {
		struct mem_job j = {.t = t,
		                    .deps = deps,
		                    .side = side,
		                    .fd = {sp[0][side], sp[1][side]},
		                    .other = {sp[0][!side], sp[1][!side]},
		                    .out = &shared[side]};
		rv = qkdn_launch_fork(&procs[side], mem_child, &j);
	}
out:
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 2; k++)
			if (sp[i][k] >= 0)
				close(sp[i][k]);
	/* they exit when done; a child that does not is stopped */
	qkdn_launch_await_exit(procs, 2, MEM_WAIT_MS);
	bench_stop(procs, 2);
	memcpy(out, shared, 2 * sizeof(*shared));
	munmap(shared, 2 * sizeof(*shared));
	for (int side = 0; side < 2 && rv == 0; side++)
		if (!out[side].ok) {
			bench_note("memory, %s: %s",
			           side == 0 ? "server" : "client",
			           out[side].err[0] != '\0' ? out[side].err
			                                    : "child failed");
			rv = QKDN_E_INTERNAL;
		}
	return rv;
}

int
bench_tls_mem_measure(const struct bench_tls *t, struct bench_tls_mem **out)
{
	struct bench_tls_mem *m = calloc(1, sizeof(*m));
	int rv;
	if (m == NULL)
		return QKDN_E_NOMEM;
	module_deps(t->op->provider, m->deps, sizeof(m->deps));
	if ((rv = measure_memory(t, m->deps, m->side)) != 0) {
		free(m);
		return rv;
	}
	*out = m;
	return 0;
}

void
bench_tls_mem_free(struct bench_tls_mem *m)
{
	free(m);
}

void
bench_tls_mem_say(const struct bench_out *o, const struct bench_tls_mem *mem)
{
	const struct mem_side *m = mem->side;
	const char *deps = mem->deps;
	static const char *const who[2] = {"server (alice, batch 16)",
	                                   "client (bob)"};
	bench_say(o,
	          "(b) what the provider adds to a process's memory, MiB   "
	          "aim: under %.0f MiB",
	          BENCH_TLS_AIM_MEM_MIB);
	bench_say(o, "    (forked children; from a fresh library context "
	             "with the default provider after one X25519");
	bench_say(o, "    handshake: + OSSL_PROVIDER_load(qkdn), then + the "
	             "first x25519_qkd handshake, SSL_CTX freed)");
	bench_say(o, "                                  VmRSS   + load  + "
	             "1st hs   Private_Dirty + load + 1st hs");
	cJSON *j = cJSON_AddObjectToObject(o->root, "provider_memory");
	cJSON_AddNumberToObject(j, "aim_mib", BENCH_TLS_AIM_MEM_MIB);
	for (int s = 0; s < 2; s++) {
		const struct mem_side *x = &m[s];
		double rss = (double)x->rss_kib[M_BEFORE] / 1024,
		       rl = (double)(x->rss_kib[M_LOADED] -
		                     x->rss_kib[M_BEFORE]) /
		            1024,
		       rh = (double)(x->rss_kib[M_HANDSHAKE] -
		                     x->rss_kib[M_BEFORE]) /
		            1024,
		       d = (double)x->dirty_kib[M_BEFORE] / 1024,
		       dl = (double)(x->dirty_kib[M_LOADED] -
		                     x->dirty_kib[M_BEFORE]) /
		            1024,
		       dh = (double)(x->dirty_kib[M_HANDSHAKE] -
		                     x->dirty_kib[M_BEFORE]) /
		            1024;
		bench_say(o,
		          "    %-26s %8.2f  %+7.2f  %+7.2f   %13.2f %+6.2f "
		          "%+7.2f",
		          who[s], rss, rl, rh, d, dl, dh);
		cJSON *k =
		    cJSON_AddObjectToObject(j, s == 0 ? "server" : "client");
		cJSON_AddNumberToObject(k, "vm_rss_before_mib", rss);
		cJSON_AddNumberToObject(k, "vm_rss_added_by_load_mib", rl);
		cJSON_AddNumberToObject(k, "vm_rss_added_after_handshake_mib",
		                        rh);
		cJSON_AddNumberToObject(k, "private_dirty_before_mib", d);
		cJSON_AddNumberToObject(k, "private_dirty_added_by_load_mib",
		                        dl);
		cJSON_AddNumberToObject(
		    k, "private_dirty_added_after_handshake_mib", dh);
	}
	bench_say(o, "    + columns: added since the first column; "
	             "Private_Dirty: pages the process wrote (smaps_rollup)");
	if (deps[0] != '\0') {
		bench_say(o,
		          "    not counted: %s, which the module needs and "
		          "qkdn-bench maps already:",
		          deps);
		bench_say(o,
		          "      %.2f MiB resident in the server, %.2f in the "
		          "client (a program without them pays that too)",
		          (double)m[0].deps_kib / 1024,
		          (double)m[1].deps_kib / 1024);
	}
	cJSON_AddStringToObject(j, "not_counted_libraries", deps);
	cJSON_AddNumberToObject(cJSON_GetObjectItem(j, "server"),
	                        "not_counted_libraries_rss_mib",
	                        (double)m[0].deps_kib / 1024);
	cJSON_AddNumberToObject(cJSON_GetObjectItem(j, "client"),
	                        "not_counted_libraries_rss_mib",
	                        (double)m[1].deps_kib / 1024);
	bench_blank(o);
}
