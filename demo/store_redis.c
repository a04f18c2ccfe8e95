/*
 * store_redis.c - sessions in Redis (--store redis://HOST[:PORT][/DB]), the
 * usual shared store of stateless application servers.
 *
 * One blocking hiredis connection per worker thread, opened on first use
 * and after a failure, with --store-timeout on the connect and on every
 * read and write (hiredis sets SO_RCVTIMEO/SO_SNDTIMEO), so a Redis that
 * is down or stopped costs at most that. A session is one string key,
 * "demo:sess:ID" = store_encode(), written with SET ... EX TTL so that Redis
 * expires it (the TTL restarts with every write, as an idle timeout).
 */
#include "demo.h"
#include "store.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_PREFIX "demo:sess:"

struct rh {
	redisContext *c;
};

static char host[256];
static int port, db;

static const char *rd_configure(const char *spec)
{
	const char *rest;
	char *end;

	if (store_hostport(spec, host, sizeof(host), &port, 6379, &rest) < 0)
		return "--store redis://HOST[:PORT][/DB]: bad address";
	if (*rest == '/' && rest[1]) {
		long v = strtol(rest + 1, &end, 10);
		if (*end || v < 0 || v > 1000000)
			return "--store redis://HOST[:PORT][/DB]: bad DB number";
		db = (int)v;
	}
	return NULL;
}

static void *rd_open(void)
{
	return calloc(1, sizeof(struct rh));
}

static void rd_reset(void *h)
{
	struct rh *r = h;

	if (r->c)
		redisFree(r->c);
	r->c = NULL;
}

static int connected(struct rh *r, struct store_err *e)
{
	struct timeval tv = {
		.tv_sec = store_cfg.timeout_ms / 1000,
		.tv_usec = (store_cfg.timeout_ms % 1000) * 1000,
	};
	redisReply *rep;

	if (r->c)
		return 0;
	r->c = redisConnectWithTimeout(host, port, tv);
	if (!r->c)
		return store_fail(e, "redis %s:%d: out of memory", host, port);
	if (r->c->err)
		return store_fail(e, "redis %s:%d: %s", host, port, r->c->errstr);
	if (redisSetTimeout(r->c, tv) != REDIS_OK)
		return store_fail(e, "redis %s:%d: cannot set the timeout", host, port);
	if (db) {
		rep = redisCommand(r->c, "SELECT %d", db);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			store_fail(e, "redis SELECT %d: %s", db, rep ? rep->str : r->c->errstr);
			freeReplyObject(rep);
			return -1;
		}
		freeReplyObject(rep);
	}
	return 0;
}

/* A reply, or -1 with the error (a NULL reply: the connection failed). */
static int check(struct rh *r, redisReply *rep, const char *what, struct store_err *e)
{
	if (!rep)
		return store_fail(e, "redis %s:%d %s: %s", host, port, what,
				  r->c->errstr[0] ? r->c->errstr : "no answer");
	if (rep->type == REDIS_REPLY_ERROR) {
		store_fail(e, "redis %s: %s", what, rep->str);
		freeReplyObject(rep);
		return -1;
	}
	return 0;
}

static int rd_get(void *h, const char *key, size_t len, struct store_session *out,
		  struct store_err *e)
{
	struct rh *r = h;
	redisReply *rep;
	int found = 0;

	if (!store_id_valid(key, len))
		return 0;
	if (connected(r, e) < 0)
		return -1;
	rep = redisCommand(r->c, "GET " KEY_PREFIX "%b", key, len);
	if (check(r, rep, "GET", e) < 0)
		return -1;
	if (rep->type == REDIS_REPLY_STRING) {
		memcpy(out->id, key, SESSION_ID_LEN);
		out->id[SESSION_ID_LEN] = '\0';
		if (store_decode(rep->str, rep->len, out) == 0)
			found = 1;
		else
			store_log("redis: session %.*s has a value that is not ours; "
				  "starting afresh", (int)len, key);
	}
	freeReplyObject(rep);
	return found;
}

static int rd_put(void *h, const struct store_session *s, unsigned ttl_s,
		  char *tok, size_t *toklen, struct store_err *e)
{
	struct rh *r = h;
	char value[STORE_VALUE_MAX + 1];
	size_t vl = store_encode(s, value);
	redisReply *rep;

	if (connected(r, e) < 0)
		return -1;
	rep = redisCommand(r->c, "SET " KEY_PREFIX "%s %b EX %u", s->id, value, vl, ttl_s);
	if (check(r, rep, "SET", e) < 0)
		return -1;
	freeReplyObject(rep);
	return 0;
}

static int rd_del(void *h, const char *id, struct store_err *e)
{
	struct rh *r = h;
	redisReply *rep;

	if (connected(r, e) < 0)
		return -1;
	rep = redisCommand(r->c, "DEL " KEY_PREFIX "%s", id);
	if (check(r, rep, "DEL", e) < 0)
		return -1;
	freeReplyObject(rep);
	return 0;
}

const struct store_ops store_redis_ops = {
	.name = "redis",
	.configure = rd_configure,
	.open = rd_open,
	.get = rd_get,
	.put = rd_put,
	.del = rd_del,
	.reset = rd_reset,
};
