"""The limited-API extension module; the rest of the metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "piwtest_abi3",
            ["piwtest_abi3.c"],
            # 0x03090000: the C code may only use what the stable ABI of 3.9 offers, which is
            # what the cp39 tag below promises.
            define_macros=[("Py_LIMITED_API", "0x03090000")],
            py_limited_api=True,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
