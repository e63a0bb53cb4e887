"""Runs ON the device (sent over ssh to its Python's stdin): standard library only.

    python3 - probe FOLDER...          what this machine is, and the sha256 of every file
                                       in each FOLDER (null for a missing one)
    python3 - install STAGING FINAL HASHES
                                       HASHES: {"relative/path": sha256} as JSON; checks the
                                       copy in STAGING file by file, then renames it to
                                       FINAL (replacing an older FINAL); a bad copy is
                                       deleted and reported

One JSON document on stdout. Relative folders are under the login's home (ssh starts
there); a leading ~/ is expanded.
"""

import hashlib
import json
import os
import platform
import shutil
import sys

SKIPPED = {".venv", "__pycache__"}  # what Python or setup.sh add to a folder: never compared
# ARM's CPU part numbers (/proc/cpuinfo "CPU part") of the cores found in boards.
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0d": "Cortex-A77",
}


def cpu_model():
    fields = {}  # type: dict
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    if fields.get("model name"):
        return fields["model name"]
    core = ARM_PARTS.get(fields.get("cpu part", "").lower())
    board = fields.get("model") or fields.get("hardware")
    parts = [p for p in (board, core) if p]
    return " / ".join(parts) or platform.machine()


def version(*names):
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8
        return None
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hashes(folder):
    folder = os.path.expanduser(folder)
    if not os.path.isdir(folder):
        return None
    found = {}
    for root, folders, files in os.walk(folder):
        # What Python (bytecode of pixels.py) or setup.sh (.venv) add there is not ours.
        folders[:] = [name for name in folders if name not in SKIPPED]
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder).replace(os.sep, "/")] = sha256(path)
    return found


def probe(folders):
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ai_edge_litert": version("ai-edge-litert"),
        "tflite_runtime": version("tflite-runtime", "tflite_runtime"),
        "numpy": version("numpy"),
        "pillow": version("Pillow", "pillow"),
        "folders": {folder: hashes(folder) for folder in folders},
    }


def install(staging, final, expected):
    staging, final = os.path.expanduser(staging), os.path.expanduser(final)
    found = hashes(staging) or {}
    bad = sorted(name for name, digest in expected.items() if found.get(name) != digest)
    extra = sorted(set(found) - set(expected))
    if bad or extra:
        shutil.rmtree(staging, ignore_errors=True)
        return {"ok": False, "mismatched": bad, "unexpected": extra}
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.rename(staging, final)
    return {"ok": True, "files": len(found)}


def main(argv):
    action = argv[0] if argv else ""
    if action == "probe":
        answer = probe(argv[1:])
    elif action == "install" and len(argv) == 4:
        answer = install(argv[1], argv[2], json.loads(argv[3]))
    else:
        print("usage: probe FOLDER... | install STAGING FINAL HASHES", file=sys.stderr)
        return 2
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
