/*
 * test_tls_ctx.c - the TLS contexts of binds and servers, through real
 * handshakes in memory (a client and a server SSL over a BIO pair: no
 * socket, no network). Certificates are made at test time by a test CA in
 * a temporary directory, with validity windows relative to the time they
 * are made: RSA and ECDSA P-256 leaves, a wildcard, an expired one, a
 * mismatched key, a directory of several, and files that must be refused.
 *
 * Checked: build errors name the file and the reason; SNI picks the exact
 * name, then the wildcard, then the default, and RSA or ECDSA by the
 * client's signature algorithms; ALPN; session tickets from one context
 * resume on another built independently from the same secret, not from
 * another secret, and through a key rotation; expiry and names reported;
 * the client context verifies the chain and the host name.
 */
#include "api.h"
#include "tls_ctx.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

enum {
	SER_CA = 1, SER_RSA_A = 101, SER_EC_A, SER_WILD, SER_EXACT_W, SER_B, SER_CN, SER_CNSAN,
	SER_EXPIRED, SER_D1, SER_D2, SER_D3, SER_D4, SER_D5, SER_D6, SER_SRV, SER_IP, SER_SELF, SER_SRV_EXPIRED, SER_CLIENT,
	SER_CLIENT_SELF, SER_OTHER,
};

#define DAY 86400L

static char dir[64];
static time_t now0;                 /* when the certificates were made */
static EVP_PKEY *ca_key, *rsa_key, *ec_key, *ec_key2, *weak_key;
static X509 *ca_cert, *client_cert, *client_self;
static SSL_CTX *cctx;               /* plain test client, verifies nothing */
/* expected notAfter of rsa_a.pem and expired.pem (seconds since the epoch) */
static time_t rsa_a_not_after, expired_not_after;

static const uint8_t S1[TLS_SECRET_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
					    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const uint8_t S2[TLS_SECRET_LEN] = { 0xa5, 0x5a, 0xa5, 0x5a, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
					    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7 };

/* a few paths in flight at once: a ring of buffers */
static const char *P(const char *name)
{
	static char ring[16][160];
	static int next;
	char *b = ring[next++ % 16];

	snprintf(b, sizeof(ring[0]), "%s/%s", dir, name);
	return b;
}

/* ---- making certificates ----------------------------------------------- */

static X509 *make_cert(EVP_PKEY *key, long serial, const char *cn, const char *san,
		       time_t not_before, time_t not_after, X509 *issuer, EVP_PKEY *issuer_key,
		       bool ca)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), not_before));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), not_after));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	if (cn)
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					   (const unsigned char *)cn, -1, -1, 0);
	else
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC,
					   (const unsigned char *)"bollard test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	if (san) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static X509 *leaf(EVP_PKEY *key, long serial, const char *cn, const char *san)
{
	return make_cert(key, serial, cn, san, now0 - DAY, now0 + 90 * DAY, ca_cert, ca_key, false);
}

static void write_pem(const char *path, X509 *x, X509 *chain, EVP_PKEY *key, bool encrypt)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	if (x)
		assert_int_equal(PEM_write_X509(f, x), 1);
	if (chain)
		assert_int_equal(PEM_write_X509(f, chain), 1);
	if (key)
		assert_int_equal(PEM_write_PrivateKey(f, key, encrypt ? EVP_aes_256_cbc() : NULL,
						      encrypt ? (unsigned char *)"secret" : NULL,
						      encrypt ? 6 : 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* a leaf with its key (and the CA as chain) in one file */
static void write_leaf(const char *name, EVP_PKEY *key, long serial, const char *cn, const char *san)
{
	X509 *x = leaf(key, serial, cn, san);

	write_pem(P(name), x, ca_cert, key, false);
	X509_free(x);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	X509 *x;
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/bollard-test-tls-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	now0 = time(NULL);
	ca_key = EVP_EC_gen("P-256");
	rsa_key = EVP_RSA_gen(2048);
	ec_key = EVP_EC_gen("P-256");
	ec_key2 = EVP_EC_gen("P-256");
	/* below every security level's minimum: OpenSSL refuses to serve it */
	weak_key = EVP_RSA_gen(512);
	if (!ca_key || !rsa_key || !ec_key || !ec_key2 || !weak_key)
		return -1;
	ca_cert = make_cert(ca_key, SER_CA, "bollard test CA", NULL, now0 - DAY, now0 + 365 * DAY,
			    NULL, NULL, true);
	write_pem(P("ca.pem"), ca_cert, NULL, NULL, false);

	rsa_a_not_after = now0 + 90 * DAY;
	write_leaf("rsa_a.pem", rsa_key, SER_RSA_A, "a.example", "DNS:a.example,DNS:alt.example");
	write_leaf("ec_a.pem", ec_key, SER_EC_A, "a.example", "DNS:A.Example");
	write_leaf("wild.pem", ec_key, SER_WILD, NULL, "DNS:*.w.example");
	write_leaf("exact_w.pem", ec_key, SER_EXACT_W, NULL, "DNS:exact.w.example");
	/* NAME.pem + NAME.key */
	x = leaf(ec_key2, SER_B, NULL, "DNS:b.example");
	write_pem(P("b.pem"), x, NULL, NULL, false);
	write_pem(P("b.key"), NULL, NULL, ec_key2, false);
	X509_free(x);
	write_leaf("cn.pem", ec_key, SER_CN, "cn.example", NULL);
	write_leaf("cnsan.pem", ec_key, SER_CNSAN, "cnsan.example", "DNS:san.example");
	expired_not_after = now0 - DAY;
	x = make_cert(ec_key, SER_EXPIRED, NULL, "DNS:expired.example", now0 - 10 * DAY,
		      expired_not_after, ca_cert, ca_key, false);
	write_pem(P("expired.pem"), x, NULL, ec_key, false);
	X509_free(x);

	/* refused */
	x = leaf(ec_key, SER_OTHER, NULL, "DNS:bad.example");
	write_pem(P("mismatch.pem"), x, NULL, ec_key2, false);
	write_pem(P("mismatch2.pem"), x, NULL, NULL, false);
	write_pem(P("mismatch2.key"), NULL, NULL, ec_key2, false);
	write_pem(P("nokey.pem"), x, NULL, NULL, false);
	write_pem(P("keyonly.pem"), NULL, NULL, ec_key, false);
	write_pem(P("enc.pem"), x, NULL, ec_key, true);
	f = fopen(P("der.crt"), "w");
	assert_non_null(f);
	assert_int_equal(i2d_X509_fp(f, x), 1);
	fclose(f);
	X509_free(x);
	write_text(P("garbage.pem"), "hello, this is not a certificate\n");
	write_text(P("corrupt.pem"), "-----BEGIN CERTIFICATE-----\nMIIB!!!!not*base64\n"
				     "-----END CERTIFICATE-----\n");
	x = leaf(weak_key, SER_OTHER, NULL, "DNS:weak.example");
	write_pem(P("weak.pem"), x, NULL, weak_key, false);
	X509_free(x);

	/* a directory of several, with files that are not certificates */
	/* made in the reverse of name order, and several, so that a listing
	 * in creation or hash order would not pass for one sorted by name */
	mkdir(P("certs"), 0700);
	for (int i = 6; i >= 3; i--) {
		char name[32], san[32];

		snprintf(name, sizeof(name), "certs/d%d.pem", i);
		snprintf(san, sizeof(san), "DNS:d%d.example", i);
		write_leaf(name, ec_key, SER_D3 + i - 3, NULL, san);
	}
	x = leaf(ec_key2, SER_D2, NULL, "DNS:d2.example");
	write_pem(P("certs/d2.crt"), x, NULL, NULL, false);
	write_pem(P("certs/d2.key"), NULL, NULL, ec_key2, false);
	X509_free(x);
	write_leaf("certs/d1.pem", ec_key, SER_D1, NULL, "DNS:d1.example");
	write_text(P("certs/README.txt"), "not a certificate\n");
	write_text(P("certs/.hidden.pem"), "not a certificate either\n");
	mkdir(P("empty"), 0700);
	write_text(P("empty/README.txt"), "nothing here\n");
	mkdir(P("baddir"), 0700);
	write_leaf("baddir/a.pem", ec_key, SER_D1, NULL, "DNS:d1.example");
	write_text(P("baddir/z.pem"), "broken\n");

	/* servers, for the client side */
	write_leaf("srv.pem", ec_key, SER_SRV, NULL, "DNS:srv.example,DNS:*.wild.example");
	write_leaf("ip.pem", ec_key, SER_IP, NULL, "IP:127.0.0.1");
	x = make_cert(ec_key, SER_SELF, NULL, "DNS:srv.example", now0 - DAY, now0 + 90 * DAY,
		      NULL, NULL, false);
	write_pem(P("self.pem"), x, NULL, ec_key, false);
	X509_free(x);
	x = make_cert(ec_key, SER_SRV_EXPIRED, NULL, "DNS:srv.example", now0 - 10 * DAY,
		      now0 - DAY, ca_cert, ca_key, false);
	write_pem(P("srv_expired.pem"), x, NULL, ec_key, false);
	X509_free(x);

	/* client certificates */
	client_cert = leaf(ec_key2, SER_CLIENT, "client", NULL);
	client_self = make_cert(ec_key2, SER_CLIENT_SELF, "client", NULL, now0 - DAY,
				now0 + 90 * DAY, NULL, NULL, false);

	cctx = SSL_CTX_new(TLS_client_method());
	if (!cctx)
		return -1;
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	return 0;
}

static int teardown(void **state)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	SSL_CTX_free(cctx);
	X509_free(ca_cert);
	X509_free(client_cert);
	X509_free(client_self);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(ec_key2);
	EVP_PKEY_free(weak_key);
	return 0;
}

/* ---- handshakes in memory ------------------------------------------------ */

struct hs_opts {
	const char *sni;
	const char *sigalgs;   /* the client's signature_algorithms */
	const char *alpn;      /* the client's ALPN list, wire format */
	SSL_SESSION *sess;     /* to resume */
	int max_version;
	X509 *cert;            /* client certificate (key ec_key2) */
};

struct conn {
	SSL *c, *s;
	bool ok;
};

static bool want(SSL *ssl, int rc)
{
	int e = SSL_get_error(ssl, rc);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Runs both ends of the handshake until both finish or one fails; for
 * TLS 1.3 the client then reads the NewSessionTicket messages. */
static bool pump(SSL *c, SSL *s)
{
	for (int i = 0; i < 64; i++) {
		int rc = SSL_do_handshake(c);
		int rs = SSL_do_handshake(s);

		if (rc == 1 && rs == 1) {
			char b;

			if (SSL_read(c, &b, 1) > 0 || !want(c, -1))
				return false;
			return true;
		}
		if ((rc != 1 && !want(c, rc)) || (rs != 1 && !want(s, rs)))
			return false;
	}
	return false;
}

/* A handshake between client (NULL: one from cctx) and a server SSL of
 * sctx. The caller frees the result with conn_close(). */
static struct conn hs(SSL_CTX *sctx, SSL *client, const struct hs_opts *o)
{
	struct conn x = { client ? client : SSL_new(cctx), SSL_new(sctx), false };
	BIO *bc, *bs;

	assert_non_null(x.c);
	assert_non_null(x.s);
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(x.c, bc, bc);
	SSL_set_bio(x.s, bs, bs);
	SSL_set_connect_state(x.c);
	SSL_set_accept_state(x.s);
	if (o->sni)
		assert_int_equal(SSL_set_tlsext_host_name(x.c, o->sni), 1);
	if (o->sigalgs)
		assert_int_equal(SSL_set1_sigalgs_list(x.c, o->sigalgs), 1);
	if (o->alpn)
		assert_int_equal(SSL_set_alpn_protos(x.c, (const unsigned char *)o->alpn,
						     (unsigned int)strlen(o->alpn)), 0);
	if (o->sess)
		assert_int_equal(SSL_set_session(x.c, o->sess), 1);
	if (o->max_version)
		assert_int_equal(SSL_set_max_proto_version(x.c, o->max_version), 1);
	if (o->cert) {
		assert_int_equal(SSL_use_certificate(x.c, o->cert), 1);
		assert_int_equal(SSL_use_PrivateKey(x.c, ec_key2), 1);
	}
	x.ok = pump(x.c, x.s);
	return x;
}

#define HS(sctx, ...) hs((sctx), NULL, &(struct hs_opts){ __VA_ARGS__ })

/* with close_notify: OpenSSL takes the session of a connection closed
 * without it as bad, and will not offer it again */
static void conn_close(struct conn *x)
{
	if (x->ok) {
		SSL_shutdown(x->c);
		SSL_shutdown(x->s);
	}
	SSL_free(x->c);
	SSL_free(x->s);
	ERR_clear_error();
}

static long peer_serial(const struct conn *x)
{
	X509 *p = SSL_get0_peer_certificate(x->c);

	return p ? ASN1_INTEGER_get(X509_get_serialNumber(p)) : -1;
}

/* the serial of the certificate served for sni with these sigalgs */
static long served(struct tls_ctx *t, const char *sni, const char *sigalgs, int max_version)
{
	struct conn x = HS(tls_ctx_ssl_ctx(t), .sni = sni, .sigalgs = sigalgs,
			   .max_version = max_version);
	long serial = x.ok ? peer_serial(&x) : -1;

	conn_close(&x);
	return serial;
}

static struct tls_ctx *build(const struct tls_bind_opts *o, const struct tls_secret *s)
{
	char err[512] = "";
	struct tls_ctx *t = tls_ctx_build(o, s, err, sizeof(err));

	if (!t)
		fprintf(stderr, "build failed: %s\n", err);
	assert_non_null(t);
	assert_int_equal(ERR_peek_error(), 0);
	return t;
}

/* the message of a build that must fail */
static const char *build_err(const struct tls_bind_opts *o)
{
	static char err[512];
	struct tls_ctx *t;

	err[0] = '\0';
	t = tls_ctx_build(o, NULL, err, sizeof(err));
	assert_null(t);
	assert_int_equal(ERR_peek_error(), 0);
	return err;
}

static const char *crt_err(const char *path)
{
	const char *crt[] = { path };

	return build_err(&(struct tls_bind_opts){ .crt = crt, .ncrt = 1 });
}

#define assert_contains(hay, needle)                                                      \
	do {                                                                              \
		const char *h_ = (hay);                                                   \
		if (!strstr(h_, (needle)))                                                \
			fail_msg("'%s' does not contain '%s'", h_, (needle));             \
	} while (0)

/* the bind of most tests: RSA and ECDSA for a.example, a wildcard, an
 * exact name under the wildcard loaded after it, a NAME.pem + NAME.key,
 * CN-only and CN+SAN certificates, an expired one */
static const char *main_crt[] = { NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL };

static struct tls_bind_opts main_opts(void)
{
	static const char *const names[] = { "rsa_a.pem", "ec_a.pem", "wild.pem", "exact_w.pem",
					     "b.pem", "cn.pem", "cnsan.pem", "expired.pem" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		static char paths[ARRAY_SIZE(names)][160];

		snprintf(paths[i], sizeof(paths[i]), "%s/%s", dir, names[i]);
		main_crt[i] = paths[i];
	}
	return (struct tls_bind_opts){ .crt = main_crt, .ncrt = (int)ARRAY_SIZE(names) };
}

/* ---- tests ---------------------------------------------------------------- */

static void test_build_errors(void **state)
{
	const char *ok[1];
	const char *alpn_empty[] = { "" };
	/* the message names the file at fault (the key file, the file of
	 * the directory) and says why */
	static const struct { const char *crt, *why, *at; } bad[] = {
		{ "missing.pem", "No such file or directory", NULL },
		{ "garbage.pem", "not a PEM file", NULL },
		{ "der.crt", "not a PEM file", NULL },
		{ "keyonly.pem", "no certificate in the file", NULL },
		{ "corrupt.pem", "unreadable certificate", NULL },
		{ "nokey.pem", "no private key in the file, nor a ", "nokey.key" },
		{ "mismatch.pem", ": the private key does not match the certificate", NULL },
		{ "mismatch2.pem", "does not match the certificate", "mismatch2.key" },
		{ "enc.pem", "encrypted", NULL },
		{ "weak.pem", "cannot serve this certificate", NULL },
		{ "empty", "no certificate in the directory", NULL },
		{ "baddir", "not a PEM file", "baddir/z.pem" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *e = crt_err(P(bad[i].crt));

		assert_contains(e, P(bad[i].at ? bad[i].at : bad[i].crt));
		assert_contains(e, bad[i].why);
	}
	/* P()'s buffers are reused: take this one after the loop */
	ok[0] = P("ec_a.pem");
	assert_contains(build_err(&(struct tls_bind_opts){ .ncrt = 0 }), "at least one crt");
	assert_contains(build_err(&(struct tls_bind_opts){ .crt = ok, .ncrt = 1,
							    .verify = TLS_VERIFY_REQUIRED }),
			"needs client-ca");
	assert_contains(build_err(&(struct tls_bind_opts){ .crt = ok, .ncrt = 1,
							    .client_ca = P("nope.pem"),
							    .verify = TLS_VERIFY_OPTIONAL }),
			P("nope.pem"));
	assert_contains(build_err(&(struct tls_bind_opts){ .crt = ok, .ncrt = 1,
							    .client_ca = P("garbage.pem"),
							    .verify = TLS_VERIFY_REQUIRED }),
			"no CA certificate");
	assert_contains(build_err(&(struct tls_bind_opts){ .crt = ok, .ncrt = 1, .ciphers = "NOPE" }),
			"ciphers 'NOPE'");
	assert_contains(build_err(&(struct tls_bind_opts){ .crt = ok, .ncrt = 1,
							    .ciphersuites = "TLS_NOPE" }),
			"ciphersuites 'TLS_NOPE'");
	assert_contains(build_err(&(struct tls_bind_opts){ .crt = ok, .ncrt = 1,
							    .alpn = alpn_empty, .nalpn = 1 }),
			"alpn");
	assert_contains(build_err(&(struct tls_bind_opts){ .crt = ok, .ncrt = 1,
							    .min_version = TLS1_1_VERSION }),
			"min-version");
	assert_int_equal(tls_version_parse("1.2"), TLS1_2_VERSION);
	assert_int_equal(tls_version_parse("1.3"), TLS1_3_VERSION);
	assert_int_equal(tls_version_parse("1.1"), 0);
	assert_int_equal(tls_version_parse("tls1.3"), 0);
}

#define ECDSA13 "ECDSA+SHA256"
#define RSA13   "rsa_pss_rsae_sha256"
#define RSA12   "RSA+SHA256"

static void test_sni(void **state)
{
	struct tls_bind_opts o = main_opts();
	struct tls_ctx *t = build(&o, NULL);
	static const int versions[] = { TLS1_3_VERSION, TLS1_2_VERSION };

	for (size_t v = 0; v < ARRAY_SIZE(versions); v++) {
		int mv = versions[v];
		const char *rsa = mv == TLS1_3_VERSION ? RSA13 : RSA12;

		/* RSA and ECDSA for one name: the client's sigalgs pick */
		assert_int_equal(served(t, "a.example", ECDSA13, mv), SER_EC_A);
		assert_int_equal(served(t, "a.example", rsa, mv), SER_RSA_A);
		assert_int_equal(served(t, "A.EXAMPLE", ECDSA13, mv), SER_EC_A);
		/* a name only the RSA certificate has */
		assert_int_equal(served(t, "alt.example", NULL, mv), SER_RSA_A);
		/* exact beats wildcard, even loaded after it */
		assert_int_equal(served(t, "exact.w.example", NULL, mv), SER_EXACT_W);
		assert_int_equal(served(t, "x.w.example", NULL, mv), SER_WILD);
		/* a wildcard covers one label, not zero nor two */
		assert_int_equal(served(t, "w.example", ECDSA13, mv), SER_EC_A);
		assert_int_equal(served(t, "a.b.w.example", ECDSA13, mv), SER_EC_A);
		/* key in NAME.key; a trailing dot tolerated */
		assert_int_equal(served(t, "b.example", NULL, mv), SER_B);
		assert_int_equal(served(t, "b.example.", NULL, mv), SER_B);
		/* the CN counts only without SAN DNS names */
		assert_int_equal(served(t, "cn.example", NULL, mv), SER_CN);
		assert_int_equal(served(t, "san.example", NULL, mv), SER_CNSAN);
		assert_int_equal(served(t, "cnsan.example", ECDSA13, mv), SER_EC_A);
		/* an expired certificate is still served (check warns) */
		assert_int_equal(served(t, "expired.example", NULL, mv), SER_EXPIRED);
		/* unknown name and no SNI: the default, RSA or ECDSA */
		assert_int_equal(served(t, "unknown.example", rsa, mv), SER_RSA_A);
		assert_int_equal(served(t, "unknown.example", ECDSA13, mv), SER_EC_A);
		assert_int_equal(served(t, NULL, rsa, mv), SER_RSA_A);
		assert_int_equal(served(t, NULL, ECDSA13, mv), SER_EC_A);
	}

	/* the chain in the file is sent */
	{
		struct conn x = HS(tls_ctx_ssl_ctx(t), .sni = "alt.example");

		assert_true(x.ok);
		assert_int_equal(sk_X509_num(SSL_get_peer_cert_chain(x.c)), 2);
		conn_close(&x);
	}
	tls_ctx_free(t);
}

static int collect(void *arg, const struct tls_cert_info *info)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 4096 - n, "%s %s%s", strrchr(info->file, '/') + 1, info->key_type,
		 info->is_default ? " default" : "");
	for (int i = 0; i < info->nnames; i++) {
		n = strlen(out);
		snprintf(out + n, 4096 - n, " %s", info->names[i]);
	}
	n = strlen(out);
	snprintf(out + n, 4096 - n, ";");
	return 0;
}

static int find_expired(void *arg, const struct tls_cert_info *info)
{
	int64_t *out = arg;

	if (info->nnames == 1 && !strcmp(info->names[0], "expired.example")) {
		*out = info->not_after;
		return 7;
	}
	if (!strcmp(strrchr(info->file, '/'), "/rsa_a.pem"))
		out[1] = info->not_after;
	return 0;
}

static void test_directory_and_expiry(void **state)
{
	const char *crt[] = { P("certs") };
	struct tls_bind_opts o = { .crt = crt, .ncrt = 1 };
	struct tls_ctx *t = build(&o, NULL);
	char list[4096] = "";
	int64_t na[2] = { 0, 0 };

	/* name order, not the directory's: d1 is the default */
	assert_int_equal(tls_ctx_foreach_cert(t, collect, list), 0);
	assert_string_equal(list, "d1.pem ECDSA default d1.example;d2.crt ECDSA d2.example;"
				  "d3.pem ECDSA d3.example;d4.pem ECDSA d4.example;"
				  "d5.pem ECDSA d5.example;d6.pem ECDSA d6.example;");
	assert_int_equal(served(t, "d2.example", NULL, 0), SER_D2);
	assert_int_equal(served(t, "d5.example", NULL, 0), SER_D5);
	assert_int_equal(served(t, "d1.example", NULL, 0), SER_D1);
	assert_int_equal(served(t, NULL, NULL, 0), SER_D1);
	tls_ctx_free(t);

	o = main_opts();
	t = build(&o, NULL);
	list[0] = '\0';
	assert_int_equal(tls_ctx_foreach_cert(t, collect, list), 0);
	assert_string_equal(list, "rsa_a.pem RSA default a.example alt.example;"
				  "ec_a.pem ECDSA default a.example;"
				  "wild.pem ECDSA *.w.example;"
				  "exact_w.pem ECDSA exact.w.example;"
				  "b.pem ECDSA b.example;"
				  "cn.pem ECDSA cn.example;"
				  "cnsan.pem ECDSA san.example;"
				  "expired.pem ECDSA expired.example;");
	/* the walk stops at the first non-zero return and passes it on */
	assert_int_equal(tls_ctx_foreach_cert(t, find_expired, na), 7);
	assert_int_equal(na[0], (int64_t)expired_not_after);
	assert_true(na[0] < (int64_t)time(NULL));
	assert_int_equal(na[1], (int64_t)rsa_a_not_after);
	tls_ctx_free(t);
}

/* The protocol ALPN selects when the client offers alpn (wire format, NULL
 * for none): "" for none, "FAILED" when the handshake fails. */
static const char *alpn_of(struct tls_ctx *t, const char *alpn)
{
	static char out[64];
	struct conn x = HS(tls_ctx_ssl_ctx(t), .alpn = alpn);
	const unsigned char *p;
	unsigned int plen = 0;

	snprintf(out, sizeof(out), "FAILED");
	if (x.ok) {
		SSL_get0_alpn_selected(x.c, &p, &plen);
		snprintf(out, sizeof(out), "%.*s", (int)plen, plen ? (const char *)p : "");
	}
	conn_close(&x);
	return out;
}

static void test_alpn_versions_ciphers(void **state)
{
	const char *crt[] = { P("ec_a.pem") };
	const char *alpn[] = { "h2", "http/1.1" };
	struct tls_bind_opts o = { .crt = crt, .ncrt = 1, .alpn = alpn, .nalpn = 2 };
	struct tls_ctx *t = build(&o, NULL);
	struct conn x;

	/* server preference: h2 although the client lists it second */
	assert_string_equal(alpn_of(t, "\x08http/1.1\x02h2"), "h2");
	assert_string_equal(alpn_of(t, "\x08http/1.1"), "http/1.1");
	/* RFC 7301 3.2: nothing in common is a fatal alert */
	assert_string_equal(alpn_of(t, "\x06spdy/3"), "FAILED");
	/* a client without ALPN gets none */
	assert_string_equal(alpn_of(t, NULL), "");
	/* no ALPN, no renegotiation, no compression on the context */
	assert_true(SSL_CTX_get_options(tls_ctx_ssl_ctx(t)) & SSL_OP_NO_COMPRESSION);
	assert_true(SSL_CTX_get_options(tls_ctx_ssl_ctx(t)) & SSL_OP_NO_RENEGOTIATION);
	tls_ctx_free(t);

	/* a bind without alpn answers none */
	o = (struct tls_bind_opts){ .crt = crt, .ncrt = 1 };
	t = build(&o, NULL);
	assert_string_equal(alpn_of(t, "\x02h2"), "");
	x = HS(tls_ctx_ssl_ctx(t));
	assert_true(x.ok);
	assert_int_equal(SSL_version(x.c), TLS1_3_VERSION);
	conn_close(&x);
	/* the default minimum is TLS 1.2 */
	x = HS(tls_ctx_ssl_ctx(t), .max_version = TLS1_2_VERSION);
	assert_true(x.ok);
	assert_int_equal(SSL_version(x.c), TLS1_2_VERSION);
	conn_close(&x);
	tls_ctx_free(t);

	/* min-version 1.3 refuses a TLS 1.2 client */
	o.min_version = TLS1_3_VERSION;
	t = build(&o, NULL);
	x = HS(tls_ctx_ssl_ctx(t), .max_version = TLS1_2_VERSION);
	assert_false(x.ok);
	conn_close(&x);
	x = HS(tls_ctx_ssl_ctx(t));
	assert_true(x.ok);
	conn_close(&x);
	tls_ctx_free(t);

	/* ciphers (TLS 1.2) and ciphersuites (TLS 1.3) are what is negotiated */
	o = (struct tls_bind_opts){ .crt = crt, .ncrt = 1,
				    .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305",
				    .ciphersuites = "TLS_CHACHA20_POLY1305_SHA256" };
	t = build(&o, NULL);
	x = HS(tls_ctx_ssl_ctx(t));
	assert_true(x.ok);
	assert_string_equal(SSL_get_cipher_name(x.c), "TLS_CHACHA20_POLY1305_SHA256");
	conn_close(&x);
	x = HS(tls_ctx_ssl_ctx(t), .max_version = TLS1_2_VERSION);
	assert_true(x.ok);
	assert_string_equal(SSL_get_cipher_name(x.c), "ECDHE-ECDSA-CHACHA20-POLY1305");
	conn_close(&x);
	tls_ctx_free(t);
}

static void test_renegotiation_refused(void **state)
{
	const char *crt[] = { P("ec_a.pem") };
	struct tls_bind_opts o = { .crt = crt, .ncrt = 1 };
	struct tls_ctx *t = build(&o, NULL);
	struct conn x = HS(tls_ctx_ssl_ctx(t), .max_version = TLS1_2_VERSION);
	bool refused = false;
	char b;

	assert_true(x.ok);
	assert_int_equal(SSL_renegotiate(x.c), 1);
	for (int i = 0; i < 16; i++) {
		int rc = SSL_do_handshake(x.c);

		if (rc != 1 && !want(x.c, rc)) {
			refused = true;
			break;
		}
		/* the server handles the new ClientHello when it reads */
		rc = SSL_read(x.s, &b, 1);
		assert_true(rc < 0 && want(x.s, rc));
	}
	/* the server answered no_renegotiation, which ends the client's
	 * attempt (OpenSSL 3 servers refuse client-initiated renegotiation by
	 * default already; SSL_OP_NO_RENEGOTIATION, checked with the other
	 * options, refuses it in every direction) */
	assert_true(refused);
	assert_int_equal(ERR_GET_REASON(ERR_peek_error()), SSL_R_NO_RENEGOTIATION);
	x.ok = false; /* no close_notify on a failed connection */
	conn_close(&x);
	tls_ctx_free(t);
}

/* the session a first connection to sctx leaves the client */
static SSL_SESSION *first_session(SSL_CTX *sctx, const char *sni, int max_version)
{
	struct conn x = HS(sctx, .sni = sni, .max_version = max_version);
	SSL_SESSION *s;

	assert_true(x.ok);
	assert_false(SSL_session_reused(x.c));
	s = SSL_get1_session(x.c);
	assert_non_null(s);
	conn_close(&x);
	return s;
}

/* 1 when sess resumes on sctx; *next gets the session after it */
static int resumes(SSL_CTX *sctx, SSL_SESSION *sess, const char *sni, int max_version,
		   SSL_SESSION **next)
{
	struct conn x = HS(sctx, .sni = sni, .max_version = max_version, .sess = sess);
	int r;

	assert_true(x.ok);
	r = SSL_session_reused(x.c);
	assert_int_equal(SSL_session_reused(x.s), r);
	if (next)
		*next = SSL_get1_session(x.c);
	conn_close(&x);
	return r;
}

static void test_tickets(void **state)
{
	struct tls_bind_opts o = main_opts();
	struct tls_secret s1 = { { S1 }, 1 }, s2 = { { S2 }, 1 }, rotated = { { S2, S1 }, 2 };
	static const int versions[] = { TLS1_3_VERSION, TLS1_2_VERSION };

	for (size_t v = 0; v < ARRAY_SIZE(versions); v++) {
		int mv = versions[v];
		/* built independently, as two processes would */
		struct tls_ctx *a = build(&o, &s1), *b = build(&o, &s1);
		struct tls_ctx *other = build(&o, &s2), *rot = build(&o, &rotated), *new = build(&o, &s2);
		SSL_SESSION *sess = first_session(tls_ctx_ssl_ctx(a), "a.example", mv);
		SSL_SESSION *sb = first_session(tls_ctx_ssl_ctx(a), "b.example", mv);
		SSL_SESSION *renewed = NULL;

		assert_int_equal(resumes(tls_ctx_ssl_ctx(a), sess, "a.example", mv, NULL), 1);
		assert_int_equal(resumes(tls_ctx_ssl_ctx(b), sess, "a.example", mv, NULL), 1);
		/* a session on a certificate that is not the default */
		assert_int_equal(resumes(tls_ctx_ssl_ctx(b), sb, "b.example", mv, NULL), 1);
		assert_int_equal(resumes(tls_ctx_ssl_ctx(other), sess, "a.example", mv, NULL), 0);
		/* rotation: the old key still decrypts; the ticket that comes
		 * back is under the new key */
		assert_int_equal(resumes(tls_ctx_ssl_ctx(rot), sess, "a.example", mv, &renewed), 1);
		assert_non_null(renewed);
		assert_int_equal(resumes(tls_ctx_ssl_ctx(new), renewed, "a.example", mv, NULL), 1);
		assert_int_equal(resumes(tls_ctx_ssl_ctx(a), renewed, "a.example", mv, NULL), 0);
		SSL_SESSION_free(sess);
		SSL_SESSION_free(sb);
		SSL_SESSION_free(renewed);
		tls_ctx_free(a);
		tls_ctx_free(b);
		tls_ctx_free(other);
		tls_ctx_free(rot);
		tls_ctx_free(new);
	}
}

/* Does a session made on a context built from (o1, k1) resume on another
 * built independently from (o2, k2)? o2 NULL: on the same context. */
static int resumes_across(const struct tls_bind_opts *o1, const struct tls_secret *k1,
			  const struct tls_bind_opts *o2, const struct tls_secret *k2, int mv)
{
	struct tls_ctx *a = build(o1, k1), *b = o2 ? build(o2, k2) : a;
	SSL_SESSION *sess = first_session(tls_ctx_ssl_ctx(a), "a.example", mv);
	int r = resumes(tls_ctx_ssl_ctx(b), sess, "a.example", mv, NULL);

	SSL_SESSION_free(sess);
	if (b != a)
		tls_ctx_free(b);
	tls_ctx_free(a);
	return r;
}

static void test_tickets_off_and_random(void **state)
{
	struct tls_secret s1 = { { S1 }, 1 };
	static const int versions[] = { TLS1_3_VERSION, TLS1_2_VERSION };
	const char *ca = P("ca.pem");

	for (size_t v = 0; v < ARRAY_SIZE(versions); v++) {
		int mv = versions[v];
		struct tls_bind_opts plain = main_opts(), off = plain, none_ca = plain, optional;

		off.no_tickets = true;
		assert_int_equal(resumes_across(&off, &s1, NULL, NULL, mv), 0);
		assert_int_equal(resumes_across(&off, &s1, &off, &s1, mv), 0);

		/* no secret: a random key, resumption within the context only */
		assert_int_equal(resumes_across(&plain, NULL, NULL, NULL, mv), 1);
		assert_int_equal(resumes_across(&plain, NULL, &plain, NULL, mv), 0);

		/* same secret, another client verification policy: no
		 * resumption (a session without a client certificate must not
		 * pass where one is asked for), also when only the verify
		 * mode differs */
		none_ca.client_ca = ca;
		optional = none_ca;
		optional.verify = TLS_VERIFY_OPTIONAL;
		assert_int_equal(resumes_across(&plain, &s1, &optional, &s1, mv), 0);
		assert_int_equal(resumes_across(&none_ca, &s1, &none_ca, &s1, mv), 1);
		assert_int_equal(resumes_across(&none_ca, &s1, &optional, &s1, mv), 0);
	}
}

static void test_client_certificates(void **state)
{
	const char *crt[] = { P("ec_a.pem") };
	struct tls_bind_opts o = { .crt = crt, .ncrt = 1, .client_ca = P("ca.pem"),
				   .verify = TLS_VERIFY_REQUIRED };
	struct tls_ctx *t = build(&o, NULL);
	struct conn x;

	x = HS(tls_ctx_ssl_ctx(t));
	assert_false(x.ok);
	conn_close(&x);
	x = HS(tls_ctx_ssl_ctx(t), .cert = client_self);
	assert_false(x.ok);
	conn_close(&x);
	x = HS(tls_ctx_ssl_ctx(t), .cert = client_cert);
	assert_true(x.ok);
	assert_non_null(SSL_get0_peer_certificate(x.s));
	assert_int_equal(SSL_get_verify_result(x.s), X509_V_OK);
	conn_close(&x);
	tls_ctx_free(t);

	o.verify = TLS_VERIFY_OPTIONAL;
	t = build(&o, NULL);
	x = HS(tls_ctx_ssl_ctx(t));
	assert_true(x.ok);
	assert_null(SSL_get0_peer_certificate(x.s));
	conn_close(&x);
	x = HS(tls_ctx_ssl_ctx(t), .cert = client_cert);
	assert_true(x.ok);
	assert_non_null(SSL_get0_peer_certificate(x.s));
	conn_close(&x);
	/* optional is not "anything": a certificate given must verify */
	x = HS(tls_ctx_ssl_ctx(t), .cert = client_self);
	assert_false(x.ok);
	conn_close(&x);
	tls_ctx_free(t);
}

/* ---- client side ------------------------------------------------------------ */

struct client_result {
	bool ok;
	long verify;        /* SSL_get_verify_result of the client */
	char sni[64];       /* what the server saw, "" for none */
};

static struct client_result to_server(const char *srv_file, const struct tls_client_opts *co,
				      const char *host)
{
	const char *crt[] = { P(srv_file) };
	const char *alpn[] = { "h2", "http/1.1" };
	struct tls_bind_opts so = { .crt = crt, .ncrt = 1, .alpn = alpn, .nalpn = 2 };
	struct tls_ctx *t = build(&so, NULL);
	char err[256] = "";
	struct tls_client *c = tls_client_build(co, err, sizeof(err));
	struct client_result r = { 0 };
	const char *sn;
	struct conn x;
	SSL *ssl;

	if (!c)
		fail_msg("client build failed: %s", err);
	ssl = tls_client_ssl_new(c, host);
	assert_non_null(ssl);
	x = hs(tls_ctx_ssl_ctx(t), ssl, &(struct hs_opts){ 0 });
	r.ok = x.ok;
	r.verify = SSL_get_verify_result(x.c);
	sn = SSL_get_servername(x.s, TLSEXT_NAMETYPE_host_name);
	snprintf(r.sni, sizeof(r.sni), "%s", sn ? sn : "");
	if (x.ok && co->nalpn) {
		const unsigned char *p;
		unsigned int plen;

		SSL_get0_alpn_selected(x.c, &p, &plen);
		assert_int_equal(plen, strlen(co->alpn[0]));
		assert_memory_equal(p, co->alpn[0], plen);
	}
	conn_close(&x);
	tls_client_free(c);
	tls_ctx_free(t);
	return r;
}

/* the verify error of a connection the client must refuse */
static long refused(const char *srv_file, const struct tls_client_opts *co, const char *host)
{
	struct client_result r = to_server(srv_file, co, host);

	assert_false(r.ok);
	return r.verify;
}

static void test_client(void **state)
{
	const char *alpn[] = { "http/1.1" };
	struct tls_client_opts req = { .verify = TLS_VERIFY_REQUIRED, .ca_file = P("ca.pem") };
	struct tls_client_opts req_sni = req, none = { .verify = TLS_VERIFY_NONE };
	struct tls_client_opts system = { .verify = TLS_VERIFY_REQUIRED };
	struct client_result r;
	char err[256] = "";

	r = to_server("srv.pem", &req, "srv.example");
	assert_true(r.ok);
	assert_int_equal(r.verify, X509_V_OK);
	assert_string_equal(r.sni, "srv.example");
	r = to_server("srv.pem", &req, "x.wild.example");
	assert_true(r.ok);
	assert_int_equal(refused("srv.pem", &req, "a.b.wild.example"), X509_V_ERR_HOSTNAME_MISMATCH);
	assert_int_equal(refused("srv.pem", &req, "other.example"), X509_V_ERR_HOSTNAME_MISMATCH);
	/* sni names the host to check and to send, whatever the address */
	req_sni.sni = "srv.example";
	req_sni.alpn = alpn;
	req_sni.nalpn = 1;
	r = to_server("srv.pem", &req_sni, "127.0.0.2");
	assert_true(r.ok);
	assert_string_equal(r.sni, "srv.example");
	/* an address: no SNI (RFC 6066 3), checked against IP entries */
	r = to_server("ip.pem", &req, "127.0.0.1");
	assert_true(r.ok);
	assert_string_equal(r.sni, "");
	assert_int_equal(refused("ip.pem", &req, "127.0.0.2"), X509_V_ERR_IP_ADDRESS_MISMATCH);
	assert_int_equal(refused("srv_expired.pem", &req, "srv.example"), X509_V_ERR_CERT_HAS_EXPIRED);
	assert_int_equal(refused("self.pem", &req, "srv.example"), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
	/* the system's store does not know the test CA (which the server
	 * sends as its chain) */
	assert_int_equal(refused("srv.pem", &system, "srv.example"), X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
	/* verify none takes anything */
	r = to_server("self.pem", &none, "whatever.example");
	assert_true(r.ok);

	assert_null(tls_client_build(&(struct tls_client_opts){ .verify = TLS_VERIFY_REQUIRED,
								.ca_file = P("nope.pem") },
				     err, sizeof(err)));
	assert_contains(err, P("nope.pem"));
	assert_contains(err, "No such file");
	assert_null(tls_client_build(&(struct tls_client_opts){ .verify = TLS_VERIFY_REQUIRED,
								.ca_file = P("garbage.pem") },
				     err, sizeof(err)));
	assert_contains(err, "no CA certificate");
	assert_null(tls_client_build(&(struct tls_client_opts){ .verify = TLS_VERIFY_OPTIONAL },
				     err, sizeof(err)));
	assert_contains(err, "none or required");
	assert_int_equal(ERR_peek_error(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_sni),
		cmocka_unit_test(test_directory_and_expiry),
		cmocka_unit_test(test_alpn_versions_ciphers),
		cmocka_unit_test(test_renegotiation_refused),
		cmocka_unit_test(test_tickets),
		cmocka_unit_test(test_tickets_off_and_random),
		cmocka_unit_test(test_client_certificates),
		cmocka_unit_test(test_client),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
