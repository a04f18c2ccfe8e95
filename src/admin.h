/*
 * admin.h - the runtime API of SPEC §5: one command line in, one answer out.
 * No I/O here: control.c reads lines from the admin socket and writes the
 * answers, which keeps every command testable with a string.
 *
 * Answers are built in a growable heap buffer (struct admin_buf): this is
 * the control path, never the proxy hot path, so allocation is fine.
 */
#ifndef BOLLARD_ADMIN_H
#define BOLLARD_ADMIN_H

#include "api.h"
#include "cfg.h"

struct admin_buf {
	char *p;        /* NUL-terminated contents, NULL until the first write */
	size_t len;
	size_t cap;
	bool oom;       /* an allocation failed: the contents are incomplete */
};

void admin_buf_init(struct admin_buf *b);
void admin_buf_free(struct admin_buf *b);
void admin_buf_reset(struct admin_buf *b);          /* len = 0, keep memory */
void admin_buf_add(struct admin_buf *b, const void *s, size_t n);
void admin_buf_puts(struct admin_buf *b, const char *s);
void admin_buf_printf(struct admin_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (what was written to the socket). */
void admin_buf_consume(struct admin_buf *b, size_t n);

/* Longest command line, without its line ending (doc/runtime-api.md). */
#define ADMIN_MAX_LINE 4095

/*
 * Execute one command line (without its '\n'; a trailing '\r' is ignored)
 * against the running configuration G.cfg and append the answer to out.
 * Every answer ends with one empty line ("...\n\n"), the end-of-answer
 * marker of the protocol. Errors are answered as a single line starting
 * with "error: ". Returns 0, or -1 when the answer is an error, or
 * ADMIN_WAIT (wait drained, below) when the answer is not there yet.
 */
int admin_execute(const char *line, struct admin_buf *out);

/* The bodies shared with the stats endpoints (/api/info, /api/servers),
 * without the terminating empty line. backend NULL = every backend.
 * admin_show_servers returns -1 (and appends nothing) if no such backend. */
void admin_show_info(struct admin_buf *out, bool json);
/* The "shared_tables" member of show info and /api/stats (with
 * shared-tables only): state up|partial|down, redis, links, links_up, queued. */
struct json;
void admin_shared_json(struct json *j);
int admin_show_servers(struct admin_buf *out, const char *backend, bool json);
/* admin_sessions.c: w[0..n) are the words after "show sessions" / "clear
 * sessions". Return 0, or -1 with *msg a format for error_answer() and *arg
 * its argument (NULL: the usage line). redact: each key shown as "#" and
 * 16 hex digits of a keyed hash, stable for the life of the process (the
 * stats listener without stats-auth); the admin socket shows them whole. */
int admin_show_sessions(struct admin_buf *out, char **w, int n, bool json, bool redact,
			const char **msg, const char **arg);
int admin_clear_sessions(struct admin_buf *out, char **w, int n, bool json, const char **msg,
			 const char **arg);
/* The admin socket's `show sessions`: with shared-tables, also the
 * bindings Redis holds that this instance does not (each row's origin
 * local or redis), read from the control thread within
 * SHARED_ADMIN_BUDGET_MS (shared.h). */
int admin_show_shared_sessions(struct admin_buf *out, char **w, int n, bool json,
			       const char **msg, const char **arg);

/*
 * admin_server.c: w[0..n) are the words after "set server" / "wait
 * drained". Same error convention as the sessions commands.
 * admin_wait_drained() returns 0 when it answered at once (the server is
 * drained already), -1 on error, or ADMIN_WAIT when the answer must wait:
 * then admin_execute() returns ADMIN_WAIT too, and the caller takes the
 * parked wait with admin_wait_take() right away and calls
 * admin_wait_poll() on every tick (about 100 ms) until it returns 1, having
 * appended the whole answer (with its empty line) to out.
 */
#define ADMIN_WAIT 1

struct admin_wait {
	char backend[CFG_NAME_MAX];   /* names, not pointers: a reload or */
	char server[CFG_NAME_MAX];    /* `del server` may free the server */
	uint64_t deadline_ms;         /* CLOCK_MONOTONIC ms */
	bool json;
};

int admin_set_server(struct admin_buf *out, char **w, int n, bool json, const char **msg,
		     const char **arg);
int admin_wait_drained(struct admin_buf *out, char **w, int n, bool json, const char **msg,
		       const char **arg);
/* The wait parked by the last admin_execute() that returned ADMIN_WAIT:
 * copied to *w and forgotten (true), or false when there is none. */
bool admin_wait_take(struct admin_wait *w);
/* 1: answered ("drained", "timeout" or an error), 0: still waiting. */
int admin_wait_poll(struct admin_wait *w, struct admin_buf *out, uint64_t now_ms);
/* Is s drained at now_ms (CLOCK_MONOTONIC)? No busy connection, no table
 * session, and idle for admin_drain_idle_ms(s->be). */
bool admin_server_drained(const struct server *s, uint64_t now_ms);
/* At start (control thread, before the first `wait drained`): every server
 * of cfg that has not taken a request yet counts as having taken one at
 * now_ms, since the clients of a previous run may still carry its cookies. */
void admin_drain_start(struct config *cfg, uint64_t now_ms);
/* How long a server of be must go without requests before the sessions
 * clients carry (cookies, hashed keys) can no longer come back; 2 s when
 * every persistence method of be keeps its sessions in tables; never less
 * than 2 s, since the session counts lag the tables. */
uint64_t admin_drain_idle_ms(const struct backend *be);

/* ms as the configuration writes durations: "1h", "30m1s", "2s", "1500ms". */
void admin_duration_text(char *out, size_t cap, uint64_t ms);

/* The health column of `show servers` until health checks exist. */
const char *admin_server_health(const struct server *s);
/* Name of a server state, "ready" "drain" "maint" "down" (or "unknown"). */
const char *admin_state_name(int state);

/* admin_pool.c: `add server` and `del server`; w[0..n) are the words after
 * the verb and object. Same error convention as the sessions commands. */
int admin_add_server(struct admin_buf *out, char **w, int n, bool json, const char **msg,
		     const char **arg);
int admin_del_server(struct admin_buf *out, char **w, int n, bool json, const char **msg,
		     const char **arg);

/* Set by the control loop: what `reload` runs (control_reload()). */
extern int (*admin_reload)(char *msg, size_t msglen);

#endif
