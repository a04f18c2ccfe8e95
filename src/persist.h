/*
 * persist.h - session persistence: the one place that answers "which
 * server, and why" (SPEC §3.1). A backend lists persistence rules (`persist`
 * lines); on each request they are tried in order, the first that names a
 * usable server wins; when none does, the balancer assigns a server and
 * every rule records the assignment. Every decision is counted per rule and
 * result, and logged as persist=RESULT method=NAME.
 */
#ifndef BOLLARD_PERSIST_H
#define BOLLARD_PERSIST_H

#include "cfg.h"
#include "h1.h"
#include "http.h"
#include "view.h"

struct stick_table;
struct seal_keys;

enum persist_kind {
	PERSIST_COOKIE,     /* cookie NAME insert: a sealed cookie of ours */
	PERSIST_PREFIX,     /* cookie NAME prefix: the app's cookie, prefixed */
	PERSIST_LEARN,      /* learn NAME: the app's session cookie, in a table */
	PERSIST_SOURCE,     /* source: client address (masked), in a table */
	PERSIST_HEADER,     /* header NAME, in a table */
	PERSIST_URLPARAM,   /* url-param NAME, in a table */
	PERSIST_JWT,        /* jwt CLAIM, in a table */
};

enum persist_result {
	PR_NONE = 0,        /* the backend has no persistence */
	PR_HIT,             /* a rule named a usable server */
	PR_NEW,             /* no rule had an answer: assigned afresh */
	PR_MOVED,           /* the remembered server could not take it */
	PR_INVALID,         /* a cookie failed authentication or decoding */
	PR_EXPIRED,         /* a cookie past max-idle or max-life */
	PR_COUNT
};

/* Why a session moved (SPEC 3.2), for the log and
 * bollard_persistence_moved_total{backend,reason}. A full server (maxconn)
 * is no reason: its persistent requests wait in its queue (dispatch.c), they
 * never move, so no such series is exported. */
enum persist_reason {
	MOVED_NONE = 0,
	MOVED_DOWN,      /* health checks or passive detection */
	MOVED_MAINT,     /* the operator */
	MOVED_REMOVED,   /* no longer in the configuration */
	MOVED_CONNECT,   /* it failed this request's connection */
	MOVED_COUNT
};

#define PERSIST_MAX_RULES 8
#define PERSIST_KEY_MAX 255

struct persist_rule {
	enum persist_kind kind;
	int line;
	char name[CFG_NAME_MAX];   /* cookie, header, parameter or claim name */
	char label[24];            /* method name for logs and metrics */
	/* cookie insert */
	uint32_t max_idle_ms, max_life_ms;
	int64_t max_age_s;         /* < 0: session cookie */
	char domain[128], path[128];
	bool secure, httponly;
	int samesite;              /* enum cookie_samesite */
	/* tables */
	uint32_t expire_ms, size;
	uint8_t mask4, mask6;
	char jwt_from_header[CFG_NAME_MAX];
	char jwt_from_cookie[CFG_NAME_MAX];
	uint8_t *jwt_key;          /* verify hs256 key, NULL = no verification */
	size_t jwt_keylen;
	struct stick_table *table; /* created by persist_init() */
	/* shared-tables (doc/scale-out.md): the table is shared on Redis under
	 * shared_name (BACKEND/METHOD[/NAME]); keyed: a new session is placed
	 * by hash of its key (source, header, url-param, jwt), so only the
	 * bindings that differ from that placement are written */
	bool shared, keyed;
	uint16_t shared_room;      /* longest key that fits a Redis key as it is */
	char shared_name[2 * CFG_NAME_MAX + 16];
	_Atomic bool warned_case;  /* learn: a Set-Cookie differing in case was logged */
	_Atomic uint64_t counts[PR_COUNT];
};

struct persist_rules {
	struct persist_rule r[PERSIST_MAX_RULES];
	int n;
	struct seal_keys *keys;    /* cookie insert: the generation's keys (a reference) */
	bool shared;               /* a rule's table is shared (shared-tables) */
	_Atomic uint64_t moved[MOVED_COUNT];
};

/* What one request decided; lives in the client connection. */
struct persist_req {
	struct server *srv;        /* the remembered, usable server (NULL: none) */
	enum persist_result result;
	int8_t rule;               /* the rule that decided (-1: none) */
	bool assigned;             /* assigned afresh: rules must record it */
	bool refresh;              /* cookie insert: re-issue to refresh its time */
	bool strip_cookie;         /* the request carried our cookie: remove it */
	bool fail;                 /* on-server-down fail: answer 503 */
	bool secure;               /* the client came by TLS: insert cookies get Secure */
	uint8_t reason;            /* enum persist_reason when moved */
	uint8_t also;              /* PR_INVALID or PR_EXPIRED: the verdict of a cookie that
				    * did not decide (another rule did), counted and logged
				    * too; PR_NONE otherwise */
	int8_t also_rule;          /* its rule, -1: none */
	struct server *cookie_srv; /* server named by a valid insert cookie */
	uint32_t cookie_issued;    /* its time of issue (kept across refreshes) */
	uint64_t cookie_sid;       /* its session id (kept across refreshes) */
	/* keys of the table rules found in the request, copied because the
	 * request head is gone once it was forwarded */
	uint16_t key_off[PERSIST_MAX_RULES];
	uint8_t key_len[PERSIST_MAX_RULES];
	uint8_t has_key;           /* bit per rule */
	uint8_t newer;             /* bit per rule: its entry names a server of a newer
				    * generation (persist_decide); left alone */
	uint16_t keys_used;
	char keys[512];
	/* shared tables (shared_loop.c acts on them before a server is
	 * chosen; all unset without shared-tables) */
	bool shared;               /* something below is to do */
	bool place;                /* a new keyed session: balance by place_hash */
	int8_t ask;                /* the rule whose key missed locally: ask Redis, -1: none */
	int8_t bind;               /* the rule whose binding must be agreed in Redis before
				    * it is used: a move (compare-and-set against lost) or
				    * a learn key unknown everywhere (SET NX), -1: none */
	uint8_t from;              /* enum persist_from: where the verdict came from */
	struct server *lost;       /* the server a shared session leaves (the move's expect) */
	uint64_t place_hash;
};

/* Where a decision came from (the access log's shared= field). */
enum persist_from { FROM_LOCAL = 0, FROM_REDIS, FROM_HASH, FROM_TIMEOUT, FROM_DOWN, FROM_ERROR };

/* Configuration: parse the arguments of one `persist` line (argv[0] is
 * "persist") into be's rules. Returns NULL or a static/thread error string. */
const char *persist_parse(struct backend *be, int line, int argc, char **argv,
			  char *err, size_t errlen);
void persist_rules_free(struct backend *be);

/* Runtime: create the tables and the cookie key. 0 or -1 with err. */
int persist_init(struct config *cfg, char *err, size_t errlen);
void persist_fini(struct config *cfg);

/*
 * The cookie keys of cfg (SPEC §3.1 secret-file): load them from
 * persist_secret_path() and give them to the backends that issue insert
 * cookies. At start (running NULL) a missing file is created with a new
 * key; on a reload (running: the generation in use) it never is, and any
 * error leaves running's keys in use (the caller keeps running). Logs
 * which key seals, at start and when a reload changed the keys.
 * 0, or -1 with err.
 */
int persist_keys_init(struct config *cfg, const struct config *running, char *err, size_t errlen);
/* Every worker runs cfg now: its first key seals (the key handover, see
 * persist.c). Called by the last worker to take cfg. */
void persist_keys_settle(const struct config *cfg);
/* `bollard check`: what start would say about persistence beyond the
 * syntax, as "FILE:LINE: warning: ..." lines on out (the default key file
 * in use), and what start would refuse (a secret-file it cannot use).
 * Returns the number of such errors. */
int persist_check(const struct config *cfg, FILE *out);
/* secret-file, or the default key file when a backend issues insert cookies
 * without one (written into buf), or NULL when no key is needed. */
const char *persist_secret_path(const struct config *cfg, char *buf, size_t cap);
/* A server joins (configuration or `add server`): compute what persistence
 * needs of it before workers can see it (its cookie identity; with an
 * insert cookie, its estimate of cookie sessions, freed by
 * persist_rules_free()). */
void persist_server_added(struct server *s);
/* The window of the servers' cookie-session estimates (max-idle, else
 * max-life, else 30 min); 0 without an insert cookie. */
uint64_t persist_cookie_window_ms(const struct backend *be);

/*
 * Decide for one client: cv is what is known of it (view.h): its address
 * (for `source`) and, where there is one, its request head (for every
 * other method, which finds nothing without it). Fills pr; pr->srv is the
 * server to use if usable, NULL when the balancer must choose.
 */
void persist_decide(struct backend *be, const struct view *cv, uint64_t now_ms,
		    struct persist_req *pr);

/*
 * The server persistence chose (pr->srv) failed this request's connection:
 * the session follows on-server-down as if that server were down (SPEC 3.2).
 * `fail` sets pr->fail (answer 503); `replica` puts its replica in pr->srv
 * when it is ready and not among tried[0..ntried) (servers that failed this
 * request); otherwise pr->srv is NULL and the balancer chooses. A hit
 * becomes moved, reason connect, once however many attempts follow.
 */
void persist_connect_failed(struct backend *be, struct persist_req *pr, struct server *const *tried,
			    int ntried);

/*
 * The one door for a session leaving its server: every move and its reason
 * is recorded here, nowhere else (counted and logged with the request by
 * persist_count() and the access log). A hit becomes moved for `why`, once:
 * the first reason stays, however many attempts follow. While
 * persist_decide() runs (result PR_NONE) the first rule's reason is kept;
 * any other verdict (new, invalid, expired) is final and stays.
 */
void persist_move(struct persist_req *pr, enum persist_reason why);

/* The server that will take the request is known (after a fresh pick or a
 * failover): record it in the table rules that have a key. */
void persist_record(struct backend *be, struct persist_req *pr, struct server *s,
		    uint64_t now_ms);

/*
 * Response side: learn the application's session cookies from Set-Cookie,
 * and add the fields to send (our Set-Cookie, Cache-Control) to add, as
 * name/value pairs. Returns 0, or -1 if they do not fit.
 */
int persist_on_response(struct backend *be, struct persist_req *pr, struct server *s,
			const struct h1_msg *resp, uint64_t now_ms, struct http_add *add);

/*
 * Shared tables (doc/scale-out.md), called by shared_loop.c with the
 * answers of Redis for the request pr of be; rule is the pr->ask or
 * pr->bind rule the question was about.
 * persist_shared_key: the key of rule as written in Redis: the request's
 * key, or, when it would not fit a Redis key, a hash of it (the same on
 * every instance); into out (PERSIST_KEY_MAX + 1), its length returned.
 * persist_shared_found: Redis names server (its name: n bytes) for the key:
 * a usable one is a hit, adopted into the local table; an unusable one a
 * move (pr->bind, pr->lost); a name unknown here is a miss.
 * persist_shared_missed: Redis has no answer (miss, timeout, down, busy):
 * a learn key is then bound with SET NX once a server is chosen.
 * persist_shared_agreed: the move or first binding of rule is settled: on
 * LOST (won false) the winner's server (name, n) is followed if usable here.
 */
size_t persist_shared_key(const struct persist_rule *r, const struct persist_req *pr, int rule,
			  char *out);
void persist_shared_found(struct backend *be, struct persist_req *pr, int rule, const char *name,
			  size_t n, uint64_t now_ms);
void persist_shared_missed(struct backend *be, struct persist_req *pr, int rule);
void persist_shared_agreed(struct backend *be, struct persist_req *pr, bool won, const char *name,
			   size_t n);
/* The Redis key (after "PREFIX TABLE:") of a table key: the key itself, or
 * "#" and its hash when too long (the runtime API's shared view). */
size_t persist_shared_key_of(const struct persist_rule *r, const void *key, size_t klen, char *out);
/* `clear sessions`: forget key of rule in Redis too. */
void persist_shared_forget(const struct persist_rule *r, const void *key, size_t klen);
/* Another instance cleared the session of the shared table named table
 * (shared_name) whose Redis key is key: drop this instance's entry, so
 * that it asks Redis again instead of writing the binding back. */
void persist_shared_cleared(const struct config *cfg, const char *table, size_t tlen,
			    const void *key, size_t klen);

/* Count the decision (once per request), and the verdict of a refused
 * cookie that did not decide (pr->also) under its own method. */
void persist_count(struct backend *be, const struct persist_req *pr);

const char *persist_result_name(enum persist_result r);
/* "redis", "hash", "timeout", "down", "error"; NULL for FROM_LOCAL. */
const char *persist_from_name(int from);
const char *persist_reason_name(int reason);
/* Cookie names bollard removes from requests of this backend (insert mode),
 * or NULL. */
const char *persist_cookie_name(const struct backend *be);
/* The application cookie of `persist cookie NAME prefix`, or NULL. */
const char *persist_prefix_name(const struct backend *be);

/* The server of be that table entries name by sid (struct server.sid),
 * NULL when none does (removed, or not known to this generation). */
struct server *persist_server_by_sid(const struct backend *be, uint32_t sid);

/* Total table entries per server (for `show servers` sessions). */
void persist_update_sessions(struct config *cfg);

/* periodic work from the workers: bounded expiry */
void persist_expire(struct config *cfg, uint64_t now_ms);

#endif
