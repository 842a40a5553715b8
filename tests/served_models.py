"""The models the service serves by default (``app.settings.Settings.models``), named once for the tests.

Tests of what the default service answers refer to these names, so that they follow the settings when the
served pair changes; tests of one particular checkpoint name it.
"""

from __future__ import annotations

from app.settings import Settings

SERVED_MODELS: tuple[str, ...] = Settings.model_fields["models"].default
CNN, GCNN = SERVED_MODELS
