/*
 * codec.h -- bounds-checked cursors over wire bytes.
 *
 * Nothing else in libmegaki reads or writes packet bytes by pointer
 * arithmetic: readers fail (and stay failed) on the first read past the
 * end, writers on the first write past capacity, so a parser can read a
 * whole message and check the cursor once.
 */
#ifndef MK_CODEC_H
#define MK_CODEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct mk_rd {
    const uint8_t *p, *end;
    int bad; /* sticky: a read ran past the end */
} mk_rd;

typedef struct mk_wr {
    uint8_t *p, *start, *end;
    int bad; /* sticky: a write ran past capacity */
} mk_wr;

void mk_rd_init(mk_rd *r, const uint8_t *p, size_t len);
uint8_t mk_rd_u8(mk_rd *r);
uint16_t mk_rd_u16(mk_rd *r);
uint32_t mk_rd_u32(mk_rd *r);
uint64_t mk_rd_u64(mk_rd *r);
/* Borrow n bytes (NULL, and the reader marked bad, if fewer remain). */
const uint8_t *mk_rd_bytes(mk_rd *r, size_t n);
/* Copy n bytes into dst (zeros on failure). */
void mk_rd_copy(mk_rd *r, uint8_t *dst, size_t n);
/* A u16-length-prefixed block: *out borrows it, *len its length. */
const uint8_t *mk_rd_block16(mk_rd *r, size_t *len);
size_t mk_rd_left(const mk_rd *r);
/* 1 if no read failed and every byte was consumed. */
int mk_rd_done(const mk_rd *r);

void mk_wr_init(mk_wr *w, uint8_t *p, size_t cap);
void mk_wr_u8(mk_wr *w, uint8_t v);
void mk_wr_u16(mk_wr *w, uint16_t v);
void mk_wr_u32(mk_wr *w, uint32_t v);
void mk_wr_u64(mk_wr *w, uint64_t v);
void mk_wr_bytes(mk_wr *w, const uint8_t *p, size_t n);
/* Reserve n bytes to fill later; NULL on overflow. */
uint8_t *mk_wr_reserve(mk_wr *w, size_t n);
size_t mk_wr_len(const mk_wr *w);

/* Store helpers for back-patching reserved fields. */
void mk_put_u16(uint8_t *p, uint16_t v);
void mk_put_u32(uint8_t *p, uint32_t v);
void mk_put_u64(uint8_t *p, uint64_t v);
uint16_t mk_get_u16(const uint8_t *p);
uint32_t mk_get_u32(const uint8_t *p);

/* Length of the longest prefix of p[0..n) that is well-formed UTF-8 (RFC
 * 3629: no overlong forms, no surrogates, nothing above U+10FFFF); n if it
 * all is. The text of an ERROR record must be (§5.5). */
size_t mk_utf8_valid_len(const uint8_t *p, size_t n);

#endif
