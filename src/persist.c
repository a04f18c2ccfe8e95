/*
 * persist.c - session persistence (see persist.h and doc/persistence.md).
 *
 * Decision order: the backend's rules in configuration order; the first
 * that names a server able to take a persistent request (ready or draining)
 * wins: `hit`. A rule naming a server that cannot (down, maint, removed)
 * makes the session `moved`; a cookie that fails authentication is
 * `invalid`, one past max-idle or max-life `expired`; no answer at all is
 * `new`. In every case but a hit the balancer picks a server and every rule
 * records it, so the session moves once and a client that later loses its
 * cookie still lands home by a fallback key.
 *
 * Insert cookies are sealed with XChaCha20-Poly1305 (libsodium) under the
 * first key of secret-file; every key opens, so keys can be rotated. The
 * plaintext is the server's identity (a hash of its name: never its
 * address, so renumbering moves no one), the time of issue and of last
 * refresh, and a session id that refreshes keep, so that the dashboard can
 * estimate how many sessions each server holds (hll.h). The backend and cookie names are bound as associated data, so
 * a cookie of one backend means nothing to another. A random 16-byte
 * prefix per thread and a counter make the nonces unique without a system
 * call per cookie.
 */
#include "api.h"
#include "bytes.h"
#include "persist.h"
#include "cookie.h"
#include "hll.h"
#include "lb_hash.h"
#include "log.h"
#include "seal.h"
#include "shared.h"
#include "srvstate.h"
#include "stick.h"

#include <limits.h>
#include <netinet/in.h>
#include <sodium.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration ----------------------------------------------------------- */

#define DEFAULT_EXPIRE_MS (30u * 60u * 1000u)
#define DEFAULT_SIZE (1u << 20)

static const char *const kind_labels[] = {
	[PERSIST_COOKIE] = "cookie", [PERSIST_PREFIX] = "prefix", [PERSIST_LEARN] = "learn",
	[PERSIST_SOURCE] = "source", [PERSIST_HEADER] = "header", [PERSIST_URLPARAM] = "url-param",
	[PERSIST_JWT] = "jwt",
};

static struct persist_rules *rules_of(const struct backend *be)
{
	return be->persist;
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) >= CFG_NAME_MAX)
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", ch))
			return false;
	}
	return true;
}

static const char *perr(char *err, size_t errlen, const char *fmt, const char *arg)
{
	return msg_fill(err, errlen, fmt, arg);
}

static const char *read_keyfile(struct persist_rule *r, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return perr(err, errlen, "cannot read JWT key file '%s'", path);
	uint8_t buf[512];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (!n)
		return perr(err, errlen, "JWT key file '%s' is empty", path);
	r->jwt_key = malloc(n);
	if (!r->jwt_key)
		return perr(err, errlen, "%s", "out of memory");
	memcpy(r->jwt_key, buf, n);
	r->jwt_keylen = n;
	return NULL;
}

const char *persist_parse(struct backend *be, int line, int argc, char **argv,
			  char *err, size_t errlen)
{
	if (argc < 2)
		return "usage: persist cookie|learn|source|header|url-param|jwt ...";
	struct persist_rules *rs = be->persist;
	if (!rs) {
		rs = calloc(1, sizeof(*rs));
		if (!rs)
			return "out of memory";
		be->persist = rs;
	}
	if (rs->n >= PERSIST_MAX_RULES)
		return "too many persist lines in this backend (at most 8)";
	struct persist_rule *r = &rs->r[rs->n];
	memset(r, 0, sizeof(*r));
	r->line = line;
	r->expire_ms = DEFAULT_EXPIRE_MS;
	r->size = DEFAULT_SIZE;
	r->mask4 = 32;
	r->mask6 = 128;
	r->max_age_s = -1;
	r->httponly = true;
	r->samesite = COOKIE_SAMESITE_LAX;
	snprintf(r->path, sizeof(r->path), "/");
	const char *m = argv[1];
	int i = 2;
	bool table = true;
	if (!strcmp(m, "cookie")) {
		if (argc < 4)
			return "usage: persist cookie NAME insert [options] | persist cookie NAME prefix";
		if (!valid_name(argv[2]))
			return perr(err, errlen, "invalid cookie name '%s'", argv[2]);
		snprintf(r->name, sizeof(r->name), "%s", argv[2]);
		if (!strcmp(argv[3], "insert"))
			r->kind = PERSIST_COOKIE;
		else if (!strcmp(argv[3], "prefix"))
			r->kind = PERSIST_PREFIX;
		else
			return perr(err, errlen, "unknown cookie mode '%s' (insert or prefix)", argv[3]);
		table = false;
		i = 4;
	} else if (!strcmp(m, "learn") || !strcmp(m, "header") || !strcmp(m, "url-param") ||
		   !strcmp(m, "jwt")) {
		if (argc < 3)
			return perr(err, errlen, "usage: persist %s NAME [expire D] [size N]", m);
		if (!valid_name(argv[2]))
			return perr(err, errlen, "invalid name '%s'", argv[2]);
		snprintf(r->name, sizeof(r->name), "%s", argv[2]);
		r->kind = !strcmp(m, "learn") ? PERSIST_LEARN : !strcmp(m, "header") ? PERSIST_HEADER
			: !strcmp(m, "url-param") ? PERSIST_URLPARAM : PERSIST_JWT;
		i = 3;
	} else if (!strcmp(m, "source")) {
		r->kind = PERSIST_SOURCE;
	} else if (!strcmp(m, "tls-session")) {
		return "'persist tls-session' needs mode tcp, which is not yet supported";
	} else {
		return perr(err, errlen,
			    "unknown persistence method '%s' (cookie, learn, source, header, url-param, jwt)", m);
	}
	snprintf(r->label, sizeof(r->label), "%s", kind_labels[r->kind]);
	for (; i < argc; i++) {
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint32_t ms;
		uint64_t sz;
		if (table && !strcmp(o, "expire")) {
			if (v && cfg_duration_check(o, v, &ms, err, errlen))
				return err;
			if (!v || !ms)
				return "expire needs a duration (e.g. 30m)";
			r->expire_ms = ms;
			i++;
		} else if (table && !strcmp(o, "size")) {
			if (!v || cfg_parse_size(v, &sz) < 0 || sz < 1 || sz > 100000000)
				return "size needs a number of entries between 1 and 100m";
			r->size = (uint32_t)sz;
			i++;
		} else if (r->kind == PERSIST_SOURCE && (!strcmp(o, "mask4") || !strcmp(o, "mask6"))) {
			int max = o[4] == '4' ? 32 : 128;
			char *end;
			long n = v ? strtol(v, &end, 10) : -1;
			if (!v || *end || n < 0 || n > max)
				return perr(err, errlen, "%s needs a prefix length", o);
			if (o[4] == '4')
				r->mask4 = (uint8_t)n;
			else
				r->mask6 = (uint8_t)n;
			i++;
		} else if (r->kind == PERSIST_JWT && !strcmp(o, "from")) {
			if (i + 2 >= argc || !valid_name(argv[i + 2]))
				return "usage: from header NAME | from cookie NAME";
			if (!strcmp(v, "header"))
				snprintf(r->jwt_from_header, sizeof(r->jwt_from_header), "%s", argv[i + 2]);
			else if (!strcmp(v, "cookie"))
				snprintf(r->jwt_from_cookie, sizeof(r->jwt_from_cookie), "%s", argv[i + 2]);
			else
				return "usage: from header NAME | from cookie NAME";
			i += 2;
		} else if (r->kind == PERSIST_JWT && !strcmp(o, "verify")) {
			if (i + 2 >= argc || strcmp(v, "hs256"))
				return "usage: verify hs256 KEYFILE";
			const char *e = read_keyfile(r, argv[i + 2], err, errlen);
			if (e)
				return e;
			i += 2;
		} else if (r->kind == PERSIST_COOKIE && (!strcmp(o, "max-idle") || !strcmp(o, "max-life") ||
							 !strcmp(o, "max-age"))) {
			if (v && cfg_duration_check(o, v, &ms, err, errlen))
				return err;
			if (!v || !ms)
				return perr(err, errlen, "%s needs a duration", o);
			if (!strcmp(o, "max-idle"))
				r->max_idle_ms = ms;
			else if (!strcmp(o, "max-life"))
				r->max_life_ms = ms;
			else if (ms < 1000)
				return "max-age is counted in whole seconds: use at least 1s";
			else
				r->max_age_s = ms / 1000;
			i++;
		} else if (r->kind == PERSIST_COOKIE && (!strcmp(o, "domain") || !strcmp(o, "path"))) {
			if (!v || strlen(v) >= sizeof(r->domain) || strpbrk(v, ";, \t"))
				return perr(err, errlen, "%s needs a value without ';', ',' or spaces", o);
			snprintf(o[0] == 'd' ? r->domain : r->path, sizeof(r->domain), "%s", v);
			i++;
		} else if (r->kind == PERSIST_COOKIE && !strcmp(o, "secure")) {
			r->secure = true;
		} else if (r->kind == PERSIST_COOKIE && !strcmp(o, "httponly")) {
			r->httponly = true;
		} else if (r->kind == PERSIST_COOKIE && !strcmp(o, "samesite")) {
			if (v && !strcmp(v, "lax"))
				r->samesite = COOKIE_SAMESITE_LAX;
			else if (v && !strcmp(v, "strict"))
				r->samesite = COOKIE_SAMESITE_STRICT;
			else if (v && !strcmp(v, "none"))
				r->samesite = COOKIE_SAMESITE_NONE;
			else
				return "samesite needs lax, strict or none";
			i++;
		} else {
			return perr(err, errlen, "unknown option '%s' for this persistence method", o);
		}
	}
	rs->n++;
	be->npersist = rs->n;
	return NULL;
}

void persist_rules_free(struct backend *be)
{
	struct persist_rules *rs = be->persist;
	if (!rs)
		return;
	for (int i = 0; i < be->nservers; i++) {
		hll_free(be->servers[i]->cookie_sessions);
		be->servers[i]->cookie_sessions = NULL;
	}
	for (int i = 0; i < rs->n; i++) {
		stick_free(rs->r[i].table);
		free(rs->r[i].jwt_key);
	}
	seal_keys_free(rs->keys);
	free(rs);
	be->persist = NULL;
	be->npersist = 0;
}

/* ---- runtime set-up ------------------------------------------------------------ */

/* Identity of a server in a cookie: 8 bytes of BLAKE2b of its name. */
static uint64_t name_hash(const char *name)
{
	uint8_t h[8];
	crypto_generichash(h, sizeof(h), (const uint8_t *)name, strlen(name), NULL, 0);
	uint64_t v;
	memcpy(&v, h, 8);
	return v;
}

/* The window over which the dashboard counts a server's cookie sessions:
 * as long as a cookie stays valid without being seen (max-idle, else
 * max-life), 0 when the backend issues no cookie. */
static uint64_t cookie_window_ms(const struct backend *be)
{
	const struct persist_rules *rs = be->persist;
	for (int i = 0; rs && i < rs->n; i++)
		if (rs->r[i].kind == PERSIST_COOKIE)
			return rs->r[i].max_idle_ms ? rs->r[i].max_idle_ms
			       : rs->r[i].max_life_ms ? rs->r[i].max_life_ms : DEFAULT_EXPIRE_MS;
	return 0;
}

void persist_server_added(struct server *s)
{
	uint64_t w = s->be ? cookie_window_ms(s->be) : 0;

	s->id_hash = name_hash(s->name);
	/* out of memory: no estimate for this server, nothing else lost */
	if (w && !s->cookie_sessions)
		s->cookie_sessions = hll_new(w);
	/* tables name servers by sid: a new one is never reused in this
	 * backend, and a reload keeps each server's by name (reload.c), so
	 * that every generation reads the shared tables alike */
	s->sid = atomic_fetch_add_explicit(&s->be->next_sid, 1, memory_order_relaxed);
	srvstate_server_added(s);
}

uint64_t persist_cookie_window_ms(const struct backend *be)
{
	return cookie_window_ms(be);
}

/* shared-tables: the rule's name in Redis keys, and for keyed methods the
 * hash placement that new sessions follow on every instance. */
static int shared_init_rule(const struct config *cfg, struct backend *be, struct persist_rule *r)
{
	size_t fixed;

	r->shared = true;
	((struct persist_rules *)be->persist)->shared = true;
	r->keyed = r->kind != PERSIST_LEARN;
	/* built aside: the compiler cannot tell r's strings from r->shared_name */
	char name[sizeof(r->shared_name)];

	if (r->kind == PERSIST_SOURCE)
		snprintf(name, sizeof(name), "%s/%s", be->name, r->label);
	else
		snprintf(name, sizeof(name), "%s/%s/%s", be->name, r->label, r->name);
	memcpy(r->shared_name, name, sizeof(name));
	fixed = strlen(cfg->shared->prefix) + strlen(r->shared_name) + 1;
	r->shared_room = (uint16_t)(fixed < SHARED_KEY_MAX ? SHARED_KEY_MAX - fixed : 0);
	if (r->keyed && !be->hash_persist) {
		be->hash_persist = true;
		if (be->balance != LB_HASH)
			return lb_hash_build(be);
	}
	return 0;
}

int persist_init(struct config *cfg, char *err, size_t errlen)
{
	for (int b = 0; b < cfg->nbackends; b++) {
		struct backend *be = cfg->backends[b];
		struct persist_rules *rs = be->persist;
		/* computed once here, not per request: the cookie of every
		 * request names its server by this hash */
		atomic_store_explicit(&be->next_sid, 0, memory_order_relaxed);
		for (int i = 0; i < be->nservers; i++)
			persist_server_added(be->servers[i]);
		if (!rs)
			continue;
		for (int i = 0; i < rs->n; i++) {
			struct persist_rule *r = &rs->r[i];
			if (r->kind == PERSIST_COOKIE)
				continue; /* its keys: persist_keys_init() */
			r->table = stick_new(r->size, r->expire_ms, 0);
			if (!r->table) {
				snprintf(err, errlen, "out of memory for the persistence table of %s", be->name);
				return -1;
			}
			if (cfg->shared && shared_init_rule(cfg, be, r) < 0) {
				snprintf(err, errlen, "out of memory for the hash placement of %s", be->name);
				return -1;
			}
		}
	}
	return 0;
}

static bool uses_insert_cookies(const struct backend *be)
{
	const struct persist_rules *rs = rules_of(be);
	for (int i = 0; rs && i < rs->n; i++)
		if (rs->r[i].kind == PERSIST_COOKIE)
			return true;
	return false;
}

/*
 * Where the cookie key lives: secret-file, or, when a backend issues insert
 * cookies without one, bollard.key beside the state file (the place for
 * what must survive a restart), else in the working directory (where the
 * configuration's relative paths point, and under the systemd unit the
 * state directory). Never beside the admin socket: /run is emptied at
 * boot, so a key there would die with every reboot. Without a file at all
 * every restart would turn every live cookie invalid (issue 9 item 11).
 */
const char *persist_secret_path(const struct config *cfg, char *buf, size_t cap)
{
	bool needed = false;
	for (int b = 0; b < cfg->nbackends && !needed; b++)
		needed = uses_insert_cookies(cfg->backends[b]);
	if (cfg->secret_file)
		return cfg->secret_file;
	if (!needed)
		return NULL;
	const char *slash = cfg->state_file ? strrchr(cfg->state_file, '/') : NULL;
	if (slash && slash == cfg->state_file)
		snprintf(buf, cap, "/bollard.key");
	else if (slash)
		snprintf(buf, cap, "%.*s/bollard.key", (int)(slash - cfg->state_file), cfg->state_file);
	else
		snprintf(buf, cap, "./bollard.key");
	return buf;
}

/* The keys a running generation uses, or NULL. */
static struct seal_keys *keys_of(const struct config *cfg)
{
	for (int b = 0; cfg && b < cfg->nbackends; b++)
		if (rules_of(cfg->backends[b]) && rules_of(cfg->backends[b])->keys)
			return rules_of(cfg->backends[b])->keys;
	return NULL;
}

/*
 * Key handover. A reload that puts a new key first reaches the workers one
 * after the other: for a moment one worker seals under the new key while
 * another, still on the previous configuration, knows only the old keys,
 * and a client whose next request lands there had its fresh cookie refused
 * and its session moved (test_key_rotation caught it, about one run in
 * five, under load; its test of the handover holds a worker back to see it
 * every time). So the new set seals with the key that sealed until now,
 * when it still has it, until every worker runs the new configuration
 * (persist_keys_settle, called by the last worker to take it); cookies of
 * either key open everywhere meanwhile, and those of the old one are sealed
 * again under the new one at their next request, as after any rotation.
 */
static void hand_over(const struct seal_keys *old, struct seal_keys *k)
{
	if (!old)
		return;
	const uint8_t *sealing = old->key[atomic_load(&old->seal_idx)];
	if (!memcmp(sealing, k->key[0], SEAL_KEY_LEN))
		return;
	for (int i = 1; i < k->n; i++)
		if (!memcmp(sealing, k->key[i], SEAL_KEY_LEN)) {
			atomic_store(&k->seal_idx, i);
			return;
		}
}

void persist_keys_settle(const struct config *cfg)
{
	struct seal_keys *k = keys_of(cfg);
	char id[SEAL_ID_LEN + 1];

	if (k && atomic_exchange(&k->seal_idx, 0) != 0) {
		seal_key_id(k, 0, id);
		log_msg(LOG_INFO, "cookie key %s seals on every worker now", id);
	}
}

/* Each backend that issues insert cookies takes a reference to k. */
static void give_keys(struct config *cfg, struct seal_keys *k)
{
	for (int b = 0; b < cfg->nbackends; b++) {
		struct persist_rules *rs = rules_of(cfg->backends[b]);
		if (!uses_insert_cookies(cfg->backends[b]) || rs->keys)
			continue;
		seal_keys_hold(k);
		rs->keys = k;
	}
}

int persist_keys_init(struct config *cfg, const struct config *running, char *err, size_t errlen)
{
	char def[PATH_MAX] = "", id[SEAL_ID_LEN + 1], was[SEAL_ID_LEN + 1];
	const char *path = persist_secret_path(cfg, def, sizeof(def));
	struct seal_keys *old = keys_of(running);
	bool created = false;
	if (!path)
		return 0;
	/* A new key only while none is in use: on a reload a vanished file
	 * must not silently turn every live cookie invalid. */
	struct seal_keys *k = seal_keys_load(path, !old, &created, err, errlen);
	if (!k) {
		if (old && access(path, F_OK) < 0 && errno == ENOENT)
			snprintf(err, errlen, "secret-file %s: no such file (a reload never makes a "
				 "new key while cookies of the running one are live)", path);
		return -1;
	}
	give_keys(cfg, k);
	hand_over(old, k);
	seal_key_id(k, 0, id);
	if (path == def) {
		char cwd[PATH_MAX];
		log_msg(LOG_INFO, "no secret-file: the cookie key is kept in %s%s%s%s; set "
			"secret-file to choose where", path, path[0] == '/' ? "" : " (in ",
			path[0] == '/' ? "" : getcwd(cwd, sizeof(cwd)) ? cwd : "the working directory",
			path[0] == '/' ? "" : ")");
	}
	if (created)
		log_msg(LOG_INFO, "%s created with a new cookie key (mode 0600)", path);
	if (!old)
		log_msg(LOG_INFO, "cookie key %s seals (%s: %d key%s open)", id, path, k->n,
			k->n == 1 ? "" : "s");
	else if (!seal_keys_same(old, k)) {
		seal_key_id(old, 0, was);
		if (strcmp(id, was))
			log_msg(LOG_INFO, "reload: %s re-read: cookie key %s seals now (was %s), "
				"%d key%s open", path, id, was, k->n, k->n == 1 ? "" : "s");
		else
			log_msg(LOG_INFO, "reload: %s re-read: cookie key %s still seals, %d key%s "
				"open (was %d)", path, id, k->n, k->n == 1 ? "" : "s", old->n);
	}
	seal_keys_free(k);
	return 0;
}

/* Session cookies of well-known application servers, as they write them. */
static const struct { const char *name, *who; } known_sessions[] = {
	{ "JSESSIONID", "Java servlet containers (Tomcat, Jetty, WildFly)" },
	{ "PHPSESSID", "PHP" },
	{ "ASP.NET_SessionId", "ASP.NET" },
	{ "connect.sid", "Node.js express-session" },
	{ "laravel_session", "Laravel" },
	{ "sessionid", "Django" },
	{ "_session_id", "Ruby on Rails" },
	{ "CFID", "ColdFusion" },
	{ "CFTOKEN", "ColdFusion" },
};

/* `persist learn jsessionid`: exact matching, as RFC 6265 wants, learns
 * nothing from a server that writes JSESSIONID; say so before it runs. */
static void check_learn_names(const struct config *cfg, FILE *out)
{
	for (int b = 0; b < cfg->nbackends; b++) {
		const struct persist_rules *rs = rules_of(cfg->backends[b]);
		for (int i = 0; rs && i < rs->n; i++) {
			const struct persist_rule *r = &rs->r[i];
			if (r->kind != PERSIST_LEARN)
				continue;
			for (size_t k = 0; k < ARRAY_SIZE(known_sessions); k++)
				if (!strcasecmp(r->name, known_sessions[k].name) &&
				    strcmp(r->name, known_sessions[k].name))
					fprintf(out, "%s:%d: warning: persist learn %s: cookie names are "
						"case-sensitive (RFC 6265) and %s writes %s: this line "
						"learns only a Set-Cookie named exactly '%s'\n", cfg->file,
						r->line, r->name, known_sessions[k].who,
						known_sessions[k].name, r->name);
		}
	}
}

int persist_check(const struct config *cfg, FILE *out)
{
	char def[PATH_MAX], err[512];
	const char *path = persist_secret_path(cfg, def, sizeof(def));
	int errors = 0;
	check_learn_names(cfg, out);
	for (int b = 0; path == def && b < cfg->nbackends; b++) {
		const struct persist_rules *rs = rules_of(cfg->backends[b]);
		for (int i = 0; rs && i < rs->n; i++)
			if (rs->r[i].kind == PERSIST_COOKIE) {
				fprintf(out, "%s:%d: warning: persist cookie %s insert without secret-file: "
					"the cookie key is kept in %s%s, created at first start; set "
					"secret-file to choose where, or to share it between instances\n",
					cfg->file, rs->r[i].line, rs->r[i].name, path, path[0] == '/' ? ""
					: " (relative to the directory bollard runs in)");
				b = cfg->nbackends; /* once */
				break;
			}
	}
	/* what start would refuse, check refuses too */
	if (path && access(path, F_OK) == 0) {
		struct seal_keys *k = seal_keys_load(path, false, NULL, err, sizeof(err));
		if (!k) {
			fprintf(out, "%s: %s\n", cfg->file, err);
			errors++;
		}
		seal_keys_free(k);
	}
	return errors;
}

void persist_fini(struct config *cfg)
{
	for (int b = 0; b < cfg->nbackends; b++)
		persist_rules_free(cfg->backends[b]);
}

/* ---- sealed cookies ---------------------------------------------------------------- */

/* Version 2 adds the session id; version 1 cookies (issued before) still
 * open, their nonce standing for the id until their first refresh. */
#define SEAL_VERSION 2
#define SEAL_PLAIN_V1 17 /* version, name hash (8), issued (4), refreshed (4) */
#define SEAL_PLAIN 25    /* the same, then the session id (8) */
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SEAL_RAW (SEAL_NONCE + SEAL_PLAIN + SEAL_TAG)
#define SEAL_RAW_V1 (SEAL_NONCE + SEAL_PLAIN_V1 + SEAL_TAG)
#define TIME_EPOCH 1700000000u /* cookie times count seconds from here (2023) */

static _Thread_local uint8_t nonce_prefix[16];
static _Thread_local uint64_t nonce_counter;
static _Thread_local bool nonce_ready;

static void make_ad(const struct backend *be, const struct persist_rule *r, uint8_t *ad, size_t *adlen)
{
	size_t a = strlen(be->name), b = strlen(r->name);
	memcpy(ad, be->name, a);
	ad[a] = '/';
	memcpy(ad + a + 1, r->name, b);
	*adlen = a + 1 + b;
}



/* A new session's id: unique per thread (a bijective mix of a counter
 * from a random start), no system call after the first. */
static uint64_t new_session_id(void)
{
	static _Thread_local uint64_t base, n;
	uint64_t x;

	if (!base)
		randombytes_buf(&base, sizeof(base));
	x = base + ++n;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Seal into out (base64url) under the first key; returns its length or -1
 * (also when no key is loaded: no cookie rather than a cookie nobody can
 * open). */
static long cookie_seal(const struct backend *be, const struct persist_rule *r, uint64_t srvhash,
			uint32_t issued, uint32_t refreshed, uint64_t sid, char *out, size_t cap)
{
	const struct seal_keys *keys = rules_of(be)->keys;
	uint8_t plain[SEAL_PLAIN], raw[SEAL_RAW], ad[2 * CFG_NAME_MAX + 1];
	size_t adlen;
	if (!keys)
		return -1;
	plain[0] = SEAL_VERSION;
	memcpy(plain + 1, &srvhash, 8);
	put32(plain + 9, issued);
	put32(plain + 13, refreshed);
	memcpy(plain + 17, &sid, 8);
	if (!nonce_ready) {
		randombytes_buf(nonce_prefix, sizeof(nonce_prefix));
		nonce_ready = true;
	}
	memcpy(raw, nonce_prefix, 16);
	uint64_t n = ++nonce_counter;
	memcpy(raw + 16, &n, 8);
	make_ad(be, r, ad, &adlen);
	unsigned long long clen;
	crypto_aead_xchacha20poly1305_ietf_encrypt(raw + SEAL_NONCE, &clen, plain, sizeof(plain), ad,
						   adlen, NULL, raw,
						   keys->key[atomic_load_explicit(&keys->seal_idx,
										  memory_order_relaxed)]);
	return cookie_b64_encode(raw, SEAL_RAW, out, cap);
}

/*
 * Cookies opened lately, per thread. A client sends its cookie with every
 * request, and opening it (base64, then XChaCha20-Poly1305) is most of
 * persistence's cost on the hit path (about 5,000 instructions, a sixth of
 * an HTTP/2 request's). An entry answers only for the same value, the same
 * associated data and the same key set (its serial: a set freed and
 * another allocated at its address never matches), i.e. exactly what
 * opening it again would answer; only cookies that opened are kept, and
 * no key material. Direct-mapped on the value's last characters, which
 * encode the random authentication tag.
 */
#define OPEN_CACHE 32
#define SEAL_B64 ((SEAL_RAW * 4 + 2) / 3)
struct opened {
	uint64_t serial;                  /* 0: empty */
	uint64_t srvhash, sid;
	uint32_t issued, refreshed;
	uint8_t vlen, adlen;
	int8_t key;
	char v[SEAL_B64];
	uint8_t ad[2 * CFG_NAME_MAX + 1];
};
static _Thread_local struct opened opened[OPEN_CACHE];

static struct opened *opened_slot(struct h1_str v)
{
	uint64_t x;
	memcpy(&x, v.p + v.n - 8, 8);
	return &opened[(x * 0x9e3779b97f4a7c15ull) >> 59];
}

_Static_assert(OPEN_CACHE == 32, "opened_slot keeps 5 bits");
_Static_assert(2 * CFG_NAME_MAX + 1 <= UINT8_MAX, "adlen fits");

/* Open a cookie value: the index of the key that opened it (0: the
 * sealing key), or -1: invalid. */
static int cookie_open(const struct backend *be, const struct persist_rule *r, struct h1_str v,
		       uint64_t *srvhash, uint32_t *issued, uint32_t *refreshed, uint64_t *sid)
{
	const struct seal_keys *keys = rules_of(be)->keys;
	uint8_t raw[SEAL_RAW + 4], plain[SEAL_PLAIN], ad[2 * CFG_NAME_MAX + 1];
	size_t adlen, rawlen, plainlen;
	uint8_t version;
	if (!keys)
		return -1;
	if (v.n == cookie_b64_enclen(SEAL_RAW)) {
		rawlen = SEAL_RAW, plainlen = SEAL_PLAIN, version = SEAL_VERSION;
	} else if (v.n == cookie_b64_enclen(SEAL_RAW_V1)) {
		rawlen = SEAL_RAW_V1, plainlen = SEAL_PLAIN_V1, version = 1;
	} else {
		return -1;
	}
	make_ad(be, r, ad, &adlen);
	struct opened *o = opened_slot(v);
	if (o->serial == keys->serial && o->vlen == v.n && o->adlen == adlen &&
	    !memcmp(o->v, v.p, v.n) && !memcmp(o->ad, ad, adlen)) {
		*srvhash = o->srvhash;
		*issued = o->issued;
		*refreshed = o->refreshed;
		*sid = o->sid;
		return o->key;
	}
	if (cookie_b64_decode(v.p, v.n, raw, sizeof(raw)) != (long)rawlen)
		return -1;
	for (int k = 0; k < keys->n; k++) {
		unsigned long long plen;
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, raw + SEAL_NONCE,
							       plainlen + SEAL_TAG, ad, adlen, raw,
							       keys->key[k]) == 0 &&
		    plen == plainlen && plain[0] == version) {
			memcpy(srvhash, plain + 1, 8);
			*issued = get32(plain + 9);
			*refreshed = get32(plain + 13);
			if (version == 1)
				memcpy(sid, raw + 16, 8); /* the nonce's unique part */
			else
				memcpy(sid, plain + 17, 8);
			*o = (struct opened){ .serial = keys->serial, .srvhash = *srvhash, .sid = *sid,
					      .issued = *issued, .refreshed = *refreshed,
					      .vlen = (uint8_t)v.n, .adlen = (uint8_t)adlen,
					      .key = (int8_t)k };
			memcpy(o->v, v.p, v.n);
			memcpy(o->ad, ad, adlen);
			return k;
		}
	}
	return -1;
}

/* ---- request side ---------------------------------------------------------------------- */

/* May s take a request of a session it already holds? Drain does (SPEC 3.2). */
static bool persist_usable(const struct server *s)
{
	int st = atomic_load_explicit(&s->state, memory_order_relaxed);
	return st == SRV_READY || st == SRV_DRAIN;
}

/* The servers of be as a worker may read them while `add server`
 * publishes a longer array (count first, then the array: see cfg.h). */
static int servers_of(const struct backend *be, struct server *const **sv)
{
	int n = __atomic_load_n(&be->nservers, __ATOMIC_ACQUIRE);
	*sv = __atomic_load_n(&be->servers, __ATOMIC_ACQUIRE);
	return n;
}

/* A server that `del server` removed answers for no session any more. */
static struct server *live(struct server *s)
{
	return s && !s->removed ? s : NULL;
}

static struct server *server_by_hash(const struct backend *be, uint64_t h)
{
	struct server *const *sv;
	int n = servers_of(be, &sv);
	for (int i = 0; i < n; i++)
		if (sv[i]->id_hash == h && !sv[i]->removed)
			return sv[i];
	return NULL;
}

static struct server *server_by_name(const struct backend *be, struct h1_str n)
{
	struct server *const *sv;
	int cnt = servers_of(be, &sv);
	for (int i = 0; i < cnt; i++)
		if (strlen(sv[i]->name) == n.n && !memcmp(sv[i]->name, n.p, n.n) && !sv[i]->removed)
			return sv[i];
	return NULL;
}

struct server *persist_server_by_sid(const struct backend *be, uint32_t sid)
{
	struct server *const *sv;
	int n = servers_of(be, &sv);
	/* sid == index until a reload reorders, adds or removes servers */
	if (sid < (uint32_t)n && sv[sid]->sid == sid)
		return live(sv[sid]);
	for (int i = 0; i < n; i++)
		if (sv[i]->sid == sid)
			return live(sv[i]);
	return NULL;
}

static bool find_cookie(const struct view *cv, const char *name, struct h1_str *v)
{
	return view_cookie(cv, cookie_str(name), v);
}

static void add_key(struct persist_req *pr, int i, const void *k, size_t n)
{
	if (n == 0 || n > PERSIST_KEY_MAX || pr->keys_used + n > sizeof(pr->keys))
		return;
	memcpy(pr->keys + pr->keys_used, k, n);
	pr->key_off[i] = pr->keys_used;
	pr->key_len[i] = (uint8_t)n;
	pr->keys_used = (uint16_t)(pr->keys_used + n);
	pr->has_key |= (uint8_t)(1u << i);
}

static void source_key(const struct persist_rule *r, const struct sockaddr_storage *ss,
		       struct persist_req *pr, int i)
{
	uint8_t k[17];
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;
		uint32_t ip = ntohl(a->sin_addr.s_addr);
		ip = r->mask4 ? ip & (uint32_t)(0xffffffffu << (32 - r->mask4)) : 0;
		k[0] = 4;
		k[1] = (uint8_t)(ip >> 24); k[2] = (uint8_t)(ip >> 16); k[3] = (uint8_t)(ip >> 8); k[4] = (uint8_t)ip;
		add_key(pr, i, k, 5);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		k[0] = 6;
		memcpy(k + 1, a->sin6_addr.s6_addr, 16);
		for (int b = 0; b < 128; b++)
			if (b >= r->mask6)
				k[1 + b / 8] &= (uint8_t)~(0x80u >> (b % 8));
		add_key(pr, i, k, 17);
	}
}

static void jwt_key(const struct persist_rule *r, const struct view *cv, struct persist_req *pr, int i)
{
	struct h1_str tok, v;
	if (r->jwt_from_cookie[0]) {
		if (!find_cookie(cv, r->jwt_from_cookie, &tok))
			return;
	} else {
		const char *h = r->jwt_from_header[0] ? r->jwt_from_header : "authorization";
		if (!view_header(cv, h, &v))
			return;
		if (!cookie_bearer(v, &tok))
			tok = v;
	}
	if (r->jwt_key) {
		struct cookie_jwt j;
		if (cookie_jwt_split(tok, &j) < 0 || cookie_jwt_verify_hs256(&j, r->jwt_key, r->jwt_keylen) != 1)
			return; /* a bad signature is a miss, never an error */
	}
	uint8_t buf[2048];
	struct h1_str claim;
	if (cookie_jwt_claim(tok, cookie_str(r->name), buf, sizeof(buf), &claim) > 0)
		add_key(pr, i, claim.p, claim.n);
}

void persist_move(struct persist_req *pr, enum persist_reason why)
{
	BUG_ON(why == MOVED_NONE || why >= MOVED_COUNT);
	if (pr->result == PR_HIT) {
		pr->result = PR_MOVED;
		pr->reason = (uint8_t)why;
	} else if (pr->result == PR_NONE && pr->reason == MOVED_NONE) {
		pr->reason = (uint8_t)why; /* while deciding: the first rule's reason */
	}
}

/* Why a session cannot stay on s, which is not usable: maint or down. */
static enum persist_reason why_unusable(const struct server *s)
{
	return atomic_load_explicit(&s->state, memory_order_relaxed) == SRV_MAINT ? MOVED_MAINT
										 : MOVED_DOWN;
}

/* Rule i gave verdict r; the first one to do so names it. */
static void verdict(int8_t first[PR_COUNT], enum persist_result r, int i)
{
	if (first[r] < 0)
		first[r] = (int8_t)i;
}

/*
 * A cookie refused as invalid or expired while another verdict decides
 * (a fallback method hit, or moved): it is counted and logged as well
 * (persist=hit method=source cookie=invalid), so that a forged cookie
 * never vanishes behind a fallback (issue 9 item 3). The response then
 * issues a fresh cookie as for any client without a valid one.
 */
static void cookie_also(struct persist_req *pr, const int8_t first[PR_COUNT])
{
	for (enum persist_result r = PR_INVALID; r <= PR_EXPIRED; r++)
		if (r != pr->result && first[r] >= 0 &&
		    (pr->also_rule < 0 || first[r] < pr->also_rule)) {
			pr->also = (uint8_t)r;
			pr->also_rule = first[r];
		}
}

/* `replica NAME` of a server that cannot take its sessions, when the
 * replica can take them (ready: a draining one takes no new sessions). */
static struct server *replica_of(const struct server *lost)
{
	struct server *r = lost->replica;
	return r && atomic_load_explicit(&r->state, memory_order_relaxed) == SRV_READY ? r : NULL;
}

/* ---- shared tables (doc/scale-out.md; the waiting is shared_loop.c's) ---------------- */

/* The key as written in Redis: itself when it fits, else '#' and the hex
 * of a BLAKE2b-128 of it, which every instance computes alike. */
size_t persist_shared_key_of(const struct persist_rule *r, const void *key, size_t klen, char *out)
{
	uint8_t h[16];

	if (klen <= r->shared_room) {
		memcpy(out, key, klen);
		return klen;
	}
	if (r->shared_room < 2 * sizeof(h) + 1)
		return 0;
	crypto_generichash(h, sizeof(h), key, klen, NULL, 0);
	out[0] = '#';
	sodium_bin2hex(out + 1, 2 * sizeof(h) + 1, h, sizeof(h));
	return 2 * sizeof(h) + 1;
}

size_t persist_shared_key(const struct persist_rule *r, const struct persist_req *pr, int rule,
			  char *out)
{
	return persist_shared_key_of(r, pr->keys + pr->key_off[rule], pr->key_len[rule], out);
}

/* Write key -> s behind, unless the key holds another server in Redis
 * (SHARED_SET_KEEP: a move made elsewhere is never overwritten); the link
 * rate-limits refreshes of the same binding. */
static void shared_write(const struct persist_rule *r, const void *key, size_t klen,
			 const struct server *s)
{
	struct shared_link *l = shared_here();
	char k[PERSIST_KEY_MAX + 1];
	size_t n;

	if (!l || !(n = persist_shared_key_of(r, key, klen, k)))
		return;
	shared_link_set(l, r->shared_name, k, n, s->name, strlen(s->name), r->expire_ms,
			SHARED_SET_KEEP);
}

/* Rule i's key is bound to s (new, refreshed or moved). A keyed method
 * writes only what its hash placement does not predict: a session on its
 * home server needs no Redis on any instance. */
static void shared_refresh(struct backend *be, const struct persist_rule *r,
			   const struct persist_req *pr, int i, const struct server *s)
{
	const char *k = pr->keys + pr->key_off[i];

	if (r->keyed && lb_hash_home(be, lb_hash_key(k, pr->key_len[i])) == s)
		return;
	shared_write(r, k, pr->key_len[i], s);
}

/*
 * A hit refreshes its binding in Redis (its TTL) once per period of its
 * life: when this hit is the first since the entry's age crossed a
 * multiple of the period. The entry's own times decide, so the cost is one
 * write per live session per period per instance, however many sessions
 * and requests, and nothing is remembered for it. The period is a second,
 * or a quarter of expire when shorter: Redis restarted empty is refilled
 * within a second of each session's next request.
 */
#define SHARED_REFRESH_MS 1000u

static bool refresh_due(const struct persist_rule *r, uint64_t idle_ms, uint64_t age_ms)
{
	uint64_t p = MIN(SHARED_REFRESH_MS, r->expire_ms / 4);

	if (!p)
		p = 1;
	return idle_ms > age_ms || age_ms / p != (age_ms - idle_ms) / p;
}

/* No rule had an answer: a new session of a keyed shared rule is placed by
 * the hash of its key, the same server on every instance. */
static void shared_place(const struct persist_rules *rs, struct persist_req *pr)
{
	if (pr->srv)
		return; /* a replica */
	for (int i = 0; i < rs->n; i++)
		if (rs->r[i].shared && rs->r[i].keyed && (pr->has_key & (1u << i))) {
			pr->place = true;
			pr->place_hash = lb_hash_key(pr->keys + pr->key_off[i], pr->key_len[i]);
			return;
		}
}

void persist_shared_missed(struct backend *be, struct persist_req *pr, int rule)
{
	const struct persist_rules *rs = rules_of(be);

	/* a learn key nobody knows: its first binding goes by SET NX, so that
	 * two instances seeing it at once agree on one server */
	if (!rs->r[rule].keyed && pr->bind < 0) {
		pr->bind = (int8_t)rule;
		pr->lost = NULL;
	}
}

void persist_shared_found(struct backend *be, struct persist_req *pr, int rule, const char *name,
			  size_t n, uint64_t now_ms)
{
	struct persist_rules *rs = rules_of(be);
	struct persist_rule *r = &rs->r[rule];
	struct server *s = server_by_name(be, (struct h1_str){ name, n });

	if (!s) {
		/* a server this instance does not have: as if Redis had nothing */
		persist_shared_missed(be, pr, rule);
		return;
	}
	pr->from = FROM_REDIS;
	if (pr->also == PR_NONE && (pr->result == PR_INVALID || pr->result == PR_EXPIRED)) {
		/* the refused cookie is still counted and logged */
		pr->also = (uint8_t)pr->result;
		pr->also_rule = pr->rule;
	}
	pr->rule = (int8_t)rule;
	pr->place = false;
	if (persist_usable(s)) {
		pr->srv = s;
		pr->result = PR_HIT;
		pr->reason = MOVED_NONE;
		pr->assigned = false;
		stick_store(r->table, pr->keys + pr->key_off[rule], pr->key_len[rule], s->sid, now_ms);
		return;
	}
	/* its server cannot take it: a move, agreed in Redis before it is made */
	pr->result = PR_MOVED;
	pr->reason = (uint8_t)why_unusable(s);
	pr->bind = (int8_t)rule;
	pr->lost = s;
	if (be->on_down == ON_DOWN_FAIL)
		pr->fail = true;
	else if (be->on_down == ON_DOWN_REPLICA && replica_of(s))
		pr->srv = s->replica;
}

void persist_shared_agreed(struct backend *be, struct persist_req *pr, bool won, const char *name,
			   size_t n)
{
	struct server *s;

	pr->from = FROM_REDIS;
	if (won)
		return;
	/* another instance moved or bound it first: follow it when its server
	 * can take the session here too */
	s = server_by_name(be, (struct h1_str){ name, n });
	if (s && persist_usable(s))
		pr->srv = s;
}

void persist_shared_forget(const struct persist_rule *r, const void *key, size_t klen)
{
	char k[PERSIST_KEY_MAX + 1];
	size_t n;

	if (r->shared && (n = persist_shared_key_of(r, key, klen, k)))
		shared_post_del(r->shared_name, k, n);
}

void persist_shared_cleared(const struct config *cfg, const char *table, size_t tlen,
			    const void *key, size_t klen)
{
	for (int b = 0; b < cfg->nbackends; b++) {
		struct persist_rules *rs = rules_of(cfg->backends[b]);

		for (int i = 0; rs && rs->shared && i < rs->n; i++) {
			struct persist_rule *r = &rs->r[i];

			/* a key Redis holds hashed (too long) names no entry:
			 * that one lives on here until it expires */
			if (r->shared && strlen(r->shared_name) == tlen &&
			    !memcmp(r->shared_name, table, tlen))
				stick_delete(r->table, key, klen);
		}
	}
}

void persist_decide(struct backend *be, const struct view *cv, uint64_t now_ms, struct persist_req *pr)
{
	struct persist_rules *rs = rules_of(be);
	pr->srv = NULL;
	pr->rule = -1;
	pr->assigned = pr->refresh = pr->strip_cookie = false;
	pr->has_key = 0;
	pr->newer = 0;
	pr->keys_used = 0;
	pr->cookie_srv = NULL;
	pr->also = PR_NONE;
	pr->also_rule = -1;
	pr->fail = false;
	pr->reason = MOVED_NONE;
	pr->result = PR_NONE; /* undecided until the rules have spoken */
	pr->shared = pr->place = false;
	pr->ask = pr->bind = -1;
	pr->from = FROM_LOCAL;
	pr->lost = NULL;
	if (!rs || !rs->n)
		return;
	/* the first rule that gave each verdict, -1: none did */
	int8_t first[PR_COUNT];
	memset(first, -1, sizeof(first));
	struct server *lost = NULL; /* the remembered server that cannot take it */
	uint8_t due = 0; /* bit per shared rule: its hit is due for a refresh in Redis */
	uint32_t now_s = (uint32_t)((uint64_t)time(NULL) - TIME_EPOCH);
	for (int i = 0; i < rs->n; i++) {
		struct persist_rule *r = &rs->r[i];
		struct h1_str v;
		struct server *s = NULL;
		switch (r->kind) {
		case PERSIST_COOKIE: {
			if (!find_cookie(cv, r->name, &v))
				break;
			pr->strip_cookie = true;
			uint64_t h, sid;
			uint32_t issued, refreshed;
			int key = cookie_open(be, r, v, &h, &issued, &refreshed, &sid);
			if (key < 0) {
				verdict(first, PR_INVALID, i);
				break;
			}
			enum cookie_age age = cookie_age(now_s, issued, refreshed, r->max_idle_ms,
							 r->max_life_ms);
			if (age == COOKIE_EXPIRED) {
				verdict(first, PR_EXPIRED, i);
				break;
			}
			s = server_by_hash(be, h);
			if (!s) {
				/* its server left the configuration */
				verdict(first, PR_MOVED, i);
				persist_move(pr, MOVED_REMOVED);
				break;
			}
			pr->cookie_issued = issued;
			pr->cookie_sid = sid;
			pr->cookie_srv = s;
			if (age == COOKIE_REFRESH)
				pr->refresh = true;
			/* opened by an older key of a rotation: sealed again under
			 * the first one now, so that every client seen after the
			 * rotation holds a cookie of the new key, and the old key
			 * can go once max-idle has passed */
			if (key > 0)
				pr->refresh = true;
			break;
		}
		case PERSIST_LEARN:
			if (find_cookie(cv, r->name, &v) || cookie_path_param(view_target(cv), cookie_str(r->name), &v) ||
			    cookie_query_param(view_target(cv), cookie_str(r->name), &v))
				add_key(pr, i, v.p, v.n);
			break;
		case PERSIST_SOURCE:
			source_key(r, cv->addr, pr, i);
			break;
		case PERSIST_HEADER:
			if (view_header(cv, r->name, &v))
				add_key(pr, i, v.p, v.n);
			break;
		case PERSIST_URLPARAM:
			if (cookie_query_param(view_target(cv), cookie_str(r->name), &v))
				add_key(pr, i, v.p, v.n);
			break;
		case PERSIST_JWT:
			jwt_key(r, cv, pr, i);
			break;
		case PERSIST_PREFIX: {
			struct h1_str pre, rest;
			if (!find_cookie(cv, r->name, &v) || !cookie_prefix_split(v, '~', &pre, &rest))
				break;
			s = server_by_name(be, pre);
			if (!s) {
				/* a prefix that names no server: forged, or its
				 * server left the configuration */
				verdict(first, PR_MOVED, i);
				persist_move(pr, MOVED_REMOVED);
			}
			break;
		}
		}
		if (r->table && (pr->has_key & (1u << i))) {
			uint32_t sid;
			uint64_t idle = 0, age = 0;
			if (stick_lookup_times(r->table, pr->keys + pr->key_off[i], pr->key_len[i], now_ms,
					       &sid, r->shared ? &idle : NULL, r->shared ? &age : NULL) == 1) {
				if (r->shared && refresh_due(r, idle, age))
					due |= (uint8_t)(1u << i);
				s = persist_server_by_sid(be, sid);
				if (!s && sid >= atomic_load_explicit(&be->next_sid, memory_order_relaxed)) {
					/* a newer generation (a reload or `add server`
					 * while this one finishes) put it on a server
					 * this one does not know: not ours to answer,
					 * nor to overwrite */
					pr->newer |= (uint8_t)(1u << i);
				} else if (!s) {
					verdict(first, PR_MOVED, i);
					persist_move(pr, MOVED_REMOVED);
				}
			} else if (r->shared && pr->ask < 0) {
				pr->ask = (int8_t)i; /* Redis may know it (shared_loop.c) */
			}
		}
		if (!s || pr->srv)
			continue;
		if (persist_usable(s)) {
			pr->srv = s;
			pr->rule = (int8_t)i;
		} else {
			verdict(first, PR_MOVED, i);
			if (!lost)
				lost = s;
			if (r->shared && pr->bind < 0 && (pr->has_key & (1u << i))) {
				/* the move is agreed in Redis first (compare-and-set) */
				pr->bind = (int8_t)i;
				pr->lost = s;
			}
			persist_move(pr, why_unusable(s));
		}
	}
	if (pr->srv) {
		pr->result = PR_HIT;
		pr->reason = MOVED_NONE;
		pr->ask = pr->bind = -1;
		pr->lost = NULL;
		if (due & (1u << pr->rule))
			shared_refresh(be, &rs->r[pr->rule], pr, pr->rule, pr->srv);
		cookie_also(pr, first);
		return;
	}
	pr->assigned = true;
	if (lost && be->on_down == ON_DOWN_FAIL) {
		/* the operator prefers an error to a session on a server
		 * that does not hold it */
		pr->fail = true;
	} else if (lost && be->on_down == ON_DOWN_REPLICA && replica_of(lost)) {
		/* the replica's application holds a copy of the session */
		pr->srv = lost->replica;
	}
	pr->result = first[PR_MOVED] >= 0 ? PR_MOVED : first[PR_EXPIRED] >= 0 ? PR_EXPIRED
		     : first[PR_INVALID] >= 0 ? PR_INVALID : PR_NEW;
	pr->rule = pr->result == PR_NEW ? 0 : first[pr->result];
	if (pr->result != PR_MOVED)
		pr->reason = MOVED_NONE;
	cookie_also(pr, first);
	if (pr->fail) {
		pr->ask = pr->bind = -1;
	} else if (rs->shared) {
		shared_place(rs, pr);
		if (pr->bind >= 0)
			pr->ask = -1; /* the compare-and-set answers with what Redis holds */
		pr->shared = pr->ask >= 0 || pr->bind >= 0 || pr->place;
	}
}

void persist_connect_failed(struct backend *be, struct persist_req *pr, struct server *const *tried,
			    int ntried)
{
	struct server *lost = pr->srv, *r;
	const struct persist_rules *rs = rules_of(be);
	pr->srv = NULL;
	pr->assigned = true;
	if (!lost)
		return;
	persist_move(pr, MOVED_CONNECT);
	for (int i = 0; rs->shared && be->on_down != ON_DOWN_FAIL && i < rs->n; i++)
		if (rs->r[i].shared && (pr->has_key & (1u << i))) {
			/* a move like any other: agreed in Redis before it is made */
			pr->bind = (int8_t)i;
			pr->lost = lost;
			pr->shared = true;
			break;
		}
	if (be->on_down == ON_DOWN_FAIL) {
		pr->fail = true;
	} else if (be->on_down == ON_DOWN_REPLICA && (r = replica_of(lost))) {
		for (int i = 0; i < ntried; i++)
			if (tried[i] == r)
				return; /* it failed this request too: redispatch */
		pr->srv = r;
	}
}

void persist_record(struct backend *be, struct persist_req *pr, struct server *s, uint64_t now_ms)
{
	struct persist_rules *rs = rules_of(be);
	if (!rs)
		return;
	for (int i = 0; i < rs->n; i++) {
		struct persist_rule *r = &rs->r[i];
		if (!r->table || !(pr->has_key & (1u << i)) || (pr->newer & (1u << i)))
			continue;
		if (pr->result == PR_HIT && pr->rule == i)
			continue; /* the lookup that hit already refreshed it */
		stick_store(r->table, pr->keys + pr->key_off[i], pr->key_len[i], s->sid, now_ms);
		if (r->shared)
			shared_refresh(be, r, pr, i, s);
	}
}

/* ---- response side ------------------------------------------------------------------------ */

static void warn_case(const struct backend *be, struct persist_rule *r, struct h1_str got)
{
	if (atomic_exchange_explicit(&r->warned_case, true, memory_order_relaxed))
		return;
	log_msg(LOG_WARN, "backend %s: persist learn %s learns nothing from the server's "
		"Set-Cookie %.*s: cookie names are case-sensitive (RFC 6265); write "
		"'persist learn %.*s' (line %d)", be->name, r->name, (int)got.n, got.p,
		(int)got.n, got.p, r->line);
}

int persist_on_response(struct backend *be, struct persist_req *pr, struct server *s,
			const struct h1_msg *resp, uint64_t now_ms, struct http_add *add)
{
	struct persist_rules *rs = rules_of(be);
	bool issued_cookie = false;
	if (!rs || !s)
		return 0;
	for (int i = 0; i < rs->n; i++) {
		struct persist_rule *r = &rs->r[i];
		if (r->kind == PERSIST_LEARN) {
			struct h1_str n = cookie_str(r->name);
			for (uint32_t h = 0; h < resp->nhdrs; h++) {
				struct cookie_set sc;
				if (!(resp->hdrs[h].flags & H1_HF_SETCOOKIE) ||
				    cookie_set_parse(resp->hdrs[h].value, &sc) < 0 || sc.name.n != n.n ||
				    !sc.value.n)
					continue;
				/* RFC 6265 5.3: a cookie's name is matched octet for
				 * octet, so `learn jsessionid` never learns JSESSIONID;
				 * kept exact, but said once */
				if (memcmp(sc.name.p, n.p, n.n)) {
					if (!strncasecmp(sc.name.p, n.p, n.n))
						warn_case(be, r, sc.name);
					continue;
				}
				stick_store(r->table, sc.value.p, sc.value.n, s->sid, now_ms);
				if (r->shared)
					shared_write(r, sc.value.p, sc.value.n, s);
			}
		} else if (r->kind == PERSIST_COOKIE) {
			/* the session goes on (same id) or starts (a new one) on s:
			 * counted in s's estimate of the sessions it holds */
			bool same = pr->cookie_srv == s;
			uint64_t sid = same ? pr->cookie_sid : new_session_id();
			hll_add(s->cookie_sessions, sid, now_ms);
			/* issue when the client has no valid cookie naming this
			 * server, or to refresh an ageing one */
			if (same && !pr->refresh)
				continue;
			uint32_t now_s = (uint32_t)((uint64_t)time(NULL) - TIME_EPOCH);
			uint32_t issued = same ? pr->cookie_issued : now_s;
			char val[160];
			long vn = cookie_seal(be, r, s->id_hash, issued, now_s, sid, val, sizeof(val));
			if (vn < 0)
				continue;
			struct cookie_attrs a = {
				.path = cookie_str(r->path),
				.domain = cookie_str(r->domain),
				.max_age = r->max_age_s,
				.secure = r->secure || pr->secure,
				.httponly = r->httponly,
				.samesite = r->samesite,
			};
			size_t room;
			char *out = http_add_room(add, &room);
			long n = room ? cookie_set_build(cookie_str(r->name), (struct h1_str){ val, (size_t)vn },
							 &a, out, room) : -1;
			if (n < 0)
				return -1;
			http_add_commit(add, "Set-Cookie", (size_t)n);
			issued_cookie = true;
		}
	}
	bool has_cc = false;
	for (uint32_t h = 0; h < resp->nhdrs && issued_cookie; h++)
		has_cc |= (resp->hdrs[h].flags & H1_HF_CACHECONTROL) != 0;
	if (issued_cookie && !has_cc) {
		/* SPEC 3.1: shared caches must never store one user's cookie */
		if (http_add_field(add, "Cache-Control", "private", 7) < 0)
			return -1;
	}
	return 0;
}

void persist_count(struct backend *be, const struct persist_req *pr)
{
	struct persist_rules *rs = rules_of(be);
	if (!rs || pr->result == PR_NONE || pr->rule < 0)
		return;
	atomic_fetch_add_explicit(&rs->r[pr->rule].counts[pr->result], 1, memory_order_relaxed);
	if (pr->also != PR_NONE && pr->also_rule >= 0)
		atomic_fetch_add_explicit(&rs->r[pr->also_rule].counts[pr->also], 1,
					  memory_order_relaxed);
	if (pr->result == PR_MOVED && pr->reason < MOVED_COUNT)
		atomic_fetch_add_explicit(&rs->moved[pr->reason], 1, memory_order_relaxed);
}

const char *persist_reason_name(int reason)
{
	static const char *const names[] = { "-", "down", "maint", "removed", "connect" };
	return reason >= 0 && reason < MOVED_COUNT ? names[reason] : "-";
}

const char *persist_from_name(int from)
{
	static const char *const names[] = { NULL, "redis", "hash", "timeout", "down", "error" };
	return from > 0 && from < (int)ARRAY_SIZE(names) ? names[from] : NULL;
}

const char *persist_result_name(enum persist_result r)
{
	static const char *const names[] = { "-", "hit", "new", "moved", "invalid", "expired" };
	return r < PR_COUNT ? names[r] : "-";
}

const char *persist_cookie_name(const struct backend *be)
{
	struct persist_rules *rs = rules_of(be);
	if (!rs)
		return NULL;
	for (int i = 0; i < rs->n; i++)
		if (rs->r[i].kind == PERSIST_COOKIE)
			return rs->r[i].name;
	return NULL;
}

const char *persist_prefix_name(const struct backend *be)
{
	struct persist_rules *rs = rules_of(be);
	for (int i = 0; rs && i < rs->n; i++)
		if (rs->r[i].kind == PERSIST_PREFIX)
			return rs->r[i].name;
	return NULL;
}

void persist_update_sessions(struct config *cfg)
{
	for (int b = 0; b < cfg->nbackends; b++) {
		struct backend *be = cfg->backends[b];
		struct persist_rules *rs = rules_of(be);
		struct server *const *sv;
		int ns = servers_of(be, &sv);
		for (int s = 0; s < ns; s++) {
			uint64_t n = 0;
			for (int i = 0; rs && i < rs->n; i++)
				if (rs->r[i].table)
					n += stick_count_server(rs->r[i].table, sv[s]->sid);
			atomic_store_explicit(&sv[s]->sessions, n, memory_order_relaxed);
		}
	}
}

void persist_expire(struct config *cfg, uint64_t now_ms)
{
	for (int b = 0; b < cfg->nbackends; b++) {
		struct persist_rules *rs = rules_of(cfg->backends[b]);
		for (int i = 0; rs && i < rs->n; i++) {
			if (!rs->r[i].table)
				continue;
			/* adaptive, as Redis does: keep going while a batch
			 * finds only expired entries, within a bound */
			for (int k = 0; k < 8; k++)
				if (stick_expire(rs->r[i].table, now_ms, 256) < 256)
					break;
		}
	}
}
