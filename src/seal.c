/*
 * seal.c - the cookie key file.
 *
 * Several bollard instances in front of the same servers must accept each
 * other's cookies, so the key lives in a file the operator can copy; a
 * single instance just lets us generate it. Whoever reads the key can forge
 * a cookie routing to any server, so the file must be private: we create it
 * 0600, complete, under a temporary name and link() it into place, which
 * fails if the file appeared meanwhile (another instance starting at the
 * same time: the loser of the race reads the winner's key, never a file
 * still being written); and we refuse to use a file that group or others
 * may read or write, like ssh does with private keys, rather than silently
 * trusting it.
 *
 * Keys are read on the main thread (at start and at each reload) into a
 * new key set; the workers read a set only through the configuration
 * generation that holds it (persist.c), and a set never changes once
 * loaded, so a reload needs no lock.
 */
#include "api.h"
#include "seal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#define SEAL_FILE_MAX (64 * 1024)

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse the text of a key file into keys[]; returns the count or -1. */
static int parse_keys(const char *path, const char *text, size_t len,
		      uint8_t keys[][SEAL_KEY_LEN], char *err, size_t errlen)
{
	size_t pos = 0;
	int line = 0, n = 0;

	while (pos < len) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - s) : len - pos;
		size_t i;

		pos += l + (nl ? 1 : 0);
		line++;
		/* tolerate CRLF files and surrounding blanks */
		while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
			l--;
		while (l > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			l--;
		}
		if (l == 0 || *s == '#')
			continue;
		if (l != 2 * SEAL_KEY_LEN)
			return fail(err, errlen, "%s:%d: a key is %d hex digits, this line has %zu characters",
				    path, line, 2 * SEAL_KEY_LEN, l);
		if (n == SEAL_MAX_KEYS)
			return fail(err, errlen, "%s:%d: too many keys (at most %d)",
				    path, line, SEAL_MAX_KEYS);
		for (i = 0; i < SEAL_KEY_LEN; i++) {
			int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return fail(err, errlen, "%s:%d: a key is %d hex digits (0-9, a-f)",
					    path, line, 2 * SEAL_KEY_LEN);
			keys[n][i] = (uint8_t)(hi << 4 | lo);
		}
		n++;
	}
	if (n == 0)
		return fail(err, errlen, "%s: no key in the file", path);
	return n;
}

/* fsync the directory of path, so that a new name in it is durable. */
static void sync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* Write all of text to fd, then fsync it; 0 or -1 (errno set). */
static int write_synced(int fd, const char *text, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		off += (size_t)w;
	}
	/* the key must survive a crash right after we issued cookies with it */
	return fsync(fd);
}

/* Create path with one new key; 0, 1 if it appeared meanwhile, -1 on error. */
static int create_file(const char *path, char *err, size_t errlen)
{
	static const char head[] = "# bollard cookie key: keep secret, mode 0600; "
				   "the first key seals, all keys open\n";
	uint8_t key[SEAL_KEY_LEN];
	char text[sizeof(head) + 2 * SEAL_KEY_LEN + 2];
	char tmp[PATH_MAX];
	size_t len;
	int fd, rc, e;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return fail(err, errlen, "secret-file %s: cannot create: path too long", path);
	/* mkostemp: mode 0600, a name nobody else uses */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, "secret-file %s: cannot create: %s", path, strerror(errno));
	randombytes_buf(key, sizeof(key));
	memcpy(text, head, sizeof(head) - 1);
	len = sizeof(head) - 1;
	sodium_bin2hex(text + len, 2 * SEAL_KEY_LEN + 1, key, sizeof(key));
	len += 2 * SEAL_KEY_LEN;
	text[len++] = '\n';
	rc = write_synced(fd, text, len);
	e = errno;
	sodium_memzero(text, sizeof(text));
	sodium_memzero(key, sizeof(key));
	close(fd);
	if (rc < 0) {
		unlink(tmp);
		return fail(err, errlen, "secret-file %s: write: %s", path, strerror(e));
	}
	/* link() never replaces: the first instance to get here wins */
	rc = link(tmp, path);
	e = errno;
	unlink(tmp);
	if (rc < 0 && e == EEXIST)
		return 1;
	if (rc < 0)
		return fail(err, errlen, "secret-file %s: cannot create: %s", path, strerror(e));
	sync_dir_of(path);
	return 0;
}

/* Read path into buf (bounded); returns the length or -1. */
static ssize_t read_file(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
	struct stat st;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, "secret-file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		return fail(err, errlen, "secret-file %s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, "secret-file %s is not a regular file", path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return fail(err, errlen, "secret-file %s is readable by others (mode %04o); chmod 600 it",
			    path, (unsigned)(st.st_mode & 07777));
	}
	for (;;) {
		ssize_t r;

		if (len == cap) {
			close(fd);
			return fail(err, errlen, "secret-file %s is too large (over %zu bytes)", path, cap);
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			close(fd);
			return fail(err, errlen, "secret-file %s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	return (ssize_t)len;
}

struct seal_keys *seal_keys_load(const char *path, bool create, bool *created,
				 char *err, size_t errlen)
{
	struct seal_keys *k;
	char *buf;
	ssize_t len;
	int n;

	if (created)
		*created = false;
	if (sodium_init() < 0) {
		fail(err, errlen, "libsodium initialisation failed");
		return NULL;
	}
	if (create && access(path, F_OK) < 0 && errno == ENOENT) {
		int rc = create_file(path, err, errlen);

		if (rc < 0)
			return NULL;
		if (created)
			*created = rc == 0;
	}
	k = calloc(1, sizeof(*k));
	buf = malloc(SEAL_FILE_MAX);
	if (!k || !buf) {
		free(k);
		free(buf);
		fail(err, errlen, "secret-file %s: out of memory", path);
		return NULL;
	}
	len = read_file(path, buf, SEAL_FILE_MAX, err, errlen);
	n = len < 0 ? -1 : parse_keys(path, buf, (size_t)len, k->key, err, errlen);
	sodium_memzero(buf, SEAL_FILE_MAX);
	free(buf);
	if (n < 0) {
		sodium_memzero(k, sizeof(*k));
		free(k);
		return NULL;
	}
	k->n = n;
	atomic_init(&k->refs, 1);
	/* what a cache of opened cookies (persist.c) tells sets apart by: a
	 * set freed and another allocated at its address differ here */
	static _Atomic uint64_t serials;
	k->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed) + 1;
	return k;
}

void seal_keys_hold(struct seal_keys *k)
{
	atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
}

void seal_keys_free(struct seal_keys *k)
{
	if (!k || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
		return;
	sodium_memzero(k, sizeof(*k));
	free(k);
}

void seal_key_id(const struct seal_keys *k, int i, char *out)
{
	uint8_t h[SEAL_ID_LEN / 2];

	crypto_generichash(h, sizeof(h), k->key[i], SEAL_KEY_LEN, NULL, 0);
	sodium_bin2hex(out, SEAL_ID_LEN + 1, h, sizeof(h));
}

bool seal_keys_same(const struct seal_keys *a, const struct seal_keys *b)
{
	if (!a || !b)
		return a == b;
	return a->n == b->n && sodium_memcmp(a->key, b->key, (size_t)a->n * SEAL_KEY_LEN) == 0;
}

/*
 * What seal_key_load_or_create() would refuse, found without creating or
 * installing anything, so that `bollard check` and a reload refuse what a
 * start refuses (issue 10 item 2): an existing file is read and parsed
 * (private mode, regular, well-formed), an absent one must be creatable in
 * its directory. Returns 0, or -1 with the message in err.
 */
int seal_key_check(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char dir[4096];

	if (lstat(path, &st) < 0) {
		const char *slash = strrchr(path, '/');
		size_t dl = slash ? (size_t)(slash - path) : 0;

		if (errno != ENOENT)
			return fail(err, errlen, "secret-file %s: %s", path, strerror(errno));
		if (dl >= sizeof(dir))
			return fail(err, errlen, "secret-file %s: path too long", path);
		if (!slash) {
			strcpy(dir, ".");
		} else if (dl == 0) {
			strcpy(dir, "/");
		} else {
			memcpy(dir, path, dl);
			dir[dl] = '\0';
		}
		if (access(dir, W_OK | X_OK) < 0)
			return fail(err, errlen, "secret-file %s: cannot create: %s: %s", path, dir,
				    strerror(errno));
		return 0;
	}
	/* an existing file: read and parsed exactly as a start would */
	struct seal_keys *k = seal_keys_load(path, false, NULL, err, errlen);
	if (!k)
		return -1;
	seal_keys_free(k);
	return 0;
}
