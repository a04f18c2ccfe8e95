/*
 * instance.h - refuse to run a configuration another bollard already runs
 * (locks beside the admin socket and the state file, probes of the
 * addresses) or whose state-file is not a regular file; see instance.c.
 */
#ifndef BOLLARD_INSTANCE_H
#define BOLLARD_INSTANCE_H

#include "cfg.h"

/*
 * At start, before any listener is bound or the state file read: 0 when
 * this process may run cfg (it then holds the locks until it exits), or
 * -1 with err saying who is in the way and what to do.
 */
int instance_claim(const struct config *cfg, char *err, size_t errlen);

#endif
