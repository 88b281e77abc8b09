"""Speed and memory of backprop-spec, measured against peers.

``python -m benchmarks`` runs every benchmark and writes
``docs/benchmarks.md`` and ``docs/_static/cost.png``; ``--quick`` runs the
same code at tiny sizes. One module per benchmark:

1. :mod:`benchmarks.oracle_vs_fd` — verifying a gradient with the oracle vs
   ``torch.autograd.gradcheck``;
2. :mod:`benchmarks.suite_throughput` — wall time of the suite per backend;
3. :mod:`benchmarks.reference_vs_torch` — the numpy reference vs torch;
4. :mod:`benchmarks.cost_scaling` — the cost theorem in time and memory;
5. :mod:`benchmarks.parallel_runs` — the suite in two processes.
"""

from benchmarks._run import FULL, QUICK, SECTION_KEYS, Config, run_all, write_report
from benchmarks._table import Report, Row, Section, Target, render_report
from benchmarks._timing import Sample

__all__ = [
    "FULL",
    "QUICK",
    "SECTION_KEYS",
    "Config",
    "Report",
    "Row",
    "Sample",
    "Section",
    "Target",
    "render_report",
    "run_all",
    "write_report",
]
