"""sledfuzz: emu/rv64."""
