"""herd.py - a herd of cold readers: one provider fetch per source entry?

Two Vault emulators with 50 ms latency; app `herd` has three source
entries (store on va with 20 keys, env.OTHER on va, env.SHARED on vb).
For each N, a fresh mount, then N threads released at once (readloop -t)
each do one open+read+close:

  .env      every reader opens .env. The kernel lets one LOOKUP of a name
            run at a time and the others wait for it, so this mostly
            shows the kernel's coalescing.
  spread    reader i opens file i mod 23 of the app (.env and every key
            file). Different names are looked up concurrently, so the
            daemon itself sees concurrent misses on the same entries:
            this is the herd its cache must collapse.

The emulators count GETs of each entry's data path; the target is exactly
one request per source entry per mount.

    /usr/bin/python3 tests/bench/herd.py [--readers 50,200]
"""

import argparse

import benchlib as B

LATENCY_S = 0.05
STORE_KEYS = {f"KEY_{i:02d}": f"herd-value-{i:02d}-" + "x" * 20
              for i in range(20)}
SOURCES = [("va", "/v1/secret/data/herd"), ("va", "/v1/secret/data/other"),
           ("vb", "/v1/secret/data/shared")]


def setup(work):
    emus = {"va": B.vault(LATENCY_S), "vb": B.vault(LATENCY_S)}
    emus["va"].put("secret/", "herd", STORE_KEYS)
    emus["va"].put("secret/", "other", {"OTHER": "other-value-" + "y" * 20})
    emus["vb"].put("secret/", "shared", {"SHARED": "shared-value-" + "z" * 20})
    providers = {n: B.vault_provider(e, B.token_file(work / f"{n}.token", e))
                 for n, e in emus.items()}
    apps = {"herd": {"store": "va://secret/herd",
                     "env.OTHER": "va://secret/other#OTHER",
                     "env.SHARED": "vb://secret/shared#SHARED"}}
    return emus, B.config_text(providers=providers, apps=apps)


def run(work, conf, emus, n, mode):
    for e in emus.values():
        e.clear_requests()
    d = B.Daemon(work / f"{mode}-{n}", conf).start()
    try:
        names = [".env"]
        if mode == "spread":
            names += sorted(STORE_KEYS) + ["OTHER", "SHARED"]
        res = B.herd(n, [d.path("herd", f) for f in names])
        complaints = d.complaints()
    finally:
        d.stop()
    per = [emus[p].count(path, "GET") for p, path in SOURCES]
    other = sum(len(e.requests) for e in emus.values()) - sum(per)
    overlap = B.max_overlap(emus.values(), LATENCY_S)
    return res, per, other, overlap, complaints


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", default="50,200",
                    help="comma-separated herd sizes (default 50,200)")
    args = ap.parse_args()
    B.require_root()
    work = B.workdir("herd")
    emus, conf = setup(work)
    rows, notes = [], []
    for n in (int(x) for x in args.readers.split(",")):
        for mode in (".env", "spread"):
            res, per, other, overlap, complaints = run(work, conf, emus,
                                                       n, mode)
            worst = max(per)
            rows.append((f"{n} cold readers, {mode}: requests per source entry "
                         "(max; each)",
                         f"{worst} ({', '.join(map(str, per))})",
                         f"1 (of {n} readers)",
                         f"{worst / 1:.2f}x",
                         B.target("exactly 1", all(p == 1 for p in per))))
            rows.append((f"  readers ok / failed; wall; slowest reader",
                         f"{res['ok']} / {res['failed']}; "
                         f"{B.fmt_ns(res.get('wall_ns'))}; "
                         f"{B.fmt_ns(res.get('max_ns'))}", "-", "-", "-"))
            rows.append(("  other provider requests (token, mount lookups)",
                         str(other), "-", "-", "-"))
            rows.append(("  data fetches in flight at once (max)",
                         str(overlap), "-", "-", "-"))
            notes += [f"N={n} {mode}: {ln}" for ln in res["errors"][:5]]
            notes += [f"N={n} {mode}: daemon log: {ln}"
                      for ln in complaints[:5]]
    notes.insert(0, f"{LATENCY_S * 1000:g} ms latency per Vault request; a "
                 "fresh mount per row; sources: va secret/herd, va "
                 "secret/other, vb secret/shared")
    B.table("herd of cold readers (provider requests per source entry)",
            rows, notes)


if __name__ == "__main__":
    main()
