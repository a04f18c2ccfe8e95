/*
 * tls_ctx.c - OpenSSL contexts for TLS binds and TLS servers (SPEC §11,
 * doc/tls.md).
 *
 * An operator gives a bind a list of certificates and expects what HAProxy
 * and NGINX do: the certificate whose names match the client's SNI (exact
 * name, then a wildcard, then the first certificate), ECDSA and RSA side by
 * side for one name, sessions that resume on any worker, after a reload and
 * on a second instance holding the same secret-file, and a configuration
 * error naming the file when a certificate cannot be served.
 *
 * Shape. One SSL_CTX per distinct set of certificates a name selects: each
 * name maps to, for every key type, the first certificate loaded for that
 * name and type; names mapping to the same set share a context. OpenSSL
 * keeps one certificate per key type in a context and picks among them from
 * the client's signature_algorithms (RFC 8446 4.2.3, RFC 5246 7.4.1.4.1),
 * so RSA versus ECDSA is its decision, made after ours.
 *
 * Why the servername callback and not the client-hello callback: OpenSSL
 * parses and validates the server_name extension itself before calling it,
 * and it runs before the certificate and signature algorithm are chosen,
 * so moving the SSL to another context there (SSL_set_SSL_CTX) is all SNI
 * selection needs. The client-hello callback runs earlier, on raw
 * extension bytes we would have to parse (attack surface for no gain); it
 * pays only for choosing between separate RSA and ECDSA contexts by
 * reading signature_algorithms ourselves, which OpenSSL already does.
 * SSL_set_SSL_CTX swaps the certificates, the CA list, the verify store,
 * ciphers and the ALPN callback, but not the options or the verify mode,
 * which stay those of the context the SSL was made from; so every context
 * of a bind gets the same configuration (configure()), and the outcome
 * does not depend on which parts the swap carries.
 *
 * Tickets. Keys derive from the secret-file keys by HKDF (RFC 5869) with a
 * fixed label, so processes given the same file derive the same keys and
 * resume each other's sessions; the first key encrypts, every key decrypts
 * (rotation). OpenSSL's own ticket keys are random per context, hence the
 * callback. The session cache is off: tickets make it unnecessary, and it
 * is a lock shared by the workers. OpenSSL matches a session's id context
 * against the SSL's before the servername callback runs, so every context
 * of a bind has the same one, derived from the client verification policy
 * (setup_client_ca()): identical configurations on two instances agree.
 *
 * Nothing here runs per request: the callbacks run once per handshake and
 * read the context, which is immutable once built.
 */
#include "api.h"
#include "tls_ctx.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define TLS_CTX_MAGIC 0x544c5343u /* "TLSC" */
#define PEM_FILE_MAX  (1024 * 1024)
/* RFC 1035 2.3.4: 255 bytes on the wire, so 253 characters of text */
#define HOSTNAME_MAX  253
/* RFC 5077 4 and OpenSSL's callback: 16-byte key name, AES-256 and an
 * HMAC-SHA256 key */
#define TICKET_NAME_LEN 16
#define TICKET_KEY_LEN  32
/* HKDF info: fixed so that every instance derives the same keys; the
 * version lets a future format change keys without a new secret-file */
static const char ticket_label[] = "bollard tls session ticket keys v1";

/* the key slots of an SSL_CTX we fill (one certificate each) */
enum key_slot { SLOT_RSA, SLOT_RSA_PSS, SLOT_EC, SLOT_ED25519, SLOT_ED448, SLOT_N };
static const char *const slot_names[SLOT_N] = { "RSA", "RSA-PSS", "ECDSA", "Ed25519", "Ed448" };

struct tls_cert {
	char *file;
	X509 *x509;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
	char **names;          /* lower-cased; a wildcard keeps its "*." */
	int nnames;
	enum key_slot slot;
	int64_t not_after;
};

/* a name of the SNI index (exact, or wildcard stored without its "*.") */
struct sni_name {
	const char *name;
	int cert;   /* while building: the certificate the name came from */
	int combo;  /* the context serving it */
};

struct ticket_key {
	uint8_t name[TICKET_NAME_LEN];
	uint8_t hmac[TICKET_KEY_LEN];
	uint8_t aes[TICKET_KEY_LEN];
};

struct tls_ctx {
	unsigned magic;
	struct tls_cert *certs;
	int ncerts, capcerts;
	SSL_CTX **ctxs;         /* one per combination of certificates */
	int (*combos)[SLOT_N];  /* combos[i][slot]: certificate index or -1 */
	int nctxs;
	int def;                /* context of the default certificate */
	struct sni_name *exact, *wild; /* sorted by name */
	int nexact, nwild;
	uint8_t *alpn;          /* RFC 7301 3.1 wire format, server preference order */
	size_t alpn_len;
	struct ticket_key tk[TLS_MAX_SECRETS];
	int ntk;                /* 0: tickets off */
	EVP_CIPHER *cipher;     /* fetched once, not per ticket */
	X509_STORE *client_store;
	STACK_OF(X509_NAME) *client_names;
	uint8_t sid_ctx[SSL_MAX_SID_CTX_LENGTH];
};

struct tls_client {
	SSL_CTX *ctx;
	char *sni;
	enum tls_verify verify;
};

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
	ERR_clear_error();
	return -1;
}

/* OpenSSL's reason for the last failure, for a message ("ee key too small") */
static const char *ossl_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());

	return r ? r : "unknown OpenSSL error";
}

int tls_version_parse(const char *text)
{
	if (!strcmp(text, "1.2"))
		return TLS1_2_VERSION;
	if (!strcmp(text, "1.3"))
		return TLS1_3_VERSION;
	return 0;
}

/* ---- files ------------------------------------------------------------ */

/* Reads path whole (bounded); returns a NUL-terminated buffer (the caller
 * frees it) or NULL with a message naming path. */
static char *read_file(const char *path, size_t *lenp, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rbe");
	struct stat st;
	char *buf = NULL;
	size_t len = 0;

	if (!f) {
		fail(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0)
		fail(err, errlen, "%s: %s", path, strerror(errno));
	else if (st.st_size > PEM_FILE_MAX)
		fail(err, errlen, "%s: larger than %d bytes, not a certificate file", path, PEM_FILE_MAX);
	else if (!(buf = malloc((size_t)st.st_size + 1)))
		fail(err, errlen, "%s: out of memory", path);
	else if ((len = fread(buf, 1, (size_t)st.st_size, f)) != (size_t)st.st_size)
		fail(err, errlen, "%s: %s", path, ferror(f) ? strerror(errno) : "changed while read");
	else {
		fclose(f);
		buf[len] = '\0';
		*lenp = len;
		return buf;
	}
	fclose(f);
	free(buf);
	return NULL;
}

/* the passphrase callback: never prompt (a proxy has no terminal to ask
 * on), remember that a passphrase was wanted, for the message */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	*(bool *)u = true;
	return -1;
}

/* Reads the first private key of text; 0 and *key, 1 when there is none,
 * -1 on error (message naming path). */
static int read_key(const char *path, const char *text, size_t len, EVP_PKEY **key,
		    char *err, size_t errlen)
{
	bool encrypted = false;
	BIO *bio;

	*key = NULL;
	if (!strstr(text, "PRIVATE KEY-----"))
		return 1;
	bio = BIO_new_mem_buf(text, (int)len);
	if (!bio)
		return fail(err, errlen, "%s: out of memory", path);
	*key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted);
	BIO_free(bio);
	if (*key)
		return 0;
	if (encrypted)
		return fail(err, errlen, "%s: the private key is encrypted; bollard needs it without a passphrase",
			    path);
	return fail(err, errlen, "%s: unreadable private key: %s", path, ossl_reason());
}

/* NAME.pem or NAME.crt -> NAME.key; other names get ".key" appended */
static char *key_path(const char *path)
{
	size_t n = strlen(path);
	char *k = malloc(n + 5);

	if (!k)
		return NULL;
	memcpy(k, path, n + 1);
	if (n > 4 && (!strcmp(path + n - 4, ".pem") || !strcmp(path + n - 4, ".crt")))
		n -= 4;
	memcpy(k + n, ".key", 5);
	return k;
}

/* ---- names ------------------------------------------------------------ */

/* A DNS name we can index: letters, digits, '-', '_', '.'; a wildcard only
 * as the whole left-most label (RFC 6125 6.4.3; RFC 9525 6.3 drops partial
 * wildcards such as "w*.example.com", and so do we). */
static bool name_ok(const char *s, size_t n)
{
	size_t start = n > 2 && s[0] == '*' && s[1] == '.' ? 2 : 0;

	if (n == 0 || n > HOSTNAME_MAX)
		return false;
	for (size_t i = start; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	}
	/* no empty label ("a..b", ".a"); a trailing dot is not in certificates */
	return start < n && s[start] != '.' && s[n - 1] != '.' && !memmem(s, n, "..", 2);
}

/* Lower-cases s[0..n) into a new string when it is an indexable name. */
static char *name_dup(const unsigned char *s, size_t n)
{
	char *d;

	if (n > HOSTNAME_MAX || memchr(s, '\0', n))
		return NULL;
	d = malloc(n + 1);
	if (!d)
		return NULL;
	for (size_t i = 0; i < n; i++)
		d[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
	d[n] = '\0';
	if (!name_ok(d, n)) {
		free(d);
		return NULL;
	}
	return d;
}

static int add_name(struct tls_cert *c, char *name)
{
	char **nn;

	if (!name)
		return 0;
	for (int i = 0; i < c->nnames; i++)
		if (!strcmp(c->names[i], name)) {
			free(name);
			return 0;
		}
	nn = realloc(c->names, (size_t)(c->nnames + 1) * sizeof(*nn));
	if (!nn) {
		free(name);
		return -1;
	}
	c->names = nn;
	c->names[c->nnames++] = name;
	return 0;
}

/* The names a certificate serves: its SAN DNS entries; the subject's CN
 * only when there is none (RFC 6125 6.4.4). Names that are not host
 * names (a CN "Example Ltd") are not indexed. */
static int cert_names(struct tls_cert *c)
{
	GENERAL_NAMES *san = X509_get_ext_d2i(c->x509, NID_subject_alt_name, NULL, NULL);
	bool dns = false;
	int rc = 0;

	for (int i = 0; san && i < sk_GENERAL_NAME_num(san) && rc == 0; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);

		if (g->type != GEN_DNS)
			continue;
		dns = true;
		rc = add_name(c, name_dup(ASN1_STRING_get0_data(g->d.dNSName),
					  (size_t)ASN1_STRING_length(g->d.dNSName)));
	}
	GENERAL_NAMES_free(san);
	if (!dns && rc == 0) {
		const X509_NAME *subj = X509_get_subject_name(c->x509);
		int last = -1, i;
		unsigned char *utf8 = NULL;
		int n;

		while ((i = X509_NAME_get_index_by_NID(subj, NID_commonName, last)) >= 0)
			last = i;
		if (last >= 0) {
			n = ASN1_STRING_to_UTF8(&utf8,
				X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, last)));
			if (n > 0)
				rc = add_name(c, name_dup(utf8, (size_t)n));
			OPENSSL_free(utf8);
		}
	}
	return rc;
}

static int key_slot(EVP_PKEY *k)
{
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA: return SLOT_RSA;
	case EVP_PKEY_RSA_PSS: return SLOT_RSA_PSS;
	case EVP_PKEY_EC: return SLOT_EC;
	case EVP_PKEY_ED25519: return SLOT_ED25519;
	case EVP_PKEY_ED448: return SLOT_ED448;
	default: return -1;
	}
}

/* ---- loading certificates ---------------------------------------------- */

static void cert_clear(struct tls_cert *c)
{
	free(c->file);
	X509_free(c->x509);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->chain, X509_free);
	for (int i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	memset(c, 0, sizeof(*c));
}

/* Leaf and chain of text into c; -1 with a message naming path. */
static int read_certs(struct tls_cert *c, const char *path, const char *text, size_t len,
		      char *err, size_t errlen)
{
	BIO *bio;
	X509 *x;
	int rc = 0;

	if (!strstr(text, "-----BEGIN "))
		return fail(err, errlen, "%s: not a PEM file (a DER certificate? "
			    "openssl x509 -inform der converts it)", path);
	if (!strstr(text, "-----BEGIN CERTIFICATE-----"))
		return fail(err, errlen, "%s: no certificate in the file", path);
	bio = BIO_new_mem_buf(text, (int)len);
	c->chain = sk_X509_new_null();
	if (!bio || !c->chain) {
		BIO_free(bio);
		return fail(err, errlen, "%s: out of memory", path);
	}
	c->x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!c->x509)
		rc = fail(err, errlen, "%s: unreadable certificate: %s", path, ossl_reason());
	while (rc == 0 && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (!sk_X509_push(c->chain, x)) {
			X509_free(x);
			rc = fail(err, errlen, "%s: out of memory", path);
		}
	}
	/* the loop ends at the end of the text, or at a damaged block */
	if (rc == 0 && ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)
		rc = fail(err, errlen, "%s: certificate %d of the chain is unreadable: %s", path,
			  sk_X509_num(c->chain) + 2, ossl_reason());
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

static int64_t not_after(const X509 *x)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* Loads one certificate file (and its NAME.key when the key is not in it)
 * as t->certs[t->ncerts]. */
static int load_cert(struct tls_ctx *t, const char *path, char *err, size_t errlen)
{
	struct tls_cert *c;
	char *text, *kpath = NULL, *ktext = NULL;
	const char *kname = path;
	size_t len, klen;
	int rc, slot;

	if (t->ncerts == t->capcerts) {
		int cap = t->capcerts ? 2 * t->capcerts : 8;
		struct tls_cert *n = realloc(t->certs, (size_t)cap * sizeof(*n));

		if (!n)
			return fail(err, errlen, "%s: out of memory", path);
		t->certs = n;
		t->capcerts = cap;
	}
	c = &t->certs[t->ncerts];
	memset(c, 0, sizeof(*c));
	text = read_file(path, &len, err, errlen);
	if (!text)
		return -1;
	rc = read_certs(c, path, text, len, err, errlen);
	if (rc == 0)
		rc = read_key(path, text, len, &c->key, err, errlen);
	if (rc == 1) {
		kpath = key_path(path);
		if (!kpath)
			rc = fail(err, errlen, "%s: out of memory", path);
		else if (access(kpath, F_OK) != 0)
			rc = fail(err, errlen, "%s: no private key in the file, nor a %s beside it",
				  path, kpath);
		else if ((ktext = read_file(kpath, &klen, err, errlen)) == NULL)
			rc = -1;
		else if ((rc = read_key(kpath, ktext, klen, &c->key, err, errlen)) == 1)
			rc = fail(err, errlen, "%s: no private key in the file", kpath);
		kname = kpath;
	}
	if (rc == 0 && X509_check_private_key(c->x509, c->key) != 1)
		rc = fail(err, errlen, "%s: the private key%s%s does not match the certificate",
			  path, kname != path ? " in " : "", kname != path ? kname : "");
	if (rc == 0 && (slot = key_slot(c->key)) < 0)
		rc = fail(err, errlen, "%s: unsupported key type %s", path,
			  OBJ_nid2sn(EVP_PKEY_get_base_id(c->key)));
	if (rc == 0) {
		c->slot = (enum key_slot)slot;
		c->not_after = not_after(c->x509);
		c->file = strdup(path);
		if (!c->file || cert_names(c) < 0)
			rc = fail(err, errlen, "%s: out of memory", path);
	}
	if (ktext)
		OPENSSL_cleanse(ktext, klen);
	OPENSSL_cleanse(text, len);
	free(ktext);
	free(text);
	free(kpath);
	if (rc != 0) {
		cert_clear(c);
		return -1;
	}
	t->ncerts++;
	return 0;
}

/* certificate files of a directory: *.pem and *.crt, not hidden */
static int cert_entry(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 &&
	       (!strcmp(d->d_name + n - 4, ".pem") || !strcmp(d->d_name + n - 4, ".crt"));
}

/* Loads path, a file or a directory (its files in name order, so the
 * default certificate does not depend on the file system's order). */
static int load_crt(struct tls_ctx *t, const char *path, char *err, size_t errlen)
{
	struct dirent **ents;
	struct stat st;
	int n, rc = 0, before = t->ncerts;

	if (stat(path, &st) != 0)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return load_cert(t, path, err, errlen);
	n = scandir(path, &ents, cert_entry, alphasort);
	if (n < 0)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	for (int i = 0; i < n; i++) {
		size_t l = strlen(path) + strlen(ents[i]->d_name) + 2;
		char *f = rc == 0 ? malloc(l) : NULL;

		if (rc == 0 && !f)
			rc = fail(err, errlen, "%s: out of memory", path);
		if (f) {
			snprintf(f, l, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
				 ents[i]->d_name);
			if (stat(f, &st) == 0 && S_ISREG(st.st_mode))
				rc = load_cert(t, f, err, errlen);
			free(f);
		}
		free(ents[i]);
	}
	free(ents);
	if (rc == 0 && t->ncerts == before)
		rc = fail(err, errlen, "%s: no certificate in the directory (files named *.pem or *.crt)",
			  path);
	return rc;
}

/* ---- SNI index --------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
	const struct sni_name *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : x->cert - y->cert;
}

static int name_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct sni_name *)elem)->name);
}

static int lookup(const struct sni_name *v, int n, const char *name)
{
	const struct sni_name *e = n ? bsearch(name, v, (size_t)n, sizeof(*v), name_key_cmp) : NULL;

	return e ? e->combo : -1;
}

/* The context for SNI name: exact, then wildcard (one label, RFC 6125
 * 6.4.3), else -1 (the default). */
static int sni_lookup(const struct tls_ctx *t, const char *sni)
{
	char buf[HOSTNAME_MAX + 2];
	size_t n = strlen(sni);
	const char *dot;
	int i;

	/* RFC 6066 3: no trailing dot in HostName; some clients send one */
	if (n > 0 && sni[n - 1] == '.')
		n--;
	if (n == 0 || n > HOSTNAME_MAX)
		return -1;
	for (size_t k = 0; k < n; k++)
		buf[k] = (char)(sni[k] >= 'A' && sni[k] <= 'Z' ? sni[k] + 32 : sni[k]);
	buf[n] = '\0';
	i = lookup(t->exact, t->nexact, buf);
	if (i >= 0)
		return i;
	dot = strchr(buf, '.');
	if (!dot || dot == buf || dot[1] == '\0')
		return -1;
	return lookup(t->wild, t->nwild, dot + 1);
}

/* The combination index of slots, added when new; -1 when out of memory. */
static int combo_of(struct tls_ctx *t, const int slots[SLOT_N], int *cap)
{
	for (int i = 0; i < t->nctxs; i++)
		if (!memcmp(t->combos[i], slots, sizeof(t->combos[i])))
			return i;
	if (t->nctxs == *cap) {
		int ncap = *cap ? 2 * *cap : 8;
		int (*n)[SLOT_N] = realloc(t->combos, (size_t)ncap * sizeof(*n));

		if (!n)
			return -1;
		t->combos = n;
		*cap = ncap;
	}
	memcpy(t->combos[t->nctxs], slots, sizeof(t->combos[0]));
	return t->nctxs++;
}

/* Sorts v by name (then loading order), and gives each distinct name the
 * combination of the first certificate of each key type naming it; drops
 * the duplicates. */
static int index_names(struct tls_ctx *t, struct sni_name *v, int *np, int *cap)
{
	int n = *np, out = 0;

	if (n)
		qsort(v, (size_t)n, sizeof(*v), name_cmp);
	for (int i = 0; i < n;) {
		int slots[SLOT_N], j;

		for (int s = 0; s < SLOT_N; s++)
			slots[s] = -1;
		for (j = i; j < n && !strcmp(v[j].name, v[i].name); j++) {
			int s = t->certs[v[j].cert].slot;

			if (slots[s] < 0)
				slots[s] = v[j].cert;
		}
		v[out] = v[i];
		v[out].combo = combo_of(t, slots, cap);
		if (v[out].combo < 0)
			return -1;
		out++;
		i = j;
	}
	*np = out;
	return 0;
}

static int build_index(struct tls_ctx *t)
{
	int total = 0, cap = 0;

	for (int i = 0; i < t->ncerts; i++)
		total += t->certs[i].nnames;
	t->exact = calloc((size_t)total + 1, sizeof(*t->exact));
	t->wild = calloc((size_t)total + 1, sizeof(*t->wild));
	if (!t->exact || !t->wild)
		return -1;
	for (int i = 0; i < t->ncerts; i++)
		for (int k = 0; k < t->certs[i].nnames; k++) {
			const char *nm = t->certs[i].names[k];

			if (nm[0] == '*')
				t->wild[t->nwild++] = (struct sni_name){ nm + 2, i, -1 };
			else
				t->exact[t->nexact++] = (struct sni_name){ nm, i, -1 };
		}
	if (index_names(t, t->exact, &t->nexact, &cap) < 0 ||
	    index_names(t, t->wild, &t->nwild, &cap) < 0)
		return -1;
	/* the default: what the first certificate's first name selects (its
	 * ECDSA or RSA sibling included), or that certificate alone */
	if (t->certs[0].nnames > 0) {
		const char *nm = t->certs[0].names[0];

		t->def = nm[0] == '*' ? lookup(t->wild, t->nwild, nm + 2) : lookup(t->exact, t->nexact, nm);
	} else {
		int slots[SLOT_N];

		for (int s = 0; s < SLOT_N; s++)
			slots[s] = -1;
		slots[t->certs[0].slot] = 0;
		t->def = combo_of(t, slots, &cap);
	}
	BUG_ON(t->def < 0 && t->certs[0].nnames > 0);
	return t->def < 0 ? -1 : 0;
}

/* ---- callbacks (once per handshake, on worker threads) ----------------- */

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	const struct tls_ctx *t = arg;
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	int i;

	BUG_ON(t->magic != TLS_CTX_MAGIC);
	if (!sni)
		return SSL_TLSEXT_ERR_OK;
	i = sni_lookup(t, sni);
	if (i < 0 || t->ctxs[i] == SSL_get_SSL_CTX(ssl))
		return SSL_TLSEXT_ERR_OK;
	if (!SSL_set_SSL_CTX(ssl, t->ctxs[i])) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* The first protocol of our list that the client offers (server
 * preference). in[] was validated by OpenSSL (RFC 7301 3.1), and we
 * bound every step anyway. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct tls_ctx *t = arg;

	for (size_t s = 0; s < t->alpn_len; s += 1u + t->alpn[s]) {
		for (unsigned int c = 0; c < inlen && c + 1u + in[c] <= inlen; c += 1u + in[c]) {
			if (in[c] == t->alpn[s] && !memcmp(in + c + 1, t->alpn + s + 1, in[c])) {
				*out = t->alpn + s + 1;
				*outlen = t->alpn[s];
				return SSL_TLSEXT_ERR_OK;
			}
		}
	}
	/* RFC 7301 3.2: no protocol in common is a fatal
	 * no_application_protocol alert (not a connection in a protocol the
	 * client did not ask for) */
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int ticket_mac_init(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
	OSSL_PARAM p[3];

	p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, TICKET_KEY_LEN);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	p[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, p);
}

/* RFC 5077 4 ticket protection (the format OpenSSL writes): AES-256-CBC
 * and HMAC-SHA256 under the key named in the ticket. Returns 1 (use),
 * 2 (decrypted with an older key: issue a new ticket), 0 (unknown key:
 * full handshake), -1 (error). */
static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
		     EVP_MAC_CTX *hctx, int enc)
{
	const struct tls_ctx *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	int i;

	BUG_ON(!t || t->magic != TLS_CTX_MAGIC || t->ntk == 0);
	if (enc) {
		const struct ticket_key *k = &t->tk[0];

		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(t->cipher)) != 1)
			return -1;
		memcpy(name, k->name, TICKET_NAME_LEN);
		if (!EVP_EncryptInit_ex2(cctx, t->cipher, k->aes, iv, NULL) || !ticket_mac_init(hctx, k))
			return -1;
		return 1;
	}
	for (i = 0; i < t->ntk; i++)
		if (!CRYPTO_memcmp(name, t->tk[i].name, TICKET_NAME_LEN))
			break;
	if (i == t->ntk)
		return 0;
	if (!ticket_mac_init(hctx, &t->tk[i]) ||
	    !EVP_DecryptInit_ex2(cctx, t->cipher, t->tk[i].aes, iv, NULL))
		return -1;
	return i == 0 ? 1 : 2;
}

/* ---- building ---------------------------------------------------------- */

/* ALPN names to RFC 7301 3.1 wire format (length-prefixed names). */
static int alpn_wire(const char *const *names, int n, uint8_t **out, size_t *outlen,
		     char *err, size_t errlen)
{
	size_t len = 0, off = 0;

	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]);

		if (l == 0 || l > TLS_ALPN_NAME_MAX)
			return fail(err, errlen, "alpn: a protocol name is 1 to %d bytes, '%s' is not",
				    TLS_ALPN_NAME_MAX, names[i]);
		len += 1 + l;
	}
	if (len > 0xffff)
		return fail(err, errlen, "alpn: the list is longer than 65535 bytes");
	*out = malloc(len ? len : 1);
	if (!*out)
		return fail(err, errlen, "alpn: out of memory");
	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]);

		(*out)[off++] = (uint8_t)l;
		memcpy(*out + off, names[i], l);
		off += l;
	}
	*outlen = len;
	return 0;
}

/* HKDF-SHA256 (RFC 5869) of one secret-file key into a ticket key. */
static int derive_ticket_key(const uint8_t *secret, struct ticket_key *k)
{
	uint8_t out[sizeof(*k)];
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[4];
	int ok;

	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, TLS_SECRET_LEN);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)ticket_label,
						 sizeof(ticket_label) - 1);
	p[3] = OSSL_PARAM_construct_end();
	ok = kctx && EVP_KDF_derive(kctx, out, sizeof(out), p) == 1;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	if (ok) {
		memcpy(k->name, out, TICKET_NAME_LEN);
		memcpy(k->hmac, out + TICKET_NAME_LEN, TICKET_KEY_LEN);
		memcpy(k->aes, out + TICKET_NAME_LEN + TICKET_KEY_LEN, TICKET_KEY_LEN);
	}
	OPENSSL_cleanse(out, sizeof(out));
	return ok ? 0 : -1;
}

static int setup_tickets(struct tls_ctx *t, const struct tls_secret *secret, char *err, size_t errlen)
{
	uint8_t random_key[TLS_SECRET_LEN];
	int n = secret ? MIN(secret->nkeys, TLS_MAX_SECRETS) : 0;

	t->cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (!t->cipher)
		return fail(err, errlen, "session tickets: AES-256-CBC unavailable: %s", ossl_reason());
	for (int i = 0; i < n; i++)
		if (derive_ticket_key(secret->key[i], &t->tk[i]) < 0)
			return fail(err, errlen, "session tickets: key derivation failed: %s", ossl_reason());
	if (n == 0) {
		if (RAND_bytes(random_key, sizeof(random_key)) != 1 ||
		    derive_ticket_key(random_key, &t->tk[0]) < 0) {
			OPENSSL_cleanse(random_key, sizeof(random_key));
			return fail(err, errlen, "session tickets: no random key: %s", ossl_reason());
		}
		OPENSSL_cleanse(random_key, sizeof(random_key));
		n = 1;
	}
	t->ntk = n;
	return 0;
}

/* The client CA store and names, read once and shared by every context;
 * the session id context from what decides who may resume (RFC 5246
 * 7.4.1.2 leaves it to the server): a session established under one
 * client verification policy must not resume under another. */
static int setup_client_ca(struct tls_ctx *t, const struct tls_bind_opts *o, char *err, size_t errlen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t v = (uint8_t)o->verify;
	unsigned int mdlen = 0;
	char *text = NULL;
	size_t len = 0;
	int rc = 0;

	if (o->verify != TLS_VERIFY_NONE && !o->client_ca)
		rc = fail(err, errlen, "verify %s needs client-ca FILE (the CAs that sign client certificates)",
			  o->verify == TLS_VERIFY_REQUIRED ? "required" : "optional");
	if (rc == 0 && o->client_ca && !(text = read_file(o->client_ca, &len, err, errlen)))
		rc = -1;
	if (rc == 0 && text) {
		t->client_store = X509_STORE_new();
		t->client_names = SSL_load_client_CA_file(o->client_ca);
		if (!t->client_store || !t->client_names ||
		    X509_STORE_load_file(t->client_store, o->client_ca) != 1)
			rc = fail(err, errlen, "%s: no CA certificate in the file: %s", o->client_ca,
				  ossl_reason());
	}
	if (rc == 0 && (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
			!EVP_DigestUpdate(md, "bollard tls sid v1", 18) ||
			!EVP_DigestUpdate(md, &v, 1) ||
			(text && !EVP_DigestUpdate(md, text, len)) ||
			!EVP_DigestFinal_ex(md, t->sid_ctx, &mdlen) || mdlen != sizeof(t->sid_ctx)))
		rc = fail(err, errlen, "session id context: %s", ossl_reason());
	EVP_MD_CTX_free(md);
	free(text);
	return rc;
}

/* What server and client contexts share: versions (RFC 8996: nothing
 * below TLS 1.2), no renegotiation (RFC 5746 made it safe, but it is a
 * CPU lever for the peer and HTTP/2 forbids it, RFC 9113 9.2.1), no
 * compression (CRIME), and the write modes of a non-blocking transport
 * that retries from a buffer that may have moved and takes partial
 * writes. */
static int setup_common(SSL_CTX *ctx, int min_version, char *err, size_t errlen)
{
	if (min_version && min_version != TLS1_2_VERSION && min_version != TLS1_3_VERSION)
		return fail(err, errlen, "min-version: 1.2 or 1.3");
	if (!SSL_CTX_set_min_proto_version(ctx, min_version ? min_version : TLS1_2_VERSION))
		return fail(err, errlen, "min-version: not supported by this OpenSSL");
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read ahead: one read() takes a whole record (and whatever follows)
	 * into the read buffer every connection has anyway, where OpenSSL
	 * otherwise reads the 5-byte header and the body apart: one system
	 * call less per request. SSL_MODE_RELEASE_BUFFERS stays off: it would
	 * free and allocate that buffer around every record (an idle
	 * connection gives its buffers back instead: stream.c). */
	SSL_CTX_set_read_ahead(ctx, 1);
	return 0;
}

/* TLS 1.2 suites when the bind names none: forward secret (ECDHE) and
 * AEAD only (RFC 9325 4.1 and 4.2). OpenSSL's own default also
 * offers static-RSA key exchange (no forward secrecy) and CBC suites
 * (Lucky13-class padding oracles), which scanners report. TLS 1.3 suites
 * are all AEAD with forward secrecy: OpenSSL's default stays. */
#define TLS_SERVER_GROUPS "X25519:P-256:X448:P-521:P-384" /* OpenSSL's, less FFDHE */
#define TLS12_DEFAULT_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Everything but the certificates, the same on every context of the
 * bind (see the top of the file for why). */
static int configure(struct tls_ctx *t, SSL_CTX *ctx, const struct tls_bind_opts *o,
		     char *err, size_t errlen)
{
	int vmode = o->verify == TLS_VERIFY_REQUIRED ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
		  : o->verify == TLS_VERIFY_OPTIONAL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;

	if (setup_common(ctx, o->min_version, err, errlen) < 0)
		return -1;
	/* tickets make a server-side session cache unnecessary, and it would
	 * be a lock shared by the workers */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (t->ntk == 0) {
		/* tls-tickets off: no ticket (TLS 1.2 nor 1.3), and with the
		 * cache off no stateful resumption either */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
	} else {
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	}
	if (!SSL_CTX_set_session_id_context(ctx, t->sid_ctx, sizeof(t->sid_ctx)))
		return fail(err, errlen, "session id context: %s", ossl_reason());
	if (!SSL_CTX_set_cipher_list(ctx, o->ciphers ? o->ciphers : TLS12_DEFAULT_CIPHERS))
		return fail(err, errlen, "ciphers '%s': %s", o->ciphers ? o->ciphers :
			    TLS12_DEFAULT_CIPHERS, ossl_reason());
	/* No finite-field groups: a client may pick one for its TLS 1.3 key
	 * share, and ffdhe8192 costs the server some 100 ms of CPU per
	 * handshake against 0.1 for X25519 (the D(HE)at attack,
	 * CVE-2002-20001); the key share need not even be valid. */
	if (!SSL_CTX_set1_groups_list(ctx, TLS_SERVER_GROUPS))
		return fail(err, errlen, "key exchange groups: %s", ossl_reason());
	/* the server's order decides, so that the strongest suite both sides
	 * have wins whatever the client lists first (RFC 9325 4.1: prefer
	 * forward secrecy; scanners flag a server without an order), except
	 * that a client putting ChaCha20 first (no AES hardware) gets it */
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
	if (o->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, o->ciphersuites))
		return fail(err, errlen, "ciphersuites '%s': %s", o->ciphersuites, ossl_reason());
	if (t->client_store) {
		STACK_OF(X509_NAME) *names = SSL_dup_CA_list(t->client_names);

		if (!names)
			return fail(err, errlen, "client-ca: out of memory");
		SSL_CTX_set1_cert_store(ctx, t->client_store);
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	SSL_CTX_set_verify(ctx, vmode, NULL);
	SSL_CTX_set_app_data(ctx, t);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	if (t->alpn_len)
		SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, t);
	return 0;
}

static int make_ctx(struct tls_ctx *t, int i, const struct tls_bind_opts *o, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	t->ctxs[i] = ctx;
	if (!ctx)
		return fail(err, errlen, "cannot create a TLS context: %s", ossl_reason());
	if (configure(t, ctx, o, err, errlen) < 0)
		return -1;
	for (int s = 0; s < SLOT_N; s++) {
		const struct tls_cert *c;

		if (t->combos[i][s] < 0)
			continue;
		c = &t->certs[t->combos[i][s]];
		/* also where OpenSSL's security level refuses a weak key or
		 * signature ("ee key too small", "ca md too weak") */
		if (SSL_CTX_use_cert_and_key(ctx, c->x509, c->key, c->chain, 1) != 1)
			return fail(err, errlen, "%s: cannot serve this certificate: %s", c->file,
				    ossl_reason());
	}
	return 0;
}

struct tls_ctx *tls_ctx_build(const struct tls_bind_opts *o, const struct tls_secret *secret,
			      char *err, size_t errlen)
{
	struct tls_ctx *t;
	int rc = 0;

	ERR_clear_error();
	if (o->ncrt <= 0) {
		fail(err, errlen, "tls needs at least one crt FILE|DIR");
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		fail(err, errlen, "out of memory");
		return NULL;
	}
	t->magic = TLS_CTX_MAGIC;
	for (int i = 0; i < o->ncrt && rc == 0; i++)
		rc = load_crt(t, o->crt[i], err, errlen);
	if (rc == 0 && build_index(t) < 0)
		rc = fail(err, errlen, "out of memory");
	if (rc == 0 && o->nalpn > 0)
		rc = alpn_wire(o->alpn, o->nalpn, &t->alpn, &t->alpn_len, err, errlen);
	if (rc == 0 && !o->no_tickets)
		rc = setup_tickets(t, secret, err, errlen);
	if (rc == 0)
		rc = setup_client_ca(t, o, err, errlen);
	if (rc == 0 && !(t->ctxs = calloc((size_t)t->nctxs, sizeof(*t->ctxs))))
		rc = fail(err, errlen, "out of memory");
	for (int i = 0; i < t->nctxs && rc == 0; i++)
		rc = make_ctx(t, i, o, err, errlen);
	ERR_clear_error();
	if (rc != 0) {
		tls_ctx_free(t);
		return NULL;
	}
	return t;
}

SSL_CTX *tls_ctx_ssl_ctx(const struct tls_ctx *t)
{
	BUG_ON(t->magic != TLS_CTX_MAGIC);
	return t->ctxs[t->def];
}

int tls_ctx_foreach_cert(const struct tls_ctx *t, tls_cert_fn fn, void *arg)
{
	for (int i = 0; i < t->ncerts; i++) {
		const struct tls_cert *c = &t->certs[i];
		struct tls_cert_info info = {
			.file = c->file,
			.names = (const char *const *)c->names,
			.nnames = c->nnames,
			.not_after = c->not_after,
			.key_type = slot_names[c->slot],
			.is_default = false,
		};
		int rc;

		for (int s = 0; s < SLOT_N; s++)
			if (t->combos[t->def][s] == i)
				info.is_default = true;
		rc = fn(arg, &info);
		if (rc)
			return rc;
	}
	return 0;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	BUG_ON(t->magic != TLS_CTX_MAGIC);
	for (int i = 0; t->ctxs && i < t->nctxs; i++)
		SSL_CTX_free(t->ctxs[i]);
	for (int i = 0; i < t->ncerts; i++)
		cert_clear(&t->certs[i]);
	free(t->certs);
	free(t->ctxs);
	free(t->combos);
	free(t->exact);
	free(t->wild);
	free(t->alpn);
	EVP_CIPHER_free(t->cipher);
	X509_STORE_free(t->client_store);
	sk_X509_NAME_pop_free(t->client_names, X509_NAME_free);
	OPENSSL_cleanse(t->tk, sizeof(t->tk));
	t->magic = 0;
	free(t);
}

/* ---- client side --------------------------------------------------------- */

/*
 * The session a server gave the connection, for the next connection to the
 * same server to resume (RFC 8446 2.2, RFC 5077): held in the SSL's ex_data
 * by the new-session callback until the owner takes it
 * (tls_client_take_session()). TLS 1.3 sends tickets after the handshake,
 * so the callback runs inside a later SSL_read; keeping the session on the
 * SSL rather than in a cache of the context leaves the context immutable
 * and shared, and lets the owner keep its cache per thread.
 */
static int sess_idx = -1;
static pthread_once_t sess_once = PTHREAD_ONCE_INIT;

static void sess_slot_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	SSL_SESSION_free(ptr);
}

static void sess_index_init(void)
{
	sess_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, sess_slot_free);
}

/* A copy, not the session itself: sess stays the SSL's own, and OpenSSL
 * marks the SSL's session not resumable when the connection ends in an
 * error, which a server closing without close_notify is (many do, after
 * `Connection: close`): the copy keeps the ticket usable. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	SSL_SESSION *copy;

	if (sess_idx < 0 || !SSL_SESSION_is_resumable(sess) || !(copy = SSL_SESSION_dup(sess)))
		return 0;
	SSL_SESSION_free(SSL_get_ex_data(ssl, sess_idx));
	if (!SSL_set_ex_data(ssl, sess_idx, copy)) {
		SSL_SESSION_free(copy);
		return 0;
	}
	return 0; /* sess is not kept */
}

SSL_SESSION *tls_client_take_session(SSL *ssl)
{
	if (sess_idx < 0)
		return NULL;
	SSL_SESSION *s = SSL_get_ex_data(ssl, sess_idx);
	if (s)
		SSL_set_ex_data(ssl, sess_idx, NULL);
	return s;
}

/* Without `ca`, the system's trust store: OpenSSL's default file and
 * directory (on Debian /usr/lib/ssl/cert.pem and /usr/lib/ssl/certs, links
 * to /etc/ssl/certs, which ca-certificates fills). Neither present means
 * every certificate would be refused: say so at load rather than at the
 * first request. */
static int system_store(SSL_CTX *ctx, char *err, size_t errlen)
{
	const char *file = getenv(X509_get_default_cert_file_env());
	const char *dir = getenv(X509_get_default_cert_dir_env());

	if (!file)
		file = X509_get_default_cert_file();
	if (!dir)
		dir = X509_get_default_cert_dir();
	if (access(file, R_OK) != 0 && access(dir, R_OK) != 0)
		return fail(err, errlen, "verify required: no system trust store (%s, %s); "
			    "name the CAs with 'ca FILE', or write 'verify none'", file, dir);
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		return fail(err, errlen, "the system's trust store: %s", ossl_reason());
	return 0;
}

struct tls_client *tls_client_build(const struct tls_client_opts *o, char *err, size_t errlen)
{
	struct tls_client *c;
	uint8_t *alpn = NULL;
	size_t alpn_len = 0;
	int rc = 0;

	ERR_clear_error();
	pthread_once(&sess_once, sess_index_init);
	if (o->verify == TLS_VERIFY_OPTIONAL) {
		fail(err, errlen, "verify: none or required for a server");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->ctx = SSL_CTX_new(TLS_client_method())) || (o->sni && !(c->sni = strdup(o->sni)))) {
		tls_client_free(c);
		fail(err, errlen, "out of memory");
		return NULL;
	}
	c->verify = o->verify;
	rc = setup_common(c->ctx, o->min_version, err, errlen);
	/* sessions go to new_session(), never to a cache of the context (a
	 * lock every worker would share) */
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(c->ctx, new_session);
	if (rc == 0 && o->verify == TLS_VERIFY_REQUIRED) {
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
		if (o->ca_file) {
			FILE *f = fopen(o->ca_file, "re");

			if (!f)
				rc = fail(err, errlen, "%s: %s", o->ca_file, strerror(errno));
			else
				fclose(f);
			if (rc == 0 && SSL_CTX_load_verify_file(c->ctx, o->ca_file) != 1)
				rc = fail(err, errlen, "%s: no CA certificate in the file: %s", o->ca_file,
					  ossl_reason());
		} else {
			rc = system_store(c->ctx, err, errlen);
		}
	}
	if (rc == 0 && o->nalpn > 0 &&
	    (rc = alpn_wire(o->alpn, o->nalpn, &alpn, &alpn_len, err, errlen)) == 0 &&
	    SSL_CTX_set_alpn_protos(c->ctx, alpn, (unsigned int)alpn_len) != 0) /* 0 is success */
		rc = fail(err, errlen, "alpn: out of memory");
	free(alpn);
	ERR_clear_error();
	if (rc != 0) {
		tls_client_free(c);
		return NULL;
	}
	return c;
}

SSL *tls_client_ssl_new(const struct tls_client *c, const char *host)
{
	char ip[INET6_ADDRSTRLEN + 2];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t n = host ? strlen(host) : 0;
	const char *name;
	bool is_ip;
	SSL *ssl;

	if (n == 0 || n > HOSTNAME_MAX)
		return NULL;
	/* "[::1]" as well as "::1" */
	if (host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(ip)) {
		memcpy(ip, host + 1, n - 2);
		ip[n - 2] = '\0';
		host = ip;
	}
	is_ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
	/* RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in
	 * HostName" */
	name = c->sni ? c->sni : is_ip ? NULL : host;
	ssl = SSL_new(c->ctx);
	if (!ssl)
		return NULL;
	SSL_set_connect_state(ssl);
	if (name && SSL_set_tlsext_host_name(ssl, name) != 1)
		goto fail;
	if (c->verify == TLS_VERIFY_REQUIRED) {
		/* RFC 9525 6.3: a wildcard matches one whole left-most label */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (name ? SSL_set1_host(ssl, name) != 1
			 : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
			goto fail;
	}
	return ssl;
fail:
	SSL_free(ssl);
	ERR_clear_error();
	return NULL;
}

const char *tls_client_why(SSL *ssl, unsigned long code, char *buf, size_t n)
{
	long v = SSL_get_verify_result(ssl);

	if (code && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
		/* "certificate verify failed" alone does not say what to fix */
		snprintf(buf, n, "certificate verify failed: %s", X509_verify_cert_error_string(v));
	} else if (code) {
		const char *r = ERR_reason_error_string(code);
		if (r)
			snprintf(buf, n, "%s", r);
		else
			ERR_error_string_n(code, buf, n);
	} else {
		snprintf(buf, n, "connection closed by the server");
	}
	return buf;
}

void tls_client_free(struct tls_client *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	free(c->sni);
	free(c);
}
