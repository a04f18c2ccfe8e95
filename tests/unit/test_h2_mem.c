/*
 * test_h2_mem.c - the allocator libnghttp2 is given (src/h2_mem.c): freed
 * blocks come back from their size class, contents survive a realloc
 * across classes and to and from big blocks, and the free lists never
 * keep more than H2_MEM_CACHE bytes.
 */
#include "api.h"
#include "h2_mem.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static void test_freed_block_is_reused(void **st)
{
	struct h2_mem m = { 0 };
	void *a = h2_mem_malloc(&m, 100);   /* class 128 */
	assert_non_null(a);
	assert_int_equal((uintptr_t)a % _Alignof(max_align_t), 0);
	h2_mem_free(&m, a);
	assert_int_equal(m.cached, 128);
	void *b = h2_mem_malloc(&m, 120);   /* same class: the same block */
	assert_ptr_equal(a, b);
	assert_int_equal(m.cached, 0);
	void *c = h2_mem_malloc(&m, 20);    /* another class: malloc */
	assert_ptr_not_equal(c, b);
	assert_int_equal(m.fresh, 2);
	h2_mem_free(&m, b);
	h2_mem_free(&m, c);
	h2_mem_free(&m, NULL);
	h2_mem_free_all(&m);
	assert_int_equal(m.cached, 0);
}

static void test_calloc_zeroes_a_reused_block(void **st)
{
	struct h2_mem m = { 0 };
	unsigned char *a = h2_mem_malloc(&m, 64);
	memset(a, 0xab, 64);
	h2_mem_free(&m, a);
	unsigned char *b = h2_mem_calloc(&m, 8, 8);
	assert_ptr_equal(a, b);
	for (int i = 0; i < 64; i++)
		assert_int_equal(b[i], 0);
	assert_null(h2_mem_calloc(&m, SIZE_MAX / 2, 4));  /* overflow refused */
	h2_mem_free(&m, b);
	h2_mem_free_all(&m);
}

static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + 3);
}

static void check(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(p[i], (unsigned char)(i * 7 + 3));
}

static void test_realloc_keeps_contents(void **st)
{
	struct h2_mem m = { 0 };
	unsigned char *p = h2_mem_realloc(&m, NULL, 50);
	fill(p, 50);
	unsigned char *q = h2_mem_realloc(&m, p, 60);      /* same class: in place */
	assert_ptr_equal(p, q);
	q = h2_mem_realloc(&m, q, 1000);                   /* a bigger class */
	check(q, 50);
	fill(q, 1000);
	q = h2_mem_realloc(&m, q, 100000);                 /* big: past the classes */
	check(q, 1000);
	fill(q, 100000);
	q = h2_mem_realloc(&m, q, 200000);                 /* big to big */
	check(q, 100000);
	q = h2_mem_realloc(&m, q, 300);                    /* back into a class */
	check(q, 300);
	h2_mem_free(&m, q);
	h2_mem_free_all(&m);
}

static void test_cache_is_bounded(void **st)
{
	struct h2_mem m = { 0 };
	enum { N = (H2_MEM_CACHE / 16384) + 8 };
	static void *v[N];
	for (int i = 0; i < N; i++)
		v[i] = h2_mem_malloc(&m, 16384);
	for (int i = 0; i < N; i++)
		h2_mem_free(&m, v[i]);
	assert_true(m.cached <= H2_MEM_CACHE);
	assert_int_equal(m.cached, (size_t)(H2_MEM_CACHE / 16384) * 16384);
	/* big blocks are never cached */
	h2_mem_free(&m, h2_mem_malloc(&m, 20000));
	assert_int_equal(m.cached, (size_t)(H2_MEM_CACHE / 16384) * 16384);
	h2_mem_free_all(&m);
	assert_int_equal(m.cached, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_freed_block_is_reused),
		cmocka_unit_test(test_calloc_zeroes_a_reused_block),
		cmocka_unit_test(test_realloc_keeps_contents),
		cmocka_unit_test(test_cache_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
