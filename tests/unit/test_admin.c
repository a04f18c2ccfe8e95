/*
 * test_admin.c - the runtime API commands and the stats endpoints, against
 * a configuration built by hand (no parser involved): answer formats of
 * SPEC §5, error answers, the end-of-answer empty line, the Prometheus
 * text, and the small HTTP server's status codes.
 */
#include "api.h"
#include "admin.h"
#include "stats.h"
#include "global.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>

struct global_state G;

static struct server s1, s2, s3;
static struct server *app_servers[] = { &s1, &s2 };
static struct server *api_servers[] = { &s3 };
static struct backend app, api;
static struct backend *backends[] = { &app, &api };
static struct frontend web;
static struct frontend *frontends[] = { &web };
static struct config cfg;

static void mk_server(struct server *s, struct backend *be, const char *name,
		      const char *addr, int idx)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->addr.text, sizeof(s->addr.text), "%s", addr);
	s->weight = 100;
	s->idx = idx;
	s->be = be;
	atomic_store(&s->cur_weight, 100);
	atomic_store(&s->state, SRV_READY);
}

static int setup(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	memset(&app, 0, sizeof(app));
	memset(&api, 0, sizeof(api));
	memset(&web, 0, sizeof(web));
	snprintf(app.name, sizeof(app.name), "app");
	snprintf(api.name, sizeof(api.name), "a\"p\\i");
	mk_server(&s1, &app, "app1", "127.0.0.1:9001", 0);
	mk_server(&s2, &app, "app2", "127.0.0.1:9002", 1);
	mk_server(&s3, &api, "api1", "[::1]:9003", 0);
	app.servers = app_servers;
	app.nservers = 2;
	api.servers = api_servers;
	api.nservers = 1;
	snprintf(web.name, sizeof(web.name), "web");
	cfg.backends = backends;
	cfg.nbackends = 2;
	cfg.frontends = frontends;
	cfg.nfrontends = 1;
	cfg.threads = 3;
	memset(&G, 0, sizeof(G));
	G.cfg = &cfg;
	G.start_time = time(NULL) - 5;
	return 0;
}

/* Run line; return the answer (static storage) and check the end marker. */
static const char *run(const char *line, int want_rc)
{
	static struct admin_buf out;
	static char copy[8192];
	int rc;

	admin_buf_free(&out);
	rc = admin_execute(line, &out);
	assert_int_equal(rc, want_rc);
	assert_false(out.oom);
	assert_non_null(out.p);
	assert_true(out.len >= 1);
	/* the answer ends with an empty line */
	if (out.len >= 2)
		assert_memory_equal(out.p + out.len - 2, "\n\n", 2);
	else
		assert_string_equal(out.p, "\n");
	assert_true(out.len < sizeof(copy));
	memcpy(copy, out.p, out.len + 1);
	admin_buf_free(&out);
	return copy;
}

static void test_help(void **state)
{
	const char *a;

	(void)state;
	a = run("help", 0);
	assert_non_null(strstr(a, "show servers"));
	assert_non_null(strstr(a, "show info"));
	run("help me", -1);
}

static void test_show_info(void **state)
{
	const char *a;

	(void)state;
	atomic_store(&G.conns, 7);
	atomic_store(&G.conns_total, 70);
	atomic_store(&G.requests, 700);
	atomic_store(&G.reloads, 2);
	a = run("show info", 0);
	assert_true(strncmp(a, "version " BOLLARD_VERSION "\n", strlen("version " BOLLARD_VERSION "\n")) == 0);
	assert_non_null(strstr(a, "\nthreads 3\n"));
	assert_non_null(strstr(a, "\nconns 7\n"));
	assert_non_null(strstr(a, "\nconns_total 70\n"));
	assert_non_null(strstr(a, "\nrequests 700\n"));
	assert_non_null(strstr(a, "\nreloads 2\n"));
	assert_non_null(strstr(a, "\nuptime_s "));

	a = run("json show info\r", 0);
	assert_true(a[0] == '{');
	assert_non_null(strstr(a, "\"version\":\"" BOLLARD_VERSION "\""));
	assert_non_null(strstr(a, "\"threads\":3,"));
	assert_non_null(strstr(a, "\"conns\":7,"));
	assert_non_null(strstr(a, "\"reloads\":2}"));
	assert_non_null(strstr(a, "\"uptime_s\":"));
	/* one JSON document on one line, then the empty line */
	assert_true(strchr(a, '\n') == a + strlen(a) - 2);
}

static void test_show_servers(void **state)
{
	const char *a;

	(void)state;
	atomic_store(&s1.conns, 4);
	atomic_store(&s1.sessions, 12);
	atomic_store(&s1.requests, 99);
	atomic_store(&s2.state, SRV_DRAIN);
	atomic_store(&s2.cur_weight, 50);
	a = run("show servers", 0);
	assert_string_equal(a,
		"backend server address state health weight conns sessions requests\n"
		"app app1 127.0.0.1:9001 ready unchecked 100 4 12 99\n"
		"app app2 127.0.0.1:9002 drain unchecked 50 0 0 0\n"
		"a\"p\\i api1 [::1]:9003 ready unchecked 100 0 0 0\n"
		"\n");
	a = run("  show   servers   app ", 0);
	assert_string_equal(a,
		"backend server address state health weight conns sessions requests\n"
		"app app1 127.0.0.1:9001 ready unchecked 100 4 12 99\n"
		"app app2 127.0.0.1:9002 drain unchecked 50 0 0 0\n"
		"\n");
	a = run("json show servers app", 0);
	assert_true(strncmp(a,
		"{\"servers\":[{\"backend\":\"app\",\"server\":\"app1\",\"address\":\"127.0.0.1:9001\","
		"\"state\":\"ready\",\"health\":\"unchecked\",\"weight\":100,\"conns\":4,"
		"\"sessions\":12,\"requests\":99", 150) == 0);
	a = run("json show servers", 0);
	assert_non_null(strstr(a, "\"backend\":\"a\\\"p\\\\i\""));
	a = run("show servers nope", -1);
	assert_string_equal(a, "error: no backend 'nope'\n\n");
	run("show servers app extra", -1);
}

static void test_errors(void **state)
{
	const char *a;

	(void)state;
	a = run("xyz", -1);
	assert_string_equal(a, "error: unknown command 'xyz'; try 'help'\n\n");
	a = run("show stuff", -1);
	assert_string_equal(a, "error: unknown command 'show stuff'; try 'help'\n\n");
	a = run("set server app/app1 state drain", -1);
	assert_string_equal(a, "error: 'set server' is not supported yet\n\n");
	a = run("json wait drained app/app1", -1);
	assert_string_equal(a, "error: 'wait drained' is not supported yet\n\n");
	a = run("reload", -1);
	assert_string_equal(a, "error: 'reload' is not supported yet\n\n");
	/* a backend without persistence tables has no sessions to list */
	a = run("show sessions app", 0);
	assert_string_equal(a, "backend method key server idle_s age_s\n\n");
	a = run("show sessions nope", -1);
	assert_string_equal(a, "error: no backend 'nope'\n\n");
	a = run("show sessions app nosuch", -1);
	assert_string_equal(a, "error: no server 'nosuch' in this backend\n\n");
	a = run("json show sessions app", 0);
	assert_string_equal(a, "{\"sessions\":[]}\n\n");
	a = run("clear sessions app", 0);
	assert_string_equal(a, "cleared 0\n\n");
	/* control bytes from the client never come back raw */
	a = run("x\x1b[31m", -1);
	assert_string_equal(a, "error: unknown command 'x?[31m'; try 'help'\n\n");
	a = run("", 0);
	assert_string_equal(a, "\n");
	a = run("a b c d e f g h i j k l m n o p q r s", -1);
	assert_true(strncmp(a, "error: too many words", 21) == 0);
}

static const char *http(const char *req)
{
	static struct admin_buf out;
	static char copy[16384];

	admin_buf_free(&out);
	stats_respond(req, strlen(req), &out);
	assert_non_null(out.p);
	assert_true(out.len < sizeof(copy));
	memcpy(copy, out.p, out.len + 1);
	admin_buf_free(&out);
	return copy;
}

static void test_http(void **state)
{
	const char *r;

	(void)state;
	r = http("GET /api/servers HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(r, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(r, "\r\n\r\n{\"servers\":[{"));
	r = http("GET /api/info?x=1 HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "\r\n\r\n{\"version\":"));
	r = http("GET /nope HTTP/1.1\r\n\r\n");
	assert_true(strncmp(r, "HTTP/1.1 404 ", 13) == 0);
	r = http("POST /metrics HTTP/1.1\r\n\r\n");
	assert_true(strncmp(r, "HTTP/1.1 405 ", 13) == 0);
	assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
	r = http("garbage\r\n\r\n");
	assert_true(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
	r = http("HEAD /metrics HTTP/1.1\r\n\r\n");
	assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	assert_true(strstr(r, "\r\n\r\n")[4] == '\0');

	assert_int_equal(stats_head_len("GET / HTTP/1.1\r\n", 16), 0);
	assert_int_equal(stats_head_len("GET / HTTP/1.1\r\n\r\nxx", 20), 18);
	assert_int_equal(stats_head_len("GET / HTTP/1.1\n\n", 16), 16);
}

static void test_metrics(void **state)
{
	struct admin_buf out;
	const char *line, *nl;
	char seen[64][64];
	int nseen = 0, i;

	(void)state;
	atomic_store(&s1.responses[2], 5);
	atomic_store(&s1.responses[5], 1);
	atomic_store(&s2.state, SRV_MAINT);
	atomic_store(&web.requests, 6);
	admin_buf_init(&out);
	stats_metrics(&out);
	assert_non_null(out.p);
	assert_non_null(strstr(out.p,
		"bollard_requests_total{backend=\"app\",server=\"app1\",code=\"2xx\"} 5\n"));
	assert_non_null(strstr(out.p,
		"bollard_requests_total{backend=\"app\",server=\"app1\",code=\"5xx\"} 1\n"));
	assert_non_null(strstr(out.p,
		"bollard_server_state{backend=\"app\",server=\"app2\",state=\"maint\"} 1\n"));
	assert_non_null(strstr(out.p,
		"bollard_server_state{backend=\"app\",server=\"app2\",state=\"ready\"} 0\n"));
	assert_non_null(strstr(out.p,
		"bollard_frontend_requests_total{frontend=\"web\"} 6\n"));
	/* label values escaped */
	assert_non_null(strstr(out.p, "backend=\"a\\\"p\\\\i\""));
	/* every sample's family was announced by HELP and TYPE before it, once */
	for (line = out.p; *line; line = nl + 1) {
		char name[64];
		size_t n;

		nl = strchr(line, '\n');
		assert_non_null(nl);
		if (strncmp(line, "# HELP ", 7) == 0) {
			n = strcspn(line + 7, " ");
			assert_true(n < sizeof(name));
			memcpy(name, line + 7, n);
			name[n] = '\0';
			for (i = 0; i < nseen; i++)
				assert_string_not_equal(seen[i], name);
			assert_true(nseen < 64);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
			assert_true(strncmp(nl + 1, "# TYPE ", 7) == 0);
			continue;
		}
		if (line[0] == '#')
			continue;
		n = strcspn(line, "{ ");
		assert_true(nseen > 0);
		assert_true(strlen(seen[nseen - 1]) == n);
		assert_memory_equal(seen[nseen - 1], line, n);
	}
	admin_buf_free(&out);
}

static void test_buf(void **state)
{
	struct admin_buf b;
	int i;

	(void)state;
	admin_buf_init(&b);
	for (i = 0; i < 1000; i++)
		admin_buf_printf(&b, "%04d\n", i);
	assert_int_equal(b.len, 5000);
	admin_buf_consume(&b, 4995);
	assert_string_equal(b.p, "0999\n");
	admin_buf_reset(&b);
	assert_int_equal(b.len, 0);
	admin_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_help, setup),
		cmocka_unit_test_setup(test_show_info, setup),
		cmocka_unit_test_setup(test_show_servers, setup),
		cmocka_unit_test_setup(test_errors, setup),
		cmocka_unit_test_setup(test_http, setup),
		cmocka_unit_test_setup(test_metrics, setup),
		cmocka_unit_test(test_buf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
