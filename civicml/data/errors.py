"""Errors raised for bad input data."""


class DataError(ValueError):
    """Input data breaks the contract or cannot be read; the message says what, where and how to fix it."""
