/*
 * cfg.h - the configuration model: what `bollard -c FILE` and
 * `bollard check -c FILE` build from the configuration language of
 * SPEC §3. Configuration-time objects are calloc'd once and live as long as
 * the configuration; the few runtime fields shared by the worker threads
 * (server counters, state) are atomics inside the same objects so that the
 * hot path reaches them without a lookup.
 */
#ifndef BOLLARD_CFG_H
#define BOLLARD_CFG_H

#include "api.h"
#include "xprt_tls.h"
#include <stdatomic.h>
#include <sys/socket.h>

#define CFG_NAME_MAX 64
/* request-duration histogram bucket bounds in µs (the 13th bucket is +Inf) */
#define CFG_DUR_BOUNDS_US { 1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, \
			    1000000, 2500000, 5000000, 10000000 }

enum cfg_log_target { LOG_TARGET_STDOUT, LOG_TARGET_STDERR, LOG_TARGET_FILE, LOG_TARGET_OFF,
		      LOG_TARGET_SYSLOG, LOG_TARGET_UDP };
/* combined: exactly Apache's; combined-bollard (the default): the same plus
 * bollard's key=value fields; json: one object a line (log.c) */
enum cfg_log_format { LOG_FORMAT_COMBINED, LOG_FORMAT_JSON, LOG_FORMAT_COMBINED_BOLLARD };
enum cfg_mode { MODE_HTTP, MODE_TCP };
enum lb_kind { LB_ROUNDROBIN, LB_LEASTCONN, LB_RANDOM, LB_P2C, LB_HASH };
/* balance hash KEY [maglev|ring] [bound F] (lb_hash.c, doc/balancing.md) */
enum lb_hash_key { HASH_KEY_SOURCE, HASH_KEY_URI, HASH_KEY_HEADER, HASH_KEY_COOKIE, HASH_KEY_URLPARAM };
enum lb_hash_algo { HASH_RING, HASH_MAGLEV };
enum route_kind { ROUTE_HOST, ROUTE_PATH_PREFIX };
/* Effective state of a server, what the balancer and persistence read:
 * derived from the operator's choice (admin_state: ready, drain, maint) and
 * the health checks (health) by server_update_state() in server.c. */
enum srv_state { SRV_READY, SRV_DRAIN, SRV_MAINT, SRV_DOWN };
enum srv_health { HEALTH_UNCHECKED, HEALTH_UP, HEALTH_DOWN };
/* on-server-down: where a persistent session goes when its server cannot
 * take it (SPEC 3.2) */
enum on_down { ON_DOWN_REDISPATCH, ON_DOWN_REPLICA, ON_DOWN_FAIL };

struct shared_conf;

/* All durations are milliseconds. */
struct cfg_timeouts {
	uint32_t connect;
	uint32_t client;
	uint32_t server;
	uint32_t http_request;
	uint32_t http_keep_alive;
	uint32_t queue;
	uint32_t tunnel;
};

struct cfg_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[80]; /* as written, e.g. "127.0.0.1:8080" or "[::1]:8080" */
	bool accept_proxy; /* bind ... accept-proxy: connections start with a PROXY header (proxyproto.h) */
	struct tls_bind *tls; /* bind ... tls: its contexts (the line's, owned by config.tls_binds); NULL = cleartext */
};

/* Server weights: 0..1000000 (SPEC 3), as NGINX, Envoy and cloud balancers
 * accept; 100/200/300 is a common way to write them. Every balancer
 * computes with them in 64 or 128 bits, and the hash placements scale them
 * to a bounded table (lb_hash.c). */
#define SRV_WEIGHT_MAX 1000000u

struct server {
	char name[CFG_NAME_MAX];
	struct cfg_addr addr;
	uint32_t weight;  /* 0..SRV_WEIGHT_MAX, default 100 */
	uint32_t maxconn; /* 0 = unlimited */
	bool backup;
	char replica_name[CFG_NAME_MAX]; /* `replica NAME`: holds a copy of its sessions */
	struct server *replica;          /* resolved after parsing, NULL if none */
	/* `del server`: gone; its slot stays (indices are stable). Atomic: the
	 * control thread sets it while workers read it (sconn pools, persist). */
	atomic_bool removed;
	uint64_t id_hash;                /* identity in sealed cookies: hash of the name (persist.c) */
	uint32_t sid;                    /* identity in persistence tables: kept by name across
					  * reloads, never reused in a backend (persist.c) */
	/* the operator's state beyond the configuration (state.h): what the
	 * runtime API set (STATE_OP_*), where it came from (enum
	 * state_origin), and the weight the configuration gave */
	_Atomic uint8_t op_set;
	_Atomic uint8_t origin;
	uint32_t cfg_weight;
	int line;         /* configuration line, for messages */
	int idx;          /* index in its backend's servers[] */
	struct backend *be;

	/* runtime, shared by all threads */
	_Atomic int state;            /* enum srv_state: effective (see server.c) */
	_Atomic int admin_state;      /* SRV_READY, SRV_DRAIN or SRV_MAINT: the operator's */
	_Atomic int health;           /* enum srv_health */
	_Atomic uint32_t cur_weight;  /* effective weight (set server weight) */
	_Atomic int64_t conns;        /* active server-side connections (busy, not idle pooled) */
	_Atomic uint64_t requests;    /* requests sent to it */
	_Atomic uint64_t responses[6];/* by status class: [1]=1xx .. [5]=5xx, [0]=other/none */
	_Atomic uint64_t connect_errors;
	_Atomic uint64_t sessions;    /* persistent sessions pointing at it (persistence issue) */
	_Atomic uint64_t last_request_ms; /* monotonic ms of the last request sent to it (wait drained) */
	_Atomic int64_t queued;       /* requests waiting in a worker's queue for it (maxconn) */
	struct hll *cookie_sessions;  /* distinct insert-cookie sessions over max-idle (hll.h, persist.c) */

	/* health checks and slow start (check.c, doc/config.md `server`);
	 * 0 / false = take the backend's `health` value or check.c's default */
	uint32_t chk_interval;        /* check-interval D, ms */
	uint32_t chk_rise;            /* rise N */
	uint32_t chk_fall;            /* fall N */
	bool no_check;                /* no-check: never probed while up */
	uint32_t slowstart;           /* slowstart D, ms; 0 = full weight at once */
	_Atomic uint32_t passive_fails; /* consecutive connect failures on live traffic */
	_Atomic uint64_t checks_ok;   /* health checks passed / failed (metrics) */
	_Atomic uint64_t checks_fail;
};

struct backend {
	char name[CFG_NAME_MAX];
	int line;
	int idx;                      /* index in config->backends[] */
	enum cfg_mode mode;
	enum lb_kind balance;
	struct cfg_timeouts to;
	uint32_t retries;
	enum on_down on_down;
	/* Workers read servers[] and nservers without a lock: `add server`
	 * publishes a new array, then the count, with release stores; the old
	 * arrays stay until the configuration is freed (retired). */
	struct server **servers;
	struct server ***retired;
	int nretired;
	int nservers;
	/* persistence rules plug in here (persist.c); NULL/0 when unused */
	void *persist;
	int npersist;
	_Atomic uint32_t next_sid;    /* the sid the next new server gets (persist.c) */

	/* runtime counters */
	_Atomic uint64_t requests;
	_Atomic uint64_t responses[6];
	_Atomic uint64_t no_server;   /* 503: nothing usable */
	/* bollard_request_duration_seconds: per-bucket (not cumulative) counts
	 * for upper bounds CFG_DUR_BOUNDS_US, the last one +Inf */
	_Atomic uint64_t dur_buckets[13];
	_Atomic uint64_t dur_sum_us;
	_Atomic uint64_t dur_count;

	/* balance hash: what is hashed, how it is placed (lb_hash.c) */
	enum lb_hash_key hash_key;
	char hash_key_name[CFG_NAME_MAX]; /* header, cookie or url-param name; "" otherwise */
	enum lb_hash_algo hash_algo;  /* default HASH_MAGLEV */
	float hash_bound;             /* bounded loads factor F >= 1; 0 = unbounded */
	void *hash_state;             /* built by lb_hash_build(), freed by lb_hash_free() */
	bool hash_persist;            /* shared tables place new keyed sessions by hash
				       * (persist_init): a placement even without balance hash */

	/* health KIND ... (check.c): hc_kind 0 = no active checks */
	int hc_kind;                  /* enum check_kind (check.h) */
	char hc_method[16];           /* http: request method */
	char hc_path[256];            /* http: origin-form target */
	char hc_host[128];            /* http: Host value; "" = the server's address */
	int hc_expect;                /* http: status wanted; 0 = any 2xx or 3xx */
	uint32_t hc_interval, hc_timeout, hc_rise, hc_fall; /* 0 = default */
};

struct route {
	enum route_kind kind;
	char *value;
	size_t len;
	struct backend *be;
	int line;
};

/* `forwarded`: which forwarding headers a frontend adds (http.c) */
#define HTTP_FWD_XFF     0x01 /* X-Forwarded-For: the client's list + the peer */
#define HTTP_FWD_XFP     0x02 /* X-Forwarded-Proto (replaces the client's) */
#define HTTP_FWD_RFC7239 0x04 /* Forwarded: for=...;proto=... (RFC 7239) */
#define HTTP_FWD_REQID   0x08 /* X-Request-Id when absent */
#define HTTP_FWD_DEFAULT (HTTP_FWD_XFF | HTTP_FWD_XFP | HTTP_FWD_REQID)

struct frontend {
	char name[CFG_NAME_MAX];
	int line;
	int idx;
	enum cfg_mode mode;
	struct cfg_timeouts to;
	struct cfg_addr *binds;
	int nbinds;
	struct backend *default_be;
	struct route *routes;
	int nroutes;
	struct cidr_list *trusted;    /* trust-forwarded: peers whose X-Forwarded-For is believed (cidr.h); NULL = none */
	char allow_upgrade[4][32];    /* upgrade tokens tunnelled besides websocket */
	unsigned fwd;                 /* HTTP_FWD_*: `forwarded` */
	int nallow_upgrade;
	/* runtime counters */
	_Atomic uint64_t requests;
	_Atomic uint64_t conns_total;
	_Atomic uint64_t rejected;    /* 4xx generated by bollard (bad requests) */
	struct tls_stats *tls;        /* its TLS binds' handshakes (xprt_tls.h); NULL = no TLS bind */
	bool redirect_https;          /* redirect https: cleartext requests get a 308 to https */
	bool hsts;                    /* hsts max-age ...: TLS responses carry Strict-Transport-Security */
	char hsts_value[64];          /* its value, e.g. "max-age=15552000; includeSubDomains" */
};

struct config {
	char *file;                   /* path as given */
	_Atomic int refs;             /* holders of this generation (cfg_hold) */
	int threads;                  /* resolved: auto => number of CPUs */
	uint32_t maxconn;
	enum cfg_log_target log_target;
	char *log_path;
	enum cfg_log_format log_format;
	/* log syslog|udp (log.c): where, as what */
	char *log_socket;             /* log syslog socket PATH; NULL = /dev/log */
	struct cfg_addr log_udp;      /* log udp ADDR */
	int log_facility;             /* syslog facility code (RFC 5424 6.2.1) */
	char log_tag[33];             /* APP-NAME / TAG */
	/* user, group, pidfile (priv.c); NULL = none */
	char *user, *group, *pidfile;
	uint32_t grace;               /* ms */
	char *admin_socket;           /* NULL = none */
	bool has_stats;
	struct cfg_addr stats_listen;
	bool stats_admin;             /* stats-admin on: POST /api/server allowed */
	char *stats_auth_file;        /* stats-auth FILE; NULL = no basic auth */
	char *stats_auth;             /* its contents, read at load (NUL-terminated) */
	char *stats_hosts;            /* stats-host: lowercase names, space-separated; NULL = none */
	char *secret_file;            /* NULL = none */
	bool tls_tickets_off;         /* tls-tickets off */
	struct tls_bind **tls_binds;  /* one per `bind ... tls` line (cfg_tls.c) */
	int ntls_binds;
	char *state_file;             /* NULL = none (persistence issue) */
	struct shared_conf *shared;   /* shared-tables (shared.h); NULL = none */
	uint32_t bufsize;             /* tune.bufsize, default 16384 */
	uint32_t maxhdr;              /* tune.maxhdr, default 100 */
	uint32_t max_request_line;    /* tune.max-request-line, default 8192 */

	struct frontend **frontends;
	int nfrontends;
	struct backend **backends;
	int nbackends;
};

/*
 * cfg_load() parses FILE. On success it returns a new config and leaves
 * *errs NULL. On failure it returns NULL and *errs points to a
 * malloc'd string holding every error, one "FILE:LINE: message" a line
 * (caller frees). The parser keeps going after an error so that
 * `bollard check` reports all of them at once.
 */
struct config *cfg_load(const char *file, char **errs);

/* `bollard check`: a warning ("FILE:LINE: warning: ...") on out for each
 * certificate of a TLS bind that expires within this many days of now
 * (seconds since the epoch), or has expired. Returns how many. */
#define CFG_TLS_EXPIRY_WARN_DAYS 30
/* reload: nf (the new generation's frontend of the same name as of) counts
 * its TLS handshakes where of did (cfg_tls.c) */
void cfg_tls_stats_carry(struct frontend *nf, struct frontend *of);
int cfg_tls_check_expiry(const struct config *cfg, FILE *out, int64_t now);
void cfg_free(struct config *cfg);

/* Reference counting of configuration generations: the control thread, each
 * worker and each client connection hold one on the generation they use; the
 * last release frees it with what was built for it after loading (the hash
 * placements; a persistence table shared with a newer generation lives on:
 * tables are reference counted too, stick.h). Beside the configuration, not
 * in reload.c, so that holding a generation does not tie a module to the
 * reload machinery. */
void cfg_hold(struct config *cfg);
void cfg_release(struct config *cfg);

/*
 * The admin-socket path of FILE, read as cfg_load() reads it but kept even
 * when FILE has errors elsewhere: `bollard ctl -c FILE` needs only this
 * line to reach the running instance, which keeps running its last good
 * configuration whatever FILE now holds. Returns the path (malloc'd) and
 * sets *where to "FILE:LINE" of the directive (malloc'd), or returns NULL
 * (no admin-socket, or the directive itself is wrong) with *where NULL. *errs
 * is set as by cfg_load(): NULL when FILE is valid. The caller frees all.
 */
char *cfg_admin_socket(const char *file, char **where, char **errs);

/* Helpers shared with the runtime API and tests. */
int cfg_parse_duration(const char *s, uint32_t *ms);   /* 0 ok, -1 bad */
/* The same with the reason: NULL, or why s is not a duration, written to
 * why[0..n) with what (a keyword or option name, may be NULL) and the right
 * spelling where one exists ("a unit is needed, e.g. '30s'"). */
const char *cfg_duration_check(const char *what, const char *s, uint32_t *ms,
			       char *why, size_t n);
int cfg_parse_size(const char *s, uint64_t *bytes);    /* 0 ok, -1 bad */
int cfg_parse_addr(const char *s, struct cfg_addr *out); /* 0 ok, -1 bad */
struct backend *cfg_find_backend(const struct config *cfg, const char *name);
struct server *cfg_find_server(const struct backend *be, const char *name);
const char *srv_state_name(int state);   /* "ready" "drain" "maint" "down" */
const char *lb_kind_name(enum lb_kind k);

#endif
