/*
 * cfg_tls.c - the TLS options of a `bind` line (SPEC §11, doc/tls.md) and
 * the OpenSSL contexts built from them when the configuration is loaded.
 *
 *   bind ADDR [ADDR...] [accept-proxy] tls crt FILE|DIR [crt ...] [alpn LIST]
 *        [min-version 1.2|1.3] [ciphers S] [ciphersuites S]
 *        [client-ca FILE verify none|optional|required]
 *
 * The options are only recorded while the file is read; the contexts are
 * built once all of it is (cfg.c's resolve), because they need `secret-file`
 * and `tls-tickets`, which may come later in the file. A certificate that
 * cannot be served is an error at the bind's line, so a start, `bollard
 * check` and a reload all refuse it, and a reload keeps the running
 * generation (with its contexts) serving.
 *
 * And the TLS options of a `server` line (connections to that server are
 * TLS, sconn.c and check.c):
 *
 *   server NAME ADDR ... tls [verify none|required] [ca FILE] [sni NAME]
 *          [alpn http/1.1]
 *
 * built at once (they need nothing from later in the file): a CA file that
 * cannot be read is an error at the server's line, on a reload too.
 */
#include "api.h"
#include "cfg_kw.h"
#include "persist.h"
#include "seal.h"
#include "tls_ctx.h"
#include "xprt_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The labels of the handshake counters a TLS bind counts into (xprt_tls.c
 * counts, stats.c reports). */
const char *const tls_err_names[TLS_ERR_N] = {
	[TLS_ERR_PROTOCOL] = "protocol",
	[TLS_ERR_NO_CIPHER] = "no-shared-cipher",
	[TLS_ERR_ALPN] = "alpn",
	[TLS_ERR_CERT] = "client-certificate",
	[TLS_ERR_CLOSED] = "client-closed",
	[TLS_ERR_INCOMPLETE] = "incomplete",
	[TLS_ERR_OTHER] = "other",
};

const char *const tls_srv_err_names[TLS_ERR_N] = {
	[TLS_ERR_PROTOCOL] = "protocol",
	[TLS_ERR_NO_CIPHER] = "no-shared-cipher",
	[TLS_ERR_ALPN] = "alpn",
	[TLS_ERR_CERT] = "certificate",
	[TLS_ERR_CLOSED] = "server-closed",
	[TLS_ERR_INCOMPLETE] = "incomplete",
	[TLS_ERR_OTHER] = "other",
};

struct cfg_tls_pending {
	struct tls_bind *tb;
	int line;
	char **crt;
	int ncrt;
	char **alpn;
	int nalpn;
	int min_version;
	char *ciphers, *ciphersuites, *client_ca;
	enum tls_verify verify;
	bool verify_set;
};

static void pending_free(struct cfg_tls_pending *t)
{
	for (int i = 0; i < t->ncrt; i++)
		free(t->crt[i]);
	free(t->crt);
	for (int i = 0; i < t->nalpn; i++)
		free(t->alpn[i]);
	free(t->alpn);
	free(t->ciphers);
	free(t->ciphersuites);
	free(t->client_ca);
}

static int need_arg(struct cfg_parser *p, int argc, char **argv, int i, const char *what)
{
	if (i + 1 < argc && argv[i + 1][0])
		return 0;
	cfg_err(p, p->line, "bind option '%s' needs %s", argv[i], what);
	return -1;
}

/* `alpn h2,http/1.1` (RFC 7301 3.1: each name 1..255 bytes) */
static int parse_alpn(struct cfg_parser *p, struct cfg_tls_pending *t, const char *list)
{
	const char *s = list;
	while (*s) {
		size_t n = strcspn(s, ",");
		if (n == 0 || n > TLS_ALPN_NAME_MAX) {
			cfg_err(p, p->line, "alpn '%s': each protocol name takes 1 to %d bytes",
				list, TLS_ALPN_NAME_MAX);
			return -1;
		}
		/* what is offered is what the connection must then speak
		 * (RFC 7301 3.2: the server's choice binds it): h2 (h2.c),
		 * http/1.1 and http/1.0 */
		if (!((n == 2 && !strncmp(s, "h2", 2)) || (n == 8 && !strncmp(s, "http/1.1", 8)) ||
		      (n == 8 && !strncmp(s, "http/1.0", 8)))) {
			cfg_err(p, p->line, "alpn '%s': unknown protocol '%.*s' (bollard speaks "
				"h2, http/1.1 and http/1.0)", list, (int)n, s);
			return -1;
		}
		char **slot = CFG_PUSH(p, t->alpn, t->nalpn);
		if (!slot || !(*slot = strndup(s, n))) {
			if (slot)
				t->nalpn--;
			cfg_err(p, p->line, "out of memory");
			return -1;
		}
		s += n;
		if (*s == ',' && !*++s) {
			cfg_err(p, p->line, "alpn '%s': empty protocol name at the end", list);
			return -1;
		}
	}
	return 0;
}

static int set_str(struct cfg_parser *p, char **dst, const char *s)
{
	char *d = cfg_strdup(p, s);
	if (!d)
		return -1;
	free(*dst);
	*dst = d;
	return 0;
}

int cfg_tls_parse(struct cfg_parser *p, int argc, char **argv, int start, struct tls_bind **out)
{
	static const char *const opts[] = { "crt", "alpn", "min-version", "ciphers", "ciphersuites",
					    "client-ca", "verify" };
	static const char *const verifies[] = { "none", "optional", "required" };
	struct cfg_tls_pending t = { .line = p->line };
	int rc = 0;

	for (int i = start; i < argc && rc == 0; i++) {
		const char *o = argv[i];
		int k = cfg_choice(o, opts, ARRAY_SIZE(opts));
		if (k < 0) {
			const char *sg = cfg_suggest(o, opts, ARRAY_SIZE(opts));
			if (sg)
				cfg_err(p, p->line, "unknown tls option '%s'; did you mean '%s'?", o, sg);
			else
				cfg_err(p, p->line, "unknown tls option '%s' (after 'tls': crt, alpn, "
					"min-version, ciphers, ciphersuites, client-ca, verify)", o);
			rc = -1;
			break;
		}
		if (need_arg(p, argc, argv, i, k == 0 || k == 5 ? "a file" : "a value") < 0) {
			rc = -1;
			break;
		}
		const char *v = argv[++i];
		char **slot;
		switch (k) {
		case 0:
			slot = CFG_PUSH(p, t.crt, t.ncrt);
			if (!slot || !(*slot = cfg_strdup(p, v))) {
				if (slot)
					t.ncrt--;
				rc = -1;
			}
			break;
		case 1:
			rc = parse_alpn(p, &t, v);
			break;
		case 2:
			t.min_version = tls_version_parse(v);
			if (!t.min_version) {
				cfg_err(p, p->line, "min-version '%s': 1.2 or 1.3 (older versions are "
					"never offered, RFC 8996)", v);
				rc = -1;
			}
			break;
		case 3:
			rc = set_str(p, &t.ciphers, v);
			break;
		case 4:
			rc = set_str(p, &t.ciphersuites, v);
			break;
		case 5:
			rc = set_str(p, &t.client_ca, v);
			break;
		case 6: {
			int m = cfg_choice(v, verifies, ARRAY_SIZE(verifies));
			if (m < 0) {
				rc = cfg_err_choice(p, "unknown verify mode", v, verifies,
						    ARRAY_SIZE(verifies));
				break;
			}
			t.verify = (enum tls_verify)m;
			t.verify_set = true;
			break;
		}
		}
	}
	if (rc == 0 && t.ncrt == 0) {
		cfg_err(p, p->line, "'tls' needs at least one 'crt FILE|DIR' (a PEM file with the "
			"certificate, its chain and its key, or a directory of them)");
		rc = -1;
	}
	if (rc == 0 && t.verify != TLS_VERIFY_NONE && !t.client_ca) {
		cfg_err(p, p->line, "verify %s needs client-ca FILE (the CAs client certificates "
			"are checked against)", verifies[t.verify]);
		rc = -1;
	}
	if (rc == 0 && t.client_ca && !t.verify_set) {
		cfg_err(p, p->line, "client-ca needs 'verify none|optional|required'");
		rc = -1;
	}
	struct cfg_tls_pending *slot = rc == 0 ? CFG_PUSH(p, p->tls, p->ntls) : NULL;
	struct tls_bind *tb = slot ? calloc(1, sizeof(*tb)) : NULL;
	if (tb && !p->fe->tls && (p->fe->tls = calloc(1, sizeof(*p->fe->tls))) != NULL)
		p->fe->tls->refs = 1;
	struct tls_bind **own = tb && p->fe->tls ? CFG_PUSH(p, p->cfg->tls_binds, p->cfg->ntls_binds) : NULL;
	if (!own) {
		if (rc == 0)
			cfg_err(p, p->line, "out of memory");
		if (slot)
			p->ntls--;
		free(tb);
		pending_free(&t);
		return -1;
	}
	*own = tb;
	tb->fe = p->fe;
	tb->cfg = p->cfg;
	tb->line = p->line;
	char at[320];
	tb->where = strdup(cfg_where(p, p->line, at, sizeof(at)));
	t.tb = tb;
	*slot = t;
	*out = tb;
	return 0;
}

/* The secret-file keys the ticket keys derive from, when the file exists
 * now (a start that creates it uses a random ticket key until a reload:
 * doc/tls.md). */
static struct seal_keys *ticket_keys(struct cfg_parser *p)
{
	char def[PATH_MAX], err[512];
	const char *path = persist_secret_path(p->cfg, def, sizeof(def));
	if (!path || access(path, F_OK) < 0)
		return NULL;
	return seal_keys_load(path, false, NULL, err, sizeof(err)); /* kw_secret_file reported errors */
}

void cfg_tls_build(struct cfg_parser *p)
{
	struct seal_keys *k = p->ntls && p->nerrs == 0 ? ticket_keys(p) : NULL;
	struct tls_secret sec = { .nkeys = 0 };
	for (int i = 0; k && i < k->n && i < TLS_MAX_SECRETS; i++)
		sec.key[sec.nkeys++] = k->key[i];
	for (int i = 0; i < p->ntls; i++) {
		struct cfg_tls_pending *t = &p->tls[i];
		if (p->nerrs == 0) {
			struct tls_bind_opts o = {
				.crt = (const char *const *)t->crt, .ncrt = t->ncrt,
				.alpn = (const char *const *)t->alpn, .nalpn = t->nalpn,
				.min_version = t->min_version,
				.ciphers = t->ciphers, .ciphersuites = t->ciphersuites,
				.client_ca = t->client_ca, .verify = t->verify,
				.no_tickets = p->cfg->tls_tickets_off,
			};
			char err[512];
			t->tb->ctx = tls_ctx_build(&o, sec.nkeys ? &sec : NULL, err, sizeof(err));
			if (!t->tb->ctx)
				cfg_err(p, t->line, "%s", err);
		}
		pending_free(t);
	}
	seal_keys_free(k);
	free(p->tls);
	p->tls = NULL;
	p->ntls = 0;
}

static void cfg_tls_stats_release(struct tls_stats *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		free(s);
}

void cfg_tls_stats_carry(struct frontend *nf, struct frontend *of)
{
	if (!nf->tls || !of->tls)
		return;
	atomic_fetch_add_explicit(&of->tls->refs, 1, memory_order_relaxed);
	cfg_tls_stats_release(nf->tls);
	nf->tls = of->tls;
}

/* RFC 1123 2.1 host name: letters, digits, '-' and dots, 1..253 */
static bool is_hostname(const char *v)
{
	size_t n = strlen(v);
	struct in6_addr a;
	if (n == 0 || n > 253 || v[0] == '.' || v[0] == '-')
		return false;
	if (strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n)
		return false;
	/* RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in
	 * HostName" */
	return inet_pton(AF_INET, v, &a) != 1;
}

int cfg_tls_server(struct cfg_parser *p, struct server *s, const struct cfg_srv_tls *o)
{
	static const char *const verifies[] = { "none", "required" };
	const char *alpn[2];
	int nalpn = 0;
	const char *given = o->verify ? "verify" : o->ca ? "ca" : o->sni ? "sni" : o->alpn ? "alpn" : NULL;

	if (!o->tls) {
		if (!given)
			return 0;
		cfg_err(p, p->line, "server option '%s' needs 'tls' before it (server NAME ADDR tls "
			"[verify none|required] [ca FILE] [sni NAME] [alpn http/1.1])", given);
		return -1;
	}
	enum tls_verify verify = TLS_VERIFY_REQUIRED; /* the safe default, as HAProxy's */
	if (o->verify) {
		int m = cfg_choice(o->verify, verifies, ARRAY_SIZE(verifies));
		if (m < 0)
			return cfg_err_choice(p, "unknown verify mode", o->verify, verifies,
					      ARRAY_SIZE(verifies));
		verify = m == 0 ? TLS_VERIFY_NONE : TLS_VERIFY_REQUIRED;
	}
	if (o->ca && verify == TLS_VERIFY_NONE) {
		cfg_err(p, p->line, "'ca %s' with 'verify none': the CAs would not be used; write "
			"'verify required' or leave 'ca' out", o->ca);
		return -1;
	}
	if (o->sni && !is_hostname(o->sni)) {
		cfg_err(p, p->line, "sni '%s': a host name (letters, digits, '-' and '.'; an IP "
			"address is not sent as SNI, RFC 6066 3)", o->sni);
		return -1;
	}
	for (const char *a = o->alpn; a && *a;) {
		size_t n = strcspn(a, ",");
		/* bollard speaks HTTP/1.1 to servers: offering more would let
		 * the server pick a protocol the exchange cannot speak */
		if (nalpn == 2 || !((n == 8 && !strncmp(a, "http/1.1", 8)) ||
				    (n == 8 && !strncmp(a, "http/1.0", 8)))) {
			cfg_err(p, p->line, "alpn '%s': http/1.1 or http/1.0 (bollard speaks HTTP/1.1 "
				"to servers)", o->alpn);
			return -1;
		}
		alpn[nalpn++] = n == 8 && a[7] == '1' ? "http/1.1" : "http/1.0";
		a += n + (a[n] == ',');
	}
	struct tls_client_opts co = {
		.verify = verify, .ca_file = o->ca, .sni = o->sni, .alpn = alpn, .nalpn = nalpn,
	};
	char err[512];
	struct tls_server *ts = cfg_calloc(p, 1, sizeof(*ts));
	if (!ts)
		return -1;
	ts->cli = tls_client_build(&co, err, sizeof(err));
	if (!ts->cli) {
		cfg_err(p, p->line, "server '%s': %s", s->name, err);
		free(ts);
		return -1;
	}
	/* the address without its port: "1.2.3.4:443" or "[::1]:443" */
	const char *t = s->addr.text;
	size_t hl = t[0] == '[' ? strcspn(t, "]") + 1 : strcspn(t, ":");
	snprintf(ts->host, sizeof(ts->host), "%.*s", (int)MIN(hl, sizeof(ts->host) - 1), t);
	snprintf(ts->name, sizeof(ts->name), "%s/%s", s->be->name, s->name);
	snprintf(ts->sni, sizeof(ts->sni), "%s", o->sni ? o->sni : "");
	s->tls = ts;
	return 0;
}

void cfg_tls_free(struct config *cfg)
{
	for (int b = 0; b < cfg->nbackends; b++)
		for (int i = 0; i < cfg->backends[b]->nservers; i++) {
			struct tls_server *ts = cfg->backends[b]->servers[i]->tls;
			if (ts) {
				tls_client_free(ts->cli);
				free(ts);
			}
		}
	for (int i = 0; i < cfg->nfrontends; i++)
		cfg_tls_stats_release(cfg->frontends[i]->tls);
	for (int i = 0; i < cfg->ntls_binds; i++) {
		tls_ctx_free(cfg->tls_binds[i]->ctx);
		free(cfg->tls_binds[i]->where);
		free(cfg->tls_binds[i]);
	}
	free(cfg->tls_binds);
}

struct expiry_check {
	const struct tls_bind *tb;
	FILE *out;
	int64_t now;
	int n;
};

static int expiry_check(void *arg, const struct tls_cert_info *ci)
{
	struct expiry_check *a = arg;
	int64_t left = ci->not_after - a->now;
	if (left >= (int64_t)CFG_TLS_EXPIRY_WARN_DAYS * 86400)
		return 0;
	char date[32] = "?";
	time_t t = (time_t)ci->not_after;
	struct tm tm;
	if (gmtime_r(&t, &tm))
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (left < 0)
		fprintf(a->out, "%s: warning: certificate %s (%s) expired on %s\n", a->tb->where,
			ci->file, ci->nnames ? ci->names[0] : "-", date);
	else
		fprintf(a->out, "%s: warning: certificate %s (%s) expires in %lld day%s, on %s\n",
			a->tb->where, ci->file, ci->nnames ? ci->names[0] : "-",
			(long long)(left / 86400), left / 86400 == 1 ? "" : "s", date);
	a->n++;
	return 0;
}

int cfg_tls_check_expiry(const struct config *cfg, FILE *out, int64_t now)
{
	int n = 0;
	for (int i = 0; i < cfg->ntls_binds; i++) {
		struct expiry_check a = { cfg->tls_binds[i], out, now, 0 };
		tls_ctx_foreach_cert(cfg->tls_binds[i]->ctx, expiry_check, &a);
		n += a.n;
	}
	return n;
}

int cfg_kw_tls_tickets(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const v[] = { "off", "on" };
	int i = cfg_choice(argv[1], v, ARRAY_SIZE(v));

	if (i < 0)
		return cfg_err_choice(p, "unknown tls-tickets value", argv[1], v, ARRAY_SIZE(v));
	p->cfg->tls_tickets_off = i == 0;
	return 0;
}

/* `redirect https`: a request that came in cleartext is answered 308 to the
 * same host and path on https (h1_exchange.c); TLS requests pass. */
int cfg_kw_redirect(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const v[] = { "https" };
	if (cfg_choice(argv[1], v, ARRAY_SIZE(v)) < 0)
		return cfg_err_choice(p, "unknown redirect", argv[1], v, ARRAY_SIZE(v));
	p->fe->redirect_https = true;
	return 0;
}

/* Seconds, with an optional unit s, m, h or d (max-age runs to years: more
 * than the millisecond durations of timeouts hold). */
static int parse_seconds(const char *s, uint64_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mul = 1;
	if (*end == 'd')
		mul = 86400;
	else if (*end == 'h')
		mul = 3600;
	else if (*end == 'm')
		mul = 60;
	else if (*end && *end != 's')
		return -1;
	if (*end && end[1])
		return -1;
	if (errno || v > (uint64_t)1e10 / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* `hsts max-age D [include-subdomains] [preload]` (RFC 6797 6.1): sent on
 * responses over TLS only (RFC 6797 7.2 forbids it in cleartext). */
int cfg_kw_hsts(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const flags[] = { "include-subdomains", "preload" };
	uint64_t secs;
	bool sub = false, preload = false;
	if (strcmp(argv[1], "max-age") != 0) {
		cfg_err(p, p->line, "usage: hsts max-age D [include-subdomains] [preload]");
		return -1;
	}
	if (argc < 3 || parse_seconds(argv[2], &secs) < 0) {
		cfg_err(p, p->line, "hsts max-age '%s': a duration in seconds, or with s, m, h or d "
			"(e.g. 180d)", argc < 3 ? "" : argv[2]);
		return -1;
	}
	for (int i = 3; i < argc; i++) {
		int k = cfg_choice(argv[i], flags, ARRAY_SIZE(flags));
		if (k < 0)
			return cfg_err_choice(p, "unknown hsts option", argv[i], flags, ARRAY_SIZE(flags));
		if (k == 0)
			sub = true;
		else
			preload = true;
	}
	p->fe->hsts = true;
	snprintf(p->fe->hsts_value, sizeof(p->fe->hsts_value), "max-age=%llu%s%s",
		 (unsigned long long)secs, sub ? "; includeSubDomains" : "", preload ? "; preload" : "");
	return 0;
}
