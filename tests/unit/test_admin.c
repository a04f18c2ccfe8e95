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
#include "persist.h"
#include "check.h"
#include "shared.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>


static struct server s1, s2, s3;
static struct server *app_servers[] = { &s1, &s2 };
static struct server *api_servers[] = { &s3 };
static struct backend app, api;
static struct backend *backends[] = { &app, &api };
static struct frontend web;
static struct frontend *frontends[] = { &web };
static struct config cfg;

/* check.c's hook, which the state command calls on maint -> ready: counted
 * here instead of starting a real slow start */
static int recovered_calls;
void check_server_recovered(struct server *s)
{
	(void)s;
	recovered_calls++;
}

/* add/del server start and stop health checks (check.c, not linked here) */
int check_server_add(struct server *s);
int check_server_add(struct server *s)
{
	(void)s;
	return 0;
}

void check_server_del(struct server *s);
void check_server_del(struct server *s)
{
	(void)s;
}

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void mk_server(struct server *s, struct backend *be, const char *name,
		      const char *addr, int idx)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->addr.text, sizeof(s->addr.text), "%s", addr);
	s->weight = 100;
	s->idx = idx;
	s->sid = (uint32_t)idx;
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
	recovered_calls = 0;
	mk_server(&s1, &app, "app1", "127.0.0.1:9001", 0);
	mk_server(&s2, &app, "app2", "127.0.0.1:9002", 1);
	mk_server(&s3, &api, "api1", "[::1]:9003", 0);
	app.servers = app_servers;
	app.nservers = 2;
	api.servers = api_servers;
	api.nservers = 1;
	snprintf(web.name, sizeof(web.name), "web");
	web.default_be = &app; /* the frontend label of bollard_requests_total */
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
		"backend server address state health weight conns sessions requests origin\n"
		"app app1 127.0.0.1:9001 ready unchecked 100 4 12 99 config\n"
		"app app2 127.0.0.1:9002 drain unchecked 50 0 0 0 config\n"
		"a\"p\\i api1 [::1]:9003 ready unchecked 100 0 0 0 config\n"
		"\n");
	a = run("  show   servers   app ", 0);
	assert_string_equal(a,
		"backend server address state health weight conns sessions requests origin\n"
		"app app1 127.0.0.1:9001 ready unchecked 100 4 12 99 config\n"
		"app app2 127.0.0.1:9002 drain unchecked 50 0 0 0 config\n"
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
	a = run("set server app/x state drain", -1);
	assert_string_equal(a, "error: no server 'app/x'\n\n");
	a = run("json wait drained app/app1", -1);
	assert_string_equal(a, "error: server 'app/app1' is not draining "
			       "(set its state to drain or maint first)\n\n");
	/* without a control loop there is nothing to reload */
	a = run("reload", -1);
	assert_string_equal(a, "error: reload is not available here\n\n");
	a = run("reload now", -1);
	assert_string_equal(a, "error: 'reload' takes no argument\n\n");
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

static void test_set_state(void **state)
{
	const char *a;

	(void)state;
	a = run("set server app/app1 state drain", 0);
	assert_string_equal(a, "app/app1 state drain (was ready)\n\n");
	assert_int_equal(atomic_load(&s1.admin_state), SRV_DRAIN);
	assert_int_equal(atomic_load(&s1.state), SRV_DRAIN);
	a = run("show servers app", 0);
	assert_non_null(strstr(a, "app app1 127.0.0.1:9001 drain "));
	a = run("json set server app/app1 state maint", 0);
	assert_string_equal(a, "{\"backend\":\"app\",\"server\":\"app1\",\"state\":\"maint\","
			       "\"was\":\"drain\",\"effective\":\"maint\"}\n\n");
	assert_int_equal(atomic_load(&s1.state), SRV_MAINT);
	assert_int_equal(recovered_calls, 0);
	/* back from maintenance: the slow start of check.c begins */
	a = run("set server app/app1 state ready", 0);
	assert_string_equal(a, "app/app1 state ready (was maint)\n\n");
	assert_int_equal(atomic_load(&s1.state), SRV_READY);
	assert_int_equal(recovered_calls, 1);
	/* drain -> ready is no recovery: the server kept serving */
	run("set server app/app1 state drain", 0);
	run("set server app/app1 state ready", 0);
	assert_int_equal(recovered_calls, 1);
	/* health down wins over the operator's ready or drain, and is shown */
	atomic_store(&s2.health, HEALTH_DOWN);
	a = run("set server app/app2 state drain", 0);
	assert_string_equal(a, "app/app2 state drain (was ready; effective down)\n\n");
	/* names with quotes come back escaped in JSON */
	a = run("json set server a\"p\\i/api1 state drain", 0);
	assert_non_null(strstr(a, "\"backend\":\"a\\\"p\\\\i\""));

	a = run("set server app/app1 state up", -1);
	assert_string_equal(a, "error: state must be ready, drain or maint, not 'up'\n\n");
	a = run("set server app/app1 state", -1);
	assert_string_equal(a, "error: usage: set server BACKEND/SERVER state ready|drain|maint "
			       "| weight N\n\n");
	run("set server app/app1 color red", -1);
	run("set server app/app1 state drain now", -1);
	run("set server", -1);
	a = run("set server nope/app1 state drain", -1);
	assert_string_equal(a, "error: no server 'nope/app1'\n\n");
	a = run("set server app1 state drain", -1);
	assert_string_equal(a, "error: no server 'app1'\n\n");
	run("set server app/ state drain", -1);
	run("set server /app1 state drain", -1);
	assert_int_equal(atomic_load(&s1.admin_state), SRV_READY);
}

static void test_set_weight(void **state)
{
	const char *a;

	(void)state;
	a = run("set server app/app2 weight 0", 0);
	assert_string_equal(a, "app/app2 weight 0 (was 100)\n\n");
	assert_int_equal(atomic_load(&s2.cur_weight), 0);
	assert_int_equal(s2.weight, 0);
	a = run("json set server app/app2 weight 256", 0);
	assert_string_equal(a, "{\"backend\":\"app\",\"server\":\"app2\",\"weight\":256,"
			       "\"was\":0}\n\n");
	assert_int_equal(atomic_load(&s2.cur_weight), 256);
	a = run("show servers app", 0);
	assert_non_null(strstr(a, "app app2 127.0.0.1:9002 ready unchecked 256 "));
	a = run("set server app/app2 weight 1000001", -1);
	assert_string_equal(a, "error: weight must be an integer from 0 to 1000000, not '1000001'\n\n");
	run("set server app/app2 weight -1", -1);
	run("set server app/app2 weight +5", -1);
	run("set server app/app2 weight 1x", -1);
	run("set server app/app2 weight 0256", -1);
	run("set server app/app2 weight 99999999999999999999", -1);
	run("set server app/app2 weight", -1);
	assert_int_equal(atomic_load(&s2.cur_weight), 256);
	/* up to 1000000 (issue 9 item 18) */
	a = run("set server app/app2 weight 1000000", 0);
	assert_string_equal(a, "app/app2 weight 1000000 (was 256)\n\n");
	assert_int_equal(atomic_load(&s2.cur_weight), 1000000);
	assert_int_equal(s2.weight, 1000000);
	a = run("set server app/nope weight 5", -1);
	assert_string_equal(a, "error: no server 'app/nope'\n\n");
}

/* Run a wait command that must park; returns the parked wait. */
static struct admin_wait park(const char *line)
{
	struct admin_buf out;
	struct admin_wait w;

	admin_buf_init(&out);
	assert_int_equal(admin_execute(line, &out), ADMIN_WAIT);
	assert_int_equal(out.len, 0);           /* nothing answered yet */
	assert_true(admin_wait_take(&w));
	assert_false(admin_wait_take(&w));      /* taken once */
	admin_buf_free(&out);
	return w;
}

static const char *poll_answer(struct admin_wait *w, uint64_t now, int want)
{
	static char copy[256];
	struct admin_buf out;

	admin_buf_init(&out);
	assert_int_equal(admin_wait_poll(w, &out, now), want);
	if (!want) {
		assert_int_equal(out.len, 0);
		admin_buf_free(&out);
		return "";
	}
	assert_non_null(out.p);
	assert_true(out.len < sizeof(copy));
	assert_memory_equal(out.p + out.len - 2, "\n\n", 2);
	memcpy(copy, out.p, out.len + 1);
	admin_buf_free(&out);
	return copy;
}

static void test_wait_drained(void **state)
{
	struct admin_wait w;
	uint64_t now = mono_now();
	const char *a;

	(void)state;
	a = run("wait drained app/app1", -1);
	assert_true(strncmp(a, "error: server 'app/app1' is not draining", 40) == 0);
	a = run("wait drained app/nope", -1);
	assert_string_equal(a, "error: no server 'app/nope'\n\n");
	run("set server app/app1 state drain", 0);
	a = run("wait drained app/app1 timeout soon", -1);
	assert_string_equal(a, "error: invalid timeout 'soon' (a duration such as 30s or 5m)\n\n");
	a = run("wait drained app/app1 timeout", -1);
	assert_string_equal(a, "error: usage: wait drained BACKEND/SERVER [timeout D]\n\n");
	run("wait drained app/app1 until 5s", -1);
	run("wait drained", -1);

	/* no connection, no session, no cookie method: drained at once */
	a = run("wait drained app/app1", 0);
	assert_string_equal(a, "drained\n\n");
	a = run("json wait drained app/app1 timeout 1s", 0);
	assert_string_equal(a, "{\"result\":\"drained\"}\n\n");

	/* busy connections, then table sessions, hold it */
	atomic_store(&s1.conns, 2);
	w = park("wait drained app/app1 timeout 10s");
	assert_string_equal(w.backend, "app");
	assert_string_equal(w.server, "app1");
	assert_false(w.json);
	assert_true(w.deadline_ms >= now + 10000);
	poll_answer(&w, mono_now(), 0);
	atomic_store(&s1.conns, 0);
	atomic_store(&s1.sessions, 3);
	poll_answer(&w, mono_now(), 0);
	atomic_store(&s1.sessions, 0);
	a = poll_answer(&w, mono_now(), 1);
	assert_string_equal(a, "drained\n\n");

	/* the deadline passes first */
	atomic_store(&s1.sessions, 1);
	w = park("json wait drained app/app1 timeout 2s");
	assert_true(w.json);
	poll_answer(&w, w.deadline_ms - 1, 0);
	a = poll_answer(&w, w.deadline_ms, 1);
	assert_string_equal(a, "{\"result\":\"timeout\",\"open\":[\"sessions\"],\"conns\":0,"
			    "\"sessions\":1,\"need_idle_s\":2}\n\n");
	/* and in text, every condition still open (issue 10 item 14) */
	atomic_store(&s1.conns, 1);
	w = park("wait drained app/app1 timeout 1s");
	atomic_store(&s1.last_request_ms, w.deadline_ms - 1500);
	a = poll_answer(&w, w.deadline_ms, 1);
	assert_string_equal(a, "timeout: 1 connection still open; 1 table session still held; "
			    "sessions still fresh (last request 1s ago, drained after 2s without one)\n\n");
	atomic_store(&s1.conns, 0);
	atomic_store(&s1.last_request_ms, 0);

	/* maint counts as draining too; back to ready ends the wait */
	run("set server app/app1 state maint", 0);
	w = park("wait drained app/app1");
	assert_true(w.deadline_ms >= now + 5 * 60 * 1000);  /* default 5m */
	run("set server app/app1 state ready", 0);
	a = poll_answer(&w, mono_now(), 1);
	assert_string_equal(a, "error: server 'app/app1' is not draining any more\n\n");

	/* the server disappears while waited for (del server, reload) */
	run("set server app/app2 state drain", 0);
	atomic_store(&s2.conns, 1);
	w = park("wait drained app/app2");
	app.nservers = 1;
	a = poll_answer(&w, mono_now(), 1);
	assert_string_equal(a, "error: server 'app/app2' no longer exists\n\n");
	app.nservers = 2;
}

/* Sessions that live in clients (cookies, hashed keys): drained once the
 * server went without requests for as long as such a session may idle. */
static void test_wait_idle(void **state)
{
	static struct persist_rules rules;
	struct admin_wait w;
	uint64_t now = mono_now();
	const char *a;

	(void)state;
	memset(&rules, 0, sizeof(rules));
	app.persist = &rules;
	/* no persistence, or tables only: just the counting lag */
	assert_int_equal(admin_drain_idle_ms(&app), 2000);
	rules.n = 1;
	rules.r[0].kind = PERSIST_SOURCE;
	assert_int_equal(admin_drain_idle_ms(&app), 2000);
	atomic_store(&s1.last_request_ms, now);
	assert_false(admin_server_drained(&s1, now + 1999));
	assert_true(admin_server_drained(&s1, now + 2000));
	atomic_store(&s1.last_request_ms, 0);
	/* insert cookies: the smaller of max-idle and max-life */
	rules.n = 2;
	rules.r[1].kind = PERSIST_COOKIE;
	assert_int_equal(admin_drain_idle_ms(&app), 30u * 60 * 1000);
	/* (plus the one-second resolution of cookie times) */
	rules.r[1].max_life_ms = 8u * 3600 * 1000;
	assert_int_equal(admin_drain_idle_ms(&app), 8u * 3600 * 1000 + 1000);
	rules.r[1].max_idle_ms = 60000;
	assert_int_equal(admin_drain_idle_ms(&app), 61000);
	rules.r[1].max_life_ms = 0;
	assert_int_equal(admin_drain_idle_ms(&app), 61000);
	/* prefix cookies carry no time: the default */
	rules.r[0].kind = PERSIST_PREFIX;
	assert_int_equal(admin_drain_idle_ms(&app), 30u * 60 * 1000);
	rules.r[0].kind = PERSIST_SOURCE;
	/* consistent hashing alone */
	app.persist = NULL;
	app.balance = LB_HASH;
	assert_int_equal(admin_drain_idle_ms(&app), 30u * 60 * 1000);
	app.balance = LB_ROUNDROBIN;
	app.persist = &rules;

	/* never requested: nothing can come back */
	assert_true(admin_server_drained(&s1, now));
	atomic_store(&s1.last_request_ms, now);
	assert_false(admin_server_drained(&s1, now + 60999));
	assert_true(admin_server_drained(&s1, now + 61000));

	run("set server app/app1 state drain", 0);
	w = park("wait drained app/app1 timeout 1h");
	poll_answer(&w, now + 30000, 0);
	a = poll_answer(&w, now + 61000, 1);
	assert_string_equal(a, "drained\n\n");
	app.persist = NULL;
}

static const char *http(const char *req)
{
	static struct admin_buf out;
	static char copy[16384];

	admin_buf_free(&out);
	stats_respond(req, strlen(req), NULL, &out);
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
		"bollard_requests_total{frontend=\"web\",backend=\"app\",server=\"app1\",code=\"2xx\"} 5\n"));
	assert_non_null(strstr(out.p,
		"bollard_requests_total{frontend=\"web\",backend=\"app\",server=\"app1\",code=\"5xx\"} 1\n"));
	assert_non_null(strstr(out.p,
		"bollard_server_state{backend=\"app\",server=\"app2\",state=\"maint\"} 1\n"));
	assert_non_null(strstr(out.p,
		"bollard_server_state{backend=\"app\",server=\"app2\",state=\"ready\"} 0\n"));
	assert_non_null(strstr(out.p,
		"bollard_frontend_requests_total{frontend=\"web\"} 6\n"));
	/* the duration histogram: cumulative, +Inf equal to _count */
	atomic_store(&app.dur_buckets[0], 2);
	atomic_store(&app.dur_buckets[12], 1);
	atomic_store(&app.dur_sum_us, 20001500);
	admin_buf_reset(&out);
	stats_metrics(&out);
	assert_non_null(strstr(out.p, "# TYPE bollard_request_duration_seconds histogram\n"));
	assert_non_null(strstr(out.p,
		"bollard_request_duration_seconds_bucket{backend=\"app\",le=\"0.001\"} 2\n"
		"bollard_request_duration_seconds_bucket{backend=\"app\",le=\"0.005\"} 2\n"));
	assert_non_null(strstr(out.p,
		"bollard_request_duration_seconds_bucket{backend=\"app\",le=\"10\"} 2\n"
		"bollard_request_duration_seconds_bucket{backend=\"app\",le=\"+Inf\"} 3\n"
		"bollard_request_duration_seconds_sum{backend=\"app\"} 20.001500\n"
		"bollard_request_duration_seconds_count{backend=\"app\"} 3\n"));
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
		/* a histogram's samples are its name + _bucket, _sum, _count */
		assert_true(strlen(seen[nseen - 1]) <= n);
		assert_memory_equal(seen[nseen - 1], line, strlen(seen[nseen - 1]));
		if (strlen(seen[nseen - 1]) < n) {
			const char *sfx = line + strlen(seen[nseen - 1]);
			size_t sn = n - strlen(seen[nseen - 1]);

			assert_true((sn == 7 && !memcmp(sfx, "_bucket", 7)) ||
				    (sn == 4 && !memcmp(sfx, "_sum", 4)) ||
				    (sn == 6 && !memcmp(sfx, "_count", 6)));
		}
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

/* The message templates of the runtime API are filled without printf: a
 * second %s or a %n in a template stays text, and nothing overflows. */
static void test_msg_fill(void **state)
{
	char b[16];

	assert_string_equal(msg_fill(b, sizeof(b), "no server '%s'", "a"), "no server 'a'");
	assert_string_equal(msg_fill(b, sizeof(b), "%s and %s %n", "x"), "x and %s %n");
	assert_string_equal(msg_fill(b, sizeof(b), "100%% %s", NULL), "100% ");
	assert_string_equal(msg_fill(b, sizeof(b), "%s", "0123456789abcdefghij"), "0123456789abcde");
	assert_string_equal(msg_fill(b, 1, "%s", "x"), "");
}

/* The SCAN MATCH pattern of the shared view (shared.c): every glob
 * metacharacter of the prefix and table name matches only itself. */
static void test_glob_escape(void **state)
{
	char b[32];

	assert_int_equal(shared_glob_escape("t:be/learn", 10, b, sizeof(b)), 10);
	assert_string_equal(b, "t:be/learn");
	assert_int_equal(shared_glob_escape("a*b?c[d]e\\f", 11, b, sizeof(b)), 16);
	assert_string_equal(b, "a\\*b\\?c\\[d\\]e\\\\f");
	/* binary-safe length, and too small a buffer is refused, not cut */
	assert_int_equal(shared_glob_escape("x\0y", 3, b, sizeof(b)), 3);
	assert_int_equal(shared_glob_escape("****", 4, b, 8), 0);
	assert_int_equal(shared_glob_escape("****", 4, b, 9), 8);
	assert_string_equal(b, "\\*\\*\\*\\*");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_help, setup),
		cmocka_unit_test_setup(test_show_info, setup),
		cmocka_unit_test_setup(test_show_servers, setup),
		cmocka_unit_test_setup(test_errors, setup),
		cmocka_unit_test_setup(test_set_state, setup),
		cmocka_unit_test_setup(test_set_weight, setup),
		cmocka_unit_test_setup(test_wait_drained, setup),
		cmocka_unit_test_setup(test_wait_idle, setup),
		cmocka_unit_test_setup(test_http, setup),
		cmocka_unit_test_setup(test_metrics, setup),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_msg_fill),
		cmocka_unit_test(test_glob_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
