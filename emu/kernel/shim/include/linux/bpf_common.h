/* sledfuzz shim: <linux/bpf_common.h> — the tree's own uapi header. */
#include <uapi/linux/bpf_common.h>
