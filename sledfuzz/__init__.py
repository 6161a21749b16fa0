"""sledfuzz: property-based fuzzing of RISC-V ftrace nop sleds and BPF trampolines.

One import package over the repository's top-level folders: ``sledfuzz.model`` is ``model/``,
``sledfuzz.emu`` is ``emu/``, ``sledfuzz.fuzz`` is ``fuzz/`` (symbolic links in this folder;
an installed wheel holds the files themselves). See docs/architecture.md."""
