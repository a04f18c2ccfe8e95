"""Hostile and odd Redis behaviour under shared tables (SPEC 13, issue 13
item 4, doc/scale-out.md section 6), through real processes: error replies
(WRONGTYPE, OOM, NOAUTH, READONLY, LOADING, maxclients), values bollard did
not write, clients killed, paused and put to sleep by an operator. Each
costs no request, no request waits longer than `timeout` plus a margin, the
fault is counted with its own result label, said once per transition in
the log, and the link recovers once Redis does.

Load is made of local misses (test_shared_tables_faults.Load): every
request asks Redis, the path a fault can hurt.
"""

import re
import signal
import socket
import threading
import time

import pytest

import helpers_threads
import util
from helpers_redis import Redis, _encode, _Reader
from test_shared_tables import SECRET, fleet, get, metric, ops, redis  # noqa: F401
from test_shared_tables_faults import Load, MARGIN_S, TIMEOUT_MS, links_up
from test_key_rotation import answered_by_a_running_worker

KEY = "t:be/learn/DEMOSESSID:"
PERSIST = "persist learn DEMOSESSID"


class Conn:
	"""One connection to Redis kept open: CLIENT KILL skips it (SKIPME),
	maxclients does not count it out."""

	def __init__(self, redis):
		self.s = socket.create_connection(("127.0.0.1", redis.port), timeout=10)
		self.rd = _Reader(self.s)

	def cmd(self, *args):
		self.s.sendall(_encode(args))
		return self.rd.reply()

	def close(self):
		self.s.close()


def shared_log(b):
	"""The error log's shared-tables lines, so far."""
	text = b.stderr_text() + "\n".join(b.log_lines())
	return [ln for ln in text.splitlines() if "shared-tables:" in ln]


def all_ops(bs, op, result):
	return sum(ops(b, op, result) for b in bs)


def learned(b, redis):
	"""A new session learned on b, once Redis holds its binding: (sid, server)."""
	srv, r = get(b, "/?format=json")
	sid = r.json()["session"]
	util.wait_until(lambda: redis.get(KEY + sid) is not None, what="the binding written behind")
	return sid, srv


def timed_get(b, sid):
	t0 = time.monotonic()
	r = util.request(b.port, "GET", "/whoami", [("Cookie", "DEMOSESSID=" + sid)])
	dt = time.monotonic() - t0
	assert r.status == 200, r
	assert dt < TIMEOUT_MS / 1000 + MARGIN_S, dt
	return r.headers.get("X-Server")


# ------------------------------------------------------------ what a key holds

def test_wrongtype_at_a_bollard_key_is_an_error_not_a_failure(fleet, redis):
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	sid, home = learned(bs[0], redis)
	redis.cmd("DEL", KEY + sid)
	redis.cmd("HSET", KEY + sid, "f", "v")
	err = ops(bs[1], "get", "error")
	timed_get(bs[1], sid)
	assert ops(bs[1], "get", "error") == err + 1
	# the access log tells a refusal from an outage
	bs[1].wait_log(lambda e: e.get("persist_shared") == "error")
	# the instance that learned it still serves it from its table
	assert timed_get(bs[0], sid) == home
	assert redis.cmd("TYPE", KEY + sid) == "hash"  # not ours to overwrite
	# another session is untouched by it
	sid2, home2 = learned(bs[0], redis)
	assert timed_get(bs[1], sid2) == home2
	assert all(b.alive() for b in bs)


def test_a_refusal_only_worker_1_meets_is_logged(fleet, redis):
	"""A WRONGTYPE is the key of one session: only the worker that serves
	it meets the error. Worker 0 is held (ptrace) so that worker 1 serves
	the request: its refusal must be said, once, though worker 0's link
	says the link's transitions; and the spell ends when Redis answers
	without error again."""
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	sid, home = learned(bs[0], redis)
	redis.cmd("DEL", KEY + sid)
	redis.cmd("HSET", KEY + sid, "f", "v")
	b = bs[1]
	before = len(shared_log(b))
	err = ops(b, "get", "error")
	kinds = ("get", "setnx", "cas", "set", "del")
	errs = sum(ops(b, k, "error") for k in kinds)
	tids = helpers_threads.thread_ids(b.pid, ["bollard-w0", "bollard-w1"])
	with helpers_threads.held(b.pid, tids["bollard-w0"]):
		# found by a request without the session: the connections left
		# to worker 0 ask Redis nothing when it runs again
		conn, _ = answered_by_a_running_worker(b.port, "/whoami?find=w1")
		with conn:
			conn.send(util.build_request("GET", "/whoami", [("Cookie", "DEMOSESSID=" + sid)]))
			assert util.read_response(conn).status == 200
		util.wait_until(lambda: any("refuses commands (WRONGTYPE" in ln
					    for ln in shared_log(b)[before:]),
				what="the refusal said by worker 1's link")
	assert ops(b, "get", "error") == err + 1
	# the spell ends on an answer without error 2 s after the refusal
	redis.cmd("DEL", KEY + sid)
	deadline = time.monotonic() + 30

	def ended():
		assert time.monotonic() < deadline, shared_log(b)[before:]
		get(b, "/whoami", [("Cookie", "DEMOSESSID=%s-%d" % (sid, time.monotonic_ns()))])
		return any("accepts commands again" in ln for ln in shared_log(b)[before:])
	util.wait_until(ended, timeout=30, interval=0.2, what="the spell's end")
	lines = shared_log(b)[before:]
	# the line counts what the counters counted (the lookup, then the
	# binding bollard tried to write there)
	refused = sum(ops(b, k, "error") for k in kinds) - errs
	assert any("accepts commands again (%d refused)" % refused in ln for ln in lines), \
		(refused, lines)
	assert count_in(lines, "refuses commands") == 1, lines
	assert count_in(lines, "accepts commands again") == 1, lines


@pytest.mark.parametrize("junk", [b"junk", b"x" * (1 << 20), b"", bytes(range(256))],
			 ids=["word", "1MB", "empty", "binary"])
def test_a_value_bollard_did_not_write_is_a_miss(fleet, redis, junk):
	"""A value naming no server here is a miss for the request; it is left
	in place (it may be a server of another instance's configuration), so
	the first binding loses to it. The empty value is a clear's mark: a
	miss in Redis too, and the first binding replaces it."""
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	sid, home = learned(bs[0], redis)
	redis.cmd("SET", KEY + sid, junk)
	got = ops(bs[1], "get", "miss" if not junk else "hit")
	bound = ops(bs[1], "setnx", "won" if not junk else "lost")
	srv = timed_get(bs[1], sid)
	assert ops(bs[1], "get", "miss" if not junk else "hit") == got + 1
	assert ops(bs[1], "setnx", "won" if not junk else "lost") == bound + 1
	assert redis.cmd("GET", KEY + sid) == (srv.encode() if not junk else junk)
	assert timed_get(bs[0], sid) == home
	assert all(b.alive() for b in bs)


# ------------------------------------------------------------ Redis refusing

def run_fault(bs, redis, inject, restore, counted, what, wait_down=False, said=(), said_after=()):
	"""Load on bs[1:] (sessions of bs[0]); inject(); more load; the
	counters of counted [(op, result)] must grow and bs[0]'s log say each
	of said; restore(); the links up again, the log saying each of
	said_after, and more load answered from Redis. Returns the Load and
	bs[0]'s shared-tables log lines from inject() on."""
	others = bs[1:]
	load = Load(others, bs[0]).start()
	try:
		load.wait_more(20, "before " + what)
		before = {c: all_ops(bs, *c) for c in counted}
		logs = [len(shared_log(b)) for b in bs]
		inject()
		if wait_down:
			for b in bs:
				util.wait_until(lambda: links_up(b) == 0, timeout=30,
						what="links down: " + what)
		util.wait_until(lambda: all(all_ops(bs, *c) > before[c] for c in counted)
				or load.fail, timeout=30, what="counted: %s %r" % (what, counted))
		load.wait_more(20, "during " + what)
		for text in said:
			util.wait_until(lambda: any(text in ln for ln in shared_log(bs[0])[logs[0]:])
					or load.fail, timeout=30, what="the log saying " + text)
		restore()
		for b in bs:
			util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1, timeout=30,
					what="links up after " + what)
		hits = all_ops(others, "get", "hit")
		util.wait_until(lambda: all_ops(others, "get", "hit") > hits + 5 or load.fail,
				timeout=30, what="answers from Redis again after " + what)
		for text in said_after:
			util.wait_until(lambda: any(text in ln for ln in shared_log(bs[0])[logs[0]:])
					or load.fail, timeout=30, what="the log saying " + text)
	finally:
		restore()
		load.end()
	assert load.fail == [], load.fail[:10]
	assert load.max_s < TIMEOUT_MS / 1000 + MARGIN_S, load.max_s
	new_lines = shared_log(bs[0])[logs[0]:]
	return load, new_lines


def count_in(lines, text):
	return sum(text in ln for ln in lines)


def downs(lines):
	"""Lines saying the link went down (not those naming a later cause)."""
	return sum(" down (" in ln and "still down" not in ln for ln in lines)


def test_oom_refusing_writes_is_logged_once_each_way(fleet, redis):
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	used = int(redis.info("used_memory", "memory"))

	def inject():
		redis.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
		redis.cmd("CONFIG", "SET", "maxmemory", str(used // 2))

	def restore():
		redis.cmd("CONFIG", "SET", "maxmemory", "0")

	_, lines = run_fault(bs, redis, inject, restore, [("set", "error")], "OOM",
			     said=["refuses commands (OOM"], said_after=["accepts commands again"])
	assert count_in(lines, "refuses commands") == 1, lines
	assert count_in(lines, "accepts commands again") == 1, lines
	assert downs(lines) == 0, lines


def test_client_kill_is_one_reconnect(fleet, redis):
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	op = Conn(redis)
	try:
		_, lines = run_fault(bs, redis, lambda: op.cmd("CLIENT", "KILL", "TYPE", "normal"),
				     lambda: None, [], "CLIENT KILL", said=[" down ("],
				     said_after=["up again"])
	finally:
		op.close()
	assert downs(lines) == 1, lines
	assert count_in(lines, "up again") == 1, lines


@pytest.mark.parametrize("mode", ["WRITE", "ALL"])
def test_client_pause_costs_at_most_timeout(fleet, redis, mode):
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	# Redis ends the pause by itself: the links must come back unaided
	_, lines = run_fault(bs, redis, lambda: redis.cmd("CLIENT", "PAUSE", "3000", mode),
			     lambda: None, [("get", "timeout")], "CLIENT PAUSE " + mode,
			     said=["down (no reply for"], said_after=["up again"])
	assert downs(lines) == 1, lines
	assert count_in(lines, "still down") <= 3, lines


def test_debug_sleep_past_timeout_is_a_stall(fleet, redis):
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	sleeper = threading.Thread(target=lambda: redis.cmd("DEBUG", "SLEEP", "3", timeout=10),
				   daemon=True)
	try:
		_, lines = run_fault(bs, redis, sleeper.start, lambda: None, [("get", "timeout")],
				     "DEBUG SLEEP", said=["down (no reply for"], said_after=["up again"])
	finally:
		sleeper.join(timeout=10)
	assert downs(lines) == 1, lines


def test_replicaof_demotes_the_node_under_load(fleet, redis):
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)

	def inject():
		# a master nobody runs: the node stays a replica refusing writes
		redis.cmd("REPLICAOF", "127.0.0.1", str(util.free_port()))

	_, lines = run_fault(bs, redis, inject, lambda: redis.cmd("REPLICAOF", "NO", "ONE"), [],
			     "REPLICAOF", wait_down=True, said=["not the master"],
			     said_after=["up again"])
	assert downs(lines) == 1, lines
	assert count_in(lines, "not the master") == 1, lines


@pytest.mark.parametrize("name,bad,good,said", [
	("requirepass", "s3cret", "", "NOAUTH"),
	("maxclients", "1", "10000", "max number of clients"),  # our Conn is the one
], ids=["requirepass", "maxclients"])
def test_handshake_refused_under_load_is_named_once(fleet, redis, name, bad, good, said):
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	op = Conn(redis)

	def inject():
		op.cmd("CONFIG", "SET", name, bad)
		op.cmd("CLIENT", "KILL", "TYPE", "normal")  # not op (SKIPME)

	try:
		_, lines = run_fault(bs, redis, inject, lambda: op.cmd("CONFIG", "SET", name, good),
				     [], name, wait_down=True, said=[said], said_after=["up again"])
	finally:
		op.close()
	assert downs(lines) == 1, lines
	assert count_in(lines, said) == 1, lines


def test_loading_a_big_dataset_is_named_once(fleet, redis):
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	# A loading that lasts whatever the machine's speed: redis-server
	# waits key-load-delay (µs) after each key it loads, and answers
	# clients (-LOADING) every loading-process-events-interval-bytes;
	# 5,000 keys take 10 s however fast the machine, longer than the
	# links' reconnect backoff (5 s at most), so they meet the LOADING.
	redis.cmd("DEBUG", "POPULATE", "5000", "filler", timeout=30)
	redis.cmd("SAVE", timeout=30)

	def inject():
		redis.kill()
		proc = redis.spawn("--key-load-delay", "2000",
				   "--loading-process-events-interval-bytes", "1024")
		util.wait_until(lambda: loading(redis) or proc.poll() is not None, timeout=30,
				what="redis-server loading")

	_, lines = run_fault(bs, redis, inject, lambda: None, [], "LOADING", wait_down=True,
			     said=["LOADING"], said_after=["up again"])
	assert downs(lines) == 1, lines
	assert count_in(lines, "LOADING") == 1, lines


def loading(redis):
	try:
		redis.cmd("PING", timeout=0.5)
	except RuntimeError as e:
		return "LOADING" in str(e)
	except OSError:
		pass
	return False


# ------------------------------------------------------------ operator actions

def test_sighup_moving_to_another_redis_and_prefix_keeps_the_queue_in_place(
		fleet, redis, tmp_path):
	"""Writes queued while the old Redis is gone go to the new one, under
	the new prefix (the one every lookup uses after the reload), none lost."""
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	other = Redis(tmp_path / "other")
	load = Load(bs[1:], bs[0]).start()
	try:
		load.wait_more(20, "before the move")
		redis.kill()
		for b in bs:
			util.wait_until(lambda: links_up(b) == 0, what="links down with the old Redis")
		sids = []
		for _ in range(4):
			srv, r = get(bs[0], "/?format=json")
			sids.append((r.json()["session"], srv))
		util.wait_until(lambda: metric(bs[0], "bollard_shared_tables_queued") >= len(sids),
				what="the bindings queued")
		for b in bs:
			reloads = metric(b, "bollard_reloads_total")
			b.conf_path.write_text(b.conf_path.read_text().replace(
				"redis://127.0.0.1:%d/0 prefix t:" % redis.port,
				"redis://127.0.0.1:%d/0 prefix u:" % other.port))
			b.proc.send_signal(signal.SIGHUP)
			util.wait_until(lambda: metric(b, "bollard_reloads_total") == reloads + 1,
					what="the reload done")
		load.wait_more(20, "between the reload and the new Redis")
		other.start()
		for b in bs:
			util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1, timeout=30,
					what="links up on the new Redis")
		for sid, home in sids:
			util.wait_until(lambda: other.get("u:be/learn/DEMOSESSID:" + sid) == home,
					what="the queued binding under the new prefix")
		hits = ops(bs[1], "get", "hit")
		util.wait_until(lambda: ops(bs[1], "get", "hit") > hits + 5 or load.fail,
				what="answers from the new Redis")
		load.end()
		assert [k for k in other.keys() if not k.startswith("u:")] == []
	finally:
		load.end()
		other.close()
	assert load.fail == [], load.fail[:10]
	assert load.max_s < TIMEOUT_MS / 1000 + MARGIN_S, load.max_s


def test_script_flush_does_not_lose_the_writes_behind(fleet, redis):
	"""An operator's SCRIPT FLUSH empties the script cache the writes
	behind run by SHA (EVALSHA): they must not all fail until the next
	reconnect; the link loads the script again and replays them."""
	bs, _ = fleet(PERSIST, n=2, timeout="%dms" % TIMEOUT_MS)
	learned(bs[0], redis)
	redis.cmd("SCRIPT", "FLUSH")
	for _ in range(5):
		sid, home = learned(bs[0], redis)
		assert redis.get(KEY + sid) == home
		assert timed_get(bs[1], sid) == home
	assert ops(bs[0], "set", "error") == 0


def link_ages(redis):
	"""The age in seconds of each Redis client but the one asking."""
	out = redis.cmd("CLIENT", "LIST").decode()
	return [int(re.search(r"\bage=(\d+)", ln).group(1)) for ln in out.splitlines()
		if "cmd=client" not in ln]


def test_redis_idle_timeout_does_not_close_an_idle_link(fleet, redis):
	"""Redis closes clients idle for its `timeout`: an instance without
	traffic must keep its links open (they say PING), not go down and up
	every `timeout` with a warning each time."""
	bs, _ = fleet(PERSIST, n=1)
	redis.cmd("CONFIG", "SET", "timeout", "1")
	lines = len(shared_log(bs[0]))
	# both links outlive the idle timeout several times over
	util.wait_until(lambda: (lambda a: len(a) == 2 and min(a) >= 4)(link_ages(redis)),
			timeout=20, what="the idle links kept open past Redis's timeout")
	assert shared_log(bs[0])[lines:] == []
	assert metric(bs[0], "bollard_shared_tables_up") == 1
