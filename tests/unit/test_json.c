/*
 * test_json.c - the JSON writer: structure (commas, nesting), numbers, and
 * above all string escaping (RFC 8259 section 7) of hostile bytes: quotes,
 * backslashes, control characters and malformed UTF-8 must always give a
 * valid JSON string.
 */
#include "api.h"
#include "json.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>

static void esc_is(const char *in, size_t n, const char *want)
{
	char out[256];
	size_t need = json_escape(out, sizeof(out), in, n);

	assert_string_equal(out, want);
	assert_int_equal(need, strlen(want));
}

static void test_escape_basic(void **state)
{
	(void)state;
	esc_is("plain", 5, "plain");
	esc_is("a\"b\\c", 5, "a\\\"b\\\\c");
	esc_is("\n\r\t\b\f", 5, "\\n\\r\\t\\b\\f");
	esc_is("\x01\x1f\x7f", 3, "\\u0001\\u001f\\u007f");
	esc_is("a\0b", 3, "a\\u0000b");
	esc_is("/", 1, "/");
	esc_is("", 0, "");
}

static void test_escape_utf8(void **state)
{
	(void)state;
	/* well-formed sequences pass through */
	esc_is("caf\xc3\xa9", 5, "caf\xc3\xa9");
	esc_is("\xe2\x82\xac", 3, "\xe2\x82\xac");
	esc_is("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");
	/* RFC 3629: overlong, surrogate, > U+10FFFF, truncated, stray continuation */
	esc_is("\xc0\xaf", 2, "\\ufffd\\ufffd");
	esc_is("\xe0\x80\xaf", 3, "\\ufffd\\ufffd\\ufffd");
	esc_is("\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd");
	esc_is("\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd");
	esc_is("\xe2\x82", 2, "\\ufffd\\ufffd");
	esc_is("\x80x", 2, "\\ufffdx");
	esc_is("\xff", 1, "\\ufffd");
}

static void test_escape_truncation(void **state)
{
	char out[8];
	size_t need;

	(void)state;
	/* never cut an escape in half; still report the full length */
	need = json_escape(out, sizeof(out), "abcdef\"", 7);
	assert_int_equal(need, 8);
	assert_string_equal(out, "abcdef");
	need = json_escape(out, sizeof(out), "\x01", 1);
	assert_int_equal(need, 6);
	assert_string_equal(out, "\\u0001");
	need = json_escape(out, 1, "abc", 3);
	assert_int_equal(need, 3);
	assert_string_equal(out, "");
	assert_int_equal(json_escape(NULL, 0, "a\"", 2), 3);
}

static void test_structure(void **state)
{
	char buf[512];
	struct json j;

	(void)state;
	json_init(&j, buf, sizeof(buf));
	json_obj_open(&j);
	json_kv_str(&j, "version", "0.1.0");
	json_kv_u64(&j, "n", 18446744073709551615ull);
	json_kv_i64(&j, "neg", -5);
	json_key(&j, "list");
	json_arr_open(&j);
	json_obj_open(&j);
	json_kv_str(&j, "a", "x\"y");
	json_obj_close(&j);
	json_obj_open(&j);
	json_obj_close(&j);
	json_u64(&j, 3);
	json_bool(&j, true);
	json_bool(&j, false);
	json_null(&j);
	json_arr_close(&j);
	json_key(&j, "empty");
	json_arr_open(&j);
	json_arr_close(&j);
	json_obj_close(&j);
	assert_non_null(json_result(&j));
	assert_string_equal(json_result(&j),
		"{\"version\":\"0.1.0\",\"n\":18446744073709551615,\"neg\":-5,"
		"\"list\":[{\"a\":\"x\\\"y\"},{},3,true,false,null],\"empty\":[]}");
}

static void test_fixed_overflow(void **state)
{
	char buf[16];
	struct json j;

	(void)state;
	json_init(&j, buf, sizeof(buf));
	json_obj_open(&j);
	json_kv_str(&j, "key", "a long value that does not fit");
	json_obj_close(&j);
	assert_true(j.overflow);
	assert_null(json_result(&j));
	/* the buffer stays NUL-terminated inside its bounds */
	assert_true(strlen(buf) < sizeof(buf));

	/* exactly fitting: 15 chars + NUL */
	json_init(&j, buf, sizeof(buf));
	json_str(&j, "abcdefghijklm");
	assert_non_null(json_result(&j));
	assert_string_equal(buf, "\"abcdefghijklm\"");
	json_init(&j, buf, sizeof(buf));
	json_str(&j, "abcdefghijklmn");
	assert_null(json_result(&j));
}

static void test_heap_grows(void **state)
{
	struct json j;
	int i;

	(void)state;
	json_init_heap(&j);
	json_arr_open(&j);
	for (i = 0; i < 5000; i++)
		json_str(&j, "0123456789");
	json_arr_close(&j);
	assert_non_null(json_result(&j));
	assert_int_equal(strlen(json_result(&j)), 2 + 5000 * 12 + 4999);
	json_free(&j);
}

static void test_unbalanced(void **state)
{
	char buf[64];
	struct json j;

	(void)state;
	json_init(&j, buf, sizeof(buf));
	json_obj_close(&j);
	assert_null(json_result(&j));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_basic),
		cmocka_unit_test(test_escape_utf8),
		cmocka_unit_test(test_escape_truncation),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_fixed_overflow),
		cmocka_unit_test(test_heap_grows),
		cmocka_unit_test(test_unbalanced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
