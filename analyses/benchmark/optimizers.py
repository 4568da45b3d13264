"""The per-optimizer benchmark: what each optimizer's training step costs in fmlp (with
the one-pass kernels of ``fmlp.fused`` and with the numpy rules), next to the in-place
numpy loop, torch eager (its default optimizer implementation and ``fused=True``), JAX
with optax under ``jit`` (donated buffers) and the GEMM-only loop, which is the bound.

    python -m analyses.benchmark --per-optimizer [--out results] [--quick]
        [--archs 784-512-512-10 784-800-400-10] [--optimizers sgd momentum adam adamw]
        [--batch-sizes 32 128] [--threads 1 2] [--n-train 5120] [--epochs 3] [--warmup 1]
        [--frameworks fmlp fmlp-numpy in-place in-place-gemm torch torch-fused jax gemm]
        [--real-data auto|yes|no]

Each thread count is measured in a child process pinned with ``os.sched_setaffinity``
to that many cores (the first ones this process may use), with numpy's BLAS (through
threadpoolctl), torch's intra-op pool and, for one thread, XLA's CPU pool (through
XLA_FLAGS, set before jax is imported) limited to it: JAX too runs on those cores only,
and its CPU time over its wall time is printed so a reader can see how many it used.
Within a cell (architecture, optimizer, batch) every framework starts from the same
weights and visits the samples in the same order (``epoch_order``), and the frameworks
are interleaved epoch by epoch, so a change in the machine's load hits them alike; the
warm-up epochs are left out of the medians. Before the cells, two more children time the
first call of the compiled kernels: with an empty numba cache (compilation) and with the
cache the first filled (what a pipeline worker pays).

The output: per thread count and architecture a table of median seconds per epoch and
the ratios of fmlp (fused) to the GEMM-only loop, torch eager (default), JAX and
fmlp's numpy path; the BLAS library and kernel; the load average before and after. The
whole record is written atomically to ``<out>/benchmark/optimizers.json``
(``OptimizerBenchmark``).

``fmlp-gemm`` and ``in-place-gemm`` (plain SGD only) do the weight update inside the
weight-gradient GEMM: BLAS ``gemm`` with alpha = -lr (for the in-place loop, 1 with -lr
/ m folded into the logits' gradient) and beta = 1 (1 - lr wd with a decay term)
writing into the weights, no gradient buffer. It goes through numpy's own BLAS
(``fmlp.blas``: the same library and thread pool as numpy's products; an earlier version
went through scipy's, a second OpenBLAS whose threads fought numpy's over the cores, 5-17
times slower on two threads). fmlp offers it opt-in, ``fit(..., sgd_in_gemm=True)``, not
as its default: the gradient is not rounded before it is scaled and added, so the weights
may differ from the default path's in the last bit of some elements (the same bits on
every run and thread count), and the default path is the definition the studies'
results come from. ``in-gemm/gemm`` and ``in-gemm/jax`` are its ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Final, Literal, TypeAlias, get_args

import attrs
import numpy as np

import fmlp
from analyses.benchmark.data import dataset_cached, get_data
from analyses.benchmark.environment import MODULE, blas_info, load_avg
from analyses.benchmark.jax_loop import import_jax
from analyses.benchmark.opt_loops import (
    OPTIMIZER_NAMES,
    OPTIMIZERS,
    FmlpLoop,
    GemmOnlyLoop,
    InPlaceLoop,
    OptaxLoop,
    OptimizerName,
    TorchOptLoop,
    import_optax,
)
from analyses.benchmark.spec import SEED
from analyses.benchmark.training import Loop
from analyses.machine import MachineInfo, machine_info
from analyses.pipeline.records import from_json
from analyses.pipeline.store import read_json, write_json
from fmlp.train import epoch_order
from fmlp.tree import tree_leaves
from fmlp.types import FloatArray, IntArray

SCHEMA: Final = "fmlp-benchmark-optimizers/1"
FrameworkName: TypeAlias = Literal[
    "fmlp",
    "fmlp-numpy",
    "fmlp-gemm",
    "in-place",
    "in-place-gemm",
    "torch",
    "torch-fused",
    "jax",
    "gemm",
]
FRAMEWORK_NAMES: Final[tuple[FrameworkName, ...]] = get_args(FrameworkName)
ARCHS: Final = ("784-512-512-10", "784-800-400-10")
BATCH_SIZES: Final = (32, 128)
THREADS: Final = (1, 2)
N_TRAIN: Final = 5120
QUICK_TRAIN: Final = 256


@attrs.frozen
class Options:
    """What one run measures."""

    archs: tuple[str, ...]
    optimizers: tuple[OptimizerName, ...]
    batch_sizes: tuple[int, ...]
    threads: tuple[int, ...]
    frameworks: tuple[FrameworkName, ...]
    n_train: int
    epochs: int
    warmup: int
    dataset: str
    quick: bool


@attrs.frozen
class Timing:
    """One framework's epochs in one cell: wall and process CPU seconds of the measured
    epochs and their medians; JAX's compilation apart; or why it was skipped."""

    framework: FrameworkName
    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...]
    median: float | None
    cpu_median: float | None
    compile_seconds: float | None
    note: str | None


@attrs.frozen
class Cell:
    """Every framework on one architecture, optimizer and batch size."""

    arch: str
    optimizer: OptimizerName
    batch: int
    n_train: int
    timings: tuple[Timing, ...]
    load_avg: tuple[float, ...]
    fused_equals_numpy: bool | None
    """fmlp's final parameters with the kernels and with the numpy rules are the same
    bits (None: one of them was not run)."""

    def median(self, name: FrameworkName) -> float | None:
        for t in self.timings:
            if t.framework == name:
                return t.median
        return None

    def ratio(self, a: FrameworkName, b: FrameworkName) -> float | None:
        x, y = self.median(a), self.median(b)
        return None if x is None or y is None else x / y

    def cpu_over_wall(self, name: FrameworkName) -> float | None:
        for t in self.timings:
            if t.framework == name and t.median and t.cpu_median is not None:
                return t.cpu_median / t.median
        return None


@attrs.frozen
class ThreadRun:
    """The cells measured by one child process: its thread count and pinned cores, the
    BLAS it used, XLA_FLAGS, the load averages around it."""

    threads: int
    cpus: tuple[int, ...]
    blas: str
    xla_flags: str | None
    dataset: str
    load_start: tuple[float, ...]
    load_end: tuple[float, ...]
    cells: tuple[Cell, ...]
    notes: tuple[str, ...]
    seconds: float


@attrs.frozen
class CompileCost:
    """The first call of every compiled kernel (float32) in a fresh process, after
    ``import numba`` (timed apart): with an empty numba cache (compiling) and again with
    the cache that filled (loading)."""

    import_seconds: float | None
    cold_seconds: float | None
    cached_seconds: float | None
    note: str | None


@attrs.frozen
class OptimizerBenchmark:
    """The record of a run, written to ``<out>/benchmark/optimizers.json``."""

    schema: str
    options: Options
    machine: MachineInfo
    compile: CompileCost
    runs: tuple[ThreadRun, ...]
    wall_seconds: float


# ------------------------------------------------------------------ options


def parse_arch(text: str) -> tuple[int, ...]:
    """``784-512-512-10`` as layer sizes; the benchmark's data have 784 features and 10
    classes."""
    try:
        sizes = tuple(int(s) for s in text.split("-"))
    except ValueError:
        raise SystemExit(
            f"--archs takes sizes joined by '-', e.g. 784-512-512-10; got {text!r}"
        ) from None
    if len(sizes) < 2 or sizes[0] != 784 or sizes[-1] != 10 or min(sizes) <= 0:
        raise SystemExit(
            f"--archs {text!r}: an architecture starts at 784 inputs, ends at 10 classes "
            "and has positive sizes, e.g. 784-512-512-10"
        )
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The per-optimizer options (``--per-optimizer`` selects this benchmark)."""
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument(
        "--optimizers", nargs="+", choices=OPTIMIZER_NAMES, default=list(OPTIMIZER_NAMES)
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    parser.add_argument(
        "--frameworks", nargs="+", choices=FRAMEWORK_NAMES, default=list(FRAMEWORK_NAMES)
    )
    parser.add_argument(
        "--n-train", type=int, default=None, help=f"samples (default {N_TRAIN}; quick 256)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="measured (default 3; quick 1)")
    parser.add_argument("--warmup", type=int, default=None, help="not counted (default 1)")
    parser.add_argument("--real-data", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)


def make_options(args: argparse.Namespace) -> Options:
    """The options of a run from the command line, each bad value an exit that names it."""
    for a in args.archs:
        parse_arch(a)
    quick: bool = args.quick
    for name, values in (("--batch-sizes", args.batch_sizes), ("--threads", args.threads)):
        if any(v <= 0 for v in values):
            raise SystemExit(f"{name} must be positive integers, got {values}")
    cpus = len(os.sched_getaffinity(0))
    if max(args.threads) > cpus:
        raise SystemExit(f"--threads {max(args.threads)}: this process may use {cpus} cores only")
    for name, value, low in (("--n-train", args.n_train, 1), ("--epochs", args.epochs, 1)):
        if value is not None and value < low:
            raise SystemExit(f"{name} must be a positive integer, got {value}")
    if args.warmup is not None and args.warmup < 0:
        raise SystemExit(f"--warmup must be 0 or more, got {args.warmup}")
    cached = dataset_cached(args.dataset)
    if args.real_data == "yes" and not cached:
        raise SystemExit(
            f"--real-data yes but {args.dataset} is not in the cache; "
            f"run: python -m fmlp.data fetch {args.dataset}"
        )
    real = args.real_data == "yes" or (args.real_data == "auto" and cached and not quick)
    return Options(
        archs=tuple(args.archs),
        optimizers=tuple(dict.fromkeys(args.optimizers)),
        batch_sizes=tuple(args.batch_sizes),
        threads=tuple(dict.fromkeys(args.threads)),
        frameworks=tuple(dict.fromkeys(args.frameworks)),
        n_train=args.n_train or (QUICK_TRAIN if quick else N_TRAIN),
        epochs=args.epochs or (1 if quick else 3),
        warmup=args.warmup if args.warmup is not None else (0 if quick else 1),
        dataset=args.dataset if real else "synthetic",
        quick=quick,
    )


# ------------------------------------------------------------------ one child: the cells


def _describe_blas() -> str:
    info = blas_info()
    if not info:
        return "unknown (threadpoolctl is not installed)"
    b = info[0]
    return f"{b.internal_api} {b.version} kernel {b.architecture}, {b.num_threads} threads"


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if values else None


def measure_cell(
    opts: Options,
    arch: str,
    optimizer: OptimizerName,
    batch: int,
    x: FloatArray,
    y: IntArray,
    *,
    jax: ModuleType | None,
    optax: ModuleType | None,
) -> Cell:
    """Every framework of ``opts`` on one cell, interleaved epoch by epoch."""
    s = OPTIMIZERS[optimizer]
    p0 = fmlp.init(parse_arch(arch), seed=SEED, dtype=x.dtype)

    def optax_loop() -> Loop:
        if jax is None or optax is None:
            raise ValueError("the jax column needs jax and optax")
        return OptaxLoop(jax, optax, p0, x, y, batch, s)

    loops: dict[FrameworkName, Loop] = {}
    notes: dict[FrameworkName, str] = {}
    compile_s: dict[FrameworkName, float] = {}
    makers: dict[FrameworkName, Callable[[], Loop]] = {
        "fmlp": lambda: FmlpLoop(p0, x, y, batch, s, fused=True),
        "fmlp-numpy": lambda: FmlpLoop(p0, x, y, batch, s, fused=False),
        "fmlp-gemm": lambda: FmlpLoop(p0, x, y, batch, s, fused=True, sgd_in_gemm=True),
        "in-place": lambda: InPlaceLoop(p0, x, y, batch, s),
        "in-place-gemm": lambda: InPlaceLoop(p0, x, y, batch, s, gemm_update=True),
        "torch": lambda: TorchOptLoop(p0, x, y, batch, s, fused=False),
        "torch-fused": lambda: TorchOptLoop(p0, x, y, batch, s, fused=True),
        "jax": optax_loop,
        "gemm": lambda: GemmOnlyLoop(p0, x, batch),
    }
    for name in opts.frameworks:
        if name == "fmlp" and not fmlp.kernels.numba_available():
            notes[name] = "numba is not installed (pip install -e '.[fast]'): no fused path"
        elif name.startswith("torch") and not _importable("torch"):
            notes[name] = "torch is not installed"
        elif name in ("in-place-gemm", "fmlp-gemm") and optimizer != "sgd":
            notes[name] = "only plain SGD folds its update into the weight-gradient GEMM"
        elif name in ("in-place-gemm", "fmlp-gemm") and not fmlp.blas.available():
            notes[name] = "numpy's BLAS was not found: no gemm with alpha and beta"
        elif name == "jax" and (jax is None or optax is None):
            notes[name] = "jax or optax is not installed (pip install -e '.[bench]')"
        else:
            try:
                loop = loops[name] = makers[name]()
            except (RuntimeError, ValueError, TypeError) as exc:  # torch without fused=True
                notes[name] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            if isinstance(loop, OptaxLoop):
                compile_s[name] = loop.compile_seconds
    wall: dict[FrameworkName, list[float]] = {name: [] for name in loops}
    cpu: dict[FrameworkName, list[float]] = {name: [] for name in loops}
    la = load_avg()
    n = x.shape[0]
    for epoch in range(opts.warmup + opts.epochs):
        order = epoch_order(n, SEED, epoch)
        for name, loop in loops.items():
            t0, c0 = time.perf_counter(), time.process_time()
            loop.epoch(order)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    same = None
    if "fmlp" in loops and "fmlp-numpy" in loops:
        a, b = tree_leaves(loops["fmlp"].params()), tree_leaves(loops["fmlp-numpy"].params())
        same = all(p.tobytes() == q.tobytes() for p, q in zip(a, b, strict=True))
    timings = []
    for name in opts.frameworks:
        if name in notes:
            timings.append(Timing(name, (), (), None, None, None, notes[name]))
            continue
        w, c = tuple(wall[name][opts.warmup :]), tuple(cpu[name][opts.warmup :])
        timings.append(Timing(name, w, c, _median(w), _median(c), compile_s.get(name), None))
    return Cell(
        arch=arch,
        optimizer=optimizer,
        batch=batch,
        n_train=n,
        timings=tuple(timings),
        load_avg=(*la, *load_avg()),
        fused_equals_numpy=same,
    )


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def run_child(opts: Options, threads: int, out: Path, *, quiet: bool = False) -> None:
    """A child's work: pin this process to ``threads`` cores, limit every library to
    ``threads`` threads, measure every cell, write the ThreadRun to ``out``."""
    t_start = time.perf_counter()
    cpus = tuple(sorted(os.sched_getaffinity(0))[:threads])
    os.sched_setaffinity(0, set(cpus))
    notes: list[str] = []
    if threads == 1:  # before jax is imported; the affinity holds anyway
        os.environ["XLA_FLAGS"] = " ".join(
            f
            for f in (
                os.environ.get("XLA_FLAGS"),
                "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
            )
            if f
        )
    from threadpoolctl import threadpool_limits

    torch_ok = _importable("torch")
    if torch_ok:
        import torch

        torch.set_num_threads(threads)
    jax = import_jax() if "jax" in opts.frameworks else None
    optax = import_optax() if jax is not None else None
    # Load every BLAS before the limit, so that it covers them all: scipy's (the GEMM
    # variant's, and numba's, which imports it when its CPU target starts where scipy is
    # installed) is a second OpenBLAS with its own thread pool beside numpy's.
    _importable("scipy.linalg.blas")
    fmlp.kernels.bias_relu_(np.zeros((1, 1), np.float32), np.zeros(1, np.float32))
    load_start = load_avg()
    cells = []
    with threadpool_limits(limits=threads, user_api="blas"):
        blas = _describe_blas()
        data = get_data(opts.dataset, "float32", opts.n_train, 16)
        x, y = data.x_train, data.y_train
        for arch in opts.archs:
            for batch in opts.batch_sizes:
                for optimizer in opts.optimizers:
                    if not quiet:
                        print(
                            f"[per-optimizer] {threads} thread(s) {arch} {optimizer} "
                            f"batch {batch} (load {load_avg()})",
                            file=sys.stderr,
                        )
                    cells.append(
                        measure_cell(opts, arch, optimizer, batch, x, y, jax=jax, optax=optax)
                    )
    run = ThreadRun(
        threads=threads,
        cpus=cpus,
        blas=blas,
        xla_flags=os.environ.get("XLA_FLAGS"),
        dataset=opts.dataset,
        load_start=tuple(load_start),
        load_end=tuple(load_avg()),
        cells=tuple(cells),
        notes=tuple(notes),
        seconds=time.perf_counter() - t_start,
    )
    write_json(out, run)


def compile_child() -> None:
    """Print the seconds that importing numba takes, then those that loading or compiling
    every kernel and calling it once in float32 takes."""
    t0 = time.perf_counter()
    import numba  # noqa: F401  # timed apart from the kernels

    t1 = time.perf_counter()
    from fmlp import _numba_kernels as k

    f = np.float32
    a = [np.ones(8, f) for _ in range(4)]
    k.sgd_update(a[0], a[1], f(0), False, f(0), False, f(-1))
    k.trace_update(a[0], a[1], a[2], f(0.9), False, f(0), False, f(0), False, f(-1))
    k.adam_update(a[0], a[1], a[2], a[3], *(f(0.5),) * 7, f(0), False, f(0), False, f(-1))
    k.bias_relu(np.ones((2, 4), f), a[0][:4], f(0))
    k.relu_backprop(a[0], a[1], f(0), f(1))
    print(t1 - t0, time.perf_counter() - t1)


def measure_compile() -> CompileCost:
    """The kernels' first call in two fresh processes sharing an empty numba cache."""
    if not fmlp.kernels.numba_available():
        return CompileCost(None, None, None, "numba is not installed: nothing is compiled")
    imports: list[float] = []
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="fmlp-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for _ in range(2):
            proc = subprocess.run(
                [sys.executable, "-m", MODULE, "--per-optimizer", "--compile-child"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                note = f"the compile child failed: {proc.stderr[-300:]}"
                return CompileCost(None, None, None, note)
            imported, called = proc.stdout.split()[-2:]
            imports.append(float(imported))
            times.append(float(called))
    return CompileCost(min(imports), times[0], times[1], None)


# ------------------------------------------------------------------ the table


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _r(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def format_report(rec: OptimizerBenchmark) -> str:
    """The record as the text printed on screen."""
    o = rec.options
    lines = [
        f"per-optimizer benchmark: {o.dataset} {o.n_train} samples, float32, "
        f"median of {o.epochs} epochs after {o.warmup} warm-up, seconds per epoch",
        f"machine: {rec.machine.platform}, {rec.machine.cores} cores; numpy "
        f"{rec.machine.numpy}, torch {rec.machine.torch}; "
        f"OPENBLAS_CORETYPE={rec.machine.openblas_coretype}",
    ]
    c = rec.compile
    if c.note is None:
        lines.append(
            f"compiled kernels, first call in a fresh process: {_s(c.cold_seconds)} s with "
            f"an empty numba cache (compiling), {_s(c.cached_seconds)} s from the cache "
            f"(after import numba: {_s(c.import_seconds)} s)"
        )
    else:
        lines.append(f"compiled kernels: {c.note}")
    fws = [f for f in FRAMEWORK_NAMES if f in o.frameworks]
    for run in rec.runs:
        lines.append("")
        lines.append(
            f"{run.threads} thread(s), pinned to cores {list(run.cpus)}; BLAS {run.blas}; "
            f"load {list(run.load_start)} -> {list(run.load_end)}; {run.seconds:.0f} s"
        )
        for arch in o.archs:
            head = ["opt", "batch", *fws, "fmlp/gemm", "fmlp/torch", "fmlp/jax", "fused/numpy"]
            head += ["in-gemm/gemm", "in-gemm/jax", "jax cpu/wall"]
            body = []
            for cell in run.cells:
                if cell.arch != arch:
                    continue
                body.append(
                    [
                        cell.optimizer,
                        str(cell.batch),
                        *(_s(cell.median(f)) for f in fws),
                        _r(cell.ratio("fmlp", "gemm")),
                        _r(cell.ratio("fmlp", "torch")),
                        _r(cell.ratio("fmlp", "jax")),
                        _r(cell.ratio("fmlp", "fmlp-numpy")),
                        _r(cell.ratio("fmlp-gemm", "gemm")),
                        _r(cell.ratio("fmlp-gemm", "jax")),
                        _r(cell.cpu_over_wall("jax")),
                    ]
                )
            widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
            lines.append(f"  {arch}")
            for row in [head, *body]:
                lines.append("  " + "  ".join(v.rjust(w) for v, w in zip(row, widths)))
        skipped = {
            (t.framework, t.note) for cell in run.cells for t in cell.timings if t.note is not None
        }
        lines.extend(f"  {name}: skipped, {note}" for name, note in sorted(skipped))
        checked = [c.fused_equals_numpy for c in run.cells if c.fused_equals_numpy is not None]
        if checked:
            lines.append(
                f"  fmlp's parameters with the kernels equal the numpy path's bit for bit in "
                f"{sum(checked)} of {len(checked)} cells"
            )
        lines.extend(f"  note: {n}" for n in run.notes)
    return "\n".join(lines)


# ------------------------------------------------------------------ the command


def main(args: argparse.Namespace) -> int:
    """Run the per-optimizer benchmark as the parsed ``args`` say (``--per-optimizer``)."""
    if args.compile_child:
        compile_child()
        return 0
    opts = make_options(args)
    if args.child_threads is not None:
        if args.child_out is None:
            raise SystemExit("--child-threads needs --child-out")
        run_child(opts, args.child_threads, Path(args.child_out), quiet=args.quiet)
        return 0
    t0 = time.perf_counter()
    folder = Path(args.out) / "benchmark"
    folder.mkdir(parents=True, exist_ok=True)
    compile_cost = measure_compile()
    runs = []
    for threads in opts.threads:
        with tempfile.TemporaryDirectory(prefix="fmlp-bench-") as tmp:
            out = Path(tmp) / "run.json"
            argv = list(args.argv)
            cmd = [sys.executable, "-m", MODULE, *argv, "--child-threads", str(threads)]
            proc = subprocess.run([*cmd, "--child-out", str(out)], check=False)
            if proc.returncode != 0 or not out.exists():
                print(
                    f"[per-optimizer] the {threads}-thread child failed "
                    f"(exit code {proc.returncode})",
                    file=sys.stderr,
                )
                return 1
            runs.append(from_json(ThreadRun, read_json(out)))
    rec = OptimizerBenchmark(
        schema=SCHEMA,
        options=opts,
        machine=machine_info(),
        compile=compile_cost,
        runs=tuple(runs),
        wall_seconds=time.perf_counter() - t0,
    )
    path = folder / "optimizers.json"
    write_json(path, rec)
    print(format_report(rec))
    print(f"record: {path} ({rec.wall_seconds:.0f} s)")
    return 0
