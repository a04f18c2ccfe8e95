"""`make install` (SPEC §10) into a staging directory, as a packager runs
it: `make install DESTDIR=STAGE PREFIX=/usr` puts the binaries, both man
pages, the example configurations, the contrib files and the systemd unit
where a distribution expects them, with the unit pointing at the installed
binary, and the installed binary runs. Also checks the contrib files are
what they claim to be (valid JSON dashboard using bollard's metrics, a
scrape example naming /metrics)."""

import json
import os
import pathlib
import shutil
import stat
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
METRICS = ("bollard_requests_total", "bollard_request_duration_seconds_bucket",
	   "bollard_persistence_total", "bollard_server_state", "bollard_server_sessions")


def _make_install(stage, *extra):
	r = subprocess.run(["make", "-C", str(ROOT), "install", "DESTDIR=%s" % stage,
			    "PREFIX=/usr"] + list(extra), capture_output=True, text=True, timeout=600)
	assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
	return r


def _mode(p):
	return stat.S_IMODE(os.stat(p).st_mode)


def test_make_install_layout(tmp_path):
	stage = tmp_path / "stage"
	_make_install(stage)
	usr = stage / "usr"
	assert _mode(usr / "bin/bollard") == 0o755
	# the demo app is no production program: out of bin/ (issue 10 item 10)
	assert sorted(p.name for p in (usr / "bin").iterdir()) == ["bollard"]
	demo = usr / "libexec/bollard/bollard-demo-app"
	assert _mode(demo) == 0o755
	r = subprocess.run([str(demo), "--help"], capture_output=True, text=True, timeout=10)
	assert "--name" in r.stdout + r.stderr, r
	assert _mode(usr / "share/man/man8/bollard.8") == 0o644
	assert _mode(usr / "share/man/man5/bollard.conf.5") == 0o644
	examples = sorted(p.name for p in (usr / "share/doc/bollard/examples").iterdir())
	assert examples == sorted(p.name for p in (ROOT / "examples").glob("*.conf")), examples
	assert "demo.conf" in examples
	for name in ("grafana-dashboard.json", "prometheus.yml", "bollard.conf"):
		assert (usr / "share/doc/bollard/contrib" / name).is_file(), name
	unit = usr / "lib/systemd/system/bollard.service"
	text = unit.read_text()
	assert _mode(unit) == 0o644
	assert "ExecStart=/usr/bin/bollard -c /etc/bollard/bollard.conf" in text, text
	assert "/usr/local" not in text
	assert "ExecReload=/bin/kill -HUP $MAINPID" in text
	assert "ExecReload=/usr/bin/bollard check -c /etc/bollard/bollard.conf" in text
	assert (usr / "lib/sysusers.d/bollard.conf").read_text() == \
		(ROOT / "contrib/bollard.sysusers").read_text()
	# nothing escapes DESTDIR
	for p in stage.rglob("*"):
		assert str(p).startswith(str(stage))

	# the installed binary and pages work
	r = subprocess.run([str(usr / "bin/bollard"), "--version"], capture_output=True, text=True,
			   timeout=10)
	assert r.returncode == 0 and r.stdout.strip(), r
	# The default file names the directories the systemd unit is given
	# (StateDirectory=, RuntimeDirectory=), which check requires to exist as
	# start does: check it with them moved into the stage.
	default = (stage / "etc/bollard/bollard.conf").read_text()
	for d in ("/var/lib/bollard", "/run/bollard"):
		assert d in default, d
		(stage / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
		default = default.replace(d, str(stage / d.lstrip("/")))
	staged_default = stage / "check-default.conf"
	staged_default.write_text(default)
	# demo.conf's TLS bind takes the certificate make demo generates
	subprocess.run([str(ROOT / "scripts/demo-tls.sh"), str(tmp_path / "tls")], check=True,
		       capture_output=True, timeout=60)
	env = dict(os.environ, BOLLARD_TLS_CRT=str(tmp_path / "tls/localhost.pem"))
	for conf in (usr / "share/doc/bollard/examples/minimal.conf",
		     usr / "share/doc/bollard/examples/demo.conf", staged_default):
		r = subprocess.run([str(usr / "bin/bollard"), "check", "-c", str(conf)],
				   capture_output=True, text=True, timeout=10, env=env)
		assert r.returncode == 0, (conf, r.stdout, r.stderr)
	if shutil.which("groff"):
		r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z",
				    str(usr / "share/man/man8/bollard.8")], capture_output=True, text=True)
		assert r.returncode == 0 and not r.stderr, r.stderr
		# FILES names where this installation put things (issue 10 item 11)
		out = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou",
				      str(usr / "share/man/man8/bollard.8")], capture_output=True,
				     timeout=30).stdout.decode("utf-8", "replace")
		files = out[out.index("FILES"):out.index("EXIT STATUS")]
		assert "/usr/share/doc/bollard/examples/" in files, files
		assert "/usr/lib/systemd/system/bollard.service" in files, files
		assert "/usr/local/share" not in files, files


def test_make_install_default_config_never_overwritten(tmp_path):
	"""A default /etc/bollard/bollard.conf when there is none; a reinstall
	keeps the operator's file byte for byte (issue 10 item 10)."""
	stage = tmp_path / "stage"
	_make_install(stage)
	conf = stage / "etc/bollard/bollard.conf"
	assert conf.read_text() == (ROOT / "contrib/bollard.conf").read_text()
	assert _mode(conf) & 0o002 == 0
	mine = "# the operator's own\nlisten web\n    bind 127.0.0.1:1\n    server a 127.0.0.1:2\n"
	conf.write_text(mine)
	r = _make_install(stage)
	assert conf.read_text() == mine
	assert "kept the existing" in r.stdout, r.stdout


def test_make_install_without_systemd_unit(tmp_path):
	stage = tmp_path / "stage"
	_make_install(stage, "SYSTEMDUNITDIR=")
	assert (stage / "usr/bin/bollard").exists()
	assert not list(stage.rglob("bollard.service"))
	assert not list(stage.rglob("sysusers.d"))


def test_systemd_unit_contents():
	"""The unit's paths; its shape, verify and a run of its commands are in
	test_systemd_unit.py."""
	text = (ROOT / "contrib/bollard.service").read_text()
	keys = {}
	for ln in text.splitlines():
		if ln and not ln.startswith(("#", "[")):
			k, _, v = ln.partition("=")
			keys.setdefault(k, []).append(v)
	assert keys["ExecStart"] == ["/usr/local/bin/bollard -c /etc/bollard/bollard.conf"]
	assert keys["ExecReload"][-1] == "/bin/kill -HUP $MAINPID"
	assert keys["Restart"] == ["on-failure"]
	assert keys["NoNewPrivileges"] == ["yes"] and keys["ProtectSystem"] == ["strict"]
	rw = keys["ReadWritePaths"][0].split()
	assert "/run/bollard" in rw and "/var/lib/bollard" in rw
	assert keys["WantedBy"] == ["multi-user.target"]


def test_grafana_dashboard_and_prometheus_example():
	dash = json.loads((ROOT / "contrib/grafana-dashboard.json").read_text())
	assert dash["title"] and dash["uid"] and isinstance(dash["panels"], list)
	exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
	assert exprs
	for m in METRICS:
		assert any(m in e for e in exprs), "dashboard does not use %s" % m
	assert any("histogram_quantile(0.99" in e for e in exprs)
	assert any("histogram_quantile(0.5" in e for e in exprs)
	ids = [p["id"] for p in dash["panels"]]
	assert len(ids) == len(set(ids))
	prom = (ROOT / "contrib/prometheus.yml").read_text()
	assert "scrape_configs:" in prom and "metrics_path: /metrics" in prom
	assert "job_name: bollard" in prom
