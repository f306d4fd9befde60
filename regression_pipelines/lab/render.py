"""Render a lab config template from deploy/local/ (pure: values in, text out). Each service module
renders its own templates with it."""

from __future__ import annotations

from string import Template

from regression_pipelines.lab.settings import REPO_ROOT

TEMPLATE_DIR = REPO_ROOT / "deploy" / "local"


def render(template: str, **values: object) -> str:
    """The template with every $name substituted; a missing value raises KeyError naming it."""
    text = (TEMPLATE_DIR / template).read_text()
    return Template(text).substitute({k: str(v) for k, v in values.items()})
