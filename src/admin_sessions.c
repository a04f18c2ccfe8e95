/*
 * admin_sessions.c - the runtime API's view of the persistence tables:
 * `show sessions BACKEND [SERVER] [limit N]` and
 * `clear sessions BACKEND [SERVER | key KEY]` (SPEC §5). Runs on the
 * control thread; the tables are shared and locked per shard by stick.c.
 */
#include "api.h"
#include "admin.h"
#include "global.h"
#include "json.h"
#include "persist.h"
#include "stick.h"
#include "ev.h"
#include "shared.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <xxhash.h>

/*
 * Redacted keys (issue 9 item 7). A learned session cookie is a bearer
 * credential, a source key a client's address: the stats listener shows
 * them only to an authenticated admin. Anyone else gets "#" and 16 hex
 * digits of a BLAKE2b keyed with a random key of this process: the same
 * session shows the same hash from poll to poll (to follow it, to count
 * distinct ones), and nothing leads back to the key without the process's
 * key, which never leaves it.
 */
#define REDACTED_BYTES 8

static void key_redacted(const uint8_t *k, size_t n, char *out, size_t cap)
{
	static unsigned char secret[crypto_generichash_KEYBYTES];
	static bool have_secret;   /* control thread only */
	unsigned char h[REDACTED_BYTES];

	BUG_ON(cap < 2 * REDACTED_BYTES + 2);
	if (!have_secret) {
		randombytes_buf(secret, sizeof(secret));
		have_secret = true;
	}
	crypto_generichash(h, sizeof(h), k, n, secret, sizeof(secret));
	out[0] = '#';
	sodium_bin2hex(out + 1, cap - 1, h, sizeof(h));
}

/* Bytes as text: anything unprintable (or a space, which would break the
 * columns) as \xHH. */
static void bytes_text(const uint8_t *k, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		if (k[i] > 0x20 && k[i] < 0x7f && k[i] != '\\' && k[i] != '"') {
			out[o++] = (char)k[i];
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[k[i] >> 4];
			out[o++] = hex[k[i] & 15];
		}
	}
	out[o] = 0;
}

/* A key as text: source keys are addresses, others their bytes. */
static void key_text(const struct persist_rule *r, const uint8_t *k, size_t n, char *out, size_t cap)
{
	if (r->kind == PERSIST_SOURCE && ((n == 5 && k[0] == 4) || (n == 17 && k[0] == 6))) {
		inet_ntop(k[0] == 4 ? AF_INET : AF_INET6, k + 1, out, (socklen_t)cap);
		return;
	}
	bytes_text(k, n, out, cap);
}

struct walk {
	struct admin_buf *out;
	struct json *j;
	const struct backend *be;
	const struct persist_rule *r;
	int only_srv;
	uint64_t left;
	bool redact;
	bool origin;     /* the backend's tables are shared: say where each row came from */
	bool truncated;  /* an entry was left out for the limit */
};

/* One row; idle_ms and age_ms UINT64_MAX: unknown (an entry only Redis holds). */
static void emit(struct walk *wk, const void *key, size_t klen, const char *sname,
		 uint64_t idle_ms, uint64_t age_ms, const char *origin)
{
	char k[4 * PERSIST_KEY_MAX + 1];
	char idle[24] = "-", age[24] = "-";

	if (wk->redact)
		key_redacted(key, klen, k, sizeof(k));
	else
		key_text(wk->r, key, klen, k, sizeof(k));
	if (idle_ms != UINT64_MAX) {
		snprintf(idle, sizeof(idle), "%llu", (unsigned long long)(idle_ms / 1000));
		snprintf(age, sizeof(age), "%llu", (unsigned long long)(age_ms / 1000));
	}
	if (wk->j) {
		json_obj_open(wk->j);
		json_kv_str(wk->j, "backend", wk->be->name);
		json_kv_str(wk->j, "method", wk->r->label);
		json_kv_str(wk->j, "key", k);
		json_kv_str(wk->j, "server", sname);
		json_key(wk->j, "idle_s");
		if (idle_ms != UINT64_MAX)
			json_u64(wk->j, idle_ms / 1000);
		else
			json_null(wk->j);
		json_key(wk->j, "age_s");
		if (idle_ms != UINT64_MAX)
			json_u64(wk->j, age_ms / 1000);
		else
			json_null(wk->j);
		if (wk->origin)
			json_kv_str(wk->j, "origin", origin);
		json_obj_close(wk->j);
	} else {
		admin_buf_printf(wk->out, "%s %s %s %s %s %s%s%s\n", wk->be->name, wk->r->label, k,
				 sname, idle, age, wk->origin ? " " : "", wk->origin ? origin : "");
	}
}

static int walk_one(void *arg, const void *key, size_t klen, uint32_t srv, uint64_t idle_ms,
		    uint64_t age_ms)
{
	struct walk *wk = arg;
	if (wk->only_srv >= 0 && (int)srv != wk->only_srv)
		return 0;
	if (!wk->left) {
		wk->truncated = true;
		return 1;
	}
	wk->left--;
	const struct server *sv = persist_server_by_sid(wk->be, srv);
	emit(wk, key, klen, sv ? sv->name : "-", idle_ms, age_ms, "local");
	return 0;
}

/* Close the document's outer object, append it and its line end, free it. */
static void json_done(struct json *j, struct admin_buf *out)
{
	json_obj_close(j);
	const char *doc = json_result(j);
	if (doc)
		admin_buf_puts(out, doc);
	else
		out->oom = true;
	json_free(j);
	admin_buf_puts(out, "\n");
}

static struct backend *find_be(const char *name)
{
	for (int i = 0; G.cfg && i < G.cfg->nbackends; i++)
		if (!strcmp(G.cfg->backends[i]->name, name))
			return G.cfg->backends[i];
	return NULL;
}

/* The id table entries name the server by (its sid), or -1. */
static int find_server_idx(const struct backend *be, const char *name)
{
	for (int i = 0; i < be->nservers; i++)
		if (!strcmp(be->servers[i]->name, name))
			return (int)be->servers[i]->sid;
	return -1;
}

/* ---- the shared view: what Redis holds besides this instance's tables ---- */

/* The Redis keys of one local table, as sorted hashes: a binding Redis
 * holds is shown as "redis" only when this instance does not hold it. */
struct keyset {
	const struct persist_rule *r;
	uint64_t *h;
	size_t n, cap;
	bool oom;
};

static int keyset_add(void *arg, const void *key, size_t klen, uint32_t srv, uint64_t idle_ms,
		      uint64_t age_ms)
{
	struct keyset *ks = arg;
	char k[PERSIST_KEY_MAX + 1];
	size_t n = persist_shared_key_of(ks->r, key, klen, k);

	if (!n)
		return 0;
	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? 2 * ks->cap : 256;
		uint64_t *h = realloc(ks->h, cap * sizeof(*h));

		if (!h) {
			ks->oom = true;
			return 1;
		}
		ks->h = h;
		ks->cap = cap;
	}
	ks->h[ks->n++] = XXH3_64bits(k, n);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct redis_walk {
	struct walk *wk;
	struct keyset ks;
};

static int redis_one(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct redis_walk *rw = arg;
	uint64_t h = XXH3_64bits(key, klen);
	char name[4 * SHARED_VAL_MAX + 1];

	if (rw->ks.n && bsearch(&h, rw->ks.h, rw->ks.n, sizeof(h), cmp_u64))
		return 0;  /* shown as local */
	if (!rw->wk->left) {
		rw->wk->truncated = true;
		return 1;
	}
	rw->wk->left--;
	/* whatever Redis holds: never a broken column or line */
	bytes_text((const uint8_t *)val, MIN(vlen, (size_t)SHARED_VAL_MAX), name, sizeof(name));
	emit(rw->wk, key, klen, name, UINT64_MAX, UINT64_MAX, "redis");
	return 0;
}

/* The bindings of the backend's shared tables that Redis holds and this
 * instance does not, after the local ones (within wk->left). NULL, or why
 * the Redis part is missing or partial (in why). */
static const char *show_redis(struct walk *wk, const char *server, char *why, size_t whylen,
			      bool *partial)
{
	const struct persist_rules *rs = wk->be->persist;
	struct shared_admin *a = shared_admin_open(G.cfg->shared, why, whylen);

	*partial = false;
	if (!a)
		return why;
	for (int i = 0; i < rs->n && !wk->truncated; i++) {
		const struct persist_rule *r = &rs->r[i];
		struct redis_walk rw = { wk, { r, NULL, 0, 0, false } };
		uint64_t seen;
		int rc;

		if (!r->table || !r->shared)
			continue;
		stick_foreach(r->table, ev_now_ms(), keyset_add, &rw.ks);
		if (rw.ks.n)
			qsort(rw.ks.h, rw.ks.n, sizeof(*rw.ks.h), cmp_u64);
		wk->r = r;
		rc = rw.ks.oom ? -1 : shared_admin_scan(a, G.cfg->shared->prefix, r->shared_name,
							 server, false, redis_one, &rw, &seen);
		free(rw.ks.h);
		if (rc < 0) {
			snprintf(why, whylen, "%s", rw.ks.oom ? "out of memory" : shared_admin_why(a));
			*partial = true;
			break;
		}
	}
	shared_admin_close(a);
	return *partial ? why : NULL;
}

/* Remove from Redis the bindings of the backend's shared tables (holding
 * server only, unless NULL), whoever holds them; *removed: how many. 0, or
 * -1 (why) when Redis failed or the budget ran out midway. */
static int clear_redis(struct shared_admin *a, const struct backend *be, const char *server,
		       uint64_t *removed, char *why, size_t whylen)
{
	const struct persist_rules *rs = be->persist;

	*removed = 0;
	for (int i = 0; i < rs->n; i++) {
		const struct persist_rule *r = &rs->r[i];
		uint64_t n = 0;
		int rc;

		if (!r->table || !r->shared)
			continue;
		rc = shared_admin_scan(a, G.cfg->shared->prefix, r->shared_name, server, true, NULL,
				       NULL, &n);
		*removed += n;
		if (rc < 0) {
			snprintf(why, whylen, "%s", shared_admin_why(a));
			return -1;
		}
	}
	return 0;
}

static bool is_shared(const struct backend *be)
{
	const struct persist_rules *rs = be->persist;

	return rs && rs->shared && G.cfg && G.cfg->shared;
}

/* w[0..n): BACKEND [SERVER] [limit N]. Returns 0, or -1 with msg set.
 * with_redis: add what Redis holds (the admin socket; the stats listener,
 * untrusted, never makes the control thread wait for Redis). */
static int show_sessions(struct admin_buf *out, char **w, int n, bool json, bool redact,
			 bool with_redis, const char **msg, const char **arg)
{
	struct backend *be = n >= 1 ? find_be(w[0]) : NULL;
	if (!be) {
		*msg = n >= 1 ? "no backend '%s'" : "usage: %s";
		*arg = n >= 1 ? w[0] : NULL;
		return -1;
	}
	int only = -1;
	const char *only_name = NULL;
	uint64_t limit = 1000;
	for (int i = 1; i < n; i++) {
		if (!strcmp(w[i], "limit") && i + 1 < n) {
			char *end;
			unsigned long long v = strtoull(w[i + 1], &end, 10);
			if (*end || !v) {
				*msg = "invalid limit '%s'";
				*arg = w[i + 1];
				return -1;
			}
			limit = v;
			i++;
		} else if (only < 0 && (only = find_server_idx(be, w[i])) >= 0) {
			only_name = w[i];
			continue;
		} else {
			*msg = "no server '%s' in this backend";
			*arg = w[i];
			return -1;
		}
	}
	struct json j;
	struct walk wk = { out, NULL, be, NULL, only, limit, redact, is_shared(be), false };
	if (json) {
		json_init_heap(&j);
		json_obj_open(&j);
		json_key(&j, "sessions");
		json_arr_open(&j);
		wk.j = &j;
	} else {
		admin_buf_puts(out, wk.origin ? "backend method key server idle_s age_s origin\n"
					      : "backend method key server idle_s age_s\n");
	}
	const struct persist_rules *rs = be->persist;
	uint64_t now = ev_now_ms();
	for (int i = 0; rs && i < rs->n; i++) {
		if (!rs->r[i].table)
			continue;
		wk.r = &rs->r[i];
		stick_foreach(rs->r[i].table, now, walk_one, &wk);
	}
	/* the Redis part: "ok", "unreachable" or "partial" (with why) */
	const char *redis = NULL, *rwhy = NULL;
	char why[192] = "";
	if (wk.origin && with_redis && !wk.truncated) {
		bool partial;

		rwhy = show_redis(&wk, only_name, why, sizeof(why), &partial);
		redis = !rwhy ? "ok" : partial ? "partial" : "unreachable";
	}
	if (json) {
		json_arr_close(&j);
		if (wk.origin) {
			json_key(&j, "truncated");
			json_bool(&j, wk.truncated);
			if (redis)
				json_kv_str(&j, "redis", redis);
			if (rwhy)
				json_kv_str(&j, "redis_error", rwhy);
		}
		json_done(&j, out);
	} else if (wk.origin) {
		if (wk.truncated)
			admin_buf_printf(out, "# truncated: at most %llu entries (limit N)\n",
					 (unsigned long long)limit);
		if (rwhy && !strcmp(redis, "partial"))
			admin_buf_printf(out, "# redis: partial, stopped midway (%s)\n", rwhy);
		else if (rwhy)
			admin_buf_printf(out, "# redis: unreachable (%s): local entries only\n", rwhy);
	}
	return 0;
}

int admin_show_sessions(struct admin_buf *out, char **w, int n, bool json, bool redact,
			const char **msg, const char **arg)
{
	return show_sessions(out, w, n, json, redact, false, msg, arg);
}

int admin_show_shared_sessions(struct admin_buf *out, char **w, int n, bool json,
			       const char **msg, const char **arg)
{
	return show_sessions(out, w, n, json, false, true, msg, arg);
}

/* shared-tables: the entries a clear removes go from Redis too (a DEL
 * each, handed to a worker's link: persist_shared_forget). */
struct forget {
	const struct persist_rule *r;
	int only_srv;
};

static int forget_one(void *arg, const void *key, size_t klen, uint32_t srv, uint64_t idle_ms,
		      uint64_t age_ms)
{
	const struct forget *f = arg;

	if (f->only_srv < 0 || (int)srv == f->only_srv)
		persist_shared_forget(f->r, key, klen);
	return 0;
}

static void forget_shared(const struct persist_rules *rs, int only_srv)
{
	for (int i = 0; rs && rs->shared && i < rs->n; i++)
		if (rs->r[i].table && rs->r[i].shared) {
			struct forget f = { &rs->r[i], only_srv };

			stick_foreach(rs->r[i].table, ev_now_ms(), forget_one, &f);
		}
}

/* w[0..n): BACKEND [SERVER | key KEY]. Answers how many entries went. */
int admin_clear_sessions(struct admin_buf *out, char **w, int n, bool json, const char **msg,
			 const char **arg)
{
	struct backend *be = n >= 1 ? find_be(w[0]) : NULL;
	if (!be) {
		*msg = n >= 1 ? "no backend '%s'" : "usage: %s";
		*arg = n >= 1 ? w[0] : NULL;
		return -1;
	}
	const struct persist_rules *rs = be->persist;
	size_t removed = 0;
	int s = -1;
	if (n == 3 && !strcmp(w[1], "key")) {
		for (int i = 0; rs && i < rs->n; i++)
			if (rs->r[i].table) {
				removed += (size_t)stick_delete(rs->r[i].table, w[2], strlen(w[2]));
				/* known here or not: the shared view forgets it */
				persist_shared_forget(&rs->r[i], w[2], strlen(w[2]));
			}
		if (json)
			admin_buf_printf(out, "{\"cleared\":%zu}\n", removed);
		else
			admin_buf_printf(out, "cleared %zu\n", removed);
		return 0;
	}
	if (n == 2 && (s = find_server_idx(be, w[1])) < 0) {
		*msg = "no server '%s' in this backend";
		*arg = w[1];
		return -1;
	}
	if (n != 1 && n != 2) {
		*msg = "usage: %s";
		*arg = NULL;
		return -1;
	}
	/* shared: every binding of the backend (or of the server) in Redis,
	 * also those only other instances hold, removed after the local
	 * entries are gone (so that none is refreshed back meanwhile). A Redis
	 * out of reach: the local entries' DELs are queued on a worker's link
	 * instead, replayed when it is back. The local part is done whatever
	 * Redis does. */
	char why[192] = "";
	struct shared_admin *a = is_shared(be) ? shared_admin_open(G.cfg->shared, why, sizeof(why))
					       : NULL;
	if (!a)
		forget_shared(rs, s);
	for (int i = 0; rs && i < rs->n; i++) {
		if (!rs->r[i].table)
			continue;
		if (s >= 0) {
			removed += stick_clear_server(rs->r[i].table, (uint32_t)s);
		} else {
			removed += stick_count(rs->r[i].table);
			stick_clear(rs->r[i].table);
		}
	}
	if (!is_shared(be)) {
		if (json)
			admin_buf_printf(out, "{\"cleared\":%zu}\n", removed);
		else
			admin_buf_printf(out, "cleared %zu\n", removed);
		return 0;
	}
	uint64_t gone = 0;
	bool reached = a != NULL;
	int rc = a ? clear_redis(a, be, s >= 0 ? w[1] : NULL, &gone, why, sizeof(why)) : -1;
	shared_admin_close(a);
	if (json) {
		struct json j;

		json_init_heap(&j);
		json_obj_open(&j);
		json_kv_u64(&j, "cleared", removed);
		json_key(&j, "redis");
		json_obj_open(&j);
		json_kv_str(&j, "state", !rc ? "ok" : reached ? "partial" : "unreachable");
		json_kv_u64(&j, "cleared", gone);
		if (rc)
			json_kv_str(&j, "error", why);
		json_obj_close(&j);
		json_done(&j, out);
	} else if (!rc) {
		admin_buf_printf(out, "cleared %zu local, %llu in redis\n", removed,
				 (unsigned long long)gone);
	} else if (reached) {
		admin_buf_printf(out, "cleared %zu local, %llu in redis; redis stopped midway (%s): "
				 "run it again\n", removed, (unsigned long long)gone, why);
	} else {
		admin_buf_printf(out, "cleared %zu local; redis unreachable (%s): its bindings were "
				 "not cleared there (the DELs of the local ones are queued)\n",
				 removed, why);
	}
	return 0;
}
