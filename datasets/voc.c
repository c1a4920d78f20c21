/* Pascal VOC lists and annotations (see voc.h). */
#include "datasets/voc.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

const char *const nb_voc_classes[20] = {"aeroplane",   "bicycle", "bird",  "boat",      "bottle", "bus",  "car",
                                        "cat",         "chair",   "cow",   "diningtable", "dog",  "horse", "motorbike",
                                        "person",      "pottedplant", "sheep", "sofa",  "train",  "tvmonitor"};

static xmlNode *child(xmlNode *n, const char *name) {
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, name)) return c;
    return NULL;
}

/* the trimmed text of child `name` of n into buf; false when absent or empty */
static bool child_text(xmlNode *n, const char *name, char *buf, size_t len) {
    xmlNode *c = child(n, name);
    if (!c) return false;
    xmlChar *s = xmlNodeGetContent(c);
    if (!s) return false;
    const char *p = (const char *)s;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    snprintf(buf, len, "%s", p);
    xmlFree(s);
    size_t k = strlen(buf);
    while (k && (buf[k - 1] == ' ' || buf[k - 1] == '\t' || buf[k - 1] == '\n' || buf[k - 1] == '\r')) buf[--k] = 0;
    return k > 0;
}

/* a number of pixels: finite and within a million either way (an annotation's sizes and coordinates; a larger
 * one is a broken file, and would not convert to the integers and floats it is stored in) */
static bool child_number(xmlNode *n, const char *name, double *v) {
    char buf[64], *end;
    if (!child_text(n, name, buf, sizeof buf)) return false;
    errno = 0;
    *v = strtod(buf, &end);
    return !errno && *end == 0 && end != buf && fabs(*v) <= 1e6;
}

int nb_voc_read_annotation(const char *path, char *const *classes, int n_classes, nb_voc_image *out,
                           int64_t *ignored, char *why, size_t why_len) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_len, "cannot be opened (%s)", strerror(errno));
        return 1;
    }
    fclose(f);
    xmlParserCtxtPtr px = xmlNewParserCtxt();
    if (!px) {
        snprintf(why, why_len, "out of memory for the XML parser");
        return 1;
    }
    xmlDocPtr doc = xmlCtxtReadFile(px, path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlCtxtGetLastError(px);
        if (e && e->message) {
            snprintf(why, why_len, "not well-formed XML at line %d: %s", e->line, e->message);
            size_t k = strlen(why);
            if (k && why[k - 1] == '\n') why[k - 1] = 0;
        } else {
            snprintf(why, why_len, "cannot be read");
        }
        xmlFreeParserCtxt(px);
        return 1;
    }
    int rc = 1;
    int cap = 0;
    xmlNode *root = xmlDocGetRootElement(doc), *size = child(root, "size");
    double w, h;
    if (!root || strcmp((const char *)root->name, "annotation")) {
        snprintf(why, why_len, "the root element is not <annotation>");
        goto done;
    }
    if (!size || !child_number(size, "width", &w) || !child_number(size, "height", &h) || w < 1 || h < 1) {
        snprintf(why, why_len, "no <size> with a positive <width> and <height>");
        goto done;
    }
    out->width = (int)w, out->height = (int)h;
    char name[256];
    out->image = strdup(child_text(root, "filename", name, sizeof name) ? name : "");
    for (xmlNode *o = root->children; o; o = o->next) {
        if (o->type != XML_ELEMENT_NODE || strcmp((const char *)o->name, "object")) continue;
        if (!child_text(o, "name", name, sizeof name)) {
            snprintf(why, why_len, "an <object> without a <name>");
            goto done;
        }
        int cls = -1;
        for (int c = 0; c < n_classes && cls < 0; c++)
            if (!strcmp(classes[c], name)) cls = c;
        xmlNode *bb = child(o, "bndbox");
        double x1, y1, x2, y2, diff = 0;
        if (!bb || !child_number(bb, "xmin", &x1) || !child_number(bb, "ymin", &y1) || !child_number(bb, "xmax", &x2) ||
            !child_number(bb, "ymax", &y2)) {
            snprintf(why, why_len, "object '%s' has no <bndbox> with numeric xmin, ymin, xmax, ymax", name);
            goto done;
        }
        if (x2 < x1 || y2 < y1) {
            snprintf(why, why_len, "object '%s' has an inverted box (%g, %g, %g, %g)", name, x1, y1, x2, y2);
            goto done;
        }
        if (child(o, "difficult") && !child_number(o, "difficult", &diff)) {
            snprintf(why, why_len, "object '%s' has a <difficult> that is not 0 or 1", name);
            goto done;
        }
        if (cls < 0) {
            if (ignored) (*ignored)++;
            continue;
        }
        if (out->n_objects == cap) {
            cap = cap ? 2 * cap : 8;
            out->objects = nb_xrealloc(out->objects, sizeof(nb_voc_object) * (size_t)cap);
        }
        out->objects[out->n_objects++] = (nb_voc_object){cls, {(float)x1, (float)y1, (float)x2, (float)y2}, diff != 0};
    }
    rc = 0;
done:
    if (rc) {
        free(out->image);
        free(out->objects);
        memset(out, 0, sizeof *out);
    }
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(px);
    return rc;
}

static void free_image(nb_voc_image *im) {
    free(im->id);
    free(im->image);
    free(im->objects);
}

void nb_voc_free(nb_voc_set *set) {
    for (int64_t i = 0; i < set->n; i++) free_image(&set->images[i]);
    free(set->images);
    nb_voc_free_names(set->classes, set->n_classes);
    memset(set, 0, sizeof *set);
}

char **nb_voc_class_names(nb_ctx *ctx, const char *list, int *n) {
    char **names = NULL;
    *n = 0;
    if (!list || !*list) {
        names = nb_xmalloc(sizeof(char *) * 20);
        for (int c = 0; c < 20; c++) names[c] = strdup(nb_voc_classes[c]);
        *n = 20;
        return names;
    }
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        size_t k = strlen(t);
        while (k && t[k - 1] == ' ') t[--k] = 0;
        if (!k) continue;
        bool twice = false;
        for (int c = 0; c < *n && !twice; c++) twice = !strcmp(names[c], t);
        if (twice) {
            NB_FAIL(ctx, "data.classes", "class '%s' is listed twice in '%s'", t, list);
            nb_voc_free_names(names, *n);
            free(copy);
            *n = 0;
            return NULL;
        }
        names = nb_xrealloc(names, sizeof(char *) * (size_t)(*n + 1));
        names[(*n)++] = strdup(t);
    }
    free(copy);
    if (*n == 0) {
        NB_FAIL(ctx, "data.classes", "no class names in '%s'", list);
        free(names);
        return NULL;
    }
    return names;
}

void nb_voc_free_names(char **names, int n) {
    for (int c = 0; c < n; c++) free(names[c]);
    free(names);
}

static int load_split(nb_ctx *ctx, nb_voc_set *set, const char *root, const char *part, int64_t limit, int64_t *cap) {
    const char *slash = strrchr(part, '/');
    NB_REQUIRE(ctx, slash && slash != part && slash[1], -1, part,
               "a VOC split is <dir>/<split>, as in VOC2007/trainval (several joined by '+')");
    char dir[1024], list[1200];
    snprintf(dir, sizeof dir, "%s/%.*s", root, (int)(slash - part), part);
    snprintf(list, sizeof list, "%s/ImageSets/Main/%s.txt", dir, slash + 1);
    FILE *f = fopen(list, "r");
    NB_REQUIRE(ctx, f, -1, list, "cannot open the image list (%s); expected the VOC devkit layout under %s",
               strerror(errno), dir);
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f) && (limit <= 0 || set->n < limit)) {
        lineno++;
        char id[256];
        if (sscanf(line, "%255s", id) != 1) continue;
        char xml[1600], why[400];
        snprintf(xml, sizeof xml, "%s/Annotations/%s.xml", dir, id);
        nb_voc_image im;
        if (nb_voc_read_annotation(xml, set->classes, set->n_classes, &im, &set->ignored_objects, why, sizeof why)) {
            if (!set->skipped++) snprintf(set->first_skip, sizeof set->first_skip, "%.300s: %.290s", xml, why);
            continue;
        }
        char img[1600];
        if (im.image[0]) snprintf(img, sizeof img, "%s/JPEGImages/%s", dir, im.image);
        else snprintf(img, sizeof img, "%s/JPEGImages/%s.jpg", dir, id);
        free(im.image);
        im.image = strdup(img);
        im.id = strdup(id);
        if (set->n == *cap) {
            *cap = *cap ? 2 * *cap : 256;
            set->images = nb_xrealloc(set->images, sizeof(nb_voc_image) * (size_t)*cap);
        }
        set->images[set->n++] = im;
    }
    fclose(f);
    return 0;
}

int nb_voc_load(nb_ctx *ctx, nb_voc_set *set, const char *root, const char *splits, const char *classes, int64_t limit) {
    memset(set, 0, sizeof *set);
    xmlInitParser();
    set->classes = nb_voc_class_names(ctx, classes, &set->n_classes);
    if (!set->classes) return -1;
    char *copy = strdup(splits ? splits : ""), *save = NULL;
    int64_t cap = 0;
    int rc = 0, parts = 0;
    for (char *t = strtok_r(copy, "+", &save); t && !rc; t = strtok_r(NULL, "+", &save)) {
        while (*t == ' ') t++;
        size_t k = strlen(t);
        while (k && t[k - 1] == ' ') t[--k] = 0;
        if (k) rc = load_split(ctx, set, root, t, limit, &cap), parts++;
    }
    free(copy);
    if (!rc && !parts) NB_FAIL(ctx, "data", "no VOC split given (expected e.g. VOC2007/trainval+VOC2012/trainval)"), rc = -1;
    if (!rc && set->n == 0)
        NB_FAIL(ctx, root, "no readable image in %s%s%s", splits, set->skipped ? "; first skipped: " : "",
                set->skipped ? set->first_skip : ""),
            rc = -1;
    if (rc) nb_voc_free(set);
    return rc;
}
