"""The man pages: doc/bollard.conf.5 mentions every configuration keyword
and server option of the tables in src/cfg_kw.c (the same tables
test_config_doc.py holds doc/config.md to), and both pages render with
groff without a single warning, as `man -l` would show them. Needs no
binary: it reads the sources."""

import pathlib
import re
import shutil
import subprocess

import pytest

from test_config_doc import _table

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [ROOT / "doc" / "bollard.8", ROOT / "doc" / "bollard.conf.5"]


def _words(page):
	"""The text of a roff page with escapes for '-' and font changes
	undone, as the set of words a reader sees (a word may hold '-' and
	'.', as tune.bufsize and log-format do)."""
	text = page.read_text()
	text = "\n".join(ln for ln in text.splitlines() if not ln.startswith('.\\"'))
	text = text.replace("\\-", "-").replace("\\(hy", "-")
	text = re.sub(r"\\f(?:\(..|\[[^]]*\]|.)", "", text)  # \fB \fI \fR \fP \f(CW
	text = re.sub(r"\\[&|^]", "", text)
	return set(re.findall(r"[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]|[A-Za-z0-9]", text))


def test_words_helper_undoes_roff():
	import tempfile
	with tempfile.NamedTemporaryFile("w", suffix=".5") as f:
		f.write('.\\" comment: hidden-word\n.BR log\\-format " json"\n\\fBtune.bufsize\\fR x\n')
		f.flush()
		w = _words(pathlib.Path(f.name))
	assert {"log-format", "tune.bufsize", "json"} <= w
	assert "hidden-word" not in w


def test_conf5_mentions_every_keyword():
	words = _words(PAGES[1])
	names = _table("cfg_keywords")
	assert len(names) >= 20
	missing = [n for n in names if n not in words]
	assert not missing, "keywords missing from doc/bollard.conf.5: %s" % missing


def test_conf5_mentions_every_server_option():
	words = _words(PAGES[1])
	missing = [n for n in _table("cfg_server_opts") if n not in words]
	assert not missing, "server options missing from doc/bollard.conf.5: %s" % missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_renders_without_warnings(page):
	if not shutil.which("groff"):
		pytest.skip("groff not installed")
	r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
			   capture_output=True, text=True, timeout=30)
	assert r.returncode == 0 and r.stderr == "", r.stderr
	out = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", str(page)], capture_output=True,
			     timeout=30).stdout.decode("utf-8", "replace")
	assert "NAME" in out and "SEE ALSO" in out


def _rendered(page):
	return subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", str(page)], capture_output=True,
			      timeout=30).stdout.decode("utf-8", "replace")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_has_no_stray_quotes(page):
	"""A quote left unbalanced in a .BI/.BR line renders as a literal '"'
	without any groff warning (issue 10 item 11: after `clear sessions`
	and `wait drained`); neither page shows a double quote on purpose."""
	if not shutil.which("groff"):
		pytest.skip("groff not installed")
	bad = [ln.strip() for ln in _rendered(page).splitlines() if '"' in ln]
	assert not bad, bad


def test_bollard8_exit_status_and_signals():
	if not shutil.which("groff"):
		pytest.skip("groff not installed")
	out = _rendered(PAGES[0])
	section = out[out.index("EXIT STATUS"):out.index("EXAMPLES")]
	for code in ("0", "1", "2"):
		assert re.search(r"^\s+%s\s" % code, section, re.M), section
	# justified text: any run of spaces between words
	assert "usage error" in " ".join(section.lower().split()), section
	signals = out[out.index("SIGNALS"):out.index("STATISTICS")]
	for sig in ("SIGHUP", "SIGTERM", "SIGINT", "SIGUSR1"):
		assert sig in signals, signals
