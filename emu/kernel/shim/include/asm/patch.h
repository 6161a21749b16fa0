/* sledfuzz shim: <asm/patch.h> — everything lives in sf_kernel.h. */
#include "sf_kernel.h"
