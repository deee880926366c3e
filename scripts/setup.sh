#!/usr/bin/env bash
# Installs everything Loom's build and tests need on Debian 12, from Debian's packages only.
# Idempotent: a second run installs nothing new. Needs root (or sudo).
# LOOM_BUILD_COMPILER=OFF (a runtime-only build, as on GPU nodes): no LLVM,
# MLIR or clang.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build ccache python3 python3-venv git
  # MLIR/LLVM 19: mlir-19-tools is needed even for a library-only build (mlir-tblgen)
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  # libraries
  libfmt-dev libgtest-dev pkg-config libopenblas-dev
  # one rank per process: Open MPI (the mpi communicator, and mpirun for the
  # multi-process tests)
  libopenmpi-dev openmpi-bin
  # OpenBLAS built with OpenMP: one thread pool with the CPU backend's loops
  libopenblas-openmp-dev
  # Gloo (PyTorch's CPU collectives): the gloo communicator, one rank per
  # process over TCP (optional: without it --comm gloo says to install it)
  libgloo-dev
  # the plan bundle's format (FlatBuffers: flatc and the header-only library)
  flatbuffers-compiler libflatbuffers-dev
  # the fuzz target: clang with libFuzzer and the sanitizer runtimes
  clang-19 libclang-rt-19-dev
)
case "${LOOM_BUILD_COMPILER:-ON}" in
  OFF | off | 0 | FALSE | false)
    compiler_only="llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools clang-19 libclang-rt-19-dev"
    kept=()
    for p in "${packages[@]}"; do
      [[ " $compiler_only " == *" $p "* ]] || kept+=("$p")
    done
    packages=("${kept[@]}")
    ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "setup: these packages are missing: ${missing[*]}" >&2
    echo "setup: run this script as root, or install sudo, to install them" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -q
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
