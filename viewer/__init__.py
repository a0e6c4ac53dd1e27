"""Lucida viewer package."""
