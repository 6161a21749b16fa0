"""sledfuzz: emu/engine."""
