"""Lucida inference package."""
