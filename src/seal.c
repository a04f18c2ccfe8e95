/*
 * seal.c - the cookie key file.
 *
 * Several bollard instances in front of the same servers must accept each
 * other's cookies, so the key lives in a file the operator can copy; a
 * single instance just lets us generate it. Whoever reads the key can forge
 * a cookie routing to any server, so the file must be private: we create it
 * 0600 with O_EXCL (no race with another instance starting at the same
 * time: the loser of the race reads the winner's key) and we refuse to use
 * a file that group or others may read or write, like ssh does with private
 * keys, rather than silently trusting it.
 *
 * Keys are read at start (and at reload, later) on the main thread only,
 * before the workers read them; a reload will swap them under the
 * configuration generation, not here.
 */
#include "api.h"
#include "seal.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#define SEAL_FILE_MAX (64 * 1024)

static uint8_t seal_keys[SEAL_MAX_KEYS][SEAL_KEY_LEN];
static int seal_count;

const uint8_t *seal_key(int i)
{
	if (i < 0 || i >= seal_count)
		return NULL;
	return seal_keys[i];
}

int seal_nkeys(void)
{
	return seal_count;
}

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

/* Create path with one new key; 0, 1 if it appeared meanwhile, -1 on error. */
static int create_file(const char *path, char *err, size_t errlen)
{
	static const char head[] = "# bollard cookie key: keep secret, mode 0600; "
				   "the first key seals, all keys open\n";
	uint8_t key[SEAL_KEY_LEN];
	char text[sizeof(head) + 2 * SEAL_KEY_LEN + 2];
	size_t len, off = 0;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 1;
		return fail(err, errlen, "secret-file %s: cannot create: %s", path, strerror(errno));
	}
	randombytes_buf(key, sizeof(key));
	memcpy(text, head, sizeof(head) - 1);
	len = sizeof(head) - 1;
	sodium_bin2hex(text + len, 2 * SEAL_KEY_LEN + 1, key, sizeof(key));
	len += 2 * SEAL_KEY_LEN;
	text[len++] = '\n';
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;

			close(fd);
			unlink(path);
			sodium_memzero(text, sizeof(text));
			sodium_memzero(key, sizeof(key));
			return fail(err, errlen, "secret-file %s: write: %s", path, strerror(e));
		}
		off += (size_t)w;
	}
	sodium_memzero(text, sizeof(text));
	sodium_memzero(key, sizeof(key));
	/* the key must survive a crash right after we issued cookies with it */
	if (fsync(fd) < 0) {
		int e = errno;

		close(fd);
		unlink(path);
		return fail(err, errlen, "secret-file %s: fsync: %s", path, strerror(e));
	}
	close(fd);
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

int seal_key_load_or_create(const char *path, char *err, size_t errlen)
{
	uint8_t keys[SEAL_MAX_KEYS][SEAL_KEY_LEN];
	char *buf;
	ssize_t len;
	int n, rc;

	memset(keys, 0, sizeof(keys));
	if (sodium_init() < 0)
		return fail(err, errlen, "libsodium initialisation failed");
	rc = create_file(path, err, errlen);
	if (rc < 0)
		return -1;
	buf = malloc(SEAL_FILE_MAX);
	if (!buf)
		return fail(err, errlen, "secret-file %s: out of memory", path);
	len = read_file(path, buf, SEAL_FILE_MAX, err, errlen);
	if (len < 0) {
		free(buf);
		return -1;
	}
	n = parse_keys(path, buf, (size_t)len, keys, err, errlen);
	sodium_memzero(buf, SEAL_FILE_MAX);
	free(buf);
	if (n < 0) {
		sodium_memzero(keys, sizeof(keys));
		return -1;
	}
	memcpy(seal_keys, keys, sizeof(keys));
	seal_count = n;
	sodium_memzero(keys, sizeof(keys));
	return 0;
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
	uint8_t keys[SEAL_MAX_KEYS][SEAL_KEY_LEN];
	struct stat st;
	char *buf, dir[4096];
	ssize_t len;
	int n;

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
	buf = malloc(SEAL_FILE_MAX);
	if (!buf)
		return fail(err, errlen, "secret-file %s: out of memory", path);
	len = read_file(path, buf, SEAL_FILE_MAX, err, errlen);
	n = len < 0 ? -1 : parse_keys(path, buf, (size_t)len, keys, err, errlen);
	sodium_memzero(buf, SEAL_FILE_MAX);
	sodium_memzero(keys, sizeof(keys));
	free(buf);
	return n < 0 ? -1 : 0;
}
