/*
 * shared_sentinel.c - one round of Redis Sentinel discovery at a time, for
 * the link of the shared tables (shared_sentinel.h, doc/scale-out.md).
 *
 * A round is a short exchange with one sentinel after another: connect,
 * `SENTINEL get-master-addr-by-name NAME`, one answer, close. No connection
 * to a sentinel is kept between rounds: a round runs only while the link has
 * no master (at start, and after every drop of the master's connection), so
 * the link never watches more than one socket and its loop needs nothing
 * more than one fd slot per link.
 *
 * hiredis frees a context itself when its connection fails or closes, and
 * only defers a free asked for from inside one of its callbacks; so the
 * callbacks here only record what happened, and the round moves on (closing
 * the context, trying the next sentinel) in on_io/on_timer, outside them.
 */
#include "api.h"
#include "shared_sentinel.h"
#include "shared_link.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <time.h>

struct sent_addr {
	char host[64];
	int port;
	char text[80];
};

enum outcome { PENDING, GOT_ADDR, GOT_NOTHING };

struct shared_sentinel {
	struct sent_addr a[SHARED_SENTINELS_MAX];
	int n;
	char master[128];
	uint32_t timeout_ms;
	redisAsyncContext *ac;
	struct shared_watch w;

	bool running;
	int first, cur, tried;          /* where rounds start; who is asked; how many */
	uint64_t deadline;
	enum outcome outcome;           /* of the exchange with a[cur] */

	char host[64];
	int port, from;
	char why[192];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int shared_sentinel_parse_addr(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = addr;
	size_t hl;
	char buf[64], *end;
	unsigned char bin[16];
	long p;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return -1;
		h = addr + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - addr);
	}
	if (!hl || hl >= sizeof(buf) || hl >= hostlen)
		return -1;
	memcpy(buf, h, hl);
	buf[hl] = 0;
	/* no DNS on a worker: an address, of the family its brackets say */
	if (addr[0] == '[' ? inet_pton(AF_INET6, buf, bin) != 1 : inet_pton(AF_INET, buf, bin) != 1)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p <= 0 || p > 65535)
		return -1;
	memcpy(host, buf, hl + 1);
	*port = (int)p;
	return 0;
}

/* ---- the socket of the exchange ------------------------------------------ */

void shared_watch_apply(struct shared_watch *w)
{
	if (w->fd < 0 || w->want == w->mask)
		return;
	w->mask = w->want;
	if (w->fn(w->ctx, w->fd, w->mask) < 0 && w->mask)
		w->failed = true;
}

static void set_watch(struct shared_watch *w, unsigned want)
{
	w->want = want;
	if (!w->lazy)
		shared_watch_apply(w);
}

static void ev_add_read(void *p)  { struct shared_watch *w = p; set_watch(w, w->want | SHARED_EV_READ); }
static void ev_del_read(void *p)  { struct shared_watch *w = p; set_watch(w, w->want & ~SHARED_EV_READ); }
static void ev_add_write(void *p) { struct shared_watch *w = p; set_watch(w, w->want | SHARED_EV_WRITE); }
static void ev_del_write(void *p) { struct shared_watch *w = p; set_watch(w, w->want & ~SHARED_EV_WRITE); }
static void ev_cleanup(void *p)
{
	struct shared_watch *w = p;

	/* the fd is about to be closed: now, lazy or not */
	w->want = 0;
	shared_watch_apply(w);
	w->fd = -1;
	w->mask = 0;
}

void shared_watch_attach(struct shared_watch *w, redisAsyncContext *ac)
{
	ac->ev.data = w;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	w->fd = ac->c.fd;
	w->mask = w->want = 0;
	w->failed = false;
}

static void failed(struct shared_sentinel *s, const char *what)
{
	if (s->outcome != PENDING)
		return;
	s->outcome = GOT_NOTHING;
	snprintf(s->why, sizeof(s->why), "sentinel %s: %.120s", s->a[s->cur].text, what);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct shared_sentinel *s = ac->data;

	if (status != REDIS_OK) {
		failed(s, ac->errstr[0] ? ac->errstr : "connect failed");
		s->ac = NULL;  /* hiredis frees it on return */
	}
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct shared_sentinel *s = ac->data;

	failed(s, ac->errstr[0] ? ac->errstr : "connection closed");
	s->ac = NULL;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct shared_sentinel *s = ac->data;
	redisReply *rep = r;

	if (!rep) {
		failed(s, "connection closed");
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		failed(s, rep->str);
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY) {
		/* nil: this sentinel monitors no master of that name */
		char what[192];

		snprintf(what, sizeof(what), "does not know master %s", s->master);
		failed(s, what);
		return;
	}
	if (rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_STRING &&
	    rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len < sizeof(s->host)) {
		char *end;
		long p = strtol(rep->element[1]->str, &end, 10);
		unsigned char bin[16];

		/* sentinels announce IP addresses (hostnames only with
		 * resolve-hostnames, which a worker could not resolve anyway) */
		if (*end == 0 && p > 0 && p <= 65535 &&
		    (inet_pton(AF_INET, rep->element[0]->str, bin) == 1 ||
		     inet_pton(AF_INET6, rep->element[0]->str, bin) == 1)) {
			memcpy(s->host, rep->element[0]->str, rep->element[0]->len + 1);
			s->port = (int)p;
			s->from = s->cur;
			s->outcome = GOT_ADDR;
			return;
		}
	}
	failed(s, "answered something that is not an IP address and a port");
}

/* ---- the round ------------------------------------------------------------ */

static void close_ac(struct shared_sentinel *s)
{
	redisAsyncContext *ac = s->ac;

	s->ac = NULL;
	/* its callbacks may still run (pending reply: NULL); the outcome is
	 * recorded already, so they change nothing */
	if (ac)
		redisAsyncFree(ac);
	s->w.fd = -1;
	s->w.mask = s->w.want = 0;
	s->w.failed = false;
}

static bool ask(struct shared_sentinel *s)
{
	const struct sent_addr *a = &s->a[s->cur];
	redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);

	s->outcome = PENDING;
	if (!ac || ac->err) {
		failed(s, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		return false;
	}
	ac->data = s;
	shared_watch_attach(&s->w, ac);
	s->ac = ac;
	s->deadline = now_ms() + s->timeout_ms;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (redisAsyncCommand(ac, on_reply, NULL, "SENTINEL get-master-addr-by-name %s",
			      s->master) != REDIS_OK) {
		failed(s, "cannot queue the question");
		close_ac(s);
		return false;
	}
	return true;
}

/* From the current sentinel on, find one that can be asked. */
static enum shared_sentinel_status next(struct shared_sentinel *s)
{
	while (s->tried < s->n) {
		if (s->tried)
			s->cur = (s->cur + 1) % s->n;
		s->tried++;
		if (ask(s))
			return SHARED_SENTINEL_WAIT;
	}
	s->running = false;
	s->deadline = UINT64_MAX;
	return SHARED_SENTINEL_FAILED;
}

/* After hiredis returned: act on what its callbacks recorded. */
static enum shared_sentinel_status settle(struct shared_sentinel *s)
{
	if (!s->running)
		return SHARED_SENTINEL_WAIT;
	if (s->outcome == PENDING && s->w.failed)
		failed(s, "cannot watch the socket");
	if (s->outcome == PENDING)
		return SHARED_SENTINEL_WAIT;
	close_ac(s);
	if (s->outcome == GOT_ADDR) {
		s->running = false;
		s->deadline = UINT64_MAX;
		s->first = s->cur;  /* it answered: ask it first next time */
		return SHARED_SENTINEL_FOUND;
	}
	return next(s);
}

enum shared_sentinel_status shared_sentinel_begin(struct shared_sentinel *s)
{
	close_ac(s);
	s->running = true;
	s->tried = 0;
	s->cur = s->first;
	s->why[0] = 0;
	if (next(s) == SHARED_SENTINEL_FAILED)
		return SHARED_SENTINEL_FAILED;
	return settle(s);
}

enum shared_sentinel_status shared_sentinel_on_io(struct shared_sentinel *s, unsigned events)
{
	if (s->ac && (events & SHARED_EV_READ))
		redisAsyncHandleRead(s->ac);
	if (s->ac && (events & SHARED_EV_WRITE))
		redisAsyncHandleWrite(s->ac);
	return settle(s);
}

enum shared_sentinel_status shared_sentinel_on_timer(struct shared_sentinel *s)
{
	if (s->running && s->outcome == PENDING && !s->w.failed && now_ms() >= s->deadline) {
		char what[64];

		snprintf(what, sizeof(what), "no answer within %u ms", s->timeout_ms);
		failed(s, what);
	}
	return settle(s);
}

uint64_t shared_sentinel_deadline(const struct shared_sentinel *s)
{
	if (!s->running)
		return UINT64_MAX;
	return s->w.failed || s->outcome != PENDING ? 0 : s->deadline;
}

bool shared_sentinel_same(const struct shared_sentinel *s, const char *const *addrs, int n,
			  const char *master)
{
	if (n != s->n || !master || strcmp(master, s->master))
		return false;
	for (int i = 0; i < n; i++)
		if (!addrs[i] || strcmp(addrs[i], s->a[i].text))
			return false;
	return true;
}

void shared_sentinel_distrust(struct shared_sentinel *s)
{
	s->first = (s->from + 1) % s->n;
}

const char *shared_sentinel_host(const struct shared_sentinel *s) { return s->host; }
int shared_sentinel_port(const struct shared_sentinel *s) { return s->port; }
const char *shared_sentinel_from(const struct shared_sentinel *s) { return s->a[s->from].text; }
const char *shared_sentinel_why(const struct shared_sentinel *s) { return s->why; }
const char *shared_sentinel_master(const struct shared_sentinel *s) { return s->master; }

struct shared_sentinel *shared_sentinel_create(const char *const *addrs, int n, const char *master,
					       uint32_t timeout_ms, const struct shared_sentinel_io *io,
					       char *err, size_t errlen)
{
	struct shared_sentinel *s;

	if (n <= 0 || n > SHARED_SENTINELS_MAX) {
		snprintf(err, errlen, "between 1 and %d sentinels", SHARED_SENTINELS_MAX);
		return NULL;
	}
	/* a name the sentinels accept, sent as one argument */
	if (!master || !master[0] || strlen(master) >= sizeof(s->master) ||
	    strpbrk(master, " \t\r\n\"'")) {
		snprintf(err, errlen, "sentinel needs a master name (no spaces, quotes)");
		return NULL;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		struct sent_addr *a = &s->a[i];

		if (!addrs[i] || strlen(addrs[i]) >= sizeof(a->text) ||
		    shared_sentinel_parse_addr(addrs[i], a->host, sizeof(a->host), &a->port) < 0) {
			snprintf(err, errlen, "sentinel '%.80s': not IP:PORT or [IPv6]:PORT",
				 addrs[i] ? addrs[i] : "");
			free(s);
			return NULL;
		}
		snprintf(a->text, sizeof(a->text), "%s", addrs[i]);
	}
	s->n = n;
	snprintf(s->master, sizeof(s->master), "%s", master);
	s->timeout_ms = timeout_ms ? timeout_ms : 1000;
	s->w.fn = io->watch;
	s->w.ctx = io->ctx;
	s->w.fd = -1;
	s->deadline = UINT64_MAX;
	return s;
}

void shared_sentinel_free(struct shared_sentinel *s)
{
	if (!s)
		return;
	close_ac(s);
	free(s);
}
