/*
 * priv.c - what an operator expects of a daemon started as root (the
 * conventions of NGINX's and HAProxy's `user`/`group`/`pidfile`).
 *
 * Root is needed only for what happens at start: binding ports below 1024,
 * reading a key file that only root may read, writing a pidfile under /run.
 * Once all of that is done (priv_after_bind() is called after the last
 * listener is bound), the process switches for good to the configured user
 * and group: supplementary groups first (initgroups, or the one group), then
 * the group, then the user, and a check that root cannot be taken back.
 * glibc applies setuid/setgid to every thread of the process, so the worker
 * threads already running drop with the control thread.
 *
 * Without `user` and `group`, a process running as root says so once: it
 * keeps working (tests and the demo run as root), but the operator is told
 * how not to.
 */
#include "api.h"
#include "priv.h"
#include "log.h"

#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

/* Write PID to path through a temporary file and a rename, so that a reader
 * never sees a half-written pidfile. */
static int write_pidfile(const char *path, char *err, size_t errlen)
{
	char tmp[4096], buf[24];
	int fd, n;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "pidfile %s: path too long", path);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || write(fd, buf, (size_t)n) != n || fsync(fd) < 0) {
		snprintf(err, errlen, "pidfile %s: %s", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "pidfile %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The state file is saved by rename(2) into its directory: after the drop
 * the user must be able to write there, or every save fails. Said once, at
 * start, rather than by each failed save. */
static void warn_unwritable_state_dir(const struct config *cfg)
{
	char dir[4096];

	if (!cfg->state_file || strlen(cfg->state_file) >= sizeof(dir))
		return;
	memcpy(dir, cfg->state_file, strlen(cfg->state_file) + 1);
	if (access(dirname(dir), W_OK) < 0)
		log_msg(LOG_WARN, "state-file %s: its directory is not writable by user %s (%s): "
			"the state will not be saved", cfg->state_file,
			cfg->user ? cfg->user : "(unchanged)", strerror(errno));
}

static int drop(const struct config *cfg, const char *admin_socket, char *err, size_t errlen)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	const char *uname = NULL;

	if (cfg->user) {
		struct passwd *pw = getpwnam(cfg->user);

		if (!pw) {
			snprintf(err, errlen, "user %s: no such user", cfg->user);
			return -1;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid; /* the user's own group unless `group` says otherwise */
		uname = pw->pw_name;
	}
	if (cfg->group) {
		struct group *gr = getgrnam(cfg->group);

		if (!gr) {
			snprintf(err, errlen, "group %s: no such group", cfg->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (uid == geteuid() && gid == getegid())
			return 0; /* already who we were asked to be (e.g. systemd's User=) */
		snprintf(err, errlen, "user/group: running as uid %ld, which cannot switch to "
			 "uid %ld gid %ld (start as root, or remove `user` and `group`)",
			 (long)geteuid(), (long)uid, (long)gid);
		return -1;
	}
	/* the admin socket is the user's: ctl as that user reaches it and the
	 * stop can remove it */
	if (admin_socket && chown(admin_socket, uid, gid) < 0) {
		snprintf(err, errlen, "admin-socket %s: chown: %s", admin_socket, strerror(errno));
		return -1;
	}
	if ((uname ? initgroups(uname, gid) : setgroups(1, &gid)) < 0 || setgid(gid) < 0 ||
	    setuid(uid) < 0) {
		snprintf(err, errlen, "cannot drop privileges to uid %ld gid %ld: %s", (long)uid,
			 (long)gid, strerror(errno));
		return -1;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen, "privileges were not dropped: root could be taken back");
		return -1;
	}
	log_msg(LOG_INFO, "running as user %s (uid %ld), group %s (gid %ld)",
		cfg->user ? cfg->user : "(unchanged)", (long)uid,
		cfg->group ? cfg->group : "(the user's)", (long)gid);
	warn_unwritable_state_dir(cfg);
	return 0;
}

int priv_after_bind(const struct config *cfg, const char *admin_socket, char *err,
		    size_t errlen)
{
	if (cfg->pidfile && write_pidfile(cfg->pidfile, err, errlen) < 0)
		return -1;
	if (cfg->user || cfg->group)
		return drop(cfg, admin_socket, err, errlen);
	if (geteuid() == 0)
		log_msg(LOG_WARN, "running as root: set `user` and `group` in the global section "
			"to drop root once the ports are bound (bollard.conf(5))");
	return 0;
}

void priv_at_exit(const struct config *cfg)
{
	if (cfg && cfg->pidfile && unlink(cfg->pidfile) < 0 && errno != ENOENT)
		log_msg(LOG_INFO, "pidfile %s not removed: %s", cfg->pidfile, strerror(errno));
}

/* The kernel's bound for ports that need CAP_NET_BIND_SERVICE (1024 unless
 * net.ipv4.ip_unprivileged_port_start says otherwise). */
static unsigned unprivileged_port_start(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
	unsigned v = 1024;

	if (f) {
		if (fscanf(f, "%u", &v) != 1)
			v = 1024;
		fclose(f);
	}
	return v;
}

const char *priv_bind_hint(int err, const struct cfg_addr *a)
{
	static _Thread_local char hint[400];
	unsigned port = 0, start;

	if (err != EACCES)
		return "";
	if (a->ss.ss_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	else if (a->ss.ss_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	start = unprivileged_port_start();
	if (port == 0 || port >= start)
		return "";
	snprintf(hint, sizeof(hint), " (a port below %u needs root or CAP_NET_BIND_SERVICE: "
		 "start as root with `user` and `group` in the global section, which drop root "
		 "once the ports are bound, or grant the capability: "
		 "AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit, or "
		 "setcap cap_net_bind_service=+ep on the binary)", start);
	return hint;
}
