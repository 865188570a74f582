"""Reporting: Jinja2 templates (autoescaped) for the model card, drift, A/B and trials reports; figures
drawn once (plots); one number formatter (numbers)."""
