/* Every op the tape records, one row each: the only list of ops in nibble. Everything else that must know
 * each op expands this table, so that a row added here and forgotten there fails to compile:
 *   - core/tape.h: the enum (NB_OP_<ENUM>), and core/tape.c the name, attribute size, cost and quant role of
 *     each op;
 *   - core/dispatch.c: where forward and backward run (the column `impl`);
 *   - deploy/onnx_emit.c: the ONNX rule of each inference op (a function onnx_<name>);
 *   - tests/support/op_harness.c: how the parity and gradient tests call it.
 * Backends fill a kernel table indexed by the enum and may decline an op (nb_backend.supports).
 *
 * Columns:
 *   ENUM    the enum constant's suffix
 *   name    the op's name in messages, tests and fixtures (tests/fixtures/ops.h5 has a group of that name)
 *   attr    the member of nb_attr (core/tape.h) that holds its attributes; none when it has none
 *   cost    how nb_node_macs counts it: conv, linear (multiply-accumulates), or none
 *   impl    KERNEL: the backend's forward and backward kernels;
 *           VIEW:   core/ops_view.c (views, layout copies and concatenation over the backend's relayout);
 *           UNARY:  element-wise; the backend's unary kernel gives f(x) and f'(x), and core/ops_unary.c
 *                   writes the backward once for every backend (gx = gy * f'(x))
 *   deploy  EXPORT: an inference op, which deploy/onnx_emit.c writes by its rule onnx_<name>; IDENTITY: the
 *           identity at inference (deploy/lower.c aliases its output to its input); TRAINING: a loss, with no
 *           inference meaning
 *   quant   where integer inference quantizes around it (compress/qsim.c places fake quantizers by this column,
 *           deploy/ writes QuantizeLinear/DequantizeLinear by it):
 *           WEIGHTED: its input (0) and its weight (1) are quantized, its bias becomes int32 (conv, linear);
 *           REQUANT:  its inputs are quantized and its output requantized (adds, average pools, concatenation:
 *                     ONNX Runtime's QLinearAdd, QLinearAveragePool, QLinearConcat);
 *           SHARED:   one grid for its input and its output (max pooling: the engine drops the pair);
 *           KEEP:     moves values without changing them: its output stays on its input's grid (views; and
 *                     dropout, an identity at inference, whose training output is read as on its input's grid);
 *           FLOAT:    no integer form of its own (activations run fused into the op before them; batch norm is
 *                     folded into the convolution before it)
 */
#ifndef NB_OP_TABLE_H
#define NB_OP_TABLE_H

#define NB_OP_TABLE(X)                                                                           \
    /* ENUM            name             attr        cost    impl    deploy    quant */           \
    X(CONV2D,          conv2d,          conv,       conv,   KERNEL, EXPORT,   WEIGHTED)          \
    X(LINEAR,          linear,          none,       linear, KERNEL, EXPORT,   WEIGHTED)          \
    X(BATCHNORM2D,     batchnorm2d,     bn,         none,   KERNEL, EXPORT,   FLOAT)             \
    X(RELU,            relu,            eltwise,    none,   KERNEL, EXPORT,   FLOAT)             \
    X(RELU6,           relu6,           eltwise,    none,   KERNEL, EXPORT,   FLOAT)             \
    X(LEAKY_RELU,      leaky_relu,      eltwise,    none,   KERNEL, EXPORT,   FLOAT)             \
    X(SIGMOID,         sigmoid,         eltwise,    none,   KERNEL, EXPORT,   FLOAT)             \
    X(HARDSWISH,       hardswish,       eltwise,    none,   KERNEL, EXPORT,   FLOAT)             \
    X(SILU,            silu,            eltwise,    none,   KERNEL, EXPORT,   FLOAT)             \
    X(HARDSIGMOID,     hardsigmoid,     eltwise,    none,   UNARY,  EXPORT,   FLOAT)             \
    X(SQUARE,          square,          eltwise,    none,   UNARY,  EXPORT,   FLOAT)             \
    X(MAXPOOL2D,       maxpool2d,       pool,       none,   KERNEL, EXPORT,   SHARED)            \
    X(AVGPOOL2D,       avgpool2d,       pool,       none,   KERNEL, EXPORT,   REQUANT)           \
    X(GLOBAL_AVGPOOL,  global_avgpool,  pool,       none,   KERNEL, EXPORT,   REQUANT)           \
    X(DROPOUT,         dropout,         dropout,    none,   KERNEL, IDENTITY, KEEP)              \
    X(ADD,             add,             add,        none,   KERNEL, EXPORT,   REQUANT)           \
    X(SCALE,           scale,           add,        none,   KERNEL, EXPORT,   FLOAT)             \
    X(MUL_CHANNEL,     mul_channel,     none,       none,   KERNEL, EXPORT,   REQUANT)           \
    X(CONCAT,          concat,          axis,       none,   VIEW,   EXPORT,   REQUANT)           \
    X(SLICE,           slice,           slice,      none,   VIEW,   EXPORT,   KEEP)              \
    X(CHANNEL_SHUFFLE, channel_shuffle, shuffle,    none,   KERNEL, EXPORT,   KEEP)              \
    X(RESHAPE,         reshape,         none,       none,   VIEW,   EXPORT,   KEEP)              \
    X(SOFTMAX,         softmax,         axis,       none,   KERNEL, EXPORT,   FLOAT)             \
    X(LOG_SOFTMAX,     log_softmax,     axis,       none,   KERNEL, EXPORT,   FLOAT)             \
    X(CROSS_ENTROPY,   cross_entropy,   ce,         none,   KERNEL, TRAINING, FLOAT)             \
    X(KL_DIV,          kl_div,          kl,         none,   KERNEL, TRAINING, FLOAT)             \
    X(SMOOTH_L1,       smooth_l1,       smooth_l1,  none,   KERNEL, TRAINING, FLOAT)             \
    X(MSE,             mse,             none,       none,   KERNEL, TRAINING, FLOAT)             \
    X(MULTIBOX,        multibox_loss,   multibox,   none,   KERNEL, TRAINING, FLOAT)             \
    X(RELAYOUT,        relayout,        relayout,   none,   VIEW,   IDENTITY, KEEP)              \
    X(CAST,            cast,            cast,       none,   VIEW,   IDENTITY, KEEP)              \
    X(FAKE_QUANT,      fake_quant,      fake_quant, none,   KERNEL, EXPORT,   FLOAT)

#endif
