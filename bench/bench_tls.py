"""
bench_tls.py - the TLS rows of `make bench` (issue 12, "Targets"); bench.py
runs them after its cleartext scenarios, or alone with BENCH_ONLY=tls.

Same machinery as bench.py (the same backends, the configuration templates
of bench/configs with the bind turned into a TLS one, the same pinning,
rounds with the order of the proxies rotated, CPU time from /proc), and on
every proxy the same certificate (ECDSA P-256, made here with openssl), TLS
1.3 only, one cipher suite (TLS_AES_128_GCM_SHA256) and the library's
default key exchange (X25519 first, for all three: checked and reported).

Rows:
  tls-keepalive  wrk over TLS, keep-alive, round robin: bollard, HAProxy, NGINX
  tls-cookie     the same with insert-cookie persistence, every request
                 carrying the cookie the proxy issued: bollard, HAProxy
                 (NGINX 1.22 has no insert cookie, as in bench.py)
  hs-full        full handshakes: parallel `openssl s_time -new`, each
                 connection one handshake and one GET /whoami (HTTP/1.0)
  hs-resumed     the same with `-reuse`: every connection after the first of
                 each client resumes with a TLS 1.3 session ticket (s_time
                 only receives the ticket when it reads an answer, hence the
                 GET in both rows); the share actually resumed is reported
  h2-cookie      HTTP/2 over TLS: `h2load -c10 -m10` with the cookie, alpn
                 h2,http/1.1: HAProxy, and bollard once its configuration
                 accepts alpn h2 (until then the cell says so)
  idle           no rounds: only the idle-memory rows below, HTTP/1.1 (all
                 three) and HTTP/2 (bollard, HAProxy), and the allocations
Once, before the rounds: the memory each idle TLS connection costs (N
connections, handshake and one request each, VmRSS before and after; over
HTTP/2 too when a row runs the h2 configuration), and
the heap allocations per request on TLS keep-alive connections after the
handshake (bollard under build/alloccount.so, which counts libcrypto's own
allocations apart).

The ranking figure is CPU time per request (or per handshake) of the
proxy: on two shared cores req/s says as much about the neighbours.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import bench as B

CIPHER = "TLS_AES_128_GCM_SHA256"
SCENARIOS = ("tls-keepalive", "tls-cookie", "hs-full", "hs-resumed", "h2-cookie")
# Which configuration (variant) each row runs on, and which proxies have one.
ROW_VARIANT = {"tls-keepalive": "tls-plain", "tls-cookie": "tls-cookie", "hs-full": "tls-plain",
	       "hs-resumed": "tls-plain", "h2-cookie": "tls-h2"}
VARIANT_PROXIES = {"tls-plain": ("bollard", "haproxy", "nginx"),
		   "tls-cookie": ("bollard", "haproxy"), "tls-h2": ("bollard", "haproxy")}
H2_NA = "n/a (HTTP/2 not built)"

# wrk rows go through bench.run_wrk, which takes its scenarios from there.
B.SCENARIOS["tls-keepalive"] = B.scen("TLS 1.3 keep-alive round robin, -c{c}", direct=False)
B.SCENARIOS["tls-cookie"] = B.scen("TLS 1.3 keep-alive, -c{c}, insert-cookie persistence, every "
				   "request carrying the cookie the proxy issued", cookie=True,
				   direct=False)


def add_args(ap):
	ap.add_argument("--tls-rows", default=",".join(SCENARIOS),
			help="TLS rows (BENCH_ONLY=tls or the end of a full run): %s; or %s alone: "
			"the idle-memory and allocation rows only" % (",".join(SCENARIOS), IDLE_ONLY))
	ap.add_argument("--tls-idle", type=int, default=1000, metavar="N",
			help="idle TLS connections for the memory row (default 1000; 0: skip)")
	ap.add_argument("--tls-alloc-requests", type=int, default=8000, metavar="N",
			help="requests counted for the allocations row (default 8000; 0: skip)")
	ap.add_argument("--stime-clients", type=int, default=3,
			help="parallel openssl s_time clients in the handshake rows (default 3)")


IDLE_ONLY = "idle"


def check_args(ap, args):
	args.tls_rows = [s for s in args.tls_rows.split(",") if s]
	args.tls_idle_only = args.tls_rows == [IDLE_ONLY]
	if args.tls_idle_only:
		args.tls_rows = []
	for s in args.tls_rows:
		if s not in SCENARIOS:
			ap.error("unknown TLS row %r (known: %s)" % (s, ", ".join(SCENARIOS)))


def make_cert(tmp):
	"""One ECDSA P-256 certificate for localhost with its key, in one PEM
	(what bollard's and HAProxy's crt take; NGINX reads both from it)."""
	key, crt, pem = (os.path.join(tmp, n) for n in ("key.pem", "crt.pem", "site.pem"))
	subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
			"-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=localhost",
			"-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
		       check=True, capture_output=True, timeout=60)
	with open(pem, "w") as f:
		f.write(open(crt).read() + open(key).read())
	os.chmod(tmp, 0o755)
	os.chmod(pem, 0o644)   # NGINX's workers read it as another user
	return pem


def alpn_of(variant):
	return "h2,http/1.1" if variant == "tls-h2" else "http/1.1"


def tls_text(name, text, port, pem, variant):
	"""The cleartext configuration bench.py renders, with its bind made TLS."""
	alpn = alpn_of(variant)
	if name == "bollard":
		old = "    bind 127.0.0.1:%d\n" % port
		new = "    bind 127.0.0.1:%d tls crt %s alpn %s min-version 1.3 ciphersuites %s\n" % (
			port, pem, alpn, CIPHER)
	elif name == "haproxy":
		old = "    bind 127.0.0.1:%d\n" % port
		new = "    bind 127.0.0.1:%d ssl crt %s alpn %s ssl-min-ver TLSv1.3 ciphersuites %s\n" % (
			port, pem, alpn, CIPHER)
	else:
		old = "        listen 127.0.0.1:%d;\n" % port
		new = ("        listen 127.0.0.1:%d ssl;\n        ssl_certificate %s;\n"
		       "        ssl_certificate_key %s;\n        ssl_protocols TLSv1.3;\n"
		       "        ssl_conf_command Ciphersuites %s;\n        ssl_session_tickets on;\n"
		       % (port, pem, pem, CIPHER))
	if text.count(old) != 1:
		B.die("%s template: no single '%s' to make TLS" % (name, old.strip()))
	return text.replace(old, new)


def bollard_refuses_h2(args, tmp, pem):
	"""The reason when `bollard check` refuses `alpn h2` (HTTP/2 not built), else None."""
	conf = os.path.join(tmp, "h2-check.conf")
	with open(conf, "w") as f:
		f.write("frontend f\n    bind 127.0.0.1:1 tls crt %s alpn h2,http/1.1\n"
			"    default-backend b\nbackend b\n    server s 127.0.0.1:1\n" % pem)
	cp = subprocess.run([args.bollard, "check", "-c", conf], capture_output=True, text=True, timeout=30)
	return None if cp.returncode == 0 else (cp.stdout + cp.stderr).strip()


def tls_get(port, path=B.TARGET, headers=(), timeout=2.0):
	"""One GET over TLS (no verification: the bench trusts its own proxies)."""
	ctx = ssl._create_unverified_context()
	ctx.set_alpn_protocols(["http/1.1"])
	with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
		with ctx.wrap_socket(raw, server_hostname="localhost") as s:
			s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n%s\r\n"
				   % (path, "".join(h + "\r\n" for h in headers))).encode())
			data = b""
			while True:
				try:
					chunk = s.recv(65536)
				except ssl.SSLError:
					break   # a close without close_notify
				if not chunk:
					break
				data += chunk
	head, _, body = data.partition(b"\r\n\r\n")
	status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
	return status, head.decode(errors="replace"), body.strip().decode(errors="replace")


def start_tls_proxy(name, variant, args, tmp, backends, procs, pem, label=None):
	port = B.free_port()
	label = label or "%s-%s" % (name, variant)
	prefix = os.path.join(tmp, label)
	os.makedirs(prefix)
	os.chmod(prefix, 0o755)
	persist = B.VARIANTS["cookie" if variant in ("tls-cookie", "tls-h2") else "plain"][name]
	cookie = variant in ("tls-cookie", "tls-h2")
	if name == "bollard":
		servers = "\n".join("    server %s 127.0.0.1:%d" % b for b in backends)
		path = B.render("bollard.conf.in", os.path.join(prefix, "bollard.conf"),
				{"PORT": port, "MAXCONN": B.MAXCONN, "SERVERS": servers, "PERSIST": persist,
				 "THREADS": 1})
		argv = [args.bollard, "-c", path]
	elif name == "haproxy":
		servers = "\n".join("    server %s 127.0.0.1:%d%s" % (b[0], b[1], " cookie " + b[0]
								if cookie else "") for b in backends)
		path = B.render("haproxy.cfg.in", os.path.join(prefix, "haproxy.cfg"),
				{"PORT": port, "MAXCONN": B.MAXCONN, "REUSE": args.haproxy_reuse,
				 "SERVERS": servers, "PERSIST": persist, "THREADS": 1})
		argv = ["haproxy", "-f", path, "-db"]
	else:
		servers = "\n".join("        server 127.0.0.1:%d;" % b[1] for b in backends)
		path = B.render("nginx.conf.in", os.path.join(prefix, "nginx.conf"),
				{"PORT": port, "PREFIX": prefix, "NOFILE": args.nofile,
				 "WORKER_CONNS": B.MAXCONN * 2, "SERVERS": servers, "PERSIST": persist,
				 "THREADS": 1})
		argv = ["nginx", "-c", path, "-p", prefix, "-e", os.path.join(prefix, "error.log"),
			"-g", "daemon off;"]
	with open(path) as f:
		text = tls_text(name, f.read(), port, pem, variant)
	with open(path, "w") as f:
		f.write(text)
	p = B.Proc(label, argv, tmp, args.cpu_proxy)
	procs.append(p)
	deadline = time.monotonic() + 10
	last = "no answer"
	while True:
		if not p.alive():
			B.die("%s exited (status %s) during start-up; its output:\n%s"
			      % (label, p.p.returncode, p.log_tail()))
		try:
			status, head, body = tls_get(port)
			if status == 200:
				break
			last = "status %d" % status
		except (OSError, ValueError, IndexError) as e:
			last = str(e)
		if time.monotonic() > deadline:
			B.die("%s not ready over TLS on 127.0.0.1:%d (%s); its output:\n%s"
			      % (label, port, last, p.log_tail()))
		time.sleep(0.1)
	headers, seen = [], set()
	if cookie:
		m = re.search(r"(?im)^set-cookie:\s*(%s=[^;\r\n]*)" % B.COOKIE, tls_get(port)[1])
		if not m:
			B.die("%s: no %s cookie over TLS" % (label, B.COOKIE))
		headers = ["Cookie: " + m.group(1)]
		for _ in range(6):
			seen.add(tls_get(port, headers=headers)[2])
		if len(seen) != 1:
			B.die("%s does not persist over TLS: answers from %s" % (label, sorted(seen)))
	else:
		for _ in range(12):
			seen.add(tls_get(port)[2])
		missing = [b[0] for b in backends if b[0] not in seen]
		if missing:
			B.die("%s does not reach backend(s) %s over TLS" % (label, ", ".join(missing)))
	t = B.Target(name, port, p, headers)
	t.scheme = "https"
	t.variant = variant
	return t


def negotiated(port):
	"""Version, cipher and key exchange group the proxy chose, from s_client."""
	cp = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
			     "-servername", "localhost", "-alpn", "http/1.1", "-brief"],
			    input=b"", capture_output=True, timeout=20)
	out = (cp.stdout + cp.stderr).decode(errors="replace")
	got = {}
	for key, rx in (("version", r"Protocol version:\s*(\S+)"), ("cipher", r"Ciphersuite:\s*(\S+)"),
			("group", r"(?:Server Temp Key|Negotiated TLS1.3 group):\s*([^\n,]+)")):
		m = re.search(rx, out)
		got[key] = m.group(1).strip() if m else None
	return got


# ---- one run of each row -----------------------------------------------------

def measure(args, target, fn):
	"""Run FN() (returning (count, extra dict)) and charge the proxy's CPU."""
	if not target.main.alive():
		B.die("%s died; its output:\n%s" % (target.name, target.main.log_tail()))
	cpu0 = target.cpu_ticks()
	core0 = B.cpu_line(args.cpu_proxy)
	t0 = time.monotonic()
	n, extra = fn()
	wall = time.monotonic() - t0
	cpu1 = target.cpu_ticks()
	core1 = B.cpu_line(args.cpu_proxy)
	cpu_s = (cpu1 - cpu0) / B.CLK_TCK
	r = {"proxy": target.name, "count": n, "wall_s": round(wall, 3), "cpu_s": round(cpu_s, 3),
	     "rate": round(n / wall, 1) if wall > 0 else None,
	     "cpu_us_per": round(cpu_s * 1e6 / n, 2) if n else None,
	     "proxy_core_pct": round(100.0 * cpu_s / wall, 1) if wall > 0 else None}
	if core0 and core1 and core1[1] > core0[1]:
		other = (core1[0] - core0[0]) - (cpu1 - cpu0)
		r["other_on_core_pct"] = round(max(0.0, 100.0 * other / (core1[1] - core0[1])), 1)
	r.update(extra)
	if not target.main.alive():
		r["errors"] = max(r.get("errors", 0), 1)
		r["died"] = True
	return r


def pinned(args, argv):
	return (["taskset", "-c", str(args.cpu_load)] if args.cpu_load is not None else []) + argv


def run_stime(args, target, reuse, duration):
	"""--stime-clients parallel `openssl s_time` for DURATION seconds."""
	argv = pinned(args, ["openssl", "s_time", "-connect", "127.0.0.1:%d" % target.port,
			     "-reuse" if reuse else "-new", "-www", B.TARGET, "-time", "%g" % duration])

	def go():
		ps = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
		      for _ in range(args.stime_clients)]
		outs = []
		try:
			for p in ps:
				outs.append(p.communicate(timeout=duration + 60)[0].decode(errors="replace"))
		finally:
			for p in ps:
				if p.poll() is None:
					p.kill()
					p.wait()
		n = resumed = fresh = 0
		errors = 0
		for p, out in zip(ps, outs):
			m = re.search(r"^(\d+) connections in [0-9.]+s", out, re.M)
			if p.returncode != 0 or not m:
				errors += 1
				continue
			n += int(m.group(1))
			# one character per connection: '*' new, 'r' resumed
			marks = "".join(re.findall(r"^[*r]+$", out, re.M))
			resumed += marks.count("r")
			fresh += marks.count("*")
		return n, {"resumed_share": round(resumed / (resumed + fresh), 3) if resumed + fresh else None,
			   "errors": errors, "clients": args.stime_clients}
	return measure(args, target, go)


def run_h2load(args, target, duration):
	argv = pinned(args, ["h2load", "-t1", "-c10", "-m10", "-D", "%g" % duration] +
		      [x for h in target.headers for x in ("-H", h)] +
		      ["https://127.0.0.1:%d%s" % (target.port, B.TARGET)])

	def go():
		cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
				    timeout=duration + 60)
		out = cp.stdout.decode(errors="replace")
		m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, "
			      r"(\d+) failed, (\d+) errored", out)
		proto = re.search(r"Application protocol: (\S+)", out)
		if cp.returncode != 0 or not m:
			return 0, {"errors": 1, "h2load_output": out[-2000:]}
		ok, failed, errored = int(m.group(2)), int(m.group(3)), int(m.group(4))
		return ok, {"errors": failed + errored, "protocol": proto.group(1) if proto else None}
	# No --warm-up-time: requests made during it are not counted, while the
	# proxy's CPU time for them would be.
	return measure(args, target, go)


def run_row(args, target, row):
	if row in ("tls-keepalive", "tls-cookie"):
		r = B.run_wrk(args, target, row, args.duration)
		r.update({"count": r["requests"], "rate": r["rps"], "cpu_us_per": r["cpu_us_per_req"]})
		return r
	if row == "hs-full":
		return run_stime(args, target, False, args.duration)
	if row == "hs-resumed":
		return run_stime(args, target, True, args.duration)
	return run_h2load(args, target, args.duration)


# ---- once: idle memory and allocations ---------------------------------------

def open_tls_idle(port, n):
	ctx = ssl._create_unverified_context()
	ctx.set_alpn_protocols(["http/1.1"])
	socks = []
	for _ in range(n):
		raw = socket.create_connection(("127.0.0.1", port), timeout=5)
		s = ctx.wrap_socket(raw, server_hostname="localhost")
		socks.append(s)
		s.sendall(b"GET " + B.TARGET.encode() + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
		B.read_response(s)
	return socks


def h2_frame(ftype, flags, sid, payload=b""):
	return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def h2_get(s):
	"""One GET of B.TARGET on stream 1 of a new HTTP/2 connection (RFC
	9113: preface, SETTINGS; HPACK, RFC 7541: indexed :method GET and
	:scheme https, literal :path and :authority), read to its END_STREAM."""
	lit = lambda idx, v: bytes([0x40 | idx, len(v)]) + v  # noqa: E731 (incremental indexing)
	block = b"\x82\x87" + lit(4, B.TARGET.encode()) + lit(1, b"bench")
	s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0) + h2_frame(1, 0x5, 1, block))
	buf = b""
	deadline = time.monotonic() + 10
	while time.monotonic() < deadline:
		while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
			n, t, fl = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
			sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
			buf = buf[9 + n:]
			if t == 4 and not fl & 1:
				s.sendall(h2_frame(4, 1, 0))  # SETTINGS ACK
			if sid == 1 and t in (0, 1) and fl & 1:
				return
		d = s.recv(65536)
		if not d:
			break
		buf += d
	B.die("no HTTP/2 answer on stream 1")


def open_h2_idle(port, n):
	ctx = ssl._create_unverified_context()
	ctx.set_alpn_protocols(["h2"])
	socks = []
	for _ in range(n):
		s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
				    server_hostname="localhost")
		socks.append(s)
		if s.selected_alpn_protocol() != "h2":
			B.die("no h2 from the tls-h2 configuration")
		h2_get(s)
	return socks


def measure_tls_idle(target, n, h2=False):
	"""RSS growth per idle TLS connection (handshake and one request each)."""
	pid = target.rss_pid()
	time.sleep(0.3)
	before = B.proc_status_kb(pid, "VmRSS")
	socks = []
	try:
		socks = (open_h2_idle if h2 else open_tls_idle)(target.port, n)
		time.sleep(1.0)
		after = B.proc_status_kb(pid, "VmRSS")
	finally:
		for s in socks:
			s.close()
	return {"proxy": target.name, "http": "2" if h2 else "1.1", "connections": len(socks),
		"rss_before_kb": before,
		"rss_after_kb": after,
		"bytes_per_conn": round((after - before) * 1024 / n) if before and after else None}


def alloc_counts(path, pid):
	if os.path.exists(path):
		os.unlink(path)
	os.kill(pid, signal.SIGUSR2)
	deadline = time.monotonic() + 10
	while time.monotonic() < deadline:
		try:
			with open(path) as f:
				text = f.read()
			if text.endswith("\n"):
				w = text.split()
				return int(w[1]), int(w[3]), int(w[5])
		except OSError:
			pass
		time.sleep(0.05)
	B.die("no allocation counts in %s" % path)


def measure_allocs(args, tmp, backends, procs, pem, nreq):
	"""Heap allocations per request after the handshake: bollard (tls-cookie
	configuration) under build/alloccount.so; 4 keep-alive TLS connections,
	500 requests each to warm up, then NREQ counted."""
	shim = os.path.join(B.ROOT, "build", "alloccount.so")
	if not os.path.exists(shim):
		B.die("%s not built (make build/alloccount.so)" % shim)
	counts = os.path.join(tmp, "allocs")
	saved = os.environ.get("LD_PRELOAD")
	os.environ["LD_PRELOAD"], os.environ["ALLOC_COUNT_FILE"] = shim, counts
	try:
		t = start_tls_proxy("bollard", "tls-cookie", args, tmp, backends, procs, pem,
				    label="bollard-allocs")
	finally:
		if saved is None:
			os.environ.pop("LD_PRELOAD", None)
		else:
			os.environ["LD_PRELOAD"] = saved
		os.environ.pop("ALLOC_COUNT_FILE", None)
	ctx = ssl._create_unverified_context()
	ctx.set_alpn_protocols(["http/1.1"])
	conns = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", t.port), timeout=5),
				 server_hostname="localhost") for _ in range(4)]
	req = ("GET %s HTTP/1.1\r\nHost: bench\r\n%s\r\n\r\n" % (B.TARGET, t.headers[0])).encode()

	def run(n):
		for c in conns:
			for _ in range(n):
				c.sendall(req)
				B.read_response(c)
	try:
		run(500)
		time.sleep(0.3)
		a0, f0, o0 = alloc_counts(counts, t.main.pid)
		per = max(1, nreq // len(conns))
		run(per)
		time.sleep(0.3)
		a1, f1, o1 = alloc_counts(counts, t.main.pid)
	finally:
		for c in conns:
			c.close()
		t.main.stop()
		procs.remove(t.main)
	n = per * len(conns)
	return {"requests": n, "allocs": a1 - a0, "frees": f1 - f0, "openssl": o1 - o0,
		"allocs_per_req": round((a1 - a0) / n, 2), "openssl_per_req": round((o1 - o0) / n, 2),
		"bollard_per_req": round(((a1 - a0) - (o1 - o0)) / n, 3),
		"frees_per_req": round((f1 - f0) / n, 2)}


# ---- report ---------------------------------------------------------------------

UNITS = {"tls-keepalive": ("req/s", "µs/req"), "tls-cookie": ("req/s", "µs/req"),
	 "hs-full": ("handshakes/s", "µs/handshake"), "hs-resumed": ("handshakes/s", "µs/handshake"),
	 "h2-cookie": ("req/s", "µs/req")}


def summarize(runs, rows, proxies, rounds, h2_na):
	med, ratios = {}, {}
	for row in rows:
		for px in proxies:
			rs = [r for r in runs if r["row"] == row and r["proxy"] == px]
			if rs:
				med[row, px] = {k: B.median(r.get(k) for r in rs) for k in
						("rate", "cpu_us_per", "p99_ms", "resumed_share", "proxy_core_pct",
						 "other_on_core_pct")}
				med[row, px]["errors"] = sum(r.get("errors") or 0 for r in rs)
				med[row, px]["runs"] = len(rs)
		for other in ("haproxy", "nginx"):
			for metric in ("rate", "cpu_us_per"):
				per = []
				for rnd in range(rounds):
					a = [r for r in runs if r["round"] == rnd and r["row"] == row and r["proxy"] == "bollard"]
					b = [r for r in runs if r["round"] == rnd and r["row"] == row and r["proxy"] == other]
					per.append(a[0][metric] / b[0][metric] if a and b and a[0].get(metric)
						   and b[0].get(metric) else None)
				if any(x is not None for x in per):
					ratios[row, other, metric] = {"per_round": per, "median": B.median(per)}
	return med, ratios


def render(med, ratios, rows, h2_na):
	fmt = B.fmt
	out = ["| row | unit | bollard | HAProxy | NGINX | CPU bollard | CPU HAProxy | CPU NGINX "
	       "| b/H CPU | b/N CPU | b/H rate | b/N rate |",
	       "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
	for row in rows:
		rate_u, cpu_u = UNITS[row]

		def cell(px, key, spec):
			if px == "bollard" and row == "h2-cookie" and h2_na:
				return H2_NA
			m = med.get((row, px))
			if not m:
				return "-"
			s = fmt(m.get(key), spec)
			if key == "rate" and m.get("resumed_share") is not None and row == "hs-resumed":
				s += " (%.0f%% resumed)" % (100 * m["resumed_share"])
			if m.get("errors"):
				s += " ERR"
			return s
		q = lambda o, k: fmt((ratios.get((row, o, k)) or {}).get("median"), ".2f")
		out.append("| %s | %s; CPU %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
			row, rate_u, cpu_u, cell("bollard", "rate", ".0f"), cell("haproxy", "rate", ".0f"),
			cell("nginx", "rate", ".0f"), cell("bollard", "cpu_us_per", ".1f"),
			cell("haproxy", "cpu_us_per", ".1f"), cell("nginx", "cpu_us_per", ".1f"),
			q("haproxy", "cpu_us_per"), q("nginx", "cpu_us_per"), q("haproxy", "rate"),
			q("nginx", "rate")))
	return "\n".join(out)


def main(args, info):
	"""The TLS rows; ARGS is bench.py's parsed namespace. Returns the exit status."""
	for tool in ("openssl", "h2load") if "h2-cookie" in args.tls_rows else ("openssl",):
		if shutil.which(tool) is None:
			B.die("%s not found (scripts/install-deps.sh bench installs it)" % tool)
	proxies = [p for p in args.proxies if p != "direct"]
	rows = args.tls_rows
	tmp = B.tempfile.mkdtemp(prefix="bollard-bench-tls-")
	args.tmp = tmp
	procs, runs = [], []
	started = B.datetime.datetime.now(B.datetime.timezone.utc)
	idle, allocs, groups = [], None, {}
	h2_na = None
	try:
		pem = make_cert(tmp)
		if "bollard" in proxies and ("h2-cookie" in rows or args.tls_idle_only):
			h2_na = bollard_refuses_h2(args, tmp, pem)
			if h2_na:
				B.log("bench: tls: bollard refuses alpn h2 (%s): its h2-cookie cell is '%s'"
				      % (h2_na.splitlines()[-1], H2_NA))
		backends = B.start_backends(args, tmp, procs)
		args.backend_procs = list(procs)
		targets = {}
		plan = []
		if args.tls_idle_only:
			for v in ("tls-plain", "tls-h2"):
				for px in proxies:
					if px in VARIANT_PROXIES[v] and not (px == "bollard" and v == "tls-h2" and h2_na):
						targets[px, v] = start_tls_proxy(px, v, args, tmp, backends, procs, pem)
		for row in rows:
			v = ROW_VARIANT[row]
			for px in proxies:
				if px not in VARIANT_PROXIES[v] or (px == "bollard" and v == "tls-h2" and h2_na):
					continue
				plan.append((row, px))
				if (px, v) not in targets:
					targets[px, v] = start_tls_proxy(px, v, args, tmp, backends, procs, pem)
					B.log("bench: tls: %s (%s) on 127.0.0.1:%d (pid %d)"
					      % (px, v, targets[px, v].port, targets[px, v].main.pid))
		est = args.rounds * len(plan) * (args.duration + 1.0) + len(targets) * (args.warmup + 0.5) + \
			len(proxies) * args.tls_idle / 400.0 + (args.tls_alloc_requests / 2000.0 if allocs is None else 0)
		B.log("bench: tls: %d runs (%d rounds x %d row/proxy combinations) of %gs: about %.0fs more%s"
		      % (args.rounds * len(plan), args.rounds, len(plan), args.duration, est,
			 " (+ up to %.0fs waiting for quiet cores)" % (args.rounds * len(plan) * args.wait_quiet)
			 if args.wait_quiet else ""))
		for (px, v), t in targets.items():
			if v == "tls-plain":
				groups[px] = negotiated(t.port)
				B.log("bench: tls: %s negotiates %s" % (px, groups[px]))
		if args.tls_idle:
			for v in ("tls-plain", "tls-h2"):
				for px in proxies:
					if (px, v) in targets:
						i = measure_tls_idle(targets[px, v], min(args.tls_idle, args.idle_cap),
								     h2=v == "tls-h2")
						idle.append(i)
						B.log("  tls idle %-8s HTTP/%-3s %d connections: %s bytes/connection"
						      % (px, i["http"], i["connections"], B.fmt(i["bytes_per_conn"], "d")))
		if args.tls_alloc_requests and "bollard" in proxies:
			allocs = measure_allocs(args, tmp, backends, procs, pem, args.tls_alloc_requests)
			B.log("  tls allocations: %s" % allocs)
		if args.warmup > 0 and rows:
			for t in targets.values():
				if t.variant != "tls-h2":
					B.run_wrk(args, t, "tls-keepalive", args.warmup)
		for rnd in range(args.rounds):
			order = proxies[rnd % len(proxies):] + proxies[:rnd % len(proxies)]
			for row in rows:
				for px in order:
					if (row, px) not in plan:
						continue
					t = targets[px, ROW_VARIANT[row]]
					waited = B.wait_quiet(args)
					r = run_row(args, t, row)
					r.update({"row": row, "round": rnd, "waited_quiet_s": waited})
					runs.append(r)
					B.log("  round %d %-13s %-8s %9s %-13s cpu %s %s  core %s%% (others %s%%)%s%s"
					      % (rnd + 1, row, px, B.fmt(r.get("rate"), ".0f"), UNITS[row][0],
						 B.fmt(r.get("cpu_us_per"), ".2f"), UNITS[row][1],
						 B.fmt(r.get("proxy_core_pct"), ".0f"),
						 B.fmt(r.get("other_on_core_pct"), ".0f"),
						 "  resumed %.0f%%" % (100 * r["resumed_share"])
						 if r.get("resumed_share") is not None and row == "hs-resumed" else "",
						 "  ERRORS %d" % r["errors"] if r.get("errors") else ""))
					if r.get("died"):
						B.die("%s died during the run; its output:\n%s" % (px, t.main.log_tail()))
	except KeyboardInterrupt:
		B.log("bench: interrupted; stopping what was started")
		return 130
	finally:
		B.stop_all(procs, tmp, args.keep_tmp, "TLS configurations and logs")

	med, ratios = summarize(runs, rows, proxies, args.rounds, h2_na)
	table = render(med, ratios, rows, h2_na)
	extra = []
	if idle:
		extra += ["", "| idle TLS connections | HTTP | proxy | RSS before MiB | RSS after MiB | bytes/connection |",
			  "|---|---|---|---:|---:|---:|"]
		extra += ["| %d | %s | %s | %s | %s | %s |" % (
			i["connections"], i["http"], i["proxy"], B.fmt(i["rss_before_kb"] / 1024 if i["rss_before_kb"] else None, ".1f"),
			B.fmt(i["rss_after_kb"] / 1024 if i["rss_after_kb"] else None, ".1f"),
			B.fmt(i["bytes_per_conn"], "d")) for i in idle]
	if allocs:
		extra += ["", "| allocations after the handshake (bollard, TLS keep-alive, cookie) | per request |",
			  "|---|---:|", "| all (%d requests) | %.2f |" % (allocs["requests"], allocs["allocs_per_req"]),
			  "| of which libcrypto's (OpenSSL) | %.2f |" % allocs["openssl_per_req"],
			  "| of which bollard's | %.3f |" % allocs["bollard_per_req"],
			  "| frees | %.2f |" % allocs["frees_per_req"]]
	# how busy the proxy's core was with the proxy and with anything else:
	# above 10 % of others, rates say more about the neighbours
	noise = ["", "| row | proxy | runs | proxy core % | others on its core % | runs above 10 % others |",
		 "|---|---|---:|---:|---:|---:|"]
	for (row, px), m in med.items():
		noise.append("| %s | %s | %d | %s | %s | %d |" % (
			row, px, m["runs"], B.fmt(m["proxy_core_pct"], ".0f"), B.fmt(m["other_on_core_pct"], ".0f"),
			sum(1 for r in runs if r["row"] == row and r["proxy"] == px
			    and (r.get("other_on_core_pct") or 0) > 10)))
	per_round = ["", "| row | ratio | metric | per round | median |", "|---|---|---|---|---:|"]
	for (row, other, metric), q in ratios.items():
		per_round.append("| %s | bollard/%s | %s | %s | %s |" % (
			row, other, "CPU/unit (lower is better)" if metric == "cpu_us_per" else "rate",
			" ".join(B.fmt(x, ".3f") for x in q["per_round"]), B.fmt(q["median"], ".3f")))
	cmd = "BENCH_ONLY=tls bench/bench.py" if os.environ.get("BENCH_ONLY") == "tls" else "bench/bench.py"
	md = ["# bollard TLS benchmark results", "",
	      "- date: %s" % started.strftime("%Y-%m-%d %H:%M UTC"),
	      "- command: `%s %s`" % (cmd, " ".join(args.argv)),
	      "- machine: %s CPUs, %s, Linux %s" % (info["nproc"], info["cpu"], info["kernel"]),
	      "- versions: %s; %s; %s; %s; %s" % (info["haproxy"], info["nginx"], info["wrk"],
						  B.first_line(["openssl", "version"]),
						  B.first_line(["h2load", "--version"])),
	      "- bollard: %s (working tree at %s)" % (info.get("bollard"), info.get("git_head")),
	      "- %d round(s) of %gs per run; proxy on CPU %s, clients and backends on CPU %s; one worker "
	      "thread each" % (args.rounds, args.duration, args.cpu_proxy, args.cpu_load),
	      "- TLS: one ECDSA P-256 certificate, TLS 1.3 only, %s; negotiated: %s" % (
		      CIPHER, "; ".join("%s %s" % (px, ", ".join("%s=%s" % kv for kv in g.items()))
					for px, g in groups.items())),
	      "- rows: tls-keepalive = wrk -t1 -c%d over TLS, round robin; tls-cookie = the same with "
	      "insert-cookie persistence (the cookie sent on every request); hs-full / hs-resumed = "
	      "%d parallel `openssl s_time -new|-reuse -www %s`, one handshake and one HTTP/1.0 GET per "
	      "connection; h2-cookie = `h2load -t1 -c10 -m10` with the cookie, alpn h2,http/1.1"
	      % (args.connections, args.stime_clients, B.TARGET),
	      "", "Medians over rounds; ratios are medians of per-round ratios.", "", table] + \
	     per_round + noise + extra + [""]
	os.makedirs(args.out, exist_ok=True)
	name = "tls-idle-latest" if args.tls_idle_only else "tls-latest"
	with open(os.path.join(args.out, name + ".md"), "w") as f:
		f.write("\n".join(md))
	with open(os.path.join(args.out, name + ".json"), "w") as f:
		json.dump({"date": started.isoformat(), "machine": info, "runs": runs,
			   "medians": {"%s/%s" % k: v for k, v in med.items()},
			   "ratios": {"%s/%s/%s" % k: v for k, v in ratios.items()},
			   "idle": idle, "allocs": allocs, "negotiated": groups, "h2_na": h2_na}, f, indent=1)
	B.log("")
	B.log(table)
	B.log("\n".join(per_round + noise + extra))
	B.log("bench: wrote %s and %s.json" % (os.path.join(args.out, name + ".md"), name))
	return 1 if any(r.get("errors") for r in runs) else 0
