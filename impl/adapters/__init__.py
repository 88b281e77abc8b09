"""Adapters for third-party libraries, one module each, imported lazily.

Each adapter converts its library's conventions to :mod:`spec.conventions`
and says so in its docstring. Importing this package imports no library.
"""
