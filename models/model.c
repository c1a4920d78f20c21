/* The architecture registry. */
#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

nb_model *nb_model_alloc(nb_ctx *ctx, const nb_model_spec *spec, size_t impl_size,
                         nb_tensor *(*forward)(nb_model *, nb_tensor *, bool), void (*destroy)(nb_model *)) {
    nb_model *m = nb_xcalloc(1, sizeof *m);
    m->spec = *spec;
    snprintf(m->arch, sizeof m->arch, "%s", spec->arch);
    m->spec.arch = m->arch;
    m->ctx = ctx;
    m->impl = nb_xcalloc(1, impl_size);
    m->forward = forward;
    m->destroy = destroy;
    nb_params_init(&m->params, ctx, spec->seed);
    return m;
}

nb_model *nb_model_create(nb_ctx *ctx, const nb_model_spec *spec) {
    NB_REQUIRE(ctx, spec->num_classes > 0 && spec->in_channels > 0 && spec->input_size > 0 && spec->width > 0, NULL,
               "model", "num_classes %d, in_channels %d, input_size %d and width %g must be positive",
               spec->num_classes, spec->in_channels, spec->input_size, (double)spec->width);
    if (!strcmp(spec->arch, "smallcnn")) return nb_smallcnn_create(ctx, spec);
    if (nb_shufflenetv2_arch(spec->arch)) return nb_shufflenetv2_create(ctx, spec);
    if (nb_muffnet_arch(spec->arch)) return nb_muffnet_create(ctx, spec);
    if (!strcmp(spec->arch, "mobilenet_v2")) return nb_mobilenetv2_create(ctx, spec);
    if (nb_ssd_arch(spec->arch)) return nb_ssd_create(ctx, spec);
    if (!strcmp(spec->arch, "alexnet")) return nb_alexnet_create(ctx, spec);
    /* torchvision's ImageNet ResNets at their depths; CIFAR-style ResNets at any other depth 6n+2 */
    if (!strncmp(spec->arch, "resnet", 6)) {
        char *end;
        long depth = strtol(spec->arch + 6, &end, 10);
        if (!*end && nb_resnet_imagenet_depth((int)depth)) return nb_resnet_imagenet_create(ctx, spec, (int)depth);
        if (!*end && depth >= 8 && depth <= 1202 && (depth - 2) % 6 == 0)
            return nb_resnet_cifar_create(ctx, spec, (int)depth);
    }
    NB_REQUIRE(ctx, strcmp(spec->arch, "onnx") != 0, NULL, "model",
               "model.arch = onnx is imported from model.onnx by setup/assemble.c (nb_model_for), not built here");
    NB_FAIL(ctx, "model", "unknown architecture '%s' (known: %s)", spec->arch, nb_model_arch_list());
    return NULL;
}

const char *nb_model_arch_list(void) {
    return "onnx (model.onnx: any ONNX CNN); smallcnn; ImageNet resnet18, resnet34, resnet50, resnet101, resnet152; CIFAR-style resnetD for other "
           "D = 6n+2 (resnet8, resnet20, resnet32, resnet56, resnet110); shufflenet_v2_x0_5, shufflenet_v2_x1_0, "
           "shufflenet_v2_x1_5, shufflenet_v2_x2_0; mobilenet_v2 (model.width: its width multiplier); alexnet; "
           "muffnet_x0_5, muffnet_x1_0; detectors ssd_mobilenet_v2, ssdlite_mobilenet_v2, lrssd_mobilenet_v2, ssd_resnet18, "
           "ssdlite_resnet18, lrssd_resnet18";
}

void nb_model_free(nb_model *m) {
    if (!m) return;
    if (m->destroy) m->destroy(m);
    nb_params_free(&m->params);
    free(m->impl);
    free(m);
}

nb_tensor *nb_record_forward(nb_model *m, int batch, size_t *mark, nb_tensor **input) {
    nb_ctx *ctx = m->ctx;
    *mark = nb_scope_begin(ctx);
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4,
                                 (int64_t[]){batch, m->spec.in_channels, m->spec.input_size, m->spec.input_size});
    *input = x;
    if (!x) return NULL;
    nb_tape_clear(ctx);
    bool prev = nb_set_grad_enabled(ctx, false);
    nb_set_record_all(ctx, true);
    nb_tensor *y = m->forward(m, x, false);
    nb_set_record_all(ctx, false);
    nb_set_grad_enabled(ctx, prev);
    return y;
}
