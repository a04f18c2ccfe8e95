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
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
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

static int entries(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *e;
	int n = 0;

	assert_non_null(dp);
	while ((e = readdir(dp)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(dp);
	return n;
}

static struct seal_keys *load(bool create, char *err, size_t errlen)
{
	return seal_keys_load(path, create, NULL, err, errlen);
}

static void test_generate_and_reload(void **state)
{
	struct seal_keys *a, *b;
	char err[256] = "";
	bool created = false;
	struct stat st;

	(void)state;
	unlink(path);
	/* without create, a missing file is an error */
	assert_null(load(false, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));
	a = seal_keys_load(path, true, &created, err, sizeof(err));
	assert_non_null(a);
	assert_true(created);
	assert_int_equal(a->n, 1);

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* a second start reads the same key, does not make a new one */
	b = seal_keys_load(path, true, &created, err, sizeof(err));
	assert_non_null(b);
	assert_false(created);
	assert_int_equal(b->n, 1);
	assert_memory_equal(a->key[0], b->key[0], SEAL_KEY_LEN);
	assert_true(seal_keys_same(a, b));
	/* no temporary file left beside it */
	assert_int_equal(entries(dir), 1);
	seal_keys_hold(a);
	seal_keys_free(a);
	seal_keys_free(a);
	seal_keys_free(b);
}

/* Several instances starting at once with no key file: each reads the one
 * key the winner wrote, never a file still being written. */
struct racer {
	pthread_barrier_t *go;
	struct seal_keys *k;
	char err[256];
};

static void *race(void *p)
{
	struct racer *r = p;

	pthread_barrier_wait(r->go);
	r->k = seal_keys_load(path, true, NULL, r->err, sizeof(r->err));
	return NULL;
}

static void test_concurrent_create(void **state)
{
	enum { N = 8 };
	pthread_barrier_t go;
	struct racer rs[N];
	pthread_t th[N];

	(void)state;
	for (int round = 0; round < 20; round++) {
		unlink(path);
		pthread_barrier_init(&go, NULL, N);
		for (int i = 0; i < N; i++) {
			rs[i].go = &go;
			rs[i].k = NULL;
			assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
		}
		for (int i = 0; i < N; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		for (int i = 0; i < N; i++) {
			if (!rs[i].k)
				fail_msg("racer %d: %s", i, rs[i].err);
			assert_true(seal_keys_same(rs[0].k, rs[i].k));
		}
		for (int i = 0; i < N; i++)
			seal_keys_free(rs[i].k);
	}
}

static void test_two_keys(void **state)
{
	char err[256] = "", id[SEAL_ID_LEN + 1];
	uint8_t want0[SEAL_KEY_LEN], want1[SEAL_KEY_LEN];
	struct seal_keys *k;

	(void)state;
	write_file("# rotation\n"
		   "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\r\n"
		   "\n"
		   "  ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff  \n",
		   0600);
	k = load(false, err, sizeof(err));
	assert_non_null(k);
	assert_int_equal(k->n, 2);
	for (int i = 0; i < SEAL_KEY_LEN; i++) {
		want0[i] = (uint8_t)((i % 16) * 0x11);
		want1[i] = 0xff;
	}
	assert_memory_equal(k->key[0], want0, SEAL_KEY_LEN);
	assert_memory_equal(k->key[1], want1, SEAL_KEY_LEN);
	/* the public id: BLAKE2b-32 of the key, in hex */
	seal_key_id(k, 1, id);
	assert_int_equal(strlen(id), SEAL_ID_LEN);
	{
		uint8_t h[4];
		char want[9];

		crypto_generichash(h, 4, want1, SEAL_KEY_LEN, NULL, 0);
		sodium_bin2hex(want, sizeof(want), h, 4);
		assert_string_equal(id, want);
	}
	seal_keys_free(k);
}

static void test_bad_file(void **state)
{
	char err[256] = "", want[200];

	(void)state;
	write_file("# comment\n0011\n", 0600);
	assert_null(load(true, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: ", path);
	assert_true(strncmp(err, want, strlen(want)) == 0);

	write_file("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 0600);
	assert_null(load(true, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:1: ", path);
	assert_true(strncmp(err, want, strlen(want)) == 0);

	write_file("# only a comment\n", 0600);
	assert_null(load(true, err, sizeof(err)));
	assert_non_null(strstr(err, "no key"));
}

static void test_too_open(void **state)
{
	char err[256] = "", want[200];
	struct seal_keys *k;

	(void)state;
	write_file("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n", 0644);
	assert_null(load(false, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "secret-file %s is readable by others (mode 0644); chmod 600 it", path);
	assert_string_equal(err, want);

	assert_int_equal(chmod(path, 0640), 0);
	assert_null(load(false, err, sizeof(err)));
	assert_int_equal(chmod(path, 0400), 0);
	k = load(false, err, sizeof(err));
	assert_non_null(k);
	seal_keys_free(k);
}

static void test_missing_dir(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(seal_keys_load("/nonexistent-dir-bollard/k", true, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot create"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate_and_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
