/* sledfuzz shim: the kernel as arch/riscv/net/bpf_jit_comp64.c sees it, reduced to what it uses.
 *
 * Written for sledfuzz (no kernel text copied). The trampoline path (arch_bpf_trampoline_size,
 * arch_prepare_bpf_trampoline, bpf_arch_text_poke) is modelled faithfully: struct layouts whose
 * sizes or offsets reach the emitted code (bpf_tramp_run_ctx), flag values, errno values. The
 * rest of the file (the BPF-insn JIT) only has to compile and link; its shims are placeholders
 * and must not be used to judge that code.
 *
 * Configuration: RV64, CONFIG_RISCV_ISA_C from the build (-DCONFIG_RISCV_ISA_C=1 or absent),
 * Zba/Zbb off, CONFIG_CFI_CLANG off, CONFIG_SMP off.
 */
#ifndef SF_KERNEL_H
#define SF_KERNEL_H

#include <stdlib.h>
#include <string.h>

#include "sf_types.h"

/* 1 when the tree lists trampoline nodes (struct bpf_tramp_nodes, 7.x), 0 for links (6.x). */
#ifndef SF_TRAMP_NODES
#define SF_TRAMP_NODES 0
#endif

/* The tree's own uapi header: struct bpf_insn, opcodes, BPF_REG_*, helper ids. */
#include <uapi/linux/bpf.h>

/* ---- kconfig ---------------------------------------------------------------------------- */
#define CONFIG_64BIT 1
#define SF_ARG_PLACEHOLDER_1 0,
#define sf_take_second(ignored, val, ...) val
#define sf_is_defined(x) sf_is_defined_(x)
#define sf_is_defined_(val) sf_is_defined__(SF_ARG_PLACEHOLDER_##val)
#define sf_is_defined__(arg1_or_junk) sf_take_second(arg1_or_junk 1, 0)
#define IS_ENABLED(option) sf_is_defined(option)

/* ---- compiler and bit helpers ------------------------------------------------------------ */
#define __init
#define __user
#define __must_check
#define notrace
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define BIT(nr) (1UL << (nr))
#define GENMASK(h, l) (((~0UL) - (1UL << (l)) + 1) & (~0UL >> (63 - (h))))
#define sf_mask_shift(mask) __builtin_ctzll(mask)
#define FIELD_PREP(mask, val) (((u64)(val) << sf_mask_shift(mask)) & (mask))
#define FIELD_GET(mask, reg) (((reg) & (mask)) >> sf_mask_shift(mask))
#define FIELD_FIT(mask, val) (!((((u64)(val)) << sf_mask_shift(mask)) & ~(u64)(mask)))
#define round_up(x, y) ((((x) - 1) | ((__typeof__(x))((y) - 1))) + 1)
#define min_t(type, a, b) ((type)(a) < (type)(b) ? (type)(a) : (type)(b))
#define max_t(type, a, b) ((type)(a) > (type)(b) ? (type)(a) : (type)(b))
#define INT_MIN (-__INT_MAX__ - 1)
#define STACK_ALIGN 16

static inline unsigned long __ffs(unsigned long word)
{
	return (unsigned long)__builtin_ctzl(word);
}

static inline void __set_bit(long nr, unsigned long *addr)
{
	*addr |= 1UL << nr;
}

static inline bool test_bit(long nr, const unsigned long *addr)
{
	return (*addr >> nr) & 1UL;
}

/* The kernel's compile-time check needs dead-code elimination of emitc() when RVC is off;
 * at -O1 that is not guaranteed for every inline copy, and RVC-off builds never reach it. */
#define BUILD_BUG_ON(cond) ((void)sizeof(char))
#define WARN_ON(cond) ({ int sf_c = !!(cond); sf_c; })
#define WARN_ON_ONCE(cond) WARN_ON(cond)

/* pr_err keeps the JIT's last message: the adapter shows it as the refusal's reason. */
void sf_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define pr_err(...) sf_log(__VA_ARGS__)
#define pr_err_once(...) sf_log(__VA_ARGS__)

/* ---- errors ------------------------------------------------------------------------------ */
#define E2BIG 7
#define ENOMEM 12
#define EFAULT 14
#define EINVAL 22
#define ERANGE 34
#define ENOTSUPP 524
#define MAX_ERRNO 4095
#define IS_ERR_VALUE(x) ((unsigned long)(x) >= (unsigned long)-MAX_ERRNO)

static inline void put_unaligned_le32(u32 val, void *p)
{
	memcpy(p, &val, sizeof(val)); /* the host is little-endian, as RV64 */
}

#define cpu_to_le16(x) ((u16)(x))
#define cpu_to_le32(x) ((u32)(x))
#define le16_to_cpu(x) ((u16)(x))
#define le32_to_cpu(x) ((u32)(x))

static inline bool IS_ERR(const void *ptr)
{
	return IS_ERR_VALUE((unsigned long)ptr);
}

static inline long PTR_ERR(const void *ptr)
{
	return (long)ptr;
}

/* ---- allocation: plain calloc, with slack so an undersized image cannot overrun the host -- */
#define GFP_KERNEL 0U
void *sf_kvmalloc(size_t size);
#define kvmalloc(size, gfp) sf_kvmalloc(size)
#define kvfree(p) free(p)
#define kcalloc(n, size, gfp) calloc((n), (size))
#define kfree(p) free(p)
#define kzalloc_objs(type, n) ((type *)calloc((n), sizeof(type)))
#define kvzalloc_objs(type, n) ((type *)calloc((n), sizeof(type)))

/* ---- locking and text patching ----------------------------------------------------------- */
struct mutex {
	int unused;
};
extern struct mutex text_mutex;
#define mutex_lock(m) ((void)(m))
#define mutex_unlock(m) ((void)(m))
#define cpus_read_lock() ((void)0)
#define cpus_read_unlock() ((void)0)
#define flush_icache_range(start, end) ((void)(start), (void)(end))

bool is_kernel_text(unsigned long addr);
bool is_bpf_text_address(unsigned long addr);
int patch_text(void *addr, u32 *insns, size_t len);
/* bpf_arch_text_poke compares the live text at the kernel-like ip: the shim reads the host copy
 * of the poke site instead (sf_memcmp maps the configured ip, nothing else). */
int sf_memcmp(const void *a, const void *b, size_t n);
#define memcmp(a, b, n) sf_memcmp((a), (b), (n))

/* The build's fallback when the im/prog casts are not found: every emit_imm value is mapped
 * (emu/kernel/build.py, rewrite_jit); a value that is no host object's pointer passes unchanged. */
s64 sf_kimm(s64 value);
#define SF_EMIT_IMM(rd, val, ctx) emit_imm((rd), sf_kimm((s64)(val)), (ctx))

/* ---- riscv ------------------------------------------------------------------------------- */
#define RISCV_ISA_EXT_ZBA 0
#define RISCV_ISA_EXT_ZBB 1
#define riscv_has_extension_likely(ext) false

struct pt_regs {
	unsigned long epc, ra, sp, gp, tp, t0, t1, t2, s0, s1;
	unsigned long a0, a1, a2, a3, a4, a5, a6, a7;
	unsigned long s2, s3, s4, s5, s6, s7, s8, s9, s10, s11;
	unsigned long t3, t4, t5, t6;
	unsigned long status, badaddr, cause, orig_a0;
};

/* Placeholder: only the BPF-insn JIT reads it (bpf_get_smp_processor_id inlining). */
struct thread_info {
	unsigned long flags;
	int preempt_count;
	long kernel_sp;
	long user_sp;
	int cpu;
};

#define EX_TYPE_BPF 2
struct exception_table_entry {
	int insn, fixup;
	short type, data;
};

#define cfi_bpf_hash 0U
#define cfi_bpf_subprog_hash 0U
static inline u32 cfi_get_func_hash(void *func)
{
	(void)func;
	return 0;
}

/* ---- BPF: the kernel-internal side of include/linux/filter.h ------------------------------ */
#define BPF_TAIL_CALL 0xf0
#define BPF_PROBE_MEM 0x20
#define BPF_PROBE_MEMSX 0x40
#define BPF_PROBE_MEM32 0xa0
#define BPF_PROBE_ATOMIC 0xe0
#define BPF_NOSPEC 0xc0
#define MAX_TAIL_CALL_CNT 33
#define BPF_JIT_REGION_SIZE (128UL << 20)
#define BPF_REG_FP BPF_REG_10
#define BPF_REG_AX MAX_BPF_REG
/* placeholders (sf_stubs.c): only the BPF-insn JIT reads these */
bool bpf_atomic_is_load_store(const struct bpf_insn *insn);
int bpf_atomic_load_reg(const struct bpf_insn *insn);
u64 arch_bpf_timed_may_goto(void); /* placeholder (sf_stubs.c): only the BPF-insn JIT reads it */


/* ---- BPF: the kernel-internal side of include/linux/bpf.h -------------------------------- */
#define MAX_BPF_FUNC_ARGS 12
#define BTF_FMODEL_STRUCT_ARG BIT(0)
#define BTF_FMODEL_SIGNED_ARG BIT(1)

#define BPF_TRAMP_F_RESTORE_REGS BIT(0)
#define BPF_TRAMP_F_CALL_ORIG BIT(1)
#define BPF_TRAMP_F_SKIP_FRAME BIT(2)
#define BPF_TRAMP_F_IP_ARG BIT(3)
#define BPF_TRAMP_F_RET_FENTRY_RET BIT(4)
#define BPF_TRAMP_F_ORIG_STACK BIT(5)
#define BPF_TRAMP_F_SHARE_IPMODIFY BIT(6)
#define BPF_TRAMP_F_TAIL_CALL_CTX BIT(7)
#define BPF_TRAMP_F_INDIRECT BIT(8)

enum {
	BPF_MAX_TRAMP_LINKS = 38,
};

struct btf_func_model {
	u8 ret_size;
	u8 ret_flags;
	u8 nr_args;
	u8 arg_size[MAX_BPF_FUNC_ARGS];
	u8 arg_flags[MAX_BPF_FUNC_ARGS];
};

struct bpf_prog;
struct bpf_tramp_image;

/* Empty, as in the kernel: GNU C gives it size 0, so bpf_cookie sits at offset 0. */
struct bpf_run_ctx {};

struct bpf_tramp_run_ctx {
	struct bpf_run_ctx run_ctx;
	u64 bpf_cookie;
	struct bpf_run_ctx *saved_run_ctx;
};
_Static_assert(sizeof(struct bpf_tramp_run_ctx) == 16, "bpf_tramp_run_ctx is 16 bytes on RV64");
_Static_assert(__builtin_offsetof(struct bpf_tramp_run_ctx, bpf_cookie) == 0, "cookie at 0");

struct bpf_prog_aux {
	u32 stack_depth;
	u32 num_exentries;
	bool verifier_zext;
	bool sleepable;
	bool tail_call_reachable;
	struct exception_table_entry *extable;
};

struct bpf_prog {
	u32 len;
	u16 jited : 1;
	u16 call_session_cookie : 1;	/* 7.x: the program calls bpf_session_cookie() */
	enum bpf_prog_type type;
	enum bpf_attach_type expected_attach_type;
	struct bpf_prog_aux *aux;
	unsigned int (*bpf_func)(const void *ctx, const struct bpf_insn *insn);
	struct bpf_insn *insnsi;
};

struct bpf_link {
	enum bpf_link_type type;
	struct bpf_prog *prog;
};

#if SF_TRAMP_NODES
/* 7.x: a trampoline lists nodes; a link owns one node (two for fsession: fentry and fexit). */
struct bpf_tramp_node {
	struct bpf_link *link;
	u64 cookie;
};

struct bpf_tramp_link {
	struct bpf_link link;
	struct bpf_tramp_node node;
	struct bpf_tramp_node fexit;
};

struct bpf_tramp_nodes {
	struct bpf_tramp_node *nodes[BPF_MAX_TRAMP_LINKS];
	int nr_nodes;
};

#define BPF_TRAMP_COOKIE_INDEX_SHIFT 8
#define BPF_TRAMP_IS_RETURN_SHIFT 63
#else
struct bpf_tramp_link {
	struct bpf_link link;
	u64 cookie;
};

struct bpf_tramp_links {
	struct bpf_tramp_link *links[BPF_MAX_TRAMP_LINKS];
	int nr_links;
};
#endif

enum bpf_tramp_prog_type {
	BPF_TRAMP_FENTRY,
	BPF_TRAMP_FEXIT,
	BPF_TRAMP_MODIFY_RETURN,
	BPF_TRAMP_MAX,
	BPF_TRAMP_REPLACE,
};

/* 6.x: the JIT records the teardown addresses here. 7.x: it records a skip per prog instead. */
struct bpf_tramp_image {
	void *ip_after_call;
	void *ip_epilogue;
	int nr_skips;
	void *skips;
};

/* 7.x: the JIT records each program's skip nop; the wrapper keeps them for the teardown. */
void sf_record_skip(const struct bpf_prog *prog, void *nop, void *target);
int arch_bpf_trampoline_skip(void *nop, void *target);

static inline void bpf_tramp_image_add_skip(struct bpf_tramp_image *im, struct bpf_prog *prog,
					    void *nop, void *target)
{
	(void)im;
	sf_record_skip(prog, nop, target);
}

#if SF_TRAMP_NODES
/* include/linux/bpf.h's inline helpers, as the JIT sees them (sledfuzz's wording). */
static inline bool is_struct_ops_tramp(const struct bpf_tramp_nodes *fentry)
{
	return fentry->nr_nodes == 1 && fentry->nodes[0]->link->type == BPF_LINK_TYPE_STRUCT_OPS;
}

static inline bool sf_is_session(const struct bpf_prog *prog)
{
	return prog->expected_attach_type == BPF_TRACE_FSESSION;
}

static inline int bpf_fsession_cnt(struct bpf_tramp_nodes *nodes)
{
	int i, n = 0;

	for (i = 0; i < nodes[BPF_TRAMP_FENTRY].nr_nodes; i++)
		n += sf_is_session(nodes[BPF_TRAMP_FENTRY].nodes[i]->link->prog);
	return n;
}

static inline bool bpf_prog_calls_session_cookie(struct bpf_tramp_node *node)
{
	return node->link->prog->call_session_cookie;
}

static inline int bpf_fsession_cookie_cnt(struct bpf_tramp_nodes *nodes)
{
	int i, n = 0;

	for (i = 0; i < nodes[BPF_TRAMP_FENTRY].nr_nodes; i++)
		n += bpf_prog_calls_session_cookie(nodes[BPF_TRAMP_FENTRY].nodes[i]);
	return n;
}
#endif

struct bpf_binary_header {
	u32 size;
	u8 image[] __attribute__((aligned(8)));
};

enum bpf_text_poke_type {
	BPF_MOD_NOP,
	BPF_MOD_CALL,
	BPF_MOD_JUMP,
};

/* The host-call addresses of the scenario. The JIT only takes these functions' addresses, so
 * the names resolve to the configured kernel-like values and nothing is ever called. */
extern u64 sf_prog_enter_addr, sf_prog_exit_addr, sf_tramp_enter_addr, sf_tramp_exit_addr;
#define __bpf_tramp_enter ((void (*)(struct bpf_tramp_image *))sf_tramp_enter_addr)
#define __bpf_tramp_exit ((void (*)(struct bpf_tramp_image *))sf_tramp_exit_addr)
typedef u64 (*bpf_trampoline_enter_t)(struct bpf_prog *prog, struct bpf_tramp_run_ctx *run_ctx);
typedef void (*bpf_trampoline_exit_t)(struct bpf_prog *prog, u64 start,
				      struct bpf_tramp_run_ctx *run_ctx);
bpf_trampoline_enter_t bpf_trampoline_enter(const struct bpf_prog *prog);
bpf_trampoline_exit_t bpf_trampoline_exit(const struct bpf_prog *prog);

/* im and prog pointers are emitted as immediates: the build rewrites exactly those casts into
 * sf_kaddr() (see emu/kernel/build.py), which maps the host object to its kernel-like address. */
s64 sf_kaddr(const void *host);

void *bpf_arch_text_copy(void *dst, void *src, size_t len);
void *bpf_prog_pack_alloc(u32 size, void (*bpf_fill_ill_insns)(void *area, unsigned int size),
			  bool unused);
void bpf_prog_pack_free(void *ptr, u32 size);

/* Placeholders for the BPF-insn JIT (never reached by the trampoline path). */
struct bpf_map {
	u32 max_entries;
};
struct bpf_array {
	struct bpf_map map;
	u32 elem_size;
	u32 index_mask;
	void *aux;
	union {
		char value[0] __attribute__((aligned(8)));
		void *ptrs[0] __attribute__((aligned(8)));
	};
};
int bpf_jit_get_func_addr(const struct bpf_prog *prog, const struct bpf_insn *insn,
			  bool extra_pass, u64 *func_addr, bool *func_addr_fixed);
const struct btf_func_model *bpf_jit_find_kfunc_model(const struct bpf_prog *prog,
						       const struct bpf_insn *insn);
bool bpf_pseudo_func(const struct bpf_insn *insn);
bool insn_is_zext(const struct bpf_insn *insn);
bool insn_is_cast_user(const struct bpf_insn *insn);
bool insn_is_mov_percpu_addr(const struct bpf_insn *insn);

#endif /* SF_KERNEL_H */
