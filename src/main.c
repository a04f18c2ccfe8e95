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
#include "log.h"
#include "lb_hash.h"
#include "persist.h"
#include "reload.h"
#include "state.h"
#include "worker.h"

#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <unistd.h>

struct global_state G;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bollard -c FILE                 run in the foreground\n"
		"       bollard check -c FILE           validate FILE and print every error\n"
		"       bollard ctl [-s SOCKET | -c FILE] COMMAND ...\n"
		"                                       send one runtime-API command\n"
		"       bollard --version | --help\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop gracefully, SIGUSR1 reopens log files.\n"
		"Documentation: doc/config.md, doc/runtime-api.md.\n");
}

static const char *find_conf_arg(int argc, char **argv, int from)
{
	for (int i = from; i < argc; i++) {
		if (!strcmp(argv[i], "-c") && i + 1 < argc)
			return argv[i + 1];
		if (!strncmp(argv[i], "-c", 2) && argv[i][2])
			return argv[i] + 2;
	}
	return NULL;
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

static int cmd_check(const char *file)
{
	struct config *cfg = load_or_report(file);
	if (!cfg)
		return 1;
	if (persist_check(cfg, stderr) > 0) {
		cfg_free(cfg);
		return 1;
	}
	printf("%s: configuration valid\n", file);
	cfg_free(cfg);
	return 0;
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
	if (sodium_init() < 0) {
		log_msg(LOG_ERR, "libsodium failed to initialise");
		return 1;
	}
	char err[512];
	if (log_init(cfg, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return 1;
	}
	if (persist_keys_init(cfg, NULL, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return 1;
	}
	for (int b = 0; b < cfg->nbackends; b++)
		if (cfg->backends[b]->balance == LB_HASH && lb_hash_build(cfg->backends[b]) < 0) {
			log_msg(LOG_ERR, "out of memory building the hash placement of %s",
				cfg->backends[b]->name);
			return 1;
		}
	if (persist_init(cfg, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return 1;
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
	raise_nofile();
	cfg_hold(cfg); /* the control thread's reference (reload.c) */
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
	log_msg(LOG_INFO, "bollard %s started: %d thread%s, configuration %s", BOLLARD_VERSION,
		cfg->threads, cfg->threads > 1 ? "s" : "", file);
	int rc = control_run(cfg);
	/* after a reload G.cfg is another generation than cfg; releasing the
	 * last reference frees it with its hash placements and tables */
	cfg_release(G.cfg);
	return rc;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-v")) {
		printf("bollard %s\n", BOLLARD_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "ctl"))
		return ctl_main(argc - 2, argv + 2);
	if (!strcmp(argv[1], "check")) {
		const char *file = find_conf_arg(argc, argv, 2);
		if (!file) {
			fprintf(stderr, "bollard check: missing -c FILE\n");
			return 2;
		}
		return cmd_check(file);
	}
	const char *file = find_conf_arg(argc, argv, 1);
	if (!file || argv[1][0] != '-') {
		fprintf(stderr, "bollard: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	return cmd_run(file);
}
