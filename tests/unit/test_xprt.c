/*
 * test_xprt.c - the plain TCP transport (xprt_tcp.c) over a socketpair:
 * the readiness it decides (a short read or write uses it up, a reported
 * FIN keeps reading to EOF, epoll events give it back), xconn_read() into
 * a pooled buffer, the end of the stream, xconn_writev() skipping empty
 * entries, the half-close, and established() on a connected socket.
 */
#include "api.h"
#include "xprt.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

struct pair {
	struct xconn x; /* the end under test */
	int peer;
	struct buf_pool pool;
	struct buf b;
};

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	xconn_init(&p->x, sv[0], &xprt_tcp);
	p->peer = sv[1];
	buf_pool_init(&p->pool, 64);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;
	buf_put(&p->pool, &p->b);
	buf_pool_destroy(&p->pool);
	xconn_close(&p->x);
	assert_int_equal(p->x.fd, -1);
	if (p->peer >= 0)
		close(p->peer);
	free(p);
	return 0;
}

static void test_read_uses_readiness(void **state)
{
	struct pair *p = *state;
	/* no readiness reported yet: nothing is read, and no syscall says so */
	assert_int_equal(xconn_read(&p->x, &p->b, &p->pool), 0);
	assert_int_equal(write(p->peer, "hello", 5), 5);
	xconn_events(&p->x, EPOLLIN);
	assert_true(p->x.can_read);
	assert_int_equal(xconn_read(&p->x, &p->b, &p->pool), 5);
	assert_memory_equal(buf_rptr(&p->b), "hello", 5);
	/* a short read drained the socket: the next edge gives it back */
	assert_false(p->x.can_read);
	assert_int_equal(xconn_read(&p->x, &p->b, &p->pool), 0);
	/* readiness reported but nothing there (EAGAIN): used up, not an error */
	xconn_events(&p->x, EPOLLIN);
	assert_int_equal(xconn_read(&p->x, &p->b, &p->pool), 0);
	assert_false(p->x.can_read);
	assert_false(p->x.eof);
}

static void test_fin_reads_to_eof(void **state)
{
	struct pair *p = *state;
	assert_int_equal(write(p->peer, "bye", 3), 3);
	shutdown(p->peer, SHUT_WR);
	xconn_events(&p->x, EPOLLIN | EPOLLRDHUP);
	assert_true(p->x.rdhup);
	assert_int_equal(xconn_read(&p->x, &p->b, &p->pool), 3);
	/* no edge will come for the FIN: reading goes on to EOF */
	assert_true(p->x.can_read);
	assert_int_equal(xconn_read(&p->x, &p->b, &p->pool), -1);
	assert_true(p->x.eof);
	assert_int_equal(xconn_read(&p->x, &p->b, &p->pool), -1);
}

static void test_writev_and_shutw(void **state)
{
	struct pair *p = *state;
	struct iovec iov[3] = { { NULL, 0 }, { "ab", 2 }, { "cd", 2 } };
	/* not writable yet: nothing sent */
	assert_int_equal(xconn_writev(&p->x, iov, 3), 0);
	xconn_events(&p->x, EPOLLOUT);
	assert_int_equal(xconn_writev(&p->x, iov, 3), 4);
	assert_true(p->x.can_write);
	char got[8];
	assert_int_equal(read(p->peer, got, sizeof(got)), 4);
	assert_memory_equal(got, "abcd", 4);
	/* only empty entries: nothing to send is no progress, not an error */
	assert_int_equal(xconn_writev(&p->x, iov, 1), 0);
	xconn_shutw(&p->x);
	assert_int_equal(read(p->peer, got, sizeof(got)), 0); /* the peer sees EOF */
}

static void test_writev_fills_the_socket(void **state)
{
	struct pair *p = *state;
	static char big[1 << 16];
	struct iovec iov = { big, sizeof(big) };
	xconn_events(&p->x, EPOLLOUT);
	ssize_t total = 0, n;
	for (int i = 0; i < 1000 && (n = xconn_writev(&p->x, &iov, 1)) > 0; i++)
		total += n;
	assert_true(total > 0);
	/* a short write (or EAGAIN) used the readiness up */
	assert_false(p->x.can_write);
	assert_int_equal(xconn_writev(&p->x, &iov, 1), 0);
	/* a dead peer is an error once readiness says so */
	close(p->peer);
	p->peer = -1;
	xconn_events(&p->x, EPOLLOUT | EPOLLHUP);
	assert_true(p->x.can_write && p->x.can_read && p->x.rdhup);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(xconn_writev(&p->x, &iov, 1), -1);
}

static void test_established(void **state)
{
	struct pair *p = *state;
	/* connected, but not known writable yet: not yet */
	assert_int_equal(xconn_established(&p->x), 0);
	xconn_events(&p->x, EPOLLOUT);
	assert_int_equal(xconn_established(&p->x), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_uses_readiness, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fin_reads_to_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writev_and_shutw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writev_fills_the_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_established, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
