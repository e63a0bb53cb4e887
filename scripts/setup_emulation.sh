#!/usr/bin/env bash
# An aarch64 Raspberry Pi userspace that runs on this x86 machine, for the Pi bundle proof.
#
#   bash scripts/setup_emulation.sh CACHE_DIR      (make emulation)
#
# CACHE_DIR/
#   qemu/usr/bin/qemu-aarch64-static   Debian's qemu-user-static, unpacked (no install)
#   sysroot/                           arm64 Debian bookworm python3.11, unpacked with dpkg -x
#   sysroot/proc/cpuinfo               a Pi 4's; qemu -L redirects /proc/cpuinfo here
#   site/                              the Pi bundle's requirements.txt and requirements-onnx.txt
#                                      (LiteRT, ONNX Runtime), aarch64 wheels
#   env.json                           the paths above, read by toolkit/autoquant/emulation.py
#   .stamp                             what was built; a second run with the same inputs exits at once
#
# Raspberry Pi OS bookworm is Debian bookworm with Python 3.11, so the sysroot is the
# Pi's own userspace minus the kernel. Idempotent: built in a temporary sibling and
# renamed into place, so an interrupted run leaves nothing half-built.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 CACHE_DIR" >&2
    exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# The bundle's pins: LiteRT's, and ONNX Runtime's for a bundle that carries an ONNX model.
REQUIREMENTS=("$ROOT/toolkit/packaging/templates/rpi/requirements.txt"
    "$ROOT/toolkit/packaging/templates/rpi/requirements-onnx.txt")
CACHE="$(mkdir -p "$1" && cd "$1" && pwd)"
# The sysroot needs only the interpreter and the C++ runtime LiteRT links against;
# numpy and Pillow come from the bundle's own pinned wheels (site/).
DEBS=(python3.11 libstdc++6 libgcc-s1)

# Anything that changes what gets built changes the stamp.
stamp_text() {
    {
        echo "debs: ${DEBS[*]}"
        sha256sum "${REQUIREMENTS[@]}" "${BASH_SOURCE[0]}" | cut -d' ' -f1
    }
}
if [[ -f "$CACHE/.stamp" && "$(cat "$CACHE/.stamp")" == "$(stamp_text)" ]]; then
    echo "emulation: ready in $CACHE"
    exit 0
fi

start=$SECONDS
pip_cmd=()
if [[ -x "$ROOT/.venv/bin/python" ]]; then
    pip_cmd=("$ROOT/.venv/bin/python" -m pip)
else
    pip_cmd=(python3 -m pip)
fi

WORK="$(mktemp -d "$CACHE/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A private apt state that sees the machine's own Debian sources for arm64 (and the host
# architecture, for qemu): nothing of the host's package state is read or changed.
HOST_ARCH="$(dpkg --print-architecture)"
APT="$CACHE/apt"  # kept between runs: its package lists are the slow part
ARCHIVES="$WORK/debs"  # fresh each build, so only the resolver's choice is unpacked
mkdir -p "$APT/lists/partial" "$ARCHIVES/partial"
: >"$WORK/status"
apt_private=(
    -o "Dir::State=$APT"
    -o "Dir::State::Lists=$APT/lists"
    -o "Dir::State::status=$WORK/status"
    -o "Dir::Cache=$APT"
    -o "Dir::Cache::archives=$ARCHIVES"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Architecture=arm64"
    -o "APT::Architectures::=arm64"
    -o "APT::Architectures::=$HOST_ARCH"
    -o "APT::Install-Recommends=false"
    -o "Debug::NoLocking=true"
    -o "APT::Sandbox::User=root"
    -q
)
echo "emulation: package lists (arm64, $HOST_ARCH)"
apt-get "${apt_private[@]}" update >"$WORK/apt-update.log" 2>&1 || {
    cat "$WORK/apt-update.log" >&2
    exit 1
}

echo "emulation: downloading ${DEBS[*]} (arm64) and qemu-user-static ($HOST_ARCH)"
arm_debs=()
for name in "${DEBS[@]}"; do arm_debs+=("$name:arm64"); done
apt-get "${apt_private[@]}" -y --download-only install "${arm_debs[@]}" >"$WORK/apt-get.log" 2>&1 || {
    cat "$WORK/apt-get.log" >&2
    exit 1
}
(cd "$ARCHIVES" && apt-get "${apt_private[@]}" download "qemu-user-static:$HOST_ARCH") \
    >>"$WORK/apt-get.log" 2>&1 || {
    cat "$WORK/apt-get.log" >&2
    exit 1
}

echo "emulation: unpacking"
mkdir -p "$WORK/out/sysroot" "$WORK/out/qemu"
qemu_deb="$(ls "$ARCHIVES"/qemu-user-static_*_"$HOST_ARCH".deb | head -n1)"
dpkg -x "$qemu_deb" "$WORK/qemu-all"
# The .deb carries every target (370 MB); keep the one this proof runs.
mkdir -p "$WORK/out/qemu/usr/bin"
mv "$WORK/qemu-all/usr/bin/qemu-aarch64-static" "$WORK/out/qemu/usr/bin/"
rm -rf "$WORK/qemu-all"
# Every .deb the resolver chose for the arm64 sysroot.
shopt -s nullglob
for deb in "$ARCHIVES"/*_arm64.deb "$ARCHIVES"/*_all.deb; do
    dpkg -x "$deb" "$WORK/out/sysroot"
done
shopt -u nullglob
QEMU="$WORK/out/qemu/usr/bin/qemu-aarch64-static"
PY="$WORK/out/sysroot/usr/bin/python3.11"
test -x "$QEMU" || { echo "emulation: $QEMU missing after unpacking" >&2; exit 1; }
test -x "$PY" || { echo "emulation: $PY missing after unpacking" >&2; exit 1; }

# LiteRT reads /proc/cpuinfo to pick its kernels and crashes on the host's x86 text.
mkdir -p "$WORK/out/sysroot/proc"
{
    for core in 0 1 2 3; do  # four Cortex-A72 cores, as a Pi 4 reports them
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$core"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
        printf 'CPU revision\t: 3\n\n'
    done
    printf 'Hardware\t: BCM2835\nRevision\t: c03111\nSerial\t\t: 100000000badc0de\n'
    printf 'Model\t\t: Raspberry Pi 4 Model B Rev 1.1\n'
} >"$WORK/out/sysroot/proc/cpuinfo"

echo "emulation: aarch64 wheels from the Pi bundle's requirements.txt and requirements-onnx.txt"
requirement_args=()
for file in "${REQUIREMENTS[@]}"; do requirement_args+=(-r "$file"); done
# Debian bookworm (and Raspberry Pi OS) has glibc 2.36: any of these wheel tags runs there.
"${pip_cmd[@]}" install --quiet --disable-pip-version-check --no-compile \
    --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
    --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp \
    --no-warn-conflicts --only-binary=:all: --target "$WORK/out/site" "${requirement_args[@]}" 2>&1 |
    grep -v "^WARNING: Location" >&2 || true
for package in ai_edge_litert onnxruntime; do
    test -d "$WORK/out/site/$package" || {
        echo "emulation: $package did not install for aarch64" >&2
        exit 1
    }
done

cat >"$WORK/out/env.json" <<JSON
{
  "qemu": "qemu/usr/bin/qemu-aarch64-static",
  "sysroot": "sysroot",
  "python": "sysroot/usr/bin/python3.11",
  "site": "site",
  "cpu": "cortex-a72"
}
JSON

# Prove it runs before declaring it ready.
QEMU_CPU=cortex-a72 PYTHONPATH="$WORK/out/site" PYTHONNOUSERSITE=1 \
    "$QEMU" -L "$WORK/out/sysroot" "$PY" -c \
    "import platform, numpy, PIL, onnxruntime; from ai_edge_litert.interpreter import Interpreter; print('emulation: python', platform.python_version(), platform.machine(), 'numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__)"

for part in qemu sysroot site env.json; do
    rm -rf "${CACHE:?}/$part"
    mv "$WORK/out/$part" "$CACHE/$part"
done
stamp_text >"$CACHE/.stamp"
echo "emulation: ready in $CACHE ($((SECONDS - start)) s, $(du -sh --exclude=apt --exclude='.build.*' "$CACHE" | cut -f1))"
