/* A caching allocator for device blocks: freed blocks go back to per-size-class free lists instead of the
 * system, so once a training step has run, the next one is served entirely from the lists. The lists live
 * on the host, so the blocks themselves may be device memory the host cannot touch. */
#ifndef NB_POOL_H
#define NB_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"

#define NB_POOL_CLASSES 256

typedef struct {
    void **items;
    size_t n, cap;
} nb_pool_list;

typedef struct {
    void *(*sys_alloc)(void *user, size_t bytes);
    void (*sys_free)(void *user, void *ptr);
    void *user;
    nb_pool_list free[NB_POOL_CLASSES];
    nb_mem_stats stats;
} nb_pool;

void nb_pool_init(nb_pool *p, void *(*sys_alloc)(void *, size_t), void (*sys_free)(void *, void *), void *user);
void *nb_pool_get(nb_pool *p, size_t bytes); /* NULL when the system is out of memory */
void nb_pool_put(nb_pool *p, void *ptr, size_t bytes);
void nb_pool_trim(nb_pool *p); /* hand every free block back to the system */
void nb_pool_destroy(nb_pool *p);
size_t nb_pool_class_bytes(size_t bytes); /* the block size a request of `bytes` receives */

#endif
