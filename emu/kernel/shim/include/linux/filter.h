/* sledfuzz shim: <linux/filter.h> — the tree's own uapi header, then the shim's kernel side. */
#include <uapi/linux/filter.h>
#include "sf_kernel.h"
