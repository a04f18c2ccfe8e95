"""Per-server maxconn (SPEC 3.2): persistent requests beyond it wait in a
queue bounded by `timeout queue` (then 503), new sessions go elsewhere."""

import threading
import time

import util


def conf(apps, queue="5s"):
	return ("global\n    threads 1\n    log stdout\n    log-format json\n"
		"defaults\n    timeout queue %s\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
		"backend be\n    persist cookie BOLLARD insert\n"
		"    server %s 127.0.0.1:%d maxconn 1\n    server %s 127.0.0.1:%d\n"
		% (queue, apps[0].name, apps[0].port, apps[1].name, apps[1].port))


def cookie_for(port, name):
	for _ in range(10):
		r = util.request(port, "GET", "/whoami")
		if r.text().strip() == name:
			sc = r.headers.get("Set-Cookie")
			return sc.split(";")[0]
	raise AssertionError("no cookie for " + name)


def slow(port, cookie, ms, out):
	out.append(util.request(port, "GET", "/slow?ms=%d" % ms, headers=[("Cookie", cookie)],
				timeout=10))


def holds_app1(act):
	"""Until the slow request reached app1 (it then holds app1's only
	slot): a fixed pause could end before, on a slow machine."""
	util.wait_until(lambda: act.requests()[0] == 1, what="the slow request at app1")


def test_persistent_request_waits_for_its_full_server(demo_apps, bollard_factory):
	apps = demo_apps(2)
	b = bollard_factory(conf(apps))
	ck = cookie_for(b.port, "app1")
	held = []
	act = util.AppActivity(apps)
	t = threading.Thread(target=slow, args=(b.port, ck, 1200, held))
	t.start()
	holds_app1(act)
	# a new client does not wait: it goes to app2
	assert util.request(b.port, "GET", "/whoami").text().strip() == "app2"
	# the session of app1 waits, then is served by app1
	start = time.monotonic()
	r = util.request(b.port, "GET", "/whoami", headers=[("Cookie", ck)], timeout=10)
	waited = time.monotonic() - start
	t.join(10)
	assert held and held[0].status == 200
	assert r.status == 200 and r.text().strip() == "app1", r
	assert waited > 0.4  # it really waited for the slot
	# its log line is written just after its response: wait for it
	util.wait_until(lambda: [x for x in b.access_log()
				 if x.get("target") == "/whoami" and x.get("persist") == "hit"],
			what="the queued request's log line")
	e = [x for x in b.access_log() if x.get("target") == "/whoami" and x.get("persist") == "hit"][-1]
	assert e["server"] == "app1", e


def test_queue_timeout_answers_503(demo_apps, bollard_factory):
	apps = demo_apps(2)
	b = bollard_factory(conf(apps, queue="300ms"))
	ck = cookie_for(b.port, "app1")
	held = []
	act = util.AppActivity(apps)
	t = threading.Thread(target=slow, args=(b.port, ck, 1500, held))
	t.start()
	holds_app1(act)
	r = util.request(b.port, "GET", "/whoami", headers=[("Cookie", ck)], timeout=10)
	t.join(10)
	assert r.status == 503, r
	assert any(x.get("term") == "queue-timeout" for x in b.access_log())
