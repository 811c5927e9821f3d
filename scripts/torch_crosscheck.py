#!/usr/bin/env python3
"""Cross-checks ActiveIP's forward pass against PyTorch in fp32.

Loads an ActiveIP checkpoint (safetensors, torchvision tensor names, OIHW conv weights,
__metadata__ with net, num_classes, input_shape, normalization) into the equivalent PyTorch
model built below, feeds it the exact normalised input that `activeip eval --logits FILE`
recorded (NHWC, permuted here to NCHW), and compares the logits:

    relative error = ||ours - torch|| / ||torch||   (Frobenius, in float64)

Passes when the relative error is at most --tol (default 1e-4). Exit status: 0 pass,
1 fail (or an error: unreadable file, architecture mismatch), 2 usage.

    activeip eval --model M.safetensors --data cifar10 --limit-test 256 \
        --logits L.safetensors --device cuda
    python3 scripts/torch_crosscheck.py --model M.safetensors --logits L.safetensors

The PyTorch models mirror nets/resnet.cpp, nets/vgg.cpp and nets/convnet.cpp layer for
layer (CIFAR stems, option-A or projection shortcuts, VGG's global-average-pool head); the
script refuses to compare unless every checkpoint tensor fills exactly one parameter or
buffer of the same shape and every parameter and buffer is filled.
"""

import argparse
import json
import math
import os
import sys

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
MODEL_FORMAT = "activeip-model-v1"


class CheckError(Exception):
    """A problem with the inputs: reported as `error: ...`, exit status 1."""


# ---------------------------------------------------------------------------------------
# The PyTorch mirrors of nets/. Built inside a function so that `--help` and usage errors
# work without torch installed.

def build_model_classes(torch):
    nn = torch.nn
    F = torch.nn.functional

    class PadShortcut(nn.Module):
        """He et al.'s option A (engine PadShortcut): subsample by `stride` (rows and
        columns 0, s, 2s, ...), zero-pad the channels with pad_before in front and
        pad_after behind. No parameters."""

        def __init__(self, stride, pad_before, pad_after):
            super().__init__()
            self.stride, self.pad_before, self.pad_after = stride, pad_before, pad_after

        def forward(self, x):
            x = x[:, :, :: self.stride, :: self.stride]
            return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))

    class BasicBlock(nn.Module):
        """nets/resnet.cpp basic_block: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the
        shortcut (identity, `downsample` = conv1x1(stride)-BN, or `shortcut` = option A),
        summed, then ReLU (engine Residual)."""

        def __init__(self, inp, out, stride, option_a):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out)
            self.downsample = None
            self.shortcut = None
            if stride != 1 or inp != out:
                if option_a:
                    extra = out - inp
                    self.shortcut = PadShortcut(stride, extra // 2, extra - extra // 2)
                else:
                    self.downsample = nn.Sequential(nn.Conv2d(inp, out, 1, stride, 0, bias=False),
                                                    nn.BatchNorm2d(out))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            if self.downsample is not None:
                s = self.downsample(x)
            elif self.shortcut is not None:
                s = self.shortcut(x)
            else:
                s = x
            return torch.relu(y + s)

    class ResNet(nn.Module):
        """nets/resnet.cpp build: stem conv3x3 stride 1 (no bias) - BN - ReLU (no 7x7, no
        max-pool); stages layer1.. of basic blocks, the first block of every stage after
        the first with stride 2; global average pool; fc."""

        def __init__(self, in_channels, num_classes, widths, blocks, option_a):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU()
            inp = widths[0]
            for stage, (width, count) in enumerate(zip(widths, blocks)):
                layer = []
                for b in range(count):
                    stride = 2 if stage > 0 and b == 0 else 1
                    layer.append(BasicBlock(inp, width, stride, option_a))
                    inp = width
                self.add_module("layer%d" % (stage + 1), nn.Sequential(*layer))
            self.num_stages = len(widths)
            self.fc = nn.Linear(inp, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            for stage in range(self.num_stages):
                x = getattr(self, "layer%d" % (stage + 1))(x)
            return self.fc(x.mean(dim=(2, 3)))

    class FeaturesHead(nn.Module):
        """VGG and the convnet: `features` (a Sequential numbered as ours, ReLU and
        max-pool entries included), global average pool, one Linear named `head`."""

        def __init__(self, features, head_name, head):
            super().__init__()
            self.features = features
            self.head_name = head_name
            self.add_module(head_name, head)

        def forward(self, x):
            x = self.features(x).mean(dim=(2, 3))
            return getattr(self, self.head_name)(x)

    VGG_CONFIGS = {
        "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
        "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                  512, 512, 512, 512, "M"],
    }

    def make_vgg(name, in_channels, num_classes):
        # nets/vgg.cpp: every conv 3x3 pad 1 with bias, BN, ReLU; "M" a 2x2 max-pool; the
        # fifth "M" is left out (the global average pool takes its place); classifier is a
        # single Linear(512, classes).
        layers, inp = [], in_channels
        for v in VGG_CONFIGS[name][:-1]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers += [nn.Conv2d(inp, v, 3, 1, 1, bias=True), nn.BatchNorm2d(v), nn.ReLU()]
            inp = v
        return FeaturesHead(nn.Sequential(*layers), "classifier", nn.Linear(inp, num_classes))

    def make_convnet(in_channels, num_classes):
        # nets/convnet.cpp: three conv3x3 (no bias)-BN-ReLU stages of 32, 64, 128 channels,
        # a 2x2 max-pool after the first two; global average pool; fc.
        layers, inp = [], in_channels
        for stage, width in enumerate([32, 64, 128]):
            layers += [nn.Conv2d(inp, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if stage < 2:
                layers.append(nn.MaxPool2d(2, 2))
            inp = width
        return FeaturesHead(nn.Sequential(*layers), "fc", nn.Linear(inp, num_classes))

    def make(net, in_channels, num_classes):
        imagenet_style = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}
        cifar_style = {"resnet20": 3, "resnet32": 5, "resnet56": 9}
        if net in imagenet_style:
            return ResNet(in_channels, num_classes, [64, 128, 256, 512], imagenet_style[net], False)
        if net in cifar_style:
            n = cifar_style[net]
            return ResNet(in_channels, num_classes, [16, 32, 64], [n, n, n], True)
        if net in VGG_CONFIGS:
            return make_vgg(net, in_channels, num_classes)
        if net == "convnet":
            return make_convnet(in_channels, num_classes)
        known = sorted(list(imagenet_style) + list(cifar_style) + list(VGG_CONFIGS) + ["convnet"])
        raise CheckError("net '%s' has no PyTorch mirror here (known: %s)" % (net, ", ".join(known)))

    return make


# ---------------------------------------------------------------------------------------
# Reading the files

def read_safetensors(path, what):
    from safetensors import safe_open
    if not os.path.isfile(path):
        raise CheckError("%s %s does not exist or is not a file" % (what, path))
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise CheckError("%s %s: cannot read it as safetensors (%s)" % (what, path, e))
    return metadata, tensors


def model_meta(path, metadata):
    def field(key):
        if key not in metadata:
            raise CheckError("%s: metadata has no '%s' (not an activeip model?)" % (path, key))
        return metadata[key]

    if field("format") != MODEL_FORMAT:
        raise CheckError("%s: model format '%s' is not %s" % (path, field("format"), MODEL_FORMAT))
    if "channels" in metadata:
        raise CheckError("%s: a filter-pruned model (metadata channels): its narrower widths have no PyTorch "
                         "mirror here" % path)
    try:
        num_classes = int(field("num_classes"))
        shape = json.loads(field("input_shape"))
        norm = json.loads(field("normalization"))
    except ValueError as e:
        raise CheckError("%s: malformed metadata (%s)" % (path, e))
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) and d > 0 for d in shape)):
        raise CheckError("%s: metadata input_shape %r is not [C, H, W]" % (path, shape))
    return {"net": field("net"), "num_classes": num_classes, "C": shape[0], "H": shape[1], "W": shape[2],
            "norm": norm}


def load_weights(torch, model, tensors, path, net):
    """Fills every parameter and buffer of `model` from the checkpoint tensors, after
    checking that the names match one to one and the shapes agree."""
    state = model.state_dict()
    ours, theirs = set(tensors), set(state)
    problems = []
    for name in sorted(theirs - ours):
        problems.append("the PyTorch %s has '%s' %s but the checkpoint does not"
                        % (net, name, list(state[name].shape)))
    for name in sorted(ours - theirs):
        problems.append("the checkpoint has '%s' %s but the PyTorch %s does not"
                        % (name, list(tensors[name].shape), net))
    for name in sorted(ours & theirs):
        if tuple(tensors[name].shape) != tuple(state[name].shape):
            problems.append("'%s' is %s in the checkpoint but %s in the PyTorch %s"
                            % (name, list(tensors[name].shape), list(state[name].shape), net))
        elif state[name].is_floating_point() and tensors[name].dtype != torch.float32:
            problems.append("'%s' is %s in the checkpoint, expected float32" % (name, tensors[name].dtype))
    if problems:
        raise CheckError("%s does not map onto the PyTorch %s:\n  %s" % (path, net, "\n  ".join(problems)))
    converted = {name: tensors[name].to(state[name].dtype) for name in state}
    model.load_state_dict(converted, strict=True)
    return len(state)


def check_input_normalisation(torch, images, norm):
    """The largest distance of the recorded input, un-normalised (x*std + mean, times 255),
    from an integer pixel value: near 0 when the engine normalised 8-bit pixels with the
    model's statistics, as it should."""
    try:
        mean = torch.tensor(norm["mean"], dtype=torch.float64)
        std = torch.tensor(norm["std"], dtype=torch.float64)
    except (KeyError, TypeError, ValueError):
        return None
    if mean.numel() != images.shape[-1] or std.numel() != images.shape[-1]:
        return None
    px = (images.double() * std + mean) * 255.0
    return float((px - px.round()).abs().max()) if px.numel() else 0.0


# ---------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Compare ActiveIP's logits (activeip eval --logits) with an equivalent PyTorch model "
                    "in fp32. Exit status: 0 pass, 1 fail, 2 usage.")
    p.add_argument("--model", required=True, help="ActiveIP checkpoint (.safetensors)")
    p.add_argument("--logits", required=True, help="file written by activeip eval --logits")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="largest relative error ||ours - torch|| / ||torch|| that passes (default 1e-4)")
    p.add_argument("--batch", type=int, default=256, help="PyTorch batch size (default 256)")
    p.add_argument("--device", default=None, help="PyTorch device (default: cuda when available, else cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = p.parse_args(argv)
    if not (math.isfinite(args.tol) and args.tol > 0):
        p.error("--tol must be a positive number, got %g" % args.tol)
    if args.batch < 1:
        p.error("--batch must be at least 1, got %d" % args.batch)
    return args


def crosscheck(args):
    try:
        import torch
        import safetensors  # noqa: F401  (read_safetensors imports from it)
    except ImportError as e:
        raise CheckError("this script needs torch and safetensors (%s)" % e)

    # True fp32: no TF32 in cuDNN convolutions or cuBLAS matmuls.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    model_md, weights = read_safetensors(args.model, "model")
    meta = model_meta(args.model, model_md)
    logits_md, recorded = read_safetensors(args.logits, "logits file")
    for name in ("logits", "labels", "images"):
        if name not in recorded:
            raise CheckError("%s has no tensor '%s' (not written by activeip eval --logits?)" % (args.logits, name))
    ours, labels, images = recorded["logits"], recorded["labels"], recorded["images"]
    n, C, H, W, K = images.shape[0] if images.dim() else 0, meta["C"], meta["H"], meta["W"], meta["num_classes"]
    expected = {"images": (n, H, W, C), "logits": (n, K), "labels": (n,)}
    for name, shape in expected.items():
        if tuple(recorded[name].shape) != shape:
            raise CheckError("%s: '%s' is %s, expected %s for this %s model"
                             % (args.logits, name, list(recorded[name].shape), list(shape), meta["net"]))
    if ours.dtype != torch.float32 or images.dtype != torch.float32 or labels.dtype != torch.int32:
        raise CheckError("%s: dtypes logits %s, images %s, labels %s; expected float32, float32, int32"
                         % (args.logits, ours.dtype, images.dtype, labels.dtype))
    if n == 0:
        raise CheckError("%s holds no records" % args.logits)
    if logits_md.get("net", meta["net"]) != meta["net"]:
        raise CheckError("%s was written for a %s, but %s is a %s"
                         % (args.logits, logits_md.get("net"), args.model, meta["net"]))

    make = build_model_classes(torch)
    model = make(meta["net"], C, K)
    filled = load_weights(torch, model, weights, args.model, meta["net"])
    model = model.to(device=device, dtype=torch.float32).eval()

    x = images.permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    outs = []
    with torch.no_grad():
        for begin in range(0, n, args.batch):
            outs.append(model(x[begin:begin + args.batch].to(device)).float().cpu())
    theirs = torch.cat(outs)

    o, t = ours.double(), theirs.double()
    finite = bool(torch.isfinite(o).all()) and bool(torch.isfinite(t).all())
    diff = o - t
    den = float(t.norm())
    rel = float(diff.norm()) / den if den > 0 else float(diff.norm())
    max_abs = float(diff.abs().max())
    agree = int((o.argmax(1) == t.argmax(1)).sum())
    lab = labels.long()
    result = {
        "model": args.model,
        "logits": args.logits,
        "net": meta["net"],
        "n": n,
        "classes": K,
        "input_shape": [C, H, W],
        "tensors_mapped": filled,
        "torch": torch.__version__,
        "torch_device": str(device) + (" (%s)" % torch.cuda.get_device_name(device) if device.type == "cuda" else ""),
        "ours_device": logits_md.get("device", "unknown"),
        "relative_error": rel if finite else None,
        "max_abs_diff": max_abs if finite else None,
        "tol": args.tol,
        "argmax_agreement": agree / n,
        "accuracy_ours": float((o.argmax(1) == lab).double().mean()),
        "accuracy_torch": float((t.argmax(1) == lab).double().mean()),
        "input_pixel_deviation": check_input_normalisation(torch, images, meta["norm"]),
    }
    result["pass"] = bool(finite and rel <= args.tol)
    return result


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        r = crosscheck(args)
    except CheckError as e:
        print("error: %s" % e, file=sys.stderr)
        return EXIT_FAIL
    dev = r["input_pixel_deviation"]
    if dev is not None and dev > 1e-2:
        print("warning: the recorded input is not 8-bit pixels normalised with the model's statistics "
              "(largest deviation %.3g of a pixel level)" % dev, file=sys.stderr)
    if args.json:
        print(json.dumps(r))
    else:
        rel = "not finite" if r["relative_error"] is None else "%.3e" % r["relative_error"]
        mad = "not finite" if r["max_abs_diff"] is None else "%.3e" % r["max_abs_diff"]
        print("%s (%s, %d classes, input %dx%dx%d): %d tensors mapped onto the PyTorch model"
              % (r["model"], r["net"], r["classes"], *r["input_shape"], r["tensors_mapped"]))
        print("%d images: ours on %s, torch %s on %s (fp32, TF32 off)"
              % (r["n"], r["ours_device"], r["torch"], r["torch_device"]))
        print("relative error ||ours - torch|| / ||torch|| = %s (tolerance %.1e), max |diff| = %s" % (rel, r["tol"], mad))
        print("argmax agreement %.2f%%; accuracy ours %.2f%%, torch %.2f%%"
              % (100 * r["argmax_agreement"], 100 * r["accuracy_ours"], 100 * r["accuracy_torch"]))
        print("PASS" if r["pass"] else "FAIL")
    return EXIT_PASS if r["pass"] else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
