/*
 * log.c - error log and access log.
 *
 * The error log goes to stderr, one write(2) a message, and to the access
 * log's target too when that is a file, syslog or a remote collector, so
 * that an operator who reads only that target sees the errors beside the
 * requests. The access log is formatted into a per-thread buffer and
 * written once per event-loop iteration, so a busy worker pays one syscall
 * for many requests and lines from different threads never interleave
 * (each write holds whole lines; to syslog, one sendmmsg(2) of one
 * datagram a line).
 *
 * Syslog: `log syslog` sends to the local daemon's unix datagram socket
 * (/dev/log, journald or rsyslog) in the format glibc's syslog(3) uses
 * (RFC 3164: "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG"); `log udp ADDR` sends
 * RFC 5424 messages ("<PRI>1 TIMESTAMP HOST APP PID - - MSG") to a remote
 * collector over UDP (RFC 5426). Sends never block: a datagram the socket
 * cannot take at once is dropped and counted, since a slow log daemon must
 * never stall the proxy.
 */
#include "api.h"
#include "log.h"
#include "bytes.h"
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int access_fd = -1;          /* -1: access log off */
static enum cfg_log_target access_target;
static enum cfg_log_format access_format;
static char *access_path;           /* for reopen */
static int copy_fd = -1;            /* where the error log is copied; -1: stderr only */

/* syslog and udp targets */
static int facility;
static char tag[33] = "bollard";
static char host[65] = "-";
static long pid;
static struct sockaddr_un syslog_addr;
static _Atomic uint64_t dropped;    /* datagrams the socket could not take */

static const char *const level_names[] = { "error", "warning", "info", "debug" };
/* RFC 5424 6.2.1 severities of the error-log levels */
static const int level_sev[] = { 3, 4, 6, 7 };
#define SEV_INFO 6

static bool datagrams(void)
{
	return access_target == LOG_TARGET_SYSLOG || access_target == LOG_TARGET_UDP;
}

/* The header of one syslog message of severity sev, into h (>= 128 bytes). */
static size_t syslog_header(char *h, size_t cap, int sev, const struct timespec *ts)
{
	struct tm tm;
	char when[40];
	int n;

	if (access_target == LOG_TARGET_UDP) {
		/* RFC 5424 6: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME
		 * SP PROCID SP MSGID SP STRUCTURED-DATA SP MSG */
		gmtime_r(&ts->tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(h, cap, "<%d>1 %s.%03ldZ %s %s %ld - - ", facility * 8 + sev, when,
			     ts->tv_nsec / 1000000, host, tag, pid);
	} else {
		/* what syslog(3) writes to /dev/log (RFC 3164 4.1) */
		localtime_r(&ts->tv_sec, &tm);
		strftime(when, sizeof(when), "%b %e %H:%M:%S", &tm);
		n = snprintf(h, cap, "<%d>%s %s[%ld]: ", facility * 8 + sev, when, tag, pid);
	}
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* A local syslog daemon that restarted has a new socket at the same path:
 * connect again, at most once a second. */
static void syslog_reconnect(void)
{
	static _Atomic time_t last;
	time_t now = time(NULL);

	if (access_target != LOG_TARGET_SYSLOG || atomic_exchange(&last, now) == now)
		return;
	/* still gone: the next sends are dropped and counted */
	(void)connect(access_fd, (struct sockaddr *)&syslog_addr, sizeof(syslog_addr));
}

/* Sends n messages (header + body each) with one sendmmsg(2). */
static void send_datagrams(struct mmsghdr *m, unsigned n)
{
	unsigned off = 0;

	while (off < n) {
		int r = sendmmsg(access_fd, m + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0 && (errno == ECONNREFUSED || errno == ENOTCONN))
				syslog_reconnect();
			/* EAGAIN (daemon behind), ECONNREFUSED (collector
			 * down): drop this one, try the rest */
			atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
			off++;
			continue;
		}
		off += (unsigned)r;
	}
}

static void syslog_one(int sev, const char *msg, size_t len)
{
	struct timespec ts;
	char h[160];
	struct iovec iov[2];
	struct mmsghdr m = { .msg_hdr = { .msg_iov = iov, .msg_iovlen = 2 } };

	clock_gettime(CLOCK_REALTIME, &ts);
	iov[0] = (struct iovec){ h, syslog_header(h, sizeof(h), sev, &ts) };
	iov[1] = (struct iovec){ (void *)msg, len };
	send_datagrams(&m, 1);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", level_names[lvl]);
	int head = n;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
	if (copy_fd < 0)
		return;
	if (datagrams()) /* the severity says the level, the header the time */
		syslog_one(level_sev[lvl], line + head, (size_t)(n - head - 1));
	else
		w = write(copy_fd, line, (size_t)n);
}

static int open_syslog(const struct config *cfg, char *err, size_t errlen)
{
	const char *path = cfg->log_socket ? cfg->log_socket : "/dev/log";

	syslog_addr.sun_family = AF_UNIX;
	snprintf(syslog_addr.sun_path, sizeof(syslog_addr.sun_path), "%s", path);
	access_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (access_fd < 0 ||
	    connect(access_fd, (struct sockaddr *)&syslog_addr, sizeof(syslog_addr)) < 0) {
		snprintf(err, errlen, "log syslog: cannot reach %s: %s (is a syslog daemon or "
			 "journald running? `log syslog socket PATH` names another socket)", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int open_udp(const struct config *cfg, char *err, size_t errlen)
{
	const struct cfg_addr *a = &cfg->log_udp;

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "-");
	access_fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (access_fd < 0 || connect(access_fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		snprintf(err, errlen, "log udp %s: %s", a->text, strerror(errno));
		return -1;
	}
	return 0;
}

int log_init(const struct config *cfg, char *err, size_t errlen)
{
	access_format = cfg->log_format;
	access_target = cfg->log_target;
	facility = cfg->log_facility;
	if (cfg->log_tag[0])
		snprintf(tag, sizeof(tag), "%s", cfg->log_tag);
	pid = (long)getpid();
	switch (cfg->log_target) {
	case LOG_TARGET_STDOUT: access_fd = STDOUT_FILENO; break;
	case LOG_TARGET_STDERR: access_fd = STDERR_FILENO; break;
	case LOG_TARGET_OFF: access_fd = -1; break;
	case LOG_TARGET_FILE:
		access_fd = open(cfg->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (access_fd < 0) {
			snprintf(err, errlen, "cannot open log file %s: %s", cfg->log_path,
				 strerror(errno));
			return -1;
		}
		free(access_path);
		access_path = strdup(cfg->log_path);
		break;
	case LOG_TARGET_SYSLOG:
		if (open_syslog(cfg, err, errlen) < 0)
			return -1;
		break;
	case LOG_TARGET_UDP:
		if (open_udp(cfg, err, errlen) < 0)
			return -1;
		break;
	}
	if (access_fd > STDERR_FILENO)
		copy_fd = access_fd;
	return 0;
}

void log_reopen(void)
{
	if (!access_path || access_fd < 0)
		return;
	int fd = open(access_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_msg(LOG_ERR, "cannot reopen log file %s: %s", access_path, strerror(errno));
		return;
	}
	dup2(fd, access_fd);
	close(fd);
	log_msg(LOG_INFO, "reopened log file %s", access_path);
}

uint64_t log_dropped(void)
{
	return atomic_load_explicit(&dropped, memory_order_relaxed);
}

bool log_access_enabled(void)
{
	return access_fd >= 0;
}

#define LOG_BUF_SIZE (64 * 1024)
#define LOG_LINE_MAX 4096

int log_thread_init(struct log_thread *lt)
{
	memset(lt, 0, sizeof(*lt));
	if (access_fd < 0)
		return 0;
	lt->buf = malloc(LOG_BUF_SIZE);
	if (!lt->buf)
		return -1;
	lt->cap = LOG_BUF_SIZE;
	return 0;
}

void log_thread_free(struct log_thread *lt)
{
	log_flush(lt);
	free(lt->buf);
	lt->buf = NULL;
}

/* One datagram a buffered line, sent in batches with sendmmsg(2). */
static void flush_datagrams(struct log_thread *lt)
{
	enum { BATCH = 32 };
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH][2];
	char h[BATCH][160];
	struct timespec ts;
	size_t hl, off = 0;
	unsigned n = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	hl = syslog_header(h[0], sizeof(h[0]), SEV_INFO, &ts);
	for (unsigned k = 1; k < BATCH; k++)
		memcpy(h[k], h[0], hl);
	memset(m, 0, sizeof(m));
	while (off < lt->len) {
		char *nl = memchr(lt->buf + off, '\n', lt->len - off);
		size_t len = (nl ? (size_t)(nl - lt->buf) : lt->len) - off;

		iov[n][0] = (struct iovec){ h[n], hl };
		iov[n][1] = (struct iovec){ lt->buf + off, len };
		m[n].msg_hdr.msg_iov = iov[n];
		m[n].msg_hdr.msg_iovlen = 2;
		off += len + 1;
		if (++n == BATCH) {
			send_datagrams(m, n);
			n = 0;
		}
	}
	if (n)
		send_datagrams(m, n);
}

void log_flush(struct log_thread *lt)
{
	size_t off = 0;
	if (lt->len && datagrams()) {
		flush_datagrams(lt);
		lt->len = 0;
		return;
	}
	while (off < lt->len) {
		ssize_t w = write(access_fd, lt->buf + off, lt->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* a full disk loses log lines, never requests */
		off += (size_t)w;
	}
	lt->len = 0;
}

/* The second-resolution parts of the dates are formatted once a second;
 * JSON adds the milliseconds of each record. */
static void update_dates(struct log_thread *lt, time_t now)
{
	if (now == lt->date_sec)
		return;
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(lt->date_clf, sizeof(lt->date_clf), "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
	strftime(lt->date_iso, sizeof(lt->date_iso), "%Y-%m-%dT%H:%M:%S", &tm);
	lt->date_sec = now;
}

enum esc { ESC_QUOTED, ESC_BARE, ESC_JSON };

/* Append s, escaping what would break the line: for the combined format
 * quotes, backslashes and non-printable bytes become \xHH, and so does a
 * space in a bare key=value word (a client's SNI or X-Request-Id with a
 * space would otherwise forge key=value words after it); for JSON the
 * RFC 8259 escapes. Stops at the end of the line buffer. */
static char *put_esc(char *o, char *end, const char *s, size_t n, enum esc mode)
{
	static const char hex[] = "0123456789abcdef";
	bool json = mode == ESC_JSON;
	unsigned char lo = mode == ESC_BARE ? 0x21 : 0x20;
	for (size_t i = 0; i < n && o + 6 < end; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= lo && ch < 0x7f && ch != '"' && ch != '\\') {
			*o++ = (char)ch;
		} else if (json && (ch == '"' || ch == '\\')) {
			*o++ = '\\';
			*o++ = (char)ch;
		} else if (json) {
			/* bytes >= 0x80 need not be UTF-8: escape them to keep JSON valid */
			memcpy(o, "\\u00", 4);
			o[4] = hex[ch >> 4];
			o[5] = hex[ch & 15];
			o += 6;
		} else {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	return o;
}

static char *put_str(char *o, char *end, const char *s)
{
	size_t n = strlen(s);
	if (n > (size_t)(end - o))
		n = (size_t)(end - o);
	memcpy(o, s, n);
	return o + n;
}

static char *put_ms(char *o, char *end, double ms, bool json)
{
	if (ms < 0)
		return put_str(o, end, json ? "null" : "-");
	int n = snprintf(o, (size_t)(end - o), "%.3f", ms);
	return o + (n > 0 && n < end - o ? n : 0);
}

static char *put_u64(char *o, char *end, uint64_t v)
{
	char tmp[BYTES_U64_DEC], *d = bytes_u64_dec(tmp, v);
	while (d < tmp + sizeof(tmp) && o < end)
		*o++ = *d++;
	return o;
}

#define DASH(s) ((s).n ? (s) : (struct log_str){ "-", 1 })

/* The combined log format exactly (Apache's "%h %l %u %t \"%r\" %>s %b
 * \"%{Referer}i\" \"%{User-agent}i\""), so that stock parsers (GoAccess,
 * fluent-bit's apache2, Logstash's COMBINEDAPACHELOG) read it: nothing may
 * follow the user agent. */
static char *put_combined(char *o, char *end, struct log_thread *lt, const struct access_rec *r)
{
	o = put_str(o, end, r->client);
	o = put_str(o, end, " - - ");
	o = put_str(o, end, lt->date_clf);
	o = put_str(o, end, " \"");
	o = put_esc(o, end, r->method.n ? r->method.p : "-", r->method.n ? r->method.n : 1,
		    ESC_QUOTED);
	o = put_str(o, end, " ");
	o = put_esc(o, end, DASH(r->target).p, DASH(r->target).n, ESC_QUOTED);
	o = put_str(o, end, r->h2 ? " HTTP/2.0\" " : r->minor ? " HTTP/1.1\" " : " HTTP/1.0\" ");
	o = put_u64(o, end, (uint64_t)r->status);
	o = put_str(o, end, " ");
	o = put_u64(o, end, r->bytes);
	o = put_str(o, end, " \"");
	o = put_esc(o, end, DASH(r->referer).p, DASH(r->referer).n, ESC_QUOTED);
	o = put_str(o, end, "\" \"");
	o = put_esc(o, end, DASH(r->ua).p, DASH(r->ua).n, ESC_QUOTED);
	return put_str(o, end, "\"");
}

/* combined-bollard: the combined format followed by bollard's fields as
 * key=value words (where the request went, the persistence decision,
 * timings, why it ended). */
static char *put_bollard_fields(char *o, char *end, const struct access_rec *r)
{
	o = put_str(o, end, " frontend=");
	o = put_str(o, end, r->frontend ? r->frontend : "-");
	o = put_str(o, end, " backend=");
	o = put_str(o, end, r->backend ? r->backend : "-");
	o = put_str(o, end, " server=");
	o = put_str(o, end, r->server ? r->server : "-");
	if (r->persist) {
		o = put_str(o, end, " persist=");
		o = put_str(o, end, r->persist);
		o = put_str(o, end, " method=");
		o = put_str(o, end, r->persist_method ? r->persist_method : "-");
		if (r->persist_reason) {
			o = put_str(o, end, " reason=");
			o = put_str(o, end, r->persist_reason);
		}
		if (r->persist_cookie) {
			o = put_str(o, end, " cookie=");
			o = put_str(o, end, r->persist_cookie);
		}
		if (r->persist_shared) {
			o = put_str(o, end, " shared=");
			o = put_str(o, end, r->persist_shared);
		}
	}
	o = put_str(o, end, " scheme=");
	o = put_str(o, end, r->scheme ? r->scheme : "-");
	if (r->tls) {
		o = put_str(o, end, " tls=");
		o = put_str(o, end, r->tls);
		o = put_str(o, end, " alpn=");
		o = put_esc(o, end, r->alpn.p, r->alpn.n, ESC_BARE);
		o = put_str(o, end, " sni=");
		o = put_esc(o, end, r->sni.p, r->sni.n, ESC_BARE);
		o = put_str(o, end, r->resumed ? " resumed=1" : " resumed=0");
	}
	o = put_str(o, end, " connect_ms=");
	o = put_ms(o, end, r->connect_ms, false);
	o = put_str(o, end, " ttfb_ms=");
	o = put_ms(o, end, r->ttfb_ms, false);
	o = put_str(o, end, " total_ms=");
	o = put_ms(o, end, r->total_ms, false);
	o = put_str(o, end, " term=");
	o = put_str(o, end, r->term ? r->term : "-");
	o = put_str(o, end, " req_id=");
	return put_esc(o, end, DASH(r->reqid).p, DASH(r->reqid).n, ESC_BARE);
}

static char *put_jstr(char *o, char *end, const char *key, const char *s, size_t n)
{
	o = put_str(o, end, key);
	o = put_str(o, end, "\"");
	o = put_esc(o, end, s, n, ESC_JSON);
	return put_str(o, end, "\"");
}

static char *put_json(char *o, char *end, struct log_thread *lt, const struct access_rec *r,
		      long ms)
{
	char frac[8] = { '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10),
			 (char)('0' + ms % 10), 'Z', '"' };

	/* RFC 3339 UTC time with milliseconds: 2026-11-27T18:40:00.123Z */
	o = put_str(o, end, "{\"time\":\"");
	o = put_str(o, end, lt->date_iso);
	o = put_str(o, end, frac);
	o = put_jstr(o, end, ",\"client\":", r->client, strlen(r->client));
	o = put_jstr(o, end, ",\"method\":", r->method.p, r->method.n);
	o = put_jstr(o, end, ",\"target\":", r->target.p, r->target.n);
	o = put_str(o, end, r->h2 ? ",\"proto\":\"HTTP/2.0\"" : r->minor ? ",\"proto\":\"HTTP/1.1\"" :
			    ",\"proto\":\"HTTP/1.0\"");
	if (r->scheme)
		o = put_jstr(o, end, ",\"scheme\":", r->scheme, strlen(r->scheme));
	if (r->tls) {
		o = put_jstr(o, end, ",\"tls\":", r->tls, strlen(r->tls));
		o = put_jstr(o, end, ",\"alpn\":", r->alpn.p, r->alpn.n);
		o = put_jstr(o, end, ",\"sni\":", r->sni.p, r->sni.n);
		o = put_str(o, end, r->resumed ? ",\"resumed\":true" : ",\"resumed\":false");
	}
	o = put_str(o, end, ",\"status\":");
	o = put_u64(o, end, (uint64_t)r->status);
	o = put_str(o, end, ",\"bytes\":");
	o = put_u64(o, end, r->bytes);
	o = put_jstr(o, end, ",\"referer\":", r->referer.p, r->referer.n);
	o = put_jstr(o, end, ",\"user_agent\":", r->ua.p, r->ua.n);
	o = put_jstr(o, end, ",\"frontend\":", r->frontend ? r->frontend : "", r->frontend ? strlen(r->frontend) : 0);
	o = put_jstr(o, end, ",\"backend\":", r->backend ? r->backend : "", r->backend ? strlen(r->backend) : 0);
	o = put_jstr(o, end, ",\"server\":", r->server ? r->server : "", r->server ? strlen(r->server) : 0);
	if (r->persist) {
		o = put_jstr(o, end, ",\"persist\":", r->persist, strlen(r->persist));
		o = put_jstr(o, end, ",\"persist_method\":", r->persist_method ? r->persist_method : "",
			     r->persist_method ? strlen(r->persist_method) : 0);
		if (r->persist_reason)
			o = put_jstr(o, end, ",\"persist_reason\":", r->persist_reason,
				     strlen(r->persist_reason));
		if (r->persist_cookie)
			o = put_jstr(o, end, ",\"persist_cookie\":", r->persist_cookie,
				     strlen(r->persist_cookie));
		if (r->persist_shared)
			o = put_jstr(o, end, ",\"persist_shared\":", r->persist_shared,
				     strlen(r->persist_shared));
	}
	o = put_str(o, end, ",\"connect_ms\":");
	o = put_ms(o, end, r->connect_ms, true);
	o = put_str(o, end, ",\"ttfb_ms\":");
	o = put_ms(o, end, r->ttfb_ms, true);
	o = put_str(o, end, ",\"total_ms\":");
	o = put_ms(o, end, r->total_ms, true);
	o = put_jstr(o, end, ",\"term\":", r->term ? r->term : "-", r->term ? strlen(r->term) : 1);
	o = put_jstr(o, end, ",\"request_id\":", r->reqid.p, r->reqid.n);
	return put_str(o, end, "}");
}

void log_access(struct log_thread *lt, const struct access_rec *r)
{
	struct timespec ts;

	if (access_fd < 0 || !lt->buf)
		return;
	if (lt->cap - lt->len < LOG_LINE_MAX)
		log_flush(lt);
	clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no system call */
	update_dates(lt, ts.tv_sec);
	char *o0 = lt->buf + lt->len, *o;
	char *end = o0 + LOG_LINE_MAX - 1; /* room for the newline */
	if (access_format == LOG_FORMAT_JSON) {
		o = put_json(o0, end, lt, r, ts.tv_nsec / 1000000);
	} else {
		o = put_combined(o0, end, lt, r);
		if (access_format == LOG_FORMAT_COMBINED_BOLLARD)
			o = put_bollard_fields(o, end, r);
	}
	*o++ = '\n';
	lt->len += (size_t)(o - o0);
}
