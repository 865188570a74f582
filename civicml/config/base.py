"""The error every config problem raises and the strict base model every section derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A config file or value is wrong; the message names the key and the problem."""


class Strict(BaseModel):
    """A config section that refuses unknown keys (a misspelt key is an error, never ignored)."""

    model_config = ConfigDict(extra="forbid")
