/*
 * srvstate.c - the operator's state of servers across reloads and restarts
 * (see srvstate.h for the rules).
 *
 * The runtime API marks what it changed on the server itself (op_set,
 * origin); a reload carries those marks by name, the state file saves
 * them. Restoring happens at start, on the main thread, before any worker
 * reads the configuration, and at reload, before the new generation is
 * published: so growing a backend's server array here needs none of the
 * publication care `add server` takes on a running generation.
 */
#include "api.h"
#include "srvstate.h"
#include "log.h"
#include "persist.h"
#include "server.h"

#include <stdatomic.h>

/* Set by the control thread, read by the control loop: a plain atomic. */
static _Atomic bool dirty;

void srvstate_mark_dirty(void)
{
	atomic_store_explicit(&dirty, true, memory_order_relaxed);
}

void srvstate_set(struct server *s, unsigned what)
{
	atomic_fetch_or_explicit(&s->op_set, (uint8_t)what, memory_order_relaxed);
	atomic_store_explicit(&s->origin, SRVSTATE_RUNTIME, memory_order_relaxed);
	srvstate_mark_dirty();
}

bool srvstate_take_dirty(void)
{
	return atomic_exchange_explicit(&dirty, false, memory_order_relaxed);
}

const char *srvstate_origin_name(const struct server *s)
{
	switch (atomic_load_explicit(&s->origin, memory_order_relaxed)) {
	case SRVSTATE_RUNTIME: return "runtime";
	case SRVSTATE_STATE_FILE: return "state-file";
	default: return "config";
	}
}

void srvstate_server_added(struct server *s)
{
	s->cfg_weight = s->weight;
}

/* ---- the state file's records ---------------------------------------------- */

#define REC_FIXED (1 + 1 + 4 + 4 + 4 + 1 + 1) /* after the name: up to the address */

static uint8_t *room(struct bytebuf *b, size_t n)
{
	return bytebuf_room(b, n, 1024);
}

static void put_name(struct bytebuf *b, const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	uint8_t *q = room(b, 1 + n);

	if (q) {
		q[0] = (uint8_t)n;
		memcpy(q + 1, s, n);
	}
}

void srvstate_encode(const struct backend *be, struct bytebuf *b)
{
	/* the saver runs on a thread of its own while `add server` may
	 * publish a longer array (cfg.h) */
	int n = __atomic_load_n(&be->nservers, __ATOMIC_ACQUIRE);
	struct server *const *sv = __atomic_load_n(&be->servers, __ATOMIC_ACQUIRE);
	size_t at = b->len;
	uint32_t count = 0;
	uint8_t *q;

	if (!room(b, 4))
		return;
	for (int i = 0; i < n; i++) {
		const struct server *s = sv[i];
		unsigned op = atomic_load_explicit(&s->op_set, memory_order_relaxed);

		if (s->removed || !op)
			continue; /* nothing beyond the configuration to keep */
		put_name(b, s->name, CFG_NAME_MAX - 1);
		q = room(b, REC_FIXED - 1);
		if (q) {
			q[0] = (uint8_t)atomic_load_explicit(&s->admin_state, memory_order_relaxed);
			q[1] = (uint8_t)op;
			put32(q + 2, __atomic_load_n(&s->weight, __ATOMIC_RELAXED));
			put32(q + 6, s->cfg_weight);
			put32(q + 10, s->maxconn);
			q[14] = s->backup;
		}
		put_name(b, s->addr.text, sizeof(s->addr.text) - 1);
		count++;
	}
	if (!b->oom)
		put32(b->p + at, count);
}

/* One record at p[*off]: its fields, bounds checked. */
struct rec {
	char name[256];
	char addr[256];
	uint8_t state, op, backup;
	uint32_t weight, cfg_weight, maxconn;
};

static int take(const uint8_t *p, size_t len, size_t *off, char out[256])
{
	size_t n;

	if (*off >= len || len - *off - 1 < (n = p[*off]))
		return -1;
	memcpy(out, p + *off + 1, n);
	out[n] = '\0';
	*off += 1 + n;
	return 0;
}

static int take_rec(const uint8_t *p, size_t len, size_t *off, struct rec *r)
{
	if (take(p, len, off, r->name) < 0 || len - *off < REC_FIXED - 1)
		return -1;
	r->state = p[*off];
	r->op = p[*off + 1];
	r->weight = get32(p + *off + 2);
	r->cfg_weight = get32(p + *off + 6);
	r->maxconn = get32(p + *off + 10);
	r->backup = p[*off + 14];
	*off += REC_FIXED - 1;
	if (take(p, len, off, r->addr) < 0)
		return -1;
	if (r->state > SRV_MAINT || !r->name[0])
		return -1;
	return 0;
}

int srvstate_skip(const uint8_t *p, size_t len, size_t *off)
{
	struct rec r;
	uint32_t n;

	if (len - *off < 4)
		return -1;
	n = get32(p + *off);
	*off += 4;
	for (uint32_t i = 0; i < n; i++)
		if (take_rec(p, len, off, &r) < 0)
			return -1;
	return 0;
}

/* A new server in be, appended to its array (be not published yet). */
static struct server *append_server(struct backend *be, const char *name,
				    const struct cfg_addr *addr, uint32_t weight,
				    uint32_t maxconn, bool backup)
{
	struct server *s = calloc(1, sizeof(*s));
	struct server **arr;

	if (!s)
		return NULL;
	arr = realloc(be->servers, ((size_t)be->nservers + 1) * sizeof(*arr));
	if (!arr) {
		free(s);
		return NULL;
	}
	be->servers = arr;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->addr = *addr;
	s->weight = weight;
	s->maxconn = maxconn;
	s->backup = backup;
	s->be = be;
	s->idx = be->nservers;
	s->line = be->line;
	atomic_init(&s->health, HEALTH_UNCHECKED);
	atomic_init(&s->cur_weight, weight);
	persist_server_added(s);
	be->servers[be->nservers++] = s;
	return s;
}

int srvstate_apply(struct backend *be, const uint8_t *p, size_t len, size_t off,
		   size_t *restored, size_t *added)
{
	uint32_t n = get32(p + off);

	off += 4;
	for (uint32_t i = 0; i < n; i++) {
		struct rec r;
		struct server *s;
		unsigned took = 0;

		if (take_rec(p, len, &off, &r) < 0)
			return 0; /* validated before: cannot happen */
		s = cfg_find_server(be, r.name);
		if (!s && (r.op & SRVSTATE_OP_ADDED)) {
			struct cfg_addr a;

			if (cfg_parse_addr(r.addr, &a) < 0 || a.ss.ss_family == AF_UNSPEC) {
				log_msg(LOG_WARN, "state file: server %s/%s added at runtime has a bad "
					"address '%s': not added again", be->name, r.name, r.addr);
				continue;
			}
			s = append_server(be, r.name, &a, r.weight, r.maxconn, r.backup);
			if (!s)
				return -1;
			(*added)++;
			took |= SRVSTATE_OP_ADDED;
		} else if (!s) {
			continue; /* gone from the configuration */
		}
		if (r.op & SRVSTATE_OP_STATE) {
			atomic_store_explicit(&s->admin_state, r.state, memory_order_relaxed);
			took |= SRVSTATE_OP_STATE;
		}
		if ((r.op & SRVSTATE_OP_WEIGHT) && !(took & SRVSTATE_OP_ADDED)) {
			if (s->cfg_weight == r.cfg_weight) {
				s->weight = r.weight;
				atomic_store_explicit(&s->cur_weight, r.weight, memory_order_relaxed);
				took |= SRVSTATE_OP_WEIGHT;
			} else {
				log_msg(LOG_INFO, "state file: weight %u of %s/%s (set at runtime) not "
					"restored: the configuration changed it from %u to %u", r.weight,
					be->name, s->name, r.cfg_weight, s->cfg_weight);
			}
		}
		if (took & SRVSTATE_OP_ADDED)
			took |= r.op & SRVSTATE_OP_WEIGHT;
		if (!took)
			continue;
		atomic_store_explicit(&s->op_set, (uint8_t)took, memory_order_relaxed);
		atomic_store_explicit(&s->origin, SRVSTATE_STATE_FILE, memory_order_relaxed);
		server_update_state(s);
		(*restored)++;
	}
	return 0;
}

/* ---- reload ------------------------------------------------------------------- */

int srvstate_carry(const struct backend *ob, struct backend *nb)
{
	int rc = 0;

	for (int i = 0; i < ob->nservers; i++) {
		const struct server *os = ob->servers[i];
		unsigned op = atomic_load_explicit(&os->op_set, memory_order_relaxed);
		struct server *ns;

		if (os->removed || !op)
			continue;
		ns = cfg_find_server(nb, os->name);
		if (!ns && (op & SRVSTATE_OP_ADDED)) {
			ns = append_server(nb, os->name, &os->addr, os->weight, os->maxconn,
					   os->backup);
			if (!ns) {
				log_msg(LOG_ERR, "reload: out of memory: server %s/%s added at runtime "
					"is not in the new configuration", nb->name, os->name);
				rc = -1;
				continue;
			}
			ns->cfg_weight = os->cfg_weight;
		} else if (!ns) {
			continue;
		} else {
			/* the file defines it now: it is the file's server */
			op &= ~(unsigned)SRVSTATE_OP_ADDED;
		}
		if (op & SRVSTATE_OP_WEIGHT) {
			if (ns->cfg_weight == os->cfg_weight) {
				ns->weight = os->weight;
				atomic_store_explicit(&ns->cur_weight,
						      atomic_load_explicit(&os->cur_weight,
									   memory_order_relaxed),
						      memory_order_relaxed);
			} else {
				op &= ~(unsigned)SRVSTATE_OP_WEIGHT; /* the edited file wins */
			}
		}
		atomic_store_explicit(&ns->op_set, (uint8_t)op, memory_order_relaxed);
		atomic_store_explicit(&ns->origin, op ? atomic_load_explicit(&os->origin,
			memory_order_relaxed) : SRVSTATE_CONFIG, memory_order_relaxed);
	}
	return rc;
}
