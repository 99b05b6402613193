"""Builds libqasr.so with CMake from the qasr repository one level up and puts it in the package.

pip (21.3 and later) builds a local directory in place, so ../ is the checkout. Environment:
QASR_BUILD_DIR: the CMake build directory (default: build/cmake here; reused, so a reinstall
only rebuilds what changed); QASR_BUILD_JOBS: parallel compile jobs (default: all CPUs);
QASR_CMAKE_ARGS: more -D options (e.g. -DQASR_NATIVE=ON). The library is built for the CPU only.
"""
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class BuildWithLibrary(build_py):
    """build_py, then libqasr.so into the built package."""

    def run(self) -> None:
        super().run()
        if not (ROOT / "CMakeLists.txt").is_file() or not (ROOT / "host" / "py" / "qasr_py.h").is_file():
            raise SystemExit(f"qasr: {ROOT} is not a qasr checkout: install with `pip install ./python` "
                             "from the repository (the package builds the C sources beside it)")
        build_dir = Path(os.environ.get("QASR_BUILD_DIR") or HERE / "build" / "cmake").resolve()
        jobs = os.environ.get("QASR_BUILD_JOBS") or str(os.cpu_count() or 1)
        configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                     "-DQASR_CUDA=OFF", *shlex.split(os.environ.get("QASR_CMAKE_ARGS", ""))]
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "qasr_py", "-j", jobs], check=True)
        target = Path(self.build_lib) / "qasr"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(build_dir / "libqasr.so", target / "libqasr.so")


class BinaryDistribution(Distribution):
    """A platform wheel: the package carries a compiled library."""

    def has_ext_modules(self) -> bool:
        return True


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildWithLibrary})
