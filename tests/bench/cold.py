"""cold.py - cold read: are an app's sources fetched in parallel?

Two Vault emulators (providers va and vb), every request delayed 50 ms.
App `multi` has three source entries on the two providers (its store on
va, one env.* mapping on va, one on vb); app `single` has one (its store
on va). Each trial mounts a fresh daemon (empty cache, no connections,
no mount or token lookups remembered) and times the first open+read+close
of one app's .env; trials alternate between the apps. Median over the
trials. A ratio multi/single near 1 means the sources were fetched in
parallel; near 3 means one after another.

    /usr/bin/python3 tests/bench/cold.py [--trials 7] [--latency-ms 50]
"""

import argparse

import benchlib as B

STORE_KEYS = {f"KEY_{i:02d}": f"value-{i:02d}-" + "x" * 24 for i in range(10)}


def setup(work, latency_s):
    va, vb = B.vault(latency_s), B.vault(latency_s)
    va.put("secret/", "single", STORE_KEYS)
    va.put("secret/", "multi", STORE_KEYS)
    va.put("secret/", "other", {"OTHER": "other-value-" + "y" * 20})
    vb.put("secret/", "shared", {"SHARED": "shared-value-" + "z" * 20})
    providers = {
        "va": B.vault_provider(va, B.token_file(work / "va.token", va)),
        "vb": B.vault_provider(vb, B.token_file(work / "vb.token", vb)),
    }
    apps = {
        "single": {"store": "va://secret/single"},
        "multi": {"store": "va://secret/multi",
                  "env.OTHER": "va://secret/other#OTHER",
                  "env.SHARED": "vb://secret/shared#SHARED"},
    }
    return va, vb, B.config_text(providers=providers, apps=apps)


def trial(work, conf, app, emus, latency_s, i):
    for emu in emus:
        emu.clear_requests()
    d = B.Daemon(work / f"{app}-{i}", conf).start()
    try:
        ns, data = B.read_once_ns(d.path(app, ".env"))
        if not data:
            raise SystemExit(f"cold: {app}/.env read empty")
        overlap = B.max_overlap(emus, latency_s)
        nreq = sum(len(e.requests) for e in emus)
        complaints = d.complaints()
    finally:
        d.stop()
    return ns, overlap, nreq, complaints


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=7)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    args = ap.parse_args()
    B.require_root()
    latency = args.latency_ms / 1000
    work = B.workdir("cold")
    va, vb, conf = setup(work, latency)
    emus = (va, vb)

    res = {"single": [], "multi": []}
    for i in range(args.trials):
        for app in (("single", "multi") if i % 2 == 0 else ("multi", "single")):
            res[app].append(trial(work, conf, app, emus, latency, i))
    t = {k: B.median(r[0] for r in v) for k, v in res.items()}
    ratio = t["multi"] / t["single"]
    rows = [
        ("cold .env read, 3 sources on 2 providers vs 1 source (median)",
         B.fmt_ns(t["multi"]), B.fmt_ns(t["single"]),
         B.fmt_ratio(t["multi"], t["single"]),
         B.target("<= 1.3x", ratio <= 1.3)),
        ("  fastest / slowest trial, 3 sources",
         f"{B.fmt_ns(min(r[0] for r in res['multi']))} / "
         f"{B.fmt_ns(max(r[0] for r in res['multi']))}",
         f"{B.fmt_ns(min(r[0] for r in res['single']))} / "
         f"{B.fmt_ns(max(r[0] for r in res['single']))}", "-", "-"),
        ("  provider requests per cold read (median)",
         f"{B.median(r[2] for r in res['multi']):g}",
         f"{B.median(r[2] for r in res['single']):g}", "-", "-"),
        ("  data fetches in flight at once (max, median of trials)",
         f"{B.median(r[1] for r in res['multi']):g}",
         f"{B.median(r[1] for r in res['single']):g}", "-",
         "3 (all sources at once)"),
    ]
    notes = [f"{args.trials} fresh mounts per app, {args.latency_ms:g} ms "
             "emulated latency on every Vault request; time = first "
             "open+read+close of .env after the mount (lookup included)"]
    paths = {}
    for r in res["multi"] + res["single"]:
        for ln in r[3]:
            paths[ln] = paths.get(ln, 0) + 1
    notes += [f"daemon log ({n}x): {ln}" for ln, n in paths.items()]
    kinds = {}
    for emu in emus:
        for r in emu.requests:
            kinds[f"{r.method} {r.path}"] = kinds.get(f"{r.method} {r.path}", 0) + 1
    notes.append("requests of the last trial: " +
                 ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())))
    B.table("cold parallel read (Vault emulators, "
            f"{args.latency_ms:g} ms latency)", rows, notes)
    if va.errors or vb.errors:
        print("cold: the emulator raised:\n" + "\n".join(va.errors + vb.errors))


if __name__ == "__main__":
    main()
