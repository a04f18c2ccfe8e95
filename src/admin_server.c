/*
 * admin_server.c - the operator's hand on one server (SPEC §3.2, §5):
 *
 *   set server BACKEND/SERVER state ready|drain|maint
 *   set server BACKEND/SERVER weight N
 *   wait drained BACKEND/SERVER [timeout D]
 *
 * `set server ... state` writes the operator's input (admin_state) and lets
 * server_update_state() combine it with the health checks' input into the
 * one effective state the balancer and persistence read. Nothing else is
 * needed for the request path to follow: persistence keeps sending the
 * sessions of a draining server to it and moves those of a server in
 * maintenance (persist.c), the balancer only assigns new sessions to ready
 * servers (lb.c).
 *
 * `wait drained` cannot block the control thread, which also serves the
 * other admin clients, the stats endpoint and the signals. So when the
 * server is not drained yet, the command is parked: admin_execute()
 * returns ADMIN_WAIT, control.c takes the wait with admin_wait_take() and
 * calls admin_wait_poll() on every tick until it answers. A parked wait
 * keeps the backend and server names, not a pointer: a reload or a
 * `del server` may free the server while the operator waits.
 *
 * What "drained" can mean depends on where the sessions live (SPEC §3.2,
 * "whichever the method can know"):
 * - table methods (learn, source, header, url-param, jwt): bollard holds
 *   the sessions, so the server is drained when no table entry points at
 *   it any more (struct server.sessions, recounted every second by a
 *   worker from the tables; entries go by expiry or `clear sessions`);
 * - client-side methods (cookie insert, cookie prefix) and consistent
 *   hashing: the sessions live in the clients, bollard can only see them
 *   go quiet. The server is drained when no request has reached it for
 *   the time after which no such session can come back: for `cookie
 *   insert`, the smaller of max-idle and max-life (a cookie older than
 *   either is refused) plus a second (cookie times are whole seconds);
 *   without either, and for prefix cookies and hash
 *   balancing, DRAIN_IDLE_DEFAULT_MS (30 minutes, the default `expire` of
 *   the tables, so that every method waits alike);
 * - in every case, no connection to the server may still be busy, and no
 *   request may have reached it in the last DRAIN_IDLE_MIN_MS (2 s): the
 *   session counts lag the tables by up to a second.
 *
 * Everything here runs on the control thread; the counters the workers
 * update are read with relaxed loads (a one-second-stale count only delays
 * the answer by one tick).
 */
#include "api.h"
#include "admin.h"
#include "check.h"
#include "global.h"
#include "json.h"
#include "lb_hash.h"
#include "persist.h"
#include "server.h"
#include "srvstate.h"

#include <time.h>

#define WAIT_DEFAULT_MS        (5u * 60 * 1000)
#define DRAIN_IDLE_DEFAULT_MS  (30u * 60 * 1000)
/* The session counts are recounted every second (worker.c): a server that
 * took a request less than this long ago may own a table entry that is not
 * counted yet. */
#define DRAIN_IDLE_MIN_MS      2000u

/* The wait admin_wait_drained() parked last, until control.c takes it. */
static struct admin_wait pending;
static bool pending_set;

static uint64_t mono_ms(void)
{
	struct timespec ts;

	/* the clock of the workers' w->now (ev.c), which last_request_ms holds */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* "BACKEND/SERVER" in G.cfg, or NULL. */
static struct server *find_server(const char *ref, struct backend **bep)
{
	const struct config *cfg = G.cfg;
	const char *slash = strchr(ref, '/');
	size_t bl;
	int b, i;

	if (!slash || !cfg)
		return NULL;
	bl = (size_t)(slash - ref);
	for (b = 0; b < cfg->nbackends; b++) {
		struct backend *be = cfg->backends[b];

		if (strlen(be->name) != bl || memcmp(be->name, ref, bl) != 0)
			continue;
		for (i = 0; i < be->nservers; i++) {
			if (strcmp(be->servers[i]->name, slash + 1) == 0) {
				if (bep)
					*bep = be;
				return be->servers[i];
			}
		}
	}
	return NULL;
}

static int parse_state(const char *s)
{
	if (strcmp(s, "ready") == 0)
		return SRV_READY;
	if (strcmp(s, "drain") == 0)
		return SRV_DRAIN;
	if (strcmp(s, "maint") == 0)
		return SRV_MAINT;
	return -1;
}

/* A decimal 0..SRV_WEIGHT_MAX, nothing else (no sign, no blanks, no
 * leading zero). */
static int parse_weight(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	size_t i;

	if (!s[0] || strlen(s) > 7 || (s[0] == '0' && s[1]))
		return -1;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > SRV_WEIGHT_MAX)
		return -1;
	*out = v;
	return 0;
}

static void answer_json_open(struct json *j, const struct backend *be, const struct server *s)
{
	json_init_heap(j);
	json_obj_open(j);
	json_kv_str(j, "backend", be->name);
	json_kv_str(j, "server", s->name);
}

static void answer_json_close(struct admin_buf *out, struct json *j)
{
	const char *txt;

	json_obj_close(j);
	txt = json_result(j);
	if (txt) {
		admin_buf_puts(out, txt);
		admin_buf_puts(out, "\n");
	} else
		out->oom = true;
	json_free(j);
}

static int set_state(struct admin_buf *out, struct backend *be, struct server *s, int want,
		     bool json)
{
	int was = atomic_load_explicit(&s->admin_state, memory_order_relaxed);
	int eff;
	struct json j;

	atomic_store_explicit(&s->admin_state, want, memory_order_relaxed);
	srvstate_set(s, SRVSTATE_OP_STATE); /* kept by reloads and the state file */
	eff = server_update_state(s);
	/* SPEC §3.2 slowstart: a server back from maintenance ramps its
	 * weight up instead of taking a full share of new sessions at once;
	 * check.c owns the ramp (and sets the full weight without one) */
	if (was == SRV_MAINT && want == SRV_READY)
		check_server_recovered(s);
	if (json) {
		answer_json_open(&j, be, s);
		json_kv_str(&j, "state", admin_state_name(want));
		json_kv_str(&j, "was", admin_state_name(was));
		json_kv_str(&j, "effective", admin_state_name(eff));
		answer_json_close(out, &j);
		return 0;
	}
	admin_buf_printf(out, "%s/%s state %s (was %s", be->name, s->name,
			 admin_state_name(want), admin_state_name(was));
	if (eff != want)
		admin_buf_printf(out, "; effective %s", admin_state_name(eff));
	admin_buf_puts(out, ")\n");
	return 0;
}

static int set_weight(struct admin_buf *out, struct backend *be, struct server *s, uint32_t wt,
		      bool json)
{
	uint32_t was = atomic_load_explicit(&s->cur_weight, memory_order_relaxed);
	struct json j;

	/* weight is the target (what a slow-start ramp climbs to, and what
	 * consistent hashing places by); cur_weight is what the balancer
	 * reads now. During a ramp check.c overwrites cur_weight on its next
	 * tick, so the ramp simply continues toward the new target. weight
	 * is only read on the control thread: a plain store is enough. */
	__atomic_store_n(&s->weight, wt, __ATOMIC_RELAXED); /* the state saver reads it */
	atomic_store_explicit(&s->cur_weight, wt, memory_order_relaxed);
	srvstate_set(s, SRVSTATE_OP_WEIGHT); /* kept by reloads and the state file */
	if (lb_hash_placed(be) && lb_hash_build(be) < 0) {
		/* the previous placement stays in use: say so rather than
		 * pretend the new weight took effect for hashed keys */
		if (!json)
			admin_buf_printf(out, "%s/%s weight %u (was %u); hash placement not "
					 "rebuilt: out of memory\n", be->name, s->name,
					 (unsigned)wt, (unsigned)was);
		else {
			answer_json_open(&j, be, s);
			json_kv_u64(&j, "weight", wt);
			json_kv_u64(&j, "was", was);
			json_kv_str(&j, "warning", "hash placement not rebuilt: out of memory");
			answer_json_close(out, &j);
		}
		return 0;
	}
	if (json) {
		answer_json_open(&j, be, s);
		json_kv_u64(&j, "weight", wt);
		json_kv_u64(&j, "was", was);
		answer_json_close(out, &j);
		return 0;
	}
	admin_buf_printf(out, "%s/%s weight %u (was %u)\n", be->name, s->name,
			 (unsigned)wt, (unsigned)was);
	return 0;
}

int admin_set_server(struct admin_buf *out, char **w, int n, bool json, const char **msg,
		     const char **arg)
{
	struct backend *be = NULL;
	struct server *s;

	if (n != 3 || (strcmp(w[1], "state") != 0 && strcmp(w[1], "weight") != 0)) {
		*msg = "usage: %s";
		*arg = NULL;
		return -1;
	}
	s = find_server(w[0], &be);
	if (!s) {
		*msg = "no server '%s'";
		*arg = w[0];
		return -1;
	}
	if (strcmp(w[1], "state") == 0) {
		int want = parse_state(w[2]);

		if (want < 0) {
			*msg = "state must be ready, drain or maint, not '%s'";
			*arg = w[2];
			return -1;
		}
		return set_state(out, be, s, want, json);
	}
	{
		uint32_t wt;

		if (parse_weight(w[2], &wt) < 0) {
			*msg = "weight must be an integer from 0 to 1000000, not '%s'";
			*arg = w[2];
			return -1;
		}
		return set_weight(out, be, s, wt, json);
	}
}

/* ---- wait drained ---------------------------------------------------------- */

uint64_t admin_drain_idle_ms(const struct backend *be)
{
	const struct persist_rules *rs = be->persist;
	uint64_t need = DRAIN_IDLE_MIN_MS;
	int i;

	if (be->balance == LB_HASH)
		need = DRAIN_IDLE_DEFAULT_MS;
	for (i = 0; rs && i < rs->n; i++) {
		const struct persist_rule *r = &rs->r[i];
		uint64_t t;

		if (r->kind == PERSIST_PREFIX) {
			t = DRAIN_IDLE_DEFAULT_MS;
		} else if (r->kind == PERSIST_COOKIE) {
			/* a cookie is refused past either limit, so the
			 * smaller one bounds how long it can come back;
			 * plus the one-second resolution of cookie times */
			if (r->max_idle_ms && r->max_life_ms)
				t = MIN(r->max_idle_ms, r->max_life_ms) + 1000u;
			else if (r->max_idle_ms || r->max_life_ms)
				t = (r->max_idle_ms ? r->max_idle_ms : r->max_life_ms) + 1000u;
			else
				t = DRAIN_IDLE_DEFAULT_MS;
		} else
			continue;
		need = MAX(need, t);
	}
	return need;
}

void admin_drain_start(struct config *cfg, uint64_t now_ms)
{
	for (int b = 0; b < cfg->nbackends; b++)
		for (int i = 0; i < cfg->backends[b]->nservers; i++) {
			uint64_t never = 0;

			/* a worker may have stamped a real request already */
			atomic_compare_exchange_strong(&cfg->backends[b]->servers[i]->last_request_ms,
						       &never, now_ms);
		}
}

/* What `wait drained` looks at, read once so that the verdict and the
 * reasons given with a timeout agree. */
struct drain_view {
	int64_t conns;          /* busy server connections */
	uint64_t sessions;      /* table entries pointing at it */
	uint64_t idle_ms;       /* since the last request; UINT64_MAX: none ever */
	uint64_t need_ms;       /* the idle time a drain needs */
};

static void drain_look(const struct server *s, uint64_t now_ms, struct drain_view *v)
{
	uint64_t last = atomic_load_explicit(&s->last_request_ms, memory_order_relaxed);

	v->conns = atomic_load_explicit(&s->conns, memory_order_relaxed);
	v->sessions = atomic_load_explicit(&s->sessions, memory_order_relaxed);
	/* last == 0: no request ever reached it, nor could a client of a
	 * previous run have a session on it: added at run time, or new in a
	 * reload (a server of the starting configuration counts from the
	 * start, admin_drain_start(); a reload carries the time over) */
	v->idle_ms = last == 0 ? UINT64_MAX : now_ms >= last ? now_ms - last : 0;
	v->need_ms = admin_drain_idle_ms(s->be);
}

static bool drain_done(const struct drain_view *v)
{
	return v->conns <= 0 && v->sessions == 0 && v->idle_ms >= v->need_ms;
}

bool admin_server_drained(const struct server *s, uint64_t now_ms)
{
	struct drain_view v;

	drain_look(s, now_ms, &v);
	return drain_done(&v);
}

void admin_duration_text(char *out, size_t cap, uint64_t ms)
{
	uint64_t s = ms / 1000;
	int n = 0;

	if (ms % 1000 || ms == 0) {
		snprintf(out, cap, ms ? "%llums" : "0s", (unsigned long long)ms);
		return;
	}
	out[0] = '\0';
	if (s >= 3600)
		n += snprintf(out + n, cap - (size_t)n, "%lluh", (unsigned long long)(s / 3600));
	if (s % 3600 >= 60 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, "%llum", (unsigned long long)(s % 3600 / 60));
	if (s % 60 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n, "%llus", (unsigned long long)(s % 60));
}

static bool draining(const struct server *s)
{
	int st = atomic_load_explicit(&s->admin_state, memory_order_relaxed);

	return st == SRV_DRAIN || st == SRV_MAINT;
}

static void wait_answer(struct admin_buf *out, bool json, const char *result)
{
	if (json)
		admin_buf_printf(out, "{\"result\":\"%s\"}\n\n", result);
	else
		admin_buf_printf(out, "%s\n\n", result);
}

/*
 * `timeout`, with what still holds the server (issue 10 item 14): busy
 * connections, table sessions, or a last request too recent for the
 * sessions clients carry to have lapsed. Text: "timeout: " and the open
 * conditions; JSON: the same as "open" plus the numbers behind them.
 */
static void wait_timeout(struct admin_buf *out, bool json, const struct server *s,
			 uint64_t now_ms)
{
	struct drain_view v;
	char ago[32], need[32];
	const char *sep = "";
	struct json j;

	drain_look(s, now_ms, &v);
	admin_duration_text(ago, sizeof(ago), v.idle_ms / 1000 * 1000);
	admin_duration_text(need, sizeof(need), v.need_ms);
	if (json) {
		json_init_heap(&j);
		json_obj_open(&j);
		json_kv_str(&j, "result", "timeout");
		json_key(&j, "open");
		json_arr_open(&j);
		if (v.conns > 0)
			json_str(&j, "connections");
		if (v.sessions)
			json_str(&j, "sessions");
		if (v.idle_ms < v.need_ms)
			json_str(&j, "recent-requests");
		json_arr_close(&j);
		json_kv_i64(&j, "conns", v.conns);
		json_kv_u64(&j, "sessions", v.sessions);
		if (v.idle_ms != UINT64_MAX)
			json_kv_u64(&j, "idle_s", v.idle_ms / 1000);
		json_kv_u64(&j, "need_idle_s", (v.need_ms + 999) / 1000);
		answer_json_close(out, &j);
		admin_buf_puts(out, "\n");
		return;
	}
	admin_buf_puts(out, "timeout:");
	if (v.conns > 0) {
		admin_buf_printf(out, " %lld connection%s still open", (long long)v.conns,
				 v.conns == 1 ? "" : "s");
		sep = ";";
	}
	if (v.sessions) {
		admin_buf_printf(out, "%s %llu table session%s still held", sep,
				 (unsigned long long)v.sessions, v.sessions == 1 ? "" : "s");
		sep = ";";
	}
	if (v.idle_ms < v.need_ms)
		admin_buf_printf(out, "%s sessions still fresh (last request %s ago, drained after "
				 "%s without one)", sep, ago, need);
	admin_buf_puts(out, "\n\n");
}

int admin_wait_drained(struct admin_buf *out, char **w, int n, bool json, const char **msg,
		       const char **arg)
{
	struct backend *be = NULL;
	struct server *s;
	uint32_t timeout = WAIT_DEFAULT_MS;

	if (!(n == 1 || (n == 3 && strcmp(w[1], "timeout") == 0))) {
		*msg = "usage: %s";
		*arg = NULL;
		return -1;
	}
	s = find_server(w[0], &be);
	if (!s) {
		*msg = "no server '%s'";
		*arg = w[0];
		return -1;
	}
	if (n == 3 && cfg_parse_duration(w[2], &timeout) < 0) {
		*msg = "invalid timeout '%s' (a duration such as 30s or 5m)";
		*arg = w[2];
		return -1;
	}
	if (!draining(s)) {
		*msg = "server '%s' is not draining (set its state to drain or maint first)";
		*arg = w[0];
		return -1;
	}
	if (admin_server_drained(s, mono_ms())) {
		wait_answer(out, json, "drained");
		return 0;
	}
	memset(&pending, 0, sizeof(pending));
	snprintf(pending.backend, sizeof(pending.backend), "%s", be->name);
	snprintf(pending.server, sizeof(pending.server), "%s", s->name);
	pending.deadline_ms = mono_ms() + timeout;
	pending.json = json;
	pending_set = true;
	return ADMIN_WAIT;
}

bool admin_wait_take(struct admin_wait *w)
{
	if (!pending_set)
		return false;
	*w = pending;
	pending_set = false;
	return true;
}

int admin_wait_poll(struct admin_wait *w, struct admin_buf *out, uint64_t now_ms)
{
	char ref[2 * CFG_NAME_MAX + 2];
	struct server *s;

	snprintf(ref, sizeof(ref), "%s/%s", w->backend, w->server);
	s = find_server(ref, NULL);
	if (!s) {
		/* removed (del server, reload) while we waited */
		admin_buf_printf(out, "error: server '%s' no longer exists\n\n", ref);
		return 1;
	}
	if (!draining(s)) {
		/* the operator changed their mind: waiting on is pointless */
		admin_buf_printf(out, "error: server '%s' is not draining any more\n\n", ref);
		return 1;
	}
	if (admin_server_drained(s, now_ms)) {
		wait_answer(out, w->json, "drained");
		return 1;
	}
	if (now_ms >= w->deadline_ms) {
		wait_timeout(out, w->json, s, now_ms);
		return 1;
	}
	return 0;
}
