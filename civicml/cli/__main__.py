"""`python -m civicml.cli` runs the CLI."""

from civicml.cli import main

main()
