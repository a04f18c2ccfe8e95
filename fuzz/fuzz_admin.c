/*
 * fuzz_admin.c - libFuzzer target for the runtime API's command parser and
 * commands (admin*.c), which take lines from the admin socket: anyone who
 * can reach it, and any script's typo. Each input is a few command lines,
 * run in order against a fresh configuration (a real file through
 * cfg_load(), tables from persist_init()), so that `add server`, `set
 * server`, `clear sessions` and `del server` meet each other's effects.
 * What must hold, besides "does not crash under ASan/UBSan" and "frees
 * what it allocates" (LeakSanitizer at exit):
 *   - every answer ends with the protocol's end marker, one empty line,
 *     unless the command parked a `wait drained` (an empty line gets just
 *     that empty line);
 *   - an error is one line that starts with "error: ";
 *   - no answer carries a control byte other than newline and tab, so an
 *     answer never drives the operator's terminal.
 * Runs under gcc via fuzz/replay.c over its corpus.
 */
#include "api.h"
#include "admin.h"
#include "cfg.h"
#include "global.h"
#include "lb_hash.h"
#include "persist.h"

#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* health checks are the control thread's (check.c, not linked here) */
void check_server_recovered(struct server *s);
void check_server_recovered(struct server *s) { (void)s; }
int check_server_add(struct server *s);
int check_server_add(struct server *s) { (void)s; return 0; }
void check_server_del(struct server *s);
void check_server_del(struct server *s) { (void)s; }

static const char *CONF =
	"global\n"
	"    threads 2\n"
	"    log off\n"
	"frontend fe\n"
	"    bind 127.0.0.1:18080\n"
	"    default-backend app\n"
	"backend app\n"
	"    persist cookie BOLLARD insert\n"
	"    persist learn JSESSIONID\n"
	"    server a1 127.0.0.1:9001\n"
	"    server a2 127.0.0.1:9002 weight 50\n"
	"backend api\n"
	"    balance hash header X-User\n"
	"    persist source\n"
	"    server b1 127.0.0.1:9101\n"
	"    server b2 127.0.0.1:9102 backup\n";

static char conf_path[96], dir[64];

/* nothing left in /tmp after a run */
static void remove_conf(void)
{
	unlink(conf_path);
	rmdir(dir);
}

static void write_conf(void)
{
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/bollard-fuzz-admin-XXXXXX");
	BUG_ON(!mkdtemp(dir));
	atexit(remove_conf);
	snprintf(conf_path, sizeof(conf_path), "%s/bollard.conf", dir);
	f = fopen(conf_path, "w");
	BUG_ON(!f);
	fputs(CONF, f);
	fclose(f);
}

static void check_answer(const struct admin_buf *out, size_t from, int r)
{
	const char *a = out->p + from;
	size_t n = out->len - from;

	for (size_t i = 0; i < n; i++)
		BUG_ON((unsigned char)a[i] < 0x20 && a[i] != '\n' && a[i] != '\t');
	if (r == ADMIN_WAIT)
		return;
	if (n == 1 && a[0] == '\n')
		return; /* the empty answer to an empty line */
	BUG_ON(n < 2 || a[n - 1] != '\n' || a[n - 2] != '\n');
	if (r < 0) {
		BUG_ON(n < 7 || memcmp(a, "error: ", 7));
		BUG_ON(memchr(a, '\n', n) != a + n - 2);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], line[8192];
	char *errs = NULL;
	struct admin_buf out;
	struct admin_wait wt;
	size_t off = 0;
	int lines = 0;

	if (size > 1 << 14)
		return 0;
	if (!conf_path[0])
		write_conf();
	G.cfg = cfg_load(conf_path, &errs);
	BUG_ON(!G.cfg);
	BUG_ON(persist_init(G.cfg, err, sizeof(err)) != 0);
	/* as main.c and reload.c do around a generation's life */
	for (int b = 0; b < G.cfg->nbackends; b++)
		if (G.cfg->backends[b]->balance == LB_HASH)
			BUG_ON(lb_hash_build(G.cfg->backends[b]) != 0);
	G.start_time = 1;
	admin_buf_init(&out);

	while (off < size && lines++ < 16) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t n = nl ? (size_t)(nl - (data + off)) : size - off;
		size_t k = MIN(n, sizeof(line) - 1);

		memcpy(line, data + off, k);
		line[k] = '\0';
		off += n + 1;
		size_t from = out.len;
		int r = admin_execute(line, &out);
		BUG_ON(r != 0 && r != -1 && r != ADMIN_WAIT);
		check_answer(&out, from, r);
		if (r == ADMIN_WAIT)
			BUG_ON(!admin_wait_take(&wt));
	}

	admin_buf_free(&out);
	for (int b = 0; b < G.cfg->nbackends; b++)
		lb_hash_free(G.cfg->backends[b]);
	persist_fini(G.cfg);
	cfg_free(G.cfg);
	G.cfg = NULL;
	free(errs);
	return 0;
}
