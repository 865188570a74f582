"""Where the drift report used to be rendered; it is `civicml.reporting.drift` now."""

from civicml.reporting.drift import render_drift_html  # noqa: F401 - the steps still import it from here
