/* sledfuzz: the stable C interface of the kernel adapter library (mirrored by emu/kernel/adapter.py).
 *
 * Python never sees a kernel struct: it fills this flat request, the wrapper builds
 * btf_func_model, bpf_tramp_links and the fake bpf_progs and calls the tree's own functions.
 * Return values are the kernel's: >= 0 success, -errno refusal.
 */
#ifndef SF_WRAPPER_H
#define SF_WRAPPER_H

#include <stdint.h>

#define SF_ABI_VERSION 3
#define SF_MAX_ARGS 16	 /* more than MAX_BPF_FUNC_ARGS, so a 13-argument request can be asked */
#define SF_MAX_LINKS 64	 /* more than BPF_MAX_TRAMP_LINKS, so the -E2BIG path can be asked */

/* link kinds and poke kinds, sledfuzz's numbering (not the kernel's enums) */
#define SF_LINK_FENTRY 0
#define SF_LINK_FMOD_RET 1
#define SF_LINK_FEXIT 2
#define SF_LINK_FSESSION 3 /* 7.x: runs in the fentry and the fexit phase */
#define SF_LINK_F_SESSION_COOKIE 0x1 /* link_flags: the program calls bpf_session_cookie() */
#define SF_POKE_NOP 0
#define SF_POKE_CALL 1
#define SF_POKE_JUMP 2

struct sf_req {
	uint32_t abi;		/* SF_ABI_VERSION */
	uint32_t flags;		/* BPF_TRAMP_F_* */
	uint64_t func_addr;
	uint64_t im_addr;	/* kernel-like address of the bpf_tramp_image */
	uint64_t prog_enter;	/* what bpf_trampoline_enter(prog) resolves to */
	uint64_t prog_exit;
	uint64_t tramp_enter;	/* __bpf_tramp_enter */
	uint64_t tramp_exit;
	uint32_t nr_args;	/* may exceed 12: the JIT must refuse */
	uint32_t ret_size;
	uint32_t ret_flags;	/* BTF_FMODEL_* */
	uint32_t nr_links;
	uint8_t arg_size[SF_MAX_ARGS];
	uint8_t arg_flags[SF_MAX_ARGS];
	uint8_t link_kind[SF_MAX_LINKS];
	uint64_t link_prog[SF_MAX_LINKS];	/* kernel-like address of the bpf_prog object */
	uint64_t link_bpf_func[SF_MAX_LINKS];
	uint64_t link_cookie[SF_MAX_LINKS];
	uint8_t link_flags[SF_MAX_LINKS];	/* SF_LINK_F_* */
};

int sf_abi_version(void);
/* arch_bpf_trampoline_size: bytes, or -errno */
int sf_tramp_size(const struct sf_req *req);
/* arch_prepare_bpf_trampoline at image_addr with ro_image_end = image_addr + out_len; out gets
 * out_len bytes (tail past *used zero); ip_after_call/ip_epilogue are 0 when not set. */
int sf_tramp_emit(const struct sf_req *req, uint64_t image_addr, uint8_t *out, uint32_t out_len,
		  uint32_t *used, uint64_t *ip_after_call, uint64_t *ip_epilogue);
/* bpf_arch_text_poke at ip, whose current 8 bytes are site (updated in place) */
int sf_text_poke(uint64_t ip, uint8_t site[8], int old_kind, int new_kind, uint64_t old_addr,
		 uint64_t new_addr);
/* 7.x: the skips the last sf_tramp_emit recorded (bpf_tramp_image_add_skip): the request's link
 * index, the nop's and the jump target's addresses; returns how many (at most max). */
int sf_tramp_skips(uint32_t *links, uint64_t *nops, uint64_t *targets, int max);
/* 7.x: arch_bpf_trampoline_skip(nop, target) on the 8 bytes at nop (site, updated in place) */
int sf_tramp_skip(uint64_t nop, uint8_t site[8], uint64_t target);
/* the JIT's last pr_err message ("" when none since the last call) */
const char *sf_last_message(void);

#endif
