#!/usr/bin/env python3
"""Summarises an attack sweep (OUT_DIR/attacks.csv, written by scripts/attack_sweep.sh) as
OUT_DIR/attacks.md: per attack the clean accuracy the attacker paid and whether the protection
survived (owner verified and at least 90% of the users authenticated), the attacks that removed
it stated plainly with their cost, and the issue's targets checked; plus PNG plots when
matplotlib is installed (per pruning method: clean accuracy and owner/user detection against
sparsity; per fine-tuning mode: the same against learning rate, one line per attacker fraction;
the input transforms side by side, one bar group each). A locked model's sweep (its CSV has the
lock's columns) is summarised as fine-tuning and distillation against the thief's alternative,
the same net trained from scratch on the same records (scratch_accuracy, scratch_gap).
Without matplotlib the markdown is still written and says the plots were skipped.

    python3 scripts/plot_attacks.py OUT_DIR/attacks.csv [MORE.csv ...] OUT_DIR [--no-plots]

Several CSVs (the sweeps of several invocations into one OUT_DIR) are read as one: an attack
id met again replaces the earlier row.

Accuracies are fractions in the CSV and percentage points here; accuracy_drop is original minus
attacked, so a negative drop is a gain. Exit status: 0 written, 1 unreadable or malformed CSV,
2 usage. Needs only the standard library (matplotlib optional).
"""

import argparse
import csv
import math
import os
import sys

REQUIRED = ["id", "family", "method", "sparsity", "lr", "fraction", "epochs", "student",
            "clean_accuracy", "original_accuracy", "accuracy_drop", "owner_detection",
            "owner_verified", "users_authenticated", "users_count", "users_min_detection",
            "forged_passed", "forged_count", "forged_max_detection", "seconds", "error"]
# A locked model's sweep (scripts/attack_sweep.sh on a `train --protect --lock` model): the lock's
# columns in place of the users' and forged fingerprints', and the from-scratch alternative.
LOCKED = [c for c in REQUIRED if not c.startswith(("users_", "forged_"))] + [
    "authorized_min_accuracy", "authorized_mean_accuracy", "unauthorized_accuracy", "forged_count",
    "forged_max_accuracy", "scratch_accuracy", "scratch_gap"]
USERS_NEEDED = 0.9          # share of the users that must still authenticate
SCRATCH_MARGIN = 0.01       # a lock is opened when the attack beats training from scratch by more
PRUNE_TARGET_DROP = 0.02    # targets: pruning within 2 points, fine-tuning within 1 point
FINETUNE_TARGET_DROP = 0.01


class PlotError(Exception):
    pass


def num(v):
    """A CSV cell as a float, or None when empty or not a number."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def pct(v, spec="%.2f%%"):
    return "–" if v is None else spec % (100 * v)


def read_rows(paths):
    """The rows of every CSV in order; a later row with an id already read replaces it."""
    rows, at = [], {}
    for path in paths:
        for r in read_csv(path):
            if r["id"] in at:
                rows[at[r["id"]]] = r
            else:
                at[r["id"]] = len(rows)
                rows.append(r)
    return rows


def read_csv(path):
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            missing = [c for c in (LOCKED if "unauthorized_accuracy" in fields else REQUIRED) if c not in fields]
            if missing:
                raise PlotError(f"{path} is not an attack sweep CSV: no column {', '.join(missing)}")
            rows = list(reader)
    except OSError as e:
        raise PlotError(f"cannot read {path}: {e.strerror}")
    for r in rows:
        r["ok"] = not r["error"] and num(r["clean_accuracy"]) is not None
    return rows


def users_ok(r):
    n, k = num(r["users_count"]), num(r["users_authenticated"])
    if not n:
        return True         # no users registered: the owner alone decides
    return k is not None and k >= USERS_NEEDED * n


def survived(r):
    return r["owner_verified"] == "1" and users_ok(r)


def describe(r):
    """The attack in words, e.g. `finetune ftal, lr 0.08 (warm-up 1 + cosine), 10% of the data, 2 epochs`."""
    frac = num(r["fraction"])
    share = f"{100 * frac:g}% of the data" if frac is not None else ""
    epochs = r["epochs"]
    if r["family"] == "prune":
        s = f"prune {r['method']}, sparsity {r['sparsity']}"
        if epochs in ("", "0"):
            return s + ", no fine-tuning"
        return s + f", fine-tuned {epochs} epoch{'s' if epochs != '1' else ''} on {share} (lr {r['lr']})"
    if r["family"] == "finetune":
        sched = ""
        if num(r.get("warmup")):
            sched = f" (warm-up {r['warmup']} + {r.get('schedule') or 'cosine'})"
        return f"finetune {r['method']}, lr {r['lr']}{sched}, {share}, {epochs} epoch{'s' if epochs != '1' else ''}"
    if r["family"] == "baseline":
        return "no attack (the protected model as it is)"
    if r["family"] == "distill":
        return f"distill into {r['student']}, {share}, {epochs} epoch{'s' if epochs != '1' else ''}, lr {r['lr']}"
    if r["family"] == "transform":
        return f"transform {r['method'].replace('+', ' then ')} (input preprocessing, weights unchanged)"
    if r["family"] == "quantize":
        return f"quantize the weights to {r['method']}, one scale per output channel"
    if r["family"] == "invert":
        return f"invert the token: a lock-sized patch optimised on {share}"
    if r["family"] == "scratch":
        sched = f" (warm-up {r['warmup']} + {r.get('schedule') or 'cosine'})" if num(r.get("warmup")) else ""
        return (f"train {r['student']} from scratch, lr {r['lr']}{sched}, {share}, "
                f"{epochs} epoch{'s' if epochs != '1' else ''}")
    return r["id"]


def cost(r):
    """What the attack cost in clean accuracy, in words."""
    clean, orig, drop = num(r["clean_accuracy"]), num(r["original_accuracy"]), num(r["accuracy_drop"])
    if drop is None and clean is not None and orig is not None:
        drop = orig - clean
    if drop is None:
        return "accuracy unknown"
    change = f"{pct(orig)} → {pct(clean)}"
    if drop > 0:
        return f"it cost {100 * drop:.2f} points of clean accuracy ({change})"
    return f"at no cost in clean accuracy ({change}, {100 * -drop:+.2f} points)"


def loss_of_protection(r, still="no longer "):
    parts = []
    if r["owner_verified"] != "1":
        parts.append(f"the owner is {still}verified (detection {fmt(num(r['owner_detection']))}"
                     + (f", p = {num(r['owner_p_value']):.2g}" if num(r.get("owner_p_value")) is not None else "")
                     + ")")
    if not users_ok(r):
        parts.append(f"only {r['users_authenticated']}/{r['users_count']} users authenticate "
                     f"(weakest detection {fmt(num(r['users_min_detection']))})")
    return " and ".join(parts)


def fmt(v, spec="%.3f"):
    return "–" if v is None else spec % v


def subject(ok):
    """The nets and datasets a sweep's rows cover, as "resnet20, fashion-mnist"."""
    nets = sorted({r.get("net", "") for r in ok if r.get("net")})
    datasets = sorted({r.get("dataset", "") for r in ok if r.get("dataset")})
    what = ", ".join(x for x in (" / ".join(nets), " / ".join(datasets)) if x)
    return f" ({what})" if what else ""


def points(v):
    return "–" if v is None else "%+.2f" % (100 * v)


def owner_cell(r):
    p = num(r.get("owner_p_value"))
    owner = fmt(num(r["owner_detection"])) + (f" (p={p:.2g})" if p is not None else "")
    if r["owner_verified"]:
        owner += " ✓" if r["owner_verified"] == "1" else " ✗"
    return owner


def seconds(r):
    secs = num(r["seconds"])
    return "–" if secs is None else "%.0f" % secs


def failed_and_plots(failed, images, plot_note):
    """The summary's last sections: the attacks that failed, with their errors, and the plots."""
    out = []
    if failed:
        out += ["## Failed attacks", "", "| attack | error |", "|---|---|"]
        for r in failed:
            err = (r["error"] or "no report").replace("|", "\\|")
            out.append(f"| {describe(r)} | {err} |")
        out.append("")
    out += ["## Plots", ""]
    out += [f"![{title}]({name})" for name, title in images] if images else [plot_note]
    out.append("")
    return out


def markdown(rows, csv_path, images, plot_note):
    ok = [r for r in rows if r["ok"]]
    failed = [r for r in rows if not r["ok"]]
    base = next((r for r in ok if r["family"] == "baseline"), None)
    protected_before = base is None or survived(base)
    attacks = [r for r in ok if r["family"] != "baseline"]
    removed = [r for r in attacks if not survived(r)]
    orig = next((num(r["original_accuracy"]) for r in ok if num(r["original_accuracy"]) is not None), None)
    out = ["# Attack sweep", ""]
    out.append(f"From `{csv_path}`{subject(ok)}: {len(rows)} attacks, "
               f"{len(failed)} failed; the protected model's clean accuracy {pct(orig)}. The protection "
               f"survives an attack when the owner is still verified and at least {100 * USERS_NEEDED:.0f}% of "
               "the users still authenticate.")
    out.append("")
    if not protected_before:
        out.append(f"**Before any attack the protection was not there: {loss_of_protection(base, still='not ')}. "
                   "No attack can be said to remove it; train the protected model longer and rerun.**")
    else:
        out.append(f"**Protection survived {len(attacks) - len(removed)} of {len(attacks)} attacks; "
                   f"{len(removed)} removed it.**")
    out.append("")

    out += ["## Where an attack removed the protection", ""]
    if not protected_before:
        out.append("Not measurable: the unattacked model already fails verification (see above).")
    elif removed:
        for r in sorted(removed, key=lambda r: num(r["accuracy_drop"]) if num(r["accuracy_drop"]) is not None else 9):
            out.append(f"- **{describe(r)}** removed the protection: {loss_of_protection(r)}; {cost(r)}.")
    else:
        out.append("None: after every attack the owner was verified and at least "
                   f"{100 * USERS_NEEDED:.0f}% of the users authenticated.")
    out.append("")

    out += ["## Against the targets", ""]
    for family, limit, label in (("prune", PRUNE_TARGET_DROP, "Pruning"),
                                 ("finetune", FINETUNE_TARGET_DROP, "Fine-tuning"),
                                 ("distill", FINETUNE_TARGET_DROP, "Distillation"),
                                 ("transform", FINETUNE_TARGET_DROP, "Input transforms"),
                                 ("quantize", PRUNE_TARGET_DROP, "Quantization")):
        fam = [r for r in attacks if r["family"] == family]
        if not fam:
            continue
        kept = [r for r in fam if num(r["accuracy_drop"]) is not None and num(r["accuracy_drop"]) <= limit]
        owner = sum(r["owner_verified"] == "1" for r in kept)
        users = sum(users_ok(r) for r in kept)
        if kept:
            out.append(f"- {label}: {len(kept)} of {len(fam)} attacks kept clean accuracy within "
                       f"{100 * limit:g} point{'s' if limit != 0.01 else ''} of the protected model; after those the owner was verified in "
                       f"{owner}/{len(kept)} ({100 * owner / len(kept):.0f}%) and ≥ {100 * USERS_NEEDED:.0f}% of "
                       f"users authenticated in {users}/{len(kept)}.")
        else:
            which = "the one attack did not keep" if len(fam) == 1 else f"none of the {len(fam)} attacks kept"
            out.append(f"- {label}: {which} clean accuracy within "
                       f"{100 * limit:g} point{'s' if limit != 0.01 else ''} of the protected model.")
    out.append("")

    out += ["## Every attack", "",
            "| attack | clean acc | drop (points) | owner detection (p) | users authenticated (min detection) "
            "| forged passed (max detection) | protection | seconds |",
            "|---|---|---|---|---|---|---|---|"]
    for r in ok:
        users = f"{r['users_authenticated'] or '–'}/{r['users_count'] or '–'} ({fmt(num(r['users_min_detection']))})"
        forged = f"{r['forged_passed'] or '–'}/{r['forged_count'] or '–'} ({fmt(num(r['forged_max_detection']))})"
        if r["family"] == "baseline":
            verdict = "present" if survived(r) else "**absent**"
        elif survived(r):
            verdict = "survived"
        else:
            verdict = "**removed**" if protected_before else "absent before the attack"
        out.append(f"| {describe(r)} | {pct(num(r['clean_accuracy']))} | {points(num(r['accuracy_drop']))} | "
                   f"{owner_cell(r)} | {users} | {forged} | {verdict} | {seconds(r)} |")
    out.append("")
    out += failed_and_plots(failed, images, plot_note)
    return "\n".join(out)


def locked_markdown(rows, csv_path, images, plot_note):
    """The summary of a locked model's sweep: what each attack's clean (unauthorized) accuracy
    came to, against the thief's alternative of training the same net from scratch on the same
    records; the authorized users' accuracy and the owner's verification."""
    ok = [r for r in rows if r["ok"]]
    failed = [r for r in rows if not r["ok"]]
    base = next((r for r in ok if r["family"] == "baseline"), None)
    attacks = [r for r in ok if r["family"] not in ("baseline", "scratch")]
    compared = [r for r in attacks if num(r["scratch_gap"]) is not None]
    opened = [r for r in compared if num(r["scratch_gap"]) > SCRATCH_MARGIN]
    out = ["# Attack sweep", ""]
    out.append(f"From `{csv_path}`{subject(ok)}: a locked model, {len(rows)} runs "
               f"({sum(r['family'] == 'scratch' for r in rows)} of them from-scratch training), {len(failed)} failed.")
    if base:
        out.append(f"Before any attack: clean (unauthorized) accuracy {pct(num(base['clean_accuracy']))}, authorized "
                   f"users at least {pct(num(base['authorized_min_accuracy']))}, owner "
                   f"{'verified' if base['owner_verified'] == '1' else 'NOT verified'}.")
    out.append("")
    out.append(f"A fine-tuning or distillation **unlocks** the model when its clean accuracy beats the thief's "
               f"alternative — the same net trained from scratch on the same records, epochs and learning rate — "
               f"by more than {100 * SCRATCH_MARGIN:g} point.")
    out.append("")
    out.append(f"**{len(opened)} of {len(compared)} fine-tuning and distillation attacks beat training from "
               "scratch.**" if compared else "**No fine-tuning or distillation attack has a from-scratch run to "
               "compare with.**")
    out.append("")
    out += ["## Unlocking against training from scratch", ""]
    for r in sorted(compared, key=lambda r: -num(r["scratch_gap"])):
        verdict = "unlocked beyond scratch" if r in opened else "no better than scratch"
        out.append(f"- **{describe(r)}**: clean accuracy {pct(num(r['clean_accuracy']))} against "
                   f"{pct(num(r['scratch_accuracy']))} from scratch ({100 * num(r['scratch_gap']):+.2f} points, "
                   f"{verdict}); authorized users at least {pct(num(r['authorized_min_accuracy']))}.")
    if not compared:
        out.append("None.")
    out.append("")
    inverted = [r for r in attacks if r["family"] == "invert"]
    if inverted:
        out += ["## Token inversion", ""]
        for r in inverted:
            out.append(f"- **{describe(r)}**: the best patch (at {r.get('inverted_position') or '?'}) unlocks "
                       f"{pct(num(r.get('inverted_accuracy')))} against clean {pct(num(r['unauthorized_accuracy']))}; "
                       f"the users' own patterns at least {pct(num(r['authorized_min_accuracy']))}.")
        out.append("")
    out += ["## Every attack", "",
            "| attack | clean acc | drop (points) | unauthorized | authorized min (mean) | owner detection (p) "
            "| forged max | from scratch | gap (points) | seconds |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ok:
        out.append(f"| {describe(r) if r['family'] != 'baseline' else 'no attack (the locked model as it is)'} | "
                   f"{pct(num(r['clean_accuracy']))} | {points(num(r['accuracy_drop']))} | "
                   f"{pct(num(r['unauthorized_accuracy']))} | {pct(num(r['authorized_min_accuracy']))} "
                   f"({pct(num(r['authorized_mean_accuracy']))}) | {owner_cell(r) if r['owner_detection'] else '–'} | "
                   f"{pct(num(r['forged_max_accuracy']))} | {pct(num(r['scratch_accuracy']))} | "
                   f"{points(num(r['scratch_gap']))} | {seconds(r)} |")
    out.append("")
    out += failed_and_plots(failed, images, plot_note)
    return "\n".join(out)


def series(rows, x_col, key):
    """Groups rows by key(row) = (order, label) into {label: sorted (x, row) list}, in that order,
    skipping rows without an x."""
    groups = {}
    for r in rows:
        x = num(r[x_col])
        if x is not None:
            groups.setdefault(key(r), []).append((x, r))
    return {k[1]: sorted(v, key=lambda t: t[0]) for k, v in sorted(groups.items())}


def plots(rows, out_dir):
    """Writes the PNGs into out_dir; returns [(file name, title)], or raises ImportError."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["ok"]]
    images = []
    # The second detection curve: the weakest user's detection, or on a locked model the weakest
    # authorized user's accuracy (and the from-scratch alternative's accuracy beside the attacks').
    locked = bool(ok) and "unauthorized_accuracy" in ok[0]
    weak, weak_label = (("authorized_min_accuracy", "weakest authorized user (accuracy)") if locked
                        else ("users_min_detection", "weakest user"))

    def draw(groups, x_label, title, name, log_x=False):
        fig, (acc, det) = plt.subplots(1, 2, figsize=(11, 4))
        for i, (label, pts) in enumerate(groups.items()):
            colour = f"C{i}"
            xs = [x for x, _ in pts]
            acc.plot(xs, [100 * (num(r["clean_accuracy"]) or 0) for _, r in pts], "o-", color=colour, label=label)
            det.plot(xs, [num(r["owner_detection"]) for _, r in pts], "o-", color=colour, label=f"owner, {label}")
            users = [num(r[weak]) for _, r in pts]
            if any(u is not None for u in users):
                det.plot(xs, users, "s--", color=colour, alpha=0.7, label=f"{weak_label}, {label}")
            scratch = [num(r.get("scratch_accuracy")) for _, r in pts]
            if any(a is not None for a in scratch):
                acc.plot(xs, [None if a is None else 100 * a for a in scratch], "x:", color=colour,
                         label=f"from scratch, {label}")
        orig = next((num(r["original_accuracy"]) for _, pts in groups.items() for _, r in pts
                     if num(r["original_accuracy"]) is not None), None)
        if orig is not None:
            acc.axhline(100 * orig, color="grey", linestyle=":", label="protected model")
        acc.set_xlabel(x_label)
        acc.set_ylabel("clean accuracy (%)")
        det.set_xlabel(x_label)
        det.set_ylabel("detection rate")
        det.set_ylim(-0.02, 1.02)
        for ax in (acc, det):
            if log_x:
                ax.set_xscale("log")
                ticks = sorted({x for pts in groups.values() for x, _ in pts})
                ax.set_xticks(ticks)
                ax.set_xticklabels([f"{t:g}" for t in ticks])
                ax.minorticks_off()
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, name), dpi=110)
        plt.close(fig)
        images.append((name, title))

    def prune_label(r):
        if r["epochs"] in ("", "0"):
            return (0, 0), "no fine-tuning"
        frac = num(r["fraction"]) or 0
        return (num(r["epochs"]) or 0, frac), f"fine-tuned {r['epochs']} ep on {100 * frac:g}%"

    def finetune_label(r):
        frac = num(r["fraction"]) or 0
        return (frac, num(r["epochs"]) or 0), f"{100 * frac:g}% of the data, {r['epochs']} ep"

    for method in sorted({r["method"] for r in ok if r["family"] == "prune"}):
        groups = series([r for r in ok if r["family"] == "prune" and r["method"] == method], "sparsity", prune_label)
        if groups:
            draw(groups, "sparsity", f"Pruning ({method}): accuracy and detection against sparsity",
                 f"prune_{method}.png")
    transforms = [r for r in ok if r["family"] == "transform"]
    if transforms:
        # Categorical: one group of bars per transform, in the sweep's order.
        fig, (acc, det) = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(transforms) + 4), 4))
        xs = list(range(len(transforms)))
        names = [r["method"] for r in transforms]
        acc.bar(xs, [100 * (num(r["clean_accuracy"]) or 0) for r in transforms], color="C0")
        orig = next((num(r["original_accuracy"]) for r in transforms if num(r["original_accuracy"]) is not None), None)
        if orig is not None:
            acc.axhline(100 * orig, color="grey", linestyle=":", label="protected model")
            acc.legend(fontsize=7)
        acc.set_ylabel("clean accuracy (%)")
        det.bar([x - 0.2 for x in xs], [num(r["owner_detection"]) or 0 for r in transforms], 0.4, label="owner")
        det.bar([x + 0.2 for x in xs], [num(r[weak]) or 0 for r in transforms], 0.4, label=weak_label)
        det.set_ylabel("detection rate")
        det.set_ylim(0, 1.02)
        det.legend(fontsize=7)
        for ax in (acc, det):
            ax.set_xticks(xs)
            ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
            ax.grid(alpha=0.3, axis="y")
        title = "Input transforms: accuracy and detection behind the attacker's preprocessing"
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "transforms.png"), dpi=110)
        plt.close(fig)
        images.append(("transforms.png", title))
    for mode in sorted({r["method"] for r in ok if r["family"] == "finetune"}):
        groups = series([r for r in ok if r["family"] == "finetune" and r["method"] == mode], "lr",
                        finetune_label)
        if groups:
            draw(groups, "learning rate (the largest with warm-up + cosine)",
                 f"Fine-tuning ({mode}): accuracy and detection against learning rate", f"finetune_{mode}.png",
                 log_x=True)
    return images


def main():
    ap = argparse.ArgumentParser(description="Summarise and plot an attack sweep (scripts/attack_sweep.sh).")
    ap.add_argument("csv", nargs="+", help="attacks.csv written by scripts/attack_sweep.sh (several: merged by id)")
    ap.add_argument("out_dir", help="folder for attacks.md and the PNG plots")
    ap.add_argument("--no-plots", action="store_true", help="write only attacks.md")
    args = ap.parse_args()
    try:
        rows = read_rows(args.csv)
    except PlotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    images, note = [], ""
    if args.no_plots:
        note = "Plots skipped (`--no-plots`)."
    else:
        try:
            images = plots(rows, args.out_dir)
            if not images:
                note = "No plots: the sweep has no successful pruning, fine-tuning or transform attack."
        except ImportError:
            note = ("Plots skipped: matplotlib is not installed (`pip install matplotlib`, then rerun "
                    "`scripts/plot_attacks.py`).")
    md = os.path.join(args.out_dir, "attacks.md")
    with open(md + ".tmp", "w") as fh:
        locked = bool(rows) and "unauthorized_accuracy" in rows[0]
        fh.write((locked_markdown if locked else markdown)(rows, ", ".join(args.csv), images, note))
    os.replace(md + ".tmp", md)
    print(f"wrote {md}" + (f" and {len(images)} plots" if images else f" ({note})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
