/*
 * log.h - the error log (levels, to stderr) and the access log (one line
 * per request: combined, combined-bollard or JSON, buffered per thread and flushed once per
 * event-loop iteration so that logging costs no syscall per request).
 */
#ifndef BOLLARD_LOG_H
#define BOLLARD_LOG_H

#include "api.h"

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Error log: "YYYY-mm-ddTHH:MM:SSZ LEVEL: message\n" on stderr, copied to the
 * access log's file, syslog or udp target. Thread-safe (one write(2) or
 * datagram per message). */
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif

#ifndef BOLLARD_LOG_ACCESS
#define BOLLARD_LOG_ACCESS
#include "cfg.h"

/* Open the log targets of cfg (access log file). Returns 0 or -1 with a
 * message in err. Called once at start. */
int log_init(const struct config *cfg, char *err, size_t errlen);
/* SIGUSR1: reopen the access-log file in place (dup2 onto the same fd, so
 * threads writing concurrently never see a closed descriptor). */
void log_reopen(void);
/* Syslog and udp targets: messages dropped because the socket could not
 * take them at once (a log daemon behind, a collector down). */
uint64_t log_dropped(void);

/* One access-log record; strings need not be NUL-terminated where a length
 * is given. Timings < 0 are written as "-" / null. */
struct log_str { const char *p; size_t n; };
struct access_rec {
	const char *client;
	struct log_str method, target, referer, ua, reqid;
	int minor;
	bool h2;                      /* HTTP/2.0 (an HTTP/2 stream): minor does not apply */
	int status;
	uint64_t bytes;
	const char *frontend, *backend, *server, *term;
	const char *scheme;                   /* http, or what a trusted proxy reported */
	const char *persist, *persist_method; /* NULL when the backend has none */
	const char *persist_reason;           /* why it moved, NULL otherwise */
	const char *persist_cookie;           /* "invalid"/"expired": a refused cookie when
					       * another method decided; NULL otherwise */
	const char *persist_shared;           /* shared tables: "redis" (its answer decided),
					       * "hash" (it had none: placed by hash),
					       * "timeout", "down", "error"; NULL: decided locally */
	double connect_ms, ttfb_ms, total_ms;
	/* a TLS connection (SPEC 11): version "1.2"/"1.3", NULL for cleartext;
	 * the negotiated ALPN protocol and the client's SNI ("-" when none) */
	const char *tls;
	struct log_str alpn, sni;
	bool resumed;
};

/* Per-thread access-log buffer: records are appended and written with one
 * write(2) per loop iteration (log_flush) or when the buffer fills. */
struct log_thread {
	char *buf;
	size_t len, cap;
	time_t date_sec;
	char date_clf[40];  /* [27/Nov/2026:18:40:00 +0000] */
	char date_iso[32];  /* 2026-11-27T18:40:00 (JSON adds .123Z) */
};

int log_thread_init(struct log_thread *lt);
void log_thread_free(struct log_thread *lt);
bool log_access_enabled(void);
void log_access(struct log_thread *lt, const struct access_rec *r);
void log_flush(struct log_thread *lt);
#endif
