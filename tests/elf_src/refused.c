/* Functions a trampoline cannot take (btf_distill_func_proto refuses them), and one that calls an
 * external symbol, and thread-local data (TLS relocations are not supported by the loader). */
struct big { unsigned long w[3]; };
extern unsigned long ext_helper(unsigned long);
__thread int tls_counter;

__attribute__((noinline)) double rf_float(double a) { return a * 2; }
__attribute__((noinline)) unsigned long rf_big(struct big b) { return b.w[0] + b.w[2]; }
__attribute__((noinline)) int rf_variadic(int n, ...) { return n; }
__attribute__((noinline)) unsigned long rf_extern(unsigned long a) { return ext_helper(a) + 1; }
__attribute__((noinline)) int rf_tls(void) { return ++tls_counter; }
