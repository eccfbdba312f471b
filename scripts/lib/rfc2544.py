"""The RFC 2544 throughput search of scripts/bench-rfc2544.sh: trial records, the next rate, the report.

RFC 2544 section 26.1: throughput is the highest offered rate at which the device forwards every
frame. Here "every" is "all but LOSS_PCT percent" (0.1 by default): on veth a few frames sit in
rings at the edges of a window, and a count to the last frame would measure those, not the router.

The search, per (router, generator, frame size), one trial per call of `next`:
  1. A trial at the generator's full rate (target 0). If the router keeps up there, the search
     ends at once: the throughput is at least that rate, and the generator is the limit.
  2. A trial at the rate the router forwarded in trial 1 (its forwarding rate under overload,
     RFC 2544 calls that the "maximum forwarding rate"): the throughput is usually just below.
  3. While no trial has passed, step down from the lowest failed rate by 2%, 4%, 8%... of it;
     while none but the first has failed, step up from the highest pass the same way.
  4. Then bisect between the highest rate that passed and the lowest above it that failed,
     until they are within RESOLUTION_PCT percent, or MAX_TRIALS trials were run.
Rates are the offered rates measured in each trial (what the pacer let through to the router),
not the targets asked for, so a generator that cannot reach a target still gives a true point.
The pacer passes somewhat less than its target on a busy machine, so the target for a wanted
rate is scaled by what the paced trial nearest to that rate really passed.

Subcommands (the shell script calls them; parameters also come from its environment):
  trial KEY N TARGET SNAP_A SNAP_B ETHTOOL_A ETHTOOL_B
                                     one JSON line: the trial's counters and verdict
  next TRIALS_FILE KEY               "0" (full rate), a rate in frames/s, or "done REASON"
  summary TRIALS_FILE KEY            one line: the search's result so far
  report TRIALS_FILE OUT JSON META   the table (stdout) and OUT/bench-rfc2544.{md,json}
  selftest                           the search against simulated routers (no root needed)
"""

import json
import os
import sys


def params():
    env = os.environ
    return {
        "loss_pct": float(env.get("LOSS_PCT", "0.1")),
        "resolution_pct": float(env.get("RESOLUTION_PCT", "1")),
        "max_trials": int(env.get("MAX_TRIALS", "8")),
    }


def ethtool_stats(path):
    """`ethtool -S` output as {name: value} (numbers only; empty if the file is not that)."""
    pairs = (line.partition(":") for line in open(path))
    return {k.strip(): int(v) for k, _, v in pairs if v.strip().isdigit()}


def trial(key, n, target, a, b, ea=None, eb=None):
    """One trial's record from the counter snapshots before and after its window (and rtr0's
    `ethtool -S` before and after, which say where in the router frames were dropped)."""
    router, generator, frame = key.split()
    dt = (b["t"] - a["t"]) / 1e9

    def d(ns, dev, field):
        return b[ns][dev][field] - a[ns][dev][field]

    # The pacer (or the wire) redirects frames out of gw1 into rtr0's ring. veth counts on gw1
    # the frames rtr0's NAPI took from that ring (tx) and those the full ring refused (tx_drop):
    # together, what was offered to the router. The refused ones are the router's loss.
    offered = d("gen", "gw1", "tx") + d("gen", "gw1", "tx_drop")
    sink_rx = d("sink", "sink0", "rx")
    # Frames that reach the sink's IP layer were not what the router should send (bench_sink).
    unexpected = b["sink_ip_in"] - a["sink_ip_in"]
    forwarded = max(0, sink_rx - unexpected)
    total = b["rtr_cpu"]["total"] - a["rtr_cpu"]["total"]
    loss = (offered - forwarded) / offered if offered else None
    return {
        "router": router, "generator": generator, "frame": int(frame), "trial": int(n),
        "target_pps": int(target), "seconds": round(dt, 3), "started_s": round(a["t"] / 1e9, 3),
        "generated_pps": d("gen", "gen0", "tx") / dt,
        "offered_pps": offered / dt, "forwarded_pps": forwarded / dt, "loss": loss,
        "passed": loss is not None and forwarded > 0 and loss * 100 <= params()["loss_pct"],
        "router_ring_drops": d("gen", "gw1", "tx_drop"),
        # Frames rtr0's XDP program redirected that did not get through (veth counts them as
        # rx_queue_0_drops; for xroute: its AF_XDP receive ring was full, the worker fell behind).
        "router_redirect_drops": (eb or {}).get("rx_queue_0_drops", 0) - (ea or {}).get("rx_queue_0_drops", 0),
        "rtr0_ethtool": {k: v - (ea or {}).get(k, 0) for k, v in (eb or {}).items()
                         if k != "peer_ifindex" and v != (ea or {}).get(k, 0)},
        "sink_ring_drops": d("rtr", "rtr1", "tx_drop"),
        "sink_unexpected_ipv4": unexpected,
        "router_core_busy": (b["rtr_cpu"]["busy"] - a["rtr_cpu"]["busy"]) / total if total else None,
    }


def next_target(trials, p):
    """The next trial's target rate (0: full rate), or ("done", reason)."""
    want = next_rate(trials, p)
    if isinstance(want, tuple) or want == 0:
        return want
    paced = [t for t in trials if t["target_pps"] > 0 and t["offered_pps"] > 0]
    if not paced:
        return want
    near = min(paced, key=lambda t: abs(t["offered_pps"] - want))
    return round(want / min(1.0, max(0.5, near["offered_pps"] / near["target_pps"])))


def next_rate(trials, p):
    """The offered rate the next trial should have (0: full rate), or ("done", reason)."""
    if not trials:
        return 0
    first = trials[0]
    if first["forwarded_pps"] == 0:
        return ("done", "the router forwarded nothing")
    if first["passed"]:
        return ("done", "generator-bound")
    if len(trials) >= p["max_trials"]:
        return ("done", "trial limit")
    passes = [t["offered_pps"] for t in trials if t["passed"]]
    lo = max(passes, default=0.0)
    # A failure below a pass is noise around the knee; the bracket is above the best pass.
    fails_above = [t["offered_pps"] for t in trials if not t["passed"] and t["offered_pps"] > lo]
    if not fails_above:
        return ("done", "converged")
    hi = min(fails_above)
    if lo and hi - lo <= hi * p["resolution_pct"] / 100:
        return ("done", "converged")
    if len(trials) == 1:
        return round(min(first["forwarded_pps"], hi * 0.999))
    if not passes:
        steps = len(trials) - 2  # failed trials below the first
        return round(hi * (1 - min(0.5, 0.02 * 2**steps)))
    if hi == first["offered_pps"]:
        # Nothing failed below full rate yet: step up from the best pass, by 2%, 4%, 8%...
        return round(min(lo * (1 + 0.02 * 2 ** (len(passes) - 1)), (lo + hi) / 2))
    return round((lo + hi) / 2)


def result(trials):
    """The search's outcome: throughput (the best passing offered rate), its loss, and a note."""
    passes = [t for t in trials if t["passed"]]
    out = {"trials": len(trials), "generator_max_mpps": trials[0]["offered_pps"] / 1e6 if trials else None}
    if passes:
        best = max(passes, key=lambda t: t["offered_pps"])
        out.update(throughput_mpps=best["offered_pps"] / 1e6, loss_percent=100 * best["loss"],
                   generator_bound=trials[0]["passed"])
    else:
        out.update(throughput_mpps=None, loss_percent=None, generator_bound=False)
    return out


def cmd_trial(argv):
    key, n, target, a, b, ea, eb = argv
    r = trial(key, n, target, json.loads(a), json.loads(b), ethtool_stats(ea), ethtool_stats(eb))
    print(json.dumps(r))
    say = lambda m: print(f"bench-rfc2544: {m}", file=sys.stderr)
    what = "full rate" if r["target_pps"] == 0 else f"target {r['target_pps'] / 1e6:.3f}"
    loss = f"{100 * r['loss']:.3f}%" if r["loss"] is not None else "-"
    say(f"  trial {r['trial']} ({what}): offered {r['offered_pps'] / 1e6:.3f} Mpps "
        f"(generator {r['generated_pps'] / 1e6:.3f}), forwarded {r['forwarded_pps'] / 1e6:.3f}, "
        f"loss {loss}: {'pass' if r['passed'] else 'fail'}")
    if r["forwarded_pps"] == 0:
        say("  !!! WARNING: the sink received NOTHING in this trial !!!")
    frames = r["offered_pps"] * r["seconds"]
    if r["router_ring_drops"] > 0.0002 * frames:
        say(f"  {r['router_ring_drops']} frames found the router's receive ring full")
    if r["router_redirect_drops"] > 0.0002 * frames:
        say(f"  {r['router_redirect_drops']} frames redirected by the router's XDP program did not get through "
            "(xroute: its AF_XDP ring was full, the worker fell behind)")
    if r["sink_ring_drops"] > 0.0002 * frames:
        say(f"  WARNING: {r['sink_ring_drops']} frames dropped between the router and the sink (the sink's ring "
            "was full): that part of the loss is the sink's, not the router's")
    if r["sink_unexpected_ipv4"] > 10:
        say(f"  WARNING: {r['sink_unexpected_ipv4']} frames at the sink were not the expected ones "
            "(MAC, TTL 63, UDP to 198.18.0.0/15) and are not counted as forwarded")


def load(path, key=None):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    if key is not None:
        router, generator, frame = key.split()
        rows = [r for r in rows if (r["router"], r["generator"], r["frame"]) == (router, generator, int(frame))]
    return rows


def cmd_summary(argv):
    path, key = argv
    r = result(load(path, key))
    if r["throughput_mpps"] is None:
        print(f"no rate passed in {r['trials']} trials")
    else:
        print(f"throughput {'>= ' if r['generator_bound'] else ''}{r['throughput_mpps']:.3f} Mpps "
              f"(loss {r['loss_percent']:.3f}%) after {r['trials']} trials")


def cmd_next(argv):
    path, key = argv
    t = next_target(load(path, key), params())
    print(f"done {t[1]}" if isinstance(t, tuple) else t)


ROUTER_NAMES = {"xroute": "xroute (full table)", "linux": "Linux forwarding (full table)",
                "xdp": "XDP redirect baseline (no lookup)"}


def cmd_report(argv):
    path, out, as_json, meta = argv
    meta = json.loads(meta)
    rows = load(path)
    searches = []
    for s in meta["searches"]:
        ts = [r for r in rows if (r["router"], r["generator"], r["frame"]) == (s["router"], s["generator"], s["frame"])]
        searches.append({**s, **result(ts), "trials_detail": ts})
    doc = {**{k: v for k, v in meta.items() if k != "searches"}, "searches": searches}
    json.dump(doc, open(f"{out}/bench-rfc2544.json", "w"), indent=1)

    p = params()
    lines = [f"{doc['date']}; {doc['machine']}; kernel {doc['kernel']}; xroute {doc['revision']}",
             f"RFC 2544 throughput: highest offered rate with at most {p['loss_pct']}% loss; trials of "
             f"{doc['trial_s']} s, at most {p['max_trials']} per search, resolution {p['resolution_pct']}%; "
             f"router on CPU {doc['router_cpu']}, generator, pacer and sink on CPU {doc['generator_cpu']}; "
             f"{doc['routes']:,} routes for xroute and Linux; before the run: {doc['load_before']}", "",
             "| router | generator | frame bytes | throughput Mpps | loss at it % | trials | generator max Mpps | note |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for s in searches:
        tput = "-" if s["throughput_mpps"] is None else (
            f"{'>= ' if s['generator_bound'] else ''}{s['throughput_mpps']:.3f}")
        loss = "-" if s["loss_percent"] is None else f"{s['loss_percent']:.3f}"
        gmax = "-" if s["generator_max_mpps"] is None else f"{s['generator_max_mpps']:.3f}"
        note = s["end"]
        if s["generator_bound"]:
            note = "the generator is the limit: no loss at its full rate"
        elif s["throughput_mpps"] is None and s["trials"]:
            note = f"no rate passed ({note})"
        lines.append(f"| {ROUTER_NAMES.get(s['router'], s['router'])} | {s['generator']} | {s['frame']} | {tput} "
                     f"| {loss} | {s['trials']} | {gmax} | {note} |")
    lines.append("")
    for g in sorted({(s["generator"], s["frame"]) for s in searches}):
        by = {s["router"]: s for s in searches if (s["generator"], s["frame"]) == g}
        x, l = by.get("xroute"), by.get("linux")
        if x and l and x["throughput_mpps"] and l["throughput_mpps"]:
            bound = " (a lower bound: the generator was the limit)" if x["generator_bound"] or l["generator_bound"] else ""
            lines.append(f"{g[0]}, {g[1]} bytes: xroute / Linux throughput {x['throughput_mpps'] / l['throughput_mpps']:.2f}x{bound}")
    text = "\n".join(lines)
    open(f"{out}/bench-rfc2544.md", "w").write(text + "\n")
    print(json.dumps(doc, indent=1) if as_json == "1" else text)


def cmd_selftest(_argv):
    """The search against simulated routers: it must end within the trial limit, on a rate that
    passed, within the resolution of the true throughput (or at the generator's rate)."""
    p = {"loss_pct": 0.1, "resolution_pct": 1.0, "max_trials": 8}
    cases = [(0.3e6, 0.45e6, 1.0), (0.44e6, 0.45e6, 0.93), (0.1e6, 2.7e6, 0.9), (1.4e6, 0.45e6, 0.9),
             (0.45e6, 0.45e6, 1.0), (0.3e6, 0.45e6, 0.85)]
    for capacity, gen, pacer in cases:
        trials = []
        while True:
            t = next_target(trials, p)
            if isinstance(t, tuple):
                break
            # A pacer that passes a share of its target, and no more than the generator sends.
            offered = gen if t == 0 else min(t * pacer, gen)
            # A router that forwards up to its capacity and, above it, a little less (overload).
            forwarded = offered if offered <= capacity else capacity * 0.98
            loss = (offered - forwarded) / offered
            trials.append({"target_pps": t, "offered_pps": offered, "forwarded_pps": forwarded, "loss": loss,
                           "passed": loss * 100 <= p["loss_pct"]})
        r = result(trials)
        assert len(trials) <= p["max_trials"], (capacity, gen, trials)
        assert r["throughput_mpps"] is not None, (capacity, gen, t, trials)
        expect = min(capacity, gen) / 1e6
        assert r["throughput_mpps"] <= expect * 1.0001, (capacity, gen, r)
        assert r["generator_bound"] == (gen <= capacity), (capacity, gen, r)
        # Converged within the resolution, or stopped by the trial limit close to it.
        assert r["throughput_mpps"] >= expect * 0.97, (capacity, gen, r, trials)
        print(f"capacity {capacity / 1e6:.2f} Mpps, generator {gen / 1e6:.2f}, pacer {pacer:.2f}: "
              f"{r['throughput_mpps']:.4f} Mpps "
              f"in {len(trials)} trials ({t[1]})")
    print("rfc2544 search selftest: ok")


if __name__ == "__main__":
    commands = {"trial": cmd_trial, "next": cmd_next, "summary": cmd_summary, "report": cmd_report,
                "selftest": cmd_selftest}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(commands)} ...")
    commands[sys.argv[1]](sys.argv[2:])
