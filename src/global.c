/*
 * global.c - the one definition of the process-wide state (global.h), in a
 * file of its own, as HAProxy keeps its `global`: every layer reads G, so
 * defining it in main.c made each of them depend at link time on the top
 * of the program (and the control thread, the admin commands and the stats
 * listener on one another through it). Nothing but data here.
 */
#include "api.h"
#include "global.h"

struct global_state G;
