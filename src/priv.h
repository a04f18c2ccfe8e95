/*
 * priv.h - the process conventions of a daemon that may be started as root
 * (priv.c): a pidfile, dropping root for the `user` and `group` of the
 * global section once every port is bound and every key is read, and the
 * hint an operator needs when a privileged port is refused.
 */
#ifndef BOLLARD_PRIV_H
#define BOLLARD_PRIV_H

#include "cfg.h"

/*
 * Called once, after the workers' listeners, the admin socket and the stats
 * listener are bound and the secret key and state file are read: writes the
 * pidfile (atomically), then drops to cfg's user and group. admin_socket is
 * the path of the admin socket created (NULL if none): it is given to the
 * user so that `bollard ctl` run as that user reaches it and the stop can
 * remove it. Without user and group, running as root logs one warning.
 * Returns 0, or -1 with why in err (the start must fail: a daemon that was
 * told to drop root never goes on as root).
 */
int priv_after_bind(const struct config *cfg, const char *admin_socket, char *err,
		    size_t errlen);

/* At a clean stop: remove the pidfile (when its directory lets the process,
 * which may no longer be root, do so). */
void priv_at_exit(const struct config *cfg);

/*
 * What to append to "cannot bind ADDR: strerror(err)" so that the operator
 * knows what to do: for EACCES on a port below the kernel's
 * ip_unprivileged_port_start, how to grant CAP_NET_BIND_SERVICE or start as
 * root with `user`; "" otherwise. Static string.
 */
const char *priv_bind_hint(int err, const struct cfg_addr *a);

#endif
