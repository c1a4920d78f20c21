/* HDF5 checkpoint writing and reading. */
#include "setup/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/check.h"
#include "formats/file_write.h"
#include "formats/h5_checksum.h"
#include "formats/h5_read.h"

static hid_t h5_type(nb_dtype t) {
    switch (t) {
    case NB_F32: return H5T_NATIVE_FLOAT;
    case NB_I8: return H5T_NATIVE_INT8;
    case NB_U8: return H5T_NATIVE_UINT8;
    case NB_I32: return H5T_NATIVE_INT32;
    case NB_I64: return H5T_NATIVE_INT64;
    default: return -1;
    }
}

/* Write a dataset at a path like "model/layer1.0.conv1.weight", creating intermediate groups. */
static int write_data(hid_t f, const char *path, nb_dtype dt, int ndim, const int64_t *shape, const void *data) {
    hsize_t dims[8];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    hid_t sp = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, path, h5_type(dt), sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = d >= 0 ? H5Dwrite(d, h5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

static int write_tensor(hid_t f, const char *path, const nb_tensor *t) {
    size_t bytes = nb_tensor_bytes(t);
    void *buf = nb_xmalloc(bytes ? bytes : 1);
    int rc = nb_tensor_to_host(t, buf, bytes);
    if (rc == 0) rc = write_data(f, path, t->dtype, t->ndim, t->shape, buf);
    free(buf);
    return rc;
}

static int write_i64(hid_t f, const char *path, int64_t v) { return write_data(f, path, NB_I64, 0, NULL, &v); }

static int write_f64(hid_t f, const char *path, double v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, path, H5T_NATIVE_DOUBLE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = d >= 0 ? H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) : -1;
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

/* Variable-length UTF-8, so that h5py reads it as str rather than bytes. */
static int write_string_attr(hid_t obj, const char *name, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a >= 0 ? H5Awrite(a, t, &s) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return e < 0 ? -1 : 0;
}

void nb_ckpt_extra_add(nb_ckpt_extra *x, nb_tensor *t, const char *fmt, ...) {
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 32;
        x->items = nb_xrealloc(x->items, sizeof *x->items * (size_t)x->cap);
    }
    nb_ckpt_entry *e = &x->items[x->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->path, sizeof e->path, fmt, ap);
    va_end(ap);
    e->tensor = t;
}

void nb_ckpt_extra_free(nb_ckpt_extra *x) {
    free(x->items);
    memset(x, 0, sizeof *x);
}

int nb_ckpt_save(nb_ctx *ctx, const char *path, const nb_params *ps, const nb_optim *o, const nb_train_state *st,
                 const char *config_text, const nb_ckpt_extra *extra) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* libhdf5 builds the file in memory and nibble writes it: an I/O error inside libhdf5 leaves a file it
     * can neither close nor forget (1.10 then crashes at exit), so libhdf5 never touches the disk here */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 20, 0);
    /* a userblock for the checksum (formats/h5_checksum.h), filled once the file is complete */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, NB_H5_USERBLOCK);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    NB_REQUIRE(ctx, f >= 0, -1, path, "cannot make the checkpoint in memory");
    int rc = 0;
    char name[NB_NAME_MAX + 64];
    for (int i = 0; i < ps->n && !rc; i++) {
        snprintf(name, sizeof name, "model/%s", ps->items[i].t->name);
        rc = write_tensor(f, name, ps->items[i].t);
    }
    if (o) {
        int n = nb_optim_state_count(o);
        for (int i = 0; i < n && !rc; i++) {
            nb_optim_entry e;
            nb_optim_state_at(o, i, &e);
            snprintf(name, sizeof name, "optim/%s", e.name);
            rc = e.tensor ? write_tensor(f, name, e.tensor) : write_i64(f, name, e.step);
        }
        if (!rc) {
            static const char *const kinds[] = {"sgd", "adam", "adamw"};
            hid_t g = H5Gopen2(f, "/", H5P_DEFAULT);
            rc = write_string_attr(g, "optimizer", kinds[o->cfg.kind]);
            H5Gclose(g);
        }
    }
    for (int i = 0; extra && i < extra->n && !rc; i++) rc = write_tensor(f, extra->items[i].path, extra->items[i].tensor);
    if (st && !rc) {
        rc = write_i64(f, "state/epoch", st->epoch) || write_i64(f, "state/batch", st->batch) ||
             write_i64(f, "state/global_step", st->global_step) || write_i64(f, "state/images_seen", st->images_seen) ||
             write_f64(f, "state/best_top1", st->best_top1) || write_i64(f, "state/best_epoch", st->best_epoch) ||
             write_f64(f, "state/seconds", st->seconds) || write_i64(f, "state/ranks", st->ranks > 0 ? st->ranks : 1);
        if (!rc && st->scaler.scale > 0)
            rc = write_f64(f, "state/loss_scale", st->scaler.scale) ||
                 write_i64(f, "state/loss_scale_good_steps", st->scaler.good) ||
                 write_i64(f, "state/skipped_steps", st->scaler.skipped);
    }
    if (config_text && !rc) {
        hid_t g = H5Gopen2(f, "/", H5P_DEFAULT);
        rc = write_string_attr(g, "config", config_text) || write_string_attr(g, "format", "nibble checkpoint v1");
        H5Gclose(g);
    }
    /* the image libhdf5 gives starts at its superblock: on disk the userblock comes first */
    unsigned char *image = NULL;
    if (!rc && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) rc = -1; /* the metadata cache into the image */
    ssize_t size = rc ? -1 : H5Fget_file_image(f, NULL, 0);
    if (size > 0) {
        image = nb_xcalloc((size_t)size + NB_H5_USERBLOCK, 1);
        if (H5Fget_file_image(f, image + NB_H5_USERBLOCK, (size_t)size) != size) size = -1;
    }
    if (H5Fclose(f) < 0 || size <= 0) {
        free(image);
        NB_FAIL(ctx, path, "making the checkpoint in memory failed (out of memory?); the previous file is intact");
        return -1;
    }
    nb_h5_seal_image(image, (size_t)size + NB_H5_USERBLOCK);
    rc = nb_write_file_atomic(ctx, path, image, (size_t)size + NB_H5_USERBLOCK, "checkpoint");
    free(image);
    return rc;
}

static hid_t open_ckpt(nb_ctx *ctx, const char *path) { return nb_h5_open(ctx, path, "checkpoint"); }

/* A one-element dataset read into *out; -1 when absent, of another size (a file's claim is never read into a
 * scalar's memory unchecked) or unreadable */
static int read_one(hid_t f, const char *path, hid_t type, void *out) {
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    herr_t e = n == 1 ? nb_h5_dread(d, type, H5S_ALL, H5S_ALL, out) : -1;
    H5Dclose(d);
    return e < 0 ? -1 : 0;
}

typedef struct {
    char (*names)[NB_NAME_MAX];
    int n, cap;
} name_list;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    name_list *l = data;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 128;
        l->names = nb_xrealloc(l->names, sizeof *l->names * (size_t)l->cap);
    }
    snprintf(l->names[l->n++], NB_NAME_MAX, "%s", name);
    return 0;
}

/* Read dataset `path` into t (shape must match); -1 with a message naming the tensor. */
static int read_into(nb_ctx *ctx, hid_t f, const char *file, const char *path, nb_tensor *t, const char *what) {
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) {
        NB_FAIL(ctx, file, "%s: no dataset %s", what, path);
        return -1;
    }
    hsize_t dims[NB_H5_MAX_RANK] = {0};
    int nd = nb_h5_shape(d, dims);
    bool same = nd == t->ndim;
    for (int i = 0; same && i < nd; i++) same = (int64_t)dims[i] == t->shape[i];
    if (!same) {
        char got[96] = "[";
        for (int i = 0; i < nd; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), i ? ",%llu" : "%llu", (unsigned long long)dims[i]);
        strcat(got, "]");
        NB_FAIL(ctx, file, "%s: %s has shape %s in the file but %s in the model", what, t->name, got, NB_SHAPE(t));
        H5Dclose(d);
        return -1;
    }
    size_t bytes = nb_tensor_bytes(t);
    void *buf = nb_xmalloc(bytes ? bytes : 1);
    herr_t e = nb_h5_dread(d, h5_type(t->dtype), H5S_ALL, H5S_ALL, buf);
    H5Dclose(d);
    int rc = -1;
    if (e < 0) NB_FAIL(ctx, file, "%s: reading %s failed (truncated or corrupt file)", what, path);
    else rc = nb_tensor_copy_from_host(t, buf, bytes);
    free(buf);
    return rc;
}

int nb_ckpt_load_model(nb_ctx *ctx, const char *path, nb_params *ps, nb_names_match match) {
    bool strict = match == NB_NAMES_ALL;
    hid_t f = open_ckpt(ctx, path);
    if (f < 0) return -1;
    int rc = -1;
    name_list names = {0};
    hid_t g = H5Gopen2(f, "model", H5P_DEFAULT);
    if (g < 0) {
        NB_FAIL(ctx, path, "has no /model group: not a nibble checkpoint");
        goto done;
    }
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect, &names);
    H5Gclose(g);
    /* check names and shapes first, so that a mismatch leaves the model untouched */
    char report[1536] = "";
    int missing = 0, unexpected = 0;
    for (int i = 0; i < ps->n; i++) {
        bool found = false;
        for (int j = 0; j < names.n && !found; j++) found = !strcmp(names.names[j], ps->items[i].t->name);
        if (!found && missing++ < 8)
            snprintf(report + strlen(report), sizeof report - strlen(report), "%s  missing: %s", missing > 1 ? "\n" : "",
                     ps->items[i].t->name);
    }
    for (int j = 0; j < names.n; j++) {
        if (nb_params_find(ps, names.names[j])) continue;
        if (unexpected++ < 8)
            snprintf(report + strlen(report), sizeof report - strlen(report), "%s  unexpected: %s",
                     missing || unexpected > 1 ? "\n" : "", names.names[j]);
    }
    if (strict && (missing || unexpected)) {
        NB_FAIL(ctx, path, "weights do not match the model by name (%d missing, %d unexpected):\n%s\n  hint: is the "
                           "checkpoint from another architecture than model.arch?",
                missing, unexpected, report);
        goto done;
    }
    if (!strict && (missing || unexpected))
        fprintf(stderr, "nibble: note: %s fills the parameters it names; %d keep their initialisation and %d of its "
                        "tensors are not used:\n%s\n",
                path, missing, unexpected, report);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < ps->n; i++) {
            nb_tensor *t = ps->items[i].t;
            char dpath[NB_NAME_MAX + 16];
            snprintf(dpath, sizeof dpath, "model/%s", t->name);
            if (H5Lexists(f, dpath, H5P_DEFAULT) <= 0) continue;
            if (pass == 0) {
                /* shapes only */
                hid_t d = H5Dopen2(f, dpath, H5P_DEFAULT);
                hsize_t dims[NB_H5_MAX_RANK] = {0};
                int nd = d >= 0 ? nb_h5_shape(d, dims) : -1;
                if (d >= 0) H5Dclose(d);
                bool same = nd == t->ndim;
                for (int k = 0; same && k < nd; k++) same = (int64_t)dims[k] == t->shape[k];
                if (!same) {
                    char got[96] = "[";
                    for (int k = 0; k < nd; k++)
                        snprintf(got + strlen(got), sizeof got - strlen(got), k ? ",%llu" : "%llu",
                                 (unsigned long long)dims[k]);
                    strcat(got, "]");
                    NB_FAIL(ctx, path, "%s has shape %s in the checkpoint but %s in the model", t->name, got, NB_SHAPE(t));
                    goto done;
                }
            } else if (read_into(ctx, f, path, dpath, t, "model")) {
                goto done;
            }
        }
    }
    rc = 0;
done:
    free(names.names);
    H5Fclose(f);
    return rc;
}

int nb_ckpt_load_optim(nb_ctx *ctx, const char *path, nb_optim *o) {
    hid_t f = open_ckpt(ctx, path);
    if (f < 0) return -1;
    int rc = 0;
    for (int i = 0; i < o->n && !rc; i++) {
        nb_tensor *p = o->slots[i].param;
        static const char *const kinds[3] = {"momentum_buffer", "exp_avg", "exp_avg_sq"};
        for (int k = 0; k < 3 && !rc; k++) {
            char dpath[NB_NAME_MAX + 64];
            snprintf(dpath, sizeof dpath, "optim/%s/%s", kinds[k], p->name);
            if (H5Lexists(f, "optim", H5P_DEFAULT) <= 0 || H5Lexists(f, dpath, H5P_DEFAULT) <= 0) continue;
            int64_t n = nb_numel(p);
            float *buf = nb_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
            hid_t d = H5Dopen2(f, dpath, H5P_DEFAULT);
            hid_t sp = H5Dget_space(d);
            if (H5Sget_simple_extent_npoints(sp) != n || nb_h5_dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, buf) < 0) {
                NB_FAIL(ctx, path, "optimizer state %s does not fit parameter %s %s", dpath, p->name, NB_SHAPE(p));
                rc = -1;
            }
            H5Sclose(sp);
            H5Dclose(d);
            if (!rc) rc = nb_optim_state_load(o, dpath + strlen("optim/"), buf, n, 0);
            free(buf);
        }
        char spath[NB_NAME_MAX + 64];
        snprintf(spath, sizeof spath, "optim/step/%s", p->name);
        if (!rc && H5Lexists(f, "optim", H5P_DEFAULT) > 0 && H5Lexists(f, "optim/step", H5P_DEFAULT) > 0 &&
            H5Lexists(f, spath, H5P_DEFAULT) > 0) {
            int64_t step = 0;
            if (read_one(f, spath, H5T_NATIVE_INT64, &step) < 0) rc = -1;
            if (!rc) rc = nb_optim_state_load(o, spath + strlen("optim/"), NULL, 0, step);
        }
    }
    H5Fclose(f);
    return rc;
}

static int read_scalar(hid_t f, const char *path, hid_t type, void *out) {
    if (H5Lexists(f, "state", H5P_DEFAULT) <= 0 || H5Lexists(f, path, H5P_DEFAULT) <= 0) return -1;
    return read_one(f, path, type, out);
}

int nb_ckpt_load_extra(nb_ctx *ctx, const char *path, const nb_ckpt_extra *extra) {
    if (!extra || !extra->n) return 0;
    hid_t f = open_ckpt(ctx, path);
    if (f < 0) return -1;
    int rc = 0;
    for (int i = 0; i < extra->n && !rc; i++)
        rc = read_into(ctx, f, path, extra->items[i].path, extra->items[i].tensor, "compression state");
    H5Fclose(f);
    return rc;
}

int nb_ckpt_load_state(nb_ctx *ctx, const char *path, nb_train_state *st) {
    hid_t f = open_ckpt(ctx, path);
    if (f < 0) return -1;
    int rc = read_scalar(f, "state/epoch", H5T_NATIVE_INT64, &st->epoch) ||
             read_scalar(f, "state/batch", H5T_NATIVE_INT64, &st->batch) ||
             read_scalar(f, "state/global_step", H5T_NATIVE_INT64, &st->global_step) ||
             read_scalar(f, "state/images_seen", H5T_NATIVE_INT64, &st->images_seen) ||
             read_scalar(f, "state/best_top1", H5T_NATIVE_DOUBLE, &st->best_top1) ||
             read_scalar(f, "state/best_epoch", H5T_NATIVE_INT64, &st->best_epoch) ||
             read_scalar(f, "state/seconds", H5T_NATIVE_DOUBLE, &st->seconds);
    st->ranks = 1; /* checkpoints from before data parallelism */
    if (rc == 0 && H5Lexists(f, "state/ranks", H5P_DEFAULT) > 0) rc = read_scalar(f, "state/ranks", H5T_NATIVE_INT64, &st->ranks);
    bool scaled = rc == 0 && st->scaler.scale > 0 && H5Lexists(f, "state/loss_scale", H5P_DEFAULT) > 0;
    if (scaled)
        rc = read_scalar(f, "state/loss_scale", H5T_NATIVE_DOUBLE, &st->scaler.scale) ||
             read_scalar(f, "state/loss_scale_good_steps", H5T_NATIVE_INT64, &st->scaler.good) ||
             read_scalar(f, "state/skipped_steps", H5T_NATIVE_INT64, &st->scaler.skipped);
    if (scaled && rc == 0 &&
        !(st->scaler.scale > 0 && isfinite(st->scaler.scale) && st->scaler.good >= 0 && st->scaler.skipped >= 0)) {
        H5Fclose(f);
        NB_FAIL(ctx, path, "state/loss_scale is %g (good steps %lld, skipped %lld): a positive finite scale and "
                "counts expected", st->scaler.scale, (long long)st->scaler.good, (long long)st->scaler.skipped);
        return -1;
    }
    H5Fclose(f);
    if (rc) NB_FAIL(ctx, path, "has no complete /state group: not a training checkpoint, cannot resume from it");
    return rc ? -1 : 0;
}

char *nb_ckpt_read_config(nb_ctx *ctx, const char *path) {
    hid_t f = open_ckpt(ctx, path);
    if (f < 0) return NULL;
    char *out = NULL;
    if (H5Aexists(f, "config") > 0) {
        hid_t a = H5Aopen(f, "config", H5P_DEFAULT);
        hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
        hid_t mt = H5Tcopy(H5T_C_S1);
        /* one string: an attribute of several would be read past the one string's memory */
        hssize_t count = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        if (sp >= 0) H5Sclose(sp);
        if (count != 1 || H5Tget_class(t) != H5T_STRING) {
            /* no config: reported below */
        } else if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Aread(a, mt, &v) >= 0 && v) {
                size_t n = strlen(v);
                out = nb_xmalloc(n + 1);
                memcpy(out, v, n + 1);
                H5free_memory(v);
            }
        } else if (H5Tget_size(t) <= ((size_t)1 << 24)) { /* fixed-length, as written by some tools */
            size_t n = H5Tget_size(t);
            out = nb_xcalloc(n + 1, 1);
            H5Tset_size(mt, n);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Aread(a, mt, out) < 0) {
                free(out);
                out = NULL;
            }
        }
        H5Tclose(mt);
        H5Tclose(t);
        H5Aclose(a);
    }
    H5Fclose(f);
    if (!out) NB_FAIL(ctx, path, "has no config attribute\n  hint: pass the cfg file as well");
    return out;
}
