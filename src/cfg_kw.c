/*
 * cfg_kw.c - the directives of the configuration language: ONE table,
 * cfg_keywords[], with for each keyword the sections where it is allowed,
 * its number of arguments, the function that parses it, and whether it is
 * reserved for a feature still to come ("not yet supported"). The reader in
 * cfg.c looks every directive up here, checks section and argument count,
 * and calls the function; the function checks values and fills the model of
 * cfg.h, reporting precise errors with cfg_err().
 *
 * Adding a directive: write its kw_ function, add one table line, and
 * document it in doc/config.md (tests/integ/test_config_doc.py checks that
 * every name of this table appears there).
 */
#include "api.h"
#include "cfg_kw.h"
#include "check.h"
#include "cidr.h"
#include "persist.h"
#include "seal.h"
#include "shared.h"
#include "cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- argument helpers for the keyword functions ------------------------ */

static int arg_uint(struct cfg_parser *p, const char *kw, const char *s,
		    uint64_t lo, uint64_t hi, uint32_t *out)
{
	uint64_t v;

	if (cfg_parse_u64(s, &v) < 0 || v < lo || v > hi) {
		cfg_err(p, p->line, "invalid value '%s' for '%s' (expected a number %llu..%llu)",
			s, kw, (unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static int arg_duration(struct cfg_parser *p, const char *s, uint32_t *out)
{
	char why[256];

	if (cfg_duration_check(NULL, s, out, why, sizeof(why))) {
		cfg_err(p, p->line, "%s", why);
		return -1;
	}
	return 0;
}

static int arg_size(struct cfg_parser *p, const char *kw, const char *s,
		    uint64_t lo, uint64_t hi, uint32_t *out)
{
	uint64_t v;

	if (cfg_parse_size(s, &v) < 0) {
		cfg_err(p, p->line, "invalid size '%s' (use e.g. 16384, 16k, 1m)", s);
		return -1;
	}
	if (v < lo || v > hi) {
		cfg_err(p, p->line, "'%s' %s is out of range (%llu..%llu bytes)", kw, s,
			(unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Section and server names appear in the runtime API as BACKEND/SERVER and
 * in metric labels, so they are kept to a safe alphabet. */
int cfg_check_name(struct cfg_parser *p, const char *what, const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= CFG_NAME_MAX) {
		cfg_err(p, p->line, "invalid %s name '%s' (1..%d characters)", what, s,
			CFG_NAME_MAX - 1);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c != '-' && c != '.') {
			cfg_err(p, p->line, "invalid %s name '%s' (use letters, digits, '_', '-', '.')",
				what, s);
			return -1;
		}
	}
	return 0;
}

static int set_path(struct cfg_parser *p, char **dst, const char *s)
{
	if (!*s) {
		cfg_err(p, p->line, "empty path");
		return -1;
	}
	char *d = cfg_strdup(p, s);
	if (!d)
		return -1;
	free(*dst);
	*dst = d;
	return 0;
}

/* ---- global keywords --------------------------------------------------- */

static int kw_threads(struct cfg_parser *p, int argc, char **argv)
{
	uint32_t n;

	if (strcmp(argv[1], "auto") == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		p->cfg->threads = (int)(c < 1 ? 1 : c > 64 ? 64 : c);
		return 0;
	}
	if (arg_uint(p, "threads", argv[1], 1, 64, &n) < 0)
		return -1;
	p->cfg->threads = (int)n;
	return 0;
}

static int kw_maxconn(struct cfg_parser *p, int argc, char **argv)
{
	return arg_uint(p, "maxconn", argv[1], 1, 10000000, &p->cfg->maxconn);
}

/* RFC 5424 6.2.1 facility codes, by their usual names (syslog.h order). */
static const char *const facilities[] = {
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
	"authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
	"local3", "local4", "local5", "local6", "local7",
};

/* The options of `log syslog` and `log udp`: facility F, tag T, and for
 * syslog socket PATH (another socket than /dev/log, e.g. for tests or a
 * chroot). */
static int log_options(struct cfg_parser *p, int argc, char **argv, int i, bool syslog)
{
	struct config *c = p->cfg;

	c->log_facility = 3; /* daemon */
	snprintf(c->log_tag, sizeof(c->log_tag), "bollard");
	for (; i < argc; i += 2) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "facility") && v) {
			int f = cfg_choice(v, facilities, ARRAY_SIZE(facilities));

			if (f < 0)
				return cfg_err_choice(p, "unknown syslog facility", v, facilities,
						      ARRAY_SIZE(facilities));
			c->log_facility = f;
		} else if (!strcmp(o, "tag") && v) {
			/* RFC 5424 APP-NAME: 1*48 PRINTUSASCII; RFC 3164 TAG
			 * is alphanumeric, at most 32 */
			size_t n = strlen(v);

			for (size_t k = 0; k < n; k++)
				if (!isalnum((unsigned char)v[k]) && !strchr("-_.", v[k]))
					n = 0;
			if (n == 0 || n >= sizeof(c->log_tag)) {
				cfg_err(p, p->line, "invalid syslog tag '%s' (1..32 of letters, digits, "
					"'-', '_', '.')", v);
				return -1;
			}
			memcpy(c->log_tag, v, n + 1);
		} else if (syslog && !strcmp(o, "socket") && v) {
			struct sockaddr_un sun;

			if (strlen(v) >= sizeof(sun.sun_path)) {
				cfg_err(p, p->line, "syslog socket path is too long (max %zu bytes)",
					sizeof(sun.sun_path) - 1);
				return -1;
			}
			if (set_path(p, &c->log_socket, v) < 0)
				return -1;
		} else {
			cfg_err(p, p->line, "%s '%s' (expected: %s)", v ? "unknown option" :
				"missing value after", o, syslog ? "log syslog [facility F] [tag T] "
				"[socket PATH]" : "log udp ADDR [facility F] [tag T]");
			return -1;
		}
	}
	return 0;
}

static int kw_log(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const t[] = { "stdout", "stderr", "file", "off", "syslog", "udp" };
	int i = cfg_choice(argv[1], t, ARRAY_SIZE(t));

	if (i < 0)
		return cfg_err_choice(p, "unknown log target", argv[1], t, ARRAY_SIZE(t));
	if (i == LOG_TARGET_SYSLOG) {
		if (log_options(p, argc, argv, 2, true) < 0)
			return -1;
	} else if (i == LOG_TARGET_UDP) {
		const char *why;

		if (argc < 3) {
			cfg_err(p, p->line, "'log udp' needs an ADDR (e.g. 127.0.0.1:514)");
			return -1;
		}
		why = cfg_addr_parse(argv[2], &p->cfg->log_udp);
		if (why) {
			cfg_err(p, p->line, "invalid address '%s': %s", argv[2], why);
			return -1;
		}
		if (log_options(p, argc, argv, 3, false) < 0)
			return -1;
	} else if ((i == LOG_TARGET_FILE) != (argc == 3)) {
		if (i == LOG_TARGET_FILE)
			cfg_err(p, p->line, "'log file' needs a PATH");
		else
			cfg_err(p, p->line, "too many arguments to 'log %s'", argv[1]);
		return -1;
	}
	if (i == LOG_TARGET_FILE && set_path(p, &p->cfg->log_path, argv[2]) < 0)
		return -1;
	p->cfg->log_target = (enum cfg_log_target)i;
	return 0;
}

/* user NAME, group NAME: looked up now, so that `bollard check` and a
 * reload report a name the system does not know (priv.c drops to them). */
static int kw_user(struct cfg_parser *p, int argc, char **argv)
{
	if (!getpwnam(argv[1])) {
		cfg_err(p, p->line, "unknown user '%s' (create it, e.g. useradd --system %s)",
			argv[1], argv[1]);
		return -1;
	}
	return set_path(p, &p->cfg->user, argv[1]);
}

static int kw_group(struct cfg_parser *p, int argc, char **argv)
{
	if (!getgrnam(argv[1])) {
		cfg_err(p, p->line, "unknown group '%s'", argv[1]);
		return -1;
	}
	return set_path(p, &p->cfg->group, argv[1]);
}

static int kw_pidfile(struct cfg_parser *p, int argc, char **argv)
{
	return set_path(p, &p->cfg->pidfile, argv[1]);
}

static int kw_log_format(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const f[] = { "combined", "json", "combined-bollard" };
	int i = cfg_choice(argv[1], f, ARRAY_SIZE(f));

	if (i < 0)
		return cfg_err_choice(p, "unknown log format", argv[1], f, ARRAY_SIZE(f));
	p->cfg->log_format = (enum cfg_log_format)i;
	return 0;
}

static int kw_grace(struct cfg_parser *p, int argc, char **argv)
{
	return arg_duration(p, argv[1], &p->cfg->grace);
}

static int kw_admin_socket(struct cfg_parser *p, int argc, char **argv)
{
	struct sockaddr_un sun;

	if (strlen(argv[1]) >= sizeof(sun.sun_path)) {
		cfg_err(p, p->line, "admin-socket path is too long (max %zu bytes)",
			sizeof(sun.sun_path) - 1);
		return -1;
	}
	p->admin_line = p->line;   /* for bollard ctl -c (cfg_admin_socket) */
	return set_path(p, &p->cfg->admin_socket, argv[1]);
}

static int kw_stats_listen(struct cfg_parser *p, int argc, char **argv)
{
	const char *why = cfg_addr_parse(argv[1], &p->cfg->stats_listen);

	if (why) {
		cfg_err(p, p->line, "invalid address '%s': %s", argv[1], why);
		return -1;
	}
	p->cfg->has_stats = true;
	p->stats_line = p->line;
	return 0;
}

static int kw_stats_admin(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const v[] = { "off", "on" };
	int i = cfg_choice(argv[1], v, ARRAY_SIZE(v));

	if (i < 0)
		return cfg_err_choice(p, "unknown stats-admin value", argv[1], v, ARRAY_SIZE(v));
	p->cfg->stats_admin = i == 1;
	return 0;
}

/*
 * stats-host NAME...: the names, besides its address and localhost, by
 * which browsers reach the stats listener; a state-changing request naming
 * another Host is refused (DNS rebinding, stats.c). A name is what a Host
 * field holds before its port: a DNS name, an IPv4 address, or an IPv6
 * address in brackets.
 */
/* The shape of a stats-host NAME: 0 a name, an IPv4 address or an IPv6
 * address in brackets; 1 one of those with a port; -1 none of them. */
static int stats_host_shape(const char *n)
{
	static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789.-_";
	size_t len = strlen(n), end;

	if (n[0] == '[') {
		char a6[INET6_ADDRSTRLEN];
		struct in6_addr in6;
		const char *close = strchr(n, ']');

		end = close ? (size_t)(close - n) + 1 : 0;
		if (!close || end - 2 >= sizeof(a6))
			return -1;
		memcpy(a6, n + 1, end - 2);
		a6[end - 2] = '\0';
		if (inet_pton(AF_INET6, a6, &in6) != 1)
			return -1;
	} else
		end = strspn(n, name_chars);
	if (end == 0 || end >= 256)
		return -1;
	if (end == len)
		return 0;
	return n[end] == ':' && end + 1 < len && strspn(n + end + 1, "0123456789") == len - end - 1
	       ? 1 : -1;
}

static int kw_stats_host(struct cfg_parser *p, int argc, char **argv)
{
	size_t have = p->cfg->stats_hosts ? strlen(p->cfg->stats_hosts) : 0, need = have;
	char *list;

	for (int i = 1; i < argc; i++) {
		int shape = stats_host_shape(argv[i]);

		if (shape != 0) {
			cfg_err(p, p->line, shape > 0 ?
				"stats-host '%s': give the name without a port (the port is not compared)" :
				"stats-host '%s': not a host name or an address (IPv6 in brackets)",
				argv[i]);
			return -1;
		}
		need += strlen(argv[i]) + 1;
	}
	list = realloc(p->cfg->stats_hosts, need + 1);
	if (!list) {
		cfg_err(p, p->line, "out of memory");
		return -1;
	}
	p->cfg->stats_hosts = list;
	for (int i = 1; i < argc; i++) {
		if (have)
			list[have++] = ' ';
		for (const char *c = argv[i]; *c; c++)
			list[have++] = (char)tolower((unsigned char)*c);
	}
	list[have] = '\0';
	return 0;
}

/* One line of a stats-auth file: "user:password" or
 * "user:$sha256$SALT$HEX" with HEX the 64 hex digits of SHA-256(SALT
 * password) (doc/dashboard.md). Returns NULL or what is wrong. */
static const char *stats_auth_line(const char *l, size_t n)
{
	const char *colon = memchr(l, ':', n);
	const char *pw, *salt_end;
	size_t pn, i;

	if (!colon || colon == l)
		return "expected user:password";
	pw = colon + 1;
	pn = n - (size_t)(pw - l);
	if (pn == 0)
		return "empty password";
	if (pn < 8 || memcmp(pw, "$sha256$", 8) != 0)
		return NULL;   /* a plain password */
	salt_end = memchr(pw + 8, '$', pn - 8);
	if (!salt_end || salt_end == pw + 8)
		return "expected user:$sha256$SALT$HEX";
	if ((size_t)(pw + pn - salt_end - 1) != 64)
		return "the $sha256$ digest must be 64 hex digits";
	for (i = 1; i <= 64; i++)
		if (!isxdigit((unsigned char)salt_end[i]))
			return "the $sha256$ digest must be 64 hex digits";
	return NULL;
}

/* stats-auth FILE is read now, so that `bollard check` and a reload see
 * the same errors as a start; a password file others can read is refused
 * as secret-file is (doc/threat-model.md). */
static int kw_stats_auth(struct cfg_parser *p, int argc, char **argv)
{
	struct stat st;
	char *buf;
	const char *l, *end, *why;
	ssize_t r;
	size_t got = 0;
	int fd, lineno = 0, users = 0;

	if (set_path(p, &p->cfg->stats_auth_file, argv[1]) < 0)
		return -1;
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cfg_err(p, p->line, "stats-auth %s: %s", argv[1], strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 65536) {
		cfg_err(p, p->line, "stats-auth %s: not a regular file of at most 64 KiB",
			argv[1]);
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		cfg_err(p, p->line, "stats-auth %s: mode %04o lets others read it; "
			"chmod 600 it", argv[1], (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	buf = calloc(1, (size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		cfg_err(p, p->line, "out of memory");
		return -1;
	}
	while (got < (size_t)st.st_size) {
		r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	for (l = buf; *l; l = *end ? end + 1 : end) {
		size_t n;

		end = strchr(l, '\n');
		if (!end)
			end = l + strlen(l);
		n = (size_t)(end - l);
		if (n && l[n - 1] == '\r')
			n--;
		lineno++;
		if (n == 0 || l[0] == '#')
			continue;
		why = stats_auth_line(l, n);
		if (why) {
			cfg_err(p, p->line, "stats-auth %s:%d: %s", argv[1], lineno, why);
			explicit_bzero(buf, got);
			free(buf);
			return -1;
		}
		users++;
	}
	if (!users) {
		cfg_err(p, p->line, "stats-auth %s: no user:password line", argv[1]);
		free(buf);
		return -1;
	}
	if (p->cfg->stats_auth) {
		explicit_bzero(p->cfg->stats_auth, strlen(p->cfg->stats_auth));
		free(p->cfg->stats_auth);
	}
	p->cfg->stats_auth = buf;
	return 0;
}

/* The key file is checked now, as a start would load it, so that `bollard
 * check` and a reload refuse what a start refuses (a file others can read,
 * a malformed key, a directory where it cannot be created). */
static int kw_secret_file(struct cfg_parser *p, int argc, char **argv)
{
	char err[512];

	if (set_path(p, &p->cfg->secret_file, argv[1]) < 0)
		return -1;
	if (seal_key_check(argv[1], err, sizeof(err)) < 0) {
		cfg_err(p, p->line, "%s", err);
		return -1;
	}
	return 0;
}

static int kw_state_file(struct cfg_parser *p, int argc, char **argv)
{
	return set_path(p, &p->cfg->state_file, argv[1]);
}

static int kw_shared_tables(struct cfg_parser *p, int argc, char **argv)
{
	char err[256];
	struct shared_conf *c;

	if (p->cfg->shared) {
		cfg_err(p, p->line, "shared-tables given twice (first at line %d)", p->cfg->shared->line);
		return -1;
	}
	if (shared_parse(argc, argv, p->line, &c, err, sizeof(err)) < 0) {
		cfg_err(p, p->line, "%s", err);
		return -1;
	}
	p->cfg->shared = c;
	return 0;
}

static int kw_bufsize(struct cfg_parser *p, int argc, char **argv)
{
	p->bufsize_line = p->line;
	return arg_size(p, "tune.bufsize", argv[1], 4096, 1048576, &p->cfg->bufsize);
}

static int kw_maxhdr(struct cfg_parser *p, int argc, char **argv)
{
	return arg_uint(p, "tune.maxhdr", argv[1], 1, 256, &p->cfg->maxhdr);
}

static int kw_max_request_line(struct cfg_parser *p, int argc, char **argv)
{
	p->mrl_line = p->line;
	return arg_size(p, "tune.max-request-line", argv[1], 64, 1048576,
			&p->cfg->max_request_line);
}

/* ---- defaults, frontend and backend keywords --------------------------- */

static int kw_timeout(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const kinds[] = {
		"connect", "client", "server", "http-request", "http-keep-alive",
		"queue", "tunnel",
	};
	/* Which side uses each timeout: client-side ones belong to frontends,
	 * server-side ones to backends. */
	static const unsigned where[] = {
		CFG_S_BE, CFG_S_FE, CFG_S_BE, CFG_S_FE, CFG_S_FE, CFG_S_BE, CFG_S_BE,
	};
	int i = cfg_choice(argv[1], kinds, ARRAY_SIZE(kinds));
	uint32_t v;

	if (i < 0) {
		char hint[512];

		if (*cfg_hint(CFG_HINT_TIMEOUT, argv[1], NULL, hint, sizeof(hint))) {
			cfg_err(p, p->line, "unknown timeout '%s'%s", argv[1], hint);
			return -1;
		}
		return cfg_err_choice(p, "unknown timeout", argv[1], kinds, ARRAY_SIZE(kinds));
	}
	if (p->sect != CFG_S_DEFAULTS && !(where[i] & p->sect)) {
		cfg_err(p, p->line, "'timeout %s' belongs in a %s section, not a %s", argv[1],
			where[i] == CFG_S_FE ? "frontend" : "backend",
			p->sect == CFG_S_FRONTEND ? "frontend" : "backend");
		return -1;
	}
	size_t nd = strspn(argv[2], "0123456789");
	uint64_t bare;

	/* HAProxy reads a bare number as milliseconds; bollard wants the unit
	 * (doc/config.md 1.1), and a migrated line gets the spelling that keeps
	 * the meaning it had there */
	if (nd && !argv[2][nd] && nd < 11 && cfg_parse_u64(argv[2], &bare) == 0 && bare) {
		char alt[32];

		cfg_duration_format(bare, alt, sizeof(alt));
		cfg_err(p, p->line, "invalid duration '%s' for 'timeout %s': a unit is needed; "
			"HAProxy reads a bare number as milliseconds: write '%sms'%s%s%s", argv[2],
			argv[1], argv[2], bare % 1000 ? "" : " (or '", bare % 1000 ? "" : alt,
			bare % 1000 ? "" : "')");
		return -1;
	}
	if (arg_duration(p, argv[2], &v) < 0)
		return -1;
	if (v == 0) {
		cfg_err(p, p->line, "'timeout %s' must be greater than 0", argv[1]);
		return -1;
	}
	struct cfg_timeouts *tos[3] = {
		p->sect == CFG_S_DEFAULTS ? &p->def.to : NULL,
		p->sect & CFG_S_FE ? &p->fe->to : NULL,
		p->sect & CFG_S_BE ? &p->be->to : NULL,
	};
	for (int k = 0; k < 3; k++) {
		if (!tos[k])
			continue;
		uint32_t *f[] = {
			&tos[k]->connect, &tos[k]->client, &tos[k]->server,
			&tos[k]->http_request, &tos[k]->http_keep_alive,
			&tos[k]->queue, &tos[k]->tunnel,
		};
		*f[i] = v;
	}
	return 0;
}

/* forwarded HEADER...: the forwarding headers this frontend adds (SPEC 4);
 * `none` adds none. The default is x-forwarded-for x-forwarded-proto
 * x-request-id. */
static int kw_forwarded(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const names[] = { "x-forwarded-for", "x-forwarded-proto", "forwarded",
					     "x-request-id", "none" };
	static const unsigned bits[] = { HTTP_FWD_XFF, HTTP_FWD_XFP, HTTP_FWD_RFC7239,
					 HTTP_FWD_REQID, 0 };
	unsigned fwd = 0;

	for (int i = 1; i < argc; i++) {
		int k = cfg_choice(argv[i], names, ARRAY_SIZE(names));
		if (k < 0)
			return cfg_err_choice(p, "forwarded header", argv[i], names, ARRAY_SIZE(names));
		if (bits[k] == 0 && argc > 2) {
			cfg_err(p, p->line, "'none' cannot be combined with other headers");
			return -1;
		}
		fwd |= bits[k];
	}
	p->fe->fwd = fwd;
	return 0;
}

/* on-server-down redispatch|replica|fail (SPEC 3.2) */
static int kw_on_server_down(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const v[] = { "redispatch", "replica", "fail" };
	int k = cfg_choice(argv[1], v, ARRAY_SIZE(v));

	if (k < 0)
		return cfg_err_choice(p, "on-server-down", argv[1], v, ARRAY_SIZE(v));
	if (p->sect == CFG_S_DEFAULTS)
		p->def.on_down = (enum on_down)k;
	else
		p->be->on_down = (enum on_down)k;
	return 0;
}

/* allow-upgrade TOKEN...: upgrade tokens (other than websocket, always
 * allowed) that may turn a request into a tunnel. Others, notably h2c, are
 * stripped: a tunnel bypasses every rule that applies to requests. */
static int kw_allow_upgrade(struct cfg_parser *p, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		size_t n = strlen(argv[i]);
		bool ok = n > 0 && n < sizeof(p->fe->allow_upgrade[0]);
		for (size_t k = 0; ok && k < n; k++)
			ok = isalnum((unsigned char)argv[i][k]) || strchr("!#$%&'*+-.^_`|~/", argv[i][k]);
		if (!ok) {
			cfg_err(p, p->line, "invalid upgrade token '%s'", argv[i]);
			return -1;
		}
		if (p->fe->nallow_upgrade >= (int)ARRAY_SIZE(p->fe->allow_upgrade)) {
			cfg_err(p, p->line, "too many allow-upgrade tokens (at most 4)");
			return -1;
		}
		for (size_t k = 0; k <= n; k++)
			p->fe->allow_upgrade[p->fe->nallow_upgrade][k] = (char)tolower((unsigned char)argv[i][k]);
		p->fe->nallow_upgrade++;
	}
	return 0;
}

/* The method of a persist line as written (cookie for insert and prefix). */
static const char *persist_method(enum persist_kind k)
{
	static const char *const m[] = {
		[PERSIST_COOKIE] = "cookie", [PERSIST_PREFIX] = "cookie", [PERSIST_LEARN] = "learn",
		[PERSIST_SOURCE] = "source", [PERSIST_HEADER] = "header",
		[PERSIST_URLPARAM] = "url-param", [PERSIST_JWT] = "jwt",
	};
	return (unsigned)k < ARRAY_SIZE(m) ? m[k] : "";
}

/*
 * A second `persist` line of the same method and key as an earlier one
 * never answers (the earlier one always answers first) and only doubles
 * the work: refused, with where the first one is. A cookie NAME is one
 * key whether inserted or prefixed; jwt lines differ by where the token
 * is read (`from header|cookie NAME`).
 */
static int persist_duplicate(struct cfg_parser *p, int argc, char **argv)
{
	const struct persist_rules *rs = p->be->persist;
	bool named = strcmp(argv[1], "source") != 0;
	const char *name = named && argc > 2 ? argv[2] : "";
	const char *from = "", *from_name = "";

	for (int i = 3; i + 2 < argc; i++)
		if (strcmp(argv[i], "from") == 0) {
			from = argv[i + 1];
			from_name = argv[i + 2];
		}
	for (int i = 0; rs && i < rs->n; i++) {
		const struct persist_rule *r = &rs->r[i];

		if (strcmp(persist_method(r->kind), argv[1]) != 0 || strcmp(r->name, name) != 0)
			continue;
		if (r->kind == PERSIST_JWT &&
		    (strcmp(r->jwt_from_header, strcmp(from, "header") ? "" : from_name) ||
		     strcmp(r->jwt_from_cookie, strcmp(from, "cookie") ? "" : from_name)))
			continue;
		char at[320];

		cfg_err(p, p->line, "duplicate 'persist %s%s%s' (first at %s): a second line of "
			"the same method and key never answers", argv[1], named ? " " : "", name,
			cfg_ref(p, p->line, r->line, at, sizeof(at)));
		return -1;
	}
	return 0;
}

/* persist METHOD ...: the methods and their options live with the code
 * that implements them (persist.c). */
static int kw_persist(struct cfg_parser *p, int argc, char **argv)
{
	char buf[160];

	if (persist_duplicate(p, argc, argv) < 0)
		return -1;
	const char *e = persist_parse(p->be, p->line, argc, argv, buf, sizeof(buf));

	if (e) {
		cfg_err(p, p->line, "%s", e);
		return -1;
	}
	return 0;
}

static int kw_retries(struct cfg_parser *p, int argc, char **argv)
{
	uint32_t v;

	if (arg_uint(p, "retries", argv[1], 0, 100, &v) < 0)
		return -1;
	if (p->sect == CFG_S_DEFAULTS)
		p->def.retries = v;
	else
		p->be->retries = v;
	return 0;
}

static int kw_mode(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const m[] = { "http", "tcp" };
	int i = cfg_choice(argv[1], m, ARRAY_SIZE(m));

	if (i < 0)
		return cfg_err_choice(p, "unknown mode", argv[1], m, ARRAY_SIZE(m));
	if (i == MODE_TCP) {
		cfg_err(p, p->line, "mode tcp is not yet supported");
		return -1;
	}
	if (p->sect == CFG_S_DEFAULTS)
		p->def.mode = (enum cfg_mode)i;
	if (p->sect & CFG_S_FE)
		p->fe->mode = (enum cfg_mode)i;
	if (p->sect & CFG_S_BE)
		p->be->mode = (enum cfg_mode)i;
	return 0;
}

/* RFC 9110 5.6.2: token = 1*tchar; header and cookie names (RFC 6265 4.1.1
 * cookie-name is a token too) must be tokens or they could never match. */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
			return false;
	}
	return true;
}

/*
 * The FACTOR of "bound FACTOR": a decimal number such as 1.25, from 1 to 100.
 * Below 1 the cap ceil(F x average) could sit under the average and no
 * server could take a new key; it is written as plain digits with at most
 * one '.' so that "1e0", "inf" or "0x2" never slip through strtod().
 */
static int arg_bound(struct cfg_parser *p, const char *s, float *out)
{
	size_t digits = 0, dots = 0;

	for (const char *c = s; *c; c++) {
		if (isdigit((unsigned char)*c))
			digits++;
		else if (*c == '.')
			dots++;
		else {
			digits = 0; /* any other character: refused below */
			break;
		}
	}
	double v = digits && dots <= 1 ? strtod(s, NULL) : -1.0;

	if (v < 1.0 || v > 100.0) {
		cfg_err(p, p->line, "invalid bound '%s' (expected a factor from 1 to 100, e.g. 1.25)", s);
		return -1;
	}
	*out = (float)v;
	return 0;
}

/*
 * balance hash KEY [maglev|ring] [bound FACTOR]
 *   KEY: source | uri | header NAME | cookie NAME | url-param NAME
 * Parses argv[2..argc) into the hash fields of one backend or of the
 * defaults. The algorithm and the bound may come in either order, once each.
 */
static int parse_balance_hash(struct cfg_parser *p, int argc, char **argv,
			      enum lb_hash_key *key, char *name, enum lb_hash_algo *algo,
			      float *bound)
{
	static const char *const keys[] = { "source", "uri", "header", "cookie", "url-param" };
	static const char *const opts[] = { "maglev", "ring", "bound" };
	int i = 2;

	if (argc < 3) {
		cfg_err(p, p->line, "'balance hash' needs a key: source, uri, header NAME, "
			"cookie NAME or url-param NAME");
		return -1;
	}
	int k = cfg_choice(argv[i], keys, ARRAY_SIZE(keys));

	if (k < 0)
		return cfg_err_choice(p, "unknown hash key", argv[i], keys, ARRAY_SIZE(keys));
	i++;
	*key = (enum lb_hash_key)k;
	name[0] = '\0';
	if (k == HASH_KEY_HEADER || k == HASH_KEY_COOKIE || k == HASH_KEY_URLPARAM) {
		if (i >= argc) {
			cfg_err(p, p->line, "'balance hash %s' needs a name", keys[k]);
			return -1;
		}
		const char *nm = argv[i++];
		size_t len = strlen(nm);
		/* A query parameter name is not a token, but '&', '=' and '#'
		 * would end it before it could match. */
		bool ok = k == HASH_KEY_URLPARAM ? len > 0 && !strpbrk(nm, "&=#?") : is_token(nm);

		if (!ok || len >= CFG_NAME_MAX) {
			cfg_err(p, p->line, "invalid %s name '%s' for 'balance hash' (%s, 1..%d characters)",
				keys[k], nm, k == HASH_KEY_URLPARAM ? "no '&', '=', '#', '?'" : "a token",
				CFG_NAME_MAX - 1);
			return -1;
		}
		memcpy(name, nm, len + 1);
	}
	/* maglev by default: constant-time lookup and an even spread (see
	 * doc/balancing.md "Consistent hashing") */
	*algo = HASH_MAGLEV;
	*bound = 0;
	bool seen_algo = false, seen_bound = false;

	for (; i < argc; i++) {
		int o = cfg_choice(argv[i], opts, ARRAY_SIZE(opts));

		if (o < 0)
			return cfg_err_choice(p, "unknown 'balance hash' option", argv[i], opts,
					      ARRAY_SIZE(opts));
		if ((o == 2 && seen_bound) || (o < 2 && seen_algo)) {
			cfg_err(p, p->line, "'balance hash': '%s' given twice", o == 2 ? "bound" : "maglev|ring");
			return -1;
		}
		if (o < 2) {
			seen_algo = true;
			*algo = o == 0 ? HASH_MAGLEV : HASH_RING;
			continue;
		}
		seen_bound = true;
		if (++i >= argc) {
			cfg_err(p, p->line, "'bound' needs a factor, e.g. 'bound 1.25'");
			return -1;
		}
		if (arg_bound(p, argv[i], bound) < 0)
			return -1;
	}
	return 0;
}

static int kw_balance(struct cfg_parser *p, int argc, char **argv)
{
	/* Same order as enum lb_kind. */
	static const char *const algos[] = { "roundrobin", "leastconn", "random", "p2c", "hash" };
	int i = cfg_choice(argv[1], algos, ARRAY_SIZE(algos));
	enum lb_hash_key key = HASH_KEY_SOURCE;
	char name[CFG_NAME_MAX] = "";
	enum lb_hash_algo algo = HASH_MAGLEV;
	float bound = 0;

	if (i < 0) {
		char hint[512];

		if (*cfg_hint(CFG_HINT_BALANCE, argv[1], NULL, hint, sizeof(hint))) {
			cfg_err(p, p->line, "unknown balance algorithm '%s'%s", argv[1], hint);
			return -1;
		}
		return cfg_err_choice(p, "unknown balance algorithm", argv[1], algos, ARRAY_SIZE(algos));
	}
	if (i == LB_HASH) {
		if (parse_balance_hash(p, argc, argv, &key, name, &algo, &bound) < 0)
			return -1;
	} else if (argc > 2) {
		cfg_err(p, p->line, "too many arguments to 'balance %s'", argv[1]);
		return -1;
	}
	if (p->sect == CFG_S_DEFAULTS) {
		p->def.balance = (enum lb_kind)i;
		p->def.hash_key = key;
		memcpy(p->def.hash_key_name, name, sizeof(name));
		p->def.hash_algo = algo;
		p->def.hash_bound = bound;
	} else {
		p->be->balance = (enum lb_kind)i;
		p->be->hash_key = key;
		memcpy(p->be->hash_key_name, name, sizeof(name));
		p->be->hash_algo = algo;
		p->be->hash_bound = bound;
	}
	return 0;
}

/* `bind ADDR [ADDR...] [accept-proxy] [tls OPTIONS]`: an option applies to
 * every address of its line, so that one line says one thing about how
 * clients arrive; everything after `tls` is a TLS option (cfg_tls.c). */
static int kw_bind(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const opts[] = { "accept-proxy", "tls" };
	bool proxy = false;
	int naddr = 0;
	struct tls_bind *tls = NULL;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "tls") == 0) {
			if (cfg_tls_parse(p, argc, argv, i + 1, &tls) < 0)
				return -1;
			argc = i;
			break;
		}
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "accept-proxy") == 0)
			proxy = true;
	for (int i = 1; i < argc; i++) {
		struct cfg_addr a;
		const char *why, *sg;

		if (strcmp(argv[i], "accept-proxy") == 0)
			continue;
		naddr++;
		why = cfg_addr_parse(argv[i], &a);
		if (why) {
			/* A word without ':' is more likely a misspelt option. */
			if (!strchr(argv[i], ':') &&
			    (sg = cfg_suggest(argv[i], opts, ARRAY_SIZE(opts))) != NULL)
				cfg_err(p, p->line, "unknown bind option '%s'; did you mean '%s'?",
					argv[i], sg);
			else
				cfg_err(p, p->line, "invalid address '%s': %s", argv[i], why);
			continue;
		}
		a.accept_proxy = proxy;
		a.tls = tls;
		struct cfg_addr *slot = CFG_PUSH(p, p->fe->binds, p->fe->nbinds);
		struct cfg_bindref *br = slot ? CFG_PUSH(p, p->binds, p->nbinds) : NULL;
		if (!br)
			return -1;
		*slot = a;
		br->fe = p->fe;
		br->idx = p->fe->nbinds - 1;
		br->line = p->line;
	}
	if (naddr == 0) {
		cfg_err(p, p->line, "missing address in 'bind' (usage: bind ADDR [ADDR...] [accept-proxy])");
		return -1;
	}
	return 0;
}

/* The PROXY protocol is a property of a listening address (a client either
 * comes through the proxy in front or it does not), hence a bind option;
 * the old standalone spelling is refused with the way to write it. */
static int kw_accept_proxy(struct cfg_parser *p, int argc, char **argv)
{
	cfg_err(p, p->line, "'accept-proxy' is an option of 'bind': write 'bind ADDR [ADDR...] accept-proxy'");
	return -1;
}

/* `trust-forwarded CIDR...`: several lines accumulate (cidr.c). */
static int kw_trust_forwarded(struct cfg_parser *p, int argc, char **argv)
{
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		char why[128];

		if (cidr_list_add(&p->fe->trusted, argv[i], why, sizeof(why)) < 0) {
			cfg_err(p, p->line, "invalid network '%s' for 'trust-forwarded': %s", argv[i], why);
			rc = -1;
		}
	}
	return rc;
}

static int add_ref(struct cfg_parser *p, int route, const char *name)
{
	if (cfg_check_name(p, "backend", name) < 0)
		return -1;
	struct cfg_ref *r = CFG_PUSH(p, p->refs, p->nrefs);
	if (!r)
		return -1;
	r->fe = p->fe;
	r->route = route;
	r->line = p->line;
	snprintf(r->name, sizeof(r->name), "%s", name);
	return 0;
}

static int kw_default_backend(struct cfg_parser *p, int argc, char **argv)
{
	return add_ref(p, CFG_REF_DEFAULT, argv[1]);
}

static int kw_route(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const kinds[] = { "host", "path-prefix" };
	int k = cfg_choice(argv[1], kinds, ARRAY_SIZE(kinds));
	const char *v = argv[2];

	if (k < 0)
		return cfg_err_choice(p, "unknown route kind", argv[1], kinds, ARRAY_SIZE(kinds));
	if (k == ROUTE_HOST) {
		/* RFC 9110 4.2.3: host names compare case-insensitively; the
		 * value is stored lowercased and matched without the port. */
		size_t n = strlen(v);
		if (n == 0 || n > 253 || strspn(v, "abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n) {
			cfg_err(p, p->line, "invalid host name '%s' in route (letters, digits, '.', '-'; no port)", v);
			return -1;
		}
	} else {
		/* RFC 9112 3.2.1: origin-form starts with '/'; the query is not
		 * part of the path. */
		if (v[0] != '/' || strpbrk(v, "?# \t")) {
			cfg_err(p, p->line, "invalid path prefix '%s' (must start with '/', no '?')", v);
			return -1;
		}
		for (const char *c = v; *c; c++)
			if ((unsigned char)*c < 0x21 || (unsigned char)*c == 0x7f) {
				cfg_err(p, p->line, "invalid path prefix '%s' (control character)", v);
				return -1;
			}
	}
	struct route *r = CFG_PUSH(p, p->fe->routes, p->fe->nroutes);
	if (!r)
		return -1;
	r->kind = (enum route_kind)k;
	r->line = p->line;
	r->value = cfg_strdup(p, v);
	if (!r->value)
		return -1;
	r->len = strlen(v);
	if (k == ROUTE_HOST)
		for (size_t i = 0; i < r->len; i++)
			r->value[i] = (char)tolower((unsigned char)r->value[i]);
	return add_ref(p, p->fe->nroutes - 1, argv[3]);
}

/* Server options: `server NAME ADDR [option [value]]...`. Same shape as the
 * keyword table so that reserved options are refused by name too. */
struct cfg_srv_opt {
	const char *name;
	int nargs;
	bool nys;
};

static const struct cfg_srv_opt cfg_server_opts[] = {
	{ "weight",    1, false },
	{ "maxconn",   1, false },
	{ "backup",    0, false },
	{ "slowstart", 1, false },
	{ "check-interval", 1, false },
	{ "rise",      1, false },
	{ "fall",      1, false },
	{ "no-check",  0, false },
	{ "replica",   1, false },
};

/* A duration of a health check: at least 10 ms (a probe is not a busy
 * loop), at most a day. */
static int arg_check_duration(struct cfg_parser *p, const char *kw, const char *s,
			      uint32_t *out)
{
	if (arg_duration(p, s, out) < 0)
		return -1;
	if (*out < 10 || *out > 86400000) {
		cfg_err(p, p->line, "'%s' %s is out of range (10ms..1d)", kw, s);
		return -1;
	}
	return 0;
}

/* The health-check and slow-start server options (check.c); for no-check,
 * which takes no value, value is the option itself and is not read. */
static int srv_check_opt(struct cfg_parser *p, struct server *s, const char *name,
			 const char *value)
{
	if (strcmp(name, "no-check") == 0) {
		s->no_check = true;
		return 0;
	}
	if (strcmp(name, "slowstart") == 0)
		return arg_duration(p, value, &s->slowstart);
	if (strcmp(name, "check-interval") == 0)
		return arg_check_duration(p, name, value, &s->chk_interval);
	if (strcmp(name, "rise") == 0)
		return arg_uint(p, name, value, 1, 1000, &s->chk_rise);
	return arg_uint(p, name, value, 1, 1000, &s->chk_fall);
}

/*
 * health tcp [OPTIONS]
 * health http METHOD PATH [expect STATUS] [host NAME] [OPTIONS]
 *   OPTIONS: interval D, timeout D, rise N, fall N (any order, once each)
 * What check.c probes every server of this backend with.
 */
static int kw_health(struct cfg_parser *p, int argc, char **argv)
{
	static const char *const kinds[] = { "tcp", "http" };
	static const char *const opts[] = { "interval", "timeout", "rise", "fall", "expect", "host" };
	struct backend *be = p->be;
	int k = cfg_choice(argv[1], kinds, ARRAY_SIZE(kinds));
	unsigned seen = 0;
	int i = 2;

	if (k < 0)
		return cfg_err_choice(p, "unknown health check", argv[1], kinds, ARRAY_SIZE(kinds));
	if (be->hc_kind != CHECK_NONE) {
		cfg_err(p, p->line, "'health' given twice in backend '%s'", be->name);
		return -1;
	}
	if (k == 1) {
		if (argc < 4) {
			cfg_err(p, p->line, "'health http' needs a METHOD and a PATH, e.g. "
				"'health http GET /healthz'");
			return -1;
		}
		/* RFC 9110 9.1: method = token */
		if (!is_token(argv[2]) || strlen(argv[2]) >= sizeof(be->hc_method)) {
			cfg_err(p, p->line, "invalid method '%s' for 'health http' (a token, e.g. GET)",
				argv[2]);
			return -1;
		}
		/* RFC 9112 3.2.1: origin-form, and nothing that would end the
		 * request line early */
		const char *path = argv[3];
		bool ok = path[0] == '/' && strlen(path) < sizeof(be->hc_path);

		for (const char *c = path; ok && *c; c++)
			ok = (unsigned char)*c > 0x20 && (unsigned char)*c != 0x7f;
		if (!ok) {
			cfg_err(p, p->line, "invalid path '%s' for 'health http' (must start with '/', "
				"no spaces or control characters, under %zu bytes)", path,
				sizeof(be->hc_path));
			return -1;
		}
		snprintf(be->hc_method, sizeof(be->hc_method), "%s", argv[2]);
		snprintf(be->hc_path, sizeof(be->hc_path), "%s", path);
		i = 4;
	}
	for (; i < argc; i++) {
		int o = cfg_choice(argv[i], opts, ARRAY_SIZE(opts));
		const char *v;
		uint32_t n;

		if (o < 0 || (k == 0 && o >= 4))
			return cfg_err_choice(p, "unknown 'health' option", argv[i], opts,
					      k == 0 ? 4 : ARRAY_SIZE(opts));
		if (seen & (1u << o)) {
			cfg_err(p, p->line, "'health': '%s' given twice", opts[o]);
			return -1;
		}
		seen |= 1u << o;
		if (++i >= argc) {
			cfg_err(p, p->line, "'health' option '%s' needs a value", opts[o]);
			return -1;
		}
		v = argv[i];
		switch (o) {
		case 0:
			if (arg_check_duration(p, "interval", v, &be->hc_interval) < 0)
				return -1;
			break;
		case 1:
			if (arg_check_duration(p, "timeout", v, &be->hc_timeout) < 0)
				return -1;
			break;
		case 2:
			if (arg_uint(p, "rise", v, 1, 1000, &be->hc_rise) < 0)
				return -1;
			break;
		case 3:
			if (arg_uint(p, "fall", v, 1, 1000, &be->hc_fall) < 0)
				return -1;
			break;
		case 4:
			if (arg_uint(p, "expect", v, 100, 599, &n) < 0)
				return -1;
			be->hc_expect = (int)n;
			break;
		default:
			/* RFC 9110 7.2: Host = uri-host [ ":" port ]; kept to
			 * the characters of a name, an IP literal and a port */
			if (!*v || strlen(v) >= sizeof(be->hc_host) ||
			    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789.-:[]") != strlen(v)) {
				cfg_err(p, p->line, "invalid host '%s' for 'health http'", v);
				return -1;
			}
			snprintf(be->hc_host, sizeof(be->hc_host), "%s", v);
			break;
		}
	}
	be->hc_kind = k == 0 ? CHECK_TCP : CHECK_HTTP;
	return 0;
}

static int kw_server(struct cfg_parser *p, int argc, char **argv)
{
	struct backend *be = p->be;
	struct server *s;
	struct cfg_addr a;
	const char *why;
	int rc = 0;

	if (cfg_addr_parse(argv[1], &a) == NULL) {
		char hint[512];

		cfg_err(p, p->line, "server '%s' has no name (usage: server NAME IP:PORT ...)%s", argv[1],
			cfg_hint(CFG_HINT_SERVER_ARG, "server ADDRESS", NULL, hint, sizeof(hint)));
		return -1;
	}
	if (cfg_check_name(p, "server", argv[1]) < 0)
		return -1;
	if ((why = cfg_addr_parse(argv[2], &a)) != NULL) {
		cfg_err(p, p->line, "invalid server address '%s': %s", argv[2], why);
		return -1;
	}
	if (cfg_addr_is_any(&a)) {
		cfg_err(p, p->line, "invalid server address '%s': a wildcard address cannot be connected to",
			argv[2]);
		return -1;
	}
	for (int i = 0; i < be->nservers; i++) {
		if (strcmp(be->servers[i]->name, argv[1]) == 0) {
			char at[320];

			cfg_err(p, p->line, "duplicate server '%s' in backend '%s' (first at %s)",
				argv[1], be->name, cfg_ref(p, p->line, be->servers[i]->line, at, sizeof(at)));
			return -1;
		}
	}
	if (!(s = cfg_calloc(p, 1, sizeof(*s))))
		return -1;
	snprintf(s->name, sizeof(s->name), "%s", argv[1]);
	s->addr = a;
	s->weight = 100;
	s->line = p->line;
	s->be = be;

	for (int i = 3; i < argc; i++) {
		const struct cfg_srv_opt *o = NULL;
		for (size_t k = 0; k < ARRAY_SIZE(cfg_server_opts); k++)
			if (strcmp(argv[i], cfg_server_opts[k].name) == 0)
				o = &cfg_server_opts[k];
		if (!o) {
			const char *names[ARRAY_SIZE(cfg_server_opts)];
			char hint[512];

			for (size_t k = 0; k < ARRAY_SIZE(cfg_server_opts); k++)
				names[k] = cfg_server_opts[k].name;
			const char *sg = cfg_suggest(argv[i], names, ARRAY_SIZE(names));
			if (*cfg_hint(CFG_HINT_SERVER_OPT, argv[i], NULL, hint, sizeof(hint)))
				cfg_err(p, p->line, "unknown server option '%s'%s", argv[i], hint);
			else if (sg)
				cfg_err(p, p->line, "unknown server option '%s'; did you mean '%s'?", argv[i], sg);
			else
				cfg_err(p, p->line, "unknown server option '%s'", argv[i]);
			rc = -1;
			break;
		}
		if (o->nys) {
			cfg_err(p, p->line, "'%s' is not yet supported", o->name);
			rc = -1;
			i += o->nargs;
			continue;
		}
		if (i + o->nargs >= argc) {
			cfg_err(p, p->line, "server option '%s' needs a value", o->name);
			rc = -1;
			break;
		}
		if (strcmp(o->name, "weight") == 0)
			rc |= arg_uint(p, "weight", argv[i + 1], 0, SRV_WEIGHT_MAX, &s->weight);
		else if (strcmp(o->name, "maxconn") == 0)
			rc |= arg_uint(p, "maxconn", argv[i + 1], 0, 10000000, &s->maxconn);
		else if (strcmp(o->name, "replica") == 0)
			snprintf(s->replica_name, sizeof(s->replica_name), "%s", argv[i + 1]);
		else if (strcmp(o->name, "backup") == 0)
			s->backup = true;
		else
			rc |= srv_check_opt(p, s, o->name, argv[i + o->nargs]);
		i += o->nargs;
	}
	if (rc < 0) {
		free(s);
		return -1;
	}
	struct server **slot = CFG_PUSH(p, be->servers, be->nservers);
	if (!slot) {
		free(s);
		return -1;
	}
	*slot = s;
	s->idx = be->nservers - 1;
	atomic_init(&s->state, SRV_READY);
	atomic_init(&s->cur_weight, s->weight);
	return 0;
}

/* Reserved keywords never reach a parse function. */
#define NYS(name, where, usage) { name, where, NULL, 0, -1, true, usage }

/*
 * THE keyword table: every directive of every section. Each entry: name,
 * sections where it is allowed, parse function, minimum and maximum number
 * of arguments (-1 = any), "not yet supported", usage. doc/config.md
 * documents each name (tests/integ/test_config_doc.py).
 */
const struct cfg_kw cfg_keywords[] = {
	{ "threads",               CFG_S_GLOBAL, kw_threads, 1, 1, false, "threads N|auto" },
	{ "maxconn",               CFG_S_GLOBAL, kw_maxconn, 1, 1, false, "maxconn N" },
	{ "log",                   CFG_S_GLOBAL, kw_log, 1, 8, false, "log stdout|stderr|file PATH|off|syslog [facility F] [tag T] [socket PATH]|udp ADDR [facility F] [tag T]" },
	{ "user",                  CFG_S_GLOBAL, kw_user, 1, 1, false, "user NAME" },
	{ "group",                 CFG_S_GLOBAL, kw_group, 1, 1, false, "group NAME" },
	{ "pidfile",               CFG_S_GLOBAL, kw_pidfile, 1, 1, false, "pidfile PATH" },
	{ "log-format",            CFG_S_GLOBAL, kw_log_format, 1, 1, false, "log-format combined-bollard|combined|json" },
	{ "grace",                 CFG_S_GLOBAL, kw_grace, 1, 1, false, "grace DURATION" },
	{ "admin-socket",          CFG_S_GLOBAL, kw_admin_socket, 1, 1, false, "admin-socket PATH" },
	{ "stats-listen",          CFG_S_GLOBAL, kw_stats_listen, 1, 1, false, "stats-listen ADDR" },
	{ "stats-admin",           CFG_S_GLOBAL, kw_stats_admin, 1, 1, false, "stats-admin on|off" },
	{ "stats-auth",            CFG_S_GLOBAL, kw_stats_auth, 1, 1, false, "stats-auth FILE" },
	{ "stats-host",            CFG_S_GLOBAL, kw_stats_host, 1, -1, false, "stats-host NAME..." },
	{ "secret-file",           CFG_S_GLOBAL, kw_secret_file, 1, 1, false, "secret-file PATH" },
	{ "tls-tickets",           CFG_S_GLOBAL, cfg_kw_tls_tickets, 1, 1, false, "tls-tickets on|off" },
	{ "state-file",            CFG_S_GLOBAL, kw_state_file, 1, 1, false, "state-file PATH" },
	{ "shared-tables",         CFG_S_GLOBAL, kw_shared_tables, 1, -1, false, "shared-tables redis://HOST:PORT/DB [prefix P] [timeout D] [password-file F] [sentinel HOST:PORT,... master NAME]" },
	{ "tune.bufsize",          CFG_S_GLOBAL, kw_bufsize, 1, 1, false, "tune.bufsize SIZE" },
	{ "tune.maxhdr",           CFG_S_GLOBAL, kw_maxhdr, 1, 1, false, "tune.maxhdr N" },
	{ "tune.max-request-line", CFG_S_GLOBAL, kw_max_request_line, 1, 1, false, "tune.max-request-line SIZE" },
	{ "timeout",               CFG_S_PROXY, kw_timeout, 2, 2, false, "timeout KIND DURATION" },
	{ "retries",               CFG_S_DEFAULTS | CFG_S_BE, kw_retries, 1, 1, false, "retries N" },
	{ "mode",                  CFG_S_PROXY, kw_mode, 1, 1, false, "mode http|tcp" },
	{ "balance",               CFG_S_DEFAULTS | CFG_S_BE, kw_balance, 1, -1, false, "balance roundrobin|leastconn|random|p2c|hash KEY [maglev|ring] [bound FACTOR]" },
	{ "bind",                  CFG_S_FE, kw_bind, 1, -1, false, "bind ADDR [ADDR...] [accept-proxy] [tls crt FILE|DIR ...]" },
	{ "trust-forwarded",       CFG_S_FE, kw_trust_forwarded, 1, -1, false, "trust-forwarded CIDR..." },
	{ "redirect",              CFG_S_FE, cfg_kw_redirect, 1, 1, false, "redirect https" },
	{ "hsts",                  CFG_S_FE, cfg_kw_hsts, 2, 4, false, "hsts max-age D [include-subdomains] [preload]" },
	{ "accept-proxy",          CFG_S_FE, kw_accept_proxy, 0, -1, false, "bind ADDR [ADDR...] accept-proxy" },
	{ "default-backend",       CFG_S_FRONTEND, kw_default_backend, 1, 1, false, "default-backend NAME" },
	{ "route",                 CFG_S_FE, kw_route, 3, 3, false, "route host|path-prefix VALUE BACKEND" },
	{ "server",                CFG_S_BE, kw_server, 2, -1, false, "server NAME IP:PORT [weight N] [maxconn N] [backup] [replica SERVER] [slowstart D] [check-interval D] [rise N] [fall N] [no-check]" },
	{ "persist",               CFG_S_BE, kw_persist, 1, -1, false, "persist cookie|learn|source|header|url-param|jwt ..." },
	{ "health",                CFG_S_BE, kw_health, 1, -1, false, "health tcp|http METHOD PATH [expect STATUS] [host NAME] [interval D] [timeout D] [rise N] [fall N]" },
	{ "on-server-down",        CFG_S_DEFAULTS | CFG_S_BE, kw_on_server_down, 1, 1, false, "on-server-down redispatch|replica|fail" },
	{ "allow-upgrade",         CFG_S_FE, kw_allow_upgrade, 1, 4, false, "allow-upgrade TOKEN..." },
	{ "forwarded",             CFG_S_FE, kw_forwarded, 1, 4, false, "forwarded none | x-forwarded-for|x-forwarded-proto|forwarded|x-request-id..." },
};

const size_t cfg_nkeywords = ARRAY_SIZE(cfg_keywords);
