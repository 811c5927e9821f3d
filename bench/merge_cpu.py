#!/usr/bin/env python3
"""Merges the parts of `bench/run_all.sh --cpu` into one results file: every run of
`activeip bench train|infer --device cpu` and of bench/pytorch_peer.py --device cpu, and per
mode (train, infer), thread count, net and precision of ours the ratio ours / PyTorch's best
fp32 configuration (NCHW or channels_last, whichever was faster); a bf16 row of ours also
gives the ratio to PyTorch's bf16 autocast (amp-bf16-cl), where that ran.

    python3 bench/merge_cpu.py PARTS_DIR OUT.json DATE

Parts are named {train,infer,peer-train,peer-infer}-NET-tTHREADS.json; a missing or failed
part leaves its figures out (null, with the reason). Exit status: 0 written, 1 error.
"""

import json
import os
import re
import subprocess
import sys

PART = re.compile(r"^(peer-)?(train|infer)-([a-z0-9]+)-t([0-9]+)\.json$")


def load(path):
    with open(path) as f:
        return json.load(f)


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 1
    parts, out, date = argv
    runs, machine, versions = [], {}, {}
    for name in sorted(os.listdir(parts)):
        m = PART.match(name)
        if not m:
            continue
        peer, mode, net, threads = bool(m.group(1)), m.group(2), m.group(3), int(m.group(4))
        part = load(os.path.join(parts, name))
        if peer:
            versions["pytorch"] = part.get("machine", {}).get("pytorch")
            for r in part.get("runs", []):
                runs.append({"engine": "pytorch", "mode": mode, "threads": threads, "net": net,
                             "batch": r.get("batch"), "config": r.get("config"),
                             "precision": r.get("precision", "fp32"), "images_per_s": r.get("images_per_s"),
                             "step_ms": r.get("step_ms"), "reason": r.get("reason")})
        else:
            machine = machine or part.get("machine", {})
            for r in part.get("runs", []):
                runs.append({"engine": "activeip", "mode": mode, "threads": threads, "net": net,
                             "batch": r.get("batch"), "config": r.get("conv_impl"),
                             "precision": r.get("precision", "fp32"), "images_per_s": r.get("images_per_s"),
                             "step_ms": r.get("step_ms"), "reason": r.get("reason")})
    summary = []

    def best_of(rs, precision):
        rs = [r for r in rs if r["engine"] == "pytorch" and r["precision"] == precision and r["images_per_s"]]
        return max(rs, key=lambda r: r["images_per_s"]) if rs else None

    keys = sorted({(r["mode"], r["threads"], r["net"], r["precision"]) for r in runs if r["engine"] == "activeip"})
    for mode, threads, net, precision in keys:
        same = [r for r in runs if (r["mode"], r["threads"], r["net"]) == (mode, threads, net)]
        ours = [r for r in same if r["engine"] == "activeip" and r["precision"] == precision and r["images_per_s"]]
        best, bf16 = best_of(same, "fp32"), best_of(same, "bf16") if precision == "bf16" else None
        o = ours[0]["images_per_s"] if ours else None
        summary.append({"mode": mode, "threads": threads, "net": net, "precision": precision,
                        "batch": (ours or same)[0]["batch"] if same else None, "activeip": o,
                        "pytorch": best["images_per_s"] if best else None,
                        "pytorch_config": best["config"] if best else None,
                        "ratio": o / best["images_per_s"] if o and best else None,
                        "pytorch_bf16": bf16["images_per_s"] if bf16 else None,
                        "ratio_bf16": o / bf16["images_per_s"] if o and bf16 else None})
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    res = {"format": "activeip-bench-cpu-results-v1", "date": date, "commit": commit or None, "source": out,
           "machine": {"cpu": machine.get("cpu"), "cores": os.cpu_count(), "build": machine.get("build"),
                       "pytorch": versions.get("pytorch")},
           "runs": runs, "summary": summary}
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(tmp, out)
    print("wrote " + out, file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError, KeyError) as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)
