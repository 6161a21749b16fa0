"""sledfuzz: emu/impls."""
