/*
 * fuzz_state.c - libFuzzer target for the state-file loader (state.c and
 * stick.c's block reader). The state file is read at start-up from disk,
 * where a crash, a full disk or an operator's copy can leave anything, so
 * the loader must take any bytes. Besides "does not crash under
 * ASan/UBSan", it checks what the proxy relies on:
 *   - a refused file (-1) leaves every table empty: a half-read file must
 *     route no one;
 *   - an accepted file restores no more entries than the tables can hold,
 *     and saving what was restored, then loading that, restores the same
 *     number of entries (the loader and the writer agree).
 * The configuration is parsed once, from a temporary file; each input is
 * written to a temporary file and loaded into it. The same function runs
 * under gcc via fuzz/replay.c over the committed corpus.
 */
#include "api.h"
#include "cfg.h"
#include "persist.h"
#include "state.h"
#include "stick.h"

#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *CONF =
	"global\n"
	"    threads 1\n"
	"    log off\n"
	"frontend fe\n"
	"    bind 127.0.0.1:18080\n"
	"    default-backend app\n"
	"backend app\n"
	"    persist source\n"
	"    persist learn JSESSIONID size 64\n"
	"    server a1 127.0.0.1:9001\n"
	"    server a2 127.0.0.1:9002\n"
	"backend api\n"
	"    persist header X-User\n"
	"    server b1 127.0.0.1:9101\n";

static struct config *cfg;
static char dir[64], in_path[96], out_path[96];

/* nothing left in /tmp after a run */
static void remove_dir(void)
{
	unlink(in_path);
	unlink(out_path);
	rmdir(dir);
}

static void setup(void)
{
	char cpath[96], err[256] = "";
	char *errs = NULL;
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/bollard-fuzz-state-XXXXXX");
	BUG_ON(!mkdtemp(dir));
	atexit(remove_dir);
	snprintf(cpath, sizeof(cpath), "%s/bollard.conf", dir);
	snprintf(in_path, sizeof(in_path), "%s/in.state", dir);
	snprintf(out_path, sizeof(out_path), "%s/out.state", dir);
	f = fopen(cpath, "w");
	BUG_ON(!f);
	fputs(CONF, f);
	fclose(f);
	cfg = cfg_load(cpath, &errs);
	if (!cfg) {
		fprintf(stderr, "fuzz_state: %s\n", errs ? errs : "config refused");
		abort();
	}
	unlink(cpath);
	BUG_ON(persist_init(cfg, err, sizeof(err)) != 0);
}

/* Every table of cfg: the number of entries, and clear them when asked. */
static size_t tables(bool clear)
{
	size_t n = 0;

	for (int b = 0; b < cfg->nbackends; b++) {
		const struct persist_rules *rs = cfg->backends[b]->persist;
		for (int i = 0; rs && i < rs->n; i++) {
			if (!rs->r[i].table)
				continue;
			n += stick_count(rs->r[i].table);
			if (clear)
				stick_clear(rs->r[i].table);
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	size_t restored = 0, dropped = 0, again = 0;
	FILE *f;

	if (!cfg)
		setup();
	f = fopen(in_path, "wb");
	BUG_ON(!f);
	BUG_ON(size && fwrite(data, 1, size, f) != size);
	fclose(f);

	err[0] = '\0';
	if (state_load(cfg, in_path, &restored, &dropped, err, sizeof(err)) < 0) {
		BUG_ON(!err[0]);          /* a refusal says why */
		BUG_ON(tables(false) != 0); /* and leaves nothing behind */
	} else {
		size_t n = tables(false);
		BUG_ON(n > restored);       /* duplicates may merge, never multiply */
		BUG_ON(state_save(cfg, out_path, err, sizeof(err)) != 0);
		tables(true);
		BUG_ON(state_load(cfg, out_path, &again, NULL, err, sizeof(err)) != 0);
		BUG_ON(again != n);
		BUG_ON(tables(false) != n);
	}
	tables(true);
	unlink(in_path);
	unlink(out_path);
	return 0;
}
