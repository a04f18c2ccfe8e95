/*
 * cfg_read.c - reading a configuration file: lines, words, and the errors
 * with their FILE:LINE.
 *
 * The file is read line by line (at most CFG_LINE_MAX bytes a line, only
 * regular files), each line split into words by the tokenizer, and handed
 * to cfg.c: a line at column 0 is a section header, an indented one a
 * directive. Errors never stop the pass: each is recorded as "FILE:LINE:
 * message" (up to CFG_MAX_ERRORS) and, once the pass and its cross-checks
 * are done, sorted into file order, so that `bollard check` shows every
 * mistake at once, top to bottom.
 */
#include "api.h"
#include "cfg.h"
#include "cfg_kw.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_MAX_ERRORS 50
#define CFG_MAX_WORDS  64
/* Longest line read, its end excluded: far beyond any real directive, and a
 * bound on what a wrong file (a binary, /dev/zero behind a symlink) costs. */
#define CFG_LINE_MAX 65536

/* ---- errors ------------------------------------------------------------- */

static void err_append(struct cfg_parser *p, const char *s, size_t n)
{
	if (p->errlen + n + 1 > p->errcap) {
		size_t cap = p->errcap ? p->errcap * 2 : 1024;
		while (cap < p->errlen + n + 1)
			cap *= 2;
		char *nb = realloc(p->err, cap);
		if (!nb) {
			p->stop = true;
			return;
		}
		p->err = nb;
		p->errcap = cap;
	}
	memcpy(p->err + p->errlen, s, n);
	p->errlen += n;
	p->err[p->errlen] = '\0';
}

void cfg_err(struct cfg_parser *p, int line, const char *fmt, ...)
{
	char msg[512];
	char head[320];
	va_list ap;

	if (p->nerrs >= CFG_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int n = snprintf(head, sizeof(head), "%s:%d: ", p->file, line);
	err_append(p, head, (size_t)MIN(n, (int)sizeof(head) - 1));
	err_append(p, msg, strlen(msg));
	err_append(p, "\n", 1);
	if (++p->nerrs == CFG_MAX_ERRORS) {
		n = snprintf(head, sizeof(head), "%s:%d: too many errors, stopping\n",
			     p->file, line);
		err_append(p, head, (size_t)MIN(n, (int)sizeof(head) - 1));
		p->stop = true;
	}
}

/* One reported line, for sorting. */
struct cfg_errline {
	const char *text;
	size_t len;
	long line;
	int order;
};

static int errline_cmp(const void *a, const void *b)
{
	const struct cfg_errline *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->order - y->order;
}

/* Errors found after the pass (unknown backends, bind conflicts) are
 * reported in file order with the others, so that the list reads top to
 * bottom. Stable: equal lines keep the order they were found in. Leaves
 * the list as it is when memory is short. */
void cfg_errors_sort(struct cfg_parser *p)
{
	size_t plen = strlen(p->file) + 1; /* "FILE:" */
	struct cfg_errline *v;
	char *out;
	int n = 0;

	if (!p->err || p->nerrs < 2)
		return;
	for (const char *c = p->err; *c; c++)
		n += *c == '\n';
	v = calloc((size_t)n, sizeof(*v));
	out = malloc(p->errlen + 1);
	if (!v || !out)
		goto out;
	n = 0;
	for (const char *c = p->err; *c; ) {
		const char *nl = strchr(c, '\n');
		if (!nl) /* a line cut short by out of memory */
			goto out;
		v[n].text = c;
		v[n].len = (size_t)(nl - c) + 1;
		v[n].line = strtol(c + plen, NULL, 10);
		v[n].order = n;
		n++;
		c = nl + 1;
	}
	qsort(v, (size_t)n, sizeof(*v), errline_cmp);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		memcpy(out + off, v[i].text, v[i].len);
		off += v[i].len;
	}
	out[off] = '\0';
	free(p->err);
	p->err = out;
	p->errcap = p->errlen + 1;
	out = NULL;
out:
	free(v);
	free(out);
}

/* ---- tokenizer ---------------------------------------------------------- */

/*
 * Splits line (modified in place) into words. Blanks separate words, `#`
 * outside quotes ends the line, double quotes group (and may be glued to
 * unquoted text: a"b c" is one word). Returns the number of words, or -1
 * with *why set.
 */
static int tokenize(char *line, char **argv, int max, const char **why)
{
	char *r = line, *w = line;
	int argc = 0;

	for (;;) {
		while (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n')
			r++;
		if (*r == '\0' || *r == '#')
			return argc;
		if (argc == max) {
			*why = "too many words on one line";
			return -1;
		}
		argv[argc++] = w;
		bool quoted = false;
		char c;
		while ((c = *r) != '\0') {
			if (quoted) {
				if (c == '"') {
					quoted = false;
				} else if (c == '\\') {
					if (r[1] != '"' && r[1] != '\\') {
						*why = "invalid escape in quoted string (only \\\" and \\\\)";
						return -1;
					}
					*w++ = *++r;
				} else {
					*w++ = c;
				}
				r++;
				continue;
			}
			if (c == '"') {
				quoted = true;
				r++;
				continue;
			}
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '#')
				break;
			*w++ = c;
			r++;
		}
		if (quoted) {
			*why = "unterminated quoted string";
			return -1;
		}
		/* w <= r: terminating the word may overwrite the separator,
		 * so look at it first. */
		c = *r;
		*w++ = '\0';
		if (c == '\0' || c == '#')
			return argc;
		r++;
	}
}

/* ---- files ------------------------------------------------------------- */

/* What a file that is not a regular one is, for the message. */
static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a regular file";
}

/*
 * Opens path for reading, or reports why not and returns NULL. Only a
 * regular file is read: a configuration is read again at every reload, and
 * a FIFO or a device would block (a FIFO waits for a writer: hence
 * O_NONBLOCK, which makes open() itself return) or never end (/dev/zero).
 */
static FILE *open_conf(struct cfg_parser *p, const char *path)
{
	struct stat st;
	FILE *f;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		cfg_err(p, p->line, "cannot open configuration: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		cfg_err(p, p->line, "cannot open configuration: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		cfg_err(p, p->line, "cannot read configuration: %s, not a regular file",
			file_kind(st.st_mode));
		close(fd);
		return NULL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		cfg_err(p, p->line, "cannot open configuration: %s", strerror(errno));
		close(fd);
	}
	return f;
}

/*
 * Reads one line of f into buf (room for CFG_LINE_MAX bytes and a NUL),
 * without its LF. Returns its length, or -1 at the end of the file. A
 * longer line is read to its end and dropped past the bound (*over set):
 * memory stays bounded whatever the file holds. *nul is set when the line
 * held a NUL byte.
 */
static long read_line(FILE *f, char *buf, bool *over, bool *nul)
{
	size_t n = 0;
	bool any = false;
	int c;

	*over = *nul = false;
	while ((c = getc_unlocked(f)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (c == '\0')
			*nul = true;
		if (n < CFG_LINE_MAX)
			buf[n++] = (char)c;
		else
			*over = true;
	}
	if (!any)
		return -1;
	buf[n] = '\0';
	return (long)n;
}

/* Reads and parses every line of path; false when it could not be opened. */
bool cfg_read_file(struct cfg_parser *p, const char *path)
{
	char *line, *argv[CFG_MAX_WORDS];
	bool over, nul;
	FILE *f = open_conf(p, path);

	if (!f)
		return false;
	line = malloc(CFG_LINE_MAX + 1);
	if (!line) {
		cfg_err(p, p->line, "out of memory");
		p->stop = true;
	}
	while (line && !p->stop && read_line(f, line, &over, &nul) >= 0) {
		const char *why = NULL;
		int argc;

		p->line++;
		if (over) {
			cfg_err(p, p->line, "line longer than %d bytes", CFG_LINE_MAX);
			continue;
		}
		if (nul) {
			cfg_err(p, p->line, "NUL byte in line");
			continue;
		}
		bool indented = line[0] == ' ' || line[0] == '\t';
		argc = tokenize(line, argv, CFG_MAX_WORDS, &why);
		if (argc < 0) {
			cfg_err(p, p->line, "%s", why);
			continue;
		}
		if (argc == 0)
			continue;
		if (indented)
			cfg_directive(p, argc, argv);
		else
			cfg_section_header(p, argc, argv);
	}
	if (ferror(f))
		cfg_err(p, p->line, "read error: %s", strerror(errno));
	fclose(f);
	free(line);
	return true;
}
