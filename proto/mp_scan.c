#include "mp_scan.h"

#include "qkdn_err.h"

static uint64_t
be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

int
qkdn_mp_scan(const uint8_t *buf, size_t len, const char **why)
{
	if (buf == NULL || len == 0) {
		*why = "empty message";
		return QKDN_E_TRUNCATED;
	}
	const uint8_t *p = buf, *end = buf + len;
	uint64_t need = 1; /* objects still to read */

	while (need > 0) {
		if (p >= end) {
			*why = "message ends inside an object";
			return QKDN_E_TRUNCATED;
		}
		uint8_t b = *p++;
		uint64_t hdr = 0, payload = 0, children = 0;
		need--;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 ||
		    b == 0xc3) {
			/* fixint, nil, bool */
		} else if (b <= 0x8f) {
			children = 2u * (b & 0x0f);
		} else if (b <= 0x9f) {
			children = b & 0x0f;
		} else if (b <= 0xbf) {
			payload = b & 0x1f;
		} else if (b == 0xc1) {
			*why = "invalid MessagePack byte 0xc1";
			return QKDN_E_BAD_REQUEST;
		} else if (b >= 0xc4 && b <= 0xc6) { /* bin 8/16/32 */
			hdr = 1u << (b - 0xc4);
		} else if (b >= 0xc7 && b <= 0xc9) { /* ext 8/16/32 */
			hdr = 1u << (b - 0xc7);
			payload = 1; /* ext type byte */
		} else if (b == 0xca || b == 0xcb) {
			payload = b == 0xca ? 4 : 8;
		} else if (b >= 0xcc && b <= 0xd3) { /* (u)int 8..64 */
			payload = 1u << ((b - 0xcc) & 3);
		} else if (b >= 0xd4 && b <= 0xd8) { /* fixext */
			payload = 1 + (1u << (b - 0xd4));
		} else if (b >= 0xd9 && b <= 0xdb) { /* str 8/16/32 */
			hdr = 1u << (b - 0xd9);
		} else if (b == 0xdc || b == 0xdd) {
			hdr = b == 0xdc ? 2 : 4;
		} else { /* 0xde, 0xdf: map 16/32 */
			hdr = b == 0xde ? 2 : 4;
		}
		if (hdr > 0) {
			if ((uint64_t)(end - p) < hdr) {
				*why = "message ends inside a length";
				return QKDN_E_TRUNCATED;
			}
			uint64_t n = be(p, (int)hdr);
			p += hdr;
			if (b == 0xdc || b == 0xdd)
				children = n;
			else if (b == 0xde || b == 0xdf)
				children = 2 * n;
			else
				payload += n;
		}
		if ((uint64_t)(end - p) < payload) {
			*why = "string or binary longer than the message";
			return QKDN_E_TRUNCATED;
		}
		p += payload;
		need += children;
		if (need > (uint64_t)(end - p)) {
			*why = "container declares more items than the message "
			       "holds";
			return QKDN_E_TRUNCATED;
		}
	}
	if (p != end) {
		*why = "trailing bytes after the message";
		return QKDN_E_BAD_REQUEST;
	}
	return 0;
}
