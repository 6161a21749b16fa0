"""Helpers shared by several test folders (compilation caches, kernel patches)."""
