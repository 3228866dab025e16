"""pip install for the Python module (no PyPI needed): /usr/bin/python3 -m pip install --no-build-isolation .

CMake builds the _moedist extension (pybind11 from Debian, moedist linked in statically) and
setuptools installs it with the pure-Python package python/moedist."""

import os
import pathlib
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        target = pathlib.Path(self.get_ext_fullpath(ext.name)).resolve()
        build = pathlib.Path(self.build_temp).resolve() / "cmake"
        build.mkdir(parents=True, exist_ok=True)
        jobs = str(os.cpu_count() or 2)
        subprocess.check_call([
            "cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython3_EXECUTABLE={sys.executable}", "-DMOEDIST_BUILD_TESTS=OFF",
            "-DMOEDIST_BUILD_TOOLS=OFF", "-DMOEDIST_BUILD_BENCH=OFF", "-DMOEDIST_BUILD_PYTHON=ON"])
        subprocess.check_call(["cmake", "--build", str(build), "--target", "_moedist", "-j", jobs])
        built = next((build / "python" / "moedist").glob("_moedist*.so"))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.copy_file(str(built), str(target))


setup(
    name="moedist",
    version="0.1.0",
    description="MoE expert-parallel dispatch and combine (aclnnMoeDistribute*) on CPUs",
    packages=["moedist"],
    package_dir={"": "python"},
    ext_modules=[CMakeExtension("moedist._moedist")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    zip_safe=False,
)
