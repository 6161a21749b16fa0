/* sledfuzz: the kernel adapter library — the tree's RV64 JIT plus the stable wrapper around it.
 *
 * This translation unit includes the build's copy of arch/riscv/net/bpf_jit_comp64.c (see
 * emu/kernel/build.py for the one rewrite applied to it) so that the wrapper can also reach the
 * file's static __arch_prepare_bpf_trampoline to learn the emitted length, which
 * arch_prepare_bpf_trampoline does not return. Not thread-safe: the adapter serialises calls.
 */
#include <stdarg.h>
#include <stdio.h>

#include "sf_kernel.h"

#include SF_JIT_SOURCE

#include "sf_wrapper.h"

#ifndef SF_POKE_API
#define SF_POKE_API 1 /* 1: (ip, type, old, new); 2: (ip, old_t, new_t, old, new), ae4a3160d19c */
#endif
#ifndef SF_PATCH_TEXT_UNIT
#define SF_PATCH_TEXT_UNIT 1 /* patch_text() length unit: bytes since 51781ce8f448, else 4 */
#endif

#define SF_SLACK (64 * 1024) /* an undersized image is the JIT's bug to report, not our crash */

u64 sf_prog_enter_addr, sf_prog_exit_addr, sf_tramp_enter_addr, sf_tramp_exit_addr;
struct mutex text_mutex;

/* ---- messages ---------------------------------------------------------------------------- */
static char sf_msg[256];

void sf_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sf_msg, sizeof(sf_msg), fmt, ap);
	va_end(ap);
}

const char *sf_last_message(void)
{
	return sf_msg;
}

int sf_abi_version(void)
{
	return SF_ABI_VERSION;
}

/* ---- host object -> kernel-like address -------------------------------------------------- */
struct sf_kmap {
	const void *host;
	u64 kaddr;
};
static struct sf_kmap sf_kmaps[SF_MAX_LINKS + 2];
static int sf_nkmaps;
static bool sf_unmapped;

static void sf_kmap_add(const void *host, u64 kaddr)
{
	sf_kmaps[sf_nkmaps].host = host;
	sf_kmaps[sf_nkmaps].kaddr = kaddr;
	sf_nkmaps++;
}

s64 sf_kaddr(const void *host)
{
	int i;

	for (i = 0; i < sf_nkmaps; i++)
		if (sf_kmaps[i].host == host)
			return (s64)sf_kmaps[i].kaddr;
	sf_unmapped = true;
	return (s64)(uintptr_t)host;
}

s64 sf_kimm(s64 value)
{
	int i;

	for (i = 0; i < sf_nkmaps; i++)
		if ((s64)(uintptr_t)sf_kmaps[i].host == value)
			return (s64)sf_kmaps[i].kaddr;
	return value;
}

/* ---- the helpers the JIT takes addresses of ----------------------------------------------- */
/* The kernel picks one of __bpf_prog_enter{,_recur,_sleepable{,_recur}} / _lsm_cgroup by prog
 * type; the scenario has one host call for all of them. */
bpf_trampoline_enter_t bpf_trampoline_enter(const struct bpf_prog *prog)
{
	(void)prog;
	return (bpf_trampoline_enter_t)(uintptr_t)sf_prog_enter_addr;
}

bpf_trampoline_exit_t bpf_trampoline_exit(const struct bpf_prog *prog)
{
	(void)prog;
	return (bpf_trampoline_exit_t)(uintptr_t)sf_prog_exit_addr;
}

/* ---- images: written at a kernel-like address, copied to the caller's buffer --------------- */
static u64 sf_copy_kaddr;
static u8 *sf_copy_out;
static u32 sf_copy_len;

void *sf_kvmalloc(size_t size)
{
	return calloc(1, size + SF_SLACK);
}

void *bpf_arch_text_copy(void *dst, void *src, size_t len)
{
	if ((u64)(uintptr_t)dst != sf_copy_kaddr || !sf_copy_out || len > sf_copy_len)
		return (void *)(long)-EFAULT;
	memcpy(sf_copy_out, src, len);
	return dst;
}

/* ---- text poke: the live text at the kernel-like ip is the caller's 8-byte site ------------ */
static u64 sf_poke_ip;
static u8 *sf_poke_site;

static const void *sf_text(const void *p)
{
	if (sf_poke_site && (u64)(uintptr_t)p == sf_poke_ip)
		return sf_poke_site;
	return p;
}

int sf_memcmp(const void *a, const void *b, size_t n)
{
	return (memcmp)(sf_text(a), sf_text(b), n);
}

bool is_kernel_text(unsigned long addr)
{
	(void)addr;
	return true;
}

bool is_bpf_text_address(unsigned long addr)
{
	(void)addr;
	return true;
}

int patch_text(void *addr, u32 *insns, size_t len)
{
	size_t bytes = len * SF_PATCH_TEXT_UNIT;

	if (!sf_poke_site || (u64)(uintptr_t)addr != sf_poke_ip || bytes > 8)
		return -EFAULT;
	memcpy(sf_poke_site, insns, bytes);
	return 0;
}

/* ---- request -> kernel objects ------------------------------------------------------------ */
#if SF_TRAMP_NODES
#define SF_TL_T struct bpf_tramp_nodes
#else
#define SF_TL_T struct bpf_tramp_links
#endif

struct sf_objs {
	struct btf_func_model m;
	SF_TL_T tl[BPF_TRAMP_MAX];
	struct bpf_tramp_link links[SF_MAX_LINKS];
	struct bpf_prog progs[SF_MAX_LINKS];
	struct bpf_prog_aux aux[SF_MAX_LINKS];
	struct bpf_tramp_image im;
};
static struct sf_objs sf_o;

#if SF_TRAMP_NODES
static void sf_add(SF_TL_T *tl, struct bpf_tramp_node *node)
{
	tl->nodes[tl->nr_nodes++] = node;
}
#else
static void sf_add(SF_TL_T *tl, struct bpf_tramp_link *link)
{
	tl->links[tl->nr_links++] = link;
}
#endif

static int sf_build(const struct sf_req *r)
{
	static const int kind_to_tramp[] = {
		[SF_LINK_FENTRY] = BPF_TRAMP_FENTRY,
		[SF_LINK_FMOD_RET] = BPF_TRAMP_MODIFY_RETURN,
		[SF_LINK_FEXIT] = BPF_TRAMP_FEXIT,
		[SF_LINK_FSESSION] = BPF_TRAMP_FENTRY,
	};
	u32 i, nsizes, weight = 0;

	sf_msg[0] = '\0';
	if (r->abi != SF_ABI_VERSION || r->nr_links > SF_MAX_LINKS || r->nr_args > 255) {
		sf_log("sledfuzz: malformed request");
		return -EINVAL;
	}
	/* kernel/bpf/trampoline.c refuses more than BPF_MAX_TRAMP_LINKS before any JIT runs; a
	 * session program counts twice (its fentry and its fexit node) */
	for (i = 0; i < r->nr_links; i++)
		weight += r->link_kind[i] == SF_LINK_FSESSION ? 2 : 1;
	if (weight > BPF_MAX_TRAMP_LINKS) {
		sf_log("sledfuzz: %u links > BPF_MAX_TRAMP_LINKS", weight);
		return -E2BIG;
	}
	memset(&sf_o, 0, sizeof(sf_o));
	sf_nkmaps = 0;
	sf_unmapped = false;
	sf_prog_enter_addr = r->prog_enter;
	sf_prog_exit_addr = r->prog_exit;
	sf_tramp_enter_addr = r->tramp_enter;
	sf_tramp_exit_addr = r->tramp_exit;

	sf_o.m.ret_size = (u8)r->ret_size;
	sf_o.m.ret_flags = (u8)r->ret_flags;
	sf_o.m.nr_args = (u8)r->nr_args;
	nsizes = min_t(u32, r->nr_args, MAX_BPF_FUNC_ARGS);
	for (i = 0; i < nsizes; i++) {
		sf_o.m.arg_size[i] = r->arg_size[i];
		sf_o.m.arg_flags[i] = r->arg_flags[i];
	}

	sf_kmap_add(&sf_o.im, r->im_addr);
	for (i = 0; i < r->nr_links; i++) {
		struct bpf_tramp_link *l = &sf_o.links[i];
		struct bpf_prog *p = &sf_o.progs[i];
		u8 kind = r->link_kind[i];

		if (kind > SF_LINK_FSESSION || (kind == SF_LINK_FSESSION && !SF_TRAMP_NODES)) {
			sf_log("sledfuzz: link kind %u is not supported by this tree", kind);
			return -EINVAL;
		}
		p->jited = 1;
		p->aux = &sf_o.aux[i];
		p->bpf_func = (void *)(uintptr_t)r->link_bpf_func[i];
		p->call_session_cookie = !!(r->link_flags[i] & SF_LINK_F_SESSION_COOKIE);
		p->type = BPF_PROG_TYPE_TRACING;
		p->expected_attach_type = kind == SF_LINK_FEXIT ? BPF_TRACE_FEXIT :
					  kind == SF_LINK_FMOD_RET ? BPF_MODIFY_RETURN : BPF_TRACE_FENTRY;
		l->link.type = BPF_LINK_TYPE_TRACING;
		/* a struct_ops trampoline: the core's INDIRECT flag with the member's one program */
		if ((r->flags & BPF_TRAMP_F_INDIRECT) && r->nr_links == 1 && kind == SF_LINK_FENTRY) {
			p->type = BPF_PROG_TYPE_STRUCT_OPS;
			l->link.type = BPF_LINK_TYPE_STRUCT_OPS;
		}
		l->link.prog = p;
#if SF_TRAMP_NODES
		if (kind == SF_LINK_FSESSION)
			p->expected_attach_type = BPF_TRACE_FSESSION;
		l->node.link = &l->link;
		l->node.cookie = r->link_cookie[i];
		sf_add(&sf_o.tl[kind_to_tramp[kind]], &l->node);
#else
		l->cookie = r->link_cookie[i];
		sf_add(&sf_o.tl[kind_to_tramp[kind]], l);
#endif
		sf_kmap_add(p, r->link_prog[i]);
	}
#if SF_TRAMP_NODES
	/* a session program's fexit node runs in the fexit phase, after the fexit programs listed
	 * before it in the request */
	{
		struct bpf_tramp_nodes *fexit = &sf_o.tl[BPF_TRAMP_FEXIT];

		fexit->nr_nodes = 0;
		for (i = 0; i < r->nr_links; i++) {
			struct bpf_tramp_link *l = &sf_o.links[i];

			if (r->link_kind[i] == SF_LINK_FEXIT) {
				sf_add(fexit, &l->node);
			} else if (r->link_kind[i] == SF_LINK_FSESSION) {
				l->fexit.link = &l->link;
				l->fexit.cookie = r->link_cookie[i];
				sf_add(fexit, &l->fexit);
			}
		}
	}
#endif
	return 0;
}

/* ---- 7.x: skips recorded during the emit pass, and the detach poke ---------------------- */
struct sf_skip {
	uint32_t link;
	uint64_t nop, target;
};
static struct sf_skip sf_skips[2 * SF_MAX_LINKS];
static int sf_nskips;
static bool sf_recording;

void sf_record_skip(const struct bpf_prog *prog, void *nop, void *target)
{
	if (!sf_recording || sf_nskips >= (int)(sizeof(sf_skips) / sizeof(sf_skips[0])))
		return;
	sf_skips[sf_nskips].link = (uint32_t)(prog - sf_o.progs);
	sf_skips[sf_nskips].nop = (u64)(uintptr_t)nop;
	sf_skips[sf_nskips].target = (u64)(uintptr_t)target;
	sf_nskips++;
}

int sf_tramp_skips(uint32_t *links, uint64_t *nops, uint64_t *targets, int max)
{
	int i;

	for (i = 0; i < sf_nskips && i < max; i++) {
		links[i] = sf_skips[i].link;
		nops[i] = sf_skips[i].nop;
		targets[i] = sf_skips[i].target;
	}
	return sf_nskips;
}

#if !SF_JIT_TRAMP_SKIP && SF_POKE_API == 2
/* kernel/bpf/trampoline.c's __weak default, for a tree whose JIT does not override it */
int arch_bpf_trampoline_skip(void *nop, void *target)
{
	return bpf_arch_text_poke(nop, BPF_MOD_NOP, BPF_MOD_JUMP, NULL, target);
}
#elif !SF_JIT_TRAMP_SKIP
/* 6.x: images are retired through ip_after_call; there is no per-program skip */
int arch_bpf_trampoline_skip(void *nop, void *target)
{
	(void)nop;
	(void)target;
	return -ENOTSUPP;
}
#endif

int sf_tramp_skip(uint64_t nop, uint8_t site[8], uint64_t target)
{
	int ret;

	sf_msg[0] = '\0';
	sf_poke_ip = nop;
	sf_poke_site = site;
	ret = arch_bpf_trampoline_skip((void *)(uintptr_t)nop, (void *)(uintptr_t)target);
	sf_poke_site = NULL;
	return ret;
}

static int sf_check_mapped(int ret)
{
	if (ret >= 0 && sf_unmapped) {
		sf_log("sledfuzz: the JIT emitted a host pointer the wrapper does not map");
		return -EINVAL;
	}
	return ret;
}

int sf_tramp_size(const struct sf_req *req)
{
	int ret = sf_build(req);

	if (ret)
		return ret;
	ret = arch_bpf_trampoline_size(&sf_o.m, req->flags, sf_o.tl, (void *)(uintptr_t)req->func_addr);
	return sf_check_mapped(ret);
}

int sf_tramp_emit(const struct sf_req *req, uint64_t image_addr, uint8_t *out, uint32_t out_len,
		  uint32_t *used, uint64_t *ip_after_call, uint64_t *ip_epilogue)
{
	struct bpf_tramp_image im2 = { 0 };
	struct rv_jit_context ctx = { 0 };
	void *func = (void *)(uintptr_t)req->func_addr;
	u8 *scratch;
	int ret = sf_build(req);

	*used = 0;
	*ip_after_call = 0;
	*ip_epilogue = 0;
	if (ret)
		return ret;
	memset(out, 0, out_len);
	sf_copy_kaddr = image_addr;
	sf_copy_out = out;
	sf_copy_len = out_len;
	sf_nskips = 0;
	sf_recording = true;
	ret = arch_prepare_bpf_trampoline(&sf_o.im, (void *)(uintptr_t)image_addr,
					  (void *)(uintptr_t)(image_addr + out_len), &sf_o.m,
					  req->flags, sf_o.tl, func);
	sf_copy_out = NULL;
	sf_recording = false;
	ret = sf_check_mapped(ret);
	if (ret < 0)
		return ret;
	*ip_after_call = (u64)(uintptr_t)sf_o.im.ip_after_call;
	*ip_epilogue = (u64)(uintptr_t)sf_o.im.ip_epilogue;

	/* The emitted length: the same request through the file's own core once more, into a
	 * scratch buffer at the same RO address; its bytes must equal what was copied out. */
	scratch = sf_kvmalloc(out_len);
	if (!scratch)
		return -ENOMEM;
	sf_kmap_add(&im2, req->im_addr);
	ctx.insns = (u16 *)scratch;
	ctx.ro_insns = (u16 *)(uintptr_t)image_addr;
	ret = __arch_prepare_bpf_trampoline(&im2, &sf_o.m, sf_o.tl, func, req->flags, &ctx);
	if (ret >= 0) {
		*used = (u32)ninsns_rvoff(ctx.ninsns);
		if (*used > out_len || (memcmp)(scratch, out, *used)) {
			sf_log("sledfuzz: the emit pass is not reproducible");
			ret = -EINVAL;
		}
	}
	free(scratch);
	return ret < 0 ? ret : (int)out_len;
}

int sf_text_poke(uint64_t ip, uint8_t site[8], int old_kind, int new_kind, uint64_t old_addr,
		 uint64_t new_addr)
{
	void *old = old_kind == SF_POKE_NOP ? NULL : (void *)(uintptr_t)old_addr;
	void *new = new_kind == SF_POKE_NOP ? NULL : (void *)(uintptr_t)new_addr;
	int ret;

	sf_msg[0] = '\0';
	if (old_kind < SF_POKE_NOP || old_kind > SF_POKE_JUMP || new_kind < SF_POKE_NOP ||
	    new_kind > SF_POKE_JUMP) {
		sf_log("sledfuzz: bad poke kind");
		return -EINVAL;
	}
	sf_poke_ip = ip;
	sf_poke_site = site;
#if SF_POKE_API == 2
	{
		static const enum bpf_text_poke_type kinds[] = {
			[SF_POKE_NOP] = BPF_MOD_NOP,
			[SF_POKE_CALL] = BPF_MOD_CALL,
			[SF_POKE_JUMP] = BPF_MOD_JUMP,
		};
		ret = bpf_arch_text_poke((void *)(uintptr_t)ip, kinds[old_kind], kinds[new_kind], old,
					 new);
	}
#else
	/* One type for both sides; a NULL address stands for the nops. A call<->jump change has
	 * no spelling in this API. */
	if (old_kind != SF_POKE_NOP && new_kind != SF_POKE_NOP && old_kind != new_kind) {
		sf_log("sledfuzz: this tree's bpf_arch_text_poke has one poke type for both sides");
		ret = -EINVAL;
	} else {
		int kind = old_kind != SF_POKE_NOP ? old_kind : new_kind;

		ret = bpf_arch_text_poke((void *)(uintptr_t)ip,
					 kind == SF_POKE_JUMP ? BPF_MOD_JUMP : BPF_MOD_CALL, old, new);
	}
#endif
	sf_poke_site = NULL;
	return ret;
}
