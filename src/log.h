/*
 * log.h - the error log (levels, to stderr) and the access log (one line
 * per request, combined or JSON, buffered per thread and flushed once per
 * event-loop iteration so that logging costs no syscall per request).
 */
#ifndef BOLLARD_LOG_H
#define BOLLARD_LOG_H

#include "api.h"

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Error log: "YYYY-mm-ddTHH:MM:SSZ LEVEL message\n" on stderr. Thread-safe
 * (one write(2) per message). */
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
