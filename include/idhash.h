/* idhash.h - national ID numbers as cordon keeps them: never as they are,
 * only as a keyed hash, "id:" + the first 32 hex digits of HMAC-SHA256
 * under the secret of [site] id_key_file. cordonctl's residents import
 * writes it to residents.id_hash; gate events of a person given by ID
 * number carry the same value in `person` (norm_set_person, normalize.c),
 * so the two meet. Pure, no logging. */
#ifndef CORDON_IDHASH_H
#define CORDON_IDHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "id:" + 32 hex digits; a buffer of IDHASH_SIZE holds it with its NUL. */
#define IDHASH_LEN 35
#define IDHASH_SIZE (IDHASH_LEN + 1)
/* The key file: at least IDHASH_KEY_MIN bytes, the first IDHASH_KEY_MAX
 * read, trailing CR/LF dropped. */
#define IDHASH_KEY_MIN 16
#define IDHASH_KEY_MAX 1024

/* True when s is a national ID number: 18 characters, 17 digits and a
 * check character (a digit, X or x). */
bool idhash_is_id_number(const char *s);

/* Reads the key from `path` into a new buffer (*ret_key, free() it) of
 * *ret_len bytes. 0, -errno when the file cannot be read, -EINVAL when
 * the key is shorter than IDHASH_KEY_MIN bytes, -ENOMEM. */
int idhash_key_load(const char *path, uint8_t **ret_key, size_t *ret_len)
	__attribute__((warn_unused_result));

/* Writes the hash of ID number `id` (idhash_is_id_number(), hashed as
 * given: "…X" and "…x" differ) under key[0..key_len) into ret
 * (IDHASH_SIZE bytes). 0, -EINVAL when id is not an ID number or the key
 * is empty, -EIO when OpenSSL fails. */
int idhash_person(const uint8_t *key, size_t key_len, const char *id, char ret[IDHASH_SIZE])
	__attribute__((warn_unused_result));

#endif
