/*
 * replay.c - a main() for gcc builds of the libFuzzer targets: calls
 * LLVMFuzzerTestOneInput() on every regular file found, recursively, in the
 * directories (or files) given as arguments. So the committed corpora and
 * tests/vectors/ run under ASan/UBSan in every `make test`, with no clang.
 * Exit 0 when every input ran (a crash aborts the process, which is the
 * failure), 1 when an argument cannot be read, 2 on usage.
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long nfiles;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;
	int rc = 0;

	if (!f) {
		perror(path);
		return 1;
	}
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		perror(path);
		return 1;
	}
	/* an exact-size heap copy, so ASan sees any read past the input */
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "%s: read error\n", path);
		rc = 1;
	} else {
		LLVMFuzzerTestOneInput(buf, (size_t)n);
		nfiles++;
	}
	free(buf);
	fclose(f);
	return rc;
}

static int run_path(const char *path, int depth)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (lstat(path, &st)) {
		perror(path);
		return 1;
	}
	if (S_ISREG(st.st_mode))
		return run_file(path);
	if (!S_ISDIR(st.st_mode) || depth > 32)
		return 0; /* symlinks, devices: skipped */
	d = opendir(path);
	if (!d) {
		perror(path);
		return 1;
	}
	while ((de = readdir(d))) {
		char *sub;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (asprintf(&sub, "%s/%s", path, de->d_name) < 0) {
			closedir(d);
			return 1;
		}
		rc |= run_path(sub, depth + 1);
		free(sub);
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		rc |= run_path(argv[i], 0);
	fprintf(stderr, "replayed %lu inputs\n", nfiles);
	return rc;
}
