/* Size-class caching pool. Classes: 256 bytes, then four steps per power of two (waste under 25%). */
#include "core/pool.h"

#include <stdlib.h>
#include <string.h>

#include "core/check.h"

static int size_class(size_t bytes, size_t *class_bytes) {
    if (bytes <= 256) {
        *class_bytes = 256;
        return 0;
    }
    int e = 63 - __builtin_clzll((unsigned long long)(bytes - 1)); /* 2^e < bytes <= 2^(e+1) */
    size_t base = (size_t)1 << e, step = base / 4;
    size_t k = (bytes - base + step - 1) / step; /* 1..4 */
    *class_bytes = base + k * step;
    int c = 1 + (e - 8) * 4 + (int)(k - 1);
    return c;
}

size_t nb_pool_class_bytes(size_t bytes) {
    size_t cb;
    size_class(bytes, &cb);
    return cb;
}

void nb_pool_init(nb_pool *p, void *(*sys_alloc)(void *, size_t), void (*sys_free)(void *, void *), void *user) {
    memset(p, 0, sizeof *p);
    p->sys_alloc = sys_alloc;
    p->sys_free = sys_free;
    p->user = user;
}

void *nb_pool_get(nb_pool *p, size_t bytes) {
    size_t cb;
    int c = size_class(bytes, &cb);
    NB_ASSERT(c < NB_POOL_CLASSES);
    nb_pool_list *l = &p->free[c];
    void *ptr;
    if (l->n > 0) {
        ptr = l->items[--l->n];
        p->stats.pool_hits++;
    } else {
        ptr = p->sys_alloc(p->user, cb);
        if (!ptr) return NULL;
        p->stats.sys_allocs++;
        p->stats.bytes_reserved += cb;
    }
    p->stats.bytes_in_use += cb;
    if (p->stats.bytes_in_use > p->stats.peak_in_use) p->stats.peak_in_use = p->stats.bytes_in_use;
    return ptr;
}

void nb_pool_put(nb_pool *p, void *ptr, size_t bytes) {
    if (!ptr) return;
    size_t cb;
    int c = size_class(bytes, &cb);
    nb_pool_list *l = &p->free[c];
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = nb_xrealloc(l->items, l->cap * sizeof(void *));
    }
    l->items[l->n++] = ptr;
    p->stats.bytes_in_use -= cb;
}

void nb_pool_trim(nb_pool *p) {
    for (int c = 0; c < NB_POOL_CLASSES; c++) {
        nb_pool_list *l = &p->free[c];
        for (size_t i = 0; i < l->n; i++) {
            size_t cb = c == 0 ? 256 : 0;
            if (c > 0) {
                int e = (c - 1) / 4 + 8, k = (c - 1) % 4 + 1;
                size_t base = (size_t)1 << e;
                cb = base + (size_t)k * (base / 4);
            }
            p->sys_free(p->user, l->items[i]);
            p->stats.bytes_reserved -= cb;
        }
        l->n = 0;
    }
}

void nb_pool_destroy(nb_pool *p) {
    nb_pool_trim(p);
    for (int c = 0; c < NB_POOL_CLASSES; c++) free(p->free[c].items);
    memset(p->free, 0, sizeof p->free);
}
