"""Lucida store package."""
