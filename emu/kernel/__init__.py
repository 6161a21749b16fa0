"""sledfuzz: emu/kernel."""
