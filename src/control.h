/*
 * control.h - the main thread's control loop: signals, the admin socket
 * (runtime API) and the stats listener, then the graceful stop.
 */
#ifndef BOLLARD_CONTROL_H
#define BOLLARD_CONTROL_H

#include "cfg.h"

/*
 * Run on the main thread after workers_start(cfg), until SIGTERM or SIGINT
 * has stopped the workers (gracefully within cfg->grace, then by force; a
 * second signal forces at once). The caller must have blocked SIGTERM,
 * SIGINT, SIGHUP and SIGUSR1 in every thread before starting the workers:
 * they are received here through a signalfd. Opens the admin socket
 * (cfg->admin_socket) and the stats listener (cfg->has_stats); if either
 * cannot be opened, stops the workers and returns 1. Returns 0 after a
 * normal stop, having joined the workers and removed the admin socket.
 */
int control_run(struct config *cfg);

/* Reload now (SIGHUP or the runtime API's `reload`): 0 swapped, -1 kept the
 * previous configuration (msg says why). Control thread only. */
int control_reload(char *msg, size_t msglen);

#endif
