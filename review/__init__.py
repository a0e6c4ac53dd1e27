"""Lucida review package."""
