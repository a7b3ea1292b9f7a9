"""Decoding: search algorithms and the translator that wraps a trained model_dir."""
