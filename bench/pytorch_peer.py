#!/usr/bin/env python3
"""The PyTorch peer of `activeip bench train` and `bench infer`: the same models (the mirrors
of nets/ that scripts/torch_crosscheck.py builds), the same batch sizes, on the same device,
timed the same way — the dataset resident on the device as uint8, each batch gathered,
randomly cropped (4-pixel zero padding), flipped and normalised there, then forward,
cross-entropy, backward and an SGD step (momentum 0.9, weight decay 5e-4, lr 0.01); CUDA
events around every step on the GPU, the wall clock on the CPU; the median of the timed
steps after the warm-up ones; peak memory from torch.cuda.max_memory_allocated (the
resident dataset included, as in ours). --mode infer times eval-mode forward passes
(torch.inference_mode) of one batch normalised once, as `bench infer` does.

Configurations, each with cudnn.benchmark on (what a PyTorch user would run):
  eager-fp32     fp32, TF32 off (the engine's arithmetic)
  eager-fp32-cl  fp32, channels_last model and input (oneDNN's preferred layout on the CPU)
  eager-tf32     fp32 storage, TF32 matmuls and convolutions (CUDA only)
  amp-bf16-cl    autocast to bfloat16, channels_last model and input (on the CPU, oneDNN's
                 bf16 kernels: worth running where the CPU has AVX512-BF16)
  compile        torch.compile of whichever of the others was fastest at that net and batch
The default is every CUDA configuration on the GPU, eager-fp32 and eager-fp32-cl on the CPU
(with --threads N intra-op threads, default all cores, and one inter-op thread).

    python3 bench/pytorch_peer.py [--device cuda|cpu] [--threads N] [--mode train|infer]
        [--nets resnet18,resnet20,vgg16] [--batch 128,256,512]
        [--configs eager-fp32,eager-fp32-cl,eager-tf32,amp-bf16-cl,compile]
        [--data cifar10|synthetic] [--data-dir DIR] [--warmup 10] [--steps 50] [--out FILE]

--time-to-accuracy instead trains resnet18 on CIFAR-10 with ActiveIP's one-cycle schedule
(OneCycleLR: pct_start 0.3, cosine, div_factor 25, final_div_factor 1e4, no momentum
cycling; SGD momentum 0.9, Nesterov, weight decay 5e-4; random crop + flip; the last
partial batch dropped) and reports the wall time — training plus each epoch's test
evaluation — until the test accuracy first reaches --target (0.92):

    python3 bench/pytorch_peer.py --time-to-accuracy [--epochs 30 --batch 256 --lr 0.2
        --target 0.92 --tta-config eager-fp32]

One JSON object on stdout (or --out). Exit status: 0 done, 1 runtime error, 2 usage.
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ["eager-fp32", "eager-fp32-cl", "eager-tf32", "amp-bf16-cl", "compile"]
CUDA_DEFAULT = ["eager-fp32", "eager-tf32", "amp-bf16-cl", "compile"]
CPU_DEFAULT = ["eager-fp32", "eager-fp32-cl"]
CUDA_ONLY = ["eager-tf32"]
PRECISION = {"eager-fp32": "fp32", "eager-fp32-cl": "fp32", "eager-tf32": "tf32", "amp-bf16-cl": "bf16"}
NETS = ["resnet18", "resnet20", "vgg16"]
# Per-channel statistics on the [0, 1] scale, as engine/dataset.cpp.
NORMALIZATION = {
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "synthetic": ([0.5090, 0.4380, 0.4870], [0.2188, 0.2024, 0.2474]),
}


def positive_ints(text):
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError("'%s' is not a list of integers" % text)
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("'%s': every value must be a positive integer" % text)
    return values


def choice_list(known):
    def parse(text):
        values = [v for v in text.split(",") if v]
        bad = [v for v in values if v not in known]
        if not values or bad:
            raise argparse.ArgumentTypeError("'%s' is not among %s" % (",".join(bad) or text, ", ".join(known)))
        return values
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", type=choice_list(NETS), default=NETS)
    p.add_argument("--batch", type=positive_ints, default=[128, 256, 512])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (default: all cores)")
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--configs", type=choice_list(CONFIGS), default=None)
    p.add_argument("--data", choices=["cifar10", "synthetic"], default="synthetic")
    p.add_argument("--data-dir", default=os.path.join(ROOT, "data", "cifar-10-batches-bin"))
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (torch.compile compiles in them)")
    p.add_argument("--steps", type=int, default=50, help="timed steps")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="write the JSON here instead of stdout")
    p.add_argument("--time-to-accuracy", action="store_true")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=0.2, help="one-cycle peak learning rate")
    p.add_argument("--target", type=float, default=0.92)
    p.add_argument("--tta-config", choices=["eager-fp32", "eager-tf32", "amp-bf16-cl"], default="eager-fp32")
    args = p.parse_args(argv)
    if args.configs is None:
        args.configs = CPU_DEFAULT if args.device == "cpu" else CUDA_DEFAULT
    if args.device == "cpu" and any(c in CUDA_ONLY for c in args.configs):
        p.error("--configs: %s run only on CUDA" % ", ".join(c for c in args.configs if c in CUDA_ONLY))
    if args.threads < 0:
        p.error("--threads must be non-negative")
    if args.time_to_accuracy and args.device != "cuda":
        p.error("--time-to-accuracy runs on CUDA")
    if args.warmup < 0:
        p.error("--warmup must be non-negative")
    if args.steps < 1:
        p.error("--steps must be at least 1")
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    if not 0 < args.target <= 1:
        p.error("--target must be in (0, 1]")
    if args.time_to_accuracy and args.data != "cifar10":
        args.data = "cifar10"
    return args


def load_builders(torch):
    """The model builders of scripts/torch_crosscheck.py (mirrors of nets/)."""
    path = os.path.join(ROOT, "scripts", "torch_crosscheck.py")
    spec = importlib.util.spec_from_file_location("torch_crosscheck", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model_classes(torch)


# ---------------------------------------------------------------------------------------
# Data: uint8 NHWC on the device, augmented there per batch

def read_cifar10(torch, folder, files):
    chunks = []
    for name in files:
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) % 3073:
            raise RuntimeError("%s: %d bytes is not a whole number of 3073-byte records" % (path, len(raw)))
        chunks.append(torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(-1, 3073))
    records = torch.cat(chunks)
    labels = records[:, 0].long()
    images = records[:, 1:].reshape(-1, 3, 32, 32).permute(0, 2, 3, 1).contiguous()  # planar RGB -> NHWC
    return images, labels


def load_data(torch, args, device):
    if args.data == "cifar10":
        train = read_cifar10(torch, args.data_dir, ["data_batch_%d.bin" % i for i in range(1, 6)])
        test = read_cifar10(torch, args.data_dir, ["test_batch.bin"])
    else:  # random images: the cost of a step does not depend on the pixels
        g = torch.Generator().manual_seed(args.seed)
        train = (torch.randint(0, 256, (50000, 32, 32, 3), generator=g, dtype=torch.uint8),
                 torch.randint(0, 10, (50000,), generator=g))
        test = (train[0][:1000], train[1][:1000])
    mean, std = NORMALIZATION[args.data]
    to = lambda t: t.to(device)
    return {"train": tuple(map(to, train)), "test": tuple(map(to, test)),
            "mean": torch.tensor(mean, device=device), "std": torch.tensor(std, device=device)}


def make_batch(torch, data, idx, gen, augment, channels_last, pad=4, split=None):
    """Gathers records idx (of the training split when augmenting, else of `split`, by
    default the test split), crops (zero padding) and flips them when augmenting,
    normalises; returns NCHW float32 (channels_last memory when asked) and the labels."""
    F = torch.nn.functional
    images, labels = data["train"] if augment else data[split or "test"]
    x = images[idx].float()  # N, H, W, C
    n, h, w, _ = x.shape
    if augment:
        xp = F.pad(x, (0, 0, pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
        flip = torch.randint(0, 2, (n,), device=x.device, generator=gen).bool()
        rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]
        cols = torch.arange(w, device=x.device)[None, :].expand(n, w)
        cols = ox[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)
        x = xp[torch.arange(n, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    x = (x / 255.0 - data["mean"]) / data["std"]
    x = x.permute(0, 3, 1, 2)  # NCHW view of NHWC memory, i.e. channels_last
    x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return x, labels[idx]


# ---------------------------------------------------------------------------------------
# One configuration

def set_precision(torch, config):
    tf32 = config == "eager-tf32" or config == "amp-bf16-cl"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def channels_last_of(config):
    return config in ("amp-bf16-cl", "eager-fp32-cl")


def build(torch, make, net, config, seed, device):
    torch.manual_seed(seed)
    model = make(net, 3, 10).to(device)
    if channels_last_of(config):
        model = model.to(memory_format=torch.channels_last)
    return model


class Timer:
    """Milliseconds of each timed call: CUDA events on the GPU, the wall clock on the CPU."""

    def __init__(self, torch, device):
        self.torch, self.cuda = torch, device.type == "cuda"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def time(self, calls, fn):
        if self.cuda:
            events = [(self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True))
                      for _ in range(calls)]
            for i, (start, end) in enumerate(events):
                start.record()
                fn(i)
                end.record()
            self.torch.cuda.synchronize()
            return sorted(s.elapsed_time(e) for s, e in events)
        ms = []
        for i in range(calls):
            t0 = time.perf_counter()
            fn(i)
            ms.append((time.perf_counter() - t0) * 1e3)
        return sorted(ms)


def train_step_fn(torch, model, opt, config):
    F = torch.nn.functional
    amp = config == "amp-bf16-cl"

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def time_config(torch, make, data, net, batch, config, base, args):
    """Median step (or forward pass) time of `config` (compile: torch.compile on top of `base`)."""
    device = data["mean"].device
    timer = Timer(torch, device)
    precision = base if config == "compile" else config
    set_precision(torch, precision)
    model = build(torch, make, net, precision, args.seed, device)
    fwd_model = torch.compile(model) if config == "compile" else model
    channels_last = channels_last_of(precision)
    n = data["train"][1].numel()
    gen = torch.Generator(device=device).manual_seed(args.seed)
    b = min(batch, n)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    if args.mode == "infer":
        model.eval()
        x, _ = make_batch(torch, data, torch.arange(b, device=device), None, False, channels_last, split="train")

        def call(_):
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                        enabled=precision == "amp-bf16-cl"):
                fwd_model(x)
    else:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        step = train_step_fn(torch, fwd_model, opt, precision)
        perm = torch.randperm(n, device=device, generator=gen)

        def call(i):
            start = (i * b) % max(1, n - b + 1)
            step(*make_batch(torch, data, perm[start:start + b], gen, True, channels_last))
    for i in range(args.warmup):
        call(i)
    timer.sync()
    ms = timer.time(args.steps, lambda i: call(args.warmup + i))
    median = statistics.median(ms)
    return {"net": net, "batch": batch, "config": config, "mode": args.mode,
            "precision": PRECISION[precision], "channels_last": channels_last,
            "compiled_from": base if config == "compile" else None,
            "images_per_batch": b, "images_per_s": b / (median * 1e-3),
            "step_ms": {"median": median, "min": ms[0], "max": ms[-1], "steps": len(ms)},
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None}


def empty_cache(torch):
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_throughput(torch, make, data, args):
    runs, best = [], {}
    eager = [c for c in args.configs if c != "compile"]
    for net in args.nets:
        for batch in args.batch:
            done = []
            for config in eager:
                try:
                    r = time_config(torch, make, data, net, batch, config, None, args)
                except Exception as e:  # e.g. out of memory: reported, the others still run
                    r = {"net": net, "batch": batch, "config": config, "images_per_s": None, "reason": str(e)}
                empty_cache(torch)
                runs.append(r)
                done.append(r)
                print("pytorch %s b%d %s: %s images/s" % (net, batch, config, r["images_per_s"]), file=sys.stderr)
            if "compile" in args.configs:
                timed = [r for r in done if r.get("images_per_s")]
                base = max(timed, key=lambda r: r["images_per_s"])["config"] if timed else "eager-fp32"
                try:
                    r = time_config(torch, make, data, net, batch, "compile", base, args)
                except Exception as e:
                    r = {"net": net, "batch": batch, "config": "compile", "compiled_from": base,
                         "images_per_s": None, "reason": str(e)}
                empty_cache(torch)
                runs.append(r)
                print("pytorch %s b%d compile(%s): %s images/s" % (net, batch, base, r["images_per_s"]),
                      file=sys.stderr)
    for r in runs:
        if r.get("images_per_s") and (r["net"] not in best or r["images_per_s"] > best[r["net"]]["images_per_s"]):
            best[r["net"]] = {"config": r["config"], "batch": r["batch"], "images_per_s": r["images_per_s"]}
    return runs, best


# ---------------------------------------------------------------------------------------
# Time to accuracy

def evaluate(torch, model, data, channels_last, amp):
    model.eval()
    images, labels = data["test"]
    correct = 0
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        for start in range(0, labels.numel(), 1000):
            idx = torch.arange(start, min(start + 1000, labels.numel()), device=labels.device)
            x, y = make_batch(torch, data, idx, None, False, channels_last)
            correct += (model(x).argmax(1) == y).sum().item()
    model.train()
    return correct / labels.numel()


def time_to_accuracy(torch, make, data, args):
    device = data["mean"].device
    batch = args.batch[0]
    config = args.tta_config
    set_precision(torch, config)
    model = build(torch, make, "resnet18", config, args.seed, device)
    channels_last, amp = config == "amp-bf16-cl", config == "amp-bf16-cl"
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    n = data["train"][1].numel()
    steps_per_epoch = max(1, n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
                                                pct_start=0.3, anneal_strategy="cos", div_factor=25.0,
                                                final_div_factor=1e4, cycle_momentum=False)
    step = train_step_fn(torch, model, opt, config)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    epochs, elapsed, reached, best = [], 0.0, None, 0.0
    for epoch in range(1, args.epochs + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device, generator=gen)
        for s in range(steps_per_epoch):
            step(*make_batch(torch, data, perm[s * batch:(s + 1) * batch], gen, True, channels_last))
            sched.step()
        acc = evaluate(torch, model, data, channels_last, amp)
        torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        best = max(best, acc)
        epochs.append({"epoch": epoch, "test_accuracy": acc, "seconds": elapsed})
        print("pytorch tta epoch %d: test accuracy %.4f, %.1f s" % (epoch, acc, elapsed), file=sys.stderr)
        if acc >= args.target:
            reached = epoch
            break
    return {"config": config, "target": args.target, "reached": reached is not None, "epoch": reached,
            "seconds": elapsed if reached is not None else None, "best_accuracy": best, "epochs": epochs,
            "schedule": {"kind": "onecycle", "epochs": args.epochs, "batch": batch, "lr": args.lr,
                         "momentum": 0.9, "nesterov": True, "wd": 5e-4}}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("error: PyTorch is not installed (pip install torch)", file=sys.stderr)
        return 1
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: PyTorch sees no CUDA device", file=sys.stderr)
        return 1
    try:
        make = load_builders(torch)
        device = torch.device(args.device)
        if args.device == "cpu":
            torch.set_num_threads(args.threads or os.cpu_count() or 1)
            torch.set_num_interop_threads(1)
            machine = {"device": "cpu", "cpu": cpu_name(), "threads": torch.get_num_threads(),
                       "pytorch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available()}
        else:
            machine = {"gpu": torch.cuda.get_device_name(device), "pytorch": torch.__version__,
                       "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
        data = load_data(torch, args, device)
        out = {"command": "pytorch_peer", "machine": machine,
               "config": {"device": args.device, "mode": args.mode, "data": args.data, "nets": args.nets,
                          "batches": args.batch, "configs": args.configs, "warmup_steps": args.warmup,
                          "timed_steps": args.steps, "seed": args.seed,
                          "timing": ("cuda events" if args.device == "cuda" else "wall clock")
                          + " around each step, median"}}
        if args.mode == "train":
            out["config"]["optimizer"] = "SGD momentum 0.9, weight decay 5e-4, lr 0.01"
            out["config"]["augment"] = "random crop (pad 4) + horizontal flip + normalisation, on the device"
        else:
            out["config"]["input"] = "the first records of the training split, normalised once"
        if args.time_to_accuracy:
            out["time_to_accuracy"] = time_to_accuracy(torch, make, data, args)
        else:
            out["runs"], out["best"] = run_throughput(torch, make, data, args)
    except (OSError, RuntimeError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    text = json.dumps(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
