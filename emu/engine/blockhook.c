/* Native UC_HOOK_BLOCK callback for emu/engine/unicorn_engine.py (built at first use, loaded
 * with ctypes). It does what the engine's Python block hook does, without a Python call per
 * block: keep a running count of the instructions of the blocks entered, and stop before the
 * first block that would take the count to the limit. Instruction counts are cached per
 * (address, size) like the Python dict; `pages` lists the pages of every block entered or counted
 * since the engine last looked (it keeps them as "code pages"), and the engine drops the counts of
 * a range it rewrites (`bh_drop_range`), so the cache has the same lifetime as before.
 * At a host call it reads x1-x31 once (`xregs`) for the engine's Python callback, which reads and
 * writes registers there; the writes (`xdirty`) go back to the CPU when the callback returns.
 * The layout of bh_state's leading public fields is mirrored by a ctypes Structure. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int (*mem_read_fn)(void *uc, uint64_t addr, void *buf, uint64_t size);
typedef int (*emu_stop_fn)(void *uc);
typedef void (*code_fn)(void *uc, uint64_t addr, uint32_t size, void *user_data);
typedef int (*reg_fn)(void *uc, int regid, void *value);

typedef struct {
    uint64_t addr;
    uint64_t size;
    uint64_t epoch; /* run in which the block was last recorded in runkeys */
    uint32_t n;
    uint32_t used; /* 0 empty, 1 full, 2 deleted */
} bh_entry;

typedef struct {
    /* public (mirrored in Python) */
    uint64_t steps;    /* instructions in the whole blocks entered so far */
    uint64_t limit;    /* stop at a block that would take steps to this */
    uint64_t over;     /* stopped at the budget */
    uint64_t failed;   /* out of memory: stopped */
    uint64_t has_last; /* a block was entered this run */
    uint64_t last_addr;
    uint64_t last_size;
    uint64_t epoch;    /* bumped by the engine per run */
    uint64_t npages;   /* pages of the blocks entered or counted since the engine reset npages */
    uint64_t *pages;
    uint64_t nrun;     /* distinct (addr, size) pairs entered this run */
    uint64_t *runkeys;
    uint64_t host_done;    /* set by the engine's host callback: return to ra now */
    uint64_t host_ret_set; /* ... and write host_ret to a0 first */
    uint64_t host_ret;
    uint64_t watch_lo, watch_hi; /* record crossings of [lo, hi) (none when hi <= lo) */
    uint64_t ncross;             /* crossings this run: (from start, from end, to) triples */
    uint64_t *cross;
    uint64_t xregs[32]; /* x0-x31 at the host call in progress (x0 reads 0) */
    uint64_t xdirty;    /* bit r: the callback wrote xregs[r] */
    /* private */
    mem_read_fn mem_read;
    emu_stop_fn emu_stop;
    uint64_t cappages, caprun, capcross;
    bh_entry *tab;
    uint64_t cap, fill; /* fill counts full and deleted slots */
    uint64_t *hosts;
    uint64_t nhosts;
    code_fn host_cb; /* the engine's host-call callback (a ctypes function pointer) */
    reg_fn reg_read, reg_write;
    int reg_a0, reg_ra, reg_pc;
} bh_state;

static uint64_t mix(uint64_t addr, uint64_t size) {
    uint64_t h = addr * 0x9E3779B97F4A7C15ull ^ (size + 0x632BE59BD9B4E019ull);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

void bh_free(bh_state *st) {
    if (!st)
        return;
    free(st->tab);
    free(st->pages);
    free(st->runkeys);
    free(st->hosts);
    free(st->cross);
    free(st);
}

bh_state *bh_new(void *mem_read, void *emu_stop) {
    bh_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->mem_read = (mem_read_fn)mem_read;
    st->emu_stop = (emu_stop_fn)emu_stop;
    st->cap = 1024;
    st->tab = calloc(st->cap, sizeof *st->tab);
    st->cappages = st->caprun = 256;
    st->pages = malloc(st->cappages * sizeof(uint64_t));
    st->runkeys = malloc(2 * st->caprun * sizeof(uint64_t));
    st->capcross = 64;
    st->cross = malloc(3 * st->capcross * sizeof(uint64_t));
    if (!st->tab || !st->pages || !st->runkeys || !st->cross) {
        bh_free(st);
        return NULL;
    }
    return st;
}

static bh_entry *find(bh_state *st, uint64_t addr, uint64_t size) {
    uint64_t mask = st->cap - 1, i = mix(addr, size) & mask;
    for (;;) {
        bh_entry *e = &st->tab[i];
        if (e->used == 0)
            return NULL;
        if (e->used == 1 && e->addr == addr && e->size == size)
            return e;
        i = (i + 1) & mask;
    }
}

static int grow(bh_state *st) {
    uint64_t live = 0;
    for (uint64_t i = 0; i < st->cap; i++)
        live += st->tab[i].used == 1;
    uint64_t ncap = st->cap;
    while (live * 4 >= ncap)
        ncap *= 2;
    bh_entry *nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -1;
    for (uint64_t i = 0; i < st->cap; i++) {
        bh_entry *e = &st->tab[i];
        if (e->used != 1)
            continue;
        uint64_t j = mix(e->addr, e->size) & (ncap - 1);
        while (nt[j].used)
            j = (j + 1) & (ncap - 1);
        nt[j] = *e;
    }
    free(st->tab);
    st->tab = nt;
    st->cap = ncap;
    st->fill = live;
    return 0;
}

static int push(uint64_t **buf, uint64_t *cap, uint64_t *n, uint64_t addr, uint64_t size) {
    if (*n == *cap) {
        uint64_t *nb = realloc(*buf, 4 * *cap * sizeof(uint64_t));
        if (!nb)
            return -1;
        *buf = nb;
        *cap *= 2;
    }
    (*buf)[2 * *n] = addr;
    (*buf)[2 * *n + 1] = size;
    (*n)++;
    return 0;
}

/* Note the pages of [addr, addr + size + 4): what the engine counts as pages code ran from
 * (a block's last instruction may reach 4 bytes past its size). */
static int push_pages(bh_state *st, uint64_t addr, uint64_t size) {
    for (uint64_t p = addr >> 12; p <= (addr + size + 3) >> 12; p++) {
        if (st->npages && st->pages[st->npages - 1] == p)
            continue;
        if (st->npages == st->cappages) {
            uint64_t *nb = realloc(st->pages, 2 * st->cappages * sizeof(uint64_t));
            if (!nb)
                return -1;
            st->pages = nb;
            st->cappages *= 2;
        }
        st->pages[st->npages++] = p;
    }
    return 0;
}

/* A transfer of control into or out of the watched region: (from start, from end, to). */
static int cross(bh_state *st, uint64_t addr) {
    int in = addr >= st->watch_lo && addr < st->watch_hi;
    int was = st->has_last && st->last_addr >= st->watch_lo && st->last_addr < st->watch_hi;
    if (in == was)
        return 0;
    if (st->ncross == st->capcross) {
        uint64_t *nb = realloc(st->cross, 6 * st->capcross * sizeof(uint64_t));
        if (!nb)
            return -1;
        st->cross = nb;
        st->capcross *= 2;
    }
    uint64_t *t = &st->cross[3 * st->ncross++];
    t[0] = st->has_last ? st->last_addr : 0;
    t[1] = st->has_last ? st->last_addr + st->last_size : 0;
    t[2] = addr;
    return 0;
}

static bh_entry *insert(bh_state *st, uint64_t addr, uint64_t size, uint32_t n) {
    if ((st->fill + 1) * 2 > st->cap && grow(st) != 0)
        return NULL;
    if (push_pages(st, addr, size) != 0)
        return NULL;
    uint64_t mask = st->cap - 1, i = mix(addr, size) & mask;
    while (st->tab[i].used == 1)
        i = (i + 1) & mask;
    bh_entry *e = &st->tab[i];
    if (e->used == 0)
        st->fill++;
    e->addr = addr;
    e->size = size;
    e->n = n;
    e->epoch = 0;
    e->used = 1;
    return e;
}

static int is_host(const bh_state *st, uint64_t addr) {
    for (uint64_t i = 0; i < st->nhosts; i++)
        if (st->hosts[i] == addr)
            return 1;
    return 0;
}

/* Instructions in [lo, hi) decoded by length from memory (0 when unreadable), as the engine's
 * _count_range: a trailing partial instruction counts. */
static uint32_t count_range(bh_state *st, void *uc, uint64_t lo, uint64_t hi) {
    if (hi <= lo)
        return 0;
    uint64_t len = hi - lo;
    unsigned char small[4096];
    unsigned char *code = len <= sizeof small ? small : malloc(len);
    if (!code)
        return 0;
    uint32_t n = 0;
    if (st->mem_read(uc, lo, code, len) == 0) {
        for (uint64_t i = 0; i < len; n++)
            i += (code[i] & 3) != 3 ? 2 : 4;
    }
    if (code != small)
        free(code);
    return n;
}

static bh_entry *lookup(bh_state *st, void *uc, uint64_t addr, uint64_t size) {
    bh_entry *e = find(st, addr, size);
    if (e)
        return e;
    uint32_t n = is_host(st, addr) ? 1 : count_range(st, uc, addr, addr + size);
    return insert(st, addr, size, n);
}

/* The engine's _block_insns: cached count of a block (inserted when new); -1 out of memory. */
int64_t bh_count(bh_state *st, void *uc, uint64_t addr, uint64_t size) {
    bh_entry *e = lookup(st, uc, addr, size);
    return e ? (int64_t)e->n : -1;
}

void bh_block(void *uc, uint64_t addr, uint32_t size, void *user_data) {
    bh_state *st = user_data;
    bh_entry *e = lookup(st, uc, addr, size);
    if (!e) {
        st->failed = 1;
        st->emu_stop(uc);
        return;
    }
    uint64_t steps = st->steps + e->n;
    if (steps >= st->limit) {
        /* would use up the budget: stop before the block runs (see the engine's _on_block) */
        st->over = 1;
        st->emu_stop(uc);
        return;
    }
    st->steps = steps;
    if (st->watch_hi > st->watch_lo && cross(st, addr) != 0) {
        st->failed = 1;
        st->emu_stop(uc);
        return;
    }
    st->has_last = 1;
    st->last_addr = addr;
    st->last_size = size;
    if (e->epoch != st->epoch) {
        e->epoch = st->epoch;
        if (push(&st->runkeys, &st->caprun, &st->nrun, addr, size) != 0 || push_pages(st, addr, size) != 0) {
            st->failed = 1;
            st->emu_stop(uc);
        }
    }
}

/* Forget the count of every block overlapping [lo, hi) (its memory was rewritten or unmapped). */
void bh_drop_range(bh_state *st, uint64_t lo, uint64_t hi) {
    for (uint64_t i = 0; i < st->cap; i++) {
        bh_entry *e = &st->tab[i];
        if (e->used == 1 && e->addr < hi && lo < e->addr + (e->size ? e->size : 1))
            e->used = 2;
    }
}

void bh_clear(bh_state *st) {
    memset(st->tab, 0, st->cap * sizeof *st->tab);
    st->fill = 0;
    st->npages = 0;
}

int bh_set_hosts(bh_state *st, const uint64_t *addrs, uint64_t n) {
    uint64_t *h = malloc((n ? n : 1) * sizeof(uint64_t));
    if (!h)
        return -1;
    memcpy(h, addrs, n * sizeof(uint64_t));
    free(st->hosts);
    st->hosts = h;
    st->nhosts = n;
    return 0;
}

void bh_set_host_cb(bh_state *st, void *cb, void *reg_read, void *reg_write, int a0, int ra, int pc) {
    st->host_cb = (code_fn)cb;
    st->reg_read = (reg_fn)reg_read;
    st->reg_write = (reg_fn)reg_write;
    st->reg_a0 = a0;
    st->reg_ra = ra;
    st->reg_pc = pc;
}

/* One UC_HOOK_CODE over [lowest, highest] host-call address instead of one hook per address
 * (unicorn scans every code hook for every instruction it translates): only the registered
 * host-call addresses reach the engine's callback. */
void bh_host(void *uc, uint64_t addr, uint32_t size, void *user_data) {
    bh_state *st = user_data;
    if (!st->host_cb || !is_host(st, addr))
        return;
    st->host_done = st->host_ret_set = 0;
    /* x1-x31 for the callback (reg_a0 is UC_RISCV_REG_X0 + 10) */
    int x0 = st->reg_a0 - 10;
    st->xregs[0] = 0;
    for (int r = 1; r < 32; r++)
        st->reg_read(uc, x0 + r, &st->xregs[r]);
    st->xdirty = 0;
    st->host_cb(uc, addr, size, NULL);
    for (int r = 1; r < 32; r++)
        if (st->xdirty >> r & 1)
            st->reg_write(uc, x0 + r, &st->xregs[r]);
    st->xdirty = 0;
    if (st->host_done) {
        /* what the Python hook does after the host function returned: a0, then pc = ra */
        uint64_t v;
        if (st->host_ret_set) {
            v = st->host_ret;
            st->reg_write(uc, st->reg_a0, &v);
        }
        st->reg_read(uc, st->reg_ra, &v);
        st->reg_write(uc, st->reg_pc, &v);
    }
}
