/*
 * main.c - bollard-demo-app: command line, listeners, worker threads and
 * their event loops.
 *
 * The demo app is the backend of bollard's quick start, tests and
 * benchmarks, so it must never be the bottleneck: each worker thread owns
 * an SO_REUSEPORT listener and an edge-triggered epoll loop, and a
 * connection stays on the thread that accepted it. Deadlines (/slow, the
 * lingering close) are a per-thread list sorted by time, consulted for the
 * epoll_wait timeout; there are few of them, and /whoami never touches it.
 */
#include "demo.h"
#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VERSION "0.1.0"

struct demo_config demo_cfg = {
	.cookie = "DEMOSESSID",
	.cookie_len = 10,
	.threads = 1,
};
atomic_int demo_failing;
struct demo_worker *demo_workers;
int demo_nworkers;

/* The listener's epoll tag: conns are registered with their own pointer,
 * the listener with the address of this byte. */
static char listener_tag;

uint64_t demo_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void demo_timer_clear(struct demo_conn *c)
{
	if (!c->timed)
		return;
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		c->w->timers = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	c->tprev = c->tnext = NULL;
	c->timed = false;
}

void demo_timer_set(struct demo_conn *c, uint64_t deadline_ms)
{
	struct demo_conn *p, *prev = NULL;

	demo_timer_clear(c);
	c->deadline = deadline_ms;
	for (p = c->w->timers; p && p->deadline <= deadline_ms; p = p->tnext)
		prev = p;
	c->tprev = prev;
	c->tnext = p;
	if (p)
		p->tprev = c;
	if (prev)
		prev->tnext = c;
	else
		c->w->timers = c;
	c->timed = true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bollard-demo-app --name NAME --port PORT [--host ADDR]\n"
		"                        [--session-cookie NAME] [--threads N]\n"
		"                        [--store memory|jwt|redis://HOST:PORT[/DB]|\n"
		"                                 memcached://HOST:PORT|postgresql://...]\n"
		"                        [--session-ttl D] [--store-timeout D]\n"
		"                        [--key-file FILE] [--replicate-to HOST:PORT]\n"
		"A small stateful HTTP/1.1 server for bollard's demo, tests and\n"
		"benchmarks. --port 0 picks a free port (printed on stdout).\n"
		"Durations: 500ms, 2s, 30m, 8h, 1d (a bare number is seconds).\n");
}

/* Open a socket bound to host:port; listening when listen_too. reuseport
 * lets the worker threads share the port (the kernel spreads connections
 * by hash). */
static int open_socket(const char *host, int port, bool reuseport, bool listen_too)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char portstr[16];
	int fd, one = 1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, "bollard-demo-app: bad --host %s: %s\n", host,
			gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		goto fail;
	if (listen_too && listen(fd, 4096) < 0)
		goto fail;
	freeaddrinfo(ai);
	return fd;
fail:
	fprintf(stderr, "bollard-demo-app: listen on %s:%d: %s\n", host, port,
		strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void accept_all(struct demo_worker *w)
{
	/* Bounded, so one busy listener cannot starve the connections. */
	for (int i = 0; i < 64; i++) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				fprintf(stderr, "bollard-demo-app: accept: %s\n",
					strerror(errno));
			return;
		}
		atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
		conn_accept(w, fd);
	}
}

static void *worker_main(void *arg)
{
	struct demo_worker *w = arg;
	struct epoll_event evs[256];

	for (;;) {
		int timeout = -1, n, i;

		if (w->timers) {
			uint64_t now = demo_now_ms();
			timeout = w->timers->deadline <= now ? 0 :
				  (int)min_u64(w->timers->deadline - now, 60000);
		}
		n = epoll_wait(w->ep, evs, 256, timeout);
		if (n < 0 && errno != EINTR) {
			perror("bollard-demo-app: epoll_wait");
			exit(1);
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &listener_tag)
				accept_all(w);
			else
				conn_run(evs[i].data.ptr);
		}
		if (w->timers) {
			uint64_t now = demo_now_ms();
			while (w->timers && w->timers->deadline <= now) {
				struct demo_conn *c = w->timers;
				demo_timer_clear(c);
				conn_timeout(c);
			}
		}
	}
	return NULL;
}

/* A duration (N, Nms, Ns, Nm, Nh, Nd; bare N is seconds) in ms, within
 * [min_ms, max_ms]; -1 when malformed or out of range. */
static int64_t duration_ms(const char *v, int64_t min_ms, int64_t max_ms)
{
	static const struct { const char *unit; int64_t ms; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	char *end;
	long long n;
	size_t i;

	if (*v < '0' || *v > '9')
		return -1;
	n = strtoll(v, &end, 10);
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) == 0) {
			if (n > max_ms / units[i].ms || n * units[i].ms < min_ms)
				return -1;
			return n * units[i].ms;
		}
	}
	return -1;
}

static void on_signal(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = -1, i, first_port, probe;

	/* Every option but --help and --version takes a value. */
	for (i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--version")) {
			printf("bollard-demo-app %s\n", VERSION);
			return 0;
		}
		if (!v) {
			fprintf(stderr, "bollard-demo-app: unknown or incomplete option %s\n", a);
			usage(stderr);
			return 2;
		}
		if (!strcmp(a, "--name")) {
			demo_cfg.name = v;
		} else if (!strcmp(a, "--port")) {
			char *end;
			long p = strtol(v, &end, 10);
			if (*end || p < 0 || p > 65535) {
				fprintf(stderr, "bollard-demo-app: bad --port %s\n", v);
				return 2;
			}
			port = (int)p;
		} else if (!strcmp(a, "--host")) {
			host = v;
		} else if (!strcmp(a, "--store")) {
			store_cfg.spec = v;
		} else if (!strcmp(a, "--key-file")) {
			store_cfg.key_file = v;
		} else if (!strcmp(a, "--replicate-to")) {
			store_cfg.replicate_to = v;
		} else if (!strcmp(a, "--session-ttl") || !strcmp(a, "--store-timeout")) {
			bool ttl = !strcmp(a, "--session-ttl");
			int64_t ms = ttl ? duration_ms(v, 1000, 3650LL * 86400000) :
					   duration_ms(v, 1, 60000);
			if (ms < 0 || (ttl && ms % 1000)) {
				fprintf(stderr, "bollard-demo-app: bad %s %s (%s)\n", a, v,
					ttl ? "1s to 3650d, whole seconds" : "1ms to 60s");
				return 2;
			}
			if (ttl)
				store_cfg.ttl_s = (unsigned)(ms / 1000);
			else
				store_cfg.timeout_ms = (unsigned)ms;
		} else if (!strcmp(a, "--session-cookie")) {
			demo_cfg.cookie = v;
		} else if (!strcmp(a, "--threads")) {
			char *end;
			long t = strtol(v, &end, 10);
			if (*end || t < 1 || t > 256) {
				fprintf(stderr, "bollard-demo-app: bad --threads %s\n", v);
				return 2;
			}
			demo_cfg.threads = (int)t;
		} else {
			fprintf(stderr, "bollard-demo-app: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (!demo_cfg.name || port < 0) {
		usage(stderr);
		return 2;
	}
	demo_cfg.name_len = strlen(demo_cfg.name);
	demo_cfg.cookie_len = strlen(demo_cfg.cookie);
	/* The name goes verbatim into a header field and a cookie name into
	 * a Cookie lookup: keep both to visible ASCII (RFC 9110 5.5). */
	for (i = 0; demo_cfg.name[i]; i++)
		if ((unsigned char)demo_cfg.name[i] <= 0x20 || demo_cfg.name[i] == 0x7f) {
			fprintf(stderr, "bollard-demo-app: --name must be visible ASCII\n");
			return 2;
		}
	if (!demo_cfg.name_len || !demo_cfg.cookie_len || strpbrk(demo_cfg.cookie, " ;=,\t")) {
		fprintf(stderr, "bollard-demo-app: bad --name or --session-cookie\n");
		return 2;
	}

	{
		const char *err = store_configure();
		if (err) {
			fprintf(stderr, "bollard-demo-app: %s\n", err);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	route_init();
	demo_nworkers = demo_cfg.threads;
	demo_workers = aligned_alloc(64, sizeof(*demo_workers) * (size_t)demo_nworkers);
	if (!demo_workers)
		return 1;
	memset(demo_workers, 0, sizeof(*demo_workers) * (size_t)demo_nworkers);
	if (store_threads(demo_nworkers) < 0)
		return 1;
	/* SO_REUSEPORT would also let us join a port that another process
	 * (of the same user) listens on, silently sharing its traffic: a test
	 * that picked a "free" port must get an error instead. So the port is
	 * first claimed by a socket without SO_REUSEPORT, which fails if the
	 * port is taken, and stays bound (not listening, which SO_REUSEADDR
	 * lets the listeners coexist with) until they are all bound. */
	probe = open_socket(host, port, false, false);
	if (probe < 0)
		return 1;
	first_port = bound_port(probe);
	for (i = 0; i < demo_nworkers; i++) {
		struct demo_worker *w = &demo_workers[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listener_tag };
		w->lfd = open_socket(host, first_port, true, true);
		if (w->lfd < 0)
			return 1;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (w->ep < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev) < 0) {
			perror("bollard-demo-app: epoll");
			return 1;
		}
	}
	close(probe);
	printf("bollard-demo-app %s listening on %s:%d (threads %d, store %s)\n",
	       demo_cfg.name, host, first_port, demo_nworkers, store_name());
	fflush(stdout);
	for (i = 1; i < demo_nworkers; i++) {
		if (pthread_create(&demo_workers[i].tid, NULL, worker_main, &demo_workers[i])) {
			fprintf(stderr, "bollard-demo-app: cannot start thread\n");
			return 1;
		}
	}
	worker_main(&demo_workers[0]);
	return 0;
}
