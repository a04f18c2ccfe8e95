/*
 * tls_ctx.h - the OpenSSL contexts of TLS binds and TLS servers, built at
 * configuration time (SPEC §11, doc/tls.md): certificates and their keys
 * loaded and checked, certificate selection by SNI, session tickets keyed
 * from secret-file, ALPN, protocol versions and ciphers. No I/O on
 * connections here: the TLS transport makes SSL objects from the SSL_CTX
 * these functions return and drives them in the event loop.
 *
 * Everything here is configuration-time: calloc'd, built on one thread,
 * then only read (concurrently, by every worker) until freed with the
 * configuration generation that owns it.
 */
#ifndef BOLLARD_TLS_CTX_H
#define BOLLARD_TLS_CTX_H

#include "api.h"
#include <openssl/ssl.h>

/* Bytes of one secret-file key, the input of the ticket key derivation
 * (the same keys as seal.h: SEAL_KEY_LEN). */
#define TLS_SECRET_LEN  32
/* Keys kept for decrypting tickets: the current one and older ones. */
#define TLS_MAX_SECRETS 8
/* Longest protocol name in an ALPN list (RFC 7301 3.1: 1..255 bytes). */
#define TLS_ALPN_NAME_MAX 255

/* client-ca ... verify / server ... tls verify */
enum tls_verify { TLS_VERIFY_NONE, TLS_VERIFY_OPTIONAL, TLS_VERIFY_REQUIRED };

/*
 * The options of one `bind ADDR tls ...` line, as the configuration parser
 * fills them. Strings and arrays belong to the caller and need only live
 * until tls_ctx_build() returns.
 */
struct tls_bind_opts {
	/* `crt`: each a PEM file holding certificate, chain and key, or
	 * NAME.pem whose key is in NAME.key, or a directory of such files.
	 * The first certificate loaded is the default (SNI absent or
	 * unknown). At least one. */
	const char *const *crt;
	int ncrt;
	/* `alpn h2,http/1.1`: protocols in server preference order; none =
	 * no ALPN in the handshake */
	const char *const *alpn;
	int nalpn;
	int min_version;          /* TLS1_2_VERSION or TLS1_3_VERSION; 0 = 1.2 */
	const char *ciphers;      /* TLS 1.2 cipher list; NULL = OpenSSL's default */
	const char *ciphersuites; /* TLS 1.3 suites; NULL = OpenSSL's default */
	const char *client_ca;    /* CA file for client certificates; NULL = none */
	enum tls_verify verify;   /* client certificates; not NONE needs client_ca */
	bool no_tickets;          /* `tls-tickets off`: no session resumption at all */
};

/*
 * The secret-file keys that session ticket keys derive from (seal.h's
 * keys, in the same order): key[0] encrypts new tickets, every key
 * decrypts, so rotating the file (new key first, old one kept below)
 * keeps sessions resumable. The bytes are read during tls_ctx_build()
 * only; nothing keeps a pointer to them.
 */
struct tls_secret {
	const uint8_t *key[TLS_MAX_SECRETS]; /* each TLS_SECRET_LEN bytes */
	int nkeys;
};

/* The contexts of one TLS bind: opaque. */
struct tls_ctx;

/*
 * Builds the contexts of one bind from opts. secret NULL (or with no key)
 * means a random ticket key of this context only: sessions resume within
 * it, but not on another process or after a reload.
 * Returns the object (the caller owns it; tls_ctx_free()), or NULL with
 * err[0..errlen) saying which file or option and why ("/etc/c/a.pem:
 * private key does not match the certificate"); the caller adds FILE:LINE
 * of the configuration. Leaves OpenSSL's error queue of this thread empty.
 */
struct tls_ctx *tls_ctx_build(const struct tls_bind_opts *opts, const struct tls_secret *secret,
			      char *err, size_t errlen);

/*
 * The SSL_CTX a new server-side SSL is made from (SSL_new()); its
 * servername callback moves the SSL to the context of the certificate
 * the client's SNI names. Owned by t.
 * t must outlive every SSL made from it: its callbacks read t.
 */
SSL_CTX *tls_ctx_ssl_ctx(const struct tls_ctx *t);

/* One loaded certificate, as tls_ctx_foreach_cert() reports it. */
struct tls_cert_info {
	const char *file;             /* the file the certificate came from */
	const char *const *names;     /* SAN DNS names, or the CN when there is no SAN */
	int nnames;
	int64_t not_after;            /* seconds since the epoch (UTC) */
	const char *key_type;         /* "RSA", "RSA-PSS", "ECDSA", "Ed25519", "Ed448" */
	bool is_default;              /* served when SNI is absent or unknown */
};

/* Callback of tls_ctx_foreach_cert(); a non-zero return stops the walk. */
typedef int (*tls_cert_fn)(void *arg, const struct tls_cert_info *info);

/*
 * Calls fn for every certificate of t, in loading order (for the metric
 * bollard_tls_cert_expiry_seconds and `bollard check`'s expiry warning:
 * the caller compares not_after with its own clock). The info and its
 * strings are t's, valid while t is. Returns fn's first non-zero value, or 0.
 */
int tls_ctx_foreach_cert(const struct tls_ctx *t, tls_cert_fn fn, void *arg);

void tls_ctx_free(struct tls_ctx *t);

/*
 * "1.2" -> TLS1_2_VERSION, "1.3" -> TLS1_3_VERSION, anything else 0 (older
 * versions are not offered: RFC 8996 deprecates TLS 1.0 and 1.1).
 */
int tls_version_parse(const char *text);

/* ---- client side: `server NAME ADDR tls ...` --------------------------- */

struct tls_client_opts {
	enum tls_verify verify;       /* NONE or REQUIRED (OPTIONAL is refused) */
	const char *ca_file;          /* NULL = the system's trust store (an error when
				       * there is none) */
	const char *sni;              /* NULL = the server's address when it is a name */
	const char *const *alpn;      /* offered protocols, in preference order */
	int nalpn;
	int min_version;              /* as in tls_bind_opts */
};

/* The client context of one server: opaque. */
struct tls_client;

/*
 * Builds the client context of a server. Returns it (the caller owns it;
 * tls_client_free()), or NULL with err[0..errlen) saying why.
 */
struct tls_client *tls_client_build(const struct tls_client_opts *opts, char *err, size_t errlen);

/*
 * A new client-side SSL for a connection to host (the server's address
 * without port: an IP address or a name). Sends SNI (the configured sni,
 * else host when it is a name: RFC 6066 3 forbids addresses) and, with
 * verify required, checks the certificate against the configured sni,
 * else host (an IP address against the certificate's IP entries).
 * Returns the SSL (the caller owns it; no BIO or fd attached yet) or NULL
 * when out of memory or host is malformed.
 */
SSL *tls_client_ssl_new(const struct tls_client *c, const char *host);

/*
 * The session the server handed ssl (a TLS 1.3 ticket, which may come with
 * any SSL_read after the handshake, or a TLS 1.2 session), for a later
 * connection to the same server to resume with SSL_set_session(); NULL if
 * none came since the last call. The caller owns the reference.
 */
SSL_SESSION *tls_client_take_session(SSL *ssl);

/*
 * Why a client handshake on ssl failed, in words an operator can act on,
 * written to buf[0..n) and returned: code is the OpenSSL error seen
 * (ERR_peek_error(); 0 when the connection just ended). A refused
 * certificate says what was wrong with it ("certificate verify failed:
 * certificate has expired", "...: hostname mismatch").
 */
const char *tls_client_why(SSL *ssl, unsigned long code, char *buf, size_t n);

void tls_client_free(struct tls_client *c);

#endif
