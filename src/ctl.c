/*
 * ctl.c - `bollard ctl`: send one runtime-API command, print the answer.
 *
 * It joins its arguments into one command line, writes it to the admin
 * socket, and reads until the empty line that ends every answer (SPEC §5);
 * scripts get the answer on stdout and a non-zero exit status when it is an
 * error, so `bollard ctl set server app/app1 state drain && deploy` does
 * the right thing. The socket is named with -s, or found in the
 * configuration file with -c (the same file the server runs with, so the
 * two never disagree), even when that file has errors elsewhere: the
 * running instance keeps serving its last good configuration and must stay
 * reachable (issue 10 item 3).
 *
 * Every wait is bounded: 30 s for ordinary commands; `wait` commands block
 * on the server side by design, so they get their own timeout plus a
 * margin (or an hour when they name none).
 */
#include "api.h"
#include "ctl.h"
#include "cfg.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_DEFAULT_SOCKET "./bollard.sock"
#define CTL_TIMEOUT_MS     30000
#define CTL_WAIT_MARGIN_MS 30000
#define CTL_WAIT_DEFAULT_MS (3600 * 1000)
#define CTL_MAX_ANSWER     (256u * 1024 * 1024)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bollard ctl [-s SOCKET | -c FILE] COMMAND ...\n"
		"  -s SOCKET   the admin socket (default " CTL_DEFAULT_SOCKET ")\n"
		"  -c FILE     take the admin-socket path from this configuration\n"
		"Try 'bollard ctl help' for the commands.\n");
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long to wait for the answer to cmd. */
static int64_t answer_timeout(const char *cmd)
{
	const char *p = cmd, *t;
	uint32_t ms;
	char word[32];
	size_t n;

	if (strncmp(p, "json ", 5) == 0)
		p += 5;
	if (strncmp(p, "wait ", 5) != 0)
		return CTL_TIMEOUT_MS;
	t = strstr(p, " timeout ");
	if (!t)
		return CTL_WAIT_DEFAULT_MS;
	t += strlen(" timeout ");
	n = strcspn(t, " ");
	if (n == 0 || n >= sizeof(word))
		return CTL_WAIT_DEFAULT_MS;
	memcpy(word, t, n);
	word[n] = '\0';
	if (cfg_parse_duration(word, &ms) < 0)
		return CTL_WAIT_DEFAULT_MS;
	return (int64_t)ms + CTL_WAIT_MARGIN_MS;
}

/* Wait until fd is ready for events or the deadline passes: 1, 0 or -1. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - mono_ms();
		int r;

		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return 1;
	}
}

/* Position just past the end-of-answer empty line in buf[0..len), or 0. */
static size_t answer_end(const char *buf, size_t len)
{
	const char *p;

	if (len == 0)
		return 0;
	if (buf[0] == '\n')
		return 1;       /* an empty answer */
	p = memmem(buf, len, "\n\n", 2);
	return p ? (size_t)(p - buf) + 2 : 0;
}

int ctl_main(int argc, char **argv)
{
	const char *sock = NULL, *file = NULL;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *cmd = NULL, *ans = NULL, *sock_owned = NULL, *where = NULL;
	size_t cmdlen = 0, anslen = 0, anscap = 0, end = 0, off;
	int64_t deadline;
	int i, fd = -1, rc = 1;

	/* Usage errors are one line each, exit status 2 (as bollard's own). */
	for (i = 0; i < argc; i++) {
		bool s = strcmp(argv[i], "-s") == 0, c = strcmp(argv[i], "-c") == 0;

		if (s || c) {
			if (i + 1 >= argc || !argv[i + 1][0]) {
				fprintf(stderr, "bollard ctl: %s needs %s: bollard ctl %s %s COMMAND\n",
					argv[i], s ? "a SOCKET path" : "a configuration FILE", argv[i],
					s ? "SOCKET" : "FILE");
				return 2;
			}
			if ((s && sock) || (c && file)) {
				fprintf(stderr, "bollard ctl: %s given twice\n", argv[i]);
				return 2;
			}
			*(s ? &sock : &file) = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "bollard ctl: unknown option '%s' (expected -s SOCKET, -c FILE, "
				"then a COMMAND)\n", argv[i]);
			return 2;
		} else
			break;
	}
	if (sock && file) {
		fprintf(stderr, "bollard ctl: give -s or -c, not both\n");
		return 2;
	}
	if (i >= argc) {
		fprintf(stderr, "bollard ctl: missing COMMAND: bollard ctl [-s SOCKET | -c FILE] "
			"COMMAND (try 'bollard ctl help')\n");
		return 2;
	}

	/* the command line: the remaining arguments joined by spaces */
	for (int k = i; k < argc; k++)
		cmdlen += strlen(argv[k]) + 1;
	cmd = malloc(cmdlen + 1);
	if (!cmd) {
		fprintf(stderr, "bollard ctl: out of memory\n");
		return 1;
	}
	cmdlen = 0;
	for (int k = i; k < argc; k++) {
		size_t l = strlen(argv[k]);

		if (strpbrk(argv[k], "\r\n")) {
			/* one command, one line: a newline would smuggle a second */
			fprintf(stderr, "bollard ctl: the command must be a single line\n");
			goto out;
		}
		if (k > i)
			cmd[cmdlen++] = ' ';
		memcpy(cmd + cmdlen, argv[k], l);
		cmdlen += l;
	}
	cmd[cmdlen] = '\0';

	if (file) {
		char *errs = NULL;

		/* Only the admin-socket line matters here: a file with errors
		 * elsewhere (being edited, or refused by the last reload) must
		 * not keep the operator from the running instance. */
		sock_owned = cfg_admin_socket(file, &where, &errs);
		if (!sock_owned) {
			if (errs)
				fputs(errs, stderr);
			fprintf(stderr, "bollard ctl: no admin-socket in %s\n", file);
			free(errs);
			goto out;
		}
		if (errs)
			fprintf(stderr, "bollard ctl: %s has errors (bollard check -c %s); using "
				"admin-socket %s from %s\n", file, file, sock_owned, where);
		free(errs);
		sock = sock_owned;
	}
	if (!sock)
		sock = CTL_DEFAULT_SOCKET;
	if (strlen(sock) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "bollard ctl: socket path too long: %s\n", sock);
		goto out;
	}
	memcpy(sun.sun_path, sock, strlen(sock) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "bollard ctl: cannot connect to %s%s%s%s: %s\n", sock,
			where ? " (admin-socket at " : "", where ? where : "", where ? ")" : "",
			strerror(errno));
		goto out;
	}
	deadline = mono_ms() + answer_timeout(cmd);

	cmd[cmdlen++] = '\n';    /* replaces the NUL: room was counted */
	for (off = 0; off < cmdlen;) {
		ssize_t w;

		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			fprintf(stderr, "bollard ctl: %s: timeout sending the command\n", sock);
			goto out;
		}
		w = send(fd, cmd + off, cmdlen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (w < 0) {
			fprintf(stderr, "bollard ctl: %s: %s\n", sock, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}

	while (!(end = answer_end(ans, anslen))) {
		ssize_t r;
		int ready = wait_fd(fd, POLLIN, deadline);

		if (ready <= 0) {
			fprintf(stderr, "bollard ctl: %s: no answer in time\n", sock);
			goto out;
		}
		if (anscap - anslen < 4096) {
			char *na;

			if (anscap >= CTL_MAX_ANSWER) {
				fprintf(stderr, "bollard ctl: answer too large\n");
				goto out;
			}
			anscap = anscap ? anscap * 2 : 16384;
			na = realloc(ans, anscap);
			if (!na) {
				fprintf(stderr, "bollard ctl: out of memory\n");
				goto out;
			}
			ans = na;
		}
		r = recv(fd, ans + anslen, anscap - anslen, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (r < 0) {
			fprintf(stderr, "bollard ctl: %s: %s\n", sock, strerror(errno));
			goto out;
		}
		if (r == 0) {
			if (anslen)
				fwrite(ans, 1, anslen, stdout);
			fprintf(stderr, "bollard ctl: %s: connection closed before the end of the answer\n", sock);
			goto out;
		}
		anslen += (size_t)r;
	}
	/* print without the terminating empty line */
	fwrite(ans, 1, end - 1, stdout);
	fflush(stdout);
	rc = (end >= 6 && strncmp(ans, "error:", 6) == 0) ? 1 : 0;
out:
	if (fd >= 0)
		close(fd);
	free(sock_owned);
	free(where);
	free(cmd);
	free(ans);
	return rc;
}
