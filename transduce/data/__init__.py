"""Data: reading parallel text, tokenizing, vocabularies and batching."""
