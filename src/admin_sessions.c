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

#include <arpa/inet.h>
#include <sodium.h>

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

/* A key as text: source keys are addresses, others their bytes with
 * anything unprintable (or a space, which would break the columns) as
 * \xHH. */
static void key_text(const struct persist_rule *r, const uint8_t *k, size_t n, char *out, size_t cap)
{
	if (r->kind == PERSIST_SOURCE && ((n == 5 && k[0] == 4) || (n == 17 && k[0] == 6))) {
		inet_ntop(k[0] == 4 ? AF_INET : AF_INET6, k + 1, out, (socklen_t)cap);
		return;
	}
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

struct walk {
	struct admin_buf *out;
	struct json *j;
	const struct backend *be;
	const struct persist_rule *r;
	int only_srv;
	uint64_t left;
	bool redact;
};

static int walk_one(void *arg, const void *key, size_t klen, uint32_t srv, uint64_t idle_ms,
		    uint64_t age_ms)
{
	struct walk *wk = arg;
	if (wk->only_srv >= 0 && (int)srv != wk->only_srv)
		return 0;
	if (!wk->left)
		return 1;
	wk->left--;
	char k[4 * PERSIST_KEY_MAX + 1];
	if (wk->redact)
		key_redacted(key, klen, k, sizeof(k));
	else
		key_text(wk->r, key, klen, k, sizeof(k));
	const struct server *sv = persist_server_by_sid(wk->be, srv);
	const char *sname = sv ? sv->name : "-";
	if (wk->j) {
		json_obj_open(wk->j);
		json_kv_str(wk->j, "backend", wk->be->name);
		json_kv_str(wk->j, "method", wk->r->label);
		json_kv_str(wk->j, "key", k);
		json_kv_str(wk->j, "server", sname);
		json_kv_u64(wk->j, "idle_s", idle_ms / 1000);
		json_kv_u64(wk->j, "age_s", age_ms / 1000);
		json_obj_close(wk->j);
	} else {
		admin_buf_printf(wk->out, "%s %s %s %s %llu %llu\n", wk->be->name, wk->r->label, k, sname,
				 (unsigned long long)(idle_ms / 1000), (unsigned long long)(age_ms / 1000));
	}
	return 0;
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

/* w[0..n): BACKEND [SERVER] [limit N]. Returns 0, or -1 with msg set. */
int admin_show_sessions(struct admin_buf *out, char **w, int n, bool json, bool redact,
			const char **msg, const char **arg)
{
	struct backend *be = n >= 1 ? find_be(w[0]) : NULL;
	if (!be) {
		*msg = n >= 1 ? "no backend '%s'" : "usage: %s";
		*arg = n >= 1 ? w[0] : NULL;
		return -1;
	}
	int only = -1;
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
			continue;
		} else {
			*msg = "no server '%s' in this backend";
			*arg = w[i];
			return -1;
		}
	}
	struct json j;
	struct walk wk = { out, NULL, be, NULL, only, limit, redact };
	if (json) {
		json_init_heap(&j);
		json_obj_open(&j);
		json_key(&j, "sessions");
		json_arr_open(&j);
		wk.j = &j;
	} else {
		admin_buf_puts(out, "backend method key server idle_s age_s\n");
	}
	const struct persist_rules *rs = be->persist;
	uint64_t now = ev_now_ms();
	for (int i = 0; rs && i < rs->n; i++) {
		if (!rs->r[i].table)
			continue;
		wk.r = &rs->r[i];
		stick_foreach(rs->r[i].table, now, walk_one, &wk);
	}
	if (json) {
		json_arr_close(&j);
		json_obj_close(&j);
		const char *doc = json_result(&j);
		if (doc)
			admin_buf_puts(out, doc);
		else
			out->oom = true;
		json_free(&j);
		admin_buf_puts(out, "\n");
	}
	return 0;
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
	if (n == 1) {
		forget_shared(rs, -1);
		for (int i = 0; rs && i < rs->n; i++)
			if (rs->r[i].table) {
				removed += stick_count(rs->r[i].table);
				stick_clear(rs->r[i].table);
			}
	} else if (n == 3 && !strcmp(w[1], "key")) {
		for (int i = 0; rs && i < rs->n; i++)
			if (rs->r[i].table) {
				removed += (size_t)stick_delete(rs->r[i].table, w[2], strlen(w[2]));
				/* known here or not: the shared view forgets it */
				persist_shared_forget(&rs->r[i], w[2], strlen(w[2]));
			}
	} else if (n == 2) {
		int s = find_server_idx(be, w[1]);
		if (s < 0) {
			*msg = "no server '%s' in this backend";
			*arg = w[1];
			return -1;
		}
		forget_shared(rs, s);
		for (int i = 0; rs && i < rs->n; i++)
			if (rs->r[i].table)
				removed += stick_clear_server(rs->r[i].table, (uint32_t)s);
	} else {
		*msg = "usage: %s";
		*arg = NULL;
		return -1;
	}
	if (json)
		admin_buf_printf(out, "{\"cleared\":%zu}\n", removed);
	else
		admin_buf_printf(out, "cleared %zu\n", removed);
	return 0;
}
