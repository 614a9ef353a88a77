"""fasbench: a plugin-based benchmark framework for generalizable face anti-spoofing."""

from fasbench.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
