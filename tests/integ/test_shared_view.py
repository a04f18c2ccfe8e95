"""`show sessions` and `clear sessions` on the shared view (issue 13 items 3
and 4, doc/scale-out.md "show and clear"): what Redis holds for a backend,
also the bindings this instance never served, through real processes
(three instances, one Redis, the fixtures of test_shared_tables.py). Waits
are on observable state: what Redis holds, the instances' metrics.
"""

import json
import time

import util
from test_shared_tables import admin, fleet, get, metrics, ops, redis  # noqa: F401 (fixtures)

KEY = "t:be/learn/DEMOSESSID:"


def learn(redis, bs, per=3):
	"""per sessions learned on each of bs; [(sid, server)], once Redis holds them."""
	got = []
	for b in bs:
		for _ in range(per):
			srv, r = get(b, "/?format=json")
			got.append((r.json()["session"], srv))
	for sid, _ in got:
		util.wait_until(lambda: redis.get(KEY + sid) is not None,
				what="the binding written behind")
	return got


def rows(text):
	lines = [ln for ln in text.splitlines() if ln.strip()]
	assert lines[0].split() == ["backend", "method", "key", "server", "idle_s", "age_s",
				    "origin"], text
	return [ln.split() for ln in lines[1:] if not ln.startswith("#")]


def test_show_and_clear_by_server_act_on_what_other_instances_hold(fleet, redis):
	bs, apps = fleet("persist learn DEMOSESSID")
	got = learn(redis, bs[:2])
	# C never served them: every one is listed, from Redis
	shown = {r[2]: r for r in rows(admin(bs[2], "show sessions be"))}
	for sid, srv in got:
		assert shown[sid][3:] == [srv, "-", "-", "redis"], shown
	j = json.loads(admin(bs[2], "json show sessions be"))
	assert j["redis"] == "ok" and j["truncated"] is False, j
	assert {(e["key"], e["server"], e["origin"]) for e in j["sessions"]} == \
		{(sid, srv, "redis") for sid, srv in got}
	# A lists its own as local, B's from Redis
	on_a = {r[2]: r[6] for r in rows(admin(bs[0], "show sessions be"))}
	assert on_a == {sid: "local" if k < 3 else "redis" for k, (sid, _) in enumerate(got)}, on_a
	# a server filter and the cap
	victim = got[0][1]
	only = rows(admin(bs[2], "show sessions be " + victim))
	assert sorted(r[2] for r in only) == sorted(s for s, v in got if v == victim)
	capped = admin(bs[2], "show sessions be limit 2")
	assert len(rows(capped)) == 2 and "# truncated: at most 2 entries" in capped, capped

	ans = admin(bs[2], "clear sessions be " + victim)
	n = sum(1 for _, v in got if v == victim)
	assert ans.startswith("cleared 0 local, %d in redis" % n), ans
	for sid, srv in got:
		# cleared: the mark (the empty value) a refresh cannot overwrite
		assert (redis.get(KEY + sid) == "") == (srv == victim), (sid, srv, victim)
	# the cleared sessions are balanced afresh where no table holds them:
	# C binds each one anew (SET NX won), and Redis holds that binding
	won = ops(bs[2], "setnx", "won")
	for sid, srv in got:
		if srv == victim:
			get(bs[2], headers=[("Cookie", "DEMOSESSID=" + sid)])
			util.wait_until(lambda: redis.get(KEY + sid) not in (None, ""),
					what="the fresh binding")
	assert ops(bs[2], "setnx", "won") == won + n

	ans = admin(bs[2], "clear sessions be")
	assert ans.startswith("cleared %d local, %d in redis" % (n, len(got))), ans
	assert [k for k in redis.keys("t:*") if redis.get(k) != ""] == []


def test_clear_with_redis_down_clears_locally_and_says_so(fleet, redis):
	bs, apps = fleet("persist learn DEMOSESSID")
	learn(redis, bs[:1])
	redis.kill()
	t0 = time.monotonic()
	ans = admin(bs[0], "clear sessions be")
	assert time.monotonic() - t0 < 5, "the budget is 1 s"
	assert ans.startswith("cleared 3 local; redis unreachable ("), ans
	assert "not cleared there" in ans
	shown = admin(bs[0], "show sessions be")
	assert rows(shown) == [] and "# redis: unreachable (" in shown, shown
	j = json.loads(admin(bs[0], "json clear sessions be"))
	assert j["cleared"] == 0 and j["redis"]["state"] == "unreachable" and j["redis"]["error"], j
	assert ops(bs[0], "scan", "down") == 3  # clear, show, json clear


def test_glob_metacharacters_of_the_prefix_are_matched_literally(fleet, redis):
	"""The prefix may hold * ? [ ]: the SCAN pattern escapes them, so a
	clear never reaches another fleet's keys that the raw glob would match
	(the backslash: test_admin.c, shared_glob_escape)."""
	bs, apps = fleet("persist learn DEMOSESSID", prefix="t[1]*?:")
	got = []
	for _ in range(2):
		srv, r = get(bs[0], "/?format=json")
		got.append((r.json()["session"], srv))
	real = "t[1]*?:be/learn/DEMOSESSID:"
	for sid, _ in got:
		util.wait_until(lambda: redis.get(real + sid) is not None,
				what="the binding written behind")
	decoy = "t1xy:be/learn/DEMOSESSID:decoy"
	redis.cmd("SET", decoy, got[0][1])
	shown = rows(admin(bs[2], "show sessions be"))
	assert sorted(r[2] for r in shown) == sorted(s for s, _ in got), shown
	ans = admin(bs[2], "clear sessions be")
	assert ans.startswith("cleared 0 local, 2 in redis"), ans
	assert [k for k in redis.keys("*") if redis.get(k) != ""] == [decoy]


def test_show_and_clear_with_redis_stopped_answer_within_the_budget(fleet, redis):
	"""A SIGSTOPped Redis accepts the connection (its backlog) but never
	answers: the control thread gives up at its budget (1 s) and says so,
	the local part done."""
	bs, apps = fleet("persist learn DEMOSESSID")
	learn(redis, bs[:1])
	redis.sigstop()
	try:
		t0 = time.monotonic()
		shown = admin(bs[0], "show sessions be")
		ans = admin(bs[0], "clear sessions be")
		took = time.monotonic() - t0
	finally:
		redis.sigcont()
	assert took < 10, "two commands of a 1 s budget each took %.1f s" % took
	assert [r[6] for r in rows(shown)] == ["local"] * 3, shown
	assert "# redis: unreachable (no answer" in shown, shown
	assert ans.startswith("cleared 3 local; redis unreachable (no answer"), ans
	assert ops(bs[0], "scan", "timeout") == 2


def test_clear_is_not_undone_by_an_instance_that_still_holds_the_session(fleet, redis):
	"""A and B hold a session in their own tables; C clears the backend.
	B's next hits refresh the binding (once a second): that refresh must
	not write the cleared session back into Redis (A, which cleared it too,
	would adopt it again from there), and B must drop it and place the
	session afresh, as every other instance does."""
	bs, apps = fleet("persist learn DEMOSESSID")
	a, b, c = bs
	(sid, home), = learn(redis, [a], per=1)
	assert get(b, headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == home  # adopted from Redis
	ans = admin(c, "clear sessions be")
	assert ans.startswith("cleared 0 local, 1 in redis"), ans
	assert admin(a, "clear sessions be").startswith("cleared 1 local"), "A forgets it too"
	won = ops(b, "setnx", "won")
	# B's hits: its refresh is told the session was cleared, and B binds
	# it afresh (SET NX over the mark); meanwhile Redis never holds the
	# cleared binding again
	deadline = time.monotonic() + 20
	while ops(b, "setnx", "won") == won and time.monotonic() < deadline:
		get(b, headers=[("Cookie", "DEMOSESSID=" + sid)])
		assert redis.get(KEY + sid) in ("", None) or ops(b, "setnx", "won") > won, \
			"the cleared binding written back: %r" % redis.get(KEY + sid)
	assert ops(b, "setnx", "won") == won + 1
	util.wait_until(lambda: redis.get(KEY + sid) not in (None, ""), what="B's fresh binding")
	fresh = redis.get(KEY + sid)
	# every instance now agrees on B's fresh binding
	for x in bs:
		assert get(x, headers=[("Cookie", "DEMOSESSID=" + sid)])[0] == fresh


def checks(b, result):
	"""bollard_health_checks_total{result} summed over the servers."""
	out = 0.0
	for ln in metrics(b).splitlines():
		if ln.startswith("bollard_health_checks_total{") and 'result="%s"' % result in ln:
			out += float(ln.rsplit(" ", 1)[1])
	return out


def test_a_walk_waiting_for_redis_does_not_fail_the_health_checks(fleet, redis):
	"""The walk of `show sessions` / `clear sessions` holds the control
	thread, which also runs the health checks, for up to its budget while
	Redis is stopped. A check reply that arrived meanwhile is the control
	thread's delay, not the server's: no healthy server may be marked
	down for it (fall 1: one false timeout would)."""
	bs, apps = fleet("persist learn DEMOSESSID", n=1,
			 extra_backend="health http GET / interval 20ms timeout 300ms fall 1 rise 1")
	b = bs[0]
	learn(redis, [b], per=1)
	util.wait_until(lambda: checks(b, "ok") >= 9, what="the health checks running")
	redis.sigstop()
	try:
		for line in ("show sessions be", "clear sessions be", "show sessions be"):
			t0 = time.monotonic()
			ans = admin(b, line)
			assert time.monotonic() - t0 >= 0.9, "the walk did not wait for Redis: %s" % ans
	finally:
		redis.sigcont()
	ok = checks(b, "ok")
	util.wait_until(lambda: checks(b, "ok") >= ok + 9, what="more health checks after the walks")
	assert checks(b, "fail") == 0, b.stderr_text()[-2000:]
	assert "is DOWN" not in b.stderr_text(), b.stderr_text()[-2000:]
