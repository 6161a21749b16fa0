"""sledfuzz: emu/kernel — a Linux tree's RV64 trampoline JIT in the loop (docs/kernel.md).

``build`` compiles the tree's JIT as a host library, ``probe`` reads its features, ``adapter``
(``KernelJit``) calls it, and ``impl`` (``factory``, ``set_default_tree``,
``describe_kernel_impl``) is the registry's ``kernel`` implementation. Nothing is imported here:
importing the package must not build or load anything.
"""
