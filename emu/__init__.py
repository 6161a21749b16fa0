"""Emulated implementations: real RV64 machine code, generated per kernel era, executed."""
