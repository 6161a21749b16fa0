/* sledfuzz shim: <asm/cfi.h> — everything lives in sf_kernel.h. */
#include "sf_kernel.h"
