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
HINTS = ROOT / "src" / "cfg_hint.c"
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
	doc = DOC.read_text()
	idx = doc.find("## 6. Not yet supported")
	assert idx >= 0, "doc/config.md has no 'Not yet supported' section"
	section = doc[idx:]
	missing = [n for n in reserved if "`%s`" % n not in section]
	assert not missing, "reserved keywords missing from 'Not yet supported': %s" % missing


# How a table word is shown in a file, by where it is met (cfg_hint_shown()).
_SHOWN = {"SERVER_OPT": "server ... ", "BALANCE": "balance ", "TIMEOUT": "timeout "}


def _code_hints():
	"""(from, as written, in bollard, note) for each entry of cfg_hints[]."""
	text = HINTS.read_text()
	m = re.search(r"\bcfg_hints\[\]\s*=\s*\{(.*?)\n\};", text, re.S)
	assert m, "cfg_hints[] not found in %s" % HINTS
	body = "\n".join(ln for ln in m.group(1).splitlines() if not ln.strip().startswith("/*"))
	rows = re.findall(r'\{\s*CFG_HINT_(\w+),\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)",\s*(NULL|"[^"]*")\s*\}',
			  body)
	# every entry must have been understood, none skipped by the regex
	assert len(rows) == body.count("{ CFG_HINT_"), body
	return [(frm, _SHOWN.get(at, "") + word, use, "" if note == "NULL" else note[1:-1])
		for at, frm, word, use, note in rows]


def _doc_hints():
	"""The rows of the table of section 7 of doc/config.md, unescaped."""
	doc = DOC.read_text()
	idx = doc.find("## 7. From HAProxy / from NGINX")
	assert idx >= 0, "doc/config.md has no 'From HAProxy / from NGINX' section"
	rows = []
	for ln in doc[idx:].splitlines():
		if not re.match(r"\| (HAProxy|NGINX) \|", ln):
			continue
		cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
		assert len(cells) == 4, ln
		frm, word, use, note = cells
		assert word.startswith("`") and word.endswith("`"), ln
		use = "" if use == "(nothing)" else use.strip("`")
		rows.append((frm, word.strip("`"), use, note))
	return rows


def test_migration_table_is_found():
	hints = _code_hints()
	assert len(hints) >= 40, hints
	words = {(f, w) for f, w, _, _ in hints}
	# the words issue 10 item 4 names
	for want in [("HAProxy", "server ... check"), ("HAProxy", "balance source"), ("HAProxy", "balance uri"),
		     ("HAProxy", "nbthread"), ("HAProxy", "stats socket"), ("HAProxy", "cookie"),
		     ("HAProxy", "stick-table"), ("HAProxy", "stick on"), ("HAProxy", "option redispatch"),
		     ("HAProxy", "default_backend"), ("NGINX", "upstream"), ("NGINX", "proxy_pass"),
		     ("NGINX", "listen"), ("NGINX", "sticky")]:
		assert want in words, want


def test_migration_doc_and_code_agree():
	"""The error messages and doc/config.md come from the same table: every
	entry of cfg_hints[] is a row of the doc table, in the same order, and
	the doc has no row the code does not have."""
	code, doc = _code_hints(), _doc_hints()
	missing = [h for h in code if h not in doc]
	extra = [h for h in doc if h not in code]
	assert not missing and not extra, "in the code only: %s\nin the doc only: %s" % (missing, extra)
	assert code == doc, "same rows, different order"
