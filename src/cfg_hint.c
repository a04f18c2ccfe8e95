/*
 * cfg_hint.c - what an HAProxy or NGINX operator writes, and what bollard
 * says instead (issue 10 item 4).
 *
 * Someone migrating a configuration types the words of the balancer they
 * know: `nbthread 4`, `server s1 10.0.0.1:80 check`, `balance source`,
 * `stats socket`, `ip_hash;`. "unknown keyword" is true and useless; the
 * error should name the bollard equivalent. ONE table, cfg_hints[], holds
 * every such mapping; the reader (cfg.c) and the keyword parsers (cfg_kw.c)
 * ask it when a word is unknown, and doc/config.md ("From HAProxy / from
 * NGINX") shows the same table row for row
 * (tests/integ/test_config_doc.py fails when the two differ).
 *
 * A hint is only ever added to an error: it never makes a foreign word
 * valid, so a configuration means one thing, bollard's.
 */
#include "api.h"
#include "cfg_kw.h"

/*
 * THE migration table. Each entry: where the word is met, whose word it is,
 * the word (a keyword and its first argument for two words, as "stats
 * socket"; "weight=N" or "hdr(NAME)" match any value after '=' or '('),
 * what bollard writes ("" when nothing is needed), and a note or NULL. The doc table shows, in this order:
 * from, the word as written in a file (server options as "server ...
 * WORD", balance algorithms as "balance WORD", timeouts as "timeout
 * WORD"), what bollard writes, the note.
 */
const struct cfg_hint cfg_hints[] = {
	/* ---- HAProxy ---- */
	{ CFG_HINT_KEYWORD, "HAProxy", "nbthread", "threads N", NULL },
	{ CFG_HINT_KEYWORD, "HAProxy", "nbproc", "threads N", "one process, N worker threads" },
	{ CFG_HINT_KEYWORD, "HAProxy", "daemon", "", "bollard runs in the foreground; a service manager runs it (contrib/bollard.service)" },
	{ CFG_HINT_KEYWORD, "HAProxy", "stats socket", "admin-socket PATH", "the runtime API, used by 'bollard ctl'" },
	{ CFG_HINT_KEYWORD, "HAProxy", "stats", "stats-listen ADDR", "dashboard at /, Prometheus metrics at /metrics; 'stats-auth FILE' for users" },
	{ CFG_HINT_KEYWORD, "HAProxy", "cookie", "persist cookie NAME insert", "or 'persist cookie NAME prefix' to prefix the application's own cookie; servers are named by their name, nothing to set per server" },
	{ CFG_HINT_KEYWORD, "HAProxy", "stick-table", "persist source|header NAME|url-param NAME [size N] [expire D]", "each persist line has its own table" },
	{ CFG_HINT_KEYWORD, "HAProxy", "stick on", "persist source", "for 'src'; req.cook(NAME) is 'persist learn NAME', req.hdr(NAME) 'persist header NAME'" },
	{ CFG_HINT_KEYWORD, "HAProxy", "stick", "persist METHOD ...", "one persist line both matches and stores" },
	{ CFG_HINT_KEYWORD, "HAProxy", "option redispatch", "on-server-down redispatch", "the default" },
	{ CFG_HINT_KEYWORD, "HAProxy", "option httpchk", "health http METHOD PATH", NULL },
	{ CFG_HINT_KEYWORD, "HAProxy", "option forwardfor", "forwarded x-forwarded-for", "on by default" },
	{ CFG_HINT_KEYWORD, "HAProxy", "option httplog", "log-format combined", "the default" },
	{ CFG_HINT_KEYWORD, "HAProxy", "option http-server-close", "", "keep-alive on both sides is the default; idle server connections are pooled" },
	{ CFG_HINT_KEYWORD, "HAProxy", "option", "", "bollard has no 'option' keyword: see 'From HAProxy / from NGINX' in doc/config.md" },
	{ CFG_HINT_KEYWORD, "HAProxy", "http-check", "health http METHOD PATH [expect STATUS]", NULL },
	{ CFG_HINT_KEYWORD, "HAProxy", "default_backend", "default-backend NAME", NULL },
	{ CFG_HINT_KEYWORD, "HAProxy", "use_backend", "route host|path-prefix VALUE BACKEND", NULL },
	{ CFG_HINT_KEYWORD, "HAProxy", "acl", "route host|path-prefix VALUE BACKEND", "routes match the Host header or a path prefix" },
	{ CFG_HINT_KEYWORD, "HAProxy", "http-request", "", "bollard has no request rules: 'route' chooses the backend, 'forwarded' the forwarding headers" },
	{ CFG_HINT_BALANCE, "HAProxy", "source", "balance hash source", "or 'persist source' to keep each client on its server" },
	{ CFG_HINT_BALANCE, "HAProxy", "uri", "balance hash uri", NULL },
	{ CFG_HINT_BALANCE, "HAProxy", "url_param", "balance hash url-param NAME", NULL },
	{ CFG_HINT_BALANCE, "HAProxy", "hdr(NAME)", "balance hash header NAME", NULL },
	{ CFG_HINT_BALANCE, "HAProxy", "rdp-cookie", "balance hash cookie NAME", NULL },
	{ CFG_HINT_BALANCE, "HAProxy", "static-rr", "balance roundrobin", "weights are read at every pick" },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "check", "health tcp|http ...", "one line for the backend: every server of it is checked" },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "inter", "check-interval D", NULL },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "fastinter", "check-interval D", NULL },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "downinter", "check-interval D", NULL },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "cookie", "persist cookie NAME insert", "a backend line; the cookie names the server by its name" },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "on-marked-down", "on-server-down redispatch|replica|fail", "a backend line" },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "ssl", "tls", "verified by default, as with ssl-server-verify required" },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "ca-file", "tls ca FILE", NULL },
	{ CFG_HINT_SERVER_OPT, "HAProxy", "check-ssl", "tls", "the checks of a tls server go over TLS" },
	{ CFG_HINT_TIMEOUT, "HAProxy", "check", "health ... timeout D", NULL },
	{ CFG_HINT_TIMEOUT, "HAProxy", "client-fin", "timeout client D", NULL },
	{ CFG_HINT_TIMEOUT, "HAProxy", "server-fin", "timeout server D", NULL },

	/* ---- NGINX ---- */
	{ CFG_HINT_SECTION, "NGINX", "upstream", "backend NAME", "a section header at column 0, its lines indented, no braces" },
	{ CFG_HINT_SECTION, "NGINX", "http", "frontend NAME", "sections are flat: frontend (bind, routes) and backend (servers), no braces" },
	{ CFG_HINT_SECTION, "NGINX", "events", "", "nothing to configure: one event loop per worker thread" },
	{ CFG_HINT_KEYWORD, "NGINX", "worker_processes", "threads N", "in the global section" },
	{ CFG_HINT_KEYWORD, "NGINX", "worker_connections", "maxconn N", "in the global section" },
	{ CFG_HINT_KEYWORD, "NGINX", "listen", "bind ADDR", "'listen NAME' at column 0 starts a frontend and a backend in one section" },
	{ CFG_HINT_KEYWORD, "NGINX", "server_name", "route host NAME BACKEND", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "location", "route path-prefix /PREFIX BACKEND", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "proxy_pass", "default-backend NAME", "or 'route host|path-prefix VALUE BACKEND'" },
	{ CFG_HINT_KEYWORD, "NGINX", "sticky cookie", "persist cookie NAME insert", "expires= is max-age D" },
	{ CFG_HINT_KEYWORD, "NGINX", "sticky learn", "persist learn NAME", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "sticky", "persist cookie|learn ...", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "ip_hash", "persist source", "or 'balance hash source'" },
	{ CFG_HINT_KEYWORD, "NGINX", "hash", "balance hash KEY [ring]", "$request_uri is 'uri', $cookie_NAME 'cookie NAME'; consistent is 'ring'" },
	{ CFG_HINT_KEYWORD, "NGINX", "least_conn", "balance leastconn", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "random", "balance random", "'random two least_conn' is 'balance p2c'" },
	{ CFG_HINT_KEYWORD, "NGINX", "keepalive", "", "idle server connections are always pooled" },
	{ CFG_HINT_KEYWORD, "NGINX", "keepalive_timeout", "timeout http-keep-alive D", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "proxy_connect_timeout", "timeout connect D", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "proxy_read_timeout", "timeout server D", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "proxy_send_timeout", "timeout server D", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "client_header_timeout", "timeout http-request D", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "client_body_timeout", "timeout client D", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "proxy_next_upstream", "retries N", "a failed connect is retried on another server; a sent request only when idempotent and unanswered" },
	{ CFG_HINT_KEYWORD, "NGINX", "proxy_set_header", "forwarded HEADER...", "x-forwarded-for, x-forwarded-proto, forwarded, x-request-id" },
	{ CFG_HINT_KEYWORD, "NGINX", "set_real_ip_from", "trust-forwarded CIDR...", NULL },
	{ CFG_HINT_KEYWORD, "NGINX", "access_log", "log file PATH", "in the global section" },
	{ CFG_HINT_SERVER_ARG, "NGINX", "server ADDRESS", "server NAME IP:PORT", "a server has a name, used by the runtime API and in cookies" },
	{ CFG_HINT_SERVER_OPT, "NGINX", "weight=N", "weight N", NULL },
	{ CFG_HINT_SERVER_OPT, "NGINX", "max_fails=N", "fall N", NULL },
	{ CFG_HINT_SERVER_OPT, "NGINX", "fail_timeout=D", "check-interval D", "a server marked down is probed every interval and back after rise successes" },
	{ CFG_HINT_SERVER_OPT, "NGINX", "max_conns=N", "maxconn N", NULL },
	{ CFG_HINT_SERVER_OPT, "NGINX", "slow_start=D", "slowstart D", NULL },
	{ CFG_HINT_SERVER_OPT, "NGINX", "down", "", "a server is taken out at run time: 'bollard ctl set server BACKEND/SERVER state maint'" },
};

const size_t cfg_nhints = ARRAY_SIZE(cfg_hints);

/* Does the table's word w match s? A w holding '=' or '(' ("weight=N",
 * "hdr(NAME)") shows a value: what comes before the value must match. */
static bool word_match(const char *w, const char *s)
{
	size_t n = strcspn(w, "=(");

	if (w[n])
		return strncmp(w, s, n + 1) == 0;
	return strcmp(w, s) == 0;
}

/* word without one trailing ';' (NGINX ends its directives with one). */
static void strip_semicolon(const char *word, char *out, size_t n)
{
	size_t len = strlen(word);

	if (len && word[len - 1] == ';')
		len--;
	snprintf(out, n, "%.*s", (int)MIN(len, n - 1), word);
}

/*
 * The entry for word met at `at`, or NULL. arg is the word after it (NULL
 * when none): two-word entries ("stats socket") are tried first. A section
 * header that is no section may be a foreign top-level directive
 * (`worker_processes 4;` at column 0), so CFG_HINT_SECTION also looks at
 * the keyword entries.
 */
const struct cfg_hint *cfg_hint_find(enum cfg_hint_at at, const char *word, const char *arg)
{
	char w[CFG_NAME_MAX], a[CFG_NAME_MAX], two[2 * CFG_NAME_MAX + 1];

	strip_semicolon(word, w, sizeof(w));
	if (arg) {
		strip_semicolon(arg, a, sizeof(a));
		snprintf(two, sizeof(two), "%s %s", w, a);
	}
	for (int pass = 0; pass < 4; pass++) {
		/* passes: two words at `at`, one word at `at`, then the same
		 * among keywords for a section header */
		enum cfg_hint_at where = pass < 2 ? at : CFG_HINT_KEYWORD;

		if (pass >= 2 && at != CFG_HINT_SECTION)
			break;
		if ((pass & 1) == 0 && !arg)
			continue;
		for (size_t i = 0; i < cfg_nhints; i++)
			if (cfg_hints[i].at == where &&
			    word_match(cfg_hints[i].word, (pass & 1) ? w : two))
				return &cfg_hints[i];
	}
	return NULL;
}

/* The word as an operator writes it in a file (the doc table's column). */
void cfg_hint_shown(const struct cfg_hint *h, char *buf, size_t n)
{
	static const char *const prefix[] = {
		[CFG_HINT_SECTION] = "", [CFG_HINT_KEYWORD] = "", [CFG_HINT_SERVER_ARG] = "",
		[CFG_HINT_SERVER_OPT] = "server ... ", [CFG_HINT_BALANCE] = "balance ",
		[CFG_HINT_TIMEOUT] = "timeout ",
	};

	snprintf(buf, n, "%s%s", prefix[h->at], h->word);
}

/*
 * "; HAProxy's 'balance source' is 'balance hash source' in bollard (or
 * ...)" for the word met at `at`, to append to its error; "" when the
 * table has nothing. Written to buf[0..n), which is returned.
 */
const char *cfg_hint(enum cfg_hint_at at, const char *word, const char *arg, char *buf, size_t n)
{
	const struct cfg_hint *h = cfg_hint_find(at, word, arg);
	char shown[2 * CFG_NAME_MAX + 16];

	buf[0] = '\0';
	if (!h)
		return buf;
	cfg_hint_shown(h, shown, sizeof(shown));
	if (h->use[0])
		snprintf(buf, n, "; %s's '%s' is '%s' in bollard%s%s%s", h->from, shown, h->use,
			 h->note ? " (" : "", h->note ? h->note : "", h->note ? ")" : "");
	else
		snprintf(buf, n, "; %s's '%s' is not needed in bollard: %s", h->from, shown,
			 h->note ? h->note : "");
	return buf;
}
