/* Pascal VOC detection data: the devkit's layout (<dir>/ImageSets/Main/<split>.txt lists image ids,
 * <dir>/Annotations/<id>.xml describes each image, <dir>/JPEGImages/ holds the pictures), annotations read
 * with libxml2. Boxes stay in VOC's pixel convention (1-based, inclusive corners). An annotation that cannot
 * be read (malformed XML, a box without its four numbers, an inverted box) skips its image, counted and the
 * first one reported; an object of a class not in the list is ignored (training on a subset of the classes),
 * also counted. */
#ifndef NB_VOC_H
#define NB_VOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "detect/boxes.h"

typedef struct {
    int cls; /* index into the class list */
    nb_box box;
    bool difficult;
} nb_voc_object;

typedef struct {
    char *id, *image; /* image: the path of its picture */
    int width, height;
    int n_objects;
    nb_voc_object *objects;
} nb_voc_image;

typedef struct {
    int64_t n;
    nb_voc_image *images;
    int n_classes;
    char **classes;
    int64_t skipped, ignored_objects;
    char first_skip[600];
} nb_voc_set;

extern const char *const nb_voc_classes[20];

/* The class list data.classes names: names separated by commas (spaces trimmed), or NULL / "" for VOC's
 * twenty. NULL after reporting a name listed twice or an empty list; free with nb_voc_free_names. */
char **nb_voc_class_names(nb_ctx *ctx, const char *list, int *n);
void nb_voc_free_names(char **names, int n);

/* splits: "VOC2007/trainval+VOC2012/trainval", each part <dir relative to root>/<split>. classes: names
 * separated by commas, or NULL / "" for VOC's twenty. limit > 0 keeps the first `limit` images. */
int nb_voc_load(nb_ctx *ctx, nb_voc_set *set, const char *root, const char *splits, const char *classes, int64_t limit);
void nb_voc_free(nb_voc_set *set);

/* One annotation file: 0 when read (out filled), 1 when it must be skipped (why says so). */
int nb_voc_read_annotation(const char *path, char *const *classes, int n_classes, nb_voc_image *out,
                           int64_t *ignored, char *why, size_t why_len);

#endif
