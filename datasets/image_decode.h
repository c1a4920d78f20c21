/* Decoding one JPEG (libjpeg-turbo) or PNG (libpng) file into 8-bit RGB, in two steps so that the caller can
 * choose what to decode after seeing the size: open reads the header, decode produces the pixels, for JPEG
 * at the smallest DCT scale M/8 that keeps the requested resolution (decoding a 500x375 photo for a 224
 * crop at 4/8 costs a quarter of the full decode). Grey, palette, 16-bit and alpha PNGs become RGB as
 * PIL's convert("RGB") makes them (alpha dropped, 16 bits shifted to 8); grey JPEGs become RGB; CMYK
 * JPEGs, truncated and broken files are refused with a reason. Thread-safe: every call owns its state. */
#ifndef NB_IMAGE_DECODE_H
#define NB_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* Larger images are refused when opened (a header can claim any size in a few bytes) */
#define NB_IMAGE_MAX_PIXELS (64 << 20)

typedef struct {
    int w, h;             /* after decode: the decoded size (the header's size scaled by num/8) */
    unsigned char *rgb;   /* w * h * 3, row-major, malloc'd */
} nb_image;

typedef struct nb_image_file nb_image_file;

/* Opens and reads the header; *w, *h get the full size. NULL with `err` filled when the file cannot be
 * read as a JPEG or PNG (or is a CMYK JPEG, or has more than NB_IMAGE_MAX_PIXELS). */
nb_image_file *nb_image_open(const char *path, int *w, int *h, char *err, size_t errn);
/* Decodes at the smallest scale that keeps at least min_scale of the full resolution (1.0: full size;
 * only JPEG scales, by 1/8 steps). Closes the file. 0, or -1 with err filled (truncated, corrupt). */
int nb_image_decode(nb_image_file *f, double min_scale, nb_image *out, char *err, size_t errn);
void nb_image_close(nb_image_file *f); /* without decoding */
void nb_image_free(nb_image *im);

#endif
