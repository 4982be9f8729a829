"""A node starts without importing torch; the attribution package's public API is unchanged by lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_node_and_cli_do_not_import_torch() -> None:
    code = (
        "import sys, attribution_oracle.oracle.oracle_node, attribution_oracle.cli.main;"
        "import attribution_oracle.settlement.epoch_report;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_every_public_name_of_attribution_resolves() -> None:
    import attribution_oracle.attribution as attribution
    from attribution_oracle.attribution import gradient_attributor as engine
    from attribution_oracle.attribution import shares

    assert attribution.Attributor is engine.Attributor
    assert attribution.contributor_shares is shares.contributor_shares
    for name in attribution.__all__:
        assert getattr(attribution, name) is not None
        assert name in dir(attribution)
    with pytest.raises(AttributeError, match="no_such_name"):
        attribution.no_such_name  # noqa: B018


def test_every_public_name_of_the_factory_resolves() -> None:
    import attribution_oracle.factory as factory
    from attribution_oracle.factory import pipeline

    assert factory.train_model is pipeline.train_model
    for name in factory.__all__:
        assert getattr(factory, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        factory.no_such_name  # noqa: B018
