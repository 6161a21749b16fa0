/* sledfuzz shim: <asm/text-patching.h> (7.x name of asm/patch.h) — everything lives in sf_kernel.h. */
#include "sf_kernel.h"
