/*
 * store_jwt.c - client-side sessions (--store jwt --key-file FILE): the
 * whole session, visit count and cart, travels in the session cookie as a
 * JSON Web Token signed with HMAC-SHA256 (RFC 7519, JWS RFC 7515, "HS256"
 * RFC 7518 3.2). Nothing is kept on the server, so any app server sharing
 * the key file serves any user, and killing one loses nothing.
 *
 *   header  {"alg":"HS256","typ":"JWT"}
 *   claims  {"sid":ID,"visits":N,"cart_total":N,"cart":[...],"iat":T,"exp":T}
 *
 * A token is accepted only when its header is exactly ours (so "alg":"none"
 * or any other algorithm is refused, RFC 8725 2.1 and 3.1), its MAC
 * verifies in constant time, its claims parse, and exp is in the future
 * (NumericDate, RFC 7519 4.1.4: wall-clock seconds, since any server may
 * read a token another one wrote). A refused token (tampered, forged,
 * expired) is counted and the request starts a new session, as a bad
 * bollard cookie does. The trade-offs are the ones the lab measures: the
 * session rides on every request and answer (the token's size is reported
 * in the JSON answer), and a token cannot be revoked before exp: logging
 * out clears the cookie, but a copy of the token stays valid.
 *
 * The key is the file's bytes without trailing whitespace, at least 32
 * (RFC 7518 3.2: a key of the hash's size or more). An absent file is
 * created with 32 random bytes in hex, mode 0600, atomically (written
 * aside, then linked into place), so app servers started together agree.
 */
#include "demo.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_MIN   32
#define KEY_MAX   1024
#define CLAIMS_MAX 2700          /* JSON before base64: 3600 bytes, within STORE_TOKEN_MAX */

/* base64url({"alg":"HS256","typ":"JWT"}) */
static const char header64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
static crypto_auth_hmacsha256_state keyed;   /* HMAC state after the key */

/* Create path with a fresh random key unless it exists. */
static const char *make_key(const char *path)
{
	static char err[300];
	uint8_t rnd[32];
	char hex[65], tmp[4200];
	int fd;

	randombytes_buf(rnd, sizeof(rnd));
	hash_hex(rnd, sizeof(rnd), hex);
	hex[64] = '\n';
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, hex, 65) != 65 || fsync(fd) < 0) {
		snprintf(err, sizeof(err), "--key-file %s: cannot create: %s", path,
			 strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return err;
	}
	close(fd);
	/* link(2) fails if another app created the file meanwhile: then
	 * that one's key is the key. */
	if (link(tmp, path) < 0 && errno != EEXIST) {
		snprintf(err, sizeof(err), "--key-file %s: cannot create: %s", path,
			 strerror(errno));
		unlink(tmp);
		return err;
	}
	unlink(tmp);
	return NULL;
}

static const char *jwt_configure(const char *spec)
{
	static char err[300];
	uint8_t key[KEY_MAX + 1];
	const char *path = store_cfg.key_file, *m;
	ssize_t n;
	int fd;

	if (sodium_init() < 0)
		return "libsodium failed to initialise";
	if (!path)
		return "--store jwt needs --key-file FILE (the same file on every app server)";
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		m = make_key(path);
		if (m)
			return m;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		snprintf(err, sizeof(err), "--key-file %s: %s", path, strerror(errno));
		return err;
	}
	n = read(fd, key, sizeof(key));
	close(fd);
	while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' '))
		n--;
	if (n < KEY_MIN || n > KEY_MAX) {
		snprintf(err, sizeof(err), "--key-file %s: the key must be %d to %d bytes",
			 path, KEY_MIN, KEY_MAX);
		return err;
	}
	crypto_auth_hmacsha256_init(&keyed, key, (size_t)n);
	sodium_memzero(key, sizeof(key));
	return NULL;
}

static void *jwt_open(void)
{
	return &keyed;           /* no connection: any non-NULL handle */
}

static void jwt_reset(void *h)
{
}

static void mac(const char *p, size_t n, uint8_t out[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st = keyed;

	crypto_auth_hmacsha256_update(&st, (const uint8_t *)p, n);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

/* ---- the claims: our own JSON, parsed strictly ------------------------ */

struct claims {
	const char *p, *end;
};

static void ws(struct claims *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static bool eat(struct claims *c, char ch)
{
	ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

/* A JSON string into out (at most cap - 1 bytes, NUL-terminated); \uXXXX
 * only below U+0100 (what sbuf_json writes: the items are bytes). */
static int jstring(struct claims *c, char *out, size_t cap, size_t *olen)
{
	size_t o = 0;

	if (!eat(c, '"'))
		return -1;
	while (c->p < c->end && *c->p != '"') {
		unsigned ch = (unsigned char)*c->p++;
		if (ch < 0x20)
			return -1;
		if (ch == '\\') {
			if (c->p == c->end)
				return -1;
			ch = (unsigned char)*c->p++;
			if (ch == 'u') {
				char hex[5];
				char *e;
				if (c->end - c->p < 4)
					return -1;
				memcpy(hex, c->p, 4);
				hex[4] = '\0';
				ch = (unsigned)strtoul(hex, &e, 16);
				if (*e || ch > 0xff)
					return -1;
				c->p += 4;
			} else if (ch == 'n') {
				ch = '\n';
			} else if (ch == 't') {
				ch = '\t';
			} else if (ch == 'r') {
				ch = '\r';
			} else if (ch != '"' && ch != '\\' && ch != '/') {
				return -1;
			}
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)ch;
	}
	if (!eat(c, '"'))
		return -1;
	out[o] = '\0';
	*olen = o;
	return 0;
}

static int jnumber(struct claims *c, uint64_t *v)
{
	uint64_t x = 0;
	const char *start;

	ws(c);
	start = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*c->p++ - '0');
	}
	if (c->p == start)
		return -1;
	*v = x;
	return 0;
}

/* Parse the claims into s; *exp gets exp. Unknown members are refused:
 * only this app writes tokens with this key. */
static int parse_claims(const char *json, size_t n, struct store_session *s, uint64_t *exp)
{
	struct claims c = { json, json + n };
	unsigned seen = 0;
	char name[16], item[SESSION_ITEM_MAX + 1];
	size_t len;
	uint64_t v;

	if (!eat(&c, '{'))
		return -1;
	do {
		if (jstring(&c, name, sizeof(name), &len) < 0 || !eat(&c, ':'))
			return -1;
		if (!strcmp(name, "sid")) {
			if (jstring(&c, s->id, sizeof(s->id), &len) < 0 ||
			    !store_id_valid(s->id, len))
				return -1;
			seen |= 1;
		} else if (!strcmp(name, "visits")) {
			if (jnumber(&c, &s->visits) < 0)
				return -1;
			seen |= 2;
		} else if (!strcmp(name, "cart_total")) {
			if (jnumber(&c, &s->cart_total) < 0)
				return -1;
			seen |= 4;
		} else if (!strcmp(name, "cart")) {
			s->ncart = 0;
			if (!eat(&c, '['))
				return -1;
			if (!eat(&c, ']')) {
				do {
					if (s->ncart == SESSION_CART_MAX ||
					    jstring(&c, item, sizeof(item), &len) < 0)
						return -1;
					memcpy(s->cart[s->ncart++], item, len + 1);
				} while (eat(&c, ','));
				if (!eat(&c, ']'))
					return -1;
			}
			seen |= 8;
		} else if (!strcmp(name, "iat")) {
			if (jnumber(&c, &v) < 0)
				return -1;
			seen |= 16;
		} else if (!strcmp(name, "exp")) {
			if (jnumber(&c, exp) < 0)
				return -1;
			seen |= 32;
		} else {
			return -1;
		}
	} while (eat(&c, ','));
	if (!eat(&c, '}'))
		return -1;
	ws(&c);
	return c.p == c.end && seen == 63 && s->ncart <= s->cart_total ? 0 : -1;
}

static int jwt_get(void *h, const char *tok, size_t len, struct store_session *out,
		   struct store_err *e)
{
	const char *dot1, *dot2;
	uint8_t sig[crypto_auth_hmacsha256_BYTES + 4], want[crypto_auth_hmacsha256_BYTES];
	char json[CLAIMS_MAX + 1];
	size_t siglen, jlen;
	uint64_t exp = 0;

	if (len == 0)
		return 0;
	if (len > STORE_TOKEN_MAX)
		goto refused;
	dot1 = memchr(tok, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(tok + len - dot1 - 1)) : NULL;
	if (!dot2 || (size_t)(dot1 - tok) != sizeof(header64) - 1 ||
	    memcmp(tok, header64, sizeof(header64) - 1) != 0)
		goto refused;
	if (sodium_base642bin(sig, sizeof(sig), dot2 + 1, (size_t)(tok + len - dot2 - 1),
			      NULL, &siglen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) < 0 ||
	    siglen != sizeof(want))
		goto refused;
	mac(tok, (size_t)(dot2 - tok), want);
	if (crypto_verify_32(sig, want) != 0)
		goto refused;
	if (sodium_base642bin((uint8_t *)json, CLAIMS_MAX, dot1 + 1, (size_t)(dot2 - dot1 - 1),
			      NULL, &jlen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) < 0)
		goto refused;
	json[jlen] = '\0';
	if (parse_claims(json, jlen, out, &exp) < 0) {
		/* A valid MAC over claims we cannot read: our own bug. */
		store_log("jwt: a token signed with our key has claims we cannot read");
		goto refused;
	}
	if (exp <= (uint64_t)time(NULL))
		goto refused;
	return 1;
refused:
	store_count_refused();
	return 0;
}

static int jwt_put(void *h, const struct store_session *in, unsigned ttl_s,
		   char *tok, size_t *toklen, struct store_err *e)
{
	struct store_session s = *in;
	uint8_t sig[crypto_auth_hmacsha256_BYTES];
	struct sbuf b = { 0 };
	uint64_t now = (uint64_t)time(NULL);
	size_t o;
	unsigned i;

	/* The cookie must stay within what browsers keep (RFC 6265 6.1):
	 * past that, the last items of the cart are left out of the token
	 * (cart_total still counts them), as the memory store keeps 16. */
	for (;;) {
		b.len = 0;
		sbuf_puts(&b, "{\"sid\":\"");
		sbuf_puts(&b, s.id);
		sbuf_puts(&b, "\",\"visits\":");
		sbuf_putu(&b, s.visits);
		sbuf_puts(&b, ",\"cart_total\":");
		sbuf_putu(&b, s.cart_total);
		sbuf_puts(&b, ",\"cart\":[");
		for (i = 0; i < s.ncart; i++) {
			if (i)
				sbuf_puts(&b, ",");
			sbuf_json(&b, s.cart[i], strlen(s.cart[i]));
		}
		sbuf_puts(&b, "],\"iat\":");
		sbuf_putu(&b, now);
		sbuf_puts(&b, ",\"exp\":");
		sbuf_putu(&b, now + ttl_s);
		sbuf_puts(&b, "}");
		if (b.oom) {
			sbuf_free(&b);
			return store_fail(e, "out of memory");
		}
		if (b.len <= CLAIMS_MAX || s.ncart == 0)
			break;
		s.ncart--;
	}
	memcpy(tok, header64, sizeof(header64) - 1);
	o = sizeof(header64) - 1;
	tok[o++] = '.';
	sodium_bin2base64(tok + o, STORE_TOKEN_MAX + 1 - o, (const uint8_t *)b.p, b.len,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	o += strlen(tok + o);
	sbuf_free(&b);
	mac(tok, o, sig);
	tok[o++] = '.';
	sodium_bin2base64(tok + o, STORE_TOKEN_MAX + 1 - o, sig, sizeof(sig),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	o += strlen(tok + o);
	*toklen = o;
	return 0;
}

static int jwt_del(void *h, const char *id, struct store_err *e)
{
	return 0;                /* nothing on the server; the cookie is cleared */
}

const struct store_ops store_jwt_ops = {
	.name = "jwt",
	.configure = jwt_configure,
	.open = jwt_open,
	.get = jwt_get,
	.put = jwt_put,
	.del = jwt_del,
	.reset = jwt_reset,
};
