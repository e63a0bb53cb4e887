"""Benchmark: `cnnx bench --remote`, a device over SSH beside the local LiteRT rows.

Runs `cnnx bench -r litert --artifacts tflite_int8,tflite_float32 --remote URL` twice on
the same artifacts: the first run copies the Pi bundle and the evaluation images to the
device, the second finds them there by sha256 and sends nothing. Records, with the
machine (benchmarks/machine.py), into benchmarks/results/remote.json:

1. the wall time of each whole bench, and what each run copied;
2. per model and thread count: the local LiteRT p50 and the device's p50 side by side
   (measured in the same run) and their ratio, the device's model load time, and the
   cost of one classify.py call over SSH (connection, Python and LiteRT start-up, the
   images) against its timed runs;
3. the device (machine, CPU, cores, OS, Python, LiteRT) and the parity verdicts.

Without --remote, the device is the emulated Raspberry Pi 4 (aarch64 Python and LiteRT
under qemu, `make emulation`) behind Debian's sshd on 127.0.0.1 (`make ssh`), as in
tests/test_remote_bench.py: its latencies are qemu's, not a Pi's. With a real board:

    .venv/bin/python benchmarks/remote_bench.py --remote 'ssh://pi@raspberrypi.local/~/cnnx?python=~/rpi/.venv/bin/python'
    .venv/bin/python benchmarks/remote_bench.py [--artifacts DIR] [--runs N] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "remote.json"
CNNX = ROOT / ".venv" / "bin" / "cnnx"
MODELS = "tflite_int8,tflite_float32"


def cnnx() -> str:
    return str(CNNX if CNNX.exists() else "cnnx")


def ensure_artifacts(folder: Path | None, work: Path) -> Path:
    """The given artifacts folder, else the demo's (made here with `cnnx demo`)."""
    if folder is not None:
        return folder
    demo = ROOT / "cnnx-demo" / "artifacts"
    if (demo / "manifest.json").is_file():
        return demo
    subprocess.run([cnnx(), "demo", "--out", str(work / "demo")], check=True)
    return work / "demo" / "artifacts"


def bench(artifacts: Path, out: Path, remotes: list[str], args: argparse.Namespace) -> Any:
    command = [cnnx(), "bench", str(artifacts), "-r", "litert", "--artifacts", MODELS,
               "--threads", args.threads, "--runs", str(args.runs), "--limit", str(args.limit),
               "--out", str(out),
               "--no-plots", "--json"]  # fmt: skip
    for url in remotes:
        command += ["--remote", url]
    if args.ssh_config:
        command += ["--ssh-config", str(args.ssh_config)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if not done.stdout.strip():
        raise SystemExit(f"cnnx bench gave no report (exit {done.returncode}): {done.stderr}")
    return json.loads(done.stdout), seconds, done.returncode, done.stderr.strip()


def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = report["rows"]
    local = {
        (r["artifact"], r["runtime_info"].get("threads")): r
        for r in rows
        if "@" not in r["runtime"]
    }
    figures = []
    for row in rows:
        if "@" not in row["runtime"]:
            continue
        info = row["runtime_info"]
        twin = local.get((row["artifact"], info.get("threads")))
        entry: dict[str, Any] = {"artifact": row["artifact"], "label": row["label"],
                                 "status": row["status"], "reason": row["reason"]}  # fmt: skip
        if row["status"] == "ok" and twin and twin["status"] == "ok":
            p50, local_p50 = row["latency"]["p50"], twin["latency"]["p50"]
            timed_s = row["latency"]["mean"] * row["latency"]["runs"] / 1000
            ssh_s = info["remote"]["ssh_seconds"]
            entry.update(
                device_p50_ms=p50,
                local_p50_ms=local_p50,
                device_over_local=round(p50 / local_p50, 2),
                device_load_ms=row["load_ms"],
                ssh_call_seconds=ssh_s,
                ssh_call_overhead_seconds=round(ssh_s - timed_s, 3),
                agreement=row["metrics"]["agreement"],
                max_abs=row["metrics"]["max_abs"],
                parity="ok" if all(c["passed"] for c in row["checks"]) else "DRIFT",
                device=info["details"],
            )
        figures.append(entry)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, help="artifacts folder [default: the demo's]")
    parser.add_argument("--remote", action="append", default=[], help="ssh:// URL (repeatable)")
    parser.add_argument("--ssh-config", type=Path)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument(
        "--limit", type=int, default=200, help="evaluation images (each is a PNG on the device)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnnx-remote-bench-") as scratch:
        work = Path(scratch)
        artifacts = ensure_artifacts(args.artifacts, work)
        server = None
        remotes = list(args.remote)
        if not remotes:
            from tests.sshd import emulated_python, start_sshd

            server = start_sshd(work / "sshd")
            args.ssh_config = server.client_config
            python = emulated_python(work / "pi-bin")
            remotes = [server.url(work / "device", str(python))]
        try:
            runs = []
            for attempt in ("first (copies)", "second (reuses)"):
                report, seconds, code, stderr = bench(artifacts, work / "report", remotes, args)
                remote_rows = [r for r in report["rows"] if "@" in r["runtime"]]
                copied = sorted(
                    {c for r in remote_rows for c in r["runtime_info"]["remote"]["copied"]}
                )
                runs.append({"run": attempt, "seconds": round(seconds, 2), "exit_code": code,
                             "copied": copied, "error": stderr})  # fmt: skip
                print(f"{attempt}: {seconds:.1f} s, exit {code}, copied {copied or 'nothing'}")
        finally:
            if server is not None:
                server.stop()
    figures = summarise(report)
    for figure in figures:
        if figure["status"] == "ok":
            print(f"{figure['artifact']:15} {figure['label']:28} device p50 "
                  f"{figure['device_p50_ms']:.3f} ms, local {figure['local_p50_ms']:.3f} ms "
                  f"({figure['device_over_local']}x), ssh call {figure['ssh_call_seconds']:.2f} s, "
                  f"{figure['parity']}")  # fmt: skip
        else:
            print(
                f"{figure['artifact']:15} {figure['label']:28} "
                f"{figure['status']}: {figure['reason']}"
            )
    record = {
        "machine": machine_info(),
        "command": " ".join(sys.argv),
        "device": "emulated Raspberry Pi 4 (qemu) over sshd on 127.0.0.1" if server else remotes,
        "runs": runs,
        "figures": figures,
    }
    write_result(RESULT, record)
    print(f"recorded in {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
