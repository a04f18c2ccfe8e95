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


def trusted_conf(app, trust, extra=""):
	return conf(app, "    trust-forwarded %s\n%s" % (trust, extra))


def test_trusted_proto_is_kept_and_logged(demo_apps, bollard_factory):
	# Issue 10 item 12: behind a TLS terminator that bollard trusts, the
	# scheme it reports reaches the server and the log; X-Forwarded-Host
	# passes as it came.
	app = demo_apps(1)[0]
	b = bollard_factory(trusted_conf(app, "127.0.0.0/8"))
	h = echo(b.port, [("X-Forwarded-Proto", "HTTPS"), ("X-Forwarded-Host", "shop.example")])
	assert names(h, "x-forwarded-proto") == ["https"], h
	assert names(h, "x-forwarded-host") == ["shop.example"]
	# a list: what the nearest proxy wrote (the last element) counts
	h = echo(b.port, [("X-Forwarded-Proto", "http"), ("X-Forwarded-Proto", "ws, https")])
	assert names(h, "x-forwarded-proto") == ["https"], h
	# nothing believable: bollard's own scheme
	for bad in ("ht tp", "1http", "javascript:x", "x" * 40, ""):
		h = echo(b.port, [("X-Forwarded-Proto", bad)])
		assert names(h, "x-forwarded-proto") == ["http"], (bad, h)
	h = echo(b.port)
	assert names(h, "x-forwarded-proto") == ["http"]
	log = b.wait_log(n=8)
	assert [e.get("scheme") for e in log[:3]] == ["https", "https", "http"], log[:3]


def test_untrusted_proto_is_replaced(demo_apps, bollard_factory):
	app = demo_apps(1)[0]
	b = bollard_factory(trusted_conf(app, "10.0.0.0/8"))
	h = echo(b.port, [("X-Forwarded-Proto", "https"), ("Forwarded", "proto=https")])
	assert names(h, "x-forwarded-proto") == ["http"], h
	assert b.wait_log()[0].get("scheme") == "http"


def test_trusted_forwarded_proto(demo_apps, bollard_factory):
	app = demo_apps(1)[0]
	b = bollard_factory(trusted_conf(app, "127.0.0.0/8",
					 "    forwarded forwarded x-forwarded-proto\n"))
	h = echo(b.port, [("Forwarded", 'for=192.0.2.9;proto=http, for="[2001:db8::1]:80";PROTO="https"')])
	assert names(h, "x-forwarded-proto") == ["https"], h
	assert names(h, "forwarded") == ['for=192.0.2.9;proto=http, for="[2001:db8::1]:80";PROTO="https", '
					 "for=127.0.0.1;proto=https"], h
	# X-Forwarded-Proto, when there is one, is what counts
	h = echo(b.port, [("Forwarded", "proto=http"), ("X-Forwarded-Proto", "https")])
	assert names(h, "x-forwarded-proto") == ["https"], h
	assert [e.get("scheme") for e in b.wait_log(n=2)] == ["https", "https"]
