"""The documentation is in step with the code (issue 10 item 16): no page
promises as future what exists ("comes later", "until state-file support
lands"), no page sends a user to a SPEC file that ships with nothing, and
the runtime API's `help` quoted in doc/runtime-api.md is what the binary
answers."""

import pathlib
import re
import subprocess

import util

ROOT = pathlib.Path(__file__).resolve().parents[2]
STALE = [r"comes later", r"come later", r"until state-file", r"support lands",
	 r"not supported yet", r"only the path is recorded", r"will come with"]


def _user_docs():
	pages = [ROOT / n for n in ("README.md", "CONTRIBUTING.md", "BENCHMARKS.md",
				     "bench/README.md", "demo/README.md")]
	pages += sorted((ROOT / "doc").glob("*.md")) + [ROOT / "doc/bollard.8",
							ROOT / "doc/bollard.conf.5"]
	pages += sorted((ROOT / "examples").glob("*.conf")) + sorted((ROOT / "contrib").iterdir())
	return [p for p in pages if p.is_file() and p.suffix != ".png"]


def _hits(pattern):
	out = []
	for p in _user_docs():
		for i, ln in enumerate(p.read_text(errors="replace").splitlines(), 1):
			if re.search(pattern, ln, re.I):
				out.append("%s:%d: %s" % (p.relative_to(ROOT), i, ln.strip()))
	return out


def test_no_stale_promises():
	bad = _hits("|".join(STALE))
	assert not bad, "\n".join(bad)


def test_no_reference_to_a_spec_file():
	bad = [h for h in _hits(r"\bSPEC\b")]
	assert not bad, "\n".join(bad)


def test_ctl_help_is_the_one_documented(bollard_factory, bollard_bin):
	b = bollard_factory("global\n    admin-socket {tmp}/adm.sock\n"
			    "listen web\n    bind 127.0.0.1:{port}\n    server a 127.0.0.1:9\n")
	sock = pathlib.Path(b.conf_path).parent / "adm.sock"
	util.wait_until(sock.exists, what="the admin socket")
	r = subprocess.run([bollard_bin, "ctl", "-s", str(sock), "help"], capture_output=True,
			   text=True, timeout=15)
	assert r.returncode == 0, r.stderr
	assert "SPEC" not in r.stdout, r.stdout
	doc = (ROOT / "doc/runtime-api.md").read_text()
	m = re.search(r"```\n\$ bollard ctl help\n(.*?)```", doc, re.S)
	assert m, "no `bollard ctl help` block in doc/runtime-api.md"
	assert m.group(1).rstrip("\n") == r.stdout.rstrip("\n")
