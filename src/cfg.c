/*
 * cfg.c - the configuration language of SPEC §3 into the model of cfg.h.
 *
 * The language is line-oriented, in the tradition of HAProxy: a section
 * header starts at column 0 (`global`, `defaults`, `frontend NAME`,
 * `backend NAME`, `listen NAME`), directives below it are indented, `#`
 * starts a comment outside double quotes, and words are separated by
 * blanks. A double-quoted word may hold blanks and `#`; inside quotes only
 * \" and \\ are escapes.
 *
 * This file holds the section headers, the dispatch of directives,
 * suggestions, the value syntaxes (durations, sizes, addresses), the
 * checks made once the whole file is read, and the lookups; cfg_read.c
 * reads the file (lines, words, errors with their FILE:LINE). The directives
 * themselves are in cfg_kw.c: every directive is looked up in ONE table,
 * cfg_keywords[], which says in which sections it is allowed, how many
 * arguments it takes and which function parses it; keywords reserved for
 * features still to come are in the same table with the `nys` flag, so that
 * an operator gets "'x' is not yet supported" rather than "unknown
 * keyword". A word of HAProxy or NGINX that bollard spells otherwise gets
 * the bollard spelling, from the one table of cfg_hint.c.
 *
 * Errors never stop the pass: each one is recorded as "FILE:LINE: message"
 * and parsing continues, so that `bollard check` shows every mistake at
 * once (up to CFG_MAX_ERRORS). References between sections (a frontend's
 * default-backend, routes) may point forward, so they are resolved after
 * the pass, together with the checks that need the whole file (binds that
 * collide, backends without servers).
 *
 * `defaults` follow HAProxy's semantics: a defaults section applies to the
 * frontend, backend and listen sections that follow it, and each defaults
 * section starts again from the built-in values.
 */
#include "api.h"
#include "cfg.h"
#include "cfg_kw.h"
#include "cidr.h"
#include "lb_hash.h"
#include "persist.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netinet/in.h>
#include <unistd.h>

#define CFG_MAX_KEYWORDS 256  /* bound of cfg_keywords[], for suggestions */

/* ---- suggestions and allocation -------------------------------------- */

void *cfg_calloc(struct cfg_parser *p, size_t n, size_t size)
{
	void *ptr = calloc(n, size);
	if (!ptr) {
		cfg_err(p, p->line, "out of memory");
		p->stop = true;
	}
	return ptr;
}

/* Returns base reallocated with room for n + 1 elements of size sz, the new
 * one zeroed; NULL (base untouched) after reporting out of memory. */
void *cfg_grow(struct cfg_parser *p, void *base, int n, size_t sz)
{
	char *nb = realloc(base, (size_t)(n + 1) * sz);

	if (!nb) {
		cfg_err(p, p->line, "out of memory");
		p->stop = true;
		return NULL;
	}
	memset(nb + (size_t)n * sz, 0, sz);
	return nb;
}

char *cfg_strdup(struct cfg_parser *p, const char *s)
{
	char *d = strdup(s);
	if (!d) {
		cfg_err(p, p->line, "out of memory");
		p->stop = true;
	}
	return d;
}

/*
 * Optimal-string-alignment distance (Damerau-Levenshtein where a transposed
 * pair counts as one edit): "blance" -> "balance" is 1, "rondrobin" ->
 * "roundrobin" is 1, "mxaconn" -> "maxconn" is 1. Words longer than 63
 * bytes are never suggested for: their distance is DL_TOO_FAR.
 */
#define DL_TOO_FAR INT_MAX
#define SUGGEST_MAX_DISTANCE 2

static int dl_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int d[64][64];

	if (la > 63 || lb > 63)
		return DL_TOO_FAR;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int v = MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
			v = MIN(v, d[i - 1][j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				v = MIN(v, d[i - 2][j - 2] + 1);
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

/* The nearest of names[0..n) within SUGGEST_MAX_DISTANCE (and closer than
 * the word's own length, so that "ab" suggests nothing), or NULL. */
const char *cfg_suggest(const char *word, const char *const *names, size_t n)
{
	const char *best = NULL;
	int bestd = SUGGEST_MAX_DISTANCE + 1;
	int len = (int)strlen(word);

	for (size_t i = 0; i < n; i++) {
		int dd = dl_distance(word, names[i]);
		if (dd < bestd && dd < len) {
			bestd = dd;
			best = names[i];
		}
	}
	return best;
}

/* Reports "WHAT 'word'[; did you mean 'x'?] (expected: a, b, c)". */
int cfg_err_choice(struct cfg_parser *p, const char *what, const char *word,
		      const char *const *names, size_t n)
{
	const char *s = cfg_suggest(word, names, n);
	char list[256] = "";
	size_t off = 0;

	for (size_t i = 0; i < n && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
					i ? ", " : "", names[i]);
	if (s)
		cfg_err(p, p->line, "%s '%s'; did you mean '%s'?", what, word, s);
	else
		cfg_err(p, p->line, "%s '%s' (expected one of: %s)", what, word, list);
	return -1;
}

/* Index of word in names[], or -1. */
int cfg_choice(const char *word, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(word, names[i]) == 0)
			return (int)i;
	return -1;
}

/* ---- value parsers (public helpers) ----------------------------------- */

/* Decimal digits only, no sign, no blanks; 0 on success. */
int cfg_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/*
 * Durations (doc/config.md 1.1, the one place the rule is written): a whole
 * number followed by its unit, ms, s, m, h or d. The unit is required: a
 * bare number (HAProxy reads it as milliseconds) is an error, because an
 * operator who writes `max-idle 30` means 30 seconds or minutes, never the
 * 30 ms it used to be. Only 0, the same in every unit, may stand alone.
 * The result must fit in 32 bits of milliseconds (a little over 49 days).
 */
static const struct { const char *unit; uint64_t mul; } dur_units[] = {
	{ "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
};

/* ms written in the largest unit that divides it exactly: 90m, 1500ms. */
void cfg_duration_format(uint64_t ms, char *buf, size_t n)
{
	size_t i = 0;

	while (i + 1 < ARRAY_SIZE(dur_units) && (ms == 0 || ms % dur_units[i].mul))
		i++;
	snprintf(buf, n, "%llu%s", (unsigned long long)(ms / dur_units[i].mul), dur_units[i].unit);
}

/* The multiplier of the unit s[0..n), or 0. */
static uint64_t dur_unit(const char *s, size_t n)
{
	for (size_t i = 0; i < ARRAY_SIZE(dur_units); i++)
		if (strlen(dur_units[i].unit) == n && memcmp(s, dur_units[i].unit, n) == 0)
			return dur_units[i].mul;
	return 0;
}

/*
 * Parses the duration s into *ms. Returns NULL, or why s is not one: the
 * message is written to why[0..n) and names what (a keyword or option,
 * may be NULL) and, where one can be computed, the right spelling: '30s'
 * for a bare 30, '90m' for 1.5h, '61m' for 1h1m.
 */
const char *cfg_duration_check(const char *what, const char *s, uint32_t *ms,
			       char *why, size_t n)
{
	char head[160], fix[32];
	const char *c = s;
	uint64_t total = 0;     /* in 1/1000 ms, so that 3 decimals are exact */
	int parts = 0;
	bool frac = false;

	snprintf(head, sizeof(head), "invalid duration '%.64s'%s%.64s%s", s, what ? " for '" : "",
		 what ? what : "", what ? "'" : "");
	while (*c) {
		size_t nd = strspn(c, "0123456789"), nf = 0, nu;
		uint64_t v = 0, f = 0, mul;

		if (nd == 0 || nd > 12)
			goto syntax;
		for (size_t i = 0; i < nd; i++)
			v = v * 10 + (uint64_t)(c[i] - '0');
		c += nd;
		if (*c == '.') {
			nf = strspn(c + 1, "0123456789");
			if (nf == 0 || nf > 3)
				goto syntax;
			for (size_t i = 0; i < 3; i++)
				f = f * 10 + (i < nf ? (uint64_t)(c[1 + i] - '0') : 0);
			c += 1 + nf;
			frac = true;
		}
		nu = strspn(c, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
		if (nu == 0) {
			if (*c || parts || frac)
				goto syntax;
			if (v == 0) {      /* 0 needs no unit */
				*ms = 0;
				return NULL;
			}
			snprintf(why, n, "%s: a unit is needed, e.g. '%llus' (ms, s, m, h or d)", head,
				 (unsigned long long)v);
			return why;
		}
		mul = dur_unit(c, nu);
		if (!mul) {
			snprintf(why, n, "%s: unknown unit '%.*s' (ms, s, m, h or d)", head,
				 (int)MIN(nu, 16), c);
			return why;
		}
		c += nu;
		/* v <= 2^32 / mul keeps the products far from 2^64 */
		if (v > UINT32_MAX / mul || (total += (v * 1000 + f) * mul) / 1000 > UINT32_MAX) {
			snprintf(why, n, "%s: too large (the maximum is 49d)", head);
			return why;
		}
		parts++;
	}
	if (parts == 0)
		goto syntax;
	if (frac || parts > 1) {
		if (total % 1000) {
			snprintf(why, n, "%s: durations are whole milliseconds", head);
			return why;
		}
		cfg_duration_format(total / 1000, fix, sizeof(fix));
		snprintf(why, n, "%s: %s; write '%s'", head,
			 frac ? "a whole number is needed" : "one number and one unit", fix);
		return why;
	}
	*ms = (uint32_t)(total / 1000);
	return NULL;
syntax:
	snprintf(why, n, "%s (use e.g. 500ms, 2s, 1m)", head);
	return why;
}

int cfg_parse_duration(const char *s, uint32_t *ms)
{
	char why[256];

	return cfg_duration_check(NULL, s, ms, why, sizeof(why)) ? -1 : 0;
}

/* Sizes: a decimal number, optionally followed by k, m or g (powers of
 * 1024, either case); a bare number is bytes. */
int cfg_parse_size(const char *s, uint64_t *bytes)
{
	char num[24];
	size_t n = strspn(s, "0123456789");
	uint64_t v, mul = 1;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	if (cfg_parse_u64(num, &v) < 0)
		return -1;
	if (s[n] != '\0') {
		if (s[n + 1] != '\0')
			return -1;
		switch (s[n]) {
		case 'k': case 'K': mul = 1024; break;
		case 'm': case 'M': mul = 1024 * 1024; break;
		case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
		default: return -1;
		}
	}
	if (v > UINT64_MAX / mul)
		return -1;
	*bytes = v * mul;
	return 0;
}

/*
 * Parses IP:PORT into out. Accepted forms: 127.0.0.1:8080, *:8080 and :8080
 * (0.0.0.0), [::1]:8080, [::]:8080. Names are never resolved: a
 * configuration that changes meaning with DNS is not one we can check.
 * Returns NULL on success or why the address is bad.
 */
const char *cfg_addr_parse(const char *s, struct cfg_addr *out)
{
	size_t n = strlen(s);
	const char *port;
	char host[64];
	uint64_t pv;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return "empty address";
	if (n >= sizeof(out->text))
		return "address too long";
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
		const char *rb = strchr(s, ']');
		size_t hl;

		if (!rb)
			return "missing ']' after the IPv6 address";
		hl = (size_t)(rb - s - 1);
		if (rb[1] != ':')
			return "missing port (use [IPv6]:PORT)";
		if (hl == 0 || hl >= sizeof(host))
			return "invalid IPv6 address";
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return "invalid IPv6 address";
		port = rb + 2;
		out->len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
		const char *colon = strrchr(s, ':');
		size_t hl;

		if (!colon) {
			for (const char *c = s; *c; c++)
				if (isalpha((unsigned char)*c))
					return "hostnames are not resolved; use an IP address";
			return "missing port (use IP:PORT)";
		}
		if (strchr(s, ':') != colon)
			return "an IPv6 address must be in brackets, e.g. [::1]:8080";
		hl = (size_t)(colon - s);
		if (hl >= sizeof(host))
			return "hostnames are not resolved; use an IP address";
		memcpy(host, s, hl);
		host[hl] = '\0';
		sin->sin_family = AF_INET;
		if (hl == 0 || strcmp(host, "*") == 0) {
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			for (const char *c = host; *c; c++)
				if (isalpha((unsigned char)*c))
					return "hostnames are not resolved; use an IP address";
			return "invalid IPv4 address";
		}
		port = colon + 1;
		out->len = sizeof(*sin);
	}
	if (cfg_parse_u64(port, &pv) < 0 || pv == 0 || pv > 65535)
		return "invalid port (1..65535)";
	if (out->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)pv);
	else
		((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)pv);
	memcpy(out->text, s, n + 1);
	return NULL;
}

int cfg_parse_addr(const char *s, struct cfg_addr *out)
{
	return cfg_addr_parse(s, out) ? -1 : 0;
}

bool cfg_addr_is_any(const struct cfg_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

/* Would two listening sockets on a and b take each other's connections?
 * With SO_REUSEPORT they would not fail to bind: they would silently share
 * the traffic, which is why a wildcard overlapping a specific address of
 * the same family and port is refused too. */
static bool addr_overlap(const struct cfg_addr *a, const struct cfg_addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return false;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
		if (x->sin_port != y->sin_port)
			return false;
		return x->sin_addr.s_addr == y->sin_addr.s_addr || cfg_addr_is_any(a) || cfg_addr_is_any(b);
	}
	const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
	if (x->sin6_port != y->sin6_port)
		return false;
	return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 ||
	       cfg_addr_is_any(a) || cfg_addr_is_any(b);
}

/* ---- sections ----------------------------------------------------------- */

static const char *sect_name(unsigned s)
{
	switch (s) {
	case CFG_S_GLOBAL: return "global";
	case CFG_S_DEFAULTS: return "defaults";
	case CFG_S_FRONTEND: return "frontend";
	case CFG_S_BACKEND: return "backend";
	case CFG_S_LISTEN: return "listen";
	}
	return "?";
}

/* "frontend, listen" for a mask. */
static void sect_list(unsigned mask, char *buf, size_t sz)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned b = CFG_S_GLOBAL; b <= CFG_S_LISTEN && off < sz; b <<= 1)
		if (mask & b)
			off += (size_t)snprintf(buf + off, sz - off, "%s%s", off ? ", " : "", sect_name(b));
}

static void defaults_reset(struct cfg_defaults *d)
{
	d->to.connect = 2000;
	d->to.client = 30000;
	d->to.server = 30000;
	d->to.http_request = 10000;
	d->to.http_keep_alive = 5000;
	d->to.queue = 5000;
	d->to.tunnel = 3600000;
	d->retries = 2;
	d->on_down = ON_DOWN_REDISPATCH;
	d->mode = MODE_HTTP;
	d->balance = LB_ROUNDROBIN;
	d->hash_key = HASH_KEY_SOURCE;
	d->hash_key_name[0] = '\0';
	d->hash_algo = HASH_MAGLEV;
	d->hash_bound = 0;
}

static struct frontend *find_frontend(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nfrontends; i++)
		if (strcmp(cfg->frontends[i]->name, name) == 0)
			return cfg->frontends[i];
	return NULL;
}

static struct frontend *new_frontend(struct cfg_parser *p, const char *name)
{
	struct config *cfg = p->cfg;
	struct frontend *dup = find_frontend(cfg, name);

	if (dup) {
		char at[320];

		cfg_err(p, p->line, "duplicate frontend '%s' (first defined at %s)", name,
			cfg_ref(p, p->line, dup->line, at, sizeof(at)));
		return NULL;
	}
	struct frontend **slot = CFG_PUSH(p, cfg->frontends, cfg->nfrontends);
	if (!slot)
		return NULL;
	struct frontend *fe = cfg_calloc(p, 1, sizeof(*fe));
	if (!fe) {
		cfg->nfrontends--;
		return NULL;
	}
	*slot = fe;
	snprintf(fe->name, sizeof(fe->name), "%s", name);
	fe->line = p->line;
	fe->idx = cfg->nfrontends - 1;
	fe->mode = p->def.mode;
	fe->to = p->def.to;
	fe->fwd = HTTP_FWD_DEFAULT;
	return fe;
}

static struct backend *new_backend(struct cfg_parser *p, const char *name)
{
	struct config *cfg = p->cfg;
	struct backend *dup = cfg_find_backend(cfg, name);

	if (dup) {
		char at[320];

		cfg_err(p, p->line, "duplicate backend '%s' (first defined at %s)", name,
			cfg_ref(p, p->line, dup->line, at, sizeof(at)));
		return NULL;
	}
	struct backend **slot = CFG_PUSH(p, cfg->backends, cfg->nbackends);
	if (!slot)
		return NULL;
	struct backend *be = cfg_calloc(p, 1, sizeof(*be));
	if (!be) {
		cfg->nbackends--;
		return NULL;
	}
	*slot = be;
	snprintf(be->name, sizeof(be->name), "%s", name);
	be->line = p->line;
	be->idx = cfg->nbackends - 1;
	be->mode = p->def.mode;
	be->balance = p->def.balance;
	be->hash_key = p->def.hash_key;
	memcpy(be->hash_key_name, p->def.hash_key_name, sizeof(be->hash_key_name));
	be->hash_algo = p->def.hash_algo;
	be->hash_bound = p->def.hash_bound;
	be->to = p->def.to;
	be->retries = p->def.retries;
	be->on_down = p->def.on_down;
	return be;
}

void cfg_section_header(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const names[] = { "global", "defaults", "frontend", "backend", "listen" };
	int i = cfg_choice(argv[0], names, ARRAY_SIZE(names));

	if (i < 0) {
		/* A directive that lost its indentation: say so, and stay in
		 * the current section so that its next lines read as meant. */
		for (size_t k = 0; k < cfg_nkeywords; k++) {
			if (strcmp(argv[0], cfg_keywords[k].name) == 0) {
				cfg_err(p, p->line, "'%s' must be indented under a section header",
					argv[0]);
				return;
			}
		}
	}
	p->sect = 0;
	p->skip = true;               /* until the header proves good */
	p->fe = NULL;
	p->be = NULL;
	if (i < 0) {
		char hint[512];

		if (*cfg_hint(CFG_HINT_SECTION, argv[0], argc > 1 ? argv[1] : NULL, hint, sizeof(hint)))
			cfg_err(p, p->line, "unknown section '%s'%s", argv[0], hint);
		else
			cfg_err_choice(p, "unknown section", argv[0], names, ARRAY_SIZE(names));
		return;
	}
	unsigned s = 1u << i;
	if (s == CFG_S_GLOBAL || s == CFG_S_DEFAULTS) {
		if (argc > 1) {
			cfg_err(p, p->line, "'%s' takes no name", argv[0]);
			return;
		}
		if (s == CFG_S_DEFAULTS)
			defaults_reset(&p->def);
		p->sect = s;
		p->skip = false;
		return;
	}
	if (argc != 2) {
		cfg_err(p, p->line, "'%s' needs exactly one name: %s NAME", argv[0], argv[0]);
		return;
	}
	if (cfg_check_name(p, names[i], argv[1]) < 0)
		return;
	if (s == CFG_S_LISTEN) {
		/* Check both names first: half a listen would only add noise. */
		struct frontend *dfe = find_frontend(p->cfg, argv[1]);
		struct backend *dbe = cfg_find_backend(p->cfg, argv[1]);
		if (dfe || dbe) {
			char at[320];

			cfg_err(p, p->line, "duplicate %s '%s' (first defined at %s)",
				dfe ? "frontend" : "backend", argv[1],
				cfg_ref(p, p->line, dfe ? dfe->line : dbe->line, at, sizeof(at)));
			return;
		}
	}
	if (s & CFG_S_FE) {
		if (!(p->fe = new_frontend(p, argv[1])))
			return;
	}
	if (s & CFG_S_BE) {
		if (!(p->be = new_backend(p, argv[1])))
			return; /* only out of memory for a listen: names were checked */
	}
	if (s == CFG_S_LISTEN)
		p->fe->default_be = p->be;
	p->sect = s;
	p->skip = false;
}

void cfg_directive(struct cfg_parser *p, int argc, char **argv)
{
	const struct cfg_kw *kw = NULL;
	char where[64];

	if (p->skip)
		return;
	if (p->sect == 0) {
		cfg_err(p, p->line, "'%s' outside of any section (start one with global, defaults, "
			"frontend NAME, backend NAME or listen NAME)", argv[0]);
		p->skip = true; /* one message is enough */
		return;
	}
	for (size_t k = 0; k < cfg_nkeywords; k++)
		if (strcmp(argv[0], cfg_keywords[k].name) == 0)
			kw = &cfg_keywords[k];
	if (p->be && strcmp(argv[0], "server") == 0) {
		while (p->nserver_line <= p->be->idx)
			if (!CFG_PUSH(p, p->server_line, p->nserver_line))
				return;
		p->server_line[p->be->idx] = true;
	}
	if (!kw) {
		const char *names[CFG_MAX_KEYWORDS];
		char hint[512];
		size_t n = 0;

		/* a word of HAProxy or NGINX: the bollard equivalent beats a
		 * near name (default_backend is near default-backend too) */
		if (*cfg_hint(CFG_HINT_KEYWORD, argv[0], argc > 1 ? argv[1] : NULL, hint, sizeof(hint))) {
			cfg_err(p, p->line, "unknown keyword '%s' in %s section%s", argv[0],
				sect_name(p->sect), hint);
			return;
		}
		BUG_ON(cfg_nkeywords > CFG_MAX_KEYWORDS);
		for (size_t k = 0; k < cfg_nkeywords; k++)
			if (cfg_keywords[k].sections & p->sect)
				names[n++] = cfg_keywords[k].name;
		const char *s = cfg_suggest(argv[0], names, n);
		if (s)
			cfg_err(p, p->line, "unknown keyword '%s' in %s section; did you mean '%s'?",
				argv[0], sect_name(p->sect), s);
		else
			cfg_err(p, p->line, "unknown keyword '%s' in %s section", argv[0],
				sect_name(p->sect));
		return;
	}
	if (kw->nys) {
		cfg_err(p, p->line, "'%s' is not yet supported", kw->name);
		return;
	}
	if (!(kw->sections & p->sect)) {
		sect_list(kw->sections, where, sizeof(where));
		cfg_err(p, p->line, "'%s' is not allowed in a %s section (allowed in: %s)",
			kw->name, sect_name(p->sect), where);
		return;
	}
	if (argc - 1 < kw->min_args || (kw->max_args >= 0 && argc - 1 > kw->max_args)) {
		cfg_err(p, p->line, "%s arguments to '%s' (usage: %s)",
			argc - 1 < kw->min_args ? "missing" : "too many", kw->name, kw->usage);
		return;
	}
	kw->parse(p, argc, argv);
}

/* ---- driver: the checks after the whole file is read -------------------------------- */

static void resolve(struct cfg_parser *p)
{
	struct config *cfg = p->cfg;
	const char **names = NULL;
	bool *used = NULL;

	if (cfg->nbackends) {
		names = calloc((size_t)cfg->nbackends, sizeof(*names));
		used = calloc((size_t)cfg->nbackends, sizeof(*used));
		if (!names || !used) {
			cfg_err(p, p->line, "out of memory");
			goto out;
		}
		for (int i = 0; i < cfg->nbackends; i++)
			names[i] = cfg->backends[i]->name;
	}
	for (int i = 0; i < p->nrefs; i++) {
		struct cfg_ref *r = &p->refs[i];
		struct backend *be = cfg_find_backend(cfg, r->name);
		if (!be) {
			const char *s = cfg_suggest(r->name, names, (size_t)cfg->nbackends);
			if (s)
				cfg_err(p, r->line, "unknown backend '%s'; did you mean '%s'?", r->name, s);
			else
				cfg_err(p, r->line, "unknown backend '%s'", r->name);
			continue;
		}
		if (r->route == CFG_REF_DEFAULT)
			r->fe->default_be = be;
		else
			r->fe->routes[r->route].be = be;
	}
	for (int i = 0; i < cfg->nfrontends; i++) {
		struct frontend *fe = cfg->frontends[i];
		bool is_listen = fe->default_be && strcmp(fe->default_be->name, fe->name) == 0 &&
				 fe->default_be->line == fe->line;
		if (fe->nbinds == 0)
			cfg_err(p, fe->line, "%s '%s' has no bind", is_listen ? "listen" : "frontend",
				fe->name);
		if (!fe->default_be) {
			bool referenced = false;
			for (int k = 0; k < p->nrefs; k++)
				referenced |= p->refs[k].fe == fe && p->refs[k].route == CFG_REF_DEFAULT;
			if (!referenced)
				cfg_err(p, fe->line, "frontend '%s' has no default-backend", fe->name);
		} else {
			used[fe->default_be->idx] = true;
		}
		for (int k = 0; k < fe->nroutes; k++)
			if (fe->routes[k].be)
				used[fe->routes[k].be->idx] = true;
	}
	for (int i = 0; i < cfg->nbackends; i++) {
		struct backend *be = cfg->backends[i];
		for (int k = 0; k < be->nservers; k++) {
			struct server *s = be->servers[k];
			if (!s->replica_name[0])
				continue;
			s->replica = cfg_find_server(be, s->replica_name);
			if (!s->replica)
				cfg_err(p, s->line, "replica '%s' is not a server of backend '%s'",
					s->replica_name, be->name);
			else if (s->replica == s)
				cfg_err(p, s->line, "server '%s' cannot be its own replica", s->name);
		}
	}
	for (int i = 0; i < cfg->nbackends; i++) {
		const struct backend *be = cfg->backends[i];
		const struct frontend *twin = find_frontend(cfg, be->name);
		bool written = i < p->nserver_line && p->server_line[i];

		if (used[i] && be->nservers == 0 && !written)
			cfg_err(p, be->line, "%s '%s' has no server",
				twin && twin->line == be->line ? "listen" : "backend", be->name);
	}

	/* Binds: no two listeners may take each other's connections. */
	for (int i = 0; i < p->nbinds; i++) {
		const struct cfg_bindref *a = &p->binds[i];
		const struct cfg_addr *aa = &a->fe->binds[a->idx];
		char at[320];

		for (int k = 0; k < i; k++) {
			const struct cfg_bindref *b = &p->binds[k];
			const struct cfg_addr *ba = &b->fe->binds[b->idx];
			if (!addr_overlap(aa, ba))
				continue;
			if (a->fe == b->fe)
				cfg_err(p, a->line, "bind %s overlaps bind %s at %s of the same frontend",
					aa->text, ba->text, cfg_ref(p, a->line, b->line, at, sizeof(at)));
			else
				cfg_err(p, a->line, "bind %s conflicts with bind %s of frontend '%s' at %s",
					aa->text, ba->text, b->fe->name,
					cfg_ref(p, a->line, b->line, at, sizeof(at)));
			break;
		}
		if (cfg->has_stats && addr_overlap(aa, &cfg->stats_listen))
			cfg_err(p, a->line, "bind %s conflicts with stats-listen %s at %s",
				aa->text, cfg->stats_listen.text,
				cfg_ref(p, a->line, p->stats_line, at, sizeof(at)));
	}
	if (cfg->max_request_line > cfg->bufsize)
		cfg_err(p, p->mrl_line ? p->mrl_line : p->bufsize_line,
			"tune.max-request-line (%u) must not exceed tune.bufsize (%u)",
			cfg->max_request_line, cfg->bufsize);
	if (cfg->nfrontends == 0 && p->nerrs == 0)
		cfg_err(p, p->line, "no frontend or listen section: nothing to do");
out:
	free(names);
	free(used);
}

/*
 * cfg_load(), and with sock non-NULL cfg_admin_socket(): the admin-socket
 * path and where it was written are taken before the model is freed, so
 * that they survive errors elsewhere in the file.
 */
static struct config *load(const char *file, char **errs, char **sock, char **where)
{
	struct cfg_parser p = { .file = file };
	struct config *cfg;

	if (errs)
		*errs = NULL;
	defaults_reset(&p.def);
	cfg = p.cfg = cfg_calloc(&p, 1, sizeof(*cfg));
	if (cfg) {
		cfg->file = cfg_strdup(&p, file);
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->threads = (int)(c < 1 ? 1 : c > 64 ? 64 : c);
		cfg->maxconn = 10000;
		cfg->log_target = LOG_TARGET_STDOUT;
		cfg->log_format = LOG_FORMAT_COMBINED_BOLLARD;
		cfg->grace = 10000;
		cfg->bufsize = 16384;
		cfg->maxhdr = 100;
		cfg->max_request_line = 8192;
	}
	/* the cross-checks of a file that could not be read would only add noise */
	if (!p.stop && cfg_read_file(&p, file) && !p.stop)
		resolve(&p);
	cfg_tls_build(&p);
	free(p.refs);
	free(p.binds);
	free(p.server_line);
	free(p.open);
	if (sock && cfg && cfg->admin_socket) {
		char at[320];

		*sock = strdup(cfg->admin_socket);
		*where = strdup(cfg_where(&p, p.admin_line, at, sizeof(at)));
	}
	cfg_errors_sort(&p);
	if (p.nerrs || p.stop) {
		cfg_free(cfg);
		if (errs)
			*errs = p.err ? p.err : strdup("out of memory\n");
		else
			free(p.err);
		return NULL;
	}
	free(p.err);
	return cfg;
}

struct config *cfg_load(const char *file, char **errs)
{
	return load(file, errs, NULL, NULL);
}

char *cfg_admin_socket(const char *file, char **where, char **errs)
{
	char *sock = NULL;
	struct config *cfg;

	*where = NULL;
	cfg = load(file, errs, &sock, where);
	cfg_free(cfg);
	if (sock && !*where) {      /* out of memory: the pair or nothing */
		free(sock);
		sock = NULL;
	}
	if (!sock) {
		free(*where);
		*where = NULL;
	}
	return sock;
}

void cfg_hold(struct config *cfg)
{
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
}

/* acq_rel: the last holder must see every write the others made to the
 * generation before it frees it */
void cfg_release(struct config *cfg)
{
	if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (int b = 0; b < cfg->nbackends; b++)
		lb_hash_free(cfg->backends[b]);
	cfg_free(cfg); /* frees the persistence rules and the tables they still own */
}

void cfg_free(struct config *cfg)
{
	if (!cfg)
		return;
	cfg_tls_free(cfg); /* before the frontends: their TLS counters */
	for (int i = 0; i < cfg->nfrontends; i++) {
		struct frontend *fe = cfg->frontends[i];
		for (int k = 0; k < fe->nroutes; k++)
			free(fe->routes[k].value);
		free(fe->routes);
		free(fe->binds);
		cidr_list_free(fe->trusted);
		free(fe);
	}
	for (int i = 0; i < cfg->nbackends; i++) {
		struct backend *be = cfg->backends[i];
		persist_rules_free(be);
		for (int k = 0; k < be->nservers; k++)
			free(be->servers[k]);
		free(be->servers);
		for (int k = 0; k < be->nretired; k++)
			free(be->retired[k]);
		free(be->retired);
		free(be);
	}
	free(cfg->frontends);
	free(cfg->backends);
	free(cfg->file);
	free(cfg->log_path);
	free(cfg->admin_socket);
	free(cfg->secret_file);
	free(cfg->stats_auth_file);
	if (cfg->stats_auth)
		explicit_bzero(cfg->stats_auth, strlen(cfg->stats_auth));
	free(cfg->stats_auth);
	free(cfg->stats_hosts);
	free(cfg->state_file);
	free(cfg->shared);
	free(cfg->log_socket);
	free(cfg->user);
	free(cfg->group);
	free(cfg->pidfile);
	free(cfg);
}

/* ---- lookups and names ---------------------------------------------------- */

struct backend *cfg_find_backend(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nbackends; i++)
		if (strcmp(cfg->backends[i]->name, name) == 0)
			return cfg->backends[i];
	return NULL;
}

struct server *cfg_find_server(const struct backend *be, const char *name)
{
	for (int i = 0; i < be->nservers; i++)
		if (strcmp(be->servers[i]->name, name) == 0)
			return be->servers[i];
	return NULL;
}

const char *srv_state_name(int state)
{
	static const char *const n[] = { "ready", "drain", "maint", "down" };
	return state >= 0 && state < (int)ARRAY_SIZE(n) ? n[state] : "unknown";
}

const char *lb_kind_name(enum lb_kind k)
{
	static const char *const n[] = { "roundrobin", "leastconn", "random", "p2c", "hash" };
	return (unsigned)k < ARRAY_SIZE(n) ? n[k] : "unknown";
}

