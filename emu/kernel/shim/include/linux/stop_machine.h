/* sledfuzz shim: <linux/stop_machine.h> — everything lives in sf_kernel.h. */
#include "sf_kernel.h"
