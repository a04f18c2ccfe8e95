/*
 * bench_h1.c - throughput of the request/response head parser on a few
 * realistic heads (not part of `make test`: timings are for humans).
 * Build and run from the repository root:
 *   cc -O2 -std=gnu11 -D_GNU_SOURCE -Isrc -o build/bench_h1 \
 *      tests/unit/bench_h1.c src/h1.c && build/bench_h1 [seconds]
 * Prints parses per second and MB/s of head bytes per case.
 */
#include <time.h>

#include "api.h"
#include "h1.h"

static const char *const reqs[] = {
	/* curl */
	"GET /api/v1/items?id=42 HTTP/1.1\r\n"
	"Host: app.example.com\r\n"
	"User-Agent: curl/8.5.0\r\n"
	"Accept: */*\r\n"
	"\r\n",
	/* browser with cookies */
	"GET /shop/cart HTTP/1.1\r\n"
	"Host: www.example.com\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
	"Accept-Language: en-US,en;q=0.5\r\n"
	"Accept-Encoding: gzip, deflate, br\r\n"
	"Referer: https://www.example.com/shop\r\n"
	"Connection: keep-alive\r\n"
	"Cookie: BOLLARD=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOp; JSESSIONID=8F3A2B1C9D7E6F5A4B3C2D1E0F9A8B7C; _ga=GA1.2.123456789.1700000000\r\n"
	"Upgrade-Insecure-Requests: 1\r\n"
	"Sec-Fetch-Dest: document\r\n"
	"Sec-Fetch-Mode: navigate\r\n"
	"Sec-Fetch-Site: same-origin\r\n"
	"Cache-Control: max-age=0\r\n"
	"\r\n",
	/* wrk default */
	"GET / HTTP/1.1\r\n"
	"Host: 127.0.0.1:8080\r\n"
	"\r\n",
};

static const char *const resps[] = {
	"HTTP/1.1 200 OK\r\n"
	"Server: bollard-demo-app\r\n"
	"Date: Fri, 27 Nov 2026 18:00:00 GMT\r\n"
	"Content-Type: text/html; charset=utf-8\r\n"
	"Content-Length: 1234\r\n"
	"Set-Cookie: DEMOSESSID=0123456789abcdef; Path=/; HttpOnly\r\n"
	"Cache-Control: private\r\n"
	"\r\n",
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(const char *label, const char *s, bool is_req, double secs)
{
	struct h1_hdr hdrs[64];
	struct h1_msg m = { .hdrs = hdrs, .hdrs_cap = 64 };
	size_t len = strlen(s);
	unsigned long n = 0;
	volatile int sink = 0;
	double t0 = now(), t;

	do {
		for (int i = 0; i < 10000; i++) {
			int r = is_req ? h1_parse_request(s, len, &m, NULL) :
				h1_parse_response(s, len, &m, NULL, H1_M_GET);
			if (r != (int)len) {
				fprintf(stderr, "%s: parse failed (%d %s)\n", label, r,
					m.reason ? m.reason : "");
				exit(1);
			}
			sink += r;
		}
		n += 10000;
		t = now() - t0;
	} while (t < secs);
	printf("%-10s %5zu bytes %3u fields  %10.0f parses/s  %8.1f MB/s\n", label,
	       len, m.nhdrs, (double)n / t, (double)n * (double)len / t / 1e6);
	(void)sink;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	static const char *const names[] = { "curl", "browser", "wrk" };

	for (size_t i = 0; i < ARRAY_SIZE(reqs); i++)
		run(names[i], reqs[i], true, secs);
	run("response", resps[0], false, secs);
	return 0;
}
