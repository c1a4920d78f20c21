/* The ONNX importer's constants: initializers read into host values, and the nodes whose inputs are all known
 * at import evaluated once (see onnx_graph.h). Shape vectors carry which of their elements are the batch size,
 * so that the chains exporters write for x.view(x.size(0), -1) fold into a reshape that takes the batch of
 * each pass; arithmetic on the batch size is refused rather than frozen at the size seen at import. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "import/onnx_graph.h"

/* ONNX TensorProto.DataType values the importer reads */
enum { OX_FLOAT = 1, OX_UINT8 = 2, OX_INT8 = 3, OX_INT32 = 6, OX_INT64 = 7, OX_BOOL = 9, OX_DOUBLE = 11 };

/* v becomes a constant of that type and shape (values zeroed) */
static void make_const(ox_value *v, bool is_int, int ndim, const int64_t *dims) {
    ox_value_clear(v);
    v->kind = OXV_CONST;
    v->is_int = is_int;
    v->ndim = ndim;
    v->n = 1;
    for (int k = 0; k < ndim; k++) {
        v->dims[k] = dims[k];
        v->n *= dims[k];
    }
    size_t cnt = (size_t)(v->n ? v->n : 1);
    if (is_int) {
        v->i = nb_xcalloc(cnt, sizeof *v->i);
        v->batch = nb_xcalloc(cnt, 1);
    } else {
        v->f = nb_xcalloc(cnt, sizeof *v->f);
    }
}

/* the element count, or -1 beyond 2^40 (no file holds that many; the product could overflow) */
static int64_t elements_of(const Onnx__TensorProto *t) {
    int64_t n = 1;
    for (size_t k = 0; k < t->n_dims; k++) {
        if (t->dims[k] && n > ((int64_t)1 << 40) / t->dims[k]) return -1;
        n *= t->dims[k];
    }
    return n;
}

/* The values of tensor t (an initializer or a Constant's) into v; what names it in messages */
static int read_tensor(nb_ctx *ctx, const char *label, const char *what, const Onnx__TensorProto *t, ox_value *v) {
    NB_REQUIRE(ctx, t->n_dims <= NB_MAX_DIMS, -1, label, "%s has %zu dimensions (at most %d)", what, t->n_dims,
               NB_MAX_DIMS);
    for (size_t k = 0; k < t->n_dims; k++)
        NB_REQUIRE(ctx, t->dims[k] >= 0 && t->dims[k] < ((int64_t)1 << 32), -1, label,
                   "%s has a dimension of %lld", what, (long long)t->dims[k]);
    int64_t n = elements_of(t);
    NB_REQUIRE(ctx, n >= 0, -1, label, "%s claims more than 2^40 elements", what);
    NB_REQUIRE(ctx, !t->has_data_location || t->data_location == 0, -1, label,
               "%s keeps its values in an external file, which nibble does not read (save the model with its "
               "weights inside: onnx.save(model, path, save_as_external_data=False))", what);
    bool is_int;
    size_t esize;
    switch (t->data_type) {
    case OX_FLOAT: is_int = false; esize = 4; break;
    case OX_DOUBLE: is_int = false; esize = 8; break;
    case OX_INT64: is_int = true; esize = 8; break;
    case OX_INT32: is_int = true; esize = 4; break;
    case OX_BOOL: is_int = true; esize = 1; break;
    default:
        NB_FAIL(ctx, label, "%s has element type %d; nibble reads float32, float64, int64, int32 and bool", what,
                t->data_type);
        return -1;
    }
    size_t raw = t->raw_data.len;
    int64_t listed = t->data_type == OX_FLOAT ? (int64_t)t->n_float_data
                     : t->data_type == OX_DOUBLE ? (int64_t)t->n_double_data
                     : t->data_type == OX_INT64 ? (int64_t)t->n_int64_data
                                                : (int64_t)t->n_int32_data;
    if (raw) {
        NB_REQUIRE(ctx, raw == (size_t)n * esize, -1, label, "%s: %zu bytes of data for %lld elements of %zu bytes",
                   what, raw, (long long)n, esize);
    } else {
        NB_REQUIRE(ctx, listed == n, -1, label, "%s: %lld values for %zu dimensions of %lld elements", what,
                   (long long)listed, t->n_dims, (long long)n);
    }
    /* the values are in the file: now their memory */
    make_const(v, is_int, (int)t->n_dims, t->dims);
    const uint8_t *p = t->raw_data.data;
    for (int64_t k = 0; k < n; k++) {
        switch (t->data_type) {
        case OX_FLOAT: {
            float x;
            if (raw) memcpy(&x, p + 4 * k, 4);
            else x = t->float_data[k];
            v->f[k] = x;
            break;
        }
        case OX_DOUBLE: {
            double x;
            if (raw) memcpy(&x, p + 8 * k, 8);
            else x = t->double_data[k];
            v->f[k] = (float)x;
            break;
        }
        case OX_INT64: {
            int64_t x;
            if (raw) memcpy(&x, p + 8 * k, 8);
            else x = t->int64_data[k];
            v->i[k] = x;
            break;
        }
        case OX_INT32: {
            int32_t x;
            if (raw) memcpy(&x, p + 4 * k, 4);
            else x = t->int32_data[k];
            v->i[k] = x;
            break;
        }
        default: v->i[k] = raw ? p[k] != 0 : t->int32_data[k] != 0; break;
        }
    }
    return 0;
}

int ox_read_initializer(nb_ctx *ctx, const ox_graph *g, ox_value *v) {
    char what[NB_NAME_MAX + 32];
    snprintf(what, sizeof what, "initializer '%s'", v->name);
    return read_tensor(ctx, g->label, what, v->init, v);
}

bool ox_foldable(const char *op) {
    static const char *const ops[] = {"Constant", "Identity", "Cast", "Shape", "Gather", "Unsqueeze", "Squeeze",
                                      "Concat", "Slice", "Reshape", "Flatten", "Add", "Sub", "Mul", "Div",
                                      "ConstantOfShape", "Range", "Transpose", NULL};
    for (int k = 0; ops[k]; k++)
        if (!strcmp(op, ops[k])) return true;
    return false;
}

/* ---- evaluation ---- */

typedef struct {
    nb_ctx *ctx;
    ox_graph *g;
    ox_step *s;
    char where[1024];
} folder;

/* Largest constant folded at import: shapes and small tables, never an activation's worth */
#define OX_MAX_FOLDED ((int64_t)1 << 24)

/* make_const for a folded output, after checking the shape a node computed: no negative dimension, no
 * more than OX_MAX_FOLDED elements (a file can ask ConstantOfShape or Range for anything). 0, or -1 after
 * reporting. */
static int fold_out(folder *f, ox_value *y, bool is_int, int ndim, const int64_t *dims) {
    int64_t n = 1;
    bool ok = ndim >= 0 && ndim <= NB_MAX_DIMS;
    for (int k = 0; ok && k < ndim; k++) {
        ok = dims[k] >= 0 && (dims[k] == 0 || n <= OX_MAX_FOLDED / dims[k]);
        n *= ok ? dims[k] : 1;
    }
    NB_REQUIRE(f->ctx, ok && n <= OX_MAX_FOLDED, -1, f->where,
               "the constant it computes at import would have %d dimensions, a negative one or more than %lld "
               "elements",
               ndim, (long long)OX_MAX_FOLDED);
    make_const(y, is_int, ndim, dims);
    return 0;
}

static ox_value *in_v(folder *f, int k) { return k < f->s->n_in && f->s->in[k] >= 0 ? &f->g->v[f->s->in[k]] : NULL; }
static ox_value *out_v(folder *f, int k) { return &f->g->v[f->s->out[k]]; }

static double at(const ox_value *v, int64_t k) { return v->is_int ? (double)v->i[k] : (double)v->f[k]; }

/* element k of y = element src of x (same type) */
static void copy_elem(ox_value *y, int64_t k, const ox_value *x, int64_t src) {
    if (x->is_int) {
        y->i[k] = x->i[src];
        y->batch[k] = x->batch[src];
    } else {
        y->f[k] = x->f[src];
    }
}

/* the axes of a node: its attribute (older opsets) or its input k (opset 13 on), as a list */
static int axes_of(folder *f, int k, int64_t *axes, int max) {
    int n = 0;
    const int64_t *a = ox_get_ints(f->s->node, "axes", &n);
    if (a) {
        NB_REQUIRE(f->ctx, n <= max, -1, f->where, "%d axes", n);
        memcpy(axes, a, sizeof(int64_t) * (size_t)n);
        return n;
    }
    ox_value *v = in_v(f, k);
    if (!v) return 0;
    NB_REQUIRE(f->ctx, v->is_int && v->n <= max, -1, f->where, "axes must be at most %d integers", max);
    for (int64_t j = 0; j < v->n; j++) axes[j] = v->i[j];
    return (int)v->n;
}

static int norm_axis(folder *f, int64_t a, int ndim) {
    if (a < 0) a += ndim;
    NB_REQUIRE(f->ctx, a >= 0 && a < ndim, -1, f->where, "axis out of range for %d dimensions", ndim);
    return (int)a;
}

static int fold_constant(folder *f) {
    const Onnx__NodeProto *n = f->s->node;
    ox_value *y = out_v(f, 0);
    for (size_t k = 0; k < n->n_attribute; k++) {
        const Onnx__AttributeProto *a = n->attribute[k];
        if (!strcmp(a->name, "value") && a->t) return read_tensor(f->ctx, f->g->label, f->where, a->t, y);
        if (!strcmp(a->name, "value_float")) {
            if (fold_out(f, y, false, 0, NULL)) return -1;
            y->f[0] = a->f;
            return 0;
        }
        if (!strcmp(a->name, "value_int")) {
            if (fold_out(f, y, true, 0, NULL)) return -1;
            y->i[0] = a->i;
            return 0;
        }
        if (!strcmp(a->name, "value_floats") || !strcmp(a->name, "value_ints")) {
            bool is_int = a->name[6] == 'i';
            int64_t cnt = is_int ? (int64_t)a->n_ints : (int64_t)a->n_floats;
            if (fold_out(f, y, is_int, 1, &cnt)) return -1;
            for (int64_t j = 0; j < cnt; j++) {
                if (is_int) y->i[j] = a->ints[j];
                else y->f[j] = a->floats[j];
            }
            return 0;
        }
    }
    NB_FAIL(f->ctx, f->where, "a Constant without a value nibble reads (value, value_float(s), value_int(s))");
    return -1;
}

static int fold_cast(folder *f, const ox_value *x) {
    int64_t to = ox_get_int(f->s->node, "to", OX_FLOAT);
    bool is_int = to == OX_INT64 || to == OX_INT32 || to == OX_BOOL || to == OX_INT8 || to == OX_UINT8;
    NB_REQUIRE(f->ctx, is_int || to == OX_FLOAT || to == OX_DOUBLE, -1, f->where, "a cast to element type %lld",
               (long long)to);
    ox_value *y = out_v(f, 0);
    if (fold_out(f, y, is_int, x->ndim, x->dims)) return -1;
    for (int64_t k = 0; k < x->n; k++) {
        if (is_int) {
            y->i[k] = x->is_int ? x->i[k] : (int64_t)x->f[k];
            y->batch[k] = x->is_int && x->batch[k];
        } else {
            NB_REQUIRE(f->ctx, !x->is_int || !x->batch[k], -1, f->where,
                       "the batch size is cast to float: a shape computed from it cannot be folded");
            y->f[k] = (float)at(x, k);
        }
    }
    return 0;
}

static int fold_gather(folder *f, const ox_value *x, const ox_value *idx) {
    NB_REQUIRE(f->ctx, idx->is_int, -1, f->where, "indices must be integers");
    int axis = norm_axis(f, ox_get_int(f->s->node, "axis", 0), x->ndim);
    if (axis < 0) return -1;
    int64_t dims[NB_MAX_DIMS];
    int nd = 0;
    for (int k = 0; k < axis; k++) dims[nd++] = x->dims[k];
    NB_REQUIRE(f->ctx, x->ndim - 1 + idx->ndim <= NB_MAX_DIMS, -1, f->where, "too many dimensions");
    for (int k = 0; k < idx->ndim; k++) dims[nd++] = idx->dims[k];
    for (int k = axis + 1; k < x->ndim; k++) dims[nd++] = x->dims[k];
    int64_t outer = 1, inner = 1, len = x->dims[axis];
    for (int k = 0; k < axis; k++) outer *= x->dims[k];
    for (int k = axis + 1; k < x->ndim; k++) inner *= x->dims[k];
    ox_value *y = out_v(f, 0);
    if (fold_out(f, y, x->is_int, nd, dims)) return -1;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < idx->n; j++) {
            int64_t i = idx->i[j] < 0 ? idx->i[j] + len : idx->i[j];
            NB_REQUIRE(f->ctx, i >= 0 && i < len, -1, f->where, "index %lld out of range [0, %lld)",
                       (long long)idx->i[j], (long long)len);
            for (int64_t q = 0; q < inner; q++) copy_elem(y, (o * idx->n + j) * inner + q, x, (o * len + i) * inner + q);
        }
    return 0;
}

/* Unsqueeze, Squeeze, Reshape, Flatten and Identity of a constant: the same values under other dimensions */
static int fold_view(folder *f, const ox_value *x, int ndim, const int64_t *dims) {
    ox_value *y = out_v(f, 0);
    if (fold_out(f, y, x->is_int, ndim, dims)) return -1;
    NB_REQUIRE(f->ctx, y->n == x->n, -1, f->where, "%lld elements cannot take %s", (long long)x->n,
               ox_dims_fmt((char[128]){0}, 128, y));
    for (int64_t k = 0; k < x->n; k++) copy_elem(y, k, x, k);
    return 0;
}

static int fold_unsqueeze(folder *f, const ox_value *x, bool squeeze) {
    int64_t axes[NB_MAX_DIMS];
    int na = axes_of(f, 1, axes, NB_MAX_DIMS);
    if (na < 0) return -1;
    int64_t dims[NB_MAX_DIMS];
    int nd = 0;
    if (squeeze) {
        bool drop[NB_MAX_DIMS] = {0};
        for (int k = 0; k < na; k++) {
            int a = norm_axis(f, axes[k], x->ndim);
            if (a < 0) return -1;
            drop[a] = true;
        }
        for (int k = 0; k < x->ndim; k++)
            if (!(na ? drop[k] : x->dims[k] == 1)) dims[nd++] = x->dims[k];
    } else {
        int out_nd = x->ndim + na;
        NB_REQUIRE(f->ctx, out_nd <= NB_MAX_DIMS, -1, f->where, "too many dimensions");
        bool ins[NB_MAX_DIMS] = {0};
        for (int k = 0; k < na; k++) {
            int a = norm_axis(f, axes[k], out_nd);
            if (a < 0) return -1;
            ins[a] = true;
        }
        for (int k = 0, src = 0; k < out_nd; k++) dims[nd++] = ins[k] ? 1 : x->dims[src++];
    }
    return fold_view(f, x, nd, dims);
}

static int fold_concat(folder *f) {
    ox_value *x0 = in_v(f, 0);
    int axis = norm_axis(f, ox_get_int(f->s->node, "axis", 0), x0->ndim);
    if (axis < 0) return -1;
    int64_t dims[NB_MAX_DIMS];
    memcpy(dims, x0->dims, sizeof dims);
    dims[axis] = 0;
    for (int k = 0; k < f->s->n_in; k++) {
        ox_value *x = in_v(f, k);
        NB_REQUIRE(f->ctx, x && x->ndim == x0->ndim && x->is_int == x0->is_int, -1, f->where,
                   "inputs of different ranks or types");
        dims[axis] += x->dims[axis];
    }
    ox_value *y = out_v(f, 0);
    if (fold_out(f, y, x0->is_int, x0->ndim, dims)) return -1;
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < axis; k++) outer *= dims[k];
    for (int k = axis + 1; k < x0->ndim; k++) inner *= dims[k];
    int64_t off = 0;
    for (int k = 0; k < f->s->n_in; k++) {
        ox_value *x = in_v(f, k);
        int64_t len = x->dims[axis];
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < len * inner; j++) copy_elem(y, (o * dims[axis] + off) * inner + j, x, o * len * inner + j);
        off += len;
    }
    return 0;
}

/* ONNX Slice's clamping of start and end for a step (numpy's) */
static void slice_range(int64_t len, int64_t start, int64_t end, int64_t step, int64_t *first, int64_t *count) {
    /* a step longer than the axis takes one element at most: bounded so that the arithmetic below cannot overflow */
    if (step > len + 1) step = len + 1;
    if (step < -(len + 1)) step = -(len + 1);
    if (start < 0) start += len;
    if (end < 0) end += len;
    if (step > 0) {
        start = start < 0 ? 0 : start > len ? len : start;
        end = end < 0 ? 0 : end > len ? len : end;
        *count = end > start ? (end - start + step - 1) / step : 0;
    } else {
        start = start < 0 ? -1 : start > len - 1 ? len - 1 : start;
        end = end < -1 ? -1 : end > len - 1 ? len - 1 : end;
        *count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
    }
    *first = start;
}

static int fold_slice(folder *f, const ox_value *x) {
    ox_value *st = in_v(f, 1), *en = in_v(f, 2), *ax = in_v(f, 3), *sp = in_v(f, 4);
    NB_REQUIRE(f->ctx, st && en && st->is_int && en->is_int && st->n == en->n, -1, f->where,
               "starts and ends must be integer lists of one length (opset 10 on)");
    int64_t first[NB_MAX_DIMS], step[NB_MAX_DIMS], dims[NB_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) {
        first[k] = 0;
        step[k] = 1;
        dims[k] = x->dims[k];
    }
    for (int64_t j = 0; j < st->n; j++) {
        int a = norm_axis(f, ax ? ax->i[j] : j, x->ndim);
        if (a < 0) return -1;
        int64_t s = sp ? sp->i[j] : 1;
        NB_REQUIRE(f->ctx, s != 0, -1, f->where, "a step of 0");
        step[a] = s;
        slice_range(x->dims[a], st->i[j], en->i[j], s, &first[a], &dims[a]);
    }
    ox_value *y = out_v(f, 0);
    if (fold_out(f, y, x->is_int, x->ndim, dims)) return -1;
    for (int64_t k = 0; k < y->n; k++) {
        int64_t rem = k, src = 0, stride = 1;
        int64_t idx[NB_MAX_DIMS];
        for (int d = x->ndim - 1; d >= 0; d--) {
            idx[d] = rem % dims[d];
            rem /= dims[d];
        }
        for (int d = x->ndim - 1; d >= 0; d--) {
            src += (first[d] + idx[d] * step[d]) * stride;
            stride *= x->dims[d];
        }
        copy_elem(y, k, x, src);
    }
    return 0;
}

static int fold_reshape(folder *f, const ox_value *x, const ox_value *shape) {
    NB_REQUIRE(f->ctx, shape && shape->is_int && shape->n <= NB_MAX_DIMS, -1, f->where, "a shape of at most %d integers",
               NB_MAX_DIMS);
    int64_t dims[NB_MAX_DIMS], known = 1;
    int infer = -1;
    for (int64_t k = 0; k < shape->n; k++) {
        NB_REQUIRE(f->ctx, !shape->batch[k], -1, f->where,
                   "a constant reshaped by the batch size: a shape computed from it cannot be folded");
        dims[k] = shape->i[k] == 0 && !ox_get_int(f->s->node, "allowzero", 0) && k < x->ndim ? x->dims[k] : shape->i[k];
        NB_REQUIRE(f->ctx, dims[k] >= -1 && (dims[k] <= 0 || known <= OX_MAX_FOLDED / dims[k]), -1, f->where,
                   "a reshape to %lld in dimension %lld", (long long)dims[k], (long long)k);
        if (dims[k] == -1) infer = (int)k;
        else known *= dims[k];
    }
    if (infer >= 0) dims[infer] = known ? x->n / known : 0;
    return fold_view(f, x, (int)shape->n, dims);
}

static int fold_arith(folder *f, const char *op, const ox_value *a, const ox_value *b) {
    NB_REQUIRE(f->ctx, a && b, -1, f->where, "two inputs expected");
    const ox_value *big = a->n >= b->n ? a : b;
    bool same = a->ndim == b->ndim && a->n == b->n;
    for (int k = 0; same && k < a->ndim; k++) same = a->dims[k] == b->dims[k];
    NB_REQUIRE(f->ctx, same || a->n == 1 || b->n == 1, -1, f->where,
               "constant operands of shapes %s and %s (nibble folds equal shapes or a scalar)",
               ox_dims_fmt((char[128]){0}, 128, a), ox_dims_fmt((char[128]){0}, 128, b));
    bool is_int = a->is_int && b->is_int;
    ox_value *y = out_v(f, 0);
    /* a node's output is a value of its own (read_graph refuses a name defined twice): a and b stay as they are */
    if (fold_out(f, y, is_int, big->ndim, big->dims)) return -1;
    int rc = 0;
    for (int64_t k = 0; k < big->n && !rc; k++) {
        int64_t ka = a->n == 1 ? 0 : k, kb = b->n == 1 ? 0 : k;
        double x = at(a, ka), z = at(b, kb);
        bool xb = a->is_int && a->batch[ka], zb = b->is_int && b->batch[kb];
        double r;
        bool batch = false;
        switch (op[0]) {
        case 'A': r = x + z; batch = (xb && z == 0 && !zb) || (zb && x == 0 && !xb); break;
        case 'S': r = x - z; batch = xb && z == 0 && !zb; break;
        case 'M': r = x * z; batch = (xb && z == 1 && !zb) || (zb && x == 1 && !xb); break;
        default:
            if (z == 0) {
                NB_FAIL(f->ctx, f->where, "division by zero");
                rc = -1;
                continue;
            }
            r = is_int ? floor(x / z) : x / z;
            batch = xb && z == 1 && !zb;
            break;
        }
        if ((xb || zb) && !batch) {
            NB_FAIL(f->ctx, f->where,
                    "the batch size enters arithmetic (%s): a shape computed from it cannot be folded; export with a "
                    "fixed batch, or flatten with torch.flatten(x, 1)", op);
            rc = -1;
            continue;
        }
        if (is_int) {
            y->i[k] = (int64_t)r;
            y->batch[k] = batch;
        } else {
            y->f[k] = (float)r;
        }
    }
    return rc;
}

static int fold_transpose(folder *f, const ox_value *x) {
    int n = 0;
    const int64_t *perm = ox_get_ints(f->s->node, "perm", &n);
    int64_t p[NB_MAX_DIMS], dims[NB_MAX_DIMS];
    NB_REQUIRE(f->ctx, !perm || n == x->ndim, -1, f->where, "perm of %d for %d dimensions", n, x->ndim);
    for (int k = 0; k < x->ndim; k++) p[k] = perm ? perm[k] : x->ndim - 1 - k; /* default: reversed */
    bool seen[NB_MAX_DIMS] = {0};
    for (int k = 0; k < x->ndim; k++) {
        NB_REQUIRE(f->ctx, p[k] >= 0 && p[k] < x->ndim && !seen[p[k]], -1, f->where,
                   "perm is not a permutation of %d axes", x->ndim);
        seen[p[k]] = true;
        dims[k] = x->dims[p[k]];
    }
    ox_value *y = out_v(f, 0);
    if (fold_out(f, y, x->is_int, x->ndim, dims)) return -1;
    int64_t xs[NB_MAX_DIMS], stride = 1;
    for (int k = x->ndim - 1; k >= 0; k--) {
        xs[k] = stride;
        stride *= x->dims[k];
    }
    for (int64_t j = 0; j < y->n; j++) {
        int64_t rem = j, src = 0;
        for (int k = x->ndim - 1; k >= 0; k--) {
            src += (rem % dims[k]) * xs[p[k]];
            rem /= dims[k];
        }
        copy_elem(y, j, x, src);
    }
    return 0;
}

static int fold_constant_of_shape(folder *f, const ox_value *shape) {
    NB_REQUIRE(f->ctx, shape->is_int && shape->n <= NB_MAX_DIMS, -1, f->where, "a shape of at most %d integers",
               NB_MAX_DIMS);
    for (int64_t k = 0; k < shape->n; k++)
        NB_REQUIRE(f->ctx, !shape->batch[k], -1, f->where, "a constant as large as the batch cannot be folded");
    const Onnx__AttributeProto *a = ox_get_attr(f->s->node, "value");
    ox_value fill = {0};
    if (a && a->t && read_tensor(f->ctx, f->g->label, f->where, a->t, &fill)) {
        ox_value_clear(&fill);
        return -1;
    }
    if (a && a->t && fill.n != 1) {
        ox_value_clear(&fill);
        NB_FAIL(f->ctx, f->where, "its value has %lld elements; ConstantOfShape takes one", (long long)fill.n);
        return -1;
    }
    ox_value *y = out_v(f, 0);
    if (fold_out(f, y, a && a->t ? fill.is_int : false, (int)shape->n, shape->i)) {
        ox_value_clear(&fill);
        return -1;
    }
    for (int64_t k = 0; k < y->n; k++) {
        if (y->is_int) y->i[k] = fill.i[0];
        else y->f[k] = fill.f ? fill.f[0] : 0.0f;
    }
    ox_value_clear(&fill);
    return 0;
}

static int fold_range(folder *f, const ox_value *s0, const ox_value *lim, const ox_value *d) {
    NB_REQUIRE(f->ctx, s0 && lim && d && s0->n == 1 && lim->n == 1 && d->n == 1, -1, f->where, "scalars expected");
    NB_REQUIRE(f->ctx, !(s0->is_int && (s0->batch[0] || lim->batch[0] || d->batch[0])), -1, f->where,
               "a range as long as the batch cannot be folded");
    double a = at(s0, 0), b = at(lim, 0), st = at(d, 0);
    NB_REQUIRE(f->ctx, st != 0, -1, f->where, "a step of 0");
    int64_t cnt = (int64_t)fmax(ceil((b - a) / st), 0);
    ox_value *y = out_v(f, 0);
    if (fold_out(f, y, s0->is_int, 1, &cnt)) return -1;
    for (int64_t k = 0; k < cnt; k++) {
        if (y->is_int) y->i[k] = (int64_t)(a + st * (double)k);
        else y->f[k] = (float)(a + st * (double)k);
    }
    return 0;
}

int ox_fold_shape(ox_graph *g, ox_step *s, const nb_tensor *x) {
    int64_t nd = x->ndim;
    ox_value *y = &g->v[s->out[0]];
    int64_t start = ox_get_int(s->node, "start", 0), end = ox_get_int(s->node, "end", nd);
    if (start < 0) start += nd;
    if (end < 0) end += nd;
    start = start < 0 ? 0 : start > nd ? nd : start;
    end = end < start ? start : end > nd ? nd : end;
    int64_t cnt = end - start;
    make_const(y, true, 1, &cnt);
    for (int64_t k = 0; k < cnt; k++) {
        y->i[k] = x->shape[start + k];
        y->batch[k] = start + k == 0; /* the batch is the first dimension of every runtime value */
    }
    return 0;
}

int ox_fold(nb_ctx *ctx, ox_graph *g, ox_step *s) {
    folder f = {ctx, g, s, ""};
    const char *op = s->node->op_type;
    snprintf(f.where, sizeof f.where, "%s: node '%s' (%s, opset %lld)", g->label, s->node->name ? s->node->name : "",
             op, (long long)g->opset);
    ox_value *x = in_v(&f, 0);
    NB_REQUIRE(ctx, s->n_out >= 1, -1, f.where, "a node without outputs");
    if (!strcmp(op, "Constant")) return fold_constant(&f);
    NB_REQUIRE(ctx, x || !strcmp(op, "Range"), -1, f.where, "input 0 is missing");
    if (!strcmp(op, "Identity")) return fold_view(&f, x, x->ndim, x->dims);
    if (!strcmp(op, "Cast")) return fold_cast(&f, x);
    if (!strcmp(op, "Shape")) {
        /* the shape of a constant: plain numbers */
        int64_t nd = x->ndim;
        ox_value *y = out_v(&f, 0);
        if (fold_out(&f, y, true, 1, &nd)) return -1;
        for (int k = 0; k < x->ndim; k++) y->i[k] = x->dims[k];
        return 0;
    }
    if (!strcmp(op, "Gather")) return fold_gather(&f, x, in_v(&f, 1));
    if (!strcmp(op, "Unsqueeze")) return fold_unsqueeze(&f, x, false);
    if (!strcmp(op, "Squeeze")) return fold_unsqueeze(&f, x, true);
    if (!strcmp(op, "Concat")) return fold_concat(&f);
    if (!strcmp(op, "Slice")) return fold_slice(&f, x);
    if (!strcmp(op, "Reshape")) return fold_reshape(&f, x, in_v(&f, 1));
    if (!strcmp(op, "Flatten")) {
        int axis = (int)ox_get_int(s->node, "axis", 1);
        if (axis < 0) axis += x->ndim;
        int64_t a = 1, b = 1;
        for (int k = 0; k < x->ndim; k++) *(k < axis ? &a : &b) *= x->dims[k];
        return fold_view(&f, x, 2, (int64_t[]){a, b});
    }
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div"))
        return fold_arith(&f, op, x, in_v(&f, 1));
    if (!strcmp(op, "ConstantOfShape")) return fold_constant_of_shape(&f, x);
    if (!strcmp(op, "Transpose")) return fold_transpose(&f, x);
    if (!strcmp(op, "Range")) return fold_range(&f, x, in_v(&f, 1), in_v(&f, 2));
    NB_FAIL(ctx, f.where, "every input is a constant, but nibble cannot evaluate this op at import");
    return -1;
}
