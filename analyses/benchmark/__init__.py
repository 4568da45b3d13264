"""Training at the hardware limit: fmlp against PyTorch eager, JAX ``jit`` + ``lax.scan``,
a minimal in-place numpy loop and the machine's own GEMM peak. (``--per-optimizer`` is a
second benchmark, of each optimizer's step: see ``analyses.benchmark.optimizers``.)

    python -m analyses.benchmark [--out results] [--quick] [--quiet] [--dataset mnist]
        [--native-blas | --both] [--coretype NAME] [--epochs 5] [--warmup 1]
        [--n-train 50000] [--batch-sizes 64 128 256] [--dtypes float32 float64]
        [--frameworks fmlp reference torch jax] [--real-data auto|yes|no]
        [--rss-epochs 10] [--no-rss] [--threads N] [--fresh]

What one run measures, all on the model 784-512-512-10 ReLU trained by SGD (lr 0.01,
mean cross-entropy), every framework from the same initial weights and visiting the
samples in the same order (fmlp's ``epoch_order(n, seed, epoch)``):

- seconds per training epoch, in float32 and float64, at batch 64, 128 and 256, on
  synthetic data of MNIST's shape (50,000 x 784) and, when the cache holds it, on MNIST
  itself, for: ``fmlp`` (``fmlp.fit`` with ``eval_train=False``; the time of each epoch
  is its own ``EpochMetrics.seconds``), ``reference`` (a minimal in-place numpy loop,
  ``numpy_loops``: preallocated buffers, ``out=`` products, -lr folded into the logits'
  gradient), ``torch`` (eager autograd and ``torch.optim.SGD``, same dtype and thread
  count) and ``jax`` (``jax.jit`` of an epoch that is a ``jax.lax.scan`` of the step;
  skipped with a note when jax is not installed; compilation timed apart). The
  frameworks are interleaved epoch by epoch in one process (the others run inside
  ``fit``'s epoch callback), so a change in the machine's load hits them alike.
  Warm-up epochs are excluded from the statistics.
- achieved GFLOP/s from the exact FLOPs of the 8 matrix products of a step
  (3 forward, 3 weight gradients, 2 input gradients; none for the input layer), and
  the fraction of the measured GEMM peak of the same dtype (numpy's 2048^3 product);
  each of the 8 training GEMM shapes is also timed alone, which gives the epoch time
  of the matrix products alone (``gemm_bound_seconds``).
- evaluation throughput of ``fmlp.evaluate`` on 10,000 samples; loading time of the
  dataset from the cache; peak resident memory (``ru_maxrss``) of a 10-epoch
  ``fmlp.fit`` in float32 (with train and validation evaluation each epoch, MNIST when
  cached) and of one epoch of each other framework, each in its own child process.
- the BLAS library, its kernel and thread counts (threadpoolctl), the OpenBLAS
  environment variables and the load average before and after, since timings on a
  shared machine are noisy.

OpenBLAS settings: the run measures the environment it inherits ("default").
``--native-blas`` runs the whole benchmark in a child process whose environment lacks
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (so OpenBLAS picks its own kernel);
``--both`` does both and prints them side by side; ``--coretype NAME`` adds a child
with ``OPENBLAS_CORETYPE=NAME``. Only those child processes see a changed environment.

Results (written atomically, every file a typed record read back with
``analyses.pipeline.records.from_json``, so a malformed file is refused with a message
that names the field): each measured cell (setting, dataset, dtype, batch) is a run of
the pipeline's ``ResultStore``, ``<out>/benchmark/runs/<hash of its key>.json``
(``cells.CellTask``), whose key includes a hash of fmlp's source and of this package, so
an interrupted benchmark resumes without measuring finished cells again while a changed
implementation is measured afresh (``--fresh`` measures everything again).
``<out>/benchmark/<setting>.json`` holds one setting's record (``setting.SettingRecord``)
and ``<out>/benchmark/summary.json`` all settings measured so far
(``setting.BenchmarkSummary``):

- ``schema``: 2; ``settings``: a mapping from setting name ("default", "native",
  "coretype-<NAME>") to a record with ``setting``, ``openblas_env`` (the two
  variables' values, null when unset), ``same_as_native`` (true when neither variable is
  set), ``machine`` (``analyses.datasets.machine_info``), ``blas`` (threadpoolctl:
  library, version, kernel ``architecture``, ``num_threads``), ``threads``
  (``numpy_blas``, ``torch``, ``cpu_count``, ``requested``, ``xla_flags``,
  ``jax_devices``), ``load_avg`` (``start`` and ``end``, 1/5/15-minute load averages),
  ``config`` (the options), ``gemm``, ``training``, ``evaluation``, ``data_loading``,
  ``memory``, ``float64_over_float32``, ``targets``, ``notes``, ``wall_seconds``.
- ``gemm.peak``: per dtype ``size``, ``gflops_best`` (the peak used for fractions),
  ``gflops_median``, ``seconds``. ``gemm.shapes``: per dtype and batch the 8 products
  (``name``, ``m``, ``k``, ``n``, ``flops``, ``seconds_best``, ``seconds_median``,
  ``gflops`` (at the best time)) and ``step_seconds`` (the sum of the best times) and
  ``step_gflops``; ``gemm_bound_seconds`` of a cell is its epoch FLOPs at step_gflops.
- ``training``: one record per cell: ``dataset``, ``dtype``, ``batch``, ``n_train``,
  ``steps_per_epoch``, ``epoch_flops``, ``gemm_bound_seconds``, ``load_avg``,
  ``frameworks`` (per framework ``epochs``: ``seconds`` (measured epochs),
  ``warmup_seconds``, ``median``, ``min``, ``max``, ``iqr``, ``spread``
  ((max - min) / median), ``cpu_seconds`` and ``cpu_median`` (process CPU time of each
  epoch: with one thread it hardly depends on other processes' load, unlike wall time),
  ``gflops`` (epoch FLOPs / median), ``compile_seconds`` (jax, else null),
  ``param_max_abs_diff`` (largest |difference| between its final parameters and
  fmlp's: all frameworks do the same computation); or ``epochs`` null and a ``note``
  saying why it was skipped), ``peak_fraction`` (per measured framework),
  ``ratios`` (``fmlp/torch``, ``fmlp/jax``, ``fmlp/reference``, each with
  ``of_medians``, ``paired_median`` (the median of the per-epoch ratios of the
  interleaved epochs), ``of_mins`` and ``cpu_of_medians``; null when either side is
  skipped), ``computed_now``.
- ``evaluation``: ``dataset`` and per dtype (``dtypes``) ``samples``, ``seconds``,
  ``seconds_median``, ``samples_per_second``.
- ``data_loading``: ``available``, ``dataset``, per dtype (``dtypes``) ``seconds`` and
  ``seconds_median``, or a ``note``.
- ``memory``: ``parent_peak_rss_mb`` and ``children``: per framework a ``peak``
  (``framework``, ``dtype``, ``batch``, ``epochs``, ``dataset``, ``n_train``,
  ``baseline_rss_mb`` (resident after imports and data), ``data_peak_rss_mb`` (peak
  while making the data), ``training_peak_rss_mb`` (peak during training alone: the
  peak is reset once the data is in memory; null where it cannot be), ``peak_rss_mb``
  (the whole child's peak: what the target compares), ``seconds``, ``what``), or
  ``peak`` null and a ``note``.
- ``float64_over_float32``: per dataset and batch, each framework's median float64
  epoch time over its float32 one.
- ``targets``: what fmlp's training is held to (see ``targets``), each ``name``,
  ``value``, ``threshold``, ``met`` (null when not measured), ``note``.
- ``table``: the rows printed on screen (``setting``, ``dataset``, ``dtype``, ``batch``,
  per framework the median ``seconds``, ``jax_compile_seconds``, fmlp's
  ``fmlp_gflops`` and ``fmlp_peak_fraction``, ``gemm_bound_seconds``, and fmlp's
  ``ratios`` of medians).

The package, one concern per module; each imports only modules listed before it:

- ``spec``: the model, learning rate, seed, batch sizes, dtypes and frameworks measured,
  and the optimizer settings of the per-optimizer benchmark.
- ``flops``: the matrix products of a step and the exact FLOPs of a step and an epoch.
- ``gemm``: the GEMM peak and the time of each training product alone.
- ``environment``: OpenBLAS variables, child processes, thread counts, the load average.
- ``data``: synthetic or cached data; loading and evaluation throughput.
- ``numpy_loops``: fmlp's ``fit`` as the benchmark runs it, and the in-place numpy loop
  (the reference, and each optimizer's in-place column).
- ``torch_loop``, ``jax_loop``: the PyTorch eager and the JAX ``jit`` + ``scan`` loops.
- ``training``: the loops' interface, one cell (every framework interleaved epoch by
  epoch) and its statistics.
- ``cells``: a cell as a run of the results store (its key, its stored result) and as
  its setting's record shows it.
- ``memory``: the peak-memory child processes.
- ``config``: the options of a run as a record; ``targets``: the targets and their checks.
- ``setting``: a setting's record and the summary; ``tables``: the printed text;
  ``run``: one setting measured from start to end.
- ``opt_loops``, ``optimizers``: the per-optimizer benchmark (``--per-optimizer``):
  its loops and its cells, children, record and table (see ``optimizers``).
- ``cli`` (and ``__main__``): the command line, the settings children, ``summary.json``.
"""
