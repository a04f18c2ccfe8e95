#!/usr/bin/python3
"""Check the link-level layering of src/ (doc/architecture.md, "Layers").

Reads the objects of a build (default build/obj), links each undefined
symbol of a module to the module that defines it, and fails when
  - a module calls a module of a higher layer than its own, or
  - modules call one another in a cycle, except inside one of the few
    groups below that are one module split across files (or a knot that
    doc/architecture.md names as such),
  - or a module has no layer yet (put it in LAYERS when you add it).
Usage: scripts/layers.py [OBJDIR]    (make layers)
"""
import glob
import os
import subprocess
import sys

# Lowest first. A module may call its own layer's modules and lower ones.
LAYERS = [
    # leaves: data and pure helpers, called by anyone, calling nothing of ours
    "global log ev buf json h1 cookie cidr hll seal stick server lb_hash lb_rr "
    "lb_leastconn proxyproto dashboard instance sdnotify priv cfg_hint tls_ctx xprt_tcp shared_link shared_sentinel h2_head h2_mem",
    # the configuration and what its keywords build (persistence rules,
    # operator states): one knot, see CYCLE_GROUPS
    "cfg cfg_kw cfg_read cfg_tls persist srvstate shared",
    # what the request path and the control thread use
    "lb route http sconn check state ctl txn txn_log xprt_tls",
    # the request path on a worker: one client connection, its exchange
    "stream dispatch h1_exchange tunnel shared_loop h2 xprt_h2s",
    # the worker threads
    "worker",
    # the control thread's parts
    "reload admin admin_pool admin_server admin_sessions",
    "stats",
    "control",
    "main",
]

# Cycles allowed inside these groups only.
CYCLE_GROUPS = [
    # one runtime API in five files: admin.c dispatches the commands to the
    # others, which write their answers with its helpers
    {"admin", "admin_pool", "admin_server", "admin_sessions"},
    # the keyword table calls persist_parse(), cfg_free() the rules' free;
    # persist.c and srvstate.c parse values with cfg.c's helpers
    {"cfg", "cfg_kw", "cfg_read", "cfg_tls", "persist", "srvstate", "shared"},
    # the request path: the connection (stream.c) drives its exchange
    # (h1_exchange.c) or tunnel (tunnel.c), which call back into it to read,
    # write, answer an error or close; dispatch.c chooses and connects the
    # server and starts the exchange again when a queued request may go
    {"stream", "dispatch", "h1_exchange", "tunnel", "shared_loop", "h2", "xprt_h2s"},
]


def graph(objdir):
    defs, uses = {}, {}
    for o in sorted(glob.glob(os.path.join(objdir, "*.o"))):
        m = os.path.basename(o)[:-2]
        out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
        uses[m] = set()
        for line in out.splitlines():
            f = line.split()
            if len(f) == 2 and f[0] == "U":
                uses[m].add(f[1])
            elif len(f) == 3 and f[1] in "TDBRC":
                defs[f[2]] = m
    return {m: {(defs[s], s) for s in u if s in defs and defs[s] != m} for m, u in uses.items()}


def sccs(g):
    """Tarjan, iterative: the strongly connected components of g."""
    index, low, stack, on, out = {}, {}, [], set(), []
    for root in g:
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    c = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        c.add(w)
                        if w == v:
                            break
                    out.append(c)
    return out


def main():
    objdir = sys.argv[1] if len(sys.argv) > 1 else "build/obj"
    g = graph(objdir)
    if not g:
        sys.exit(f"layers: no objects in {objdir} (run make first)")
    layer = {m: i for i, line in enumerate(LAYERS) for m in line.split()}
    errors = []
    for m in sorted(g):
        if m not in layer:
            errors.append(f"{m}: no layer (add it to LAYERS in scripts/layers.py)")
    for m in sorted(g):
        for callee, sym in sorted(g[m]):
            if m in layer and callee in layer and layer[callee] > layer[m]:
                errors.append(f"{m} -> {callee} ({sym}): calls a higher layer")
    plain = {m: {c for c, _ in e} for m, e in g.items()}
    for c in sccs(plain):
        if len(c) > 1 and not any(c <= grp for grp in CYCLE_GROUPS):
            errors.append("cycle: " + " ".join(sorted(c)))
    for e in errors:
        print("layers:", e)
    if errors:
        sys.exit(1)
    print(f"layers: {len(g)} modules, no upward call, no cycle outside the known groups")


if __name__ == "__main__":
    main()
