"""Settlement: epoch reports, their Merkle trees and EIP-712 signatures, and claims.

This is the Python side of RewardDistributor and InferenceMarket.
"""
