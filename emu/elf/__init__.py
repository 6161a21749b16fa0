"""Real compiled code in the loop: load RV64 ELF objects, find traced functions and their sleds,
read their signatures from DWARF (issue 13). Pure data out; the engine runs what this loads."""
