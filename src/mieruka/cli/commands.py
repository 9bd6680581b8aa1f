"""The smaller subcommands: report, methods, serve, layers."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import dummy_input, load_from_flags, require_file, require_weights_file


def run_report(args) -> int:
    from ..report import build_report

    page = build_report(args.folder, args.evaluation)
    if not args.quiet:
        print(f"{page} (open it in a browser)")
    return 0


def run_methods() -> int:
    from ..methods import METHODS

    width = max(len(name) for name in METHODS)
    for name, method in METHODS.items():
        print(f"{name:<{width}}  {method.kind:<12}  {method.summary}")
    print(
        "\nGradient methods and eigencam share one forward/backward pass; pick several with --method a,b,c."
        "\nThe CAM family runs at a layer of any model (CNN or transformer); attention methods (rollout, gae) "
        "need a timm ViT-family model (ViT, DeiT, DINOv2, BEiT, EVA). 'all' adds them where they apply."
        "\nOn a transformer whose head reads the class token, hirescam, layercam, rollout and gae follow the "
        "tokens it reads; gradcam shows what each token would add if read (README: 'Which method to trust')."
    )
    return 0


def run_serve(args) -> int:
    """Check the flags and the folder, take the port, load the model once, then serve until Ctrl+C."""
    import importlib.util

    missing = [
        name for name in ("starlette", "uvicorn", "multipart") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ValueError(
            f"mieruka serve needs the web stack ({', '.join(missing)} missing): install mieruka[serve] "
            "(pip install 'mieruka[serve]')"
        )
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}")
    if not args.max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb must be more than 0, got {args.max_upload_mb}")
    if args.folder is not None and not Path(args.folder).is_dir():
        what = "is a file, expected a folder of photos" if Path(args.folder).exists() else "no such folder"
        raise ValueError(f"{args.folder}: {what}")
    if args.labels is not None:
        require_file("--labels", args.labels)
    require_weights_file(args.weights)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"mieruka: warning: listening on {args.host}, not only this machine: whoever reaches it can "
            f"run the model{' and see the photos in ' + args.folder if args.folder else ''}",
            file=sys.stderr,
        )

    from ..serve import Viewer, create_app, listen, serve

    sock = listen(args.host, args.port)  # a busy port is told before the model loads
    try:
        loaded, device = load_from_flags(args)
        app = create_app(
            Viewer(loaded, device),
            args.folder,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            host=args.host,
        )
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        untrained = " [random weights]" if loaded.random_weights else ""
        print(
            f"mieruka serve: http://{shown}:{port}/  ({loaded.name}{untrained} on {device}; Ctrl+C stops it)",
            flush=True,
        )
        serve(app, sock)
    finally:
        sock.close()
    return 0


def run_layers(args) -> int:
    from ..errors import MierukaError
    from ..layers import auto_layer, layout_describer, trace_layers

    loaded, device = load_from_flags(args, shapes_only=True)
    dummy = dummy_input(loaded, device)
    image = (dummy.shape[-2], dummy.shape[-1])
    infos, _ = trace_layers(loaded.model, dummy)
    try:
        auto = auto_layer(loaded.model, dummy)
    except MierukaError as error:  # no layer qualifies, or its token layout is ambiguous: the tree shows
        auto, why = None, str(error)
    else:
        why = "name one with --layer"
    describe = layout_describer(loaded.model, image, batch=len(dummy))
    by_name = {info.name: info for info in infos}
    rows = []
    for name, module in loaded.model.named_modules():
        if not name:
            continue
        info = by_name.get(name)
        if info is None and not args.all:
            continue
        shape = "x".join(map(str, info.shape[1:])) if info and info.shape else "-"
        kind = describe(name, info) if info and info.shape else ""
        calls = "" if info is None or info.calls == 1 else f"ran {info.calls}x"
        mark = "<- auto" if name == auto else ""
        rows.append(("  " * name.count(".") + name, type(module).__name__, shape, kind, calls, mark))
    width = max(len(r[0]) for r in rows) if rows else 10
    kind_width = max(len(r[1]) for r in rows) if rows else 10
    weights = "" if loaded.weights not in ("random",) else " (untrained: shapes only)"
    print(
        f"{loaded.name}{weights}: {sum(p.numel() for p in loaded.model.parameters()):,} parameters; "
        f"output shapes for one {'x'.join(map(str, image))} input"
    )
    for row in rows:
        print(
            f"{row[0]:<{width}}  {row[1]:<{kind_width}}  {row[2]:<14} {row[3]:<24} {row[4]:<8} {row[5]}".rstrip()
        )
    if auto:
        print(f"automatic target layer: {auto}")
    else:
        print(f"no automatic target layer: {why}")
    return 0
