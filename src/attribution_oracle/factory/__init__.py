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

from attribution_oracle.lazy import lazy_exports

# Public names load on first use, so light users (the CLI's `model register`, oracle nodes) do not import torch.
_LAZY = {
    "TrainConfig": "config",
    "DataVerificationError": "factory_errors",
    "FactoryError": "factory_errors",
    "ManifestError": "factory_errors",
    "RunMismatchError": "factory_errors",
    "Document": "fetch",
    "TrainingData": "fetch",
    "fetch_training_data": "fetch",
    "MANIFEST_FORMAT": "manifest",
    "load_manifest": "manifest",
    "manifest_digest_of_uri": "manifest",
    "manifest_uri": "manifest",
    "verify_manifest": "manifest",
    "TrainedModel": "pipeline",
    "run_name": "pipeline",
    "train_model": "pipeline",
    "ApprovedContribution": "version_sources",
    "CatalogSource": "version_sources",
    "ChainSource": "version_sources",
    "DatanetSource": "version_sources",
    "VersionRecord": "version_sources",
    "parse_datanet_spec": "version_sources",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


# Every lazy name is public: the table above is the one list to keep up to date.
__all__ = sorted(_LAZY)
