/*
 * test_seal.c - the cookie key file: generated 0600 when absent, read back
 * identically, several keys for rotation, and refused when malformed or
 * readable by others (with a message that says what to do).
 */
#include "api.h"
#include "seal.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bollard-test-seal-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/bollard.key", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_file(const char *text, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_generate_and_reload(void **state)
{
	uint8_t first[SEAL_KEY_LEN];
	char err[256] = "";
	struct stat st;

	(void)state;
	unlink(path);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), 0);
	assert_int_equal(seal_nkeys(), 1);
	assert_non_null(seal_key(0));
	assert_null(seal_key(1));
	assert_null(seal_key(-1));
	memcpy(first, seal_key(0), SEAL_KEY_LEN);

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* a second start reads the same key, does not make a new one */
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), 0);
	assert_int_equal(seal_nkeys(), 1);
	assert_memory_equal(seal_key(0), first, SEAL_KEY_LEN);
}

static void test_two_keys(void **state)
{
	char err[256] = "";
	uint8_t want0[SEAL_KEY_LEN], want1[SEAL_KEY_LEN];

	(void)state;
	write_file("# rotation\n"
		   "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\r\n"
		   "\n"
		   "  ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff  \n",
		   0600);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), 0);
	assert_int_equal(seal_nkeys(), 2);
	for (int i = 0; i < SEAL_KEY_LEN; i++) {
		want0[i] = (uint8_t)((i % 16) * 0x11);
		want1[i] = 0xff;
	}
	assert_memory_equal(seal_key(0), want0, SEAL_KEY_LEN);
	assert_memory_equal(seal_key(1), want1, SEAL_KEY_LEN);
}

static void test_bad_file(void **state)
{
	char err[256] = "", want[200];

	(void)state;
	/* a valid load first: a failed one must keep these keys */
	write_file("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n", 0600);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), 0);
	assert_int_equal(seal_nkeys(), 1);

	write_file("# comment\n0011\n", 0600);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: ", path);
	assert_true(strncmp(err, want, strlen(want)) == 0);
	assert_int_equal(seal_nkeys(), 1);

	write_file("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 0600);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:1: ", path);
	assert_true(strncmp(err, want, strlen(want)) == 0);

	write_file("# only a comment\n", 0600);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no key"));
}

static void test_too_open(void **state)
{
	char err[256] = "", want[200];

	(void)state;
	write_file("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n", 0644);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want),
		 "secret-file %s is readable by others (mode 0644); chmod 600 it", path);
	assert_string_equal(err, want);

	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), -1);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(seal_key_load_or_create(path, err, sizeof(err)), 0);
}

static void test_missing_dir(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(seal_key_load_or_create("/nonexistent-dir-bollard/k", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot create"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate_and_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
