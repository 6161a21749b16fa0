/* sledfuzz shim: <linux/bitfield.h> — everything lives in sf_kernel.h. */
#include "sf_kernel.h"
