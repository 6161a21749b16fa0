"""Helpers shared by several test folders (compilation caches and the like)."""
