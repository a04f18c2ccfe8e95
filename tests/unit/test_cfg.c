/*
 * test_cfg.c - the configuration reader: value syntaxes (durations, sizes,
 * addresses), a complete valid file, defaults inheritance, listen sections,
 * and every class of error with its exact "FILE:LINE: message" text, since
 * that text is what `bollard check` shows operators.
 */
#include "api.h"
#include "cfg.h"
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

static char cur_path[64];

/* Writes text to a fresh temporary file and loads it. */
static struct config *load(const char *text, char **errs)
{
	snprintf(cur_path, sizeof(cur_path), "/tmp/test_cfg_XXXXXX");
	int fd = mkstemp(cur_path);
	assert_true(fd >= 0);
	size_t n = strlen(text);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	struct config *cfg = cfg_load(cur_path, errs);
	unlink(cur_path);
	return cfg;
}

static struct config *load_ok(const char *text)
{
	char *errs = NULL;
	struct config *cfg = load(text, &errs);
	if (!cfg)
		fprintf(stderr, "unexpected errors:\n%s", errs ? errs : "(none)\n");
	assert_non_null(cfg);
	assert_null(errs);
	return cfg;
}

/* Loads text, which must fail, and returns the error text (caller frees). */
static char *load_bad(const char *text)
{
	char *errs = NULL;
	struct config *cfg = load(text, &errs);
	assert_null(cfg);
	assert_non_null(errs);
	return errs;
}

/* Asserts that errs holds the line "PATH:LINE: msg". */
static void has_err(const char *errs, int line, const char *msg)
{
	char want[512];
	snprintf(want, sizeof(want), "%s:%d: %s\n", cur_path, line, msg);
	if (!strstr(errs, want))
		fprintf(stderr, "missing: %sin:\n%s", want, errs);
	assert_non_null(strstr(errs, want));
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A config that fails with exactly one error at line, text msg. */
static void one_err(const char *text, int line, const char *msg)
{
	char *errs = load_bad(text);
	has_err(errs, line, msg);
	if (count_lines(errs) != 1)
		fprintf(stderr, "expected one error, got:\n%s", errs);
	assert_int_equal(count_lines(errs), 1);
	free(errs);
}

#define FE_OK "frontend web\n    bind 127.0.0.1:18080\n    default-backend app\n"
#define BE_OK "backend app\n    server a1 127.0.0.1:9001\n"

/* ---- value syntaxes ---------------------------------------------------- */

static void test_durations(void **state)
{
	static const struct { const char *s; uint32_t ms; } good[] = {
		{ "500ms", 500 }, { "2s", 2000 }, { "30m", 1800000 }, { "8h", 28800000 },
		{ "7d", 604800000 }, { "0", 0 }, { "0s", 0 }, { "4294967295ms", 4294967295u },
		{ "49d", 4233600000u },
	};
	static const char *const bad[] = {
		"", "5x", "s", "ms", "-1", "+1", "1.5s", "2 s", " 2s", "2S", "2sec",
		"50d", "4294967296", "99999999999999999999999999", "1h1m", "0x10",
		"250", "30", "1.5h", "4294967296ms", "999999999999d", "1.", ".5s", "1.2345s",
		"5m ",
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		uint32_t ms = 1;
		assert_int_equal(cfg_parse_duration(good[i].s, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint32_t ms = 7;
		if (cfg_parse_duration(bad[i], &ms) != -1)
			fprintf(stderr, "accepted bad duration '%s'\n", bad[i]);
		assert_int_equal(cfg_parse_duration(bad[i], &ms), -1);
		assert_int_equal(ms, 7);
	}
}

/* The reasons, as `bollard check` prints them (issue 10 item 5). */
static void test_duration_messages(void **state)
{
	static const struct { const char *what, *s, *why; } cases[] = {
		{ NULL, "30", "invalid duration '30': a unit is needed, e.g. '30s' (ms, s, m, h or d)" },
		{ "max-idle", "30", "invalid duration '30' for 'max-idle': a unit is needed, e.g. '30s' "
		  "(ms, s, m, h or d)" },
		{ NULL, "1.5h", "invalid duration '1.5h': a whole number is needed; write '90m'" },
		{ NULL, "0.5s", "invalid duration '0.5s': a whole number is needed; write '500ms'" },
		{ NULL, "2.25m", "invalid duration '2.25m': a whole number is needed; write '135s'" },
		{ NULL, "1.5ms", "invalid duration '1.5ms': durations are whole milliseconds" },
		{ NULL, "1h1m", "invalid duration '1h1m': one number and one unit; write '61m'" },
		{ NULL, "1d12h", "invalid duration '1d12h': one number and one unit; write '36h'" },
		{ NULL, "5x", "invalid duration '5x': unknown unit 'x' (ms, s, m, h or d)" },
		{ NULL, "2sec", "invalid duration '2sec': unknown unit 'sec' (ms, s, m, h or d)" },
		{ NULL, "50d", "invalid duration '50d': too large (the maximum is 49d)" },
		{ NULL, "999999999999d", "invalid duration '999999999999d': too large (the maximum is 49d)" },
		{ NULL, "soon", "invalid duration 'soon' (use e.g. 500ms, 2s, 1m)" },
		{ NULL, "-1s", "invalid duration '-1s' (use e.g. 500ms, 2s, 1m)" },
	};
	char why[256];
	uint32_t ms = 7;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *w = cfg_duration_check(cases[i].what, cases[i].s, &ms, why, sizeof(why));
		assert_non_null(w);
		assert_string_equal(w, cases[i].why);
		assert_int_equal(ms, 7);
	}
	assert_null(cfg_duration_check("grace", "0", &ms, why, sizeof(why)));
	assert_int_equal(ms, 0);
}

static void test_sizes(void **state)
{
	static const struct { const char *s; uint64_t b; } good[] = {
		{ "16k", 16384 }, { "16K", 16384 }, { "1m", 1048576 }, { "1M", 1048576 },
		{ "1g", 1073741824 }, { "4096", 4096 }, { "0", 0 },
	};
	static const char *const bad[] = {
		"", "k", "16kb", "-1", "1t", "1.5k", "16 k", "99999999999999999999g",
		"18014398509481984k",
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		uint64_t b = 1;
		assert_int_equal(cfg_parse_size(good[i].s, &b), 0);
		assert_int_equal(b, good[i].b);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t b = 7;
		assert_int_equal(cfg_parse_size(bad[i], &b), -1);
		assert_int_equal(b, 7);
	}
}

static uint16_t port_of(const struct cfg_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static void test_addresses(void **state)
{
	struct cfg_addr a;
	char buf[64];

	assert_int_equal(cfg_parse_addr("127.0.0.1:8080", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(a.len, sizeof(struct sockaddr_in));
	assert_int_equal(port_of(&a), 8080);
	assert_string_equal(a.text, "127.0.0.1:8080");
	inet_ntop(AF_INET, &((struct sockaddr_in *)&a.ss)->sin_addr, buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1");

	assert_int_equal(cfg_parse_addr("*:8080", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(port_of(&a), 8080);
	assert_string_equal(a.text, "*:8080");

	assert_int_equal(cfg_parse_addr(":81", &a), 0);
	assert_int_equal(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(port_of(&a), 81);

	assert_int_equal(cfg_parse_addr("[::1]:8080", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_equal(a.len, sizeof(struct sockaddr_in6));
	assert_true(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&a.ss)->sin6_addr));
	assert_int_equal(port_of(&a), 8080);

	assert_int_equal(cfg_parse_addr("[::]:65535", &a), 0);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&a.ss)->sin6_addr));
	assert_int_equal(port_of(&a), 65535);

	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:80x", "localhost:80", "example.com:443", "::1:80", "[::1]",
		"[::1]80", "[::1:80", "[]:80", "[zz]:80", "1.2.3:80", "1.2.3.4.5:80",
		"256.0.0.1:80", "127.0.0.1:-1", ("01234567890123456789012345678901234567890"
		"1234567890123456789012345678901234567890:80"),
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (cfg_parse_addr(bad[i], &a) != -1)
			fprintf(stderr, "accepted bad address '%s'\n", bad[i]);
		assert_int_equal(cfg_parse_addr(bad[i], &a), -1);
	}
}

static void test_names(void **state)
{
	assert_string_equal(srv_state_name(SRV_READY), "ready");
	assert_string_equal(srv_state_name(SRV_DRAIN), "drain");
	assert_string_equal(srv_state_name(SRV_MAINT), "maint");
	assert_string_equal(srv_state_name(SRV_DOWN), "down");
	assert_string_equal(srv_state_name(42), "unknown");
	assert_string_equal(srv_state_name(-1), "unknown");
	assert_string_equal(lb_kind_name(LB_ROUNDROBIN), "roundrobin");
	assert_string_equal(lb_kind_name(LB_LEASTCONN), "leastconn");
	assert_string_equal(lb_kind_name(LB_RANDOM), "random");
	assert_string_equal(lb_kind_name(LB_P2C), "p2c");
}

/* ---- valid configurations --------------------------------------------- */

static void test_full_config(void **state)
{
	struct config *cfg = load_ok(
		"# a complete configuration\n"
		"global\n"
		"    threads 3\n"
		"    maxconn 5000\n"
		"\tadmin-socket ./bollard.sock   # comment\n"
		"    stats-listen 127.0.0.1:18404\n"
		"    state-file ./bollard.state\n"
		"    secret-file \"./my key#1\"\n"
		"    log file /tmp/bollard.log\n"
		"    log-format json\n"
		"    grace 3s\n"
		"    tune.bufsize 32k\n"
		"    tune.maxhdr 50\n"
		"    tune.max-request-line 4k\n"
		"\n"
		"defaults\n"
		"    timeout connect 1s\n"
		"    timeout client 20s\n"
		"    timeout server 25s\n"
		"    timeout http-request 5s\n"
		"    timeout http-keep-alive 2s\n"
		"    timeout queue 3s\n"
		"    timeout tunnel 2h\n"
		"    retries 3\n"
		"    mode http\n"
		"    balance leastconn\n"
		"\n"
		"frontend web\n"
		"    bind 127.0.0.1:18080 [::1]:18080\n"
		"    bind *:18081\n"
		"    mode http\n"
		"    default-backend app\n"
		"    route path-prefix /api api\n"
		"    route host Shop.Example.COM app\n"
		"    timeout client 10s\n"
		"\n"
		"backend app\n"
		"    balance random\n"
		"    server app1 127.0.0.1:9001 weight 50 maxconn 1000\n"
		"    server app2 127.0.0.1:9002\n"
		"    server spare [::1]:9009 backup weight 0\n"
		"    timeout server 1m\n"
		"    retries 0\n"
		"\n"
		"backend api\n"
		"    server api1 127.0.0.1:9101\n");

	assert_int_equal(cfg->threads, 3);
	assert_int_equal(cfg->maxconn, 5000);
	assert_string_equal(cfg->admin_socket, "./bollard.sock");
	assert_true(cfg->has_stats);
	assert_string_equal(cfg->stats_listen.text, "127.0.0.1:18404");
	assert_string_equal(cfg->state_file, "./bollard.state");
	assert_string_equal(cfg->secret_file, "./my key#1");
	assert_int_equal(cfg->log_target, LOG_TARGET_FILE);
	assert_string_equal(cfg->log_path, "/tmp/bollard.log");
	assert_int_equal(cfg->log_format, LOG_FORMAT_JSON);
	assert_int_equal(cfg->grace, 3000);
	assert_int_equal(cfg->bufsize, 32768);
	assert_int_equal(cfg->maxhdr, 50);
	assert_int_equal(cfg->max_request_line, 4096);
	assert_string_equal(cfg->file, cur_path);

	assert_int_equal(cfg->nfrontends, 1);
	struct frontend *fe = cfg->frontends[0];
	assert_string_equal(fe->name, "web");
	assert_int_equal(fe->idx, 0);
	assert_int_equal(fe->line, 28);
	assert_int_equal(fe->nbinds, 3);
	assert_string_equal(fe->binds[0].text, "127.0.0.1:18080");
	assert_string_equal(fe->binds[1].text, "[::1]:18080");
	assert_string_equal(fe->binds[2].text, "*:18081");
	assert_int_equal(fe->mode, MODE_HTTP);
	assert_int_equal(fe->to.client, 10000);
	assert_int_equal(fe->to.http_request, 5000);
	assert_int_equal(fe->to.http_keep_alive, 2000);

	assert_int_equal(cfg->nbackends, 2);
	struct backend *app = cfg_find_backend(cfg, "app");
	struct backend *api = cfg_find_backend(cfg, "api");
	assert_non_null(app);
	assert_non_null(api);
	assert_null(cfg_find_backend(cfg, "nope"));
	assert_ptr_equal(fe->default_be, app);
	assert_int_equal(fe->nroutes, 2);
	assert_int_equal(fe->routes[0].kind, ROUTE_PATH_PREFIX);
	assert_string_equal(fe->routes[0].value, "/api");
	assert_int_equal(fe->routes[0].len, 4);
	assert_ptr_equal(fe->routes[0].be, api);
	assert_int_equal(fe->routes[0].line, 33);
	assert_int_equal(fe->routes[1].kind, ROUTE_HOST);
	assert_string_equal(fe->routes[1].value, "shop.example.com");
	assert_ptr_equal(fe->routes[1].be, app);

	assert_int_equal(app->idx, 0);
	assert_int_equal(api->idx, 1);
	assert_int_equal(app->balance, LB_RANDOM);
	assert_int_equal(api->balance, LB_LEASTCONN);
	assert_int_equal(app->retries, 0);
	assert_int_equal(api->retries, 3);
	assert_int_equal(app->to.server, 60000);
	assert_int_equal(api->to.server, 25000);
	assert_int_equal(app->to.connect, 1000);
	assert_int_equal(app->to.queue, 3000);
	assert_int_equal(app->to.tunnel, 7200000);
	assert_int_equal(app->nservers, 3);

	struct server *s = cfg_find_server(app, "app1");
	assert_non_null(s);
	assert_ptr_equal(s, app->servers[0]);
	assert_int_equal(s->idx, 0);
	assert_ptr_equal(s->be, app);
	assert_int_equal(s->weight, 50);
	assert_int_equal(s->maxconn, 1000);
	assert_false(s->backup);
	assert_int_equal(s->line, 39);
	assert_int_equal(atomic_load(&s->state), SRV_READY);
	assert_int_equal(atomic_load(&s->cur_weight), 50);
	assert_string_equal(s->addr.text, "127.0.0.1:9001");

	s = cfg_find_server(app, "app2");
	assert_int_equal(s->weight, 100);
	assert_int_equal(atomic_load(&s->cur_weight), 100);
	assert_int_equal(s->maxconn, 0);
	s = cfg_find_server(app, "spare");
	assert_true(s->backup);
	assert_int_equal(s->weight, 0);
	assert_int_equal(s->idx, 2);
	assert_int_equal(s->addr.ss.ss_family, AF_INET6);
	assert_null(cfg_find_server(app, "api1"));
	cfg_free(cfg);
}

static void test_builtin_defaults(void **state)
{
	struct config *cfg = load_ok(FE_OK BE_OK);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	assert_int_equal(cfg->threads, cpus < 1 ? 1 : cpus > 64 ? 64 : cpus);
	assert_int_equal(cfg->bufsize, 16384);
	assert_int_equal(cfg->maxhdr, 100);
	assert_int_equal(cfg->max_request_line, 8192);
	assert_int_equal(cfg->log_target, LOG_TARGET_STDOUT);
	assert_int_equal(cfg->log_format, LOG_FORMAT_COMBINED_BOLLARD);
	assert_null(cfg->admin_socket);
	assert_null(cfg->state_file);
	assert_null(cfg->secret_file);
	assert_false(cfg->has_stats);

	struct backend *be = cfg->backends[0];
	struct frontend *fe = cfg->frontends[0];
	assert_int_equal(be->to.connect, 2000);
	assert_int_equal(be->to.server, 30000);
	assert_int_equal(be->to.queue, 5000);
	assert_int_equal(be->to.tunnel, 3600000);
	assert_int_equal(fe->to.client, 30000);
	assert_int_equal(fe->to.http_request, 10000);
	assert_int_equal(fe->to.http_keep_alive, 5000);
	assert_int_equal(be->retries, 2);
	assert_int_equal(be->mode, MODE_HTTP);
	assert_int_equal(be->balance, LB_ROUNDROBIN);
	cfg_free(cfg);
}

static void test_defaults_inheritance(void **state)
{
	/* Defaults apply to what follows; a new defaults section starts again
	 * from the built-in values (HAProxy semantics). */
	struct config *cfg = load_ok(
		"backend before\n"
		"    server s 127.0.0.1:9001\n"
		"defaults\n"
		"    timeout server 7s\n"
		"    retries 5\n"
		"    balance p2c\n"
		"backend middle\n"
		"    server s 127.0.0.1:9001\n"
		"frontend web\n"
		"    bind 127.0.0.1:18080\n"
		"    default-backend middle\n"
		"    route host a.example before\n"
		"    route host b.example after\n"
		"defaults\n"
		"    timeout connect 9s\n"
		"backend after\n"
		"    server s 127.0.0.1:9001\n");
	struct backend *before = cfg_find_backend(cfg, "before");
	struct backend *middle = cfg_find_backend(cfg, "middle");
	struct backend *after = cfg_find_backend(cfg, "after");

	assert_int_equal(before->to.server, 30000);
	assert_int_equal(before->retries, 2);
	assert_int_equal(before->balance, LB_ROUNDROBIN);
	assert_int_equal(middle->to.server, 7000);
	assert_int_equal(middle->retries, 5);
	assert_int_equal(middle->balance, LB_P2C);
	assert_int_equal(after->to.server, 30000);
	assert_int_equal(after->to.connect, 9000);
	assert_int_equal(after->retries, 2);
	assert_int_equal(after->balance, LB_ROUNDROBIN);
	assert_ptr_equal(cfg->frontends[0]->routes[1].be, after);
	cfg_free(cfg);
}

static void test_listen(void **state)
{
	struct config *cfg = load_ok(
		"defaults\n"
		"    timeout client 11s\n"
		"listen shop\n"
		"    bind 127.0.0.1:18080\n"
		"    balance leastconn\n"
		"    timeout client 12s\n"
		"    timeout server 13s\n"
		"    retries 1\n"
		"    route path-prefix /static static\n"
		"    server a 127.0.0.1:9001\n"
		"    server b 127.0.0.1:9002 weight 256\n"
		"backend static\n"
		"    server s 127.0.0.1:9003\n");

	assert_int_equal(cfg->nfrontends, 1);
	assert_int_equal(cfg->nbackends, 2);
	struct frontend *fe = cfg->frontends[0];
	struct backend *be = cfg_find_backend(cfg, "shop");
	assert_string_equal(fe->name, "shop");
	assert_non_null(be);
	assert_ptr_equal(fe->default_be, be);
	assert_int_equal(be->balance, LB_LEASTCONN);
	assert_int_equal(be->nservers, 2);
	assert_int_equal(be->servers[1]->weight, 256);
	assert_int_equal(be->retries, 1);
	assert_int_equal(fe->to.client, 12000);
	assert_int_equal(be->to.server, 13000);
	assert_ptr_equal(fe->routes[0].be, cfg_find_backend(cfg, "static"));
	cfg_free(cfg);
}

static void test_tokenizer(void **state)
{
	struct config *cfg = load_ok(
		"global # comment after a header\n"
		"  admin-socket \"/tmp/a \\\"b\\\" \\\\c\"\n"
		"  state-file pre\"fix # not a comment\"post#comment\n"
		"  secret-file \"\"x\n"
		"\r\n"
		"   # indented comment\n"
		"# column-0 comment\n"
		FE_OK BE_OK);
	assert_string_equal(cfg->admin_socket, "/tmp/a \"b\" \\c");
	assert_string_equal(cfg->state_file, "prefix # not a commentpost");
	assert_string_equal(cfg->secret_file, "x");
	cfg_free(cfg);

	/* CRLF line ends are accepted. */
	cfg = load_ok("frontend web\r\n    bind 127.0.0.1:18080\r\n    default-backend app\r\n"
		      "backend app\r\n    server a1 127.0.0.1:9001\r\n");
	assert_string_equal(cfg->frontends[0]->binds[0].text, "127.0.0.1:18080");
	cfg_free(cfg);

	one_err("global\n  admin-socket \"/tmp/a\n" FE_OK BE_OK, 2, "unterminated quoted string");
	one_err("global\n  admin-socket \"/tmp/\\a\"\n" FE_OK BE_OK, 2,
		"invalid escape in quoted string (only \\\" and \\\\)");
}

/* ---- errors -------------------------------------------------------------- */

static void test_err_unknown_keyword(void **state)
{
	one_err(FE_OK BE_OK "    blance roundrobin\n", 6,
		"unknown keyword 'blance' in backend section; did you mean 'balance'?");
	one_err(FE_OK BE_OK "    sever a2 127.0.0.1:9002\n", 6,
		"unknown keyword 'sever' in backend section; did you mean 'server'?");
	one_err("global\n    mxaconn 10\n" FE_OK BE_OK, 2,
		"unknown keyword 'mxaconn' in global section; did you mean 'maxconn'?");
	one_err("frontend web\n    bnid 127.0.0.1:18080\n    bind 127.0.0.1:18080\n"
		"    default-backend app\n" BE_OK, 2,
		"unknown keyword 'bnid' in frontend section; did you mean 'bind'?");
	one_err(FE_OK BE_OK "    frobnicate yes\n", 6,
		"unknown keyword 'frobnicate' in backend section");
	/* A near name reserved for later is suggested too. */
	one_err(FE_OK BE_OK "    presist cookie X insert\n", 6,
		"unknown keyword 'presist' in backend section; did you mean 'persist'?");
}

static void test_err_wrong_section(void **state)
{
	one_err(FE_OK BE_OK "    bind 127.0.0.1:18081\n", 6,
		"'bind' is not allowed in a backend section (allowed in: frontend, listen)");
	one_err("global\n    balance roundrobin\n" FE_OK BE_OK, 2,
		"'balance' is not allowed in a global section (allowed in: defaults, backend, listen)");
	one_err("defaults\n    log-format json\n" FE_OK BE_OK, 2,
		"'log-format' is not allowed in a defaults section (allowed in: global)");
	one_err("frontend web\n    bind 127.0.0.1:18080\n    default-backend app\n"
		"    timeout server 5s\n" BE_OK, 4,
		"'timeout server' belongs in a backend section, not a frontend");
	one_err(FE_OK BE_OK "    timeout client 5s\n", 6,
		"'timeout client' belongs in a frontend section, not a backend");
	one_err(FE_OK BE_OK "listen x\n    bind 127.0.0.1:18081\n    default-backend app\n"
		"    server s 127.0.0.1:9001\n", 8,
		"'default-backend' is not allowed in a listen section (allowed in: frontend)");
	one_err("    threads 2\n" FE_OK BE_OK, 1,
		"'threads' outside of any section (start one with global, defaults, frontend NAME, "
		"backend NAME or listen NAME)");
	one_err(FE_OK BE_OK "server a2 127.0.0.1:9002\n    server a3 127.0.0.1:9003\n", 6,
		"'server' must be indented under a section header");
}

static void test_err_sections(void **state)
{
	one_err("fronted web\n    bind 127.0.0.1:18080\n" FE_OK BE_OK, 1,
		"unknown section 'fronted'; did you mean 'frontend'?");
	one_err("nonsense\n" FE_OK BE_OK, 1,
		"unknown section 'nonsense' (expected one of: global, defaults, frontend, backend, listen)");
	one_err("global extra\n" FE_OK BE_OK, 1, "'global' takes no name");
	one_err(FE_OK BE_OK "backend\n", 6, "'backend' needs exactly one name: backend NAME");
	one_err(FE_OK BE_OK "backend a b\n", 6, "'backend' needs exactly one name: backend NAME");
	one_err(FE_OK BE_OK "backend a/b\n", 6,
		"invalid backend name 'a/b' (use letters, digits, '_', '-', '.')");
	one_err(FE_OK BE_OK "backend app\n    server z 127.0.0.1:9009\n", 6,
		"duplicate backend 'app' (first defined at line 4)");
	one_err(FE_OK BE_OK "frontend web\n    bind 127.0.0.1:18081\n", 6,
		"duplicate frontend 'web' (first defined at line 1)");
	one_err(FE_OK BE_OK "listen app\n    bind 127.0.0.1:18081\n", 6,
		"duplicate backend 'app' (first defined at line 4)");
}

static void test_err_values(void **state)
{
	one_err(FE_OK BE_OK "    timeout connect 5x\n", 6,
		"invalid duration '5x': unknown unit 'x' (ms, s, m, h or d)");
	one_err(FE_OK BE_OK "    timeout connect 60d\n", 6,
		"invalid duration '60d': too large (the maximum is 49d)");
	/* bare numbers (issue 10 item 5): a unit is needed; for timeouts, the
	 * spelling that keeps HAProxy's meaning */
	one_err(FE_OK BE_OK "    timeout connect 5000\n", 6,
		"invalid duration '5000' for 'timeout connect': a unit is needed; HAProxy reads a "
		"bare number as milliseconds: write '5000ms' (or '5s')");
	one_err(FE_OK BE_OK "    timeout server 1500\n", 6,
		"invalid duration '1500' for 'timeout server': a unit is needed; HAProxy reads a "
		"bare number as milliseconds: write '1500ms'");
	one_err(FE_OK BE_OK "    timeout queue 1.5h\n", 6,
		"invalid duration '1.5h': a whole number is needed; write '90m'");
	one_err("global\n    grace 30\n" FE_OK BE_OK, 2,
		"invalid duration '30': a unit is needed, e.g. '30s' (ms, s, m, h or d)");
	one_err(FE_OK BE_OK "    persist cookie B insert max-idle 30\n", 6,
		"invalid duration '30' for 'max-idle': a unit is needed, e.g. '30s' (ms, s, m, h or d)");
	one_err(FE_OK BE_OK "    persist source expire 1.5h\n", 6,
		"invalid duration '1.5h' for 'expire': a whole number is needed; write '90m'");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 slowstart 30\n", 6,
		"invalid duration '30': a unit is needed, e.g. '30s' (ms, s, m, h or d)");
	cfg_free(load_ok("global\n    grace 0\n" FE_OK BE_OK));
	one_err(FE_OK BE_OK "    timeout connect 0\n", 6,
		"'timeout connect' must be greater than 0");
	one_err(FE_OK BE_OK "    timeout conect 1s\n", 6,
		"unknown timeout 'conect'; did you mean 'connect'?");
	one_err(FE_OK BE_OK "    balance rondrobin\n", 6,
		"unknown balance algorithm 'rondrobin'; did you mean 'roundrobin'?");
	one_err(FE_OK BE_OK "    balance roundrobin extra\n", 6,
		"too many arguments to 'balance roundrobin'");
	one_err(FE_OK BE_OK "    retries many\n", 6,
		"invalid value 'many' for 'retries' (expected a number 0..100)");
	one_err("global\n    threads 65\n" FE_OK BE_OK, 2,
		"invalid value '65' for 'threads' (expected a number 1..64)");
	one_err("global\n    threads 0\n" FE_OK BE_OK, 2,
		"invalid value '0' for 'threads' (expected a number 1..64)");
	one_err("global\n    tune.bufsize 1k\n" FE_OK BE_OK, 2,
		"'tune.bufsize' 1k is out of range (4096..1048576 bytes)");
	one_err("global\n    tune.bufsize 16kb\n" FE_OK BE_OK, 2,
		"invalid size '16kb' (use e.g. 16384, 16k, 1m)");
	one_err("global\n    tune.maxhdr 257\n" FE_OK BE_OK, 2,
		"invalid value '257' for 'tune.maxhdr' (expected a number 1..256)");
	one_err("global\n    tune.bufsize 4k\n" FE_OK BE_OK, 2,
		"tune.max-request-line (8192) must not exceed tune.bufsize (4096)");
	one_err("global\n    log sislog\n" FE_OK BE_OK, 2,
		"unknown log target 'sislog'; did you mean 'syslog'?");
	one_err("global\n    log syslog facility local9\n" FE_OK BE_OK, 2,
		"unknown syslog facility 'local9'; did you mean 'local0'?");
	one_err("global\n    log syslog tag a/b\n" FE_OK BE_OK, 2,
		"invalid syslog tag 'a/b' (1..32 of letters, digits, '-', '_', '.')");
	one_err("global\n    log syslog facility\n" FE_OK BE_OK, 2,
		"missing value after 'facility' (expected: log syslog [facility F] [tag T] [socket PATH])");
	one_err("global\n    log udp 127.0.0.1:514 socket /dev/log\n" FE_OK BE_OK, 2,
		"unknown option 'socket' (expected: log udp ADDR [facility F] [tag T])");
	one_err("global\n    log udp\n" FE_OK BE_OK, 2, "'log udp' needs an ADDR (e.g. 127.0.0.1:514)");
	one_err("global\n    log udp loghost:514\n" FE_OK BE_OK, 2,
		"invalid address 'loghost:514': hostnames are not resolved; use an IP address");
	one_err("global\n    user no-such-user-here\n" FE_OK BE_OK, 2,
		"unknown user 'no-such-user-here' (create it, e.g. useradd --system no-such-user-here)");
	one_err("global\n    group no-such-group-here\n" FE_OK BE_OK, 2,
		"unknown group 'no-such-group-here'");
	one_err("global\n    log file\n" FE_OK BE_OK, 2, "'log file' needs a PATH");
	one_err("global\n    log stdout extra\n" FE_OK BE_OK, 2, "too many arguments to 'log stdout'");
	one_err("global\n    log-format jsn\n" FE_OK BE_OK, 2,
		"unknown log format 'jsn'; did you mean 'json'?");
	one_err("global\n    stats-listen localhost:8404\n" FE_OK BE_OK, 2,
		"invalid address 'localhost:8404': hostnames are not resolved; use an IP address");
	one_err("global\n    admin-socket /tmp/0123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789\n"
		FE_OK BE_OK, 2, "admin-socket path is too long (max 107 bytes)");
	one_err("global\n    maxconn\n" FE_OK BE_OK, 2,
		"missing arguments to 'maxconn' (usage: maxconn N)");
	one_err("global\n    maxconn 1 2\n" FE_OK BE_OK, 2,
		"too many arguments to 'maxconn' (usage: maxconn N)");
	one_err(FE_OK BE_OK "    mode websocket\n", 6,
		"unknown mode 'websocket' (expected one of: http, tcp)");
}

static void test_err_addresses(void **state)
{
	one_err("frontend web\n    bind 127.0.0.1\n    bind 127.0.0.1:18080\n"
		"    default-backend app\n" BE_OK, 2,
		"invalid address '127.0.0.1': missing port (use IP:PORT)");
	one_err("frontend web\n    bind ::1:80\n    bind 127.0.0.1:18080\n"
		"    default-backend app\n" BE_OK, 2,
		"invalid address '::1:80': an IPv6 address must be in brackets, e.g. [::1]:8080");
	one_err(FE_OK "backend app\n    server a1 app1.internal:9001\n    server a2 127.0.0.1:9002\n", 5,
		"invalid server address 'app1.internal:9001': hostnames are not resolved; use an IP address");
	one_err(FE_OK "backend app\n    server a1 127.0.0.1:99999\n    server a2 127.0.0.1:9002\n", 5,
		"invalid server address '127.0.0.1:99999': invalid port (1..65535)");
	one_err(FE_OK "backend app\n    server a1 *:9001\n    server a2 127.0.0.1:9002\n", 5,
		"invalid server address '*:9001': a wildcard address cannot be connected to");
	/* Every bad address of a bind line is reported. */
	char *errs = load_bad("frontend web\n    bind 1.2.3:80 [::1]:8 x:1\n"
			      "    bind 127.0.0.1:18080\n    default-backend app\n" BE_OK);
	has_err(errs, 2, "invalid address '1.2.3:80': invalid IPv4 address");
	has_err(errs, 2, "invalid address 'x:1': hostnames are not resolved; use an IP address");
	assert_int_equal(count_lines(errs), 2);
	free(errs);
}

/* issue 10 item 5: a second persist line of the same method and key is refused. */
static void test_err_duplicate_persist(void **state)
{
	one_err(FE_OK BE_OK "    persist source\n    persist source mask4 24\n", 7,
		"duplicate 'persist source' (first at line 6): a second line of the same method "
		"and key never answers");
	one_err(FE_OK BE_OK "    persist cookie B insert\n    persist cookie B prefix\n", 7,
		"duplicate 'persist cookie B' (first at line 6): a second line of the same method "
		"and key never answers");
	one_err(FE_OK BE_OK "    persist learn JSESSIONID\n    persist learn JSESSIONID expire 5m\n", 7,
		"duplicate 'persist learn JSESSIONID' (first at line 6): a second line of the same "
		"method and key never answers");
	one_err(FE_OK BE_OK "    persist jwt sub from header A\n    persist jwt sub from header A\n", 7,
		"duplicate 'persist jwt sub' (first at line 6): a second line of the same method "
		"and key never answers");
	/* different keys, or the same key read elsewhere, are not duplicates */
	cfg_free(load_ok(FE_OK BE_OK "    persist cookie B insert\n    persist cookie C insert\n"
			 "    persist learn JSESSIONID\n    persist learn PHPSESSID\n"
			 "    persist header X-User\n    persist url-param sid\n    persist source\n"
			 "    persist jwt sub\n"));
	cfg_free(load_ok(FE_OK BE_OK "    persist jwt sub\n    persist jwt sub from header A\n"
			 "    persist jwt sub from cookie A\n    persist header X-Tenant\n"));
}

/* issue 10 item 5: a refused server line is its own error, not also
 * "has no server". */
static void test_err_no_follow_on(void **state)
{
	one_err(FE_OK "backend app\n    server a1 127.0.0.1:99999\n", 5,
		"invalid server address '127.0.0.1:99999': invalid port (1..65535)");
	one_err(FE_OK "backend app\n    server a1\n", 5,
		"missing arguments to 'server' (usage: server NAME IP:PORT [weight N] [maxconn N] "
		"[backup] [replica SERVER] [slowstart D] [check-interval D] [rise N] [fall N] [no-check] [tls [verify none|required] [ca FILE] [sni NAME] [alpn http/1.1]])");
	one_err(FE_OK "backend app\n", 4, "backend 'app' has no server");
}

static void test_err_servers(void **state)
{
	one_err(FE_OK BE_OK "    server a1 127.0.0.1:9002\n", 6,
		"duplicate server 'a1' in backend 'app' (first at line 5)");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 wieght 5\n", 6,
		"unknown server option 'wieght'; did you mean 'weight'?");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 check\n", 6,
		"unknown server option 'check'; HAProxy's 'server ... check' is 'health tcp|http ...' "
		"in bollard (one line for the backend: every server of it is checked)");
	/* weights 0..1000000 (issue 9 item 18) */
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 weight 1000001\n", 6,
		"invalid value '1000001' for 'weight' (expected a number 0..1000000)");
	struct config *cfg = load_ok(FE_OK BE_OK "    server a2 127.0.0.1:9002 weight 1000000\n"
				     "    server a3 127.0.0.1:9003 weight 300\n");
	assert_int_equal(cfg->backends[0]->servers[1]->weight, 1000000);
	assert_int_equal(cfg->backends[0]->servers[2]->weight, 300);
	cfg_free(cfg);
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 weight\n", 6,
		"server option 'weight' needs a value");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 maxconn -1\n", 6,
		"invalid value '-1' for 'maxconn' (expected a number 0..10000000)");
	one_err(FE_OK BE_OK "    server a/2 127.0.0.1:9002\n", 6,
		"invalid server name 'a/2' (use letters, digits, '_', '-', '.')");
	one_err(FE_OK BE_OK "    server a2\n", 6,
		"missing arguments to 'server' (usage: server NAME IP:PORT [weight N] [maxconn N] [backup] [replica SERVER] [slowstart D] [check-interval D] [rise N] [fall N] [no-check] [tls [verify none|required] [ca FILE] [sni NAME] [alpn http/1.1]])");
}

/* issue 10 item 4: an HAProxy or NGINX word gets the bollard equivalent,
 * from the one table of cfg_hint.c, wherever it is met. */
static void test_migration_hints(void **state)
{
	one_err("global\n    nbthread 4\n" FE_OK BE_OK, 2,
		"unknown keyword 'nbthread' in global section; HAProxy's 'nbthread' is 'threads N' in bollard");
	one_err("global\n    stats socket /run/haproxy.sock mode 600\n" FE_OK BE_OK, 2,
		"unknown keyword 'stats' in global section; HAProxy's 'stats socket' is 'admin-socket PATH' "
		"in bollard (the runtime API, used by 'bollard ctl')");
	one_err("global\n    stats enable\n" FE_OK BE_OK, 2,
		"unknown keyword 'stats' in global section; HAProxy's 'stats' is 'stats-listen ADDR' in "
		"bollard (dashboard at /, Prometheus metrics at /metrics; 'stats-auth FILE' for users)");
	one_err(FE_OK BE_OK "    balance source\n", 6,
		"unknown balance algorithm 'source'; HAProxy's 'balance source' is 'balance hash source' in "
		"bollard (or 'persist source' to keep each client on its server)");
	one_err(FE_OK BE_OK "    balance hdr(Host)\n", 6,
		"unknown balance algorithm 'hdr(Host)'; HAProxy's 'balance hdr(NAME)' is 'balance hash header "
		"NAME' in bollard");
	one_err(FE_OK BE_OK "    cookie SRV insert indirect nocache\n", 6,
		"unknown keyword 'cookie' in backend section; HAProxy's 'cookie' is 'persist cookie NAME "
		"insert' in bollard (or 'persist cookie NAME prefix' to prefix the application's own "
		"cookie; servers are named by their name, nothing to set per server)");
	one_err(FE_OK BE_OK "    stick-table type ip size 1m expire 30m\n", 6,
		"unknown keyword 'stick-table' in backend section; HAProxy's 'stick-table' is 'persist "
		"source|header NAME|url-param NAME [size N] [expire D]' in bollard (each persist line has "
		"its own table)");
	one_err(FE_OK BE_OK "    stick on src\n", 6,
		"unknown keyword 'stick' in backend section; HAProxy's 'stick on' is 'persist source' in "
		"bollard (for 'src'; req.cook(NAME) is 'persist learn NAME', req.hdr(NAME) 'persist header NAME')");
	one_err(FE_OK BE_OK "    option redispatch\n", 6,
		"unknown keyword 'option' in backend section; HAProxy's 'option redispatch' is "
		"'on-server-down redispatch' in bollard (the default)");
	char *errs = load_bad("frontend web\n    bind 127.0.0.1:18080\n    default_backend app\n" BE_OK);
	has_err(errs, 3, "unknown keyword 'default_backend' in frontend section; HAProxy's "
		"'default_backend' is 'default-backend NAME' in bollard");
	free(errs);
	one_err(FE_OK BE_OK "    timeout check 2s\n", 6,
		"unknown timeout 'check'; HAProxy's 'timeout check' is 'health ... timeout D' in bollard");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 weight 10 inter 2s\n", 6,
		"unknown server option 'inter'; HAProxy's 'server ... inter' is 'check-interval D' in bollard");
	/* NGINX */
	one_err("upstream app {\n" FE_OK BE_OK, 1,
		"unknown section 'upstream'; NGINX's 'upstream' is 'backend NAME' in bollard (a section "
		"header at column 0, its lines indented, no braces)");
	one_err("worker_processes 4;\n" FE_OK BE_OK, 1,
		"unknown section 'worker_processes'; NGINX's 'worker_processes' is 'threads N' in bollard "
		"(in the global section)");
	one_err(FE_OK BE_OK "    ip_hash;\n", 6,
		"unknown keyword 'ip_hash;' in backend section; NGINX's 'ip_hash' is 'persist source' in "
		"bollard (or 'balance hash source')");
	one_err("frontend web\n    listen 80;\n    bind 127.0.0.1:18080\n    default-backend app\n" BE_OK, 2,
		"unknown keyword 'listen' in frontend section; NGINX's 'listen' is 'bind ADDR' in bollard "
		"('listen NAME' at column 0 starts a frontend and a backend in one section)");
	one_err(FE_OK BE_OK "    sticky cookie srv_id expires=1h;\n", 6,
		"unknown keyword 'sticky' in backend section; NGINX's 'sticky cookie' is 'persist cookie "
		"NAME insert' in bollard (expires= is max-age D)");
	one_err(FE_OK BE_OK "    server 127.0.0.1:9002 weight=5;\n", 6,
		"server '127.0.0.1:9002' has no name (usage: server NAME IP:PORT ...); NGINX's 'server "
		"ADDRESS' is 'server NAME IP:PORT' in bollard (a server has a name, used by the runtime "
		"API and in cookies)");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 weight=5\n", 6,
		"unknown server option 'weight=5'; NGINX's 'server ... weight=N' is 'weight N' in bollard");
	one_err("global\n    daemon\n" FE_OK BE_OK, 2,
		"unknown keyword 'daemon' in global section; HAProxy's 'daemon' is not needed in bollard: "
		"bollard runs in the foreground; a service manager runs it (contrib/bollard.service)");
	/* a near bollard name still gets its suggestion */
	one_err(FE_OK BE_OK "    blance roundrobin\n", 6,
		"unknown keyword 'blance' in backend section; did you mean 'balance'?");
}

static void test_err_cross_checks(void **state)
{
	one_err("frontend web\n    default-backend app\n" BE_OK, 1, "frontend 'web' has no bind");
	one_err("frontend web\n    bind 127.0.0.1:18080\n" BE_OK, 1,
		"frontend 'web' has no default-backend");
	one_err("listen web\n    server a 127.0.0.1:9001\n", 1, "listen 'web' has no bind");
	one_err("frontend web\n    bind 127.0.0.1:18080\n    default-backend ap\n" BE_OK, 3,
		"unknown backend 'ap'; did you mean 'app'?");
	one_err(FE_OK BE_OK "frontend w2\n    bind 127.0.0.1:18081\n    default-backend zzz\n", 8,
		"unknown backend 'zzz'");
	one_err("frontend web\n    bind 127.0.0.1:18080\n    default-backend app\n"
		"    route host a.example nope\n" BE_OK, 4, "unknown backend 'nope'");
	one_err(FE_OK "backend app\n", 4, "backend 'app' has no server");
	one_err("listen web\n    bind 127.0.0.1:18080\n", 1, "listen 'web' has no server");
	/* An unused empty backend is fine (servers may be added at run time). */
	struct config *cfg = load_ok(FE_OK BE_OK "backend spare\n");
	cfg_free(cfg);
	one_err(FE_OK BE_OK "frontend w2\n    bind 127.0.0.1:18080\n    default-backend app\n", 7,
		"bind 127.0.0.1:18080 conflicts with bind 127.0.0.1:18080 of frontend 'web' at line 2");
	one_err(FE_OK BE_OK "frontend w2\n    bind *:18080\n    default-backend app\n", 7,
		"bind *:18080 conflicts with bind 127.0.0.1:18080 of frontend 'web' at line 2");
	one_err("frontend web\n    bind 127.0.0.1:18080\n    bind 127.0.0.1:18080\n"
		"    default-backend app\n" BE_OK, 3,
		"bind 127.0.0.1:18080 overlaps bind 127.0.0.1:18080 at line 2 of the same frontend");
	one_err("global\n    stats-listen 127.0.0.1:18080\n" FE_OK BE_OK, 4,
		"bind 127.0.0.1:18080 conflicts with stats-listen 127.0.0.1:18080 at line 2");
	/* Different ports, families or addresses do not collide. */
	cfg = load_ok(FE_OK BE_OK "frontend w2\n    bind 127.0.0.2:18080 [::]:18080 127.0.0.1:18081\n"
		      "    default-backend app\n");
	cfg_free(cfg);
	one_err("route path-prefix /x y\n", 1,
		"'route' must be indented under a section header");
	one_err("", 0, "no frontend or listen section: nothing to do");
}

static void test_err_routes(void **state)
{
	one_err(FE_OK BE_OK "frontend w2\n    bind 127.0.0.1:18081\n    default-backend app\n"
		"    route path-prefix api app\n", 9,
		"invalid path prefix 'api' (must start with '/', no '?')");
	one_err(FE_OK BE_OK "frontend w2\n    bind 127.0.0.1:18081\n    default-backend app\n"
		"    route host a_b.example app\n", 9,
		"invalid host name 'a_b.example' in route (letters, digits, '.', '-'; no port)");
	one_err(FE_OK BE_OK "frontend w2\n    bind 127.0.0.1:18081\n    default-backend app\n"
		"    route hots a.example app\n", 9,
		"unknown route kind 'hots'; did you mean 'host'?");
	one_err(FE_OK BE_OK "frontend w2\n    bind 127.0.0.1:18081\n    default-backend app\n"
		"    route host a.example\n", 9,
		"missing arguments to 'route' (usage: route host|path-prefix VALUE BACKEND)");
}

/* balance hash KEY [maglev|ring] [bound FACTOR] (SPEC 3) */
static void test_balance_hash(void **state)
{
	struct config *cfg = load_ok(
		"defaults\n"
		"    balance hash cookie SID ring bound 1.5\n"
		FE_OK
		"backend app\n"
		"    server a1 127.0.0.1:9001\n"
		"backend b_source\n"
		"    balance hash source\n"
		"    server a1 127.0.0.1:9001\n"
		"backend b_uri\n"
		"    balance hash uri ring\n"
		"    server a1 127.0.0.1:9001\n"
		"backend b_header\n"
		"    balance hash header X-User-Id bound 1.25 maglev\n"
		"    server a1 127.0.0.1:9001\n"
		"backend b_param\n"
		"    balance hash url-param user bound 2\n"
		"    server a1 127.0.0.1:9001\n"
		"backend b_rr\n"
		"    balance roundrobin\n"
		"    server a1 127.0.0.1:9001\n");
	struct backend *be = cfg_find_backend(cfg, "app");

	/* inherited from defaults */
	assert_int_equal(be->balance, LB_HASH);
	assert_string_equal(lb_kind_name(be->balance), "hash");
	assert_int_equal(be->hash_key, HASH_KEY_COOKIE);
	assert_string_equal(be->hash_key_name, "SID");
	assert_int_equal(be->hash_algo, HASH_RING);
	assert_true(be->hash_bound == 1.5f);
	assert_null(be->hash_state); /* built by lb_hash_build(), not by cfg */

	be = cfg_find_backend(cfg, "b_source");
	assert_int_equal(be->balance, LB_HASH);
	assert_int_equal(be->hash_key, HASH_KEY_SOURCE);
	assert_string_equal(be->hash_key_name, "");
	assert_int_equal(be->hash_algo, HASH_MAGLEV); /* the default */
	assert_true(be->hash_bound == 0);

	be = cfg_find_backend(cfg, "b_uri");
	assert_int_equal(be->hash_key, HASH_KEY_URI);
	assert_int_equal(be->hash_algo, HASH_RING);

	be = cfg_find_backend(cfg, "b_header");
	assert_int_equal(be->hash_key, HASH_KEY_HEADER);
	assert_string_equal(be->hash_key_name, "X-User-Id");
	assert_int_equal(be->hash_algo, HASH_MAGLEV);
	assert_true(be->hash_bound == 1.25f);

	be = cfg_find_backend(cfg, "b_param");
	assert_int_equal(be->hash_key, HASH_KEY_URLPARAM);
	assert_string_equal(be->hash_key_name, "user");
	assert_true(be->hash_bound == 2.0f);

	be = cfg_find_backend(cfg, "b_rr");
	assert_int_equal(be->balance, LB_ROUNDROBIN);
	assert_true(be->hash_bound == 0);
	cfg_free(cfg);

	/* a later defaults section starts again from roundrobin */
	cfg = load_ok("defaults\n    balance hash uri\ndefaults\n" FE_OK BE_OK);
	assert_int_equal(cfg->backends[0]->balance, LB_ROUNDROBIN);
	cfg_free(cfg);
}

static void test_err_balance_hash(void **state)
{
	one_err(FE_OK BE_OK "    balance hash\n", 6,
		"'balance hash' needs a key: source, uri, header NAME, cookie NAME or url-param NAME");
	one_err(FE_OK BE_OK "    balance hash sourse\n", 6,
		"unknown hash key 'sourse'; did you mean 'source'?");
	one_err(FE_OK BE_OK "    balance hash header\n", 6, "'balance hash header' needs a name");
	one_err(FE_OK BE_OK "    balance hash cookie\n", 6, "'balance hash cookie' needs a name");
	one_err(FE_OK BE_OK "    balance hash url-param\n", 6, "'balance hash url-param' needs a name");
	one_err(FE_OK BE_OK "    balance hash header X(y)\n", 6,
		"invalid header name 'X(y)' for 'balance hash' (a token, 1..63 characters)");
	one_err(FE_OK BE_OK "    balance hash url-param a=b\n", 6,
		"invalid url-param name 'a=b' for 'balance hash' (no '&', '=', '#', '?', 1..63 characters)");
	one_err(FE_OK BE_OK "    balance hash source magelv\n", 6,
		"unknown 'balance hash' option 'magelv'; did you mean 'maglev'?");
	one_err(FE_OK BE_OK "    balance hash source ring maglev\n", 6,
		"'balance hash': 'maglev|ring' given twice");
	one_err(FE_OK BE_OK "    balance hash source bound 1.2 bound 1.3\n", 6,
		"'balance hash': 'bound' given twice");
	one_err(FE_OK BE_OK "    balance hash uri bound\n", 6,
		"'bound' needs a factor, e.g. 'bound 1.25'");
	const char *bad[] = { "0.9", "0", "abc", "1e1", "1.2.3", "-1.5", "101", ".", "inf", "" };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char text[256], msg[160];

		snprintf(text, sizeof(text), FE_OK BE_OK "    balance hash uri bound \"%s\"\n", bad[i]);
		snprintf(msg, sizeof(msg),
			 "invalid bound '%s' (expected a factor from 1 to 100, e.g. 1.25)", bad[i]);
		one_err(text, 6, msg);
	}
	/* the other algorithms still take no argument */
	one_err(FE_OK BE_OK "    balance p2c source\n", 6, "too many arguments to 'balance p2c'");
}

/* `trust-forwarded CIDR...` (lines accumulate) and `bind ... accept-proxy`
 * (per line), with the standalone spelling refused with the right one. */
static void test_forwarded_proxy(void **state)
{
	struct config *cfg = load_ok(
		"frontend web\n"
		"    bind 127.0.0.1:18080 [::1]:18080 accept-proxy\n"
		"    bind 127.0.0.1:18081\n"
		"    bind accept-proxy 127.0.0.1:18082\n"
		"    trust-forwarded 10.0.0.0/8 192.168.1.1\n"
		"    trust-forwarded 2001:db8::/32\n"
		"    default-backend app\n"
		"frontend other\n"
		"    bind 127.0.0.1:18083\n"
		"    default-backend app\n"
		"listen both\n"
		"    bind 127.0.0.1:18084 accept-proxy\n"
		"    trust-forwarded ::1\n"
		"    server s 127.0.0.1:9003\n"
		BE_OK);
	struct frontend *fe = cfg->frontends[0];
	assert_int_equal(fe->nbinds, 4);
	assert_true(fe->binds[0].accept_proxy);
	assert_true(fe->binds[1].accept_proxy);
	assert_false(fe->binds[2].accept_proxy);
	assert_true(fe->binds[3].accept_proxy);
	assert_string_equal(fe->binds[3].text, "127.0.0.1:18082");
	assert_int_equal(cidr_list_len(fe->trusted), 3);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.9.8.7", &sin.sin_addr);
	assert_true(cidr_match(fe->trusted, (struct sockaddr_storage *)&sin));
	inet_pton(AF_INET, "192.168.1.2", &sin.sin_addr);
	assert_false(cidr_match(fe->trusted, (struct sockaddr_storage *)&sin));
	assert_null(cfg->frontends[1]->trusted);
	assert_false(cfg->frontends[1]->binds[0].accept_proxy);
	assert_true(cfg->frontends[2]->binds[0].accept_proxy);
	assert_int_equal(cidr_list_len(cfg->frontends[2]->trusted), 1);
	cfg_free(cfg);

	one_err(FE_OK "    accept-proxy\n" BE_OK, 4,
		"'accept-proxy' is an option of 'bind': write 'bind ADDR [ADDR...] accept-proxy'");
	one_err(FE_OK "    trust-forwarded 10.0.0.0/33\n" BE_OK, 4,
		"invalid network '10.0.0.0/33' for 'trust-forwarded': prefix length 33 is larger than 32");
	one_err(FE_OK "    trust-forwarded ::/129\n" BE_OK, 4,
		"invalid network '::/129' for 'trust-forwarded': prefix length 129 is larger than 128");
	one_err(FE_OK "    trust-forwarded proxy.internal\n" BE_OK, 4,
		"invalid network 'proxy.internal' for 'trust-forwarded': "
		"'proxy.internal' is not an IPv4 or IPv6 address");
	one_err(FE_OK "    trust-forwarded\n" BE_OK, 4,
		"missing arguments to 'trust-forwarded' (usage: trust-forwarded CIDR...)");
	one_err(FE_OK BE_OK "    trust-forwarded 10.0.0.0/8\n", 6,
		"'trust-forwarded' is not allowed in a backend section (allowed in: frontend, listen)");
	one_err(FE_OK "    bind 127.0.0.1:18081 accept-prxy\n" BE_OK, 4,
		"unknown bind option 'accept-prxy'; did you mean 'accept-proxy'?");
	one_err(FE_OK "    bind accept-proxy\n" BE_OK, 4,
		"missing address in 'bind' (usage: bind ADDR [ADDR...] [accept-proxy])");
	/* every bad network of a line is reported */
	char *errs = load_bad(FE_OK "    trust-forwarded 1.2.3.4/8x 10.0.0.0/8 ::g\n" BE_OK);
	has_err(errs, 4, "invalid network '1.2.3.4/8x' for 'trust-forwarded': invalid prefix length '8x'");
	has_err(errs, 4, "invalid network '::g' for 'trust-forwarded': '::g' is not an IPv4 or IPv6 address");
	assert_int_equal(count_lines(errs), 2);
	free(errs);
}

static void test_not_yet_supported(void **state)
{
	one_err(FE_OK BE_OK "    persist tls-session\n", 6,
		"'persist tls-session' needs mode tcp, which is not yet supported");
	/* health and slowstart are supported now (check.c) */
	one_err(FE_OK BE_OK "    health udp\n", 6,
		"unknown health check 'udp'; did you mean 'tcp'?");
	one_err(FE_OK BE_OK "    on-server-down redirect\n", 6,
		"on-server-down 'redirect' (expected one of: redispatch, replica, fail)");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 replica nobody\n", 6,
		"replica 'nobody' is not a server of backend 'app'");
	/* 'balance hash' is supported now: see test_balance_hash */
	char *ok_hash = NULL;
	struct config *hc = load(FE_OK BE_OK "    balance hash source\n", &ok_hash);
	assert_non_null(hc);
	assert_null(ok_hash);
	cfg_free(hc);
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 slowstart soon\n", 6,
		"invalid duration 'soon' (use e.g. 500ms, 2s, 1m)");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:9002 replica a2\n", 6,
		"server 'a2' cannot be its own replica");
	one_err(FE_OK BE_OK "    mode tcp\n", 6, "mode tcp is not yet supported");
	/* allow-upgrade, trust-forwarded and bind ... accept-proxy are
	 * supported now: see test_forwarded_proxy for the latter two. */
	one_err("global\n    stats-auth /nonexistent/bollard-auth\n" FE_OK BE_OK, 2,
		"stats-auth /nonexistent/bollard-auth: No such file or directory");
	/* secret-file is checked as a start would load it (issue 10 item 2) */
	one_err("global\n    secret-file /nonexistent/dir/bollard.key\n" FE_OK BE_OK, 2,
		"secret-file /nonexistent/dir/bollard.key: cannot create: /nonexistent/dir: "
		"No such file or directory");
	char key[64], want[160];
	snprintf(key, sizeof(key), "/tmp/test_cfg_key_%d", (int)getpid());
	int fd = open(key, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "00\n", 3), 3);
	close(fd);
	assert_int_equal(chmod(key, 0640), 0);
	char text[256];
	snprintf(text, sizeof(text), "global\n    secret-file %s\n" FE_OK BE_OK, key);
	snprintf(want, sizeof(want), "secret-file %s is readable by others (mode 0640); chmod 600 it", key);
	one_err(text, 2, want);
	assert_int_equal(chmod(key, 0600), 0);
	snprintf(want, sizeof(want), "%s:1: a key is 64 hex digits, this line has 2 characters", key);
	one_err(text, 2, want);
	unlink(key);
}

static void test_all_errors_reported(void **state)
{
	char *errs = load_bad(
		"global\n"
		"    threads lots\n"
		"    tune.maxhdr 0\n"
		"frontend web\n"
		"    bind 127.0.0.1:18080\n"
		"    default-backend missing\n"
		"backend app\n"
		"    blance roundrobin\n"
		"    server a1 127.0.0.1:9001 weight x\n"
		"    persist sourc\n");
	has_err(errs, 2, "invalid value 'lots' for 'threads' (expected a number 1..64)");
	has_err(errs, 3, "invalid value '0' for 'tune.maxhdr' (expected a number 1..256)");
	has_err(errs, 6, "unknown backend 'missing'");
	has_err(errs, 8, "unknown keyword 'blance' in backend section; did you mean 'balance'?");
	has_err(errs, 9, "invalid value 'x' for 'weight' (expected a number 0..1000000)");
	has_err(errs, 10, "unknown persistence method 'sourc' (cookie, learn, source, header, url-param, jwt)");
	assert_int_equal(count_lines(errs), 6);
	/* In file order, although line 6 was only checked after the pass. */
	assert_true(strstr(errs, "unknown backend 'missing'") < strstr(errs, "'blance'"));
	assert_true(strstr(errs, "'threads'") < strstr(errs, "unknown backend 'missing'"));
	free(errs);

	/* The list is capped so that a wrong file does not flood the terminal. */
	char *big = malloc(100 * 16 + 32);
	assert_non_null(big);
	strcpy(big, "global\n");
	for (int i = 0; i < 100; i++)
		strcat(big, "    bogus 1\n");
	errs = load_bad(big);
	assert_int_equal(count_lines(errs), 51);
	has_err(errs, 51, "too many errors, stopping");
	free(errs);
	free(big);
}

static void test_missing_file(void **state)
{
	char *errs = NULL;
	assert_null(cfg_load("/nonexistent/bollard.conf", &errs));
	assert_string_equal(errs,
		"/nonexistent/bollard.conf:0: cannot open configuration: No such file or directory\n");
	free(errs);
	/* errs may be NULL when the caller only wants success or failure. */
	assert_null(cfg_load("/nonexistent/bollard.conf", NULL));
	cfg_free(NULL);
}

/* log syslog|udp options, user, group, pidfile (issue 10 item 7) */
static void test_process_and_syslog(void **state)
{
	struct config *cfg = load_ok("global\n    log syslog facility local3 tag edge-1 socket /tmp/x.sock\n"
				     "    user root\n    group root\n    pidfile /run/b.pid\n" FE_OK BE_OK);

	(void)state;
	assert_int_equal(cfg->log_target, LOG_TARGET_SYSLOG);
	assert_int_equal(cfg->log_facility, 19);
	assert_string_equal(cfg->log_tag, "edge-1");
	assert_string_equal(cfg->log_socket, "/tmp/x.sock");
	assert_string_equal(cfg->user, "root");
	assert_string_equal(cfg->group, "root");
	assert_string_equal(cfg->pidfile, "/run/b.pid");
	cfg_free(cfg);
	cfg = load_ok("global\n    log udp 127.0.0.1:5514\n" FE_OK BE_OK);
	assert_int_equal(cfg->log_target, LOG_TARGET_UDP);
	assert_int_equal(cfg->log_facility, 3);          /* daemon */
	assert_string_equal(cfg->log_tag, "bollard");
	assert_string_equal(cfg->log_udp.text, "127.0.0.1:5514");
	assert_null(cfg->log_socket);
	assert_null(cfg->user);
	cfg_free(cfg);
}

/* A line is capped (the reader's memory stays bounded whatever the file
 * holds) and the lines after it are still read. */
static void test_long_lines(void **state)
{
	size_t n = 70000;
	char *text = malloc(n + 256);

	assert_non_null(text);
	strcpy(text, "global\n    threads ");
	size_t off = strlen(text);
	memset(text + off, '1', n);
	strcpy(text + off + n, "\n    bogus 1\n" FE_OK BE_OK);
	char *errs = load_bad(text);
	has_err(errs, 2, "line longer than 65536 bytes");
	has_err(errs, 3, "unknown keyword 'bogus' in global section");
	assert_int_equal(count_lines(errs), 2);
	free(errs);

	/* exactly at the bound is a line like any other */
	strcpy(text, "global\n    #");
	off = strlen(text);
	memset(text + off, 'x', 65536 - 5);
	strcpy(text + off + 65536 - 5, "\n" FE_OK BE_OK);
	cfg_free(load_ok(text));

	/* a last line without its LF, too long, is reported at its line */
	strcpy(text, "global\n");
	off = strlen(text);
	memset(text + off, '#', n);
	text[off + n] = '\0';
	errs = load_bad(text);
	has_err(errs, 2, "line longer than 65536 bytes");
	free(errs);
	free(text);
}

/* Only regular files are read: /dev/zero never ends and a FIFO blocks
 * until a writer comes; both are refused at once. */
static void test_not_regular_files(void **state)
{
	char *errs = NULL;
	char fifo[64];

	assert_null(cfg_load("/dev/zero", &errs));
	assert_string_equal(errs, "/dev/zero:0: cannot read configuration: a character device, "
			    "not a regular file\n");
	free(errs);
	assert_null(cfg_load("/", &errs));
	assert_string_equal(errs, "/:0: cannot read configuration: a directory, not a regular file\n");
	free(errs);
	snprintf(fifo, sizeof(fifo), "/tmp/test_cfg_fifo_%d", (int)getpid());
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_null(cfg_load(fifo, &errs));
	unlink(fifo);
	assert_non_null(strstr(errs, ":0: cannot read configuration: a FIFO, not a regular file\n"));
	free(errs);
}

/* ---- include and environment variables (issue 10 item 6) ------------- */

static char inc_dir[64];

/* Writes text to inc_dir/name (making conf.d/ when name is in it). */
static void put(const char *name, const char *text)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/conf.d", inc_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%s", inc_dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void inc_setup(void)
{
	snprintf(inc_dir, sizeof(inc_dir), "/tmp/test_cfg_inc_XXXXXX");
	assert_non_null(mkdtemp(inc_dir));
}

static void inc_teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", inc_dir);
	assert_int_equal(system(cmd), 0);
}

/* Loads inc_dir/main.conf; returns the errors (caller frees) or NULL. */
static char *load_main(struct config **out)
{
	char path[128], *errs = NULL;

	snprintf(path, sizeof(path), "%s/main.conf", inc_dir);
	*out = cfg_load(path, &errs);
	return errs;
}

/* errs holds "inc_dir/NAME:LINE: msg". */
static void has_err_in(const char *errs, const char *name, int line, const char *msg)
{
	char want[600];

	snprintf(want, sizeof(want), "%s/%s:%d: %s\n", inc_dir, name, line, msg);
	if (!strstr(errs, want))
		fprintf(stderr, "missing: %sin:\n%s", want, errs);
	assert_non_null(strstr(errs, want));
}

static void test_include(void **state)
{
	struct config *cfg;
	char *errs;

	inc_setup();
	/* a file, and a pattern whose matches come in sorted order; their lines
	 * read as if written in place of the include line */
	put("main.conf", FE_OK "include app.conf\n    server a3 127.0.0.1:9003\n"
	    "include conf.d/*.conf\n");
	put("app.conf", "backend app\n    server a1 127.0.0.1:9001\n");
	put("conf.d/20-b.conf", "    server a4 127.0.0.1:9004\n");
	put("conf.d/10-a.conf", "    server a2 127.0.0.1:9002\n");
	put("conf.d/ignored.txt", "bogus\n");
	errs = load_main(&cfg);
	assert_null(errs);
	assert_non_null(cfg);
	struct backend *be = cfg_find_backend(cfg, "app");
	assert_non_null(be);
	assert_int_equal(be->nservers, 4);
	assert_string_equal(be->servers[0]->name, "a1");
	assert_string_equal(be->servers[1]->name, "a3");
	assert_string_equal(be->servers[2]->name, "a2");
	assert_string_equal(be->servers[3]->name, "a4");
	cfg_free(cfg);

	/* errors name the included file and its line, in reading order; lines
	 * of the main file after an include keep their numbers */
	put("main.conf", FE_OK "include app.conf\n    bogus 1\ninclude conf.d/*.conf\n"
	    "include nope.conf\ninclude conf.d/none-*.conf\nbackend app\n");
	put("app.conf", "backend app\n    server a1 127.0.0.1:9001\n    wieght 1\n");
	put("conf.d/10-a.conf", "    server a1 127.0.0.1:9002\n");
	put("conf.d/20-b.conf", "frontend web\n    bind 127.0.0.1:18080\n");
	errs = load_main(&cfg);
	assert_null(cfg);
	has_err_in(errs, "app.conf", 3, "unknown keyword 'wieght' in backend section");
	has_err_in(errs, "main.conf", 5, "unknown keyword 'bogus' in backend section");
	char want[400];
	snprintf(want, sizeof(want), "%s/conf.d/10-a.conf:1: duplicate server 'a1' in backend 'app' "
		 "(first at %s/app.conf:2)\n", inc_dir, inc_dir);
	assert_non_null(strstr(errs, want));
	snprintf(want, sizeof(want), "%s/conf.d/20-b.conf:1: duplicate frontend 'web' (first defined "
		 "at %s/main.conf:1)\n", inc_dir, inc_dir);
	assert_non_null(strstr(errs, want));
	snprintf(want, sizeof(want), "cannot open included file '%s/nope.conf': No such file or "
		 "directory", inc_dir);
	has_err_in(errs, "main.conf", 7, want);
	snprintf(want, sizeof(want), "duplicate backend 'app' (first defined at %s/app.conf:1)", inc_dir);
	has_err_in(errs, "main.conf", 9, want);
	assert_int_equal(count_lines(errs), 6);
	assert_true(strstr(errs, "app.conf:3") < strstr(errs, "main.conf:5"));
	assert_true(strstr(errs, "main.conf:5") < strstr(errs, "10-a.conf:1"));
	free(errs);
	inc_teardown();
}

static void test_include_loops(void **state)
{
	struct config *cfg;
	char *errs, want[400];

	inc_setup();
	put("main.conf", FE_OK BE_OK "include a.conf\n");
	put("a.conf", "include b.conf\n");
	put("b.conf", "include a.conf\ninclude main.conf\n");
	errs = load_main(&cfg);
	assert_null(cfg);
	snprintf(want, sizeof(want), "include loop: %s/a.conf is already being read (included at "
		 "%s/main.conf:6)", inc_dir, inc_dir);
	has_err_in(errs, "b.conf", 1, want);
	snprintf(want, sizeof(want), "include loop: %s/main.conf is already being read (included at "
		 "the top)", inc_dir);
	has_err_in(errs, "b.conf", 2, want);
	assert_int_equal(count_lines(errs), 2);
	free(errs);

	put("main.conf", FE_OK BE_OK "include\n");
	errs = load_main(&cfg);
	has_err_in(errs, "main.conf", 6, "missing arguments to 'include' (usage: include "
		   "FILE|PATTERN...)");
	free(errs);

	/* a pattern may match nothing, but its directory must exist */
	put("main.conf", FE_OK BE_OK "include conf.d/*.none\ninclude nodir/*.conf\n");
	errs = load_main(&cfg);
	snprintf(want, sizeof(want), "include %s/nodir/*.conf: %s/nodir: No such file or directory",
		 inc_dir, inc_dir);
	has_err_in(errs, "main.conf", 7, want);
	assert_int_equal(count_lines(errs), 1);
	free(errs);
	inc_teardown();
}

static void test_env_vars(void **state)
{
	setenv("BOLLARD_TEST_ADDR", "127.0.0.1:18099", 1);
	setenv("BOLLARD_TEST_EMPTY", "", 1);
	unsetenv("BOLLARD_TEST_UNSET");
	struct config *cfg = load_ok("frontend web\n    bind ${BOLLARD_TEST_ADDR}\n"
				     "    default-backend app\n"
				     "backend app\n    server a1 127.0.0.1:${BOLLARD_TEST_UNSET:-9001}\n"
				     "    server a2 127.0.0.1:${BOLLARD_TEST_EMPTY:-9002} weight 5\n"
				     "    health http GET /x$${y}$z\n");
	assert_string_equal(cfg->frontends[0]->binds[0].text, "127.0.0.1:18099");
	assert_string_equal(cfg->backends[0]->servers[0]->addr.text, "127.0.0.1:9001");
	assert_string_equal(cfg->backends[0]->servers[1]->addr.text, "127.0.0.1:9002");
	assert_string_equal(cfg->backends[0]->hc_path, "/x${y}$z");
	cfg_free(cfg);

	/* a value stays one word whatever the variable holds */
	setenv("BOLLARD_TEST_TWO", "a2 weight", 1);
	one_err(FE_OK BE_OK "    server ${BOLLARD_TEST_TWO} 127.0.0.1:9002\n", 6,
		"invalid server name 'a2 weight' (use letters, digits, '_', '-', '.')");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:${BOLLARD_TEST_UNSET}\n", 6,
		"environment variable 'BOLLARD_TEST_UNSET' is not set (write "
		"${BOLLARD_TEST_UNSET:-default} to give a default)");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:${BOLLARD_TEST_ADDR\n", 6,
		"unterminated '${' in '127.0.0.1:${BOLLARD_TEST_ADDR' (write ${NAME} or ${NAME:-default})");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:${1X}\n", 6,
		"invalid variable '${1X}' in '127.0.0.1:${1X}' (${NAME} or ${NAME:-default}; NAME is "
		"letters, digits and '_')");
	one_err(FE_OK BE_OK "    server a2 127.0.0.1:${A-B}\n", 6,
		"invalid variable '${A-B}' in '127.0.0.1:${A-B}' (${NAME} or ${NAME:-default}; NAME is "
		"letters, digits and '_')");
	/* keywords are not expanded */
	setenv("BOLLARD_TEST_KW", "server", 1);
	one_err(FE_OK BE_OK "    ${BOLLARD_TEST_KW} a2 127.0.0.1:9002\n", 6,
		"unknown keyword '${BOLLARD_TEST_KW}' in backend section");

	/* include paths are expanded too */
	inc_setup();
	setenv("BOLLARD_TEST_DIR", "conf.d", 1);
	put("main.conf", FE_OK "include ${BOLLARD_TEST_DIR}/*.conf\n");
	put("conf.d/app.conf", BE_OK);
	struct config *c2;
	char *errs = load_main(&c2);
	assert_null(errs);
	assert_non_null(c2);
	cfg_free(c2);
	inc_teardown();
}

/* issue 10 item 3: bollard ctl -c needs only the admin-socket line. */
static void test_admin_socket_despite_errors(void **state)
{
	char path[64], *where, *errs, *sock;

	snprintf(path, sizeof(path), "/tmp/test_cfg_ctl_%d", (int)getpid());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("global\n    admin-socket /run/a.sock\n    bogus 1\n    admin-socket /run/b.sock\n"
	      FE_OK "backend app\n", f);
	fclose(f);
	sock = cfg_admin_socket(path, &where, &errs);
	assert_string_equal(sock, "/run/b.sock");     /* the last one, as for a start */
	char want[128];
	snprintf(want, sizeof(want), "%s:4", path);
	assert_string_equal(where, want);
	assert_non_null(errs);
	assert_non_null(strstr(errs, ":3: unknown keyword 'bogus' in global section"));
	free(sock);
	free(where);
	free(errs);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("global\n    admin-socket ./x.sock\n" FE_OK BE_OK, f);
	fclose(f);
	sock = cfg_admin_socket(path, &where, &errs);
	assert_string_equal(sock, "./x.sock");
	assert_null(errs);
	free(sock);
	free(where);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs(FE_OK BE_OK, f);
	fclose(f);
	assert_null(cfg_admin_socket(path, &where, &errs));
	assert_null(where);
	assert_null(errs);
	unlink(path);
}

/* A self-signed ECDSA P-256 certificate and its key in one PEM file at
 * PATH (a template for mkstemp): what make demo hands demo.conf's TLS bind. */
static void write_demo_cert(char *path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	assert_non_null(key);
	assert_non_null(x);
	assert_non_null(f);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), 90 * 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void test_examples(void **state)
{
	/* The shipped examples must always load; demo.conf's TLS bind with the
	 * certificate make demo generates (scripts/demo-tls.sh), given as
	 * BOLLARD_TLS_CRT as the demo does. */
	static const char *const files[] = { "examples/demo.conf", "examples/minimal.conf" };
	char crt[] = "/tmp/bollard-test-cfg-crt-XXXXXX";

	write_demo_cert(crt);
	assert_int_equal(setenv("BOLLARD_TLS_CRT", crt, 1), 0);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char *errs = NULL;
		struct config *cfg = cfg_load(files[i], &errs);
		if (!cfg && errs && strstr(errs, "cannot open")) {
			free(errs); /* run from another directory: nothing to check */
			continue;
		}
		if (!cfg)
			fprintf(stderr, "%s", errs);
		assert_non_null(cfg);
		cfg_free(cfg);
	}
	unsetenv("BOLLARD_TLS_CRT");
	unlink(crt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_process_and_syslog),
		cmocka_unit_test(test_duration_messages),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_builtin_defaults),
		cmocka_unit_test(test_defaults_inheritance),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_tokenizer),
		cmocka_unit_test(test_err_unknown_keyword),
		cmocka_unit_test(test_err_wrong_section),
		cmocka_unit_test(test_err_sections),
		cmocka_unit_test(test_err_values),
		cmocka_unit_test(test_err_addresses),
		cmocka_unit_test(test_err_duplicate_persist),
		cmocka_unit_test(test_err_no_follow_on),
		cmocka_unit_test(test_err_servers),
		cmocka_unit_test(test_migration_hints),
		cmocka_unit_test(test_err_cross_checks),
		cmocka_unit_test(test_err_routes),
		cmocka_unit_test(test_balance_hash),
		cmocka_unit_test(test_err_balance_hash),
		cmocka_unit_test(test_forwarded_proxy),
		cmocka_unit_test(test_not_yet_supported),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_not_regular_files),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_include_loops),
		cmocka_unit_test(test_env_vars),
		cmocka_unit_test(test_admin_socket_despite_errors),
		cmocka_unit_test(test_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
