/* sledfuzz shim: <linux/types.h> as the uapi headers see it — see sf_kernel.h. */
#include "sf_types.h"
