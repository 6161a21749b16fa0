/* sledfuzz: link-time placeholders for the BPF-insn JIT half of bpf_jit_comp64.c.
 *
 * The trampoline and text-poke paths never reach these; they exist so the unmodified file links
 * with -z defs. Each one fails loudly rather than pretending to be the kernel.
 */
#include "sf_kernel.h"

#include <uapi/linux/bpf.h>

void *bpf_prog_pack_alloc(u32 size, void (*fill)(void *area, unsigned int size), bool unused)
{
	(void)size;
	(void)fill;
	(void)unused;
	return NULL;
}

void bpf_prog_pack_free(void *ptr, u32 size)
{
	(void)ptr;
	(void)size;
}

int bpf_jit_get_func_addr(const struct bpf_prog *prog, const struct bpf_insn *insn,
			  bool extra_pass, u64 *func_addr, bool *func_addr_fixed)
{
	(void)prog;
	(void)insn;
	(void)extra_pass;
	(void)func_addr;
	(void)func_addr_fixed;
	return -EINVAL;
}

const struct btf_func_model *bpf_jit_find_kfunc_model(const struct bpf_prog *prog,
						       const struct bpf_insn *insn)
{
	(void)prog;
	(void)insn;
	return NULL;
}

bool bpf_pseudo_func(const struct bpf_insn *insn)
{
	(void)insn;
	return false;
}

bool insn_is_zext(const struct bpf_insn *insn)
{
	(void)insn;
	return false;
}

bool insn_is_cast_user(const struct bpf_insn *insn)
{
	(void)insn;
	return false;
}

bool insn_is_mov_percpu_addr(const struct bpf_insn *insn)
{
	(void)insn;
	return false;
}

u64 arch_bpf_timed_may_goto(void)
{
	abort();
}

bool bpf_atomic_is_load_store(const struct bpf_insn *insn)
{
	(void)insn;
	abort();
}

int bpf_atomic_load_reg(const struct bpf_insn *insn)
{
	(void)insn;
	abort();
}
