"""Where the trials table used to be rendered; it is `civicml.reporting.trials` now."""

from civicml.reporting.trials import trials_html, trials_markdown  # noqa: F401 - the tune step imports them here
