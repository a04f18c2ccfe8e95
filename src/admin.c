/*
 * admin.c - the runtime API (SPEC §5): parse one command line, answer it.
 *
 * The protocol is line-oriented text so that an operator can use it with
 * nothing more than socat or `bollard ctl`: one command a line, the answer
 * ends with an empty line, an error is a single line starting "error: ".
 * Any command may be prefixed by "json" to get one JSON document instead
 * (errors stay text lines, so that the client detects them the same way
 * in both forms).
 *
 * Everything runs on the control thread. The counters the workers update
 * are read with relaxed atomic loads: a snapshot that is a few requests
 * stale is fine for monitoring, and nothing here needs ordering with them.
 */
#include "api.h"
#include "admin.h"
#include "bytes.h"
#include "server.h"
#include "srvstate.h"
#include "global.h"
#include "shared.h"
#include "json.h"

#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_MAX_WORDS 16
/* room for a failed reload's answer: the configuration reader stops at
 * 50 errors, each a FILE:LINE: message of a line */
#define ADMIN_RELOAD_ANSWER (64 * 1024)

/* ---- growable answer buffer --------------------------------------------- */

void admin_buf_init(struct admin_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void admin_buf_free(struct admin_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void admin_buf_reset(struct admin_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->p)
		b->p[0] = '\0';
}

/* Room for n more bytes and the NUL (bytes_grow: the growth rule of every
 * heap buffer). */
static bool buf_reserve(struct admin_buf *b, size_t n)
{
	char *np;

	if (b->oom)
		return false;
	np = n < SIZE_MAX ? bytes_grow(b->p, &b->cap, b->len, n + 1, 256) : NULL;
	if (!np) {
		b->oom = true;
		return false;
	}
	b->p = np;
	return true;
}

void admin_buf_add(struct admin_buf *b, const void *s, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void admin_buf_puts(struct admin_buf *b, const char *s)
{
	admin_buf_add(b, s, strlen(s));
}

void admin_buf_printf(struct admin_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void admin_buf_consume(struct admin_buf *b, size_t n)
{
	BUG_ON(n > b->len);
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	if (b->p)
		b->p[b->len] = '\0';
}

/* ---- shared bodies -------------------------------------------------------- */

const char *admin_state_name(int state)
{
	switch (state) {
	case SRV_READY: return "ready";
	case SRV_DRAIN: return "drain";
	case SRV_MAINT: return "maint";
	case SRV_DOWN:  return "down";
	}
	return "unknown";
}

const char *admin_server_health(const struct server *s)
{
	/* what the health checks (check.c) say, whatever the operator chose */
	return server_health_name(atomic_load_explicit(&s->health, memory_order_relaxed));
}

static uint64_t uptime_s(void)
{
	time_t now = time(NULL);

	if (G.start_time == 0 || now < G.start_time)
		return 0;
	return (uint64_t)(now - G.start_time);
}

static void append_json(struct admin_buf *out, struct json *j)
{
	const char *s = json_result(j);

	if (s)
		admin_buf_puts(out, s);
	else
		out->oom = true;
	json_free(j);
}

/* The shared tables' links: "up" (all), "down" (none), "partial". */
static const char *shared_state(const struct shared_totals *t)
{
	return t->links && t->up == t->links ? "up" : t->up ? "partial" : "down";
}

void admin_shared_json(struct json *j)
{
	struct shared_totals t;

	shared_totals(&t);
	json_key(j, "shared_tables");
	json_obj_open(j);
	json_kv_str(j, "state", shared_state(&t));
	json_kv_str(j, "redis", G.cfg->shared->url);
	json_kv_i64(j, "links", t.links);
	json_kv_i64(j, "links_up", t.up);
	json_kv_u64(j, "queued", t.queued);
	json_obj_close(j);
}

void admin_show_info(struct admin_buf *out, bool json)
{
	uint64_t up = uptime_s();
	int threads = G.cfg ? G.cfg->threads : 0;
	int64_t conns = atomic_load_explicit(&G.conns, memory_order_relaxed);
	uint64_t conns_total = atomic_load_explicit(&G.conns_total, memory_order_relaxed);
	uint64_t requests = atomic_load_explicit(&G.requests, memory_order_relaxed);
	uint32_t reloads = atomic_load_explicit(&G.reloads, memory_order_relaxed);
	struct json j;

	if (!json) {
		admin_buf_printf(out,
			"version %s\npid %ld\nuptime_s %llu\nthreads %d\nconns %lld\n"
			"conns_total %llu\nrequests %llu\nreloads %u\n",
			BOLLARD_VERSION, (long)getpid(), (unsigned long long)up, threads,
			(long long)conns, (unsigned long long)conns_total,
			(unsigned long long)requests, (unsigned)reloads);
		if (G.cfg && G.cfg->shared) {
			struct shared_totals t;

			shared_totals(&t);
			admin_buf_printf(out, "shared_tables %s\nshared_tables_redis %s\n"
					 "shared_tables_links %d\nshared_tables_links_up %d\n"
					 "shared_tables_queued %llu\n", shared_state(&t),
					 G.cfg->shared->url, t.links, t.up,
					 (unsigned long long)t.queued);
		}
		return;
	}
	json_init_heap(&j);
	json_obj_open(&j);
	json_kv_str(&j, "version", BOLLARD_VERSION);
	json_kv_i64(&j, "pid", (int64_t)getpid());
	json_kv_u64(&j, "uptime_s", up);
	json_kv_i64(&j, "threads", threads);
	json_kv_i64(&j, "conns", conns);
	json_kv_u64(&j, "conns_total", conns_total);
	json_kv_u64(&j, "requests", requests);
	json_kv_u64(&j, "reloads", reloads);
	if (G.cfg && G.cfg->shared)
		admin_shared_json(&j);
	json_obj_close(&j);
	append_json(out, &j);
	admin_buf_puts(out, "\n");
}

static struct backend *find_backend(const struct config *cfg, const char *name)
{
	int i;

	for (i = 0; cfg && i < cfg->nbackends; i++)
		if (strcmp(cfg->backends[i]->name, name) == 0)
			return cfg->backends[i];
	return NULL;
}

static void server_text(struct admin_buf *out, const struct backend *be,
			const struct server *s)
{
	admin_buf_printf(out, "%s %s %s %s %s %u %lld %llu %llu %s\n",
		be->name, s->name, s->addr.text,
		admin_state_name(atomic_load_explicit(&s->state, memory_order_relaxed)),
		admin_server_health(s),
		(unsigned)atomic_load_explicit(&s->cur_weight, memory_order_relaxed),
		(long long)atomic_load_explicit(&s->conns, memory_order_relaxed),
		(unsigned long long)atomic_load_explicit(&s->sessions, memory_order_relaxed),
		(unsigned long long)atomic_load_explicit(&s->requests, memory_order_relaxed),
		srvstate_origin_name(s));
}

static void server_json(struct json *j, const struct backend *be,
			const struct server *s)
{
	json_obj_open(j);
	json_kv_str(j, "backend", be->name);
	json_kv_str(j, "server", s->name);
	json_kv_str(j, "address", s->addr.text);
	json_kv_str(j, "state",
		    admin_state_name(atomic_load_explicit(&s->state, memory_order_relaxed)));
	json_kv_str(j, "health", admin_server_health(s));
	json_kv_u64(j, "weight", atomic_load_explicit(&s->cur_weight, memory_order_relaxed));
	json_kv_i64(j, "conns", atomic_load_explicit(&s->conns, memory_order_relaxed));
	json_kv_u64(j, "sessions", atomic_load_explicit(&s->sessions, memory_order_relaxed));
	json_kv_u64(j, "requests", atomic_load_explicit(&s->requests, memory_order_relaxed));
	json_kv_u64(j, "connect_errors",
		    atomic_load_explicit(&s->connect_errors, memory_order_relaxed));
	json_kv_str(j, "origin", srvstate_origin_name(s));
	json_obj_close(j);
}

int admin_show_servers(struct admin_buf *out, const char *backend, bool json)
{
	const struct config *cfg = G.cfg;
	struct backend *only = NULL;
	struct json j;
	int b, i;

	if (backend) {
		only = find_backend(cfg, backend);
		if (!only)
			return -1;
	}
	if (json) {
		json_init_heap(&j);
		json_obj_open(&j);
		json_key(&j, "servers");
		json_arr_open(&j);
	} else
		admin_buf_puts(out, "backend server address state health weight conns sessions requests "
			       "origin\n");
	for (b = 0; cfg && b < cfg->nbackends; b++) {
		const struct backend *be = cfg->backends[b];

		if (only && be != only)
			continue;
		for (i = 0; i < be->nservers; i++) {
			if (be->servers[i]->removed)
				continue;
			if (json)
				server_json(&j, be, be->servers[i]);
			else
				server_text(out, be, be->servers[i]);
		}
	}
	if (json) {
		json_arr_close(&j);
		json_obj_close(&j);
		append_json(out, &j);
		admin_buf_puts(out, "\n");
	}
	return 0;
}

/* ---- command dispatch ----------------------------------------------------- */

/* `reload` runs what the control loop installed (control_reload() in
 * control.c); without a control loop (unit tests) it is refused. */
int (*admin_reload)(char *msg, size_t msglen);

static int admin_reload_hook(char *msg, size_t msglen)
{
	if (!admin_reload) {
		snprintf(msg, msglen, "reload is not available here");
		return -1;
	}
	return admin_reload(msg, msglen);
}

static const char help_text[] =
	"commands (prefix any with 'json' for a JSON answer):\n"
	"  help                                     this list\n"
	"  show info                                version, uptime, threads, connections, reloads\n"
	"  show servers [BACKEND]                   one line a server: backend server address state\n"
	"                                           health weight conns sessions requests origin\n"
	"  show sessions BACKEND [SERVER] [limit N]  persistence-table entries: backend method key\n"
	"                                           server idle_s age_s\n"
	"  clear sessions BACKEND [SERVER | key KEY] forget persistence-table entries\n"
	"  set server BACKEND/SERVER state ready|drain|maint\n"
	"                                           drain: only its persistent sessions\n"
	"  set server BACKEND/SERVER weight N       0..1000000; 0 = no new sessions\n"
	"  wait drained BACKEND/SERVER [timeout D]  until no session can reach it (default 5m)\n"
	"  reload                                   read the configuration file again, as SIGHUP\n"
	"  add server BACKEND/NAME ADDRESS [weight N] [maxconn N] [backup] [state S]\n"
	"                                           joins in maint unless state is given\n"
	"  del server BACKEND/NAME                  only in maint with no connection\n";

/*
 * An error answer. The quoted text comes from the client: bound it and
 * replace non-printable bytes so an answer never carries control bytes to
 * the operator's terminal.
 */
static int error_answer(struct admin_buf *out, const char *fmt, const char *arg)
{
	char clean[80];
	size_t i, n = 0;

	for (i = 0; arg && arg[i] && n < sizeof(clean) - 4; i++)
		clean[n++] = (arg[i] >= 0x20 && arg[i] < 0x7f) ? arg[i] : '?';
	if (arg && arg[i]) {
		memcpy(clean + n, "...", 3);
		n += 3;
	}
	clean[n] = '\0';
	char msg[256];
	admin_buf_puts(out, "error: ");
	admin_buf_puts(out, msg_fill(msg, sizeof(msg), fmt, clean));
	admin_buf_puts(out, "\n\n");
	return -1;
}

/*
 * `reload`. A failure is answered in full (issue 10 item 14): the error
 * line, then every FILE:LINE: message of the configuration. They come from
 * the operator's own file, but still go out without control bytes and
 * without an empty line, which would end the answer early.
 */
static int reload_answer(struct admin_buf *out, bool json)
{
	char *msg = malloc(ADMIN_RELOAD_ANSWER);
	int rc;

	if (!msg) {
		admin_buf_puts(out, "error: out of memory\n\n");
		return -1;
	}
	rc = admin_reload_hook(msg, ADMIN_RELOAD_ANSWER);
	if (rc == 0) {
		if (json)
			admin_buf_printf(out, "{\"result\":\"%s\"}\n\n", msg);
		else
			admin_buf_printf(out, "%s\n\n", msg);
		free(msg);
		return 0;
	}
	admin_buf_puts(out, "error: ");
	for (char *p = msg; *p; p++) {
		if (*p == '\n' && (p[1] == '\n' || p[1] == '\0'))
			continue;
		if (*p != '\n' && ((unsigned char)*p < 0x20 || *p == 0x7f))
			*p = '?';
		admin_buf_add(out, p, 1);
	}
	admin_buf_puts(out, "\n\n");
	free(msg);
	return -1;
}

/* "a b" into cmd[0..cap), truncated if needed (error messages only). */
static void join2(char *cmd, size_t cap, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > cap - 2)
		la = cap - 2;
	memcpy(cmd, a, la);
	cmd[la] = ' ';
	if (lb > cap - la - 2)
		lb = cap - la - 2;
	memcpy(cmd + la + 1, b, lb);
	cmd[la + 1 + lb] = '\0';
}

/* Split s (modified in place) on blanks; returns the word count or -1. */
static int split_words(char *s, char **w, int max)
{
	int n = 0;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return n;
		if (n == max)
			return -1;
		w[n++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		if (*s)
			*s++ = '\0';
	}
}

int admin_execute(const char *line, struct admin_buf *out)
{
	char copy[ADMIN_MAX_LINE + 1], cmd[64];
	char *w[ADMIN_MAX_WORDS];
	size_t len = strlen(line);
	bool json = false;
	int n;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > ADMIN_MAX_LINE) {
		admin_buf_printf(out, "error: command too long (over %d bytes)\n\n", ADMIN_MAX_LINE);
		return -1;
	}
	memcpy(copy, line, len);
	copy[len] = '\0';
	n = split_words(copy, w, ADMIN_MAX_WORDS);
	if (n < 0)
		return error_answer(out, "too many words in '%s'", line);
	if (n > 0 && strcmp(w[0], "json") == 0) {
		json = true;
		memmove(w, w + 1, (size_t)(n - 1) * sizeof(w[0]));
		n--;
	}
	if (n == 0) {
		/* an empty line gets an empty answer, so a client never waits */
		admin_buf_puts(out, "\n");
		return 0;
	}

	if (strcmp(w[0], "help") == 0) {
		if (n > 1)
			return error_answer(out, "'%s' takes no argument", "help");
		admin_buf_puts(out, help_text);
		admin_buf_puts(out, "\n");
		return 0;
	}
	if (strcmp(w[0], "show") == 0 && n >= 2 && strcmp(w[1], "info") == 0) {
		if (n > 2)
			return error_answer(out, "'%s' takes no argument", "show info");
		admin_show_info(out, json);
		admin_buf_puts(out, "\n");
		return 0;
	}
	if (strcmp(w[0], "show") == 0 && n >= 2 && strcmp(w[1], "servers") == 0) {
		if (n > 3)
			return error_answer(out, "usage: %s", "show servers [BACKEND]");
		if (admin_show_servers(out, n == 3 ? w[2] : NULL, json) < 0)
			return error_answer(out, "no backend '%s'", w[2]);
		admin_buf_puts(out, "\n");
		return 0;
	}
	if (n >= 2 && (!strcmp(w[0], "show") || !strcmp(w[0], "clear")) &&
	    !strcmp(w[1], "sessions")) {
		const char *msg = NULL, *arg = NULL;
		/* the socket is owner-only, as the state file holding the same
		 * keys is: it shows them whole */
		int r = w[0][0] == 's' ? admin_show_shared_sessions(out, w + 2, n - 2, json, &msg, &arg)
				       : admin_clear_sessions(out, w + 2, n - 2, json, &msg, &arg);
		if (r < 0)
			return error_answer(out, msg, arg ? arg : (w[0][0] == 's' ?
					    "show sessions BACKEND [SERVER] [limit N]" :
					    "clear sessions BACKEND [SERVER | key KEY]"));
		admin_buf_puts(out, "\n");
		return 0;
	}
	if (n >= 2 && ((!strcmp(w[0], "set") && !strcmp(w[1], "server")) ||
		       (!strcmp(w[0], "wait") && !strcmp(w[1], "drained")))) {
		const char *msg = NULL, *arg = NULL;
		int r = w[0][0] == 's' ? admin_set_server(out, w + 2, n - 2, json, &msg, &arg)
				       : admin_wait_drained(out, w + 2, n - 2, json, &msg, &arg);
		if (r < 0)
			return error_answer(out, msg, arg ? arg : (w[0][0] == 's' ?
					    "set server BACKEND/SERVER state ready|drain|maint | weight N" :
					    "wait drained BACKEND/SERVER [timeout D]"));
		if (r == ADMIN_WAIT)
			return ADMIN_WAIT;  /* admin_server.c appended nothing yet */
		if (w[0][0] == 's')
			admin_buf_puts(out, "\n");  /* wait answers carry their own */
		return 0;
	}
	if (n >= 2 && (!strcmp(w[0], "add") || !strcmp(w[0], "del")) && !strcmp(w[1], "server")) {
		const char *msg = NULL, *arg = NULL;
		int r = w[0][0] == 'a' ? admin_add_server(out, w + 2, n - 2, json, &msg, &arg)
				       : admin_del_server(out, w + 2, n - 2, json, &msg, &arg);
		if (r < 0)
			return error_answer(out, msg, arg);
		admin_buf_puts(out, "\n");
		return 0;
	}
	if (strcmp(w[0], "reload") == 0) {
		if (n > 1)
			return error_answer(out, "'%s' takes no argument", "reload");
		return reload_answer(out, json);
	}
	/* name what was not understood: the verb, plus its object if any */
	if (n >= 2) {
		join2(cmd, sizeof(cmd), w[0], w[1]);
		return error_answer(out, "unknown command '%s'; try 'help'", cmd);
	}
	return error_answer(out, "unknown command '%s'; try 'help'", w[0]);
}
