/*
 * state.c - the state file: all persistence tables of a configuration in
 * one file, so that a restart (an upgrade, a crash, a reboot) keeps every
 * session on its server (SPEC §3.1, issue 3 item 8).
 *
 * Three problems shape it:
 *
 * - Atomicity. The file is rewritten every few seconds; a crash or a full
 *   disk in the middle must not leave a half file where the good one was.
 *   So we write PATH.tmp, flush and fsync it, rename it over PATH (atomic
 *   on POSIX file systems) and fsync the directory so the rename itself is
 *   durable: the classic sequence, as in Redis' rdbSave().
 *
 * - Identity of servers. Table entries store a server as a number, its
 *   sid (persist.c), and the next configuration may reorder, rename or
 *   remove servers and numbers them afresh. So the header lists, for every
 *   backend, the server name of each id; on load a saved id becomes a
 *   name, then the sid of the server of that name now, or the entry is
 *   dropped (and counted).
 *
 * - Hostile or damaged input. The file may be truncated, bit-flipped,
 *   from another program or from a future version. Everything is checked
 *   before use: our header is covered by a BLAKE2b digest, each stick block
 *   by its own chained digests (stick.c), and the header says how many
 *   blocks follow, so a file cut exactly between two blocks is detected
 *   too. Any error loads nothing: the tables already filled from the file
 *   are cleared again.
 *
 * Layout (integers little-endian):
 *   "bollard-state\n"  u32 version  u32 payload length  payload  16-byte
 *   BLAKE2b digest of everything before it; payload = u64 wall-clock ms at
 *   save, u32 number of blocks, u32 number of backends, then per backend:
 *   u8 length + name, u32 number of server ids, per id u8 length + the
 *   name of the server that table entries name by that id (its sid, see
 *   persist.c; empty when no server has it any more), then (version 2)
 *   the operator's state of its servers (srvstate.h: admin states and
 *   weights set at runtime, servers added at runtime). Then the blocks,
 *   one per table rule, named "BACKEND/LABEL/NAME". Version 1 files (no
 *   operator state) are still read.
 *
 * Time: entries carry relative idle times (stick.h). The wall-clock time
 * of the save lets the loader add the time bollard was stopped to every
 * entry's idle time and age, so that a restart does not revive sessions
 * that expired meanwhile, even after a reboot (when the monotonic clock is
 * smaller than the downtime). Both clocks can be injected (state_*_at).
 */
#include "api.h"
#include "bytes.h"
#include "state.h"
#include "lb_hash.h"
#include "log.h"
#include "persist.h"
#include "srvstate.h"
#include "stick.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC      "bollard-state\n"
#define STATE_MAGIC_LEN  14
#define STATE_VERSION    2u	/* 2: the operator's state of servers (srvstate.h) */
#define STATE_FIXED      (STATE_MAGIC_LEN + 4 + 4)	/* magic, version, length */
#define STATE_DIGEST     16
#define STATE_PAYLOAD_MAX (16u << 20)	/* far above any sane configuration */

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}





/* The clock of the tables (stick.h: caller-supplied monotonic ms), the
 * same CLOCK_MONOTONIC the workers read, and the wall clock, only to
 * measure how long bollard was stopped. */
static struct state_clock clock_now(void)
{
	struct timespec m, w;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &w);
	return (struct state_clock){
		.mono_ms = (uint64_t)m.tv_sec * 1000u + (uint64_t)m.tv_nsec / 1000000u,
		.wall_ms = (uint64_t)w.tv_sec * 1000u + (uint64_t)w.tv_nsec / 1000000u,
	};
}

static struct persist_rules *rules_of(const struct backend *be)
{
	return be->persist;
}

/* ---- header ---------------------------------------------------------------- */

static uint8_t *hbuf_room(struct bytebuf *b, size_t n)
{
	return bytebuf_room(b, n, 1024);
}

static void hbuf_u32(struct bytebuf *b, uint32_t v)
{
	uint8_t *q = hbuf_room(b, 4);

	if (q)
		put32(q, v);
}

static void hbuf_name(struct bytebuf *b, const char *s)
{
	/* Configuration names are shorter than CFG_NAME_MAX (< 256). */
	size_t n = strnlen(s, CFG_NAME_MAX - 1);
	uint8_t *q = hbuf_room(b, 1 + n);

	if (q) {
		q[0] = (uint8_t)n;
		memcpy(q + 1, s, n);
	}
}

static uint32_t count_blocks(const struct config *cfg)
{
	uint32_t n = 0;

	for (int b = 0; b < cfg->nbackends; b++) {
		const struct persist_rules *rs = rules_of(cfg->backends[b]);

		for (int i = 0; rs && i < rs->n; i++)
			n += rs->r[i].table != NULL;
	}
	return n;
}

/* The whole header, digest included, into b. */
static int build_header(const struct config *cfg, uint64_t wall_ms, struct bytebuf *b)
{
	uint8_t *q;

	q = hbuf_room(b, STATE_FIXED);
	if (q) {
		memcpy(q, STATE_MAGIC, STATE_MAGIC_LEN);
		put32(q + STATE_MAGIC_LEN, STATE_VERSION);
	}
	q = hbuf_room(b, 8);
	if (q)
		put64(q, wall_ms);
	hbuf_u32(b, count_blocks(cfg));
	hbuf_u32(b, (uint32_t)cfg->nbackends);
	for (int i = 0; i < cfg->nbackends; i++) {
		const struct backend *be = cfg->backends[i];
		/* `add server` may publish a longer array meanwhile (cfg.h) */
		int n = __atomic_load_n(&be->nservers, __ATOMIC_ACQUIRE);
		struct server *const *sv = __atomic_load_n(&be->servers, __ATOMIC_ACQUIRE);
		uint32_t nids = 0;
		const char **names;

		for (int s = 0; s < n; s++)
			nids = MAX(nids, sv[s]->sid + 1);
		names = calloc(nids ? nids : 1, sizeof(*names));
		if (!names)
			return -1;
		for (int s = 0; s < n; s++)
			if (!sv[s]->removed)
				names[sv[s]->sid] = sv[s]->name;
		hbuf_name(b, be->name);
		hbuf_u32(b, nids);
		for (uint32_t id = 0; id < nids; id++)
			hbuf_name(b, names[id] ? names[id] : "");
		free(names);
		srvstate_encode(be, b);
	}
	if (b->oom)
		return -1;
	put32(b->p + STATE_MAGIC_LEN + 4, (uint32_t)(b->len - STATE_FIXED));
	q = hbuf_room(b, STATE_DIGEST);
	if (!q)
		return -1;
	crypto_generichash(q, STATE_DIGEST, b->p, b->len - STATE_DIGEST, NULL, 0);
	return 0;
}

static void block_name(char *out, size_t cap, const struct backend *be,
		       const struct persist_rule *r)
{
	/* Names hold no '/' (cfg_check_name, persist valid_name), so the
	 * first '/' ends the backend name. */
	snprintf(out, cap, "%s/%s/%s", be->name, r->label, r->name);
}

/* ---- save ------------------------------------------------------------------- */

/* fsync the directory holding path, so that the rename is durable. */
static int sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, rc;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int write_file(const struct config *cfg, FILE *f, const char *tmp,
		      const struct state_clock *clk, char *err, size_t errlen)
{
	struct bytebuf h = { 0 };
	uint64_t now = clk->mono_ms;
	char name[STICK_KEY_MAX + 1];

	if (build_header(cfg, clk->wall_ms, &h) < 0) {
		free(h.p);
		return fail(err, errlen, "out of memory");
	}
	if (fwrite(h.p, h.len, 1, f) != 1) {
		free(h.p);
		return fail(err, errlen, "%s: write: %s", tmp, strerror(errno));
	}
	free(h.p);
	/* Same order as count_blocks(): the header promised this many. */
	for (int b = 0; b < cfg->nbackends; b++) {
		const struct backend *be = cfg->backends[b];
		const struct persist_rules *rs = rules_of(be);
		char e[256];

		for (int i = 0; rs && i < rs->n; i++) {
			if (!rs->r[i].table)
				continue;
			block_name(name, sizeof(name), be, &rs->r[i]);
			if (stick_save(rs->r[i].table, f, name, now, e, sizeof(e)) < 0)
				return fail(err, errlen, "%s: %s", tmp, e);
		}
	}
	if (fflush(f) != 0 || ferror(f))
		return fail(err, errlen, "%s: write: %s", tmp, strerror(errno));
	if (fsync(fileno(f)) < 0)
		return fail(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
	return 0;
}

int state_save(const struct config *cfg, const char *path, char *err,
	       size_t errlen)
{
	struct state_clock clk = clock_now();

	return state_save_at(cfg, path, &clk, err, errlen);
}

int state_save_at(const struct config *cfg, const char *path,
		  const struct state_clock *clk, char *err, size_t errlen)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 5);
	FILE *f;
	int fd, rc;

	if (!tmp)
		return fail(err, errlen, "out of memory");
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	/* 0600: the keys are client addresses and session identifiers.
	 * O_NOFOLLOW: a symlink planted at PATH.tmp must not redirect us. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = fail(err, errlen, "%s: %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	/* A stale PATH.tmp keeps its old mode through O_TRUNC. */
	(void)fchmod(fd, 0600);
	f = fdopen(fd, "wb");
	if (!f) {
		rc = fail(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		free(tmp);
		return rc;
	}
	rc = write_file(cfg, f, tmp, clk, err, errlen);
	if (fclose(f) != 0 && rc == 0)
		rc = fail(err, errlen, "%s: close: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) < 0)
		rc = fail(err, errlen, "rename %s to %s: %s", tmp, path, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	else if (sync_dir(path) < 0)
		rc = fail(err, errlen, "%s: fsync of the directory: %s", path, strerror(errno));
	free(tmp);
	return rc;
}

/* ---- load ------------------------------------------------------------------- */

struct saved_be {
	char name[256];
	uint32_t nservers;
	const uint8_t *servers;	/* nservers (u8 length, name) in the payload */
	size_t ops;		/* version 2: offset of its srvstate records, else 0 */
};

struct saved {
	uint32_t version;
	uint8_t *payload;
	size_t len;
	uint64_t wall_ms;
	uint32_t nblocks;
	uint32_t nbackends;
	struct saved_be *be;
};

/* Copy a length-prefixed name at p[*off] (bounds-checked) into out. */
static int take_name(const uint8_t *p, size_t len, size_t *off, char out[256])
{
	size_t n;

	if (*off >= len)
		return -1;
	n = p[*off];
	if (len - *off - 1 < n)
		return -1;
	memcpy(out, p + *off + 1, n);
	out[n] = '\0';
	*off += 1 + n;
	return 0;
}

static int parse_payload(struct saved *sv, size_t len)
{
	const uint8_t *p = sv->payload;
	size_t off = 16;

	if (len < 16)
		return -1;
	sv->wall_ms = get64(p);
	sv->nblocks = get32(p + 8);
	sv->nbackends = get32(p + 12);
	/* Each backend takes at least 5 bytes: bound the allocation by the
	 * payload before trusting the count. */
	if (sv->nbackends > len / 5)
		return -1;
	sv->be = calloc(sv->nbackends ? sv->nbackends : 1, sizeof(*sv->be));
	if (!sv->be)
		return -1;
	for (uint32_t i = 0; i < sv->nbackends; i++) {
		struct saved_be *b = &sv->be[i];
		char skip[256];

		if (take_name(p, len, &off, b->name) < 0 || len - off < 4)
			return -1;
		b->nservers = get32(p + off);
		off += 4;
		if (b->nservers > len - off)
			return -1;
		b->servers = p + off;
		for (uint32_t s = 0; s < b->nservers; s++)
			if (take_name(p, len, &off, skip) < 0)
				return -1;
		if (sv->version >= 2) {
			b->ops = off;
			if (srvstate_skip(p, len, &off) < 0)
				return -1;
		}
	}
	return off == len ? 0 : -1;
}

/* Read and verify the header. 1 = read, 0 = missing file, -1 = error. */
static int read_header(FILE *f, struct saved *sv, char *err, size_t errlen)
{
	uint8_t fixed[STATE_FIXED], got[STATE_DIGEST], want[STATE_DIGEST];
	crypto_generichash_state st;
	uint32_t version, len;
	size_t n;

	n = fread(fixed, 1, sizeof(fixed), f);
	if (n == 0)
		return fail(err, errlen, "empty state file");
	if (memcmp(fixed, STATE_MAGIC, MIN(n, (size_t)STATE_MAGIC_LEN)) != 0)
		return fail(err, errlen, "not a bollard state file (bad magic)");
	if (n < sizeof(fixed))
		return fail(err, errlen, "truncated state file (header)");
	version = get32(fixed + STATE_MAGIC_LEN);
	/* version 1 (tables only) is still read: an upgrade keeps the
	 * sessions of the previous binary */
	if (version < 1 || version > STATE_VERSION)
		return fail(err, errlen,
			    "unsupported state file version %u (expected 1 to %u)",
			    version, STATE_VERSION);
	sv->version = version;
	len = get32(fixed + STATE_MAGIC_LEN + 4);
	if (len > STATE_PAYLOAD_MAX)
		return fail(err, errlen, "corrupt state file (header length %u)", len);
	sv->payload = malloc(len ? len : 1);
	if (!sv->payload)
		return fail(err, errlen, "out of memory");
	if ((len && fread(sv->payload, len, 1, f) != 1) ||
	    fread(got, STATE_DIGEST, 1, f) != 1)
		return fail(err, errlen, "truncated state file (header)");
	crypto_generichash_init(&st, NULL, 0, STATE_DIGEST);
	crypto_generichash_update(&st, fixed, sizeof(fixed));
	crypto_generichash_update(&st, sv->payload, len);
	crypto_generichash_final(&st, want, STATE_DIGEST);
	/* Verify before parsing: nothing unverified reaches the parser. */
	if (sodium_memcmp(got, want, STATE_DIGEST) != 0)
		return fail(err, errlen, "corrupt state file (header checksum)");
	sv->len = len;
	if (parse_payload(sv, len) < 0)
		return fail(err, errlen, "corrupt state file (header)");
	return 1;
}

/* Saved server id -> current sid, or -1 (and counted) to drop. */
struct srv_map {
	int *to;
	uint32_t n;
	size_t dropped;
};

static int map_srv(void *arg, uint32_t old_srv)
{
	struct srv_map *m = arg;

	if (old_srv < m->n && m->to[old_srv] >= 0)
		return m->to[old_srv];
	m->dropped++;
	return -1;
}

static int build_map(struct srv_map *m, const struct saved_be *sb,
		     const struct backend *be)
{
	size_t off = 0;
	char name[256];

	m->n = sb->nservers;
	m->to = malloc((m->n ? m->n : 1) * sizeof(*m->to));
	if (!m->to)
		return -1;
	for (uint32_t i = 0; i < m->n; i++) {
		/* Bounds were checked by parse_payload(). */
		size_t n = sb->servers[off];

		memcpy(name, sb->servers + off + 1, n);
		name[n] = '\0';
		off += 1 + n;
		m->to[i] = -1;
		for (int s = 0; be && s < be->nservers; s++)
			if (!strcmp(be->servers[s]->name, name)) {
				m->to[i] = (int)be->servers[s]->sid;
				break;
			}
	}
	return 0;
}

static struct saved_be *find_saved(struct saved *sv, const char *name)
{
	for (uint32_t i = 0; i < sv->nbackends; i++)
		if (!strcmp(sv->be[i].name, name))
			return &sv->be[i];
	return NULL;
}

static struct backend *find_backend(struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nbackends; i++)
		if (!strcmp(cfg->backends[i]->name, name))
			return cfg->backends[i];
	return NULL;
}

/* Tables this load filled, to clear them again on error. */
struct touched {
	struct stick_table **t;
	size_t n, cap;
};

static bool was_touched(const struct touched *tt, const struct stick_table *t)
{
	for (size_t i = 0; i < tt->n; i++)
		if (tt->t[i] == t)
			return true;
	return false;
}

/* The rule of be that block `name` belongs to: same "LABEL/NAME", not
 * filled yet by an earlier block (two identical `persist` lines map to
 * their tables in order). NULL when the rule is gone. */
static struct persist_rule *find_rule(const struct backend *be,
				      const char *rest,
				      const struct touched *tt)
{
	struct persist_rules *rs = be ? rules_of(be) : NULL;
	char want[STICK_KEY_MAX + 1];

	for (int i = 0; rs && i < rs->n; i++) {
		struct persist_rule *r = &rs->r[i];

		if (!r->table || was_touched(tt, r->table))
			continue;
		snprintf(want, sizeof(want), "%s/%s", r->label, r->name);
		if (!strcmp(want, rest))
			return r;
	}
	return NULL;
}

static int load_blocks(struct config *cfg, FILE *f, struct saved *sv,
		       const struct state_clock *clk, struct touched *tt,
		       size_t *restored, size_t *dropped, char *err, size_t errlen)
{
	struct stick_table *scratch = NULL;
	struct stick_block b;
	uint32_t nblk = 0;
	uint64_t down;
	int rc = 0;

	/* Time stopped counts as idle time and age: it is added to every
	 * entry (stick.h, downtime_ms). Not by loading "as of the save" on
	 * the monotonic clock: after a reboot that clock is smaller than the
	 * downtime, and a clamp there made entries younger than they are. */
	down = clk->wall_ms > sv->wall_ms ? clk->wall_ms - sv->wall_ms : 0;
	for (;;) {
		struct srv_map m = { 0 };
		struct stick_table *t;
		struct persist_rule *r;
		struct saved_be *sb;
		char bname[STICK_KEY_MAX + 1], *slash;
		int n;

		rc = stick_load_header(f, &b, err, errlen);
		if (rc <= 0)
			break;
		if (++nblk > sv->nblocks) {
			rc = fail(err, errlen, "corrupt state file (extra block)");
			break;
		}
		snprintf(bname, sizeof(bname), "%s", b.name);
		slash = strchr(bname, '/');
		if (slash)
			*slash = '\0';
		sb = slash ? find_saved(sv, bname) : NULL;
		r = sb ? find_rule(find_backend(cfg, bname), slash + 1, tt) : NULL;
		if (r && build_map(&m, sb, find_backend(cfg, bname)) < 0) {
			rc = fail(err, errlen, "out of memory");
			break;
		}
		if (r) {
			t = r->table;
			if (tt->n == tt->cap) {
				/* cap >= the number of table rules: never grows */
				free(m.to);
				rc = fail(err, errlen, "corrupt state file (blocks)");
				break;
			}
			tt->t[tt->n++] = t;
			if (r->expire_ms && down >= r->expire_ms)
				t = NULL;	/* all expired while stopped: verify only */
		} else {
			/* Backend or rule gone: read the entries into a table
			 * that keeps none, only to count them. */
			if (!scratch && !(scratch = stick_new(1, 0, 1))) {
				rc = fail(err, errlen, "out of memory");
				break;
			}
			t = scratch;
		}
		b.downtime_ms = down;
		n = stick_load_body(t, f, &b, clk->mono_ms, map_srv, &m, err, errlen);
		free(m.to);
		if (n < 0) {
			rc = -1;
			break;
		}
		*dropped += m.dropped;
		if (t && t != scratch)
			*restored += (size_t)n;
	}
	if (rc == 0 && nblk != sv->nblocks)
		rc = fail(err, errlen, "truncated state file (%u of %u tables)",
			  nblk, sv->nblocks);
	stick_free(scratch);
	return rc;
}

/* Version 2: restore the operator's state of the servers (srvstate.h). */
static int apply_ops(struct config *cfg, const struct saved *sv, const char *path)
{
	size_t restored = 0, added = 0;

	for (uint32_t i = 0; sv->version >= 2 && i < sv->nbackends; i++) {
		struct backend *be = find_backend(cfg, sv->be[i].name);
		size_t a = added, r = restored;

		if (!be)
			continue;
		if (srvstate_apply(be, sv->payload, sv->len, sv->be[i].ops, &r, &a) < 0)
			return -1;
		/* weights and servers place hashed keys */
		if (r != restored && lb_hash_placed(be) && lb_hash_build(be) < 0)
			return -1;
		restored = r;
		added = a;
	}
	if (restored)
		log_msg(LOG_INFO, "state file %s: operator state of %zu server%s restored "
			"(%zu added at runtime)", path, restored, restored == 1 ? "" : "s", added);
	return 0;
}

int state_load(struct config *cfg, const char *path, size_t *restored,
	       size_t *dropped, char *err, size_t errlen)
{
	struct state_clock clk = clock_now();

	return state_load_at(cfg, path, &clk, restored, dropped, err, errlen);
}

int state_load_at(struct config *cfg, const char *path, const struct state_clock *clk,
		  size_t *restored, size_t *dropped, char *err, size_t errlen)
{
	struct saved sv = { 0 };
	struct touched tt = { 0 };
	size_t nrest = 0, ndrop = 0;
	char e[256] = "";
	FILE *f;
	int rc;

	if (restored)
		*restored = 0;
	if (dropped)
		*dropped = 0;
	f = fopen(path, "rbe");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	}
	rc = read_header(f, &sv, e, sizeof(e));
	/* the operator's state first: an added server must exist before the
	 * entries that name it are loaded */
	if (rc > 0 && apply_ops(cfg, &sv, path) < 0)
		rc = fail(e, sizeof(e), "out of memory");
	if (rc > 0) {
		tt.cap = count_blocks(cfg);
		tt.t = calloc(tt.cap ? tt.cap : 1, sizeof(*tt.t));
		rc = tt.t ? load_blocks(cfg, f, &sv, clk, &tt, &nrest, &ndrop, e, sizeof(e))
			  : fail(e, sizeof(e), "out of memory");
	}
	fclose(f);
	if (rc < 0) {
		/* A half-read file must route no one. */
		for (size_t i = 0; i < tt.n; i++)
			stick_clear(tt.t[i]);
		nrest = ndrop = 0;
		fail(err, errlen, "%s: %s", path, e);
	}
	free(tt.t);
	free(sv.be);
	free(sv.payload);
	if (restored)
		*restored = nrest;
	if (dropped)
		*dropped = ndrop;
	return rc < 0 ? -1 : 0;
}
