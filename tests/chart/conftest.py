from __future__ import annotations

from pathlib import Path

import pytest
from chart_harness import EXTRA_GPU_CONSUMER, Rendered, copy_chart, render_chart

from shared import helm_export, registry


@pytest.fixture(scope="session")
def default_render() -> Rendered:
    return render_chart()


@pytest.fixture(scope="session")
def extended_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chart with workloads.yaml exported from the registry plus EXTRA_GPU_CONSUMER."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "CONSUMERS", (*registry.CONSUMERS, EXTRA_GPU_CONSUMER))
        workloads = helm_export.render()
    return copy_chart(tmp_path_factory.mktemp("chart"), workloads)
