"""ModelFactory: LoRA adapters trained on verified Datanet versions, with provenance and attribution artefacts.

Public API::

    from attribution_oracle.factory import ChainSource, TrainConfig, train_model, load_model_scorer

    result = train_model(ChainSource(client, deployment), store, ["1@1"], base_spec="smollm2",
                         config=TrainConfig(steps=30), runs_root=home / "runs")
    model_id = register_model(client, deployment, signer, base_hash=result.base_sha256,
                              adapter_hash=result.adapter_digest, sources=result.sources, price_wei=...,
                              split=(5000, 4000, 1000), metadata_uri=manifest_uri(result.manifest_digest))
    scorer = load_model_scorer(store, result.manifest_digest)
    scorer.scores(prompt_ids, output_ids)   # {contribution id: score}
"""

from .config import TrainConfig
from .errors import DataVerificationError, FactoryError, ManifestError, RunMismatchError
from .fetch import Document, TrainingData, fetch_training_data
from .manifest import MANIFEST_FORMAT, load_manifest, manifest_digest_of_uri, manifest_uri, verify_manifest
from .pipeline import TrainedModel, run_name, train_model
from .sources import ApprovedContribution, CatalogSource, ChainSource, DatanetSource, VersionRecord, parse_datanet_spec

__all__ = [
    "MANIFEST_FORMAT",
    "ApprovedContribution",
    "CatalogSource",
    "ChainSource",
    "DataVerificationError",
    "DatanetSource",
    "Document",
    "FactoryError",
    "ManifestError",
    "RunMismatchError",
    "TrainConfig",
    "TrainedModel",
    "TrainingData",
    "VersionRecord",
    "fetch_training_data",
    "load_manifest",
    "manifest_digest_of_uri",
    "manifest_uri",
    "parse_datanet_spec",
    "run_name",
    "train_model",
    "verify_manifest",
]
