# -*- Python -*-
# lit configuration for Loom's FileCheck suites (test/Dialect, test/Passes, test/loomc).

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "Loom"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "compiler", "runtime", "e2e"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.loom_obj_root, "test")

config.substitutions.append(("%loom_src_root", config.loom_src_root))
config.substitutions.append(("%python", config.python_executable))
# The python with the test-only packages (scripts/test-python.sh), when
# LOOM_TEST_PYTHON names one; tests that need a package skip that part,
# saying so, without it.
config.substitutions.append(
    ("%test_python", os.environ.get("LOOM_TEST_PYTHON") or config.python_executable))
# Inputs/ folders hold data and helpers, not tests.
config.excludes.append("Inputs")

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.add_tool_substitutions(
    [ToolSubst("loom-opt", unresolved="fatal"), ToolSubst("loomc", unresolved="fatal"),
     ToolSubst("loom-run", unresolved="fatal"),
     ToolSubst("loom-preprocess", unresolved="fatal"),
     ToolSubst("loom-convert", unresolved="fatal")],
    [config.loom_tools_dir],
)

# Generated kernels compile into a cache in the build tree, never the user's
# ~/.cache (the first test to load a plan compiles it; the rest load it).
# A machine with an NVIDIA GPU (its driver's nvidia-smi lists one): the tests
# that expect `--backend cuda` to refuse for want of a GPU do not apply.
import shutil
import subprocess
if shutil.which("nvidia-smi") and subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True).returncode == 0:
    config.available_features.add("loom-gpu")

config.environment["LOOM_KERNEL_CACHE"] = os.path.join(
    config.loom_obj_root, "kernel-cache")

# numpy and safetensors in %test_python: loom-convert's tests write Hugging
# Face checkpoints with them (and are UNSUPPORTED, saying why, without).
if subprocess.run([os.environ.get("LOOM_TEST_PYTHON") or config.python_executable,
                   "-c", "import numpy, safetensors"], capture_output=True).returncode == 0:
    config.available_features.add("python-safetensors")

# Open MPI's launcher, for the multi-process tests (test/distributed).
if shutil.which("mpirun"):
    config.available_features.add("mpirun")
