/*
 * cfg_kw.h - what the configuration reader (cfg.c: tokenizer, sections,
 * errors, cross-checks) and the keyword table (cfg_kw.c: one entry and one
 * parse function per directive) share. Internal to the configuration
 * module: nothing outside cfg.c, cfg_kw.c and their unit test includes it.
 */
#ifndef BOLLARD_CFG_KW_H
#define BOLLARD_CFG_KW_H

#include "cfg.h"

/* Section kinds, as bits so that a keyword lists where it is allowed. */
#define CFG_S_GLOBAL   0x01u
#define CFG_S_DEFAULTS 0x02u
#define CFG_S_FRONTEND 0x04u
#define CFG_S_BACKEND  0x08u
#define CFG_S_LISTEN   0x10u
#define CFG_S_FE       (CFG_S_FRONTEND | CFG_S_LISTEN)
#define CFG_S_BE       (CFG_S_BACKEND | CFG_S_LISTEN)
#define CFG_S_PROXY    (CFG_S_DEFAULTS | CFG_S_FRONTEND | CFG_S_BACKEND | CFG_S_LISTEN)

/* A reference to a backend by name, resolved once the whole file is read:
 * of a route (its index), or of the default-backend. */
#define CFG_REF_DEFAULT (-1)
struct cfg_ref {
	struct frontend *fe;
	int route;                    /* index in fe->routes[], or CFG_REF_DEFAULT */
	char name[CFG_NAME_MAX];
	int line;
};

/* Where each bind was written, for the collision check. */
struct cfg_bindref {
	struct frontend *fe;
	int idx;                      /* in fe->binds[] */
	int line;
};

/* What a defaults section hands to the proxies that follow it. */
struct cfg_defaults {
	struct cfg_timeouts to;
	uint32_t retries;
	enum on_down on_down;
	enum cfg_mode mode;
	enum lb_kind balance;
	/* balance hash arguments (meaningful when balance == LB_HASH) */
	enum lb_hash_key hash_key;
	char hash_key_name[CFG_NAME_MAX];
	enum lb_hash_algo hash_algo;
	float hash_bound;
};

struct cfg_seg;
struct cfg_errent;
struct cfg_open;

struct cfg_parser {
	struct config *cfg;
	const char *file;             /* the configuration, as given */
	int line;                     /* number of the line being read, counted over every file */
	int nerrs;
	bool stop;                    /* too many errors or out of memory */
	char *err;                    /* at the end: "FILE:LINE: msg\n" ... (cfg_errors_sort) */
	struct cfg_errent *errv;      /* the errors as found (cfg_read.c) */
	int nerrv;
	/* the files read and where their lines are (cfg_read.c) */
	char **files;
	int nfiles;
	struct cfg_seg *segs;
	int nsegs;
	struct cfg_open *open;        /* the files being read, outermost first */
	int depth;

	unsigned sect;                /* S_* of the current section, 0 = none yet */
	bool skip;                    /* under a bad section header: ignore its lines */
	struct frontend *fe;          /* current frontend (frontend or listen) */
	struct backend *be;           /* current backend (backend or listen) */
	struct cfg_defaults def;

	struct cfg_ref *refs;
	int nrefs;
	struct cfg_bindref *binds;
	int nbinds;
	int stats_line;
	int admin_line;
	int bufsize_line;
	int mrl_line;
	int h2hl_line;        /* tune.h2.max-header-list-size, for its check against tune.bufsize */
	/* by backend index: a `server` line was written for it, good or bad,
	 * so that a refused one adds no "has no server" after its own error */
	bool *server_line;
	int nserver_line;
	struct cfg_tls_pending *tls;  /* the TLS options of bind lines, built at the end (cfg_tls.c) */
	int ntls;
};

/* Parses one directive; argv[0] is the keyword. Returns 0, or -1 after
 * reporting the error with cfg_err(). */
typedef int (*cfg_kw_fn)(struct cfg_parser *p, int argc, char **argv);

struct cfg_kw {
	const char *name;
	unsigned sections;            /* S_* where the keyword is allowed */
	cfg_kw_fn parse;
	int min_args;                 /* arguments after the keyword */
	int max_args;                 /* -1 = no limit */
	bool nys;                     /* reserved: "not yet supported" */
	const char *usage;            /* for argument-count messages */
};

/* THE keyword table (cfg_kw.c) and its length. */
extern const struct cfg_kw cfg_keywords[];
extern const size_t cfg_nkeywords;

/* cfg_tls.c: the options after `tls` on a bind line, argv[start..argc):
 * 0 and *out the line's TLS bind, or -1 after reporting. */
int cfg_tls_parse(struct cfg_parser *p, int argc, char **argv, int start, struct tls_bind **out);
/* Builds every TLS bind's contexts once the whole file is read (errors at
 * the bind's line), and frees what the parser kept. */
void cfg_tls_build(struct cfg_parser *p);
void cfg_tls_free(struct config *cfg);
/* The TLS options of a server line, as written (NULL: not given). */
struct cfg_srv_tls {
	bool tls;
	const char *verify, *ca, *sni, *alpn;
};
/* cfg_tls.c: checks them and builds s->tls (NULL without `tls`): 0, or -1
 * after reporting. */
int cfg_tls_server(struct cfg_parser *p, struct server *s, const struct cfg_srv_tls *o);
int cfg_kw_tls_tickets(struct cfg_parser *p, int argc, char **argv);
int cfg_kw_redirect(struct cfg_parser *p, int argc, char **argv);
int cfg_kw_hsts(struct cfg_parser *p, int argc, char **argv);

/* Records "FILE:LINE: message" and counts the error; never fails (past
 * CFG_MAX_ERRORS or out of memory it sets p->stop). */
void cfg_err(struct cfg_parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The reader (cfg_read.c): reads and parses every line of path, handing
 * section headers and directives to cfg.c; false when path could not be
 * opened (reported). */
bool cfg_read_file(struct cfg_parser *p, const char *path);
/* Joins the recorded errors into p->err in reading order, and frees what
 * the reader kept (cfg_read.c). */
void cfg_errors_sort(struct cfg_parser *p);
/* "FILE:LINE" of line number id (p->line, the model's `line` fields). */
const char *cfg_where(const struct cfg_parser *p, int id, char *buf, size_t n);
/* How an error at line number `at` names line number ref: "line 12" in
 * the same file, "FILE:12" in another. */
const char *cfg_ref(const struct cfg_parser *p, int at, int ref, char *buf, size_t n);
/* One line at column 0, one indented line, as words (cfg.c). */
void cfg_section_header(struct cfg_parser *p, int argc, char **argv);
void cfg_directive(struct cfg_parser *p, int argc, char **argv);

/* calloc/strdup that report "out of memory" and stop the parse on failure. */
void *cfg_calloc(struct cfg_parser *p, size_t n, size_t size);
char *cfg_strdup(struct cfg_parser *p, const char *s);

/* Returns base reallocated for n + 1 elements of size sz, the last zeroed;
 * NULL (base untouched) after reporting out of memory. */
void *cfg_grow(struct cfg_parser *p, void *base, int n, size_t sz);

/* Appends a zeroed element to the array arr of n elements; evaluates to a
 * pointer to it, or NULL on allocation failure (arr unchanged). */
#define CFG_PUSH(p, arr, n) ({                                                \
	__typeof__(arr) nb_ = cfg_grow((p), (arr), (n), sizeof(*(arr)));      \
	nb_ ? ((arr) = nb_, &(arr)[(n)++]) : NULL;                            \
})

/* The nearest of names[0..n) within Damerau-Levenshtein distance 2, or NULL. */
const char *cfg_suggest(const char *word, const char *const *names, size_t n);
/* Index of word in names[0..n), or -1. */
int cfg_choice(const char *word, const char *const *names, size_t n);
/* Reports "WHAT 'word'; did you mean 'x'?" (or the list of choices); returns -1. */
int cfg_err_choice(struct cfg_parser *p, const char *what, const char *word,
		   const char *const *names, size_t n);

/* Migration hints (cfg_hint.c): where a foreign word is met. */
enum cfg_hint_at {
	CFG_HINT_SECTION,     /* a section header that is none */
	CFG_HINT_KEYWORD,     /* an unknown directive (with its first argument) */
	CFG_HINT_SERVER_OPT,  /* an unknown option of a server line */
	CFG_HINT_SERVER_ARG,  /* a server line whose NAME is an address */
	CFG_HINT_BALANCE,     /* an unknown balance algorithm */
	CFG_HINT_TIMEOUT,     /* an unknown timeout kind */
};

/* What an HAProxy or NGINX operator writes, and what bollard says. */
struct cfg_hint {
	enum cfg_hint_at at;
	const char *from;     /* "HAProxy" or "NGINX" */
	const char *word;     /* as met; "weight=N", "hdr(NAME)": any value */
	const char *use;      /* bollard's spelling; "" = nothing needed */
	const char *note;     /* or NULL */
};

/* THE migration table (cfg_hint.c) and its length. */
extern const struct cfg_hint cfg_hints[];
extern const size_t cfg_nhints;
/* The entry for word (and the word after it, arg, may be NULL) met at at, or NULL. */
const struct cfg_hint *cfg_hint_find(enum cfg_hint_at at, const char *word, const char *arg);
/* The word as written in a file ("server ... check", "balance source"). */
void cfg_hint_shown(const struct cfg_hint *h, char *buf, size_t n);
/* "; HAProxy's 'x' is 'y' in bollard (note)" to append to an error, or ""; returns buf. */
const char *cfg_hint(enum cfg_hint_at at, const char *word, const char *arg, char *buf, size_t n);

/* Strict decimal (digits only); 0 or -1. */
int cfg_parse_u64(const char *s, uint64_t *out);
/* ms in the largest unit that divides it exactly ("90m", "1500ms"). */
void cfg_duration_format(uint64_t ms, char *buf, size_t n);
/* Like cfg_parse_addr() but returns NULL or why the address is bad. */
const char *cfg_addr_parse(const char *s, struct cfg_addr *out);
bool cfg_addr_is_any(const struct cfg_addr *a);
/* Section/server names: 1..CFG_NAME_MAX-1 of [A-Za-z0-9_.-]; 0 or -1 (reported). */
int cfg_check_name(struct cfg_parser *p, const char *what, const char *s);

#endif
