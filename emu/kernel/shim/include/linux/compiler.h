/* sledfuzz shim: <linux/compiler.h> as the uapi headers see it. */
#include "sf_kernel.h"
