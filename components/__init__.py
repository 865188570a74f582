"""Thin KFP components: each declares one step's interface and calls `civicml.steps`.

Each module holds the undecorated component function and `component(image)`, which
applies `@dsl.component` with the civicml image chosen at compile time, so no module
reads the environment at import.
"""
