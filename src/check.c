/*
 * check.c - health checks and slow start.
 *
 * Which servers are fit to take traffic is decided here, from two sources:
 *
 * - Active checks (`health tcp` or `health http ...` in a backend): every
 *   `interval`, give or take 10% so that servers are not probed in
 *   lockstep, each server gets one probe: a non-blocking connect (tcp:
 *   connected is a success) and for http one request with `Connection:
 *   close`, whose status line decides (`expect STATUS`, else any 2xx or
 *   3xx). A probe that has not finished within `timeout` fails. `fall`
 *   consecutive failures mark the server down, `rise` consecutive successes
 *   mark it up again. A checked server starts up, so that traffic flows at
 *   once; a dead one is found within `fall` intervals (and passive
 *   detection and `retries` cover the moments before).
 *
 * - Passive detection: the request path reports connect failures and
 *   connect timeouts (check_passive_failure) and successful connects
 *   (check_passive_success) with atomics only; `fall` consecutive failures
 *   mark the server down at the next tick of the control loop. A server of
 *   a backend without `health` (or with `no-check`) is then probed with the
 *   backend's check (tcp when there is none) every `interval` while it is
 *   down, and comes back after `rise` successes, to `unchecked`. Failures
 *   that stop coming are forgotten after PASSIVE_FORGET_MS, so that rare
 *   errors spread over hours of pooled connections (which make no connect,
 *   hence report no success) never add up to a verdict.
 *
 * TLS servers (`server ... tls`) are checked over TLS, with the same
 * context as the traffic (verification, SNI, ALPN): a tcp check passes
 * once the handshake has, an http check sends its request over it. A
 * refused certificate fails the probe with what was wrong with it, which
 * the down message carries ("certificate verify failed: certificate has
 * expired"). Checks resume no session: each probe verifies the server
 * anew.
 *
 * Everything but the passive counters lives on the control thread: the
 * probes are sockets on an epoll set of their own whose descriptor the
 * control loop watches, and check_tick() runs timeouts, schedules and slow
 * start on each turn of that loop. A change of health is applied with
 * server_update_state() and logged once. A turn that came late (the thread
 * was held by something else) gives the probes in flight that time back.
 *
 * Slow start (`slowstart D` on a server): when a server returns (down to up,
 * or maint to ready through the runtime API), its effective weight
 * (cur_weight, what the balancer reads) grows linearly from 1% of its weight
 * to the full weight over D, so that a cold server is not handed its whole
 * share at once.
 */
#include "api.h"
#include "check.h"
#include "log.h"
#include "server.h"
#include "tls_ctx.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHECK_TICK_MS       100
#define CHECK_IDLE_TICK_MS  1000
#define CHECK_LATE_MS       50    /* a wake-up later than asked by more: the thread was away */
#define CHECK_FIRST_SPREAD  500     /* first probes spread over this many ms */
#define PASSIVE_FORGET_MS   10000   /* see the top of the file */
#define CHECK_REQ_MAX       512
#define CHECK_RESP_MAX      256

enum check_phase { CP_IDLE, CP_CONNECT, CP_HANDSHAKE, CP_SEND, CP_READ };

struct check_srv {
	struct server *s;
	char be_name[CFG_NAME_MAX];     /* for carrying state over a reload */
	char srv_name[CFG_NAME_MAX];
	int kind;                       /* CHECK_TCP or CHECK_HTTP */
	bool active;                    /* probed while up too (health + no no-check) */
	uint32_t interval, timeout, rise, fall;
	int expect;                     /* http: wanted status, 0 = 2xx/3xx */

	enum check_phase phase;
	int fd;                         /* -1 while idle */
	SSL *ssl;                       /* server ... tls: the probe's session */
	uint64_t next_ms;               /* next probe; 0 = none scheduled */
	uint64_t deadline_ms;           /* of the probe in flight */
	uint32_t ok_run, fail_run;      /* consecutive results */

	char req[CHECK_REQ_MAX];
	size_t reqlen, sent;
	char resp[CHECK_RESP_MAX];
	size_t resplen;

	/* copies of what the server's atomics say, so that a reload can carry
	 * them over even once the old configuration is gone */
	int health;
	uint64_t n_ok, n_fail;

	uint32_t passive_seen;          /* passive_fails at the last tick */
	uint64_t passive_since;         /* when it last changed */

	bool ramping;                   /* slow start in progress */
	uint64_t ramp_start;
};

static struct {
	int epfd;
	struct check_srv **v;
	int n, cap;
	uint64_t rng;
	uint64_t last_tick, last_wait;  /* check_tick's last call and what it asked */
} C = { .epfd = -1 };

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* xorshift64: the jitter needs spread, not secrecy. */
static uint64_t rnd(void)
{
	uint64_t x = C.rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	C.rng = x;
	return x;
}

/* interval +-10% */
static uint64_t jittered(uint32_t interval)
{
	uint64_t span = interval / 5;

	return interval - interval / 10 + (span ? rnd() % (span + 1) : 0);
}

/* strerror() without the capital, to read well inside a log sentence */
static void why_errno(char *out, size_t cap, int err)
{
	snprintf(out, cap, "%s", strerror(err));
	if (out[0] >= 'A' && out[0] <= 'Z')
		out[0] = (char)(out[0] - 'A' + 'a');
}

/* ---- state changes --------------------------------------------------------- */

static void ramp_begin(struct check_srv *cs, struct server *s, uint64_t now)
{
	if (!s->slowstart || !cs) {
		atomic_store_explicit(&s->cur_weight, s->weight, memory_order_relaxed);
		if (cs)
			cs->ramping = false;
		return;
	}
	/* 1% at once: a weight of 0 would read as "takes nothing" */
	atomic_store_explicit(&s->cur_weight, s->weight ? MAX(1u, s->weight / 100) : 0,
			      memory_order_relaxed);
	if (cs) {
		cs->ramping = true;
		cs->ramp_start = now;
	}
}

static void ramp_step(struct check_srv *cs, uint64_t now)
{
	struct server *s = cs->s;
	uint64_t el = now - cs->ramp_start;
	uint32_t w;

	if (el >= s->slowstart || s->slowstart == 0) {
		w = s->weight;
		cs->ramping = false;
	} else {
		w = (uint32_t)((uint64_t)s->weight * el / s->slowstart);
		if (w < 1 && s->weight > 0)
			w = 1;
	}
	atomic_store_explicit(&s->cur_weight, w, memory_order_relaxed);
}

static void mark_down(struct check_srv *cs, const char *why, uint64_t now)
{
	struct server *s = cs->s;

	atomic_store_explicit(&s->health, HEALTH_DOWN, memory_order_relaxed);
	cs->health = HEALTH_DOWN;
	server_update_state(s);
	atomic_store_explicit(&s->passive_fails, 0, memory_order_relaxed);
	cs->passive_seen = 0;
	cs->ok_run = 0;
	cs->ramping = false;
	log_msg(LOG_WARN, "server %s/%s is DOWN (%s)", s->be->name, s->name, why);
	/* a passive-only server is probed from now on, until it returns */
	if (!cs->next_ms && cs->phase == CP_IDLE)
		cs->next_ms = now + jittered(cs->interval);
}

static void mark_up(struct check_srv *cs, uint64_t now)
{
	struct server *s = cs->s;
	char dur[48] = "";

	atomic_store_explicit(&s->passive_fails, 0, memory_order_relaxed);
	cs->passive_seen = 0;
	cs->health = cs->active ? HEALTH_UP : HEALTH_UNCHECKED;
	atomic_store_explicit(&s->health, cs->health, memory_order_relaxed);
	server_update_state(s);
	ramp_begin(cs, s, now);
	if (s->slowstart && s->slowstart % 1000 == 0)
		snprintf(dur, sizeof(dur), ", slow start over %us", s->slowstart / 1000);
	else if (s->slowstart)
		snprintf(dur, sizeof(dur), ", slow start over %ums", s->slowstart);
	log_msg(LOG_INFO, "server %s/%s is UP (health check: %u consecutive successes%s)",
		s->be->name, s->name, cs->ok_run, dur);
}

/* ---- probes ------------------------------------------------------------------ */

static void probe_close(struct check_srv *cs)
{
	if (cs->ssl) {
		SSL_free(cs->ssl);
		cs->ssl = NULL;
		ERR_clear_error();
	}
	if (cs->fd >= 0) {
		epoll_ctl(C.epfd, EPOLL_CTL_DEL, cs->fd, NULL);
		close(cs->fd);
	}
	cs->fd = -1;
	cs->phase = CP_IDLE;
}

/* The verdict of one probe: count it, apply rise/fall, schedule the next. */
static void probe_done(struct check_srv *cs, bool ok, const char *why, uint64_t now)
{
	struct server *s = cs->s;
	int health = atomic_load_explicit(&s->health, memory_order_relaxed);

	probe_close(cs);
	if (ok) {
		cs->n_ok = atomic_fetch_add_explicit(&s->checks_ok, 1, memory_order_relaxed) + 1;
		cs->fail_run = 0;
		cs->ok_run++;
		if (health == HEALTH_DOWN && cs->ok_run >= cs->rise)
			mark_up(cs, now);
	} else {
		char msg[160];

		cs->n_fail = atomic_fetch_add_explicit(&s->checks_fail, 1, memory_order_relaxed) + 1;
		cs->ok_run = 0;
		cs->fail_run++;
		if (health != HEALTH_DOWN && cs->fail_run >= cs->fall) {
			snprintf(msg, sizeof(msg), "health check: %s, %u consecutive failure%s",
				 why, cs->fail_run, cs->fail_run == 1 ? "" : "s");
			mark_down(cs, msg, now);
		}
	}
	health = atomic_load_explicit(&s->health, memory_order_relaxed);
	cs->next_ms = cs->active || health == HEALTH_DOWN ? now + jittered(cs->interval) : 0;
}

static void probe_want(struct check_srv *cs, uint32_t events, uint64_t now)
{
	struct epoll_event ev = { .events = events, .data.ptr = cs };
	int op = cs->phase == CP_IDLE ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;

	if (epoll_ctl(C.epfd, op, cs->fd, &ev) < 0) {
		char why[96];

		why_errno(why, sizeof(why), errno);
		probe_done(cs, false, why, now);
	}
}

/*
 * An OpenSSL call of the probe did not complete (r its return): wait for
 * what it wants (the epoll set is level-triggered, so the interest is all
 * there is to set), or fail the probe with why. 0 waiting, -1 done.
 */
static int probe_tls_wait(struct check_srv *cs, int r, const char *what, uint64_t now)
{
	int e = SSL_get_error(cs->ssl, r);
	char why[160], reason[128];

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		probe_want(cs, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, now);
		return cs->fd >= 0 ? 0 : -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		snprintf(reason, sizeof(reason), "connection closed by the server");
	else if (e == SSL_ERROR_SYSCALL && !ERR_peek_error() && errno)
		why_errno(reason, sizeof(reason), errno);
	else
		tls_client_why(cs->ssl, ERR_peek_error(), reason, sizeof(reason));
	snprintf(why, sizeof(why), "%s: %s", what, reason);
	ERR_clear_error();
	probe_done(cs, false, why, now);
	return -1;
}

static void probe_ready(struct check_srv *cs, uint64_t now);

/* TLS server: the handshake, one step per event. */
static void probe_handshake(struct check_srv *cs, uint64_t now)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(cs->ssl);
	if (r == 1)
		probe_ready(cs, now);
	else
		probe_tls_wait(cs, r, "TLS handshake", now);
}

/* The connection is up: a TLS server's handshake comes first. */
static void probe_connected(struct check_srv *cs, uint64_t now)
{
	const struct tls_server *ts = cs->s->tls;

	if (!ts) {
		probe_ready(cs, now);
		return;
	}
	cs->ssl = tls_client_ssl_new(ts->cli, ts->host);
	if (!cs->ssl || !SSL_set_fd(cs->ssl, cs->fd)) {
		ERR_clear_error();
		probe_done(cs, false, "TLS: out of memory", now);
		return;
	}
	cs->phase = CP_HANDSHAKE;
	probe_handshake(cs, now);
}

/* The connection (and its TLS) is up: tcp is done, http sends its request. */
static void probe_ready(struct check_srv *cs, uint64_t now)
{
	if (cs->kind == CHECK_TCP) {
		probe_done(cs, true, NULL, now);
		return;
	}
	cs->sent = 0;
	cs->resplen = 0;
	probe_want(cs, EPOLLOUT, now);
	if (cs->fd >= 0)
		cs->phase = CP_SEND;
}

/* Send and receive for the probe: through TLS for a TLS server. >0 bytes,
 * 0 would block (the interest is set), -1 done (the verdict is given) or,
 * for a receive only, -2 the end of the stream. */
static ssize_t probe_io(struct check_srv *cs, bool send_, void *p, size_t n, uint64_t now)
{
	char why[96];

	if (cs->ssl) {
		size_t got = 0;
		ERR_clear_error();
		errno = 0;
		int r = send_ ? SSL_write_ex(cs->ssl, p, n, &got) : SSL_read_ex(cs->ssl, p, n, &got);
		if (r == 1) {
			/* level-triggered: back to what the phase waits for */
			probe_want(cs, send_ ? EPOLLOUT : EPOLLIN, now);
			return cs->fd >= 0 ? (ssize_t)got : -1;
		}
		if (!send_ && SSL_get_error(cs->ssl, r) == SSL_ERROR_ZERO_RETURN)
			return -2;
		return probe_tls_wait(cs, r, send_ ? "TLS send" : "TLS receive", now);
	}
	for (;;) {
		ssize_t r = send_ ? send(cs->fd, p, n, MSG_NOSIGNAL) : recv(cs->fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r == 0 && !send_)
			return -2;
		if (r <= 0) {
			why_errno(why, sizeof(why), r < 0 ? errno : EPIPE);
			probe_done(cs, false, why, now);
			return -1;
		}
		return r;
	}
}

static void probe_start(struct check_srv *cs, uint64_t now)
{
	struct server *s = cs->s;
	char why[96];
	int fd;

	cs->next_ms = 0;
	fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		why_errno(why, sizeof(why), errno);
		/* our problem, not the server's: try again later, no verdict */
		log_msg(LOG_ERR, "health check of %s/%s: socket: %s", s->be->name, s->name, why);
		cs->next_ms = now + jittered(cs->interval);
		return;
	}
	cs->fd = fd;
	cs->deadline_ms = now + cs->timeout;
	if (connect(fd, (const struct sockaddr *)&s->addr.ss, s->addr.len) == 0) {
		probe_want(cs, EPOLLOUT, now);
		if (cs->fd >= 0) {
			cs->phase = CP_CONNECT;
			probe_connected(cs, now);
		}
		return;
	}
	if (errno != EINPROGRESS) {
		why_errno(why, sizeof(why), errno);
		probe_done(cs, false, why, now);
		return;
	}
	probe_want(cs, EPOLLOUT, now);
	if (cs->fd >= 0)
		cs->phase = CP_CONNECT;
}

/*
 * RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
 * Returns the status code, 0 while the line is incomplete, -1 if it is not
 * an HTTP/1.x status line.
 */
static int status_of(const char *p, size_t n)
{
	if (!memchr(p, '\n', n))
		return n >= CHECK_RESP_MAX - 1 ? -1 : 0;
	if (n < 13 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	if (p[12] != ' ' && p[12] != '\r' && p[12] != '\n')
		return -1;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

static void probe_event(struct check_srv *cs, uint32_t events, uint64_t now)
{
	char why[96];
	int err = 0;
	socklen_t len = sizeof(err);

	(void)events; /* errors and hang-ups surface through the calls below */
	switch (cs->phase) {
	case CP_IDLE:
		return;
	case CP_CONNECT:
		if (getsockopt(cs->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			why_errno(why, sizeof(why), err);
			probe_done(cs, false, why, now);
			return;
		}
		probe_connected(cs, now);
		return;
	case CP_HANDSHAKE:
		probe_handshake(cs, now);
		return;
	case CP_SEND:
		while (cs->sent < cs->reqlen) {
			ssize_t w = probe_io(cs, true, cs->req + cs->sent, cs->reqlen - cs->sent, now);

			if (w <= 0)
				return;
			cs->sent += (size_t)w;
		}
		probe_want(cs, EPOLLIN, now);
		if (cs->fd >= 0)
			cs->phase = CP_READ;
		return;
	case CP_READ:
		for (;;) {
			ssize_t r = probe_io(cs, false, cs->resp + cs->resplen,
					     CHECK_RESP_MAX - 1 - cs->resplen, now);
			int st;

			if (r == 0 || r == -1)
				return;
			if (r == -2)
				r = 0;
			cs->resplen += (size_t)r;
			st = status_of(cs->resp, cs->resplen);
			if (st == 0 && r > 0)
				continue;
			if (st <= 0) {
				probe_done(cs, false, st < 0 ? "invalid HTTP response" :
					   "connection closed before a response", now);
				return;
			}
			if (cs->expect ? st == cs->expect : st >= 200 && st < 400) {
				probe_done(cs, true, NULL, now);
			} else {
				snprintf(why, sizeof(why), "HTTP status %d", st);
				probe_done(cs, false, why, now);
			}
			return;
		}
	}
}

/* ---- the set of servers ------------------------------------------------------- */

static struct check_srv *find(const struct server *s)
{
	for (int i = 0; i < C.n; i++)
		if (C.v[i]->s == s)
			return C.v[i];
	return NULL;
}

static struct check_srv *cs_new(struct server *s, uint64_t now)
{
	const struct backend *be = s->be;
	struct check_srv *cs = calloc(1, sizeof(*cs));
	const char *host;
	int n;

	if (!cs)
		return NULL;
	cs->s = s;
	cs->fd = -1;
	snprintf(cs->be_name, sizeof(cs->be_name), "%s", be->name);
	snprintf(cs->srv_name, sizeof(cs->srv_name), "%s", s->name);
	cs->active = be->hc_kind != CHECK_NONE && !s->no_check;
	/* passive-only servers are probed with the backend's check, or tcp */
	cs->kind = be->hc_kind == CHECK_HTTP ? CHECK_HTTP : CHECK_TCP;
	cs->interval = s->chk_interval ? s->chk_interval :
		       be->hc_interval ? be->hc_interval : CHECK_DEF_INTERVAL;
	cs->timeout = be->hc_timeout ? be->hc_timeout : CHECK_DEF_TIMEOUT;
	cs->rise = s->chk_rise ? s->chk_rise : be->hc_rise ? be->hc_rise : CHECK_DEF_RISE;
	cs->fall = s->chk_fall ? s->chk_fall : be->hc_fall ? be->hc_fall : CHECK_DEF_FALL;
	cs->expect = be->hc_expect;
	if (cs->kind == CHECK_HTTP) {
		/* RFC 9112 3.2: a request carries Host; by default the
		 * address as configured, which every server accepts, or
		 * for a TLS server the name its certificate was chosen by
		 * (a server may answer 421 to a Host other than its SNI,
		 * RFC 9110 15.5.20) */
		host = be->hc_host[0] ? be->hc_host : s->tls && s->tls->sni[0] ? s->tls->sni :
		       s->addr.text;
		n = snprintf(cs->req, sizeof(cs->req),
			     "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
			     "User-Agent: bollard-health\r\n\r\n",
			     be->hc_method, be->hc_path, host);
		/* the configuration bounds method, path and host */
		BUG_ON(n < 0 || (size_t)n >= sizeof(cs->req));
		cs->reqlen = (size_t)n;
	}
	cs->health = atomic_load_explicit(&s->health, memory_order_relaxed);
	if (cs->active) {
		cs->health = HEALTH_UP;
		atomic_store_explicit(&s->health, HEALTH_UP, memory_order_relaxed);
		server_update_state(s);
		cs->next_ms = now + 1 + rnd() % MIN(cs->interval, CHECK_FIRST_SPREAD);
	}
	cs->passive_since = now;
	return cs;
}

static int push(struct check_srv *cs)
{
	if (C.n == C.cap) {
		int cap = C.cap ? C.cap * 2 : 16;
		struct check_srv **v = realloc(C.v, (size_t)cap * sizeof(*v));

		if (!v)
			return -1;
		C.v = v;
		C.cap = cap;
	}
	C.v[C.n++] = cs;
	return 0;
}

int check_start(const struct config *cfg)
{
	struct check_srv **old = C.v;
	int nold = C.n;
	uint64_t now = mono_ms();

	if (C.epfd < 0) {
		C.epfd = epoll_create1(EPOLL_CLOEXEC);
		if (C.epfd < 0) {
			log_msg(LOG_ERR, "health checks: epoll: %s", strerror(errno));
			return -1;
		}
		C.rng = (now << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
	}
	C.v = NULL;
	C.n = C.cap = 0;
	for (int b = 0; b < cfg->nbackends; b++) {
		const struct backend *be = cfg->backends[b];

		for (int i = 0; i < be->nservers; i++) {
			struct server *s = be->servers[i];
			struct check_srv *cs = cs_new(s, now);

			if (!cs || push(cs) < 0) {
				free(cs);
				log_msg(LOG_ERR, "health checks: out of memory");
				continue;
			}
			/* a reload keeps what is known of a server that kept its name */
			for (int k = 0; k < nold; k++) {
				struct check_srv *o = old[k];

				if (strcmp(o->be_name, be->name) || strcmp(o->srv_name, s->name))
					continue;
				int h = o->health;

				if (h == HEALTH_DOWN || cs->active) {
					cs->health = h == HEALTH_UNCHECKED ? HEALTH_UP : h;
					atomic_store_explicit(&s->health, cs->health, memory_order_relaxed);
				}
				server_update_state(s);
				cs->n_ok = o->n_ok;
				cs->n_fail = o->n_fail;
				atomic_store_explicit(&s->checks_ok, o->n_ok, memory_order_relaxed);
				atomic_store_explicit(&s->checks_fail, o->n_fail, memory_order_relaxed);
				cs->ok_run = o->ok_run;
				cs->fail_run = o->fail_run;
				if (h == HEALTH_DOWN && !cs->next_ms)
					cs->next_ms = now + jittered(cs->interval);
				break;
			}
		}
	}
	for (int k = 0; k < nold; k++) {
		probe_close(old[k]);
		free(old[k]);
	}
	free(old);
	return C.epfd;
}

void check_events(void)
{
	struct epoll_event evs[64];
	int n;

	if (C.epfd < 0)
		return;
	n = epoll_wait(C.epfd, evs, ARRAY_SIZE(evs), 0);
	for (int i = 0; i < n; i++)
		probe_event(evs[i].data.ptr, evs[i].events, mono_ms());
}

/* Passive verdict: `fall` failures in a row seen by the workers. */
static void passive_tick(struct check_srv *cs, uint64_t now)
{
	struct server *s = cs->s;
	uint32_t f = atomic_load_explicit(&s->passive_fails, memory_order_relaxed);
	char why[128];

	if (f != cs->passive_seen) {
		cs->passive_seen = f;
		cs->passive_since = now;
	}
	if (f == 0)
		return;
	if (atomic_load_explicit(&s->health, memory_order_relaxed) == HEALTH_DOWN)
		return;
	if (f >= cs->fall) {
		snprintf(why, sizeof(why), "passive: %u consecutive connection failures on live traffic",
			 f);
		cs->fail_run = 0;
		mark_down(cs, why, now);
		return;
	}
	if (now - cs->passive_since >= PASSIVE_FORGET_MS) {
		/* only if no worker moved it meanwhile */
		atomic_compare_exchange_strong(&s->passive_fails, &f, 0);
		cs->passive_seen = 0;
	}
}

int check_tick(uint64_t now)
{
	int wait = C.n ? CHECK_TICK_MS : CHECK_IDLE_TICK_MS;

	/* The control thread came back later than it asked: it was busy (an
	 * admin command waiting for a slow Redis, a long reload). That time
	 * was ours, not the servers': a reply that arrived meanwhile is still
	 * unread, so the probes in flight get it back instead of timing out
	 * and marking healthy servers down. */
	if (C.last_tick && now > C.last_tick + C.last_wait + CHECK_LATE_MS) {
		uint64_t away = now - C.last_tick - C.last_wait;

		for (int i = 0; i < C.n; i++)
			if (C.v[i]->phase != CP_IDLE)
				C.v[i]->deadline_ms += away;
	}
	C.last_tick = now;
	C.last_wait = (uint64_t)wait;
	for (int i = 0; i < C.n; i++) {
		struct check_srv *cs = C.v[i];

		passive_tick(cs, now);
		if (cs->phase != CP_IDLE && now >= cs->deadline_ms) {
			char why[64];

			snprintf(why, sizeof(why), "timeout after %ums", cs->timeout);
			probe_done(cs, false, why, now);
		}
		if (cs->phase == CP_IDLE && cs->next_ms && now >= cs->next_ms)
			probe_start(cs, now);
		if (cs->ramping)
			ramp_step(cs, now);
	}
	return wait;
}

void check_stop(void)
{
	for (int i = 0; i < C.n; i++) {
		probe_close(C.v[i]);
		free(C.v[i]);
	}
	free(C.v);
	C.v = NULL;
	C.n = C.cap = 0;
	if (C.epfd >= 0)
		close(C.epfd);
	C.epfd = -1;
}

int check_server_add(struct server *s)
{
	struct check_srv *cs;

	if (find(s))
		return 0;
	cs = cs_new(s, mono_ms());
	if (!cs || push(cs) < 0) {
		free(cs);
		return -1;
	}
	return 0;
}

void check_server_del(struct server *s)
{
	for (int i = 0; i < C.n; i++) {
		if (C.v[i]->s != s)
			continue;
		probe_close(C.v[i]);
		free(C.v[i]);
		C.v[i] = C.v[--C.n];
		return;
	}
}

void check_server_recovered(struct server *s)
{
	ramp_begin(find(s), s, mono_ms());
}

void check_passive_failure(struct server *s)
{
	atomic_fetch_add_explicit(&s->passive_fails, 1, memory_order_relaxed);
}

void check_passive_success(struct server *s)
{
	/* a load first: the common case writes nothing to a shared line */
	if (atomic_load_explicit(&s->passive_fails, memory_order_relaxed))
		atomic_store_explicit(&s->passive_fails, 0, memory_order_relaxed);
}
