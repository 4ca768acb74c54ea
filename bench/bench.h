/* qkdn-bench: benchmarks that print figures, never pass/fail. One
 * subcommand per file (ak.c, tls.c: its parts in tls_*.c, tls.h), listed
 * in main.c's table; the helpers they share are declared here (cmd.c: the
 * command line and the run's start and end; util.c, load.c, floor.c,
 * net.c). */
#ifndef BENCH_H
#define BENCH_H

#include "qkdn_launch.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- subcommands (main.c's table) ---- */

int bench_ak(int argc, char **argv);
int bench_tls(int argc, char **argv);
int bench_relay(int argc, char **argv);

/* ---- time ---- */

uint64_t bench_now_ns(void);
void bench_sleep_ms(int ms);

/* ---- latency samples ---- */

struct bench_samples {
	uint64_t *v; /* nanoseconds */
	size_t n, cap;
};

int bench_samples_add(struct bench_samples *s, uint64_t ns)
    __attribute__((warn_unused_result));
/* Append every sample of src to dst. */
int bench_samples_merge(struct bench_samples *dst,
                        const struct bench_samples *src)
    __attribute__((warn_unused_result));
/* The p-th percentile (0..100) in microseconds; sorts the samples. 0 if
 * there are none. */
double bench_samples_pct_us(struct bench_samples *s, double p);
void bench_samples_free(struct bench_samples *s);

/* ---- output: text to stdout as figures come, or one JSON document ---- */

struct bench_out {
	bool json;
	cJSON *root;
};

/* A line of the text report (nothing in JSON mode). */
void bench_say(const struct bench_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bench_blank(const struct bench_out *o);
/* Progress and trouble, to stderr in both modes. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "12 345 678": thousands separated by spaces, for counts and rates. */
const char *bench_group(char buf[32], double v);

/* ---- child processes (started through qkdn_launch.h) ---- */

/* SIGTERM, wait up to 5 s, then SIGKILL (noted); reaps them. */
void bench_stop(struct qkdn_proc *v, size_t n);

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int bench_free_port(void);
/* rm -r dir. */
void bench_rm_tree(const char *dir);

/* ---- /proc ---- */

/* Memory of a process, KiB. private_kib: Private_Dirty of anonymous
 * mappings, [heap] and [stack] (the process's own memory); mdb_kib: Rss of
 * mappings of LMDB data files (page cache the kernel can take back). */
struct bench_mem {
	long rss_kib, hwm_kib, private_kib, mdb_kib;
};

int bench_mem_read(pid_t pid, struct bench_mem *m)
    __attribute__((warn_unused_result));
/* User + system CPU time of a process (pid 0: this one), seconds. */
double bench_cpu_s(pid_t pid);
/* The 1-minute load average, or -1. */
double bench_loadavg(void);

/* ---- closed-loop load: N threads repeat one operation ---- */

struct bench_worker {
	int idx;
	void *arg;  /* bench_load.arg */
	void *priv; /* set by setup */
	uint64_t units, ops, errors;
	char first_error[256];
	struct bench_samples lat;
};

struct bench_load {
	int threads;
	double seconds;
	int warmup_ops; /* per thread, before the clock starts */
	bool latency;   /* record each op's duration */
	void *arg;
	/* In the worker thread: setup before the clock, op repeatedly (returns
	 * units done, e.g. keys; 0 when there is nothing left to do, which
	 * ends that thread; or a negative error with the reason written to
	 * why), teardown at the end. setup and teardown may be NULL. */
	int (*setup)(struct bench_worker *w);
	int (*op)(struct bench_worker *w, char *why, size_t whylen);
	void (*teardown)(struct bench_worker *w);
	/* Called in the calling thread as the clock starts (0) and stops (1),
	 * e.g. to read CPU counters. May be NULL. */
	void (*mark)(void *arg, int phase);
	/* results */
	double elapsed_s;
	uint64_t units, ops, errors;
	char first_error[256];
	struct bench_samples lat;
};

/* Run l: threads start together and stop after l->seconds, or with
 * seconds 0 when every op has returned 0. */
int bench_load_run(struct bench_load *l) __attribute__((warn_unused_result));
void bench_load_free(struct bench_load *l);

/* ---- the floor: a bare nng REQ/REP echo, for comparison ---- */

/* The echo server: a child process serving nng_rep0 with aio contexts,
 * as the KM's Ak server does, on ipc://DIR/echo.ipc. Start it before this
 * process has any nng thread (the child must start clean). */
struct bench_echo {
	struct qkdn_proc proc;
	char url[600];
};

int bench_echo_start(struct bench_echo *e, const char *dir)
    __attribute__((warn_unused_result));
/* The same server on url (e.g. tcp://127.0.0.1:PORT for a Kx floor). */
int bench_echo_start_url(struct bench_echo *e, const char *url)
    __attribute__((warn_unused_result));
void bench_echo_stop(struct bench_echo *e);
/* A client socket, dialled as qkdn_rpc_dial does. */
int bench_echo_open(nng_socket *s, const char *url)
    __attribute__((warn_unused_result));
/* One synchronous round trip of a 64-byte message. */
int bench_echo_once(nng_socket s) __attribute__((warn_unused_result));
/* One synchronous round trip of a req_len-byte request (at least 5) that
 * the server answers with rsp_len bytes. */
int bench_echo_sized_once(nng_socket s, size_t req_len, size_t rsp_len)
    __attribute__((warn_unused_result));

/* The Ak client to the echo server's stub: a status request answered at
 * once with an empty status reply. */
struct qkdn_ak;
int bench_stub_open(struct qkdn_ak **ak, const char *url)
    __attribute__((warn_unused_result));
/* One status request through an Ak client, its reply dropped: the floor's
 * request to the stub, and the probe of a starting KM. */
int bench_status_once(struct qkdn_ak *ak) __attribute__((warn_unused_result));

struct bench_floor {
	double socketpair_p50_us;
	int many;                               /* clients of the "many" runs */
	double rt1_per_s, p50_us, p99_us;       /* bare nng, one client */
	double rtn_per_s;                       /* bare nng, many clients */
	double ak1_per_s, ak_p50_us, ak_p99_us; /* Ak client to the stub */
	double akn_per_s;
	size_t rpc_bytes;
	double rpc_p50_us, rpc_p99_us; /* through qkdn_rpc_call */
};

/* Measure the floor against e and report it as section "(a)". */
int bench_floor_run(const struct bench_out *o, const struct bench_echo *e,
                    double seconds, int many, struct bench_floor *f)
    __attribute__((warn_unused_result));

/* ---- the two-node network of its own (net.c) ---- */

/* Nodes A and B, link A_B; SAE aliceN on A, bobN on B. */
#define BENCH_NET_RATE_BPS       400000000ull
#define BENCH_NET_BLOCK_BYTES    65536
#define BENCH_NET_POOL_MAX_BYTES (256ull << 20)
#define BENCH_NET_MAP_SIZE_MB    4096
#define BENCH_NET_KEY_TTL_S      3600
/* what a paused link is topped up to when short */
#define BENCH_NET_TOPUP_BYTES (64ull << 20)

/* processes whose CPU is counted; BENCH_P_SELF is this one */
enum { BENCH_P_SELF, BENCH_P_KM_A, BENCH_P_KM_B, BENCH_P_SIM, BENCH_N_PROCS };

struct qkdn_net;

struct bench_net {
	char dir[PATH_MAX];
	char cnf[PATH_MAX + 16];
	int kx_port[2];
	int pairs;         /* SAE pairs in the network file; set before start */
	bool kx_tls;       /* Kx on tls+tcp://, certificates made in dir by
	                      qkdn-certs; set before start */
	uint64_t certs_ms; /* how long qkdn-certs took, in bench_net_start */
	struct qkdn_net *conf;
	struct qkdn_proc procs[BENCH_N_PROCS]; /* BENCH_P_SELF unused */
	struct qkdn_ak *probe[2];              /* status at A and at B */
	struct bench_echo echo; /* the floor's echo server, if started */
	bool paused;
	/* a second network in a subdirectory of dir (ak --kx both): stopped,
	 * shown and freed with this one */
	struct bench_net *also;
};

/* SAE pair's name: side 0 "alice", "alice1", ...; side 1 "bob", ... */
void bench_net_sae(char *out, size_t len, int side, int pair);
/* A fresh run directory under $TMPDIR and two free Kx ports. */
int bench_net_dir(struct bench_net *n) __attribute__((warn_unused_result));
/* A second network in parent->dir/name, with Kx ports of its own (none of
 * parent's), hung on parent->also; *out is parent->also. Make it just
 * before starting it: a port picked early may meanwhile be the source
 * port of another connection. */
int bench_net_sub(struct bench_net *parent, const char *name,
                  struct bench_net **out) __attribute__((warn_unused_result));
/* "tcp://" or "tls+tcp://": the scheme of n's Kx addresses. */
const char *bench_net_kx_scheme(const struct bench_net *n);
/* Write the network file (a comment names who), start the emulator and
 * both KMs next to this executable (as children: they die with it), and
 * poll their status until they answer. */
int bench_net_start(struct bench_net *n, const char *who)
    __attribute__((warn_unused_result));
/* Ak address of node 0 (A) or 1 (B). */
const char *bench_net_ak_url(const struct bench_net *n, int node);
/* Key A can start (its out direction) and B can match (its in
 * direction), whether A's Kx link to B is up, keys waiting at B. */
int bench_net_link_state(struct bench_net *n, uint64_t *out_a, uint64_t *in_b,
                         bool *up, uint64_t *pending_b)
    __attribute__((warn_unused_result));
/* Keys a KM (0: A, 1: B) has handed to applications so far. */
int bench_net_supplied(struct bench_net *n, int node, uint64_t *supplied)
    __attribute__((warn_unused_result));
/* Until both ends hold need bytes of link key (60 s at most). */
int bench_net_wait_key(struct bench_net *n, uint64_t need)
    __attribute__((warn_unused_result));
/* Pause or resume the emulated link. */
int bench_net_link_run(struct bench_net *n, bool run)
    __attribute__((warn_unused_result));
/* At least need bytes of key at both ends; a paused link is resumed to
 * top the pool up to BENCH_NET_TOPUP_BYTES, then paused again. */
int bench_net_ensure_key(struct bench_net *n, uint64_t need)
    __attribute__((warn_unused_result));
/* Stop the KMs, then the emulator (and so for n->also). */
void bench_net_stop(struct bench_net *n);
/* Frees n->conf and n->also, not n. */
void bench_net_free(struct bench_net *n);
/* The last lines of each daemon's log (n->also's too), to stderr. */
void bench_net_log_tails(const struct bench_net *n, int lines);

/* CPU each process used between two marks. */
struct bench_cpu {
	const struct bench_net *net;
	double t0[BENCH_N_PROCS], t1[BENCH_N_PROCS];
};

/* phase 0: start, 1: stop */
void bench_cpu_mark(struct bench_cpu *c, int phase);
/* Percent of one core over seconds. */
double bench_cpu_pct(const struct bench_cpu *c, int p, double seconds);
/* {"bench", "km_a", "km_b", "qkdsim"}: percent of one core */
cJSON *bench_cpu_json(const struct bench_cpu *c, double seconds);

/* ---- around a subcommand's measurements (cmd.c) ---- */

enum bench_opt_kind {
	BENCH_OPT_FLAG,    /* --NAME: *(bool *)dst = value */
	BENCH_OPT_SECONDS, /* --NAME S: *(double *)dst, min..600 */
	BENCH_OPT_LIST,    /* --NAME 1,4,16: into (int *)dst, count in *n */
	BENCH_OPT_PATH,    /* --NAME PATH: its realpath into (char *)dst,
	                      PATH_MAX bytes */
	BENCH_OPT_CHOICE,  /* --NAME WORD: *(int *)dst = WORD's index in
	                      choices */
	BENCH_OPT_HELP,    /* --help (and -h): usage on stdout */
};

/* One option of a subcommand. */
struct bench_opt {
	const char *name; /* without "--" */
	enum bench_opt_kind kind;
	void *dst;
	bool value;       /* FLAG */
	double min;       /* SECONDS */
	int *n, max;      /* LIST: the count, and at most max numbers */
	long hi;          /* LIST: each 1..hi */
	const char *dflt; /* LIST: the default, and the example of errors */
	const char *const *choices; /* CHOICE: the words, NULL-terminated */
};

/* Parse a subcommand's arguments (argv[0] is its name, cmd) by its table
 * of options, after setting the lists to their defaults: messages read
 * "qkdn-bench CMD: --NAME takes ...". Returns 0 to run, 1 after --help, 2
 * after a usage error (usage(stderr) when getopt complained or words are
 * left over). */
int bench_parse(const char *cmd, void (*usage)(FILE *f),
                const struct bench_opt *opts, size_t n, int argc, char **argv)
    __attribute__((warn_unused_result));
/* The run begins: o set up (JSON or text) and a fresh run directory for
 * n, noted on stderr. */
int bench_begin(struct bench_out *o, bool json, struct bench_net *n)
    __attribute__((warn_unused_result));
/* The header's last line, the load average now; in JSON, loadavg_start
 * and the "config" object with seconds, returned for the rest. */
cJSON *bench_header_end(const struct bench_out *o, double seconds);
/* The run ends, after the subcommand stopped what it started: the load
 * average; when rv != 0 why, the daemons' last log lines and the run
 * directory kept, else the directory removed unless keep; the JSON
 * document if all went well. Frees o's document and n (calloc'd).
 * Returns the exit status: 0, or 1 if rv != 0. */
int bench_finish(struct bench_out *o, struct bench_net *n, int rv, bool keep);

#endif
