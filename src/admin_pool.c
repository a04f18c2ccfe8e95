/*
 * admin_pool.c - growing and shrinking a backend at runtime:
 * `add server BACKEND/NAME ADDRESS [weight N] [maxconn N] [backup]
 * [state ready|drain|maint]` and `del server BACKEND/NAME` (SPEC §5).
 *
 * Workers read a backend's server list without a lock, so the list only
 * ever grows and is published the safe way: a new array holding the old
 * pointers plus the new server, stored before the new count (release);
 * readers load the count, then the array (acquire). Old arrays are retired,
 * not freed, until the configuration generation goes. A deleted server keeps
 * its slot (persistence tables and per-thread pools index servers by slot)
 * and is marked removed: nothing routes to it, nothing shows it.
 */
#include "api.h"
#include "admin.h"
#include "check.h"
#include "global.h"
#include "lb_hash.h"
#include "log.h"
#include "persist.h"
#include "server.h"
#include "srvstate.h"
#include "stick.h"

static bool split_name(char *arg, struct backend **be, char **name)
{
	char *slash = strchr(arg, '/');
	if (!slash)
		return false;
	*slash = 0;
	*name = slash + 1;
	*be = cfg_find_backend(G.cfg, arg);
	*slash = '/';
	return *be != NULL;
}

static bool valid_server_name(const char *s)
{
	size_t n = strlen(s);
	if (!n || n >= CFG_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static struct server *find_live(const struct backend *be, const char *name)
{
	for (int i = 0; i < be->nservers; i++)
		if (!be->servers[i]->removed && !strcmp(be->servers[i]->name, name))
			return be->servers[i];
	return NULL;
}

/* w[0..n): BACKEND/NAME ADDRESS [options]. */
int admin_add_server(struct admin_buf *out, char **w, int n, bool json, const char **msg,
		     const char **arg)
{
	struct backend *be;
	char *name;
	*arg = n >= 1 ? w[0] : NULL;
	if (n < 2) {
		*msg = "usage: %s";
		*arg = "add server BACKEND/NAME ADDRESS [weight N] [maxconn N] [backup] [state S]";
		return -1;
	}
	if (!split_name(w[0], &be, &name)) {
		*msg = "no backend for '%s'";
		return -1;
	}
	if (!valid_server_name(name)) {
		*msg = "invalid server name in '%s' (letters, digits, '_', '-', '.')";
		return -1;
	}
	if (find_live(be, name)) {
		*msg = "server '%s' exists already";
		return -1;
	}
	struct server *s = calloc(1, sizeof(*s));
	if (!s) {
		*msg = "out of memory (%s)";
		return -1;
	}
	if (cfg_parse_addr(w[1], &s->addr) < 0 || s->addr.ss.ss_family == AF_UNSPEC) {
		free(s);
		*msg = "invalid address '%s' (IP:PORT)";
		*arg = w[1];
		return -1;
	}
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->weight = 100;
	int state = SRV_MAINT; /* SPEC 5: a new server waits for the operator */
	for (int i = 2; i < n; i++) {
		char *end;
		const char *v = i + 1 < n ? w[i + 1] : NULL;
		unsigned long x = v ? strtoul(v, &end, 10) : 0;
		if (!strcmp(w[i], "weight") && v && *v >= '0' && *v <= '9' && !*end &&
		    x <= SRV_WEIGHT_MAX) {
			s->weight = (uint32_t)x;
			i++;
		} else if (!strcmp(w[i], "maxconn") && v && !*end && x <= 10000000) {
			s->maxconn = (uint32_t)x;
			i++;
		} else if (!strcmp(w[i], "backup")) {
			s->backup = true;
		} else if (!strcmp(w[i], "state") && v && (!strcmp(v, "ready") || !strcmp(v, "drain") ||
							   !strcmp(v, "maint"))) {
			state = v[0] == 'r' ? SRV_READY : v[0] == 'd' ? SRV_DRAIN : SRV_MAINT;
			i++;
		} else {
			free(s);
			*msg = "invalid option '%s' (weight N, maxconn N, backup, state ready|drain|maint)";
			*arg = w[i];
			return -1;
		}
	}
	s->be = be;
	s->idx = be->nservers;
	atomic_init(&s->admin_state, state);
	atomic_init(&s->health, HEALTH_UNCHECKED);
	atomic_init(&s->cur_weight, s->weight);
	server_update_state(s);
	persist_server_added(s);
	/* kept by reloads and the state file, with its state */
	srvstate_set(s, SRVSTATE_OP_ADDED | SRVSTATE_OP_STATE);

	struct server **arr = calloc((size_t)be->nservers + 1, sizeof(*arr));
	struct server ***ret = realloc(be->retired, ((size_t)be->nretired + 1) * sizeof(*ret));
	if (!arr || !ret) {
		free(arr);
		if (ret)
			be->retired = ret;
		free(s);
		*msg = "out of memory (%s)";
		return -1;
	}
	be->retired = ret;
	memcpy(arr, be->servers, (size_t)be->nservers * sizeof(*arr));
	arr[be->nservers] = s;
	be->retired[be->nretired++] = be->servers;
	__atomic_store_n(&be->servers, arr, __ATOMIC_RELEASE);
	__atomic_store_n(&be->nservers, be->nservers + 1, __ATOMIC_RELEASE);

	if (check_server_add(s) < 0)
		log_msg(LOG_ERR, "add server %s/%s: health checks could not start (out of memory)",
			be->name, s->name);
	if (lb_hash_placed(be))
		lb_hash_build(be);
	if (json)
		admin_buf_printf(out, "{\"added\":\"%s/%s\",\"state\":\"%s\"}\n", be->name, s->name,
				 srv_state_name(state));
	else
		admin_buf_printf(out, "added %s/%s %s state %s\n", be->name, s->name, s->addr.text,
				 srv_state_name(state));
	return 0;
}

/* w[0..n): BACKEND/NAME. Refused unless in maint with no connection. */
int admin_del_server(struct admin_buf *out, char **w, int n, bool json, const char **msg,
		     const char **arg)
{
	struct backend *be;
	char *name;
	*arg = n >= 1 ? w[0] : NULL;
	if (n != 1) {
		*msg = "usage: %s";
		*arg = "del server BACKEND/NAME";
		return -1;
	}
	struct server *s = split_name(w[0], &be, &name) ? find_live(be, name) : NULL;
	if (!s) {
		*msg = "no server '%s'";
		return -1;
	}
	if (atomic_load(&s->admin_state) != SRV_MAINT) {
		*msg = "server '%s' is not in maint: set server ... state maint first";
		return -1;
	}
	if (atomic_load(&s->conns) > 0) {
		*msg = "server '%s' still has active connections";
		return -1;
	}
	s->removed = true;
	__atomic_store_n(&s->weight, 0, __ATOMIC_RELAXED); /* the state saver reads it */
	atomic_store(&s->cur_weight, 0);
	check_server_del(s);
	if (lb_hash_placed(be))
		lb_hash_build(be);
	/* its table entries would route no one: free them now */
	size_t cleared = 0;
	const struct persist_rules *rs = be->persist;
	for (int i = 0; rs && i < rs->n; i++)
		if (rs->r[i].table)
			cleared += stick_clear_server(rs->r[i].table, s->sid);
	atomic_store(&s->sessions, 0);
	if (json)
		admin_buf_printf(out, "{\"deleted\":\"%s/%s\",\"sessions_cleared\":%zu}\n", be->name,
				 s->name, cleared);
	else
		admin_buf_printf(out, "deleted %s/%s (%zu sessions cleared)\n", be->name, s->name,
				 cleared);
	return 0;
}
