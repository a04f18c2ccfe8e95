/*
 * store_memcached.c - sessions in Memcached (--store memcached://HOST[:PORT]),
 * the cache many PHP and Java deployments share their sessions through.
 *
 * One libmemcached handle per worker thread, in non-blocking mode so that
 * its connect timeout applies, with --store-timeout as the connect, poll,
 * send and receive bounds. After a failure the handle is dropped whole
 * (libmemcached would otherwise keep the server marked dead for its own
 * retry period) and the next call builds a new one. A session is the key
 * "demo:sess:ID" = store_encode(), stored with the TTL as its expiration
 * (relative seconds: below 30 days, memcached's protocol reads it so).
 */
#include "demo.h"
#include "store.h"

#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_PREFIX "demo:sess:"
#define KEY_LEN    (sizeof(KEY_PREFIX) - 1 + SESSION_ID_LEN)
#define TTL_MAX    (30u * 24 * 3600 - 1)

struct mh {
	memcached_st *m;
};

static char host[256];
static int port;

static const char *mc_configure(const char *spec)
{
	const char *rest;

	if (store_hostport(spec, host, sizeof(host), &port, 11211, &rest) < 0 ||
	    (*rest && strcmp(rest, "/") != 0))
		return "--store memcached://HOST[:PORT]: bad address";
	return NULL;
}

static void *mc_open(void)
{
	return calloc(1, sizeof(struct mh));
}

static void mc_reset(void *h)
{
	struct mh *m = h;

	if (m->m)
		memcached_free(m->m);
	m->m = NULL;
}

static int ready(struct mh *m, struct store_err *e)
{
	uint64_t ms = store_cfg.timeout_ms;

	if (m->m)
		return 0;
	m->m = memcached_create(NULL);
	if (!m->m)
		return store_fail(e, "memcached: out of memory");
	if (memcached_behavior_set(m->m, MEMCACHED_BEHAVIOR_NO_BLOCK, 1) != MEMCACHED_SUCCESS ||
	    memcached_behavior_set(m->m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1) != MEMCACHED_SUCCESS ||
	    memcached_behavior_set(m->m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, ms) != MEMCACHED_SUCCESS ||
	    memcached_behavior_set(m->m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ms) != MEMCACHED_SUCCESS ||
	    memcached_behavior_set(m->m, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, ms * 1000) != MEMCACHED_SUCCESS ||
	    memcached_behavior_set(m->m, MEMCACHED_BEHAVIOR_SND_TIMEOUT, ms * 1000) != MEMCACHED_SUCCESS)
		return store_fail(e, "memcached: cannot set the timeouts");
	if (memcached_server_add(m->m, host, (in_port_t)port) != MEMCACHED_SUCCESS)
		return store_fail(e, "memcached %s:%d: bad server", host, port);
	return 0;
}

static size_t key_of(const char *id, char *key)
{
	memcpy(key, KEY_PREFIX, sizeof(KEY_PREFIX) - 1);
	memcpy(key + sizeof(KEY_PREFIX) - 1, id, SESSION_ID_LEN);
	return KEY_LEN;
}

static int failed(struct mh *m, const char *what, memcached_return_t rc, struct store_err *e)
{
	return store_fail(e, "memcached %s:%d %s: %s", host, port, what,
			  memcached_strerror(m->m, rc));
}

static int mc_get(void *h, const char *id, size_t len, struct store_session *out,
		  struct store_err *e)
{
	struct mh *m = h;
	char key[KEY_LEN];
	memcached_return_t rc;
	size_t vl = 0;
	uint32_t flags;
	char *v;
	int found = 0;

	if (!store_id_valid(id, len))
		return 0;
	if (ready(m, e) < 0)
		return -1;
	v = memcached_get(m->m, key, key_of(id, key), &vl, &flags, &rc);
	if (!v) {
		if (rc == MEMCACHED_NOTFOUND || rc == MEMCACHED_SUCCESS)
			return 0;
		return failed(m, "get", rc, e);
	}
	memcpy(out->id, id, SESSION_ID_LEN);
	out->id[SESSION_ID_LEN] = '\0';
	if (store_decode(v, vl, out) == 0)
		found = 1;
	else
		store_log("memcached: session %.*s has a value that is not ours; "
			  "starting afresh", (int)len, id);
	free(v);
	return found;
}

static int mc_put(void *h, const struct store_session *s, unsigned ttl_s,
		  char *tok, size_t *toklen, struct store_err *e)
{
	struct mh *m = h;
	char key[KEY_LEN], value[STORE_VALUE_MAX + 1];
	size_t vl = store_encode(s, value);
	memcached_return_t rc;

	if (ready(m, e) < 0)
		return -1;
	rc = memcached_set(m->m, key, key_of(s->id, key), value, vl,
			   (time_t)(ttl_s > TTL_MAX ? TTL_MAX : ttl_s), 0);
	return rc == MEMCACHED_SUCCESS ? 0 : failed(m, "set", rc, e);
}

static int mc_del(void *h, const char *id, struct store_err *e)
{
	struct mh *m = h;
	char key[KEY_LEN];
	memcached_return_t rc;

	if (ready(m, e) < 0)
		return -1;
	rc = memcached_delete(m->m, key, key_of(id, key), 0);
	return rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND ? 0 :
	       failed(m, "delete", rc, e);
}

const struct store_ops store_memcached_ops = {
	.name = "memcached",
	.configure = mc_configure,
	.open = mc_open,
	.get = mc_get,
	.put = mc_put,
	.del = mc_del,
	.reset = mc_reset,
};
