/* Writers for the synthetic image folders: libjpeg-turbo for the JPEG modes, libpng for the PNG ones, and a
 * procedural picture per class (a hue per class, a textured background, a disc or a bar in the
 * complementary colour at a random place). */
#include "datasets/synth_images.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "core/rng.h"

/* ---- JPEG ---- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
} jerr_t;

static void jpeg_fail(j_common_ptr c) { longjmp(((jerr_t *)c->err)->jump, 1); }

/* Rows converted to the file's colour space (grey, or Adobe-style inverted CMYK) */
static unsigned char *jpeg_rows(const unsigned char *rgb, int w, int h, int comps) {
    unsigned char *out = malloc((size_t)w * h * comps);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        const unsigned char *p = rgb + 3 * i;
        if (comps == 1) {
            out[i] = (unsigned char)((299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000);
        } else if (comps == 4) { /* only ever refused by the reader: the simplest CMY with no black */
            for (int c = 0; c < 3; c++) out[4 * i + c] = (unsigned char)(255 - p[c]);
            out[4 * i + 3] = 0;
        } else {
            memcpy(out + 3 * i, p, 3);
        }
    }
    return out;
}

static int compress_jpeg(FILE *fp, const char *mode, const unsigned char *data, int w, int h, int comps) {
    struct jpeg_compress_struct c;
    jerr_t e;
    c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jpeg_fail;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&c);
        return -1;
    }
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (!strcmp(mode, "jpeg-progressive")) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(data + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return 0;
}

static int write_jpeg(FILE *fp, const char *mode, const unsigned char *rgb, int w, int h) {
    int comps = !strcmp(mode, "jpeg-grey") ? 1 : !strcmp(mode, "jpeg-cmyk") ? 4 : 3;
    unsigned char *data = jpeg_rows(rgb, w, h, comps);
    int rc = compress_jpeg(fp, mode, data, w, h, comps);
    free(data);
    return rc;
}

/* ---- PNG ---- */

typedef struct {
    int type, depth, channels;
    size_t row_bytes;
} png_mode;

static png_mode png_mode_of(const char *mode) {
    png_mode m = {PNG_COLOR_TYPE_RGB, 8, 3, 0};
    if (!strcmp(mode, "png-grey")) m.type = PNG_COLOR_TYPE_GRAY, m.channels = 1;
    if (!strcmp(mode, "png-grey16")) m.type = PNG_COLOR_TYPE_GRAY, m.channels = 1, m.depth = 16;
    if (!strcmp(mode, "png-palette")) m.type = PNG_COLOR_TYPE_PALETTE, m.channels = 1;
    if (!strcmp(mode, "png-rgba")) m.type = PNG_COLOR_TYPE_RGB_ALPHA, m.channels = 4;
    return m;
}

/* The file's samples for each pixel of rgb, in mode m */
static void png_pixels(png_mode m, const unsigned char *rgb, int w, int h, unsigned char *data) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const unsigned char *p = rgb + ((size_t)y * w + x) * 3;
            unsigned char *o = data + (size_t)y * m.row_bytes + (size_t)x * m.channels * (m.depth / 8);
            int grey = (299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000;
            if (m.type == PNG_COLOR_TYPE_GRAY && m.depth == 16) {
                int v = grey * 257 + (x & 7); /* low bits that a 16 -> 8 bit reduction must drop */
                if (v > 65535) v = 65535;
                o[0] = (unsigned char)(v >> 8);
                o[1] = (unsigned char)(v & 255);
            } else if (m.type == PNG_COLOR_TYPE_GRAY) {
                o[0] = (unsigned char)grey;
            } else if (m.type == PNG_COLOR_TYPE_PALETTE) { /* the nearest entry of the 6x7x6 cube below */
                o[0] = (unsigned char)(((p[0] + 25) / 51) * 42 + ((p[1] + 21) / 42) * 6 + (p[2] + 25) / 51);
            } else {
                memcpy(o, p, 3);
                if (m.channels == 4) o[3] = (unsigned char)(x * 255 / (w > 1 ? w - 1 : 1));
            }
        }
}

static int compress_png(FILE *fp, const char *mode, png_mode m, png_bytep *rows, int w, int h) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) return -1;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, m.depth, m.type,
                 !strcmp(mode, "png-interlaced") ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (m.type == PNG_COLOR_TYPE_PALETTE) {
        png_color palette[252];
        for (int i = 0; i < 252; i++)
            palette[i] = (png_color){(png_byte)(i / 42 * 51), (png_byte)(i / 6 % 7 * 42), (png_byte)(i % 6 * 51)};
        png_set_PLTE(png, info, palette, 252);
    }
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

static int write_png(FILE *fp, const char *mode, const unsigned char *rgb, int w, int h) {
    png_mode m = png_mode_of(mode);
    m.row_bytes = (size_t)w * m.channels * (m.depth / 8);
    unsigned char *data = malloc(m.row_bytes * h);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    png_pixels(m, rgb, w, h, data);
    for (int y = 0; y < h; y++) rows[y] = data + (size_t)y * m.row_bytes;
    int rc = compress_png(fp, mode, m, rows, w, h);
    free(data);
    free(rows);
    return rc;
}

int nb_write_image(const char *path, const char *mode, const unsigned char *rgb, int w, int h, char *err, size_t errn) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        snprintf(err, errn, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    int rc = !strncmp(mode, "jpeg", 4) ? write_jpeg(fp, mode, rgb, w, h) : write_png(fp, mode, rgb, w, h);
    if (fclose(fp) != 0) rc = -1;
    if (rc) snprintf(err, errn, "%s: cannot write as %s", path, mode);
    return rc;
}

/* ---- the pictures ---- */

static void hue_rgb(double hue, double sat, double val, unsigned char *out) {
    double c = val * sat, hp = fmod(hue, 360.0) / 60.0, x = c * (1 - fabs(fmod(hp, 2.0) - 1)), m = val - c;
    double r = 0, g = 0, b = 0;
    if (hp < 1) r = c, g = x;
    else if (hp < 2) r = x, g = c;
    else if (hp < 3) g = c, b = x;
    else if (hp < 4) g = x, b = c;
    else if (hp < 5) r = x, b = c;
    else r = c, b = x;
    out[0] = (unsigned char)lround(255 * (r + m));
    out[1] = (unsigned char)lround(255 * (g + m));
    out[2] = (unsigned char)lround(255 * (b + m));
}

static unsigned char *picture(nb_rng *r, int cls, int classes, int w, int h) {
    unsigned char *rgb = malloc((size_t)w * h * 3), bg[3], fg[3];
    double hue = 360.0 * cls / classes;
    hue_rgb(hue, 0.6, 0.8, bg);
    hue_rgb(hue + 180.0, 0.9, 0.9, fg);
    double cx = w * (0.25 + 0.5 * nb_rng_unit(r)), cy = h * (0.25 + 0.5 * nb_rng_unit(r));
    double rad = (w < h ? w : h) * (0.15 + 0.15 * nb_rng_unit(r));
    bool disc = cls % 2 == 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = rgb + ((size_t)y * w + x) * 3;
            double dx = x - cx, dy = y - cy;
            bool in = disc ? dx * dx + dy * dy < rad * rad : fabs(dx) < rad * 1.5 && fabs(dy) < rad * 0.4;
            int tex = (int)(24 * sin(x * 0.3 + cls) * cos(y * 0.2)) + (int)(nb_rng_below(r, 17)) - 8;
            for (int c = 0; c < 3; c++) {
                int v = (in ? fg[c] : bg[c]) + tex;
                p[c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    return rgb;
}

static int mkdirs(const char *path) {
    char buf[1200];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
}

int nb_synth_image_tree(const char *root, const nb_synth_spec *spec, char *err, size_t errn) {
    static const char *const modes[] = {"jpeg", "jpeg", "jpeg", "jpeg-grey", "jpeg-progressive", "png", "png-grey",
                                        "png-grey16", "png-palette", "png-rgba", "png-interlaced", "jpeg"};
    enum { N_MODES = sizeof modes / sizeof *modes };
    nb_rng r = nb_rng_make(spec->seed, 0x5171);
    char path[1200];
    for (int split = 0; split < 2; split++) {
        int per = split ? spec->val_per_class : spec->train_per_class;
        for (int c = 0; c < spec->classes; c++) {
            snprintf(path, sizeof path, "%s/%s/class%02d", root, split ? "val" : "train", c);
            if (mkdirs(path)) {
                snprintf(err, errn, "%s: cannot create: %s", path, strerror(errno));
                return -1;
            }
            for (int i = 0; i < per; i++) {
                const char *mode = modes[(c * 7 + i) % N_MODES];
                int span = spec->max_side - spec->min_side + 1;
                int w = spec->min_side + (int)nb_rng_below(&r, (uint32_t)span);
                int h = spec->min_side + (int)nb_rng_below(&r, (uint32_t)span);
                unsigned char *rgb = picture(&r, c, spec->classes, w, h);
                snprintf(path, sizeof path, "%s/%s/class%02d/img%04d.%s", root, split ? "val" : "train", c, i,
                         !strncmp(mode, "jpeg", 4) ? (i % 2 ? "JPEG" : "jpg") : "png");
                int rc = nb_write_image(path, mode, rgb, w, h, err, errn);
                free(rgb);
                if (rc) return -1;
            }
        }
    }
    if (!spec->broken) return 0;
    /* the files a loader must survive: a CMYK JPEG, a JPEG cut in half, a .png that is not one */
    int w = 64, h = 48;
    unsigned char *rgb = picture(&r, 0, spec->classes, w, h);
    snprintf(path, sizeof path, "%s/train/class00/zz_cmyk.jpg", root);
    int rc = nb_write_image(path, "jpeg-cmyk", rgb, w, h, err, errn);
    snprintf(path, sizeof path, "%s/train/class00/zz_truncated.jpg", root);
    if (!rc) rc = nb_write_image(path, "jpeg", rgb, w, h, err, errn);
    free(rgb);
    struct stat st;
    if (!rc && (stat(path, &st) || truncate(path, st.st_size / 2))) {
        snprintf(err, errn, "%s: cannot truncate", path);
        rc = -1;
    }
    snprintf(path, sizeof path, "%s/train/class01/zz_not_an_image.png", root);
    FILE *f = rc ? NULL : fopen(path, "wb");
    if (f) {
        fputs("this is text, not a PNG\n", f);
        fclose(f);
    }
    return rc;
}
