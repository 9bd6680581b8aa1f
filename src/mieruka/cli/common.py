"""What every subcommand shares: loading the model the flags name, the device, progress, stopping on a signal."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

EXIT_BAD_INPUT = 2


def device_from_flag(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: MPS is not available; use --device cpu")
    return torch.device(name)


def model_kwargs_from_flag(items: list[str] | None) -> dict:
    """--model-kwargs KEY=VALUE ... as a dict (each item read by :func:`model_kwarg`)."""
    options: dict = {}
    for item in items or []:
        key, value = model_kwarg(item)
        if key in options:
            raise ValueError(f"--model-kwargs: {key} is given twice")
        options[key] = value
    return options


def model_kwargs_record(items: list[str] | None) -> dict:
    """--model-kwargs as run.json and metrics.json hold them, and read them back: tuples as lists."""
    import json

    return json.loads(json.dumps(model_kwargs_from_flag(items), default=repr))


_WORDS = {"true": True, "false": False, "none": None}  # in any case, besides Python's spelling


def model_kwarg(item: str) -> tuple[str, object]:
    """One --model-kwargs item as (key, value): the value a Python literal (384, False, (384, 384),
    None) or else text (avg), as timm's training script reads them. argparse checks each item with it,
    so a path swallowed by the list (the flag takes every word after it) is named there, before a
    missing-path error would hide why."""
    import ast

    key, equals, text = item.partition("=")
    if not equals or not key.strip().isidentifier():
        raise ValueError(
            f"expected KEY=VALUE, got {item!r}: quote a value with spaces, and put paths before "
            "--model-kwargs or end its list with --"
        )
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = _WORDS.get(text.strip().lower(), text)
    return key.strip(), value


def load_from_flags(args, shapes_only: bool = False):
    """The model the flags name; `shapes_only` (listing layers) needs no trained weights."""
    from ..models import DEFAULT_MODEL, load_model

    if args.num_classes is not None and args.num_classes < 0:
        raise ValueError(
            f"--num-classes must be 0 or more (0: timm models without a head), got {args.num_classes}"
        )
    device = device_from_flag(args.device)
    untrained = args.random_weights or (
        shapes_only and args.weights is None and args.model not in (None, DEFAULT_MODEL)
    )
    loaded = load_model(
        args.model,
        args.weights,
        num_classes=args.num_classes,
        labels=args.labels,
        trust_checkpoint=args.trust_checkpoint,
        random_weights=untrained,
        device=device,
        model_kwargs=model_kwargs_from_flag(args.model_kwargs),
    )
    blank_output(loaded, device, kwargs_given=bool(args.model_kwargs))  # a model that cannot run: now
    return loaded, device


def blank_output(loaded, device, kwargs_given: bool = False):
    """The model's output for a blank input (:func:`dummy_input`), without gradients, in eval mode. A
    model that fails on it (timm's global_pool='' before a linear head, a model its builder arguments
    break) is refused in one line, not met as an internal error at the first photo."""
    import torch

    from ..errors import first_sentence
    from ..layers import evaluating

    inputs = dummy_input(loaded, device)
    try:
        with torch.no_grad(), evaluating(loaded.model):
            return loaded.model(inputs)
    except Exception as error:
        said = first_sentence(str(error))
        reason = f"{type(error).__name__}: {said}" if said else type(error).__name__
        height, width = inputs.shape[-2:]
        advice = (
            "check --model-kwargs, which it was built with"
            if kwargs_given
            else "explain it from Python (mieruka.CAM) with the input it expects"
        )
        raise ValueError(
            f"--model {loaded.name}: fails on a blank {width}x{height} input ({reason}); {advice}"
        ) from None


def warn_if_random(loaded, what: str = "its predictions and maps") -> None:
    """Every run of an untrained network says so, last, where it cannot be missed."""
    if loaded.random_weights:
        print(
            f"mieruka: warning: {loaded.name} ran with random weights (--random-weights): {what} mean nothing",
            file=sys.stderr,
        )


CHANNEL_WEIGHTED = ("gradcam", "gradcam++", "xgradcam")  # one weight per channel, shared by every token


def class_token_note(loaded, methods: list[str], device) -> str | None:
    """The line that says a channel-weighted method was asked of a class-token head, else None.

    There those methods weigh every patch token alike and can miss the tokens the head reads (0.54 to
    0.88 pointing game across training runs of one ViT where HiResCAM and GAE stay near 0.9 or above).
    """
    chosen = [m for m in methods if m in CHANNEL_WEIGHTED]
    if not chosen:
        return None
    from ..layers import class_token_head

    if not class_token_head(loaded.model, dummy_input(loaded, device)):
        return None
    from ..layouts import prefix_tokens
    from ..methods.attention import AttentionError, vision_transformer

    try:
        vision_transformer(loaded.model)
        followers = "hirescam, layercam, rollout or gae follow them"
    except AttentionError:  # no attention method for this model (CaiT, torchvision's ViT): name none
        followers = "hirescam or layercam follow them"
    named = chosen[0] if len(chosen) == 1 else f"{', '.join(chosen[:-1])} and {chosen[-1]}"
    read = (
        "class token" if prefix_tokens(loaded.model) == 1 else "prefix tokens (class, distillation, register)"
    )
    return (
        f"mieruka: note: the head of {loaded.name} reads only its {read}; {named} "
        f"{'weighs' if len(chosen) == 1 else 'weigh'} every patch token alike and can miss the patches "
        f"{'that token attends' if read == 'class token' else 'those tokens attend'} to; {followers} "
        "(README: 'Which method to trust on a class-token ViT')"
    )


def check_attention_methods(model, methods: list[str]) -> None:
    """Refuse, naming --method, attention methods among `methods` that `model` cannot serve: before
    anything is written, not at the first photo."""
    from ..methods import METHODS
    from ..methods.attention import AttentionError, vision_transformer

    attention = [m for m in methods if METHODS[m].kind == "attention"]
    if attention:
        try:
            vision_transformer(model)
        except AttentionError as error:
            raise AttentionError(f"--method {','.join(attention)}: {error}") from None


def no_classifier(loaded, output) -> str | None:
    """What to say of a timm model built without a classifier (num_classes=0), whose (N, D) output is an
    embedding that would read as D class scores; None for any other model."""
    if getattr(loaded.model, "num_classes", None) != 0:
        return None
    width = output.shape[-1] if hasattr(output, "shape") else "?"
    return f"{loaded.name} has no classifier (num_classes=0): its output is a {width}-wide embedding"


def where_maps_come_from(methods: list[str], layer_names: str) -> str:
    """For a summary line: the layer the CAMs read, the attention an attention method reads, or both."""
    from ..methods import METHODS

    attention = [m for m in methods if METHODS[m].kind == "attention"]
    if len(attention) == len(methods):
        return "from the model's attention"
    if attention:
        return f"at layer {layer_names} ({', '.join(attention)}: from the model's attention)"
    return f"at layer {layer_names}"


def dummy_input(loaded, device):
    import torch

    width, height = loaded.preprocess.crop_size((512, 512))
    parameter = next((p for p in loaded.model.parameters() if p.is_floating_point()), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    return torch.zeros(1, 3, height, width, device=device, dtype=dtype)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler's stop) ends the run as Ctrl-C does: the picture being written is
    removed, not left half-written, and results.jsonl is closed on a whole line."""
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set it
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:  # None: a handler set outside Python (Ray's), which cannot be put back
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_after() -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block is held until it ends, then raised as KeyboardInterrupt: a
    photo's records are either written whole or not begun."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    try:
        for number in _STOPS:
            if signal.getsignal(number) is not signal.SIG_IGN:  # an ignored signal stays ignored
                previous[number] = signal.signal(number, lambda n, _: caught.append(n))
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
    if caught:
        raise KeyboardInterrupt


_STOPS = (signal.SIGINT, signal.SIGTERM)


def require_file(flag: str, value: str) -> None:
    """A ValueError naming `flag` unless `value` is an existing file (a folder is named as one)."""
    path = Path(value)
    if path.is_dir():
        raise ValueError(f"{flag} {value}: is a folder, expected a file")
    if not path.is_file():
        raise ValueError(f"{flag} {value}: no such file")


def find_photos(paths: list[str], quiet: bool = False) -> list:
    """The photos under `paths` as (path, place) (:func:`mieruka.images.find_images_relative`); photos
    in folders in a format that cannot be read are said in one note, never skipped unsaid."""
    from collections import Counter

    from ..images import IMAGE_SUFFIXES, find_images_relative

    left_out: list[Path] = []
    found = find_images_relative(paths, left_out)
    if not found:
        looked = " ".join(sorted(IMAGE_SUFFIXES))
        raise ValueError(f"no images found in {', '.join(paths)} (looked for {looked})")
    if left_out and not quiet:
        kinds = ", ".join(
            f"{count} {suffix}"
            for suffix, count in sorted(Counter(p.suffix.lower() for p in left_out).items())
        )
        print(
            f"mieruka: note: left out {len(left_out)} photo(s) in a format Pillow cannot read ({kinds}, such as "
            f"{left_out[0]}): convert them to JPEG or PNG to explain them",
            file=sys.stderr,
        )
    return found


def require_weights_file(value: str | None) -> None:
    """--weights names a file when it has a suffix or is a folder; a bare word may name torchvision
    weights (IMAGENET1K_V2), checked when the model is built."""
    if value is not None and (Path(value).suffix or Path(value).is_dir()):
        require_file("--weights", value)


def check_files_exist(args) -> None:
    """Files the flags name, and a writable output folder: checked before anything heavy loads."""
    for flag, value in (
        ("--labels", args.labels),
        ("--font", getattr(args, "font", None)),
        ("--reference", getattr(args, "reference", None)),
    ):
        if value is not None:
            require_file(flag, value)
    require_weights_file(args.weights)
    existing = Path(args.out).resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {args.out}: {existing} is a file, not a folder: choose another --out")
    if not _can_write_in(existing):
        raise ValueError(
            f"--out {args.out}: cannot write there ({existing} is not a writable folder): "
            "choose another --out"
        )


def _can_write_in(folder: Path) -> bool:
    """Whether a file can be made in `folder`, by making one (gone once closed): os.access alone
    tells root yes where nothing can be written, such as /proc, and the run would fail at its end."""
    import tempfile

    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def parse_target(text: str | None, labels):
    if text is None:
        return None
    from ..targets import class_index

    index = class_index(text, labels)
    if labels is not None and not 0 <= index < len(labels):
        raise ValueError(f"--target {text}: the model has {len(labels)} classes (0 to {len(labels) - 1})")
    return index


class Progress:
    """One line of progress on stderr, only when it is a terminal: photos done (for folders) and the
    method running now, with the extra passes of Score-CAM and Ablation-CAM."""

    def __init__(self, total: int, enabled: bool, show_photos: bool = True) -> None:
        self.total, self.done = total, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.show_photos = show_photos
        self.started = time.perf_counter()
        self.method = ""

    def advance(self, count: int) -> None:
        self.done += count
        self.method = ""
        self._draw()

    def stage(self, method: str, done: int, total: int) -> None:
        """For CAM(progress=...): `method` has done `done` of `total` steps."""
        self.method = f"{method} {done}/{total}" if total > 1 else f"{method}..."
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        parts = []
        if self.show_photos:
            filled = int(30 * self.done / self.total)
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            parts.append(f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {rate:.1f} img/s")
        if self.method:
            parts.append(self.method)
        if parts:
            sys.stderr.write("\r\033[K" + "  ".join(parts))
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mieruka")
    except PackageNotFoundError:
        return "0+unknown"


def render_options(args, report: bool, **changes):
    """The drawing flags as a `batch.RenderOptions`; `changes` set what this engine draws otherwise."""
    from ..batch import RenderOptions

    options = RenderOptions(
        style=args.style,
        colormap=args.colormap,
        alpha=args.alpha,
        save_maps=args.save_maps,
        format=args.format,
        label=args.label,
        font=args.font,
        report=report,
    )
    return replace(options, **changes)
