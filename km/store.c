#include "store.h"

#include "qkdn_err.h"
#include "qkdn_log.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <stdatomic.h>
#include <unistd.h>

#define LOCK_TRIES     200 /* of LOCK_RETRY_MS: 2 s */
#define LOCK_RETRY_MS  10
#define SRC            "store"
#define SEAL_KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_BYTES    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES      crypto_aead_xchacha20poly1305_ietf_ABYTES
#define LINK_KEY_MAX   (QKDN_NAME_MAX + 9)
/* a sealed block half: opening ID, counter, ciphertext, tag */
#define GCM_ID_BYTES  16
#define GCM_CTR_BYTES 8
#define GCM_TAG_BYTES 16
#define GCM_OVERHEAD  (GCM_ID_BYTES + GCM_CTR_BYTES + GCM_TAG_BYTES)

struct km_store {
	MDB_env *env;
	MDB_dbi meta, blocks, marks, keys, expiry;
	_Atomic uint64_t pending; /* keys in state KEY_PENDING */
	/* nonces: a random prefix per opening and a counter, so sealing
	 * costs no system call (XChaCha20 has room for both) */
	uint8_t nonce_prefix[NONCE_BYTES - 8];
	_Atomic uint64_t nonce_ctr;
	uint8_t *seal_key; /* sodium_malloc, read-only */
	/* blocks: AES-256-GCM under this opening's subkey (seal_block) */
	EVP_CIPHER *gcm;
	uint8_t opening_id[GCM_ID_BYTES];
	uint8_t *block_key; /* sodium_malloc: the subkey of opening_id */
	_Atomic uint64_t block_ctr;
	int lock_fd; /* flock on km.lock: one KM per store */
	bool recovered;
};

/* A record of the keys table starts with its state. A waiting key then
 * has a header, the two SAE IDs, and nonce + sealed key; a supplied one
 * (tombstone) only its expiry, so the ID is never stored or supplied again
 * while the key could be live anywhere. */
enum key_state { KEY_PENDING = 1, KEY_SUPPLIED = 2 };

struct rec_hdr {
	uint64_t expires_ms;
	uint8_t src_len;
	uint8_t dst_len;
	uint16_t key_len;
};

struct meta_state {
	char boot_id[40];
	uint8_t clean;
};

uint64_t
km_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* LMDB errors in qkdn terms: the one place they are mapped. */
static int
err_from_mdb(int rv)
{
	switch (rv) {
	case MDB_SUCCESS:
		return QKDN_OK;
	case MDB_NOTFOUND:
		return QKDN_E_UNKNOWN_KEY_ID;
	case ENOMEM:
		return QKDN_E_NOMEM;
	default:
		return QKDN_E_STORE;
	}
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* "link\0" + big-endian ID: blocks of a link sort by ID. */
static size_t
block_key(uint8_t *k, const char *link, uint64_t id)
{
	size_t n = strlen(link);
	memcpy(k, link, n + 1);
	put_be64(k + n + 1, id);
	return n + 9;
}

static int
seal(struct km_store *st, uint8_t *out, const uint8_t *m, size_t len,
     const uint8_t *ad, size_t adlen)
{
	uint64_t ctr = atomic_fetch_add(&st->nonce_ctr, 1);
	memcpy(out, st->nonce_prefix, sizeof(st->nonce_prefix));
	memcpy(out + sizeof(st->nonce_prefix), &ctr, sizeof(ctr));
	return crypto_aead_xchacha20poly1305_ietf_encrypt(
	    out + NONCE_BYTES, NULL, m, len, ad, adlen, NULL, out,
	    st->seal_key);
}

static int
unseal(const struct km_store *st, uint8_t *out, const uint8_t *sealed,
       size_t sealed_len, const uint8_t *ad, size_t adlen)
{
	if (sealed_len < NONCE_BYTES + TAG_BYTES)
		return QKDN_E_STORE;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
	        out, NULL, NULL, sealed + NONCE_BYTES, sealed_len - NONCE_BYTES,
	        ad, adlen, sealed, st->seal_key) != 0)
		return QKDN_E_STORE;
	return 0;
}

/* Blocks are bulk (a relay hop of 512 keys unseals 16 KiB on each side),
 * so they are sealed with AES-256-GCM, which OpenSSL runs on AES-NI about
 * four times as fast as XChaCha20-Poly1305 here; keys (32 bytes each)
 * stay with XChaCha20-Poly1305 and its random nonces. GCM's 96-bit nonce
 * leaves no room for a random prefix, so each opening of the store seals
 * under its own subkey, BLAKE2b of a random 128-bit opening ID keyed by the
 * storage key, with a counter as the nonce: a nonce is never reused under
 * a subkey. A sealed half carries the opening ID and the counter. */
static void
block_subkey(const struct km_store *st, const uint8_t id[GCM_ID_BYTES],
             uint8_t key[32])
{
	static const uint8_t personal[16] = "qkdn block seal";
	crypto_generichash_blake2b_salt_personal(key, 32, id, GCM_ID_BYTES,
	                                         st->seal_key, SEAL_KEY_BYTES,
	                                         NULL, personal);
}

static void
gcm_iv(uint8_t iv[12], const uint8_t ctr[GCM_CTR_BYTES])
{
	memset(iv, 0, 4);
	memcpy(iv + 4, ctr, GCM_CTR_BYTES);
}

static int
seal_block(struct km_store *st, uint8_t *out, const uint8_t *m, uint32_t len,
           const uint8_t *ad, size_t adlen)
{
	uint64_t ctr = atomic_fetch_add(&st->block_ctr, 1);
	uint8_t iv[12];
	int n, ok;
	memcpy(out, st->opening_id, GCM_ID_BYTES);
	memcpy(out + GCM_ID_BYTES, &ctr, GCM_CTR_BYTES);
	gcm_iv(iv, out + GCM_ID_BYTES);
	uint8_t *ct = out + GCM_ID_BYTES + GCM_CTR_BYTES;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	ok = c != NULL &&
	     EVP_EncryptInit_ex(c, st->gcm, NULL, st->block_key, iv) == 1 &&
	     EVP_EncryptUpdate(c, NULL, &n, ad, (int)adlen) == 1 &&
	     EVP_EncryptUpdate(c, ct, &n, m, (int)len) == 1 &&
	     EVP_EncryptFinal_ex(c, ct + len, &n) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_BYTES,
	                         ct + len) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : QKDN_E_STORE;
}

static int
unseal_block(const struct km_store *st, uint8_t *out, const uint8_t *sealed,
             uint32_t len, const uint8_t *ad, size_t adlen)
{
	uint8_t derived[32], iv[12], tag[GCM_TAG_BYTES];
	const uint8_t *ct = sealed + GCM_ID_BYTES + GCM_CTR_BYTES;
	const uint8_t *key = st->block_key;
	int n, ok;
	if (memcmp(sealed, st->opening_id, GCM_ID_BYTES) != 0) {
		block_subkey(st, sealed, derived); /* an earlier opening's */
		key = derived;
	}
	gcm_iv(iv, sealed + GCM_ID_BYTES);
	memcpy(tag, ct + len, sizeof(tag));
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	ok = c != NULL && EVP_DecryptInit_ex(c, st->gcm, NULL, key, iv) == 1 &&
	     EVP_DecryptUpdate(c, NULL, &n, ad, (int)adlen) == 1 &&
	     EVP_DecryptUpdate(c, out, &n, ct, (int)len) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG_BYTES, tag) ==
	         1 &&
	     EVP_DecryptFinal_ex(c, out + len, &n) == 1;
	EVP_CIPHER_CTX_free(c);
	sodium_memzero(derived, sizeof(derived));
	return ok ? 0 : QKDN_E_STORE;
}

/* The storage key is read from key_path; a store made before the key moved
 * out of it still has its key at <dir>/storage.key, read from there while
 * key_path is absent (docs/network-file.md: moving it). A new key is made
 * only where neither exists. */
static int
load_seal_key(struct km_store *st, const char *dir, const char *key_path)
{
	char path[1024], old[1024];
	int fd, rv = QKDN_E_STORE;
	snprintf(old, sizeof(old), "%s/storage.key", dir);
	snprintf(path, sizeof(path), "%s", key_path != NULL ? key_path : old);
	st->seal_key = sodium_malloc(SEAL_KEY_BYTES);
	if (st->seal_key == NULL)
		return QKDN_E_NOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && strcmp(path, old) != 0) {
		if ((fd = open(old, O_RDONLY | O_CLOEXEC)) >= 0) {
			QLOG_WARN(SRC,
			          "storage key read from %s, inside the store: "
			          "move it to %s",
			          old, path);
			snprintf(path, sizeof(path), "%s", old);
		} else if (errno != ENOENT) {
			snprintf(path, sizeof(path), "%s", old);
			goto out; /* there but unreadable: never make another */
		} else {
			errno = ENOENT; /* neither exists: make it at path */
		}
	}
	if (fd < 0 && errno == ENOENT) {
		/* first start: make the node storage key */
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			goto out;
		crypto_aead_xchacha20poly1305_ietf_keygen(st->seal_key);
		if (write(fd, st->seal_key, SEAL_KEY_BYTES) != SEAL_KEY_BYTES ||
		    fsync(fd) != 0)
			goto out;
		rv = 0;
		goto out;
	}
	if (fd < 0)
		goto out;
	uint8_t buf[SEAL_KEY_BYTES + 1];
	errno = 0;
	if (read(fd, buf, sizeof(buf)) == SEAL_KEY_BYTES) {
		memcpy(st->seal_key, buf, SEAL_KEY_BYTES);
		rv = 0;
	} else if (errno == 0) {
		errno = EINVAL; /* not exactly 32 bytes */
	}
	sodium_memzero(buf, sizeof(buf));
out:
	if (fd >= 0)
		close(fd);
	if (rv != 0)
		QLOG_ERR(SRC, "storage key %s: %s", path, strerror(errno));
	else
		sodium_mprotect_readonly(st->seal_key);
	return rv;
}

/* The kernel's boot ID; QKDN_TEST_BOOT_ID stands in for it so tests can
 * simulate a reboot. */
static void
read_boot_id(char out[40])
{
	const char *test = getenv("QKDN_TEST_BOOT_ID");
	if (test != NULL) {
		snprintf(out, 40, "%s", test);
		return;
	}
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	memset(out, 0, 40);
	if (f == NULL || fgets(out, 40, f) == NULL)
		snprintf(out, 40, "unknown");
	if (f != NULL)
		fclose(f);
	out[strcspn(out, "\n")] = 0;
}

static int
write_state(struct km_store *st, bool clean)
{
	struct meta_state ms = {.clean = clean};
	MDB_txn *txn;
	read_boot_id(ms.boot_id);
	MDB_val k = {5, "state"}, v = {sizeof(ms), &ms};
	int rv = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rv == 0 && (rv = mdb_put(txn, st->meta, &k, &v, 0)) == 0)
		rv = mdb_txn_commit(txn);
	else if (rv == 0)
		mdb_txn_abort(txn);
	if (rv == 0)
		rv = mdb_env_sync(st->env, 1);
	return err_from_mdb(rv);
}

static int put_mark(struct km_store *st, MDB_txn *txn, const char *link,
                    enum km_mark_kind kind, const struct km_pos *pos);

/* With the waiting keys dropped, a KEY_SYNC recorded before the power cut
 * and replayed after it must not pass: every link's in-mark moves past the
 * newest block held (the peer's lease is already past what it used). */
static int
in_marks_past_blocks(struct km_store *st, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint8_t seek[LINK_KEY_MAX];
	int rv = mdb_cursor_open(txn, st->blocks, &cur);
	if (rv != 0)
		return rv;
	rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rv == 0) {
		char link[QKDN_NAME_MAX];
		size_t n = strnlen(k.mv_data, k.mv_size);
		if (n == 0 || n >= sizeof(link) || k.mv_size != n + 9)
			break;
		memcpy(link, k.mv_data, n);
		link[n] = 0;
		/* the last block of this link: just before link\0 + max ID */
		MDB_val sk = {block_key(seek, link, UINT64_MAX), seek};
		rv = mdb_cursor_get(cur, &sk, &v, MDB_SET_RANGE);
		if (rv == 0 && sk.mv_size == k.mv_size &&
		    memcmp(sk.mv_data, seek, sk.mv_size) == 0) {
			k = sk; /* the largest possible ID itself is held */
		} else {
			rv = mdb_cursor_get(cur, &k, &v,
			                    rv == 0 ? MDB_PREV : MDB_LAST);
			if (rv != 0)
				break;
		}
		uint64_t last = get_be64((const uint8_t *)k.mv_data + n + 1);
		struct km_pos in = {last == UINT64_MAX ? last : last + 1, 0};
		if ((rv = put_mark(st, txn, link, KM_MARK_IN, &in)) != 0)
			break;
		rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rv == MDB_NOTFOUND ? 0 : rv;
}

/* After a power cut, NOSYNC commits since the last sync may be lost, among
 * them tombstones: drop every waiting key rather than risk a second
 * supply. A killed process loses nothing (same boot: page cache intact). */
static int
recover(struct km_store *st)
{
	MDB_txn *txn;
	MDB_val k = {5, "state"}, v;
	char boot[40];
	int rv = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rv != 0)
		return err_from_mdb(rv);
	read_boot_id(boot);
	rv = mdb_get(txn, st->meta, &k, &v);
	if (rv == 0 && v.mv_size == sizeof(struct meta_state)) {
		struct meta_state ms;
		memcpy(&ms, v.mv_data, sizeof(ms));
		st->recovered = !ms.clean;
		if (!ms.clean && strcmp(ms.boot_id, boot) != 0) {
			QLOG_WARN(SRC, "unclean shutdown before a reboot: "
			               "dropping keys waiting for supply");
			mdb_drop(txn, st->keys, 0);
			mdb_drop(txn, st->expiry, 0);
			rv = in_marks_past_blocks(st, txn);
			if (rv != 0) {
				mdb_txn_abort(txn);
				return err_from_mdb(rv);
			}
		}
	}
	rv = mdb_txn_commit(txn);
	if (rv != 0)
		return err_from_mdb(rv);
	return write_state(st, false);
}

static int
count_pending(struct km_store *st)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t n = 0;
	int rv = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
	if (rv != 0)
		txn = NULL;
	if (rv == 0 && (rv = mdb_cursor_open(txn, st->keys, &cur)) == 0) {
		for (rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rv == 0;
		     rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (v.mv_size > 0 &&
			    *(const uint8_t *)v.mv_data == KEY_PENDING)
				n++;
		mdb_cursor_close(cur);
	}
	if (txn != NULL)
		mdb_txn_abort(txn);
	atomic_store(&st->pending, n);
	return rv == 0 || rv == MDB_NOTFOUND ? 0 : err_from_mdb(rv);
}

/* One KM per store. A predecessor that was just killed may hold the lock
 * for a moment after it looks gone (a killed multi-threaded process tears
 * its threads down after its main thread shows as a zombie), so a busy
 * lock is tried again for a bounded time before start-up fails. */
static bool
take_lock(int fd)
{
	for (int i = 0; i < LOCK_TRIES; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return true;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return false;
		struct timespec ts = {0, LOCK_RETRY_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	return false;
}

int
km_store_open(struct km_store **out, const char *dir, uint64_t map_bytes)
{
	return km_store_open_keyed(out, dir, NULL, map_bytes);
}

int
km_store_open_keyed(struct km_store **out, const char *dir,
                    const char *key_path, uint64_t map_bytes)
{
	struct km_store *st = calloc(1, sizeof(*st));
	MDB_txn *txn = NULL;
	int rv;
	if (st == NULL)
		return QKDN_E_NOMEM;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		QLOG_ERR(SRC, "cannot create %s: %s", dir, strerror(errno));
		free(st);
		return QKDN_E_STORE;
	}
	/* A second KM on the same store would read the lease and later write
	 * it back behind the first one's: refuse it before it reads. */
	char lock_path[1024];
	snprintf(lock_path, sizeof(lock_path), "%s/km.lock", dir);
	st->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lock_fd < 0 || !take_lock(st->lock_fd)) {
		QLOG_ERR(SRC, "store %s is in use by another KM (%s)", dir,
		         strerror(errno));
		if (st->lock_fd >= 0)
			close(st->lock_fd);
		free(st);
		return QKDN_E_STORE;
	}
	if ((rv = load_seal_key(st, dir, key_path)) != 0)
		goto fail;
	randombytes_buf(st->opening_id, sizeof(st->opening_id));
	if ((st->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL)) == NULL ||
	    (st->block_key = sodium_malloc(32)) == NULL) {
		QLOG_ERR(SRC, "no AES-256-GCM to seal blocks with");
		rv = QKDN_E_STORE;
		goto fail;
	}
	block_subkey(st, st->opening_id, st->block_key);
	sodium_mprotect_readonly(st->block_key);
	if ((rv = mdb_env_create(&st->env)) != 0 ||
	    (rv = mdb_env_set_maxdbs(st->env, 8)) != 0 ||
	    (rv = mdb_env_set_mapsize(st->env, map_bytes)) != 0 ||
	    (rv = mdb_env_open(st->env, dir,
	                       MDB_NOSYNC | MDB_NOTLS | MDB_WRITEMAP, 0600)) !=
	        0) {
		QLOG_ERR(SRC, "LMDB %s: %s", dir, mdb_strerror(rv));
		rv = QKDN_E_STORE;
		goto fail;
	}
	if ((rv = mdb_txn_begin(st->env, NULL, 0, &txn)) == 0) {
		if ((rv = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta)) !=
		        0 ||
		    (rv = mdb_dbi_open(txn, "blocks", MDB_CREATE,
		                       &st->blocks)) != 0 ||
		    (rv = mdb_dbi_open(txn, "marks", MDB_CREATE, &st->marks)) !=
		        0 ||
		    (rv = mdb_dbi_open(txn, "keys", MDB_CREATE, &st->keys)) !=
		        0 ||
		    (rv = mdb_dbi_open(txn, "expiry", MDB_CREATE,
		                       &st->expiry)) != 0)
			mdb_txn_abort(txn);
		else /* frees txn even when it fails: no abort after it */
			rv = mdb_txn_commit(txn);
	}
	if (rv != 0) {
		QLOG_ERR(SRC, "LMDB %s: %s", dir, mdb_strerror(rv));
		rv = QKDN_E_STORE;
		goto fail;
	}
	if ((rv = recover(st)) != 0 || (rv = count_pending(st)) != 0)
		goto fail;
	randombytes_buf(st->nonce_prefix, sizeof(st->nonce_prefix));
	*out = st;
	return 0;
fail:
	if (st->env != NULL)
		mdb_env_close(st->env);
	sodium_free(st->seal_key);
	sodium_free(st->block_key);
	EVP_CIPHER_free(st->gcm);
	close(st->lock_fd);
	free(st);
	return rv;
}

void
km_store_close(struct km_store *st, bool clean)
{
	if (st == NULL)
		return;
	if (clean && write_state(st, true) != 0)
		QLOG_WARN(SRC, "could not mark the store clean");
	mdb_env_close(st->env);
	sodium_free(st->seal_key);
	sodium_free(st->block_key);
	EVP_CIPHER_free(st->gcm);
	close(st->lock_fd);
	free(st);
}

bool
km_store_recovered(const struct km_store *st)
{
	return st->recovered;
}

/* A stored block: half 0 sealed, then half 1 sealed, each with the block's
 * key and its own number as associated data (so halves cannot be swapped
 * or moved to another block). */
static size_t
sealed_half(uint32_t half)
{
	return GCM_OVERHEAD + half;
}

static size_t
half_ad(uint8_t *ad, const uint8_t *kb, size_t klen, int which)
{
	memcpy(ad, kb, klen);
	ad[klen] = (uint8_t)which;
	return klen + 1;
}

int
km_store_block_put(struct km_store *st, const char *link, uint64_t id,
                   const uint8_t *bytes, uint32_t len)
{
	uint8_t kb[LINK_KEY_MAX], ad[LINK_KEY_MAX + 1];
	MDB_txn *txn;
	if (len == 0 || len % 2 != 0)
		return QKDN_E_BAD_REQUEST;
	uint32_t half = len / 2;
	MDB_val k = {block_key(kb, link, id), kb};
	MDB_val v = {2 * sealed_half(half), NULL};
	int rv = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rv != 0)
		return err_from_mdb(rv);
	rv = mdb_put(txn, st->blocks, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
	if (rv != 0) {
		mdb_txn_abort(txn);
		return rv == MDB_KEYEXIST ? QKDN_E_REPLAY : err_from_mdb(rv);
	}
	for (int w = 0; w < 2 && rv == 0; w++)
		rv =
		    seal_block(st, (uint8_t *)v.mv_data + w * sealed_half(half),
		               bytes + (size_t)w * half, half, ad,
		               half_ad(ad, kb, k.mv_size, w));
	if (rv != 0) {
		mdb_txn_abort(txn);
		return rv;
	}
	return err_from_mdb(mdb_txn_commit(txn));
}

/* Unseal the halves from..to of block id (halves of half bytes) into
 * out. */
static int
block_halves(struct km_store *st, const char *link, uint64_t id, int from,
             int to, uint8_t *out, uint32_t half)
{
	uint8_t kb[LINK_KEY_MAX], ad[LINK_KEY_MAX + 1];
	MDB_txn *txn;
	MDB_val k = {block_key(kb, link, id), kb}, v;
	int rv = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
	if (rv != 0)
		return err_from_mdb(rv);
	rv = mdb_get(txn, st->blocks, &k, &v);
	if (rv == MDB_NOTFOUND)
		rv = QKDN_E_BLOCK_MISSING;
	else if (rv != 0)
		rv = err_from_mdb(rv);
	else if (v.mv_size != 2 * sealed_half(half))
		rv = QKDN_E_STORE; /* another block size, or sealed whole */
	for (int w = from; rv == 0 && w <= to; w++)
		rv = unseal_block(st, out + (size_t)(w - from) * half,
		                  (const uint8_t *)v.mv_data +
		                      w * sealed_half(half),
		                  half, ad, half_ad(ad, kb, k.mv_size, w));
	mdb_txn_abort(txn);
	if (rv != 0)
		sodium_memzero(out, (size_t)(to - from + 1) * half);
	return rv;
}

int
km_store_block_get(struct km_store *st, const char *link, uint64_t id,
                   uint8_t *out, uint32_t len)
{
	if (len == 0 || len % 2 != 0)
		return QKDN_E_BAD_REQUEST;
	return block_halves(st, link, id, 0, 1, out, len / 2);
}

int
km_store_block_half_get(struct km_store *st, const char *link, uint64_t id,
                        int which, uint8_t *out, uint32_t len)
{
	if (which != 0 && which != 1)
		return QKDN_E_BAD_REQUEST;
	return block_halves(st, link, id, which, which, out, len);
}

int
km_store_blocks_delete(struct km_store *st, const char *link,
                       const uint64_t *ids, size_t n)
{
	uint8_t kb[LINK_KEY_MAX];
	MDB_txn *txn;
	int rv = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rv != 0)
		return err_from_mdb(rv);
	for (size_t i = 0; i < n; i++) {
		MDB_val k = {block_key(kb, link, ids[i]), kb};
		rv = mdb_del(txn, st->blocks, &k, NULL);
		if (rv != 0 && rv != MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			return err_from_mdb(rv);
		}
	}
	return err_from_mdb(mdb_txn_commit(txn));
}

int
km_store_block_delete(struct km_store *st, const char *link, uint64_t id)
{
	return km_store_blocks_delete(st, link, &id, 1);
}

int
km_store_block_ids(struct km_store *st, const char *link,
                   void (*fn)(void *arg, uint64_t id), void *arg)
{
	uint8_t kb[LINK_KEY_MAX];
	size_t prefix = strlen(link) + 1;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = {block_key(kb, link, 0), kb}, v;
	int rv = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
	if (rv != 0)
		return err_from_mdb(rv);
	if ((rv = mdb_cursor_open(txn, st->blocks, &cur)) != 0) {
		mdb_txn_abort(txn);
		return err_from_mdb(rv);
	}
	for (rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rv == 0;
	     rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != prefix + 8 || memcmp(k.mv_data, kb, prefix))
			break;
		fn(arg, get_be64((const uint8_t *)k.mv_data + prefix));
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rv == 0 || rv == MDB_NOTFOUND ? 0 : err_from_mdb(rv);
}

static size_t
mark_key(uint8_t *k, const char *link, enum km_mark_kind kind)
{
	size_t n = strlen(link);
	memcpy(k, link, n + 1);
	k[n + 1] = (uint8_t)kind;
	return n + 2;
}

int
km_store_mark_get(struct km_store *st, const char *link, enum km_mark_kind kind,
                  struct km_pos *out)
{
	uint8_t kb[LINK_KEY_MAX];
	MDB_txn *txn;
	MDB_val k = {mark_key(kb, link, kind), kb}, v;
	int rv = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
	memset(out, 0, sizeof(*out));
	if (rv != 0)
		return err_from_mdb(rv);
	rv = mdb_get(txn, st->marks, &k, &v);
	if (rv == 0 && v.mv_size == sizeof(*out))
		memcpy(out, v.mv_data, sizeof(*out));
	mdb_txn_abort(txn);
	return rv == 0 || rv == MDB_NOTFOUND ? 0 : err_from_mdb(rv);
}

static int
put_mark(struct km_store *st, MDB_txn *txn, const char *link,
         enum km_mark_kind kind, const struct km_pos *pos)
{
	uint8_t kb[LINK_KEY_MAX];
	struct km_pos p;
	memset(&p, 0, sizeof(p)); /* no stray padding bytes on disk */
	p.blk = pos->blk;
	p.off = pos->off;
	MDB_val k = {mark_key(kb, link, kind), kb}, v = {sizeof(p), &p};
	return mdb_put(txn, st->marks, &k, &v, 0);
}

int
km_store_mark_put(struct km_store *st, const char *link, enum km_mark_kind kind,
                  const struct km_pos *pos, bool sync)
{
	MDB_txn *txn;
	int rv = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rv != 0)
		return err_from_mdb(rv);
	if ((rv = put_mark(st, txn, link, kind, pos)) != 0) {
		mdb_txn_abort(txn);
		return err_from_mdb(rv);
	}
	if ((rv = mdb_txn_commit(txn)) == 0 && sync)
		rv = mdb_env_sync(st->env, 1);
	return err_from_mdb(rv);
}

/* expiry index: big-endian time then ID, so the sweep reads in order */
static void
expiry_key(uint8_t k[24], uint64_t expires, const qkdn_uuid *id)
{
	put_be64(k, expires);
	memcpy(k + 8, id->b, 16);
}

int
km_store_keys_put(struct km_store *st, const struct km_key_record *recs,
                  size_t n, const char *link, const struct km_pos *in_mark)
{
	MDB_txn *txn;
	int rv = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rv != 0)
		return err_from_mdb(rv);
	for (size_t i = 0; i < n && rv == 0; i++) {
		const struct km_key_record *r = &recs[i];
		struct rec_hdr h = {.expires_ms = r->expires_ms,
		                    .src_len = (uint8_t)strlen(r->src_sae),
		                    .dst_len = (uint8_t)strlen(r->dst_sae),
		                    .key_len = (uint16_t)r->len};
		size_t names = h.src_len + h.dst_len;
		MDB_val k = {16, (void *)r->id.b}, v;
		v.mv_size =
		    1 + sizeof(h) + names + NONCE_BYTES + r->len + TAG_BYTES;
		/* an ID known as waiting or supplied is never stored again */
		rv = mdb_put(txn, st->keys, &k, &v,
		             MDB_NOOVERWRITE | MDB_RESERVE);
		if (rv != 0)
			break;
		uint8_t *p = v.mv_data;
		p[0] = KEY_PENDING;
		memcpy(p + 1, &h, sizeof(h));
		memcpy(p + 1 + sizeof(h), r->src_sae, h.src_len);
		memcpy(p + 1 + sizeof(h) + h.src_len, r->dst_sae, h.dst_len);
		seal(st, p + 1 + sizeof(h) + names, r->bytes, r->len, r->id.b,
		     16);
		uint8_t ek[24];
		expiry_key(ek, r->expires_ms, &r->id);
		MDB_val xk = {sizeof(ek), ek}, xv = {0, NULL};
		rv = mdb_put(txn, st->expiry, &xk, &xv, 0);
	}
	if (rv == 0 && link != NULL)
		rv = put_mark(st, txn, link, KM_MARK_IN, in_mark);
	if (rv == 0)
		rv = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rv != 0)
		return rv == MDB_KEYEXIST ? QKDN_E_REPLAY : err_from_mdb(rv);
	atomic_fetch_add(&st->pending, n);
	return 0;
}

/* Check one ID against dst_sae (and src_sae unless NULL); on success
 * unseal into key. */
static int
take_one(struct km_store *st, MDB_txn *txn, const char *src_sae,
         const char *dst_sae, const qkdn_uuid *id, struct qkdn_msg *msg,
         struct qkdn_key *key, uint64_t *expires)
{
	MDB_val k = {16, (void *)id->b}, v;
	struct rec_hdr h;
	int rv = mdb_get(txn, st->keys, &k, &v);
	if (rv == MDB_NOTFOUND)
		return QKDN_E_UNKNOWN_KEY_ID;
	if (rv != 0)
		return err_from_mdb(rv);
	const uint8_t *p = v.mv_data;
	if (v.mv_size >= 1 && p[0] == KEY_SUPPLIED)
		return QKDN_E_ALREADY_SUPPLIED;
	if (v.mv_size < 1 + sizeof(h) || p[0] != KEY_PENDING)
		return QKDN_E_STORE;
	memcpy(&h, p + 1, sizeof(h));
	p += 1 + sizeof(h);
	size_t names = h.src_len + h.dst_len;
	size_t sealed = v.mv_size - 1 - sizeof(h) - names;
	if (v.mv_size !=
	    1 + sizeof(h) + names + NONCE_BYTES + h.key_len + TAG_BYTES)
		return QKDN_E_STORE;
	if (strlen(dst_sae) != h.dst_len ||
	    memcmp(dst_sae, p + h.src_len, h.dst_len) != 0)
		return QKDN_E_NOT_AUTHORISED;
	if (src_sae != NULL && (strlen(src_sae) != h.src_len ||
	                        memcmp(src_sae, p, h.src_len) != 0))
		return QKDN_E_NOT_AUTHORISED;
	key->id = *id;
	key->len = h.key_len;
	if ((key->bytes = qkdn_msg_alloc(msg, h.key_len)) == NULL)
		return QKDN_E_NOMEM;
	*expires = h.expires_ms;
	return unseal(st, key->bytes, p + names, sealed, id->b, 16);
}

int
km_store_keys_take(struct km_store *st, const char *dst_sae,
                   const qkdn_uuid *ids, size_t n, struct qkdn_msg *msg,
                   struct qkdn_key *keys, size_t *bad)
{
	return km_store_keys_take_from(st, NULL, dst_sae, ids, n, msg, keys,
	                               bad);
}

int
km_store_keys_take_from(struct km_store *st, const char *src_sae,
                        const char *dst_sae, const qkdn_uuid *ids, size_t n,
                        struct qkdn_msg *msg, struct qkdn_key *keys,
                        size_t *bad)
{
	MDB_txn *txn;
	int rv = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rv != 0)
		return err_from_mdb(rv);
	for (size_t i = 0; i < n; i++) {
		uint64_t expires = 0;
		uint8_t tomb[9];
		*bad = i;
		rv = take_one(st, txn, src_sae, dst_sae, &ids[i], msg, &keys[i],
		              &expires);
		if (rv != 0)
			goto fail;
		/* the tombstone replaces the key in place and keeps its
		 * expiry; a second mention of the ID in this request then
		 * fails as already supplied */
		tomb[0] = KEY_SUPPLIED;
		put_be64(tomb + 1, expires);
		MDB_val k = {16, (void *)ids[i].b}, tv = {sizeof(tomb), tomb};
		if ((rv = mdb_put(txn, st->keys, &k, &tv, 0)) != 0) {
			rv = err_from_mdb(rv);
			goto fail;
		}
	}
	if ((rv = mdb_txn_commit(txn)) != 0)
		return err_from_mdb(rv);
	atomic_fetch_sub(&st->pending, n);
	return 0;
fail:
	mdb_txn_abort(txn);
	return rv;
}

size_t
km_store_sweep(struct km_store *st, uint64_t now_ms, size_t max)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t done = 0, waiting = 0;
	if (mdb_txn_begin(st->env, NULL, 0, &txn) != 0)
		return 0;
	if (mdb_cursor_open(txn, st->expiry, &cur) != 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	int rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rv == 0 && done < max && k.mv_size == 24 &&
	       get_be64(k.mv_data) <= now_ms) {
		MDB_val id = {16, (uint8_t *)k.mv_data + 8}, rec;
		if (mdb_get(txn, st->keys, &id, &rec) == 0) {
			if (rec.mv_size > 0 &&
			    *(const uint8_t *)rec.mv_data == KEY_PENDING)
				waiting++;
			mdb_del(txn, st->keys, &id, NULL);
		}
		mdb_cursor_del(cur, 0);
		done++;
		rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	mdb_cursor_close(cur);
	if (mdb_txn_commit(txn) != 0)
		return 0;
	atomic_fetch_sub(&st->pending, waiting);
	return done;
}

uint64_t
km_store_pending(struct km_store *st)
{
	return atomic_load(&st->pending);
}
