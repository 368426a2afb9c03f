/*
 * limits.c -- see limits.h.
 */
#include "limits.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096

int yugi__addrs_init(yugi_addrs *t)
{
    memset(t, 0, sizeof *t);
    t->nbuckets = NBUCKETS;
    if ((t->buckets = calloc(t->nbuckets, sizeof *t->buckets)) == NULL)
        return MKD_ERR_NOMEM;
    /* A per-process seed keeps an attacker from aiming addresses at one
     * hash chain; it need not be secret-grade. */
    t->seed = (uint32_t)(uintptr_t)t ^ (uint32_t)(uintptr_t)t->buckets;
    for (int k = 0; k < YUGI_BUCKETS; k++)
        yugi__addrs_set(t, k, 0, 1);
    return MKD_OK;
}

void yugi__addrs_set(yugi_addrs *t, int kind, uint32_t rate, uint32_t burst)
{
    t->rate[kind] = rate;
    t->burst[kind] = burst ? burst : 1;
}

void yugi__addrs_free(yugi_addrs *t)
{
    for (size_t i = 0; i < t->nbuckets && t->buckets; i++) {
        yugi_addr *a = t->buckets[i];
        while (a != NULL) {
            yugi_addr *next = a->next;
            free(a);
            a = next;
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

static void key_of(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        key[10] = key[11] = 0xff; /* as a v4-mapped IPv6 address */
        memcpy(key + 12, &s4->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *b = s6->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                           0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0)
            memcpy(key, b, 16); /* a v4 peer on a dual-stack socket */
        else
            memcpy(key, b, 8); /* the /64 */
    }
}

static size_t hash(const yugi_addrs *t, const uint8_t key[16])
{
    uint32_t h = 2166136261u ^ t->seed;
    for (int i = 0; i < 16; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h % t->nbuckets;
}

static void refill(yugi_addrs *t, yugi_bucket *b, int kind, uint64_t now)
{
    if (now > b->stamp_ms) {
        b->tokens += (double)(now - b->stamp_ms) * t->rate[kind] / 1000.0;
        if (b->tokens > t->burst[kind])
            b->tokens = t->burst[kind];
    }
    b->stamp_ms = now;
}

/* Every bucket of a is full again (or has no limit): it carries nothing a
 * fresh entry would not. */
static int refilled(yugi_addrs *t, yugi_addr *a, uint64_t now)
{
    for (int k = 0; k < YUGI_BUCKETS; k++) {
        refill(t, &a->bucket[k], k, now);
        if (t->rate[k] > 0 && a->bucket[k].tokens < t->burst[k])
            return 0;
    }
    return 1;
}

yugi_addr *yugi__addrs_get(yugi_addrs *t, const struct sockaddr *sa,
                           uint64_t now_ms)
{
    uint8_t key[16];
    size_t h;
    yugi_addr *a;

    key_of(sa, key);
    h = hash(t, key);
    for (a = t->buckets[h]; a != NULL; a = a->next)
        if (memcmp(a->key, key, 16) == 0) {
            a->refs++;
            return a;
        }
    if ((a = calloc(1, sizeof *a)) == NULL)
        return NULL;
    memcpy(a->key, key, 16);
    for (int k = 0; k < YUGI_BUCKETS; k++) {
        a->bucket[k].tokens = t->burst[k];
        a->bucket[k].stamp_ms = now_ms;
    }
    a->refs = 1;
    a->next = t->buckets[h];
    t->buckets[h] = a;
    t->count++;
    return a;
}

void yugi__addrs_put(yugi_addrs *t, yugi_addr *a)
{
    (void)t;
    if (a != NULL && a->refs > 0)
        a->refs--;
}

uint32_t yugi__addr_take(yugi_addrs *t, yugi_addr *a, int kind, uint64_t now_ms)
{
    yugi_bucket *b = &a->bucket[kind];
    double wait;

    if (t->rate[kind] <= 0)
        return 0;
    refill(t, b, kind, now_ms);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    wait = (1.0 - b->tokens) * 1000.0 / t->rate[kind];
    return wait < 1.0 ? 1 : (uint32_t)(wait + 0.999);
}

void yugi__addrs_sweep(yugi_addrs *t, uint64_t now_ms)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        yugi_addr **pp = &t->buckets[i];
        while (*pp != NULL) {
            yugi_addr *a = *pp;
            if (a->refs == 0 && refilled(t, a, now_ms)) {
                *pp = a->next;
                free(a);
                t->count--;
                continue;
            }
            pp = &a->next;
        }
    }
}
