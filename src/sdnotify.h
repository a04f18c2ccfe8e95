/*
 * sdnotify.h - the service manager's readiness protocol (sd_notify(3)),
 * for `Type=notify` in contrib/bollard.service: READY=1 once every port is
 * bound, RELOADING=1 (with MONOTONIC_USEC) when a reload starts and READY=1
 * when it is over, STOPPING=1 when a stop begins.
 */
#ifndef BOLLARD_SDNOTIFY_H
#define BOLLARD_SDNOTIFY_H

#include "api.h"

/* Sends msg (e.g. "READY=1\nSTATUS=...") to $NOTIFY_SOCKET; does nothing
 * when the variable is unset (not started by systemd). Returns 1 sent,
 * 0 nothing to do, -1 on a send error (logged once by the caller if it
 * wishes: readiness is advice, never a reason to stop serving). */
int sdnotify(const char *msg);

/* "RELOADING=1\nMONOTONIC_USEC=N" with N the CLOCK_MONOTONIC time now, as
 * systemd's Type=notify-reload wants it. */
int sdnotify_reloading(void);

#endif
