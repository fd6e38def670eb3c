"""The one thing pyproject.toml cannot say: the optional compiled capture.

``logbridge._speedups`` is the common path of the logging handler's capture in C
(docs/performance.md). ``optional=True``: where it cannot be compiled (no C compiler, no
Python headers) the build goes on without it and logbridge runs its pure-Python capture.
The module carries its source's SHA-256, so that a test can tell a stale build in a checkout.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "src/logbridge/_speedups.c"
DIGEST = hashlib.sha256((Path(__file__).resolve().parent / SOURCE).read_bytes())

setup(
    ext_modules=[
        Extension(
            "logbridge._speedups",
            [SOURCE],
            define_macros=[("LOGBRIDGE_SOURCE_SHA256", f'"{DIGEST.hexdigest()}"')],
            optional=True,
        ),
    ],
)
