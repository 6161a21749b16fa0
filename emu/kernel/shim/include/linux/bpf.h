/* sledfuzz shim: <linux/bpf.h> — the tree's own uapi header, then the shim's kernel side. */
#include <uapi/linux/bpf.h>
#include "sf_kernel.h"
