/*
 * server.c - combining the operator's and the health checks' view of a
 * server into the one state the request path reads (see server.h).
 */
#include "api.h"
#include "server.h"

int server_update_state(struct server *s)
{
	int admin = atomic_load_explicit(&s->admin_state, memory_order_relaxed);
	int health = atomic_load_explicit(&s->health, memory_order_relaxed);
	int st;
	if (admin == SRV_MAINT)
		st = SRV_MAINT;
	else if (health == HEALTH_DOWN)
		st = SRV_DOWN;
	else
		st = admin;
	atomic_store_explicit(&s->state, st, memory_order_release);
	return st;
}

const char *server_health_name(int health)
{
	switch (health) {
	case HEALTH_UP: return "up";
	case HEALTH_DOWN: return "down";
	default: return "unchecked";
	}
}
