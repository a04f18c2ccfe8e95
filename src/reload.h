/*
 * reload.h - taking a new configuration without dropping a connection or a
 * request (SPEC §6): validate first, keep the old one on any error; carry
 * the persistence tables, counters and operator states over by name; swap
 * atomically. Workers move to the new generation at request boundaries.
 */
#ifndef BOLLARD_RELOAD_H
#define BOLLARD_RELOAD_H

#include "cfg.h"

/* Control thread: reload G.cfg->file. Returns 0 (swapped) or -1 (kept the
 * old configuration; every error was logged, and msg says why: one line, or
 * for configuration errors a summary line then one FILE:LINE: message a
 * line, as many as msglen holds). */
int reload_run(char *msg, size_t msglen);

#endif
