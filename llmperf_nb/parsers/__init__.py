"""Parsers for what engines and their own tools print. Pure functions: text in, Measurement out."""
