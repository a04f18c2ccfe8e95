"""Persistence tables shared between instances on Redis (SPEC 13, issue 13,
doc/scale-out.md), through real processes: Debian's redis-server started
here on a free loopback port in a temporary folder (helpers_redis.py), three
bollard instances sharing one secret-file and one Redis, three demo apps.

A client sends each session's requests to the instances in turn and reads
which server answered from the demo app's X-Server header (and, for
learned sessions, the app's own session: a request that reached another
app would find no session there). Waits are on observable state: the
instances' /metrics and `show info`, what Redis holds (a raw RESP socket).
The faults of Redis (killed, stopped, restarted empty, down at start) and
SIGHUP are in test_shared_tables_faults.py.
"""

import base64
import json
import re
import signal
import socket
import threading

import pytest

import util
from helpers_redis import Redis

SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"


@pytest.fixture
def redis(tmp_path):
	r = Redis(tmp_path / "redis").start()
	yield r
	r.close()


def metrics(b):
	return util.request(b.ports["port_stats"], "GET", "/metrics").text()


def metric(b, name, labels=None):
	"""The value of one sample of /metrics (0 when absent)."""
	want = labels or {}
	for line in metrics(b).splitlines():
		if not line.startswith(name + "{") and not line.startswith(name + " "):
			continue
		m = re.match(r"([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
		if not m or m.group(1) != name:
			continue
		got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
		if all(got.get(k) == v for k, v in want.items()):
			return float(m.group(3))
	return 0.0


def ops(b, op, result):
	return metric(b, "bollard_shared_tables_ops_total", {"op": op, "result": result})


def shared_config(config_for, servers, redis, persist, tmp, threads=2, timeout="200ms",
		  extra_global="", extra_backend="", balance="roundrobin", prefix="t:"):
	g = ["    stats-listen 127.0.0.1:{port_stats}",
	     "    admin-socket %s/{port_stats}.sock" % tmp,
	     "    secret-file %s/secret.key" % tmp,
	     "    shared-tables redis://127.0.0.1:%d/0 prefix %s timeout %s" % (redis.port, prefix,
										     timeout)]
	g += [ln for ln in extra_global.splitlines() if ln.strip()]
	return config_for(servers, balance=balance, threads=threads, log_format="json",
			  global_extra="\n".join(g),
			  frontend_extra="    trust-forwarded 127.0.0.1/32",
			  backend_extra="\n".join("    " + p for p in (persist + "\n" + extra_backend)
						  .splitlines() if p.strip()))


@pytest.fixture
def fleet(tmp_path, demo_apps, bollard_factory, config_for, redis):
	"""fleet(persist, n=3, **kw) -> ([Bollard], [DemoApp]): n instances of
	one configuration (their own ports), links up on every worker."""
	(tmp_path / "secret.key").write_text(SECRET)
	(tmp_path / "secret.key").chmod(0o600)

	def start(persist, n=3, apps=None, **kw):
		apps = apps or demo_apps(3)
		conf = shared_config(config_for, apps, redis, persist, tmp_path, **kw)
		start.config = conf  # for one more instance of the fleet
		bs = [bollard_factory(conf) for _ in range(n)]
		for b in bs:
			util.wait_until(lambda: metric(b, "bollard_shared_tables_up") == 1,
					what="the Redis links of every worker up")
		return bs, apps
	return start


def admin(b, line):
	"""One runtime API command on b's admin socket, its answer as text."""
	path = re.search(r"admin-socket (\S+)", b.config_text).group(1)
	s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	s.settimeout(10)
	try:
		s.connect(path)
		s.sendall(line.encode() + b"\n")
		s.shutdown(socket.SHUT_WR)
		out = b""
		while True:
			d = s.recv(65536)
			if not d:
				return out.decode()
			out += d
	finally:
		s.close()


def get(b, path="/whoami", headers=()):
	r = util.request(b.port, "GET", path, list(headers))
	assert r.status == 200, r
	return r.headers.get("X-Server"), r


# ---------------------------------------------------------------- configuration

@pytest.mark.parametrize("line,why", [
	("shared-tables 127.0.0.1:6379", "needs a redis://HOST:PORT/DB address"),
	("shared-tables redis://localhost:6379/0", "is not an IP address"),
	("shared-tables redis://127.0.0.1:99999/0", "cannot read HOST:PORT"),
	("shared-tables redis://127.0.0.1:6379/x", "database 'x' is not a number"),
	("shared-tables redis://127.0.0.1:6379/0 timeout 0", "out of range"),
	("shared-tables redis://127.0.0.1:6379/0 timeout 20", "unit"),
	("shared-tables redis://127.0.0.1:6379/0 colour blue", "unknown option 'colour'"),
	("shared-tables redis://127.0.0.1:6379/0 password-file /nonexistent/pw",
	 "cannot read password-file /nonexistent/pw"),
	("shared-tables redis://127.0.0.1:6379/0 sentinel 127.0.0.1:26379",
	 "needs 'master NAME'"),
	("shared-tables redis://127.0.0.1:6379/0 sentinel localhost:26379 master mymaster",
	 "sentinel 'localhost:26379' is not IP:PORT"),
	("shared-tables redis://127.0.0.1:6379/0 tls", "not supported yet"),
])
def test_bad_shared_tables_line_is_refused_with_its_line(bollard_run, line, why):
	conf = ("global\n    %s\n\nfrontend fe\n    bind 127.0.0.1:1\n    default-backend be\n\n"
		"backend be\n    persist learn SID\n    server a 127.0.0.1:2\n" % line)
	r = bollard_run("check", "-c", "{conf}", config=conf)
	assert r.returncode != 0, r.stdout + r.stderr
	assert re.search(r"check\.conf:2: .*%s" % re.escape(why), r.stdout + r.stderr), \
		r.stdout + r.stderr


def test_shared_tables_twice_and_a_good_line(bollard_run, tmp_path):
	pw = tmp_path / "pw"
	pw.write_text("sesame\n")
	good = ("global\n    shared-tables redis://[::1]:6380/3 prefix x: timeout 15ms "
		"password-file %s\n\nfrontend fe\n    bind 127.0.0.1:1\n    default-backend be\n\n"
		"backend be\n    persist source\n    server a 127.0.0.1:2\n" % pw)
	r = bollard_run("check", "-c", "{conf}", config=good)
	assert r.returncode == 0, r.stdout + r.stderr
	assert "not checked (only a start connects): shared-tables redis://[::1]:6380/3" in r.stdout
	twice = good.replace("global\n", "global\n    shared-tables redis://127.0.0.1:1/0\n")
	r = bollard_run("check", "-c", "{conf}", config=twice)
	assert r.returncode != 0
	assert "check.conf:3: shared-tables given twice (first at line 2)" in r.stdout + r.stderr


# ---------------------------------------------------------------- agreement

def test_learned_session_reaches_its_server_from_every_instance(fleet, redis):
	"""persist learn on the app's cookie: a session started on any instance
	is served by the same app from every instance (the app keeps the
	session in its memory: visits count up only if every request reached
	it), and Redis holds the binding by server name."""
	bs, apps = fleet("persist learn DEMOSESSID")
	sessions = []
	for i in range(9):
		srv, r = get(bs[i % 3], "/?format=json")
		j = r.json()
		assert j["new"] is True
		sessions.append((j["session"], srv))
	assert len({s for _, s in sessions}) > 1  # round robin spread them
	for rnd in range(3):
		for k, (sid, home) in enumerate(sessions):
			b = bs[(k + rnd + 1) % 3]
			srv, r = get(b, "/?format=json", [("Cookie", "DEMOSESSID=" + sid)])
			assert srv == home, "session %d went to %s from instance %d, it lives on %s" % (
				k, srv, (k + rnd + 1) % 3, home)
			assert r.json()["session"] == sid and r.json()["visits"] == rnd + 2
	for sid, home in sessions:
		assert redis.get("t:be/learn/DEMOSESSID:" + sid) == home
	# the access log says which decisions Redis made
	for b in bs:
		adopted = b.wait_log(lambda e: e.get("persist_shared") == "redis", n=6)
		assert all(e["persist"] == "hit" for e in adopted), adopted
	# the instances that had never seen a session asked Redis, once each
	hits = sum(ops(b, "get", "hit") for b in bs)
	assert hits == 2 * len(sessions), hits
	pttl = redis.cmd("PTTL", "t:be/learn/DEMOSESSID:" + sessions[0][0])
	assert 0 < pttl <= 30 * 60 * 1000  # the table's expire (default 30m)


def unsigned_jwt(claims):
	def b64u(b):
		return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
	return "%s.%s.%s" % (b64u(b'{"alg":"HS256","typ":"JWT"}'), b64u(json.dumps(claims).encode()),
			     b64u(b"not-verified"))


@pytest.mark.parametrize("method,path_of,headers_of", [
	("persist source", lambda k: "/whoami",
	 lambda k: [("X-Forwarded-For", "10.1.%d.%d" % (k // 250, k % 250))]),
	("persist header X-User", lambda k: "/whoami", lambda k: [("X-User", "user-%d" % k)]),
	("persist url-param cart", lambda k: "/whoami?cart=c%d" % k, lambda k: []),
	("persist jwt sub", lambda k: "/whoami",
	 lambda k: [("Authorization", "Bearer " + unsigned_jwt({"sub": "s%d" % k}))]),
])
def test_keyed_sessions_agree_by_hash_and_need_no_redis(fleet, redis, method, path_of, headers_of):
	"""source, header, url-param, jwt: a new session is placed by Maglev
	over the servers' names, so every instance picks the same server and
	Redis holds nothing for them (only bindings that differ from the
	placement)."""
	bs, apps = fleet(method)
	homes = {}
	for k in range(30):
		srv, _ = get(bs[k % 3], path_of(k), headers=headers_of(k))
		homes[k] = srv
	assert len(set(homes.values())) == 3  # the hash spreads them over the three
	for rnd in range(2):
		for k in range(30):
			srv, _ = get(bs[(k + rnd + 1) % 3], path_of(k), headers=headers_of(k))
			assert srv == homes[k]
	assert redis.keys("t:*") == []
	assert sum(ops(b, "set", "ok") for b in bs) == 0


def test_backend_killed_each_session_moves_once_to_the_same_server(fleet, redis, demo_apps):
	"""A backend killed: every affected session moves exactly once across
	the fleet (one compare-and-set won per session, the other instances
	lose it and follow), and all instances send it to the same new
	server."""
	apps = demo_apps(3)
	bs, _ = fleet("persist learn DEMOSESSID", apps=apps,
		      extra_backend="health tcp interval 100ms timeout 200ms rise 1 fall 1")
	sessions = []
	for i in range(12):
		srv, r = get(bs[i % 3], "/?format=json")
		sessions.append((r.json()["session"], srv))
	# every instance knows every session locally
	for b in bs:
		for sid, home in sessions:
			assert get(b, headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == home
	victim = next(a for a in apps if any(h == a.name for _, h in sessions))
	affected = [sid for sid, h in sessions if h == victim.name]
	# under load: a client keeps sending every session to the instances in
	# turn while the backend dies, so some instances find it dead by a
	# failed connect before their health checks do
	seen, stop = [], threading.Event()

	def load():
		for n in range(100000):
			if stop.is_set():
				return
			sid, _ = sessions[n % len(sessions)]
			try:
				r = util.request(bs[n % 3].port, "GET", "/whoami",
						 [("Cookie", "DEMOSESSID=" + sid)])
				if r.status == 200:
					seen.append((sid, r.headers.get("X-Server")))
			except OSError:
				pass  # a request caught by the kill: not what this test is about
	t = threading.Thread(target=load, daemon=True)
	t.start()
	util.wait_until(lambda: len(seen) >= 30, what="load before the kill")
	util.stop_process(victim.proc, sig=signal.SIGKILL)
	for b in bs:
		util.wait_until(lambda: metric(b, "bollard_server_state",
					       {"server": victim.name, "state": "down"}) == 1,
				what="%s down on every instance" % victim.name)
	n = len(seen)
	util.wait_until(lambda: len(seen) >= n + 60, what="load after the kill")
	stop.set()
	t.join(timeout=30)
	# every affected session answered by one server only once it left the victim
	moved_to = {}
	for sid, srv in seen:
		if sid in affected and srv != victim.name:
			moved_to.setdefault(sid, set()).add(srv)
	assert all(len(v) == 1 for v in moved_to.values()), moved_to
	new_home = {sid: next(iter(v)) for sid, v in moved_to.items()}
	for rnd in range(3):
		for k, sid in enumerate(affected):
			b = bs[(k + rnd) % 3]
			srv, _ = get(b, headers=[("Cookie", "DEMOSESSID=" + sid)])
			assert srv != victim.name
			assert new_home.setdefault(sid, srv) == srv, \
				"session %s: instance %d sent it to %s, others to %s" % (
					sid, (k + rnd) % 3, srv, new_home[sid])
	for sid in affected:
		assert redis.get("t:be/learn/DEMOSESSID:" + sid) == new_home[sid]
	won = sum(ops(b, "cas", "won") for b in bs)
	lost = sum(ops(b, "cas", "lost") for b in bs)
	assert won == len(affected), (won, len(affected))
	assert lost == 2 * len(affected), (lost, len(affected))
	# the sessions that were not on the victim did not move
	for sid, home in sessions:
		if home != victim.name:
			assert get(bs[0], headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == home


# ---------------------------------------------------------------- the runtime API

def test_show_info_api_and_clear_sessions_act_on_the_shared_view(fleet, redis):
	"""show info, /api/info and /api/stats say the links' state; `clear
	sessions` removes the keys in Redis too, so that no instance adopts
	the cleared binding again."""
	bs, apps = fleet("persist learn DEMOSESSID")
	info = admin(bs[0], "show info")
	assert "shared_tables up\n" in info and "shared_tables_links 2\n" in info, info
	assert "shared_tables_redis redis://127.0.0.1:%d/0\n" % redis.port in info
	j = json.loads(util.request(bs[1].ports["port_stats"], "GET", "/api/info").text())
	assert j["shared_tables"]["state"] == "up" and j["shared_tables"]["links_up"] == 2, j
	j = json.loads(util.request(bs[1].ports["port_stats"], "GET", "/api/stats").text())
	assert j["shared_tables"]["links"] == 2, j
	sids = []
	for i in range(4):
		srv, r = get(bs[0], "/?format=json")
		sids.append((r.json()["session"], srv))
	for sid, _ in sids:
		util.wait_until(lambda: redis.get("t:be/learn/DEMOSESSID:" + sid) is not None,
				what="the binding written behind")
	# by key: gone from Redis even on an instance that never held it
	assert admin(bs[2], "clear sessions be key " + sids[0][0]).startswith("cleared 0")
	util.wait_until(lambda: redis.get("t:be/learn/DEMOSESSID:" + sids[0][0]) == "",
			what="the mark of clear sessions key")
	# by server, then all: the entries this instance holds go from Redis too
	victim = sids[1][1]
	n = admin(bs[0], "clear sessions be " + victim)
	assert n.startswith("cleared "), n
	for sid, srv in sids[1:]:
		if srv == victim:
			util.wait_until(lambda: redis.get("t:be/learn/DEMOSESSID:" + sid) == "",
					what="the mark of clear sessions SERVER")
	admin(bs[0], "clear sessions be")
	assert {redis.get(k) for k in redis.keys("t:*")} == {""}
	# the key went by a link's DEL, the two others by the control thread's
	# walk of Redis (test_shared_view.py)
	assert sum(ops(b, "del", "ok") for b in bs) >= 1
	assert ops(bs[0], "scan", "ok") == 2


def test_keyed_move_is_the_exception_redis_keeps(fleet, redis, demo_apps, demo_bin,
						 bollard_factory, tmp_path):
	"""A keyed session whose home server dies moves once (compare-and-set),
	and the move is what Redis holds: when the home server is back, an
	instance that never saw the session (started now) finds the move in
	Redis and sends it to the new server, not to the hash's home."""
	apps = demo_apps(3)
	bs, _ = fleet("persist header X-User", apps=apps,
		      extra_backend="health tcp interval 100ms timeout 200ms rise 1 fall 1")
	users = ["user-%d" % k for k in range(30)]
	home = {u: get(bs[0], headers=[("X-User", u)])[0] for u in users}
	victim = apps[0]
	affected = [u for u in users if home[u] == victim.name]
	assert affected
	util.stop_process(victim.proc, sig=signal.SIGKILL)
	for b in bs:
		util.wait_until(lambda: metric(b, "bollard_server_state",
					       {"server": victim.name, "state": "down"}) == 1,
				what="%s down on every instance" % victim.name)
	moved = {}
	for rnd in range(2):
		for k, u in enumerate(affected):
			srv, _ = get(bs[(k + rnd) % 3], headers=[("X-User", u)])
			assert srv != victim.name and moved.setdefault(u, srv) == srv
	assert sorted(redis.keys("t:*")) == sorted("t:be/header/X-User:" + u for u in affected)
	for u in affected:
		assert redis.get("t:be/header/X-User:" + u) == moved[u]
	# the home server comes back on its address
	proc = util.start_process([demo_bin, "--name", victim.name, "--port", str(victim.port)],
				  tmp_path / "back.out", tmp_path / "back.err")
	try:
		util.wait_port(victim.port, proc=proc, what="the victim back")
		fresh = bollard_factory(fleet.config)
		util.wait_until(lambda: metric(fresh, "bollard_server_state",
					       {"server": victim.name, "state": "ready"}) == 1,
				what="the victim ready again")
		util.wait_until(lambda: metric(fresh, "bollard_shared_tables_up") == 1, what="links up")
		for u in affected:
			assert get(fresh, headers=[("X-User", u)])[0] == moved[u]
		for u in users:
			if u not in affected:
				assert get(fresh, headers=[("X-User", u)])[0] == home[u]
	finally:
		util.stop_process(proc)


def test_unknown_learn_key_is_bound_once_with_set_nx(fleet, redis):
	"""A learn key no instance and no Redis knows (its binding expired,
	Redis restarted empty, a client's stale cookie): the first instance
	binds it with SET NX and the others adopt that server, so the fleet
	agrees on it from its first request."""
	bs, apps = fleet("persist learn DEMOSESSID")
	keys = ["%032x" % (0xfeed0000 + k) for k in range(9)]
	first = {}
	for k, key in enumerate(keys):
		first[key] = get(bs[k % 3], headers=[("Cookie", "DEMOSESSID=" + key)])[0]
	assert len(set(first.values())) > 1
	assert sum(ops(b, "setnx", "won") for b in bs) == len(keys)
	for key in keys:
		assert redis.get("t:be/learn/DEMOSESSID:" + key) == first[key]
	for rnd in range(2):
		for k, key in enumerate(keys):
			b = bs[(k + rnd + 1) % 3]
			assert get(b, headers=[("Cookie", "DEMOSESSID=" + key)])[0] == first[key]
	assert sum(ops(b, "get", "hit") for b in bs) == 2 * len(keys)


def test_a_server_name_unknown_here_is_a_miss(fleet, redis):
	"""Redis names a server this instance does not have (another instance
	configured differently): not an error, a miss; the request is balanced
	among this instance's servers, and the binding in Redis is left alone."""
	bs, apps = fleet("persist learn DEMOSESSID", n=1)
	key = "t:be/learn/DEMOSESSID:" + "ab" * 16
	assert redis.cmd("SET", key, "elsewhere", "PX", 60000) == "OK"
	srv, _ = get(bs[0], headers=[("Cookie", "DEMOSESSID=" + "ab" * 16)])
	assert srv in {a.name for a in apps}
	assert ops(bs[0], "get", "hit") == 1
	assert redis.get(key) == "elsewhere"
	# and the instance keeps the session where it put it
	for _ in range(3):
		assert get(bs[0], headers=[("Cookie", "DEMOSESSID=" + "ab" * 16)])[0] == srv
