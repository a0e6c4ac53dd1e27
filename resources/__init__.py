"""Lucida resources package."""
