/* JPEG and PNG decoding to RGB8 with libjpeg-turbo and libpng. Both libraries report errors by longjmp, so
 * every function that calls into them sets its own jump point, and whatever must be freed after a jump
 * lives in the nb_image_file rather than in locals. */
#include "datasets/image_decode.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_JPEG = 1, KIND_PNG = 2 };

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_errors;

struct nb_image_file {
    int kind;
    FILE *fp;
    unsigned char *buf;   /* pixels being decoded (freed on error) */
    png_bytep *rows;
    struct jpeg_decompress_struct jpg;
    jpeg_errors jerr;
    bool jpg_live;
    png_structp png;
    png_infop info;
    char png_msg[200];
};

static void jpeg_error_exit(j_common_ptr c) {
    jpeg_errors *e = (jpeg_errors *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jump, 1);
}

/* A file that ends early decodes as grey in libjpeg, with only a warning: refuse it, as PIL does. Other
 * warnings (extraneous bytes before a marker, common in ImageNet) leave a usable image and are ignored. */
static void jpeg_message(j_common_ptr c, int level) {
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit(c);
}

static void png_error_fn(png_structp png, png_const_charp msg) {
    nb_image_file *f = png_get_error_ptr(png);
    snprintf(f->png_msg, sizeof f->png_msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void release(nb_image_file *f) {
    if (f->jpg_live) jpeg_destroy_decompress(&f->jpg);
    if (f->png) png_destroy_read_struct(&f->png, f->info ? &f->info : NULL, NULL);
    if (f->fp) fclose(f->fp);
    free(f->buf);
    free(f->rows);
    free(f);
}

void nb_image_close(nb_image_file *f) {
    if (f) release(f);
}

void nb_image_free(nb_image *im) {
    free(im->rgb);
    im->rgb = NULL;
}

/* The header of a JPEG (0) or PNG; on failure err is filled and f still needs releasing. Separate functions,
 * so that nothing a longjmp returns past is a modified local. */
static int open_jpeg(nb_image_file *f, int *w, int *h, char *err, size_t errn) {
    f->kind = KIND_JPEG;
    f->jpg.err = jpeg_std_error(&f->jerr.pub);
    f->jerr.pub.error_exit = jpeg_error_exit;
    f->jerr.pub.emit_message = jpeg_message;
    if (setjmp(f->jerr.jump)) {
        snprintf(err, errn, "broken JPEG: %s", f->jerr.msg);
        return -1;
    }
    jpeg_create_decompress(&f->jpg);
    f->jpg_live = true;
    jpeg_stdio_src(&f->jpg, f->fp);
    /* libjpeg's own buffers (a progressive file's coefficients) stay within what the pixel limit implies */
    f->jpg.mem->max_memory_to_use = (long)NB_IMAGE_MAX_PIXELS * 8;
    jpeg_read_header(&f->jpg, TRUE);
    if (f->jpg.jpeg_color_space == JCS_CMYK || f->jpg.jpeg_color_space == JCS_YCCK) {
        snprintf(err, errn, "CMYK JPEG (not supported)");
        return -1;
    }
    *w = (int)f->jpg.image_width;
    *h = (int)f->jpg.image_height;
    return 0;
}

static int open_png(nb_image_file *f, int *w, int *h, char *err, size_t errn) {
    f->kind = KIND_PNG;
    f->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, f, png_error_fn, png_warning_fn);
    f->info = f->png ? png_create_info_struct(f->png) : NULL;
    if (!f->info) {
        snprintf(err, errn, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(f->png))) {
        snprintf(err, errn, "broken PNG: %s", f->png_msg);
        return -1;
    }
    png_init_io(f->png, f->fp);
    png_read_info(f->png, f->info);
    *w = (int)png_get_image_width(f->png, f->info);
    *h = (int)png_get_image_height(f->png, f->info);
    return 0;
}

nb_image_file *nb_image_open(const char *path, int *w, int *h, char *err, size_t errn) {
    nb_image_file *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    f->fp = fopen(path, "rb");
    unsigned char magic[8] = {0};
    int rc = -1;
    if (!f->fp || fread(magic, 1, 8, f->fp) != 8) snprintf(err, errn, f->fp ? "too short to be an image" : "cannot open");
    else if (rewind(f->fp), magic[0] == 0xFF && magic[1] == 0xD8) rc = open_jpeg(f, w, h, err, errn);
    else if (!png_sig_cmp(magic, 0, 8)) rc = open_png(f, w, h, err, errn);
    else snprintf(err, errn, "neither a JPEG nor a PNG file");
    /* a header can claim any size in a few bytes: refuse what no data set needs before its memory is asked for */
    if (rc == 0 && ((int64_t)*w * *h > NB_IMAGE_MAX_PIXELS || *w <= 0 || *h <= 0)) {
        snprintf(err, errn, "%dx%d pixels: outside the %d-megapixel limit of an image nibble decodes", *w, *h,
                 NB_IMAGE_MAX_PIXELS >> 20);
        rc = -1;
    }
    if (rc == 0) return f;
    release(f);
    return NULL;
}

static int decode_jpeg(nb_image_file *f, double min_scale, nb_image *out, char *err, size_t errn) {
    if (setjmp(f->jerr.jump)) {
        snprintf(err, errn, "broken JPEG: %s", f->jerr.msg);
        release(f);
        return -1;
    }
    int m = 8;
    while (m > 1 && (m - 1) / 8.0 >= min_scale) m--;
    f->jpg.scale_num = (unsigned)m;
    f->jpg.scale_denom = 8;
    f->jpg.out_color_space = JCS_RGB;
    jpeg_start_decompress(&f->jpg);
    int w = (int)f->jpg.output_width, h = (int)f->jpg.output_height;
    f->buf = malloc((size_t)w * h * 3);
    if (!f->buf) {
        snprintf(err, errn, "out of memory for %dx%d pixels", w, h);
        release(f);
        return -1;
    }
    while (f->jpg.output_scanline < f->jpg.output_height) {
        JSAMPROW row = f->buf + (size_t)f->jpg.output_scanline * w * 3;
        jpeg_read_scanlines(&f->jpg, &row, 1);
    }
    jpeg_finish_decompress(&f->jpg);
    out->w = w;
    out->h = h;
    out->rgb = f->buf;
    f->buf = NULL;
    release(f);
    return 0;
}

static int decode_png(nb_image_file *f, nb_image *out, char *err, size_t errn) {
    png_structp png = f->png;
    png_infop info = f->info;
    if (setjmp(png_jmpbuf(png))) {
        snprintf(err, errn, "broken PNG: %s", f->png_msg);
        release(f);
        return -1;
    }
    int ct = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png); /* the high byte */
    if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        snprintf(err, errn, "PNG of an unexpected format (colour type %d, %d bits)", ct, depth);
        release(f);
        return -1;
    }
    f->buf = malloc((size_t)w * h * 3);
    f->rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!f->buf || !f->rows) {
        snprintf(err, errn, "out of memory for %dx%d pixels", w, h);
        release(f);
        return -1;
    }
    for (int y = 0; y < h; y++) f->rows[y] = f->buf + (size_t)y * w * 3;
    png_read_image(png, f->rows);
    png_read_end(png, NULL);
    out->w = w;
    out->h = h;
    out->rgb = f->buf;
    f->buf = NULL;
    release(f);
    return 0;
}

int nb_image_decode(nb_image_file *f, double min_scale, nb_image *out, char *err, size_t errn) {
    out->rgb = NULL;
    return f->kind == KIND_JPEG ? decode_jpeg(f, min_scale, out, err, errn) : decode_png(f, out, err, errn);
}
