/* idhash.c - the keyed hash that stands for a national ID number
 * (include/idhash.h). */
#include "idhash.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool
idhash_is_id_number(const char *s)
{
	if (strlen(s) != 18)
		return false;
	for (int i = 0; i < 17; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return (s[17] >= '0' && s[17] <= '9') || s[17] == 'X' || s[17] == 'x';
}

int
idhash_key_load(const char *path, uint8_t **ret_key, size_t *ret_len)
{
	uint8_t buf[IDHASH_KEY_MAX];
	uint8_t *key;
	size_t n;
	FILE *f;
	int err;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf), f);
	err = ferror(f) ? -EIO : 0;
	fclose(f);
	if (err < 0)
		return err;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n < IDHASH_KEY_MIN)
		return -EINVAL;
	key = malloc(n);
	if (!key)
		return -ENOMEM;
	memcpy(key, buf, n);
	*ret_key = key;
	*ret_len = n;
	return 0;
}

int
idhash_person(const uint8_t *key, size_t key_len, const char *id, char ret[IDHASH_SIZE])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (!key || key_len == 0 || !idhash_is_id_number(id))
		return -EINVAL;
	if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)id, 18, mac, &maclen) ||
	    maclen < 16)
		return -EIO;
	memcpy(ret, "id:", 3);
	for (unsigned i = 0; i < 16; i++)
		snprintf(ret + 3 + 2 * i, 3, "%02x", mac[i]);
	return 0;
}
