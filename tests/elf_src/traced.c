/* Traced functions modelled on the kernel's BPF selftest triggers (bpf_fentry_test*,
 * bpf_testmod_test_struct_arg_*): integer and pointer arguments, 16-byte struct arguments,
 * side effects through pointers, calls to other functions, frameless leaves, and many live
 * values across a call (so callee-saved registers are used). No headers: kernel-style types. */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef long s64;

struct pair { u64 a; u64 b; };          /* 16 bytes: two slots */
struct small { u32 x; u16 y; u8 z; };  /* 8 bytes: one slot */

int sink_counter;

__attribute__((noinline)) int st_test1(int a) { return a + 1; }

__attribute__((noinline)) int st_test2(int a, u64 b) { return a + b; }

__attribute__((noinline)) int st_test3(char a, int b, u64 c) { return a + b + c; }

__attribute__((noinline)) int st_test4(void *a, char b, int c, u64 d) { return (long)a + b + c + d; }

__attribute__((noinline)) int st_test5(u64 a, void *b, short c, int d, u64 e) { return a + (long)b + c + d + e; }

__attribute__((noinline)) int st_test6(u64 a, void *b, short c, int d, void *e, u64 f)
{
	return a + (long)b + c + d + (long)e + f;
}

__attribute__((noinline)) u64 st_test8(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f, u64 g, u64 h)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h;
}

__attribute__((noinline)) u64 st_test10(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f, u64 g, u64 h,
					u64 i, u64 j)
{
	return a + b + c + d + e + f + g + h + 9 * i + 10 * j;
}

__attribute__((noinline)) s64 st_test12(s64 a, s64 b, s64 c, s64 d, s64 e, s64 f, s64 g, s64 h,
					s64 i, s64 j, s64 k, s64 l)
{
	return a - b + c - d + e - f + g - h + i - j + k - l;
}

__attribute__((noinline)) u64 st_struct_arg1(u64 a, struct pair p, u64 c) { return a + p.a + 2 * p.b + c; }

__attribute__((noinline)) u64 st_struct_arg2(struct pair p, struct pair q, u64 c)
{
	return p.a ^ p.b ^ q.a ^ q.b ^ c;
}

__attribute__((noinline)) u64 st_struct_small(struct small s, u64 c) { return s.x + s.y + s.z + c; }

__attribute__((noinline)) int st_store(u64 *p, u64 v)
{
	*p = v;
	return 7;
}

__attribute__((noinline)) s8 st_ret_s8(int a) { return (s8)(a * 3); }

__attribute__((noinline)) u16 st_ret_u16(u64 a) { return (u16)(a + 0x1234); }

__attribute__((noinline)) s32 st_ret_s32(u64 a, u64 b) { return (s32)(a - b); }

__attribute__((noinline)) u64 st_leaf(u64 a, u64 b) { return (a << 3) ^ b; }

/* non-leaf: calls another traced function */
__attribute__((noinline)) u64 st_calls(u64 a, u64 b) { return st_leaf(a, b) + st_test1((int)a) + 1; }

/* many values live across a call: the compiler keeps them in s-registers */
__attribute__((noinline)) u64 st_saved(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f)
{
	u64 x = a * 3, y = b * 5, z = c * 7, w = d * 11, v = e * 13, u = f * 17;
	u64 r = st_leaf(a ^ f, b ^ e);
	sink_counter++;
	return r + x + y + z + w + v + u;
}
