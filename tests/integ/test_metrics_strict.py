"""/metrics (SPEC §7) parsed whole and strictly, as a Prometheus server
would, with the rules of the text exposition format 0.0.4 enforced rather
than tolerated: a bollard with two backends, cookie, source and learned
persistence, health checks and traffic; every line is a HELP, a TYPE or a
sample; each family is described once, typed before its samples and kept
contiguous; names and label names are valid, label values escape exactly
backslash, double quote and line feed; histograms are cumulative, end with
le="+Inf" equal to _count and have a _sum. Then the numbers themselves:
counters never go down across scrapes and across a reload, and per-server
series come with `add server` and go with `del server`.

The parser is written here (stdlib only) and tested on its own first, so a
lenient parser cannot make the real checks pass vacuously."""

import math
import re
import subprocess
from pathlib import Path

import pytest

import util

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

# What SPEC §7 promises, with the labels each series must carry.
REQUIRED = {
	"bollard_requests_total": ("counter", {"frontend", "backend", "server", "code"}),
	"bollard_persistence_total": ("counter", {"backend", "method", "result"}),
	"bollard_server_state": ("gauge", {"backend", "server", "state"}),
	"bollard_server_active_connections": ("gauge", {"backend", "server"}),
	"bollard_server_sessions": ("gauge", {"backend", "server"}),
	"bollard_persistence_table_entries": ("gauge", {"backend", "method"}),
	"bollard_persistence_evictions_total": ("counter", {"backend", "method"}),
	"bollard_request_duration_seconds": ("histogram", {"backend"}),
	"bollard_health_checks_total": ("counter", {"backend", "server", "result"}),
}
PER_SERVER = ("bollard_requests_total", "bollard_server_state",
	      "bollard_server_active_connections", "bollard_server_sessions",
	      "bollard_health_checks_total")


class FormatError(AssertionError):
	pass


def _value(text, where):
	if text in ("+Inf", "-Inf", "NaN"):
		return float(text.replace("Inf", "inf").replace("NaN", "nan"))
	# Go's ParseFloat grammar, minus hex floats, which no exporter writes
	if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
		raise FormatError("%s: bad sample value %r" % (where, text))
	return float(text)


def _labels(s, i, where):
	"""Parse `{name="value",...}` starting at s[i] == '{'; returns
	(tuple of (name, value), index after '}')."""
	assert s[i] == "{"
	i += 1
	out = []
	while True:
		if s.startswith("}", i):
			return tuple(out), i + 1
		m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, i)
		if not m:
			raise FormatError("%s: bad label name at %r" % (where, s[i:i + 20]))
		name = m.group(0)
		if name.startswith("__"):
			raise FormatError("%s: reserved label name %s" % (where, name))
		i = m.end()
		if not s.startswith('="', i):
			raise FormatError("%s: expected =\" after label %s" % (where, name))
		i += 2
		val = []
		while True:
			if i >= len(s):
				raise FormatError("%s: unterminated label value" % where)
			c = s[i]
			if c == '"':
				i += 1
				break
			if c == "\\":
				nxt = s[i + 1:i + 2]
				if nxt not in ("\\", '"', "n"):
					raise FormatError("%s: bad escape \\%s in label value" % (where, nxt))
				val.append("\n" if nxt == "n" else nxt)
				i += 2
				continue
			val.append(c)
			i += 1
		if name in [n for n, _ in out]:
			raise FormatError("%s: label %s twice" % (where, name))
		out.append((name, "".join(val)))
		if s.startswith(",", i):
			i += 1
			if s.startswith("}", i):
				return tuple(out), i + 1  # a trailing comma is allowed
		elif not s.startswith("}", i):
			raise FormatError("%s: expected , or } at %r" % (where, s[i:i + 20]))


def _family_of(name, types):
	for suffix in ("_bucket", "_sum", "_count"):
		base = name[:-len(suffix)]
		if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
			return base
	return name


def parse_exposition(text):
	"""Parse a whole text exposition strictly. Returns (types, helps,
	samples) with samples {(name, labels tuple sorted): value}."""
	if not text.endswith("\n"):
		raise FormatError("exposition does not end with a line feed")
	types, helps, samples = {}, {}, {}
	order = []  # families in order of first appearance, for contiguity
	current = None
	for no, line in enumerate(text[:-1].split("\n"), 1):
		where = "line %d %r" % (no, line[:120])
		if line == "" or line != line.strip(" \t") or "\r" in line:
			raise FormatError("%s: empty line or stray whitespace" % where)
		if line.startswith("#"):
			parts = line.split(" ", 3)
			if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
				raise FormatError("%s: a comment that is neither HELP nor TYPE" % where)
			kind, name = parts[1], parts[2]
			if not METRIC_NAME.match(name):
				raise FormatError("%s: bad metric name" % where)
			if name != current:
				if name in order:
					raise FormatError("%s: family %s is not contiguous" % (where, name))
				order.append(name)
				current = name
			if kind == "HELP":
				if name in helps:
					raise FormatError("%s: second HELP for %s" % (where, name))
				if name in types:
					raise FormatError("%s: HELP after TYPE for %s" % (where, name))
				if len(parts) < 4 or not parts[3].strip():
					raise FormatError("%s: empty HELP" % where)
				if re.search(r"\\[^\\n]", parts[3]):
					raise FormatError("%s: bad escape in HELP" % where)
				helps[name] = parts[3]
			else:
				if name in types:
					raise FormatError("%s: second TYPE for %s" % (where, name))
				if len(parts) != 4 or parts[3] not in TYPES:
					raise FormatError("%s: bad TYPE line" % where)
				if any(_family_of(n, {name: parts[3]}) == name for n, _ in samples):
					raise FormatError("%s: TYPE after samples of %s" % (where, name))
				types[name] = parts[3]
			continue
		m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
		if not m:
			raise FormatError("%s: bad metric name" % where)
		name, i = m.group(0), m.end()
		labels = ()
		if line.startswith("{", i):
			labels, i = _labels(line, i, where)
		if not line.startswith(" ", i):
			raise FormatError("%s: expected one space before the value" % where)
		rest = line[i + 1:].split(" ")
		if len(rest) != 1:
			# a timestamp is legal in the format, but bollard writes none
			raise FormatError("%s: unexpected fields after the value" % where)
		value = _value(rest[0], where)
		fam = _family_of(name, types)
		if fam not in types or fam not in helps:
			raise FormatError("%s: sample before HELP and TYPE of its family" % where)
		if fam != current:
			raise FormatError("%s: sample of %s inside family %s" % (where, fam, current))
		if types[fam] == "histogram" and name == fam:
			raise FormatError("%s: bare histogram sample" % where)
		if types[fam] == "counter" and (value < 0 or math.isnan(value)):
			raise FormatError("%s: negative counter" % where)
		key = (name, tuple(sorted(labels)))
		if key in samples:
			raise FormatError("%s: duplicate series" % where)
		samples[key] = value
	for fam in order:
		if fam not in types or fam not in helps:
			raise FormatError("family %s lacks HELP or TYPE" % fam)
	_check_histograms(types, samples)
	return types, helps, samples


def _check_histograms(types, samples):
	for fam, t in types.items():
		if t != "histogram":
			continue
		series = {}
		for (name, labels), v in samples.items():
			if name != fam + "_bucket":
				continue
			d = dict(labels)
			if "le" not in d:
				raise FormatError("%s_bucket without le: %s" % (fam, labels))
			rest = tuple(kv for kv in labels if kv[0] != "le")
			series.setdefault(rest, []).append((_value(d["le"], fam + " le"), d["le"], v))
		for rest, buckets in series.items():
			buckets.sort()
			if buckets[-1][1] != "+Inf":
				raise FormatError("%s%s: last bucket is not le=\"+Inf\"" % (fam, rest))
			if len({b[0] for b in buckets}) != len(buckets):
				raise FormatError("%s%s: duplicate le" % (fam, rest))
			counts = [b[2] for b in buckets]
			if counts != sorted(counts):
				raise FormatError("%s%s: buckets not cumulative: %s" % (fam, rest, buckets))
			if (fam + "_count", rest) not in samples or (fam + "_sum", rest) not in samples:
				raise FormatError("%s%s: _count or _sum missing" % (fam, rest))
			if samples[(fam + "_count", rest)] != counts[-1]:
				raise FormatError("%s%s: +Inf bucket %s != _count %s" % (
					fam, rest, counts[-1], samples[(fam + "_count", rest)]))
		for (name, labels) in samples:
			if name in (fam + "_count", fam + "_sum") and labels not in series:
				raise FormatError("%s%s without buckets" % (name, labels))


# ------------------------------------------------------- the parser, tested first

GOOD = ('# HELP a_total Things.\n# TYPE a_total counter\n'
	'a_total{x="q\\"uote",y="back\\\\slash",z="l\\nf"} 3\n'
	'# HELP h Latency.\n# TYPE h histogram\n'
	'h_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.3\nh_count 2\n'
	'# HELP g A gauge.\n# TYPE g gauge\ng -1.5e3\n')

BAD = {
	"no final newline": GOOD[:-1],
	"bad escape": GOOD.replace('l\\nf', 'l\\tf'),
	"raw quote": GOOD.replace('q\\"uote', 'q"uote'),
	"free comment": "# hello\n" + GOOD,
	"TYPE twice": GOOD + "# TYPE g gauge\n",
	"HELP twice": GOOD.replace("# TYPE g gauge", "# HELP g again\n# TYPE g gauge"),
	"no TYPE": GOOD.replace("# TYPE g gauge\n", ""),
	"TYPE after sample": GOOD.replace("# TYPE g gauge\ng -1.5e3\n", "g -1.5e3\n# TYPE g gauge\n"),
	"not contiguous": GOOD + "a_total{x=\"2\"} 1\n",
	"bad metric name": GOOD.replace("g -1.5e3", "9g -1.5e3"),
	"bad label name": GOOD.replace('y="back', '1y="back'),
	"bad value": GOOD.replace("g -1.5e3", "g 1,5"),
	"not cumulative": GOOD.replace('h_bucket{le="+Inf"} 2', 'h_bucket{le="+Inf"} 0'),
	"+Inf != count": GOOD.replace("h_count 2", "h_count 3"),
	"no +Inf": GOOD.replace('h_bucket{le="+Inf"} 2\n', ""),
	"no sum": GOOD.replace("h_sum 0.3\n", ""),
	"duplicate series": GOOD.replace("g -1.5e3\n", "g -1.5e3\ng 2\n"),
	"negative counter": GOOD.replace("} 3\n", "} -3\n"),
	"two spaces": GOOD.replace("g -1.5e3", "g  -1.5e3"),
	"timestamp": GOOD.replace("g -1.5e3", "g 1 1700000000"),
}


def test_parser_accepts_valid_and_unescapes():
	types, helps, samples = parse_exposition(GOOD)
	assert types == {"a_total": "counter", "h": "histogram", "g": "gauge"}
	(name, labels), = [k for k in samples if k[0] == "a_total"]
	assert dict(labels) == {"x": 'q"uote', "y": "back\\slash", "z": "l\nf"}
	assert samples[("g", ())] == -1500


@pytest.mark.parametrize("case", sorted(BAD))
def test_parser_rejects(case):
	with pytest.raises(FormatError):
		parse_exposition(BAD[case])


# ------------------------------------------------------- against the real binary

CONF = """global
    threads 2
    log stdout
    admin-socket {tmp}/adm.sock
    stats-listen 127.0.0.1:{port_stats}
    state-file {tmp}/bollard.state

defaults
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 1

frontend web
    bind 127.0.0.1:{port}
    default-backend app
    route path-prefix /learn learned

backend app
    balance roundrobin
    persist cookie BOLLARD insert max-idle 30m
    persist source expire 10m
    health http GET /healthz expect 200 interval 200ms timeout 1s rise 1 fall 2
{app_servers}
backend learned
    balance leastconn
    persist learn DEMOSESSID expire 10m
    health http GET /healthz interval 300ms rise 1 fall 2
{learned_servers}"""


def _scrape(b):
	r = util.request(b.ports["port_stats"], "GET", "/metrics")
	assert r.status == 200, r
	ctype = r.headers.get("Content-Type") or ""
	assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
	return parse_exposition(r.text())


def _ctl(bollard_bin, b, *cmd):
	sock = str(Path(b.conf_path).parent / "adm.sock")
	r = subprocess.run([bollard_bin, "ctl", "-s", sock] + list(cmd), capture_output=True,
			   text=True, timeout=15)
	assert r.returncode == 0, r
	return r.stdout


def _series(samples, name, **want):
	return {labels: v for (n, labels), v in samples.items()
		if n == name and all(dict(labels).get(k) == x for k, x in want.items())}


def _traffic(b, n=30):
	# cookie clients (new, then hit), a client without cookies (source),
	# learned sessions on the second backend
	cookie = None
	for i in range(n):
		h = [("Cookie", cookie)] if cookie else []
		r = util.request(b.port, "GET", "/whoami", headers=h)
		assert r.status == 200, r
		sc = r.headers.get("Set-Cookie")
		if sc and sc.startswith("BOLLARD="):
			cookie = sc.split(";")[0]
	for i in range(n // 3):
		assert util.request(b.port, "GET", "/?i=%d" % i).status == 200
		assert util.request(b.port, "GET", "/learn/x").status in (200, 404)
	assert util.request(b.port, "GET", "/whoami", headers=[
		("Cookie", "BOLLARD=forged-" + "A" * 40)]).status == 200


def _monotonic(before, after, what, allow_gone=()):
	types_b, _, sb = before
	types_a, _, sa = after
	checked = 0
	for (name, labels), v in sb.items():
		fam = _family_of(name, types_b)
		if types_b[fam] not in ("counter", "histogram") or name.endswith("_sum") and v == 0:
			continue
		if (name, labels) not in sa:
			assert any(dict(labels).get("server") == s for s in allow_gone), \
				"%s: series vanished: %s%s" % (what, name, dict(labels))
			continue
		assert sa[(name, labels)] >= v, "%s: counter went down: %s%s %s -> %s" % (
			what, name, dict(labels), v, sa[(name, labels)])
		checked += 1
	assert checked >= 20, "%s: too few counters compared (%d)" % (what, checked)


def test_whole_exposition_strict(demo_apps, bollard_factory, bollard_bin):
	apps = demo_apps(5)
	srv = lambda xs: "".join("    server %s 127.0.0.1:%d\n" % (a.name, a.port) for a in xs)
	b = bollard_factory(CONF, app_servers=srv(apps[:3]), learned_servers=srv(apps[3:4]))

	def checked():
		_, _, s = _scrape(b)
		ok = _series(s, "bollard_health_checks_total", result="ok")
		return s if len(ok) == 4 and all(v > 0 for v in ok.values()) else None
	util.wait_until(checked, timeout=15, what="health checks counted for every server")

	_traffic(b)
	first = _scrape(b)
	types, helps, s = first
	for name, (t, labels) in REQUIRED.items():
		assert types.get(name) == t, "%s: TYPE %s, want %s" % (name, types.get(name), t)
		sample_name = name + "_bucket" if t == "histogram" else name
		got = _series(s, sample_name)
		assert got, "no samples of %s" % name
		for lbl in got:
			assert labels <= set(dict(lbl)), "%s%s lacks %s" % (name, lbl, labels)

	# every server of both backends has its per-server series, one state set
	for be, names in (("app", ["app1", "app2", "app3"]), ("learned", ["app4"])):
		for sv in names:
			for fam in PER_SERVER:
				assert _series(s, fam, backend=be, server=sv), (fam, be, sv)
			states = _series(s, "bollard_server_state", backend=be, server=sv)
			assert sorted(dict(lb)["state"] for lb in states) == ["down", "drain", "maint", "ready"]
			assert sum(states.values()) == 1 and states[tuple(sorted(
				{"backend": be, "server": sv, "state": "ready"}.items()))] == 1

	# persistence results: the cookie clients made news and hits (the forged
	# cookie lands home by its source fallback: a source hit, and an invalid
	# counted under cookie)
	pers = {dict(lb)["method"] + "/" + dict(lb)["result"]: v
		for lb, v in _series(s, "bollard_persistence_total", backend="app").items()}
	assert any(k.endswith("/hit") and v > 0 for k, v in pers.items()), pers
	assert any(k.endswith("/new") and v > 0 for k, v in pers.items()), pers
	for res in ("hit", "new", "moved", "invalid", "expired"):
		assert any(k.endswith("/" + res) for k in pers), (res, pers)
	assert _series(s, "bollard_persistence_table_entries", backend="app")

	# the histogram saw the requests of the app backend
	count = s[("bollard_request_duration_seconds_count", (("backend", "app"),))]
	assert count >= 30
	assert s[("bollard_request_duration_seconds_sum", (("backend", "app"),))] > 0
	les = [dict(lb)["le"] for lb in _series(s, "bollard_request_duration_seconds_bucket",
						  backend="app")]
	assert "+Inf" in les and len(les) >= 5
	ok2xx = sum(_series(s, "bollard_requests_total", backend="app", code="2xx").values())
	# one frontend reaches each backend: the frontend label names it
	assert {dict(lb)["frontend"] for lb in _series(s, "bollard_requests_total")} == {"web"}
	assert ok2xx >= 30

	# counters are monotonic across scrapes under traffic
	_traffic(b, n=9)
	second = _scrape(b)
	_monotonic(first, second, "second scrape")

	# ... and across a reload (same names: counters carry over)
	reloads = second[2][("bollard_reloads_total", ())]
	_ctl(bollard_bin, b, "reload")
	util.wait_until(lambda: _scrape(b)[2][("bollard_reloads_total", ())] > reloads,
			timeout=10, what="reload counted")
	third = _scrape(b)
	_monotonic(second, third, "after reload")
	_traffic(b, n=6)
	fourth = _scrape(b)
	_monotonic(third, fourth, "traffic after reload")

	# add server: its series appear; del server: they disappear
	out = _ctl(bollard_bin, b, "add", "server", "app/app5", "127.0.0.1:%d" % apps[4].port)
	assert "app5" in out
	_, _, s5 = _scrape(b)
	for fam in PER_SERVER:
		assert _series(s5, fam, backend="app", server="app5"), "%s has no app5 series" % fam
	states = _series(s5, "bollard_server_state", backend="app", server="app5")
	assert [dict(lb)["state"] for lb, v in states.items() if v == 1] == ["maint"]
	_ctl(bollard_bin, b, "del", "server", "app/app5")
	fifth = _scrape(b)
	gone = [k for k in fifth[2] if dict(k[1]).get("server") == "app5"]
	assert not gone, "series of a deleted server remain: %s" % gone
	_monotonic(fourth, fifth, "after del server", allow_gone=("app5",))


def test_evictions_counted(demo_apps, bollard_factory, config_for):
	"""A full table evicts its least recently used entry: counted in
	bollard_persistence_evictions_total{backend,method} (issue 9 item 19)."""
	apps = demo_apps(2)
	b = bollard_factory(config_for(apps, global_extra="    stats-listen 127.0.0.1:{port_stats}",
				       backend_extra="    persist header X-User size 2"))

	def evictions():
		_, _, s = _scrape(b)
		got = _series(s, "bollard_persistence_evictions_total", backend="be", method="header")
		assert len(got) == 1, got
		return list(got.values())[0], s
	assert evictions()[0] == 0
	for u in range(5):
		assert util.request(b.port, "GET", "/whoami", [("X-User", "user%d" % u)]).status == 200
	n, s = evictions()
	assert n == 3
	assert _series(s, "bollard_persistence_table_entries", backend="be", method="header") == {
		(("backend", "be"), ("method", "header")): 2}


def test_moved_reasons_are_the_ones_that_happen(demo_apps, bollard_factory, config_for):
	"""A persistent request whose server is at maxconn waits in its queue
	(SPEC 3.2), it never moves: so `maxconn` is no reason a session moves,
	and neither /metrics nor /api/stats may offer it (issue 9 item 19)."""
	apps = demo_apps(2)
	b = bollard_factory(config_for([(apps[0].name, apps[0].port, "maxconn 1"),
					(apps[1].name, apps[1].port)],
				       global_extra="    stats-listen 127.0.0.1:{port_stats}",
				       backend_extra="    persist cookie BOLLARD insert"))
	_, _, s = _scrape(b)
	reasons = {dict(lb)["reason"] for lb in _series(s, "bollard_persistence_moved_total",
							  backend="be")}
	assert reasons == {"down", "maint", "removed", "connect"}, reasons
	st = util.request(b.ports["port_stats"], "GET", "/api/stats").json()
	assert set(st["backends"][0]["moved"]) == reasons, st["backends"][0]["moved"]
