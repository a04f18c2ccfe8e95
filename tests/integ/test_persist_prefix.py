"""`persist cookie NAME prefix`: the application's own session cookie
leaves as NAME=SERVER~value and comes back stripped, so the application
never sees the prefix and the client stays on the server holding its
session."""

import json

import util


def conf(apps):
	servers = "".join("    server %s 127.0.0.1:%d\n" % (a.name, a.port) for a in apps)
	return ("global\n    threads 1\n    log stdout\n    log-format json\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n    default-backend be\n"
		"backend be\n    persist cookie DEMOSESSID prefix\n%s" % servers)


def test_prefix_cookie_keeps_the_session(demo_apps, bollard_factory):
	apps = demo_apps(3)
	b = bollard_factory(conf(apps))
	r = util.request(b.port, "GET", "/?format=json")
	sc = r.headers.get("Set-Cookie")
	server = json.loads(r.body)["server"]
	name, _, value = sc.split(";")[0].partition("=")
	assert name == "DEMOSESSID" and value.startswith(server + "~"), sc
	app_value = value.split("~", 1)[1]
	for i in range(6):
		r = util.request(b.port, "GET", "/?format=json", headers=[("Cookie", "DEMOSESSID=" + value)])
		d = json.loads(r.body)
		assert d["server"] == server and d["session"] == app_value and not d["new"], d
		assert d["visits"] == i + 2
	# the application never sees the prefix
	r = util.request(b.port, "GET", "/echo", headers=[("Cookie", "a=1; DEMOSESSID=" + value)])
	hdrs = dict(json.loads(r.body)["headers"])
	assert hdrs["Cookie"] == "a=1; DEMOSESSID=" + app_value, hdrs
	log = [e for e in b.access_log() if e.get("target") == "/?format=json"]
	assert log[0]["persist"] == "new" and all(e["persist"] == "hit" for e in log[1:]), log
	assert all(e["persist_method"] == "prefix" for e in log)


def test_prefix_naming_no_server_moves(demo_apps, bollard_factory):
	apps = demo_apps(2)
	b = bollard_factory(conf(apps))
	r = util.request(b.port, "GET", "/whoami", headers=[("Cookie", "DEMOSESSID=ghost~abc")])
	assert r.status == 200
	util.wait_until(lambda: b.access_log(), what="a log line")
	e = b.access_log()[-1]
	assert e["persist"] == "moved" and e.get("persist_reason") == "removed", e
