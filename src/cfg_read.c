/*
 * cfg_read.c - reading a configuration: its files, lines and words, the
 * environment variables in its values, and the errors with their
 * FILE:LINE.
 *
 * A file is read line by line (at most CFG_LINE_MAX bytes a line, only
 * regular files), each line split into words by the tokenizer, its values
 * expanded (${VAR}, ${VAR:-default}), and handed to cfg.c: a line at column
 * 0 is a section header, an indented one a directive. `include PATTERN`
 * (at column 0 or indented) reads the files it names in its place, as if
 * their lines were written there; a file that is already being read is an
 * include loop, refused.
 *
 * Lines are numbered by a single counter over everything read, in reading
 * order (p->line, the `line` fields of the model): with no include it is
 * the line number of the file. A table of segments maps a number back to
 * its file and line there, for messages. Errors never stop the pass: each
 * is recorded as "FILE:LINE: message" (up to CFG_MAX_ERRORS) and, once the
 * pass and its cross-checks are done, sorted into reading order, so that
 * `bollard check` shows every mistake at once, top to bottom.
 */
#include "api.h"
#include "cfg.h"
#include "cfg_kw.h"

#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_MAX_ERRORS 50
#define CFG_MAX_WORDS  64
/* Longest line read, its end excluded: far beyond any real directive, and a
 * bound on what a wrong file (a binary, /dev/zero behind a symlink) costs. */
#define CFG_LINE_MAX 65536
/* Nested includes: deeper is a mistake, not a layout. */
#define CFG_MAX_DEPTH 16

/* From line number id on, the lines are those of files[file] from line on. */
struct cfg_seg {
	int id;
	int file;
	int line;
};

/* One recorded error: where it is in reading order, and its text. */
struct cfg_errent {
	int id;
	int order;
	char *text;   /* "FILE:LINE: message\n" */
};

/* A file being read, for include loops. */
struct cfg_open {
	dev_t dev;
	ino_t ino;
	int file;
	int id;       /* the include line that opened it */
};

/* ---- where a line is ---------------------------------------------------- */

/* The file and line of line number id; line 0 of the first file for 0. */
static void locate(const struct cfg_parser *p, int id, const char **file, int *line)
{
	*file = p->nfiles ? p->files[0] : p->file;
	*line = 0;
	for (int i = p->nsegs - 1; i >= 0; i--)
		if (p->segs[i].id <= id) {
			*file = p->files[p->segs[i].file];
			*line = p->segs[i].line + (id - p->segs[i].id);
			return;
		}
}

const char *cfg_where(const struct cfg_parser *p, int id, char *buf, size_t n)
{
	const char *file;
	int line;

	locate(p, id, &file, &line);
	snprintf(buf, n, "%s:%d", file, line);
	return buf;
}

const char *cfg_ref(const struct cfg_parser *p, int at, int ref, char *buf, size_t n)
{
	const char *fa, *fr;
	int la, lr;

	locate(p, at, &fa, &la);
	locate(p, ref, &fr, &lr);
	if (fa == fr)
		snprintf(buf, n, "line %d", lr);
	else
		snprintf(buf, n, "%s:%d", fr, lr);
	return buf;
}

/* Lines from the next one on are files[file]'s from line on. */
static void seg_push(struct cfg_parser *p, int file, int line)
{
	struct cfg_seg *s = CFG_PUSH(p, p->segs, p->nsegs);

	if (s)
		*s = (struct cfg_seg){ .id = p->line + 1, .file = file, .line = line };
}

/* ---- errors ------------------------------------------------------------- */

/* Records one error. Not with CFG_PUSH: out of memory there reports an
 * error, which would come back here. */
static void err_add(struct cfg_parser *p, int id, const char *text)
{
	struct cfg_errent *v = realloc(p->errv, (size_t)(p->nerrv + 1) * sizeof(*v));
	char *t = v ? strdup(text) : NULL;

	if (v)
		p->errv = v;
	if (!t) {
		p->stop = true;
		return;
	}
	v[p->nerrv] = (struct cfg_errent){ .id = id, .order = p->nerrv, .text = t };
	p->nerrv++;
}

void cfg_err(struct cfg_parser *p, int line, const char *fmt, ...)
{
	char msg[1024], where[320], text[1400];
	va_list ap;

	if (p->nerrs >= CFG_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_where(p, line, where, sizeof(where));
	snprintf(text, sizeof(text), "%s: %s\n", where, msg);
	err_add(p, line, text);
	if (++p->nerrs == CFG_MAX_ERRORS) {
		snprintf(text, sizeof(text), "%s: too many errors, stopping\n", where);
		err_add(p, line, text);
		p->stop = true;
	}
}

static int errent_cmp(const void *a, const void *b)
{
	const struct cfg_errent *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->order - y->order;
}

/*
 * Joins the recorded errors into p->err in reading order (errors found
 * after the pass, such as unknown backends and bind conflicts, take their
 * place among the others; equal lines keep the order they were found in),
 * and frees what the reader kept: errors, file names, segments. p->err
 * stays NULL when there was no error, or when memory ran out (cfg_load()
 * then says "out of memory").
 */
void cfg_errors_sort(struct cfg_parser *p)
{
	size_t len = 0, off = 0;

	if (p->nerrv > 1)
		qsort(p->errv, (size_t)p->nerrv, sizeof(*p->errv), errent_cmp);
	for (int i = 0; i < p->nerrv; i++)
		len += strlen(p->errv[i].text);
	free(p->err);
	p->err = p->nerrv ? malloc(len + 1) : NULL;
	for (int i = 0; i < p->nerrv; i++) {
		size_t l = strlen(p->errv[i].text);

		if (p->err)
			memcpy(p->err + off, p->errv[i].text, l);
		off += l;
		free(p->errv[i].text);
	}
	if (p->err)
		p->err[len] = '\0';
	free(p->errv);
	p->errv = NULL;
	p->nerrv = 0;
	for (int i = 0; i < p->nfiles; i++)
		free(p->files[i]);
	free(p->files);
	free(p->segs);
	p->files = NULL;
	p->segs = NULL;
	p->nfiles = p->nsegs = 0;
}

/* ---- words -------------------------------------------------------------- */

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

/*
 * Environment variables in a value: ${NAME} is NAME's value, ${NAME:-TEXT}
 * its value or TEXT when it is unset or empty, $${ a literal ${. NAME is
 * letters, digits and '_', not starting with a digit. A word is expanded
 * after the line is split, so a value never becomes several words, and a
 * keyword is never expanded (only values are). Words are written to
 * out[0..CFG_LINE_MAX]. Returns 0, or -1 after reporting.
 */
static int expand(struct cfg_parser *p, int argc, char **argv, char *out)
{
	size_t off = 0;

	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];

		if (!strchr(w, '$'))
			continue;
		char *start = out + off;

		for (const char *c = w; *c; ) {
			const char *val = c, *end;
			size_t n = 1;

			if (c[0] == '$' && c[1] == '$' && c[2] == '{') {
				val = c + 1;      /* $${ is a literal ${ */
				n = 2;
				c += 3;
			} else if (c[0] == '$' && c[1] == '{') {
				const char *name = c + 2, *dflt = NULL;
				size_t nl = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
						   "0123456789_");
				char var[CFG_NAME_MAX];

				end = strchr(name, '}');
				if (!end) {
					cfg_err(p, p->line, "unterminated '${' in '%s' (write ${NAME} or "
						"${NAME:-default})", w);
					return -1;
				}
				if (name[nl] == ':' && name[nl + 1] == '-')
					dflt = name + nl + 2;
				if (nl == 0 || nl >= sizeof(var) || (name[0] >= '0' && name[0] <= '9') ||
				    (!dflt && name + nl != end)) {
					cfg_err(p, p->line, "invalid variable '%.*s' in '%s' (${NAME} or "
						"${NAME:-default}; NAME is letters, digits and '_')",
						(int)(end - c + 1), c, w);
					return -1;
				}
				memcpy(var, name, nl);
				var[nl] = '\0';
				val = getenv(var);
				if (dflt && (!val || !*val)) {
					val = dflt;
					n = (size_t)(end - dflt);
				} else if (!val) {
					cfg_err(p, p->line, "environment variable '%s' is not set (write "
						"${%s:-default} to give a default)", var, var);
					return -1;
				} else {
					n = strlen(val);
				}
				c = end + 1;
			} else {
				c++;
			}
			if (off + n >= CFG_LINE_MAX) {
				cfg_err(p, p->line, "line longer than %d bytes once its variables are "
					"expanded", CFG_LINE_MAX);
				return -1;
			}
			memcpy(out + off, val, n);
			off += n;
		}
		out[off++] = '\0';
		argv[i] = start;
	}
	return 0;
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
 * Opens path for reading, or reports why not (at line number at, as what:
 * "configuration" or "included file 'x'") and returns NULL. Only a
 * regular file is read: a configuration is read again at every reload,
 * and a FIFO or a device would block (a FIFO waits for a writer: hence
 * O_NONBLOCK, which makes open() itself return) or never end (/dev/zero).
 */
static FILE *open_conf(struct cfg_parser *p, int at, const char *path, const char *what,
			struct stat *st)
{
	FILE *f;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		cfg_err(p, at, "cannot open %s: %s", what, strerror(errno));
		return NULL;
	}
	if (fstat(fd, st) < 0) {
		cfg_err(p, at, "cannot open %s: %s", what, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st->st_mode)) {
		cfg_err(p, at, "cannot read %s: %s, not a regular file", what,
			file_kind(st->st_mode));
		close(fd);
		return NULL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		cfg_err(p, at, "cannot open %s: %s", what, strerror(errno));
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

static bool read_one(struct cfg_parser *p, int at, const char *path, const char *what);

/* The path of an include pattern: as written when absolute, else relative
 * to the directory of the file that includes it (not to the directory
 * bollard runs in, so that a tree of files moves as a whole). */
static void include_path(const char *from, const char *pat, char *out, size_t n)
{
	const char *slash = strrchr(from, '/');

	if (pat[0] == '/' || !slash)
		snprintf(out, n, "%s", pat);
	else
		snprintf(out, n, "%.*s/%s", (int)(slash - from), from, pat);
}

/* What glob() could not read, for the message: its callback takes no
 * argument of ours, hence a thread-local (configurations are read on the
 * main thread at start and on the control thread at reload). */
static __thread char glob_fail[512];

static int glob_error(const char *path, int err)
{
	snprintf(glob_fail, sizeof(glob_fail), "%s: %s", path, strerror(err));
	return 1;   /* stop: a directory that cannot be read is an error */
}

/*
 * include PATTERN...: each file of each pattern, in the order written; a
 * pattern with a wildcard (*, ?, [) names its matches in sorted order, and
 * may match nothing (an empty conf.d/ is a valid layout); a plain path must
 * exist, and so must the directories of a pattern (a misspelt directory
 * would otherwise silently include nothing).
 */
static void include(struct cfg_parser *p, int argc, char **argv, const char *from)
{
	char path[4096], what[4200];
	int at = p->line; /* the include line: reading a file moves p->line on */

	if (argc < 2) {
		cfg_err(p, p->line, "missing arguments to 'include' (usage: include FILE|PATTERN...)");
		return;
	}
	for (int i = 1; i < argc && !p->stop; i++) {
		include_path(from, argv[i], path, sizeof(path));
		if (!strpbrk(argv[i], "*?[")) {
			snprintf(what, sizeof(what), "included file '%s'", path);
			read_one(p, at, path, what);
			continue;
		}
		glob_t g;
		int rc;

		snprintf(glob_fail, sizeof(glob_fail), "cannot read the directory");
		rc = glob(path, GLOB_ERR, glob_error, &g);
		if (rc != 0 && rc != GLOB_NOMATCH)
			cfg_err(p, at, "include %s: %s", path, rc == GLOB_NOSPACE ? "out of memory" :
				glob_fail);
		for (size_t k = 0; rc == 0 && k < g.gl_pathc && !p->stop; k++) {
			snprintf(what, sizeof(what), "included file '%s'", g.gl_pathv[k]);
			read_one(p, at, g.gl_pathv[k], what);
		}
		globfree(&g);
	}
}

/* Reads and parses every line of path, with its includes; false when it
 * could not be opened (reported at line number at: the include line, 0 for
 * the configuration itself). */
static bool read_one(struct cfg_parser *p, int at, const char *path, const char *what)
{
	char *line, *xbuf, *argv[CFG_MAX_WORDS], where[320];
	bool over, nul;
	struct stat st;
	int lineno = 0, file;
	FILE *f;

	if (p->depth >= CFG_MAX_DEPTH) {
		cfg_err(p, at, "includes nested deeper than %d", CFG_MAX_DEPTH);
		return false;
	}
	if (!(f = open_conf(p, at, path, what, &st)))
		return false;
	for (int i = 0; i < p->depth; i++)
		if (p->open[i].dev == st.st_dev && p->open[i].ino == st.st_ino) {
			cfg_err(p, at, "include loop: %s is already being read (included at %s)", path,
				i ? cfg_where(p, p->open[i].id, where, sizeof(where)) : "the top");
			fclose(f);
			return true;
		}
	char *name = cfg_strdup(p, path), **slot = name ? CFG_PUSH(p, p->files, p->nfiles) : NULL;
	struct cfg_open *o = slot ? CFG_PUSH(p, p->open, p->depth) : NULL;

	if (!o) {
		if (!slot)
			free(name);
		else
			*slot = name;
		fclose(f);
		return true;
	}
	*slot = name;
	file = p->nfiles - 1;
	*o = (struct cfg_open){ .dev = st.st_dev, .ino = st.st_ino, .file = file, .id = at };
	seg_push(p, file, 1);
	line = malloc(CFG_LINE_MAX + 1);
	xbuf = malloc(CFG_LINE_MAX + 1);
	if (!line || !xbuf) {
		cfg_err(p, p->line, "out of memory");
		p->stop = true;
	}
	while (line && xbuf && !p->stop && read_line(f, line, &over, &nul) >= 0) {
		const char *why = NULL;
		int argc;

		p->line++;
		lineno++;
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
		if (argc == 0 || expand(p, argc, argv, xbuf) < 0)
			continue;
		if (strcmp(argv[0], "include") == 0) {
			include(p, argc, argv, p->files[file]);
			seg_push(p, file, lineno + 1);   /* back in this file */
		} else if (indented) {
			cfg_directive(p, argc, argv);
		} else {
			cfg_section_header(p, argc, argv);
		}
	}
	if (ferror(f))
		cfg_err(p, p->line, "read error: %s", strerror(errno));
	fclose(f);
	free(line);
	free(xbuf);
	p->depth--;
	return true;
}

bool cfg_read_file(struct cfg_parser *p, const char *path)
{
	return read_one(p, p->line, path, "configuration");
}
