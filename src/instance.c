/*
 * instance.c - one running bollard per configuration.
 *
 * Started twice with the same file, a second bollard used to unlink the
 * live admin socket (taking the runtime API away from the first), and,
 * since the workers' listeners use SO_REUSEPORT, silently take a share of
 * the frontends' traffic with tables of its own (issue 9 item 13). Before
 * anything is bound or read, instance_claim() makes sure nobody else runs
 * this configuration:
 *
 * - an exclusive flock(2) on PATH.lock beside the admin socket and beside
 *   the state file, held for the life of the process (the kernel drops it
 *   when the process dies, however it dies, so a crash leaves no stale
 *   lock; the file itself stays, holding the pid of the last holder for
 *   the message);
 * - an admin socket that answers a connect(2) belongs to a live process,
 *   whatever its lock says (an older bollard, another configuration
 *   naming the same socket);
 * - each frontend address and stats-listen is bound once without
 *   SO_REUSEPORT: if anyone listens there (SO_REUSEPORT or not), that bind
 *   fails with EADDRINUSE.
 *
 * It also refuses a state-file path that names something other than a
 * regular file, which the start would block on (a FIFO) or the saves fail
 * on.
 */
#include "api.h"
#include "instance.h"

#include <fcntl.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int lock_fds[2] = { -1, -1 };   /* held until exit */

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Lock PATH.lock for what (a keyword, for the message) into *slot. */
static int lock_beside(const char *path, const char *what, int *slot, char *err, size_t errlen)
{
	size_t n = strlen(path);
	char *lp = malloc(n + sizeof(".lock"));
	char pid[32] = "";
	int fd, len;

	if (!lp)
		return fail(err, errlen, "out of memory");
	memcpy(lp, path, n);
	memcpy(lp + n, ".lock", sizeof(".lock"));
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fail(err, errlen, "%s %s: cannot open %s: %s", what, path, lp, strerror(errno));
		free(lp);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		if (e == EWOULDBLOCK) {
			ssize_t r = pread(fd, pid, sizeof(pid) - 1, 0);

			pid[r > 0 ? r : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			fail(err, errlen, "another bollard (pid %s) runs with %s %s (it holds %s): "
			     "stop it first, or give this one its own admin-socket and state-file",
			     pid[0] ? pid : "unknown", what, path, lp);
		} else
			fail(err, errlen, "%s %s: cannot lock %s: %s", what, path, lp, strerror(e));
		close(fd);
		free(lp);
		return -1;
	}
	free(lp);
	/* the pid is for the message above only: a lock without it still locks */
	len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	bool written = ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) == len;
	(void)written;
	*slot = fd;
	return 0;
}

/* Does a process answer on the unix socket path? */
static bool socket_answers(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;
	bool yes;

	if (strlen(path) >= sizeof(sun.sun_path) || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	yes = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return yes;
}

/* Does another socket listen on a? Only EADDRINUSE says yes: other
 * errors are for the real bind to report. */
static bool address_taken(const struct cfg_addr *a)
{
	int one = 1, fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool taken;

	if (fd < 0)
		return false;
	/* SO_REUSEADDR: connections of a previous run in TIME_WAIT are not
	 * a listener; no SO_REUSEPORT: every listener there is one */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	taken = bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno == EADDRINUSE;
	close(fd);
	return taken;
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket" :
	       S_ISCHR(m) || S_ISBLK(m) ? "a device" : "not a file";
}

int instance_claim(const struct config *cfg, char *err, size_t errlen)
{
	struct stat st;

	/* Opening a FIFO to read it waits for a writer: the start blocked for
	 * ever (issue 9 item 19). A state file is a regular file or absent. */
	if (cfg->state_file && stat(cfg->state_file, &st) == 0 && !S_ISREG(st.st_mode))
		return fail(err, errlen, "state-file %s: not a regular file (%s); give the path of "
			    "a file bollard may create and replace", cfg->state_file,
			    file_kind(st.st_mode));
	if (cfg->admin_socket &&
	    lock_beside(cfg->admin_socket, "admin-socket", &lock_fds[0], err, errlen) < 0)
		return -1;
	if (cfg->state_file &&
	    lock_beside(cfg->state_file, "state-file", &lock_fds[1], err, errlen) < 0)
		return -1;
	if (cfg->admin_socket && socket_answers(cfg->admin_socket))
		return fail(err, errlen, "admin-socket %s: another process answers there "
			    "(another bollard?): stop it first, or choose another path",
			    cfg->admin_socket);
	for (int f = 0; f < cfg->nfrontends; f++)
		for (int b = 0; b < cfg->frontends[f]->nbinds; b++)
			if (address_taken(&cfg->frontends[f]->binds[b]))
				return fail(err, errlen, "bind %s: already served by another process "
					    "(a second bollard would silently share its traffic): "
					    "stop it first", cfg->frontends[f]->binds[b].text);
	if (cfg->has_stats && address_taken(&cfg->stats_listen))
		return fail(err, errlen, "stats-listen %s: already served by another process: "
			    "stop it first", cfg->stats_listen.text);
	return 0;
}
