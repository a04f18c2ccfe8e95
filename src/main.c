/*
 * main.c - the command line (SPEC §2): run, check, ctl, --version, --help.
 * Running means: load and validate the configuration, open the logs and the
 * secret key, start the workers, then hand the main thread to the control
 * loop (signals, runtime API, stats) until a stop.
 */
#include "api.h"
#include "cfg.h"
#include "control.h"
#include "ctl.h"
#include "global.h"
#include "instance.h"
#include "log.h"
#include "lb_hash.h"
#include "persist.h"
#include "shared.h"
#include "priv.h"
#include "state.h"
#include "worker.h"

#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bollard -c FILE                 run in the foreground\n"
		"       bollard check -c FILE           validate FILE and print every error (never binds)\n"
		"       bollard -t -c FILE              the same as check (as nginx -t)\n"
		"       bollard ctl [-s SOCKET | -c FILE] COMMAND ...\n"
		"                                       send one runtime-API command\n"
		"       bollard --version | --help\n"
		"\n"
		"Signals: SIGHUP reloads the configuration, SIGTERM/SIGINT stop gracefully,\n"
		"SIGUSR1 reopens log files.\n"
		"Exit status: 0 success, 1 failure (e.g. configuration errors), 2 usage error.\n"
		"Documentation: bollard(8), bollard.conf(5).\n");
}

/* What every usage error says after its first words: one line, so that a
 * deploy script's log shows the whole of it. */
#define EXPECTED "expected: bollard -c FILE, bollard check -c FILE, bollard -t -c FILE, " \
		 "bollard ctl ..., --version or --help"

/* A usage error: one line on stderr, exit status 2. */
static int usage_error(const char *msg)
{
	fprintf(stderr, "bollard: %s\n", msg);
	return 2;
}

/*
 * The options of a run or a check: argv[from..argc) may hold only -c FILE
 * (or -cFILE) once and -t. Anything else is a usage error, never ignored:
 * a deploy script's "test the configuration" step that started a live
 * proxy instead (issue 10 item 1) must be impossible. Returns 0 with *file
 * and *test set, or the exit status of the usage error it reported.
 */
static int parse_run_args(int argc, char **argv, int from, const char **file, bool *test)
{
	const char *form = from == 2 ? "bollard check -c FILE" : "bollard -c FILE";

	*file = NULL;
	for (int i = from; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-c") || (!strncmp(a, "-c", 2) && a[2])) {
			if (*file)
				return usage_error("-c given twice (one configuration file)");
			if (a[2]) {
				*file = a + 2;
			} else if (i + 1 < argc && argv[i + 1][0]) {
				*file = argv[++i];
			} else {
				fprintf(stderr, "bollard: -c needs a FILE: %s\n", form);
				return 2;
			}
		} else if (!strcmp(a, "-t")) {
			*test = true;
		} else if (!strcmp(a, "check") || !strcmp(a, "ctl")) {
			fprintf(stderr, "bollard: '%s' must come first: bollard %s %s\n", a, a,
				!strcmp(a, "check") ? "-c FILE" : "[-s SOCKET | -c FILE] COMMAND");
			return 2;
		} else if (a[0] == '-') {
			fprintf(stderr, "bollard: unknown option '%s' (" EXPECTED ")\n", a);
			return 2;
		} else {
			fprintf(stderr, "bollard: unexpected word '%s' (" EXPECTED ")\n", a);
			return 2;
		}
	}
	if (!*file) {
		fprintf(stderr, "bollard: missing -c FILE: %s\n", form);
		return 2;
	}
	return 0;
}

/* cfg_load() with every error printed as FILE:LINE: message; NULL then. */
static struct config *load_or_report(const char *file)
{
	char *errs = NULL;
	struct config *cfg = cfg_load(file, &errs);
	if (!cfg) {
		fputs(errs ? errs : "configuration invalid\n", stderr);
		free(errs);
	}
	return cfg;
}

/*
 * Would a start open the access log? Checked without creating or writing
 * anything: an existing file must open for appending, an absent one be
 * creatable in its directory.
 */
static int log_file_check(const struct config *cfg, char *err, size_t errlen)
{
	char dir[4096];
	const char *path = cfg->log_path, *slash;
	int fd;

	if (cfg->log_target != LOG_TARGET_FILE)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == ENOENT) {
		slash = strrchr(path, '/');
		snprintf(dir, sizeof(dir), "%.*s", slash ? (int)MAX(slash - path, 1) : 1,
			 slash ? path : ".");
		if (access(dir, W_OK | X_OK) == 0)
			return 0;
	}
	snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
	return -1;
}

/*
 * Everything a start does before it binds a socket, in the order it does
 * it; `bollard check` runs this too (checking = true), so that check and
 * start cannot disagree (issue 10 item 2). A check only looks: the access
 * log and the key file (cfg_load() checked it) are neither opened for
 * writing nor created, and it stops before the persistence tables and the
 * state file, which cannot fail a start (a bad state file is a warning).
 * Returns 0, or -1 after logging why.
 */
static int prepare(struct config *cfg, bool checking)
{
	char err[512];

	if (sodium_init() < 0) {
		log_msg(LOG_ERR, "libsodium failed to initialise");
		return -1;
	}
	if ((checking ? log_file_check(cfg, err, sizeof(err)) : log_init(cfg, err, sizeof(err))) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return -1;
	}
	/* before a listener is bound or the state file read */
	if (!checking && instance_claim(cfg, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return -1;
	}
	/* cfg_load() checked an explicit key file already (seal_key_check);
	 * this loads it, or creates the default one (persist_secret_path) */
	if (!checking && persist_keys_init(cfg, NULL, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return -1;
	}
	for (int b = 0; b < cfg->nbackends; b++)
		if (cfg->backends[b]->balance == LB_HASH && lb_hash_build(cfg->backends[b]) < 0) {
			log_msg(LOG_ERR, "out of memory building the hash placement of %s",
				cfg->backends[b]->name);
			return -1;
		}
	if (checking)
		return 0;
	if (persist_init(cfg, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return -1;
	}
	if (cfg->state_file) {
		size_t restored = 0, dropped = 0;

		/* A bad state file costs sessions, not the start (issue 3 item 8). */
		if (state_load(cfg, cfg->state_file, &restored, &dropped, err, sizeof(err)) < 0)
			log_msg(LOG_WARN, "state file ignored, persistence tables start empty: %s", err);
		else if (restored || dropped)
			log_msg(LOG_INFO, "state file %s: %zu persistence entries restored, %zu dropped "
				"(backend, rule or server no longer configured)", cfg->state_file,
				restored, dropped);
	}
	return 0;
}

/* The one thing a check cannot do without starting: bind. Says what it
 * left out, so that "valid" is not read as "will start". */
static void print_not_checked(const struct config *cfg)
{
	const char *sep = "";

	printf("%s: not checked (only a start binds): ", cfg->file);
	for (int i = 0; i < cfg->nfrontends; i++)
		for (int k = 0; k < cfg->frontends[i]->nbinds; k++, sep = ", ")
			printf("%sbind %s", sep, cfg->frontends[i]->binds[k].text);
	if (cfg->has_stats)
		printf("%sstats-listen %s", sep, cfg->stats_listen.text), sep = ", ";
	if (cfg->admin_socket)
		printf("%sadmin-socket %s", sep, cfg->admin_socket);
	printf("\n");
	if (cfg->shared)
		printf("%s: not checked (only a start connects): shared-tables %s (while it is "
		       "unreachable the tables go on locally)\n", cfg->file, cfg->shared->url);
}

static int cmd_check(const char *file)
{
	struct config *cfg = load_or_report(file);
	int rc = 1;

	if (!cfg)
		return 1;
	cfg_hold(cfg);
	/* persist_check: what start would say of the keys (warnings, refusals) */
	if (prepare(cfg, true) == 0 && persist_check(cfg, stderr) == 0) {
		cfg_tls_check_expiry(cfg, stderr, (int64_t)time(NULL));
		printf("%s: configuration valid\n", file);
		print_not_checked(cfg);
		rc = 0;
	}
	cfg_release(cfg); /* with the hash placements prepare() built */
	return rc;
}

/* Many client connections need many descriptors: use what we may. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int cmd_run(const char *file)
{
	struct config *cfg = load_or_report(file);
	if (!cfg)
		return 1;
	cfg_hold(cfg); /* the control thread's reference (reload.c) */
	if (prepare(cfg, false) < 0) {
		cfg_release(cfg); /* with whatever prepare() built */
		return 1;
	}
	raise_nofile();
	G.cfg = cfg;
	G.start_time = time(NULL);

	/* Signals are taken by the control loop's signalfd: block them in
	 * every thread, which inherit the mask from here. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (workers_start(cfg) < 0)
		return 1;
	/* control_run() logs "started" once its own listeners are bound too */
	int rc = control_run(cfg);
	priv_at_exit(G.cfg);
	/* after a reload G.cfg is another generation than cfg; releasing the
	 * last reference frees it with its hash placements and tables */
	cfg_release(G.cfg);
	return rc;
}

int main(int argc, char **argv)
{
	const char *file;
	bool test = false;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return usage_error("missing -c FILE (" EXPECTED ")");
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-v") ||
	    !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		if (argc > 2) {
			fprintf(stderr, "bollard: unexpected word '%s' after %s\n", argv[2], argv[1]);
			return 2;
		}
		if (argv[1][1] == 'v' || argv[1][2] == 'v')
			printf("bollard %s\n", BOLLARD_VERSION);
		else
			usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "ctl"))
		return ctl_main(argc - 2, argv + 2);
	if (!strcmp(argv[1], "check")) {
		if ((rc = parse_run_args(argc, argv, 2, &file, &test)) != 0)
			return rc;
		return cmd_check(file);
	}
	if (argv[1][0] != '-') {
		fprintf(stderr, "bollard: unknown command '%s' (" EXPECTED ")\n", argv[1]);
		return 2;
	}
	if ((rc = parse_run_args(argc, argv, 1, &file, &test)) != 0)
		return rc;
	return test ? cmd_check(file) : cmd_run(file);
}
