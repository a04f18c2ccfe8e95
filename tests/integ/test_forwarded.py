"""`forwarded`: which forwarding headers a frontend adds (SPEC 4)."""

import json

import util


def conf(app, line=""):
	return ("global\n    threads 1\n    log stdout\n"
		"frontend fe\n    bind 127.0.0.1:{port}\n%s    default-backend be\n"
		"backend be\n    server %s 127.0.0.1:%d\n" % (line, app.name, app.port))


def echo(port, headers=()):
	r = util.request(port, "GET", "/echo", headers=list(headers))
	assert r.status == 200, r
	return json.loads(r.body)["headers"]


def names(hdrs, name):
	return [v for k, v in hdrs if k.lower() == name]


def test_default_headers(demo_apps, bollard_factory):
	app = demo_apps(1)[0]
	b = bollard_factory(conf(app))
	h = echo(b.port, [("X-Forwarded-Proto", "https")])
	assert names(h, "x-forwarded-for") == ["127.0.0.1"]
	assert names(h, "x-forwarded-proto") == ["http"]  # the client's claim replaced
	assert len(names(h, "x-request-id")[0]) == 16
	assert names(h, "forwarded") == []


def test_rfc7239_forwarded(demo_apps, bollard_factory):
	app = demo_apps(1)[0]
	b = bollard_factory(conf(app, "    forwarded forwarded x-request-id\n"))
	h = echo(b.port, [("Forwarded", "for=192.0.2.60;proto=https"), ("X-Forwarded-For", "1.2.3.4")])
	assert names(h, "forwarded") == ["for=192.0.2.60;proto=https, for=127.0.0.1;proto=http"]
	# x-forwarded-for not asked for: the client's passes unchanged
	assert names(h, "x-forwarded-for") == ["1.2.3.4"]
	assert names(h, "x-forwarded-proto") == []


def test_forwarded_none(demo_apps, bollard_factory, bollard_run):
	app = demo_apps(1)[0]
	b = bollard_factory(conf(app, "    forwarded none\n"))
	h = echo(b.port, [("X-Request-Id", "abc")])
	assert names(h, "x-forwarded-for") == [] and names(h, "x-forwarded-proto") == []
	assert names(h, "x-request-id") == ["abc"]
	r = bollard_run("check", "-c", "{conf}", config=conf(app, "    forwarded none forwarded\n")
			.format(port=util.free_port()))
	assert r.returncode == 1 and "'none' cannot be combined" in r.stderr + r.stdout
