/*
 * alloccount.c - an LD_PRELOAD allocator shim for the "no heap allocation
 * per request" proof (issue 6): it counts every malloc, calloc, realloc,
 * aligned allocation and free of the process, and writes the counts to the
 * file named by $ALLOC_COUNT_FILE when the process gets SIGUSR2. The test
 * reads the counts before and after thousands of requests.
 *
 * It forwards to glibc's __libc_* entry points, so it adds no allocator of
 * its own. The handler uses only async-signal-safe calls (open, write,
 * close) and formats numbers by hand.
 *
 * Allocations whose caller is libcrypto (OpenSSL allocates through
 * CRYPTO_malloc there, for libssl too) are also counted apart, so that a
 * TLS test can tell bollard's allocations from OpenSSL's own; so are
 * libnghttp2's, for the HTTP/2 test. The bytes the live blocks hold
 * (malloc_usable_size) are kept too, for the idle-memory tests: what a
 * connection holds while it waits, which RSS shows only through glibc's
 * free lists.
 */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t a, size_t n);
extern void __libc_free(void *p);

static _Atomic uint64_t n_alloc, n_free, n_ossl, n_ngh2;
static _Atomic int64_t n_bytes; /* held by live blocks */
/* libcrypto's and libnghttp2's code, found once at load (constructors run
 * after the libraries the program needs are mapped) */
static uintptr_t ossl_lo, ossl_hi, ngh2_lo, ngh2_hi;

static void count(const void *caller)
{
	atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
	if ((uintptr_t)caller >= ossl_lo && (uintptr_t)caller < ossl_hi)
		atomic_fetch_add_explicit(&n_ossl, 1, memory_order_relaxed);
	else if ((uintptr_t)caller >= ngh2_lo && (uintptr_t)caller < ngh2_hi)
		atomic_fetch_add_explicit(&n_ngh2, 1, memory_order_relaxed);
}

static void *held(void *p)
{
	if (p)
		atomic_fetch_add_explicit(&n_bytes, (int64_t)malloc_usable_size(p),
					  memory_order_relaxed);
	return p;
}

static void unheld(void *p)
{
	if (p)
		atomic_fetch_sub_explicit(&n_bytes, (int64_t)malloc_usable_size(p),
					  memory_order_relaxed);
}

void *malloc(size_t n)
{
	count(__builtin_return_address(0));
	return held(__libc_malloc(n));
}

void *calloc(size_t n, size_t m)
{
	count(__builtin_return_address(0));
	return held(__libc_calloc(n, m));
}

void *realloc(void *p, size_t n)
{
	count(__builtin_return_address(0));
	/* the old block's size, read before realloc may free it; a failed
	 * realloc leaves it held */
	size_t was = p ? malloc_usable_size(p) : 0;
	void *q = __libc_realloc(p, n);
	if (q || !n) {
		atomic_fetch_sub_explicit(&n_bytes, (int64_t)was, memory_order_relaxed);
		held(q);
	}
	return q;
}

int posix_memalign(void **out, size_t a, size_t n)
{
	atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
	void *p = __libc_memalign(a, n);
	if (!p)
		return 12; /* ENOMEM */
	*out = held(p);
	return 0;
}

void *aligned_alloc(size_t a, size_t n)
{
	atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
	return held(__libc_memalign(a, n));
}

void free(void *p)
{
	if (p)
		atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
	unheld(p);
	__libc_free(p);
}

static char *put_u64(char *o, uint64_t v)
{
	char tmp[24];
	int i = 0;
	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		*o++ = tmp[--i];
	return o;
}

static void dump(int sig)
{
	(void)sig;
	const char *path = getenv("ALLOC_COUNT_FILE");
	if (!path)
		return;
	char line[128], *o = line;
	memcpy(o, "allocs ", 7);
	o = put_u64(o + 7, atomic_load(&n_alloc));
	memcpy(o, " frees ", 7);
	o = put_u64(o + 7, atomic_load(&n_free));
	memcpy(o, " openssl ", 9);
	o = put_u64(o + 9, atomic_load(&n_ossl));
	memcpy(o, " nghttp2 ", 9);
	o = put_u64(o + 9, atomic_load(&n_ngh2));
	int64_t b = atomic_load(&n_bytes);
	memcpy(o, " bytes ", 7);
	o = put_u64(o + 7, b > 0 ? (uint64_t)b : 0);
	*o++ = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		ssize_t w = write(fd, line, (size_t)(o - line));
		(void)w;
		close(fd);
	}
}

static int find_libs(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	uintptr_t *lo, *hi;
	if (info->dlpi_name && strstr(info->dlpi_name, "libcrypto.so"))
		lo = &ossl_lo, hi = &ossl_hi;
	else if (info->dlpi_name && strstr(info->dlpi_name, "libnghttp2.so"))
		lo = &ngh2_lo, hi = &ngh2_hi;
	else
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			*lo = info->dlpi_addr + ph->p_vaddr;
			*hi = *lo + ph->p_memsz;
		}
	}
	return 0;
}

__attribute__((constructor)) static void init(void)
{
	dl_iterate_phdr(find_libs, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = dump;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);
}
