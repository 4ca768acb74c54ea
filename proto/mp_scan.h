/* Structural pre-check of MessagePack bytes, run before msgpack-c unpacks
 * them: every container's declared size must fit in the bytes that remain,
 * so a five-byte message cannot make the unpacker allocate gigabytes. */
#ifndef QKDN_MP_SCAN_H
#define QKDN_MP_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* 0 if buf holds exactly one well-formed MessagePack object, else a
 * negative qkdn error (QKDN_E_TRUNCATED, QKDN_E_TOO_LARGE,
 * QKDN_E_BAD_REQUEST) with a static reason in *why. */
int qkdn_mp_scan(const uint8_t *buf, size_t len, const char **why);

#endif
