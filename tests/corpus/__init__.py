"""Builders of bad input for the reliability tests.

Every junk file is made at test time in a temporary folder (nothing binary is kept in
the repository): truncated and random-byte model files, broken images, hand-edited
manifests, tiny Keras models of the wrong kind, and snapshots to prove a failed command
changed nothing.
"""
