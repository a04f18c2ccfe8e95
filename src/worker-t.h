/*
 * worker-t.h - the worker thread's state, shared by worker.c (the loop) and
 * stream.c (the proxy). Everything here belongs to one thread.
 */
#ifndef BOLLARD_WORKER_T_H
#define BOLLARD_WORKER_T_H

#include "buf.h"
#include "ev.h"
#include "h1.h"
#include "h2_mem.h"
#include "lb.h"
#include "log.h"
#include "stream.h"
#include <pthread.h>

/* Idle server connections of one server, most recently used first. */
struct sconn_pool {
	struct sconn *head;
	uint32_t n;
	/* server ... tls: the last session the server gave a connection of
	 * this worker, which new connections offer to resume (sconn.c) */
	struct ssl_session_st *tls_sess;
};

struct worker {
	int id;
	pthread_t thread;
	int epfd;
	int wakefd;                 /* eventfd: stop requests from the control thread */
	int wake_kind;              /* OBJ_WAKEUP, epoll data for wakefd */
	struct config *cfg;         /* the generation new requests use */
	struct config *_Atomic pending_cfg; /* set by workers_reload() */
	const struct config *_Atomic running_cfg; /* cfg, for other threads to compare */
	struct listener *old_listeners; /* replaced by a reload; freed after the iteration */
	struct lb_thread *lb;
	uint64_t now;               /* ms, read once per loop iteration */
	uint64_t now_us;
	struct ev_heap timers;
	struct buf_pool bufs;
	struct log_thread log;
	struct listener *listeners;
	int nlisteners;
	struct cconn *clients;      /* all client connections */
	uint32_t nclients;
	struct sconn_pool **pools;  /* [backend idx][server idx] */
	uint32_t *pool_cap;         /* [backend idx]: servers pools[b] has room for */
	/* closed this iteration; freed once no queued event can name them */
	struct cconn *dead_clients;
	struct cconn *queue_head, *queue_tail; /* CS_QUEUED, oldest first */
	struct persist_req *pr_free;          /* idle persistence decisions, reused */
	struct shared_loop *shared;           /* shared-tables: its Redis link; NULL = none */
	struct h2_strm *h2_free;              /* idle HTTP/2 stream slots, reused (xprt_h2s.c) */
	struct h2_conn *h2_dirty;             /* HTTP/2 connections with frames to send (h2.c) */
	struct buf_pool h2_bodies;            /* HTTP/2 request bodies: window + tune.bufsize each */
	struct h2_mem h2_mem;                 /* what libnghttp2 allocates, reused (h2_mem.c) */
	uint32_t nqueued;
	struct sconn *dead_servers;
	uint64_t reqid_seed, reqid_next;
	struct h1_hdr *hdrs;        /* scratch for parsing, tune.maxhdr + 1 */
	struct h1_limits lim;
	bool stopping, forced, done;
	bool paused_listeners;      /* an accept batch was cut short: resume at once */
	bool limit_paused;          /* maxconn or descriptors exhausted: retry every 10 ms */
};

#endif
