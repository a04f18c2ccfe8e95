/*
 * global.h - the process-wide state that the control thread (runtime API,
 * stats) reads and the worker threads update: the running configuration and
 * a few atomic counters. Everything here is either immutable after start or
 * atomic.
 */
#ifndef BOLLARD_GLOBAL_H
#define BOLLARD_GLOBAL_H

#include "cfg.h"
#include <time.h>

struct global_state {
	struct config *cfg;           /* running configuration */
	time_t start_time;            /* wall clock at start */
	_Atomic int64_t conns;        /* current client connections */
	_Atomic uint64_t conns_total; /* client connections accepted */
	_Atomic uint64_t requests;    /* requests received (all frontends) */
	_Atomic uint32_t reloads;
	_Atomic int stopping;         /* 1 once a graceful stop began */
};

extern struct global_state G;

#endif
