"""What a benchmark ran on: CPU model, cores, RAM, OS, Python and library versions, date.

Every benchmark script records this next to its figures, and writes the record with
`write_result`:

    from benchmarks.machine import machine_info, write_result   # from the repository root
    record = {"machine": machine_info(), ...}
    write_result(ROOT / "benchmarks" / "results" / "NAME.json", record)

`python benchmarks/machine.py` prints it as JSON. The fields come from
toolkit.bench.machine.machine_info (the same record `cnnx bench` writes into report.json, with
the load average at the time, because a busy machine makes every latency pessimistic).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from toolkit.bench.machine import machine_info

__all__ = ["machine_info", "write_result"]


def write_result(path: Path, record: dict[str, Any]) -> None:
    """Write a benchmark's record as indented JSON: the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    print(json.dumps(machine_info(), indent=2))
