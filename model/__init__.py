"""The reference model: what a correct patched call MUST do (pure Python, no emulator)."""
