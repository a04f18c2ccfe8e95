"""The tests' own port picker (util.free_port): a test that picks several
ports before it starts anything must never get one port twice, or it starts
two servers on it (a fresh-clone run lost test_demo_script.py to that: two
of the demo's apps were given one port)."""

import socket

import util


def test_free_port_never_gives_a_port_twice():
	# the kernel hands out a just-closed port again often enough that 2000
	# picks in a row repeat one almost surely without the picker's memory
	got = [util.free_port() for _ in range(2000)]
	assert len(set(got)) == len(got)
	# and each is free: it can be bound
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	try:
		s.bind(("127.0.0.1", got[-1]))
	finally:
		s.close()
