"""Hashing, the hash chain, verification and proofs: bytes and files only.

Nothing here imports ``blocktrace.vm``: a verifier never needs the traced program.
"""
