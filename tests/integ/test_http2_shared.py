"""HTTP/2 streams and the shared tables together (issues 12 and 13): a
stream whose session is unknown locally waits for Redis like an HTTP/1.1
request does, and is answered by the session's server. The stream is a
connection of its own (xprt_h2s.c) parked in CS_SHARED while the lookup is
in flight; its answer must still reach the client through the HTTP/2
connection, and the other streams of that connection must not wait for it.
"""

import json
import subprocess

import pytest

import util
from helpers_redis import Redis
from test_http2 import curl, h2_config
from test_shared_tables import SECRET, ops
from test_tls import CA


@pytest.fixture
def redis(tmp_path):
	r = Redis(tmp_path / "redis").start()
	yield r
	r.close()


def test_h2_streams_of_a_session_learned_elsewhere_wait_for_redis(demo_apps, bollard_factory,
								 redis, tmp_path):
	(tmp_path / "secret.key").write_text(SECRET)
	(tmp_path / "secret.key").chmod(0o600)
	crt = CA(tmp_path).leaf("localhost", ["localhost"])
	apps = demo_apps(3)
	conf = h2_config(apps, crt,
			 global_extra="    secret-file %s/secret.key\n"
			 "    shared-tables redis://127.0.0.1:%d/0 prefix t: timeout 500ms"
			 % (tmp_path, redis.port),
			 backend_extra="    persist learn DEMOSESSID")
	a, b = bollard_factory(conf), bollard_factory(conf)
	for inst in (a, b):
		util.wait_until(lambda: "bollard_shared_tables_up 1" in
				util.request(inst.ports["port_stats"], "GET", "/metrics").text(),
				what="the Redis links up")
	# sessions started on A, over HTTP/2; their bindings reach Redis
	sessions = {}
	for _ in range(4):
		code, ver, body, _ = curl(a.port, "/?format=json")
		assert (code, ver) == (200, "2")
		j = json.loads(body)
		sessions[j["session"]] = j["server"]
	assert len(set(sessions.values())) > 1  # round robin spread them
	util.wait_until(lambda: all(redis.get("t:be/learn/DEMOSESSID:" + s) == srv
				    for s, srv in sessions.items()),
			what="every binding written to Redis")
	# B has never seen them: every session's streams, many on one
	# connection, all reach the session's server; the first of each asks
	# Redis (a GET hit), the others find it local
	for sid, home in sessions.items():
		r = subprocess.run(["h2load", "-n", "20", "-c", "1", "-m", "10", "-H",
				    "cookie: DEMOSESSID=" + sid,
				    "https://127.0.0.1:%d/whoami?s=%s" % (b.port, sid)],
				   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
		assert "20 succeeded" in r.stdout.decode(), r.stdout.decode()
		got = b.wait_log(lambda e, sid=sid: e["target"] == "/whoami?s=" + sid, n=20)
		assert {e["server"] for e in got} == {home}, got
		assert {e["persist"] for e in got} == {"hit"}
		assert any(e.get("shared") == "redis" for e in got), got[0]
		assert {e["proto"] for e in got} == {"HTTP/2.0"}
	assert ops(b, "get", "hit") >= len(sessions)
