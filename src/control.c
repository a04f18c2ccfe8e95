/*
 * control.c - the main thread's control loop.
 *
 * The worker threads carry the traffic; the main thread, once they run,
 * only listens: to signals (through a signalfd, so that they arrive as
 * ordinary events instead of interrupting code at random points), to the
 * admin socket (the runtime API, admin.c) and to the stats listener
 * (stats.c). It is a small level-triggered epoll loop: the control path
 * sees a handful of connections, so clarity wins over the edge-triggered
 * tricks of the workers.
 *
 * Every control connection is bounded: a command line or a request head
 * longer than its limit is refused, answers waiting to be written stop the
 * reading of further commands (a client that sends but never reads cannot
 * make us buffer without end), idle connections are closed, and each
 * listener has its own cap on how many are open at once. Stats clients are
 * untrusted: their request head has a deadline from accept, so trickling
 * bytes keeps nothing open, and a full budget evicts the slowest head.
 *
 * A graceful stop (SIGTERM, SIGINT) asks the workers to stop accepting and
 * to finish in-flight requests, then polls every 50 ms until they are done
 * or `grace` is over, when the remaining connections are closed by force.
 * A second signal during the grace period forces the stop at once, which is
 * what an operator pressing Ctrl-C twice means. The admin socket and the
 * stats endpoint stay open during the grace period so that the drain can be
 * watched.
 */
#include "api.h"
#include "control.h"
#include "list.h"
#include "reload.h"
#include "admin.h"
#include "check.h"
#include "global.h"
#include "log.h"
#include "priv.h"
#include "sdnotify.h"
#include "srvstate.h"
#include "state.h"
#include "stats.h"
#include "worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Each listener has its own budget, so that HTTP clients can never take
 * the admin socket's slots (issue 9 item 5). */
#define ADMIN_MAX_CLIENTS    128
#define STATS_MAX_CLIENTS    128
/* a command line, its CR LF and the NUL admin_lines() puts after it */
#define ADMIN_LINE_BUF       (ADMIN_MAX_LINE + 3)
#define ADMIN_OUT_HIGH       (1024 * 1024) /* stop reading while more is unsent */
#define ADMIN_IDLE_MS        60000
#define STATS_IDLE_MS        10000
/* A stats request head (and its small body) must be complete this long
 * after accept, however busily it trickles in; the whole connection,
 * answer included, lives at most STATS_LIFE_MS. */
#define STATS_HEAD_MS        10000
#define STATS_LIFE_MS        30000
#define LINGER_MS            2000          /* from the shutdown, not from activity */
#define STOP_TICK_MS         50
#define STATE_SAVE_MS        5000          /* state-file period (issue 3 item 8) */
#define WAIT_TICK_MS         100           /* re-check of parked `wait drained` */
#define ACCEPT_RETRY_MS      100           /* a listener paused by accept errors */

enum control_kind { CK_SIGNAL, CK_ADMIN_LISTEN, CK_STATS_LISTEN, CK_ADMIN, CK_STATS, CK_CHECK };

struct control_conn {
	int fd;
	enum control_kind kind;
	uint32_t events;            /* what is registered with epoll now */
	bool rd_closed;             /* peer sent EOF, or we read no more */
	bool close_after;           /* close once out is written */
	bool skipping;              /* admin: dropping the rest of an over-long line */
	bool lingering;             /* our side is shut: drop input until EOF */
	bool waiting;               /* admin: `wait drained` parked, see poll_waits() */
	bool dead;                  /* closed; freed by reap() once no event can name it */
	struct admin_wait wait;
	uint64_t last_ms;           /* last activity (monotonic) */
	uint64_t born_ms;           /* accepted at */
	struct sockaddr_storage local; /* stats: the address the client connected to */
	bool has_local;
	uint64_t linger_ms;         /* lingering since */
	/* listeners: paused after accept(2) failed (EMFILE...) until
	 * paused_until; fails counts the failed attempts of that spell */
	uint64_t paused_until;
	uint64_t fails;
	char *in;                   /* clients: bytes read, not yet used */
	size_t inlen;
	size_t incap;
	struct admin_buf out;       /* clients: bytes to write */
	struct list link;           /* clients: in control.clients, then control.dead */
};

struct control {
	int epfd;
	struct control_conn sig;
	struct control_conn admin_l;
	struct control_conn stats_l;
	struct list clients;
	struct list dead;           /* closed during this turn of the loop */
	int nadmin, nstats;         /* clients of each listener */
	int npaused;                /* listeners paused by accept errors */
	int nwaiting;               /* parked `wait drained` commands */
	/* to unlink at exit; NULL if none. Our own copy: the configuration
	 * that named it is freed by the first reload (issue 9 item 8). */
	char *admin_path;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Save the persistence tables to state-file; warn once per run of
 * failures, not every period. */
static void save_state(const struct config *cfg)
{
	static bool failing; /* only the saver, or the control thread once the saver is gone */
	char err[512];

	if (!cfg->state_file)
		return;
	if (state_save(cfg, cfg->state_file, err, sizeof(err)) < 0) {
		if (!failing)
			log_msg(LOG_WARN, "state file not saved: %s", err);
		failing = true;
	} else if (failing) {
		log_msg(LOG_INFO, "state file %s saved again", cfg->state_file);
		failing = false;
	}
}

/*
 * The periodic save runs on a thread of its own: with millions of entries
 * writing and fsyncing the file takes long enough to stall the runtime API,
 * the stats and the health checks if the control loop did it. The control
 * loop hands it a held configuration generation (reload.c) and never waits;
 * a save still running when the next one is due makes that one skip.
 */
static pthread_mutex_t saver_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t saver_cond = PTHREAD_COND_INITIALIZER;
static struct config *saver_job;      /* held generation to save, NULL: none */
static bool saver_busy, saver_quit, saver_started;
static pthread_t saver_thread;

static void *saver_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "bollard-save");
	pthread_mutex_lock(&saver_lock);
	for (;;) {
		while (!saver_job && !saver_quit)
			pthread_cond_wait(&saver_cond, &saver_lock);
		if (!saver_job)
			break;
		struct config *cfg = saver_job;
		saver_job = NULL;
		saver_busy = true;
		pthread_mutex_unlock(&saver_lock);
		save_state(cfg);
		cfg_release(cfg);
		pthread_mutex_lock(&saver_lock);
		saver_busy = false;
		pthread_cond_broadcast(&saver_cond);
	}
	pthread_mutex_unlock(&saver_lock);
	return NULL;
}

/* Ask for a save of cfg (control thread); false if one is still running. */
static bool saver_request(struct config *cfg)
{
	if (!saver_started) {
		if (pthread_create(&saver_thread, NULL, saver_main, NULL) != 0) {
			save_state(cfg); /* no thread: save here rather than not at all */
			return true;
		}
		saver_started = true;
	}
	pthread_mutex_lock(&saver_lock);
	bool queued = !saver_busy && !saver_job;
	if (queued) {
		cfg_hold(cfg);
		saver_job = cfg;
		pthread_cond_signal(&saver_cond);
	}
	pthread_mutex_unlock(&saver_lock);
	return queued;
}

/* Wait until no save is queued or running (control thread; only it queues
 * them, so none starts before it continues): a reload must not move tables
 * out of a generation the saver is reading. */
static void saver_wait_idle(void)
{
	pthread_mutex_lock(&saver_lock);
	while (saver_busy || saver_job)
		pthread_cond_wait(&saver_cond, &saver_lock);
	pthread_mutex_unlock(&saver_lock);
}

/* Wait for a running save and stop the thread (before the final save). */
static void saver_stop(void)
{
	if (!saver_started)
		return;
	pthread_mutex_lock(&saver_lock);
	saver_quit = true;
	pthread_cond_broadcast(&saver_cond);
	pthread_mutex_unlock(&saver_lock);
	pthread_join(saver_thread, NULL);
	saver_started = false;
}

static int ep_set(struct control *c, struct control_conn *cc, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = cc };
	int op = cc->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (events == cc->events)
		return 0;
	if (events == 0) {
		cc->events = 0;
		return epoll_ctl(c->epfd, EPOLL_CTL_DEL, cc->fd, NULL);
	}
	if (epoll_ctl(c->epfd, op, cc->fd, &ev) < 0)
		return -1;
	cc->events = events;
	return 0;
}

/* ---- listeners ----------------------------------------------------------- */

/*
 * The admin socket: anyone who can connect can stop servers and read the
 * topology, so it is created 0600. umask(077) around bind(2) closes the
 * window in which the socket would exist with the default mode; the
 * chmod(2) afterwards makes the mode exact whatever the umask was.
 */
static int open_admin(struct control *c, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_msg(LOG_ERR, "admin-socket %s: path too long (at most %zu bytes)",
			path, sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* a socket left by a previous run that did not stop cleanly; never
	 * remove something that is not a socket */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_msg(LOG_ERR, "admin-socket %s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_msg(LOG_ERR, "admin-socket %s: socket: %s", path, strerror(errno));
		return -1;
	}
	old = umask(077);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		log_msg(LOG_ERR, "admin-socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	c->admin_l.fd = fd;
	c->admin_l.kind = CK_ADMIN_LISTEN;
	c->admin_path = strdup(path);
	if (!c->admin_path) {
		log_msg(LOG_ERR, "admin-socket %s: out of memory", path);
		unlink(path);
		return -1;
	}
	if (ep_set(c, &c->admin_l, EPOLLIN) < 0) {
		log_msg(LOG_ERR, "admin-socket %s: epoll: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int open_stats(struct control *c, const struct cfg_addr *a)
{
	int fd, one = 1;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_msg(LOG_ERR, "stats-listen %s: socket: %s", a->text, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 64) < 0) {
		log_msg(LOG_ERR, "stats-listen %s: %s%s", a->text, strerror(errno),
			priv_bind_hint(errno, a));
		close(fd);
		return -1;
	}
	c->stats_l.fd = fd;
	c->stats_l.kind = CK_STATS_LISTEN;
	if (ep_set(c, &c->stats_l, EPOLLIN) < 0) {
		log_msg(LOG_ERR, "stats-listen %s: epoll: %s", a->text, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- clients --------------------------------------------------------------- */

/*
 * Close cc at once, free it later: an event of this turn's epoll batch may
 * still name it (an eviction closes a connection other than the one whose
 * event is handled), so it goes on the dead list, which reap() frees once
 * the batch is done.
 */
static void client_close(struct control *c, struct control_conn *cc)
{
	epoll_ctl(c->epfd, EPOLL_CTL_DEL, cc->fd, NULL);
	close(cc->fd);
	list_del(&cc->link);
	if (cc->kind == CK_ADMIN)
		c->nadmin--;
	else
		c->nstats--;
	free(cc->in);
	admin_buf_free(&cc->out);
	cc->dead = true;
	list_append(&c->dead, &cc->link);
}

static void reap(struct control *c)
{
	while (!list_empty(&c->dead)) {
		struct control_conn *cc = LIST_FIRST(&c->dead, struct control_conn, link);

		list_del(&cc->link);
		free(cc);
	}
}

/*
 * The stats budget is full: make room by closing the stats connection that
 * has spent longest on its request head. A real client sends its head at
 * once and is answered within the turn; the connections still reading a
 * head after a while are the slow ones (slowloris), so a newcomer always
 * gets in. False if every stats connection is past its head.
 */
static bool evict_slowest(struct control *c)
{
	struct control_conn *cc, *oldest = NULL;

	LIST_FOR_EACH(cc, nx, &c->clients, struct control_conn, link)
		if (cc->kind == CK_STATS && !cc->close_after && !cc->lingering &&
		    (!oldest || cc->born_ms <= oldest->born_ms))
			oldest = cc;
	if (!oldest)
		return false;
	client_close(c, oldest);
	return true;
}

static const char *listener_name(const struct control_conn *l)
{
	return l->kind == CK_ADMIN_LISTEN ? "admin-socket" : "stats-listen";
}

/*
 * accept(2) failed for want of a resource (descriptors, memory) with a
 * connection still pending: the level-triggered listener would wake us at
 * once, for ever (issue 9 item 17). Stop watching it for ACCEPT_RETRY_MS,
 * and say so once per spell, not once per attempt.
 */
static void accept_pause(struct control *c, struct control_conn *l, uint64_t now)
{
	if (l->fails++ == 0)
		log_msg(LOG_ERR, "control: accept on %s: %s; not accepting there for now, retried "
			"every %d ms (raise ulimit -n or lower maxconn)", listener_name(l),
			strerror(errno), ACCEPT_RETRY_MS);
	if (ep_set(c, l, 0) == 0)
		c->npaused++;
	l->paused_until = now + ACCEPT_RETRY_MS;
}

/* Watch again the listeners whose pause is over; the next failure pauses
 * them again, the next success says the spell is over. */
static void accept_resume(struct control *c, uint64_t now)
{
	struct control_conn *ls[] = { &c->admin_l, &c->stats_l };

	for (size_t i = 0; c->npaused && i < ARRAY_SIZE(ls); i++)
		if (ls[i]->fd >= 0 && !ls[i]->events && now >= ls[i]->paused_until &&
		    ep_set(c, ls[i], EPOLLIN) == 0)
			c->npaused--;
}

static void accept_all(struct control *c, struct control_conn *l)
{
	for (;;) {
		struct control_conn *cc;
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				accept_pause(c, l, now_ms());
			return;
		}
		if (l->fails) {
			log_msg(LOG_INFO, "control: accepting on %s again (%llu failed attempt%s)",
				listener_name(l), (unsigned long long)l->fails, l->fails == 1 ? "" : "s");
			l->fails = 0;
		}
		if (l->kind == CK_ADMIN_LISTEN ? c->nadmin >= ADMIN_MAX_CLIENTS :
		    c->nstats >= STATS_MAX_CLIENTS && !evict_slowest(c)) {
			/* refusing is an answer too; the limit protects us */
			close(fd);
			continue;
		}
		cc = calloc(1, sizeof(*cc));
		if (cc)
			cc->incap = l->kind == CK_ADMIN_LISTEN ? ADMIN_LINE_BUF : STATS_MAX_REQUEST;
		if (cc)
			cc->in = malloc(cc->incap);
		if (!cc || !cc->in) {
			free(cc);
			close(fd);
			continue;
		}
		cc->fd = fd;
		cc->kind = l->kind == CK_ADMIN_LISTEN ? CK_ADMIN : CK_STATS;
		if (cc->kind == CK_STATS) {
			socklen_t sl = sizeof(cc->local);

			cc->has_local = getsockname(fd, (struct sockaddr *)&cc->local, &sl) == 0;
		}
		cc->last_ms = cc->born_ms = now_ms();
		admin_buf_init(&cc->out);
		if (ep_set(c, cc, EPOLLIN) < 0) {
			free(cc->in);
			free(cc);
			close(fd);
			continue;
		}
		list_push(&c->clients, &cc->link);
		if (cc->kind == CK_ADMIN)
			c->nadmin++;
		else
			c->nstats++;
	}
}

/* Execute every complete command line of cc->in; at EOF, also the last
 * unterminated one (`printf 'show info' | socat` deserves an answer). */
static void admin_lines(struct control_conn *cc)
{
	size_t start = 0;

	/* a parked `wait drained` answers first: commands after it wait */
	if (cc->waiting)
		return;
	if (cc->skipping) {
		char *nl = memchr(cc->in, '\n', cc->inlen);

		if (!nl) {
			cc->inlen = 0;
			return;
		}
		start = (size_t)(nl - cc->in) + 1;
		cc->skipping = false;
	}
	while (start < cc->inlen && cc->out.len < ADMIN_OUT_HIGH) {
		char *nl = memchr(cc->in + start, '\n', cc->inlen - start);
		size_t end = nl ? (size_t)(nl - cc->in) : cc->inlen;

		if (!nl && !cc->rd_closed)
			break;
		cc->in[end] = '\0';  /* end < incap: '\n' or room checked by reader */
		if (admin_execute(cc->in + start, &cc->out) == ADMIN_WAIT)
			cc->waiting = admin_wait_take(&cc->wait);
		start = nl ? end + 1 : end;
		if (cc->waiting)
			break;
	}
	memmove(cc->in, cc->in + start, cc->inlen - start);
	cc->inlen -= start;
	if (cc->inlen == cc->incap - 1 && !memchr(cc->in, '\n', cc->inlen)) {
		/* a full buffer without a newline: a line over the limit
		 * (admin_execute() refuses the lines just over it that fit).
		 * Answer it and skip to the next line rather than close: a
		 * close with unread input would reset the connection and
		 * lose the answer. */
		admin_buf_printf(&cc->out, "error: command too long (over %d bytes)\n\n",
				 ADMIN_MAX_LINE);
		cc->inlen = 0;
		cc->skipping = true;
	}
}

/* A stats request refused before it is complete: "431 Request Header
 * Fields Too Large", "408 Request Timeout". The connection closes after. */
static void stats_refuse(struct control_conn *cc, const char *status)
{
	admin_buf_printf(&cc->out, "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			 status, strlen(status) + 1, status);
	cc->close_after = true;
	cc->inlen = 0;
}

static void stats_request(struct control_conn *cc)
{
	long n = stats_head_len(cc->in, cc->inlen);

	if (n == 0 && cc->inlen >= cc->incap - 1)
		n = -1;     /* the buffer is full and the head still incomplete */
	if (n == 0 && !cc->rd_closed)
		return;
	if (n < 0) {
		stats_refuse(cc, "431 Request Header Fields Too Large");
		return;
	}
	if (n > 0)
		stats_respond(cc->in, (size_t)n, cc->has_local ? &cc->local : NULL, &cc->out);
	/* one request per connection; what follows is not read */
	cc->close_after = true;
	cc->inlen = 0;
}

/* Write what we can; returns -1 on a write error (caller closes). */
static int client_flush(struct control_conn *cc)
{
	while (cc->out.len > 0) {
		ssize_t w = send(cc->fd, cc->out.p, cc->out.len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w <= 0)
			return -1;
		admin_buf_consume(&cc->out, (size_t)w);
	}
	return 0;
}

static void client_event(struct control *c, struct control_conn *cc, uint32_t ev)
{
	uint32_t want;

	cc->last_ms = now_ms();
	if (cc->lingering) {
		char sink[4096];

		for (;;) {
			ssize_t r = recv(cc->fd, sink, sizeof(sink), 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			client_close(c, cc);
			return;
		}
	}
	if (cc->waiting && (ev & (EPOLLHUP | EPOLLERR))) {
		/* the client of a parked wait is gone: nobody to answer */
		client_close(c, cc);
		return;
	}
	if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !cc->rd_closed &&
	    !cc->close_after) {
		/* keep a byte for the NUL admin_lines() puts after a line */
		while (cc->inlen < cc->incap - 1) {
			ssize_t r = recv(cc->fd, cc->in + cc->inlen, cc->incap - 1 - cc->inlen, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (r <= 0) {
				cc->rd_closed = true;
				break;
			}
			cc->inlen += (size_t)r;
		}
		if (cc->kind == CK_ADMIN)
			admin_lines(cc);
		else
			stats_request(cc);
	}
	for (;;) {
		size_t before = cc->inlen;

		if (cc->out.oom || client_flush(cc) < 0) {
			client_close(c, cc);
			return;
		}
		/* lines left over while the output was above its mark */
		if (cc->kind != CK_ADMIN || cc->inlen == 0 || cc->close_after ||
		    cc->out.len >= ADMIN_OUT_HIGH)
			break;
		admin_lines(cc);
		if (cc->inlen == before)
			break;
	}
	if (cc->out.len == 0 && (cc->rd_closed && cc->inlen == 0) && !cc->waiting) {
		client_close(c, cc);
		return;
	}
	if (cc->out.len == 0 && cc->close_after) {
		/* The answer is out. Closing now, with request bytes still
		 * unread (a body we ignore), would make the kernel reset the
		 * connection and the client could lose the answer (RFC 9112
		 * 9.6 describes this "lingering close"): shut our side and
		 * drop input until the client closes or the idle timeout. */
		if (cc->rd_closed || shutdown(cc->fd, SHUT_WR) < 0) {
			client_close(c, cc);
			return;
		}
		cc->lingering = true;
		cc->linger_ms = now_ms();
		if (ep_set(c, cc, EPOLLIN) < 0)
			client_close(c, cc);
		return;
	}
	want = 0;
	if (cc->waiting) {
		/* Read nothing more while parked (it would pile up), but hear
		 * a hang-up: EPOLLRDHUP, unless the buffer is full and a read
		 * could not consume the EOF (level-triggered: it would spin). */
		if (!cc->rd_closed && cc->inlen < cc->incap - 1)
			want |= EPOLLRDHUP;
	} else if (!cc->rd_closed && !cc->close_after && cc->out.len < ADMIN_OUT_HIGH)
		want |= EPOLLIN;
	if (cc->out.len > 0)
		want |= EPOLLOUT;
	if (ep_set(c, cc, want) < 0)
		client_close(c, cc);
}

/*
 * The time limits of control connections. Activity alone never keeps a
 * connection: a lingering close ends LINGER_MS after it began, and a stats
 * connection that trickles its head a byte at a time is answered 408 at
 * STATS_HEAD_MS and gone at STATS_LIFE_MS (a reader as slow as that).
 */
static void sweep_idle(struct control *c, uint64_t now)
{
	struct control_conn *cc;

	LIST_FOR_EACH(cc, nx, &c->clients, struct control_conn, link) {
		if (cc->waiting)
			continue;   /* bounded by its own timeout */
		if (cc->lingering) {
			if (now - cc->linger_ms > LINGER_MS)
				client_close(c, cc);
			continue;
		}
		if (cc->kind == CK_STATS && now - cc->born_ms > STATS_LIFE_MS) {
			client_close(c, cc);
			continue;
		}
		if (cc->kind == CK_STATS && !cc->close_after && now - cc->born_ms > STATS_HEAD_MS) {
			stats_refuse(cc, "408 Request Timeout");
			client_event(c, cc, 0);   /* write it, then linger; may close cc */
			continue;
		}
		if (now - cc->last_ms > (cc->kind == CK_ADMIN ? ADMIN_IDLE_MS : STATS_IDLE_MS))
			client_close(c, cc);
	}
}

/*
 * `wait drained` (admin_server.c): a parked command is re-checked here on
 * every tick, so that waiting never blocks the loop. When it answers, the
 * connection goes on as after any event: flush, then the commands the
 * client sent after the wait. Counts the waits still parked.
 */
static void poll_waits(struct control *c, uint64_t now)
{
	struct control_conn *cc;

	c->nwaiting = 0;
	LIST_FOR_EACH(cc, nx, &c->clients, struct control_conn, link) {
		if (!cc->waiting)
			continue;
		if (admin_wait_poll(&cc->wait, &cc->out, now) == 0) {
			c->nwaiting++;
			continue;
		}
		cc->waiting = false;
		client_event(c, cc, 0);     /* may free cc, never another */
	}
}

/* ---- the loop -------------------------------------------------------------- */

static void control_cleanup(struct control *c)
{
	while (!list_empty(&c->clients))
		client_close(c, LIST_FIRST(&c->clients, struct control_conn, link));
	reap(c);
	if (c->admin_l.fd >= 0)
		close(c->admin_l.fd);
	if (c->admin_path)
		unlink(c->admin_path);
	free(c->admin_path);
	c->admin_path = NULL;
	if (c->stats_l.fd >= 0)
		close(c->stats_l.fd);
	if (c->sig.fd >= 0)
		close(c->sig.fd);
	if (c->epfd >= 0)
		close(c->epfd);
}

/* The running control loop's state, for control_reload() called from the
 * runtime API (admin.c) on this same thread. */
static struct control *self_ctl;
static struct control_conn *self_chk;

int control_reload(char *msg, size_t msglen)
{
	sdnotify_reloading();
	saver_wait_idle();
	if (reload_run(msg, msglen) < 0) {
		/* the old configuration goes on serving: ready again */
		sdnotify("READY=1\nSTATUS=reload failed; running the previous configuration");
		return -1;
	}
	sdnotify("READY=1\nSTATUS=running");
	/* health checks follow the new servers, keeping what they know of
	 * servers that kept their names; check_start() returns the same
	 * descriptor, already watched, so no check_stop() here */
	if (self_chk && check_start(G.cfg) < 0)
		log_msg(LOG_ERR, "reload: health checks could not restart");
	return 0;
}

int control_run(struct config *cfg)
{
	struct control c = { .epfd = -1, .clients = LIST_HEAD_INIT(c.clients),
			     .dead = LIST_HEAD_INIT(c.dead) };
	/* the health checks' own epoll set, watched as one descriptor (check.c) */
	struct control_conn chk = { .fd = -1, .kind = CK_CHECK };
	int check_wait = 1000;
	struct epoll_event evs[32];
	bool stopping = false, forced = false;
	uint64_t deadline = 0, last_sweep, last_save;
	sigset_t mask;
	char dur[32], errbuf[512];
	int i, n;

	c.sig.fd = c.admin_l.fd = c.stats_l.fd = -1;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	/* main.c blocked them before starting the workers; again here so that
	 * the signalfd works whatever the caller did */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);

	c.epfd = epoll_create1(EPOLL_CLOEXEC);
	c.sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	c.sig.kind = CK_SIGNAL;
	if (c.epfd < 0 || c.sig.fd < 0 || ep_set(&c, &c.sig, EPOLLIN) < 0) {
		log_msg(LOG_ERR, "control: epoll/signalfd: %s", strerror(errno));
		goto fail;
	}
	if (cfg->admin_socket && open_admin(&c, cfg->admin_socket) < 0)
		goto fail;
	if (cfg->has_stats && open_stats(&c, &cfg->stats_listen) < 0)
		goto fail;
	/* every port is bound: root is no longer needed (priv.c) */
	if (priv_after_bind(cfg, c.admin_path, errbuf, sizeof(errbuf)) < 0) {
		log_msg(LOG_ERR, "%s", errbuf);
		goto fail;
	}
	sdnotify("READY=1\nSTATUS=running");
	chk.fd = check_start(cfg);
	if (chk.fd < 0 || ep_set(&c, &chk, EPOLLIN) < 0)
		goto fail;
	admin_drain_start(cfg, now_ms());
	/* every listener is bound (the workers' ones before this was called):
	 * only now has the start succeeded (issue 10 item 2) */
	log_msg(LOG_INFO, "bollard %s started: %d thread%s, configuration %s", BOLLARD_VERSION,
		cfg->threads, cfg->threads > 1 ? "s" : "", cfg->file);
	self_ctl = &c;
	self_chk = &chk;
	admin_reload = control_reload;

	last_sweep = last_save = now_ms();
	for (;;) {
		uint64_t now;

		cfg = G.cfg; /* a reload may have swapped it */
		n = epoll_wait(c.epfd, evs, ARRAY_SIZE(evs), stopping ? STOP_TICK_MS :
			       c.npaused ? ACCEPT_RETRY_MS : c.nwaiting ? WAIT_TICK_MS : check_wait);
		if (n < 0 && errno != EINTR) {
			log_msg(LOG_ERR, "control: epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			struct control_conn *cc = evs[i].data.ptr;
			struct signalfd_siginfo si;

			switch (cc->kind) {
			case CK_SIGNAL:
				while (read(c.sig.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					if (si.ssi_signo == SIGHUP) {
						char msg[256];
						if (stopping)
							log_msg(LOG_WARN, "SIGHUP: stopping, not reloading");
						else
							control_reload(msg, sizeof(msg));
					} else if (si.ssi_signo == SIGUSR1) {
						log_reopen();
						log_msg(LOG_INFO, "SIGUSR1: log files reopened");
					} else if (!stopping) {
						admin_duration_text(dur, sizeof(dur), cfg->grace);
						log_msg(LOG_INFO, "stopping (grace %s)", dur);
						sdnotify("STOPPING=1");
						atomic_store(&G.stopping, 1);
						workers_begin_stop();
						stopping = true;
						deadline = now_ms() + cfg->grace;
					} else if (!forced) {
						log_msg(LOG_INFO, "second signal: closing every connection now");
						workers_force_stop();
						forced = true;
					}
				}
				break;
			case CK_ADMIN_LISTEN:
			case CK_STATS_LISTEN:
				accept_all(&c, cc);
				break;
			case CK_CHECK:
				check_events();
				break;
			case CK_ADMIN:
			case CK_STATS:
				/* closed earlier in this batch (an eviction) */
				if (!cc->dead)
					client_event(&c, cc, evs[i].events);
				break;
			}
		}
		reap(&c);
		now = now_ms();
		accept_resume(&c, now);
		cfg = G.cfg; /* a reload during this turn freed the old one */
		poll_waits(&c, now);
		check_wait = check_tick(now);
		if (now - last_sweep >= 1000) {
			sweep_idle(&c, now);
			last_sweep = now;
		}
		/* an operator's change (drain, weight, add server) is saved at
		 * once, not at the next period: a crash right after `set
		 * server ... drain` must not put the server back in the pool */
		bool changed = srvstate_take_dirty();
		if (cfg->state_file && !stopping && (changed || now - last_save >= STATE_SAVE_MS)) {
			if (saver_request(cfg))
				last_save = now;
			else if (changed)
				srvstate_mark_dirty(); /* a save is running: the next one */
		}
		if (!stopping)
			continue;
		if (workers_all_done())
			break;
		if (!forced && now >= deadline) {
			log_msg(LOG_INFO, "grace period over: closing the remaining connections");
			workers_force_stop();
			forced = true;
		}
	}
	workers_join();
	/* SPEC §2: a stop saves state, once no worker touches the tables. */
	cfg = G.cfg;
	saver_stop();
	save_state(cfg);
	check_stop();
	self_chk = NULL;
	control_cleanup(&c);
	log_msg(LOG_INFO, "stopped");
	return 0;

fail:
	workers_begin_stop();
	workers_force_stop();
	workers_join();
	saver_stop();
	check_stop();
	control_cleanup(&c);
	return 1;
}
