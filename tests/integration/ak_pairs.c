/* Test client for Q.4160 I.1 across two KMs: take keys at the source SAE,
 * fetch each by ID at the destination SAE, and check that the pair matches
 * and that a second fetch is refused. Writes one line per key to --out:
 * "<uuid> <fingerprint>", where the fingerprint is an 8-byte BLAKE2b of the
 * key under a fixed test label, so runs can be checked for reuse across
 * processes without writing key bytes anywhere. Exit 0 only if no pair
 * mismatched and no second fetch succeeded; with --tolerate-errors, failed
 * requests (e.g. while a KM restarts) are counted, not fatal. Prints one
 * JSON line of counts; "second_fetches" is how many second fetches were
 * tried (each one refused means one error reply from the destination KM). */
#include "qkdn_ak.h"
#include "qkdn_err.h"

#include <getopt.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct opts {
	const char *src_km, *src_sae, *dst_km, *dst_sae, *out;
	unsigned n, bits, batch;
	int timeout_ms;
	bool tolerate;
};

static void
fingerprint(const struct qkdn_ak_key *k, char out[17])
{
	static const uint8_t label[crypto_generichash_KEYBYTES] = "qkdn test";
	uint8_t h[8];
	crypto_generichash(h, sizeof(h), k->bytes, k->len, label,
	                   sizeof(label));
	sodium_bin2hex(out, 17, h, sizeof(h));
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"src-km", required_argument, NULL, 'a'},
	    {"src-sae", required_argument, NULL, 's'},
	    {"dst-km", required_argument, NULL, 'b'},
	    {"dst-sae", required_argument, NULL, 'd'},
	    {"n", required_argument, NULL, 'n'},
	    {"bits", required_argument, NULL, 'k'},
	    {"batch", required_argument, NULL, 'c'},
	    {"out", required_argument, NULL, 'o'},
	    {"timeout", required_argument, NULL, 't'},
	    {"tolerate-errors", no_argument, NULL, 'e'},
	    {NULL, 0, NULL, 0}};
	struct opts o = {.n = 100, .bits = 256, .batch = 1, .timeout_ms = 3000};
	int c;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			o.src_km = optarg;
			break;
		case 's':
			o.src_sae = optarg;
			break;
		case 'b':
			o.dst_km = optarg;
			break;
		case 'd':
			o.dst_sae = optarg;
			break;
		case 'n':
			o.n = (unsigned)atoi(optarg);
			break;
		case 'k':
			o.bits = (unsigned)atoi(optarg);
			break;
		case 'c':
			o.batch = (unsigned)atoi(optarg);
			break;
		case 'o':
			o.out = optarg;
			break;
		case 't':
			o.timeout_ms = atoi(optarg);
			break;
		case 'e':
			o.tolerate = true;
			break;
		default:
			return 2;
		}
	}
	if (!o.src_km || !o.src_sae || !o.dst_km || !o.dst_sae || !o.out ||
	    o.batch == 0 || o.batch > 64 || sodium_init() < 0) {
		fprintf(stderr, "usage: ak_pairs --src-km URL --src-sae SAE "
		                "--dst-km URL --dst-sae SAE --out FILE [--n N] "
		                "[--bits B] [--batch C] [--tolerate-errors]\n");
		return 2;
	}
	struct qkdn_ak *src, *dst;
	if (qkdn_ak_open(&src, o.src_km, o.src_sae, o.timeout_ms) != 0 ||
	    qkdn_ak_open(&dst, o.dst_km, o.dst_sae, o.timeout_ms) != 0) {
		fprintf(stderr, "ak_pairs: %s\n", qkdn_ak_last_error());
		return 1;
	}
	FILE *out = fopen(o.out, "w");
	if (out == NULL)
		return 1;
	struct qkdn_ak_key a[64], b[64], again;
	unsigned ok = 0, errors = 0, mismatches = 0, refetched = 0;
	unsigned second_fetches = 0; /* second fetches tried */
	unsigned wrong_refusals = 0; /* refused, but not as supplied */
	/* a failed request (KM restarting) is retried after a pause */
	const struct timespec backoff = {0, 10 * 1000000L};
	while (ok < o.n && errors <= (o.tolerate ? 10000u : 0u)) {
		unsigned want = o.n - ok < o.batch ? o.n - ok : o.batch;
		int rv = qkdn_ak_get_keys(src, o.dst_sae, o.bits, want, a);
		if (rv != 0) {
			fprintf(stderr, "ak_pairs: source: %s\n",
			        qkdn_ak_last_error());
			errors++;
			nanosleep(&backoff, NULL);
			continue;
		}
		qkdn_key_id ids[64];
		for (unsigned i = 0; i < want; i++)
			ids[i] = a[i].id;
		rv = qkdn_ak_get_keys_by_id(dst, ids, want, b);
		if (rv != 0) {
			fprintf(stderr, "ak_pairs: destination: %s\n",
			        qkdn_ak_last_error());
			qkdn_ak_keys_wipe(a, want);
			errors++;
			nanosleep(&backoff, NULL);
			continue;
		}
		for (unsigned i = 0; i < want; i++) {
			char idtext[QKDN_KEY_ID_TEXT_LEN], fp[17];
			if (a[i].len != o.bits / 8 || b[i].len != a[i].len ||
			    sodium_memcmp(a[i].bytes, b[i].bytes, a[i].len) !=
			        0)
				mismatches++;
			qkdn_key_id_format(&a[i].id, idtext);
			fingerprint(&a[i], fp);
			fprintf(out, "%s %s\n", idtext, fp);
		}
		/* now and then (when ok is a multiple of 10): the destination
		 * may not fetch the round's first key twice */
		if (ok % 10 == 0) {
			second_fetches++;
			rv = qkdn_ak_get_keys_by_id(dst, ids, 1, &again);
			if (rv == 0) {
				fprintf(stderr, "ak_pairs: second fetch "
				                "accepted\n");
				refetched++;
				qkdn_ak_keys_wipe(&again, 1);
			} else if (rv != QKDN_E_ALREADY_SUPPLIED) {
				fprintf(stderr,
				        "ak_pairs: second fetch gave "
				        "%s\n",
				        qkdn_ak_last_error());
				wrong_refusals++;
			}
		}
		ok += want;
		qkdn_ak_keys_wipe(a, want);
		qkdn_ak_keys_wipe(b, want);
	}
	fclose(out);
	qkdn_ak_close(src);
	qkdn_ak_close(dst);
	printf("{\"ok\": %u, \"errors\": %u, \"mismatches\": %u, "
	       "\"second_fetches\": %u, \"second_fetch_accepted\": %u, "
	       "\"wrong_refusals\": %u}\n",
	       ok, errors, mismatches, second_fetches, refetched,
	       wrong_refusals);
	return ok == o.n && mismatches == 0 && refetched == 0 &&
	               (o.tolerate || wrong_refusals == 0)
	           ? 0
	           : 1;
}
