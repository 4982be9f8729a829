"""Attribution ledger for specialised AI: Datanets, models and OPEN rewards, with a torch attribution oracle."""

__version__ = "0.1.0"
