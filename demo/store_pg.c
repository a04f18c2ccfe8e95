/*
 * store_pg.c - sessions in PostgreSQL (--store postgresql://...), the
 * durable shared store: a session survives a restart of the database.
 *
 * The table is created when absent:
 *   demo_sessions (id text PRIMARY KEY, data text NOT NULL,
 *                  expires_at timestamptz NOT NULL)
 * a write is an upsert (INSERT ... ON CONFLICT DO UPDATE) that moves
 * expires_at to now() + TTL, a read ignores expired rows, and each new
 * connection sweeps the expired ones (so does every thread once a minute).
 *
 * libpq's blocking calls have no client-side timeout (a stopped server
 * would hold the thread for ever), so every exchange uses the asynchronous
 * API, non-blocking, and poll(2) with a deadline of --store-timeout from
 * the start of the call. The statements are prepared once per connection.
 */
#include "demo.h"
#include "store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_MS 60000

struct ph {
	PGconn *c;
	uint64_t swept_ms;
};

static const char *conninfo;

static const char *const create_sql =
	"CREATE TABLE IF NOT EXISTS demo_sessions (id text PRIMARY KEY, "
	"data text NOT NULL, expires_at timestamptz NOT NULL)";
static const char *const sweep_sql =
	"DELETE FROM demo_sessions WHERE expires_at <= now()";
static const struct {
	const char *name, *sql;
	int nparams;
} stmts[] = {
	{ "get", "SELECT data FROM demo_sessions WHERE id = $1 AND expires_at > now()", 1 },
	{ "put", "INSERT INTO demo_sessions (id, data, expires_at) VALUES "
		 "($1, $2, now() + $3::integer * interval '1 second') ON CONFLICT (id) "
		 "DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at", 3 },
	{ "del", "DELETE FROM demo_sessions WHERE id = $1", 1 },
};

static const char *pg_configure(const char *spec)
{
	conninfo = spec;          /* libpq parses the URI itself */
	return NULL;
}

static void *pg_open(void)
{
	return calloc(1, sizeof(struct ph));
}

static void pg_reset(void *h)
{
	struct ph *p = h;

	if (p->c)
		PQfinish(p->c);
	p->c = NULL;
}

/* libpq's message without its trailing newline. */
static int pg_fail(struct ph *p, const char *what, struct store_err *e)
{
	const char *m = p->c ? PQerrorMessage(p->c) : "out of memory";
	size_t n = strcspn(m, "\n");

	return store_fail(e, "postgresql %s: %.*s", what, (int)n, *m ? m : "failed");
}

/* Wait until fd is ready for events, at most until deadline (ms). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	uint64_t now = store_now_ms();
	int rc;

	do {
		if (now >= deadline)
			return 0;
		rc = poll(&pfd, 1, (int)(deadline - now));
		now = store_now_ms();
	} while (rc < 0 && errno == EINTR);
	return rc;
}

/* After a PQsend*: flush, then collect the result (the first one; the
 * others, if any, are discarded). Returns the result (caller clears it)
 * or NULL with e filled. */
static PGresult *finish(struct ph *p, const char *what, uint64_t deadline,
			struct store_err *e)
{
	PGresult *res = NULL, *r;
	int sock = PQsocket(p->c), f;

	while ((f = PQflush(p->c)) == 1) {
		if (wait_fd(sock, POLLIN | POLLOUT, deadline) <= 0)
			goto timeout;
		if (!PQconsumeInput(p->c))
			goto fail;
	}
	if (f < 0)
		goto fail;
	for (;;) {
		while (PQisBusy(p->c)) {
			if (wait_fd(sock, POLLIN, deadline) <= 0)
				goto timeout;
			if (!PQconsumeInput(p->c))
				goto fail;
		}
		r = PQgetResult(p->c);
		if (!r)
			break;
		if (res)
			PQclear(r);
		else
			res = r;
	}
	if (!res)
		goto fail;
	return res;
timeout:
	PQclear(res);
	store_fail(e, "postgresql %s: no answer within %u ms", what, store_cfg.timeout_ms);
	return NULL;
fail:
	PQclear(res);
	pg_fail(p, what, e);
	return NULL;
}

/* Run sql (no parameters) and check its status; "already exists" races
 * of concurrent CREATE TABLE IF NOT EXISTS count as success. */
static int simple(struct ph *p, const char *what, const char *sql, uint64_t deadline,
		  struct store_err *e)
{
	PGresult *res;
	const char *state;
	int ok;

	if (!PQsendQuery(p->c, sql))
		return pg_fail(p, what, e);
	res = finish(p, what, deadline, e);
	if (!res)
		return -1;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	     (state && (!strcmp(state, "23505") || !strcmp(state, "42P07")));
	if (!ok)
		store_fail(e, "postgresql %s: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return ok ? 0 : -1;
}

static void quiet(void *arg, const char *message)
{
}

static int connected(struct ph *p, uint64_t deadline, struct store_err *e)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	size_t i;

	if (p->c)
		return 0;
	p->c = PQconnectStart(conninfo);
	if (!p->c || PQstatus(p->c) == CONNECTION_BAD)
		return pg_fail(p, "connect", e);
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			return pg_fail(p, "connect", e);
		if (wait_fd(PQsocket(p->c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
			    deadline) <= 0)
			return store_fail(e, "postgresql connect: no answer within %u ms",
					  store_cfg.timeout_ms);
		st = PQconnectPoll(p->c);
	}
	/* CREATE TABLE IF NOT EXISTS says NOTICE on every connection but the
	 * first; libpq would print each on stderr. */
	PQsetNoticeProcessor(p->c, quiet, NULL);
	if (PQsetnonblocking(p->c, 1) < 0)
		return pg_fail(p, "connect", e);
	if (simple(p, "create table", create_sql, deadline, e) < 0)
		return -1;
	for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		PGresult *res;
		int ok;
		if (!PQsendPrepare(p->c, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL))
			return pg_fail(p, "prepare", e);
		res = finish(p, "prepare", deadline, e);
		if (!res)
			return -1;
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok)
			store_fail(e, "postgresql prepare: %s", PQresultErrorMessage(res));
		PQclear(res);
		if (!ok)
			return -1;
	}
	p->swept_ms = 0;
	return 0;
}

/* Execute prepared statement name; returns its result or NULL (e). */
static PGresult *run(struct ph *p, const char *name, int n, const char *const *vals,
		     const int *lens, ExecStatusType want, struct store_err *e)
{
	uint64_t deadline = store_now_ms() + store_cfg.timeout_ms;
	PGresult *res;

	if (connected(p, deadline, e) < 0)
		return NULL;
	if (store_now_ms() - p->swept_ms >= SWEEP_MS || !p->swept_ms) {
		if (simple(p, "sweep", sweep_sql, deadline, e) < 0)
			return NULL;
		p->swept_ms = store_now_ms() | 1;
	}
	if (!PQsendQueryPrepared(p->c, name, n, vals, lens, NULL, 0)) {
		pg_fail(p, name, e);
		return NULL;
	}
	res = finish(p, name, deadline, e);
	if (res && PQresultStatus(res) != want) {
		store_fail(e, "postgresql %s: %s", name, PQresultErrorMessage(res));
		PQclear(res);
		return NULL;
	}
	return res;
}

static int pg_get(void *h, const char *key, size_t len, struct store_session *out,
		  struct store_err *e)
{
	struct ph *p = h;
	char id[SESSION_ID_LEN + 1];
	const char *vals[1] = { id };
	PGresult *res;
	int found = 0;

	if (!store_id_valid(key, len))
		return 0;
	memcpy(id, key, SESSION_ID_LEN);
	id[SESSION_ID_LEN] = '\0';
	res = run(p, "get", 1, vals, NULL, PGRES_TUPLES_OK, e);
	if (!res)
		return -1;
	if (PQntuples(res) == 1) {
		memcpy(out->id, id, sizeof(out->id));
		if (store_decode(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), out) == 0)
			found = 1;
		else
			store_log("postgresql: session %s has a value that is not ours; "
				  "starting afresh", id);
	}
	PQclear(res);
	return found;
}

static int pg_put(void *h, const struct store_session *s, unsigned ttl_s,
		  char *tok, size_t *toklen, struct store_err *e)
{
	struct ph *p = h;
	char value[STORE_VALUE_MAX + 1], ttl[16];
	const char *vals[3] = { s->id, value, ttl };
	PGresult *res;

	store_encode(s, value);
	snprintf(ttl, sizeof(ttl), "%u", ttl_s > 0x7fffffff ? 0x7fffffff : ttl_s);
	res = run(p, "put", 3, vals, NULL, PGRES_COMMAND_OK, e);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

static int pg_del(void *h, const char *id, struct store_err *e)
{
	struct ph *p = h;
	const char *vals[1] = { id };
	PGresult *res;

	res = run(p, "del", 1, vals, NULL, PGRES_COMMAND_OK, e);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

const struct store_ops store_pg_ops = {
	.name = "postgresql",
	.configure = pg_configure,
	.open = pg_open,
	.get = pg_get,
	.put = pg_put,
	.del = pg_del,
	.reset = pg_reset,
};
