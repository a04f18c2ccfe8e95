"""doc/config.md documents every keyword of the configuration language.

The keyword table (cfg_keywords[] in src/cfg_kw.c, one line a keyword,
reserved ones written NYS("name", ...)) and the server options
(cfg_server_opts[]) are the truth; each name must appear in doc/config.md
as `name`. Adding a keyword without documenting it fails here. Needs no
binary: it reads the sources."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "src" / "cfg_kw.c", ROOT / "src" / "cfg.c"]
DOC = ROOT / "doc" / "config.md"


def _table(name):
	"""Names listed in the C array `name[] = { ... };` of the sources."""
	for src in SOURCES:
		if not src.exists():
			continue
		text = src.read_text()
		m = re.search(r"\b%s\[\]\s*=\s*\{(.*?)\n\};" % re.escape(name), text, re.S)
		if m:
			return re.findall(r'(?:\{|NYS\()\s*"([^"]+)"\s*,', m.group(1))
	raise AssertionError("table %s[] not found in %s" % (name, [str(s) for s in SOURCES]))


def _missing(names):
	doc = DOC.read_text()
	return [n for n in names if "`%s`" % n not in doc]


def test_keyword_table_is_found():
	names = _table("cfg_keywords")
	# A sanity floor: the regex must not silently match nothing.
	assert len(names) >= 20, names
	for kw in ("threads", "bind", "server", "timeout", "persist"):
		assert kw in names, names


def test_every_keyword_is_documented():
	missing = _missing(_table("cfg_keywords"))
	assert not missing, "keywords missing from doc/config.md: %s" % missing


def test_every_server_option_is_documented():
	names = _table("cfg_server_opts")
	assert "weight" in names, names
	missing = _missing(names)
	assert not missing, "server options missing from doc/config.md: %s" % missing


def test_reserved_keywords_are_listed_as_not_yet_supported():
	"""Each NYS(...) keyword appears in the "Not yet supported" section."""
	text = (ROOT / "src" / "cfg_kw.c").read_text()
	m = re.search(r"\bcfg_keywords\[\]\s*=\s*\{(.*?)\n\};", text, re.S)
	reserved = re.findall(r'NYS\(\s*"([^"]+)"', m.group(1))
	assert reserved
	doc = DOC.read_text()
	idx = doc.find("## 6. Not yet supported")
	assert idx >= 0, "doc/config.md has no 'Not yet supported' section"
	section = doc[idx:]
	missing = [n for n in reserved if "`%s`" % n not in section]
	assert not missing, "reserved keywords missing from 'Not yet supported': %s" % missing
