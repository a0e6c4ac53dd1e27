"""Lucida dicomio package."""
