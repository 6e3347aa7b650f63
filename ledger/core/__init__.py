"""The pure core: canonical encoding, keys and signatures, transactions, blocks, RFC 9162 trees and proofs,
checkpoints, the state-machine protocol and the deterministic block builder. No I/O.
"""
