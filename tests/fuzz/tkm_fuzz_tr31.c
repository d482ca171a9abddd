/*
 * tkm_fuzz_tr31.c - libFuzzer target for the TR-31 / X9.143 key block parser.
 *
 * Every rejection names its reason, and every accepted block's layout adds
 * up: header, hex payload and hex MAC tile the input exactly.
 */
#include <stdint.h>
#include <stdlib.h>

#include "tkm_tr31.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static tkm_tr31_header hdr;
	tkm_tr31_layout layout;
	char why[160];

	if (tkm_tr31_decode((const char *)data, size, &hdr, &layout, why, sizeof(why)) != TKM_OK) {
		if (why[0] == '\0') {
			abort(); /* every rejection names its reason */
		}
		return 0;
	}
	if (layout.total_len != size || layout.header_len > layout.payload_off ||
	    layout.payload_off + 2 * layout.payload_len != layout.mac_off ||
	    layout.mac_off + 2 * layout.mac_len != size ||
	    (layout.block_len != 0 && layout.payload_len % layout.block_len != 0)) {
		abort();
	}
	if (tkm_tr31_header_check(&hdr, why, sizeof(why)) != TKM_OK && why[0] == '\0') {
		abort();
	}
	return 0;
}
