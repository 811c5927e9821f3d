#!/usr/bin/env python3
"""Renders one benchmark results file (bench/results/<date>-<gpu>.json, written by
bench/run_all.sh) as docs/benchmarks.md: the machine, the headline figures, and tables of
every figure and ratio; plus PNG plots next to it when matplotlib is installed (per-layer
ours/cuDNN ratio bars per net, throughput against batch size per net and engine). Without
matplotlib the markdown is still written and says that the plots were skipped.

    python3 bench/render.py bench/results/2025-01-01-h100.json [--out docs/benchmarks.md]
            [--plots-dir docs/benchmarks] [--no-plots]

A CPU results file (bench/results/<date>-cpu.json, from `bench/run_all.sh --cpu`) renders
as the CPU section at the end of the same markdown, between the markers below, and leaves
the rest of the file as it was; a GPU render keeps the CPU section there.

Headline: the geometric mean of ours/cuDNN time over resnet18's distinct convolution shapes
and their three passes; our best training images/s against PyTorch's best configuration
(per net, any batch size); our model FLOP utilisation against the measured fp32 peak.
Exit status: 0 written, 1 unreadable or malformed results, 2 usage. Needs only the
standard library (matplotlib optional).
"""

import argparse
import json
import math
import os
import sys


class RenderError(Exception):
    pass


def fmt(v, spec="%.2f", none="–"):
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return none
    return spec % v


def geomean(values):
    values = [v for v in values if isinstance(v, (int, float)) and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def mib(v):
    return fmt(v / 1048576.0, "%.0f") if isinstance(v, (int, float)) else "–"


# ---------------------------------------------------------------------------------------
# Figures drawn from the results

def passes_in_order(layer):
    """(pass, figures) of a layer in fprop, dgrad, wgrad order (JSON objects come sorted)."""
    passes = layer.get("passes", {})
    order = [p for p in ("fprop", "dgrad", "wgrad") if p in passes] + sorted(set(passes) - {"fprop", "dgrad", "wgrad"})
    return [(p, passes[p]) for p in order]


def conv_ratios(conv, net):
    """[(label, pass, ratio)] of one net's layers, in the order measured."""
    out = []
    for layer in conv.get("layers", []):
        if layer.get("net") != net:
            continue
        for name, p in passes_in_order(layer):
            out.append((layer.get("name", "?"), name, p.get("ratio")))
    return out


def best_run(runs, net, **match):
    """The run of NET with the most images/s among those whose fields equal MATCH."""
    best = None
    for r in runs:
        if r.get("net") != net or not isinstance(r.get("images_per_s"), (int, float)):
            continue
        if any(r.get(k) != v for k, v in match.items()):
            continue
        if best is None or r["images_per_s"] > best["images_per_s"]:
            best = r
    return best


def ours_best(train, net):
    return best_run(train.get("runs", []), net)


def ours_best_custom(train, net):
    return best_run(train.get("runs", []), net, conv_impl="custom")


def peer_best(peer, net):
    return best_run(peer.get("runs", []), net)


def nets_of(results):
    nets = []
    for r in results.get("train", {}).get("runs", []) + results.get("pytorch", {}).get("runs", []):
        if r.get("net") not in nets:
            nets.append(r.get("net"))
    return nets


# ---------------------------------------------------------------------------------------
# Markdown

def machine_section(results):
    m = results.get("machine", {})
    pt = results.get("pytorch", {}).get("machine", {})
    rows = [
        ("GPU", m.get("gpu", m.get("cpu", "–"))),
        ("Driver (CUDA version)", m.get("driver", "–")),
        ("CUDA runtime", m.get("cuda_runtime", "–")),
        ("cuDNN", m.get("cudnn", "–")),
        ("cuBLAS", m.get("cublas", "–")),
        ("PyTorch", pt.get("pytorch", "–")),
        ("PyTorch's CUDA / cuDNN", "%s / %s" % (pt.get("cuda", "–"), pt.get("cudnn", "–"))),
        ("Date", results.get("date", "–")),
        ("Commit", results.get("commit", "–")),
    ]
    return table(["", ""], rows)


def headline(results):
    lines = []
    conv = results.get("conv", {})
    s = conv.get("summary", {}).get("resnet18", {})
    g = s.get("geomean_ratio")
    if g is not None:
        lines.append("- **Convolutions, ours vs cuDNN (resnet18, batch %s):** ours takes %s× cuDNN's time "
                     "(geometric mean over %s distinct shapes × fprop/dgrad/wgrad; one training step's "
                     "convolutions: %s×)." % (conv.get("config", {}).get("batch", "?"), fmt(g),
                                              s.get("distinct_shapes", "?"), fmt(s.get("step_ratio"))))
    train = results.get("train", {})
    peer = results.get("pytorch", {})
    for net in nets_of(results):
        ours = ours_best_custom(train, net)
        theirs = peer_best(peer, net)
        if ours and theirs:
            lines.append("- **Training %s:** our kernels %s images/s (batch %s) vs PyTorch's best, %s, %s images/s "
                         "(batch %s): %s× PyTorch." % (
                             net, fmt(ours["images_per_s"], "%.0f"), ours["batch"], theirs.get("config"),
                             fmt(theirs["images_per_s"], "%.0f"), theirs["batch"],
                             fmt(ours["images_per_s"] / theirs["images_per_s"])))
    peak = train.get("peak", {})
    mfus = [(r.get("mfu"), r) for r in train.get("runs", []) if isinstance(r.get("mfu"), (int, float))]
    if mfus:
        best_mfu, r = max(mfus, key=lambda x: x[0])
        lines.append("- **Model FLOP utilisation:** best %s (%s, batch %s, %s kernels) against the measured fp32 "
                     "peak of %s TFLOP/s (%s)." % (fmt(100 * best_mfu, "%.1f%%"), r["net"], r["batch"],
                                                  r["conv_impl"], fmt(peak.get("tflops")), peak.get("source", "?")))
    tta = results.get("time_to_accuracy")
    if tta:
        parts = []
        for engine in ("activeip", "pytorch"):
            t = tta.get(engine) or {}
            parts.append("%s %s" % (engine, fmt(t.get("seconds"), "%.0f s") if t.get("reached") else "not reached"))
        lines.append("- **Time to %s%% test accuracy (resnet18, CIFAR-10):** %s." % (
            fmt(100 * tta.get("target", 0.92), "%.0f"), ", ".join(parts)))
    return "\n".join(lines) if lines else "No figures in this results file."


def conv_section(conv):
    if not conv:
        return "Not measured in this run."
    out = []
    cfg = conv.get("config", {})
    out.append("Batch %s, fp32 (the engine's only precision), median of %s calls after %s warm-up calls (%s), "
               "inputs rotated through %s MiB; cuDNN with the algorithm `cudnnFind*` chose per shape and pass, "
               "without TF32. Ratio = ours / cuDNN time (above 1: slower). Every case is validated before timing "
               "(relative L2 ≤ %s against cuDNN)." % (cfg.get("batch"), cfg.get("reps"), cfg.get("warmup"),
                                                      cfg.get("timing", "CUDA events"),
                                                      mib(cfg.get("rotate_bytes")), cfg.get("tolerance")))
    comp = conv.get("comparator", {})
    if not comp.get("available", True):
        out.append("\ncuDNN was not available: %s" % comp.get("reason"))
    for net, s in conv.get("summary", {}).items():
        out.append("\n### %s\n" % net)
        out.append("Convolution layers: %s; distinct shapes: %s. Geometric mean ours/cuDNN: %s (fprop %s, dgrad %s, "
                   "wgrad %s). One step's convolutions (each layer counted): ours %s ms, cuDNN %s ms (%s×).\n" % (
                       s.get("conv_layers"), s.get("distinct_shapes"), fmt(s.get("geomean_ratio")),
                       fmt(s.get("geomean_ratio_by_pass", {}).get("fprop")),
                       fmt(s.get("geomean_ratio_by_pass", {}).get("dgrad")),
                       fmt(s.get("geomean_ratio_by_pass", {}).get("wgrad")),
                       fmt(s.get("step_ms_ours"), "%.2f"), fmt(s.get("step_ms_cudnn"), "%.2f"),
                       fmt(s.get("step_ratio"))))
        rows = []
        for layer in conv.get("layers", []):
            if layer.get("net") != net:
                continue
            for name, p in passes_in_order(layer):
                ours, cud = p.get("ours") or {}, p.get("cudnn") or {}
                rows.append((layer.get("name"), layer.get("uses"), name, fmt(ours.get("median_ms"), "%.4f"),
                             fmt(ours.get("tflops")), fmt(cud.get("median_ms"), "%.4f"), fmt(cud.get("tflops")),
                             fmt(p.get("ratio")), fmt(p.get("validation", {}).get("rel_l2"), "%.1e")))
        out.append(table(["shape (H×W×C, R×S, C→K, stride)", "uses", "pass", "ours ms", "ours TFLOP/s", "cuDNN ms",
                          "cuDNN TFLOP/s", "ours/cuDNN", "rel. error"], rows))
    return "\n".join(out)


def gemm_section(gemm):
    if not gemm:
        return "Not measured in this run."
    rows = []
    for c in gemm.get("cases", []):
        ours, cub = c.get("ours") or {}, c.get("cublas") or {}
        sh = c.get("shape", {})
        rows.append((c.get("name"), "%s×%s×%s" % (sh.get("M"), sh.get("N"), sh.get("K")),
                     fmt(ours.get("median_ms"), "%.4f"), fmt(ours.get("tflops")), fmt(cub.get("median_ms"), "%.4f"),
                     fmt(cub.get("tflops")), fmt(c.get("ratio")),
                     fmt((c.get("validation") or {}).get("rel_l2"), "%.1e")))
    peak = gemm.get("peak", {})
    s = gemm.get("summary", {})
    return ("fp32, median of %s calls; cuBLAS SGEMM with CUBLAS_DEFAULT_MATH (no TF32). Linear shapes are the "
            "fprop/dgrad/wgrad GEMMs of the nets' classifier layers. Geometric mean ours/cuBLAS: linear %s, "
            "squares %s. **Measured fp32 peak: %s TFLOP/s** (%s), the denominator of MFU below.\n\n%s" % (
                gemm.get("config", {}).get("reps"), fmt(s.get("geomean_ratio_linear")),
                fmt(s.get("geomean_ratio_square")), fmt(peak.get("tflops")), peak.get("source"),
                table(["case", "M×N×K", "ours ms", "ours TFLOP/s", "cuBLAS ms", "cuBLAS TFLOP/s", "ours/cuBLAS",
                       "rel. error"], rows)))


def train_section(train, peer):
    out = []
    if train:
        cfg = train.get("config", {})
        out.append("ActiveIP: %s, data resident on the device with the real augmentation (%s), median of %s steps "
                   "after %s warm-up steps; model FLOPs = 3 × the forward FLOPs of every convolution and linear "
                   "layer; MFU against %s TFLOP/s. Peak memory: the caching allocator's peak (includes the resident "
                   "training set, %s MiB); device used: the whole GPU's used memory after the run (context, "
                   "cuDNN/cuBLAS workspaces).\n" % (
                       cfg.get("data"), cfg.get("augment"), cfg.get("timed_steps"), cfg.get("warmup_steps"),
                       fmt(train.get("peak", {}).get("tflops")),
                       mib((train.get("runs") or [{}])[0].get("memory", {}).get("dataset_bytes"))))
        rows = []
        for r in train.get("runs", []):
            mem = r.get("memory") or {}
            rows.append((r.get("net"), r.get("batch"), r.get("conv_impl"), fmt(r.get("images_per_s"), "%.0f"),
                         fmt((r.get("step_ms") or {}).get("median"), "%.2f"), fmt(r.get("model_gflops_per_image"), "%.3f"),
                         fmt(r.get("achieved_tflops")), fmt(100 * r["mfu"], "%.1f%%") if isinstance(r.get("mfu"), (int, float)) else "–",
                         mib(mem.get("peak_allocated_bytes")), mib(mem.get("device_used_bytes")),
                         r.get("reason", "") if r.get("images_per_s") is None else ""))
        out.append(table(["net", "batch", "kernels", "images/s", "step ms", "GFLOP/image", "TFLOP/s", "MFU",
                          "peak MiB", "device used MiB", "note"], rows))
    if peer:
        cfg = peer.get("config", {})
        out.append("\nPyTorch %s on the same GPU, the same models (scripts/torch_crosscheck.py's mirrors), data "
                   "resident on the device with the same augmentation, SGD with momentum; median of %s steps after "
                   "%s warm-up steps. Configurations: %s.\n" % (
                       peer.get("machine", {}).get("pytorch", "?"), cfg.get("timed_steps"), cfg.get("warmup_steps"),
                       ", ".join(cfg.get("configs", []))))
        rows = []
        for r in peer.get("runs", []):
            rows.append((r.get("net"), r.get("batch"), r.get("config"), fmt(r.get("images_per_s"), "%.0f"),
                         fmt((r.get("step_ms") or {}).get("median"), "%.2f"), mib(r.get("peak_memory_bytes")),
                         r.get("reason", "") if r.get("images_per_s") is None else ""))
        out.append(table(["net", "batch", "configuration", "images/s", "step ms", "peak MiB", "note"], rows))
    if train and peer:
        rows = []
        for net in nets_of({"train": train, "pytorch": peer}):
            ours, theirs = ours_best_custom(train, net), peer_best(peer, net)
            cud = best_run(train.get("runs", []), net, conv_impl="cudnn")
            fp32 = best_run(peer.get("runs", []), net, config="eager-fp32")

            def ratio(peer_run):
                return fmt(ours["images_per_s"] / peer_run["images_per_s"]) if ours and peer_run else "–"

            rows.append((net, fmt(ours and ours["images_per_s"], "%.0f"), fmt(cud and cud["images_per_s"], "%.0f"),
                         fmt(fp32 and fp32["images_per_s"], "%.0f"), ratio(fp32),
                         "%s (%s)" % (fmt(theirs and theirs["images_per_s"], "%.0f"), theirs and theirs.get("config")),
                         ratio(theirs)))
        out.append("\nBest of each engine, any batch size (ours are fp32; eager-fp32 is PyTorch at the same precision):\n")
        out.append(table(["net", "ours (custom kernels)", "ours (cuDNN/cuBLAS)", "PyTorch eager-fp32", "ours/eager-fp32",
                          "PyTorch best", "ours/PyTorch best"], rows))
    return "\n".join(out) if out else "Not measured in this run."


def tta_section(tta):
    if not tta:
        return None
    rows = []
    for engine in ("activeip", "pytorch"):
        t = tta.get(engine)
        if not t:
            continue
        rows.append((engine, t.get("config", "–"), "yes" if t.get("reached") else "no", t.get("epoch", "–"),
                     fmt(t.get("seconds"), "%.1f"), fmt(t.get("best_accuracy"), "%.4f")))
    return ("resnet18 on CIFAR-10, %s; wall time (training and the per-epoch test evaluation) until the test "
            "accuracy first reaches %s.\n\n%s" % (tta.get("schedule", "one-cycle"), fmt(tta.get("target"), "%.2f"),
                                                 table(["engine", "configuration", "reached", "epoch", "seconds",
                                                        "best accuracy"], rows)))


# ---------------------------------------------------------------------------------------
# Plots

def make_plots(results, plots_dir, md_dir):
    """Returns markdown image lines, or raises ImportError without matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(plots_dir, exist_ok=True)
    images = []
    conv = results.get("conv", {})
    for net in conv.get("summary", {}):
        ratios = [(l, p, r) for (l, p, r) in conv_ratios(conv, net) if isinstance(r, (int, float))]
        if not ratios:
            continue
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(ratios)), 4))
        colours = {"fprop": "tab:blue", "dgrad": "tab:orange", "wgrad": "tab:green"}
        ax.bar(range(len(ratios)), [r for _, _, r in ratios], color=[colours.get(p, "grey") for _, p, _ in ratios])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(ratios)))
        ax.set_xticklabels(["%s %s" % (l, p) for l, p, _ in ratios], rotation=90, fontsize=7)
        ax.set_ylabel("ours / cuDNN time")
        ax.set_title("%s convolutions, batch %s, fp32" % (net, conv.get("config", {}).get("batch")))
        fig.tight_layout()
        path = os.path.join(plots_dir, "conv_ratio_%s.png" % net)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        images.append("![%s per-layer ratio](%s)" % (net, os.path.relpath(path, md_dir)))
    train, peer = results.get("train", {}), results.get("pytorch", {})
    for net in nets_of(results):
        series = {}
        for r in train.get("runs", []):
            if r.get("net") == net and isinstance(r.get("images_per_s"), (int, float)):
                series.setdefault("activeip " + r["conv_impl"], []).append((r["batch"], r["images_per_s"]))
        for r in peer.get("runs", []):
            if r.get("net") == net and isinstance(r.get("images_per_s"), (int, float)):
                series.setdefault("pytorch " + r["config"], []).append((r["batch"], r["images_per_s"]))
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, pts in sorted(series.items()):
            pts.sort()
            ax.plot([b for b, _ in pts], [v for _, v in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("training images/s")
        ax.set_title("%s training throughput" % net)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(plots_dir, "throughput_%s.png" % net)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        images.append("![%s throughput](%s)" % (net, os.path.relpath(path, md_dir)))
    return images


CPU_BEGIN = "<!-- cpu section: bench/run_all.sh --cpu -->"
CPU_END = "<!-- end of the cpu section -->"


def split_cpu(text):
    """(the text without its CPU section, the CPU section with its markers or '')."""
    begin, end = text.find(CPU_BEGIN), text.find(CPU_END)
    if begin < 0 or end < begin:
        return text, ""
    end += len(CPU_END)
    return (text[:begin].rstrip("\n") + "\n" + text[end:].lstrip("\n")).rstrip("\n") + "\n", text[begin:end]


def read_or_empty(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def cpu_section(results):
    m = results.get("machine", {})
    lines = [CPU_BEGIN, "## CPU: ActiveIP vs PyTorch", ""]
    if results.get("fixture"):
        lines += ["> **Test fixture: these numbers were not measured.**", ""]
    lines += ["Measured by `bench/run_all.sh --cpu` on %s (%s cores), PyTorch %s, commit %s, %s; source: `%s`. "
              "Both engines ran side by side in the same session on the same cores and data: training is the whole "
              "step (batch gathered, cropped, flipped and normalised, forward, loss, backward, SGD), inference "
              "eval-mode forward passes of one loaded batch; images/s from the median step. PyTorch's best is the "
              "faster of NCHW and channels_last (oneDNN) in fp32 at each setting; ours in bf16 (convolutions and "
              "linear layers on bf16 operands, AVX512-BF16) is also set against PyTorch's bf16 autocast "
              "(amp-bf16-cl)." % (
                  m.get("cpu", "?"), m.get("cores", "?"), m.get("pytorch", "?"), results.get("commit") or "?",
                  results.get("date", "?"), results.get("source", "?")), "",
              "| mode | threads | net | batch | ours in | ActiveIP images/s | PyTorch best fp32 images/s | PyTorch config "
              "| ours / PyTorch fp32 | PyTorch bf16 images/s | ours / PyTorch bf16 |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results.get("summary", []):
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r.get("mode"), r.get("threads"), r.get("net"), r.get("batch"), r.get("precision", "fp32"),
            fmt(r.get("activeip"), "%.1f"), fmt(r.get("pytorch"), "%.1f"), r.get("pytorch_config") or "–",
            fmt(r.get("ratio")), fmt(r.get("pytorch_bf16"), "%.1f"), fmt(r.get("ratio_bf16"))))
    failed = [r for r in results.get("runs", []) if not r.get("images_per_s")]
    if failed:
        lines += ["", "Runs without a figure:", ""]
        lines += ["- %s %s %s t%s %s: %s" % (r.get("engine"), r.get("mode"), r.get("net"), r.get("threads"),
                                               r.get("config"), r.get("reason") or "failed") for r in failed]
    lines += ["", CPU_END]
    return "\n".join(lines)


def render_cpu(results, out_path):
    if not isinstance(results.get("summary"), list):
        raise RenderError("CPU results without a summary")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    rest, _ = split_cpu(read_or_empty(out_path))
    if not rest.strip():
        rest = "# Benchmarks\n"
    write_atomically(out_path, rest.rstrip("\n") + "\n\n" + cpu_section(results) + "\n")


def render(results, out_path, plots_dir, plots):
    if isinstance(results, dict) and results.get("format") == "activeip-bench-cpu-results-v1":
        render_cpu(results, out_path)
        return
    if not isinstance(results, dict) or results.get("format") != "activeip-bench-results-v1":
        raise RenderError("not an activeip benchmark results file (format activeip-bench-results-v1 or "
                          "activeip-bench-cpu-results-v1)")
    md_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(md_dir, exist_ok=True)
    parts = ["# Benchmarks", ""]
    if results.get("fixture"):
        parts += ["> **Test fixture: these numbers were not measured.**", ""]
    parts += ["Measured by `bench/run_all.sh` in one session on one GPU; source: `%s`. Every comparison ran side "
              "by side in the same process or session, on the same GPU and shapes." % results.get("source", "?"), "",
              machine_section(results), "", "## Headline", "", headline(results), "",
              "## Convolutions: ours vs cuDNN", "", conv_section(results.get("conv")), "",
              "## GEMM: ours vs cuBLAS", "", gemm_section(results.get("gemm")), "",
              "## Training throughput: ActiveIP vs PyTorch", "",
              train_section(results.get("train"), results.get("pytorch")), ""]
    tta = tta_section(results.get("time_to_accuracy"))
    if tta:
        parts += ["## Time to accuracy", "", tta, ""]
    parts += ["## Plots", ""]
    if plots:
        try:
            images = make_plots(results, plots_dir, md_dir)
            parts += images if images else ["No figures to plot."]
        except ImportError:
            parts.append("Plots skipped: matplotlib is not installed (`pip install matplotlib`, then rerun "
                         "`bench/render.py`).")
    else:
        parts.append("Plots skipped (--no-plots).")
    parts.append("")
    _, cpu = split_cpu(read_or_empty(out_path))  # a CPU section stays
    if cpu:
        parts += [cpu, ""]
    write_atomically(out_path, "\n".join(parts))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="bench/results/<date>-<gpu>.json")
    p.add_argument("--out", default="docs/benchmarks.md", help="markdown to write (default: docs/benchmarks.md)")
    p.add_argument("--plots-dir", default=None, help="folder of the PNG plots (default: <out folder>/benchmarks)")
    p.add_argument("--no-plots", action="store_true", help="write the markdown only")
    args = p.parse_args(argv)
    plots_dir = args.plots_dir or os.path.join(os.path.dirname(os.path.abspath(args.out)), "benchmarks")
    try:
        with open(args.results) as f:
            results = json.load(f)
        render(results, args.out, plots_dir, not args.no_plots)
    except (OSError, ValueError, RenderError, KeyError, TypeError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print("wrote %s" % args.out, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
