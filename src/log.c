/*
 * log.c - error log and access log.
 *
 * The error log goes to stderr, one write(2) a message. The access log is
 * formatted into a per-thread buffer and written once per event-loop
 * iteration, so a busy worker pays one syscall for many requests and lines
 * from different threads never interleave (each write holds whole lines).
 */
#include "api.h"
#include "log.h"
#include <fcntl.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

static int access_fd = -1;          /* -1: access log off */
static enum cfg_log_format access_format;
static char *access_path;           /* for reopen */

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", level_names[lvl]);
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
}

int log_init(const struct config *cfg, char *err, size_t errlen)
{
	access_format = cfg->log_format;
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
	}
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

void log_flush(struct log_thread *lt)
{
	size_t off = 0;
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

static void update_dates(struct log_thread *lt)
{
	time_t now = time(NULL);
	if (now == lt->date_sec)
		return;
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(lt->date_clf, sizeof(lt->date_clf), "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
	strftime(lt->date_iso, sizeof(lt->date_iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	lt->date_sec = now;
}

/* Append s, escaping what would break the line: for the combined format
 * quotes, backslashes and non-printable bytes become \xHH; for JSON the
 * RFC 8259 escapes. Stops at the end of the line buffer. */
static char *put_esc(char *o, char *end, const char *s, size_t n, bool json)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n && o + 6 < end; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
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
	char tmp[24];
	int i = 0;
	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i && o < end)
		*o++ = tmp[--i];
	return o;
}

#define DASH(s) ((s).n ? (s) : (struct log_str){ "-", 1 })

static size_t format_combined(char *o0, char *end, struct log_thread *lt,
			      const struct access_rec *r)
{
	char *o = o0;
	o = put_str(o, end, r->client);
	o = put_str(o, end, " - - ");
	o = put_str(o, end, lt->date_clf);
	o = put_str(o, end, " \"");
	o = put_esc(o, end, r->method.n ? r->method.p : "-", r->method.n ? r->method.n : 1, false);
	o = put_str(o, end, " ");
	o = put_esc(o, end, DASH(r->target).p, DASH(r->target).n, false);
	o = put_str(o, end, r->minor ? " HTTP/1.1\" " : " HTTP/1.0\" ");
	o = put_u64(o, end, (uint64_t)r->status);
	o = put_str(o, end, " ");
	o = put_u64(o, end, r->bytes);
	o = put_str(o, end, " \"");
	o = put_esc(o, end, DASH(r->referer).p, DASH(r->referer).n, false);
	o = put_str(o, end, "\" \"");
	o = put_esc(o, end, DASH(r->ua).p, DASH(r->ua).n, false);
	o = put_str(o, end, "\" frontend=");
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
	}
	o = put_str(o, end, " scheme=");
	o = put_str(o, end, r->scheme ? r->scheme : "-");
	o = put_str(o, end, " connect_ms=");
	o = put_ms(o, end, r->connect_ms, false);
	o = put_str(o, end, " ttfb_ms=");
	o = put_ms(o, end, r->ttfb_ms, false);
	o = put_str(o, end, " total_ms=");
	o = put_ms(o, end, r->total_ms, false);
	o = put_str(o, end, " term=");
	o = put_str(o, end, r->term ? r->term : "-");
	o = put_str(o, end, " req_id=");
	o = put_esc(o, end, DASH(r->reqid).p, DASH(r->reqid).n, false);
	return (size_t)(o - o0);
}

static char *put_jstr(char *o, char *end, const char *key, const char *s, size_t n)
{
	o = put_str(o, end, key);
	o = put_str(o, end, "\"");
	o = put_esc(o, end, s, n, true);
	return put_str(o, end, "\"");
}

static size_t format_json(char *o0, char *end, struct log_thread *lt,
			  const struct access_rec *r)
{
	char *o = o0;
	o = put_jstr(o, end, "{\"time\":", lt->date_iso, strlen(lt->date_iso));
	o = put_jstr(o, end, ",\"client\":", r->client, strlen(r->client));
	o = put_jstr(o, end, ",\"method\":", r->method.p, r->method.n);
	o = put_jstr(o, end, ",\"target\":", r->target.p, r->target.n);
	o = put_str(o, end, r->minor ? ",\"proto\":\"HTTP/1.1\"" : ",\"proto\":\"HTTP/1.0\"");
	if (r->scheme)
		o = put_jstr(o, end, ",\"scheme\":", r->scheme, strlen(r->scheme));
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
	}
	o = put_str(o, end, ",\"connect_ms\":");
	o = put_ms(o, end, r->connect_ms, true);
	o = put_str(o, end, ",\"ttfb_ms\":");
	o = put_ms(o, end, r->ttfb_ms, true);
	o = put_str(o, end, ",\"total_ms\":");
	o = put_ms(o, end, r->total_ms, true);
	o = put_jstr(o, end, ",\"term\":", r->term ? r->term : "-", r->term ? strlen(r->term) : 1);
	o = put_jstr(o, end, ",\"request_id\":", r->reqid.p, r->reqid.n);
	o = put_str(o, end, "}");
	return (size_t)(o - o0);
}

void log_access(struct log_thread *lt, const struct access_rec *r)
{
	if (access_fd < 0 || !lt->buf)
		return;
	if (lt->cap - lt->len < LOG_LINE_MAX)
		log_flush(lt);
	update_dates(lt);
	char *o = lt->buf + lt->len;
	char *end = o + LOG_LINE_MAX - 1; /* room for the newline */
	size_t n = access_format == LOG_FORMAT_JSON ? format_json(o, end, lt, r)
						    : format_combined(o, end, lt, r);
	o[n++] = '\n';
	lt->len += n;
}
