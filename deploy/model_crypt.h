/* Encrypted model files, header-only so that a deploying application can copy this one file: it needs
 * libsodium and nothing of nibble. `bin/export --encrypt KEYFILE` writes a model this way; the application
 * decrypts it in memory and hands the bytes to its engine, so the plaintext never touches the disk:
 *
 *     unsigned char key[NB_MODEL_KEY_BYTES];            // from the application's key store, or:
 *     nb_model_key_read("model.key", key);
 *     unsigned char *onnx; size_t onnx_len;
 *     if (nb_model_decrypt(key, file_bytes, file_len, &onnx, &onnx_len) != NB_CRYPT_OK) refuse();
 *     OrtApi->CreateSessionFromArray(env, onnx, onnx_len, options, &session);   // or MNN's createFromBuffer
 *     nb_model_plaintext_free(onnx, onnx_len);           // wiped, then freed
 *
 * Format: the 8 bytes "NBENC01\n", libsodium's secretstream (XChaCha20-Poly1305) header, then the model in
 * chunks of NB_CRYPT_CHUNK bytes (the last shorter, tagged final), each followed by its 17-byte
 * authentication tag; the 8 magic bytes are authenticated with every chunk. A wrong key, a changed bit
 * anywhere, a chunk removed, reordered or appended, or a file cut short is refused: the application never
 * sees bytes that are not the exported model's. Key files hold the 32-byte key as 64 hex digits. */
#ifndef NB_MODEL_CRYPT_H
#define NB_MODEL_CRYPT_H

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB_MODEL_KEY_BYTES crypto_secretstream_xchacha20poly1305_KEYBYTES
#define NB_CRYPT_MAGIC "NBENC01\n"
#define NB_CRYPT_MAGIC_BYTES 8
#define NB_CRYPT_CHUNK 65536

enum {
    NB_CRYPT_OK = 0,
    NB_CRYPT_NOT_ENCRYPTED = -1, /* no magic: not a file bin/export --encrypt wrote */
    NB_CRYPT_REJECTED = -2,      /* wrong key, or the file was changed, cut or extended */
    NB_CRYPT_NO_MEMORY = -3,
    NB_CRYPT_NO_SODIUM = -4, /* libsodium could not start */
};

/* What a code means, for messages */
static inline const char *nb_crypt_error(int code) {
    switch (code) {
    case NB_CRYPT_OK: return "ok";
    case NB_CRYPT_NOT_ENCRYPTED: return "not an encrypted model (no NBENC01 header)";
    case NB_CRYPT_REJECTED: return "authentication failed: wrong key, or the file was changed, cut short or extended";
    case NB_CRYPT_NO_MEMORY: return "out of memory";
    default: return "libsodium could not be initialised";
    }
}

/* Bytes of the encrypted form of an n-byte model */
static inline size_t nb_model_encrypted_size(size_t n) {
    size_t chunks = n / NB_CRYPT_CHUNK + 1; /* the last, possibly empty, carries the final tag */
    return NB_CRYPT_MAGIC_BYTES + crypto_secretstream_xchacha20poly1305_HEADERBYTES +
           n + chunks * crypto_secretstream_xchacha20poly1305_ABYTES;
}

/* Encrypts in[0, n) under key into a malloc'd *out of *out_len bytes. NB_CRYPT_OK or an error code. */
static inline int nb_model_encrypt(const unsigned char key[NB_MODEL_KEY_BYTES], const unsigned char *in, size_t n,
                                   unsigned char **out, size_t *out_len) {
    if (sodium_init() < 0) return NB_CRYPT_NO_SODIUM;
    size_t total = nb_model_encrypted_size(n);
    unsigned char *o = malloc(total), *p;
    if (!o) return NB_CRYPT_NO_MEMORY;
    memcpy(o, NB_CRYPT_MAGIC, NB_CRYPT_MAGIC_BYTES);
    crypto_secretstream_xchacha20poly1305_state st;
    crypto_secretstream_xchacha20poly1305_init_push(&st, o + NB_CRYPT_MAGIC_BYTES, key);
    p = o + NB_CRYPT_MAGIC_BYTES + crypto_secretstream_xchacha20poly1305_HEADERBYTES;
    size_t done = 0;
    for (;;) {
        size_t len = n - done < NB_CRYPT_CHUNK ? n - done : NB_CRYPT_CHUNK;
        int last = len < NB_CRYPT_CHUNK; /* a model of a whole number of chunks ends with an empty final one */
        unsigned long long clen;
        crypto_secretstream_xchacha20poly1305_push(
            &st, p, &clen, in + done, len, (const unsigned char *)NB_CRYPT_MAGIC, NB_CRYPT_MAGIC_BYTES,
            last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
        p += clen;
        done += len;
        if (last) break;
    }
    sodium_memzero(&st, sizeof st);
    *out = o;
    *out_len = (size_t)(p - o);
    return NB_CRYPT_OK;
}

/* Decrypts in[0, n) under key into a malloc'd *out of *out_len bytes (free it with nb_model_plaintext_free).
 * NB_CRYPT_OK, or an error code with *out NULL: nothing of a rejected file is returned. */
static inline int nb_model_decrypt(const unsigned char key[NB_MODEL_KEY_BYTES], const unsigned char *in, size_t n,
                                   unsigned char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    const size_t head = NB_CRYPT_MAGIC_BYTES + crypto_secretstream_xchacha20poly1305_HEADERBYTES;
    const size_t ab = crypto_secretstream_xchacha20poly1305_ABYTES;
    if (n < NB_CRYPT_MAGIC_BYTES || memcmp(in, NB_CRYPT_MAGIC, NB_CRYPT_MAGIC_BYTES)) return NB_CRYPT_NOT_ENCRYPTED;
    if (sodium_init() < 0) return NB_CRYPT_NO_SODIUM;
    if (n < head + ab) return NB_CRYPT_REJECTED;
    size_t chunks = (n - head + NB_CRYPT_CHUNK + ab - 1) / (NB_CRYPT_CHUNK + ab);
    unsigned char *o = malloc(n - head - chunks * ab + 1);
    if (!o) return NB_CRYPT_NO_MEMORY;
    crypto_secretstream_xchacha20poly1305_state st;
    int rc = NB_CRYPT_REJECTED;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&st, in + NB_CRYPT_MAGIC_BYTES, key) == 0) {
        size_t at = head, got = 0;
        while (at < n) {
            size_t clen = n - at < NB_CRYPT_CHUNK + ab ? n - at : NB_CRYPT_CHUNK + ab;
            unsigned long long mlen;
            unsigned char tag;
            if (crypto_secretstream_xchacha20poly1305_pull(&st, o + got, &mlen, &tag, in + at, clen,
                                                           (const unsigned char *)NB_CRYPT_MAGIC,
                                                           NB_CRYPT_MAGIC_BYTES) != 0)
                break;
            at += clen;
            got += (size_t)mlen;
            int final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
            /* the final tag exactly at the end, on a short chunk; anything else was cut, moved or added */
            if (final != (at == n) || final != (mlen < NB_CRYPT_CHUNK)) break;
            if (final) {
                rc = NB_CRYPT_OK;
                *out_len = got;
            }
        }
    }
    sodium_memzero(&st, sizeof st);
    if (rc != NB_CRYPT_OK) {
        sodium_memzero(o, n - head - chunks * ab + 1);
        free(o);
        return rc;
    }
    *out = o;
    return NB_CRYPT_OK;
}

/* Wipes and frees a decrypted model */
static inline void nb_model_plaintext_free(unsigned char *p, size_t n) {
    if (!p) return;
    sodium_memzero(p, n);
    free(p);
}

/* Reads a key file (64 hex digits, surrounding white space allowed). 0, or -1 when it cannot be read or does
 * not hold exactly one key. */
static inline int nb_model_key_read(const char *path, unsigned char key[NB_MODEL_KEY_BYTES]) {
    char text[256];
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    size_t got = 0;
    const char *end;
    int rc = sodium_init() < 0 ? -1
             : sodium_hex2bin(key, NB_MODEL_KEY_BYTES, text, n, " \t\r\n", &got, &end);
    while (rc == 0 && *end && strchr(" \t\r\n", *end)) end++;
    sodium_memzero(text, sizeof text);
    return rc == 0 && got == NB_MODEL_KEY_BYTES && !*end ? 0 : -1;
}

#endif
