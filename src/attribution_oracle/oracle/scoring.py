"""Scorers: for one model, the attribution score of each training contribution for one served inference.

A node asks ``scorer_for(model_id)`` once per model and calls ``scores(prompt_token_ids, output_token_ids)`` per
inference; keys are contribution ids (decimal strings), values the combined gradient + span scores. The
default provider loads the model's scorer with the factory (``factory.scorer.load_model_scorer``) from the
manifest named by the model's on-chain ``metadataURI`` (``sha256://<manifest digest>``). Any other provider is
named on the command line as ``module:callable``; the callable gets a ``ScorerContext`` and returns
``scorer_for``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError
from attribution_oracle.settlement.allocation import AttributedContribution
from attribution_oracle.settlement.chain_data import training_data
from attribution_oracle.store.blobs import BlobStore, bytes32_to_digest
from attribution_oracle.store.digests import CONTENT_URI_SCHEME

URI_PREFIX = CONTENT_URI_SCHEME


class ScorerError(UserError):
    """A model's scorer cannot be loaded."""


class Scorer(Protocol):
    """Scores contributions for one served inference."""

    def scores(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, float]:
        """``{contribution id: score}``."""
        ...


ScorerProvider = Callable[[int], Scorer]


@dataclass
class ScorerContext:
    """What a scorer provider may use: the chain, the deployment, the content store and a cache folder."""

    client: ChainClient
    deployment: Deployment
    store: BlobStore
    cache_dir: Path | None = None
    _training: dict[int, tuple[list[AttributedContribution], dict[int, str]]] = field(default_factory=dict)
    _adapters: dict[int, str] = field(default_factory=dict)

    def training_data(self, model_id: int) -> tuple[list[AttributedContribution], dict[int, str]]:
        """The model's contributions and Datanet owners (read from the chain once per model)."""
        if model_id not in self._training:
            self._training[model_id] = training_data(self.client, self.deployment, model_id)
        return self._training[model_id]

    def adapter_hash(self, model_id: int) -> str:
        """The model's on-chain adapter hash (sha256 hex), read once per model."""
        if model_id not in self._adapters:
            from attribution_oracle.chain.reads import ChainReader

            model = ChainReader(self.client, self.deployment).model(model_id)
            self._adapters[model_id] = bytes32_to_digest(model.adapter_hash)
        return self._adapters[model_id]

    def metadata_uri(self, model_id: int) -> str:
        """The model's on-chain metadata URI."""
        from attribution_oracle.chain.reads import ChainReader

        return ChainReader(self.client, self.deployment).model(model_id).metadata_uri


def factory_provider(context: ScorerContext) -> ScorerProvider:
    """The default: ``load_model_scorer(store, <manifest digest of metadataURI>)`` (imported lazily)."""

    def scorer_for(model_id: int) -> Scorer:
        uri = context.metadata_uri(model_id)
        if not uri.startswith(URI_PREFIX):
            raise ScorerError(f"model {model_id}: metadataURI {uri!r} is not sha256://<manifest digest>")
        try:
            from attribution_oracle.factory.scorer import load_model_scorer
        except ImportError as exc:
            raise ScorerError(f"the factory's scorer is not installed ({exc}); pass --scorer module:callable") from exc
        return load_model_scorer(context.store, uri.removeprefix(URI_PREFIX), cache_dir=context.cache_dir)

    return scorer_for


def load_provider(spec: str, context: ScorerContext) -> ScorerProvider:
    """``factory`` (default) or ``module:callable`` (called with the context, returns ``scorer_for``)."""
    if spec == "factory":
        return factory_provider(context)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ScorerError(f"--scorer {spec!r}: expected 'factory' or 'module:callable'")
    try:
        make = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ScorerError(f"--scorer {spec!r}: cannot import it ({exc})") from exc
    return make(context)
