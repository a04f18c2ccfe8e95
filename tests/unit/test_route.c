/*
 * test_route.c - choosing a server for a client through the view of it
 * (view.h): the backend, the `balance hash` key and persistence, with and
 * without an HTTP message. A connection without one (mode tcp) must be
 * routed to the default backend, hashed and persisted by its address, and
 * every method that reads the request must find nothing rather than read
 * through a NULL message.
 */
#include "api.h"
#include "cfg.h"
#include "h1.h"
#include "lb_hash.h"
#include "persist.h"
#include "route.h"
#include "view.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

static const char *CONF =
	"global\n"
	"    threads 1\n"
	"    log off\n"
	"frontend fe\n"
	"    bind 127.0.0.1:18080\n"
	"    route host shop.example.com shop\n"
	"    route path-prefix /api shop\n"
	"    default-backend app\n"
	"backend app\n"
	"    persist header X-User\n"
	"    persist cookie SID insert\n"
	"    persist source\n"
	"    server a1 127.0.0.1:9001\n"
	"    server a2 127.0.0.1:9002\n"
	"    server a3 127.0.0.1:9003\n"
	"backend shop\n"
	"    balance hash source\n"
	"    server b1 127.0.0.1:9101\n"
	"    server b2 127.0.0.1:9102\n"
	"backend byhdr\n"
	"    balance hash header X-User\n"
	"    server c1 127.0.0.1:9201\n";

static struct config *load_conf(void)
{
	char path[] = "/tmp/test_route_XXXXXX", err[256] = "";
	char *errs = NULL;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t n = strlen(CONF);
	assert_int_equal(write(fd, CONF, n), (ssize_t)n);
	close(fd);
	struct config *cfg = cfg_load(path, &errs);
	unlink(path);
	if (!cfg)
		fail_msg("config: %s", errs ? errs : "?");
	assert_int_equal(persist_init(cfg, err, sizeof(err)), 0);
	return cfg;
}

static struct sockaddr_storage addr4(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	return ss;
}

static struct h1_hdr hdrs[32];
static const struct h1_limits lim = { 8192, 16384, 32 };

static void parse(const char *s, struct h1_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->hdrs = hdrs;
	m->hdrs_cap = 32;
	assert_true(h1_parse_request(s, strlen(s), m, &lim) > 0);
}

/* Without a request every route (host, path) misses: the default backend;
 * with one, the routes still decide. */
static void test_backend_without_message(void **state)
{
	(void)state;
	struct config *cfg = load_conf();
	const struct frontend *fe = cfg->frontends[0];
	struct sockaddr_storage ss = addr4("192.0.2.7");
	struct view tcp = { &ss, NULL };
	assert_ptr_equal(route_backend(fe, &tcp), cfg_find_backend(cfg, "app"));

	struct h1_msg m;
	parse("GET /x HTTP/1.1\r\nHost: shop.example.com:8080\r\n\r\n", &m);
	struct view http = { &ss, &m };
	assert_ptr_equal(route_backend(fe, &http), cfg_find_backend(cfg, "shop"));
	parse("GET /api/v1 HTTP/1.1\r\nHost: other\r\n\r\n", &m);
	assert_ptr_equal(route_backend(fe, &http), cfg_find_backend(cfg, "shop"));
	parse("GET /x HTTP/1.1\r\nHost: other\r\n\r\n", &m);
	assert_ptr_equal(route_backend(fe, &http), cfg_find_backend(cfg, "app"));
	persist_fini(cfg);
	cfg_free(cfg);
}

/* `balance hash source` keys on the address alone, the same with or
 * without a request; a key read from the request is absent without one. */
static void test_hash_key_without_message(void **state)
{
	(void)state;
	struct config *cfg = load_conf();
	struct sockaddr_storage ss = addr4("192.0.2.7");
	const struct sockaddr_in *a = (const void *)&ss;
	struct view tcp = { &ss, NULL };
	uint64_t key = 0, key2 = 1;

	assert_true(route_hash_key(cfg_find_backend(cfg, "shop"), &tcp, &key));
	assert_true(key == lb_hash_key(&a->sin_addr, 4));
	struct h1_msg m;
	parse("GET / HTTP/1.1\r\nHost: h\r\nX-User: alice\r\n\r\n", &m);
	struct view http = { &ss, &m };
	assert_true(route_hash_key(cfg_find_backend(cfg, "shop"), &http, &key2));
	assert_true(key == key2);

	assert_false(route_hash_key(cfg_find_backend(cfg, "byhdr"), &tcp, &key));
	assert_true(route_hash_key(cfg_find_backend(cfg, "byhdr"), &http, &key));
	assert_true(key == lb_hash_key("alice", 5));
	persist_fini(cfg);
	cfg_free(cfg);
}

/* A connection without a request: header and cookie find nothing, source
 * keys on the address; what it records, the next connection from the same
 * client finds, and a request from that client later too. */
static void test_persist_without_message(void **state)
{
	(void)state;
	struct config *cfg = load_conf();
	struct backend *be = cfg_find_backend(cfg, "app");
	struct server *a2 = cfg_find_server(be, "a2");
	struct sockaddr_storage ss = addr4("192.0.2.7"), other = addr4("198.51.100.1");
	struct view tcp = { &ss, NULL };
	struct persist_req *pr = calloc(1, sizeof(*pr));
	assert_non_null(pr);

	persist_decide(be, &tcp, 1000, pr);
	assert_int_equal(pr->result, PR_NEW);
	assert_null(pr->srv);
	assert_false(pr->strip_cookie);
	assert_int_equal(pr->has_key, 1u << 2); /* the source rule only */
	persist_record(be, pr, a2, 1000);

	persist_decide(be, &tcp, 2000, pr);
	assert_int_equal(pr->result, PR_HIT);
	assert_ptr_equal(pr->srv, a2);
	assert_int_equal(pr->rule, 2);

	struct h1_msg m;
	parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &m);
	struct view http = { &ss, &m };
	persist_decide(be, &http, 3000, pr);
	assert_int_equal(pr->result, PR_HIT);
	assert_ptr_equal(pr->srv, a2);

	struct view stranger = { &other, NULL };
	persist_decide(be, &stranger, 4000, pr);
	assert_int_equal(pr->result, PR_NEW);
	assert_null(pr->srv);

	free(pr);
	persist_fini(cfg);
	cfg_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_without_message),
		cmocka_unit_test(test_hash_key_without_message),
		cmocka_unit_test(test_persist_without_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
