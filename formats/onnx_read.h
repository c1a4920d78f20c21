/* Parsing an ONNX file's bytes (ONNX's schema, formats/onnx.proto, through protobuf-c) for every reader of
 * ONNX files (the importer, bin/export --check). protobuf-c leaves an optional string the file does not set
 * as NULL; a file from elsewhere may leave any of them unset, so the parse gives every such string an empty
 * value instead, and the readers may compare and print names without a NULL check at each use. */
#ifndef NB_ONNX_READ_H
#define NB_ONNX_READ_H

#include <stddef.h>
#include <stdint.h>

#include "formats/onnx.pb-c.h"

/* The model in bytes[0, len), strings never NULL; NULL when the bytes do not parse or hold
 * no graph. Free with
 * onnx__model_proto__free_unpacked(m, NULL). */
Onnx__ModelProto *nb_onnx_unpack(const uint8_t *bytes, size_t len);

#endif
